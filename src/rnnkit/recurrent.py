"""Run one recurrent layer direction by either path: torch's fused kernel or our engine.

``implementation``:
    "bptt"  : rnnkit's engine (hand-derived BPTT), every option.
    "fused" : torch's fused kernel; raises if the configuration has no exact fused equivalent.
    "auto"  : "fused" where it is exact *and* measured faster (``auto_prefers_fused``,
              the rule in BENCHMARKS.md), otherwise "bptt". Both give the same function.
Under a tracer (torch.compile, torch.export, jit tracing) all three run the engine's operators
(``rnnkit.engine.library``), and during torch.onnx.export ONNX's own operators (``onnx_native``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from . import engine, onnx_native
from .fused import fuse_blocker, mask_to_lengths, run_fused
from .ops import CellSpec, Weights

IMPLEMENTATIONS = ("auto", "fused", "bptt")


# At inference an LSTM with at least this many hidden units runs faster in oneDNN's fused
# kernel; training steps, and smaller inference, run faster in the engine (BENCHMARKS.md).
_LSTM_FUSED_MIN_HIDDEN_INFERENCE = 256


def auto_prefers_fused(kind: str, padded: bool, hidden: int = 0, training: bool = False, *,
                       device_type: str = "cpu", compiled_loop: Optional[bool] = None, traced: bool = False) -> bool:
    """The rule "auto" follows where both paths are exact (measured in BENCHMARKS.md).

    On the CPU with the engine's C++ loop, torch's kernel is faster only for an unpadded LSTM at
    inference with hidden >= 256 (oneDNN); every training step, GRU, SimpleRNN and any padded
    batch (torch's PackedSequence) are faster in ours. Where the C++ loop does not run (another
    device, such as cuDNN on a GPU, or no compiler), torch's kernels beat the Python loop
    everywhere. Under a tracer (torch.compile, export) the engine's operators run: packing
    lengths for the fused kernel reads their values, which a traced graph does not have.

    ``compiled_loop``: whether the C++ loop is available (None: look).
    """
    if traced:
        return False
    if compiled_loop is None:
        compiled_loop = not engine.kernels.load_error()
    if device_type != "cpu" or not compiled_loop:
        return True
    if kind != "lstm" or padded:
        return False
    return not training and hidden >= _LSTM_FUSED_MIN_HIDDEN_INFERENCE


def _auto_size(x: Tensor, weights: Weights) -> dict:
    """hidden, training, device_type and traced for ``auto_prefers_fused``."""
    training = torch.is_grad_enabled() and (
        (isinstance(x, Tensor) and x.requires_grad) or any(w is not None and w.requires_grad for w in weights)
    )
    device_type = x.device.type if isinstance(x, Tensor) else "cpu"
    traced = isinstance(x, Tensor) and engine.library.traced(x)
    return {"hidden": weights.weight_hh.shape[1], "training": training, "device_type": device_type, "traced": traced}


def check_implementation(implementation: str) -> str:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"Received an invalid value for argument `implementation`: expected one of {IMPLEMENTATIONS}, got {implementation!r}"
        )
    return implementation


def run_layer(
    spec: CellSpec,
    x: Tensor,
    weights: Weights,
    state0: Optional[Sequence[Tensor]] = None,
    *,
    mask: Optional[Tensor] = None,
    lengths: Optional[Tensor] = None,
    reverse: bool = False,
    tbptt: Optional[int] = None,
    recurrent_mask: Optional[Tensor] = None,
    zoneout: Optional[Sequence[Optional[Tensor]]] = None,
    implementation: str = "auto",
    probe: Optional[Tensor] = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run a cell over x (B, T, F); see ``rnnkit.engine.run`` for every argument.

    A ``probe`` (gradient-flow diagnostics) needs the engine, so it rules out "fused".
    Returns out (B, T, P) and the final state tuple.
    """
    check_implementation(implementation)
    if onnx_native.in_onnx_export():  # one native ONNX node per layer direction
        blocker = onnx_native.onnx_blocker(spec, weights, mask=mask, recurrent_mask=recurrent_mask, zoneout=zoneout,
                                           probe=probe)
        if blocker:
            raise onnx_native.UnsupportedForExport(f"Cannot export this recurrent layer to ONNX: {blocker}")
        return onnx_native.run_onnx(spec, x, weights, state0, lengths=lengths, reverse=reverse)
    if implementation == "fused" and probe is not None:
        raise ValueError("implementation='fused' cannot report gradient flow (`probe`); use 'bptt' or 'auto'")
    size = _auto_size(x, weights)
    # Under a tracer every implementation runs the engine's operators (the same function): torch's
    # fused kernel neither traces (AOTAutograd) nor packs lengths without reading their values.
    fused = implementation == "fused" and not size["traced"]
    if fused or (implementation == "auto" and probe is None and auto_prefers_fused(spec.kind, False, **size)):
        engine.sequence.check_input(x, weights.weight_ih.shape[1], dtype=weights.weight_ih.dtype)
        B, T = x.shape[:2]
        if mask is not None:
            if lengths is not None:
                raise ValueError("Pass either `mask` or `lengths`, not both")
            mask = engine.sequence.check_mask(mask, B, T)
            lengths = mask_to_lengths(mask)
            blocker = "the mask is not right padding (it has holes)" if lengths is None else None
        else:
            if lengths is not None:
                lengths = engine.sequence.check_lengths(lengths, B, T)
            blocker = None
        if lengths is not None and bool((lengths == T).all()):
            lengths = None  # nothing is padded: the plain kernel is the same function and faster
        blocker = blocker or fuse_blocker(
            spec, weights, lengths=lengths, tbptt=tbptt, recurrent_mask=recurrent_mask, zoneout=zoneout, seq_len=T
        )
        if blocker is None and (fused or auto_prefers_fused(spec.kind, lengths is not None, **size)):
            if state0 is None:
                state0 = engine.sequence.default_state(spec, weights, x)
            else:
                state0 = engine.sequence.check_state0(spec, weights, state0, B)
            return run_fused(spec, x, weights, state0, lengths=lengths, reverse=reverse, tbptt=tbptt)
        if fused:
            raise ValueError(f"implementation='fused' is not possible here: {blocker}; use 'bptt' or 'auto'")
        if mask is not None:
            lengths = None  # derived from the mask for the fused kernel; the engine takes the mask itself
    return engine.run(
        spec, x, weights, state0, mask=mask, lengths=lengths, reverse=reverse, tbptt=tbptt,
        recurrent_mask=recurrent_mask, zoneout=zoneout, probe=probe,
    )
