"""Time-series classification: readers for the UCR/UEA archive formats, and bundled sets.

Two formats are read, plain or gzip-compressed (``*.gz``):

- ``.ts`` (sktime/aeon): ``#`` comments, ``@`` header tags (``@problemName``,
  ``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``,
  ``@classLabel true <labels...>``, ``@targetLabel``), then ``@data`` and one series per
  line: the F dimensions separated by ``:``, values by ``,``, the label last.
  ``?`` marks a missing value (read as NaN).
- ``.tsv`` (UCR 2018): one series per line, the label first, then the values,
  tab-separated; ``NaN`` values are kept.

Only equal-length series without time stamps are read; anything else raises a
ValueError that names the file, the line and the problem.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from ._files import PathLike, bundled_text, read_text_file

__all__ = ["TSData", "UCRData", "read_ts", "read_ucr_tsv", "load_ucr", "UCR_BUNDLED"]

_UCR_ARCHIVE = (
    "Dau, H. A., Bagnall, A., Kamgar, K., Yeh, C.-C. M., Zhu, Y., Gharghabi, S., "
    "Ratanamahatana, C. A., Keogh, E. (2019). The UCR time series archive. "
    "IEEE/CAA Journal of Automatica Sinica 6(6), 1293-1305."
)
_UEA_ARCHIVE = (
    "Bagnall, A., Dau, H. A., Lines, J., Flynn, M., Large, J., Bostrom, A., Southam, P., "
    "Keogh, E. (2018). The UEA multivariate time series classification archive, 2018. "
    "arXiv:1811.00075."
)

#: The bundled sets: name -> (description, citations). Files are the copies shipped in
#: aeon 1.6.0 (``aeon/datasets/data/<name>/``), gzip-compressed, otherwise unchanged.
UCR_BUNDLED: dict[str, tuple[str, tuple[str, ...]]] = {
    "ItalyPowerDemand": (
        "univariate, 2 classes (Oct-Mar vs Apr-Sep days of Italian power demand), "
        "T=24, 67 train / 1029 test",
        (
            "Keogh, E., Wei, L., Xi, X., Lonardi, S., Shieh, J., Sirowy, S. (2006). Intelligent icons: "
            "integrating lite-weight data mining and visualization into GUI operating systems. ICDM 2006.",
            _UCR_ARCHIVE,
        ),
    ),
    "GunPoint": (
        "univariate, 2 classes (gun-draw vs point, hand x-position), T=150, 50 train / 150 test",
        (
            "Ratanamahatana, C. A., Keogh, E. (2005). Three myths about dynamic time warping data "
            "mining. SIAM International Conference on Data Mining (SDM 2005).",
            _UCR_ARCHIVE,
        ),
    ),
    "BasicMotions": (
        "multivariate (F=6: 3-D accelerometer + 3-D gyroscope), 4 classes (standing, running, "
        "walking, badminton), T=100, 40 train / 40 test",
        (_UEA_ARCHIVE,),
    ),
}


class TSData(NamedTuple):
    """One archive file."""

    x: np.ndarray  #: (N, T, F) float32 (or the ``dtype`` asked for)
    y: Optional[np.ndarray]  #: (N,) int64 indices into ``classes``; float32 targets; or None (no labels)
    classes: tuple[str, ...]  #: class labels, ``y == i`` means ``classes[i]``; () if not a classification file
    name: str  #: @problemName, or the file name without _TRAIN/_TEST and extensions


class UCRData(NamedTuple):
    """A train/test pair of archive files sharing one class list."""

    x_train: np.ndarray  #: (N_train, T, F)
    y_train: np.ndarray  #: (N_train,) int64 indices into ``classes``
    x_test: np.ndarray  #: (N_test, T, F)
    y_test: np.ndarray  #: (N_test,) int64
    classes: tuple[str, ...]
    name: str


def _problem(source: str, lineno: int, message: str) -> ValueError:
    return ValueError(f"{source}, line {lineno}: {message}")


def _stem(path: PathLike) -> str:
    name = Path(path).name
    for ext in (".gz", ".ts", ".tsv", ".txt"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    for tail in ("_TRAIN", "_TEST"):
        if name.upper().endswith(tail):
            name = name[: -len(tail)]
    return name


def _parse_bool(value: str, tag: str, source: str, lineno: int) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise _problem(source, lineno, f"@{tag} must be followed by true or false, got {value.strip()!r}")
    return v == "true"


def _parse_int(value: str, tag: str, source: str, lineno: int) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise _problem(source, lineno, f"@{tag} must be followed by a positive integer, got {value.strip()!r}")
    return n


def _values(text: str, source: str, lineno: int, what: str) -> list[float]:
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok == "?":
            out.append(math.nan)
            continue
        try:
            out.append(float(tok))
        except ValueError:
            raise _problem(source, lineno, f"{what}: {tok!r} is not a number") from None
    return out


def _class_index(label: str, index: dict[str, int], source: str, lineno: int) -> int:
    try:
        return index[label]
    except KeyError:
        raise _problem(
            source, lineno, f"class label {label!r} is not among the declared classes {tuple(index)}"
        ) from None


def _parse_ts(text: str, source: str, classes: Optional[Sequence[str]], dtype: np.dtype) -> TSData:
    name = ""
    header_classes: Optional[list[str]] = None
    has_class = has_target = False
    dims: Optional[int] = None
    length: Optional[int] = None
    seen_data = False
    series: list[list[list[float]]] = []  # N x (F x T)
    labels: list[str] = []
    label_lines: list[int] = []

    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not seen_data:
            if not line.startswith("@"):
                raise _problem(source, lineno, f"expected a header tag (@...) or @data before the series, got {line[:40]!r}")
            written, _, rest = line[1:].replace("\t", " ").partition(" ")
            tag = written.lower()  # messages quote the tag as the file writes it
            if tag == "data":
                seen_data = True
            elif tag == "problemname":
                name = rest.strip()
            elif tag == "timestamps":
                if _parse_bool(rest, written, source, lineno):
                    raise _problem(source, lineno, "series with time stamps (@timeStamps true) are not supported")
            elif tag == "univariate":
                if _parse_bool(rest, written, source, lineno) and dims is None:
                    dims = 1
            elif tag == "dimensions":
                dims = _parse_int(rest, written, source, lineno)
            elif tag == "equallength":
                _parse_bool(rest, written, source, lineno)  # checked on the data itself below
            elif tag == "serieslength":
                length = _parse_int(rest, written, source, lineno)
            elif tag == "classlabel":
                flag, *names = rest.split() or [""]
                has_class = _parse_bool(flag, written, source, lineno)
                if has_class:
                    if not names:
                        raise _problem(source, lineno, "@classLabel true must list the class labels")
                    if len(set(names)) != len(names):
                        raise _problem(source, lineno, f"@classLabel lists a label twice: {names}")
                    header_classes = names
            elif tag == "targetlabel":
                has_target = _parse_bool(rest, written, source, lineno)
            # other tags (@missing, and any a tool adds) carry nothing we need
            continue

        if line.startswith("@"):
            raise _problem(source, lineno, f"header tag {line.split()[0]!r} after @data")
        fields = line.split(":")
        if has_class or has_target:
            if len(fields) < 2:
                raise _problem(source, lineno, "expected the values, then ':' and the label")
            labels.append(fields[-1].strip())
            label_lines.append(lineno)
            fields = fields[:-1]
        if dims is None:
            dims = len(fields)
        if len(fields) != dims:
            raise _problem(source, lineno, f"found {len(fields)} dimensions, expected {dims}")
        row = [_values(f, source, lineno, f"dimension {d}") for d, f in enumerate(fields)]
        lengths = {len(r) for r in row}
        if length is None:
            length = len(row[0])
        if lengths != {length}:
            raise _problem(
                source,
                lineno,
                f"series length {sorted(lengths)} differs from {length}; only equal-length series are "
                "supported (pad them, e.g. with '?', to one length)",
            )
        series.append(row)

    if not seen_data:
        raise ValueError(f"{source}: no @data line; is this a .ts file?")
    if not series:
        raise ValueError(f"{source}: no series after @data")

    x = np.asarray(series, dtype=dtype).transpose(0, 2, 1)  # (N, F, T) -> (N, T, F)
    y: Optional[np.ndarray] = None
    out_classes: tuple[str, ...] = ()
    if has_class:
        out_classes = tuple(classes) if classes is not None else tuple(header_classes or ())
        index = {c: i for i, c in enumerate(out_classes)}
        y = np.array([_class_index(l, index, source, n) for l, n in zip(labels, label_lines)], dtype=np.int64)
    elif has_target:
        y = np.array([_values(l, source, n, "target")[0] for l, n in zip(labels, label_lines)], dtype=np.float32)
    return TSData(x, y, out_classes, name or _stem(source))


def read_ts(path: PathLike, classes: Optional[Sequence[str]] = None, dtype: "np.typing.DTypeLike" = np.float32) -> TSData:
    """Read an equal-length ``.ts`` file (sktime/aeon format; ``.ts.gz`` too).

    Args:
        path: the file.
        classes: the class order to use instead of the file's ``@classLabel`` list
            (to index a test file like its train file).
        dtype: float dtype of ``x``.

    Returns:
        ``TSData(x, y, classes, name)``: ``x`` (N, T, F); ``y`` (N,) int64 class
        indices in ``@classLabel`` order, float32 targets for ``@targetLabel true``,
        or None for unlabelled files.

    Raises:
        ValueError: naming the file and line, for a malformed header, a header tag
            after ``@data``, a non-number, a dimension count or series length that
            differs from the others, time stamps, or an undeclared class label.
    """
    return _parse_ts(read_text_file(path), str(path), classes, np.dtype(dtype))


def _norm_label(label: str) -> str:
    # UCR's older files write class 1 as "1.0000000e+00"; the 2018 files write "1".
    try:
        v = float(label)
    except ValueError:
        return label
    return str(int(v)) if v.is_integer() else label


def _label_order(labels: Sequence[str]) -> tuple[str, ...]:
    unique = set(labels)
    try:
        return tuple(sorted(unique, key=float))
    except ValueError:
        return tuple(sorted(unique))


def _parse_tsv(text: str, source: str, classes: Optional[Sequence[str]], dtype: np.dtype, delimiter: str) -> TSData:
    rows: list[list[float]] = []
    labels: list[str] = []
    lines: list[int] = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        line = raw.rstrip()  # keep a leading delimiter: it means an empty label
        fields = line.split(delimiter)
        if len(fields) < 2:
            raise _problem(source, lineno, f"expected a label and at least one value separated by {delimiter!r}")
        label = _norm_label(fields[0].strip())
        if not label:
            raise _problem(source, lineno, "empty class label in the first column")
        values = []
        for tok in fields[1:]:
            try:
                values.append(float(tok))
            except ValueError:
                raise _problem(source, lineno, f"{tok.strip()!r} is not a number") from None
        if rows and len(values) != len(rows[0]):
            raise _problem(
                source,
                lineno,
                f"series length {len(values)} differs from {len(rows[0])} on line {lines[0]}; "
                "only equal-length series are supported (pad with NaN)",
            )
        rows.append(values)
        labels.append(label)
        lines.append(lineno)
    if not rows:
        raise ValueError(f"{source}: no series found")
    out_classes = tuple(classes) if classes is not None else _label_order(labels)
    index = {c: i for i, c in enumerate(out_classes)}
    y = np.array([_class_index(l, index, source, n) for l, n in zip(labels, lines)], dtype=np.int64)
    x = np.asarray(rows, dtype=dtype)[:, :, None]  # (N, T) -> (N, T, 1)
    return TSData(x, y, out_classes, _stem(source))


def read_ucr_tsv(
    path: PathLike,
    classes: Optional[Sequence[str]] = None,
    dtype: "np.typing.DTypeLike" = np.float32,
    delimiter: str = "\t",
) -> TSData:
    """Read a univariate UCR 2018 ``.tsv`` file (label first, then the values; ``.tsv.gz`` too).

    Returns ``TSData(x, y, classes, name)`` with ``x`` (N, T, 1), ``y`` (N,) int64.
    Without ``classes``, labels are ordered numerically when all are numbers
    (``"-1" < "1" < "2"``), else alphabetically; integral labels such as
    ``"1.0000000e+00"`` are written ``"1"``. Raises ValueError naming the file and
    line for a non-number, an empty label, or a series whose length differs.
    """
    if not isinstance(delimiter, str) or not delimiter:
        raise ValueError(f"`delimiter` must be a non-empty str, got {delimiter!r}")
    return _parse_tsv(read_text_file(path), str(path), classes, np.dtype(dtype), delimiter)


def _read_any(path: Path, classes: Optional[Sequence[str]], dtype: np.dtype) -> TSData:
    base = path.name[:-3] if path.name.endswith(".gz") else path.name
    reader = read_ts if base.endswith(".ts") else read_ucr_tsv
    return reader(path, classes=classes, dtype=dtype)


def _bundled_name(name: str) -> str:
    for known in UCR_BUNDLED:
        if known.lower() == name.lower():
            return known
    raise ValueError(
        f"`name` must be one of the bundled UCR/UEA sets {tuple(UCR_BUNDLED)}, got {name!r}; "
        "pass root=<folder> to load any other archive set from disk"
    )


def load_ucr(name: str, root: Optional[PathLike] = None, dtype: "np.typing.DTypeLike" = np.float32) -> UCRData:
    """A UCR/UEA classification set with its official train/test split.

    Bundled (``root=None``; see ``UCR_BUNDLED`` for the citations):

    - ``ItalyPowerDemand``: x_train (67, 24, 1), x_test (1029, 24, 1), classes ("1", "2").
    - ``GunPoint``: x_train (50, 150, 1), x_test (150, 150, 1), classes ("1", "2").
    - ``BasicMotions``: x_train (40, 100, 6), x_test (40, 100, 6), classes
      ("Standing", "Running", "Walking", "Badminton").

    The files are the copies shipped in aeon 1.6.0 (BSD-3-Clause package); the
    archives give no licence of their own and ask users to cite them.

    With ``root``, any archive set on disk: the first of
    ``root/<name>/<name>_TRAIN.<ext>`` and ``root/<name>_TRAIN.<ext>`` (``<ext>`` one
    of ``ts``, ``tsv``, ``ts.gz``, ``tsv.gz``) and its ``_TEST`` twin. The test file is
    indexed with the train file's classes.

    Returns ``UCRData(x_train, y_train, x_test, y_test, classes, name)``, ``x`` of shape
    (N, T, F) float32, ``y`` (N,) int64 indices into ``classes``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty str, got {name!r}")
    dtype = np.dtype(dtype)
    if root is None:
        name = _bundled_name(name)
        src = f"rnnkit/datasets/data/ucr/{name}_TRAIN.ts.gz"
        train = _parse_ts(bundled_text(f"ucr/{name}_TRAIN.ts.gz"), src, None, dtype)
        test = _parse_ts(bundled_text(f"ucr/{name}_TEST.ts.gz"), src.replace("_TRAIN", "_TEST"), train.classes, dtype)
    else:
        root = Path(root)
        tried = []
        for folder in (root / name, root):
            for ext in ("ts", "tsv", "ts.gz", "tsv.gz"):
                p = folder / f"{name}_TRAIN.{ext}"
                tried.append(str(p))
                if p.is_file():
                    break
            else:
                continue
            break
        else:
            raise FileNotFoundError(f"no train file for {name!r} under `root`; looked for {tried}")
        test_path = p.with_name(p.name.replace("_TRAIN.", "_TEST."))
        if not test_path.is_file():
            raise FileNotFoundError(f"found {p} but not its test file {test_path}")
        train = _read_any(p, None, dtype)
        if train.y is None or not train.classes:
            raise ValueError(f"{p}: not a classification file (no class labels)")
        test = _read_any(test_path, train.classes, dtype)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise ValueError(f"{name}: train series have shape {train.x.shape[1:]} but test series {test.x.shape[1:]}")
    return UCRData(train.x, train.y, test.x, test.y, train.classes, train.name or name)
