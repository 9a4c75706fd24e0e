"""GEMM throughput at the engine's shapes: oneDNN's linear (what engine/blas.py uses) vs torch.mm (MKL).

    python benchmarks/gemm.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnnkit.engine import blas

# (rows, K, N): input projection and weight gradients at configs S/M/L (T*B rows).
SHAPES = [(3200, 32, 256), (3200, 64, 512), (6400, 128, 1024)]


def gflops(fn, flops: float, reps: int = 7, inner: int = 20) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return flops / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} threads; GF/s, median of 7")
    print("| rows x K x N | torch.mm | oneDNN linear | ratio |")
    print("|---|---|---|---|")
    for M, K, N in SHAPES:
        a, w = torch.randn(M, K), torch.randn(N, K)
        flops = 2.0 * M * K * N
        mm = gflops(lambda: torch.mm(a, w.t()), flops)
        dnnl = gflops(lambda: blas.linear(a, w), flops)
        print(f"| {M} x {K} x {N} | {mm:.0f} | {dnnl:.0f} | {dnnl / mm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
