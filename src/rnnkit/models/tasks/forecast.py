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


class ForecastTask(Task):
    """The recipe for a window of a series -> the next values; subclasses give the series (``series``)."""

    shape = "many-to-one: a window of values -> the next H values"
    default_cell = "gru"
    default_epochs = 300
    lookback = 12
    steps = "steps"  #: what one step of the series is, for messages

    def series(self, ctx: Context, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The training part of the series (N,), the test part (M,), and extras for ``predict``.

        Test windows start in the training part's last ``lookback`` values, so every target lies in the test part.
        """
        raise NotImplementedError

    def train(self, ctx: Context) -> Run:
        horizon = int(ctx.options.get("horizon") or 3)
        L = int(ctx.options.get("lookback") or self.lookback)
        train_values, test_values, extras = self.series(ctx, L, horizon)
        X, y = make_windows(train_values, L, horizon)
        Xt, yt = make_windows(np.concatenate([train_values[-L:], test_values]), L, horizon)
        train, test = ctx.pick(len(X)), ctx.pick(len(Xt))
        X, y, Xt, yt = X[train], y[train], Xt[test], yt[test]
        ctx.say(f"data: {len(X)} train / {len(Xt)} test windows of {L} values -> {horizon} values ahead")
        model = Forecaster(1, horizon, units=32, cell=ctx.cell, dropout=0.2).adapt(train_values)
        model.compile(optimizers.Adam(3e-3), loss="mse", metrics=["mae"])
        # The last fifth of the training windows picks the epoch to keep.
        stop = EarlyStopping(patience=30, restore_best_weights=True)
        callbacks = [EpochBar(ctx.epochs, self.name), stop] if ctx.verbose else [stop]
        hist = model.fit(X, y, batch_size=16, epochs=ctx.epochs, validation_split=0.2, verbose=0, callbacks=callbacks)
        pred = model.predict(Xt, verbose=0)  # (N, horizon)
        persistence = np.repeat(Xt[:, -1, :], horizon, axis=1)  # the last seen value, repeated
        scores = [Score(f"RMSE, 1-{horizon} {self.steps} ahead", rmse(pred, yt), rmse(persistence, yt),
                        "persistence: the last value repeated", higher_is_better=False)]
        per_step = ", ".join(f"+{h + 1} {rmse(pred[:, h], yt[:, h]):.1f} vs {rmse(persistence[:, h], yt[:, h]):.1f}"
                             for h in range(horizon))
        return Run(model, dict(hist.history), scores, extras={"lookback": L, "horizon": horizon, **extras},
                   notes=[f"RMSE by lead time (model vs persistence): {per_step}"], early_stopping=stop,
                   loss_name="mean squared error (squared data units)")

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        """Inputs: the latest values (at least ``lookback``); none: forecast after the saved series."""
        L = extras["lookback"]
        if inputs:
            try:
                values = [float(v) for item in inputs for v in item.replace(",", " ").split()]
            except ValueError:
                raise ValueError(f"inputs must be numbers (the latest values of the series), got {list(inputs)!r}") from None
            first = None
        else:
            values, first = extras["series"], extras.get("last_year")
        if len(values) < L:
            raise ValueError(f"give at least {L} values (the model reads {L} steps), got {len(values)}")
        window = np.asarray(values[-L:], dtype=np.float32)[None, :, None]  # (1, L, 1)
        pred = model.predict(window, verbose=0)[0]
        if first is None:
            return [f"+{h + 1} {self.steps.rstrip('s')}(s): {v:.4g}" for h, v in enumerate(pred)]
        return [f"{first + 1 + h}: {v:.1f}" for h, v in enumerate(pred)]


class SunspotsTask(ForecastTask):
    name = "sunspots"
    summary = "yearly sunspot numbers, train 1700-1920, test 1921-1987: forecast the next --horizon years (NOAA)"
    shape = "many-to-one: 12 years -> the next H years"
    input_help = "the latest yearly values (none: after 2008)"
    steps = "years"
    needs_inputs = False

    def series(self, ctx: Context, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        d = load_sunspots()
        return d.train, d.test, {"series": [float(v) for v in np.concatenate(d[:3])],
                                 "last_year": int(d.years_extra[-1])}
