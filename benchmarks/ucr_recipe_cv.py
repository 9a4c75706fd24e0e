"""Which LSTM-FCN recipe for ``rnnkit train ucr``: variants compared by cross-validation on the
training split only, then (for the record, never to choose) their test accuracy.

    nice -n 10 python benchmarks/ucr_recipe_cv.py --datasets ItalyPowerDemand --variants base,noise,swa
    python benchmarks/ucr_recipe_cv.py --smoke          # tiny: proves it runs

For each data set and variant: stratified k-fold CV over the training series (each fold's model
trained on the other folds, the fold's accuracy pooled over all training series), then the
variant trained on the whole training split with each seed, scored on the published test split.
The CV accuracy is what a choice may rest on; the test numbers are reported after the choice.

Variants (all Karim et al.'s LSTM-FCN, Adam(1e-3), ReduceLROnPlateau on the training loss,
batches of 16, standardised per feature with training statistics; ``base`` is the default of
``rnnkit train ucr`` before this experiment):
    base      250 epochs, the last epoch's weights
    noise     base + Gaussian noise (sd 0.1 of the standardised input) added in training
    ls        base + label smoothing 0.1
    swa       base + the mean of the weights over the last 20% of epochs (BN statistics
              recomputed on the training data)
    ep500     500 epochs

Results (2026-12-02, ItalyPowerDemand, under load): README.md, "Against published results".
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.datasets import load_ucr
from rnnkit.keras.callbacks import Callback, ReduceLROnPlateau
from rnnkit.models import LSTMFCN


class NoisyLSTMFCN(LSTMFCN):
    def call(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> Any:
        x = torch.as_tensor(inputs)
        if training:
            x = x + 0.1 * torch.randn_like(x)
        return super().call(x, mask=mask, training=training)


class WeightAverage(Callback):
    """Averages the parameters over the epochs from ``start`` on; loads the mean at the end."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start, self.count, self.mean = start, 0, None

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if epoch < self.start:
            return
        params = {k: v.detach().clone() for k, v in self.model.named_parameters() if v.requires_grad}
        self.count += 1
        if self.mean is None:
            self.mean = params
        else:
            for k, v in params.items():
                self.mean[k] += (v - self.mean[k]) / self.count

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.mean is not None:
            with torch.no_grad():
                for k, v in self.model.named_parameters():
                    if k in self.mean:
                        v.copy_(self.mean[k])


def recompute_bn(model: LSTMFCN, x: np.ndarray) -> None:
    """BN moving statistics of the averaged weights: one pass over all training series with momentum 0."""
    saved = [norm.momentum for norm in model.norms]
    for norm in model.norms:
        norm.momentum = 0.0
    with torch.no_grad():
        model(torch.as_tensor(x), training=True)
    for norm, m in zip(model.norms, saved):
        norm.momentum = m


def smoothed_loss(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(y_pred, y_true.long().reshape(-1), label_smoothing=0.1, reduction="none")


def fit_predict(variant: str, x: np.ndarray, y: np.ndarray, xt: np.ndarray, n_classes: int, seed: int,
                epochs: int) -> np.ndarray:
    torch.manual_seed(seed)
    np.random.seed(seed)
    N, T, Fdim = x.shape
    cls = NoisyLSTMFCN if variant == "noise" else LSTMFCN
    model = cls(n_classes, input_size=Fdim, length=T)
    loss = smoothed_loss if variant == "ls" else rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(rnnkit.optimizers.Adam(1e-3), loss=loss)
    epochs = 2 * epochs if variant == "ep500" else epochs
    callbacks: list = [ReduceLROnPlateau(monitor="loss", factor=2 ** (-1 / 3), patience=max(10, epochs // 20),
                                         min_lr=1e-4)]
    if variant == "swa":
        callbacks.append(WeightAverage(int(0.8 * epochs)))
    model.fit(x, y, batch_size=16, epochs=epochs, callbacks=callbacks, verbose=0)
    if variant == "swa":
        recompute_bn(model, x)
    return model.predict_proba(xt)


def folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Stratified: each class's (shuffled) indices dealt round-robin to k folds."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(k)]
    i = 0
    for c in np.unique(y):
        for j in rng.permutation(np.flatnonzero(y == c)):
            out[i % k].append(int(j))
            i += 1
    return [np.array(sorted(f)) for f in out]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="ItalyPowerDemand")
    p.add_argument("--variants", default="base,noise,ls,swa")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--cv-seeds", default="0")
    p.add_argument("--seeds", default="0,1,2", help="for the test accuracies")
    p.add_argument("--epochs", type=int, default=250)
    p.add_argument("--no-test", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args()
    if a.smoke:
        a.epochs, a.folds, a.seeds = 3, 2, "0"
    torch.set_num_threads(a.threads)
    for name in a.datasets.split(","):
        d = load_ucr(name)
        loc, scale = d.x_train.mean((0, 1)), d.x_train.std((0, 1)) + 1e-8
        x, xt = ((d.x_train - loc) / scale).astype(np.float32), ((d.x_test - loc) / scale).astype(np.float32)
        y, yt, C = d.y_train, d.y_test, len(d.classes)
        for variant in a.variants.split(","):
            start = time.perf_counter()
            cv = []
            for cs in (int(s) for s in a.cv_seeds.split(",")):
                right = 0
                for f in folds(y, a.folds, cs):
                    train = np.setdiff1d(np.arange(len(y)), f)
                    pr = fit_predict(variant, x[train], y[train], x[f], C, cs, a.epochs)
                    right += int((pr.argmax(-1) == y[f]).sum())
                cv.append(right / len(y))
            line = f"{name} {variant:6} CV acc {' '.join(f'{c:.4f}' for c in cv)} ({time.perf_counter() - start:.0f} s)"
            if not a.no_test:
                probs = [fit_predict(variant, x, y, xt, C, s, a.epochs) for s in (int(s) for s in a.seeds.split(","))]
                accs = [float(np.mean(pr.argmax(-1) == yt)) for pr in probs]
                ens = float(np.mean(np.mean(probs, 0).argmax(-1) == yt))
                line += (f" | test {' / '.join(f'{v:.4f}' for v in accs)} mean {np.mean(accs):.4f} sd "
                         f"{np.std(accs, ddof=1) if len(accs) > 1 else 0:.4f} ens {ens:.4f} "
                         f"({time.perf_counter() - start:.0f} s total)")
            print(line, flush=True)


if __name__ == "__main__":
    main()
