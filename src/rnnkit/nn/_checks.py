"""Argument checks shared by the torch.nn-style modules and cells.

Every error names the argument and what was expected, in the same words as the
rest of rnnkit ("Received an invalid value for argument `x`, expected ...").
"""

from __future__ import annotations

import numbers
from typing import Optional

import torch
from torch import Tensor

from ..cells.cell import check_positive_int as check_positive_int


def check_bool(value: object, argument: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Argument `{argument}` must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_rate(value: object, argument: str, *, allow_one: bool) -> float:
    """A probability in [0, 1] (``allow_one``) or [0, 1)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (0.0 <= float(value) <= 1.0 if allow_one else 0.0 <= float(value) < 1.0)  # type: ignore[arg-type]
    if not ok:
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a number in {interval}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_nonlinearity(value: object) -> str:
    if value not in ("tanh", "relu"):
        raise ValueError(f"Received an invalid value for argument `nonlinearity`, expected 'tanh' or 'relu', got {value!r}")
    return value  # type: ignore[return-value]


def check_tbptt(value: object) -> Optional[int]:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"Received an invalid value for argument `tbptt`, expected a positive integer or None, got {value!r}")
    return value  # type: ignore[return-value]


def check_float_tensor(x: object, argument: str, layout: str, dtype: torch.dtype) -> Tensor:
    """``x`` must be a floating tensor of the module's dtype; ``layout`` names the expected shape."""
    if not isinstance(x, Tensor):
        raise TypeError(f"Argument `{argument}` must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"Argument `{argument}` must be a floating-point tensor, got dtype {x.dtype}")
    if x.dtype != dtype:
        raise TypeError(
            f"Argument `{argument}` has dtype {x.dtype} but the module's weights are {dtype}; "
            f"convert the input (`{argument}.to({dtype})`) or the module (`module.to({x.dtype})`)"
        )
    return x


def check_features(x: Tensor, argument: str, layout: str, input_size: int) -> None:
    if x.shape[-1] != input_size:
        raise ValueError(
            f"Argument `{argument}` must have {layout} with F = input_size = {input_size} features "
            f"in its last axis, got shape {tuple(x.shape)}"
        )


def check_state_shape(s: object, argument: str, layout: str, expected: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """An initial state must be a tensor of exactly ``expected`` shape and the input's dtype."""
    if not isinstance(s, Tensor):
        raise TypeError(f"Argument `{argument}` must be a torch.Tensor of shape {layout} = {expected}, got {type(s).__name__}")
    if tuple(s.shape) != expected:
        raise ValueError(f"Argument `{argument}` must have shape {layout} = {expected}, got {tuple(s.shape)}")
    if s.dtype != dtype:
        raise TypeError(f"Argument `{argument}` must have the input's dtype {dtype}, got {s.dtype}")
    return s
