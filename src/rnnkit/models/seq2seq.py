r"""Many-to-many, different lengths: an encoder–decoder with attention.

The encoder reads the source (B, S) with a bidirectional recurrent layer; its final
states, through a Dense bridge, start the decoder. At each target step t the decoder
state :math:`h_t` attends over the encoder outputs (``rnnkit.models.attention``) and

.. math::
    \tilde h_t = \tanh(W_c [h_t; c_t]), \qquad p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W_o \tilde h_t)

(Luong et al. 2015, without input feeding: the decoder's input is only the previous
token, so with full teacher forcing all steps run in one call of the recurrent layer.)

Decoding: ``greedy`` or ``beam_search``; both feed back their own tokens. Targets
use ``TokenVocab`` ids: 0 padding, 1 ``<bos>``, 2 ``<eos>``. Training with a
teacher-forcing schedule: ``rnnkit.models.teacher_forcing.fit_seq2seq``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.layers import Bidirectional, Dense, Embedding
from ._checks import (as_ids, built_dropout, check_cell, check_positive, check_rate,
                      check_vocab_size, n_states, recurrent)
from .attention import Attention
from .vocab import TokenVocab

__all__ = ["Seq2Seq", "Memory"]

PAD, BOS, EOS = TokenVocab.pad_id, TokenVocab.bos_id, TokenVocab.eos_id


class Memory(NamedTuple):
    """What the decoder reads from the encoder."""

    keys: Tensor  #: (B, S, 2H) encoder outputs
    mask: Tensor  #: (B, S) bool, True on real source tokens

    def repeat(self, k: int) -> "Memory":
        """Each sample k times in a row: (B, ...) -> (B * k, ...), for beam search."""
        return Memory(self.keys.repeat_interleave(k, 0), self.mask.repeat_interleave(k, 0))


class Seq2Seq(nn.Module):
    """src ids (B, S) and teacher inputs (B, T) -> logits (B, T, V_tgt).

    Args:
        src_vocab_size, tgt_vocab_size: ids per side, padding (0) included; the target side
            also holds ``<bos>`` (1) and ``<eos>`` (2).
        embedding_dim: D, both sides. units: H, per encoder direction and in the decoder.
        cell: "lstm", "gru" or "rnn". attention: "luong" or "bahdanau".
        max_len: the longest output ``greedy``/``beam_search`` produce by default (``<eos>`` included).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, *, embedding_dim: int = 64, units: int = 128,
                 cell: str = "lstm", attention: str = "luong", dropout: float = 0.1, max_len: int = 40) -> None:
        super().__init__()
        self.src_vocab_size = check_vocab_size(src_vocab_size, "src_vocab_size")
        self.tgt_vocab_size = check_vocab_size(tgt_vocab_size, "tgt_vocab_size", minimum=4)
        self.embedding_dim = check_positive(embedding_dim, "embedding_dim")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell)
        self.dropout_rate = check_rate(dropout, "dropout")
        self.max_len = check_positive(max_len, "max_len")
        D, H = self.embedding_dim, self.units
        self.src_embedding = Embedding(self.src_vocab_size, D, mask_zero=True)
        self.encoder = Bidirectional(recurrent(cell, H, return_sequences=True, return_state=True, input_shape=(None, D)))
        # One bridge per state tensor (h, and c for LSTM): [forward; backward] final state -> decoder start.
        self.bridge = nn.ModuleList([Dense(H, activation="tanh", input_dim=2 * H) for _ in range(n_states(cell))])
        self.tgt_embedding = Embedding(self.tgt_vocab_size, D)
        self.decoder = recurrent(cell, H, return_sequences=True, return_state=True, input_shape=(None, D))
        self.attention = Attention(attention, H, 2 * H)
        self.combine = Dense(H, activation="tanh", input_dim=3 * H)
        self.drop = built_dropout(self.dropout_rate)
        self.out = Dense(self.tgt_vocab_size, input_dim=H)

    # ------------------------------------------------------------------ pieces

    def encode(self, src: Any) -> tuple[Memory, list[Tensor]]:
        """src ids (B, S), right-padded with 0 -> memory, decoder start state ([h] or [h, c], each (B, H))."""
        src = as_ids(src, "src", self.src_vocab_size).to(self.out.kernel.device)
        mask = src != PAD  # (B, S)
        if src.shape[1] == 0 or bool((~mask).all(1).any()):
            raise ValueError("every row of `src` needs at least one token besides padding (id 0)")
        keys, *states = self.encoder(self.drop(self.src_embedding(src)), mask=mask)  # (B, S, 2H), 2n x (B, H)
        n = len(self.bridge)
        start = [bridge(torch.cat([f, b], -1)) for bridge, f, b in zip(self.bridge, states[:n], states[n:])]
        return Memory(keys, mask), start

    def decode(self, tokens: Tensor, memory: Memory, state: list[Tensor]) -> tuple[Tensor, list[Tensor], Tensor]:
        """Previous tokens (B, T) -> logits (B, T, V), state after step T, attention weights (B, T, S)."""
        h, *state = self.decoder(self.drop(self.tgt_embedding(tokens)), initial_state=state)  # (B, T, H)
        context, weights = self.attention(h, memory.keys, memory.mask)  # (B, T, 2H), (B, T, S)
        h_tilde = self.combine(torch.cat([h, context], -1))  # (B, T, H)
        return self.out(self.drop(h_tilde)), state, weights

    # ----------------------------------------------------------------- training

    def forward(self, src: Any, tgt_in: Any, teacher_forcing: float = 1.0,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """Logits (B, T, V) for the targets that follow ``tgt_in`` (B, T) (``<bos>`` y_1 ... y_{T-1}).

        With ``teacher_forcing`` < 1 (scheduled sampling, Bengio et al. 2015) each step's
        input is, per sample, the true previous token with that probability, else the
        model's own argmax from the step before; this runs step by step.
        """
        if isinstance(teacher_forcing, bool) or not isinstance(teacher_forcing, (int, float)) \
                or not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"`teacher_forcing` must be a float in [0, 1], got {teacher_forcing!r}")
        memory, state = self.encode(src)
        tgt_in = as_ids(tgt_in, "tgt_in", self.tgt_vocab_size).to(memory.keys.device)
        if tgt_in.shape[0] != memory.keys.shape[0]:
            raise ValueError(f"`src` has {memory.keys.shape[0]} rows but `tgt_in` has {tgt_in.shape[0]}")
        if teacher_forcing >= 1.0:
            return self.decode(tgt_in, memory, state)[0]
        B, T = tgt_in.shape
        token, logits = tgt_in[:, 0], []
        for t in range(T):
            step_logits, state, _ = self.decode(token[:, None], memory, state)  # (B, 1, V)
            logits.append(step_logits[:, 0])
            if t + 1 < T:
                own = step_logits[:, 0].detach().argmax(-1)
                teacher = torch.rand(B, generator=generator) < teacher_forcing
                token = torch.where(teacher.to(own.device), tgt_in[:, t + 1], own)
        return torch.stack(logits, 1)  # (B, T, V)

    # ----------------------------------------------------------------- decoding

    def _max_len(self, max_len: Optional[int]) -> int:
        return self.max_len if max_len is None else check_positive(max_len, "max_len")

    @torch.no_grad()
    def greedy(self, src: Any, max_len: Optional[int] = None,
               return_attention: bool = False) -> Union[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """The argmax token at every step -> ids (B, L), ``<eos>`` included, then padding.

        With ``return_attention`` also the weights (B, L, S).
        """
        was = self.training
        self.eval()
        try:
            memory, state = self.encode(src)
            B = memory.keys.shape[0]
            token = torch.full((B,), BOS, dtype=torch.long, device=memory.keys.device)
            done = torch.zeros(B, dtype=torch.bool, device=token.device)
            out, attn = [], []
            for _ in range(self._max_len(max_len)):
                logits, state, weights = self.decode(token[:, None], memory, state)
                token = logits[:, 0].argmax(-1).masked_fill(done, PAD)  # (B,)
                out.append(token)
                attn.append(weights[:, 0])
                done |= token == EOS
                if bool(done.all()):
                    break
        finally:
            self.train(was)
        ids = torch.stack(out, 1).cpu().numpy()
        return (ids, torch.stack(attn, 1).cpu().numpy()) if return_attention else ids

    @torch.no_grad()
    def beam_search(self, src: Any, beam_size: int = 4, max_len: Optional[int] = None,
                    length_penalty: float = 1.0) -> np.ndarray:
        """The most likely output by beam search -> ids (B, L), ``<eos>`` included, then padding.

        Each sample keeps ``beam_size`` hypotheses ranked by their summed log-probability;
        a hypothesis ends at ``<eos>``. The winner maximises ``log p / length ** length_penalty``
        (0: raw log-probability, which favours short outputs). ``beam_size=1`` is ``greedy``.
        """
        k = check_positive(beam_size, "beam_size")
        if k > self.tgt_vocab_size:
            raise ValueError(f"`beam_size` ({k}) must not exceed the target vocabulary ({self.tgt_vocab_size})")
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) or length_penalty < 0:
            raise ValueError(f"`length_penalty` must be a float >= 0, got {length_penalty!r}")
        was = self.training
        self.eval()
        try:
            memory, state = self.encode(src)
            B, V = memory.keys.shape[0], self.tgt_vocab_size
            device = memory.keys.device
            memory, state = memory.repeat(k), [s.repeat_interleave(k, 0) for s in state]  # (B * k, ...)
            scores = torch.zeros(B, k, device=device)
            scores[:, 1:] = float("-inf")  # all beams start identical: keep one
            token = torch.full((B * k,), BOS, dtype=torch.long, device=device)
            seqs = torch.zeros(B * k, 0, dtype=torch.long, device=device)
            done = torch.zeros(B * k, dtype=torch.bool, device=device)
            # A finished hypothesis may only continue with padding, at no cost.
            frozen = torch.full((V,), float("-inf"), device=device)
            frozen[PAD] = 0.0
            rows = torch.arange(B, device=device)[:, None] * k  # (B, 1)
            for _ in range(self._max_len(max_len)):
                logits, state, _ = self.decode(token[:, None], memory, state)
                logp = torch.log_softmax(logits[:, 0].float(), -1)  # (B * k, V)
                logp = torch.where(done[:, None], frozen, logp)
                scores, idx = (scores.reshape(-1, 1) + logp).reshape(B, k * V).topk(k, -1)  # (B, k)
                parent = (rows + idx // V).reshape(-1)  # (B * k,) row each new hypothesis extends
                token = (idx % V).reshape(-1)
                state = [s[parent] for s in state]
                seqs = torch.cat([seqs[parent], token[:, None]], 1)
                done = done[parent] | (token == EOS)
                if bool(done.all()):
                    break
            lengths = ((seqs != PAD).sum(1)).clamp(min=1).float().reshape(B, k)
            best = (scores / lengths ** float(length_penalty)).argmax(-1)  # (B,)
            chosen = seqs.reshape(B, k, -1)[torch.arange(B, device=device), best]
        finally:
            self.train(was)
        return chosen.cpu().numpy()

    # -------------------------------------------------------------------- config

    def get_config(self) -> dict[str, Any]:
        return {"src_vocab_size": self.src_vocab_size, "tgt_vocab_size": self.tgt_vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units, "cell": self.cell,
                "attention": self.attention.kind, "dropout": self.dropout_rate, "max_len": self.max_len}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Seq2Seq":
        return cls(**config)
