"""``pad_sequences``: ragged lists -> one padded numpy array, with Keras's semantics."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

_SIDES = ("pre", "post")


def pad_sequences(
    sequences: Sequence[Any],
    maxlen: Optional[int] = None,
    dtype: Any = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: Any = 0.0,
) -> np.ndarray:
    """Pad (and cut) sequences to one length T, as ``keras.utils.pad_sequences`` does.

    Args:
        sequences: N sequences (lists, arrays or tensors); the items may be scalars or
            equal-shaped vectors, so the result is (N, T) or (N, T, *item_shape).
        maxlen: T; the longest sequence's length if None.
        dtype: the result's numpy dtype. Values are cast as numpy casts them (floats into
            "int32" are truncated, as in Keras).
        padding: "pre" puts the padding before each sequence (Keras's default, so the
            real steps end at T), "post" after it.
        truncating: "pre" drops the start of longer sequences (keeps the last ``maxlen``
            items), "post" drops the end.
        value: the padding value.

    Returns:
        numpy array (N, T, ...) of ``dtype``.
    """
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise ValueError(f"Argument `sequences` must be a list of sequences, got {type(sequences).__name__}")
    if padding not in _SIDES:
        raise ValueError(f"Received an invalid value for argument `padding`: expected 'pre' or 'post', got {padding!r}")
    if truncating not in _SIDES:
        raise ValueError(f"Received an invalid value for argument `truncating`: expected 'pre' or 'post', got {truncating!r}")
    if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0):
        raise ValueError(f"Received an invalid value for argument `maxlen`: expected a non-negative integer or None, got {maxlen!r}")
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"Argument `dtype` must be a numpy dtype or its name, got {dtype!r}") from err
    if isinstance(value, str) and np_dtype.kind not in "OUS":
        raise ValueError(f"Argument `value` is the string {value!r}, but `dtype` {dtype!r} is not a string dtype; pass dtype=object")

    lengths, item_shape = [], None
    for i, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            raise ValueError(f"Argument `sequences` must hold sequences; item {i} is {seq!r}")
        lengths.append(len(seq))
        if item_shape is None and len(seq):
            try:
                item_shape = np.asarray(seq).shape[1:]
            except ValueError:  # numpy's "inhomogeneous shape" would not say which argument
                raise ValueError(f"Argument `sequences`: item {i} mixes scalars and lists of different lengths; "
                                 "expected a sequence of numbers or of equal-length vectors") from None
    item_shape = item_shape or ()
    T = int(maxlen) if maxlen is not None else max(lengths, default=0)

    out = np.full((len(lengths), T, *item_shape), value, dtype=np_dtype)
    if T == 0:
        return out
    for i, seq in enumerate(sequences):
        if not len(seq):
            continue
        kept = seq[-T:] if truncating == "pre" else seq[:T]
        try:
            kept = np.asarray(kept, dtype=np_dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Sequence {i} cannot be converted to dtype {np_dtype}: {err}") from err
        if kept.shape[1:] != item_shape:
            raise ValueError(
                f"Sequence {i} has items of shape {kept.shape[1:]}, but earlier items have shape {item_shape}"
            )
        if padding == "post":
            out[i, : len(kept)] = kept
        else:
            out[i, T - len(kept) :] = kept
    return out
