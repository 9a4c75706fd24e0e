"""The adding problem at long T: minGRU and minLSTM against GRU and LSTM, the same wall-clock budget each.

Each step of a sequence holds a value in U(0, 1) and a marker; the target is the sum of the two
marked values (one in each half), so predicting 1.0 always scores MSE ~0.167. Every model is
two recurrent layers of ``--hidden`` units (rnnkit.nn, batch_first) and a linear head on the
last step's output, trained with Adam on fresh batches for ``--seconds`` of wall-clock time.
Prints one markdown row per cell: test MSE, training steps done, seconds.

    python examples/min_rnn_adding.py                         # T = 1000, 120 s per cell (~8 min)
    python examples/min_rnn_adding.py --T 200 --seconds 90 --threads 1   # ~6 min
    python examples/min_rnn_adding.py --T 200 --seconds 20 --cells mingru,gru
"""

from __future__ import annotations

import argparse
import time

import torch

import rnnkit.nn as rnn
from rnnkit.datasets import adding_problem
from rnnkit.engine.kernels import load_kernels

MODULES = {"mingru": rnn.MinGRU, "minlstm": rnn.MinLSTM, "gru": rnn.GRU, "lstm": rnn.LSTM}
TRIVIAL_MSE = 1 / 6  # always predicting 1.0: Var(U1 + U2)


class Regressor(torch.nn.Module):
    """x (B, T, 2) -> (B, 1): the recurrent stack, then a linear head on the last step."""

    def __init__(self, cell: str, hidden: int, layers: int) -> None:
        super().__init__()
        self.rnn = MODULES[cell](2, hidden, num_layers=layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def train(cell: str, args: argparse.Namespace, test: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, int, float]:
    torch.manual_seed(args.seed)
    model = Regressor(cell, args.hidden, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        x, y = adding_problem(args.batch_size, args.T, seed=args.seed * 100_003 + steps)
        loss = torch.nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
    seconds = time.perf_counter() - start
    with torch.no_grad():
        mse = float(torch.nn.functional.mse_loss(model(test[0]), test[1]))
    return mse, steps, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--cells", default="mingru,minlstm,gru,lstm")
    parser.add_argument("--seconds", type=float, default=120.0, help="training time per cell")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_kernels()  # a first run builds the C++ kernels (~1 min): not on any cell's clock
    x, y = adding_problem(1000, args.T, seed=12345)
    test = (torch.from_numpy(x), torch.from_numpy(y))
    print(f"adding problem, T = {args.T}, {args.layers} x {args.hidden} units, {args.seconds:.0f} s per cell, "
          f"{args.threads} threads; trivial MSE {TRIVIAL_MSE:.3f}")
    print("| cell | test MSE | steps | seconds |\n|---|---|---|---|")
    for cell in args.cells.split(","):
        mse, steps, seconds = train(cell, args, test)
        print(f"| {cell} | {mse:.4f} | {steps} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
