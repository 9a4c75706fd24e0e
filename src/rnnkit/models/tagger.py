"""Many-to-many, same length: one tag per input token (segmentation, truecasing, part of speech)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.layers import Bidirectional, Dense, Embedding
from ..keras.models import Model
from ._checks import built_dropout, check_cell, check_positive, check_rate, check_vocab_size, recurrent

__all__ = ["SequenceTagger"]


class SequenceTagger(Model):
    """Token ids (B, T) -> tag logits (B, T, K), one per step.

    ids -> Embedding(V, D, mask_zero=True) -> ``num_layers`` recurrent layers that
    return sequences (``bidirectional``: each step sees both sides, width 2H)
    -> Dropout -> Dense(K) per step -> logits (B, T, K).

    Id 0 is padding. The model hands fit/evaluate the mask ``ids != 0``, so padded
    steps count in neither the loss nor the metrics: pad the tags with any valid tag.
    Train with compile/fit and ``SparseCategoricalCrossentropy(from_logits=True)``.
    """

    def __init__(self, vocab_size: int, num_tags: int, *, embedding_dim: int = 32, units: int = 64,
                 cell: str = "lstm", bidirectional: bool = True, num_layers: int = 1, dropout: float = 0.2,
                 name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.vocab_size = check_vocab_size(vocab_size, "vocab_size")
        self.num_tags = check_vocab_size(num_tags, "num_tags")
        self.embedding_dim = check_positive(embedding_dim, "embedding_dim")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell)
        self.bidirectional = bool(bidirectional)
        self.num_layers = check_positive(num_layers, "num_layers")
        self.dropout_rate = check_rate(dropout, "dropout")
        self.embedding = Embedding(self.vocab_size, self.embedding_dim, mask_zero=True)
        width, rnns = self.embedding_dim, []
        for _ in range(self.num_layers):
            layer = recurrent(self.cell, self.units, return_sequences=True, input_shape=(None, width))
            rnns.append(Bidirectional(layer) if self.bidirectional else layer)
            width = self.units * (2 if self.bidirectional else 1)
        self.rnns = nn.ModuleList(rnns)
        self.drop = built_dropout(self.dropout_rate)
        self.head = Dense(self.num_tags, input_dim=width)
        self.built = True  # every weight exists already: nothing to build from data

    def _forward_masked(self, inputs: Tensor, training: Optional[bool]) -> tuple[Tensor, Tensor]:
        if inputs.is_floating_point() or inputs.dim() != 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes token ids of shape (B, T); got shape "
                             f"{tuple(inputs.shape)} and dtype {inputs.dtype}")
        mask = inputs != 0  # (B, T)
        h = self.embedding(inputs)  # (B, T, D)
        for layer in self.rnns:
            h = layer(h, mask=mask, training=training)  # (B, T, H')
        return self.head(self.drop(h, training=training)), mask  # (B, T, K)

    def call(self, inputs: Tensor, training: Optional[bool] = None) -> Tensor:
        """ids (B, T) -> tag logits (B, T, K)."""
        return self._forward_masked(inputs, training)[0]

    def _call_with_mask(self, inputs: Any) -> tuple[Tensor, Optional[Tensor]]:
        # fit/evaluate weight the loss and metrics with this mask (rnnkit.training's hook).
        return self._forward_masked(inputs, None)

    def predict_tags(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Most likely tag per step, (N, T) int64; padded steps get -1."""
        ids = torch.as_tensor(np.asarray(x))
        tags = torch.as_tensor(self.predict(ids, batch_size=batch_size, verbose=0)).argmax(-1)
        return tags.masked_fill(ids == 0, -1).numpy()

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "num_tags": self.num_tags, "embedding_dim": self.embedding_dim,
                "units": self.units, "cell": self.cell, "bidirectional": self.bidirectional,
                "num_layers": self.num_layers, "dropout": self.dropout_rate, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SequenceTagger":
        return cls(**config)
