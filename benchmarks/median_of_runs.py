"""Repeat a benchmarks/run.py table in fresh processes and print each row's medians and spread.

One run of run.py already takes medians of interleaved repetitions, but a whole run can still
land in a noisy minute (BENCHMARKS.md's "gru S train [auto]" row: torch at 42 ms against 25 ms
for the same torch GRU in the row above). This runs it ``--runs`` times, one process each, and
per row prints the median peer and rnnkit times, the median ratio and the ratios' range, so a
figure quoted from the table rests on the median run, not on one.

    python benchmarks/median_of_runs.py --runs 7 -- --suites core --cells gru --configs S,M,L --reps 15

Everything after ``--`` goes to run.py unchanged.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).with_name("run.py")
ROW = re.compile(r"^\| (?P<case>[^|]+?) \| (?P<peer>[^|]+?) \| (?P<tp>[\d.]+) \| (?P<to>[\d.]+) \| (?P<r>[\d.]+) \|$")


def parse(table: str) -> dict[tuple[str, str], tuple[float, float, float]]:
    """run.py's Markdown rows -> {(case, peer): (peer ms, rnnkit ms, ratio)}."""
    rows = {}
    for line in table.splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[(m["case"], m["peer"])] = (float(m["tp"]), float(m["to"]), float(m["r"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, passed = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes of run.py (odd: a true median)")
    args = ap.parse_args(ours)
    runs: list[dict] = []
    header = ""
    for i in range(args.runs):
        out = subprocess.run([sys.executable, str(RUN), *passed], check=True, capture_output=True, text=True).stdout
        header = header or next((l for l in out.splitlines() if l.startswith("#")), "")
        runs.append(parse(out))
        print(f"run {i + 1}/{args.runs}: {len(runs[-1])} rows", file=sys.stderr, flush=True)
    print(f"{header}; medians over {args.runs} runs of run.py {' '.join(passed)}")
    print("| case | peer | peer ms | rnnkit ms | ratio (median) | ratio (min-max) |")
    print("|---|---|---|---|---|---|")
    for key in runs[0]:
        values = [r[key] for r in runs if key in r]
        tp, to, ratio = (statistics.median(v[k] for v in values) for k in range(3))
        lo, hi = min(v[2] for v in values), max(v[2] for v in values)
        print(f"| {key[0]} | {key[1]} | {tp:.2f} | {to:.2f} | {ratio:.2f} | {lo:.2f}-{hi:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
