r"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): step math and the scan.

Neither cell's gates read h_{t-1}, so every step is an affine map of the old state,

.. math::
    h_t = a_t \odot h_{t-1} + b_t,

whose coefficients depend on x_t alone. k = W x_t + b is the input projection (B, G).

minGRU (G = 2H, blocks z, h):

.. math::
    z_t = \sigma(k_z) \qquad \tilde h_t = g(k_h) \qquad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

minLSTM (G = 3H, blocks i, f, h, in torch's LSTM order), with the normalised gates:

.. math::
    i_t = \sigma(k_i) \quad f_t = \sigma(k_f) \quad \tilde h_t = g(k_h) \quad
    f'_t = \frac{f_t}{f_t + i_t} \quad i'_t = \frac{i_t}{f_t + i_t} \quad
    h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

with g(x) = x + 1/2 for x >= 0 and sigma(x) below, which keeps h̃ positive (the paper's
choice, so that log h̃ exists). Both cells share one form, with u the gate's logit:

.. math::
    a_t = \sigma(-u) \qquad b_t = \sigma(u)\, g(k_h) \qquad
    u = k_z \ \text{(minGRU)} \qquad u = \log i_t - \log f_t
      = \operatorname{softplus}(-k_f) - \operatorname{softplus}(-k_i) \ \text{(minLSTM)}

In log space, as the paper writes them: log a = -softplus(u), log b = -softplus(-u) + log g(k_h),
with log g(x) = log(x + 1/2) for x >= 0 and -softplus(-x) below. Nothing here subtracts
from 1, so a gate near 1 loses no digits.

The scan over t (``scan_log``) is the paper's parallel form, O(log T) deep:

.. math::
    A_t = \sum_{s \le t} \log a_s \qquad
    h_t = e^{A_t} h_0 + \exp\Big(A_t + \operatorname{logcumsumexp}_{s \le t}(\log b_s - A_s)\Big)

(h_0 may have either sign: its term stays outside the logarithm.) Its backward
(``scan_log_backward``) is the reverse scan, written by hand:

.. math::
    \delta_t = \frac{\partial L}{\partial h_t} = e_t + a_{t+1} \delta_{t+1}
      = \sum_{s \ge t} e^{A_s - A_t} e_s, \qquad
    \frac{\partial L}{\partial a_t} = \delta_t h_{t-1}, \quad
    \frac{\partial L}{\partial b_t} = \delta_t, \quad
    \frac{\partial L}{\partial h_0} = a_1 \delta_1

where e_t is the gradient arriving at h_t from outside the recurrence. The sum runs in log space
as well, its positive and negative parts separately (a log needs a positive argument).
A padded step has a = 1, b = 0 (log a = 0, log b = -inf): the state passes through unchanged,
and so does δ. Shapes: B batch, T time, H hidden, G = 2H or 3H.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_KINDS = {"mingru": 2, "minlstm": 3}  # kind -> gate blocks in G


def check_min_kind(kind: str) -> int:
    """The number of gate blocks of ``kind``; a ValueError for anything but "mingru"/"minlstm"."""
    if kind not in MIN_KINDS:
        raise ValueError(f"Argument `kind` must be one of {tuple(MIN_KINDS)}, got {kind!r}")
    return MIN_KINDS[kind]


# ------------------------------------------------------------------------------ g and log g


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) to the last digit: torch's softplus returns x itself past x = 20, which
    is off by e^-x, about 2e-9 there: more than float64's share in a 1e-10 comparison."""
    return F.relu(x) + torch.log1p(torch.exp(-x.abs()))


def g(x: Tensor) -> Tensor:
    """The paper's positive activation: x + 1/2 for x >= 0, sigma(x) below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without forming g(x) below zero: -softplus(-x) there."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -softplus(-x))


def g_grad(x: Tensor) -> Tensor:
    """g'(x): 1 for x >= 0, sigma(x) sigma(-x) below."""
    s = torch.sigmoid(x)
    return torch.where(x >= 0, torch.ones_like(x), s * (1 - s))


# ----------------------------------------------------------------------- the step (sequential)


def _split(k: Tensor, kind: str) -> tuple[Tensor, ...]:
    n = check_min_kind(kind)
    if k.shape[-1] % n:
        raise ValueError(f"the projection's last axis must be {n} * H for {kind}, got {k.shape[-1]}")
    return k.chunk(n, dim=-1)


def gate_logit(k: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """k (..., G) -> (u, k_h), each (..., H): the mixing gate's logit and the candidate's pre-activation."""
    blocks = _split(k, kind)
    if kind == "mingru":
        k_z, k_h = blocks
        return k_z, k_h
    k_i, k_f, k_h = blocks
    return softplus(-k_f) - softplus(-k_i), k_h  # u = log i - log f


def coefficients(k: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """k (..., G) -> (a, b), each (..., H): h_t = a h_{t-1} + b."""
    u, k_h = gate_logit(k, kind)
    return torch.sigmoid(-u), torch.sigmoid(u) * g(k_h)


def log_coefficients(k: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """k (..., G) -> (log a, log b), as the paper computes them (no subtraction from 1)."""
    u, k_h = gate_logit(k, kind)
    return -softplus(u), -softplus(-u) + log_g(k_h)


def min_step(k: Tensor, h: Tensor, kind: str) -> Tensor:
    """One step (the sequential mode): k (B, G) projected input, h (B, H) -> h_t (B, H)."""
    a, b = coefficients(k, kind)
    return a * h + b


def coefficients_backward(k: Tensor, kind: str, da: Tensor, db: Tensor) -> Tensor:
    """The gradient of ``coefficients``: dk (..., G) from da, db (..., H).

    With s = sigma(u): a = sigma(-u), b = s g(k_h), so du = s (1 - s) (db g(k_h) - da) and
    dk_h = db s g'(k_h); for minLSTM du reaches k_i, k_f through u = softplus(-k_f) - softplus(-k_i).
    """
    u, k_h = gate_logit(k, kind)
    s = torch.sigmoid(u)
    du = s * (1 - s) * (db * g(k_h) - da)
    dk_h = db * s * g_grad(k_h)
    if kind == "mingru":
        return torch.cat([du, dk_h], dim=-1)
    k_i, k_f, _ = _split(k, kind)
    return torch.cat([du * torch.sigmoid(-k_i), -du * torch.sigmoid(-k_f), dk_h], dim=-1)


# --------------------------------------------------------------------------- the scan (parallel)


def scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t h_{t-1} + b_t for t = 0 .. T-1 in the paper's log-space parallel form.

    log_a, log_b (B, T, H) (log b may be -inf: b = 0), h0 (B, H) of any sign -> h (B, T, H).
    """
    A = torch.cumsum(log_a, dim=1)  # (B, T, H)
    return torch.exp(A) * h0.unsqueeze(1) + torch.exp(A + torch.logcumsumexp(log_b - A, dim=1))


def _reverse_logcumsumexp(x: Tensor, dim: int) -> Tensor:
    return torch.logcumsumexp(x.flip(dim), dim).flip(dim)


def _windows(t: Tensor, tbptt: int, fill: float) -> Tensor:
    """(B, T, H) -> (B, W, tbptt, H), padded at the end with ``fill`` up to W * tbptt steps."""
    B, T, H = t.shape
    pad = -T % tbptt
    if pad:
        t = torch.cat([t, t.new_full((B, pad, H), fill)], dim=1)
    return t.view(B, -1, tbptt, H)


def reverse_scan_log(log_a: Tensor, e: Tensor, tbptt: Optional[int] = None) -> Tensor:
    """delta_t = e_t + a_{t+1} delta_{t+1} (delta_{T-1} = e_{T-1}), in log space.

    log_a, e (B, T, H) -> delta (B, T, H). With ``tbptt`` = k the carry from step t into t-1
    is cut wherever t is a positive multiple of k (the windows are independent).
    """
    B, T, H = e.shape
    if tbptt is not None and tbptt < T:
        la = _windows(log_a, tbptt, 0.0)
        ew = _windows(e, tbptt, 0.0)
        return reverse_scan_log(la.flatten(0, 1), ew.flatten(0, 1)).view(B, -1, H)[:, :T]
    A = torch.cumsum(log_a, dim=1)
    # delta_t = sum_{s >= t} exp(A_s - A_t) e_s, with e split into its positive and negative parts.
    pos = _reverse_logcumsumexp(A + torch.log(F.relu(e)), 1)
    neg = _reverse_logcumsumexp(A + torch.log(F.relu(-e)), 1)
    return torch.exp(pos - A) - torch.exp(neg - A)


def scan_log_backward(log_a: Tensor, h: Tensor, h0: Tensor, e: Tensor,
                      tbptt: Optional[int] = None) -> tuple[Tensor, Tensor, Tensor]:
    """The backward of ``scan_log``: (da, db, dh0) from e = dL/dh (B, T, H) arriving from outside.

    h (B, T, H) is the forward's result; h_{t-1} comes from it (h0 at t = 0).
    """
    delta = reverse_scan_log(log_a, e, tbptt)
    h_prev = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1)
    dh0 = torch.exp(log_a[:, 0]) * delta[:, 0] if h.shape[1] else torch.zeros_like(h0)
    return delta * h_prev, delta, dh0
