"""Text data: CPython's documentation topics (language modelling) and rated movie-review sentences."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._files import bundled_text, in_test_split

__all__ = ["PydocText", "Sentiment", "load_pydoc_text", "load_sentiment"]


class PydocText(NamedTuple):
    """The whole text and three consecutive pieces of it (``train + valid + test == text``)."""

    text: str
    train: str
    valid: str
    test: str


def _check_fraction(value: float, arg: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 0.5:
        raise ValueError(f"`{arg}` must be a float in (0, 0.5), got {value!r}")
    return float(value)


def pydoc_topics_text() -> str:
    """All of ``pydoc_data.topics`` as one str: topics in sorted key order, a blank line between."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # some OS packagers split the stdlib
        raise RuntimeError(
            "this Python has no pydoc_data module (part of the standard library); "
            "install your distribution's full Python standard library package"
        ) from e
    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n"


def load_pydoc_text(valid_fraction: float = 0.05, test_fraction: float = 0.05) -> PydocText:
    """The text of CPython's ``pydoc_data.topics``: the language reference topics that
    ``help("if")`` shows, read at run time from the running Python (nothing is bundled).

    The topics are joined in sorted key order, separated by a blank line. The split
    is by character position, with no shuffling, so ``train``, ``valid`` and ``test``
    are consecutive pieces: with ``n = len(text)``, ``train = text[:a]``,
    ``valid = text[a:b]``, ``test = text[b:]`` where ``b = n - floor(test_fraction * n)``
    and ``a = b - floor(valid_fraction * n)``.

    The text differs between Python versions (about 465,000 characters and 100
    distinct characters on 3.11): build the vocabulary from the whole ``text``, so that
    characters found only in ``valid`` or ``test`` have ids, and save it with the model
    (``rnnkit.data.text.CharVocab``).

    Source: the CPython documentation, ``Lib/pydoc_data/topics.py``. Licence: the
    Python Software Foundation License (PSF-2.0), under which Python itself is used.
    """
    valid_fraction = _check_fraction(valid_fraction, "valid_fraction")
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    text = pydoc_topics_text()
    n = len(text)
    b = n - math.floor(test_fraction * n)
    a = b - math.floor(valid_fraction * n)
    return PydocText(text, text[:a], text[a:b], text[b:])


class Sentiment(NamedTuple):
    """Sentences with a binary label and the mean human rating it came from."""

    x_train: np.ndarray  #: (N_train,) str sentences
    y_train: np.ndarray  #: (N_train,) int64, 1 positive, 0 negative
    x_test: np.ndarray  #: (N_test,) str
    y_test: np.ndarray  #: (N_test,) int64
    ratings_train: np.ndarray  #: (N_train,) float32 mean rating in [-4, 4]
    ratings_test: np.ndarray  #: (N_test,) float32


def load_sentiment(neutral_band: float = 0.5) -> Sentiment:
    """10,605 movie-review sentences, each rated by about 20 people on a -4..+4 scale.

    Labels come from the sign of the mean rating: ``1`` (positive) if
    ``mean > neutral_band``, ``0`` (negative) if ``mean < -neutral_band``. Sentences with
    ``|mean| <= neutral_band`` are near-neutral or disputed and are left out. With the
    default 0.5 that drops 562 sentences and leaves 10,043 (4,982 positive, 5,061
    negative); ``neutral_band=0`` keeps all but the 37 rated exactly 0.

    Split: a sentence is in the test set when ``crc32(str(id)) % 5 == 0`` (its id in the
    source file, 1..10605): about 20 %, the same on every machine; about 8,000 train /
    2,000 test at the default band. The order within each split is the source order.

    Source: Hutto & Gilbert (2014), "VADER: A Parsimonious Rule-based Model for
    Sentiment Analysis of Social Media Text", ICWSM-14 — the file
    ``movieReviewSnippets_GroundTruth.txt`` in the ``vaderSentiment`` 3.3.2 sdist
    (MIT licence). The sentences are from the Rotten Tomatoes reviews of Pang & Lee
    (2004); the ratings are VADER's.
    """
    if isinstance(neutral_band, bool) or not isinstance(neutral_band, (int, float)) or not 0 <= neutral_band < 4:
        raise ValueError(f"`neutral_band` must be a number in [0, 4), got {neutral_band!r}")
    lines = bundled_text("vader_movie_reviews.tsv.gz").split("\n")
    if lines[0] != "id\tmean_rating\ttext":
        raise ValueError(f"bundled vader_movie_reviews.tsv.gz has an unexpected header {lines[0]!r}")
    ids, ratings, texts = [], [], []
    for line in lines[1:]:
        if not line:
            continue
        sid, mean, text = line.split("\t", 2)
        ids.append(sid)
        ratings.append(float(mean))
        texts.append(text)
    r = np.array(ratings, dtype=np.float32)
    x = np.array(texts, dtype=str)
    keep = np.abs(r) > neutral_band
    test = in_test_split(ids, 5)
    y = (r > 0).astype(np.int64)
    tr, te = keep & ~test, keep & test
    return Sentiment(x[tr], y[tr], x[te], y[te], r[tr], r[te])
