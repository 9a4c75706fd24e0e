"""Many-to-one on series: LSTM-FCN (or a bidirectional GRU) classifies UCR/UEA time series.

Data: the three bundled archive sets (ItalyPowerDemand, GunPoint, BasicMotions) with their
official splits, standardised per feature with training statistics. The recipe is Karim et
al.'s (Adam(1e-3), the learning rate divided by 2^(1/3) when the training loss stalls, the
weights of the last epoch: nothing is chosen on the test split) but with batches of 16 for
250 epochs, not 128 for 2,000: with 40-67 training series a batch of 128 is one step per
epoch. Each seed's test
accuracy is printed, then that of the ensemble (the mean of the seeds' softmax outputs),
beside the majority-class baseline.

    python examples/ucr_classify.py [--datasets ItalyPowerDemand,GunPoint,BasicMotions]
        [--model lstm-fcn|bigru] [--epochs 250] [--batch-size 16] [--seeds 0,1,2] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit.datasets import UCR_BUNDLED, load_ucr
from rnnkit.models import LSTMFCN, SequenceClassifier


def build(kind: str, n_classes: int, T: int, F: int) -> rnnkit.Model:
    if kind == "lstm-fcn":
        return LSTMFCN(n_classes, input_size=F, length=T)
    return SequenceClassifier(n_classes, input_size=F, units=32, cell="gru", bidirectional=True, dropout=0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(UCR_BUNDLED))
    parser.add_argument("--model", default="lstm-fcn", choices=["lstm-fcn", "bigru"])
    parser.add_argument("--epochs", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]

    for name in args.datasets.split(","):
        d = load_ucr(name)
        loc, scale = d.x_train.mean((0, 1)), d.x_train.std((0, 1)) + 1e-8  # per feature, training statistics
        x_train, x_test = (d.x_train - loc) / scale, (d.x_test - loc) / scale
        N, T, F = x_train.shape
        baseline = float(np.mean(d.y_test == np.bincount(d.y_train).argmax()))
        print(f"{name}: {N} train / {len(x_test)} test, T={T}, F={F}, {len(d.classes)} classes; "
              f"majority-class baseline {baseline:.4f}")
        probas = []
        for seed in seeds:
            torch.manual_seed(seed)
            start = time.perf_counter()
            model = build(args.model, len(d.classes), T, F)
            model.compile(rnnkit.optimizers.Adam(1e-3),
                          loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            plateau = rnnkit.callbacks.ReduceLROnPlateau(monitor="loss", factor=2 ** (-1 / 3),
                                                         patience=max(10, args.epochs // 20), min_lr=1e-4)
            model.fit(x_train, d.y_train, batch_size=args.batch_size, epochs=args.epochs, callbacks=[plateau], verbose=0)
            proba = model.predict_proba(x_test)
            probas.append(proba)
            accuracy = float(np.mean(proba.argmax(-1) == d.y_test))
            print(f"  {args.model} seed {seed}: test accuracy {accuracy:.4f}  ({model.count_params():,} parameters, "
                  f"{time.perf_counter() - start:.0f} s)", flush=True)
        if len(seeds) > 1:
            ensemble = float(np.mean(np.mean(probas, axis=0).argmax(-1) == d.y_test))
            print(f"  ensemble of {len(seeds)} seeds (mean softmax): test accuracy {ensemble:.4f}", flush=True)


if __name__ == "__main__":
    main()
