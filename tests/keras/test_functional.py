"""The functional API: Input -> layers on symbolic tensors -> Model(inputs, outputs).

Values and gradients are compared with the same layers called eagerly (a hand-written
model) or the same network as ``Sequential``; parameter counts with numbers derived by
hand for models from the Keras documentation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit.keras as keras
from rnnkit.keras import layers


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- parameter counts


def _mnist_mlp():  # Keras guide "The Functional API", first model
    inputs = keras.Input(shape=(784,))
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(10)(x))


def _ticket_classifier():  # Keras guide: models with multiple inputs and outputs
    title = keras.Input(shape=(None,), name="title")
    body = keras.Input(shape=(None,), name="body")
    tags = keras.Input(shape=(12,), name="tags")
    t = layers.LSTM(128)(layers.Embedding(10000, 64)(title))
    b = layers.LSTM(32)(layers.Embedding(10000, 64)(body))
    x = layers.Concatenate()([t, b, tags])
    return keras.Model([title, body, tags], [layers.Dense(1, name="priority")(x), layers.Dense(4, name="department")(x)])


def _char_seq2seq():  # Keras example lstm_seq2seq (71 input, 93 target characters, latent 256)
    enc_in = keras.Input(shape=(None, 71))
    _, h, c = layers.LSTM(256, return_state=True)(enc_in)
    dec_in = keras.Input(shape=(None, 93))
    seq, _, _ = layers.LSTM(256, return_sequences=True, return_state=True)(dec_in, initial_state=[h, c])
    return keras.Model([enc_in, dec_in], layers.Dense(93, activation="softmax")(seq))


def _imdb_bilstm():  # Keras example "Bidirectional LSTM on IMDB"
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(20000, 128)(inputs)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(64))(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


def _shared_lstm_tweets():  # Keras 2 functional guide: a shared LSTM reads two tweets
    a, b = keras.Input(shape=(280, 256)), keras.Input(shape=(280, 256))
    shared = layers.LSTM(64)
    merged = layers.Concatenate(axis=-1)([shared(a), shared(b)])
    return keras.Model([a, b], layers.Dense(1, activation="sigmoid")(merged))


def _news_headline():  # Keras 2 functional guide: main and auxiliary inputs and outputs
    main = keras.Input(shape=(100,), dtype="int32", name="main_input")
    lstm_out = layers.LSTM(32)(layers.Embedding(output_dim=512, input_dim=10000)(main))
    aux_out = layers.Dense(1, activation="sigmoid", name="aux_output")(lstm_out)
    aux_in = keras.Input(shape=(5,), name="aux_input")
    x = layers.Concatenate()([lstm_out, aux_in])
    for _ in range(3):
        x = layers.Dense(64, activation="relu")(x)
    main_out = layers.Dense(1, activation="sigmoid", name="main_output")(x)
    return keras.Model([main, aux_in], [main_out, aux_out])


def _rnn_guide_encoder_decoder():  # Keras guide "Working with RNNs": encoder state -> decoder
    enc_in = keras.Input(shape=(None,))
    _, h, c = layers.LSTM(64, return_state=True)(layers.Embedding(1000, 64)(enc_in))
    dec_in = keras.Input(shape=(None,))
    dec = layers.LSTM(64)(layers.Embedding(2000, 64)(dec_in), initial_state=[h, c])
    return keras.Model([enc_in, dec_in], layers.Dense(10)(dec))


def _dense_autoencoder():  # Keras guide: "All models are callable, just like layers"
    enc_in = keras.Input(shape=(784,))
    encoder = keras.Model(enc_in, layers.Dense(32, activation="relu")(enc_in), name="encoder")
    dec_in = keras.Input(shape=(32,))
    decoder = keras.Model(dec_in, layers.Dense(784, activation="sigmoid")(dec_in), name="decoder")
    inputs = keras.Input(shape=(784,))
    return keras.Model(inputs, decoder(encoder(inputs)))


def _shared_embedding():  # Keras guide: shared layers
    shared = layers.Embedding(1000, 128)
    a, b = keras.Input(shape=(None,), dtype="int32"), keras.Input(shape=(None,), dtype="int32")
    return keras.Model([a, b], [shared(a), shared(b)])


def lstm(f: int, h: int) -> int:
    return 4 * (h * (f + h) + h)  # Keras's LSTM: kernel (F, 4H), recurrent (H, 4H), one bias (4H)


def dense(f: int, u: int) -> int:
    return f * u + u


PARAM_COUNTS = [
    (_mnist_mlp, dense(784, 64) + dense(64, 64) + dense(64, 10)),                                   # 55,050
    (_ticket_classifier, 2 * 10000 * 64 + lstm(64, 128) + lstm(64, 32) + dense(172, 1) + dense(172, 4)),
    (_char_seq2seq, lstm(71, 256) + lstm(93, 256) + dense(256, 93)),                                # 718,173
    (_imdb_bilstm, 20000 * 128 + 2 * lstm(128, 64) + 2 * lstm(128, 64) + dense(128, 1)),            # 2,757,761
    (_shared_lstm_tweets, lstm(256, 64) + dense(128, 1)),
    (_news_headline, 10000 * 512 + lstm(512, 32) + dense(32, 1) + dense(37, 64) + 2 * dense(64, 64) + dense(64, 1)),
    (_rnn_guide_encoder_decoder, 1000 * 64 + lstm(64, 64) + 2000 * 64 + lstm(64, 64) + dense(64, 10)),  # 258,698
    (_dense_autoencoder, dense(784, 32) + dense(32, 784)),
    (_shared_embedding, 1000 * 128),
]


@pytest.mark.parametrize("make, expected", PARAM_COUNTS, ids=[m.__name__.strip("_") for m, _ in PARAM_COUNTS])
def test_parameter_counts_equal_keras(make, expected):
    model = make()
    assert model.count_params() == expected
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    assert f"Total params: {expected:,}" in lines


def test_known_totals_from_the_keras_docs():
    # The totals the Keras documentation prints for three of these models.
    assert _mnist_mlp().count_params() == 55_050
    assert _imdb_bilstm().count_params() == 2_757_761
    assert _rnn_guide_encoder_decoder().count_params() == 258_698


# --------------------------------------------------------------------------- symbolic shapes


def test_symbolic_shapes_dtypes_and_masks():
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    assert ids.shape == (None, None) and ids.dtype == torch.int32
    emb = layers.Embedding(50, 8, mask_zero=True)(ids)
    assert emb.shape == (None, None, 8) and emb.has_mask
    out, h, c = layers.LSTM(6, return_state=True)(emb)
    assert out.shape == h.shape == c.shape == (None, 6) and not out.has_mask
    seq = layers.Bidirectional(layers.GRU(4, return_sequences=True))(emb)
    assert seq.shape == (None, None, 8) and seq.has_mask
    fixed = keras.Input(shape=(7, 3), batch_size=5)
    assert layers.SimpleRNN(2, return_sequences=True)(fixed).shape == (5, 7, 2)
    assert layers.MaxPooling1D(2)(keras.Input(shape=(None, 3))).shape == (None, None, 3)
    assert layers.Flatten()(fixed).shape == (5, 21)
    for dtype in ("int64", "bool", "float64"):
        assert keras.Input(shape=(4,), dtype=dtype).dtype == getattr(torch, dtype)
    with pytest.raises(ValueError, match="`dtype`"):
        keras.Input(shape=(4,), dtype="complex64")


def test_layer_input_output_and_model_attributes():
    inp = keras.Input(shape=(None, 3), name="x")
    lstm = layers.LSTM(4, name="enc")
    y = layers.Dense(2, name="head")(lstm(inp))
    model = keras.Model(inp, y, name="m")
    assert lstm.input is inp and lstm.output is model.get_layer("head").input
    assert model.input is inp and model.output is y
    assert model.inputs == [inp] and model.outputs == [y]
    assert [l.name for l in model.layers] == ["x", "enc", "head"]
    assert model.get_layer("enc") is lstm and model.get_layer(index=-1).name == "head"
    with pytest.raises(ValueError, match="No layer named 'nope'.*'enc'"):
        model.get_layer("nope")
    lstm(keras.Input(shape=(None, 3)))
    with pytest.raises(ValueError, match="called 2 times"):
        lstm.output


# --------------------------------------------------------------------------- values and gradients


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters()}


def test_functional_equals_sequential_with_masks_through_bidirectional():
    torch.manual_seed(0)
    ids = keras.Input(shape=(None,), dtype="int64")
    x = layers.Embedding(20, 5, mask_zero=True, dtype="float64")(ids)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True, dtype="float64"), dtype="float64")(x)
    x = layers.GRU(3, dtype="float64")(x)
    functional = keras.Model(ids, layers.Dense(2, dtype="float64")(x))
    sequential = keras.Sequential([
        keras.Input(shape=(None,), dtype="int64"), layers.Embedding(20, 5, mask_zero=True, dtype="float64"),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True, dtype="float64"), dtype="float64"),
        layers.GRU(3, dtype="float64"), layers.Dense(2, dtype="float64")])
    sequential.set_weights(functional.get_weights())
    tokens = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [7, 0, 0, 0, 0]])  # zeros: padding
    a, b = functional(tokens), sequential(tokens)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # The padding is masked: trailing zeros change nothing.
    torch.testing.assert_close(functional(tokens[:, :3])[0], a[0], rtol=1e-12, atol=1e-12)
    a.square().sum().backward()
    b.square().sum().backward()
    ga = [p.grad for p in functional.parameters()]
    gb = [p.grad for p in sequential.parameters()]
    assert len(ga) == len(gb) and all(g is not None and g.abs().sum() > 0 for g in ga)
    for g1, g2 in zip(ga, gb):
        torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


class _HandWritten(keras.Model):
    """The same network as _two_tower's graph, written as eager calls on the same layers."""

    def __init__(self, graph: keras.Model) -> None:
        super().__init__()
        self.g = graph

    def call(self, inputs):
        a, b = inputs
        get = self.g.get_layer
        _, h, c = get("enc")(a)
        seq = get("dec")(b, initial_state=[h, c])
        shared = get("shared")
        y1 = shared(seq)
        y2 = shared(get("pool")(y1))
        return [y1, get("score")(layers.Concatenate()([y2, h]))]


def _two_tower() -> keras.Model:
    a = keras.Input(shape=(None, 3), dtype="float64", name="a")
    b = keras.Input(shape=(None, 2), dtype="float64", name="b")
    _, h, c = layers.LSTM(4, return_state=True, name="enc", dtype="float64")(a)
    seq = layers.LSTM(4, return_sequences=True, name="dec", dtype="float64")(b, initial_state=[h, c])
    shared = layers.Dense(4, activation="tanh", name="shared", dtype="float64")
    y1 = shared(seq)
    y2 = shared(layers.GlobalAveragePooling1D(name="pool")(y1))  # the same weights, called twice
    score = layers.Dense(1, name="score", dtype="float64")(layers.Concatenate()([y2, h]))
    return keras.Model({"a": a, "b": b}, [y1, score])


def test_multi_io_shared_layer_and_initial_state_equal_eager_calls():
    torch.manual_seed(1)
    model = _two_tower()
    assert model.count_params() == lstm(3, 4) + lstm(2, 4) + dense(4, 4) + dense(8, 1)
    eager = _HandWritten(model)
    xa = torch.randn(3, 5, 3, dtype=torch.float64)
    xb = torch.randn(3, 4, 2, dtype=torch.float64)
    out = model({"a": xa, "b": xb})
    ref = eager([xa, xb])
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, rtol=0, atol=0)
    (out[0].sum() + out[1].square().sum()).backward()
    got = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    ref = eager([xa, xb])
    (ref[0].sum() + ref[1].square().sum()).backward()
    for k, p in model.named_parameters():
        assert got[k].abs().sum() > 0, k  # every weight, the encoder's through initial_state too
        torch.testing.assert_close(got[k], p.grad, rtol=1e-12, atol=1e-12)
    # A list in input order works as well as the dict.
    torch.testing.assert_close(model([xa, xb])[1], out[1])


def test_model_used_as_a_layer_and_submodel_share_weights():
    torch.manual_seed(2)
    inner_in = keras.Input(shape=(None, 3))
    inner = keras.Model(inner_in, layers.GRU(4, name="gru")(inner_in), name="inner")
    x = keras.Input(shape=(None, 3))
    z = inner(x)
    outer = keras.Model(x, layers.Dense(1, name="head")(z))
    xs = torch.randn(2, 6, 3)
    torch.testing.assert_close(outer(xs), outer.get_layer("head")(inner(xs)))
    assert outer.count_params() == inner.count_params() + dense(4, 1)
    # Models cut at intermediate tensors share the trained layers' weights.
    features = keras.Model(outer.input, z)
    flat_in = keras.Input(shape=(None, 3))
    flat = keras.Model(flat_in, layers.Dense(2, name="d")(layers.LSTM(5, name="l")(flat_in)))
    cut = keras.Model(flat.input, flat.get_layer("l").output)
    torch.testing.assert_close(features(xs), inner(xs))
    with torch.no_grad():
        inner.get_layer("gru").cell.bias_ih.add_(1.0)
        flat.get_layer("l").cell.bias_ih.add_(1.0)
    torch.testing.assert_close(features(xs), inner(xs))
    torch.testing.assert_close(cut(xs), flat.get_layer("l")(xs))


def test_training_flag_reaches_the_layers():
    inp = keras.Input(shape=(8,))
    model = keras.Model(inp, layers.Dropout(0.5)(inp))
    x = torch.ones(4, 8)
    model.eval()
    assert torch.equal(model(x), x)
    assert not torch.equal(model(x, training=True), x)
    model.train()  # torch modules start in training mode, and so does the graph's Dropout
    assert not torch.equal(model(x), x)
    assert torch.equal(model(x, training=False), x)


# --------------------------------------------------------------------------- errors


def test_wrong_rank_or_feature_size_names_the_layer_argument_and_shape():
    dense = layers.Dense(3, name="proj")
    dense(keras.Input(shape=(5,)))
    with pytest.raises(ValueError, match=r"'proj'.*`inputs` of shape \(None, 6\).*\(B, \.\.\., 5\)"):
        dense(keras.Input(shape=(6,)))
    with pytest.raises(ValueError, match=r"'rnn'.*`inputs` of shape \(None, 4\).*rank 3"):
        layers.SimpleRNN(2, name="rnn")(keras.Input(shape=(4,)))
    h = keras.Input(shape=(7,), name="h0")
    with pytest.raises(ValueError, match=r"'gru'.*`initial_state\[0\]` of shape \(None, 7\).*\(B, H\) = \(2, 3\)"):
        layers.GRU(3, name="gru")(keras.Input(shape=(None, 2)), initial_state=[h])
    with pytest.raises(TypeError, match="Lambda"):
        keras.Input(shape=(3,)) * 2


def test_graph_errors_name_the_tensor():
    a, b = keras.Input(shape=(3,), name="a"), keras.Input(shape=(3,), name="b")
    y = layers.Dense(1)(b)
    with pytest.raises(ValueError, match=r"depends on input 'b'.*not in `inputs` \['a'\].*disconnected"):
        keras.Model(a, y)
    with pytest.raises(ValueError, match=r"input\(s\) \['a'\] are not used"):
        keras.Model([a, b], y)
    with pytest.raises(TypeError, match="symbolic tensors.*Tensor"):
        keras.Model(a, torch.zeros(2))
    model = keras.Model([a, b], layers.Add()([a, y]))
    with pytest.raises(ValueError, match=r"takes 2 inputs \['a', 'b'\].*got one Tensor"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"input names \['a', 'b'\]; missing \['b'\], unexpected \['c'\]"):
        model({"a": torch.zeros(2, 3), "c": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match=r"`b` \(input 'b'\) must have shape \(None, 3\), got shape \(2, 4\)"):
        model([torch.zeros(2, 3), torch.zeros(2, 4)])
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"takes 2 inputs.*`x`, got one ndarray"):
        model.fit(np.zeros((4, 3)), np.zeros((4, 1)), verbose=0)


# --------------------------------------------------------------------------- summary


def test_summary_has_the_connected_to_column():
    lines: list[str] = []
    _shared_lstm_tweets().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in lines[2]
    row = next(l for l in lines if "(LSTM)" in l)
    # One row for the shared LSTM, fed by both inputs.
    assert row.count("[0][0]") == 2 and f"{lstm(256, 64)}" in row
    assert "(Concatenate)" in text and "lstm" in next(l for l in lines if "(Concatenate)" in l).split(")")[-1]


# --------------------------------------------------------------------------- training


def test_fit_with_several_inputs_and_outputs_names_logs_like_keras():
    torch.manual_seed(3)
    model = _news_headline()
    rng = _rng(3)
    x = {"main_input": rng.integers(1, 10000, (32, 100)), "aux_input": rng.standard_normal((32, 5)).astype("float32")}
    y = {"main_output": rng.integers(0, 2, (32, 1)).astype("float32"),
         "aux_output": rng.integers(0, 2, (32, 1)).astype("float32")}
    model.compile("rmsprop", loss={"main_output": "binary_crossentropy", "aux_output": "binary_crossentropy"},
                  loss_weights={"main_output": 1.0, "aux_output": 0.2}, metrics={"main_output": ["accuracy"]})
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert set(history.history) == {"loss", "main_output_loss", "aux_output_loss", "main_output_accuracy"}
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["main_output_loss"] + 0.2 * logs["aux_output_loss"], rel=1e-5)
    main, aux = model.predict(x, verbose=0)
    assert main.shape == aux.shape == (32, 1)
    history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
    assert {"val_loss", "val_main_output_loss", "val_main_output_accuracy"} <= set(history.history)
    by_name = keras.Model(model.input, {"main": model.output[0], "aux": model.output[1]})
    predicted = by_name.predict(x, batch_size=10, verbose=0)
    assert set(predicted) == {"main", "aux"}
    np.testing.assert_allclose(predicted["aux"], model.predict(x, verbose=0)[1], rtol=1e-6)
    with pytest.raises(ValueError, match=r"keys of `y` must be the output names"):
        model.evaluate(x, {"main": y["main_output"]}, verbose=0)
    with pytest.raises(ValueError, match=r"one entry per output \(2"):
        model.compile("adam", loss=["mse"])


def test_one_loss_applies_to_every_output():
    inp = keras.Input(shape=(None, 2))
    z = layers.LSTM(3)(inp)
    model = keras.Model(inp, [layers.Dense(1, name="a")(z), layers.Dense(1, name="b")(z)])
    model.compile("adam", "mse")
    x = np.zeros((4, 3, 2), "float32")
    logs = model.evaluate(x, [np.ones((4, 1)), np.zeros((4, 1))], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["a_loss"] + logs["b_loss"])


def test_seq2seq_trains_and_inference_models_match_teacher_forcing():
    torch.manual_seed(4)
    V, H = 6, 16
    enc_in = keras.Input(shape=(None, V), name="enc_in")
    _, h, c = layers.LSTM(H, return_state=True, name="encoder")(enc_in)
    dec_in = keras.Input(shape=(None, V), name="dec_in")
    dec_lstm = layers.LSTM(H, return_sequences=True, return_state=True, name="decoder")
    seq, _, _ = dec_lstm(dec_in, initial_state=[h, c])
    head = layers.Dense(V, activation="softmax", name="head")
    model = keras.Model([enc_in, dec_in], head(seq))
    # The task: reverse a sequence of symbols 1..V-1 (0 starts the decoder).
    rng = _rng(4)
    src = rng.integers(1, V, (256, 5))
    tgt = src[:, ::-1]
    onehot = np.eye(V, dtype="float32")
    dec_x = onehot[np.concatenate([np.zeros((256, 1), int), tgt[:, :-1]], 1)]
    model.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit([onehot[src], dec_x], tgt, epochs=12, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    # Inference models rebuilt from the trained layers, as in the Keras tutorial.
    encoder = keras.Model(enc_in, [h, c])
    h_in, c_in = keras.Input(shape=(H,)), keras.Input(shape=(H,))
    seq2, h2, c2 = dec_lstm(dec_in, initial_state=[h_in, c_in])
    decoder = keras.Model([dec_in, h_in, c_in], [head(seq2), h2, c2])
    states = encoder.predict(onehot[src[:8]], verbose=0)
    stepped = []
    for t in range(5):  # one step at a time, fed the teacher's previous symbol
        probs, *states = decoder.predict([dec_x[:8, t : t + 1], *states], verbose=0)
        stepped.append(probs[:, 0])
    np.testing.assert_allclose(np.stack(stepped, 1), model.predict([onehot[src[:8]], dec_x[:8]], verbose=0),
                               rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- every layer kind

def _cell_rnn():
    return layers.RNN(layers.StackedRNNCells([layers.LSTMCell(3), layers.GRUCell(2)]), return_sequences=True)


LAYER_CASES = [
    # (name, factory, input shapes without batch, dtypes, call kwargs)
    ("simple_rnn", lambda: layers.SimpleRNN(3, return_sequences=True, go_backwards=True), [(None, 4)], None),
    ("gru_state", lambda: layers.GRU(3, return_state=True), [(None, 4)], None),
    ("bi_lstm_state", lambda: layers.Bidirectional(layers.LSTM(2, return_state=True)), [(None, 4)], None),
    ("bi_none", lambda: layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode=None), [(None, 4)], None),
    ("rnn_cells", _cell_rnn, [(None, 4)], None),
    ("conv_lstm1d", lambda: layers.ConvLSTM1D(2, 3, padding="same"), [(None, 5, 2)], None),
    ("time_distributed", lambda: layers.TimeDistributed(layers.Dense(3)), [(None, 4)], None),
    ("conv1d", lambda: layers.Conv1D(3, 2, strides=2), [(None, 4)], None),
    ("pool", lambda: layers.AveragePooling1D(2), [(None, 4)], None),
    ("global_max", lambda: layers.GlobalMaxPooling1D(), [(None, 4)], None),
    ("layer_norm", lambda: layers.LayerNormalization(), [(None, 4)], None),
    ("batch_norm", lambda: layers.BatchNormalization(), [(None, 4)], None),
    ("repeat", lambda: layers.RepeatVector(3), [(4,)], None),
    ("reshape", lambda: layers.Reshape((-1, 2)), [(6, 4)], None),
    ("permute", lambda: layers.Permute((2, 1)), [(6, 4)], None),
    ("zero_pad", lambda: layers.ZeroPadding1D(2), [(None, 4)], None),
    ("attention", lambda: layers.Attention(), [(None, 4), (None, 4)], None),
    ("mha", lambda: layers.MultiHeadAttention(2, 3), [(None, 4), (None, 5)], None),
    ("dot", lambda: layers.Dot(axes=2), [(None, 4), (None, 4)], None),
    ("embedding", lambda: layers.Embedding(10, 3), [(None,)], [torch.int64]),
    ("lambda", lambda: layers.Lambda(lambda t: t * 2 + 1), [(None, 4)], None),
]


@pytest.mark.parametrize("name, make, shapes, dtypes", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_every_layer_kind_runs_in_a_graph_like_an_eager_call(name, make, shapes, dtypes):
    torch.manual_seed(5)
    dtypes = dtypes or [torch.float32] * len(shapes)
    inputs = [keras.Input(shape=s, dtype=str(d).replace("torch.", "")) for s, d in zip(shapes, dtypes)]
    layer = make()
    if name == "mha":
        symbolic_out = layer(inputs[0], inputs[1])
    else:
        symbolic_out = layer(inputs if len(inputs) > 1 else inputs[0])
    model = keras.Model(inputs if len(inputs) > 1 else inputs[0], symbolic_out)
    model.eval()
    data = [torch.randint(1, 10, (3, 6)) if d == torch.int64 else
            torch.randn(3, *[6 if n is None else n for n in s]) for s, d in zip(shapes, dtypes)]
    got = model(data if len(data) > 1 else data[0])
    want = layer(data[0], data[1]) if name == "mha" else layer(data if len(data) > 1 else data[0])
    flat_sym = symbolic_out if isinstance(symbolic_out, list) else [symbolic_out]
    flat_got = got if isinstance(got, list) else [got]
    flat_want = want if isinstance(want, (list, tuple)) else [want]
    assert len(flat_sym) == len(flat_got) == len(flat_want)
    for kt, g, w in zip(flat_sym, flat_got, flat_want):
        torch.testing.assert_close(g, w)
        assert len(kt.shape) == g.dim() and kt.dtype == g.dtype
        assert all(k is None or k == n for k, n in zip(kt.shape, g.shape)), (kt.shape, tuple(g.shape))
        assert kt.shape[0] is None  # the batch size is free


def test_deepcopy_and_torch_save_keep_the_graph(tmp_path):
    import copy

    model = _two_tower()
    twin = copy.deepcopy(model)
    xa, xb = torch.randn(2, 3, 3, dtype=torch.float64), torch.randn(2, 2, 2, dtype=torch.float64)
    for a, b in zip(model([xa, xb]), twin([xa, xb])):
        torch.testing.assert_close(a, b)
    assert all(p is not q for p, q in zip(model.parameters(), twin.parameters()))
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    other = _two_tower()
    other.load_state_dict(torch.load(tmp_path / "sd.pt"))
    torch.testing.assert_close(other([xa, xb])[1], model([xa, xb])[1])
