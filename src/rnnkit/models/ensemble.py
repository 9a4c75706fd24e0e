"""An ensemble of classifiers: the mean of their class probabilities."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..keras.models import Model

__all__ = ["Ensemble"]


class Ensemble(Model):
    r"""Averages the softmax outputs of K classifiers that take the same inputs.

    .. math::
        p(c \mid x) = \frac{1}{K} \sum_k \mathrm{softmax}(f_k(x))_c

    ``call`` returns :math:`\log p` (B, C), so ``softmax`` of the output (what
    ``predict_proba`` and ``SparseCategoricalCrossentropy(from_logits=True)`` apply) is
    the mean of the members' probabilities. Train the members on their own (different
    seeds), then join them; the ensemble is for prediction, saving and loading. Members are
    ``rnnkit.models`` classifiers (``SequenceClassifier``, ``LSTMFCN``, ...) with the same
    number of classes.
    """

    def __init__(self, members: Sequence[nn.Module], name: Optional[str] = None) -> None:
        super().__init__(name=name)
        members = list(members)
        if not members or not all(isinstance(m, nn.Module) and hasattr(m, "get_config") for m in members):
            raise ValueError("Argument `members` must be a non-empty list of rnnkit.models classifiers, got "
                             f"{[type(m).__name__ for m in members]}")
        classes = {getattr(m, "num_classes", None) for m in members}
        if len(classes) != 1 or None in classes:
            raise ValueError(f"The members of an Ensemble must have one number of classes (`num_classes`), got {classes}")
        self.num_classes = classes.pop()
        self.members = nn.ModuleList(members)
        self.built = True

    def call(self, inputs: Tensor, training: Optional[bool] = None) -> Tensor:
        """Inputs as the members take them -> log of the mean class probability (B, C)."""
        logp = torch.stack([torch.log_softmax(m(inputs, training=training), dim=-1) for m in self.members])  # (K, B, C)
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))

    def predict_proba(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Mean class probabilities (N, C), in eval mode without gradients."""
        logits = torch.as_tensor(self.predict(x, batch_size=batch_size, verbose=0))
        return torch.softmax(logits, dim=-1).numpy()

    def get_config(self) -> dict[str, Any]:
        return {"members": [{"class_name": type(m).__name__, "config": m.get_config()} for m in self.members],
                "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Ensemble":
        from .io import model_classes

        classes = model_classes()
        members = []
        for item in config["members"]:
            member = classes.get(item["class_name"])
            if member is None or member is cls:
                raise ValueError(f"unknown ensemble member class {item['class_name']!r}; expected one of "
                                 f"{sorted(c for c in classes if c != cls.__name__)}")
            members.append(member.from_config(item["config"]))
        return cls(members, name=config.get("name"))
