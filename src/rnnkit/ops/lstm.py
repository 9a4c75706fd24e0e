r"""LSTM step (optional peepholes, LayerNorm, projection) and its hand-derived backward.

Gate order i, f, g, o as in ``torch.nn.LSTM``. With ``a = W_ih x_t + b + W_hh h_{t-1}``:

.. math::
    \tilde a = \mathrm{LN}(a) \text{ per gate block (if layer norm), else } a \\
    i_t = \sigma(\tilde a_i + p_i \odot c_{t-1}) \qquad
    f_t = \sigma(\tilde a_f + p_f \odot c_{t-1}) \qquad
    g_t = \tanh(\tilde a_g) \\
    c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
    o_t = \sigma(\tilde a_o + p_o \odot c_t) \\
    m_t = o_t \odot \tanh(\mathrm{LN}_c(c_t)) \qquad
    h_t = W_{hr} m_t \text{ (if proj_size) else } m_t

Peepholes follow Gers & Schmidhuber (2000); LayerNorm follows Ba et al. (2016),
with one normalisation per gate block and one of the cell before its tanh
(the carried c_t is not normalised). Without options this is exactly torch's LSTM.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import CellSpec, Weights
from .layernorm import normalize, normalize_backward


def lstm_step(xw: Tensor, state: tuple[Tensor, Tensor], hin: Tensor, w: Weights, spec: CellSpec):
    """xw: (B, 4H), hin: (B, P), state (h (B, P), c (B, H)) -> new state, cache."""
    _, c_prev = state
    B, H = c_prev.shape
    sig, act = spec.ract.forward, spec.act.forward
    a = torch.addmm(xw, hin, w.weight_hh.t())  # (B, 4H)
    a_hat = rstd = None
    if w.ln_gamma is not None:
        a_hat, rstd = normalize(a.view(B, 4, H))
        a = a_hat.view(B, 4 * H) * w.ln_gamma + w.ln_beta
    ingate, forgetgate, cellgate, outgate = a.chunk(4, dim=1)
    if w.peephole is not None:
        ingate = ingate + w.peephole[0] * c_prev
        forgetgate = forgetgate + w.peephole[1] * c_prev
    ingate, forgetgate, cellgate = sig(ingate), sig(forgetgate), act(cellgate)
    c = forgetgate * c_prev + ingate * cellgate
    if w.peephole is not None:
        outgate = outgate + w.peephole[2] * c
    outgate = sig(outgate)
    c_hat = rstd_c = None
    c_in = c
    if w.ln_cell_gamma is not None:
        c_hat, rstd_c = normalize(c)
        c_in = c_hat * w.ln_cell_gamma + w.ln_cell_beta
    tanh_c = act(c_in)
    m = outgate * tanh_c
    h = m @ w.weight_hr.t() if w.weight_hr is not None else m
    gates = torch.cat([ingate, forgetgate, cellgate, outgate], dim=1)
    return (h, c), (gates, tanh_c, m, a_hat, rstd, c_hat, rstd_c)


def lstm_step_backward(dstate, cache, state_prev, hin, w: Weights, spec: CellSpec):
    """Returns (dxw, dstate_prev not through hin, dhin, per-step grads for the weights)."""
    dh, dc = dstate
    _, c_prev = state_prev
    gates, tanh_c, m, a_hat, rstd, c_hat, rstd_c = cache
    H = c_prev.shape[-1]
    ingate, forgetgate, cellgate, outgate = gates.chunk(4, dim=1)
    dsig, dact = spec.ract.grad_from_output, spec.act.grad_from_output

    dm = dh @ w.weight_hr if w.weight_hr is not None else dh
    do = dm * tanh_c * dsig(outgate)  # grad of o's pre-activation
    dc_in = dm * outgate * dact(tanh_c)
    if w.ln_cell_gamma is not None:
        dc_hat = dc_in * w.ln_cell_gamma
        dc = dc + normalize_backward(dc_hat, c_hat, rstd_c)
    else:
        dc_hat = None
        dc = dc + dc_in
    if w.peephole is not None:
        dc = dc + do * w.peephole[2]
    di = dc * cellgate * dsig(ingate)
    df = dc * c_prev * dsig(forgetgate)
    dg = dc * ingate * dact(cellgate)
    dc_prev = dc * forgetgate
    if w.peephole is not None:
        dc_prev = dc_prev + di * w.peephole[0] + df * w.peephole[1]
    da_tilde = torch.cat([di, df, dg, do], dim=1)  # grad of the normalised pre-activation
    if w.ln_gamma is not None:
        B = da_tilde.shape[0]
        da = normalize_backward((da_tilde * w.ln_gamma).view(B, 4, H), a_hat, rstd).view(B, 4 * H)
    else:
        da = da_tilde
    dhin = da @ w.weight_hh
    # Keep per step only what lstm_weight_grads will reduce over time.
    needs_tilde = w.ln_gamma is not None or w.peephole is not None
    return da, (None, dc_prev), dhin, (
        da,
        da_tilde if needs_tilde else None,
        dc_in if w.ln_cell_gamma is not None else None,
        dh if w.weight_hr is not None else None,
    )


def lstm_weight_grads(w: Weights, spec: CellSpec, caches, step_grads, hin_all: Tensor, states_prev) -> dict:
    """Recurrent-side gradients summed over all T steps with one GEMM or one reduction each.

    ``states_prev[1]`` is c_{t-1} for every step, (T, B, H).
    """
    gates, tanh_c, m, a_hat, rstd, c_hat, rstd_c = caches
    da, da_tilde, dc_in, dh = step_grads
    T, B, G = da.shape
    H = G // 4
    P = hin_all.shape[-1]
    grads = {"weight_hh": da.reshape(-1, G).t() @ hin_all.reshape(-1, P)}
    if w.weight_hr is not None:
        grads["weight_hr"] = dh.reshape(-1, dh.shape[-1]).t() @ m.reshape(-1, H)
    if w.peephole is not None:
        c_prev = states_prev[1]
        di, df, _, do = da_tilde.chunk(4, dim=-1)
        # c_t is recovered exactly as f*c_{t-1} + i*g rather than stored a second time.
        ig, fg, gg, _ = gates.chunk(4, dim=-1)
        c_t = fg * c_prev + ig * gg
        grads["peephole"] = torch.stack(
            [(di * c_prev).sum((0, 1)), (df * c_prev).sum((0, 1)), (do * c_t).sum((0, 1))]
        )
    if w.ln_gamma is not None:
        grads["ln_gamma"] = (da_tilde * a_hat.reshape(T, B, G)).sum((0, 1))
        grads["ln_beta"] = da_tilde.sum((0, 1))
    if w.ln_cell_gamma is not None:
        grads["ln_cell_gamma"] = (dc_in * c_hat).sum((0, 1))
        grads["ln_cell_beta"] = dc_in.sum((0, 1))
    return grads
