"""Cells stepped by hand in a Python loop: rnnkit.nn.LSTMCell/GRUCell against torch.nn's.

    flock /tmp/rnnkit-bench.lock python benchmarks/cell_step.py [--T 200] [--batch 16] [--hidden 64] [--reps 15]
    python benchmarks/cell_step.py --T 5 --reps 3          # a smoke run

One training step = T calls of the cell on (B, F) inputs, the sum of every h as the loss, and its
backward; float32 and float64, interleaved with torch.nn's cell on the same weights. Prints medians
and ratio = torch time / rnnkit time (goal >= 1.0), and the time of rnnkit's cell made to take
torch's one-step kernel ("via torch": what the engine's own step adds). Timings drift with load,
so it also prints the Python function calls per step (sys.setprofile), which do not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch

import rnnkit.nn
from rnnkit.engine import kernels

CELLS = {"lstm": (rnnkit.nn.LSTMCell, torch.nn.LSTMCell), "gru": (rnnkit.nn.GRUCell, torch.nn.GRUCell),
         "rnn": (rnnkit.nn.RNNCell, torch.nn.RNNCell)}


def train_step(cell: torch.nn.Module, xs: torch.Tensor, lstm: bool) -> Callable[[], None]:
    B, H = xs.shape[1], cell.hidden_size

    def step() -> None:
        h = xs.new_zeros(B, H)
        state = (h, h) if lstm else h
        loss = 0
        for x in xs:
            state = cell(x, state)
            loss = loss + (state[0] if lstm else state).sum()
        loss.backward()

    return step


def via_torch_kernel(fn: Callable[[], None]) -> Callable[[], None]:
    """fn with the C++ module hidden, so that rnnkit's cells take torch's one-step kernel."""

    def run() -> None:
        module, kernels._module = kernels._module, None
        try:
            fn()
        finally:
            kernels._module = module

    return run


def python_calls(fn: Callable[[], None]) -> int:
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        count += event == "call"

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=list(CELLS))
    p.add_argument("--T", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, T={args.T} B={args.batch} F={args.features} H={args.hidden}")
    for kind in args.cells:
        for dtype in (torch.float32, torch.float64):
            ours_cls, torch_cls = CELLS[kind]
            torch.manual_seed(0)
            ref = torch_cls(args.features, args.hidden, dtype=dtype)
            ours = ours_cls(args.features, args.hidden, dtype=dtype)
            ours.load_state_dict(ref.state_dict())
            xs = torch.randn(args.T, args.batch, args.features, dtype=dtype)
            fns = {"torch": train_step(ref, xs, kind == "lstm"), "rnnkit": train_step(ours, xs, kind == "lstm"),
                   "via torch": via_torch_kernel(train_step(ours, xs, kind == "lstm"))}
            for fn in fns.values():  # warm up
                fn()
                fn()
            times: dict[str, list[float]] = {name: [] for name in fns}
            names = list(fns)
            for i in range(args.reps):
                for name in names[i % 3:] + names[: i % 3]:
                    start = time.perf_counter()
                    fns[name]()
                    times[name].append(time.perf_counter() - start)
            med = {name: statistics.median(t) for name, t in times.items()}
            calls = {name: python_calls(fns[name]) / args.T for name in ("torch", "rnnkit")}
            print(f"{kind.upper():4s} {str(dtype).split('.')[-1]:8s} torch {med['torch'] * 1e3:8.2f} ms  "
                  f"rnnkit {med['rnnkit'] * 1e3:8.2f} ms  ratio x{med['torch'] / med['rnnkit']:.2f} (goal 1.0)  "
                  f"via torch {med['via torch'] * 1e3:8.2f} ms  "
                  f"Python calls per step: torch {calls['torch']:.1f}, rnnkit {calls['rnnkit']:.1f}")


if __name__ == "__main__":
    main()
