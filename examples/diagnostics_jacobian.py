"""The Jacobian view at initialisation: how fast does d s_t / d s_0 shrink, per cell?

For each cell recipe (untrained, seeded) on adding-problem inputs, prints the mean spectral
norm of the step Jacobian ||ds_t/ds_{t-1}||_2, the decay rate of ||ds_t/ds_0||_2 (nats per
step) and the factor per step, next to the gradient-flow ratio ||dL/dh_1|| / ||dL/dh_T||
measured by backpropagation on the same model and batch. The two views should agree on
which cells lose the signal.

    python examples/diagnostics_jacobian.py --length 100
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from rnnkit.datasets.long_range import adding_problem
from rnnkit.diagnostics import SequenceModel, flow_ratio, gradient_flow, jacobian_norms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    x, y = (torch.from_numpy(a) for a in adding_problem(args.batch, args.length, seed=args.seed))
    print(f"T={args.length}, H={args.hidden}, batch {args.batch}, untrained (seed {args.seed})\n")
    print("| cell | mean ‖∂s_t/∂s_{t-1}‖₂ | decay rate (nats/step) | factor/step | ‖∂s_T/∂s_0‖₂ (median) | ‖∂L/∂h_1‖/‖∂L/∂h_T‖ |")
    print("|---|---:|---:|---:|---:|---:|")
    for recipe in ("rnn", "irnn", "lstm", "gru"):
        torch.manual_seed(args.seed)
        model = SequenceModel(recipe, 2, args.hidden, 1)
        report = jacobian_norms(model.rnn.cell, x)
        flow = gradient_flow(model, x, y)
        ratio = flow_ratio(next(iter(flow.values())))
        print(f"| {recipe} | {report.step_norms.mean():.3f} | {report.decay_rate:+.4f} | {report.factor:.4f} "
              f"| {np.median(report.product_norms[:, -1]):.1e} | {ratio:.1e} |")
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
