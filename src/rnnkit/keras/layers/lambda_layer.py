"""``Lambda``: any function of tensors as a layer, and how such a layer is saved honestly.

Keras saves a Python lambda as its bytecode and refuses to load it unless the user
turns "safe mode" off, since loading it runs code stored in the file. rnnkit never
stores or runs code from a file. A ``Lambda`` is saved with the *name* of its
function, and loading looks that name up among the functions this process has
registered with ``@register_function``:

    @register_function
    def last_step(x):
        return x[:, -1]

    model = Sequential([LSTM(8, return_sequences=True), Lambda(last_step), Dense(1)])
    model.save("m.safetensors")        # the config holds "last_step"'s registered name
    load_model("m.safetensors")        # works where the module defining last_step is imported

A Python lambda, a closure or an unregistered function has no name to save: saving
the model raises a ValueError that says so (``save_weights`` still works).
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from .base import Layer, Shape

_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def register_function(fn: Optional[Callable[..., Any]] = None, *, name: Optional[str] = None) -> Any:
    """Register ``fn`` (also as a decorator, with or without ``name=``) so Lambda layers using it can be saved.

    The default name is "<module>.<qualname>". Registering a different function under a
    name already taken raises a ValueError.
    """

    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise TypeError(f"register_function expects a callable, got {f!r}")
        key = name or f"{f.__module__}.{f.__qualname__}"
        if "<lambda>" in key or "<locals>" in key:
            raise ValueError(f"Cannot register {key!r} without `name=`: lambdas and nested functions have no stable name")
        if _FUNCTIONS.get(key, f) is not f:
            raise ValueError(f"Another function is already registered as {key!r}")
        _FUNCTIONS[key] = f
        return f

    return register(fn) if fn is not None else register


def _function_name(fn: Callable[..., Any], argument: str) -> str:
    for key, f in _FUNCTIONS.items():
        if f is fn:
            return key
    what = "a Python lambda" if getattr(fn, "__name__", "") == "<lambda>" else repr(fn)
    raise ValueError(
        f"Lambda layer: `{argument}` is {what}, which is not registered, so the layer cannot be saved as data "
        "(rnnkit never stores code in a file). Define a module-level function and decorate it with "
        "@rnnkit.keras.layers.register_function, or save the weights only (save_weights)"
    )


def _lookup(key: Any, argument: str) -> Callable[..., Any]:
    if not isinstance(key, str) or key not in _FUNCTIONS:
        raise ValueError(
            f"Lambda layer: `{argument}` {key!r} is not a registered function in this process; import the module "
            "that defines it with @register_function before loading"
        )
    return _FUNCTIONS[key]


def _accepts(fn: Callable[..., Any], argument: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return argument in params


class Lambda(Layer):
    """Wraps ``function(inputs, **arguments)`` as a layer, like Keras's ``Lambda``.

    Args:
        function: called on the layer's input (a tensor, or a list for several inputs);
            it also gets ``mask=`` and ``training=`` if its signature names them.
        output_shape: the output shape without the batch axis, or a function of the full
            input shape; if None, the shape is found by running ``function`` on meta
            tensors (no data, no memory) with the unknown sizes set to 2 and then 3.
        mask: None (no mask out), or a function ``mask(inputs, mask) -> mask``.
        arguments: extra keyword arguments for ``function`` (JSON-safe, to be saved).

    Saving needs ``function`` (and callable ``output_shape``/``mask``) registered with
    ``register_function``; see the module docstring.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        output_shape: Union[Sequence[Optional[int]], Callable[[Shape], Shape], None] = None,
        mask: Optional[Callable[..., Any]] = None,
        arguments: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Argument `function` must be callable, got {function!r}")
        if output_shape is not None and not callable(output_shape) and not isinstance(output_shape, (tuple, list)):
            raise TypeError(f"Argument `output_shape` must be a tuple, a function or None, got {output_shape!r}")
        if mask is not None and not callable(mask):
            raise TypeError(f"Argument `mask` must be a function mask(inputs, mask) or None, got {mask!r}")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"Argument `arguments` must be a dict or None, got {arguments!r}")
        self.function = function
        self._output_shape = tuple(output_shape) if isinstance(output_shape, (tuple, list)) else output_shape
        self.mask = mask
        self.supports_masking = mask is not None
        self.arguments = dict(arguments or {})
        self._pass_mask = _accepts(function, "mask")
        self._pass_training = _accepts(function, "training")
        self.built = True

    def forward(self, x: Any, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Any:
        kwargs = dict(self.arguments)
        if self._pass_mask:
            kwargs["mask"] = mask
        if self._pass_training:
            kwargs["training"] = self.training if training is None else training
        return self.function(x, **kwargs)

    def compute_mask(self, x: Any, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return self.mask(x, mask) if self.mask is not None else None

    def compute_output_shape(self, input_shape: Any) -> Any:
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        if self._output_shape is not None:
            batch = input_shape[0][0] if input_shape and isinstance(input_shape[0], (tuple, list)) else input_shape[0]
            return (batch, *self._output_shape)
        return self._infer_shape(input_shape)

    def _infer_shape(self, input_shape: Any) -> Any:
        """Run the function twice on meta tensors; a size that changes with the unknown sizes is None."""

        def fake(shape: Any, fill: int) -> Any:
            if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
                return [fake(s, fill) for s in shape]
            return torch.empty([fill if d is None else d for d in shape], device="meta")

        def shape_of(y: Any) -> Any:
            if isinstance(y, (list, tuple)):
                return [shape_of(t) for t in y]
            return tuple(y.shape)

        def merge(a: Any, b: Any) -> Any:
            if isinstance(a, list):
                return [merge(p, q) for p, q in zip(a, b)]
            return tuple(p if p == q else None for p, q in zip(a, b))

        try:
            with torch.no_grad():
                shapes = [shape_of(self.forward(fake(list(input_shape) if not isinstance(input_shape, list) else input_shape, n)))
                          for n in (2, 3)]
        except Exception as err:  # the function's own error says nothing about shapes
            raise NotImplementedError(
                f"Layer {self.name!r} could not infer its output shape by running its function on meta tensors "
                f"({type(err).__name__}: {err}); pass `output_shape=`"
            ) from err
        return merge(*shapes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["function"] = _function_name(self.function, "function")
        if callable(self._output_shape):
            config["output_shape"] = {"function": _function_name(self._output_shape, "output_shape")}
        elif self._output_shape is not None:
            config["output_shape"] = list(self._output_shape)
        if self.mask is not None:
            config["mask"] = _function_name(self.mask, "mask")
        try:
            json.dumps(self.arguments)
        except TypeError as err:
            raise ValueError(f"Layer {self.name!r}: `arguments` must be JSON-safe to be saved ({err})") from None
        config["arguments"] = self.arguments
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Lambda":
        config = dict(config)
        config["function"] = _lookup(config.get("function"), "function")
        shape = config.get("output_shape")
        if isinstance(shape, dict):
            config["output_shape"] = _lookup(shape.get("function"), "output_shape")
        if config.get("mask") is not None:
            config["mask"] = _lookup(config["mask"], "mask")
        return cls(**config)


__all__ = ["Lambda", "register_function"]
