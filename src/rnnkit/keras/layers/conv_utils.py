"""Argument checks and output lengths shared by the convolution, pooling and ConvLSTM layers.

Lengths follow Keras (TensorFlow's rules), for an axis of length L, window k,
stride s and dilation d:
    "valid":           out = floor((L - d (k - 1) - 1) / s) + 1
    "same", "causal":  out = ceil(L / s)
"same" pads (out - 1) s + d (k - 1) + 1 - L in all, the odd step on the right;
"causal" pads d (k - 1) on the left only.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

DATA_FORMATS = ("channels_last", "channels_first")


def int_tuple(value: Any, n: int, argument: str, allow_zero: bool = False) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints -> a tuple of ``n`` ints (Keras's standardize_tuple)."""
    values = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(values, (tuple, list)) or len(values) != n:
        raise ValueError(f"Argument `{argument}` must be an integer or a tuple of {n} integers, got {value!r}")
    lowest = 0 if allow_zero else 1
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= lowest for v in values):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"Argument `{argument}` must hold {kind} integers, got {value!r}")
    return tuple(values)


def check_padding(padding: Any, allow_causal: bool = False) -> str:
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    name = padding.lower() if isinstance(padding, str) else padding
    if name not in allowed:
        raise ValueError(f"Received an invalid value for argument `padding`: expected one of {allowed}, got {padding!r}")
    return name


def check_data_format(data_format: Any) -> str:
    if data_format is None:
        return "channels_last"
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"Received an invalid value for argument `data_format`: expected one of {DATA_FORMATS} or None, got {data_format!r}"
        )
    return data_format


def output_length(length: Optional[int], kernel: int, stride: int, dilation: int, padding: str) -> Optional[int]:
    """The output length along one axis, or None if ``length`` is unknown."""
    if length is None:
        return None
    if padding == "valid":
        return (length - dilation * (kernel - 1) - 1) // stride + 1
    return -(-length // stride)


def padding_amounts(length: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(left, right) zero padding that turns ``padding`` into a "valid" window pass."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return dilation * (kernel - 1), 0
    out = output_length(length, kernel, stride, dilation, padding)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - length, 0)  # type: ignore[operator]
    return total // 2, total - total // 2


def pad_spatial(x: Tensor, pads: Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
    """Pad the spatial axes of a channels-first tensor (B, C, S1, ..., Sr); ``pads`` in axis order."""
    flat: list[int] = []
    for left, right in reversed(list(pads)):  # F.pad lists the last axis first
        flat += [left, right]
    if not any(flat):
        return x
    return F.pad(x, flat, value=value)


def to_channels_first(x: Tensor, data_format: str) -> Tensor:
    """(B, S..., C) -> (B, C, S...) for channels_last; channels_first passes through."""
    if data_format == "channels_first":
        return x
    return x.movedim(-1, 1)


def from_channels_first(y: Tensor, data_format: str) -> Tensor:
    if data_format == "channels_first":
        return y
    return y.movedim(1, -1)


def check_rank(layer: Any, x: Any, rank: int, letters: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"Layer {layer.name!r} expects a tensor or numpy array of shape ({letters}), got {type(x).__name__}")
    if x.dim() != rank:
        raise ValueError(f"Layer {layer.name!r} expects inputs of shape ({letters}) (rank {rank}), got shape {tuple(x.shape)}")
    return x


def floating(layer: Any, x: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
    """Keras casts inputs to the layer's dtype; integer inputs become floats."""
    dtype = dtype or (x.dtype if x.is_floating_point() else torch.get_default_dtype())
    return x if x.dtype == dtype else x.to(dtype)


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def convolve(
    x: Tensor,
    kernel: Tensor,
    bias: Optional[Tensor],
    strides: Sequence[int],
    padding: str,
    dilation: Sequence[int],
    groups: int = 1,
) -> Tensor:
    """Keras's convolution on channels-first x (B, C, S...) with a Keras-layout kernel (K..., C / groups, U).

    Cross-correlation, as in Keras and torch; "same" and "causal" pad explicitly, so
    strides and dilations follow TensorFlow's padding rule rather than torch's.
    """
    rank = kernel.dim() - 2
    weight = kernel.permute(rank + 1, rank, *range(rank))  # (U, C / groups, K...)
    sizes = x.shape[2:]
    pads = [padding_amounts(sizes[i], kernel.shape[i], strides[i], dilation[i], padding) for i in range(rank)]
    return _CONV[rank](pad_spatial(x, pads), weight, bias, stride=tuple(strides), dilation=tuple(dilation), groups=groups)
