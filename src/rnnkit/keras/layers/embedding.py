"""Layers that start a sequence model and make its mask: ``Embedding`` and ``Masking``."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...cells.cell import check_positive_int
from .base import Layer, Shape, check_flag
from .initializers import check_initializer, initialize


class Embedding(Layer):
    """Integer ids (B, T) -> vectors (B, T, D), from a table ``embeddings`` (V, D).

    Args:
        input_dim: V, the vocabulary size; ids must lie in [0, V).
        output_dim: D.
        embeddings_initializer: Keras's "uniform" draws U(-0.05, 0.05).
        mask_zero: id 0 is padding: the layer emits the mask ``x != 0`` for the next layers
            (so V must count the padding id).
        input_length: the fixed T (Keras 2); checked, and shown in output shapes.
        weights: [table (V, D)], e.g. pretrained vectors; with ``trainable=False`` they stay fixed.
        **kwargs: the base-layer arguments (``Layer``).

    The table does not depend on the input, so the layer is built at construction.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: str = "uniform",
        mask_zero: bool = False,
        input_length: Optional[int] = None,
        *,
        weights: Optional[Sequence[Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.embeddings_initializer = check_initializer(embeddings_initializer, "embeddings_initializer")
        self.mask_zero = check_flag(mask_zero, "mask_zero")
        self.input_length = check_positive_int(input_length, "input_length") if input_length is not None else None
        self.embeddings = nn.Parameter(torch.empty(self.input_dim, self.output_dim, dtype=self.weight_dtype))
        self.reset_parameters()
        self.built = True
        self.trainable = self.trainable  # applies trainable=False to the table just made
        if weights is not None:
            self.set_weights(weights)

    def reset_parameters(self) -> None:
        initialize(self.embeddings.data, self.embeddings_initializer)

    def _check_ids(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Layer {self.name!r} expects integer ids as a tensor or numpy array, got {type(x).__name__}")
        if x.is_floating_point():
            # Keras casts float ids; we do too, but only when nothing is lost.
            if not bool(torch.all(x == torch.round(x))):
                raise TypeError(f"Layer {self.name!r} expects integer ids, got non-integral values of dtype {x.dtype}")
        elif x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"Layer {self.name!r} expects integer ids, got dtype {x.dtype}")
        if x.numel() and not torch.compiler.is_compiling():  # a compiled graph has no values to read here
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= self.input_dim:
                raise ValueError(
                    f"Layer {self.name!r} has input_dim={self.input_dim}, so ids must lie in [0, {self.input_dim - 1}]; "
                    f"got ids from {lo} to {hi}"
                )
        if self.input_length is not None and (x.dim() < 2 or x.shape[1] != self.input_length):
            raise ValueError(
                f"Layer {self.name!r} has input_length={self.input_length}: expected inputs (B, {self.input_length}), "
                f"got shape {tuple(x.shape)}"
            )
        return x.long()

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        return F.embedding(self._check_ids(x), self.embeddings)  # (B, T, D)

    def compute_mask(self, x: Tensor, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        if not self.mask_zero:
            return None
        return torch.as_tensor(x) != 0

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = list(input_shape)
        if self.input_length is not None and len(shape) >= 2 and shape[1] is None:
            shape[1] = self.input_length
        return (*shape, self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                      embeddings_initializer=self.embeddings_initializer, mask_zero=self.mask_zero,
                      input_length=self.input_length)
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_dim={self.input_dim}, output_dim={self.output_dim}, mask_zero={self.mask_zero}"


class Masking(Layer):
    """Masks time steps whose features all equal ``mask_value``: (B, T, F) -> same, mask (B, T).

    Masked steps are also zeroed in the output, as in Keras.
    """

    supports_masking = True

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise TypeError(f"Argument `mask_value` must be a number, got {mask_value!r}")
        self.mask_value = float(mask_value)

    def _keep(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"Layer {self.name!r} expects inputs of shape (B, T, F) (rank 3), got shape {tuple(x.shape)}")
        return (x != self.mask_value).any(dim=-1)  # (B, T)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        return x * self._keep(x).unsqueeze(-1).to(x.dtype)

    def compute_mask(self, x: Tensor, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        keep = self._keep(torch.as_tensor(x))
        return keep if mask is None else keep & torch.as_tensor(mask, device=keep.device).bool()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_value": self.mask_value}
