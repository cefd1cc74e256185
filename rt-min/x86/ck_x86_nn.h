/* rt-min/x86/ck_x86_nn.h - x86 targets' pooled, vectorised losses over
 * long rows (the language-model head: rows = batch * T tokens, V = the
 * vocabulary, 50257 for GPT-2).
 *
 * Same contract as the reference kernels of rt-min/ck_optim.h (the pool
 * first), but not the same bits: the row's log-sum-exp is a max and a sum of
 * exponentials over 16 lanes, each lane in j order, the lanes then added in a
 * fixed tree, and the exponential is a polynomial (Cody-Waite reduction,
 * Cephes' degree-6 minimax; at most 2 ulp from the correctly rounded expf on
 * [-87, 0], where the shifted logits lie). So the results differ from the
 * reference (and c99) by rounding only; the unit tests bound it against a
 * double-precision oracle. The work is split into chunks of whole rows,
 * their number chosen from rows and V only, each row's sums in a fixed
 * order, so the results are bitwise identical for every thread count.
 * Rows holding an infinity or a NaN take the reference's scalar path
 * (same NaN/infinity results as c99). A NULL pool, or scratch that cannot
 * be had, runs the reference kernel. */
#ifndef CK_X86_NN_H
#define CK_X86_NN_H

#include <stdint.h>

#include "ck_pool.h"

/* ck_cross_entropy_f32 on the pool: per-row log-sum-exp (and label
 * smoothing sum) in parallel, then the mean over the counted rows summed
 * in double in row order by the caller, as by the reference. Returns -1, or
 * the first bad target (nothing written). */
int64_t ck_x86_cross_entropy_f32(CkPool *pool, float *loss, const float *logits, const int32_t *targets,
                                 int64_t rows, int64_t V, int32_t ignore_index, float label_smoothing);

/* ck_cross_entropy_backward_f32 on the pool: dlogits[r, j] += (dloss /
 * count) * (p_j - (1-e)[j == t_r] - e/V), rows in parallel. */
int64_t ck_x86_cross_entropy_backward_f32(CkPool *pool, float *dlogits, const float *dloss,
                                          const float *logits, const int32_t *targets, int64_t rows,
                                          int64_t V, int32_t ignore_index, float label_smoothing);

/* An embedding's gradient added into the parameter gradient in one pass:
 *   grads[v, :] = grads[v, :] + (base[v, :] + e[v, :])   (base NULL: grads + e)
 * where e[v, :] = 0 + the rows dy[i, :] with idx[i] == v, in index order.
 * That is, bit for bit, what the four steps the c99 lowering writes give:
 * memset(e); ck_embedding_backward_f32(e, dy, idx, ...); u = base + e (the
 * tied head's gradient, when there is one); grads += u, without the
 * table-sized temporary e, its memset and the two table-sized passes (GPT-2:
 * 154 MB each). The rows are split into fixed blocks of CK_X86_EMB_ROWS
 * (bitwise the same for every thread count). ws: V + 1 + n_idx int32 of
 * workspace (a stable counting sort of idx). Returns -1, or the position of
 * the first index outside [0, V), in which case nothing is written. */
#define CK_X86_EMB_ROWS 64
int64_t ck_x86_embedding_grad_f32(CkPool *pool, float *grads, const float *base, const float *dy,
                                  const int32_t *idx, int64_t n_idx, int64_t V, int64_t C, void *ws);

#endif
