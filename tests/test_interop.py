"""rnnkit.interop: layer <-> torch.nn / rnnkit.nn modules, and Keras's numpy layout, numerically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit.nn as rnn_nn
from rnnkit import interop
from rnnkit.keras.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN

F64 = torch.float64


def _perturbed(layer, x):
    """Build ``layer`` on ``x`` and move every weight off its initial value (biases too)."""
    layer(x)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


def _outputs(layer, x):
    out = layer(x)
    return out[0], out[1:]


LAYERS = {
    "lstm": lambda: LSTM(5, return_sequences=True, return_state=True, dtype=F64),
    "lstm_nobias": lambda: LSTM(5, use_bias=False, return_sequences=True, return_state=True, dtype=F64),
    "gru": lambda: GRU(5, return_sequences=True, return_state=True, dtype=F64),
    "rnn_tanh": lambda: SimpleRNN(5, return_sequences=True, return_state=True, dtype=F64),
    "rnn_relu": lambda: SimpleRNN(5, activation="relu", return_sequences=True, return_state=True, dtype=F64),
    "bilstm": lambda: Bidirectional(LSTM(5, return_sequences=True, return_state=True, dtype=F64)),
    "bigru": lambda: Bidirectional(GRU(5, return_sequences=True, return_state=True, dtype=F64)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("target", ["torch", "rnnkit"])
def test_layer_to_module_and_back_gives_the_same_function(name, target):
    x = torch.randn(3, 6, 4, dtype=F64)
    layer = _perturbed(LAYERS[name](), x)
    out, states = _outputs(layer, x)
    classes = {"lstm": rnn_nn.LSTM, "gru": rnn_nn.GRU, "rnn": rnn_nn.RNN}
    kind = name.replace("bi", "").split("_")[0]
    module = interop.to_torch(layer, classes[kind] if target == "rnnkit" else None)
    m_out, m_hidden = module(x)
    torch.testing.assert_close(m_out, out, rtol=1e-12, atol=1e-12)
    h_n = m_hidden[0] if kind == "lstm" else m_hidden
    D = h_n.shape[0]
    for d in range(D):  # h_n per direction = the layer's h of that direction
        torch.testing.assert_close(h_n[d], states[d * len(states) // D], rtol=1e-12, atol=1e-12)

    back = interop.from_torch(module, return_sequences=True, return_state=True)
    assert type(back) is type(layer) and back.count_params() == layer.count_params()
    b_out, b_states = _outputs(back, x)
    torch.testing.assert_close(b_out, out, rtol=1e-12, atol=1e-12)
    for a, b in zip(b_states, states):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_gradients_match_torch():
    x = torch.randn(2, 5, 3, dtype=F64, requires_grad=True)
    layer = _perturbed(Bidirectional(GRU(4, return_sequences=True, dtype=F64)), x.detach())
    module = interop.to_torch(layer)
    layer(x).pow(2).sum().backward()
    dx = x.grad.clone()
    x.grad = None
    module(x)[0].pow(2).sum().backward()
    torch.testing.assert_close(x.grad, dx, rtol=1e-10, atol=1e-12)
    grads = interop.layer_state_dict(layer)  # names only; compare the weight grads by name
    for key in grads:
        sub = layer.forward_layer if "reverse" not in key else layer.backward_layer
        ours = getattr(sub.cell, key.split("_l0")[0]).grad
        torch.testing.assert_close(getattr(module, key).grad, ours, rtol=1e-10, atol=1e-12)


def test_torch_biases_merge_into_one_keras_bias():
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, batch_first=True, dtype=F64)
    with torch.no_grad():
        module.bias_hh_l0.normal_()  # a non-zero second bias must fold into the single one
    layer = interop.from_torch(module, return_sequences=True)
    torch.testing.assert_close(layer.cell.bias_ih, module.bias_ih_l0 + module.bias_hh_l0)
    x = torch.randn(2, 5, 3, dtype=F64)
    torch.testing.assert_close(layer(x), module(x)[0], rtol=1e-12, atol=1e-12)
    sd = interop.layer_state_dict(layer)
    assert torch.equal(sd["bias_hh_l0"], torch.zeros(16, dtype=F64))  # split back as (b, 0)


@pytest.mark.parametrize("kwargs", [{"peephole": True}, {"layer_norm": True}])
def test_lstm_extras_convert_through_rnnkit_nn_only(kwargs):
    x = torch.randn(2, 5, 3, dtype=F64)
    layer = _perturbed(LSTM(4, return_sequences=True, dtype=F64, **kwargs), x)
    with pytest.raises(ValueError, match="rnnkit.nn.LSTM"):
        interop.to_torch(layer)
    module = interop.to_torch(layer, rnn_nn.LSTM)
    torch.testing.assert_close(module(x)[0], layer(x), rtol=1e-12, atol=1e-12)
    back = interop.from_torch(module, return_sequences=True)
    torch.testing.assert_close(back(x), layer(x), rtol=1e-12, atol=1e-12)


def test_gru_reset_before_converts_through_rnnkit_nn():
    x = torch.randn(2, 5, 3, dtype=F64)
    module = rnn_nn.GRU(3, 4, batch_first=True, reset_after=False, dtype=F64)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    layer = interop.from_torch(module, return_sequences=True)
    assert not layer.reset_after and layer.bias_mode == "single"  # b_ih + b_hh merged exactly
    torch.testing.assert_close(layer(x), module(x)[0], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="rnnkit.nn.GRU"):
        interop.to_torch(layer)


def test_conversion_errors():
    with pytest.raises(ValueError, match="num_layers=1"):
        interop.from_torch(torch.nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(TypeError, match="LSTM, GRU or RNN"):
        interop.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="not built"):
        interop.to_torch(LSTM(4))
    with pytest.raises(ValueError, match="go_backwards"):
        interop.to_torch(LSTM(4, go_backwards=True, input_shape=(None, 3)))
    with pytest.raises(ValueError, match="use_bias=False"):
        interop.load_layer_state_dict(LSTM(4, use_bias=False, input_shape=(None, 3)), torch.nn.LSTM(3, 4).state_dict())
    with pytest.raises(ValueError, match="shape"):
        interop.load_layer_state_dict(LSTM(5, input_shape=(None, 3)), torch.nn.LSTM(3, 4).state_dict())


# ------------------------------------------------------------------ Keras's numpy layout

def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def keras_reference(kind, weights, x, reset_after=True):
    """Keras's equations on Keras-layout arrays (kernel (F, G), recurrent (H, G); GRU gates z, r, h)."""
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else np.zeros(kernel.shape[1])
    H = recurrent.shape[0]
    B, T, _ = x.shape
    h, c = np.zeros((B, H)), np.zeros((B, H))
    outs = []
    for t in range(T):
        xt = x[:, t]
        if kind == "SimpleRNN":
            h = np.tanh(xt @ kernel + h @ recurrent + bias)
        elif kind == "LSTM":
            z = xt @ kernel + h @ recurrent + bias
            i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            b_in, b_rec = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
            mx = xt @ kernel + b_in
            xz, xr, xh = mx[:, :H], mx[:, H : 2 * H], mx[:, 2 * H :]
            if reset_after:
                mh = h @ recurrent + b_rec
                z, r = _sigmoid(xz + mh[:, :H]), _sigmoid(xr + mh[:, H : 2 * H])
                hh = np.tanh(xh + r * mh[:, 2 * H :])
            else:
                z = _sigmoid(xz + h @ recurrent[:, :H])
                r = _sigmoid(xr + h @ recurrent[:, H : 2 * H])
                hh = np.tanh(xh + (r * h) @ recurrent[:, 2 * H :])
            h = z * h + (1 - z) * hh
        outs.append(h)
    return np.stack(outs, 1)


@pytest.mark.parametrize(
    "kind,kwargs",
    [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("LSTM", {"use_bias": False})],
)
def test_keras_weights_match_keras_equations(kind, kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 3))
    H, gates = 4, {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]
    G = gates * H
    weights = [rng.standard_normal((3, G)) * 0.5, rng.standard_normal((H, G)) * 0.5]
    if kwargs.get("use_bias", True):
        two = kind == "GRU" and kwargs.get("reset_after", True)
        weights.append(rng.standard_normal((2, G) if two else (G,)) * 0.5)
    layer = interop.from_keras_weights(kind, weights, return_sequences=True, dtype=F64, **kwargs)
    expected = keras_reference(kind, weights, x, reset_after=kwargs.get("reset_after", True))
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    for a, b in zip(interop.get_keras_weights(layer), weights):
        np.testing.assert_array_equal(a, b)


def test_keras_weights_through_torch_module():
    # A Keras-trained GRU's arrays -> rnnkit layer -> torch.nn.GRU: the same function.
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal((3, 12)), rng.standard_normal((4, 12)), rng.standard_normal((2, 12))]
    layer = interop.from_keras_weights("GRU", weights, return_sequences=True, dtype=F64)
    x = rng.standard_normal((2, 5, 3))
    module = interop.to_torch(layer)
    np.testing.assert_allclose(module(torch.from_numpy(x))[0].detach().numpy(), keras_reference("GRU", weights, x),
                               rtol=1e-10, atol=1e-12)


def test_bidirectional_and_dense_keras_weights():
    bi = Bidirectional(LSTM(3), input_shape=(None, 2))
    weights = bi.get_weights()
    assert [w.shape for w in weights] == [(2, 12), (3, 12), (12,)] * 2
    other = Bidirectional(LSTM(3))
    interop.set_keras_weights(other, weights)
    x = torch.randn(2, 4, 2)
    torch.testing.assert_close(other(x), bi(x))
    dense = Dense(3)
    interop.set_keras_weights(dense, [np.ones((2, 3)), np.arange(3.0)])
    torch.testing.assert_close(dense(torch.ones(1, 2)), torch.tensor([[2.0, 3.0, 4.0]]))


def test_keras_weights_errors():
    with pytest.raises(ValueError, match="kind"):
        interop.from_keras_weights("Conv1D", [np.ones((2, 2)), np.ones((2, 2))])
    layer = LSTM(3, input_shape=(None, 2))
    with pytest.raises(ValueError, match=r"shape \(12, 2\)"):
        layer.set_weights([np.ones((5, 12)), np.ones((3, 12)), np.ones(12)])
    with pytest.raises(ValueError, match="peephole"):
        LSTM(3, peephole=True, input_shape=(None, 2)).get_weights()
