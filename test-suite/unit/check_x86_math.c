/* test-suite/unit/check_x86_math.c - the inline float math of
 * rt-min/x86/ck_x86_math.h (what the x86 targets' elementwise loops call).
 *
 * Each function is compared with libm in double (the exact value to far more
 * than float precision) over a sweep of float bit patterns: every 1021st
 * pattern of all 2^32 (both signs, every exponent: zeros, subnormals, values
 * near 1, huge values, +-inf and NaNs), and every pattern of a dense window
 * around 1 (all floats in [0.5, 4) and their negatives, step 7). The error is
 * measured in ulp of the exact result (its float spacing, at least 2^-149),
 * and each function's bound is the one its header states. Special values
 * (inf, -0, NaN, the saturation points) are checked exactly, and the
 * functions that are the reference's own expression (relu, rsqrt) bit for
 * bit against rt-min/ck_kernels.c. A wrong coefficient, a wrong range split,
 * a select that drops NaN or an exponent built wrong fails here. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rt-min/ck_kernels.h"
#include "rt-min/x86/ck_x86_math.h"

/* ---- references in double ---------------------------------------------------------- */

static double xm_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double xm_silu(double x) { return x / (1.0 + exp(-x)); }
/* The GELUs without cancellation (0.5 (1 + tanh u) = 1 / (1 + e^-2u) and
 * 1 + erf(-t) = erfc(t)), so that their tails are exact in double too. */
static double xm_gelu_tanh(double x) {
  return x / (1.0 + exp(-2.0 * 0.79788456080286535588 * (x + 0.044715 * x * x * x)));
}
static double xm_gelu_erf(double x) { return 0.5 * x * erfc(-x * 0.70710678118654752440); }

/* The error of got in ulp of the exact value want: the float spacing at
 * |want| (2^-149 below the normal range). A result that must round to inf
 * must be that inf; NaN must give NaN. Returns HUGE_VAL for a mismatch. */
static double xm_ulp_err(float got, double want) {
  if (isnan(want)) return isnan(got) ? 0.0 : HUGE_VAL;
  if (isinf((float)want)) return got == (float)want ? 0.0 : HUGE_VAL;
  if (isnan(got) || isinf(got)) return HUGE_VAL;
  double a = fabs(want);
  double ulp = ldexp(1.0, -149);
  if (a >= ldexp(1.0, -126)) {
    int e;
    frexp(a, &e); /* a in [2^(e-1), 2^e) */
    ulp = ldexp(1.0, e - 24);
  }
  return fabs((double)got - want) / ulp;
}

/* ---- the table of functions and bounds ------------------------------------------------ */

typedef struct XmCase {
  const char *name;
  float (*fn)(float);
  double (*ref)(double);
  double max_ulp;   /* the header's bound */
  int bound;        /* how the bound applies: XM_* */
} XmCase;

enum {
  XM_ALL,        /* max_ulp everywhere */
  XM_NORMAL,     /* max_ulp for x >= -87 (e^x normal); below, abs error <= FLT_MIN */
  XM_GELU_TANH,  /* max_ulp for x >= -1, then max_ulp + 3 |2u|; results below 2^-100: absolute */
  XM_GELU_ERF,   /* max_ulp for x >= -0.5, then abs error <= max_ulp ulp + 2^-24 |x| */
};

/* Wrappers: the functions are static inline, the table wants pointers. */
static float xm_expf(float x) { return ck_x86_expf(x); }
static float xm_logf(float x) { return ck_x86_logf(x); }
static float xm_tanhf(float x) { return ck_x86_tanhf(x); }
static float xm_erff(float x) { return ck_x86_erff(x); }
static float xm_sigmoidf(float x) { return ck_x86_sigmoidf(x); }
static float xm_siluf(float x) { return ck_x86_siluf(x); }
static float xm_gelu_tanhf(float x) { return ck_x86_gelu_tanhf(x); }
static float xm_gelu_erff(float x) { return ck_x86_gelu_erff(x); }

static const XmCase xm_cases[] = {
    {"expf", xm_expf, exp, 1.0, XM_ALL},
    {"logf", xm_logf, log, 1.0, XM_ALL},
    {"tanhf", xm_tanhf, tanh, 2.0, XM_ALL},
    {"erff", xm_erff, erf, 3.0, XM_ALL},
    {"sigmoidf", xm_sigmoidf, xm_sigmoid, 3.0, XM_NORMAL},
    {"siluf", xm_siluf, xm_silu, 4.0, XM_NORMAL},
    {"gelu_tanhf", xm_gelu_tanhf, xm_gelu_tanh, 3.0, XM_GELU_TANH},
    {"gelu_erff", xm_gelu_erff, xm_gelu_erf, 3.0, XM_GELU_ERF},
};
#define XM_NCASES ((int)(sizeof xm_cases / sizeof xm_cases[0]))

typedef struct XmWorst {
  double excess; /* error / allowed error; > 1 fails */
  double ulp;    /* the plain ulp error at that point */
  float x, got;
  double want;
  long count;
} XmWorst;

/* One point: the error against the case's bound, kept if it is the worst. */
static void xm_check_point(const XmCase *c, float x, XmWorst *w) {
  float got = c->fn(x);
  double want = c->ref((double)x);
  double ulp = xm_ulp_err(got, want);
  double allowed = c->max_ulp;
  double err = ulp;
  if (ulp < HUGE_VAL && !isnan(want) && !isinf((float)want)) {
    double aerr = fabs((double)got - want);
    double unit = ulp > 0.0 ? aerr / ulp : 0.0; /* the ulp at want */
    switch (c->bound) {
    case XM_NORMAL:
      if (x < -87.0f) { /* e^x is subnormal: only an absolute bound */
        err = aerr / FLT_MIN;
        allowed = 1.0;
      }
      break;
    case XM_GELU_TANH:
      if (x < -1.0f) {
        double u2 = fabs(2.0 * 0.79788456080286535588 * ((double)x + 0.044715 * (double)x * x * x));
        if (fabs(want) < 0x1p-100) { /* e^-2u overflows: the result may be -0 */
          err = aerr / 0x1p-100;
          allowed = 1.0;
        } else {
          allowed = c->max_ulp + 3.0 * u2;
        }
      }
      break;
    case XM_GELU_ERF:
      if (x < -0.5f) {
        err = aerr;
        allowed = c->max_ulp * unit + ldexp(fabs((double)x), -24);
        if (allowed < FLT_MIN) allowed = FLT_MIN;
      }
      break;
    default: break;
    }
  }
  double excess = err == 0.0 ? 0.0 : err / allowed;
  w->count++;
  if (excess > w->excess || isnan(excess)) {
    w->excess = isnan(excess) ? HUGE_VAL : excess;
    w->ulp = ulp;
    w->x = x;
    w->got = got;
    w->want = want;
  }
}

static void xm_report(const XmCase *c, const char *sweep, const XmWorst *w) {
  ck_assert_msg(w->excess <= 1.0,
                "ck_x86_%s (%s sweep): x = %.9g gives %.9g, exact %.17g: %.3g ulp, %.3g x the allowed error",
                c->name, sweep, (double)w->x, (double)w->got, w->want, w->ulp, w->excess);
}

/* Every 1021st bit pattern of all 2^32 (1021 is prime, so the sample hits
 * every exponent and sign and both ends of each binade over the sweep). */
START_TEST(test_sweep_all_floats) {
  const XmCase *c = &xm_cases[_i];
  XmWorst w = {0};
  for (uint64_t b = 0; b < 0x100000000ull; b += 1021) xm_check_point(c, ck_x86_from_bits((uint32_t)b), &w);
  for (uint64_t b = 0x7f7ffff0ull; b <= 0x7fc00001ull; b += 0x100000) { /* around FLT_MAX, inf, NaN */
    xm_check_point(c, ck_x86_from_bits((uint32_t)b), &w);
    xm_check_point(c, ck_x86_from_bits((uint32_t)b | 0x80000000u), &w);
  }
  ck_assert_int_gt(w.count, 4000000);
  xm_report(c, "all floats", &w);
}
END_TEST

/* Dense window: floats in [2^-1, 2^2) and their negatives, every 7th
 * pattern (where the range splits of tanh, erf and log and most activations
 * live), plus every 7th pattern below 2^-1 down to 2^-30. */
START_TEST(test_sweep_dense) {
  const XmCase *c = &xm_cases[_i];
  XmWorst w = {0};
  const uint32_t lo = 0x3f000000u, hi = 0x40800000u, tiny = 0x30800000u;
  for (uint32_t b = tiny; b < hi; b += 7) {
    if (b < lo && (b & 0x3ff) > 7) continue; /* the small values more sparsely */
    xm_check_point(c, ck_x86_from_bits(b), &w);
    xm_check_point(c, ck_x86_from_bits(b | 0x80000000u), &w);
  }
  xm_report(c, "dense", &w);
}
END_TEST

/* ---- exact special values ----------------------------------------------------------------- */

#define XM_SAME(got, want) ck_assert_msg(memcmp(&(float){got}, &(float){want}, sizeof(float)) == 0 || \
                                             (isnan(got) && isnan(want)), \
                                         "%s = %.9g, expected %.9g", #got, (double)(got), (double)(want))

START_TEST(test_special_values) {
  const float inf = HUGE_VALF, nan = NAN;
  /* exp */
  XM_SAME(ck_x86_expf(0.0f), 1.0f);
  XM_SAME(ck_x86_expf(-0.0f), 1.0f);
  XM_SAME(ck_x86_expf(inf), inf);
  XM_SAME(ck_x86_expf(-inf), 0.0f);
  XM_SAME(ck_x86_expf(89.0f), inf);
  XM_SAME(ck_x86_expf(88.7f), expf(88.7f));
  XM_SAME(ck_x86_expf(-104.0f), 0.0f);
  XM_SAME(ck_x86_expf(-103.0f), expf(-103.0f)); /* a subnormal, rounded once */
  ck_assert(isnan(ck_x86_expf(nan)));
  ck_assert(isnan(ck_x86_expf(-nan)));
  /* log */
  XM_SAME(ck_x86_logf(1.0f), 0.0f);
  XM_SAME(ck_x86_logf(0.0f), -inf);
  XM_SAME(ck_x86_logf(-0.0f), -inf);
  XM_SAME(ck_x86_logf(inf), inf);
  ck_assert(isnan(ck_x86_logf(-1.0f)));
  ck_assert(isnan(ck_x86_logf(-inf)));
  ck_assert(isnan(ck_x86_logf(nan)));
  XM_SAME(ck_x86_logf(FLT_MAX), logf(FLT_MAX));
  XM_SAME(ck_x86_logf(ck_x86_from_bits(1)), logf(ck_x86_from_bits(1))); /* smallest subnormal */
  /* tanh */
  XM_SAME(ck_x86_tanhf(0.0f), 0.0f);
  XM_SAME(ck_x86_tanhf(-0.0f), -0.0f);
  XM_SAME(ck_x86_tanhf(inf), 1.0f);
  XM_SAME(ck_x86_tanhf(-inf), -1.0f);
  XM_SAME(ck_x86_tanhf(20.0f), 1.0f);
  XM_SAME(ck_x86_tanhf(1e-30f), 1e-30f);
  ck_assert(isnan(ck_x86_tanhf(nan)));
  /* erf */
  XM_SAME(ck_x86_erff(0.0f), 0.0f);
  XM_SAME(ck_x86_erff(-0.0f), -0.0f);
  XM_SAME(ck_x86_erff(inf), 1.0f);
  XM_SAME(ck_x86_erff(-inf), -1.0f);
  XM_SAME(ck_x86_erff(5.0f), 1.0f);
  ck_assert(isnan(ck_x86_erff(nan)));
  /* sigmoid, silu */
  XM_SAME(ck_x86_sigmoidf(0.0f), 0.5f);
  XM_SAME(ck_x86_sigmoidf(inf), 1.0f);
  XM_SAME(ck_x86_sigmoidf(-inf), 0.0f);
  ck_assert(ck_x86_sigmoidf(-95.0f) > 0.0f); /* the reference formula gives 0 here */
  ck_assert(isnan(ck_x86_sigmoidf(nan)));
  XM_SAME(ck_x86_siluf(0.0f), 0.0f);
  XM_SAME(ck_x86_siluf(inf), inf);
  ck_assert(isnan(ck_x86_siluf(-inf))); /* -inf * 0, as torch.nn.functional.silu */
  ck_assert(isnan(ck_x86_siluf(nan)));
  /* gelu */
  XM_SAME(ck_x86_gelu_tanhf(0.0f), 0.0f);
  XM_SAME(ck_x86_gelu_tanhf(inf), inf);
  XM_SAME(ck_x86_gelu_tanhf(-20.0f), -0.0f);
  ck_assert(isnan(ck_x86_gelu_tanhf(nan)));
  XM_SAME(ck_x86_gelu_erff(0.0f), 0.0f);
  XM_SAME(ck_x86_gelu_erff(inf), inf);
  XM_SAME(ck_x86_gelu_erff(-20.0f), -0.0f);
  ck_assert(isnan(ck_x86_gelu_erff(nan)));
  /* the reference's own expressions: the same bits everywhere */
  for (uint64_t b = 0; b < 0x100000000ull; b += 65521) {
    float x = ck_x86_from_bits((uint32_t)b);
    XM_SAME(ck_x86_reluf(x), ck_reluf(x));
    XM_SAME(ck_x86_rsqrtf(x), ck_rsqrtf(x));
  }
  XM_SAME(ck_x86_rsqrtf(0.0f), inf);
  ck_assert(isnan(ck_x86_reluf(nan)));
}
END_TEST

/* The reference helpers and these differ by rounding only: on a grid over
 * the range where activations live, within the sum of both bounds plus the
 * reference's cancellation (gelu at x < 0 is checked against the exact value
 * above, not here). */
START_TEST(test_close_to_reference) {
  for (int i = -4000; i <= 4000; i++) {
    float x = (float)i / 400.0f; /* [-10, 10] */
    ck_assert_msg(xm_ulp_err(ck_x86_sigmoidf(x), (double)ck_sigmoidf(x)) <= 8.0, "sigmoid(%g)", (double)x);
    ck_assert_msg(xm_ulp_err(ck_x86_tanhf(x), (double)tanhf(x)) <= 8.0, "tanh(%g)", (double)x);
    ck_assert_msg(xm_ulp_err(ck_x86_expf(x), (double)expf(x)) <= 4.0, "exp(%g)", (double)x);
    if (x >= 0.0f) {
      ck_assert_msg(xm_ulp_err(ck_x86_gelu_tanhf(x), (double)ck_gelu_tanhf(x)) <= 8.0, "gelu_tanh(%g)", (double)x);
      ck_assert_msg(xm_ulp_err(ck_x86_gelu_erff(x), (double)ck_gelu_erff(x)) <= 8.0, "gelu_erf(%g)", (double)x);
      ck_assert_msg(xm_ulp_err(ck_x86_siluf(x), (double)ck_siluf(x)) <= 8.0, "silu(%g)", (double)x);
    }
  }
}
END_TEST

Suite *check_x86_math_suite(void) {
  Suite *s = suite_create("x86_math");
  TCase *tc = tcase_create("ulp_vs_libm_double");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_sweep_all_floats, 0, XM_NCASES);
  tcase_add_loop_test(tc, test_sweep_dense, 0, XM_NCASES);
  suite_add_tcase(s, tc);
  TCase *sp = tcase_create("special_values");
  tcase_add_test(sp, test_special_values);
  tcase_add_test(sp, test_close_to_reference);
  suite_add_tcase(s, sp);
  return s;
}
