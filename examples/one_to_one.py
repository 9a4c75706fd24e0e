"""One-to-one: one 8x8 digit image -> its class, through a recurrent cell run for a single step.

With T = 1 and a zero initial state the recurrent weights multiply zeros: the "RNN" is
a feed-forward (gated) layer, and its recurrent kernel never receives a gradient. This
script shows both: the accuracy beside the majority-class baseline, and the gradient
that reaches the recurrent kernel (exactly zero). Compare examples/digit_captions.py,
the same images as a one-to-many problem.

    python examples/one_to_one.py [--epochs 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnkit
from rnnkit.datasets import load_digits_captions
from rnnkit.models import OneToOne


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    d = load_digits_captions()
    model = OneToOne(64, 10, units=64, cell=args.cell, dropout=0.1)
    model.compile(rnnkit.optimizers.Adam(3e-3), loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(d.x_train, d.digits_train, batch_size=32, epochs=args.epochs, validation_split=0.1, verbose=0)
    _, accuracy = model.evaluate(d.x_test, d.digits_test, verbose=0)

    model.zero_grad()
    logits = model(torch.as_tensor(d.x_train[:256]))
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(d.digits_train[:256])).backward()
    cell = model.rnn.cell
    print(f"gradient reaching the recurrent kernel U: max |dL/dU| = {float(cell.weight_hh.grad.abs().max()):g}; "
          f"input kernel W: {float(cell.weight_ih.grad.abs().max()):.3g}")
    baseline = float(np.mean(d.digits_test == np.bincount(d.digits_train).argmax()))
    print(f"test accuracy {accuracy:.4f}  (majority-class baseline {baseline:.4f}; {len(d.x_test)} images)  "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
