"""``rnnkit diagnose``: train a few cells briefly on a long-range task and show their gradient flow.

Wired into the main command by ``rnnkit.cli`` with ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .experiment import OPTIMIZERS, TASKS, RunConfig, make_task, train_run
from .models import CELL_RECIPES


def _cells(text: str) -> list[str]:
    cells = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELL_RECIPES]
    if not cells or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {sorted(CELL_RECIPES)}, got {text!r}")
    return cells


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``diagnose`` subcommand to ``rnnkit``'s subparsers."""
    p = subparsers.add_parser(
        "diagnose",
        help="train cells briefly on a long-range task; plot gradient flow through time and clipping",
        description=(
            "Train each cell on a long-range task (fresh batches each step, a fixed test set) while recording "
            "||dL/dh_t|| per time step every epoch and every clipping event. Writes heatmap_*.png (time step x "
            "epoch), curves_*.png (norm vs distance from the loss), clipping_*.png, loss_*.png, results.md and "
            "results.json into --out."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", choices=TASKS, default="adding", help="long-range task")
    p.add_argument("--length", type=_positive(int), default=100, help="sequence length T (adding, copy)")
    p.add_argument("--cells", type=_cells, default=["rnn", "irnn", "lstm", "gru"],
                   help="comma-separated cells: rnn (tanh SimpleRNN), irnn (ReLU + identity), lstm, gru, "
                        "mingru, minlstm (Feng et al. 2024, trained with the parallel scan)")
    p.add_argument("--hidden", type=_positive(int), default=64, help="hidden units")
    p.add_argument("--steps", type=_positive(int), default=1500, help="training steps per cell")
    p.add_argument("--batch-size", type=_positive(int), default=50, help="sequences per step")
    p.add_argument("--lr", type=_positive(float), default=1e-3, help="learning rate")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    p.add_argument("--clipnorm", type=_positive(float), default=1.0, help="global gradient-norm clip (see --no-clip)")
    p.add_argument("--no-clip", action="store_true", help="train without clipping")
    p.add_argument("--eval-every", type=_positive(int), default=100, help="steps per epoch (test + flow record)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=_positive(int), default=2, help="torch threads")
    p.add_argument("--out", type=Path, default=Path("diagnose_out"), help="output directory")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from .report import write_report

    torch.set_num_threads(args.threads)
    task = make_task(args.task, args.length)
    clipnorm = None if args.no_clip else args.clipnorm
    records = []
    start = time.perf_counter()
    print(f"{args.task}, T={task.length}; trivial predictor ({task.baseline_name}): {task.baseline:.4f}", flush=True)
    for recipe in args.cells:
        cfg = RunConfig(task=args.task, length=task.length, recipe=recipe, hidden=args.hidden, steps=args.steps,
                        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, clipnorm=clipnorm,
                        eval_every=args.eval_every, seed=args.seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train_run(cfg, task, log=lambda s: print(s, flush=True))
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr, flush=True)
        records.append(result.to_dict())
    metric = "test cross-entropy" if task.classification else "test MSE"
    command = "rnnkit diagnose " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 and sys.argv[1] == "diagnose" else ""
    paths = write_report(records, args.out, task.baseline, title=f"{args.task}", metric=metric, command=command)
    print((args.out / "results.md").read_text())
    print(f"wrote {', '.join(sorted(p.name for p in paths.values()))} to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m rnnkit.diagnostics.cli diagnose ...``."""
    parser = argparse.ArgumentParser(prog="rnnkit")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
