"""Many-to-one recipes: sentiment of movie-review sentences, and UCR/UEA time-series classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from ...keras import losses, optimizers
from ...keras.callbacks import EarlyStopping, ReduceLROnPlateau
from ...data import WordVocab, pad_sequences
from ...datasets import UCR_BUNDLED, load_sentiment, load_ucr, read_ts, read_ucr_tsv
from ..classifier import SequenceClassifier
from ..ensemble import Ensemble
from ..lstm_fcn import LSTMFCN
from .base import Context, EpochBar, Run, Score, Task, seed_everything

LABELS = ("negative", "positive")


def _compile(model: nn.Module, learning_rate: float) -> None:
    model.compile(optimizers.Adam(learning_rate), loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> tuple[float, int]:
    """Accuracy of always answering the most frequent training class, and that class."""
    top = int(np.bincount(y_train).argmax())
    return float(np.mean(y_test == top)), top


class TextClassTask(Task):
    """The recipe for words -> one label; subclasses give the texts (``data``).

    The model is an ensemble (``rnnkit.models.Ensemble``, the mean of the softmax outputs) of
    ``members`` bidirectional recurrent classifiers, each max-pooling its outputs over the words,
    with word dropout. Each member holds out its own tenth of the training texts and keeps the
    weights of its best epoch there.
    """

    shape = "many-to-one: words -> one label"
    default_cell = "lstm"
    default_epochs = 5
    maxlen, num_words = 40, 10_000
    members = 4

    def data(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
        """Train texts (N,), their labels (N,), test texts, test labels, the class names."""
        raise NotImplementedError

    def encode(self, vocab: WordVocab, texts: Sequence[str]) -> np.ndarray:
        return pad_sequences(vocab.texts_to_sequences(list(texts)), maxlen=self.maxlen, padding="post",
                             truncating="post", dtype="int64")

    def train(self, ctx: Context) -> Run:
        x_train, y_train, x_test, y_test, classes = self.data(ctx)
        ctx.say(f"data: {len(x_train):,} train / {len(x_test):,} test texts, classes {list(classes)}; words beyond "
                f"the {self.num_words:,} most frequent -> <unk>; at most {self.maxlen} words; an ensemble of "
                f"{self.members}")
        vocab = WordVocab(num_words=self.num_words, oov_token="<unk>").fit(list(x_train))
        X, Xt = self.encode(vocab, x_train), self.encode(vocab, x_test)
        members, runs, member_acc = [], [], []
        for k in range(self.members):
            model = SequenceClassifier(len(classes), vocab_size=vocab.vocab_size, embedding_dim=128, units=64,
                                       cell=ctx.cell, bidirectional=True, dropout=0.4, pooling="max",
                                       word_dropout=0.2)
            _compile(model, 2e-3)
            # Each member validates on its own tenth (the last of its own order of the texts).
            order = np.random.default_rng([ctx.seed, k]).permutation(len(X))
            stop = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
            hist = model.fit(X[order], y_train[order], batch_size=64, epochs=ctx.epochs, validation_split=0.1,
                             callbacks=[stop], verbose=1 if ctx.verbose else 0)
            member_acc.append(float(np.mean(model.predict_proba(Xt).argmax(-1) == y_test)))
            members.append(model)
            runs.append((hist, stop))
        ensemble = Ensemble(members).eval()
        _compile(ensemble, 2e-3)
        acc = float(np.mean(ensemble.predict_proba(Xt).argmax(-1) == y_test))
        base, top = majority_baseline(y_train, y_test)
        proba = ensemble.predict_proba(Xt[:3])
        notes = [f"members' test accuracies: {', '.join(f'{a:.4f}' for a in member_acc)} (mean "
                 f"{np.mean(member_acc):.4f}); the curves and early stopping shown are member 1's", "examples:"]
        notes += [f"  {classes[int(p.argmax())]} {p.max():.2f}  {t[:70]!r}" for p, t in zip(proba, x_test[:3])]
        hist, stop = runs[0]
        return Run(ensemble, dict(hist.history), [Score("accuracy", acc, base, f"majority class '{classes[top]}'")],
                   extras={"vocab": vocab.get_config(), "maxlen": self.maxlen, "classes": list(classes)},
                   notes=notes, early_stopping=stop)

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        vocab = WordVocab.from_config(extras["vocab"])
        classes = extras.get("classes", LABELS)
        for i, text in enumerate(inputs):
            if not vocab.words(text):
                raise ValueError(f"input {i} ({text!r}) has no words to classify")
        proba = model.predict_proba(self.encode(vocab, inputs))
        return [f"{classes[int(p.argmax())]}\t{p.max():.3f}\t{t}" for p, t in zip(proba, inputs)]


class SentimentTask(TextClassTask):
    name = "sentiment"
    summary = "positive or negative? 10,043 movie-review sentences rated by people (VADER, MIT)"
    input_help = "sentences"

    def data(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
        d = load_sentiment()
        # The source lists mostly positive sentences first: shuffle, so validation_split holds both labels.
        train = np.random.default_rng(ctx.seed).permutation(ctx.pick(len(d.x_train)))
        test = ctx.pick(len(d.x_test))
        return d.x_train[train], d.y_train[train], d.x_test[test], d.y_test[test], LABELS


class SeriesClassTask(Task):
    """The recipe for a series -> one class; subclasses give the series (``data``).

    The model is an ensemble (``rnnkit.models.Ensemble``, the mean of the softmax outputs) of
    ``members`` LSTM-FCNs (``rnnkit.models.LSTMFCN``, ``--cell`` their recurrent branch), member
    k trained from seed 1000 * seed + k as Karim et al. trained theirs (Adam(1e-3), the learning
    rate divided by 2^(1/3) when the training loss stalls) but with batches of 16, not 128: the
    archive's training sets are small (40-67 series for the bundled ones), and a batch of 128 is
    one step per epoch. Each member is its last epoch's.
    """

    shape = "many-to-one: a series -> one class"
    default_cell = "lstm"
    default_epochs = 250
    validation_split = 0.0
    members, batch_size = 3, 16

    def data(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], str]:
        """Train series (N, T, F), labels (N,), test series, test labels, the class names, the data's name."""
        raise NotImplementedError

    def train(self, ctx: Context) -> Run:
        x_train, y_train, x_test, y_test, classes, name = self.data(ctx)
        N, T, F = x_train.shape
        ctx.say(f"data: {name}, {N} train / {len(x_test)} test series, T={T}, F={F}, classes {list(classes)}; "
                f"an ensemble of {self.members}")
        # Standardise each feature with training statistics (saved with the model).
        loc, scale = x_train.mean((0, 1)), x_train.std((0, 1)) + 1e-8
        x, xt = (x_train - loc) / scale, (x_test - loc) / scale
        members, histories, member_acc = [], [], []
        for k in range(self.members):
            seed_everything(1000 * ctx.seed + k)
            model = LSTMFCN(len(classes), input_size=F, length=T, cell=ctx.cell)
            _compile(model, 1e-3)
            # The paper waits 100 of 2000 epochs before lowering the rate: the same fraction of ours.
            plateau = ReduceLROnPlateau(monitor="loss", factor=2 ** (-1 / 3), patience=max(10, ctx.epochs // 20),
                                        min_lr=1e-4)
            callbacks = [plateau, EpochBar(ctx.epochs, f"{name} {k + 1}/{self.members}")] if ctx.verbose else [plateau]
            hist = model.fit(x, y_train, batch_size=self.batch_size, epochs=ctx.epochs, verbose=0,
                             validation_split=self.validation_split, callbacks=callbacks)
            member_acc.append(float(np.mean(model.predict_proba(xt).argmax(-1) == y_test)))
            members.append(model)
            histories.append(hist)
        ensemble = Ensemble(members).eval()
        _compile(ensemble, 1e-3)
        acc = float(np.mean(ensemble.predict_proba(xt).argmax(-1) == y_test))
        base, top = majority_baseline(y_train, y_test)
        extras = {"dataset": name, "classes": list(classes), "loc": loc.tolist(), "scale": scale.tolist(),
                  "length": T}
        notes = [f"members' test accuracies: {', '.join(f'{a:.4f}' for a in member_acc)} (mean "
                 f"{np.mean(member_acc):.4f}); the curves shown are member 1's"]
        return Run(ensemble, dict(histories[0].history),
                   [Score("accuracy", acc, base, f"majority class {classes[top]!r}")], extras=extras, notes=notes)

    def read_file(self, path: Path, extras: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """A file of labelled series for ``predict``: (x (N, T, F), y (N,) indices into the model's classes)."""
        raise NotImplementedError

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        """Each input is a file of labelled series (its accuracy) or a comma-separated univariate series (its class)."""
        loc, scale = np.asarray(extras["loc"], np.float32), np.asarray(extras["scale"], np.float32)
        classes, length = list(extras["classes"]), extras.get("length")
        out = []
        for item in inputs:
            path, y = Path(item), None
            if path.is_file():
                x, y = self.read_file(path, extras)
            else:
                try:
                    x = np.array([float(v) for v in item.split(",")], dtype=np.float32)[None, :, None]
                except ValueError:
                    raise ValueError(f"input {item!r} is neither a file nor a comma-separated series of numbers") from None
            if x.shape[-1] != len(loc):
                raise ValueError(f"input {item[:60]!r} has {x.shape[-1]} features per step; the model was trained on "
                                 f"{len(loc)} ({extras['dataset']})")
            if length is not None and x.shape[1] != length:
                raise ValueError(f"input {item[:60]!r} is a series of {x.shape[1]} steps; expected {length}, the "
                                 f"length the model was trained on ({extras['dataset']})")
            pred = model.predict_proba(((x - loc) / scale).astype(np.float32)).argmax(-1)
            if y is not None:
                out.append(f"{item}: {len(pred)} series, accuracy {float(np.mean(pred == y)):.4f}")
            else:
                out.append(classes[int(pred[0])])
        return out


class UCRTask(SeriesClassTask):
    name = "ucr"
    summary = "time-series classes from the UCR/UEA archive (--dataset, default ItalyPowerDemand)"
    input_help = "a .ts/.tsv file or a comma-separated series"

    def data(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], str]:
        d = load_ucr(ctx.options.get("dataset") or "ItalyPowerDemand")
        train, test = ctx.pick(len(d.x_train)), ctx.pick(len(d.x_test))
        return d.x_train[train], d.y_train[train], d.x_test[test], d.y_test[test], d.classes, d.name

    def read_file(self, path: Path, extras: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        reader = read_ucr_tsv if ".tsv" in path.name else read_ts
        data = reader(path, classes=list(extras["classes"]))
        return data.x, data.y


UCR_DATASETS = tuple(UCR_BUNDLED)
