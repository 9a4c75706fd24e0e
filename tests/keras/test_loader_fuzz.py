"""Fuzz the loaders (load_model, load_weights, load_checkpoint, fit(resume=True)) with damaged files.

The only acceptable failure is a ValueError: no other exception, no runaway work, no crash, no
unpickling. Cases come from a fixed-seed loop: random byte flips, truncations, garbage and
huge headers, and files whose checksum was recomputed after the JSON or tensors inside were
changed (so the damage reaches the config and state parsers, not just the checksum).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rnnkit.keras import layers
from rnnkit.keras.saving import load_model
from rnnkit.keras.models import Sequential
from rnnkit.keras.training.checkpoint import FILENAME, load_checkpoint

SEED = 20240611


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    """One good file of each kind, from a small trained model."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(16, 7))
    x[::2, 4:] = 0
    y = rng.integers(0, 3, size=16)
    model = make_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, checkpoint_dir=tmp / "ckpt", checkpoint_every=3)
    model.save(tmp / "model.safetensors")
    model.save_weights(tmp / "weights.safetensors")
    # A checkpoint from inside an epoch (it holds the data order and the metric accumulators).
    fresh = make_model()
    fresh.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    at_checkpoint: dict[str, torch.Tensor] = {}
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(x, y, epochs=1, batch_size=4, verbose=0, checkpoint_dir=tmp / "mid", checkpoint_every=3,
                  callbacks=[_crash_after(4, fresh, at_checkpoint)])
    return {"model": (tmp / "model.safetensors").read_bytes(), "weights": (tmp / "weights.safetensors").read_bytes(),
            "checkpoint": (tmp / "mid" / FILENAME).read_bytes(), "data": (x, y),  # type: ignore[dict-item]
            "outputs": model.predict(x, verbose=0), "weights_at_checkpoint": at_checkpoint}  # type: ignore[dict-item]


def _crash_after(n: int, model, weights_at_3: dict):
    from rnnkit.keras.callbacks import LambdaCallback

    def hook(batch, logs):
        if batch + 1 == 3:  # the checkpoint (every 3 batches) holds these weights
            weights_at_3.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        if batch + 1 == n:
            raise KeyboardInterrupt  # a crash: the checkpoint written after batch 3 stays

    return LambdaCallback(on_train_batch_end=hook)


def make_model() -> Sequential:
    return Sequential([
        layers.Embedding(30, 5, mask_zero=True),
        layers.Bidirectional(layers.GRU(4, return_sequences=True)),
        layers.LSTM(3),
        layers.Dense(3, activation="softmax"),
    ])


# -- the loaders under test ----------------------------------------------------------------

def load_as_model(path: Path, files: dict) -> None:
    load_model(path)


def load_as_weights(path: Path, files: dict) -> None:
    make_model().load_weights(path)


def load_as_checkpoint(path: Path, files: dict) -> None:
    load_checkpoint(path)


def resume_from(path: Path, files: dict) -> None:
    d = path.parent / "resume"
    d.mkdir(exist_ok=True)
    (d / FILENAME).write_bytes(path.read_bytes())
    x, y = files["data"]
    model = make_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, checkpoint_dir=d, resume=True, callbacks=[_batch_limit(x)])


def _batch_limit(x):
    """Stops a resumed fit that runs more batches than one epoch has: a damaged checkpoint must
    not send fit into a runaway loop (an epoch or batch count of 10**12, say)."""
    from rnnkit.keras.callbacks import LambdaCallback

    limit = -(-len(x) // 4)
    seen = []

    def hook(batch, logs):
        seen.append(batch)
        if len(seen) > limit:
            raise RuntimeError(f"the resumed fit ran {len(seen)} batches, more than the {limit} of its one epoch")

    return LambdaCallback(on_train_batch_begin=hook)


LOADERS: dict[str, list[Callable[[Path, dict], None]]] = {
    "model": [load_as_model, load_as_weights],
    "weights": [load_as_weights, load_as_model],
    "checkpoint": [load_as_checkpoint, resume_from],
}


# -- ways to damage a file ------------------------------------------------------------------

def split(blob: bytes) -> tuple[dict, int]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), n


def resign(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A file with a valid checksum for whatever it holds (as rnnkit's writer computes it)."""
    metadata = {k: v for k, v in metadata.items() if k != "sha256"}
    draft = st_save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", draft[:8])
    return st_save(tensors, metadata={**metadata, "sha256": hashlib.sha256(draft[8 + n :]).hexdigest()})


def parts(blob: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    header, _ = split(blob)
    return dict(st_load(blob)), dict(header["__metadata__"])


def flip_bytes(rng: random.Random, blob: bytes, header_only: bool = False) -> bytes:
    b = bytearray(blob)
    _, n = split(blob)
    hi = 8 + n if header_only else len(b)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(0, hi)
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def mutate_json(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """Replace one random leaf or container in a JSON value with something of another kind."""
    weird = [None, True, -1, 0, 10**12, 2**70, -(10**9), 1.5, float("nan"), "x", "", [], {}, [1, 2], {"a": 1},
             "LSTM", "Sequential", [None, None, 10**9]]
    if isinstance(value, dict) and value and rng.random() < 0.85:
        key = rng.choice(sorted(value))
        out = dict(value)
        if rng.random() < 0.15:
            del out[key]
        else:
            out[key] = mutate_json(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and rng.random() < 0.85:
        i = rng.randrange(len(value))
        out = list(value)
        out[i] = mutate_json(rng, value[i], depth + 1)
        return out
    return rng.choice(weird)


def mutate_metadata(rng: random.Random, blob: bytes) -> bytes:
    tensors, meta = parts(blob)
    key = rng.choice([k for k in meta if k in ("config", "state", "build_input_shape")] or ["format"])
    r = rng.random()
    if key in meta and r < 0.75:
        meta[key] = json.dumps(mutate_json(rng, json.loads(meta[key])))
    elif r < 0.85:
        meta[key] = meta.get(key, "")[: rng.randrange(0, 40)]  # broken JSON
    else:
        meta[rng.choice(["format", "version"])] = rng.choice(["rnnkit.model", "rnnkit.weights", "rnnkit.checkpoint",
                                                              "2", "", "pickle"])
    return resign(tensors, meta)


def mutate_tensors(rng: random.Random, blob: bytes) -> bytes:
    tensors, meta = parts(blob)
    key = rng.choice(sorted(tensors))
    t = tensors[key]
    r = rng.random()
    if r < 0.2:
        del tensors[key]
    elif r < 0.4:
        tensors[key] = t.to(rng.choice([torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8, torch.bool]))
    elif r < 0.6:
        tensors[key] = torch.zeros(tuple(s + rng.choice([-1, 1, 3]) for s in t.shape if s > 1) or (2,))
    elif r < 0.7:
        tensors[key] = t.reshape(-1)
    elif r < 0.8:
        tensors["extra/" + key] = t.clone()
    elif r < 0.9:
        tensors[key] = torch.full_like(t, float("nan")) if t.is_floating_point() else t.flip(0)
    else:
        tensors[key] = torch.zeros(())
    return resign(tensors, meta)


def garbage_header(rng: random.Random, blob: bytes) -> bytes:
    _, n = split(blob)
    body = blob[8 + n :]
    choice = rng.randrange(8)
    if choice == 0:
        return struct.pack("<Q", rng.choice([2**64 - 1, 2**63, 10**15, len(blob), n + 1])) + blob[8:]
    if choice == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if choice == 2:
        header = rng.choice([b"[]", b"5", b'"x"', b"null", b'{"__metadata__": 5}', b'{"__metadata__": {"format": 1}}',
                             b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 99999999999]}}'])
        return struct.pack("<Q", len(header)) + header + body
    if choice == 3:  # a pickle (what torch.save writes): must be refused unread
        import pickle

        return pickle.dumps({"weights": [1, 2, 3]})
    if choice == 4:  # a safetensors file from someone else
        return st_save({"w": torch.zeros(3)}, metadata={"format": "pt"})
    if choice == 5:
        header, _ = split(blob)
        header = {k: (dict(v, data_offsets=[0, 10**12]) if isinstance(v, dict) and "data_offsets" in v else v)
                  for k, v in header.items()}
        text = json.dumps(header).encode()
        return struct.pack("<Q", len(text)) + text + body
    if choice == 6:
        return b"\x00" * rng.randrange(0, 16)
    return blob[:8] + b"{" * 20 + blob[28:]


# -- the fuzz loop --------------------------------------------------------------------------

def cases(files: dict) -> list[tuple[str, str, bytes]]:
    rng = random.Random(SEED)
    out: list[tuple[str, str, bytes]] = []
    for kind in ("model", "weights", "checkpoint"):
        blob = files[kind]
        step = max(1, len(blob) // 24)
        out += [(kind, f"truncated at {k}", blob[:k]) for k in range(0, len(blob), step)]
        out += [(kind, "byte flips", flip_bytes(rng, blob)) for _ in range(12)]
        out += [(kind, "header byte flips", flip_bytes(rng, blob, header_only=True)) for _ in range(40)]
        out += [(kind, "garbage header", garbage_header(rng, blob)) for _ in range(10)]
        out += [(kind, "re-signed metadata", mutate_metadata(rng, blob)) for _ in range(50)]
        out += [(kind, "re-signed tensors", mutate_tensors(rng, blob)) for _ in range(12)]
    return out


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def test_loaders_fail_only_with_a_clean_value_error(files, tmp_path):
    all_cases = cases(files)
    assert len(all_cases) >= 300
    outcomes = {"refused": 0, "loaded": 0}
    failures: list[str] = []
    peak_before = _peak_rss_mb()
    warnings.simplefilter("ignore")  # NaN weights that load make fit warn about skipped steps
    for i, (kind, what, blob) in enumerate(all_cases):
        path = tmp_path / f"case{i}.safetensors"
        path.write_bytes(blob)
        for load in LOADERS[kind]:
            try:
                load(path, files)
                outcomes["loaded"] += 1  # e.g. a flip in an unused float bit that keeps a valid checksum
            except ValueError as e:
                assert str(e), f"case {i} ({kind}, {what}): empty message"
                outcomes["refused"] += 1
            except Exception as e:  # noqa: BLE001 - anything else is the bug this test looks for
                failures.append(f"case {i} ({kind}, {what}) with {load.__name__}: {type(e).__name__}: {e}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:15])
    # Some damage is harmless (a NaN weight, a dtype that casts, a field the loader does not read).
    assert outcomes["refused"] > 0.75 * (outcomes["refused"] + outcomes["loaded"])
    # No loader may believe a header's sizes and allocate for them: the files are a few kB, and the
    # process's peak memory must stay where it was (up to noise). This, and the batch limit of
    # a resumed fit, bound the work each case does, whatever the machine's load.
    assert _peak_rss_mb() - peak_before < 200, f"peak memory grew by {_peak_rss_mb() - peak_before:.0f} MB"


def test_good_files_still_load(files, tmp_path):
    x, y = files["data"]
    paths = {}
    for kind in ("model", "weights", "checkpoint"):
        paths[kind] = tmp_path / f"{kind}.safetensors"
        paths[kind].write_bytes(files[kind])
    # The saved model (loaded whole, or its weights only) and the saved weights give the trained
    # model's outputs. (A weights file is refused by load_model, by design.)
    for kind, whole in (("model", True), ("model", False), ("weights", False)):
        if whole:
            loaded = load_model(paths[kind])
        else:
            loaded = make_model()
            loaded.load_weights(paths[kind])
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), files["outputs"],
                                      err_msg=f"{kind} file, loaded {'whole' if whole else 'as weights'}")
    # The checkpoint holds the weights after batch 3 of 4, and a resume runs the one batch left.
    ckpt = load_checkpoint(paths["checkpoint"])
    assert ckpt.progress.batch == 3
    expected = files["weights_at_checkpoint"]
    assert ckpt.part("model").keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(ckpt.part("model")[name], value), name
    from rnnkit.keras.callbacks import LambdaCallback

    seen: list[int] = []
    d = tmp_path / "resume"
    d.mkdir()
    (d / FILENAME).write_bytes(files["checkpoint"])
    model = make_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, checkpoint_dir=d, resume=True,
              callbacks=[LambdaCallback(on_train_batch_begin=lambda batch, logs: seen.append(batch))])
    assert seen == [3]


def test_a_pickle_is_never_unpickled(tmp_path):
    import pickle

    class Bomb:
        def __reduce__(self):
            return (Path(tmp_path / "exploded").write_text, ("boom",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Bomb()))
    for load in (load_model, lambda p: make_model().load_weights(p), load_checkpoint):
        with pytest.raises(ValueError, match="not an rnnkit"):
            load(path)
    assert not (tmp_path / "exploded").exists()
