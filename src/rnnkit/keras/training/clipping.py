"""Gradient norms and Keras's three clipping rules, applied in place before a step.

    clipnorm        each parameter's gradient g <- g * c / max(||g||, c)
    global_clipnorm all gradients   g <- g * c / max(||G||, c),  ||G|| = sqrt(sum ||g||^2)
    clipvalue       each element    g <- clamp(g, -c, c)
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor


def gradients(params: Sequence[torch.nn.Parameter]) -> list[Tensor]:
    return [p.grad for p in params if p.grad is not None]


def norm_list(grads: Sequence[Tensor], exact: bool = True) -> list[Tensor]:
    """Per-tensor L2 norms, 0-dim tensors left on the gradients' device (one ``_foreach_norm`` call).

    ``exact=True``: in float64, so that large gradients do not overflow the sum of squares; this
    is what clipnorm and global_clipnorm scale by. ``exact=False`` (for the NaN/inf guard and the
    ``grad_norm`` log only): in float32, accurate to float32 rounding, without converting every
    gradient to float64 first (on the CPU that copy costs more than the norms). A norm past
    float32's range (about 1.8e19) comes out inf there: recompute with ``exact=True`` before
    calling a gradient non-finite (``finite_norms``).
    """
    if exact:
        return list(torch._foreach_norm(grads, 2, dtype=torch.float64))
    if all(g.dtype in (torch.float32, torch.float64) for g in grads):
        return list(torch._foreach_norm(grads, 2))
    return list(torch._foreach_norm(grads, 2, dtype=torch.float32))  # half/bfloat16: not in their own dtype


def norms(grads: Sequence[Tensor], exact: bool = True) -> Tensor:
    """Per-tensor L2 norms, (n,): ``norm_list`` stacked (float64 when ``exact``)."""
    if not grads:
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack(norm_list(grads, exact))


def finite_norms(grads: Sequence[Tensor], values: list[float]) -> list[float]:
    """``values`` (norms read back from ``norm_list(grads, exact=False)``), or the exact float64
    norms if one of them is not finite: inf there may be an overflow of float32 or a gradient
    that is inf, and only the float64 norms tell which."""
    if all(math.isfinite(v) for v in values):
        return values
    return norms(grads, exact=True).tolist()


def max_abs_list(grads: Sequence[Tensor]) -> list[Tensor]:
    """Per-tensor largest |g|, 0-dim tensors: what clipvalue compares with its bound."""
    return list(torch._foreach_norm(grads, math.inf))


def max_abs(grads: Sequence[Tensor]) -> Tensor:
    """Per-tensor largest |g|, (n,)."""
    if not grads:
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack(max_abs_list(grads))


def global_norm(per_tensor: Tensor) -> float:
    """||G|| over all gradients from their per-tensor norms; inf/nan if any gradient is non-finite."""
    return float(torch.linalg.vector_norm(per_tensor)) if per_tensor.numel() else 0.0


def clip_(grads: Sequence[Tensor], per_tensor: Union[Tensor, Sequence[float]], *, clipnorm: Optional[float] = None,
          clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None,
          total: Optional[float] = None, largest: Optional[Sequence[float]] = None) -> bool:
    """Clip ``grads`` in place by the one rule that is set; True if it changed any gradient.

    ``per_tensor`` are the gradients' L2 norms (a tensor, or numbers already read back);
    ``total`` their global norm and ``largest`` their per-tensor max |g|, if known. What is not
    given is computed here, which reads values back from the gradients' device.
    """
    if clipnorm is not None:
        clipped = False
        values = per_tensor.tolist() if isinstance(per_tensor, Tensor) else per_tensor
        for g, n in zip(grads, values):
            if n > clipnorm:
                g.mul_(clipnorm / n)
                clipped = True
        return clipped
    if global_clipnorm is not None:
        if total is None:
            total = global_norm(per_tensor if isinstance(per_tensor, Tensor) else torch.tensor(per_tensor))
        if total > global_clipnorm:
            torch._foreach_mul_(list(grads), global_clipnorm / total)
            return True
        return False
    if clipvalue is not None:
        if largest is None:
            largest = max_abs(grads).tolist()
        clipped = False
        for g, m in zip(grads, largest):
            if m > clipvalue:
                g.clamp_(-clipvalue, clipvalue)
                clipped = True
        return clipped
    return False
