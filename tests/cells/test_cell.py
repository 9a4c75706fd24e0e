"""RecurrentCell: one step, its parameters and their initialisation.

The single step is checked against the autograd reference step and against one
step of the engine; parameter shapes against torch.nn's layout; initialisers
against their defining property (a bound, a variance, W^T W = I, a block of ones).
"""

from __future__ import annotations

import math

import pytest
import torch
from reference import ref_step

from rnnkit import engine
from rnnkit.cells import INITIALIZERS, RecurrentCell, initialize
from rnnkit.ops import Weights

DTYPE = torch.float64
B, F_IN, H, PROJ = 3, 4, 5, 3

CONFIGS = {
    "rnn_tanh": ("rnn", {}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
    "rnn_sigmoid": ("rnn", {"activation": "sigmoid"}),
    "lstm": ("lstm", {}),
    "lstm_single_bias": ("lstm", {"bias": "single"}),
    "lstm_no_bias": ("lstm", {"bias": "none"}),
    "lstm_peephole": ("lstm", {"peephole": True}),
    "lstm_layer_norm": ("lstm", {"layer_norm": True}),
    "lstm_proj": ("lstm", {"proj_size": PROJ}),
    "lstm_all": ("lstm", {"peephole": True, "layer_norm": True, "proj_size": PROJ, "bias": "single"}),
    "gru_reset_after": ("gru", {}),
    "gru_reset_after_single_bias": ("gru", {"bias": "single"}),
    "gru_reset_before": ("gru", {"reset_after": False}),
    "gru_reset_before_no_bias": ("gru", {"reset_after": False, "bias": "none"}),
}


def make(name: str, seed: int = 0) -> RecurrentCell:
    kind, kwargs = CONFIGS[name]
    torch.manual_seed(seed)
    cell = RecurrentCell(kind, F_IN, H, dtype=DTYPE, **kwargs)
    with torch.no_grad():  # move LN and peepholes off their trivial start
        for p in (cell.ln_gamma, cell.ln_cell_gamma):
            if p is not None:
                p.uniform_(0.5, 1.5)
        for p in (cell.ln_beta, cell.ln_cell_beta, cell.peephole):
            if p is not None:
                p.uniform_(-0.5, 0.5)
    return cell


# ------------------------------------------------------------------------ one step


@pytest.mark.parametrize("name", list(CONFIGS))
def test_single_step_equals_the_reference_step_and_one_engine_step(name):
    cell = make(name)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, F_IN, generator=g, dtype=DTYPE)
    state = tuple(torch.randn(B, n, generator=g, dtype=DTYPE) for n in cell.state_sizes)

    new = cell(x, state)
    h_ref, c_ref = ref_step(cell.spec, cell.weights(), x, state[0], state[1] if len(state) == 2 else None, None)
    expected = (h_ref,) if c_ref is None else (h_ref, c_ref)
    out, final = engine.run(cell.spec, x[:, None, :], cell.weights(), state)

    assert len(new) == len(expected) == len(final)
    for a, r, e in zip(new, expected, final):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[:, 0], new[0], rtol=1e-12, atol=1e-12)

    # and the step's gradients (autograd through the cell) equal the engine's (by hand)
    cot = [torch.randn(s.shape, generator=g, dtype=DTYPE) for s in new]
    params = [p for p in cell.parameters()]
    g_cell = torch.autograd.grad(new, params, cot)
    g_eng = torch.autograd.grad(final, params, cot)
    for p_name, a, e in zip([n for n, _ in cell.named_parameters()], g_cell, g_eng):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12, msg=lambda m: f"d{p_name}: {m}")


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm_proj", "gru_reset_before"])
def test_default_state_is_zeros(name):
    cell = make(name)
    x = torch.randn(B, F_IN, dtype=DTYPE)
    zeros = tuple(torch.zeros(B, n, dtype=DTYPE) for n in cell.state_sizes)
    for a, b in zip(cell(x), cell(x, zeros)):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ parameter shapes


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_shapes_follow_torch_layout(name):
    kind, kw = CONFIGS[name]
    cell = make(name)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[kind] * H
    P = kw.get("proj_size") or H
    bias = kw.get("bias", "double")
    expected = {"weight_ih": (G, F_IN), "weight_hh": (G, P)}
    if bias != "none":
        expected["bias_ih"] = (G,)
    if bias == "double":
        expected["bias_hh"] = (G,)
    if kw.get("proj_size"):
        expected["weight_hr"] = (P, H)
    if kw.get("peephole"):
        expected["peephole"] = (3, H)
    if kw.get("layer_norm"):
        expected.update(ln_gamma=(G,), ln_beta=(G,), ln_cell_gamma=(H,), ln_cell_beta=(H,))
    got = {n: tuple(p.shape) for n, p in cell.named_parameters()}
    assert got == expected
    assert all(p.dtype == DTYPE for p in cell.parameters())
    assert cell.state_sizes == ((P, H) if kind == "lstm" else (P,))
    # weights() hands the same tensors to the engine, absent options as None
    w = cell.weights()
    assert isinstance(w, Weights)
    for field in Weights._fields:
        t = getattr(w, field)
        assert (t is None) == (field not in expected)
        if t is not None:
            assert t is getattr(cell, field)


def test_torch_nn_parameter_names_and_shapes_match():
    # The same names and shapes as torch.nn's single layer, so state dicts copy one to one.
    for kind, mod in [("lstm", torch.nn.LSTM(F_IN, H, proj_size=PROJ)), ("gru", torch.nn.GRU(F_IN, H)),
                      ("rnn", torch.nn.RNN(F_IN, H))]:
        cell = RecurrentCell(kind, F_IN, H, proj_size=PROJ if kind == "lstm" else 0)
        theirs = {n.removesuffix("_l0"): tuple(p.shape) for n, p in mod.named_parameters()}
        ours = {n: tuple(p.shape) for n, p in cell.named_parameters()}
        assert ours == theirs


# ---------------------------------------------------------------------- initialisers


def test_torch_default_bounds():
    torch.manual_seed(0)
    cell = RecurrentCell("lstm", 30, 40, peephole=True, proj_size=20)
    bound = 1 / math.sqrt(40)
    for name, p in cell.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.9 * bound, f"{name} does not fill its range"


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_glorot_uniform_limits(kind):
    torch.manual_seed(0)
    F, Hh = 60, 50
    cell = RecurrentCell(kind, F, Hh, kernel_initializer="glorot_uniform", recurrent_initializer="glorot_uniform")
    for p in (cell.weight_ih, cell.weight_hh):
        fan_out, fan_in = p.shape  # torch layout (out, in); Keras stores the transpose
        limit = math.sqrt(6 / (fan_in + fan_out))
        assert p.abs().max() <= limit
        assert p.abs().max() > 0.95 * limit
        # U(-a, a) has variance a^2 / 3
        assert p.var().item() == pytest.approx(limit**2 / 3, rel=0.1)


def test_glorot_normal_variance():
    torch.manual_seed(0)
    cell = RecurrentCell("lstm", 100, 50, kernel_initializer="glorot_normal")
    fan_out, fan_in = cell.weight_ih.shape
    assert cell.weight_ih.std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.05)
    assert cell.weight_ih.mean().abs().item() < 0.01


@pytest.mark.parametrize("kind, proj", [("rnn", 0), ("lstm", 0), ("gru", 0), ("lstm", 4)])
def test_orthogonal_recurrent_weight(kind, proj):
    torch.manual_seed(0)
    cell = RecurrentCell(kind, F_IN, 8, proj_size=proj, recurrent_initializer="orthogonal", dtype=DTYPE)
    W = cell.weight_hh  # (G, P): orthonormal columns, as Keras' (P, G) kernel has orthonormal rows
    eye = torch.eye(W.shape[1], dtype=DTYPE)
    torch.testing.assert_close(W.t() @ W, eye, rtol=0, atol=1e-12)
    if kind == "rnn":  # square: orthogonal both ways
        torch.testing.assert_close(W @ W.t(), eye, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bias", ["double", "single"])
def test_unit_forget_bias_puts_one_in_the_forget_block(bias):
    torch.manual_seed(0)
    cell = RecurrentCell("lstm", F_IN, H, bias=bias, unit_forget_bias=True, bias_initializer="zeros")
    ones, zeros = torch.ones(H), torch.zeros(H)
    total = cell.bias_ih + (cell.bias_hh if cell.bias_hh is not None else 0)
    expected = torch.cat([zeros, ones, zeros, zeros])  # gate order i, f, g, o
    assert torch.equal(total.detach(), expected)
    assert torch.equal(cell.bias_ih.detach(), expected)  # the 1 sits in one bias only
    # with a random bias initialiser only the forget block is overwritten
    cell = RecurrentCell("lstm", F_IN, H, bias=bias, unit_forget_bias=True)
    total = cell.bias_ih + (cell.bias_hh if cell.bias_hh is not None else 0)
    assert torch.equal(total[H : 2 * H].detach(), ones)
    assert total[:H].abs().max() > 0 and total[2 * H :].abs().max() > 0


def test_unit_forget_bias_is_an_lstm_thing_only():
    torch.manual_seed(0)
    gru = RecurrentCell("gru", F_IN, H, unit_forget_bias=True, bias_initializer="zeros")
    assert torch.equal(gru.bias_ih.detach(), torch.zeros(3 * H))


@pytest.mark.parametrize("kind, proj", [("rnn", 0), ("lstm", 0), ("gru", 0), ("lstm", 3)])
def test_identity_recurrent_initialiser(kind, proj):
    cell = RecurrentCell(kind, F_IN, H, proj_size=proj, recurrent_initializer="identity")
    P = proj or H
    blocks = cell.weight_hh.detach().split(H)
    assert len(blocks) == {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    for blk in blocks:  # one identity per gate block
        assert torch.equal(blk, torch.eye(H, P))


def test_zeros_and_ones():
    cell = RecurrentCell("gru", F_IN, H, kernel_initializer="zeros", recurrent_initializer="ones",
                         bias_initializer="ones")
    assert torch.equal(cell.weight_ih.detach(), torch.zeros(3 * H, F_IN))
    assert torch.equal(cell.weight_hh.detach(), torch.ones(3 * H, H))
    assert torch.equal(cell.bias_hh.detach(), torch.ones(3 * H))


def test_layer_norm_starts_as_identity_affine():
    cell = RecurrentCell("lstm", F_IN, H, layer_norm=True)
    assert torch.equal(cell.ln_gamma.detach(), torch.ones(4 * H))
    assert torch.equal(cell.ln_beta.detach(), torch.zeros(4 * H))
    assert torch.equal(cell.ln_cell_gamma.detach(), torch.ones(H))
    assert torch.equal(cell.ln_cell_beta.detach(), torch.zeros(H))


def test_every_named_initialiser_fills_a_tensor():
    for name in INITIALIZERS:
        t = torch.full((12, 4), float("nan"))
        initialize(t, name, 4)
        assert torch.isfinite(t).all(), name


def test_unknown_initialiser_names_the_argument():
    with pytest.raises(ValueError, match="`recurrent_initializer`.*'he_normal'"):
        RecurrentCell("lstm", F_IN, H, recurrent_initializer="he_normal")
    with pytest.raises(ValueError, match="`kernel_initializer`"):
        RecurrentCell("lstm", F_IN, H, kernel_initializer="nope")
    with pytest.raises(ValueError, match="`bias_initializer`"):
        RecurrentCell("lstm", F_IN, H, bias_initializer="nope")


# --------------------------------------------------------------------- reset_parameters


def test_reset_parameters_redraws_everything():
    cell = make("lstm_all")
    before = {n: p.detach().clone() for n, p in cell.named_parameters()}
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(1.0)  # training moved every parameter
    cell.reset_parameters()
    for n, p in cell.named_parameters():
        assert not torch.equal(p, before[n] + 1.0), f"{n} was not reset"
    # LayerNorm goes back to its identity start; random weights are fresh draws in range
    assert torch.equal(cell.ln_gamma.detach(), torch.ones_like(cell.ln_gamma))
    assert torch.equal(cell.ln_cell_beta.detach(), torch.zeros_like(cell.ln_cell_beta))
    for n in ("weight_ih", "weight_hh", "weight_hr", "bias_ih", "peephole"):
        p = getattr(cell, n)
        assert not torch.equal(p, before[n]), f"{n} was not re-drawn"
        assert p.abs().max() <= 1 / math.sqrt(H)


def test_reset_parameters_is_reproducible_under_a_seed():
    cell = RecurrentCell("gru", F_IN, H, recurrent_initializer="orthogonal", kernel_initializer="glorot_uniform")
    torch.manual_seed(5)
    cell.reset_parameters()
    first = {n: p.detach().clone() for n, p in cell.named_parameters()}
    torch.manual_seed(5)
    cell.reset_parameters()
    for n, p in cell.named_parameters():
        assert torch.equal(p, first[n]), n


def test_reset_parameters_keeps_unit_forget_bias():
    cell = RecurrentCell("lstm", F_IN, H, unit_forget_bias=True)
    with torch.no_grad():
        cell.bias_ih.zero_()
        cell.bias_hh.fill_(3.0)
    cell.reset_parameters()
    assert torch.equal(cell.bias_ih[H : 2 * H].detach(), torch.ones(H))
    assert torch.equal(cell.bias_hh[H : 2 * H].detach(), torch.zeros(H))
