"""Keras-style layers: Keras names, arguments and defaults, batch-first (B, T, F), lazy build.

``LSTM(128)`` needs no input size: weights are created on the first call (or at
construction with ``input_shape=``). Masks from ``Embedding(mask_zero=True)`` or
``Masking`` flow to the recurrent layers via ``layer(x, mask=...)`` and
``layer.compute_mask(x, mask)``. Parameter counts equal Keras's.
"""

from .activations import ACTIVATIONS as ACTIVATIONS
from .attention import AdditiveAttention as AdditiveAttention
from .attention import Attention as Attention
from .attention import MultiHeadAttention as MultiHeadAttention
from .base import Layer as Layer
from .base import deserialize as deserialize
from .base import get_layer_class as get_layer_class
from .base import serialize as serialize
from .symbolic import KerasTensor as KerasTensor
from .core import Activation as Activation
from .core import Dense as Dense
from .core import Dropout as Dropout
from .core import Flatten as Flatten
from .core import RepeatVector as RepeatVector
from .conv_lstm import ConvLSTM1D as ConvLSTM1D
from .conv_lstm import ConvLSTM2D as ConvLSTM2D
from .conv_lstm import ConvLSTMCell as ConvLSTMCell
from .convolutional import Conv1D as Conv1D
from .embedding import Embedding as Embedding
from .embedding import Masking as Masking
from .input_layer import Input as Input
from .input_layer import InputLayer as InputLayer
from .lambda_layer import Lambda as Lambda
from .lambda_layer import register_function as register_function
from .merging import Add as Add
from .merging import Average as Average
from .merging import Concatenate as Concatenate
from .merging import Dot as Dot
from .merging import Maximum as Maximum
from .merging import Minimum as Minimum
from .merging import Multiply as Multiply
from .merging import Subtract as Subtract
from .noise import GaussianDropout as GaussianDropout
from .noise import GaussianNoise as GaussianNoise
from .noise import SpatialDropout1D as SpatialDropout1D
from .normalization import BatchNormalization as BatchNormalization
from .normalization import LayerNormalization as LayerNormalization
from .pooling import AveragePooling1D as AveragePooling1D
from .pooling import AvgPool1D as AvgPool1D
from .pooling import GlobalAveragePooling1D as GlobalAveragePooling1D
from .pooling import GlobalAvgPool1D as GlobalAvgPool1D
from .pooling import GlobalMaxPool1D as GlobalMaxPool1D
from .pooling import GlobalMaxPooling1D as GlobalMaxPooling1D
from .pooling import MaxPool1D as MaxPool1D
from .pooling import MaxPooling1D as MaxPooling1D
from .reshaping import Cropping1D as Cropping1D
from .reshaping import Permute as Permute
from .reshaping import Reshape as Reshape
from .reshaping import UpSampling1D as UpSampling1D
from .reshaping import ZeroPadding1D as ZeroPadding1D
from .min_rnn import MinGRU as MinGRU
from .min_rnn import MinLSTM as MinLSTM
from .rnn import GRU as GRU
from .rnn import LSTM as LSTM
from .rnn import BaseRNN as BaseRNN
from .rnn import RecurrentLayer as RecurrentLayer
from .rnn import SimpleRNN as SimpleRNN
from .rnn_cells import RNN as RNN
from .rnn_cells import GRUCell as GRUCell
from .rnn_cells import LSTMCell as LSTMCell
from .rnn_cells import SimpleRNNCell as SimpleRNNCell
from .rnn_cells import StackedRNNCells as StackedRNNCells
from .wrappers import Bidirectional as Bidirectional
from .wrappers import TimeDistributed as TimeDistributed

__all__ = [
    "ACTIVATIONS", "Activation", "Add", "AdditiveAttention", "Attention", "Average", "AveragePooling1D", "AvgPool1D",
    "BaseRNN", "BatchNormalization", "Bidirectional", "Concatenate", "Conv1D", "ConvLSTM1D", "ConvLSTM2D",
    "ConvLSTMCell", "Cropping1D", "Dense", "Dot", "Dropout", "Embedding", "Flatten", "GRU", "GRUCell",
    "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPool1D",
    "GlobalMaxPooling1D", "Input", "InputLayer", "KerasTensor", "LSTM", "LSTMCell", "Lambda", "Layer",
    "LayerNormalization", "Masking", "MaxPool1D", "MaxPooling1D", "Maximum", "MinGRU", "MinLSTM", "Minimum",
    "MultiHeadAttention", "Multiply", "Permute", "RNN",
    "RecurrentLayer", "RepeatVector", "Reshape", "SimpleRNN", "SimpleRNNCell", "SpatialDropout1D", "StackedRNNCells",
    "Subtract", "TimeDistributed", "UpSampling1D", "ZeroPadding1D", "deserialize", "get_layer_class",
    "register_function", "serialize",
]
