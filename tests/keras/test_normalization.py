"""LayerNormalization and BatchNormalization against Keras's equations written out in NumPy.

Keras 3 (keras/src/layers/normalization/*.py): y = gamma (x - mean) / sqrt(var + eps) + beta with
the biased variance; BatchNormalization's moving statistics follow
moving = momentum * moving + (1 - momentum) * batch, with the batch's biased variance, and a
(B, T) mask weights the batch moments (count + 1e-7 in the denominator).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import Sequential
from rnnkit.keras.layers import BatchNormalization, Dense, LayerNormalization, deserialize, serialize

F64 = torch.float64
rng = np.random.default_rng(0)


def layer_norm_np(x, axes, gamma, beta, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@pytest.mark.parametrize("kwargs, axes", [
    ({}, (2,)),
    ({"axis": [1, 2]}, (1, 2)),
    ({"axis": 1}, (1,)),
    ({"axis": -2, "center": False}, (1,)),
    ({"scale": False, "epsilon": 1e-5}, (2,)),
])
def test_layer_normalization_matches_numpy(kwargs, axes):
    x = rng.standard_normal((3, 5, 4)) * 3 + 1
    layer = LayerNormalization(**kwargs, dtype="float64")
    xt = torch.tensor(x, requires_grad=True)
    layer(xt)
    for p in layer.parameters():
        p.data.copy_(torch.tensor(rng.standard_normal(tuple(p.shape))))
    gamma = layer.gamma.detach().numpy() if layer.gamma is not None else None
    beta = layer.beta.detach().numpy() if layer.beta is not None else None
    y = layer(xt)
    np.testing.assert_allclose(y.detach().numpy(), layer_norm_np(x, axes, gamma, beta, layer.epsilon), rtol=1e-10, atol=1e-12)
    params = tuple(p for p in (layer.gamma, layer.beta) if p is not None)
    names = [n for n, p in (("gamma", layer.gamma), ("beta", layer.beta)) if p is not None]
    assert torch.autograd.gradcheck(
        lambda x, *ps: torch.func.functional_call(layer, dict(zip(names, ps)), (x,)), (xt, *params)
    )


def test_layer_normalization_defaults_weights_and_masks():
    layer = LayerNormalization()
    assert (layer.axis, layer.epsilon, layer.center, layer.scale) == (-1, 1e-3, True, True)
    x = torch.randn(2, 5, 4)
    mask = torch.ones(2, 5, dtype=torch.bool)
    layer(x)
    assert [w.shape for w in layer.get_weights()] == [(4,), (4,)]
    assert np.all(layer.get_weights()[0] == 1) and np.all(layer.get_weights()[1] == 0)
    assert layer.compute_mask(x, mask) is mask
    assert layer.compute_output_shape((None, None, 4)) == (None, None, 4)
    copy = deserialize(serialize(LayerNormalization(axis=[1, 2], epsilon=1e-5)))
    assert copy.axis == [1, 2] and copy.epsilon == 1e-5


def batch_norm_np(x, mean, var, gamma, beta, eps):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def test_batch_normalization_training_inference_and_moving_statistics():
    x = rng.standard_normal((4, 6, 3)) * 2 + 5
    layer = BatchNormalization(momentum=0.9, epsilon=1e-3, dtype="float64")
    xt = torch.tensor(x)
    layer(xt, training=False)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    mm, mv = rng.standard_normal(3), rng.random(3) + 0.5
    layer.set_weights([gamma, beta, mm, mv])
    # Inference: the moving statistics, unchanged.
    np.testing.assert_allclose(layer(xt, training=False).detach().numpy(), batch_norm_np(x, mm, mv, gamma, beta, 1e-3), rtol=1e-12)
    np.testing.assert_allclose(layer.get_weights()[2], mm)
    # Training: the batch's moments over (B, T), the biased variance; then Keras's momentum update.
    mean, var = x.mean(axis=(0, 1)), x.var(axis=(0, 1))
    y = layer(xt, training=True)
    np.testing.assert_allclose(y.detach().numpy(), batch_norm_np(x, mean, var, gamma, beta, 1e-3), rtol=1e-10)
    np.testing.assert_allclose(layer.get_weights()[2], 0.9 * mm + 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.get_weights()[3], 0.9 * mv + 0.1 * var, rtol=1e-12)


def test_batch_normalization_masked_moments():
    x = rng.standard_normal((3, 5, 2))
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    layer = BatchNormalization(momentum=0.5, dtype="float64")
    y = layer(torch.tensor(x), mask=torch.tensor(mask), training=True)
    real = x[mask]  # (n, F)
    mean, var = real.sum(0) / (len(real) + 1e-7), ((real - real.mean(0)) ** 2).sum(0) / (len(real) + 1e-7)
    np.testing.assert_allclose(y.detach().numpy(), (x - mean) / np.sqrt(var + 1e-3), rtol=1e-7)
    np.testing.assert_allclose(layer.get_weights()[2], 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.get_weights()[3], 0.5 + 0.5 * var, rtol=1e-12)


def test_batch_normalization_gradients_match_the_numpy_formula_through_autograd():
    xt = torch.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    layer = BatchNormalization(dtype="float64")
    layer(xt, training=False)
    g, b = layer.gamma, layer.beta
    g.data.uniform_(0.5, 1.5)
    b.data.normal_()

    def fwd(x, gamma, beta):
        return torch.func.functional_call(layer, {"gamma": gamma, "beta": beta}, (x,), {"training": True})

    assert torch.autograd.gradcheck(fwd, (xt, g.detach().requires_grad_(), b.detach().requires_grad_()))


def test_batch_normalization_weights_counts_trainability_and_the_optimiser():
    layer = BatchNormalization()
    model = Sequential([Dense(3, input_shape=(4,)), layer])
    model.compile(optimizer="adam", loss="mse")
    assert layer.count_params() == 4 * 3  # Keras 3: 12 (gamma, beta, moving mean, moving variance)
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 6" in lines[-2]
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["gamma", "beta"]
    layer.trainable = True  # re-enabling never makes the statistics trainable
    assert not layer.moving_mean.requires_grad and not layer.moving_variance.requires_grad
    x, y = np.random.default_rng(1).standard_normal((32, 4)).astype("float32"), np.zeros((32, 3), "float32")
    before = layer.get_weights()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = layer.get_weights()
    assert not np.allclose(before[2], after[2])  # moving mean updated by the forward pass
    np.testing.assert_array_equal(before[3] != after[3], True)


def test_batch_normalization_frozen_runs_in_inference_mode():
    layer = BatchNormalization(trainable=False, dtype="float64")
    x = torch.tensor(rng.standard_normal((4, 3)) * 3 + 2)
    layer(x)
    before = layer.get_weights()
    y = layer(x, training=True)  # Keras: a frozen BatchNormalization normalises with its moving statistics
    np.testing.assert_allclose(y.detach().numpy(), x.numpy() / np.sqrt(1 + 1e-3), rtol=1e-12)
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [lambda: BatchNormalization(), lambda: BatchNormalization(axis=1),
                                  lambda: LayerNormalization(), lambda: LayerNormalization(axis=[1, -1])])
def test_normalization_state_dict_loads_before_the_layer_sees_data(make):
    layer, fresh = make(), make()
    x = torch.randn(4, 5, 3)
    layer(x, training=True)
    fresh.load_state_dict(layer.state_dict())
    for a, b in zip(layer.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(fresh(x, training=False), layer(x, training=False))


@pytest.mark.parametrize("make, error, match", [
    (lambda: LayerNormalization(axis="last"), TypeError, "`axis`"),
    (lambda: LayerNormalization(epsilon=0), ValueError, "`epsilon`"),
    (lambda: BatchNormalization(momentum=1.5), ValueError, "`momentum`"),
    (lambda: BatchNormalization(axis=1.0), TypeError, "`axis`"),
    (lambda: BatchNormalization(center="yes"), TypeError, "`center`"),
])
def test_normalization_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_normalization_bad_inputs():
    with pytest.raises(ValueError, match="`axis`=3"):
        LayerNormalization(axis=3)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="`axis`=0"):
        BatchNormalization(axis=0)(torch.randn(2, 3))
    bn = BatchNormalization()
    bn(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="3 features on `axis`=-1"):
        bn(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 5\)"):
        bn(torch.randn(2, 5, 3), mask=torch.ones(2, 4, dtype=torch.bool))
    ln = LayerNormalization()
    ln(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"built for sizes \(3,\) on `axis`=-1"):
        ln(torch.randn(2, 5, 4))
