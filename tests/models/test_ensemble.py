"""rnnkit.models.Ensemble: the mean of the members' probabilities, saving, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.models import LSTMFCN, Ensemble, SequenceClassifier, load_model, save_model


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _members(k: int = 3) -> list[LSTMFCN]:
    return [LSTMFCN(3, input_size=2, length=12, filters=(4, 6, 4), units=3).eval() for _ in range(k)]


def test_the_output_is_the_log_of_the_mean_probability():
    members = _members()
    ensemble = Ensemble(members).eval()
    x = torch.randn(5, 12, 2)
    mean = torch.stack([torch.softmax(m(x), -1) for m in members]).mean(0)
    torch.testing.assert_close(ensemble(x), torch.log(mean))
    np.testing.assert_allclose(ensemble.predict_proba(x.numpy()), mean.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert ensemble.count_params() == sum(m.count_params() for m in members)


def test_one_member_is_that_member():
    (member,) = _members(1)
    x = torch.randn(4, 12, 2)
    torch.testing.assert_close(torch.softmax(Ensemble([member]).eval()(x), -1), torch.softmax(member(x), -1))


def test_save_and_load_rebuild_every_member(tmp_path):
    ensemble = Ensemble(_members(2)).eval()
    save_model(ensemble, tmp_path / "e", classes=["a", "b", "c"])
    loaded, extras = load_model(tmp_path / "e")
    assert extras == {"classes": ["a", "b", "c"]}
    assert [type(m) for m in loaded.members] == [LSTMFCN, LSTMFCN]
    x = torch.randn(3, 12, 2)
    torch.testing.assert_close(loaded(x), ensemble(x))


def test_members_must_agree_on_the_classes():
    with pytest.raises(ValueError, match="one number of classes"):
        Ensemble([_members(1)[0], SequenceClassifier(2, input_size=2, units=4)])
    with pytest.raises(ValueError, match="non-empty list"):
        Ensemble([])
    with pytest.raises(ValueError, match="unknown ensemble member class"):
        Ensemble.from_config({"members": [{"class_name": "Nope", "config": {}}]})
