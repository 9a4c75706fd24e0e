"""Many-to-many, different lengths: an encoder-decoder with attention turns spellings into sounds.

Data: the CMU Pronouncing Dictionary (BSD; bundled), letters -> ARPAbet phonemes without
stress: --words (30,000) of its training words, spread evenly, and the first pronunciation of
each; scored on the first pronunciation of 3,000 of its test words (--data dates/numbers:
generated pairs). The whole dictionary with every pronunciation is `rnnkit train cmudict`.
Training feeds the true previous phoneme with a probability that decays 1.0 -> --tf-end
(0.6) over the epochs (scheduled sampling); decoding is greedy and by beam search. Prints word and
phoneme error rates, and the test perplexity beside a unigram baseline.

    python examples/seq2seq_attention.py [--data cmudict] [--words 30000] [--attention luong] [--epochs 12] [--beam 4]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

import numpy as np
import torch

from rnnkit.datasets import group_pronunciations, load_cmudict, make_dates, make_number_words
from rnnkit.models import (Seq2Seq, TeacherForcingSchedule, TokenVocab, fit_seq2seq, sequence_accuracy,
                           token_error_rate)
from rnnkit.models.teacher_forcing import evaluate_loss
from rnnkit.models.vocab import encode_batch


def _spread(items: list, n: int) -> list:
    """At most n items, evenly spread (the dictionary is sorted)."""
    return items if n >= len(items) else [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def pairs(name: str, words: int) -> tuple[list, list, list, list]:
    if name == "cmudict":
        d = load_cmudict(stress=False)
        train, test = group_pronunciations(d.x_train, d.y_train), group_pronunciations(d.x_test, d.y_test)
        tr, te = _spread(list(train), words), _spread(list(test), max(words // 10, 1))
        return [list(w) for w in tr], [train[w][0].split() for w in tr], \
               [list(w) for w in te], [test[w][0].split() for w in te]
    make = make_dates if name == "dates" else lambda n, seed: make_number_words(n, seed, max_value=999_999)
    tr, te = make(20_000, seed=0), make(2_000, seed=1)
    return [list(x) for x in tr.x], [y.split() for y in tr.y], [list(x) for x in te.x], [y.split() for y in te.y]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="cmudict", choices=["cmudict", "dates", "numbers"])
    parser.add_argument("--words", type=int, default=30_000, help="cmudict: training words (test: a tenth as many)")
    parser.add_argument("--attention", default="luong", choices=["luong", "bahdanau"])
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--tf-end", type=float, default=0.6, help="teacher-forcing ratio at the last epoch (1: always)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    src, tgt, src_t, tgt_t = pairs(args.data, args.words)
    sv, tv = TokenVocab.fit(src, unk="<unk>"), TokenVocab.fit(tgt)
    S, T = encode_batch(sv, src), encode_batch(tv, tgt, add_bos=True, add_eos=True)
    St, Tt = encode_batch(sv, src_t), encode_batch(tv, tgt_t, add_bos=True, add_eos=True)
    val = np.arange(len(S)) % 20 == 0  # every 20th pair validates (the dictionary is sorted)
    model = Seq2Seq(len(sv), len(tv), embedding_dim=48, units=128, cell=args.cell, attention=args.attention,
                    dropout=0.1, max_len=max(map(len, tgt)) + 6)
    schedule = TeacherForcingSchedule(1.0, args.tf_end, "linear")
    fit_seq2seq(model, S[~val], T[~val], epochs=args.epochs, batch_size=64, learning_rate=3e-3, schedule=schedule,
                validation_data=(S[val], T[val]), verbose=2, seed=args.seed)
    trained = time.perf_counter() - start

    greedy = [tv.decode(r) for r in model.greedy(St)]
    beam = [tv.decode(r) for r in model.beam_search(St, beam_size=args.beam)]
    for w, g, b, t in list(zip(src_t, greedy, beam, tgt_t))[:5]:
        print(f"  {''.join(w):<14} greedy {' '.join(g):<22} beam {' '.join(b):<22} truth {' '.join(t)}")
    counts = Counter(x for seq in tgt for x in [*seq, "<eos>"])  # add-one smoothed unigram over targets
    total = sum(counts.values()) + len(tv)
    unigram = -np.mean([math.log((counts.get(x, 0) + 1) / total) for seq in tgt_t for x in [*seq, "<eos>"]])
    print(f"test perplexity {math.exp(evaluate_loss(model, St, Tt)):.3f} per target token  "
          f"(unigram baseline {math.exp(unigram):.3f})")
    for name, pred in (("greedy", greedy), (f"beam {args.beam}", beam)):
        print(f"{name}: sequence error rate {1 - sequence_accuracy(pred, tgt_t):.4f}, "
              f"token error rate {token_error_rate(pred, tgt_t):.4f}")
    print(f"{len(src_t)} test pairs; trained in {trained:.0f} s, {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
