"""``rnnkit.nn.MinGRU`` / ``MinLSTM``: the torch.nn interface over the parallel mode."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit.nn as rnn
from rnnkit.diagnostics import gradient_flow
from rnnkit.engine import Streamer

from ..min_rnn_reference import reference_layer

DT = torch.float64
MODULES = {"mingru": rnn.MinGRU, "minlstm": rnn.MinLSTM}


def reference_module(m, x, hx=None, lengths=None):
    """Stacked, bidirectional composition of the sequential reference: x (B, T, F)."""
    B, T, _ = x.shape
    mask = None if lengths is None else torch.arange(T)[None] < torch.as_tensor(lengths)[:, None]
    layer_input, finals = x, []
    D = m.num_directions
    for layer in range(m.num_layers):
        outs = []
        for d in range(D):
            w, b = m._weights(layer, d)
            out, h = reference_layer(m.kind, layer_input, w, b, None if hx is None else hx[layer * D + d], mask, d == 1)
            outs.append(out)
            finals.append(h)
        layer_input = torch.cat(outs, 2)
    return layer_input, torch.stack(finals)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_stacked_bidirectional_equals_the_reference_with_lengths_and_hx(kind):
    torch.manual_seed(0)
    m = MODULES[kind](3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=DT)
    x = torch.randn(3, 7, 3, dtype=DT, requires_grad=True)
    hx = torch.randn(4, 3, 4, dtype=DT, requires_grad=True)
    lengths = [7, 5, 1]
    out, h_n = m(x, hx, lengths=torch.tensor(lengths))
    ref_out, ref_h = reference_module(m, x, hx, lengths)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n, ref_h, rtol=1e-10, atol=1e-12)
    params = [x, hx, *m.parameters()]
    got = torch.autograd.grad(out.sum() + (h_n ** 2).sum(), params)
    want = torch.autograd.grad(ref_out.sum() + (ref_h ** 2).sum(), params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_layouts_unbatched_and_packed_agree():
    torch.manual_seed(1)
    m = rnn.MinGRU(3, 4, dtype=DT)
    x = torch.randn(6, 2, 3, dtype=DT)  # (T, B, F)
    out, h_n = m(x)
    assert out.shape == (6, 2, 4) and h_n.shape == (1, 2, 4)
    out1, h1 = m(x[:, 1])  # unbatched (T, F)
    torch.testing.assert_close(out1, out[:, 1])
    torch.testing.assert_close(h1, h_n[:, 1])
    lengths = torch.tensor([6, 3])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    out_p, h_p = m(packed)
    out_l, h_l = m(x, lengths=lengths)
    torch.testing.assert_close(h_p, h_l)
    torch.testing.assert_close(torch.nn.utils.rnn.pad_packed_sequence(out_p)[0], out_l)
    assert out_l[3:, 1].abs().max() == 0


def test_parameters_and_state_dict_follow_torch_names():
    m = rnn.MinLSTM(3, 4, num_layers=2, bidirectional=True)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {"weight_ih_l0": (12, 3), "bias_ih_l0": (12,), "weight_ih_l0_reverse": (12, 3),
                      "bias_ih_l0_reverse": (12,), "weight_ih_l1": (12, 8), "bias_ih_l1": (12,),
                      "weight_ih_l1_reverse": (12, 8), "bias_ih_l1_reverse": (12,)}
    assert set(rnn.MinGRU(3, 4, bias=False).state_dict()) == {"weight_ih_l0"}
    bound = 1 / 4 ** 0.5
    assert all(p.abs().max() <= bound for p in m.parameters())


def test_streamer_on_a_layer_cell_equals_the_full_sequence():
    m = rnn.MinGRU(3, 5, batch_first=True)
    x = torch.randn(2, 9, 3)
    with torch.no_grad():
        out, h_n = m(x)
        s = Streamer(m.cell(), batch_size=2)
        steps = torch.stack([s.step(x[:, t]) for t in range(9)], 1)
    torch.testing.assert_close(steps, out, rtol=1e-5, atol=1e-6)


def test_tbptt_and_python_backend_match_the_compiled_one():
    torch.manual_seed(2)
    x = torch.randn(2, 12, 3, dtype=DT, requires_grad=True)
    grads = []
    for backend in ("compiled", "python"):
        torch.manual_seed(3)
        m = rnn.MinLSTM(3, 4, dtype=DT, tbptt=5, backend=backend)
        out, h_n = m(x)
        grads.append(torch.autograd.grad(out.sum(), [x, *m.parameters()]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradient_flow_reports_each_direction():
    m = rnn.MinGRU(2, 3, bidirectional=True, batch_first=True)
    x, y = torch.randn(4, 6, 2), torch.randn(4, 6, 6)
    flow = gradient_flow(m, x, y, loss_fn=lambda out, y: ((out - y) ** 2).mean())
    assert list(flow) == ["mingru_l0", "mingru_l0:backward"]
    assert flow["mingru_l0"].h.shape == (6,) and (flow["mingru_l0"].h > 0).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="hidden_size"):
        rnn.MinGRU(3, 0)
    with pytest.raises(TypeError, match="bidirectional"):
        rnn.MinGRU(3, 4, bidirectional=1)
    with pytest.raises(ValueError, match="tbptt"):
        rnn.MinGRU(3, 4, tbptt=0)
    with pytest.raises(ValueError, match="backend"):
        rnn.MinGRU(3, 4, backend="cuda")
    m = rnn.MinGRU(3, 4)
    with pytest.raises(ValueError, match="input_size = 3"):
        m(torch.zeros(5, 2, 4))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.zeros(5, 2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        m(torch.zeros(5, 2, 3, dtype=DT))
    with pytest.raises(ValueError, match="rank 3 or 2"):
        m(torch.zeros(5, 2, 3, 1))
    with pytest.raises(ValueError, match="Argument `hx`"):
        m(torch.zeros(5, 2, 3), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="Argument `lengths`"):
        m(torch.zeros(5, 2, 3), lengths=torch.tensor([6, 1]))


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_onnx_export_is_a_scan_that_onnxruntime_runs_at_any_batch_and_length(kind):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    m = MODULES[kind](3, 4, num_layers=2, bidirectional=True, batch_first=True)

    class WithLengths(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, x, lengths):
            return self.m(x, lengths=lengths)

    dims = ({0: torch.export.Dim("B"), 1: torch.export.Dim("T")}, {0: torch.export.Dim("B")})
    program = torch.onnx.export(WithLengths(), (torch.randn(2, 5, 3), torch.tensor([5, 3])), dynamo=True,
                                dynamic_shapes=dims, verbose=False)
    assert "Scan" in {node.op_type for node in program.model_proto.graph.node}
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    x, lengths = torch.randn(3, 9, 3), torch.tensor([9, 4, 1])
    got = session.run(None, dict(zip([i.name for i in session.get_inputs()], (x.numpy(), lengths.numpy()))))
    with torch.no_grad():
        want = m(x, lengths=lengths)
    for g, w in zip(got, want):
        torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-5, atol=1e-6)


def test_the_torchscript_onnx_exporter_is_refused_by_name():
    import io

    from rnnkit.onnx_native import UnsupportedForExport

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = rnn.MinGRU(3, 4)

        def forward(self, x):
            return self.m(x)

    with pytest.raises(UnsupportedForExport, match="dynamo=True"):
        torch.onnx.export(Outputs(), (torch.randn(5, 2, 3),), io.BytesIO(), dynamo=False)
