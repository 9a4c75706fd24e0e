"""The Python loop's large GEMMs: the input projection and its gradients, one GEMM each over
all steps. (The compiled loop projects and sums these gradients inside its own loop.)

On this class of CPU, torch.mm (MKL) runs float32 GEMMs at about 85 GF/s per
core, while oneDNN's linear reaches about 190-215 GF/s on the same shapes
(benchmarks/gemm.py; numbers in BENCHMARKS.md). torch exposes oneDNN's linear as ``mkldnn::_linear_pointwise``
(the op Inductor uses on CPU); we use it for float32 on the CPU when it is
present and fall back to torch.mm otherwise. Results agree to float32 rounding.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import kernels


def _find_onednn_linear():
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        a, w = torch.randn(3, 4), torch.randn(5, 4)
        if torch.allclose(op(a, w, None, "none", [], ""), a @ w.t(), atol=1e-5):
            return op
    except RuntimeError:
        pass  # an op that exists but refuses dense float32 input: use torch.mm
    return None


_ONEDNN_LINEAR = _find_onednn_linear()


def _onednn(t: Tensor) -> bool:
    return _ONEDNN_LINEAR is not None and t.dtype == torch.float32 and t.device.type == "cpu"


def linear(x: Tensor, w: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """x (N, K) @ w (M, K)^T + b -> (N, M)."""
    if _onednn(x) and (b is None or b.dtype == x.dtype):
        if not (w.is_contiguous() or w.t().is_contiguous()):
            w = w.contiguous()  # a strided slice sends oneDNN down a path ~1000x slower
        return _ONEDNN_LINEAR(x, w, b, "none", [], "")
    return torch.nn.functional.linear(x, w, b)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a (N, K) @ b (K, M) -> (N, M)."""
    return linear(a, b.t())


def _transposed(x: Tensor) -> Tensor:
    """x (N, K) or (T, B, K) as T*B rows -> contiguous (K, N): through the compiled loop's
    parallel transpose when it is loaded."""
    module = kernels._module
    if module is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return module.transpose(x)
    return x.reshape(-1, x.shape[-1]).t().contiguous()


def weight_grad(dy: Tensor, x: Tensor) -> Tensor:
    """dy (N, M)^T @ x (N, K) -> (M, K), the gradient of a linear map's weight summed over N rows.

    x may also be (T, B, K), read as its T*B rows in order (any strides)."""
    # oneDNN is fastest with the long axis N as the reduction and the small one as rows;
    # it takes dy^T as a strided view but copies a strided input, so x^T is made here.
    if _onednn(x):
        return linear(_transposed(x), dy.t()).t()
    return linear(x.reshape(-1, x.shape[-1]).t(), dy.t()).t()


class Projection(torch.autograd.Function):
    """xw = x W^T + b over all time steps at once; one GEMM forward, one per gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return linear(x, w, b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        dy = dy.contiguous()
        dx = matmul(dy, w) if ctx.needs_input_grad[0] else None
        dw = weight_grad(dy, x) if ctx.needs_input_grad[1] else None
        db = dy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def project(x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    """x (..., K) -> (..., M) through ``Projection``."""
    lead = x.shape[:-1]
    out = Projection.apply(x.reshape(-1, x.shape[-1]), w, b)
    return out.reshape(*lead, w.shape[0])
