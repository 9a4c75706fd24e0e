"""``keras.utils``: the helpers tutorials call, with Keras's semantics."""

from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import torch

from .preprocessing.sequence import pad_sequences as pad_sequences
from .training.data_adapters import PyDataset as PyDataset
from .training.data_adapters import Sequence as Sequence
from .training.data_adapters import pack_x_y_sample_weight as pack_x_y_sample_weight
from .training.data_adapters import unpack_x_y_sample_weight as unpack_x_y_sample_weight


def to_categorical(y: Any, num_classes: Optional[int] = None, dtype: Any = "float32") -> np.ndarray:
    """Integer class labels (N, ...) -> one-hot (N, ..., C), as ``keras.utils.to_categorical``.

    C is ``num_classes``, or max(y) + 1 when None. A trailing axis of size 1 is dropped
    first, as Keras does, so (N, 1) labels give (N, C).
    """
    y = np.asarray(y)
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise ValueError(f"Argument `y` must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.size and y.min() < 0:
        raise ValueError(f"Argument `y` must hold labels >= 0, got {int(y.min())}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"Argument `num_classes` must be a positive integer, got {num_classes!r}")
    if y.size and int(y.max()) >= num_classes:
        raise ValueError(f"Argument `y` holds label {int(y.max())}, not below num_classes={num_classes}")
    out = np.zeros((*y.shape, int(num_classes)), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def set_random_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators at once, as ``keras.utils.set_random_seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"Argument `seed` must be an integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))


__all__ = ["PyDataset", "Sequence", "pack_x_y_sample_weight", "pad_sequences", "set_random_seed", "to_categorical",
           "unpack_x_y_sample_weight"]
