/* rt-min/ck_grad.h - backward (gradient) kernels of the primitive ops (C99).
 *
 * Companions of the forward kernels in ck_kernels.h, same conventions: dense
 * row-major contiguous tensors, collapsed extents, outputs first, inputs next,
 * extents last, caller-owned scratch, no allocation, no stdio.
 *
 * ACCUMULATION: every gradient output (every `d*` pointer) is ACCUMULATED
 * into (`d += ...`), activations and parameters alike, so gradient
 * accumulation windows and fan-out (one tensor used twice) need no extra
 * buffers. Callers zero the buffers at the start of a step. Kernels that
 * gather (softmax, norms, conv2d, attention's dq, the max/argmax reduction)
 * first form the fresh gradient of an element in a local float and add it
 * once; kernels that scatter (embedding, pooling, attention's dk/dv) add into
 * the buffer term by term in a fixed order.
 *
 * DETERMINISM: every sum runs in one fixed order (documented per kernel), so
 * results are bitwise reproducible run to run on a given compiler and libm.
 * No atomics, no threads.
 *
 * Elementwise ops have no kernels here: the autodiff pass composes their
 * gradients from IR ops. */
#ifndef CK_GRAD_H
#define CK_GRAD_H

#include <stddef.h>
#include <stdint.h>

/* softmax over the middle extent of (outer, n, inner); y = the forward output.
 *   dx += y * (dy - sum_j dy_j y_j)            (sum in j order) */
void ck_softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer, int64_t n,
                             int64_t inner);
/* log_softmax; y = the forward output (log-probabilities).
 *   dx += dy - exp(y) * sum_j dy_j             (sum in j order) */
void ck_log_softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer,
                                 int64_t n, int64_t inner);

/* max over the middle extent (torch.max(x, dim) values): the whole gradient
 * goes to the FIRST maximum (the index ck_argmax_f32 returns; the first NaN
 * when there is one). dx += dy at that index. */
void ck_max_backward_f32(float *dx, const float *x, const float *dy, int64_t outer, int64_t n,
                         int64_t inner);

/* LayerNorm over the last axis of (rows, n), with mean/rstd saved by
 * ck_layernorm_f32. weight may be NULL (no affine scale; dweight may still be
 * requested: it is then the gradient of an implicit weight of ones);
 * dweight/dbias may be NULL (not wanted); dx may be NULL.
 *   xhat = (x - mean) * rstd, g = dy * weight
 *   dx += rstd * (g - mean_j(g) - xhat * mean_j(g * xhat))
 *   dweight[j] += sum_r dy * xhat, dbias[j] += sum_r dy    (rows in order) */
void ck_layernorm_backward_f32(float *dx, float *dweight, float *dbias, const float *dy,
                               const float *x, const float *weight, const float *mean,
                               const float *rstd, int64_t rows, int64_t n);
/* RMSNorm over the last axis of (rows, n), rstd saved by ck_rmsnorm_f32.
 * weight/dweight/dx may be NULL as for layernorm.
 *   g = dy * weight
 *   dx += rstd * g - x * rstd^3 * mean_j(g * x)
 *   dweight[j] += sum_r dy * x * rstd */
void ck_rmsnorm_backward_f32(float *dx, float *dweight, const float *dy, const float *x,
                             const float *weight, const float *rstd, int64_t rows, int64_t n);

/* dtable[idx[i], :] += dy[i, :] for i = 0 .. n_idx-1 in that order (repeated
 * indices add in index order). Every index is checked first: returns -1, or
 * the position of the first index outside [0, V), in which case nothing is
 * written. */
int64_t ck_embedding_backward_f32(float *dtable, const float *dy, const int32_t *idx,
                                  int64_t n_idx, int64_t V, int64_t C);

/* Gradients of ck_conv2d_f32 (NCHW, w [OC, C/groups, KH, KW], zero padding,
 * grouped). Any of dx / dw / dbias may be NULL (not wanted).
 *   dx[n,c,ih,iw] += sum over (oc of the group, kh, kw) of dy * w
 *   dw[oc,c,kh,kw] += sum over (n, oh, ow) of dy * x
 *   dbias[oc]      += sum over (n, oh, ow) of dy
 * each sum in the loop order written, gathered in a float, added once. */
void ck_conv2d_backward_f32(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                            const float *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC,
                            int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                            int64_t groups, int64_t OH, int64_t OW);

/* Max pooling: each output's gradient goes to the cell PyTorch records as its
 * index: the first maximum in (kh, kw) order, or the last NaN of the window.
 * dx += ..., outputs visited in (n, c, oh, ow) order. */
void ck_maxpool2d_backward_f32(float *dx, const float *dy, const float *x, int64_t N, int64_t C,
                               int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                               int64_t sw, int64_t ph, int64_t pw, int64_t OH, int64_t OW);
/* Average pooling (count_include_pad=True, divisor as the forward):
 * dx[cell] += dy / count for every in-bounds cell of each window, outputs
 * visited in (n, c, oh, ow) order. */
void ck_avgpool2d_backward_f32(float *dx, const float *dy, int64_t N, int64_t C, int64_t H,
                               int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                               int64_t ph, int64_t pw, int64_t OH, int64_t OW);

/* Gradients of ck_attention_f32 (same shapes, mask and scale). The
 * probabilities are recomputed per query row (nothing saved by the forward).
 * For each batch item, query rows i = 0 .. T-1 in order:
 *   p = softmax(scale q_i k^T + mask), dp_j = dout_i . v_j,
 *   ds_j = p_j (dp_j - sum_j p_j dp_j)
 *   dv_j += p_j dout_i, dk_j += scale ds_j q_i      (scattered, i order)
 *   dq_i += scale sum_j ds_j k_j                     (gathered, j order)
 * Any of dq / dk / dv may be NULL. scratch: 2*S floats. */
void ck_attention_backward_f32(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, int64_t batch, int64_t T, int64_t S,
                               int64_t D, int64_t Dv, int causal, float scale, float *scratch);

#endif
