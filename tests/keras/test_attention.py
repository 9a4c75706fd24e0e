"""Attention, AdditiveAttention and MultiHeadAttention against Keras's equations written out in
NumPy, and MultiHeadAttention against torch.nn.MultiheadAttention with the same weights.

Keras 3 (keras/src/layers/attention/*.py): masked keys get score - 1e9 (Attention) or -1e9
(MultiHeadAttention) before the softmax; a masked query row outputs 0 (Attention) and passes
the query mask on; use_causal_mask lets query i see keys j <= i.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from rnnkit.keras.layers import AdditiveAttention, Attention, MultiHeadAttention, deserialize, serialize

F64 = torch.float64
rng = np.random.default_rng(0)
Q = rng.standard_normal((2, 4, 3))
V = rng.standard_normal((2, 6, 5))
K = rng.standard_normal((2, 6, 3))
QM = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
VM = np.array([[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 1]], bool)
KM = np.array([[1, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], bool)


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention_np(scores, v, q_mask=None, keep=None):
    if keep is not None:
        scores = np.where(keep, scores, scores - 1e9)
    w = softmax(scores)
    out = w @ v
    if q_mask is not None:
        out = out * q_mask[..., None]
    return out, w


def causal(Tq, Tv):
    return np.arange(Tq)[:, None] >= np.arange(Tv)[None, :]


def t(a):
    return torch.tensor(a, dtype=F64, requires_grad=True)


@pytest.mark.parametrize("score_mode, use_scale", [("dot", False), ("dot", True), ("concat", False), ("concat", True)])
@pytest.mark.parametrize("masked, use_causal", [(False, False), (True, False), (True, True)])
def test_attention_matches_numpy(score_mode, use_scale, masked, use_causal):
    layer = Attention(use_scale=use_scale, score_mode=score_mode, dtype="float64")
    layer([t(Q), t(V), t(K)])
    alpha, c = 0.7, 1.3
    if use_scale:
        layer.scale.data.fill_(alpha)
    if score_mode == "concat":
        layer.concat_score_weight.data.fill_(c)
    a = alpha if use_scale else 1.0
    if score_mode == "dot":
        scores = a * Q @ K.transpose(0, 2, 1)
    else:
        scores = c * np.tanh(a * (Q[:, :, None, :] + K[:, None, :, :])).sum(-1)
    keep = (VM & KM)[:, None, :] if masked else None
    if use_causal:
        keep = keep & causal(4, 6)[None]
    want, want_w = attention_np(scores, V, QM if masked else None, keep)
    mask = [torch.tensor(QM), torch.tensor(VM), torch.tensor(KM)] if masked else None
    out, w = layer([t(Q), t(V), t(K)], mask=mask, return_attention_scores=True, use_causal_mask=use_causal)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.detach().numpy(), want_w, rtol=1e-10, atol=1e-12)
    got_mask = layer.compute_mask([Q, V, K], mask)
    if masked:
        np.testing.assert_array_equal(got_mask.numpy(), QM)
    else:
        assert got_mask is None


def test_additive_attention_matches_numpy_and_defaults_to_a_learned_scale():
    layer = AdditiveAttention(dtype="float64")
    assert layer.use_scale is True
    out = layer([t(Q), t(V), t(K)], mask=[torch.tensor(QM), torch.tensor(VM)])
    w_d = layer.scale.detach().numpy()
    scores = (w_d * np.tanh(Q[:, :, None, :] + K[:, None, :, :])).sum(-1)
    want, _ = attention_np(scores, V, QM, VM[:, None, :])
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    assert layer.count_params() == 3  # Keras 3: AdditiveAttention on dim-3 queries has 3 weights (one per feature)
    assert AdditiveAttention(use_scale=False)([Q, V, K]).shape == (2, 4, 5)
    assert "score_mode" not in layer.get_config()


def test_attention_gradients_float64():
    layer = AdditiveAttention(dtype="float64")
    q, v, k = t(Q), t(V), t(K)
    layer([q, v, k])
    w = layer.scale.detach().requires_grad_()
    masks = [torch.tensor(QM), torch.tensor(VM)]
    assert torch.autograd.gradcheck(
        lambda q, v, k, w: functional_call(layer, {"scale": w}, ([q, v, k],), {"mask": masks}), (q, v, k, w)
    )
    dot = Attention(use_scale=True, dtype="float64")
    dot([q, v, k])
    s = dot.scale.detach().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda q, v, k, s: functional_call(dot, {"scale": s}, ([q, v, k],), {"use_causal_mask": True}), (q, v, k, s)
    )


def test_attention_dropout_only_in_training():
    torch.manual_seed(0)
    layer = Attention(dropout=0.5)
    q, v = torch.randn(8, 5, 4), torch.randn(8, 7, 4)
    _, w = layer([q, v], return_attention_scores=True, training=True)
    out_train = layer([q, v], training=True)
    out_eval = layer([q, v], training=False)
    torch.testing.assert_close(out_eval, torch.softmax(q @ v.transpose(1, 2), -1) @ v)
    assert not torch.allclose(out_train, out_eval)
    torch.testing.assert_close(w.sum(-1), torch.ones(8, 5))  # the scores returned are before dropout


def test_attention_layers_load_a_state_dict_before_seeing_data():
    q, v = torch.randn(2, 3, 5), torch.randn(2, 4, 5)
    for make in (lambda: AdditiveAttention(), lambda: Attention(use_scale=True, score_mode="concat"),
                 lambda: MultiHeadAttention(2, 3, output_shape=4)):
        layer, fresh = make(), make()
        y = layer(q, v) if isinstance(layer, MultiHeadAttention) else layer([q, v])
        fresh.load_state_dict(layer.state_dict())
        torch.testing.assert_close(fresh(q, v) if isinstance(fresh, MultiHeadAttention) else fresh([q, v]), y)


def test_attention_shapes_config_and_value_defaults_to_key():
    layer = Attention()
    assert layer([Q, V[..., :3]]).shape == (2, 4, 3)
    assert layer.compute_output_shape([(None, None, 3), (None, None, 5)]) == (None, None, 5)
    copy = deserialize(serialize(Attention(use_scale=True, score_mode="concat", dropout=0.1)))
    assert (copy.use_scale, copy.score_mode, copy.dropout) == (True, "concat", 0.1)


@pytest.mark.parametrize("call, error, match", [
    (lambda: Attention()(torch.randn(2, 3, 4)), ValueError, r"list \[query, value\]"),
    (lambda: Attention()([torch.randn(2, 3, 4)]), ValueError, "of length 1"),
    (lambda: Attention()([torch.randn(2, 3), torch.randn(2, 3, 4)]), ValueError, r"`query` must have shape \(B, T, D\)"),
    (lambda: Attention()([torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 6, 4)]), ValueError, "share B and Tv"),
    (lambda: Attention()([torch.randn(2, 3, 4), torch.randn(2, 5, 3)]), ValueError, "same feature size D"),
    (lambda: Attention()([torch.randn(2, 3, 4)] * 2, mask=torch.ones(2, 3)), ValueError, r"list \[query_mask, value_mask"),
    (lambda: Attention()([torch.randn(2, 3, 4)] * 2, mask=[None, torch.ones(2, 4)]), ValueError, r"`mask\[1\]` must have shape"),
    (lambda: Attention(score_mode="general"), ValueError, "`score_mode`"),
    (lambda: Attention(dropout=1.0), ValueError, "`dropout`"),
])
def test_attention_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ MultiHeadAttention


def mha_np(layer, q, v, k, keep=None):
    W = {n: getattr(layer, n).detach().numpy() for n in ("query_kernel", "key_kernel", "value_kernel", "output_kernel")}
    b = {n: getattr(layer, n).detach().numpy() for n in ("query_bias", "key_bias", "value_bias", "output_bias")}
    Qh = np.einsum("btf,fnd->btnd", q, W["query_kernel"]) + b["query_bias"]
    Kh = np.einsum("btf,fnd->btnd", k, W["key_kernel"]) + b["key_bias"]
    Vh = np.einsum("btf,fnd->btnd", v, W["value_kernel"]) + b["value_bias"]
    s = np.einsum("bqnd,bknd->bnqk", Qh, Kh) / np.sqrt(layer.key_dim)
    if keep is not None:
        s = np.where(keep[:, None], s, -1e9)
    w = softmax(s)
    heads = np.einsum("bnqk,bknd->bqnd", w, Vh)
    out = np.einsum("bqnd,nde->bqe", heads, W["output_kernel"].reshape(*W["output_kernel"].shape[:2], -1))
    return out.reshape(*out.shape[:2], *W["output_kernel"].shape[2:]) + b["output_bias"], w


@pytest.mark.parametrize("masks", ["none", "query", "value_key", "attention", "causal"])
def test_multi_head_attention_matches_numpy(masks):
    torch.manual_seed(1)
    layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=(2, 3), dtype="float64")
    q, v, k = t(Q), t(V), t(rng.standard_normal((2, 6, 7)))
    layer(q, v, k)
    for b in (layer.query_bias, layer.key_bias, layer.value_bias, layer.output_bias):
        b.data.normal_()
    am = rng.random((2, 4, 6)) > 0.3
    keep, kwargs = None, {}
    if masks == "query":
        keep, kwargs = np.broadcast_to(QM[:, :, None], (2, 4, 6)), {"query_mask": torch.tensor(QM)}
    elif masks == "value_key":
        keep, kwargs = np.broadcast_to((VM & KM)[:, None, :], (2, 4, 6)), {"value_mask": torch.tensor(VM), "key_mask": torch.tensor(KM)}
    elif masks == "attention":
        keep, kwargs = am, {"attention_mask": torch.tensor(am)}
    elif masks == "causal":
        keep, kwargs = np.broadcast_to(causal(4, 6), (2, 4, 6)), {"use_causal_mask": True}
    out, w = layer(q, v, k, return_attention_scores=True, **kwargs)
    want, want_w = mha_np(layer, Q, V, k.detach().numpy(), keep)
    assert out.shape == (2, 4, 2, 3) == layer.compute_output_shape((2, 4, 3))
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.detach().numpy(), want_w, rtol=1e-10, atol=1e-12)


def test_multi_head_attention_equals_torch_multihead_attention():
    torch.manual_seed(2)
    E, N = 6, 2
    layer = MultiHeadAttention(num_heads=N, key_dim=E // N, dtype="float64")
    x, m = torch.randn(3, 5, E, dtype=F64), torch.randn(3, 7, E, dtype=F64)
    layer(x, m)
    for b in (layer.query_bias, layer.key_bias, layer.value_bias, layer.output_bias):
        b.data.normal_()
    ref = torch.nn.MultiheadAttention(E, N, batch_first=True, dtype=F64)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([layer.query_kernel.reshape(E, E).T, layer.key_kernel.reshape(E, E).T,
                                            layer.value_kernel.reshape(E, E).T]))
        ref.in_proj_bias.copy_(torch.cat([layer.query_bias.reshape(-1), layer.key_bias.reshape(-1), layer.value_bias.reshape(-1)]))
        ref.out_proj.weight.copy_(layer.output_kernel.reshape(E, E).T)
        ref.out_proj.bias.copy_(layer.output_bias)
    pad = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1], [1, 0, 1, 1, 1, 1, 0]], dtype=torch.bool)
    want, want_w = ref(x, m, m, key_padding_mask=~pad, average_attn_weights=False)
    got, got_w = layer(x, m, value_mask=pad, return_attention_scores=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_w, want_w)
    params = [layer.query_kernel, layer.output_kernel, layer.value_bias]
    g = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(want, [ref.in_proj_weight, ref.out_proj.weight, ref.in_proj_bias], g)):
        flat_b = b
        if b.shape == (3 * E, E):
            flat_b = b[:E].T.reshape(E, N, E // N)
        elif b.shape == (E, E):
            flat_b = b.T.reshape(N, E // N, E)
        else:
            flat_b = b[2 * E:].reshape(N, E // N)
        torch.testing.assert_close(a, flat_b)


def test_multi_head_attention_gradcheck_and_output_mask():
    torch.manual_seed(3)
    layer = MultiHeadAttention(2, 2, dtype="float64")
    q, v = torch.randn(2, 3, 4, dtype=F64, requires_grad=True), torch.randn(2, 5, 4, dtype=F64, requires_grad=True)
    layer(q, v)
    names = ["query_kernel", "value_kernel", "output_kernel"]
    params = [getattr(layer, n).detach().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(
        lambda q, v, *ps: functional_call(layer, dict(zip(names, ps)), (q, v), {"use_causal_mask": True}), (q, v, *params)
    )
    qm = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert layer.compute_mask(q, qm) is qm


def test_multi_head_attention_weights_layout_and_config():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=7)
    layer(torch.randn(1, 4, 5), torch.randn(1, 9, 6), torch.randn(1, 9, 2))
    assert [w.shape for w in layer.get_weights()] == [(5, 2, 3), (2, 3), (2, 2, 3), (2, 3), (6, 2, 4), (2, 4), (2, 4, 7), (7,)]
    copy = deserialize(serialize(layer))
    assert (copy.num_heads, copy.key_dim, copy.value_dim, copy.output_shape_) == (2, 3, 4, (7,))
    assert MultiHeadAttention(2, 3).compute_output_shape((None, None, 5)) == (None, None, 5)


def test_multi_head_attention_dropout_only_in_training():
    torch.manual_seed(4)
    layer = MultiHeadAttention(2, 3, dropout=0.5)
    x = torch.randn(4, 6, 5)
    layer.eval()
    torch.testing.assert_close(layer(x, x), layer(x, x))
    assert not torch.allclose(layer(x, x, training=True), layer(x, x, training=False))


@pytest.mark.parametrize("call, error, match", [
    (lambda: MultiHeadAttention(0, 3), ValueError, "`num_heads`"),
    (lambda: MultiHeadAttention(2, -1), ValueError, "`key_dim`"),
    (lambda: MultiHeadAttention(2, 3, value_dim=0), ValueError, "`value_dim`"),
    (lambda: MultiHeadAttention(2, 3, output_shape=(0,)), ValueError, "`output_shape`"),
    (lambda: MultiHeadAttention(2, 3, attention_axes=(1, 2)), ValueError, "`attention_axes`"),
    (lambda: MultiHeadAttention(2, 3)(torch.randn(2, 4, 5)), TypeError, "needs `value`"),
    (lambda: MultiHeadAttention(2, 3)(torch.randn(2, 4), torch.randn(2, 4, 5)), ValueError, r"`query` must have shape \(B, T, D\)"),
    (lambda: MultiHeadAttention(2, 3)(torch.randn(2, 4, 5), torch.randn(3, 4, 5)), ValueError, "share B and Tv"),
    (lambda: MultiHeadAttention(2, 3)(torch.randn(2, 4, 5), torch.randn(2, 6, 5), attention_mask=torch.ones(2, 4, 5)),
     ValueError, r"`attention_mask` must have shape \(B, Tq, Tv\) = \(2, 4, 6\)"),
    (lambda: MultiHeadAttention(2, 3)(torch.randn(2, 4, 5), torch.randn(2, 6, 5), value_mask=torch.ones(2, 4)),
     ValueError, r"`value_mask` must have shape \(B, T\) = \(2, 6\)"),
])
def test_multi_head_attention_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
