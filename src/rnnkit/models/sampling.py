r"""Choosing the next token from a model's logits: temperature and top-k sampling.

With logits :math:`z` (B, V), temperature :math:`\tau` and the set :math:`K` of the
``top_k`` largest logits, the next token is drawn from

.. math::
    p(v) = \frac{\exp(z_v / \tau)}{\sum_{u \in K} \exp(z_u / \tau)} \;\; (v \in K), \qquad p(v) = 0 \;\; (v \notin K).

``temperature=0`` and ``top_k=1`` are both greedy decoding (argmax), exactly.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = ["check_sampling", "sample_logits"]


def check_sampling(temperature: float, top_k: Optional[int]) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0 \
            or not math.isfinite(temperature):
        raise ValueError(f"Received an invalid value for argument `temperature`, expected a finite float >= 0 "
                         f"(0 is greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"Received an invalid value for argument `top_k`, expected None or a positive integer, got {top_k!r}")


def sample_logits(logits: Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """One token per row of ``logits`` (B, V) -> (B,) int64.

    Args:
        temperature: divides the logits; below 1 sharpens, above 1 flattens, 0 is argmax.
        top_k: sample only among the ``top_k`` most likely tokens (None: all V).
        generator: a ``torch.Generator`` for reproducible draws.
    """
    check_sampling(temperature, top_k)
    if logits.dim() != 2:
        raise ValueError(f"`logits` must have shape (B, V), got shape {tuple(logits.shape)}")
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1)
    z = logits.float() / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = z.topk(top_k, dim=-1).values[:, -1:]  # (B, 1), the k-th largest logit
        z = z.masked_fill(z < kth, -math.inf)
    probs = torch.softmax(z, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
