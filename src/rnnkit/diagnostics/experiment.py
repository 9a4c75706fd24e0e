"""Train one small model on a long-range task while watching its gradient flow.

This is the loop behind ``examples/adding_problem.py`` and ``rnnkit diagnose``: fresh
batches every step (the tasks are generated, so there is no over-fitting to a fixed
training set), a fixed test set, an "epoch" of ``eval_every`` steps, global-norm or
value clipping, a NaN/inf guard that skips a step, and the callback protocol of ``fit``
(``GradientFlow`` records the flow every epoch and every clipping event).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..datasets.long_range import ADDING_TRIVIAL_MSE, adding_problem, copy_task, copy_task_baseline, sequential_digits
from .callback import GradientFlow
from .models import CELL_RECIPES, SequenceModel

TASKS = ("adding", "copy", "digits-row", "digits-pixel")
OPTIMIZERS = ("adam", "rmsprop", "sgd")


@dataclass
class Task:
    """A long-range task: how to draw a training batch, the test set, the loss and its trivial level."""

    name: str
    length: int
    input_size: int
    output_size: int
    per_step: bool
    classification: bool
    baseline: float  # the loss of the trivial predictor
    baseline_name: str
    sample: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    test: tuple[np.ndarray, np.ndarray]

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.classification:
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        return F.mse_loss(out, y)

    def baseline_on_test(self) -> float:
        """The trivial predictor's loss on this task's actual test set (the sample differs from its expectation)."""
        y = self.test[1]
        if self.name == "adding":
            return float(((y.astype(np.float64) - 1.0) ** 2).mean())  # always predict 1.0
        if self.name == "copy":
            return self.baseline  # the memoryless strategy's loss does not depend on the sample
        counts = np.bincount(y, minlength=self.output_size) / len(y)  # the class prior, as cross-entropy
        return float(-(counts * np.log(np.maximum(counts, 1e-12))).sum())


def make_task(name: str, length: int = 100, n_test: int = 1000, seed: int = 1234) -> Task:
    """``name`` in TASKS; ``length`` is T for "adding" and "copy" (the digits fix T at 8 or 64)."""
    if name == "adding":
        return Task(name, length, 2, 1, False, False, ADDING_TRIVIAL_MSE, "predict 1.0 (MSE 1/6)",
                    lambda b, rng: adding_problem(b, length, rng), adding_problem(n_test, length, seed))
    if name == "copy":
        K, S = 8, 10

        def sample(b: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            return copy_task(b, length, K, S, rng, one_hot=True)

        return Task(name, length, K + 2, K + 1, True, True, copy_task_baseline(length, K, S),
                    "blanks, then uniform guesses", sample, sample(n_test, np.random.default_rng(seed)))
    if name in ("digits-row", "digits-pixel"):
        (x_train, y_train), test = sequential_digits(name.split("-")[1], seed=0)

        def draw(b: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            idx = rng.integers(0, len(x_train), size=b)
            return x_train[idx], y_train[idx]

        counts = np.bincount(y_train, minlength=10) / len(y_train)
        prior_ce = float(-(counts * np.log(np.maximum(counts, 1e-12))).sum())
        return Task(name, x_train.shape[1], x_train.shape[2], 10, False, True, prior_ce,
                    "class prior (cross-entropy)", draw, test)
    raise ValueError(f"Received an invalid value for argument `task`: expected one of {TASKS}, got {name!r}")


@dataclass
class RunConfig:
    """One training run. ``clipnorm`` clips the global norm (torch's clip_grad_norm_, Keras's global_clipnorm)."""

    task: str = "adding"
    length: int = 100
    recipe: str = "lstm"
    hidden: int = 64
    steps: int = 6000
    batch_size: int = 50
    lr: float = 1e-3
    optimizer: str = "adam"
    clipnorm: Optional[float] = None
    clipvalue: Optional[float] = None
    eval_every: int = 250
    flow_batch: int = 100
    seed: int = 0
    warn: bool = True

    def check(self) -> "RunConfig":
        if self.task not in TASKS:
            raise ValueError(f"Received an invalid value for argument `task`: expected one of {TASKS}, got {self.task!r}")
        if self.recipe not in CELL_RECIPES:
            raise ValueError(f"Received an invalid value for argument `recipe`: expected one of {sorted(CELL_RECIPES)}, got {self.recipe!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Received an invalid value for argument `optimizer`: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("length", "hidden", "steps", "batch_size", "eval_every", "flow_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Received an invalid value for argument `{name}`, expected a positive integer, got {v!r}")
        for name in ("clipnorm", "clipvalue"):
            v = getattr(self, name)
            if v is not None and not (v > 0):
                raise ValueError(f"Argument `{name}` must be positive or None, got {v!r}")
        return self

    @property
    def label(self) -> str:
        clip = f"clipnorm={self.clipnorm:g}" if self.clipnorm else f"clipvalue={self.clipvalue:g}" if self.clipvalue else "no clip"
        return f"{self.recipe} T={self.length} {clip}"


@dataclass
class RunResult:
    config: RunConfig
    baseline: float  # the trivial predictor's loss on the same test set
    final: float  # test loss at the end (nan if diverged)
    best: float  # lowest test loss seen
    accuracy: Optional[float]  # classification tasks: final test accuracy
    steps_to: Optional[int]  # first evaluated step with test loss below `target`
    target: float
    diverged: bool
    skipped: int  # steps skipped by the NaN/inf guard
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    flow: Optional[GradientFlow] = None

    def to_dict(self) -> dict:
        """A JSON-safe record: the numbers, the learning curve, and the flow and clipping history."""
        d = {k: v for k, v in asdict(self).items() if k not in ("flow", "config")}
        d["config"] = asdict(self.config)
        d["label"] = self.config.label
        d["clipping"] = clip_label(self.config)
        if self.flow is not None and self.flow.flows:
            key = self.flow.keys[0]
            first, last = self.flow.flows[0][key], self.flow.flows[-1][key]
            d["flow"] = {
                "layer": key,
                "epochs": list(self.flow.epochs),
                "heatmap": self.flow.heatmap(key).tolist(),
                "ratios": self.flow.ratios(key),
                "by_distance_first": first.by_distance().tolist(),
                "by_distance_last": last.by_distance().tolist(),
            }
            d["batch_norms"] = [list(b) for b in self.flow.batch_norms]
            d["clip_summary"] = self.flow.clip_summary()
        return d


def clip_label(c: RunConfig) -> str:
    if c.clipnorm:
        return f"clipnorm {c.clipnorm:g}"
    return f"clipvalue {c.clipvalue:g}" if c.clipvalue else "none"


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _global_norm(params: Sequence[torch.nn.Parameter]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Task, batch_size: int = 500) -> tuple[float, Optional[float]]:
    """Mean test loss (and accuracy for classification) over the task's test set."""
    x_all, y_all = (torch.from_numpy(a) for a in task.test)
    total, correct, n = 0.0, 0, len(x_all)
    for i in range(0, n, batch_size):
        x, y = x_all[i : i + batch_size], y_all[i : i + batch_size]
        out = model(x)
        total += float(task.loss(out, y)) * len(x)
        if task.classification:
            correct += int((out.argmax(-1) == y).sum()) if not task.per_step else 0
    acc = correct / n if task.classification and not task.per_step else None
    return total / n, acc


def train_run(
    config: RunConfig, task: Optional[Task] = None, callbacks: Sequence = (), target: Optional[float] = None,
    log: Optional[Callable[[str], None]] = None,
) -> RunResult:
    """Train ``config.recipe`` on ``config.task``; returns the result with its ``GradientFlow`` record."""
    cfg = config.check()
    task = task or make_task(cfg.task, cfg.length)
    target = target if target is not None else (0.01 if not task.classification else 0.1 * task.baseline)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    model = SequenceModel(cfg.recipe, task.input_size, cfg.hidden, task.output_size, per_step=task.per_step)
    params = list(model.parameters())
    opt = _optimizer(cfg.optimizer, params, cfg.lr)
    flow_x, flow_y = task.sample(cfg.flow_batch, np.random.default_rng(cfg.seed + 999))
    flow = GradientFlow(flow_x, flow_y, loss_fn=task.loss, warn=cfg.warn)
    cbs = [flow, *callbacks]
    for cb in cbs:
        cb.set_model(model)
        cb.set_params({"epochs": math.ceil(cfg.steps / cfg.eval_every), "steps": cfg.eval_every})
    curve: list[tuple[int, float]] = []
    skipped, diverged, steps_to, acc = 0, False, None, None
    best = math.inf
    start = time.perf_counter()
    for cb in cbs:
        cb.on_train_begin({})
    step = 0
    n_epochs = math.ceil(cfg.steps / cfg.eval_every)
    for epoch in range(n_epochs):
        for cb in cbs:
            cb.on_epoch_begin(epoch, {})
        clip_events, train_loss, n_batches = 0, 0.0, 0
        model.train()
        for batch in range(min(cfg.eval_every, cfg.steps - step)):
            x, y = (torch.from_numpy(a) for a in task.sample(cfg.batch_size, rng))
            opt.zero_grad(set_to_none=True)
            loss = task.loss(model(x), y)
            loss.backward()
            norm = _global_norm(params)
            clipped = False
            if not torch.isfinite(norm) or not torch.isfinite(loss):
                skipped += 1  # the NaN/inf guard: a non-finite step would poison every weight
            else:
                if cfg.clipnorm is not None:
                    clipped = bool(norm > cfg.clipnorm)
                    torch.nn.utils.clip_grad_norm_(params, cfg.clipnorm)
                if cfg.clipvalue is not None:
                    clipped = clipped or any(bool((p.grad.abs() > cfg.clipvalue).any()) for p in params if p.grad is not None)
                    torch.nn.utils.clip_grad_value_(params, cfg.clipvalue)
                opt.step()
            clip_events += clipped
            step += 1
            loss_value = float(loss.detach())
            train_loss += loss_value
            n_batches += 1
            logs = {"loss": loss_value, "grad_norm": float(norm), "clipped": clipped}
            for cb in cbs:
                cb.on_train_batch_end(batch, logs)
        model.eval()
        test_loss, acc = evaluate(model, task)
        curve.append((step, test_loss))
        if math.isfinite(test_loss):
            best = min(best, test_loss)
            if steps_to is None and test_loss < target:
                steps_to = step
        else:
            diverged = True
        logs = {"loss": train_loss / max(n_batches, 1), "val_loss": test_loss, "clip_events": clip_events}
        if acc is not None:
            logs["val_accuracy"] = acc
        for cb in cbs:
            cb.on_epoch_end(epoch, logs)
        if log:
            extra = f"  acc {acc:.3f}" if acc is not None else ""
            log(f"{cfg.label:28s} step {step:6d}  train {logs['loss']:.4f}  test {test_loss:.4f}{extra}  "
                f"clipped {clip_events:3d}  {time.perf_counter() - start:6.0f} s")
        if diverged:
            break
    for cb in cbs:
        cb.on_train_end({})
    final = curve[-1][1] if curve else math.nan
    return RunResult(cfg, task.baseline_on_test(), final, best, acc, steps_to, target, diverged, skipped,
                     time.perf_counter() - start, curve, flow)


def _fmt(v: Optional[float], spec: str) -> str:
    return format(v, spec) if v is not None and math.isfinite(v) else "n/a"


def results_table(records: Sequence[dict], baseline: Optional[float] = None) -> str:
    """A markdown table of ``RunResult.to_dict()`` records: test loss, steps to target, clipping, flow, time."""
    seeds = len({r["config"]["seed"] for r in records}) > 1
    lines = [
        "| cell | T | clipping |" + (" seed |" if seeds else "") + " final test loss | best | trivial "
        "| steps to < target | clipped steps | ‖∂L/∂h_1‖/‖∂L/∂h_T‖: init / median / end | time (s) |",
        "|---|---:|---|" + ("---:|" if seeds else "") + "---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        c = r["config"]
        final = "diverged" if r["diverged"] else _fmt(r["final"], ".4f")
        steps_to = str(r["steps_to"]) if r["steps_to"] is not None else "-"
        cs = r.get("clip_summary", {})
        clipped = f"{int(cs.get('clipped', 0))}/{int(cs.get('steps', 0))}" if r["clipping"] != "none" else "-"
        ratios = r.get("flow", {}).get("ratios", [])
        trained = [v for v in ratios[1:] if v is not None and math.isfinite(v)]
        median = float(np.median(trained)) if trained else None
        ratio = f"{_fmt(ratios[0], '.0e')} / {_fmt(median, '.0e')} / {_fmt(ratios[-1], '.0e')}" if ratios else "n/a"
        seed = f" {c['seed']} |" if seeds else ""
        lines.append(f"| {c['recipe']} | {c['length']} | {r['clipping']} |{seed} {final} | {_fmt(r['best'], '.4f')} "
                     f"| {_fmt(r.get('baseline'), '.4f')} | {steps_to} | {clipped} | {ratio} | {r['seconds']:.0f} |")
    lines += ["", "trivial: the trivial predictor's loss on the same test set"
              + (f" (its expectation: {baseline:.4f})." if baseline is not None else ".")]
    return "\n".join(lines)
