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

from ...keras.callbacks import Callback
from ..io import load_model, save_model

__all__ = ["Context", "EpochBar", "Run", "Score", "Task", "plot_history", "train_task"]


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


class Task:
    """A training recipe on bundled data. Subclasses set the class attributes and implement ``train``."""

    name = ""
    summary = ""
    shape = ""  #: "many-to-one", ...
    default_cell = "lstm"
    default_epochs = 5

    def train(self, ctx: Context) -> Run:
        raise NotImplementedError

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        """One output line per input (``rnnkit predict``)."""
        raise NotImplementedError(f"task {self.name!r} has no predict")


class EpochBar(Callback):
    """One tqdm bar over all epochs (for tasks with many short epochs), showing the latest losses."""

    def __init__(self, epochs: int, desc: str, file: Any = None) -> None:
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", file=file or sys.stderr, dynamic_ncols=True,
                        mininterval=0.2)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        shown = {k: v for k, v in logs.items() if k in ("loss", "val_loss", "accuracy", "val_accuracy")}
        self.bar.set_postfix_str(" ".join(f"{k} {v:.4g}" for k, v in shown.items()), refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self.bar.close()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> Path:
    """Learning curves: losses on the left, every other per-epoch series on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    losses = {k: v for k, v in history.items() if k.endswith("loss") and v}
    others = {k: v for k, v in history.items() if not k.endswith("loss") and k != "time" and v}
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(10 if others else 5.5, 3.6), squeeze=False)
    ax = axes[0, 0]
    for k, v in losses.items():
        ax.plot(range(1, len(v) + 1), v, marker="o" if len(v) < 30 else None, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.legend()
    if others:
        ax = axes[0, 1]
        for k, v in others.items():
            ax.plot(range(1, len(v) + 1), v, marker="o" if len(v) < 30 else None, label=k)
        ax.set_xlabel("epoch")
        ax.set_title("metrics")
        ax.legend()
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"


def train_task(task: Task, ctx: Context) -> tuple[Run, dict[str, Path]]:
    """Seed, train, print the scores beside their baselines, save the model, the curves and results.json."""
    seed_everything(ctx.seed)
    start = time.perf_counter()
    ctx.say(f"rnnkit train {task.name}: {task.summary} ({task.shape}, cell={ctx.cell}, epochs={ctx.epochs}, "
            f"seed={ctx.seed}{'' if ctx.limit is None else f', limit={ctx.limit}'})")
    run = task.train(ctx)
    seconds = time.perf_counter() - start
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = {
        "task": task.name, "cell": ctx.cell, "epochs": ctx.epochs, "seed": ctx.seed, "limit": ctx.limit,
        "options": ctx.options, "seconds": round(seconds, 1), "threads": torch.get_num_threads(),
        "scores": [{"metric": s.name, "value": s.value, "baseline": s.baseline, "baseline_name": s.baseline_name,
                    "higher_is_better": s.higher_is_better, "beats_baseline": s.beats_baseline} for s in run.scores],
    }
    weights, config = save_model(run.model, ctx.out / "model", task=task.name, results=results, **run.extras)
    curves = plot_history(run.history, ctx.out / "curves.png", f"rnnkit train {task.name} ({ctx.cell})")
    (ctx.out / "results.json").write_text(json.dumps({**results, "history": run.history}, indent=1) + "\n")
    width = max(len(s.name) for s in run.scores) if run.scores else 0
    ctx.say("")
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
