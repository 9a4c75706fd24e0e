"""The measurements behind ``implementation="auto"`` for LSTM: engine vs torch's fused oneDNN LSTM.

    python benchmarks/auto_rule.py                  # inference and training, 7 shapes
    python benchmarks/auto_rule.py --modes infer

Prints fused time / engine time per shape (> 1: the engine is faster), medians of interleaved
runs. ``rnnkit.recurrent.auto_prefers_fused`` encodes the rule; BENCHMARKS.md records the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnnkit.cells import RecurrentCell
from rnnkit.recurrent import run_layer

SHAPES = [(16, 200, 32, 64), (32, 100, 64, 128), (64, 100, 64, 128), (128, 50, 128, 128), (32, 100, 128, 256),
          (64, 100, 128, 256), (16, 100, 256, 512)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="infer,train")
    p.add_argument("--reps", type=int, default=11)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for mode in args.modes.split(","):
        for B, T, F, H in SHAPES:
            cell = RecurrentCell("lstm", F, H)
            x = torch.randn(B, T, F, requires_grad=True)

            def step(impl: str) -> None:
                if mode == "infer":
                    with torch.inference_mode():
                        run_layer(cell.spec, x, cell.weights(), implementation=impl)
                else:
                    out, (h, c) = run_layer(cell.spec, x, cell.weights(), implementation=impl)
                    (out.sum() + h.sum() + c.sum()).backward()

            for impl in ("bptt", "fused") * 3:
                step(impl)
            times: dict[str, list[float]] = {"bptt": [], "fused": []}
            for i in range(args.reps):
                for impl in ("bptt", "fused") if i % 2 else ("fused", "bptt"):
                    start = time.perf_counter()
                    step(impl)
                    times[impl].append(time.perf_counter() - start)
            engine, fused = (statistics.median(times[k]) * 1e3 for k in ("bptt", "fused"))
            print(f"{mode} B={B} T={T} F={F} H={H}: engine {engine:.2f} ms, fused {fused:.2f} ms, "
                  f"fused/engine {fused / engine:.2f}", flush=True)


if __name__ == "__main__":
    main()
