"""Weight initialisers by name, with the Keras names and PyTorch's default.

Every weight is stored in torch layout, (out, in); Keras stores the transpose,
so "fan in" and "fan out" are taken from the torch shape the same way
``torch.nn.init`` does, which gives the same limits as Keras.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

INITIALIZERS = ("glorot_uniform", "glorot_normal", "orthogonal", "identity", "zeros", "ones", "torch_default", "irnn_input")


def _identity(t: Tensor, hidden_size: int) -> None:
    # Each gate block of a recurrent matrix (G, H) gets its own identity (Le et al. 2015 use
    # it on the plain RNN, where there is one block).
    with torch.no_grad():
        t.zero_()
        for start in range(0, t.shape[0], hidden_size):
            t[start : start + hidden_size].copy_(torch.eye(hidden_size, t.shape[1], dtype=t.dtype))


def initialize(t: Tensor, name: str, hidden_size: int, argument: str = "initializer") -> None:
    """Fill ``t`` in place with the named scheme.

    torch_default: U(-1/sqrt(H), 1/sqrt(H)), what torch.nn.RNN/LSTM/GRU do for every weight.
    irnn_input: N(0, 0.001^2), the input weights of Le, Jaitly & Hinton (2015).
    """
    schemes: dict[str, Callable[[], object]] = {
        "glorot_uniform": lambda: torch.nn.init.xavier_uniform_(t),
        "glorot_normal": lambda: torch.nn.init.xavier_normal_(t),
        "orthogonal": lambda: torch.nn.init.orthogonal_(t),
        "identity": lambda: _identity(t, hidden_size),
        "zeros": lambda: torch.nn.init.zeros_(t),
        "ones": lambda: torch.nn.init.ones_(t),
        "torch_default": lambda: torch.nn.init.uniform_(t, -1 / math.sqrt(hidden_size), 1 / math.sqrt(hidden_size)),
        "irnn_input": lambda: torch.nn.init.normal_(t, 0.0, 0.001),
    }
    if name not in schemes:
        raise ValueError(f"Received an invalid value for argument `{argument}`: expected one of {INITIALIZERS}, got {name!r}")
    schemes[name]()
