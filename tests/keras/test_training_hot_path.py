"""What fit does once instead of per batch, and per batch with one read-back, still behaves as before:
labels checked over all targets, metrics with their own update_state, the callback hooks,
steps_per_execution, the progress bar, and clipping from numbers already read back."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch

from rnnkit.keras import callbacks, layers, metrics
from rnnkit.keras.models import Sequential
from rnnkit.keras.training import clipping


def task(n=40, seed=0):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, 5, 2)).astype(np.float32)
    return x, (x.sum((1, 2)) > 0).astype(np.int64)


def classifier(**compile_kwargs):
    torch.manual_seed(0)
    model = Sequential([layers.Input(shape=(5, 2)), layers.LSTM(4), layers.Dense(2, activation="softmax")])
    model.compile("sgd", compile_kwargs.pop("loss", "sparse_categorical_crossentropy"), **compile_kwargs)
    return model


def test_labels_are_checked_over_all_targets_before_the_first_step():
    x, y = task()
    y[-1] = 7  # only the last batch holds a bad label
    model = classifier()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"labels in \[0, 2\) for a model with 2 outputs, got labels in \[0, 7\]"):
        model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match=r"got labels in \[0, 7\]"):
        model.evaluate(x, y, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"got labels in \[0, 7\]"):
        model.train_on_batch(x[-8:], y[-8:])


def test_binary_labels_are_checked_over_all_targets():
    x, y = task()
    y = y.astype(np.float32)
    y[-1] = 2.0
    torch.manual_seed(0)
    model = Sequential([layers.Input(shape=(5, 2)), layers.LSTM(4), layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    with pytest.raises(ValueError, match=r"labels \(y_true\) in \[0, 1\], got labels in \[0, 2\]"):
        model.fit(x, y, batch_size=8, verbose=0)


class Counting(metrics.Metric):
    """A metric with its own update_state: called with the batch, after the step."""

    def __init__(self):
        super().__init__("seen")
        self.seen = 0.0

    def update_state(self, y_true, y_pred, mask=None):
        self.seen += len(y_true)

    def result(self):
        return self.seen

    def reset_state(self):
        self.seen = 0.0


def test_running_means_match_a_hand_count_and_own_update_state_metrics_still_run():
    x, y = task()
    model = classifier(metrics=["accuracy", Counting()])
    seen = []
    probe = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(dict(logs)))
    model.fit(x, y, batch_size=16, shuffle=False, verbose=0, callbacks=[probe])
    assert [s["seen"] for s in seen] == [16, 32, 40]
    # evaluate's running loss and accuracy against a plain recount over the same batches
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    with torch.no_grad():
        p = model(torch.from_numpy(x))
    expected_acc = float((p.argmax(-1) == torch.from_numpy(y)).double().mean())
    expected_loss = float(-torch.log(p.gather(1, torch.from_numpy(y)[:, None]).clamp(1e-7, 1 - 1e-7)).mean())
    assert logs["accuracy"] == pytest.approx(expected_acc, rel=1e-12)
    assert logs["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert logs["seen"] == 40


def test_hooks_left_as_no_ops_are_skipped_and_instance_hooks_run():
    calls = []

    class Ends(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(("end", batch))

    begins = callbacks.LambdaCallback(on_train_batch_begin=lambda b, logs: calls.append(("begin", b)))
    cbs = callbacks.CallbackList([Ends(), begins], model=None, params={})
    assert cbs.has("on_train_batch_begin") and cbs.has("on_train_batch_end") and not cbs.has("on_test_batch_end")
    x, y = task(16)
    classifier().fit(x, y, batch_size=8, verbose=0, callbacks=[Ends(), begins])
    assert calls == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1)]


def test_steps_per_execution_calls_the_batch_hooks_once_per_group():
    x, y = task(56)  # 7 batches of 8: groups end at batches 2, 5 and 6
    model = classifier(steps_per_execution=3, global_clipnorm=1e-3)
    ends, begins = [], []
    rec = callbacks.LambdaCallback(on_train_batch_begin=lambda b, logs: begins.append(b),
                                   on_train_batch_end=lambda b, logs: ends.append((b, dict(logs))))
    history = model.fit(x, y, batch_size=8, shuffle=False, verbose=0, callbacks=[rec])
    assert begins == [0, 3, 6] and [b for b, _ in ends] == [2, 5, 6]
    assert all(logs["clipped"] for _, logs in ends)  # any step of the group clipped
    assert len(history.grad_norms[0]) == 3 and history.clip_events == [7]
    # the same steps as with a hook call per batch
    reference = classifier(global_clipnorm=1e-3)
    reference.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(reference.parameters(), model.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("every", [1, 3])
def test_the_throttled_progress_bar_still_ends_at_every_step(every):
    x, y = task(80)
    out = Terminal()
    classifier(metrics=["accuracy"], steps_per_execution=every).fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callbacks.ProgbarLogger(1, file=out)])
    text = out.getvalue()
    assert text.count("10/10") >= 2 and "accuracy" in text and "loss" in text


def test_clipping_from_numbers_read_back_equals_clipping_from_tensors():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 3, generator=g) * 3, torch.randn(5, generator=g)]
    norms = clipping.norms(grads)
    for rule in ({"clipnorm": 2.0}, {"global_clipnorm": 2.0}, {"clipvalue": 1.5}):
        a, b = [t.clone() for t in grads], [t.clone() for t in grads]
        fired_a = clipping.clip_(a, norms, **rule)
        fired_b = clipping.clip_(b, norms.tolist(), total=clipping.global_norm(norms),
                                 largest=clipping.max_abs(grads).tolist(), **rule)
        assert fired_a and fired_b
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    expected = [torch.linalg.vector_norm(t.double()) for t in grads]
    torch.testing.assert_close(norms, torch.stack(expected))
    assert clipping.global_norm(norms) == pytest.approx(math.sqrt(sum(float(n) ** 2 for n in expected)))


def test_float32_norms_for_the_guard_agree_with_float64_and_tell_overflow_from_inf():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(64, 32, generator=g), torch.randn(7, generator=g) * 1e-3]
    exact = clipping.norms(grads)
    assert exact.dtype == torch.float64
    fast = [float(n) for n in clipping.norm_list(grads, exact=False)]
    assert fast == pytest.approx(exact.tolist(), rel=1e-6)
    assert clipping.finite_norms(grads, fast) is fast
    huge = [torch.full((10,), 1e20), grads[1]]  # finite, but the sum of squares is past float32
    fast = [float(n) for n in clipping.norm_list(huge, exact=False)]
    assert math.isinf(fast[0])
    assert clipping.finite_norms(huge, fast) == pytest.approx([huge[0][0].item() * math.sqrt(10), exact[1].item()], rel=1e-12)
    bad = [torch.tensor([1.0, math.inf]), torch.tensor([math.nan])]
    assert all(not math.isfinite(v) for v in clipping.finite_norms(bad, [math.inf, math.nan]))
    half = [t.to(torch.bfloat16) for t in grads]
    assert [n.dtype for n in clipping.norm_list(half, exact=False)] == [torch.float32] * 2


def test_a_large_but_finite_gradient_is_not_skipped():
    x, y = task(8)
    model = classifier()
    model.build((None, 5, 2))
    weight = next(p for n, p in model.named_parameters() if p.dim() == 2 and "cell" not in n)
    weight.register_hook(lambda grad: torch.full_like(grad, 1e20))  # ||g|| ~ 4e20: inf in float32
    logs = []
    probe = callbacks.LambdaCallback(on_train_batch_end=lambda b, l: logs.append(dict(l)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "non-finite gradient" warning
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[probe])
    assert logs[0]["skipped_steps"] == 0 and logs[0]["grad_norm"] == pytest.approx(1e20 * math.sqrt(8), rel=1e-6)


def test_history_alone_gets_each_grad_norm_without_the_full_logs():
    x, y = task(40)
    history = classifier().fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    logs = []
    probe = callbacks.LambdaCallback(on_train_batch_end=lambda b, l: logs.append(dict(l)))
    with_probe = classifier().fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[probe])
    assert history.grad_norms == with_probe.grad_norms and [len(g) for g in history.grad_norms] == [3, 3]
    assert history.grad_norms[1] == [l["grad_norm"] for l in logs[3:]]


def test_data_is_checked_for_nan_and_inf_but_huge_finite_values_pass():
    x, y = task(16)
    huge = np.full_like(x, 3e38)  # finite, but their float32 sum overflows to inf
    model = classifier()
    model.evaluate(huge, y, batch_size=8, verbose=0)
    for bad in (np.nan, np.inf, -np.inf):
        x_bad = x.copy()
        x_bad[5, 2, 1] = bad
        with pytest.raises(ValueError, match=r"`x` contains NaN or inf values \(1 of them, first in sample 5\)"):
            model.evaluate(x_bad, y, batch_size=8, verbose=0)
    x_bad = huge.copy()
    x_bad[3, 0, 0] = -3e38  # inf + (-inf) in the sum: NaN, then the exact check finds nothing
    model.evaluate(x_bad, y, batch_size=8, verbose=0)


def test_evaluate_and_predict_in_order_equal_a_loop_over_slices():
    x, y = task(37)  # a last, shorter batch
    model = classifier(metrics=["accuracy"])
    loss, acc = model.evaluate(x, y, batch_size=8, verbose=0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    with torch.no_grad():
        out = torch.cat([model(xt[s:s + 8]) for s in range(0, 37, 8)])
    np.testing.assert_array_equal(model.predict(x, batch_size=8, verbose=0), out.numpy())
    picked = out.gather(1, yt[:, None]).squeeze(1) / out.sum(1)
    assert loss == pytest.approx(float(-picked.clamp(1e-7, 1 - 1e-7).log().mean()), rel=1e-6)
    assert acc == pytest.approx(float((out.argmax(1) == yt).float().mean()))
