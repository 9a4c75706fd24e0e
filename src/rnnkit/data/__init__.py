"""Data helpers: padding ragged sequences (Keras's ``pad_sequences``)."""

from .sequence import pad_sequences as pad_sequences

__all__ = ["pad_sequences"]
