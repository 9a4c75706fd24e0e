"""ConvLSTM1D/2D against a step written from Shi et al.'s equations with torch's own convolutions
(torch layout, torch padding), gradchecked in float64 on small shapes; masks, go_backwards, states."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit.keras.layers import ConvLSTM1D, ConvLSTM2D, deserialize, serialize

F64 = torch.float64


def reference(x, kernel, recurrent_kernel, bias, rank, stride=1, padding="valid", mask=None, reverse=False):
    """x (B, T, S..., C), Keras-layout kernels -> all h (B, T, S'..., U) and the final (h, c).

    The input convolution pads symmetrically ("same" with odd kernels and stride 1 only, where
    torch and TensorFlow agree); the state's convolution is torch's padding="same".
    """
    conv = F.conv1d if rank == 1 else F.conv2d
    w_in = kernel.permute(rank + 1, rank, *range(rank))  # (4U, C, K...)
    w_rec = recurrent_kernel.permute(rank + 1, rank, *range(rank))
    U = w_rec.shape[1]
    B, T = x.shape[:2]
    h = c = None
    hs = [None] * T
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        xt = x[:, t].movedim(-1, 1)
        zx = conv(xt, w_in, bias, stride=stride, padding=padding)
        if h is None:
            h = c = zx.new_zeros(B, U, *zx.shape[2:])
        z = zx + conv(h, w_rec, padding="same")
        i, f, g, o = z.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        if mask is not None:
            m = mask[:, t].reshape(B, *([1] * (h.dim() - 1)))
            c_new, h_new = torch.where(m, c_new, c), torch.where(m, h_new, h)
            hs[t] = h_new * m
        else:
            hs[t] = h_new
        h, c = h_new, c_new
    return torch.stack([s.movedim(1, -1) for s in hs], dim=1), h.movedim(1, -1), c.movedim(1, -1)


CASES = [
    (ConvLSTM1D, dict(filters=3, kernel_size=3), (2, 4, 6, 2)),
    (ConvLSTM1D, dict(filters=2, kernel_size=3, padding="same"), (2, 4, 5, 3)),
    (ConvLSTM2D, dict(filters=2, kernel_size=3), (2, 3, 5, 4, 2)),
    (ConvLSTM2D, dict(filters=2, kernel_size=(3, 1), padding="same"), (2, 3, 4, 3, 2)),
]


@pytest.mark.parametrize("cls, kwargs, shape", CASES)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_conv_lstm_matches_the_reference_with_masks(cls, kwargs, shape, go_backwards):
    torch.manual_seed(0)
    layer = cls(**kwargs, return_sequences=True, return_state=True, go_backwards=go_backwards, dtype="float64")
    x = torch.randn(*shape, dtype=F64, requires_grad=True)
    mask = torch.ones(shape[:2], dtype=torch.bool)
    mask[1, -2:] = False
    mask[0, 1] = False
    seq, h, c = layer(x, mask=mask)
    rank = layer.cell.rank
    pad = "same" if kwargs.get("padding") == "same" else 0
    ref_seq, ref_h, ref_c = reference(x, layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias, rank,
                                      padding=pad, mask=mask, reverse=go_backwards)
    if go_backwards:
        ref_seq = ref_seq.flip(1)  # Keras: outputs in processing order
    for a, b in ((seq, ref_seq), (h, ref_h), (c, ref_c)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    params = [x, layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias]
    g = torch.randn_like(seq)
    for a, b in zip(torch.autograd.grad((seq * g).sum() + h.sum(), params),
                    torch.autograd.grad((ref_seq * g).sum() + ref_h.sum(), params)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert layer.compute_output_shape((None, *shape[1:])) == [tuple([None, *seq.shape[1:]]), (None, *h.shape[1:]), (None, *c.shape[1:])]


@pytest.mark.parametrize("cls, kwargs, shape", [
    (ConvLSTM1D, dict(filters=2, kernel_size=2, strides=2, padding="same"), (2, 3, 5, 2)),
    (ConvLSTM2D, dict(filters=2, kernel_size=2, dilation_rate=(1, 2)), (1, 3, 3, 4, 2)),
])
def test_conv_lstm_gradcheck_float64(cls, kwargs, shape):
    torch.manual_seed(1)
    layer = cls(**kwargs, dtype="float64")
    x = torch.randn(*shape, dtype=F64, requires_grad=True)
    layer(x)
    names = ["cell.kernel", "cell.recurrent_kernel", "cell.bias"]
    params = [dict(layer.named_parameters())[n].detach().requires_grad_() for n in names]
    mask = torch.ones(shape[:2], dtype=torch.bool)
    mask[0, 1] = False
    assert torch.autograd.gradcheck(
        lambda x, *ps: torch.func.functional_call(layer, dict(zip(names, ps)), (x,), {"mask": mask}), (x, *params)
    )


def test_conv_lstm_parameter_counts_and_weights_layout():
    layer = ConvLSTM1D(4, 3)
    layer(torch.randn(1, 2, 8, 3))
    assert [w.shape for w in layer.get_weights()] == [(3, 3, 16), (3, 4, 16), (16,)]
    assert layer.count_params() == 352  # Keras 3.15.1 with JAX: ConvLSTM1D(4, 3) on (None, 5, 8, 3)
    assert layer.get_weights()[2][4:8].tolist() == [1.0] * 4  # unit_forget_bias
    layer2 = ConvLSTM2D(4, (3, 2), padding="same")
    layer2(torch.randn(1, 2, 6, 7, 3))
    assert layer2.count_params() == 688  # Keras 3.15.1 with JAX, on (None, 5, 6, 7, 3)


def test_conv_lstm_config_round_trip_and_channels_first():
    torch.manual_seed(2)
    layer = ConvLSTM1D(3, 3, padding="same", return_sequences=True, dropout=0.1)
    copy = deserialize(serialize(layer))
    assert (copy.cell.filters, copy.cell.padding, copy.return_sequences, copy.cell.dropout) == (3, "same", True, 0.1)
    x = torch.randn(2, 4, 5, 2, dtype=F64)
    last = ConvLSTM1D(3, 3, padding="same", dtype="float64")
    first = ConvLSTM1D(3, 3, padding="same", data_format="channels_first", dtype="float64")
    last(x)
    first(x.transpose(2, 3))
    first.set_weights(last.get_weights())
    torch.testing.assert_close(first(x.transpose(2, 3)), last(x).transpose(1, 2))


def test_conv_lstm_dropout_trains_and_is_off_at_inference():
    torch.manual_seed(3)
    layer = ConvLSTM1D(2, 3, dropout=0.5, recurrent_dropout=0.5)
    x = torch.randn(2, 4, 6, 2)
    a, b = layer(x, training=True), layer(x, training=True)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(layer(x, training=False), layer(x, training=False))


def test_conv_lstm_bad_input():
    with pytest.raises(ValueError, match="`filters`"):
        ConvLSTM1D(0, 3)
    with pytest.raises(ValueError, match="`padding`"):
        ConvLSTM1D(2, 3, padding="causal")
    with pytest.raises(ValueError, match=r"\(B, T, S, C\) \(rank 4\)"):
        ConvLSTM1D(2, 3)(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"\(B, T, R, S, C\) \(rank 5\)"):
        ConvLSTM2D(2, 3)(torch.randn(2, 4, 5, 3))
    with pytest.raises(ValueError, match="too small"):
        ConvLSTM1D(2, 5)(torch.randn(2, 4, 3, 1))
    layer = ConvLSTM1D(2, 3)
    layer(torch.randn(2, 4, 6, 2))
    with pytest.raises(ValueError, match=r"built for inputs of shape \(B, T, 6, 2\)"):
        layer(torch.randn(2, 4, 7, 2))
