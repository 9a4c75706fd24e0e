"""Shared types for the per-cell step math in ``rnnkit.ops``.

Layouts follow ``torch.nn``: G = gates * H rows, gate blocks stacked in
PyTorch's order (LSTM i, f, g, o; GRU r, z, n), so weights copy one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

from torch import Tensor

from .activations import Activation, get_activation

CELL_KINDS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class Weights(NamedTuple):
    """All weights a cell may use; absent options are ``None``.

    weight_ih: (G, F)        weight_hh: (G, P) with P = proj_size or H
    bias_ih, bias_hh: (G,)   weight_hr: (P, H)  LSTM projection
    peephole: (3, H)         LSTM peepholes for i, f, o
    ln_gamma, ln_beta: (G,)  LayerNorm of each gate block of the pre-activation
    ln_cell_gamma, ln_cell_beta: (H,)  LayerNorm of the LSTM cell before its activation
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Optional[Tensor] = None
    bias_hh: Optional[Tensor] = None
    weight_hr: Optional[Tensor] = None
    peephole: Optional[Tensor] = None
    ln_gamma: Optional[Tensor] = None
    ln_beta: Optional[Tensor] = None
    ln_cell_gamma: Optional[Tensor] = None
    ln_cell_beta: Optional[Tensor] = None


@dataclass(frozen=True)
class CellSpec:
    """The non-tensor configuration of a cell: which math, which activations.

    kind: "rnn" (Elman), "lstm" or "gru".
    activation: the candidate / output nonlinearity (tanh by default).
    recurrent_activation: the gate nonlinearity (sigmoid by default); unused by "rnn".
    reset_after: GRU only; True applies r after the recurrent matmul (cuDNN/PyTorch),
        False before it (Cho et al. 2014; Keras ``reset_after=False``).
    """

    kind: str
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    reset_after: bool = True

    def __post_init__(self) -> None:
        if self.kind not in CELL_KINDS:
            raise ValueError(f"Received an invalid value for argument `kind`: expected one of {CELL_KINDS}, got {self.kind!r}")
        get_activation(self.activation, "activation")
        get_activation(self.recurrent_activation, "recurrent_activation")

    @property
    def gates(self) -> int:
        return GATES[self.kind]

    @property
    def act(self) -> Activation:
        return get_activation(self.activation)

    @property
    def ract(self) -> Activation:
        return get_activation(self.recurrent_activation)

    @property
    def n_states(self) -> int:
        return 2 if self.kind == "lstm" else 1

    @property
    def folds_hh_bias(self) -> bool:
        """Whether bias_hh can be added to the input projection once for all steps.

        Only GRU with reset_after keeps b_hn inside r * (W_hn h + b_hn).
        """
        return not (self.kind == "gru" and self.reset_after)


_SPECS: dict[tuple, CellSpec] = {}


def cell_spec(kind: str, activation: str = "tanh", recurrent_activation: str = "sigmoid",
              reset_after: bool = True) -> CellSpec:
    """The (shared, immutable) CellSpec of these primitives.

    Modules keep only the primitives and derive their spec through this, so that a pickled
    module (``torch.save(model)``) holds no rnnkit class but its own, and loads with
    ``torch.load(..., weights_only=True)`` under ``safe_globals`` of the public classes.
    """
    key = (kind, activation, recurrent_activation, reset_after)
    spec = _SPECS.get(key)
    if spec is None:  # a plain dict, not functools.lru_cache, which torch.compile warns about
        spec = _SPECS[key] = CellSpec(*key)
    return spec
