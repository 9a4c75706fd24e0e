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
LIMIT = {"sentiment": 3000, "charlm": 300, "segment": 1000, "cmudict": 2000, "numbers": 2000, "dates": 2000}
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
    parser.add_argument("--settings", default="default,2,1", help="which of default, 2, 1 to time (default: all)")
    args = parser.parse_args()
    settings = {k: SETTINGS[k] for k in args.settings.split(",")}
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.2f}  cpus {os.cpu_count()}")
    names = {"default": "default", "2": "--threads 2", "1": "--threads 1"}
    print("| task | epochs, limit | busy core | " + " | ".join(f"{names[k]} (s)" for k in settings)
          + " | " + " | ".join(f"{names[k]} / --threads 1" for k in settings if k != "1") + " |")
    print("| --- " * (3 + len(settings) + len(settings) - 1) + "|", flush=True)
    for busy in (("off", "on") if args.busy == "both" else (args.busy,)):
        for task in args.tasks:
            hog = None
            if busy == "on":
                hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
            try:
                times: dict[str, list[float]] = {k: [] for k in settings}
                with tempfile.TemporaryDirectory() as tmp:
                    for rep in range(args.reps):
                        order = list(settings)
                        k = rep % len(order)
                        for which in order[k:] + order[:k]:
                            times[which].append(time_train(task, settings[which], Path(tmp)))
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            med = {k: statistics.median(v) for k, v in times.items()}
            setup = f"{EPOCHS.get(task) or 'default'}, {LIMIT.get(task) or 'all'}"
            cells = [f"{med[k]:.1f}" for k in settings] + [f"{med[k] / med['1']:.2f}" for k in settings if k != "1"]
            print(f"| {task} | {setup} | {busy} | " + " | ".join(cells) + " |", flush=True)
    print(f"# done {time.strftime('%H:%M')}  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
