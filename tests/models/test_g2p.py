"""Grapheme-to-phoneme on CMUdict: word and phoneme error rates against several references,
the length-bucketed training loop, batched decoding, and the `cmudict` task on a tiny slice.
Nothing here trains to the published score; that run lives in the README."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.datasets import load_cmudict
from rnnkit.models import Seq2Seq, TokenVocab, edit_distance, phoneme_error_rate, word_error_rate
from rnnkit.models.tasks import TASKS, Context, load_task_model, train_task
from rnnkit.models.tasks.translate import _length_batches, decode_words, fit_g2p
from rnnkit.models.vocab import encode_batch


pytestmark = pytest.mark.usefixtures("one_thread_seeded")


def _reference_rates(predicted, references):
    """Word and phoneme error rates written out loop by loop, for comparison."""
    wrong = distance = length = 0
    for p, refs in zip(predicted, references):
        wrong += p not in refs
        best = min(refs, key=lambda r: (edit_distance(p, r), len(r)))
        distance += edit_distance(p, best)
        length += len(best)
    return wrong / len(predicted), distance / length


def test_word_error_rate_accepts_any_reference():
    read = [["R", "IY", "D"], ["R", "EH", "D"]]
    assert word_error_rate([["R", "EH", "D"]], [read]) == 0.0  # the second pronunciation counts
    assert word_error_rate([["R", "AE", "D"]], [read]) == 1.0
    assert word_error_rate([["K", "AE", "T"], ["R", "AE", "D"]], [[["K", "AE", "T"]], read]) == 0.5
    assert word_error_rate([("K", "AE", "T")], [[["K", "AE", "T"]]]) == 0.0  # tuples and lists compare equal


def test_phoneme_error_rate_uses_the_closest_reference():
    # "R AE D" is one substitution from both; a tie goes to the shorter reference.
    refs = [[["R", "IY", "D"], ["R", "EH", "D", "Z"]]]
    assert phoneme_error_rate([["R", "AE", "D"]], refs) == pytest.approx(1 / 3)
    assert phoneme_error_rate([["R", "EH", "D", "Z"]], refs) == 0.0
    assert phoneme_error_rate([[]], [[["A", "B"]]]) == 1.0


def test_rates_match_a_loop_on_random_sequences():
    rng = np.random.default_rng(0)
    symbols = list("ABCD")

    def seq():
        return [symbols[i] for i in rng.integers(0, 4, rng.integers(1, 6))]

    refs = [[seq() for _ in range(rng.integers(1, 4))] for _ in range(200)]
    pred = [r[0] if rng.random() < 0.3 else seq() for r in refs]
    wer, per = _reference_rates(pred, refs)
    assert word_error_rate(pred, refs) == pytest.approx(wer)
    assert phoneme_error_rate(pred, refs) == pytest.approx(per)


@pytest.mark.parametrize("score", [word_error_rate, phoneme_error_rate])
def test_rates_reject_bad_references(score):
    with pytest.raises(ValueError, match="`predicted` has 1 sequences but `reference` has 2"):
        score([["A"]], [[["A"]], [["B"]]])
    with pytest.raises(ValueError, match=r"`references\[0\]` must be a non-empty list of token lists"):
        score([["A"]], [[]])
    with pytest.raises(ValueError, match=r"`references\[0\]` must be a non-empty list of token lists"):
        score([["A"]], [["A B"]])  # one string per reference instead of a token list
    with pytest.raises(ValueError, match="`reference` is empty"):
        score([], [])


def test_length_batches_cover_every_row_once_in_similar_lengths():
    lengths = np.random.default_rng(1).integers(1, 20, 1000)
    batches = _length_batches(lengths, 64, np.random.default_rng(0))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    assert sorted(map(len, batches)) == [1000 % 64] + [64] * (1000 // 64)
    # Cut from the rows sorted by length: in order of their shortest row, the batches never overlap.
    by_start = sorted(batches, key=lambda b: lengths[b].min())
    assert (np.diff(np.concatenate([np.sort(lengths[b]) for b in by_start])) >= 0).all()
    again = _length_batches(lengths, 64, np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(batches, again))  # the same seed, the same batches


def _tiny_data(n=64):
    d = load_cmudict(stress=False)
    words = [list(w) for w in d.x_train[:n]]
    phones = [p.split() for p in d.y_train[:n]]
    sv, tv = TokenVocab.fit(words, unk="<unk>"), TokenVocab.fit(phones)
    return sv, tv, encode_batch(sv, words), encode_batch(tv, phones, add_bos=True, add_eos=True)


def test_fit_g2p_lowers_the_loss_and_decays_the_rate():
    sv, tv, S, T = _tiny_data()
    model = Seq2Seq(len(sv), len(tv), embedding_dim=16, units=16, max_len=30)
    hist = fit_g2p(model, S, T, epochs=4, batch_size=16, learning_rate=1e-2, warmup=2,
                   validation_data=(S[:8], T[:8]), verbose=0)
    assert set(hist) == {"loss", "val_loss", "lr", "time"} and all(len(v) == 4 for v in hist.values())
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["lr"][-1] == pytest.approx(1e-2 * 0.02)  # the cosine ends at 2 % of the peak
    assert hist["lr"][0] > hist["lr"][1] > hist["lr"][2]


@pytest.mark.parametrize("beam", [1, 3])
def test_decode_words_keeps_the_input_order(beam):
    sv, tv, S, _ = _tiny_data(40)
    model = Seq2Seq(len(sv), len(tv), embedding_dim=8, units=8, max_len=12).eval()
    out = decode_words(model, S, beam=beam, batch_size=7)  # batches regrouped by length, results back in place
    for i in (0, 13, 39):
        row = S[i : i + 1, : int((S[i] != 0).sum())]
        one = model.greedy(row)[0] if beam == 1 else model.beam_search(row, beam_size=beam)[0]
        np.testing.assert_array_equal(tv.decode(out[i]), tv.decode(one))


def test_cmudict_task_trains_on_a_slice_and_translates(tmp_path):
    task = TASKS["cmudict"]
    ctx = Context(cell="gru", epochs=1, seed=0, limit=60, verbose=0, options={"stress": True}, out=tmp_path)
    run, paths = train_task(task, ctx)
    names = [s.name for s in run.scores]
    assert names == ["word error rate (beam 5)", "phoneme error rate (beam 5)"]
    assert all(not s.higher_is_better and 0 <= s.value for s in run.scores)
    results = json.loads(paths["results"].read_text())
    assert results["options"] == {"stress": True} and len(results["history"]["lr"]) == 1
    model, extras, name = load_task_model(tmp_path)
    assert name == "cmudict" and extras["stress"] is True
    assert any(t[-1].isdigit() for t in extras["tgt_vocab"]["tokens"])  # stress digits kept
    lines = task.translate(model, extras, ["Rhythm", "cat"], beam=3)
    assert [line.split("\t")[0] for line in lines] == ["Rhythm", "cat"]
    with pytest.raises(ValueError, match="symbols the model never saw"):
        task.translate(model, extras, ["caté"])
