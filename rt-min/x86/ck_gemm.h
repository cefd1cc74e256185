/* rt-min/x86/ck_gemm.h - fast fp32 GEMM for x86 (AVX2 / AVX-512), hosted C99.
 *
 * Same contract as ck_matmul_f32 in rt-min/ck_kernels.h (batched,
 * op(A) = A or A^T, op(B) = B or B^T, batch stride 0 broadcasts), computed
 * with packed, cache-blocked, register-blocked micro-kernels on a CkPool.
 *
 * Numerics (what makes it deterministic): every output element is ONE fused
 * multiply-add chain in k order,
 *     acc = 0 (or the old out value when accumulating);
 *     for k = 0 .. K-1: acc = fmaf(opA[i,k], opB[k,j], acc);
 * exactly as a scalar loop of fmaf() would compute it. Cache blocking over k
 * continues the chain through `out` (a k-block starts from the partial sum
 * the previous one stored) and threads split only the M x N tiles, never k,
 * so the bits do not depend on the thread count, the blocking parameters,
 * or the ISA variant (AVX2 and AVX-512 give identical results). They differ
 * from ck_matmul_f32 (separate multiply and add) by rounding only. */
#ifndef CK_GEMM_H
#define CK_GEMM_H

#include <stdint.h>

#include "ck_pool.h"

/* flags for ck_gemm_f32 */
#define CK_GEMM_ACCUMULATE 1 /* out += op(A) @ op(B) instead of out = ... */
#define CK_GEMM_BATCH_SUM 2  /* out is ONE M x N matrix: the sum over the batch,
                                in batch order (backward of a broadcast weight) */

/* ck_matmul_f32 semantics; pool may be NULL (one thread, scratch malloc'd per call). */
void ck_matmul_f32_fast(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                        int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                        int64_t b_bstride);
/* The general entry: as above plus CK_GEMM_* flags. Picks the widest ISA
 * the CPU supports (AVX-512F, else AVX2+FMA, else a scalar fmaf loop). */
void ck_gemm_f32(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                 int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                 int64_t b_bstride, int flags);

/* The variants, for tests and benchmarks. Call one only where the CPU has
 * its ISA (ck_gemm_cpu_has). */
enum { CK_GEMM_SCALAR = 0, CK_GEMM_AVX2 = 1, CK_GEMM_AVX512 = 2 };
int ck_gemm_cpu_has(int isa);
int ck_gemm_best_isa(void);
void ck_gemm_f32_isa(int isa, CkPool *pool, float *out, const float *a, const float *b,
                     int64_t batch, int64_t M, int64_t N, int64_t K, int ta, int tb,
                     int64_t a_bstride, int64_t b_bstride, int flags);
void ck_gemm_f32_avx512(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                        int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                        int64_t b_bstride, int flags);
void ck_gemm_f32_avx2(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                      int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                      int64_t b_bstride, int flags);
void ck_gemm_f32_scalar(float *out, const float *a, const float *b, int64_t batch, int64_t M,
                        int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                        int64_t b_bstride, int flags);

#endif
