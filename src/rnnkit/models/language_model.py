"""Many-to-many, same length: a character-level next-token language model, and sampling from it."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.layers import Dense, Embedding
from ..keras.models import Model
from ._checks import (CELLS, SCAN_CELLS, as_ids, built_dropout, check_cell, check_positive,
                      check_rate, check_vocab_size, recurrent)
from .sampling import check_sampling, sample_logits

__all__ = ["CharLanguageModel", "text_streams"]

State = list[list[Tensor]]  # per layer: [h] or [h, c], each (B, H)


def text_streams(ids: Union[Sequence[int], np.ndarray], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A text's ids (N,) cut into ``batch_size`` consecutive streams: x (B, L), y (B, L), y = x shifted by one.

    Stream b is ids[b*L : (b+1)*L] with L = (N - 1) // B (the last few ids are left out). Pass them
    to ``fit(x, y, batch_size=B, tbptt=k)``: the whole text is then one batch of B rows, cut into
    windows of k steps with the state carried from window to window, so every character after
    the first of its stream is predicted from all the text before it.
    """
    ids = np.asarray(ids)
    check_positive(batch_size, "batch_size")
    if ids.ndim != 1:
        raise ValueError(f"`ids` must have shape (N,), got shape {ids.shape}")
    L = (len(ids) - 1) // batch_size
    if L < 1:
        raise ValueError(f"`ids` holds {len(ids)} ids, too few for {batch_size} streams of at least 1 step")
    return ids[: batch_size * L].reshape(batch_size, L), ids[1 : batch_size * L + 1].reshape(batch_size, L)


class CharLanguageModel(Model):
    r"""ids (B, T) -> logits (B, T, V) for the next id at every step: :math:`p(x_{t+1} \mid x_{\le t})`.

    ids -> Embedding(V, D) -> ``num_layers`` recurrent layers (B, T, H), Dropout after each
    -> Dense(V). ``cell``: "lstm", "gru", "rnn", or "mingru"/"minlstm" (trained with a parallel
    scan). ``layer_norm`` and ``zoneout`` are the LSTM's (Ba et al. 2016; Krueger et al. 2017;
    ``zoneout`` also for the GRU and simple RNN).
    Every id is a real token (there is no padding id). Train with compile/fit on
    windows ``x = text[i : i+T]``, ``y = text[i+1 : i+T+1]`` and
    ``SparseCategoricalCrossentropy(from_logits=True)``; the loss in nats per
    character divided by ln 2 is bits per character.

    ``generate`` primes the state with a prompt, then samples one token at a time,
    feeding each back in (temperature and top-k: ``rnnkit.models.sampling``).
    """

    def __init__(self, vocab_size: int, *, embedding_dim: int = 32, units: int = 256, cell: str = "lstm",
                 num_layers: int = 1, dropout: float = 0.1, layer_norm: bool = False, zoneout: float = 0.0,
                 name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.vocab_size = check_vocab_size(vocab_size, "vocab_size")
        self.embedding_dim = check_positive(embedding_dim, "embedding_dim")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell, CELLS + SCAN_CELLS)
        self.num_layers = check_positive(num_layers, "num_layers")
        self.dropout_rate = check_rate(dropout, "dropout")
        self.layer_norm = bool(layer_norm)
        if self.layer_norm and self.cell != "lstm":
            raise ValueError(f"Argument `layer_norm` applies to cell='lstm'; got cell={self.cell!r}")
        self.zoneout = check_rate(zoneout, "zoneout")
        if self.zoneout and self.cell in SCAN_CELLS:
            raise ValueError(f"Argument `zoneout` applies to cell='lstm', 'gru' or 'rnn'; got cell={self.cell!r}")
        options: dict = {"layer_norm": True} if self.layer_norm else {}
        if self.zoneout:
            options["zoneout"] = self.zoneout
        self.embedding = Embedding(self.vocab_size, self.embedding_dim)
        self.rnns = nn.ModuleList([
            recurrent(self.cell, self.units, return_sequences=True, return_state=True,
                      input_shape=(None, self.embedding_dim if i == 0 else self.units), **options)
            for i in range(self.num_layers)
        ])
        self.drop = built_dropout(self.dropout_rate)
        self.head = Dense(self.vocab_size, input_dim=self.units)
        self.built = True  # every weight exists already: nothing to build from data

    def step(self, ids: Tensor, state: Optional[State] = None,
             training: Optional[bool] = None) -> tuple[Tensor, State]:
        """ids (B, T) and the state after earlier steps (None: zeros) -> logits (B, T, V), new state."""
        h = self.embedding(ids)  # (B, T, D)
        new_state: State = []
        for i, layer in enumerate(self.rnns):
            h, *s = layer(h, initial_state=None if state is None else state[i], training=training)  # (B, T, H)
            h = self.drop(h, training=training)
            new_state.append(s)
        return self.head(h), new_state  # (B, T, V)

    def call(self, inputs: Tensor, training: Optional[bool] = None) -> Tensor:
        """ids (B, T) -> next-token logits (B, T, V)."""
        if inputs.is_floating_point() or inputs.dim() != 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes token ids of shape (B, T); got shape "
                             f"{tuple(inputs.shape)} and dtype {inputs.dtype}")
        return self.step(inputs, None, training)[0]

    @torch.no_grad()
    def stream_loss(self, ids: Union[Sequence[int], np.ndarray, Tensor], chunk: int = 1000) -> float:
        """Mean cross-entropy (nats) of predicting ids[1:] from everything before, the state carried
        through the whole text (read ``chunk`` steps at a time); ids (N,), N >= 2."""
        check_positive(chunk, "chunk")
        t = torch.as_tensor(np.asarray(ids) if not isinstance(ids, Tensor) else ids)
        if t.dim() != 1 or t.shape[0] < 2:
            raise ValueError(f"`ids` must have shape (N,) with N >= 2, got shape {tuple(t.shape)}")
        t = as_ids(t[None], "ids", self.vocab_size)
        x, y = t[:, :-1], t[0, 1:]
        was_training = self.training
        self.eval()
        try:
            state, total = None, 0.0
            for s in range(0, x.shape[1], chunk):
                logits, state = self.step(x[:, s : s + chunk], state)
                logits = logits[0].to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> float
                total += float(nn.functional.cross_entropy(logits, y[s : s + chunk], reduction="sum"))
        finally:
            self.train(was_training)
        return total / y.shape[0]

    @torch.no_grad()
    def generate(self, prompt: Union[Sequence[int], np.ndarray, Tensor], length: int, temperature: float = 1.0,
                 top_k: Optional[int] = None, generator: Optional[torch.Generator] = None) -> np.ndarray:
        """Continue ``prompt`` by ``length`` sampled ids.

        Args:
            prompt: ids (P,) or (B, P), P >= 1 (start from any id, e.g. a newline, for no prompt).
            temperature: 0 is greedy; see ``rnnkit.models.sampling.sample_logits``.
            top_k: sample among the k most likely ids only; 1 is greedy.
            generator: a ``torch.Generator`` for reproducible samples.

        Returns:
            the new ids only, (length,) or (B, length) int64, matching the prompt's rank.
        """
        check_sampling(temperature, top_k)
        check_positive(length, "length")
        ids = torch.as_tensor(np.asarray(prompt) if not isinstance(prompt, Tensor) else prompt)
        single = ids.dim() == 1
        ids = as_ids(ids.unsqueeze(0) if single else ids, "prompt", self.vocab_size)
        if ids.shape[1] == 0:
            raise ValueError("`prompt` must hold at least one id")
        was_training = self.training
        self.eval()
        try:
            logits, state = self.step(ids, None)
            out = []
            for _ in range(length):
                nxt = sample_logits(logits[:, -1], temperature, top_k, generator)  # (B,)
                out.append(nxt)
                logits, state = self.step(nxt[:, None], state)
        finally:
            self.train(was_training)
        result = torch.stack(out, 1).numpy()  # (B, length)
        return result[0] if single else result

    def get_config(self) -> dict[str, Any]:
        return {"vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim, "units": self.units,
                "cell": self.cell, "num_layers": self.num_layers, "dropout": self.dropout_rate, "layer_norm": self.layer_norm,
                "zoneout": self.zoneout, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CharLanguageModel":
        return cls(**config)
