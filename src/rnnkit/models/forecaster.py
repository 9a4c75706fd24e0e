r"""Many-to-one regression: a window of a series -> the next ``horizon`` values.

Direct multi-step forecasting: one Dense head emits all ``horizon`` values at once
(no feeding back of forecasts), so errors do not compound across the horizon. Cut
the series with ``rnnkit.data.make_windows(series, lookback, horizon)``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.layers import Dense
from ..keras.models import Model
from ._checks import built_dropout, check_cell, check_positive, check_rate, recurrent

__all__ = ["Forecaster"]


class Forecaster(Model):
    r"""x (B, T, F) -> the next ``horizon`` values of the target column, (B, horizon).

    The model standardises inside itself, so it takes and returns data units:

    .. math::
        z_t = (x_t - \mu) / \sigma, \qquad \hat y = \sigma_y \, \mathrm{Dense}(h_T) + \mu_y

    where :math:`\mu, \sigma` (F,) and :math:`\mu_y, \sigma_y` are buffers set by
    ``adapt(train_series)`` (saved with the weights). Before ``adapt`` they are 0 and 1.

    Train with compile/fit and ``loss="mse"``; ``evaluate`` reports data units.
    """

    def __init__(self, input_size: int = 1, horizon: int = 1, *, units: int = 32, cell: str = "lstm",
                 num_layers: int = 1, dropout: float = 0.0, target: int = 0, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.input_size = check_positive(input_size, "input_size")
        self.horizon = check_positive(horizon, "horizon")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell)
        self.num_layers = check_positive(num_layers, "num_layers")
        self.dropout_rate = check_rate(dropout, "dropout")
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < self.input_size:
            raise ValueError(f"Received an invalid value for argument `target`, expected a column in [0, {self.input_size}), "
                             f"got {target!r}")
        self.target = target
        self.register_buffer("loc", torch.zeros(self.input_size))
        self.register_buffer("scale", torch.ones(self.input_size))
        self.rnns = nn.ModuleList([
            recurrent(self.cell, self.units, return_sequences=i < self.num_layers - 1,
                      input_shape=(None, self.input_size if i == 0 else self.units))
            for i in range(self.num_layers)
        ])
        self.drop = built_dropout(self.dropout_rate)
        self.head = Dense(self.horizon, input_dim=self.units)
        self.built = True  # every weight exists already: nothing to build from data

    def adapt(self, series: Any) -> "Forecaster":
        """Set the standardisation from training data: a series (T,) / (T, F) or windows (N, T, F)."""
        a = np.asarray(series, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
        a = a.reshape(-1, a.shape[-1])
        if a.shape[-1] != self.input_size:
            raise ValueError(f"`series` has {a.shape[-1]} features, the model was made for input_size={self.input_size}")
        if not np.isfinite(a).all():
            raise ValueError("`series` holds NaN or inf values")
        std = a.std(0)
        with torch.no_grad():
            self.loc.copy_(torch.as_tensor(a.mean(0)))
            self.scale.copy_(torch.as_tensor(np.where(std > 0, std, 1.0)))
        return self

    def call(self, inputs: Tensor, training: Optional[bool] = None) -> Tensor:
        """(B, T, F) (or (B, T) when F = 1) in data units -> (B, horizon) in data units."""
        if inputs.dim() == 2 and self.input_size == 1:
            inputs = inputs.unsqueeze(-1)
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes windows of shape (B, T, {self.input_size}); "
                             f"got shape {tuple(inputs.shape)}")
        h = (inputs - self.loc) / self.scale  # (B, T, F), standardised
        for layer in self.rnns:
            h = layer(h, training=training)  # (B, T, H), then (B, H)
        z = self.head(self.drop(h, training=training))  # (B, horizon), standardised units
        return z * self.scale[self.target] + self.loc[self.target]

    def get_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "horizon": self.horizon, "units": self.units, "cell": self.cell,
                "num_layers": self.num_layers, "dropout": self.dropout_rate, "target": self.target, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Forecaster":
        return cls(**config)
