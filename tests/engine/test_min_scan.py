"""The parallel mode of minGRU/minLSTM (``engine.min_scan``) against the sequential autograd reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnkit.engine import Streamer
from rnnkit.engine.min_scan import min_project, min_scan, python_scan, run_min, scan_backend
from rnnkit.cells import MinRNNCell
from rnnkit.ops import min_rnn

from ..min_rnn_reference import reference_layer

BACKENDS = ["python", "compiled"]
KINDS = ["mingru", "minlstm"]
DT = torch.float64


def assert_rel(actual, expected, rtol, what):
    actual, expected = actual.detach(), expected.detach()
    err = float((actual - expected).abs().max()) if actual.numel() else 0.0
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    assert err <= rtol * max(scale, 1e-300), f"{what}: max error {err:.3e} vs scale {scale:.3e}"


def make(kind, B=3, T=9, F=4, H=5, bias=True, seed=0, scale=1.5):
    gen = torch.Generator().manual_seed(seed)
    n = min_rnn.MIN_KINDS[kind]
    x = (scale * torch.randn(B, T, F, generator=gen, dtype=DT)).requires_grad_()
    w = torch.randn(n * H, F, generator=gen, dtype=DT).requires_grad_()
    b = torch.randn(n * H, generator=gen, dtype=DT).requires_grad_() if bias else None
    h0 = torch.randn(B, H, generator=gen, dtype=DT).requires_grad_()
    return x, w, b, h0


def grads_of(out, h_n, inputs, seed=1):
    gen = torch.Generator().manual_seed(seed)
    go = torch.randn(out.shape, generator=gen, dtype=DT)
    gh = torch.randn(h_n.shape, generator=gen, dtype=DT)
    loss = (out * go).sum() + (h_n * gh).sum()
    return torch.autograd.grad(loss, [t for t in inputs if t is not None])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_equals_the_sequential_reference(kind, backend):
    """Outputs, h_n and every gradient, over masks, reverse, state0 and tbptt, to 1e-10 relative."""
    lengths = torch.tensor([9, 4, 0])
    mask = torch.arange(9)[None] < lengths[:, None]
    mask[0, 3] = False  # a hole inside a sequence: the state passes it unchanged
    for use_mask, reverse, use_h0, tbptt in itertools.product([False, True], [False, True], [False, True], [None, 4]):
        x, w, b, h0 = make(kind)
        h0 = h0 if use_h0 else None
        m = mask if use_mask else None
        out, h_n = run_min(kind, x, w, b, h0, mask=m, reverse=reverse, tbptt=tbptt, backend=backend)
        ref_out, ref_h = reference_layer(kind, x, w, b, h0, m, reverse, tbptt)
        case = f"mask={use_mask} reverse={reverse} h0={use_h0} tbptt={tbptt}"
        assert_rel(out, ref_out, 1e-10, f"out {case}")
        assert_rel(h_n, ref_h, 1e-10, f"h_n {case}")
        for name, got, want in zip("x w b h0".split(), grads_of(out, h_n, (x, w, b, h0)),
                                   grads_of(ref_out, ref_h, (x, w, b, h0))):
            assert_rel(got, want, 1e-10, f"d{name} {case}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("B, T, H", [(2, 300, 70), (1, 60, 300), (9, 40, 260)])
def test_compiled_equals_python_at_a_longer_sequence(kind, B, T, H):
    """Past the prefetch distance, and over the lane splits: one lane per row (H = 70), a row
    over several lanes because B is small (B = 1: 7 lanes, the last of 12 units) and because H
    is more than a lane holds (H = 260: 144 + 116)."""
    x, w, b, h0 = make(kind, B=B, T=T, F=3, H=H, scale=3.0)
    lengths = torch.linspace(T, T // 3, B).long()
    res = {}
    for backend in BACKENDS:
        out, h_n = run_min(kind, x, w, b, h0, lengths=lengths, reverse=True, backend=backend)
        res[backend] = (out, h_n, *grads_of(out, h_n, (x, w, b, h0)))
    for name, got, want in zip("out h_n dx dw db dh0".split(), res["compiled"], res["python"]):
        assert_rel(got, want, 1e-10, name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(kind, backend):
    x, w, b, h0 = make(kind, B=2, T=5, F=3, H=3)
    mask = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)

    def fn(x, w, b, h0):
        return run_min(kind, x, w, b, h0, mask=mask, reverse=True, backend=backend)

    assert torch.autograd.gradcheck(fn, (x, w, b, h0), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_of_the_operator_itself(kind, backend):
    """k, the bias the operator adds to it, and h0; with a mask and without a bias."""
    gen = torch.Generator().manual_seed(3)
    G = 3 * min_rnn.MIN_KINDS[kind]
    k = torch.randn(2, 4, G, generator=gen, dtype=DT, requires_grad=True)
    bias = torch.randn(G, generator=gen, dtype=DT, requires_grad=True)
    h0 = torch.randn(2, 3, generator=gen, dtype=DT, requires_grad=True)
    mask = torch.tensor([[1.0, 0, 1, 1], [1, 1, 1, 0]], dtype=DT)
    assert torch.autograd.gradcheck(lambda k, b, h0: min_scan(k, b, h0, mask, None, kind, False, 0, backend),
                                    (k, bias, h0))
    assert torch.autograd.gradcheck(lambda k, h0: min_scan(k, None, h0, None, None, kind, True, 0, backend), (k, h0))


def test_projection_operator_equals_linear_with_its_gradients():
    """``min_project`` (the compiled path's GEMMs into pooled buffers) against F.linear, values and
    gradients in float64, for a batch-first input and for a transposed (non-contiguous) one."""
    x, w, _, _ = make("minlstm", B=3, T=7, F=4, H=5)
    for inp in (x, x.detach().transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()):
        k = min_project(inp, w)
        want = torch.nn.functional.linear(inp, w)
        assert_rel(k, want, 1e-14, "k")
        gk = torch.randn(k.shape, dtype=DT)
        got = torch.autograd.grad(k, [inp, w], gk)
        ref = torch.autograd.grad(want, [inp, w], gk)
        for name, g, r in zip(("dx", "dw"), got, ref):
            assert_rel(g, r, 1e-13, name)
    (dw,) = torch.autograd.grad(min_project(x.detach(), w).sum(), [w])  # dx not wanted
    assert dw.shape == w.shape
    assert torch.autograd.gradcheck(min_project, (x[:, :3].detach().requires_grad_(), w))


def test_backend_choice():
    k = torch.zeros(1, 2, 4)
    assert scan_backend(k, "python") == "python"
    assert scan_backend(k, "auto") == "compiled"
    assert scan_backend(k.to(torch.bfloat16), "auto") == "python"
    with pytest.raises(ValueError, match="backend='compiled' cannot run here"):
        scan_backend(k.to(torch.bfloat16), "compiled")
    with pytest.raises(ValueError, match="Argument `backend`"):
        scan_backend(k, "cuda")


def test_python_scan_is_the_paper_log_space_form_and_keeps_h0_sign():
    """A negative h0 stays outside the logarithm; padded steps (a = 1, b = 0) carry it through."""
    k = torch.randn(2, 6, 8, dtype=DT)
    h0 = -torch.rand(2, 4, dtype=DT) - 1
    mask = torch.ones(2, 6, dtype=DT)
    mask[1] = 0
    h = python_scan(k, h0, mask, "mingru", False)
    torch.testing.assert_close(h[1], h0[1].expand(6, 4), rtol=0, atol=1e-15)
    ref, _ = reference_layer("mingru", torch.eye(8, dtype=DT).expand(2, 8, 8)[:, :6], torch.eye(8, dtype=DT), None)
    assert ref.shape == (2, 6, 4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_reports_the_gradient_norm_at_each_step(kind, backend):
    x, w, b, h0 = make(kind)
    mask = torch.arange(9)[None] < torch.tensor([9, 6, 2])[:, None]
    probe = torch.zeros(9, 1, dtype=DT, requires_grad=True)
    out, h_n = run_min(kind, x, w, b, h0, mask=mask, reverse=True, probe=probe, backend=backend)
    loss = (out ** 2).sum() + h_n.sum()
    (norms,) = torch.autograd.grad(loss, [probe])
    states: list = []
    ref_out, ref_h = reference_layer(kind, x, w, b, h0, mask, True, states=states)
    d_states = torch.autograd.grad((ref_out ** 2).sum() + ref_h.sum(), states)
    # dL/dh_t of the step's own state: its output and every later step (reverse: earlier t).
    want = torch.stack([d.norm() for d in d_states])
    assert_rel(norms[:, 0], want, 1e-10, "norms")


@pytest.mark.parametrize("kind", KINDS)
def test_two_threads_give_the_one_thread_result(kind):
    """The scan's lanes are independent: split over threads, every bit is the same (the GEMMs
    around it are not compared: their sums may be ordered differently)."""
    gen = torch.Generator().manual_seed(4)
    k = torch.randn(4, 600, min_rnn.MIN_KINDS[kind] * 130, generator=gen, dtype=DT, requires_grad=True)
    bias = torch.randn(k.shape[2], generator=gen, dtype=DT, requires_grad=True)
    h0 = torch.randn(4, 130, generator=gen, dtype=DT, requires_grad=True)
    mask = (torch.rand(4, 600, generator=gen) > 0.1).to(DT)
    res = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            probe = torch.zeros(600, 1, dtype=DT, requires_grad=True)
            h, h_n = min_scan(k, bias, h0, mask, probe, kind, True, 50, "compiled")  # long enough to split the lanes
            res.append((h, h_n, *torch.autograd.grad((h * h).sum() + h_n.sum(), [k, bias, h0, probe])))
        finally:
            torch.set_num_threads(1)
    for a, c in zip(*res):
        torch.testing.assert_close(a, c, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_step_by_step_equals_the_full_sequence(kind):
    cell = MinRNNCell(kind, 4, 6, dtype=DT)
    x = torch.randn(3, 11, 4, dtype=DT)
    h0 = torch.randn(3, 6, dtype=DT)
    with torch.no_grad():
        full, h_n = run_min(kind, x, cell.weight_ih, cell.bias_ih, h0)
        streamer = Streamer(cell, batch_size=3, state=(h0,))
        steps = torch.stack([streamer.step(x[:, t]) for t in range(11)], dim=1)
    assert_rel(steps, full, 1e-12, "streamed outputs")
    assert_rel(streamer.state[0], h_n, 1e-12, "streamed state")


def test_carried_state_continues_the_sequence():
    """Two halves, the first's h_n as the second's h0, give the whole sequence's outputs."""
    x, w, b, h0 = make("minlstm", T=10)
    with torch.no_grad():
        full, h_full = run_min("minlstm", x, w, b, h0)
        first, h_mid = run_min("minlstm", x[:, :6], w, b, h0)
        second, h_end = run_min("minlstm", x[:, 6:], w, b, h_mid)
    assert_rel(torch.cat([first, second], 1), full, 1e-12, "outputs")
    assert_rel(h_end, h_full, 1e-12, "h_n")


def test_float32_compiled_matches_float64():
    x, w, b, h0 = make("mingru", B=2, T=200, F=3, H=8)
    with torch.no_grad():
        ref, _ = run_min("mingru", x, w, b, h0, backend="compiled")
        got, _ = run_min("mingru", x.float(), w.float(), b.float(), h0.float(), backend="compiled")
    assert_rel(got.double(), ref, 1e-5, "float32")


def test_zero_length_sequences():
    x, w, b, h0 = make("mingru", T=0)
    for backend in BACKENDS:
        out, h_n = run_min("mingru", x, w, b, h0, backend=backend)
        assert out.shape == (3, 0, 5)
        torch.testing.assert_close(h_n, h0)


def test_bad_arguments_are_named():
    x, w, b, h0 = make("mingru")
    with pytest.raises(ValueError, match="Argument `kind`"):
        run_min("gru", x, w, b)
    with pytest.raises(ValueError, match="Argument `weight`"):
        run_min("minlstm", x, w, b)  # 10 rows is not 3 * H
    with pytest.raises(ValueError, match="Argument `x`"):
        run_min("mingru", x[..., :3], w, b)
    with pytest.raises(TypeError, match="Argument `x`"):
        run_min("mingru", x.float(), w, b)
    with pytest.raises(ValueError, match="Argument `h0`"):
        run_min("mingru", x, w, b, h0[:, :4])
    with pytest.raises(ValueError, match="Argument `lengths`"):
        run_min("mingru", x, w, b, lengths=torch.tensor([1, 2, 10]))
    with pytest.raises(ValueError, match="Argument `mask`"):
        run_min("mingru", x, w, b, mask=torch.ones(3, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="Argument `tbptt`"):
        run_min("mingru", x, w, b, tbptt=0)
    with pytest.raises(ValueError, match="Argument `bias`"):
        run_min("mingru", x, w, b[:3])
    with pytest.raises(TypeError, match="Argument `bias`"):
        run_min("mingru", x, w, b.float())


def test_compile_fullgraph_and_export_see_one_operator():
    x, w, b, h0 = make("mingru", B=2, T=6, F=4, H=5)

    def fn(x, h0):
        out, h_n = run_min("mingru", x, w, b, h0)
        return out.sum(1) + h_n

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, h0), fn(x, h0))
    (dx,) = torch.autograd.grad(compiled(x, h0).sum(), [x])
    (want,) = torch.autograd.grad(fn(x, h0).sum(), [x])
    torch.testing.assert_close(dx, want)

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.b = torch.nn.Parameter(w.detach()), torch.nn.Parameter(b.detach())

        def forward(self, x, h0):
            out, h_n = run_min("mingru", x, self.w, self.b, h0)
            return out.sum(1) + h_n

    ep = torch.export.export(Module(), (x.detach(), h0.detach()))
    assert "rnnkit.min_scan" in str(ep.graph)
    torch.testing.assert_close(ep.module()(x.detach(), h0.detach()), fn(x, h0).detach())


def test_cpu_autocast_projects_in_bf16_as_f_linear_does():
    """Autocast does not see the pooled projection operator, so under it the layer keeps F.linear,
    whose bf16 k then takes the Python scan: the output is bf16, near the float32 one."""
    x, w, b, h0 = (t.detach().float() for t in make("mingru", B=2, T=20, F=4, H=5))
    want, _ = run_min("mingru", x, w, b, h0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = run_min("mingru", x, w, b, h0)
    assert want.dtype == torch.float32 and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=5e-2, atol=5e-2)


def test_bfloat16_runs_the_python_scan_in_float32():
    """Half precision takes the Python path; its log-space sums would lose the state's digits in bf16."""
    gen = torch.Generator().manual_seed(5)
    k = torch.randn(2, 300, 8, generator=gen)
    h0 = torch.randn(2, 4, generator=gen)
    want, _ = min_scan(k, None, h0, None, None, "mingru", False, 0, "python")
    got, _ = min_scan(k.bfloat16(), None, h0.bfloat16(), None, None, "mingru", False, 0, "python")
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)
