"""rnnkit.layers: Keras parameter counts, the seeds' stacks, masks, go_backwards, state, dropout, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.data import pad_sequences
from rnnkit.keras.layers import (
    GRU,
    LSTM,
    Activation,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Input,
    InputLayer,
    Masking,
    RepeatVector,
    SimpleRNN,
    TimeDistributed,
    deserialize,
    get_layer_class,
    serialize,
)

F64 = torch.float64
RECURRENT = [SimpleRNN, LSTM, GRU]


def run_stack(layers, x, training=None):
    """What Sequential does: call each layer with the previous layer's mask."""
    mask = None
    for layer in layers:
        y = layer(x, mask=mask, training=training)
        mask = layer.compute_mask(x, mask)
        x = y
    return x


# ------------------------------------------------------------------ parameter counts

def keras_rnn_params(gates: int, F: int, H: int, biases: int) -> int:
    """Keras's formula: gates * (F H + H H) + biases * gates * H."""
    return gates * (F * H + H * H) + biases * gates * H


F, H = 7, 5
PARAM_TABLE = [
    ("SimpleRNN", lambda: SimpleRNN(H), (None, 3, F), keras_rnn_params(1, F, H, 1)),
    ("SimpleRNN no bias", lambda: SimpleRNN(H, use_bias=False), (None, 3, F), keras_rnn_params(1, F, H, 0)),
    ("LSTM", lambda: LSTM(H), (None, 3, F), keras_rnn_params(4, F, H, 1)),
    ("LSTM no bias", lambda: LSTM(H, use_bias=False), (None, 3, F), keras_rnn_params(4, F, H, 0)),
    ("GRU reset_after", lambda: GRU(H), (None, 3, F), keras_rnn_params(3, F, H, 2)),
    ("GRU reset_before", lambda: GRU(H, reset_after=False), (None, 3, F), keras_rnn_params(3, F, H, 1)),
    ("GRU no bias", lambda: GRU(H, use_bias=False), (None, 3, F), keras_rnn_params(3, F, H, 0)),
    ("BiLSTM concat", lambda: Bidirectional(LSTM(H)), (None, 3, F), 2 * keras_rnn_params(4, F, H, 1)),
    ("BiGRU sum", lambda: Bidirectional(GRU(H), merge_mode="sum"), (None, 3, F), 2 * keras_rnn_params(3, F, H, 2)),
    ("BiSimpleRNN ave", lambda: Bidirectional(SimpleRNN(H), merge_mode="ave"), (None, 3, F), 2 * keras_rnn_params(1, F, H, 1)),
    ("Embedding", lambda: Embedding(1000, 64), (None, 3), 1000 * 64),
    ("Dense 2D", lambda: Dense(10), (None, 128), 128 * 10 + 10),
    ("Dense 3D", lambda: Dense(10), (None, 3, 128), 128 * 10 + 10),
    ("Dense no bias", lambda: Dense(10, use_bias=False), (None, 128), 128 * 10),
    ("TimeDistributed(Dense)", lambda: TimeDistributed(Dense(3)), (None, 4, F), F * 3 + 3),
    ("Stacked LSTM", lambda: Stack([LSTM(H, return_sequences=True), LSTM(4)]), (None, 3, F),
     keras_rnn_params(4, F, H, 1) + keras_rnn_params(4, H, 4, 1)),
    # Our LSTM extras (no Keras equivalent): peepholes add 3 H; layer norm adds a gain and a
    # shift per gate block (2 * 4H) and for the cell (2 * H).
    ("LSTM peephole", lambda: LSTM(H, peephole=True), (None, 3, F), keras_rnn_params(4, F, H, 1) + 3 * H),
    ("LSTM layer_norm", lambda: LSTM(H, layer_norm=True), (None, 3, F), keras_rnn_params(4, F, H, 1) + 2 * 4 * H + 2 * H),
    ("Masking/Dropout/Flatten", lambda: Stack([Masking(), Dropout(0.5), Flatten()]), (None, 3, F), 0),
]


class Stack:
    """Builds a list of layers from shapes alone, as Sequential.build would."""

    def __init__(self, layers):
        self.layers = layers

    def maybe_build(self, shape):
        for layer in self.layers:
            layer.maybe_build(shape)
            shape = layer.compute_output_shape(shape)

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)


@pytest.mark.parametrize("label,make,shape,expected", PARAM_TABLE, ids=[row[0] for row in PARAM_TABLE])
def test_parameter_counts_equal_keras(label, make, shape, expected):
    layer = make()
    layer.maybe_build(shape)
    assert layer.count_params() == expected


# ------------------------------------------------------------------ the seeds

def test_seed_embedding_lstm_dense_counts_164106():
    # keras.Sequential([Embedding(input_dim=1000, output_dim=64), LSTM(128), Dense(10)])
    from rnnkit.keras import layers

    stack = [layers.Embedding(input_dim=1000, output_dim=64), layers.LSTM(128), layers.Dense(10)]
    assert [layer.name.split("_")[0] for layer in stack] == ["embedding", "lstm", "dense"]
    shape = (None, None)
    shapes = []
    for layer in stack:
        layer.maybe_build(shape)
        shape = layer.compute_output_shape(shape)
        shapes.append(shape)
    assert shapes == [(None, None, 64), (None, 128), (None, 10)]
    assert [layer.count_params() for layer in stack] == [64_000, 98_816, 1_290]
    assert sum(layer.count_params() for layer in stack) == 164_106
    y = run_stack(stack, torch.randint(0, 1000, (2, 9)))
    assert y.shape == (2, 10)


def test_seed_sentiment_bilstm_forward_on_padded_ints():
    rng = np.random.default_rng(0)
    x_train = [list(rng.integers(1, 10000, size=n)) for n in (5, 250, 37, 200)]
    x_train = pad_sequences(x_train, maxlen=200)
    assert x_train.shape == (4, 200) and x_train.dtype == np.int32
    stack = [Embedding(10000, 128, input_length=200), Bidirectional(LSTM(128)), Dense(128, activation="relu"),
             Dense(1, activation="sigmoid")]
    with torch.no_grad():
        y = run_stack(stack, x_train)
    assert y.shape == (4, 1) and bool(((y > 0) & (y < 1)).all())
    assert stack[1].count_params() == 2 * keras_rnn_params(4, 128, 128, 1)


def test_seed_gru_with_input_shape_builds_at_construction():
    gru = GRU(128, input_shape=(None, 10))
    assert gru.built and gru.count_params() == keras_rnn_params(3, 10, 128, 2)
    assert gru(torch.randn(2, 6, 10)).shape == (2, 128)


def test_seed_lstm_with_one_dim_input_shape_reads_a_univariate_series():
    # The seed's LSTM(128, input_shape=(x_train.shape[1],)) on a 2-D float table.
    x_train = np.random.default_rng(0).random((6, 9))
    lstm = LSTM(8, input_shape=(x_train.shape[1],))
    assert lstm.count_params() == keras_rnn_params(4, 1, 8, 1)
    y = lstm(x_train)
    assert y.shape == (6, 8)
    assert torch.allclose(y, lstm(torch.as_tensor(x_train, dtype=torch.float32).unsqueeze(-1)))
    assert lstm.compute_output_shape((None, 9)) == (None, 8)


# ------------------------------------------------------------------ shapes and outputs

@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_output_shapes_and_states(cls, return_sequences):
    layer = cls(5, return_sequences=return_sequences, return_state=True)
    x = torch.randn(3, 4, 2)
    outs = layer(x)
    n_states = 2 if cls is LSTM else 1
    assert len(outs) == 1 + n_states
    shapes = layer.compute_output_shape((None, 4, 2))
    assert [tuple(o.shape) for o in outs] == [tuple(3 if d is None else d for d in s) for s in shapes]
    if return_sequences:
        assert torch.equal(outs[0][:, -1], outs[1])  # the last output is h_T
    else:
        assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("cls", RECURRENT)
def test_go_backwards_returns_outputs_in_processing_order(cls):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, dtype=F64)
    back = cls(4, return_sequences=True, return_state=True, go_backwards=True, dtype=F64)
    fwd = cls(4, return_sequences=True, return_state=True, dtype=F64)
    back(x)
    fwd.load_state_dict(back.state_dict())
    # Keras: go_backwards reads x_T, ..., x_1 and returns outputs in that order.
    for a, b in zip(back(x), fwd(x.flip(1))):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merges_aligned_directions(merge_mode):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, dtype=F64)
    bi = Bidirectional(GRU(4, return_sequences=True, dtype=F64), merge_mode=merge_mode)
    y = bi(x)
    f = bi.forward_layer(x)
    b = bi.backward_layer(x).flip(1)  # back into data order
    expected = {"concat": torch.cat([f, b], -1), "sum": f + b, "mul": f * b, "ave": (f + b) / 2}
    if merge_mode is None:
        torch.testing.assert_close(y[0], f)
        torch.testing.assert_close(y[1], b)
    else:
        torch.testing.assert_close(y, expected[merge_mode])
        assert tuple(y.shape) == tuple(2 if d is None else d for d in bi.compute_output_shape((None, 5, 3)))


def test_bidirectional_return_state_lists_both_directions():
    bi = Bidirectional(LSTM(4, return_state=True))
    out, hf, cf, hb, cb = bi(torch.randn(2, 5, 3))
    assert out.shape == (2, 8) and all(s.shape == (2, 4) for s in (hf, cf, hb, cb))
    torch.testing.assert_close(out, torch.cat([hf, hb], -1))
    # initial_state splits the same way: first half forward, second half backward.
    zeros = [torch.zeros(2, 4)] * 4
    torch.testing.assert_close(bi(torch.randn(2, 5, 3), initial_state=zeros)[0].shape, out.shape)


def test_time_distributed_dense_equals_dense_on_3d():
    x = torch.randn(2, 5, 3)
    dense = Dense(4, activation="tanh")
    td = TimeDistributed(Dense(4, activation="tanh"))
    dense(x)
    td.layer.set_weights(dense.get_weights())
    torch.testing.assert_close(td(x), dense(x))
    assert td.compute_output_shape((None, 5, 3)) == (None, 5, 4)


def test_core_layers():
    x = torch.randn(2, 6)
    assert RepeatVector(3)(x).shape == (2, 3, 6)
    assert Flatten()(torch.randn(2, 3, 4)).shape == (2, 12)
    assert Flatten().compute_output_shape((None, 3, 4)) == (None, 12)
    torch.testing.assert_close(Activation("softmax")(x).sum(-1), torch.ones(2))
    torch.testing.assert_close(Dense(3, activation="relu")(x).clamp(max=0), torch.zeros(2, 3))
    inp = InputLayer(shape=(None, 6))
    assert inp.compute_output_shape() == (None, None, 6)
    assert Input(shape=(None, 6)).shape == (None, None, 6)
    assert inp(torch.randn(2, 4, 6)).shape == (2, 4, 6)
    with pytest.raises(ValueError, match=r"\(None, None, 6\)"):
        inp(torch.randn(2, 4, 5))


def test_numpy_inputs_and_lazy_build():
    lstm = LSTM(3)
    assert not lstm.built and lstm.count_params() == 0
    y = lstm(np.random.default_rng(0).random((2, 4, 5)))  # float64 numpy -> the layer's float32
    assert y.dtype == torch.float32 and lstm.built and lstm.cell.input_size == 5


def test_load_state_dict_builds_an_unbuilt_layer():
    src = GRU(4)
    x = torch.randn(2, 3, 6)
    src(x)
    dst = GRU(4)
    assert not dst.built
    dst.load_state_dict(src.state_dict())
    torch.testing.assert_close(dst(x), src(x))


def test_fused_and_bptt_implementations_agree():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    fused = LSTM(5, return_sequences=True, implementation="fused")
    bptt = LSTM(5, return_sequences=True, implementation="bptt")
    fused(x)
    bptt.load_state_dict(fused.state_dict())
    torch.testing.assert_close(fused(x, mask=mask), bptt(x, mask=mask), rtol=1e-5, atol=1e-6)


def test_initializers_follow_keras():
    lstm = LSTM(4)
    lstm.maybe_build((None, None, 3))
    b = lstm.cell.bias_ih.detach()
    assert torch.equal(b[4:8], torch.ones(4)) and torch.equal(b[:4], torch.zeros(4))  # unit_forget_bias
    irnn = SimpleRNN(6, activation="relu", recurrent_initializer="identity")
    irnn.maybe_build((None, None, 2))
    assert torch.equal(irnn.cell.weight_hh.detach(), torch.eye(6))
    emb = Embedding(50, 8).embeddings.detach()
    assert emb.abs().max() <= 0.05


# ------------------------------------------------------------------ masks

def _ragged_batch(lengths, T, F, pad="post", holes=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), T, F, generator=g, dtype=F64)
    mask = torch.zeros(len(lengths), T, dtype=torch.bool)
    for i, n in enumerate(lengths):
        if pad == "post":
            mask[i, :n] = True
        else:
            mask[i, T - n :] = True
    if holes:
        mask[0, 1] = False
    return x, mask


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("wrap", ["forward", "go_backwards", "bidirectional"])
@pytest.mark.parametrize("pad", ["pre", "post"])
def test_masked_batch_equals_each_sequence_alone(cls, wrap, pad):
    x, mask = _ragged_batch([6, 3, 1, 4], 6, 3, pad=pad, holes=wrap == "forward")
    base = cls(4, return_sequences=True, return_state=True, dtype=F64, go_backwards=wrap == "go_backwards")
    layer = Bidirectional(base) if wrap == "bidirectional" else base
    outs = layer(x, mask=mask)
    for i in range(x.shape[0]):
        alone = layer(x[i : i + 1, mask[i]])
        real = mask[i].flip(0) if wrap == "go_backwards" else mask[i]  # outputs in processing order
        torch.testing.assert_close(outs[0][i, real], alone[0][0], rtol=1e-12, atol=1e-12)
        for s_batch, s_alone in zip(outs[1:], alone[1:]):
            torch.testing.assert_close(s_batch[i], s_alone[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{}, {"peephole": True}, {"recurrent_dropout": 0.3}])
def test_lstm_right_padded_mask_with_an_empty_row(kwargs):
    # Right padding is the fused kernel's case; an empty row or an unfusable option sends it
    # back to the engine, which must still get the mask.
    x, mask = _ragged_batch([4, 0, 2], 4, 3, pad="post")
    lstm = LSTM(5, return_sequences=True, return_state=True, dtype=F64, **kwargs)
    out, h, c = lstm(x, mask=mask)
    assert torch.equal(out[1], torch.zeros(4, 5, dtype=F64)) and torch.equal(h[1], torch.zeros(5, dtype=F64))
    lstm.eval()
    out, h, c = lstm(x, mask=mask)
    torch.testing.assert_close(out[2, :2], lstm(x[2:3, :2])[0][0])


def test_embedding_mask_zero_flows_to_the_recurrent_layer():
    ids = torch.tensor(pad_sequences([[3, 4, 5], [7, 2], [9]], maxlen=4))
    emb = Embedding(10, 4, mask_zero=True, dtype=F64)
    lstm = LSTM(3, return_sequences=True, dtype=F64)
    y = run_stack([emb, lstm], ids)
    torch.testing.assert_close(lstm.compute_mask(None, ids != 0), ids != 0)
    for i, seq in enumerate([[3, 4, 5], [7, 2], [9]]):
        alone = lstm(emb(torch.tensor([seq])))
        torch.testing.assert_close(y[i, -len(seq) :], alone[0])
        torch.testing.assert_close(y[i, : -len(seq)], torch.zeros(4 - len(seq), 3, dtype=F64))


def test_masking_layer_masks_and_zeroes_padded_steps():
    x = torch.randn(2, 5, 3, dtype=F64)
    x[0, 3:] = -1.0
    masking = Masking(mask_value=-1.0)
    gru = GRU(4, dtype=F64)
    y = run_stack([masking, gru], x)
    torch.testing.assert_close(y[0], gru(x[:1, :3])[0])
    assert torch.equal(masking.compute_mask(x), (x != -1).any(-1))
    assert torch.equal(masking(x)[0, 3:], torch.zeros(2, 3, dtype=F64))


def test_go_backwards_output_mask_follows_the_outputs():
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(LSTM(2, return_sequences=True, go_backwards=True).compute_mask(None, mask), mask.flip(1))
    assert LSTM(2).compute_mask(None, mask) is None


# ------------------------------------------------------------------ state

@pytest.mark.parametrize("cls", RECURRENT)
def test_stateful_carries_state_across_calls_and_resets(cls):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 3, dtype=F64)
    stateful = cls(4, return_sequences=True, stateful=True, dtype=F64)
    plain = cls(4, return_sequences=True, dtype=F64)
    stateful(x[:, :1])
    plain.load_state_dict(stateful.state_dict())
    stateful.reset_states()
    pieces = torch.cat([stateful(x[:, :3]), stateful(x[:, 3:5]), stateful(x[:, 5:])], dim=1)
    torch.testing.assert_close(pieces, plain(x), rtol=1e-12, atol=1e-12)
    assert all(not s.requires_grad for s in stateful.states)
    stateful.reset_states()
    assert stateful.states is None
    torch.testing.assert_close(stateful(x[:, :3]), plain(x[:, :3]))
    # A batch of another size starts afresh (the last, smaller batch of an epoch).
    torch.testing.assert_close(stateful(x[:1, 3:5]), plain(x[:1, 3:5]))


def test_carry_state_contract_and_bidirectional_state():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3, dtype=F64)
    bi = Bidirectional(LSTM(4, return_sequences=True, dtype=F64))
    bi(x)
    assert bi.states is None
    bi.carry_state = True
    bi(x[:, :3])
    assert len(bi.states) == 4 and all(s.shape == (2, 4) for s in bi.states)
    carried = bi.forward_layer(x[:, 3:])  # uses the carried forward state
    fresh = LSTM(4, return_sequences=True, dtype=F64)
    fresh(x)
    fresh.load_state_dict(bi.forward_layer.state_dict())
    torch.testing.assert_close(torch.cat([fresh(x[:, :3]), carried], 1), fresh(x))
    bi.reset_states()
    assert bi.states is None and bi.forward_layer.states is None


def test_gradient_flow_probes_contract():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    bi = Bidirectional(LSTM(4, implementation="fused"))
    bi.probes = []
    bi(x).pow(2).sum().backward()
    assert [(p["layer"], p["direction"]) for p in bi.probes] == [
        (bi.forward_layer.name, "forward"), (bi.backward_layer.name, "backward")
    ]
    fwd, bwd = (p["probe"].grad for p in bi.probes)
    assert fwd.shape == bwd.shape == (5, 2)
    # Every h_t reaches the loss (through later steps); the final c_T does not.
    assert bool((fwd[:, 0] > 0).all()) and bool((bwd[:, 0] > 0).all())
    assert fwd[-1, 1] == 0 and bwd[0, 1] == 0


def test_probe_reads_the_gradient_norm_of_the_last_state():
    torch.manual_seed(0)
    lstm = LSTM(4, dtype=F64)
    lstm.probes = []
    w = torch.randn(2, 4, dtype=F64)
    (lstm(torch.randn(2, 5, 3, dtype=F64)) * w).sum().backward()
    (record,) = lstm.probes
    # The loss reads h_T only, so dL/dh_T = w.
    torch.testing.assert_close(record["probe"].grad[-1, 0], torch.linalg.vector_norm(w))


# ------------------------------------------------------------------ dropout

@pytest.mark.parametrize("kwargs", [{"dropout": 0.5}, {"recurrent_dropout": 0.5}, {"zoneout": 0.3}])
def test_dropout_only_in_training(kwargs):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3, dtype=F64)
    noisy = LSTM(5, dtype=F64, **kwargs)
    clean = LSTM(5, dtype=F64)
    noisy(x)
    clean.load_state_dict(noisy.state_dict())
    noisy.eval()
    eval_out = noisy(x)
    torch.testing.assert_close(eval_out, noisy(x))
    if "zoneout" not in kwargs:  # zoneout keeps its expectation at inference
        torch.testing.assert_close(eval_out, clean(x))
    noisy.train()
    assert not torch.allclose(noisy(x), eval_out)
    assert torch.allclose(noisy(x, training=False), eval_out)


def test_input_dropout_mask_is_shared_over_time():
    # With the identity-like setup below, a dropped feature is dropped at every step.
    torch.manual_seed(0)
    layer = SimpleRNN(6, activation="linear", dropout=0.5, return_sequences=True, kernel_initializer="ones",
                      recurrent_initializer="zeros", use_bias=False, dtype=F64)
    x = torch.zeros(1, 4, 6, dtype=F64)
    x[0, :, 2] = 1.0  # only feature 2 is on, at every step
    y = layer(x)
    assert bool((y == y[:, :1]).all())  # all steps are dropped or kept together


def test_dropout_layer():
    drop = Dropout(0.5)
    x = torch.ones(100, 10)
    assert torch.equal(drop(x, training=False), x)
    y = drop(x, training=True)
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    shared = Dropout(0.5, noise_shape=(None, 1, 4))(torch.ones(8, 5, 4), training=True)
    assert torch.equal(shared, shared[:, :1].expand_as(shared))


# ------------------------------------------------------------------ config

CONFIG_LAYERS = [
    lambda: SimpleRNN(3, activation="relu", recurrent_initializer="identity", go_backwards=True),
    lambda: LSTM(4, return_sequences=True, peephole=True, layer_norm=True, zoneout=0.1, tbptt=5, input_shape=(None, 2)),
    lambda: GRU(4, reset_after=False, stateful=True, implementation="bptt", dtype="float64"),
    lambda: Bidirectional(LSTM(3, return_sequences=True), merge_mode="sum"),
    lambda: TimeDistributed(Dense(2, activation="softmax")),
    lambda: Embedding(20, 3, mask_zero=True, input_length=7),
    lambda: Dense(3, activation="tanh", use_bias=False),
    lambda: Masking(mask_value=-1.0),
    lambda: Dropout(0.2),
    lambda: RepeatVector(4),
    lambda: InputLayer(shape=(None, 3)),
    lambda: Flatten(),
    lambda: Activation("relu"),
    lambda: LSTM(3, stateful=True, batch_input_shape=(4, None, 2)),
    lambda: Embedding(5, 2, trainable=False),
    lambda: Dense(2, input_dim=3),
]


@pytest.mark.parametrize("make", CONFIG_LAYERS)
def test_config_round_trips_through_json(make):
    layer = make()
    data = json.loads(json.dumps(serialize(layer)))
    clone = deserialize(data)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    assert get_layer_class(type(layer).__name__) is type(layer)


def test_user_subclasses_register_without_shadowing_builtins():
    class LSTM(Dense):  # noqa: N801 - a user's class that reuses a built-in name
        pass

    class MyDense(Dense):
        pass

    assert get_layer_class("LSTM").__module__ == "rnnkit.keras.layers.rnn"
    assert get_layer_class("MyDense") is MyDense
    assert isinstance(deserialize(serialize(MyDense(3))), MyDense)


def test_keras_weights_round_trip():
    gru = GRU(3)
    gru.maybe_build((None, None, 2))
    weights = gru.get_weights()
    assert [w.shape for w in weights] == [(2, 9), (3, 9), (2, 9)]
    other = GRU(3)
    other.set_weights(weights)
    x = torch.randn(2, 4, 2)
    torch.testing.assert_close(other(x), gru(x))


def test_keras_base_layer_arguments():
    # Embedding(V, D, weights=[matrix], trainable=False): fixed pretrained vectors.
    table = np.arange(12.0).reshape(6, 2)
    emb = Embedding(6, 2, weights=[table], trainable=False)
    assert not emb.embeddings.requires_grad
    torch.testing.assert_close(emb(torch.tensor([[5]]))[0, 0], torch.tensor([10.0, 11.0]))
    frozen = LSTM(3, trainable=False)
    frozen(torch.randn(1, 2, 4))  # weights made by the lazy build are frozen as well
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.trainable = True
    assert all(p.requires_grad for p in frozen.parameters())
    assert Dense(2, input_dim=3).count_params() == 3 * 2 + 2  # Keras 2's input_dim
    stateful = LSTM(3, stateful=True, batch_input_shape=(4, 5, 2))
    assert stateful.built and stateful.declared_input_shape == (4, 5, 2)
    bi = Bidirectional(GRU(3), input_shape=(None, 2))
    copy = Bidirectional(GRU(3), "concat", bi.get_weights())  # Keras's positional weights
    x = torch.randn(2, 4, 2)
    torch.testing.assert_close(copy(x), bi(x))


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: LSTM(0), ValueError, "units"),
        (lambda: GRU(-3), ValueError, "units"),
        (lambda: LSTM(4, activation="softmax"), ValueError, "activation"),
        (lambda: LSTM(4, recurrent_activation="nope"), ValueError, "recurrent_activation"),
        (lambda: LSTM(4, kernel_initializer="nope"), ValueError, "kernel_initializer"),
        (lambda: LSTM(4, dropout=1.5), ValueError, "dropout"),
        (lambda: LSTM(4, implementation="cuda"), ValueError, "implementation"),
        (lambda: LSTM(4, tbptt=0), ValueError, "tbptt"),
        (lambda: SimpleRNN(4, peephole=True), TypeError, "peephole"),
        (lambda: Bidirectional(LSTM(4), merge_mode="max"), ValueError, "merge_mode"),
        (lambda: Bidirectional(Dense(4)), TypeError, "recurrent layer"),
        (lambda: Dense(0), ValueError, "units"),
        (lambda: Dense(3, activation="swishy"), ValueError, "activation"),
        (lambda: Embedding(0, 3), ValueError, "input_dim"),
        (lambda: Dropout(1.0), ValueError, "rate"),
        (lambda: LSTM(4, input_shape=(3, 4, 5)), ValueError, "rank 3"),
    ],
)
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_raise_clear_errors():
    lstm = LSTM(4)
    with pytest.raises(ValueError, match=r"\(B, T, F\)"):
        lstm(torch.randn(2, 3))
    with pytest.raises(TypeError, match="Embedding"):
        lstm(torch.randint(0, 5, (2, 3, 4)))
    lstm(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        lstm(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="mask"):
        lstm(torch.randn(2, 3, 4), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="T >= 1"):
        lstm(torch.randn(2, 0, 4))
    with pytest.raises(ValueError, match="initial_state"):
        lstm(torch.randn(2, 3, 4), initial_state=[torch.zeros(2, 4)])
    emb = Embedding(10, 3)
    with pytest.raises(ValueError, match="input_dim=10"):
        emb(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="input_dim=10"):
        emb(torch.tensor([[-1, 2]]))
    with pytest.raises(TypeError, match="integer"):
        emb(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="input_length=4"):
        Embedding(10, 3, input_length=4)(torch.tensor([[1, 2]]))
    dense = Dense(3)
    dense(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(B, \.\.\., 5\)"):
        dense(torch.randn(2, 6))
    with pytest.raises(ValueError, match=r"'lstm.*`inputs` of shape \(None, 2\).*rank 3"):
        LSTM(3, name="lstm")(Input(shape=(2,)))
    with pytest.raises(ValueError, match="Unknown layer class"):
        get_layer_class("Conv2D")
