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
Both are written with the functional API (``keras.Input`` -> layers -> ``keras.Model``), as a
Keras user would. Data: the bundled sets with their
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

from rnnkit.datasets import UCR_BUNDLED, load_ucr
import rnnkit.keras as keras
from rnnkit.keras import layers as L


def lstm_fcn(T: int, F: int, n_classes: int, filters: tuple[int, int, int] = (32, 64, 32),
             units: int = 8) -> keras.Model:
    """The LSTM-FCN of Karim et al., with fewer filters for small CPUs: x (B, T, F) -> logits (B, C)."""
    x = keras.Input(shape=(T, F), name="series")
    h = x
    for n, kernel in zip(filters, (8, 5, 3)):
        h = L.Activation("relu")(L.BatchNormalization()(L.Conv1D(n, kernel, padding="same")(h)))  # (B, T, n)
    fcn = L.GlobalAveragePooling1D()(h)  # (B, filters[-1])
    rnn = L.Dropout(0.8)(L.LSTM(units)(L.Permute((2, 1))(x)))  # F steps of T features -> (B, units)
    return keras.Model(x, L.Dense(n_classes)(L.Concatenate()([fcn, rnn])), name="lstm_fcn")


def cnn_lstm(T: int, F: int, n_classes: int, filters: int = 32, units: int = 32) -> keras.Model:
    """Convolutions extract local shapes; an LSTM reads the shorter sequence of them."""
    x = keras.Input(shape=(T, F), name="series")
    h = L.Conv1D(filters, 5, padding="same", activation="relu")(x)
    h = L.Conv1D(filters, 3, padding="same", activation="relu")(L.MaxPooling1D(2)(h))
    return keras.Model(x, L.Dense(n_classes)(L.LSTM(units)(h)), name="cnn_lstm")


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
        N, T, F = d.x_train.shape
        model = (lstm_fcn if args.model == "lstm-fcn" else cnn_lstm)(T, F, len(d.classes))
        model.compile(keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(x_train, d.y_train, batch_size=16, epochs=args.epochs, verbose=0)
        _, accuracy = model.evaluate(x_test, d.y_test, verbose=0)
        baseline = float(np.mean(d.y_test == np.bincount(d.y_train).argmax()))
        print(f"{args.model} {name}: test accuracy {accuracy:.4f}  (majority-class baseline {baseline:.4f}; "
              f"{N} train / {len(d.x_test)} test, T={T}, F={F}; {model.count_params():,} parameters)  "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
