"""The PyTorch-style front: drop-in replacements for torch.nn's recurrent modules.

``import rnnkit.nn as nn`` in place of ``torch.nn`` for RNN, LSTM, GRU and their cells:
same constructors, parameter names, state_dict layout, initialisation and outputs,
plus rnnkit's extras as keyword-only arguments. See ``rnnkit.nn.rnn`` and ``rnnkit.nn.cell``.
"""

from .cell import GRUCell as GRUCell
from .cell import LSTMCell as LSTMCell
from .cell import RNNCell as RNNCell
from .cell import RNNCellBase as RNNCellBase
from .min_rnn import MinGRU as MinGRU
from .min_rnn import MinLSTM as MinLSTM
from .min_rnn import MinRNNBase as MinRNNBase
from .rnn import GRU as GRU
from .rnn import LSTM as LSTM
from .rnn import RNN as RNN
from .rnn import RNNBase as RNNBase

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "MinGRU", "MinLSTM", "MinRNNBase", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]
