"""What ``compile`` sets up, and the steps ``fit``/``evaluate`` run on one batch.

A training step: forward -> loss -> backward -> global gradient norm ||G|| (before
clipping) -> NaN/inf guard -> clipping -> optimizer step. The guard skips the
step when the loss or ||G|| is not finite, warns, counts it, and after
``max_bad_steps`` bad steps in a row sets ``model.stop_training = True``.

What a step costs besides the model's own work. Everything the step needs to know on the
host (the loss value, ||G|| and the per-tensor norms, clipvalue's max |g|, the loss's
logits-in-a-probability-loss probe, and the sums of every running-mean metric) is computed
where the tensors live and read back in one transfer (one device sync) per optimizer step.
The trade-off: the guard reads the loss after the backward pass rather than before it, so
a step with a non-finite loss still runs its backward (its gradients are then dropped;
only bad steps pay). With ``fit(distributed=True)`` the processes must agree before the
backward (its all-reduce), so there the loss is read first, as before. Label values are
checked once per ``fit``/``evaluate`` over all targets (``Loss.check_targets``), not per batch.
The per-tensor norms are float64 when clipnorm or global_clipnorm scales by them; otherwise
(guard and ``grad_norm`` log only) float32, recomputed in float64 only when one is not finite
(``clipping.finite_norms``), so the guard decides exactly as with float64 norms.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
from torch import Tensor, nn

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from . import clipping, jit as jit_mod
from ..layers.base import is_built
from .outputs import output_losses
from .data import Data, num_samples, take, time_slice, time_steps
from .tbptt import recurrent_modules, reset_states, windows
from .weighting import ClassWeight, check_against_output


@dataclass
class StepOutcome:
    """One optimizer step (or several, for a tbptt batch): what callbacks see in ``logs``."""

    grad_norm: float = 0.0  # global L2 norm of the gradients before clipping (max over tbptt windows)
    clipped: bool = False   # clipping changed a gradient
    skipped: int = 0        # steps skipped by the NaN/inf guard
    steps: int = 0          # optimizer steps attempted

    def merge(self, later: "StepOutcome") -> "StepOutcome":
        """This and a later batch's outcome as one (steps_per_execution)."""
        return StepOutcome(max(self.grad_norm, later.grad_norm, key=_nan_last), self.clipped or later.clipped,
                           self.skipped + later.skipped, self.steps + later.steps)


class Trainer:
    """The compiled state of a model: optimizer, loss, metrics, clipping, guard counters."""

    def __init__(self, model: nn.Module, optimizer: Any, loss: Any, metrics: Any,
                 clipnorm: Optional[float], clipvalue: Optional[float], global_clipnorm: Optional[float],
                 weighted_metrics: Any = None, loss_weights: Any = None,
                 jit_compile: jit_mod.JitCompile = False, steps_per_execution: int = 1) -> None:
        self.model = model
        self.jit = jit_mod.JitSteps(self) if jit_mod.resolve(jit_compile) else None
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int) or steps_per_execution < 1:
            raise ValueError("Received an invalid value for argument `steps_per_execution`, expected a positive integer, "
                             f"got {steps_per_execution!r}")
        self.steps_per_execution = steps_per_execution
        self.optimizer = optimizers_mod.get(optimizer)
        # Several outputs: one object maps outputs to losses/weights/metrics (training/outputs.py).
        self.outputs = output_losses(model, loss, metrics, loss_weights)
        if self.outputs is not None:
            if weighted_metrics:
                raise ValueError("Argument `weighted_metrics` is not supported for a model with several outputs yet; "
                                 "pass `metrics` per output")
            loss, metrics = self.outputs, None
        if loss is None:
            raise ValueError("Argument `loss` is required to train: pass a name such as 'mse' or "
                             "'sparse_categorical_crossentropy', a rnnkit.losses.Loss, or a callable")
        self.loss = self.outputs if self.outputs is not None else losses_mod.get(loss)
        self.metrics = self.outputs if self.outputs is not None else metrics_mod.MetricList(metrics, self.loss)
        self.weighted_metrics = metrics_mod.MetricList(weighted_metrics, self.loss, weighted=True,
                                                       taken=self.metrics.names, argument="weighted_metrics")
        # Set by fit(class_weight=...): a table that turns each batch's labels into sample weights.
        self.class_weight: Optional[ClassWeight] = None
        self.loss_tracker = metrics_mod.Mean("loss")
        compile_clip = (clipnorm, clipvalue, global_clipnorm)
        optimizers_mod.check_clipping(*compile_clip)
        if any(v is not None for v in compile_clip) and self.optimizer.has_clipping:
            raise ValueError("Set clipping either in compile(...) or on the optimizer, not both; got "
                             f"compile(clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}) "
                             f"and {self.optimizer!r}")
        if not any(v is not None for v in compile_clip):
            compile_clip = (self.optimizer.clipnorm, self.optimizer.clipvalue, self.optimizer.global_clipnorm)
        self.clipnorm, self.clipvalue, self.global_clipnorm = compile_clip
        self.max_bad_steps = 10
        self.consecutive_bad = 0
        self.epoch: Optional[int] = None   # 1-based, set by fit for messages
        self.step = 0                      # optimizer steps attempted (in the epoch during fit)
        self.sequence_target: Optional[bool] = None  # tbptt: does y have a time axis?
        # Set by fit(distributed=True) (rnnkit.distributed): the forward through DDP, and the
        # shard that makes all processes agree on skipping and weight their part of the batch.
        self.forward: Optional[Any] = None
        self.shard: Optional[Any] = None
        # All the targets of the running fit/evaluate, for one check of the label values
        # (targets_once); without them each batch's labels are checked.
        self.targets: Optional[Data] = None
        self.targets_checked = False
        self._pred_like: Optional[Tensor] = None  # (0, ..., C) on "meta": the output's shape, for label checks

    # -- building -------------------------------------------------------------------------

    def ensure_built(self, x: Data) -> None:
        """Build lazy layers with one forward on a couple of samples, then the optimizer."""
        model = self.model
        if not is_built(model):
            was_training = model.training
            model.eval()
            with torch.no_grad():
                model._call_with_mask(take(x, slice(0, min(2, num_samples(x)))))
            model.train(was_training)
            # That forward must not leave a state behind in stateful layers.
            reset_states(recurrent_modules(model), include_stateful=True)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("The model has no trainable parameters")
        opt = self.optimizer
        if opt.built and not isinstance(opt, optimizers_mod.TorchOptimizer):
            owned = {id(p) for g in opt.torch_optimizer.param_groups for p in g["params"]}
            if any(id(p) not in owned for p in params):
                raise ValueError(f"The optimizer {opt!r} was built for other parameters (another model, or before "
                                 "layers were added); compile with a new optimizer")
        opt.build(params)

    # -- one batch ------------------------------------------------------------------------

    @contextlib.contextmanager
    def targets_once(self, y: Data) -> Iterator[None]:
        """Within: check the label values of all of ``y`` at the first batch, then no more."""
        saved = self.targets, self.targets_checked
        self.targets, self.targets_checked = y, False
        try:
            yield
        finally:
            self.targets, self.targets_checked = saved

    def compute_loss(self, y: Tensor, y_pred: Any, mask: Optional[Tensor],
                     sample_weight: Optional[Tensor] = None, *, check_targets: bool = True) -> Tensor:
        """The scalar loss. Its range probe (``Loss.range_probe``) is the caller's to read.
        ``check_targets=False``: the caller has checked ``y``'s label values (the compiled step,
        which must not read values back inside its graph)."""
        if self.outputs is not None:
            return self.outputs(y, y_pred, mask, sample_weight)
        if not isinstance(y_pred, Tensor):
            raise TypeError(f"The model returned {type(y_pred).__name__}; compile/fit need a single output tensor "
                            "(drop return_state=True from the last layer, or subclass Model and return one tensor)")
        if check_targets:
            self._check_targets(y, y_pred)
        if self._pred_like is None:
            self._pred_like = torch.empty((0, *y_pred.shape[1:]), dtype=y_pred.dtype, device="meta")
        if sample_weight is None:
            return self.loss(y, y_pred, mask=mask, checked=True)
        return self.loss(y, y_pred, sample_weight=sample_weight, mask=mask, checked=True)

    def _check_targets(self, y: Tensor, y_pred: Tensor) -> None:
        if not self.targets_checked:
            every = self.targets if isinstance(self.targets, Tensor) else None
            self.loss.check_targets(y if every is None else every, y_pred)
            self.targets_checked = every is not None

    def _weights(self, y: Any, y_pred: Any, sample_weight: Optional[Tensor]) -> Optional[Tensor]:
        """This batch's sample weights: given, from class_weight, or None."""
        if self.class_weight is not None and isinstance(y_pred, Tensor):
            if sample_weight is not None:
                raise ValueError("Argument `class_weight` cannot be used with data that yields (x, y, sample_weight): "
                                 "pass one of them, as in Keras")
            return self.class_weight.sample_weight(y, y_pred)
        if sample_weight is not None and isinstance(y_pred, Tensor):
            where = f"Argument `sample_weight` (epoch {self.epoch} step {self.step})" if self.epoch is not None \
                else "Argument `sample_weight`"
            check_against_output(sample_weight, y_pred, where)
        return sample_weight

    def _compiled(self, x: Data, y: Tensor, train: bool,
                  sample_weight: Optional[Tensor] = None) -> Optional[tuple[Any, ...]]:
        """(loss, y_pred, mask, range probe, metric sums) from the jit_compile graph, or None: run eagerly."""
        jit = self.jit
        if jit is None:
            return None
        ddp = self.forward is not None or self.shard is not None
        why = None
        if self.outputs is not None:
            why = "the losses and metrics of a model with several outputs run eagerly"
        elif sample_weight is not None or self.class_weight is not None or self.weighted_metrics.identifiers:
            why = "sample_weight, class_weight and weighted_metrics are applied eagerly"
        elif ddp:
            why = "fit(distributed=True) runs the forward through DistributedDataParallel"
        if why is not None:
            jit.usable(why)
            return None
        if self._pred_like is None or self.metrics.metrics is None:
            return None  # the first step runs eagerly: it builds, picks the metrics, learns the output's shape
        if not jit.usable():
            return None
        self._check_targets(y, self._pred_like)
        return jit.train(x, y) if train else jit.test(x, y)

    def _call(self, x: Data) -> tuple[Any, Optional[Tensor]]:
        return (self.forward or self.model._call_with_mask)(x)

    def train_step(self, x: Data, y: Tensor, sample_weight: Optional[Tensor] = None) -> StepOutcome:
        outcome = StepOutcome()
        graph = self._compiled(x, y, train=True, sample_weight=sample_weight)
        y_pred, mask = self._call(x) if graph is None else graph[1:3]
        self._optimize(y, y_pred, mask, float(num_samples(x)), outcome, sample_weight, graph)
        if self.jit is not None:
            self.jit.settle()
        return outcome

    def train_step_tbptt(self, x: Data, y: Tensor, k: int, modules: list[nn.Module],
                         sample_weight: Optional[Tensor] = None) -> StepOutcome:
        """One batch as windows of ``k`` steps: one optimizer step per window (many-to-many),
        or only on the last window when y has no time axis (many-to-one)."""
        if self.jit is not None:
            self.jit.usable("truncated BPTT (fit(tbptt=...)) carries the state between windows in Python")
        reset_states(modules)
        T = time_steps(x)
        spans = windows(T, k)
        outcome = StepOutcome()
        B = float(num_samples(x))
        for i, (start, stop) in enumerate(spans):
            last = i == len(spans) - 1
            xw = time_slice(x, start, stop)
            if self.sequence_target is False and not last:
                with torch.no_grad():
                    self._call(xw)  # only advances the carried state
                continue
            y_pred, mask = self._call(xw)
            if self.sequence_target is None and len(spans) > 1:
                self.sequence_target = (
                    y.dim() >= 2 and y.shape[1] == T and isinstance(y_pred, Tensor)
                    and y_pred.dim() >= 2 and y_pred.shape[1] == stop - start
                )
            if self.sequence_target:
                sw = sample_weight
                if sw is not None and sw.dim() >= 2 and sw.shape[1] == T:
                    sw = time_slice(sw, start, stop)  # per-step weights follow their window
                self._optimize(time_slice(y, start, stop), y_pred, mask, B * (stop - start) / T, outcome, sw)
            elif last:
                self._optimize(y, y_pred, mask, B, outcome, sample_weight)
        return outcome

    def _optimize(self, y: Tensor, y_pred: Any, mask: Optional[Tensor], weight: float, outcome: StepOutcome,
                  sample_weight: Optional[Tensor] = None, graph: Optional[tuple[Any, ...]] = None) -> None:
        """``graph``: what the jit_compile graph computed (see ``_compiled``), else None."""
        self.step += 1
        outcome.steps += 1
        opt = self.optimizer
        opt.zero_grad()
        if graph is None:
            sample_weight = self._weights(y, y_pred, sample_weight)
            loss = self.compute_loss(y, y_pred, mask, sample_weight)
        else:
            loss = graph[0]
        share = 1.0
        if self.shard is not None:
            # All processes agree on skipping before the backward, whose all-reduce they share.
            loss_value = float(loss.detach())
            finite, share, weight = self.shard.agree(math.isfinite(loss_value), y_pred, mask, weight)
            if not finite:
                self._bad_step(f"non-finite loss (loss={loss_value:g})", outcome)
                outcome.grad_norm = max(outcome.grad_norm, float("nan"), key=_nan_last)
                return
        (loss * share if share != 1.0 else loss).backward()
        params = [p for g in opt.torch_optimizer.param_groups for p in g["params"]]
        grads = clipping.gradients(params)
        # clipnorm and global_clipnorm scale by the norms: exact float64 ones. Otherwise they only
        # feed the guard and the grad_norm log, and float32 is enough (see clipping.norm_list).
        exact = self.clipnorm is not None or self.global_clipnorm is not None
        y_pred = y_pred.detach() if isinstance(y_pred, Tensor) else y_pred  # several outputs: a list
        # The one read-back of the step (see the module docstring): per-tensor norms, (max |g|
        # per tensor), then the loss, (the range probe's min and max), (the metric sums).
        n = len(grads)
        values = clipping.norm_list(grads, exact)
        if self.clipvalue is not None:
            values += clipping.max_abs_list(grads)
        if graph is not None:
            probe, sums = graph[3], graph[4]
        elif self.outputs is not None:  # per-output losses and metrics update after the step
            probe, sums = None, []
        else:
            probe = self.loss.range_probe(y_pred)
            sums = self.metrics.batch_sums(y, y_pred, mask) if share != 0.0 else []
        at = len(values)
        host = _read_back([*values, loss.detach(), *(probe or ()), *sums])
        norms, largest = host[:n], (host[n:2 * n] if self.clipvalue is not None else None)
        norm = math.hypot(*norms)  # ||G||, correctly rounded, inf/nan if a gradient is
        if not exact and not math.isfinite(norm):  # finite exactly when every norm is
            norms = clipping.finite_norms(grads, norms)
            norm = math.hypot(*norms)
        loss_value, at = host[at], at + 1
        if probe is not None:
            self.loss.check_range(host[at], host[at + 1])
            at += 2
        if not math.isfinite(loss_value):
            self._bad_step(f"non-finite loss (loss={loss_value:g})", outcome)
            outcome.grad_norm = max(outcome.grad_norm, float("nan"), key=_nan_last)
            opt.zero_grad()
            return
        outcome.grad_norm = max(outcome.grad_norm, norm, key=_nan_last)
        if not math.isfinite(norm):
            self._bad_step(f"non-finite gradient (norm={norm:g})", outcome)
            opt.zero_grad()
            return
        outcome.clipped |= clipping.clip_(grads, norms, clipnorm=self.clipnorm, clipvalue=self.clipvalue,
                                          global_clipnorm=self.global_clipnorm, total=norm, largest=largest)
        opt.step()
        self.consecutive_bad = 0
        if share == 0.0:
            return  # a placeholder sample on a process with no share of this batch
        self.loss_tracker.add(loss_value * weight, weight)
        if self.outputs is not None:
            self.outputs.update(y, y_pred, mask)
        else:
            self.metrics.add(host[at:], y, y_pred, mask)
        if self.weighted_metrics.identifiers:
            self.weighted_metrics.update(y, y_pred, mask, sample_weight)

    def _bad_step(self, what: str, outcome: StepOutcome) -> None:
        outcome.skipped += 1
        self.consecutive_bad += 1
        where = f"epoch {self.epoch} step {self.step}" if self.epoch is not None else f"step {self.step}"
        warnings.warn(f"{what} at {where}; step skipped", RuntimeWarning, stacklevel=2)
        if self.consecutive_bad >= self.max_bad_steps:
            self.model.stop_training = True
            warnings.warn(
                f"training stopped: {self.consecutive_bad} consecutive steps had a non-finite loss or gradient "
                f"(last at {where}). Lower the learning rate, set clipnorm or global_clipnorm in compile(), "
                "or check the data for extreme values",
                RuntimeWarning, stacklevel=2,
            )

    def test_step(self, x: Data, y: Tensor, sample_weight: Optional[Tensor] = None) -> None:
        with torch.no_grad():
            graph = self._compiled(x, y, train=False, sample_weight=sample_weight)
            if graph is None:
                y_pred, mask = self.model._call_with_mask(x)
                if sample_weight is not None:  # class_weight is for training only, as in Keras
                    check_against_output(sample_weight, y_pred, "Argument `sample_weight`")
                loss = self.compute_loss(y, y_pred, mask, sample_weight)
                probe = None if self.outputs is not None else self.loss.range_probe(y_pred)
                sums = [] if self.outputs is not None else self.metrics.batch_sums(y, y_pred, mask)
                if self.jit is not None:
                    self.jit.settle()
            else:
                loss, y_pred, mask, probe, sums = graph
        host = _read_back([loss, *(probe or ()), *sums])  # one transfer
        if probe is not None:
            self.loss.check_range(host[1], host[2])
        weight = float(num_samples(x))
        self.loss_tracker.add(host[0] * weight, weight)
        if self.outputs is not None:
            self.outputs.update(y, y_pred, mask)
        else:
            self.metrics.add(host[3 if probe is not None else 1:], y, y_pred, mask)
        if self.weighted_metrics.identifiers:
            self.weighted_metrics.update(y, y_pred, mask, sample_weight)

    # -- results --------------------------------------------------------------------------

    def results(self) -> dict[str, float]:
        return {"loss": self.loss_tracker.result(), **self.metrics.results(), **self.weighted_metrics.results()}

    def reset_metrics(self) -> None:
        self.loss_tracker.reset_state()
        self.metrics.reset()
        self.weighted_metrics.reset()

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *self.metrics.names, *self.weighted_metrics.names]

    def compile_config(self) -> Optional[dict[str, Any]]:
        """JSON-safe compile arguments, or None when a part is user code that cannot be saved."""
        opt = optimizers_mod.serialize(self.optimizer)
        if self.outputs is not None:  # {"loss": {output: ...}, "metrics": {...}, "loss_weights": {...}}
            per_output = self.outputs.serializable()
            weighted = []
            if opt is None or per_output is None:
                return None
        else:
            loss = losses_mod.serialize(self.loss)
            metrics = self.metrics.serializable()
            weighted = self.weighted_metrics.serializable()
            if opt is None or loss is None or metrics is None or weighted is None:
                return None
            per_output = {"loss": loss, "metrics": metrics}
        if self.optimizer.has_clipping:
            clip = {}
        else:
            clip = {k: v for k, v in (("clipnorm", self.clipnorm), ("clipvalue", self.clipvalue),
                                      ("global_clipnorm", self.global_clipnorm)) if v is not None}
        steps: dict[str, Any] = {}  # as in Keras's compile config, where not the defaults
        if self.jit is not None:
            steps["jit_compile"] = True
        if self.steps_per_execution != 1:
            steps["steps_per_execution"] = self.steps_per_execution
        extra = {"weighted_metrics": weighted} if weighted else {}
        return {"optimizer": opt, **per_output, **extra, **clip, **steps}


def _read_back(values: list[Any]) -> list[Any]:
    """``values`` (0-dim tensors or numbers) as Python numbers, exact (float32 sums, float64
    norms, integer counts of one batch). Tensors on an accelerator arrive in one transfer (one
    device sync); on the CPU there is nothing to wait for, and reading each tensor costs less
    than stacking them (stacking mixed dtypes takes torch's slow per-tensor path)."""
    tensors = [t for t in values if isinstance(t, Tensor)]
    if all(t.device.type == "cpu" for t in tensors):
        return [t.item() if isinstance(t, Tensor) else t for t in values]
    host = iter(torch.stack(tensors).tolist())
    return [next(host) if isinstance(t, Tensor) else t for t in values]


def _nan_last(v: float) -> float:
    # max() with NaN-aware ordering: a NaN norm outranks any number, so it is what logs show.
    return math.inf if math.isnan(v) else v
