"""The seeds' Keras snippets, verbatim except for their import lines.

Lines marked ``# changed`` are the only edits: imports, and data the snippets load
from elsewhere (IMDB, data.csv, the GRU snippet's undefined x_train) replaced by
small random data of the same form.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_embedding_lstm_dense_summary(capsys):
    import numpy as np  # noqa: F811
    import rnnkit as tf  # changed: import tensorflow as tf  # noqa: F401
    import rnnkit.keras as keras  # changed: from tensorflow import keras
    from rnnkit.keras import layers  # changed: from tensorflow.keras import layers

    model = keras.Sequential()
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.LSTM(128))
    model.add(layers.Dense(10))
    model.summary()

    out = capsys.readouterr().out
    # Keyed by layer type: names count up across a session (lstm, lstm_1, ...), as in Keras.
    rows = {m.group(1): line.rstrip() for line in out.splitlines() if (m := re.match(r" \S+ \((\w+)\) ", line))}
    assert "(None, None, 64)" in rows["Embedding"] and rows["Embedding"].endswith("64000")
    assert "(None, 128)" in rows["LSTM"] and rows["LSTM"].endswith("98816")
    assert "(None, 10)" in rows["Dense"] and rows["Dense"].endswith("1290")
    assert "Total params: 164,106" in out
    assert "Trainable params: 164,106" in out
    assert "Non-trainable params: 0" in out


@pytest.fixture
def data_csv(tmp_path, monkeypatch):
    """A small data.csv of the seed's form: feature columns, then a 0/1 label."""
    features = np.random.default_rng(0).standard_normal((24, 5))
    np.savetxt(tmp_path / "data.csv", np.c_[features, features.sum(1) > 0], delimiter=",")
    monkeypatch.chdir(tmp_path)


def test_lstm_on_csv_rows(data_csv, capsys):
    import numpy as np  # noqa: F811
    import rnnkit as K  # changed: import keras.backend as K  # noqa: F401
    from rnnkit.keras.models import Sequential  # changed: from keras.models import Sequential
    from rnnkit.keras.layers import LSTM, Dense  # changed: from keras.layers import LSTM, Dense
    data = np.loadtxt('data.csv', delimiter=',')
    x_train = data[:,:-1]
    y_train = data[:,-1]
    model = Sequential()
    model.add(LSTM(128, input_shape=(x_train.shape[1],)))
    model.add(Dense(1, activation='sigmoid'))

    model.compile(optimizer='adam', loss='binary_crossentropy',
    metrics=['accuracy'])

    model.fit(x_train, y_train, epochs=10)

    score = model.evaluate(x_train, y_train)

    print('Accuracy:', score[1])

    predictions = model.predict(x_train)

    assert predictions.shape == (24, 1) and 0.0 <= score[1] <= 1.0
    assert "Accuracy:" in capsys.readouterr().out


class _FakeIMDB:  # changed: keras.datasets.imdb, as ragged lists of word ids
    @staticmethod
    def load_data(num_words: int):
        rng = np.random.default_rng(1)

        def split(n):
            x = [list(rng.integers(1, num_words, size=int(rng.integers(20, 300)))) for _ in range(n)]
            return x, rng.integers(0, 2, size=n)

        return split(16), split(8)


def test_bidirectional_lstm_sentiment(capsys):
    imdb = _FakeIMDB  # changed

    import numpy as np  # noqa: F811
    from rnnkit import data as sequence  # changed: from keras.preprocessing import sequence
    from rnnkit.keras.models import Sequential  # changed: from keras.models import Sequential
    from rnnkit.keras.layers import Dense, Dropout, Embedding, LSTM, Bidirectional  # changed: from keras.layers import ...  # noqa: F401
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=10000)
    x_train = sequence.pad_sequences(x_train, maxlen=200)
    x_test = sequence.pad_sequences(x_test, maxlen=200)
    model = Sequential()
    model.add(Embedding(10000, 128, input_length=200))
    model.add(Bidirectional(LSTM(128)))
    model.add(Dense(128, activation='relu'))
    model.add(Dense(1, activation='sigmoid'))
    model.compile(loss='binary_crossentropy',
                                                           optimizer='adam',
    metrics=['accuracy'])
    model.fit(x_train, y_train, epochs=1)  # changed: epochs=10, one epoch keeps the test fast
    score = model.evaluate(x_test, y_test)
    print('Test accuracy:', score[1])

    assert x_train.shape == (16, 200) and len(model.history.history["loss"]) == 1
    assert "Test accuracy:" in capsys.readouterr().out


def test_gru_subclass_model():
    rng = np.random.default_rng(2)  # changed: the snippet's data, which it never defines
    x_train = rng.standard_normal((20, 7, 10)).astype("float32")  # changed
    y_train = rng.standard_normal((20, 128)).astype("float32")  # changed
    x_test = rng.standard_normal((5, 7, 10)).astype("float32")  # changed

    import rnnkit as tf  # changed: import tensorflow as tf

    class GRU(tf.keras.Model):
        def __init__(self, units, input_shape):
            super(GRU, self).__init__()
            self.gru = tf.keras.layers.GRU(units, input_shape=input_shape)
        def call(self, inputs):  # noqa: E301
            outputs = self.gru(inputs)
            return outputs

    model = GRU(128, input_shape=(None, 10))

    model.compile(optimizer='adam', loss='mse')
    model.fit(x_train, y_train, epochs=10)
    predictions = model.predict(x_test)

    assert predictions.shape == (5, 128)
    assert model.history.history["loss"][-1] < model.history.history["loss"][0]
    assert model.count_params() == 3 * 128 * (10 + 128) + 2 * 3 * 128  # Keras: GRU reset_after=True
