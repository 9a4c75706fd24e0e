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
// Registered as the operators rnnkit_min::forward / backward; rnnkit/engine/min_scan.py wraps
// them in the autograd-aware rnnkit::min_scan.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

constexpr int64_t kChunk = 64;  // hidden units per lane task: a cache line or four, streamed over t

template <typename S>
struct Sig {
  S pos, neg;  // sigma(x), sigma(-x), each from one exp(-|x|) with no subtraction from 1
};

template <typename S>
inline Sig<S> sig(S x) {
  const S e = std::exp(-std::abs(x));
  const S big = S(1) / (S(1) + e), small = e / (S(1) + e);
  return x >= 0 ? Sig<S>{big, small} : Sig<S>{small, big};
}

// g(x) = x + 1/2 (x >= 0), sigma(x) (x < 0), and g'(x).
template <typename S>
inline void g_and_grad(S x, S& g, S& dg) {
  if (x >= 0) {
    g = x + S(0.5);
    dg = S(1);
  } else {
    const Sig<S> s = sig(x);
    g = s.pos;
    dg = s.pos * s.neg;
  }
}

// The step's coefficients. s = sigma(u), a = sigma(-u); for minLSTM u = log i - log f, so
// a = f / (f + i) and s = i / (f + i) (the same numbers as the paper's softplus form).
template <typename S>
struct Step {
  S a, s, g, dg;
  S si_neg, sf_neg;  // minLSTM: sigma(-k_i), sigma(-k_f), for du/dk_i and du/dk_f
};

template <typename S>
inline Step<S> step_coefficients(bool lstm, const S* k, int64_t H, int64_t j) {
  Step<S> st;
  if (!lstm) {
    const Sig<S> z = sig(k[j]);
    st.a = z.neg;
    st.s = z.pos;
    g_and_grad(k[H + j], st.g, st.dg);
  } else {
    const Sig<S> i = sig(k[j]), f = sig(k[H + j]);
    const S sum = i.pos + f.pos;
    st.a = f.pos / sum;
    st.s = i.pos / sum;
    st.si_neg = i.neg;
    st.sf_neg = f.neg;
    g_and_grad(k[2 * H + j], st.g, st.dg);
  }
  return st;
}

struct Geometry {
  int64_t B, T, H, G, chunks;
};

Geometry geometry(const at::Tensor& k, const at::Tensor& h0, int64_t kind) {
  TORCH_CHECK(kind == 0 || kind == 1, "rnnkit_min: kind must be 0 (minGRU) or 1 (minLSTM), got ", kind);
  TORCH_CHECK(k.dim() == 3 && h0.dim() == 2, "rnnkit_min: k must be (B, T, G) and h0 (B, H)");
  Geometry geo{k.size(0), k.size(1), h0.size(1), k.size(2), 0};
  TORCH_CHECK(geo.G == (kind == 0 ? 2 : 3) * geo.H && h0.size(0) == geo.B,
              "rnnkit_min: k (B, T, G) and h0 (B, H) disagree: G must be ", kind == 0 ? 2 : 3, " * H");
  geo.chunks = (geo.H + kChunk - 1) / kChunk;
  return geo;
}

template <typename S>
void forward_kernel(const at::Tensor& k, const at::Tensor& h0, const at::Tensor& mask, bool lstm, bool reverse,
                    at::Tensor& h, const Geometry& geo) {
  const S* kp = k.data_ptr<S>();
  const S* h0p = h0.data_ptr<S>();
  const S* mp = mask.numel() ? mask.data_ptr<S>() : nullptr;
  S* hp = h.data_ptr<S>();
  const int64_t T = geo.T, H = geo.H, G = geo.G;
  at::parallel_for(0, geo.B * geo.chunks, 1, [&](int64_t begin, int64_t end) {
    S state[kChunk];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / geo.chunks, j0 = (task % geo.chunks) * kChunk, j1 = std::min(H, j0 + kChunk);
      for (int64_t j = j0; j < j1; ++j) state[j - j0] = h0p[b * H + j];
      for (int64_t p = 0; p < T; ++p) {
        const int64_t t = reverse ? T - 1 - p : p;
        const S* kt = kp + (b * T + t) * G;
        S* ht = hp + (b * T + t) * H;
        if (mp == nullptr || mp[b * T + t] != S(0)) {
          for (int64_t j = j0; j < j1; ++j) {
            const Step<S> st = step_coefficients<S>(lstm, kt, H, j);
            state[j - j0] = st.a * state[j - j0] + st.s * st.g;  // h_t = a_t h_{t-1} + b_t
          }
        }  // a padded step keeps the state: a = 1, b = 0
        for (int64_t j = j0; j < j1; ++j) ht[j] = state[j - j0];
      }
    }
  });
}

at::Tensor min_forward(const at::Tensor& k_in, const at::Tensor& h0_in, const at::Tensor& mask_in, int64_t kind,
                       bool reverse) {
  const at::Tensor k = k_in.contiguous(), h0 = h0_in.contiguous(), mask = mask_in.contiguous();
  const Geometry geo = geometry(k, h0, kind);
  TORCH_CHECK(!mask.numel() || (mask.dim() == 2 && mask.size(0) == geo.B && mask.size(1) == geo.T),
              "rnnkit_min: mask must be (B, T) or empty");
  at::Tensor h = at::empty({geo.B, geo.T, geo.H}, k.options());
  AT_DISPATCH_FLOATING_TYPES(k.scalar_type(), "rnnkit_min_forward", [&] {
    forward_kernel<scalar_t>(k, h0, mask, kind == 1, reverse, h, geo);
  });
  return h;
}

template <typename S>
void backward_kernel(const at::Tensor& k, const at::Tensor& h, const at::Tensor& h0, const at::Tensor& mask,
                     const at::Tensor& dh, const at::Tensor& dh_n, bool lstm, bool reverse, int64_t tbptt,
                     at::Tensor& dk, at::Tensor& dh0, at::Tensor& norms, const Geometry& geo) {
  const S* kp = k.data_ptr<S>();
  const S* hp = h.data_ptr<S>();
  const S* h0p = h0.data_ptr<S>();
  const S* mp = mask.numel() ? mask.data_ptr<S>() : nullptr;
  const S* dhp = dh.numel() ? dh.data_ptr<S>() : nullptr;
  const S* dhnp = dh_n.numel() ? dh_n.data_ptr<S>() : nullptr;
  S* dkp = dk.data_ptr<S>();
  S* dh0p = dh0.data_ptr<S>();
  double* np = norms.numel() ? norms.data_ptr<double>() : nullptr;  // (B * chunks, T) partial sums
  const int64_t T = geo.T, H = geo.H, G = geo.G;
  at::parallel_for(0, geo.B * geo.chunks, 1, [&](int64_t begin, int64_t end) {
    S delta[kChunk];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / geo.chunks, j0 = (task % geo.chunks) * kChunk, j1 = std::min(H, j0 + kChunk);
      for (int64_t j = j0; j < j1; ++j) delta[j - j0] = dhnp ? dhnp[b * H + j] : S(0);
      for (int64_t p = T - 1; p >= 0; --p) {
        const int64_t t = reverse ? T - 1 - p : p;
        const S* kt = kp + (b * T + t) * G;
        S* dkt = dkp + (b * T + t) * G;
        // h_{t-1} in processing order: the previous state, or h0 at the first step.
        const S* hprev = p == 0 ? h0p + b * H : hp + (b * T + (reverse ? t + 1 : t - 1)) * H;
        if (dhp != nullptr) {
          const S* e = dhp + (b * T + t) * H;
          for (int64_t j = j0; j < j1; ++j) delta[j - j0] += e[j];
        }
        if (np != nullptr) {
          double sq = 0;
          for (int64_t j = j0; j < j1; ++j) sq += double(delta[j - j0]) * double(delta[j - j0]);
          np[task * T + t] = sq;
        }
        if (mp != nullptr && mp[b * T + t] == S(0)) {
          for (int64_t c = 0; c < (lstm ? 3 : 2); ++c)
            for (int64_t j = j0; j < j1; ++j) dkt[c * H + j] = S(0);
        } else {
          for (int64_t j = j0; j < j1; ++j) {
            const Step<S> st = step_coefficients<S>(lstm, kt, H, j);
            const S d = delta[j - j0];
            // da = d h_{t-1}, db = d; b = s g: du = s (1 - s) (db g - da), with s (1 - s) = s a.
            const S du = st.s * st.a * d * (st.g - hprev[j]);
            if (!lstm) {
              dkt[j] = du;
              dkt[H + j] = d * st.s * st.dg;
            } else {  // u = softplus(-k_f) - softplus(-k_i)
              dkt[j] = du * st.si_neg;
              dkt[H + j] = -du * st.sf_neg;
              dkt[2 * H + j] = d * st.s * st.dg;
            }
            delta[j - j0] = st.a * d;  // carried to h_{t-1}
          }
        }
        if (tbptt > 0 && p > 0 && p % tbptt == 0)  // the graph is cut between windows
          for (int64_t j = j0; j < j1; ++j) delta[j - j0] = S(0);
      }
      for (int64_t j = j0; j < j1; ++j) dh0p[b * H + j] = delta[j - j0];
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> min_backward(
    const at::Tensor& k_in, const at::Tensor& h_in, const at::Tensor& h0_in, const at::Tensor& mask_in,
    const at::Tensor& dh_in, const at::Tensor& dh_n_in, int64_t kind, bool reverse, int64_t tbptt, bool want_norms) {
  const at::Tensor k = k_in.contiguous(), h = h_in.contiguous(), h0 = h0_in.contiguous();
  const at::Tensor mask = mask_in.contiguous(), dh = dh_in.contiguous(), dh_n = dh_n_in.contiguous();
  const Geometry geo = geometry(k, h0, kind);
  TORCH_CHECK(h.sizes() == at::IntArrayRef({geo.B, geo.T, geo.H}), "rnnkit_min: h must be (B, T, H)");
  TORCH_CHECK(!dh.numel() || dh.sizes() == h.sizes(), "rnnkit_min: dh must be (B, T, H) or empty");
  TORCH_CHECK(!dh_n.numel() || dh_n.sizes() == h0.sizes(), "rnnkit_min: dh_n must be (B, H) or empty");
  at::Tensor dk = at::empty_like(k), dh0 = at::empty_like(h0);
  at::Tensor partial = want_norms ? at::zeros({geo.B * geo.chunks, geo.T}, k.options().dtype(at::kDouble))
                                  : at::empty({0}, k.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(k.scalar_type(), "rnnkit_min_backward", [&] {
    backward_kernel<scalar_t>(k, h, h0, mask, dh, dh_n, kind == 1, reverse, tbptt, dk, dh0, partial, geo);
  });
  // ||dL/dh_t|| over the batch, in data order.
  at::Tensor norms = want_norms ? partial.sum(0).sqrt().to(k.scalar_type()) : at::empty({0}, k.options());
  return {dk, dh0, norms};
}

}  // namespace

TORCH_LIBRARY(rnnkit_min, m) {
  m.def("forward(Tensor k, Tensor h0, Tensor mask, int kind, bool reverse) -> Tensor");
  m.def("backward(Tensor k, Tensor h, Tensor h0, Tensor mask, Tensor dh, Tensor dh_n, int kind, bool reverse, "
        "int tbptt, bool want_norms) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rnnkit_min, CPU, m) {
  m.impl("forward", &min_forward);
  m.impl("backward", &min_backward);
}
