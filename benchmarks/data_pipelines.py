"""Per-step time of ``fit`` fed by a torch DataLoader, a PyDataset or a generator, against the same arrays.

    flock /tmp/rnnkit-bench.lock python benchmarks/data_pipelines.py
    python benchmarks/data_pipelines.py --samples 64 --timesteps 5 --reps 1     # smoke run

One model (LSTM(H) -> Dense(1), float32) and one dataset; every source gives the same
batches in the same order (shuffle=False, num_workers=0). The sources take turns within
each repetition, the order rotating, and each is timed from the end of its first step to
the end of its last (so fit's setup and the first batch, which builds the model and reads
ahead, are not counted). Prints the median seconds per step of each source and its ratio to
arrays (goal: DataLoader <= 1.05x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import rnnkit.keras as keras  # noqa: E402
from rnnkit.keras import layers  # noqa: E402
from rnnkit.keras.models import Sequential  # noqa: E402


class StepClock(keras.callbacks.Callback):
    """Seconds per step after the first: (end of last step - end of first step) / (steps - 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.ends.append(time.perf_counter())

    def per_step(self) -> float:
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)


class Slices(keras.utils.PyDataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


def sources(x: np.ndarray, y: np.ndarray, bs: int) -> dict[str, dict]:
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return {
        "arrays": dict(x=x, y=y, batch_size=bs, shuffle=False),
        "DataLoader": dict(x=DataLoader(TensorDataset(tx, ty), batch_size=bs, num_workers=0)),
        "PyDataset": dict(x=Slices(x, y, bs), shuffle=False),
        "generator": dict(x=((x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--timesteps", type=int, default=50)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = np.random.default_rng(0)
    x = g.normal(size=(args.samples, args.timesteps, args.features)).astype(np.float32)
    y = g.normal(size=(args.samples, 1)).astype(np.float32)

    torch.manual_seed(0)
    model = Sequential([layers.Input((args.timesteps, args.features)), layers.LSTM(args.hidden), layers.Dense(1)])
    start = model.get_weights()
    names = list(sources(x, y, args.batch_size))
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(args.reps + 1):  # the first round warms up (kernels, allocator) and is dropped
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            model.set_weights(start)
            model.compile(optimizer="adam", loss="mse")
            clock = StepClock()
            model.fit(epochs=1, verbose=0, callbacks=[clock], **sources(x, y, args.batch_size)[name])
            if rep:
                times[name].append(clock.per_step())
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load average {os.getloadavg()[0]:.2f}  threads {args.threads}  "
          f"samples {args.samples}  T {args.timesteps}  F {args.features}  H {args.hidden}  batch {args.batch_size}  "
          f"reps {args.reps}")
    print("| source | ms/step (median) | / arrays |")
    print("|---|---|---|")
    base = statistics.median(times["arrays"])
    for name in names:
        med = statistics.median(times[name])
        print(f"| {name} | {med * 1e3:.3f} | {med / base:.3f} |")


if __name__ == "__main__":
    main()
