"""Sine-wave prediction with two LSTMCells stepped by hand in float64, trained with LBFGS, as in
torch's examples/time_sequence_prediction, with the cell class swappable.

    python examples/torch_sine_lstmcell.py --impl torch     # torch.nn.LSTMCell
    python examples/torch_sine_lstmcell.py --impl rnnkit    # rnnkit.nn.LSTMCell: only that import changes

Each sequence is sin((t + shift) / 20) over ``--length`` steps; the model reads one value per
step (LSTMCell(1, 51) -> LSTMCell(51, 51) -> Linear(51, 1)) and predicts the next, then runs on
its own predictions for ``--future`` steps. Same seed -> same weights, so both implementations
print the same losses (to float64 rounding); they differ in wall time.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn as tnn


class Sequence(tnn.Module):
    def __init__(self, cell_cls) -> None:
        super().__init__()
        self.lstm1 = cell_cls(1, 51)
        self.lstm2 = cell_cls(51, 51)
        self.linear = tnn.Linear(51, 1)

    def forward(self, input: torch.Tensor, future: int = 0) -> torch.Tensor:
        outputs = []
        h_t = torch.zeros(input.size(0), 51, dtype=torch.double)
        c_t = torch.zeros(input.size(0), 51, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)
        output = None
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):  # predicting the future from its own output
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["torch", "rnnkit"], default="rnnkit")
    parser.add_argument("--steps", type=int, default=4, help="LBFGS steps (torch's example: 15)")
    parser.add_argument("--length", type=int, default=200, help="time steps per sequence (torch's example: 1000)")
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--future", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.impl == "torch":
        from torch.nn import LSTMCell
    else:
        from rnnkit.nn import LSTMCell

    np.random.seed(2)
    T = 20
    x = np.empty((args.sequences, args.length), np.int64)
    x[:] = np.arange(args.length) + np.random.randint(-4 * T, 4 * T, args.sequences).reshape(args.sequences, 1)
    data = torch.from_numpy(np.sin(x / 1.0 / T))
    input, target = data[3:, :-1], data[3:, 1:]
    test_input, test_target = data[:3, :-1], data[:3, 1:]

    np.random.seed(0)
    torch.manual_seed(0)
    seq = Sequence(LSTMCell).double()
    criterion = tnn.MSELoss()
    optimizer = torch.optim.LBFGS(seq.parameters(), lr=0.8)
    train_losses, test_losses = [], []
    start = time.perf_counter()
    for i in range(args.steps):
        def closure():
            optimizer.zero_grad()
            loss = criterion(seq(input), target)
            loss.backward()
            train_losses.append(loss.item())
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            pred = seq(test_input, future=args.future)
            loss = criterion(pred[:, :-args.future], test_target)
        test_losses.append(loss.item())
        print(f"step {i}: last train loss {train_losses[-1]:.10f}  test loss {loss.item():.10f}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": args.impl, "seconds": round(seconds, 2), "closure_calls": len(train_losses),
                      "train_losses": train_losses, "test_losses": test_losses}))


if __name__ == "__main__":
    main()
