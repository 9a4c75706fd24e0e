"""Instructions per step of ``fit`` (and evaluate/predict) against the hand-written torch loop,
counted by callgrind: a measure of the training loop's own cost that does not depend on the
machine's load, unlike the timings of benchmarks/fit_overhead.py.

    python benchmarks/fit_instructions.py                       # seq2seq: fit and hand, ~10 min
    python benchmarks/fit_instructions.py --models seq2seq bilstm --modes fit hand evaluate hand_evaluate
    PYTHONPATH=/path/to/other/src python benchmarks/fit_instructions.py   # another version of rnnkit

Each measurement is a child process under ``valgrind --tool=callgrind`` that builds the model
(benchmarks/fit_overhead.py's builders, with ``steps`` batches of data), warms up (one epoch of
fit and of the hand loop: kernels loaded, optimizer state made), then counts only the
instructions inside one epoch (collection is switched on around a call of ``functools.reduce``).
Per step = (count at 2K steps - count at K steps) / K, which cancels what a call costs once.
One thread, AVX2 kernels (valgrind does not run AVX-512): the counts describe this setting, and
the ratio fit/hand is what to read.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
from pathlib import Path

MODES = ("fit", "hand", "evaluate", "hand_evaluate", "predict", "hand_predict")


def child(model_name: str, mode: str, steps: int) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import fit_overhead as fo

    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = 64 if model_name == "sentiment" else 32
    spec = fo.MODELS[model_name](steps * batch)
    model, x, y = spec["model"], spec["x"], spec["y"]
    model.compile(spec["optimizer"](), loss=spec["loss"], metrics=["accuracy"])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    runs = {
        "fit": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0),
        "hand": lambda: fo.hand_train(model, spec["torch_loss"], opt, xt, yt, batch),
        "evaluate": lambda: model.evaluate(x, y, batch_size=batch, verbose=0),
        "hand_evaluate": lambda: fo.hand_evaluate(model, spec["torch_loss"], xt, yt, batch),
        "predict": lambda: model.predict(x, batch_size=batch, verbose=0),
        "hand_predict": lambda: fo.hand_predict(model, xt, batch),
    }
    runs["fit"]()
    runs["hand"]()
    runs[mode]()
    functools.reduce(lambda acc, _: runs[mode](), range(1), None)  # the only code callgrind counts


def count(model_name: str, mode: str, steps: int) -> int:
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2",
               OMP_NUM_THREADS="1")
    cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
           "--callgrind-out-file=/dev/null", sys.executable, __file__, "--child", model_name, mode, str(steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    found = re.findall(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["seq2seq"], choices=["seq2seq", "bilstm", "sentiment"])
    parser.add_argument("--modes", nargs="+", default=["fit", "hand"], choices=MODES)
    parser.add_argument("--steps", type=int, default=4, help="K: epochs of K and 2K batches are counted")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    import rnnkit

    print(f"rnnkit from {Path(rnnkit.__file__).parent}; K = {args.steps}")
    print(f"{'model':10} {'mode':14} {'instructions/step':>18}")
    for name in args.models:
        per_step = {}
        for mode in args.modes:
            k, k2 = count(name, mode, args.steps), count(name, mode, 2 * args.steps)
            per_step[mode] = (k2 - k) / args.steps
            print(f"{name:10} {mode:14} {per_step[mode]:18,.0f}", flush=True)
        for ours in ("fit", "evaluate", "predict"):
            if ours in per_step and f"hand_{ours}" in per_step or (ours == "fit" and "hand" in per_step):
                hand = per_step["hand" if ours == "fit" else f"hand_{ours}"]
                print(f"{name:10} {ours + '/hand':14} {per_step[ours] / hand:18.3f}")


if __name__ == "__main__":
    main()
