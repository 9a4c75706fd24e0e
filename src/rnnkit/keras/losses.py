"""Losses by Keras name, reduced to a scalar the way Keras does ("sum over batch size").

A loss computes one value per sample (and per time step for sequence outputs) and
averages them. With a Keras mask (B, T) from the model, masked steps are left out
of the mean, so padding never counts.

Probabilities or logits. As in Keras, the crossentropies default to
``from_logits=False``: ``y_pred`` is read as probabilities (clipped to
[1e-7, 1 - 1e-7]), which is right for a model whose last layer has
``activation="sigmoid"``/``"softmax"`` and gives the same numbers Keras gives.
rnnkit does not look inside the model to undo that activation; for a linear last
layer pass ``BinaryCrossentropy(from_logits=True)`` (or the categorical ones),
which is also the numerically stable choice. If predictions fall outside [0, 1]
while ``from_logits=False``, the loss warns once.

    y_true, y_pred: (B, ...) with matching shapes; (B,) labels against (B, 1)
    predictions are aligned as in Keras. Sparse labels are (B,) or (B, T) integers.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPSILON = 1e-7


def align(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Keras's rank alignment: (B,) labels against (B, 1) predictions, and back."""
    if y_true.dim() == y_pred.dim() - 1 and y_pred.shape[-1] == 1:
        return y_true.unsqueeze(-1)
    if y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        return y_true.squeeze(-1)
    return y_true


def _same_shape(name: str, y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = align(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        # Broadcasting (B,) against (B, 1) would silently give a (B, B) loss.
        raise ValueError(
            f"`{name}` needs y_true and y_pred of the same shape, got y_true {tuple(y_true.shape)} "
            f"and y_pred {tuple(y_pred.shape)}"
        )
    return y_true.to(y_pred.dtype)


def _warn_if_not_probabilities(loss: "Loss", y_pred: Tensor) -> None:
    if loss._warned or y_pred.numel() == 0:
        return
    lo, hi = torch.aminmax(y_pred.detach())
    _warn_if_outside(loss, float(lo), float(hi), stacklevel=4)  # the caller of Loss.__call__


def _warn_if_outside(loss: "Loss", lo: float, hi: float, stacklevel: int) -> None:
    if lo < 0.0 or hi > 1.0:
        loss._warned = True
        warnings.warn(
            f"`{loss.name}` with from_logits=False got predictions outside [0, 1] (min {lo:.3g}, max {hi:.3g}): "
            "the model seems to output logits. End it with activation='sigmoid'/'softmax', or use "
            f"rnnkit.losses.{type(loss).__name__}(from_logits=True)",
            stacklevel=stacklevel,
        )


# Per-sample functions (Keras's functional losses): the last axis is reduced.

def mean_squared_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape("mean_squared_error", y_true, y_pred)
    return (y_pred - y_true).square().mean(-1)


def mean_absolute_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape("mean_absolute_error", y_true, y_pred)
    return (y_pred - y_true).abs().mean(-1)


def mean_absolute_percentage_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape("mean_absolute_percentage_error", y_true, y_pred)
    return 100.0 * ((y_true - y_pred).abs() / y_true.abs().clamp_min(EPSILON)).mean(-1)


def huber(y_true: Tensor, y_pred: Tensor, delta: float = 1.0) -> Tensor:
    y_true = _same_shape("huber", y_true, y_pred)
    return F.huber_loss(y_pred, y_true, reduction="none", delta=delta).mean(-1)


def check_binary_labels(y_true: Tensor) -> None:
    """Labels in [0, 1] (this reads them back from their device)."""
    if y_true.numel():
        lo, hi = (float(v) for v in torch.aminmax(y_true.detach().to(torch.float64)))
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            raise ValueError(f"`binary_crossentropy` expects labels (y_true) in [0, 1], got labels in [{lo:g}, {hi:g}]; "
                             "for several classes use sparse_categorical_crossentropy")


def binary_crossentropy(y_true: Tensor, y_pred: Tensor, from_logits: bool = False,
                        label_smoothing: float = 0.0, validate: bool = True) -> Tensor:
    """``validate=False``: the caller has checked the labels already (see ``Loss.check_targets``)."""
    y_true = _same_shape("binary_crossentropy", y_true, y_pred)
    if validate:
        check_binary_labels(y_true)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        p = y_pred.clamp(EPSILON, 1.0 - EPSILON)
        values = -(y_true * p.log() + (1.0 - y_true) * (1.0 - p).log())
    return values.mean(-1)


def categorical_crossentropy(y_true: Tensor, y_pred: Tensor, from_logits: bool = False,
                             label_smoothing: float = 0.0) -> Tensor:
    y_true = _same_shape("categorical_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    if from_logits:
        log_p = F.log_softmax(y_pred, dim=-1)
    else:
        # Keras renormalises, then clips, so rows that do not sum to one still give a loss.
        p = y_pred / y_pred.sum(-1, keepdim=True)
        log_p = p.clamp(EPSILON, 1.0 - EPSILON).log()
    return -(y_true * log_p).sum(-1)


def check_sparse_labels(y_true: Tensor, num_classes: int, name: str = "sparse_categorical_crossentropy") -> Tensor:
    """Integer labels in [0, num_classes) as int64; integer-valued floats are accepted (as Keras does)."""
    if y_true.dtype == torch.bool or y_true.is_complex():
        raise TypeError(f"`{name}` expects integer class labels, got dtype {y_true.dtype}")
    if y_true.is_floating_point():
        if not bool(torch.isfinite(y_true).all()) or not torch.equal(y_true, y_true.round()):
            bad = y_true[(y_true != y_true.round()) | ~torch.isfinite(y_true)].flatten()[0].item()
            raise ValueError(
                f"`{name}` expects integer class labels in [0, {num_classes}) for a model with "
                f"{num_classes} outputs, got the non-integer value {bad!r}; for one-hot or soft "
                "labels use categorical_crossentropy"
            )
    y_true = y_true.long()
    if y_true.numel():
        lo, hi = int(y_true.min()), int(y_true.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"`{name}` expects class labels in [0, {num_classes}) for a model with {num_classes} "
                f"outputs, got labels in [{lo}, {hi}]"
            )
    return y_true


def sparse_categorical_crossentropy(y_true: Tensor, y_pred: Tensor, from_logits: bool = False,
                                    validate: bool = True) -> Tensor:
    """``validate=False``: the caller has checked the labels already (see ``Loss.check_targets``)."""
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(
            f"`sparse_categorical_crossentropy` needs labels of shape y_pred.shape[:-1] = {tuple(y_pred.shape[:-1])}, "
            f"got {tuple(y_true.shape)}"
        )
    y_true = check_sparse_labels(y_true, y_pred.shape[-1]) if validate else y_true.long()
    if from_logits:
        # -log_softmax(y_pred)[label]: the same numbers as a gather, in two ops instead of five.
        # Labels are in [0, C) here (checked), so nll_loss's ignore_index never applies.
        C = y_pred.shape[-1]
        return F.cross_entropy(y_pred.reshape(-1, C), y_true.reshape(-1), reduction="none").view(y_true.shape)
    # Keras renormalises, then clips: p = clip(y_pred / sum(y_pred)). Only the label's entry of p
    # counts, and every step after the sum is elementwise, so taking that entry first gives the
    # same values and gradients (the other entries' zeros add nothing) at 1/C of the work.
    picked = y_pred.gather(-1, y_true.unsqueeze(-1)).squeeze(-1)
    return -(picked / y_pred.sum(-1)).clamp(EPSILON, 1.0 - EPSILON).log()


# Aliases accepted by `get`.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error


class Loss:
    """A loss with a name and a config: ``loss(y_true, y_pred, mask=None) -> scalar``.

    ``mask`` (B, T) bool, or ``sample_weight`` broadcastable to the per-sample values,
    weights the mean. Subclasses implement ``call`` (per-sample values).
    """

    _probabilities = False  # True for crossentropies that read y_pred as probabilities

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name or _snake_name(type(self).__name__)
        self._warned = False

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, y_true: Tensor, y_pred: Tensor, sample_weight: Optional[Tensor] = None,
                 mask: Optional[Tensor] = None, *, checked: bool = False) -> Tensor:
        """``checked=True``: the caller has run ``check_targets`` on these labels and looks at
        ``range_probe`` itself, so nothing is read back from the device here (``fit`` does this)."""
        if not checked:
            self.check_targets(y_true, y_pred)
            if self._checks_range():
                _warn_if_not_probabilities(self, y_pred)
        values = self.call(y_true, y_pred)
        return reduce_values(values, sample_weight=sample_weight, mask=mask)

    def check_targets(self, y_true: Tensor, y_pred: Tensor) -> None:
        """Raise for label values this loss cannot take (``y_true`` may be all of fit's targets:
        only the values and the sizes after the batch axis matter). Built-in losses check here
        instead of in ``call``, so that ``fit`` checks its targets once, not on every batch."""

    def _checks_range(self) -> bool:
        return self._probabilities and not getattr(self, "from_logits", False) and not self._warned

    def range_probe(self, y_pred: Tensor) -> Optional[tuple[Tensor, Tensor]]:
        """(min, max) of ``y_pred``, 0-dim tensors left on its device, while this loss still
        watches for logits fed to a probability loss, else None; read them, then ``check_range``."""
        if not self._checks_range() or y_pred.numel() == 0:
            return None
        return tuple(torch.aminmax(y_pred.detach()))  # type: ignore[return-value]

    def check_range(self, lo: float, hi: float) -> None:
        """Warn (once) when predictions in [lo, hi] cannot be probabilities."""
        if self._checks_range():
            _warn_if_outside(self, lo, hi, stacklevel=4)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Loss":
        return cls(**config)


def reduce_values(values: Tensor, sample_weight: Optional[Tensor] = None, mask: Optional[Tensor] = None) -> Tensor:
    """Keras 3's "sum over batch size": sum(w * l) / count, count the number of values, or of
    unmasked values when a mask fits ``values`` (its False entries leave the sum and the count).

    ``sample_weight`` (B,), (B, 1) or (B, T) multiplies the values it lines up with.
    """
    if values.dim() == 0:
        if sample_weight is not None:
            raise ValueError("The loss returned a scalar, so `sample_weight`/`class_weight` cannot weight its "
                             "samples; make it return one value per sample (B,) or per step (B, T)")
        return values
    if sample_weight is not None:
        sw = torch.as_tensor(sample_weight, dtype=values.dtype, device=values.device)
        if sw.dim() == values.dim() + 1 and sw.shape[-1] == 1:
            sw = sw.squeeze(-1)
        while sw.dim() < values.dim():
            sw = sw.unsqueeze(-1)
        values = values * sw
    if mask is not None and mask.shape == values.shape[: mask.dim()]:
        m = mask.to(values.dtype)
        while m.dim() < values.dim():
            m = m.unsqueeze(-1)
        m = m.expand_as(values)
        return (values * m).sum() / m.sum().clamp_min(1.0)
    return values.mean()


def _snake_name(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class MeanSquaredError(Loss):
    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(name)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return mean_squared_error(y_true, y_pred)


class MeanAbsoluteError(Loss):
    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(name)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return mean_absolute_error(y_true, y_pred)


class MeanAbsolutePercentageError(Loss):
    def __init__(self, name: str = "mean_absolute_percentage_error") -> None:
        super().__init__(name)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return mean_absolute_percentage_error(y_true, y_pred)


class Huber(Loss):
    def __init__(self, delta: float = 1.0, name: str = "huber_loss") -> None:
        super().__init__(name)
        self.delta = float(delta)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return huber(y_true, y_pred, self.delta)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "delta": self.delta}


class BinaryCrossentropy(Loss):
    _probabilities = True

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 name: str = "binary_crossentropy") -> None:
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing, validate=False)

    def check_targets(self, y_true: Tensor, y_pred: Tensor) -> None:
        check_binary_labels(y_true)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(Loss):
    _probabilities = True

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 name: str = "categorical_crossentropy") -> None:
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(Loss):
    _probabilities = True

    def __init__(self, from_logits: bool = False, name: str = "sparse_categorical_crossentropy") -> None:
        super().__init__(name)
        self.from_logits = bool(from_logits)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits, validate=False)

    def check_targets(self, y_true: Tensor, y_pred: Tensor) -> None:
        check_sparse_labels(y_true, y_pred.shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}


class LossFunctionWrapper(Loss):
    """A user callable ``fn(y_true, y_pred)`` returning per-sample values (or a scalar).

    A ``torch.nn`` loss module is called the torch way, ``fn(y_pred, y_true)``.
    """

    def __init__(self, fn: Callable[..., Tensor], name: Optional[str] = None) -> None:
        super().__init__(name or getattr(fn, "__name__", None) or _snake_name(type(fn).__name__))
        self.fn = fn
        self.torch_order = isinstance(fn, nn.Module)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        out = self.fn(y_pred, y_true) if self.torch_order else self.fn(y_true, y_pred)
        if not isinstance(out, Tensor):
            raise TypeError(f"The loss function {self.name!r} must return a torch.Tensor, got {type(out).__name__}")
        return out


def _check_smoothing(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"Received an invalid value for argument `label_smoothing`, expected a float in [0, 1], got {value!r}")
    return float(value)


_BY_NAME: dict[str, Callable[[], Loss]] = {
    "mean_squared_error": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "huber": Huber,
    "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
            "bce": "binary_crossentropy"}
_CLASSES: dict[str, type[Loss]] = {
    c.__name__: c for c in (MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, Huber,
                            BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy)
}
NAMES = tuple(sorted(set(_BY_NAME) | set(_ALIASES) | set(_CLASSES)))

LossLike = Union[str, Loss, Callable[..., Tensor]]


def get(identifier: LossLike) -> Loss:
    """A Loss from a Keras name ("mse", "binary_crossentropy", ...), a Loss, or a callable."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier.lower(), identifier.lower())
        if key in _BY_NAME:
            loss = _BY_NAME[key]()
            return loss
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        raise ValueError(f"Unknown loss {identifier!r}; expected one of {list(NAMES)}, a Loss or a callable")
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(f"Argument `loss` must be a loss name, a rnnkit.losses.Loss or a callable, got {identifier!r}")


def serialize(loss: Loss) -> Optional[dict[str, Any]]:
    """{"class_name", "config"} for built-in losses; None for user callables (not saved)."""
    if type(loss).__name__ in _CLASSES:
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    return None


def deserialize(data: dict[str, Any]) -> Loss:
    name = data.get("class_name")
    if name not in _CLASSES:
        raise ValueError(f"Unknown loss class {name!r}; expected one of {sorted(_CLASSES)}")
    return _CLASSES[name].from_config(dict(data.get("config", {})))
