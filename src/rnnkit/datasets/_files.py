"""Reading the bundled files and the hash-based splits shared by the loaders."""

from __future__ import annotations

import gzip
import io
import zlib
from importlib import resources
from pathlib import Path
from typing import Iterable, Union

import numpy as np

PathLike = Union[str, Path]


def bundled_text(name: str) -> str:
    """The text of ``rnnkit/datasets/data/<name>`` (a ``.gz`` file is decompressed)."""
    ref = resources.files("rnnkit.datasets").joinpath("data")
    for part in name.split("/"):
        ref = ref.joinpath(part)
    if not ref.is_file():
        raise FileNotFoundError(
            f"bundled data file {name!r} is missing from the installed rnnkit; "
            "reinstall rnnkit (the wheel must carry rnnkit/datasets/data/)"
        )
    raw = ref.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def read_text_file(path: PathLike) -> str:
    """A user's file as text; ``*.gz`` files are decompressed on the fly."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"`path` {str(p)!r} is not a file")
    raw = p.read_bytes()
    if p.suffix == ".gz":
        raw = gzip.decompress(raw)
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", newline=None).read()


def in_test_split(keys: Iterable[str], modulus: int) -> np.ndarray:
    """Boolean mask, True where ``crc32(key) % modulus == 0``.

    A hash of each example's key (not a random generator) decides its split, so the
    split is the same on every machine and numpy version, and an example keeps its
    split when others are added or removed.
    """
    return np.array([zlib.crc32(k.encode("utf-8")) % modulus == 0 for k in keys], dtype=bool)
