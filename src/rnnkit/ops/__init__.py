"""Pure step math for each cell: ``<cell>_step`` and ``<cell>_step_backward``.

Every cell module exposes three functions with the same signatures, bundled in
``CELL_OPS[kind]``; ``rnnkit.engine`` is the only caller and the only time loop.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .activations import ACTIVATIONS as ACTIVATIONS
from .activations import Activation as Activation
from .activations import get_activation as get_activation
from .common import CellSpec as CellSpec
from .common import Weights as Weights
from .common import cell_spec as cell_spec
from .elman import rnn_step, rnn_step_backward, rnn_weight_grads
from .gru import gru_step, gru_step_backward, gru_weight_grads
from .lstm import lstm_step, lstm_step_backward, lstm_weight_grads


class CellOps(NamedTuple):
    step: Callable
    step_backward: Callable
    weight_grads: Callable


CELL_OPS: dict[str, CellOps] = {
    "rnn": CellOps(rnn_step, rnn_step_backward, rnn_weight_grads),
    "lstm": CellOps(lstm_step, lstm_step_backward, lstm_weight_grads),
    "gru": CellOps(gru_step, gru_step_backward, gru_weight_grads),
}

__all__ = ["ACTIVATIONS", "Activation", "CELL_OPS", "CellOps", "CellSpec", "Weights", "cell_spec", "get_activation"]
