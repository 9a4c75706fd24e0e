"""The ``rnnkit`` command."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

import torch


def _demo(args: argparse.Namespace) -> int:
    """Train a small LSTM (our BPTT engine) to tell whether a noisy sequence's sum is positive."""
    from .cells import RecurrentCell
    from .recurrent import run_layer

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    B, T, H = 64, 30, 32
    n = 2048
    x = torch.randn(n, T, 1)
    y = (x.sum((1, 2)) > 0).float()
    split = n * 3 // 4
    cell = RecurrentCell("lstm", 1, H, bias="single", kernel_initializer="glorot_uniform",
                         recurrent_initializer="orthogonal", bias_initializer="zeros", unit_forget_bias=True)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam([*cell.parameters(), *head.parameters()], lr=3e-3)

    def logits(xb: torch.Tensor) -> torch.Tensor:
        _, (h, _) = run_layer(cell.spec, xb, cell.weights(), implementation="bptt")
        return head(h).squeeze(-1)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(split)
        for i in range(0, split, B):
            idx = perm[i : i + B]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = ((logits(x[split:]) > 0).float() == y[split:]).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs}  train loss {loss.item():.4f}  test accuracy {acc:.3f}", flush=True)
    print(f"done in {time.perf_counter() - start:.1f} s; majority-class baseline {max(y[split:].mean().item(), 1 - y[split:].mean().item()):.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent neural networks with a hand-derived BPTT engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small LSTM on a synthetic task with the BPTT engine")
    demo.add_argument("--epochs", type=int, default=5, help="passes over the training set (default 5)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
