/* rt-min/ck_kernels.h - reference kernels of the primitive ops (C99).
 *
 * Copied verbatim into every generated project, and linked into ckc itself
 * (constant folding, the IR interpreter used by tests), so the compiler and
 * the programs it writes compute with the same code. Tensors are dense,
 * row-major, contiguous. Shapes are passed as collapsed extents so one kernel
 * serves every rank: a reduction over axis k of x[d0..dn] is called with
 * outer = d0*..*d(k-1), n = dk, inner = d(k+1)*..*dn.
 *
 * Elementwise ops are NOT here: lower/ turns them into loop nests whose bodies
 * use the scalar helpers below (so fusion can merge them). Kernels take the
 * memory they write as `out` first, inputs next, extents last (llm.c's manner).
 * Scratch memory, where needed, is caller-owned (bare-metal targets: no malloc). */
#ifndef CK_KERNELS_H
#define CK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- scalar helpers for emitted elementwise loops ------------------------------- */
float ck_sigmoidf(float x);
float ck_reluf(float x);
float ck_gelu_erff(float x);   /* 0.5 x (1 + erf(x / sqrt 2)) : PyTorch gelu(approximate='none') */
float ck_gelu_tanhf(float x);  /* PyTorch gelu(approximate='tanh') */
float ck_siluf(float x);
float ck_rsqrtf(float x);

/* ---- linear algebra ---------------------------------------------------------------- */

/* out[b] (M x N) = op(A[b]) @ op(B[b]) for b in [0, batch).
 * op(A) is A (M x K, row-major) or, if ta, the transpose of A stored K x M;
 * op(B) is B (K x N) or, if tb, the transpose of B stored N x K.
 * a_bstride / b_bstride: elements between consecutive batch matrices
 * (0 broadcasts one matrix over the batch). out is contiguous (batch*M*N).
 * Accumulates in float in k order (deterministic). */
void ck_matmul_f32(float *out, const float *a, const float *b, int64_t batch, int64_t M, int64_t N,
                   int64_t K, int ta, int tb, int64_t a_bstride, int64_t b_bstride);

/* ---- data movement (any element size) ------------------------------------------------ */

/* out = x permuted: out dim i = in dim perm[i]. rank <= 8. */
void ck_permute(void *out, const void *x, size_t elsize, int rank, const int64_t *in_dims,
                const int64_t *perm);
/* x viewed as (outer, n, inner); out = x[:, start:start+count*step:step, :]. */
void ck_slice(void *out, const void *x, size_t elsize, int64_t outer, int64_t n, int64_t inner,
              int64_t start, int64_t step, int64_t count);
/* Writes x, viewed as (outer, n_part, inner), into out viewed as (outer, n_total, inner)
 * at offset along the middle axis. concat = one call per input. */
void ck_concat_part(void *out, const void *x, size_t elsize, int64_t outer, int64_t n_part,
                    int64_t n_total, int64_t offset, int64_t inner);
/* NumPy broadcast_to: out has out_dims; x has in_dims of the same rank (1 where broadcast). */
void ck_broadcast(void *out, const void *x, size_t elsize, int rank, const int64_t *in_dims,
                  const int64_t *out_dims);

/* ---- reductions over the middle extent of (outer, n, inner) --------------------------- */
void ck_sum_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner);
void ck_mean_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner);
void ck_max_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner);
/* First index of the maximum (PyTorch semantics for ties); NaN wins. */
void ck_argmax_f32(int32_t *out, const float *x, int64_t outer, int64_t n, int64_t inner);

/* ---- neural-network primitives ------------------------------------------------------ */
void ck_softmax_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner);
void ck_log_softmax_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner);
/* Over the last axis of x viewed as (rows, n); weight/bias may be NULL.
 * mean/rstd (rows each) may be NULL; when given they are saved for backward. */
void ck_layernorm_f32(float *out, float *mean, float *rstd, const float *x, const float *weight,
                      const float *bias, int64_t rows, int64_t n, float eps);
void ck_rmsnorm_f32(float *out, float *rstd, const float *x, const float *weight, int64_t rows,
                    int64_t n, float eps);
/* out[i, :] = table[idx[i], :]. Returns -1 on success, or the position i of the
 * first index outside [0, V) (nothing is read out of bounds). */
int64_t ck_embedding_f32(float *out, const float *table, const int32_t *idx, int64_t n_idx,
                         int64_t V, int64_t C);
/* NCHW; w is [OC, C/groups, KH, KW]; bias may be NULL. Zero padding. */
void ck_conv2d_f32(float *out, const float *x, const float *w, const float *bias, int64_t N,
                   int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw, int64_t groups, int64_t OH, int64_t OW);
/* Padding positions are -inf for max and count as zeros in the divisor for avg
 * (PyTorch's count_include_pad=True). */
void ck_maxpool2d_f32(float *out, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                      int64_t OH, int64_t OW);
void ck_avgpool2d_f32(float *out, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                      int64_t OH, int64_t OW);
/* Scaled dot-product attention per batch item b in [0, batch):
 *   out[b] (T x Dv) = softmax(q[b] k[b]^T * scale + mask) v[b]
 * q: (T x D), k: (S x D), v: (S x Dv). causal masks key j > query i (+ S - T
 * offset when S > T, PyTorch's is_causal semantics for S == T).
 * scratch: S floats. */
void ck_attention_f32(float *out, const float *q, const float *k, const float *v, int64_t batch,
                      int64_t T, int64_t S, int64_t D, int64_t Dv, int causal, float scale,
                      float *scratch);
/* One decode position of causal attention with a K/V cache, per batch item b:
 * stores k[b], v[b] (the new row, D and Dv floats) at row pos of
 * kcache[b] (S x D) and vcache[b] (S x Dv), then
 *   out[b] (1 x Dv) = softmax(q[b] kcache[b][0..pos]^T * scale) vcache[b][0..pos]
 * with the float operations of ck_attention_f32 for query row pos, so it
 * equals that row of the causal attention over the whole sequence, bit for
 * bit. Rows 0..pos-1 of the caches must hold the earlier positions' k, v.
 * 0 <= pos < S (the caller checks). scratch: S floats. */
void ck_attention_decode_f32(float *out, const float *q, const float *k, const float *v, float *kcache,
                             float *vcache, int64_t batch, int64_t pos, int64_t S, int64_t D, int64_t Dv,
                             float scale, float *scratch);

#endif
