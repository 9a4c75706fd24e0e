"""fit/evaluate/predict on every kind of data: the same batches give the same training.

The reference is fit on arrays with shuffle=False: every other kind, fed the same
batches in the same order, must end with the same weights (float64, bit for bit up to
summation order), report the same losses and show the right progress totals.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import rnnkit.keras as keras
from rnnkit.keras import callbacks, layers
from rnnkit.keras.models import Model, Sequential

N, T, F, BS = 20, 5, 3, 8  # batches of 8, 8, 4


def data(seed: int = 0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(N, T, F))
    y = (x[:, :, 0].sum(1, keepdims=True) > 0).astype(np.float64)
    return x, y


def model_and_init():
    torch.manual_seed(0)
    model = Sequential([layers.Input((T, F)), layers.GRU(4, dtype="float64"),
                        layers.Dense(1, activation="sigmoid", dtype="float64")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def reference(epochs: int = 2):
    x, y = data()
    model = model_and_init()
    hist = model.fit(x, y, batch_size=BS, epochs=epochs, shuffle=False, verbose=0)
    return model, hist


def batches(x, y, sw=None):
    for i in range(0, len(x), BS):
        yield (x[i:i + BS], y[i:i + BS]) if sw is None else (x[i:i + BS], y[i:i + BS], sw[i:i + BS])


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.ends = 0

    def __len__(self):
        return -(-len(self.x) // BS)

    def __getitem__(self, i):
        return self.x[i * BS:(i + 1) * BS], self.y[i * BS:(i + 1) * BS]

    def on_epoch_end(self):
        self.ends += 1


class Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)

    def __iter__(self):
        return iter(zip(self.x, self.y))


def kinds(x, y):
    """Every kind of data, each giving the arrays' batches in order for two epochs."""
    tx, ty = torch.as_tensor(x), torch.as_tensor(y)
    return {
        "torch tensors": dict(x=tx, y=ty, batch_size=BS, shuffle=False),
        "generator": dict(x=(b for _ in range(2) for b in batches(x, y)), steps_per_epoch=3),
        "endless generator": dict(x=(b for _ in iter(int, 1) for b in batches(x, y)), steps_per_epoch=3),
        "PyDataset": dict(x=Batches(x, y), shuffle=False),
        "torch Dataset": dict(x=TensorDataset(tx, ty), batch_size=BS),
        "torch IterableDataset": dict(x=Stream(x, y), batch_size=BS),
        "DataLoader": dict(x=DataLoader(TensorDataset(tx, ty), batch_size=BS)),
        "DataLoader of numpy": dict(x=DataLoader(list(zip(x, y)), batch_size=BS)),
    }


@pytest.mark.parametrize("kind", list(kinds(*data())))
def test_every_kind_trains_like_the_same_arrays(kind):
    ref, ref_hist = reference()
    x, y = data()
    model = model_and_init()
    hist = model.fit(epochs=2, verbose=0, **kinds(x, y)[kind])
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hist.history["loss"], ref_hist.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(hist.history["accuracy"], ref_hist.history["accuracy"], rtol=1e-12)


def test_shuffle_is_ignored_for_loaders_and_generators():
    ref, _ = reference()
    x, y = data()
    model = model_and_init()
    model.fit(DataLoader(TensorDataset(torch.as_tensor(x), torch.as_tensor(y)), batch_size=BS), epochs=2,
              shuffle=True, verbose=0)
    for a, b in zip(ref.get_weights(), model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_pydataset_shuffles_its_batch_order_like_keras_and_gets_epoch_hooks():
    x, y = data()
    seen = []

    class Logged(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    ds = Logged(x, y)
    model = model_and_init()
    torch.manual_seed(3)
    model.fit(ds, epochs=4, verbose=0)  # shuffle=True: each epoch a permutation of the batches
    epochs = [seen[1 + 3 * e:1 + 3 * (e + 1)] for e in range(4)]  # seen[0] is the first batch read to build
    assert all(sorted(e) == [0, 1, 2] for e in epochs)
    assert any(e != [0, 1, 2] for e in epochs)
    assert ds.ends == 4
    assert keras.utils.Sequence is keras.utils.PyDataset


class StepsSeen(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.totals, self.counts = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.totals.append(self.params["steps"])
        self.counts.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.counts[-1] += 1


@pytest.mark.parametrize("kind, totals", [
    ("torch tensors", [3, 3]), ("PyDataset", [3, 3]), ("DataLoader", [3, 3]), ("torch Dataset", [3, 3]),
    ("generator", [3, 3]),  # steps_per_epoch
    ("torch IterableDataset", [None, 3]),  # unknown until one pass has been made: a running count
])
def test_progress_totals(kind, totals):
    x, y = data()
    seen = StepsSeen()
    model_and_init().fit(epochs=2, verbose=0, callbacks=[seen], **kinds(x, y)[kind])
    assert seen.totals == totals
    assert seen.counts == [3, 3]


def test_progress_bar_counts_without_a_total(capsys):
    x, y = data()
    seen = StepsSeen()
    model_and_init().fit(Stream(x, y), batch_size=BS, epochs=1, verbose=1, callbacks=[seen])
    assert seen.totals == [None] and seen.counts == [3]


def test_steps_per_epoch_continues_the_pass_across_epochs_like_keras():
    # 3 batches a pass, 2 per epoch: epoch 1 = batches 0, 1; epoch 2 = batch 2 (the pass ends: warned); 3 = 0, 1
    x, y = data()
    seen = StepsSeen()
    with pytest.warns(RuntimeWarning, match=r"ran out of data after 1 of the 2 batches of epoch 2 "
                                            r"\(`steps_per_epoch`=2\); interrupting the epoch"):
        model_and_init().fit(Batches(x, y), epochs=3, steps_per_epoch=2, shuffle=False, verbose=0, callbacks=[seen])
    assert seen.counts == [2, 1, 2]
    assert seen.totals == [2, 2, 2]


def test_a_generator_that_runs_out_warns_and_stops_training():
    x, y = data()
    seen = StepsSeen()
    model = model_and_init()
    with pytest.warns(RuntimeWarning, match=r"ran out of data after 1 of the 3 batches of epoch 2 "
                                            r"\(`steps_per_epoch`=3\); interrupting training"):
        hist = model.fit(batches(np.concatenate([x, x[:8]]), np.concatenate([y, y[:8]])), steps_per_epoch=3,
                         epochs=5, verbose=0, callbacks=[seen])
    assert seen.counts == [3, 1] and len(hist.history["loss"]) == 2


def test_a_generator_used_up_at_an_epoch_end_warns_before_the_next_epoch():
    x, y = data()
    seen = StepsSeen()
    with pytest.warns(RuntimeWarning, match=r"used up after epoch 1; interrupting training"):
        model_and_init().fit(batches(x, y), epochs=3, verbose=0, callbacks=[seen])
    assert seen.counts == [3]


def test_validation_data_of_every_kind_gives_the_arrays_val_loss():
    x, y = data()
    xv, yv = data(1)
    ref = model_and_init()
    ref_hist = ref.fit(x, y, batch_size=BS, shuffle=False, epochs=2, verbose=0, validation_data=(xv, yv))
    for val, steps in ((DataLoader(TensorDataset(torch.as_tensor(xv), torch.as_tensor(yv)), batch_size=BS), None),
                       (Batches(xv, yv), None),
                       ((b for _ in range(2) for b in batches(xv, yv)), 3)):
        model = model_and_init()
        hist = model.fit(x, y, batch_size=BS, shuffle=False, epochs=2, verbose=0, validation_data=val,
                         validation_steps=steps)
        np.testing.assert_allclose(hist.history["val_loss"], ref_hist.history["val_loss"], rtol=1e-12)
        np.testing.assert_allclose(hist.history["val_accuracy"], ref_hist.history["val_accuracy"], rtol=1e-12)


def test_evaluate_and_predict_take_every_kind():
    x, y = data()
    model, _ = reference(1)
    want_eval = model.evaluate(x, y, batch_size=BS, verbose=0)
    want_pred = model.predict(x, batch_size=BS, verbose=0)
    tx, ty = torch.as_tensor(x), torch.as_tensor(y)
    for source in (DataLoader(TensorDataset(tx, ty), batch_size=BS), Batches(x, y), TensorDataset(tx, ty)):
        np.testing.assert_allclose(model.evaluate(source, batch_size=BS, verbose=0), want_eval, rtol=1e-12)
        np.testing.assert_allclose(model.predict(source, batch_size=BS, verbose=0), want_pred, rtol=1e-12)
    np.testing.assert_allclose(model.evaluate(batches(x, y), verbose=0), want_eval, rtol=1e-12)
    np.testing.assert_allclose(model.predict((xb for xb, _ in batches(x, y)), verbose=0), want_pred, rtol=1e-12)
    np.testing.assert_allclose(model.predict(batches(x, y), steps=2, verbose=0), want_pred[:16], rtol=1e-12)


class TwoInputs(Model):
    """Takes a dict {"seq": (B, T, F), "extra": (B, 2)} or a list [seq, extra], checking it got that structure."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.rnn = layers.GRU(4, dtype="float64")
        self.out = layers.Dense(1, activation="sigmoid", dtype="float64")

    def call(self, inputs):
        assert isinstance(inputs, self.kind), type(inputs)
        seq, extra = (inputs["seq"], inputs["extra"]) if isinstance(inputs, dict) else inputs
        return self.out(torch.cat([self.rnn(seq), extra], -1))


@pytest.mark.parametrize("kind", [dict, list, tuple])
def test_several_inputs_reach_the_model_with_their_structure(kind):
    x, y = data()
    extra = np.random.default_rng(5).normal(size=(N, 2))

    def pack(a, b):
        return {"seq": a, "extra": b} if kind is dict else kind([a, b])

    def trained(**fit):
        torch.manual_seed(0)
        model = TwoInputs(kind)
        model(pack(torch.as_tensor(x[:2]), torch.as_tensor(extra[:2])))  # built before a DataLoader draws its seed
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
        model.fit(epochs=2, verbose=0, **fit)
        return model

    ref = trained(x=pack(x, extra), y=y, batch_size=BS, shuffle=False)

    class Pairs(Dataset):
        def __len__(self):
            return N

        def __getitem__(self, i):
            return pack(torch.as_tensor(x[i]), torch.as_tensor(extra[i])), torch.as_tensor(y[i])

    loader = DataLoader(Pairs(), batch_size=BS) if kind is not tuple else \
        [(pack(x[i:i + BS], extra[i:i + BS]), y[i:i + BS]) for i in range(0, N, BS)]
    got = trained(x=loader if kind is not tuple else Listed(loader))
    for a, b in zip(ref.get_weights(), got.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    preds = got.predict(pack(x, extra), verbose=0)
    assert preds.shape == (N, 1)


class Listed(keras.utils.PyDataset):
    def __init__(self, items):
        super().__init__()
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


# -- bad input ------------------------------------------------------------------------------------


def bad_at_2(bad):
    x, y = data()
    for i, (xb, yb) in enumerate(batches(x, y)):
        yield (bad(xb), yb) if i == 2 else (xb, yb)


@pytest.mark.parametrize("bad, match", [
    (lambda xb: xb[:, :, :2], r"batch 2 x must be float of shape \(B, T, 3\) like batch 0's, "
                              r"got float of shape \(B, T, 2\)"),
    (lambda xb: xb.astype(np.int64), r"batch 2 x must be float of shape \(B, T, 3\) like batch 0's, got integer"),
    (lambda xb: xb[:, 0], r"batch 2 x must be float of shape \(B, T, 3\) like batch 0's, got float of shape \(B, \*\)"),
    (lambda xb: xb[:-1], r"batch 2 has parts of different batch sizes: x has 3, y has 4"),
    (lambda xb: xb.astype(str), r"batch 2 x must hold numbers, got dtype <U"),
])
def test_a_bad_batch_in_the_middle_of_an_epoch_is_named(bad, match):
    model = model_and_init()
    with pytest.raises((ValueError, TypeError), match=r"Argument `x` \(generator\): " + match):
        model.fit(bad_at_2(bad), steps_per_epoch=3, verbose=0)


class Items(Dataset):
    def __init__(self, item):
        self.item = item

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.item


@pytest.mark.parametrize("item, match", [
    (torch.zeros(T, F), r"Argument `x` \(torch DataLoader\): batch 0 must be a tuple \(x, y\) or \(x, y, "
                        r"sample_weight\), got a Tensor of shape \(2, 5, 3\)"),
    ((torch.zeros(T, F),), r"batch 0 must be a tuple \(x, y\) or \(x, y, sample_weight\) with targets, got a tuple of 1"),
    ((torch.zeros(T, F),) * 4, r"batch 0 must be a tuple \(x, y\) or \(x, y, sample_weight\), got a tuple of 4"),
])
def test_a_loader_whose_items_are_not_pairs(item, match):
    with pytest.raises(TypeError, match=match):
        model_and_init().fit(DataLoader(Items(item), batch_size=2), verbose=0)


def test_wrong_arguments_for_the_kind_of_data():
    x, y = data()
    loader = DataLoader(TensorDataset(torch.as_tensor(x), torch.as_tensor(y)), batch_size=BS)
    model = model_and_init()
    w0 = model.get_weights() if model.built else None
    with pytest.raises(ValueError, match=r"`validation_split` is only supported for arrays \(numpy or torch\), not "
                                         r"for a torch DataLoader; pass `validation_data` instead"):
        model.fit(loader, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"When `x` is a torch DataLoader, argument `y` must not be passed"):
        model.fit(loader, y, verbose=0)
    with pytest.raises(ValueError, match=r"When `x` is a generator, argument `sample_weight` must not be passed"):
        model.fit(batches(x, y), sample_weight=np.ones(N), verbose=0)
    with pytest.raises(ValueError, match=r"`steps_per_epoch`, expected a positive integer or None, got 0"):
        model.fit(loader, steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match=r"`checkpoint_dir` needs arrays"):
        model.fit(loader, checkpoint_dir="/nonexistent/never", verbose=0)
    with pytest.raises(TypeError, match=r"Argument `x` must be arrays .* got object"):
        model.fit(object(), verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data` must be a tuple \(x_val, y_val\) or "):
        model.fit(x, y, validation_data=(x,), verbose=0)
    with pytest.raises(ValueError, match=r"Argument `x` \(generator\) yielded no batches"):
        model.fit(iter([]), verbose=0)
    if w0 is not None:
        for a, b in zip(w0, model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_pack_and_unpack_like_keras():
    x, y, w = np.zeros((2, 3)), np.ones(2), np.ones(2)
    unpack, pack = keras.utils.unpack_x_y_sample_weight, keras.utils.pack_x_y_sample_weight
    assert unpack(x)[0] is x and unpack(x)[1:] == (None, None)
    assert unpack([x, y])[:2] == (x, y) and unpack((x, y, w))[2] is w
    assert pack(x) is x and pack([x, y]) == ([x, y],) and pack(x, y) == (x, y) and pack(x, y, w) == (x, y, w)
    with pytest.raises(ValueError, match=r"got a tuple of 4 items"):
        unpack((x, y, w, w))


@pytest.mark.parametrize("kwargs", [dict(batch_size=8), dict(batch_size=8, shuffle=True),
                                    dict(batch_size=7, shuffle=True, drop_last=True)])
def test_tensor_dataset_fast_path_gives_the_loaders_batches_and_rng_draws(kwargs, monkeypatch):
    from torch.utils.data import DataLoader, TensorDataset

    from rnnkit.keras.training.data_adapters import loader_batches

    x, y = torch.randn(50, 4, 3), torch.randint(0, 3, (50,))
    loader = DataLoader(TensorDataset(x, y), **kwargs)
    torch.manual_seed(1)
    expected = list(loader)
    rng_after = torch.get_rng_state()
    # The fast path must be taken: it never asks the dataset for single samples.
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: pytest.fail("took the per-sample path"))
    torch.manual_seed(1)
    got = list(loader_batches(loader))
    assert torch.equal(torch.get_rng_state(), rng_after)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert type(g) is type(e) and len(g) == len(e)
        for a, b in zip(g, e):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_other_loaders_are_iterated_as_they_are():
    from torch.utils.data import DataLoader, TensorDataset

    from rnnkit.keras.training.data_adapters import loader_batches

    ds = TensorDataset(torch.randn(10, 2), torch.randn(10))
    custom = DataLoader(ds, batch_size=4, collate_fn=lambda items: ("custom", len(items)))
    assert list(loader_batches(custom)) == [("custom", 4), ("custom", 4), ("custom", 2)]
