r"""Attention over encoder outputs: Luong's multiplicative and Bahdanau's additive score.

For a decoder state (query) :math:`q_t` and encoder outputs (keys) :math:`k_s`:

.. math::
    \text{luong:}\quad e_{ts} = q_t^\top W k_s \qquad
    \text{bahdanau:}\quad e_{ts} = v^\top \tanh(W_q q_t + W_k k_s) \\
    a_{ts} = \frac{\exp e_{ts}}{\sum_{s'} \exp e_{ts'}} \;\text{(padded } s \text{ excluded)}, \qquad
    c_t = \sum_s a_{ts} k_s

(Luong, Pham & Manning 2015, "general" score; Bahdanau, Cho & Bengio 2015.)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..keras.layers import Dense
from ._checks import check_positive

__all__ = ["Attention", "ATTENTION_KINDS"]

ATTENTION_KINDS = ("luong", "bahdanau")


class Attention(nn.Module):
    """``attention(query (B, T, Q), keys (B, S, K), mask (B, S)) -> context (B, T, K), weights (B, T, S)``."""

    def __init__(self, kind: str, query_size: int, key_size: int, units: Optional[int] = None) -> None:
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"Received an invalid value for argument `attention`: expected one of {ATTENTION_KINDS}, "
                             f"got {kind!r}")
        self.kind = kind
        self.query_size = check_positive(query_size, "query_size")
        self.key_size = check_positive(key_size, "key_size")
        if kind == "luong":
            self.w = Dense(key_size, use_bias=False, input_dim=query_size)  # q^T W, (B, T, K)
        else:
            units = check_positive(units if units is not None else query_size, "units")
            self.w_q = Dense(units, use_bias=False, input_dim=query_size)
            self.w_k = Dense(units, input_dim=key_size)
            self.v = Dense(1, use_bias=False, input_dim=units)

    def forward(self, query: Tensor, keys: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if self.kind == "luong":
            scores = self.w(query) @ keys.transpose(1, 2)  # (B, T, K) @ (B, K, S) -> (B, T, S)
        else:
            hidden = torch.tanh(self.w_q(query)[:, :, None] + self.w_k(keys)[:, None])  # (B, T, S, A)
            scores = self.v(hidden).squeeze(-1)  # (B, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        return weights @ keys, weights  # context (B, T, K)
