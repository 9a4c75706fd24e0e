"""The general time loop: any step function, differentiated by autograd.

The hand-derived engine (``run``) covers the built-in cells. A cell someone writes
(Keras's cell contract: ``call(inputs, states) -> (output, new_states)``) has no
derived backward, so this loop runs it step by step in Python and lets autograd
differentiate through every step. It keeps the engine's conventions:

    state_t = m_t ? new_state_t : state_{t-1}       (a masked step keeps the state)
    out_t   = m_t ? out_t : 0                        (and outputs zero)

with ``reverse`` processing t = T-1 .. 0 (outputs stay aligned with the input's time
axis) and ``tbptt=k`` cutting the gradient every k processed steps (the forward
state carries on), exactly where the engine's backward cuts it.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

StepFunction = Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, tuple[Tensor, ...]]]


def _keep(m: Tensor, like: Tensor) -> Tensor:
    """A (B,) bool step mask shaped to broadcast against ``like`` (B, ...)."""
    return m.reshape(m.shape[0], *([1] * (like.dim() - 1)))


def run_steps(
    step: StepFunction,
    x: Tensor,
    state0: Sequence[Tensor],
    *,
    mask: Optional[Tensor] = None,
    reverse: bool = False,
    tbptt: Optional[int] = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run ``step`` over x (B, T, ...) from ``state0``; autograd does the backward.

    Args:
        step: (x_t (B, ...), states) -> (out_t (B, ...), new states), shapes kept.
        state0: the initial state tensors, each (B, ...).
        mask: (B, T) bool, True on real steps.
        reverse: process t = T-1 .. 0.
        tbptt: detach the state before every k-th processed step (k, 2k, ...).
    Returns:
        out (B, T, ...) in data order, and the final state tuple.
    """
    if not isinstance(x, Tensor) or x.dim() < 3:
        raise ValueError(f"Argument `x` must be a tensor of shape (B, T, ...) (rank >= 3), got {getattr(x, 'shape', x)!r}")
    B, T = x.shape[:2]
    if T == 0:
        raise ValueError(f"Argument `x` needs at least one time step (T >= 1), got shape {tuple(x.shape)}")
    if mask is not None and tuple(mask.shape) != (B, T):
        raise ValueError(f"Argument `mask` must have shape (B, T) = ({B}, {T}), got {tuple(mask.shape)}")
    if tbptt is not None and (not isinstance(tbptt, int) or isinstance(tbptt, bool) or tbptt < 1):
        raise ValueError(f"Argument `tbptt` must be a positive integer or None, got {tbptt!r}")
    state = tuple(state0)
    outputs: list[Optional[Tensor]] = [None] * T
    order = range(T - 1, -1, -1) if reverse else range(T)
    for n, t in enumerate(order):
        if tbptt is not None and n and n % tbptt == 0:
            state = tuple(s.detach() for s in state)
        out, new = step(x[:, t], state)
        if mask is not None:
            m = mask[:, t]
            new = tuple(torch.where(_keep(m, s), s_new, s) for s, s_new in zip(state, new))
            out = torch.where(_keep(m, out), out, torch.zeros((), dtype=out.dtype, device=out.device))
        state = tuple(new)
        outputs[t] = out
    return torch.stack(outputs, dim=1), state  # type: ignore[arg-type]
