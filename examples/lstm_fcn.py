"""LSTM-FCN (Karim et al. 2018) and a CNN-LSTM classify UCR/UEA time series, from rnnkit's Keras layers.

LSTM-FCN: two branches on the same series x (B, T, F), joined before the classifier:
    FCN:  Conv1D(32, 8) -> BatchNorm -> ReLU -> Conv1D(64, 5) -> BN -> ReLU -> Conv1D(32, 3) -> BN -> ReLU
          -> GlobalAveragePooling1D                                    (B, 32)
    LSTM: Permute((2, 1)) ("dimension shuffle": F steps of T features) -> LSTM(8) -> Dropout(0.8)   (B, 8)
    Concatenate -> Dense(C)
CNN-LSTM: Conv1D(32, 5, padding="same") -> MaxPooling1D(2) -> Conv1D(32, 3, padding="same")
    -> LSTM(32) -> Dense(C).

This file builds both from layers, with fewer filters than the paper; the paper's LSTM-FCN is
ready-made as ``rnnkit.models.LSTMFCN`` (``examples/ucr_classify.py``, ``rnnkit train ucr``).
rnnkit's functional API has not landed yet, so the models subclass ``rnnkit.Model`` (Keras's
subclassing API; ``compile``/``fit``/``evaluate`` as usual). Data: the bundled sets with their
official splits, standardised with training statistics. Prints each test accuracy beside the
majority-class baseline.

    python examples/lstm_fcn.py [--model lstm-fcn|cnn-lstm] [--datasets ItalyPowerDemand,GunPoint,BasicMotions]
                                [--epochs 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit.datasets import UCR_BUNDLED, load_ucr
from rnnkit.keras import layers as L


class LSTMFCN(rnnkit.Model):
    """The LSTM-FCN of Karim et al., with fewer filters for small CPUs."""

    def __init__(self, n_classes: int, filters: tuple[int, int, int] = (32, 64, 32), units: int = 8) -> None:
        super().__init__()
        self.conv1, self.bn1 = L.Conv1D(filters[0], 8, padding="same"), L.BatchNormalization()
        self.conv2, self.bn2 = L.Conv1D(filters[1], 5, padding="same"), L.BatchNormalization()
        self.conv3, self.bn3 = L.Conv1D(filters[2], 3, padding="same"), L.BatchNormalization()
        self.pool = L.GlobalAveragePooling1D()
        self.shuffle = L.Permute((2, 1))
        self.lstm = L.LSTM(units)
        self.drop = L.Dropout(0.8)
        self.join = L.Concatenate()
        self.classify = L.Dense(n_classes)

    def call(self, x, training=None):
        h = x
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            h = torch.relu(bn(conv(h), training=training))  # (B, T, filters)
        fcn = self.pool(h)  # (B, filters)
        rnn = self.drop(self.lstm(self.shuffle(x)), training=training)  # (B, units)
        return self.classify(self.join([fcn, rnn]))  # (B, C) logits


class CNNLSTM(rnnkit.Model):
    """Convolutions extract local shapes; an LSTM reads the shorter sequence of them."""

    def __init__(self, n_classes: int, filters: int = 32, units: int = 32) -> None:
        super().__init__()
        self.conv1 = L.Conv1D(filters, 5, padding="same", activation="relu")
        self.pool = L.MaxPooling1D(2)
        self.conv2 = L.Conv1D(filters, 3, padding="same", activation="relu")
        self.lstm = L.LSTM(units)
        self.classify = L.Dense(n_classes)

    def call(self, x, training=None):
        return self.classify(self.lstm(self.conv2(self.pool(self.conv1(x)))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lstm-fcn", choices=["lstm-fcn", "cnn-lstm"])
    parser.add_argument("--datasets", default=",".join(UCR_BUNDLED))
    parser.add_argument("--epochs", type=int, default=200)
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
        model = (LSTMFCN if args.model == "lstm-fcn" else CNNLSTM)(len(d.classes))
        model.compile(rnnkit.optimizers.Adam(1e-3),
                      loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(x_train, d.y_train, batch_size=16, epochs=args.epochs, verbose=0)
        _, accuracy = model.evaluate(x_test, d.y_test, verbose=0)
        baseline = float(np.mean(d.y_test == np.bincount(d.y_train).argmax()))
        N, T, F = d.x_train.shape
        print(f"{args.model} {name}: test accuracy {accuracy:.4f}  (majority-class baseline {baseline:.4f}; "
              f"{N} train / {len(d.x_test)} test, T={T}, F={F}; {model.count_params():,} parameters)  "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
