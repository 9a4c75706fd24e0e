"""ONNX export: every layer type, checked against onnxruntime on random inputs of several shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.keras import layers
from rnnkit.keras.export import UnsupportedForExport, export_onnx
from rnnkit.keras.layers.activations import ACTIVATIONS
from rnnkit.keras.models import Model, Sequential

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-5


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def ids(B: int, T: int, vocab: int = 20, seed: int = 0, pad: bool = True) -> np.ndarray:
    """Token ids with right padding (rows of several lengths, one full row)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(B, T))
    if pad:
        for i in range(1, B):
            x[i, rng.integers(1, T + 1):] = 0
    return x


def floats(B: int, T: int, F: int, seed: int = 0, pad: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, F)).astype("float32")
    if pad:
        for i in range(1, B):
            x[i, rng.integers(1, T + 1):] = 0.0
    return x


def check(model: Sequential, inputs: list[np.ndarray], tmp_path, tol: float = TOL) -> object:
    path = tmp_path / "model.onnx"
    proto = model.export_onnx(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in inputs:  # one graph, several batch sizes and sequence lengths
        expected = model.predict(x, verbose=0)
        got = session.run(["output"], {"input": x})[0]
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    return proto


def token_inputs() -> list[np.ndarray]:
    return [ids(5, 9, seed=1), ids(2, 4, seed=2), ids(7, 13, seed=3)]


def float_inputs(F: int = 3, pad: bool = False) -> list[np.ndarray]:
    return [floats(5, 9, F, 1, pad), floats(1, 3, F, 2, pad), floats(6, 14, F, 3, pad)]


# -- recurrent layers: every kind, direction, output, mask ---------------------------------

RNNS = {
    "simple_tanh": lambda **kw: layers.SimpleRNN(6, **kw),
    "simple_relu": lambda **kw: layers.SimpleRNN(6, activation="relu", **kw),
    "lstm": lambda **kw: layers.LSTM(6, **kw),
    "lstm_nobias": lambda **kw: layers.LSTM(6, use_bias=False, **kw),
    "lstm_peephole": lambda **kw: layers.LSTM(6, peephole=True, **kw),
    "lstm_hard_sigmoid": lambda **kw: layers.LSTM(6, recurrent_activation="hard_sigmoid", **kw),
    "gru_reset_after": lambda **kw: layers.GRU(6, **kw),
    "gru_reset_before": lambda **kw: layers.GRU(6, reset_after=False, **kw),
    "gru_nobias": lambda **kw: layers.GRU(6, use_bias=False, **kw),
    "gru_linear": lambda **kw: layers.GRU(6, activation=None, **kw),
}


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", sorted(RNNS))
def test_recurrent_layers_with_masks(kind, return_sequences, go_backwards, tmp_path):
    rnn = RNNS[kind](return_sequences=return_sequences, go_backwards=go_backwards, dropout=0.3, recurrent_dropout=0.2)
    head = [layers.TimeDistributed(layers.Dense(2))] if return_sequences else [layers.Dense(2)]
    model = Sequential([layers.Embedding(20, 4, mask_zero=True), rnn, *head])
    model.build((None, None))
    check(model, token_inputs(), tmp_path)


@pytest.mark.parametrize("kind", ["simple_tanh", "lstm_peephole", "gru_reset_before"])
def test_recurrent_layers_on_float_inputs_without_mask(kind, tmp_path):
    model = Sequential([layers.Input(shape=(None, 3)), RNNS[kind](return_sequences=True), layers.Dense(1)])
    check(model, float_inputs(), tmp_path)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(merge_mode, return_sequences, tmp_path):
    model = Sequential([
        layers.Embedding(20, 4, mask_zero=True),
        layers.Bidirectional(layers.LSTM(5, return_sequences=True)),
        layers.Bidirectional(layers.GRU(3, return_sequences=return_sequences), merge_mode=merge_mode),
        layers.Dense(2, activation="softmax"),
    ])
    model.build((None, None))
    check(model, token_inputs(), tmp_path)


def test_bidirectional_with_a_different_backward_layer(tmp_path):
    model = Sequential([
        layers.Input(shape=(None, 3)),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True),
                             backward_layer=layers.GRU(4, return_sequences=True, go_backwards=True)),
        layers.SimpleRNN(2),
    ])
    check(model, float_inputs(), tmp_path)


def test_masking_layer_on_right_padded_floats(tmp_path):
    model = Sequential([layers.Input(shape=(None, 3)), layers.Masking(0.0),
                        layers.GRU(5, return_sequences=True), layers.LSTM(4), layers.Dense(1)])
    check(model, float_inputs(pad=True), tmp_path)


def test_all_padding_row(tmp_path):
    model = Sequential([layers.Embedding(20, 4, mask_zero=True), layers.LSTM(3, return_sequences=True),
                        layers.GRU(3)])
    model.build((None, None))
    x = ids(4, 6)
    x[2] = 0
    check(model, [x], tmp_path)


# -- the other layers ---------------------------------------------------------------------

def test_seq2seq_autoencoder_repeat_vector_time_distributed(tmp_path):
    model = Sequential([
        layers.Input(shape=(None, 3)),
        layers.LSTM(8),
        layers.RepeatVector(5),
        layers.GRU(6, return_sequences=True),
        layers.Dropout(0.5),
        layers.TimeDistributed(layers.Dense(3, activation="tanh")),
        layers.Activation("relu"),
    ])
    check(model, float_inputs(), tmp_path)


def test_flatten_after_a_fixed_length_sequence(tmp_path):
    model = Sequential([layers.Input(shape=(7, 2)), layers.SimpleRNN(3, return_sequences=True), layers.Flatten(),
                        layers.Dense(2)])
    check(model, [floats(4, 7, 2), floats(1, 7, 2, seed=5)], tmp_path)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_activations(activation, tmp_path):
    model = Sequential([layers.Input(shape=(None, 4)), layers.Dense(5, activation=activation)])
    x = floats(3, 6, 4) * 3  # reach the nonlinear parts
    check(model, [x], tmp_path, tol=1e-4 if activation == "exponential" else TOL)


def test_float64_model(tmp_path):
    """A float64 graph is valid ONNX; onnxruntime runs recurrent operators in float32 only, so
    the recurrent model goes out with dtype="float32" and a dense one stays float64."""
    model = Sequential([layers.Input(shape=(None, 3)), layers.GRU(4, dtype="float64", return_sequences=True),
                        layers.LSTM(3, dtype="float64"), layers.Dense(2, dtype="float64")])
    x = [a.astype("float64") for a in float_inputs()]
    export_onnx(model, tmp_path / "f32.onnx", dtype="float32")
    session = ort.InferenceSession(str(tmp_path / "f32.onnx"), providers=["CPUExecutionProvider"])
    for a in x:
        got = session.run(["output"], {"input": a.astype("float32")})[0]
        np.testing.assert_allclose(got, model.predict(a, verbose=0), rtol=TOL, atol=TOL)
    proto = export_onnx(model, tmp_path / "f64.onnx")
    onnx.checker.check_model(proto)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    dense = Sequential([layers.Input(shape=(None, 3)), layers.Dense(4, activation="tanh", dtype="float64"),
                        layers.Dense(2, dtype="float64")])
    check(dense, x, tmp_path, tol=1e-12)
    with pytest.raises(ValueError, match="`dtype`, expected 'float32', 'float64' or None"):
        export_onnx(dense, tmp_path / "x.onnx", dtype="int8")


# -- the graph itself ---------------------------------------------------------------------

def recurrent_nodes(proto) -> list:
    return [n for n in proto.graph.node if n.op_type in ("RNN", "LSTM", "GRU")]


@pytest.mark.parametrize("reset_after, flag", [(True, 1), (False, 0)])
def test_gru_linear_before_reset(reset_after, flag, tmp_path):
    model = Sequential([layers.Input(shape=(None, 3)), layers.GRU(4, reset_after=reset_after)])
    proto = check(model, float_inputs(), tmp_path)
    (node,) = recurrent_nodes(proto)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["linear_before_reset"] == flag


def test_dynamic_batch_and_time_and_native_operators(tmp_path):
    model = Sequential([layers.Embedding(20, 4, mask_zero=True), layers.Bidirectional(layers.LSTM(3))])
    model.build((None, None))
    proto = check(model, token_inputs(), tmp_path)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "time"]
    assert [n.op_type for n in recurrent_nodes(proto)] == ["LSTM", "LSTM"]
    assert "" not in [n.input[4] for n in recurrent_nodes(proto)]  # sequence_lens from the mask
    assert [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == ["batch", 6]


# -- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize("build, match", [
    (lambda: [layers.Input(shape=(None, 3)), layers.LSTM(4, layer_norm=True)], "layer_norm"),
    (lambda: [layers.Input(shape=(None, 3)), layers.GRU(4, zoneout=0.1)], "zoneout"),
    (lambda: [layers.Input(shape=(None, 3), batch_size=2), layers.SimpleRNN(4, stateful=True)], "stateful"),
    (lambda: [layers.Input(shape=(None, 3)), layers.LSTM(4, return_state=True)], "return_state"),
    (lambda: [layers.Input(shape=(None, 3)), layers.Bidirectional(layers.GRU(4), merge_mode=None)], "merge_mode=None"),
    (lambda: [layers.Input(shape=(None, 3)), layers.Dense(2, activation=lambda t: t * 2)], "Python code"),
    (lambda: [layers.Embedding(9, 3, mask_zero=True, input_shape=(None,)),
              layers.GRU(3, return_sequences=True, go_backwards=True), layers.GRU(2)], "padding is at the start"),
])
def test_what_onnx_cannot_express_is_refused(build, match, tmp_path):
    model = Sequential(build())
    with pytest.raises(UnsupportedForExport, match=match):
        export_onnx(model, tmp_path / "m.onnx")
    assert issubclass(UnsupportedForExport, ValueError)


def test_refuses_unbuilt_and_subclassed_models(tmp_path):
    with pytest.raises(UnsupportedForExport, match="not built yet"):
        export_onnx(Sequential([layers.LSTM(3)]), tmp_path / "m.onnx")

    class Custom(Model):
        def call(self, x):
            return x

    with pytest.raises(UnsupportedForExport, match="Sequential models"):
        export_onnx(Custom(), tmp_path / "m.onnx")
    model = Sequential([layers.Input(shape=(None, 3)), layers.LSTM(3)])
    with pytest.raises(ValueError, match="`path` must be a file path"):
        export_onnx(model, None)
