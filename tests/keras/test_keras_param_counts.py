"""Parameter counts of the layers with weights equal Keras's.

Every number below was printed by real Keras (3.15.1, JAX backend, /work/venvs/keras) on
2026-12-02, building each layer on the same input shapes (batch None):

    KERAS_BACKEND=jax /work/venvs/keras/bin/python scripts/keras_parity.py counts

BatchNormalization counts its moving statistics, as Keras does (non-trainable weights).
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.keras.layers import (
    RNN,
    AdditiveAttention,
    Attention,
    BatchNormalization,
    Bidirectional,
    Conv1D,
    ConvLSTM1D,
    ConvLSTM2D,
    GRUCell,
    LayerNormalization,
    LSTMCell,
    MultiHeadAttention,
    SimpleRNNCell,
)

S = (2, 9, 6)  # built on concrete inputs of these shapes (Keras used batch None)

KERAS_COUNTS = [
    ("Conv1D(8,3)", lambda: Conv1D(8, 3), [S], 152),
    ("Conv1D(8,3,use_bias=False)", lambda: Conv1D(8, 3, use_bias=False), [S], 144),
    ("Conv1D(8,5,groups=2)", lambda: Conv1D(8, 5, groups=2), [S], 128),
    ("Conv1D(8,3,padding=causal,dilation_rate=2)", lambda: Conv1D(8, 3, padding="causal", dilation_rate=2), [S], 152),
    ("LayerNormalization()", lambda: LayerNormalization(), [S], 12),
    ("LayerNormalization(axis=[1,2])", lambda: LayerNormalization(axis=[1, 2]), [S], 108),
    ("LayerNormalization(center=False)", lambda: LayerNormalization(center=False), [S], 6),
    ("BatchNormalization()", lambda: BatchNormalization(), [S], 24),
    ("BatchNormalization(scale=False)", lambda: BatchNormalization(scale=False), [S], 18),
    ("Attention()", lambda: Attention(), [(2, 4, 6), S], 0),
    ("Attention(use_scale=True,score_mode=concat)", lambda: Attention(use_scale=True, score_mode="concat"), [(2, 4, 6), S], 2),
    ("AdditiveAttention()", lambda: AdditiveAttention(), [(2, 4, 6), S], 6),
    ("AdditiveAttention(use_scale=False)", lambda: AdditiveAttention(use_scale=False), [(2, 4, 6), S], 0),
    ("MultiHeadAttention(2,3)", lambda: MultiHeadAttention(2, 3), [(2, 4, 5), S], 155),
    ("MultiHeadAttention(2,3,value_dim=4,output_shape=7)",
     lambda: MultiHeadAttention(2, 3, value_dim=4, output_shape=7), [(2, 4, 5), S, (2, 9, 2)], 173),
    ("MultiHeadAttention(4,8,use_bias=False)", lambda: MultiHeadAttention(4, 8, use_bias=False), [(2, 4, 5), S], 704),
    ("RNN(SimpleRNNCell(5))", lambda: RNN(SimpleRNNCell(5)), [S], 60),
    ("RNN(LSTMCell(5))", lambda: RNN(LSTMCell(5)), [S], 240),
    ("RNN(GRUCell(5))", lambda: RNN(GRUCell(5)), [S], 195),
    ("RNN(GRUCell(5,reset_after=False))", lambda: RNN(GRUCell(5, reset_after=False)), [S], 180),
    ("RNN([LSTMCell(5),GRUCell(4)])", lambda: RNN([LSTMCell(5), GRUCell(4)]), [S], 372),
    ("ConvLSTM1D(4,3)", lambda: ConvLSTM1D(4, 3), [(2, 5, 8, 3)], 352),
    ("ConvLSTM1D(4,3,use_bias=False)", lambda: ConvLSTM1D(4, 3, use_bias=False), [(2, 5, 8, 3)], 336),
    ("ConvLSTM2D(4,(3,2),padding=same)", lambda: ConvLSTM2D(4, (3, 2), padding="same"), [(2, 5, 6, 7, 3)], 688),
    ("Bidirectional(RNN(LSTMCell(5)))", lambda: Bidirectional(RNN(LSTMCell(5))), [S], 480),
]


@pytest.mark.parametrize("name, make, shapes, expected", KERAS_COUNTS, ids=[c[0] for c in KERAS_COUNTS])
def test_parameter_count_equals_keras(name, make, shapes, expected):
    layer = make()
    inputs = [torch.randn(*s) for s in shapes]
    if isinstance(layer, MultiHeadAttention):
        layer(*inputs)
    elif len(inputs) > 1:
        layer(inputs)
    else:
        layer(inputs[0])
    assert layer.count_params() == expected
