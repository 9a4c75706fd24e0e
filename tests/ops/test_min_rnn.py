"""The step math and the log-space scan of ``rnnkit.ops.min_rnn``."""

from __future__ import annotations

import pytest
import torch

from rnnkit.ops import min_rnn

DT = torch.float64


def test_g_is_continuous_positive_and_log_g_is_its_log():
    x = torch.linspace(-30, 30, 601, dtype=DT)
    assert (min_rnn.g(x) > 0).all()
    torch.testing.assert_close(min_rnn.log_g(x), torch.log(min_rnn.g(x)), rtol=1e-13, atol=0)
    x1 = x.clone().requires_grad_()
    (dg,) = torch.autograd.grad(min_rnn.g(x1).sum(), [x1])
    torch.testing.assert_close(min_rnn.g_grad(x), dg)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_log_coefficients_are_the_logs_and_the_step_is_the_paper(kind):
    k = 4 * torch.randn(5, 3 * min_rnn.MIN_KINDS[kind], dtype=DT)
    a, b = min_rnn.coefficients(k, kind)
    log_a, log_b = min_rnn.log_coefficients(k, kind)
    torch.testing.assert_close(log_a, torch.log(a), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(log_b, torch.log(b), rtol=1e-13, atol=1e-14)
    h = torch.randn(5, 3, dtype=DT)
    blocks = k.chunk(min_rnn.MIN_KINDS[kind], dim=-1)
    if kind == "mingru":
        z = torch.sigmoid(blocks[0])
        want = (1 - z) * h + z * min_rnn.g(blocks[1])
    else:
        i, f = torch.sigmoid(blocks[0]), torch.sigmoid(blocks[1])
        want = f / (f + i) * h + i / (f + i) * min_rnn.g(blocks[2])
    torch.testing.assert_close(min_rnn.min_step(k, h, kind), want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_coefficients_backward_is_the_gradient(kind):
    k = (3 * torch.randn(4, 2 * min_rnn.MIN_KINDS[kind], dtype=DT)).requires_grad_()
    da, db = torch.randn(4, 2, dtype=DT), torch.randn(4, 2, dtype=DT)
    a, b = min_rnn.coefficients(k, kind)
    (want,) = torch.autograd.grad((a * da).sum() + (b * db).sum(), [k])
    torch.testing.assert_close(min_rnn.coefficients_backward(k.detach(), kind, da, db), want, rtol=1e-12, atol=1e-14)


def sequential_scan(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def test_scan_log_equals_the_sequential_recurrence_over_a_long_sequence():
    """T = 2000: the products of a's underflow long before the end; the log form does not care."""
    gen = torch.Generator().manual_seed(0)
    k = torch.randn(2, 2000, 6, generator=gen, dtype=DT)
    h0 = torch.randn(2, 3, generator=gen, dtype=DT)
    a, b = min_rnn.coefficients(k, "mingru")
    log_a, log_b = min_rnn.log_coefficients(k, "mingru")
    assert float(log_a.sum(1).min()) < -745  # exp(sum log a) underflows float64
    want = sequential_scan(a, b, h0)
    torch.testing.assert_close(min_rnn.scan_log(log_a, log_b, h0), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tbptt", [None, 1, 3, 7])
def test_scan_log_backward_is_the_reverse_scan(tbptt):
    gen = torch.Generator().manual_seed(1)
    k = torch.randn(2, 10, 8, generator=gen, dtype=DT)
    a, b = (t.requires_grad_() for t in min_rnn.coefficients(k, "mingru"))
    h0 = torch.randn(2, 4, generator=gen, dtype=DT, requires_grad=True)
    e = torch.randn(2, 10, 4, generator=gen, dtype=DT)
    h, out = h0, []
    for t in range(10):
        if tbptt is not None and t > 0 and t % tbptt == 0:
            h = h.detach()
        h = a[:, t] * h + b[:, t]
        out.append(h)
    want = torch.autograd.grad((torch.stack(out, 1) * e).sum(), [a, b, h0])
    log_a = torch.log(a.detach())
    hs = sequential_scan(a.detach(), b.detach(), h0.detach())
    got = min_rnn.scan_log_backward(log_a, hs, h0.detach(), e, tbptt)
    for name, g, w in zip(("da", "db", "dh0"), got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=name)


def test_bad_kind_is_named():
    with pytest.raises(ValueError, match="Argument `kind`"):
        min_rnn.coefficients(torch.zeros(1, 4), "gru")
