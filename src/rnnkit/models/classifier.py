"""Many-to-one: a whole sequence -> one class (sentiment of a sentence, class of a time series)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.layers import Bidirectional, Dense, Dropout, Embedding, GlobalAveragePooling1D, GlobalMaxPooling1D
from ..keras.models import Model
from ._checks import built_dropout, check_cell, check_positive, check_rate, check_vocab_size, recurrent

__all__ = ["SequenceClassifier"]

#: How the last recurrent layer's outputs become one vector per sequence.
POOLINGS = ("last", "max", "mean")


class SequenceClassifier(Model):
    """Reads a sequence and returns class logits from the state after its last real step.

    Two kinds of input, chosen at construction:

    - ``vocab_size=V``: token ids (B, T), id 0 is padding (masked, so any padding side
      works), through ``Embedding(V, D, mask_zero=True)``;
    - ``input_size=F``: features (B, T, F), e.g. a univariate series with F = 1.

    Shapes: (B, T) or (B, T, F) -> ``num_layers`` recurrent layers (``bidirectional``
    doubles their width to 2H) -> h (B, H or 2H) -> Dropout -> Dense -> logits (B, C).
    ``pooling`` says how the last layer's outputs become h: "last" (the state after the
    last real step), or "max" / "mean" over the real steps of the output sequence (B, T, H).
    ``word_dropout`` (token inputs only) zeroes whole word vectors in training, the same
    words in every feature, so the model cannot lean on a few words.

    Train with compile/fit and ``SparseCategoricalCrossentropy(from_logits=True)``::

        model = SequenceClassifier(2, vocab_size=10_000)
        model.compile("adam", loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(x_ids, labels, epochs=3)
    """

    def __init__(self, num_classes: int, *, vocab_size: Optional[int] = None, input_size: Optional[int] = None,
                 embedding_dim: int = 64, units: int = 64, cell: str = "lstm", bidirectional: bool = True,
                 num_layers: int = 1, dropout: float = 0.3, pooling: str = "last", word_dropout: float = 0.0,
                 name: Optional[str] = None) -> None:
        super().__init__(name=name)
        if (vocab_size is None) == (input_size is None):
            raise ValueError("Pass exactly one of `vocab_size` (token-id inputs (B, T)) and `input_size` "
                             f"(feature inputs (B, T, F)); got vocab_size={vocab_size!r}, input_size={input_size!r}")
        self.num_classes = check_vocab_size(num_classes, "num_classes", minimum=2)
        self.vocab_size = check_vocab_size(vocab_size, "vocab_size") if vocab_size is not None else None
        self.input_size = check_positive(input_size, "input_size") if input_size is not None else None
        self.embedding_dim = check_positive(embedding_dim, "embedding_dim")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell)
        self.bidirectional = bool(bidirectional)
        self.num_layers = check_positive(num_layers, "num_layers")
        self.dropout_rate = check_rate(dropout, "dropout")
        if pooling not in POOLINGS:
            raise ValueError(f"Received an invalid value for argument `pooling`: expected one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.word_dropout_rate = check_rate(word_dropout, "word_dropout")
        if self.word_dropout_rate and self.vocab_size is None:
            raise ValueError("Argument `word_dropout` applies to token-id inputs (`vocab_size`); got feature inputs "
                             f"(`input_size`={input_size!r}) and word_dropout={word_dropout!r}")

        self.embedding = Embedding(self.vocab_size, self.embedding_dim, mask_zero=True) if self.vocab_size else None
        width = self.embedding_dim if self.vocab_size else self.input_size
        rnns = []
        for i in range(self.num_layers):
            # Declaring input_shape builds every weight now, so load_state_dict works before any data is seen.
            sequences = i < self.num_layers - 1 or self.pooling != "last"
            layer = recurrent(self.cell, self.units, return_sequences=sequences, input_shape=(None, width))
            rnns.append(Bidirectional(layer) if self.bidirectional else layer)
            width = self.units * (2 if self.bidirectional else 1)
        self.rnns = nn.ModuleList(rnns)
        self.word_drop = Dropout(self.word_dropout_rate, noise_shape=(None, None, 1))  # one draw per word
        self.word_drop.maybe_build((None, None, self.embedding_dim))
        self.pool = (GlobalMaxPooling1D() if self.pooling == "max" else GlobalAveragePooling1D() if self.pooling == "mean"
                     else None)
        self.drop = built_dropout(self.dropout_rate)
        self.head = Dense(self.num_classes, input_dim=width)
        self.built = True  # every weight exists already: nothing to build from data

    def call(self, inputs: Tensor, training: Optional[bool] = None) -> Tensor:
        """(B, T) ids or (B, T, F) features -> logits (B, C)."""
        mask = None
        if self.embedding is not None:
            if inputs.is_floating_point() or inputs.dim() != 2:
                raise ValueError(f"{type(self).__name__} {self.name!r} takes token ids of shape (B, T); got "
                                 f"shape {tuple(inputs.shape)} and dtype {inputs.dtype}")
            mask = inputs != 0  # (B, T): id 0 is padding
            h = self.word_drop(self.embedding(inputs), training=training)  # (B, T, D)
        else:
            if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
                raise ValueError(f"{type(self).__name__} {self.name!r} takes features of shape (B, T, {self.input_size}); "
                                 f"got shape {tuple(inputs.shape)}")
            h = inputs
        for layer in self.rnns:
            h = layer(h, mask=mask, training=training)  # (B, T, H') then (B, H') unless pooled
        if self.pool is not None:
            h = self.pool(h, mask=mask)  # (B, T, H') -> (B, H') over the real steps
        return self.head(self.drop(h, training=training))  # (B, C)

    def predict_proba(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, C), in eval mode without gradients."""
        logits = torch.as_tensor(self.predict(x, batch_size=batch_size, verbose=0))
        return torch.softmax(logits, dim=-1).numpy()

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "vocab_size": self.vocab_size, "input_size": self.input_size,
                "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell,
                "bidirectional": self.bidirectional, "num_layers": self.num_layers, "dropout": self.dropout_rate,
                "pooling": self.pooling, "word_dropout": self.word_dropout_rate, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SequenceClassifier":
        return cls(**config)
