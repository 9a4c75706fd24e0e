"""Where a compiled rnnkit layer loses time at small sizes: the route through the custom operators.

    python benchmarks/op_route.py                 # config S of benchmarks/run.py (B=16, T=200, F=32, H=64)
    python benchmarks/op_route.py --tiny          # B=2, T=5, F=4, H=8: nearly all fixed cost
    python benchmarks/op_route.py --tiny --calls  # Python function calls per step instead (cProfile)

One LSTM train step (forward, a sum over the outputs and final state, backward), three routes,
interleaved, best of --reps after a warm-up (the minimum is the least disturbed by other load):
  eager          the engine's autograd.Functions (what eager mode runs)
  eager via ops  the same call forced through rnnkit::compiled_forward/backward (library.force_ops)
  compiled       torch.compile(module, fullgraph=True), which sees only the operators
The operators' kernels are C++ (csrc/recurrence.cpp); their autograd formula is Python
(engine/library.py). So the first two differ by the dispatcher's Python autograd layer, and
the third adds torch.compile's own runtime (AOTAutograd's wrappers, guards) to the operators.
--calls counts the Python function calls each route makes per step: a measure that, unlike
times, does not move with the load on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import copy
import cProfile
import pstats
import time

import torch

import rnnkit.nn as rnn
from rnnkit.engine import library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", action="store_true", help="count Python function calls per step, no times")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    B, T, F, H = (2, 5, 4, 8) if args.tiny else (16, 200, 32, 64)
    torch.manual_seed(0)
    module = rnn.LSTM(F, H, batch_first=True)
    compiled = torch.compile(copy.deepcopy(module), fullgraph=True)
    x = torch.randn(B, T, F)

    def step(m):
        out, (h, c) = m(x)
        (out.sum() + h.sum() + c.sum()).backward()

    def via_ops():
        with library.force_ops():
            step(module)

    routes = {"eager": lambda: step(module), "eager via ops": via_ops, "compiled": lambda: step(compiled)}
    for _ in range(5):
        for f in routes.values():
            f()
    if args.calls:
        count_calls(routes, args.reps)
        return
    best = dict.fromkeys(routes, float("inf"))
    for _ in range(args.reps):
        for name, f in routes.items():
            start = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - start)
    print(f"torch {torch.__version__}, {args.threads} thread(s), B={B} T={T} F={F} H={H}, best of {args.reps}")
    for name, t in best.items():
        print(f"{name:14} {t * 1e3:8.3f} ms")


def count_calls(routes: dict, reps: int) -> None:
    """Python function calls per step of each route, by where they are defined (rnnkit, torch, builtins)."""
    for name, f in routes.items():
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(reps):
            f()
        profile.disable()
        where: collections.Counter = collections.Counter()
        for (path, _, _), (_, calls, *_) in pstats.Stats(profile).stats.items():
            where["rnnkit" if "rnnkit" in path else "torch" if "torch" in path else "builtin/other"] += calls
        per_step = {k: round(v / reps) for k, v in where.most_common()}
        print(f"{name:14} {sum(per_step.values()):5d} calls/step  {per_step}")


if __name__ == "__main__":
    main()
