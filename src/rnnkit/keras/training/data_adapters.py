"""Where fit/evaluate/predict get their batches: one adapter per kind of data.

Every adapter gives passes over its data as batches ``Batch(x, y, sample_weight)`` of
nested torch tensors (x and y keep the structure the user gave: a tensor, or a tuple,
list or dict of them), and says how many batches a pass holds, or None when that is
not known in advance. The training loop uses only that, except that arrays also
give their sample order (``order``/``take``), so checkpoints can resume inside an epoch
and data-parallel processes can split each batch.

    kind                      a batch is                         batches per pass
    arrays (numpy, torch)     batch_size rows, sliced            ceil(N / batch_size)
    Python generator          what it yields                     unknown (one pass only)
    PyDataset / Sequence      dataset[i]                         len(dataset)
    torch Dataset             batch_size samples, collated       ceil(len(dataset) / batch_size)
    torch IterableDataset     batch_size samples, collated       unknown
    torch DataLoader          what it yields                     len(loader) when it has one

As in Keras, arrays are shuffled each epoch when ``shuffle=True``, a PyDataset has
the order of its batches shuffled, and the other kinds keep their own order (shuffle
them in the DataLoader). Items are ``(x, y)`` or ``(x, y, sample_weight)``; lists are
read as tuples, since torch's default collate turns ``(x, y)`` samples into lists.

``EpochIterator`` cuts passes into epochs the way Keras does: ``steps_per_epoch``
batches per epoch, continuing the same pass across epochs; a source that runs out
first is warned about, and a generator, which cannot be restarted, stops training.
"""

from __future__ import annotations

import itertools
import types
import warnings
from typing import Any, Callable, Iterator, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, default_collate

from .data import (Data, as_data, batches, check_same_length, epoch_order, flatten, num_batches,
                   num_samples, take, to_tensor)


class Batch(NamedTuple):
    x: Data
    y: Optional[Data] = None
    sample_weight: Optional[Tensor] = None


class PyDataset:
    """Keras's ``keras.utils.PyDataset`` (alias ``Sequence``): batches by index.

    Subclass it and define ``__len__`` (batches per epoch) and ``__getitem__(i)``
    returning ``(x, y)`` or ``(x, y, sample_weight)`` for batch i. ``on_epoch_begin``
    and ``on_epoch_end`` are called around every epoch. For an endless dataset define
    the ``num_batches`` property to return None (and pass ``steps_per_epoch``).

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are accepted for
    Keras code and ignored: batches are read in the training process, in order.
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        self.workers, self.use_multiprocessing, self.max_queue_size = workers, use_multiprocessing, max_queue_size

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) returning one batch")

    @property
    def num_batches(self) -> Optional[int]:
        if hasattr(self, "__len__"):
            return len(self)  # type: ignore[arg-type]
        raise NotImplementedError(f"{type(self).__name__} must define __len__, or num_batches (None when endless)")

    def on_epoch_begin(self) -> None:
        pass

    def on_epoch_end(self) -> None:
        pass


Sequence = PyDataset


def unpack_x_y_sample_weight(data: Any) -> tuple[Any, Any, Any]:
    """Keras's helper: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` -> (x, y, sample_weight)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if 1 <= len(data) <= 3:
        return (data + (None, None))[:3]  # type: ignore[return-value]
    raise ValueError(f"Data must be x, (x,), (x, y) or (x, y, sample_weight), got a tuple of {len(data)} items")


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
    """Keras's helper, the inverse of ``unpack_x_y_sample_weight``."""
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


# -- what a batch must look like ----------------------------------------------------------------

def _describe(item: Any) -> str:
    if isinstance(item, (Tensor, np.ndarray)):
        return f"a {type(item).__name__} of shape {tuple(item.shape)}"
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)} items"
    return f"a {type(item).__name__}"


def _leaf(a: Any, where: Callable[[], str], float_dtype: torch.dtype) -> Tensor:
    """One streamed array -> a tensor with rnnkit's dtypes (floats: the model's, ints: int64)."""
    if isinstance(a, Tensor):
        t = a.detach()
    else:
        try:
            arr = np.asarray(a)
        except ValueError as e:
            raise TypeError(f"{where()} is not a rectangular array ({e})") from None
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{where()} must hold numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(f"{where()} must be real, got dtype {t.dtype}")
    if t.is_floating_point() or t.dtype == torch.bool:
        if t.dtype != float_dtype:
            t = t.to(float_dtype)
    elif t.dtype != torch.int64:
        t = t.long()
    if t.dim() == 0:
        raise ValueError(f"{where()} must have a leading batch axis (B, ...), got a scalar")
    return t


def _signature(d: Data) -> list[tuple[str, int, bool, tuple[int, ...]]]:
    # Axis 1 may change between batches (sequences bucketed by length); the rest may not.
    return [(path, t.dim(), t.is_floating_point(), tuple(t.shape[2:])) for path, t in flatten(d)]


def _shape_text(dim: int, floating: bool, rest: tuple[int, ...]) -> str:
    # Axis 1 is free: T for sequences (B, T, F); for rank 2 it may be T (token ids) or a size.
    axes = ["B", "T" if dim >= 3 else "*"][:dim] + [str(s) for s in rest]
    return f"{'float' if floating else 'integer'} of shape ({', '.join(axes)}{',' if dim == 1 else ''})"


class _Stream:
    """Turns the items of a non-array source into checked ``Batch``es.

    The first batch fixes the structure, ranks, dtype kinds and sizes past axis 1 of x,
    y and sample_weight; a later batch that differs is an error that names its index.
    """

    def __init__(self, argument: str, kind: str, float_dtype: torch.dtype, need_y: bool) -> None:
        self.argument, self.kind, self.float_dtype, self.need_y = argument, kind, float_dtype, need_y
        self.expected: Optional[tuple[Any, ...]] = None

    def where(self, index: int, part: str = "", path: str = "") -> str:
        return f"Argument `{self.argument}` ({self.kind}): batch {index}{f' {part}{path}' if part else ''}"

    def convert(self, item: Any, index: int) -> Batch:
        if isinstance(item, list):
            item = tuple(item)
        if isinstance(item, tuple) and 1 <= len(item) <= 3:
            x, y, sw = (tuple(item) + (None, None))[:3]
        elif isinstance(item, tuple) or self.need_y:
            raise TypeError(f"{self.where(index)} must be a tuple (x, y) or (x, y, sample_weight), "
                            f"got {_describe(item)}")
        else:
            x, y, sw = item, None, None  # predict: x alone
        if self.need_y and y is None:
            raise TypeError(f"{self.where(index)} must be a tuple (x, y) or (x, y, sample_weight) with targets, "
                            f"got {_describe(item)}")
        dt = self.float_dtype
        x = _tree(x, self, index, "x", dt)
        if y is not None:
            y = _tree(y, self, index, "y", dt)
        if sw is not None:
            sw = check_sample_weight(_leaf(sw, lambda: self.where(index, "sample_weight"), dt),
                                     self.where(index, "sample_weight"))
        self._check(Batch(x, y, sw), index)
        return Batch(x, y, sw)

    def _check(self, batch: Batch, index: int) -> None:
        got = (type(batch.x), _signature(batch.x), batch.y is not None and _signature(batch.y),
               batch.sample_weight is not None and _signature(batch.sample_weight))
        sizes = {f"x{p}": int(t.shape[0]) for p, t in flatten(batch.x)}
        if batch.y is not None:
            sizes.update({f"y{p}": int(t.shape[0]) for p, t in flatten(batch.y)})
        if batch.sample_weight is not None:
            sizes["sample_weight"] = int(batch.sample_weight.shape[0])
        if len(set(sizes.values())) > 1:
            raise ValueError(f"{self.where(index)} has parts of different batch sizes: "
                             + ", ".join(f"{k} has {v}" for k, v in sizes.items()))
        if self.expected is None:
            self.expected = got
            return
        if got == self.expected:
            return
        for part, want, have in (("x", self.expected[1], got[1]), ("y", self.expected[2], got[2]),
                                 ("sample_weight", self.expected[3], got[3])):
            if want == have:
                continue
            if not want or not have or [p for p, *_ in want] != [p for p, *_ in have]:
                raise ValueError(f"{self.where(index, part)} has a different structure from batch 0's "
                                 f"({'none' if not have else [p or part for p, *_ in have]} vs "
                                 f"{'none' if not want else [p or part for p, *_ in want]})")
            for (path, *w), (_, *h) in zip(want, have):
                if w != h:
                    raise ValueError(f"{self.where(index, part, path)} must be {_shape_text(*w)} like batch 0's, "
                                     f"got {_shape_text(*h)}")
        raise ValueError(f"{self.where(index, 'x')} has a different structure from batch 0's")


def _tree(d: Any, stream: _Stream, index: int, part: str, dt: torch.dtype, path: str = "") -> Any:
    """``_leaf`` over a nested tuple/list/dict, naming the leaf (``x[0]``, ``x['ids']``) in errors."""
    if isinstance(d, dict):
        return {k: _tree(v, stream, index, part, dt, f"{path}[{k!r}]") for k, v in d.items()}
    if isinstance(d, (tuple, list)):
        return type(d)(_tree(v, stream, index, part, dt, f"{path}[{i}]") for i, v in enumerate(d))
    return _leaf(d, lambda: stream.where(index, part, path), dt)


def check_sample_weight(sw: Tensor, where: str) -> Tensor:
    """Finite, non-negative weights of shape (B,) or (B, T) (or (B, 1))."""
    if not sw.is_floating_point():
        sw = sw.to(torch.get_default_dtype())
    if sw.dim() > 2:
        raise ValueError(f"{where} must have shape (B,) or, for sequence outputs, (B, T); got shape {tuple(sw.shape)}")
    bad = ~torch.isfinite(sw) | (sw < 0)
    if bool(bad.any()):
        first = sw[bad].flatten()[0].item()
        raise ValueError(f"{where} must hold finite weights >= 0, got {first!r} "
                         f"({int(bad.sum())} such value{'s' if int(bad.sum()) > 1 else ''})")
    return sw


# -- adapters ----------------------------------------------------------------------------------

class DataAdapter:
    """One data source: ``batches()`` starts a pass over the data, ``num_batches`` is its length (or None)."""

    num_batches: Optional[int] = None
    one_shot = False  # a generator: a pass cannot be restarted
    kind = "data"

    def batches(self) -> Iterator[Batch]:
        raise NotImplementedError

    def first(self) -> Batch:
        """The first batch (to build the model and check weights), without using it up."""
        raise NotImplementedError

    def on_epoch_begin(self) -> None:
        pass

    def on_epoch_end(self) -> None:
        pass


class ArrayAdapter(DataAdapter):
    """Arrays converted to tensors once; each batch is rows of them (a gather, no copy to numpy)."""

    kind = "arrays"

    def __init__(self, x: Data, y: Optional[Data], sample_weight: Optional[Tensor], batch_size: int,
                 shuffle: bool) -> None:
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.samples = num_samples(x)
        self.num_batches = num_batches(self.samples, batch_size)

    def order(self) -> Tensor:
        return epoch_order(self.samples, self.shuffle)

    def take(self, index: Any) -> Batch:
        sw = self.sample_weight
        return Batch(take(self.x, index), None if self.y is None else take(self.y, index),
                     None if sw is None else sw[index])

    def batches(self, order: Optional[Tensor] = None) -> Iterator[Batch]:
        if order is None and not self.shuffle:
            # In order: rows [start, stop) as views, the same values as gathering 0..N-1 without
            # a copy per batch (evaluate, predict, validation).
            for start in range(0, self.samples, self.batch_size):
                yield self.take(slice(start, start + self.batch_size))
            return
        for index in batches(self.order() if order is None else order, self.batch_size):
            yield self.take(index)

    def first(self) -> Batch:
        return self.take(slice(0, min(2, self.samples)))


class _StreamAdapter(DataAdapter):
    """A source of items that ``_Stream`` converts; ``open()`` starts a pass over it."""

    def __init__(self, stream: _Stream, open_: Callable[[], Iterator[Any]], num_batches_: Optional[int]) -> None:
        self.stream, self.open, self.num_batches = stream, open_, num_batches_
        self.kind = stream.kind
        self._first: Optional[Batch] = None

    def batches(self) -> Iterator[Batch]:
        for i, item in enumerate(self.open()):
            yield self.stream.convert(item, i)

    def first(self) -> Batch:
        if self._first is None:
            for batch in self.batches():
                self._first = batch
                break
            else:
                raise ValueError(f"Argument `{self.stream.argument}` ({self.kind}) yielded no batches")
        return self._first


class GeneratorAdapter(_StreamAdapter):
    """A Python generator or iterator: one pass, in its order; the batch read by ``first()`` is kept."""

    one_shot = True

    def __init__(self, stream: _Stream, it: Iterator[Any]) -> None:
        super().__init__(stream, lambda: it, None)
        self.it = it
        self.index = 0
        self._pending: list[Batch] = []

    def batches(self) -> Iterator[Batch]:
        while True:
            if self._pending:
                yield self._pending.pop(0)
                continue
            try:
                item = next(self.it)
            except StopIteration:
                return
            batch = self.stream.convert(item, self.index)
            self.index += 1
            yield batch

    def has_more(self) -> bool:
        """Whether the generator has another batch (read ahead and kept for the next pass)."""
        if self._pending:
            return True
        try:
            item = next(self.it)
        except StopIteration:
            return False
        self._pending.append(self.stream.convert(item, self.index))
        self.index += 1
        return True

    def first(self) -> Batch:
        if self._first is None:
            try:
                item = next(self.it)
            except StopIteration:
                raise ValueError(f"Argument `{self.stream.argument}` ({self.kind}) yielded no batches") from None
            self._first = self.stream.convert(item, 0)
            self.index = 1
            self._pending.append(self._first)
        return self._first


class PyDatasetAdapter(_StreamAdapter):
    """``dataset[i]`` for i in range(len(dataset)), the order shuffled each epoch when asked (as Keras)."""

    def __init__(self, stream: _Stream, dataset: Any, shuffle: bool) -> None:
        n = dataset.num_batches if isinstance(dataset, PyDataset) else len(dataset)
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
            raise TypeError(f"Argument `{stream.argument}`: len() of a PyDataset must be a number of batches, got {n!r}")
        self.dataset, self.shuffle = dataset, shuffle
        super().__init__(stream, self._items, None if n is None else int(n))

    def _items(self) -> Iterator[Any]:
        if self.num_batches is None:
            indices: Any = itertools.count()
        else:
            indices = torch.randperm(self.num_batches).tolist() if self.shuffle else range(self.num_batches)
        for i in indices:
            yield self.dataset[i]

    def batches(self) -> Iterator[Batch]:
        # Batch indices in messages are positions in the epoch, as for the other kinds.
        for i, item in enumerate(self._items()):
            yield self.stream.convert(item, i)

    def first(self) -> Batch:
        if self._first is None:
            if self.num_batches == 0:
                raise ValueError(f"Argument `{self.stream.argument}` ({self.kind}) has no batches (len 0)")
            self._first = self.stream.convert(self.dataset[0], 0)
        return self._first

    def on_epoch_begin(self) -> None:
        hook = getattr(self.dataset, "on_epoch_begin", None)
        if callable(hook):
            hook()

    def on_epoch_end(self) -> None:
        hook = getattr(self.dataset, "on_epoch_end", None)
        if callable(hook):
            hook()


def loader_batches(loader: DataLoader) -> Iterator[Any]:
    """The batches of ``loader``, as iterating it gives them.

    Fast path: a ``DataLoader(TensorDataset(...))`` with the default collation, no workers and no
    pinned memory. Its fetch and collate (one ``dataset[i]`` per sample, then ``torch.stack``)
    cost 0.17 ms per batch of 32 here, more than the rest of a small training step's overhead.
    Each batch is then the loader's own next index list (the same sampler, the same RNG draws)
    applied to each tensor at once, which gives the same tensors. It reads the iterator's
    ``_next_index`` (torch private API, present since torch 1.x); any other loader, or an
    iterator without it, is iterated as it is. ``tests/keras/test_data_adapters.py`` holds the
    fast path to ``list(loader)``.
    """
    it = iter(loader)
    fast = (type(loader.dataset) is TensorDataset and loader.num_workers == 0 and not loader.pin_memory
            and loader.batch_sampler is not None and loader.collate_fn is default_collate
            and callable(getattr(it, "_next_index", None)))
    if not fast:
        yield from it
        return
    tensors = loader.dataset.tensors
    while True:
        try:
            index = it._next_index()
        except StopIteration:
            return
        rows = torch.as_tensor(index, dtype=torch.long)
        yield [t[rows] for t in tensors]  # a list, as default_collate gives for tuple samples


def _loader_length(loader: DataLoader) -> Optional[int]:
    try:
        return len(loader)
    except TypeError:  # an IterableDataset without __len__
        return None


def _unsupported(argument: str, name: str, value: Any, kind: str) -> None:
    if value is not None:
        raise ValueError(f"When `{argument}` is a {kind}, argument `{name}` must not be passed: "
                         f"the {kind} yields (x, y) or (x, y, sample_weight) itself")


def get_adapter(model: Any, x: Any, y: Any = None, sample_weight: Any = None, *, batch_size: int, shuffle: bool,
                need_y: bool, argument: str = "x", y_argument: str = "y",
                sample_weight_argument: str = "sample_weight") -> DataAdapter:
    """The adapter for ``x`` (and, for arrays, ``y`` and ``sample_weight``)."""
    dtype = model._float_dtype()
    if _is_arrays(x):
        multi = not hasattr(model, "add")  # subclassed models may take several inputs; Sequential takes one
        xd = as_data(x, argument, dtype, multi_input=multi)
        if need_y and y is None:
            raise ValueError(f"Argument `{y_argument}` is required: training and evaluation need targets "
                             f"(or pass a generator, PyDataset or DataLoader that yields (x, y))")
        yd = None
        if y is not None:
            # Several targets only for a model with several outputs; else a list of arrays is stacked.
            yd = as_data(y, y_argument, dtype, multi_input=getattr(model, "_multi_output", False))
            check_same_length(xd, yd, argument, y_argument)
        sw = None
        if sample_weight is not None:
            if y is None:
                raise ValueError(f"Argument `{sample_weight_argument}` needs targets `{y_argument}`")
            sw = check_sample_weight(to_tensor(sample_weight, sample_weight_argument, dtype),
                                     f"Argument `{sample_weight_argument}`")
            n = num_samples(xd)
            if sw.shape[0] != n:
                raise ValueError(f"Argument `{sample_weight_argument}` must have one weight per sample, shape ({n},) "
                                 f"or ({n}, T); got shape {tuple(sw.shape)}")
        return ArrayAdapter(xd, yd, sw, batch_size, shuffle)
    for name, value in ((y_argument, y), (sample_weight_argument, sample_weight)):
        if value is not None:
            _unsupported(argument, name, value, _kind(x))
    stream = _Stream(argument, _kind(x), dtype, need_y)
    if isinstance(x, DataLoader):
        return _StreamAdapter(stream, lambda: loader_batches(x), _loader_length(x))
    if isinstance(x, (Dataset, IterableDataset)):
        # torch datasets hold samples: batch them as a DataLoader would, in their order.
        loader = DataLoader(x, batch_size=batch_size, shuffle=False)
        return _StreamAdapter(stream, lambda: iter(loader), _loader_length(loader))
    if isinstance(x, PyDataset) or (hasattr(x, "__getitem__") and hasattr(x, "__len__")):
        return PyDatasetAdapter(stream, x, shuffle)
    if isinstance(x, types.GeneratorType) or hasattr(x, "__next__"):
        return GeneratorAdapter(stream, x)
    raise TypeError(f"Argument `{argument}` must be arrays (numpy or torch; a list, tuple or dict of them for several "
                    "inputs), a generator, a keras.utils.PyDataset, or a torch Dataset, IterableDataset or DataLoader; "
                    f"got {type(x).__name__}")


def _kind(x: Any) -> str:
    if isinstance(x, DataLoader):
        return "torch DataLoader"
    if isinstance(x, IterableDataset):
        return "torch IterableDataset"
    if isinstance(x, Dataset):
        return "torch Dataset"
    if isinstance(x, PyDataset) or (hasattr(x, "__getitem__") and hasattr(x, "__len__")):
        return "PyDataset"
    return "generator"


def _is_arrays(x: Any) -> bool:
    """Numbers in arrays (or nested lists of them), or a tuple/list/dict of such arrays."""
    if isinstance(x, (Tensor, np.ndarray, int, float, bool, np.number)) or hasattr(x, "__array__"):
        return True  # __array__: pandas and other array-likes, as Keras converts them
    if isinstance(x, dict):
        return all(_is_arrays(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_is_arrays(v) for v in x)
    return x is None


# -- epochs ------------------------------------------------------------------------------------

class EpochIterator:
    """Epochs of batches from an adapter, with Keras's ``steps_per_epoch`` semantics.

    Without ``steps`` an epoch is one pass. With ``steps`` an epoch is that many
    batches and the pass continues into the next epoch, starting over once it is used
    up. A pass that ends inside an epoch ends that epoch early, with a warning; a
    source that cannot start over (a generator) is then ``exhausted``, which ends
    training.
    """

    def __init__(self, adapter: DataAdapter, steps: Optional[int], argument: str = "steps_per_epoch") -> None:
        self.adapter, self.steps, self.argument = adapter, steps, argument
        self.known = adapter.num_batches  # learnt after one pass when the adapter cannot say
        self._it: Optional[Iterator[Batch]] = None
        self._seen = 0
        self.exhausted = False
        self._warned = False
        self.epochs = 0

    @property
    def num_steps(self) -> Optional[int]:
        """Batches per epoch: ``steps``, the adapter's length, or None while unknown."""
        return self.steps or self.known

    def __iter__(self) -> Iterator[tuple[int, Batch]]:
        self.adapter.on_epoch_begin()
        self.epochs += 1
        if self.steps:
            if self._it is None:
                self._it, self._seen = iter(self.adapter.batches()), 0
            for step in range(self.steps):
                if self.known is not None and self._seen >= self.known:
                    self._warn(step)
                    break
                try:
                    batch = next(self._it)
                except StopIteration:
                    self.known = self._seen
                    self.exhausted = self.adapter.one_shot
                    self._warn(step)
                    break
                self._seen += 1
                yield step, batch
            if self.known is not None and self._seen >= self.known:
                self._it = None  # the next epoch starts a new pass
            elif isinstance(self.adapter, GeneratorAdapter) and not self.exhausted and not self.adapter.has_more():
                self.exhausted = True  # used up exactly at the end of this epoch: the next one warns
        else:
            count = 0
            for count, batch in enumerate(self.adapter.batches(), 1):
                yield count - 1, batch
            self.known = count if self.known is None else self.known
            self.exhausted = self.adapter.one_shot
        self.adapter.on_epoch_end()

    def _warn(self, step: int) -> None:
        self._warned = self.exhausted
        what = "training" if self.exhausted else "the epoch"
        warnings.warn(f"Your input ran out of data after {step} of the {self.steps} batches of epoch {self.epochs} "
                      f"(`{self.argument}`={self.steps}); interrupting {what}. Make sure that the {self.adapter.kind} "
                      f"can give at least `{self.argument}` * epochs batches", RuntimeWarning, stacklevel=3)

    def warn_exhausted(self) -> None:
        """Called instead of starting an epoch when a generator has nothing left."""
        if self._warned:
            return  # said already (when it ran out inside the last epoch, or for an earlier epoch)
        self._warned = True
        warnings.warn(f"Your input ran out of data: the {self.adapter.kind} was used up after epoch {self.epochs}; "
                      f"interrupting training. Pass `{self.argument}` and a generator that yields at least "
                      f"`{self.argument}` * epochs batches (or a PyDataset or DataLoader, which can start over)",
                      RuntimeWarning, stacklevel=3)
