/* rt-min/x86/ck_gemm_small.h - the small-M GEMM (hosted C99): products with
 * a handful of rows, op(A) [M, K] times op(B) [K, N], as one-token decoding
 * runs them (M = the batch of sequences, B = a weight matrix).
 *
 * Such a product reads each weight once and does M multiply-adds with it, so
 * it is bound by reading B: ck_gemm_f32's packing of B (a copy of the whole
 * matrix) and its 12-row register tile (mostly padding at M = 1) cost more
 * than the product. This path reads B in place: 16 output columns per
 * vector, op(B) = B rows loaded as they lie, op(B) = B^T (Linear weights
 * [N, K], a tied head [V, C]) loaded as 16 x 16 blocks and transposed in
 * registers. Nothing is packed or allocated.
 *
 * Numerics: exactly ck_gemm_f32's (rt-min/x86/ck_gemm.h), bit for bit: every
 * output element is one fmaf chain in k order from 0 (or from out with
 * CK_GEMM_ACCUMULATE), a batch sum continuing the chain over the batch in
 * order. Work is split into chunks of CK_GEMM_SMALL_COLS output columns (and
 * one batch item unless CK_GEMM_BATCH_SUM), chosen from the shape alone, each
 * writing its own columns: the same bits on any thread count.
 *
 * Where the CPU lacks AVX-512F (or the x86-avx2 target, CK_GEMM_NO_AVX512),
 * and for M above CK_GEMM_SMALL_MAX_M, ck_gemm_small_f32 calls ck_gemm_f32,
 * which gives the same bits. */
#ifndef CK_GEMM_SMALL_H
#define CK_GEMM_SMALL_H

#include <stdint.h>

#include "ck_gemm.h"
#include "ck_pool.h"

/* lower/lower_x86.c swaps ck_gemm_f32 for ck_gemm_small_f32 at M <= this */
#define CK_GEMM_SMALL_MAX_M 8
/* output columns per chunk of the pool (a multiple of 16) */
#define CK_GEMM_SMALL_COLS 64

/* ck_gemm_f32's arguments, contract and bits. pool may be NULL. */
void ck_gemm_small_f32(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                       int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                       int64_t b_bstride, int flags);

/* One product as the chunk bodies see it. */
typedef struct CkGemmSmall {
  float *out;
  const float *a, *b;
  int64_t batch, M, N, K;
  int ta, tb;
  int64_t a_bstride, b_bstride;
  int flags;
} CkGemmSmall;

/* The AVX-512 body (ck_gemm_small_avx512.c): columns [j0, j1) of every row
 * of batch item bi, starting each chain from out when `load`. */
void ck_gemm_small_cols_avx512(const CkGemmSmall *g, int64_t bi, int64_t j0, int64_t j1, int load);

/* The mid-M path: X [M, K] times a weight W [N, K] transposed (ta = 0,
 * tb = 1), CK_GEMM_SMALL_MAX_M < M <= CK_GEMM_MID_MAX_M rows, as batch-1
 * inference runs every Linear (M = the sequence). ck_gemm_f32 packs W^T
 * (a transpose of the whole weight, as many floats as X @ W^T has
 * multiply-adds per row) on every call; this path swaps the roles,
 * C^T = W @ X^T: it transposes X once (M x K floats, smaller than W), reads
 * W rows in place as broadcasts, keeps a tile of C^T (up to 12 weight rows x
 * 64 rows of X) in registers over all of K, and transposes it into C on the
 * way out (16 x 16 blocks in registers).
 *
 * Numerics: exactly ck_gemm_f32's, bit for bit: lane m of the accumulator of
 * weight row n runs acc = fmaf(W[n,k], X[m,k], acc) for k = 0 .. K-1 from 0
 * (or from out with CK_GEMM_ACCUMULATE), and fmaf(a, b, c) == fmaf(b, a, c).
 * Chunks are blocks of CK_GEMM_MID_COLS output columns, chosen from N alone,
 * each writing its own columns of C: the same bits on any thread count, and
 * the same as ck_gemm_small_f32 at M <= 8 (decode) for the same weight. */
#define CK_GEMM_MID_MAX_M 64
/* output columns per chunk of the pool (a multiple of 16) */
#ifndef CK_GEMM_MID_COLS
#define CK_GEMM_MID_COLS 64
#endif
/* K below which the packed GEMM is faster (unless N < 32) */
#define CK_GEMM_MID_MIN_K 96
/* multiply-adds below which the product runs on the calling thread only */
#define CK_GEMM_MID_SERIAL_WORK ((int64_t)1 << 19)

/* 1 when ck_gemm_f32(batch, M, N, K, ta, tb, a_bstride, b_bstride, flags)
 * is a mid-M product this CPU runs on ck_gemm_mid_f32 (batch > 1 only when
 * the rows fold into one product: A row-major, B shared). */
int ck_gemm_mid_takes(int64_t batch, int64_t M, int64_t N, int64_t K, int ta, int tb,
                      int64_t a_bstride, int64_t b_bstride, int flags);
/* out [M, N] (+)= x [M, K] @ w[N, K]^T; flags: CK_GEMM_ACCUMULATE or 0.
 * Any shape ck_gemm_mid_takes declines (no AVX-512F, M > 64, empty) goes
 * to ck_gemm_f32 instead: same bits. pool may be NULL. */
void ck_gemm_mid_f32(CkPool *pool, float *out, const float *x, const float *w, int64_t M, int64_t N,
                     int64_t K, int flags);

/* One mid-M product as the chunk bodies see it: xp is X^T packed,
 * xp[k * mp + m], mp = M rounded up to 16, rows past M zero. */
typedef struct CkGemmMid {
  float *out;
  const float *x, *w;
  float *xp;
  int64_t M, N, K, mp;
  int load;
} CkGemmMid;

/* The AVX-512 bodies (ck_gemm_small_avx512.c): pack X^T into g->xp, and
 * columns [n0, n1) of C (n1 - n0 <= CK_GEMM_MID_COLS). */
void ck_gemm_mid_pack_avx512(const CkGemmMid *g);
void ck_gemm_mid_cols_avx512(const CkGemmMid *g, int64_t n0, int64_t n1);

#endif
