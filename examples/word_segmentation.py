"""Many-to-many, same length: a tagger puts the spaces back into sentences written without them.

Data: the bundled movie-review sentences (VADER, MIT) with their spaces removed; each
character is tagged 1 if a word ends there. A 2-layer bidirectional LSTM tags every
character; padding is masked out of the loss. Prints the word-boundary F1 (inside
sentences) beside a unigram baseline (each character's most frequent tag).

    python examples/word_segmentation.py [--epochs 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit.data import CharVocab
from rnnkit.datasets import load_sentiment
from rnnkit.models import SequenceTagger

MAXLEN = 200


def unspace(sentences: np.ndarray, vocab: CharVocab) -> tuple[np.ndarray, np.ndarray]:
    """'a good film' -> ids of 'agoodfilm' and tags 100010001, both (N, MAXLEN), 0-padded."""
    X = np.zeros((len(sentences), MAXLEN), dtype=np.int64)
    Y = np.zeros_like(X)
    for i, s in enumerate(sentences):
        words = s.split()
        ids = vocab.encode("".join(words))[:MAXLEN]
        X[i, : len(ids)] = ids
        ends = np.cumsum([len(w) for w in words]) - 1
        Y[i, ends[ends < MAXLEN]] = 1
    return X, Y


def f1(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    tp = float(((pred == 1) & (truth == 1) & mask).sum())
    p, r = tp / max(float(((pred == 1) & mask).sum()), 1), tp / max(float(((truth == 1) & mask).sum()), 1)
    return 2 * p * r / (p + r) if tp else 0.0


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
    vocab = CharVocab.fit([s.replace(" ", "") for s in d.x_train], specials=("<pad>",), unk="<unk>")
    X, Y = unspace(d.x_train, vocab)
    Xt, Yt = unspace(d.x_test, vocab)
    model = SequenceTagger(len(vocab), 2, embedding_dim=32, units=64, cell=args.cell, num_layers=2, dropout=0.2)
    model.compile(rnnkit.optimizers.Adam(3e-3), loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(X, Y, batch_size=32, epochs=args.epochs, validation_split=0.1, verbose=2)

    pred = model.predict_tags(Xt)  # (N, MAXLEN), -1 on padding
    inside = (Xt != 0) & (np.arange(MAXLEN) < ((Xt != 0).sum(1) - 1)[:, None])  # sentence ends are free
    unigram = (2 * np.bincount(X[Y == 1], minlength=len(vocab)) > np.bincount(X[X != 0], minlength=len(vocab)))
    text = vocab.decode(Xt[0][Xt[0] != 0])
    print("  " + "".join(c + " " * int(t == 1) for c, t in zip(text, pred[0])).strip()[:100])
    print(f"test word-boundary F1 {f1(pred, Yt, inside):.4f}  (unigram baseline "
          f"{f1(unigram.astype(np.int64)[Xt], Yt, inside):.4f}; {len(Xt)} sentences)  {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
