"""Scores for decoded sequences: exact match and token error rate (edit distance)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["edit_distance", "sequence_accuracy", "token_error_rate"]


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance: insertions, deletions and substitutions turning ``a`` into ``b``."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _check_pair(predicted: Sequence[Sequence[str]], reference: Sequence[Sequence[str]]) -> None:
    if len(predicted) != len(reference):
        raise ValueError(f"`predicted` has {len(predicted)} sequences but `reference` has {len(reference)}")
    if not len(reference):
        raise ValueError("`reference` is empty")


def sequence_accuracy(predicted: Sequence[Sequence[str]], reference: Sequence[Sequence[str]]) -> float:
    """Share of sequences decoded exactly (word accuracy for pronunciations)."""
    _check_pair(predicted, reference)
    return sum(list(p) == list(r) for p, r in zip(predicted, reference)) / len(reference)


def token_error_rate(predicted: Sequence[Sequence[str]], reference: Sequence[Sequence[str]]) -> float:
    """Summed edit distance over summed reference length (phoneme/character error rate)."""
    _check_pair(predicted, reference)
    total = sum(len(r) for r in reference)
    return sum(edit_distance(list(p), list(r)) for p, r in zip(predicted, reference)) / max(total, 1)
