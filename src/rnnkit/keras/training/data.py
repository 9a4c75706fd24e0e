"""Turn fit/evaluate/predict arguments into checked tensors, and cut them into batches.

Inputs are numpy arrays, torch tensors or nested lists of numbers; a list, tuple or
dict of arrays is the input of a multi-input model, and reaches the model with the
same structure. Floating data becomes the model's dtype (numpy's float64 default is
not a request for float64 weights), integers become int64 (embedding indices, sparse
labels), bools become floats.

Data that is not arrays (generators, datasets, DataLoaders) goes through
``data_adapters``, which uses the helpers here batch by batch.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch
from torch import Tensor

# One tensor, or a (nested) tuple, list or dict of tensors.
Data = Union[Tensor, tuple, list, dict]


def is_nested(d: Any) -> bool:
    return isinstance(d, (tuple, list, dict))


def map_tree(fn: Any, d: Any) -> Any:
    """``fn`` applied to every tensor of a nested tuple/list/dict; the structure is kept."""
    if isinstance(d, dict):
        return {k: map_tree(fn, v) for k, v in d.items()}
    if isinstance(d, (tuple, list)):
        return type(d)(map_tree(fn, v) for v in d)
    return fn(d)


def flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, leaf) pairs in order; paths read like ``[0]`` or ``["ids"]`` for messages."""
    if isinstance(d, dict):
        return [item for k, v in d.items() for item in flatten(v, f"{prefix}[{k!r}]")]
    if isinstance(d, (tuple, list)):
        return [item for i, v in enumerate(d) for item in flatten(v, f"{prefix}[{i}]")]
    return [(prefix, d)]


def to_tensor(a: Any, argument: str, float_dtype: torch.dtype) -> Tensor:
    """One array-like -> a tensor (CPU or wherever it already lives), dtype normalised, finite."""
    if isinstance(a, Tensor):
        t = a.detach()
    elif isinstance(a, (dict, set, str, bytes)):
        raise TypeError(f"Argument `{argument}` must be an array of numbers (numpy, torch or nested lists), "
                        f"got {type(a).__name__}")
    else:
        if not isinstance(a, np.ndarray):
            try:
                a = np.asarray(a)
            except ValueError as e:  # ragged nested lists
                raise TypeError(f"Argument `{argument}` must be a rectangular array; pad ragged sequences first "
                                f"(rnnkit.data.pad_sequences): {e}") from None
        if a.dtype == object:
            raise TypeError(f"Argument `{argument}` must be a numeric array, got an object array (ragged sequences? "
                            "pad them with rnnkit.data.pad_sequences)")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise TypeError(f"Argument `{argument}` must hold numbers, got dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.is_complex():
        raise TypeError(f"Argument `{argument}` must be real, got dtype {t.dtype}")
    if t.dtype == torch.bool:
        t = t.to(float_dtype)
    elif t.is_floating_point():
        t = t.to(float_dtype)
    elif t.dtype != torch.int64:
        t = t.long()
    if t.dim() == 0:
        raise ValueError(f"Argument `{argument}` must have a leading batch axis (B, ...), got a scalar")
    if t.shape[0] == 0:
        raise ValueError(f"Argument `{argument}` is empty: it has 0 samples (shape {tuple(t.shape)})")
    # One pass first: a NaN or inf makes the sum NaN or inf. Only then (or when finite values
    # overflow the sum) the exact check, which allocates several masks the size of the data.
    if t.is_floating_point() and not math.isfinite(float(t.sum())):
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            rows = bad.reshape(t.shape[0], -1).any(1).nonzero().flatten()
            raise ValueError(f"Argument `{argument}` contains NaN or inf values ({int(bad.sum())} of them, first in "
                             f"sample {int(rows[0])}); clean or impute the data before training")
    return t


def as_data(a: Any, argument: str, float_dtype: torch.dtype, multi_input: bool = False) -> Data:
    """An input: one tensor, or (``multi_input``) a tuple of tensors from a list of arrays.

    For a single-input model a list of arrays is stacked into one array, so a list of
    equally long padded sequences works.
    """
    if a is None:
        raise ValueError(f"Argument `{argument}` is required, got None")
    if multi_input and isinstance(a, dict):
        if not a:
            raise ValueError(f"Argument `{argument}` is an empty dict; expected a dict of input arrays")
        return {k: to_tensor(e, f"{argument}[{k!r}]", float_dtype) for k, e in a.items()}
    if multi_input and isinstance(a, (list, tuple)) and a and all(isinstance(e, (np.ndarray, Tensor)) for e in a):
        parts = [to_tensor(e, f"{argument}[{i}]", float_dtype) for i, e in enumerate(a)]
        return parts[0] if len(parts) == 1 else type(a)(parts)
    if isinstance(a, (list, tuple)) and a and all(isinstance(e, Tensor) for e in a):
        a = torch.stack([e.detach() for e in a])
    return to_tensor(a, argument, float_dtype)


def num_samples(d: Data) -> int:
    return flatten(d)[0][1].shape[0] if is_nested(d) else d.shape[0]


def check_same_length(x: Data, y: Data, x_name: str = "x", y_name: str = "y") -> None:
    sizes = {f"{x_name}{path}": num_samples(t) for path, t in flatten(x)}
    sizes.update({f"{y_name}{path}": num_samples(t) for path, t in flatten(y)})
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k} has {v}" for k, v in sizes.items())
        raise ValueError(f"Arguments `{x_name}` and `{y_name}` must have the same number of samples; {detail}")


def take(d: Data, index: Union[Tensor, slice]) -> Data:
    if is_nested(d):
        return map_tree(lambda t: t[index], d)
    return d[index]


def to_device(d: Data, device: torch.device) -> Data:
    if is_nested(d):
        return map_tree(lambda t: t.to(device), d)
    return d.to(device)


def time_slice(d: Data, start: int, stop: int) -> Data:
    """Columns [start, stop) of the time axis (axis 1)."""
    if is_nested(d):
        return map_tree(lambda t: t[:, start:stop], d)
    return d[:, start:stop]


def time_steps(d: Data) -> int:
    t = flatten(d)[0][1] if is_nested(d) else d
    if t.dim() < 2:
        raise ValueError(f"tbptt needs inputs with a time axis, (B, T, ...), got shape {tuple(t.shape)}")
    return t.shape[1]


def check_batch_size(batch_size: Any, argument: str = "batch_size") -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected a positive integer, got {batch_size!r}")
    return int(batch_size)


def split_validation(x: Data, y: Data, fraction: float) -> tuple[Data, Data, Data, Data]:
    """Keras's validation_split: the last ``fraction`` of the samples, taken before any shuffling."""
    n = num_samples(x)
    split_at = int(n * (1.0 - fraction))
    if split_at == 0 or split_at == n:
        raise ValueError(f"validation_split={fraction} leaves {split_at} training and {n - split_at} validation samples "
                         f"out of {n}; both must be at least 1")
    return take(x, slice(0, split_at)), take(y, slice(0, split_at)), take(x, slice(split_at, n)), take(y, slice(split_at, n))


def batch_indices(n: int, batch_size: int, shuffle: bool, generator: Optional[torch.Generator] = None) -> Iterator[Tensor]:
    return batches(epoch_order(n, shuffle, generator), batch_size)


def epoch_order(n: int, shuffle: bool, generator: Optional[torch.Generator] = None) -> Tensor:
    """The order of the samples in one epoch: a permutation from torch's RNG, or 0..n-1."""
    return torch.randperm(n, generator=generator) if shuffle else torch.arange(n)


def batches(order: Tensor, batch_size: int) -> Iterator[Tensor]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def to_numpy(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, dict):
        return {k: to_numpy(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(to_numpy(o) for o in out)
    return out


def concat(chunks: list[Any]) -> Any:
    """Concatenate per-batch outputs along the batch axis (tuples and dicts elementwise)."""
    first = chunks[0]
    if isinstance(first, Tensor):
        return torch.cat(chunks, 0)
    if isinstance(first, dict):
        return {k: concat([c[k] for c in chunks]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(concat([c[i] for c in chunks]) for i in range(len(first)))
    raise TypeError(f"predict: the model returned {type(first).__name__}; expected tensors or tuples of tensors")
