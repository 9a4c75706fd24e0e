"""Metrics by Keras name: running means over an epoch, mask-aware.

``"accuracy"``/``"acc"`` resolves, at the first batch, the way Keras does it:
binary accuracy when the model has one output unit, sparse categorical when the
labels have one axis fewer than the predictions (or a last axis of 1), otherwise
categorical. With a ``from_logits=True`` binary loss the threshold is 0 (a logit
of 0 is a probability of 0.5), where Keras would keep 0.5.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from . import losses as losses_mod
from .losses import align


def _binary_hits(y_true: Tensor, y_pred: Tensor, threshold: float = 0.5) -> Tensor:
    return (y_pred > threshold) == (align(y_true, y_pred) > 0.5)


def _categorical_hits(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return y_true.argmax(-1) == y_pred.argmax(-1)


def _sparse_categorical_hits(y_true: Tensor, y_pred: Tensor) -> Tensor:
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return y_true.long() == y_pred.argmax(-1)


def binary_accuracy(y_true: Tensor, y_pred: Tensor, threshold: float = 0.5) -> Tensor:
    return _binary_hits(y_true, y_pred, threshold).to(y_pred.dtype).mean(-1)


def categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return _categorical_hits(y_true, y_pred).to(y_pred.dtype)


def sparse_categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return _sparse_categorical_hits(y_true, y_pred).to(y_pred.dtype)


# The accuracies' values are 0/1 per sample (binary: per sample with one output unit), so with no
# mask and no weights their running sum is a count of hits: counted as integers, exact, and two
# ops fewer per batch than the float values. Per-sample function -> its (B, ...) bool hits.
_HITS: dict[Callable[..., Tensor], Callable[..., Tensor]] = {
    binary_accuracy: _binary_hits, categorical_accuracy: _categorical_hits,
    sparse_categorical_accuracy: _sparse_categorical_hits,
}


def _sparse_top_k(k: int) -> Callable[[Tensor, Tensor], Tensor]:
    def sparse_top_k_categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
        if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        top = y_pred.topk(min(k, y_pred.shape[-1]), dim=-1).indices
        return (top == y_true.long().unsqueeze(-1)).any(-1).to(y_pred.dtype)

    return sparse_top_k_categorical_accuracy


class Metric:
    """A running value over batches: ``update_state``, ``result``, ``reset_state``."""

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name or type(self).__name__.lower()

    def update_state(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
                     sample_weight: Optional[Tensor] = None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


def masked_sums(values: Tensor, mask: Optional[Tensor] = None,
                sample_weight: Optional[Tensor] = None) -> tuple[Tensor, Union[Tensor, int]]:
    """(sum, count) of per-sample ``values`` on their device, without reading them back; a mask
    (B, T) that fits the leading axes of ``values`` leaves out its False entries.

    With ``sample_weight`` (B,), (B, 1) or (B, T), as Keras: (sum(W * v), sum(W)), where W is the
    weight broadcast over the values times the mask.
    """
    values = values.detach()
    fits = mask is not None and values.dim() >= mask.dim() and mask.shape == values.shape[: mask.dim()]
    if sample_weight is not None:
        w = sample_weight.detach().to(values.dtype)
        if values.dim() == 0:
            values = values.reshape(1).expand(w.shape[0])
            fits = mask is not None and mask.shape == values.shape[: mask.dim()]
        if w.dim() == values.dim() + 1 and w.shape[-1] == 1:
            w = w.squeeze(-1)
        while w.dim() < values.dim():
            w = w.unsqueeze(-1)
        w = w.expand_as(values)
        if fits:
            m = mask.to(values.dtype)  # type: ignore[union-attr]
            while m.dim() < values.dim():
                m = m.unsqueeze(-1)
            w = w * m
        return (values * w).sum(), w.sum()
    if fits:
        m = mask.to(values.dtype)  # type: ignore[union-attr]
        while m.dim() < values.dim():
            m = m.unsqueeze(-1)
        m = m.expand_as(values)
        return (values * m).sum(), m.sum()
    return values.sum(), values.numel()


class Mean(Metric):
    """Weighted running mean of per-sample values; a fitting mask drops masked entries.

    With ``sample_weight`` (B,), (B, 1) or (B, T), as Keras: total += sum(W * v),
    count += sum(W), where W is the weight broadcast over the values times the mask.

    ``total`` and ``count`` are Python floats. An update is ``batch_sums`` (tensors on the
    data's device) then ``add`` (plain numbers), so that ``fit`` can read the sums of every
    metric and the loss back from the device in one transfer per step.
    """

    def __init__(self, name: str = "mean") -> None:
        super().__init__(name)
        self.total = 0.0
        self.count = 0.0

    def update_values(self, values: Tensor, mask: Optional[Tensor] = None, weight: Optional[float] = None,
                      sample_weight: Optional[Tensor] = None) -> None:
        values = values.detach()
        if sample_weight is not None:
            total, count = masked_sums(values, mask, sample_weight)
            self.add(float(total), float(count))
            return
        if weight is not None:
            self.total += float(values.sum()) * weight / max(values.numel(), 1)
            self.count += weight
            return
        total, count = masked_sums(values, mask)
        self.add(float(total), float(count))

    def batch_sums(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
                   sample_weight: Optional[Tensor] = None) -> tuple[Tensor, Union[Tensor, int]]:
        """(sum, count) of this batch's values, left on the device."""
        return masked_sums(y_pred, mask, sample_weight)

    def add(self, total: float, count: float) -> None:
        self.total += total
        self.count += count

    def update_state(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
                     sample_weight: Optional[Tensor] = None) -> None:
        total, count = self.batch_sums(y_true, y_pred, mask, sample_weight)
        self.add(float(total), float(count))

    def result(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0


class MeanMetricWrapper(Mean):
    """Mean of ``fn(y_true, y_pred)`` over all samples (and unmasked steps)."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], name: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(name or getattr(fn, "__name__", "metric"))
        self.fn, self.kwargs = fn, kwargs

    def batch_sums(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
                   sample_weight: Optional[Tensor] = None) -> tuple[Tensor, Union[Tensor, int]]:
        with torch.no_grad():
            hits = _HITS.get(self.fn) if mask is None and sample_weight is None else None
            if hits is not None and (self.fn is not binary_accuracy or y_pred.shape[-1:] == (1,)):
                right = hits(y_true, y_pred, **self.kwargs)
                return right.count_nonzero(), right.numel()  # no bool -> int64 copy, as sum() makes
            return masked_sums(self.fn(y_true, y_pred, **self.kwargs), mask, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.kwargs}


class RootMeanSquaredError(Mean):
    """sqrt of the mean squared error over the epoch (not the mean of per-batch roots)."""

    def __init__(self, name: str = "root_mean_squared_error") -> None:
        super().__init__(name)

    def batch_sums(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
                   sample_weight: Optional[Tensor] = None) -> tuple[Tensor, Union[Tensor, int]]:
        with torch.no_grad():
            return masked_sums(losses_mod.mean_squared_error(y_true, y_pred), mask, sample_weight)

    def result(self) -> float:
        return math.sqrt(super().result()) if self.count else float("nan")


def _loss_metric(fn: Callable[..., Tensor], **kwargs: Any) -> Callable[[str], Metric]:
    return lambda name: MeanMetricWrapper(fn, name, **kwargs)


_BY_NAME: dict[str, Callable[[str], Metric]] = {
    "binary_accuracy": _loss_metric(binary_accuracy),
    "categorical_accuracy": _loss_metric(categorical_accuracy),
    "sparse_categorical_accuracy": _loss_metric(sparse_categorical_accuracy),
    "sparse_top_k_categorical_accuracy": _loss_metric(_sparse_top_k(5)),
    "mean_squared_error": _loss_metric(losses_mod.mean_squared_error),
    "mean_absolute_error": _loss_metric(losses_mod.mean_absolute_error),
    "mean_absolute_percentage_error": _loss_metric(losses_mod.mean_absolute_percentage_error),
    "root_mean_squared_error": RootMeanSquaredError,
    "binary_crossentropy": _loss_metric(losses_mod.binary_crossentropy),
    "categorical_crossentropy": _loss_metric(losses_mod.categorical_crossentropy),
    "sparse_categorical_crossentropy": _loss_metric(losses_mod.sparse_categorical_crossentropy),
}
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
            "rmse": "root_mean_squared_error"}
# Resolved from the shapes of the first batch (and the loss), as Keras does.
_SHAPE_DEPENDENT = ("accuracy", "acc", "crossentropy", "ce")
NAMES = tuple(sorted(set(_BY_NAME) | set(_ALIASES) | set(_SHAPE_DEPENDENT)))

MetricLike = Union[str, Metric, Callable[[Tensor, Tensor], Tensor]]


def check(identifier: MetricLike) -> None:
    """Raise early (at compile time) for an unknown metric name or a bad type."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _SHAPE_DEPENDENT and _ALIASES.get(key, key) not in _BY_NAME:
            raise ValueError(f"Unknown metric {identifier!r}; expected one of {list(NAMES)}, a Metric or a callable")
    elif not isinstance(identifier, Metric) and not callable(identifier):
        raise TypeError(f"Each metric must be a name, a rnnkit.metrics.Metric or a callable, got {identifier!r}")


def get(identifier: MetricLike, y_true: Optional[Tensor] = None, y_pred: Optional[Tensor] = None,
        loss: Optional[losses_mod.Loss] = None) -> Metric:
    """A Metric from a name, a Metric, or a callable ``fn(y_true, y_pred) -> per-sample values``."""
    check(identifier)
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        return MeanMetricWrapper(identifier)
    name, key = identifier, identifier.lower()
    if key in _SHAPE_DEPENDENT:
        if y_true is None or y_pred is None:
            raise ValueError(f"Metric {identifier!r} is resolved from the data; pass y_true and y_pred")
        is_binary = y_pred.shape[-1] == 1 or isinstance(loss, losses_mod.BinaryCrossentropy)
        is_sparse = y_true.dim() < y_pred.dim() or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1)
        from_logits = bool(getattr(loss, "from_logits", False))
        if key in ("accuracy", "acc"):
            if is_binary:
                return MeanMetricWrapper(binary_accuracy, name, threshold=0.0 if from_logits else 0.5)
            return MeanMetricWrapper(sparse_categorical_accuracy if is_sparse else categorical_accuracy, name)
        fn = (losses_mod.binary_crossentropy if is_binary else
              losses_mod.sparse_categorical_crossentropy if is_sparse else losses_mod.categorical_crossentropy)
        return MeanMetricWrapper(fn, name, from_logits=from_logits)
    return _BY_NAME[_ALIASES.get(key, key)](name)


class MetricList:
    """The compiled metrics of a model: resolved lazily at the first batch.

    ``weighted=True`` is compile's ``weighted_metrics``: they also take the sample
    weights (and class weights) of each batch. As in Keras, one whose name is taken by
    an unweighted metric (``taken``) is reported as ``weighted_<name>``.
    """

    def __init__(self, identifiers: Optional[Sequence[MetricLike]], loss: Optional[losses_mod.Loss],
                 weighted: bool = False, taken: Sequence[str] = (), argument: str = "metrics") -> None:
        if identifiers is None:
            identifiers = []
        elif isinstance(identifiers, (str, Metric)) or callable(identifiers):
            identifiers = [identifiers]
        elif isinstance(identifiers, dict):
            raise TypeError(f"Argument `{argument}` must be a list; per-output dicts need a multi-output model, which rnnkit does not have")
        for m in identifiers:
            check(m)
        self.identifiers = list(identifiers)
        self.loss = loss
        self.weighted = weighted
        self.taken = set(taken)
        self.metrics: Optional[list[Metric]] = None
        self._split: list[bool] = []
        self._split_of: Optional[list[Metric]] = None

    def _report_name(self, name: str) -> str:
        return f"weighted_{name}" if self.weighted and name in self.taken else name

    @property
    def names(self) -> list[str]:
        if self.metrics is not None:
            return [self._report_name(m.name) for m in self.metrics]
        return [self._report_name(m if isinstance(m, str) else getattr(m, "name", getattr(m, "__name__", "metric")))
                for m in self.identifiers]

    def update(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
               sample_weight: Optional[Tensor] = None) -> None:
        self.add(self.batch_sums(y_true, y_pred, mask, sample_weight), y_true, y_pred, mask, sample_weight)

    def batch_sums(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
                   sample_weight: Optional[Tensor] = None) -> list[Union[Tensor, int]]:
        """The (sum, count) pairs of the metrics that are running means, flattened and left on the
        device, so that a train step reads them back with its loss in one transfer."""
        if self.metrics is None:
            self.metrics = [get(m, y_true, y_pred, self.loss) for m in self.identifiers]
        sums: list[Union[Tensor, int]] = []
        for m, split in zip(self.metrics, self._splits()):
            if split:
                sums.extend(m.batch_sums(y_true, y_pred, mask, sample_weight))  # type: ignore[attr-defined]
        return sums

    def add(self, sums: Sequence[Any], y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
            sample_weight: Optional[Tensor] = None) -> None:
        """Add the pairs from ``batch_sums`` (numbers or tensors) into their metrics, and update
        the metrics that have their own ``update_state`` with the batch."""
        it = iter(sums)
        for m, split in zip(self.metrics or [], self._splits()):
            if split:
                m.add(float(next(it)), float(next(it)))  # type: ignore[attr-defined]
            elif sample_weight is None:
                m.update_state(y_true, y_pred, mask)
            else:
                m.update_state(y_true, y_pred, mask, sample_weight=sample_weight)

    def _splits(self) -> list[bool]:
        # A Mean whose update_state is ours splits into batch_sums + add; a metric with its own
        # update_state is called as it is. Worked out once per list of resolved metrics.
        if self._split_of is not self.metrics:
            self._split = [isinstance(m, Mean) and type(m).update_state is Mean.update_state for m in self.metrics or []]
            self._split_of = self.metrics
        return self._split

    def results(self) -> dict[str, float]:
        return {self._report_name(m.name): m.result() for m in self.metrics or []}

    def reset(self) -> None:
        for m in self.metrics or []:
            m.reset_state()

    def serializable(self) -> Optional[list[str]]:
        """The identifiers if they are all names (so a saved model can re-compile), else None."""
        return list(self.identifiers) if all(isinstance(m, str) for m in self.identifiers) else None
