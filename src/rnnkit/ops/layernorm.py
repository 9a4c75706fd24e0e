"""Layer normalisation over the last axis, split into normalise / backward.

The gain and shift are applied by the caller so that their gradients can be
summed over all time steps at once (see ``engine``).
"""

from __future__ import annotations

import torch
from torch import Tensor

LN_EPS = 1e-5


def normalize(a: Tensor, eps: float = LN_EPS) -> tuple[Tensor, Tensor]:
    """Return ``(a_hat, rstd)`` with ``a_hat = (a - mean) * rstd`` over the last axis."""
    var, mean = torch.var_mean(a, dim=-1, keepdim=True, unbiased=False)
    rstd = torch.rsqrt(var + eps)
    return (a - mean) * rstd, rstd


def normalize_backward(d_ahat: Tensor, a_hat: Tensor, rstd: Tensor) -> Tensor:
    """Gradient through ``normalize``: da = rstd (g - mean(g) - a_hat mean(g a_hat))."""
    mean_g = d_ahat.mean(dim=-1, keepdim=True)
    mean_ga = (d_ahat * a_hat).mean(dim=-1, keepdim=True)
    return rstd * (d_ahat - mean_g - a_hat * mean_ga)
