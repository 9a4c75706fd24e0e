r"""Long-range dependency tasks, generated on the fly: the benchmarks on which plain RNNs fail.

All generators return numpy arrays (float32 inputs, batch-first (B, T, F)) and take a
``seed`` (an int, a ``numpy.random.Generator``, or None), so a fixed seed gives a fixed
data set and a shared Generator gives fresh batches for online training.

adding_problem
    Hochreiter & Schmidhuber (1997), in the form of Le, Jaitly & Hinton (2015):
    two input channels; channel 0 holds values u_t ~ U(0, 1), channel 1 is zero except
    for exactly two 1s, one in each half of the sequence. The target is

    .. math:: y = \sum_t u_t \, m_t

    Always predicting 1.0 gives MSE = Var(u_a + u_b) = 2/12 = 1/6 ~ 0.167, the bar a
    model has to beat to show it carried information across the sequence.

copy_task
    The copy (memory) task of Hochreiter & Schmidhuber (1997) in the form of Arjovsky,
    Shah & Bengio (2016): remember S symbols, wait T steps, then reproduce them.

sequential_digits
    the bundled 8x8 handwritten digits (UCI optdigits, 1,797 images) fed one row per step (T = 8, F = 8) or one pixel per step (T = 64, F = 1), optionally with
    a fixed pixel permutation (the "permuted sequential MNIST" idea, Le et al. 2015).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

SeedLike = Union[int, np.random.Generator, None]

ADDING_TRIVIAL_MSE = 1.0 / 6.0  # MSE of always predicting 1.0 (the mean of the target)


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
        raise TypeError(f"Argument `seed` must be an int, a numpy.random.Generator or None, got {type(seed).__name__}")
    return np.random.default_rng(seed)


def _check_count(value: object, argument: str, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected an integer >= {minimum}, got {value!r}")
    return int(value)


def adding_problem(n: int, length: int, seed: SeedLike = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of the adding problem of length ``length``.

    Returns:
        x: (n, T, 2) float32; x[..., 0] ~ U(0, 1), x[..., 1] has one 1 in [0, T//2)
           and one 1 in [T//2, T).
        y: (n, 1) float32, the sum of the two marked values.
    """
    n = _check_count(n, "n", 0)
    T = _check_count(length, "length", 2)
    rng = _rng(seed)
    values = rng.random((n, T), dtype=np.float32)
    half = T // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    markers = np.zeros((n, T), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)
    return x, y


def copy_task(
    n: int, length: int, n_symbols: int = 8, copy_length: int = 10, seed: SeedLike = None, one_hot: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The copy / memory task: S = ``copy_length`` symbols, ``length`` - 1 blanks, a delimiter, S blanks.

    Token ids: 0 is the blank, 1..K are the symbols (K = ``n_symbols``), K + 1 is the delimiter.
    The total sequence length is L = T + 2S; the target is blank for the first T + S steps
    and then the S input symbols, in order:

        x = s_1 .. s_S, 0 x (T - 1), K+1, 0 x S
        y = 0 x (T + S),                  s_1 .. s_S

    Returns:
        x: (n, L) int64 ids, or (n, L, K + 2) float32 one-hot when ``one_hot``.
        y: (n, L) int64 ids in 0..K, a per-step classification target.
    See ``copy_task_baseline`` for the loss of the memoryless strategy.
    """
    n = _check_count(n, "n", 0)
    T = _check_count(length, "length", 1)
    K = _check_count(n_symbols, "n_symbols", 1)
    S = _check_count(copy_length, "copy_length", 1)
    rng = _rng(seed)
    L = T + 2 * S
    symbols = rng.integers(1, K + 1, size=(n, S))
    x = np.zeros((n, L), dtype=np.int64)
    y = np.zeros((n, L), dtype=np.int64)
    x[:, :S] = symbols
    x[:, S + T - 1] = K + 1
    y[:, T + S :] = symbols
    if one_hot:
        return np.eye(K + 2, dtype=np.float32)[x], y
    return x, y


def copy_task_baseline(length: int, n_symbols: int = 8, copy_length: int = 10) -> float:
    """Mean per-step cross-entropy (nats) of predicting blanks, then uniform symbols: S log K / (T + 2S)."""
    T, K, S = length, n_symbols, copy_length
    return S * math.log(K) / (T + 2 * S)


def sequential_digits(
    mode: str = "row",
    permute: bool = False,
    seed: SeedLike = 0,
    test_fraction: float = 0.25,
    images: Optional[np.ndarray] = None,
    labels: Optional[np.ndarray] = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The 8x8 digits as sequences: one row per step or one pixel per step.

    Args:
        mode: "row" gives x (n, 8, 8) (T = 8 rows of F = 8 pixels); "pixel" gives x (n, 64, 1).
        permute: apply one fixed random permutation (from ``seed``) to the 64 pixels, so that
            neighbouring pixels end up far apart in time ("pixel" mode only).
        seed: seeds the permutation, and the split of your own ``images``.
        test_fraction: share of your own ``images`` held out after a seeded shuffle.
        images, labels: (n, 8, 8) pixel counts 0..16 and (n,) labels. By default the 1,797
            digits bundled with rnnkit (``rnnkit.datasets.load_digits_captions``: UCI optdigits,
            Alpaydin & Kaynak, CC BY 4.0) with their documented split, the first 1,437 images
            for training and the last 360 for testing.
    Returns:
        ((x_train, y_train), (x_test, y_test)); x float32 scaled to [0, 1], y int64 digits.
    """
    if mode not in ("row", "pixel"):
        raise ValueError(f"Received an invalid value for argument `mode`: expected 'row' or 'pixel', got {mode!r}")
    if permute and mode != "pixel":
        raise ValueError("Argument `permute=True` needs mode='pixel'")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"Argument `test_fraction` must lie in (0, 1), got {test_fraction!r}")
    if (images is None) != (labels is None):
        raise ValueError("Pass both `images` and `labels`, or neither")
    rng = _rng(seed)
    if images is None:
        from .captions import load_digits_captions

        bundled = load_digits_captions()
        parts = [(bundled.x_train, bundled.digits_train), (bundled.x_test, bundled.digits_test)]
    else:
        images = np.asarray(images, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        if images.ndim != 3 or images.shape[1:] != (8, 8):
            raise ValueError(f"Argument `images` must have shape (n, 8, 8), got {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"Argument `labels` must have shape (n,) = ({images.shape[0]},), got {labels.shape}")
        order = rng.permutation(len(images))  # drawn first, so `permute` leaves the split unchanged
        n_test = int(round(test_fraction * len(images)))
        x = images / 16.0
        parts = [(x[order[n_test:]], labels[order[n_test:]]), (x[order[:n_test]], labels[order[:n_test]])]
    pixels = rng.permutation(64) if permute else None
    out = []
    for x, y in parts:
        x = np.asarray(x, dtype=np.float32)
        x = x.reshape(-1, 8, 8) if mode == "row" else x.reshape(-1, 64, 1)
        if pixels is not None:
            x = x[:, pixels]
        out.append((x, np.asarray(y, dtype=np.int64)))
    return out[0], out[1]
