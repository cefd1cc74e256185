/* rt-min/x86/ck_x86_optim.h - the optimizer step of the x86 targets: the
 * global gradient norm and one fused pass per parameter that scales the
 * gradient (1/accum, then the clip coefficient) and applies SGD (momentum,
 * Nesterov) or Adam/AdamW, vectorised and spread over the pool (hosted C99).
 *
 * What it replaces: ck_main's reference path, which per parameter calls
 * ck_scale_f32 (accumulation), ck_grad_sq_norm_f32, ck_scale_f32 (clip) and
 * ck_sgd_update_f32 / ck_adam_update_f32 (rt-min/ck_optim.h): scalar loops,
 * five passes over the gradients.
 *
 * Numerics:
 *   - update: every element goes through the float operations of the
 *     reference kernel in the same order (g * gscale, * coef, then the
 *     kernel's mul/add/sqrt/div sequence; sqrt and div are IEEE exact in
 *     every ISA), so parameters and moments are BITWISE equal to the
 *     reference path's, hence to c99's, for any ISA and thread count.
 *   - norm: squares are summed in double in a fixed order that differs from
 *     the reference's single index-order chain: each trainable param is cut
 *     into blocks of CK_X86_OPTIM_BLOCK floats; element k of a block goes to
 *     lane k % 32 (32 double accumulators, each in index order); the lanes
 *     are combined by the fixed tree l[j] + l[j+16], then +8, +4, +2, +1;
 *     block sums are added in (param, block) order from 0. The square of a
 *     float is exact in double, so only the additions round: the result is
 *     within a few double ulps of ck_grad_sq_norm_f32's, and the same bits
 *     for every ISA variant and thread count (chunks = blocks, from the
 *     sizes only).
 * Requires the project's -ffp-contract=off (the x86 targets' flags; GCC's
 * default in -std=c99 mode): a contracted multiply-add would round once. */
#ifndef CK_X86_OPTIM_H
#define CK_X86_OPTIM_H

#include <stdint.h>

#include "ck_model.h"
#include "ck_pool.h"

/* Floats per norm block and per update chunk (one pool chunk each). */
#define CK_X86_OPTIM_BLOCK 4096
/* Double accumulators per norm block. */
#define CK_X86_OPTIM_LANES 32

/* Instruction sets of the loops (the results never depend on the choice). */
enum { CK_X86_OPTIM_SCALAR, CK_X86_OPTIM_AVX2, CK_X86_OPTIM_AVX512 };
/* 1 when this CPU (and build: CK_GEMM_NO_AVX512 rules AVX-512 out) runs isa. */
int ck_x86_optim_cpu_has(int isa);
/* The widest isa ck_x86_optim_cpu_has accepts. */
int ck_x86_optim_best_isa(void);

/* Sum over the trainable params of ((float)(g * gscale))^2, in the order
 * above. pool may be NULL (one thread, no scratch). */
double ck_x86_grad_sq_norm_f32(CkPool *pool, const CkParamDesc *params, int nparams, const float *grads,
                               float gscale);

/* The update of every trainable param (offsets into weights, grads and the
 * moment blobs as in CkParamDesc) with s's hyper-parameters; s->weight_decay
 * applies to params with `decay` set. SGD: mom0 is the momentum buffer
 * (NULL when momentum == 0), mom1 unused; Adam/AdamW: mom0 = m, mom1 = v.
 * grads are only read. */
void ck_x86_optim_update_f32(CkPool *pool, const CkParamDesc *params, int nparams, float *weights,
                             const float *grads, float *mom0, float *mom1, const CkOptimStep *s);

/* The same two with the instruction set chosen by the caller (tests);
 * an isa this CPU lacks runs the scalar loops. */
double ck_x86_grad_sq_norm_f32_isa(int isa, CkPool *pool, const CkParamDesc *params, int nparams,
                                   const float *grads, float gscale);
void ck_x86_optim_update_f32_isa(int isa, CkPool *pool, const CkParamDesc *params, int nparams,
                                 float *weights, const float *grads, float *mom0, float *mom1,
                                 const CkOptimStep *s);

/* The table main.c hands to ck_main (CkTrainDesc.optim_ops): the two
 * functions above with ctx = the CkPool. */
extern const CkOptimOps ck_x86_optim_ops;

#endif
