"""Cells stepped by hand: the fast path (torch's one-step kernel) is rnnkit's step math, and costs
no more Python per step than torch.nn's cells (counted, since timings vary with load)."""

import sys

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.cells import RecurrentCell
from rnnkit.engine import kernels

B, F_IN, H = 4, 6, 7
CELLS = {
    "lstm": (rnn.LSTMCell, torch.nn.LSTMCell, {}),
    "gru": (rnn.GRUCell, torch.nn.GRUCell, {}),
    "rnn_tanh": (rnn.RNNCell, torch.nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnn.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
}


def steps(cell, xs, state):
    """Step by hand; returns the sum of every step's h (and c) and the final state."""
    total = 0
    for x in xs:
        state = cell(x, state)
        total = total + sum(s.sum() for s in state) if isinstance(state, tuple) else total + state.sum()
    return total


@pytest.mark.parametrize("route", ["engine", "torch"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(CELLS))
def test_fast_path_equals_rnnkit_step_math_in_float64(kind, bias, route, monkeypatch):
    """Both kernels of the fast path: the engine's one-step operator (LSTM, GRU) and torch's."""
    ours_cls, _, options = CELLS[kind]
    torch.manual_seed(0)
    cell = ours_cls(F_IN, H, bias=bias, dtype=torch.float64, **options)
    assert cell._kernel_key is not None
    if route == "torch":
        monkeypatch.setattr(kernels, "_module", None)
    elif cell._step_code is None or kernels._module is None:
        pytest.skip("the engine's step covers LSTM and GRU, with the C++ loop built")
    xs = torch.randn(5, B, F_IN, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    state = (h0, c0) if kind == "lstm" else h0

    def reference(x, s):  # rnnkit.ops' step under autograd, on the same weights
        new = RecurrentCell.forward(cell, x, s if isinstance(s, tuple) else (s,))
        return new if kind == "lstm" else new[0]

    fast = steps(cell, xs, state)
    ref = steps(reference, xs, state)
    leaves = [xs, h0, *([c0] if kind == "lstm" else []), *cell.parameters()]
    g_fast = torch.autograd.grad(fast, leaves)
    g_ref = torch.autograd.grad(ref, leaves)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_cells_with_options_keep_rnnkit_math():
    assert rnn.LSTMCell(F_IN, H, peephole=True)._kernel_key is None
    assert rnn.LSTMCell(F_IN, H, layer_norm=True)._kernel_key is None
    assert rnn.GRUCell(F_IN, H, reset_after=False)._kernel_key is None


def python_calls(fn) -> int:
    """Python function calls made while fn runs (sys.setprofile's "call" events), load-independent."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        count += event == "call"

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", list(CELLS))
def test_a_step_makes_no_more_python_calls_than_torch(kind, dtype):
    ours_cls, torch_cls, options = CELLS[kind]
    counts = {}
    for name, cls in (("ours", ours_cls), ("torch", torch_cls)):
        cell = cls(F_IN, H, dtype=dtype, **options)
        xs = torch.randn(3, B, F_IN, dtype=dtype)
        h = torch.zeros(B, H, dtype=dtype)
        state = (h, h) if kind == "lstm" else h

        def train_step():
            steps(cell, xs, state).backward()

        train_step()  # warm: first calls resolve lazily
        counts[name] = python_calls(train_step)
    assert counts["ours"] <= counts["torch"], counts


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_float32_engine_step_matches_torch(kind):
    """In float32 the engine's step (its own exp) agrees with torch's cell to float32 rounding."""
    ours_cls, torch_cls, options = CELLS[kind]
    torch.manual_seed(0)
    ref = torch_cls(F_IN, H)
    ours = ours_cls(F_IN, H)
    ours.load_state_dict(ref.state_dict())
    xs = torch.randn(6, B, F_IN)
    h = torch.randn(B, H)
    state = (h, torch.randn(B, H)) if kind == "lstm" else h
    results = []
    for cell in (ours, ref):
        cell.zero_grad()
        total = steps(cell, xs, state)
        total.backward()
        results.append([total.detach(), *(p.grad for p in cell.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cells_under_autocast_return_torchs_dtype():
    x = torch.randn(B, F_IN)
    for kind in ("lstm", "gru"):
        ours_cls, torch_cls, options = CELLS[kind]
        ours, ref = ours_cls(F_IN, H), torch_cls(F_IN, H)
        h = torch.zeros(B, H)
        state = (h, h) if kind == "lstm" else h
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a, b = ours(x, state), ref(x, state)
        a, b = (a, b) if kind == "lstm" else ((a,), (b,))
        assert [t.dtype for t in a] == [t.dtype for t in b]


def test_tracers_see_torchs_kernel():
    """torch.compile (fullgraph), torch.export and jit tracing step the cell through torch's kernel,
    which they can trace, and compute what eager mode does."""
    torch.manual_seed(0)
    cell = rnn.LSTMCell(F_IN, H)
    x, h, c = torch.randn(B, F_IN), torch.randn(B, H), torch.randn(B, H)
    eager = cell(x, (h, c))
    compiled = torch.compile(cell, fullgraph=True)(x, (h, c))
    traced = torch.jit.trace(cell, (x, (h, c)))(x, (h, c))
    exported = torch.export.export(cell, (x, (h, c))).module()(x, (h, c))
    for result in (compiled, traced, exported):
        for a, b in zip(result, eager):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
