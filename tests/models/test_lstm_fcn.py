"""rnnkit.models.LSTMFCN: shapes, the documented parameter count, padding and masks, saving, one training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.datasets import load_ucr
from rnnkit.models import LSTMFCN, load_model, save_model

SMALL = dict(filters=(6, 8, 5), kernel_sizes=(5, 3, 3), units=4)


pytestmark = pytest.mark.usefixtures("one_thread_seeded")


@pytest.mark.parametrize("F,T,C", [(1, 24, 2), (6, 30, 4)])
def test_logits_shape_and_gradients_reach_every_weight(F, T, C):
    model = LSTMFCN(C, input_size=F, length=T, **SMALL)
    x = torch.randn(5, T, F)
    logits = model(x, training=True)
    assert logits.shape == (5, C)
    logits.sum().backward()
    for name, p in model.named_parameters():
        # With F = 1 the LSTM takes one step from a zero state, so its recurrent weights get no gradient.
        if p.requires_grad and not (F == 1 and name.endswith("weight_hh")):
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("kw", [{}, SMALL, dict(filters=(16,), kernel_sizes=(7,), units=3),
                                dict(SMALL, cell="gru"), dict(SMALL, cell="rnn")])
def test_parameter_count_matches_the_documented_formula(kw):
    model = LSTMFCN(3, input_size=2, length=40, **kw)
    assert model.count_params() == LSTMFCN.expected_params(3, 2, 40, **kw)
    # The formula by hand for the paper's defaults: F=2, T=40, H=8, C=3.
    if not kw:
        conv = (8 * 2 * 128 + 128) + (5 * 128 * 256 + 256) + (3 * 256 * 128 + 128)
        assert model.count_params() == conv + 4 * (128 + 256 + 128) + 4 * 8 * (40 + 8 + 1) + (128 + 8) * 3 + 3


def test_the_fcn_branch_is_three_same_padded_conv_blocks_pooled():
    model = LSTMFCN(2, input_size=3, length=20, **SMALL).eval()
    x = torch.randn(4, 20, 3)
    h = x
    for conv, norm in zip(model.convs, model.norms):
        h = conv(h)
        assert h.shape[:2] == (4, 20)  # "same" padding keeps T
        mean, var = norm.moving_mean, norm.moving_variance
        h = torch.relu((h - mean) / torch.sqrt(var + norm.epsilon) * norm.gamma + norm.beta)
    assert h.shape == (4, 20, 5)
    rnn = model.rnn(x.transpose(1, 2))  # dimension shuffle: F=3 steps of T=20 features
    assert rnn.shape == (4, 4)
    expected = model.head(torch.cat([h.mean(1), rnn], -1))
    torch.testing.assert_close(model(x), expected)


def test_nan_padding_equals_the_shorter_series_and_an_explicit_mask():
    model = LSTMFCN(2, input_size=2, length=16, **SMALL).eval()
    x = torch.randn(3, 16, 2)
    short = x[:, :11]
    padded = x.clone()
    padded[:, 11:] = math.nan
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[:, :11] = True
    a = model(padded)
    torch.testing.assert_close(a, model(short))  # inputs shorter than T are padded by the model
    torch.testing.assert_close(a, model(x, mask=mask))  # whatever stands on masked steps is ignored
    torch.testing.assert_close(a, model(short, mask=mask[:, :11].numpy()))  # a short series with its mask
    assert not torch.allclose(a, model(x))  # and the padding does change the answer
    assert torch.isfinite(a).all()


def test_series_without_padding_take_the_unmasked_path_with_the_masked_values_and_gradients():
    torch.manual_seed(0)
    model = LSTMFCN(3, input_size=2, length=12, **SMALL).double()
    x = torch.randn(4, 12, 2, dtype=torch.float64)
    out, start = {}, {k: v.clone() for k, v in model.state_dict().items()}
    for label, mask in (("unmasked", None), ("masked", torch.ones(4, 12, dtype=torch.bool))):
        model.load_state_dict(start)  # the same moving statistics before each call
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout draws
        logits = model(x, mask=mask, training=True)
        logits.pow(2).sum().backward()
        out[label] = (logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                      [norm.moving_mean.clone() for norm in model.norms])
    torch.testing.assert_close(out["unmasked"][0], out["masked"][0])
    assert out["unmasked"][1].keys() == out["masked"][1].keys()
    for name, grad in out["unmasked"][1].items():
        torch.testing.assert_close(grad, out["masked"][1][name], msg=name)
    for a, b in zip(out["unmasked"][2], out["masked"][2]):  # the moving statistics too
        torch.testing.assert_close(a, b)


def test_padding_is_left_out_of_the_batch_statistics():
    model = LSTMFCN(2, input_size=1, length=12, **SMALL)
    x = torch.randn(2, 12, 1)
    padded = x.clone()
    padded[0, 7:] = math.nan
    model(padded, training=True)
    stats = model.norms[0].moving_mean.clone()
    model.norms[0].reset_parameters()
    m = torch.ones(2, 12, dtype=torch.bool)
    m[0, 7:] = False
    model(x, mask=m, training=True)
    torch.testing.assert_close(model.norms[0].moving_mean, stats)


def test_missing_values_inside_a_series_read_as_zero():
    model = LSTMFCN(2, input_size=2, length=10, **SMALL).eval()
    x = torch.randn(1, 10, 2)
    holed = x.clone()
    holed[0, 4, 1] = math.nan
    zeroed = x.clone()
    zeroed[0, 4, 1] = 0.0
    torch.testing.assert_close(model(holed), model(zeroed))


def test_bad_inputs_and_arguments_are_named():
    model = LSTMFCN(2, input_size=1, length=10, **SMALL)
    with pytest.raises(ValueError, match=r"T <= 10"):
        model(torch.randn(2, 11, 1))
    with pytest.raises(ValueError, match=r"\(B, T, 1\)"):
        model(torch.randn(2, 10, 3))
    with pytest.raises(ValueError, match="`mask`"):
        model(torch.randn(2, 10, 1), mask=torch.ones(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="same length"):
        LSTMFCN(2, input_size=1, length=10, filters=(4, 4), kernel_sizes=(3,))
    with pytest.raises(ValueError, match="`length`"):
        LSTMFCN(2, input_size=1, length=0)
    with pytest.raises(ValueError, match="`cell`"):
        LSTMFCN(2, input_size=1, length=10, cell="lstmm")
    with pytest.raises(ValueError, match="`dropout`"):
        LSTMFCN(2, input_size=1, length=10, dropout=1.0)


def test_save_and_load_give_the_same_model(tmp_path):
    model = LSTMFCN(4, input_size=6, length=25, **SMALL)
    x = torch.randn(3, 25, 6)
    model(x, training=True)  # moves the batch statistics away from their initial values
    model.eval()
    save_model(model, tmp_path / "m", dataset="toy")
    loaded, extras = load_model(tmp_path / "m")
    assert type(loaded) is LSTMFCN and extras == {"dataset": "toy"}
    assert loaded.get_config() == model.get_config()
    torch.testing.assert_close(loaded(x), model(x))


def test_a_short_training_run_fits_a_slice_of_italy_power_demand():
    d = load_ucr("ItalyPowerDemand")
    idx = np.arange(0, 60, 2)
    x, y = d.x_train[idx], d.y_train[idx]
    model = LSTMFCN(2, input_size=1, length=24, filters=(16, 16, 16), units=4)
    model.compile(rnnkit.optimizers.Adam(1e-2), loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=32, epochs=15, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    proba = model.predict_proba(x)
    assert proba.shape == (30, 2)
    np.testing.assert_allclose(proba.sum(-1), 1.0, rtol=1e-5)
