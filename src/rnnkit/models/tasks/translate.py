"""Many-to-many (different lengths) recipes: spelling -> pronunciation, digits -> words, ISO -> spelled dates."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
from torch import nn

from ...datasets import load_cmudict, make_dates, make_number_words
from ..scores import sequence_accuracy, token_error_rate
from ..seq2seq import Seq2Seq
from ..teacher_forcing import TeacherForcingSchedule, evaluate_loss, fit_seq2seq
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


class CMUDictTask(Seq2SeqTask):
    name = "cmudict"
    summary = "spell -> pronounce: 30,000 CMU Pronouncing Dictionary words to ARPAbet phonemes (BSD)"
    shape = "many-to-many, different lengths: letters -> phonemes"

    def pairs(self, ctx: Context) -> tuple[Pairs, Pairs]:
        d = load_cmudict(stress=False)
        return ([list(w) for w in d.x_train], [p.split() for p in d.y_train]), \
               ([list(w) for w in d.x_test], [p.split() for p in d.y_test])

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
