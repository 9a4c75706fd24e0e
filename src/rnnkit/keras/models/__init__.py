"""``keras.models``: ``Model``, ``Sequential`` and ``load_model``."""

from ..saving import load_model as load_model
from .model import Model as Model
from .model import NotCompiledError as NotCompiledError
from .sequential import Sequential as Sequential

__all__ = ["Model", "NotCompiledError", "Sequential", "load_model"]
