"""rnnkit.diagnostics against independent autograd: gradient flow, Jacobians, warnings, plots, CLI."""

from __future__ import annotations

import argparse
import json
import math
import warnings

import numpy as np
import pytest
import torch
from reference import ref_step

from rnnkit.cells import RecurrentCell
from rnnkit.diagnostics import (
    ExplodingGradientWarning,
    GradientFlow,
    LayerFlow,
    ProbedRecurrent,
    RunConfig,
    VanishingGradientWarning,
    diagnose_flow,
    gradient_flow,
    jacobian_norms,
    plot_clipping,
    plot_flow_curves,
    plot_flow_heatmap,
    plot_learning_curves,
    train_run,
)
from rnnkit.diagnostics import cli as diag_cli

DT = torch.float64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _unrolled_state_grads(cell: RecurrentCell, x: torch.Tensor, weight: torch.Tensor, reverse: bool):
    """Step the reference cell by hand and backprop L = sum(out * weight) with retain_grad on every state.

    dh: ||dL/dh_t||, the total gradient of h_t (the output at t and the input of step t+1).
    dc: ||dL/dc_t|| carried back from step t+1 (the cell path), read from a copy of c_t that
        only the next step uses; the engine reports this part for c (see LayerFlow).
    """
    w = cell.weights()
    B, T, _ = x.shape
    h = x.new_zeros(B, cell.hidden_size)
    c = x.new_zeros(B, cell.hidden_size) if cell.spec.kind == "lstm" else None
    hs, cs = [None] * T, [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h, c = ref_step(cell.spec, w, x[:, t], h, c, None)
        h.retain_grad()
        hs[t] = h
        if c is not None:
            c = c.clone()
            c.retain_grad()
            cs[t] = c
    loss = (torch.stack(hs, dim=1) * weight).sum()
    loss.backward()

    def norm(v: torch.Tensor) -> float:
        return torch.linalg.vector_norm(v.grad).item() if v.grad is not None else 0.0

    return np.array([norm(v) for v in hs]), (np.array([norm(v) for v in cs]) if c is not None else None)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradient_flow_equals_retain_grad_on_each_state(kind, reverse):
    torch.manual_seed(0)
    B, T, F, H = 3, 9, 4, 5
    cell = RecurrentCell(kind, F, H, dtype=DT)
    x = torch.randn(B, T, F, dtype=DT)
    weight = torch.randn(B, T, H, dtype=DT)
    model = ProbedRecurrent(cell, name=kind, return_sequences=True, reverse=reverse, implementation="bptt")

    flows = gradient_flow(model, x, weight, loss_fn=lambda out, y: (out * y).sum())

    key = kind + (":backward" if reverse else "")
    assert list(flows) == [key]
    flow = flows[key]
    assert flow.direction == ("backward" if reverse else "forward")
    dh, dc = _unrolled_state_grads(cell, x, weight, reverse)
    np.testing.assert_allclose(flow.h, dh, rtol=1e-10, atol=0)
    if kind == "lstm":
        np.testing.assert_allclose(flow.c, dc, rtol=1e-10, atol=0)
    else:
        assert flow.c is None


def test_gradient_flow_leaves_grads_and_probes_alone():
    torch.manual_seed(0)
    first = ProbedRecurrent(RecurrentCell("gru", 2, 4, dtype=DT), name="enc", return_sequences=True)
    second = ProbedRecurrent(RecurrentCell("lstm", 4, 3, dtype=DT), name="dec")
    model = torch.nn.Sequential(first, second, torch.nn.Linear(3, 1, dtype=DT))
    x, y = torch.randn(5, 7, 2, dtype=DT), torch.randn(5, 1, dtype=DT)

    flows = gradient_flow(model, x.numpy(), y.numpy())  # numpy in, default MSE loss

    assert list(flows) == ["enc", "dec"]
    assert flows["enc"].h.shape == (7,) and flows["dec"].c.shape == (7,)
    assert all(p.grad is None for p in model.parameters())
    assert first.probes is None and second.probes is None
    # The many-to-one layer gets its whole gradient at the last step: ratio = first / last.
    assert flows["dec"].ratio() == pytest.approx(flows["dec"].h[0] / flows["dec"].h[-1])


def test_gradient_flow_rejects_a_model_without_probes():
    with pytest.raises(ValueError, match="probes"):
        gradient_flow(torch.nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(TypeError, match="model"):
        gradient_flow("not a model", torch.zeros(1, 2), torch.zeros(1, 2))


def _state_fn(cell: RecurrentCell, x_steps: torch.Tensor):
    sizes = list(cell.state_sizes)

    def f(s: torch.Tensor) -> torch.Tensor:
        for x_t in x_steps:
            s = torch.cat(cell(x_t[None], tuple(s[None].split(sizes, -1))), -1)[0]
        return s

    return f


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_jacobian_spectral_norms_equal_autograd(kind):
    torch.manual_seed(1)
    cell = RecurrentCell(kind, 3, 4, dtype=DT)
    x = torch.randn(2, 6, 3, dtype=DT)

    report = jacobian_norms(cell, x, method="exact")

    S = sum(cell.state_sizes)
    for b in range(2):
        s = torch.zeros(S, dtype=DT)
        for t in range(6):
            J = torch.autograd.functional.jacobian(_state_fn(cell, x[b, t : t + 1]), s)
            P = torch.autograd.functional.jacobian(_state_fn(cell, x[b, : t + 1]), torch.zeros(S, dtype=DT))
            assert report.step_norms[b, t] == pytest.approx(torch.linalg.matrix_norm(J, ord=2).item(), rel=1e-10)
            assert report.product_norms[b, t] == pytest.approx(torch.linalg.matrix_norm(P, ord=2).item(), rel=1e-10)
            s = _state_fn(cell, x[b, t : t + 1])(s).detach()


# torch.func.jvp's first call scripts torch's own jvp decompositions with the deprecated torch.jit.script.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_power_iteration_agrees_with_the_exact_spectral_norm():
    torch.manual_seed(1)
    cell = RecurrentCell("lstm", 3, 4, dtype=DT)
    x = torch.randn(2, 6, 3, dtype=DT)
    exact = jacobian_norms(cell, x, method="exact")
    power = jacobian_norms(cell, x, method="power", n_iter=100)
    np.testing.assert_allclose(power.step_norms, exact.step_norms, rtol=1e-6)
    assert np.all(power.product_norms <= exact.product_norms * (1 + 1e-9))  # a lower bound


def test_decay_rate_of_a_contracting_linear_rnn():
    cell = RecurrentCell("rnn", 2, 3, activation="linear", recurrent_initializer="identity", dtype=DT)
    with torch.no_grad():
        cell.weight_hh.mul_(0.5)
    report = jacobian_norms(cell, torch.randn(4, 20, 2, dtype=DT))
    np.testing.assert_allclose(report.step_norms, 0.5)
    np.testing.assert_allclose(report.product_norms[:, -1], 0.5**20)
    assert report.decay_rate == pytest.approx(math.log(0.5))
    assert report.factor == pytest.approx(0.5)


def _drive_callback(model, x, y, epochs=1, batch_logs=()):
    cb = GradientFlow(x, y, loss_fn=lambda out, t: torch.nn.functional.mse_loss(out, t))
    cb.set_model(model)
    cb.on_train_begin({})
    for epoch in range(epochs):
        cb.on_epoch_begin(epoch, {})
        for i, logs in enumerate(batch_logs):
            cb.on_train_batch_end(i, logs)
        cb.on_epoch_end(epoch, {"clip_events": sum(bool(l["clipped"]) for l in batch_logs)})
    return cb


def _many_to_one(cell: RecurrentCell) -> torch.nn.Module:
    return torch.nn.Sequential(ProbedRecurrent(cell, name=cell.spec.kind), torch.nn.Linear(cell.hidden_size, 1, dtype=DT))


def test_vanishing_warning_fires_for_a_long_tanh_rnn_with_small_weights():
    torch.manual_seed(0)
    cell = RecurrentCell("rnn", 2, 16, recurrent_initializer="orthogonal", dtype=DT)
    with torch.no_grad():
        cell.weight_hh.mul_(0.3)  # ||W_hh||_2 = 0.3, so ||dL/dh_1|| <~ 0.3^59 ||dL/dh_T||
    x, y = torch.randn(8, 60, 2, dtype=DT), torch.randn(8, 1, dtype=DT)
    logs = [{"grad_norm": 3.0, "clipped": True}, {"grad_norm": 0.5, "clipped": False}]

    with pytest.warns(VanishingGradientWarning, match=r"gradients vanish.*\|\|dL/dh_1\|\|/\|\|dL/dh_60\|\| = .*try LSTM/GRU"):
        cb = _drive_callback(_many_to_one(cell), x, y, epochs=2, batch_logs=logs)

    assert cb.epochs == [0, 1, 2]
    assert cb.heatmap().shape == (3, 60)
    assert len(cb.messages) == 1  # once per layer, not every epoch
    assert cb.ratios()[-1] < 1e-20
    assert cb.clip_events == [(1, 1), (2, 1)]
    assert cb.clip_summary() == {"steps": 4.0, "clipped": 2.0, "fraction": 0.5, "median_norm": 1.75, "max_norm": 3.0}


def test_no_vanishing_warning_for_an_lstm_with_forget_bias_one():
    torch.manual_seed(0)
    cell = RecurrentCell("lstm", 2, 16, bias="single", kernel_initializer="glorot_uniform",
                         recurrent_initializer="orthogonal", bias_initializer="zeros", unit_forget_bias=True, dtype=DT)
    x, y = torch.randn(8, 40, 2, dtype=DT), torch.randn(8, 1, dtype=DT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cb = _drive_callback(_many_to_one(cell), x, y)
    assert cb.messages == []
    assert cb.ratios()[-1] > 1e-8


def test_explosion_is_diagnosed_through_time():
    T = 30
    growing = LayerFlow("irnn", "forward", 1.8 ** np.arange(T)[::-1].copy())
    fine = LayerFlow("gru", "backward", np.ones(T))
    findings = diagnose_flow({"irnn": growing, "gru": fine})
    assert [(f.key, f.category) for f in findings] == [("irnn", ExplodingGradientWarning)]
    assert "clipnorm" in findings[0].message and "2.5e+07" in findings[0].message


def _is_png(path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_plots_write_png_files(tmp_path):
    rng = np.random.default_rng(0)
    T, E = 30, 5
    decay = 0.7 ** np.arange(T)[::-1]
    maps = {"rnn": np.tile(decay, (E, 1)), "lstm": np.ones((E, T)) + rng.random((E, T))}
    records = {"rnn": [(i + 1, i // 10, float(n), bool(n > 1)) for i, n in enumerate(rng.lognormal(0, 1, 40))]}
    paths = [
        plot_flow_heatmap(maps, tmp_path / "heat.png", epochs={"rnn": [0, 1, 2, 3, 4]}),
        plot_flow_curves({"rnn": decay[::-1], "lstm": np.ones(T)}, tmp_path / "curves.png"),
        plot_clipping(records, tmp_path / "clip.png", threshold=1.0),
        plot_learning_curves({"rnn": ([1, 2, 3], [0.2, 0.17, 0.16])}, tmp_path / "sub" / "loss.png", baseline=1 / 6),
    ]
    assert all(_is_png(p) for p in paths)
    with pytest.raises(ValueError, match="maps"):
        plot_flow_heatmap({}, tmp_path / "none.png")


def test_diagnose_command_trains_and_writes_the_report(tmp_path):
    parser = argparse.ArgumentParser(prog="rnnkit")
    diag_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["diagnose", "--length", "12", "--cells", "rnn,lstm", "--steps", "20",
                              "--eval-every", "10", "--batch-size", "8", "--threads", "1", "--out", str(tmp_path)])
    assert args.func(args) == 0
    for name in ("heatmap_T12_clipnorm1.png", "curves_T12_clipnorm1.png", "clipping_T12_clipnorm1.png",
                 "loss_T12_clipnorm1.png"):
        assert _is_png(tmp_path / name), name
    table = (tmp_path / "results.md").read_text()
    assert "| rnn | 12 | clipnorm 1 |" in table and "| lstm | 12 | clipnorm 1 |" in table
    records = json.loads((tmp_path / "results.json").read_text())
    assert [r["config"]["recipe"] for r in records] == ["rnn", "lstm"]
    assert len(records[0]["flow"]["heatmap"]) == 3  # before training + 2 epochs
    with pytest.raises(SystemExit):
        parser.parse_args(["diagnose", "--cells", "rnn,transformer"])


@pytest.mark.parametrize("recipe", ["mingru", "minlstm"])
def test_diagnose_trains_the_min_cells_and_records_their_flow(recipe):
    """The scan layers are recipes too: their probes report ||dL/dh_t|| per step, as the cells' do."""
    cfg = RunConfig(task="adding", length=12, recipe=recipe, hidden=8, steps=4, eval_every=2, batch_size=8,
                    flow_batch=8, warn=False)
    record = train_run(cfg).to_dict()
    heat = np.asarray(record["flow"]["heatmap"])
    assert heat.shape == (3, 12) and np.isfinite(heat).all() and (heat > 0).all()
    parser = argparse.ArgumentParser(prog="rnnkit")
    diag_cli.register(parser.add_subparsers(dest="command", required=True))
    assert parser.parse_args(["diagnose", "--cells", f"gru,{recipe}"]).cells == ["gru", recipe]


def test_gradient_flow_callback_inside_fit_with_the_compiled_loss():
    from rnnkit.datasets.long_range import adding_problem
    from rnnkit.keras.layers import Dense, SimpleRNN
    from rnnkit.keras.models import Sequential

    torch.manual_seed(0)
    x, y = adding_problem(96, 20, seed=0)
    model = Sequential([SimpleRNN(8, name="rnn"), Dense(1)])
    model.compile(optimizer="adam", loss="mse", clipnorm=1e-3)  # tiny, so every step clips
    cb = GradientFlow(x[:32], y[:32])
    model.fit(x, y, epochs=2, batch_size=32, callbacks=[cb], verbose=0)

    assert cb.epochs == [0, 1, 2] and cb.keys == ["rnn"]
    assert cb.heatmap().shape == (3, 20)
    assert cb.clip_events == [(1, 3), (2, 3)]
    assert [e for _, e, _, _ in cb.batch_norms] == [1, 1, 1, 2, 2, 2]
    assert all(clipped for *_, clipped in cb.batch_norms)
    # The compiled MSE drives the measurement: the same numbers as an explicit loss.
    explicit = gradient_flow(model, x[:32], y[:32], loss_fn=torch.nn.functional.mse_loss)
    np.testing.assert_allclose(gradient_flow(model, x[:32], y[:32])["rnn"].h, explicit["rnn"].h, rtol=1e-6)


def test_vanishing_advice_depends_on_the_cell():
    decayed = 0.5 ** np.arange(40)[::-1].copy()  # ratio 0.5^39 = 1.8e-12
    findings = diagnose_flow({
        "rnn": LayerFlow("rnn", "forward", decayed, cell="rnn"),
        "lstm": LayerFlow("lstm", "forward", decayed, np.zeros(40), cell="lstm"),
        "gru": LayerFlow("gru", "backward", decayed[::-1].copy(), cell="gru"),
    })
    assert [(f.key, f.category) for f in findings] == [(k, VanishingGradientWarning) for k in ("rnn", "lstm", "gru")]
    assert "try LSTM/GRU, identity init (IRNN)" in findings[0].message
    assert "forget gates" in findings[1].message and "forget-gate bias" in findings[1].message
    assert "update gates" in findings[2].message and "||dL/dh_40||/||dL/dh_1|| = 1.8e-12" in findings[2].message
