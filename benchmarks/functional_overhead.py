"""The functional API's cost per training step: the same BiLSTM classifier three ways, interleaved, medians.

    flock /tmp/rnnkit-bench.lock python benchmarks/functional_overhead.py
    python benchmarks/functional_overhead.py --batch 8 --time 10 --units 16 --reps 5   # a smoke run

The model: token ids (B, T) -> Embedding(V, E, mask_zero=True) -> Bidirectional(LSTM(H,
return_sequences=True)) -> Bidirectional(LSTM(H)) -> Dense(1, sigmoid). Built as a
functional ``keras.Model(inputs, outputs)``, as ``Sequential``, and as a hand-written
subclassed ``Model`` whose ``call`` invokes the same layer objects (so all three share one set
of weights and compute the same function). One step = forward, binary cross-entropy,
backward, an SGD update. The three steps run in rotation, ``--reps`` rounds of ``--steps``
steps each; reported: the median time per step of each and the ratios
functional/Sequential and functional/hand-written (issue 14 asks for <= 1.05).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import rnnkit.keras as keras
from rnnkit.keras import layers


class HandWritten(keras.Model):
    def __init__(self, emb, bi1, bi2, head):
        super().__init__()
        self.emb, self.bi1, self.bi2, self.head = emb, bi1, bi2, head

    def call(self, ids):
        mask = self.emb.compute_mask(ids)
        return self.head(self.bi2(self.bi1(self.emb(ids), mask=mask), mask=mask))


def models(vocab: int, emb_dim: int, units: int):
    emb = layers.Embedding(vocab, emb_dim, mask_zero=True)
    bi1 = layers.Bidirectional(layers.LSTM(units, return_sequences=True))
    bi2 = layers.Bidirectional(layers.LSTM(units))
    head = layers.Dense(1, activation="sigmoid")
    ids = keras.Input(shape=(None,), dtype="int64")
    functional = keras.Model(ids, head(bi2(bi1(emb(ids)))))
    sequential = keras.Sequential([emb, bi1, bi2, head])
    return {"functional": functional, "sequential": sequential, "hand-written": HandWritten(emb, bi1, bi2, head)}


def step_fn(model, x, y, opt):
    loss_fn = torch.nn.BCELoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time", type=int, default=80)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--emb", type=int, default=128)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--reps", type=int, default=21, help="timed rounds per variant")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    variants = models(args.vocab, args.emb, args.units)
    x = torch.randint(1, args.vocab, (args.batch, args.time))
    x[: args.batch // 2, args.time // 2 :] = 0  # half the rows padded: the mask matters
    y = torch.randint(0, 2, (args.batch, 1)).float()
    ref = variants["sequential"](x)
    for name, m in variants.items():  # one set of weights: the same function three ways
        torch.testing.assert_close(m(x), ref)
    params = list(variants["sequential"].parameters())
    opt = torch.optim.SGD(params, lr=1e-3)
    steps = {name: step_fn(m, x, y, opt) for name, m in variants.items()}
    for step in steps.values():  # warm-up: kernels built, caches filled
        for _ in range(2):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.reps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads; "
          f"B={args.batch} T={args.time} V={args.vocab} E={args.emb} H={args.units}; "
          f"{args.reps} rounds x {args.steps} steps, medians")
    for name, t in med.items():
        print(f"{name:>13}: {t * 1e3:8.2f} ms/step")
    print(f"functional / sequential   = {med['functional'] / med['sequential']:.3f}")
    print(f"functional / hand-written = {med['functional'] / med['hand-written']:.3f}")


if __name__ == "__main__":
    main()
