// The engine's time loop in C++: the same math as rnnkit/ops/*.py and
// rnnkit/engine/recurrence.py, without Python's per-op overhead.
//
// Per step: one GEMM (two for GRU reset-before) through ATen, then one fused
// pass over the gate block written here. The backward walks t = T-1 .. 0
// carrying dh (and dc); weight gradients are one GEMM each after the loop.
//
// Shapes: xw (T, B, G), states (B, H), G = gates * H. Gate order as torch:
// LSTM i, f, g, o; GRU r, z, n. Cell kinds: 0 Elman, 1 LSTM, 2 GRU reset-after,
// 3 GRU reset-before. Activation codes: 0 tanh, 1 sigmoid, 2 relu,
// 3 hard_sigmoid, 4 linear.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "packed_gemm.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

using at::Tensor;

namespace {

// exp for float that gcc can vectorise (no libm call): Cephes-style range
// reduction and a degree-6 polynomial, accurate to ~2 ulp on [-87, 88].
inline float exp_f(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round to nearest by the 1.5 * 2^23 trick: vectorises where nearbyint may not.
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

template <typename T> inline T exp_(T x) { return std::exp(x); }
template <> inline float exp_<float>(float x) { return exp_f(x); }

template <typename T> inline T sigmoid_(T x) { return T(1) / (T(1) + exp_<T>(-x)); }

template <typename T> inline T tanh_(T x) {
  // tanh via one exp of -2|x|; the sign is restored after, so exp never overflows.
  T ax = x < T(0) ? -x : x;
  T e = exp_<T>(T(-2) * ax);
  T t = (T(1) - e) / (T(1) + e);
  return x < T(0) ? -t : t;
}
template <> inline double tanh_<double>(double x) { return std::tanh(x); }

template <typename T> inline T act_(int code, T x) {
  switch (code) {
    case 0: return tanh_<T>(x);
    case 1: return sigmoid_<T>(x);
    case 2: return x > T(0) ? x : T(0);
    case 3: { T y = x / T(6) + T(0.5); return y < T(0) ? T(0) : (y > T(1) ? T(1) : y); }
    default: return x;
  }
}

// f'(a) written in terms of y = f(a), as in rnnkit/ops/activations.py.
template <typename T> inline T dact_(int code, T y) {
  switch (code) {
    case 0: return T(1) - y * y;
    case 1: return y * (T(1) - y);
    case 2: return y > T(0) ? T(1) : T(0);
    case 3: return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    default: return T(1);
  }
}

// Apply f over n contiguous values; the common codes get a branch-free loop
// so the compiler vectorises it.
template <typename T> void act_inplace(int code, T* p, int64_t n) {
  if (code == 0) {
    for (int64_t i = 0; i < n; ++i) p[i] = tanh_<T>(p[i]);
  } else if (code == 1) {
    for (int64_t i = 0; i < n; ++i) p[i] = sigmoid_<T>(p[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) p[i] = act_<T>(code, p[i]);
  }
}

template <typename F> void for_rows(int64_t B, int64_t work_per_row, const F& f) {
  // Threads only pay off once a step has enough elementwise work.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row));
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

// A right-hand matrix (K x N) used at every step: packed once for the AVX-512
// kernel when the scalar type is float, otherwise multiplied through ATen.
template <typename T>
struct StepMatrix {
  Tensor w;  // (K, N), any strides
  rnnkit::PackedB packed;
  bool use_packed = false;

  explicit StepMatrix(const Tensor& w_kn) : w(w_kn) {
    if constexpr (std::is_same_v<T, float>) {
      if (RNNKIT_PACKED_GEMM) {
        Tensor c = w_kn.contiguous();
        rnnkit::pack_b(packed, c.data_ptr<float>(), c.size(0), c.size(1), c.size(1), 1);
        use_packed = true;
      }
    }
  }

  // out (M x N) = init + a @ w; init may be undefined (zero), (M x N), or (N,) broadcast over rows.
  void apply(const Tensor& a, Tensor& out, const Tensor& init) const {
    if constexpr (std::is_same_v<T, float>) {
      if (use_packed) {
        const float* ip = init.defined() ? init.data_ptr<float>() : nullptr;
        const int64_t ldi = init.defined() && init.dim() == 2 ? init.stride(0) : 0;
        rnnkit::gemm_packed(a.data_ptr<float>(), a.stride(0), packed, a.size(0), out.data_ptr<float>(),
                            out.stride(0), ip, ldi);
        return;
      }
    }
    if (init.defined()) at::addmm_out(out, init, a, w); else at::mm_out(out, a, w);
  }
};

template <typename T>
std::vector<Tensor> forward_impl(int64_t kind, int64_t act, int64_t ract, const Tensor& xw, const Tensor& h0,
                                 const Tensor& c0, const Tensor& w_hh, const Tensor& b_hh, const Tensor& keep_h,
                                 const Tensor& keep_c, const Tensor& out_mask, const Tensor& rdm, bool need_cache) {
  const int64_t T_ = xw.size(0), B = xw.size(1), G = xw.size(2), H = h0.size(1);
  const bool lstm = kind == 1;
  auto opts = xw.options();
  Tensor h_hist = at::empty({T_ + 1, B, H}, opts);
  h_hist[0].copy_(h0);
  Tensor c_hist = lstm ? at::empty({T_ + 1, B, H}, opts) : Tensor();
  if (lstm) c_hist[0].copy_(c0);
  Tensor gates = at::empty({T_, B, G}, opts);                      // activated gates per step
  Tensor extra = (kind != 0) ? at::empty({T_, B, H}, opts) : Tensor();  // tanh(c) | W_hn h + b_hn | r * h
  Tensor hin_all = rdm.defined() ? at::empty({T_, B, H}, opts) : Tensor();
  Tensor hw = (kind == 2) ? at::empty({B, G}, opts) : Tensor();
  // kind 3 multiplies by the r, z rows and the n rows separately; the others by all of W_hh.
  StepMatrix<T> w_t(kind == 3 ? w_hh.narrow(0, 0, 2 * H).t() : w_hh.t());
  StepMatrix<T> w_n_t(kind == 3 ? w_hh.narrow(0, 2 * H, H).t() : w_hh.narrow(0, 0, 1).t());
  const int64_t kh_w = keep_h.defined() ? keep_h.size(2) : 0, kc_w = keep_c.defined() ? keep_c.size(2) : 0;

  for (int64_t t = 0; t < T_; ++t) {
    Tensor h_prev = h_hist[t];
    Tensor hin = h_prev;
    if (rdm.defined()) {
      hin = hin_all[t];
      at::mul_out(hin, h_prev, rdm);
    }
    Tensor g_t = gates[t];
    Tensor x_t = xw[t];
    if (kind == 2) {
      w_t.apply(hin, hw, b_hh);
    } else if (kind == 3) {
      Tensor g_rz = g_t.narrow(1, 0, 2 * H);
      w_t.apply(hin, g_rz, x_t.narrow(1, 0, 2 * H));
    } else {
      w_t.apply(hin, g_t, x_t);
    }
    T* G_ = g_t.data_ptr<T>();
    const T* X_ = x_t.data_ptr<T>();
    const T* HP = h_prev.data_ptr<T>();
    const T* HIN = hin.data_ptr<T>();
    T* HN = h_hist[t + 1].data_ptr<T>();
    const T* CP = lstm ? c_hist[t].data_ptr<T>() : nullptr;
    T* CN = lstm ? c_hist[t + 1].data_ptr<T>() : nullptr;
    T* E = extra.defined() ? extra[t].data_ptr<T>() : nullptr;
    const T* HW = hw.defined() ? hw.data_ptr<T>() : nullptr;
    const T* KH = keep_h.defined() ? keep_h[t].data_ptr<T>() : nullptr;
    const T* KC = keep_c.defined() ? keep_c[t].data_ptr<T>() : nullptr;

    if (kind == 3) {
      // r and z first: n needs r * h before its own GEMM.
      for_rows(B, 2 * H, [&](int64_t b) {
        T* g = G_ + b * G;
        if (ract == 1) { for (int64_t j = 0; j < 2 * H; ++j) g[j] = sigmoid_<T>(g[j]); }
        else act_inplace<T>(ract, g, 2 * H);
        for (int64_t j = 0; j < H; ++j) E[b * H + j] = g[j] * HIN[b * H + j];
      });
      Tensor g_n = g_t.narrow(1, 2 * H, H);
      w_n_t.apply(extra[t], g_n, x_t.narrow(1, 2 * H, H));
    }

    for_rows(B, G, [&](int64_t b) {
      T* g = G_ + b * G;
      const T* hp = HP + b * H;
      T* hn = HN + b * H;
      const T* kh = KH ? KH + b * kh_w : nullptr;
      if (kind == 0) {
        act_inplace<T>(act, g, H);
        for (int64_t j = 0; j < H; ++j) hn[j] = g[j];
      } else if (kind == 1) {
        const T* cp = CP + b * H;
        T* cn = CN + b * H;
        T* e = E + b * H;
        const T* kc = KC ? KC + b * kc_w : nullptr;
        if (ract == 1) { for (int64_t j = 0; j < 2 * H; ++j) g[j] = sigmoid_<T>(g[j]); for (int64_t j = 3 * H; j < 4 * H; ++j) g[j] = sigmoid_<T>(g[j]); }
        else { act_inplace<T>(ract, g, 2 * H); act_inplace<T>(ract, g + 3 * H, H); }
        act_inplace<T>(act, g + 2 * H, H);
        for (int64_t j = 0; j < H; ++j) cn[j] = g[H + j] * cp[j] + g[j] * g[2 * H + j];
        for (int64_t j = 0; j < H; ++j) e[j] = cn[j];
        act_inplace<T>(act, e, H);
        for (int64_t j = 0; j < H; ++j) hn[j] = g[3 * H + j] * e[j];
        if (kc) for (int64_t j = 0; j < H; ++j) { T k = kc[kc_w == 1 ? 0 : j]; cn[j] = cn[j] + k * (cp[j] - cn[j]); }
      } else if (kind == 2) {
        const T* x = X_ + b * G;
        const T* w = HW + b * G;
        T* e = E + b * H;
        for (int64_t j = 0; j < 2 * H; ++j) g[j] = x[j] + w[j];
        if (ract == 1) { for (int64_t j = 0; j < 2 * H; ++j) g[j] = sigmoid_<T>(g[j]); }
        else act_inplace<T>(ract, g, 2 * H);
        for (int64_t j = 0; j < H; ++j) { e[j] = w[2 * H + j]; g[2 * H + j] = x[2 * H + j] + g[j] * e[j]; }
        act_inplace<T>(act, g + 2 * H, H);
        for (int64_t j = 0; j < H; ++j) { T n = g[2 * H + j]; hn[j] = n + g[H + j] * (hp[j] - n); }
      } else {
        act_inplace<T>(act, g + 2 * H, H);
        for (int64_t j = 0; j < H; ++j) { T n = g[2 * H + j]; hn[j] = n + g[H + j] * (hp[j] - n); }
      }
      if (kh) for (int64_t j = 0; j < H; ++j) { T k = kh[kh_w == 1 ? 0 : j]; hn[j] = hn[j] + k * (hp[j] - hn[j]); }
    });
  }
  Tensor out = h_hist.narrow(0, 1, T_);
  out = out_mask.defined() ? out * out_mask : out.clone();
  if (!need_cache) {
    std::vector<Tensor> res{out, h_hist[T_].clone()};
    if (lstm) res.push_back(c_hist[T_].clone());
    return res;
  }
  return {out, h_hist, lstm ? c_hist : Tensor(), gates, extra.defined() ? extra : Tensor(),
          hin_all.defined() ? hin_all : Tensor()};
}

template <typename T>
std::vector<Tensor> backward_impl(int64_t kind, int64_t act, int64_t ract, Tensor d_out, const Tensor& d_hT,
                                  const Tensor& d_cT, const Tensor& h_hist, const Tensor& c_hist,
                                  const Tensor& gates, const Tensor& extra, const Tensor& hin_all,
                                  const Tensor& w_hh, bool has_b_hh, const Tensor& keep_h, const Tensor& keep_c,
                                  const Tensor& out_mask, const Tensor& rdm, int64_t tbptt, bool want_norms) {
  const int64_t T_ = gates.size(0), B = gates.size(1), G = gates.size(2), H = h_hist.size(2);
  const bool lstm = kind == 1;
  auto opts = gates.options();
  if (out_mask.defined()) d_out = d_out * out_mask;
  d_out = d_out.contiguous();
  Tensor dxw = at::empty({T_, B, G}, opts);
  Tensor dhw_all = (kind == 2) ? at::empty({T_, B, G}, opts) : Tensor();
  Tensor dh = d_hT.clone();          // carried gradient of h_t
  Tensor dc = lstm ? d_cT.clone() : Tensor();
  Tensor dhin = at::empty({B, H}, opts);
  Tensor drh = (kind == 3) ? at::empty({B, H}, opts) : Tensor();
  Tensor norms = want_norms ? at::zeros({T_, lstm ? 2 : 1}, opts) : Tensor();
  const int64_t kh_w = keep_h.defined() ? keep_h.size(2) : 0, kc_w = keep_c.defined() ? keep_c.size(2) : 0;
  StepMatrix<T> w_back(kind == 3 ? w_hh.narrow(0, 0, 2 * H) : w_hh);
  StepMatrix<T> w_n(kind == 3 ? w_hh.narrow(0, 2 * H, H) : w_hh.narrow(0, 0, 1));
  const Tensor none;
  T* DH = dh.data_ptr<T>();
  T* DC = lstm ? dc.data_ptr<T>() : nullptr;
  const T* RDM = rdm.defined() ? rdm.data_ptr<T>() : nullptr;

  for (int64_t t = T_ - 1; t >= 0; --t) {
    const T* DO = d_out[t].data_ptr<T>();
    const T* g = gates[t].data_ptr<T>();
    const T* HP = h_hist[t].data_ptr<T>();
    const T* CP = lstm ? c_hist[t].data_ptr<T>() : nullptr;
    const T* E = extra.defined() ? extra[t].data_ptr<T>() : nullptr;
    const T* HIN = hin_all.defined() ? hin_all[t].data_ptr<T>() : HP;
    const T* KH = keep_h.defined() ? keep_h[t].data_ptr<T>() : nullptr;
    const T* KC = keep_c.defined() ? keep_c[t].data_ptr<T>() : nullptr;
    T* DX = dxw[t].data_ptr<T>();
    T* DHW = dhw_all.defined() ? dhw_all[t].data_ptr<T>() : nullptr;

    // Total gradient of state_t: what later steps sent back plus this step's output.
    for (int64_t i = 0; i < B * H; ++i) DH[i] += DO[i];
    if (want_norms) {
      norms[t][0] = dh.norm();
      if (lstm) norms[t][1] = dc.norm();
    }
    // Split by keep: k * d goes straight to state_{t-1}; (1 - k) * d enters the cell.
    // After this loop DH / DC hold the direct part, and the cell's input gradient is formed in place.
    for_rows(B, G, [&](int64_t b) {
      T* dh_b = DH + b * H;
      const T* gb = g + b * G;
      const T* hp = HP + b * H;
      T* dx = DX + b * G;
      const T* kh = KH ? KH + b * kh_w : nullptr;
      for (int64_t j = 0; j < H; ++j) {
        T d = dh_b[j];
        T k = kh ? kh[kh_w == 1 ? 0 : j] : T(0);
        T dnew = d * (T(1) - k);
        dh_b[j] = d * k;  // direct part
        if (kind == 0) {
          dx[j] = dnew * dact_<T>(act, gb[j]);
        } else if (kind == 1) {
          T* dc_b = DC + b * H;
          const T* kc = KC ? KC + b * kc_w : nullptr;
          T kcj = kc ? kc[kc_w == 1 ? 0 : j] : T(0);
          T i_ = gb[j], f_ = gb[H + j], g_ = gb[2 * H + j], o_ = gb[3 * H + j];
          T tc = E[b * H + j];
          T dcn = dc_b[j] * (T(1) - kcj);
          T dc_direct = dc_b[j] * kcj;
          T do_ = dnew * tc * dact_<T>(ract, o_);
          T dct = dcn + dnew * o_ * dact_<T>(act, tc);
          dx[j] = dct * g_ * dact_<T>(ract, i_);
          dx[H + j] = dct * CP[b * H + j] * dact_<T>(ract, f_);
          dx[2 * H + j] = dct * i_ * dact_<T>(act, g_);
          dx[3 * H + j] = do_;
          dc_b[j] = dc_direct + dct * f_;
        } else {
          T r_ = gb[j], z_ = gb[H + j], n_ = gb[2 * H + j];
          T dn = dnew * (T(1) - z_) * dact_<T>(act, n_);
          T dz = dnew * (hp[j] - n_) * dact_<T>(ract, z_);
          dh_b[j] += dnew * z_;
          dx[H + j] = dz;
          dx[2 * H + j] = dn;
          if (kind == 2) {
            T dr = dn * E[b * H + j] * dact_<T>(ract, r_);
            dx[j] = dr;
            T* dhw = DHW + b * G;
            dhw[j] = dr;
            dhw[H + j] = dz;
            dhw[2 * H + j] = dn * r_;
          }
        }
      }
    });
    if (kind == 3) {
      // r's gradient needs dn @ W_hn first.
      w_n.apply(dxw[t].narrow(1, 2 * H, H), drh, none);
      const T* DRH = drh.data_ptr<T>();
      for_rows(B, H, [&](int64_t b) {
        T* dx = DX + b * G;
        const T* gb = g + b * G;
        for (int64_t j = 0; j < H; ++j) dx[j] = DRH[b * H + j] * HIN[b * H + j] * dact_<T>(ract, gb[j]);
      });
      w_back.apply(dxw[t].narrow(1, 0, 2 * H), dhin, none);
      dhin.addcmul_(drh, gates[t].narrow(1, 0, H));
    } else if (kind == 2) {
      w_back.apply(dhw_all[t], dhin, none);
    } else {
      w_back.apply(dxw[t], dhin, none);
    }
    const T* DHIN = dhin.data_ptr<T>();
    if (RDM) { for (int64_t i = 0; i < B * H; ++i) DH[i] += DHIN[i] * RDM[i]; }
    else { for (int64_t i = 0; i < B * H; ++i) DH[i] += DHIN[i]; }
    if (tbptt > 0 && t % tbptt == 0 && t > 0) {
      // The graph is cut between windows: state_{t-1} enters window t/k as a constant.
      dh.zero_();
      if (lstm) dc.zero_();
    }
  }
  Tensor hin2 = (hin_all.defined() ? hin_all : h_hist.narrow(0, 0, T_)).reshape({T_ * B, H});
  Tensor dW, db;
  if (kind == 2) {
    Tensor d2 = dhw_all.reshape({T_ * B, G});
    dW = at::mm(d2.t(), hin2);
    if (has_b_hh) db = d2.sum(0);
  } else if (kind == 3) {
    Tensor d2 = dxw.reshape({T_ * B, G});
    dW = at::cat({at::mm(d2.narrow(1, 0, 2 * H).t(), hin2),
                  at::mm(d2.narrow(1, 2 * H, H).t(), extra.reshape({T_ * B, H}))}, 0);
  } else {
    dW = at::mm(dxw.reshape({T_ * B, G}).t(), hin2);
  }
  return {dxw, dh, lstm ? dc : Tensor(), dW, db, norms};
}

Tensor opt_or_undef(const c10::optional<Tensor>& t) { return t.has_value() ? *t : Tensor(); }

std::vector<Tensor> forward(int64_t kind, int64_t act, int64_t ract, const Tensor& xw, const Tensor& h0,
                            const c10::optional<Tensor>& c0, const Tensor& w_hh, const c10::optional<Tensor>& b_hh,
                            const c10::optional<Tensor>& keep_h, const c10::optional<Tensor>& keep_c,
                            const c10::optional<Tensor>& out_mask, const c10::optional<Tensor>& rdm,
                            bool need_cache) {
  TORCH_CHECK(xw.is_contiguous() && h0.is_contiguous(), "rnnkit kernel: inputs must be contiguous");
  return AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnkit_forward", [&] {
    return forward_impl<scalar_t>(kind, act, ract, xw, h0, opt_or_undef(c0), w_hh, opt_or_undef(b_hh),
                                  opt_or_undef(keep_h), opt_or_undef(keep_c), opt_or_undef(out_mask),
                                  opt_or_undef(rdm), need_cache);
  });
}

std::vector<Tensor> backward(int64_t kind, int64_t act, int64_t ract, const Tensor& d_out, const Tensor& d_hT,
                             const c10::optional<Tensor>& d_cT, const Tensor& h_hist,
                             const c10::optional<Tensor>& c_hist, const Tensor& gates,
                             const c10::optional<Tensor>& extra, const c10::optional<Tensor>& hin_all,
                             const Tensor& w_hh, bool has_b_hh, const c10::optional<Tensor>& keep_h,
                             const c10::optional<Tensor>& keep_c, const c10::optional<Tensor>& out_mask,
                             const c10::optional<Tensor>& rdm, int64_t tbptt, bool want_norms) {
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnkit_backward", [&] {
    return backward_impl<scalar_t>(kind, act, ract, d_out, d_hT, opt_or_undef(d_cT), h_hist, opt_or_undef(c_hist),
                                   gates, opt_or_undef(extra), opt_or_undef(hin_all), w_hh, has_b_hh,
                                   opt_or_undef(keep_h), opt_or_undef(keep_c), opt_or_undef(out_mask),
                                   opt_or_undef(rdm), tbptt, want_norms);
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "rnnkit recurrence forward");
  m.def("backward", &backward, "rnnkit recurrence backward (BPTT)");
}
