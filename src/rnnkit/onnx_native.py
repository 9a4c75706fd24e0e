r"""One recurrent layer direction as ONNX's own ``RNN``, ``LSTM`` or ``GRU`` operator, for torch.onnx.export.

While ``torch.onnx.export`` runs (``torch.onnx.is_in_onnx_export()``), ``run_layer`` hands each
layer direction here instead of to the engine: both exporters then write one native ONNX node
per layer direction, which onnxruntime runs for any batch size and sequence length. The
dynamo exporter (``dynamo=True``) gets the node from ``torch.onnx.ops.symbolic_multi_out``;
the TorchScript exporter (``dynamo=False``) from the ``symbolic`` of ``NativeRecurrent``,
an autograd.Function whose forward runs the engine, so the trace sees real values.

Layouts (ours follow torch.nn; ONNX's are fixed by its operators):

    ours (torch.nn order)         ONNX
    LSTM gates i, f, g, o         i, o, f, c   (W, R and both biases reordered by blocks)
    LSTM peephole rows i, f, o    P = [p_i, p_o, p_f]
    GRU gates r, z, n             z, r, h
    GRU reset_after=True          linear_before_reset=1:  n = tanh(W_n x + b_in + r * (R_n h + b_hn))
    GRU reset_after=False         linear_before_reset=0:  n = tanh(W_n x + R_n (r * h) + b_n)
    one bias b                    Wb = b, Rb = 0
    lengths (right padding)       sequence_lens; padded outputs are zeros, the state stops at each end
    reverse=True                  direction="reverse"

What ONNX's operators cannot express is refused with ``UnsupportedForExport`` (``onnx_blocker``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from .ops import CellSpec, Weights

OPSET = 17


class UnsupportedForExport(ValueError):
    """The model uses something the ONNX graph cannot express."""


# activation name -> (ONNX activation, (alpha, beta) or ())
RNN_ACTIVATIONS = {"tanh": ("Tanh", ()), "sigmoid": ("Sigmoid", ()), "relu": ("Relu", ()),
                   "hard_sigmoid": ("HardSigmoid", (1.0 / 6.0, 0.5)), "linear": ("Affine", (1.0, 0.0))}
# Our gate blocks (torch order) in ONNX's order.
GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
OP_TYPES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def onnx_blocks(t: Tensor, kind: str, H: int) -> Tensor:
    """(G, ...) in torch's gate order -> the same rows in ONNX's gate order."""
    return torch.cat([t[k * H : (k + 1) * H] for k in GATE_ORDER[kind]])


def onnx_peephole(p: Tensor) -> Tensor:
    """Peephole rows (i, f, o) -> ONNX's P = [p_i, p_o, p_f], flat (3H,)."""
    return torch.cat([p[0], p[2], p[1]])


def onnx_attributes(spec: CellSpec, hidden_size: int, reverse: bool) -> dict[str, Any]:
    """The operator's attributes: hidden_size, direction, activations (and their alpha/beta)."""
    names = {"lstm": [spec.recurrent_activation, spec.activation, spec.activation],
             "gru": [spec.recurrent_activation, spec.activation], "rnn": [spec.activation]}[spec.kind]
    activations, alphas, betas = [], [], []
    for n in names:
        op_name, params = RNN_ACTIVATIONS[n]
        activations.append(op_name)
        if params:
            alphas.append(params[0])
            betas.append(params[1])
    attrs: dict[str, Any] = {"hidden_size": hidden_size, "direction": "reverse" if reverse else "forward",
                             "activations": activations}
    if alphas:
        attrs.update(activation_alpha=alphas, activation_beta=betas)
    if spec.kind == "gru":
        attrs["linear_before_reset"] = int(spec.reset_after)
    return attrs


def onnx_blocker(spec: CellSpec, weights: Weights, *, mask: Optional[Tensor] = None,
                 recurrent_mask: Optional[Tensor] = None, zoneout: Optional[Sequence[Optional[Tensor]]] = None,
                 probe: Optional[Tensor] = None) -> Optional[str]:
    """Why ONNX's native operator cannot compute this configuration, or None."""
    reasons = []
    if spec.activation not in RNN_ACTIVATIONS or spec.recurrent_activation not in RNN_ACTIVATIONS:
        reasons.append(f"ONNX has no recurrent activation for {spec.activation!r}/{spec.recurrent_activation!r}")
    if weights.weight_hr is not None:
        reasons.append("proj_size (an LSTM projection) has no ONNX LSTM attribute")
    if weights.ln_gamma is not None:
        reasons.append("layer_norm normalises the gates inside the time loop, which ONNX's LSTM cannot express")
    if zoneout is not None and any(z is not None for z in zoneout):
        reasons.append("zoneout mixes the previous state into each step, also at inference, which ONNX's "
                       "recurrent operators cannot express")
    if recurrent_mask is not None:
        reasons.append("recurrent dropout acts in training only: export the module in eval() mode")
    if probe is not None:
        reasons.append("a gradient-flow probe needs a backward pass")
    if mask is not None:
        reasons.append("a (B, T) mask may have holes, which sequence_lens cannot express: pass lengths instead")
    return "; ".join(reasons) or None


def in_onnx_export() -> bool:
    """Whether torch.onnx.export runs (either exporter), also inside its strict (Dynamo) capture,
    where ``torch.onnx.is_in_onnx_export()`` reads False."""
    try:
        from torch.onnx._internal.exporter import _flags
    except ImportError:  # another torch version: its public flag alone
        return torch.onnx.is_in_onnx_export()
    return torch.onnx.is_in_onnx_export() or bool(getattr(_flags, "_is_onnx_exporting", False))


def run_onnx(spec: CellSpec, x: Tensor, weights: Weights, state0: Optional[Sequence[Tensor]], *,
             lengths: Optional[Tensor] = None, reverse: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The same contract as ``rnnkit.engine.run`` (x (B, T, F) -> out (B, T, H), final state), written
    as one native ONNX node while ``torch.onnx.export`` runs."""
    H = weights.weight_hh.shape[1]
    w = weights
    x_tm = x.transpose(0, 1)  # (T, B, F): ONNX's layout 0
    W = onnx_blocks(w.weight_ih, spec.kind, H).unsqueeze(0)  # (1, G, F)
    R = onnx_blocks(w.weight_hh, spec.kind, H).unsqueeze(0)  # (1, G, H)
    bias = None
    if w.bias_ih is not None or w.bias_hh is not None:
        zeros = torch.zeros_like(w.bias_ih if w.bias_ih is not None else w.bias_hh)
        b_ih = w.bias_ih if w.bias_ih is not None else zeros
        b_hh = w.bias_hh if w.bias_hh is not None else zeros
        bias = torch.cat([onnx_blocks(b_ih, spec.kind, H), onnx_blocks(b_hh, spec.kind, H)]).unsqueeze(0)  # (1, 2G)
    seq_lens = None if lengths is None else lengths.to(device=x.device, dtype=torch.int32)
    states = [None, None] if state0 is None else [s.unsqueeze(0) for s in state0] + [None]
    inputs: list[Optional[Tensor]] = [x_tm, W, R, bias, seq_lens, states[0]]
    if spec.kind == "lstm":
        inputs += [states[1], None if w.peephole is None else onnx_peephole(w.peephole).unsqueeze(0)]
    while inputs[-1] is None:
        inputs.pop()
    attrs = onnx_attributes(spec, H, reverse)
    T, B = x_tm.shape[:2]
    n_out = 3 if spec.kind == "lstm" else 2
    shapes = [[T, 1, B, H]] + [[1, B, H]] * (n_out - 1)
    if torch.jit.is_tracing():  # the TorchScript exporter
        meta = (spec, reverse, state0 is not None, attrs, n_out, len(inputs))
        outs = NativeRecurrent.apply(meta, *inputs, x, *weights, *(state0 or ()), lengths)
    else:
        outs = torch.onnx.ops.symbolic_multi_out(OP_TYPES[spec.kind], inputs, attrs, dtypes=[x.dtype] * n_out,
                                                 shapes=shapes, version=OPSET)
    Y, *finals = outs
    out = Y.squeeze(1).transpose(0, 1)  # (T, 1, B, H) -> (B, T, H)
    return out, tuple(f.squeeze(0) for f in finals)


class NativeRecurrent(torch.autograd.Function):
    """For the TorchScript exporter: the forward runs the engine on the layer's own weights (the
    trace goes on with real values); ``symbolic`` writes the ONNX node from the ONNX-layout inputs."""

    @staticmethod
    def forward(ctx, meta, *args):  # type: ignore[override]
        from . import engine

        spec, reverse, has_state, _, _, n_onnx = meta
        x, *rest = args[n_onnx:]
        n_w = len(Weights._fields)
        weights = Weights(*rest[:n_w])
        state0 = tuple(rest[n_w:-1]) if has_state else None
        out, finals = engine.run(spec, x, weights, state0, lengths=rest[-1], reverse=reverse)
        Y = out.transpose(0, 1).unsqueeze(1)  # (T, 1, B, H)
        return (Y, *(f.unsqueeze(0) for f in finals))

    @staticmethod
    def symbolic(g, meta, *args):  # type: ignore[no-untyped-def]
        from torch.onnx import symbolic_helper

        spec, _, _, attrs, n_out, n_onnx = meta
        # This exporter's g.op takes each attribute's type as a suffix of its name.
        typed = {}
        for key, value in attrs.items():
            first = value[0] if isinstance(value, list) else value
            suffix = "s" if isinstance(first, str) else ("f" if isinstance(first, float) else "i")
            typed[f"{key}_{suffix}"] = value
        inputs = [v if v is not None else symbolic_helper._optional_input_placeholder_tensor(g) for v in args[:n_onnx]]
        return g.op(OP_TYPES[spec.kind], *inputs, outputs=n_out, **typed)
