r"""One-to-many: one input vector (image features, a class) -> a token sequence (its caption).

The vector sets the decoder's initial state (Show and Tell, Vinyals et al. 2015):
:math:`h_0 = \tanh(W x + b)` (and :math:`c_0` likewise for LSTM). Training feeds the
true previous tokens (teacher forcing, compile/fit with two inputs); ``generate``
feeds back the model's own predictions.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.layers import Dense, Embedding
from ..keras.models import Model
from ._checks import (as_floats, built_dropout, check_cell, check_positive, check_rate,
                      check_vocab_size, n_states, recurrent)
from .sampling import check_sampling, sample_logits
from .vocab import TokenVocab

__all__ = ["ConditionalGenerator"]

PAD, BOS, EOS = TokenVocab.pad_id, TokenVocab.bos_id, TokenVocab.eos_id


class ConditionalGenerator(Model):
    """[features (B, C), previous tokens (B, T)] -> logits (B, T, V) of the next tokens.

    Tokens are ``TokenVocab`` ids: 0 padding, 1 ``<bos>``, 2 ``<eos>``. For a caption
    y_1..y_n the inputs are ``<bos> y_1 .. y_n`` and the targets ``y_1 .. y_n <eos>``;
    padded steps (input id 0) are masked out of the loss and metrics. Train with
    compile/fit on ``x=[features, tokens_in]``, ``y=tokens_out`` and
    ``SparseCategoricalCrossentropy(from_logits=True)``.
    """

    def __init__(self, condition_size: int, vocab_size: int, *, embedding_dim: int = 32, units: int = 128,
                 cell: str = "gru", dropout: float = 0.1, max_len: int = 20, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.condition_size = check_positive(condition_size, "condition_size")
        self.vocab_size = check_vocab_size(vocab_size, "vocab_size", minimum=4)
        self.embedding_dim = check_positive(embedding_dim, "embedding_dim")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell)
        self.dropout_rate = check_rate(dropout, "dropout")
        self.max_len = check_positive(max_len, "max_len")
        self.init_state = nn.ModuleList([
            Dense(self.units, activation="tanh", input_dim=self.condition_size) for _ in range(n_states(self.cell))
        ])
        self.embedding = Embedding(self.vocab_size, self.embedding_dim)
        self.rnn = recurrent(self.cell, self.units, return_sequences=True, return_state=True,
                             input_shape=(None, self.embedding_dim))
        self.drop = built_dropout(self.dropout_rate)
        self.head = Dense(self.vocab_size, input_dim=self.units)
        self.built = True  # every weight exists already: nothing to build from data

    def start_state(self, features: Any) -> list[Tensor]:
        """features (B, C) -> the decoder's initial state, [h0] or [h0, c0], each (B, H)."""
        x = as_floats(features, "features", self.condition_size, 2, self.head.kernel.dtype)
        return [dense(x) for dense in self.init_state]

    def step(self, tokens: Tensor, state: list[Tensor],
             training: Optional[bool] = None) -> tuple[Tensor, list[Tensor]]:
        """tokens (B, T) from ``state`` -> logits (B, T, V), state after step T."""
        h, *state = self.rnn(self.drop(self.embedding(tokens), training=training), initial_state=state,
                             training=training)  # (B, T, H)
        return self.head(self.drop(h, training=training)), state

    def _unpack(self, inputs: Any) -> tuple[Tensor, Tensor]:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes two inputs [features (B, C), tokens (B, T)], "
                             f"got {type(inputs).__name__}")
        features, tokens = inputs
        if tokens.is_floating_point() or tokens.dim() != 2:
            raise ValueError(f"the second input must be token ids (B, T), got shape {tuple(tokens.shape)} "
                             f"and dtype {tokens.dtype}")
        return features, tokens

    def call(self, inputs: Any, training: Optional[bool] = None) -> Tensor:
        """[features (B, C), tokens_in (B, T)] -> logits (B, T, V) (teacher forcing)."""
        features, tokens = self._unpack(inputs)
        return self.step(tokens, self.start_state(features), training)[0]

    def _call_with_mask(self, inputs: Any) -> tuple[Tensor, Optional[Tensor]]:
        # fit/evaluate weight the loss and metrics with this mask (rnnkit.training's hook):
        # a real input token (not padding) means a real target follows it.
        out = self(inputs)
        return out, self._unpack(inputs)[1] != PAD

    @torch.no_grad()
    def generate(self, features: Any, max_len: Optional[int] = None, temperature: float = 0.0,
                 top_k: Optional[int] = None, generator: Optional[torch.Generator] = None) -> np.ndarray:
        """Tokens for each feature vector (B, C) -> ids (B, L), ``<eos>`` included, then padding.

        Starts from ``<bos>`` and feeds each chosen token back in; ``temperature=0`` is greedy.
        """
        check_sampling(temperature, top_k)
        steps = self.max_len if max_len is None else check_positive(max_len, "max_len")
        was = self.training
        self.eval()
        try:
            state = self.start_state(features)
            B = state[0].shape[0]
            token = torch.full((B,), BOS, dtype=torch.long)
            done = torch.zeros(B, dtype=torch.bool)
            out = []
            for _ in range(steps):
                logits, state = self.step(token[:, None], state)
                token = sample_logits(logits[:, 0], temperature, top_k, generator).masked_fill(done, PAD)
                out.append(token)
                done |= token == EOS
                if bool(done.all()):
                    break
        finally:
            self.train(was)
        return torch.stack(out, 1).numpy()

    def get_config(self) -> dict[str, Any]:
        return {"condition_size": self.condition_size, "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell,
                "dropout": self.dropout_rate, "max_len": self.max_len, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ConditionalGenerator":
        return cls(**config)
