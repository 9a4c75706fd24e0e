"""``keras.preprocessing``: ``sequence.pad_sequences``, as in Keras."""

from . import sequence as sequence
from .sequence import pad_sequences as pad_sequences

__all__ = ["pad_sequences", "sequence"]
