"""The epoch and batch loops behind ``Model.fit``, ``evaluate`` and ``predict``."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from .. import callbacks as cb
from .data import (Data, as_data, batch_indices, batches, check_batch_size, check_same_length, concat, epoch_order,
                   num_batches, num_samples, split_validation, take, to_device, to_numpy)
from ..layers.base import is_built
from .tbptt import carrying_state, check_tbptt
from .trainer import StepOutcome, Trainer


def _verbosity(verbose: Union[str, int]) -> int:
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"Received an invalid value for argument `verbose`, expected 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _callback_list(model: Any, callbacks: Optional[Sequence[Any]], verbose: int, params: dict[str, Any],
                   history: Optional[cb.History] = None) -> cb.CallbackList:
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    items = list(callbacks or [])
    if verbose and not any(isinstance(c, cb.ProgbarLogger) for c in items):
        items.append(cb.ProgbarLogger(verbose))
    if history is not None:
        items.insert(0, history)
    return cb.CallbackList(items, model, params)


def _inputs(model: Any, x: Any, y: Any, x_name: str = "x", y_name: str = "y") -> tuple[Data, Any]:
    dtype = model._float_dtype()
    multi = not hasattr(model, "add")  # subclassed models may take several inputs; Sequential takes one
    xd = as_data(x, x_name, dtype, multi_input=multi)
    if y is None:
        return xd, None
    yd = as_data(y, y_name, dtype)
    check_same_length(xd, yd, x_name, y_name)
    _check_first_layer(model, xd, x_name)
    return xd, yd


def _check_first_layer(model: Any, x: Data, x_name: str) -> None:
    """Catch a wrong rank/feature size against the declared input shape before any work is done."""
    declared = getattr(model, "_input_shape", None)
    if declared is None or isinstance(x, tuple):
        return
    ok = x.dim() == len(declared) and all(d is None or d == s for d, s in zip(declared[1:], x.shape[1:]))
    if not ok:
        letters = ["B", "T"] if len(declared) >= 3 else ["B"]
        want = "(" + ", ".join(letters[i] if i < len(letters) and d is None else ("?" if d is None else str(d))
                               for i, d in enumerate(declared)) + ")"
        raise ValueError(f"Argument `{x_name}` must have shape {want} (rank {len(declared)}) for model "
                         f"{model.name!r}, got shape {tuple(x.shape)}")


@contextlib.contextmanager
def _mode(model: Any, training: bool):
    was = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was)


def fit(model: Any, trainer: Trainer, x: Any, y: Any, *, batch_size: Optional[int], epochs: int, verbose: Union[str, int],
        callbacks: Optional[Sequence[Any]], validation_split: float, validation_data: Optional[Any], shuffle: bool,
        initial_epoch: int, validation_batch_size: Optional[int], validation_freq: int, tbptt: Optional[int],
        max_bad_steps: int, checkpoint_dir: Any = None, checkpoint_every: Optional[int] = None, resume: bool = False,
        distributed: bool = False) -> cb.History:
    batch_size = check_batch_size(batch_size)
    val_batch_size = check_batch_size(validation_batch_size or batch_size, "validation_batch_size")
    verbose = _verbosity(verbose)
    check_tbptt(tbptt)
    for name, value, low in (("epochs", epochs, 0), ("initial_epoch", initial_epoch, 0),
                             ("validation_freq", validation_freq, 1), ("max_bad_steps", max_bad_steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"Received an invalid value for argument `{name}`, expected an integer >= {low}, got {value!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ValueError(f"Received an invalid value for argument `shuffle`, expected True or False, got {shuffle!r}")
    if y is None:
        raise ValueError("Argument `y` is required: fit needs targets (rnnkit does not take datasets or generators)")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
        raise ValueError(f"Received an invalid value for argument `validation_split`, expected a float in [0, 1), got {validation_split!r}")
    from . import checkpoint

    checkpoints = checkpoint.Checkpointer.from_args(checkpoint_dir, checkpoint_every, resume)
    from . import distributed as dist

    distributed = dist.requested(distributed)
    xd, yd = _inputs(model, x, y)
    val: Optional[tuple[Data, Data]] = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("Argument `validation_data` must be a tuple (x_val, y_val)")
        val = _inputs(model, validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]")
    elif validation_split:
        xd, yd, xv, yv = split_validation(xd, yd, float(validation_split))
        val = (xv, yv)

    trainer.ensure_built(xd)
    trainer.max_bad_steps = max_bad_steps
    trainer.sequence_target = None
    group = None
    if distributed:
        group = dist.attach(model, trainer, batch_size)
        verbose = verbose if group.rank == 0 else 0  # one progress bar, not one per process
    try:
        return _fit_epochs(model, trainer, xd, yd, val, batch_size=batch_size, epochs=epochs, verbose=verbose,
                           callbacks=callbacks, shuffle=shuffle, initial_epoch=initial_epoch,
                           val_batch_size=val_batch_size, validation_freq=validation_freq, tbptt=tbptt,
                           checkpoints=checkpoints, group=group)
    finally:
        if group is not None:
            group.detach()


def _fit_epochs(model: Any, trainer: Trainer, xd: Data, yd: Data, val: Optional[tuple[Data, Data]], *,
                batch_size: int, epochs: int, verbose: int, callbacks: Optional[Sequence[Any]], shuffle: bool,
                initial_epoch: int, val_batch_size: int, validation_freq: int, tbptt: Optional[int],
                checkpoints: Any, group: Any) -> cb.History:
    from .checkpoint import Progress

    device = model._device()
    n = num_samples(xd)
    steps = num_batches(n, batch_size)
    history = cb.History()
    params = {"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size, "samples": n,
              "mode": "fit"}
    callbacks_ = _callback_list(model, callbacks, verbose, params, history)
    batch_begin = callbacks_.has("on_train_batch_begin")
    # steps_per_execution=N: the batch hooks run once per N batches, logs over those N steps.
    every, pending = trainer.steps_per_execution, None
    model.stop_training = False
    callbacks_.call("on_train_begin", {})
    progress = Progress(initial_epoch)
    if checkpoints is not None:
        # Resuming puts back weights, optimizer, RNGs, history and the place in the epoch.
        progress = checkpoints.start(model, trainer, callbacks_, history, xd, yd, batch_size=batch_size,
                                     shuffle=shuffle, tbptt=tbptt, group=group, progress=progress)
    epoch_logs: dict[str, Any] = dict(progress.epoch_logs)
    for epoch in range(progress.epoch, progress.epoch if progress.stopped else epochs):
        if progress.order is None:  # a fresh epoch (not one resumed from a checkpoint taken inside it)
            trainer.reset_metrics()
            trainer.epoch, trainer.step = epoch + 1, 0
            callbacks_.call("on_epoch_begin", epoch, {})
            order = epoch_order(n, shuffle)
            progress = Progress(epoch, order=group.same_order(order) if group is not None else order)
        trainer.epoch, trainer.step = epoch + 1, progress.step
        with _mode(model, True), trainer.targets_once(yd), \
                (carrying_state(model) if tbptt else contextlib.nullcontext()) as modules:
            for batch, index in enumerate(batches(progress.order, batch_size)):
                if batch < progress.batch:
                    continue  # done before the checkpoint this run resumed from
                if batch_begin and (pending is None or every == 1):
                    callbacks_.call("on_train_batch_begin", batch, {"batch": batch, "size": len(index)})
                if group is not None:
                    index = group.shard(index)  # this process's part of the global batch
                xb, yb = to_device(take(xd, index), device), take(yd, index).to(device)
                outcome: StepOutcome = (trainer.train_step_tbptt(xb, yb, tbptt, modules) if tbptt
                                        else trainer.train_step(xb, yb))
                progress.clip_events += int(outcome.clipped)
                progress.skipped += outcome.skipped
                if every > 1:
                    pending = outcome = outcome if pending is None else pending.merge(outcome)
                if every == 1 or (batch + 1) % every == 0 or batch + 1 == steps or model.stop_training:
                    logs = {**trainer.results(), "grad_norm": outcome.grad_norm, "clipped": outcome.clipped,
                            "skipped_steps": progress.skipped}
                    callbacks_.call("on_train_batch_end", batch, logs)
                    pending = None
                progress.batch, progress.step = batch + 1, trainer.step
                if model.stop_training:
                    break
                if checkpoints is not None:
                    checkpoints.after_batch(progress)
        if group is not None:
            group.reduce_metrics(trainer)  # epoch results over the whole global batch
        epoch_logs = trainer.results()
        if val is not None and (epoch + 1) % validation_freq == 0:
            val_logs = _run_test(model, trainer, val[0], val[1], val_batch_size, callbacks_)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        epoch_logs.update({"clip_events": progress.clip_events, "skipped_steps": progress.skipped})
        callbacks_.call("on_epoch_end", epoch, epoch_logs)
        progress = Progress(epoch + 1, stopped=model.stop_training, epoch_logs=epoch_logs)
        if checkpoints is not None:
            checkpoints.after_epoch(progress)
        if model.stop_training:
            break
    trainer.epoch = None
    callbacks_.call("on_train_end", epoch_logs)
    model.history = history
    return history


def _run_test(model: Any, trainer: Trainer, x: Data, y: Data, batch_size: int, callbacks_: cb.CallbackList) -> dict[str, float]:
    device = model._device()
    trainer.reset_metrics()
    callbacks_.call("on_test_begin", {})
    batch_begin, batch_end = callbacks_.has("on_test_batch_begin"), callbacks_.has("on_test_batch_end")
    with _mode(model, False), trainer.targets_once(y):
        for batch, index in enumerate(batch_indices(num_samples(x), batch_size, shuffle=False)):
            if batch_begin:
                callbacks_.call("on_test_batch_begin", batch, {})
            trainer.test_step(to_device(take(x, index), device), take(y, index).to(device))
            if batch_end:
                callbacks_.call("on_test_batch_end", batch, trainer.results())
    logs = trainer.results()
    callbacks_.call("on_test_end", logs)
    return logs


def evaluate(model: Any, trainer: Trainer, x: Any, y: Any, *, batch_size: Optional[int], verbose: Union[str, int],
             callbacks: Optional[Sequence[Any]]) -> dict[str, float]:
    batch_size = check_batch_size(batch_size)
    verbose = _verbosity(verbose)
    if y is None:
        raise ValueError("Argument `y` is required: evaluate needs targets")
    xd, yd = _inputs(model, x, y)
    trainer.ensure_built(xd)
    params = {"steps": num_batches(num_samples(xd), batch_size), "verbose": verbose, "mode": "evaluate"}
    return _run_test(model, trainer, xd, yd, batch_size, _callback_list(model, callbacks, verbose, params))


def predict(model: Any, x: Any, *, batch_size: Optional[int], verbose: Union[str, int],
            callbacks: Optional[Sequence[Any]], one_batch: bool = False) -> Any:
    verbose = _verbosity(verbose)
    xd, _ = _inputs(model, x, None)
    _check_first_layer(model, xd, "x")
    n = num_samples(xd)
    batch_size = n if one_batch else check_batch_size(batch_size)
    device = model._device()
    params = {"steps": num_batches(n, batch_size), "verbose": verbose, "mode": "predict"}
    callbacks_ = _callback_list(model, callbacks, verbose, params)
    callbacks_.call("on_predict_begin", {})
    chunks = []
    batch_begin, batch_end = callbacks_.has("on_predict_batch_begin"), callbacks_.has("on_predict_batch_end")
    jit = getattr(getattr(model, "_trainer", None), "jit", None)
    jit = jit if jit is not None and is_built(model) else None  # an unbuilt model builds eagerly
    with _mode(model, False), torch.no_grad():
        for batch, index in enumerate(batch_indices(n, batch_size, shuffle=False)):
            if batch_begin:
                callbacks_.call("on_predict_batch_begin", batch, {})
            xb = to_device(take(xd, index), device)
            out = jit.predict(xb) if jit is not None and jit.usable() else None
            if out is None:
                out = model(xb)
                if jit is not None:
                    jit.settle()
            chunks.append(out)
            if batch_end:
                callbacks_.call("on_predict_batch_end", batch, {"outputs": out})
    callbacks_.call("on_predict_end", {})
    return to_numpy(concat(chunks))


def train_on_batch(model: Any, trainer: Trainer, x: Any, y: Any, reset_metrics: bool) -> dict[str, Any]:
    xd, yd = _inputs(model, x, y)
    trainer.ensure_built(xd)
    if reset_metrics:
        trainer.reset_metrics()
    device = model._device()
    with _mode(model, True):
        outcome = trainer.train_step(to_device(xd, device), yd.to(device))
    return {**trainer.results(), "grad_norm": outcome.grad_norm, "clipped": outcome.clipped,
            "skipped_steps": outcome.skipped}


def test_on_batch(model: Any, trainer: Trainer, x: Any, y: Any, reset_metrics: bool) -> dict[str, Any]:
    xd, yd = _inputs(model, x, y)
    trainer.ensure_built(xd)
    if reset_metrics:
        trainer.reset_metrics()
    with _mode(model, False):
        trainer.test_step(to_device(xd, model._device()), yd.to(model._device()))
    return trainer.results()


def format_results(logs: dict[str, Any], trainer: Trainer, return_dict: bool) -> Any:
    """Keras's return value: a dict, the loss alone, or [loss, *metrics]."""
    if return_dict:
        return logs
    names = trainer.metrics_names
    values = [logs.get(k, math.nan) for k in names]
    return values[0] if len(values) == 1 else values
