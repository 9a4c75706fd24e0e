"""An independent autograd reference for minGRU/minLSTM: the paper's equations, one step at a time.

Plain torch, no rnnkit import: the step is written from the paper (no log space, no shared
coefficients), masks keep the state, and truncated BPTT detaches the state between windows.
Used only by tests.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def g(x: Tensor) -> Tensor:
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def reference_step(kind: str, k: Tensor, h: Tensor) -> Tensor:
    """k (B, G), h (B, H) -> h_t, the paper's sequential mode."""
    if kind == "mingru":
        k_z, k_h = k.chunk(2, dim=-1)
        z = torch.sigmoid(k_z)
        return (1 - z) * h + z * g(k_h)
    k_i, k_f, k_h = k.chunk(3, dim=-1)
    i, f = torch.sigmoid(k_i), torch.sigmoid(k_f)
    return f / (f + i) * h + i / (f + i) * g(k_h)


def reference_layer(kind: str, x: Tensor, weight: Tensor, bias: Optional[Tensor], h0: Optional[Tensor] = None,
                    mask: Optional[Tensor] = None, reverse: bool = False, tbptt: Optional[int] = None,
                    states: Optional[list] = None) -> tuple[Tensor, Tensor]:
    """x (B, T, F) -> (out (B, T, H), h_n (B, H)); padded steps keep h and output 0.

    ``states``, if a list, receives each step's h_t (data order) so a test can take dL/dh_t.
    """
    B, T, _ = x.shape
    H = weight.shape[0] // (2 if kind == "mingru" else 3)
    h = x.new_zeros(B, H) if h0 is None else h0
    mask = torch.ones(B, T, dtype=torch.bool) if mask is None else mask.bool()
    outs: list = [None] * T
    kept: list = [None] * T
    for p, t in enumerate(range(T - 1, -1, -1) if reverse else range(T)):
        if tbptt is not None and p > 0 and p % tbptt == 0:
            h = h.detach()
        k = x[:, t] @ weight.T + (bias if bias is not None else 0)
        h = torch.where(mask[:, t, None], reference_step(kind, k, h), h)
        kept[t] = h
        outs[t] = h * mask[:, t, None]
    if states is not None:
        states.extend(kept)
    return torch.stack(outs, dim=1) if T else x.new_zeros(B, 0, H), h
