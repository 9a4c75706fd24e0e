"""Gradient norms and Keras's three clipping rules, applied in place before a step.

    clipnorm        each parameter's gradient g <- g * c / max(||g||, c)
    global_clipnorm all gradients   g <- g * c / max(||G||, c),  ||G|| = sqrt(sum ||g||^2)
    clipvalue       each element    g <- clamp(g, -c, c)
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor


def gradients(params: Sequence[torch.nn.Parameter]) -> list[Tensor]:
    return [p.grad for p in params if p.grad is not None]


def norms(grads: Sequence[Tensor]) -> Tensor:
    """Per-tensor L2 norms, (n,) float64 so that large gradients do not overflow the sum of squares."""
    if not grads:
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack([torch.linalg.vector_norm(g.detach(), dtype=torch.float64) for g in grads])


def global_norm(per_tensor: Tensor) -> float:
    """||G|| over all gradients from their per-tensor norms; inf/nan if any gradient is non-finite."""
    return float(torch.linalg.vector_norm(per_tensor)) if per_tensor.numel() else 0.0


def clip_(grads: Sequence[Tensor], per_tensor: Tensor, *, clipnorm: Optional[float] = None,
          clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None) -> bool:
    """Clip ``grads`` in place by the one rule that is set; True if it changed any gradient."""
    if clipnorm is not None:
        clipped = False
        for g, n in zip(grads, per_tensor.tolist()):
            if n > clipnorm:
                g.mul_(clipnorm / n)
                clipped = True
        return clipped
    if global_clipnorm is not None:
        total = global_norm(per_tensor)
        if total > global_clipnorm:
            scale = global_clipnorm / total
            for g in grads:
                g.mul_(scale)
            return True
        return False
    if clipvalue is not None:
        clipped = False
        for g in grads:
            if bool((g.abs() > clipvalue).any()):
                g.clamp_(-clipvalue, clipvalue)
                clipped = True
        return clipped
    return False
