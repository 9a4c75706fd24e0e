"""Crash-safe training checkpoints: ``fit(checkpoint_dir=..., checkpoint_every=N, resume=True)``.

``fit`` keeps one file, ``<checkpoint_dir>/checkpoint.safetensors``, and replaces it
atomically (temp file, fsync, ``os.replace``, fsync of the directory) at every epoch end
and, with ``checkpoint_every=N``, after every N-th batch. A SIGKILL at any moment leaves
either the previous checkpoint or the new one, never a torn file.

Layout (a standard safetensors file; nothing is pickled):
    tensors    model/<state_dict key>          the weights
               optimizer/<param index>/<name>  the optimizer's state tensors (exp_avg, step, ...)
               rng/torch/<rank>                torch's CPU generator state, one per process
               order                           this epoch's sample order (checkpoints inside an epoch)
               states/<module>/<i>             carried states of ``stateful`` layers
    metadata   format "rnnkit.checkpoint", version "1", sha256 of the tensor bytes, and
               state: JSON with the position (epoch, batch, optimizer steps), the optimizer's
               param_groups and scalar state, the numpy and Python RNG states, the loss and
               metric accumulators of the epoch so far, the History, the guard's counters,
               and a fingerprint of the run (data digest, batch_size, shuffle, tbptt, processes).

``fit(..., resume=True)`` loads it (if present) and continues at the next batch with the
same data order and RNG states, so in deterministic CPU mode
(``torch.use_deterministic_algorithms(True)``, fixed threads) the final weights equal those
of an uninterrupted run bit for bit. Resuming with other data or other batch settings is
refused. Callbacks that define ``get_state() -> dict`` (JSON) and ``set_state(dict)`` have
their state stored too (``EarlyStopping``, ``ReduceLROnPlateau``, ``ModelCheckpoint``'s best
value); others start afresh when a run resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from .. import saving
from .data import Data, flatten, num_samples, take
from .tbptt import recurrent_modules, reset_states

FILENAME = "checkpoint.safetensors"
STATE_VERSION = 1
# torch optimizers' per-parameter state: these are scalars, the rest have the parameter's shape.
_SCALAR_STATES = frozenset({"step", "mu_product", "eta", "mu"})


@dataclass
class Progress:
    """Where ``fit`` is: epoch (0-based), batches of it done, and what the epoch has counted."""

    epoch: int
    batch: int = 0
    step: int = 0                      # the trainer's optimizer steps in this epoch
    order: Optional[Tensor] = None     # this epoch's sample order once drawn
    clip_events: int = 0
    skipped: int = 0
    stopped: bool = False              # training ended here (stop_training)
    epoch_logs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkpoint:
    """A checkpoint file, read and checked: its tensors and its JSON state."""

    path: str
    tensors: dict[str, Tensor]
    state: dict[str, Any]

    def part(self, prefix: str) -> dict[str, Tensor]:
        """Tensors under ``prefix/``, with the prefix removed."""
        n = len(prefix) + 1
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix + "/")}

    @property
    def progress(self) -> Progress:
        p = self.state["progress"]
        return Progress(p["epoch"], p["batch"], p["step"], self.tensors.get("order"), p["clip_events"], p["skipped"],
                        p["stopped"], dict(self.state["epoch_logs"]))


# -- reading ------------------------------------------------------------------------------

def load_checkpoint(path: Any) -> Checkpoint:
    """Read and check a checkpoint file; any damage or a file that is not one raises ValueError."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"Argument `path` must be a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Checkpoint {str(path)!r} does not exist or is not a file")
    tensors, meta = saving._read(path, saving.CHECKPOINT_FORMAT)
    bad = f"{str(path)!r} is corrupted"
    try:
        state = json.loads(meta.get("state", ""), object_hook=_decode)
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ValueError(f"{bad}: its training state is not valid JSON ({e})") from None
    _check_state(state, tensors, bad)
    return Checkpoint(str(path), tensors, state)


def _expect(value: Any, kind: Any, what: str, bad: str) -> Any:
    ok = isinstance(value, kind) and not (kind in (int, (int, float)) and isinstance(value, bool))
    if not ok:
        raise ValueError(f"{bad}: {what} should be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _check_state(state: Any, tensors: dict[str, Tensor], bad: str) -> None:
    """Structure and types of every field ``_restore`` uses, so nothing fails later half-way."""
    _expect(state, dict, "the state", bad)
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{bad}: training state version {state.get('version')!r}, this rnnkit reads {STATE_VERSION}")
    p = _expect(state.get("progress"), dict, "progress", bad)
    for key in ("epoch", "batch", "step", "clip_events", "skipped", "batches_done"):
        if _expect(p.get(key), int, f"progress.{key}", bad) < 0:
            raise ValueError(f"{bad}: progress.{key} is negative")
    _expect(p.get("stopped"), bool, "progress.stopped", bad)
    _expect(state.get("epoch_logs"), dict, "epoch_logs", bad)
    _expect(state.get("fingerprint"), dict, "fingerprint", bad)
    order = tensors.get("order")
    if order is not None and (order.dtype != torch.int64 or order.dim() != 1):
        raise ValueError(f"{bad}: the data order should be a 1-D int64 tensor")
    t = _expect(state.get("trainer"), dict, "trainer", bad)
    _expect(t.get("consecutive_bad"), int, "trainer.consecutive_bad", bad)
    if t.get("sequence_target") not in (None, True, False):
        raise ValueError(f"{bad}: trainer.sequence_target should be true, false or null")
    _check_numbers(_expect(t.get("loss_tracker"), dict, "trainer.loss_tracker", bad), "trainer.loss_tracker", bad)
    if t.get("metrics") is not None:
        for i, m in enumerate(_expect(t["metrics"], list, "trainer.metrics", bad)):
            _check_numbers(_expect(m, dict, f"trainer.metrics[{i}]", bad), f"trainer.metrics[{i}]", bad)
    h = _expect(state.get("history"), dict, "history", bad)
    _expect(h.get("history"), dict, "history.history", bad)
    for key in ("epoch", "clip_events", "skipped_steps", "grad_norms"):
        _expect(h.get(key), list, f"history.{key}", bad)
    o = _expect(state.get("optimizer"), dict, "optimizer", bad)
    groups = _expect(o.get("param_groups"), list, "optimizer.param_groups", bad)
    for i, g in enumerate(groups):
        params = _expect(g, dict, f"optimizer.param_groups[{i}]", bad).get("params")
        if not isinstance(params, list) or not all(isinstance(k, int) and not isinstance(k, bool) for k in params):
            raise ValueError(f"{bad}: optimizer.param_groups[{i}].params should be a list of integers")
    for idx, values in _expect(o.get("scalars"), dict, "optimizer.scalars", bad).items():
        if not idx.isdigit():
            raise ValueError(f"{bad}: optimizer.scalars has a key {idx!r} that is not a parameter index")
        _check_numbers(_expect(values, dict, f"optimizer.scalars[{idx}]", bad), f"optimizer.scalars[{idx}]", bad)
    for key in tensors:
        if key.startswith("optimizer/"):
            parts = key.split("/")
            if len(parts) != 3 or not parts[1].isdigit():
                raise ValueError(f"{bad}: optimizer tensor {key!r} is not named optimizer/<index>/<name>")
    rngs = _expect(state.get("rng"), list, "rng", bad)
    size = torch.get_rng_state().numel()
    for rank, r in enumerate(rngs):
        _check_rng(_expect(r, dict, f"rng[{rank}]", bad), f"rng[{rank}]", bad)
        t_state = tensors.get(f"rng/torch/{rank}")
        if t_state is None or t_state.dtype != torch.uint8 or t_state.numel() != size:
            raise ValueError(f"{bad}: rng/torch/{rank} should be {size} bytes of torch generator state")
    if not rngs:
        raise ValueError(f"{bad}: it holds no RNG state")
    for name, count in _expect(state.get("states"), dict, "states", bad).items():
        for i in range(_expect(count, int, f"states[{name!r}]", bad)):
            if f"states/{name}/{i}" not in tensors:
                raise ValueError(f"{bad}: the carried state states/{name}/{i} is missing")
    for i, c in enumerate(_expect(state.get("callbacks"), list, "callbacks", bad)):
        if c is not None:
            _expect(c, dict, f"callbacks[{i}]", bad)


def _check_numbers(d: dict, what: str, bad: str) -> None:
    for k, v in d.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"{bad}: {what}[{k!r}] should be a number, got {type(v).__name__}")


def _check_rng(r: dict, what: str, bad: str) -> None:
    npy, py = r.get("numpy"), r.get("python")
    ok_np = (isinstance(npy, list) and len(npy) == 5 and npy[0] == "MT19937" and isinstance(npy[1], list)
             and len(npy[1]) == 624 and all(isinstance(k, int) and 0 <= k < 2**32 for k in npy[1])
             and isinstance(npy[2], int) and 0 <= npy[2] <= 624 and isinstance(npy[3], int)
             and isinstance(npy[4], (int, float)))
    ok_py = (isinstance(py, list) and len(py) == 3 and isinstance(py[1], list) and len(py[1]) == 625
             and all(isinstance(k, int) and 0 <= k < 2**32 for k in py[1]) and 0 <= py[1][-1] <= 624
             and (py[2] is None or isinstance(py[2], float)) and py[0] == 3)
    if not (ok_np and ok_py):
        raise ValueError(f"{bad}: {what} is not a numpy and Python RNG state")


# -- JSON helpers -------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    """JSON-ready copy: tuples tagged (optimizer betas must come back as tuples), numpy scalars as numbers."""
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    if value is None or isinstance(value, (int, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a checkpoint (JSON only)")


def _decode(d: dict) -> Any:
    if set(d) == {"__tuple__"} and isinstance(d["__tuple__"], list):
        return tuple(d["__tuple__"])
    return d


# -- the part of fit that writes and restores ------------------------------------------------

class Checkpointer:
    """Writes checkpoints during ``fit`` and restores one when resuming."""

    def __init__(self, directory: Path, every: Optional[int], resume: bool) -> None:
        self.directory, self.every, self.resume = directory, every, resume
        self.path = directory / FILENAME
        self.batches_done = 0  # over the whole run, for `every`

    @classmethod
    def from_args(cls, checkpoint_dir: Any, checkpoint_every: Any, resume: Any) -> Optional["Checkpointer"]:
        if not isinstance(resume, (bool, np.bool_)):
            raise ValueError(f"Received an invalid value for argument `resume`, expected True or False, got {resume!r}")
        if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int)
                                             or checkpoint_every < 1):
            raise ValueError("Received an invalid value for argument `checkpoint_every`, expected a positive integer "
                             f"(batches between checkpoints) or None, got {checkpoint_every!r}")
        if checkpoint_dir is None:
            if resume or checkpoint_every is not None:
                arg = "resume=True" if resume else "checkpoint_every"
                raise ValueError(f"Argument `{arg}` needs `checkpoint_dir`, the directory that holds the checkpoint")
            return None
        if not isinstance(checkpoint_dir, (str, os.PathLike)) or not str(checkpoint_dir):
            raise ValueError(f"Received an invalid value for argument `checkpoint_dir`, expected a directory path, "
                             f"got {checkpoint_dir!r}")
        directory = Path(checkpoint_dir)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"Argument `checkpoint_dir` must be a directory, got {str(directory)!r}, which is a file")
        return cls(directory, checkpoint_every, bool(resume))

    # -- start ------------------------------------------------------------------------------

    def start(self, model: Any, trainer: Any, callbacks_: Any, history: Any, xd: Data, yd: Data, *, batch_size: int,
              shuffle: bool, tbptt: Optional[int], group: Any, progress: Progress,
              sample_weight: Optional[Tensor] = None) -> Progress:
        """Bind to this fit; when resuming from an existing checkpoint, restore it and return its position."""
        self.model, self.trainer, self.callbacks, self.history, self.group = model, trainer, callbacks_, history, group
        self.xd, self.yd = xd, yd
        self.writer = group is None or group.rank == 0
        self.fingerprint = {"samples": num_samples(xd), "batch_size": batch_size, "shuffle": bool(shuffle),
                            "tbptt": tbptt, "processes": 1 if group is None else group.world,
                            "data_sha256": _data_digest(xd, yd)}
        if sample_weight is not None:  # part of the data (absent from older checkpoints' fingerprints)
            self.fingerprint["data_sha256"] = _data_digest(xd, yd, sample_weight)
        if self.writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in self.directory.glob(f".{FILENAME}.*.tmp"):  # left by a kill during a write
                stale.unlink(missing_ok=True)
        if group is not None:
            group.barrier()
        if not (self.resume and self.path.exists()):
            return progress
        return self._restore(load_checkpoint(self.path))

    def _restore(self, ckpt: Checkpoint) -> Progress:
        state, where = ckpt.state, ckpt.path
        for key, value in self.fingerprint.items():
            saved = state["fingerprint"].get(key)
            if saved != value:
                what = "the training data (x, y) differ from" if key == "data_sha256" else f"{key}={value!r} differs from"
                raise ValueError(f"Cannot resume from {where!r}: {what} the run that wrote it"
                                 f"{'' if key == 'data_sha256' else f' ({key}={saved!r})'}. Pass the same data and "
                                 "settings, or use resume=False or another checkpoint_dir to start over")
        model, trainer = self.model, self.trainer
        saving._load_state(model, ckpt.part("model"), where)
        self._restore_optimizer(ckpt)
        progress = ckpt.progress
        t = state["trainer"]
        trainer.consecutive_bad, trainer.sequence_target = t["consecutive_bad"], t["sequence_target"]
        if progress.order is not None:
            if len(progress.order) != num_samples(self.xd) or not torch.equal(
                    progress.order.sort().values, torch.arange(num_samples(self.xd))):
                raise ValueError(f"{where!r} is corrupted: its data order is not a permutation of the samples")
            _set_numbers(trainer.loss_tracker, t["loss_tracker"])
            if t["metrics"] is not None:
                self._resolve_metrics()
                metrics = trainer.metrics.metrics or []
                if len(metrics) != len(t["metrics"]):
                    raise ValueError(f"Cannot resume from {where!r}: it holds {len(t['metrics'])} metrics, this model "
                                     f"is compiled with {len(metrics)}")
                for m, values in zip(metrics, t["metrics"]):
                    _set_numbers(m, values)
        h = state["history"]
        self.history.history = {k: list(v) for k, v in h["history"].items()}
        self.history.epoch, self.history.clip_events = list(h["epoch"]), list(h["clip_events"])
        self.history.skipped_steps, self.history.grad_norms = list(h["skipped_steps"]), [list(g) for g in h["grad_norms"]]
        for cb, saved in zip(self.callbacks.callbacks, state["callbacks"]):
            if saved is not None and callable(getattr(cb, "set_state", None)):
                cb.set_state(saved)
        self._restore_states(ckpt)
        model.stop_training = progress.stopped
        self.batches_done = state["progress"]["batches_done"]
        rank = 0 if self.group is None else self.group.rank
        if rank >= len(state["rng"]):
            raise ValueError(f"Cannot resume from {where!r}: it holds RNG states for {len(state['rng'])} processes")
        _set_rng(ckpt.tensors[f"rng/torch/{rank}"], state["rng"][rank], where)  # last: nothing may draw after it
        return progress

    def _restore_optimizer(self, ckpt: Checkpoint) -> None:
        opt = self.trainer.optimizer.torch_optimizer
        saved = ckpt.state["optimizer"]
        params = [p for g in opt.param_groups for p in g["params"]]
        where = ckpt.path
        groups = saved["param_groups"]
        if len(groups) != len(opt.param_groups) or [len(g["params"]) for g in groups] != [
                len(g["params"]) for g in opt.param_groups]:
            raise ValueError(f"Cannot resume from {where!r}: its optimizer state is for other parameters "
                             f"({[len(g['params']) for g in groups]} per group, this model has "
                             f"{[len(g['params']) for g in opt.param_groups]})")
        state: dict[int, dict[str, Any]] = {}
        for key, t in ckpt.part("optimizer").items():
            idx, name = key.split("/")
            i = int(idx)
            expected = () if name in _SCALAR_STATES else tuple(params[i].shape) if i < len(params) else None
            if tuple(t.shape) != expected:
                raise ValueError(f"{where!r} does not fit this model: optimizer state {key!r} has shape "
                                 f"{tuple(t.shape)}, expected {expected} (parameter {i} of {len(params)})")
            if not t.is_floating_point():
                raise ValueError(f"{where!r} is corrupted: optimizer state {key!r} has dtype {t.dtype}")
            state.setdefault(i, {})[name] = t
        for idx, values in saved["scalars"].items():
            if int(idx) >= len(params):
                raise ValueError(f"{where!r} does not fit this model: optimizer state for parameter {idx}")
            state.setdefault(int(idx), {}).update(values)
        expected = _state_names(opt, params)
        for i, values in state.items():
            if expected is not None and set(values) != expected:
                raise ValueError(f"{where!r} is corrupted: the optimizer state of parameter {i} has "
                                 f"{sorted(values)}, {type(opt).__name__} keeps {sorted(expected)}")
        try:
            opt.load_state_dict({"state": state, "param_groups": groups})
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"Cannot resume from {where!r}: the optimizer refused its state ({e})") from None

    def _resolve_metrics(self) -> None:
        """Metrics are chosen from the first batch's shapes; a resumed run needs them before that."""
        from .. import metrics as metrics_mod

        trainer = self.trainer
        if trainer.metrics.metrics is not None:
            return
        model, few = self.model, slice(0, min(2, num_samples(self.xd)))
        was = model.training
        model.eval()
        with torch.no_grad():
            y_pred, _ = model._call_with_mask(take(self.xd, few))
        model.train(was)
        y = take(self.yd, few)
        trainer.metrics.metrics = [metrics_mod.get(m, y, y_pred, trainer.loss) for m in trainer.metrics.identifiers]

    def _stateful(self) -> dict[str, Any]:
        return {name: m for name, m in self.model.named_modules()
                if m in recurrent_modules(self.model) and getattr(m, "stateful", False)}

    def _restore_states(self, ckpt: Checkpoint) -> None:
        modules = self._stateful()
        reset_states(list(modules.values()), include_stateful=True)
        for name, count in ckpt.state["states"].items():
            if name not in modules:
                raise ValueError(f"Cannot resume from {ckpt.path!r}: it holds carried states for layer {name!r}, "
                                 "which is not a stateful layer of this model")
            try:
                modules[name].reset_states([ckpt.tensors[f"states/{name}/{i}"] for i in range(count)])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{ckpt.path!r} does not fit this model: carried state of {name!r}: {e}") from None

    # -- writing ----------------------------------------------------------------------------

    def after_batch(self, progress: Progress) -> None:
        self.batches_done += 1
        if self.every is not None and self.batches_done % self.every == 0:
            self.save(progress)

    def after_epoch(self, progress: Progress) -> None:
        self.save(progress)

    def save(self, progress: Progress) -> None:
        """Write the checkpoint for ``progress`` (every process takes part; one writes)."""
        torch_rng, other_rng = _get_rng()
        if self.group is not None:
            torch_rngs, other_rngs = self.group.gather_rng(torch_rng, other_rng)
        else:
            torch_rngs, other_rngs = [torch_rng], [other_rng]
        if not self.writer:
            return
        trainer, model = self.trainer, self.model
        tensors = {f"model/{k}": v for k, v in saving._tensors(model).items()}
        opt_tensors, opt_json = _optimizer_parts(trainer.optimizer.torch_optimizer)
        tensors.update(opt_tensors)
        tensors.update({f"rng/torch/{r}": t for r, t in enumerate(torch_rngs)})
        mid_epoch = progress.order is not None
        if mid_epoch:
            tensors["order"] = progress.order.detach().cpu().to(torch.int64).contiguous().clone()
        states: dict[str, int] = {}
        for name, m in self._stateful().items():
            if m.states is not None:
                states[name] = len(m.states)
                tensors.update({f"states/{name}/{i}": s.detach().cpu().contiguous().clone() for i, s in enumerate(m.states)})
        metrics = trainer.metrics.metrics
        h = self.history
        state = {
            "version": STATE_VERSION,
            "progress": {"epoch": progress.epoch, "batch": progress.batch, "step": progress.step,
                         "clip_events": progress.clip_events, "skipped": progress.skipped,
                         "stopped": bool(progress.stopped), "batches_done": self.batches_done},
            "epoch_logs": progress.epoch_logs,
            "fingerprint": self.fingerprint,
            "trainer": {"consecutive_bad": trainer.consecutive_bad, "sequence_target": trainer.sequence_target,
                        "loss_tracker": _numbers(trainer.loss_tracker) if mid_epoch else {},
                        "metrics": [_numbers(m) for m in metrics] if mid_epoch and metrics is not None else None},
            "history": {"history": h.history, "epoch": h.epoch, "clip_events": h.clip_events,
                        "skipped_steps": h.skipped_steps, "grad_norms": h.grad_norms},
            "optimizer": opt_json,
            "rng": other_rngs,
            "states": states,
            "callbacks": [cb.get_state() if callable(getattr(cb, "get_state", None)) else None
                          for cb in self.callbacks.callbacks],
        }
        metadata = {"format": saving.CHECKPOINT_FORMAT, "version": saving.FORMAT_VERSION,
                    "state": json.dumps(_encode(state))}
        saving._write(self.path, tensors, metadata)  # temp file, fsync, os.replace
        _fsync_dir(self.directory)  # so the rename itself survives a power cut


# -- pieces -------------------------------------------------------------------------------

def _optimizer_parts(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A torch optimizer's state_dict, flattened: tensors for safetensors, the rest for JSON."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, values in sd["state"].items():
        for name, v in values.items():
            if "/" in name:
                raise ValueError(f"Optimizer state name {name!r} contains '/', which checkpoints reserve")
            if isinstance(v, Tensor):
                tensors[f"optimizer/{idx}/{name}"] = v.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[name] = _encode(v)
    return tensors, {"param_groups": _encode(sd["param_groups"]), "scalars": scalars}


def _state_names(opt: torch.optim.Optimizer, params: list[Tensor]) -> Optional[set[str]]:
    """The names of the per-parameter state ``opt`` keeps after a step, from one step of a
    scratch copy on zero gradients; None when the optimizer cannot be copied that way."""
    if not params:
        return None
    scratch = [torch.zeros_like(params[0], requires_grad=True)]
    try:
        copy = type(opt)(scratch, **opt.defaults)
        scratch[0].grad = torch.zeros_like(scratch[0])
        copy.step()
    except (TypeError, ValueError, RuntimeError):  # a custom optimizer with other constructor arguments
        return None
    return set(copy.state[scratch[0]])


def _numbers(obj: Any) -> dict[str, float]:
    """The numeric attributes of a metric (Mean keeps ``total`` and ``count``)."""
    return {k: v for k, v in vars(obj).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _set_numbers(obj: Any, values: dict[str, Any]) -> None:
    for k, v in values.items():
        if k in vars(obj) and isinstance(getattr(obj, k), (int, float)):
            setattr(obj, k, math.nan if v is None else v)


def _get_rng() -> tuple[Tensor, dict[str, Any]]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return torch.get_rng_state(), {"numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                                   "python": [version, list(internal), gauss]}


def _set_rng(torch_state: Tensor, other: dict[str, Any], where: str) -> None:
    name, keys, pos, has_gauss, cached = other["numpy"]
    try:
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        version, internal, gauss = other["python"]
        random.setstate((version, tuple(internal), gauss))
        torch.set_rng_state(torch_state.contiguous())
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{where!r} is corrupted: its RNG state cannot be restored ({e})") from None


def _data_digest(*datas: Data) -> str:
    h = hashlib.sha256()
    for d in datas:
        for _, t in flatten(d):
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds (Windows)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
