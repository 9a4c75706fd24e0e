"""rnnkit.datasets (bundled data, archive readers), rnnkit.data.text (vocabularies), rnnkit.data.windows."""

from __future__ import annotations

import gzip
import json
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.text import CharVocab, WordVocab
from rnnkit.data.windows import make_windows
from rnnkit.datasets import (
    UCR_BUNDLED,
    list_datasets,
    group_pronunciations,
    load_cmudict,
    load_digits_captions,
    load_pydoc_text,
    load_sentiment,
    load_sunspots,
    load_ucr,
    make_dates,
    make_number_words,
    number_to_words,
    read_ts,
    read_ucr_tsv,
)

DATA = resources.files("rnnkit.datasets").joinpath("data")


# --------------------------------------------------------------------------- bundle


def test_bundle_is_small_and_documented():
    files = [p for p in Path(str(DATA)).rglob("*.gz")]
    assert len(files) == 10
    assert sum(p.stat().st_size for p in files) < 3_000_000
    readme = DATA.joinpath("README.md").read_text()
    licences = DATA.joinpath("LICENSES.md").read_text()
    for p in files:
        assert p.name.split("_TRAIN")[0].split("_TEST")[0].split(".")[0] in readme, p.name
    for needle in ("Carnegie Mellon", "C.J. Hutto", "aeon developers", "scikit-learn developers", "public domain"):
        assert needle in licences


def test_list_datasets_rows():
    rows = list_datasets()
    names = [r.name for r in rows]
    assert len(set(names)) == len(names)
    assert {"sunspots", "GunPoint", "pydoc", "vader_movie_reviews", "cmudict", "digits_captions"} <= set(names)
    for r in rows:
        d = r._asdict()
        assert set(d) == {"name", "task", "size", "source", "licence", "loader"}
        assert all(isinstance(v, str) and v for v in d.values())
        assert "{" not in r.size


# --------------------------------------------------------------------------- sunspots


def test_sunspots_classic_split():
    s = load_sunspots()
    assert (s.years_train[0], s.years_train[-1], len(s.train)) == (1700, 1920, 221)
    assert (s.years_test[0], s.years_test[-1], len(s.test)) == (1921, 1987, 67)
    assert (s.years_extra[0], s.years_extra[-1], len(s.extra)) == (1988, 2008, 21)
    years = np.concatenate([s.years_train, s.years_test, s.years_extra])
    np.testing.assert_array_equal(years, np.arange(1700, 2009))
    assert s.train.dtype == np.float32 and s.years_train.dtype == np.int64
    # spot values from the NGDC table: 1700 -> 5, the 1957 maximum 190.2, 2008 -> 2.9
    assert s.train[0] == 5.0
    assert s.test[s.years_test == 1957][0] == pytest.approx(190.2)
    assert s.extra[-1] == pytest.approx(2.9)
    assert (np.concatenate([s.train, s.test, s.extra]) >= 0).all()


# --------------------------------------------------------------------------- UCR / UEA


@pytest.mark.parametrize(
    "name, train_shape, test_shape, n_classes",
    [
        ("ItalyPowerDemand", (67, 24, 1), (1029, 24, 1), 2),
        ("GunPoint", (50, 150, 1), (150, 150, 1), 2),
        ("BasicMotions", (40, 100, 6), (40, 100, 6), 4),
    ],
)
def test_load_ucr_bundled(name, train_shape, test_shape, n_classes):
    d = load_ucr(name)
    assert d.name == name and name in UCR_BUNDLED
    assert d.x_train.shape == train_shape and d.x_test.shape == test_shape
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert len(d.classes) == n_classes
    assert set(d.y_train.tolist()) == set(range(n_classes)) == set(d.y_test.tolist())
    assert np.isfinite(d.x_train).all() and np.isfinite(d.x_test).all()


def test_load_ucr_name_is_case_insensitive_and_checked():
    assert load_ucr("gunpoint").classes == ("1", "2")
    assert load_ucr("BasicMotions").classes == ("Standing", "Running", "Walking", "Badminton")
    with pytest.raises(ValueError, match="`name` must be one of"):
        load_ucr("NotASet")


TS_MULTI = """\
# a comment
@problemName Tiny
@timeStamps false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true up down
@data
1,2,3:4,5,6:up
-1,?,0.5:0,0,0:down
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_ts_multivariate(tmp_path):
    d = read_ts(_write(tmp_path, "Tiny_TRAIN.ts", TS_MULTI))
    assert d.name == "Tiny" and d.classes == ("up", "down")
    assert d.x.shape == (2, 3, 2)  # (N, T, F)
    np.testing.assert_array_equal(d.x[0], [[1, 4], [2, 5], [3, 6]])
    assert np.isnan(d.x[1, 1, 0]) and d.x[1, 2, 0] == 0.5
    np.testing.assert_array_equal(d.y, [0, 1])


def test_read_ts_univariate_gz_crlf_and_class_override(tmp_path):
    text = "@problemName U\r\n@univariate true\r\n@classLabel true 1 2\r\n@data\r\n1,2:2\r\n3,4:1\r\n"
    p = tmp_path / "U_TEST.ts.gz"
    p.write_bytes(gzip.compress(text.encode()))
    d = read_ts(p)
    assert d.x.shape == (2, 2, 1)
    np.testing.assert_array_equal(d.y, [1, 0])
    np.testing.assert_array_equal(read_ts(p, classes=("2", "1")).y, [0, 1])


def test_read_ts_regression_and_unlabelled(tmp_path):
    reg = read_ts(_write(tmp_path, "r.ts", "@classLabel false\n@targetLabel true\n@data\n1,2:0.25\n3,4:-1.5\n"))
    assert reg.classes == () and reg.y.dtype == np.float32
    np.testing.assert_allclose(reg.y, [0.25, -1.5])
    plain = read_ts(_write(tmp_path, "p.ts", "@data\n1,2,3\n4,5,6\n"))
    assert plain.y is None and plain.x.shape == (2, 3, 1) and plain.name == "p"


@pytest.mark.parametrize(
    "body, match",
    [
        ("@data\n1,2:1\n1,2,3:1\n", r"line 5: series length \[3\] differs from 2"),
        ("@data\n1,x:1\n", r"line 4: dimension 0: 'x' is not a number"),
        ("@data\n1,2:3\n", r"line 4: class label '3' is not among the declared classes \('1', '2'\)"),
        ("@data\n1,2:1\n@problemName late\n", r"line 5: header tag '@problemName' after @data"),
        ("1,2:1\n", r"line 2: expected a header tag"),
        ("@data\n", r"no series after @data"),
        ("@data\n1,2:3,4:1\n", r"line 4: found 2 dimensions, expected 1"),
    ],
)
def test_read_ts_malformed(tmp_path, body, match):
    header = "@classLabel true 1 2\n@univariate true\n" if not body.startswith("1,2:1\n") else "@classLabel true 1 2\n"
    p = _write(tmp_path, "bad.ts", header + body)
    with pytest.raises(ValueError, match=match) as e:
        read_ts(p)
    assert "bad.ts" in str(e.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("@timeStamps true\n@data\n", r"line 1: series with time stamps"),
        ("@univariate maybe\n@data\n1:1\n", r"line 1: @univariate must be followed by true or false, got 'maybe'"),
        ("@seriesLength -3\n@data\n", r"line 1: @seriesLength must be followed by a positive integer"),
        ("@classLabel true\n@data\n", r"line 1: @classLabel true must list the class labels"),
        ("@seriesLength 3\n@data\n1,2\n", r"line 3: series length \[2\] differs from 3"),
        ("# only a comment\n", r"no @data line"),
    ],
)
def test_read_ts_bad_header(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_ts(_write(tmp_path, "h.ts", text))


def test_read_ts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="`path`"):
        read_ts(tmp_path / "nope.ts")


def test_read_ucr_tsv(tmp_path):
    text = "2\t0.5\t1.5\t2.5\n1\t-1\t0\tNaN\n-1\t3\t3\t3\n"
    d = read_ucr_tsv(_write(tmp_path, "Toy_TRAIN.tsv", text))
    assert d.name == "Toy" and d.classes == ("-1", "1", "2")  # numeric order
    assert d.x.shape == (3, 3, 1) and d.x.dtype == np.float32
    np.testing.assert_array_equal(d.y, [2, 1, 0])
    assert np.isnan(d.x[1, 2, 0])
    old_style = read_ucr_tsv(_write(tmp_path, "old.txt", "1.0000000e+00,1,2\n2.0000000e+00,3,4\n"), delimiter=",")
    assert old_style.classes == ("1", "2")


@pytest.mark.parametrize(
    "text, match",
    [
        ("1\t1\t2\n2\t1\n", r"line 2: series length 1 differs from 2 on line 1"),
        ("1\t1\tfoo\n", r"line 1: 'foo' is not a number"),
        ("1\t1\n\n3\n", r"line 3: expected a label and at least one value"),
        ("\t1\t2\n", r"line 1: empty class label"),
        ("\n\n", r"no series found"),
    ],
)
def test_read_ucr_tsv_malformed(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_ucr_tsv(_write(tmp_path, "bad.tsv", text))


def test_load_ucr_from_root(tmp_path):
    (tmp_path / "Toy").mkdir()
    _write(tmp_path / "Toy", "Toy_TRAIN.tsv", "a\t1\t2\nb\t3\t4\n")
    _write(tmp_path / "Toy", "Toy_TEST.tsv", "b\t5\t6\n")
    d = load_ucr("Toy", root=tmp_path)
    assert d.classes == ("a", "b") and d.x_train.shape == (2, 2, 1) and d.x_test.shape == (1, 2, 1)
    np.testing.assert_array_equal(d.y_test, [1])  # indexed with the train file's classes
    _write(tmp_path, "Flat_TRAIN.ts", TS_MULTI)
    _write(tmp_path, "Flat_TEST.ts", TS_MULTI.replace(":up", ":sideways"))
    with pytest.raises(ValueError, match="class label 'sideways'"):
        load_ucr("Flat", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="no train file for 'Missing'"):
        load_ucr("Missing", root=tmp_path)


# --------------------------------------------------------------------------- text


def test_pydoc_text_split_is_consecutive_and_deterministic():
    p = load_pydoc_text()
    assert p.train + p.valid + p.test == p.text
    n = len(p.text)
    assert n > 100_000
    assert len(p.test) == int(0.05 * n) and len(p.valid) == int(0.05 * n)
    assert load_pydoc_text() == p
    assert "assert" in p.text and "Assert statements" in p.text
    with pytest.raises(ValueError, match="`test_fraction` must be a float in"):
        load_pydoc_text(test_fraction=0.7)


def test_sentiment_labels_split_and_band():
    s = load_sentiment()
    assert s.x_train.shape == s.y_train.shape == s.ratings_train.shape == (8046,)
    assert s.x_test.shape == s.y_test.shape == (1997,)
    assert set(s.y_train.tolist()) == {0, 1} and s.y_train.dtype == np.int64
    r = np.concatenate([s.ratings_train, s.ratings_test])
    y = np.concatenate([s.y_train, s.y_test])
    np.testing.assert_array_equal(y, (r > 0).astype(np.int64))
    assert (np.abs(r) > 0.5).all()
    assert (y == 1).sum() == 4982 and (y == 0).sum() == 5061
    assert s.x_train[0].startswith("The Rock is destined")
    wide = load_sentiment(neutral_band=0)
    assert len(wide.x_train) + len(wide.x_test) == 10605 - 37
    with pytest.raises(ValueError, match="`neutral_band`"):
        load_sentiment(neutral_band=-1)


def test_cmudict_is_the_whole_dictionary_split_by_word():
    c = load_cmudict()
    assert (len(c.x_train), len(c.x_test)) == (121_609, 13_557)  # pronunciations
    assert c.x_train.shape == c.y_train.shape and c.x_test.shape == c.y_test.shape
    train, test = group_pronunciations(c.x_train, c.y_train), group_pronunciations(c.x_test, c.y_test)
    assert (len(train), len(test)) == (113_460, 12_592)  # words
    assert not set(train) & set(test)  # every pronunciation of a word lies on one side
    assert all(zlib.crc32(w.encode()) % 10 == 0 for w in test) and all(zlib.crc32(w.encode()) % 10 for w in train)
    # "word(2)" lines became extra pronunciations of "word"; comments are gone.
    assert train["read"] == ["R EH1 D", "R IY1 D"] and max(map(len, train.values())) == 4
    assert not any("#" in p or "(" in w for w, p in zip(c.x_train.tolist(), c.y_train.tolist()))
    assert {"'bout", "a.m.", "able-bodied"} <= set(train) | set(test)
    phones = {p for s in c.y_train.tolist() for p in s.split()}
    assert "AE1" in phones and len(phones) == 69
    bare = load_cmudict(stress=False)
    np.testing.assert_array_equal(bare.x_test, c.x_test)  # the split is the same on each call
    assert {p for s in bare.y_train.tolist() for p in s.split()} == {p.rstrip("012") for p in phones}
    assert len({p.rstrip("012") for p in phones}) == 39
    with pytest.raises(TypeError, match="`stress`"):
        load_cmudict(stress="yes")


def test_group_pronunciations():
    assert group_pronunciations(["a", "b", "a"], ["1", "2", "3"]) == {"a": ["1", "3"], "b": ["2"]}
    with pytest.raises(ValueError, match="`words` has 2 rows but `phones` has 1"):
        group_pronunciations(["a", "b"], ["1"])


def test_digits_captions():
    d = load_digits_captions()
    assert d.x_train.shape == (1437, 64) and d.x_test.shape == (360, 64)
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() == 1.0
    assert set(d.y_train.tolist()) == {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    assert d.y_test[d.digits_test == 7][0] == "seven"
    assert np.bincount(d.digits_train, minlength=10).min() > 100


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (101, "one hundred one"),
        (342, "three hundred forty two"),
        (1005, "one thousand five"),
        (2_000_310, "two million three hundred ten"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_generated_pairs_are_deterministic_and_checked():
    a, b = make_number_words(50, seed=3), make_number_words(50, seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.shape == a.y.shape == (50,)
    assert all(number_to_words(int(x)) == y for x, y in zip(a.x.tolist(), a.y.tolist()))
    d = make_dates(20, seed=1, start="2024-03-07", end="2024-03-07")
    assert set(d.x.tolist()) == {"2024-03-07"} and set(d.y.tolist()) == {"7 march 2024"}
    assert not np.array_equal(make_dates(20, seed=1).x, make_dates(20, seed=2).x)
    with pytest.raises(ValueError, match="`n` must be a positive int"):
        make_number_words(0)
    with pytest.raises(ValueError, match="`end`"):
        make_dates(3, start="2020-01-02", end="2020-01-01")
    with pytest.raises(ValueError, match="`start` must be a date"):
        make_dates(3, start="March 7")
    with pytest.raises(ValueError, match=r"`n` must be an int in \[0, 10\*\*12\)"):
        number_to_words(-1)


# --------------------------------------------------------------------------- vocabularies


def test_char_vocab_round_trip_and_config():
    text = load_pydoc_text().text[:5000]
    v = CharVocab.fit(text, specials=("<pad>", "<bos>", "<eos>"))
    assert v.index("<pad>") == 0 and v.index("<eos>") == 2
    ids = v.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (5000,) and ids.min() >= 3
    assert v.decode(ids) == text
    assert v.decode([1, *v.encode("ab"), 2], skip_specials=True) == "ab"
    assert v.decode([1, *v.encode("ab"), 2]) == "<bos>ab<eos>"
    w = CharVocab.from_config(json.loads(json.dumps(v.get_config())))
    assert w.itos == v.itos and len(w) == len(v)


def test_char_vocab_unknown_characters():
    strict = CharVocab.fit("abc")
    with pytest.raises(ValueError, match=r"character 'z' at position 2 of `text` is not in the vocabulary"):
        strict.encode("abzc")
    lenient = CharVocab.fit(["abc", "cab"], unk="<unk>")
    ids = lenient.encode("abzc")
    assert ids[2] == lenient.unk_id == 0
    assert lenient.decode(ids) == "ab<unk>c"
    # a special token is a whole token: its characters in text are not parsed as it
    spec = CharVocab("ab", specials=("<",), unk="?")
    assert spec.encode("<")[0] == spec.unk_id
    with pytest.raises(ValueError, match=r"`ids\[1\]` = 99 is outside the vocabulary"):
        strict.decode([0, 99])
    with pytest.raises(ValueError, match="`chars` must hold single characters"):
        CharVocab(["ab"])
    with pytest.raises(ValueError, match="must not overlap"):
        CharVocab("ab", specials=("a",))
    with pytest.raises(TypeError, match="`text` must be a str"):
        strict.encode(123)


TEXTS = ["The cat sat on the mat.", "The dog sat!", "A cat, a dog; THE END"]


def test_word_vocab_keras_semantics():
    v = WordVocab().fit(TEXTS)
    # counts: the 4, cat 2, sat 2, a 2, dog 2, on 1, mat 1, end 1 -> ties keep first-seen order
    assert list(v.word_index)[:5] == ["the", "cat", "sat", "dog", "a"]
    assert v.word_index["the"] == 1 and 0 not in v.index_word
    assert v.vocab_size == len(v.word_index) + 1 == 9
    assert v.texts_to_sequences(["the cat ate"]) == [[1, 2]]  # unknown words dropped without oov
    assert v.sequences_to_texts([[1, 2, 0]]) == ["the cat"]


def test_word_vocab_num_words_and_oov():
    v = WordVocab(num_words=4, oov_token="<oov>").fit(TEXTS)
    assert v.word_index["<oov>"] == 1 and v.word_index["the"] == 2
    assert v.vocab_size == 4
    seqs = v.texts_to_sequences(["The cat sat on the zebra"])
    # kept ids are < num_words: the=2, cat=3; sat (4), on, zebra -> oov (1)
    assert seqs == [[2, 3, 1, 1, 2, 1]]
    assert max(max(s) for s in seqs) < v.vocab_size
    assert v.sequences_to_texts(seqs) == ["the cat <oov> <oov> the <oov>"]
    no_oov = WordVocab(num_words=3).fit(TEXTS)
    assert no_oov.texts_to_sequences(["the cat sat"]) == [[1, 2]]
    w = WordVocab.from_config(json.loads(json.dumps(v.get_config())))
    assert w.texts_to_sequences(["The cat sat on the zebra"]) == seqs


def test_word_vocab_bad_arguments():
    with pytest.raises(ValueError, match="`num_words` must be None or a positive int"):
        WordVocab(num_words=0)
    with pytest.raises(TypeError, match="`texts` must be an iterable of str"):
        WordVocab().fit("just one string")
    with pytest.raises(TypeError, match=r"`texts\[1\]` must be a str"):
        WordVocab().fit(["ok", 3])
    with pytest.raises(ValueError, match="not fitted"):
        WordVocab().texts_to_sequences(["a"])


def test_word_vocab_on_sentiment():
    s = load_sentiment()
    v = WordVocab(num_words=2000, oov_token="<oov>").fit(s.x_train.tolist())
    seqs = v.texts_to_sequences(s.x_test[:100].tolist())
    assert all(0 < i < 2000 for seq in seqs for i in seq)


# --------------------------------------------------------------------------- windows


def test_make_windows_univariate():
    series = np.arange(10, dtype=np.float32)
    X, y = make_windows(series, lookback=3, horizon=2)
    assert X.shape == (6, 3, 1) and y.shape == (6, 2) and X.dtype == np.float32
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(y[0], [3, 4])
    np.testing.assert_array_equal(y[-1], [8, 9])
    X2, y2 = make_windows(series, lookback=3, horizon=2, stride=4)
    assert X2.shape == (2, 3, 1)
    np.testing.assert_array_equal(X2[1, :, 0], [4, 5, 6])
    X[0, 0, 0] = 99  # a copy, not a view
    assert series[0] == 0


def test_make_windows_multivariate_and_sunspots():
    series = np.stack([np.arange(8.0), -np.arange(8.0)], axis=1)  # (T=8, F=2)
    X, y = make_windows(series, lookback=4, horizon=1, target=1)
    assert X.shape == (4, 4, 2) and y.shape == (4, 1) and X.dtype == np.float64
    np.testing.assert_array_equal(y[:, 0], [-4, -5, -6, -7])
    s = load_sunspots()
    X, y = make_windows(s.train, lookback=20, horizon=5)
    assert X.shape == (221 - 25 + 1, 20, 1) and y.shape == (197, 5)
    assert make_windows(np.arange(5), 2)[0].dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lookback": 0}, ValueError, "`lookback` must be a positive int"),
        ({"lookback": 2.5}, ValueError, "`lookback` must be a positive int"),
        ({"lookback": 3, "horizon": 0}, ValueError, "`horizon` must be a positive int"),
        ({"lookback": 3, "stride": -1}, ValueError, "`stride` must be a positive int"),
        ({"lookback": 3, "target": 1}, ValueError, r"`target` must be a column index in \[0, 1\)"),
        ({"lookback": 9, "horizon": 2}, ValueError, "too short for one window"),
    ],
)
def test_make_windows_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_windows(np.arange(10.0), **kwargs)


def test_make_windows_bad_series():
    with pytest.raises(ValueError, match=r"shape \(T,\) or \(T, F\)"):
        make_windows(np.zeros((4, 3, 2)), 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        make_windows(np.array([1.0, np.nan, 2.0, 3.0]), 1)
    with pytest.raises(ValueError, match="real numbers"):
        make_windows(["a", "b", "c"], 1)
