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


# --------------------------------------------------------------------------- functional and subclassed models

from rnnkit.keras.saving import register_keras_serializable  # noqa: E402


def _seq2seq_functional():
    import rnnkit.keras as keras

    enc_in = keras.Input(shape=(None,), dtype="int64", name="enc_tokens")
    emb = layers.Embedding(12, 4, mask_zero=True, name="emb")  # shared by encoder and decoder
    _, h, c = layers.LSTM(5, return_state=True, name="encoder")(emb(enc_in))
    dec_in = keras.Input(shape=(None,), dtype="int64", name="dec_tokens")
    seq = layers.LSTM(5, return_sequences=True, name="decoder")(emb(dec_in), initial_state=[h, c])
    probs = layers.Dense(12, activation="softmax", name="next")(seq)
    score = layers.Dense(1, name="score")(layers.Concatenate()([h, c]))
    return keras.Model({"enc_tokens": enc_in, "dec_tokens": dec_in}, [probs, score])


def _tokens(seed):
    rng = np.random.default_rng(seed)
    return {"enc_tokens": rng.integers(0, 12, (6, 7)), "dec_tokens": rng.integers(1, 12, (6, 4))}


def test_functional_round_trip_with_shared_layers_and_several_outputs(tmp_path):
    model = _seq2seq_functional()
    x = _tokens(5)
    model.compile("adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.3],
                  metrics=[["accuracy"], None])
    y = [np.random.default_rng(6).integers(0, 12, (6, 4)), np.zeros((6, 1), "float32")]
    model.fit(x, y, epochs=1, verbose=0)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "seq2seq.keras"
    model.save(path)
    loaded = load_model(path)
    got = loaded.predict(x, verbose=0)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert loaded.count_params() == model.count_params()  # the shared embedding once
    assert loaded.output_names == ["next", "score"]
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "next_loss", "score_loss", "next_accuracy"}
    assert logs["loss"] == pytest.approx(logs["next_loss"] + 0.3 * logs["score_loss"], rel=1e-5)
    # A sub-model cut from the loaded model shares its weights and matches the original's.
    import rnnkit.keras as keras

    enc = keras.Model(loaded.input["enc_tokens"], loaded.get_layer("encoder").output)
    ref = keras.Model(model.input["enc_tokens"], model.get_layer("encoder").output)
    for a, b in zip(enc.predict(x["enc_tokens"], verbose=0), ref.predict(x["enc_tokens"], verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_nested_functional_and_sequential_models_round_trip(tmp_path):
    import rnnkit.keras as keras

    inner_in = keras.Input(shape=(None, 3))
    inner = keras.Model(inner_in, layers.GRU(4, return_sequences=True)(inner_in), name="inner")
    head = Sequential([keras.Input(shape=(None, 4)), layers.LSTM(2), layers.Dense(1)], name="head")
    x = keras.Input(shape=(None, 3))
    model = keras.Model(x, head(inner(x)))
    data = np.random.default_rng(7).standard_normal((3, 5, 3)).astype("float32")
    model.save(tmp_path / "nested.safetensors")
    loaded = load_model(tmp_path / "nested.safetensors")
    np.testing.assert_array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))
    assert isinstance(loaded.get_layer("head"), Sequential) and loaded.get_layer("inner").name == "inner"


def test_architecture_mismatch_names_the_layer_and_shapes(tmp_path):
    import rnnkit.keras as keras

    def build(units):
        inp = keras.Input(shape=(None, 3), name="x")
        return keras.Model(inp, layers.Dense(1, name="out")(layers.LSTM(units, name="enc")(inp)))

    build(4).save_weights(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"weight 'enc\.cell\.weight_ih' has shape \(16, 3\) in the file and \(20, 3\)"):
        build(5).load_weights(tmp_path / "w.safetensors")


@register_keras_serializable(package="tests")
class Tagger(Model):
    """A subclassed model that can be saved: get_config returns its constructor arguments."""

    def __init__(self, units: int, vocab: int, **kwargs):
        super().__init__(**kwargs)
        self.units, self.vocab = units, vocab
        self.emb = layers.Embedding(vocab, 3, mask_zero=True)
        self.rnn = layers.Bidirectional(layers.GRU(units, return_sequences=True))
        self.out = layers.Dense(2, activation="softmax")

    def call(self, inputs):
        x = self.emb(inputs)
        return self.out(self.rnn(x, mask=self.emb.compute_mask(inputs)))

    def get_config(self):
        return {"units": self.units, "vocab": self.vocab, "name": self.name}


def test_subclassed_model_with_get_config_round_trips(tmp_path):
    model = Tagger(4, 9, name="tagger")
    ids = np.random.default_rng(8).integers(0, 9, (5, 6))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ids, np.random.default_rng(9).integers(0, 2, (5, 6)), epochs=1, verbose=0)
    expected = model.predict(ids, verbose=0)
    model.save(tmp_path / "tagger.keras")
    loaded = load_model(tmp_path / "tagger.keras")
    assert type(loaded) is Tagger and loaded.name == "tagger" and loaded.compiled
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), expected)


def test_subclassed_model_needs_registration_to_load(tmp_path):
    class Unregistered(Tagger):
        pass

    model = Unregistered(2, 5)
    model(np.zeros((1, 3), "int64"))
    model.save(tmp_path / "u.keras")
    with pytest.raises(ValueError, match=r"Could not locate class 'Unregistered'.*register_keras_serializable"):
        load_model(tmp_path / "u.keras")
    loaded = load_model(tmp_path / "u.keras", custom_objects={"Unregistered": Unregistered})
    ids = np.array([[1, 2, 0]])
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
