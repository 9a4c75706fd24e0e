"""rnnkit's fit against Keras 3 on JAX, the same three models and data side by side: seconds per
epoch (median after the first, which compiles) and the final accuracy.

Keras and JAX are never rnnkit dependencies; put them in a venv of their own that still sees the
system's torch and rnnkit:

    python -m venv --system-site-packages /tmp/kjax && /tmp/kjax/bin/pip install keras jax
    flock /tmp/rnnkit-bench.lock /tmp/kjax/bin/python benchmarks/keras_jax_side_by_side.py
    /tmp/kjax/bin/python benchmarks/keras_jax_side_by_side.py --smoke      # tiny: proves it runs
    /tmp/kjax/bin/python benchmarks/keras_jax_side_by_side.py --threads 1  # one thread each (loaded machine)

Models and data are benchmarks/fit_overhead.py's (seq2seq and bilstm on random data, so their
accuracy is chance; sentiment on the bundled sentences, its accuracy measured on the test split).
The Keras models are the same layers with Keras's own defaults and initialisers; the frameworks
alternate epoch by epoch in one process. rnnkit runs eagerly and with ``jit_compile=True``;
Keras on JAX always compiles (``jit_compile="auto"`` is True there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import fit_overhead as fo  # noqa: E402

keras: Any = None  # imported in main(), after XLA_FLAGS is set


def import_keras(threads: int) -> None:
    """Keras on JAX; with one torch thread, XLA's CPU client gets one too (set before JAX loads)."""
    global keras
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    try:
        import keras as keras_module
    except ImportError:
        sys.exit("Keras 3 with JAX is not installed here; see this script's docstring for a venv that has them")
    keras = keras_module


def keras_model(name: str, spec: dict[str, Any]) -> Any:
    L = keras.layers
    if name == "seq2seq":
        model = keras.Sequential([L.Input((7, 12)), L.LSTM(128), L.RepeatVector(4), L.LSTM(128, return_sequences=True),
                                  L.Dense(12, activation="softmax")])
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    elif name == "bilstm":
        model = keras.Sequential([L.Input((80,)), L.Embedding(10_000, 64), L.Bidirectional(L.LSTM(64)),
                                  L.Dense(1, activation="sigmoid")])
        model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    else:
        vocab = spec["model"].vocab_size
        model = keras.Sequential([L.Input((spec["x"].shape[1],)), L.Embedding(vocab, 64, mask_zero=True),
                                  L.Bidirectional(L.LSTM(64)), L.Dropout(0.4), L.Dense(2)])
        model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return model


def sentiment_test(n: int, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The sentiment test split, encoded with the training vocabulary (rebuilt the same way)."""
    from rnnkit.data import WordVocab, pad_sequences
    from rnnkit.datasets import load_sentiment
    from rnnkit.models.tasks.classify import SentimentTask

    d = load_sentiment()
    task = SentimentTask()
    vocab = WordVocab(num_words=task.num_words, oov_token="<unk>").fit(list(d.x_train[:n]))
    x = pad_sequences(vocab.texts_to_sequences(list(d.x_test)), maxlen=task.maxlen, padding="post",
                      truncating="post", dtype="int64")
    return x, d.y_test.astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(fo.MODELS), choices=list(fo.MODELS))
    parser.add_argument("--samples", type=int, default=4500, help="training samples (sentiment: at most ~8,000)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (1: XLA's CPU client too); on a loaded machine use 1, since two "
                             "OpenMP threads that get preempted wait for each other")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 epochs, aot_eager: check that it runs")
    args = parser.parse_args()
    began = time.perf_counter()
    import_keras(args.threads)
    backend = "inductor"
    if args.smoke:
        args.samples, args.epochs, backend = 128, 2, "aot_eager"
    torch.set_num_threads(args.threads)
    from rnnkit.keras.training import jit as jit_mod

    jit_mod.JitSteps.backend = backend
    print(f"torch {torch.__version__}, keras {keras.__version__} on {keras.backend.backend()}, {args.threads} torch "
          f"threads, {args.samples} samples, {args.epochs} epochs; s/epoch is the median after epoch 1")
    print(f"{'model':10} {'framework':16} {'s/epoch':>8} {'epoch 1 s':>10} {'accuracy':>9}")
    for name in args.models:
        torch.manual_seed(0)
        keras.utils.set_random_seed(0)
        spec = fo.MODELS[name](args.samples)
        x, y, batch = spec["x"], spec["y"], spec["batch"]
        ours = spec["model"]
        ours.compile(spec["optimizer"](), loss=spec["loss"], metrics=["accuracy"])
        torch.manual_seed(0)
        spec_jit = fo.MODELS[name](args.samples)
        jitted = spec_jit["model"]
        jitted.compile(spec_jit["optimizer"](), loss=spec_jit["loss"], metrics=["accuracy"], jit_compile=True)
        theirs = keras_model(name, spec)
        runs = {"rnnkit eager": ours, "rnnkit jit": jitted, "keras 3 + jax": theirs}
        times: dict[str, list[float]] = {k: [] for k in runs}
        last: dict[str, float] = {}
        for epoch in range(args.epochs):
            for label, model in (runs.items() if epoch % 2 == 0 else reversed(list(runs.items()))):
                start = time.perf_counter()
                hist = model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
                times[label].append(time.perf_counter() - start)
                last[label] = float(hist.history["accuracy"][-1])
        if name == "sentiment":
            xt, yt = sentiment_test(args.samples, spec)
            for label, model in runs.items():
                last[label] = float(model.evaluate(xt, yt, batch_size=256, verbose=0)[1])
        for label in runs:
            steady = statistics.median(times[label][1:]) if len(times[label]) > 1 else float("nan")
            print(f"{name:10} {label:16} {steady:8.2f} {times[label][0]:10.2f} {last[label]:9.4f}", flush=True)
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
