"""Keras's shape layers: ``ZeroPadding1D``, ``Cropping1D``, ``UpSampling1D``, ``Reshape``, ``Permute``.

The batch axis is never touched. As in Keras 3, none of these passes a mask on:
they move or resize the time axis, so the input's (B, T) mask would no longer line up.
(``Flatten`` and ``RepeatVector`` live in ``core``.)
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor

from ...cells.cell import check_positive_int
from .base import Layer, Shape
from .conv_utils import check_data_format, check_rank, int_tuple


class _ShapeLayer(Layer):
    """A layer without weights, built at construction."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.built = True

    def compute_mask(self, x: Any, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return None


class ZeroPadding1D(_ShapeLayer):
    """Zero steps added at the start and end of the time axis: (B, T, F) -> (B, left + T + right, F).

    ``padding``: an int (both sides) or (left, right).
    """

    def __init__(self, padding: Union[int, Sequence[int]] = 1, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = int_tuple(padding, 2, "padding", allow_zero=True)
        self.data_format = check_data_format(data_format)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        check_rank(self, x, 3, "B, T, F")
        left, right = self.padding
        if self.data_format == "channels_first":
            return F.pad(x, (left, right))
        return F.pad(x, (0, 0, left, right))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = list(input_shape)
        axis = 1 if self.data_format == "channels_last" else 2
        if shape[axis] is not None:
            shape[axis] += sum(self.padding)
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": list(self.padding), "data_format": self.data_format}


class Cropping1D(_ShapeLayer):
    """Steps removed from the start and end of the time axis: (B, T, F) -> (B, T - left - right, F).

    ``cropping``: an int (both sides) or (left, right); at least one step must remain.
    """

    def __init__(self, cropping: Union[int, Sequence[int]] = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = int_tuple(cropping, 2, "cropping", allow_zero=True)

    def _check_length(self, T: Optional[int]) -> None:
        if T is not None and sum(self.cropping) >= T:
            raise ValueError(
                f"Layer {self.name!r}: `cropping` {self.cropping} must leave at least one of the {T} time steps"
            )

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        check_rank(self, x, 3, "B, T, F")
        self._check_length(x.shape[1])
        left, right = self.cropping
        return x[:, left : x.shape[1] - right]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        B, T, feat = input_shape
        self._check_length(T)
        return (B, None if T is None else T - sum(self.cropping), feat)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cropping": list(self.cropping)}


class UpSampling1D(_ShapeLayer):
    """Each step repeated ``size`` times: (B, T, F) -> (B, size T, F)."""

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = check_positive_int(size, "size")

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        check_rank(self, x, 3, "B, T, F")
        return x.repeat_interleave(self.size, dim=1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        B, T, feat = input_shape
        return (B, None if T is None else self.size * T, feat)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size}


class Reshape(_ShapeLayer):
    """(B, ...) -> (B, *target_shape); one entry of ``target_shape`` may be -1 (inferred)."""

    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(target_shape, int):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1) for d in target_shape
        ) or list(target_shape).count(-1) > 1:
            raise ValueError(
                f"Argument `target_shape` must be a tuple of positive integers with at most one -1, got {target_shape!r}"
            )
        self.target_shape = tuple(target_shape)

    def _resolve(self, input_shape: Shape) -> Shape:
        """The target shape with -1 filled in where the input's size is known."""
        size = None if any(d is None for d in input_shape[1:]) else math.prod(input_shape[1:])  # type: ignore[arg-type]
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 not in self.target_shape:
            if size is not None and size != known:
                raise ValueError(
                    f"Layer {self.name!r}: cannot reshape inputs of shape {tuple(input_shape)} ({size} values per sample) "
                    f"to `target_shape` {self.target_shape} ({known} values)"
                )
            return self.target_shape
        if size is None:
            return tuple(None if d == -1 else d for d in self.target_shape)
        if size % known:
            raise ValueError(
                f"Layer {self.name!r}: cannot reshape inputs of shape {tuple(input_shape)} ({size} values per sample) "
                f"to `target_shape` {self.target_shape}: {size} is not divisible by {known}"
            )
        return tuple(size // known if d == -1 else d for d in self.target_shape)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise ValueError(f"Layer {self.name!r} expects a tensor with a batch axis, got {x!r}")
        return x.reshape(x.shape[0], *self._resolve(tuple(x.shape)))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], *self._resolve(tuple(input_shape)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Permute(_ShapeLayer):
    """Reorders the non-batch axes: ``dims`` is a permutation of 1..n, e.g. (2, 1): (B, T, F) -> (B, F, T)."""

    def __init__(self, dims: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(dims, (tuple, list)) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Argument `dims` must be a permutation of 1..n (the non-batch axes), got {dims!r}")
        self.dims = tuple(dims)

    def _check(self, shape: Shape) -> None:
        if len(shape) != len(self.dims) + 1:
            raise ValueError(
                f"Layer {self.name!r} with dims={self.dims} expects inputs of rank {len(self.dims) + 1}, got shape {tuple(shape)}"
            )

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        self._check(tuple(x.shape))
        return x.permute(0, *self.dims)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check(tuple(input_shape))
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dims": list(self.dims)}


__all__ = ["Cropping1D", "Permute", "Reshape", "UpSampling1D", "ZeroPadding1D"]
