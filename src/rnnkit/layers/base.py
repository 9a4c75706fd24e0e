"""The Keras-style layer protocol, on top of ``torch.nn.Module``.

A ``Layer`` builds its weights lazily on the first call, when the input's
feature size is known (so ``LSTM(128)`` needs no input size), carries a Keras
mask from layer to layer, and can describe itself for ``summary()`` and for
saving (``get_config``).

Contract used by ``Sequential``/``Model`` and by ``rnnkit.training``:
    layer(x, mask=None) -> y          forward; ``mask`` is (B, T) bool or None
    layer.compute_mask(x, mask)       the mask for the next layer (default: passes it on
                                      if ``supports_masking``, else None)
    layer.compute_output_shape(shape) shapes with None for unknown dims (batch, time)
    layer.build(input_shape)          create weights; called once by __call__
    layer.count_params()              number of scalar weights (built layers)
    layer.get_config() / cls.from_config(config)   JSON-safe constructor arguments
"""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

Shape = tuple[Optional[int], ...]

_counters: dict[str, int] = {}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def unique_name(prefix: str) -> str:
    """Keras-style default names: lstm, lstm_1, lstm_2, ..."""
    n = _counters.get(prefix, 0)
    _counters[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


class Layer(nn.Module):
    """Base class of the Keras-style layers: lazy build, masks, config, parameter count."""

    supports_masking: bool = False

    def __init__(self, name: Optional[str] = None, input_shape: Optional[Sequence[Optional[int]]] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.name = name or unique_name(_snake(type(self).__name__))
        self.built = False
        # Keras's input_shape excludes the batch axis.
        self.declared_input_shape: Optional[Shape] = (None, *input_shape) if input_shape is not None else None
        self.dtype = dtype

    def build(self, input_shape: Shape) -> None:
        """Create weights for inputs of ``input_shape`` (batch axis included, may be None)."""
        self.built = True

    def maybe_build(self, input_shape: Shape) -> None:
        if not self.built:
            self.build(tuple(input_shape))
            self.built = True

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, Tensor):
            self.maybe_build(tuple(x.shape))
        return super().__call__(x, *args, **kwargs)

    def compute_mask(self, x: Tensor, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        return mask if self.supports_masking else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layer":
        return cls(**config)
