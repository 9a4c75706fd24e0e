"""Run one cell over a batch-first sequence with the hand-derived BPTT engine.

This is the layer-facing entry point: it checks arguments, turns lengths into a
mask, reverses time and hands the time loop to the compiled loop, which projects
each step's inputs itself, or else does the input projection as one GEMM and
hands the loop to the Python ``Recurrence``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..ops import CellSpec, Weights
from . import library, precision
from .blas import project
from .recurrence import run_recurrence, uses_compiled_loop


def check_tbptt_and_mask(tbptt: Optional[int], mask: Optional[Tensor], lengths: Optional[Tensor], B: int, T: int,
                         device: torch.device) -> Optional[Tensor]:
    """Check ``tbptt``, and ``mask`` (B, T) or ``lengths`` (B,) (not both); returns the mask, or None."""
    if tbptt is not None and (not isinstance(tbptt, int) or isinstance(tbptt, bool) or tbptt < 1):
        raise ValueError(f"Argument `tbptt` must be a positive integer or None, got {tbptt!r}")
    if mask is not None and lengths is not None:
        raise ValueError("Pass either `mask` or `lengths`, not both")
    if lengths is not None:
        return lengths_to_mask(check_lengths(lengths, B, T).to(device), T)
    if mask is not None:
        return check_mask(mask, B, T).to(device)
    return None


def lengths_to_mask(lengths: Tensor, T: int) -> Tensor:
    """(B,) integer lengths -> (B, T) bool mask, True on real steps (right padding)."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def check_lengths(lengths: Tensor, B: int, T: int) -> Tensor:
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.dtype.is_complex:
        raise TypeError(f"Argument `lengths` must hold integers, got dtype {lengths.dtype}")
    if lengths.shape != (B,):
        raise ValueError(f"Argument `lengths` must have shape (B,) = ({B},), got {tuple(lengths.shape)}")
    # A tracer or a meta tensor has no values to read (and a compiled graph would break on them).
    if not library.traced(lengths) and lengths.device.type != "meta" and B and (int(lengths.min()) < 0 or int(lengths.max()) > T):
        raise ValueError(
            f"Argument `lengths` must lie in [0, T={T}], got min {int(lengths.min())} and max {int(lengths.max())}"
        )
    return lengths


def check_mask(mask: Tensor, B: int, T: int) -> Tensor:
    mask = torch.as_tensor(mask)
    if mask.shape != (B, T):
        raise ValueError(f"Argument `mask` must have shape (B, T) = ({B}, {T}), got {tuple(mask.shape)}")
    return mask


def check_input(x: Tensor, input_size: int, argument: str = "x", dtype: Optional[torch.dtype] = None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"Argument `{argument}` must be a torch.Tensor of shape (B, T, F), got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"Argument `{argument}` must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 3:
        raise ValueError(f"Argument `{argument}` must have shape (B, T, F) (rank 3), got shape {tuple(x.shape)}")
    if x.shape[2] != input_size:
        raise ValueError(
            f"Argument `{argument}` must have F = {input_size} features in its last axis, got shape {tuple(x.shape)}"
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"Argument `{argument}` has dtype {x.dtype} but the weights are {dtype}; cast one to the other")


def state_sizes(weights: Weights) -> tuple[int, ...]:
    """Sizes of the state components: (P,) or, for LSTM, (P, H)."""
    P = weights.weight_hh.shape[1]
    H = weights.weight_hr.shape[1] if weights.weight_hr is not None else P
    return (P, H)


def default_state(spec: CellSpec, weights: Weights, x: Tensor) -> tuple[Tensor, ...]:
    dtype = weights.weight_hh.dtype  # x may be bf16 under autocast (see precision.py)
    return tuple(x.new_zeros(x.shape[0], n, dtype=dtype) for n in state_sizes(weights)[: spec.n_states])


def check_state0(spec: CellSpec, weights: Weights, state0: Sequence[Tensor], B: int) -> tuple[Tensor, ...]:
    state0 = tuple(state0)
    if len(state0) != spec.n_states:
        raise ValueError(f"Argument `state0` must have {spec.n_states} tensor(s) for a {spec.kind} cell, got {len(state0)}")
    for i, (s, n) in enumerate(zip(state0, state_sizes(weights))):
        if not isinstance(s, Tensor) or s.shape != (B, n):
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise ValueError(f"Argument `state0[{i}]` must have shape (B, {n}) = ({B}, {n}), got {shape}")
        if s.dtype != weights.weight_hh.dtype:
            raise TypeError(f"Argument `state0[{i}]` has dtype {s.dtype} but the weights are {weights.weight_hh.dtype}")
    return state0


def run(
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
    probe: Optional[Tensor] = None,
    backend: str = "auto",
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``spec``'s cell over ``x`` with hand-derived BPTT.

    Args:
        x: (B, T, F) floating input.
        weights: the cell's ``Weights`` (torch.nn layout).
        state0: initial state, ``(h0,)`` or ``(h0, c0)`` with h0 (B, P), c0 (B, H); zeros if None.
        mask: (B, T) bool/0-1 mask, True on real steps; a masked step leaves the state
            unchanged and outputs zero. ``lengths`` (B,) is the right-padded shorthand.
        reverse: process t = T-1 .. 0; outputs stay aligned with the input's time axis.
        tbptt: cut the gradient every ``tbptt`` processed steps (the forward state carries on).
        recurrent_mask: (B, P) variational recurrent-dropout mask, already scaled by 1/(1-p).
        zoneout: per state component, (B, T, dim) probability of keeping the previous value
            (0/1 samples in training, the rate itself at inference), or None.
        probe: optional (T, n_state) zero tensor requiring grad; after backward its ``.grad``
            holds, per time step (in data order), ||dL/dh_t|| (total) and for LSTM the norm of
            dL/dc_t carried back from step t+1 (see ``Recurrence``).
        backend: "auto" runs the time loop in C++ where it covers the configuration (see
            ``engine.compiled``), "python" forces the Python loop; both compute the same.
    Returns:
        out (B, T, P) and the final state tuple.

    Under ``torch.autocast("cpu", dtype=torch.bfloat16)``, or with bf16 weights and input, the
    GEMMs run in bf16 and the rest in float32; the outputs then have torch.nn's dtype (precision.py).
    """
    kw = dict(mask=mask, lengths=lengths, reverse=reverse, tbptt=tbptt, recurrent_mask=recurrent_mask,
              zoneout=zoneout, probe=probe, backend=backend)
    out_dtype = precision.bf16_output(spec, x, weights)
    if out_dtype is None:
        return _run(spec, x, weights, state0, bf16=False, **kw)
    # The loop takes x in bf16 and the rest in float32 (casts that autograd differentiates), and
    # runs without autocast, which would otherwise turn its float32 step math into bf16.
    weights = Weights(*(precision.as_float(w) for w in weights))
    if state0 is not None and isinstance(state0, (tuple, list)):
        state0 = tuple(precision.as_float(s) for s in state0)
    kw["recurrent_mask"] = precision.as_float(recurrent_mask)
    if zoneout is not None:
        kw["zoneout"] = [precision.as_float(z) for z in zoneout]
    with torch.autocast("cpu", enabled=False):
        out, final = _run(spec, x.to(torch.bfloat16), weights, state0, bf16=True, **kw)
    return out.to(out_dtype), tuple(s.to(out_dtype) for s in final)


def _run(spec: CellSpec, x: Tensor, weights: Weights, state0: Optional[Sequence[Tensor]], *, bf16: bool,
         mask: Optional[Tensor], lengths: Optional[Tensor], reverse: bool, tbptt: Optional[int],
         recurrent_mask: Optional[Tensor], zoneout: Optional[Sequence[Optional[Tensor]]], probe: Optional[Tensor],
         backend: str) -> tuple[Tensor, tuple[Tensor, ...]]:
    """``run`` itself; with ``bf16``, x is bfloat16 and the weights float32 (see ``run``)."""
    check_input(x, weights.weight_ih.shape[1], dtype=None if bf16 else weights.weight_ih.dtype)
    if backend not in ("auto", "python"):
        raise ValueError(f"Argument `backend` must be 'auto' or 'python', got {backend!r}")
    B, T, _ = x.shape
    n_state = spec.n_states
    sizes = state_sizes(weights)[:n_state]
    mask = check_tbptt_and_mask(tbptt, mask, lengths, B, T, x.device)
    state0 = default_state(spec, weights, x) if state0 is None else check_state0(spec, weights, state0, B)
    if recurrent_mask is not None and recurrent_mask.shape != (B, sizes[0]):
        raise ValueError(
            f"Argument `recurrent_mask` must have shape (B, P) = ({B}, {sizes[0]}), got {tuple(recurrent_mask.shape)}"
        )
    zoneout = tuple(zoneout) if zoneout is not None else (None,) * n_state
    for i, (z, n) in enumerate(zip(zoneout, sizes)):
        if z is not None and z.shape != (B, T, n):
            raise ValueError(f"Argument `zoneout[{i}]` must have shape (B, T, {n}) = ({B}, {T}, {n}), got {tuple(z.shape)}")

    # Time-major from here on: per-step slices are then contiguous views.
    def time_major(t: Tensor) -> Tensor:
        t = t.transpose(0, 1)
        return t.flip(0) if reverse else t

    bias = weights.bias_ih
    if spec.folds_hh_bias and weights.bias_hh is not None:
        bias = weights.bias_hh if bias is None else bias + weights.bias_hh
    inner = weights._replace(bias_ih=bias, bias_hh=None if spec.folds_hh_bias else weights.bias_hh)
    traced = library.traced(x)
    if uses_compiled_loop(spec, weights, x, backend):
        xw = time_major(x)  # projected step by step inside the compiled loop
    else:
        # One GEMM over all steps; a tracer sees torch's own linear (Projection's backward calls the C++ module).
        if bf16:  # one bf16 GEMM by torch (oneDNN), float32 out; the recurrent weight rounded to bf16
            low = lambda t: None if t is None else t.to(torch.bfloat16)  # noqa: E731
            xw = torch.nn.functional.linear(time_major(x), low(weights.weight_ih), low(bias)).float().contiguous()
            inner = inner._replace(weight_hh=low(weights.weight_hh).float())
        else:
            linear = torch.nn.functional.linear if traced else project
            xw = linear(time_major(x), weights.weight_ih, bias).contiguous()  # (T, B, G)
        inner = inner._replace(weight_ih=None, bias_ih=None)

    out_mask = None
    keeps: list[Optional[Tensor]] = [None] * n_state
    if mask is not None:
        m = time_major(mask.to(state0[0].dtype))[..., None]  # (T, B, 1), in the state's dtype
        out_mask = m
        keeps = [1 - m for _ in range(n_state)]
    for i, z in enumerate(zoneout):
        if z is not None:
            z = time_major(z.to(state0[0].dtype))
            keeps[i] = z if out_mask is None else 1 - out_mask * (1 - z)

    if probe is not None:
        if probe.shape != (T, n_state) or not probe.requires_grad:
            raise ValueError(f"Argument `probe` must be a (T, n_state) = ({T}, {n_state}) tensor that requires grad")
        probe = probe.flip(0) if reverse else probe
    if traced:  # torch.compile, torch.export, jit tracing: the loops as operators (engine/library.py)
        out, final = library.run_op(spec, xw, state0, inner, keeps, out_mask, recurrent_mask, tbptt, probe)
    else:
        out, final = run_recurrence(spec, xw, state0, inner, keeps, out_mask, recurrent_mask, tbptt, probe, backend)
    out = out.flip(0) if reverse else out
    return out.transpose(0, 1), final
