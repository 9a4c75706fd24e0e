"""``sample_weight`` and ``class_weight``: checked once, turned into per-value weights per batch.

The loss of a batch is Keras 3's "sum over batch size" reduction of the per-sample
values l (B,) or, for sequence outputs, (B, T), with the weight W = sample_weight x mask:

    loss = sum(W * l) / count,   count = number of values (unmasked values when a mask is set)

so a weight of 0 removes a value from the numerator and a masked step from both.
Weighted metrics average with the same W: sum(W * v) / sum(W).

``class_weight`` {class: weight} becomes the sample weight of each value: the weight of
its label (sparse labels as given, one-hot labels by argmax, binary labels rounded), 1
for classes not in the dict, as Keras does. Keras maps one label per sample; for
sequence labels (B, T) rnnkit weights each time step by its own label.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from .data import is_nested


class ClassWeight:
    """A class -> weight table, looked up by the labels of each batch."""

    def __init__(self, class_weight: Any, num_classes: int) -> None:
        if not hasattr(class_weight, "items"):
            raise TypeError(f"Argument `class_weight` must be a dict {{class index: weight}}, got "
                            f"{type(class_weight).__name__}")
        table = torch.ones(max(num_classes, 1), dtype=torch.float64)
        for key, value in class_weight.items():
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
                raise ValueError(f"Argument `class_weight` must have integer class indices as keys, got key {key!r}")
            if not 0 <= int(key) < num_classes:
                raise ValueError(f"Argument `class_weight` has key {int(key)}, which is not a class: the model has "
                                 f"{num_classes} classes, so keys must be in [0, {num_classes})")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
                    not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"Argument `class_weight` must map classes to finite weights >= 0, got "
                                 f"{{{int(key)}: {value!r}}}")
            table[int(key)] = float(value)
        self.table = table
        self.num_classes = num_classes

    def sample_weight(self, y: Tensor, y_pred: Tensor) -> Tensor:
        """Weights of shape y_pred.shape[:-1]: (B,) or (B, T)."""
        if y.dim() == y_pred.dim() and y.shape[-1] == y_pred.shape[-1] and y_pred.shape[-1] > 1:
            labels = y.argmax(-1)  # one-hot
        else:
            labels = y.squeeze(-1) if y.dim() == y_pred.dim() and y.shape[-1] == 1 else y
            labels = labels.round().long() if labels.is_floating_point() else labels.long()
        table = self.table.to(device=y_pred.device, dtype=y_pred.dtype)
        return table[labels.clamp(0, self.table.shape[0] - 1)]


def num_classes(y_pred: Any) -> int:
    """Classes of a single classification output: its last axis, 2 for a single unit."""
    if is_nested(y_pred):
        raise ValueError("Argument `class_weight` is only supported for models with a single output; "
                         "pass `sample_weight` instead")
    units = int(y_pred.shape[-1]) if y_pred.dim() >= 2 else 1
    return 2 if units == 1 else units


def check_against_output(sample_weight: Tensor, y_pred: Any, where: str) -> None:
    """A (B,) or (B, T) weight must fit the loss's per-sample values, y_pred.shape[:-1]."""
    if is_nested(y_pred) or not isinstance(y_pred, Tensor):
        return  # several outputs: each loss broadcasts the weight itself
    values = tuple(y_pred.shape[:-1]) if y_pred.dim() >= 2 else tuple(y_pred.shape)
    sw = tuple(sample_weight.shape)
    if sw[1:] == (1,):
        sw = sw[:1]
    if len(sw) > len(values) or sw[1:] != values[1:len(sw)]:
        want = "(B,)" if len(values) == 1 else "(B,) or (B, T) with T = " + str(values[1])
        raise ValueError(f"{where} must have shape {want} for this model, whose loss has one value per "
                         f"{'sample' if len(values) == 1 else 'sample and time step'} (y_pred has shape "
                         f"{tuple(y_pred.shape)}); got shape {tuple(sample_weight.shape)}")


def probe_output(model: Any, x: Any) -> Any:
    """The model's output on a couple of samples, in eval mode without gradients (for checks)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            y_pred, _ = model._call_with_mask(x)
    finally:
        model.train(was)
    from .tbptt import recurrent_modules, reset_states

    reset_states(recurrent_modules(model), include_stateful=True)  # leave no state in stateful layers
    return y_pred


def squeeze_weight(sample_weight: Optional[Tensor], values: Tensor) -> Optional[Tensor]:
    """(B, 1) weights against (B,) values, as Keras squeezes them."""
    if sample_weight is not None and sample_weight.dim() == values.dim() + 1 and sample_weight.shape[-1] == 1:
        return sample_weight.squeeze(-1)
    return sample_weight
