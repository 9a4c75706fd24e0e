"""The hand-derived BPTT engine against the autograd reference, in float64.

``rnnkit.engine.run`` (forward loop + hand-written backward) is compared with
``tests/reference.py`` (the equations step by step, autograd does the backward):
outputs, final states and every gradient (x, the initial state, every weight)
must agree to 1e-10 relative, for every cell and option alone and in sensible
pairs. ``gradcheck`` then checks the hand-written backward against finite
differences directly.
"""

from __future__ import annotations

import functools
import inspect
import math

import pytest
import torch
from compiled_loop import require_compiled_loop
from reference import ref_run, ref_step

from rnnkit import engine
from rnnkit.cells import RecurrentCell
from rnnkit.ops import Weights

DTYPE = torch.float64
RTOL = 1e-10
B, T, F_IN, H = 3, 7, 4, 5
PROJ = 3

# name -> (kind, cell keyword arguments)
CELLS = {
    "rnn_tanh": ("rnn", {"activation": "tanh"}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
    "rnn_sigmoid": ("rnn", {"activation": "sigmoid"}),
    "lstm": ("lstm", {}),
    "lstm_peephole": ("lstm", {"peephole": True}),
    "lstm_layer_norm": ("lstm", {"layer_norm": True}),
    "lstm_peephole_ln": ("lstm", {"peephole": True, "layer_norm": True}),
    # another activation: the compiled loop's general row code (sigmoid and tanh have their own)
    "lstm_relu": ("lstm", {"activation": "relu"}),
    "lstm_proj": ("lstm", {"proj_size": PROJ}),
    "lstm_peephole_ln_proj": ("lstm", {"peephole": True, "layer_norm": True, "proj_size": PROJ}),
    "gru_reset_after": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
    "gru_relu": ("gru", {"reset_after": True, "activation": "relu"}),  # the general row code
}

# Sequence-level options, each alone and in the pairs a layer actually meets.
OPTIONS = {
    "plain": (),
    "state0": ("state0",),
    "mask_right": ("mask_right",),
    "mask_holes": ("mask_holes",),
    "lengths": ("lengths",),
    "reverse": ("reverse",),
    "tbptt": ("tbptt",),
    "dropout": ("dropout",),
    "zoneout": ("zoneout",),
    "zoneout_inference": ("zoneout_inference",),
    "state0+lengths": ("state0", "lengths"),
    "reverse+lengths": ("reverse", "lengths"),
    "reverse+mask_holes": ("reverse", "mask_holes"),
    "reverse+tbptt": ("reverse", "tbptt"),
    "tbptt+state0": ("tbptt", "state0"),
    "tbptt+mask_holes": ("tbptt", "mask_holes"),
    "dropout+zoneout": ("dropout", "zoneout"),
    "dropout+lengths": ("dropout", "lengths"),
    "zoneout+mask_holes": ("zoneout", "mask_holes"),
    "everything": ("state0", "mask_holes", "reverse", "tbptt", "dropout", "zoneout"),
}


# The engine may offer more than one implementation of its time loop (a compiled one and
# the Python one, chosen by ``backend``); every one it offers is held to the reference.
# None is the default choice, whatever it resolves to for a configuration.
ENGINE_BACKENDS = [None] + (["python"] if "backend" in inspect.signature(engine.run).parameters else [])
backends = pytest.mark.parametrize("backend", ENGINE_BACKENDS, ids=lambda b: b or "default")


def engine_run(backend):
    return engine.run if backend is None else functools.partial(engine.run, backend=backend)


# ----------------------------------------------------------------------------- helpers


def make_cell(name: str, bias: str = "double", seed: int = 0, *, dtype: torch.dtype = DTYPE, input_size: int = F_IN,
              hidden_size: int = H, **overrides) -> RecurrentCell:
    """A float64 cell whose every parameter is random (LN gains and shifts included,
    so that their gradients are exercised away from the trivial 1/0 start)."""
    kind, kwargs = CELLS[name]
    torch.manual_seed(seed)
    cell = RecurrentCell(kind, input_size, hidden_size, bias=bias, dtype=dtype, **{**kwargs, **overrides})
    with torch.no_grad():
        for pname in ("ln_gamma", "ln_cell_gamma"):
            p = getattr(cell, pname)
            if p is not None:
                p.uniform_(0.5, 1.5)
        for pname in ("ln_beta", "ln_cell_beta", "peephole"):
            p = getattr(cell, pname)
            if p is not None:
                p.uniform_(-0.5, 0.5)
    return cell


def present(w: Weights) -> dict[str, torch.Tensor]:
    return {name: t for name, t in w._asdict().items() if t is not None}


def right_padded_lengths() -> torch.Tensor:
    # One full sequence, one short, one of length 1: padding at every position.
    return torch.tensor([T, 4, 1])


def lengths_mask(lengths: torch.Tensor) -> torch.Tensor:
    """Right-padding mask built here, independently of rnnkit.engine.lengths_to_mask."""
    return torch.stack([torch.tensor([t < int(n) for t in range(T)]) for n in lengths])


def holes_mask() -> torch.Tensor:
    m = torch.ones(B, T, dtype=torch.bool)
    m[0, [1, 2, 5]] = False  # holes inside the sequence
    m[1, 0] = False  # a hole at the start
    m[1, T - 2 :] = False  # and right padding
    m[2, 3] = False
    return m


def build_inputs(cell: RecurrentCell, opts, seed: int = 1):
    """x, state0 and the engine/reference keyword arguments for a set of options."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F_IN, generator=g, dtype=DTYPE)
    sizes = cell.state_sizes
    state0 = None
    if "state0" in opts:
        state0 = tuple(0.5 * torch.randn(B, n, generator=g, dtype=DTYPE) for n in sizes)
    eng, ref = {}, {}
    if "mask_right" in opts:
        eng["mask"] = ref["mask"] = lengths_mask(right_padded_lengths())
    if "mask_holes" in opts:
        eng["mask"] = ref["mask"] = holes_mask()
    if "lengths" in opts:
        eng["lengths"] = right_padded_lengths()
        ref["mask"] = lengths_mask(eng["lengths"])
    if "reverse" in opts:
        eng["reverse"] = ref["reverse"] = True
    if "tbptt" in opts:
        eng["tbptt"] = ref["tbptt"] = 3
    if "dropout" in opts:
        rdm = engine.recurrent_dropout_mask(B, sizes[0], 0.4, like=x, generator=g)
        eng["recurrent_mask"] = ref["recurrent_mask"] = rdm
    if "zoneout" in opts or "zoneout_inference" in opts:
        training = "zoneout" in opts
        z = tuple(engine.zoneout_keep(B, T, n, 0.3, training, like=x, generator=g) for n in sizes)
        eng["zoneout"] = ref["zoneout"] = z
    return x, state0, eng, ref


def leaves(x, state0, w: Weights):
    """Fresh leaf copies, so the engine and the reference get separate graphs."""
    xl = x.detach().clone().requires_grad_(True)
    sl = None if state0 is None else tuple(s.detach().clone().requires_grad_(True) for s in state0)
    wl = Weights(*(None if t is None else t.detach().clone().requires_grad_(True) for t in w))
    return xl, sl, wl


def forward_and_grads(fn, spec, x, state0, w, kwargs, seed: int = 2):
    """Run fn, backpropagate random cotangents of out and of every final state,
    and return the values and gradients by name."""
    xl, sl, wl = leaves(x, state0, w)
    out, final = fn(spec, xl, wl, sl, **kwargs)
    g = torch.Generator().manual_seed(seed)
    cot = [torch.randn(out.shape, generator=g, dtype=DTYPE)] + [
        torch.randn(f.shape, generator=g, dtype=DTYPE) for f in final
    ]
    inputs = {"x": xl, **{f"state0[{i}]": s for i, s in enumerate(sl or ())}, **present(wl)}
    grads = torch.autograd.grad([out, *final], list(inputs.values()), cot, allow_unused=True)
    values = {"out": out.detach(), **{f"final[{i}]": f.detach() for i, f in enumerate(final)}}
    return values, {k: (torch.zeros_like(v) if gr is None else gr) for (k, v), gr in zip(inputs.items(), grads)}


def assert_rel(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    """max |actual - expected| <= rtol * max |expected| (relative to the tensor's scale)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = expected.abs().max().item() if expected.numel() else 0.0
    err = (actual - expected).abs().max().item() if expected.numel() else 0.0
    assert err <= rtol * max(scale, 1e-300), f"{what}: max error {err:.3e} vs scale {scale:.3e} (rtol {rtol})"


def compare_with_reference(name: str, bias: str, opts, backend=None) -> None:
    cell = make_cell(name, bias)
    x, state0, eng_kw, ref_kw = build_inputs(cell, opts)
    w = cell.weights()
    got_v, got_g = forward_and_grads(engine_run(backend), cell.spec, x, state0, w, eng_kw)
    exp_v, exp_g = forward_and_grads(ref_run, cell.spec, x, state0, w, ref_kw)
    assert got_v.keys() == exp_v.keys() and got_g.keys() == exp_g.keys()
    for k in exp_v:
        assert_rel(got_v[k], exp_v[k], RTOL, k)
    for k in exp_g:
        # Every gradient must be non-trivial, or the comparison proves nothing.
        assert exp_g[k].abs().max() > 0, f"reference gradient of {k} is identically zero"
        assert_rel(got_g[k], exp_g[k], RTOL, f"d{k}")


# ------------------------------------------------------------------ engine == reference


@backends
@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("name", list(CELLS))
def test_engine_matches_reference(name, opt, backend):
    compare_with_reference(name, "double", OPTIONS[opt], backend)


@backends
@pytest.mark.parametrize("opt", ["plain", "everything", "lengths", "dropout"])
@pytest.mark.parametrize("bias", ["single", "none"])
@pytest.mark.parametrize("name", list(CELLS))
def test_engine_matches_reference_bias_modes(name, bias, opt, backend):
    compare_with_reference(name, bias, OPTIONS[opt], backend)


def test_masks_are_01_floats_or_bools_alike():
    cell = make_cell("lstm")
    x, _, _, _ = build_inputs(cell, ())
    w = cell.weights()
    m = holes_mask()
    out_b, fin_b = engine.run(cell.spec, x, w, mask=m)
    out_f, fin_f = engine.run(cell.spec, x, w, mask=m.to(DTYPE))
    exp_out, exp_fin = ref_run(cell.spec, x, w, mask=m)
    for a, b, e in zip((out_b, *fin_b), (out_f, *fin_f), (exp_out, *exp_fin)):
        assert_rel(a, e, RTOL, "bool mask")
        assert_rel(b, e, RTOL, "float mask")


# ------------------------------------------------------------------------- gradcheck

GC_B, GC_T, GC_F, GC_H = 2, 4, 3, 3


def _gradcheck(name: str, opts, bias: str = "double", backend=None):
    kind, kwargs = CELLS[name]
    kwargs = dict(kwargs)
    if kwargs.get("proj_size"):
        kwargs["proj_size"] = 2
    torch.manual_seed(3)
    cell = RecurrentCell(kind, GC_F, GC_H, bias=bias, dtype=DTYPE, **kwargs)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(GC_B, GC_T, GC_F, generator=g, dtype=DTYPE, requires_grad=True)
    state0 = tuple(torch.randn(GC_B, n, generator=g, dtype=DTYPE, requires_grad=True) for n in cell.state_sizes)
    names = [k for k, v in cell.weights()._asdict().items() if v is not None]
    weights = [getattr(cell, k).detach().clone().requires_grad_(True) for k in names]
    if "layer_norm" in kwargs:
        with torch.no_grad():
            for k, t in zip(names, weights):
                if k.startswith("ln_"):
                    t.uniform_(0.5, 1.5, generator=g)
    kw = {}
    if "mask_holes" in opts:
        kw["mask"] = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=torch.bool)
    if "reverse" in opts:
        kw["reverse"] = True
    if "dropout" in opts:
        kw["recurrent_mask"] = engine.recurrent_dropout_mask(GC_B, cell.state_sizes[0], 0.5, like=x, generator=g)
    if "zoneout" in opts:
        kw["zoneout"] = tuple(engine.zoneout_keep(GC_B, GC_T, n, 0.5, True, like=x, generator=g) for n in cell.state_sizes)

    def fn(x, *rest):
        s = rest[: len(state0)]
        w = Weights(**dict(zip(names, rest[len(state0) :])))
        out, final = engine_run(backend)(cell.spec, x, w, s, **kw)
        return (out, *final)

    assert torch.autograd.gradcheck(fn, (x, *state0, *weights), eps=1e-6, atol=1e-7, rtol=1e-5)


@backends
@pytest.mark.parametrize("name", list(CELLS))
def test_gradcheck_cells(name, backend):
    _gradcheck(name, (), backend=backend)


# TBPTT is left out on purpose: its gradient is not the derivative finite differences see.
@pytest.mark.parametrize("opts", [("mask_holes",), ("reverse",), ("dropout",), ("zoneout",), ("reverse", "mask_holes")],
                         ids=lambda o: "+".join(o))
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm_peephole_ln_proj", "gru_reset_after", "gru_reset_before"])
def test_gradcheck_options(name, opts):
    _gradcheck(name, opts)
    if "python" in ENGINE_BACKENDS:
        _gradcheck(name, opts, backend="python")


@pytest.mark.parametrize("bias", ["single", "none"])
@pytest.mark.parametrize("name", ["rnn_relu", "lstm", "gru_reset_after", "gru_reset_before"])
def test_gradcheck_bias_modes(name, bias):
    _gradcheck(name, (), bias)


# ------------------------------------------------------------------------------ IRNN


def test_irnn_recurrent_weight_is_identity_and_keeps_the_state():
    torch.manual_seed(0)
    cell = RecurrentCell(
        "rnn", F_IN, H, activation="relu", recurrent_initializer="identity",
        kernel_initializer="irnn_input", bias_initializer="zeros", dtype=DTYPE,
    )
    assert torch.equal(cell.weight_hh, torch.eye(H, dtype=DTYPE))
    assert torch.equal(cell.bias_ih, torch.zeros(H, dtype=DTYPE))
    assert torch.equal(cell.bias_hh, torch.zeros(H, dtype=DTYPE))
    # Le et al. (2015): input weights from N(0, 0.001^2); a large sample pins the scale.
    big = RecurrentCell("rnn", 400, 100, activation="relu", kernel_initializer="irnn_input", dtype=DTYPE)
    assert abs(big.weight_ih.std().item() - 1e-3) < 5e-5
    # Hand check: with zero input, h_t = relu(I h_{t-1}) = h_{t-1} for h >= 0, forever.
    h0 = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]], dtype=DTYPE)
    x = torch.zeros(1, T, F_IN, dtype=DTYPE)
    out, (hT,) = engine.run(cell.spec, x, cell.weights(), (h0,))
    assert torch.equal(hT, h0)
    assert torch.equal(out, h0[:, None, :].expand(1, T, H))
    # and negative entries are cut to zero on the first step and stay there
    out, (hT,) = engine.run(cell.spec, x, cell.weights(), (-h0,))
    assert torch.equal(hT, torch.zeros_like(h0))


# ----------------------------------------------------------------------------- TBPTT


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru_reset_after"])
def test_tbptt_equals_autograd_on_a_graph_detached_every_k_steps(name, reverse):
    k = 3
    cell = make_cell(name)
    x, state0, _, _ = build_inputs(cell, ("state0",))
    w = cell.weights()
    got_v, got_g = forward_and_grads(engine.run, cell.spec, x, state0, w, {"tbptt": k, "reverse": reverse})

    # The reference graph is detached by hand here, every k processed steps.
    def detached_ref(spec, x, w, state0, reverse):
        order = list(range(T - 1, -1, -1)) if reverse else list(range(T))
        h, c = state0[0], state0[1] if spec.kind == "lstm" else None
        outs = [None] * T
        for n, t in enumerate(order):
            if n and n % k == 0:
                h = h.detach()
                c = None if c is None else c.detach()
            h, c = ref_step(spec, w, x[:, t], h, c, None)
            outs[t] = h
        return torch.stack(outs, 1), ((h, c) if c is not None else (h,))

    exp_v, exp_g = forward_and_grads(detached_ref, cell.spec, x, state0, w, {"reverse": reverse})
    _, full_g = forward_and_grads(ref_run, cell.spec, x, state0, w, {"reverse": reverse})
    for key in exp_v:
        assert_rel(got_v[key], exp_v[key], RTOL, key)
    for key in exp_g:
        assert_rel(got_g[key], exp_g[key], RTOL, f"d{key}")
    # The cut must matter, or this test could not fail: full BPTT differs.
    assert (got_g["weight_hh"] - full_g["weight_hh"]).abs().max() > 1e-3 * full_g["weight_hh"].abs().max()
    # state0 only reaches the loss through the first window's outputs now
    assert (got_g["state0[0]"] - full_g["state0[0]"]).abs().max() > 1e-6


def test_tbptt_window_longer_than_the_sequence_is_full_bptt():
    cell = make_cell("lstm")
    x, state0, _, _ = build_inputs(cell, ("state0",))
    w = cell.weights()
    _, got = forward_and_grads(engine.run, cell.spec, x, state0, w, {"tbptt": T + 5})
    _, exp = forward_and_grads(ref_run, cell.spec, x, state0, w, {})
    for key in exp:
        assert_rel(got[key], exp[key], RTOL, f"d{key}")


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("use", ["lengths", "mask"])
@pytest.mark.parametrize("name", ["rnn_relu", "lstm", "lstm_peephole_ln_proj", "gru_reset_after", "gru_reset_before"])
def test_padded_final_state_equals_the_sequence_run_alone(name, use, reverse):
    cell = make_cell(name)
    x, state0, _, _ = build_inputs(cell, ("state0",))
    lengths = right_padded_lengths()
    # Padding holds garbage: it must not leak into anything.
    x = x.clone()
    pad = ~lengths_mask(lengths)
    x[pad] = 1e3
    kw = {"lengths": lengths} if use == "lengths" else {"mask": lengths_mask(lengths)}
    out, final = engine.run(cell.spec, x, cell.weights(), state0, reverse=reverse, **kw)
    assert torch.all(out[pad] == 0), "padded outputs must be exactly zero"
    for i, n in enumerate(lengths.tolist()):
        alone_in = x[i : i + 1, :n]
        alone_s0 = tuple(s[i : i + 1] for s in state0)
        alone_out, alone_final = engine.run(cell.spec, alone_in, cell.weights(), alone_s0, reverse=reverse)
        ref_out, ref_final = ref_run(cell.spec, alone_in, cell.weights(), alone_s0, reverse=reverse)
        for f, a, r in zip(final, alone_final, ref_final):
            assert_rel(f[i : i + 1], a, RTOL, "final state vs alone")
            assert_rel(f[i : i + 1], r, RTOL, "final state vs reference alone")
        assert_rel(out[i : i + 1, :n], ref_out.detach(), RTOL, "outputs vs reference alone")


def test_mask_holes_freeze_the_state_and_zero_the_output():
    cell = make_cell("gru_reset_after")
    x, state0, _, _ = build_inputs(cell, ("state0",))
    m = holes_mask()
    # the engine's full sequence of states, recovered from outputs on real steps
    out, _ = engine.run(cell.spec, x, cell.weights(), state0, mask=m)
    assert torch.all(out[~m] == 0)
    # Dropping the masked steps altogether gives the same states on the real ones.
    for i in range(B):
        keep = m[i].nonzero().squeeze(1)
        alone_out, _ = ref_run(cell.spec, x[i : i + 1, keep], cell.weights(), tuple(s[i : i + 1] for s in state0))
        assert_rel(out[i : i + 1, keep], alone_out.detach(), RTOL, f"row {i}")


@backends
def test_zero_length_sequence_keeps_its_initial_state(backend):
    cell = make_cell("lstm")
    x, state0, _, _ = build_inputs(cell, ("state0",))
    lengths = torch.tensor([T, 0, 2])
    out, final = engine_run(backend)(cell.spec, x, cell.weights(), state0, lengths=lengths)
    for f, s in zip(final, state0):
        assert_rel(f[1], s[1], RTOL, "state of the empty sequence")
    assert torch.all(out[1] == 0)


@backends
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_masked_steps_leave_the_state_bit_identical(backend, dtype):
    # "A sequence's state freezes after its last step": frozen means bit for bit, whatever
    # garbage the padding holds, or long padding slowly moves the state of short sequences.
    # (A mix written new + keep * (old - new) fails this: 2.44e-4 vs 2.57e-4 in float32 here.)
    for name in ("rnn_relu", "gru_reset_after", "lstm"):
        cell = make_cell(name).to(dtype)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(B, T, F_IN, generator=g, dtype=dtype)
        state0 = tuple(torch.randn(B, n, generator=g, dtype=dtype) for n in cell.state_sizes)
        lengths = torch.tensor([2, 0, 5])
        x[torch.arange(T)[None, :] >= lengths[:, None]] = 1e3
        with torch.no_grad():
            out, final = engine_run(backend)(cell.spec, x, cell.weights(), state0, lengths=lengths)
        assert torch.equal(final[0][0], out[0, 1]), f"{name}: h of a length-2 sequence moved while padded"
        assert torch.equal(final[0][2], out[2, 4]), f"{name}: h of a length-5 sequence moved while padded"
        for f, s in zip(final, state0):
            assert torch.equal(f[1], s[1]), f"{name}: the state of an empty sequence moved"


# ------------------------------------------------------------------- gradient probe


def probed_reference(spec, x, w, state0, *, mask=None, reverse=False, tbptt=None):
    """The reference loop again, keeping every state_t with ``retain_grad``.

    The probe reports dL/d(state_t) for the state *tuple* a step hands on: each component's
    gradient with the other held fixed, i.e. everything that reaches it from its own output
    and from later steps and the final state. For h_t that is the whole total gradient. For
    an LSTM's c_t, h_t = o_t tanh(c_t) is a sibling output of the same step, so the same-step
    path c_t -> h_t belongs to h_t's entry, not c_t's: the reference hands on a separate node
    (``clone``) that only later steps consume, and retains that one.
    """
    order = list(range(T - 1, -1, -1)) if reverse else list(range(T))
    lstm = spec.kind == "lstm"
    h, c = state0[0], (state0[1] if lstm else None)
    outs, kept = [None] * T, [None] * T
    for n, t in enumerate(order):
        if tbptt and n and n % tbptt == 0:
            h = h.detach()
            c = None if c is None else c.detach()
        h_new, c_new = ref_step(spec, w, x[:, t], h, c, None)
        if mask is not None:
            m = mask[:, t].to(x.dtype)[:, None]
            h_new = m * h_new + (1 - m) * h
            c_new = m * c_new + (1 - m) * c if lstm else None
            outs[t] = h_new * m
        else:
            outs[t] = h_new
        h, c = h_new, (c_new.clone() if lstm else None)
        h.retain_grad()
        if lstm:
            c.retain_grad()
        kept[t] = (h, c) if lstm else (h,)
    return torch.stack(outs, 1), ((h, c) if lstm else (h,)), kept


@pytest.mark.parametrize("opt", ["plain", "reverse", "mask_holes", "tbptt", "reverse+mask_holes"])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "lstm_proj", "gru_reset_before"])
def test_probe_reports_the_total_gradient_norm_of_each_state(name, opt):
    cell = make_cell(name)
    x, state0, kw, _ = build_inputs(cell, ("state0",) + OPTIONS[opt])
    n_state = len(cell.state_sizes)
    g = torch.Generator().manual_seed(5)
    cot_out = torch.randn(B, T, cell.state_sizes[0], generator=g, dtype=DTYPE)
    cot_fin = [torch.randn(B, n, generator=g, dtype=DTYPE) for n in cell.state_sizes]

    probe = torch.zeros(T, n_state, dtype=DTYPE, requires_grad=True)
    out, final = engine.run(cell.spec, x, cell.weights(), state0, probe=probe, **kw)
    torch.autograd.backward([out, *final], [cot_out, *cot_fin])

    ref_kw = {k: v for k, v in kw.items() if k in ("mask", "reverse", "tbptt")}
    r_out, r_final, kept = probed_reference(cell.spec, x, cell.weights(), state0, **ref_kw)
    torch.autograd.backward([r_out, *r_final], [cot_out, *cot_fin])
    # A state cut off by TBPTT (c_t just before a window boundary) gets no gradient at all.
    expected = torch.tensor(
        [[0.0 if s.grad is None else torch.linalg.vector_norm(s.grad).item() for s in kept[t]] for t in range(T)],
        dtype=DTYPE,
    )
    assert_rel(probe.grad, expected, RTOL, "probe")
    # the norm is of the total gradient: it differs from the output cotangent alone
    # wherever a later step feeds back (all but the last processed step).
    assert not torch.allclose(expected[:, 0], torch.linalg.vector_norm(cot_out, dim=(0, 2)))


def test_probe_is_the_same_with_an_all_ones_mask():
    # The same function, written with and without a mask, must report the same flow.
    cell = make_cell("lstm_proj")
    x, state0, _, _ = build_inputs(cell, ("state0",))
    grads = []
    for kw in ({}, {"mask": torch.ones(B, T, dtype=torch.bool)}, {"lengths": torch.full((B,), T)}):
        probe = torch.zeros(T, 2, dtype=DTYPE, requires_grad=True)
        out, final = engine.run(cell.spec, x, cell.weights(), state0, probe=probe, **kw)
        (out.square().sum() + final[1].sum()).backward()
        grads.append(probe.grad)
    assert_rel(grads[1], grads[0], RTOL, "mask of ones")
    assert_rel(grads[2], grads[0], RTOL, "full lengths")


def test_probe_does_not_change_the_other_gradients():
    cell = make_cell("lstm_peephole_ln_proj")
    x, state0, kw, _ = build_inputs(cell, ("state0", "mask_holes", "tbptt"))
    w = cell.weights()
    without_v, without_g = forward_and_grads(engine.run, cell.spec, x, state0, w, kw)

    def run_with_probe(spec, x, w, s, **kw):
        return engine.run(spec, x, w, s, probe=torch.zeros(T, 2, dtype=DTYPE, requires_grad=True), **kw)

    with_v, with_g = forward_and_grads(run_with_probe, cell.spec, x, state0, w, kw)
    for k in without_v:
        assert torch.equal(with_v[k], without_v[k])
    for k in without_g:
        assert torch.equal(with_g[k], without_g[k])


# ------------------------------------------------------------------ dropout, zoneout


def test_recurrent_dropout_mask_is_reproducible_and_per_sequence():
    like = torch.zeros((), dtype=DTYPE)
    a = engine.recurrent_dropout_mask(64, 32, 0.25, like=like, generator=torch.Generator().manual_seed(7))
    b = engine.recurrent_dropout_mask(64, 32, 0.25, like=like, generator=torch.Generator().manual_seed(7))
    c = engine.recurrent_dropout_mask(64, 32, 0.25, like=like, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (64, 32)  # one mask per sequence, reused at every step
    # inverted dropout: kept units are scaled so the expectation is unchanged
    assert set(a.unique().tolist()) == {0.0, 1 / (1 - 0.25)}
    assert abs((a == 0).double().mean().item() - 0.25) < 0.05
    assert engine.recurrent_dropout_mask(4, 3, 0.0, like=like) is None


def test_zoneout_masks_are_reproducible():
    like = torch.zeros((), dtype=DTYPE)
    a = engine.zoneout_keep(8, 50, 16, 0.3, True, like=like, generator=torch.Generator().manual_seed(7))
    b = engine.zoneout_keep(8, 50, 16, 0.3, True, like=like, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.03
    # fresh per step, unlike recurrent dropout
    assert not torch.equal(a[:, 0], a[:, 1])


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after", "rnn_tanh"])
def test_dropout_and_zoneout_runs_are_reproducible_with_a_fixed_seed(name):
    cell = make_cell(name)

    def run(seed):
        x, state0, kw, _ = build_inputs(cell, ("dropout", "zoneout"), seed=seed)
        return engine.run(cell.spec, x, cell.weights(), state0, **kw)

    (o1, f1), (o2, f2), (o3, _) = run(11), run(11), run(12)
    assert torch.equal(o1, o2) and all(torch.equal(a, b) for a, b in zip(f1, f2))
    assert not torch.equal(o1, o3)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
def test_zoneout_at_inference_is_the_deterministic_mix(name):
    rate = 0.3
    cell = make_cell(name)
    x, state0, _, _ = build_inputs(cell, ("state0",))
    keep = tuple(engine.zoneout_keep(B, T, n, rate, False, like=x) for n in cell.state_sizes)
    out, final = engine.run(cell.spec, x, cell.weights(), state0, zoneout=keep)
    out2, _ = engine.run(cell.spec, x, cell.weights(), state0,
                         zoneout=tuple(engine.zoneout_keep(B, T, n, rate, False, like=x) for n in cell.state_sizes))
    assert torch.equal(out, out2)
    # By hand: state_t = rate * state_{t-1} + (1 - rate) * cell(x_t, state_{t-1}).
    state = state0
    with torch.no_grad():
        for t in range(T):
            new = cell(x[:, t], state)
            state = tuple(rate * old + (1 - rate) * nw for old, nw in zip(state, new))
            assert_rel(out[:, t], state[0], RTOL, f"h_{t}")
    for f, s in zip(final, state):
        assert_rel(f, s, RTOL, "final")


def test_dropout_and_zoneout_rates_at_the_edges():
    # rate 0 means no zoneout at all; zoneout_keep returns None so the engine skips it
    like = torch.zeros((), dtype=DTYPE)
    assert engine.zoneout_keep(2, 3, 4, 0.0, True, like=like) is None
    with pytest.raises(ValueError, match="zoneout"):
        engine.zoneout_keep(2, 3, 4, 1.0, True, like=like)
    with pytest.raises(ValueError, match="recurrent_dropout"):
        engine.recurrent_dropout_mask(2, 3, -0.1, like=like)


# ---------------------------------------------------------------------- odd shapes


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after", "rnn_tanh"])
def test_single_step_and_batch_of_one(name):
    cell = make_cell(name)
    g = torch.Generator().manual_seed(0)
    for b, t in [(1, T), (B, 1), (1, 1)]:
        x = torch.randn(b, t, F_IN, generator=g, dtype=DTYPE)
        s0 = tuple(torch.randn(b, n, generator=g, dtype=DTYPE) for n in cell.state_sizes)
        w = cell.weights()
        xs, ss, ws = leaves(x, s0, w)
        out, fin = engine.run(cell.spec, xs, ws, ss)
        xr, sr, wr = leaves(x, s0, w)
        rout, rfin = ref_run(cell.spec, xr, wr, sr)
        assert_rel(out.detach(), rout.detach(), RTOL, "out")
        (out.sum() + sum(f.sum() for f in fin)).backward()
        (rout.sum() + sum(f.sum() for f in rfin)).backward()
        assert_rel(xs.grad, xr.grad, RTOL, "dx")
        assert_rel(ws.weight_hh.grad, wr.weight_hh.grad, RTOL, "dweight_hh")
        assert not math.isnan(xs.grad.sum().item())


@backends
def test_engine_is_exact_on_a_batch_large_enough_to_split_across_threads(backend):
    # Everything above runs on one thread; here the batch is big enough for any per-row
    # parallel loop to split it, and two threads are on.
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        cell = RecurrentCell("lstm", 8, 16, dtype=DTYPE)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(600, 4, 8, generator=g, dtype=DTYPE)
        lengths = torch.randint(0, 5, (600,), generator=g)
        w = cell.weights()
        kw = {"lengths": lengths, "reverse": True}
        got_v, got_g = forward_and_grads(engine_run(backend), cell.spec, x, None, w, kw)
        exp_v, exp_g = forward_and_grads(
            ref_run, cell.spec, x, None, w, {"mask": torch.arange(4)[None, :] < lengths[:, None], "reverse": True}
        )
        for k in exp_v:
            assert_rel(got_v[k], exp_v[k], RTOL, k)
        for k in exp_g:
            assert_rel(got_g[k], exp_g[k], RTOL, f"d{k}")
    finally:
        torch.set_num_threads(1)


def _run_threads(threads: int, cell: RecurrentCell, kw: dict, x: torch.Tensor):
    torch.set_num_threads(threads)
    try:
        return forward_and_grads(engine.run, cell.spec, x, None, cell.weights(), kw, seed=3)
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("Bt", [520, 40, 12])
@pytest.mark.parametrize("opt", ["plain", "mask_holes+reverse", "dropout", "zoneout+tbptt"])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "lstm_peephole_ln", "gru_reset_after", "gru_reset_before"])
@pytest.mark.parametrize("share", [False, True])
def test_compiled_loop_on_two_threads_equals_one_thread_in_float32(name, opt, Bt, share, monkeypatch):
    # 520 rows: each thread takes its own rows through the sequence (an uneven 256 + 264) and
    # sums the weight gradients at every step; 40 rows (16 + 24): every 5 steps, and the last
    # 2 together. With share, the threads split the weight gradients' rows between them at each
    # of those sums (compiled.shares_grads; here forced). 12 rows: too few to split, so each
    # step's GEMM splits its column panels instead (float32 takes the packed GEMM). A race or a
    # wrong split shows up as a difference from one thread.
    from rnnkit.engine import compiled

    if share:
        monkeypatch.setattr(compiled, "SHARED_GRADS_MIN_BYTES", 0)
    Tt, Ft, Ht = 7, 8, 96
    cell = make_cell(name, dtype=torch.float32, input_size=Ft, hidden_size=Ht)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(Bt, Tt, Ft, generator=g)
    kw: dict = {}
    if "mask_holes" in opt:
        kw["mask"] = torch.rand(Bt, Tt, generator=g) > 0.3
        kw["reverse"] = True
    if opt == "dropout":
        kw["recurrent_mask"] = engine.recurrent_dropout_mask(Bt, Ht, 0.3, like=x, generator=g)
    if opt == "zoneout+tbptt":
        n_state = 2 if name.startswith("lstm") else 1
        kw["zoneout"] = [(torch.rand(Bt, Tt, Ht, generator=g) < 0.3).float() for _ in range(n_state)]
        kw["tbptt"] = 2
    one_v, one_g = _run_threads(1, cell, kw, x)
    two_v, two_g = _run_threads(2, cell, kw, x)
    torch.set_num_threads(2)
    try:
        with torch.no_grad():  # the inference loop, which keeps no caches
            two_v["out (no grad)"] = engine.run(cell.spec, x, cell.weights(), **kw)[0]
    finally:
        torch.set_num_threads(1)
    one_v["out (no grad)"] = one_v["out"]
    for k in one_v:
        torch.testing.assert_close(two_v[k], one_v[k], rtol=1e-6, atol=1e-6, msg=k)
    for k in one_g:
        # The weight gradients sum thousands of rows in another order on two threads; against
        # the tensor's scale that moves them by ~1e-6, but elementwise it can exceed 1e-4.
        assert_rel(two_g[k], one_g[k], 1e-5, f"d{k}")


@pytest.mark.parametrize("frozen", ["weight_hh", "weight_ih"])
def test_shared_weight_gradients_skip_a_frozen_weight_on_two_threads(frozen, monkeypatch):
    # The threads' shared weight gradient (compiled.shares_grads, forced here) must leave out a
    # frozen weight's part and still sum the other's: two threads against one.
    from rnnkit.engine import compiled

    monkeypatch.setattr(compiled, "SHARED_GRADS_MIN_BYTES", 0)
    cell = make_cell("lstm", dtype=torch.float32, input_size=8, hidden_size=96)
    getattr(cell, frozen).requires_grad_(False)
    x = torch.randn(40, 7, 8, generator=torch.Generator().manual_seed(6), requires_grad=True)
    grads = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            out, final = engine.run(cell.spec, x, cell.weights())
            trained = [x] + [p for p in cell.parameters() if p.requires_grad]
            loss = out.square().sum() + sum(f.sum() for f in final)
            grads.append(torch.autograd.grad(loss, trained))
        finally:
            torch.set_num_threads(1)
    assert len(grads[0]) == 4  # x, the other weight, both biases
    for one, two in zip(*grads):
        assert_rel(two, one, 1e-5, "grad")


def test_cached_buffers_are_reused_and_released():
    from rnnkit.engine import kernels

    require_compiled_loop()
    cell = RecurrentCell("gru", 32, 256)
    x = torch.randn(64, 40, 32, requires_grad=True)  # per-step buffers of >= 1 MB go to the cache
    first = None
    for _ in range(3):
        out, _ = engine.run(cell.spec, x, cell.weights())
        out.sum().backward()
        first = x.grad.clone() if first is None else first
        x.grad = None
    out, _ = engine.run(cell.spec, x, cell.weights())
    out.sum().backward()
    torch.testing.assert_close(x.grad, first, rtol=0, atol=0)  # a reused buffer holds no stale data
    assert kernels._module.pool_cached_bytes() > 0
    assert engine.release_cached_memory() > 0
    assert kernels._module.pool_cached_bytes() == 0


def test_kernel_build_falls_back_to_serial_then_to_the_python_loop(monkeypatch):
    from rnnkit.engine import kernels as compiled

    monkeypatch.setattr(compiled, "_module", None)
    monkeypatch.setattr(compiled, "_load_error", None)
    monkeypatch.delenv("RNNKIT_KERNELS", raising=False)
    monkeypatch.delenv("RNNKIT_REQUIRE_KERNELS", raising=False)
    serial = object()

    def no_openmp(flags, ldflags):
        if "-fopenmp" in flags:
            raise RuntimeError("fatal error: omp.h: No such file or directory")
        assert "-fopenmp-simd" in flags and ldflags == []
        return serial

    monkeypatch.setattr(compiled, "_build_or_import", no_openmp)
    assert compiled.load_kernels() is serial

    def no_compiler(flags, ldflags):
        raise RuntimeError("no c++ compiler")

    monkeypatch.setattr(compiled, "_module", None)
    monkeypatch.setattr(compiled, "_build_or_import", no_compiler)
    with pytest.warns(RuntimeWarning, match="Python time loop"):
        assert compiled.load_kernels() is None
    assert "no c++ compiler" in compiled._load_error


@pytest.mark.parametrize("value", ["1", "true"])
def test_a_failed_build_is_an_error_when_kernels_are_required(monkeypatch, value):
    # CI (.ci/run) sets RNNKIT_REQUIRE_KERNELS: a broken build must fail the run, on every call,
    # not fall back to the Python loop and pass.
    from rnnkit.engine import kernels

    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_load_error", None)
    monkeypatch.delenv("RNNKIT_KERNELS", raising=False)
    monkeypatch.setenv("RNNKIT_REQUIRE_KERNELS", value)
    builds = []

    def no_compiler(flags, ldflags):
        builds.append(flags)
        raise RuntimeError("no c++ compiler")

    monkeypatch.setattr(kernels, "_build_or_import", no_compiler)
    cell = make_cell("gru_reset_after")
    x = torch.randn(B, T, F_IN, dtype=DTYPE)
    for _ in range(2):  # the first call builds (and fails); the second must not carry on either
        with pytest.raises(kernels.KernelsUnavailableError, match="no c\\+\\+ compiler"):
            engine.run(cell.spec, x, cell.weights())
    assert len(builds) == 2  # with OpenMP, then without; not retried on the second call
    # The Python loop asked for by name still runs.
    out, _ = engine.run(cell.spec, x, cell.weights(), backend="python")
    assert_rel(out, ref_run(cell.spec, x, cell.weights())[0], RTOL, "python loop")


def test_forcing_the_python_loop_contradicts_requiring_kernels(monkeypatch):
    from rnnkit.engine import kernels

    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_load_error", None)
    monkeypatch.setenv("RNNKIT_KERNELS", "python")
    monkeypatch.setenv("RNNKIT_REQUIRE_KERNELS", "1")
    with pytest.raises(kernels.KernelsUnavailableError, match="RNNKIT_KERNELS=python"):
        kernels.load_kernels()
    monkeypatch.delenv("RNNKIT_REQUIRE_KERNELS")
    assert kernels.load_kernels() is None


def test_weight_grad_of_a_column_slice_reaches_onednn_dense(monkeypatch):
    # A column slice (row stride > width) once sent oneDNN down a path ~1000x slower: 11 s
    # instead of 10 ms for GRU reset-before's weight gradient at config L. blas.linear must hand
    # oneDNN only dense operands; a stand-in for its linear records what it gets.
    from rnnkit.engine import blas

    seen = []

    def fake_onednn_linear(x, w, b, *args):
        seen.append((x.is_contiguous(), w.is_contiguous() or w.t().is_contiguous()))
        return torch.nn.functional.linear(x, w, b)

    monkeypatch.setattr(blas, "_ONEDNN_LINEAR", fake_onednn_linear)
    g = torch.Generator().manual_seed(0)
    d, h = torch.randn(64, 24, generator=g), torch.randn(64, 8, generator=g)
    got = blas.weight_grad(d[:, :16], h)
    torch.testing.assert_close(got, d[:, :16].t() @ h, rtol=1e-5, atol=1e-5)
    assert seen == [(True, True)], f"oneDNN was handed (x dense, w dense) = {seen}"


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru_reset_after"])
def test_a_broadcast_output_gradient_equals_the_same_gradient_materialised(name, masked):
    # out.sum() hands backward a stride-0 gradient, which the compiled loop reads in place.
    cell = make_cell(name)
    x = torch.randn(B, T, F_IN, dtype=DTYPE)
    kw = {"lengths": right_padded_lengths()} if masked else {}
    grads = []
    for materialise in (False, True):
        xl = x.clone().requires_grad_(True)
        out, _ = engine.run(cell.spec, xl, cell.weights(), **kw)
        if materialise:
            out.backward(torch.ones_like(out).contiguous())
        else:
            out.sum().backward()
        grads.append(xl.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


@pytest.mark.parametrize("opt", ["plain", "mask_holes", "zoneout_inference", "reverse+lengths"])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "lstm_peephole", "gru_reset_after", "gru_reset_before"])
def test_inference_without_caches_gives_the_training_forward_bit_for_bit(name, opt):
    # Without autograd the compiled loop keeps only one step of gates and two of the cell.
    cell = make_cell(name)
    x, state0, kw, _ = build_inputs(cell, OPTIONS[opt])
    with torch.no_grad():
        out_i, fin_i = engine.run(cell.spec, x, cell.weights(), state0, **kw)
    out_t, fin_t = engine.run(cell.spec, x.clone().requires_grad_(True), cell.weights(), state0, **kw)
    assert torch.equal(out_i, out_t.detach())
    for a, b in zip(fin_i, fin_t):
        assert torch.equal(a, b.detach())


def test_rnnkit_pool_mb_zero_keeps_nothing():
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from rnnkit import engine\n"
        "from rnnkit.cells import RecurrentCell\n"
        "from rnnkit.engine import kernels as compiled\n"
        "assert compiled.load_kernels() is not None\n"
        "cell = RecurrentCell('gru', 32, 256)\n"
        "x = torch.randn(64, 40, 32, requires_grad=True)\n"
        "for _ in range(2):\n"
        "    engine.run(cell.spec, x, cell.weights())[0].sum().backward()\n"
        "print(compiled._module.pool_cached_bytes())\n"
    )
    require_compiled_loop()  # here, and so in the child, which shares the kernel cache
    env = {**__import__("os").environ, "RNNKIT_POOL_MB": "0"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert res.stdout.strip().splitlines()[-1] == "0"


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after", "gru_reset_before", "rnn_tanh"])
def test_frozen_weights_get_no_gradient_and_the_rest_are_unchanged(name):
    cell = make_cell(name)
    x = torch.randn(B, T, F_IN, dtype=DTYPE, requires_grad=True)
    out, _ = engine.run(cell.spec, x, cell.weights())
    out.sum().backward()
    full = {n: p.grad.clone() for n, p in cell.named_parameters()}
    dx = x.grad.clone()
    cell.zero_grad(set_to_none=True)
    x.grad = None
    cell.weight_ih.requires_grad_(False)
    cell.weight_hh.requires_grad_(False)
    out, _ = engine.run(cell.spec, x, cell.weights())
    out.sum().backward()
    assert cell.weight_ih.grad is None and cell.weight_hh.grad is None
    torch.testing.assert_close(x.grad, dx, rtol=0, atol=0)
    for n, p in cell.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, full[n], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_after"])
def test_probe_norms_on_two_threads_equal_one_thread(name):
    # The probe's per-step norms are summed per thread's rows and combined after the loop.
    cell = make_cell(name, dtype=torch.float32, input_size=8, hidden_size=64)
    x = torch.randn(128, 5, 8, generator=torch.Generator().manual_seed(0))
    norms = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            probe = torch.zeros(5, cell.spec.n_states, requires_grad=True)
            out, _ = engine.run(cell.spec, x, cell.weights(), probe=probe)
            out.pow(2).sum().backward()
            norms.append(probe.grad)
        finally:
            torch.set_num_threads(1)
    torch.testing.assert_close(norms[1], norms[0], rtol=1e-5, atol=1e-6)
    assert norms[0].abs().sum() > 0


def test_compiled_loop_lets_other_python_threads_run(monkeypatch):
    # forward/backward release the GIL like torch's own ops. With a switch interval of 100 s the
    # interpreter never takes the GIL from a thread on its own, so the watcher thread can run
    # only where the main thread lets go of it: if it ever sees `inside` set, it ran while the
    # main thread was inside the compiled forward. No timing is involved.
    import sys
    import threading

    from rnnkit.engine import kernels

    require_compiled_loop()
    real = kernels._module
    state = {"inside": False, "seen": False}

    class Watched:
        def __getattr__(self, name):
            return getattr(real, name)

        def forward(self, *args):
            state["inside"] = True
            try:
                return real.forward(*args)
            finally:
                state["inside"] = False

    monkeypatch.setattr(kernels, "_module", Watched())
    stop = threading.Event()

    def watcher():
        while not stop.is_set() and not state["seen"]:
            if state["inside"]:
                state["seen"] = True
            stop.wait(0.0005)  # lets go of the GIL

    cell = RecurrentCell("gru", 16, 64)
    x = torch.randn(16, 50, 16)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    thread = threading.Thread(target=watcher)
    try:
        thread.start()
        with torch.no_grad():
            for _ in range(2000):
                engine.run(cell.spec, x, cell.weights())
                if state["seen"]:
                    break
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        thread.join()
    assert state["seen"], "no other Python thread ran while the compiled forward ran"


@pytest.mark.parametrize("sums", ["in_loop", "histories"])
@pytest.mark.parametrize("opt", ["plain", "mask_holes+reverse", "dropout+zoneout", "tbptt+state0", "everything"])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "lstm_peephole", "lstm_layer_norm", "lstm_peephole_ln",
                                  "gru_reset_after", "gru_reset_before"])
def test_float32_loop_gradients_match_the_float64_reference(name, opt, sums, monkeypatch):
    # float32 runs the AVX-512 kernels where the CPU has them: per step, and for the weight
    # gradients, summed chunk by chunk inside the backward (here chunks of 3 steps of 37 rows,
    # and a short last one); 13 hidden and 7 input units leave ragged 8- and 32-wide panels.
    # With "histories" the weight gradients are GEMMs over the stored d(xw) after the loop.
    from rnnkit.engine import compiled

    require_compiled_loop()
    if sums == "histories":
        monkeypatch.setattr(compiled, "SUMS_IN_LOOP_MAX_BYTES", 0)
    Bt, Tt, Ft, Ht = 37, 23, 7, 13
    cell32 = make_cell(name, dtype=torch.float32, input_size=Ft, hidden_size=Ht)
    cell64 = make_cell(name, dtype=torch.float64, input_size=Ft, hidden_size=Ht)
    with torch.no_grad():
        for p32, p64 in zip(cell32.parameters(), cell64.parameters()):
            p64.copy_(p32)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(Bt, Tt, Ft, generator=g)
    kw32: dict = {}
    n_state = 2 if name.startswith("lstm") else 1
    everything = opt == "everything"
    if "mask_holes" in opt or everything:
        kw32.update(mask=torch.rand(Bt, Tt, generator=g) > 0.3, reverse=True)
    if "dropout" in opt or everything:
        kw32["recurrent_mask"] = engine.recurrent_dropout_mask(Bt, Ht, 0.3, like=x, generator=g)
    if "zoneout" in opt or everything:
        kw32["zoneout"] = [(torch.rand(Bt, Tt, Ht, generator=g) < 0.3).float() for _ in range(n_state)]
    if "tbptt" in opt or everything:
        kw32["tbptt"] = 5  # windows cut inside the 3-step chunks and across them
    state0 = None
    if "state0" in opt or everything:
        state0 = tuple(0.5 * torch.randn(Bt, Ht, generator=g) for _ in range(n_state))
    kw64 = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in kw32.items()}
    if "zoneout" in kw32:
        kw64["zoneout"] = [z.double() for z in kw32["zoneout"]]
    got_v, got_g = forward_and_grads(engine.run, cell32.spec, x, state0, cell32.weights(), kw32)
    state0_64 = None if state0 is None else tuple(s.double() for s in state0)
    exp_v, exp_g = forward_and_grads(ref_run, cell64.spec, x.double(), state0_64, cell64.weights(), kw64)
    for k in exp_v:
        assert_rel(got_v[k].double(), exp_v[k], 1e-5, k)
    for k in exp_g:
        assert_rel(got_g[k].double(), exp_g[k], 1e-4, f"d{k}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm_peephole_ln", "gru_reset_after", "gru_reset_before"])
def test_backward_with_gradient_histories_matches_the_loop_sums(name, dtype, monkeypatch):
    # Large weights make the compiled backward keep d(xw) histories for GEMMs after the loop
    # (compiled.sums_in_loop); small ones sum the gradients inside it. Both must agree.
    from rnnkit.engine import compiled

    require_compiled_loop()
    cell = make_cell(name, dtype=dtype, input_size=7, hidden_size=13)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(37, 9, 7, generator=g, dtype=dtype)
    kw = {"mask": torch.rand(37, 9, generator=g) > 0.3, "reverse": True}
    loop_v, loop_g = forward_and_grads(engine.run, cell.spec, x, None, cell.weights(), kw)
    monkeypatch.setattr(compiled, "SUMS_IN_LOOP_MAX_BYTES", 0)
    hist_v, hist_g = forward_and_grads(engine.run, cell.spec, x, None, cell.weights(), kw)
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    for k in loop_v:
        assert_rel(hist_v[k], loop_v[k], rtol, k)
    for k in loop_g:
        assert_rel(hist_g[k], loop_g[k], rtol, f"d{k}")
