r"""The Jacobian view of gradient flow: how much one step stretches or shrinks d state.

For the state s_t of a cell (h_t; for LSTM s_t = [h_t; c_t], since both carry gradient),
BPTT multiplies the error by the transposed step Jacobians

.. math::
    J_t = \frac{\partial s_t}{\partial s_{t-1}}, \qquad
    \frac{\partial s_t}{\partial s_0} = J_t J_{t-1} \cdots J_1 .

For a tanh RNN, J_t = diag(1 - h_t^2) W_hh, so ||J_t||_2 <= ||W_hh||_2 and the product
shrinks geometrically when that is below 1 (Bengio et al. 1994; Pascanu et al. 2013).
``jacobian_norms`` reports ||J_t||_2 per step, ||J_t ... J_1||_2, and the decay rate:
the least-squares slope of log ||J_t ... J_1||_2 against t, in nats per step
(``factor = exp(rate)`` per step; < 1 vanishes, > 1 explodes).

Methods:
    "exact": J_t by ``torch.func.jacrev`` per sample (vmap), spectral norms by
        ``torch.linalg.matrix_norm(ord=2)``, the product carried as a matrix. S x S per sample.
    "power": ||J_t||_2 by power iteration on J_t^T J_t with jvp/vjp (no matrix is formed);
        the product norm is estimated by carrying one random tangent vector forward,
        ||J_t ... J_1 v|| / ||v||, a lower bound that follows the top growth rate.
    "auto": "exact" for S <= 256, else "power".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.func import jacrev, jvp, vjp, vmap

from ..cells import RecurrentCell

METHODS = ("auto", "exact", "power")


@dataclass
class JacobianReport:
    """step_norms, product_norms: (B, T) float64; decay_rate: nats per step (float)."""

    step_norms: np.ndarray
    product_norms: np.ndarray
    decay_rate: float
    method: str

    @property
    def factor(self) -> float:
        """Average shrink (< 1) or growth (> 1) of ||d s_t / d s_0|| per step."""
        return float(np.exp(self.decay_rate))


def _split(cell: RecurrentCell, s: Tensor) -> tuple[Tensor, ...]:
    return tuple(s.split(list(cell.state_sizes), dim=-1))


def _step_fn(cell: RecurrentCell, x_t: Tensor) -> Callable[[Tensor], Tensor]:
    """s (B, S) -> s' (B, S): one step of ``cell`` with the input fixed."""

    def f(s: Tensor) -> Tensor:
        return torch.cat(cell(x_t, _split(cell, s)), dim=-1)

    return f


def step_jacobian(cell: RecurrentCell, x_t: Tensor, s: Tensor) -> Tensor:
    """Exact d s_t / d s_{t-1} per sample: x_t (B, F), s (B, S) -> (B, S, S)."""

    def one(s1: Tensor, x1: Tensor) -> Tensor:
        return _step_fn(cell, x1[None])(s1[None])[0]

    return vmap(jacrev(one), in_dims=(0, 0))(s, x_t)


def _power_norm(f: Callable[[Tensor], Tensor], s: Tensor, n_iter: int, generator: torch.Generator) -> Tensor:
    """Largest singular value of each sample's d f / d s by power iteration on J^T J -> (B,).

    The samples of a batch are independent, so one batched jvp/vjp gives every J v and J^T u.
    """
    v = torch.randn(s.shape, generator=generator, dtype=s.dtype)
    v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    _, vjp_fn = vjp(f, s)
    sigma = torch.zeros(s.shape[0], dtype=s.dtype)
    for _ in range(n_iter):
        _, u = jvp(f, (s,), (v,))
        sigma = torch.linalg.vector_norm(u, dim=-1)
        (w,) = vjp_fn(u)
        v = w / torch.linalg.vector_norm(w, dim=-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    return sigma


def decay_rate(product_norms: np.ndarray) -> float:
    """Slope of the batch-mean log ||J_t ... J_1||_2 against t (nats per step)."""
    logs = np.log(np.maximum(np.asarray(product_norms, dtype=np.float64), np.finfo(np.float64).tiny))
    mean = logs.mean(axis=0)
    t = np.arange(1, len(mean) + 1, dtype=np.float64)
    if len(mean) < 2:
        return float(mean[0]) if len(mean) else float("nan")
    # The line through log ||J_1|| ... log ||J_T..J_1||; a pure geometric decay gives its rate exactly.
    return float(np.polyfit(t, mean, 1)[0])


@torch.no_grad()
def jacobian_norms(
    cell: RecurrentCell,
    x: object,
    state0: Optional[Sequence[Tensor]] = None,
    *,
    method: str = "auto",
    n_iter: int = 30,
    seed: int = 0,
) -> JacobianReport:
    """Spectral norms of d s_t / d s_{t-1} and of their product along the sequences of ``x``.

    Args:
        cell: a ``RecurrentCell`` (its one-step ``forward`` is differentiated), or a layer
            whose ``.cell`` is one.
        x: (B, T, F) inputs (numpy or torch), in the cell's dtype or converted to it.
        state0: initial state tuple, zeros if None.
        method: "auto", "exact" or "power" (see the module docstring).
        n_iter: power iterations per step ("power").
    """
    cell = getattr(cell, "cell", cell)  # a layer that holds its cell (ProbedRecurrent, rnnkit.layers.LSTM, ...)
    if not isinstance(cell, RecurrentCell):
        raise TypeError(f"Argument `cell` must be a rnnkit.cells.RecurrentCell (or a layer with one as `.cell`), "
                        f"got {type(cell).__name__}")
    if method not in METHODS:
        raise ValueError(f"Received an invalid value for argument `method`: expected one of {METHODS}, got {method!r}")
    dtype = cell.weight_hh.dtype
    x = torch.as_tensor(x).to(dtype)
    if x.dim() != 3 or x.shape[2] != cell.input_size:
        raise ValueError(f"Argument `x` must have shape (B, T, {cell.input_size}), got {tuple(x.shape)}")
    B, T, _ = x.shape
    S = sum(cell.state_sizes)
    if method == "auto":
        method = "exact" if S <= 256 else "power"
    state = cell.initial_state(B, x) if state0 is None else tuple(state0)
    s = torch.cat(state, dim=-1).detach()
    generator = torch.Generator().manual_seed(seed)
    step_norms = torch.zeros(B, T, dtype=torch.float64)
    product_norms = torch.zeros(B, T, dtype=torch.float64)
    if method == "exact":
        product = torch.eye(S, dtype=dtype).expand(B, S, S)
    else:
        tangent = torch.randn(B, S, generator=generator, dtype=dtype)
        tangent = tangent / torch.linalg.vector_norm(tangent, dim=-1, keepdim=True)
        log_growth = torch.zeros(B, dtype=torch.float64)
    with torch.enable_grad():
        for t in range(T):
            x_t = x[:, t]
            f = _step_fn(cell, x_t)
            if method == "exact":
                J = step_jacobian(cell, x_t, s).detach()  # (B, S, S)
                product = J @ product
                step_norms[:, t] = torch.linalg.matrix_norm(J, ord=2).double()
                product_norms[:, t] = torch.linalg.matrix_norm(product, ord=2).double()
            else:
                step_norms[:, t] = _power_norm(f, s, n_iter, generator).detach().double()
                _, tangent = jvp(f, (s,), (tangent,))
                size = torch.linalg.vector_norm(tangent.detach(), dim=-1)
                # Renormalise each step so the carried vector neither under- nor overflows.
                log_growth = log_growth + torch.log(size.double().clamp_min(torch.finfo(torch.float64).tiny))
                tangent = tangent.detach() / size.clamp_min(torch.finfo(dtype).tiny)[:, None]
                product_norms[:, t] = torch.exp(log_growth)
            s = f(s).detach()
    return JacobianReport(step_norms.numpy(), product_norms.numpy(), decay_rate(product_norms.numpy()), method)
