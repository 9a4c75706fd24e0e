"""Shape layers (ZeroPadding1D, Cropping1D, UpSampling1D, Reshape, Permute, Flatten), noise layers
and Lambda, against NumPy; shapes with None dims; masks; saving a Lambda honestly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import Sequential, load_model
from rnnkit.keras.layers import (
    LSTM,
    Cropping1D,
    Dense,
    Flatten,
    GaussianDropout,
    GaussianNoise,
    Lambda,
    Permute,
    Reshape,
    SpatialDropout1D,
    UpSampling1D,
    ZeroPadding1D,
    deserialize,
    register_function,
    serialize,
)

F64 = torch.float64


def x_np(shape=(2, 5, 3), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("layer, ref, shape_in, shape_out", [
    (ZeroPadding1D(), lambda a: np.pad(a, ((0, 0), (1, 1), (0, 0))), (None, None, 3), (None, None, 3)),
    (ZeroPadding1D((2, 0)), lambda a: np.pad(a, ((0, 0), (2, 0), (0, 0))), (None, 5, 3), (None, 7, 3)),
    (ZeroPadding1D(1, data_format="channels_first"), lambda a: np.pad(a, ((0, 0), (0, 0), (1, 1))), (None, 5, 3), (None, 5, 5)),
    (Cropping1D(), lambda a: a[:, 1:-1], (None, 5, 3), (None, 3, 3)),
    (Cropping1D((0, 2)), lambda a: a[:, :-2], (None, None, 3), (None, None, 3)),
    (UpSampling1D(), lambda a: np.repeat(a, 2, axis=1), (None, 5, 3), (None, 10, 3)),
    (UpSampling1D(3), lambda a: np.repeat(a, 3, axis=1), (None, None, 3), (None, None, 3)),
    (Reshape((15,)), lambda a: a.reshape(2, 15), (None, 5, 3), (None, 15)),
    (Reshape((3, -1)), lambda a: a.reshape(2, 3, 5), (None, 5, 3), (None, 3, 5)),
    (Reshape((-1, 1)), lambda a: a.reshape(2, 15, 1), (None, None, 3), (None, None, 1)),
    (Permute((2, 1)), lambda a: a.transpose(0, 2, 1), (None, None, 3), (None, 3, None)),
    (Flatten(), lambda a: a.reshape(2, -1), (None, 5, 3), (None, 15)),
    (Flatten(), lambda a: a.reshape(2, -1), (None, None, 3), (None, None)),
    (Flatten(data_format="channels_first"), lambda a: a.transpose(0, 2, 1).reshape(2, -1), (None, 5, 3), (None, 15)),
])
def test_shape_layers_match_numpy(layer, ref, shape_in, shape_out):
    a = x_np()
    y = layer(torch.tensor(a))
    np.testing.assert_array_equal(y.numpy(), ref(a))
    assert layer.compute_output_shape(shape_in) == shape_out
    assert layer.count_params() == 0
    # Keras 3 passes no mask through these layers.
    assert layer.compute_mask(torch.tensor(a), torch.ones(2, 5, dtype=torch.bool)) is None
    assert deserialize(serialize(layer)).get_config() == layer.get_config()


def test_shape_layers_pass_gradients_through():
    x = torch.randn(2, 5, 3, dtype=F64, requires_grad=True)
    for layer in (ZeroPadding1D(2), Cropping1D(1), UpSampling1D(2), Reshape((-1,)), Permute((2, 1))):
        assert torch.autograd.gradcheck(layer, (x,))


@pytest.mark.parametrize("make, match", [
    (lambda: ZeroPadding1D(-1), "`padding`"),
    (lambda: ZeroPadding1D((1, 2, 3)), "`padding`"),
    (lambda: Cropping1D("1"), "`cropping`"),
    (lambda: UpSampling1D(0), "`size`"),
    (lambda: Reshape((0, 3)), "`target_shape`"),
    (lambda: Reshape((-1, -1)), "`target_shape`"),
    (lambda: Permute((0, 1)), "`dims`"),
    (lambda: Permute((1, 1)), "`dims`"),
    (lambda: Flatten(data_format="NCW"), "`data_format`"),
])
def test_shape_layers_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shape_layers_bad_inputs():
    with pytest.raises(ValueError, match=r"`cropping` \(2, 3\) must leave at least one of the 5 time steps"):
        Cropping1D((2, 3))(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="`target_shape` \\(4,\\)"):
        Reshape((4,))(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="not divisible by 4"):
        Reshape((4, -1))(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="rank 3"):
        Permute((2, 1))(torch.randn(2, 5, 3, 1))
    with pytest.raises(ValueError, match=r"\(B, T, F\) \(rank 3\)"):
        UpSampling1D()(torch.randn(2, 5))


# ------------------------------------------------------------------ noise


def test_spatial_dropout_drops_whole_channels_for_the_whole_sequence():
    torch.manual_seed(0)
    layer = SpatialDropout1D(0.5)
    x = torch.ones(64, 7, 5)
    y = layer(x, training=True)
    kept = y[:, 0, :] != 0  # (B, F)
    assert torch.all((y != 0) == kept[:, None, :])  # same channels at every step
    assert torch.allclose(y[y != 0], torch.tensor(2.0))
    assert 0.35 < kept.float().mean() < 0.65
    torch.testing.assert_close(layer(x, training=False), x)
    mask = torch.ones(64, 7, dtype=torch.bool)
    assert layer.compute_mask(x, mask) is mask


def test_gaussian_noise_and_dropout_statistics_and_inference():
    torch.manual_seed(1)
    x = torch.full((200, 50, 4), 3.0, dtype=F64)
    noisy = GaussianNoise(0.5)(x, training=True) - x
    assert abs(noisy.mean().item()) < 0.01 and abs(noisy.std().item() - 0.5) < 0.01
    factor = GaussianDropout(0.2)(x, training=True) / x
    assert abs(factor.mean().item() - 1) < 0.01 and abs(factor.std().item() - (0.2 / 0.8) ** 0.5) < 0.01
    for layer in (GaussianNoise(0.5), GaussianDropout(0.2)):
        torch.testing.assert_close(layer(x, training=False), x)
        layer.eval()
        torch.testing.assert_close(layer(x), x)


def test_noise_bad_arguments():
    with pytest.raises(ValueError, match="`stddev`"):
        GaussianNoise(1.5)
    with pytest.raises(ValueError, match="`rate`"):
        SpatialDropout1D(1.0)
    with pytest.raises(ValueError, match=r"\(B, T, F\)"):
        SpatialDropout1D(0.5)(torch.randn(2, 3), training=True)


# ------------------------------------------------------------------ Lambda


@register_function
def last_step(x):
    return x[:, -1]


@register_function(name="tests.scale_by")
def scale_by(x, factor=1.0):
    return x * factor


@register_function
def keep_mask(inputs, mask):
    return mask


def test_lambda_calls_the_function_with_arguments_mask_and_training():
    seen = {}

    def fn(x, mask=None, training=None, k=0):
        seen.update(mask=mask, training=training, k=k)
        return x + k

    layer = Lambda(fn, arguments={"k": 2})
    x = torch.randn(2, 3, 4)
    m = torch.ones(2, 3, dtype=torch.bool)
    torch.testing.assert_close(layer(x, mask=m, training=False), x + 2)
    assert seen["mask"] is m and seen["training"] is False and seen["k"] == 2
    assert layer.compute_mask(x, m) is None  # no mask function: the mask stops here
    with_mask = Lambda(lambda t: t, mask=keep_mask)
    assert with_mask.compute_mask(x, m) is m


def test_lambda_output_shape_inferred_given_or_computed():
    assert Lambda(last_step).compute_output_shape((None, None, 4)) == (None, 4)
    assert Lambda(lambda t: t.reshape(t.shape[0], -1)).compute_output_shape((None, 3, 4)) == (None, 12)
    assert Lambda(lambda t: torch.cat([t, t], 1)).compute_output_shape((None, None, 4)) == (None, None, 4)
    assert Lambda(last_step, output_shape=(7,)).compute_output_shape((None, 3, 4)) == (None, 7)
    assert Lambda(last_step, output_shape=lambda s: (s[0], 1)).compute_output_shape((5, 3, 4)) == (5, 1)

    def fails(t):
        return t.numpy()  # meta tensors have no data

    with pytest.raises(NotImplementedError, match="`output_shape="):
        Lambda(fails).compute_output_shape((None, 3))


def test_lambda_saves_registered_functions_by_name_and_never_stores_code(tmp_path):
    torch.manual_seed(2)
    model = Sequential([LSTM(4, return_sequences=True), Lambda(last_step), Lambda(scale_by, arguments={"factor": 3.0}), Dense(1)])
    x = torch.randn(2, 5, 3)
    y = model(x)
    config = model.get_config()
    lambdas = [layer["config"] for layer in config["layers"] if layer["class_name"] == "Lambda"]
    assert lambdas[0]["function"] == f"{__name__}.last_step"
    assert lambdas[1]["function"] == "tests.scale_by" and lambdas[1]["arguments"] == {"factor": 3.0}
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    torch.testing.assert_close(loaded(x), y)


def test_lambda_with_a_python_lambda_refuses_to_save_and_an_unknown_name_refuses_to_load(tmp_path):
    layer = Lambda(lambda t: t * 2)
    with pytest.raises(ValueError, match="a Python lambda, which is not registered.*register_function"):
        layer.get_config()
    model = Sequential([Dense(2), layer])
    model(torch.randn(1, 3))
    with pytest.raises(ValueError, match="not registered"):
        model.save(tmp_path / "m.safetensors")
    model.save_weights(tmp_path / "w.safetensors")  # weights alone are fine
    with pytest.raises(ValueError, match="'nowhere.fn' is not a registered function"):
        Lambda.from_config({"function": "nowhere.fn"})
    with pytest.raises(ValueError, match="lambdas and nested functions"):
        register_function(lambda t: t)
    with pytest.raises(ValueError, match="already registered"):
        register_function(lambda t: t, name="tests.scale_by")


def test_lambda_bad_arguments():
    with pytest.raises(TypeError, match="`function`"):
        Lambda(3)
    with pytest.raises(TypeError, match="`output_shape`"):
        Lambda(last_step, output_shape="(3,)")
    with pytest.raises(TypeError, match="`mask`"):
        Lambda(last_step, mask=True)
    with pytest.raises(TypeError, match="`arguments`"):
        Lambda(last_step, arguments=[1])
