"""torch.compile(fullgraph=True) on rnnkit.nn modules and Keras-front models: no graph break,
no warning, and the same outputs and gradients as eager.

Most cases compile with the "aot_eager" backend: Dynamo captures the whole forward (fullgraph)
and AOTAutograd traces forward and backward through the engine's operators with fake tensors,
which is what this checks; Inductor's code generation adds minutes of compile time and nothing
about rnnkit. One case runs the default Inductor backend end to end.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.engine import library

DTYPE = torch.float64
B, T, F, H = 3, 5, 4, 6

# name -> (module class, constructor keywords)
MODULES = {
    "rnn_tanh": (rnn.RNN, {}),
    "rnn_relu_bi2": (rnn.RNN, {"nonlinearity": "relu", "bidirectional": True, "num_layers": 2}),
    "lstm": (rnn.LSTM, {}),
    "lstm_fused": (rnn.LSTM, {"implementation": "fused"}),  # traced, it runs the engine's operators too
    "lstm_bi2": (rnn.LSTM, {"bidirectional": True, "num_layers": 2}),
    "lstm_options": (rnn.LSTM, {"peephole": True, "layer_norm": True, "zoneout": 0.2, "tbptt": 2}),
    "lstm_proj_bi": (rnn.LSTM, {"proj_size": 3, "bidirectional": True}),  # the Python loop's operators
    "gru": (rnn.GRU, {}),
    "gru_bi2": (rnn.GRU, {"bidirectional": True, "num_layers": 2}),
    "gru_reset_before": (rnn.GRU, {"reset_after": False, "recurrent_dropout": 0.3}),
}


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F, dtype=DTYPE, generator=g)
    return x, torch.tensor([T, 2, 4])


def _run(module, x, lengths, seed: int = 5):
    """Output, final state and every gradient, with the same random draws (dropout, zoneout) each time."""
    torch.manual_seed(seed)
    x = x.detach().clone().requires_grad_(True)
    out, state = module(x, lengths=lengths) if lengths is not None else module(x)
    finals = state if isinstance(state, tuple) else (state,)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=DTYPE)).square().sum() + sum(s.sum() for s in finals)
    grads = torch.autograd.grad(loss, [x, *module.parameters()])
    return [out.detach(), *(s.detach() for s in finals), *grads]


def _assert_close(got, expected):
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m: f"tensor {i}: {m}")


def _compile_quietly(module, backend="aot_eager", **kwargs):
    return torch.compile(module, fullgraph=True, backend=backend, **kwargs)


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "lengths"])
@pytest.mark.parametrize("name", list(MODULES))
def test_fullgraph_compile_equals_eager(name, masked):
    cls, kwargs = MODULES[name]
    torch.manual_seed(0)
    module = cls(F, H, batch_first=True, dtype=DTYPE, **kwargs)
    x, lengths = _inputs()
    lengths = lengths if masked else None
    expected = _run(module, x, lengths)
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _run(_compile_quietly(module), x, lengths)
    ours = [w for w in caught if "rnnkit" in str(w.filename) or "rnnkit" in str(w.message)]
    assert not ours, [str(w.message) for w in ours]
    _assert_close(got, expected)


def test_compile_traces_the_operators_not_the_loops():
    # The captured graph holds rnnkit's operators: the loops themselves are never traced.
    module = rnn.LSTM(F, H, batch_first=True, dtype=DTYPE)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    x, lengths = _inputs()
    torch.compile(module, fullgraph=True, backend=backend)(x, lengths=lengths)
    targets = {str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"}
    assert any("rnnkit.compiled_forward" in t for t in targets), targets


def test_inductor_train_step_with_dynamic_batch_and_time_equals_eager():
    torch.manual_seed(0)
    module = rnn.GRU(F, H, num_layers=2, bidirectional=True, batch_first=True, dtype=DTYPE)
    compiled = torch.compile(module, fullgraph=True, dynamic=True)
    for b, t in ((3, 5), (2, 7)):
        x = torch.randn(b, t, F, dtype=DTYPE)
        lengths = torch.randint(1, t + 1, (b,))
        _assert_close(_run(compiled, x, lengths), _run(module, x, lengths))


def test_keras_models_compile_fullgraph():
    from rnnkit import keras

    torch.manual_seed(0)
    seq = keras.Sequential([keras.layers.Embedding(20, 5, mask_zero=True),
                            keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True)),
                            keras.layers.GRU(4), keras.layers.Dense(2)])

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = keras.layers.SimpleRNN(5, return_sequences=True)
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.rnn(x))

    sub = Subclassed()
    ids = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    feats = torch.randn(2, 5, 3)
    for model, x in ((seq, ids), (sub, feats)):
        model(x)  # build
        model.eval()
        expected = model(x)
        got = torch.compile(model, fullgraph=True, backend="aot_eager")(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
