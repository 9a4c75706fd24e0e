"""Check the new Keras-style layers against real Keras 3: parameter counts and outputs.

Keras is not a dependency of rnnkit; this script runs in two halves, one per environment:

    # 1. in an environment with Keras 3 (here the JAX backend):
    KERAS_BACKEND=jax /work/venvs/keras/bin/python scripts/keras_parity.py counts
    KERAS_BACKEND=jax /work/venvs/keras/bin/python scripts/keras_parity.py reference /tmp/keras_ref.npz
    # 2. with rnnkit:
    python scripts/keras_parity.py compare /tmp/keras_ref.npz

``reference`` builds each Keras layer, runs it on fixed inputs and saves its weights and
outputs; ``compare`` loads those weights into the rnnkit layer (``set_weights``, Keras
layout) and prints the largest difference per output (float32).
"""

from __future__ import annotations

import sys

import numpy as np

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 9, 6)).astype("float32")
Y = RNG.standard_normal((2, 9, 6)).astype("float32")
Q = RNG.standard_normal((2, 4, 6)).astype("float32")
X4 = RNG.standard_normal((2, 5, 8, 3)).astype("float32")
X5 = RNG.standard_normal((2, 4, 6, 5, 3)).astype("float32")
MASK = np.ones((2, 9), bool)
MASK[0, 6:] = False
MASK[1, 3:] = False
QMASK = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
XM, YM = X.copy(), Y.copy()  # for the merge masks (Masking zero steps)
XM[0, 6:], XM[1, 3:], YM[0, :2] = 0, 0, 0


def cases(L, framework):
    """(name, layer, call) triples; ``call(layer)`` returns a list of outputs. L: the layers module."""
    keras = framework == "keras"

    def t(a):
        if keras:
            return a
        import torch
        return torch.tensor(a)

    def merge_call(layer):
        ma, mb = ~np.all(XM == 0, -1), ~np.all(YM == 0, -1)
        if keras:
            import keras as K
            a, b = K.Input((9, 6)), K.Input((9, 6))
            model = K.Model([a, b], layer([L.Masking()(a), L.Masking()(b)]))
            return [model([XM, YM]), layer.compute_mask([XM, YM], [ma, mb])]
        return [layer([t(XM), t(YM)], mask=[t(ma), t(mb)]), layer.compute_mask([t(XM), t(YM)], [t(ma), t(mb)])]

    def flat(o):
        out = []
        for item in (o if isinstance(o, (list, tuple)) else [o]):
            out += flat(item) if isinstance(item, (list, tuple)) else [item]
        return out

    mha_kw = {"return_attention_scores": True}  # Keras's JAX fast path needs value_dim == key_dim
    return [
        ("conv_valid", L.Conv1D(4, 3), lambda l: [l(t(X))]),
        ("conv_same_s2_relu", L.Conv1D(4, 4, strides=2, padding="same", activation="relu"), lambda l: [l(t(X))]),
        ("conv_causal_d2", L.Conv1D(4, 3, padding="causal", dilation_rate=2), lambda l: [l(t(X))]),
        ("conv_groups", L.Conv1D(4, 2, groups=2), lambda l: [l(t(X))]),
        ("maxpool_same", L.MaxPooling1D(4, 3, padding="same"), lambda l: [l(t(X))]),
        ("avgpool_same", L.AveragePooling1D(4, 3, padding="same"), lambda l: [l(t(X))]),
        ("gap_masked", L.GlobalAveragePooling1D(), lambda l: [l(t(X), mask=t(MASK))]),
        ("ln_axis12", L.LayerNormalization(axis=[1, 2]), lambda l: [l(t(X))]),
        ("bn_train_masked", L.BatchNormalization(momentum=0.9),
         lambda l: [l(t(X), training=True, mask=t(MASK))] + [np.asarray(w) for w in l.get_weights()]),
        ("att_dot_scale", L.Attention(use_scale=True),
         lambda l: flat(l([t(Q), t(X)], mask=[t(QMASK), t(MASK)], return_attention_scores=True))),
        ("att_concat_causal", L.Attention(use_scale=True, score_mode="concat"),
         lambda l: flat(l([t(Q), t(X), t(Y)], mask=[None, t(MASK)], use_causal_mask=True, return_attention_scores=True))),
        ("additive", L.AdditiveAttention(),
         lambda l: flat(l([t(Q), t(X)], mask=[t(QMASK), t(MASK)], return_attention_scores=True))),
        ("mha_value_mask", L.MultiHeadAttention(2, 3, value_dim=4, output_shape=5),
         lambda l: flat(l(t(Q), t(X), value_mask=t(MASK), **mha_kw))),
        ("mha_causal", L.MultiHeadAttention(2, 3), lambda l: flat(l(t(X), t(X), use_causal_mask=True, **mha_kw))),
        ("dot_normalize", L.Dot(axes=2, normalize=True), lambda l: [l([t(X), t(Y)])]),
        ("dot_axes_11", L.Dot(axes=(1, 1)), lambda l: [l([t(X), t(Y)])]),
        ("maximum_masked", L.Maximum(), merge_call),
        ("multiply_masked", L.Multiply(), merge_call),
        ("concat_time_masked", L.Concatenate(axis=1), merge_call),
        ("zero_padding", L.ZeroPadding1D((1, 2)), lambda l: [l(t(X))]),
        ("cropping", L.Cropping1D((2, 3)), lambda l: [l(t(X))]),
        ("upsampling", L.UpSampling1D(2), lambda l: [l(t(X))]),
        ("reshape", L.Reshape((3, -1)), lambda l: [l(t(X))]),
        ("permute", L.Permute((2, 1)), lambda l: [l(t(X))]),
        # Keras repeats the last output on masked steps, rnnkit outputs 0 there: compare the final states.
        ("rnn_lstm_cell_backwards_masked", L.RNN(L.LSTMCell(5), return_state=True, go_backwards=True),
         lambda l: flat(l(t(X), mask=t(MASK)))),
        ("rnn_gru_cell_reset_before", L.RNN(L.GRUCell(5, reset_after=False), return_state=True),
         lambda l: flat(l(t(X), mask=t(MASK)))),
        ("rnn_stacked_cells", L.RNN([L.LSTMCell(5), L.GRUCell(4)], return_state=True),
         lambda l: flat(l(t(X), mask=t(MASK)))),
        ("convlstm1d_same_s2", L.ConvLSTM1D(4, 3, strides=2, padding="same", return_sequences=True, return_state=True),
         lambda l: flat(l(t(X4)))),
        ("convlstm2d_dilated_backwards", L.ConvLSTM2D(3, (3, 2), dilation_rate=(2, 1), go_backwards=True),
         lambda l: [l(t(X5))]),
    ]


def counts() -> None:
    import keras
    L = keras.layers

    def build(layer, *shapes):
        inputs = [keras.Input(batch_shape=s) for s in shapes]
        if isinstance(layer, L.MultiHeadAttention):
            layer(*inputs)
        else:
            layer(inputs if len(inputs) > 1 else inputs[0])
        return layer.count_params()

    S = (None, 9, 6)
    for name, layer, shapes in [
        ("Conv1D(8,3)", L.Conv1D(8, 3), [S]),
        ("Conv1D(8,3,use_bias=False)", L.Conv1D(8, 3, use_bias=False), [S]),
        ("Conv1D(8,5,groups=2)", L.Conv1D(8, 5, groups=2), [S]),
        ("Conv1D(8,3,padding=causal,dilation_rate=2)", L.Conv1D(8, 3, padding="causal", dilation_rate=2), [S]),
        ("LayerNormalization()", L.LayerNormalization(), [S]),
        ("LayerNormalization(axis=[1,2])", L.LayerNormalization(axis=[1, 2]), [S]),
        ("LayerNormalization(center=False)", L.LayerNormalization(center=False), [S]),
        ("BatchNormalization()", L.BatchNormalization(), [S]),
        ("BatchNormalization(scale=False)", L.BatchNormalization(scale=False), [S]),
        ("Attention()", L.Attention(), [(None, 4, 6), S]),
        ("Attention(use_scale=True,score_mode=concat)", L.Attention(use_scale=True, score_mode="concat"), [(None, 4, 6), S]),
        ("AdditiveAttention()", L.AdditiveAttention(), [(None, 4, 6), S]),
        ("AdditiveAttention(use_scale=False)", L.AdditiveAttention(use_scale=False), [(None, 4, 6), S]),
        ("MultiHeadAttention(2,3)", L.MultiHeadAttention(2, 3), [(None, 4, 5), S]),
        ("MultiHeadAttention(2,3,value_dim=4,output_shape=7)", L.MultiHeadAttention(2, 3, value_dim=4, output_shape=7),
         [(None, 4, 5), S, (None, 9, 2)]),
        ("MultiHeadAttention(4,8,use_bias=False)", L.MultiHeadAttention(4, 8, use_bias=False), [(None, 4, 5), S]),
        ("RNN(SimpleRNNCell(5))", L.RNN(L.SimpleRNNCell(5)), [S]),
        ("RNN(LSTMCell(5))", L.RNN(L.LSTMCell(5)), [S]),
        ("RNN(GRUCell(5))", L.RNN(L.GRUCell(5)), [S]),
        ("RNN(GRUCell(5,reset_after=False))", L.RNN(L.GRUCell(5, reset_after=False)), [S]),
        ("RNN([LSTMCell(5),GRUCell(4)])", L.RNN([L.LSTMCell(5), L.GRUCell(4)]), [S]),
        ("ConvLSTM1D(4,3)", L.ConvLSTM1D(4, 3), [(None, 5, 8, 3)]),
        ("ConvLSTM1D(4,3,use_bias=False)", L.ConvLSTM1D(4, 3, use_bias=False), [(None, 5, 8, 3)]),
        ("ConvLSTM2D(4,(3,2),padding=same)", L.ConvLSTM2D(4, (3, 2), padding="same"), [(None, 5, 6, 7, 3)]),
        ("Bidirectional(RNN(LSTMCell(5)))", L.Bidirectional(L.RNN(L.LSTMCell(5))), [S]),
    ]:
        print(f"{name}: {build(layer, *shapes)}")


def reference(path: str) -> None:
    import keras
    saved = {}
    for name, layer, call in cases(keras.layers, "keras"):
        call(layer)  # builds
        for i, w in enumerate(layer.get_weights()):
            saved[f"{name}/w{i}"] = np.asarray(w)
        for i, y in enumerate(call(layer)):
            saved[f"{name}/y{i}"] = np.asarray(y)
    np.savez(path, **saved)
    print(f"wrote {len(saved)} arrays to {path}")


def compare(path: str) -> None:
    import torch
    from rnnkit.keras import layers as L
    ref = np.load(path)
    worst, n_outputs = 0.0, 0
    for name, layer, call in cases(L, "rnnkit"):
        call(layer)
        weights = [ref[f"{name}/w{i}"] for i in range(sum(k.startswith(f"{name}/w") for k in ref.files))]
        if weights:
            layer.set_weights(weights)
        outs = call(layer)
        for i, y in enumerate(outs):
            want = ref[f"{name}/y{i}"]
            got = y.detach().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
            err = float(np.abs(got.astype(float) - want.astype(float)).max()) if got.shape == want.shape else float("inf")
            worst, n_outputs = max(worst, err), n_outputs + 1
            print(f"{name}[{i}] {tuple(got.shape)} max |rnnkit - keras| = {err:.2e}")
    print(f"{n_outputs} outputs compared; largest difference: {worst:.2e}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "counts":
        counts()
    elif command in ("reference", "compare") and len(sys.argv) == 3:
        (reference if command == "reference" else compare)(sys.argv[2])
    else:
        sys.exit(__doc__)
