"""Checking ``--out`` before any work. Imports neither torch nor the rest of rnnkit, so that the
``rnnkit`` command can refuse a bad output directory before it pays for ``import torch``."""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["check_out_dir"]


def check_out_dir(path: Path) -> Path:
    """``path`` can hold a run: a writable directory, or creatable in one. Checked before any work; writes nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a file; expected a directory (existing or new)")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {str(path)!r} lies under {str(parent)!r}, which is a file, not a directory")
    try:  # os.access says yes to root everywhere; creating (and at once removing) a file is the real test
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as e:
        raise ValueError(f"--out {str(path)!r}: cannot write in {str(parent)!r} ({e.strerror}); expected a "
                         "writable directory") from None
    return path
