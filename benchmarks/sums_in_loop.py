"""Where the compiled backward should sum the weight gradients: in its loop, or after it.

    python benchmarks/sums_in_loop.py

For each shape, train steps with the gradients summed inside the loop and with the loop's
gradient histories multiplied by oneDNN after it, alternating in one process (the switch is
``rnnkit.engine.compiled.SUMS_IN_LOOP_MAX_BYTES``). Prints histories time / loop time (> 1: the
loop is faster) beside the per-thread accumulator size the rule in ``compiled.sums_in_loop`` reads.
"""

from __future__ import annotations

import statistics
import time

import torch

from rnnkit.cells import RecurrentCell
from rnnkit.engine import compiled
from rnnkit.recurrent import run_layer

SHAPES = [("lstm", 16, 200, 32, 64), ("lstm", 32, 100, 64, 128), ("lstm", 64, 100, 128, 256),
          ("lstm", 16, 100, 128, 256), ("lstm", 16, 100, 256, 512), ("lstm", 64, 100, 256, 512),
          ("gru", 64, 100, 128, 256), ("gru", 16, 100, 256, 512), ("rnn", 64, 100, 128, 256),
          ("rnn", 32, 100, 256, 512)]
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def main() -> None:
    torch.set_num_threads(2)
    modes = {"loop": 1 << 40, "histories": 0}
    for kind, B, T, F, H in SHAPES:
        cell = RecurrentCell(kind, F, H)
        x = torch.randn(B, T, F, requires_grad=True)

        def step() -> None:
            out, state = run_layer(cell.spec, x, cell.weights(), implementation="bptt")
            state = state if isinstance(state, tuple) else (state,)
            (out.sum() + sum(s.sum() for s in state)).backward()

        for limit in modes.values():
            compiled.SUMS_IN_LOOP_MAX_BYTES = limit
            step()
            step()
        times: dict[str, list[float]] = {k: [] for k in modes}
        for i in range(11 if H < 512 else 7):
            for k in ("loop", "histories") if i % 2 else ("histories", "loop"):
                compiled.SUMS_IN_LOOP_MAX_BYTES = modes[k]
                start = time.perf_counter()
                step()
                times[k].append(time.perf_counter() - start)
        loop, hist = (statistics.median(times[k]) * 1e3 for k in ("loop", "histories"))
        acc = GATES[kind] * H * (H + F) * 4 / 2**20
        print(f"{kind} B={B} F={F} H={H} ({acc:.2f} MB): loop {loop:.2f} ms, histories {hist:.2f} ms, "
              f"histories/loop {hist / loop:.2f}", flush=True)


if __name__ == "__main__":
    main()
