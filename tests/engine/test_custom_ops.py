"""The engine's loops as torch operators (rnnkit.engine.library) against the float64 reference.

Eager calls take the loops' autograd.Functions directly; tracers (torch.compile, export, jit
tracing) see the operators. ``library.force_ops()`` routes eager calls through the operators
too, so the same reference comparison as tests/engine/test_engine.py holds the operator route
to 1e-10 on values and every gradient, for both loops (C++ and Python).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit import engine
from rnnkit.engine import compiled, library

_spec = importlib.util.spec_from_file_location("engine_tests", Path(__file__).with_name("test_engine.py"))
engine_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_tests)
_spec = importlib.util.spec_from_file_location("paths_tests", Path(__file__).with_name("test_backward_paths.py"))
paths_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paths_tests)

CELLS = ["rnn_tanh", "rnn_sigmoid", "lstm", "lstm_peephole_ln", "lstm_proj", "gru_reset_after", "gru_reset_before"]
OPTIONS = ["plain", "everything", "lengths", "reverse+tbptt", "dropout+zoneout", "zoneout_inference"]


@pytest.mark.parametrize("backend", [None, "python"], ids=["default", "python"])
@pytest.mark.parametrize("opt", OPTIONS)
@pytest.mark.parametrize("name", CELLS)
def test_operator_route_matches_reference(name, opt, backend):
    with library.force_ops():
        engine_tests.compare_with_reference(name, "double", engine_tests.OPTIONS[opt], backend)


class OperatorPath:
    """A backward path of the C++ operator (recurrence.cpp), for test_backward_paths.compare:
    in the loop, the d(xw) histories with GEMMs after it (compiled.SUMS_IN_LOOP_MAX_BYTES lowered
    to 0), or the loop with threads sharing one weight gradient (compiled.SHARED_GRADS_MIN_BYTES
    lowered to 0). compiled.py decides, and the operator gets in_loop and share_grads as arguments:
    check_taken looks at what it got."""

    def __init__(self, name: str, monkeypatch) -> None:
        self.name, self.flags = name, []
        real = library._compiled_loop_args
        monkeypatch.setattr(library, "_compiled_loop_args", lambda inputs: self.flags.append(real(inputs)) or self.flags[-1])
        if name != "in_loop":
            monkeypatch.setattr(compiled, "SUMS_IN_LOOP_MAX_BYTES" if name == "histories" else "SHARED_GRADS_MIN_BYTES", 0)

    def run(self, *args, **kwargs):
        with library.force_ops():
            return engine.run(*args, **kwargs)

    def check_taken(self) -> None:
        assert self.flags == [(self.name != "histories", self.name == "shared")], self.flags


OPERATOR_PATHS = [("in_loop", 2), ("histories", 1), ("histories", 2), ("shared", 2)]


@pytest.mark.parametrize("path, threads", OPERATOR_PATHS, ids=[f"{p}-{n}thread" for p, n in OPERATOR_PATHS])
@pytest.mark.parametrize("opt", ["plain", "everything", "zoneout_inference"])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "lstm_peephole_ln", "gru_reset_after", "gru_reset_before"])
def test_operator_backward_paths_match_reference(name, opt, path, threads, monkeypatch):
    paths_tests.compare(name, opt, OperatorPath(path, monkeypatch), threads)


def test_operator_route_is_taken_when_forced(monkeypatch):
    # The comparison above would pass on the direct route too; make sure it is not what ran.
    calls = []
    real = library.run_op
    monkeypatch.setattr(library, "run_op", lambda *a, **k: calls.append(1) or real(*a, **k))
    cell = engine_tests.make_cell("lstm")
    x = torch.randn(2, 3, engine_tests.F_IN, dtype=torch.float64)
    engine.run(cell.spec, x, cell.weights())
    assert not calls, "an eager call went through the operators"
    with library.force_ops():
        engine.run(cell.spec, x, cell.weights())
    assert calls == [1]


@pytest.mark.parametrize("backend", [None, "python"], ids=["default", "python"])
def test_operator_route_reports_gradient_flow(backend):
    # The probe's "gradient" (per-step norms of dL/dh_t) through the operators equals the direct route's.
    cell = engine_tests.make_cell("lstm")
    x, state0, kw, _ = engine_tests.build_inputs(cell, ("lengths", "reverse"))
    got = []
    for forced in (False, True):
        probe = torch.zeros(engine_tests.T, 2, dtype=torch.float64, requires_grad=True)
        with library.force_ops() if forced else torch.enable_grad():
            out, (h, c) = engine.run(cell.spec, x, cell.weights(), state0, probe=probe, backend=backend or "auto", **kw)
            (out.square().sum() + h.sum()).backward()
        got.append(probe.grad)
    assert got[0].abs().max() > 0
    engine_tests.assert_rel(got[1], got[0], 1e-12, "probe gradient")


def test_operators_have_schemas_and_pass_opcheck():
    # torch.library.opcheck: schema, fake (meta) implementation, autograd registration and
    # dispatch consistency, for both loops, with and without the histories.
    cell = engine_tests.make_cell("lstm_peephole_ln")
    w = cell.weights()
    T, B = 4, 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, engine_tests.F_IN, dtype=torch.float64, generator=g, requires_grad=True)
    h0 = torch.randn(B, engine_tests.H, dtype=torch.float64, generator=g)
    c0 = torch.randn(B, engine_tests.H, dtype=torch.float64, generator=g)
    config = ("lstm", "tanh", "sigmoid", True, 0)
    xw = torch.nn.functional.linear(x, w.weight_ih, w.bias_ih).detach().requires_grad_()
    for need_cache in (False, True):  # without the histories (inference), nothing may require grad
        grad = need_cache
        wc = type(w)(*(None if t is None else t.detach().requires_grad_(grad) for t in w))
        args = (x.detach().requires_grad_(grad), h0, c0, *wc, None, None, None, None, None, *config, need_cache)
        torch.library.opcheck(library.compiled_forward, args)
        ww = wc._replace(weight_ih=None, bias_ih=None)
        args = (xw.detach().requires_grad_(grad), h0, c0, *ww, None, None, None, None, None, *config, need_cache)
        torch.library.opcheck(library.python_forward, args)


def test_importing_rnnkit_does_not_import_dynamo():
    # Registering the operators and marking load_error constant for torch.compile must not pull
    # in Dynamo (about 2.5 s at every import, the CLI's included).
    code = "import sys, rnnkit, rnnkit.nn, rnnkit.keras; assert 'torch._dynamo' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_operator_loads_the_extension_on_first_call():
    # A loaded torch.export program calls the operator before anything has loaded the C++ loop:
    # its Python kernel loads it, and the call then runs the C++ kernel.
    code = """
import torch, rnnkit
from rnnkit.engine import kernels
assert kernels._module is None
T, B, F, H = 3, 2, 4, 5
g = torch.Generator().manual_seed(0)
x, h0 = torch.randn(T, B, F, generator=g), torch.randn(B, H, generator=g)
w_ih, w_hh = torch.randn(H, F, generator=g), torch.randn(H, H, generator=g)
out, h_n = torch.ops.rnnkit.compiled_forward(x, h0, None, w_ih, w_hh, *[None] * 13, "rnn", "tanh", "sigmoid", True, 0,
                                             False)[:2]
assert kernels._module is not None
h = h0
for t in range(T):
    h = torch.tanh(x[t] @ w_ih.T + h @ w_hh.T)
    torch.testing.assert_close(out[t], h)
torch.testing.assert_close(h_n, h)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compiled_backward_defaults_to_sums_in_the_loop():
    # A graph compiled before compiled_backward took in_loop and share_grads (a stale torch.compile
    # cache) calls it without them: the defaults, the loop's own sums, give the same gradients.
    cell = engine_tests.make_cell("lstm_peephole_ln")
    w = cell.weights()
    T, B = 4, 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, engine_tests.F_IN, dtype=torch.float64, generator=g)
    h0, c0 = (torch.randn(B, engine_tests.H, dtype=torch.float64, generator=g) for _ in range(2))
    config = ("lstm", "tanh", "sigmoid", True, 0)
    res = library.compiled_forward(x, h0, c0, *w, None, None, None, None, None, *config, True)
    d_out = torch.randn(res[0].shape, dtype=torch.float64, generator=g)
    args = (d_out, None, None, x, *w, None, None, None, None, *res[3:], *config, False, [True] * 11)
    for a, b in zip(library.compiled_backward(*args), library.compiled_backward(*args, False, False)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru_reset_after", "gru_reset_before"])
def test_operator_histories_path_in_float32_matches_direct_route(name, monkeypatch):
    # float32 takes the operator's oneDNN GEMMs after the loop (recurrence.cpp, as blas.py does in
    # Python for the direct route), which the float64 grid above does not reach.
    monkeypatch.setattr(compiled, "SUMS_IN_LOOP_MAX_BYTES", 0)
    cell = engine_tests.make_cell(name)
    w32 = [None if t is None else t.detach().float() for t in cell.weights()]
    x = torch.randn(3, 5, engine_tests.F_IN, generator=torch.Generator().manual_seed(0))
    grads = []
    for forced in (False, True):
        w = type(cell.weights())(*(None if t is None else t.clone().requires_grad_() for t in w32))
        xl = x.clone().requires_grad_()
        with library.force_ops() if forced else torch.enable_grad():
            out, final = engine.run(cell.spec, xl, w)
        (out.square().sum() + sum(f.sum() for f in final)).backward()
        grads.append([xl.grad, *(t.grad for t in w if t is not None)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
