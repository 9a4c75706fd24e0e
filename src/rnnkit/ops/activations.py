"""Activations whose derivative can be read off their own output.

The engine saves only activation *outputs* y = f(a); the backward needs f'(a).
Every activation here has f'(a) expressible in y alone, so no pre-activation
has to be kept (the trick haste uses: sigma' = y (1 - y), tanh' = 1 - y^2).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor


class Activation(NamedTuple):
    name: str
    forward: Callable[[Tensor], Tensor]
    grad_from_output: Callable[[Tensor], Tensor]  # y -> f'(a) where y = f(a)


def _relu_grad(y: Tensor) -> Tensor:
    return (y > 0).to(y.dtype)


def _hard_sigmoid_grad(y: Tensor) -> Tensor:
    # Keras 3 / torch hard_sigmoid: clip(a / 6 + 1/2, 0, 1), slope 1/6 inside.
    return ((y > 0) & (y < 1)).to(y.dtype) / 6.0


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", torch.tanh, lambda y: 1 - y * y),
    "sigmoid": Activation("sigmoid", torch.sigmoid, lambda y: y * (1 - y)),
    "relu": Activation("relu", torch.relu, _relu_grad),
    "hard_sigmoid": Activation("hard_sigmoid", torch.nn.functional.hardsigmoid, _hard_sigmoid_grad),
    "linear": Activation("linear", lambda a: a, torch.ones_like),
}


def get_activation(name: str | None, argument: str = "activation") -> Activation:
    """Look up an activation by name; ``None`` means linear (as in Keras)."""
    key = "linear" if name is None else name
    if not isinstance(key, str) or key not in ACTIVATIONS:
        raise ValueError(
            f"Received an invalid value for argument `{argument}`: expected one of "
            f"{sorted(ACTIVATIONS)}, got {name!r}"
        )
    return ACTIVATIONS[key]
