"""Scores for decoded sequences: exact match and token error rate (edit distance), against one
reference per sample or, for pronunciations, against any of several."""

from __future__ import annotations

from typing import Sequence

Tokens = Sequence[str]

__all__ = ["edit_distance", "phoneme_error_rate", "sequence_accuracy", "token_error_rate", "word_error_rate"]


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


def _closest(predicted: Tokens, references: Sequence[Tokens]) -> tuple[int, int]:
    """(edit distance, reference length) to the nearest reference; ties go to the shorter reference."""
    return min((edit_distance(list(predicted), list(r)), len(r)) for r in references)


def _check_references(predicted: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> None:
    _check_pair(predicted, references)
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not len(refs) or any(isinstance(r, str) for r in refs):
            raise ValueError(f"`references[{i}]` must be a non-empty list of token lists (one per accepted "
                             f"output), got {refs!r}")


def word_error_rate(predicted: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> float:
    """Share of samples whose prediction equals none of its references.

    ``references[i]`` lists every accepted output of sample i (all pronunciations of a
    word): a prediction that matches any one of them is correct. This is how the code of
    Toshniwal & Livescu (2016, github.com/shtoshni/g2p, ``calc_levenshtein_loss``) scores
    CMUdict, and what the G2P papers mean by word error rate.
    """
    _check_references(predicted, references)
    wrong = sum(all(list(p) != list(r) for r in refs) for p, refs in zip(predicted, references))
    return wrong / len(references)


def phoneme_error_rate(predicted: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> float:
    """Summed edit distance to each sample's closest reference over the summed length of those references."""
    _check_references(predicted, references)
    pairs = [_closest(p, refs) for p, refs in zip(predicted, references)]
    return sum(d for d, _ in pairs) / max(sum(n for _, n in pairs), 1)
