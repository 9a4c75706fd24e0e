"""Data helpers: padding ragged sequences, vocabularies for text, sliding windows over series."""

from ..keras.preprocessing.sequence import pad_sequences as pad_sequences
from .text import CharVocab as CharVocab
from .text import WordVocab as WordVocab
from .windows import make_windows as make_windows

__all__ = ["CharVocab", "WordVocab", "make_windows", "pad_sequences"]
