"""``TokenVocab``: ids for whole tokens (phonemes, words, characters) with pad/bos/eos.

``rnnkit.data.CharVocab`` maps single characters of a text; sequence-to-sequence and
generation models need the same for token lists ("K AE1 T".split()) and the three
specials every decoder uses. Ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, then ``<unk>``
if asked for, then the tokens in sorted order (so the same data gives the same ids).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

__all__ = ["TokenVocab", "PAD", "BOS", "EOS"]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class TokenVocab:
    """Tokens <-> ids. ``encode(tokens, add_bos, add_eos) -> (T,) int64``; ``decode(ids) -> list[str]``.

    Unknown tokens raise a ValueError that names them, unless ``unk`` is given.
    """

    specials = (PAD, BOS, EOS)
    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, tokens: Iterable[str], unk: Optional[str] = None) -> None:
        tokens = list(tokens)
        for t in tokens:
            if not isinstance(t, str) or not t:
                raise ValueError(f"`tokens` must be non-empty str, got {t!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("`tokens` holds a token twice")
        itos = [*self.specials, *([unk] if unk is not None else []), *tokens]
        if len(set(itos)) != len(itos):
            raise ValueError(f"`tokens` and `unk` must not include the specials {self.specials}")
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.unk = unk
        self.itos: tuple[str, ...] = tuple(itos)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(itos)}
        self.unk_id: Optional[int] = self.stoi[unk] if unk is not None else None

    @classmethod
    def fit(cls, sequences: Iterable[Sequence[str]], unk: Optional[str] = None) -> "TokenVocab":
        """Every token found in ``sequences`` (each a list of str, or a str read as characters)."""
        seen: set[str] = set()
        for seq in sequences:
            seen.update(seq)
        return cls(sorted(seen), unk=unk)

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"TokenVocab(size={len(self)}, unk={self.unk!r})"

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
        """A token list (or a str, read as characters) -> ids (T,) int64."""
        ids = []
        for t, tok in enumerate(tokens):
            i = self.stoi.get(tok)
            if i is None or i < len(self.specials):
                if self.unk_id is None:
                    raise ValueError(f"token {tok!r} at position {t} is not in the vocabulary ({len(self)} tokens); "
                                     f"known tokens look like {list(self.tokens[:8])}")
                i = self.unk_id
            ids.append(i)
        ids = [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos
        return np.array(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int], strip: bool = True) -> list[str]:
        """ids -> tokens. With ``strip``: stop at the first ``<eos>`` and drop ``<pad>``/``<bos>``."""
        out = []
        for i in np.asarray(list(ids), dtype=np.int64).tolist():
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary [0, {len(self.itos)})")
            if strip and i == self.eos_id:
                break
            if strip and i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return out

    def get_config(self) -> dict[str, Any]:
        """JSON-able; ``TokenVocab.from_config(v.get_config())`` rebuilds ``v``."""
        return {"tokens": list(self.tokens), "unk": self.unk}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "TokenVocab":
        return cls(config["tokens"], unk=config.get("unk"))


def encode_batch(vocab: TokenVocab, sequences: Iterable[Sequence[str]], add_bos: bool = False,
                 add_eos: bool = False, maxlen: Optional[int] = None) -> np.ndarray:
    """Token lists -> (N, T) int64 ids, right-padded with ``<pad>`` (0) to the longest or ``maxlen``."""
    rows = [vocab.encode(s, add_bos, add_eos) for s in sequences]
    T = maxlen if maxlen is not None else max((len(r) for r in rows), default=0)
    out = np.zeros((len(rows), T), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : min(T, len(r))] = r[:T]
    return out
