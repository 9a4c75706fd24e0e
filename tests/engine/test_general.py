"""The general loop (``rnnkit.engine.general.run_steps``) keeps the engine's conventions.

Driving it with the reference step of ``tests/reference.py`` must give exactly what the
hand-derived engine gives (masks keep the state and zero the output, reverse keeps outputs
in data order, tbptt cuts where the engine cuts), on values and every gradient, in float64.
"""

from __future__ import annotations

import pytest
import torch
from reference import ref_step

from rnnkit import engine
from rnnkit.cells import RecurrentCell
from rnnkit.engine.general import run_steps

F64 = torch.float64
B, T, F_IN, H = 3, 7, 4, 5
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 1, 1, 0]], dtype=torch.bool)


def step_function(cell):
    w = cell.weights()

    def step(x_t, states):
        h, c = (states[0], states[1]) if cell.spec.kind == "lstm" else (states[0], None)
        h_new, c_new = ref_step(cell.spec, w, x_t, h, c, None)
        return h_new, (h_new, c_new) if c_new is not None else (h_new,)

    return step


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("tbptt", [None, 3])
def test_run_steps_equals_the_engine(kind, masked, reverse, tbptt):
    torch.manual_seed(0)
    cell = RecurrentCell(kind, F_IN, H, dtype=F64)
    x = torch.randn(B, T, F_IN, dtype=F64, requires_grad=True)
    state0 = tuple(torch.randn(B, H, dtype=F64, requires_grad=True) for _ in cell.state_sizes)
    mask = MASK if masked else None
    out, final = run_steps(step_function(cell), x, state0, mask=mask, reverse=reverse, tbptt=tbptt)
    ref_out, ref_final = engine.run(cell.spec, x, cell.weights(), state0, mask=mask, reverse=reverse, tbptt=tbptt)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    for a, b in zip(final, ref_final):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    wrt = [x, *state0, *cell.parameters()]
    g_out = torch.randn_like(out)
    loss = (out * g_out).sum() + sum((s * s).sum() for s in final)
    ref_loss = (ref_out * g_out).sum() + sum((s * s).sum() for s in ref_final)
    for a, b in zip(torch.autograd.grad(loss, wrt, allow_unused=True), torch.autograd.grad(ref_loss, wrt, allow_unused=True)):
        if a is None or b is None:
            assert a is None and b is None or torch.count_nonzero(a if a is not None else b) == 0
            continue
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_run_steps_keeps_any_state_shape_and_zeroes_masked_outputs():
    def step(x_t, states):
        (s,) = states
        s = s + x_t[:, None, :]  # a (B, 2, F) state
        return s.sum(1), (s,)

    x = torch.ones(2, 4, 3)
    mask = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    out, (s,) = run_steps(step, x, (torch.zeros(2, 2, 3),), mask=mask)
    assert torch.equal(out[1], torch.zeros(4, 3)) and torch.equal(s[1], torch.zeros(2, 3))
    assert torch.equal(s[0], torch.full((2, 3), 3.0))
    assert torch.equal(out[0, 1], torch.zeros(3))


def test_run_steps_bad_arguments():
    def step(x_t, states):
        return x_t, states

    with pytest.raises(ValueError, match=r"`x` must be a tensor of shape \(B, T, ...\)"):
        run_steps(step, torch.randn(2, 3), (torch.zeros(2, 3),))
    with pytest.raises(ValueError, match=r"T >= 1"):
        run_steps(step, torch.randn(2, 0, 3), (torch.zeros(2, 3),))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(B, T\) = \(2, 4\)"):
        run_steps(step, torch.randn(2, 4, 3), (torch.zeros(2, 3),), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="`tbptt`"):
        run_steps(step, torch.randn(2, 4, 3), (torch.zeros(2, 3),), tbptt=0)
