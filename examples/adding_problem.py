"""The adding problem at T = 50, 100, 200: tanh RNN, IRNN, LSTM and GRU, with and without clipping.

Le, Jaitly & Hinton (2015) report that on this task a tanh RNN stays at the trivial MSE
(~0.167, always predicting 1.0) at T >= 100 while LSTM and IRNN solve it. This script
trains every (cell, T, clipping) combination with the same optimiser and budget, records
the gradient flow through time every "epoch" (``eval_every`` steps), and writes into --out:

    results.md / results.json          the table (final and best test MSE, steps to MSE < 0.01, ...)
    heatmap_T{T}_{clip}.png            ||dL/dh_t|| over time step x training step, one panel per cell
    curves_T{T}_{clip}.png             norm against distance from the loss, before and after training
    clipping_T{T}_{clip}.png           gradient norm before clipping, clipped steps marked
    loss_T{T}_{clip}.png               test MSE against training step
    runs/*.json                        one record per run (the script resumes from these)

Run (about an hour per clipping setting on one core; the two can run side by side):
    python examples/adding_problem.py --clip on  --out adding_out
    python examples/adding_problem.py --clip off --out adding_out
    python examples/adding_problem.py --report-only --out adding_out
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from rnnkit.datasets.long_range import ADDING_TRIVIAL_MSE
from rnnkit.diagnostics.experiment import RunConfig, make_task, results_table, train_run
from rnnkit.diagnostics.report import write_report

DEFAULT_STEPS = {50: 4000, 100: 8000, 200: 10000}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lengths", default="50,100,200", help="comma-separated sequence lengths T")
    p.add_argument("--cells", default="rnn,irnn,lstm,gru", help="comma-separated cells")
    p.add_argument("--clip", choices=("on", "off", "both"), default="both", help="global clipnorm 1.0, none, or both")
    p.add_argument("--steps", type=int, default=0, help="training steps per run (0: 4000 / 8000 / 10000 for T = 50 / 100 / 200)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--eval-every", type=int, default=250, help="steps between test evaluations and flow records")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--out", type=Path, default=Path("adding_out"))
    p.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from runs/*.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    lengths = [int(t) for t in args.lengths.split(",")]
    cells = args.cells.split(",")
    clips = {"on": [1.0], "off": [None], "both": [1.0, None]}[args.clip]
    start = time.perf_counter()
    if not args.report_only:
        for T in lengths:
            task = make_task("adding", T)
            for clipnorm in clips:
                for recipe in cells:
                    cfg = RunConfig(task="adding", length=T, recipe=recipe, hidden=args.hidden,
                                    steps=args.steps or DEFAULT_STEPS.get(T, 6000), batch_size=args.batch_size,
                                    lr=args.lr, clipnorm=clipnorm, eval_every=args.eval_every, seed=args.seed)
                    seed_tag = f"_seed{args.seed}" if args.seed else ""
                    path = runs_dir / f"{recipe}_T{T}_{'clip' if clipnorm else 'noclip'}{seed_tag}.json"
                    if path.exists():
                        print(f"{cfg.label}: done before ({path})", flush=True)
                        continue
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        result = train_run(cfg, task, log=lambda s: print(s, flush=True))
                    for w in caught:
                        print(f"  warning: {w.message}", flush=True)
                    record = result.to_dict()
                    record["warnings"] = [str(w.message) for w in caught]
                    path.write_text(json.dumps(record))
                    print(f"{cfg.label}: final test MSE {result.final:.4f}, best {result.best:.4f}, "
                          f"{result.seconds:.0f} s", flush=True)
    records = [json.loads(f.read_text()) for f in sorted(runs_dir.glob("*.json"))]
    for r in records:  # records written before RunResult carried the test-set baseline
        r.setdefault("baseline", make_task("adding", r["config"]["length"]).baseline_on_test())
    order = {c: i for i, c in enumerate(["rnn", "irnn", "lstm", "gru"])}
    records.sort(key=lambda r: (r["config"]["length"], r["clipping"] == "none", order.get(r["config"]["recipe"], 9),
                                r["config"]["seed"]))
    if not records:
        print("no runs recorded yet", file=sys.stderr)
        return 1
    write_report(records, args.out, ADDING_TRIVIAL_MSE, title="Adding problem", metric="test MSE",
                 command="python examples/adding_problem.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(results_table(records, ADDING_TRIVIAL_MSE))
    total = sum(r["seconds"] for r in records)
    print(f"\n{len(records)} runs; {total:.0f} s of training in total; this invocation took {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
