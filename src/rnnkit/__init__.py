"""rnnkit: recurrent neural networks on PyTorch, with a hand-derived BPTT engine.

Two fronts share the same cells and engine:

* Keras-style: ``import rnnkit.keras as keras`` (``keras.layers``, ``keras.Model``,
  ``keras.Sequential``, ``compile/fit/evaluate/predict``). The old paths ``rnnkit.layers``,
  ``rnnkit.Sequential``, ``rnnkit.losses``, ... are aliases of the same objects.
* PyTorch-style: ``rnnkit.nn.LSTM/GRU/RNN`` and their cells, drop-in for ``torch.nn``.

Tiers: the core (``ops``, ``cells``, ``engine``, ``fused``), two thin fronts (``keras``,
``nn``; ``interop`` converts between them), and the applications (``models``,
``datasets``, ``data``, ``diagnostics``, the ``rnnkit`` command).

Importing ``rnnkit`` is cheap: each name below loads its module (and torch) on first use
(PEP 562), so that ``rnnkit train --out /unwritable`` can fail before torch is imported.
Where torch is already loaded, ``import rnnkit`` also registers the ``rnnkit::`` torch
operators at once, so that ``torch.export.load`` and ``torch.jit.load`` find them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBMODULES = (
    "callbacks", "data", "datasets", "diagnostics", "engine", "interop", "keras", "layers", "losses", "metrics",
    "models", "nn", "optimizers", "saving",
)
#: Each re-exported name and the module that defines it.
_NAMES = {
    "RecurrentCell": "cells", "pad_sequences": "data", "Streamer": "engine", "run_layer": "recurrent",
    "load_model": "saving", "Model": "keras", "Sequential": "keras",
    **{name: "layers" for name in ("GRU", "LSTM", "Bidirectional", "Dense", "Dropout", "Embedding", "Input",
                                   "Layer", "Masking", "SimpleRNN", "TimeDistributed")},
}

__all__ = sorted([*_SUBMODULES, *_NAMES])


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)  # any submodule, as an eager import gave
    else:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    globals()[name] = value  # loaded once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]


if TYPE_CHECKING:  # what static checkers and IDEs see: the same names, imported eagerly
    from . import keras as keras
    from . import callbacks as callbacks
    from . import data as data
    from . import datasets as datasets
    from . import diagnostics as diagnostics
    from . import engine as engine
    from . import interop as interop
    from . import layers as layers
    from . import losses as losses
    from . import metrics as metrics
    from . import models as models
    from . import nn as nn
    from . import optimizers as optimizers
    from . import saving as saving
    from .cells import RecurrentCell as RecurrentCell
    from .data import pad_sequences as pad_sequences
    from .layers import GRU as GRU
    from .layers import LSTM as LSTM
    from .layers import Bidirectional as Bidirectional
    from .layers import Dense as Dense
    from .layers import Dropout as Dropout
    from .layers import Embedding as Embedding
    from .layers import Input as Input
    from .layers import Layer as Layer
    from .layers import Masking as Masking
    from .layers import SimpleRNN as SimpleRNN
    from .layers import TimeDistributed as TimeDistributed
    from .engine import Streamer as Streamer
    from .keras import Model as Model
    from .keras import Sequential as Sequential
    from .recurrent import run_layer as run_layer
    from .saving import load_model as load_model

if "torch" in sys.modules:  # torch is paid for already: register the operators, as torchvision does on import
    importlib.import_module(".engine.library", __name__)
    importlib.import_module(".engine.min_scan", __name__)
