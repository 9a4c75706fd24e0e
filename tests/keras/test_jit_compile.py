"""compile(jit_compile=True): the same weights, logs and outputs as eager steps; one warning
and an eager run wherever the steps cannot be compiled.

The graphs compile with the "aot_eager" backend: Dynamo captures the forward, loss and metrics
in one graph (fullgraph) and AOTAutograd traces its backward through the engine's operators,
which is what rnnkit decides; Inductor's code generation adds minutes and nothing about rnnkit
(tests/nn/test_compile.py runs it once; benchmarks/fit_overhead.py times it).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import rnnkit.keras.optimizers
from rnnkit.keras import callbacks, layers
from rnnkit.keras.models import Sequential
from rnnkit.keras.training import jit

DTYPE = torch.float64


@pytest.fixture()
def graphs(monkeypatch):
    """The graphs torch.compile captured (aot_eager underneath)."""
    captured = []
    aot_eager = torch._dynamo.lookup_backend("aot_eager")

    def backend(gm, example_inputs):
        captured.append(gm)
        return aot_eager(gm, example_inputs)

    monkeypatch.setattr(jit.JitSteps, "backend", staticmethod(backend))
    torch._dynamo.reset()
    yield captured
    torch._dynamo.reset()


def seq2seq(extra=()):
    torch.manual_seed(0)
    model = Sequential([layers.Input(shape=(5, 3)), layers.LSTM(6), layers.RepeatVector(2),
                        *extra, layers.GRU(6, return_sequences=True), layers.Dense(4, activation="softmax")])
    return model.to(DTYPE)


def data(n=24):
    g = np.random.default_rng(0)
    return g.standard_normal((n, 5, 3)), g.integers(0, 4, (n, 2))


def fit_run(model, jit_compile, **fit_kwargs):
    x, y = data()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], clipnorm=0.5,
                  jit_compile=jit_compile)
    rec = callbacks.LambdaCallback()
    logs = []
    rec.on_train_batch_end = lambda batch, l: logs.append(dict(l))
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[rec], **fit_kwargs)
    return history, logs, model.evaluate(x, y, batch_size=8, verbose=0), model.predict(x, batch_size=8, verbose=0)


def test_jit_compile_gives_the_weights_logs_and_outputs_of_eager_steps(graphs):
    eager, compiled = seq2seq(), seq2seq()
    h_eager, logs_eager, ev_eager, pred_eager = fit_run(eager, False)
    assert not graphs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning, no graph-break warning
        h_jit, logs_jit, ev_jit, pred_jit = fit_run(compiled, True)
    # One graph for training, one for evaluate, one for predict; the loops are operators inside.
    assert len(graphs) == 3
    targets = {str(n.target) for gm in graphs for n in gm.graph.nodes if n.op == "call_function"}
    assert any("rnnkit.compiled_forward" in t for t in targets), targets
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=name)
    for a, b in zip(logs_eager, logs_jit):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-10) for k in a)
    assert h_jit.history.keys() == h_eager.history.keys()
    for key, values in h_eager.history.items():  # pytest.approx takes no dict of lists (pytest >= 9.2)
        assert h_jit.history[key] == pytest.approx(values, rel=1e-10), key
    assert ev_jit == pytest.approx(ev_eager, rel=1e-10)
    np.testing.assert_allclose(pred_jit, pred_eager, rtol=1e-10)


def test_jit_compile_auto_is_eager_and_bad_values_are_named():
    model = seq2seq()
    model.compile("adam", "mse", jit_compile="auto")
    assert model._trainer.jit is None
    with pytest.raises(ValueError, match=r"`jit_compile`, expected True, False or 'auto', got 'yes'"):
        model.compile("adam", "mse", jit_compile="yes")
    with pytest.raises(ValueError, match=r"`steps_per_execution`, expected a positive integer, got 0"):
        model.compile("adam", "mse", steps_per_execution=0)


def _reads_a_value_back(t):
    return t * 2.0 if float(t.sum()) > -1e30 else t  # Python control flow on a tensor's value


def stateful():
    torch.manual_seed(0)
    return Sequential([layers.Input(shape=(5, 3), batch_size=8), layers.LSTM(6, stateful=True), layers.RepeatVector(2),
                       layers.GRU(6, return_sequences=True), layers.Dense(4, activation="softmax")]).to(DTYPE)


# case -> (a model factory, what the warning says, fit's keywords)
CANNOT_COMPILE = {
    "lambda": (lambda: seq2seq([layers.Lambda(_reads_a_value_back, output_shape=(2, 6))]), "could not capture", {}),
    "tbptt": (seq2seq, "truncated BPTT", {"tbptt": 2}),
    "stateful": (stateful, "stateful layers", {}),
}


@pytest.mark.parametrize("case", list(CANNOT_COMPILE))
def test_what_cannot_compile_runs_eagerly_after_one_warning(graphs, case):
    make, expected, fit_kwargs = CANNOT_COMPILE[case]
    model, reference = make(), make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_run(model, True, **fit_kwargs)
    ours = [str(w.message) for w in caught if "jit_compile" in str(w.message)]
    assert len(ours) == 1 and expected in ours[0], ours
    fit_run(reference, False, **fit_kwargs)
    for a, b in zip(reference.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_a_bad_batch_raises_its_own_error_and_leaves_compilation_on(graphs):
    model = seq2seq()
    x, y = data()
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        model.fit(x, y[:, :1].repeat(3, 1), batch_size=8, epochs=1, verbose=0)  # labels of the wrong length
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model._trainer.jit.off is None


def test_save_and_load_keep_jit_compile_and_steps_per_execution(tmp_path):
    from rnnkit.keras.saving import load_model

    model = seq2seq()
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=True, steps_per_execution=4)
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded._trainer.jit is not None and loaded._trainer.steps_per_execution == 4
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(tmp_path / "plain.safetensors")
    plain = load_model(tmp_path / "plain.safetensors")
    assert plain._trainer.jit is None and plain._trainer.steps_per_execution == 1


def batches_of(x, y, size=8):
    """A generator over (x, y) batches: streamed data, whose labels are checked batch by batch."""
    def gen():
        while True:
            for s in range(0, len(x), size):
                yield x[s:s + size], y[s:s + size]
    return gen()


def test_streamed_batches_compile_and_still_check_their_labels(graphs):
    x, y = data()
    models = {}
    for jit_compile in (False, True):
        model = models[jit_compile] = seq2seq()
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # compiled: no fallback warning
            model.fit(batches_of(x, y), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(graphs) == 1 and models[True]._trainer.jit.off is None
    for a, b in zip(models[False].state_dict().values(), models[True].state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    bad = y.copy()
    bad[-1] = 9  # only the last streamed batch holds a bad label
    with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
        models[True].fit(batches_of(x, bad), steps_per_epoch=3, epochs=1, verbose=0)
    assert models[True]._trainer.jit.off is None


def test_the_compiled_step_returns_its_prediction_detached(graphs):
    """An output that required grad would get a zero tangent in the compiled backward, every step."""
    x, y = data()
    model = seq2seq()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loss, y_pred, *_ = model._trainer.jit.train(torch.from_numpy(x[:8]), torch.from_numpy(y[:8]))
    assert loss.requires_grad and not y_pred.requires_grad


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
def test_fit_updates_with_the_fused_optimizer(graphs, name, monkeypatch):
    """One kernel over all the tensors, not ~6 ops per tensor, eager and compiled; the same weights
    as torch's default (per-tensor) implementation of the same rule."""
    x, y = data()
    default, eager, compiled = seq2seq(), seq2seq(), seq2seq()
    for model, jit_compile in ((eager, False), (compiled, True)):
        model.compile(name, "sparse_categorical_crossentropy", jit_compile=jit_compile)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        assert model._trainer.optimizer.torch_optimizer.param_groups[0]["fused"] is True
    monkeypatch.setattr(rnnkit.keras.optimizers, "can_fuse", lambda *args: False)
    default.compile(name, "sparse_categorical_crossentropy")
    default.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert not default._trainer.optimizer.torch_optimizer.param_groups[0]["fused"]
    for model in (eager, compiled):
        for (key, a), b in zip(default.state_dict().items(), model.state_dict().values()):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=key)


def test_a_torch_optimizer_is_left_as_given_and_rmsprop_has_no_fused_kernel(graphs):
    x, y = data()
    model = seq2seq()
    model.compile(torch.optim.Adam, "sparse_categorical_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not model._trainer.optimizer.torch_optimizer.param_groups[0]["fused"]
    model = seq2seq()
    model.compile("rmsprop", "sparse_categorical_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert "fused" not in model._trainer.optimizer.torch_optimizer.param_groups[0]


def test_each_model_keeps_its_own_graphs_under_the_recompile_limit(graphs, monkeypatch):
    """Dynamo counts graphs per code object: shared by all trainers, a third model would hit a
    limit of 4 here (train, then dynamic batch, and evaluate's no-grad graph per model)."""
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 4)
    x, y = data(20)  # batches of 8, 8 and 4
    y = y[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for units in (3, 4, 5):
            torch.manual_seed(0)
            model = Sequential([layers.Input(shape=(5, 3)), layers.LSTM(units), layers.Dense(4, activation="softmax")])
            model.to(DTYPE).compile("adam", "sparse_categorical_crossentropy", jit_compile=True)
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            model.evaluate(x, y, batch_size=8, verbose=0)
            assert model._trainer.jit.usable()
    assert 3 * 2 <= len(graphs) <= 3 * 3  # later models may start with a dynamic batch size
