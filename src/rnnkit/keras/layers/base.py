"""The Keras-style layer protocol, on top of ``torch.nn.Module``.

A ``Layer`` builds its weights lazily on the first call, when the input's
feature size is known (so ``LSTM(128)`` needs no input size), carries a Keras
mask from layer to layer, and can describe itself for ``summary()`` and for
saving (``get_config``).

Contract used by ``Sequential``/``Model`` and by ``rnnkit.training``:
    layer(x, mask=None, training=None) -> y   forward; ``mask`` is (B, T) bool or None;
                                      ``training=None`` means ``layer.training``
    layer.compute_mask(x, mask)       the mask for the next layer (default: passes it on
                                      if ``supports_masking``, else None)
    layer.compute_output_shape(shape) shapes with None for unknown dims (batch, time)
    layer.build(input_shape)          create weights; called once by __call__, or by a
                                      model from shapes alone (None for batch and time)
    layer.count_params()              number of scalar weights (built layers)
    layer.get_config() / cls.from_config(config)   JSON-safe constructor arguments
    serialize(layer) / deserialize(d) {"class_name": ..., "config": ...}
    get_layer_class(name)             every Layer subclass, registered by class name
    layer.get_weights() / set_weights(ws)   numpy arrays in Keras's layout and order

Inputs may be numpy arrays; floating ones become tensors of the layer's dtype.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import symbolic

Shape = tuple[Optional[int], ...]

_counters: dict[str, int] = {}
_REGISTRY: dict[str, type["Layer"]] = {}

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def _snake(name: str) -> str:
    """Keras's default names: LSTM -> lstm, SimpleRNN -> simple_rnn, TimeDistributed -> time_distributed."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """Keras-style default names: lstm, lstm_1, lstm_2, ..."""
    n = _counters.get(prefix, 0)
    _counters[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


def get_layer_class(name: str) -> type["Layer"]:
    """The Layer subclass registered under its class name (for deserialisation)."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown layer class {name!r}; expected one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def serialize(layer: "Layer") -> dict[str, Any]:
    """{"class_name": ..., "config": ...}: enough to rebuild the layer (not its weights)."""
    if not isinstance(layer, Layer):
        raise TypeError(f"Expected an rnnkit Layer, got {type(layer).__name__}")
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(data: dict[str, Any]) -> "Layer":
    """Inverse of ``serialize``."""
    if not isinstance(data, dict) or "class_name" not in data or "config" not in data:
        raise ValueError(f"Expected a dict with keys 'class_name' and 'config', got {data!r}")
    return get_layer_class(data["class_name"]).from_config(dict(data["config"]))


def to_dtype(dtype: Any, argument: str = "dtype") -> Optional[torch.dtype]:
    """None, a torch floating dtype or its Keras name ("float32") -> torch dtype or None."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"Received an invalid value for argument `{argument}`: expected one of {sorted(_DTYPES)}, got {dtype!r}")


def _check_shape(shape: Any, argument: str) -> Shape:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
        raise ValueError(f"Argument `{argument}` must be a tuple of positive ints or None, got {shape!r}")
    return tuple(shape)


def check_rate(rate: Any, argument: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a rate in [0, 1), got {rate!r}")
    return float(rate)


def check_flag(value: Any, argument: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Argument `{argument}` must be a bool, got {value!r}")
    return bool(value)


class Layer(nn.Module):
    """Base class of the Keras-style layers: lazy build, masks, config, parameter count.

    Every layer takes these keyword arguments (Keras's base-layer arguments):
        name: Keras-style unique name ("lstm", "lstm_1", ...) when None.
        input_shape: the input shape without the batch axis, as in Keras; the layer is
            then built at construction, so ``count_params()`` works before any call.
        batch_input_shape: the same with the batch axis (Keras 2, used with ``stateful``).
        dtype: weight dtype (torch dtype or "float32"/"float64"); the default dtype if None.
        trainable: False freezes the weights (``requires_grad=False``); settable later.
    """

    supports_masking: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A user's class may not shadow rnnkit's own of the same name (a custom "LSTM"
        # would otherwise be what every saved LSTM loads as).
        taken = _REGISTRY.get(cls.__name__)
        if taken is None or not taken.__module__.startswith("rnnkit.") or cls.__module__.startswith("rnnkit."):
            _REGISTRY[cls.__name__] = cls
        if "__call__" in cls.__dict__:
            # A layer's own __call__ checks real tensors; symbolic ones must reach the graph first.
            cls.__call__ = _symbolic_first(cls.__dict__["__call__"])

    def __init__(
        self,
        name: Optional[str] = None,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        dtype: Any = None,
        *,
        batch_input_shape: Optional[Sequence[Optional[int]]] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string, got {name!r}")
        self.name = name or unique_name(_snake(type(self).__name__))
        self.built = False
        if input_shape is not None and batch_input_shape is not None:
            raise ValueError("Pass either `input_shape` (batch axis excluded) or `batch_input_shape`, not both")
        self.declared_input_shape: Optional[Shape] = None
        if input_shape is not None:
            # Keras's input_shape excludes the batch axis.
            self.declared_input_shape = (None, *_check_shape(input_shape, "input_shape"))
        elif batch_input_shape is not None:
            self.declared_input_shape = _check_shape(batch_input_shape, "batch_input_shape")
        self.dtype = to_dtype(dtype)
        self._trainable = check_flag(trainable, "trainable")

    @property
    def trainable(self) -> bool:
        """Whether the optimiser may change the weights; False sets ``requires_grad=False``."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = check_flag(value, "trainable")
        for p in self.parameters():
            p.requires_grad_(self._trainable)

    @property
    def weight_dtype(self) -> torch.dtype:
        """The dtype new weights are created with."""
        return self.dtype or torch.get_default_dtype()

    def _build_declared(self) -> None:
        """Subclasses call this last in ``__init__``: ``input_shape=`` means build now."""
        if self.declared_input_shape is not None:
            self.maybe_build(self.declared_input_shape)

    def build(self, input_shape: Shape) -> None:
        """Create weights for inputs of ``input_shape`` (batch axis included, may be None)."""
        self.built = True

    def maybe_build(self, input_shape: Shape) -> None:
        if not self.built:
            self.build(tuple(input_shape))
            self.built = True
            if not self._trainable:
                self.trainable = False  # weights created by build are frozen too

    def _to_tensor(self, x: Any) -> Any:
        if isinstance(x, nn.Module):
            raise TypeError(
                f"Layer {self.name!r} got a layer ({getattr(x, 'name', type(x).__name__)!r}) as input; call layers on "
                "tensors, e.g. layer(keras.Input(shape=...)), or on data"
            )
        if isinstance(x, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(x))
            # numpy's float64 default is an accident of the data, not a request for float64 weights.
            return t.to(self.weight_dtype) if t.is_floating_point() else t
        return x

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, symbolic.KerasTensor) or symbolic.is_symbolic((x, *args), kwargs):
            return symbolic.call_symbolic(self, (x, *args), kwargs)
        x = self._to_tensor(x)
        if isinstance(x, Tensor) and not self.built:
            self.maybe_build(tuple(x.shape))
            # Lazily created weights follow the data, like the rest of the module would after .to().
            if any(p.device != x.device for p in self.parameters()):
                self.to(x.device)
        return super().__call__(x, *args, **kwargs)

    # -- the functional API: where this layer sits in graphs ---------------------------

    def _single_node(self, what: str) -> "symbolic.Node":
        nodes = symbolic.inbound_nodes(self)
        if not nodes:
            # ValueError, not AttributeError: torch's __getattr__ would hide the message.
            raise ValueError(f"Layer {self.name!r} has no {what}: it has not been called on a symbolic tensor "
                                 "(keras.Input(...) or another layer's output)")
        if len(nodes) > 1:
            raise ValueError(f"Layer {self.name!r} has been called {len(nodes)} times, so `{what}` is ambiguous; "
                                 "keep the tensor each call returned instead")
        return nodes[0]

    @property
    def input(self) -> Any:
        """The symbolic input of this layer's one call (``layer.input``, as in Keras)."""
        node = self._single_node("input")
        return node.args[0] if node.args else node.outputs

    @property
    def output(self) -> Any:
        """The symbolic output(s) of this layer's one call (a list with ``return_state=True``)."""
        return self._single_node("output").outputs

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # Lets ``load_state_dict`` fill a layer that has not seen data yet.
        if not self.built:
            shape = self.input_shape_from_state(state_dict, prefix)
            if shape is not None:
                self.maybe_build(shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        """The input shape implied by saved weights, or None if it cannot be told."""
        return None

    def compute_mask(self, x: Tensor, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return mask if self.supports_masking else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def get_weights(self) -> list[np.ndarray]:
        """Weights as numpy arrays, in Keras's layout and order where it differs from ours."""
        return [p.detach().cpu().numpy().copy() for p in self.parameters()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Inverse of ``get_weights``; shapes must match exactly."""
        if not self.built:
            raise ValueError(f"Layer {self.name!r} is not built yet; call it on data (or pass input_shape=) before set_weights")
        params = list(self.parameters())
        assign_arrays(self.name, params, weights)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name}
        shape = self.declared_input_shape
        if shape is not None and shape[0] is not None:
            config["batch_input_shape"] = list(shape)
        elif shape is not None:
            config["input_shape"] = list(shape[1:])
        if self.dtype is not None:
            config["dtype"] = str(self.dtype).replace("torch.", "")
        if not self._trainable:
            config["trainable"] = False
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layer":
        return cls(**config)


def _symbolic_first(call: Any) -> Any:
    @functools.wraps(call)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        if symbolic.is_symbolic(args, kwargs):
            return symbolic.call_symbolic(self, args, kwargs)
        return call(self, *args, **kwargs)

    return __call__


def is_built(model: nn.Module) -> bool:
    """Whether every weight of ``model`` exists (no lazy layer is still waiting for data)."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        return False
    # The model's own flag only says whether it has seen data; its layers say whether weights exist.
    return all(getattr(m, "built", True) for m in model.modules() if m is not model)


def assign_arrays(owner: str, params: Sequence[Tensor], arrays: Sequence[Any]) -> None:
    """Copy ``arrays`` into ``params`` one to one, checking count and shapes."""
    arrays = list(arrays)
    if len(arrays) != len(params):
        raise ValueError(f"{owner}: expected {len(params)} weight arrays, got {len(arrays)}")
    for i, (p, a) in enumerate(zip(params, arrays)):
        a = torch.as_tensor(np.asarray(a))
        if tuple(a.shape) != tuple(p.shape):
            raise ValueError(f"{owner}: weight {i} must have shape {tuple(p.shape)}, got {tuple(a.shape)}")
    with torch.no_grad():
        for p, a in zip(params, arrays):
            p.copy_(torch.as_tensor(np.asarray(a)))
