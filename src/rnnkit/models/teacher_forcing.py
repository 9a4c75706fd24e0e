r"""Training an encoder–decoder with a teacher-forcing schedule.

At epoch :math:`e` of :math:`E` the decoder is fed the true previous token with
probability :math:`r_e` and its own prediction otherwise (scheduled sampling,
Bengio et al. 2015). The ratio decays from ``start`` to ``end``:

.. math::
    \text{linear: } r_e = r_0 + (r_1 - r_0)\,\frac{e}{E-1} \qquad
    \text{exponential: } r_e = r_0 \left(\frac{r_1}{r_0}\right)^{e/(E-1)}

Epochs with :math:`r_e = 1` run the decoder over all steps at once; the others step.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import as_ids, check_positive
from .seq2seq import PAD, Seq2Seq

__all__ = ["TeacherForcingSchedule", "fit_seq2seq", "sequence_loss"]

SCHEDULES = ("constant", "linear", "exponential")


@dataclass(frozen=True)
class TeacherForcingSchedule:
    """``schedule(epoch, epochs) -> ratio`` in [0, 1]; ``epoch`` counts from 0."""

    start: float = 1.0
    end: float = 0.5
    kind: str = "linear"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"TeacherForcingSchedule: `{name}` must be a float in [0, 1], got {v!r}")
        if self.kind not in SCHEDULES:
            raise ValueError(f"TeacherForcingSchedule: `kind` must be one of {SCHEDULES}, got {self.kind!r}")
        if self.kind == "exponential" and (self.start == 0 or self.end == 0):
            raise ValueError("TeacherForcingSchedule: an exponential decay needs `start` and `end` > 0")

    def __call__(self, epoch: int, epochs: int) -> float:
        if self.kind == "constant" or epochs <= 1:
            return float(self.start)
        frac = min(max(epoch / (epochs - 1), 0.0), 1.0)
        if self.kind == "linear":
            return float(self.start + (self.end - self.start) * frac)
        return float(self.start * (self.end / self.start) ** frac)


def sequence_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over the non-padding targets: logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)


def _split(tgt: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T) ``<bos> y ... <eos> <pad>...`` -> decoder inputs (B, T-1) and targets (B, T-1)."""
    return tgt[:, :-1], tgt[:, 1:]


@torch.no_grad()
def evaluate_loss(model: Seq2Seq, src: Any, tgt: Any, batch_size: int = 256) -> float:
    """Teacher-forced cross-entropy (nats per target token) over a data set."""
    src_t = as_ids(src, "src", model.src_vocab_size)
    tgt_t = as_ids(tgt, "tgt", model.tgt_vocab_size)
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for i in range(0, len(src_t), batch_size):
            tin, tout = _split(tgt_t[i : i + batch_size])
            logits = model(src_t[i : i + batch_size], tin)
            n = int((tout != PAD).sum())
            total += sequence_loss(logits, tout).item() * n
            count += n
    finally:
        model.train(was)
    return total / max(count, 1)


def fit_seq2seq(model: Seq2Seq, src: Any, tgt: Any, *, epochs: int = 10, batch_size: int = 64,
                learning_rate: float = 3e-3, schedule: Optional[TeacherForcingSchedule] = None,
                clipnorm: Optional[float] = 1.0, validation_data: Optional[tuple[Any, Any]] = None,
                verbose: int = 1, seed: Optional[int] = None, file: Any = None) -> dict[str, list[float]]:
    """Train ``model`` with Adam, a teacher-forcing schedule and gradient clipping.

    Args:
        src: source ids (N, S), right-padded with 0.
        tgt: target ids (N, T) as ``TokenVocab.encode(tokens, add_bos=True, add_eos=True)``,
            right-padded with 0.
        schedule: the teacher-forcing ratio per epoch (default: linear 1.0 -> 0.5).
        clipnorm: the global gradient-norm clip (None: no clipping).
        validation_data: (src, tgt) to report the teacher-forced loss on after each epoch.
        verbose: 1 a tqdm bar per epoch, 2 one line per epoch, 0 silent.
        seed: seeds the batch order and the teacher-forcing coin flips.

    Returns:
        a history: ``{"loss": [...], "val_loss": [...], "teacher_forcing": [...], "time": [...]}``.
    """
    check_positive(epochs, "epochs")
    check_positive(batch_size, "batch_size")
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2, got {verbose!r}")
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"`learning_rate` must be a positive float, got {learning_rate!r}")
    schedule = schedule or TeacherForcingSchedule()
    src_t = as_ids(src, "src", model.src_vocab_size)
    tgt_t = as_ids(tgt, "tgt", model.tgt_vocab_size)
    if len(src_t) != len(tgt_t):
        raise ValueError(f"`src` has {len(src_t)} rows but `tgt` has {len(tgt_t)}")
    if tgt_t.shape[1] < 2:
        raise ValueError(f"`tgt` must hold <bos>, the tokens and <eos> (T >= 2), got shape {tuple(tgt_t.shape)}")
    gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(2**31, ()).item()))
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "teacher_forcing": [], "time": []}
    n = len(src_t)
    for epoch in range(epochs):
        ratio = schedule(epoch, epochs)
        order = torch.randperm(n, generator=gen)
        start, total, count = time.perf_counter(), 0.0, 0
        bar = None
        if verbose == 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=math.ceil(n / batch_size), desc=f"Epoch {epoch + 1}/{epochs}", unit="step",
                       file=file or sys.stderr, dynamic_ncols=True, mininterval=0.2)
        model.train()
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            tin, tout = _split(tgt_t[idx])
            logits = model(src_t[idx], tin, teacher_forcing=ratio, generator=gen)  # (B, T-1, V)
            loss = sequence_loss(logits, tout)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clipnorm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clipnorm)
            opt.step()
            k = int((tout != PAD).sum())
            total, count = total + loss.item() * k, count + k
            if bar is not None:
                bar.set_postfix_str(f"loss {total / count:.4f} tf {ratio:.2f}", refresh=False)
                bar.update(1)
        history["loss"].append(total / max(count, 1))
        history["teacher_forcing"].append(ratio)
        if validation_data is not None:
            history["val_loss"].append(evaluate_loss(model, *validation_data))
        history["time"].append(time.perf_counter() - start)
        line = f"loss {history['loss'][-1]:.4f}" + (
            f" - val_loss {history['val_loss'][-1]:.4f}" if validation_data is not None else "") + f" - tf {ratio:.2f}"
        if bar is not None:
            bar.set_postfix_str(line, refresh=False)
            bar.close()
        elif verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - {history['time'][-1]:.0f}s - {line}", file=file or sys.stdout)
    return history

