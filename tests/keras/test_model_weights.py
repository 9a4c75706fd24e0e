"""Model.get_weights/set_weights in Keras's layout: each layer's get_weights(), in layers order."""

import numpy as np
import pytest
import torch

import rnnkit.keras as keras
from rnnkit.keras import layers


def _two_input_model():
    ids = keras.Input(shape=(None,), dtype="int32")
    aux = keras.Input(shape=(3,))
    h = layers.LSTM(4)(layers.Embedding(10, 5, mask_zero=True)(ids))
    out = layers.Dense(2)(layers.Concatenate()([h, aux]))
    return keras.Model([ids, aux], out)


def test_model_weights_are_the_layers_keras_weights_in_order():
    model = _two_input_model()
    expected = [w for layer in model.layers for w in layer.get_weights()]
    got = model.get_weights()
    # Embedding (V, E); LSTM kernel (E, 4H), recurrent kernel (H, 4H), bias (4H,); Dense (in, out), (out,)
    assert [w.shape for w in got] == [(10, 5), (5, 16), (4, 16), (16,), (7, 2), (2,)]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_set_weights_round_trips_into_another_model():
    a, b = _two_input_model(), _two_input_model()
    b.set_weights(a.get_weights())
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    aux = torch.randn(2, 3)
    assert torch.equal(a([ids, aux]), b([ids, aux]))


def test_a_layer_keras_has_no_layout_for_gives_its_parameters():
    model = keras.Sequential([keras.Input(shape=(None, 3)), layers.LSTM(4, peephole=True), layers.Dense(1)])
    weights = model.get_weights()
    lstm_params = [p.detach().numpy() for p in model.layers[0].parameters()]
    assert len(weights) == len(lstm_params) + 2
    assert all(np.array_equal(a, b) for a, b in zip(weights, lstm_params))
    other = keras.Sequential([keras.Input(shape=(None, 3)), layers.LSTM(4, peephole=True), layers.Dense(1)])
    other.set_weights(weights)
    x = torch.randn(2, 5, 3)
    assert torch.equal(model(x), other(x))


def test_set_weights_names_the_count_and_the_shape():
    model = _two_input_model()
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"expected 6 arrays \(as get_weights gives\), got 5"):
        model.set_weights(weights[:5])
