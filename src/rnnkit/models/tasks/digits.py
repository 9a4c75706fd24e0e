"""Recipes on handwritten digits: one-to-many (image -> the letters of its word) and one-to-one (image -> class)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
from torch import nn

from ...keras import losses, optimizers
from ...datasets import load_digits_captions
from ..generator import ConditionalGenerator
from ..one_to_one import OneToOne
from ..scores import sequence_accuracy, token_error_rate
from ..vocab import TokenVocab, encode_batch
from .base import Context, EpochBar, Run, Score, Task
from .classify import majority_baseline

_SHADES = " .:-=+*#%@"


def ascii_digit(pixels: Sequence[float]) -> list[str]:
    """An 8x8 image (64 values in [0, 1]) as 8 lines of text."""
    img = np.asarray(pixels, dtype=np.float32).reshape(8, 8)
    return ["".join(_SHADES[min(int(v * (len(_SHADES) - 1) + 0.5), len(_SHADES) - 1)] * 2 for v in row) for row in img]


def _compile(model: nn.Module) -> None:
    model.compile(optimizers.Adam(3e-3), loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def _images(inputs: Sequence[str], x_test: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Inputs are indices into the bundled test images, or 64 comma-separated pixel values in [0, 1]."""
    rows, names = [], []
    for item in inputs:
        if item.strip().isdigit():
            i = int(item)
            if not 0 <= i < len(x_test):
                raise ValueError(f"test image index {i} is outside [0, {len(x_test) - 1}]")
            rows.append(x_test[i])
            names.append(f"test image {i}")
        else:
            try:
                v = np.array([float(p) for p in item.split(",")], dtype=np.float32)
            except ValueError:
                raise ValueError(f"input {item!r} is neither a test image index nor 64 comma-separated pixels") from None
            if v.shape != (64,):
                raise ValueError(f"an image needs 64 pixel values (8x8), got {v.size}")
            rows.append(v)
            names.append("your image")
    if not rows:
        rows, names = list(x_test[:3]), [f"test image {i}" for i in range(3)]
    return np.stack(rows), names


class CaptionsTask(Task):
    name = "captions"
    summary = "spell the word of a handwritten digit letter by letter (UCI digits, CC BY 4.0)"
    shape = "one-to-many: an 8x8 image -> the letters of its word"
    default_cell = "gru"
    default_epochs = 20
    input_help = "test image indices or 64 comma-separated pixels (none: 3 test images)"
    needs_inputs = False

    def train(self, ctx: Context) -> Run:
        d = load_digits_captions()
        train, test = ctx.pick(len(d.x_train)), ctx.pick(len(d.x_test))
        x, words = d.x_train[train], [str(w) for w in d.y_train[train]]
        xt, words_t = d.x_test[test], [str(w) for w in d.y_test[test]]
        n, m = len(train), len(test)
        vocab = TokenVocab.fit(words)  # letters
        Y = encode_batch(vocab, words, add_bos=True, add_eos=True)  # <bos> s e v e n <eos> <pad>...
        ctx.say(f"data: {n:,} train / {m:,} test images; {len(vocab)} symbols")
        model = ConditionalGenerator(64, len(vocab), embedding_dim=16, units=64, cell=ctx.cell, dropout=0.1,
                                     max_len=max(len(w) for w in words) + 3)
        _compile(model)
        callbacks = [EpochBar(ctx.epochs, "captions")] if ctx.verbose else []
        hist = model.fit([x, Y[:, :-1]], Y[:, 1:], batch_size=32, epochs=ctx.epochs, validation_split=0.1, verbose=0,
                         callbacks=callbacks)
        pred = ["".join(vocab.decode(r)) for r in model.generate(xt)]  # greedy, fed its own letters
        top = Counter(words).most_common(1)[0][0]
        scores = [Score("caption accuracy", sequence_accuracy(pred, words_t), sequence_accuracy([top] * m, words_t),
                        f"majority caption {top!r}")]
        notes = [f"letter error rate: {token_error_rate([list(p) for p in pred], [list(w) for w in words_t]):.4f}"]
        return Run(model, dict(hist.history), scores, extras={"vocab": vocab.get_config()}, notes=notes)

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        vocab = TokenVocab.from_config(extras["vocab"])
        images, names = _images(inputs, load_digits_captions().x_test)
        out = []
        for img, name, ids in zip(images, names, model.generate(images)):
            out += [f"{name}: {''.join(vocab.decode(ids))}", *ascii_digit(img)]
        return out


class DigitsTask(Task):
    name = "digits"
    summary = "which digit is it? one recurrent step on one 8x8 image (UCI digits, CC BY 4.0)"
    shape = "one-to-one: an image -> its class (T = 1: the cell acts as an MLP layer)"
    default_cell = "lstm"
    default_epochs = 20
    input_help = "test image indices or 64 comma-separated pixels (none: 3 test images)"
    needs_inputs = False

    def train(self, ctx: Context) -> Run:
        d = load_digits_captions()
        train, test = ctx.pick(len(d.x_train)), ctx.pick(len(d.x_test))
        ctx.say(f"data: {len(train):,} train / {len(test):,} test images")
        model = OneToOne(64, 10, units=64, cell=ctx.cell)
        _compile(model)
        callbacks = [EpochBar(ctx.epochs, "digits")] if ctx.verbose else []
        hist = model.fit(d.x_train[train], d.digits_train[train], batch_size=32, epochs=ctx.epochs,
                         validation_split=0.1, verbose=0, callbacks=callbacks)
        _, acc = model.evaluate(d.x_test[test], d.digits_test[test], verbose=0)
        base, top = majority_baseline(d.digits_train[train], d.digits_test[test])
        return Run(model, dict(hist.history), [Score("accuracy", float(acc), base, f"majority class {top}")])

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        images, names = _images(inputs, load_digits_captions().x_test)
        out = []
        for img, name, p in zip(images, names, model.predict(images, verbose=0).argmax(-1)):
            out += [f"{name}: {int(p)}", *ascii_digit(img)]
        return out
