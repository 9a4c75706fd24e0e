"""The engine's two time loops as torch operators, for torch.compile, torch.export and jit tracing.

Four operators in the ``rnnkit`` namespace, each with a fake (shape-only) implementation and, for
the forwards, a registered autograd formula whose backward calls the matching backward operator,
so that AOTAutograd and export see both passes:

    rnnkit::compiled_forward / compiled_backward   the C++ loop (CPU, float32/float64); kernels in C++
    rnnkit::python_forward   / python_backward     the Python loop (any device and dtype), custom_op

The C++ loop's operators have C++ kernels (csrc/recurrence.cpp), so that a compiled graph calls
straight into the loop: a Python kernel behind the dispatcher cost more per call, at small sizes,
than the loop itself (benchmarks/op_route.py). Their schemas, fakes and autograd stay here.

Every forward takes the same arguments: x, h0, c0, the ten ``Weights`` fields, the keep masks,
out_mask, the recurrent-dropout mask, the gradient-flow probe, the cell's configuration as
strings, tbptt (0 = none) and need_cache (save what the backward needs). It returns the output
(T, B, P), the final state h_n (B, P) and c_n (B, H), then the saved histories. A tensor that a
configuration does not have is an empty (0,) placeholder, as operators return no None.

In eager mode the engine calls the loops through their autograd.Functions (``Recurrence``,
``CompiledRecurrence``) instead: the dispatcher's Python autograd layer costs more per call than
the whole C++ loop at small sizes (see ``traced``). Both routes run the same two loops, and tests
hold both to the float64 reference.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

from ..ops import CELL_OPS, CellSpec, Weights, cell_spec
from . import compiled, kernels
from .recurrence import python_loop, python_loop_backward

N_WEIGHTS = len(Weights._fields)
# Positions of the forward operators' arguments: x, h0, c0, the weights, keep_h, keep_c, out_mask,
# rdm, probe, then kind, activation, recurrent_activation, reset_after, tbptt, need_cache.
_X, _H0, _W = 0, 1, 3
_PROBE = _W + N_WEIGHTS + 4

_force_ops = False


@contextlib.contextmanager
def force_ops() -> Iterator[None]:
    """Route eager calls through the operators as well (for tests, which hold both routes to the reference)."""
    global _force_ops
    previous, _force_ops = _force_ops, True
    try:
        yield
    finally:
        _force_ops = previous


def traced(x: Tensor) -> bool:
    """Whether a tracer sees this call: torch.compile (Dynamo), torch.export (strict or not), jit
    tracing, or fake tensors. Those must see an operator; plain eager calls take the direct route."""
    return (
        _force_ops
        or torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or type(x) not in (Tensor, torch.nn.Parameter)
        or torch._C._len_torch_dispatch_stack() > 0
    )


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _fill(t: Optional[Tensor], like: Tensor) -> Tensor:
    return _empty(like) if t is None else t


def _unaliased(outputs: Sequence[Tensor], inputs: Sequence = ()) -> tuple[Tensor, ...]:
    """``outputs`` with a copy of each that shares memory with one of ``inputs`` or an earlier output.

    An operator's outputs may alias neither (torch.library); the C++ backward returns views of
    one buffer (dW_hh | dW_ih, and the bias sums), the Python loop its inputs when T = 0, and a
    placeholder may stand in more than once.
    """
    seen = {_storage(t) for t in inputs if isinstance(t, Tensor) and t.numel()}
    ids: set[int] = set()
    result = []
    for t in outputs:
        if not t.numel():
            if id(t) in ids:
                t = t.new_empty(t.shape)
        else:
            ptr = _storage(t)
            if ptr in seen:
                t = t.clone()
                ptr = _storage(t)
            seen.add(ptr)
        ids.add(id(t))
        result.append(t)
    return tuple(result)


def _storage(t: Tensor) -> int:
    """Where t's storage starts (the same for every view of it); cheaper than untyped_storage()."""
    return t.data_ptr() - t.storage_offset() * t.element_size()


# -------------------------------------------------------------------------- the C++ loop
#
# Defined here, with their fakes and autograd below, so that they exist from `import rnnkit` on (a
# saved torch.export program names them); their CPU kernels are C++ (csrc/recurrence.cpp,
# TORCH_LIBRARY_IMPL), registered when the extension loads, so that a compiled graph calls the
# loop with no Python in between. Until then a Python kernel loads the extension and calls again.

_lib = torch.library.Library("rnnkit", "FRAGMENT")
_WEIGHT_ARGS = ", ".join(f"Tensor{'' if name == 'weight_hh' else '?'} {name}" for name in Weights._fields)
_CONFIG_ARGS = "str kind, str activation, str recurrent_activation, bool reset_after, SymInt tbptt"
_lib.define(
    f"compiled_forward(Tensor x, Tensor h0, Tensor? c0, {_WEIGHT_ARGS}, Tensor? keep_h, Tensor? keep_c, "
    f"Tensor? out_mask, Tensor? rdm, Tensor? probe, {_CONFIG_ARGS}, bool need_cache) -> ({', '.join(['Tensor'] * 12)})")
# in_loop, share_grads: compiled.sums_in_loop and shares_grads, decided in Python where they are tuned.
# Their defaults (each valid at any size, only slower at some) keep a graph compiled before they
# existed (a stale torch.compile cache) running.
_lib.define(
    f"compiled_backward(Tensor d_out, Tensor? d_h, Tensor? d_c, Tensor x, {_WEIGHT_ARGS}, Tensor? keep_h, "
    "Tensor? keep_c, Tensor? out_mask, Tensor? rdm, Tensor h_hist, Tensor c_hist, Tensor gates, Tensor extra, "
    f"Tensor hin_all, Tensor a_hat, Tensor rstd, Tensor c_hat, Tensor rstd_c, {_CONFIG_ARGS}, bool want_norms, "
    f"bool[] wants, bool in_loop=True, bool share_grads=False) -> ({', '.join(['Tensor'] * 14)})")
compiled_forward = torch.ops.rnnkit.compiled_forward.default
"""x (T, B, F) raw inputs -> (out, h_n, c_n, h_hist, c_hist, gates, extra, hin_all, a_hat, rstd, c_hat, rstd_c)."""
compiled_backward = torch.ops.rnnkit.compiled_backward.default
"""BPTT of ``compiled_forward`` -> (dx, dh0, dc0, the ten weights' gradients, norms); wants: x, then each weight."""


def _loading_kernel(name: str):
    """The operator's kernel until the extension's own is registered: load it, then call again."""
    def kernel(*args):
        if kernels._module is not None:  # loaded, yet not dispatched to its CPU kernel
            raise RuntimeError(f"rnnkit::{name} runs the C++ loop, which is for float32/float64 on the CPU")
        if kernels.load_kernels() is None:
            raise RuntimeError(f"rnnkit::{name} needs the C++ loop, which is unavailable: {kernels.load_error()}")
        return getattr(torch.ops.rnnkit, name).default(*args)

    return kernel


for _name in ("compiled_forward", "compiled_backward"):
    _lib.impl(_name, _loading_kernel(_name), "CompositeExplicitAutograd")


def _gates_are_h(spec: CellSpec, keep_h: Optional[Tensor]) -> bool:
    """An Elman cell without a keep mix saves no gates: they are h_hist[1:] (recurrence.cpp)."""
    return spec.kind == "rnn" and keep_h is None


@torch.library.register_fake("rnnkit::compiled_forward", lib=_lib)
def _(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, peephole, ln_gamma, ln_beta, ln_cell_gamma,
      ln_cell_beta, keep_h, keep_c, out_mask, rdm, probe, kind, activation, recurrent_activation, reset_after, tbptt,
      need_cache):
    T, B = x.shape[:2]
    G, H = weight_hh.shape
    lstm = kind == "lstm"
    x = h0  # the outputs' dtype (x may be bf16)
    e = _empty(x)
    state = x.new_empty(B, H)
    c_n = x.new_empty(B, H) if lstm else e
    if not need_cache:
        return _fresh((x.new_empty(T, B, H), state, c_n, *(e for _ in range(9))))
    spec = cell_spec(kind, activation, recurrent_activation, reset_after)
    return _fresh((
        x.new_empty(T, B, H), state, c_n,
        x.new_empty(T + 1, B, H),
        x.new_empty(T + 1, B, H) if lstm else e,
        e if _gates_are_h(spec, keep_h) else x.new_empty(T, B, G),
        x.new_empty(T, B, H) if kind != "rnn" else e,
        x.new_empty(T, B, H) if rdm is not None else e,
        x.new_empty(T, B, G) if ln_gamma is not None else e,
        x.new_empty(T, B, 4) if ln_gamma is not None else e,
        x.new_empty(T, B, H) if ln_cell_gamma is not None else e,
        x.new_empty(T, B, 1) if ln_cell_gamma is not None else e,
    ))


def _fresh(outputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Fake outputs, each its own tensor (a placeholder may appear more than once)."""
    return tuple(t.new_empty(t.shape) if not t.numel() else t for t in outputs)


def _weight_grads(w: Weights, grads: dict, want: dict) -> list:
    """One gradient per present, wanted weight (zeros where the loop had none to give), else a placeholder."""
    out = []
    for name, t in zip(Weights._fields, w):
        if t is None or not want[name]:
            out.append(_empty(w.weight_hh))
        else:
            g = grads.get(name)
            out.append(torch.zeros_like(t) if g is None else g.reshape(t.shape))
    return out


def _fake_backward_outputs(x_like: Tensor, d_out: Tensor, w: Weights, lstm: bool, want_norms: bool,
                           wants: Sequence[bool]) -> tuple:
    T, B = d_out.shape[:2]
    P = w.weight_hh.shape[1]
    H = w.weight_hr.shape[1] if w.weight_hr is not None else P
    want = dict(zip(("x", *Weights._fields), wants))
    e = _empty(d_out)
    d_weights = [e if t is None or not want[name] else t.new_empty(t.shape) for name, t in zip(Weights._fields, w)]
    n_state = 2 if lstm else 1
    return (x_like.new_empty(x_like.shape) if want["x"] else e, d_out.new_empty(B, P),
            d_out.new_empty(B, H) if lstm else e, *d_weights, d_out.new_empty(T, n_state) if want_norms else e)


# ------------------------------------------------------------------------ the Python loop

N_CACHES = 7  # the most any cell's step saves (LSTM: gates, tanh_c, m, a_hat, rstd, c_hat, rstd_c)


@torch.library.custom_op("rnnkit::python_forward", mutates_args=())
def python_forward(
    x: Tensor, h0: Tensor, c0: Optional[Tensor],
    weight_ih: Optional[Tensor], weight_hh: Tensor, bias_ih: Optional[Tensor], bias_hh: Optional[Tensor],
    weight_hr: Optional[Tensor], peephole: Optional[Tensor], ln_gamma: Optional[Tensor], ln_beta: Optional[Tensor],
    ln_cell_gamma: Optional[Tensor], ln_cell_beta: Optional[Tensor],
    keep_h: Optional[Tensor], keep_c: Optional[Tensor], out_mask: Optional[Tensor], rdm: Optional[Tensor],
    probe: Optional[Tensor], kind: str, activation: str, recurrent_activation: str, reset_after: bool, tbptt: int,
    need_cache: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """x (T, B, G) projected inputs -> (out, h_n, c_n, hin_all, h_prev, c_prev, 7 step caches)."""
    spec = cell_spec(kind, activation, recurrent_activation, reset_after)
    w = Weights(weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, peephole, ln_gamma, ln_beta, ln_cell_gamma,
                ln_cell_beta)
    lstm = kind == "lstm"
    state0 = (h0, c0) if lstm else (h0,)
    out, state, saved = python_loop(spec, x, state0, w, (keep_h, keep_c)[: len(state0)], rdm, out_mask, need_cache)
    # With T = 0 the final state is state0 itself, and an operator's output may not alias its input.
    state = tuple(s if x.shape[0] else s.clone() for s in state)
    e = _empty(x)
    c_n = state[1] if lstm else e
    inputs = (x, h0, c0, *w, keep_h, keep_c, out_mask, rdm)
    if not need_cache:
        return _unaliased((out, state[0], c_n, *(e for _ in range(3 + N_CACHES))), inputs)
    hin_all, states_prev, caches = saved
    caches = [_fill(c, x) for c in caches] + [e] * (N_CACHES - len(caches))
    prev_c = states_prev[1] if lstm else e
    return _unaliased((out, state[0], c_n, _fill(hin_all, x), states_prev[0], prev_c, *caches), inputs)


@functools.lru_cache(maxsize=None)
def _cache_presence(spec: CellSpec, shapes: tuple) -> tuple[bool, ...]:
    """Which of a step's caches exist for these weights (shapes: each ``Weights`` field's, or None):
    one step of the cell on meta tensors says, so this follows ``rnnkit.ops`` whatever it saves."""
    w = Weights(*(None if s is None else torch.empty(s, device="meta") for s in shapes))
    return tuple(c is not None for c in _one_step_caches(spec, w, 1, torch.empty(0, device="meta")))


def _one_step_caches(spec: CellSpec, w: Weights, B, like: Tensor) -> tuple:
    P = w.weight_hh.shape[1]
    H = w.weight_hr.shape[1] if w.weight_hr is not None else P
    state = tuple(like.new_empty(B, n) for n in (P, H)[: spec.n_states])
    _, cache = CELL_OPS[spec.kind].step(like.new_empty(B, w.weight_hh.shape[0]), state, state[0], w, spec)
    return cache


def _shapes(w: Weights) -> tuple:
    return tuple(None if t is None else tuple(t.shape) for t in w)


@python_forward.register_fake
def _(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, peephole, ln_gamma, ln_beta, ln_cell_gamma,
      ln_cell_beta, keep_h, keep_c, out_mask, rdm, probe, kind, activation, recurrent_activation, reset_after, tbptt,
      need_cache):
    T, B = x.shape[:2]
    lstm = kind == "lstm"
    e = _empty(x)
    c_n = c0.new_empty(c0.shape) if lstm else e
    out = x.new_empty(T, B, h0.shape[1])
    if not need_cache:
        return _fresh((out, h0.new_empty(h0.shape), c_n, *(e for _ in range(3 + N_CACHES))))
    spec = cell_spec(kind, activation, recurrent_activation, reset_after)
    w = Weights(weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, peephole, ln_gamma, ln_beta, ln_cell_gamma,
                ln_cell_beta)
    # One step on fake tensors gives each cache's (B, ...) shape; the loop stacks T of them.
    caches = [e if c is None else c.new_empty(T, *c.shape) for c in _one_step_caches(spec, w, B, x)]
    caches += [e] * (N_CACHES - len(caches))
    return _fresh((out, h0.new_empty(h0.shape), c_n, out.new_empty(T, *h0.shape), out.new_empty(T, *h0.shape),
            x.new_empty(T, *c0.shape) if lstm else e, *caches))


@torch.library.custom_op("rnnkit::python_backward", mutates_args=())
def python_backward(
    d_out: Tensor, d_h: Optional[Tensor], d_c: Optional[Tensor], x: Tensor,
    weight_ih: Optional[Tensor], weight_hh: Tensor, bias_ih: Optional[Tensor], bias_hh: Optional[Tensor],
    weight_hr: Optional[Tensor], peephole: Optional[Tensor], ln_gamma: Optional[Tensor], ln_beta: Optional[Tensor],
    ln_cell_gamma: Optional[Tensor], ln_cell_beta: Optional[Tensor],
    keep_h: Optional[Tensor], keep_c: Optional[Tensor], out_mask: Optional[Tensor], rdm: Optional[Tensor],
    hin_all: Tensor, h_prev: Tensor, c_prev: Tensor, cache0: Tensor, cache1: Tensor, cache2: Tensor,
    cache3: Tensor, cache4: Tensor, cache5: Tensor, cache6: Tensor,
    kind: str, activation: str, recurrent_activation: str, reset_after: bool, tbptt: int, want_norms: bool,
    wants: Sequence[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """BPTT of ``python_forward`` -> (dxw, dh0, dc0, the ten weights' gradients, norms)."""
    spec = cell_spec(kind, activation, recurrent_activation, reset_after)
    w = Weights(weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, peephole, ln_gamma, ln_beta, ln_cell_gamma,
                ln_cell_beta)
    lstm = kind == "lstm"
    presence = _cache_presence(spec, _shapes(w))
    caches = [c if here else None for c, here in zip((cache0, cache1, cache2, cache3, cache4, cache5, cache6), presence)]
    states_prev = (h_prev, c_prev) if lstm else (h_prev,)
    keeps = (keep_h, keep_c)[: len(states_prev)]
    dxw, d_state0, grads, norms = python_loop_backward(
        spec, tbptt or None, want_norms, hin_all, states_prev, caches, w, keeps, rdm, out_mask, d_out,
        (d_h, d_c)[: len(states_prev)])
    want = dict(zip(("x", *Weights._fields), wants))
    d_weights = _weight_grads(w, grads, want)
    outputs = (dxw, d_state0[0], d_state0[1] if lstm else _empty(x), *d_weights, _fill(norms, x))
    return _unaliased(outputs, (d_out, d_h, d_c, x, *w))


def _fake_backward(d_out, d_h, d_c, x, *rest):
    """The fake of both backward operators: (..., kind, activation, recurrent_activation, reset_after,
    tbptt, want_norms, wants) close both argument lists."""
    w = Weights(*rest[:N_WEIGHTS])
    kind, want_norms, wants = rest[-7], rest[-2], rest[-1]
    return _fresh(_fake_backward_outputs(x, d_out, w, kind == "lstm", want_norms, wants))


python_backward.register_fake(_fake_backward)


@torch.library.register_fake("rnnkit::compiled_backward", lib=_lib)
def _(*args, **kwargs):
    # Without in_loop and share_grads, which the dispatcher leaves out where they equal their defaults.
    return _fake_backward(*args[: len(compiled_backward._schema.arguments) - 2])


# ------------------------------------------------------------------------------ autograd


def _setup_context(ctx, inputs, output) -> None:
    ctx.config = inputs[_PROBE + 1 :]  # kind, activation, recurrent_activation, reset_after, tbptt, need_cache
    ctx.has_probe = inputs[_PROBE] is not None
    ctx.mark_non_differentiable(*output[3:])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(*inputs[:_PROBE], *output[3:])


def _make_backward(backward_op, loop_args=lambda inputs: ()):
    """The autograd formula of a forward operator whose backward is ``backward_op``; ``loop_args``
    gives the arguments that follow ``wants`` (from the forward's inputs)."""
    def backward(ctx, d_out, d_h, d_c, *_unused):
        saved = ctx.saved_tensors
        inputs, histories = saved[:_PROBE], saved[_PROBE:]
        x = inputs[_X]
        kind, activation, recurrent_activation, reset_after, tbptt, need_cache = ctx.config
        if not need_cache:
            raise RuntimeError("rnnkit: the recurrence ran with need_cache=False, so it saved nothing to backpropagate "
                               "through; call it with need_cache=True when gradients are needed")
        needs = ctx.needs_input_grad
        wants = [needs[_X], *needs[_W : _W + N_WEIGHTS]]
        if d_out is None:
            T, B = x.shape[:2]
            d_out = inputs[_H0].new_zeros(T, B, inputs[_H0].shape[1])
        res = backward_op(d_out, d_h, d_c, x, *inputs[_W:_PROBE], *histories, kind, activation, recurrent_activation,
                          reset_after, tbptt, ctx.has_probe, wants, *loop_args(inputs))
        d_x, dh0, dc0, *d_weights, norms = res
        lstm = kind == "lstm"
        grads = [d_x if needs[_X] else None, dh0, dc0 if lstm else None]
        grads += [g if (t is not None and wanted) else None
                  for g, t, wanted in zip(d_weights, inputs[_W : _W + N_WEIGHTS], wants[1:])]
        grads += [None] * 4 + [norms if ctx.has_probe else None] + [None] * 6
        return tuple(grads)

    return backward


def _compiled_loop_args(inputs) -> tuple[bool, bool]:
    """in_loop and share_grads of ``compiled_backward``: how the C++ backward sums dW (compiled.py)."""
    w_ih, w_hh = inputs[_W], inputs[_W + 1]
    sizes = (w_hh.shape[0], w_hh.shape[1], w_ih.shape[1], w_hh.element_size())
    return compiled.sums_in_loop(*sizes), compiled.shares_grads(*sizes)


torch.library.register_autograd(
    "rnnkit::compiled_forward", _make_backward(compiled_backward, lambda inputs: _compiled_loop_args(inputs)),
    setup_context=_setup_context, lib=_lib)
python_forward.register_autograd(_make_backward(python_backward), setup_context=_setup_context)


def run_op(spec: CellSpec, xw: Tensor, state0: Sequence[Tensor], w: Weights, keeps: Sequence[Optional[Tensor]],
           out_mask: Optional[Tensor], rdm: Optional[Tensor], tbptt: Optional[int],
           probe: Optional[Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """``run_recurrence`` through the operators: the C++ loop when ``w.weight_ih`` is set (xw: raw x),
    else the Python loop (xw: the projection). Returns (out (T, B, P), final state tuple)."""
    op = compiled_forward if w.weight_ih is not None else python_forward
    lstm = spec.kind == "lstm"
    tensors = [xw, *state0, *w, probe]
    need_cache = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    res = op(xw, state0[0], state0[1] if lstm else None, *w, keeps[0], keeps[1] if lstm else None, out_mask, rdm,
             probe, spec.kind, spec.activation, spec.recurrent_activation, spec.reset_after, tbptt or 0, need_cache)
    return res[0], ((res[1], res[2]) if lstm else (res[1],))
