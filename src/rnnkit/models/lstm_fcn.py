"""Many-to-one on series: the LSTM-FCN of Karim et al. (2017), a recurrent branch beside a fully convolutional one.

Karim, F., Majumdar, S., Darabi, H., Chen, S. (2017). LSTM fully convolutional networks for
time series classification. IEEE Access 6, 1662-1669. arXiv:1709.05206.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.layers import BatchNormalization, Concatenate, Conv1D, Dense, GlobalAveragePooling1D, Permute
from ..keras.models import Model
from ._checks import built_dropout, check_cell, check_positive, check_rate, check_vocab_size, recurrent

__all__ = ["LSTMFCN"]


class LSTMFCN(Model):
    r"""LSTM-FCN: classifies a series (B, T, F) from a convolutional and a recurrent summary of it.

    Two branches read the same series x (B, T, F) and are joined before the classifier::

        FCN:  3 x [Conv1D(U_i, K_i, padding="same") -> BatchNorm -> ReLU]     (B, T, U_3)
              -> GlobalAveragePooling1D over the real steps                    (B, U_3)
        LSTM: Permute, the "dimension shuffle": F steps of T features          (B, F, T)
              -> LSTM(H) -> Dropout                                            (B, H)
        Concatenate -> Dense(C)                                                (B, U_3 + H) -> logits (B, C)

    The defaults are the paper's: U = (128, 256, 128), K = (8, 5, 3), dropout 0.8. The
    paper tuned H per data set among 8, 64 and 128; 8 is the default here. ``cell`` can
    swap the LSTM for a GRU or a simple RNN (the paper's model is the LSTM).

    Because the LSTM reads time as features, the model is built for series of at most
    ``length`` = T steps. Shorter series are padded at the end with NaN (as the archive's
    variable-length sets are, and as ``call`` does for inputs shorter than T): a step whose
    features are all NaN is padding. Padding is masked in the batch statistics and the
    average pooling, and is zero wherever a convolution reads it; other NaNs (missing
    values inside a series) read as 0. An explicit ``mask`` (B, T), True on real steps,
    can be given instead.

    Parameters (``count_params``, moving statistics included), with U_0 = F::

        sum_i (K_i U_{i-1} U_i + U_i)  +  sum_i 4 U_i  +  g H (T + H + b)  +  (U_3 + H) C + C

    with g H (T + H + b) the recurrent layer's: g = 4, b = 1 for the LSTM; g = 3, b = 2 for
    the GRU (Keras's ``reset_after`` keeps two biases); g = 1, b = 1 for the simple RNN.

    Train with compile/fit and ``SparseCategoricalCrossentropy(from_logits=True)``; the
    paper's recipe is Adam(1e-3), batch 128, ``ReduceLROnPlateau(monitor="loss",
    factor=2 ** (-1/3), patience=100, min_lr=1e-4)`` and many epochs.
    """

    def __init__(self, num_classes: int, *, input_size: int, length: int, units: int = 8, cell: str = "lstm",
                 filters: Sequence[int] = (128, 256, 128), kernel_sizes: Sequence[int] = (8, 5, 3),
                 dropout: float = 0.8, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.num_classes = check_vocab_size(num_classes, "num_classes", minimum=2)
        self.input_size = check_positive(input_size, "input_size")
        self.length = check_positive(length, "length")
        self.units = check_positive(units, "units")
        self.cell = check_cell(cell)
        self.filters = tuple(check_positive(f, "filters") for f in _sequence(filters, "filters"))
        self.kernel_sizes = tuple(check_positive(k, "kernel_sizes") for k in _sequence(kernel_sizes, "kernel_sizes"))
        if len(self.filters) != len(self.kernel_sizes):
            raise ValueError(f"Arguments `filters` and `kernel_sizes` must have the same length (one per convolution "
                             f"block), got {len(self.filters)} and {len(self.kernel_sizes)}")
        self.dropout_rate = check_rate(dropout, "dropout")

        # Declaring input shapes builds every weight now, so load_state_dict works before any data is seen.
        convs, norms, width = [], [], self.input_size
        for f, k in zip(self.filters, self.kernel_sizes):
            convs.append(Conv1D(f, k, padding="same", kernel_initializer="he_uniform", input_shape=(None, width)))
            norms.append(BatchNormalization(input_shape=(None, f)))
            width = f
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.pool = GlobalAveragePooling1D()
        self.shuffle = Permute((2, 1))
        self.rnn = recurrent(self.cell, self.units, input_shape=(None, self.length))
        self.drop = built_dropout(self.dropout_rate)
        self.join = Concatenate()
        self.head = Dense(self.num_classes, input_dim=width + self.units)
        self.built = True

    def call(self, inputs: Tensor, mask: Optional[Tensor] = None, training: Optional[bool] = None) -> Tensor:
        """(B, T', F) features, T' <= T, NaN-padded at the end -> logits (B, C)."""
        x = torch.as_tensor(inputs)
        if x.dim() != 3 or x.shape[-1] != self.input_size or x.shape[1] > self.length:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes series of shape (B, T, {self.input_size}) "
                             f"with T <= {self.length}; got shape {tuple(x.shape)}")
        x = x.to(self.head.kernel.dtype)
        if mask is not None:
            mask = torch.as_tensor(mask, device=x.device).bool()
            if tuple(mask.shape) != tuple(x.shape[:2]):
                raise ValueError(f"`mask` must have shape (B, T) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
        if x.shape[1] < self.length:  # pad to the length the LSTM was built for
            pad = x.new_full((x.shape[0], self.length - x.shape[1], x.shape[2]), math.nan)
            x = torch.cat([x, pad], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_zeros(pad.shape[:2])], dim=1)
        nan = torch.isnan(x)
        if mask is None and not bool(nan.any()):
            # The common case (equal-length series, no missing values): nothing to mask, and the
            # unmasked statistics and pooling give the same values in less time.
            fcn = self._fcn(x, None, training)
        else:
            if mask is None:
                mask = ~nan.all(-1)  # (B, T): padding is a step of NaNs only
            x = torch.where(nan, torch.zeros_like(x), x) * mask.unsqueeze(-1)
            fcn = self._fcn(x, mask, training)
        rnn = self.drop(self.rnn(self.shuffle(x)), training=training)  # (B, F, T) -> (B, H)
        return self.head(self.join([fcn, rnn]))  # (B, C)

    def _fcn(self, x: Tensor, mask: Optional[Tensor], training: Optional[bool]) -> Tensor:
        """The convolutional branch: x (B, T, F), mask (B, T) or None (every step real) -> (B, U_3)."""
        keep = None if mask is None else mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = torch.relu(norm(conv(h), mask=mask, training=training))  # (B, T, U_i)
            if keep is not None:
                # Zeroing padding after each block keeps it what "same" padding reads at the end of a series.
                h = h * keep
        return self.pool(h, mask=mask)  # (B, U_3)

    def predict_proba(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, C), in eval mode without gradients."""
        logits = torch.as_tensor(self.predict(x, batch_size=batch_size, verbose=0))
        return torch.softmax(logits, dim=-1).numpy()

    @staticmethod
    def expected_params(num_classes: int, input_size: int, length: int, units: int = 8, cell: str = "lstm",
                        filters: Sequence[int] = (128, 256, 128), kernel_sizes: Sequence[int] = (8, 5, 3)) -> int:
        """The documented parameter count (``count_params``), moving statistics included."""
        widths = (input_size, *filters)
        conv = sum(k * widths[i] * f + f for i, (f, k) in enumerate(zip(filters, kernel_sizes)))
        norm = sum(4 * f for f in filters)
        gates, biases = {"lstm": (4, 1), "gru": (3, 2), "rnn": (1, 1)}[check_cell(cell)]
        rnn = gates * units * (length + units + biases)
        head = (filters[-1] + units) * num_classes + num_classes
        return conv + norm + rnn + head

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "input_size": self.input_size, "length": self.length,
                "units": self.units, "cell": self.cell, "filters": list(self.filters), "kernel_sizes": list(self.kernel_sizes),
                "dropout": self.dropout_rate, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LSTMFCN":
        return cls(**config)


def _sequence(value: Any, argument: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a non-empty sequence of "
                         f"positive integers (one per convolution block), got {value!r}")
    return tuple(value)
