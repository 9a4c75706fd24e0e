"""Instructions per step of ``fit`` (and evaluate/predict) against the hand-written torch loop,
counted by callgrind: a measure of the training loop's own cost that does not depend on the
machine's load, unlike the timings of benchmarks/fit_overhead.py.

    python benchmarks/fit_instructions.py                       # seq2seq, fit/evaluate/predict and hand loops
    python benchmarks/fit_instructions.py --models seq2seq bilstm sentiment --modes fit hand
    PYTHONPATH=/path/to/other/src python benchmarks/fit_instructions.py   # another version of rnnkit

Each model is measured in one child process under ``valgrind --tool=callgrind`` that builds
the model (benchmarks/fit_overhead.py's builders), warms up (one epoch of every mode: kernels
loaded, optimizer state made), then runs each mode for an epoch of K batches and one of 2K
batches, each inside ``sys.call_tracing`` (which no library calls, unlike functools.reduce):
callgrind counts only there and writes one profile per run. Per step = (count at 2K - count at K) / K, which cancels what a call costs once. One
thread, AVX2 kernels, the engine's C++ loop built without AVX-512 (valgrind runs neither
AVX-512 nor code built for it): the counts describe this setting; the ratios rnnkit / hand and
the differences are what to read.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("fit", "hand", "evaluate", "hand_evaluate", "predict", "hand_predict")
HAND = {"fit": "hand", "evaluate": "hand_evaluate", "predict": "hand_predict"}  # rnnkit's mode -> the hand loop's


def avx2_kernels() -> None:
    """Build (or find) the engine's C++ loop without AVX-512, which valgrind cannot run."""
    from rnnkit.engine import kernels

    flags = kernels._cpu_flags
    kernels._cpu_flags = lambda: [f for f in flags() if f != "-mavx512f"]
    if kernels.load_kernels() is None:
        raise RuntimeError(f"the C++ loop did not load: {kernels.load_error()}")


def child(model_name: str, modes: list[str], steps: int) -> None:
    import torch

    avx2_kernels()

    sys.path.insert(0, str(Path(__file__).parent))
    import fit_overhead as fo

    torch.set_num_threads(1)
    torch.manual_seed(0)
    batch = 64 if model_name == "sentiment" else 32
    spec = fo.MODELS[model_name](2 * steps * batch)
    model = spec["model"]
    model.compile(spec["optimizer"](), loss=spec["loss"], metrics=["accuracy"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run(mode: str, k: int) -> None:
        x, y = spec["x"][: k * batch], spec["y"][: k * batch]
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        {
            "fit": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0),
            "hand": lambda: fo.hand_train(model, spec["torch_loss"], opt, xt, yt, batch),
            "evaluate": lambda: model.evaluate(x, y, batch_size=batch, verbose=0),
            "hand_evaluate": lambda: fo.hand_evaluate(model, spec["torch_loss"], xt, yt, batch),
            "predict": lambda: model.predict(x, batch_size=batch, verbose=0),
            "hand_predict": lambda: fo.hand_predict(model, xt, batch),
        }[mode]()

    for mode in ("fit", "hand", *modes):
        run(mode, 1)
    for mode in modes:
        for k in (steps, 2 * steps):
            sys.call_tracing(run, (mode, k))  # counted, then dumped (no library calls sys.call_tracing)


def counts(model_name: str, modes: list[str], steps: int) -> dict[str, float]:
    """Instructions per step of each mode."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2",
               OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg"
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=sys_call_tracing",
               "--dump-after=sys_call_tracing", f"--callgrind-out-file={out}", sys.executable, __file__,
               "--child", model_name, ",".join(modes), str(steps)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        dumps = sorted(Path(tmp).glob("cg.*"), key=lambda p: int(p.suffix[1:]))
        totals = [int(re.search(r"^totals: (\d+)", p.read_text(), re.M).group(1)) for p in dumps]
    if len(totals) != 2 * len(modes):
        raise RuntimeError(f"expected {2 * len(modes)} profiles, got {len(totals)}")
    return {m: (totals[2 * i + 1] - totals[2 * i]) / steps for i, m in enumerate(modes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["seq2seq"], choices=["seq2seq", "bilstm", "sentiment"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--steps", type=int, default=4, help="K: epochs of K and 2K batches are counted")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1].split(","), int(args.child[2]))
        return
    import rnnkit

    avx2_kernels()  # built here, natively, not under valgrind
    print(f"rnnkit from {Path(rnnkit.__file__).parent}; K = {args.steps}")
    print(f"{'model':10} {'mode':14} {'instructions/step':>18} {'rnnkit/hand':>12} {'rnnkit-hand':>14}")
    for name in args.models:
        per_step = counts(name, args.modes, args.steps)
        for mode, value in per_step.items():
            hand = per_step.get(HAND.get(mode, ""))
            versus = f"{value / hand:12.3f} {value - hand:14,.0f}" if hand else ""
            print(f"{name:10} {mode:14} {value:18,.0f} {versus}", flush=True)


if __name__ == "__main__":
    main()
