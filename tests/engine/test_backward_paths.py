"""Every engine option through every backward path, against the float64 autograd reference.

The engine has three ways back through time, and each must give the reference's gradients:

- ``in_loop``: the compiled backward sums dW_hh and dW_ih inside its loop (small weights);
- ``histories``: it stores the gradient histories d(xw) (and GRU's d(W_hh h + b_hh)) and the
  weight gradients are GEMMs over all steps after it (weights past
  ``compiled.SUMS_IN_LOOP_MAX_BYTES``, lowered to 0 here to take that path at a small size);
- ``python``: the Python loop (``backend="python"``), with its own hand-derived step backwards.

The compiled paths run on one thread and on two (a batch large enough for the C++ loop to give
each thread its own rows). Every case checks that it took the path it names: a test of the C++
loop that quietly ran the Python one would prove nothing.
"""

from __future__ import annotations

import pytest
import torch
from compiled_loop import count_kernel_calls, require_compiled_loop
from reference import ref_run

from rnnkit import engine
from rnnkit.cells import RecurrentCell
from rnnkit.engine import compiled
from rnnkit.ops import Weights

DTYPE = torch.float64
RTOL = 1e-10

CELLS = {
    "rnn_tanh": ("rnn", {}),
    "lstm": ("lstm", {}),
    "lstm_peephole": ("lstm", {"peephole": True}),
    "lstm_layer_norm": ("lstm", {"layer_norm": True}),
    "lstm_peephole_ln": ("lstm", {"peephole": True, "layer_norm": True}),
    "gru_reset_after": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
}

OPTIONS = {
    "plain": (),
    "state0": ("state0",),
    "mask": ("mask",),
    "reverse": ("reverse",),
    "tbptt": ("tbptt", "state0"),
    "dropout": ("dropout",),
    "zoneout": ("zoneout",),
    "zoneout_inference": ("zoneout_inference",),  # fractional keeps, 0.3 everywhere
    "everything": ("state0", "mask", "reverse", "tbptt", "dropout", "zoneout"),
}

# (B, T, F, H): one thread's shapes are the reference tests' own; two threads need
# B * H * G >= 2**16 before the C++ loop splits the batch (batch_threads in recurrence.cpp).
SHAPES = {1: (3, 7, 4, 5), 2: (96, 5, 4, 16)}
RNN_HIDDEN_TWO_THREADS = 32  # an Elman cell's G is H: 96 * 32 * 32 >= 2**16


def make_cell(name: str, F: int, H: int, bias: str = "double", seed: int = 0) -> RecurrentCell:
    """A float64 cell with every parameter random, LN gains and shifts and peepholes included."""
    kind, kwargs = CELLS[name]
    torch.manual_seed(seed)
    cell = RecurrentCell(kind, F, H, bias=bias, dtype=DTYPE, **kwargs)
    with torch.no_grad():
        for pname in ("ln_gamma", "ln_cell_gamma"):
            if getattr(cell, pname) is not None:
                getattr(cell, pname).uniform_(0.5, 1.5)
        for pname in ("ln_beta", "ln_cell_beta", "peephole"):
            if getattr(cell, pname) is not None:
                getattr(cell, pname).uniform_(-0.5, 0.5)
    return cell


def build_inputs(cell: RecurrentCell, opts, B: int, T: int, F: int, seed: int = 1):
    """x, state0 and the keyword arguments (the engine's and the reference's are the same here)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F, generator=g, dtype=DTYPE)
    sizes = cell.state_sizes
    state0 = tuple(0.5 * torch.randn(B, n, generator=g, dtype=DTYPE) for n in sizes) if "state0" in opts else None
    kw: dict = {}
    if "mask" in opts:
        m = torch.rand(B, T, generator=g) > 0.3  # holes anywhere, a whole row masked sometimes
        m[0] = True  # and one full row, so that every step has a real row
        kw["mask"] = m
    if "reverse" in opts:
        kw["reverse"] = True
    if "tbptt" in opts:
        kw["tbptt"] = 2
    if "dropout" in opts:
        kw["recurrent_mask"] = engine.recurrent_dropout_mask(B, sizes[0], 0.4, like=x, generator=g)
    if "zoneout" in opts or "zoneout_inference" in opts:
        training = "zoneout" in opts
        kw["zoneout"] = tuple(engine.zoneout_keep(B, T, n, 0.3, training, like=x, generator=g) for n in sizes)
    return x, state0, kw


def forward_and_grads(fn, spec, x, state0, w: Weights, kw: dict, seed: int = 2):
    """Values and every gradient (x, state0, each weight) under random cotangents of out and the final state."""
    xl = x.detach().clone().requires_grad_(True)
    sl = None if state0 is None else tuple(s.detach().clone().requires_grad_(True) for s in state0)
    wl = Weights(*(None if t is None else t.detach().clone().requires_grad_(True) for t in w))
    out, final = fn(spec, xl, wl, sl, **kw)
    g = torch.Generator().manual_seed(seed)
    cot = [torch.randn(t.shape, generator=g, dtype=DTYPE) for t in (out, *final)]
    inputs = {"x": xl, **{f"state0[{i}]": s for i, s in enumerate(sl or ())},
              **{k: v for k, v in wl._asdict().items() if v is not None}}
    grads = torch.autograd.grad([out, *final], list(inputs.values()), cot, allow_unused=True)
    values = {"out": out.detach(), **{f"final[{i}]": f.detach() for i, f in enumerate(final)}}
    return values, {k: torch.zeros_like(v) if gr is None else gr for (k, v), gr in zip(inputs.items(), grads)}


def assert_rel(actual, expected, rtol: float, what: str) -> None:
    """max |actual - expected| <= rtol * max |expected|."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert err <= rtol * max(scale, 1e-300), f"{what}: max error {err:.3e} vs scale {scale:.3e} (rtol {rtol})"


class BackwardPath:
    """Run the engine down one backward path, and check afterwards that it did."""

    def __init__(self, name: str, monkeypatch) -> None:
        self.name = name
        self.in_loop: list[bool] = []
        self.calls = None
        if name == "python":
            self.run = lambda *a, **k: engine.run(*a, backend="python", **k)
            return
        self.calls = count_kernel_calls(monkeypatch)
        if name == "histories":
            monkeypatch.setattr(compiled, "SUMS_IN_LOOP_MAX_BYTES", 0)
        real = compiled.sums_in_loop
        monkeypatch.setattr(compiled, "sums_in_loop", lambda *a: self.in_loop.append(real(*a)) or self.in_loop[-1])
        self.run = engine.run

    def check_taken(self) -> None:
        if self.name == "python":
            return
        assert self.calls["forward"] == 1 and self.calls["backward"] == 1, f"kernel calls {dict(self.calls)}"
        assert self.in_loop == [self.name == "in_loop"], f"sums_in_loop said {self.in_loop} on the {self.name} path"


def compare(name: str, opt: str, path: BackwardPath, threads: int, bias: str = "double") -> None:
    B, T, F, H = SHAPES[threads]
    if threads == 2 and name == "rnn_tanh":
        H = RNN_HIDDEN_TWO_THREADS
    cell = make_cell(name, F, H, bias)
    x, state0, kw = build_inputs(cell, OPTIONS[opt], B, T, F)
    w = cell.weights()
    torch.set_num_threads(threads)
    try:
        got_v, got_g = forward_and_grads(path.run, cell.spec, x, state0, w, kw)
    finally:
        torch.set_num_threads(1)
    path.check_taken()
    exp_v, exp_g = forward_and_grads(ref_run, cell.spec, x, state0, w, kw)
    assert got_g.keys() == exp_g.keys()
    for k in exp_v:
        assert_rel(got_v[k], exp_v[k], RTOL, k)
    for k in exp_g:
        assert exp_g[k].abs().max() > 0, f"the reference gradient of {k} is identically zero"
        assert_rel(got_g[k], exp_g[k], RTOL, f"d{k} ({path.name}, {threads} thread(s))")


# The Python loop has no threads of its own: one thread covers it.
PATHS = [("in_loop", 1), ("in_loop", 2), ("histories", 1), ("histories", 2), ("python", 1)]


@pytest.mark.parametrize("path, threads", PATHS, ids=[f"{p}-{n}thread" for p, n in PATHS])
@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("name", list(CELLS))
def test_every_option_through_every_backward_path(name, opt, path, threads, monkeypatch):
    compare(name, opt, BackwardPath(path, monkeypatch), threads)


@pytest.mark.parametrize("path", ["in_loop", "histories"])
@pytest.mark.parametrize("bias", ["single", "none"])
@pytest.mark.parametrize("name", ["lstm", "lstm_peephole", "lstm_layer_norm", "lstm_peephole_ln", "gru_reset_after",
                                  "gru_reset_before", "rnn_tanh"])
def test_bias_modes_on_the_compiled_paths(name, bias, path, monkeypatch):
    compare(name, "everything", BackwardPath(path, monkeypatch), 1, bias)


# ------------------------------------------------------------------------- gradcheck

GC_B, GC_T, GC_F, GC_H = 2, 4, 3, 3


def _gradcheck(name: str, opts, bias: str, path: BackwardPath) -> None:
    cell = make_cell(name, GC_F, GC_H, bias, seed=3)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(GC_B, GC_T, GC_F, generator=g, dtype=DTYPE, requires_grad=True)
    state0 = tuple(torch.randn(GC_B, n, generator=g, dtype=DTYPE, requires_grad=True) for n in cell.state_sizes)
    names = [k for k, v in cell.weights()._asdict().items() if v is not None]
    weights = [getattr(cell, k).detach().clone().requires_grad_(True) for k in names]
    kw: dict = {}
    if "mask" in opts:
        kw["mask"] = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=torch.bool)
    if "reverse" in opts:
        kw["reverse"] = True
    if "dropout" in opts:
        kw["recurrent_mask"] = engine.recurrent_dropout_mask(GC_B, cell.state_sizes[0], 0.5, like=x, generator=g)
    if "zoneout" in opts:
        kw["zoneout"] = tuple(engine.zoneout_keep(GC_B, GC_T, n, 0.5, True, like=x, generator=g)
                              for n in cell.state_sizes)

    def fn(x, *rest):
        w = Weights(**dict(zip(names, rest[len(state0):])))
        out, final = path.run(cell.spec, x, w, rest[: len(state0)], **kw)
        return (out, *final)

    assert torch.autograd.gradcheck(fn, (x, *state0, *weights), eps=1e-6, atol=1e-7, rtol=1e-5)
    assert path.calls["backward"] > 0 and set(path.in_loop) == {path.name == "in_loop"}


# TBPTT is left out: its gradient is not the derivative finite differences see (the reference
# grid above holds it to a graph detached by hand instead).
@pytest.mark.parametrize("path", ["in_loop", "histories"])
@pytest.mark.parametrize("bias", ["double", "single", "none"])
@pytest.mark.parametrize("opts", [(), ("mask", "reverse"), ("dropout", "zoneout")], ids=lambda o: "+".join(o) or "plain")
@pytest.mark.parametrize("name", ["lstm_peephole", "lstm_layer_norm", "lstm_peephole_ln"])
def test_gradcheck_lstm_options_on_the_compiled_loop(name, opts, bias, path, monkeypatch):
    _gradcheck(name, opts, bias, BackwardPath(path, monkeypatch))


def test_the_default_path_runs_the_compiled_loop(monkeypatch):
    # What every "default" case in test_engine.py relies on: with the loop built, engine.run
    # takes it, forward and backward, for every cell the C++ loop covers.
    calls = count_kernel_calls(monkeypatch)
    for name in CELLS:
        cell = make_cell(name, 4, 5)
        x = torch.randn(3, 7, 4, dtype=DTYPE, requires_grad=True)
        assert engine.recurrence.uses_compiled_loop(cell.spec, cell.weights(), x)
        out, final = engine.run(cell.spec, x, cell.weights())
        (out.sum() + sum(f.sum() for f in final)).backward()
    assert calls["forward"] == len(CELLS) and calls["backward"] == len(CELLS)
    calls.clear()
    cell = make_cell("lstm", 4, 5)
    engine.run(cell.spec, torch.randn(3, 7, 4, dtype=DTYPE), cell.weights(), backend="python")
    assert not calls, "backend='python' must not call the compiled loop"


def test_require_compiled_loop_cannot_skip_when_kernels_are_required(monkeypatch):
    # Under RNNKIT_REQUIRE_KERNELS=1 (CI) a missing loop is an error, never a skip.
    from rnnkit.engine import kernels

    monkeypatch.setenv("RNNKIT_REQUIRE_KERNELS", "1")
    monkeypatch.setattr(kernels, "_module", None)
    monkeypatch.setattr(kernels, "_load_error", "RuntimeError: no c++ compiler")
    with pytest.raises(kernels.KernelsUnavailableError, match="no c\\+\\+ compiler"):
        require_compiled_loop()
