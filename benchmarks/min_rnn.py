"""minGRU / minLSTM training steps against our GRU / LSTM and a plain-torch minGRU, interleaved.

    python benchmarks/min_rnn.py                           # B=32, H=F=128, T=100/1000/4000
    python benchmarks/min_rnn.py --T 1000 --reps 21
    python benchmarks/min_rnn.py --memory                  # also peak RSS at the largest T
    python benchmarks/min_rnn.py --B 2 --H 8 --T 20 --reps 3 --warmup 1 --memory   # smoke run

A training step is forward, loss = mean(out^2) + mean(h_n^2), backward (gradients of the
weights and the input), with the gradients zeroed between steps. Rows:

    minGRU vs GRU         rnnkit.nn.MinGRU against rnnkit.nn.GRU (implementation="auto") at the same H
    minLSTM vs LSTM       rnnkit.nn.MinLSTM against rnnkit.nn.LSTM
    minGRU vs plain       rnnkit.nn.MinGRU against the paper's minGRU in plain torch (Linear, then
                          cumsum/logcumsumexp in log space, autograd for the backward)

ratio = peer time / rnnkit time (> 1: the min cell is faster). Medians of interleaved runs,
alternating who goes first. ``--memory`` runs each model once more in a fresh subprocess and
reports the peak RSS of two steps above the RSS before them (the high-water mark, reset before the
steps), and the RSS they leave held (the engine's buffer pool keeps large buffers for the next step).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import rnnkit.nn as rnn

sys.path.insert(0, str(Path(__file__).parent))
from run import time_pair  # noqa: E402


class PlainMinGRU(torch.nn.Module):
    """The paper's minGRU (appendix, log-space parallel mode) in plain torch, batch-first."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(input_size, 2 * hidden_size)

    @staticmethod
    def log_g(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k_z, k_h = self.linear(x).chunk(2, dim=-1)
        log_coeffs = -F.softplus(k_z)  # log(1 - z)
        log_values = -F.softplus(-k_z) + self.log_g(k_h)  # log z + log h~
        log_values = torch.cat([h0.log().unsqueeze(1), log_values], dim=1)
        a_star = F.pad(torch.cumsum(log_coeffs, dim=1), (0, 0, 1, 0))
        h = torch.exp(a_star + torch.logcumsumexp(log_values - a_star, dim=1))[:, 1:]
        return h, h[:, -1]


def make_models(F_in: int, H: int) -> dict[str, torch.nn.Module]:
    return {
        "minGRU": rnn.MinGRU(F_in, H, batch_first=True),
        "GRU": rnn.GRU(F_in, H, batch_first=True),
        "minLSTM": rnn.MinLSTM(F_in, H, batch_first=True),
        "LSTM": rnn.LSTM(F_in, H, batch_first=True),
        "plain minGRU": PlainMinGRU(F_in, H),
    }


def train_step(name: str, model: torch.nn.Module, x: torch.Tensor, h0: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        x.grad = None
        if name == "plain minGRU":
            out, h_n = model(x, h0)
        elif name == "LSTM":
            out, (h_n, _) = model(x, (h0[None], torch.zeros_like(h0)[None]))
        else:
            out, h_n = model(x, h0[None])
        (out.pow(2).mean() + h_n.pow(2).mean()).backward()

    return step


def inputs(B: int, T: int, F_in: int, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(B, T, F_in, requires_grad=True)
    h0 = torch.full((B, H), 0.5)  # g(0): positive, as the plain log-space form needs
    return x, h0


def _status_kb(field: str) -> int:
    """A ``VmXXX`` line of /proc/self/status, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_memory(name: str, B: int, T: int, F_in: int, H: int) -> dict[str, float]:
    """Run 2 training steps of ``name`` here and return (MB) the peak RSS above the RSS before them
    and the RSS still held after them (the engine's buffer pool, say). Call it in a fresh process.

    The peak is the kernel's high-water mark VmHWM, reset just before the steps (``5`` into
    /proc/self/clear_refs): without the reset, a peak reached while importing torch or building the
    inputs, larger than a small configuration's steps, hides them (which made this 0.0 before).
    tracemalloc cannot do it: it sees Python's allocations, not torch's.
    """
    from rnnkit.engine import kernels

    kernels.load_kernels()  # its pages are not the steps' memory
    model = make_models(F_in, H)[name]
    x, h0 = inputs(B, T, F_in, H)
    step = train_step(name, model, x, h0)
    # One step at T = 1 first: it loads the code that loads lazily on first use (torch's custom-op
    # machinery: some 70 MB), while its buffers stay under the pool's 1 MB floor.
    train_step(name, model, x[:, :1].detach().requires_grad_(), h0)()
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    step()
    step()
    peak, held = _status_kb("VmHWM"), _status_kb("VmRSS")
    return {"peak_mb": (peak - before) / 1024, "held_mb": (held - before) / 1024}


def peak_rss_mb(name: str, B: int, T: int, F_in: int, H: int, threads: int) -> dict[str, float]:
    """``measure_memory`` in a fresh process (so nothing another model allocated counts)."""
    code = (
        "import json, sys, torch\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"torch.set_num_threads({threads})\n"
        "import min_rnn as b\n"
        f"print(json.dumps(b.measure_memory({name!r}, {B}, {T}, {F_in}, {H})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--H", type=int, default=128)
    parser.add_argument("--F", type=int, default=None, help="input features (default: H)")
    parser.add_argument("--T", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="peak RSS at the largest T, in subprocesses")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    F_in = args.F or args.H
    print(f"# torch {torch.__version__}, {args.threads} threads, B={args.B} H={args.H} F={F_in}, "
          f"medians of {args.reps} interleaved training steps; ratio = peer / ours")
    print(f"{'T':>6}  {'pair':<20} {'ours ms':>9} {'peer ms':>9} {'ratio':>7}")
    models = make_models(F_in, args.H)
    for T in args.T:
        x, h0 = inputs(args.B, T, F_in, args.H)
        steps = {name: train_step(name, m, x, h0) for name, m in models.items()}
        for ours, peer in (("minGRU", "GRU"), ("minLSTM", "LSTM"), ("minGRU", "plain minGRU")):
            t_peer, t_ours = time_pair(steps[peer], steps[ours], args.reps, args.warmup)
            print(f"{T:>6}  {ours + ' vs ' + peer:<20} {1e3 * t_ours:>9.2f} {1e3 * t_peer:>9.2f} "
                  f"{t_peer / t_ours:>7.2f}", flush=True)
    if args.memory:
        T = max(args.T)
        print(f"# 2 training steps at T={T}, a fresh process each: peak RSS above the RSS before them, "
              "and the RSS still held after them (MB)")
        print(f"{'model':<14} {'peak MB':>9} {'held MB':>9}")
        for name in models:
            mem = peak_rss_mb(name, args.B, T, F_in, args.H, args.threads)
            print(f"{name:<14} {mem['peak_mb']:>9.1f} {mem['held_mb']:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
