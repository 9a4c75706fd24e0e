"""bf16 autocast on a bundled task: the sentiment BiLSTM trained in float32 and under
``torch.autocast("cpu", dtype=torch.bfloat16)``, same seed, same data; prints both test accuracies
and their difference (the aim: within 0.5 points), and each run's training time.

Data: 10,043 movie-review sentences (VADER, MIT; bundled), as examples/sentiment_bilstm.py.

    python examples/sentiment_bf16.py [--cell lstm] [--epochs 6] [--threads 2] [--seeds 0 1 2 3 4]

With several seeds, also prints each precision's mean and spread and the mean difference: one
seed's float32 scores alone move by more than a point, so one pair cannot show +-0.5 either way.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

import rnnkit
from rnnkit.data import WordVocab, pad_sequences
from rnnkit.datasets import load_sentiment
from rnnkit.engine.compiled import bf16_kernel
from rnnkit.models import SequenceClassifier


def train_and_test(args, seed: int, bf16: bool) -> tuple[float, float]:
    """Test accuracy and training seconds of one run (float32, or everything under bf16 autocast)."""
    torch.manual_seed(seed)
    d = load_sentiment()
    order = np.random.default_rng(seed).permutation(len(d.x_train))  # the source lists positives first
    x_train, y_train = d.x_train[order], d.y_train[order]
    vocab = WordVocab(num_words=10_000, oov_token="<unk>").fit(list(x_train))

    def encode(texts: np.ndarray) -> np.ndarray:  # (N, 40) word ids, 0-padded at the end
        return pad_sequences(vocab.texts_to_sequences(list(texts)), maxlen=40, padding="post", truncating="post",
                             dtype="int64")

    model = SequenceClassifier(2, vocab_size=vocab.vocab_size, embedding_dim=64, units=64, cell=args.cell,
                               bidirectional=True, dropout=0.4)
    model.compile(rnnkit.optimizers.Adam(2e-3), loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    stop = rnnkit.callbacks.EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    precision = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    start = time.perf_counter()
    with precision:  # the weights stay float32; autocast runs the GEMMs in bf16
        model.fit(encode(x_train), y_train, batch_size=64, epochs=args.epochs, validation_split=0.1, callbacks=[stop],
                  verbose=0)
        seconds = time.perf_counter() - start
        _, accuracy = model.evaluate(encode(d.x_test), d.y_test, batch_size=256, verbose=0)
    return float(accuracy), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bf16 kernel: {bf16_kernel() or 'no compiled loop'}")
    scores: dict[str, list[float]] = {"float32": [], "bf16 autocast": []}
    for seed in args.seeds:
        for name, bf16 in (("float32", False), ("bf16 autocast", True)):
            accuracy, seconds = train_and_test(args, seed, bf16)
            scores[name].append(accuracy)
            print(f"seed {seed}  {name:14s} test accuracy {accuracy:.4f}  (trained in {seconds:.0f} s)", flush=True)
        diff = 100 * (scores["bf16 autocast"][-1] - scores["float32"][-1])
        print(f"seed {seed}  bf16 - float32: {diff:+.2f} points", flush=True)
    if len(args.seeds) > 1:
        for name, accs in scores.items():
            print(f"{name:14s} mean {np.mean(accs):.4f}, sd {np.std(accs, ddof=1):.4f} over seeds {args.seeds}")
    diff = 100 * (np.mean(scores["bf16 autocast"]) - np.mean(scores["float32"]))
    print(f"bf16 - float32, mean over seeds: {diff:+.2f} points ({'within' if abs(diff) <= 0.5 else 'outside'} +-0.5)")


if __name__ == "__main__":
    main()
