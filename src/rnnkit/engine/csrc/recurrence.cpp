// The engine's time loop in C++: the same math as rnnkit/ops/*.py and
// rnnkit/engine/recurrence.py, without Python's per-op overhead.
//
// Per step: the step's input projection and one GEMM (two for GRU reset-before) against
// the recurrent weight, both packed once per sequence (packed_gemm.h), then one pass over the
// gate block. The backward walks t = T-1 .. 0 carrying dh (and dc), computes each step's input
// gradient, and sums the weight gradients as it goes, a chunk of steps at a time (RowChunk).
// With several threads each takes a slice of the batch through the whole sequence
// (batch_threads).
//
// Shapes: x (T, B, F), states (B, H), G = gates * H. Gate order as torch:
// LSTM i, f, g, o; GRU r, z, n. Cell kinds: 0 Elman, 1 LSTM, 2 GRU reset-after,
// 3 GRU reset-before. Activation codes: 0 tanh, 1 sigmoid, 2 relu,
// 3 hard_sigmoid, 4 linear.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "packed_gemm.h"
#include "pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

using at::Tensor;

namespace rnnkit_detail {
// Keeps the first exception thrown on any thread of a parallel region, to rethrow after it.
class FirstError {
 public:
  template <typename F> void run(const F& f) {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mu_;
  std::exception_ptr error_;
};
}  // namespace rnnkit_detail

namespace {

// Forced inline: a loop calling several of these outgrew gcc's inlining budget, and the
// leftover calls kept it scalar.
#define RNNKIT_INLINE inline __attribute__((always_inline))

// exp for float that gcc can vectorise (no libm call): Cephes-style range
// reduction and a degree-6 polynomial, accurate to ~2 ulp on [-87, 88].
RNNKIT_INLINE float exp_f(float x) {
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

template <typename T> RNNKIT_INLINE T exp_(T x) { return std::exp(x); }
template <> RNNKIT_INLINE float exp_<float>(float x) { return exp_f(x); }

template <typename T> RNNKIT_INLINE T sigmoid_(T x) { return T(1) / (T(1) + exp_<T>(-x)); }

template <typename T> RNNKIT_INLINE T tanh_(T x) {
  // tanh via one exp of -2|x|; the sign is restored after, so exp never overflows.
  T ax = x < T(0) ? -x : x;
  T e = exp_<T>(T(-2) * ax);
  T t = (T(1) - e) / (T(1) + e);
  return x < T(0) ? -t : t;
}
template <> RNNKIT_INLINE double tanh_<double>(double x) { return std::tanh(x); }

template <typename T> inline T act_(int code, T x) {
  switch (code) {
    case 0: return tanh_<T>(x);
    case 1: return sigmoid_<T>(x);
    case 2: return x > T(0) ? x : T(0);
    case 3: { T y = x / T(6) + T(0.5); return y < T(0) ? T(0) : (y > T(1) ? T(1) : y); }
    default: return x;
  }
}

// Apply f over n contiguous values; the switch sits outside the loops so each vectorises
// (a switch inside the loop kept relu, an IRNN's activation, scalar).
template <typename T> void act_inplace(int code, T* p, int64_t n) {
  switch (code) {
    case 0: for (int64_t i = 0; i < n; ++i) p[i] = tanh_<T>(p[i]); break;
    case 1: for (int64_t i = 0; i < n; ++i) p[i] = sigmoid_<T>(p[i]); break;
    case 2: for (int64_t i = 0; i < n; ++i) p[i] = act_<T>(2, p[i]); break;
    case 3: for (int64_t i = 0; i < n; ++i) p[i] = act_<T>(3, p[i]); break;
    default: break;  // linear
  }
}

// out[i] = x[i] * f'(a_i), from y = f(a); the switch sits outside the loops so each vectorises.
template <typename T> void mul_dact(int code, const T* y, const T* x, T* out, int64_t n) {
  switch (code) {
    case 0: for (int64_t i = 0; i < n; ++i) out[i] = x[i] * (T(1) - y[i] * y[i]); break;
    case 1: for (int64_t i = 0; i < n; ++i) out[i] = x[i] * (y[i] * (T(1) - y[i])); break;
    case 2: for (int64_t i = 0; i < n; ++i) out[i] = y[i] > T(0) ? x[i] : T(0); break;
    case 3: for (int64_t i = 0; i < n; ++i) out[i] = (y[i] > T(0) && y[i] < T(1)) ? x[i] / T(6) : T(0); break;
    default: for (int64_t i = 0; i < n; ++i) out[i] = x[i]; break;
  }
}

// torch.lerp(new, old, k), evaluated the way torch does so k = 1 returns old exactly.
template <typename T> inline T keep_mix(T nw, T old, T k) {
  return k < T(0.5) ? nw + k * (old - nw) : old - (old - nw) * (T(1) - k);
}

// Mix a row of the new state with the old one by keep (zoneout / mask); keep has width kw (1 or n).
template <typename T> void mix_row(T* nw, const T* old, const T* keep, int64_t kw, int64_t n) {
  if (kw == 1) {
    const T k = keep[0];
    for (int64_t j = 0; j < n; ++j) nw[j] = keep_mix(nw[j], old[j], k);
  } else {
    for (int64_t j = 0; j < n; ++j) nw[j] = keep_mix(nw[j], old[j], keep[j]);
  }
}

// dst[j] += src[j * sj] * m for j < n; sj is 1 or 0 (a broadcast row).
template <typename T> void add_scaled(T* dst, const T* src, int64_t sj, T m, int64_t n) {
  if (sj == 1) {
    for (int64_t j = 0; j < n; ++j) dst[j] += src[j] * m;
  } else {
    const T v = src[0] * m;
    for (int64_t j = 0; j < n; ++j) dst[j] += v;
  }
}

// Rows [b0, b1): split across threads with parallel_for (serial inside a parallel region);
// threads only pay off once a step has enough elementwise work.
template <typename F> void for_row_range(int64_t b0, int64_t b1, int64_t work_per_row, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row));
  at::parallel_for(b0, b1, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t b = r0; b < r1; ++b) f(b);
  });
}

// How a float loop multiplies its GEMM operands: as floats, or (bf16 autocast: the engine then
// passes x as bfloat16) with both operands rounded to bf16 and float sums (packed_gemm.h):
//   kAmx           AMX tiles, where the CPU has them: the default there;
//   kBf16Emulated  the float kernel on the bf16-rounded operands: the default elsewhere;
//   kBf16          AVX512-BF16's vdpbf16ps, only on request (RNNKIT_BF16_KERNEL=avx512_bf16):
//                  it runs no more products per cycle than float FMAs (one port against two),
//                  and in our runs it was slower than kBf16Emulated (benchmarks/bf16.py --kernels).
// RNNKIT_BF16_KERNEL=emulate forces kBf16Emulated; tests hold the three to each other.
enum GemmMode : int { kFloat = 0, kBf16 = 1, kBf16Emulated = 2, kAmx = 3 };

inline int bf16_mode() {
  const char* env = std::getenv("RNNKIT_BF16_KERNEL");
  const bool emulate = env != nullptr && std::strcmp(env, "emulate") == 0;
  if (env != nullptr && std::strcmp(env, "avx512_bf16") == 0 && rnnkit::cpu_has_avx512_bf16()) return kBf16;
  return !emulate && rnnkit::cpu_has_amx_bf16() ? kAmx : kBf16Emulated;
}

// The caller's slot among `threads` batch-split threads (0 when the loop runs on one).
inline int thread_slot(int threads) {
#if defined(_OPENMP)
  return threads > 1 ? omp_get_thread_num() : 0;
#else
  (void)threads;
  return 0;
#endif
}

// A right-hand matrix (K x N) used at every step: packed once for the AVX-512
// kernel when the scalar type is float, otherwise multiplied through ATen.
// In a bf16 mode (float only) the left-hand rows are rounded to bf16 on the way in, into one
// scratch slab per batch-split thread allocated here, so nothing in a loop allocates.
template <typename T>
struct StepMatrix {
  Tensor w;  // (K, N), any strides; rounded to bf16 values when emulating
  rnnkit::PackedB packed;
  rnnkit::PackedB16 packed16;
  bool use_packed = false;
  int mode = kFloat, threads = 1;
  // K2p: a bf16 row's length, K rounded up to even (AMX: to 32); rows16: the scratch's rows
  // (AMX: a multiple of 32, zero past the rows in use).
  int64_t K = 0, K2p = 0, rows16 = 0;
  mutable std::vector<std::vector<uint16_t>> scratch16;
  mutable std::vector<std::vector<T>> scratch;

  explicit StepMatrix(const Tensor& w_kn, int gemm = kFloat, int64_t max_rows = 0, int n_threads = 1)
      : w(w_kn), threads(n_threads), K(w_kn.size(0)) {
    if constexpr (std::is_same_v<T, float>) {
      mode = gemm;
      const bool amx = mode == kAmx;
      K2p = amx ? (K + 31) / 32 * 32 : (K + 1) / 2 * 2;
      rows16 = amx ? (max_rows + 31) / 32 * 32 : max_rows;
      if (mode == kBf16Emulated) w = w_kn.to(at::kBFloat16).to(at::kFloat);
      if (mode == kBf16 || amx) {
        Tensor c = w.contiguous();
        rnnkit::pack_b_bf16(packed16, c.data_ptr<float>(), c.size(0), c.size(1), c.size(1), 1, amx ? 16 : 1);
        scratch16.assign(threads, std::vector<uint16_t>(static_cast<size_t>(rows16 * K2p)));
      } else if (RNNKIT_PACKED_GEMM) {
        Tensor c = w.contiguous();
        rnnkit::pack_b(packed, c.data_ptr<float>(), c.size(0), c.size(1), c.size(1), 1);
        use_packed = true;
      }
      if (mode == kBf16Emulated) scratch.assign(threads, std::vector<T>(static_cast<size_t>(max_rows * K)));
    }
  }

  // out (M x N, row stride ldc) = init + a (M x K, row stride lda) @ w.
  // init: null (zero), or rows of stride ldi (ldi = 0 broadcasts one row, e.g. a bias).
  void apply(const T* a, int64_t lda, int64_t M, T* out, int64_t ldc, const T* init, int64_t ldi) const {
    if constexpr (std::is_same_v<T, float>) {
      if (mode == kBf16 || mode == kAmx) {
        uint16_t* s = scratch16[thread_slot(threads)].data();
        for (int64_t r = 0; r < M; ++r)  // the columns past K stay zero from the allocation
          for (int64_t k = 0; k < K; ++k) s[r * K2p + k] = rnnkit::to_bf16(a[r * lda + k]);
        multiply16(s, M, out, ldc, init, ldi);
        return;
      }
      if (mode == kBf16Emulated) {
        float* s = scratch[thread_slot(threads)].data();
        for (int64_t r = 0; r < M; ++r)
          for (int64_t k = 0; k < K; ++k) s[r * K + k] = rnnkit::round_bf16(a[r * lda + k]);
        a = s;
        lda = K;
      }
    }
    apply_exact(a, lda, M, out, ldc, init, ldi);
  }

  // As apply, from rows already in bf16 (the input x under autocast); float loops only.
  void apply_bf16(const uint16_t* a, int64_t lda, int64_t M, T* out, int64_t ldc, const T* init, int64_t ldi) const {
    if constexpr (std::is_same_v<T, float>) {
      if (mode == kBf16 && K2p == K) {  // read in place: every pair lies within its row
        rnnkit::gemm_packed_bf16(a, lda, packed16, M, out, ldc, init, ldi);
        return;
      }
      if (mode == kBf16 || mode == kAmx) {
        uint16_t* s = scratch16[thread_slot(threads)].data();
        for (int64_t r = 0; r < M; ++r) std::memcpy(s + r * K2p, a + r * lda, K * sizeof(uint16_t));
        multiply16(s, M, out, ldc, init, ldi);
        return;
      }
      float* s = scratch[thread_slot(threads)].data();
      for (int64_t r = 0; r < M; ++r)
        for (int64_t k = 0; k < K; ++k) s[r * K + k] = rnnkit::from_bf16(a[r * lda + k]);
      apply_exact(s, K, M, out, ldc, init, ldi);
    } else {
      (void)a; (void)lda; (void)M; (void)out; (void)ldc; (void)init; (void)ldi;
    }
  }

 private:
  // out = init + s @ w from the bf16 scratch rows s (M of them, K2p values each).
  void multiply16(uint16_t* s, int64_t M, T* out, int64_t ldc, const T* init, int64_t ldi) const {
    if constexpr (std::is_same_v<T, float>) {
      if (mode == kAmx) {
        std::fill(s + M * K2p, s + rows16 * K2p, uint16_t(0));  // whole 32-row blocks, zero past M
        rnnkit::gemm_packed_amx(s, K2p, M, (M + 31) / 32 * 32, packed16, out, ldc, init, ldi);
      } else {
        rnnkit::gemm_packed_bf16(s, K2p, packed16, M, out, ldc, init, ldi);
      }
    } else {
      (void)s; (void)M; (void)out; (void)ldc; (void)init; (void)ldi;
    }
  }

  void apply_exact(const T* a, int64_t lda, int64_t M, T* out, int64_t ldc, const T* init, int64_t ldi) const {
    if constexpr (std::is_same_v<T, float>) {
      if (use_packed) {
        rnnkit::gemm_packed(a, lda, packed, M, out, ldc, init, ldi);
        return;
      }
    }
    const int64_t N = w.size(1);
    auto opts = w.options();
    Tensor A = at::from_blob(const_cast<T*>(a), {M, K}, {lda, 1}, opts);
    Tensor C = at::from_blob(out, {M, N}, {ldc, 1}, opts);
    if (init == out && ldi == ldc) {
      C.addmm_(A, w);  // accumulate in place (the projection already sits in out)
    } else if (init) {
      Tensor I = at::from_blob(const_cast<T*>(init), {M, N}, {ldi, 1}, opts);
      at::addmm_out(C, I, A, w);
    } else {
      at::mm_out(C, A, w);
    }
  }
};

// A zeroed buffer of n values starting on a cache line.
template <typename T> struct AlignedBuffer {
  std::vector<T> storage;
  T* data = nullptr;
  void assign(int64_t n) {
    storage.assign(static_cast<size_t>(n + 64 / sizeof(T)), T(0));
    const auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
    data = storage.data() + ((64 - addr % 64) % 64) / sizeof(T);
  }
};

// The right-hand rows of a weight gradient (dW = sum over steps and batch rows of
// d_row^T v_row: v is a step's input, h_{t-1} or r * h_{t-1}), gathered a step at a time inside
// the backward loop and multiplied once the chunk is full (outer_sum). For the AVX-512 kernel
// the rows are stored as zero-padded 32-column panels; otherwise as plain rows for ATen.
// In the bf16 modes (float; AVX512-BF16 or AMX) the panels hold rows in pairs as bf16, row 2k's
// value beside row 2k+1's (packed_gemm.h); emulating, the rows are stored rounded to bf16 values.
template <typename T> struct RowChunk {
  int64_t w = 0, cap = 0, n = 0, P = 0;  // width, capacity in rows, rows held, panel width
  int mode = kFloat;
  AlignedBuffer<T> buf;
  AlignedBuffer<uint16_t> buf16;  // panels of pair_rows() pair rows of 64 bf16
  bool pairs() const { return mode == kBf16 || mode == kAmx; }
  int64_t align() const { return mode == kAmx ? 16 : 1; }  // AMX multiplies 16 pair rows at a time
  int64_t pair_rows(int64_t rows) const { return ((rows + 1) / 2 + align() - 1) / align() * align(); }

  void init(int64_t width, int64_t capacity, int gemm = kFloat) {
    w = width;
    cap = capacity;
    mode = std::is_same_v<T, float> ? gemm : kFloat;
    if (pairs()) {
      P = rnnkit::kPanel;
      buf16.assign(panels() * pair_stride());
      return;
    }
    P = RNNKIT_PACKED_GEMM && std::is_same_v<T, float> ? rnnkit::kPanel : width;
    buf.assign(panels() * cap * P);
  }
  bool active() const { return w > 0; }
  int64_t panels() const { return (w + P - 1) / P; }
  int64_t pair_stride() const { return pair_rows(cap) * 2 * rnnkit::kPanel; }  // one panel, in bf16 values
  void push(const T* row) {
    if (pairs()) {
      uint16_t* dst = buf16.data + (n / 2) * 2 * rnnkit::kPanel + (n & 1);
      for (int64_t j = 0; j < w; ++j)
        dst[(j / rnnkit::kPanel) * pair_stride() + 2 * (j % rnnkit::kPanel)] = rnnkit::to_bf16(static_cast<float>(row[j]));
      ++n;
      return;
    }
    T* dst = buf.data + n * P;
    const int64_t full = w / P, stride = cap * P;
    if (mode == kBf16Emulated) {
      for (int64_t j = 0; j < w; ++j) dst[(j / P) * stride + j % P] = static_cast<T>(rnnkit::round_bf16(static_cast<float>(row[j])));
    } else if (P == rnnkit::kPanel) {  // a fixed-size copy compiles to two vector moves, not a memcpy call
      for (int64_t p = 0; p < full; ++p) std::memcpy(dst + p * stride, row + p * rnnkit::kPanel, rnnkit::kPanel * sizeof(T));
      if (full * P < w) std::memcpy(dst + full * stride, row + full * P, (w - full * P) * sizeof(T));
    } else {
      for (int64_t p = 0; p < full; ++p) std::memcpy(dst + p * stride, row + p * P, P * sizeof(T));
      if (full * P < w) std::memcpy(dst + full * stride, row + full * P, (w - full * P) * sizeof(T));
    }
    ++n;
  }
  // As push, from a bf16 row (the input x under autocast).
  void push_bf16(const uint16_t* row) {
    if (pairs()) {
      uint16_t* dst = buf16.data + (n / 2) * 2 * rnnkit::kPanel + (n & 1);
      for (int64_t j = 0; j < w; ++j) dst[(j / rnnkit::kPanel) * pair_stride() + 2 * (j % rnnkit::kPanel)] = row[j];
      ++n;
      return;
    }
    T* dst = buf.data + n * P;
    const int64_t stride = cap * P;
    for (int64_t j = 0; j < w; ++j) dst[(j / P) * stride + j % P] = static_cast<T>(rnnkit::from_bf16(row[j]));
    ++n;
  }
  // Before a multiply: an odd last row gets a zero partner, and (AMX) the pair rows up to the next
  // multiple of 16 are zero (the buffer holds older rows).
  void close_pairs() {
    if (!pairs()) return;
    const int64_t row = 2 * rnnkit::kPanel;
    for (int64_t p = 0; p < panels(); ++p) {
      uint16_t* panel = buf16.data + p * pair_stride();
      if (n % 2) for (int64_t j = 0; j < rnnkit::kPanel; ++j) panel[(n / 2) * row + 2 * j + 1] = 0;
      std::fill(panel + (n + 1) / 2 * row, panel + pair_rows(n) * row, uint16_t(0));
    }
  }
};

// C (M x v.w, row stride ldc) += sum over the chunk's rows k of a_k^T v_k, where a_k = A + k * lda
// holds M values and stays readable up to the next multiple of 8 (the kernel reads whole tiles).
// In the bf16 mode A16 holds the same rows in pairs, (a_2k[m], a_2k+1[m]) at A16[k * lda16 + m].
// With AMX, A16 holds the rows transposed: pairs (a_2k[m], a_2k+1[m]) at A16[m * lda16 + k].
template <typename T> void outer_sum(const T* A, int64_t lda, const uint32_t* A16, int64_t lda16, int64_t M,
                                     const RowChunk<T>& v, T* C, int64_t ldc) {
  if (v.n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (v.mode == kAmx) {
      rnnkit::outer_accumulate_amx(reinterpret_cast<const uint16_t*>(A16), 2 * lda16, M, v.buf16.data, v.pair_stride(),
                                   v.w, v.pair_rows(v.n), C, ldc);
      return;
    }
    if (v.mode == kBf16) {
      rnnkit::outer_accumulate_bf16(A16, lda16, M, v.buf16.data, v.pair_stride(), v.w, (v.n + 1) / 2, C, ldc);
      return;
    }
    if (RNNKIT_PACKED_GEMM) {
      rnnkit::outer_accumulate(A, lda, M, v.buf.data, v.cap * v.P, v.w, v.n, C, ldc);
      return;
    }
  }
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor a = at::from_blob(const_cast<T*>(A), {v.n, M}, {lda, 1}, opts);
  Tensor vm = at::from_blob(v.buf.data, {v.n, v.w}, opts);
  at::from_blob(C, {M, v.w}, {ldc, 1}, opts).addmm_(a.t(), vm);
}

// The n rows of a chunk ring (row stride ldx, G values each) as bf16 pairs for outer_sum:
// out[k * ldo + m] = (row 2k's m-th value, row 2k+1's), a missing last partner zero.
// transposed (AMX): out[m * ldo + k] instead, zero for k from (n + 1) / 2 up to k2 pairs.
// The transpose goes through a 16 x 16 tile: written straight, each value was a 4-byte store to
// its own cache line (G of them live at once, more than L1 holds), about a tenth of a bf16 LSTM
// training step at config L; through the tile, the reads and the stores both run along rows.
inline void ring_to_pairs_t(const float* ring, int64_t ldx, int64_t n, int64_t G, uint32_t* out, int64_t ldo,
                            int64_t k2) {
  constexpr int64_t kTile = 16;
  alignas(64) uint32_t tile[kTile][kTile];  // [pair k][column m] of one block
  const int64_t pairs = (n + 1) / 2;
  for (int64_t k0 = 0; k0 < pairs; k0 += kTile) {
    const int64_t kn = std::min(kTile, pairs - k0);
    for (int64_t m0 = 0; m0 < G; m0 += kTile) {
      const int64_t mn = std::min(kTile, G - m0);
      for (int64_t kk = 0; kk < kn; ++kk) {
        const int64_t k = k0 + kk;
        const float* lo = ring + 2 * k * ldx + m0;
        const float* hi = lo + ldx;
        uint32_t* t = tile[kk];
        if (2 * k + 1 < n) {
          for (int64_t mm = 0; mm < mn; ++mm)
            t[mm] = static_cast<uint32_t>(rnnkit::to_bf16(lo[mm])) | (static_cast<uint32_t>(rnnkit::to_bf16(hi[mm])) << 16);
        } else {
          for (int64_t mm = 0; mm < mn; ++mm) t[mm] = rnnkit::to_bf16(lo[mm]);
        }
      }
      for (int64_t mm = 0; mm < mn; ++mm) {
        uint32_t* o = out + (m0 + mm) * ldo + k0;
        for (int64_t kk = 0; kk < kn; ++kk) o[kk] = tile[kk][mm];
      }
    }
  }
  for (int64_t m = 0; m < G; ++m) std::fill(out + m * ldo + pairs, out + m * ldo + k2, 0u);
}

inline void ring_to_pairs(const float* ring, int64_t ldx, int64_t n, int64_t G, uint32_t* out, int64_t ldo) {
  for (int64_t k = 0; 2 * k < n; ++k) {
    const float* lo = ring + 2 * k * ldx;
    const float* hi = lo + ldx;
    uint32_t* o = out + k * ldo;
    if (2 * k + 1 < n) {
      for (int64_t m = 0; m < G; ++m)
        o[m] = static_cast<uint32_t>(rnnkit::to_bf16(lo[m])) | (static_cast<uint32_t>(rnnkit::to_bf16(hi[m])) << 16);
    } else {
      for (int64_t m = 0; m < G; ++m) o[m] = rnnkit::to_bf16(lo[m]);
    }
  }
}

struct Codes {
  int64_t kind, act, ract;
};

// Threads for the batch-split loops, or 1. Rows never interact, so each thread runs its own
// rows through the whole sequence with no synchronisation at all; each thread's rows stay a
// multiple of the 8-row GEMM tile. Measured against splitting each step's hidden units
// across threads (one barrier per step): 0.81-0.98x its time at S, M and L for every cell.
// With one thread here (small batches), each step's GEMM and gate pass use parallel_for.
inline int batch_threads(int64_t B, int64_t H, int64_t G) {
#if defined(_OPENMP)
  if (B * H * G < (1 << 16) || at::in_parallel_region()) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B / 8)));
#else
  (void)B; (void)H; (void)G;
  return 1;
#endif
}

// Thread id's rows [b0, b1) of B, cut at multiples of 8.
inline std::pair<int64_t, int64_t> row_share(int64_t B, int64_t id, int64_t n) {
  auto cut = [&](int64_t k) { return k == n ? B : (B * k / n) / 8 * 8; };
  return {cut(id), cut(id + 1)};
}

inline int thread_index() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Inside a batch-split region: a team smaller than asked for would leave rows unprocessed, so
// every thread of it fails alike (none reaches a barrier the others miss).
inline void check_team(int asked) {
#if defined(_OPENMP)
  TORCH_CHECK(omp_get_num_threads() == asked, "rnnkit: OpenMP started ", omp_get_num_threads(),
              " threads for a loop split ", asked, " ways");
#else
  (void)asked;
#endif
}

// ---------------------------------------------------------------- forward rows
// Each takes one batch row; g points at its G gate pre-activations, which are
// overwritten by the activated gates the backward needs.

template <typename T> void rnn_row(const Codes& c, T* g, T* hn, int64_t H) {
  act_inplace<T>(c.act, g, H);
  for (int64_t j = 0; j < H; ++j) hn[j] = g[j];
}

// The LSTM's options (rnnkit/ops/lstm.py): peepholes and layer norm. Null pointers
// mean "off". The *_cache pointers are the bases of (T*B, ...) arrays the backward reads.
template <typename T> struct LstmOpts {
  const T* peep = nullptr;                          // (3, H): p_i, p_f, p_o
  const T *ln_g = nullptr, *ln_b = nullptr;         // (4H,) per gate block
  const T *lnc_g = nullptr, *lnc_b = nullptr;       // (H,) the cell before its activation
  T *a_hat = nullptr, *rstd = nullptr;              // (T*B, 4H), (T*B, 4)
  T *c_hat = nullptr, *rstd_c = nullptr;            // (T*B, H), (T*B, 1)
};

constexpr double kLnEps = 1e-5;  // as rnnkit/ops/layernorm.py

// y = x_hat * gamma + beta with x_hat = (x - mean) * rstd, over n values; keeps x_hat for the
// backward and returns rstd. y may alias x: the last loop is marked simd, since an alias
// check would otherwise send the in-place case down gcc's scalar fallback.
template <typename T> T ln_forward(const T* x, const T* gamma, const T* beta, T* x_hat, T* y, int64_t n) {
  T mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
  for (int64_t j = 0; j < n; ++j) mean += x[j];
  mean /= T(n);
#pragma omp simd reduction(+ : var)
  for (int64_t j = 0; j < n; ++j) { T d = x[j] - mean; var += d * d; }
  const T rstd = T(1) / std::sqrt(var / T(n) + T(kLnEps));
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const T xh = (x[j] - mean) * rstd;
    x_hat[j] = xh;
    y[j] = xh * gamma[j] + beta[j];
  }
  return rstd;
}

// From dy, the gradient of ln_forward's y: dx = rstd (u - mean(u) - x_hat mean(u x_hat)) with
// u = dy * gamma. dx may alias dy (simd, as above).
template <typename T> void ln_backward(const T* dy, const T* gamma, const T* x_hat, T rstd, T* dx, int64_t n) {
  T m1 = 0, m2 = 0;
#pragma omp simd reduction(+ : m1, m2)
  for (int64_t j = 0; j < n; ++j) {
    const T u = dy[j] * gamma[j];
    m1 += u;
    m2 += u * x_hat[j];
  }
  m1 /= T(n);
  m2 /= T(n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dx[j] = rstd * (dy[j] * gamma[j] - m1 - x_hat[j] * m2);
}

template <typename T> void lstm_row(const Codes& c, T* g, const T* cp, T* cn, T* tanh_c, T* hn, int64_t H,
                                    const LstmOpts<T>& o, int64_t row) {
  if (o.ln_g) {
    T* ah = o.a_hat + row * 4 * H;
    for (int k = 0; k < 4; ++k)
      o.rstd[row * 4 + k] = ln_forward(g + k * H, o.ln_g + k * H, o.ln_b + k * H, ah + k * H, g + k * H, H);
  }
  if (c.ract == 1 && c.act == 0 && !o.peep) {
    // Sigmoid gates and tanh without peepholes, the usual LSTM: the same math in one pass for
    // the gates and one for the output, instead of seven short loops.
    T *i = g, *f = g + H, *gg = g + 2 * H, *og = g + 3 * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T iv = sigmoid_<T>(i[j]), fv = sigmoid_<T>(f[j]), gv = tanh_<T>(gg[j]);
      i[j] = iv;
      f[j] = fv;
      gg[j] = gv;
      og[j] = sigmoid_<T>(og[j]);
      cn[j] = fv * cp[j] + iv * gv;
    }
    const T* pre = cn;  // what tanh_c is tanh of
    if (o.lnc_g) {
      o.rstd_c[row] = ln_forward(cn, o.lnc_g, o.lnc_b, o.c_hat + row * H, tanh_c, H);
      pre = tanh_c;
    }
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T tc = tanh_<T>(pre[j]);
      tanh_c[j] = tc;
      hn[j] = og[j] * tc;
    }
    return;
  }
  if (o.peep) {
    for (int64_t j = 0; j < H; ++j) g[j] += o.peep[j] * cp[j];
    for (int64_t j = 0; j < H; ++j) g[H + j] += o.peep[H + j] * cp[j];
  }
  act_inplace<T>(c.ract, g, 2 * H);       // ingate, forgetgate
  act_inplace<T>(c.act, g + 2 * H, H);    // cellgate
  const T *i = g, *f = g + H, *gg = g + 2 * H;
  T* og = g + 3 * H;
  for (int64_t j = 0; j < H; ++j) cn[j] = f[j] * cp[j] + i[j] * gg[j];
  if (o.peep) for (int64_t j = 0; j < H; ++j) og[j] += o.peep[2 * H + j] * cn[j];
  act_inplace<T>(c.ract, og, H);          // outgate
  if (o.lnc_g) {
    o.rstd_c[row] = ln_forward(cn, o.lnc_g, o.lnc_b, o.c_hat + row * H, tanh_c, H);
  } else {
    for (int64_t j = 0; j < H; ++j) tanh_c[j] = cn[j];
  }
  act_inplace<T>(c.act, tanh_c, H);
  for (int64_t j = 0; j < H; ++j) hn[j] = og[j] * tanh_c[j];
}

// reset-after: g holds nothing yet; x = W_ih x + b_ih, hw = W_hh h + b_hh (both G wide).
template <typename T> void gru_after_row(const Codes& c, T* g, const T* x, const T* hw, T* hn_cache, const T* hp,
                                         T* hn, int64_t H) {
  if (c.ract == 1 && c.act == 0) {  // sigmoid and tanh: the same math in one pass (as lstm_row)
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T r = sigmoid_<T>(x[j] + hw[j]), z = sigmoid_<T>(x[H + j] + hw[H + j]), hc = hw[2 * H + j];
      const T n = tanh_<T>(x[2 * H + j] + r * hc);
      g[j] = r;
      g[H + j] = z;
      g[2 * H + j] = n;
      hn_cache[j] = hc;
      hn[j] = n + z * (hp[j] - n);
    }
    return;
  }
  for (int64_t j = 0; j < 2 * H; ++j) g[j] = x[j] + hw[j];
  act_inplace<T>(c.ract, g, 2 * H);
  const T *r = g, *z = g + H;
  T* n = g + 2 * H;
  for (int64_t j = 0; j < H; ++j) {
    hn_cache[j] = hw[2 * H + j];
    n[j] = x[2 * H + j] + r[j] * hn_cache[j];
  }
  act_inplace<T>(c.act, n, H);
  for (int64_t j = 0; j < H; ++j) hn[j] = n[j] + z[j] * (hp[j] - n[j]);
}

// reset-before, second half: r, z are activated and n's pre-activation is in place.
template <typename T> void gru_before_row(const Codes& c, T* g, const T* hp, T* hn, int64_t H) {
  T* n = g + 2 * H;
  const T* z = g + H;
  act_inplace<T>(c.act, n, H);
  for (int64_t j = 0; j < H; ++j) hn[j] = n[j] + z[j] * (hp[j] - n[j]);
}

using OptList = std::vector<c10::optional<Tensor>>;

Tensor opt_or_undef(const c10::optional<Tensor>& t) { return t.has_value() ? *t : Tensor(); }
Tensor list_at(const OptList& l, size_t i) { return i < l.size() ? opt_or_undef(l[i]) : Tensor(); }

template <typename T> const T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

// lstm_w: [peephole (3, H), ln_gamma (4H), ln_beta (4H), ln_cell_gamma (H), ln_cell_beta (H)], absent = None.
template <typename T> LstmOpts<T> lstm_opts(const OptList& lstm_w) {
  LstmOpts<T> o;
  o.peep = ptr_or_null<T>(list_at(lstm_w, 0));
  o.ln_g = ptr_or_null<T>(list_at(lstm_w, 1));
  o.ln_b = ptr_or_null<T>(list_at(lstm_w, 2));
  o.lnc_g = ptr_or_null<T>(list_at(lstm_w, 3));
  o.lnc_b = ptr_or_null<T>(list_at(lstm_w, 4));
  return o;
}

template <typename T>
std::vector<Tensor> forward_impl(const Codes& c, const Tensor& x, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_hh, const Tensor& b_hh, const Tensor& keep_h, const Tensor& keep_c,
                                 const Tensor& out_mask, const Tensor& rdm, const OptList& lstm_w, bool need_cache,
                                 const Tensor& w_ih, const Tensor& b_x) {
  // x is the raw input (T, B, F), any strides with unit stride along F, and each step projects
  // its own rows (x_t W_ih^T + b_x) just before the recurrent GEMM: no (T, B, G) projection is
  // ever stored, and the step's input is read while still in cache.
  const int64_t T_ = x.size(0), B = x.size(1), G = w_hh.size(0), H = h0.size(1), BH = B * H;
  const int64_t kind = c.kind;
  const bool lstm = kind == 1;
  auto opts = h0.options();  // x is bfloat16 under autocast; everything the loop keeps is T
  LstmOpts<T> lo = lstm_opts<T>(lstm_w);
  using rnnkit::pooled_empty;
  Tensor a_hat = lo.ln_g ? pooled_empty({T_, B, G}, opts) : Tensor(), rstd = lo.ln_g ? at::empty({T_, B, 4}, opts) : Tensor();
  Tensor c_hat = lo.lnc_g ? pooled_empty({T_, B, H}, opts) : Tensor(), rstd_c = lo.lnc_g ? at::empty({T_, B, 1}, opts) : Tensor();
  lo.a_hat = a_hat.defined() ? a_hat.data_ptr<T>() : nullptr;
  lo.rstd = rstd.defined() ? rstd.data_ptr<T>() : nullptr;
  lo.c_hat = c_hat.defined() ? c_hat.data_ptr<T>() : nullptr;
  lo.rstd_c = rstd_c.defined() ? rstd_c.data_ptr<T>() : nullptr;
  Tensor h_hist = pooled_empty({T_ + 1, B, H}, opts);
  h_hist[0].copy_(h0);
  // Without a backward to feed (inference), gates and extra keep one step and the cell two:
  // the loop then writes a sixth of the memory for an LSTM.
  const int64_t c_rows = need_cache ? T_ + 1 : 2, g_rows = need_cache ? T_ : 1;
  auto c_row = [&](int64_t t) { return need_cache ? t : t & 1; };
  Tensor c_hist = lstm ? pooled_empty({c_rows, B, H}, opts) : Tensor();
  if (lstm) c_hist[0].copy_(c0);
  // Activated gates per step. An Elman cell without a keep mix has h_t = f(a_t) exactly,
  // so its gates are h_hist[1:] itself: the GEMM and the activation write h_t in place.
  const bool gates_are_h = kind == 0 && !keep_h.defined();
  Tensor gates = gates_are_h ? h_hist.narrow(0, 1, T_) : pooled_empty({g_rows, B, G}, opts);
  Tensor extra = kind != 0 ? pooled_empty({g_rows, B, H}, opts) : Tensor();   // tanh(c) | W_hn h + b_hn | r * h
  const int64_t g_step = gates_are_h || need_cache ? B * G : 0, ex_step = need_cache ? BH : 0;
  Tensor hin_all = rdm.defined() ? pooled_empty({T_, B, H}, opts) : Tensor();
  std::vector<T> hw(kind == 2 ? B * G : 0);
  // GRU reset-after keeps the input's n part apart from W_hn h, so its projection goes to a
  // step buffer; the other cells project straight into the step's gate block.
  std::vector<T> xstep(kind == 2 ? B * G : 0);
  const bool x16 = x.scalar_type() == at::kBFloat16;
  const int gemm = x16 ? bf16_mode() : kFloat;
  const int bt = batch_threads(B, H, G);
  const StepMatrix<T> w_x(w_ih.t(), gemm, B, bt);
  const T* BX = b_x.defined() ? b_x.data_ptr<T>() : nullptr;
  const int64_t x_t = x.stride(0), x_b = x.stride(1);
  // kind 3 multiplies by the r, z rows and the n rows separately; the others by all of W_hh.
  StepMatrix<T> w_main(kind == 3 ? w_hh.narrow(0, 0, 2 * H).t() : w_hh.t(), gemm, B, bt);
  StepMatrix<T> w_n(kind == 3 ? w_hh.narrow(0, 2 * H, H).t() : w_hh.narrow(0, 0, 1).t(), gemm, B, bt);
  const int64_t khw = keep_h.defined() ? keep_h.size(2) : 0, kcw = keep_c.defined() ? keep_c.size(2) : 0;

  const T* XIN = x16 ? nullptr : x.data_ptr<T>();
  const uint16_t* XIN16 = x16 ? reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()) : nullptr;
  T* HH = h_hist.data_ptr<T>();
  T* CH = lstm ? c_hist.data_ptr<T>() : nullptr;
  T* GT = gates.data_ptr<T>();
  T* EX = extra.defined() ? extra.data_ptr<T>() : nullptr;
  T* HIN = hin_all.defined() ? hin_all.data_ptr<T>() : nullptr;
  const T* RDM = rdm.defined() ? rdm.data_ptr<T>() : nullptr;
  const T* KH = keep_h.defined() ? keep_h.data_ptr<T>() : nullptr;
  const T* KC = keep_c.defined() ? keep_c.data_ptr<T>() : nullptr;
  const T* BHH = b_hh.defined() ? b_hh.data_ptr<T>() : nullptr;

  // Rows [b0, b1) through the whole sequence; each step's GEMMs and gate pass split across
  // threads by parallel_for unless this already runs on one thread of a batch split.
  // When training, the step's GEMMs write into a reused (B, G) block rather than straight into
  // the step's row of the gate history, which is fresh memory: the tiles' stores then hit
  // cache, and each finished row goes to the history in one sequential copy. In-process A/B
  // against writing in place (two runs): LSTM L 1.03-1.05x, layer-norm LSTM L 1.01-1.03x, LSTM
  // S and M 0.99-1.04x, GRU reset-before 1.00-1.01x. (GRU reset-after already stages its
  // projection; an Elman cell without keep writes h_t itself.)
  const bool staged = need_cache && kind != 2 && !gates_are_h;
  AlignedBuffer<T> stage;
  if (staged) stage.assign(B * G);
  auto rows_loop = [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    for (int64_t t = 0; t < T_; ++t) {
      const T* hp = HH + t * BH;
      T* hn = HH + (t + 1) * BH;
      T* g_keep = GT + t * g_step;
      T* g = staged ? stage.data : g_keep;
      T* xp = kind == 2 ? xstep.data() : g;  // where the step's projected inputs go, row stride G
      if (x16) {
        w_x.apply_bf16(XIN16 + t * x_t + b0 * x_b, x_b, nb, xp + b0 * G, G, BX, 0);
      } else {
        w_x.apply(XIN + t * x_t + b0 * x_b, x_b, nb, xp + b0 * G, G, BX, 0);
      }
      T* ex = EX ? EX + t * ex_step : nullptr;
      const T* hin = hp;
      if (RDM) {
        T* dst = HIN + t * BH;
        for (int64_t i = b0 * H; i < b1 * H; ++i) dst[i] = hp[i] * RDM[i];
        hin = dst;
      }
      if (kind == 2) {
        w_main.apply(hin + b0 * H, H, nb, hw.data() + b0 * G, G, BHH, 0);
      } else {
        w_main.apply(hin + b0 * H, H, nb, g + b0 * G, G, xp + b0 * G, G);  // kind 3: only the r, z columns
      }
      if (kind == 3) {
        // n needs r * h before its own GEMM.
        for_row_range(b0, b1, 2 * H, [&](int64_t b) {
          T* gb = g + b * G;
          act_inplace<T>(c.ract, gb, 2 * H);
          for (int64_t j = 0; j < H; ++j) ex[b * H + j] = gb[j] * hin[b * H + j];
        });
        w_n.apply(ex + b0 * H, H, nb, g + 2 * H + b0 * G, G, xp + 2 * H + b0 * G, G);
      }
      for_row_range(b0, b1, G, [&](int64_t b) {
        T* gb = g + b * G;
        T* hnb = hn + b * H;
        const T* hpb = hp + b * H;
        if (kind == 0) {
          rnn_row(c, gb, hnb, H);
        } else if (kind == 1) {
          const T* cpb = CH + c_row(t) * BH + b * H;
          T* cnb = CH + c_row(t + 1) * BH + b * H;
          lstm_row(c, gb, cpb, cnb, ex + b * H, hnb, H, lo, t * B + b);
          if (KC) mix_row(cnb, cpb, KC + (t * B + b) * kcw, kcw, H);
        } else if (kind == 2) {
          gru_after_row(c, gb, xp + b * G, hw.data() + b * G, ex + b * H, hpb, hnb, H);
        } else {
          gru_before_row(c, gb, hpb, hnb, H);
        }
        if (staged) std::memcpy(g_keep + b * G, gb, G * sizeof(T));
        if (KH) mix_row(hnb, hpb, KH + (t * B + b) * khw, khw, H);
      });
    }
  };
  if (bt > 1) {
    // The workers run ATen calls (the double GEMMs): give them the caller's thread-local
    // state (grad mode above all), as ATen's own parallel_for does.
    const at::ThreadLocalState tls;
    rnnkit_detail::FirstError error;  // an exception must not leave an OpenMP region
#pragma omp parallel num_threads(bt)
    {
      const at::ThreadLocalStateGuard guard(tls);
      const auto rows = row_share(B, thread_index(), bt);
      error.run([&] {
        check_team(bt);
        rows_loop(rows.first, rows.second);
      });
    }
    error.rethrow();
  } else {
    rows_loop(0, B);
  }
  // A copy, not a view of the cache, so the caller may modify it in place.
  Tensor out = pooled_empty({T_, B, H}, opts);
  if (out_mask.defined()) {
    at::mul_out(out, h_hist.narrow(0, 1, T_), out_mask);
  } else {
    out.copy_(h_hist.narrow(0, 1, T_));
  }
  if (!need_cache) {
    std::vector<Tensor> res{out, h_hist[T_].clone()};
    if (lstm) res.push_back(c_hist[c_row(T_)].clone());
    return res;
  }
  return {out, h_hist, lstm ? c_hist : Tensor(), gates, extra.defined() ? extra : Tensor(),
          hin_all.defined() ? hin_all : Tensor(), a_hat, rstd, c_hat, rstd_c};
}


// out[b, n] (+)= sum_k a[b, k] w[n, k] for a few rows b: at B = 1 a GEMM call's
// setup costs more than the dot products themselves.
template <typename T> void small_rows_matmul(const T* a, int64_t B, int64_t K, const T* w, int64_t ldw, int64_t N,
                                             T* out, int64_t ldo, bool accumulate) {
  for (int64_t b = 0; b < B; ++b) {
    const T* ab = a + b * K;
    for (int64_t n = 0; n < N; ++n) {
      const T* wn = w + n * ldw;
      T acc = accumulate ? out[b * ldo + n] : T(0);
#pragma omp simd reduction(+ : acc)
      for (int64_t k = 0; k < K; ++k) acc += ab[k] * wn[k];
      out[b * ldo + n] = acc;
    }
  }
}

// One step for streaming inference (no autograd, no time loop): the same row
// kernels as the forward loop.
template <typename T>
std::vector<Tensor> step_impl(const Codes& c, const Tensor& x, const Tensor& h, const Tensor& c_prev,
                              const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  const int64_t B = x.size(0), G = w_ih.size(0), H = h.size(1);
  const int64_t kind = c.kind;
  const bool small = B <= 4 && w_ih.is_contiguous() && w_hh.is_contiguous();
  // out (B, rows of w) (+)= v @ w^T, through the dot-product loop for a few rows, else ATen.
  auto matmul_t = [&](const Tensor& v, const Tensor& w, Tensor out, bool accumulate) {
    if (small) {
      small_rows_matmul<T>(v.data_ptr<T>(), B, v.size(1), w.data_ptr<T>(), w.stride(0), w.size(0), out.data_ptr<T>(),
                           out.stride(0), accumulate);
    } else if (accumulate) {
      out.addmm_(v, w.t());
    } else {
      at::mm_out(out, v, w.t());
    }
  };
  // Start each product from its bias, then accumulate.
  auto from_bias = [&](const Tensor& bias) {
    Tensor out = at::empty({B, G}, x.options());
    T* o = out.data_ptr<T>();
    if (bias.defined()) {
      const T* bp = bias.data_ptr<T>();
      for (int64_t b = 0; b < B; ++b) std::memcpy(o + b * G, bp, G * sizeof(T));
    } else {
      std::memset(o, 0, B * G * sizeof(T));
    }
    return out;
  };
  Tensor xw = from_bias(b_ih);  // (B, G)
  matmul_t(x, w_ih, xw, true);
  Tensor hn = at::empty({B, H}, h.options());
  Tensor cn = kind == 1 ? at::empty({B, H}, h.options()) : Tensor();
  std::vector<T> scratch(B * H);
  T* HN = hn.data_ptr<T>();
  const T* HP = h.data_ptr<T>();
  if (kind == 2) {
    Tensor hw = from_bias(b_hh);
    matmul_t(h, w_hh, hw, true);
    Tensor g = at::empty({B, G}, h.options());
    for (int64_t b = 0; b < B; ++b)
      gru_after_row(c, g.data_ptr<T>() + b * G, xw.data_ptr<T>() + b * G, hw.data_ptr<T>() + b * G,
                    scratch.data() + b * H, HP + b * H, HN + b * H, H);
    return {hn};
  }
  if (b_hh.defined()) xw.add_(b_hh);  // b_hh folds into the input side for these cells
  if (kind == 3) {
    Tensor g = xw;
    Tensor rz = g.narrow(1, 0, 2 * H);
    matmul_t(h, w_hh.narrow(0, 0, 2 * H), rz, true);
    T* G_ = g.data_ptr<T>();
    for (int64_t b = 0; b < B; ++b) {
      act_inplace<T>(c.ract, G_ + b * G, 2 * H);
      for (int64_t j = 0; j < H; ++j) scratch[b * H + j] = G_[b * G + j] * HP[b * H + j];
    }
    Tensor rh = at::from_blob(scratch.data(), {B, H}, h.options());
    matmul_t(rh, w_hh.narrow(0, 2 * H, H), g.narrow(1, 2 * H, H), true);
    for (int64_t b = 0; b < B; ++b) gru_before_row(c, G_ + b * G, HP + b * H, HN + b * H, H);
    return {hn};
  }
  Tensor g = xw;
  matmul_t(h, w_hh, g, true);
  T* G_ = g.data_ptr<T>();
  for (int64_t b = 0; b < B; ++b) {
    if (kind == 0) {
      rnn_row(c, G_ + b * G, HN + b * H, H);
    } else {
      lstm_row(c, G_ + b * G, c_prev.data_ptr<T>() + b * H, cn.data_ptr<T>() + b * H, scratch.data() + b * H,
               HN + b * H, H, LstmOpts<T>{}, 0);
    }
  }
  if (kind == 1) return {hn, cn};
  return {hn};
}

// --------------------------------------------------------------- backward rows
// dnew: gradient of the cell's new h (after the keep split); dx: the G-wide
// gradient of the step's pre-activations; s1, s2: H-wide scratch.

// Split a state's gradient d by keep (width kw: 1 or n; null: keep nothing): (1 - k) d enters
// the cell as d_new, and k d stays in d for the previous state.
template <typename T> void split_by_keep(T* d, T* d_new, const T* keep, int64_t kw, int64_t n) {
  if (!keep) {
    for (int64_t j = 0; j < n; ++j) { d_new[j] = d[j]; d[j] = T(0); }
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    const T k = keep[kw == 1 ? 0 : j];
    d_new[j] = d[j] * (T(1) - k);
    d[j] *= k;
  }
}

// lstm_back_row for any activations and peepholes, up to the gates' gradients dx.
template <typename T> void lstm_back_gates(const Codes& c, const T* g, const T* tanh_c, const T* cp, const T* dnew,
                                           const T* dcn, T* dc_out, T* dx, T* s1, int64_t H, const LstmOpts<T>& o,
                                           int64_t row, T* dc_in) {
  const T *i = g, *f = g + H, *gg = g + 2 * H, *og = g + 3 * H;
  for (int64_t j = 0; j < H; ++j) s1[j] = dnew[j] * tanh_c[j];
  mul_dact<T>(c.ract, og, s1, dx + 3 * H, H);                 // d outgate
  for (int64_t j = 0; j < H; ++j) s1[j] = dnew[j] * og[j];
  mul_dact<T>(c.act, tanh_c, s1, s1, H);                      // d of the cell's activation input
  if (o.lnc_g) {
    for (int64_t j = 0; j < H; ++j) dc_in[j] = s1[j];
    ln_backward(s1, o.lnc_g, o.c_hat + row * H, o.rstd_c[row], s1, H);
  }
  for (int64_t j = 0; j < H; ++j) s1[j] += dcn[j];            // total gradient of the new c
  if (o.peep) for (int64_t j = 0; j < H; ++j) s1[j] += dx[3 * H + j] * o.peep[2 * H + j];
  for (int64_t j = 0; j < H; ++j) dc_out[j] += s1[j] * f[j];
  for (int64_t j = 0; j < H; ++j) dx[j] = s1[j] * gg[j];
  mul_dact<T>(c.ract, i, dx, dx, H);                          // d ingate
  for (int64_t j = 0; j < H; ++j) dx[H + j] = s1[j] * cp[j];
  mul_dact<T>(c.ract, f, dx + H, dx + H, H);                  // d forgetgate
  for (int64_t j = 0; j < H; ++j) dx[2 * H + j] = s1[j] * i[j];
  mul_dact<T>(c.act, gg, dx + 2 * H, dx + 2 * H, H);          // d cellgate
  if (o.peep) {
    for (int64_t j = 0; j < H; ++j) dc_out[j] += dx[j] * o.peep[j] + dx[H + j] * o.peep[H + j];
  }
}

// dat (4H): the gradient of the gates' normalised pre-activations, kept for the
// peephole and layer-norm weight gradients; dc_in (H): of the cell's LN output.
template <typename T> void lstm_back_row(const Codes& c, const T* g, const T* tanh_c, const T* cp, const T* dnew,
                                         const T* dcn, T* dc_out, T* dx, T* s1, int64_t H, const LstmOpts<T>& o,
                                         int64_t row, T* dat, T* dc_in) {
  const T *i = g, *f = g + H, *gg = g + 2 * H, *og = g + 3 * H;
  if (c.ract == 1 && c.act == 0 && !o.peep) {
    // The usual LSTM, as in lstm_row: the products of lstm_back_gates in two passes. A cell
    // layer norm sits between them, since its backward needs the whole first pass.
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T tc = tanh_c[j], ov = og[j];
      dx[3 * H + j] = (dnew[j] * tc) * (ov * (T(1) - ov));
      s1[j] = (dnew[j] * ov) * (T(1) - tc * tc);
    }
    if (o.lnc_g) {
      for (int64_t j = 0; j < H; ++j) dc_in[j] = s1[j];
      ln_backward(s1, o.lnc_g, o.c_hat + row * H, o.rstd_c[row], s1, H);
    }
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T dcv = s1[j] + dcn[j], iv = i[j], fv = f[j], gv = gg[j];
      dc_out[j] += dcv * fv;
      dx[j] = (dcv * gv) * (iv * (T(1) - iv));
      dx[H + j] = (dcv * cp[j]) * (fv * (T(1) - fv));
      dx[2 * H + j] = (dcv * iv) * (T(1) - gv * gv);
    }
  } else {
    lstm_back_gates(c, g, tanh_c, cp, dnew, dcn, dc_out, dx, s1, H, o, row, dc_in);
  }
  if (dat) for (int64_t j = 0; j < 4 * H; ++j) dat[j] = dx[j];
  if (o.ln_g) {
    for (int k = 0; k < 4; ++k)
      ln_backward(dx + k * H, o.ln_g + k * H, o.a_hat + row * 4 * H + k * H, o.rstd[row * 4 + k], dx + k * H, H);
  }
}

// GRU, both forms: dz, dn and the direct path to h_{t-1}; reset-after also dr and dhw.
template <typename T> void gru_back_row(const Codes& c, const T* g, const T* hn_cache, const T* hp, const T* dnew,
                                        T* dh_out, T* dx, T* dhw, int64_t H) {
  const T *r = g, *z = g + H, *n = g + 2 * H;
  if (c.ract == 1 && c.act == 0) {  // sigmoid and tanh: the products below in one pass
    if (dhw) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T zv = z[j], nv = n[j], rv = r[j], dn = dnew[j];
        dh_out[j] += dn * zv;
        const T dz = (dn * (hp[j] - nv)) * (zv * (T(1) - zv)), dnn = (dn * (T(1) - zv)) * (T(1) - nv * nv);
        const T dr = (dnn * hn_cache[j]) * (rv * (T(1) - rv));
        dx[j] = dr;
        dx[H + j] = dz;
        dx[2 * H + j] = dnn;
        dhw[j] = dr;
        dhw[H + j] = dz;
        dhw[2 * H + j] = dnn * rv;
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T zv = z[j], nv = n[j], dn = dnew[j];
        dh_out[j] += dn * zv;
        dx[H + j] = (dn * (hp[j] - nv)) * (zv * (T(1) - zv));
        dx[2 * H + j] = (dn * (T(1) - zv)) * (T(1) - nv * nv);
      }
    }
    return;
  }
  for (int64_t j = 0; j < H; ++j) dh_out[j] += dnew[j] * z[j];
  for (int64_t j = 0; j < H; ++j) dx[H + j] = dnew[j] * (hp[j] - n[j]);
  mul_dact<T>(c.ract, z, dx + H, dx + H, H);
  for (int64_t j = 0; j < H; ++j) dx[2 * H + j] = dnew[j] * (T(1) - z[j]);
  mul_dact<T>(c.act, n, dx + 2 * H, dx + 2 * H, H);
  if (dhw) {
    for (int64_t j = 0; j < H; ++j) dx[j] = dx[2 * H + j] * hn_cache[j];
    mul_dact<T>(c.ract, r, dx, dx, H);
    for (int64_t j = 0; j < 2 * H; ++j) dhw[j] = dx[j];
    for (int64_t j = 0; j < H; ++j) dhw[2 * H + j] = dx[2 * H + j] * r[j];
  }
}

template <typename T>
std::vector<Tensor> backward_impl(const Codes& c, Tensor d_out, const Tensor& d_hT, const Tensor& d_cT,
                                  const Tensor& h_hist, const Tensor& c_hist, const Tensor& gates,
                                  const Tensor& extra, const Tensor& hin_all, const Tensor& w_hh,
                                  const Tensor& keep_h, const Tensor& keep_c, const Tensor& out_mask,
                                  const Tensor& rdm, const OptList& lstm_w, const OptList& ln_cache, int64_t tbptt,
                                  bool want_norms, const Tensor& x, const Tensor& w_ih, bool want_dx, bool want_w_hh,
                                  bool want_w_ih, bool in_loop, bool share_dw) {
  // x is the raw input (T, B, F) the forward projected step by step. With in_loop the loop
  // returns dx (when want_dx) and sums dW_ih and dW_hh itself; without, it returns the
  // histories d(xw) (T, B, G) (and for GRU reset-after d(W_hh h + b_hh)) for the caller's GEMMs
  // over all steps at once, which win when the weights are large (see compiled.py). Either way
  // it sums the biases' gradients.
  const int64_t T_ = gates.size(0), B = gates.size(1), G = gates.size(2), H = h_hist.size(2), BH = B * H;
  const int64_t F = w_ih.size(1);
  LstmOpts<T> lo = lstm_opts<T>(lstm_w);
  lo.a_hat = const_cast<T*>(ptr_or_null<T>(list_at(ln_cache, 0)));
  lo.rstd = const_cast<T*>(ptr_or_null<T>(list_at(ln_cache, 1)));
  lo.c_hat = const_cast<T*>(ptr_or_null<T>(list_at(ln_cache, 2)));
  lo.rstd_c = const_cast<T*>(ptr_or_null<T>(list_at(ln_cache, 3)));
  const bool keep_dat = lo.peep || lo.ln_g;
  const int64_t kind = c.kind;
  const bool lstm = kind == 1;
  auto opts = gates.options();
  // Rows of d_out are read in place when each is contiguous (the gradient of a batch-first
  // output seen time-major); only other layouts, such as an expanded gradient, are copied.
  // A broadcast gradient (stride 0 along H, e.g. of out.sum()) is read in place as well.
  if (d_out.stride(2) != 1 && d_out.stride(2) != 0) d_out = d_out.contiguous();
  const int64_t do_t = d_out.stride(0), do_b = d_out.stride(1), do_j = d_out.stride(2);
  using rnnkit::pooled_empty;
  if (!in_loop) want_dx = want_w_hh = want_w_ih = false;  // the caller's GEMMs do these
  Tensor dxw_hist = in_loop ? Tensor() : pooled_empty({T_, B, G}, opts);
  Tensor dhw_hist = !in_loop && kind == 2 ? pooled_empty({T_, B, G}, opts) : Tensor();
  Tensor d_in = want_dx ? pooled_empty({T_, B, F}, opts) : Tensor();
  const bool x16 = x.scalar_type() == at::kBFloat16;
  const int gemm = x16 ? bf16_mode() : kFloat;
  const int bt = batch_threads(B, H, G);
  std::optional<StepMatrix<T>> w_in;
  if (want_dx) w_in.emplace(w_ih, gemm, B, bt);
  const T* XIN = x16 ? nullptr : x.data_ptr<T>();
  const uint16_t* XIN16 = x16 ? reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()) : nullptr;
  const int64_t x_t = x.stride(0), x_b = x.stride(1);
  // The LSTM options' weight gradients are sums over every step and row; each thread adds up
  // its rows while a step's gradients are still in cache, so no (T, B, 4H) history of them is
  // kept. Layout: [ln_gamma 4H, ln_beta 4H, ln_cell_gamma H, ln_cell_beta H, peephole 3H],
  // each part present only with its option.
  const int64_t n_opt = (lo.ln_g ? 8 * H : 0) + (lo.lnc_g ? 2 * H : 0) + (lo.peep ? 3 * H : 0);
  std::vector<T> dat_step(keep_dat ? B * G : 0), dcin_step(lo.lnc_g ? BH : 0);
  Tensor dh = d_hT.clone();  // carried gradient of h_t, then of h_{t-1}
  Tensor dc = lstm ? d_cT.clone() : Tensor();
  Tensor norms = want_norms ? at::zeros({T_, lstm ? 2 : 1}, opts.dtype(at::kDouble)) : Tensor();
  std::vector<T> dnew(BH), dcn(lstm ? BH : 0), dhin(BH), drh(kind == 3 ? BH : 0), scratch(BH);
  StepMatrix<T> w_back(kind == 3 ? w_hh.narrow(0, 0, 2 * H) : w_hh, gemm, B, bt);
  StepMatrix<T> w_n(kind == 3 ? w_hh.narrow(0, 2 * H, H) : w_hh.narrow(0, 0, 1), gemm, B, bt);
  const int64_t khw = keep_h.defined() ? keep_h.size(2) : 0, kcw = keep_c.defined() ? keep_c.size(2) : 0;

  T* DH = dh.data_ptr<T>();
  T* DC = lstm ? dc.data_ptr<T>() : nullptr;
  const T* DO = d_out.data_ptr<T>();
  const T* OM = out_mask.defined() ? out_mask.data_ptr<T>() : nullptr;  // (T, B, 1)
  const T* GT = gates.data_ptr<T>();
  const T* HH = h_hist.data_ptr<T>();
  const T* CH = lstm ? c_hist.data_ptr<T>() : nullptr;
  const T* EX = extra.defined() ? extra.data_ptr<T>() : nullptr;
  const T* HIN = hin_all.defined() ? hin_all.data_ptr<T>() : nullptr;
  const T* RDM = rdm.defined() ? rdm.data_ptr<T>() : nullptr;
  const T* KH = keep_h.defined() ? keep_h.data_ptr<T>() : nullptr;
  const T* KC = keep_c.defined() ? keep_c.data_ptr<T>() : nullptr;
  T* DIN = d_in.defined() ? d_in.data_ptr<T>() : nullptr;
  T* DXH = dxw_hist.defined() ? dxw_hist.data_ptr<T>() : nullptr;
  T* DHH = dhw_hist.defined() ? dhw_hist.data_ptr<T>() : nullptr;
  double* NORMS = want_norms ? norms.data_ptr<double>() : nullptr;

  // In the loop, the weight gradients, dW = sum over steps and rows of d^T v, are taken a chunk
  // of steps at a time: each thread writes its rows of d(xw) (and for GRU reset-after of
  // d(W_hh h + b_hh)) into a ring of chunk rows, gathers the matching rows of v (the step inputs
  // x_t, h_{t-1}, r * h_{t-1}) into RowChunks, and multiplies once the chunk is full. Ring rows
  // are G + 16 wide: the kernel reads whole 8-row tiles, and a stride of G alone (a power of two
  // times a small number) can map a chunk's rows onto a few L1 sets. Without in_loop the rows
  // go to the histories instead (row stride G).
  const int64_t ldx = in_loop ? G + 16 : G;
  struct Chunks {
    AlignedBuffer<T> dx, dhw;  // cap x ldx
    AlignedBuffer<uint32_t> dx16, dhw16;  // bf16 modes: the same rows as bf16 pairs (pairs_size)
    RowChunk<T> v_x, v_h, v_r;
    int64_t rows = 0;  // rows held at a flush
  };
  // A chunk holds chunk_steps whole steps of a thread's rows, about 128 rows in all; every
  // thread flushes at the same steps, which the shared flush below relies on. In-process A/B
  // (train steps, 2 threads): 128 rows against 64, LSTM L 1.04x, layer-norm LSTM L 1.02x,
  // GRU L, SimpleRNN L and LSTM S, M 1.00-1.02x; 256 against 128, 0.975-0.99x but SimpleRNN L
  // 1.02x; 32 against 64, 0.93-0.95x at L.
  int64_t most_rows = 0;
  for (int k = 0; k < bt; ++k) {
    const auto rows = row_share(B, k, bt);
    most_rows = std::max(most_rows, rows.second - rows.first);
  }
  const int64_t chunk_steps = std::max<int64_t>(1, 128 / std::max<int64_t>(1, most_rows));
  // In the bf16 modes the rings are multiplied as bf16 pairs: pair rows of ld16 = G + 16 for
  // vdpbf16ps; for AMX transposed, G + 32 rows (read in whole 32-row blocks) of ld16 = k2_pad
  // pairs, a multiple of 16, zero past the rows held.
  auto k2_pad = [](int64_t rows) { return ((rows + 1) / 2 + 15) / 16 * 16; };
  const int64_t ld16 = gemm == kAmx ? k2_pad(most_rows * chunk_steps) : G + 16;
  auto pairs_size = [&](int64_t cap) { return gemm == kAmx ? (G + 32) * ld16 : (cap + 1) / 2 * ld16; };
  // Allocated before any thread starts, so nothing in the loop allocates (or throws: see below).
  std::vector<Chunks> chunks(bt);
  for (int k = 0; in_loop && k < bt; ++k) {
    const auto rows = row_share(B, k, bt);
    const int64_t cap = (rows.second - rows.first) * chunk_steps;
    Chunks& ch = chunks[k];
    ch.dx.assign(cap * ldx);
    if (kind == 2) ch.dhw.assign(cap * ldx);
    if (gemm == kBf16 || gemm == kAmx) {
      ch.dx16.assign(pairs_size(cap));
      if (kind == 2) ch.dhw16.assign(pairs_size(cap));
    }
    if (want_w_ih) ch.v_x.init(F, cap, gemm);
    if (want_w_hh) ch.v_h.init(H, cap, gemm);
    if (want_w_hh && kind == 3) ch.v_r.init(H, cap, gemm);
  }
  // A thread's own chunk, once full, in the form the bf16 modes multiply (the ring's rows have
  // served the step GEMMs and the bias sums by then): as bf16 pairs, or rounded in place.
  auto prepare = [&](Chunks& ch) {
    if constexpr (std::is_same_v<T, float>) {
      if (gemm == kAmx) {
        ring_to_pairs_t(ch.dx.data, ldx, ch.rows, G, ch.dx16.data, ld16, k2_pad(ch.rows));
        if (kind == 2) ring_to_pairs_t(ch.dhw.data, ldx, ch.rows, G, ch.dhw16.data, ld16, k2_pad(ch.rows));
      }
      if (gemm == kBf16) {
        ring_to_pairs(ch.dx.data, ldx, ch.rows, G, ch.dx16.data, ld16);
        if (kind == 2) ring_to_pairs(ch.dhw.data, ldx, ch.rows, G, ch.dhw16.data, ld16);
      }
      if (gemm == kBf16 || gemm == kAmx) {
        ch.v_x.close_pairs();
        ch.v_h.close_pairs();
        ch.v_r.close_pairs();
      } else if (gemm == kBf16Emulated) {
        for (float* ring : {ch.dx.data, kind == 2 ? ch.dhw.data : nullptr}) {
          for (int64_t r = 0; ring && r < ch.rows; ++r)
            for (int64_t m = 0; m < G; ++m) ring[r * ldx + m] = rnnkit::round_bf16(ring[r * ldx + m]);
        }
      }
    } else {
      (void)ch;
    }
  };
  // Rows [m0, m1) of the weight gradients from one thread's chunk.
  auto flush_rows = [&](const Chunks& ch, int64_t m0, int64_t m1, T* dw_hh, T* dw_ih) {
    // a's columns [lo, hi) are the gradient rows [lo, hi) of dw (row stride ldc).
    // a16: the same rows as bf16 pairs (kBf16, kAmx), else null.
    auto part = [&](const T* a, const uint32_t* a16, int64_t lo, int64_t hi, const RowChunk<T>& v, T* dw, int64_t ldc) {
      const int64_t r0 = std::max(lo, m0), r1 = std::min(hi, m1);
      const uint32_t* a16r = !a16 ? nullptr : gemm == kAmx ? a16 + r0 * ld16 : a16 + r0;
      if (r0 < r1) outer_sum(a + r0, ldx, a16r, ld16, r1 - r0, v, dw + r0 * ldc, ldc);
    };
    const bool pairs = gemm == kBf16 || gemm == kAmx;
    const uint32_t* dx16 = pairs ? ch.dx16.data : nullptr;
    const uint32_t* dhw16 = pairs && kind == 2 ? ch.dhw16.data : nullptr;
    if (want_w_ih) part(ch.dx.data, dx16, 0, G, ch.v_x, dw_ih, F);
    if (want_w_hh) {
      if (kind <= 1) part(ch.dx.data, dx16, 0, G, ch.v_h, dw_hh, H);
      if (kind == 2) part(ch.dhw.data, dhw16, 0, G, ch.v_h, dw_hh, H);
      if (kind == 3) {  // W_hh's r, z rows multiply h_{t-1}; its n rows r * h_{t-1}
        part(ch.dx.data, dx16, 0, 2 * H, ch.v_h, dw_hh, H);
        part(ch.dx.data, dx16, 2 * H, G, ch.v_r, dw_hh, H);
      }
    }
  };
  const int64_t n_bias = kind == 2 ? 2 * G : G;
  std::vector<T> step_sums(bt * (n_bias + n_opt));  // each thread's sums over one step's rows
  // With several threads, each sums all of dW from its own chunks into its own copy, added up
  // after the loop. With share_dw (large weights, see compiled.py) the threads share one dW and
  // split its rows instead: at a flush each waits for the others' chunks, sums its rows of dW
  // from all of them, and waits again before its chunk refills. Each thread then reads and
  // writes only its part of the accumulator, for two barriers per chunk. Only where nothing in
  // the loop can throw (the packed float kernels): a thread leaving early would leave the
  // others waiting at the barrier.
  const bool shared_dw = share_dw && in_loop && bt > 1 && RNNKIT_PACKED_GEMM && std::is_same_v<T, float>;
  const int64_t n_hh = want_w_hh ? G * H : 0, n_ih = want_w_ih ? G * F : 0;
  std::vector<Tensor> dw(shared_dw ? 1 : bt);  // (dW_hh | dW_ih) each; the first is the result
  std::vector<T*> dw_out(2 * bt);               // thread k's dW_hh, dW_ih
  for (int k = 0; k < bt; ++k) {
    if (k < static_cast<int>(dw.size())) dw[k] = at::zeros({n_hh + n_ih}, opts);
    dw_out[2 * k] = dw[shared_dw ? 0 : k].data_ptr<T>();
    dw_out[2 * k + 1] = dw_out[2 * k] + n_hh;
  }
  auto flush = [&](int id) {
    prepare(chunks[id]);
    if (shared_dw) {
#pragma omp barrier
      const auto mine = row_share(G, id, bt);
      for (int j = 0; j < bt; ++j) flush_rows(chunks[(id + j) % bt], mine.first, mine.second, dw_out[0], dw_out[1]);
#pragma omp barrier
    } else {
      flush_rows(chunks[id], 0, G, dw_out[2 * id], dw_out[2 * id + 1]);
    }
    Chunks& ch = chunks[id];
    ch.v_x.n = ch.v_h.n = ch.v_r.n = 0;
  };

  // Thread id's rows [b0, b1) back through the whole sequence (see rows_loop in the forward);
  // the probe's squared norms (sq: T x 2), the bias gradients (bias: G, or 2G for GRU) and the
  // LSTM options' gradients (opt) are summed per thread and combined after.
  const int n_norm = lstm ? 2 : 1;
  auto rows_loop = [&](int id, int64_t b0, int64_t b1, double* sq, double* bias, double* opt) {
    const int64_t nb = b1 - b0, cap = nb * chunk_steps;
    Chunks& ch = chunks[id];
    int64_t filled = 0;
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const T* g = GT + t * B * G;
      const T* hp = HH + t * BH;
      const T* hin = HIN ? HIN + t * BH : hp;
      const T* ex = EX ? EX + t * BH : nullptr;
      // This step's rows in the chunk rings (or the histories), indexed by b as everywhere else.
      T* dx = in_loop ? ch.dx.data + (filled - b0) * ldx : DXH + t * B * G;
      T* dhw = kind != 2 ? nullptr : in_loop ? ch.dhw.data + (filled - b0) * ldx : DHH + t * B * G;
      // Total gradient of state_t: what later steps sent back plus this step's output
      // (zero on masked steps, whose output is zero).
      for (int64_t b = b0; b < b1; ++b) {
        const T* dot = DO + t * do_t + b * do_b;
        add_scaled(DH + b * H, dot, do_j, OM ? OM[t * B + b] : T(1), H);
      }
      if (sq) {
        double sh = 0, sc = 0;
        for (int64_t i = b0 * H; i < b1 * H; ++i) sh += double(DH[i]) * double(DH[i]);
        if (lstm) for (int64_t i = b0 * H; i < b1 * H; ++i) sc += double(DC[i]) * double(DC[i]);
        sq[t * n_norm] += sh;
        if (lstm) sq[t * 2 + 1] += sc;
      }
      for_row_range(b0, b1, G, [&](int64_t b) {
        // Split by keep: k * d goes straight to state_{t-1}; (1 - k) * d enters the cell.
        T* dhb = DH + b * H;
        T* dnb = dnew.data() + b * H;
        split_by_keep(dhb, dnb, KH ? KH + (t * B + b) * khw : nullptr, khw, H);
        const T* gb = g + b * G;
        T* dxb = dx + b * ldx;
        if (kind == 0) {
          mul_dact<T>(c.act, gb, dnb, dxb, H);
        } else if (kind == 1) {
          T* dcb = DC + b * H;
          T* dcnb = dcn.data() + b * H;
          split_by_keep(dcb, dcnb, KC ? KC + (t * B + b) * kcw : nullptr, kcw, H);
          const int64_t row = t * B + b;
          lstm_back_row(c, gb, ex + b * H, CH + t * BH + b * H, dnb, dcnb, dcb, dxb, scratch.data() + b * H, H, lo,
                        row, keep_dat ? dat_step.data() + b * G : nullptr,
                        lo.lnc_g ? dcin_step.data() + b * H : nullptr);
        } else {
          gru_back_row(c, gb, ex ? ex + b * H : nullptr, hp + b * H, dnb, dhb, dxb, dhw ? dhw + b * ldx : nullptr, H);
        }
      });
      T* di = dhin.data();
      if (kind == 3) {
        // r's gradient needs dn @ W_hn first.
        w_n.apply(dx + 2 * H + b0 * ldx, ldx, nb, drh.data() + b0 * H, H, nullptr, 0);
        for_row_range(b0, b1, H, [&](int64_t b) {
          T* dxb = dx + b * ldx;
          const T* d = drh.data() + b * H;
          const T* hb = hin + b * H;
          for (int64_t j = 0; j < H; ++j) dxb[j] = d[j] * hb[j];
          mul_dact<T>(c.ract, g + b * G, dxb, dxb, H);
        });
        w_back.apply(dx + b0 * ldx, ldx, nb, di + b0 * H, H, nullptr, 0);
        for (int64_t b = b0; b < b1; ++b)
          for (int64_t j = 0; j < H; ++j) di[b * H + j] += drh[b * H + j] * g[b * G + j];
      } else {
        w_back.apply((kind == 2 ? dhw : dx) + b0 * ldx, ldx, nb, di + b0 * H, H, nullptr, 0);
      }
      // A step's rows are summed in T, then added once into the double totals: a double add per
      // row and value ran at half the vector width, plus a conversion.
      T* acc = step_sums.data() + id * (n_bias + n_opt);
      std::fill(acc, acc + n_bias + n_opt, T(0));
      for (int64_t b = b0; n_opt && b < b1; ++b) {
        T* o = acc + n_bias;
        const T* da = dat_step.data() + b * G;
        if (lo.ln_g) {
          const T* ah = lo.a_hat + (t * B + b) * G;
          for (int64_t j = 0; j < G; ++j) { o[j] += da[j] * ah[j]; o[G + j] += da[j]; }
          o += 2 * G;
        }
        if (lo.lnc_g) {
          const T* d = dcin_step.data() + b * H;
          const T* chat = lo.c_hat + (t * B + b) * H;
          for (int64_t j = 0; j < H; ++j) { o[j] += d[j] * chat[j]; o[H + j] += d[j]; }
          o += 2 * H;
        }
        if (lo.peep) {
          // The peepholes saw c_{t-1} (input and forget gates) and the new cell before any keep mix.
          const T* cp = CH + t * BH + b * H;
          const T* gb = g + b * G;
          for (int64_t j = 0; j < H; ++j) {
            o[j] += da[j] * cp[j];
            o[H + j] += da[H + j] * cp[j];
            o[2 * H + j] += da[3 * H + j] * (gb[H + j] * cp[j] + gb[j] * gb[2 * H + j]);
          }
        }
      }
      // dx is final here (reset-before fills its r part above).
      if (DIN) w_in->apply(dx + b0 * ldx, ldx, nb, DIN + t * B * F + b0 * F, F, nullptr, 0);
      for (int64_t b = b0; b < b1; ++b) {
        const T* d = dx + b * ldx;
        for (int64_t i = 0; i < G; ++i) acc[i] += d[i];
        if (kind == 2) {
          const T* dw = dhw + b * ldx;
          for (int64_t i = 0; i < G; ++i) acc[G + i] += dw[i];
        }
        if (ch.v_x.active()) {
          if (x16) {
            ch.v_x.push_bf16(XIN16 + t * x_t + b * x_b);
          } else {
            ch.v_x.push(XIN + t * x_t + b * x_b);
          }
        }
        if (ch.v_h.active()) ch.v_h.push(hin + b * H);
        if (ch.v_r.active()) ch.v_r.push(ex + b * H);
      }
      for (int64_t i = 0; i < n_bias; ++i) bias[i] += acc[i];
      for (int64_t i = 0; i < n_opt; ++i) opt[i] += acc[n_bias + i];
      filled += nb;
      // Without in_loop there are no chunks (their rings were never allocated): the caller's
      // GEMMs take dW from the histories, so there is nothing to flush.
      if (in_loop && (t == 0 || filled + nb > cap)) {
        ch.rows = filled;
        flush(id);
        filled = 0;
      }
      // At a cut the graph is severed: state_{t-1} enters window t/k as a constant.
      // (Branches outside the loops, so each vectorises.)
      const bool cut = tbptt > 0 && t % tbptt == 0 && t > 0;
      const int64_t i0 = b0 * H, i1 = b1 * H;
      if (cut) {
        std::fill(DH + i0, DH + i1, T(0));
        if (lstm) std::fill(DC + i0, DC + i1, T(0));
      } else if (RDM) {
        for (int64_t i = i0; i < i1; ++i) DH[i] += di[i] * RDM[i];
      } else {
        for (int64_t i = i0; i < i1; ++i) DH[i] += di[i];
      }
    }
  };
  std::vector<double> sq(NORMS ? bt * T_ * n_norm : 0, 0.0);
  std::vector<double> bias_sums(bt * n_bias, 0.0);
  std::vector<double> opt_sums(bt * n_opt, 0.0);
  if (bt > 1) {
    const at::ThreadLocalState tls;  // as in the forward: the workers run ATen calls
    rnnkit_detail::FirstError error;
#pragma omp parallel num_threads(bt)
    {
      const at::ThreadLocalStateGuard guard(tls);
      const int id = thread_index();
      const auto rows = row_share(B, id, bt);
      error.run([&] {
        check_team(bt);
        rows_loop(id, rows.first, rows.second, NORMS ? sq.data() + id * T_ * n_norm : nullptr,
                  bias_sums.data() + id * n_bias, opt_sums.data() + id * n_opt);
      });
    }
    error.rethrow();
  } else {
    rows_loop(0, 0, B, NORMS ? sq.data() : nullptr, bias_sums.data(), opt_sums.data());
  }
  for (int64_t i = 0; NORMS && i < T_ * n_norm; ++i) {
    double total = 0;
    for (int k = 0; k < bt; ++k) total += sq[k * T_ * n_norm + i];
    NORMS[i] = std::sqrt(total);
  }
  // parts: bt per-thread runs of n sums, added in double, returned in the input's dtype.
  auto thread_total = [&](const std::vector<double>& parts, int64_t n) {
    Tensor total = at::zeros({n}, opts.dtype(at::kDouble));
    double* S = total.data_ptr<double>();
    for (int k = 0; k < bt; ++k)
      for (int64_t i = 0; i < n; ++i) S[i] += parts[k * n + i];
    return total.to(opts.dtype());
  };
  Tensor sums = thread_total(bias_sums, n_bias);
  Tensor db_x = sums.narrow(0, 0, G), db_h = kind == 2 ? sums.narrow(0, G, G) : Tensor();
  for (size_t k = 1; k < dw.size(); ++k) dw[0].add_(dw[k]);
  Tensor dw_hh = want_w_hh ? dw[0].narrow(0, 0, n_hh).view({G, H}) : Tensor();
  Tensor dw_ih = want_w_ih ? dw[0].narrow(0, n_hh, n_ih).view({G, F}) : Tensor();
  Tensor opt_grads = n_opt ? thread_total(opt_sums, n_opt) : Tensor();
  return {in_loop ? d_in : dxw_hist, dh, lstm ? dc : Tensor(), in_loop ? dw_hh : dhw_hist, dw_ih,
          want_norms ? norms.to(opts.dtype()) : Tensor(), opt_grads, db_x, db_h};
}

std::vector<Tensor> forward(int64_t kind, int64_t act, int64_t ract, const Tensor& xw, const Tensor& h0,
                            const c10::optional<Tensor>& c0, const Tensor& w_hh, const c10::optional<Tensor>& b_hh,
                            const c10::optional<Tensor>& keep_h, const c10::optional<Tensor>& keep_c,
                            const c10::optional<Tensor>& out_mask, const c10::optional<Tensor>& rdm,
                            const OptList& lstm_w, bool need_cache, const Tensor& w_ih,
                            const c10::optional<Tensor>& b_x) {
  // xw: the raw (T, B, F) inputs, in any layout whose rows are contiguous (a batch-first
  // input seen time-major); w_ih (G, F).
  Tensor x = xw.stride(2) == 1 ? xw : xw.contiguous();
  TORCH_CHECK(h0.is_contiguous(), "rnnkit kernel: h0 must be contiguous");
  TORCH_CHECK(x.scalar_type() == h0.scalar_type() || (x.scalar_type() == at::kBFloat16 && h0.scalar_type() == at::kFloat),
              "rnnkit kernel: x must have the state's dtype, or be bfloat16 with a float32 state");
  return AT_DISPATCH_FLOATING_TYPES(h0.scalar_type(), "rnnkit_forward", [&] {
    return forward_impl<scalar_t>(Codes{kind, act, ract}, x, h0, opt_or_undef(c0), w_hh, opt_or_undef(b_hh),
                                  opt_or_undef(keep_h), opt_or_undef(keep_c), opt_or_undef(out_mask),
                                  opt_or_undef(rdm), lstm_w, need_cache, w_ih.contiguous(), opt_or_undef(b_x));
  });
}

std::vector<Tensor> backward(int64_t kind, int64_t act, int64_t ract, const Tensor& d_out, const Tensor& d_hT,
                             const c10::optional<Tensor>& d_cT, const Tensor& h_hist,
                             const c10::optional<Tensor>& c_hist, const Tensor& gates,
                             const c10::optional<Tensor>& extra, const c10::optional<Tensor>& hin_all,
                             const Tensor& w_hh, const c10::optional<Tensor>& keep_h,
                             const c10::optional<Tensor>& keep_c, const c10::optional<Tensor>& out_mask,
                             const c10::optional<Tensor>& rdm, const OptList& lstm_w, const OptList& ln_cache,
                             int64_t tbptt, bool want_norms, const Tensor& x, const Tensor& w_ih, bool want_dx,
                             bool want_w_hh, bool want_w_ih, bool in_loop, bool share_dw) {
  TORCH_CHECK(x.scalar_type() == gates.scalar_type() || (x.scalar_type() == at::kBFloat16 && gates.scalar_type() == at::kFloat),
              "rnnkit kernel: x must have the state's dtype, or be bfloat16 with a float32 state");
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnkit_backward", [&] {
    return backward_impl<scalar_t>(Codes{kind, act, ract}, d_out, d_hT, opt_or_undef(d_cT), h_hist, opt_or_undef(c_hist),
                                   gates, opt_or_undef(extra), opt_or_undef(hin_all), w_hh,
                                   opt_or_undef(keep_h), opt_or_undef(keep_c), opt_or_undef(out_mask),
                                   opt_or_undef(rdm), lstm_w, ln_cache, tbptt, want_norms,
                                   x.stride(2) == 1 ? x : x.contiguous(), w_ih.contiguous(), want_dx, want_w_hh,
                                   want_w_ih, in_loop, share_dw);
  });
}

std::vector<Tensor> step(int64_t kind, int64_t act, int64_t ract, const Tensor& x, const Tensor& h,
                         const c10::optional<Tensor>& c, const Tensor& w_ih, const Tensor& w_hh,
                         const c10::optional<Tensor>& b_ih, const c10::optional<Tensor>& b_hh) {
  TORCH_CHECK(x.is_contiguous() && h.is_contiguous(), "rnnkit kernel: inputs must be contiguous");
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_step", [&] {
    return step_impl<scalar_t>(Codes{kind, act, ract}, x, h, opt_or_undef(c).defined() ? opt_or_undef(c).contiguous() : Tensor(),
                               w_ih, w_hh, opt_or_undef(b_ih), opt_or_undef(b_hh));
  });
}

// x (N, K), or (T, B, K) read as its T*B rows in order, -> a contiguous (K, N) copy in a
// cached buffer. The weight gradients are GEMMs reducing over the N = T*B rows, and oneDNN
// wants that operand transposed and contiguous; ATen's copy of a transposed view runs on
// one thread into fresh pages. Any strides: a batch-first input seen time-major is not copied first.
template <typename T> Tensor transpose_impl(const Tensor& x) {
  const bool three = x.dim() == 3;
  const int64_t T_ = three ? x.size(0) : 1, B = three ? x.size(1) : x.size(0), K = x.size(-1), N = T_ * B;
  const int64_t st = three ? x.stride(0) : 0, sb = x.stride(three ? 1 : 0), sk = x.stride(-1);
  Tensor out = rnnkit::pooled_empty({K, N}, x.options());
  const T* src = x.data_ptr<T>();
  T* dst = out.data_ptr<T>();
  constexpr int64_t kb = 32;
  const int64_t row_blocks = (N + kb - 1) / kb;
  // ~16K elements per chunk: the source is usually cold, so even small copies gain from both cores.
  at::parallel_for(0, row_blocks, std::max<int64_t>(1, 16384 / (kb * std::max<int64_t>(1, K))), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i0 = q * kb, i1 = std::min(N, i0 + kb);
      for (int64_t j0 = 0; j0 < K; j0 += kb) {
        const int64_t j1 = std::min(K, j0 + kb);
        for (int64_t i = i0; i < i1; ++i) {
          const T* row = src + (i / B) * st + (i % B) * sb;
          for (int64_t j = j0; j < j1; ++j) dst[j * N + i] = row[j * sk];
        }
      }
    }
  });
  return out;
}

Tensor transpose(const Tensor& x) {
  TORCH_CHECK(x.dim() == 2 || x.dim() == 3, "rnnkit transpose: expected 2 or 3 dimensions, got ", x.dim());
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_transpose", [&] { return transpose_impl<scalar_t>(x); });
}

// ------------------------------------------------------------------- one step under autograd
// For cells stepped by hand in Python (rnnkit.nn.LSTMCell/GRUCell, float32/float64 on the CPU):
// the step's GEMMs through ATen, one pass of the loop's row kernels, and one autograd node whose
// backward is the loop's own row kernels and four GEMMs, where torch's composite lstm_cell and
// gru_cell record a dozen nodes, each a kernel launch forward and back. Kinds 1 (LSTM, sigmoid
// and tanh) and 2 (GRU reset-after); the same math as rnnkit/ops, tested equal to it.
struct CellStep : public torch::autograd::Function<CellStep> {
  using Ctx = torch::autograd::AutogradContext;
  using List = torch::autograd::variable_list;

  // c, b_ih and b_hh may be empty (0,) placeholders: apply() refuses undefined tensors.
  static List forward(Ctx* ctx, int64_t kind, const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih,
                      const Tensor& w_hh, const Tensor& b_ih_in, const Tensor& b_hh_in) {
    // Autocast would turn the GEMMs into bf16; the step runs in its inputs' dtype, as torch's cells.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const Tensor b_ih = b_ih_in.numel() ? b_ih_in : Tensor(), b_hh = b_hh_in.numel() ? b_hh_in : Tensor();
    const int64_t B = x.size(0), H = h.size(1);
    Tensor gates = b_ih.defined() ? at::addmm(b_ih, x, w_ih.t()) : at::mm(x, w_ih.t());  // (B, G)
    Tensor hn = at::empty({B, H}, h.options());
    const Codes codes{kind, 0, 1};
    return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_cell_step", [&] {
      if (kind == 1) {
        gates.addmm_(h, w_hh.t());
        if (b_hh.defined()) gates.add_(b_hh);
        Tensor cn = at::empty({B, H}, h.options()), tanh_c = at::empty({B, H}, h.options());
        const Tensor cc = c.contiguous();
        for (int64_t b = 0; b < B; ++b)
          lstm_row<scalar_t>(codes, gates.data_ptr<scalar_t>() + b * 4 * H, cc.data_ptr<scalar_t>() + b * H,
                             cn.data_ptr<scalar_t>() + b * H, tanh_c.data_ptr<scalar_t>() + b * H,
                             hn.data_ptr<scalar_t>() + b * H, H, LstmOpts<scalar_t>{}, 0);
        ctx->save_for_backward({x, h, cc, w_ih, w_hh, gates, tanh_c});
        ctx->saved_data["kind"] = kind;
        ctx->saved_data["biases"] = b_ih.defined();
        return List{hn, cn};
      }
      Tensor hw = b_hh.defined() ? at::addmm(b_hh, h, w_hh.t()) : at::mm(h, w_hh.t());
      Tensor g = at::empty_like(gates), hn_cache = at::empty({B, H}, h.options());
      const Tensor hc = h.contiguous();
      for (int64_t b = 0; b < B; ++b)
        gru_after_row<scalar_t>(codes, g.data_ptr<scalar_t>() + b * 3 * H, gates.data_ptr<scalar_t>() + b * 3 * H,
                                hw.data_ptr<scalar_t>() + b * 3 * H, hn_cache.data_ptr<scalar_t>() + b * H,
                                hc.data_ptr<scalar_t>() + b * H, hn.data_ptr<scalar_t>() + b * H, H);
      ctx->save_for_backward({x, hc, Tensor(), w_ih, w_hh, g, hn_cache});
      ctx->saved_data["kind"] = kind;
      ctx->saved_data["biases"] = b_ih.defined();
      return List{hn};
    });
  }

  static List backward(Ctx* ctx, List grads) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &h = saved[1], &c = saved[2], &w_ih = saved[3], &w_hh = saved[4], &g = saved[5],
                 &cache = saved[6];
    const int64_t kind = ctx->saved_data["kind"].toInt();
    const bool biases = ctx->saved_data["biases"].toBool();
    const int64_t B = x.size(0), H = h.size(1), G = g.size(1);
    const Codes codes{kind, 0, 1};
    Tensor dh_n = grads[0].defined() ? grads[0].contiguous() : at::zeros({B, H}, h.options());
    Tensor dxw = at::empty({B, G}, h.options());                   // d(x W_ih^T + b_ih)
    Tensor dhw = kind == 2 ? at::empty({B, G}, h.options()) : dxw;  // d(h W_hh^T + b_hh)
    Tensor dh_direct = at::zeros({B, H}, h.options());              // GRU: z * dh, LSTM: dc_{t-1}
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_cell_step_backward", [&] {
      if (kind == 1) {
        Tensor dc_n = grads[1].defined() ? grads[1].contiguous() : at::zeros({B, H}, h.options());
        std::vector<scalar_t> scratch(H);
        for (int64_t b = 0; b < B; ++b)
          lstm_back_row<scalar_t>(codes, g.data_ptr<scalar_t>() + b * G, cache.data_ptr<scalar_t>() + b * H,
                                  c.data_ptr<scalar_t>() + b * H, dh_n.data_ptr<scalar_t>() + b * H,
                                  dc_n.data_ptr<scalar_t>() + b * H, dh_direct.data_ptr<scalar_t>() + b * H,
                                  dxw.data_ptr<scalar_t>() + b * G, scratch.data(), H, LstmOpts<scalar_t>{}, 0,
                                  nullptr, nullptr);
      } else {
        for (int64_t b = 0; b < B; ++b)
          gru_back_row<scalar_t>(codes, g.data_ptr<scalar_t>() + b * G, cache.data_ptr<scalar_t>() + b * H,
                                 h.data_ptr<scalar_t>() + b * H, dh_n.data_ptr<scalar_t>() + b * H,
                                 dh_direct.data_ptr<scalar_t>() + b * H, dxw.data_ptr<scalar_t>() + b * G,
                                 dhw.data_ptr<scalar_t>() + b * G, H);
      }
    });
    // Inputs: kind, x, h, c, w_ih, w_hh, b_ih, b_hh; only the tensors have edges (x is edge 0).
    auto wants = [&](int i) { return ctx->needs_input_grad(i - 1); };
    Tensor dx = wants(1) ? at::mm(dxw, w_ih) : Tensor();
    Tensor dh;
    if (wants(2)) dh = kind == 2 ? dh_direct.addmm_(dhw, w_hh) : at::mm(dhw, w_hh);
    Tensor dc = kind == 1 && wants(3) ? dh_direct : Tensor();
    Tensor dw_ih = wants(4) ? at::mm(dxw.t(), x) : Tensor();
    Tensor dw_hh = wants(5) ? at::mm(dhw.t(), h) : Tensor();
    Tensor db_ih = biases && wants(6) ? dxw.sum(0) : Tensor();
    Tensor db_hh = biases && wants(7) ? dhw.sum(0) : Tensor();
    return {Tensor(), dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh};
  }
};

// -> (h', c') for an LSTM (kind 1), (h',) for a GRU reset-after (kind 2); c and the biases may be None.
std::vector<Tensor> cell_step(int64_t kind, const Tensor& x, const Tensor& h, const c10::optional<Tensor>& c,
                              const Tensor& w_ih, const Tensor& w_hh, const c10::optional<Tensor>& b_ih,
                              const c10::optional<Tensor>& b_hh) {
  TORCH_CHECK(kind == 1 || kind == 2, "rnnkit cell_step: kind must be 1 (LSTM) or 2 (GRU), got ", kind);
  auto given = [&](const c10::optional<Tensor>& t) { return t.has_value() ? t->contiguous() : x.new_empty({0}); };
  return CellStep::apply(kind, x.contiguous(), h.contiguous(), given(c), w_ih.contiguous(), w_hh.contiguous(),
                         given(b_ih), given(b_hh));
}

// The step's weights bound once, so a streaming loop passes only x and the state.
struct Stepper {
  int64_t kind, act, ract;
  Tensor w_ih, w_hh, b_ih, b_hh;
  std::vector<Tensor> step(const Tensor& x, const Tensor& h, const c10::optional<Tensor>& c) const {
    return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_stepper", [&] {
      return step_impl<scalar_t>(Codes{kind, act, ract}, x, h, opt_or_undef(c), w_ih, w_hh, b_ih, b_hh);
    });
  }
};


// ------------------------------------------------ the operators rnnkit::compiled_forward / compiled_backward
//
// Their schemas, fake (shape) implementations and autograd formula are registered in Python
// when rnnkit is imported (engine/library.py, which documents the arguments); these are their
// CPU kernels, registered when this module loads (TORCH_LIBRARY_IMPL below), so that a
// compiled or exported graph calls the loop without a Python layer in between. An operator's
// outputs may alias neither its inputs nor each other, and a tensor that a configuration does
// not have is a fresh empty (0,) placeholder: operators return no None.

using OptTensor = c10::optional<Tensor>;

int64_t kind_code(c10::string_view kind, bool reset_after) {  // as kernels.kind_code
  if (kind == c10::string_view("rnn")) return 0;
  if (kind == c10::string_view("lstm")) return 1;
  TORCH_CHECK(kind == c10::string_view("gru"), "rnnkit::compiled_forward: unknown cell kind ", kind);
  return reset_after ? 2 : 3;
}

int64_t act_code(c10::string_view name) {  // as kernels.ACT_CODES
  const char* names[] = {"tanh", "sigmoid", "relu", "hard_sigmoid", "linear"};
  for (int64_t i = 0; i < 5; ++i)
    if (name == c10::string_view(names[i])) return i;
  TORCH_CHECK(false, "rnnkit::compiled_forward: unknown activation ", name);
}

Tensor contiguous_or_undef(const OptTensor& t) { return t.has_value() && t->defined() ? t->contiguous() : Tensor(); }
bool given(const OptTensor& t) { return t.has_value() && t->defined(); }
Tensor placeholder(const Tensor& like) { return at::empty({0}, like.options()); }
Tensor or_placeholder(const Tensor& t, const Tensor& like) { return t.defined() ? t : placeholder(like); }

// A copy of each output that shares memory with an earlier one (the backward's weight and
// bias gradients are views of one buffer each).
void unalias(std::vector<Tensor>& outputs) {
  for (size_t i = 1; i < outputs.size(); ++i) {
    if (!outputs[i].numel()) continue;
    for (size_t j = 0; j < i; ++j) {
      if (outputs[j].numel() && outputs[i].is_alias_of(outputs[j])) {
        outputs[i] = outputs[i].clone();
        break;
      }
    }
  }
}

template <size_t... I> auto as_tuple(const std::vector<Tensor>& v, std::index_sequence<I...>) {
  return std::make_tuple(v[I]...);
}
template <size_t N> auto as_tuple(const std::vector<Tensor>& v) {
  TORCH_INTERNAL_ASSERT(v.size() == N);
  return as_tuple(v, std::make_index_sequence<N>());
}

// oneDNN's linear (mkldnn::_linear_pointwise) where torch has it: for float32 about twice
// torch.mm's speed on these shapes (engine/blas.py, which makes the same choice in Python).
const c10::OperatorHandle* onednn_linear() {
  static const c10::OperatorHandle* op = []() -> const c10::OperatorHandle* {
    if (!at::hasMKLDNN()) return nullptr;
    static auto found = c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
    return found.has_value() ? &*found : nullptr;
  }();
  return op;
}

// a (N, K) @ w (M, K)^T -> (N, M), as blas.linear without a bias.
Tensor linear_nt(const Tensor& a, const Tensor& w) {
  const c10::OperatorHandle* op = onednn_linear();
  if (op == nullptr || a.scalar_type() != at::kFloat) return at::linear(a, w);
  // A strided slice sends oneDNN down a path ~1000x slower.
  const Tensor wc = w.is_contiguous() || w.t().is_contiguous() ? w : w.contiguous();
  torch::jit::Stack stack{a, wc, c10::IValue(), std::string("none"),
                          c10::impl::GenericList(c10::OptionalType::create(c10::NumberType::get())), std::string("")};
  op->callBoxed(&stack);
  return stack.back().toTensor();
}

// dy (N, M)^T @ x (N, K) -> (M, K), x also (T, B, K) read as T*B rows; as blas.weight_grad.
Tensor weight_grad(const Tensor& dy, const Tensor& x) {
  if (onednn_linear() != nullptr && x.scalar_type() == at::kFloat) return linear_nt(transpose(x), dy.t()).t();
  return linear_nt(x.reshape({-1, x.size(-1)}).t(), dy.t()).t();
}

// compiled._grads_from_histories: dx, dW_hh, dW_ih from the loop's d(xw) (and GRU reset-after's
// d(W_hh h + b_hh)) histories, one GEMM each over all T*B rows.
void grads_from_histories(int64_t kind, const Tensor& dxw, const Tensor& dhw, const Tensor& h_hist,
                          const Tensor& hin_all, const Tensor& extra, const Tensor& x, const Tensor& w_ih,
                          bool want_dx, bool want_w_hh, bool want_w_ih, Tensor& d_in, Tensor& dw_hh, Tensor& dw_ih) {
  const int64_t T_ = dxw.size(0), B = dxw.size(1), G = dxw.size(2), H = h_hist.size(2);
  const Tensor hin = (hin_all.defined() ? hin_all : h_hist.narrow(0, 0, T_)).reshape({T_ * B, H});
  const Tensor d2 = dxw.reshape({T_ * B, G});
  dw_hh = Tensor();
  if (want_w_hh) {
    if (kind == 2) {  // GRU reset-after: W_hh sees d(W_hh h + b_hh), not d(xw)
      dw_hh = weight_grad(dhw.reshape({T_ * B, G}), hin);
    } else if (kind == 3) {  // GRU reset-before: the n rows multiply r * h
      dw_hh = at::cat({weight_grad(d2.narrow(1, 0, 2 * H), hin),
                       weight_grad(d2.narrow(1, 2 * H, G - 2 * H), extra.reshape({T_ * B, H}))});
    } else {
      dw_hh = weight_grad(d2, hin);
    }
  }
  d_in = want_dx ? linear_nt(d2, w_ih.t()).reshape({T_, B, -1}) : Tensor();
  dw_ih = want_w_ih ? weight_grad(d2, x.to(d2.scalar_type())) : Tensor();  // x may be bf16 (exact in float)
}

auto compiled_forward_op(const Tensor& x, const Tensor& h0, const OptTensor& c0, const OptTensor& w_ih,
                         const Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh, const OptTensor& w_hr,
                         const OptTensor& peephole, const OptTensor& ln_gamma, const OptTensor& ln_beta,
                         const OptTensor& ln_cell_gamma, const OptTensor& ln_cell_beta, const OptTensor& keep_h,
                         const OptTensor& keep_c, const OptTensor& out_mask, const OptTensor& rdm,
                         const OptTensor& probe, c10::string_view kind, c10::string_view activation,
                         c10::string_view recurrent_activation, bool reset_after, int64_t tbptt, bool need_cache) {
  // -> (out, h_n, c_n, h_hist, c_hist, gates, extra, hin_all, a_hat, rstd, c_hat, rstd_c)
  TORCH_CHECK(given(w_ih) && !given(w_hr), "rnnkit::compiled_forward: needs weight_ih and no weight_hr");
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // as in the backward
  const int64_t k = kind_code(kind, reset_after);
  const bool lstm = k == 1;
  const int64_t T_ = x.size(0);
  const OptList lstm_w{contiguous_or_undef(peephole), contiguous_or_undef(ln_gamma), contiguous_or_undef(ln_beta),
                       contiguous_or_undef(ln_cell_gamma), contiguous_or_undef(ln_cell_beta)};
  const std::vector<Tensor> res = forward(
      k, act_code(activation), act_code(recurrent_activation), x, h0.contiguous(),
      lstm ? contiguous_or_undef(c0) : Tensor(), w_hh.contiguous(), contiguous_or_undef(b_hh),
      contiguous_or_undef(keep_h), lstm ? contiguous_or_undef(keep_c) : Tensor(), contiguous_or_undef(out_mask),
      contiguous_or_undef(rdm), lstm_w, need_cache, *w_ih, contiguous_or_undef(b_ih));
  // Every output has the state's dtype: x may be bf16 (autocast).
  std::vector<Tensor> outs;
  if (!need_cache) {  // res: out, h_n, (c_n)
    outs = {res[0], res[1], lstm ? res[2] : placeholder(h0)};
  } else {  // res: out, h_hist, c_hist, gates, extra, hin_all, a_hat, rstd, c_hat, rstd_c
    // An Elman cell without a keep mix saves no gates: they are a view of h_hist[1:].
    const bool gates_are_h = k == 0 && !given(keep_h);
    outs = {res[0], res[1][T_].clone(), lstm ? res[2][T_].clone() : placeholder(h0), res[1],
            or_placeholder(res[2], h0), gates_are_h ? placeholder(h0) : res[3]};
    for (size_t i = 4; i < res.size(); ++i) outs.push_back(or_placeholder(res[i], h0));
  }
  while (outs.size() < 12) outs.push_back(placeholder(h0));
  return as_tuple<12>(outs);
}

auto compiled_backward_op(const Tensor& d_out, const OptTensor& d_h, const OptTensor& d_c, const Tensor& x,
                          const OptTensor& w_ih, const Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
                          const OptTensor& w_hr, const OptTensor& peephole, const OptTensor& ln_gamma,
                          const OptTensor& ln_beta, const OptTensor& ln_cell_gamma, const OptTensor& ln_cell_beta,
                          const OptTensor& keep_h, const OptTensor& keep_c, const OptTensor& out_mask,
                          const OptTensor& rdm, const Tensor& h_hist, const Tensor& c_hist, const Tensor& gates,
                          const Tensor& extra, const Tensor& hin_all, const Tensor& a_hat, const Tensor& rstd,
                          const Tensor& c_hat, const Tensor& rstd_c, c10::string_view kind,
                          c10::string_view activation, c10::string_view recurrent_activation, bool reset_after,
                          int64_t tbptt, bool want_norms, c10::List<bool> wants, bool in_loop, bool share_grads) {
  // -> (dx, dh0, dc0, the ten weights' gradients in Weights order, norms); wants: x, then each weight.
  TORCH_CHECK(given(w_ih) && wants.size() == 11, "rnnkit::compiled_backward: needs weight_ih and 11 wants");
  // The ATen calls below are the kernel's own work, never recorded by autograd (compiled_backward
  // has no autograd formula, and its inputs may require grad).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t k = kind_code(kind, reset_after);
  const bool lstm = k == 1;
  const int64_t T_ = x.size(0), H = h_hist.size(2);
  const bool ln = given(ln_gamma), ln_cell = given(ln_cell_gamma), dropout = given(rdm);
  const Tensor gates_ = k == 0 && !given(keep_h) ? h_hist.narrow(0, 1, T_) : gates;
  const Tensor d_hT = given(d_h) ? d_h->contiguous() : at::zeros_like(h_hist[0]);
  const Tensor d_cT = !lstm ? Tensor() : given(d_c) ? d_c->contiguous() : at::zeros_like(c_hist[0]);
  const OptList lstm_w{contiguous_or_undef(peephole), contiguous_or_undef(ln_gamma), contiguous_or_undef(ln_beta),
                       contiguous_or_undef(ln_cell_gamma), contiguous_or_undef(ln_cell_beta)};
  const OptList ln_cache{ln ? a_hat : Tensor(), ln ? rstd : Tensor(), ln_cell ? c_hat : Tensor(),
                         ln_cell ? rstd_c : Tensor()};
  const bool want_dx = wants[0], want_w_ih = wants[1], want_w_hh = wants[2];
  // r: d_in (or the d(xw) history), dh0, dc0, dW_hh (or GRU's d(W_hh h + b_hh) history), dW_ih,
  //    norms, the LSTM options' summed gradients, db_x, db_h
  const std::vector<Tensor> r = backward(
      k, act_code(activation), act_code(recurrent_activation), d_out, d_hT, d_cT, h_hist, lstm ? c_hist : Tensor(),
      gates_, k != 0 ? extra : Tensor(), dropout ? hin_all : Tensor(), w_hh.contiguous(), contiguous_or_undef(keep_h),
      lstm ? contiguous_or_undef(keep_c) : Tensor(), contiguous_or_undef(out_mask), dropout ? *rdm : Tensor(), lstm_w,
      ln_cache, tbptt, want_norms, x, *w_ih, want_dx, want_w_hh, want_w_ih, in_loop, share_grads);
  Tensor d_in = r[0], dw_hh = r[3], dw_ih = r[4];
  if (!in_loop)
    grads_from_histories(k, r[0], r[3], h_hist, dropout ? hin_all : Tensor(), extra, x, *w_ih, want_dx, want_w_hh,
                         want_w_ih, d_in, dw_hh, dw_ih);
  if (d_in.defined()) d_in = d_in.to(x.scalar_type());  // bf16 when x is
  // Weights order: weight_ih, weight_hh, bias_ih, bias_hh, weight_hr, peephole, ln_gamma, ln_beta,
  // ln_cell_gamma, ln_cell_beta. The options' sums: [ln_gamma 4H, ln_beta 4H, ln_cell_gamma H,
  // ln_cell_beta H, peephole 3H], each part present only with its option.
  const OptTensor* weights[] = {&w_ih, nullptr, &b_ih, &b_hh, &w_hr, &peephole, &ln_gamma, &ln_beta,
                                &ln_cell_gamma, &ln_cell_beta};
  Tensor grads[10] = {dw_ih, dw_hh, r[7], r[8]};
  if (lstm && r[6].defined()) {
    int64_t at_ = 0;
    auto take = [&](int64_t n) { at_ += n; return r[6].narrow(0, at_ - n, n); };
    if (ln) grads[6] = take(4 * H), grads[7] = take(4 * H);
    if (ln_cell) grads[8] = take(H), grads[9] = take(H);
    if (given(peephole)) grads[5] = take(3 * H);
  }
  std::vector<Tensor> outs{or_placeholder(d_in, d_out), r[1], lstm ? r[2] : placeholder(d_out)};
  for (int i = 0; i < 10; ++i) {
    const Tensor& w = i == 1 ? w_hh : given(*weights[i]) ? **weights[i] : Tensor();
    if (!w.defined() || !wants[i + 1]) {
      outs.push_back(placeholder(w_hh));
    } else {  // zeros where the loop had none to give
      outs.push_back(grads[i].defined() ? grads[i].reshape(w.sizes()) : at::zeros_like(w));
    }
  }
  outs.push_back(want_norms ? r[5] : placeholder(d_out));
  unalias(outs);
  return as_tuple<14>(outs);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // The long calls release the GIL, as torch's own ops do, so other Python threads (a data
  // loader, a second model) run meanwhile; the one-step calls are too short to be worth it.
  using release_gil = pybind11::call_guard<pybind11::gil_scoped_release>;
  m.def("forward", &forward, "rnnkit recurrence forward", release_gil());
  m.def("backward", &backward, "rnnkit recurrence backward (BPTT)", release_gil());
  m.def("step", &step, "one inference step");
  m.def("cell_step", &cell_step, "one LSTM / GRU step under autograd, for cells stepped by hand");
  m.def("transpose", &transpose, "contiguous transpose of a matrix, in a cached buffer", release_gil());
  m.def("bf16_kernel", [] {
        const int mode = bf16_mode();
        return mode == kAmx ? "amx" : mode == kBf16 ? "avx512_bf16" : "emulated";
      }, "how bf16 GEMMs run: AMX, AVX512-BF16, or float math on bf16-rounded operands");
  m.def("pool_release", [] { return rnnkit::BufferPool::get().release(); }, "free the cached buffers");
  m.def("pool_cached_bytes", [] { return rnnkit::BufferPool::get().cached_bytes(); }, "bytes held for reuse");
  pybind11::class_<Stepper>(m, "Stepper")
      .def(pybind11::init([](int64_t kind, int64_t act, int64_t ract, const Tensor& w_ih, const Tensor& w_hh,
                             const c10::optional<Tensor>& b_ih, const c10::optional<Tensor>& b_hh) {
        return Stepper{kind, act, ract, w_ih.contiguous(), w_hh.contiguous(),
                       b_ih ? b_ih->contiguous() : Tensor(), b_hh ? b_hh->contiguous() : Tensor()};
      }))
      .def("step", &Stepper::step);
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("compiled_forward", &compiled_forward_op);
  m.impl("compiled_backward", &compiled_backward_op);
}
