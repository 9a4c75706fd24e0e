"""Many-to-one: a bidirectional LSTM reads a movie-review sentence and says positive or negative.

Data: 10,043 sentences with the mean of ~20 human ratings (VADER, MIT; bundled), the
sign of the rating is the label. Prints test accuracy beside the majority-class baseline.

    python examples/sentiment_bilstm.py [--cell lstm] [--epochs 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit.data import WordVocab, pad_sequences
from rnnkit.datasets import load_sentiment
from rnnkit.models import SequenceClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    d = load_sentiment()
    order = np.random.default_rng(args.seed).permutation(len(d.x_train))  # the source lists positives first
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
    model.fit(encode(x_train), y_train, batch_size=64, epochs=args.epochs, validation_split=0.1, callbacks=[stop],
              verbose=2)

    _, accuracy = model.evaluate(encode(d.x_test), d.y_test, batch_size=256, verbose=0)
    majority = int(np.bincount(y_train).argmax())
    baseline = float(np.mean(d.y_test == majority))
    for text, p in zip(d.x_test[:3], model.predict_proba(encode(d.x_test[:3]))):
        print(f"  {'positive' if p.argmax() else 'negative'} {p.max():.2f}  {text[:70]}")
    print(f"test accuracy {accuracy:.4f}  (majority-class baseline {baseline:.4f}; {len(d.x_test)} sentences)  "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
