"""Keras-shaped namespaces, so tutorial code runs with only its imports changed.

    import rnnkit.training.compat as tf          # tf.keras.Model, tf.keras.layers.GRU
    from rnnkit.training.compat import keras     # keras.Sequential(), keras.layers.LSTM
    from rnnkit.training.compat.keras import layers   # not possible: use `keras.layers`

``keras.preprocessing.sequence.pad_sequences`` is ``rnnkit.data.pad_sequences``.
"""

from __future__ import annotations

import types

from .. import callbacks, data, layers, losses, metrics, optimizers
from ..saving import load_model
from .model import Model
from .sequential import Sequential


def _namespace(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


models = _namespace("rnnkit.keras.models", Sequential=Sequential, Model=Model, load_model=load_model)
preprocessing = _namespace("rnnkit.keras.preprocessing", sequence=data)
keras = _namespace(
    "rnnkit.keras", Model=Model, Sequential=Sequential, layers=layers, models=models, optimizers=optimizers,
    losses=losses, metrics=metrics, callbacks=callbacks, preprocessing=preprocessing, Input=layers.Input,
)

__all__ = ["keras"]
