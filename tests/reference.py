"""Readable reference cells in plain torch ops; autograd does the backward.

Written straight from the equations, step by step, with no caching and no
batched tricks, so that it is an independent check of ``rnnkit.engine``.
Only the tests use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.ops import CellSpec, Weights, get_activation


def _ln(a: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    return F.layer_norm(a, a.shape[-1:], eps=1e-5) * gamma + beta


def _lin(v: Tensor, W: Tensor, b):
    return v @ W.t() + (b if b is not None else 0)


def ref_step(spec: CellSpec, w: Weights, x: Tensor, h: Tensor, c, rdm):
    act = get_activation(spec.activation).forward
    sig = get_activation(spec.recurrent_activation).forward
    hr = h if rdm is None else h * rdm
    if spec.kind == "rnn":
        return act(_lin(x, w.weight_ih, w.bias_ih) + _lin(hr, w.weight_hh, w.bias_hh)), None
    if spec.kind == "gru":
        H = h.shape[-1]
        Wir, Wiz, Win = w.weight_ih.split(H)
        Whr, Whz, Whn = w.weight_hh.split(H)
        bir, biz, bin_ = w.bias_ih.split(H) if w.bias_ih is not None else (None,) * 3
        bhr, bhz, bhn = w.bias_hh.split(H) if w.bias_hh is not None else (None,) * 3
        r = sig(_lin(x, Wir, bir) + _lin(hr, Whr, bhr))
        z = sig(_lin(x, Wiz, biz) + _lin(hr, Whz, bhz))
        if spec.reset_after:
            n = act(_lin(x, Win, bin_) + r * _lin(hr, Whn, bhn))
        else:
            n = act(_lin(x, Win, bin_) + _lin(r * hr, Whn, bhn))
        return (1 - z) * n + z * h, None
    # LSTM
    H = c.shape[-1]
    a = _lin(x, w.weight_ih, w.bias_ih) + _lin(hr, w.weight_hh, w.bias_hh)
    blocks = list(a.split(H, dim=-1))
    if w.ln_gamma is not None:
        g, b = w.ln_gamma.split(H), w.ln_beta.split(H)
        blocks = [_ln(blk, gi, bi) for blk, gi, bi in zip(blocks, g, b)]
    ai, af, ag, ao = blocks
    if w.peephole is not None:
        ai = ai + w.peephole[0] * c
        af = af + w.peephole[1] * c
    i, f, g = sig(ai), sig(af), act(ag)
    c_new = f * c + i * g
    if w.peephole is not None:
        ao = ao + w.peephole[2] * c_new
    o = sig(ao)
    cn = _ln(c_new, w.ln_cell_gamma, w.ln_cell_beta) if w.ln_cell_gamma is not None else c_new
    m = o * act(cn)
    h_new = m @ w.weight_hr.t() if w.weight_hr is not None else m
    return h_new, c_new


def ref_run(spec: CellSpec, x: Tensor, w: Weights, state0=None, *, mask=None, reverse=False, tbptt=None,
            recurrent_mask=None, zoneout=None):
    """Same contract as ``rnnkit.engine.run``: returns out (B, T, P) and the final state."""
    B, T, _ = x.shape
    P = w.weight_hh.shape[1]
    H = w.weight_hr.shape[1] if w.weight_hr is not None else P
    lstm = spec.kind == "lstm"
    if state0 is None:
        h = x.new_zeros(B, P)
        c = x.new_zeros(B, H) if lstm else None
    else:
        h = state0[0]
        c = state0[1] if lstm else None
    order = range(T - 1, -1, -1) if reverse else range(T)
    outs = [None] * T
    for n, t in enumerate(order):
        if tbptt is not None and n > 0 and n % tbptt == 0:
            h = h.detach()
            c = c.detach() if c is not None else None
        h_new, c_new = ref_step(spec, w, x[:, t], h, c, recurrent_mask)
        if zoneout is not None:
            if zoneout[0] is not None:
                zh = zoneout[0][:, t]
                h_new = zh * h + (1 - zh) * h_new
            if lstm and zoneout[1] is not None:
                zc = zoneout[1][:, t]
                c_new = zc * c + (1 - zc) * c_new
        if mask is not None:
            m = mask[:, t].to(x.dtype)[:, None]
            h_new = m * h_new + (1 - m) * h
            c_new = m * c_new + (1 - m) * c if lstm else None
            outs[t] = h_new * m
        else:
            outs[t] = h_new
        h, c = h_new, c_new
    out = torch.stack(outs, dim=1) if T else x.new_zeros(B, 0, P)
    return out, ((h, c) if lstm else (h,))
