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

/* ---- the mid-M path: C^T = W @ X^T (ck_gemm_mid_f32) ---- */

/* Four rows of four: 128-bit lane L holds the 4 floats at p + L * ld4 (a
 * load and three inserts from memory, which run on the load ports and
 * p0/p5 rather than the shuffle port). */
CK_GEMM_SMALL_INLINE __m512 ck_gemm_mid_ld4(const float *p, int64_t ld4) {
  __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(p));
  v = _mm512_insertf32x4(v, _mm_loadu_ps(p + ld4), 1);
  v = _mm512_insertf32x4(v, _mm_loadu_ps(p + 2 * ld4), 2);
  return _mm512_insertf32x4(v, _mm_loadu_ps(p + 3 * ld4), 3);
}

/* dst row c (stride ldd) = column c of the 16 x 16 block at src (rows of
 * stride lds), for the full blocks of the X pack and of the C^T -> C store.
 * Column group q (columns 4q..4q+3): vector i holds, in lane L, row 4L + i
 * of the group, so one 4 x 4 transpose inside every 128-bit lane (8
 * shuffles) finishes four columns: 32 shuffles a block instead of the 64 of
 * ck_gemm_small_transpose, the rest done by the loads. */
CK_GEMM_SMALL_INLINE void ck_gemm_mid_block16(const float *src, int64_t lds, float *dst, int64_t ldd) {
  int q;
  for (q = 0; q < 4; q++) {
    const float *s = src + 4 * q;
    __m512 a = ck_gemm_mid_ld4(s, 4 * lds), b = ck_gemm_mid_ld4(s + lds, 4 * lds);
    __m512 c = ck_gemm_mid_ld4(s + 2 * lds, 4 * lds), d = ck_gemm_mid_ld4(s + 3 * lds, 4 * lds);
    __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(a, b)), t1 = _mm512_castps_pd(_mm512_unpackhi_ps(a, b));
    __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(c, d)), t3 = _mm512_castps_pd(_mm512_unpackhi_ps(c, d));
    float *o = dst + 4 * q * ldd;
    _mm512_storeu_ps(o, _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)));
    _mm512_storeu_ps(o + ldd, _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)));
    _mm512_storeu_ps(o + 2 * ldd, _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)));
    _mm512_storeu_ps(o + 3 * ldd, _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)));
  }
}

/* X^T into g->xp: xp[k * mp + m] = X[m, k], a 16 x 16 block (16 rows of X,
 * 16 k) per register transpose; rows past M are zero, so the padding lanes
 * of the kernel compute zeros that are never stored. */
void ck_gemm_mid_pack_avx512(const CkGemmMid *g) {
  __m512 t[16];
  int64_t m0, k0, K = g->K, M = g->M, mp = g->mp;
  int l, kk;
  for (m0 = 0; m0 < mp; m0 += 16)
    for (k0 = 0; k0 < K; k0 += 16) {
      int kc = K - k0 < 16 ? (int)(K - k0) : 16;
      __mmask16 km = ck_gemm_small_mask(kc);
      if (kc == 16 && m0 + 16 <= M) { /* a full block */
        ck_gemm_mid_block16(g->x + m0 * K + k0, K, g->xp + k0 * mp + m0, mp);
        continue;
      }
      for (l = 0; l < 16; l++)
        t[l] = m0 + l < M ? _mm512_maskz_loadu_ps(km, g->x + (m0 + l) * K + k0) : _mm512_setzero_ps();
      ck_gemm_small_transpose(t);
      for (kk = 0; kk < kc; kk++) _mm512_storeu_ps(g->xp + (k0 + kk) * mp + m0, t[kk]);
    }
}

/* R weight rows (w: row 0 of them, read in place, one broadcast per row and
 * k) times MV vectors of 16 rows of X (packed, xp), over all of K: lane l of
 * acc[r][v] is C[16v + l, n + r]. ct holds the tile as C^T (ct[r * mp + m]):
 * the start value when `load`, the result after. */
CK_GEMM_SMALL_INLINE void ck_gemm_mid_tile(const float *xp, int64_t mp, const float *w, int64_t K, float *ct,
                                           int load, const int R, const int MV) {
  __m512 acc[12][4];
  int64_t k;
  int r, v;
  for (r = 0; r < R; r++)
    for (v = 0; v < MV; v++) acc[r][v] = load ? _mm512_loadu_ps(ct + r * mp + 16 * v) : _mm512_setzero_ps();
  for (k = 0; k < K; k++) {
    __m512 xv[4];
    for (v = 0; v < MV; v++) xv[v] = _mm512_loadu_ps(xp + k * mp + 16 * v);
    for (r = 0; r < R; r++) {
      __m512 wv = _mm512_set1_ps(w[r * K + k]);
      for (v = 0; v < MV; v++) acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
    }
  }
  for (r = 0; r < R; r++)
    for (v = 0; v < MV; v++) _mm512_storeu_ps(ct + r * mp + 16 * v, acc[r][v]);
}

/* The tile sizes as constants, so the accumulators live in registers: up to
 * 24 of them (R x MV), R in {1, 2, 4, rmax(MV)}. */
#define CK_GEMM_MID_CASE(R, MV)                                                                   \
  case (MV)*16 + (R): ck_gemm_mid_tile(xp, mp, w, K, ct, load, R, MV); break;
static void ck_gemm_mid_tile_rows(const float *xp, int64_t mp, const float *w, int64_t K, float *ct, int load,
                                  int R, int MV) {
  switch (MV * 16 + R) {
    CK_GEMM_MID_CASE(12, 1) CK_GEMM_MID_CASE(4, 1) CK_GEMM_MID_CASE(2, 1) CK_GEMM_MID_CASE(1, 1)
    CK_GEMM_MID_CASE(12, 2) CK_GEMM_MID_CASE(4, 2) CK_GEMM_MID_CASE(2, 2) CK_GEMM_MID_CASE(1, 2)
    CK_GEMM_MID_CASE(8, 3) CK_GEMM_MID_CASE(4, 3) CK_GEMM_MID_CASE(2, 3) CK_GEMM_MID_CASE(1, 3)
    CK_GEMM_MID_CASE(6, 4) CK_GEMM_MID_CASE(4, 4) CK_GEMM_MID_CASE(2, 4) CK_GEMM_MID_CASE(1, 4)
  default: break;
  }
}
#undef CK_GEMM_MID_CASE

/* Between C (columns [n0, n0 + rows)) and the tile ct (ct[r * mp + m] =
 * C[m, n0 + r]): to_c stores ct into C, else loads C into ct. 16 x 16
 * blocks through the register transpose; nothing outside the M rows and the
 * chunk's columns is read or written in C. */
static void ck_gemm_mid_ct_io(const CkGemmMid *g, float *ct, int64_t n0, int64_t rows, int to_c) {
  __m512 t[16];
  int64_t r0, m0, mp = g->mp, M = g->M, N = g->N;
  int l;
  for (r0 = 0; r0 < rows; r0 += 16) {
    int nr = rows - r0 < 16 ? (int)(rows - r0) : 16;
    __mmask16 nm = ck_gemm_small_mask(nr);
    for (m0 = 0; m0 < mp; m0 += 16) {
      int mr = M - m0 < 16 ? (int)(M - m0) : 16;
      float *c = g->out + m0 * N + n0 + r0;
      if (to_c && nr == 16 && mr == 16) {
        ck_gemm_mid_block16(ct + r0 * mp + m0, mp, c, N);
      } else if (to_c) {
        for (l = 0; l < 16; l++) t[l] = l < nr ? _mm512_loadu_ps(ct + (r0 + l) * mp + m0) : _mm512_setzero_ps();
        ck_gemm_small_transpose(t);
        for (l = 0; l < mr; l++) _mm512_mask_storeu_ps(c + l * N, nm, t[l]);
      } else {
        for (l = 0; l < 16; l++) t[l] = l < mr ? _mm512_maskz_loadu_ps(nm, c + l * N) : _mm512_setzero_ps();
        ck_gemm_small_transpose(t);
        for (l = 0; l < nr; l++) _mm512_storeu_ps(ct + (r0 + l) * mp + m0, t[l]);
      }
    }
  }
}

/* One chunk: its weight rows in tiles of rmax (the last ones smaller), all
 * in a C^T tile on the stack, then transposed into its columns of C. */
void ck_gemm_mid_cols_avx512(const CkGemmMid *g, int64_t n0, int64_t n1) {
  float ct[CK_GEMM_MID_COLS * CK_GEMM_MID_MAX_M];
  int64_t rows = n1 - n0, r0 = 0, mp = g->mp, K = g->K;
  int mv = (int)(mp / 16), rmax = mv == 4 ? 6 : mv == 3 ? 8 : 12;
  if (g->load) ck_gemm_mid_ct_io(g, ct, n0, rows, 0);
  while (r0 < rows) {
    int64_t left = rows - r0;
    int R = left >= rmax ? rmax : left >= 4 ? 4 : left >= 2 ? 2 : 1;
    ck_gemm_mid_tile_rows(g->xp, mp, g->w + (n0 + r0) * K, K, ct + r0 * mp, g->load, R, mv);
    r0 += R;
  }
  ck_gemm_mid_ct_io(g, ct, n0, rows, 1);
}

#else
typedef int ck_gemm_small_avx512_unused; /* ISO C wants a declaration in every file */
#endif
