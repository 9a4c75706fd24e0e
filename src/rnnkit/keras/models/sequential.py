"""``Sequential``: a stack of layers, each feeding the next, with Keras masks passed along.

Layers are registered under their index ("0", "1", ...), as in ``torch.nn.Sequential``,
so ``state_dict`` keys do not depend on Keras-style layer names.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable, Optional, Sequence

from torch import Tensor, nn

from ..layers.base import Layer
from ..layers.embedding import Embedding
from ..layers.symbolic import KerasTensor
from .model import Model, Shape, _Default


def _is_input_layer(layer: nn.Module) -> bool:
    # rnnkit.layers.Input holds a shape and does nothing else; Keras leaves it out of `layers`.
    return bool(getattr(layer, "is_input_layer", False)) or type(layer).__name__ in ("Input", "InputLayer")


class Sequential(Model):
    """``Sequential([layer, ...])``: x -> layer_1 -> ... -> layer_n.

    A layer's Keras mask (e.g. from ``Embedding(mask_zero=True)`` or ``Masking``) goes to
    the next layer as ``layer(x, mask=mask)`` when its ``forward`` takes a ``mask``, and
    ``layer.compute_mask(x, mask)`` gives the mask after it.

    Shapes: input (B, T, F) or (B, T) token ids; output whatever the last layer gives.
    """

    def __init__(self, layers: Optional[Iterable[nn.Module]] = None, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self._input_shape: Optional[Shape] = None
        self._takes: dict[int, frozenset[str]] = {}
        for layer in layers or ():
            self.add(layer)

    @_Default
    def layers(self) -> list[nn.Module]:
        """The layers in order (an ``Input`` is not one of them, as in Keras)."""
        return list(self._modules.values())  # type: ignore[arg-type]

    def add(self, layer: nn.Module) -> None:
        """Append a layer; ``Input(shape=...)`` (or a first layer with ``input_shape=``) builds the model."""
        if isinstance(layer, KerasTensor) and getattr(layer.history[0] if layer.history else None, "is_input_layer", False):
            layer = layer.history[0]  # keras.Input(...) declares the input shape, as in Keras
        if not isinstance(layer, nn.Module):
            raise TypeError(f"Sequential.add expects an rnnkit layer or a torch.nn.Module, got {type(layer).__name__}")
        if isinstance(layer, Model):
            raise TypeError("Sequential.add: nesting models is not supported; add their layers instead")
        if _is_input_layer(layer):
            if len(self._modules):
                raise ValueError("Sequential.add: an Input layer must come first")
            self._input_shape = _declared_shape(layer)
            return
        if any(layer is m for m in self._modules.values()):
            raise ValueError(f"Sequential.add: layer {getattr(layer, 'name', layer)!r} is already in the model")
        self.add_module(str(len(self._modules)), layer)
        self.built = False
        if len(self._modules) == 1 and self._input_shape is None:
            self._input_shape = _declared_shape(layer)
        if self._input_shape is not None:
            self.build(self._input_shape)

    def pop(self) -> nn.Module:
        """Remove and return the last layer."""
        if not self._modules:
            raise IndexError("Sequential.pop: there are no layers to remove")
        key = next(reversed(self._modules))
        layer = self._modules.pop(key)
        self._takes.pop(len(self._modules), None)
        self._output_shapes.pop(key, None)
        return layer  # type: ignore[return-value]

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Build every layer from shapes alone (no data): ``input_shape`` includes the batch axis.

        With ``input_shape=None`` the shape declared by ``Input`` or the first layer's
        ``input_shape=`` is used.
        """
        if input_shape is None:
            input_shape = self._input_shape
        if input_shape is None:
            raise ValueError(f"Sequential {self.name!r}: build needs an input shape (batch axis included, e.g. "
                             "(None, None, 8)); pass it, or give the first layer input_shape=...")
        shape: Any = tuple(input_shape)
        self._output_shapes = {}
        for key, layer in self._modules.items():
            if not isinstance(layer, Layer):
                # A plain torch module has no shape inference; it is sized by its constructor.
                self._output_shapes[key] = None
                shape = None
                continue
            if shape is None:
                break
            layer.maybe_build(shape)
            shape = layer.compute_output_shape(shape)
            self._output_shapes[key] = shape
        else:
            self.built = True
            self._build_input_shape = tuple(input_shape)
            self._input_shape = tuple(input_shape)

    def _call_with_mask(self, inputs: Any, mask: Optional[Tensor] = None,
                        training: Optional[bool] = None) -> tuple[Any, Optional[Tensor]]:
        if not self.built and not self._output_shapes and isinstance(inputs, Tensor):
            self._build_input_shape = (None, *inputs.shape[1:])
        x = inputs
        for i, layer in enumerate(self._modules.values()):
            takes = self._accepted(i, layer)
            kwargs: dict[str, Any] = {}
            if mask is not None and "mask" in takes:
                kwargs["mask"] = mask
            if training is not None and "training" in takes:
                kwargs["training"] = training
            y = layer(x, **kwargs)
            mask = layer.compute_mask(x, mask) if isinstance(layer, Layer) else None
            x = y
        if not self.built:
            self._record_shapes()
        return x, mask

    def forward(self, inputs: Any, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Any:
        """inputs (B, T, F) or (B, T) ids; ``mask`` (B, T) bool for the first layer; ``training``
        overrides each layer's mode for this call (default: the module's ``.training``)."""
        return self._call_with_mask(inputs, mask, training)[0]

    def call(self, inputs: Any, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Any:
        return self._call_with_mask(inputs, mask, training)[0]

    def _accepted(self, i: int, layer: nn.Module) -> frozenset[str]:
        """Which of "mask"/"training" the layer's forward takes (cached per position)."""
        if i not in self._takes:
            params = inspect.signature(layer.forward).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                self._takes[i] = frozenset({"mask", "training"})
            else:
                self._takes[i] = frozenset({"mask", "training"} & set(params))
        return self._takes[i]

    def _record_shapes(self) -> None:
        """After a first forward on data: the output shapes for summary(), with batch None."""
        shape: Any = self._build_input_shape
        for key, layer in self._modules.items():
            if shape is None or not isinstance(layer, Layer):
                self._output_shapes[key] = None
                shape = None
                continue
            shape = layer.compute_output_shape(shape)
            self._output_shapes[key] = shape
        self.built = True

    def get_config(self) -> dict[str, Any]:
        from ..layers.base import serialize

        for layer in self._modules.values():
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential.get_config: {type(layer).__name__} is a plain torch module, not an "
                                "rnnkit layer, so it has no config; use save_weights instead of save")
        config: dict[str, Any] = {"name": self.name, "layers": [serialize(l) for l in self._modules.values()]}
        shape = self._build_input_shape or self._input_shape
        if shape is not None:
            config["build_input_shape"] = list(shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Sequential":
        from ..layers.base import deserialize

        model = cls(name=config.get("name"))
        for data in config.get("layers", []):
            model.add(deserialize(data))
        shape = config.get("build_input_shape")
        if shape is not None and not model.built:
            model.build(tuple(shape))
        return model


def _declared_shape(layer: nn.Module) -> Optional[Shape]:
    shape = getattr(layer, "declared_input_shape", None)
    if shape is None and isinstance(layer, Embedding):
        # As in Keras 2, an Embedding declares its input (B, input_length): ids need no feature size.
        return (None, layer.input_length)
    return tuple(shape) if shape is not None else None
