"""Many-to-one recipes: sentiment of movie-review sentences, and UCR/UEA time-series classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from ...keras import losses, optimizers
from ...keras.callbacks import EarlyStopping
from ...data import WordVocab, pad_sequences
from ...datasets import UCR_BUNDLED, load_sentiment, load_ucr, read_ts, read_ucr_tsv
from ..classifier import SequenceClassifier
from .base import Context, EpochBar, Run, Score, Task

LABELS = ("negative", "positive")


def _compile(model: nn.Module, learning_rate: float) -> None:
    model.compile(optimizers.Adam(learning_rate), loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> tuple[float, int]:
    """Accuracy of always answering the most frequent training class, and that class."""
    top = int(np.bincount(y_train).argmax())
    return float(np.mean(y_test == top)), top


class SentimentTask(Task):
    name = "sentiment"
    summary = "positive or negative? 10,043 movie-review sentences rated by people (VADER, MIT)"
    shape = "many-to-one: words -> one label"
    default_cell = "lstm"
    default_epochs = 5
    maxlen, num_words = 40, 10_000

    def encode(self, vocab: WordVocab, texts: Sequence[str]) -> np.ndarray:
        return pad_sequences(vocab.texts_to_sequences(list(texts)), maxlen=self.maxlen, padding="post",
                             truncating="post", dtype="int64")

    def train(self, ctx: Context) -> Run:
        d = load_sentiment()
        # The source lists mostly positive sentences first: shuffle, so validation_split holds both labels.
        train = np.random.default_rng(ctx.seed).permutation(ctx.pick(len(d.x_train)))
        test = ctx.pick(len(d.x_test))
        x_train, y_train, x_test, y_test = d.x_train[train], d.y_train[train], d.x_test[test], d.y_test[test]
        ctx.say(f"data: {len(train):,} train / {len(test):,} test sentences; words beyond the {self.num_words:,} most frequent "
                f"-> <unk>; at most {self.maxlen} words")
        vocab = WordVocab(num_words=self.num_words, oov_token="<unk>").fit(list(x_train))
        X, Xt = self.encode(vocab, x_train), self.encode(vocab, x_test)
        model = SequenceClassifier(2, vocab_size=vocab.vocab_size, embedding_dim=64, units=64, cell=ctx.cell,
                                   bidirectional=True, dropout=0.4)
        _compile(model, 2e-3)
        # Keep the weights of the best epoch on a held-out tenth of the training sentences.
        stop = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
        hist = model.fit(X, y_train, batch_size=64, epochs=ctx.epochs, validation_split=0.1, callbacks=[stop],
                         verbose=1 if ctx.verbose else 0)
        _, acc = model.evaluate(Xt, y_test, batch_size=256, verbose=0)
        base, top = majority_baseline(y_train, y_test)
        proba = model.predict_proba(Xt[:3])
        notes = [f"  {LABELS[int(p.argmax())]} {p.max():.2f}  {t[:70]!r}" for p, t in zip(proba, x_test[:3])]
        return Run(model, dict(hist.history), [Score("accuracy", float(acc), base, f"majority class '{LABELS[top]}'")],
                   extras={"vocab": vocab.get_config(), "maxlen": self.maxlen}, notes=["examples:", *notes])

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        vocab = WordVocab.from_config(extras["vocab"])
        for i, text in enumerate(inputs):
            if not vocab.words(text):
                raise ValueError(f"input {i} ({text!r}) has no words to classify")
        proba = model.predict_proba(self.encode(vocab, inputs))
        return [f"{LABELS[int(p.argmax())]}\t{p.max():.3f}\t{t}" for p, t in zip(proba, inputs)]


class UCRTask(Task):
    name = "ucr"
    summary = "time-series classes from the UCR/UEA archive (--dataset, default ItalyPowerDemand)"
    shape = "many-to-one: a series -> one class"
    default_cell = "gru"
    default_epochs = 150

    def train(self, ctx: Context) -> Run:
        name = ctx.options.get("dataset") or "ItalyPowerDemand"
        d = load_ucr(name)
        train, test = ctx.pick(len(d.x_train)), ctx.pick(len(d.x_test))
        x_train, y_train, x_test, y_test = d.x_train[train], d.y_train[train], d.x_test[test], d.y_test[test]
        N, T, F = x_train.shape
        ctx.say(f"data: {d.name}, {N} train / {len(test)} test series, T={T}, F={F}, classes {list(d.classes)}")
        # Standardise each feature with training statistics (saved with the model).
        loc, scale = x_train.mean((0, 1)), x_train.std((0, 1)) + 1e-8
        model = SequenceClassifier(len(d.classes), input_size=F, units=32, cell=ctx.cell, bidirectional=True,
                                   dropout=0.2)
        _compile(model, 3e-3)
        callbacks = [EpochBar(ctx.epochs, d.name)] if ctx.verbose else []
        hist = model.fit((x_train - loc) / scale, y_train, batch_size=16, epochs=ctx.epochs, verbose=0,
                         callbacks=callbacks)
        _, acc = model.evaluate((x_test - loc) / scale, y_test, batch_size=256, verbose=0)
        base, top = majority_baseline(y_train, y_test)
        extras = {"dataset": d.name, "classes": list(d.classes), "loc": loc.tolist(), "scale": scale.tolist(),
                  "length": T}
        return Run(model, dict(hist.history), [Score("accuracy", float(acc), base, f"majority class {d.classes[top]!r}")],
                   extras=extras)

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        """Each input is a UCR/UEA file (.ts or .tsv, optionally .gz: its accuracy) or a
        comma-separated univariate series (its class)."""
        loc, scale = np.asarray(extras["loc"], np.float32), np.asarray(extras["scale"], np.float32)
        classes = list(extras["classes"])
        out = []
        for item in inputs:
            path, y = Path(item), None
            if path.is_file():
                reader = read_ucr_tsv if ".tsv" in path.name else read_ts
                data = reader(path, classes=classes)
                x, y = data.x, data.y
            else:
                try:
                    x = np.array([float(v) for v in item.split(",")], dtype=np.float32)[None, :, None]
                except ValueError:
                    raise ValueError(f"input {item!r} is neither a file nor a comma-separated series of numbers") from None
            if x.shape[-1] != len(loc):
                raise ValueError(f"input {item!r} has {x.shape[-1]} features per step; the model was trained on "
                                 f"{len(loc)} ({extras['dataset']})")
            pred = model.predict_proba(((x - loc) / scale).astype(np.float32)).argmax(-1)
            if y is not None:
                out.append(f"{item}: {len(pred)} series, accuracy {float(np.mean(pred == y)):.4f}")
            else:
                out.append(classes[int(pred[0])])
        return out


UCR_DATASETS = tuple(UCR_BUNDLED)
