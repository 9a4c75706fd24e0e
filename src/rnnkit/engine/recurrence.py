"""The one time loop: forward over t, and backpropagation through time by hand.

``Recurrence`` is a ``torch.autograd.Function`` over the *recurrent* part only.
The input projection ``xw = x W_ih^T + b`` is one batched GEMM outside it, under
ordinary autograd, so dW_ih, db and dx come out of a single GEMM each as well.

Inside, per step t (processing order, after any reversal):

    new      = cell_step(xw_t, state_{t-1}, hin_t = h_{t-1} * rdm)
    state_t  = keep_t * state_{t-1} + (1 - keep_t) * new      (keep: mask / zoneout)
    out_t    = h_t * m_t                                       (m: the length mask)

and the backward walks t = T-1 .. 0 carrying d(state), cutting it every ``tbptt``
steps. The recurrent weight gradients are summed over t afterwards, one GEMM each.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..ops import CELL_OPS, CellSpec, Weights
from .compiled import CompiledRecurrence, kernels_blocker
from .contract import backward_outputs, unpack_inputs


def _mix(keep: Optional[Tensor], old: Tensor, new: Tensor) -> Tensor:
    return new if keep is None else torch.lerp(new, old, keep)


def python_loop(spec: CellSpec, xw: Tensor, state0: Sequence[Tensor], w: Weights, keeps, rdm: Optional[Tensor],
                out_mask: Optional[Tensor], need_grad: bool) -> tuple:
    """The forward loop over t: returns out (T, B, P), the final state, and what the backward needs,
    (hin_all (T, B, P), states_prev (each (T, B, n)), caches (each (T, B, ...) or None)), or None."""
    step = CELL_OPS[spec.kind].step
    state = tuple(state0)
    T = xw.shape[0]
    history = [[s] for s in state]
    hins, caches = [], []
    keep_steps = [k.unbind(0) if k is not None else None for k in keeps]
    for t, xw_t in enumerate(xw.unbind(0)):
        hin = state[0] if rdm is None else state[0] * rdm
        new, cache = step(xw_t, state, hin, w, spec)
        state = tuple(_mix(ks[t] if ks is not None else None, old, nw) for ks, old, nw in zip(keep_steps, state, new))
        for hist, s in zip(history, state):
            hist.append(s)
        if need_grad:
            hins.append(hin)
            caches.append(cache)
    h_all = torch.stack(history[0][1:]) if T else xw.new_zeros((0,) + state[0].shape)
    out = h_all if out_mask is None else h_all * out_mask
    if not need_grad:
        return out, state, None
    stacked_caches = tuple(torch.stack(c) if c[0] is not None else None for c in zip(*caches)) if T else ()
    states_prev = tuple(torch.stack(hist[:-1]) if T else hist[0].unsqueeze(0)[:0] for hist in history)
    return out, state, (torch.stack(hins) if T else None, states_prev, stacked_caches)


def python_loop_backward(spec: CellSpec, tbptt: Optional[int], want_norms: bool, hin_all: Optional[Tensor],
                         states_prev: Sequence[Tensor], caches: Sequence[Optional[Tensor]], w: Weights, keeps,
                         rdm: Optional[Tensor], out_mask: Optional[Tensor], d_out: Tensor,
                         d_final: Sequence[Optional[Tensor]]) -> tuple:
    """BPTT through ``python_loop``: returns (dxw (T, B, G), d_state0 tuple, {weight name: gradient},
    norms (T, n_state) or None)."""
    ops = CELL_OPS[spec.kind]
    T = d_out.shape[0]
    d_carry = [d if d is not None else torch.zeros_like(s[0]) for d, s in zip(d_final, states_prev)]
    if out_mask is not None:
        d_out = d_out * out_mask
    dxw = d_out.new_empty(T, *states_prev[0].shape[1:-1], _gates_width(w))
    step_grads: list = []
    norms = [] if want_norms else None
    cache_steps = [c.unbind(0) if c is not None else None for c in caches]
    prev_steps = [s.unbind(0) for s in states_prev]
    keep_steps = [k.unbind(0) if k is not None else None for k in keeps]
    hin_steps = hin_all.unbind(0) if T else ()
    d_out_steps = d_out.unbind(0)
    for t in range(T - 1, -1, -1):
        d_state = [d_carry[0] + d_out_steps[t]] + d_carry[1:]
        if norms is not None:
            norms.append(torch.stack([torch.linalg.vector_norm(d) for d in d_state]))
        d_new, d_prev = [], []
        for ks, d in zip(keep_steps, d_state):
            if ks is None:
                d_new.append(d)
                d_prev.append(None)
            else:
                d_new.append(d * (1 - ks[t]))
                d_prev.append(d * ks[t])
        cache_t = tuple(c[t] if c is not None else None for c in cache_steps)
        prev_t = tuple(p[t] for p in prev_steps)
        dxw_t, d_prev_cell, dhin, sg = ops.step_backward(tuple(d_new), cache_t, prev_t, hin_steps[t], w, spec)
        dxw[t] = dxw_t
        step_grads.append(sg)
        d_prev[0] = _add(d_prev[0], dhin if rdm is None else dhin * rdm)
        d_carry = [_add(a, b) for a, b in zip(d_prev, d_prev_cell)]
        if tbptt is not None and t % tbptt == 0 and t > 0:
            # The graph is cut between windows: state_{t-1} enters window t/k as a constant.
            d_carry = [torch.zeros_like(d) for d in d_carry]
    step_grads.reverse()
    stacked_sg = tuple(torch.stack(g) if g[0] is not None else None for g in zip(*step_grads)) if T else ()
    grads = ops.weight_grads(w, spec, caches, stacked_sg, hin_all, states_prev) if T else {}
    d_norms = None
    if norms is not None:
        norms.reverse()
        d_norms = torch.stack(norms) if T else d_out.new_zeros(0, len(states_prev))
    return dxw, tuple(d_carry), grads, d_norms


class Recurrence(torch.autograd.Function):
    """Run a cell over time-major projected inputs.

    Inputs:
        spec: CellSpec.  tbptt: window k or None.
        xw: (T, B, G) projected inputs.  state0: tuple of (B, P) [and (B, H)].
        keeps: per state component, (T, B, dim) or (T, B, 1) or None; 1 keeps the old state.
        out_mask: (T, B, 1) or None; zeroes outputs.  rdm: (B, P) or None, recurrent dropout.
        probe: None, or a (T, n_state) zero tensor that requires grad; its "gradient" is then,
            per processed step and over the batch, the norm of the total dL/dh_t (through the
            output at t and all later steps) and, for LSTM, of the dL/dc_t carried back from
            step t+1 (the cell path alone; 0 at the last step unless the final c is used).
            This is how ``rnnkit.diagnostics`` sees gradient flow through time.
        weights: Weights (weight_ih and bias_ih are unused here).
    Outputs:
        out: (T, B, P) and the final state components.

    In eager mode the engine calls this directly; under a tracer it calls the same loops as the
    operators ``rnnkit::python_forward``/``python_backward`` (engine/library.py).
    """

    @staticmethod
    def forward(ctx, spec: CellSpec, tbptt: Optional[int], xw: Tensor, n_state: int, *rest):  # type: ignore[override]
        state0, keeps, out_mask, rdm, probe, w = unpack_inputs(n_state, rest)
        need_grad = any(ctx.needs_input_grad)
        out, state, saved = python_loop(spec, xw, state0, w, keeps, rdm, out_mask, need_grad)
        if need_grad:
            hin_all, states_prev, caches = saved
            ctx.spec, ctx.tbptt, ctx.n_state = spec, tbptt, n_state
            ctx.has_probe = probe is not None
            ctx.weights_present = [x is not None for x in w]
            ctx.save_for_backward(hin_all, out_mask, rdm, *states_prev, *keeps, *caches, *w)
            ctx.n_cache = len(caches)
        return (out,) + state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor, *d_final: Optional[Tensor]):  # type: ignore[override]
        spec, n_state, n_cache = ctx.spec, ctx.n_state, ctx.n_cache
        saved = ctx.saved_tensors
        hin_all, out_mask, rdm = saved[:3]
        states_prev = saved[3 : 3 + n_state]
        keeps = saved[3 + n_state : 3 + 2 * n_state]
        caches = saved[3 + 2 * n_state : 3 + 2 * n_state + n_cache]
        w = Weights(*saved[3 + 2 * n_state + n_cache :])
        dxw, d_state0, grads, norms = python_loop_backward(
            spec, ctx.tbptt, ctx.has_probe, hin_all, states_prev, caches, w, keeps, rdm, out_mask, d_out, d_final)
        d_weights = [grads.get(name) if present else None for name, present in zip(Weights._fields, ctx.weights_present)]
        return backward_outputs(n_state, dxw, d_state0, norms, d_weights)


def _add(a: Optional[Tensor], b: Optional[Tensor]) -> Optional[Tensor]:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _gates_width(w: Weights) -> int:
    return w.weight_hh.shape[0]


def uses_compiled_loop(spec: CellSpec, weights: Weights, like: Tensor, backend: str = "auto") -> bool:
    """Whether ``run_recurrence`` runs the C++ loop for this configuration."""
    return backend != "python" and kernels_blocker(spec, weights, like) is None


def run_recurrence(
    spec: CellSpec,
    xw: Tensor,
    state0: Sequence[Tensor],
    weights: Weights,
    keeps: Sequence[Optional[Tensor]],
    out_mask: Optional[Tensor],
    rdm: Optional[Tensor],
    tbptt: Optional[int],
    probe: Optional[Tensor] = None,
    backend: str = "auto",
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the compiled loop on raw inputs, or ``Recurrence`` (the Python loop) on projected ones.

    With ``weights.weight_ih`` set, ``xw`` is the raw input (T, B, F) and the compiled loop must
    apply (``uses_compiled_loop``); without it, ``xw`` is the projection (T, B, G) and the Python
    loop runs. Returns (out (T, B, P), final state tuple).
    """
    n = len(state0)
    fn = CompiledRecurrence if weights.weight_ih is not None else Recurrence
    if fn is CompiledRecurrence and not uses_compiled_loop(spec, weights, xw, backend):
        raise ValueError("the Python loop takes projected inputs: pass weights without weight_ih")
    res = fn.apply(spec, tbptt, xw, n, *state0, *keeps, out_mask, rdm, probe, *weights)
    return res[0], tuple(res[1:])
