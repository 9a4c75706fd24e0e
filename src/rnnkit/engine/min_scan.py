"""minGRU and minLSTM over whole sequences: one GEMM for the projection, then one scan.

The parallel mode of ``rnnkit.ops.min_rnn``. ``run_min`` projects all B*T rows at once,
k = x W^T (B, T, G), a plain GEMM, and hands k and the bias to the operator ``rnnkit::min_scan``,
which adds the bias and runs h_t = a_t h_{t-1} + b_t over t with masks, reversal and an initial
state, and whose backward (``rnnkit::min_scan_backward``, the reverse scan written by hand)
returns dk and the bias gradient and supports truncated BPTT and the gradient-flow probe.
(The bias inside the scan saves the GEMM's broadcast pass over k and the backward's sum over
dk: the compiled scan reads each k once anyway.) Two implementations, chosen by one explicit
check (``scan_backend``):

    "compiled"  csrc/scan.cpp: bias, coefficients and recurrence fused in one pass, threads over
                the B*H lanes (CPU, float32/float64); the projection is ``rnnkit::min_project``,
                the same GEMMs as F.linear into the compiled loop's buffer pool
    "python"    the paper's log-space parallel form (``ops.min_rnn.scan_log``) and its
                log-space reverse scan: any device and dtype, the reference for the other

Both are the same torch operator, with a fake implementation and a registered autograd, so
torch.compile and torch.export see one node per layer direction.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import onnx_native
from ..ops import min_rnn
from . import kernels
from .sequence import check_input, check_tbptt_and_mask

KIND_CODES = {"mingru": 0, "minlstm": 1}
BACKENDS = ("auto", "compiled", "python")


def scan_blocker(k: Tensor) -> Optional[str]:
    """Why the compiled scan cannot run on ``k`` (or on the input x it is projected from), or None."""
    if k.device.type != "cpu" or k.dtype not in (torch.float32, torch.float64):
        return "the compiled scan is for float32/float64 on the CPU"
    return kernels.load_error() or None


def scan_backend(k: Tensor, backend: str) -> str:
    """"compiled" or "python" for ``backend`` in ("auto", "compiled", "python")."""
    if backend not in BACKENDS:
        raise ValueError(f"Argument `backend` must be one of {BACKENDS}, got {backend!r}")
    if backend == "python":
        return "python"
    blocker = scan_blocker(k)
    if blocker is None:
        return "compiled"
    if backend == "compiled":
        raise ValueError(f"backend='compiled' cannot run here: {blocker}")
    return "python"


def _cpu_autocast() -> bool:
    """Whether CPU autocast is on (it casts F.linear's operands; the compiled scan runs on the CPU only)."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.is_autocast_enabled("cpu")
    return torch.is_autocast_cpu_enabled()


def _compiled():
    """The C++ operators (``csrc/scan.cpp``), loading the extension on first use."""
    if kernels.load_kernels() is None:
        raise RuntimeError(f"rnnkit: the compiled scan is unavailable ({kernels.load_error()}); use backend='python'")
    return torch.ops.rnnkit_min


def _widen(t: Tensor) -> torch.dtype:
    """float32 for half-precision tensors, else their own dtype."""
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


# ------------------------------------------------------------------------- the Python scan


def python_scan(k: Tensor, h0: Tensor, mask: Optional[Tensor], kind: str, reverse: bool) -> Tensor:
    """k (B, T, G) with its bias, h0 (B, H), mask (B, T) 0/1 or None -> the states h (B, T, H), in data order."""
    log_a, log_b = min_rnn.log_coefficients(k, kind)
    if mask is not None:
        real = mask.unsqueeze(-1) != 0
        log_a = torch.where(real, log_a, torch.zeros_like(log_a))  # a = 1
        log_b = torch.where(real, log_b, torch.full_like(log_b, float("-inf")))  # b = 0
    if reverse:
        log_a, log_b = log_a.flip(1), log_b.flip(1)
    h = min_rnn.scan_log(log_a, log_b, h0)
    return h.flip(1) if reverse else h


def python_scan_backward(k: Tensor, h: Tensor, h0: Tensor, mask: Optional[Tensor], dh: Optional[Tensor],
                         dh_n: Optional[Tensor], kind: str, reverse: bool, tbptt: int,
                         want_norms: bool) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """The reverse scan: (dk (B, T, G), dh0 (B, H), norms (T,) in data order or None); k with its bias."""
    B, T, H = h.shape
    e = torch.zeros_like(h) if dh is None else dh.clone()
    log_a, _ = min_rnn.log_coefficients(k, kind)
    if mask is not None:
        log_a = torch.where(mask.unsqueeze(-1) != 0, log_a, torch.zeros_like(log_a))  # a = 1
    if reverse:
        e, log_a, h_run = e.flip(1), log_a.flip(1), h.flip(1)
    else:
        h_run = h
    if dh_n is not None and T:
        e[:, -1] += dh_n
    da, db, dh0 = min_rnn.scan_log_backward(log_a, h_run, h0, e, tbptt or None)
    if T == 0 and dh_n is not None:
        dh0 = dh_n.clone()
    norms = None
    if want_norms:
        delta = db  # dL/dh_t, total, in processing order
        norms = torch.linalg.vector_norm(delta, dim=(0, 2))
        norms = norms.flip(0) if reverse else norms
    if reverse:
        da, db = da.flip(1), db.flip(1)
    if mask is not None:
        real = mask.unsqueeze(-1) != 0
        da, db = da * real, db * real  # a padded step's a and b are constants
    return min_rnn.coefficients_backward(k, kind, da, db), dh0, norms


# ------------------------------------------------------------------------------ operators


def _with_bias(k: Tensor, bias: Optional[Tensor]) -> Tensor:
    return k if bias is None else k + bias


@torch.library.custom_op("rnnkit::min_scan", mutates_args=())
def min_scan(k: Tensor, bias: Optional[Tensor], h0: Tensor, mask: Optional[Tensor], probe: Optional[Tensor],
             kind: str, reverse: bool, tbptt: int, backend: str) -> tuple[Tensor, Tensor]:
    """k (B, T, G) = x W^T without the bias, bias (G,) or None, h0 (B, H), mask (B, T) or None
    -> (h (B, T, H) the carried states, h_n (B, H)).

    probe (T, 1) or None takes no part in the forward; its gradient is ||dL/dh_t|| per step.
    """
    if backend == "compiled":
        h = _compiled().forward(k, _empty(k) if bias is None else bias, h0, _empty(k) if mask is None else mask,
                                KIND_CODES[kind], reverse)
    else:
        # Half precision has too few digits for log b - A, which grows like T: the scan runs in float32.
        wide = _widen(k)
        kb = _with_bias(k.to(wide), None if bias is None else bias.to(wide))
        h = python_scan(kb, h0.to(wide), None if mask is None else mask.to(wide), kind, reverse).to(k.dtype)
    T = k.shape[1]
    h_n = h0.clone() if T == 0 else h[:, 0 if reverse else T - 1].clone()
    return h, h_n


@min_scan.register_fake
def _(k, bias, h0, mask, probe, kind, reverse, tbptt, backend):
    B, T = k.shape[:2]
    H = h0.shape[1]
    return k.new_empty(B, T, H), h0.new_empty(B, H)


@torch.library.custom_op("rnnkit::min_scan_backward", mutates_args=())
def min_scan_backward(k: Tensor, bias: Optional[Tensor], h: Tensor, h0: Tensor, mask: Optional[Tensor],
                      dh: Optional[Tensor], dh_n: Optional[Tensor], kind: str, reverse: bool, tbptt: int,
                      want_norms: bool, backend: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The reverse scan of ``min_scan`` -> (dk (B, T, G), dbias (G,) or an empty placeholder without a bias,
    dh0 (B, H), norms (T,) or an empty placeholder)."""
    if backend == "compiled":
        e = _empty(k)
        return tuple(_compiled().backward(
            k, e if bias is None else bias, h, h0, e if mask is None else mask, e if dh is None else dh,
            e if dh_n is None else dh_n, KIND_CODES[kind], reverse, tbptt, want_norms))
    wide = _widen(k)
    cast = lambda t: None if t is None else t.to(wide)  # noqa: E731
    dk, dh0, norms = python_scan_backward(_with_bias(cast(k), cast(bias)), cast(h), cast(h0), cast(mask), cast(dh),
                                          cast(dh_n), kind, reverse, tbptt, want_norms)
    dbias = _empty(k) if bias is None else dk.sum((0, 1)).to(bias.dtype)
    return dk.to(k.dtype), dbias, dh0.to(h0.dtype), _empty(k) if norms is None else norms.to(k.dtype)


@min_scan_backward.register_fake
def _(k, bias, h, h0, mask, dh, dh_n, kind, reverse, tbptt, want_norms, backend):
    return (k.new_empty(k.shape), k.new_empty(0 if bias is None else bias.shape), h0.new_empty(h0.shape),
            k.new_empty(k.shape[1] if want_norms else 0))


def _setup_context(ctx, inputs, output) -> None:
    k, bias, h0, mask, probe, kind, reverse, tbptt, backend = inputs
    ctx.config = (kind, reverse, tbptt, backend)
    ctx.has_probe = probe is not None
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(k, bias, h0, mask, output[0])


def _backward(ctx, dh, dh_n):
    k, bias, h0, mask, h = ctx.saved_tensors
    kind, reverse, tbptt, backend = ctx.config
    if dh is None and dh_n is None:
        return None, None, None, None, None, None, None, None, None
    dk, dbias, dh0, norms = min_scan_backward(k, bias, h, h0, mask, dh, dh_n, kind, reverse, tbptt, ctx.has_probe,
                                              backend)
    needs = ctx.needs_input_grad
    return (dk if needs[0] else None, dbias if bias is not None and needs[1] else None, dh0 if needs[2] else None,
            None, norms.unsqueeze(1) if ctx.has_probe else None, None, None, None, None)


min_scan.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("rnnkit::min_project", mutates_args=())
def min_project(x: Tensor, weight: Tensor) -> Tensor:
    """k = x W^T: x (B, T, F), weight (G, F) -> (B, T, G), as ``F.linear(x, weight)``, into the
    compiled loop's buffer pool (the compiled scan's projection; its backward pools dx too)."""
    return _compiled().project(x, weight)


@min_project.register_fake
def _(x, weight):
    return x.new_empty(x.shape[0], x.shape[1], weight.shape[0])


@torch.library.custom_op("rnnkit::min_project_backward", mutates_args=())
def min_project_backward(dk: Tensor, x: Tensor, weight: Tensor, want_dx: bool, want_dw: bool) -> tuple[Tensor, Tensor]:
    """(dx = dk W (B, T, F), dW = dk^T x (G, F)), each an empty placeholder when not wanted."""
    return tuple(_compiled().project_backward(dk, x, weight, want_dx, want_dw))


@min_project_backward.register_fake
def _(dk, x, weight, want_dx, want_dw):
    return x.new_empty(x.shape if want_dx else 0), weight.new_empty(weight.shape if want_dw else 0)


def _project_setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _project_backward(ctx, dk):
    x, weight = ctx.saved_tensors
    want_dx, want_dw = ctx.needs_input_grad
    dx, dw = min_project_backward(dk, x, weight, want_dx, want_dw)
    return (dx if want_dx else None), (dw if want_dw else None)


min_project.register_autograd(_project_backward, setup_context=_project_setup_context)


# ---------------------------------------------------------------------------- ONNX


def _onnx_layer(kind: str, x: Tensor, weight: Tensor, bias: Optional[Tensor], h0: Tensor, mask: Optional[Tensor],
                reverse: bool) -> tuple[Tensor, Tensor]:
    """The layer as torch's ``scan`` higher-order op, which the dynamo ONNX exporter writes as an ONNX
    ``Scan`` node (its body: h = a * h + b); the coefficients are plain torch ops before it."""
    if torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling():
        raise onnx_native.UnsupportedForExport(
            f"Cannot export a {kind} layer with the TorchScript-based ONNX exporter: its scan becomes an ONNX Scan "
            "node only through torch.onnx.export(..., dynamo=True)")
    from torch._higher_order_ops.scan import scan

    a, b = min_rnn.coefficients(F.linear(x, weight, bias), kind)  # (B, T, H) each
    if mask is not None:
        real = mask.unsqueeze(-1).to(torch.bool)
        a = torch.where(real, a, torch.ones_like(a))  # a padded step keeps the state
        b = torch.where(real, b, torch.zeros_like(b))
    a, b = a.transpose(0, 1), b.transpose(0, 1)  # (T, B, H): scan runs over the leading axis
    if reverse:
        a, b = a.flip(0), b.flip(0)

    def step(h: Tensor, ab: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h = ab[0] * h + ab[1]
        return h, h.clone()

    h_n, h = scan(step, h0, (a, b))
    h = (h.flip(0) if reverse else h).transpose(0, 1)  # (B, T, H)
    return (h if mask is None else h * mask.unsqueeze(-1).to(h.dtype)), h_n


# ---------------------------------------------------------------------------- the layer call


def run_min(
    kind: str,
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    h0: Optional[Tensor] = None,
    *,
    mask: Optional[Tensor] = None,
    lengths: Optional[Tensor] = None,
    reverse: bool = False,
    tbptt: Optional[int] = None,
    probe: Optional[Tensor] = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Run a minGRU/minLSTM layer direction over ``x`` (the parallel mode).

    Args:
        kind: "mingru" or "minlstm".
        x: (B, T, F) floating input.  weight: (G, F), bias: (G,) or None, G = 2H or 3H.
        h0: (B, H) initial state, zeros if None.
        mask: (B, T) bool/0-1, True on real steps; a padded step keeps the state and outputs 0.
            ``lengths`` (B,) is the right-padded shorthand.
        reverse: process t = T-1 .. 0; outputs stay aligned with the input's time axis.
        tbptt: cut the gradient every ``tbptt`` processed steps (the forward state carries on).
        probe: a (T, 1) zero tensor that requires grad; after backward its ``.grad[t, 0]`` is
            ||dL/dh_t|| over the batch (data order), as for the classic cells.
        backend: "auto" (compiled where it applies), "compiled" or "python".
    Returns:
        out (B, T, H) and h_n (B, H), the state after each sequence's last real step.
    """
    n = min_rnn.check_min_kind(kind)
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[0] % n:
        raise ValueError(f"Argument `weight` must be a ({n} * H, F) tensor, got "
                         f"{tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__}")
    G, F_in = weight.shape
    H = G // n
    check_input(x, F_in, dtype=weight.dtype)
    if bias is not None and bias.shape != (G,):
        raise ValueError(f"Argument `bias` must have shape (G,) = ({G},), got {tuple(bias.shape)}")
    if bias is not None and bias.dtype != weight.dtype:
        raise TypeError(f"Argument `bias` has dtype {bias.dtype} but the weights are {weight.dtype}")
    B, T, _ = x.shape
    mask = check_tbptt_and_mask(tbptt, mask, lengths, B, T, x.device)
    if h0 is None:
        h0 = x.new_zeros(B, H)
    elif not isinstance(h0, Tensor) or h0.shape != (B, H):
        got = tuple(h0.shape) if isinstance(h0, Tensor) else type(h0).__name__
        raise ValueError(f"Argument `h0` must have shape (B, H) = ({B}, {H}), got {got}")
    elif h0.dtype != weight.dtype:
        raise TypeError(f"Argument `h0` has dtype {h0.dtype} but the weights are {weight.dtype}")
    if probe is not None and (probe.shape != (T, 1) or not probe.requires_grad):
        raise ValueError(f"Argument `probe` must be a (T, 1) = ({T}, 1) tensor that requires grad")
    if onnx_native.in_onnx_export():
        return _onnx_layer(kind, x, weight, bias, h0, mask, reverse)
    # k (B, T, G): one GEMM over all B*T rows; the scan adds the bias. F.linear where autocast may
    # change its dtype (it does not see our operator), and the scan's backend then follows k's dtype.
    pooled = scan_backend(x, backend) == "compiled" and not _cpu_autocast()
    k = min_project(x, weight) if pooled else F.linear(x, weight)
    m = None if mask is None else mask.to(x.dtype)
    h, h_n = min_scan(k, bias, h0, m, probe, kind, reverse, tbptt or 0, scan_backend(k, backend))
    out = h if m is None else h * m.unsqueeze(-1)  # padded steps output 0
    return out, h_n
