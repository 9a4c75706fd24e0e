"""Conv1D and the 1D pooling layers against references written from Keras's definitions.

The reference gathers each window explicitly (index t s + j d into the padded input),
with the padding written from TensorFlow's rule, which Keras follows:
"same" pads (out - 1) s + d (K - 1) + 1 - T in all (the odd step on the right), out = ceil(T / s);
"causal" pads d (K - 1) on the left. Values and gradients are compared in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from rnnkit.keras.layers import (
    AveragePooling1D,
    Conv1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
    deserialize,
    serialize,
)

F64 = torch.float64


def tf_padding(T: int, K: int, s: int, d: int, padding: str) -> tuple[int, int]:
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return d * (K - 1), 0
    out = math.ceil(T / s)
    total = max((out - 1) * s + d * (K - 1) + 1 - T, 0)
    return total // 2, total - total // 2


def windows(x: torch.Tensor, K: int, s: int, d: int, padding: str, fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, F) -> windows (B, T', K, F) and a (T', K) bool of which taps are real steps."""
    B, T, C = x.shape
    left, right = tf_padding(T, K, s, d, padding)
    xp = torch.cat([x.new_full((B, left, C), fill), x, x.new_full((B, right, C), fill)], dim=1)
    n_out = (xp.shape[1] - d * (K - 1) - 1) // s + 1
    idx = torch.arange(n_out)[:, None] * s + torch.arange(K)[None, :] * d  # (T', K)
    real = (idx >= left) & (idx < left + T)
    return xp[:, idx], real


def conv_reference(x, kernel, bias, s, d, padding, groups=1):
    """y[b, t, u] = sum_j sum_f xpad[b, t s + j d, f] W[j, f, u] + b[u], group by group."""
    K, Cg, U = kernel.shape
    win, _ = windows(x, K, s, d, padding)  # (B, T', K, F)
    Ug = U // groups
    outs = [torch.einsum("btkf,kfu->btu", win[..., g * Cg:(g + 1) * Cg], kernel[..., g * Ug:(g + 1) * Ug]) for g in range(groups)]
    y = torch.cat(outs, dim=-1)
    return y + bias if bias is not None else y


CONV_CASES = [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=3, padding="same"),
    dict(filters=4, kernel_size=4, padding="same"),
    dict(filters=3, kernel_size=4, strides=2, padding="same"),
    dict(filters=3, kernel_size=3, strides=3),
    dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2),
    dict(filters=4, kernel_size=2, dilation_rate=3),
    dict(filters=4, kernel_size=3, groups=2, padding="same"),
    dict(filters=5, kernel_size=1, use_bias=False),
]


@pytest.mark.parametrize("kwargs", CONV_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_conv1d_values_and_gradients_match_the_window_reference(kwargs):
    torch.manual_seed(0)
    x = torch.randn(2, 9, 6, dtype=F64, requires_grad=True)
    layer = Conv1D(**kwargs, dtype="float64", bias_initializer="uniform")
    y = layer(x)
    ref = conv_reference(x, layer.kernel, layer.bias, layer.strides[0], layer.dilation_rate[0], layer.padding, layer.groups)
    assert y.shape == ref.shape == layer.compute_output_shape((2, 9, 6))
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    params = [x, layer.kernel] + ([layer.bias] if layer.bias is not None else [])
    got = torch.autograd.grad(y, params, g)
    want = torch.autograd.grad(ref, params, g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv1d_same_and_causal_agree_with_torch_where_torch_defines_them():
    torch.manual_seed(1)
    x = torch.randn(3, 11, 4, dtype=F64)
    for d, K in ((1, 3), (2, 3), (1, 4)):
        layer = Conv1D(5, K, padding="same", dilation_rate=d, dtype="float64")
        y = layer(x)
        w = layer.kernel.permute(2, 1, 0)  # torch layout (U, F, K)
        # torch's padding="same" (stride 1) splits the padding as TensorFlow does.
        ref = F.conv1d(x.transpose(1, 2), w, layer.bias, padding="same", dilation=d).transpose(1, 2)
        torch.testing.assert_close(y, ref)
        causal = Conv1D(5, K, padding="causal", dilation_rate=d, dtype="float64")
        y = causal(x)
        ref = F.conv1d(F.pad(x.transpose(1, 2), (d * (K - 1), 0)), causal.kernel.permute(2, 1, 0), causal.bias, dilation=d)
        torch.testing.assert_close(y, ref.transpose(1, 2))


def test_conv1d_causal_output_never_sees_the_future():
    torch.manual_seed(2)
    layer = Conv1D(3, 4, padding="causal", dilation_rate=2, dtype="float64")
    x = torch.randn(1, 12, 2, dtype=F64)
    y = layer(x)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(1, 5, 2, dtype=F64)
    torch.testing.assert_close(layer(x2)[:, :7], y[:, :7], rtol=0, atol=0)


def test_conv1d_channels_first_is_the_transposed_channels_last():
    torch.manual_seed(3)
    last = Conv1D(4, 3, padding="same", dtype="float64")
    first = Conv1D(4, 3, padding="same", data_format="channels_first", dtype="float64")
    x = torch.randn(2, 7, 5, dtype=F64)
    last(x)
    first(x.transpose(1, 2))
    first.set_weights(last.get_weights())
    torch.testing.assert_close(first(x.transpose(1, 2)), last(x).transpose(1, 2))
    assert first.compute_output_shape((None, 5, None)) == (None, 4, None)


def test_conv1d_gradcheck_float64():
    torch.manual_seed(4)
    layer = Conv1D(2, 3, strides=2, padding="same", activation="tanh", dtype="float64")
    x = torch.randn(2, 6, 3, dtype=F64, requires_grad=True)
    layer(x)
    k, b = layer.kernel.detach().requires_grad_(), layer.bias.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, k, b: functional_call(layer, {"kernel": k, "bias": b}, (x,)), (x, k, b))


def test_conv1d_output_shapes_keep_unknown_dims():
    assert Conv1D(8, 3).compute_output_shape((None, None, 6)) == (None, None, 8)
    assert Conv1D(8, 3).compute_output_shape((None, 10, 6)) == (None, 8, 8)
    assert Conv1D(8, 3, strides=2, padding="same").compute_output_shape((4, 9, 6)) == (4, 5, 8)
    assert Conv1D(8, 3, padding="causal", dilation_rate=4).compute_output_shape((None, 9, 6)) == (None, 9, 8)


def test_conv1d_drops_the_mask_as_keras_does():
    layer = Conv1D(2, 3, padding="same")
    x = torch.randn(2, 5, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert layer.compute_mask(x, mask) is None


def test_conv1d_weights_config_and_state_dict_round_trip():
    torch.manual_seed(5)
    layer = Conv1D(4, 3, padding="causal", dilation_rate=2, groups=2, activation="relu")
    x = torch.randn(2, 7, 6)
    y = layer(x)
    assert [w.shape for w in layer.get_weights()] == [(3, 3, 4), (4,)]
    copy = deserialize(serialize(layer))
    copy(x)
    copy.set_weights(layer.get_weights())
    torch.testing.assert_close(copy(x), y)
    fresh = deserialize(serialize(layer))
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x), y)


@pytest.mark.parametrize("kwargs, match", [
    (dict(filters=0, kernel_size=3), "`filters`"),
    (dict(filters=4, kernel_size=0), "`kernel_size`"),
    (dict(filters=4, kernel_size=(3, 3)), "`kernel_size`"),
    (dict(filters=4, kernel_size=3, padding="full"), "`padding`"),
    (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), "`strides`.*`dilation_rate`"),
    (dict(filters=3, kernel_size=3, groups=2), "`filters`.*`groups`"),
    (dict(filters=4, kernel_size=3, data_format="NCW"), "`data_format`"),
    (dict(filters=4, kernel_size=3, activation="nope"), "`activation`"),
    (dict(filters=4, kernel_size=3, kernel_initializer="he"), "`kernel_initializer`"),
])
def test_conv1d_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv1D(**kwargs)


def test_conv1d_bad_inputs():
    layer = Conv1D(4, 3, groups=2)
    with pytest.raises(ValueError, match=r"channels must be divisible by `groups`"):
        layer(torch.randn(2, 5, 3))
    layer = Conv1D(4, 3)
    with pytest.raises(ValueError, match=r"\(B, T, F\) \(rank 3\)"):
        layer(torch.randn(2, 5))
    layer(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="built for 3 input channels"):
        layer(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="too few"):
        layer(torch.randn(2, 2, 3))


# ----------------------------------------------------------------- pooling


POOL_CASES = [(2, None, "valid"), (3, 2, "valid"), (4, 3, "same"), (3, 1, "same"), (2, 2, "same"), (5, 5, "same")]


@pytest.mark.parametrize("pool_size, strides, padding", POOL_CASES)
def test_pooling_matches_the_window_reference(pool_size, strides, padding):
    torch.manual_seed(6)
    x = torch.randn(2, 11, 3, dtype=F64, requires_grad=True)
    s = pool_size if strides is None else strides
    win, real = windows(x, pool_size, s, 1, padding, fill=float("nan"))  # padding taps must never be read
    real = real[None, :, :, None]
    ref_max = torch.where(real, win, torch.tensor(-math.inf, dtype=F64)).amax(dim=2)
    ref_avg = torch.where(real, win, torch.tensor(0.0, dtype=F64)).sum(dim=2) / real.sum(dim=2)
    for layer, ref in ((MaxPooling1D(pool_size, strides, padding), ref_max), (AveragePooling1D(pool_size, strides, padding), ref_avg)):
        y = layer(x)
        assert y.shape == ref.shape == layer.compute_output_shape((2, 11, 3))
        torch.testing.assert_close(y, ref)
        g = torch.randn_like(y)
        torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(ref, x, g, retain_graph=True)[0])


def test_pooling_defaults_and_channels_first():
    x = torch.arange(2 * 6 * 2, dtype=F64).reshape(2, 6, 2)
    assert MaxPooling1D().pool_size == (2,) and MaxPooling1D().strides == (2,)
    torch.testing.assert_close(MaxPooling1D()(x), x[:, 1::2])
    torch.testing.assert_close(AveragePooling1D(data_format="channels_first")(x.transpose(1, 2)),
                               AveragePooling1D()(x).transpose(1, 2))
    assert MaxPooling1D(3).compute_output_shape((None, None, 4)) == (None, None, 4)


def test_global_pooling_respects_the_mask():
    torch.manual_seed(7)
    x = torch.randn(3, 6, 4, dtype=F64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    avg = GlobalAveragePooling1D()(x, mask=mask)
    mx = GlobalMaxPooling1D()(x, mask=mask)
    xs = x.detach().numpy()
    for b in range(3):
        real = xs[b][mask[b].numpy()]
        np.testing.assert_allclose(avg[b].detach().numpy(), real.mean(0), rtol=1e-12)
        np.testing.assert_allclose(mx[b].detach().numpy(), real.max(0), rtol=1e-12)
    # Masked steps get no gradient from either.
    (avg.sum() + mx.sum()).backward()
    assert torch.all(x.grad[~mask] == 0)
    torch.testing.assert_close(GlobalAveragePooling1D()(x), x.mean(1))
    torch.testing.assert_close(GlobalMaxPooling1D()(x), x.amax(1))


def test_global_pooling_all_masked_row_is_zero_not_nan():
    x = torch.randn(2, 4, 3, requires_grad=True)
    mask = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    for layer in (GlobalAveragePooling1D(), GlobalMaxPooling1D()):
        y = layer(x, mask=mask)
        assert torch.all(y[0] == 0)
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
        x.grad = None


def test_global_pooling_shapes_keepdims_and_no_mask_out():
    x = torch.randn(2, 5, 3)
    for cls in (GlobalAveragePooling1D, GlobalMaxPooling1D):
        assert cls()(x).shape == (2, 3)
        assert cls(keepdims=True)(x).shape == (2, 1, 3)
        assert cls(keepdims=True).compute_output_shape((None, None, 3)) == (None, 1, 3)
        assert cls(data_format="channels_first")(x.transpose(1, 2)).shape == (2, 3)
        assert cls().compute_mask(x, torch.ones(2, 5, dtype=torch.bool)) is None


def test_pooling_bad_input():
    with pytest.raises(ValueError, match="`pool_size`"):
        MaxPooling1D(0)
    with pytest.raises(ValueError, match="`padding`"):
        AveragePooling1D(2, padding="causal")
    with pytest.raises(ValueError, match="too few"):
        MaxPooling1D(4)(torch.randn(2, 3, 2))
    with pytest.raises(ValueError, match=r"`mask` must have shape \(B, T\) = \(2, 5\)"):
        GlobalAveragePooling1D()(torch.randn(2, 5, 3), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"rank 3"):
        GlobalMaxPooling1D()(torch.randn(2, 5))
