"""One Keras 3 user program run twice, with only the import changed: Keras 3 (JAX) and rnnkit.keras.

    KERAS_BACKEND=jax /path/to/keras-venv/bin/python scripts/keras_program_parity.py keras /tmp/kp.npz
    python scripts/keras_program_parity.py rnnkit /tmp/kp.npz

The program: a functional model with two inputs (token ids through Embedding(mask_zero=True) and
an LSTM, plus a feature vector), Concatenate, a softmax Dense; compiled with SGD,
sparse_categorical_crossentropy, metrics and weighted_metrics; predict, evaluate with
sample_weight, fit for 2 epochs with sample_weight and shuffle=False, evaluate again. The Keras
half saves its initial weights and every result; the rnnkit half starts from those weights
(``set_weights``, Keras layout) and prints the largest difference of each result.
"""

from __future__ import annotations

import sys

import numpy as np

RNG = np.random.default_rng(0)
N, T, V = 64, 7, 20
IDS = RNG.integers(1, V, size=(N, T)).astype("int32")
for i, n in enumerate(RNG.integers(2, T + 1, size=N)):
    IDS[i, n:] = 0  # padding at the end, masked by mask_zero
AUX = RNG.standard_normal((N, 3)).astype("float32")
Y = RNG.integers(0, 3, size=N).astype("int32")
SW = RNG.uniform(0.2, 2.0, size=N).astype("float32")


def program(keras):
    layers = keras.layers
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    aux = keras.Input(shape=(3,), name="aux")
    h = layers.LSTM(16)(layers.Embedding(V, 8, mask_zero=True)(ids))
    out = layers.Dense(3, activation="softmax")(layers.Concatenate()([h, aux]))
    model = keras.Model([ids, aux], out)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    return model


def run(model):
    res = {"predict": model.predict([IDS, AUX], batch_size=16, verbose=0)}
    ev = model.evaluate([IDS, AUX], Y, sample_weight=SW, batch_size=16, verbose=0, return_dict=True)
    res["eval_before"] = np.array([ev["loss"]])
    hist = model.fit([IDS, AUX], Y, sample_weight=SW, batch_size=16, epochs=2, shuffle=False, verbose=0)
    res["fit_loss"] = np.array(hist.history["loss"])
    ev = model.evaluate([IDS, AUX], Y, sample_weight=SW, batch_size=16, verbose=0, return_dict=True)
    res["eval_after"] = np.array([ev["loss"]])
    res["predict_after"] = model.predict([IDS, AUX], batch_size=16, verbose=0)
    return res


def main() -> None:
    which, path = sys.argv[1], sys.argv[2]
    if which == "keras":
        import keras

        keras.utils.set_random_seed(0)
        model = program(keras)
        weights = [np.asarray(w) for w in model.get_weights()]
        res = run(model)
        np.savez(path, **{f"w{i}": w for i, w in enumerate(weights)}, **res)
        print("keras", keras.__version__, "backend", keras.backend.backend(), "saved", path)
        return
    import rnnkit.keras as keras

    ref = np.load(path)
    model = program(keras)
    model([IDS[:2], AUX[:2]])  # build
    n = len([k for k in ref.files if k.startswith("w")])
    model.set_weights([ref[f"w{i}"] for i in range(n)])
    res = run(model)
    for k, v in res.items():
        print(f"{k:14} max |rnnkit - keras| = {np.max(np.abs(np.asarray(v, dtype=np.float64) - ref[k])):.2e}")


if __name__ == "__main__":
    main()
