"""torch.save(module), then torch.load(..., weights_only=True) with only the public classes
allow-listed: the modules keep primitives (their CellSpec is derived), so nothing else is needed."""

from __future__ import annotations

import io

import pytest
import torch

import rnnkit.nn as rnn

PUBLIC = [rnn.RNN, rnn.LSTM, rnn.GRU, rnn.RNNCell, rnn.LSTMCell, rnn.GRUCell]
MODULES = {
    "RNN": lambda: rnn.RNN(3, 4, num_layers=2, nonlinearity="relu", zoneout=0.1),
    "LSTM": lambda: rnn.LSTM(3, 4, bidirectional=True, peephole=True, layer_norm=True, proj_size=2),
    "GRU": lambda: rnn.GRU(3, 4, reset_after=False, recurrent_dropout=0.2, tbptt=3),
    "RNNCell": lambda: rnn.RNNCell(3, 4, nonlinearity="relu"),
    "LSTMCell": lambda: rnn.LSTMCell(3, 4, peephole=True),
    "GRUCell": lambda: rnn.GRUCell(3, 4, reset_after=False),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_weights_only_load_needs_only_the_public_classes(name):
    torch.manual_seed(0)
    module = MODULES[name]().eval()
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals(PUBLIC):
        loaded = torch.load(buffer, weights_only=True)
    assert type(loaded) is type(module) and loaded.spec == module.spec
    x = torch.randn(2, 5, 3) if name in ("RNN", "LSTM", "GRU") else torch.randn(2, 3)
    a, b = module(x), loaded(x)
    for u, v in zip(torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_weights_only_load_still_refuses_an_unlisted_class():
    buffer = io.BytesIO()
    torch.save(rnn.GRU(3, 4), buffer)
    buffer.seek(0)
    with pytest.raises(Exception, match="GRU"):
        torch.load(buffer, weights_only=True)
