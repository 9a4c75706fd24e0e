"""Bad arguments at the cell and engine level raise ValueError/TypeError naming the argument.

Every check goes through each entry point a caller may use: ``RecurrentCell``,
``engine.run`` and ``run_layer`` with each implementation (the fused path has
its own argument handling, and "auto" may pick either).
"""

from __future__ import annotations

import pytest
import torch

from rnnkit import engine
from rnnkit.cells import RecurrentCell
from rnnkit.ops import CellSpec
from rnnkit.recurrent import run_layer

B, T, F_IN, H = 2, 5, 3, 4
ENTRY_POINTS = ["engine", "bptt", "fused", "auto"]


def lstm():
    torch.manual_seed(0)
    return RecurrentCell("lstm", F_IN, H)


def call(entry: str, cell, x, state0=None, **kw):
    if entry == "engine":
        return engine.run(cell.spec, x, cell.weights(), state0, **kw)
    return run_layer(cell.spec, x, cell.weights(), state0, implementation=entry, **kw)


def x_ok():
    return torch.randn(B, T, F_IN)


# ---------------------------------------------------------------- cell construction


@pytest.mark.parametrize("argument, kwargs", [
    ("activation", {"activation": "swish"}),
    ("activation", {"activation": "Tanh"}),
    ("recurrent_activation", {"recurrent_activation": "softmax"}),
])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_unknown_activation(kind, argument, kwargs):
    with pytest.raises(ValueError, match=f"`{argument}`.*{kwargs[argument]!r}"):
        RecurrentCell(kind, F_IN, H, **kwargs)
    with pytest.raises(ValueError, match=f"`{argument}`"):
        CellSpec(kind, **kwargs)


def test_unknown_kind():
    with pytest.raises(ValueError, match="`kind`.*'elman'"):
        RecurrentCell("elman", F_IN, H)


@pytest.mark.parametrize("value", [0, -3, 2.0, "4", True, None])
@pytest.mark.parametrize("argument", ["hidden_size", "input_size"])
def test_non_positive_or_non_integer_sizes(argument, value):
    kwargs = {"input_size": F_IN, "hidden_size": H, argument: value}
    with pytest.raises((ValueError, TypeError), match=f"`{argument}`.*positive integer"):
        RecurrentCell("lstm", **kwargs)


@pytest.mark.parametrize("value", [-1, H, H + 2, 1.5])
def test_bad_proj_size(value):
    with pytest.raises(ValueError, match="`proj_size`"):
        RecurrentCell("lstm", F_IN, H, proj_size=value)


def test_bad_bias_mode():
    with pytest.raises(ValueError, match="`bias`.*'both'"):
        RecurrentCell("gru", F_IN, H, bias="both")


@pytest.mark.parametrize("option", ["peephole", "layer_norm", "proj_size"])
@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_lstm_options_on_other_cells(kind, option):
    value = 2 if option == "proj_size" else True
    with pytest.raises(ValueError, match=option):
        RecurrentCell(kind, F_IN, H, **{option: value})


# ------------------------------------------------------------------- cell.forward


def test_cell_forward_bad_inputs():
    cell = lstm()
    with pytest.raises(ValueError, match="`x`.*\\(B, 3\\)"):
        cell(torch.randn(B, F_IN + 1))
    with pytest.raises(ValueError, match="`x`"):
        cell(torch.randn(B, 1, F_IN))
    with pytest.raises(TypeError, match="`x`.*floating"):
        cell(torch.ones(B, F_IN, dtype=torch.int64))
    with pytest.raises(ValueError, match="`state`"):
        cell(torch.randn(B, F_IN), (torch.zeros(B, H + 1), torch.zeros(B, H)))
    with pytest.raises(ValueError, match="`state`"):
        cell(torch.randn(B, F_IN), (torch.zeros(B, H),))  # an LSTM needs (h, c)
    with pytest.raises(ValueError, match="`state`"):
        RecurrentCell("gru", F_IN, H)(torch.randn(B, F_IN), (torch.zeros(B + 1, H),))


# ------------------------------------------------------------------------- the input


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
def test_non_float_input(entry, dtype):
    with pytest.raises(TypeError, match="`x`.*floating"):
        call(entry, lstm(), torch.ones(B, T, F_IN, dtype=dtype))


@pytest.mark.parametrize("entry", ["engine", "bptt", "fused", "auto"])
def test_input_that_is_not_a_tensor(entry):
    with pytest.raises(TypeError, match="`x`"):
        call(entry, lstm(), x_ok().tolist())


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_wrong_feature_size_or_rank(entry):
    with pytest.raises(ValueError, match="`x`.*F = 3"):
        call(entry, lstm(), torch.randn(B, T, F_IN + 2))
    with pytest.raises(ValueError, match="`x`.*rank 3"):
        call(entry, lstm(), torch.randn(T, F_IN))


# ---------------------------------------------------------------- mask and lengths


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("shape", [(B, T + 1), (B + 1, T), (T, B), (B,), (B, T, 1)])
def test_mask_of_the_wrong_shape(entry, shape):
    with pytest.raises(ValueError, match=r"`mask`.*\(B, T\) = \(2, 5\)"):
        call(entry, lstm(), x_ok(), mask=torch.ones(shape, dtype=torch.bool))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_lengths_longer_than_the_sequence(entry):
    with pytest.raises(ValueError, match=r"`lengths`.*\[0, T=5\]"):
        call(entry, lstm(), x_ok(), lengths=torch.tensor([T + 1, 2]))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_negative_lengths(entry):
    with pytest.raises(ValueError, match="`lengths`.*min -1"):
        call(entry, lstm(), x_ok(), lengths=torch.tensor([-1, 2]))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("lengths", [torch.tensor([3.0, 2.0]), [3.0, 2.0], torch.tensor([True, True])],
                         ids=["float_tensor", "float_list", "bool"])
def test_non_integer_lengths(entry, lengths):
    with pytest.raises(TypeError, match="`lengths`.*integers"):
        call(entry, lstm(), x_ok(), lengths=lengths)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_lengths_of_the_wrong_shape(entry):
    with pytest.raises(ValueError, match=r"`lengths`.*\(B,\)"):
        call(entry, lstm(), x_ok(), lengths=torch.tensor([3, 2, 1]))


@pytest.mark.parametrize("entry", ["engine", "bptt"])
def test_mask_and_lengths_together(entry):
    with pytest.raises(ValueError, match="`mask`.*`lengths`"):
        call(entry, lstm(), x_ok(), mask=torch.ones(B, T, dtype=torch.bool), lengths=torch.tensor([T, T]))


# ----------------------------------------------------------------------- state0


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("which, state0", [
    (r"state0\[0\]", (torch.zeros(B, H + 1), torch.zeros(B, H))),
    (r"state0\[1\]", (torch.zeros(B, H), torch.zeros(B, H - 1))),
    (r"state0\[0\]", (torch.zeros(B + 1, H), torch.zeros(B + 1, H))),
    (r"state0\[0\]", (torch.zeros(H), torch.zeros(H))),
    ("state0", (torch.zeros(B, H),)),
    ("state0", (torch.zeros(B, H),) * 3),
], ids=["h_width", "c_width", "batch", "unbatched", "too_few", "too_many"])
def test_wrong_state0(entry, which, state0):
    with pytest.raises(ValueError, match=f"`{which}`"):
        call(entry, lstm(), x_ok(), state0)


# ------------------------------------------------------------------- tbptt, implementation


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("tbptt", [0, -1, 2.5, True, "3"])
def test_bad_tbptt(entry, tbptt):
    with pytest.raises(ValueError, match="`tbptt`.*positive integer"):
        call(entry, lstm(), x_ok(), tbptt=tbptt)


@pytest.mark.parametrize("implementation", ["cudnn", "Fused", "", None])
def test_bad_implementation(implementation):
    cell = lstm()
    with pytest.raises(ValueError, match="`implementation`.*'auto', 'fused', 'bptt'"):
        run_layer(cell.spec, x_ok(), cell.weights(), implementation=implementation)


# --------------------------------------------------------- dropout, zoneout, probe


def test_bad_recurrent_mask_and_zoneout_shapes():
    cell = lstm()
    with pytest.raises(ValueError, match=r"`recurrent_mask`.*\(B, P\)"):
        engine.run(cell.spec, x_ok(), cell.weights(), recurrent_mask=torch.ones(B, H + 1))
    with pytest.raises(ValueError, match=r"`zoneout\[1\]`"):
        engine.run(cell.spec, x_ok(), cell.weights(), zoneout=(None, torch.ones(B, T - 1, H)))
    with pytest.raises(ValueError, match="`probe`"):
        engine.run(cell.spec, x_ok(), cell.weights(), probe=torch.zeros(T, 2))  # must require grad
    with pytest.raises(ValueError, match="`probe`"):
        engine.run(cell.spec, x_ok(), cell.weights(), probe=torch.zeros(T, 1, requires_grad=True))


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_bad_rates(rate):
    like = torch.zeros(())
    with pytest.raises(ValueError, match="`recurrent_dropout`"):
        engine.recurrent_dropout_mask(B, H, rate, like=like)
    with pytest.raises(ValueError, match="`zoneout`"):
        engine.zoneout_keep(B, T, H, rate, True, like=like)


# ------------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("case", ["x_vs_weights", "state0_vs_x"])
def test_dtype_mismatch_names_the_argument(case):
    cell = lstm()
    if case == "x_vs_weights":
        with pytest.raises((TypeError, ValueError), match="`x`.*dtype"):
            engine.run(cell.spec, x_ok().double(), cell.weights())
    else:
        state0 = (torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64))
        with pytest.raises((TypeError, ValueError), match="`state0.*dtype"):
            engine.run(cell.spec, x_ok(), cell.weights(), state0)
