"""Many-to-many (same length) recipes: a character language model, and word segmentation as tagging."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ...keras import losses, optimizers
from ...keras.callbacks import EarlyStopping, LearningRateScheduler
from ...data import CharVocab
from ...datasets import load_pydoc_text, load_sentiment
from ..language_model import CharLanguageModel, text_streams
from ..tagger import SequenceTagger
from .base import Context, Run, Score, Task, nats_to_bits


def windows(ids: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows: x = ids[i : i+T], y = ids[i+1 : i+T+1] -> (N, T) each."""
    n = (len(ids) - 1) // T
    if n < 1:
        raise ValueError(f"the text has {len(ids)} characters, too few for one window of {T} + 1")
    return ids[: n * T].reshape(n, T), ids[1 : n * T + 1].reshape(n, T)


def unigram_bits(train: np.ndarray, test: np.ndarray, vocab_size: int) -> float:
    """Bits per token of a unigram model of ``train`` (add-one smoothed) on ``test``."""
    p = (np.bincount(train, minlength=vocab_size) + 1.0) / (len(train) + vocab_size)
    return float(-np.mean(np.log2(p[test])))


class CharLMTask(Task):
    name = "charlm"
    summary = "predict the next character of CPython's pydoc topics (the text help() shows; PSF-2.0)"
    shape = "many-to-many: characters -> next characters"
    default_cell = "lstm"
    default_epochs = 15
    window = 100  # truncated-BPTT window; the windowed test score reads windows of this length
    streams = 64  # the training text as this many consecutive streams: one batch per epoch
    units = 512
    dropout = 0.4  # 0.25 overfit: validation loss rising from epoch 12 of 20 (README)
    learning_rate = 3e-3

    input_help = "prompts"

    def texts(self, ctx: Context) -> tuple[str, str, str, str]:
        """The whole text (for the vocabulary), and its consecutive train, validation and test pieces."""
        d = load_pydoc_text()
        return d.text, d.train, d.valid, d.test

    def train(self, ctx: Context) -> Run:
        text, train, valid, test = self.texts(ctx)
        vocab = CharVocab.fit(text)  # the whole text, so valid/test characters have ids
        T = self.window
        train_ids, test_ids = vocab.encode(train), vocab.encode(test)
        if ctx.limit is not None:  # quick checks: the first `limit` windows' worth of each text
            train_ids, test_ids = train_ids[: ctx.limit * T + 1], test_ids[: ctx.limit * T + 1]
        X, Y = text_streams(train_ids, min(self.streams, max(1, (len(train_ids) - 1) // T)))
        Xv, Yv = windows(vocab.encode(valid), T)
        Xt, Yt = windows(test_ids, T)
        Xv, Yv = Xv[ctx.pick(len(Xv))], Yv[ctx.pick(len(Yv))]
        ctx.say(f"data: {X.size:,} train characters as {len(X)} streams (truncated BPTT, windows of {T}) / "
                f"{len(test_ids) - 1:,} test characters; {len(vocab)} symbols")
        model = CharLanguageModel(len(vocab), embedding_dim=32, units=self.units, cell=ctx.cell, dropout=self.dropout)
        model.compile(optimizers.Adam(self.learning_rate, global_clipnorm=1.0),
                      loss=losses.SparseCategoricalCrossentropy(from_logits=True))
        lr, epochs = self.learning_rate, ctx.epochs
        cosine = LearningRateScheduler(lambda epoch, _: lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs)))
        stop = EarlyStopping(patience=3, restore_best_weights=True)
        hist = model.fit(X, Y, batch_size=len(X), epochs=epochs, tbptt=T, validation_data=(Xv, Yv),
                         callbacks=[cosine, stop], verbose=1 if ctx.verbose else 0)
        # Windows of T read from zero states (as the recipe before truncated BPTT was scored), and
        # the whole test text as one stream with the state carried.
        test_bits = nats_to_bits(float(model.evaluate(Xt, Yt, batch_size=64, verbose=0)))
        stream_bits = nats_to_bits(model.stream_loss(test_ids))
        base = unigram_bits(X.ravel(), Yt.ravel(), len(vocab))
        gen = torch.Generator().manual_seed(ctx.seed)
        sample = vocab.decode(model.generate(vocab.encode("The "), 240, temperature=0.7, top_k=10, generator=gen))
        history = dict(hist.history)
        history["bits_per_char"] = [nats_to_bits(v) for v in history.get("loss", [])]
        history["val_bits_per_char"] = [nats_to_bits(v) for v in history.get("val_loss", [])]
        unigram = "unigram character frequencies"
        return Run(model, history, [Score("bits per character", test_bits, base, unigram, higher_is_better=False),
                                    Score("bits per character, one stream", stream_bits, base, unigram,
                                          higher_is_better=False)],
                   extras={"vocab": vocab.get_config(), "window": T},
                   notes=["sample (prompt 'The ', temperature 0.7, top-k 10):", "The " + sample],
                   early_stopping=stop, loss_name="cross-entropy per character (nats)")

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        """The five most likely next characters after each prompt."""
        vocab = CharVocab.from_config(extras["vocab"])
        out = []
        for text in inputs:
            if not text:
                raise ValueError("a prompt must hold at least one character")
            with torch.no_grad():
                logits = model(torch.as_tensor(vocab.encode(text))[None])[0, -1]
            p = torch.softmax(logits, -1)
            top = p.topk(5)
            out.append(f"{text!r} -> " + "  ".join(f"{vocab.itos[int(i)]!r} {float(v):.2f}"
                                                  for v, i in zip(top.values, top.indices)))
        return out


def unspace(sentence: str) -> tuple[str, np.ndarray]:
    """'a good film' -> ('agoodfilm', tags (9,)): tag 1 where a word ends (a space or the end follows)."""
    words = sentence.split()
    text = "".join(words)
    tags = np.zeros(len(text), dtype=np.int64)
    ends = np.cumsum([len(w) for w in words]) - 1
    tags[ends] = 1
    return text, tags


def respace(text: str, tags: Sequence[int]) -> str:
    return "".join(c + (" " if t == 1 and i < len(text) - 1 else "") for i, (c, t) in enumerate(zip(text, tags)))


def boundary_f1(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """F1 of the "word ends here" tag over the real (unpadded) characters, the sentence ends excluded."""
    p, t = (pred == 1) & mask, (truth == 1) & mask
    tp = float((p & t).sum())
    precision, recall = tp / max(float(p.sum()), 1.0), tp / max(float(t.sum()), 1.0)
    return 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)


def fit_tagger(ctx: Context, X: np.ndarray, Y: np.ndarray, vocab_size: int, num_tags: int) -> tuple[SequenceTagger, Any]:
    """The tagging recipe: ids X (N, T), 0 = padding, and tags Y (N, T) -> the trained tagger and its History."""
    model = SequenceTagger(vocab_size, num_tags, embedding_dim=32, units=64, cell=ctx.cell, bidirectional=True,
                           num_layers=2, dropout=0.2)
    model.compile(optimizers.Adam(3e-3), loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(X, Y, batch_size=32, epochs=ctx.epochs, validation_split=0.1, verbose=1 if ctx.verbose else 0)
    return model, hist


class SegmentTask(Task):
    name = "segment"
    summary = "put the spaces back into movie-review sentences written without them"
    shape = "many-to-many, same length: characters -> 'a word ends here' tags"
    default_cell = "lstm"
    default_epochs = 4
    maxlen = 200
    input_help = "texts without spaces"

    def encode(self, vocab: CharVocab, texts: Sequence[str]) -> np.ndarray:
        X = np.zeros((len(texts), self.maxlen), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = vocab.encode(t[: self.maxlen])
            X[i, : len(ids)] = ids
        return X

    def data(self, sentences: Sequence[str], vocab: CharVocab) -> tuple[np.ndarray, np.ndarray, list[str]]:
        texts, tags = zip(*(unspace(s) for s in sentences))
        X = self.encode(vocab, texts)
        Y = np.zeros_like(X)
        for i, t in enumerate(tags):
            Y[i, : min(len(t), self.maxlen)] = t[: self.maxlen]
        return X, Y, list(texts)

    def train(self, ctx: Context) -> Run:
        d = load_sentiment()
        train, test = list(d.x_train[ctx.pick(len(d.x_train))]), list(d.x_test[ctx.pick(len(d.x_test))])
        vocab = CharVocab.fit([s.replace(" ", "") for s in train], specials=("<pad>",), unk="<unk>")
        X, Y, _ = self.data(train, vocab)
        Xt, Yt, texts = self.data(test, vocab)
        ctx.say(f"data: {len(X):,} train / {len(Xt):,} test sentences without spaces, at most {self.maxlen} "
                f"characters; {len(vocab)} symbols")
        model, hist = fit_tagger(ctx, X, Y, len(vocab), 2)
        pred = model.predict_tags(Xt)
        # Sentence ends are always word ends; score only the boundaries inside sentences.
        lengths = (Xt != 0).sum(1)
        mask = (Xt != 0) & (np.arange(self.maxlen)[None] < (lengths - 1)[:, None])
        f1 = boundary_f1(pred, Yt, mask)
        # Unigram baseline: each character gets its most frequent tag in the training data.
        ends = np.bincount(X[Y == 1], minlength=len(vocab))
        seen = np.bincount(X[X != 0], minlength=len(vocab))
        unigram = (2 * ends > seen).astype(np.int64)
        base = boundary_f1(unigram[Xt], Yt, mask)
        notes = ["examples:"] + [f"  {respace(t[: self.maxlen], p)[:90]}" for t, p in zip(texts[:3], pred[:3])]
        return Run(model, dict(hist.history), [Score("word-boundary F1", f1, base, "unigram: each character's most "
                                                     "frequent tag")],
                   extras={"vocab": vocab.get_config(), "maxlen": self.maxlen}, notes=notes)

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        vocab = CharVocab.from_config(extras["vocab"])
        texts = [t.replace(" ", "") for t in inputs]
        for i, t in enumerate(texts):
            if not t:
                raise ValueError(f"input {i} is empty")
            if len(t) > self.maxlen:
                raise ValueError(f"input {i} has {len(t)} characters; the model reads at most {self.maxlen}")
        tags = model.predict_tags(self.encode(vocab, texts))
        return [respace(t, p) for t, p in zip(texts, tags)]
