"""torch.export with dynamic batch and time for every cell and option; the exported program
equals eager at two batch sizes and two lengths it was not traced at, and survives save/load.
torch.jit.trace works (through the same operators); torch.jit.script says what to use instead."""

from __future__ import annotations

import io

import pytest
import torch
from torch.export import Dim

import rnnkit.nn as rnn

F, H = 4, 5
TRACE_AT = (3, 6)           # (B, T) the program is traced at
CHECK_AT = ((2, 4), (5, 9))  # batch sizes and lengths it was not traced at

MODULES = {
    "rnn_tanh": (rnn.RNN, {}),
    "rnn_relu_bi": (rnn.RNN, {"nonlinearity": "relu", "bidirectional": True}),
    "lstm_bi2": (rnn.LSTM, {"bidirectional": True, "num_layers": 2}),
    "lstm_peephole_ln": (rnn.LSTM, {"peephole": True, "layer_norm": True}),
    "lstm_proj": (rnn.LSTM, {"proj_size": 3}),
    "lstm_zoneout": (rnn.LSTM, {"zoneout": 0.25}),
    "gru_bi": (rnn.GRU, {"bidirectional": True}),
    "gru_reset_before": (rnn.GRU, {"reset_after": False}),
}


class WithLengths(torch.nn.Module):
    """module(x, lengths=lengths, hx=h0) as a function of tensors only, as export takes it."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x, lengths, h0):
        hx = h0
        if isinstance(self.module, rnn.LSTM):  # h0 (L*D, B, P); c0 (L*D, B, H) zeros
            hx = (h0, h0.new_zeros(*h0.shape[:2], self.module.hidden_size))
        out, state = self.module(x, hx, lengths=lengths)
        return out, state


def _inputs(module, B, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    P = module.proj_size or module.hidden_size
    h0 = 0.5 * torch.randn(module.num_layers * (2 if module.bidirectional else 1), B, P, generator=g)
    return x, lengths, h0


@pytest.mark.parametrize("name", list(MODULES))
def test_export_with_dynamic_batch_and_time_equals_eager(name):
    cls, kwargs = MODULES[name]
    torch.manual_seed(0)
    module = WithLengths(cls(F, H, batch_first=True, **kwargs)).eval()
    batch, time = Dim("batch", min=2), Dim("time", min=2)
    args = _inputs(module.module, *TRACE_AT)
    program = torch.export.export(module, args, dynamic_shapes=({0: batch, 1: time}, {0: batch}, {1: batch}))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    for B, T in CHECK_AT:
        args = _inputs(module.module, B, T, seed=B)
        expected = torch.utils._pytree.tree_leaves(module(*args))
        for prog in (program, loaded):
            got = torch.utils._pytree.tree_leaves(prog.module()(*args))
            for a, b in zip(got, expected):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_exported_program_holds_the_operators():
    module = WithLengths(rnn.GRU(F, H, batch_first=True)).eval()
    program = torch.export.export(module, _inputs(module.module, *TRACE_AT))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any("rnnkit.compiled_forward" in t for t in targets), targets


def test_jit_trace_runs_the_operators_at_other_shapes():
    torch.manual_seed(0)
    module = WithLengths(rnn.LSTM(F, H, batch_first=True, bidirectional=True)).eval()
    traced = torch.jit.trace(module, _inputs(module.module, *TRACE_AT), check_trace=False)
    assert "rnnkit::compiled_forward" in str(traced.inlined_graph)
    for B, T in CHECK_AT:
        args = _inputs(module.module, B, T, seed=B)
        for a, b in zip(torch.utils._pytree.tree_leaves(traced(*args)), torch.utils._pytree.tree_leaves(module(*args))):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("module", [rnn.LSTM(F, H), rnn.GRUCell(F, H)], ids=["LSTM", "GRUCell"])
def test_jit_script_names_what_works_instead(module):
    with pytest.raises(TypeError, match=r"torch\.jit\.trace.*torch\.export"):
        torch.jit.script(module)
