"""``rnnkit train <task>``'s default recipe against the same recipe written in Keras 3: seconds per
epoch, side by side in one process, the frameworks alternating epoch by epoch.

Keras is never an rnnkit dependency; use a venv of its own that still sees the system's torch
(see benchmarks/keras_jax_side_by_side.py's docstring), with rnnkit's source on the path:

    PYTHONPATH=$PWD/src flock /tmp/rnnkit-bench.lock taskset -c 0 /work/kjax/bin/python benchmarks/keras_recipes.py
    PYTHONPATH=$PWD/src flock /tmp/rnnkit-bench.lock /work/kjax/bin/python benchmarks/keras_recipes.py --threads 2
    PYTHONPATH=$PWD/src KERAS_BACKEND=torch /work/kjax/bin/python benchmarks/keras_recipes.py   # Keras on torch
    PYTHONPATH=$PWD/src /work/kjax/bin/python benchmarks/keras_recipes.py --smoke   # tiny: proves it runs

The recipe is read from the task, not copied here: each task's ``train`` runs with
``Model.compile`` recorded and ``Model.fit`` stopped at its first call, which yields the model
(built and compiled as the task builds it), the data, the batch size and the validation the
task passes to fit. The Keras twin is built from the model's ``get_config`` (the same layers,
sizes, dropout, optimizer with its clipping, loss and metrics; Keras's own initialisers), so a
change to a task's default recipe reaches both sides. A config the twin cannot express (a
layer-normalised or zoneout LSTM, the minGRU) is refused with a message, not approximated.

Not timed: the tasks' callbacks (EarlyStopping, ReduceLROnPlateau: one scalar per epoch) and what
happens after training (scoring, ensembles: sentiment's and ucr's members are each this fit).
``cmudict`` trains with its own loop over length buckets (``fit_g2p``), which has no Keras
twin here. A recipe that trains by truncated BPTT (``fit(..., tbptt=T)``: long streams cut into
windows of T, the state carried between them) gets a stateful Keras twin fed the same windows
in order with ``train_on_batch``, its state reset each epoch, and validated by a stateless copy
with the same weights. Otherwise both sides run ``fit(..., epochs=1)`` once per epoch with the
task's validation;
s/epoch is the median after the first epoch (Keras on JAX compiles there), by the wall clock and
by the process's CPU time (``time.process_time``: with one thread it is what the framework
itself spent, and it moves less than the wall clock when other jobs share the cores). rnnkit
runs as the task compiles it (eager). ``--threads`` caps torch's threads and, on JAX, XLA's.

Known differences, all small in time: Keras's GlobalMaxPooling1D ignores the mask (rnnkit's
takes the max over the real steps), and LSTM-FCN's masking of NaN padding has no Keras twin.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Optional

TASKS = ("ucr", "sunspots", "sentiment", "charlm")
#: Epochs timed per task by default (the first compiles): short epochs get more, so the medians settle.
EPOCHS = {"ucr": 12, "sunspots": 12, "sentiment": 4, "charlm": 2}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--epochs", type=int, default=None, help="epochs timed per task (default: per task, see EPOCHS)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, and XLA's on JAX (rnnkit train --threads)")
    p.add_argument("--limit", type=int, default=None, help="the tasks' --limit (fewer samples, or charlm's text cut)")
    p.add_argument("--smoke", action="store_true", help="--limit 64, 2 epochs: check that it runs")
    return p.parse_args()


ARGS = parse() if __name__ == "__main__" else None
os.environ.setdefault("KERAS_BACKEND", "jax")
if ARGS is not None and os.environ["KERAS_BACKEND"] == "jax" and ARGS.threads == 1:
    # Set before jax is imported. XLA still runs a few threads of its own; `taskset -c 0` holds both
    # frameworks to one core, and the CPU-time columns count every thread.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    import keras  # noqa: E402
except ImportError:
    sys.exit("Keras 3 is not installed here; see this script's docstring for a venv that has it")


@dataclass
class Recipe:
    """What a task's first ``fit`` call got: the compiled model and fit's arguments."""

    task: str
    model: Any
    compiled: dict[str, Any]  #: Model.compile's arguments by name
    fit: dict[str, Any]  #: Model.fit's arguments by name


class _Captured(Exception):
    def __init__(self, model: Any, fit: dict[str, Any]) -> None:
        super().__init__("fit reached")
        self.model, self.fit = model, fit


def capture(name: str, limit: Optional[int] = None, seed: int = 0) -> Recipe:
    """Run task ``name``'s ``train`` (defaults, ``--limit`` = ``limit``) up to its first ``fit`` call."""
    from rnnkit.keras.models.model import Model
    from rnnkit.models.tasks import BUNDLED_TASKS, Context
    from rnnkit.models.tasks.base import seed_everything

    task = BUNDLED_TASKS[name]
    ctx = Context(cell=task.default_cell, epochs=task.default_epochs, seed=seed, limit=limit, verbose=0)
    compile_, fit_ = Model.compile, Model.fit
    compiled: dict[int, dict[str, Any]] = {}

    def compile_spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(compile_).bind(self, *args, **kwargs)
        compiled[id(self)] = {k: v for k, v in bound.arguments.items() if k != "self"}
        return compile_(self, *args, **kwargs)

    def fit_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(fit_).bind(self, *args, **kwargs)
        raise _Captured(self, {k: v for k, v in bound.arguments.items() if k != "self"})

    Model.compile, Model.fit = compile_spy, fit_stop  # type: ignore[method-assign]
    try:
        seed_everything(seed)
        task.train(ctx)
    except _Captured as c:
        return Recipe(name, c.model, compiled[id(c.model)], c.fit)
    finally:
        Model.compile, Model.fit = compile_, fit_  # type: ignore[method-assign]
    raise RuntimeError(f"task {name!r} never called Model.fit: its recipe cannot be read this way")


def _rnn(cell: str, units: int, **kwargs: Any) -> Any:
    layers = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}
    if cell not in layers:
        raise NotImplementedError(f"cell={cell!r} has no Keras 3 layer")
    return layers[cell](units, **kwargs)


def _seq_len(x: Any) -> int:
    return int(np.asarray(x).shape[1])


def keras_twin(recipe: Recipe, window: Optional[int] = None) -> Any:
    """The recipe's model written with Keras 3 layers, compiled as the task compiled rnnkit's.

    ``window``: a stateful twin for truncated BPTT, built for batches (B, window) with B the
    recipe's batch size (CharLanguageModel only).
    """
    L, model, cfg = keras.layers, recipe.model, recipe.model.get_config()
    x = np.asarray(recipe.fit["x"])
    if window is not None and type(model).__name__ != "CharLanguageModel":
        raise NotImplementedError(f"truncated BPTT twin only for CharLanguageModel, got {type(model).__name__}")
    kind = type(model).__name__
    if kind == "LSTMFCN":
        inputs = L.Input((cfg["length"], cfg["input_size"]))
        h = inputs
        for f, k in zip(cfg["filters"], cfg["kernel_sizes"]):
            h = L.Conv1D(f, k, padding="same", kernel_initializer="he_uniform")(h)
            h = L.Activation("relu")(L.BatchNormalization()(h))
        fcn = L.GlobalAveragePooling1D()(h)
        r = L.Dropout(cfg["dropout"])(_rnn(cfg["cell"], cfg["units"])(L.Permute((2, 1))(inputs)))
        outputs = L.Dense(cfg["num_classes"])(L.Concatenate()([fcn, r]))
    elif kind == "SequenceClassifier":
        if cfg["vocab_size"]:
            inputs = L.Input((_seq_len(x),), dtype="int32")
            h = L.Embedding(cfg["vocab_size"], cfg["embedding_dim"], mask_zero=True)(inputs)
            if cfg["word_dropout"]:
                h = L.Dropout(cfg["word_dropout"], noise_shape=(None, _seq_len(x), 1))(h)
        else:
            inputs = h = L.Input((_seq_len(x), cfg["input_size"]))
        for i in range(cfg["num_layers"]):
            seq = i < cfg["num_layers"] - 1 or cfg["pooling"] != "last"
            layer = _rnn(cfg["cell"], cfg["units"], return_sequences=seq)
            h = (L.Bidirectional(layer) if cfg["bidirectional"] else layer)(h)
        if cfg["pooling"] == "max":
            h = L.GlobalMaxPooling1D()(h)
        elif cfg["pooling"] == "mean":
            h = L.GlobalAveragePooling1D()(h)
        outputs = L.Dense(cfg["num_classes"])(L.Dropout(cfg["dropout"])(h))
    elif kind == "CharLanguageModel":
        if cfg.get("layer_norm") or cfg.get("zoneout"):
            raise NotImplementedError("Keras 3's LSTM has no layer norm or zoneout: this charlm recipe has no "
                                      "twin here")
        # Any length: truncated BPTT trains on windows and validates on other windows.
        inputs = (L.Input((None,), dtype="int32") if window is None
                  else L.Input(batch_shape=(recipe.fit["batch_size"], None), dtype="int32"))
        h = L.Embedding(cfg["vocab_size"], cfg["embedding_dim"])(inputs)
        for _ in range(cfg["num_layers"]):
            rnn = _rnn(cfg["cell"], cfg["units"], return_sequences=True, stateful=window is not None)
            h = L.Dropout(cfg["dropout"])(rnn(h))
        outputs = L.Dense(cfg["vocab_size"])(h)
    elif kind == "Forecaster":
        loc, scale = model.loc.numpy(), model.scale.numpy()
        inputs = L.Input((_seq_len(x), cfg["input_size"]))
        h = L.Normalization(mean=loc, variance=scale**2)(inputs)
        for i in range(cfg["num_layers"]):
            h = _rnn(cfg["cell"], cfg["units"], return_sequences=i < cfg["num_layers"] - 1)(h)
        h = L.Dense(cfg["horizon"])(L.Dropout(cfg["dropout"])(h))
        t = cfg["target"]
        outputs = L.Rescaling(float(scale[t]), offset=float(loc[t]))(h)
    else:
        raise NotImplementedError(f"no Keras twin for {kind}")
    twin = keras.Model(inputs, outputs)
    twin.compile(_optimizer(recipe.compiled), _loss(recipe.compiled.get("loss")),
                 metrics=[m for m in recipe.compiled.get("metrics") or [] if isinstance(m, str)])
    return twin


def _optimizer(compiled: dict[str, Any]) -> Any:
    opt = compiled.get("optimizer", "rmsprop")
    clip = {k: compiled[k] for k in ("clipnorm", "clipvalue", "global_clipnorm") if compiled.get(k) is not None}
    if isinstance(opt, str):
        return keras.optimizers.get({"class_name": opt, "config": clip}) if clip else opt
    config = {k: v for k, v in opt.get_config().items() if k != "name"}
    return getattr(keras.optimizers, type(opt).__name__)(**config, **clip)


def _loss(loss: Any) -> Any:
    if loss is None or isinstance(loss, str):
        return loss
    config = {k: v for k, v in loss.get_config().items() if k != "name"}
    return getattr(keras.losses, type(loss).__name__)(**config)


#: fit arguments a recipe may pass that the timing mirrors (callbacks and verbosity are left out).
MIRRORED = {"x", "y", "batch_size", "epochs", "verbose", "callbacks", "validation_split", "validation_data",
            "shuffle", "tbptt"}


def fit_kwargs(recipe: Recipe) -> dict[str, Any]:
    """fit's arguments for one epoch, as the task passed them (callbacks and verbosity left out)."""
    f = recipe.fit
    other = sorted(set(f) - MIRRORED)
    if other:
        raise NotImplementedError(f"task {recipe.task!r} passes fit {other}, which this benchmark does not mirror")
    kw = dict(x=np.asarray(f["x"]), y=np.asarray(f["y"]), batch_size=f.get("batch_size"), epochs=1, verbose=0)
    if f.get("validation_split"):
        kw["validation_split"] = f["validation_split"]
    if f.get("validation_data") is not None:
        kw["validation_data"] = tuple(np.asarray(a) for a in f["validation_data"])
    if "shuffle" in f:
        kw["shuffle"] = f["shuffle"]
    if f.get("tbptt"):
        kw["tbptt"] = f["tbptt"]  # rnnkit's side only: see keras_epochs
    return kw


def keras_epochs(recipe: Recipe, kw: dict[str, Any]) -> Any:
    """A function that trains the Keras twin for one epoch as the recipe's fit does."""
    tbptt = recipe.fit.get("tbptt")
    if not tbptt:
        twin = keras_twin(recipe)
        return lambda: twin.fit(**kw)
    # Truncated BPTT as a Keras user writes it: a stateful twin fed the windows in order, its state
    # carried between them and reset at each epoch; validation on a stateless twin with the same
    # weights, from zero states, as rnnkit validates.
    x, y, B = kw["x"], kw["y"], kw["batch_size"]
    if B is None or len(x) % B:
        raise NotImplementedError(f"truncated BPTT twin needs whole batches of streams, got {len(x)} and {B}")
    train, score = keras_twin(recipe, window=tbptt), keras_twin(recipe)
    val = kw.get("validation_data")

    def epoch() -> None:
        for b in range(0, len(x), B):
            for layer in train.layers:
                if getattr(layer, "stateful", False):
                    layer.reset_states()
            for t in range(0, x.shape[1], tbptt):  # a shorter last window compiles once more, in epoch 1
                train.train_on_batch(x[b : b + B, t : t + tbptt], y[b : b + B, t : t + tbptt])
        if val is not None:
            score.set_weights(train.get_weights())
            score.evaluate(*val, batch_size=B, verbose=0)

    return epoch


def main() -> None:
    args = ARGS
    # The known difference named in the docstring; Keras warns about it once per model.
    warnings.filterwarnings("ignore", message=".*GlobalMaxPooling1D.*does not support masking")
    torch.set_num_threads(args.threads)
    limit = 64 if args.smoke else args.limit
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
          f"load {' '.join(f'{v:.1f}' for v in os.getloadavg())}; torch {torch.__version__}, keras "
          f"{keras.__version__} on {keras.backend.backend()}, {args.threads} torch thread(s), cores "
          f"{sorted(os.sched_getaffinity(0))}")
    print("seconds per epoch, the median after epoch 1: wall clock and the process's CPU time (all its threads;\n"
          "steadier than the wall clock under load); ratio = rnnkit / keras (< 1: rnnkit faster); ep 1: wall, s")
    print(f"{'':36} {'--------- wall ---------':>24} {'---------- cpu ---------':>24} {'------ ep 1 -----':>17}")
    print(f"{'task':10} {'model':19} {'batch':>5} {'steps':>5} {'rnnkit':>8} {'keras':>8} {'ratio':>6} "
          f"{'rnnkit':>8} {'keras':>8} {'ratio':>6} {'rnnkit':>8} {'keras':>8}")
    for name in args.tasks:
        recipe = capture(name, limit=limit)
        keras.utils.set_random_seed(0)
        kw = fit_kwargs(recipe)
        kinds = {"rnnkit": lambda: recipe.model.fit(**kw), "keras": keras_epochs(recipe, kw)}
        wall: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        epochs = 2 if args.smoke else args.epochs or EPOCHS[name]
        for epoch in range(epochs):
            for label, run_epoch in (kinds.items() if epoch % 2 == 0 else reversed(list(kinds.items()))):
                start, start_cpu = time.perf_counter(), time.process_time()
                run_epoch()
                wall[label].append(time.perf_counter() - start)
                cpu[label].append(time.process_time() - start_cpu)
        w = {k: statistics.median(v[1:]) for k, v in wall.items()}
        c = {k: statistics.median(v[1:]) for k, v in cpu.items()}
        n = len(kw["x"]) * (1 - kw.get("validation_split", 0.0))
        steps = int(np.ceil(n / (kw["batch_size"] or 32)))
        if recipe.fit.get("tbptt"):
            steps *= int(np.ceil(kw["x"].shape[1] / recipe.fit["tbptt"]))
        print(f"{name:10} {type(recipe.model).__name__:19} {kw['batch_size']:5} {steps:5} {w['rnnkit']:8.3f} "
              f"{w['keras']:8.3f} {w['rnnkit'] / w['keras']:6.2f} {c['rnnkit']:8.3f} {c['keras']:8.3f} "
              f"{c['rnnkit'] / c['keras']:6.2f} {wall['rnnkit'][0]:8.2f} {wall['keras'][0]:8.2f}", flush=True)

if __name__ == "__main__":
    main()
