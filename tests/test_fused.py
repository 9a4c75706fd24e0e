"""The fused path (torch's kernels) against the engine, and the dispatch between them.

``run_layer(implementation="fused")`` must compute the same function as
``implementation="bptt"`` (the engine, itself checked against the autograd
reference in test_engine.py) wherever torch's kernels apply: outputs, final
states and every gradient, to 1e-5 in float32 and 1e-10 in float64. Where they
do not apply, "fused" must refuse with a ValueError that says why, and "auto"
must give the engine's numbers.
"""

from __future__ import annotations

import pytest
import torch
from compiled_loop import require_compiled_loop
from reference import ref_run

from rnnkit import engine
from rnnkit.cells import RecurrentCell
from rnnkit.ops import Weights
from rnnkit.recurrent import run_layer

B, T, F_IN, H, PROJ = 4, 9, 5, 6, 4
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}

# torch says so when it routes an LSTM with proj_size past oneDNN; the numbers are what we test.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


# name -> (kind, cell keyword arguments); every one has an exact fused equivalent
FUSABLE = {
    "lstm": ("lstm", {}),
    "lstm_single_bias": ("lstm", {"bias": "single"}),
    "lstm_no_bias": ("lstm", {"bias": "none"}),
    "lstm_proj": ("lstm", {"proj_size": PROJ}),
    "lstm_proj_no_bias": ("lstm", {"proj_size": PROJ, "bias": "none"}),
    "gru": ("gru", {"reset_after": True}),
    "gru_single_bias": ("gru", {"reset_after": True, "bias": "single"}),
    "gru_no_bias": ("gru", {"reset_after": True, "bias": "none"}),
    "rnn_tanh": ("rnn", {"activation": "tanh"}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
    "rnn_relu_no_bias": ("rnn", {"activation": "relu", "bias": "none"}),
}

NOT_FUSABLE = {
    "lstm_peephole": ("lstm", {"peephole": True}),
    "lstm_layer_norm": ("lstm", {"layer_norm": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
    "rnn_sigmoid": ("rnn", {"activation": "sigmoid"}),
    "lstm_hard_sigmoid_gates": ("lstm", {"recurrent_activation": "hard_sigmoid"}),
    "gru_relu": ("gru", {"activation": "relu"}),
}

# Options both paths run; "mask_right" is a right-padding mask, which fused turns into lengths.
OPTIONS = {
    "plain": (),
    "state0": ("state0",),
    "lengths": ("lengths",),
    "mask_right": ("mask_right",),
    "reverse": ("reverse",),
    "reverse+lengths": ("reverse", "lengths"),
    "state0+reverse+lengths": ("state0", "reverse", "lengths"),
    "tbptt": ("tbptt",),
    "tbptt+reverse+state0": ("tbptt", "reverse", "state0"),
    "tbptt+full_lengths": ("tbptt", "full_lengths"),
}


def make_cell(table: dict, name: str, dtype: torch.dtype) -> RecurrentCell:
    kind, kwargs = table[name]
    torch.manual_seed(0)
    return RecurrentCell(kind, F_IN, H, dtype=dtype, **kwargs)


def build_inputs(cell: RecurrentCell, opts, dtype: torch.dtype):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, F_IN, generator=g, dtype=dtype)
    state0 = None
    if "state0" in opts:
        state0 = tuple(0.5 * torch.randn(B, n, generator=g, dtype=dtype) for n in cell.state_sizes)
    lengths = torch.tensor([T, 3, 7, 1])  # unsorted, so the packing has to reorder
    kw = {}
    if "lengths" in opts:
        kw["lengths"] = lengths
    if "full_lengths" in opts:
        kw["lengths"] = torch.full((B,), T)
    if "mask_right" in opts:
        kw["mask"] = torch.arange(T)[None, :] < lengths[:, None]
    if "reverse" in opts:
        kw["reverse"] = True
    if "tbptt" in opts:
        kw["tbptt"] = 4
    return x, state0, kw


def values_and_grads(fn, cell, x, state0, kw):
    """Run fn on fresh leaves; backpropagate random cotangents of the output and final state."""
    xl = x.clone().requires_grad_(True)
    sl = None if state0 is None else tuple(s.clone().requires_grad_(True) for s in state0)
    w = Weights(*(None if t is None else t.detach().clone().requires_grad_(True) for t in cell.weights()))
    out, final = fn(cell.spec, xl, w, sl, **kw)
    g = torch.Generator().manual_seed(2)
    cot = [torch.randn(t.shape, generator=g, dtype=x.dtype) for t in (out, *final)]
    named = {"x": xl, **{f"state0[{i}]": s for i, s in enumerate(sl or ())},
             **{k: v for k, v in w._asdict().items() if v is not None}}
    grads = torch.autograd.grad([out, *final], list(named.values()), cot, allow_unused=True)
    result = {"out": out.detach(), **{f"final[{i}]": f.detach() for i, f in enumerate(final)}}
    result.update({f"d{k}": (torch.zeros_like(v) if gr is None else gr) for (k, v), gr in zip(named.items(), grads)})
    return result


def with_impl(implementation: str):
    def fn(spec, x, w, s, **kw):
        return run_layer(spec, x, w, s, implementation=implementation, **kw)

    return fn


def assert_rel(actual, expected, tol, what):
    assert actual.shape == expected.shape, what
    scale = max(expected.abs().max().item(), 1e-30)
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max error {err:.3e} vs scale {scale:.3e} (tol {tol})"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("name", list(FUSABLE))
def test_fused_matches_bptt(name, opt, dtype):
    cell = make_cell(FUSABLE, name, dtype)
    x, state0, kw = build_inputs(cell, OPTIONS[opt], dtype)
    fused = values_and_grads(with_impl("fused"), cell, x, state0, kw)
    bptt = values_and_grads(with_impl("bptt"), cell, x, state0, kw)
    assert fused.keys() == bptt.keys()
    for k in bptt:
        assert bptt[k].abs().max() > 0, f"{k} is identically zero: the comparison would prove nothing"
        assert_rel(fused[k], bptt[k], TOL[dtype], k)
    if "lengths" in kw or "mask" in kw:
        lengths = kw.get("lengths", torch.tensor([T, 3, 7, 1]))
        pad = torch.arange(T)[None, :] >= lengths[:, None]
        assert torch.all(fused["out"][pad] == 0)


@pytest.mark.parametrize("opt", ["plain", "state0+reverse+lengths", "tbptt+reverse+state0"])
@pytest.mark.parametrize("name", ["lstm_proj", "gru", "rnn_relu"])
def test_fused_matches_the_autograd_reference_in_float64(name, opt):
    # A second, independent witness: fused against the plain-autograd reference.
    cell = make_cell(FUSABLE, name, torch.float64)
    x, state0, kw = build_inputs(cell, OPTIONS[opt], torch.float64)
    ref_kw = dict(kw)
    if "lengths" in ref_kw:
        lengths = ref_kw.pop("lengths")
        ref_kw["mask"] = torch.arange(T)[None, :] < lengths[:, None]
    fused = values_and_grads(with_impl("fused"), cell, x, state0, kw)
    ref = values_and_grads(ref_run, cell, x, state0, ref_kw)
    for k in ref:
        assert_rel(fused[k], ref[k], TOL[torch.float64], k)


# ------------------------------------------------------------------ fused refuses


def _refusal_cases():
    cases = [pytest.param(name, (), id=name) for name in NOT_FUSABLE]
    cases += [
        pytest.param("lstm", ("dropout",), id="recurrent_dropout"),
        pytest.param("lstm", ("zoneout",), id="zoneout"),
        pytest.param("gru", ("zoneout",), id="gru_zoneout"),
        pytest.param("lstm", ("mask_holes",), id="mask_with_holes"),
        pytest.param("lstm", ("tbptt", "lengths"), id="tbptt+lengths"),
        pytest.param("gru", ("tbptt", "mask_right"), id="tbptt+mask"),
        pytest.param("lstm", ("zero_length",), id="zero_length"),
        pytest.param("lstm", ("probe",), id="probe"),
    ]
    return cases


def _refusal_inputs(name, opts, dtype=torch.float64):
    table = NOT_FUSABLE if name in NOT_FUSABLE else FUSABLE
    cell = make_cell(table, name, dtype)
    x, state0, kw = build_inputs(cell, [o for o in opts if o in ("lengths", "mask_right", "tbptt")], dtype)
    g = torch.Generator().manual_seed(3)
    if "dropout" in opts:
        kw["recurrent_mask"] = engine.recurrent_dropout_mask(B, cell.state_sizes[0], 0.3, like=x, generator=g)
    if "zoneout" in opts:
        kw["zoneout"] = tuple(engine.zoneout_keep(B, T, n, 0.3, True, like=x, generator=g) for n in cell.state_sizes)
    if "mask_holes" in opts:
        m = torch.ones(B, T, dtype=torch.bool)
        m[0, 2] = False
        kw["mask"] = m
    if "zero_length" in opts:
        kw["lengths"] = torch.tensor([T, 0, 2, 5])
    if "probe" in opts:
        kw["probe"] = torch.zeros(T, len(cell.state_sizes), dtype=dtype, requires_grad=True)
    return cell, x, state0, kw


REFUSAL_WORDS = {
    "lstm_peephole": "peephole",
    "lstm_layer_norm": "layer normalisation",
    "gru_reset_before": "reset_after",
    "rnn_sigmoid": "sigmoid",
    "lstm_hard_sigmoid_gates": "tanh and sigmoid",
    "gru_relu": "tanh and sigmoid",
    "recurrent_dropout": "recurrent dropout",
    "zoneout": "zoneout",
    "gru_zoneout": "zoneout",
    "mask_with_holes": "holes",
    "tbptt+lengths": "runcated BPTT",
    "tbptt+mask": "runcated BPTT",
    "zero_length": "length 0",
    "probe": "probe",
}


@pytest.mark.parametrize("name, opts", _refusal_cases())
def test_fused_refuses_what_it_cannot_run(request, name, opts):
    cell, x, state0, kw = _refusal_inputs(name, opts)
    word = REFUSAL_WORDS[request.node.callspec.id]
    with pytest.raises(ValueError, match=f"implementation='fused'.*{word}"):
        run_layer(cell.spec, x, cell.weights(), state0, implementation="fused", **kw)


@pytest.mark.parametrize("name, opts", [c for c in _refusal_cases() if c.id != "probe"])
def test_auto_falls_back_to_the_engine_with_identical_numbers(name, opts):
    cell, x, state0, kw = _refusal_inputs(name, opts)
    auto = values_and_grads(with_impl("auto"), cell, x, state0, kw)
    bptt = values_and_grads(with_impl("bptt"), cell, x, state0, kw)
    for k in bptt:
        assert torch.equal(auto[k], bptt[k]), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("name", list(FUSABLE))
def test_auto_matches_bptt_where_fusable(name, opt, dtype):
    cell = make_cell(FUSABLE, name, dtype)
    x, state0, kw = build_inputs(cell, OPTIONS[opt], dtype)
    auto = values_and_grads(with_impl("auto"), cell, x, state0, kw)
    bptt = values_and_grads(with_impl("bptt"), cell, x, state0, kw)
    for k in bptt:
        assert_rel(auto[k], bptt[k], TOL[dtype], k)


def test_auto_with_a_probe_uses_the_engine():
    cell = make_cell(FUSABLE, "lstm", torch.float64)
    x, state0, kw = build_inputs(cell, ("state0", "lengths"), torch.float64)
    grads = []
    for impl in ("auto", "bptt"):
        probe = torch.zeros(T, 2, dtype=torch.float64, requires_grad=True)
        out, final = run_layer(cell.spec, x, cell.weights(), state0, implementation=impl, probe=probe, **kw)
        (out.square().sum() + final[1].sum()).backward()
        grads.append(probe.grad)
    assert grads[0].abs().max() > 0
    assert torch.equal(grads[0], grads[1])


def test_fused_rejects_bad_arguments_like_the_engine():
    cell = make_cell(FUSABLE, "lstm", torch.float32)
    x, _, _ = build_inputs(cell, (), torch.float32)
    for impl in ("fused", "auto", "bptt"):
        with pytest.raises(ValueError, match="`lengths`"):
            run_layer(cell.spec, x, cell.weights(), lengths=torch.tensor([T + 1, 1, 1, 1]), implementation=impl)
        with pytest.raises(ValueError, match="`mask`"):
            run_layer(cell.spec, x, cell.weights(), mask=torch.ones(B, T + 1, dtype=torch.bool), implementation=impl)
        with pytest.raises(ValueError, match=r"`state0\[1\]`"):
            bad = (torch.zeros(B, H), torch.zeros(B, H + 1))
            run_layer(cell.spec, x, cell.weights(), bad, implementation=impl)
        with pytest.raises(TypeError, match="`x`"):
            run_layer(cell.spec, x.to(torch.int64), cell.weights(), implementation=impl)


@pytest.mark.parametrize(
    "kind, B, H, grad, fused",
    [
        ("lstm", 32, 128, True, False),  # training: the engine at every measured size
        ("lstm", 64, 256, True, False),
        ("lstm", 64, 128, False, False),  # inference: the engine below 256 hidden units,
        ("lstm", 64, 256, False, True),  # oneDNN from there
        ("gru", 32, 128, True, False),
        ("rnn", 32, 128, False, False),
    ],
)
def test_auto_follows_the_measured_rule(monkeypatch, kind, B, H, grad, fused):
    from rnnkit import recurrent

    require_compiled_loop()  # without it, auto always prefers torch's kernels
    calls = []
    real = recurrent.run_fused
    monkeypatch.setattr(recurrent, "run_fused", lambda *a, **k: calls.append(1) or real(*a, **k))
    cell = RecurrentCell(kind, 4, H)
    x = torch.randn(B, 3, 4)
    with torch.set_grad_enabled(grad):
        recurrent.run_layer(cell.spec, x, cell.weights(), implementation="auto")
    assert bool(calls) == fused
