"""fit(distributed=True): 2 processes under torchrun (DDP, gloo) equal one process on the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.keras import layers
from rnnkit.keras.training.distributed import LAUNCHED, requested, torchrun_command, without_option
from rnnkit.keras.models import Sequential

# float64, no dropout; a masked sequence loss (shares counted in unmasked steps), global
# batches of 7 split 4/3 over two processes, and a last batch of 1 sample (the second
# process runs a weight-0 placeholder), global-norm clipping (on the all-reduced gradients).
COMMON = textwrap.dedent('''
    import numpy as np, torch
    from rnnkit.keras import layers
    from rnnkit.keras.models import Sequential

    def setup():
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        x = rng.integers(1, 20, size=(22, 8))
        for i in range(len(x)):
            x[i, rng.integers(2, 9):] = 0
        y = rng.integers(0, 4, size=(22, 8))
        model = Sequential([
            layers.Embedding(20, 5, mask_zero=True),
            layers.Bidirectional(layers.GRU(6, return_sequences=True)),
            layers.LSTM(5, return_sequences=True),
            layers.TimeDistributed(layers.Dense(4, activation="softmax")),
        ])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      global_clipnorm=0.5)
        return model, x, y
''')

WORKER = COMMON + textwrap.dedent('''
    import json, sys, torch.distributed as dist
    from safetensors.torch import save_file
    model, x, y = setup()
    history = model.fit(x, y, epochs=3, batch_size=7, verbose=0, distributed=True)
    rank = int(__import__("os").environ["RANK"])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{sys.argv[1]}/rank{rank}.safetensors")
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
        json.dump(history.history, f)
''')


def test_two_processes_equal_one_process_on_the_same_global_batches(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(torchrun_command(2, [str(tmp_path / "worker.py"), str(tmp_path)]), env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]

    namespace: dict = {}
    exec(COMMON, namespace)
    old = torch.get_default_dtype()
    try:
        model, x, y = namespace["setup"]()
        history = model.fit(x, y, epochs=3, batch_size=7, verbose=0)
    finally:
        torch.set_default_dtype(old)
    single = model.state_dict()
    for rank in (0, 1):
        got = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        assert got.keys() == single.keys()
        for k, v in single.items():
            assert v.dtype == torch.float64
            torch.testing.assert_close(got[k], v, rtol=1e-10, atol=1e-10, msg=k)
        logs = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for key, values in history.history.items():  # epoch logs summed over both processes
            np.testing.assert_allclose(logs[key], values, rtol=1e-10)


def test_distributed_outside_torchrun_is_refused(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    model = Sequential([layers.LSTM(3), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((4, 5, 2), "float32"), np.zeros(4, "float32")
    with pytest.raises(ValueError, match="processes started by torchrun"):
        model.fit(x, y, epochs=1, verbose=0, distributed=True)
    with pytest.raises(ValueError, match="`distributed`, expected True, False or None"):
        model.fit(x, y, epochs=1, verbose=0, distributed="yes")


def test_torchrun_command_checks_nproc():
    cmd = torchrun_command(3, ["-m", "rnnkit.cli", "train"], port=1234)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node" in cmd and cmd[-3:] == ["-m", "rnnkit.cli", "train"]
    with pytest.raises(ValueError, match="`nproc`, expected a positive integer"):
        torchrun_command(0, ["a.py"])


def test_cli_nproc_trains_a_task_in_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "rnnkit.cli", "train", "sunspots", "--epochs", "1", "--limit", "80",
                             "--quiet", "--nproc", "2", "--out", str(out)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("sunspots\t") == 1  # rank 0 reports, rank 1 is silent
    assert (out / "results.json").is_file() and (out / "model.safetensors").is_file()


def test_launch_helpers(monkeypatch):
    assert without_option(["train", "--nproc", "2", "x", "--nproc=3", "--epochs", "1"], "--nproc") == [
        "train", "x", "--epochs", "1"]
    monkeypatch.delenv(LAUNCHED, raising=False)
    assert requested(None) is False and requested(True) is True
    monkeypatch.setenv(LAUNCHED, "1")
    assert requested(None) is True and requested(False) is False
