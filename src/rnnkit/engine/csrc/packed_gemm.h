// A small-M GEMM against a matrix packed once per sequence.
//
// The recurrent matmul multiplies a (B, K) state by the same (K, N) weight at
// every step. A general BLAS call re-packs the weight each time, which costs as
// much as the arithmetic at B = 16..64; here the weight is packed once into
// 32-column panels, Bp[panel][k][0..31], and each step streams the panels
// through an 8 x 32 AVX-512 register tile. Without AVX-512 the caller falls
// back to ATen's GEMM.

#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#if defined(__linux__) && defined(__GNUC__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define RNNKIT_PACKED_GEMM 1
#else
#define RNNKIT_PACKED_GEMM 0
#endif

namespace rnnkit {

constexpr int64_t kPanel = 32;

struct PackedB {
  // ceil(N / 32) panels of K x 32, zero-padded columns, starting on a cache line: every
  // 64-byte panel row load then touches one line, not two (a plain vector is only
  // 16-byte aligned, and the misaligned case ran the GEMM at half speed).
  std::vector<float> storage;
  float* data = nullptr;
  int64_t K = 0, N = 0;
  int64_t panels() const { return (N + kPanel - 1) / kPanel; }
};

// Pack B (K x N), given by element strides, as B[k][n] = src[k * sk + n * sn].
inline void pack_b(PackedB& p, const float* src, int64_t K, int64_t N, int64_t sk, int64_t sn) {
  p.K = K;
  p.N = N;
  p.storage.assign(static_cast<size_t>(p.panels() * K * kPanel + 16), 0.0f);
  const auto addr = reinterpret_cast<std::uintptr_t>(p.storage.data());
  p.data = p.storage.data() + ((64 - addr % 64) % 64) / sizeof(float);
  for (int64_t q = 0; q < p.panels(); ++q) {
    float* dst = p.data + q * K * kPanel;
    const int64_t n0 = q * kPanel, nw = std::min<int64_t>(kPanel, N - n0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < nw; ++j) dst[k * kPanel + j] = src[k * sk + (n0 + j) * sn];
  }
}

#if RNNKIT_PACKED_GEMM
// C[r, n0 .. n0+31] = (init ? init[r, ...] : 0) + sum_k A[r, k] * panel[k, :], for R rows.
template <int R>
inline void tile(const float* A, int64_t lda, const float* panel, int64_t K, float* C, int64_t ldc,
                 const float* init, int64_t ldi, __mmask16 m0, __mmask16 m1) {
  // Every loop over r is unrolled in full, so the accumulators live in registers; a
  // non-inlined copy of this tile otherwise kept them on the stack between the loops.
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc0[r] = init ? _mm512_maskz_loadu_ps(m0, init + r * ldi) : _mm512_setzero_ps();
    acc1[r] = init ? _mm512_maskz_loadu_ps(m1, init + r * ldi + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_loadu_ps(panel + k * kPanel);
    const __m512 b1 = _mm512_loadu_ps(panel + k * kPanel + 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
      acc0[r] = _mm512_fmadd_ps(a, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(a, b1, acc1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(C + r * ldc, m0, acc0[r]);
    _mm512_mask_storeu_ps(C + r * ldc + 16, m1, acc1[r]);
  }
}
#endif

#if RNNKIT_PACKED_GEMM
// Columns 32q .. 32q+31 of C = init + A @ B, all M rows, on the calling thread.
inline void gemm_panel(const float* A, int64_t lda, const PackedB& B, int64_t q, int64_t M, float* C, int64_t ldc,
                       const float* init, int64_t ldi) {
  const int64_t K = B.K, n0 = q * kPanel, nw = std::min<int64_t>(kPanel, B.N - n0);
  const __mmask16 m0 = nw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nw) - 1);
  const __mmask16 m1 = nw >= 32 ? 0xFFFF : (nw <= 16 ? 0 : static_cast<__mmask16>((1u << (nw - 16)) - 1));
  const float* panel = B.data + q * K * kPanel;
  int64_t r = 0;
  for (; r + 8 <= M; r += 8)
    tile<8>(A + r * lda, lda, panel, K, C + r * ldc + n0, ldc, init ? init + r * ldi + n0 : nullptr, ldi, m0, m1);
  const float* a = A + r * lda;
  float* c = C + r * ldc + n0;
  const float* in = init ? init + r * ldi + n0 : nullptr;
  switch (M - r) {
    case 7: tile<7>(a, lda, panel, K, c, ldc, in, ldi, m0, m1); break;
    case 6: tile<6>(a, lda, panel, K, c, ldc, in, ldi, m0, m1); break;
    case 5: tile<5>(a, lda, panel, K, c, ldc, in, ldi, m0, m1); break;
    case 4: tile<4>(a, lda, panel, K, c, ldc, in, ldi, m0, m1); break;
    case 3: tile<3>(a, lda, panel, K, c, ldc, in, ldi, m0, m1); break;
    case 2: tile<2>(a, lda, panel, K, c, ldc, in, ldi, m0, m1); break;
    case 1: tile<1>(a, lda, panel, K, c, ldc, in, ldi, m0, m1); break;
    default: break;
  }
}
#endif

#if RNNKIT_PACKED_GEMM
// C[0..rows, 0..32) += sum over K rows k of a_k^T b_k: a_k = A + k * lda, of which 8 values are
// read (those past `rows` are multiplied and dropped, so the caller pads its rows), and
// b_k = b + 32 k, a row of a 32-column panel. The outer-product form of `tile`, for weight
// gradients, which sum over rows rather than multiply along them.
inline void outer_tile(const float* A, int64_t lda, const float* b, int64_t K, float* C, int64_t ldc, int rows,
                       __mmask16 m0, __mmask16 m1) {
  __m512 acc0[8], acc1[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * kPanel);
    const __m512 b1 = _mm512_loadu_ps(b + k * kPanel + 16);
    const float* a = A + k * lda;
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
  }
  // A constant trip count with the row test inside, so the accumulators stay in registers
  // (indexed by a run-time bound, gcc keeps them on the stack).
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) {
    if (r < rows) {
      float* c = C + r * ldc;
      _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), acc0[r]));
      _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), acc1[r]));
    }
  }
}
#endif

// C (M x N, row stride ldc) += sum over K rows k of a_k^T b_k, with a_k = A + k * lda (M values,
// readable up to a multiple of 8) and the b rows stored as ceil(N / 32) zero-padded panels of
// K x 32 (panel stride sb).
inline void outer_accumulate(const float* A, int64_t lda, int64_t M, const float* B, int64_t sb, int64_t N, int64_t K,
                             float* C, int64_t ldc) {
#if RNNKIT_PACKED_GEMM
  const int64_t qn = (N + kPanel - 1) / kPanel, pm = (M + 7) / 8;
  const int64_t grain = M * N * K < (1 << 18) ? qn : 1;  // as gemm_packed
  at::parallel_for(0, qn, grain, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t nw = std::min<int64_t>(kPanel, N - q * kPanel);
      const __mmask16 m0 = nw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nw) - 1);
      const __mmask16 m1 = nw >= 32 ? 0xFFFF : (nw <= 16 ? 0 : static_cast<__mmask16>((1u << (nw - 16)) - 1));
      for (int64_t p = 0; p < pm; ++p)
        outer_tile(A + p * 8, lda, B + q * sb, K, C + p * 8 * ldc + q * kPanel, ldc,
                   static_cast<int>(std::min<int64_t>(8, M - p * 8)), m0, m1);
    }
  });
#else
  (void)A; (void)lda; (void)M; (void)B; (void)sb; (void)N; (void)K; (void)C; (void)ldc;
#endif
}

// C (M x N, row stride ldc) = init (same layout, may be null) + A (M x K, row stride lda) @ B.
inline void gemm_packed(const float* A, int64_t lda, const PackedB& B, int64_t M, float* C, int64_t ldc,
                        const float* init, int64_t ldi) {
#if RNNKIT_PACKED_GEMM
  const int64_t work = M * B.K * B.panels() * kPanel;
  // One thread below ~0.5 MFLOP of work per step: waking the second costs more than it saves.
  const int64_t grain = work < (1 << 18) ? B.panels() : 1;
  at::parallel_for(0, B.panels(), grain, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) gemm_panel(A, lda, B, q, M, C, ldc, init, ldi);
  });
#else
  (void)A; (void)lda; (void)B; (void)M; (void)C; (void)ldc; (void)init; (void)ldi;
#endif
}

// ------------------------------------------------------------ bf16 operands, fp32 accumulation
// For bf16 autocast: the same GEMMs with both operands rounded to bfloat16 and the products
// summed in float32. With AVX512-BF16 (checked at run time, so one build runs anywhere) each
// vdpbf16ps multiplies pairs of bf16 along K into 16 float sums: the weight is packed as K/2
// rows of 32 column pairs, B[2k][n], B[2k+1][n] side by side, and A is read as bf16 pairs.
// Without it, the caller rounds both operands to bf16 values and runs the float kernel: the
// same products (a bf16 product is exact in float), summed in another order.

// float -> bf16 bits, round to nearest even (as torch's cast), NaN kept a quiet NaN.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? ((u >> 16) | 0x40u) : rounded);
}

inline float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline float round_bf16(float f) { return from_bf16(to_bf16(f)); }

struct PackedB16 {
  // ceil(N / 32) panels of ceil(K / 2) rows of 64 bf16 (32 column pairs), zero-padded, 64-byte aligned.
  std::vector<uint16_t> storage;
  uint16_t* data = nullptr;
  int64_t K = 0, K2 = 0, N = 0;
  int64_t panels() const { return (N + kPanel - 1) / kPanel; }
};

// Pack B (K x N), B[k][n] = src[k * sk + n * sn] (float), as bf16 column pairs; the pair rows
// are zero-padded to a multiple of k2_align (AMX multiplies 16 pair rows at a time).
inline void pack_b_bf16(PackedB16& p, const float* src, int64_t K, int64_t N, int64_t sk, int64_t sn,
                        int64_t k2_align = 1) {
  p.K = K;
  p.K2 = ((K + 1) / 2 + k2_align - 1) / k2_align * k2_align;
  p.N = N;
  p.storage.assign(static_cast<size_t>(p.panels() * p.K2 * 2 * kPanel + 32), 0);
  const auto addr = reinterpret_cast<std::uintptr_t>(p.storage.data());
  p.data = p.storage.data() + ((64 - addr % 64) % 64) / sizeof(uint16_t);
  for (int64_t q = 0; q < p.panels(); ++q) {
    uint16_t* dst = p.data + q * p.K2 * 2 * kPanel;
    const int64_t n0 = q * kPanel, nw = std::min<int64_t>(kPanel, N - n0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < nw; ++j) dst[(k / 2) * 2 * kPanel + 2 * j + (k & 1)] = to_bf16(src[k * sk + (n0 + j) * sn]);
  }
}

// Whether this CPU runs vdpbf16ps (AVX512-BF16), asked once.
inline bool cpu_has_avx512_bf16() {
#if RNNKIT_PACKED_GEMM && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

#if RNNKIT_PACKED_GEMM && defined(__GNUC__)
#define RNNKIT_BF16_KERNEL 1
// Only these functions use AVX512-BF16 instructions; they run only after cpu_has_avx512_bf16().
#define RNNKIT_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// As `tile`, from bf16 pairs: A rows hold K2 pairs (lda in bf16 values, even), panel K2 x 64 bf16.
template <int R>
RNNKIT_BF16_TARGET inline void tile_bf16(const uint16_t* A, int64_t lda, const uint16_t* panel, int64_t K2, float* C,
                                         int64_t ldc, const float* init, int64_t ldi, __mmask16 m0, __mmask16 m1) {
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc0[r] = init ? _mm512_maskz_loadu_ps(m0, init + r * ldi) : _mm512_setzero_ps();
    acc1[r] = init ? _mm512_maskz_loadu_ps(m1, init + r * ldi + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K2; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + k * 2 * kPanel);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + k * 2 * kPanel + kPanel);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, A + r * lda + 2 * k, sizeof(pair));
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      acc0[r] = _mm512_dpbf16_ps(acc0[r], a, b0);
      acc1[r] = _mm512_dpbf16_ps(acc1[r], a, b1);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(C + r * ldc, m0, acc0[r]);
    _mm512_mask_storeu_ps(C + r * ldc + 16, m1, acc1[r]);
  }
}

// As `gemm_panel`, from bf16 pairs.
RNNKIT_BF16_TARGET inline void gemm_panel_bf16(const uint16_t* A, int64_t lda, const PackedB16& B, int64_t q, int64_t M,
                                               float* C, int64_t ldc, const float* init, int64_t ldi) {
  const int64_t K2 = B.K2, n0 = q * kPanel, nw = std::min<int64_t>(kPanel, B.N - n0);
  const __mmask16 m0 = nw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nw) - 1);
  const __mmask16 m1 = nw >= 32 ? 0xFFFF : (nw <= 16 ? 0 : static_cast<__mmask16>((1u << (nw - 16)) - 1));
  const uint16_t* panel = B.data + q * K2 * 2 * kPanel;
  int64_t r = 0;
  for (; r + 8 <= M; r += 8)
    tile_bf16<8>(A + r * lda, lda, panel, K2, C + r * ldc + n0, ldc, init ? init + r * ldi + n0 : nullptr, ldi, m0, m1);
  const uint16_t* a = A + r * lda;
  float* c = C + r * ldc + n0;
  const float* in = init ? init + r * ldi + n0 : nullptr;
  switch (M - r) {
    case 7: tile_bf16<7>(a, lda, panel, K2, c, ldc, in, ldi, m0, m1); break;
    case 6: tile_bf16<6>(a, lda, panel, K2, c, ldc, in, ldi, m0, m1); break;
    case 5: tile_bf16<5>(a, lda, panel, K2, c, ldc, in, ldi, m0, m1); break;
    case 4: tile_bf16<4>(a, lda, panel, K2, c, ldc, in, ldi, m0, m1); break;
    case 3: tile_bf16<3>(a, lda, panel, K2, c, ldc, in, ldi, m0, m1); break;
    case 2: tile_bf16<2>(a, lda, panel, K2, c, ldc, in, ldi, m0, m1); break;
    case 1: tile_bf16<1>(a, lda, panel, K2, c, ldc, in, ldi, m0, m1); break;
    default: break;
  }
}
#else
#define RNNKIT_BF16_KERNEL 0
#endif

// C (M x N) = init + A @ B with A as bf16 rows of lda values (lda even, zero past K), B packed
// by pack_b_bf16. Only when cpu_has_avx512_bf16().
inline void gemm_packed_bf16(const uint16_t* A, int64_t lda, const PackedB16& B, int64_t M, float* C, int64_t ldc,
                             const float* init, int64_t ldi) {
#if RNNKIT_BF16_KERNEL
  const int64_t work = M * B.K * B.panels() * kPanel / 2;  // half the float kernel's time per product
  const int64_t grain = work < (1 << 18) ? B.panels() : 1;
  at::parallel_for(0, B.panels(), grain, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) gemm_panel_bf16(A, lda, B, q, M, C, ldc, init, ldi);
  });
#else
  (void)A; (void)lda; (void)B; (void)M; (void)C; (void)ldc; (void)init; (void)ldi;
#endif
}

#if RNNKIT_BF16_KERNEL
// As `outer_tile`, over K2 pairs of rows: a_k = A + k * lda holds 8 (or more) pairs of bf16,
// (a[2k][m], a[2k+1][m]) for m = 0..7, and b + 64 k the same rows of a 32-column panel as pairs.
RNNKIT_BF16_TARGET inline void outer_tile_bf16(const uint32_t* A, int64_t lda, const uint16_t* b, int64_t K2, float* C,
                                               int64_t ldc, int rows, __mmask16 m0, __mmask16 m1) {
  __m512 acc0[8], acc1[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K2; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + k * 2 * kPanel);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + k * 2 * kPanel + kPanel);
    const uint32_t* a = A + k * lda;
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
      acc0[r] = _mm512_dpbf16_ps(acc0[r], av, b0);
      acc1[r] = _mm512_dpbf16_ps(acc1[r], av, b1);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) {
    if (r < rows) {
      float* c = C + r * ldc;
      _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), acc0[r]));
      _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), acc1[r]));
    }
  }
}

// Column panel q of outer_accumulate_bf16, all M rows.
RNNKIT_BF16_TARGET inline void outer_panel_bf16(const uint32_t* A, int64_t lda, int64_t M, const uint16_t* b, int64_t q,
                                                int64_t N, int64_t K2, float* C, int64_t ldc) {
  const int64_t nw = std::min<int64_t>(kPanel, N - q * kPanel), pm = (M + 7) / 8;
  const __mmask16 m0 = nw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nw) - 1);
  const __mmask16 m1 = nw >= 32 ? 0xFFFF : (nw <= 16 ? 0 : static_cast<__mmask16>((1u << (nw - 16)) - 1));
  for (int64_t p = 0; p < pm; ++p)
    outer_tile_bf16(A + p * 8, lda, b, K2, C + p * 8 * ldc + q * kPanel, ldc, static_cast<int>(std::min<int64_t>(8, M - p * 8)),
                    m0, m1);
}
#endif

// As `outer_accumulate` from bf16 pairs: C (M x N) += sum over K2 row pairs k of the pairs' products,
// A + k * lda holding M pairs (readable up to a multiple of 8), B ceil(N / 32) panels of K2 x 64
// bf16 (panel stride sb). Only when cpu_has_avx512_bf16().
inline void outer_accumulate_bf16(const uint32_t* A, int64_t lda, int64_t M, const uint16_t* B, int64_t sb, int64_t N,
                                  int64_t K2, float* C, int64_t ldc) {
#if RNNKIT_BF16_KERNEL
  const int64_t qn = (N + kPanel - 1) / kPanel;
  const int64_t grain = M * N * K2 < (1 << 17) ? qn : 1;  // as outer_accumulate (K2 pairs = 2 K2 rows)
  at::parallel_for(0, qn, grain, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) outer_panel_bf16(A, lda, M, B + q * sb, q, N, K2, C, ldc);
  });
#else
  (void)A; (void)lda; (void)M; (void)B; (void)sb; (void)N; (void)K2; (void)C; (void)ldc;
#endif
}

// ------------------------------------------------------------------------------ AMX
// Where the CPU has AMX (Sapphire Rapids on), a tile instruction multiplies 16 x 32 bf16 by
// 32 x 16 bf16 into 16 x 16 float sums: 16 times vdpbf16ps's work per instruction, which alone
// runs no more products per cycle than float FMAs. Linux hands out the tile registers only on
// request (arch_prctl), once per process.
inline bool cpu_has_amx_bf16() {
#if RNNKIT_BF16_KERNEL && defined(__linux__)
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((d >> 22) & 1u) || !((d >> 24) & 1u)) return false;  // AMX-BF16, AMX-TILE
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return cpu_has_avx512_bf16() && syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return has;
#else
  return false;
#endif
}

#if RNNKIT_BF16_KERNEL && defined(__linux__)
#define RNNKIT_AMX_KERNEL 1
#define RNNKIT_AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,amx-tile,amx-bf16")))

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Panels [q0, q1) of C (M x N) = init + A @ B. A: Mpad rows (a multiple of 32; those past M are
// read, not stored) of lda bf16 (a multiple of 32, zero past K); B: panels of K2 pair rows (a
// multiple of 16) of 64 bf16, panel stride sb, as pack_b_bf16 lays them out. Tiles 0-3 hold a
// 32 x 32 block of sums, 4-5 two 16-row slices of A, 6-7 two 16-column halves of a panel.
RNNKIT_AMX_TARGET inline void amx_panels(const uint16_t* A, int64_t lda, int64_t M, int64_t Mpad, const uint16_t* Bd,
                                         int64_t sb, int64_t K2, int64_t N, int64_t q0, int64_t q1, float* C,
                                         int64_t ldc, const float* init, int64_t ldi) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  alignas(64) float block[32 * 32];
  const int64_t kt_n = K2 / 16, a_stride = lda * 2;
  for (int64_t q = q0; q < q1; ++q) {
    const uint16_t* panel = Bd + q * sb;
    const int64_t n0 = q * kPanel, nw = std::min<int64_t>(kPanel, N - n0);
    const __mmask16 m0 = nw >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nw) - 1);
    const __mmask16 m1 = nw >= 32 ? 0xFFFF : (nw <= 16 ? 0 : static_cast<__mmask16>((1u << (nw - 16)) - 1));
    for (int64_t i = 0; i < Mpad; i += 32) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      const uint16_t* a = A + i * lda;
      for (int64_t kt = 0; kt < kt_n; ++kt) {
        _tile_loadd(4, a + kt * 32, a_stride);
        _tile_loadd(5, a + 16 * lda + kt * 32, a_stride);
        _tile_loadd(6, panel + kt * 16 * 2 * kPanel, 4 * kPanel);
        _tile_loadd(7, panel + kt * 16 * 2 * kPanel + kPanel, 4 * kPanel);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, block, 128);
      _tile_stored(1, block + 16, 128);
      _tile_stored(2, block + 16 * 32, 128);
      _tile_stored(3, block + 16 * 32 + 16, 128);
      const int64_t rows = std::min<int64_t>(32, M - i);
      for (int64_t r = 0; r < rows; ++r) {
        float* c = C + (i + r) * ldc + n0;
        __m512 v0 = _mm512_load_ps(block + r * 32), v1 = _mm512_load_ps(block + r * 32 + 16);
        if (init) {
          const float* in = init + (i + r) * ldi + n0;
          v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, in));
          v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, in + 16));
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
      }
    }
  }
  _tile_release();
}
#else
#define RNNKIT_AMX_KERNEL 0
#endif

// C (M x N) = init + A @ B by AMX; A, B as amx_panels takes them. Only when cpu_has_amx_bf16().
inline void gemm_packed_amx(const uint16_t* A, int64_t lda, int64_t M, int64_t Mpad, const PackedB16& B, float* C,
                            int64_t ldc, const float* init, int64_t ldi) {
#if RNNKIT_AMX_KERNEL
  const int64_t work = M * B.K * B.panels() * kPanel / 8;  // a rough guess of AMX's edge
  const int64_t grain = work < (1 << 18) ? B.panels() : 1;
  at::parallel_for(0, B.panels(), grain, [&](int64_t q0, int64_t q1) {
    amx_panels(A, lda, M, Mpad, B.data, B.K2 * 2 * kPanel, B.K2, B.N, q0, q1, C, ldc, init, ldi);
  });
#else
  (void)A; (void)lda; (void)M; (void)Mpad; (void)B; (void)C; (void)ldc; (void)init; (void)ldi;
#endif
}

// C (M x N) += At^T-form products by AMX, for weight gradients: At holds M rows (readable up to
// the next multiple of 32) of K2 row pairs each (lda bf16 per row), B ceil(N / 32) panels of K2
// pair rows (panel stride sb); K2 a multiple of 16, zero past the rows in use.
inline void outer_accumulate_amx(const uint16_t* At, int64_t lda, int64_t M, const uint16_t* B, int64_t sb, int64_t N,
                                 int64_t K2, float* C, int64_t ldc) {
#if RNNKIT_AMX_KERNEL
  const int64_t qn = (N + kPanel - 1) / kPanel;
  const int64_t grain = M * N * K2 < (1 << 20) ? qn : 1;
  at::parallel_for(0, qn, grain, [&](int64_t q0, int64_t q1) {
    amx_panels(At, lda, M, (M + 31) / 32 * 32, B, sb, K2, N, q0, q1, C, ldc, C, ldc);
  });
#else
  (void)At; (void)lda; (void)M; (void)B; (void)sb; (void)N; (void)K2; (void)C; (void)ldc;
#endif
}

}  // namespace rnnkit
