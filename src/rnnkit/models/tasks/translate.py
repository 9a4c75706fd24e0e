"""Many-to-many (different lengths) recipes: spelling -> pronunciation (G2P), digits -> words, ISO -> spelled dates."""

from __future__ import annotations

import math
import sys
import time
import zlib
from collections import Counter
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ...datasets import group_pronunciations, load_cmudict, make_dates, make_number_words
from ..scores import phoneme_error_rate, sequence_accuracy, token_error_rate, word_error_rate
from ..seq2seq import Seq2Seq
from ..teacher_forcing import TeacherForcingSchedule, evaluate_loss, fit_seq2seq, sequence_loss
from ..vocab import TokenVocab, encode_batch
from .base import Context, Run, Score, Task

Pairs = tuple[list[list[str]], list[list[str]]]


def unigram_nats(train: Sequence[Sequence[str]], test: Sequence[Sequence[str]]) -> float:
    """Nats per target token (``<eos>`` included) of a unigram model of the training targets, add-one smoothed."""
    counts = Counter(t for seq in train for t in [*seq, "<eos>"])
    vocab = set(counts) | {t for seq in test for t in seq}
    total = sum(counts.values()) + len(vocab)
    tokens = [t for seq in test for t in [*seq, "<eos>"]]
    return float(-np.mean([math.log((counts.get(t, 0) + 1) / total) for t in tokens]))


class Seq2SeqTask(Task):
    """Shared recipe; subclasses give the pairs and how to split a source string into tokens."""

    default_cell = "lstm"
    default_epochs = 8
    units, embedding_dim, batch_size = 128, 48, 64
    input_help = "source texts"

    def pairs(self, ctx: Context) -> tuple[Pairs, Pairs]:
        raise NotImplementedError

    def source_tokens(self, text: str) -> list[str]:
        return list(text)

    def join(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)

    def train(self, ctx: Context) -> Run:
        (src, tgt), (src_t, tgt_t) = self.pairs(ctx)
        train, test = ctx.pick(len(src)), ctx.pick(len(src_t))
        src, tgt = [src[i] for i in train], [tgt[i] for i in train]
        src_t, tgt_t = [src_t[i] for i in test], [tgt_t[i] for i in test]
        sv, tv = TokenVocab.fit(src, unk="<unk>"), TokenVocab.fit(tgt)  # unseen source symbols -> <unk>
        # Every 20th training pair reports a validation loss (CMUdict is sorted: take them spread out).
        val = np.arange(len(src)) % 20 == 0
        S, Tg = encode_batch(sv, src), encode_batch(tv, tgt, add_bos=True, add_eos=True)
        St = encode_batch(sv, src_t, maxlen=None)
        ctx.say(f"data: {int((~val).sum()):,} train / {int(val.sum()):,} validation / {len(src_t):,} test pairs; "
                f"{len(sv)} source and {len(tv)} target symbols")
        attention = ctx.options.get("attention") or "luong"
        model = Seq2Seq(len(sv), len(tv), embedding_dim=self.embedding_dim, units=self.units, cell=ctx.cell,
                        attention=attention, dropout=0.1, max_len=max(len(t) for t in tgt) + 6)
        schedule = TeacherForcingSchedule(1.0, 0.6, "linear")
        hist = fit_seq2seq(model, S[~val], Tg[~val], epochs=ctx.epochs, batch_size=self.batch_size,
                           schedule=schedule, validation_data=(S[val], Tg[val]), verbose=1 if ctx.verbose else 0,
                           seed=ctx.seed)
        pred = [tv.decode(r) for r in model.greedy(St)]
        # Test perplexity needs every test token in the target vocabulary: unknown ones are skipped here.
        known = [i for i, t in enumerate(tgt_t) if all(tok in tv.stoi for tok in t)]
        Tt = encode_batch(tv, [tgt_t[i] for i in known], add_bos=True, add_eos=True)
        ppl = math.exp(evaluate_loss(model, St[known], Tt)) if known else float("nan")
        base_ppl = math.exp(unigram_nats(tgt, [tgt_t[i] for i in known]))
        top = Counter(tuple(t) for t in tgt).most_common(1)[0][0]
        scores = [
            Score("sequence accuracy (greedy)", sequence_accuracy(pred, tgt_t),
                  sequence_accuracy([list(top)] * len(tgt_t), tgt_t), f"the most frequent output {self.join(top)!r}"),
            Score("perplexity per target token", ppl, base_ppl, "unigram target-token frequencies",
                  higher_is_better=False),
        ]
        notes = [f"token error rate (greedy): {token_error_rate(pred, tgt_t):.4f}", "examples (greedy):"]
        notes += [f"  {''.join(s)} -> {self.join(p)}   (truth: {self.join(t)})"
                  for s, p, t in zip(src_t[:4], pred[:4], tgt_t[:4])]
        history = {"loss": hist["loss"], "val_loss": hist["val_loss"], "teacher_forcing": hist["teacher_forcing"]}
        return Run(model, history, scores, notes=notes, loss_name="cross-entropy per target token (nats)",
                   extras={"src_vocab": sv.get_config(), "tgt_vocab": tv.get_config(), **self.saved_options(ctx)})

    def saved_options(self, ctx: Context) -> dict[str, Any]:
        """What ``translate`` needs besides the vocabularies (a user's file: how to split texts into tokens)."""
        return {}

    def translate(self, model: Seq2Seq, extras: dict[str, Any], inputs: Sequence[str], beam: int = 1) -> list[str]:
        sv, tv = TokenVocab.from_config(extras["src_vocab"]), TokenVocab.from_config(extras["tgt_vocab"])
        split, join = self.tokenizer(extras)
        if not inputs:
            raise ValueError("give at least one input to translate")
        rows = []
        for i, text in enumerate(inputs):
            tokens = split(text)
            if not tokens:
                raise ValueError(f"input {i} is empty")
            unknown = sorted({t for t in tokens if t not in sv.stoi})
            if unknown:
                raise ValueError(f"input {i} ({text!r}) holds symbols the model never saw: {unknown}; "
                                 f"it knows {''.join(sv.tokens)!r}")
            rows.append(sv.encode(tokens))
        S = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
        for i, r in enumerate(rows):
            S[i, : len(r)] = r
        ids = model.greedy(S) if beam == 1 else model.beam_search(S, beam_size=beam)
        return [f"{text}\t{join(tv.decode(r))}" for text, r in zip(inputs, ids)]

    def tokenizer(self, extras: dict[str, Any]) -> tuple[Callable[[str], list[str]], Callable[[Sequence[str]], str]]:
        """How a saved model's source texts split into tokens, and how its output tokens join into a text."""
        return self.source_tokens, self.join

    def predict(self, model: nn.Module, extras: dict[str, Any], inputs: Sequence[str]) -> list[str]:
        return self.translate(model, extras, inputs)  # type: ignore[arg-type]


def _length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices in batches of similar source length (random within a length), in random batch order.

    Words are short (most 5–10 letters, a few 20+): batches of one length waste little on
    padding, and the time loop runs only as long as the batch's longest word.
    """
    order = np.argsort(lengths + rng.random(len(lengths)), kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _crop(ids: torch.Tensor) -> torch.Tensor:
    """Drop the columns that are padding in every row: (B, L) -> (B, L') with L' the longest row."""
    return ids[:, : max(int((ids != 0).sum(1).max()), 1)]


def fit_g2p(model: Seq2Seq, src: np.ndarray, tgt: np.ndarray, *, epochs: int, batch_size: int = 256,
            learning_rate: float = 3e-3, warmup: int = 300, validation_data: Optional[tuple[Any, Any]] = None,
            seed: int = 0, verbose: int = 1) -> dict[str, list[float]]:
    """Train with full teacher forcing on length buckets, Adam, a warmup then a cosine learning-rate decay.

    src (N, S) and tgt (N, T) as for ``fit_seq2seq``. The rate rises linearly over ``warmup``
    steps, then falls along a half cosine to 2 % of ``learning_rate`` at the last step.
    Full teacher forcing runs the decoder over all steps in one call (scheduled sampling
    steps one token at a time, several times slower on the CPU).
    Returns per epoch: "loss", "val_loss" (teacher-forced, if ``validation_data``), "lr" (at the epoch's end), "time".
    """
    S, T = torch.as_tensor(src), torch.as_tensor(tgt)
    lengths = (S != 0).sum(1).numpy()
    rng = np.random.default_rng(seed)
    steps = epochs * math.ceil(len(S) / batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)

    def rate(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup)
        return warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step / steps, 1.0))))

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "lr": [], "time": []}
    for epoch in range(epochs):
        batches = _length_batches(lengths, batch_size, rng)
        start, total, count = time.perf_counter(), 0.0, 0
        bar = tqdm(total=len(batches), desc=f"Epoch {epoch + 1}/{epochs}", unit="step", file=sys.stderr,
                   dynamic_ncols=True, mininterval=1.0, disable=not verbose)
        model.train()
        for idx in batches:
            rows = torch.as_tensor(idx)
            s, t = _crop(S[rows]), _crop(T[rows])
            logits = model(s, t[:, :-1])  # (B, T-1, V)
            loss = sequence_loss(logits, t[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            schedule.step()
            k = int((t[:, 1:] != 0).sum())
            total, count = total + loss.item() * k, count + k
            bar.set_postfix_str(f"loss {total / count:.4f}", refresh=False)
            bar.update(1)
        bar.close()
        history["loss"].append(total / max(count, 1))
        if validation_data is not None:
            history["val_loss"].append(evaluate_loss(model, *validation_data))
        history["lr"].append(schedule.get_last_lr()[0])
        history["time"].append(time.perf_counter() - start)
    return history


def decode_words(model: Seq2Seq, src: np.ndarray, beam: int = 1, batch_size: int = 256) -> list[np.ndarray]:
    """Ids (N, S) -> N decoded id rows, greedy (``beam=1``) or by beam search, in batches of similar length."""
    order = np.argsort((src != 0).sum(1), kind="stable")
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(src)
    for i in range(0, len(order), batch_size):
        rows = order[i : i + batch_size]
        batch = src[rows][:, : int((src[rows] != 0).sum(1).max())]
        ids = model.greedy(batch) if beam == 1 else model.beam_search(batch, beam_size=beam)
        for r, row in zip(rows, ids):
            out[r] = row
    return out


class CMUDictTask(Seq2SeqTask):
    """Grapheme-to-phoneme conversion on the whole CMU Pronouncing Dictionary.

    Trains on every pronunciation of the 113,460 training words and scores the 12,592
    held-out words (``load_cmudict``'s split by a hash of the word) with beam search:
    word error rate (a word is right when the output equals any of its pronunciations)
    and phoneme error rate (edit distance to the closest pronunciation).
    """

    name = "cmudict"
    summary = "grapheme-to-phoneme: the whole CMU Pronouncing Dictionary, 126,052 words -> ARPAbet (BSD)"
    shape = "many-to-many, different lengths: letters -> phonemes"
    default_epochs = 5
    units, embedding_dim, batch_size = 128, 64, 256
    learning_rate, dropout, beam = 3e-3, 0.2, 5

    def train(self, ctx: Context) -> Run:
        stress = bool(ctx.options.get("stress", False))
        d = load_cmudict(stress=stress)
        train_refs = group_pronunciations(d.x_train, d.y_train)
        test_refs = group_pronunciations(d.x_test, d.y_test)
        words = list(train_refs)
        words = [words[i] for i in ctx.pick(len(words))]
        test_words = list(test_refs)
        test_words = [test_words[i] for i in ctx.pick(len(test_words))]
        # A validation curve from 1 in 40 training words (by a hash, never a test word: crc32 % 10 == 0 there).
        val_words = {w for w in words if zlib.crc32(w.encode()) % 40 == 1} if len(words) >= 40 else set()
        src = [list(w) for w in words if w not in val_words for _ in train_refs[w]]
        tgt = [p.split() for w in words if w not in val_words for p in train_refs[w]]
        src_v = [list(w) for w in val_words for _ in train_refs[w]]
        tgt_v = [p.split() for w in val_words for p in train_refs[w]]
        # Validation phonemes join the target vocabulary (a small --limit slice may miss some in training).
        sv, tv = TokenVocab.fit(src, unk="<unk>"), TokenVocab.fit(tgt + tgt_v)
        S, T = encode_batch(sv, src), encode_batch(tv, tgt, add_bos=True, add_eos=True)
        val = (encode_batch(sv, src_v), encode_batch(tv, tgt_v, add_bos=True, add_eos=True)) if val_words else None
        ctx.say(f"data: {len(src):,} pronunciations of {len(words) - len(val_words):,} training words, "
                f"{len(val_words):,} validation words, {len(test_words):,} test words; {len(sv)} source and "
                f"{len(tv)} target symbols ({'with' if stress else 'without'} stress)")
        model = Seq2Seq(len(sv), len(tv), embedding_dim=self.embedding_dim, units=self.units, cell=ctx.cell,
                        attention=ctx.options.get("attention") or "luong", dropout=self.dropout,
                        max_len=max(len(t) for t in tgt) + 6)
        hist = fit_g2p(model, S, T, epochs=ctx.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                       validation_data=val, seed=ctx.seed, verbose=ctx.verbose)
        refs = [[p.split() for p in test_refs[w]] for w in test_words]
        St = encode_batch(sv, [list(w) for w in test_words], maxlen=None)
        greedy = [tv.decode(r) for r in decode_words(model, St, beam=1)]
        beam = [tv.decode(r) for r in decode_words(model, St, beam=self.beam)]
        top = Counter(tuple(t) for t in tgt).most_common(1)[0][0]
        constant = [list(top)] * len(refs)
        k = self.beam
        scores = [
            Score(f"word error rate (beam {k})", word_error_rate(beam, refs), word_error_rate(constant, refs),
                  f"the most frequent pronunciation {self.join(top)!r}", higher_is_better=False),
            Score(f"phoneme error rate (beam {k})", phoneme_error_rate(beam, refs), phoneme_error_rate(constant, refs),
                  f"the most frequent pronunciation {self.join(top)!r}", higher_is_better=False),
        ]
        notes = [f"greedy: word error rate {word_error_rate(greedy, refs):.4f}, "
                 f"phoneme error rate {phoneme_error_rate(greedy, refs):.4f}",
                 "published word error rates on CMUdict (their own split of 12,000 test words, no stress): "
                 "BiLSTM encoder-decoder 23.55% (Yao & Zweig 2015), DBLSTM-CTC + 5-gram 21.3% (Rao et al. 2015), "
                 "attention 20.24% (Toshniwal & Livescu 2016)",
                 f"examples (beam {k}):"]
        notes += [f"  {w} -> {self.join(p)}   (truth: {' | '.join(self.join(r) for r in rs)})"
                  for w, p, rs in list(zip(test_words, beam, refs))[:4]]
        return Run(model, hist, scores, notes=notes, loss_name="cross-entropy per target token (nats)",
                   extras={"src_vocab": sv.get_config(), "tgt_vocab": tv.get_config(), "stress": stress})

    def source_tokens(self, text: str) -> list[str]:
        return list(text.strip().lower())


class NumbersTask(Seq2SeqTask):
    name = "numbers"
    summary = "digits -> English words, e.g. 342 -> three hundred forty two (generated, 0-999,999)"
    shape = "many-to-many, different lengths: digits -> words"
    default_epochs = 6

    def pairs(self, ctx: Context) -> tuple[Pairs, Pairs]:
        tr = make_number_words(20_000, seed=ctx.seed, max_value=999_999)
        te = make_number_words(2_000, seed=ctx.seed + 10_000, max_value=999_999)
        return ([list(x) for x in tr.x], [y.split() for y in tr.y]), ([list(x) for x in te.x], [y.split() for y in te.y])

    def source_tokens(self, text: str) -> list[str]:
        return list(text.strip())


class DatesTask(Seq2SeqTask):
    name = "dates"
    summary = "ISO dates -> spelled dates, e.g. 2024-03-07 -> 7 march 2024 (generated, 1950-2049)"
    shape = "many-to-many, different lengths: characters -> words"
    default_epochs = 4

    def pairs(self, ctx: Context) -> tuple[Pairs, Pairs]:
        tr = make_dates(20_000, seed=ctx.seed)
        te = make_dates(2_000, seed=ctx.seed + 10_000)
        return ([list(x) for x in tr.x], [y.split() for y in tr.y]), ([list(x) for x in te.x], [y.split() for y in te.y])

    def source_tokens(self, text: str) -> list[str]:
        return list(text.strip())
