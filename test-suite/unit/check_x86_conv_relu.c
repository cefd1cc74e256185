/* test-suite/unit/check_x86_conv_relu.c - the fused relu kernels of
 * rt-min/x86/ck_x86_conv.h, and the batch-parallel conv slabs.
 *
 * lower/lower_x86.c replaces step sequences by these kernels, promising the
 * sequences' bits, so every check here is bitwise against the steps it
 * replaces, run with the same runtime:
 *   1. ck_x86_conv2d_relu_f32 == ck_x86_conv2d_f32 followed by the relu
 *      loop (ck_x86_reluf: x < 0 ? 0 : x) on the direct path (few taps),
 *      the batch-parallel im2col + GEMM slabs, one sample, the old slab loop
 *      (no pool), grouped convs and the reference fallback (a workspace
 *      smaller than one sample), with NaN and -0 outputs present; and
 *      ck_x86_conv2d_relu_maxpool2d_f32 == that followed by max pooling
 *      (2x2 stride 2; 3x3 stride 2 padded), both of its outputs;
 *   2. ck_x86_maxpool2d_relu_backward_f32 == memset(dx, 0),
 *      ck_x86_maxpool2d_backward_f32 and dx = x > 0 ? dx : 0, on the 2x2
 *      plane kernel (even and odd planes, dy holding -0), planes too large
 *      for it, overlapping and padded windows, with x holding ties, zeros,
 *      -0 and NaN, and dx starting as garbage (every element must be set);
 *   3. both, and the plain conv's batch slabs, give the same bits on a NULL
 *      pool and pools of 1, 2 and 3 threads. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include "rt-min/x86/ck_pool.h"
#include "rt-min/x86/ck_x86_conv.h"

typedef struct XrRng {
  uint64_t s;
} XrRng;

/* Values in [-2, 2) from a 64-bit LCG, some of them rounded to small
 * integers (ties in the pool windows, exact zeros). */
static float xr_next(XrRng *r) {
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  float v = (float)((double)(r->s >> 40) / (double)(1ULL << 24) * 4.0 - 2.0);
  return (r->s >> 20) % 5 == 0 ? roundf(v) : v;
}

static float *xr_rand(XrRng *r, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = xr_next(r);
  return p;
}

static void xr_same(const float *want, const float *got, int64_t n, const char *what, int shape) {
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&want[i], &got[i], sizeof *got) != 0)
      ck_abort_msg("shape %d: %s[%lld] = %.9g, want %.9g (bitwise)", shape, what, (long long)i, (double)got[i],
                   (double)want[i]);
}

/* ---- conv + relu ---------------------------------------------------------------------- */

typedef struct XrConv {
  int64_t N, C, H, W, OC, KH, KW, s, p, G;
} XrConv;

/* direct (C*KH*KW <= 16), batch slabs (4 uneven ones of 400 columns; 5 of
 * 784), one sample, grouped, strided */
static const XrConv xr_convs[] = {
    {6, 1, 9, 11, 16, 3, 3, 1, 1, 1}, {7, 4, 20, 20, 10, 3, 3, 1, 1, 1}, {1, 3, 8, 8, 5, 3, 3, 1, 1, 1},
    {5, 4, 6, 5, 6, 3, 3, 1, 1, 2},   {7, 3, 9, 9, 4, 3, 3, 2, 1, 1},    {5, 2, 28, 28, 4, 3, 3, 1, 1, 1},
};
#define XR_NCONV ((int)(sizeof xr_convs / sizeof xr_convs[0]))

START_TEST(test_conv_relu) {
  const XrConv h = xr_convs[_i];
  XrRng r = {(uint64_t)_i * 7919u + 11u};
  int64_t OH = (h.H + 2 * h.p - h.KH) / h.s + 1, OW = (h.W + 2 * h.p - h.KW) / h.s + 1;
  int64_t nx = h.N * h.C * h.H * h.W, nw = h.OC * (h.C / h.G) * h.KH * h.KW, no = h.N * h.OC * OH * OW;
  int64_t per = CK_X86_CONV_SCRATCH(h.C, h.OC, h.KH, h.KW, OH, OW, 1);
  float *x = xr_rand(&r, nx), *w = xr_rand(&r, nw), *bias = xr_rand(&r, h.OC);
  float *want = malloc((size_t)no * sizeof *want), *got = malloc((size_t)no * sizeof *got);
  float *scratch = malloc((size_t)(per * h.N) * sizeof *scratch);
  int nan_seen = 0, neg_seen = 0;
  x[nx / 2] = NAN; /* NaN outputs must pass relu */
  bias[0] = -0.0f;
  for (int with_bias = 0; with_bias < 2; with_bias++)
    for (int ws = 0; ws < 3; ws++) { /* whole batch, one sample, too small (the reference) */
      int64_t floats = ws == 0 ? per * h.N : ws == 1 ? per : per - 1;
      const float *b = with_bias ? bias : NULL;
      ck_x86_conv2d_f32(NULL, want, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.s, h.s, h.p, h.p, h.G, OH,
                        OW, scratch, floats);
      for (int64_t i = 0; i < no; i++) {
        nan_seen += want[i] != want[i];
        neg_seen += want[i] < 0.0f;
        want[i] = want[i] < 0.0f ? 0.0f : want[i];
      }
      for (int pw = 0; pw <= 3; pw++) {
        CkPool *pool = pw ? ck_pool_create(pw) : NULL;
        memset(got, 0xff, (size_t)no * sizeof *got);
        ck_x86_conv2d_relu_f32(pool, got, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.s, h.s, h.p, h.p, h.G,
                               OH, OW, scratch, floats);
        xr_same(want, got, no, "relu(conv)", _i);
        /* the plain conv on the pool (batch slabs) against the pool-less slab loop */
        float *plain = malloc((size_t)no * sizeof *plain);
        ck_x86_conv2d_f32(NULL, got, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.s, h.s, h.p, h.p, h.G, OH,
                          OW, scratch, floats);
        ck_x86_conv2d_f32(pool, plain, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.s, h.s, h.p, h.p, h.G, OH,
                          OW, scratch, floats);
        xr_same(got, plain, no, "conv (pool)", _i);
        /* relu(conv) then max pooling in the conv's chunks: 2x2 / 2, and 3x3 / 2 padded */
        for (int pk = 2; pk <= 3; pk++) {
          int64_t pp = pk - 2, POH = (OH + 2 * pp - pk) / 2 + 1, POW = (OW + 2 * pp - pk) / 2 + 1;
          int64_t np = h.N * h.OC * POH * POW;
          float *pw_want = malloc((size_t)np * sizeof *pw_want), *pw_got = malloc((size_t)np * sizeof *pw_got);
          ck_x86_maxpool2d_f32(NULL, pw_want, want, h.N, h.OC, OH, OW, pk, pk, 2, 2, pp, pp, POH, POW);
          memset(plain, 0xff, (size_t)no * sizeof *plain);
          memset(pw_got, 0xff, (size_t)np * sizeof *pw_got);
          ck_x86_conv2d_relu_maxpool2d_f32(pool, plain, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.s, h.s,
                                           h.p, h.p, h.G, OH, OW, scratch, floats, pw_got, pk, pk, 2, 2, pp, pp,
                                           POH, POW);
          xr_same(want, plain, no, "relu(conv) (pooled)", _i);
          xr_same(pw_want, pw_got, np, "maxpool(relu(conv))", _i);
          free(pw_want), free(pw_got);
        }
        free(plain);
        ck_pool_destroy(pool);
      }
    }
  ck_assert_int_gt(nan_seen, 0);
  ck_assert_int_gt(neg_seen, 0);
  free(x), free(w), free(bias), free(want), free(got), free(scratch);
}
END_TEST

/* dx of the plain conv backward on the pool (batch slabs) equals the
 * pool-less slab loop's, with and without dw and dbias alongside. */
START_TEST(test_conv_backward_slabs) {
  const XrConv h = xr_convs[_i];
  XrRng r = {(uint64_t)_i * 104729u + 17u};
  int64_t OH = (h.H + 2 * h.p - h.KH) / h.s + 1, OW = (h.W + 2 * h.p - h.KW) / h.s + 1;
  int64_t nx = h.N * h.C * h.H * h.W, nw = h.OC * (h.C / h.G) * h.KH * h.KW, no = h.N * h.OC * OH * OW;
  int64_t per = CK_X86_CONV_SCRATCH(h.C, h.OC, h.KH, h.KW, OH, OW, 1);
  float *x = xr_rand(&r, nx), *w = xr_rand(&r, nw), *dy = xr_rand(&r, no);
  float *dx0 = xr_rand(&r, nx), *dw0 = xr_rand(&r, nw), *db0 = xr_rand(&r, h.OC);
  float *wdx = malloc((size_t)nx * 4), *wdw = malloc((size_t)nw * 4), *wdb = malloc((size_t)h.OC * 4);
  float *gdx = malloc((size_t)nx * 4), *gdw = malloc((size_t)nw * 4), *gdb = malloc((size_t)h.OC * 4);
  float *scratch = malloc((size_t)(per * h.N) * sizeof *scratch);
  memcpy(wdx, dx0, (size_t)nx * 4), memcpy(wdw, dw0, (size_t)nw * 4), memcpy(wdb, db0, (size_t)h.OC * 4);
  ck_x86_conv2d_backward_f32(NULL, wdx, wdw, wdb, dy, x, w, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.s, h.s, h.p,
                             h.p, h.G, OH, OW, scratch, per);
  for (int pw = 1; pw <= 3; pw++) {
    CkPool *pool = ck_pool_create(pw);
    for (int dwtoo = 0; dwtoo < 2; dwtoo++) {
      memcpy(gdx, dx0, (size_t)nx * 4), memcpy(gdw, dw0, (size_t)nw * 4), memcpy(gdb, db0, (size_t)h.OC * 4);
      ck_x86_conv2d_backward_f32(pool, gdx, dwtoo ? gdw : NULL, dwtoo ? gdb : NULL, dy, dwtoo ? x : NULL, w, h.N,
                                 h.C, h.H, h.W, h.OC, h.KH, h.KW, h.s, h.s, h.p, h.p, h.G, OH, OW, scratch, per);
      xr_same(wdx, gdx, nx, "dx", _i);
      if (dwtoo) {
        xr_same(wdw, gdw, nw, "dw", _i);
        xr_same(wdb, gdb, h.OC, "dbias", _i);
      }
    }
    ck_pool_destroy(pool);
  }
  free(x), free(w), free(dy), free(dx0), free(dw0), free(db0), free(wdx), free(wdw), free(wdb), free(gdx);
  free(gdw), free(gdb), free(scratch);
}
END_TEST

/* ---- maxpool backward through relu ------------------------------------------------------- */

typedef struct XrPool {
  int64_t N, C, H, W, K, s, p;
} XrPool;

/* 2x2 even and odd planes, a plane too large for the 2x2 plane kernel,
 * overlapping windows, padding */
static const XrPool xr_pools[] = {
    {3, 5, 28, 28, 2, 2, 0}, {2, 3, 7, 9, 2, 2, 0}, {1, 2, 70, 66, 2, 2, 0},
    {2, 3, 9, 10, 3, 2, 0},  {2, 2, 8, 7, 3, 2, 1}, {3, 17, 14, 14, 2, 2, 0},
};
#define XR_NPOOL ((int)(sizeof xr_pools / sizeof xr_pools[0]))

START_TEST(test_pool_relu_backward) {
  const XrPool h = xr_pools[_i];
  XrRng r = {(uint64_t)_i * 31337u + 7u};
  int64_t OH = (h.H + 2 * h.p - h.K) / h.s + 1, OW = (h.W + 2 * h.p - h.K) / h.s + 1;
  int64_t nx = h.N * h.C * h.H * h.W, ny = h.N * h.C * OH * OW;
  float *x = xr_rand(&r, nx), *dy = xr_rand(&r, ny);
  float *want = malloc((size_t)nx * sizeof *want), *got = malloc((size_t)nx * sizeof *got);
  int64_t i;
  for (i = 0; i < nx; i++) x[i] = x[i] < 0.0f ? 0.0f : x[i]; /* relu's output: zeros and ties */
  x[1] = -0.0f;
  x[nx / 3] = NAN;
  x[nx - 1] = NAN;
  dy[0] = -0.0f;
  dy[ny / 2] = -0.0f;
  memset(want, 0, (size_t)nx * sizeof *want);
  ck_x86_maxpool2d_backward_f32(NULL, want, dy, x, h.N, h.C, h.H, h.W, h.K, h.K, h.s, h.s, h.p, h.p, OH, OW);
  for (i = 0; i < nx; i++) want[i] = x[i] > 0.0f ? want[i] : 0.0f;
  for (int pw = 0; pw <= 3; pw++) {
    CkPool *pool = pw ? ck_pool_create(pw) : NULL;
    for (i = 0; i < nx; i++) got[i] = (float)i - 0.5f; /* garbage: every element must be set */
    ck_x86_maxpool2d_relu_backward_f32(pool, got, dy, x, h.N, h.C, h.H, h.W, h.K, h.K, h.s, h.s, h.p, h.p, OH,
                                       OW);
    xr_same(want, got, nx, "dx", _i);
    ck_pool_destroy(pool);
  }
  free(x), free(dy), free(want), free(got);
}
END_TEST

Suite *check_x86_conv_relu_suite(void) {
  Suite *s = suite_create("x86_conv_relu");
  TCase *tc = tcase_create("fused");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_conv_relu, 0, XR_NCONV);
  tcase_add_loop_test(tc, test_conv_backward_slabs, 0, XR_NCONV);
  tcase_add_loop_test(tc, test_pool_relu_backward, 0, XR_NPOOL);
  suite_add_tcase(s, tc);
  return s;
}

#else /* not x86-64 */

START_TEST(test_not_x86) { printf("check_x86_conv_relu: NOTE: not an x86-64 host, tests skipped\n"); }
END_TEST

Suite *check_x86_conv_relu_suite(void) {
  Suite *s = suite_create("x86_conv_relu");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}

#endif
