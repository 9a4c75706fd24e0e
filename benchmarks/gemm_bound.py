"""How fast could an LSTM train step be if only its GEMMs cost time? A bound for issue 6.

    python benchmarks/gemm_bound.py                 # config L, two threads
    python benchmarks/gemm_bound.py --config M --reps 15

Runs the engine's own GEMM kernels (``csrc/packed_gemm.h``) on the products of one LSTM train
step, split over the threads as the compiled loop splits them, with nothing else in between:
no gate rows, no histories, no autograd. Per step and thread, on its share of the batch:

    forward   x_t W_ih^T, then + h W_hh^T           (two packed GEMMs, as the loop does)
    backward  dh = dA W_hh, dx = dA W_ih             (two packed GEMMs)
    weights   dW_hh | dW_ih += dA^T [h | x]          (outer tiles, chunks of ~128 rows,
                                                      each thread summing its half of dW's
                                                      rows from both threads' chunks)

It then times rnnkit's real train step (plain LSTM, and with recurrent dropout, zoneout and
layer norm) and the LSTMCell loop of benchmarks/run.py, interleaved, and prints the ratio the
step would reach if everything but these GEMMs were free, and the one it would reach with its
GEMMs at the machine's FMA peak (measured here too) and the rest as it is. Needs AVX-512 and a
C++ compiler.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from rnnkit.cells import RecurrentCell
from rnnkit.engine import kernels as compiled
from rnnkit.engine import recurrent_dropout_mask, zoneout_keep
from rnnkit.recurrent import run_layer

sys.path.insert(0, str(Path(__file__).parent))
from run import CONFIGS, _copy_weights, _loss_backward, _lstmcell_loop  # noqa: E402

_SOURCE = r"""
#include <torch/extension.h>
#include <omp.h>
#include "packed_gemm.h"

using rnnkit::PackedB;

// Seconds for `steps` steps of the GEMMs alone: the whole run, then thread 0's forward and backward
// GEMMs, then each thread's weight-gradient flushes. The chunk rows are G + pad floats apart (the loop pads 16).
std::vector<double> step_gemms(int64_t B, int64_t steps, int64_t F, int64_t H, int threads, int64_t pad) {
  const int64_t G = 4 * H, W = H + F, lda = G + pad;
  std::vector<float> w_ih(G * F, 0.01f), w_hh(G * H, 0.01f);
  PackedB fx, fh, bh, bx;  // forward: x W_ih^T, h W_hh^T; backward: dA W_hh, dA W_ih
  rnnkit::pack_b(fx, w_ih.data(), F, G, 1, F);
  rnnkit::pack_b(fh, w_hh.data(), H, G, 1, H);
  rnnkit::pack_b(bh, w_hh.data(), G, H, H, 1);
  rnnkit::pack_b(bx, w_ih.data(), G, F, F, 1);
  std::vector<float> dw(G * W, 0.0f);
  const int64_t rows = B / threads, chunk_steps = std::max<int64_t>(1, 128 / rows), n = chunk_steps * rows;
  const int64_t panels = (W + rnnkit::kPanel - 1) / rnnkit::kPanel;
  std::vector<std::vector<float>> chunk_a(threads, std::vector<float>(n * lda, 0.001f));
  std::vector<std::vector<float>> chunk_v(threads, std::vector<float>(panels * n * rnnkit::kPanel + 16, 0.001f));
  auto gemm = [&](const float* A, int64_t ld, const PackedB& b, int64_t M, float* C, int64_t ldc, const float* init) {
    for (int64_t q = 0; q < b.panels(); ++q) rnnkit::gemm_panel(A, ld, b, q, M, C, ldc, init, ldc);
  };
  double fw = 0, bw = 0;
  std::vector<double> flush(threads, 0.0);
  const double start = omp_get_wtime();
#pragma omp parallel num_threads(threads)
  {
    const int id = omp_get_thread_num();
    std::vector<float> x(rows * F, 0.01f), h(rows * H, 0.01f), g(rows * G), dh(rows * H), dx(rows * F);
    float* da = chunk_a[id].data();
    double t0 = omp_get_wtime();
    for (int64_t s = 0; s < steps; ++s) {
      gemm(x.data(), F, fx, rows, g.data(), G, nullptr);
      gemm(h.data(), H, fh, rows, g.data(), G, g.data());
      h[s % (rows * H)] = g[s % (rows * G)] * 1e-6f;  // a data dependence from step to step
    }
    if (id == 0) fw = omp_get_wtime() - t0;
#pragma omp barrier
    for (int64_t s = 0; s < steps; ++s) {
      t0 = omp_get_wtime();
      float* a = da + (s % chunk_steps) * rows * lda;
      gemm(a, lda, bh, rows, dh.data(), H, nullptr);
      gemm(a, lda, bx, rows, dx.data(), F, nullptr);
      a[s % (rows * G)] = dh[s % (rows * H)] * 1e-6f;
      if (id == 0) bw += omp_get_wtime() - t0;
      if ((s + 1) % chunk_steps == 0 || s + 1 == steps) {
#pragma omp barrier
        t0 = omp_get_wtime();
        const int64_t r0 = G * id / threads / 8 * 8, r1 = id + 1 == threads ? G : G * (id + 1) / threads / 8 * 8;
        for (int t = 0; t < threads; ++t)
          rnnkit::outer_accumulate(chunk_a[t].data() + r0, lda, r1 - r0, chunk_v[t].data(), n * rnnkit::kPanel, W, n,
                                   dw.data() + r0 * W, W);
        flush[id] += omp_get_wtime() - t0;
#pragma omp barrier
      }
    }
  }
  std::vector<double> out{omp_get_wtime() - start, fw, bw};
  out.insert(out.end(), flush.begin(), flush.end());
  return out;
}

// The machine's FMA peak in GF/s on `threads` cores: twelve independent chains of 16-wide FMAs
// per thread, enough to keep both FMA pipes busy whatever their latency.
double fma_peak(int threads) {
  const int64_t rounds = 20000000;
  float sink = 0;
  const double start = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  {
    __m512 a[12];
    for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-7f);
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
    sink += _mm512_reduce_add_ps(s);
  }
  const double seconds = omp_get_wtime() - start;
  return sink == 0.5f ? 0 : threads * rounds * 12.0 * 32 / seconds / 1e9;  // sink keeps the loop alive
}
"""


def build():
    from torch.utils.cpp_extension import load_inline

    flags = ["-O3", *compiled._cpu_flags(), "-fopenmp"]
    if "-mavx512f" not in flags:
        sys.exit("gemm_bound.py needs AVX-512: the engine's packed GEMM is what it times")
    return load_inline("rnnkit_gemm_bound", cpp_sources=_SOURCE, functions=["step_gemms", "fma_peak"], extra_cflags=flags,
                       extra_ldflags=["-fopenmp"], extra_include_paths=[str(compiled._CSRC)], verbose=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="L", choices=sorted(CONFIGS))
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--row-pad", type=int, default=16,
                   help="floats between the chunk rows past 4H, as the loop's 16 (0: rows 4 KB apart at H = 256)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    c = CONFIGS[args.config]
    B, T, I, H = c["B"], c["T"], c["I"], c["H"]
    flop = 2 * B * T * 4 * H * (I + H) * 3  # forward; dh and dx; dW_ih and dW_hh
    ext = build()

    torch.manual_seed(0)
    x = torch.randn(B, T, I, requires_grad=True)
    ref = torch.nn.LSTMCell(I, H)
    cells = {name: RecurrentCell("lstm", I, H, layer_norm=name == "layer_norm")
             for name in ("plain", "recurrent_dropout", "zoneout", "layer_norm")}
    for cell in cells.values():
        _copy_weights(cell, ref, suffix="")
    rdm = recurrent_dropout_mask(B, H, 0.25, like=x)
    zo = tuple(zoneout_keep(B, T, H, 0.1, True, like=x) for _ in range(2))
    ln = cells["layer_norm"]
    ln_w = (ln.ln_gamma, ln.ln_beta, ln.ln_cell_gamma, ln.ln_cell_beta)
    kwargs = {"plain": {}, "recurrent_dropout": {"recurrent_mask": rdm}, "zoneout": {"zoneout": zo}, "layer_norm": {}}

    def ours(name):
        return lambda: _loss_backward(*run_layer(cells[name].spec, x, cells[name].weights(), **kwargs[name]))

    def peer(name):
        return lambda: _loss_backward(*_lstmcell_loop(ref, x, name, 0.25, rdm, zo, ln_w))

    phases: list[list[float]] = []
    fns = {"gemms only": lambda: phases.append(ext.step_gemms(B, T, I, H, args.threads, args.row_pad))}
    fns.update({f"rnnkit {n}": ours(n) for n in cells})
    fns.update({f"LSTMCell loop {n}": peer(n) for n in ("recurrent_dropout", "zoneout", "layer_norm")})
    for fn in fns.values():
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(args.reps):
        for k in fns if i % 2 == 0 else reversed(list(fns)):
            start = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    bound = ms["gemms only"]
    peak = max(ext.fma_peak(args.threads) for _ in range(5))
    at_peak = flop / peak / 1e6  # ms for the step's GEMMs at the FMA peak
    print(f"# config {args.config} (B {B}, T {T}, F {I}, H {H}), {args.threads} threads, row pad {args.row_pad}, "
          f"torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; medians of {args.reps} interleaved runs")
    print(f"# one train step is {flop / 1e9:.1f} GFLOP of GEMMs: {at_peak:.1f} ms at the FMA peak, "
          f"{peak:.0f} GF/s measured on {args.threads} threads")
    print("| what | ms | GF/s | GEMM-only time / this |")
    print("|---|---|---|---|")
    for k, v in ms.items():
        print(f"| {k} | {v:.2f} | {flop / v / 1e6:.0f} | {bound / v:.2f} |")
    # Each phase is a third of the step's GEMM work, split evenly over the threads.
    per_thread = flop / 3 / args.threads
    names = ["thread 0 forward", "thread 0 backward dh, dx"] + [f"thread {i} weight flush" for i in range(args.threads)]
    parts = {name: statistics.median(p[i + 1] for p in phases) * 1e3 for i, name in enumerate(names)}
    print("\nGEMMs only: " + ", ".join(f"{k} {t:.2f} ms ({per_thread / t / 1e6:.0f} GF/s)" for k, t in parts.items()))
    # What the option step would read with its GEMMs at the FMA peak and everything else as now.
    rest = {n: ms[f"rnnkit {n}"] - bound for n in ("recurrent_dropout", "zoneout", "layer_norm")}
    print("\n| option | LSTMCell loop / rnnkit | LSTMCell loop / GEMMs only | the rest (ms) "
          "| LSTMCell loop / (GEMMs at peak + the rest) |")
    print("|---|---|---|---|---|")
    for n, r in rest.items():
        peer_ms = ms[f"LSTMCell loop {n}"]
        print(f"| {n} | {peer_ms / ms[f'rnnkit {n}']:.2f} | {peer_ms / bound:.2f} | {r:.1f} "
              f"| {peer_ms / (at_peak + r):.2f} |")


if __name__ == "__main__":
    main()
