"""The engine's time loop compiled to C++ (``csrc/recurrence.cpp``), same contract as ``Recurrence``.

The C++ loop does the same math as ``rnnkit.ops`` step by step (tests hold the
two paths to the same reference), minus Python's per-op dispatch cost, which
dominates at typical sizes. ``kernels`` builds and loads it; where it cannot be built
the engine keeps the Python loop.

A float32 loop given x in bfloat16 runs its GEMMs with bf16 operands and float32 sums (bf16
autocast, see precision.py): by AMX tiles where the CPU has them, else as float32 math on the
bf16-rounded operands; ``RNNKIT_BF16_KERNEL=avx512_bf16`` asks for AVX512-BF16's vdpbf16ps and
``=emulate`` for the float32 math (``bf16_kernel()`` says which runs; recurrence.cpp says why).
All it returns is float32, but dx, which has x's dtype.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..ops import CellSpec, Weights
from . import kernels
from .blas import matmul, weight_grad
from .contract import backward_outputs, unpack_inputs
from .kernels import ACT_CODES, kind_code, load_kernels


def kernels_blocker(spec: CellSpec, w: Weights, xw: Tensor) -> Optional[str]:
    """Why the compiled loop cannot run this configuration (``xw``: any input tensor), or None."""
    if w.weight_hr is not None:
        return "an LSTM projection (proj_size) runs in the Python loop"
    dtype = w.weight_hh.dtype
    if xw.device.type != "cpu" or dtype not in (torch.float32, torch.float64):
        return "the compiled loop is for float32/float64 on the CPU"
    if xw.dtype != dtype and not (xw.dtype == torch.bfloat16 and dtype == torch.float32):
        return "the compiled loop takes x in the weights' dtype, or in bfloat16 with float32 weights"
    return kernels.load_error() or None


def bf16_kernel() -> str:
    """How the compiled loop multiplies bf16 operands now: "amx", "avx512_bf16", "emulated", or "" without it."""
    module = kernels.load_kernels()
    return module.bf16_kernel() if module is not None else ""


def _c(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.contiguous()


def inference_step(spec: CellSpec, w: Weights, x: Tensor, state: tuple[Tensor, ...]) -> Optional[tuple[Tensor, ...]]:
    """One step without autograd, in one C++ call; None where the compiled loop does not apply.

    x (B, F), state ((B, H),) or ((B, H), (B, H)) -> new state. For streaming inference,
    where the Python step's dozen small torch ops cost more than the arithmetic.
    """
    if w.peephole is not None or w.ln_gamma is not None or x.dtype != w.weight_hh.dtype:
        return None
    if kernels_blocker(spec, w, x) is not None:
        return None
    codes = (kind_code(spec), ACT_CODES[spec.activation], ACT_CODES[spec.recurrent_activation])
    c = state[1] if len(state) == 2 else None
    return tuple(kernels._module.step(*codes, x.contiguous(), state[0].contiguous(), c, w.weight_ih, w.weight_hh,
                              w.bias_ih, w.bias_hh))


def _lstm_option_grads(sums: Optional[Tensor], lstm_w: list, H: int) -> dict:
    """Split the loop's summed LSTM option gradients (see recurrence.cpp's backward) by weight.

    lstm_w: [peephole, ln_gamma, ln_beta, ln_cell_gamma, ln_cell_beta], None where absent.
    """
    if sums is None:
        return {}
    names, sizes = [], []
    if lstm_w[1] is not None:
        names += ["ln_gamma", "ln_beta"]
        sizes += [4 * H, 4 * H]
    if lstm_w[3] is not None:
        names += ["ln_cell_gamma", "ln_cell_beta"]
        sizes += [H, H]
    if lstm_w[0] is not None:
        names.append("peephole")
        sizes.append(3 * H)
    grads = dict(zip(names, sums.split(sizes)))
    if "peephole" in grads:
        grads["peephole"] = grads["peephole"].view(3, H)
    return grads


# Largest per-thread weight-gradient accumulator (G x (H + F) values) the backward sums inside
# its loop; past it the loop stores the gradient histories and oneDNN's GEMMs over all T*B rows
# take over, since re-reading accumulators that large at every chunk costs more than the
# histories do. Train steps both ways in one process (benchmarks/sums_in_loop.py; numbers in
# BENCHMARKS.md, "Where the speed comes from"): up to 1.5 MB the loop was 0.97-1.29x the
# histories' speed, from 4.5 MB 0.71-0.80x.
SUMS_IN_LOOP_MAX_BYTES = 2 << 20


def sums_in_loop(G: int, H: int, F: int, itemsize: int) -> bool:
    """Whether the compiled backward sums dW_hh and dW_ih in its loop (else after it)."""
    return G * (H + F) * itemsize <= SUMS_IN_LOOP_MAX_BYTES


# Past this accumulator size the backward's threads share one dW_hh | dW_ih, each summing its
# own rows of it from every thread's chunks, instead of each keeping a whole copy: about one
# core's L2 (1 MB here), which a whole copy outgrows (1.5 MB at config L). In-process A/B
# (benchmarks/ab_kernels.py, sharing at every size against never): LSTM L 1.04x, GRU L 1.02x,
# layer-norm LSTM L 1.03x; but SimpleRNN L (0.4 MB) 0.97x and every cell at S 0.95-0.99x,
# where the two barriers per chunk cost more than the smaller accumulator saves.
SHARED_GRADS_MIN_BYTES = 1 << 20


def shares_grads(G: int, H: int, F: int, itemsize: int) -> bool:
    """Whether the backward's threads split dW's rows between them (else each sums all of it)."""
    return G * (H + F) * itemsize > SHARED_GRADS_MIN_BYTES


def _grads_from_histories(kind: int, dxw: Tensor, dhw: Optional[Tensor], h_hist: Tensor, hin_all: Optional[Tensor],
                          extra: Optional[Tensor], x: Tensor, w_ih: Tensor, wants: dict):
    """dx, dW_hh, dW_ih from the loop's gradient histories, one GEMM each over all T*B rows."""
    T, B, G = dxw.shape
    H = h_hist.shape[-1]
    hin = (hin_all if hin_all is not None else h_hist[:T]).reshape(T * B, H)
    d2 = dxw.reshape(T * B, G)
    dw_hh = None
    if not wants["weight_hh"]:
        pass
    elif kind == 2:  # GRU reset-after: W_hh sees d(W_hh h + b_hh), not d(xw)
        dw_hh = weight_grad(dhw.reshape(T * B, G), hin)
    elif kind == 3:  # GRU reset-before: the n rows multiply r * h
        rh = extra.reshape(T * B, H)
        dw_hh = torch.cat([weight_grad(d2[:, : 2 * H], hin), weight_grad(d2[:, 2 * H :], rh)])
    else:
        dw_hh = weight_grad(d2, hin)
    d_in = matmul(d2, w_ih).reshape(T, B, -1) if wants["x"] else None
    dw_ih = weight_grad(d2, x.to(d2.dtype)) if wants["weight_ih"] else None  # x may be bf16 (exact in float)
    return d_in, dw_hh, dw_ih


def forward_call(spec: CellSpec, x: Tensor, state0: tuple[Tensor, ...], w: Weights, keeps, out_mask: Optional[Tensor],
                 rdm: Optional[Tensor], need_cache: bool) -> list:
    """One call of the C++ forward loop: [out, h_hist, c_hist, gates, extra, hin_all, *ln_cache] when
    ``need_cache``, else [out, h_T, (c_T)]; absent tensors are None (see recurrence.cpp's forward)."""
    kind, act, ract = kind_code(spec), ACT_CODES[spec.activation], ACT_CODES[spec.recurrent_activation]
    lstm = kind == 1
    return list(load_kernels().forward(
        kind, act, ract, x, state0[0].contiguous(), _c(state0[1]) if lstm else None, w.weight_hh.contiguous(),
        _c(w.bias_hh), _c(keeps[0]), _c(keeps[1]) if lstm else None, _c(out_mask), _c(rdm), lstm_options(w),
        need_cache, w.weight_ih, _c(w.bias_ih)))


def lstm_options(w: Weights) -> list:
    """The LSTM option weights in recurrence.cpp's order, None where absent."""
    return [_c(t) for t in (w.peephole, w.ln_gamma, w.ln_beta, w.ln_cell_gamma, w.ln_cell_beta)]


def backward_call(spec: CellSpec, tbptt: Optional[int], want_norms: bool, wants: dict, saved: list, x: Tensor,
                  w: Weights, keeps, out_mask: Optional[Tensor], rdm: Optional[Tensor], d_out: Tensor,
                  d_h: Optional[Tensor], d_c: Optional[Tensor]) -> tuple:
    """One call of the C++ backward loop, then the GEMMs over all steps where the loop left them.

    saved: the forward's [h_hist, c_hist, gates, extra, hin_all, *ln_cache] (None where absent).
    wants: which gradients are needed, by name: "x" and the ``Weights`` fields.
    Returns (dx, (dh0[, dc0]), {weight name: gradient}, norms or None).
    """
    h_hist, c_hist, gates, extra, hin_all, *ln_cache = saved
    codes = (kind_code(spec), ACT_CODES[spec.activation], ACT_CODES[spec.recurrent_activation])
    lstm = codes[0] == 1
    w_hh, w_ih = w.weight_hh, w.weight_ih
    d_h = d_h if d_h is not None else torch.zeros_like(h_hist[0])
    if lstm:
        d_c = d_c if d_c is not None else torch.zeros_like(c_hist[0])
    lstm_w = lstm_options(w)
    sizes = (w_hh.shape[0], w_hh.shape[1], w_ih.shape[1], w_hh.element_size())
    in_loop = sums_in_loop(*sizes)
    d_in, dh0, dc0, dw_hh, dw_ih, norms, opt_sums, db_x, db_h = load_kernels().backward(
        *codes, d_out, d_h.contiguous(), _c(d_c) if lstm else None, h_hist, c_hist, gates, extra, hin_all,
        w_hh.contiguous(), _c(keeps[0]), _c(keeps[1]) if lstm else None, _c(out_mask), rdm, lstm_w, ln_cache,
        tbptt or 0, want_norms, x, w_ih, wants["x"], wants["weight_hh"], wants["weight_ih"], in_loop,
        shares_grads(*sizes))
    if not in_loop:  # d_in, dw_hh are the histories d(xw) and d(W_hh h + b_hh) (GRU); GEMMs over all steps
        d_in, dw_hh, dw_ih = _grads_from_histories(codes[0], d_in, dw_hh, h_hist, hin_all, extra, x, w_ih, wants)
    if d_in is not None:
        d_in = d_in.to(x.dtype)  # bf16 when x is (autograd and the operator want x's dtype)
    grads = {"weight_hh": dw_hh, "bias_hh": db_h, "weight_ih": dw_ih, "bias_ih": db_x}
    if lstm:
        grads.update(_lstm_option_grads(opt_sums, lstm_w, h_hist.shape[-1]))
    return d_in, ((dh0, dc0) if lstm else (dh0,)), grads, (norms if want_norms else None)


class CompiledRecurrence(torch.autograd.Function):
    """``Recurrence`` (see recurrence.py for the contract) with the loop in C++, on the raw inputs.

    Unlike ``Recurrence``, ``xw`` here is x (T, B, F) itself (any layout with contiguous rows)
    and the weights include weight_ih and bias_ih: each step projects its own rows, and the
    backward returns dx and the projection's gradients along with the rest (recurrence.cpp).
    In eager mode the engine calls this directly; under a tracer it calls the same two loops
    as the operators ``rnnkit::compiled_forward``/``compiled_backward`` (engine/library.py).
    """

    @staticmethod
    def forward(ctx, spec: CellSpec, tbptt: Optional[int], xw: Tensor, n_state: int, *rest):  # type: ignore[override]
        state0, keeps, out_mask, rdm, probe, w = unpack_inputs(n_state, rest)
        need_grad = any(ctx.needs_input_grad)
        res = forward_call(spec, xw, state0, w, keeps, out_mask, rdm, need_grad)
        if not need_grad:
            return tuple(res)
        out, h_hist, c_hist, *_ = res
        ctx.spec, ctx.tbptt, ctx.n_state = spec, tbptt, n_state
        ctx.has_probe = probe is not None
        ctx.weights_present = [x is not None for x in w]
        ctx.n_saved = len(res) - 1
        ctx.save_for_backward(*res[1:], xw, *w, *keeps, out_mask, rdm)
        T = xw.shape[0]
        final = (h_hist[T],) if n_state == 1 else (h_hist[T], c_hist[T])
        return (out, *final)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor, *d_final: Optional[Tensor]):  # type: ignore[override]
        saved = ctx.saved_tensors
        n, n_state = ctx.n_saved, ctx.n_state
        x = saved[n]
        w = Weights(*saved[n + 1 : n + 1 + len(Weights._fields)])
        keeps, (out_mask, rdm) = saved[-2 - n_state : -2], saved[-2:]
        # Frozen weights (requires_grad=False) cost no GEMM.
        wants = dict(zip(Weights._fields, ctx.needs_input_grad[7 + 2 * n_state :]))
        wants["x"] = ctx.needs_input_grad[2]
        d_in, d_state0, grads, norms = backward_call(
            ctx.spec, ctx.tbptt, ctx.has_probe, wants, list(saved[:n]), x, w, keeps, out_mask, rdm, d_out,
            d_final[0], d_final[1] if n_state == 2 else None)
        d_weights = [grads.get(name) if present else None for name, present in zip(Weights._fields, ctx.weights_present)]
        return backward_outputs(n_state, d_in, d_state0, norms, d_weights)
