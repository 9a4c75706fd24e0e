"""``GradientFlow``: a ``fit`` callback that records gradient flow through time and clipping.

Every ``every`` epochs it measures ``gradient_flow`` on a fixed batch, so the rows of
``heatmap(key)`` (epoch x time step) show how the flow changes while the model learns.
From the per-batch logs that ``fit`` writes (``logs["grad_norm"]``: the global gradient
norm before clipping; ``logs["clipped"]``: whether clipnorm/clipvalue changed the
gradient) it keeps every clipping event, and from the epoch logs ``clip_events``.
At each measured epoch it warns once per layer when the gradients vanish (or grow)
through time, with advice (see ``rnnkit.diagnostics.advice``).

It is a ``rnnkit.callbacks.Callback`` (Keras hook names); a plain training loop can
drive it the same way (``rnnkit.diagnostics.experiment`` does).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Optional

import numpy as np
from torch import Tensor

from ..keras.callbacks import Callback
from .advice import EXPLODE_ABOVE, VANISH_BELOW, diagnose_flow, flow_ratio
from .flow import LayerFlow, gradient_flow


class GradientFlow(Callback):
    """Record ||dL/dh_t|| per time step every ``every`` epochs on a fixed batch, and clipping events.

    Args:
        x, y: the fixed batch (B, T, F) and its targets, kept for the whole training.
        loss_fn: ``loss_fn(model(x), y)``; if None, the model's compiled loss, else MSE /
            cross-entropy by target dtype (see ``gradient_flow``).
        every: measure after every ``every``-th epoch (and once before training).
        warn: warn (VanishingGradientWarning / ExplodingGradientWarning) once per layer.
        vanish_below, explode_above: thresholds on ||dL/dh_1|| / ||dL/dh_T||.
    Attributes:
        epochs: [0, e1, e2, ...]: 0 is before training, e is after epoch e (1-based).
        flows: one ``{layer key: LayerFlow}`` per entry of ``epochs``.
        batch_norms: [(global step, epoch, grad_norm, clipped)] from the per-batch logs.
        clip_events: [(epoch, count)] from the epoch logs' ``clip_events``.
        messages: the warnings issued.
    """

    def __init__(
        self, x: Any, y: Any, loss_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None, every: int = 1,
        warn: bool = True, vanish_below: float = VANISH_BELOW, explode_above: float = EXPLODE_ABOVE,
    ) -> None:
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"Received an invalid value for argument `every`, expected a positive integer, got {every!r}")
        self.x, self.y, self.loss_fn, self.every = x, y, loss_fn, every
        self.warn, self.vanish_below, self.explode_above = warn, vanish_below, explode_above
        self.epochs: list[int] = []
        self.flows: list[dict[str, LayerFlow]] = []
        self.batch_norms: list[tuple[int, int, float, bool]] = []
        self.clip_events: list[tuple[int, int]] = []
        self.messages: list[str] = []
        self._warned: set[tuple[str, type]] = set()
        self._epoch = 0
        self._step = 0

    # -- measuring ---------------------------------------------------------------------
    def measure(self, epoch: int) -> dict[str, LayerFlow]:
        """Measure gradient flow on the fixed batch now and store it under ``epoch``."""
        flow = gradient_flow(self.model, self.x, self.y, self.loss_fn)
        self.epochs.append(epoch)
        self.flows.append(flow)
        return flow

    def _advise(self, epoch: int, flow: dict[str, LayerFlow]) -> None:
        for finding in diagnose_flow(flow, self.vanish_below, self.explode_above):
            if (finding.key, finding.category) in self._warned:
                continue
            self._warned.add((finding.key, finding.category))
            text = f"epoch {epoch}: {finding.message}"
            self.messages.append(text)
            if self.warn:
                warnings.warn(text, finding.category, stacklevel=2)

    # -- hooks -------------------------------------------------------------------------
    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.measure(0)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self._step += 1
        logs = logs or {}
        norm = logs.get("grad_norm")
        if norm is not None:
            norm = float(norm.item() if hasattr(norm, "item") else norm)
            self.batch_norms.append((self._step, self._epoch, norm, bool(logs.get("clipped", False))))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        if "clip_events" in logs:
            self.clip_events.append((epoch + 1, int(logs["clip_events"])))
        if (epoch + 1) % self.every == 0:
            self._advise(epoch + 1, self.measure(epoch + 1))

    # -- reading -----------------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        return list(self.flows[-1]) if self.flows else []

    def heatmap(self, key: Optional[str] = None, component: str = "h") -> np.ndarray:
        """(n measured epochs, T) gradient norms of one layer, rows in ``self.epochs`` order."""
        key = key or (self.keys[0] if self.keys else None)
        if key is None:
            raise ValueError("Nothing measured yet: GradientFlow records at on_train_begin / on_epoch_end")
        rows = [f[key].h if component == "h" else f[key].c for f in self.flows if key in f]
        if any(r is None for r in rows):
            raise ValueError(f"Layer {key!r} has no component {component!r}")
        return np.stack(rows)

    def ratios(self, key: Optional[str] = None) -> list[float]:
        """||dL/dh_1|| / ||dL/dh_T|| (max over h, c) at each measured epoch."""
        key = key or self.keys[0]
        return [flow_ratio(f[key]) if key in f else math.nan for f in self.flows]

    def clip_summary(self) -> dict[str, float]:
        """Clipping over the recorded batches: steps, clipped, fraction, median and max norm before clipping."""
        norms = np.array([n for _, _, n, _ in self.batch_norms], dtype=np.float64)
        clipped = sum(c for *_, c in self.batch_norms)
        finite = norms[np.isfinite(norms)]
        return {
            "steps": float(len(norms)),
            "clipped": float(clipped),
            "fraction": float(clipped / len(norms)) if len(norms) else math.nan,
            "median_norm": float(np.median(finite)) if len(finite) else math.nan,
            "max_norm": float(finite.max()) if len(finite) else math.nan,
        }
