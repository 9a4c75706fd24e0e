"""save/load_model and save/load_weights: identical predictions, and clean refusals."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rnnkit.keras import layers, optimizers
from rnnkit.keras.saving import load_model
from rnnkit.keras.models import Model, Sequential


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def token_data(n: int = 12, T: int = 9, vocab: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, T))
    for i in range(n):  # right padding, so the mask matters
        x[i, rng.integers(3, T + 1):] = 0
    return x, rng.integers(0, 3, size=n)


def text_model() -> Sequential:
    return Sequential([
        layers.Embedding(50, 8, mask_zero=True),
        layers.LSTM(6, return_sequences=True),
        layers.Bidirectional(layers.GRU(5, return_sequences=True), merge_mode="concat"),
        layers.Bidirectional(layers.LSTM(4)),
        layers.Dense(7, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])


@pytest.fixture
def trained(tmp_path):
    x, y = token_data()
    model = text_model()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.003, clipnorm=1.0),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    return model, path, x, y


def test_round_trip_gives_identical_predictions(trained):
    model, path, x, y = trained
    loaded = load_model(path)
    assert type(loaded) is Sequential and [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert loaded.count_params() == model.count_params()
    # The compile settings came back, so it trains and evaluates straight away.
    assert isinstance(loaded.optimizer, optimizers.Adam) and loaded.optimizer.learning_rate == 0.003
    assert loaded.optimizer.clipnorm == 1.0 and loaded.metrics_names == ["loss", "accuracy"]
    assert loaded.evaluate(x, y, verbose=0)[0] == pytest.approx(model.evaluate(x, y, verbose=0)[0], rel=1e-6)
    loaded.fit(x, y, epochs=1, verbose=0)
    assert load_model(path, compile=False).optimizer is None


def test_round_trip_before_any_data_and_weights_only(tmp_path):
    model = Sequential([layers.Input(shape=(None, 3)), layers.SimpleRNN(4), layers.Dense(2)])
    model.save(tmp_path / "m.safetensors")
    x = np.random.default_rng(1).standard_normal((5, 7, 3)).astype("float32")
    np.testing.assert_array_equal(load_model(tmp_path / "m.safetensors").predict(x, verbose=0), model.predict(x, verbose=0))
    model.save_weights(tmp_path / "w.safetensors")
    twin = Sequential([layers.SimpleRNN(4), layers.Dense(2)])  # unbuilt: built from the shape in the file
    twin.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built yet"):
        Sequential([layers.LSTM(3)]).save(tmp_path / "m.safetensors")


class Forecaster(Model):
    def __init__(self, units: int):
        super().__init__()
        self.gru = layers.GRU(units, input_shape=(None, 2))
        self.head = layers.Dense(1)

    def call(self, inputs):
        return self.head(self.gru(inputs))


def test_subclassed_model_saves_weights_only(tmp_path):
    model = Forecaster(5)
    x = np.random.default_rng(2).standard_normal((4, 6, 2)).astype("float32")
    expected = model.predict(x, verbose=0)
    with pytest.raises(NotImplementedError, match=r"Forecaster.*get_config.*register_keras_serializable.*save_weights"):
        model.save(tmp_path / "m.safetensors")
    model.save_weights(tmp_path / "w.safetensors")
    twin = Forecaster(5)
    twin.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), expected)
    with pytest.raises(ValueError, match=r"does not fit model .*shape"):
        Forecaster(6).load_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="holds weights only"):
        load_model(tmp_path / "w.safetensors")


def test_rejects_files_that_are_not_rnnkit_models(tmp_path):
    cases = {
        "empty.safetensors": b"",
        "text.txt": b"hello, I am a CSV file\n1,2,3\n",
        "random.bin": np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "pickle.pt": None,
        "plain.safetensors": None,
    }
    torch.save({"w": torch.ones(2)}, tmp_path / "pickle.pt")
    save_file({"w": torch.ones(2)}, str(tmp_path / "plain.safetensors"))
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="is not an rnnkit model file"):
            load_model(tmp_path / name)
    with pytest.raises(ValueError, match="directory"):
        load_model(tmp_path)


def test_rejects_corrupted_files_cleanly(trained, tmp_path):
    _, path, x, _ = trained
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    bad = tmp_path / "bad.safetensors"
    # Truncations, at the header and inside the tensor data.
    for cut in (4, 8, 20, 8 + n // 2, 8 + n, len(blob) // 2, len(blob) - 1):
        bad.write_bytes(blob[:cut])
        with pytest.raises(ValueError):
            load_model(bad)
    # A flipped byte in the tensor data: caught by the checksum.
    flipped = bytearray(blob)
    flipped[8 + n + 100] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupted"):
        load_model(bad)
    # Random flips anywhere: either a clean ValueError or a model that still works.
    rng = np.random.default_rng(4)
    for _ in range(40):
        flipped = bytearray(blob)
        for i in rng.integers(0, len(blob), size=3):
            flipped[i] = int(rng.integers(0, 256))
        bad.write_bytes(bytes(flipped))
        try:
            model = load_model(bad)
        except ValueError:
            continue
        assert model.predict(x, verbose=0).shape == (len(x), 3)
    # A config that names a class rnnkit does not have.
    header = json.loads(blob[8 : 8 + n])
    config = json.loads(header["__metadata__"]["config"])
    config["config"]["layers"][1]["class_name"] = "os.system"
    header["__metadata__"]["config"] = json.dumps(config)
    new_header = json.dumps(header).encode()
    bad.write_bytes(struct.pack("<Q", len(new_header)) + new_header + blob[8 + n :])
    with pytest.raises(ValueError, match="Unknown layer class 'os.system'"):
        load_model(bad)
