"""Cells: weights, initialisation and one step; the math itself is in ``rnnkit.ops``."""

from .cell import RecurrentCell as RecurrentCell
from .init import INITIALIZERS as INITIALIZERS
from .init import initialize as initialize
from .min_rnn import MinRNNCell as MinRNNCell

__all__ = ["INITIALIZERS", "MinRNNCell", "RecurrentCell", "initialize"]
