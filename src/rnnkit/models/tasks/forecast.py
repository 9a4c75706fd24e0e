"""Many-to-one regression recipe: forecast yearly sunspot numbers several years ahead."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from torch import nn

from ...keras import optimizers
from ...keras.callbacks import EarlyStopping
from ...data import make_windows
from ...datasets import load_sunspots
from ..forecaster import Forecaster
from .base import Context, EpochBar, Run, Score, Task


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


class SunspotsTask(Task):
    name = "sunspots"
    summary = "yearly sunspot numbers, train 1700-1920, test 1921-1987: forecast the next --horizon years (NOAA)"
    shape = "many-to-one: 12 years -> the next H years"
    default_cell = "gru"
    default_epochs = 300
    lookback = 12

    def train(self, ctx: Context) -> Run:
        horizon = int(ctx.options.get("horizon") or 3)
        d = load_sunspots()
        L = self.lookback
        X, y = make_windows(d.train, L, horizon)
        # Test windows may start in the training years; every target year lies in 1921-1987.
        Xt, yt = make_windows(np.concatenate([d.train[-L:], d.test]), L, horizon)
        train, test = ctx.pick(len(X)), ctx.pick(len(Xt))
        X, y, Xt, yt = X[train], y[train], Xt[test], yt[test]
        ctx.say(f"data: {len(X)} train / {len(Xt)} test windows of {L} years -> {horizon} years ahead")
        model = Forecaster(1, horizon, units=32, cell=ctx.cell, dropout=0.2).adapt(d.train)
        model.compile(optimizers.Adam(3e-3), loss="mse", metrics=["mae"])
        # The last fifth of the training windows (1880s-1910s) picks the epoch to keep.
        callbacks = [EarlyStopping(patience=30, restore_best_weights=True)]
        if ctx.verbose:
            callbacks.insert(0, EpochBar(ctx.epochs, "sunspots"))
        hist = model.fit(X, y, batch_size=16, epochs=ctx.epochs, validation_split=0.2, verbose=0, callbacks=callbacks)
        pred = model.predict(Xt, verbose=0)  # (N, horizon)
        persistence = np.repeat(Xt[:, -1, :], horizon, axis=1)  # the last seen year, repeated
        scores = [Score(f"RMSE, 1-{horizon} years ahead", rmse(pred, yt), rmse(persistence, yt),
                        "persistence: the last year repeated", higher_is_better=False)]
        per_step = ", ".join(f"{h + 1}y {rmse(pred[:, h], yt[:, h]):.1f} vs {rmse(persistence[:, h], yt[:, h]):.1f}"
                             for h in range(horizon))
        extras = {"lookback": L, "horizon": horizon, "series": [float(v) for v in np.concatenate(d[:3])],
                  "last_year": int(d.years_extra[-1])}
        return Run(model, dict(hist.history), scores, extras=extras,
                   notes=[f"RMSE by lead time (model vs persistence): {per_step}"])

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        """Inputs: the latest yearly values (at least ``lookback``); none: forecast after 2008."""
        L = extras["lookback"]
        if inputs:
            try:
                values = [float(v) for item in inputs for v in item.replace(",", " ").split()]
            except ValueError:
                raise ValueError(f"inputs must be numbers (the latest yearly sunspot values), got {list(inputs)!r}") from None
            first = None
        else:
            values, first = extras["series"], extras["last_year"] + 1
        if len(values) < L:
            raise ValueError(f"give at least {L} yearly values (the model reads {L} years), got {len(values)}")
        window = np.asarray(values[-L:], dtype=np.float32)[None, :, None]  # (1, L, 1)
        pred = model.predict(window, verbose=0)[0]
        if first is None:
            return [f"+{h + 1} year(s): {v:.1f}" for h, v in enumerate(pred)]
        return [f"{first + h}: {v:.1f}" for h, v in enumerate(pred)]
