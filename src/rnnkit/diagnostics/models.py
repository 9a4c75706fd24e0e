"""Small models for the long-range experiments, and the probe protocol they follow.

Contract P (shared with ``rnnkit.layers``): a recurrent module has an attribute
``probes: Optional[list] = None``. While it is a list, every forward call appends, per
direction it runs, ``{"layer": name, "direction": "forward"|"backward", "probe": probe}``
where ``probe`` is a (T, n_state) zero tensor that requires grad and was passed to the
engine; after backward, ``probe.grad[t, k]`` is ||dL/d state_t[k]|| over the batch
(k = 0: h, k = 1: c for LSTM), in data time order. ``gradient_flow`` sets and clears
the lists.

The recipes follow the papers and Keras defaults:

    rnn   SimpleRNN, tanh; glorot_uniform input, orthogonal recurrent, zero bias (Keras)
    irnn  ReLU, identity recurrent, N(0, 0.001^2) input, zero bias (Le, Jaitly & Hinton 2015)
    lstm  glorot_uniform, orthogonal, zero bias, forget bias 1 (Keras; Jozefowicz et al. 2015)
    gru   glorot_uniform, orthogonal, zero biases, reset_after (Keras / PyTorch)
    mingru, minlstm   Feng et al. 2024: ``rnnkit.nn.MinGRU`` / ``MinLSTM`` with torch's init,
          trained with the parallel scan (their probes report ||dL/dh_t|| from the reverse scan)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..cells import RecurrentCell
from ..nn.min_rnn import MinGRU, MinLSTM
from ..recurrent import run_layer

CELL_RECIPES: dict[str, dict] = {
    "rnn": dict(kind="rnn", activation="tanh", bias="single", kernel_initializer="glorot_uniform",
                recurrent_initializer="orthogonal", bias_initializer="zeros"),
    "irnn": dict(kind="rnn", activation="relu", bias="single", kernel_initializer="irnn_input",
                 recurrent_initializer="identity", bias_initializer="zeros"),
    "lstm": dict(kind="lstm", bias="single", kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", unit_forget_bias=True),
    "gru": dict(kind="gru", bias="double", kernel_initializer="glorot_uniform",
                recurrent_initializer="orthogonal", bias_initializer="zeros"),
    # Not RecurrentCells: layers that run the whole sequence as one scan (``MinLayer``).
    "mingru": dict(kind="mingru"),
    "minlstm": dict(kind="minlstm"),
}
MIN_LAYERS = {"mingru": MinGRU, "minlstm": MinLSTM}


def make_cell(recipe: str, input_size: int, hidden_size: int, dtype: Optional[torch.dtype] = None) -> RecurrentCell:
    """A ``RecurrentCell`` from a recipe name in ``CELL_RECIPES`` ("rnn", "irnn", "lstm", "gru")."""
    cells = sorted(set(CELL_RECIPES) - set(MIN_LAYERS))
    if recipe not in cells:
        raise ValueError(f"Received an invalid value for argument `recipe`: expected one of {cells}, got {recipe!r}")
    kw = dict(CELL_RECIPES[recipe])
    kind = kw.pop("kind")
    return RecurrentCell(kind, input_size, hidden_size, dtype=dtype, **kw)


class ProbedRecurrent(nn.Module):
    """One recurrent layer over (B, T, F) on ``RecurrentCell`` + ``run_layer``, following Contract P.

    Returns the outputs (B, T, P) if ``return_sequences`` else the last h (B, P).
    """

    def __init__(self, cell: RecurrentCell, name: str = "recurrent", return_sequences: bool = False,
                 reverse: bool = False, implementation: str = "auto") -> None:
        super().__init__()
        self.cell = cell
        self.name = name
        self.return_sequences = return_sequences
        self.reverse = reverse
        self.implementation = implementation
        self.probes: Optional[list] = None

    def forward(self, x: Tensor) -> Tensor:
        probe = None
        if self.probes is not None:
            probe = x.new_zeros(x.shape[1], self.cell.spec.n_states, requires_grad=True)
            direction = "backward" if self.reverse else "forward"
            self.probes.append({"layer": self.name, "direction": direction, "probe": probe})
        out, state = run_layer(self.cell.spec, x, self.cell.weights(), reverse=self.reverse,
                               implementation=self.implementation, probe=probe)
        return out if self.return_sequences else state[0]


class MinLayer(nn.Module):
    """A minGRU/minLSTM layer over (B, T, F) (``rnnkit.nn``, batch-first): outputs (B, T, H) if
    ``return_sequences`` else the last h (B, H). Its inner module follows Contract P itself."""

    def __init__(self, recipe: str, input_size: int, hidden_size: int, return_sequences: bool = False) -> None:
        super().__init__()
        self.layer = MIN_LAYERS[recipe](input_size, hidden_size, batch_first=True)
        self.return_sequences = return_sequences

    def forward(self, x: Tensor) -> Tensor:
        out, h_n = self.layer(x)
        return out if self.return_sequences else h_n[-1]


class SequenceModel(nn.Module):
    """Recurrent layer + linear head: many-to-one (head on the last h) or per step.

    x (B, T, F) -> (B, O), or (B, T, O) when ``per_step``.
    """

    def __init__(self, recipe: str, input_size: int, hidden_size: int, output_size: int,
                 per_step: bool = False, implementation: str = "auto") -> None:
        super().__init__()
        self.recipe = recipe
        if recipe in MIN_LAYERS:  # one scan over the sequence; `implementation` is the classic cells'
            self.rnn: nn.Module = MinLayer(recipe, input_size, hidden_size, return_sequences=per_step)
        else:
            self.rnn = ProbedRecurrent(make_cell(recipe, input_size, hidden_size), name=recipe,
                                       return_sequences=per_step, implementation=implementation)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x))
