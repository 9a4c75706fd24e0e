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
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
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

}  // namespace rnnkit
