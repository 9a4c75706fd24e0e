"""Activations by Keras name, for ``Dense`` and ``Activation``.

The recurrent layers take their activations from ``rnnkit.ops`` instead: the
engine needs each derivative written from the activation's output.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

ActivationLike = Union[str, Callable[[Tensor], Tensor], None]


def _linear(x: Tensor) -> Tensor:
    return x


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": _linear,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "mish": F.mish,
    "exponential": torch.exp,
    "relu6": F.relu6,
    # Keras 3 defines hard_sigmoid as relu6(x + 3) / 6, the same as torch.
    "hard_sigmoid": F.hardsigmoid,
    "hard_silu": F.hardswish,
    "hard_swish": F.hardswish,
    # Keras 3's leaky_relu activation uses negative_slope=0.2.
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
}


def get_activation(activation: ActivationLike, argument: str = "activation") -> Callable[[Tensor], Tensor]:
    """A Keras activation name (None = "linear") or a callable -> the function."""
    if activation is None:
        return _linear
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Received an invalid value for argument `{argument}`: expected one of {sorted(ACTIVATIONS)} "
                f"or a callable, got {activation!r}"
            )
        return ACTIVATIONS[activation]
    if callable(activation):
        return activation
    raise TypeError(f"Argument `{argument}` must be an activation name, a callable or None, got {activation!r}")


def activation_name(activation: ActivationLike) -> Optional[str]:
    """The JSON-safe name of an activation for ``get_config``."""
    if activation is None or isinstance(activation, str):
        return activation
    name: Any = getattr(activation, "__name__", None)
    if name in ACTIVATIONS:
        return name
    raise TypeError(f"Activation {activation!r} has no Keras name, so the layer config cannot be saved; pass its name")
