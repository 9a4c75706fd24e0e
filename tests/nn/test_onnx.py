"""torch.onnx.export of rnnkit.nn modules, with both exporters (dynamo=True and the TorchScript-
based one), dynamic batch and time, checked against onnxruntime; what ONNX's native operators
cannot express is refused by name."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.onnx_native import UnsupportedForExport

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

F, H = 4, 5
MODULES = {
    "rnn_relu": (rnn.RNN, {"nonlinearity": "relu"}),
    "lstm_bi2_peephole": (rnn.LSTM, {"bidirectional": True, "num_layers": 2, "peephole": True}),
    "gru_reset_before": (rnn.GRU, {"reset_after": False}),
    "gru_bi": (rnn.GRU, {"bidirectional": True}),
}


class WithLengths(torch.nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, lengths):
        out, state = self.module(x, lengths=lengths)
        h = state[0] if isinstance(state, tuple) else state
        return out, h


def _export(module, dynamo: bool) -> bytes:
    x, lengths = torch.randn(3, 6, F), torch.tensor([6, 2, 4])
    names = {"input_names": ["x", "lengths"], "output_names": ["out", "h"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' own deprecation and tracer notes
        if dynamo:
            batch, time = torch.export.Dim("batch", min=2), torch.export.Dim("time", min=2)
            program = torch.onnx.export(module, (x, lengths), dynamo=True, verbose=False,
                                        dynamic_shapes=({0: batch, 1: time}, {0: batch}), **names)
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "out": {0: "batch", 1: "time"}, "h": {1: "batch"}}
        torch.onnx.export(module, (x, lengths), buffer, dynamo=False, dynamic_axes=axes, **names)
        return buffer.getvalue()


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("name", list(MODULES))
def test_onnx_export_agrees_with_onnxruntime(name, dynamo):
    cls, kwargs = MODULES[name]
    torch.manual_seed(0)
    module = WithLengths(cls(F, H, batch_first=True, **kwargs)).eval()
    session = ort.InferenceSession(_export(module, dynamo))
    for B, T in ((2, 9), (5, 3)):
        x = torch.randn(B, T, F)
        lengths = torch.randint(1, T + 1, (B,))
        got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            expected = module(x, lengths)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_graph_uses_the_native_operators():
    import onnx

    module = WithLengths(rnn.LSTM(F, H, batch_first=True, bidirectional=True)).eval()
    ops = {n.op_type for n in onnx.load_from_string(_export(module, True)).graph.node}
    assert "LSTM" in ops, ops


@pytest.mark.parametrize("kwargs, words", [({"layer_norm": True}, "layer_norm"), ({"proj_size": 2}, "proj_size"),
                                           ({"zoneout": 0.1}, "zoneout")])
def test_onnx_export_refuses_what_onnx_cannot_express(kwargs, words):
    module = WithLengths(rnn.LSTM(F, H, batch_first=True, **kwargs)).eval()
    with pytest.raises(Exception) as info:
        _export(module, True)
    chain, e = [], info.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    assert any(isinstance(c, UnsupportedForExport) and words in str(c) for c in chain), [str(c)[:200] for c in chain]
