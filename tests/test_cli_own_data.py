"""`rnnkit train <kind> --data FILE`: every kind on small CSV, TSV, JSONL and text files, `predict` on
the result, and every bad file refused before training with a one-line error, nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.datasets import load_sentiment, load_sunspots, load_ucr, make_number_words
from rnnkit.datasets import files


@pytest.fixture(autouse=True)
def _threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _write(path: Path, fmt: str, header: list[str], rows: list[list]) -> Path:
    """Rows as CSV, TSV or JSONL (header = keys); lists stay lists in JSONL, space-joined elsewhere."""
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, r))) + "\n" for r in rows))
        return path
    flat = [[" ".join(map(str, v)) if isinstance(v, list) else v for v in r] for r in rows]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="," if fmt == "csv" else "\t")
        writer.writerow(header)
        writer.writerows(flat)
    return path


def _reviews(n: int = 30) -> list[list[str]]:
    d = load_sentiment()
    pos, neg = np.flatnonzero(d.y_train == 1)[: n // 2], np.flatnonzero(d.y_train == 0)[: n - n // 2]
    return [[d.x_train[i], "good" if d.y_train[i] else "bad"] for i in np.concatenate([pos, neg])]


def _series(n: int = 24) -> list[list]:
    d = load_ucr("ItalyPowerDemand")
    return [[d.classes[y], [round(float(v), 3) for v in x[:, 0]]] for x, y in zip(d.x_train[:n], d.y_train[:n])]


def _tagged(n: int = 20) -> list[list]:
    sentences = load_sentiment().x_train[:n]
    return [[s.split()[:12], ["LONG" if len(w) > 4 else "SHORT" for w in s.split()[:12]]] for s in sentences]


def _pairs(n: int = 30) -> list[list[str]]:
    p = make_number_words(n, seed=0, max_value=99)
    return [[str(a), str(b)] for a, b in zip(p.x, p.y)]


def make_file(tmp: Path, kind: str, fmt: str) -> tuple[Path, list[str]]:
    """A small file of ``kind`` in ``fmt`` and the column flags it needs."""
    ext = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl", "text": "txt"}[fmt]
    path = tmp / f"{kind}.{ext}"
    if kind == "classify-text":
        rows = _reviews()
        if fmt == "text":
            path.write_text("".join(f"__label__{label} {text}\n" for text, label in rows))
            return path, []
        return _write(path, fmt, ["review", "stars"], rows), ["--text-column", "review", "--label-column", "stars"]
    if kind == "classify-series":
        rows = _series()
        if fmt == "text":  # UCR's layout: the label, then the values
            path.write_text("".join(f"{label}\t" + "\t".join(map(str, v)) + "\n" for label, v in rows))
            return path, []
        if fmt == "jsonl":
            return _write(path, fmt, ["class", "series"], rows), ["--label-column", "class"]
        header = ["class", *[f"h{i}" for i in range(24)]]
        return _write(path, fmt, header, [[label, *v] for label, v in rows]), ["--label-column", "class"]
    if kind == "forecast":
        values = load_sunspots().train[:80]
        if fmt == "text":
            path.write_text("\n".join(str(float(v)) for v in values) + "\n")
            return path, []
        rows = [[1700 + i, float(v), 1.0] for i, v in enumerate(values)]
        return _write(path, fmt, ["year", "spots", "other"], rows), ["--value-column", "spots"]
    if kind == "tag":
        rows = _tagged()
        if fmt == "text":  # CoNLL: token tag, a blank line between sentences
            path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in zip(ws, ts)) for ws, ts in rows) + "\n")
            return path, []
        return _write(path, fmt, ["words", "tags"], rows), ["--text-column", "words"]
    if kind == "seq2seq":
        rows = _pairs()
        if fmt == "text":
            path.write_text("".join(f"{a}\t{b}\n" for a, b in rows))
            return path, []
        return _write(path, fmt, ["digits", "words"], rows), ["--source-column", "digits", "--target-column", "words"]
    if kind == "lm":
        text = "\n".join(s for s in load_sentiment().x_train[:40])
        if fmt == "text":
            path.write_text(text)
            return path, []
        return _write(path, fmt, ["line"], [[s] for s in text.split("\n")]), ["--text-column", "line"]
    raise AssertionError(kind)


def train(tmp: Path, kind: str, data: Path, flags: list[str], *extra: str) -> int:
    return main(["train", kind, "--data", str(data), *flags, "--epochs", "1", "--threads", "1", "--quiet",
                 "--out", str(tmp / "run"), *extra])


KINDS = ("classify-text", "classify-series", "forecast", "tag", "seq2seq", "lm")


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "text"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_trains_on_every_format(kind, fmt, tmp_path, capsys):
    path, flags = make_file(tmp_path, kind, fmt)
    extra = ("--horizon", "2", "--lookback", "6") if kind == "forecast" else ()
    assert train(tmp_path, kind, path, flags, *extra) == 0
    out = capsys.readouterr().out
    assert f"{kind}\t" in out and "baseline" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["task"] == kind and results["options"]["data"] == str(path)
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def own_runs(tmp_path_factory):
    """One model per kind, trained from CSV (text for the corpus), for predict."""
    root = tmp_path_factory.mktemp("own")
    for kind in KINDS:
        path, flags = make_file(root, kind, "text" if kind == "lm" else "csv")
        extra = ("--horizon", "2", "--lookback", "6") if kind == "forecast" else ()
        (root / kind).mkdir()
        assert train(root / kind, kind, path, flags, *extra) == 0
    return root


def test_predict_uses_models_trained_on_own_files(own_runs, capsys):
    capsys.readouterr()
    assert main(["predict", str(own_runs / "classify-text" / "run"), "A warm, funny film.", "Tedious."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [l.split("\t")[0] in ("good", "bad") for l in lines] == [True, True]

    series = ",".join(str(v) for v in _series(1)[0][1])
    assert main(["predict", str(own_runs / "classify-series" / "run"), "--", series]) == 0  # "--": it starts with "-"
    assert capsys.readouterr().out.strip() in load_ucr("ItalyPowerDemand").classes
    csv_file = own_runs / "classify-series.csv"
    assert main(["predict", str(own_runs / "classify-series" / "run"), str(csv_file)]) == 0
    assert capsys.readouterr().out.startswith(f"{csv_file}: 24 series, accuracy ")

    assert main(["predict", str(own_runs / "forecast" / "run")]) == 0  # after the end of the file
    assert capsys.readouterr().out.splitlines()[0].startswith("+1 step(s): ")
    assert main(["predict", str(own_runs / "forecast" / "run"), "5 10 20 40 60 80"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    assert main(["predict", str(own_runs / "tag" / "run"), "a remarkably good film"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("a/") and len(out.split()) == 4

    assert main(["translate", str(own_runs / "seq2seq" / "run"), "42", "7"]) == 0
    assert [l.split("\t")[0] for l in capsys.readouterr().out.strip().splitlines()] == ["42", "7"]

    assert main(["generate", str(own_runs / "lm" / "run"), "--prompt", "The ", "--length", "10"]) == 0
    assert capsys.readouterr().out.startswith("The ")


def test_predict_without_input_or_with_a_short_series_fails_clearly(own_runs, capsys):
    assert main(["predict", str(own_runs / "classify-text" / "run")]) == 1
    assert "no input: give 'classify-text' models texts" in capsys.readouterr().err
    assert main(["predict", str(own_runs / "classify-series" / "run"), "1,2,3"]) == 1
    assert "a series of 3 steps; expected 24" in capsys.readouterr().err
    assert main(["predict", str(own_runs / "forecast" / "run"), "1", "2"]) == 1
    assert "give at least 6 values" in capsys.readouterr().err


def test_test_data_file_replaces_the_split(tmp_path, capsys):
    path, flags = make_file(tmp_path, "classify-text", "csv")
    test = _write(tmp_path / "test.csv", "csv", ["review", "stars"], _reviews(8))
    assert train(tmp_path, "classify-text", path, flags, "--test-data", str(test)) == 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["options"]["test_data"] == str(test)


def _bad(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


_HEAD = "text,label\n"
_OK_ROWS = "".join(f"review number {i},{'a' if i % 2 else 'b'}\n" for i in range(12))

# (kind, file name, content, extra flags, the message's expected parts)
BAD_FILES = [
    ("classify-text", "r.csv", "review,stars\nfine,a\n", [], ["r.csv, line 1: no column 'text'", "['review', 'stars']"]),
    ("classify-text", "r.csv", _HEAD + _OK_ROWS + ",a\n", [], ["r.csv, line 14: column 'text' is empty; expected a text"]),
    ("classify-text", "r.csv", _HEAD + "".join(f"t{i},same\n" for i in range(12)), [],
     ["r.csv: every row has the class 'same'; a classifier needs at least two classes"]),
    ("classify-text", "r.csv", _HEAD + "a,x\nb,y\nc,x\n", [], ["r.csv: 3 rows; expected at least 10"]),
    ("classify-text", "r.csv", _HEAD + "a,x,extra\n", [], ["r.csv, line 2: 3 fields; expected 2"]),
    ("classify-text", "r.jsonl", '{"text": "ok", "label": "a"}\n[1, 2]\n', [],
     ["r.jsonl, line 2: expected a JSON object"]),
    ("classify-text", "r.jsonl", '{"text": "ok", "label": "a"}\n{"text": oops}\n', [], ["r.jsonl, line 2: not valid JSON"]),
    ("classify-text", "r.xlsx", "x", [], ["r.xlsx: cannot tell the format from the extension"]),
    ("classify-text", "r.csv", "", [], ["r.csv: the file is empty"]),
    ("classify-series", "s.csv", "label,t0,t1\na,1,2\nb,3,oops\n", [], ["s.csv, line 3: column 't1': 'oops' is not a number"]),
    ("classify-series", "s.txt", "a 1 2 3\nb 1 2\n", [], ["s.txt, line 2: a series of 2 steps x 1 features; expected 3 x 1"]),
    ("classify-series", "s.csv", "label,t0\na,nan\n", [], ["s.csv, line 2: column 't0': 'nan' is not a finite number"]),
    ("forecast", "f.csv", "year,spots\n1,2\n2,x\n", [], ["f.csv, line 3: column 'spots': 'x' is not a number"]),
    ("forecast", "f.csv", "year,spots\n1,2\n2,\n", [], ["f.csv, line 3: column 'spots' is empty; expected a number"]),
    ("forecast", "f.txt", "".join(f"{i}\n" for i in range(40)), ["--horizon", "9"],
     ["--horizon 9 is longer than the series it is tested on", "holds 8 of 40 values"]),
    ("forecast", "f.txt", "".join(f"{i}\n" for i in range(20)), [], ["f.txt: 16 training values give 2 windows"]),
    ("forecast", "f.csv", "year,spots\n1,2\n", ["--value-column", "sales"], ["f.csv, line 1: no column 'sales'"]),
    ("tag", "t.txt", "the DET\ncat\n", [], ["t.txt, line 2: 1 fields; expected a token and its tag"]),
    ("tag", "t.csv", "tokens,tags\na b c,X Y\n", [], ["t.csv, line 2: 3 tokens but 2 tags"]),
    ("tag", "t.txt", "a X\nb X\n", [], ["t.txt: every token has the tag 'X'"]),
    ("seq2seq", "p.txt", "one\tuno\ntwo dos\n", [], ["p.txt, line 2: expected a source, a tab, then a target"]),
    ("lm", "c.txt", "too short", [], ["c.txt: 9 characters; expected at least 2,021"]),
]


@pytest.mark.parametrize("kind,name,content,flags,parts", BAD_FILES,
                         ids=[f"{k}-{p[0][:40]}" for k, _, _, _, p in BAD_FILES])
def test_bad_files_fail_before_training_and_write_nothing(kind, name, content, flags, parts, tmp_path, capsys):
    path = _bad(tmp_path, name, content)
    assert train(tmp_path, kind, path, flags) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for part in parts:
        assert part in err
    assert not (tmp_path / "run").exists()


def test_a_test_file_with_an_unknown_class_is_refused(tmp_path, capsys):
    path, flags = make_file(tmp_path, "classify-text", "csv")
    test = _bad(tmp_path, "t.csv", "review,stars\nnice,good\nodd,meh\n")
    assert train(tmp_path, "classify-text", path, flags, "--test-data", str(test)) == 1
    assert "t.csv, line 3: class 'meh' is not among the training classes ['bad', 'good']" in capsys.readouterr().err


def test_own_data_flags_are_checked(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "forecast"])
    assert e.value.code == 2 and "trains on your file: give it with --data FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "sentiment", "--data", "x.csv"])
    assert "--data applies to `rnnkit train classify-text" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "tag", "--data", "x.csv", "--label-column", "y"])
    assert "--label-column applies to" in capsys.readouterr().err


def test_readers_return_arrays_for_the_models(tmp_path):
    path, _ = make_file(tmp_path, "classify-series", "jsonl")
    d = files.read_series_classes(path, label_column="class")
    assert d.x.shape == (24, 24, 1) and d.x.dtype == np.float32 and d.classes == ("1", "2")
    path, _ = make_file(tmp_path, "classify-text", "tsv")
    t = files.read_text_classes(path, text_column="review", label_column="stars")
    assert len(t.texts) == 30 and t.classes == ("bad", "good") and t.y.dtype == np.int64
    assert files.read_series(make_file(tmp_path, "forecast", "csv")[0]).name == "other"  # the last column
