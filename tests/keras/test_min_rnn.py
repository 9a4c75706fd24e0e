"""``rnnkit.keras.layers.MinGRU`` / ``MinLSTM``: the Keras front over the parallel mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit.keras as keras
from rnnkit.diagnostics import gradient_flow

from ..min_rnn_reference import reference_layer

DT = torch.float64
LAYERS = {"mingru": keras.layers.MinGRU, "minlstm": keras.layers.MinLSTM}


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_equals_the_reference_with_mask_and_initial_state(kind, go_backwards):
    torch.manual_seed(0)
    layer = LAYERS[kind](5, return_sequences=True, return_state=True, go_backwards=go_backwards, dtype="float64")
    x = torch.randn(3, 8, 4, dtype=DT, requires_grad=True)
    h0 = torch.randn(3, 5, dtype=DT, requires_grad=True)
    mask = torch.arange(8)[None] < torch.tensor([8, 5, 2])[:, None]
    out, h = layer(x, mask=mask, initial_state=[h0])
    ref_out, ref_h = reference_layer(kind, x, layer.cell.weight_ih, layer.cell.bias_ih, h0, mask, go_backwards)
    torch.testing.assert_close(out, ref_out.flip(1) if go_backwards else ref_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, ref_h, rtol=1e-10, atol=1e-12)
    params = [x, h0, *layer.parameters()]
    got = torch.autograd.grad((out ** 2).sum() + h.sum(), params)
    want = torch.autograd.grad((ref_out ** 2).sum() + ref_h.sum(), params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    last = LAYERS[kind](5, go_backwards=go_backwards, dtype="float64")  # the output of the last real step
    last.set_weights(layer.get_weights())
    torch.testing.assert_close(last(x, mask=mask, initial_state=[h0]), ref_h, rtol=1e-10, atol=1e-12)


def test_masking_layer_and_sequential_fit_with_tbptt_carry_state():
    np.random.seed(0)
    x = np.random.randn(32, 20, 3).astype("float32")
    x[:8, 15:] = 0.0  # padded tails, masked by Masking
    y = x.sum(axis=(1, 2))[:, None]
    model = keras.Sequential([keras.layers.Input(shape=(20, 3)), keras.layers.Masking(0.0),
                              keras.layers.MinGRU(8, return_sequences=True), keras.layers.MinLSTM(8),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, tbptt=5)
    after = model.evaluate(x, y, verbose=0)
    assert after < before
    assert model.layers[1].count_params() == 3 * 16 + 16  # kernel (F, 2H) + bias (2H,)


def test_stateful_layer_carries_its_state_between_calls():
    layer = keras.layers.MinLSTM(4, stateful=True, dtype="float64")
    x = torch.randn(2, 10, 3, dtype=DT)
    whole = keras.layers.MinLSTM(4, dtype="float64")
    whole(x)
    layer(x[:, :1])
    layer.set_weights(whole.get_weights())
    layer.reset_states()
    layer(x[:, :6])
    second = layer(x[:, 6:])
    torch.testing.assert_close(second, whole(x), rtol=1e-12, atol=1e-12)


def test_config_round_trip_and_saved_model(tmp_path):
    layer = keras.layers.MinGRU(6, return_sequences=True, go_backwards=True, tbptt=4, backend="python",
                                input_shape=(5, 2))
    clone = keras.layers.MinGRU.from_config(layer.get_config())
    assert clone.get_config()["backend"] == "python" and clone.go_backwards and clone.tbptt == 4
    model = keras.Sequential([keras.layers.Input(shape=(5, 2)), keras.layers.MinLSTM(3), keras.layers.Dense(1)])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.randn(4, 5, 2).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_gradient_flow_sees_the_layer():
    model = keras.Sequential([keras.layers.Input(shape=(7, 2)), keras.layers.MinGRU(4, name="mg"),
                              keras.layers.Dense(1)])
    flow = gradient_flow(model, np.random.randn(3, 7, 2).astype("float32"), np.zeros((3, 1), "float32"))
    assert list(flow) == ["mg"] and flow["mg"].h.shape == (7,)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="units"):
        keras.layers.MinGRU(0)
    with pytest.raises(ValueError, match="kernel_initializer"):
        keras.layers.MinGRU(3, kernel_initializer="nope")
    with pytest.raises(ValueError, match="backend"):
        keras.layers.MinLSTM(3, backend="gpu")
    layer = keras.layers.MinGRU(3)
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(2, 4, 1, dtype=torch.long))
    layer(torch.zeros(2, 4, 1))
    with pytest.raises(ValueError, match=r"\(B, T, 1\)"):
        layer(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="`mask`"):
        layer(torch.zeros(2, 4, 1), mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="initial_state"):
        layer(torch.zeros(2, 4, 1), initial_state=[torch.zeros(2, 4)])
    with pytest.raises(ValueError, match="T >= 1"):
        layer(torch.zeros(2, 0, 1))


def test_bidirectional_wrapper_runs_a_forward_and_a_go_backwards_copy():
    torch.manual_seed(1)
    layer = keras.layers.Bidirectional(keras.layers.MinGRU(4, return_sequences=True, dtype="float64"))
    x = torch.randn(2, 6, 3, dtype=DT)
    mask = torch.arange(6)[None] < torch.tensor([6, 4])[:, None]
    out = layer(x, mask=mask)
    fw, bw = layer.forward_layer.cell, layer.backward_layer.cell
    ref_f, _ = reference_layer("mingru", x, fw.weight_ih, fw.bias_ih, None, mask, False)
    ref_b, _ = reference_layer("mingru", x, bw.weight_ih, bw.bias_ih, None, mask, True)
    torch.testing.assert_close(out, torch.cat([ref_f, ref_b], 2), rtol=1e-10, atol=1e-12)
