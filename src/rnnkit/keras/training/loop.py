"""The epoch and batch loops behind ``Model.fit``, ``evaluate`` and ``predict``."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from .. import callbacks as cb
from .data import (Data, batches, check_batch_size, concat, flatten, is_nested, num_samples, split_validation, take,
                   to_device, to_numpy)
from .data_adapters import ArrayAdapter, Batch, DataAdapter, EpochIterator, get_adapter
from ..layers.base import is_built
from .tbptt import carrying_state, check_tbptt
from .trainer import StepOutcome, Trainer
from .weighting import ClassWeight, check_against_output, num_classes, probe_output


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


def _check_first_layer(model: Any, x: Data, x_name: str) -> None:
    """Catch a wrong rank/feature size against the declared input shape before any work is done."""
    declared = getattr(model, "_input_shape", None)
    if declared is None or is_nested(x):
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


def _steps(value: Any, name: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected a positive integer or None, "
                         f"got {value!r}")
    return int(value)


def _validation_adapter(model: Any, validation_data: Any, batch_size: int) -> DataAdapter:
    """``validation_data``: (x_val, y_val), (x_val, y_val, sample_weight), or a generator/dataset/loader."""
    if isinstance(validation_data, (tuple, list)):
        if len(validation_data) not in (2, 3):
            raise ValueError("Argument `validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
                             "val_sample_weight), or a generator, PyDataset or DataLoader; got a "
                             f"{type(validation_data).__name__} of {len(validation_data)} items")
        vx, vy, vsw = (tuple(validation_data) + (None,))[:3]
        return get_adapter(model, vx, vy, vsw, batch_size=batch_size, shuffle=False, need_y=True,
                           argument="validation_data[0]", y_argument="validation_data[1]",
                           sample_weight_argument="validation_data[2]")
    return get_adapter(model, validation_data, batch_size=batch_size, shuffle=False, need_y=True,
                       argument="validation_data")


def _check_weights(model: Any, trainer: Trainer, adapter: DataAdapter, class_weight: Any,
                   argument: str = "sample_weight") -> None:
    """Weights against the model's output, on a couple of samples, before any training."""
    sw = getattr(adapter, "sample_weight", None)
    if class_weight is None and sw is None:
        return
    first = adapter.first()
    if class_weight is not None and first.sample_weight is not None:
        raise ValueError(f"Argument `class_weight` cannot be used with data that yields (x, y, sample_weight) (a "
                         f"{adapter.kind}): pass one of them, as in Keras")
    y_pred = probe_output(model, take(first.x, slice(0, 2)))
    if class_weight is not None:
        trainer.class_weight = ClassWeight(class_weight, num_classes(y_pred))
    if sw is not None:
        check_against_output(sw, y_pred, f"Argument `{argument}`")


def fit(model: Any, trainer: Trainer, x: Any, y: Any, *, batch_size: Optional[int], epochs: int, verbose: Union[str, int],
        callbacks: Optional[Sequence[Any]], validation_split: float, validation_data: Optional[Any], shuffle: bool,
        initial_epoch: int, validation_batch_size: Optional[int], validation_freq: int, tbptt: Optional[int],
        max_bad_steps: int, checkpoint_dir: Any = None, checkpoint_every: Optional[int] = None, resume: bool = False,
        distributed: bool = False, class_weight: Any = None, sample_weight: Any = None,
        steps_per_epoch: Optional[int] = None, validation_steps: Optional[int] = None) -> cb.History:
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
    steps_per_epoch = _steps(steps_per_epoch, "steps_per_epoch")
    validation_steps = _steps(validation_steps, "validation_steps")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
        raise ValueError(f"Received an invalid value for argument `validation_split`, expected a float in [0, 1), got {validation_split!r}")
    if class_weight is not None and sample_weight is not None:
        raise ValueError("Arguments `class_weight` and `sample_weight` cannot be used together: pass one of them "
                         "(fold the class weights into sample_weight)")
    from . import checkpoint

    checkpoints = checkpoint.Checkpointer.from_args(checkpoint_dir, checkpoint_every, resume)
    from . import distributed as dist

    distributed = dist.requested(distributed)
    adapter = get_adapter(model, x, y, sample_weight, batch_size=batch_size, shuffle=bool(shuffle), need_y=True)
    val: Optional[DataAdapter] = None
    if validation_data is not None:
        val = _validation_adapter(model, validation_data, val_batch_size)
    elif validation_split:
        if not isinstance(adapter, ArrayAdapter):
            raise ValueError(f"Argument `validation_split` is only supported for arrays (numpy or torch), not for a "
                             f"{adapter.kind}; pass `validation_data` instead")
        adapter, val = split_validation_adapters(adapter, float(validation_split), val_batch_size)
    plain = isinstance(adapter, ArrayAdapter) and steps_per_epoch is None
    for name, used in (("checkpoint_dir", checkpoints is not None), ("distributed", distributed)):
        if used and not plain:
            raise ValueError(f"Argument `{name}` needs arrays for `x` and `y` and no `steps_per_epoch` "
                             f"(it keeps its place in the data by sample order); got a {adapter.kind}")

    first = adapter.first()
    trainer.ensure_built(first.x)
    _check_first_layer(model, first.x, "x")
    if val is not None:
        _check_first_layer(model, val.first().x, "validation_data")
    trainer.max_bad_steps = max_bad_steps
    trainer.sequence_target = None
    group = None
    try:
        _check_weights(model, trainer, adapter, class_weight)
        if val is not None:
            _check_weights(model, trainer, val, None, "validation_data[2]")
        if distributed:
            group = dist.attach(model, trainer, batch_size)
            verbose = verbose if group.rank == 0 else 0  # one progress bar, not one per process
        return _fit_epochs(model, trainer, adapter, val, epochs=epochs, verbose=verbose,
                           callbacks=callbacks, shuffle=shuffle, initial_epoch=initial_epoch,
                           steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                           validation_freq=validation_freq, tbptt=tbptt, checkpoints=checkpoints, group=group)
    finally:
        trainer.class_weight = None  # for this fit only, as in Keras
        if group is not None:
            group.detach()


def split_validation_adapters(adapter: ArrayAdapter, fraction: float, val_batch_size: int) -> tuple[ArrayAdapter, ArrayAdapter]:
    """Keras's validation_split: the last ``fraction`` of the samples (and their weights), before shuffling."""
    xd, yd, xv, yv = split_validation(adapter.x, adapter.y, fraction)
    sw, swv = adapter.sample_weight, None
    if sw is not None:
        cut = num_samples(xd)
        sw, swv = sw[:cut], sw[cut:]
    return (ArrayAdapter(xd, yd, sw, adapter.batch_size, adapter.shuffle),
            ArrayAdapter(xv, yv, swv, val_batch_size, False))


def _all_targets(adapter: Any) -> Any:
    """All the targets when they are arrays in memory (checked once per fit/evaluate), else None:
    streamed batches are checked one by one."""
    return adapter.y if isinstance(adapter, ArrayAdapter) else None


def _on_device(adapter: DataAdapter, device: torch.device) -> bool:
    """Whether every batch of ``adapter`` is on ``device`` already: arrays that are (numpy arrays
    become CPU tensors), checked once, so that batches skip ``to_device``. Streamed data: False."""
    if not isinstance(adapter, ArrayAdapter):
        return False
    parts = [adapter.x, adapter.y, adapter.sample_weight]
    return all(t.device == device for part in parts if part is not None for _, t in flatten(part))


def _epoch_batches(adapter: DataAdapter, epochs_it: EpochIterator, progress: Any, group: Any) -> Iterator[tuple[int, Batch]]:
    """This epoch's batches: from the drawn sample order for plain arrays (so checkpoints can
    resume inside the epoch and processes can shard it), else from the epoch iterator."""
    if progress.order is None:
        yield from epochs_it
        return
    assert isinstance(adapter, ArrayAdapter)
    for batch, index in enumerate(batches(progress.order, adapter.batch_size)):
        if batch < progress.batch:
            continue  # done before the checkpoint this run resumed from
        if group is not None:
            index = group.shard(index)  # this process's part of the global batch
        yield batch, adapter.take(index)


def _fit_epochs(model: Any, trainer: Trainer, adapter: DataAdapter, val: Optional[DataAdapter], *,
                epochs: int, verbose: int, callbacks: Optional[Sequence[Any]], shuffle: bool,
                initial_epoch: int, steps_per_epoch: Optional[int], validation_steps: Optional[int],
                validation_freq: int, tbptt: Optional[int], checkpoints: Any, group: Any) -> cb.History:
    from .checkpoint import Progress

    device = model._device()
    plain = isinstance(adapter, ArrayAdapter) and steps_per_epoch is None
    epochs_it = EpochIterator(adapter, steps_per_epoch)
    val_it = None if val is None else EpochIterator(val, validation_steps, "validation_steps")
    history = cb.History()
    params = {"epochs": epochs, "steps": epochs_it.num_steps, "verbose": verbose,
              "batch_size": getattr(adapter, "batch_size", None),
              "samples": adapter.samples if isinstance(adapter, ArrayAdapter) else None, "mode": "fit"}
    callbacks_ = _callback_list(model, callbacks, verbose, params, history)
    batch_begin = callbacks_.has("on_train_batch_begin")
    # History alone reads a batch's logs (its grad_norm) in most fits: then no logs dict per step.
    history_only = callbacks_.implementers("on_train_batch_end") == [history.on_train_batch_end]
    moved = not _on_device(adapter, device)
    # steps_per_execution=N: the batch hooks run once per N batches, logs over those N steps.
    every, pending = trainer.steps_per_execution, None
    model.stop_training = False
    callbacks_.call("on_train_begin", {})
    progress = Progress(initial_epoch)
    if checkpoints is not None:
        # Resuming puts back weights, optimizer, RNGs, history and the place in the epoch.
        assert isinstance(adapter, ArrayAdapter)
        progress = checkpoints.start(model, trainer, callbacks_, history, adapter.x, adapter.y,
                                     batch_size=adapter.batch_size, shuffle=shuffle, tbptt=tbptt, group=group,
                                     progress=progress, sample_weight=adapter.sample_weight)
    epoch_logs: dict[str, Any] = dict(progress.epoch_logs)
    for epoch in range(progress.epoch, progress.epoch if progress.stopped else epochs):
        if epochs_it.exhausted:
            epochs_it.warn_exhausted()
            break
        if progress.order is None:  # a fresh epoch (not one resumed from a checkpoint taken inside it)
            trainer.reset_metrics()
            trainer.epoch, trainer.step = epoch + 1, 0
            callbacks_.call("on_epoch_begin", epoch, {})
            order = adapter.order() if plain else None  # type: ignore[union-attr]
            if order is not None and group is not None:
                order = group.same_order(order)
            progress = Progress(epoch, order=order)
        trainer.epoch, trainer.step = epoch + 1, progress.step
        with _mode(model, True), trainer.targets_once(_all_targets(adapter)), \
                (carrying_state(model) if tbptt else contextlib.nullcontext()) as modules:
            for batch, data in _epoch_batches(adapter, epochs_it, progress, group):
                if batch_begin and (pending is None or every == 1):
                    callbacks_.call("on_train_batch_begin", batch, {"batch": batch, "size": num_samples(data.x)})
                xb, yb, sw = data
                if moved:
                    xb, yb = to_device(xb, device), to_device(yb, device)
                    sw = None if sw is None else sw.to(device)
                outcome: StepOutcome = (trainer.train_step_tbptt(xb, yb, tbptt, modules, sw) if tbptt
                                        else trainer.train_step(xb, yb, sw))
                progress.clip_events += int(outcome.clipped)
                progress.skipped += outcome.skipped
                if every > 1:
                    pending = outcome = outcome if pending is None else pending.merge(outcome)
                if every == 1 or (batch + 1) % every == 0 or batch + 1 == epochs_it.num_steps or model.stop_training:
                    if history_only:
                        history.on_train_batch_end(batch, {"grad_norm": outcome.grad_norm})
                    else:
                        logs = {**trainer.results(), "grad_norm": outcome.grad_norm, "clipped": outcome.clipped,
                                "skipped_steps": progress.skipped}
                        callbacks_.call("on_train_batch_end", batch, logs)
                    pending = None
                progress.batch, progress.step = batch + 1, trainer.step
                if model.stop_training:
                    break
                if checkpoints is not None:
                    checkpoints.after_batch(progress)
        params["steps"] = epochs_it.num_steps  # learnt after the first pass when the data could not say
        if group is not None:
            group.reduce_metrics(trainer)  # epoch results over the whole global batch
        epoch_logs = trainer.results()
        if val_it is not None and (epoch + 1) % validation_freq == 0:
            if val_it.exhausted:
                val_it.warn_exhausted()
            else:
                val_logs = _run_test(model, trainer, val_it, callbacks_)
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


def _run_test(model: Any, trainer: Trainer, batches_: EpochIterator, callbacks_: cb.CallbackList) -> dict[str, float]:
    device = model._device()
    trainer.reset_metrics()
    callbacks_.call("on_test_begin", {})
    batch_begin, batch_end = callbacks_.has("on_test_batch_begin"), callbacks_.has("on_test_batch_end")
    moved = not _on_device(batches_.adapter, device)
    with _mode(model, False), trainer.targets_once(_all_targets(batches_.adapter)):
        for batch, data in batches_:
            if batch_begin:
                callbacks_.call("on_test_batch_begin", batch, {})
            xb, yb, sw = data
            if moved:
                xb, yb = to_device(xb, device), to_device(yb, device)
                sw = None if sw is None else sw.to(device)
            trainer.test_step(xb, yb, sw)
            if batch_end:
                callbacks_.call("on_test_batch_end", batch, trainer.results())
    logs = trainer.results()
    callbacks_.call("on_test_end", logs)
    return logs


def evaluate(model: Any, trainer: Trainer, x: Any, y: Any, *, batch_size: Optional[int], verbose: Union[str, int],
             callbacks: Optional[Sequence[Any]], sample_weight: Any = None, steps: Optional[int] = None) -> dict[str, float]:
    batch_size = check_batch_size(batch_size)
    verbose = _verbosity(verbose)
    steps = _steps(steps, "steps")
    adapter = get_adapter(model, x, y, sample_weight, batch_size=batch_size, shuffle=False, need_y=True)
    first = adapter.first()
    trainer.ensure_built(first.x)
    _check_first_layer(model, first.x, "x")
    _check_weights(model, trainer, adapter, None)
    it = EpochIterator(adapter, steps, "steps")
    params = {"steps": it.num_steps, "verbose": verbose, "mode": "evaluate"}
    return _run_test(model, trainer, it, _callback_list(model, callbacks, verbose, params))


def predict(model: Any, x: Any, *, batch_size: Optional[int], verbose: Union[str, int],
            callbacks: Optional[Sequence[Any]], one_batch: bool = False, steps: Optional[int] = None) -> Any:
    verbose = _verbosity(verbose)
    steps = _steps(steps, "steps")
    batch_size = check_batch_size(batch_size)
    adapter = get_adapter(model, x, batch_size=batch_size, shuffle=False, need_y=False)
    if one_batch and isinstance(adapter, ArrayAdapter):
        adapter = ArrayAdapter(adapter.x, None, None, adapter.samples, False)
    _check_first_layer(model, adapter.first().x, "x")
    device = model._device()
    it = EpochIterator(adapter, steps, "steps")
    params = {"steps": it.num_steps, "verbose": verbose, "mode": "predict"}
    callbacks_ = _callback_list(model, callbacks, verbose, params)
    callbacks_.call("on_predict_begin", {})
    chunks = []
    batch_begin, batch_end = callbacks_.has("on_predict_batch_begin"), callbacks_.has("on_predict_batch_end")
    jit = getattr(getattr(model, "_trainer", None), "jit", None)
    jit = jit if jit is not None and is_built(model) else None  # an unbuilt model builds eagerly
    moved = not _on_device(adapter, device)
    with _mode(model, False), torch.no_grad():
        for batch, data in it:
            if batch_begin:
                callbacks_.call("on_predict_batch_begin", batch, {})
            xb = to_device(data.x, device) if moved else data.x
            out = jit.predict(xb) if jit is not None and jit.usable() else None
            if out is None:
                out = model(xb)
                if jit is not None:
                    jit.settle()
            chunks.append(out)
            if batch_end:
                callbacks_.call("on_predict_batch_end", batch, {"outputs": out})
    callbacks_.call("on_predict_end", {})
    if not chunks:
        raise ValueError("predict got no batches: the input yielded nothing")
    return to_numpy(concat(chunks))


def _one_batch(model: Any, x: Any, y: Any, sample_weight: Any) -> ArrayAdapter:
    adapter = get_adapter(model, x, y, sample_weight, batch_size=1, shuffle=False, need_y=True)
    if not isinstance(adapter, ArrayAdapter):
        raise TypeError(f"Argument `x` of train_on_batch/test_on_batch must be arrays, got a {adapter.kind}")
    return adapter


def train_on_batch(model: Any, trainer: Trainer, x: Any, y: Any, reset_metrics: bool, sample_weight: Any = None,
                   class_weight: Any = None) -> dict[str, Any]:
    if class_weight is not None and sample_weight is not None:
        raise ValueError("Arguments `class_weight` and `sample_weight` cannot be used together: pass one of them")
    adapter = _one_batch(model, x, y, sample_weight)
    trainer.ensure_built(adapter.x)
    _check_first_layer(model, adapter.x, "x")
    if reset_metrics:
        trainer.reset_metrics()
    device = model._device()
    sw = None if adapter.sample_weight is None else adapter.sample_weight.to(device)
    try:
        _check_weights(model, trainer, adapter, class_weight)
        with _mode(model, True):
            outcome = trainer.train_step(to_device(adapter.x, device), to_device(adapter.y, device), sw)
    finally:
        trainer.class_weight = None
    return {**trainer.results(), "grad_norm": outcome.grad_norm, "clipped": outcome.clipped,
            "skipped_steps": outcome.skipped}


def test_on_batch(model: Any, trainer: Trainer, x: Any, y: Any, reset_metrics: bool,
                  sample_weight: Any = None) -> dict[str, Any]:
    adapter = _one_batch(model, x, y, sample_weight)
    trainer.ensure_built(adapter.x)
    _check_first_layer(model, adapter.x, "x")
    if reset_metrics:
        trainer.reset_metrics()
    device = model._device()
    sw = None if adapter.sample_weight is None else adapter.sample_weight.to(device)
    with _mode(model, False):
        trainer.test_step(to_device(adapter.x, device), to_device(adapter.y, device), sw)
    return trainer.results()


def format_results(logs: dict[str, Any], trainer: Trainer, return_dict: bool) -> Any:
    """Keras's return value: a dict, the loss alone, or [loss, *metrics]."""
    if return_dict:
        return logs
    names = trainer.metrics_names
    values = [logs.get(k, math.nan) for k in names]
    return values[0] if len(values) == 1 else values
