"""Character LM on the bundled pydoc text: minGRU and minLSTM against GRU and LSTM, the same wall-clock budget each.

Every cell gets the same model (``rnnkit.models.CharLanguageModel``: Embedding(V, 32), two
recurrent layers of ``--units``, Dense(V)), the same optimiser and ``--seconds`` of training on
windows of ``--T`` characters; then test bits per character. A cell that trains faster sees
more batches in the budget: that is the comparison. Prints a markdown table.

    python examples/min_rnn_char_lm.py                        # 120 s per cell (~9 min)
    python examples/min_rnn_char_lm.py --seconds 30 --cells mingru,lstm
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from rnnkit.data import CharVocab
from rnnkit.datasets import load_pydoc_text
from rnnkit.engine.kernels import load_kernels
from rnnkit.models import CharLanguageModel


def windows(ids: np.ndarray, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = (len(ids) - 1) // T
    x, y = ids[: n * T].reshape(n, T), ids[1 : n * T + 1].reshape(n, T)
    return torch.from_numpy(x).long(), torch.from_numpy(y).long()


def bits_per_char(model: CharLanguageModel, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i : i + batch])
            total += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[i : i + batch].flatten(),
                                                             reduction="sum"))
    model.train()
    return total / y.numel() / math.log(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="mingru,minlstm,gru,lstm")
    parser.add_argument("--seconds", type=float, default=120.0, help="training time per cell")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--T", type=int, default=200, help="characters per training window")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_kernels()  # a first run builds the C++ kernels (~1 min): not on any cell's clock

    d = load_pydoc_text()
    vocab = CharVocab.fit(d.text)
    X, Y = windows(vocab.encode(d.train), args.T)
    Xt, Yt = windows(vocab.encode(d.test), 100)
    print(f"char LM, {len(vocab)} symbols, {args.layers} x {args.units} units, windows of {args.T}, "
          f"{args.seconds:.0f} s per cell, {args.threads} threads")
    print("| cell | test bits/char | batches | seconds |\n|---|---|---|---|")
    for cell in args.cells.split(","):
        torch.manual_seed(args.seed)
        model = CharLanguageModel(len(vocab), embedding_dim=32, units=args.units, cell=cell,
                                  num_layers=args.layers, dropout=0.1)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        gen = torch.Generator().manual_seed(args.seed)
        start, batches = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            idx = torch.randint(0, len(X), (args.batch_size,), generator=gen)
            logits = model(X[idx], training=True)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), Y[idx].flatten())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            batches += 1
        seconds = time.perf_counter() - start
        print(f"| {cell} | {bits_per_char(model, Xt, Yt):.3f} | {batches} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
