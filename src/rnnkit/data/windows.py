"""Sliding windows over a time series, for many-to-one and multi-step forecasting."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["make_windows"]


def _positive_int(value: Any, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{arg}` must be a positive int, got {value!r}")
    return int(value)


def make_windows(
    series: Any,
    lookback: int,
    horizon: int = 1,
    stride: int = 1,
    target: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a series into (input window, following values) pairs.

    Window ``n`` starts at ``s = n * stride``::

        X[n] = series[s : s + lookback]                                 # (lookback, F)
        y[n] = series[s + lookback : s + lookback + horizon, target]    # (horizon,)

    Args:
        series: shape (T,) or (T, F); a 1-D series is treated as F = 1.
        lookback: input steps per window (the T of each sample), >= 1.
        horizon: future steps to predict, >= 1.
        stride: steps between window starts, >= 1.
        target: the feature column that ``y`` takes, in ``[0, F)``.

    Returns:
        ``X`` of shape (N, lookback, F) and ``y`` of shape (N, horizon), both in the
        dtype of ``series`` (floats stay floats; ints become float32), with
        ``N = (T - lookback - horizon) // stride + 1``. Both are fresh copies.

    Raises:
        ValueError: if the series is not 1-D or 2-D, holds non-finite values, or is too
            short for one window (T < lookback + horizon).
    """
    lookback = _positive_int(lookback, "lookback")
    horizon = _positive_int(horizon, "horizon")
    stride = _positive_int(stride, "stride")
    arr = np.asarray(series)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"`series` must be real numbers, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]  # (T,) -> (T, 1)
    if arr.ndim != 2:
        raise ValueError(f"`series` must have shape (T,) or (T, F), got shape {arr.shape}")
    T, F = arr.shape
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < F:
        raise ValueError(f"`target` must be a column index in [0, {F}), got {target!r}")
    if T < lookback + horizon:
        raise ValueError(
            f"`series` has {T} steps, too short for one window of lookback + horizon = {lookback + horizon} steps"
        )
    if not np.isfinite(arr).all():
        raise ValueError("`series` holds NaN or inf values; fill or drop them before windowing")
    n = (T - lookback - horizon) // stride + 1
    starts = np.arange(n) * stride
    X = arr[starts[:, None] + np.arange(lookback)]  # (N, lookback, F)
    y = arr[starts[:, None] + lookback + np.arange(horizon), target]  # (N, horizon)
    return X, y
