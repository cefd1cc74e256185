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

#endif
