"""Regularising noise, in training only: ``SpatialDropout1D``, ``GaussianNoise``, ``GaussianDropout``.

``training=None`` means ``self.training`` (torch's flag), as for ``Dropout``. Shapes and
masks pass through unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from .base import Layer, check_rate
from .conv_utils import check_rank


class _Noise(Layer):
    supports_masking = True

    def __init__(self, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed  # kept for the config; draws come from torch's generator
        self.built = True

    def _active(self, x: Any, training: Optional[bool]) -> bool:
        if not isinstance(x, Tensor):
            raise TypeError(f"Layer {self.name!r} expects a tensor or numpy array, got {type(x).__name__}")
        return self.training if training is None else bool(training)


class SpatialDropout1D(_Noise):
    """Drops whole feature channels for a sequence: one (B, 1, F) mask shared by every step.

    (B, T, F) -> (B, T, F); kept channels are scaled by 1 / (1 - rate).
    """

    def __init__(self, rate: float, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate, "rate")

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if not self._active(x, training) or self.rate == 0:
            return x
        check_rank(self, x, 3, "B, T, F")
        keep = (torch.rand(x.shape[0], 1, x.shape[2], dtype=x.dtype, device=x.device) >= self.rate).to(x.dtype)
        return x * keep / (1.0 - self.rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class GaussianNoise(_Noise):
    """Adds N(0, stddev²) noise to every entry; Keras limits ``stddev`` to [0, 1]."""

    def __init__(self, stddev: float, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not 0.0 <= stddev <= 1.0:
            raise ValueError(f"Received an invalid value for argument `stddev`, expected a number in [0, 1], got {stddev!r}")
        self.stddev = float(stddev)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if not self._active(x, training) or self.stddev == 0:
            return x
        return x + self.stddev * torch.randn_like(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_Noise):
    """Multiplies every entry by 1 + N(0, rate / (1 - rate)) noise (mean-preserving)."""

    def __init__(self, rate: float, seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate, "rate")

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if not self._active(x, training) or self.rate == 0:
            return x
        std = math.sqrt(self.rate / (1.0 - self.rate))
        return x * (1.0 + std * torch.randn_like(x))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


__all__ = ["GaussianDropout", "GaussianNoise", "SpatialDropout1D"]
