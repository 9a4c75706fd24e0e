"""Parity with torch.nn.LSTM / GRU / RNN, weights copied one to one.

The rnnkit side is stacked by hand here from ``RecurrentCell`` + ``run_layer``,
layer by layer, the reverse direction run with ``reverse=True`` and the two
directions concatenated on the feature axis, exactly as torch documents its
multi-layer bidirectional RNNs. Outputs, final states and the gradients of the
input, the initial state and every weight must match torch to 1e-5 in float32.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import RecurrentCell
from rnnkit.recurrent import run_layer

B, T, F_IN, H, PROJ = 3, 6, 5, 7, 4
TOL = 1e-5

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


# name -> (rnnkit kind, activation, torch constructor)
KINDS = {
    "lstm": ("lstm", "tanh", lambda **kw: nn.LSTM(**kw)),
    "gru": ("gru", "tanh", lambda **kw: nn.GRU(**kw)),
    "rnn_tanh": ("rnn", "tanh", lambda **kw: nn.RNN(nonlinearity="tanh", **kw)),
    "rnn_relu": ("rnn", "relu", lambda **kw: nn.RNN(nonlinearity="relu", **kw)),
}


def make_torch(name, num_layers, bidirectional, batch_first, proj_size=0, bias=True):
    torch.manual_seed(0)
    kw = dict(input_size=F_IN, hidden_size=H, num_layers=num_layers, bias=bias,
              batch_first=batch_first, bidirectional=bidirectional)
    if proj_size:
        kw["proj_size"] = proj_size
    return KINDS[name][2](**kw)


def copy_cells(module: nn.RNNBase, name: str) -> list[RecurrentCell]:
    """One RecurrentCell per (layer, direction), in torch's order l0, l0_reverse, l1, ..."""
    kind, activation, _ = KINDS[name]
    D = 2 if module.bidirectional else 1
    P = module.proj_size or module.hidden_size
    cells = []
    for layer in range(module.num_layers):
        for d in range(D):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            in_size = module.input_size if layer == 0 else D * P
            cell = RecurrentCell(kind, in_size, module.hidden_size, bias="double" if module.bias else "none",
                                 proj_size=module.proj_size, activation=activation)
            with torch.no_grad():
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
                    src = getattr(module, p + suffix, None)
                    dst = getattr(cell, p)
                    assert (src is None) == (dst is None), f"{p}{suffix}: layouts differ"
                    if src is not None:
                        assert dst.shape == src.shape, f"{p}{suffix}: {tuple(dst.shape)} vs {tuple(src.shape)}"
                        dst.copy_(src)
            cell.torch_suffix = suffix
            cells.append(cell)
    return cells


def run_stack(cells, module, x, hx, implementation, lengths=None):
    """rnnkit's multi-layer (bi)directional RNN, in torch's conventions for x, hx and outputs."""
    D = 2 if module.bidirectional else 1
    lstm = isinstance(module, nn.LSTM)
    h0, c0 = hx if lstm else (hx, None)
    inp = x if module.batch_first else x.transpose(0, 1)  # rnnkit is batch-first: (B, T, F)
    h_n, c_n = [], []
    for layer in range(module.num_layers):
        outs = []
        for d in range(D):
            i = layer * D + d
            state0 = (h0[i], c0[i]) if lstm else (h0[i],)
            cell = cells[i]
            out, final = run_layer(cell.spec, inp, cell.weights(), state0, reverse=bool(d),
                                   lengths=lengths, implementation=implementation)
            outs.append(out)
            h_n.append(final[0])
            if lstm:
                c_n.append(final[1])
        inp = torch.cat(outs, dim=-1)
    out = inp if module.batch_first else inp.transpose(0, 1)
    return out, ((torch.stack(h_n), torch.stack(c_n)) if lstm else torch.stack(h_n))


def initial_state(module, dtype=torch.float32):
    D = 2 if module.bidirectional else 1
    P = module.proj_size or module.hidden_size
    g = torch.Generator().manual_seed(1)
    h0 = 0.5 * torch.randn(module.num_layers * D, B, P, generator=g, dtype=dtype)
    if isinstance(module, nn.LSTM):
        return h0, 0.5 * torch.randn(module.num_layers * D, B, module.hidden_size, generator=g, dtype=dtype)
    return h0


def flat(hx):
    return list(hx) if isinstance(hx, tuple) else [hx]


def assert_rel(actual, expected, what):
    assert actual.shape == expected.shape, f"{what}: {tuple(actual.shape)} vs {tuple(expected.shape)}"
    scale = max(expected.abs().max().item(), 1e-30)
    err = (actual - expected).abs().max().item()
    assert err <= TOL * scale, f"{what}: max error {err:.3e} vs scale {scale:.3e}"


def compare(module, name, implementation, lengths=None):
    cells = copy_cells(module, name)
    g = torch.Generator().manual_seed(2)
    shape = (B, T, F_IN) if module.batch_first else (T, B, F_IN)
    x = torch.randn(shape, generator=g)
    hx = initial_state(module)

    # torch
    xt = x.clone().requires_grad_(True)
    hxt = tuple(h.clone().requires_grad_(True) for h in flat(hx))
    hx_arg = hxt if isinstance(module, nn.LSTM) else hxt[0]
    if lengths is None:
        out_t, hn_t = module(xt, hx_arg)
    else:
        packed = pack_padded_sequence(xt, lengths, batch_first=module.batch_first, enforce_sorted=False)
        out_p, hn_t = module(packed, hx_arg)
        out_t, _ = pad_packed_sequence(out_p, batch_first=module.batch_first, total_length=T)

    # rnnkit
    xr = x.clone().requires_grad_(True)
    hxr = tuple(h.clone().requires_grad_(True) for h in flat(hx))
    out_r, hn_r = run_stack(cells, module, xr, hxr if isinstance(module, nn.LSTM) else hxr[0], implementation, lengths)

    assert_rel(out_r.detach(), out_t.detach(), "output")
    for i, (a, b) in enumerate(zip(flat(hn_r), flat(hn_t))):
        assert_rel(a.detach(), b.detach(), f"final state {i}")

    cot = [torch.randn(t.shape, generator=g) for t in [out_t, *flat(hn_t)]]
    torch.autograd.backward([out_t, *flat(hn_t)], cot)
    torch.autograd.backward([out_r, *flat(hn_r)], cot)
    assert_rel(xr.grad, xt.grad, "dx")
    for i, (a, b) in enumerate(zip(hxr, hxt)):
        assert_rel(a.grad, b.grad, f"d state0[{i}]")
    n_checked = 0
    for cell in cells:
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            ours = getattr(cell, p)
            if ours is None:
                continue
            theirs = getattr(module, p + cell.torch_suffix)
            assert_rel(ours.grad, theirs.grad, f"d{p}{cell.torch_suffix}")
            n_checked += 1
    assert n_checked == len(list(module.parameters()))


@pytest.mark.parametrize("implementation", ["bptt", "fused"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (1, True), (2, False), (2, True)],
                         ids=["1layer", "1layer_bi", "2layers", "2layers_bi"])
@pytest.mark.parametrize("name", list(KINDS))
def test_matches_torch(name, num_layers, bidirectional, batch_first, implementation):
    module = make_torch(name, num_layers, bidirectional, batch_first)
    compare(module, name, implementation)


@pytest.mark.parametrize("implementation", ["bptt", "fused"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)], ids=["1layer", "2layers_bi"])
def test_lstm_with_projection_matches_torch(num_layers, bidirectional, batch_first, implementation):
    module = make_torch("lstm", num_layers, bidirectional, batch_first, proj_size=PROJ)
    compare(module, "lstm", implementation)


@pytest.mark.parametrize("implementation", ["bptt", "fused"])
@pytest.mark.parametrize("name", list(KINDS))
def test_without_bias_matches_torch(name, implementation):
    module = make_torch(name, 2, True, True, bias=False)
    compare(module, name, implementation)


@pytest.mark.parametrize("implementation", ["bptt", "fused", "auto"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("name, proj", [("lstm", 0), ("lstm", PROJ), ("gru", 0), ("rnn_tanh", 0), ("rnn_relu", 0)],
                         ids=["lstm", "lstm_proj", "gru", "rnn_tanh", "rnn_relu"])
def test_packed_sequence_matches_lengths(name, proj, batch_first, implementation):
    # Unsorted lengths, one of them full: torch packs with enforce_sorted=False.
    lengths = torch.tensor([4, T, 2])
    module = make_torch(name, 2, True, batch_first, proj_size=proj)
    compare(module, name, implementation, lengths=lengths)


def test_padded_outputs_are_zero_like_pad_packed_sequence():
    lengths = torch.tensor([4, T, 2])
    module = make_torch("gru", 1, True, True)
    cells = copy_cells(module, "gru")
    x = torch.randn(B, T, F_IN)
    out, _ = run_stack(cells, module, x, initial_state(module), "bptt", lengths)
    pad = torch.arange(T)[None, :] >= lengths[:, None]
    assert torch.all(out[pad] == 0)
