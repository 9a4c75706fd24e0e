"""Many-to-one on series: a bidirectional GRU classifies UCR/UEA time series.

Data: the three bundled archive sets (ItalyPowerDemand, GunPoint, BasicMotions) with
their official splits. Prints each test accuracy beside the majority-class baseline.

    python examples/ucr_classify.py [--datasets ItalyPowerDemand,GunPoint,BasicMotions] [--epochs 150]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit.datasets import UCR_BUNDLED, load_ucr
from rnnkit.models import SequenceClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(UCR_BUNDLED))
    parser.add_argument("--cell", default="gru", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    for name in args.datasets.split(","):
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        d = load_ucr(name)
        loc, scale = d.x_train.mean((0, 1)), d.x_train.std((0, 1)) + 1e-8  # per feature, training statistics
        x_train, x_test = (d.x_train - loc) / scale, (d.x_test - loc) / scale
        model = SequenceClassifier(len(d.classes), input_size=x_train.shape[-1], units=32, cell=args.cell,
                                   bidirectional=True, dropout=0.2)
        model.compile(rnnkit.optimizers.Adam(3e-3),
                      loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(x_train, d.y_train, batch_size=16, epochs=args.epochs, verbose=0)
        _, accuracy = model.evaluate(x_test, d.y_test, verbose=0)
        baseline = float(np.mean(d.y_test == np.bincount(d.y_train).argmax()))
        N, T, F = d.x_train.shape
        print(f"{name}: test accuracy {accuracy:.4f}  (majority-class baseline {baseline:.4f}; {N} train / "
              f"{len(d.x_test)} test, T={T}, F={F})  {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
