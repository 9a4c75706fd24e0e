"""Kill a training run with SIGKILL again and again, resume it each time, and compare the result
with an uninterrupted run, bit for bit.

    python scripts/kill_resume.py --kills 20

The training (a child process, deterministic CPU mode: torch.use_deterministic_algorithms(True),
one thread) is a small text classifier with dropout, shuffling and Adam, checkpointing every
``--every`` batches with fit(checkpoint_dir=..., resume=True). The parent reads the child's
"batch N" lines and sends SIGKILL at random moments: right after a batch, or a random few
milliseconds later (inside a step, the validation pass, or a checkpoint write). After ``--kills``
kills it lets the run finish and checks every weight with torch.equal, and the History too.
Exit code 0 when everything matches. tests/test_checkpoint.py runs the short version (5 kills).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRAIN = textwrap.dedent('''
    import json, sys
    import numpy as np, torch
    from safetensors.torch import save_file
    from rnnkit import callbacks, layers
    from rnnkit.training import Sequential

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    ckpt_dir, out, epochs, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    np.random.seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 60, size=(200, 14))
    for i in range(len(x)):
        x[i, rng.integers(3, 15):] = 0  # right padding, masked by Embedding(mask_zero=True)
    y = rng.integers(0, 4, size=200)
    model = Sequential([
        layers.Embedding(60, 12, mask_zero=True),
        layers.Bidirectional(layers.GRU(10, return_sequences=True, dropout=0.2, recurrent_dropout=0.1)),
        layers.LSTM(12, dropout=0.1),
        layers.Dropout(0.3),
        layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], clipnorm=1.0)
    steps = 12  # ceil(0.9 * 200 / 16)

    def report(batch, logs):
        print("batch", (model._trainer.epoch - 1) * steps + batch, flush=True)

    kwargs = dict(checkpoint_dir=ckpt_dir, checkpoint_every=every, resume=True) if ckpt_dir != "-" else {}
    history = model.fit(x, y, epochs=epochs, batch_size=16, validation_split=0.1, verbose=0,
                        callbacks=[callbacks.LambdaCallback(on_train_batch_end=report)], **kwargs)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    with open(out + ".json", "w") as f:
        json.dump({"history": history.history, "grad_norms": history.grad_norms, "epoch": history.epoch}, f)
''')
STEPS = 12


def run(script: Path, ckpt: str, out: Path, epochs: int, every: int, kill_at: int | None = None,
        delay: float = 0.0) -> tuple[int, bool]:
    """Run the child; with ``kill_at``, SIGKILL it ``delay`` s after it reports that batch.
    Returns (last batch reported, whether it was killed)."""
    proc = subprocess.Popen([sys.executable, str(script), ckpt, str(out), str(epochs), str(every)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = -1
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        if line.startswith("batch"):
            last = int(line.split()[1])
            if kill_at is not None and last >= kill_at:
                time.sleep(delay)
                os.kill(proc.pid, signal.SIGKILL)
                break
    for line in proc.stdout:  # what it printed before the kill landed
        if line.startswith("batch"):
            last = int(line.split()[1])
    proc.stdout.close()
    code = proc.wait()
    killed = code == -signal.SIGKILL
    if not killed and code != 0:
        sys.exit(f"the training process failed (exit {code}):\n{proc.stderr.read()}")
    return last, killed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="how many times to SIGKILL the run (default 20)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the run (default 10, 12 batches each)")
    parser.add_argument("--every", type=int, default=4, help="checkpoint_every, in batches (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the kill points (default 0)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "train.py"
        script.write_text(TRAIN)
        run(script, "-", tmp / "straight.safetensors", args.epochs, args.every)
        total = args.epochs * STEPS
        seen = -1
        kills = runs = 0
        while kills < args.kills:
            # Kill points spread over the run; each resumed run gets at least one more batch done.
            room = max(1, (total - 2 - seen) // max(1, args.kills - kills))
            target = min(seen + 1 + rng.randrange(0, room + 1), total - 2)
            delay = rng.choice([0.0, rng.uniform(0.0, 0.01), rng.uniform(0.0, 0.04)])
            last, killed = run(script, str(tmp / "ckpt"), tmp / "resumed.safetensors", args.epochs, args.every,
                               kill_at=target, delay=delay)
            runs += 1
            kills += killed
            print(f"run {runs:2d}: {'killed' if killed else 'finished'} after batch {last} "
                  f"(target {target}, +{delay * 1000:.0f} ms)", flush=True)
            seen = max(seen, last)
            if not killed or runs > 5 * args.kills or seen >= total - 2:
                break
        run(script, str(tmp / "ckpt"), tmp / "resumed.safetensors", args.epochs, args.every)

        from safetensors.torch import load_file
        import torch

        a, b = load_file(str(tmp / "straight.safetensors")), load_file(str(tmp / "resumed.safetensors"))
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        history_same = json.loads((tmp / "straight.safetensors.json").read_text()) == json.loads(
            (tmp / "resumed.safetensors.json").read_text())
        leftovers = list((tmp / "ckpt").glob(".*.tmp"))
    print(f"{kills} kills over {runs} runs, {total} batches, {time.perf_counter() - start:.0f} s")
    print(f"final weights identical (torch.equal, {len(a)} tensors): {same}; history identical: {history_same}; "
          f"stale temp files: {len(leftovers)}")
    return 0 if same and history_same and kills >= args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
