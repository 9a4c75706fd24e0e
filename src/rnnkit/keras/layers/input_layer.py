"""``keras.Input``: the symbolic tensor a functional model starts from, and its ``InputLayer``.

    inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")   # (B, T) ids
    x = layers.Embedding(1000, 64, mask_zero=True)(inputs)              # (None, None, 64), masked
    outputs = layers.Dense(1)(layers.LSTM(32)(x))
    model = keras.Model(inputs, outputs)

``Input`` also declares the input shape of a ``Sequential`` model:
``Sequential([keras.Input(shape=(None, 8)), LSTM(32)])``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from torch import Tensor

from ...cells.cell import check_positive_int
from .base import Layer, _check_shape
from .symbolic import KerasTensor, Node, dtype_name, format_shape, inbound_nodes, input_dtype


class InputLayer(Layer):
    """The layer behind ``Input``: holds the declared shape and dtype, and checks data against them.

    ``shape`` excludes the batch axis; None marks a size known only from data (usually T).
    Called on data, it returns the data unchanged after checking its rank and static sizes.
    """

    supports_masking = True
    is_input_layer = True

    def __init__(self, shape: Any = None, batch_size: Optional[int] = None, dtype: Any = None, *,
                 name: Optional[str] = None, batch_shape: Optional[Sequence[Optional[int]]] = None,
                 input_shape: Any = None, **kwargs: Any) -> None:
        if shape is None:
            shape = input_shape
        if shape is None and batch_shape is not None:
            batch_shape = _check_shape(batch_shape, "batch_shape")
            shape, batch_size = batch_shape[1:], batch_shape[0]
        if shape is None:
            raise ValueError("Input needs `shape`: the input shape without the batch axis, e.g. shape=(None, 8)")
        shape = _check_shape(shape, "shape")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        self.input_dtype = input_dtype(dtype)
        float_dtype = self.input_dtype if self.input_dtype.is_floating_point and dtype is not None else None
        super().__init__(name=name or None, dtype=float_dtype, **kwargs)
        self.shape = tuple(shape)
        self.batch_size = batch_size
        self.declared_input_shape = (batch_size, *self.shape)
        self.built = True
        # The one node of an InputLayer: no inputs, one output.
        tensor = KerasTensor(self.declared_input_shape, self.input_dtype, history=(self, 0, 0), name=self.name)
        inbound_nodes(self).append(Node(self, (), {}, tensor))

    def check(self, x: Tensor, argument: str) -> None:
        """ValueError naming ``argument`` when ``x``'s rank or a static size differs from the declared shape."""
        expected = self.declared_input_shape
        if not isinstance(x, Tensor):
            raise TypeError(f"Argument `{argument}` (input {self.name!r}) must be a tensor or numpy array of shape "
                            f"{format_shape(expected)}, got {type(x).__name__}")
        if x.dim() != len(expected) or any(e is not None and e != d for e, d in zip(expected, x.shape)):
            raise ValueError(f"Argument `{argument}` (input {self.name!r}) must have shape {format_shape(expected)}, "
                             f"got shape {tuple(x.shape)}")

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        self.check(x, "inputs")
        return x

    def compute_output_shape(self, input_shape: Any = None) -> Any:
        return self.declared_input_shape

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "batch_size": self.batch_size,
                "dtype": dtype_name(self.input_dtype)}


def Input(shape: Any = None, batch_size: Optional[int] = None, dtype: Any = None, name: Optional[str] = None, *,
          batch_shape: Optional[Sequence[Optional[int]]] = None) -> KerasTensor:
    """A symbolic input tensor of shape (batch_size, *shape).

    Args:
        shape: the shape without the batch axis; None for sizes known only from data, e.g.
            ``(None,)`` for token ids (B, T), ``(None, 8)`` for (B, T, F=8).
        batch_size: a fixed B (stateful models), else None.
        dtype: "float32" (default: torch's default float), "float64", "int32", "int64", "bool", ...
        name: the input's name, also the key of a dict of inputs.
        batch_shape: the full shape, batch axis included (instead of shape/batch_size).
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape).output
