"""rnnkit.nn against torch.nn: same state_dict, same outputs, same gradients.

Every comparison shares one state_dict between the torch.nn module and ours, runs
both on the same inputs, backpropagates the same fixed random projection of every
output, and compares outputs and the gradients of the inputs, the initial state and
every parameter (float32: 1e-5, float64: 1e-10). The extras have no torch.nn
counterpart; they are checked against ``tests/reference.py`` stacked by hand.
"""

from __future__ import annotations

import itertools
from typing import Callable, Optional

import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit.nn as rnn
from reference import ref_run
from rnnkit import engine
from rnnkit.ops import Weights

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

F_IN, H, T, B = 4, 5, 6, 3
P_PROJ = 3
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
IMPLEMENTATIONS = ("bptt", "fused", "auto")
LENGTHS = {"packed_sorted": [6, 5, 2], "packed_unsorted": [3, 6, 3]}  # the tie checks the batch order survives

# name -> (torch class, rnnkit class, constructor options)
KINDS = {
    "rnn_tanh": (torch.nn.RNN, rnn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, rnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (torch.nn.LSTM, rnn.LSTM, {}),
    "lstm_proj": (torch.nn.LSTM, rnn.LSTM, {"proj_size": P_PROJ}),
    "gru": (torch.nn.GRU, rnn.GRU, {}),
}


# -- helpers ------------------------------------------------------------------------------------


def make_pair(kind: str, dtype=torch.float64, implementation: str = "auto", **cfg):
    """A torch.nn module and ours with the torch module's state_dict."""
    torch_cls, our_cls, options = KINDS[kind]
    ref = torch_cls(F_IN, H, dtype=dtype, **options, **cfg)
    ours = our_cls(F_IN, H, dtype=dtype, implementation=implementation, **options, **cfg)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def flat_outputs(obj) -> list[Tensor]:
    if isinstance(obj, PackedSequence):
        return [obj.data, obj.batch_sizes] + [i for i in (obj.sorted_indices, obj.unsorted_indices) if i is not None]
    if isinstance(obj, Tensor):
        return [obj]
    return [t for o in obj for t in flat_outputs(o)]


def forward_backward(fn: Callable, module: torch.nn.Module, leaves: dict[str, Tensor], args) -> tuple[list, dict]:
    """Outputs of fn(*args), and the gradients of a fixed random projection of all of them."""
    outputs = flat_outputs(fn(*args))
    gen = torch.Generator().manual_seed(1234)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in outputs if t.is_floating_point())
    loss.backward()
    grads = {f"input {k}": v.grad for k, v in leaves.items()}
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return outputs, grads


def assert_close(actual: Optional[Tensor], expected: Optional[Tensor], tol: float, what: str) -> None:
    assert (actual is None) == (expected is None), f"{what}: one gradient is None"
    if actual is not None:
        torch.testing.assert_close(actual, expected, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")


def assert_same(ref_fn, ref_module, our_fn, our_module, build_args, tol: float, label: str = "") -> None:
    """Same outputs and gradients; build_args() -> (fresh leaves, args) for one run."""
    ref_out, ref_grads = forward_backward(ref_fn, ref_module, *build_args())
    our_out, our_grads = forward_backward(our_fn, our_module, *build_args())
    assert len(ref_out) == len(our_out), label
    for i, (a, e) in enumerate(zip(our_out, ref_out)):
        assert a.shape == e.shape, f"{label} output {i}: shape {tuple(a.shape)} != {tuple(e.shape)}"
        assert_close(a, e, tol, f"{label} output {i}")
    assert set(our_grads) == set(ref_grads), label
    for name in ref_grads:
        assert_close(our_grads[name], ref_grads[name], tol, f"{label} grad {name}")


def case_builder(kind: str, mode: str, batch_first: bool, hx_given: bool, num_layers: int, bidirectional: bool, dtype):
    """build_args for one input mode: "tensor", "unbatched", "packed_sorted" or "packed_unsorted"."""
    gen = torch.Generator().manual_seed(7)
    LD = num_layers * (2 if bidirectional else 1)
    P = P_PROJ if kind == "lstm_proj" else H
    packed = mode.startswith("packed")
    if mode == "unbatched":
        x_shape, batch = (T, F_IN), ()
    elif batch_first or packed:
        x_shape, batch = (B, T, F_IN), (B,)
    else:
        x_shape, batch = (T, B, F_IN), (B,)
    base = {"x": torch.randn(x_shape, generator=gen, dtype=dtype)}
    if hx_given:
        base["h0"] = torch.randn((LD, *batch, P), generator=gen, dtype=dtype)
        if kind.startswith("lstm"):
            base["c0"] = torch.randn((LD, *batch, H), generator=gen, dtype=dtype)

    def build():
        leaves = {k: v.clone().requires_grad_() for k, v in base.items()}
        x = leaves["x"]
        if packed:
            x = pack_padded_sequence(x, torch.tensor(LENGTHS[mode]), batch_first=True, enforce_sorted=mode == "packed_sorted")
        hx = None
        if hx_given:
            hx = (leaves["h0"], leaves["c0"]) if kind.startswith("lstm") else leaves["h0"]
        return leaves, (x, hx)

    return build


# -- torch.nn equivalence -----------------------------------------------------------------------


# (input mode, bias, batch_first, hx given): every value of each factor, and each input mode
# with and without hx; packed input ignores batch_first, as in torch (checked once with it on).
SUBCASES = [
    ("tensor", True, False, False),
    ("tensor", False, True, True),
    ("tensor", True, True, True),
    ("unbatched", True, False, True),
    ("unbatched", False, True, False),
    ("packed_sorted", False, True, True),
    ("packed_unsorted", True, False, True),
    ("packed_unsorted", False, False, False),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_module_equals_torch(kind, implementation, num_layers, bidirectional, dtype):
    for mode, bias, batch_first, hx_given in SUBCASES:
        ref, ours = make_pair(
            kind, dtype, implementation, num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional
        )
        build = case_builder(kind, mode, batch_first, hx_given, num_layers, bidirectional, dtype)
        label = f"mode={mode} bias={bias} batch_first={batch_first} hx={hx_given}"
        assert_same(ref, ref, ours, ours, build, TOL[dtype], label)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "lstm_proj", "gru"])
def test_lengths_keyword_equals_packed_torch(kind, implementation):
    ref, ours = make_pair(kind, torch.float64, implementation, num_layers=2, bidirectional=True, batch_first=True)
    lengths = torch.tensor([4, 6, 1])
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(B, T, F_IN, generator=gen, dtype=torch.float64)

    def build():
        x = x0.clone().requires_grad_()
        return {"x": x}, (x,)

    def ref_fn(x):
        out, hn = ref(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return pad_packed_sequence(out, batch_first=True, total_length=T)[0], hn

    assert_same(ref_fn, ref, lambda x: ours(x, lengths=lengths), ours, build, TOL[torch.float64])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", ["rnn_relu", "lstm", "gru"])
def test_tbptt_equals_torch_run_in_detached_windows(kind, implementation):
    """Per-layer truncation every k steps is the stack run window by window with the state detached."""
    k = 2
    ref, ours = make_pair(kind, torch.float64, implementation, num_layers=2)
    ours.tbptt = k
    build = case_builder(kind, "tensor", False, True, 2, False, torch.float64)

    def windowed(x, hx):
        outs = []
        for start in range(0, x.shape[0], k):
            if start:
                hx = tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach()
            o, hx = ref(x[start : start + k], hx)
            outs.append(o)
        return torch.cat(outs), hx

    assert_same(windowed, ref, ours, ours, build, TOL[torch.float64])


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_interlayer_dropout_as_torch(kind):
    # p = 1 drops everything, so training mode is deterministic and comparable with torch.
    ref, ours = make_pair(kind, torch.float64, num_layers=3, dropout=1.0, bidirectional=True)
    build = case_builder(kind, "tensor", False, True, 3, True, torch.float64)
    assert_same(ref, ref, ours, ours, build, TOL[torch.float64], "train p=1")
    ref.dropout = ours.dropout = 0.5
    ref.eval()
    ours.eval()
    ref.zero_grad()
    ours.zero_grad()
    assert_same(ref, ref, ours, ours, build, TOL[torch.float64], "eval p=0.5")
    ours.train()
    x = torch.randn(T, B, F_IN, dtype=torch.float64)
    torch.manual_seed(0)
    assert not torch.equal(ours(x)[0], ref(x)[0]), "dropout did nothing in training"


def test_torch_module_loads_our_state_dict():
    for kind in KINDS:
        torch_cls, our_cls, options = KINDS[kind]
        ours = our_cls(F_IN, H, num_layers=2, bidirectional=True, dtype=torch.float64, **options)
        ref = torch_cls(F_IN, H, num_layers=2, bidirectional=True, dtype=torch.float64, **options)
        ref.load_state_dict(ours.state_dict())
        build = case_builder(kind, "tensor", False, True, 2, True, torch.float64)
        assert_same(ref, ref, ours, ours, build, TOL[torch.float64], kind)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_layout_equals_torch(kind, num_layers, bidirectional, bias):
    torch_cls, our_cls, options = KINDS[kind]
    cfg = dict(num_layers=num_layers, bidirectional=bidirectional, bias=bias, **options)
    ref_sd, our_sd = torch_cls(F_IN, H, **cfg).state_dict(), our_cls(F_IN, H, **cfg).state_dict()
    assert list(our_sd) == list(ref_sd)
    assert [v.shape for v in our_sd.values()] == [v.shape for v in ref_sd.values()]


@pytest.mark.parametrize("kind", list(KINDS))
def test_seeded_init_draws_torch_weights(kind):
    """Same distribution and order as torch: with one seed, the same numbers, extras or not."""
    torch_cls, our_cls, options = KINDS[kind]
    extras = {"peephole": True, "layer_norm": True} if kind.startswith("lstm") else {}
    torch.manual_seed(0)
    ref = torch_cls(F_IN, H, num_layers=2, bidirectional=True, **options)
    for kw in ({}, extras):
        torch.manual_seed(0)
        ours = our_cls(F_IN, H, num_layers=2, bidirectional=True, **options, **kw)
        for name, value in ref.state_dict().items():
            assert torch.equal(ours.state_dict()[name], value), name
    bound = 1 / H**0.5
    assert all(float(p.detach().abs().max()) <= bound for p in ours.parameters() if p.dim() > 1)


def test_attributes_as_torch():
    ref = torch.nn.LSTM(F_IN, H, 2, batch_first=True, bidirectional=True, proj_size=2)
    ours = rnn.LSTM(F_IN, H, 2, batch_first=True, bidirectional=True, proj_size=2)
    for name in ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert [[p.shape for p in ps] for ps in ours.all_weights] == [[p.shape for p in ps] for ps in ref.all_weights]
    ours.flatten_parameters()
    assert rnn.RNN(F_IN, H, 1, "relu").nonlinearity == "relu"
    with pytest.warns(UserWarning, match="dropout"):
        rnn.GRU(F_IN, H, dropout=0.3)


# -- cells --------------------------------------------------------------------------------------

CELLS = {
    "rnn_tanh": (torch.nn.RNNCell, rnn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNNCell, rnn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (torch.nn.LSTMCell, rnn.LSTMCell, {}),
    "gru": (torch.nn.GRUCell, rnn.GRUCell, {}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_equals_torch(kind, bias, dtype):
    torch_cls, our_cls, options = CELLS[kind]
    torch.manual_seed(0)
    ref = torch_cls(F_IN, H, bias=bias, dtype=dtype, **options)
    torch.manual_seed(0)
    ours = our_cls(F_IN, H, bias=bias, dtype=dtype, **options)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for name, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), f"seeded init differs: {name}"
    lstm = kind == "lstm"
    for batched, hx_given in itertools.product([True, False], [False, True]):
        gen = torch.Generator().manual_seed(5)
        batch = (B,) if batched else ()
        base = {"x": torch.randn(*batch, F_IN, generator=gen, dtype=dtype)}
        if hx_given:
            base["h"] = torch.randn(*batch, H, generator=gen, dtype=dtype)
            if lstm:
                base["c"] = torch.randn(*batch, H, generator=gen, dtype=dtype)

        def build():
            leaves = {k: v.clone().requires_grad_() for k, v in base.items()}
            hx = None
            if hx_given:
                hx = (leaves["h"], leaves["c"]) if lstm else leaves["h"]
            return leaves, (leaves["x"], hx)

        ref.zero_grad()
        ours.zero_grad()
        assert_same(ref, ref, ours, ours, build, TOL[dtype], f"batched={batched} hx={hx_given}")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(CELLS))
def test_torch_cell_loads_our_state_dict(kind, bias):
    # Our randomly initialised weights, loaded into torch's cell, give our outputs.
    torch_cls, our_cls, options = CELLS[kind]
    torch.manual_seed(1)
    ours = our_cls(F_IN, H, bias=bias, dtype=torch.float64, **options)
    torch.manual_seed(2)  # another seed: nothing below can pass by equal initialisation
    ref = torch_cls(F_IN, H, bias=bias, dtype=torch.float64, **options)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(B, F_IN, generator=gen, dtype=torch.float64)
    hx = torch.randn(B, H, generator=gen, dtype=torch.float64)
    hx = (hx, torch.randn(B, H, generator=gen, dtype=torch.float64)) if kind == "lstm" else hx
    before = ref(x, hx)
    ref.load_state_dict(ours.state_dict())
    got, expected = ref(x, hx), ours(x, hx)
    for g, e, b in zip(*(o if isinstance(o, tuple) else (o,) for o in (got, expected, before))):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
        assert not torch.allclose(b, e), "torch's own initial weights already gave our outputs"


def test_cell_extras_match_the_layer_on_one_step():
    """A cell with extras is one step of the module with the same extras."""
    x = torch.randn(B, F_IN, dtype=torch.float64)
    for cell, layer in (
        (rnn.LSTMCell(F_IN, H, peephole=True, layer_norm=True, dtype=torch.float64),
         rnn.LSTM(F_IN, H, peephole=True, layer_norm=True, dtype=torch.float64)),
        (rnn.GRUCell(F_IN, H, reset_after=False, dtype=torch.float64),
         rnn.GRU(F_IN, H, reset_after=False, dtype=torch.float64)),
    ):
        assert {"peephole", "ln_gamma", "ln_cell_beta"} <= set(cell.state_dict()) or isinstance(cell, rnn.GRUCell)
        layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
        h_cell = cell(x)
        h_cell = h_cell[0] if isinstance(h_cell, tuple) else h_cell
        torch.testing.assert_close(h_cell, layer(x[None])[0][0], rtol=1e-12, atol=1e-12)


# -- extras -------------------------------------------------------------------------------------

EXTRA_CASES = [
    ("lstm", {"peephole": True}),
    ("lstm", {"layer_norm": True}),
    ("lstm_proj", {"peephole": True, "layer_norm": True}),
    ("gru", {"reset_after": False}),
    ("rnn_tanh", {"zoneout": 0.3}),
    ("lstm", {"zoneout": 0.3}),
    ("gru", {"zoneout": 0.3}),
]


def stacked_reference(module: rnn.RNNBase, x: Tensor, lengths: Optional[Tensor], zoneout_rate: float = 0.0):
    """tests/reference.py run layer by layer from the state_dict's names (eval mode only)."""
    sd = module.state_dict()
    spec = module.spec
    D = 2 if module.bidirectional else 1
    mask = None if lengths is None else engine.lengths_to_mask(lengths, x.shape[1])
    layer_input, finals = x, []
    for layer in range(module.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w = Weights(**{f: sd.get(f + sfx) for f in Weights._fields})
            zoneout = None
            if zoneout_rate:
                sizes = (module.proj_size or module.hidden_size, module.hidden_size)[: spec.n_states]
                zoneout = [x.new_full((x.shape[0], x.shape[1], n), zoneout_rate) for n in sizes]
            out, final = ref_run(spec, layer_input, w, mask=mask, reverse=bool(d), zoneout=zoneout)
            outs.append(out)
            finals.append(final)
        layer_input = torch.cat(outs, dim=2)
    return layer_input, [torch.stack(s) for s in zip(*finals)]


@pytest.mark.parametrize("kind,extras", EXTRA_CASES, ids=[f"{k}-{'-'.join(e)}" for k, e in EXTRA_CASES])
def test_extras_run_have_gradients_and_match_reference(kind, extras):
    _, our_cls, options = KINDS[kind]
    torch.manual_seed(0)
    ours = our_cls(F_IN, H, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64, **options, **extras)
    plain = set(KINDS[kind][0](F_IN, H, num_layers=2, bidirectional=True, **options).state_dict())
    added = set(ours.state_dict()) - plain
    expected = set()
    if extras.get("peephole"):
        expected |= {"peephole_l0", "peephole_l1_reverse"}
    if extras.get("layer_norm"):
        expected |= {"ln_gamma_l0", "ln_beta_l1", "ln_cell_gamma_l0_reverse", "ln_cell_beta_l1_reverse"}
    assert expected <= added and all(name.split("_l")[0] in ("peephole", "ln_gamma", "ln_beta", "ln_cell_gamma", "ln_cell_beta") for name in added)
    assert plain <= set(ours.state_dict())

    x = torch.randn(B, T, F_IN, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    out, _ = ours(x, lengths=lengths)  # training: fresh zoneout masks
    out.square().sum().backward()
    for name, p in ours.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name

    ours.eval()
    out, state = ours(x, lengths=lengths)
    ref_out, ref_state = stacked_reference(ours, x, lengths, extras.get("zoneout", 0.0))
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    for s, r in zip(state if isinstance(state, tuple) else (state,), ref_state):
        torch.testing.assert_close(s, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm_proj", "gru"])
def test_recurrent_dropout_one_mask_per_sequence_and_off_in_eval(kind):
    torch_cls, our_cls, options = KINDS[kind]
    ref = torch_cls(F_IN, H, batch_first=True, dtype=torch.float64, **options)
    ours = our_cls(F_IN, H, batch_first=True, dtype=torch.float64, recurrent_dropout=0.4, **options)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, F_IN, dtype=torch.float64)

    torch.manual_seed(11)
    out, _ = ours(x)
    # The forward's first draw is the layer's mask: one (B, P) mask, used at every step.
    torch.manual_seed(11)
    mask = engine.recurrent_dropout_mask(B, P_PROJ if kind == "lstm_proj" else H, 0.4, like=x)
    w = Weights(**{f: ours.state_dict().get(f + "_l0") for f in Weights._fields})
    torch.testing.assert_close(out, ref_run(ours.spec, x, w, recurrent_mask=mask)[0], rtol=1e-10, atol=1e-10)
    assert not torch.allclose(out, ref(x)[0])

    ours.eval()
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-10, atol=1e-10)


def test_fused_with_an_extra_raises_and_auto_falls_back():
    for cls, kw, name in [
        (rnn.LSTM, {"peephole": True}, "peephole"),
        (rnn.LSTM, {"layer_norm": True}, "layer_norm"),
        (rnn.GRU, {"reset_after": False}, "reset_after"),
        (rnn.RNN, {"recurrent_dropout": 0.2}, "recurrent_dropout"),
        (rnn.LSTM, {"zoneout": 0.2}, "zoneout"),
    ]:
        with pytest.raises(ValueError, match=f"implementation='fused'.*{name}"):
            cls(F_IN, H, implementation="fused", **kw)
        cls(F_IN, H, implementation="auto", **kw)(torch.randn(T, B, F_IN))
    with pytest.raises(ValueError, match="implementation='fused' is not possible"):
        rnn.LSTM(F_IN, H, batch_first=True, implementation="fused", tbptt=2)(torch.randn(B, T, F_IN), lengths=torch.tensor([6, 2, 3]))


# -- bad input ----------------------------------------------------------------------------------

BAD_CONSTRUCTORS = [
    (lambda: rnn.LSTM(F_IN, 0), ValueError, "hidden_size"),
    (lambda: rnn.GRU(0, H), ValueError, "input_size"),
    (lambda: rnn.RNN(F_IN, H, num_layers=0), ValueError, "num_layers"),
    (lambda: rnn.RNN(F_IN, H, nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (lambda: rnn.GRU(F_IN, H, dropout=1.5), ValueError, "dropout"),
    (lambda: rnn.GRU(F_IN, H, dropout=-0.1), ValueError, "dropout"),
    (lambda: rnn.LSTM(F_IN, H, proj_size=H), ValueError, "proj_size"),
    (lambda: rnn.LSTM(F_IN, H, proj_size=-1), ValueError, "proj_size"),
    (lambda: rnn.LSTM(F_IN, H, bias="yes"), TypeError, "bias"),
    (lambda: rnn.LSTM(F_IN, H, batch_first=1), TypeError, "batch_first"),
    (lambda: rnn.LSTM(F_IN, H, implementation="cuda"), ValueError, "implementation"),
    (lambda: rnn.LSTM(F_IN, H, tbptt=0), ValueError, "tbptt"),
    (lambda: rnn.LSTM(F_IN, H, recurrent_dropout=1.0), ValueError, "recurrent_dropout"),
    (lambda: rnn.GRU(F_IN, H, zoneout=-0.5), ValueError, "zoneout"),
    (lambda: rnn.RNNCell(F_IN, H, nonlinearity="gelu"), ValueError, "nonlinearity"),
    (lambda: rnn.GRUCell(F_IN, -3), ValueError, "hidden_size"),
    (lambda: rnn.LSTMCell(F_IN, H, bias=None), TypeError, "bias"),
]


@pytest.mark.parametrize("make,exc,match", BAD_CONSTRUCTORS)
def test_bad_hyperparameters_raise_clear_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_forward_arguments_raise_clear_errors():
    lstm, gru = rnn.LSTM(F_IN, H, num_layers=2), rnn.GRU(F_IN, H, batch_first=True)
    x, xb = torch.randn(T, B, F_IN), torch.randn(B, T, F_IN)
    cases = [
        (lambda: lstm(torch.randn(T, B, F_IN, 1)), ValueError, r"`input` must have shape \(T, B, F\)"),
        (lambda: lstm(torch.randn(F_IN)), ValueError, "rank 3 or 2"),
        (lambda: lstm(torch.randn(T, B, F_IN + 1)), ValueError, "input_size = 4"),
        (lambda: lstm(torch.ones(T, B, F_IN, dtype=torch.long)), TypeError, "floating-point"),
        (lambda: lstm(x.double()), TypeError, "dtype"),
        (lambda: lstm(x.tolist()), TypeError, "torch.Tensor"),
        (lambda: lstm(x, torch.zeros(2, B, H)), TypeError, r"tuple \(h_0, c_0\)"),
        (lambda: lstm(x, (torch.zeros(1, B, H), torch.zeros(2, B, H))), ValueError, r"hx\[0\].*\(2, 3, 5\)"),
        (lambda: lstm(x, (torch.zeros(2, B, H), torch.zeros(2, B + 1, H))), ValueError, r"hx\[1\]"),
        (lambda: lstm(x[:, 0], (torch.zeros(2, B, H), torch.zeros(2, B, H))), ValueError, "unbatched"),
        (lambda: gru(xb, torch.zeros(1, T, H)), ValueError, r"`hx` must have shape \(num_layers \* num_directions, B, H\)"),
        (lambda: gru(xb, torch.zeros(1, B, H, dtype=torch.float64)), TypeError, "`hx` must have the input's dtype"),
        (lambda: gru(xb, lengths=torch.tensor([1, 2])), ValueError, "lengths"),
        (lambda: gru(xb, lengths=torch.tensor([1.0, 2.0, 3.0])), TypeError, "lengths"),
        (lambda: gru(xb, lengths=torch.tensor([1, 9, 2])), ValueError, "lengths"),
        (lambda: gru(pack_padded_sequence(x, torch.tensor([3, 2, 1]), enforce_sorted=False), lengths=torch.tensor([3, 2, 1])),
         ValueError, "PackedSequence"),
        (lambda: rnn.RNNCell(F_IN, H)(torch.randn(B, T, F_IN)), ValueError, "rank 2 or 1"),
        (lambda: rnn.GRUCell(F_IN, H)(torch.randn(B, F_IN + 2)), ValueError, "input_size"),
        (lambda: rnn.GRUCell(F_IN, H)(torch.randn(B, F_IN), torch.zeros(B, H + 1)), ValueError, r"`hx` must have shape \(B, H\)"),
        (lambda: rnn.LSTMCell(F_IN, H)(torch.randn(B, F_IN), torch.zeros(B, H)), TypeError, r"tuple \(h, c\)"),
        (lambda: rnn.LSTMCell(F_IN, H)(torch.randn(F_IN), (torch.zeros(H), torch.zeros(B, H))), ValueError, r"hx\[1\]"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
