"""The bad-input catalogue: one table, one parametrized test, and docs/bad_inputs.md made from it.

Each row is a bad input somewhere in rnnkit (layers, compile/fit, datasets, data helpers, the
torch.nn front, saving/loading, export, the CLI), the exception it must raise, the argument
its message must name and the phrase that says what was expected. ``render()`` runs every
row and writes the table with the messages rnnkit really gives; ``test_doc_is_the_table``
keeps docs/bad_inputs.md equal to it. After changing the table or a message:

    python tests/test_bad_inputs.py > docs/bad_inputs.md
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import datasets, layers
from rnnkit import nn as rnn_nn
from rnnkit.data import CharVocab, WordVocab, make_windows, pad_sequences
from rnnkit.keras.models import Sequential

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
TMP = Path(tempfile.gettempdir()) / "rnnkit_bad_inputs"


class CLIExit(Exception):
    """The CLI ended with a non-zero code; the message is what it printed on stderr."""

    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {code}")
        self.code = code


@dataclass(frozen=True)
class Case:
    area: str
    bad: str                      # the bad input, in words
    call: Callable[[], Any]
    error: type                   # ValueError, TypeError, or CLIExit
    argument: str                 # the argument the message must name
    expected: str                 # the message's words for what was expected


# -- small helpers the rows share -----------------------------------------------------------

def seq(B: int = 4, T: int = 5, F: int = 3) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")


def built_lstm(F: int = 3) -> layers.LSTM:
    layer = layers.LSTM(4, name="lstm")
    layer(torch.zeros(1, 2, F))
    return layer


def compiled(loss: str = "mse", units: int = 1, **kw: Any) -> Sequential:
    model = Sequential([layers.Input(shape=(None, 3)), layers.LSTM(4, name="lstm"), layers.Dense(units, name="dense")],
                       name="model")
    model.compile(optimizer="sgd", loss=loss, **kw)
    return model


def token_model() -> Sequential:
    model = Sequential([layers.Embedding(10, 4, mask_zero=True, name="embedding"), layers.LSTM(4, name="lstm"),
                        layers.Dense(1, name="dense")], name="model")
    model.compile(optimizer="sgd", loss="mse")
    return model


def fit(x: Any, y: Any, model: Any = None, **kw: Any) -> Any:
    model = model or compiled()
    return model.fit(x, y, epochs=1, verbose=0, **kw)


def batches_then(bad: np.ndarray) -> Any:
    """A generator of (x, y) batches of 2 whose third batch takes its x from ``bad``."""
    good = seq()
    for i in range(3):
        yield (bad if i == 2 else good)[:2], np.zeros(2)


def with_nan(a: np.ndarray, value: float = np.nan) -> np.ndarray:
    a = a.copy()
    a.reshape(-1)[7] = value
    return a


def vocab_model(V: int) -> Sequential:
    model = Sequential([layers.Embedding(V, 8, name="embedding"), layers.LSTM(4, name="lstm")], name="model")
    model.build((None, None))
    return model


def load_other_vocab() -> None:
    TMP.mkdir(exist_ok=True)
    vocab_model(50).save_weights(TMP / "vocab50.safetensors")
    vocab_model(40).load_weights(TMP / "vocab50.safetensors")


def load_foreign_file() -> None:
    TMP.mkdir(exist_ok=True)
    (TMP / "notes.safetensors").write_bytes(b"just some text, not a model")
    rnnkit.load_model(TMP / "notes.safetensors")


def cli(*argv: str) -> None:
    from rnnkit.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = int(e.code or 0)
    if code:
        raise CLIExit(code, err.getvalue())


def export_layer_norm() -> None:
    from rnnkit.keras.export import export_onnx

    model = Sequential([layers.Input(shape=(None, 3)), layers.LSTM(4, layer_norm=True, name="lstm")], name="model")
    export_onnx(model, TMP / "m.onnx")


# -- the table --------------------------------------------------------------------------------

CASES = [
    # layers
    Case("layers", "`LSTM(units=0)`", lambda: layers.LSTM(0), ValueError, "units", "expected a positive integer"),
    Case("layers", "`GRU(4, dropout=1.5)`", lambda: layers.GRU(4, dropout=1.5), ValueError, "dropout",
         "expected a rate in [0, 1)"),
    Case("layers", "`SimpleRNN(4, activation='swish')` (no derivative from the output)",
         lambda: layers.SimpleRNN(4, activation="swish"), ValueError, "activation", "expected one of"),
    Case("layers", "token ids (int64, (B, T)) straight into an LSTM",
         lambda: layers.LSTM(4, name="lstm")(torch.ones(2, 5, dtype=torch.long)), TypeError, "inputs",
         "floating-point inputs of shape (B, T, F)"),
    Case("layers", "a (B, F) batch into an LSTM (no time axis)", lambda: layers.LSTM(4, name="lstm")(torch.zeros(2, 3)),
         ValueError, "inputs", "shape (B, T, F) (rank 3)"),
    Case("layers", "F = 5 features into an LSTM built for F = 3", lambda: built_lstm(3)(torch.zeros(2, 4, 5)),
         ValueError, "inputs", "built for inputs of shape (B, T, 3)"),
    Case("layers", "an empty sequence (T = 0)", lambda: built_lstm(3)(torch.zeros(2, 0, 3)), ValueError,
         "T", "at least one time step (T >= 1)"),
    Case("layers", "a mask of the wrong shape", lambda: built_lstm(3)(torch.zeros(2, 4, 3), mask=torch.ones(2, 3)),
         ValueError, "mask", "must have shape (B, T) = (2, 4)"),
    Case("layers", "an initial state of the wrong size",
         lambda: built_lstm(3)(torch.zeros(2, 4, 3), initial_state=[torch.zeros(2, 5), torch.zeros(2, 4)]),
         ValueError, "initial_state[0]", "must have shape (B, H) = (2, 4)"),
    Case("layers", "unknown token ids (>= input_dim) into an Embedding",
         lambda: layers.Embedding(10, 4, name="embedding")(torch.tensor([[1, 12, 3]])), ValueError, "input_dim",
         "ids must lie in [0, 9]"),
    Case("layers", "negative token ids", lambda: layers.Embedding(10, 4, name="embedding")(torch.tensor([[-1, 2]])),
         ValueError, "input_dim", "ids must lie in [0, 9]"),
    Case("layers", "non-integral float ids into an Embedding",
         lambda: layers.Embedding(10, 4, name="embedding")(torch.tensor([[0.5, 2.0]])), TypeError, "ids",
         "expects integer ids"),
    Case("layers", "`Dense(-1)`", lambda: layers.Dense(-1), ValueError, "units", "expected a positive integer"),
    Case("layers", "an unknown activation name", lambda: layers.Dense(3, activation="relu7"), ValueError,
         "activation", "expected one of"),
    Case("layers", "`Bidirectional(Dense(3))`", lambda: layers.Bidirectional(layers.Dense(3)), TypeError, "layer",
         "must be a recurrent layer (SimpleRNN, LSTM, GRU, RNN, ConvLSTM1D/2D)"),
    Case("layers", "`Bidirectional(..., merge_mode='max')`",
         lambda: layers.Bidirectional(layers.LSTM(3), merge_mode="max"), ValueError, "merge_mode", "expected one of"),
    Case("layers", "a (B, F) batch into TimeDistributed",
         lambda: layers.TimeDistributed(layers.Dense(2), name="td")(torch.zeros(2, 3)), ValueError, "inputs",
         "shape (B, T, ...) (rank >= 3)"),
    Case("layers", "`RepeatVector(0)`", lambda: layers.RepeatVector(0), ValueError, "n", "expected a positive integer"),
    Case("layers", "`Masking(mask_value='0')`", lambda: layers.Masking("0"), TypeError, "mask_value", "must be a number"),
    Case("layers", "`Dropout(1.0)`", lambda: layers.Dropout(1.0), ValueError, "rate", "expected a rate in [0, 1)"),
    # compile and fit
    Case("fit", "`compile()` without a loss, then fit", lambda: compiled(loss=None).fit(seq(), np.zeros(4)),
         ValueError, "loss", "is required to train"),
    Case("fit", "an unknown optimizer name", lambda: compiled().compile(optimizer="adamx", loss="mse"), ValueError,
         "optimizer", "expected one of"),
    Case("fit", "an unknown loss name", lambda: compiled().compile(optimizer="sgd", loss="l2"), ValueError, "loss",
         "expected one of"),
    Case("fit", "NaN in x", lambda: fit(with_nan(seq()), np.zeros(4)), ValueError, "x",
         "contains NaN or inf values"),
    Case("fit", "inf in y", lambda: fit(seq(8), with_nan(np.zeros(8), np.inf)), ValueError, "y",
         "contains NaN or inf values"),
    Case("fit", "NaN in x given to predict", lambda: compiled().predict(with_nan(seq()), verbose=0), ValueError, "x",
         "contains NaN or inf values"),
    Case("fit", "an empty x (0 samples)", lambda: fit(np.zeros((0, 5, 3), "float32"), np.zeros(0)), ValueError, "x",
         "is empty: it has 0 samples"),
    Case("fit", "x and y of different lengths", lambda: fit(seq(4), np.zeros(3)), ValueError, "y",
         "must have the same number of samples"),
    Case("fit", "x with 5 features for a model declared with 3", lambda: fit(seq(F=5), np.zeros(4)), ValueError, "x",
         "must have shape (B, T, 3)"),
    Case("fit", "ragged sequences (a list of unequal lists)", lambda: fit([[1.0, 2.0], [3.0]], [0.0, 1.0]), TypeError,
         "x", "rectangular array; pad ragged sequences first"),
    Case("fit", "a dict as x", lambda: fit({"x": seq()}, np.zeros(4)), TypeError, "x",
         "must be an array of numbers"),
    Case("fit", "strings as x", lambda: fit(np.array([["a", "b"]]), np.zeros(1)), TypeError, "x", "must hold numbers"),
    Case("fit", "labels out of range for sparse_categorical_crossentropy",
         lambda: fit(seq(), np.array([0, 1, 2, 3]), compiled("sparse_categorical_crossentropy", units=3)), ValueError,
         "sparse_categorical_crossentropy", "expects class labels in [0, 3)"),
    Case("fit", "unknown token ids (>= the Embedding's input_dim) in x",
         lambda: fit(np.array([[1, 2, 12]] * 4), np.zeros(4), token_model()), ValueError, "input_dim",
         "ids must lie in [0, 9]"),
    Case("fit", "labels 0/1/2 for binary_crossentropy",
         lambda: fit(seq(), np.array([0, 1, 2, 1]), compiled("binary_crossentropy")), ValueError, "y_true",
         "expects labels (y_true) in [0, 1]"),
    Case("fit", "y of shape (B, 2) for a model with 1 output (mse)", lambda: fit(seq(), np.zeros((4, 2))), ValueError,
         "y_true", "of the same shape"),
    Case("fit", "`batch_size=0`", lambda: fit(seq(), np.zeros(4), batch_size=0), ValueError, "batch_size",
         "expected a positive integer"),
    Case("fit", "`epochs=-1`", lambda: compiled().fit(seq(), np.zeros(4), epochs=-1), ValueError, "epochs",
         "expected an integer >= 0"),
    Case("fit", "`validation_split=1.5`", lambda: fit(seq(), np.zeros(4), validation_split=1.5), ValueError,
         "validation_split", "expected a float in [0, 1)"),
    Case("fit", "`shuffle='yes'`", lambda: fit(seq(), np.zeros(4), shuffle="yes"), ValueError, "shuffle",
         "expected True or False"),
    Case("fit", "`tbptt=0`", lambda: fit(seq(), np.zeros(4), tbptt=0), ValueError, "tbptt",
         "expected a positive integer (window length)"),
    Case("fit", "`max_bad_steps=0`", lambda: fit(seq(), np.zeros(4), max_bad_steps=0), ValueError, "max_bad_steps",
         "expected an integer >= 1"),
    Case("fit", "`checkpoint_every=0`", lambda: fit(seq(), np.zeros(4), checkpoint_dir=TMP / "ck", checkpoint_every=0),
         ValueError, "checkpoint_every", "expected a positive integer"),
    Case("fit", "`distributed='yes'`", lambda: fit(seq(), np.zeros(4), distributed="yes"), ValueError, "distributed",
         "expected True, False or None"),
    Case("fit", "`distributed=True` outside torchrun", lambda: fit(seq(), np.zeros(4), distributed=True), ValueError,
         "distributed=True", "processes started by torchrun"),
    Case("fit", "`resume=True` without a checkpoint_dir", lambda: fit(seq(), np.zeros(4), resume=True), ValueError,
         "resume=True", "needs `checkpoint_dir`"),
    Case("fit", "a generator whose batch 2 has 5 features where batch 0 had 3",
         lambda: compiled().fit(batches_then(seq(F=5)), steps_per_epoch=3, verbose=0), ValueError, "x",
         "batch 2 x must be float of shape (B, T, 3) like batch 0's"),
    Case("fit", "a generator whose batch 2 holds integers where batch 0 held floats",
         lambda: compiled().fit(batches_then(seq().astype("int64")), steps_per_epoch=3, verbose=0), ValueError, "x",
         "batch 2 x must be float of shape (B, T, 3) like batch 0's, got integer"),
    Case("fit", "a DataLoader whose items are single tensors, not (x, y) pairs",
         lambda: compiled().fit(torch.utils.data.DataLoader(torch.zeros(4, 5, 3), batch_size=2), verbose=0), TypeError,
         "x", "must be a tuple (x, y) or (x, y, sample_weight)"),
    Case("fit", "`validation_split` with a generator", lambda: compiled().fit(batches_then(seq()), validation_split=0.2),
         ValueError, "validation_split", "only supported for arrays"),
    Case("fit", "`sample_weight` with the wrong length", lambda: fit(seq(), np.zeros(4), sample_weight=np.ones(3)),
         ValueError, "sample_weight", "one weight per sample, shape (4,)"),
    Case("fit", "a negative `sample_weight`", lambda: fit(seq(), np.zeros(4), sample_weight=-np.ones(4)), ValueError,
         "sample_weight", "finite weights >= 0"),
    Case("fit", "a NaN `sample_weight`", lambda: fit(seq(), np.zeros(4), sample_weight=np.array([1.0, np.nan, 1.0, 1.0])),
         ValueError, "sample_weight", "contains NaN or inf values"),
    Case("fit", "`class_weight` with a key that is not a class",
         lambda: fit(seq(), np.array([0, 1, 2, 0]), compiled("sparse_categorical_crossentropy", units=3),
                     class_weight={5: 2.0}), ValueError, "class_weight", "keys must be in [0, 3)"),
    Case("fit", "`class_weight` with a key that is not an integer",
         lambda: fit(seq(), np.array([0, 1, 2, 0]), compiled("sparse_categorical_crossentropy", units=3),
                     class_weight={"cat": 2.0}), ValueError, "class_weight", "integer class indices as keys"),
    # datasets
    Case("datasets", "`load_sentiment(neutral_band=5)`", lambda: datasets.load_sentiment(neutral_band=5), ValueError,
         "neutral_band", "must be a number in [0, 4)"),
    Case("datasets", "`load_pydoc_text(valid_fraction=0.7)`", lambda: datasets.load_pydoc_text(valid_fraction=0.7),
         ValueError, "valid_fraction", "must be a float in (0, 0.5)"),
    Case("datasets", "`make_number_words(0)`", lambda: datasets.make_number_words(0), ValueError, "n",
         "must be a positive int"),
    Case("datasets", "`make_dates` with end before start",
         lambda: datasets.make_dates(5, start="2020-01-01", end="2019-01-01"), ValueError, "end",
         "must not be before `start`"),
    Case("datasets", "`number_to_words(-3)`", lambda: datasets.number_to_words(-3), ValueError, "n",
         "must be an int in [0, 10**12)"),
    # data helpers
    Case("data", "`pad_sequences(..., padding='middle')`", lambda: pad_sequences([[1, 2], [3]], padding="middle"),
         ValueError, "padding", "expected 'pre' or 'post'"),
    Case("data", "`pad_sequences(..., maxlen=-1)`", lambda: pad_sequences([[1, 2], [3]], maxlen=-1), ValueError,
         "maxlen", "expected a non-negative integer or None"),
    Case("data", "a str instead of a list of sequences", lambda: pad_sequences("abc"), ValueError, "sequences",
         "must be a list of sequences"),
    Case("data", "a ragged item (scalars and lists mixed)", lambda: pad_sequences([[1, [2, 3]]]), ValueError,
         "sequences", "expected a sequence of numbers or of equal-length vectors"),
    Case("data", "unknown characters for a CharVocab without unk", lambda: CharVocab("abc").encode("abz"), ValueError,
         "`text`", "not in the vocabulary"),
    Case("data", "`CharVocab.fit(5)`", lambda: CharVocab.fit(5), TypeError, "texts", "a str or an iterable of str"),
    Case("data", "ids outside a CharVocab", lambda: CharVocab("abc").decode([0, 7]), ValueError, "ids[1]",
         "outside the vocabulary [0, 3)"),
    Case("data", "`WordVocab(num_words=0)`", lambda: WordVocab(num_words=0), ValueError, "num_words",
         "must be None or a positive int"),
    Case("data", "`make_windows` on a series with NaN", lambda: make_windows(np.array([1.0, np.nan, 3.0, 4.0]), 2),
         ValueError, "series", "NaN or inf"),
    Case("data", "`make_windows(series, lookback=0)`", lambda: make_windows(np.arange(10.0), 0), ValueError,
         "lookback", "must be a positive int"),
    Case("data", "a series too short for one window", lambda: make_windows(np.arange(5.0), 10), ValueError, "series",
         "too short for one window"),
    # the torch.nn front
    Case("nn", "`rnnkit.nn.RNN(3, 4, nonlinearity='sigmoid')`", lambda: rnn_nn.RNN(3, 4, nonlinearity="sigmoid"),
         ValueError, "nonlinearity", "expected 'tanh' or 'relu'"),
    Case("nn", "`rnnkit.nn.LSTM(3, 4, dropout=2)`", lambda: rnn_nn.LSTM(3, 4, dropout=2), ValueError, "dropout",
         "expected a number in"),
    Case("nn", "integer input to rnnkit.nn.GRU", lambda: rnn_nn.GRU(3, 4)(torch.ones(5, 2, 3, dtype=torch.long)),
         TypeError, "input", "floating-point tensor"),
    Case("nn", "input with the wrong feature size", lambda: rnn_nn.GRU(3, 4)(torch.zeros(5, 2, 7)), ValueError,
         "input", "F = input_size = 3 features in its last axis"),
    Case("nn", "an LSTM `hx` that is one tensor, not (h_0, c_0)",
         lambda: rnn_nn.LSTM(3, 4)(torch.zeros(5, 2, 3), torch.zeros(1, 2, 4)), TypeError, "hx",
         "must be a tuple (h_0, c_0)"),
    # saving, loading, export
    Case("saving", "weights of a 50-word vocabulary loaded into a 40-word model", load_other_vocab, ValueError,
         "0.embeddings", "in the file and (40, 8) in the model"),
    Case("saving", "a file that is not an rnnkit model", load_foreign_file, ValueError, "notes.safetensors",
         "is not an rnnkit model file"),
    Case("export", "ONNX export of an LSTM with layer_norm", export_layer_norm, ValueError, "layer_norm",
         "cannot express"),
    # the command line
    Case("cli", "`rnnkit train --epochs 0`", lambda: cli("train", "--epochs", "0"), CLIExit, "--epochs",
         "expected a positive int"),
    Case("cli", "`rnnkit train nosuchtask`", lambda: cli("train", "nosuchtask"), CLIExit, "TASK", "invalid choice"),
    Case("cli", "`rnnkit train sentiment --horizon 3` (an option of another task)",
         lambda: cli("train", "sentiment", "--horizon", "3"), CLIExit, "--horizon", "applies to `rnnkit train sunspots | forecast`"),
    Case("cli", "`rnnkit train --nproc 0`", lambda: cli("train", "--nproc", "0"), CLIExit, "--nproc",
         "expected a positive int"),
    Case("cli", "`rnnkit train --cell lstmx`", lambda: cli("train", "--cell", "lstmx"), CLIExit, "--cell",
         "invalid choice"),
    Case("cli", "`rnnkit generate RUN --temperature -1`",
         lambda: cli("generate", "runs/charlm", "--temperature", "-1"), CLIExit, "--temperature",
         "expected a number >= 0"),
    Case("cli", "`rnnkit predict` on a directory with no model", lambda: cli("predict", str(TMP / "nothing")), CLIExit,
         "nothing", "no saved model at"),
]


def message_of(case: Case) -> str:
    with pytest.raises(Exception) as info:
        case.call()
    return str(info.value)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.bad}" for c in CASES])
def test_bad_input_gives_a_clear_error(case: Case) -> None:
    with pytest.raises(Exception) as info:
        case.call()
    assert type(info.value) is case.error or isinstance(info.value, case.error), (type(info.value), info.value)
    text = str(info.value)
    assert case.argument in text, f"the message does not name {case.argument!r}: {text}"
    assert case.expected in text, f"the message does not say {case.expected!r}: {text}"


def test_the_catalogue_is_large_and_broad() -> None:
    assert len(CASES) >= 40
    assert {c.area for c in CASES} >= {"layers", "fit", "datasets", "data", "nn", "cli"}


# -- the document -------------------------------------------------------------------------------

def _clean(text: str) -> str:
    """One line, no temporary paths, no pipes that would break the table."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = line.replace(str(TMP), "<tmp>")
    line = re.sub(r"\s+", " ", line)
    return line.replace("|", "\\|")


def render() -> str:
    import warnings

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, c in enumerate(CASES, 1):
            try:
                c.call()
                got = "(no error!)"
            except Exception as e:  # noqa: BLE001 - the table shows whatever happens
                kind = f"exit {e.code}" if isinstance(e, CLIExit) else type(e).__name__
                if type(e) is not c.error and isinstance(e, c.error) and not isinstance(e, CLIExit):
                    kind += f" (a {c.error.__name__})"
                got = f"{kind} | {_clean(str(e))}"
            rows.append(f"| {i} | {c.area} | {c.bad} | {got} |")
    head = [
        "# Bad inputs and the errors they give",
        "",
        "Every row is checked by `tests/test_bad_inputs.py` (one parametrized test over the same table):",
        "the exception type, and that the message names the argument and says what was expected. The",
        "messages below are the ones rnnkit gives, generated from that table with",
        "`python tests/test_bad_inputs.py > docs/bad_inputs.md` (a test keeps this file equal to it).",
        "The CLI prints its message on stderr and exits with code 2 (usage) or 1 (bad data or files).",
        "",
        "| # | Area | Bad input | Error | Message |",
        "|---|------|-----------|-------|---------|",
    ]
    return "\n".join(head + rows) + "\n"


def test_doc_is_the_table() -> None:
    """Same rows, same error types, and each message still names its argument and expectation.
    (Not verbatim, so rewording a message elsewhere does not break CI; regenerate the doc anyway.)"""
    stale = "docs/bad_inputs.md is stale: python tests/test_bad_inputs.py > docs/bad_inputs.md"
    rows = [line for line in DOC.read_text().splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == len(CASES), stale
    for i, (row, case) in enumerate(zip(rows, CASES), 1):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        kind = "exit" if case.error is CLIExit else case.error.__name__
        assert cells[:3] == [str(i), case.area, case.bad], (stale, row)
        assert cells[3].startswith(kind) or cells[3].endswith(f"(a {kind})"), (stale, row)
        message = cells[4].replace("\\|", "|")
        assert case.argument in message and case.expected in message, (stale, row)


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.stdout.write(render())
