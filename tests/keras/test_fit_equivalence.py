"""``fit``'s steps against a plain torch loop over Keras's formulas, bit for bit.

The loop below is what a step means, written out without any of fit's shortcuts: Keras's
sparse crossentropy over the whole renormalised prediction, the masked mean, the float64
global norm for global_clipnorm, torch's optimizer. fit must leave exactly the same weights
after several steps and report the same running loss and accuracy, whatever it computes
cheaper on the way (taking the label's entry first, float32 norms for the guard, counts for
accuracy)."""

from __future__ import annotations

import copy
import math
from typing import Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.keras import callbacks, layers, losses, optimizers
from rnnkit.keras.models import Sequential

EPS = 1e-7


def keras_sparse_ce(y: torch.Tensor, y_pred: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """Keras 3's sparse_categorical_crossentropy per sample: (B[, T])."""
    if from_logits:
        log_p = F.log_softmax(y_pred, -1)
    else:
        p = y_pred / y_pred.sum(-1, keepdim=True)  # renormalise, then clip
        log_p = p.clamp(EPS, 1 - EPS).log()
    return -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def reference_fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, from_logits: bool,
                  mask_of: Optional[torch.Tensor], global_clipnorm: Optional[float]) -> dict[str, list[float]]:
    """Steps over the batches in order: the running mean loss and accuracy after each batch, and
    each step's gradient norm ||G|| (float64, before clipping)."""
    opt = optimizers.Adam().build([p for p in model.parameters()])
    total = count = hits = seen = 0.0
    logs: dict[str, list[float]] = {"loss": [], "accuracy": [], "grad_norm": []}
    for start in range(0, len(x), batch):
        xb, yb = x[start:start + batch], y[start:start + batch]
        out = model(xb)
        values = keras_sparse_ce(yb, out, from_logits)
        if mask_of is not None:
            m = (xb != 0).to(values.dtype)
            loss = (values * m).sum() / m.sum().clamp_min(1.0)
        else:
            loss = values.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = math.hypot(*(float(torch.linalg.vector_norm(g, dtype=torch.float64)) for g in grads))
        if global_clipnorm is not None:
            if norm > global_clipnorm:
                torch._foreach_mul_(grads, global_clipnorm / norm)
        opt.step()
        n = float(len(xb))
        total, count = total + float(loss.detach()) * n, count + n
        out = out.detach()
        right = (out.argmax(-1) == yb).to(out.dtype)
        if mask_of is not None:
            m = (xb != 0).to(out.dtype)
            hits, seen = hits + float((right * m).sum()), seen + float(m.sum())
        else:
            hits, seen = hits + float(right.sum()), seen + right.numel()
        logs["loss"].append(total / count)
        logs["accuracy"].append(hits / seen)
        logs["grad_norm"].append(norm)
    return logs


class Logs(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs))


def seq2seq(from_logits: bool) -> Sequential:
    torch.manual_seed(0)
    return Sequential([layers.Input(shape=(7, 12)), layers.LSTM(16), layers.RepeatVector(4),
                       layers.LSTM(16, return_sequences=True),
                       layers.Dense(12, activation=None if from_logits else "softmax")])


def tagger() -> Sequential:
    torch.manual_seed(0)
    return Sequential([layers.Input(shape=(9,)), layers.Embedding(30, 8, mask_zero=True),
                       layers.LSTM(16, return_sequences=True), layers.Dense(5, activation="softmax")])


@pytest.mark.parametrize("case", ["probabilities", "logits", "masked", "global_clipnorm"])
def test_fit_equals_the_plain_loop_bit_for_bit(case):
    g = np.random.default_rng(0)
    if case == "masked":
        model = tagger()
        x = g.integers(1, 30, (96, 9))
        for i, n in enumerate(g.integers(3, 10, 96)):
            x[i, n:] = 0  # padding at the end of each sequence
        y = g.integers(0, 5, (96, 9))
    else:
        model = seq2seq(case == "logits")
        x = g.random((96, 7, 12), dtype=np.float32)
        y = g.integers(0, 12, (96, 4))
    from_logits = case == "logits"
    clip = 0.05 if case == "global_clipnorm" else None
    model.build((None, *x.shape[1:]))
    reference = copy.deepcopy(model)
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizers.Adam(), loss=loss, metrics=["accuracy"], global_clipnorm=clip)
    logs = Logs()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[logs])
    want = reference_fit(reference, torch.from_numpy(x), torch.from_numpy(y), 16, from_logits,
                                        torch.from_numpy(x) if case == "masked" else None, clip)
    for a, b in zip(reference.parameters(), model.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert [b["loss"] for b in logs.batches] == want["loss"]
    assert [b["accuracy"] for b in logs.batches] == want["accuracy"]
    # ||G|| is exact (float64) where clipping uses it, else float32-accurate (the guard only)
    rel = 1e-12 if clip is not None else 1e-5
    assert [b["grad_norm"] for b in logs.batches] == pytest.approx(want["grad_norm"], rel=rel)
    if case == "global_clipnorm":
        assert all(b["clipped"] for b in logs.batches)
