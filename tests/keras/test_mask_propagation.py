"""Masks as they propagate through stacks of the new layers in a Sequential model.

The test: a padded batch must give each sequence the result it gets alone, unpadded,
wherever every layer on the way respects or passes the mask; and the layers that drop the
mask in Keras 3 (Conv1D, pooling, reshaping) must drop it here too.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit import Sequential
from rnnkit.data import pad_sequences
from rnnkit.keras.layers import (
    RNN,
    Bidirectional,
    Conv1D,
    Dense,
    Dropout,
    Embedding,
    GaussianNoise,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    GRUCell,
    LayerNormalization,
    LSTMCell,
    MaxPooling1D,
    SpatialDropout1D,
    UpSampling1D,
)

SEQS = [[5, 3, 8, 1, 9, 2], [4, 7], [6, 6, 2, 9]]


def masked_stack(pool):
    return Sequential([
        Embedding(12, 6, mask_zero=True),
        LayerNormalization(),  # passes the mask
        SpatialDropout1D(0.3),  # passes it (inactive at inference)
        GaussianNoise(0.1),
        Bidirectional(RNN([LSTMCell(5), GRUCell(4)], return_sequences=True)),  # keeps it (return_sequences)
        RNN(GRUCell(3), return_sequences=True, go_backwards=True),  # reverses it with the outputs
        pool,  # consumes it
        Dense(2),
    ])


@pytest.mark.parametrize("pool", [GlobalAveragePooling1D, GlobalMaxPooling1D])
def test_padded_batch_equals_each_sequence_alone(pool):
    torch.manual_seed(0)
    model = masked_stack(pool())
    model.eval()
    for padding in ("post", "pre"):
        batch = torch.tensor(pad_sequences(SEQS, maxlen=8, padding=padding))
        out = model(batch)
        for i, seq in enumerate(SEQS):
            alone = model(torch.tensor([seq]))
            torch.testing.assert_close(out[i], alone[0], rtol=1e-5, atol=1e-6)


def test_layers_that_drop_the_mask_in_keras_drop_it_here():
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    for layer in (Conv1D(3, 3, padding="same"), MaxPooling1D(), UpSampling1D(), GlobalAveragePooling1D()):
        layer(x)
        assert layer.compute_mask(x, mask) is None
    for layer in (LayerNormalization(), Dropout(0.2), SpatialDropout1D(0.2), GaussianNoise(0.1)):
        layer(x)
        assert layer.compute_mask(x, mask) is mask
    rnn = RNN(LSTMCell(3), return_sequences=True, go_backwards=True)
    rnn(x)
    assert torch.equal(rnn.compute_mask(x, mask), mask.flip(1))
    assert RNN(LSTMCell(3)).compute_mask(x, mask) is None
