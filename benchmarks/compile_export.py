"""torch.compile'd against eager train steps of rnnkit.nn modules, interleaved, medians.

    flock /tmp/rnnkit-bench.lock python benchmarks/compile_export.py
    python benchmarks/compile_export.py --cells lstm --configs S M --reps 15

One train step = forward, a loss over the output and the final state, backward. The compiled
module is ``torch.compile(module, fullgraph=True)`` (Inductor, the default backend), with the
same weights; the engine's loops run as the operators rnnkit::compiled_forward/backward there
(C++ kernels; schemas, fakes and autograd in engine/library.py), and through their
autograd.Functions in eager mode. Configs are benchmarks/run.py's S/M/L.
ratio = eager time / compiled time (> 1: compiled is faster). Goal: ratio >= 1 (issues #16, #21);
benchmarks/op_route.py takes apart what remains at small sizes.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from run import CONFIGS, time_pair  # noqa: E402

import rnnkit.nn as rnn  # noqa: E402

MODULES = {"lstm": rnn.LSTM, "gru": rnn.GRU, "rnn": rnn.RNN}


def train_step(module, x):
    def step() -> None:
        out, state = module(x)
        finals = state if isinstance(state, tuple) else (state,)
        (out.sum() + sum(s.sum() for s in finals)).backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list(MODULES), choices=list(MODULES))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads")
    print(f"{'cell':5} {'cfg':3} {'eager ms':>9} {'compiled ms':>12} {'ratio':>6} {'compile s':>10}")
    for kind in args.cells:
        for name in args.configs:
            c = CONFIGS[name]
            torch.manual_seed(0)
            eager = MODULES[kind](c["I"], c["H"], batch_first=True)
            compiled = torch.compile(copy.deepcopy(eager), fullgraph=True)
            x = torch.randn(c["B"], c["T"], c["I"])
            start = time.perf_counter()
            train_step(compiled, x)()  # the first call compiles forward and backward
            compile_s = time.perf_counter() - start
            t_eager, t_compiled = time_pair(train_step(eager, x), train_step(compiled, x), args.reps, args.warmup)
            print(f"{kind:5} {name:3} {t_eager * 1e3:9.2f} {t_compiled * 1e3:12.2f} {t_eager / t_compiled:6.2f} "
                  f"{compile_s:10.1f}", flush=True)


if __name__ == "__main__":
    main()
