"""Keras initialisers for the non-recurrent layers, on Keras-layout weights.

``Dense.kernel`` is (F, U) and ``Embedding.embeddings`` is (V, D), as in Keras, so
fan_in = shape[0] and fan_out = shape[1]. Larger kernels follow Keras's convolution
rule: a ``Conv1D`` kernel (K, F, U) has fan_in = K F and fan_out = K U. A layer
whose kernel is a matrix in disguise (``MultiHeadAttention``'s (F, N, D)) passes its
``fans`` explicitly, as Keras's EinsumDense does. The recurrent layers use the cell's
own initialisers (``rnnkit.cells.initialize``), which work on torch layout.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
    "uniform", "random_uniform", "normal", "random_normal", "truncated_normal", "orthogonal", "zeros", "ones",
)


def _fans(t: Tensor) -> tuple[int, int]:
    if t.dim() < 2:
        return t.numel(), t.numel()
    # Keras: (..., fan_in_channels, fan_out_channels), the leading axes a receptive field.
    field = math.prod(t.shape[:-2])
    return t.shape[-2] * field, t.shape[-1] * field


def check_initializer(name: object, argument: str) -> str:
    if name not in INITIALIZERS:
        raise ValueError(f"Received an invalid value for argument `{argument}`: expected one of {INITIALIZERS}, got {name!r}")
    return name  # type: ignore[return-value]


@torch.no_grad()
def initialize(t: Tensor, name: str, fans: Optional[tuple[int, int]] = None) -> None:
    """Fill ``t`` in place with Keras's scheme ``name`` (Keras's default arguments).

    ``fans`` = (fan_in, fan_out) overrides the ones read from the shape.
    """
    fan_in, fan_out = fans if fans is not None else _fans(t)
    if name in ("glorot_uniform", "he_uniform", "lecun_uniform"):
        scale = {"glorot_uniform": 6 / (fan_in + fan_out), "he_uniform": 6 / fan_in, "lecun_uniform": 3 / fan_in}[name]
        t.uniform_(-math.sqrt(scale), math.sqrt(scale))
    elif name in ("glorot_normal", "he_normal", "lecun_normal"):
        var = {"glorot_normal": 2 / (fan_in + fan_out), "he_normal": 2 / fan_in, "lecun_normal": 1 / fan_in}[name]
        # Keras draws these from a normal truncated at 2 std; 0.8796... undoes the truncation's shrinkage.
        std = math.sqrt(var) / 0.87962566103423978
        torch.nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std)
    elif name in ("uniform", "random_uniform"):
        t.uniform_(-0.05, 0.05)
    elif name in ("normal", "random_normal"):
        t.normal_(0.0, 0.05)
    elif name == "truncated_normal":
        torch.nn.init.trunc_normal_(t, 0.0, 0.05, -0.1, 0.1)
    elif name == "orthogonal":
        # Keras orthogonalises (prod(shape[:-1]), shape[-1]); torch would take shape[0] as the rows.
        torch.nn.init.orthogonal_(t.view(-1, t.shape[-1]) if t.dim() > 2 else t)
    elif name == "zeros":
        t.zero_()
    elif name == "ones":
        t.fill_(1.0)
    else:
        check_initializer(name, "initializer")
