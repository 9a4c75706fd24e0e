"""SequenceClassifier's pooling and word dropout; CharLanguageModel's layer norm and zoneout."""

from __future__ import annotations

import pytest
import torch

from rnnkit.models import CharLanguageModel, SequenceClassifier, load_model, save_model


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _ids() -> torch.Tensor:
    x = torch.randint(1, 30, (4, 9))
    x[0, 6:] = 0  # padding at the end of two rows
    x[2, 3:] = 0
    return x


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_pooling_reads_only_the_real_steps(pooling):
    model = SequenceClassifier(3, vocab_size=30, embedding_dim=8, units=5, pooling=pooling).eval()
    x = _ids()
    h = model.rnns[0](model.embedding(x), mask=x != 0)  # (B, T, 2H)
    rows = []
    for b in range(4):
        real = h[b, x[b] != 0]
        rows.append(real.max(0).values if pooling == "max" else real.mean(0))
    torch.testing.assert_close(model(x), model.head(torch.stack(rows)))
    # Padding changes nothing: row 0 without its padded tail gives the same logits.
    torch.testing.assert_close(model(x[[0], :6]), model(x[[0]]))


def test_word_dropout_drops_whole_words_in_training_only():
    model = SequenceClassifier(2, vocab_size=30, embedding_dim=16, units=4, word_dropout=0.5)
    e = torch.randn(64, 10, 16)
    dropped = model.word_drop(e, training=True)
    zero = (dropped == 0).all(-1)  # (B, T): whole word vectors
    assert 0.3 < float(zero.float().mean()) < 0.7
    kept = ~zero
    torch.testing.assert_close(dropped[kept], e[kept] * 2.0)
    torch.testing.assert_close(model.word_drop(e, training=False), e)


def test_new_options_are_saved_and_checked(tmp_path):
    model = SequenceClassifier(2, vocab_size=30, embedding_dim=8, units=4, pooling="max", word_dropout=0.2).eval()
    save_model(model, tmp_path / "c")
    loaded, _ = load_model(tmp_path / "c")
    assert loaded.get_config() == model.get_config()
    x = _ids()
    torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(ValueError, match="`pooling`"):
        SequenceClassifier(2, vocab_size=30, pooling="sum")
    with pytest.raises(ValueError, match="`word_dropout` applies to token-id inputs"):
        SequenceClassifier(2, input_size=3, word_dropout=0.1)


def test_char_lm_layer_norm_and_zoneout(tmp_path):
    model = CharLanguageModel(20, embedding_dim=8, units=12, num_layers=2, layer_norm=True, zoneout=0.1)
    assert all(layer.layer_norm and layer.zoneout == 0.1 for layer in model.rnns)
    plain = CharLanguageModel(20, embedding_dim=8, units=12, num_layers=2)
    assert model.count_params() > plain.count_params()  # gains and shifts of the layer norms
    ids = torch.randint(0, 20, (3, 7))
    assert model(ids).shape == (3, 7, 20)
    model.eval()
    save_model(model, tmp_path / "lm")
    loaded, _ = load_model(tmp_path / "lm")
    torch.testing.assert_close(loaded(ids), model(ids))
    with pytest.raises(ValueError, match="`layer_norm` applies to cell='lstm'"):
        CharLanguageModel(20, cell="gru", layer_norm=True)
