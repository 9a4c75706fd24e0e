"""sample_weight, class_weight and weighted_metrics, against formulas written out with NumPy.

Keras 3's reduction ("sum over batch size"), with W = sample_weight x mask:
    loss   = sum(W * l) / count      count = values, or unmasked values under a mask
    metric = sum(W * v) / sum(W)     (weighted_metrics)
"""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import rnnkit.keras as keras
from rnnkit.keras import layers
from rnnkit.keras.models import Model, Sequential

N, T, F, C = 20, 5, 3, 3
EPS = 1e-7


def data(seed: int = 0, sequence: bool = False):
    g = np.random.default_rng(seed)
    x = g.normal(size=(N, T, F))
    y = g.integers(0, C, size=(N, T) if sequence else (N,))
    return x, y


def classifier(sequence: bool = False, units: int = C, activation: str = "softmax", mask: bool = False,
               loss: str = "sparse_categorical_crossentropy", **compile_kwargs):
    torch.manual_seed(0)
    model = Sequential([layers.Input((T, F)), *([layers.Masking(0.0)] if mask else []),
                        layers.GRU(4, return_sequences=sequence, dtype="float64"),
                        layers.Dense(units, activation=activation, dtype="float64")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, **compile_kwargs)
    return model


def sparse_ce(p, y):
    """Per-value crossentropy by hand: -log p[label], p clipped as Keras clips it."""
    return -np.log(np.clip(np.take_along_axis(p, y[..., None], -1)[..., 0], EPS, 1 - EPS))


@pytest.mark.parametrize("batch_size", [N, 8])
def test_weighted_loss_is_the_weighted_sum_over_the_batch_size(batch_size):
    x, y = data()
    w = np.random.default_rng(1).uniform(0, 2, size=N)
    model = classifier()
    l = sparse_ce(model.predict(x, verbose=0), y)
    got = model.evaluate(x, y, sample_weight=w, batch_size=batch_size, verbose=0)
    # Batches are averaged by their sizes, so any batch size gives sum(w l) / N.
    np.testing.assert_allclose(got, (w * l).sum() / N, rtol=1e-12)
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=w[:, None], verbose=0), got, rtol=1e-12)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), l.mean(), rtol=1e-12)


def test_per_step_weights_weight_each_time_step():
    x, y = data(sequence=True)
    w = np.random.default_rng(1).uniform(0, 2, size=(N, T))
    w[:, 1] = 0.0
    model = classifier(sequence=True)
    l = sparse_ce(model.predict(x, verbose=0), y)
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=w, batch_size=N, verbose=0),
                               (w * l).sum() / (N * T), rtol=1e-12)
    # (N,) weights weight every step of their sample.
    wn = w[:, 0]
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=wn, batch_size=N, verbose=0),
                               (wn[:, None] * l).sum() / (N * T), rtol=1e-12)


def test_a_step_with_weight_zero_leaves_the_loss_and_the_training():
    x, y = data(sequence=True)
    w = np.ones((N, T))
    w[::2, 2:] = 0.0
    y2 = y.copy()
    y2[w == 0] = (y[w == 0] + 1) % C  # other labels where the weight is 0
    runs = []
    for labels in (y, y2):
        model = classifier(sequence=True)
        hist = model.fit(x, labels, sample_weight=w, batch_size=8, epochs=2, shuffle=False, verbose=0)
        runs.append((model.get_weights(), hist.history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize("case", ["sparse", "one-hot", "binary", "sequence"])
def test_class_weight_equals_the_matching_sample_weight(case):
    x, y = data(sequence=case == "sequence")
    cw = {0: 0.5, 1: 2.0}  # class 2 is not listed: weight 1, as in Keras
    table = np.array([0.5, 2.0, 1.0])
    kwargs = {}
    if case == "one-hot":
        kwargs = dict(loss="categorical_crossentropy")
        labels = np.eye(C)[y]
    elif case == "binary":
        kwargs = dict(units=1, activation="sigmoid", loss="binary_crossentropy")
        y = y % 2
        labels = y[:, None].astype(np.float64)
    else:
        labels = y
    runs = []
    for weights in (dict(class_weight=cw), dict(sample_weight=table[y])):
        model = classifier(sequence=case == "sequence", **kwargs)
        hist = model.fit(x, labels, batch_size=8, epochs=2, verbose=0, **weights)  # shuffled the same way
        runs.append((model.get_weights(), hist.history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-12)


def masked_data():
    x, y = data(sequence=True)
    lengths = np.array([T, 2, 3, 4, 1] * (N // 5))
    steps = np.arange(T)[None, :] < lengths[:, None]
    x = x * steps[:, :, None]  # padded steps are all zeros: Masking(0.0) masks them
    return x, y, steps


def test_masked_steps_stay_out_of_the_loss_and_the_weighted_metrics():
    x, y, m = masked_data()
    w = np.random.default_rng(2).uniform(0.5, 2, size=N)
    model = classifier(sequence=True, mask=True, metrics=["accuracy"], weighted_metrics=["accuracy", "ce"])
    p = model.predict(x, verbose=0)
    l = sparse_ce(p, y)
    acc = (p.argmax(-1) == y).astype(np.float64)
    W = w[:, None] * m
    got = model.evaluate(x, y, sample_weight=w, batch_size=N, verbose=0, return_dict=True)
    np.testing.assert_allclose(got["loss"], (W * l).sum() / m.sum(), rtol=1e-12)  # Keras: sum(w m l) / sum(m)
    np.testing.assert_allclose(got["accuracy"], (m * acc).sum() / m.sum(), rtol=1e-12)
    np.testing.assert_allclose(got["weighted_accuracy"], (W * acc).sum() / W.sum(), rtol=1e-12)
    np.testing.assert_allclose(got["ce"], (W * l).sum() / W.sum(), rtol=1e-12)
    assert set(got) == {"loss", "accuracy", "weighted_accuracy", "ce"}
    # Metrics accumulate over batches: the same with batches of 8.
    got8 = model.evaluate(x, y, sample_weight=w, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(got8["weighted_accuracy"], got["weighted_accuracy"], rtol=1e-12)
    # Padded steps do not train either: other labels there give the same weights.
    y2 = np.where(m, y, (y + 1) % C)
    runs = []
    for labels in (y, y2):
        model = classifier(sequence=True, mask=True)
        model.fit(x, labels, sample_weight=w, batch_size=8, epochs=1, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_weighted_metric_names_follow_keras():
    x, y = data()
    model = classifier(metrics=["accuracy"], weighted_metrics=["accuracy", "sparse_categorical_crossentropy"])
    assert model.metrics_names == ["loss", "accuracy", "weighted_accuracy", "sparse_categorical_crossentropy"]
    hist = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, np.ones(N)))
    assert set(hist.history) >= {"loss", "accuracy", "weighted_accuracy", "sparse_categorical_crossentropy",
                                 "val_weighted_accuracy"}
    assert len(model.evaluate(x, y, verbose=0)) == 4
    # Without weights a weighted metric equals the plain one.
    got = model.evaluate(x, y, verbose=0, return_dict=True)
    assert got["accuracy"] == got["weighted_accuracy"]


def test_validation_sample_weight_and_weights_from_a_dataset():
    x, y = data()
    xv, yv = data(1)
    w = np.random.default_rng(3).uniform(0, 2, size=N)
    model = classifier()
    hist = model.fit(x, y, epochs=1, batch_size=8, verbose=0, validation_data=(xv, yv, w))
    np.testing.assert_allclose(hist.history["val_loss"][-1], model.evaluate(xv, yv, sample_weight=w, verbose=0),
                               rtol=1e-12)
    # (x, y, sample_weight) items train like sample_weight arrays.
    ref = classifier()
    ref.fit(x, y, sample_weight=w, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model = classifier()
    model.fit(DataLoader(TensorDataset(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(w)), batch_size=8),
              epochs=2, verbose=0)
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_train_on_batch_takes_weights():
    x, y = data()
    w = np.random.default_rng(3).uniform(0, 2, size=N)
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    losses = []
    for kwargs in (dict(sample_weight=np.array([cw[int(c)] for c in y])), dict(class_weight=cw)):
        model = classifier()
        losses.append(model.train_on_batch(x, y, **kwargs))
    assert losses[0] == losses[1]
    model = classifier()
    l = sparse_ce(model.predict(x, verbose=0), y)
    np.testing.assert_allclose(model.test_on_batch(x, y, sample_weight=w), (w * l).sum() / N, rtol=1e-12)


class TwoOutputs(Model):
    def __init__(self):
        super().__init__()
        self.rnn = layers.GRU(4, dtype="float64")
        self.a, self.b = layers.Dense(C, activation="softmax", dtype="float64"), layers.Dense(1, dtype="float64")

    def call(self, x):
        h = self.rnn(x)
        return self.a(h), self.b(h)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sample_weight=np.ones(N - 1)), ValueError,
     r"Argument `sample_weight` must have one weight per sample, shape \(20,\) or \(20, T\); got shape \(19,\)"),
    (dict(sample_weight=np.ones((N, T))), ValueError,
     r"Argument `sample_weight` must have shape \(B,\) for this model, whose loss has one value per sample "
     r"\(y_pred has shape \(2, 3\)\); got shape \(20, 5\)"),
    (dict(sample_weight=np.ones((N, T, 1, 1))), ValueError,
     r"Argument `sample_weight` must have shape \(B,\) or, for sequence outputs, \(B, T\); got shape \(20, 5, 1, 1\)"),
    (dict(sample_weight=-np.ones(N)), ValueError, r"Argument `sample_weight` must hold finite weights >= 0, got -1.0 "
                                                  r"\(20 such values\)"),
    (dict(sample_weight=np.r_[np.nan, np.ones(N - 1)]), ValueError,
     r"Argument `sample_weight` contains NaN or inf values \(1 of them, first in sample 0\)"),
    (dict(class_weight={0: 1.0, 3: 2.0}), ValueError,
     r"Argument `class_weight` has key 3, which is not a class: the model has 3 classes, so keys must be in \[0, 3\)"),
    (dict(class_weight={"a": 1.0}), ValueError, r"Argument `class_weight` must have integer class indices as keys, got key 'a'"),
    (dict(class_weight={0: -1.0}), ValueError, r"Argument `class_weight` must map classes to finite weights >= 0, got \{0: -1.0\}"),
    (dict(class_weight=[1.0, 2.0]), TypeError, r"Argument `class_weight` must be a dict \{class index: weight\}, got list"),
    (dict(class_weight={0: 1.0}, sample_weight=np.ones(N)), ValueError,
     r"Arguments `class_weight` and `sample_weight` cannot be used together"),
    (dict(validation_data=(np.zeros((4, T, F)), np.zeros(4, dtype=int), np.ones(3))), ValueError,
     r"Argument `validation_data\[2\]` must have one weight per sample, shape \(4,\) or \(4, T\); got shape \(3,\)"),
])
def test_bad_weights_are_refused_before_any_training(kwargs, error, match):
    x, y = data()
    model = classifier()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(x, y, epochs=1, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_per_step_weights_of_the_wrong_length_for_a_sequence_output():
    x, y = data(sequence=True)
    with pytest.raises(ValueError, match=r"`sample_weight` must have shape \(B,\) or \(B, T\) with T = 5 for this model, "
                                         r"whose loss has one value per sample and time step"):
        classifier(sequence=True).fit(x, y, sample_weight=np.ones((N, T + 1)), verbose=0)


def test_class_weight_needs_a_single_output_and_streamed_weights_are_checked():
    x, y = data()
    torch.manual_seed(0)
    model = TwoOutputs()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"`class_weight` is only supported for models with a single output"):
        model.fit(x, y, class_weight={0: 1.0}, verbose=0)

    def stream():
        for i in range(0, N, 8):
            w = np.ones(len(x[i:i + 8]))
            if i == 8:
                w[3] = -2.0
            yield x[i:i + 8], y[i:i + 8], w

    with pytest.raises(ValueError, match=r"`class_weight` cannot be used with data that yields \(x, y, sample_weight\)"):
        classifier().fit(stream(), class_weight={0: 2.0}, steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match=r"Argument `x` \(generator\): batch 1 sample_weight must hold finite weights "
                                         r">= 0, got -2.0"):
        classifier().fit(stream(), epochs=1, verbose=0)


def test_per_step_weights_follow_their_tbptt_window():
    x, y = data(sequence=True)
    w = np.random.default_rng(4).uniform(0.5, 2, size=(N, T))
    w[:, 3] = 0.0
    y2 = y.copy()
    y2[:, 3] = (y[:, 3] + 1) % C
    runs = []
    for labels in (y, y2):
        model = classifier(sequence=True)
        model.fit(x, labels, sample_weight=w, batch_size=8, epochs=1, shuffle=False, verbose=0, tbptt=2)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    # One window of all T steps is plain training.
    ref, one = classifier(sequence=True), classifier(sequence=True)
    ref.fit(x, y, sample_weight=w, batch_size=8, epochs=1, shuffle=False, verbose=0)
    one.fit(x, y, sample_weight=w, batch_size=8, epochs=1, shuffle=False, verbose=0, tbptt=T)
    for a, b in zip(ref.get_weights(), one.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_a_checkpoint_knows_its_sample_weights(tmp_path):
    x, y = data()
    w = np.random.default_rng(5).uniform(0.5, 2, size=N)
    classifier().fit(x, y, sample_weight=w, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    classifier().fit(x, y, sample_weight=w, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match=r"the training data \(x, y\) differ from the run that wrote it"):
        classifier().fit(x, y, sample_weight=2 * w, epochs=3, verbose=0, checkpoint_dir=tmp_path, resume=True)


def test_validation_split_takes_the_last_samples_weights_with_them():
    x, y = data()
    w = np.random.default_rng(6).uniform(0.5, 2, size=N)
    model = classifier()
    hist = model.fit(x, y, sample_weight=w, validation_split=0.25, epochs=1, verbose=0)
    np.testing.assert_allclose(hist.history["val_loss"][-1],
                               model.evaluate(x[15:], y[15:], sample_weight=w[15:], verbose=0), rtol=1e-12)
