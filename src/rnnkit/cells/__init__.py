"""Cells: weights, initialisation and one step; the math itself is in ``rnnkit.ops``."""

from .cell import RecurrentCell as RecurrentCell
from .init import INITIALIZERS as INITIALIZERS
from .init import initialize as initialize

__all__ = ["INITIALIZERS", "RecurrentCell", "initialize"]
