"""The price of ``RNN(cell)``: built-in cells in the engine vs a cell a user writes (the general loop).

    flock /tmp/rnnkit-bench.lock python benchmarks/cell_paths.py [--reps 11] [--threads 2]

Times one training step (forward + backward, float32) of the same LSTM function three ways,
interleaved, and prints medians and ratios to ``LSTM``:
    LSTM(H)                 the built-in layer
    RNN(LSTMCell(H))        the built-in cell: must cost the same (it is the same engine call)
    RNN(UserLSTMCell(H))    the same equations written in torch ops as a Keras-style cell
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from rnnkit.keras.layers import LSTM, RNN, Layer, LSTMCell

SHAPES = [(32, 100, 32, 64), (64, 50, 64, 128), (16, 200, 16, 32)]


class UserLSTMCell(Layer):
    """An LSTM step in plain torch ops, as a user would write it (Keras layout, gates i, f, c, o)."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units, self.state_size = units, [units, units]

    def build(self, input_shape):
        self.kernel = nn.Parameter(torch.randn(input_shape[-1], 4 * self.units) * 0.1)
        self.recurrent_kernel = nn.Parameter(torch.randn(self.units, 4 * self.units) * 0.1)
        self.bias = nn.Parameter(torch.zeros(4 * self.units))

    def call(self, inputs, states):
        h, c = states
        i, f, g, o = (inputs @ self.kernel + h @ self.recurrent_kernel + self.bias).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, [h, c]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=11)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for B, T, F, H in SHAPES:
        x = torch.randn(B, T, F, requires_grad=True)
        layers = {"LSTM": LSTM(H), "RNN(LSTMCell)": RNN(LSTMCell(H)), "RNN(UserLSTMCell)": RNN(UserLSTMCell(H))}

        def step(name: str) -> None:
            layers[name](x).sum().backward()

        for name in list(layers) * 3:  # warm up (and build)
            step(name)
        times: dict[str, list[float]] = {name: [] for name in layers}
        names = list(layers)
        for i in range(args.reps):
            for name in names[i % 3:] + names[: i % 3]:  # rotate the order
                start = time.perf_counter()
                step(name)
                times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
        cells = ", ".join(f"{name} {ms:.1f} ms ({ms / med['LSTM']:.2f}x)" for name, ms in med.items())
        print(f"B={B} T={T} F={F} H={H}: {cells}", flush=True)


if __name__ == "__main__":
    main()
