"""What ``fit``/``evaluate``/``predict`` cost around the model's own work: ms per step against a
hand-written torch loop over the same module, in the same process, interleaved, medians.

    flock /tmp/rnnkit-bench.lock python benchmarks/fit_overhead.py
    python benchmarks/fit_overhead.py --models seq2seq --reps 5 --no-jit
    python benchmarks/fit_overhead.py --smoke        # tiny sizes, aot_eager: proves it runs
    python benchmarks/fit_overhead.py --ops --no-jit # ATen ops per step, fit vs hand (no timing)
    python benchmarks/fit_overhead.py --threads 1 --clock cpu   # on a shared machine: CPU time, 1 thread
    python benchmarks/fit_overhead.py --counts --no-jit --threads 1  # Python calls, ATen ops per step (no timing)

Models (batch 32 unless said):
    seq2seq    LSTM(128) over 7 steps -> RepeatVector(4) -> LSTM(128, return_sequences) ->
               Dense(12, softmax); sparse_categorical_crossentropy; 4,500 samples (issue 21)
    bilstm     Embedding(10000, 64) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid) over 80 ids;
               binary_crossentropy; 4,500 samples
    sentiment  the bundled sentiment task's model and data (``rnnkit train sentiment``):
               SequenceClassifier(bidirectional LSTM(64), dropout 0.4) over 40 ids, batch 64,
               SparseCategoricalCrossentropy(from_logits=True), Adam(2e-3)

Each rep times one epoch of ``model.fit(..., verbose=0)`` (compiled with metrics=["accuracy"], as
a Keras user would) and one epoch of the hand loop: a fresh ``torch.randperm`` order, ``x[idx]``,
forward, the matching torch loss, ``zero_grad``, ``backward``, ``Adam.step`` (torch's defaults,
as a torch user writes it; ``--hand-fused``: ``Adam(..., fused=True)``, the implementation fit's
own optimizers use, so that the ratio holds fit's overhead alone), over the same module. Evaluate: ``model.evaluate`` against a no_grad loop that sums
``loss.item()``; predict: ``model.predict`` against a no_grad loop that concatenates the outputs
and converts them to numpy. ``jit`` rows use a copy compiled with ``jit_compile=True``; their
first epochs (compilation) are reported separately and left out of the medians.

ratio = rnnkit / hand (goal: eager <= 1.10; jit < 1.00, i.e. faster than the hand eager loop).

``--ops`` counts instead of timing: the ATen operators (nested ones included) that one training
step of ``fit`` and of the hand loop run, per step over one epoch, and those fit runs more often.
The counts do not depend on the machine's load, so they show what a change removed even where
timings cannot.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

import rnnkit.keras as keras
from rnnkit.keras import layers, losses, optimizers


def seq2seq(n: int) -> dict[str, Any]:
    g = np.random.default_rng(0)
    x = g.random((n, 7, 12), dtype=np.float32)
    y = g.integers(0, 12, (n, 4))
    model = keras.Sequential([layers.Input(shape=(7, 12)), layers.LSTM(128), layers.RepeatVector(4),
                              layers.LSTM(128, return_sequences=True), layers.Dense(12, activation="softmax")])
    return dict(model=model, x=x, y=y, batch=32, optimizer=lambda: optimizers.Adam(1e-3),
                loss="sparse_categorical_crossentropy",
                torch_loss=lambda out, yb: F.nll_loss(out.clamp_min(1e-7).log().flatten(0, 1), yb.flatten()))


def bilstm(n: int) -> dict[str, Any]:
    g = np.random.default_rng(0)
    x = g.integers(1, 10_000, (n, 80))
    y = g.integers(0, 2, (n,)).astype(np.float32)
    model = keras.Sequential([layers.Input(shape=(80,)), layers.Embedding(10_000, 64),
                              layers.Bidirectional(layers.LSTM(64)), layers.Dense(1, activation="sigmoid")])
    return dict(model=model, x=x, y=y, batch=32, optimizer=lambda: optimizers.Adam(1e-3), loss="binary_crossentropy",
                torch_loss=lambda out, yb: F.binary_cross_entropy(out.squeeze(-1), yb))


def sentiment(n: int) -> dict[str, Any]:
    from rnnkit.data import WordVocab, pad_sequences
    from rnnkit.datasets import load_sentiment
    from rnnkit.models import SequenceClassifier
    from rnnkit.models.tasks.classify import SentimentTask

    d = load_sentiment()
    texts, y = d.x_train[:n], d.y_train[:n].astype(np.int64)
    task = SentimentTask()
    vocab = WordVocab(num_words=task.num_words, oov_token="<unk>").fit(list(texts))
    x = pad_sequences(vocab.texts_to_sequences(list(texts)), maxlen=task.maxlen, padding="post", truncating="post",
                      dtype="int64")
    model = SequenceClassifier(2, vocab_size=vocab.vocab_size, embedding_dim=64, units=64, cell="lstm",
                               bidirectional=True, dropout=0.4)
    return dict(model=model, x=x, y=y, batch=64, optimizer=lambda: optimizers.Adam(2e-3),
                loss=losses.SparseCategoricalCrossentropy(from_logits=True), torch_loss=F.cross_entropy)


MODELS: dict[str, Callable[[int], dict[str, Any]]] = {"seq2seq": seq2seq, "bilstm": bilstm, "sentiment": sentiment}


def hand_train(model: torch.nn.Module, loss_fn: Callable, opt: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, batch: int) -> None:
    model.train()
    order = torch.randperm(len(x))
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        xb, yb = x[idx], y[idx]
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()


def hand_evaluate(model: torch.nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            total += loss_fn(model(xb), yb).item() * len(xb)
    return total / len(x)


def hand_predict(model: torch.nn.Module, x: torch.Tensor, batch: int) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[s : s + batch]) for s in range(0, len(x), batch)]).numpy()


def op_counts(fn: Callable[[], Any], steps: int) -> dict[str, float]:
    """ATen operators per step that ``fn`` runs (torch.profiler, nested calls included)."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts = Counter(e.name for e in prof.events() if e.name.startswith("aten::"))
    return {k: v / steps for k, v in counts.items()}


def print_ops(name: str, ours: dict[str, float], hand: dict[str, float]) -> None:
    print(f"{name:10} ATen ops per training step: fit {sum(ours.values()):.1f}, hand {sum(hand.values()):.1f}")
    extra = sorted(((ours.get(k, 0.0) - hand.get(k, 0.0), k) for k in set(ours) | set(hand)), reverse=True)
    print("           fit - hand: " + ", ".join(f"{k[6:]} {d:+.1f}" for d, k in extra if abs(d) >= 0.5))


CLOCK: Callable[[], float] = time.perf_counter


def per_step_counts(spec: dict[str, Any], model: Any, hand_opt: torch.optim.Optimizer, k: int = 4) -> None:
    """Python calls, C calls and ATen ops per step of each mode: the counts over 2k batches minus
    those over k, divided by k (what a call costs once cancels). Load does not change them."""
    import sys

    from torch.profiler import ProfilerActivity, profile

    batch = spec["batch"]

    def run(mode: str, n: int) -> None:
        x, y = spec["x"][: n * batch], spec["y"][: n * batch]
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        {"fit": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0),
         "hand": lambda: hand_train(model, spec["torch_loss"], hand_opt, xt, yt, batch),
         "evaluate": lambda: model.evaluate(x, y, batch_size=batch, verbose=0),
         "hand_evaluate": lambda: hand_evaluate(model, spec["torch_loss"], xt, yt, batch),
         "predict": lambda: model.predict(x, batch_size=batch, verbose=0),
         "hand_predict": lambda: hand_predict(model, xt, batch)}[mode]()

    def counted(mode: str, n: int) -> tuple[int, int, int]:
        calls = [0, 0]

        def hook(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                calls[0] += 1
            elif event == "c_call":
                calls[1] += 1

        sys.setprofile(hook)
        try:
            run(mode, n)
        finally:
            sys.setprofile(None)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(mode, n)
        return calls[0], calls[1], sum(1 for e in prof.events() if e.name.startswith("aten::"))

    for mode in ("fit", "hand", "evaluate", "hand_evaluate", "predict", "hand_predict"):
        run(mode, k)
        one, two = counted(mode, k), counted(mode, 2 * k)
        py, c, ops = ((b - a) / k for a, b in zip(one, two))
        print(f"{spec['name']:10} {mode:14} Python calls {py:6.1f}  C calls {c:6.1f}  ATen ops {ops:6.1f}", flush=True)


def timed(fn: Callable[[], Any]) -> float:
    start = CLOCK()
    fn()
    return CLOCK() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--samples", type=int, default=4500)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--compile-epochs", type=int, default=2, help="jit epochs run before timing (compilation)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-jit", action="store_true")
    parser.add_argument("--hand-fused", action="store_true", help="the hand loop's Adam with fused=True")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend of the jit rows")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 rep, aot_eager: check that it runs")
    parser.add_argument("--ops", action="store_true", help="count ATen ops per training step instead of timing")
    parser.add_argument("--counts", action="store_true",
                        help="Python calls, C calls and ATen ops per step of fit/evaluate/predict and the hand loops")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this thread's CPU time (with --threads 1), which a shared machine's load "
                             "disturbs less than wall time; wall: the real thing, for a quiet machine")
    args = parser.parse_args()
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.thread_time
    if args.smoke:
        args.samples, args.reps, args.compile_epochs, args.backend = 96, 1, 1, "aot_eager"
    torch.set_num_threads(args.threads)
    if not args.no_jit:
        from rnnkit.keras.training import jit as jit_mod

        jit_mod.JitSteps.backend = args.backend
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"{args.samples} samples, {args.reps} reps, jit backend {args.backend}, {args.clock} clock")
    if not args.ops and not args.counts:
        print(f"{'model':10} {'what':9} {'rnnkit ms':>10} {'hand ms':>8} {'ratio':>6} {'jit ms':>8} {'jit/hand':>8}")
    for name in args.models:
        torch.manual_seed(0)
        spec = MODELS[name](args.samples)
        model, batch = spec["model"], spec["batch"]
        model.compile(spec["optimizer"](), loss=spec["loss"], metrics=["accuracy"])
        x, y = spec["x"], spec["y"]
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        steps = -(-len(x) // batch)
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # builds; warms the kernels
        hand_opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=args.hand_fused)
        hand_train(model, spec["torch_loss"], hand_opt, xt, yt, batch)
        if args.counts:
            spec["name"] = name
            model.compile(spec["optimizer"](), loss=spec["loss"], metrics=["accuracy"], jit_compile=not args.no_jit)
            per_step_counts(spec, model, hand_opt)
            continue
        if args.ops:
            print_ops(name, op_counts(lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0), steps),
                      op_counts(lambda: hand_train(model, spec["torch_loss"], hand_opt, xt, yt, batch), steps))
            continue
        compiled = None
        if not args.no_jit:
            compiled = copy.deepcopy(model)
            compiled.compile(spec["optimizer"](), loss=copy.deepcopy(spec["loss"]), metrics=["accuracy"],
                             jit_compile=True)
            first = [timed(lambda: compiled.fit(x, y, batch_size=batch, epochs=1, verbose=0))
                     for _ in range(args.compile_epochs)]
            first += [timed(lambda: compiled.evaluate(x, y, batch_size=batch, verbose=0)),
                      timed(lambda: compiled.predict(x, batch_size=batch, verbose=0))]
            print(f"{name:10} jit warm-up (compiles): fit epochs {', '.join(f'{t:.1f}' for t in first[:-2])} s, "
                  f"evaluate {first[-2]:.1f} s, predict {first[-1]:.1f} s")
        rows = {
            "fit": (lambda m: m.fit(x, y, batch_size=batch, epochs=1, verbose=0),
                    lambda: hand_train(model, spec["torch_loss"], hand_opt, xt, yt, batch)),
            "evaluate": (lambda m: m.evaluate(x, y, batch_size=batch, verbose=0),
                         lambda: hand_evaluate(model, spec["torch_loss"], xt, yt, batch)),
            "predict": (lambda m: m.predict(x, batch_size=batch, verbose=0),
                        lambda: hand_predict(model, xt, batch)),
        }
        for what, (ours, hand) in rows.items():
            times: dict[str, list[float]] = {"rnnkit": [], "hand": [], "jit": []}
            for rep in range(args.reps):
                order = [("rnnkit", lambda: ours(model)), ("hand", hand)]
                if compiled is not None:
                    order.append(("jit", lambda: ours(compiled)))
                if rep % 2:
                    order.reverse()
                for key, fn in order:
                    times[key].append(timed(fn) / steps * 1e3)
            med = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
            print(f"{name:10} {what:9} {med['rnnkit']:10.3f} {med['hand']:8.3f} {med['rnnkit'] / med['hand']:6.3f} "
                  f"{med['jit']:8.3f} {med['jit'] / med['hand']:8.3f}", flush=True)


if __name__ == "__main__":
    main()
