/* rt-min/x86/ck_gemm_small.c - the pool split and ISA choice of the small-M
 * GEMM (ck_gemm_small.h). Built for the baseline ISA; the vector body is in
 * ck_gemm_small_avx512.c. */
#include "ck_gemm_small.h"

#include <stdlib.h>

#ifndef CK_GEMM_NO_AVX512
/* Chunk c: a block of CK_GEMM_SMALL_COLS columns; without a batch sum also
 * one batch item (c = bi * ncol + block). A batch sum keeps every batch item
 * of its columns in one chunk, in order, so each chain runs over the batch
 * as ck_gemm_f32_scalar's does. */
static void ck_gemm_small_chunk(void *ctx, int64_t c, int tid) {
  const CkGemmSmall *g = (const CkGemmSmall *)ctx;
  int64_t ncol = (g->N + CK_GEMM_SMALL_COLS - 1) / CK_GEMM_SMALL_COLS, bi;
  int64_t blk = c % ncol, j0 = blk * CK_GEMM_SMALL_COLS;
  int64_t j1 = j0 + CK_GEMM_SMALL_COLS < g->N ? j0 + CK_GEMM_SMALL_COLS : g->N;
  (void)tid;
  if (g->flags & CK_GEMM_BATCH_SUM) {
    for (bi = 0; bi < g->batch; bi++)
      ck_gemm_small_cols_avx512(g, bi, j0, j1, (g->flags & CK_GEMM_ACCUMULATE) || bi > 0);
  } else {
    ck_gemm_small_cols_avx512(g, c / ncol, j0, j1, (g->flags & CK_GEMM_ACCUMULATE) != 0);
  }
}
#endif

/* Reads B in place when the CPU can and M is small; else the packed GEMM
 * (same bits either way). */
void ck_gemm_small_f32(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                       int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                       int64_t b_bstride, int flags) {
#ifndef CK_GEMM_NO_AVX512
  if (M <= CK_GEMM_SMALL_MAX_M && ck_gemm_cpu_has(CK_GEMM_AVX512)) {
    CkGemmSmall g;
    int64_t ncol;
    if (batch <= 0 || M <= 0 || N <= 0) return;
    g.out = out;
    g.a = a;
    g.b = b;
    g.batch = batch;
    g.M = M;
    g.N = N;
    g.K = K;
    g.ta = ta;
    g.tb = tb;
    g.a_bstride = a_bstride;
    g.b_bstride = b_bstride;
    g.flags = flags;
    ncol = (N + CK_GEMM_SMALL_COLS - 1) / CK_GEMM_SMALL_COLS;
    ck_pool_parallel_for(pool, (flags & CK_GEMM_BATCH_SUM) ? ncol : batch * ncol, ck_gemm_small_chunk, &g);
    return;
  }
#endif
  ck_gemm_f32(pool, out, a, b, batch, M, N, K, ta, tb, a_bstride, b_bstride, flags);
}

/* Mid-M products: only X @ W^T (the Linear layout) without a batch sum, rows
 * (the batch folded in) above the small path's and up to CK_GEMM_MID_MAX_M,
 * and K of at least CK_GEMM_MID_MIN_K unless N is under one 32-column tile
 * of the packed GEMM (measured: at K = 64 the C^T transposes cost more than
 * the weight pack they replace, 64x64x64 ran 0.85x; K = 100 ran 1.56x, and
 * N = 9..20 ran 1.2-2.4x at any K). */
int ck_gemm_mid_takes(int64_t batch, int64_t M, int64_t N, int64_t K, int ta, int tb,
                      int64_t a_bstride, int64_t b_bstride, int flags) {
#ifndef CK_GEMM_NO_AVX512
  int64_t rows = M;
  if (ta || !tb || (flags & ~CK_GEMM_ACCUMULATE) || batch <= 0 || M <= 0 || N <= 0 || K <= 0) return 0;
  if (batch > 1) {
    if (b_bstride != 0 || a_bstride != M * K) return 0;
    rows = batch * M;
  }
  if (K < CK_GEMM_MID_MIN_K && N >= 32) return 0;
  return rows > CK_GEMM_SMALL_MAX_M && rows <= CK_GEMM_MID_MAX_M && ck_gemm_cpu_has(CK_GEMM_AVX512);
#else
  (void)batch, (void)M, (void)N, (void)K, (void)ta, (void)tb, (void)a_bstride, (void)b_bstride, (void)flags;
  return 0;
#endif
}

#ifndef CK_GEMM_NO_AVX512
/* Chunk c: output columns [c * CK_GEMM_MID_COLS, ...). */
static void ck_gemm_mid_chunk(void *ctx, int64_t c, int tid) {
  const CkGemmMid *g = (const CkGemmMid *)ctx;
  int64_t n0 = c * CK_GEMM_MID_COLS, n1 = n0 + CK_GEMM_MID_COLS < g->N ? n0 + CK_GEMM_MID_COLS : g->N;
  (void)tid;
  ck_gemm_mid_cols_avx512(g, n0, n1);
}
#endif

/* X^T packed once by the caller (pool scratch, else malloc), then the
 * column chunks; a product too small to pay for waking threads stays on
 * the calling thread (same chunks, same bits). Without AVX-512F, or for an
 * empty product, ck_gemm_f32 does it (ck_gemm_mid_takes says no there, so
 * it does not come back). */
void ck_gemm_mid_f32(CkPool *pool, float *out, const float *x, const float *w, int64_t M, int64_t N,
                     int64_t K, int flags) {
#ifndef CK_GEMM_NO_AVX512
  CkGemmMid g;
  void *own = NULL;
  size_t bytes;
  if (!ck_gemm_cpu_has(CK_GEMM_AVX512) || M <= 0 || M > CK_GEMM_MID_MAX_M || N <= 0 || K <= 0) { /* same bits */
    ck_gemm_f32(pool, out, x, w, 1, M, N, K, 0, 1, 0, 0, flags);
    return;
  }
  g.out = out;
  g.x = x;
  g.w = w;
  g.M = M;
  g.N = N;
  g.K = K;
  g.mp = (M + 15) / 16 * 16;
  g.load = (flags & CK_GEMM_ACCUMULATE) != 0;
  bytes = (size_t)(g.mp * K) * sizeof(float);
  g.xp = pool ? (float *)ck_pool_scratch(pool, -1, bytes) : NULL;
  if (!g.xp) g.xp = (float *)(own = malloc(bytes));
  if (!g.xp) { /* out of memory: the packed GEMM, same bits */
    ck_gemm_f32_avx512(pool, out, x, w, 1, M, N, K, 0, 1, 0, 0, flags);
    return;
  }
  ck_gemm_mid_pack_avx512(&g);
  ck_pool_parallel_for(M * N * K < CK_GEMM_MID_SERIAL_WORK ? NULL : pool,
                       (N + CK_GEMM_MID_COLS - 1) / CK_GEMM_MID_COLS, ck_gemm_mid_chunk, &g);
  free(own);
#else
  ck_gemm_f32(pool, out, x, w, 1, M, N, K, 0, 1, 0, 0, flags);
#endif
}
