"""compile/fit/evaluate/predict, callbacks, clipping logs, the NaN guard, tbptt, bad inputs."""

from __future__ import annotations

import copy
import csv
import math
import warnings

import numpy as np
import pytest
import torch

from rnnkit.keras import callbacks, layers, losses, metrics, optimizers
from rnnkit.keras.models import Model, Sequential
from rnnkit.keras.training import clipping


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def sign_task(n: int = 256, T: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x (n, T, 1) Gaussian; y = 1 if the sequence sums to > 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, 1)).astype("float32")
    return x, (x.sum(axis=(1, 2)) > 0).astype("float32")


def small_model(**compile_kwargs) -> Sequential:
    model = Sequential([layers.LSTM(8), layers.Dense(1, activation="sigmoid")])
    model.compile(**{"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"], **compile_kwargs})
    return model


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches, self.epochs, self.hooks = [], [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))

    def on_train_begin(self, logs=None):
        self.hooks.append("train_begin")

    def on_train_end(self, logs=None):
        self.hooks.append("train_end")


# -- learning ------------------------------------------------------------------------------

def test_fit_learns_the_sign_of_a_sum():
    x, y = sign_task(512, T=5)
    x_test, y_test = sign_task(256, T=5, seed=1)
    model = Sequential([layers.LSTM(16), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)[0]
    history = model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 3 and loss < before / 3
    assert acc >= 0.95


def test_evaluate_predict_shapes_and_history_keys():
    x, y = sign_task(40)
    model = small_model()
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0, 1] and all(len(v) == 2 for v in history.history.values())
    assert history.clip_events == [0, 0] and history.skipped_steps == [0, 0]
    assert [len(g) for g in history.grad_norms] == [2, 2]  # 30 training samples in batches of 16
    assert model.history is history
    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2 and model.metrics_names == ["loss", "accuracy"]
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    pred = model.predict(x, batch_size=7, verbose=0)
    assert isinstance(pred, np.ndarray) and pred.shape == (40, 1) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, model.predict(torch.from_numpy(x), batch_size=40, verbose=0), rtol=1e-6, atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    assert isinstance(model.evaluate(x, y, verbose=0), float)


def test_train_and_test_on_batch():
    x, y = sign_task(16)
    model = small_model()
    loss, acc = model.train_on_batch(x, y)
    assert math.isfinite(loss) and 0 <= acc <= 1
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"loss", "accuracy", "grad_norm", "clipped", "skipped_steps"} <= set(logs)
    assert len(model.test_on_batch(x, y)) == 2


def test_predict_is_eval_mode_and_keeps_train_mode():
    x, _ = sign_task(8)
    model = Sequential([layers.LSTM(4), layers.Dropout(0.5), layers.Dense(1)])
    model.build((None, 6, 1))
    model.train()
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)
    assert model.training


def test_subclassed_model_with_two_inputs():
    class TwoInputs(Model):
        def __init__(self):
            super().__init__()
            self.rnn = layers.GRU(4)
            self.out = layers.Dense(1)

        def call(self, inputs):
            seq, extra = inputs
            return self.out(self.rnn(seq)) + extra

    x, y = sign_task(20)
    extra = np.zeros((20, 1), "float32")
    model = TwoInputs()
    model.compile(optimizer="adam", loss="mse")
    model.fit([x, extra], y, epochs=1, batch_size=8, verbose=0)
    assert model.predict([x, extra], verbose=0).shape == (20, 1)


def test_torch_style_subclass_may_own_layers_and_loss_attributes():
    class Torchy(Model):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)])
            self.loss = torch.nn.MSELoss()

        def call(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    model = Torchy()
    assert isinstance(model.layers, torch.nn.ModuleList) and isinstance(model.loss, torch.nn.MSELoss)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    assert isinstance(model.optimizer, optimizers.SGD)


def test_verbose_shows_a_progress_bar(capsys):
    x, y = sign_task(40)
    model = small_model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "loss" in err and "accuracy" in err
    model.fit(x, y, epochs=1, batch_size=16, verbose=2)
    assert "Epoch 1/1" in capsys.readouterr().out


def test_sequential_add_pop_build_and_summary_via_print_fn():
    model = Sequential([layers.Input(shape=(None, 3)), layers.GRU(4, return_sequences=True)])
    model.add(layers.Dense(2))
    assert [type(l).__name__ for l in model.layers] == ["GRU", "Dense"] and model.built
    assert model.count_params() == 3 * 4 * (3 + 4) + 2 * 3 * 4 + 4 * 2 + 2
    lines = []
    model.summary(print_fn=lines.append)
    assert any("(None, None, 2)" in l for l in lines) and lines[-3] == "Trainable params: 118"
    assert isinstance(model.pop(), layers.Dense) and len(model.layers) == 1
    assert model.predict(np.zeros((2, 5, 3), "float32"), verbose=0).shape == (2, 5, 4)
    assert sorted(model.state_dict())[0].startswith("0.")  # torch.nn.Sequential-style keys


def test_masks_flow_through_sequential():
    model = Sequential([layers.Embedding(20, 4, mask_zero=True), layers.LSTM(3, return_sequences=True),
                        layers.GRU(3), layers.Dense(1)])
    padded = np.array([[5, 3, 2, 0, 0], [7, 1, 4, 9, 6]])
    alone = model.predict(padded[:1, :3], verbose=0)
    np.testing.assert_allclose(model.predict(padded, verbose=0)[:1], alone, rtol=1e-5, atol=1e-6)


# -- losses, metrics, optimizers -----------------------------------------------------------

def test_losses_match_torch():
    torch.manual_seed(1)
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 2, 1, 1, 0])
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    probs = logits.softmax(-1)
    ref = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(losses.get("sparse_categorical_crossentropy")(labels, probs), ref)
    torch.testing.assert_close(losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits), ref)
    torch.testing.assert_close(losses.get("categorical_crossentropy")(onehot, probs), ref)
    torch.testing.assert_close(losses.CategoricalCrossentropy(from_logits=True)(onehot, logits), ref)
    z, t = torch.randn(6, 1), torch.tensor([0.0, 1, 1, 0, 1, 0])
    ref = torch.nn.functional.binary_cross_entropy_with_logits(z.squeeze(-1), t)
    torch.testing.assert_close(losses.get("binary_crossentropy")(t, z.sigmoid()), ref)
    torch.testing.assert_close(losses.BinaryCrossentropy(from_logits=True)(t, z), ref)
    torch.testing.assert_close(losses.get("mse")(t, z), ((z.squeeze(-1) - t) ** 2).mean())
    torch.testing.assert_close(losses.get("mae")(t, z), (z.squeeze(-1) - t).abs().mean())


def test_loss_with_mask_ignores_padding():
    y_pred = torch.tensor([[[1.0], [5.0]], [[2.0], [9.0]]])  # (B=2, T=2, 1)
    y_true = torch.zeros(2, 2, 1)
    mask = torch.tensor([[True, False], [True, False]])
    assert float(losses.get("mse")(y_true, y_pred, mask=mask)) == pytest.approx((1 + 4) / 2)


def test_logits_into_a_probability_loss_warn():
    with pytest.warns(UserWarning, match="from_logits=True"):
        losses.get("binary_crossentropy")(torch.ones(3, 1), torch.tensor([[2.0], [-1.0], [0.5]]))


def test_accuracy_resolves_like_keras():
    y_pred = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    sparse = metrics.get("accuracy", torch.tensor([1, 1]), y_pred)
    cat = metrics.get("accuracy", torch.tensor([[0.0, 1], [0, 1]]), y_pred)
    binary = metrics.get("accuracy", torch.tensor([1.0, 0.0]), torch.tensor([[0.7], [0.6]]))
    logits = metrics.get("acc", torch.tensor([1.0, 0.0]), torch.tensor([[0.7], [-0.6]]),
                         losses.BinaryCrossentropy(from_logits=True))
    for m, (yt, yp) in ((sparse, (torch.tensor([1, 1]), y_pred)), (cat, (torch.tensor([[0.0, 1], [0, 1]]), y_pred)),
                        (binary, (torch.tensor([1.0, 0.0]), torch.tensor([[0.7], [0.6]]))),
                        (logits, (torch.tensor([1.0, 0.0]), torch.tensor([[0.7], [-0.6]])))):
        m.update_state(yt, yp)
    assert (sparse.result(), cat.result(), binary.result(), logits.result()) == (0.5, 0.5, 0.5, 1.0)
    assert logits.name == "acc"


def test_optimizers_by_name_use_keras_defaults_and_torch_optimizers_work():
    assert [optimizers.get(n).learning_rate for n in ("adam", "sgd", "rmsprop", "adagrad", "adamw")] == \
        [0.001, 0.01, 0.001, 0.001, 0.001]
    x, y = sign_task(16)
    for opt in (torch.optim.SGD, lambda params: torch.optim.Adam(params, lr=0.01)):
        model = small_model(optimizer=opt)
        model.fit(x, y, epochs=1, verbose=0)
        assert isinstance(model.optimizer.torch_optimizer, torch.optim.Optimizer)
    built = Sequential([layers.Dense(1, input_shape=(3,))])
    built.compile(optimizer=torch.optim.SGD(built.parameters(), lr=0.1), loss="mse")
    built.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    other = Sequential([layers.Dense(1, input_shape=(3,))])
    other.compile(optimizer=torch.optim.SGD(built.parameters(), lr=0.1), loss="mse")
    with pytest.raises(ValueError, match="holds none of the model's parameters"):
        other.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)


# -- callbacks -----------------------------------------------------------------------------

def test_early_stopping_stops_and_restores_best_weights():
    x, y = sign_task(32)
    model = small_model()
    seen = []
    spy = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        {k: v.clone() for k, v in model.state_dict().items()}))
    stop = callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=20, verbose=0, callbacks=[stop, spy])
    assert len(history.epoch) == 3 and stop.stopped_epoch == 2 and model.stop_training
    for k, v in model.state_dict().items():  # back to the end of epoch 0, the best under min_delta=10
        torch.testing.assert_close(v, seen[0][k])


def test_model_checkpoint_and_csv_logger(tmp_path):
    x, y = sign_task(32)
    model = small_model()
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.safetensors"))
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.safetensors"), monitor="val_accuracy", save_best_only=True)
    log = callbacks.CSVLogger(str(tmp_path / "log.csv"))
    model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[ckpt, best, log])
    names = sorted(p.name for p in tmp_path.glob("ckpt-*.safetensors"))
    assert [n[:8] for n in names] == ["ckpt-01-", "ckpt-02-", "ckpt-03-"]
    assert (tmp_path / "best.safetensors").exists()
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "clip_events", "skipped_steps"} <= set(rows[0])
    assert float(rows[-1]["loss"]) == pytest.approx(model.history.history["loss"][-1])


def test_tensorboard_needs_the_package(tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install tensorboard"):
            callbacks.TensorBoard(str(tmp_path))
    else:
        x, y = sign_task(16)
        small_model().fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.TensorBoard(str(tmp_path))])
        assert any(tmp_path.rglob("events.*"))


def test_callback_hooks_run_in_order():
    x, y = sign_task(20)
    rec = Recorder()
    small_model().fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[rec])
    assert rec.hooks == ["train_begin", "train_end"] and len(rec.batches) == 4 and len(rec.epochs) == 2


# -- clipping and the NaN guard ------------------------------------------------------------

def manual_grad_norm(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    m = copy.deepcopy(model)
    m.zero_grad()
    loss = losses.get("binary_crossentropy")(torch.from_numpy(y), m(torch.from_numpy(x)))
    loss.backward()
    return float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in m.parameters())))


def test_clipnorm_fires_and_grad_norm_is_before_clipping():
    x, y = sign_task(16)
    model = small_model(optimizer="sgd", clipnorm=1e-4)
    model.build((None, 6, 1))
    expected = manual_grad_norm(model, x, y)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    rec = Recorder()
    history = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[rec])
    assert rec.batches[0]["clipped"] is True
    assert rec.batches[0]["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert history.clip_events == [1] and rec.epochs[0]["clip_events"] == 1
    for k, p in model.named_parameters():  # each tensor moved by at most lr * clipnorm
        assert float((p.detach() - before[k]).norm()) <= 0.01 * 1e-4 * 1.01  # float32 rounding of p


def test_no_clipping_when_the_threshold_is_large():
    x, y = sign_task(16)
    rec = Recorder()
    small_model(global_clipnorm=1e6).fit(x, y, epochs=1, verbose=0, callbacks=[rec])
    assert rec.batches[0]["clipped"] is False and rec.batches[0]["grad_norm"] > 0


def test_clipping_rules():
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([0.0, 12.0])]  # norms 5 and 12, global 13
    g = [t.clone() for t in grads]
    assert clipping.clip_(g, clipping.norms(g), clipnorm=6.0)
    torch.testing.assert_close(g, [torch.tensor([3.0, 4.0]), torch.tensor([0.0, 6.0])])
    g = [t.clone() for t in grads]
    assert clipping.clip_(g, clipping.norms(g), global_clipnorm=6.5)
    torch.testing.assert_close(g, [t / 2 for t in grads])
    g = [t.clone() for t in grads]
    assert clipping.clip_(g, clipping.norms(g), clipvalue=3.5)
    torch.testing.assert_close(g, [torch.tensor([3.0, 3.5]), torch.tensor([0.0, 3.5])])
    assert not clipping.clip_(g, clipping.norms(g), clipvalue=3.5)
    assert clipping.global_norm(clipping.norms(grads)) == pytest.approx(13.0)
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="either in compile"):
        small_model(optimizer=optimizers.SGD(clipnorm=1.0), clipvalue=2.0)


def poison(model: Sequential, bad_calls: set) -> list:
    """Make the Dense kernel's gradient inf on the given (0-based) backward calls."""
    calls = []
    weight = next(p for n, p in model.named_parameters() if p.dim() == 2 and "cell" not in n)

    def hook(grad):
        calls.append(len(calls))
        return torch.full_like(grad, math.inf) if (len(calls) - 1) in bad_calls else grad

    weight.register_hook(hook)
    return calls


def test_nan_guard_skips_a_bad_step_and_goes_on():
    x, y = sign_task(64)
    model = small_model(optimizer="sgd")
    model.build((None, 6, 1))
    poison(model, {1})
    rec = Recorder()
    with pytest.warns(RuntimeWarning, match=r"non-finite gradient \(norm=inf\) at epoch 1 step 2; step skipped"):
        history = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[rec])
    assert [b["skipped_steps"] for b in rec.batches] == [0, 1, 1, 1]
    assert math.isinf(rec.batches[1]["grad_norm"]) and not model.stop_training
    assert history.skipped_steps == [1] and all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_guard_stops_after_max_bad_steps():
    x, y = sign_task(64)
    model = small_model(optimizer="sgd")
    model.build((None, 6, 1))
    poison(model, set(range(100)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, max_bad_steps=3)
    messages = [str(w.message) for w in caught]
    assert sum("step skipped" in m for m in messages) == 3
    assert any("training stopped: 3 consecutive steps" in m for m in messages)
    assert model.stop_training and history.skipped_steps == [3]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_nan_loss_is_skipped():
    x, y = sign_task(16)
    calls = []

    def sometimes_nan(y_true, y_pred):
        calls.append(1)
        value = ((y_pred.squeeze(-1) - y_true) ** 2).mean()
        return value * math.nan if len(calls) == 1 else value

    model = Sequential([layers.LSTM(4), layers.Dense(1)])
    model.compile(optimizer="sgd", loss=sometimes_nan)
    with pytest.warns(RuntimeWarning, match=r"non-finite loss \(loss=nan\) at epoch 1 step 1; step skipped"):
        history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert history.skipped_steps == [1] and math.isfinite(history.history["loss"][0])


# -- truncated BPTT and stateful layers ----------------------------------------------------

def manual_tbptt(model: Sequential, x: torch.Tensor, y: torch.Tensor, k: int, lr: float, many_to_many: bool) -> None:
    """The reference: windows of k steps, state carried detached, one SGD step per window."""
    rnn = model.layers[0]
    rnn.carry_state = True
    rnn.reset_states()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    T = x.shape[1]
    for start in range(0, T, k):
        xw = x[:, start : start + k]
        last = start + k >= T
        if not many_to_many and not last:
            with torch.no_grad():
                model(xw)
            continue
        opt.zero_grad()
        out = model(xw)
        target = y[:, start : start + k] if many_to_many else y
        ((out - target) ** 2).mean().backward()
        opt.step()
    rnn.carry_state = False
    rnn.reset_states()


@pytest.mark.parametrize("many_to_many", [True, False])
def test_tbptt_matches_a_manual_window_loop(many_to_many):
    torch.manual_seed(3)
    x = torch.randn(4, 7, 2, dtype=torch.float64)
    y = torch.randn(4, 7, 1, dtype=torch.float64) if many_to_many else torch.randn(4, 1, dtype=torch.float64)
    model = Sequential([layers.LSTM(5, return_sequences=many_to_many, dtype="float64"), layers.Dense(1, dtype="float64")])
    model.build((None, None, 2))
    reference = copy.deepcopy(model)
    manual_tbptt(reference, x, y, k=3, lr=0.1, many_to_many=many_to_many)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    rec = Recorder()
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, tbptt=3, verbose=0, callbacks=[rec])
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12, msg=name)
    assert rec.batches[0]["grad_norm"] > 0
    rnn = model.layers[0]
    assert rnn.carry_state is False and rnn.states is None  # restored after fit


def test_tbptt_differs_from_full_bptt_and_needs_recurrent_layers():
    torch.manual_seed(4)
    x, y = torch.randn(4, 8, 2), torch.randn(4, 8, 1)
    a = Sequential([layers.LSTM(4, return_sequences=True), layers.Dense(1)])
    a.build((None, None, 2))
    b = copy.deepcopy(a)
    for m, k in ((a, 2), (b, None)):
        m.compile(optimizer="sgd", loss="mse")
        m.fit(x, y, batch_size=4, shuffle=False, tbptt=k, verbose=0)
    assert not torch.allclose(a.layers[0].cell.weight_hh, b.layers[0].cell.weight_hh)
    dense = Sequential([layers.Dense(1)])
    dense.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="recurrent layers that can carry their state"):
        dense.fit(x, y, tbptt=2, verbose=0)
    with pytest.raises(ValueError, match="`tbptt`"):
        a.fit(x, y, tbptt=0, verbose=0)


def test_stateful_layer_carries_state_across_batches():
    x, y = sign_task(16)
    model = Sequential([layers.LSTM(4, stateful=True), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    rnn = model.layers[0]
    seen = []
    spy = callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: seen.append(rnn.states))
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0, callbacks=[spy])
    assert seen[0] is None and all(s is not None and s[0].shape == (4, 4) for s in seen[1:])
    assert rnn.states is not None
    # Same for tbptt: stateful layers are not reset between batches.
    seen.clear()
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, tbptt=2, verbose=0, callbacks=[spy])
    assert all(s is not None for s in seen) and rnn.stateful and rnn.carry_state is False
    model.reset_states()
    assert rnn.states is None


# -- bad inputs ----------------------------------------------------------------------------

def compiled(loss: str = "binary_crossentropy") -> Sequential:
    model = Sequential([layers.Input(shape=(None, 1)), layers.LSTM(4),
                        layers.Dense(3, activation="softmax") if "sparse" in loss else layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss=loss)
    return model


@pytest.mark.parametrize("make_args, error, match", [
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), y), ValueError, "NaN or inf"),
    (lambda x, y: (x, np.where(np.arange(y.size) == 2, np.inf, y)), ValueError, r"`y` contains NaN or inf"),
    (lambda x, y: (x[:0], y[:0]), ValueError, "empty"),
    (lambda x, y: (x, y[:-1]), ValueError, "same number of samples; x has 8, y has 7"),
    (lambda x, y: (x[:, :, 0], y), ValueError, r"shape \(B, T, 1\) \(rank 3\)"),
    (lambda x, y: (x.tolist()[:3] + [[[1.0]]] + x.tolist()[4:], y), TypeError, "pad"),
    (lambda x, y: (x, None), ValueError, "`y` is required"),
    (lambda x, y: (x, np.stack([y, y], 1)), ValueError, r"same shape, got y_true \(8, 2\) and y_pred \(8, 1\)"),
])
def test_bad_fit_inputs_are_named(make_args, error, match):
    x, y = sign_task(8)
    with pytest.raises(error, match=match):
        compiled().fit(*make_args(x, y), verbose=0)


def test_sparse_labels_are_checked():
    x, _ = sign_task(8)
    model = compiled("sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"labels in \[0, 3\) for a model with 3 outputs, got labels in \[0, 5\]"):
        model.fit(x, np.array([0, 1, 2, 5, 0, 1, 2, 0]), verbose=0)
    with pytest.raises(ValueError, match="non-integer value 0.5"):
        model.fit(x, np.array([0, 1, 2, 0.5, 0, 1, 2, 0]), verbose=0)
    model.fit(x, np.array([0.0, 1, 2, 1, 0, 1, 2, 0]), verbose=0)  # integral floats are fine, as in Keras


@pytest.mark.parametrize("compile_kwargs, match", [
    ({"optimizer": "adamm", "loss": "mse"}, r"Unknown optimizer 'adamm'; expected one of \['sgd', 'adam'"),
    ({"optimizer": "adam", "loss": "mean_sqared_error"}, r"Unknown loss 'mean_sqared_error'; expected one of \["),
    ({"optimizer": "adam", "loss": "mse", "metrics": ["acuracy"]}, r"Unknown metric 'acuracy'; expected one of \["),
    ({"optimizer": "adam", "loss": None}, "`loss` is required"),
    ({"optimizer": "adam", "loss": "mse", "clipnorm": -1.0}, "`clipnorm`"),
])
def test_bad_compile_arguments(compile_kwargs, match):
    with pytest.raises(ValueError, match=match):
        Sequential([layers.Dense(1)]).compile(**compile_kwargs)


def test_fit_before_compile_and_bad_fit_arguments():
    x, y = sign_task(8)
    model = Sequential([layers.LSTM(2), layers.Dense(1)])
    with pytest.raises(ValueError, match=r"call compile\(optimizer=..., loss=...\) before fit"):
        model.fit(x, y)
    with pytest.raises(RuntimeError):  # Keras raises RuntimeError; ours is both
        model.evaluate(x, y)
    model.compile(optimizer="adam", loss="mse")
    for kwargs, match in (({"batch_size": 0}, "batch_size"), ({"epochs": -1}, "epochs"),
                          ({"validation_split": 1.5}, "validation_split"), ({"verbose": 3}, "verbose"),
                          ({"validation_data": (x,)}, "validation_data"), ({"max_bad_steps": 0}, "max_bad_steps")):
        with pytest.raises(ValueError, match=match):
            model.fit(x, y, **kwargs)
    with pytest.raises(TypeError, match="callbacks"):
        model.fit(x, y, callbacks=["early"], verbose=0)
