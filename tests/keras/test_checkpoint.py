"""Crash-safe checkpoints: SIGKILL at random moments, resume, and reach the same weights bit for bit."""

from __future__ import annotations

import json
import os
import re
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.keras import layers
from rnnkit.keras.models import Sequential
from rnnkit.keras.training.checkpoint import FILENAME, load_checkpoint

# A small training run in its own process: deterministic CPU mode, dropout everywhere (so the RNG
# states matter), shuffling (so the data order matters), Adam (so the optimizer state matters),
# a stateful-free LSTM/GRU stack with a mask. It prints "batch <global index>" after every batch.
TRAIN = textwrap.dedent('''
    import json, sys
    import numpy as np, torch
    from safetensors.torch import save_file
    from rnnkit.keras import callbacks, layers
    from rnnkit.keras.models import Sequential

    # = torch.use_deterministic_algorithms(True) minus its import of torch._inductor (2-3 s per
    # process), which only configures compiled graphs; scripts/kill_resume.py uses the public call.
    torch._C._set_deterministic_algorithms(True)
    torch.set_num_threads(1)
    ckpt_dir, out, epochs, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    np.random.seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(72, 9))
    for i in range(len(x)):
        x[i, rng.integers(3, 10):] = 0  # right padding, masked by Embedding(mask_zero=True)
    y = rng.integers(0, 3, size=72)
    model = Sequential([
        layers.Embedding(30, 6, mask_zero=True),
        layers.GRU(8, return_sequences=True, dropout=0.2, recurrent_dropout=0.1),
        layers.LSTM(7, dropout=0.1),
        layers.Dropout(0.3),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    steps = 8  # ceil(0.9 * 72 / 8)

    def report(batch, logs):
        print("batch", (model._trainer.epoch - 1) * steps + batch, flush=True)

    kwargs = dict(checkpoint_dir=ckpt_dir, checkpoint_every=every, resume=True) if ckpt_dir != "-" else {}
    history = model.fit(x, y, epochs=epochs, batch_size=8, validation_split=0.1, verbose=0,
                        callbacks=[callbacks.LambdaCallback(on_train_batch_end=report)], **kwargs)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    with open(out + ".json", "w") as f:
        json.dump({"history": history.history, "grad_norms": history.grad_norms, "epoch": history.epoch}, f)
    print("done", flush=True)
''')

EPOCHS, EVERY, STEPS = 5, 3, 8


# Only whole report lines count: the kill can land while a line is half written.
_BATCH = re.compile(r"batch \d+")


def run_child(script: Path, ckpt: str, out: Path, kill_at: int | None = None, delay: float = 0.0) -> tuple[int, int]:
    """Run the script; with ``kill_at``, SIGKILL it ``delay`` s after it reports that batch.
    Returns (last batch seen, exit code)."""
    proc = subprocess.Popen([sys.executable, str(script), ckpt, str(out), str(EPOCHS), str(EVERY)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        if _BATCH.fullmatch(line.strip()):
            last = int(line.split()[1])
            if kill_at is not None and last >= kill_at:
                # A delay lands the kill anywhere: inside a step, the validation pass, or a checkpoint write.
                time.sleep(delay)
                os.kill(proc.pid, signal.SIGKILL)
                break
    for line in proc.stdout:  # what it printed before the kill landed
        if _BATCH.fullmatch(line.strip()):
            last = int(line.split()[1])
    proc.stdout.close()
    code = proc.wait()
    if kill_at is None or code != -signal.SIGKILL:
        err = proc.stderr.read() if proc.stderr else ""
        assert code == 0, err
    return last, code


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_sigkill_at_random_steps_then_resume_gives_identical_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    # The uninterrupted run, side by side with the killed ones (it only reads the same data).
    straight = subprocess.Popen([sys.executable, str(script), "-", str(tmp_path / "straight.safetensors"), str(EPOCHS),
                                 str(EVERY)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    rng = random.Random(1234)
    ckpt = tmp_path / "ckpt"
    total = EPOCHS * STEPS
    seen, kills, runs = -1, 0, 0
    while kills < 5 and seen < total - 3:
        target = rng.randint(seen + 1, min(seen + 4, total - 2))
        last, code = run_child(script, str(ckpt), tmp_path / "resumed.safetensors", kill_at=target,
                               delay=rng.choice([0.0, 0.0, rng.uniform(0.0, 0.02)]))
        runs += 1
        if code == -signal.SIGKILL:
            kills += 1
        seen = max(seen, last)
        assert runs < 20
    run_child(script, str(ckpt), tmp_path / "resumed.safetensors")  # to the end
    assert straight.wait() == 0, straight.stderr.read() if straight.stderr else ""
    expected = weights(tmp_path / "straight.safetensors")
    got = weights(tmp_path / "resumed.safetensors")
    assert kills >= 5 and got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    # The History that callbacks and users see is the uninterrupted one, too.
    a = json.loads((tmp_path / "straight.safetensors.json").read_text())
    b = json.loads((tmp_path / "resumed.safetensors.json").read_text())
    assert a == b
    assert not list(ckpt.glob(".*.tmp"))


# -- in-process: resume paths, refusals, the guard ------------------------------------------

@pytest.fixture(autouse=True)
def deterministic():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6, 3)).astype("float32"), rng.integers(0, 2, n).astype("float32")


def model_and_fit(x, y, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    model = Sequential([layers.LSTM(5, dropout=0.2), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, verbose=0, **kwargs)
    return model, history


def same_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


class StopAfter:
    """Raises out of fit after ``n`` batches: an in-process stand-in for a crash."""

    def __init__(self, n: int) -> None:
        from rnnkit.keras.callbacks import LambdaCallback

        self.count = 0

        def hook(batch, logs):
            self.count += 1
            if self.count == n:
                raise KeyboardInterrupt

        self.callback = LambdaCallback(on_train_batch_end=hook)


@pytest.mark.parametrize("crash_after", [1, 4, 5, 7, 10, 15])
def test_resume_inside_and_between_epochs(tmp_path, crash_after):
    x, y = data()
    straight, h1 = model_and_fit(x, y, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        model_and_fit(x, y, epochs=3, checkpoint_dir=tmp_path, checkpoint_every=2,
                      callbacks=[StopAfter(crash_after).callback])
    # Another seed: the weights must come from the checkpoint (after 1 batch there is none yet).
    seed = 99 if crash_after >= 2 else 0
    resumed, h2 = model_and_fit(x, y, seed=seed, epochs=3, checkpoint_dir=tmp_path, checkpoint_every=2, resume=True)
    assert same_weights(straight, resumed)
    assert h1.history == h2.history and h1.grad_norms == h2.grad_norms and h2.epoch == [0, 1, 2]


def test_checkpoint_contents_and_finished_run(tmp_path):
    x, y = data()
    model, _ = model_and_fit(x, y, epochs=2, checkpoint_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path / FILENAME)
    assert ckpt.progress.epoch == 2 and ckpt.progress.order is None
    assert any(k.startswith("optimizer/") for k in ckpt.tensors) and "rng/torch/0" in ckpt.tensors
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.tensors[f"model/{k}"], v)
    # Resuming a finished run trains no further and gives back its history.
    again, history = model_and_fit(x, y, seed=5, epochs=2, checkpoint_dir=tmp_path, resume=True)
    assert same_weights(model, again) and len(history.history["loss"]) == 2
    # More epochs continue from there.
    longer, _ = model_and_fit(x, y, seed=5, epochs=3, checkpoint_dir=tmp_path, resume=True)
    straight, _ = model_and_fit(x, y, epochs=3)
    assert same_weights(longer, straight)


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    x, y = data()
    a, _ = model_and_fit(x, y, epochs=1, checkpoint_dir=tmp_path / "new", resume=True)
    b, _ = model_and_fit(x, y, epochs=1)
    assert same_weights(a, b) and (tmp_path / "new" / FILENAME).is_file()


def test_resume_refuses_other_data_or_settings(tmp_path):
    x, y = data()
    model_and_fit(x, y, epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"training data \(x, y\) differ"):
        model_and_fit(x + 1, y, epochs=2, checkpoint_dir=tmp_path, resume=True)
    torch.manual_seed(0)
    model = Sequential([layers.LSTM(5), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    with pytest.raises(ValueError, match="batch_size=4 differs"):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    other = Sequential([layers.GRU(5), layers.Dense(1, activation="sigmoid")])
    other.compile(optimizer="rmsprop", loss="binary_crossentropy")
    with pytest.raises(ValueError, match="does not fit model"):
        other.fit(x, y, batch_size=8, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"resume": True}, r"`resume=True` needs `checkpoint_dir`"),
    ({"checkpoint_every": 5}, r"`checkpoint_every` needs `checkpoint_dir`"),
    ({"checkpoint_dir": "x", "checkpoint_every": 0}, r"`checkpoint_every`, expected a positive integer"),
    ({"checkpoint_dir": "x", "resume": "yes"}, r"`resume`, expected True or False"),
    ({"checkpoint_dir": 3}, r"`checkpoint_dir`, expected a directory path"),
])
def test_bad_checkpoint_arguments(kwargs, match):
    x, y = data(8)
    with pytest.raises(ValueError, match=match):
        model_and_fit(x, y, epochs=1, **kwargs)


def test_checkpoint_dir_that_is_a_file(tmp_path):
    x, y = data(8)
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="`checkpoint_dir` must be a directory"):
        model_and_fit(x, y, epochs=1, checkpoint_dir=tmp_path / "f")


def test_loaders_refuse_each_others_files(tmp_path):
    from rnnkit.keras.saving import load_model

    x, y = data()
    model, _ = model_and_fit(x, y, epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="training checkpoint"):
        load_model(tmp_path / FILENAME)
    model.save(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="not an rnnkit checkpoint file"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_nan_guard_counters_survive_a_resume(tmp_path):
    """Skipped steps are counted in the checkpoint, so a resumed epoch reports the same total."""
    import math
    import warnings

    x, y = data()
    y[5] = 7.0  # marks the batch whose loss the loss below makes NaN

    def poisoned(y_true, y_pred):
        value = ((y_pred.squeeze(-1) - y_true) ** 2).mean()
        return value * math.nan if bool((y_true == 7.0).any()) else value

    def fit(**kw):
        torch.manual_seed(0)
        model = Sequential([layers.LSTM(5, dropout=0.2), layers.Dense(1)])
        model.compile(optimizer="adam", loss=poisoned)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return model, model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, **kw)

    straight, h1 = fit()
    assert h1.skipped_steps == [1, 1]
    with pytest.raises(KeyboardInterrupt):
        fit(checkpoint_dir=tmp_path, checkpoint_every=1, callbacks=[StopAfter(3).callback])
    resumed, h2 = fit(checkpoint_dir=tmp_path, checkpoint_every=1, resume=True)
    assert h2.skipped_steps == [1, 1] and h2.history == h1.history and same_weights(straight, resumed)


def test_early_stopping_continues_its_count_after_a_resume(tmp_path):
    from rnnkit.keras.callbacks import EarlyStopping, ReduceLROnPlateau

    x, y = data(48)

    def run(**kw):
        cbs = [EarlyStopping(monitor="loss", patience=2, min_delta=1.0), ReduceLROnPlateau(monitor="loss", patience=1)]
        extra = kw.pop("extra", [])
        return model_and_fit(x, y, epochs=8, callbacks=cbs + extra, **kw), cbs

    (straight, h1), cbs1 = run()
    with pytest.raises(KeyboardInterrupt):
        run(checkpoint_dir=tmp_path, checkpoint_every=4, extra=[StopAfter(8).callback])
    (resumed, h2), cbs2 = run(seed=7, checkpoint_dir=tmp_path, checkpoint_every=4, resume=True)
    assert len(h1.history["loss"]) < 8  # it did stop early
    assert h1.history == h2.history and same_weights(straight, resumed)
    assert cbs2[0].stopped_epoch == cbs1[0].stopped_epoch and cbs2[1].get_state() == cbs1[1].get_state()
