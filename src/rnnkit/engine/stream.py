"""Streaming inference: one step at a time, the state kept between calls.

``step`` runs one cell step for a caller that steps by hand (``rnnkit.nn.LSTMCell``):
without autograd, the whole step is one compiled call. ``Streamer`` goes further
and binds the weights once.

At B = 1 the arithmetic of a step is a few microseconds; what costs is the
overhead around it (argument checks, a dozen small torch ops, state passing).
A ``Streamer`` checks its cell once, binds the weights once in the compiled
step, and then each ``step`` is one call.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ..cells import MinRNNCell, RecurrentCell
from . import compiled, kernels


def step(cell: Union[RecurrentCell, MinRNNCell], x: Tensor, state: Optional[Sequence[Tensor]] = None) -> tuple[Tensor, ...]:
    """One step of ``cell``: x (B, F), state per component (B, n) -> new state.

    Without autograd the step is one compiled call (the same math, tested equal);
    otherwise it is the cell's own step under autograd.
    """
    if isinstance(cell, MinRNNCell):
        return cell(x, state)
    if not torch.is_grad_enabled():
        state = cell.initial_state(x.shape[0], x) if state is None else tuple(state)
        new = compiled.inference_step(cell.spec, cell.weights(), x, state)
        if new is not None:
            return new
    return RecurrentCell.forward(cell, x, state)  # the cell's math, whatever front wraps it


class Streamer:
    """Feed a cell one time step at a time (no autograd).

    Args:
        cell: the cell whose weights to use. They are bound when the streamer is made (and
            shared, so in-place updates show); call ``refresh()`` after replacing them.
        batch_size: B, the number of streams stepped together.
        state: initial state, ``(h,)`` or ``(h, c)`` each (B, n); zeros if None.

    ``step(x)``: x (B, F) -> h (B, P); the full state is in ``.state``.
    """

    def __init__(self, cell: Union[RecurrentCell, MinRNNCell], batch_size: int = 1, state: Optional[Sequence[Tensor]] = None) -> None:
        if not isinstance(cell, (RecurrentCell, MinRNNCell)):
            raise TypeError(f"Argument `cell` must be a rnnkit.cells.RecurrentCell or MinRNNCell, got {type(cell).__name__}")
        self.cell = cell
        self.batch_size = batch_size
        self.refresh()
        self.reset(state)

    def refresh(self) -> None:
        """Re-read the cell's weights."""
        w = self.cell.weights() if isinstance(self.cell, RecurrentCell) else None
        like = self.cell.weight_ih
        self._stepper = None
        # A MinRNNCell's step is a few elementwise ops after its GEMM: no compiled stepper.
        if isinstance(self.cell, RecurrentCell) and compiled.kernels_blocker(self.cell.spec, w, like) is None:
            spec = self.cell.spec
            detach = lambda t: None if t is None else t.detach()  # noqa: E731
            self._stepper = kernels._module.Stepper(
                kernels.kind_code(spec), kernels.ACT_CODES[spec.activation],
                kernels.ACT_CODES[spec.recurrent_activation],
                detach(w.weight_ih), detach(w.weight_hh), detach(w.bias_ih), detach(w.bias_hh))
        self._x_shape = (self.batch_size, self.cell.input_size)
        self._dtype = like.dtype

    def reset(self, state: Optional[Sequence[Tensor]] = None) -> None:
        """Start again from ``state`` (zeros if None)."""
        like = self.cell.weight_ih
        sizes = self.cell.state_sizes
        if state is None:
            self.state = tuple(like.new_zeros(self.batch_size, n) for n in sizes)
            return
        state = tuple(state)
        expected = [(self.batch_size, n) for n in sizes]
        got = [tuple(s.shape) for s in state]
        if got != expected:
            raise ValueError(f"Argument `state` must be {len(expected)} tensor(s) of shapes {expected}, got {got}")
        self.state = tuple(s.detach().to(like.dtype).contiguous() for s in state)

    def step(self, x: Tensor) -> Tensor:
        """x (B, F) -> h (B, P), advancing the state by one step."""
        if not isinstance(x, Tensor) or x.shape != self._x_shape or x.dtype != self._dtype:
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"Argument `x` must be a {self._dtype} tensor of shape (B, F) = {self._x_shape}, got {got}")
        if self._stepper is not None:
            s = self.state
            self.state = tuple(self._stepper.step(x.contiguous(), s[0], s[1] if len(s) == 2 else None))
        else:
            with torch.no_grad():
                self.state = self.cell(x, self.state)
        return self.state[0]
