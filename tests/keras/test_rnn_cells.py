"""RNN(cell): the built-in cells run in the engine exactly as the built-in layers; cells a user
writes (Keras's contract: ``state_size`` and ``call(inputs, states)``) run in the general loop
and equal the built-in cells with the same weights, on outputs and every gradient, in float64,
with masks, go_backwards, return_state, stateful, tbptt and Bidirectional.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit.keras.layers.rnn_cells as rnn_cells
from rnnkit import Sequential, load_model
from rnnkit.keras.layers import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Dense,
    GRUCell,
    Layer,
    LSTMCell,
    SimpleRNN,
    SimpleRNNCell,
    StackedRNNCells,
    deserialize,
    serialize,
)

F64 = torch.float64
B, T, F, H = 3, 7, 4, 5
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 0, 1, 0]], dtype=torch.bool)


def x_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, F, dtype=F64, generator=g)


# ---------------------------------------------------------------- cells a user writes (Keras style)


class MyLSTMCell(Layer):
    """An LSTM cell written as a Keras user would, with Keras's weight layout and gate order (i, f, c, o)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units]

    def build(self, input_shape):
        self.kernel = nn.Parameter(torch.randn(input_shape[-1], 4 * self.units, dtype=self.weight_dtype) * 0.3)
        self.recurrent_kernel = nn.Parameter(torch.randn(self.units, 4 * self.units, dtype=self.weight_dtype) * 0.3)
        self.bias = nn.Parameter(torch.randn(4 * self.units, dtype=self.weight_dtype) * 0.1)
        self.built = True

    def call(self, inputs, states):
        h, c = states
        z = inputs @ self.kernel + h @ self.recurrent_kernel + self.bias
        i, f, g, o = z.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class MyGRUCell(Layer):
    """Keras's GRU with reset_after=True, gate blocks (z, r, h), bias (2, 3H)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = nn.Parameter(torch.randn(input_shape[-1], 3 * self.units, dtype=self.weight_dtype) * 0.3)
        self.recurrent_kernel = nn.Parameter(torch.randn(self.units, 3 * self.units, dtype=self.weight_dtype) * 0.3)
        self.bias = nn.Parameter(torch.randn(2, 3 * self.units, dtype=self.weight_dtype) * 0.1)
        self.built = True

    def call(self, inputs, states, training=None):
        h = states[0]
        xz, xr, xh = (inputs @ self.kernel + self.bias[0]).chunk(3, dim=-1)
        hz, hr, hh = (h @ self.recurrent_kernel + self.bias[1]).chunk(3, dim=-1)
        z, r = torch.sigmoid(xz + hz), torch.sigmoid(xr + hr)
        h = z * h + (1 - z) * torch.tanh(xh + r * hh)
        return h, h  # a single tensor as the new state, as Keras allows

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class MinimalRNNCell(Layer):
    """The cell of Keras's RNN docstring: h_t = x_t W + h_{t-1} U (linear, no bias)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = nn.Parameter(torch.randn(input_shape[-1], self.units, dtype=self.weight_dtype) * 0.3)
        self.recurrent_kernel = nn.Parameter(torch.randn(self.units, self.units, dtype=self.weight_dtype) * 0.3)
        self.built = True

    def call(self, inputs, states):
        output = inputs @ self.kernel + states[0] @ self.recurrent_kernel
        return output, [output]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def copy_to_builtin(custom, builtin):
    """Put a custom cell's Keras-layout weights into the built-in cell (or layer)."""
    ws = [p.detach().numpy() for p in (custom.kernel, custom.recurrent_kernel)]
    if hasattr(custom, "bias"):
        ws.append(custom.bias.detach().numpy())
    builtin.set_weights(ws)


PAIRS = [
    ("lstm", lambda: MyLSTMCell(H, dtype="float64"), lambda: LSTMCell(H, dtype="float64")),
    ("gru", lambda: MyGRUCell(H, dtype="float64"), lambda: GRUCell(H, dtype="float64")),
    ("linear", lambda: MinimalRNNCell(H, dtype="float64"), lambda: SimpleRNNCell(H, activation=None, use_bias=False, dtype="float64")),
]


def run_and_grads(layer, x, mask, **kw):
    x = x.clone().requires_grad_()
    out = layer(x, mask=mask, **kw)
    flat = out if isinstance(out, list) else [out]
    flat = [t for item in flat for t in (item if isinstance(item, list) else [item])]
    g = torch.Generator().manual_seed(9)
    loss = sum((t * torch.randn(t.shape, dtype=F64, generator=g)).sum() for t in flat)
    params = [p for p in layer.parameters()]
    grads = torch.autograd.grad(loss, [x, *params])
    return flat, grads[0], grads[1:]


@pytest.mark.parametrize("name, make_custom, make_builtin", PAIRS, ids=[p[0] for p in PAIRS])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_custom_cell_equals_the_builtin_cell(name, make_custom, make_builtin, go_backwards, masked, return_sequences):
    torch.manual_seed(0)
    kw = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    custom, builtin = RNN(make_custom(), **kw), RNN(make_builtin(), **kw)
    x, mask = x_data(), MASK if masked else None
    custom(x)
    builtin(x)
    copy_to_builtin(custom.cell, builtin.cell)
    out_c, dx_c, dw_c = run_and_grads(custom, x, mask)
    out_b, dx_b, dw_b = run_and_grads(builtin, x, mask)
    for a, b in zip(out_c, out_b):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dx_c, dx_b, rtol=1e-10, atol=1e-12)
    # Compare the weight gradients in Keras layout (the built-in cell keeps torch's).
    ours = RNN(make_builtin(), **kw)
    ours(x)
    gk = [g for g in dw_c]
    builtin_grads = {n: g for (n, _), g in zip(builtin.named_parameters(), dw_b)}
    ours.cell.core.weight_ih.data, ours.cell.core.weight_hh.data = builtin_grads["cell.core.weight_ih"], builtin_grads["cell.core.weight_hh"]
    if ours.cell.core.bias_ih is not None:
        ours.cell.core.bias_ih.data = builtin_grads["cell.core.bias_ih"]
    if ours.cell.core.bias_hh is not None:
        ours.cell.core.bias_hh.data = builtin_grads["cell.core.bias_hh"]
    for a, b in zip(gk, ours.get_weights()):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-9, atol=1e-12)


def test_builtin_cells_take_the_engine_and_custom_cells_the_general_loop(monkeypatch):
    calls = []
    real = rnn_cells.run_steps
    monkeypatch.setattr(rnn_cells, "run_steps", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = x_data()
    for cell in (LSTMCell(H), GRUCell(H), SimpleRNNCell(H), [LSTMCell(H), GRUCell(3)]):
        RNN(cell, dtype="float64")(x)
    assert calls == []  # the engine ran them
    RNN(MyLSTMCell(H, dtype="float64"))(x)
    RNN([LSTMCell(H, dtype="float64"), MyGRUCell(3, dtype="float64")])(x)
    assert calls == [1, 1]


@pytest.mark.parametrize("cell, layer", [
    (lambda: LSTMCell(H, dtype="float64"), lambda: LSTM(H, dtype="float64")),
    (lambda: GRUCell(H, reset_after=False, dtype="float64"), lambda: GRU(H, reset_after=False, dtype="float64")),
    (lambda: SimpleRNNCell(H, activation="relu", dtype="float64"), lambda: SimpleRNN(H, activation="relu", dtype="float64")),
])
def test_rnn_of_a_builtin_cell_is_the_builtin_layer(cell, layer):
    torch.manual_seed(1)
    kw = dict(return_sequences=True, return_state=True, go_backwards=True)
    r, ref = RNN(cell(), **kw), layer()
    ref = type(ref).from_config({**ref.get_config(), **kw})
    x = x_data(1)
    r(x)
    ref(x)
    ref.set_weights(r.get_weights())
    assert r.count_params() == ref.count_params()
    out_r, dx_r, dw_r = run_and_grads(r, x, MASK)
    out_l, dx_l, dw_l = run_and_grads(ref, x, MASK)
    for a, b in zip(out_r + [dx_r, *dw_r], out_l + [dx_l, *dw_l]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_standalone_cell_step_equals_one_step_of_the_layer():
    torch.manual_seed(2)
    cell = LSTMCell(H, dtype="float64")
    x = x_data(2)
    h0, c0 = torch.randn(B, H, dtype=F64), torch.randn(B, H, dtype=F64)
    out, (h, c) = cell(x[:, 0], [h0, c0])
    layer = LSTM(H, return_state=True, dtype="float64")
    layer(x[:, :1])
    layer.set_weights(cell.get_weights())
    _, h_ref, c_ref = layer(x[:, :1], initial_state=[h0, c0])
    torch.testing.assert_close(out, h_ref)
    torch.testing.assert_close(c, c_ref)
    assert cell.state_size == [H, H] and GRUCell(3).state_size == 3 and cell.output_size == H


# ---------------------------------------------------------------- stacks


def test_stacked_cells_engine_path_equals_general_path_and_nests_states():
    torch.manual_seed(3)
    x = x_data(3)
    engine_stack = RNN([LSTMCell(H, dtype="float64"), GRUCell(3, dtype="float64")], return_sequences=True,
                       return_state=True, go_backwards=True)
    custom_stack = RNN([MyLSTMCell(H, dtype="float64"), MyGRUCell(3, dtype="float64")], return_sequences=True,
                       return_state=True, go_backwards=True)
    engine_stack(x)
    custom_stack(x)
    for c, b in zip(custom_stack.cell.cells, engine_stack.cell.cells):
        copy_to_builtin(c, b)
    out_e = engine_stack(x, mask=MASK)
    out_c = custom_stack(x, mask=MASK)
    assert len(out_e) == 3 and len(out_e[1]) == 2 and len(out_e[2]) == 1  # [output, [h1, c1], [h2]], as Keras
    torch.testing.assert_close(out_e[0], out_c[0])
    for a, b in zip(out_e[1] + out_e[2], out_c[1] + out_c[2]):
        torch.testing.assert_close(a, b)
    assert engine_stack.count_params() == 4 * (F * H + H * H + H) + 3 * (H * 3 + 3 * 3 + 2 * 3)
    # A nested initial state goes in the same form.
    s0 = [[torch.randn(B, H, dtype=F64), torch.randn(B, H, dtype=F64)], [torch.randn(B, 3, dtype=F64)]]
    torch.testing.assert_close(engine_stack(x, initial_state=s0)[0], custom_stack(x, initial_state=s0)[0])


def test_stacked_cells_as_one_cell_step_by_step():
    torch.manual_seed(4)
    stack = StackedRNNCells([SimpleRNNCell(4, dtype="float64"), LSTMCell(3, dtype="float64")])
    x = x_data(4)
    stack(x[:, 0], [[torch.zeros(B, 4, dtype=F64)], [torch.zeros(B, 3, dtype=F64)] * 2])
    assert stack.state_size == [4, [3, 3]] and stack.output_size == 3
    states = [[torch.zeros(B, 4, dtype=F64)], [torch.zeros(B, 3, dtype=F64)] * 2]
    for t in range(T):
        out, states = stack(x[:, t], states)
    layer = RNN(stack)
    torch.testing.assert_close(layer(x), out)
    copy = deserialize(serialize(layer))
    copy(x)
    copy.set_weights(layer.get_weights())
    torch.testing.assert_close(copy(x), out)


# ---------------------------------------------------------------- state, tbptt, Bidirectional


def test_custom_cell_stateful_carries_the_state_across_calls():
    torch.manual_seed(5)
    layer = RNN(MyLSTMCell(H, dtype="float64"), stateful=True, return_sequences=True)
    x = x_data(5)
    whole = RNN(MyLSTMCell(H, dtype="float64"), return_sequences=True)
    whole(x)
    layer(x[:, :3])
    layer.load_state_dict(whole.state_dict())
    layer.reset_states()
    parts = torch.cat([layer(x[:, :3]), layer(x[:, 3:])], dim=1)
    torch.testing.assert_close(parts, whole(x))
    layer.reset_states()
    torch.testing.assert_close(layer(x[:, :3]), whole(x[:, :3]))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_custom_cell_tbptt_cuts_where_the_engine_cuts(go_backwards):
    torch.manual_seed(6)
    x = x_data(6)
    custom = RNN(MyLSTMCell(H, dtype="float64"), return_sequences=True, tbptt=3, go_backwards=go_backwards)
    ref = LSTM(H, return_sequences=True, tbptt=3, go_backwards=go_backwards, dtype="float64", implementation="bptt")
    custom(x)
    ref(x)
    copy_to_builtin(custom.cell, ref)
    out_c, dx_c, _ = run_and_grads(custom, x, MASK)
    out_r, dx_r, _ = run_and_grads(ref, x, MASK)
    torch.testing.assert_close(out_c[0], out_r[0])
    torch.testing.assert_close(dx_c, dx_r)
    # And the cut is real: without it the input gradient differs.
    full = RNN(MyLSTMCell(H, dtype="float64"), return_sequences=True, go_backwards=go_backwards)
    full(x)
    full.load_state_dict(custom.state_dict())
    assert not torch.allclose(run_and_grads(full, x, MASK)[1], dx_c)


def test_bidirectional_of_a_custom_cell_equals_bidirectional_lstm():
    torch.manual_seed(7)
    x = x_data(7)
    custom = Bidirectional(RNN(MyLSTMCell(H, dtype="float64"), return_sequences=True), dtype="float64")
    ref = Bidirectional(LSTM(H, return_sequences=True), dtype="float64")
    custom(x)
    ref(x)
    copy_to_builtin(custom.forward_layer.cell, ref.forward_layer)
    copy_to_builtin(custom.backward_layer.cell, ref.backward_layer)
    out_c, dx_c, _ = run_and_grads(custom, x, MASK)
    out_r, dx_r, _ = run_and_grads(ref, x, MASK)
    torch.testing.assert_close(out_c[0], out_r[0])
    torch.testing.assert_close(dx_c, dx_r)
    assert custom.compute_output_shape((None, None, F)) == (None, None, 2 * H)


def test_bidirectional_needs_a_cell_config_that_rebuilds_it():
    class NoConfigCell(MinimalRNNCell):
        def get_config(self):
            return Layer.get_config(self)

    with pytest.raises(TypeError, match="get_config must return its constructor arguments"):
        Bidirectional(RNN(NoConfigCell(3)))


def test_fit_with_tbptt_and_saving_a_model_with_a_custom_cell(tmp_path):
    torch.manual_seed(8)
    model = Sequential([RNN(MyGRUCell(4), input_shape=(12, 2)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 12, 2)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None]
    history = model.fit(x, y, epochs=2, batch_size=8, tbptt=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "m.safetensors")  # the cell is registered by class name and rebuilt from its config
    loaded = load_model(tmp_path / "m.safetensors")
    torch.testing.assert_close(loaded(torch.tensor(x)), model(torch.tensor(x)))


def test_dropout_masks_are_per_sequence_in_the_general_loop():
    torch.manual_seed(9)
    cell = LSTMCell(H, dropout=0.5, recurrent_dropout=0.5)
    stack = RNN([cell, MyGRUCell(3)])  # a custom cell sends the whole stack to the general loop
    x = torch.randn(B, T, F)
    seen = []
    original = cell._mask

    def spy(key, like, rate):
        m = original(key, like, rate)
        seen.append((key, m))
        return m

    cell._mask = spy
    stack(x, training=True)
    for key in ("input", "recurrent"):
        masks = [m for k, m in seen if k == key]
        assert len(masks) == T and all(torch.equal(m, masks[0]) for m in masks)
    assert cell._masks == {}  # forgotten after the sequence
    stack(x, training=False)


# ---------------------------------------------------------------- errors and config


def test_rnn_bad_cells_and_bad_custom_cell_outputs():
    with pytest.raises(TypeError, match="`cell` must be a cell.*state_size"):
        RNN(Dense(3))
    with pytest.raises(TypeError, match=r"`cells\[1\]` must be a cell"):
        StackedRNNCells([LSTMCell(3), Dense(3)])

    class BadState(MinimalRNNCell):
        def call(self, inputs, states):
            out, _ = super().call(inputs, states)
            return out, [out[:, :2]]

    with pytest.raises(ValueError, match=r"must return new states of shapes \[\(3, 5\)\] \(its state_size\), got \[\(3, 2\)\]"):
        RNN(BadState(H, dtype="float64"))(x_data())

    class BadSize(MinimalRNNCell):
        def __init__(self, units, **kwargs):
            super().__init__(units, **kwargs)
            self.state_size = "five"

    with pytest.raises(ValueError, match="`state_size` must be a positive int"):
        RNN(BadSize(H, dtype="float64"))(x_data())
    layer = RNN(LSTMCell(H), return_state=True)
    layer(torch.randn(B, T, F))
    with pytest.raises(ValueError, match=r"`initial_state` must hold 2 tensor\(s\), got 1"):
        layer(torch.randn(B, T, F), initial_state=[torch.zeros(B, H)])
    with pytest.raises(ValueError, match=r"`initial_state\[1\]` must have shape \(B, H\) = \(3, 5\)"):
        layer(torch.randn(B, T, F), initial_state=[torch.zeros(B, H), torch.zeros(B, 4)])
    with pytest.raises(ValueError, match=r"built for inputs of shape \(B, T, 4\)"):
        layer(torch.randn(B, T, 6))
    with pytest.raises(ValueError, match="`units`"):
        LSTMCell(0)
    with pytest.raises(ValueError, match="`tbptt`"):
        RNN(LSTMCell(3), tbptt=0)


def test_rnn_config_round_trip_keeps_cells_and_weights_layout():
    layer = RNN(GRUCell(4, reset_after=False, dropout=0.1), return_sequences=True, go_backwards=True, unroll=True)
    copy = deserialize(serialize(layer))
    assert isinstance(copy.cell, GRUCell) and copy.cell.reset_after is False and copy.cell.dropout == 0.1
    assert copy.return_sequences and copy.go_backwards and copy.unroll
    layer(torch.randn(2, 3, 5))
    assert [w.shape for w in layer.get_weights()] == [(5, 12), (4, 12), (12,)]
    assert layer.compute_output_shape((None, None, 5)) == (None, None, 4)
    assert RNN(LSTMCell(4), return_state=True).compute_output_shape((None, 3, 5)) == [(None, 4), (None, 4), (None, 4)]
