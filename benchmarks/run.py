"""Time rnnkit against its peers in one run, interleaved, and print medians and ratios.

    python benchmarks/run.py                         # every suite
    python benchmarks/run.py --suites core --cells gru --configs M --reps 15

Suites (ratio = peer time / rnnkit time, so > 1 means rnnkit is faster):
    core     train step (forward + backward) and inference of one layer vs torch.nn,
             for rnnkit's engine ("bptt") and for implementation="auto".
    masked   a right-padded batch (lengths in [T/2, T]) vs torch.nn with PackedSequence.
    variants LSTM with recurrent dropout, zoneout or layer norm vs a torch LSTMCell Python
             loop of the same math (torch has no fused kernel for these).
    stack    rnnkit.nn 2-layer and bidirectional modules vs torch.nn's.
    stream   one step at B=1 (stateful streaming) vs torch.nn.LSTMCell / GRUCell.
    peers    training step vs JAX (jit, lax.scan) and Keras 3 on its torch backend, each
             only if installed (pip install jax keras; never a test dependency).
    memory   peak RSS of 3 training steps above the RSS before the first full-size step,
             in fresh subprocesses.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.cells import RecurrentCell
from rnnkit.engine import Streamer
from rnnkit.engine import recurrent_dropout_mask, zoneout_keep
from rnnkit.recurrent import run_layer

CONFIGS = {
    "S": dict(B=16, T=200, I=32, H=64),
    "M": dict(B=32, T=100, I=64, H=128),
    "L": dict(B=64, T=100, I=128, H=256),
}
TORCH_MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
Fn = Callable[[], None]


def _loss_backward(out: torch.Tensor, state) -> None:
    state = state if isinstance(state, tuple) else (state,)
    (out.sum() + sum(s.sum() for s in state)).backward()


def _copy_weights(cell: RecurrentCell, module: torch.nn.Module, suffix: str = "_l0") -> None:
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(module, name + suffix))


def time_pair(peer: Fn, ours: Fn, reps: int, warmup: int) -> tuple[float, float]:
    """Medians (seconds) of interleaved runs, alternating who goes first."""
    for _ in range(warmup):
        peer()
        ours()
    t_peer, t_ours = [], []
    for i in range(reps):
        pair = [(peer, t_peer), (ours, t_ours)]
        for fn, acc in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    return statistics.median(t_peer), statistics.median(t_ours)


# ------------------------------------------------------------------------ suites
# Each yields (label, peer name, peer fn, rnnkit fn).


def suite_core(args) -> Iterator[tuple[str, str, Fn, Fn]]:
    for kind in args.cells:
        for cfg_name in args.configs:
            c = CONFIGS[cfg_name]
            torch.manual_seed(0)
            ref = TORCH_MODULES[kind](c["I"], c["H"], batch_first=True)
            cell = RecurrentCell(kind, c["I"], c["H"])
            _copy_weights(cell, ref)
            x = torch.randn(c["B"], c["T"], c["I"], requires_grad=True)
            for impl in args.impls:
                def ours_train(impl=impl):
                    _loss_backward(*run_layer(cell.spec, x, cell.weights(), implementation=impl))

                def ours_infer(impl=impl):
                    with torch.inference_mode():
                        run_layer(cell.spec, x, cell.weights(), implementation=impl)

                def peer_infer():
                    with torch.inference_mode():
                        ref(x)

                yield f"{kind} {cfg_name} train [{impl}]", "torch.nn", lambda: _loss_backward(*ref(x)), ours_train
                yield f"{kind} {cfg_name} infer [{impl}]", "torch.nn", peer_infer, ours_infer


def suite_masked(args) -> Iterator[tuple[str, str, Fn, Fn]]:
    for kind in [k for k in args.cells if k != "rnn"]:
        for cfg_name in args.configs:
            c = CONFIGS[cfg_name]
            torch.manual_seed(0)
            ref = TORCH_MODULES[kind](c["I"], c["H"], batch_first=True)
            cell = RecurrentCell(kind, c["I"], c["H"])
            _copy_weights(cell, ref)
            x = torch.randn(c["B"], c["T"], c["I"], requires_grad=True)
            lengths = torch.randint(c["T"] // 2, c["T"] + 1, (c["B"],), generator=torch.Generator().manual_seed(0))

            def peer():
                packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                out, state = ref(packed)
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=c["T"])
                _loss_backward(out, state)

            def ours():
                _loss_backward(*run_layer(cell.spec, x, cell.weights(), lengths=lengths))

            yield f"{kind} {cfg_name} masked train", "torch.nn + PackedSequence", peer, ours


def _lstmcell_loop(ref: torch.nn.LSTMCell, x, variant: str, rate: float, rdm, zo, ln):
    """The same math as rnnkit's LSTM options, as a Python loop over torch ops."""
    B, T, _ = x.shape
    H = ref.hidden_size
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    outs = []
    for t in range(T):
        if variant == "layer_norm":
            a = F.linear(x[:, t], ref.weight_ih, ref.bias_ih) + F.linear(h, ref.weight_hh, ref.bias_hh)
            a = F.layer_norm(a.view(B, 4, H), (H,)).view(B, 4 * H) * ln[0] + ln[1]
            i, f, g, o = a.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(F.layer_norm(c, (H,)) * ln[2] + ln[3])
        elif variant == "recurrent_dropout":
            h, c = ref(x[:, t], (h * rdm, c))
        else:
            h_new, c_new = ref(x[:, t], (h, c))
            h = torch.lerp(h_new, h, zo[0][:, t])
            c = torch.lerp(c_new, c, zo[1][:, t])
        outs.append(h)
    return torch.stack(outs, 1), (h, c)


def suite_variants(args) -> Iterator[tuple[str, str, Fn, Fn]]:
    for cfg_name in args.configs:
        c = CONFIGS[cfg_name]
        B, T, I, H = c["B"], c["T"], c["I"], c["H"]
        for variant in ("recurrent_dropout", "zoneout", "layer_norm"):
            torch.manual_seed(0)
            ref = torch.nn.LSTMCell(I, H)
            cell = RecurrentCell("lstm", I, H, layer_norm=variant == "layer_norm")
            _copy_weights(cell, ref, suffix="")
            x = torch.randn(B, T, I, requires_grad=True)
            rdm = recurrent_dropout_mask(B, H, 0.25, like=x) if variant == "recurrent_dropout" else None
            zo = tuple(zoneout_keep(B, T, H, 0.1, True, like=x) for _ in range(2)) if variant == "zoneout" else None
            ln = (cell.ln_gamma, cell.ln_beta, cell.ln_cell_gamma, cell.ln_cell_beta)

            def peer(ref=ref, x=x, variant=variant, rdm=rdm, zo=zo, ln=ln):
                _loss_backward(*_lstmcell_loop(ref, x, variant, 0.25, rdm, zo, ln))

            def ours(cell=cell, x=x, rdm=rdm, zo=zo):
                _loss_backward(*run_layer(cell.spec, x, cell.weights(), recurrent_mask=rdm, zoneout=zo))

            yield f"lstm {cfg_name} {variant} train", "torch LSTMCell loop", peer, ours


def suite_stack(args) -> Iterator[tuple[str, str, Fn, Fn]]:
    for kind in args.cells:
        for cfg_name in args.configs:
            c = CONFIGS[cfg_name]
            for kw in ({"num_layers": 2}, {"bidirectional": True}):
                torch.manual_seed(0)
                ref = TORCH_MODULES[kind](c["I"], c["H"], batch_first=True, **kw)
                ours_m = getattr(rnnkit.nn, type(ref).__name__)(c["I"], c["H"], batch_first=True, **kw)
                ours_m.load_state_dict(ref.state_dict())
                x = torch.randn(c["B"], c["T"], c["I"], requires_grad=True)
                name = "2-layer" if "num_layers" in kw else "bidirectional"
                yield (f"{kind} {cfg_name} {name} train", "torch.nn", lambda ref=ref, x=x: _loss_backward(*ref(x)),
                       lambda m=ours_m, x=x: _loss_backward(*m(x)))


def _jax_train_step(kind: str, cell: RecurrentCell, x: torch.Tensor):
    """A jit-compiled JAX training step (lax.scan, projection hoisted) with rnnkit's weights, or None."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    params = {k: jnp.asarray(getattr(cell, k).detach().numpy()) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    xs = jnp.asarray(x.detach().numpy().transpose(1, 0, 2))  # (T, B, F)
    B, H = x.shape[0], cell.hidden_size

    def step(carry, xw, p):
        h = carry[0]
        hw = h @ p["weight_hh"].T + p["bias_hh"]
        if kind == "lstm":
            i, f, g, o = jnp.split(xw + hw, 4, axis=-1)
            c = jax.nn.sigmoid(f) * carry[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h
        if kind == "gru":
            xr, xz, xn = jnp.split(xw, 3, axis=-1)
            hr, hz, hn = jnp.split(hw, 3, axis=-1)
            r, z = jax.nn.sigmoid(xr + hr), jax.nn.sigmoid(xz + hz)
            n = jnp.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            return (h,), h
        h = jnp.tanh(xw + hw)
        return (h,), h

    def loss(p, xs):
        xw = xs @ p["weight_ih"].T + p["bias_ih"]
        carry0 = tuple(jnp.zeros((B, H), xs.dtype) for _ in range(2 if kind == "lstm" else 1))
        final, outs = jax.lax.scan(lambda c, xt: step(c, xt, p), carry0, xw)
        return outs.sum() + sum(f.sum() for f in final)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return lambda: jax.block_until_ready(grad(params, xs))


def _keras_train_step(kind: str, hidden: int, x: torch.Tensor):
    """Keras 3 on its torch backend: the layer's forward and torch autograd's backward, or None."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None
    layer_cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[kind]
    layer = layer_cls(hidden, return_sequences=True, return_state=True)
    layer(x[:1].detach())  # build

    def step():
        out, *states = layer(x)
        (out.sum() + sum(s.sum() for s in states)).backward()

    return step


def suite_peers(args) -> Iterator[tuple[str, str, Fn, Fn]]:
    """rnnkit (implementation="auto") against JAX and Keras, where they are installed."""
    for kind in args.cells:
        for cfg_name in args.configs:
            c = CONFIGS[cfg_name]
            torch.manual_seed(0)
            cell = RecurrentCell(kind, c["I"], c["H"])
            x = torch.randn(c["B"], c["T"], c["I"], requires_grad=True)

            def ours(cell=cell, x=x):
                _loss_backward(*run_layer(cell.spec, x, cell.weights(), implementation="auto"))

            jax_step = _jax_train_step(kind, cell, x)
            if jax_step is not None:
                yield f"{kind} {cfg_name} train", "JAX jit (lax.scan)", jax_step, ours
            keras_step = _keras_train_step(kind, c["H"], x)
            if keras_step is not None:
                yield f"{kind} {cfg_name} train", "Keras 3 (torch backend)", keras_step, ours


def suite_stream(args) -> Iterator[tuple[str, str, Fn, Fn]]:
    H = 128
    for kind, ref_cls in (("lstm", torch.nn.LSTMCell), ("gru", torch.nn.GRUCell)):
        torch.manual_seed(0)
        ref = ref_cls(H, H)
        cell = RecurrentCell(kind, H, H)
        _copy_weights(cell, ref, suffix="")
        stream = Streamer(cell)
        x = torch.randn(1, H)
        state = {"s": None}

        def peer(ref=ref, x=x, state=state, n=200):
            with torch.no_grad():
                for _ in range(n):
                    state["s"] = ref(x, state["s"])

        def ours(stream=stream, x=x, n=200):
            for _ in range(n):
                stream.step(x)

        yield f"{kind} B=1 H={H} one step (x200)", f"torch {ref_cls.__name__}", peer, ours


MEMORY_SNIPPET = """
import sys, torch
torch.set_num_threads(int(sys.argv[7]))
kind, which, B, T, I, H = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
x = torch.randn(B, T, I, requires_grad=True)
if which == "torch":
    m = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](I, H, batch_first=True)
else:
    import rnnkit
    m = {"lstm": rnnkit.nn.LSTM, "gru": rnnkit.nn.GRU, "rnn": rnnkit.nn.RNN}[kind](I, H, batch_first=True, implementation="bptt")
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
def step(x):
    out, state = m(x)
    state = state if isinstance(state, tuple) else (state,)
    (out.sum() + sum(s.sum() for s in state)).backward()
# Libraries and kernels load on a tiny batch; the baseline is taken before any full-size
# step, so memory a library keeps for reuse between steps counts against it.
step(torch.randn(1, 2, I, requires_grad=True))
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS:")
for _ in range(3):
    step(x)
print(status("VmHWM:") - before)
"""


def run_memory(args) -> None:
    print("\n| cell | config | torch: peak RSS growth (MB) | rnnkit bptt (MB) | rnnkit / torch |")
    print("|---|---|---|---|---|")
    for kind in args.cells:
        for cfg_name in args.configs:
            c = CONFIGS[cfg_name]
            dims = [str(c[k]) for k in ("B", "T", "I", "H")]
            kb = {}
            for which in ("torch", "rnnkit"):
                res = subprocess.run([sys.executable, "-c", MEMORY_SNIPPET, kind, which, *dims, str(args.threads)],
                                     capture_output=True, text=True, check=True)
                kb[which] = int(res.stdout.strip().splitlines()[-1])
            print(f"| {kind} | {cfg_name} | {kb['torch'] / 1024:.1f} | {kb['rnnkit'] / 1024:.1f} | "
                  f"{kb['rnnkit'] / max(kb['torch'], 1):.2f} |", flush=True)


SUITES = {"core": suite_core, "masked": suite_masked, "variants": suite_variants, "stack": suite_stack,
          "peers": suite_peers,
          "stream": suite_stream}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default="core,masked,variants,stack,stream,peers,memory")
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--configs", default="S,M,L")
    parser.add_argument("--impls", default="bptt,auto")
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for name in ("suites", "cells", "configs", "impls"):
        setattr(args, name, getattr(args, name).split(","))
    torch.set_num_threads(args.threads)
    print(f"# rnnkit {rnnkit.__version__}, torch {torch.__version__}, {args.threads} threads, "
          f"{platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}; medians of {args.reps} interleaved runs")
    print("| case | peer | peer ms | rnnkit ms | ratio (peer / rnnkit) |")
    print("|---|---|---|---|---|")
    for suite in args.suites:
        if suite == "memory":
            continue
        for label, peer_name, peer, ours in SUITES[suite](args):
            t_peer, t_ours = time_pair(peer, ours, args.reps, args.warmup)
            print(f"| {label} | {peer_name} | {t_peer * 1e3:.2f} | {t_ours * 1e3:.2f} | {t_peer / t_ours:.2f} |",
                  flush=True)
    if "memory" in args.suites:
        run_memory(args)


if __name__ == "__main__":
    main()
