r"""Keras's cell API: ``RNN(cell)``, the built-in cells, ``StackedRNNCells``, and cells users write.

A cell computes one step and never loops (Keras 3's contract):

    cell.state_size                  an int, or a list with one entry per state tensor
                                     (an int, or a tuple for states of shape (B, ...))
    cell.output_size                 optional; defaults to the first state's size
    cell.call(inputs, states[, training]) -> (output, new_states)
        inputs (B, F); states a list of tensors (B, n); new_states a list (or a tensor)
    cell.get_initial_state(batch_size)   optional; zeros otherwise

``RNN(cell)`` loops it over time. ``SimpleRNNCell``, ``LSTMCell`` and ``GRUCell`` (and
``StackedRNNCells`` made only of them) run in the engine, exactly as ``SimpleRNN``,
``LSTM`` and ``GRU`` do (hand-derived BPTT, the C++ loop, the fused kernel where it is
exact and faster). Any other cell runs in the general loop (``rnnkit.engine.general``):
a Python loop over t with autograd through the cell's step, and the same masks,
``go_backwards``, ``return_sequences``/``return_state``, ``stateful``, ``tbptt=``,
``Bidirectional`` and ``fit(tbptt=k)``.

The built-in cells' weights, gate order and parameter counts are Keras's:
kernel (F, G), recurrent_kernel (H, G), bias (G,) (GRU with reset_after: (2, G)).

Differences from Keras, the same as the recurrent layers' (``rnnkit.keras.layers.rnn``):
masked steps output zeros, and ``go_backwards`` reverses the output mask. ``unroll`` is
accepted and ignored: the engine's loop is already compiled, and unrolling a Python
loop would not change what autograd computes.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from ...cells import RecurrentCell
from ...engine.general import run_steps
from ...ops import CELL_OPS
from .base import Layer, Shape, check_flag, deserialize, serialize
from .rnn import CellSettings, RecurrentLayer, keras_weights, run_engine_cell, set_keras_weights

StateShape = tuple[int, ...]


# ---------------------------------------------------------------------- built-in cells


class EngineCell(Layer, CellSettings):
    """Shared code of ``SimpleRNNCell``, ``LSTMCell`` and ``GRUCell``: Keras's arguments,
    one step through ``rnnkit.ops``, and the weights in ``self.core`` (a ``RecurrentCell``,
    created when F is known) so that ``RNN`` can hand them to the engine.

    forward(inputs (B, F), states, training=None) -> (h (B, H), new_states (a list)).
    Dropout: in training, one input mask (B, F) and one recurrent mask (B, H) are drawn
    and kept until ``reset_dropout_mask()`` (Keras's DropoutRNNCell); ``RNN`` resets them
    once per sequence, so every step of a sequence shares them (variational dropout).
    """

    kind = "rnn"

    def __init__(
        self,
        units: int,
        *,
        activation: Optional[str],
        recurrent_activation: Optional[str],
        use_bias: bool,
        kernel_initializer: str,
        recurrent_initializer: str,
        bias_initializer: str,
        dropout: float,
        recurrent_dropout: float,
        seed: Optional[int],
        unit_forget_bias: bool = False,
        reset_after: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_cell_settings(units, activation, recurrent_activation, use_bias, kernel_initializer,
                                recurrent_initializer, bias_initializer, unit_forget_bias, reset_after, dropout,
                                recurrent_dropout)
        self.seed = seed  # kept for the config; draws come from torch's generator
        self.core: Optional[RecurrentCell] = None
        self._masks: dict[str, Tensor] = {}
        self._build_declared()

    @property
    def state_size(self) -> Union[int, list[int]]:
        return [self.units, self.units] if self.kind == "lstm" else self.units

    @property
    def output_size(self) -> int:
        return self.units

    def build(self, input_shape: Shape) -> None:
        features = tuple(input_shape)[-1]
        if features is None:
            raise ValueError(f"Cell {self.name!r} needs a known feature size F (last axis), got shape {tuple(input_shape)}")
        self.core = self._new_cell(features, self.weight_dtype)
        self.built = True

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        w = state_dict.get(prefix + "core.weight_ih")
        return (None, int(w.shape[1])) if w is not None else None

    def get_initial_state(self, batch_size: int) -> list[Tensor]:
        dtype = self.core.weight_ih.dtype if self.core is not None else self.weight_dtype
        return [torch.zeros(batch_size, self.units, dtype=dtype) for _ in range(self.n_states)]

    # ------------------------------------------------------------ dropout

    def reset_dropout_mask(self) -> None:
        """Forget the cached dropout masks (``RNN`` calls this before and after each sequence)."""
        self._masks = {}

    def _mask(self, key: str, like: Tensor, rate: float) -> Tensor:
        m = self._masks.get(key)
        if m is None or m.shape != like.shape:
            m = (torch.rand_like(like) >= rate).to(like.dtype) / (1.0 - rate)
            self._masks[key] = m
        return m

    # -------------------------------------------------------------- step

    def forward(self, inputs: Tensor, states: Any, training: Optional[bool] = None) -> tuple[Tensor, list[Tensor]]:
        c = self.core
        if not isinstance(inputs, Tensor) or inputs.dim() != 2 or inputs.shape[1] != c.input_size:
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"Cell {self.name!r} expects inputs of shape (B, F) = (B, {c.input_size}), got {got}")
        state = (states,) if isinstance(states, Tensor) else tuple(states)
        B = inputs.shape[0]
        if len(state) != self.n_states or any(not isinstance(s, Tensor) or tuple(s.shape) != (B, self.units) for s in state):
            got = [tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in state]
            raise ValueError(f"Cell {self.name!r}: `states` must be {self.n_states} tensor(s) of shape (B, H) = ({B}, {self.units}), got {got}")
        dtype = c.weight_ih.dtype
        x, state = inputs.to(dtype), tuple(s.to(dtype) for s in state)
        training = self.training if training is None else bool(training)
        if training and self.dropout:
            x = x * self._mask("input", x, self.dropout)
        hin = state[0] * self._mask("recurrent", state[0], self.recurrent_dropout) if training and self.recurrent_dropout else state[0]
        w = c.weights()
        bias = w.bias_ih
        if c.spec.folds_hh_bias and w.bias_hh is not None:
            bias = w.bias_hh if bias is None else bias + w.bias_hh
        inner = w._replace(bias_hh=None) if c.spec.folds_hh_bias else w
        new, _ = CELL_OPS[self.kind].step(torch.nn.functional.linear(x, w.weight_ih, bias), state, hin, inner, c.spec)
        return new[0], list(new)

    # ------------------------------------------------------ Keras weights

    def get_weights(self) -> list[np.ndarray]:
        """Keras layout: [kernel (F, G), recurrent_kernel (H, G), bias (G,) or (2, G)], Keras gate order."""
        return [] if self.core is None else keras_weights(self.core, self.bias_mode)

    def set_weights(self, weights: Sequence[Any]) -> None:
        weights = [np.asarray(w) for w in weights]
        if not weights or weights[0].ndim != 2:
            raise ValueError(f"Cell {self.name!r}: expected Keras weights [kernel (F, G), recurrent_kernel (H, G), bias]")
        self.maybe_build((None, int(weights[0].shape[0])))
        set_keras_weights(self.name, self.core, weights)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._cell_config(), "seed": self.seed}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}"


class SimpleRNNCell(EngineCell):
    r"""One step of ``SimpleRNN``: :math:`h_t = \phi(W x_t + U h_{t-1} + b)`; state_size = units."""

    kind = "rnn"

    def __init__(self, units: int, activation: Optional[str] = "tanh", use_bias: bool = True,
                 kernel_initializer: str = "glorot_uniform", recurrent_initializer: str = "orthogonal",
                 bias_initializer: str = "zeros", dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(units, activation=activation, recurrent_activation="sigmoid", use_bias=use_bias,
                         kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, dropout=dropout, recurrent_dropout=recurrent_dropout,
                         seed=seed, **kwargs)


class LSTMCell(EngineCell):
    """One step of ``LSTM`` (equations in ``LSTM``); state_size = [units, units] (h, c)."""

    kind = "lstm"

    def __init__(self, units: int, activation: Optional[str] = "tanh", recurrent_activation: Optional[str] = "sigmoid",
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 recurrent_initializer: str = "orthogonal", bias_initializer: str = "zeros",
                 unit_forget_bias: bool = True, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, dropout=dropout, recurrent_dropout=recurrent_dropout,
                         seed=seed, unit_forget_bias=unit_forget_bias, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "unit_forget_bias": self.unit_forget_bias}


class GRUCell(EngineCell):
    """One step of ``GRU`` (equations in ``GRU``); state_size = units."""

    kind = "gru"

    def __init__(self, units: int, activation: Optional[str] = "tanh", recurrent_activation: Optional[str] = "sigmoid",
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 recurrent_initializer: str = "orthogonal", bias_initializer: str = "zeros", dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, reset_after: bool = True, seed: Optional[int] = None,
                 **kwargs: Any) -> None:
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, dropout=dropout, recurrent_dropout=recurrent_dropout,
                         seed=seed, reset_after=reset_after, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation, "reset_after": self.reset_after}


# ---------------------------------------------------------------------- the cell contract


def _is_cell(cell: Any) -> bool:
    return "state_size" in dir(cell) and (callable(getattr(cell, "call", None)) or callable(cell))


def _check_cell(cell: Any, argument: str) -> None:
    if not isinstance(cell, nn.Module) or not _is_cell(cell):
        raise TypeError(
            f"Argument `{argument}` must be a cell: an rnnkit Layer (or torch module) with a `state_size` attribute "
            f"and a `call(inputs, states)` method, got {type(cell).__name__}"
        )


def _state_shapes(cell: Any) -> list[StateShape]:
    """The cell's state_size as one per-sample shape per state tensor.

    8 -> [(8,)]; [8, 8] or (8, 8) -> [(8,), (8,)] (two states, as in Keras); a state of
    several axes is a ``torch.Size`` or a tuple inside the list: [(5, 3), (5, 3)].
    """
    size = cell.state_size
    if isinstance(size, torch.Size) or (isinstance(size, int) and not isinstance(size, bool)):
        size = [size]
    shapes: list[StateShape] = []
    for s in size if isinstance(size, (list, tuple)) else [None]:
        if isinstance(s, int) and not isinstance(s, bool) and s > 0:
            shapes.append((s,))
        elif isinstance(s, (tuple, list, torch.Size)) and s and all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s
        ):
            shapes.append(tuple(s))
        else:
            raise ValueError(
                f"Cell {getattr(cell, 'name', type(cell).__name__)!r}: `state_size` must be a positive int or a list of "
                f"them (or of per-sample shapes), got {cell.state_size!r}"
            )
    return shapes


def _output_shape(cell: Any) -> StateShape:
    size = getattr(cell, "output_size", None)
    if size is None:
        return _state_shapes(cell)[0]
    return (size,) if isinstance(size, int) else tuple(size)


def _step_method(cell: Any) -> Callable[..., Any]:
    """Keras cells define ``call``; torch-style ones ``forward`` (reached through ``__call__``)."""
    call = getattr(type(cell), "call", None)
    return cell.call if callable(call) else cell


def _accepts_training(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "training" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _build_cell(cell: Any, step_shape: Shape) -> None:
    if isinstance(cell, Layer):
        cell.maybe_build(step_shape)


class StackedRNNCells(Layer):
    """Several cells run as one: at each step cell k's output is cell k+1's input (Keras's).

    state_size: the list of the cells' state sizes; output_size: the last cell's.
    forward(inputs (B, F), states, training=None): ``states`` holds one list per cell;
    returns (the last cell's output, one list of new states per cell).
    Weights: the cells' weights in order.
    """

    def __init__(self, cells: Sequence[nn.Module], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise TypeError(f"Argument `cells` must be a non-empty list of cells, got {cells!r}")
        for i, c in enumerate(cells):
            _check_cell(c, f"cells[{i}]")
        self.cells = nn.ModuleList(cells)

    @property
    def state_size(self) -> list[Any]:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> int:
        return _output_shape(self.cells[-1])[0]

    def build(self, input_shape: Shape) -> None:
        shape = tuple(input_shape)
        for c in self.cells:
            _build_cell(c, shape)
            shape = (shape[0], *_output_shape(c))
        self.built = True

    def forward(self, inputs: Tensor, states: Sequence[Any], training: Optional[bool] = None) -> tuple[Tensor, list[Any]]:
        if not isinstance(states, (list, tuple)) or len(states) != len(self.cells):
            raise ValueError(f"Cell {self.name!r}: `states` must hold one list of states per cell ({len(self.cells)})")
        new_states = []
        for c, s in zip(self.cells, states):
            step = _step_method(c)
            kwargs = {"training": training} if _accepts_training(step) else {}
            inputs, new = step(inputs, list(s) if isinstance(s, (list, tuple)) else [s], **kwargs)
            new_states.append([new] if isinstance(new, Tensor) else list(new))
        return inputs, new_states

    def get_initial_state(self, batch_size: int) -> list[list[Tensor]]:
        return [_initial_states(c, batch_size) for c in self.cells]

    def reset_dropout_mask(self) -> None:
        for c in self.cells:
            if callable(getattr(c, "reset_dropout_mask", None)):
                c.reset_dropout_mask()

    def get_weights(self) -> list[np.ndarray]:
        return [w for c in self.cells for w in c.get_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        weights = list(weights)
        for c in self.cells:
            n = len(c.get_weights())
            c.set_weights(weights[:n])
            weights = weights[n:]
        if weights:
            raise ValueError(f"Cell {self.name!r}: {len(weights)} weight array(s) left over after filling every cell")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cells": [serialize(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "StackedRNNCells":
        config = dict(config)
        return cls([deserialize(c) for c in config.pop("cells")], **config)


def _initial_states(cell: Any, batch_size: int) -> list[Tensor]:
    fn = getattr(cell, "get_initial_state", None)
    if callable(fn):
        init = fn(batch_size)
        return [init] if isinstance(init, Tensor) else list(init)
    dtype = next((p.dtype for p in cell.parameters()), torch.get_default_dtype()) if isinstance(cell, nn.Module) else None
    return [torch.zeros(batch_size, *shape, dtype=dtype) for shape in _state_shapes(cell)]


def _engine_cells(cell: Any) -> Optional[list[EngineCell]]:
    """The built-in cells to run layer by layer in the engine, or None if any cell is not one."""
    if isinstance(cell, EngineCell):
        return [cell]
    if isinstance(cell, StackedRNNCells):
        cells: list[EngineCell] = []
        for c in cell.cells:
            inner = _engine_cells(c)
            if inner is None:
                return None
            cells += inner
        return cells
    return None


# ---------------------------------------------------------------------- RNN


class RNN(RecurrentLayer):
    """Loops a cell over time, Keras's ``RNN``: x (B, T, F) -> (B, O) or (B, T, O).

    Args:
        cell: a cell (see the module docstring), or a list of cells (a ``StackedRNNCells``).
        return_sequences, return_state, go_backwards, stateful: as in ``LSTM``.
        unroll: accepted for Keras compatibility and ignored (see the module docstring).
        tbptt: cut the gradient every ``tbptt`` steps (the forward state carries on).

    With ``return_state`` the result is [output, *states]; for a ``StackedRNNCells`` the
    states come as one list per cell (as Keras's built-in cells give them), and
    ``initial_state`` takes the same form.
    Weights: the cell's (``get_weights`` gives Keras's layout for the built-in cells).
    """

    def __init__(
        self,
        cell: Union[nn.Module, Sequence[nn.Module]],
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        *,
        tbptt: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(list(cell))
        _check_cell(cell, "cell")
        super().__init__(return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards,
                         stateful=stateful, tbptt=tbptt, **kwargs)
        self.unroll = check_flag(unroll, "unroll")
        self.cell = cell
        self._stacked = isinstance(cell, StackedRNNCells)
        self._step_shape: Optional[tuple] = None
        self._build_declared()

    # ---------------------------------------------------------------- build

    def build(self, input_shape: Shape) -> None:
        shape = self._full_shape(input_shape)
        if any(d is None for d in shape[2:]):
            raise ValueError(f"Layer {self.name!r} needs known feature sizes (every axis after T), got shape {tuple(shape)}")
        self._step_shape = tuple(shape[2:])
        _build_cell(self.cell, (shape[0], *shape[2:]))
        self.built = True

    def _cells(self) -> list[Any]:
        return list(self.cell.cells) if self._stacked else [self.cell]

    def state_shapes(self) -> list[StateShape]:
        return [s for c in self._cells() for s in _state_shapes(c)]

    def output_shapes(self, input_shape: Shape) -> tuple[tuple[Optional[int], ...], list[tuple[Optional[int], ...]]]:
        return _output_shape(self.cell), self.state_shapes()

    def _flat_states(self, states: Any) -> tuple[Any, ...]:
        if isinstance(states, Tensor):
            return (states,)
        flat: list[Any] = []
        for s in states:
            flat += list(s) if isinstance(s, (list, tuple)) else [s]
        return tuple(flat)

    def _nest(self, flat: Sequence[Tensor]) -> list[Any]:
        """Flat states -> what the cell's ``call`` takes: a list, or one list per stacked cell."""
        if not self._stacked:
            return list(flat)
        nested, i = [], 0
        for c in self._cells():
            n = len(_state_shapes(c))
            nested.append(list(flat[i : i + n]))
            i += n
        return nested

    def _pack_states(self, states: tuple[Any, ...]) -> list[Any]:
        return self._nest(states) if self._stacked else list(states)

    def _check_input(self, x: Tensor) -> Tensor:
        if tuple(x.shape[2:]) != self._step_shape:
            expected = ", ".join(str(d) for d in self._step_shape)
            raise ValueError(f"Layer {self.name!r} was built for inputs of shape (B, T, {expected}), got shape {tuple(x.shape)}")
        return x.to(self._state_dtype())

    # -------------------------------------------------------------- forward

    def _run(self, x: Tensor, mask: Optional[Tensor], state0: Optional[tuple[Tensor, ...]],
             training: bool) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        cells = _engine_cells(self.cell)
        if cells is not None:
            return self._run_engine(cells, x, mask, state0, training)
        return self._run_general(x, mask, state0, training)

    def _run_engine(self, cells: list[EngineCell], x: Tensor, mask: Optional[Tensor],
                    state0: Optional[tuple[Tensor, ...]], training: bool) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """Built-in cells, layer by layer: the same function as stepping the stack, in the engine."""
        out, finals, i = x, [], 0
        for c in cells:
            s0 = None if state0 is None else tuple(state0[i : i + c.n_states])
            out, final = run_engine_cell(c.core, out, mask, s0, training, dropout=c.dropout,
                                         recurrent_dropout=c.recurrent_dropout, reverse=self.go_backwards, tbptt=self.tbptt)
            finals += list(final)
            i += c.n_states
        return out, finals[-cells[-1].n_states], tuple(finals)

    def _run_general(self, x: Tensor, mask: Optional[Tensor], state0: Optional[tuple[Tensor, ...]],
                     training: bool) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        B = x.shape[0]
        if state0 is None:
            init = self.cell.get_initial_state(B) if self._stacked else _initial_states(self.cell, B)
            state0 = self._check_state(init, B, "the cell's get_initial_state()")
        state0 = tuple(s.to(x.device) for s in state0)
        step_fn = _step_method(self.cell)
        kwargs = {"training": training} if _accepts_training(step_fn) else {}
        shapes, out_shape, checked = self.state_shapes(), _output_shape(self.cell), []

        def step(x_t: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
            out, new = step_fn(x_t, self._nest(states), **kwargs)
            new_flat = self._flat_states([new] if isinstance(new, Tensor) else new)
            if not checked:  # the user's cell, checked once
                self._check_step(out, new_flat, B, shapes, out_shape)
                checked.append(True)
            return out, new_flat

        _reset_dropout(self.cell)
        try:
            out, final = run_steps(step, x, state0, mask=mask, reverse=self.go_backwards, tbptt=self.tbptt)
        finally:
            _reset_dropout(self.cell)
        return out, _last_real(out, mask, self.go_backwards), final

    def _check_step(self, out: Any, new: tuple[Any, ...], B: int, shapes: list[StateShape], out_shape: StateShape) -> None:
        cell = type(self.cell).__name__
        if not isinstance(out, Tensor) or tuple(out.shape) != (B, *out_shape):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"Layer {self.name!r}: cell {cell} must return an output of shape (B, {', '.join(map(str, out_shape))}) "
                             f"(its output_size, or else its first state size), got {got}")
        got_shapes = [tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in new]
        if got_shapes != [(B, *s) for s in shapes]:
            raise ValueError(f"Layer {self.name!r}: cell {cell} must return new states of shapes {[(B, *s) for s in shapes]} "
                             f"(its state_size), got {got_shapes}")

    # ------------------------------------------------------ weights, config

    def get_weights(self) -> list[np.ndarray]:
        return self.cell.get_weights() if isinstance(self.cell, Layer) else super().get_weights()

    def set_weights(self, weights: Sequence[Any]) -> None:
        if isinstance(self.cell, Layer):
            self.cell.set_weights(weights)
            self.built = self.built or self.cell.built
        else:
            super().set_weights(weights)

    def get_config(self) -> dict[str, Any]:
        if not isinstance(self.cell, Layer):
            raise TypeError(f"Layer {self.name!r}: its cell is a plain torch module, which has no config; use save_weights")
        return {**super().get_config(), "cell": serialize(self.cell), "unroll": self.unroll}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RNN":
        config = dict(config)
        return cls(deserialize(config.pop("cell")), **config)


def _reset_dropout(cell: Any) -> None:
    if callable(getattr(cell, "reset_dropout_mask", None)):
        cell.reset_dropout_mask()


def _last_real(out: Tensor, mask: Optional[Tensor], reverse: bool) -> Tensor:
    """The output of the last processed real step of each sequence, (B, ...); zeros if none."""
    if mask is None:
        return out[:, 0] if reverse else out[:, -1]
    T = out.shape[1]
    steps = torch.arange(T, device=out.device)
    order = (T - 1 - steps) if reverse else steps  # when each data step is processed
    t = torch.where(mask, order, torch.full_like(order, -1)).argmax(dim=1)  # (B,): data index of the last one
    return out[torch.arange(out.shape[0], device=out.device), t]  # masked outputs are 0: an all-masked row gives 0


__all__ = ["GRUCell", "LSTMCell", "RNN", "SimpleRNNCell", "StackedRNNCells"]
