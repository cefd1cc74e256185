/* rt-min/x86/ck_x86_kernels.h - x86 targets' pooled versions of reference
 * kernels (hosted C99 plus 16-float vector values, CkX86Vec16 below; no
 * intrinsics, so the same code serves x86-avx2, x86-avx512 and the tests).
 *
 * Each kernel has exactly the contract of the reference kernel it replaces
 * (rt-min/ck_kernels.h, rt-min/ck_grad.h) plus the pool as first argument,
 * and computes every output element with the same floating-point operations
 * in the same order: only the loop nesting changes (k and v are transposed
 * into per-thread scratch so the lanes run over keys, never over a sum;
 * attention works on register tiles of 4 query rows). So
 * the results are bitwise equal to the reference kernel, and therefore to
 * the c99 program, for every thread count. Two exceptions differ from the
 * reference by rounding only (and are still bitwise equal over thread
 * counts): the register-tiled attention path (D and Dv multiples of 16)
 * computes each row's softmax vectorised over keys (ck_x86_expf of
 * ck_x86_math.h, 16 lane partial sums added in a fixed tree, p times the
 * reciprocal of the sum), and
 * layernorm's row sums (forward statistics, dx's two sums) run as 16 lane
 * partials in j order, added in the same fixed tree. The work is split over batch
 * items only (chunk = one (batch, head) item), and every write of an item's
 * gradients stays inside that item, so no two chunks touch the same memory.
 * A NULL pool, or scratch that cannot be had, runs the reference kernel. */
#ifndef CK_X86_KERNELS_H
#define CK_X86_KERNELS_H

#include <stdint.h>

#include "ck_pool.h"

/* 16 floats as one value (a GCC/clang vector extension; the rest is C99):
 * one zmm on x86-avx512, two ymm on x86-avx2. Arithmetic on it is lane-wise
 * IEEE float arithmetic (a scalar operand is broadcast), and with
 * -ffp-contract=off `a += x * y` stays a rounded multiply and a rounded add,
 * exactly as in the scalar reference loops. Loads and stores go through
 * CkX86Vec16u (any alignment, may alias floats): one vmovups each. Macros,
 * not functions: gcc warns (-Wpsabi) about 64-byte vectors passed by value
 * wherever AVX-512 is off (the x86-avx2 target, the unit-test build). */
typedef float CkX86Vec16 __attribute__((vector_size(64)));
typedef float CkX86Vec16u __attribute__((vector_size(64), aligned(4), may_alias));
#define CK_X86_LANES 16
#define CK_X86_VLOAD16(p) (*(const CkX86Vec16u *)(const void *)(p))
#define CK_X86_VSTORE16(p, v) (*(CkX86Vec16u *)(void *)(p) = (v))
/* all 16 lanes s (s is evaluated 16 times: pass a plain value) */
#define CK_X86_VSET16(s) ((CkX86Vec16){s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s})

/* ck_attention_f32 on the pool; scratch is the reference kernel's (S floats),
 * used only when falling back to it. */
void ck_x86_attention_f32(CkPool *pool, float *out, const float *q, const float *k, const float *v,
                          int64_t batch, int64_t T, int64_t S, int64_t D, int64_t Dv, int causal,
                          float scale, float *scratch);

/* ck_attention_backward_f32 on the pool (dq / dk / dv may be NULL; they are
 * accumulated into, as by the reference); scratch: 2*S floats, fallback only. */
void ck_x86_attention_backward_f32(CkPool *pool, float *dq, float *dk, float *dv, const float *dout,
                                   const float *q, const float *k, const float *v, int64_t batch,
                                   int64_t T, int64_t S, int64_t D, int64_t Dv, int causal, float scale,
                                   float *scratch);

/* The same two kernels over batch x heads items read and written in place
 * (a transformer's heads as column blocks of its qkv and merged rows, no
 * split or merge copies): item (n, h), n < batch, h < heads, has its row i
 * of operand X at X + lay[4X] + n lay[4X+1] + h lay[4X+2] + i lay[4X+3],
 * features contiguous, X in the order q, k, v, out (forward: 16 values) and
 * q, k, v, dout, dq, dk, dv (backward: 28). Every element is computed as by
 * the contiguous kernels on the gathered operands (the same bits); items
 * must not overlap in what they write. */
void ck_x86_attention_heads_f32(CkPool *pool, float *out, const float *q, const float *k, const float *v,
                                const int64_t *lay, int64_t batch, int64_t heads, int64_t T, int64_t S,
                                int64_t D, int64_t Dv, int causal, float scale, float *scratch);
void ck_x86_attention_heads_backward_f32(CkPool *pool, float *dq, float *dk, float *dv, const float *dout,
                                         const float *q, const float *k, const float *v, const int64_t *lay,
                                         int64_t batch, int64_t heads, int64_t T, int64_t S, int64_t D,
                                         int64_t Dv, int causal, float scale, float *scratch);

/* ck_layernorm_f32 on the pool: rows split into fixed blocks of
 * CK_X86_ROWS, each row the reference's formula (row sums as 16 lane
 * partials, see above). */
#define CK_X86_ROWS 16
void ck_x86_layernorm_f32(CkPool *pool, float *out, float *mean, float *rstd, const float *x,
                          const float *weight, const float *bias, int64_t rows, int64_t n, float eps);

/* ck_layernorm_backward_f32 on the pool: dx over the same row blocks,
 * then dweight / dbias over blocks of CK_X86_COLS columns, each column
 * summed over the rows in order as by the reference. */
#define CK_X86_COLS 16
void ck_x86_layernorm_backward_f32(CkPool *pool, float *dx, float *dweight, float *dbias, const float *dy,
                                   const float *x, const float *weight, const float *mean,
                                   const float *rstd, int64_t rows, int64_t n);

/* The whole backward of a layernorm in one call, its outputs SET (not
 * accumulated): each row's statistics recomputed from x as by
 * ck_x86_layernorm_f32 (written to mean / rstd, rows floats each), then
 * dx, dweight and dbias (each may be NULL) over the blocks above; res
 * (NULL, or rows x n floats: the residual branch's gradient) is added to
 * dx, dx = res + (0 + dx's value). The same bits as ck_x86_layernorm_f32
 * into mean / rstd, zeroed dx / dweight, ck_x86_layernorm_backward_f32,
 * ck_x86_sum_f32 of dy for dbias and the elementwise res + dx (the
 * sequence lower_x86.c folds into this call), for every thread count. */
void ck_x86_layernorm_backward_set_f32(CkPool *pool, float *dx, float *dweight, float *dbias, float *mean,
                                       float *rstd, const float *dy, const float *x, const float *weight,
                                       const float *res, int64_t rows, int64_t n, float eps);

/* ck_sum_f32 (out[a, c] = sum_j x[a, j, c], j in order from 0) on the pool:
 * chunks of CK_X86_ROWS outer indices times CK_X86_SUM_COLS inner indices,
 * the inner block summed as independent lanes (vectorized, same order). */
#define CK_X86_SUM_COLS 64
void ck_x86_sum_f32(CkPool *pool, float *out, const float *x, int64_t outer, int64_t n, int64_t inner);

/* The losses over long rows (pooled, vectorised) live beside these; the
 * generated code includes this header only. */
#include "ck_x86_nn.h"

#endif
