"""Argument checks and small builders shared by the ready-made architectures."""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor

from ..keras.layers import GRU, LSTM, BaseRNN, Dropout, MinGRU, MinLSTM, SimpleRNN

#: Recurrent cells a model can be built with; "rnn" is the tanh ``SimpleRNN``.
CELLS = ("lstm", "gru", "rnn")
#: minGRU / minLSTM (``keras.layers.MinGRU``/``MinLSTM``), for the models that take them.
SCAN_CELLS = ("mingru", "minlstm")


def check_cell(cell: Any, cells: tuple[str, ...] = CELLS) -> str:
    if cell not in cells:
        raise ValueError(f"Received an invalid value for argument `cell`: expected one of {cells}, got {cell!r}")
    return cell


def check_positive(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a positive integer, got {value!r}")
    return value


def check_rate(value: Any, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a float in [0, 1), got {value!r}")
    return float(value)


def check_vocab_size(value: Any, argument: str, minimum: int = 2) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected an integer >= {minimum} "
                         f"(the number of token ids, padding included), got {value!r}")
    return value


def recurrent(cell: str, units: int, **kwargs: Any) -> Union[BaseRNN, MinGRU]:
    """A Keras-style recurrent layer of the given cell kind."""
    if cell in SCAN_CELLS:
        return (MinGRU if cell == "mingru" else MinLSTM)(units, **kwargs)
    if cell == "lstm":
        return LSTM(units, **kwargs)
    if cell == "gru":
        return GRU(units, **kwargs)
    return SimpleRNN(units, **kwargs)


def built_dropout(rate: float) -> Dropout:
    """A Dropout layer marked built (it has no weights), so a fresh model counts as built for saving."""
    layer = Dropout(rate)
    layer.maybe_build((None, None))
    return layer


def n_states(cell: str) -> int:
    """State tensors per direction: (h, c) for LSTM, (h,) otherwise."""
    return 2 if cell == "lstm" else 1


def as_ids(x: Any, argument: str, vocab_size: int, rank: int = 2) -> Tensor:
    """Token ids as an int64 tensor of the given rank, every id in [0, vocab_size)."""
    t = torch.as_tensor(x)
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"`{argument}` must hold integer token ids, got dtype {t.dtype}")
    if t.dim() != rank:
        want = "(B, T)" if rank == 2 else "(B,)" if rank == 1 else f"rank {rank}"
        raise ValueError(f"`{argument}` must have shape {want}, got shape {tuple(t.shape)}")
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"`{argument}` holds ids in [{lo}, {hi}], but the model's vocabulary has {vocab_size} ids "
                             f"[0, {vocab_size - 1}]: was it encoded with another vocabulary?")
    return t.long()


def as_floats(x: Any, argument: str, features: Optional[int], rank: int, dtype: torch.dtype) -> Tensor:
    """A floating tensor of the given rank whose last axis is ``features`` (if given)."""
    t = torch.as_tensor(x)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"`{argument}` must hold real numbers, got dtype {t.dtype}")
    names = {2: "(B, F)", 3: "(B, T, F)"}
    if t.dim() != rank or (features is not None and t.shape[-1] != features):
        want = names.get(rank, f"rank {rank}").replace("F", str(features) if features is not None else "F")
        raise ValueError(f"`{argument}` must have shape {want}, got shape {tuple(t.shape)}")
    return t.to(dtype)


def state_list(state: Union[Tensor, list[Tensor], tuple[Tensor, ...]]) -> list[Tensor]:
    return [state] if isinstance(state, Tensor) else list(state)
