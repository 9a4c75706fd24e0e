"""A/B two builds of the compiled loop in one process: train-step medians, interleaved.

    python benchmarks/ab_kernels.py OLD.so NEW.so --cells lstm,gru,rnn --configs S,M,L

Each build is a kernel module from the cache (``~/.cache/rnnkit/kernels/<hash>/*.so``; the
path of the one in use is ``rnnkit.engine.kernels.load_kernels().__file__``). To get the
old one, check out the old commit's sources elsewhere and load its kernels once with that
tree on ``PYTHONPATH``. The Python side must take the same arguments in both builds: this
swaps only ``rnnkit.engine.kernels._module``, alternating which build goes first, so both
see the same machine. Timings here drift 10-30 % between runs minutes apart; a ratio taken
this way is good to about 2-3 %.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch

from rnnkit.cells import RecurrentCell
from rnnkit.engine import kernels as compiled  # the loaded extension lives in kernels
from rnnkit.recurrent import run_layer

CONFIGS = {"S": (16, 200, 32, 64), "M": (32, 100, 64, 128), "L": (64, 100, 128, 256)}


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--cells", default="lstm,gru,rnn", help="lstm, gru, rnn, rnn_relu, or lstm_ln (layer norm)")
    p.add_argument("--configs", default="S,M,L")
    p.add_argument("--reps", type=int, default=21)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    builds = (load(args.old), load(args.new))
    print(f"# torch {torch.__version__}, {args.threads} threads; medians of {args.reps} interleaved train steps")
    for name in args.cells.split(","):
        variants = {"lstm_ln": ("lstm", {"layer_norm": True}), "rnn_relu": ("rnn", {"activation": "relu"})}
        kind, kw = variants.get(name, (name, {}))
        for cfg in args.configs.split(","):
            B, T, F, H = CONFIGS[cfg]
            cell = RecurrentCell(kind, F, H, **kw)
            x = torch.randn(B, T, F, requires_grad=True)

            def step() -> None:
                out, state = run_layer(cell.spec, x, cell.weights(), implementation="bptt")
                state = state if isinstance(state, tuple) else (state,)
                (out.sum() + sum(s.sum() for s in state)).backward()

            for i in range(6):
                compiled._module = builds[i % 2]
                step()
            times: tuple[list, list] = ([], [])
            for i in range(args.reps):
                for j in (0, 1) if i % 2 else (1, 0):
                    compiled._module = builds[j]
                    start = time.perf_counter()
                    step()
                    times[j].append(time.perf_counter() - start)
            old, new = (statistics.median(t) * 1e3 for t in times)
            print(f"{name} {cfg}: old {old:.2f} ms, new {new:.2f} ms, old/new {old / new:.3f}", flush=True)


if __name__ == "__main__":
    main()
