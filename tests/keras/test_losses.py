"""The crossentropies' cheaper forms against Keras's formulas written out: values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit.keras import losses

EPS = losses.EPSILON


def reference_sparse_ce(y: torch.Tensor, y_pred: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """Keras 3: renormalise the whole prediction, clip it, log, then the label's entry."""
    if from_logits:
        log_p = F.log_softmax(y_pred, -1)
    else:
        p = y_pred / y_pred.sum(-1, keepdim=True)
        log_p = p.clamp(EPS, 1 - EPS).log()
    return -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def predictions(shape: tuple[int, ...], from_logits: bool, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(shape, generator=g, dtype=dtype) * 3
    if from_logits:
        return z
    p = z.exp()  # positive, rows not summing to one: the renormalisation matters
    p[0, ..., 0] = 1e-12  # a clipped-low entry
    p[1, ..., :] = 1e-12
    p[1, ..., 2] = 1.0  # a clipped-high entry (p ~ 1 after renormalising)
    return p


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("shape", [(6, 5), (6, 4, 5)])
def test_sparse_crossentropy_matches_keras_values_and_gradients(from_logits, shape):
    y_pred = predictions(shape, from_logits, torch.float64).requires_grad_()
    y = torch.randint(0, shape[-1], shape[:-1], generator=torch.Generator().manual_seed(1))
    y[0] = 0  # the clipped-low entries are labels
    y[1] = 2
    weights = torch.rand(shape[:-1], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ours = losses.sparse_categorical_crossentropy(y, y_pred, from_logits)
    (d_ours,) = torch.autograd.grad((ours * weights).sum(), y_pred)
    ref = reference_sparse_ce(y, y_pred, from_logits)
    (d_ref,) = torch.autograd.grad((ref * weights).sum(), y_pred)
    torch.testing.assert_close(ours, ref, rtol=1e-15, atol=0)
    torch.testing.assert_close(d_ours, d_ref, rtol=1e-15, atol=0)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_crossentropy_in_float32_is_the_same_bits(from_logits):
    """Taking the label's entry first changes no value: every step after the sum is elementwise."""
    y_pred = predictions((16, 7, 11), from_logits, torch.float32)
    if not from_logits:
        y_pred = y_pred.log().softmax(-1)  # a softmax output, as from a model
    y_pred.requires_grad_()
    y = torch.randint(0, 11, (16, 7), generator=torch.Generator().manual_seed(3))
    ours = losses.sparse_categorical_crossentropy(y, y_pred, from_logits)
    (d_ours,) = torch.autograd.grad(ours.mean(), y_pred)
    ref = reference_sparse_ce(y, y_pred, from_logits)
    (d_ref,) = torch.autograd.grad(ref.mean(), y_pred)
    assert torch.equal(ours, ref) and torch.equal(d_ours, d_ref)


def test_sparse_crossentropy_shapes_and_bad_labels():
    y_pred = torch.full((3, 4), 0.25)
    assert losses.sparse_categorical_crossentropy(torch.tensor([[0], [1], [3]]), y_pred).shape == (3,)
    logits = torch.zeros(4)
    assert losses.sparse_categorical_crossentropy(torch.tensor(2), logits, from_logits=True).shape == ()
    with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
        losses.sparse_categorical_crossentropy(torch.tensor([0, 1, 4]), y_pred)
    with pytest.raises(ValueError, match=r"labels of shape y_pred.shape\[:-1\]"):
        losses.sparse_categorical_crossentropy(torch.tensor([0, 1]), y_pred)
