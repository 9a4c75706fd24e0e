"""One-to-many data: handwritten digit images and the English word for each."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._files import bundled_text

__all__ = ["DigitsCaptions", "load_digits_captions", "DIGIT_WORDS"]

#: The caption of digit ``d`` is ``DIGIT_WORDS[d]``.
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

N_TRAIN = 1437


class DigitsCaptions(NamedTuple):
    """8x8 digit images (flattened), their captions and their digits."""

    x_train: np.ndarray  #: (1437, 64) float32 in [0, 1]; ``x.reshape(-1, 8, 8)`` gives the images
    y_train: np.ndarray  #: (1437,) str captions, e.g. "seven"
    x_test: np.ndarray  #: (360, 64) float32
    y_test: np.ndarray  #: (360,) str
    digits_train: np.ndarray  #: (1437,) int64 in 0..9
    digits_test: np.ndarray  #: (360,) int64


def load_digits_captions() -> DigitsCaptions:
    """1,797 handwritten digits (8x8 images) captioned with their English word.

    The task is one-to-many: condition a generator on the 64 pixel values and let it
    spell "seven" letter by letter (or output the class as a token sequence).

    Pixels are the counts 0..16 of a 4x4 block of a 32x32 bitmap, divided by 16 so
    they lie in [0, 1], row-major (``x.reshape(-1, 8, 8)`` is the image).

    Split: the first 1,437 images (80 %) train, the last 360 test, in the source's
    order (no shuffling; the digits are well mixed through the file).

    Source: the test part of the UCI "Optical Recognition of Handwritten Digits"
    data (E. Alpaydin, C. Kaynak, 1998), as shipped in scikit-learn 1.9.1
    (``sklearn/datasets/data/digits.csv.gz``, BSD-3-Clause package). The UCI
    data set is licensed CC BY 4.0.
    """
    table = np.array(
        [line.split(",") for line in bundled_text("digits.csv.gz").split("\n") if line], dtype=np.int64
    )  # (1797, 65): 64 pixels, then the digit
    if table.shape != (1797, 65):
        raise ValueError(f"bundled digits.csv.gz has shape {table.shape}, expected (1797, 65)")
    x = (table[:, :64] / 16.0).astype(np.float32)
    digits = table[:, 64]
    captions = np.array(DIGIT_WORDS, dtype=str)[digits]
    return DigitsCaptions(
        x[:N_TRAIN], captions[:N_TRAIN], x[N_TRAIN:], captions[N_TRAIN:], digits[:N_TRAIN], digits[N_TRAIN:]
    )
