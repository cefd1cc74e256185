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

#endif
