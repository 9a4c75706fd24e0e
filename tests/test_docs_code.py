"""Every ```python block in README.md and docs/*.md runs, in order, one namespace per file.

A block whose first line is a comment starting ``# not run by the tests:`` is skipped; the rest of
that line, visible to readers too, gives the reason (a fragment of a larger program, a long run).
Blocks run in a fresh folder that holds the small files the README's own-data examples read.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = "# not run by the tests:"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of each ```python block."""
    blocks, cur, start = [], None, 0
    for n, line in enumerate(text.splitlines(), start=1):
        if cur is None and re.match(r"^\s*```python\s*$", line):
            cur, start = [], n + 1
        elif cur is not None and re.match(r"^\s*```\s*$", line):
            blocks.append((start, "\n".join(cur)))
            cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def _example_files(folder: Path) -> None:
    """The files the README's own-data examples name."""
    from rnnkit.datasets import load_sentiment, load_sunspots

    d = load_sentiment()
    rows = np.concatenate([np.flatnonzero(d.y_train == 1)[:40], np.flatnonzero(d.y_train == 0)[:40]])
    with open(folder / "reviews.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "stars"])
        writer.writerows([d.x_train[i], "5" if d.y_train[i] else "1"] for i in rows)
    s = load_sunspots()
    with open(folder / "sales.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["day", "units"])
        writer.writerows([i, float(v)] for i, v in enumerate(s.train))


def test_the_block_reader_finds_blocks_and_skips():
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\n# not run by the tests: long\n```\n"
    assert python_blocks(text) == [(3, "a = 1"), (9, "# not run by the tests: long")]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page.read_text())
    if not blocks:
        pytest.skip(f"{page.name} has no python block")
    _example_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for line, code in blocks:
        first = code.lstrip().splitlines()[0] if code.strip() else ""
        if first.startswith(SKIP):
            assert first[len(SKIP):].strip(), f"{page.name}:{line}: a skipped block must say why"
            continue
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as e:  # the block's line number leads the report
            raise AssertionError(f"{page.name}, the python block at line {line} failed: {type(e).__name__}: {e}") from e
        ran += 1
    assert os.getcwd() == str(tmp_path)
