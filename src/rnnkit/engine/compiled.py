"""The engine's time loop compiled to C++ (``csrc/recurrence.cpp``), same contract as ``Recurrence``.

The C++ loop does the same math as ``rnnkit.ops`` step by step (tests hold the
two paths to the same reference), minus Python's per-op dispatch cost, which
dominates at typical sizes. It is built on first use with
``torch.utils.cpp_extension`` (needs a C++ compiler and ninja) and cached; when
it cannot be built, the engine warns once and keeps the Python loop.

Set ``RNNKIT_KERNELS=python`` to force the Python loop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..ops import CellSpec, Weights
from .blas import matmul, weight_grad
from .contract import backward_outputs, unpack_inputs

_ACT_CODES = {"tanh": 0, "sigmoid": 1, "relu": 2, "hard_sigmoid": 3, "linear": 4}
_module = None
_load_error: Optional[str] = None


def _cpu_flags() -> list[str]:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    words = set(info.split())
    flags = ["-mavx2", "-mfma"] if {"avx2", "fma"} <= words else []
    # The packed GEMM kernel needs AVX-512; without it the loop multiplies through ATen.
    flags += ["-mavx512f"] if flags and "avx512f" in words else []
    return flags


_CSRC = Path(__file__).with_name("csrc")
_STALE_LOCK_SECONDS = 600


def _build_dir(flags: list[str]) -> tuple[str, Path]:
    """A directory per (sources, flags, torch, python): a built module there is always current."""
    digest = hashlib.sha256()
    for path in sorted(_CSRC.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(" ".join(flags + [torch.__version__, sys.version]).encode())
    key = digest.hexdigest()[:16]
    base = Path(os.environ.get("RNNKIT_KERNELS_DIR", Path.home() / ".cache" / "rnnkit" / "kernels"))
    return f"rnnkit_recurrence_{key}", base / key


def _import_built(name: str, so: Path):
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_kernels():
    """The compiled module, building it on first use; None (with one warning) if that fails.

    A module already built for these sources is imported directly: torch's ``load`` takes
    a file lock on every call, and a process killed while holding it (a SIGKILLed training
    run, say) would leave every later process waiting on the lock forever.
    """
    global _module, _load_error
    if _module is not None or _load_error is not None:
        return _module
    if os.environ.get("RNNKIT_KERNELS", "").lower() == "python":
        _load_error = "disabled by RNNKIT_KERNELS=python"
        return None
    # -fopenmp first: ATen's parallel_for is a header template that runs serially unless the
    # extension itself is built with OpenMP (the loader then binds libgomp.so.1 to the copy
    # torch already loaded, so both share one thread pool). A compiler without OpenMP still
    # gets the single-threaded loop, with its simd pragmas.
    error = ""
    for cflags, ldflags in ((["-fopenmp"], ["-fopenmp"]), (["-fopenmp-simd"], [])):
        try:
            _module = _build_or_import(["-O3", *_cpu_flags(), *cflags], ldflags)
            return _module
        except Exception as exc:  # a missing compiler or ninja must not break the library
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    _load_error = error
    warnings.warn(f"rnnkit: C++ kernels unavailable ({_load_error}); using the Python time loop, "
                  "which gives the same results more slowly", RuntimeWarning, stacklevel=3)
    return None


def _build_or_import(flags: list[str], ldflags: list[str]):
    name, build_dir = _build_dir(flags)
    so = build_dir / f"{name}.so"
    if so.exists():
        return _import_built(name, so)
    from torch.utils.cpp_extension import load

    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"
    if lock.exists() and time.time() - lock.stat().st_mtime > _STALE_LOCK_SECONDS:
        lock.unlink(missing_ok=True)  # left by a build that was killed
    return load(name=name, sources=[str(_CSRC / "recurrence.cpp")], extra_cflags=flags, extra_ldflags=ldflags,
                build_directory=str(build_dir), verbose=False)


def release_cached_memory() -> int:
    """Free the buffers the compiled loop keeps for reuse between steps; returns the bytes freed.

    The loop caches its large per-sequence buffers (up to ``RNNKIT_POOL_MB``, default 512 MB)
    instead of returning them to the OS after each step, which saves refaulting them every step.
    """
    return int(_module.pool_release()) if _module is not None else 0


def kernels_blocker(spec: CellSpec, w: Weights, xw: Tensor) -> Optional[str]:
    """Why the compiled loop cannot run this configuration (``xw``: any input tensor), or None."""
    if w.weight_hr is not None:
        return "an LSTM projection (proj_size) runs in the Python loop"
    if xw.device.type != "cpu" or xw.dtype not in (torch.float32, torch.float64):
        return "the compiled loop is for float32/float64 on the CPU"
    if load_kernels() is None:
        return _load_error
    return None


def _kind_code(spec: CellSpec) -> int:
    if spec.kind == "rnn":
        return 0
    if spec.kind == "lstm":
        return 1
    return 2 if spec.reset_after else 3


def _c(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.contiguous()


def inference_step(spec: CellSpec, w: Weights, x: Tensor, state: tuple[Tensor, ...]) -> Optional[tuple[Tensor, ...]]:
    """One step without autograd, in one C++ call; None where the compiled loop does not apply.

    x (B, F), state ((B, H),) or ((B, H), (B, H)) -> new state. For streaming inference,
    where the Python step's dozen small torch ops cost more than the arithmetic.
    """
    if w.peephole is not None or w.ln_gamma is not None or kernels_blocker(spec, w, x) is not None:
        return None
    codes = (_kind_code(spec), _ACT_CODES[spec.activation], _ACT_CODES[spec.recurrent_activation])
    c = state[1] if len(state) == 2 else None
    return tuple(_module.step(*codes, x.contiguous(), state[0].contiguous(), c, w.weight_ih, w.weight_hh,
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


def _grads_from_histories(ctx, dxw: Tensor, dhw: Optional[Tensor], h_hist: Tensor, hin_all: Optional[Tensor],
                          extra: Optional[Tensor], x: Tensor, w_ih: Tensor, wants: dict):
    """dx, dW_hh, dW_ih from the loop's gradient histories, one GEMM each over all T*B rows."""
    T, B, G = dxw.shape
    H = h_hist.shape[-1]
    hin = (hin_all if hin_all is not None else h_hist[:T]).reshape(T * B, H)
    d2 = dxw.reshape(T * B, G)
    kind = ctx.codes[0]
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
    d_in = matmul(d2, w_ih).reshape(T, B, -1) if ctx.needs_input_grad[2] else None
    dw_ih = weight_grad(d2, x) if wants["weight_ih"] else None
    return d_in, dw_hh, dw_ih


class CompiledRecurrence(torch.autograd.Function):
    """``Recurrence`` (see recurrence.py for the contract) with the loop in C++, on the raw inputs.

    Unlike ``Recurrence``, ``xw`` here is x (T, B, F) itself (any layout with contiguous rows)
    and the weights include weight_ih and bias_ih: each step projects its own rows, and the
    backward returns dx and the projection's gradients along with the rest (recurrence.cpp).
    """

    @staticmethod
    def forward(ctx, spec: CellSpec, tbptt: Optional[int], xw: Tensor, n_state: int, *rest):  # type: ignore[override]
        state0, keeps, out_mask, rdm, probe, w = unpack_inputs(n_state, rest)
        need_grad = any(ctx.needs_input_grad)
        kind, act, ract = _kind_code(spec), _ACT_CODES[spec.activation], _ACT_CODES[spec.recurrent_activation]
        keep_h = _c(keeps[0])
        keep_c = _c(keeps[1]) if n_state == 2 else None
        lstm_w = [_c(t) for t in (w.peephole, w.ln_gamma, w.ln_beta, w.ln_cell_gamma, w.ln_cell_beta)]
        res = _module.forward(kind, act, ract, xw, state0[0].contiguous(),
                              _c(state0[1]) if n_state == 2 else None, w.weight_hh.contiguous(), _c(w.bias_hh),
                              keep_h, keep_c, _c(out_mask), _c(rdm), lstm_w, need_grad,
                              w.weight_ih, _c(w.bias_ih))
        if not need_grad:
            return tuple(res)
        out, h_hist, c_hist, gates, extra, hin_all, *ln_cache = res
        ctx.codes = (kind, act, ract)
        ctx.tbptt, ctx.n_state = tbptt, n_state
        ctx.has_probe = probe is not None
        ctx.weights_present = [x is not None for x in w]
        ctx.save_for_backward(h_hist, c_hist, gates, extra, hin_all, w.weight_hh, keep_h, keep_c, out_mask, rdm,
                              xw, w.weight_ih, *lstm_w, *ln_cache)
        T = xw.shape[0]
        final = (h_hist[T],) if n_state == 1 else (h_hist[T], c_hist[T])
        return (out, *final)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out: Tensor, *d_final: Optional[Tensor]):  # type: ignore[override]
        h_hist, c_hist, gates, extra, hin_all, w_hh, keep_h, keep_c, out_mask, rdm, x, w_ih, *rest = ctx.saved_tensors
        lstm_w, ln_cache = list(rest[:5]), list(rest[5:])
        n_state = ctx.n_state
        d_h = d_final[0] if d_final[0] is not None else torch.zeros_like(h_hist[0])
        d_c = None
        if n_state == 2:
            d_c = d_final[1] if d_final[1] is not None else torch.zeros_like(c_hist[0])
        # Frozen weights (requires_grad=False) cost no GEMM.
        wants = dict(zip(Weights._fields, ctx.needs_input_grad[7 + 2 * n_state :]))
        sizes = (w_hh.shape[0], w_hh.shape[1], w_ih.shape[1], w_hh.element_size())
        in_loop = sums_in_loop(*sizes)
        d_in, dh0, dc0, dw_hh, dw_ih, norms, opt_sums, db_x, db_h = _module.backward(
            *ctx.codes, d_out, d_h.contiguous(), _c(d_c), h_hist, c_hist, gates, extra, hin_all,
            w_hh.contiguous(), keep_h, keep_c, _c(out_mask), rdm, lstm_w, ln_cache, ctx.tbptt or 0, ctx.has_probe,
            x, w_ih, ctx.needs_input_grad[2], wants["weight_hh"], wants["weight_ih"], in_loop, shares_grads(*sizes))
        if not in_loop:  # d_in, dw_hh are the histories d(xw) and d(W_hh h + b_hh) (GRU); GEMMs over all steps
            d_in, dw_hh, dw_ih = _grads_from_histories(ctx, d_in, dw_hh, h_hist, hin_all, extra, x, w_ih, wants)
        grads = {"weight_hh": dw_hh, "bias_hh": db_h, "weight_ih": dw_ih, "bias_ih": db_x}
        if ctx.codes[0] == 1:
            grads.update(_lstm_option_grads(opt_sums, lstm_w, h_hist.shape[-1]))
        d_weights = [grads.get(name) if present else None for name, present in zip(Weights._fields, ctx.weights_present)]
        d_state0 = (dh0,) if n_state == 1 else (dh0, dc0)
        d_probe = norms if ctx.has_probe else None
        return backward_outputs(n_state, d_in, d_state0, d_probe, d_weights)
