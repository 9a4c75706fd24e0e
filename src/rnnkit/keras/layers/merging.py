"""Keras's merge layers: one output from a list of tensors.

    layer([x1, x2, ...], mask=[m1, m2, ...] or None) -> y
    layer.compute_mask([x1, x2, ...], [m1, m2, ...]) -> the output mask

As in Keras 3:
    - ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum`` act
      elementwise with broadcasting; an input of lower rank gets size-1 axes inserted
      after the batch axis first.
    - the output mask is the OR of the input masks when every input has one, else None
      (``Dot``: always None; ``Concatenate``: see its docstring).
    - ``Maximum``/``Minimum`` take, where one input is masked, the other's value;
      ``Multiply`` treats a masked input as 1 and zeroes the steps every input masks.
      ``Add``, ``Subtract`` and ``Average`` ignore the masks in their values.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from .base import Layer, Shape

Masks = Optional[Sequence[Optional[Tensor]]]


class _Merge(Layer):
    """Shared front of the merge layers: list checks, shape inference, mask merging."""

    supports_masking = True
    min_inputs = 1
    max_inputs: Optional[int] = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.built = True

    # ------------------------------------------------------------------ checks

    def _check_list(self, items: Any, what: str) -> list:
        if not isinstance(items, (list, tuple)):
            raise TypeError(f"Layer {self.name!r} ({type(self).__name__}) expects a list of {what}, got {type(items).__name__}")
        n = len(items)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            expected = (f"exactly {self.min_inputs}" if self.min_inputs == self.max_inputs
                        else f"at least {self.min_inputs}")
            raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) expects {expected} {what}, got {n}")
        return list(items)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = [self._to_tensor(x) for x in self._check_list(inputs, "input tensors")]
        for i, x in enumerate(inputs):
            if not isinstance(x, Tensor):
                raise TypeError(f"Layer {self.name!r}: input {i} must be a tensor or numpy array, got {type(x).__name__}")
        batch = {x.shape[0] for x in inputs if x.dim()}
        if len(batch) > 1 or any(x.dim() == 0 for x in inputs):
            raise ValueError(
                f"Layer {self.name!r}: every input needs the same batch size B on axis 0, got shapes {[tuple(x.shape) for x in inputs]}"
            )
        return super().__call__(inputs, *args, **kwargs)

    def _check_masks(self, mask: Masks, inputs: list[Tensor]) -> list[Optional[Tensor]]:
        if mask is None:
            return [None] * len(inputs)
        if isinstance(mask, Tensor) or not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(
                f"Layer {self.name!r}: `mask` must be a list with one mask (or None) per input ({len(inputs)}), got {mask!r}"
            )
        out = []
        for i, (m, x) in enumerate(zip(mask, inputs)):
            if m is not None:
                m = torch.as_tensor(m, device=x.device).bool()
                if m.dim() > x.dim() or tuple(m.shape) != tuple(x.shape[: m.dim()]):
                    raise ValueError(
                        f"Layer {self.name!r}: `mask[{i}]` of shape {tuple(m.shape)} does not match input {i} of shape {tuple(x.shape)}"
                    )
            out.append(m)
        return out

    # ------------------------------------------------------------------ shapes

    @staticmethod
    def _broadcast(shape1: Shape, shape2: Shape, name: str) -> Shape:
        """Keras's elementwise output shape (non-batch axes, aligned on the right)."""
        if len(shape1) < len(shape2):
            shape1, shape2 = shape2, shape1
        out = list(shape1[: len(shape1) - len(shape2)])
        for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
            if i is None or j is None:
                out.append(None)
            elif i == 1 or j == 1 or i == j:
                out.append(j if i == 1 else i)
            else:
                raise ValueError(f"Layer {name!r}: inputs have incompatible shapes {tuple(shape1)} and {tuple(shape2)}")
        return tuple(out)

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:  # type: ignore[override]
        shapes = [tuple(s) for s in self._check_list(input_shape, "input shapes")]
        out = shapes[0][1:]
        for s in shapes[1:]:
            out = self._broadcast(out, s[1:], self.name)
        batch = {s[0] for s in shapes} - {None}
        return (batch.pop() if len(batch) == 1 else None, *out)

    # ------------------------------------------------------------------ masks

    def compute_mask(self, inputs: Any, mask: Masks = None) -> Optional[Tensor]:
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(f"Layer {self.name!r}: `mask` must be a list with one mask (or None) per input, got {mask!r}")
        if any(m is None for m in mask):
            return None
        out = torch.as_tensor(mask[0]).bool()
        for m in mask[1:]:
            out = out | torch.as_tensor(m).bool()
        return out

    # ------------------------------------------------------------------ values

    def _aligned(self, inputs: list[Tensor]) -> list[Tensor]:
        """Inputs of lower rank get size-1 axes after the batch axis (Keras's reshape rule)."""
        rank = max(x.dim() for x in inputs)
        out = []
        for x in inputs:
            while x.dim() < rank:
                x = x.unsqueeze(1)
            out.append(x)
        return out

    def forward(self, inputs: list[Tensor], mask: Masks = None, training: Optional[bool] = None) -> Tensor:
        masks = self._check_masks(mask, inputs)
        inputs = self._aligned(inputs)
        dtype = torch.promote_types(inputs[0].dtype, inputs[0].dtype)
        for x in inputs[1:]:
            dtype = torch.promote_types(dtype, x.dtype)
        try:
            torch.broadcast_shapes(*(tuple(x.shape) for x in inputs))
        except RuntimeError:
            raise ValueError(
                f"Layer {self.name!r}: inputs have incompatible shapes {[tuple(x.shape) for x in inputs]}"
            ) from None
        return self.merge([x.to(dtype) for x in inputs], masks)

    def merge(self, inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
        raise NotImplementedError


def _expand(mask: Optional[Tensor], x: Tensor) -> Optional[Tensor]:
    """A (B, T) mask broadcast against x (B, T, ...)."""
    if mask is None:
        return None
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    return mask.expand_as(x)


def _masked_fold(op: Callable[[Tensor, Tensor], Tensor], inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
    """Keras's fold for Maximum/Minimum: a masked entry takes the other operand's value."""
    output, out_mask = inputs[0], _expand(masks[0], inputs[0])
    for x, m in zip(inputs[1:], masks[1:]):
        m = _expand(m, x)
        if m is not None:
            x = torch.where(m, x, output)
        if out_mask is not None:
            output = torch.where(out_mask, output, x)
        out_mask = out_mask | m if out_mask is not None and m is not None else None
        output = op(output, x)
    return output


class Add(_Merge):
    """Elementwise sum of the inputs (same shapes, or broadcastable)."""

    def merge(self, inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


class Subtract(_Merge):
    """x1 - x2, for exactly two inputs."""

    min_inputs = max_inputs = 2

    def merge(self, inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
        return inputs[0] - inputs[1]


class Multiply(_Merge):
    """Elementwise product; a masked input counts as 1, and steps masked in every input are 0."""

    def merge(self, inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
        all_masked = all(m is not None for m in masks)
        out, out_mask = None, None
        for x, m in zip(inputs, masks):
            m = _expand(m, x)
            if m is not None:
                x = torch.where(m, x, torch.ones((), dtype=x.dtype, device=x.device))
                if all_masked:
                    out_mask = m if out_mask is None else out_mask | m
            out = x if out is None else out * x
        if out_mask is not None:
            out = torch.where(out_mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
        return out


class Average(_Merge):
    """Elementwise mean of the inputs."""

    def merge(self, inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out / len(inputs)


class Maximum(_Merge):
    """Elementwise maximum; where an input is masked the others decide."""

    def merge(self, inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
        return _masked_fold(torch.maximum, inputs, masks)


class Minimum(_Merge):
    """Elementwise minimum; where an input is masked the others decide."""

    def merge(self, inputs: list[Tensor], masks: list[Optional[Tensor]]) -> Tensor:
        return _masked_fold(torch.minimum, inputs, masks)


class Concatenate(_Merge):
    """Joins the inputs along ``axis`` (default -1, the features); other axes must match.

    Mask (Keras's rule): each input's mask is broadcast to its shape (an input without
    a mask counts as all True), the masks are joined along ``axis``, and a position of
    the result is real if any feature there is: (B, T) for (B, T, F) inputs. So with
    ``axis=-1`` it is the OR of the masks, and with ``axis=1`` (time) the masks follow
    one another.
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"Argument `axis` must be an integer, got {axis!r}")
        self.axis = axis

    def _check_axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"Layer {self.name!r}: `axis`={self.axis} must name a non-batch axis of rank-{rank} inputs")
        return self.axis % rank

    def forward(self, inputs: list[Tensor], mask: Masks = None, training: Optional[bool] = None) -> Tensor:
        self._check_masks(mask, inputs)
        ranks = {x.dim() for x in inputs}
        if len(ranks) != 1:
            raise ValueError(f"Layer {self.name!r}: every input must have the same rank, got shapes {[tuple(x.shape) for x in inputs]}")
        axis = self._check_axis(ranks.pop())
        shapes = [tuple(x.shape[:axis] + x.shape[axis + 1:]) for x in inputs]
        if len(set(shapes)) != 1:
            raise ValueError(
                f"Layer {self.name!r}: inputs must match on every axis but `axis`={self.axis}, got shapes {[tuple(x.shape) for x in inputs]}"
            )
        dtype = inputs[0].dtype
        for x in inputs[1:]:
            dtype = torch.promote_types(dtype, x.dtype)
        return torch.cat([x.to(dtype) for x in inputs], dim=axis)

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:  # type: ignore[override]
        shapes = [tuple(s) for s in self._check_list(input_shape, "input shapes")]
        axis = self._check_axis(len(shapes[0]))
        out = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != len(out):
                raise ValueError(f"Layer {self.name!r}: every input must have the same rank, got shapes {shapes}")
            out[axis] = None if out[axis] is None or s[axis] is None else out[axis] + s[axis]
            for i, (a, b) in enumerate(zip(out, s)):
                if i != axis and a is not None and b is not None and a != b:
                    raise ValueError(f"Layer {self.name!r}: inputs must match on every axis but `axis`={self.axis}, got shapes {shapes}")
                if i != axis and a is None:
                    out[i] = b
        return tuple(out)

    def compute_mask(self, inputs: Any, mask: Masks = None) -> Optional[Tensor]:
        if mask is None or all(m is None for m in mask):
            return None
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(f"Layer {self.name!r}: `mask` must be a list with one mask (or None) per input, got {mask!r}")
        full = []
        for x, m in zip(inputs, mask):
            x = torch.as_tensor(x)
            if m is None:
                full.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
            else:
                full.append(_expand(torch.as_tensor(m, device=x.device).bool(), x))
        return torch.cat(full, dim=self._check_axis(full[0].dim())).any(dim=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """Batchwise dot product of two inputs along ``axes`` (Keras's ``batch_dot``).

    ``axes``: an int (the same axis of both) or (axis of x1, axis of x2); never 0 (the batch).
    The result keeps x1's other axes, then x2's; (B, F)·(B, F) -> (B, 1). E.g.
    (B, Tq, F)·(B, Tv, F) with axes=2 -> (B, Tq, Tv), the scores of dot attention.
    ``normalize``: L2-normalise both along their axis first, giving cosine similarity.
    The output has no mask.
    """

    min_inputs = max_inputs = 2

    def __init__(self, axes: Union[int, Sequence[int]], normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        ok = isinstance(axes, int) and not isinstance(axes, bool)
        ok = ok or (isinstance(axes, (list, tuple)) and len(axes) == 2
                    and all(isinstance(a, int) and not isinstance(a, bool) for a in axes))
        if not ok:
            raise ValueError(f"Argument `axes` must be an integer or a pair of integers, got {axes!r}")
        if not isinstance(normalize, bool):
            raise TypeError(f"Argument `normalize` must be a bool, got {normalize!r}")
        self.axes = axes if isinstance(axes, int) else tuple(axes)
        self.normalize = normalize

    def _axes(self, rank1: int, rank2: int) -> tuple[int, int]:
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        out = []
        for a, rank in zip(pair, (rank1, rank2)):
            if not -rank <= a < rank or a % rank == 0:
                raise ValueError(f"Layer {self.name!r}: `axes`={self.axes} must name non-batch axes of inputs of rank {rank1} and {rank2}")
            out.append(a % rank)
        return out[0], out[1]

    def forward(self, inputs: list[Tensor], mask: Masks = None, training: Optional[bool] = None) -> Tensor:
        x, y = inputs
        if x.dim() < 2 or y.dim() < 2:
            raise ValueError(f"Layer {self.name!r} expects inputs of rank >= 2, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        a, b = self._axes(x.dim(), y.dim())
        if x.shape[a] != y.shape[b]:
            raise ValueError(
                f"Layer {self.name!r}: x1.shape[{a}] = {x.shape[a]} must equal x2.shape[{b}] = {y.shape[b]} "
                f"(shapes {tuple(x.shape)} and {tuple(y.shape)})"
            )
        dtype = torch.promote_types(x.dtype, y.dtype)
        x, y = x.to(dtype), y.to(dtype)
        if self.normalize:
            x, y = _l2_normalize(x, a), _l2_normalize(y, b)
        xm = x.movedim(a, -1)  # (B, Mx..., K)
        ym = y.movedim(b, 1)  # (B, K, My...)
        rest_x, rest_y = xm.shape[1:-1], ym.shape[2:]
        out = torch.bmm(xm.reshape(x.shape[0], -1, x.shape[a]), ym.reshape(y.shape[0], y.shape[b], -1))
        out = out.reshape(x.shape[0], *rest_x, *rest_y)
        return out.unsqueeze(1) if out.dim() == 1 else out

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:  # type: ignore[override]
        s1, s2 = [list(s) for s in self._check_list(input_shape, "input shapes")]
        a, b = self._axes(len(s1), len(s2))
        if s1[a] is not None and s2[b] is not None and s1[a] != s2[b]:
            raise ValueError(f"Layer {self.name!r}: incompatible shapes {tuple(s1)} and {tuple(s2)} for axes {self.axes}")
        s1.pop(a)
        s2.pop(b)
        out = s1 + s2[1:]
        return tuple(out + [1]) if len(out) == 1 else tuple(out)

    def compute_mask(self, inputs: Any, mask: Masks = None) -> Optional[Tensor]:
        return None

    def get_config(self) -> dict[str, Any]:
        axes = self.axes if isinstance(self.axes, int) else list(self.axes)
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}


def _l2_normalize(x: Tensor, axis: int, epsilon: float = 1e-7) -> Tensor:
    """Keras's ``ops.normalize``: x / max(||x||, epsilon) along ``axis``."""
    inv = torch.rsqrt((x * x).sum(dim=axis, keepdim=True)).clamp(max=1.0 / epsilon)
    return x * inv


__all__ = ["Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract"]
