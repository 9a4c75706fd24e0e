"""Many-to-many, same length: a character-level LSTM language model, and sampling from it.

Data: CPython's pydoc topics (the text ``help("if")`` shows; PSF-2.0; read from the running
Python), split 90/5/5 % by position. The training text is cut into 64 consecutive streams, trained
by truncated BPTT (windows of 100 steps, the state carried from window to window), with a cosine
learning-rate decay over the epochs. Prints test bits per character two ways: over windows of 100
characters each read from a zero state (as before: comparable with older rows), and over the whole
test text read as one stream with the state carried; beside a unigram baseline. Then samples at a
few temperatures / top-k settings (temperature 0 is greedy).

    python examples/char_lm.py [--epochs 15] [--units 512] [--dropout 0.4] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import rnnkit
from rnnkit.data import CharVocab
from rnnkit.datasets import load_pydoc_text
from rnnkit.models import CharLanguageModel, text_streams


def windows(ids: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    n = (len(ids) - 1) // T
    return ids[: n * T].reshape(n, T), ids[1 : n * T + 1].reshape(n, T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    d = load_pydoc_text()
    vocab = CharVocab.fit(d.text)  # the whole text, so valid/test characters have ids
    X, Y = text_streams(vocab.encode(d.train), 64)  # (64, 6539): one batch, 66 windows of 100 per epoch
    Xv, Yv = windows(vocab.encode(d.valid), 100)
    Xt, Yt = windows(vocab.encode(d.test), 100)
    model = CharLanguageModel(len(vocab), embedding_dim=32, units=args.units, cell=args.cell, dropout=args.dropout)
    model.compile(rnnkit.optimizers.Adam(args.lr, global_clipnorm=1.0),
                  loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True))
    cosine = rnnkit.callbacks.LearningRateScheduler(
        lambda epoch, lr: args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs)))
    stop = rnnkit.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    model.fit(X, Y, batch_size=64, epochs=args.epochs, tbptt=100, validation_data=(Xv, Yv),
              callbacks=[cosine, stop], verbose=2)

    bits = model.evaluate(Xt, Yt, batch_size=64, verbose=0) / math.log(2)  # windows of 100 from zero states
    stream_bits = model.stream_loss(vocab.encode(d.test)) / math.log(2)  # the whole test text, state carried
    counts = np.bincount(X.ravel(), minlength=len(vocab)) + 1.0  # add-one smoothed unigram
    unigram = float(-np.mean(np.log2(counts[Yt.ravel()] / counts.sum())))
    gen = torch.Generator().manual_seed(args.seed)
    for temperature, top_k in ((0.0, None), (0.7, 10), (1.0, None)):
        text = vocab.decode(model.generate(vocab.encode("The "), 160, temperature, top_k, generator=gen))
        print(f"--- temperature {temperature}, top-k {top_k}:\nThe {text}")
    print(f"test bits per character {bits:.3f} over windows of 100, {stream_bits:.3f} as one stream  "
          f"(unigram baseline {unigram:.3f}; {Yt.size:,} / {len(d.test) - 1:,} characters)  "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
