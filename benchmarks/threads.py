"""`rnnkit train TASK` with the default threads, `--threads 2` and `--threads 1`, alone and beside a busy process.

    flock /tmp/rnnkit-bench.lock python benchmarks/threads.py                  # every bundled task
    flock /tmp/rnnkit-bench.lock python benchmarks/threads.py captions --reps 3 --busy on

Each run is a fresh `python -m rnnkit.cli train TASK --quiet` process (so torch's thread pool
starts as a user's would); the settings take turns, the order rotating each repetition. "busy"
starts `python -c "while True: pass"` pinned to CPU 0 for the whole comparison, the case of a
machine with other work on one core. Prints the median wall time of each setting and the
ratios to --threads 1 (above 1: slower). The default counts idle cores at start (see
rnnkit.cli.default_threads); --threads 2 is what the default was before that. Long tasks get
fewer epochs and samples (EPOCHS, LIMIT below); the ratio, not the score, is what this measures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Epochs per task here (None: the task's default). Long tasks are cut to keep a run near a minute.
EPOCHS = {"sentiment": None, "sunspots": 100, "ucr": 50, "charlm": 1, "segment": 1, "cmudict": 1,
          "numbers": 1, "dates": 1, "captions": None, "digits": None}
#: --limit per task (None: all the data).
LIMIT = {"charlm": 600, "segment": 2000, "cmudict": 4000, "numbers": 4000, "dates": 4000}
SETTINGS = {"default": None, "2": 2, "1": 1}


def time_train(task: str, threads: int | None, out: Path) -> float:
    argv = [sys.executable, "-m", "rnnkit.cli", "train", task, "--quiet", "--out", str(out)]
    if EPOCHS.get(task):
        argv += ["--epochs", str(EPOCHS[task])]
    if LIMIT.get(task):
        argv += ["--limit", str(LIMIT[task])]
    if threads is not None:
        argv += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="*", default=list(EPOCHS))
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--busy", choices=("off", "on", "both"), default="both")
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.2f}  cpus {os.cpu_count()}")
    print("| task | epochs, limit | busy core | default (s) | --threads 2 (s) | --threads 1 (s) | default / 1 | 2 / 1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for busy in (("off", "on") if args.busy == "both" else (args.busy,)):
        for task in args.tasks:
            hog = None
            if busy == "on":
                hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
            try:
                times: dict[str, list[float]] = {k: [] for k in SETTINGS}
                with tempfile.TemporaryDirectory() as tmp:
                    for rep in range(args.reps):
                        names = list(SETTINGS)
                        for which in names[rep % 3:] + names[: rep % 3]:
                            times[which].append(time_train(task, SETTINGS[which], Path(tmp)))
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            d, two, one = (statistics.median(times[k]) for k in SETTINGS)
            setup = f"{EPOCHS.get(task) or 'default'}, {LIMIT.get(task) or 'all'}"
            print(f"| {task} | {setup} | {busy} | {d:.1f} | {two:.1f} | {one:.1f} | {d / one:.2f} | {two / one:.2f} |",
                  flush=True)
    print(f"# done {time.strftime('%H:%M')}  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
