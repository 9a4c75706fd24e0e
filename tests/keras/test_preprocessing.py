"""rnnkit.data.pad_sequences follows keras.utils.pad_sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.data import pad_sequences

SEQS = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], []]


def test_defaults_pad_and_truncate_at_the_front():
    out = pad_sequences(SEQS)
    assert out.dtype == np.int32 and out.shape == (4, 5)
    np.testing.assert_array_equal(out, [[0, 0, 1, 2, 3], [0, 0, 0, 4, 5], [6, 7, 8, 9, 10], [0, 0, 0, 0, 0]])


@pytest.mark.parametrize(
    "padding,truncating,expected",
    [
        ("pre", "pre", [[0, 1, 2, 3], [0, 0, 4, 5], [7, 8, 9, 10], [0, 0, 0, 0]]),
        ("post", "pre", [[1, 2, 3, 0], [4, 5, 0, 0], [7, 8, 9, 10], [0, 0, 0, 0]]),
        ("pre", "post", [[0, 1, 2, 3], [0, 0, 4, 5], [6, 7, 8, 9], [0, 0, 0, 0]]),
        ("post", "post", [[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9], [0, 0, 0, 0]]),
    ],
)
def test_padding_and_truncating_sides(padding, truncating, expected):
    np.testing.assert_array_equal(pad_sequences(SEQS, maxlen=4, padding=padding, truncating=truncating), expected)


def test_value_dtype_and_vector_items():
    out = pad_sequences([[0.5, 1.5], [2.5]], dtype="float32", value=-1.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.5, 1.5], [-1.0, 2.5]])
    # Floats into the default int32 are truncated, as numpy (and Keras) cast them.
    np.testing.assert_array_equal(pad_sequences([[1.7, 2.2]]), [[1, 2]])
    vec = pad_sequences([np.ones((2, 3)), np.full((1, 3), 2.0)], dtype="float64", padding="post")
    assert vec.shape == (2, 2, 3)
    np.testing.assert_array_equal(vec[1], [[2, 2, 2], [0, 0, 0]])
    strings = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    np.testing.assert_array_equal(strings, [["a", "b"], ["<pad>", "c"]])


def test_accepts_arrays_tensors_and_edge_lengths():
    out = pad_sequences([np.array([1, 2]), torch.tensor([3]), (4, 5, 6)], maxlen=3)
    np.testing.assert_array_equal(out, [[0, 1, 2], [0, 0, 3], [4, 5, 6]])
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    assert pad_sequences([[], []]).shape == (2, 0)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"sequences": 5}, ValueError, "sequences"),
        ({"sequences": [[1], 2]}, ValueError, "item 1"),
        ({"sequences": [[1]], "padding": "middle"}, ValueError, "padding"),
        ({"sequences": [[1]], "truncating": "left"}, ValueError, "truncating"),
        ({"sequences": [[1]], "maxlen": -1}, ValueError, "maxlen"),
        ({"sequences": [[1]], "maxlen": 2.5}, ValueError, "maxlen"),
        ({"sequences": [[1]], "value": "pad"}, ValueError, "dtype"),
        ({"sequences": [[[1, 2]], [[1, 2, 3]]]}, ValueError, "shape"),
        ({"sequences": [["x"]]}, ValueError, "Sequence 0"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        pad_sequences(**kwargs)
