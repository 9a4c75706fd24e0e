"""bf16 on the CPU: under torch.autocast, and with bf16 modules, as torch.nn.LSTM/GRU/RNN behave.

The GEMMs run with bf16 operands (engine/precision.py), so results are compared with float32 at
bf16's tolerance: relative to each tensor's scale, 3e-2 for values and 5e-2 for gradients (bf16
keeps 8 bits, 4e-3 relative per rounding; a sequence adds up many of them).
"""

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.engine import compiled
from rnnkit.engine.precision import AUTOCAST_OUTPUT

B, T, F_IN, H = 5, 9, 12, 16
CLASSES = {"lstm": (rnn.LSTM, torch.nn.LSTM), "gru": (rnn.GRU, torch.nn.GRU), "rnn": (rnn.RNN, torch.nn.RNN)}
VALUE_RTOL, GRAD_RTOL = 3e-2, 5e-2


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    assert torch.isfinite(actual).all(), f"{what}: not finite"
    scale = expected.abs().max().item()
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= rtol * scale, f"{what}: max error {err:.3e} vs scale {scale:.3e}"


def run(module, x, lengths=None):
    """Output, final states and the gradients of a fixed loss with respect to x and every parameter."""
    kw = {} if lengths is None else {"lengths": lengths}
    out, hn = module(x, **kw)
    finals = hn if isinstance(hn, tuple) else (hn,)
    g = torch.Generator().manual_seed(1)
    loss = (out.float() * torch.randn(out.shape, generator=g)).sum() + sum(f.float().sum() for f in finals)
    grads = torch.autograd.grad(loss, [x, *module.parameters()])
    return out, finals, grads


def outputs_dtypes(module, x, kind, documented):
    """The dtypes torch.nn's ``module`` returns for ``x``: output, then each final state.

    torch's CPU LSTM in bf16 is oneDNN's, which needs AVX-512 and fails elsewhere ("could not
    create a primitive descriptor", seen on an AVX2-only Zen 3). There the dtypes are those that
    torch gave on an AVX-512 CPU (``documented``, also what engine/precision.py states)."""
    try:
        out, hn = module(x)
    except RuntimeError as e:
        if "primitive descriptor" not in str(e):
            raise
        return [documented] * (3 if kind == "lstm" else 2)
    return [out.dtype] + [s.dtype for s in (hn if isinstance(hn, tuple) else (hn,))]


@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", list(CLASSES))
def test_autocast_is_float32_within_bf16_tolerance(kind, bidirectional, masked):
    ours_cls, torch_cls = CLASSES[kind]
    torch.manual_seed(0)
    m = ours_cls(F_IN, H, num_layers=2, batch_first=True, bidirectional=bidirectional)
    x = torch.randn(B, T, F_IN, requires_grad=True)
    lengths = torch.tensor([T, 3, T - 1, 1, 6]) if masked else None
    out32, finals32, grads32 = run(m, x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, finals, grads = run(m, x, lengths)
        ref = torch_cls(F_IN, H, num_layers=2, batch_first=True, bidirectional=bidirectional)
        expected_dtypes = outputs_dtypes(ref, x, kind, AUTOCAST_OUTPUT[kind])
    assert [out.dtype] + [f.dtype for f in finals] == expected_dtypes
    close(out, out32, VALUE_RTOL, "out")
    for i, (f, f32) in enumerate(zip(finals, finals32)):
        close(f, f32, VALUE_RTOL, f"final[{i}]")
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for name, g, g32 in zip(names, grads, grads32):
        assert g.dtype == g32.dtype, name
        close(g, g32, GRAD_RTOL, f"d{name}")


def test_autocast_really_runs_bf16():
    """The GRU returns float32 under autocast (as torch's), yet its GEMMs ran in bf16: the result
    differs from float32's by more than float32 rounding."""
    torch.manual_seed(0)
    m = rnn.GRU(F_IN, H, batch_first=True)
    x = torch.randn(B, T, F_IN)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)[0]
    assert out.dtype == torch.float32
    assert (out - m(x)[0]).abs().max() > 1e-4


@pytest.mark.parametrize("kind", list(CLASSES))
def test_bf16_module_and_input_outside_autocast(kind):
    ours_cls, torch_cls = CLASSES[kind]
    torch.manual_seed(0)
    m32 = ours_cls(F_IN, H, batch_first=True, bidirectional=True)
    m16 = ours_cls(F_IN, H, batch_first=True, bidirectional=True).bfloat16()
    m16.load_state_dict(m32.state_dict())
    m32.load_state_dict(m16.state_dict())  # the same (bf16-representable) weights on both sides
    x = torch.randn(B, T, F_IN).bfloat16()
    out32, finals32, grads32 = run(m32, x.float().requires_grad_())
    out, finals, grads = run(m16, x.clone().requires_grad_())
    ref = torch_cls(F_IN, H, batch_first=True, bidirectional=True).bfloat16()
    assert [out.dtype] + [f.dtype for f in finals] == outputs_dtypes(ref, x, kind, torch.bfloat16)
    close(out, out32, VALUE_RTOL, "out")
    for g, g32, p in zip(grads, grads32, [x, *m16.parameters()]):
        assert g.dtype == p.dtype == torch.bfloat16
        close(g, g32, GRAD_RTOL, "grad")


def test_mixed_dtypes_outside_autocast_are_refused():
    m = rnn.LSTM(F_IN, H, batch_first=True)
    with pytest.raises(TypeError, match="input"):
        m(torch.randn(B, T, F_IN).bfloat16())


def test_projection_lstm_under_autocast_runs_the_python_loop():
    """proj_size has no C++ loop: the Python loop's bf16 path (bf16 projection, bf16-rounded W_hh)."""
    torch.manual_seed(0)
    m = rnn.LSTM(F_IN, H, proj_size=8, batch_first=True)
    x = torch.randn(B, T, F_IN, requires_grad=True)
    out32, finals32, grads32 = run(m, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, finals, grads = run(m, x)
    assert out.dtype == torch.bfloat16
    close(out, out32, VALUE_RTOL, "out")
    for g, g32 in zip(grads, grads32):
        close(g, g32, GRAD_RTOL, "grad")


@pytest.mark.parametrize("sums", ["in_loop", "histories"])
@pytest.mark.parametrize("kernel", ["amx", "avx512_bf16"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_bf16_kernels_match_the_emulation(kind, kernel, sums, monkeypatch):
    """AMX and vdpbf16ps multiply the same bf16-rounded operands as the float kernel that stands in
    for them on other CPUs (RNNKIT_BF16_KERNEL=emulate): the three agree up to float32 sums' order.
    "histories": the backward that leaves dW to GEMMs after its loop, as it does for large weights
    (H >= 352 for an LSTM on 32 inputs; it crashed there under AMX before it skipped its chunk flushes)."""
    if sums == "histories":
        monkeypatch.setattr(compiled, "SUMS_IN_LOOP_MAX_BYTES", 0)
    monkeypatch.setenv("RNNKIT_BF16_KERNEL", "avx512_bf16" if kernel == "avx512_bf16" else "")
    if compiled.bf16_kernel() != kernel:
        pytest.skip(f"this CPU has no {kernel}")
    torch.manual_seed(0)
    m = CLASSES[kind][0](F_IN + 1, H, batch_first=True)  # an odd F pads the bf16 pairs
    x = torch.randn(B, T, F_IN + 1, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hw = run(m, x)
        monkeypatch.setenv("RNNKIT_BF16_KERNEL", "emulate")
        assert compiled.bf16_kernel() == "emulated"
        emulated = run(m, x)
    for a, b in zip([hw[0], *hw[1], *hw[2]], [emulated[0], *emulated[1], *emulated[2]]):
        close(a, b, 8e-3 if a.dtype == torch.bfloat16 else 1e-5, "hardware vs emulated")  # bf16: one ulp


def test_keras_front_under_autocast():
    import rnnkit.keras as keras

    torch.manual_seed(0)
    layer = keras.layers.LSTM(H, return_sequences=True)
    x = torch.randn(B, T, F_IN)
    out32 = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    close(out, out32, VALUE_RTOL, "out")


def test_autocast_two_threads_match_one():
    """A batch split across two threads (each summing, then sharing, the weight gradients) gives
    the one-thread result: the rows' math is the same, only float32 sums change order."""
    torch.manual_seed(0)
    m = rnn.LSTM(8, 256, batch_first=True)  # dW_hh | dW_ih past 1 MB: the threads share it
    x = torch.randn(16, 4, 8, requires_grad=True)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                results.append(run(m, x))
    finally:
        torch.set_num_threads(threads)
    (o1, f1, g1), (o2, f2, g2) = results
    for a, b in zip([o2, *f2, *g2], [o1, *f1, *g1]):
        close(a, b, 1e-5, "two threads vs one")


def test_compiled_under_autocast_equals_eager():
    """torch.compile traces the casts and the operators (their fake implementations give the loop's
    float32 outputs for a bf16 x) into one graph that computes what eager mode does."""
    torch.manual_seed(0)
    m = rnn.LSTM(F_IN, H, batch_first=True, num_layers=2)
    x = torch.randn(B, T, F_IN)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager = m(x)
        compiled_out = torch.compile(m, fullgraph=True)(x)
    for a, b in zip([compiled_out[0], *compiled_out[1]], [eager[0], *eager[1]]):
        assert a.dtype == b.dtype == torch.bfloat16
        torch.testing.assert_close(a, b, rtol=0, atol=0)
