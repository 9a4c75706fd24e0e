r"""GRU step in both forms, and the hand-derived backward.

Gate order r, z, n as in ``torch.nn.GRU``.

reset_after=True (cuDNN / PyTorch / Keras default):

.. math::
    r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
    z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
    n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
    h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

reset_after=False (Cho et al. 2014; Keras ``reset_after=False``; the seeds' form):

.. math::
    n_t = \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})

Note the seeds write h_t = (1 - z) h_{t-1} + z n; here z gates the *old* state,
as in PyTorch and Keras. The two conventions differ only by z -> 1 - z.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import CellSpec, Weights


def gru_step(xw: Tensor, state: tuple[Tensor], hin: Tensor, w: Weights, spec: CellSpec):
    """xw: (B, 3H), hin: (B, H) -> new state (h,), cache."""
    (h_prev,) = state
    H = h_prev.shape[-1]
    sig, tanh = spec.ract.forward, spec.act.forward
    if spec.reset_after:
        hw = hin @ w.weight_hh.t()  # (B, 3H)
        if w.bias_hh is not None:
            hw = hw + w.bias_hh
        rz = sig(xw[:, : 2 * H] + hw[:, : 2 * H])
        resetgate, updategate = rz[:, :H], rz[:, H:]
        hn = hw[:, 2 * H :]
        newgate = tanh(xw[:, 2 * H :] + resetgate * hn)
        rh = hn  # what the backward needs from the recurrent side of n
    else:
        rz = sig(torch.addmm(xw[:, : 2 * H], hin, w.weight_hh[: 2 * H].t()))
        resetgate, updategate = rz[:, :H], rz[:, H:]
        rh = resetgate * hin
        newgate = tanh(torch.addmm(xw[:, 2 * H :], rh, w.weight_hh[2 * H :].t()))
    h = newgate + updategate * (h_prev - newgate)
    return (h,), (rz, newgate, rh)


def gru_step_backward(dstate, cache, state_prev, hin, w: Weights, spec: CellSpec):
    """Returns (dxw, dstate_prev not through hin, dhin, per-step grads for the weights)."""
    (dh,) = dstate
    (h_prev,) = state_prev
    rz, newgate, rh = cache
    H = h_prev.shape[-1]
    resetgate, updategate = rz[:, :H], rz[:, H:]
    dsig, dtanh = spec.ract.grad_from_output, spec.act.grad_from_output

    dn = dh * (1 - updategate) * dtanh(newgate)  # grad of n's pre-activation
    dz = dh * (h_prev - newgate) * dsig(updategate)
    dh_prev_direct = dh * updategate
    if spec.reset_after:
        dr = dn * rh * dsig(resetgate)
        dxw = torch.cat([dr, dz, dn], dim=1)
        dhw = torch.cat([dr, dz, dn * resetgate], dim=1)  # grad of W_hh h + b_hh
        dhin = dhw @ w.weight_hh
        return dxw, (dh_prev_direct,), dhin, (dxw, dhw)
    drh = dn @ w.weight_hh[2 * H :]  # grad of r * h
    dr = drh * hin * dsig(resetgate)
    dxw = torch.cat([dr, dz, dn], dim=1)
    dhin = dxw[:, : 2 * H] @ w.weight_hh[: 2 * H] + drh * resetgate
    return dxw, (dh_prev_direct,), dhin, (dxw,)


def gru_weight_grads(w: Weights, spec: CellSpec, caches, step_grads, hin_all: Tensor, states_prev) -> dict:
    """Recurrent-side gradients summed over all T steps with one GEMM per block."""
    P = hin_all.shape[-1]
    hin2 = hin_all.reshape(-1, P)
    if spec.reset_after:
        _, dhw = step_grads
        G = dhw.shape[-1]
        dhw2 = dhw.reshape(-1, G)
        grads = {"weight_hh": dhw2.t() @ hin2}
        if w.bias_hh is not None:
            grads["bias_hh"] = dhw2.sum(0)
        return grads
    (dxw,) = step_grads
    G = dxw.shape[-1]
    H = G // 3
    dxw2 = dxw.reshape(-1, G)
    rh2 = caches[2].reshape(-1, H)
    return {"weight_hh": torch.cat([dxw2[:, : 2 * H].t() @ hin2, dxw2[:, 2 * H :].t() @ rh2], dim=0)}
