"""The long-range task generators: adding problem, copy task, sequential digits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnkit.datasets.long_range import (
    ADDING_TRIVIAL_MSE,
    adding_problem,
    copy_task,
    copy_task_baseline,
    sequential_digits,
)


@pytest.mark.parametrize("T", [2, 7, 100])
def test_adding_problem_has_one_marker_in_each_half_and_sums_them(T):
    x, y = adding_problem(500, T, seed=0)
    assert x.shape == (500, T, 2) and y.shape == (500, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    half = T // 2
    np.testing.assert_array_equal(markers[:, :half].sum(1), 1)
    np.testing.assert_array_equal(markers[:, half:].sum(1), 1)
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(1), rtol=1e-6)


def test_adding_problem_trivial_predictor_has_mse_one_sixth():
    _, y = adding_problem(200_000, 20, seed=1)
    mse = float(((y - 1.0) ** 2).mean())
    # Var(u_a + u_b) = 1/6; the standard error of this estimate is about 5e-4.
    assert mse == pytest.approx(ADDING_TRIVIAL_MSE, abs=3e-3)
    assert float(y.mean()) == pytest.approx(1.0, abs=3e-3)


def test_adding_problem_seeding():
    a, _ = adding_problem(4, 10, seed=3)
    b, _ = adding_problem(4, 10, seed=3)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(0)
    c, _ = adding_problem(4, 10, rng)
    d, _ = adding_problem(4, 10, rng)  # a shared Generator draws fresh batches
    assert not np.array_equal(c, d)
    with pytest.raises(ValueError, match="length"):
        adding_problem(4, 1)
    with pytest.raises(TypeError, match="seed"):
        adding_problem(4, 10, seed="zero")


def test_copy_task_layout():
    T, K, S = 30, 8, 10
    x, y = copy_task(64, T, n_symbols=K, copy_length=S, seed=0)
    L = T + 2 * S
    assert x.shape == (64, L) and y.shape == (64, L) and x.dtype == np.int64
    symbols = x[:, :S]
    assert symbols.min() >= 1 and symbols.max() <= K
    np.testing.assert_array_equal(x[:, S : S + T - 1], 0)
    np.testing.assert_array_equal(x[:, S + T - 1], K + 1)  # the delimiter
    np.testing.assert_array_equal(x[:, S + T :], 0)
    np.testing.assert_array_equal(y[:, : T + S], 0)
    np.testing.assert_array_equal(y[:, T + S :], symbols)
    onehot, _ = copy_task(64, T, n_symbols=K, copy_length=S, seed=0, one_hot=True)
    assert onehot.shape == (64, L, K + 2)
    np.testing.assert_array_equal(onehot.argmax(-1), x)
    assert copy_task_baseline(T, K, S) == pytest.approx(S * math.log(K) / L)


def test_sequential_digits_rows_and_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(40, 8, 8)).astype(np.float32)
    labels = np.arange(40) % 10
    (xr, yr), (xr_test, yr_test) = sequential_digits("row", images=images, labels=labels, seed=0)
    assert xr.shape == (30, 8, 8) and xr_test.shape == (10, 8, 8)
    assert xr.max() <= 1.0 and xr.min() >= 0.0
    (xp, yp), _ = sequential_digits("pixel", images=images, labels=labels, seed=0)
    assert xp.shape == (30, 64, 1)
    np.testing.assert_array_equal(yr, yp)
    np.testing.assert_allclose(xp.reshape(-1, 8, 8), xr)  # same split, same pixels, fed one at a time
    (xq, yq), _ = sequential_digits("pixel", permute=True, images=images, labels=labels, seed=0)
    assert xq.shape == (30, 64, 1) and not np.array_equal(xq, xp)
    np.testing.assert_allclose(np.sort(xq[:, :, 0], 1), np.sort(xp[:, :, 0], 1))  # a permutation of the pixels
    with pytest.raises(ValueError, match="mode"):
        sequential_digits("column", images=images, labels=labels)
    with pytest.raises(ValueError, match="permute"):
        sequential_digits("row", permute=True, images=images, labels=labels)


def test_sequential_digits_uses_the_bundled_split():
    (x, y), (x_test, y_test) = sequential_digits("pixel")
    assert x.shape == (1437, 64, 1) and x_test.shape == (360, 64, 1)
    assert set(np.unique(y)) == set(range(10)) and y.dtype == np.int64
    (xr, _), _ = sequential_digits("row")
    np.testing.assert_array_equal(xr.reshape(-1, 64, 1), x)
