/* rt-min/x86/ck_gemm_small.c - the pool split and ISA choice of the small-M
 * GEMM (ck_gemm_small.h). Built for the baseline ISA; the vector body is in
 * ck_gemm_small_avx512.c. */
#include "ck_gemm_small.h"

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
