"""Keras-style layers: Keras names, arguments and defaults, batch-first (B, T, F), lazy build.

``LSTM(128)`` needs no input size: weights are created on the first call (or at
construction with ``input_shape=``). Masks from ``Embedding(mask_zero=True)`` or
``Masking`` flow to the recurrent layers via ``layer(x, mask=...)`` and
``layer.compute_mask(x, mask)``. Parameter counts equal Keras's.
"""

from .activations import ACTIVATIONS as ACTIVATIONS
from .base import Layer as Layer
from .base import deserialize as deserialize
from .base import get_layer_class as get_layer_class
from .base import serialize as serialize
from .core import Activation as Activation
from .core import Dense as Dense
from .core import Dropout as Dropout
from .core import Flatten as Flatten
from .core import Input as Input
from .core import InputLayer as InputLayer
from .core import RepeatVector as RepeatVector
from .embedding import Embedding as Embedding
from .embedding import Masking as Masking
from .rnn import GRU as GRU
from .rnn import LSTM as LSTM
from .rnn import BaseRNN as BaseRNN
from .rnn import SimpleRNN as SimpleRNN
from .wrappers import Bidirectional as Bidirectional
from .wrappers import TimeDistributed as TimeDistributed

__all__ = [
    "ACTIVATIONS", "Activation", "BaseRNN", "Bidirectional", "Dense", "Dropout", "Embedding", "Flatten", "GRU",
    "Input", "InputLayer", "LSTM", "Layer", "Masking", "RepeatVector", "SimpleRNN", "TimeDistributed",
    "deserialize", "get_layer_class", "serialize",
]
