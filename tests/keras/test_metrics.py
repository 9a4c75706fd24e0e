"""Accuracy summed as a count of hits (no mask, no weights) against the mean of its float values."""

from __future__ import annotations

import pytest
import torch

from rnnkit.keras import metrics


def by_values(fn, y_true, y_pred, mask=None, sample_weight=None, **kwargs):
    total, count = metrics.masked_sums(fn(y_true, y_pred, **kwargs), mask, sample_weight)
    return float(total), float(count)


CASES = {
    "sparse": (metrics.sparse_categorical_accuracy, lambda g: torch.randint(0, 5, (8, 3), generator=g),
               lambda g: torch.rand(8, 3, 5, generator=g), {}),
    "sparse, labels (B, T, 1)": (metrics.sparse_categorical_accuracy, lambda g: torch.randint(0, 5, (8, 3, 1), generator=g),
                                 lambda g: torch.rand(8, 3, 5, generator=g), {}),
    "categorical": (metrics.categorical_accuracy,
                    lambda g: torch.nn.functional.one_hot(torch.randint(0, 4, (8,), generator=g), 4).float(),
                    lambda g: torch.rand(8, 4, generator=g), {}),
    "binary (B,) labels": (metrics.binary_accuracy, lambda g: torch.randint(0, 2, (8,), generator=g).float(),
                           lambda g: torch.rand(8, 1, generator=g), {"threshold": 0.5}),
    "binary from logits": (metrics.binary_accuracy, lambda g: torch.randint(0, 2, (8, 1), generator=g).float(),
                           lambda g: torch.randn(8, 1, generator=g), {"threshold": 0.0}),
    "binary, several units": (metrics.binary_accuracy, lambda g: torch.randint(0, 2, (8, 3), generator=g).float(),
                              lambda g: torch.rand(8, 3, generator=g), {"threshold": 0.5}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_accuracy_counts_equal_the_sum_of_its_values(case):
    fn, make_y, make_p, kwargs = CASES[case]
    g = torch.Generator().manual_seed(0)
    y_true, y_pred = make_y(g), make_p(g)
    metric = metrics.MeanMetricWrapper(fn, "acc", **kwargs)
    total, count = metric.batch_sums(y_true, y_pred)
    assert (float(total), float(count)) == by_values(fn, y_true, y_pred, **kwargs)
    mask = torch.rand(y_pred.shape[:2], generator=g) > 0.3
    if mask.dim() <= y_pred.dim() - 1:  # a mask over (B, T): the float values, weighted
        total, count = metric.batch_sums(y_true, y_pred, mask)
        assert (float(total), float(count)) == by_values(fn, y_true, y_pred, mask, **kwargs)
    weights = torch.rand(y_pred.shape[0], generator=g)
    total, count = metric.batch_sums(y_true, y_pred, sample_weight=weights)
    assert (float(total), float(count)) == by_values(fn, y_true, y_pred, sample_weight=weights, **kwargs)


def test_accuracy_count_is_exact_in_bfloat16():
    y_pred = torch.zeros(3000, 2, dtype=torch.bfloat16)
    y_pred[:, 1] = 1
    metric = metrics.MeanMetricWrapper(metrics.sparse_categorical_accuracy, "acc")
    total, count = metric.batch_sums(torch.ones(3000, dtype=torch.long), y_pred)
    assert (int(total), count) == (3000, 3000)  # bfloat16 cannot hold 3000 (2992, 3008); a count can
