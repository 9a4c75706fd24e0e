"""rnnkit.models: every architecture's shapes, gradients and one training step on tiny slices of
the bundled data; sampling, greedy and beam decoding; saving; and the errors users meet."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.data import CharVocab, WordVocab, make_windows, pad_sequences
from rnnkit.datasets import load_digits_captions, load_pydoc_text, load_sentiment, load_sunspots, make_dates
from rnnkit.models import (CharLanguageModel, ConditionalGenerator, Forecaster, OneToOne, Seq2Seq,
                           SequenceClassifier, SequenceTagger, TeacherForcingSchedule, TokenVocab, edit_distance,
                           fit_seq2seq, load_model, sample_logits, save_model, sequence_accuracy, text_streams,
                           token_error_rate)
from rnnkit.models.teacher_forcing import evaluate_loss
from rnnkit.models.vocab import encode_batch


@pytest.fixture(autouse=True)
def _small_and_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny shapes: threads only add overhead
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _ce():
    return rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True)


def _grads_everywhere(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    for name, p in model.named_parameters():
        if any(s in name for s in skip):
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for p in model.parameters() if p.grad is not None)


def _step_changes_weights(model, x, y) -> float:
    before = [p.detach().clone() for p in model.parameters()]
    loss = model.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, list) else loss
    assert math.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    return loss


# ----------------------------------------------------------------------------- many-to-one


def _sentences(n: int = 32, maxlen: int = 20):
    d = load_sentiment()
    idx = np.linspace(0, len(d.x_train) - 1, n).astype(int)  # both labels: the source is sorted
    vocab = WordVocab(num_words=500, oov_token="<unk>").fit(list(d.x_train[idx]))
    x = pad_sequences(vocab.texts_to_sequences(list(d.x_train[idx])), maxlen=maxlen, padding="post", dtype="int64")
    return vocab, x, d.y_train[idx]


@pytest.mark.parametrize("cell,bidirectional,layers", [("lstm", True, 1), ("gru", False, 2), ("rnn", True, 2)])
def test_classifier_on_sentences_shapes_grads_and_a_step(cell, bidirectional, layers):
    vocab, x, y = _sentences()
    model = SequenceClassifier(2, vocab_size=vocab.vocab_size, embedding_dim=8, units=8, cell=cell,
                               bidirectional=bidirectional, num_layers=layers)
    logits = model(torch.as_tensor(x))
    assert logits.shape == (len(x), 2)
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)).backward()
    _grads_everywhere(model)
    model.compile("adam", loss=_ce(), metrics=["accuracy"])
    _step_changes_weights(model, x, y)
    assert model.predict_proba(x[:3]).shape == (3, 2)


def test_classifier_padding_side_does_not_matter():
    vocab, x, _ = _sentences(8)
    model = SequenceClassifier(2, vocab_size=vocab.vocab_size, embedding_dim=8, units=8).eval()
    seqs = [row[row != 0] for row in x]
    pre = pad_sequences(seqs, maxlen=24, padding="pre", dtype="int64")
    post = pad_sequences(seqs, maxlen=24, padding="post", dtype="int64")
    with torch.no_grad():
        torch.testing.assert_close(model(torch.as_tensor(pre)), model(torch.as_tensor(post)), rtol=1e-5, atol=1e-6)


def test_classifier_on_series():
    from rnnkit.datasets import load_ucr

    d = load_ucr("BasicMotions")
    model = SequenceClassifier(len(d.classes), input_size=6, units=8, cell="gru")
    x = d.x_train[:8]
    assert model(torch.as_tensor(x)).shape == (8, 4)
    model.compile("adam", loss=_ce())
    _step_changes_weights(model, x, d.y_train[:8])
    with pytest.raises(ValueError, match=r"\(B, T, 6\)"):
        model(torch.zeros(2, 5, 3))


def test_forecaster_works_in_data_units_over_a_horizon():
    d = load_sunspots()
    X, y = make_windows(d.train[:80], lookback=12, horizon=3)
    model = Forecaster(1, 3, units=8).adapt(d.train)
    assert model.loc.item() == pytest.approx(float(np.mean(d.train)), rel=1e-5)
    with torch.no_grad():
        out = model(torch.as_tensor(X))
    assert out.shape == (len(X), 3)
    # The head starts near zero, so the first forecasts sit near the training mean (data units).
    assert abs(float(out.mean()) - float(np.mean(d.train))) < 2 * float(np.std(d.train))
    model.compile("adam", loss="mse")
    _step_changes_weights(model, X, y)
    assert model(torch.as_tensor(X[:, :, 0])).shape == (len(X), 3)  # (B, T) is read as F = 1


# -------------------------------------------------------------------- many-to-many, same length


def test_tagger_masks_padding_out_of_loss_and_metrics():
    vocab = CharVocab.fit(["hello world", "abc"], specials=("<pad>",))
    x = np.zeros((2, 12), dtype=np.int64)
    x[0, :11], x[1, :3] = vocab.encode("hello world"), vocab.encode("abc")
    y = (x % 2).astype(np.int64)
    model = SequenceTagger(len(vocab), 2, embedding_dim=4, units=6, num_layers=2)
    assert model(torch.as_tensor(x)).shape == (2, 12, 2)
    model.compile("adam", loss=_ce(), metrics=["accuracy"])
    model.eval()
    loss = model.evaluate(x, y, verbose=0)
    y2 = y.copy()
    y2[x == 0] = 1 - y2[x == 0]  # change only the padded tags
    assert model.evaluate(x, y2, verbose=0) == pytest.approx(loss)
    assert (model.predict_tags(x)[x == 0] == -1).all()
    model.train()
    _step_changes_weights(model, x, y)


def _pydoc_windows(T: int = 16, n: int = 8):
    text = load_pydoc_text().text[:5000]
    vocab = CharVocab.fit(text)
    ids = vocab.encode(text)
    x = np.stack([ids[i * T : (i + 1) * T] for i in range(n)])
    y = np.stack([ids[i * T + 1 : (i + 1) * T + 1] for i in range(n)])
    return vocab, x, y


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_char_lm_shapes_grads_step_and_generation(cell):
    vocab, x, y = _pydoc_windows()
    model = CharLanguageModel(len(vocab), embedding_dim=8, units=16, cell=cell, num_layers=2)
    logits = model(torch.as_tensor(x))
    assert logits.shape == (8, 16, len(vocab))
    torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), torch.as_tensor(y).reshape(-1)).backward()
    _grads_everywhere(model)
    model.compile("adam", loss=_ce())
    _step_changes_weights(model, x, y)
    out = model.generate(vocab.encode("def "), 10, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(1))
    assert out.shape == (10,) and out.dtype == np.int64
    assert model.generate(x[:3, :4], 5, temperature=0.0).shape == (3, 5)


def test_generation_greedy_three_ways_and_a_stepwise_state_equals_the_full_pass():
    vocab, x, _ = _pydoc_windows()
    model = CharLanguageModel(len(vocab), embedding_dim=8, units=16).eval()
    prompt = vocab.encode("class ")
    greedy = model.generate(prompt, 12, temperature=0.0)
    assert (model.generate(prompt, 12, temperature=1.5, top_k=1) == greedy).all()
    assert (model.generate(prompt, 12, temperature=1e-6, generator=torch.Generator().manual_seed(3)) == greedy).all()
    # By hand: argmax of the full pass over prompt + what was generated so far.
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(model(torch.as_tensor([ids]))[0, -1].argmax()))
    assert ids[len(prompt) :] == greedy.tolist()


def test_text_streams_are_consecutive_pieces_and_y_is_x_shifted():
    ids = np.arange(23)
    x, y = text_streams(ids, 4)  # L = 22 // 4 = 5; ids 20..22 left out
    assert x.shape == y.shape == (4, 5)
    assert (x.ravel() == np.arange(20)).all() and (y == x + 1).all()
    with pytest.raises(ValueError, match="`batch_size`"):
        text_streams(ids, 0)
    with pytest.raises(ValueError, match="too few for 30 streams"):
        text_streams(ids, 30)
    with pytest.raises(ValueError, match=r"`ids` must have shape \(N,\)"):
        text_streams(ids.reshape(1, -1), 2)


def test_stream_loss_carries_the_state_as_one_full_pass_does():
    """stream_loss over chunks equals the cross-entropy of one pass over the whole text (float64),
    whatever the chunk; the fit tbptt over text_streams sees the same windows (fit's own tests)."""
    vocab, x, _ = _pydoc_windows()
    ids = x.ravel()[:50]
    model = CharLanguageModel(len(vocab), embedding_dim=8, units=16, num_layers=2).double().eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(ids[:-1])[None])[0]
        expected = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(ids[1:])))
    for chunk in (1, 7, 49, 1000):
        assert abs(model.stream_loss(ids, chunk=chunk) - expected) < 1e-10
    assert model.training is False
    model.train()
    model.stream_loss(ids)
    assert model.training  # restored
    with pytest.raises(ValueError, match=r"N >= 2"):
        model.stream_loss(ids[:1])
    with pytest.raises(ValueError, match="another vocabulary"):
        model.stream_loss([0, len(vocab)])


def test_sample_logits_temperature_top_k_and_seeding():
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.0, -1.0]]).repeat(2000, 1)
    assert (sample_logits(logits, 0.0) == 2).all()
    assert (sample_logits(logits, 1.0, top_k=1) == 2).all()
    draws = sample_logits(logits, 1.0, top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {2, 3}  # only the two largest
    p3 = float((draws == 3).float().mean())
    assert p3 == pytest.approx(1 / (1 + math.e), abs=0.04)  # softmax over {3, 2} at temperature 1
    hot = sample_logits(logits, 5.0, generator=torch.Generator().manual_seed(0))
    assert len(set(hot.tolist())) == 5  # high temperature reaches every token
    a = sample_logits(logits[:50], 1.0, generator=torch.Generator().manual_seed(7))
    b = sample_logits(logits[:50], 1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    for bad in (dict(temperature=-1.0), dict(temperature=float("nan")), dict(top_k=0), dict(top_k=1.5)):
        with pytest.raises(ValueError, match="temperature|top_k"):
            sample_logits(logits, **{"temperature": 1.0, **bad})


# ------------------------------------------------------------------- many-to-many, other lengths


def _dates(n: int = 48):
    pairs = make_dates(n, seed=0)
    src, tgt = [list(s) for s in pairs.x], [t.split() for t in pairs.y]
    sv, tv = TokenVocab.fit(src), TokenVocab.fit(tgt)
    return sv, tv, encode_batch(sv, src), encode_batch(tv, tgt, add_bos=True, add_eos=True), tgt


@pytest.mark.parametrize("attention,cell", [("luong", "lstm"), ("bahdanau", "gru")])
def test_seq2seq_shapes_grads_and_teacher_forcing_paths(attention, cell):
    sv, tv, S, T, _ = _dates(6)
    model = Seq2Seq(len(sv), len(tv), embedding_dim=8, units=12, cell=cell, attention=attention, dropout=0.0)
    src, tin = torch.as_tensor(S), torch.as_tensor(T[:, :-1])
    logits = model(src, tin)
    assert logits.shape == (6, T.shape[1] - 1, len(tv))
    torch.nn.functional.cross_entropy(logits.reshape(-1, len(tv)), torch.as_tensor(T[:, 1:]).reshape(-1)).backward()
    _grads_everywhere(model)
    model.eval()
    with torch.no_grad():
        # Full teacher forcing runs the decoder in one call; step by step it must give the same logits.
        memory, state = model.encode(src)
        steps = []
        for t in range(tin.shape[1]):
            out, state, _ = model.decode(tin[:, t : t + 1], memory, state)
            steps.append(out)
        torch.testing.assert_close(torch.cat(steps, 1), model(src, tin), rtol=1e-5, atol=1e-5)
        free = model(src, tin, teacher_forcing=0.0)  # fed its own argmax
    assert free.shape == logits.shape


def test_beam_of_one_is_greedy_and_wider_beams_decode():
    sv, tv, S, T, _ = _dates(10)
    model = Seq2Seq(len(sv), len(tv), embedding_dim=8, units=12, max_len=8)
    fit_seq2seq(model, S, T, epochs=1, batch_size=5, verbose=0, seed=0)
    greedy, attention = model.greedy(S, return_attention=True)
    assert np.array_equal(model.beam_search(S, beam_size=1), greedy)
    assert attention.shape == (10, greedy.shape[1], S.shape[1])
    np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)
    assert (attention[..., :][S[:, None, :].repeat(greedy.shape[1], 1) == 0] == 0).all()  # padding gets no weight
    wide = model.beam_search(S, beam_size=4, length_penalty=0.6)
    assert wide.shape[0] == 10 and wide.shape[1] <= 8
    for row in np.concatenate([greedy, wide[:, : greedy.shape[1]]]):
        ended = np.flatnonzero(row == TokenVocab.eos_id)
        if len(ended):
            assert (row[ended[0] + 1 :] == 0).all()  # after <eos> only padding


def test_fit_seq2seq_learns_with_a_decaying_schedule():
    sv, tv, S, T, tgt = _dates(64)
    model = Seq2Seq(len(sv), len(tv), embedding_dim=8, units=16, dropout=0.0)
    before = evaluate_loss(model, S, T)
    hist = fit_seq2seq(model, S, T, epochs=3, batch_size=16, learning_rate=1e-2, verbose=0, seed=0,
                       schedule=TeacherForcingSchedule(1.0, 0.5), validation_data=(S[:8], T[:8]))
    assert hist["teacher_forcing"] == [1.0, 0.75, 0.5]
    assert len(hist["loss"]) == len(hist["val_loss"]) == 3
    assert evaluate_loss(model, S, T) < before
    pred = [tv.decode(r) for r in model.greedy(S)]
    assert 0.0 <= sequence_accuracy(pred, tgt) <= 1.0 and token_error_rate(pred, tgt) >= 0.0


def test_teacher_forcing_schedules():
    assert [TeacherForcingSchedule(1.0, 0.0)(e, 5) for e in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    exp = TeacherForcingSchedule(1.0, 0.25, "exponential")
    assert [round(exp(e, 3), 6) for e in range(3)] == [1.0, 0.5, 0.25]
    assert TeacherForcingSchedule(0.8, 0.1, "constant")(3, 10) == 0.8
    assert TeacherForcingSchedule(1.0, 0.5)(0, 1) == 1.0
    for bad in (dict(start=1.5), dict(end=-0.1), dict(kind="cosine"), dict(kind="exponential", end=0.0)):
        with pytest.raises(ValueError, match="TeacherForcingSchedule"):
            TeacherForcingSchedule(**bad)


# --------------------------------------------------------------------------- one-to-many, one-to-one


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_generator_conditions_on_a_vector_and_feeds_back_its_tokens(cell):
    d = load_digits_captions()
    words = [str(w) for w in d.y_train[:16]]
    vocab = TokenVocab.fit(words)
    Y = encode_batch(vocab, words, add_bos=True, add_eos=True)
    model = ConditionalGenerator(64, len(vocab), embedding_dim=8, units=16, cell=cell, max_len=8)
    logits = model([torch.as_tensor(d.x_train[:16]), torch.as_tensor(Y[:, :-1])])
    assert logits.shape == (16, Y.shape[1] - 1, len(vocab))
    model.compile("adam", loss=_ce(), metrics=["accuracy"])
    _step_changes_weights(model, [d.x_train[:16], Y[:, :-1]], Y[:, 1:])
    out = model.generate(d.x_test[:5])
    assert out.shape[0] == 5 and out.shape[1] <= 8
    assert np.array_equal(model.generate(d.x_test[:5], temperature=2.0, top_k=1), out)
    # Different images start from different states, so the first-step distributions differ.
    state = model.start_state(d.x_test[:2])
    assert not torch.allclose(state[0][0], state[0][1])


def test_one_to_one_never_uses_its_recurrent_weights():
    d = load_digits_captions()
    model = OneToOne(64, 10, units=16, cell="lstm")
    logits = model(torch.as_tensor(d.x_train[:32]))
    assert logits.shape == (32, 10)
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(d.digits_train[:32])).backward()
    # T = 1 from a zero state: U h_0 = 0, so the recurrent kernel gets no gradient. It is an MLP.
    assert float(model.rnn.cell.weight_hh.grad.abs().max()) == 0.0
    assert float(model.rnn.cell.weight_ih.grad.abs().max()) > 0.0
    model.compile("adam", loss=_ce(), metrics=["accuracy"])
    _step_changes_weights(model, d.x_train[:32], d.digits_train[:32])


# ------------------------------------------------------------------------------------- saving


def _all_models():
    sv, tv, S, T, _ = _dates(4)
    vocab, x, _ = _sentences(4)
    d = load_digits_captions()
    return [
        (SequenceClassifier(2, vocab_size=vocab.vocab_size, embedding_dim=4, units=4), torch.as_tensor(x)),
        (Forecaster(1, 2, units=4).adapt(np.arange(10.0)), torch.randn(3, 5, 1)),
        (SequenceTagger(20, 3, embedding_dim=4, units=4), torch.randint(1, 20, (3, 6))),
        (CharLanguageModel(20, embedding_dim=4, units=8), torch.randint(0, 20, (3, 6))),
        (Seq2Seq(len(sv), len(tv), embedding_dim=4, units=6), (torch.as_tensor(S), torch.as_tensor(T[:, :-1]))),
        (ConditionalGenerator(64, 8, embedding_dim=4, units=6),
         [torch.as_tensor(d.x_test[:3]), torch.ones(3, 4, dtype=torch.long)]),
        (OneToOne(64, 10, units=4), torch.as_tensor(d.x_test[:3])),
    ]


def test_save_and_load_every_architecture(tmp_path):
    for model, x in _all_models():
        model.eval()
        with torch.no_grad():
            want = model(*x) if isinstance(x, tuple) else model(x)
        save_model(model, tmp_path / type(model).__name__, note="kept")
        loaded, extras = load_model(tmp_path / f"{type(model).__name__}.json")
        assert type(loaded) is type(model) and extras == {"note": "kept"}
        with torch.no_grad():
            got = loaded(*x) if isinstance(x, tuple) else loaded(x)
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_loading_into_the_wrong_vocabulary_size_is_refused(tmp_path):
    save_model(CharLanguageModel(20, embedding_dim=4, units=8), tmp_path / "lm")
    config = (tmp_path / "lm.json").read_text().replace('"vocab_size": 20', '"vocab_size": 21')
    (tmp_path / "lm.json").write_text(config)
    with pytest.raises(ValueError, match="shape"):
        load_model(tmp_path / "lm")
    with pytest.raises(FileNotFoundError, match="no saved model"):
        load_model(tmp_path / "missing")
    with pytest.raises(TypeError, match="Sequential"):
        save_model(rnnkit.Sequential([rnnkit.Dense(2, input_dim=3)]), tmp_path / "seq")


# ------------------------------------------------------------------------------------- errors


def test_clear_errors_for_bad_arguments_tokens_and_shapes():
    with pytest.raises(ValueError, match="exactly one of `vocab_size`"):
        SequenceClassifier(2)
    with pytest.raises(ValueError, match="exactly one of `vocab_size`"):
        SequenceClassifier(2, vocab_size=10, input_size=3)
    with pytest.raises(ValueError, match="`cell`.*'lstm', 'gru', 'rnn'.*'transformer'"):
        CharLanguageModel(10, cell="transformer")
    with pytest.raises(ValueError, match="`vocab_size`"):
        CharLanguageModel(1)
    with pytest.raises(ValueError, match="`attention`"):
        Seq2Seq(10, 10, attention="dot-product")
    with pytest.raises(ValueError, match="`dropout`"):
        SequenceTagger(10, 2, dropout=1.0)
    lm = CharLanguageModel(10, embedding_dim=4, units=4)
    with pytest.raises(ValueError, match=r"ids in \[1, 12\].*10 ids.*another vocabulary"):
        lm.generate([1, 12], 3)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        lm(torch.randn(2, 3))
    s2s = Seq2Seq(10, 10, embedding_dim=4, units=4)
    with pytest.raises(ValueError, match="vocabulary has 10 ids"):
        s2s.greedy(torch.tensor([[3, 11]]))
    with pytest.raises(ValueError, match="at least one token"):
        s2s.greedy(torch.tensor([[3, 4], [0, 0]]))
    with pytest.raises(TypeError, match="integer token ids"):
        s2s.greedy(torch.randn(2, 3))
    with pytest.raises(ValueError, match="`beam_size`"):
        s2s.beam_search(torch.tensor([[3]]), beam_size=11)
    gen = ConditionalGenerator(64, 8, units=4)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        gen.generate(np.zeros((2, 63), np.float32))
    with pytest.raises(ValueError, match="two inputs"):
        gen(torch.zeros(2, 64))
    vocab = TokenVocab(["AE", "K", "T"])
    assert vocab.decode(vocab.encode(["K", "AE", "T"], add_bos=True, add_eos=True)) == ["K", "AE", "T"]
    with pytest.raises(ValueError, match="token 'ZH' at position 1 is not in the vocabulary"):
        vocab.encode(["K", "ZH"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([7])
    assert TokenVocab(["a"], unk="<unk>").encode("ab").tolist() == [4, 3]


def test_edit_distance_and_scores():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert sequence_accuracy([["a"], ["b"]], [["a"], ["c"]]) == 0.5
    assert token_error_rate([["a", "b"]], [["a", "c", "d"]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 sequences"):
        sequence_accuracy([["a"], ["b"]], [["a"]])
