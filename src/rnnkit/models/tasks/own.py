"""The recipes on your own files: ``rnnkit train <kind> --data FILE [--test-data FILE]``.

Each subclasses the recipe of a bundled task of the same shape and gives it the data of a
file (``rnnkit.datasets.files`` reads and checks it) instead of the bundled set:

    classify-text    texts -> one class           (recipe of ``sentiment``)
    classify-series  series -> one class          (recipe of ``ucr``)
    forecast         a numeric column -> next H   (recipe of ``sunspots``)
    tag              tokens -> one tag each       (the tagger of ``segment``)
    seq2seq          source -> target texts       (recipe of ``cmudict``)
    lm               a text -> next characters    (recipe of ``charlm``)

``Task.check`` reads every file before anything else runs, so a bad file fails at once with
a one-line error that names the file, the line and what was expected. Without ``--test-data``
a fixed fifth of the rows (chosen by a seeded shuffle, the same for every ``--seed``) is the
test split; a series keeps its order and tests on its last fifth.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from torch import nn

from ...datasets import files
from ..vocab import TokenVocab, encode_batch
from .base import Context, Run, Score, Task
from .classify import SeriesClassTask, TextClassTask
from .forecast import ForecastTask
from .language import CharLMTask, fit_tagger
from .translate import Pairs, Seq2SeqTask

TEST_FRACTION = 0.2
MIN_ROWS = 10  #: rows a file needs before it is cut into train / validation / test
MIN_TRAIN_ROWS = 5  #: rows a training file needs beside a --test-data file


def _file(ctx: Context, option: str = "data") -> Optional[Path]:
    value = ctx.options.get(option)
    return Path(value) if value is not None else None


def _reader_args(ctx: Context, **columns: str) -> dict[str, Any]:
    """Reader keywords: each column option the user gave, else the kind's default; the format if given."""
    args: dict[str, Any] = {k: ctx.options.get(k) or default for k, default in columns.items()}
    args["format"] = ctx.options.get("format")
    return args


def split_rows(n: int, ctx: Context, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices of one file: a fixed fifth, drawn by a shuffle with seed 0, is the test split."""
    if n < MIN_ROWS:
        raise ValueError(f"{source}: {n} rows; expected at least {MIN_ROWS} for a train / validation / test split "
                         "(or give a separate test file with --test-data)")
    order = np.random.default_rng(0).permutation(n)
    k = max(1, round(n * TEST_FRACTION))
    train, test = np.sort(order[k:]), np.sort(order[:k])
    return train[ctx.pick(len(train))], test[ctx.pick(len(test))]


def _train_and_test(ctx: Context, reader: Callable[..., Any], count: Callable[[Any], int], classes: bool = False,
                    **columns: str) -> tuple[Any, Any, Any, Any]:
    """(train data, its row indices, test data, its row indices), from --data alone or with --test-data.

    ``reader`` is one of ``rnnkit.datasets.files``' readers, given the column options (``columns``
    holds their defaults); with ``classes``, a test file's labels map onto the training file's classes.
    """
    args = _reader_args(ctx, **columns)

    def read(path: Path, train: Any = None) -> Any:
        known = {"classes": train.classes if train is not None else None} if classes else {}
        return reader(path, **args, **known)

    path, test_path = _file(ctx), _file(ctx, "test_data")
    if path is None:
        raise ValueError("this task trains on your file: give it with --data FILE")
    data = read(path)
    if test_path is None:
        train, test = split_rows(count(data), ctx, path.name)
        return data, train, data, test
    if count(data) < MIN_TRAIN_ROWS:
        raise ValueError(f"{path.name}: {count(data)} rows; expected at least {MIN_TRAIN_ROWS} to train on")
    test_data = read(test_path, data)
    n, m = count(data), count(test_data)
    return data, ctx.pick(n), test_data, ctx.pick(m)


class TextFileTask(TextClassTask):
    name = "classify-text"
    summary = "your texts -> their classes (--data FILE, --text-column, --label-column)"
    input_help = "texts"

    def check(self, ctx: Context) -> None:
        ctx.data = _train_and_test(ctx, files.read_text_classes, lambda d: len(d.texts), classes=True,
                                   text_column="text", label_column="label")

    def data(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
        train, i, test, j = ctx.data
        texts, texts_t = np.asarray(train.texts, dtype=object), np.asarray(test.texts, dtype=object)
        # Shuffled, so that the validation split (the last tenth) holds every class.
        i = np.random.default_rng(ctx.seed).permutation(i)
        return texts[i], train.y[i], texts_t[j], test.y[j], train.classes


class SeriesFileTask(SeriesClassTask):
    name = "classify-series"
    summary = "your series -> their classes (--data FILE, --label-column; one column per step)"
    input_help = "comma-separated series, or a file of labelled series like the training file"
    validation_split = 0.1

    def check(self, ctx: Context) -> None:
        ctx.data = _train_and_test(ctx, files.read_series_classes, lambda d: len(d.y), classes=True,
                                   label_column="label", series_column="series")
        train, _, test, _ = ctx.data
        if train.x.shape[1:] != test.x.shape[1:]:
            raise ValueError(f"{_file(ctx, 'test_data').name}: series of {test.x.shape[1]} steps x {test.x.shape[2]} "
                             f"features; expected {train.x.shape[1]} x {train.x.shape[2]} like the training file")

    def data(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], str]:
        train, i, test, j = ctx.data
        i = np.random.default_rng(ctx.seed).permutation(i)
        return train.x[i], train.y[i], test.x[j], test.y[j], train.classes, _file(ctx).name

    def train(self, ctx: Context) -> Run:
        run = super().train(ctx)
        run.extras["reader"] = _reader_args(ctx, label_column="label", series_column="series")
        return run

    def read_file(self, path: Path, extras: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        data = files.read_series_classes(path, **extras["reader"], classes=extras["classes"])
        return data.x, data.y


class ForecastFileTask(ForecastTask):
    name = "forecast"
    summary = "your numeric column -> its next --horizon values (--data FILE, --value-column, --lookback)"
    shape = "many-to-one: a window of values -> the next H values"
    input_help = "the latest values (none: after the end of the training file)"
    needs_inputs = False

    def check(self, ctx: Context) -> None:
        args = _reader_args(ctx)
        args["column"] = ctx.options.get("value_column")
        path, test_path = _file(ctx), _file(ctx, "test_data")
        if path is None:
            raise ValueError("this task trains on your file: give it with --data FILE")
        series = files.read_series(path, **args)
        L = int(ctx.options.get("lookback") or self.lookback)
        H = int(ctx.options.get("horizon") or 3)
        if test_path is not None:
            args["column"] = series.name
            train, test = series.values, files.read_series(test_path, **args).values
            where = f"{test_path.name} holds {len(test)} values"
        else:
            k = max(1, round(len(series.values) * TEST_FRACTION))
            train, test = series.values[:-k], series.values[-k:]
            where = f"the test part of {path.name} (its last {TEST_FRACTION:.0%}) holds {len(test)} of " \
                    f"{len(series.values)} values"
        if H > len(test):
            raise ValueError(f"--horizon {H} is longer than the series it is tested on: {where}; expected a horizon "
                             f"of at most {len(test)}")
        windows = len(train) - L - H + 1
        if windows < MIN_ROWS:
            raise ValueError(f"{path.name}: {len(train)} training values give {max(windows, 0)} windows of --lookback "
                             f"{L} + --horizon {H}; expected at least {MIN_ROWS} (a longer series, or a shorter "
                             "--lookback or --horizon)")
        ctx.data = (train, test, series.name)

    def series(self, ctx: Context, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        train, test, column = ctx.data
        return train, test, {"series": [float(v) for v in np.concatenate([train, test])], "column": column}


class TagFileTask(Task):
    name = "tag"
    summary = "your token sequences -> one tag per token (--data FILE, --text-column, --tags-column)"
    shape = "many-to-many, same length: tokens -> one tag each"
    default_cell = "lstm"
    default_epochs = 10
    input_help = "space-separated tokens"

    def check(self, ctx: Context) -> None:
        ctx.data = _train_and_test(ctx, files.read_tagged, lambda d: len(d.tokens), text_column="tokens",
                                   tags_column="tags")

    def train(self, ctx: Context) -> Run:
        data, i, test, j = ctx.data
        tokens, tags = [data.tokens[k] for k in i], [data.tags[k] for k in i]
        tokens_t, tags_t = [test.tokens[k] for k in j], [test.tags[k] for k in j]
        vocab = TokenVocab.fit(tokens, unk="<unk>")  # unseen test tokens -> <unk>
        names = sorted({t for seq in tags for t in seq})
        index = {t: k for k, t in enumerate(names)}
        X, Xt = encode_batch(vocab, tokens), encode_batch(vocab, tokens_t)
        Y, Yt = self.tag_ids(tags, index, X.shape[1]), self.tag_ids(tags_t, index, Xt.shape[1])
        ctx.say(f"data: {len(X):,} train / {len(Xt):,} test sequences, {len(vocab)} token ids, tags {names}")
        model, hist = fit_tagger(ctx, X, Y, len(vocab), len(names))
        pred = model.predict_tags(Xt)
        real = Xt != 0
        accuracy = float((pred == Yt)[real].mean())
        # Baseline: each token's most frequent training tag (the overall most frequent for unseen tokens).
        top = Counter(t for seq in tags for t in seq).most_common(1)[0][0]
        by_token: dict[str, Counter] = {}
        for seq, marks in zip(tokens, tags):
            for tok, tag in zip(seq, marks):
                by_token.setdefault(tok, Counter())[tag] += 1
        guess = [[by_token[t].most_common(1)[0][0] if t in by_token else top for t in seq] for seq in tokens_t]
        base = float(np.mean([g == t for gs, ts in zip(guess, tags_t) for g, t in zip(gs, ts)]))
        score = Score("tag accuracy", accuracy, base, "each token's most frequent training tag")
        return Run(model, dict(hist.history), [score],
                   extras={"vocab": vocab.get_config(), "tags": names})

    @staticmethod
    def tag_ids(tags: Sequence[Sequence[str]], index: dict[str, int], T: int) -> np.ndarray:
        """Tags -> (N, T) ids; padding gets tag 0 (masked out of loss and metrics); unknown tags -> -1."""
        Y = np.zeros((len(tags), T), dtype=np.int64)
        for r, seq in enumerate(tags):
            Y[r, : len(seq)] = [index.get(t, -1) for t in seq]
        return Y

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        vocab, names = TokenVocab.from_config(extras["vocab"]), extras["tags"]
        rows = [text.split() for text in inputs]
        for i, row in enumerate(rows):
            if not row:
                raise ValueError(f"input {i} has no tokens to tag")
        tags = model.predict_tags(encode_batch(vocab, rows))
        return [" ".join(f"{tok}/{names[int(t)]}" for tok, t in zip(row, tag_row)) for row, tag_row in zip(rows, tags)]


def _splitter(texts: Sequence[str]) -> str:
    """How texts break into tokens: at spaces if any text holds one, else into characters."""
    return "words" if any(" " in t.strip() for t in texts) else "characters"


def _split(how: str) -> Callable[[str], list[str]]:
    return (lambda text: text.split()) if how == "words" else (lambda text: list(text.strip()))


def _join(how: str) -> Callable[[Sequence[str]], str]:
    return (lambda tokens: " ".join(tokens)) if how == "words" else (lambda tokens: "".join(tokens))


class PairsFileTask(Seq2SeqTask):
    name = "seq2seq"
    summary = "your source -> target texts (--data FILE, --source-column, --target-column)"
    shape = "many-to-many, different lengths: source tokens -> target tokens"
    default_epochs = 20

    def check(self, ctx: Context) -> None:
        ctx.data = _train_and_test(ctx, files.read_pairs, lambda d: len(d.sources), source_column="source",
                                   target_column="target")

    def saved_options(self, ctx: Context) -> dict[str, Any]:
        data = ctx.data[0]
        return {"source_split": _splitter(data.sources), "target_split": _splitter(data.targets)}

    def pairs(self, ctx: Context) -> tuple[Pairs, Pairs]:
        # The recipe applies ctx.pick itself; with --limit the indices here are already picked.
        data, i, test, j = ctx.data
        how = self.saved_options(ctx)
        src, tgt = _split(how["source_split"]), _split(how["target_split"])
        return ([src(data.sources[k]) for k in i], [tgt(data.targets[k]) for k in i]), \
               ([src(test.sources[k]) for k in j], [tgt(test.targets[k]) for k in j])

    def tokenizer(self, extras: dict[str, Any]) -> tuple[Callable[[str], list[str]], Callable[[Sequence[str]], str]]:
        return _split(extras["source_split"]), _join(extras["target_split"])


class LMFileTask(CharLMTask):
    name = "lm"
    summary = "a character language model of your text (--data FILE; CSV/TSV/JSONL: --text-column)"
    valid_fraction = test_fraction = 0.05

    def check(self, ctx: Context) -> None:
        path = _file(ctx)
        if path is None:
            raise ValueError("this task trains on your file: give it with --data FILE")
        corpus = files.read_corpus(path, **_reader_args(ctx, text_column="text"))
        text = corpus.text
        piece = int(len(text) * self.test_fraction)
        need = int((self.window + 1) / self.test_fraction) + 1
        if piece < self.window + 1:
            raise ValueError(f"{corpus.source}: {len(text):,} characters; expected at least {need:,}, so that the "
                             f"validation and test pieces (the last {self.valid_fraction:.0%} each) hold a window "
                             f"of {self.window} + 1 characters")
        ctx.data = text

    def texts(self, ctx: Context) -> tuple[str, str, str, str]:
        text = ctx.data
        n = len(text)
        b = n - int(self.test_fraction * n)
        a = b - int(self.valid_fraction * n)
        return text, text[:a], text[a:b], text[b:]


#: The tasks on a user's files, in the order ``rnnkit train --help`` lists them.
FILE_TASKS: tuple[Task, ...] = (TextFileTask(), SeriesFileTask(), ForecastFileTask(), TagFileTask(), PairsFileTask(),
                                LMFileTask())
