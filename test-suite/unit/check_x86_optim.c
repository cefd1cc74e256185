/* test-suite/unit/check_x86_optim.c - the x86 optimizer step of
 * rt-min/x86/ck_x86_optim.h (global gradient norm, fused update).
 *
 * The update's contract is the reference path of ck_main (ck_scale_f32 by
 * 1/accum, ck_scale_f32 by the clip coefficient, then ck_sgd_update_f32 /
 * ck_adam_update_f32 per trainable param), element for element with the same
 * float operations, so the check is bitwise equality (memcmp) of weights and
 * moments, for every instruction set the CPU has (scalar, AVX2, AVX-512), a
 * NULL pool and pools of 1, 2 and 3 threads. The table of cases covers every
 * optimizer (SGD plain / momentum / dampening / Nesterov, first and later
 * steps; Adam; AdamW), weight decay on and off per param, clipping and
 * accumulation; the params cover sizes off the 16-lane vectors and off the
 * 4096-float blocks, empty and non-trainable params (which must stay
 * untouched), and values that reach the subnormal range (vectors holding
 * them take the double-rounded path of the vector loops, the others the
 * plain float path: both must give the reference's bits).
 *
 * The norm is checked three ways: bitwise against an independent
 * implementation of the documented order (lane k % 32, fixed tree, blocks in
 * order), bitwise equal over ISAs and thread counts, and within 1e-13
 * relative of ck_grad_sq_norm_f32 (its single index-order chain). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt-min/ck_model.h"
#include "rt-min/ck_optim.h"

#if defined(__x86_64__)
#include "rt-min/x86/ck_pool.h"
#include "rt-min/x86/ck_x86_optim.h"

typedef struct XoRng {
  uint64_t s;
} XoRng;

static double xo_unit(XoRng *r) {
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(r->s >> 11) / (double)(1ULL << 53);
}

/* Mostly N(0,1)-ish magnitudes spread over many binades, with exact zeros
 * and values near and below FLT_MIN mixed in (the range where a fast path
 * could take a shortcut), scaled by `scale`. */
static float xo_value(XoRng *r, double scale) {
  double u = xo_unit(r), e = xo_unit(r);
  double sign = xo_unit(r) < 0.5 ? -1.0 : 1.0;
  if (u < 0.05) return 0.0f;
  if (u < 0.10) return (float)(sign * ldexp(1.0 + e, -126 - (int)(e * 20.0))); /* subnormal */
  if (u < 0.15) return (float)(sign * ldexp(1.0 + e, -100 - (int)(e * 26.0)));  /* tiny normal */
  return (float)(sign * scale * ldexp(0.5 + e, -(int)(xo_unit(r) * 12.0)));
}

static float *xo_fill(XoRng *r, int64_t n, double scale, int nonneg) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) {
    p[i] = xo_value(r, scale);
    if (nonneg) p[i] = fabsf(p[i]);
  }
  return p;
}

static float *xo_copy(const float *x, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  memcpy(p, x, (size_t)n * sizeof *p);
  return p;
}

/* The parameter table: sizes off the vectors and blocks, an empty param,
 * non-trainable ones between trainable ones; decay on every other. */
static const int64_t xo_sizes[] = {1, 15, 4097, 16, 0, 17, 4096, 33, 12289, 4095, 7, 9000};
#define XO_NPARAMS ((int)(sizeof xo_sizes / sizeof xo_sizes[0]))

static int64_t xo_params(CkParamDesc *pd, int all_trainable) {
  int64_t off = 0;
  memset(pd, 0, sizeof(CkParamDesc) * XO_NPARAMS);
  for (int i = 0; i < XO_NPARAMS; i++) {
    pd[i].name = "p";
    pd[i].rank = 1;
    pd[i].dims[0] = xo_sizes[i];
    pd[i].numel = xo_sizes[i];
    pd[i].offset = off;
    pd[i].trainable = all_trainable || (i % 5 != 2);
    pd[i].decay = i % 2 == 0;
    off += xo_sizes[i];
  }
  return off;
}

/* optim, momentum, dampening, nesterov, weight_decay, clip, accum, step */
typedef struct XoCase {
  int optim;
  double momentum, dampening;
  int nesterov;
  double wd, clip;
  int64_t accum, step;
} XoCase;

static const XoCase xo_cases[] = {
    {CK_OPTIM_SGD, 0.0, 0.0, 0, 0.0, 0.0, 1, 1},      {CK_OPTIM_SGD, 0.0, 0.0, 0, 0.01, 1.0, 1, 4},
    {CK_OPTIM_SGD, 0.9, 0.0, 0, 0.0, 0.0, 1, 1},      {CK_OPTIM_SGD, 0.9, 0.0, 0, 0.0, 0.0, 1, 2},
    {CK_OPTIM_SGD, 0.9, 0.1, 0, 5e-4, 0.5, 3, 7},     {CK_OPTIM_SGD, 0.9, 0.0, 1, 5e-4, 0.0, 1, 1},
    {CK_OPTIM_SGD, 0.8, 0.0, 1, 0.0, 2.0, 4, 3},      {CK_OPTIM_ADAM, 0, 0, 0, 0.0, 0.0, 1, 1},
    {CK_OPTIM_ADAM, 0, 0, 0, 0.01, 1.0, 1, 5},        {CK_OPTIM_ADAM, 0, 0, 0, 0.0, 0.25, 2, 100},
    {CK_OPTIM_ADAMW, 0, 0, 0, 0.1, 1.0, 1, 1},        {CK_OPTIM_ADAMW, 0, 0, 0, 0.1, 0.0, 1, 9},
    {CK_OPTIM_ADAMW, 0, 0, 0, 0.0, 1.0, 3, 2},        {CK_OPTIM_ADAMW, 0, 0, 0, 0.1, 0.5, 2, 1000},
};
#define XO_NCASES ((int)(sizeof xo_cases / sizeof xo_cases[0]))

/* ck_main's reference path (rt-min/ck_main.c train_one without optim_ops). */
static double xo_reference(const CkParamDesc *pd, const XoCase *c, float *w, float *g, float *m0, float *m1,
                           double lr, float *coef_out) {
  double sq = 0.0, gnorm;
  float gscale = c->accum > 1 ? (float)(1.0 / (double)c->accum) : 1.0f, coef;
  for (int i = 0; i < XO_NPARAMS; i++) {
    if (!pd[i].trainable) continue;
    if (c->accum > 1) ck_scale_f32(g + pd[i].offset, pd[i].numel, gscale);
    sq += ck_grad_sq_norm_f32(g + pd[i].offset, pd[i].numel);
  }
  gnorm = sqrt(sq);
  coef = c->clip > 0 ? (float)ck_clip_coef(gnorm, c->clip) : 1.0f;
  if (c->clip > 0)
    for (int i = 0; i < XO_NPARAMS; i++)
      if (pd[i].trainable) ck_scale_f32(g + pd[i].offset, pd[i].numel, coef);
  for (int i = 0; i < XO_NPARAMS; i++) {
    const CkParamDesc *p = &pd[i];
    double wd = p->decay ? c->wd : 0.0;
    int64_t o = p->offset;
    if (!p->trainable) continue;
    if (c->optim == CK_OPTIM_SGD)
      ck_sgd_update_f32(w + o, g + o, c->momentum != 0 ? m0 + o : NULL, p->numel, lr, c->momentum, c->dampening, wd,
                        c->nesterov, c->step == 1);
    else
      ck_adam_update_f32(w + o, g + o, m0 + o, m1 + o, p->numel, lr, 0.9, 0.95, 1e-8, wd, c->step,
                         c->optim == CK_OPTIM_ADAMW);
  }
  *coef_out = coef;
  return sq;
}

static CkPool *xo_pool(int which) { return which == 0 ? NULL : ck_pool_create(which); }

/* Params i % 3 != 0 get no values below 2^-30 (zeros stay): their vectors
 * take the plain float path, the others mostly the subnormal-safe one. */
static void xo_tame(const CkParamDesc *pd, float *x) {
  for (int i = 0; i < XO_NPARAMS; i++) {
    if (i % 3 == 0) continue;
    for (int64_t k = pd[i].offset; k < pd[i].offset + pd[i].numel; k++)
      if (x[k] != 0.0f && fabsf(x[k]) < 0x1p-30f) x[k] = x[k] < 0 ? -0.25f : 0.25f;
  }
}

START_TEST(test_update_bitwise) {
  const XoCase *c = &xo_cases[_i];
  CkParamDesc pd[XO_NPARAMS];
  int64_t n = xo_params(pd, 0);
  XoRng r = {(uint64_t)_i * 1000003u + 17u};
  double lr = c->optim == CK_OPTIM_SGD ? 0.05 : 1e-3;
  /* big gradients so that clip = 0.25..2 really clips */
  float *g0 = xo_fill(&r, n, 3.0, 0), *w0 = xo_fill(&r, n, 1.0, 0);
  float *m00 = xo_fill(&r, n, 0.1, 0), *m10 = xo_fill(&r, n, 0.01, 1);
  xo_tame(pd, g0), xo_tame(pd, w0), xo_tame(pd, m00), xo_tame(pd, m10);
  float *rw = xo_copy(w0, n), *rg = xo_copy(g0, n), *rm0 = xo_copy(m00, n), *rm1 = xo_copy(m10, n);
  float coef;
  int checked = 0;
  xo_reference(pd, c, rw, rg, rm0, rm1, lr, &coef);
  if (c->clip > 0) ck_assert_msg(coef < 1.0f || c->clip >= 2.0, "case %d does not clip (coef %g)", _i, coef);
  for (int isa = CK_X86_OPTIM_SCALAR; isa <= CK_X86_OPTIM_AVX512; isa++) {
    if (!ck_x86_optim_cpu_has(isa)) continue;
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = xo_pool(pw);
      float *w = xo_copy(w0, n), *g = xo_copy(g0, n), *m0 = xo_copy(m00, n), *m1 = xo_copy(m10, n);
      CkOptimStep s;
      memset(&s, 0, sizeof s);
      s.optim = c->optim;
      s.lr = lr;
      s.momentum = c->momentum;
      s.dampening = c->dampening;
      s.beta1 = 0.9;
      s.beta2 = 0.95;
      s.eps = 1e-8;
      s.weight_decay = c->wd;
      s.nesterov = c->nesterov;
      s.first_step = c->step == 1;
      s.t = c->step;
      s.gscale = c->accum > 1 ? (float)(1.0 / (double)c->accum) : 1.0f;
      s.coef = coef;
      ck_x86_optim_update_f32_isa(isa, pool, pd, XO_NPARAMS, w, g, m0, c->optim == CK_OPTIM_SGD ? NULL : m1, &s);
      ck_assert_msg(memcmp(w, rw, (size_t)n * sizeof *w) == 0, "case %d isa %d pool %d: weights differ", _i, isa, pw);
      if (c->optim != CK_OPTIM_SGD || c->momentum != 0)
        ck_assert_msg(memcmp(m0, rm0, (size_t)n * sizeof *m0) == 0, "case %d isa %d pool %d: moment 0 differs", _i,
                      isa, pw);
      else
        ck_assert_msg(memcmp(m0, m00, (size_t)n * sizeof *m0) == 0, "case %d: unused buffer written", _i);
      if (c->optim != CK_OPTIM_SGD)
        ck_assert_msg(memcmp(m1, rm1, (size_t)n * sizeof *m1) == 0, "case %d isa %d pool %d: moment 1 differs", _i,
                      isa, pw);
      ck_assert_msg(memcmp(g, g0, (size_t)n * sizeof *g) == 0, "case %d: grads were written", _i);
      free(w), free(g), free(m0), free(m1);
      ck_pool_destroy(pool);
      checked++;
    }
  }
  ck_assert_int_ge(checked, 4);
  /* the reference did move every trainable param and none of the others */
  for (int i = 0; i < XO_NPARAMS; i++) {
    int64_t o = pd[i].offset, moved = 0;
    for (int64_t k = 0; k < pd[i].numel; k++) moved += memcmp(&rw[o + k], &w0[o + k], sizeof(float)) != 0;
    if (!pd[i].trainable) ck_assert_int_eq(moved, 0);
    else if (pd[i].numel > 8) ck_assert_int_gt(moved, 0);
  }
  free(g0), free(w0), free(m00), free(m10), free(rw), free(rg), free(rm0), free(rm1);
}
END_TEST

/* The documented norm order, written out independently: per trainable
 * param, blocks of 4096; lane k % 32 in double; tree 16, 8, 4, 2, 1. */
static double xo_norm_spec(const CkParamDesc *pd, const float *g, float gscale) {
  double total = 0.0;
  for (int i = 0; i < XO_NPARAMS; i++) {
    if (!pd[i].trainable) continue;
    for (int64_t b0 = 0; b0 < pd[i].numel; b0 += 4096) {
      double lane[32] = {0};
      int64_t len = pd[i].numel - b0 < 4096 ? pd[i].numel - b0 : 4096;
      for (int64_t k = 0; k < len; k++) {
        float x = g[pd[i].offset + b0 + k] * gscale;
        lane[k % 32] += (double)x * (double)x;
      }
      for (int w = 16; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) lane[j] += lane[j + w];
      total += lane[0];
    }
  }
  return total;
}

START_TEST(test_norm) {
  CkParamDesc pd[XO_NPARAMS];
  int64_t n = xo_params(pd, _i == 2);
  XoRng r = {(uint64_t)_i * 7919u + 5u};
  float gscale = _i == 1 ? (float)(1.0 / 3.0) : 1.0f;
  float *g = xo_fill(&r, n, 2.0, 0), *gs = xo_copy(g, n);
  double ref = 0.0, spec = xo_norm_spec(pd, g, gscale);
  int checked = 0;
  for (int i = 0; i < XO_NPARAMS; i++) {
    if (!pd[i].trainable) continue;
    if (gscale != 1.0f) ck_scale_f32(gs + pd[i].offset, pd[i].numel, gscale);
    ref += ck_grad_sq_norm_f32(gs + pd[i].offset, pd[i].numel);
  }
  ck_assert_msg(fabs(spec - ref) <= 1e-13 * ref, "spec %.17g vs reference %.17g", spec, ref);
  for (int isa = CK_X86_OPTIM_SCALAR; isa <= CK_X86_OPTIM_AVX512; isa++) {
    if (!ck_x86_optim_cpu_has(isa)) continue;
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = xo_pool(pw);
      double got = ck_x86_grad_sq_norm_f32_isa(isa, pool, pd, XO_NPARAMS, g, gscale);
      ck_assert_msg(memcmp(&got, &spec, sizeof got) == 0, "isa %d pool %d: %.17g, the documented order gives %.17g",
                    isa, pw, got, spec);
      ck_pool_destroy(pool);
      checked++;
    }
  }
  ck_assert_int_ge(checked, 4);
  ck_assert(ck_x86_grad_sq_norm_f32(NULL, pd, XO_NPARAMS, g, gscale) == spec);
  free(g), free(gs);
}
END_TEST

/* The ops table ck_main calls: same results as the functions, ctx = pool. */
START_TEST(test_ops_table) {
  CkParamDesc pd[XO_NPARAMS];
  int64_t n = xo_params(pd, 0);
  XoRng r = {99u};
  float *g = xo_fill(&r, n, 1.0, 0), *w = xo_fill(&r, n, 1.0, 0), *m0 = xo_fill(&r, n, 0.1, 0);
  float *m1 = xo_fill(&r, n, 0.01, 1);
  float *w2 = xo_copy(w, n), *m02 = xo_copy(m0, n), *m12 = xo_copy(m1, n);
  CkPool *pool = ck_pool_create(2);
  CkOptimStep s;
  memset(&s, 0, sizeof s);
  s.optim = CK_OPTIM_ADAMW;
  s.lr = 1e-3;
  s.beta1 = 0.9;
  s.beta2 = 0.999;
  s.eps = 1e-8;
  s.weight_decay = 0.1;
  s.t = 3;
  s.gscale = 1.0f;
  s.coef = 0.5f;
  ck_assert(ck_x86_optim_ops.grad_sq_norm(pool, pd, XO_NPARAMS, g, 1.0f) ==
            ck_x86_grad_sq_norm_f32(NULL, pd, XO_NPARAMS, g, 1.0f));
  ck_x86_optim_ops.update(pool, pd, XO_NPARAMS, w, g, m0, m1, &s);
  ck_x86_optim_update_f32_isa(CK_X86_OPTIM_SCALAR, NULL, pd, XO_NPARAMS, w2, g, m02, m12, &s);
  ck_assert(memcmp(w, w2, (size_t)n * sizeof *w) == 0);
  ck_assert(memcmp(m0, m02, (size_t)n * sizeof *w) == 0);
  ck_assert(memcmp(m1, m12, (size_t)n * sizeof *w) == 0);
  ck_pool_destroy(pool);
  free(g), free(w), free(m0), free(m1), free(w2), free(m02), free(m12);
}
END_TEST

Suite *check_x86_optim_suite(void) {
  Suite *s = suite_create("x86_optim");
  TCase *tc = tcase_create("bitwise_vs_reference");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_update_bitwise, 0, XO_NCASES);
  tcase_add_loop_test(tc, test_norm, 0, 3);
  tcase_add_test(tc, test_ops_table);
  suite_add_tcase(s, tc);
  return s;
}

#else /* not x86-64 */

START_TEST(test_not_x86) { printf("check_x86_optim: NOTE: not an x86-64 host, tests skipped\n"); }
END_TEST

Suite *check_x86_optim_suite(void) {
  Suite *s = suite_create("x86_optim");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}
#endif
