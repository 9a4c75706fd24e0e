r"""One-to-one: one input vector -> one output, through a recurrent cell run for one step.

With T = 1 and a zero initial state the recurrent weights U multiply zeros, so the
"RNN" is a feed-forward layer: for an LSTM,

.. math::
    h = o \odot \tanh(i \odot g), \quad i, g, o = \sigma, \tanh, \sigma(W x + b)

(the forget gate has nothing to forget). This model is here to show that difference:
it is an MLP with gated units; recurrence needs T > 1.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import Tensor

from ..keras.layers import Dense
from ..keras.models import Model
from ._checks import built_dropout, check_cell, check_positive, check_rate, recurrent

__all__ = ["OneToOne"]


class OneToOne(Model):
    """x (B, F) -> logits (B, K) (or K regression outputs): x as a length-1 sequence (B, 1, F)
    -> recurrent layer (B, H) -> Dropout -> Dense(K)."""

    def __init__(self, input_size: int, num_outputs: int, *, units: int = 64, cell: str = "lstm",
                 dropout: float = 0.1, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.input_size = check_positive(input_size, "input_size")
        self.num_outputs = check_positive(num_outputs, "num_outputs")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell)
        self.dropout_rate = check_rate(dropout, "dropout")
        self.rnn = recurrent(self.cell, self.units, input_shape=(None, self.input_size))
        self.drop = built_dropout(self.dropout_rate)
        self.head = Dense(self.num_outputs, input_dim=self.units)
        self.built = True  # every weight exists already: nothing to build from data

    def call(self, inputs: Tensor, training: Optional[bool] = None) -> Tensor:
        """(B, F) -> (B, K)."""
        if inputs.dim() != 2 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes one vector per sample, shape "
                             f"(B, {self.input_size}); got shape {tuple(inputs.shape)}")
        h = self.rnn(inputs.unsqueeze(1), training=training)  # (B, 1, F) -> (B, H)
        return self.head(self.drop(h, training=training))

    def get_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "num_outputs": self.num_outputs, "units": self.units,
                "cell": self.cell, "dropout": self.dropout_rate, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "OneToOne":
        return cls(**config)
