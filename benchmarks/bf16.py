"""bf16 autocast on the CPU: one LSTM/GRU training step at config L, four ways, interleaved.

    flock /tmp/rnnkit-bench.lock python benchmarks/bf16.py [--cells lstm gru] [--configs L] [--reps 15] [--threads 2]
    python benchmarks/bf16.py --configs tiny --reps 3      # a smoke run

A step is forward + backward of (B, T, I) -> H, one layer, the same weights everywhere:
    rnnkit fp32        rnnkit.nn.LSTM/GRU in float32
    rnnkit bf16        the same module under torch.autocast("cpu", dtype=torch.bfloat16)
    torch.nn bf16      torch.nn.LSTM/GRU under the same autocast
    torch.nn fp32      torch.nn.LSTM/GRU in float32 (for reference)
Prints medians and the ratios the issue asks for: rnnkit bf16 against rnnkit fp32 (goal >= 1.6x)
and against torch.nn under autocast (goal >= 2x); ratio = other time / rnnkit bf16 time.
Also prints which bf16 kernel ran (AMX, or float32 math on bf16-rounded operands without it).
With --kernels, also times rnnkit bf16 with each other kernel this CPU has (RNNKIT_BF16_KERNEL=
avx512_bf16: vdpbf16ps; =emulate: the float32 math), the measurement behind the default choice.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from typing import Callable

import torch

import rnnkit.nn
from rnnkit.engine.compiled import bf16_kernel

CONFIGS = {  # as benchmarks/run.py
    "tiny": dict(B=8, T=10, I=16, H=32),
    "S": dict(B=16, T=200, I=32, H=64),
    "M": dict(B=32, T=100, I=64, H=128),
    "L": dict(B=64, T=100, I=128, H=256),
}
MODULES = {"lstm": (rnnkit.nn.LSTM, torch.nn.LSTM), "gru": (rnnkit.nn.GRU, torch.nn.GRU)}


def train_step(module: torch.nn.Module, x: torch.Tensor, bf16: bool, kernel: str = "") -> Callable[[], None]:
    def step() -> None:
        os.environ["RNNKIT_BF16_KERNEL"] = kernel  # read by the C++ loop at each call
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out, hn = module(x)
            finals = hn if isinstance(hn, tuple) else (hn,)
            loss = out.float().sum() + sum(f.float().sum() for f in finals)
        loss.backward()  # outside autocast, as torch's AMP recipes do

    return step


def time_all(fns: dict[str, Callable[[], None]], reps: int, warmup: int) -> dict[str, float]:
    """Median seconds per function, run interleaved, rotating who goes first."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for i in range(reps):
        for name in names[i % len(names):] + names[: i % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=list(MODULES))
    p.add_argument("--configs", nargs="+", default=["L"], choices=list(CONFIGS))
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--kernels", action="store_true", help="also time the other bf16 kernels")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, bf16 kernel: {bf16_kernel() or 'no compiled loop'}")
    for cfg in args.configs:
        c = CONFIGS[cfg]
        for kind in args.cells:
            ours_cls, torch_cls = MODULES[kind]
            torch.manual_seed(0)
            ref = torch_cls(c["I"], c["H"], batch_first=True)
            ours = ours_cls(c["I"], c["H"], batch_first=True)
            ours.load_state_dict(ref.state_dict())
            x = torch.randn(c["B"], c["T"], c["I"], requires_grad=True)
            fns = {
                "rnnkit bf16": train_step(ours, x, True),
                "rnnkit fp32": train_step(ours, x, False),
                "torch.nn bf16": train_step(ref, x, True),
                "torch.nn fp32": train_step(ref, x, False),
            }
            if args.kernels:
                for kernel in ("avx512_bf16", "emulate"):
                    os.environ["RNNKIT_BF16_KERNEL"] = kernel
                    if bf16_kernel() in (kernel, kernel + "d"):
                        fns[f"rnnkit bf16 {kernel}"] = train_step(ours, x, True, kernel)
                os.environ["RNNKIT_BF16_KERNEL"] = ""
            med = time_all(fns, args.reps, args.warmup)
            base = med["rnnkit bf16"]
            cells = "  ".join(f"{name} {t * 1e3:8.2f} ms" for name, t in med.items())
            print(f"{kind.upper():4s} {cfg:4s} {cells}")
            print(f"          rnnkit bf16 speedup: x{med['rnnkit fp32'] / base:.2f} over rnnkit fp32 (goal 1.6), "
                  f"x{med['torch.nn bf16'] / base:.2f} over torch.nn bf16 (goal 2.0), "
                  f"x{med['torch.nn fp32'] / base:.2f} over torch.nn fp32")


if __name__ == "__main__":
    main()
