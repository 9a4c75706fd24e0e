"""Callbacks with Keras's hook names, called by ``fit``, ``evaluate`` and ``predict``.

``logs`` that fit passes (besides "loss", the metrics and, per epoch, "val_*"):
    on_train_batch_end: "grad_norm"      global L2 norm of all gradients before clipping
                                         (max over the windows of a tbptt batch; nan if the loss was)
                        "clipped"        True if clipnorm/clipvalue/global_clipnorm changed a gradient
                        "skipped_steps"  steps skipped by the NaN/inf guard so far this epoch
    on_epoch_end:       "clip_events"    steps in the epoch where clipping fired
                        "skipped_steps"  steps skipped in the epoch
``History`` keeps "loss"/metrics/"val_*" in ``history.history`` (as Keras does) and the
diagnostics per epoch in ``history.clip_events``, ``history.skipped_steps`` and
``history.grad_norms`` (the per-batch norms of each epoch).
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np

DIAGNOSTIC_KEYS = ("grad_norm", "clipped", "skipped_steps", "clip_events", "steps")


class Callback:
    """Base class: override any of the hooks. ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Optional[dict] = None) -> None: ...
    def on_train_end(self, logs: Optional[dict] = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None: ...
    def on_test_begin(self, logs: Optional[dict] = None) -> None: ...
    def on_test_end(self, logs: Optional[dict] = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Optional[dict] = None) -> None: ...
    def on_predict_begin(self, logs: Optional[dict] = None) -> None: ...
    def on_predict_end(self, logs: Optional[dict] = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Optional[dict] = None) -> None: ...


class CallbackList:
    """Calls a hook on every callback in order (those that leave a hook as Callback's no-op
    are skipped, and ``has`` tells the loop whether to build a hook's ``logs`` at all)."""

    def __init__(self, callbacks: Optional[Sequence[Callback]], model: Any, params: dict[str, Any]) -> None:
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Argument `callbacks` must hold rnnkit.callbacks.Callback instances, got {cb!r}")
            cb.set_model(model)
            cb.set_params(params)
        self.callbacks = callbacks
        self._hooks: dict[str, list[Callable[..., Any]]] = {}

    def _implementing(self, hook: str) -> list[Callable[..., Any]]:
        found = self._hooks.get(hook)
        if found is None:
            base = getattr(Callback, hook)
            found = [getattr(cb, hook) for cb in self.callbacks if hook in vars(cb) or getattr(type(cb), hook) is not base]
            self._hooks[hook] = found
        return found

    def has(self, hook: str) -> bool:
        """Whether any callback implements ``hook``."""
        return bool(self._implementing(hook))

    def implementers(self, hook: str) -> list[Callable[..., Any]]:
        """The bound ``hook`` methods that ``call`` runs, in order."""
        return list(self._implementing(hook))

    def call(self, hook: str, *args: Any) -> None:
        for fn in self._implementing(hook):
            fn(*args)


def metric_logs(logs: Optional[dict]) -> dict[str, Any]:
    """Only the Keras keys: loss, metrics, val_*."""
    return {k: v for k, v in (logs or {}).items() if k not in DIAGNOSTIC_KEYS}


class History(Callback):
    """``history.history[key]`` is a list with one value per epoch; ``history.epoch`` the epoch indices."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []
        self.clip_events: list[int] = []
        self.skipped_steps: list[int] = []
        self.grad_norms: list[list[float]] = []

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.epoch = []

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.grad_norms.append([])

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if logs and "grad_norm" in logs and self.grad_norms:
            self.grad_norms[-1].append(float(logs["grad_norm"]))

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in metric_logs(logs).items():
            self.history.setdefault(k, []).append(v)
        self.clip_events.append(int(logs.get("clip_events", 0)))
        self.skipped_steps.append(int(logs.get("skipped_steps", 0)))
        if self.model is not None:
            self.model.history = self


def _auto_mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"Received an invalid value for argument `mode`, expected 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    bigger_is_better = ("acc", "auc", "precision", "recall", "f1")
    return "max" if any(word in monitor for word in bigger_is_better) else "min"


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        super().__init__()
        self.monitor = monitor
        self.mode = _auto_mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float, reference: Optional[float] = None) -> bool:
        reference = self.best if reference is None else reference
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    # fit(checkpoint_dir=...) saves this JSON state and puts it back when resuming.
    _STATE: tuple[str, ...] = ("best",)

    def get_state(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._STATE}

    def set_state(self, state: dict[str, Any]) -> None:
        for k in self._STATE:
            if k in state:
                setattr(self, k, state[k])

    def current(self, logs: Optional[dict]) -> Optional[float]:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: the monitored metric {self.monitor!r} is not in the logs; available: "
                          f"{sorted(metric_logs(logs))}", stacklevel=3)
            return None
        return float(value)


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    A resumed fit (checkpoints) continues its count; ``restore_best_weights`` then restores
    the best weights seen since the resume.
    """

    _STATE = ("best", "wait", "best_epoch", "stopped_epoch")

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: Optional[float] = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"Received an invalid value for argument `patience`, expected an integer >= 0, got {patience!r}")
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: Optional[dict[str, Any]] = None

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.wait, self.stopped_epoch, self.best_epoch, self.best_weights = 0, 0, 0, None
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        value = self.current(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _copy_state(self.model)
        self.wait += 1
        if self.improved(value):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = _copy_state(self.model)
            if self.baseline is None or self.improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
                self.model.load_state_dict(self.best_weights)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


def _copy_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class ModelCheckpoint(_Monitor):
    """Save the model (or its weights) every epoch, or only when ``monitor`` improves.

    ``filepath`` may hold ``{epoch}`` (1-based) and any log key, formatted like
    ``"ckpt-{epoch:02d}-{val_loss:.2f}.safetensors"``.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto",
                 initial_value_threshold: Optional[float] = None) -> None:
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.verbose, self.save_best_only, self.save_weights_only = verbose, save_best_only, save_weights_only
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} names {e}, which is not in the logs; "
                           f"available: ['epoch', {', '.join(repr(k) for k in sorted(logs))}]") from None
        if self.save_best_only:
            value = self.current(logs)
            if value is None or not self.improved(value):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {value:.5f}, saving to {path}")
            self.best = value
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Append one row per epoch ("epoch" then the sorted log keys) to a CSV file."""

    def __init__(self, filename: str, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys: Optional[list[str]] = None
        self._file: Any = None
        self._writer: Any = None

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = None
        self._header_written = exists

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep,
                                          extrasaction="ignore")
            if not self._header_written:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.4e}"
    return str(value)


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (a bar redrawn in place reads well only there)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class ProgbarLogger(Callback):
    """A tqdm progress bar per epoch (verbose=1) with the running loss and metrics, or one line per epoch (verbose=2).

    Written to a file or a pipe rather than a terminal, verbose=1 also gives one line per epoch:
    a bar redrawn with carriage returns would be one endless line there.
    """

    # As Keras's bar: the running logs are formatted at most this often (seconds), not every batch.
    interval = 0.05

    def __init__(self, verbose: int = 1, file: Any = None) -> None:
        super().__init__()
        self.verbose = verbose
        self.file = file
        self._bar: Any = None
        self._start = 0.0
        self._done = 0           # batches done in this bar (the bar may show fewer until its next update)
        self._next_update = 0.0  # perf_counter time of the next update

    def _bars(self) -> bool:
        return self.verbose == 1 and is_terminal(self.file or sys.stderr)

    def _open(self, total: Optional[int], desc: str) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="step", file=self.file or sys.stderr, dynamic_ncols=True,
                         leave=True, mininterval=0.2)
        self._done, self._next_update = 0, 0.0

    def _advance(self, batch: int, logs: Optional[dict]) -> None:
        """Batches up to ``batch`` are done (one call may cover several: steps_per_execution);
        now and then the bar shows them with the running logs."""
        self._done = batch + 1
        now = time.perf_counter()
        if now >= self._next_update:
            if logs is not None:
                self._bar.set_postfix_str(_postfix(metric_logs(logs)), refresh=False)
            self._bar.update(self._done - self._bar.n)
            self._next_update = now + self.interval

    def _close(self, logs: Optional[dict]) -> None:
        if self._bar is not None:
            if self._done > self._bar.n:
                self._bar.update(self._done - self._bar.n)
            if logs:
                self._bar.set_postfix_str(_postfix(logs), refresh=False)
            self._bar.close()
            self._bar = None

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()
        desc = f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}"
        if self._bars():
            self._open(self.params.get("steps"), desc)

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if self._bar is not None:
            self._advance(batch, logs)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self._bars():
            self._close(metric_logs(logs))
        elif self.verbose in (1, 2):
            took = time.perf_counter() - self._start
            stream = self.file or (sys.stdout if self.verbose == 2 else sys.stderr)
            print(f"Epoch {epoch + 1}/{self.params.get('epochs', '?')} - {took:.0f}s - {_postfix(metric_logs(logs), ' - ')}",
                  file=stream, flush=True)

    def on_test_begin(self, logs: Optional[dict] = None) -> None:
        if self._bars() and self.params.get("mode") == "evaluate":
            self._open(self.params.get("steps"), "Evaluate")

    def on_test_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if self._bar is not None and self.params.get("mode") == "evaluate":
            self._advance(batch, logs)

    def on_test_end(self, logs: Optional[dict] = None) -> None:
        if self.params.get("mode") == "evaluate":
            self._close(metric_logs(logs))

    def on_predict_begin(self, logs: Optional[dict] = None) -> None:
        if self._bars():
            self._open(self.params.get("steps"), "Predict")

    def on_predict_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if self._bar is not None:
            self._advance(batch, None)

    def on_predict_end(self, logs: Optional[dict] = None) -> None:
        self._close(None)


def _postfix(logs: dict, sep: str = ", ") -> str:
    return sep.join(f"{k}: {_fmt(v)}" for k, v in logs.items())


class LambdaCallback(Callback):
    """Callbacks from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to ``schedule(epoch, lr)``."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        lr = float(self.schedule(epoch, self.model.optimizer.learning_rate))
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    _STATE = ("best", "wait", "cooldown_counter")

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"Received an invalid value for argument `factor`, expected a float in (0, 1), got {factor!r}")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        value = self.current(logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.optimizer.learning_rate
                new = max(old * self.factor, self.min_lr)
                if new < old:
                    self.model.optimizer.learning_rate = new
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


class TensorBoard(Callback):
    """Write the epoch logs (and per-batch ones with ``update_freq="batch"``) as TensorBoard scalars.

    Needs the ``tensorboard`` package (``torch.utils.tensorboard``). Runs go to
    ``log_dir/train`` and ``log_dir/validation``, tags ``epoch_loss``, ``epoch_<metric>``.
    """

    def __init__(self, log_dir: str = "logs", update_freq: Any = "epoch") -> None:
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "The TensorBoard callback needs the `tensorboard` package, which torch.utils.tensorboard could not "
                f"import ({e}). Install it (pip install tensorboard), or use CSVLogger instead"
            ) from e
        if update_freq not in ("epoch", "batch") and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"Received an invalid value for argument `update_freq`, expected 'epoch', 'batch' or a "
                             f"positive integer, got {update_freq!r}")
        self._writer_cls = SummaryWriter
        self.log_dir, self.update_freq = os.fspath(log_dir), update_freq
        self._writers: dict[str, Any] = {}
        self._global_step = 0

    def _writer(self, run: str) -> Any:
        if run not in self._writers:
            self._writers[run] = self._writer_cls(os.path.join(self.log_dir, run))
        return self._writers[run]

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self._global_step += 1
        every = 1 if self.update_freq == "batch" else self.update_freq
        if isinstance(every, int) and self._global_step % every == 0:
            for k, v in (logs or {}).items():
                if isinstance(v, (int, float, bool, np.number)):
                    self._writer("train").add_scalar(f"batch_{k}", float(v), self._global_step)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        for k, v in (logs or {}).items():
            if not isinstance(v, (int, float, np.number)):
                continue
            run, key = ("validation", k[4:]) if k.startswith("val_") else ("train", k)
            self._writer(run).add_scalar(f"epoch_{key}", float(v), epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        for w in self._writers.values():
            w.close()
        self._writers = {}


class TerminateOnNaN(Callback):
    """Stop as soon as a batch's running loss is NaN or inf."""

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True
