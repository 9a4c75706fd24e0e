"""Random masks for recurrent dropout and zoneout, drawn once per call.

Recurrent dropout is variational (Gal & Ghahramani 2016): one mask per sequence,
reused at every step. Zoneout (Krueger et al. 2017) draws a fresh keep-mask per
step and unit; at inference it keeps the expected value, a fixed mix of old and new.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def _check_rate(rate: float, argument: str) -> None:
    if not (0.0 <= float(rate) < 1.0):
        raise ValueError(f"Argument `{argument}` must be a rate in [0, 1), got {rate!r}")


def recurrent_dropout_mask(
    B: int, P: int, rate: float, *, like: Tensor, generator: Optional[torch.Generator] = None
) -> Optional[Tensor]:
    """(B, P) inverted-dropout mask (kept units scaled by 1/(1-rate)), or None if rate == 0."""
    _check_rate(rate, "recurrent_dropout")
    if rate == 0:
        return None
    keep = torch.rand(B, P, generator=generator, dtype=like.dtype, device=like.device) >= rate
    return keep.to(like.dtype) / (1.0 - rate)


def zoneout_keep(
    B: int, T: int, n: int, rate: float, training: bool, *, like: Tensor, generator: Optional[torch.Generator] = None
) -> Optional[Tensor]:
    """(B, T, n) probability of keeping each unit's previous value, or None if rate == 0."""
    _check_rate(rate, "zoneout")
    if rate == 0:
        return None
    if not training:
        return like.new_full((1, 1, 1), rate).expand(B, T, n)
    return (torch.rand(B, T, n, generator=generator, dtype=like.dtype, device=like.device) < rate).to(like.dtype)
