"""Keras's core layers: ``Dense``, ``Activation``, ``Dropout``, ``Flatten``, ``RepeatVector``."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...cells.cell import check_positive_int
from .activations import ActivationLike, activation_name, get_activation
from .base import Layer, Shape, check_flag, check_rate
from .initializers import check_initializer, initialize


def _floating(layer: Layer, x: Tensor, dtype: torch.dtype) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"Layer {layer.name!r} expects a tensor or numpy array, got {type(x).__name__}")
    # Keras casts inputs to the layer's dtype, integers included.
    return x if x.dtype == dtype else x.to(dtype)


class Dense(Layer):
    """y = activation(x @ kernel + bias) on the last axis, so per time step on (B, T, F).

    Weights in Keras layout: kernel (F, U), bias (U,). Shapes: (..., F) -> (..., U).
    """

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation: ActivationLike = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        *,
        input_dim: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        if input_dim is not None:  # Keras 2's Dense(units, input_dim=F)
            kwargs.setdefault("input_shape", (check_positive_int(input_dim, "input_dim"),))
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.activation = activation
        self._act = get_activation(activation)
        self.use_bias = check_flag(use_bias, "use_bias")
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer")
        self.kernel: Optional[nn.Parameter] = None
        self.bias: Optional[nn.Parameter] = None
        self._build_declared()

    def build(self, input_shape: Shape) -> None:
        if len(input_shape) < 2:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, ..., F) (rank >= 2), got shape {tuple(input_shape)}")
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"Layer {self.name!r} needs a known feature size F (last axis), got shape {tuple(input_shape)}")
        self.kernel = nn.Parameter(torch.empty(features, self.units, dtype=self.weight_dtype))
        self.bias = nn.Parameter(torch.empty(self.units, dtype=self.weight_dtype)) if self.use_bias else None
        self.built = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        initialize(self.kernel.data, self.kernel_initializer)
        if self.bias is not None:
            initialize(self.bias.data, self.bias_initializer)

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        k = state_dict.get(prefix + "kernel")
        return (None, int(k.shape[0])) if k is not None else None

    def set_weights(self, weights: Sequence[Any]) -> None:
        """[kernel (F, U), bias (U,)], as Keras's ``get_weights``; builds the layer from the kernel if needed."""
        weights = list(weights)
        if weights and getattr(weights[0], "ndim", 0) == 2:
            self.maybe_build((None, int(weights[0].shape[0])))
        super().set_weights(weights)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        x = _floating(self, x, self.kernel.dtype)
        if x.dim() < 2 or x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"Layer {self.name!r} was built for inputs of shape (B, ..., {self.kernel.shape[0]}), got shape {tuple(x.shape)}"
            )
        y = x @ self.kernel  # (..., U)
        if self.bias is not None:
            y = y + self.bias
        return self._act(y)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(units=self.units, activation=activation_name(self.activation), use_bias=self.use_bias,
                      kernel_initializer=self.kernel_initializer, bias_initializer=self.bias_initializer)
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}, activation={self.activation!r}"


class Activation(Layer):
    """Applies a Keras activation by name ("relu", "softmax", ...); shape unchanged."""

    supports_masking = True

    def __init__(self, activation: ActivationLike, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activation
        self._act = get_activation(activation)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        return self._act(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": activation_name(self.activation)}


class Dropout(Layer):
    """Inverted dropout with probability ``rate``, in training only; shape unchanged.

    ``noise_shape`` (Keras): a shape broadcast against the input, e.g. (B, 1, F) to drop
    the same features at every time step; None entries take the input's size.
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape: Optional[Sequence[Optional[int]]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = check_rate(rate, "rate")
        if noise_shape is not None and not isinstance(noise_shape, (tuple, list)):
            raise TypeError(f"Argument `noise_shape` must be a tuple or None, got {noise_shape!r}")
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        training = self.training if training is None else bool(training)
        if not training or self.rate == 0:
            return x
        if self.noise_shape is None:
            return F.dropout(x, self.rate, training=True)
        if len(self.noise_shape) != x.dim():
            raise ValueError(f"Layer {self.name!r}: `noise_shape` {self.noise_shape} must have rank {x.dim()} like the input")
        shape = [x.shape[i] if n is None else n for i, n in enumerate(self.noise_shape)]
        keep = (torch.rand(shape, dtype=x.dtype, device=x.device) >= self.rate).to(x.dtype)
        return x * keep / (1.0 - self.rate)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(rate=self.rate, noise_shape=list(self.noise_shape) if self.noise_shape is not None else None)
        return config


class Flatten(Layer):
    """(B, d1, d2, ...) -> (B, d1 * d2 * ...); (B,) -> (B, 1). No mask passes through (Keras).

    ``data_format="channels_first"`` flattens (B, C, d1, ...) in channels-last order, as Keras does.
    """

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(
                "Received an invalid value for argument `data_format`: expected 'channels_last', 'channels_first' "
                f"or None, got {data_format!r}"
            )
        self.data_format = data_format or "channels_last"

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 1:
            raise ValueError(f"Layer {self.name!r} expects inputs with a batch axis, got {x!r}")
        if self.data_format == "channels_first" and x.dim() > 2:
            x = x.movedim(1, -1)
        return x.reshape(x.shape[0], -1) if x.shape[0] else x.reshape(0, math.prod(x.shape[1:]))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rest = tuple(input_shape)[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))  # type: ignore[arg-type]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}


class RepeatVector(Layer):
    """(B, F) -> (B, n, F): feeds one vector to every step of a decoder."""

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = check_positive_int(n, "n")

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        if x.dim() != 2:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, F) (rank 2), got shape {tuple(x.shape)}")
        return x.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, F) (rank 2), got shape {tuple(input_shape)}")
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}


__all__ = ["Activation", "Dense", "Dropout", "Flatten", "RepeatVector"]
