r"""Pooling over time, Keras's names and arguments: (B, T, F) -> (B, T', F) or (B, F).

``MaxPooling1D`` / ``AveragePooling1D`` take windows of ``pool_size`` steps every
``strides`` steps (default: ``pool_size``). With ``padding="same"`` the windows at the
edges are partial: a max ignores the padding, and an average divides by the number of
real steps in the window (TensorFlow's rule, which Keras follows).

``GlobalMaxPooling1D`` / ``GlobalAveragePooling1D`` reduce the time axis, skipping
masked steps:

.. math::
    \mathrm{avg}_{b,f} = \frac{\sum_t m_{b,t} x_{b,t,f}}{\sum_t m_{b,t}} \qquad
    \mathrm{max}_{b,f} = \max_{t:\, m_{b,t}} x_{b,t,f}

Differences from Keras 3, on purpose: Keras's ``GlobalMaxPooling1D`` ignores the mask
(padding steps can win the max), and a sequence whose steps are all masked averages to
0/0 = NaN there; here the max skips masked steps as the average does, and an all-masked
sequence pools to 0. Neither layer passes a mask on (the time axis is gone), as in Keras.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Layer, Shape, check_flag
from .conv_utils import (
    check_data_format, check_padding, check_rank, floating, from_channels_first, int_tuple, output_length, pad_spatial,
    padding_amounts, to_channels_first,
)


class _Pooling1D(Layer):
    mode = "max"

    def __init__(self, pool_size: int = 2, strides: Optional[int] = None, padding: str = "valid",
                 data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = int_tuple(pool_size, 1, "pool_size")
        self.strides = int_tuple(self.pool_size if strides is None else strides, 1, "strides")
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format)
        self.built = True

    def _time_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        x = floating(self, check_rank(self, x, 3, "B, T, F"))
        k, s = self.pool_size[0], self.strides[0]
        T = x.shape[self._time_axis()]
        if output_length(T, k, s, 1, self.padding) < 1:
            raise ValueError(f"Layer {self.name!r}: {T} time steps are too few for pool_size={k} with padding='valid'")
        xc = to_channels_first(x, self.data_format)  # (B, F, T)
        pads = [padding_amounts(T, k, s, 1, self.padding)]
        if self.mode == "max":
            y = F.max_pool1d(pad_spatial(xc, pads, value=float("-inf")), k, s)
        else:
            total = F.avg_pool1d(pad_spatial(xc, pads), k, s) * k
            # Keras divides a partial window at the edge by its real steps, not by pool_size.
            count = F.avg_pool1d(pad_spatial(xc.new_ones(1, 1, T), pads), k, s) * k
            y = total / count
        return from_channels_first(y, self.data_format)

    def compute_mask(self, x: Any, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, T, F) (rank 3), got shape {tuple(input_shape)}")
        shape = list(input_shape)
        axis = self._time_axis()
        shape[axis] = output_length(shape[axis], self.pool_size[0], self.strides[0], 1, self.padding)
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(pool_size=self.pool_size[0], strides=self.strides[0], padding=self.padding, data_format=self.data_format)
        return config


class MaxPooling1D(_Pooling1D):
    """Max over windows of ``pool_size`` steps: (B, T, F) -> (B, T', F); T' as in ``Conv1D``."""

    mode = "max"


class AveragePooling1D(_Pooling1D):
    """Mean over windows of ``pool_size`` steps: (B, T, F) -> (B, T', F); T' as in ``Conv1D``."""

    mode = "average"


class _GlobalPooling1D(Layer):
    supports_masking = True

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format)
        self.keepdims = check_flag(keepdims, "keepdims")
        self.built = True

    def _time_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def _mask(self, mask: Any, x: Tensor) -> Optional[Tensor]:
        """(B, T) mask -> broadcastable against x, True on real steps."""
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=x.device)
        expected = (x.shape[0], x.shape[self._time_axis()])
        if tuple(mask.shape) != expected:
            raise ValueError(f"Layer {self.name!r}: `mask` must have shape (B, T) = {expected}, got {tuple(mask.shape)}")
        return mask.bool().unsqueeze(2 if self.data_format == "channels_last" else 1)

    def compute_mask(self, x: Any, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, T, F) (rank 3), got shape {tuple(input_shape)}")
        B = input_shape[0]
        channels = input_shape[2] if self.data_format == "channels_last" else input_shape[1]
        if not self.keepdims:
            return (B, channels)
        return (B, 1, channels) if self.data_format == "channels_last" else (B, channels, 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over the real (unmasked) steps: (B, T, F) -> (B, F), or (B, 1, F) with ``keepdims``."""

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        x = floating(self, check_rank(self, x, 3, "B, T, F"))
        axis, m = self._time_axis(), self._mask(mask, x)
        if m is None:
            return x.mean(dim=axis, keepdim=self.keepdims)
        total = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim=axis, keepdim=self.keepdims)
        count = m.to(x.dtype).sum(dim=axis, keepdim=self.keepdims)
        return total / count.clamp(min=1)  # an all-masked sequence pools to 0, not NaN


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Max over the real (unmasked) steps: (B, T, F) -> (B, F), or (B, 1, F) with ``keepdims``."""

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        x = floating(self, check_rank(self, x, 3, "B, T, F"))
        axis, m = self._time_axis(), self._mask(mask, x)
        if m is None:
            return x.amax(dim=axis, keepdim=self.keepdims)
        lowest = torch.tensor(float("-inf"), dtype=x.dtype, device=x.device)
        y = torch.where(m, x, lowest).amax(dim=axis, keepdim=self.keepdims)
        any_real = m.any(dim=axis, keepdim=self.keepdims)
        return torch.where(any_real, y, torch.zeros((), dtype=x.dtype, device=x.device))


GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D

__all__ = [
    "AveragePooling1D", "AvgPool1D", "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPool1D", "GlobalMaxPooling1D",
    "MaxPool1D", "MaxPooling1D",
]
