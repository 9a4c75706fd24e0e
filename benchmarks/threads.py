"""`rnnkit train TASK` with the default threads against `--threads 1`, alone and beside a busy process.

    flock /tmp/rnnkit-bench.lock python benchmarks/threads.py                  # every bundled task
    flock /tmp/rnnkit-bench.lock python benchmarks/threads.py captions --reps 3 --busy on

Each run is a fresh `python -m rnnkit.cli train TASK --quiet` process (so torch's thread pool
starts as a user's would); the two settings alternate, who goes first alternating too. "busy"
starts `python -c "while True: pass"` pinned to CPU 0 for the whole comparison, the case of a
machine with other work on one core. Prints the median wall time of each setting and the
ratio default / --threads 1 (above 1: the default is slower). Long tasks get fewer epochs
(EPOCHS below); the ratio, not the score, is what this measures.
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


def time_train(task: str, threads: int | None, out: Path) -> float:
    argv = [sys.executable, "-m", "rnnkit.cli", "train", task, "--quiet", "--out", str(out)]
    if EPOCHS.get(task):
        argv += ["--epochs", str(EPOCHS[task])]
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
    print("| task | epochs | busy core | default (s) | --threads 1 (s) | default / --threads 1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for busy in (("off", "on") if args.busy == "both" else (args.busy,)):
        for task in args.tasks:
            hog = None
            if busy == "on":
                hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
            try:
                times: dict[str, list[float]] = {"default": [], "one": []}
                with tempfile.TemporaryDirectory() as tmp:
                    for rep in range(args.reps):
                        order = ("default", "one") if rep % 2 == 0 else ("one", "default")
                        for which in order:
                            times[which].append(time_train(task, None if which == "default" else 1, Path(tmp)))
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            d, o = statistics.median(times["default"]), statistics.median(times["one"])
            epochs = EPOCHS.get(task) or "default"
            print(f"| {task} | {epochs} | {busy} | {d:.1f} | {o:.1f} | {d / o:.2f} |", flush=True)
    print(f"# done {time.strftime('%H:%M')}  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
