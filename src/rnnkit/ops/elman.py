r"""Elman / SimpleRNN step and its hand-derived backward.

.. math::
    h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

``xw`` is the input projection W_ih x_t + b (both biases folded in), computed for
all steps at once by the engine; ``hin`` is h_{t-1}, possibly after recurrent dropout.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import CellSpec, Weights


def rnn_step(xw: Tensor, state: tuple[Tensor], hin: Tensor, w: Weights, spec: CellSpec):
    """xw: (B, H), hin: (B, H) -> new state (h,), cache (h,)."""
    h = spec.act.forward(torch.addmm(xw, hin, w.weight_hh.t()))
    return (h,), (h,)


def rnn_step_backward(dstate, cache, state_prev, hin, w: Weights, spec: CellSpec):
    """Returns (dxw, dstate_prev not through hin, dhin, per-step grads for the weights)."""
    (dh,) = dstate
    (h,) = cache
    da = dh * spec.act.grad_from_output(h)  # (B, H)
    dhin = da @ w.weight_hh
    return da, (None,), dhin, (da,)


def rnn_weight_grads(w: Weights, spec: CellSpec, caches, step_grads, hin_all: Tensor, states_prev) -> dict:
    """Recurrent-side gradients summed over all T steps with one GEMM each."""
    (da,) = step_grads  # (T, B, H)
    H = da.shape[-1]
    return {"weight_hh": da.reshape(-1, H).t() @ hin_all.reshape(-1, hin_all.shape[-1])}
