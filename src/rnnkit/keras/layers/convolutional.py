r"""Keras's ``Conv1D``: the convolution of CNN-LSTM and LSTM-FCN models, batch-first (B, T, F).

.. math::
    y_{b,t,u} = \mathrm{act}\Big(\sum_{j<K} \sum_{f} x_{b,\,t s + j d - p,\,f}\, W_{j,f,u} + b_u\Big)

with stride s, dilation d and left padding p (zero outside the sequence); see
``conv_utils`` for the lengths. Masks are not carried through (Keras 3's ``Conv1D``
drops them too): the layer mixes neighbouring steps, so a step mask no longer applies.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ...cells.cell import check_positive_int
from .activations import ActivationLike, activation_name, get_activation
from .base import Layer, Shape, check_flag
from .conv_utils import (
    check_data_format, check_padding, check_rank, convolve, floating, from_channels_first, int_tuple, output_length,
    to_channels_first,
)
from .initializers import check_initializer, initialize

IntOrTuple = Union[int, Sequence[int]]


class Conv1D(Layer):
    """1D convolution over time: (B, T, F) -> (B, T', U), Keras's arguments and defaults.

    Args:
        filters: U, the number of output channels.
        kernel_size: K, the window length.
        strides: step between windows (strides > 1 excludes dilation_rate > 1, as in Keras).
        padding: "valid" (no padding), "same" (T' = ceil(T / strides)), or "causal"
            (pad d (K - 1) steps on the left, so y_t sees no x after t).
        data_format: "channels_last" (B, T, F), the default, or "channels_first" (B, F, T).
        dilation_rate: d, the spacing between the taps of a window.
        groups: split the F input channels into groups convolved separately; F and U
            must both be divisible by it.
        activation: a Keras activation name, a callable, or None (linear).
        use_bias, kernel_initializer, bias_initializer: as in ``Dense``.

    Weights in Keras layout: kernel (K, F / groups, U), bias (U,).
    Parameters: K (F / groups) U + U.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = 1,
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: IntOrTuple = 1,
        groups: int = 1,
        activation: ActivationLike = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = int_tuple(kernel_size, 1, "kernel_size")
        self.strides = int_tuple(strides, 1, "strides")
        self.padding = check_padding(padding, allow_causal=True)
        self.data_format = check_data_format(data_format)
        self.dilation_rate = int_tuple(dilation_rate, 1, "dilation_rate")
        self.groups = check_positive_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"Argument `filters` ({self.filters}) must be divisible by `groups` ({self.groups})")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"Arguments `strides` > 1 and `dilation_rate` > 1 cannot be combined (as in Keras), got "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.activation = activation
        self._act = get_activation(activation)
        self.use_bias = check_flag(use_bias, "use_bias")
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer")
        self.kernel: Optional[nn.Parameter] = None
        self.bias: Optional[nn.Parameter] = None
        self._build_declared()

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, T, F) (rank 3), got shape {tuple(input_shape)}")
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(f"Layer {self.name!r} needs a known number of input channels F, got shape {tuple(input_shape)}")
        if channels % self.groups:
            raise ValueError(
                f"Layer {self.name!r}: the input's {channels} channels must be divisible by `groups` ({self.groups})"
            )
        self.kernel = nn.Parameter(torch.empty(self.kernel_size[0], channels // self.groups, self.filters, dtype=self.weight_dtype))
        self.bias = nn.Parameter(torch.empty(self.filters, dtype=self.weight_dtype)) if self.use_bias else None
        self.built = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        initialize(self.kernel.data, self.kernel_initializer)
        if self.bias is not None:
            initialize(self.bias.data, self.bias_initializer)

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        k = state_dict.get(prefix + "kernel")
        if k is None:
            return None
        channels = int(k.shape[1]) * self.groups
        return (None, None, channels) if self.data_format == "channels_last" else (None, channels, None)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        x = floating(self, check_rank(self, x, 3, "B, T, F"), self.kernel.dtype)
        channels = self.kernel.shape[1] * self.groups
        if x.shape[self._channel_axis] != channels:
            raise ValueError(f"Layer {self.name!r} was built for {channels} input channels, got shape {tuple(x.shape)}")
        T = x.shape[1 if self.data_format == "channels_last" else 2]
        if output_length(T, self.kernel_size[0], self.strides[0], self.dilation_rate[0], self.padding) < 1:
            raise ValueError(
                f"Layer {self.name!r}: {T} time steps are too few for kernel_size={self.kernel_size[0]}, "
                f"dilation_rate={self.dilation_rate[0]} with padding='valid'"
            )
        y = convolve(to_channels_first(x, self.data_format), self.kernel, self.bias, self.strides, self.padding,
                     self.dilation_rate, self.groups)  # (B, U, T')
        return self._act(from_channels_first(y, self.data_format))

    def compute_mask(self, x: Any, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, T, F) (rank 3), got shape {tuple(input_shape)}")
        if self.data_format == "channels_last":
            B, T, _ = input_shape
            return (B, output_length(T, self.kernel_size[0], self.strides[0], self.dilation_rate[0], self.padding), self.filters)
        B, _, T = input_shape
        return (B, self.filters, output_length(T, self.kernel_size[0], self.strides[0], self.dilation_rate[0], self.padding))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=list(self.kernel_size), strides=list(self.strides), padding=self.padding,
            data_format=self.data_format, dilation_rate=list(self.dilation_rate), groups=self.groups,
            activation=activation_name(self.activation), use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer, bias_initializer=self.bias_initializer,
        )
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, filters={self.filters}, kernel_size={self.kernel_size[0]}, padding={self.padding!r}"


__all__ = ["Conv1D"]
