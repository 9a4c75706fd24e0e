"""What every training recipe shares: options, results, progress, saving and the learning-curve plot."""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

import numpy as np
import torch
from torch import nn

from ...keras.callbacks import Callback, EarlyStopping, is_terminal
from ...outdir import check_out_dir
from ..io import load_model, save_model

__all__ = ["Context", "EpochBar", "Run", "Score", "Task", "check_out_dir", "plot_history", "prepare", "train_task"]


@dataclass
class Context:
    """The options of one ``rnnkit train`` run."""

    cell: str
    epochs: int
    seed: int = 0
    limit: Optional[int] = None  #: cap on training (and test) samples, for smoke tests
    verbose: int = 1  #: 1 progress bars, 0 silent
    options: dict[str, Any] = field(default_factory=dict)  #: task-specific (``dataset``, ``horizon``)
    out: Path = Path("runs")
    stream: Optional[TextIO] = None  #: where messages go (None: sys.stdout at the time of printing)
    data: Any = None  #: what ``Task.check`` read (a user's files), for ``Task.train``

    def pick(self, n: int) -> np.ndarray:
        """Which of ``n`` samples to use: all, or ``limit`` of them spread evenly (sets are often sorted)."""
        if self.limit is None or self.limit >= n:
            return np.arange(n)
        return np.linspace(0, n - 1, self.limit).round().astype(np.int64)

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, file=self.stream or sys.stdout, flush=True)


@dataclass
class Score:
    """A test metric beside its baseline."""

    name: str
    value: float
    baseline: float
    baseline_name: str
    higher_is_better: bool = True

    @property
    def beats_baseline(self) -> bool:
        return self.value > self.baseline if self.higher_is_better else self.value < self.baseline


@dataclass
class Run:
    """What a task's ``train`` returns."""

    model: nn.Module
    history: dict[str, list[float]]  #: per epoch: "loss", "val_loss", ...
    scores: list[Score]
    extras: dict[str, Any] = field(default_factory=dict)  #: JSON-able, saved beside the model
    notes: list[str] = field(default_factory=list)  #: lines printed after the scores (samples, examples)
    early_stopping: Optional[EarlyStopping] = None  #: the callback, if the recipe used one
    loss_name: Optional[str] = None  #: what the loss is, for the plot (default: the compiled loss's name)


class Task:
    """A training recipe on bundled data. Subclasses set the class attributes and implement ``train``."""

    name = ""
    summary = ""
    shape = ""  #: "many-to-one", ...
    default_cell = "lstm"
    default_epochs = 5
    input_help = "inputs"  #: what ``rnnkit predict`` takes, for messages
    needs_inputs = True  #: False: ``predict`` with no inputs has a default (e.g. the bundled test images)

    def check(self, ctx: Context) -> None:
        """Read and check the task's input before anything else is done (a user's files: ``ctx.data``)."""

    def train(self, ctx: Context) -> Run:
        raise NotImplementedError

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        """One output line per input (``rnnkit predict``)."""
        raise NotImplementedError(f"task {self.name!r} has no predict")


class EpochBar(Callback):
    """One tqdm bar over all epochs (for tasks with many short epochs), showing the latest losses.

    Written to a file or a pipe, it prints one line per epoch instead of redrawing a bar.
    """

    def __init__(self, epochs: int, desc: str, file: Any = None) -> None:
        super().__init__()
        from tqdm.auto import tqdm

        self.epochs, self.desc, self.file = epochs, desc, file or sys.stderr
        self.bar = (tqdm(total=epochs, desc=desc, unit="epoch", file=self.file, dynamic_ncols=True, mininterval=0.2)
                    if is_terminal(self.file) else None)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        shown = " ".join(f"{k} {v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss", "accuracy", "val_accuracy"))
        if self.bar is None:
            print(f"{self.desc}: epoch {epoch + 1}/{self.epochs} {shown}", file=self.file, flush=True)
            return
        self.bar.set_postfix_str(shown, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.bar is not None:
            self.bar.close()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stopping_summary(run: Run, epochs: int) -> str:
    """One line: how many epochs ran, whether early stopping fired, and which epoch's weights the model holds."""
    ran = len(run.history.get("loss", []))
    stop = run.early_stopping
    if stop is not None and stop.stopped_epoch > 0:
        restored = f", restored epoch {stop.best_epoch + 1} (best {stop.monitor} {stop.best:.4g})" \
            if stop.restore_best_weights else ""
        return f"early stopping: stopped at epoch {stop.stopped_epoch + 1} of {epochs}{restored}"
    if stop is not None:
        return f"trained all {ran} epochs (early stopping on {stop.monitor} did not fire); the model is the last epoch's"
    return f"trained all {ran} epochs; the model is the last epoch's"


def restored_epoch(run: Run) -> Optional[int]:
    """The 1-based epoch whose weights the model holds, if early stopping restored one."""
    stop = run.early_stopping
    if stop is not None and stop.stopped_epoch > 0 and stop.restore_best_weights:
        return stop.best_epoch + 1
    return None


_LOSS_NAMES = {"SparseCategoricalCrossentropy": "cross-entropy (nats)", "CategoricalCrossentropy": "cross-entropy (nats)",
               "BinaryCrossentropy": "binary cross-entropy (nats)", "MeanSquaredError": "mean squared error",
               "MeanAbsoluteError": "mean absolute error"}


def loss_name(run: Run) -> str:
    if run.loss_name:
        return run.loss_name
    loss = getattr(run.model, "loss", None)
    kind = type(loss).__name__ if loss is not None else ""
    return _LOSS_NAMES.get(kind, kind or "loss")


def plot_history(history: dict[str, list[float]], path: Path, title: str, loss: str = "loss",
                 best_epoch: Optional[int] = None, scores: Sequence[Score] = ()) -> Path:
    """Learning curves: the loss (training and validation) on the left, every other per-epoch series on the right.

    Args:
        loss: what the loss is, for the y-axis ("cross-entropy (nats)", ...).
        best_epoch: the 1-based epoch whose weights were restored; marked by a dashed line.
        scores: test scores; named in the title, and drawn as lines (with their baselines) on the
            metrics panel where a plotted series has the same name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    losses = {k: v for k, v in history.items() if k.endswith("loss") and v}
    others = {k: v for k, v in history.items() if not k.endswith("loss") and k != "time" and v}
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(10.5 if others else 6, 4), squeeze=False)

    def curves(ax: Any, series: dict[str, list[float]]) -> None:
        for k, v in series.items():
            ax.plot(range(1, len(v) + 1), v, marker="o" if len(v) < 30 else None, label=k,
                    linestyle="--" if k.startswith("val_") else "-")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"restored epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    ax = axes[0, 0]
    curves(ax, losses)
    ax.set_ylabel(loss)
    ax.set_title("loss" + ("" if any(k.startswith("val_") for k in losses) else " (no validation split)"))
    ax.legend(fontsize="small")
    if others:
        ax = axes[0, 1]
        curves(ax, others)
        names = sorted({k.removeprefix("val_") for k in others})
        ax.set_ylabel(", ".join(names))
        for s in scores:
            if s.name in names:
                ax.axhline(s.value, color="black", linewidth=1, label=f"test {s.name} {_fmt(s.value)}")
                ax.axhline(s.baseline, color="red", linewidth=1, linestyle="-.",
                           label=f"baseline {_fmt(s.baseline)}")
        ax.set_title("metrics")
        ax.legend(fontsize="small")
    score_text = "; ".join(f"test {s.name} {_fmt(s.value)} (baseline {_fmt(s.baseline)})" for s in scores)
    fig.suptitle(title + (f"\n{score_text}" if score_text else ""), fontsize="medium")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"


def prepare(task: Task, ctx: Context) -> None:
    """Everything that can fail before training, in order: the output directory, the task's input, the C++ build.

    Done before any progress bar starts, so a bad path or file fails at once and the build
    (minutes on a first run) does not count in a bar's ETA.
    """
    check_out_dir(ctx.out)
    task.check(ctx)
    from ...engine.kernels import load_kernels

    load_kernels()


def train_task(task: Task, ctx: Context) -> tuple[Run, dict[str, Path]]:
    """Check, seed, train, print the scores beside their baselines, save the model, the curves and results.json."""
    prepare(task, ctx)
    seed_everything(ctx.seed)
    start = time.perf_counter()
    ctx.say(f"rnnkit train {task.name}: {task.summary} ({task.shape}, cell={ctx.cell}, epochs={ctx.epochs}, "
            f"seed={ctx.seed}{'' if ctx.limit is None else f', limit={ctx.limit}'})")
    run = task.train(ctx)
    seconds = time.perf_counter() - start
    ctx.out.mkdir(parents=True, exist_ok=True)
    stopped = stopping_summary(run, ctx.epochs)
    results = {
        "task": task.name, "cell": ctx.cell, "epochs": ctx.epochs, "seed": ctx.seed, "limit": ctx.limit,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in ctx.options.items()}, "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(), "epochs_run": len(run.history.get("loss", [])),
        "restored_epoch": restored_epoch(run), "stopping": stopped,
        "scores": [{"metric": s.name, "value": s.value, "baseline": s.baseline, "baseline_name": s.baseline_name,
                    "higher_is_better": s.higher_is_better, "beats_baseline": s.beats_baseline} for s in run.scores],
    }
    weights, config = save_model(run.model, ctx.out / "model", task=task.name, results=results, **run.extras)
    curves = plot_history(run.history, ctx.out / "curves.png", f"rnnkit train {task.name} ({ctx.cell})",
                          loss=loss_name(run), best_epoch=restored_epoch(run), scores=run.scores)
    (ctx.out / "results.json").write_text(json.dumps({**results, "history": run.history}, indent=1) + "\n")
    width = max(len(s.name) for s in run.scores) if run.scores else 0
    ctx.say("")
    ctx.say(stopped)
    for s in run.scores:
        verdict = "beats" if s.beats_baseline else "does NOT beat"
        ctx.say(f"test {s.name:<{width}}  {_fmt(s.value)}   baseline {_fmt(s.baseline)} ({s.baseline_name}): {verdict} it")
    for line in run.notes:
        ctx.say(line)
    ctx.say(f"saved {weights} (+ {config.name}), learning curves {curves}; {seconds:.0f} s")
    return run, {"weights": weights, "config": config, "curves": curves, "results": ctx.out / "results.json"}


def load_task_model(path: Path) -> tuple[nn.Module, dict[str, Any], str]:
    """A model saved by ``train_task``: a run directory or its ``model`` prefix -> (model, extras, task name)."""
    path = Path(path)
    prefix = path / "model" if path.is_dir() else path
    model, extras = load_model(prefix)
    task = extras.get("task")
    if not isinstance(task, str):
        raise ValueError(f"{str(prefix)!r} was not saved by `rnnkit train` (its JSON names no task)")
    return model, extras, task


def nats_to_bits(x: float) -> float:
    return x / math.log(2)
