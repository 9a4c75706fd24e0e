"""Text to integer ids: a character vocabulary and a Keras-style word tokenizer.

Both are plain Python (no torch), keep their state in a JSON-able ``get_config()``
so they can be saved beside a model, and raise a ValueError that names the
argument when given something they cannot use.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["CharVocab", "WordVocab", "KERAS_FILTERS"]

#: The characters that ``keras.preprocessing.text.Tokenizer`` removes by default.
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def _check_text(text: Any, arg: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"`{arg}` must be a str, got {type(text).__name__}")
    return text


def _check_texts(texts: Any, arg: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"`{arg}` must be an iterable of str (a list of texts), got a single str")
    try:
        out = list(texts)
    except TypeError:
        raise TypeError(f"`{arg}` must be a str or an iterable of str (a list of texts), got {type(texts).__name__}") from None
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"`{arg}[{i}]` must be a str, got {type(t).__name__}")
    return out


class CharVocab:
    """A character vocabulary: ``encode(text) -> (T,) int64`` and ``decode(ids) -> str``.

    Ids are assigned in this order: ``specials`` first (so ``specials=("<pad>",)``
    puts padding at id 0), then ``unk`` if given, then the characters, sorted by
    code point so the same text always gives the same ids.

    Unknown characters: with ``unk=None`` (the default) ``encode`` raises a
    ValueError naming the character and its position; with ``unk="<unk>"`` (any
    token) they map to its id, and ``decode`` writes that token back.

    Special tokens are whole tokens: ``encode`` never parses them out of text; use
    ``index("<eos>")`` to get their ids.

    Example::

        vocab = CharVocab.fit(train_text, specials=("<pad>", "<bos>", "<eos>"), unk="<unk>")
        ids = vocab.encode("def f():")      # (8,) int64
        vocab.decode(ids) == "def f():"
    """

    def __init__(self, chars: Iterable[str], specials: Sequence[str] = (), unk: Optional[str] = None) -> None:
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"`chars` must hold single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("`chars` holds a character twice")
        if isinstance(specials, str):
            raise TypeError("`specials` must be a sequence of str tokens, e.g. ('<pad>',), got a single str")
        tokens = [*specials, *([unk] if unk is not None else []), *chars]
        for t in tokens:
            if not isinstance(t, str) or not t:
                raise ValueError(f"`specials` and `unk` must be non-empty str tokens, got {t!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"`specials`, `unk` and `chars` must not overlap, got {tokens!r}")
        self.specials: tuple[str, ...] = tuple(specials)
        self.unk: Optional[str] = unk
        self.chars: tuple[str, ...] = tuple(chars)
        self.itos: tuple[str, ...] = tuple(tokens)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.unk_id: Optional[int] = self.stoi[unk] if unk is not None else None
        # Only characters are looked up in text: a special token is never parsed out of it.
        self._char_ids: dict[str, int] = {c: self.stoi[c] for c in chars}

    @classmethod
    def fit(cls, texts: Union[str, Iterable[str]], specials: Sequence[str] = (), unk: Optional[str] = None) -> "CharVocab":
        """Build the vocabulary from every character in ``texts`` (one str or an iterable of str)."""
        texts = [_check_text(texts, "texts")] if isinstance(texts, str) else _check_texts(texts, "texts")
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        return cls(sorted(seen), specials=specials, unk=unk)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"CharVocab(size={len(self)}, specials={self.specials!r}, unk={self.unk!r})"

    def index(self, token: str) -> int:
        """The id of one character or special token; ValueError if it is not in the vocabulary."""
        try:
            return self.stoi[token]
        except KeyError:
            raise ValueError(f"token {token!r} is not in the vocabulary ({len(self)} tokens)") from None

    def encode(self, text: str) -> np.ndarray:
        """``text`` (a str of T characters) -> ids, shape (T,), int64."""
        _check_text(text, "text")
        get = self._char_ids.get
        out = np.fromiter((get(ch, -1) for ch in text), dtype=np.int64, count=len(text))
        unknown = out < 0
        if unknown.any():
            if self.unk_id is None:
                t = int(np.argmax(unknown))
                raise ValueError(
                    f"character {text[t]!r} at position {t} of `text` is not in the vocabulary; "
                    "build the vocabulary with unk='<unk>' to map unknown characters to one id"
                )
            out[unknown] = self.unk_id
        return out

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        """ids, shape (T,) -> str. Special tokens are written as themselves unless ``skip_specials``."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"`ids` must be a 1-D sequence of ints, got shape {ids.shape} and dtype {ids.dtype}")
        n = len(self.itos)
        bad = (ids < 0) | (ids >= n)
        if bad.any():
            t = int(np.argmax(bad))
            raise ValueError(f"`ids[{t}]` = {int(ids[t])} is outside the vocabulary [0, {n})")
        skip = set(range(len(self.specials))) if skip_specials else set()
        return "".join(self.itos[i] for i in ids.tolist() if i not in skip)

    def get_config(self) -> dict[str, Any]:
        """A JSON-able dict; ``CharVocab.from_config(v.get_config())`` rebuilds ``v``."""
        return {"chars": "".join(self.chars), "specials": list(self.specials), "unk": self.unk}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "CharVocab":
        return cls(list(config["chars"]), specials=tuple(config.get("specials", ())), unk=config.get("unk"))


class WordVocab:
    """A word tokenizer with the semantics of ``keras.preprocessing.text.Tokenizer``.

    - ``fit(texts)`` counts words (lower-cased, ``filters`` characters removed, split on
      ``split``) and numbers them by descending count, ties in order of first
      appearance, starting at 1: **index 0 is reserved for padding** and no word gets it.
      If ``oov_token`` is given it takes index 1.
    - ``texts_to_sequences`` keeps only indices ``< num_words`` (so at most
      ``num_words - 1`` distinct ids besides padding). A word that is unknown or
      past ``num_words`` becomes the ``oov_token`` index, or is dropped when there is
      no ``oov_token``, exactly as Keras does.

    ``vocab_size`` is the input size an embedding needs (ids lie in ``[0, vocab_size)``).
    """

    def __init__(
        self,
        num_words: Optional[int] = None,
        oov_token: Optional[str] = None,
        lower: bool = True,
        filters: str = KERAS_FILTERS,
        split: str = " ",
    ) -> None:
        if num_words is not None and (isinstance(num_words, bool) or not isinstance(num_words, int) or num_words < 1):
            raise ValueError(f"`num_words` must be None or a positive int, got {num_words!r}")
        if oov_token is not None and (not isinstance(oov_token, str) or not oov_token):
            raise ValueError(f"`oov_token` must be None or a non-empty str, got {oov_token!r}")
        if not isinstance(split, str) or not split:
            raise ValueError(f"`split` must be a non-empty str, got {split!r}")
        if not isinstance(filters, str):
            raise TypeError(f"`filters` must be a str of characters to remove, got {type(filters).__name__}")
        self.num_words = num_words
        self.oov_token = oov_token
        self.lower = bool(lower)
        self.filters = filters
        self.split = split
        self.word_counts: dict[str, int] = {}
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}
        self._table = str.maketrans({c: split for c in filters})

    def words(self, text: str) -> list[str]:
        """Split one text into words the way ``fit`` and ``texts_to_sequences`` do."""
        _check_text(text, "text")
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self._table).split(self.split) if w]

    def fit(self, texts: Iterable[str]) -> "WordVocab":
        """Count the words of ``texts`` (an iterable of str) and number them; returns self."""
        counts: Counter[str] = Counter()
        for t in _check_texts(texts, "texts"):
            counts.update(self.words(t))
        for w, c in counts.items():  # keep counts from earlier fits, as Keras does
            self.word_counts[w] = self.word_counts.get(w, 0) + c
        # sorted() is stable, so ties keep first-appearance order (Counter/dict order).
        ranked = [w for w, _ in sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)]
        if self.oov_token is not None:
            ranked = [self.oov_token] + [w for w in ranked if w != self.oov_token]
        self.word_index = {w: i for i, w in enumerate(ranked, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        return self

    @property
    def vocab_size(self) -> int:
        """Ids lie in ``[0, vocab_size)``: padding (0) plus the kept words."""
        n = len(self.word_index) + 1
        return n if self.num_words is None else min(self.num_words, n)

    def _oov_index(self) -> Optional[int]:
        return self.word_index.get(self.oov_token) if self.oov_token is not None else None

    def texts_to_sequences(self, texts: Iterable[str]) -> list[list[int]]:
        """Each text -> a list of word ids (lengths differ; pad them for a batch)."""
        if not self.word_index:
            raise ValueError("this WordVocab is not fitted yet; call fit(texts) first")
        oov, limit = self._oov_index(), self.num_words
        out = []
        for t in _check_texts(texts, "texts"):
            seq = []
            for w in self.words(t):
                i = self.word_index.get(w)
                if i is not None and (limit is None or i < limit):
                    seq.append(i)
                elif oov is not None:
                    seq.append(oov)
            out.append(seq)
        return out

    def sequences_to_texts(self, sequences: Iterable[Iterable[int]]) -> list[str]:
        """Word ids -> space-joined words; padding (0) and ids past ``num_words`` are dropped
        (or written as ``oov_token`` if there is one), as Keras does."""
        oov, limit = self._oov_index(), self.num_words
        out = []
        for seq in sequences:
            words = []
            for i in seq:
                i = int(i)
                w = self.index_word.get(i)
                if w is not None and (limit is None or i < limit):
                    words.append(w)
                elif oov is not None and i != 0:
                    words.append(self.oov_token)
            out.append(" ".join(words))
        return out

    def get_config(self) -> dict[str, Any]:
        """A JSON-able dict; ``WordVocab.from_config(v.get_config())`` rebuilds ``v``."""
        return {
            "num_words": self.num_words,
            "oov_token": self.oov_token,
            "lower": self.lower,
            "filters": self.filters,
            "split": self.split,
            "word_counts": dict(self.word_counts),
            "word_index": dict(self.word_index),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "WordVocab":
        v = cls(
            num_words=config.get("num_words"),
            oov_token=config.get("oov_token"),
            lower=config.get("lower", True),
            filters=config.get("filters", KERAS_FILTERS),
            split=config.get("split", " "),
        )
        v.word_counts = dict(config.get("word_counts", {}))
        v.word_index = {w: int(i) for w, i in config.get("word_index", {}).items()}
        v.index_word = {i: w for w, i in v.word_index.items()}
        return v

    def __repr__(self) -> str:
        return f"WordVocab(words={len(self.word_index)}, num_words={self.num_words}, oov_token={self.oov_token!r})"
