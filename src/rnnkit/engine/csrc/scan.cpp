// minGRU / minLSTM over a whole sequence: h_t = a_t * h_{t-1} + b_t, forward and backward.
//
// The same math as rnnkit/ops/min_rnn.py (which the tests hold this file to), fused: each lane
// (one batch row, one chunk of hidden units) reads its projection k, forms a_t and b_t and runs
// the recurrence in one pass over t, so the (B, T, H) coefficient tensors are never stored. The
// backward recomputes them from k and the saved states and runs the reverse scan
//     delta_t = e_t + a_{t+1} delta_{t+1},   dk from da_t = delta_t h_{t-1}, db_t = delta_t.
// On a CPU the lanes (B * H of them) are the parallelism; within a lane the sequential scan is
// T multiply-adds and never forms the product of many a's (which is why the paper's parallel
// form, which does, works in log space).
//
// Layouts, batch-first as the projection comes out of one GEMM:
//   k (B, T, G) with G = 2H (z, h: minGRU) or 3H (i, f, h: minLSTM);  h0 (B, H);
//   mask (B, T) of 0/1 in k's dtype, or empty (no padding);  h (B, T, H) the carried states.
// Registered as the operators rnnkit_min::forward / backward (the scan) and project /
// project_backward (the GEMMs around it, into pooled buffers); rnnkit/engine/min_scan.py wraps
// them in the autograd-aware rnnkit::min_scan and rnnkit::min_project.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "pool.h"  // the engine's cache of large buffers (RNNKIT_POOL_MB), shared with recurrence.cpp

#if defined(__SSE__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace {

// Hidden units per lane task, at most. A lane reads its units of each k row and writes its
// units of each h row, step after step: when a lane holds a whole row (H <= kLane, the common
// case) those are contiguous runs, one per block, that the prefetcher streams; narrower lanes
// read a few cache lines every G floats, and the lines in between are fetched twice.
constexpr int64_t kLane = 256;

// Lanes per batch row: as few as fit kLane, more only while there are fewer than kTasks lane
// tasks to share among the threads (B = 1, say) and each lane stays at least 32 units wide. Not
// from the thread count: the probe's norms are summed over lanes, and they stay the same bits
// whatever the number of threads.
constexpr int64_t kTasks = 8;

inline int64_t lane_chunks(int64_t B, int64_t H) {
  int64_t chunks = std::max<int64_t>(1, (H + kLane - 1) / kLane);
  while (B * chunks < kTasks && (H + chunks) / (chunks + 1) >= 32) ++chunks;
  return chunks;
}

// Lane tasks per thread at the least: waking a second thread costs more than a short sequence's
// whole scan, so below about 2^16 element-steps per thread the scan stays on one.
inline int64_t grain(int64_t T, int64_t width) {
  const int64_t per_task = std::max<int64_t>(1, T * width);
  return std::max<int64_t>(1, (int64_t(1) << 16) / per_task);
}

// c ? a : b, as a bit mask. A plain ternary lets GCC move each arm's arithmetic into a branch
// of its own, which (under -ftrapping-math, the default) it may not merge back, and the loop then
// stays scalar: measured at about 25 ns per element and step, against about 1 vectorised.
template <typename S>
inline S pick(bool c, S a, S b) {
  using I = std::conditional_t<sizeof(S) == 8, int64_t, int32_t>;
  I ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  const I m = -I(c);
  const I r = (ia & m) | (ib & ~m);
  S out;
  std::memcpy(&out, &r, sizeof out);
  return out;
}

// exp(x) for x <= 0 that the compiler can vectorise (std::exp is a library call, which stops the
// vectoriser and costs more than the rest of a step together): x = n ln2 + r, |r| <= ln2 / 2,
// e^r by its Taylor polynomial (float: degree 7, error < 1e-8; double: degree 13, < 1e-17),
// 2^n written straight into the exponent bits. Clamped below at e^-708 (e^-87): a sigmoid's
// tail there is far below anything that reaches h.
inline double exp_neg(double x) {
  x = pick(x < -708.0, -708.0, x);
  const double shift = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  const double t = x * 1.4426950408889634 + shift;
  const double n = t - shift;
  double r = x - n * 0.6931471803691238;  // ln 2 in two parts (fdlibm's), so n * hi is exact
  r = r - n * 1.9082149292705877e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t bits, shift_bits;
  std::memcpy(&bits, &t, sizeof bits);
  std::memcpy(&shift_bits, &shift, sizeof shift_bits);
  bits = (bits - shift_bits + 1023) << 52;  // 2^n
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float exp_neg(float x) {
  x = pick(x < -87.0f, -87.0f, x);
  const float shift = 12582912.0f;  // 1.5 * 2^23
  const float t = x * 1.44269504f + shift;
  const float n = t - shift;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits, shift_bits;
  std::memcpy(&bits, &t, sizeof bits);
  std::memcpy(&shift_bits, &shift, sizeof shift_bits);
  bits = (bits - shift_bits + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <typename S>
struct Sig {
  S pos, neg;  // sigma(x), sigma(-x), each from one exp(-|x|) with no subtraction from 1
};

template <typename S>
inline Sig<S> sig(S x) {
  const S e = exp_neg(-std::abs(x));
  const S big = S(1) / (S(1) + e), small = e * big;
  const bool up = x >= S(0);
  return Sig<S>{pick(up, big, small), pick(up, small, big)};
}

// Two sigmoids from one division: 1 / (1 + e_x) = r (1 + e_y) and 1 / (1 + e_y) = r (1 + e_x) with
// r = 1 / ((1 + e_x)(1 + e_y)). A vector division costs as much as a dozen multiply-adds and the
// step is otherwise a few polynomials, so this takes a sizeable part of each step's arithmetic
// away, for about two roundings more (both factors lie in [1, 2]: no overflow, no cancellation).
template <typename S>
inline void sig2(S x, S y, Sig<S>& sx, Sig<S>& sy) {
  const S ex = exp_neg(-std::abs(x)), ey = exp_neg(-std::abs(y));
  const S px = S(1) + ex, py = S(1) + ey;
  const S r = S(1) / (px * py);
  const S bx = r * py, by = r * px;
  const S mx = ex * bx, my = ey * by;
  const bool ux = x >= S(0), uy = y >= S(0);
  sx = Sig<S>{pick(ux, bx, mx), pick(ux, mx, bx)};
  sy = Sig<S>{pick(uy, by, my), pick(uy, my, by)};
}

// The step's coefficients. s = sigma(u), a = sigma(-u); g = g(k_h) (x + 1/2 for x >= 0, sigma(x)
// below) and dg = g'(k_h). For minLSTM u = log i - log f, so a = f / (f + i) and s = i / (f + i)
// (the same numbers as the paper's softplus form), and du reaches k_i, k_f through sigma(-k_i),
// sigma(-k_f). k is the projection without its bias (one GEMM, no broadcast pass): the bias is
// added here, as each value is read.
template <typename S>
struct Step {
  S a, s, g, dg, si_neg, sf_neg;
};

template <typename S, bool LSTM>
inline Step<S> step_coefficients(const S* k, const S* bias, int64_t H, int64_t j) {
  Step<S> st;
  constexpr int64_t hb = LSTM ? 2 : 1;  // the candidate's block
  const S kh = k[hb * H + j] + bias[hb * H + j];
  Sig<S> c, z;
  sig2(kh, k[j] + bias[j], c, z);  // minLSTM: z is its input gate i
  const bool lin = kh >= S(0);
  st.g = pick(lin, kh + S(0.5), c.pos);
  st.dg = pick(lin, S(1), c.pos * c.neg);
  if (!LSTM) {
    st.a = z.neg;
    st.s = z.pos;
    st.si_neg = st.sf_neg = S(0);
  } else {
    const Sig<S> i = z, f = sig(k[H + j] + bias[H + j]);
    const S inv = S(1) / (i.pos + f.pos);
    st.a = f.pos * inv;
    st.s = i.pos * inv;
    st.si_neg = i.neg;
    st.sf_neg = f.neg;
  }
  return st;
}

// Flush-to-zero and denormals-are-zero on this thread while a scan runs, restored after. The
// backward's delta shrinks by a factor a < 1 per step where no gradient arrives (a loss on the
// last step only, say), and after a few hundred steps it reaches the denormal range, where
// every multiply costs some hundred cycles. Values that small change nothing that reaches a weight.
struct FlushDenormals {
#if defined(__SSE__)
  unsigned int saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// One step of a lane's forward: units j0 .. j0 + n of row t (kt: k's row, ht: h's row from j0).
template <typename S, bool LSTM>
inline void forward_step(const S* __restrict kt, const S* __restrict bias, int64_t H, int64_t j0, int64_t n,
                         S* __restrict state, S* __restrict ht) {
#pragma omp simd
  for (int64_t jj = 0; jj < n; ++jj) {
    const Step<S> st = step_coefficients<S, LSTM>(kt, bias, H, j0 + jj);
    state[jj] = st.a * state[jj] + st.s * st.g;  // h_t = a_t h_{t-1} + b_t
    ht[jj] = state[jj];
  }
}

// One step of a lane's reverse scan: delta holds dL/dh_t on entry and dL/dh_{t-1} (through the
// recurrence) on exit; dkt (k's gradient row from j0) gets dk_t and db (per block) its running sum.
template <typename S, bool LSTM>
inline void backward_step(const S* __restrict kt, const S* __restrict bias, const S* __restrict hprev, int64_t H,
                          int64_t j0, int64_t n, S* __restrict delta, S* __restrict dkt, double (*db)[kLane]) {
#pragma omp simd
  for (int64_t jj = 0; jj < n; ++jj) {
    const Step<S> st = step_coefficients<S, LSTM>(kt, bias, H, j0 + jj);
    const S d = delta[jj];
    // da = d h_{t-1}, db = d; b = s g: du = s (1 - s) (db g - da), with s (1 - s) = s a.
    const S du = st.s * st.a * d * (st.g - hprev[jj]);
    const S dkh = d * st.s * st.dg;
    if (!LSTM) {
      dkt[jj] = du;
      dkt[H + jj] = dkh;
      db[0][jj] += du;
      db[1][jj] += dkh;
    } else {  // u = softplus(-k_f) - softplus(-k_i)
      const S dki = du * st.si_neg, dkf = -du * st.sf_neg;
      dkt[jj] = dki;
      dkt[H + jj] = dkf;
      dkt[2 * H + jj] = dkh;
      db[0][jj] += dki;
      db[1][jj] += dkf;
      db[2][jj] += dkh;
    }
    delta[jj] = st.a * d;  // carried to h_{t-1}
  }
}

// Software prefetch of the rows a lane touches kAhead steps later. The hardware prefetchers see
// a lane's rows as short runs a row apart (and the reverse scan walks them backwards); without
// this the loads of k wait on memory, which took most of the backward's time.
constexpr int64_t kAhead = 8;

template <typename S>
inline void prefetch_run(const S* p, int64_t n) {
  for (int64_t i = 0; i < n; i += int64_t(64 / sizeof(S))) __builtin_prefetch(p + i, 0, 3);
}

template <typename S>
inline void prefetch_run_for_write(S* p, int64_t n) {
  for (int64_t i = 0; i < n; i += int64_t(64 / sizeof(S))) __builtin_prefetch(p + i, 1, 3);
}

struct Geometry {
  int64_t B, T, H, G, chunks, width;  // width: units per lane (the last lane may have fewer)
};

Geometry geometry(const at::Tensor& k, const at::Tensor& bias, const at::Tensor& h0, int64_t kind) {
  TORCH_CHECK(kind == 0 || kind == 1, "rnnkit_min: kind must be 0 (minGRU) or 1 (minLSTM), got ", kind);
  TORCH_CHECK(k.dim() == 3 && h0.dim() == 2, "rnnkit_min: k must be (B, T, G) and h0 (B, H)");
  Geometry geo{k.size(0), k.size(1), h0.size(1), k.size(2), 0, 0};
  TORCH_CHECK(geo.G == (kind == 0 ? 2 : 3) * geo.H && h0.size(0) == geo.B,
              "rnnkit_min: k (B, T, G) and h0 (B, H) disagree: G must be ", kind == 0 ? 2 : 3, " * H");
  TORCH_CHECK(!bias.numel() || (bias.dim() == 1 && bias.size(0) == geo.G), "rnnkit_min: bias must be (G,) or empty");
  const int64_t chunks = lane_chunks(geo.B, geo.H);
  geo.width = std::clamp<int64_t>(((geo.H + chunks - 1) / chunks + 15) / 16 * 16, 16, kLane);  // whole vectors
  geo.chunks = std::max<int64_t>(1, (geo.H + geo.width - 1) / geo.width);
  return geo;
}

// The bias as a (G,) tensor: zeros when there is none, so the lanes read it without a branch.
at::Tensor bias_or_zeros(const at::Tensor& bias, const at::Tensor& k) {
  return bias.numel() ? bias.contiguous() : at::zeros({k.size(2)}, k.options());
}

template <typename S, bool LSTM>
void forward_kernel(const at::Tensor& k, const at::Tensor& bias, const at::Tensor& h0, const at::Tensor& mask,
                    bool reverse, at::Tensor& h, const Geometry& geo) {
  const S* kp = k.data_ptr<S>();
  const S* bp = bias.data_ptr<S>();
  const S* h0p = h0.data_ptr<S>();
  const S* mp = mask.numel() ? mask.data_ptr<S>() : nullptr;
  S* hp = h.data_ptr<S>();
  const int64_t T = geo.T, H = geo.H, G = geo.G;
  at::parallel_for(0, geo.B * geo.chunks, grain(T, geo.width), [&](int64_t begin, int64_t end) {
    const FlushDenormals ftz;
    S state[kLane];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / geo.chunks, j0 = (task % geo.chunks) * geo.width, n = std::min(H - j0, geo.width);
      for (int64_t jj = 0; jj < n; ++jj) state[jj] = h0p[b * H + j0 + jj];
      for (int64_t p = 0; p < T; ++p) {
        const int64_t t = reverse ? T - 1 - p : p;
        const S* kt = kp + (b * T + t) * G;
        S* ht = hp + (b * T + t) * H + j0;
        if (p + kAhead < T) {
          const int64_t ta = reverse ? t - kAhead : t + kAhead;
          for (int64_t c = 0; c < (LSTM ? 3 : 2); ++c) prefetch_run(kp + (b * T + ta) * G + c * H + j0, n);
          prefetch_run_for_write(hp + (b * T + ta) * H + j0, n);
        }
        if (mp == nullptr || mp[b * T + t] != S(0)) {
          forward_step<S, LSTM>(kt, bp, H, j0, n, state, ht);
        } else {  // a padded step keeps the state: a = 1, b = 0
          for (int64_t jj = 0; jj < n; ++jj) ht[jj] = state[jj];
        }
      }
    }
  });
}

at::Tensor min_forward(const at::Tensor& k_in, const at::Tensor& bias_in, const at::Tensor& h0_in,
                       const at::Tensor& mask_in, int64_t kind, bool reverse) {
  const at::Tensor k = k_in.contiguous(), h0 = h0_in.contiguous(), mask = mask_in.contiguous();
  const Geometry geo = geometry(k, bias_in, h0, kind);
  TORCH_CHECK(!mask.numel() || (mask.dim() == 2 && mask.size(0) == geo.B && mask.size(1) == geo.T),
              "rnnkit_min: mask must be (B, T) or empty");
  const at::Tensor bias = bias_or_zeros(bias_in, k);
  // From the pool: at a long T this is tens of MB, which glibc would map afresh (and the kernel
  // zero) every step.
  at::Tensor h = rnnkit::pooled_empty({geo.B, geo.T, geo.H}, k.options());
  AT_DISPATCH_FLOATING_TYPES(k.scalar_type(), "rnnkit_min_forward", [&] {
    if (kind == 1)
      forward_kernel<scalar_t, true>(k, bias, h0, mask, reverse, h, geo);
    else
      forward_kernel<scalar_t, false>(k, bias, h0, mask, reverse, h, geo);
  });
  return h;
}

template <typename S, bool LSTM>
void backward_kernel(const at::Tensor& k, const at::Tensor& bias, const at::Tensor& h, const at::Tensor& h0,
                     const at::Tensor& mask, const at::Tensor& dh, const at::Tensor& dh_n, bool reverse,
                     int64_t tbptt, at::Tensor& dk, at::Tensor& db_rows, at::Tensor& dh0, at::Tensor& norms,
                     const Geometry& geo) {
  constexpr int64_t blocks = LSTM ? 3 : 2;
  const S* kp = k.data_ptr<S>();
  const S* bp = bias.data_ptr<S>();
  const S* hp = h.data_ptr<S>();
  const S* h0p = h0.data_ptr<S>();
  const S* mp = mask.numel() ? mask.data_ptr<S>() : nullptr;
  const S* dhp = dh.numel() ? dh.data_ptr<S>() : nullptr;
  const S* dhnp = dh_n.numel() ? dh_n.data_ptr<S>() : nullptr;
  S* dkp = dk.data_ptr<S>();
  double* dbp = db_rows.data_ptr<double>();  // (B, G): each row's bias gradient, summed over t
  S* dh0p = dh0.data_ptr<S>();
  double* np = norms.numel() ? norms.data_ptr<double>() : nullptr;  // (B * chunks, T) partial sums
  const int64_t T = geo.T, H = geo.H, G = geo.G;
  at::parallel_for(0, geo.B * geo.chunks, grain(T, geo.width), [&](int64_t begin, int64_t end) {
    const FlushDenormals ftz;
    S delta[kLane];
    double db[blocks][kLane];  // the bias gradient, in double: a float sum over 10^4 steps loses digits
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / geo.chunks, j0 = (task % geo.chunks) * geo.width, n = std::min(H - j0, geo.width);
      for (int64_t jj = 0; jj < n; ++jj) delta[jj] = dhnp ? dhnp[b * H + j0 + jj] : S(0);
      for (int64_t c = 0; c < blocks; ++c)
        for (int64_t jj = 0; jj < n; ++jj) db[c][jj] = 0;
      for (int64_t p = T - 1; p >= 0; --p) {
        const int64_t t = reverse ? T - 1 - p : p;
        const S* kt = kp + (b * T + t) * G;
        S* dkt = dkp + (b * T + t) * G + j0;
        // h_{t-1} in processing order: the previous state, or h0 at the first step.
        const S* hprev = (p == 0 ? h0p + b * H : hp + (b * T + (reverse ? t + 1 : t - 1)) * H) + j0;
        if (p > kAhead) {  // (p > kAhead, not >=: the row before ta must exist too)
          const int64_t ta = reverse ? t + kAhead : t - kAhead;
          for (int64_t c = 0; c < blocks; ++c) {
            prefetch_run(kp + (b * T + ta) * G + c * H + j0, n);
            prefetch_run_for_write(dkp + (b * T + ta) * G + c * H + j0, n);
          }
          prefetch_run(hp + (b * T + (reverse ? ta + 1 : ta - 1)) * H + j0, n);
          if (dhp != nullptr) prefetch_run(dhp + (b * T + ta) * H + j0, n);
        }
        if (dhp != nullptr) {
          const S* e = dhp + (b * T + t) * H + j0;
          for (int64_t jj = 0; jj < n; ++jj) delta[jj] += e[jj];
        }
        if (np != nullptr) {
          double sq = 0;
#pragma omp simd reduction(+ : sq)
          for (int64_t jj = 0; jj < n; ++jj) sq += double(delta[jj]) * double(delta[jj]);
          np[task * T + t] = sq;
        }
        if (mp != nullptr && mp[b * T + t] == S(0)) {  // a and b are constants there: dk = 0
          for (int64_t c = 0; c < blocks; ++c)
            for (int64_t jj = 0; jj < n; ++jj) dkt[c * H + jj] = S(0);
        } else {
          backward_step<S, LSTM>(kt, bp, hprev, H, j0, n, delta, dkt, db);
        }
        if (tbptt > 0 && p > 0 && p % tbptt == 0)  // the graph is cut between windows
          for (int64_t jj = 0; jj < n; ++jj) delta[jj] = S(0);
      }
      for (int64_t jj = 0; jj < n; ++jj) dh0p[b * H + j0 + jj] = delta[jj];
      for (int64_t c = 0; c < blocks; ++c)
        for (int64_t jj = 0; jj < n; ++jj) dbp[b * G + c * H + j0 + jj] = db[c][jj];
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> min_backward(
    const at::Tensor& k_in, const at::Tensor& bias_in, const at::Tensor& h_in, const at::Tensor& h0_in,
    const at::Tensor& mask_in, const at::Tensor& dh_in, const at::Tensor& dh_n_in, int64_t kind, bool reverse,
    int64_t tbptt, bool want_norms) {
  const at::Tensor k = k_in.contiguous(), h = h_in.contiguous(), h0 = h0_in.contiguous();
  const at::Tensor mask = mask_in.contiguous(), dh = dh_in.contiguous(), dh_n = dh_n_in.contiguous();
  const Geometry geo = geometry(k, bias_in, h0, kind);
  TORCH_CHECK(h.sizes() == at::IntArrayRef({geo.B, geo.T, geo.H}), "rnnkit_min: h must be (B, T, H)");
  TORCH_CHECK(!dh.numel() || dh.sizes() == h.sizes(), "rnnkit_min: dh must be (B, T, H) or empty");
  TORCH_CHECK(!dh_n.numel() || dh_n.sizes() == h0.sizes(), "rnnkit_min: dh_n must be (B, H) or empty");
  const at::Tensor bias = bias_or_zeros(bias_in, k);
  at::Tensor dk = rnnkit::pooled_empty(k.sizes(), k.options()), dh0 = at::empty_like(h0);
  at::Tensor db_rows = at::empty({geo.B, geo.G}, k.options().dtype(at::kDouble));
  at::Tensor partial = want_norms ? at::zeros({geo.B * geo.chunks, geo.T}, k.options().dtype(at::kDouble))
                                  : at::empty({0}, k.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(k.scalar_type(), "rnnkit_min_backward", [&] {
    if (kind == 1)
      backward_kernel<scalar_t, true>(k, bias, h, h0, mask, dh, dh_n, reverse, tbptt, dk, db_rows, dh0, partial, geo);
    else
      backward_kernel<scalar_t, false>(k, bias, h, h0, mask, dh, dh_n, reverse, tbptt, dk, db_rows, dh0, partial, geo);
  });
  at::Tensor dbias = bias_in.numel() ? db_rows.sum(0).to(k.scalar_type()) : at::empty({0}, k.options());
  // ||dL/dh_t|| over the batch, in data order.
  at::Tensor norms = want_norms ? partial.sum(0).sqrt().to(k.scalar_type()) : at::empty({0}, k.options());
  return {dk, dbias, dh0, norms};
}

// k = x W^T (B, T, G), one GEMM over all B*T rows, into a pooled buffer: at a long T, k is the
// largest tensor of the step, and a fresh one would be mapped and zeroed by the kernel every step.
at::Tensor min_project(const at::Tensor& x, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 3 && w.dim() == 2 && x.size(2) == w.size(1), "rnnkit_min: x must be (B, T, F) and w (G, F)");
  at::Tensor k = rnnkit::pooled_empty({x.size(0), x.size(1), w.size(0)}, x.options());
  at::Tensor rows = k.view({-1, w.size(0)});  // (B*T, G)
  at::mm_out(rows, x.reshape({-1, x.size(2)}), w.t());
  return k;
}

// The projection's gradients: dx = dk W (B, T, F), pooled as k is, and dW = dk^T x (G, F);
// each an empty placeholder when not wanted.
std::tuple<at::Tensor, at::Tensor> min_project_backward(const at::Tensor& dk, const at::Tensor& x,
                                                        const at::Tensor& w, bool want_dx, bool want_dw) {
  TORCH_CHECK(dk.dim() == 3 && dk.size(2) == w.size(0), "rnnkit_min: dk must be (B, T, G)");
  const at::Tensor dk2 = dk.reshape({-1, w.size(0)});
  at::Tensor dx = at::empty({0}, x.options()), dw = at::empty({0}, w.options());
  if (want_dx) {
    dx = rnnkit::pooled_empty(x.sizes(), x.options());
    at::Tensor rows = dx.view({-1, x.size(2)});  // (B*T, F)
    at::mm_out(rows, dk2, w);
  }
  // dW as (x^T dk)^T: MKL runs the (F, B*T) x (B*T, G) product some 10-15% faster than
  // dk^T x here (measured at B*T = 32000, F = 128, G = 256); the transpose is a (G, F) copy.
  if (want_dw) dw = at::mm(x.reshape({-1, x.size(2)}).t(), dk2).t().contiguous();
  return {dx, dw};
}

}  // namespace

TORCH_LIBRARY(rnnkit_min, m) {
  m.def("forward(Tensor k, Tensor bias, Tensor h0, Tensor mask, int kind, bool reverse) -> Tensor");
  m.def("backward(Tensor k, Tensor bias, Tensor h, Tensor h0, Tensor mask, Tensor dh, Tensor dh_n, int kind, "
        "bool reverse, int tbptt, bool want_norms) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("project(Tensor x, Tensor w) -> Tensor");
  m.def("project_backward(Tensor dk, Tensor x, Tensor w, bool want_dx, bool want_dw) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rnnkit_min, CPU, m) {
  m.impl("forward", &min_forward);
  m.impl("backward", &min_backward);
  m.impl("project", &min_project);
  m.impl("project_backward", &min_project_backward);
}
