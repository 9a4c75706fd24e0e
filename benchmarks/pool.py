"""Train-step time with and without the engine's buffer cache (csrc/pool.h), each in a fresh process.

    python benchmarks/pool.py              # config L and a larger one whose buffers pass 32 MB

glibc moves its mmap threshold up to the largest block freed, but never past 32 MB, so
larger per-sequence buffers are mapped, faulted in and zeroed again at every step unless
the engine keeps them (RNNKIT_POOL_MB=0 turns its cache off).
"""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import statistics, sys, time, torch
from rnnkit.cells import RecurrentCell
from rnnkit.recurrent import run_layer
torch.set_num_threads(2)
kind, B, T, F, H = sys.argv[1], *map(int, sys.argv[2:6])
cell = RecurrentCell(kind, F, H)
x = torch.randn(B, T, F, requires_grad=True)
def step():
    out, st = run_layer(cell.spec, x, cell.weights(), implementation="bptt")
    (out.sum() + sum(s.sum() for s in st)).backward()
for _ in range(3):
    step()
times = []
for _ in range(7):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(statistics.median(times) * 1e3)
"""

SHAPES = [("lstm", 64, 100, 128, 256), ("gru", 64, 100, 128, 256), ("lstm", 64, 200, 128, 512), ("gru", 64, 200, 128, 512)]


def main() -> None:
    print("| cell | B, T, F, H | cache off (ms) | cache on (ms) | off / on |")
    print("|---|---|---|---|---|")
    for shape in SHAPES:
        ms = {}
        for pool in ("0", "512", "0", "512"):  # alternate, keep the better of two runs each
            env = {**os.environ, "RNNKIT_POOL_MB": pool}
            res = subprocess.run([sys.executable, "-c", CHILD, *map(str, shape)], env=env, capture_output=True,
                                 text=True, check=True)
            t = float(res.stdout.strip().splitlines()[-1])
            ms[pool] = min(ms.get(pool, t), t)
        print(f"| {shape[0]} | {', '.join(map(str, shape[1:]))} | {ms['0']:.1f} | {ms['512']:.1f} | "
              f"{ms['0'] / ms['512']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
