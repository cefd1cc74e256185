/* test-suite/unit/check_x86_nn_layernorm.c - the fused layernorm backward of
 * rt-min/x86/ck_x86_kernels.h (ck_x86_layernorm_backward_set_f32).
 *
 * lower_x86.c replaces the four steps the c99 lowering writes for a
 * layernorm's gradients (recompute the statistics with ck_x86_layernorm_f32,
 * zero dx and dweight, ck_x86_layernorm_backward_f32 accumulating, and the
 * bias gradient as ck_x86_sum_f32 of dy) by this one call, and promises the
 * same bits. So the check is bitwise (memcmp) against that sequence, for a
 * NULL pool and pools of 1, 2 and 3 threads: outputs start as garbage (NaN
 * and nonzero patterns: a kernel that accumulates instead of setting fails),
 * every optional output and the weight are left out in turn, shapes go off
 * the 16-row and 16-column blocks, and rows of signed zeros check that a
 * set value has the bits of 0 + v (an added -0 gives +0). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include "rt-min/x86/ck_pool.h"
#include "rt-min/x86/ck_x86_kernels.h"

typedef struct XlnRng {
  uint64_t s;
} XlnRng;

/* Values in [-2, 2) from a 64-bit LCG (no libc rand state). */
static float xln_next(XlnRng *r) {
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((double)(r->s >> 40) / (double)(1ULL << 24) * 4.0 - 2.0);
}

static float *xln_rand(XlnRng *r, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = xln_next(r);
  return p;
}

/* n floats of a pattern no correct kernel leaves behind: NaN, or with
 * `big` a large finite value (an accumulating kernel keeps it). */
static float *xln_garbage(int64_t n, int big) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = big ? 1e6f : NAN;
  return p;
}

static void xln_same(const float *ref, const float *got, int64_t n, const char *what, int64_t rows, int64_t cols,
                     int pw) {
  ck_assert_msg(memcmp(ref, got, (size_t)(n > 0 ? n : 0) * sizeof *ref) == 0,
                "%s differs from the four-step sequence (rows %ld, n %ld, pool %d)", what, (long)rows, (long)cols,
                pw);
}

/* rows, n */
static const int64_t xln_shapes[][2] = {{1, 1}, {1, 128}, {15, 7}, {16, 16}, {17, 33}, {100, 128}, {513, 20}, {40, 768}};
#define XLN_NSHAPES ((int)(sizeof xln_shapes / sizeof xln_shapes[0]))

/* _i: bit 0 no dx, bit 1 no dweight, bit 2 no dbias, bit 3 no weight, bit 4
 * garbage is 1e6 instead of NaN, bit 5 a residual gradient added to dx. */
START_TEST(test_layernorm_backward_set) {
  XlnRng r = {(uint64_t)_i * 131u + 7u};
  for (int si = 0; si < XLN_NSHAPES; si++) {
    int64_t rows = xln_shapes[si][0], n = xln_shapes[si][1], rn = rows * n;
    float *x = xln_rand(&r, rn), *w = xln_rand(&r, n), *dy = xln_rand(&r, rn);
    for (int64_t i = 0; i < rn; i++) x[i] += (float)(i / n % 3) * 100.0f; /* large row offsets */
    if (rows > 2)
      for (int64_t j = 0; j < n; j++) dy[n + j] = -0.0f; /* a row of -0 gradients */
    const float *wt = _i & 8 ? NULL : w;
    int big = (_i & 16) != 0;
    float *res = _i & 32 ? xln_rand(&r, rn) : NULL;
    if (res && rows > 2)
      for (int64_t j = 0; j < n; j++) res[n + j] = -0.0f; /* -0 + (0 + -0) is +0 */
    /* the sequence lower_x86.c folds: recompute, zero, accumulate, sum */
    float *rx = xln_garbage(rn, big), *rm = xln_garbage(rows, big), *rr = xln_garbage(rows, big);
    float *rw = calloc((size_t)n, sizeof *rw), *rb = xln_garbage(n, big);
    ck_x86_layernorm_f32(NULL, rx, rm, rr, x, NULL, NULL, rows, n, 1e-5f);
    memset(rx, 0, (size_t)rn * sizeof *rx);
    ck_x86_layernorm_backward_f32(NULL, _i & 1 ? NULL : rx, _i & 2 ? NULL : rw, NULL, dy, x, wt, rm, rr, rows, n);
    ck_x86_sum_f32(NULL, rb, dy, 1, rows, n);
    if (res)
      for (int64_t i = 0; i < rn; i++) rx[i] = res[i] + rx[i]; /* the residual add loop */
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = pw ? ck_pool_create(pw) : NULL;
      float *gx = xln_garbage(rn, big), *gm = xln_garbage(rows, big), *gr = xln_garbage(rows, big);
      float *gw = xln_garbage(n, big), *gb = xln_garbage(n, big);
      ck_x86_layernorm_backward_set_f32(pool, _i & 1 ? NULL : gx, _i & 2 ? NULL : gw, _i & 4 ? NULL : gb, gm, gr, dy,
                                        x, wt, res, rows, n, 1e-5f);
      xln_same(rm, gm, rows, "mean", rows, n, pw);
      xln_same(rr, gr, rows, "rstd", rows, n, pw);
      if (!(_i & 1)) xln_same(rx, gx, rn, "dx", rows, n, pw);
      if (!(_i & 2)) xln_same(rw, gw, n, "dweight", rows, n, pw);
      if (!(_i & 4)) xln_same(rb, gb, n, "dbias", rows, n, pw);
      if (_i & 1) /* left out: untouched */
        for (int64_t i = 0; i < rn; i++) ck_assert_msg(big ? gx[i] == 1e6f : isnan(gx[i]), "dx written when NULL");
      free(gx), free(gm), free(gr), free(gw), free(gb);
      ck_pool_destroy(pool);
    }
    free(x), free(w), free(dy), free(rx), free(rm), free(rr), free(rw), free(rb), free(res);
  }
}
END_TEST

/* The -0 rows must come out as the sequence's +0 sums, never -0: a
 * kernel that stores v instead of 0 + v fails here even when no other
 * value differs. */
START_TEST(test_layernorm_backward_set_signed_zero) {
  const int64_t rows = 3, n = 16;
  float x[48], dy[48], dx[48], db[16], dw[16], m[3], rs[3];
  for (int i = 0; i < 48; i++) x[i] = (float)(i % 5), dy[i] = -0.0f;
  ck_x86_layernorm_backward_set_f32(NULL, dx, dw, db, m, rs, dy, x, NULL, NULL, rows, n, 1e-5f);
  for (int j = 0; j < 16; j++) {
    ck_assert_msg(!signbit(db[j]) && db[j] == 0.0f, "dbias[%d] is %g with sign %d", j, (double)db[j], signbit(db[j]) != 0);
    ck_assert_msg(!signbit(dw[j]) && dw[j] == 0.0f, "dweight[%d] must be +0", j);
  }
  for (int i = 0; i < 48; i++) ck_assert_msg(dx[i] == 0.0f && !signbit(dx[i]), "dx[%d] must be +0", i);
}
END_TEST

Suite *check_x86_nn_layernorm_suite(void) {
  Suite *s = suite_create("x86_nn_layernorm");
  TCase *tc = tcase_create("set_vs_sequence");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_layernorm_backward_set, 0, 64);
  tcase_add_test(tc, test_layernorm_backward_set_signed_zero);
  suite_add_tcase(s, tc);
  return s;
}

#else /* not x86-64 */

START_TEST(test_not_x86) { printf("check_x86_nn_layernorm: NOTE: not an x86-64 host, tests skipped\n"); }
END_TEST

Suite *check_x86_nn_layernorm_suite(void) {
  Suite *s = suite_create("x86_nn_layernorm");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}
#endif
