"""Time rnnkit's paths against torch.nn in one run, interleaved, and print medians and ratios.

    python benchmarks/run.py                      # all cells, configs S, M, L
    python benchmarks/run.py --cells gru --configs M --reps 15

A training step is forward + backward of a sum over the outputs and the final state;
inference is a forward under ``torch.inference_mode``. Ratios are torch time / rnnkit
time, so > 1 means rnnkit is faster.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable

import torch

from rnnkit.cells import RecurrentCell
from rnnkit.recurrent import run_layer

CONFIGS = {
    "S": dict(B=16, T=200, I=32, H=64),
    "M": dict(B=32, T=100, I=64, H=128),
    "L": dict(B=64, T=100, I=128, H=256),
}
TORCH_MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def _time(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_case(kind: str, cfg: dict, implementation: str):
    B, T, I, H = cfg["B"], cfg["T"], cfg["I"], cfg["H"]
    torch.manual_seed(0)
    ref = TORCH_MODULES[kind](I, H, batch_first=True)
    cell = RecurrentCell(kind, I, H)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(ref, name + "_l0"))
    x = torch.randn(B, T, I, requires_grad=True)

    def torch_train() -> None:
        out, state = ref(x)
        state = state if isinstance(state, tuple) else (state,)
        (out.sum() + sum(s.sum() for s in state)).backward()

    def torch_infer() -> None:
        with torch.inference_mode():
            ref(x)

    def ours_train() -> None:
        out, state = run_layer(cell.spec, x, cell.weights(), implementation=implementation)
        (out.sum() + sum(s.sum() for s in state)).backward()

    def ours_infer() -> None:
        with torch.inference_mode():
            run_layer(cell.spec, x, cell.weights(), implementation=implementation)

    return {"train": (torch_train, ours_train), "infer": (torch_infer, ours_infer)}


def bench(kind: str, cfg_name: str, implementation: str, reps: int, warmup: int) -> list[dict]:
    rows = []
    case = make_case(kind, CONFIGS[cfg_name], implementation)
    for mode, (theirs, ours) in case.items():
        for _ in range(warmup):
            theirs()
            ours()
        t_theirs, t_ours = [], []
        for i in range(reps):
            # Interleave, alternating who goes first, so drift hits both alike.
            pair = [(theirs, t_theirs), (ours, t_ours)]
            for fn, acc in pair if i % 2 == 0 else pair[::-1]:
                acc.append(_time(fn))
        mt, mo = statistics.median(t_theirs), statistics.median(t_ours)
        rows.append(dict(cell=kind, config=cfg_name, mode=mode, impl=implementation,
                         torch_ms=mt * 1e3, rnnkit_ms=mo * 1e3, ratio=mt / mo))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--configs", default="S,M,L")
    parser.add_argument("--impls", default="bptt,auto")
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}; medians of {args.reps}; ratio = torch / rnnkit (> 1: rnnkit faster)")
    print("| cell | config | mode | rnnkit impl | torch ms | rnnkit ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.cells.split(","):
        for cfg in args.configs.split(","):
            for impl in args.impls.split(","):
                for r in bench(kind, cfg, impl, args.reps, args.warmup):
                    print(f"| {r['cell']} | {r['config']} | {r['mode']} | {r['impl']} | {r['torch_ms']:.2f} | "
                          f"{r['rnnkit_ms']:.2f} | {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
