"""Layers that wrap another layer: ``Bidirectional`` and ``TimeDistributed``."""

from __future__ import annotations

import inspect
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .base import Layer, Shape, deserialize, serialize
from .rnn import RecurrentLayer, StateLike

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


def _fresh_copy(layer: Layer, **overrides: Any) -> Layer:
    """A new layer of the same class and config (fresh weights), with ``overrides``."""
    config = {**layer.get_config(), **overrides}
    try:
        return type(layer).from_config(config)
    except TypeError as err:
        # A user's cell whose get_config leaves out its constructor arguments lands here.
        raise TypeError(
            f"Bidirectional copies layer {layer.name!r} through get_config/from_config, which failed: {err}. "
            "A custom cell's get_config must return its constructor arguments (as in Keras)"
        ) from err


def _accepts(layer: Layer, argument: str) -> bool:
    params = inspect.signature(layer.forward).parameters
    return argument in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the outputs.

    Args:
        layer: a recurrent layer (``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN(cell)`` with any
            cell, ``ConvLSTM1D``/``2D``). As in Keras, it is used as a template:
            the forward and backward layers are fresh copies (new weights), named
            "forward_<name>" and "backward_<name>".
        merge_mode: "concat" (B, [T,] 2H), "sum", "mul", "ave" (B, [T,] H), or None:
            a list [forward output, backward output].
        weights: initial Keras-layout arrays, forward layer's then backward layer's.
        backward_layer: the backward layer to use instead of a copy; it must have the
            opposite ``go_backwards`` and the same ``return_sequences``, ``return_state``
            and ``stateful``.

    The backward output is flipped back into data order, so both directions line up at
    every t. With ``return_state`` the result is [output, *forward states, *backward
    states]; ``initial_state`` is split the same way. Masks go to both directions.
    Contracts S and P (see ``rnnkit.layers.rnn``) reach both directions through
    ``carry_state``, ``states``, ``reset_states()`` and ``probes``.
    """

    supports_masking = True

    def __init__(
        self,
        layer: RecurrentLayer,
        merge_mode: Optional[str] = "concat",
        weights: Optional[Sequence[Any]] = None,
        backward_layer: Optional[RecurrentLayer] = None,
        **kwargs: Any,
    ) -> None:
        for arg, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is not None and not isinstance(value, RecurrentLayer):
                raise TypeError(
                    f"Argument `{arg}` must be a recurrent layer (SimpleRNN, LSTM, GRU, RNN, ConvLSTM1D/2D), got {type(value).__name__}"
                )
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Received an invalid value for argument `merge_mode`: expected one of {MERGE_MODES}, got {merge_mode!r}")
        if "input_shape" not in kwargs and "batch_input_shape" not in kwargs and layer.declared_input_shape is not None:
            kwargs["batch_input_shape"] = layer.declared_input_shape
        super().__init__(**kwargs)
        overrides: dict[str, Any] = {"dtype": str(self.dtype).replace("torch.", "")} if self.dtype is not None else {}
        self.forward_layer = _fresh_copy(layer, name="forward_" + _strip(layer.name, "forward_"), **overrides)
        if backward_layer is None:
            backward_layer = _fresh_copy(layer, name="backward_" + _strip(layer.name, "backward_"), go_backwards=True, **overrides)
        self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(
                "The forward and backward layers must have different `go_backwards`, got "
                f"{self.forward_layer.go_backwards} for both"
            )
        for attr in ("stateful", "return_sequences", "return_state"):
            f, b = getattr(self.forward_layer, attr), getattr(self.backward_layer, attr)
            if f != b:
                raise ValueError(f"The forward and backward layers must have the same `{attr}`, got {f} and {b}")
        self.merge_mode = merge_mode
        self._build_declared()
        if weights is not None:
            self.set_weights(weights)

    # Read-only mirrors of the wrapped layers' settings.
    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    @property
    def stateful(self) -> bool:
        return self.forward_layer.stateful

    # Contract S and P reach both directions.
    @property
    def carry_state(self) -> bool:
        return self.forward_layer.carry_state

    @carry_state.setter
    def carry_state(self, value: bool) -> None:
        self.forward_layer.carry_state = self.backward_layer.carry_state = bool(value)

    @property
    def probes(self) -> Optional[list]:
        return self.forward_layer.probes

    @probes.setter
    def probes(self, value: Optional[list]) -> None:
        self.forward_layer.probes = self.backward_layer.probes = value

    @property
    def states(self) -> Optional[tuple[Tensor, ...]]:
        f, b = self.forward_layer.states, self.backward_layer.states
        return None if f is None or b is None else (*f, *b)

    def reset_states(self, states: StateLike = None) -> None:
        """Forget both directions' carried states, or set them to [*forward, *backward]."""
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        states = [states] if isinstance(states, Tensor) else list(states)
        half = len(states) // 2
        self.forward_layer.reset_states(states[:half])
        self.backward_layer.reset_states(states[half:])

    def build(self, input_shape: Shape) -> None:
        self.forward_layer.maybe_build(input_shape)
        self.backward_layer.maybe_build(input_shape)
        self.built = True

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, initial_state: StateLike = None,
                training: Optional[bool] = None) -> Union[Tensor, list[Tensor]]:
        f_state = b_state = None
        if initial_state is not None:
            states = [initial_state] if isinstance(initial_state, Tensor) else list(initial_state)
            half = len(states) // 2
            f_state, b_state = states[:half], states[half:]
        y = self.forward_layer(x, mask=mask, initial_state=f_state, training=training)
        y_rev = self.backward_layer(x, mask=mask, initial_state=b_state, training=training)
        states_out: list[Tensor] = []
        if self.return_state:
            states_out = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # back into data order
        if self.merge_mode == "concat":
            outputs: list[Tensor] = [torch.cat([y, y_rev], dim=-1)]  # (B, [T,] 2H)
        elif self.merge_mode == "sum":
            outputs = [y + y_rev]
        elif self.merge_mode == "mul":
            outputs = [y * y_rev]
        elif self.merge_mode == "ave":
            outputs = [(y + y_rev) / 2]
        else:
            outputs = [y, y_rev]
        if self.return_state or self.merge_mode is None:
            return outputs + states_out
        return outputs[0]

    def compute_mask(self, x: Tensor, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape: Shape) -> Union[Shape, list[Shape]]:
        out = self.forward_layer.compute_output_shape(input_shape)
        states: list[Shape] = []
        if self.return_state:
            out, states = out[0], list(out[1:])
        if self.merge_mode == "concat":
            last = out[-1]
            outputs = [(*out[:-1], None if last is None else 2 * last)]
        elif self.merge_mode is None:
            outputs = [out, out]
        else:
            outputs = [out]
        if self.return_state or self.merge_mode is None:
            return outputs + states + states
        return outputs[0]

    def get_weights(self) -> list[np.ndarray]:
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights: Sequence[Any]) -> None:
        weights = list(weights)
        half = len(weights) // 2
        self.forward_layer.set_weights(weights[:half])
        self.backward_layer.set_weights(weights[half:])
        self.built = True

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(merge_mode=self.merge_mode, layer=serialize(self.forward_layer),
                      backward_layer=serialize(self.backward_layer))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Bidirectional":
        config = dict(config)
        layer = deserialize(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        return cls(layer, backward_layer=deserialize(backward) if backward is not None else None, **config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, merge_mode={self.merge_mode!r}"


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: (B, T, ...) -> (B, T, ...), weights shared over t.

    The layer sees a (B * T, ...) batch. (``Dense`` already acts per step on (B, T, F);
    ``TimeDistributed(Dense(...))`` is the same function with the same weights.)
    """

    supports_masking = True

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Argument `layer` must be an rnnkit Layer, got {type(layer).__name__}")
        super().__init__(**kwargs)
        self.layer = layer
        self._pass_training = _accepts(layer, "training")
        self._build_declared()

    @staticmethod
    def _step_shape(input_shape: Shape) -> Shape:
        B, T = input_shape[0], input_shape[1]
        return (None if B is None or T is None else B * T, *input_shape[2:])

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 3:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, T, ...) (rank >= 3), got shape {tuple(input_shape)}")
        self.layer.maybe_build(self._step_shape(tuple(input_shape)))
        self.built = True

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if x.dim() < 3:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, T, ...) (rank >= 3), got shape {tuple(x.shape)}")
        B, T = x.shape[:2]
        kwargs = {"training": training} if self._pass_training else {}
        y = self.layer(x.reshape(B * T, *x.shape[2:]), **kwargs)  # (B * T, ...)
        return y.reshape(B, T, *y.shape[1:])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        inner = self.layer.compute_output_shape((None, *tuple(input_shape)[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def get_weights(self) -> list[np.ndarray]:
        return self.layer.get_weights()

    def set_weights(self, weights: Sequence[Any]) -> None:
        self.layer.set_weights(weights)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TimeDistributed":
        config = dict(config)
        return cls(deserialize(config.pop("layer")), **config)
