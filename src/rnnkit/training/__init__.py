"""Keras-style models and training: Sequential, Model, compile/fit/evaluate/predict.

See ``rnnkit.optimizers``, ``rnnkit.losses``, ``rnnkit.metrics``, ``rnnkit.callbacks``
and ``rnnkit.saving`` for the names these accept.
"""

from .model import Model as Model
from .model import NotCompiledError as NotCompiledError
from .sequential import Sequential as Sequential

__all__ = ["Model", "NotCompiledError", "Sequential"]
