"""Streaming inference: ``Streamer`` and the no-grad single step agree with torch.nn's cells."""

import pytest
import torch

from rnnkit.cells import RecurrentCell
from rnnkit.engine import Streamer

CASES = [
    ("lstm", {}, torch.nn.LSTMCell),
    ("gru", {}, torch.nn.GRUCell),
    ("rnn", {}, lambda i, h: torch.nn.RNNCell(i, h, nonlinearity="tanh")),
    ("rnn", {"activation": "relu"}, lambda i, h: torch.nn.RNNCell(i, h, nonlinearity="relu")),
]


def _copy(cell: RecurrentCell, ref: torch.nn.Module) -> None:
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(ref, name))


@pytest.mark.parametrize("kind,kw,ref_cls", CASES)
@pytest.mark.parametrize("batch", [1, 3, 7])
def test_streamer_follows_torch_cell(kind, kw, ref_cls, batch):
    torch.manual_seed(0)
    ref = ref_cls(5, 8)
    cell = RecurrentCell(kind, 5, 8, **kw)
    _copy(cell, ref)
    stream = Streamer(cell, batch_size=batch)
    state = None
    with torch.no_grad():
        for _ in range(12):
            x = torch.randn(batch, 5)
            state = ref(x, state)
            h = stream.step(x)
    h_ref = state[0] if isinstance(state, tuple) else state
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [{"kind": "gru", "reset_after": False}, {"kind": "lstm", "layer_norm": True},
                                {"kind": "lstm", "peephole": True, "proj_size": 3}])
def test_no_grad_step_equals_the_autograd_step(kw):
    # The no-grad path runs compiled code where it can; it must compute the same step.
    torch.manual_seed(1)
    kw = dict(kw)
    cell = RecurrentCell(kw.pop("kind"), 4, 6, dtype=torch.float64, **kw)
    x = torch.randn(3, 4, dtype=torch.float64)
    state = tuple(torch.randn(3, n, dtype=torch.float64) for n in cell.state_sizes)
    with_grad = cell(x, state)
    with torch.no_grad():
        without = cell(x, state)
    for a, b in zip(with_grad, without):
        torch.testing.assert_close(a.detach(), b, rtol=1e-12, atol=1e-12)


def test_streamer_reset_and_bad_input():
    cell = RecurrentCell("lstm", 2, 3)
    stream = Streamer(cell)
    first = stream.step(torch.ones(1, 2)).clone()
    stream.step(torch.ones(1, 2))
    stream.reset()
    torch.testing.assert_close(stream.step(torch.ones(1, 2)), first)
    with pytest.raises(ValueError, match="`x`"):
        stream.step(torch.ones(2, 2))
    with pytest.raises(ValueError, match="`state`"):
        stream.reset((torch.zeros(1, 3),))
    with pytest.raises(TypeError, match="`cell`"):
        Streamer(torch.nn.LSTMCell(2, 3))
