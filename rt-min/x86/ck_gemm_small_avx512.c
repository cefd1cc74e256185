/* rt-min/x86/ck_gemm_small_avx512.c - the AVX-512 body of the small-M GEMM
 * (ck_gemm_small.h). Built with -march=x86-64-v4 by the Makefile and the
 * x86-avx512 target; under other flags (the x86-avx2 target, which defines
 * CK_GEMM_NO_AVX512 and never calls it) the file is empty.
 *
 * A lane is one output column j; lane by lane each accumulator runs
 * acc = fmaf(opA[i,k], opB[k,j], acc) for k = 0, 1, ..., K-1 and nothing
 * else (masked-off lanes are never stored, k past K is never added), so the
 * result is ck_gemm_f32_scalar's bit for bit. */
#include "ck_gemm_small.h"

#if defined(__AVX512F__)
#include <immintrin.h>

#if defined(__GNUC__)
#define CK_GEMM_SMALL_INLINE static inline __attribute__((always_inline))
#else
#define CK_GEMM_SMALL_INLINE static inline
#endif

/* Lanes [0, n) of a 16-lane mask, n in [0, 16]. */
static __mmask16 ck_gemm_small_mask(int64_t n) {
  return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* op(B) = B: rows [i0, i0 + mr) times columns [j, j + 64) (lanes outside
 * the masks m[0..3] are neither loaded nor stored). One row of B serves mr
 * rows of A; 4 x mr accumulators stay in registers over all of K. */
CK_GEMM_SMALL_INLINE void ck_gemm_small_nn(const CkGemmSmall *g, const float *a, const float *b, float *o,
                                           int64_t i0, const int mr, int64_t j, const __mmask16 *m,
                                           int load, int64_t ars, int64_t aks) {
  __m512 acc[4][4];
  int64_t k, N = g->N;
  int r, v;
  for (r = 0; r < mr; r++)
    for (v = 0; v < 4; v++)
      acc[r][v] = load ? _mm512_maskz_loadu_ps(m[v], o + (i0 + r) * N + j + 16 * v) : _mm512_setzero_ps();
  for (k = 0; k < g->K; k++) {
    const float *bk = b + k * N + j;
    __m512 bv[4];
    for (v = 0; v < 4; v++) bv[v] = _mm512_maskz_loadu_ps(m[v], bk + 16 * v);
    for (r = 0; r < mr; r++) {
      __m512 x = _mm512_set1_ps(a[(i0 + r) * ars + k * aks]);
      for (v = 0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
    }
  }
  for (r = 0; r < mr; r++)
    for (v = 0; v < 4; v++) _mm512_mask_storeu_ps(o + (i0 + r) * N + j + 16 * v, m[v], acc[r][v]);
}

/* t[l] = row l of a 16 x 16 block -> t[c] = column c (unpack in pairs,
 * then in fours, then two 128-bit lane shuffles). */
CK_GEMM_SMALL_INLINE void ck_gemm_small_transpose(__m512 *t) {
  __m512 u[16];
  int i, e;
  for (i = 0; i < 8; i++) {
    u[2 * i] = _mm512_unpacklo_ps(t[2 * i], t[2 * i + 1]);
    u[2 * i + 1] = _mm512_unpackhi_ps(t[2 * i], t[2 * i + 1]);
  }
  /* t[4i + e]: rows 4i..4i+3, element 4L + e in 128-bit lane L */
  for (i = 0; i < 4; i++) {
    __m512d lo = _mm512_castps_pd(u[4 * i]), lo2 = _mm512_castps_pd(u[4 * i + 2]);
    __m512d hi = _mm512_castps_pd(u[4 * i + 1]), hi2 = _mm512_castps_pd(u[4 * i + 3]);
    t[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
    t[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
    t[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
    t[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
  }
  for (e = 0; e < 4; e++) {
    u[e] = _mm512_shuffle_f32x4(t[e], t[4 + e], 0x88);
    u[4 + e] = _mm512_shuffle_f32x4(t[e], t[4 + e], 0xdd);
    u[8 + e] = _mm512_shuffle_f32x4(t[8 + e], t[12 + e], 0x88);
    u[12 + e] = _mm512_shuffle_f32x4(t[8 + e], t[12 + e], 0xdd);
  }
  for (e = 0; e < 4; e++) {
    t[e] = _mm512_shuffle_f32x4(u[e], u[8 + e], 0x88);
    t[8 + e] = _mm512_shuffle_f32x4(u[e], u[8 + e], 0xdd);
    t[4 + e] = _mm512_shuffle_f32x4(u[4 + e], u[12 + e], 0x88);
    t[12 + e] = _mm512_shuffle_f32x4(u[4 + e], u[12 + e], 0xdd);
  }
}

/* op(B) = B^T (B is [N, K]): rows [0, mr) times columns [j, j + nj), nj <= 16.
 * Each step loads 16 rows of B x 16 k's (rows past N read as zero, k past K
 * masked), transposes them so vector kk holds opB[k0 + kk, j..j+15], and
 * runs every row's chain through those k's in order. */
CK_GEMM_SMALL_INLINE void ck_gemm_small_nt(const CkGemmSmall *g, const float *a, const float *b, float *o,
                                           const int mr, int64_t j, int64_t nj, int load, int64_t ars,
                                           int64_t aks) {
  __m512 acc[CK_GEMM_SMALL_MAX_M], t[16];
  int64_t k0, K = g->K, N = g->N, kfull = K - K % 16;
  __mmask16 jm = ck_gemm_small_mask(nj);
  int r, l, kk;
  for (r = 0; r < mr; r++) acc[r] = load ? _mm512_maskz_loadu_ps(jm, o + r * N + j) : _mm512_setzero_ps();
  for (k0 = 0; k0 < kfull; k0 += 16) {
    if (nj == 16)
      for (l = 0; l < 16; l++) t[l] = _mm512_loadu_ps(b + (j + l) * K + k0);
    else
      for (l = 0; l < 16; l++) t[l] = l < nj ? _mm512_loadu_ps(b + (j + l) * K + k0) : _mm512_setzero_ps();
    ck_gemm_small_transpose(t);
    for (kk = 0; kk < 16; kk++)
      for (r = 0; r < mr; r++)
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * ars + (k0 + kk) * aks]), t[kk], acc[r]);
  }
  if (kfull < K) {
    int kc = (int)(K - kfull);
    __mmask16 km = ck_gemm_small_mask(kc);
    for (l = 0; l < 16; l++)
      t[l] = l < nj ? _mm512_maskz_loadu_ps(km, b + (j + l) * K + kfull) : _mm512_setzero_ps();
    ck_gemm_small_transpose(t);
    for (kk = 0; kk < kc; kk++)
      for (r = 0; r < mr; r++)
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * ars + (kfull + kk) * aks]), t[kk], acc[r]);
  }
  for (r = 0; r < mr; r++) _mm512_mask_storeu_ps(o + r * N + j, jm, acc[r]);
}

/* The row count as a constant, so the accumulators live in registers. */
static void ck_gemm_small_nt_rows(const CkGemmSmall *g, const float *a, const float *b, float *o, int64_t j,
                                  int64_t nj, int load, int64_t ars, int64_t aks) {
  switch (g->M) {
  case 1: ck_gemm_small_nt(g, a, b, o, 1, j, nj, load, ars, aks); break;
  case 2: ck_gemm_small_nt(g, a, b, o, 2, j, nj, load, ars, aks); break;
  case 3: ck_gemm_small_nt(g, a, b, o, 3, j, nj, load, ars, aks); break;
  case 4: ck_gemm_small_nt(g, a, b, o, 4, j, nj, load, ars, aks); break;
  case 5: ck_gemm_small_nt(g, a, b, o, 5, j, nj, load, ars, aks); break;
  case 6: ck_gemm_small_nt(g, a, b, o, 6, j, nj, load, ars, aks); break;
  case 7: ck_gemm_small_nt(g, a, b, o, 7, j, nj, load, ars, aks); break;
  default: ck_gemm_small_nt(g, a, b, o, 8, j, nj, load, ars, aks); break;
  }
}

void ck_gemm_small_cols_avx512(const CkGemmSmall *g, int64_t bi, int64_t j0, int64_t j1, int load) {
  const float *a = g->a + bi * g->a_bstride, *b = g->b + bi * g->b_bstride;
  float *o = (g->flags & CK_GEMM_BATCH_SUM) ? g->out : g->out + bi * g->M * g->N;
  int64_t ars = g->ta ? 1 : g->K, aks = g->ta ? g->M : 1, j, i0;
  if (g->tb) {
    for (j = j0; j < j1; j += 16) ck_gemm_small_nt_rows(g, a, b, o, j, j1 - j < 16 ? j1 - j : 16, load, ars, aks);
    return;
  }
  for (j = j0; j < j1; j += 64) {
    __mmask16 m[4];
    int v;
    for (v = 0; v < 4; v++) m[v] = ck_gemm_small_mask(j1 - j - 16 * v > 0 ? j1 - j - 16 * v : 0);
    for (i0 = 0; i0 < g->M; i0 += 4) {
      switch (g->M - i0 < 4 ? g->M - i0 : 4) {
      case 1: ck_gemm_small_nn(g, a, b, o, i0, 1, j, m, load, ars, aks); break;
      case 2: ck_gemm_small_nn(g, a, b, o, i0, 2, j, m, load, ars, aks); break;
      case 3: ck_gemm_small_nn(g, a, b, o, i0, 3, j, m, load, ars, aks); break;
      default: ck_gemm_small_nn(g, a, b, o, i0, 4, j, m, load, ars, aks); break;
      }
    }
  }
}

#else
typedef int ck_gemm_small_avx512_unused; /* ISO C wants a declaration in every file */
#endif
