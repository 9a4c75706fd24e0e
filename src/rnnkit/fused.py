"""The one place that calls PyTorch's fused RNN kernels (oneDNN on CPU, cuDNN on GPU).

``fuse_blocker`` says why a configuration cannot be fused, or returns None when
the fused kernel computes exactly the same function as ``rnnkit.engine.run``.
Nothing here changes results: a configuration torch does not implement is
refused, never approximated.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .ops import CellSpec, Weights


def fuse_blocker(
    spec: CellSpec,
    weights: Weights,
    *,
    lengths: Optional[Tensor] = None,
    tbptt: Optional[int] = None,
    recurrent_mask: Optional[Tensor] = None,
    zoneout: Optional[Sequence[Optional[Tensor]]] = None,
    seq_len: int = 1,
) -> Optional[str]:
    """Why torch's fused kernel cannot run this configuration, or None if it can.

    ``lengths`` must already be the right-padded form of the mask (see
    ``mask_to_lengths``); a mask with holes has no fused equivalent.
    """
    if spec.kind == "rnn" and spec.activation not in ("tanh", "relu"):
        return f"torch.nn.RNN has no {spec.activation!r} nonlinearity"
    if spec.kind != "rnn" and (spec.activation, spec.recurrent_activation) != ("tanh", "sigmoid"):
        return "torch's fused LSTM/GRU use tanh and sigmoid only"
    if spec.kind == "gru" and not spec.reset_after:
        return "torch's fused GRU applies the reset gate after the recurrent matmul (reset_after=True) only"
    if weights.peephole is not None:
        return "torch's fused LSTM has no peephole connections"
    if weights.ln_gamma is not None:
        return "torch's fused LSTM has no layer normalisation"
    if recurrent_mask is not None:
        return "torch's fused kernels have no recurrent dropout"
    if seq_len == 0:
        return "torch's fused kernels need at least one time step"
    if zoneout is not None and any(z is not None for z in zoneout):
        return "torch's fused kernels have no zoneout"
    if lengths is not None:
        if tbptt is not None:
            return "truncated BPTT over a masked batch is not expressible with packed sequences"
        if lengths.numel() and int(lengths.min()) == 0:
            return "torch's packed sequences cannot hold an empty (length 0) sequence"
    return None


def mask_to_lengths(mask: Tensor) -> Optional[Tensor]:
    """(B, T) mask -> (B,) lengths if the mask is right padding (a prefix of ones), else None."""
    mask = mask.bool()
    lengths = mask.sum(1)
    prefix = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    return lengths if torch.equal(prefix, mask) else None


def reverse_padded(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Reverse each sequence of (B, T, ...) within its own length; padding stays in place."""
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    idx = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T); an involution
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


_KERNELS = {"lstm": torch._VF.lstm, "gru": torch._VF.gru}


def _kernel(spec: CellSpec):
    if spec.kind == "rnn":
        return torch._VF.rnn_tanh if spec.activation == "tanh" else torch._VF.rnn_relu
    return _KERNELS[spec.kind]


def run_fused(
    spec: CellSpec,
    x: Tensor,
    weights: Weights,
    state0: Sequence[Tensor],
    *,
    lengths: Optional[Tensor] = None,
    reverse: bool = False,
    tbptt: Optional[int] = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Same contract as ``rnnkit.engine.run`` for a configuration ``fuse_blocker`` accepts.

    x: (B, T, F); state0 as in ``engine.run``. Returns out (B, T, P) and the final state.
    """
    if tbptt is not None and (not isinstance(tbptt, int) or isinstance(tbptt, bool) or tbptt < 1):
        # As engine.run checks it; here a bad window would reach range() and fail without a name.
        raise ValueError(f"Argument `tbptt` must be a positive integer or None, got {tbptt!r}")
    kernel = _kernel(spec)
    b_ih, b_hh = weights.bias_ih, weights.bias_hh
    has_biases = b_ih is not None or b_hh is not None
    params = [weights.weight_ih, weights.weight_hh]
    if has_biases:
        # A single bias is the same function as a pair with a zero second bias.
        params += [b_ih if b_ih is not None else torch.zeros_like(b_hh), b_hh if b_hh is not None else torch.zeros_like(b_ih)]
    if weights.weight_hr is not None:
        params.append(weights.weight_hr)
    lstm = spec.kind == "lstm"
    hx = tuple(s.unsqueeze(0) for s in state0)

    def call(inp: Tensor, hx, batch_sizes: Optional[Tensor] = None):
        h = hx if lstm else hx[0]
        if batch_sizes is None:
            res = kernel(inp, h, params, has_biases, 1, 0.0, True, False, True)
        else:
            res = kernel(inp, batch_sizes, h, params, has_biases, 1, 0.0, True, False)
        return res[0], tuple(res[1:])

    if reverse:
        x = reverse_padded(x, lengths)
    if lengths is not None:
        T = x.shape[1]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        sorted_hx = tuple(h.index_select(1, packed.sorted_indices) for h in hx)
        out_data, hx = call(packed.data, sorted_hx, packed.batch_sizes)
        hx = tuple(h.index_select(1, packed.unsorted_indices) for h in hx)
        out, _ = pad_packed_sequence(packed._replace(data=out_data), batch_first=True, total_length=T)
    elif tbptt is not None and tbptt < x.shape[1]:
        outs = []
        for start in range(0, x.shape[1], tbptt):
            if start:
                hx = tuple(h.detach() for h in hx)
            o, hx = call(x[:, start : start + tbptt], hx)
            outs.append(o)
        out = torch.cat(outs, dim=1)
    else:
        out, hx = call(x, hx)
    if reverse:
        out = reverse_padded(out, lengths)
    return out, tuple(h.squeeze(0) for h in hx)


# torch's one-step kernels, by (kind, activation), as torch.nn.LSTMCell/GRUCell/RNNCell call them:
# each is one ATen call whose backward autograd derives. kernel(x (B, F), hx, weight_ih, weight_hh,
# bias_ih, bias_hh) -> h' (B, H), or (h', c') for an LSTM with hx = (h, c); the biases may be None.
# A dict, read directly, since a cell stepped by hand pays for every Python call per step.
CELL_KERNELS = {
    ("lstm", "tanh"): torch._VF.lstm_cell,
    ("gru", "tanh"): torch._VF.gru_cell,
    ("rnn", "tanh"): torch._VF.rnn_tanh_cell,
    ("rnn", "relu"): torch._VF.rnn_relu_cell,
}


def cell_kernel_key(spec: CellSpec, weights: Weights) -> Optional[tuple[str, str]]:
    """The key in ``CELL_KERNELS`` of torch's one-step kernel that computes exactly this cell, or None.

    A key rather than the function, so that a module can keep it and still pickle as plain data.
    """
    if fuse_blocker(spec, weights) is not None or weights.weight_hr is not None:
        return None
    return (spec.kind, spec.activation)
