"""Any device: which path runs where (a pure function of device, config and tracing), the
device-agnostic Python loop on "meta" tensors, and the CUDA checks, which run only where
torch.cuda.is_available() (never on this project's machines so far)."""

from __future__ import annotations

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit import engine
from rnnkit.cells import RecurrentCell
from rnnkit.recurrent import auto_prefers_fused, run_layer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_routing_prefers_torchs_kernel_off_the_cpu():
    # On a GPU (cuDNN) or without the C++ loop, "auto" takes the fused kernel wherever it is exact.
    for kind in ("rnn", "lstm", "gru"):
        for padded in (False, True):
            for training in (False, True):
                assert auto_prefers_fused(kind, padded, 64, training, device_type="cuda", compiled_loop=True)
                assert auto_prefers_fused(kind, padded, 64, training, device_type="cpu", compiled_loop=False)
                # Under a tracer the engine's operators run, on every device.
                assert not auto_prefers_fused(kind, padded, 64, training, device_type="cuda", traced=True)
    # On the CPU with the C++ loop, only large unpadded LSTM inference goes to oneDNN.
    assert auto_prefers_fused("lstm", False, 256, False, compiled_loop=True)
    assert not auto_prefers_fused("lstm", False, 256, True, compiled_loop=True)
    assert not auto_prefers_fused("gru", False, 512, False, compiled_loop=True)


def test_compiled_loop_is_for_cpu_tensors_only():
    cell = RecurrentCell("lstm", 3, 4)
    w = cell.weights()
    blocker = engine.compiled.kernels_blocker
    assert blocker(cell.spec, w, torch.empty(1, device="meta")) is not None
    assert blocker(cell.spec, w, torch.empty(1, dtype=torch.float16)) is not None
    assert not engine.recurrence.uses_compiled_loop(cell.spec, w, torch.empty(1, device="meta"))


@pytest.mark.parametrize("kind, options", [("lstm", {"peephole": True, "layer_norm": True, "proj_size": 2}),
                                           ("gru", {"reset_after": False}), ("rnn", {})])
def test_python_loop_runs_forward_and_backward_on_another_device(kind, options):
    # "meta" has no CPU code behind it: anything CPU-only in the loop (the C++ module, oneDNN) fails here.
    cell = RecurrentCell(kind, 3, 4, **options).to("meta")
    x = torch.empty(2, 5, 3, device="meta", requires_grad=True)
    sizes = cell.state_sizes
    out, final = run_layer(cell.spec, x, cell.weights(), lengths=torch.tensor([5, 3], device="meta"), tbptt=2,
                           recurrent_mask=torch.ones(2, sizes[0], device="meta"),
                           zoneout=[torch.zeros(2, 5, n, device="meta") for n in sizes], implementation="bptt")
    assert out.device.type == "meta" and out.shape == (2, 5, sizes[0])
    (out.sum() + final[0].sum()).backward()
    assert x.grad.shape == x.shape and cell.weight_hh.grad.device.type == "meta"


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kwargs", [{}, {"peephole": True, "zoneout": 0.1}, {"proj_size": 3}], ids=["fused", "loop", "proj"])
def test_modules_run_on_cuda_like_on_cpu(kwargs, dtype):
    torch.manual_seed(0)
    cpu = rnn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True, **kwargs).eval()
    gpu = rnn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True, **kwargs).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda", dtype)
    x = torch.randn(3, 7, 4)
    lengths = torch.tensor([7, 2, 5])
    expected, _ = cpu(x, lengths=lengths)
    got, _ = gpu(x.to("cuda", dtype), lengths=lengths)
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(got.float().cpu(), expected, rtol=tol, atol=tol)
    got.float().sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in gpu.parameters())


@cuda
def test_compile_and_export_on_cuda():
    module = rnn.GRU(4, 6, batch_first=True, zoneout=0.1).cuda().eval()
    x = torch.randn(2, 5, 4, device="cuda")
    expected, _ = module(x)
    got, _ = torch.compile(module, fullgraph=True)(x)
    torch.testing.assert_close(got, expected)
    program = torch.export.export(module, (x,))
    torch.testing.assert_close(program.module()(x)[0], expected)
