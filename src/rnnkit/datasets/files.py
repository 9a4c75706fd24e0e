"""Your own data: CSV, TSV, JSONL or plain-text files, read and checked row by row.

One reader per kind of problem; each returns plain arrays and lists, ready for the
models in ``rnnkit.models`` (``rnnkit train <kind> --data FILE`` uses the same readers):

=======================  ==================================  =========================================
reader                   columns (CSV/TSV header, JSONL keys)  plain text (``.txt``), one row per line
=======================  ==================================  =========================================
``read_text_classes``    a text and a label                  ``label text ...`` (fastText's
                                                             ``__label__`` prefix is dropped)
``read_series_classes``  a label, every other column a step  ``label v1 v2 ...`` (spaces, tabs or
                         (JSONL: a list of values)           commas: UCR's .tsv); ``.ts`` files too
``read_series``          one numeric column                  one number per line
``read_tagged``          tokens and tags, space-separated    ``token tag`` per line, a blank line
                         (JSONL: lists)                      between sentences (CoNLL)
``read_pairs``           a source and a target               ``source<TAB>target``
``read_corpus``          a text column, rows joined by \\n   the whole file
=======================  ==================================  =========================================

The format comes from the extension (``.csv``, ``.tsv``/``.tab``, ``.jsonl``/``.ndjson``,
``.txt``; any of them may end in ``.gz``) unless ``format`` names it. CSV and TSV files
start with a header row. Every problem raises a ValueError of one line that names the
file, the line and what was expected, e.g. ``reviews.csv, line 7: column 'label' is
empty; expected a class label``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from ._files import PathLike, read_text_file

__all__ = [
    "FORMATS", "Corpus", "SeriesClasses", "Series", "Table", "Tagged", "TextClasses", "TextPairs",
    "file_format", "read_corpus", "read_pairs", "read_series", "read_series_classes", "read_table",
    "read_tagged", "read_text_classes",
]

#: The formats a file may have, and the extensions that name them.
FORMATS = {"csv": (".csv",), "tsv": (".tsv", ".tab"), "jsonl": (".jsonl", ".ndjson"), "text": (".txt", ".text")}


class Table(NamedTuple):
    """A CSV, TSV or JSONL file: one dict per row, and the file line each row starts on."""

    source: str  #: the file name, for messages
    columns: tuple[str, ...]  #: the header (CSV/TSV) or every key seen (JSONL), in order
    rows: list[dict[str, Any]]  #: CSV/TSV values are str; JSONL values as JSON gives them
    lines: list[int]  #: 1-based line of each row


class TextClasses(NamedTuple):
    """Texts and their classes."""

    texts: list[str]  #: N texts
    y: np.ndarray  #: (N,) int64 indices into ``classes``
    classes: tuple[str, ...]  #: sorted class labels
    lines: list[int]  #: the file line of each row


class SeriesClasses(NamedTuple):
    """Equal-length series and their classes."""

    x: np.ndarray  #: (N, T, F) float32
    y: np.ndarray  #: (N,) int64 indices into ``classes``
    classes: tuple[str, ...]
    lines: list[int]


class Series(NamedTuple):
    """One numeric column, in file order."""

    values: np.ndarray  #: (N,) float32
    name: str  #: the column's name ("value" for a plain-text file)


class Tagged(NamedTuple):
    """Sentences of tokens, one tag per token."""

    tokens: list[list[str]]
    tags: list[list[str]]
    lines: list[int]  #: the line each sentence starts on


class TextPairs(NamedTuple):
    """Source and target strings."""

    sources: list[str]
    targets: list[str]
    lines: list[int]


class Corpus(NamedTuple):
    """A text corpus."""

    text: str
    source: str


def _problem(source: str, line: Optional[int], message: str) -> ValueError:
    return ValueError(f"{source}, line {line}: {message}" if line is not None else f"{source}: {message}")


def file_format(path: PathLike, format: Optional[str] = None) -> str:
    """The format of ``path``: ``format`` if given, else the one its extension names."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"`format` must be one of {sorted(FORMATS)}, got {format!r}")
        return format
    name = Path(path).name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    for fmt, exts in FORMATS.items():
        if name.endswith(exts):
            return fmt
    known = ", ".join(e for exts in FORMATS.values() for e in exts)
    raise ValueError(f"{Path(path).name}: cannot tell the format from the extension; expected one of {known} "
                     "(optionally .gz), or name it with `format` (--format)")


def _read(path: PathLike) -> tuple[str, str]:
    text = read_text_file(path)
    if not text.strip():
        raise _problem(Path(path).name, None, "the file is empty")
    return text, Path(path).name


def read_table(path: PathLike, format: Optional[str] = None) -> Table:
    """A CSV/TSV file with a header row, or a JSONL file of one object per line, as rows of dicts."""
    fmt = file_format(path, format)
    if fmt == "text":
        raise ValueError(f"{Path(path).name}: a plain-text file has no columns; expected CSV, TSV or JSONL")
    text, source = _read(path)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    if fmt == "jsonl":
        columns: dict[str, None] = {}
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise _problem(source, lineno, f"not valid JSON ({e.msg}); expected one object per line") from None
            if not isinstance(row, dict):
                raise _problem(source, lineno, f"expected a JSON object {{...}}, got {type(row).__name__}")
            columns.update(dict.fromkeys(row))
            rows.append(row)
            lines.append(lineno)
        return Table(source, tuple(columns), rows, lines)
    reader = csv.reader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
    header: Optional[list[str]] = None
    for fields in reader:
        lineno = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if header is None:
            header = [f.strip() for f in fields]
            if len(set(header)) != len(header):
                raise _problem(source, lineno, f"the header names a column twice: {header}")
            continue
        if len(fields) != len(header):
            raise _problem(source, lineno, f"{len(fields)} fields; expected {len(header)}, one per header column")
        rows.append(dict(zip(header, fields)))
        lines.append(lineno)
    return Table(source, tuple(header or ()), rows, lines)


def _require(table: Table, *columns: str) -> None:
    for column in columns:
        if column not in table.columns:
            raise _problem(table.source, 1 if table.columns else None,
                           f"no column {column!r}; the file has {list(table.columns)} "
                           "(choose one with the --...-column options)")
    if not table.rows:
        raise _problem(table.source, None, "no rows after the header")


def _cell(table: Table, i: int, column: str, what: str) -> str:
    value = table.rows[i].get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _problem(table.source, table.lines[i], f"column {column!r} is empty; expected {what}")
    return value.strip() if isinstance(value, str) else str(value)


def _number(text: Any, source: str, line: int, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise _problem(source, line, f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _problem(source, line, f"{what}: {text!r} is not a finite number")
    return value


def _classes(labels: list[str], lines: list[int], source: str,
             known: Optional[Sequence[str]]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class ids for ``labels``: into ``known`` if given (a test file), else into the sorted distinct labels."""
    if known is None:
        classes = tuple(sorted(set(labels)))
        if len(classes) < 2:
            raise _problem(source, None, f"every row has the class {classes[0]!r}; a classifier needs at least two "
                                         "classes")
    else:
        classes = tuple(known)
    index = {c: k for k, c in enumerate(classes)}
    for label, line in zip(labels, lines):
        if label not in index:
            raise _problem(source, line, f"class {label!r} is not among the training classes {list(classes)}")
    return np.array([index[l] for l in labels], dtype=np.int64), classes


def read_text_classes(path: PathLike, text_column: str = "text", label_column: str = "label",
                      format: Optional[str] = None, classes: Optional[Sequence[str]] = None) -> TextClasses:
    """Texts and their labels (at least two classes). Plain text: ``label text ...`` per line.

    ``classes``: the class list to map labels onto (a test file: a label outside it is an error).
    """
    fmt = file_format(path, format)
    texts, labels, lines = [], [], []
    if fmt == "text":
        text, source = _read(path)
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            label, _, rest = line.strip().partition(" ") if "\t" not in line else line.strip().partition("\t")
            if not rest.strip():
                raise _problem(source, lineno, "expected a label, then a space or tab, then the text")
            texts.append(rest.strip())
            labels.append(label.removeprefix("__label__"))
            lines.append(lineno)
    else:
        table = read_table(path, fmt)
        source = table.source
        _require(table, text_column, label_column)
        for i in range(len(table.rows)):
            texts.append(_cell(table, i, text_column, "a text"))
            labels.append(_cell(table, i, label_column, "a class label"))
        lines = table.lines
    y, names = _classes(labels, lines, source, classes)
    return TextClasses(texts, y, names, lines)


def _series_row(values: Any, source: str, line: int) -> list[float]:
    """One series from a list of numbers, a list of per-step lists (multivariate), or a string of numbers."""
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not isinstance(values, list) or not values:
        raise _problem(source, line, f"expected a non-empty list of numbers, got {values!r}")
    return [_number(v, source, line, "value") for v in values]


def read_series_classes(path: PathLike, label_column: str = "label", series_column: str = "series",
                        format: Optional[str] = None, classes: Optional[Sequence[str]] = None) -> SeriesClasses:
    """Labelled series of one length T; returns x (N, T, F), F = 1 except for ``.ts`` and JSONL lists of lists.

    CSV/TSV: ``label_column`` and, in order, every other column as one time step. A
    ``.tsv`` without a header (its first row all numbers after the label, as UCR's files)
    is read as plain text. JSONL: ``series_column`` holds a list of numbers, or a list of
    T lists of F numbers. Plain text: the label, then the values. ``classes`` as in
    ``read_text_classes``.
    """
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(".ts"):
        from .ucr import read_ts

        data = read_ts(path, classes=classes)
        if data.y is None or not data.classes:
            raise _problem(Path(path).name, None, "the .ts file has no class labels (@classLabel true ...)")
        return SeriesClasses(data.x, data.y, data.classes, list(range(1, len(data.y) + 1)))
    fmt = file_format(path, format)
    if fmt == "tsv":
        first = read_text_file(path).lstrip("\n").split("\n", 1)[0].split("\t")
        try:
            [float(v) for v in first[1:]]
            fmt = "text"  # headerless, UCR 2018 style
        except ValueError:
            pass
    rows: list[list[list[float]]] = []  # N x T x F
    labels: list[str] = []
    lines: list[int] = []
    if fmt == "text":
        text, source = _read(path)
        for lineno, line in enumerate(text.split("\n"), start=1):
            fields = line.replace(",", " ").split()
            if not fields:
                continue
            if len(fields) < 2:
                raise _problem(source, lineno, "expected a label, then the series' values")
            labels.append(fields[0])
            rows.append([[v] for v in _series_row(fields[1:], source, lineno)])
            lines.append(lineno)
    elif fmt == "jsonl":
        table = read_table(path, fmt)
        source = table.source
        _require(table, label_column, series_column)
        for i, row in enumerate(table.rows):
            labels.append(_cell(table, i, label_column, "a class label"))
            values = row[series_column]
            if isinstance(values, list) and values and isinstance(values[0], list):
                steps = [_series_row(step, source, table.lines[i]) for step in values]
                if len({len(s) for s in steps}) != 1:
                    raise _problem(source, table.lines[i], "the steps of the series hold different numbers of features")
                rows.append(steps)
            else:
                rows.append([[v] for v in _series_row(values, source, table.lines[i])])
        lines = table.lines
    else:
        table = read_table(path, fmt)
        source = table.source
        _require(table, label_column)
        steps = [c for c in table.columns if c != label_column]
        if not steps:
            raise _problem(source, 1, f"no value columns beside {label_column!r}; expected one column per time step")
        for i, row in enumerate(table.rows):
            labels.append(_cell(table, i, label_column, "a class label"))
            rows.append([[_number(row[c], source, table.lines[i], f"column {c!r}")] for c in steps])
        lines = table.lines
    shape = (len(rows[0]), len(rows[0][0])) if rows else (0, 0)
    for row, line in zip(rows, lines):
        if (len(row), len(row[0])) != shape:
            raise _problem(source, line, f"a series of {len(row)} steps x {len(row[0])} features; expected "
                                         f"{shape[0]} x {shape[1]} like line {lines[0]} (all series need one length)")
    y, names = _classes(labels, lines, source, classes)
    return SeriesClasses(np.asarray(rows, dtype=np.float32), y, names, lines)


def read_series(path: PathLike, column: Optional[str] = None, format: Optional[str] = None) -> Series:
    """One numeric column (default: the last one) in file order. Plain text: one number per line."""
    fmt = file_format(path, format)
    if fmt == "text":
        text, source = _read(path)
        values = [_number(line.strip(), source, n, "value") for n, line in enumerate(text.split("\n"), start=1)
                  if line.strip()]
        return Series(np.asarray(values, dtype=np.float32), "value")
    table = read_table(path, fmt)
    column = column if column is not None else (table.columns[-1] if table.columns else "")
    _require(table, column)
    values = [_number(_cell(table, i, column, "a number"), table.source, table.lines[i], f"column {column!r}")
              for i in range(len(table.rows))]
    return Series(np.asarray(values, dtype=np.float32), column)


def _token_list(value: Any, source: str, line: int, column: str) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return value.split()
    raise _problem(source, line, f"column {column!r}: expected space-separated tokens or a list, got {value!r}")


def read_tagged(path: PathLike, text_column: str = "tokens", tags_column: str = "tags",
                format: Optional[str] = None) -> Tagged:
    """Sentences of tokens with one tag each. Plain text: ``token tag`` per line, sentences split by blank lines."""
    fmt = file_format(path, format)
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[int] = []
    if fmt == "text":
        text, source = _read(path)
        cur_tokens: list[str] = []
        cur_tags: list[str] = []
        for lineno, line in enumerate([*text.split("\n"), ""], start=1):
            fields = line.split()
            if not fields:
                if cur_tokens:
                    tokens.append(cur_tokens)
                    tags.append(cur_tags)
                cur_tokens, cur_tags = [], []
                continue
            if len(fields) != 2:
                raise _problem(source, lineno, f"{len(fields)} fields; expected a token and its tag")
            if not cur_tokens:
                lines.append(lineno)
            cur_tokens.append(fields[0])
            cur_tags.append(fields[1])
    else:
        table = read_table(path, fmt)
        source = table.source
        _require(table, text_column, tags_column)
        for i, row in enumerate(table.rows):
            _cell(table, i, text_column, "tokens")
            _cell(table, i, tags_column, "tags")
            words = _token_list(row[text_column], source, table.lines[i], text_column)
            marks = _token_list(row[tags_column], source, table.lines[i], tags_column)
            if len(words) != len(marks):
                raise _problem(source, table.lines[i], f"{len(words)} tokens but {len(marks)} tags; expected one "
                                                       "tag per token")
            tokens.append(words)
            tags.append(marks)
        lines = table.lines
    if not tokens:
        raise _problem(source, None, "no sentences")
    if len({t for seq in tags for t in seq}) < 2:
        raise _problem(source, None, f"every token has the tag {tags[0][0]!r}; a tagger needs at least two tags")
    return Tagged(tokens, tags, lines)


def read_pairs(path: PathLike, source_column: str = "source", target_column: str = "target",
               format: Optional[str] = None) -> TextPairs:
    """Source -> target strings. Plain text: ``source<TAB>target`` per line."""
    fmt = file_format(path, format)
    sources, targets, lines = [], [], []
    if fmt == "text":
        text, source = _read(path)
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            src, tab, tgt = line.partition("\t")
            if not tab or not src.strip() or not tgt.strip():
                raise _problem(source, lineno, "expected a source, a tab, then a target")
            sources.append(src.strip())
            targets.append(tgt.strip())
            lines.append(lineno)
    else:
        table = read_table(path, fmt)
        _require(table, source_column, target_column)
        for i in range(len(table.rows)):
            sources.append(_cell(table, i, source_column, "a source text"))
            targets.append(_cell(table, i, target_column, "a target text"))
        lines = table.lines
    return TextPairs(sources, targets, lines)


def read_corpus(path: PathLike, text_column: str = "text", format: Optional[str] = None) -> Corpus:
    """A text corpus: a plain-text file as it is, or a column's rows joined by newlines."""
    fmt = file_format(path, format)
    if fmt == "text":
        text, source = _read(path)
        return Corpus(text, source)
    table = read_table(path, fmt)
    _require(table, text_column)
    return Corpus("\n".join(_cell(table, i, text_column, "a text") for i in range(len(table.rows))) + "\n",
                  table.source)
