"""Losses and metrics per output, for models with several outputs (Keras's compile semantics).

    model.compile(loss={"tags": "sparse_categorical_crossentropy", "score": "mse"},
                  loss_weights={"tags": 1.0, "score": 0.5}, metrics={"tags": ["accuracy"]})

``loss`` is one loss for every output, a list in output order, or a dict by output name
(None skips an output); ``loss_weights`` likewise with floats; ``metrics`` a list with one
entry (a metric or a list of them) per output, or a dict. The total loss is
sum_k w_k * loss_k. Logs: ``loss`` (the total), ``<output>_loss``, ``<output>_<metric>``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from torch import Tensor

from .. import losses as losses_mod
from .. import metrics as metrics_mod


def _per_output(value: Any, names: list[str], argument: str, broadcast: bool) -> list[Any]:
    """``value`` as a list with one entry per output."""
    if isinstance(value, dict):
        unexpected = [k for k in value if k not in names]
        if unexpected:
            raise ValueError(f"Argument `{argument}` has keys {unexpected} that are not output names; the outputs are "
                             f"{names}")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)) and not broadcast:
        if len(value) != len(names):
            raise ValueError(f"Argument `{argument}` must have one entry per output ({len(names)}: {names}), got "
                             f"{len(value)}")
        return list(value)
    return [value] * len(names)


class OutputLosses:
    """The compiled losses, weights and metrics of a model with several outputs."""

    def __init__(self, names: list[str], loss: Any, metrics: Any, loss_weights: Any) -> None:
        self.output_names = list(names)
        is_list = isinstance(loss, (list, tuple, dict))
        self.losses: list[Optional[losses_mod.Loss]] = [
            None if l is None else losses_mod.get(l) for l in _per_output(loss, self.output_names, "loss", not is_list)]
        if all(l is None for l in self.losses):
            raise ValueError("Argument `loss` gives no loss for any output")
        weights = _per_output(1.0 if loss_weights is None else loss_weights, self.output_names, "loss_weights",
                              not isinstance(loss_weights, (list, tuple, dict)))
        self.weights = [1.0 if w is None else float(w) for w in weights]
        if metrics is not None and isinstance(metrics, (list, tuple)) and len(metrics) != len(self.output_names) and \
                not any(isinstance(m, (list, tuple)) for m in metrics):
            raise ValueError(f"Argument `metrics`: for a model with {len(self.output_names)} outputs {self.output_names} give a list "
                             f"with one entry per output or a dict by output name, got {list(metrics)}")
        per = _per_output(metrics, self.output_names, "metrics", not isinstance(metrics, (list, tuple, dict)))
        self.metric_lists = [metrics_mod.MetricList(None if m is None else m, l) for m, l in zip(per, self.losses)]
        self.trackers = [metrics_mod.Mean(f"{n}_loss") for n in self.output_names]
        self.identifiers = {"loss": loss, "metrics": metrics, "loss_weights": loss_weights}

    def _targets(self, y: Any) -> Any:
        if isinstance(y, dict):  # from a generator or dataset that yields a dict of targets
            missing = [n for n in self.output_names if n not in y]
            if missing:
                raise ValueError(f"The targets have no {missing}; the outputs are {self.output_names}")
            return [y[n] for n in self.output_names]
        return y

    def _check(self, y: Any, y_pred: Any) -> None:
        if not isinstance(y_pred, (list, tuple)) or len(y_pred) != len(self.output_names):
            raise TypeError(f"The model returned {type(y_pred).__name__}; compile was given losses for "
                            f"{len(self.output_names)} outputs {self.output_names}")
        if not isinstance(y, (list, tuple)) or len(y) != len(self.output_names):
            raise ValueError(f"`y` must hold one target per output ({len(self.output_names)}: {self.output_names})")

    def __call__(self, y: Any, y_pred: Any, mask: Any, sample_weight: Optional[Tensor] = None) -> Tensor:
        """sum_k w_k * loss_k(y_k, y_pred_k); records each loss_k for the logs.

        ``sample_weight`` (B,) weighs the samples of every output alike.
        """
        y = self._targets(y)
        self._check(y, y_pred)
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(self.output_names)
        total: Any = 0.0
        self.last = []
        for loss, w, yt, yp, m in zip(self.losses, self.weights, y, y_pred, masks):
            if loss is None:
                self.last.append(None)
                continue
            value = loss(yt, yp, mask=m) if sample_weight is None else loss(yt, yp, sample_weight=sample_weight, mask=m)
            self.last.append(value.detach())
            total = total + w * value
        return total  # type: ignore[return-value]

    # The MetricList interface the trainer uses.
    def update(self, y: Any, y_pred: Any, mask: Any, weight: Optional[float] = None) -> None:
        y = self._targets(y)
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(self.output_names)
        for tracker, value in zip(self.trackers, getattr(self, "last", [])):
            if value is not None:
                tracker.update_values(value, weight=weight)
        for metrics, yt, yp, m in zip(self.metric_lists, y, y_pred, masks):
            metrics.update(yt, yp.detach(), m)

    def results(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, tracker, loss in zip(self.output_names, self.trackers, self.losses):
            if loss is not None:
                out[tracker.name] = tracker.result()
        for name, metrics in zip(self.output_names, self.metric_lists):
            out.update({f"{name}_{k}": v for k, v in metrics.results().items()})
        return out

    def reset(self) -> None:
        for t in self.trackers:
            t.reset_state()
        for m in self.metric_lists:
            m.reset()

    @property
    def names(self) -> list[str]:
        """Log names after ``loss``, as ``MetricList.names``."""
        names = [t.name for t, l in zip(self.trackers, self.losses) if l is not None]
        for name, metrics in zip(self.output_names, self.metric_lists):
            names += [f"{name}_{k}" for k in metrics.names]
        return names

    def serializable(self) -> Optional[dict[str, Any]]:
        """{"loss": ..., "metrics": ..., "loss_weights": ...} when all are names/numbers, else None."""
        losses = [None if l is None else losses_mod.serialize(l) for l in self.losses]
        if any(l is None and loss is not None for l, loss in zip(losses, self.losses)):
            return None
        metrics = [m.serializable() for m in self.metric_lists]
        if any(m is None for m in metrics):
            return None
        return {"loss": dict(zip(self.output_names, losses)), "metrics": dict(zip(self.output_names, metrics)),
                "loss_weights": dict(zip(self.output_names, self.weights))}


def deserialize_losses(data: dict[str, Any]) -> dict[str, Any]:
    return {k: None if v is None else losses_mod.deserialize(v) for k, v in data.items()}


def output_losses(model: Any, loss: Any, metrics: Any, loss_weights: Any) -> Optional[OutputLosses]:
    """An ``OutputLosses`` for a model with several outputs, else None (one output: the plain path)."""
    names: Optional[Sequence[str]] = getattr(model, "output_names", None)
    if not getattr(model, "_multi_output", False) or not names:
        if loss_weights is not None and not isinstance(loss_weights, (int, float)):
            if not (isinstance(loss_weights, (list, tuple)) and len(loss_weights) == 1):
                raise ValueError(f"Argument `loss_weights` must be a number (or a list of one) for a model with one "
                                 f"output, got {loss_weights!r}")
        return None
    if loss is None:
        raise ValueError("Argument `loss` is required to train: pass a name such as 'mse', a list with one loss per "
                         f"output, or a dict keyed by output name ({list(names)})")
    return OutputLosses(list(names), loss, metrics, loss_weights)
