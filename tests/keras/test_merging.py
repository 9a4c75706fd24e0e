"""Merge layers against NumPy, with Keras 3's mask rules written out by hand.

Keras 3 (keras/src/layers/merging/base_merge.py, multiply.py, concatenate.py):
    output mask = OR of the input masks if every input has one, else None;
    Maximum/Minimum: where an input is masked, the running result and it take each other's value;
    Multiply: a masked input counts as 1; where every input is masked the output is 0;
    Concatenate: masks broadcast to the inputs (None = all True), joined on the axis, any over features.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.keras.layers import (
    Add,
    Average,
    Concatenate,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    deserialize,
    serialize,
)

F64 = torch.float64
rng = np.random.default_rng(0)
A, B, C = (rng.standard_normal((2, 4, 3)) for _ in range(3))
MA = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool)
MB = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], bool)


def t(a):
    return torch.tensor(a, dtype=F64, requires_grad=True)


@pytest.mark.parametrize("layer, ref", [
    (Add(), lambda a, b, c: a + b + c),
    (Average(), lambda a, b, c: (a + b + c) / 3),
    (Multiply(), lambda a, b, c: a * b * c),
    (Maximum(), lambda a, b, c: np.maximum(np.maximum(a, b), c)),
    (Minimum(), lambda a, b, c: np.minimum(np.minimum(a, b), c)),
    (Concatenate(), lambda a, b, c: np.concatenate([a, b, c], -1)),
    (Concatenate(axis=1), lambda a, b, c: np.concatenate([a, b, c], 1)),
])
def test_merge_values_and_gradients_without_masks(layer, ref):
    xs = [t(A), t(B), t(C)]
    y = layer(xs)
    np.testing.assert_allclose(y.detach().numpy(), ref(A, B, C), rtol=1e-12)
    assert layer.compute_output_shape([(None, 4, 3)] * 3) == tuple([None, *y.shape[1:]])
    assert layer.compute_mask(xs, None) is None
    assert torch.autograd.gradcheck(lambda a, b, c: layer([a, b, c]), tuple(xs))
    assert deserialize(serialize(layer)).get_config() == layer.get_config()


def test_subtract_takes_exactly_two():
    np.testing.assert_allclose(Subtract()([t(A), t(B)]).detach().numpy(), A - B)
    with pytest.raises(ValueError, match="exactly 2 input tensors, got 3"):
        Subtract()([t(A), t(B), t(C)])


def test_broadcasting_and_lower_rank_inputs_get_axes_after_the_batch():
    a, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 3))
    y = Add()([torch.tensor(a), torch.tensor(v)])
    np.testing.assert_allclose(y.numpy(), a + v[:, None, :])
    assert Add().compute_output_shape([(None, 4, 3), (None, 3)]) == (None, 4, 3)
    assert Multiply().compute_output_shape([(None, None, 3), (None, 1, 3)]) == (None, None, 3)
    np.testing.assert_allclose(Multiply()([torch.tensor(a), torch.tensor(a[:, :1])]).numpy(), a * a[:, :1])


def _expand(m):
    return np.broadcast_to(m[..., None], A.shape)


def keras_masked_fold(op, xs, ms):
    out, om = xs[0], _expand(ms[0]) if ms[0] is not None else None
    for x, m in zip(xs[1:], ms[1:]):
        m = _expand(m) if m is not None else None
        if m is not None:
            x = np.where(m, x, out)
        if om is not None:
            out = np.where(om, out, x)
        om = om | m if om is not None and m is not None else None
        out = op(out, x)
    return out


@pytest.mark.parametrize("layer, op", [(Maximum(), np.maximum), (Minimum(), np.minimum)])
@pytest.mark.parametrize("masks", [(MA, MB), (MA, None), (None, MB)])
def test_maximum_minimum_with_masks(layer, op, masks):
    y = layer([t(A), t(B)], mask=[None if m is None else torch.tensor(m) for m in masks])
    np.testing.assert_allclose(y.detach().numpy(), keras_masked_fold(op, [A, B], list(masks)))
    out_mask = layer.compute_mask([t(A), t(B)], [None if m is None else torch.tensor(m) for m in masks])
    if any(m is None for m in masks):
        assert out_mask is None
    else:
        np.testing.assert_array_equal(out_mask.numpy(), MA | MB)


def test_multiply_with_masks():
    y = Multiply()([t(A), t(B)], mask=[torch.tensor(MA), torch.tensor(MB)])
    a1, b1 = np.where(_expand(MA), A, 1), np.where(_expand(MB), B, 1)
    np.testing.assert_allclose(y.detach().numpy(), np.where(_expand(MA | MB), a1 * b1, 0))
    y = Multiply()([t(A), t(B)], mask=[torch.tensor(MA), None])
    np.testing.assert_allclose(y.detach().numpy(), np.where(_expand(MA), A, 1) * B)


def test_add_average_ignore_masks_in_values_but_merge_them():
    masks = [torch.tensor(MA), torch.tensor(MB)]
    np.testing.assert_allclose(Add()([t(A), t(B)], mask=masks).detach().numpy(), A + B)
    np.testing.assert_array_equal(Average().compute_mask([t(A), t(B)], masks).numpy(), MA | MB)


def test_concatenate_masks_follow_keras():
    masks = [torch.tensor(MA), torch.tensor(MB)]
    np.testing.assert_array_equal(Concatenate().compute_mask([t(A), t(B)], masks).numpy(), MA | MB)
    np.testing.assert_array_equal(Concatenate(axis=1).compute_mask([t(A), t(B)], masks).numpy(), np.concatenate([MA, MB], 1))
    # An input without a mask counts as all real.
    np.testing.assert_array_equal(Concatenate(axis=1).compute_mask([t(A), t(B)], [masks[0], None]).numpy(),
                                  np.concatenate([MA, np.ones_like(MB)], 1))
    assert Concatenate().compute_mask([t(A), t(B)], [None, None]) is None
    assert Concatenate(axis=1).compute_output_shape([(None, 4, 3), (None, None, 3)]) == (None, None, 3)
    assert Concatenate().compute_output_shape([(None, 4, 3), (None, 4, 5)]) == (None, 4, 8)


def batch_dot_reference(x, y, a, b):
    """NumPy batch_dot: contract x's axis a with y's axis b, keep x's other axes then y's."""
    out = np.stack([np.tensordot(x[i], y[i], axes=(a - 1, b - 1)) for i in range(x.shape[0])])
    return out.reshape(x.shape[0], 1) if out.ndim == 1 else out


@pytest.mark.parametrize("shapes, axes", [
    (((2, 4, 3), (2, 5, 3)), 2),
    (((2, 4, 3), (2, 4, 5)), 1),
    (((2, 4, 3), (2, 3, 5)), (2, 1)),
    (((2, 3), (2, 3)), 1),
    (((2, 4, 3), (2, 3)), (2, 1)),
    (((2, 6, 4, 3), (2, 3, 5)), (3, 1)),
])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_matches_numpy(shapes, axes, normalize):
    x, y = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    a, b = (axes, axes) if isinstance(axes, int) else axes
    layer = Dot(axes, normalize=normalize)
    got = layer([t(x), t(y)])
    if normalize:
        x = x / np.linalg.norm(x, axis=a, keepdims=True)
        y = y / np.linalg.norm(y, axis=b, keepdims=True)
    np.testing.assert_allclose(got.detach().numpy(), batch_dot_reference(x, y, a, b), rtol=1e-10)
    assert layer.compute_output_shape([(None, *shapes[0][1:]), (None, *shapes[1][1:])]) == (None, *got.shape[1:])
    assert layer.compute_mask([t(x), t(y)], [None, None]) is None


def test_dot_gradcheck():
    x, y = t(rng.standard_normal((2, 4, 3))), t(rng.standard_normal((2, 5, 3)))
    assert torch.autograd.gradcheck(lambda x, y: Dot(2, normalize=True)([x, y]), (x, y))


@pytest.mark.parametrize("call, error, match", [
    (lambda: Add()(torch.randn(2, 3)), TypeError, "expects a list of input tensors"),
    (lambda: Add()([]), ValueError, "at least 1 input tensors, got 0"),
    (lambda: Add()([torch.randn(2, 3), torch.randn(3, 3)]), ValueError, "same batch size"),
    (lambda: Add()([torch.randn(2, 3), torch.randn(2, 4)]), ValueError, "incompatible shapes"),
    (lambda: Add()([torch.randn(2, 3), "x"]), TypeError, "input 1 must be a tensor"),
    (lambda: Maximum()([torch.randn(2, 4, 3)] * 2, mask=[torch.ones(2, 4)]), ValueError, "one mask .* per input"),
    (lambda: Maximum()([torch.randn(2, 4, 3)] * 2, mask=[torch.ones(2, 5), None]), ValueError, r"`mask\[0\]`"),
    (lambda: Concatenate()([torch.randn(2, 4, 3), torch.randn(2, 5, 3)]), ValueError, "match on every axis but `axis`"),
    (lambda: Concatenate(axis=0)([torch.randn(2, 4, 3)] * 2), ValueError, "non-batch axis"),
    (lambda: Dot(2)([torch.randn(2, 4, 3), torch.randn(2, 4, 5)]), ValueError, r"x1.shape\[2\] = 3 must equal x2.shape\[2\] = 5"),
    (lambda: Dot(0), ValueError, None),
    (lambda: Dot((1, 2, 3)), ValueError, "`axes`"),
    (lambda: Dot("1"), ValueError, "`axes`"),
])
def test_merge_bad_input(call, error, match):
    if match is None:  # Dot(0) is only refused once the inputs' ranks are known
        with pytest.raises(ValueError, match="`axes`=0"):
            call()([torch.randn(2, 3), torch.randn(2, 3)])
        return
    with pytest.raises(error, match=match):
        call()
