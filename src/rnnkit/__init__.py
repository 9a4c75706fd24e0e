"""rnnkit: recurrent neural networks on PyTorch, with a hand-derived BPTT engine.

Two fronts share the same cells and engine:

* Keras-style: ``import rnnkit.keras as keras`` (``keras.layers``, ``keras.Model``,
  ``keras.Sequential``, ``compile/fit/evaluate/predict``). The old paths ``rnnkit.layers``,
  ``rnnkit.Sequential``, ``rnnkit.losses``, ... are aliases of the same objects.
* PyTorch-style: ``rnnkit.nn.LSTM/GRU/RNN`` and their cells, drop-in for ``torch.nn``.

Tiers: the core (``ops``, ``cells``, ``engine``, ``fused``), two thin fronts (``keras``,
``nn``; ``interop`` converts between them), and the applications (``models``,
``datasets``, ``data``, ``diagnostics``, the ``rnnkit`` command).
"""

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

__version__ = "0.1.0"

__all__ = [
    "Bidirectional", "Dense", "Dropout", "Embedding", "GRU", "Input", "LSTM", "Layer", "Masking", "Model",
    "RecurrentCell", "Sequential", "SimpleRNN", "Streamer", "TimeDistributed", "callbacks", "data", "datasets", "diagnostics",
    "engine", "interop", "keras", "layers", "load_model", "losses", "metrics", "models", "nn", "optimizers", "pad_sequences",
    "run_layer", "saving",
]
