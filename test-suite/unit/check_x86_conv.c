/* test-suite/unit/check_x86_conv.c - conv2d and max pooling of
 * rt-min/x86/ck_x86_conv.h (im2col + the pooled GEMM).
 *
 * Three checks per conv result, on shapes with groups (depthwise too),
 * strides, padding wider than the kernel, rectangular kernels, 1x1, a
 * window as large as the input, rows wider than col2im's 256-column block,
 * batch 1 (the direct-to-out path) and products large enough for the
 * GEMM's threaded paths (the reference has no dilation argument, so there
 * is none to test):
 *   1. bitwise equality with a scalar model of the documented numerics
 *      (ck_x86_conv.h): out = fmaf chain over (c, kh, kw) then + bias;
 *      dx = per (kh, kw) an fmaf chain over oc, summed in (kh, kw) order in
 *      a float and added once; dw = fmaf chain over (n, oh, ow) starting from
 *      the old dw; dbias = 16 lane sums (lane p % 16) folded pairwise;
 *   2. closeness to the reference kernel (separate multiply and add):
 *          |x86 - ref| <= 2 (K + 2) 2^-24 sum |terms|
 *      per element, K the number of terms (the textbook bound gamma_K for
 *      each of the two summation orders, plus one rounding for the bias or
 *      the add into the old gradient);
 *   3. the same bits for a NULL pool and pools of 1, 2 and 3 threads, and
 *      for workspaces holding the whole batch, one sample, or two (uneven
 *      slabs); a workspace smaller than one sample runs the reference
 *      (bitwise equal to it).
 * Gradients start nonzero (they are accumulated into), and each of dx, dw,
 * dbias is left out (NULL) in turn, with x or w NULL where the generated
 * code passes NULL. Max pooling is bitwise equal to the reference, NaNs
 * and ties included, through the 16-output blocks (AVX-512 where the CPU
 * has it: the run_unit build compiles ck_x86_conv_avx512.c for it), the
 * scalar edges, and windows too large for a block; the AVX2 rows of the
 * 2x2 / stride-2 pool (ck_x86_conv_avx2.c) also called directly. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt-min/ck_grad.h"
#include "rt-min/ck_kernels.h"

#if defined(__x86_64__)
#include "rt-min/x86/ck_gemm.h"
#include "rt-min/x86/ck_pool.h"
#include "rt-min/x86/ck_x86_conv.h"

typedef struct XcRng {
  uint64_t s;
} XcRng;

/* Values in [-2, 2) from a 64-bit LCG (deterministic, no libc rand state). */
static float xc_next(XcRng *r) {
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((double)(r->s >> 40) / (double)(1ULL << 24) * 4.0 - 2.0);
}

static float *xc_rand(XcRng *r, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = xc_next(r);
  return p;
}

static float *xc_copy(const float *x, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  memcpy(p, x, (size_t)n * sizeof *p);
  return p;
}

static void xc_same(const float *want, const float *got, int64_t n, const char *what, int shape) {
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&want[i], &got[i], sizeof *got) != 0)
      ck_abort_msg("shape %d: %s[%lld] = %.9g, want %.9g (bitwise)", shape, what, (long long)i, (double)got[i],
                   (double)want[i]);
}

/* |got - ref| <= 2 (K + 2) u * mag per element (mag = sum |terms|). */
static void xc_close(const float *ref, const float *got, const double *mag, int64_t K, int64_t n,
                     const char *what, int shape) {
  double u = ldexp(1.0, -24);
  for (int64_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - (double)ref[i]), bound = 2.0 * (double)(K + 2) * u * mag[i];
    ck_assert_msg(e <= bound, "shape %d: %s[%lld]: |%.9g - %.9g| = %.3g > bound %.3g", shape, what, (long long)i,
                  (double)got[i], (double)ref[i], e, bound);
  }
}

/* conv shapes: N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups */
static const int64_t xc_shapes[][12] = {
    {2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1},     /* small, odd sizes */
    {1, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1},  /* batch 1 (GEMM straight into out) */
    {3, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1}, /* the cnn sample's second layer */
    {2, 4, 9, 11, 6, 3, 3, 2, 2, 1, 1, 2},    /* groups, stride 2 */
    {2, 6, 8, 8, 6, 3, 3, 1, 1, 1, 1, 6},     /* depthwise */
    {3, 5, 6, 7, 7, 1, 1, 1, 1, 0, 0, 1},     /* 1x1 */
    {2, 3, 10, 9, 5, 5, 3, 2, 3, 2, 1, 1},    /* rectangular kernel, mixed strides */
    {2, 2, 5, 5, 3, 3, 3, 1, 1, 3, 3, 1},     /* padding wider than the kernel: empty windows */
    {1, 2, 3, 300, 3, 3, 3, 1, 1, 1, 1, 1},   /* rows wider than the col2im block */
    {5, 3, 4, 4, 2, 4, 4, 1, 1, 0, 0, 1},     /* window = input: 1x1 output */
    {2, 4, 13, 13, 8, 3, 3, 3, 3, 0, 0, 4},   /* stride = kernel, groups 4 */
    {1, 3, 9, 9, 4, 2, 2, 3, 2, 0, 1, 1},     /* stride > kernel: skipped inputs */
    {8, 16, 20, 20, 32, 3, 3, 1, 1, 1, 1, 1}, /* large enough for the threaded GEMM */
    {4, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1},  /* the cnn sample's first layer: direct, 9 taps */
    {2, 1, 9, 40, 20, 3, 5, 2, 1, 1, 2, 1},   /* direct, 15 taps: 2 dw channel blocks, row stride 2 */
    {2, 1, 5, 5, 11, 3, 3, 1, 1, 3, 3, 1},    /* direct with rows and columns all padding */
    {3, 2, 6, 37, 9, 2, 2, 1, 1, 0, 1, 1},    /* direct, 8 taps over 2 channels, OW 38 */
    {2, 3, 8, 8, 40, 3, 3, 1, 1, 1, 1, 1},    /* slab dw kernel: a full 32-channel block, then 8 */
    {2, 4, 11, 11, 20, 3, 3, 2, 1, 1, 1, 1},  /* slab dw kernel, row stride 2, 20 channels (16 + 4) */
    {1, 2, 70, 70, 3, 3, 3, 1, 1, 1, 1, 1},   /* padded plane above the slab dw kernel's stack: GEMM */
};
#define XC_NSHAPES ((int)(sizeof xc_shapes / sizeof xc_shapes[0]))

typedef struct XcShape {
  int64_t N, C, H, W, OC, KH, KW, sh, sw, ph, pw, G, OH, OW, cpg, opg;
} XcShape;

static XcShape xc_shape(int i) {
  const int64_t *s = xc_shapes[i];
  XcShape h = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], 0, 0, 0, 0};
  h.OH = (h.H + 2 * h.ph - h.KH) / h.sh + 1;
  h.OW = (h.W + 2 * h.pw - h.KW) / h.sw + 1;
  h.cpg = h.C / h.G;
  h.opg = h.OC / h.G;
  return h;
}

/* x element under output (oh, ow) and tap (kh, kw), or NULL in the padding. */
static const float *xc_tap(const XcShape *h, const float *xc, int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
  int64_t ih = oh * h->sh - h->ph + kh, iw = ow * h->sw - h->pw + kw;
  return ih < 0 || ih >= h->H || iw < 0 || iw >= h->W ? NULL : xc + ih * h->W + iw;
}

/* The model of the forward (see the banner) and sum |terms| per element. */
static void xc_model_fwd(const XcShape *h, float *out, double *mag, const float *x, const float *w,
                         const float *bias) {
  int64_t kc = h->cpg * h->KH * h->KW;
  for (int64_t n = 0; n < h->N; n++)
    for (int64_t oc = 0; oc < h->OC; oc++)
      for (int64_t oh = 0; oh < h->OH; oh++)
        for (int64_t ow = 0; ow < h->OW; ow++) {
          int64_t g = oc / h->opg, o = ((n * h->OC + oc) * h->OH + oh) * h->OW + ow;
          float acc = 0.0f;
          double m = 0.0;
          for (int64_t c = 0; c < h->cpg; c++)
            for (int64_t kh = 0; kh < h->KH; kh++)
              for (int64_t kw = 0; kw < h->KW; kw++) {
                const float *xv = xc_tap(h, x + (n * h->C + g * h->cpg + c) * h->H * h->W, oh, ow, kh, kw);
                float wv = w[oc * kc + (c * h->KH + kh) * h->KW + kw];
                if (!xv) continue;
                acc = fmaf(*xv, wv, acc);
                m += fabs((double)*xv * wv);
              }
          if (bias) {
            acc = acc + bias[oc];
            m += fabs((double)bias[oc]);
          }
          out[o] = acc;
          mag[o] = m;
        }
}

/* The model of dx (accumulated into dx) and sum |terms| (old dx included). */
static void xc_model_dx(const XcShape *h, float *dx, double *mag, const float *dy, const float *w) {
  int64_t kc = h->cpg * h->KH * h->KW;
  for (int64_t n = 0; n < h->N; n++)
    for (int64_t c = 0; c < h->C; c++)
      for (int64_t ih = 0; ih < h->H; ih++)
        for (int64_t iw = 0; iw < h->W; iw++) {
          int64_t g = c / h->cpg, ci = c % h->cpg, o = ((n * h->C + c) * h->H + ih) * h->W + iw;
          float acc = 0.0f;
          double m = fabs((double)dx[o]);
          for (int64_t kh = 0; kh < h->KH; kh++)
            for (int64_t kw = 0; kw < h->KW; kw++) {
              int64_t th = ih + h->ph - kh, tw = iw + h->pw - kw;
              if (th < 0 || th % h->sh || th / h->sh >= h->OH || tw < 0 || tw % h->sw || tw / h->sw >= h->OW)
                continue;
              float t = 0.0f;
              for (int64_t oc = g * h->opg; oc < (g + 1) * h->opg; oc++) {
                float a = dy[((n * h->OC + oc) * h->OH + th / h->sh) * h->OW + tw / h->sw];
                float b = w[oc * kc + (ci * h->KH + kh) * h->KW + kw];
                t = fmaf(a, b, t);
                m += fabs((double)a * b);
              }
              acc += t;
            }
          dx[o] += acc;
          mag[o] = m;
        }
}

/* The model of dw (one chain from the old dw) and sum |terms| (old dw included). */
static void xc_model_dw(const XcShape *h, float *dw, double *mag, const float *dy, const float *x) {
  for (int64_t oc = 0; oc < h->OC; oc++)
    for (int64_t ci = 0; ci < h->cpg; ci++)
      for (int64_t kh = 0; kh < h->KH; kh++)
        for (int64_t kw = 0; kw < h->KW; kw++) {
          int64_t g = oc / h->opg, o = ((oc * h->cpg + ci) * h->KH + kh) * h->KW + kw;
          float acc = dw[o];
          double m = fabs((double)acc);
          for (int64_t n = 0; n < h->N; n++)
            for (int64_t oh = 0; oh < h->OH; oh++)
              for (int64_t ow = 0; ow < h->OW; ow++) {
                const float *xv = xc_tap(h, x + (n * h->C + g * h->cpg + ci) * h->H * h->W, oh, ow, kh, kw);
                float a = dy[((n * h->OC + oc) * h->OH + oh) * h->OW + ow];
                if (!xv) continue;
                acc = fmaf(a, *xv, acc);
                m += fabs((double)a * *xv);
              }
          dw[o] = acc;
          mag[o] = m;
        }
}

/* The model of dbias: 16 lane sums, lane p % 16 of output plane position p,
 * visited in (n, p) order; lanes folded pairwise (l + 8, + 4, + 2, + 1);
 * added once into the old dbias. mag[oc] = sum |terms| (old dbias included). */
static void xc_model_db(const XcShape *h, float *db, double *mag, const float *dy) {
  int64_t P = h->OH * h->OW;
  for (int64_t oc = 0; oc < h->OC; oc++) {
    float lane[16] = {0};
    double m = fabs((double)db[oc]);
    for (int64_t n = 0; n < h->N; n++)
      for (int64_t q = 0; q < P; q++) {
        float v = dy[(n * h->OC + oc) * P + q];
        lane[q % 16] += v;
        m += fabs((double)v);
      }
    for (int half = 8; half >= 1; half /= 2)
      for (int l = 0; l < half; l++) lane[l] += lane[l + half];
    db[oc] += lane[0];
    mag[oc] = m;
  }
}

/* Workspaces to try: whole batch, one sample, two samples (+ a little). */
static int64_t xc_scratch(const XcShape *h, int which) {
  int64_t per = CK_X86_CONV_SCRATCH(h->C, h->OC, h->KH, h->KW, h->OH, h->OW, 1);
  return which == 0 ? per * h->N : which == 1 ? per : 2 * per + 5;
}

/* _i = shape index. */
START_TEST(test_conv_forward) {
  XcRng r = {(uint64_t)_i * 7919u + 5u};
  XcShape h = xc_shape(_i);
  int64_t nx = h.N * h.C * h.H * h.W, nw = h.OC * h.cpg * h.KH * h.KW, no = h.N * h.OC * h.OH * h.OW;
  int64_t kc = h.cpg * h.KH * h.KW;
  float *x = xc_rand(&r, nx), *w = xc_rand(&r, nw), *bias = xc_rand(&r, h.OC);
  float *ref = malloc((size_t)no * sizeof *ref), *model = malloc((size_t)no * sizeof *model);
  float *got = malloc((size_t)no * sizeof *got);
  double *mag = malloc((size_t)no * sizeof *mag);
  float *scratch = malloc((size_t)xc_scratch(&h, 0) * sizeof *scratch);
  for (int with_bias = 0; with_bias < 2; with_bias++) {
    const float *b = with_bias ? bias : NULL;
    ck_conv2d_f32(ref, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.sh, h.sw, h.ph, h.pw, h.G, h.OH, h.OW);
    xc_model_fwd(&h, model, mag, x, w, b);
    xc_close(ref, model, mag, kc, no, "model out", _i); /* the model itself is within the bound */
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = pw ? ck_pool_create(pw) : NULL;
      for (int sc = 0; sc < 3; sc++) {
        memset(got, 0xff, (size_t)no * sizeof *got); /* NaN: an unwritten element fails */
        ck_x86_conv2d_f32(pool, got, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.sh, h.sw, h.ph, h.pw, h.G,
                          h.OH, h.OW, scratch, xc_scratch(&h, sc));
        xc_same(model, got, no, "out", _i);
      }
      ck_pool_destroy(pool);
    }
    xc_close(ref, got, mag, kc, no, "out", _i);
    /* a workspace smaller than one sample runs the reference */
    ck_x86_conv2d_f32(NULL, got, x, w, b, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.sh, h.sw, h.ph, h.pw, h.G, h.OH,
                      h.OW, scratch, xc_scratch(&h, 1) - 1);
    xc_same(ref, got, no, "out (fallback)", _i);
  }
  free(x), free(w), free(bias), free(ref), free(model), free(got), free(mag), free(scratch);
}
END_TEST

/* _i = shape index * 8 + mask; mask bit set = that gradient is NULL
 * (1: dx, 2: dw, 4: dbias). */
START_TEST(test_conv_backward) {
  int si = _i / 8, mask = _i % 8;
  XcRng r = {(uint64_t)_i * 104729u + 3u};
  XcShape h = xc_shape(si);
  int64_t nx = h.N * h.C * h.H * h.W, nw = h.OC * h.cpg * h.KH * h.KW, no = h.N * h.OC * h.OH * h.OW;
  bool want_dx = !(mask & 1), want_dw = !(mask & 2), want_db = !(mask & 4);
  float *x = xc_rand(&r, nx), *w = xc_rand(&r, nw), *dy = xc_rand(&r, no);
  float *dx0 = xc_rand(&r, nx), *dw0 = xc_rand(&r, nw), *db0 = xc_rand(&r, h.OC);
  float *rdx = xc_copy(dx0, nx), *rdw = xc_copy(dw0, nw), *rdb = xc_copy(db0, h.OC);
  float *mdx = xc_copy(dx0, nx), *mdw = xc_copy(dw0, nw), *mdb = xc_copy(db0, h.OC);
  double *magx = malloc((size_t)nx * sizeof *magx), *magw = malloc((size_t)nw * sizeof *magw);
  double *magb = malloc((size_t)h.OC * sizeof *magb);
  float *scratch = malloc((size_t)xc_scratch(&h, 0) * sizeof *scratch);
  /* x is read only for dw and w only for dx, as the generated code assumes */
  const float *xin = want_dw ? x : NULL, *win = want_dx ? w : NULL;
  ck_conv2d_backward_f32(want_dx ? rdx : NULL, want_dw ? rdw : NULL, want_db ? rdb : NULL, dy, xin, win, h.N, h.C,
                         h.H, h.W, h.OC, h.KH, h.KW, h.sh, h.sw, h.ph, h.pw, h.G, h.OH, h.OW);
  xc_model_dx(&h, mdx, magx, dy, w);
  xc_model_dw(&h, mdw, magw, dy, x);
  xc_model_db(&h, mdb, magb, dy);
  if (want_db) xc_close(rdb, mdb, magb, h.N * h.OH * h.OW, h.OC, "model dbias", si);
  if (want_dx) xc_close(rdx, mdx, magx, h.opg * h.KH * h.KW, nx, "model dx", si);
  if (want_dw) xc_close(rdw, mdw, magw, h.N * h.OH * h.OW, nw, "model dw", si);
  for (int pw = 0; pw <= 3; pw++) {
    CkPool *pool = pw ? ck_pool_create(pw) : NULL;
    for (int sc = 0; sc < 3; sc++) {
      float *gdx = xc_copy(dx0, nx), *gdw = xc_copy(dw0, nw), *gdb = xc_copy(db0, h.OC);
      ck_x86_conv2d_backward_f32(pool, want_dx ? gdx : NULL, want_dw ? gdw : NULL, want_db ? gdb : NULL, dy, xin,
                                 win, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.sh, h.sw, h.ph, h.pw, h.G, h.OH,
                                 h.OW, scratch, xc_scratch(&h, sc));
      xc_same(want_dx ? mdx : dx0, gdx, nx, "dx", si);
      xc_same(want_dw ? mdw : dw0, gdw, nw, "dw", si);
      xc_same(want_db ? mdb : db0, gdb, h.OC, "dbias", si);
      if (pw == 3 && sc == 2) {
        if (want_dx) xc_close(rdx, gdx, magx, h.opg * h.KH * h.KW, nx, "dx", si);
        if (want_dw) xc_close(rdw, gdw, magw, h.N * h.OH * h.OW, nw, "dw", si);
        if (want_db) xc_close(rdb, gdb, magb, h.N * h.OH * h.OW, h.OC, "dbias", si);
      }
      free(gdx), free(gdw), free(gdb);
    }
    ck_pool_destroy(pool);
  }
  /* a workspace smaller than one sample runs the reference */
  {
    float *gdx = xc_copy(dx0, nx), *gdw = xc_copy(dw0, nw), *gdb = xc_copy(db0, h.OC);
    ck_x86_conv2d_backward_f32(NULL, want_dx ? gdx : NULL, want_dw ? gdw : NULL, want_db ? gdb : NULL, dy, xin, win,
                               h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.sh, h.sw, h.ph, h.pw, h.G, h.OH, h.OW,
                               scratch, xc_scratch(&h, 1) - 1);
    xc_same(rdx, gdx, nx, "dx (fallback)", si);
    xc_same(rdw, gdw, nw, "dw (fallback)", si);
    xc_same(rdb, gdb, h.OC, "dbias (fallback)", si);
    free(gdx), free(gdw), free(gdb);
  }
  free(x), free(w), free(dy), free(dx0), free(dw0), free(db0), free(rdx), free(rdw), free(rdb), free(mdx), free(mdw);
  free(mdb);
  free(magx), free(magw), free(magb), free(scratch);
}
END_TEST

/* The gradients really move (a kernel doing nothing and a model doing
 * nothing would agree): every requested gradient changes almost everywhere. */
START_TEST(test_conv_backward_moves) {
  XcRng r = {77};
  XcShape h = xc_shape(0);
  int64_t nx = h.N * h.C * h.H * h.W, nw = h.OC * h.cpg * h.KH * h.KW, no = h.N * h.OC * h.OH * h.OW;
  float *x = xc_rand(&r, nx), *w = xc_rand(&r, nw), *dy = xc_rand(&r, no);
  float *dx = calloc((size_t)nx, sizeof *dx), *dw = calloc((size_t)nw, sizeof *dw), *db = calloc(4, sizeof *db);
  float *scratch = malloc((size_t)xc_scratch(&h, 0) * sizeof *scratch);
  CkPool *pool = ck_pool_create(2);
  ck_x86_conv2d_backward_f32(pool, dx, dw, db, dy, x, w, h.N, h.C, h.H, h.W, h.OC, h.KH, h.KW, h.sh, h.sw, h.ph,
                             h.pw, h.G, h.OH, h.OW, scratch, xc_scratch(&h, 0));
  int nzx = 0, nzw = 0, nzb = 0;
  for (int64_t i = 0; i < nx; i++) nzx += dx[i] != 0.0f;
  for (int64_t i = 0; i < nw; i++) nzw += dw[i] != 0.0f;
  for (int64_t i = 0; i < h.OC; i++) nzb += db[i] != 0.0f;
  ck_assert_int_gt(nzx, nx * 9 / 10);
  ck_assert_int_gt(nzw, nw * 9 / 10);
  ck_assert_int_eq(nzb, (int)h.OC);
  ck_pool_destroy(pool);
  free(x), free(w), free(dy), free(dx), free(dw), free(db), free(scratch);
}
END_TEST

/* max pooling shapes: N, C, H, W, KH, KW, sh, sw, ph, pw */
static const int64_t xc_pool_shapes[][10] = {
    {64, 16, 28, 28, 2, 2, 2, 2, 0, 0}, /* the cnn sample */
    {2, 3, 7, 9, 3, 3, 2, 2, 1, 1},     /* overlapping windows, padding */
    {1, 1, 5, 5, 2, 2, 1, 1, 0, 0},     /* stride 1 */
    {3, 7, 6, 5, 3, 2, 3, 1, 1, 1},     /* 21 planes: a partial last chunk */
    {2, 9, 4, 4, 4, 4, 4, 4, 0, 0},     /* window = input */
    {2, 3, 9, 40, 3, 3, 1, 1, 1, 1},    /* wide rows: row blocks between padded edges */
    {1, 2, 9, 70, 2, 3, 2, 3, 1, 2},    /* row blocks with stride 3 */
    {1, 2, 10, 10, 9, 9, 1, 1, 0, 0},   /* 81 cells: more than a block handles */
    {3, 5, 14, 14, 2, 2, 2, 2, 0, 0},   /* 2x2 rows (AVX-512): 7 outputs, one partial block */
    {2, 3, 9, 75, 2, 2, 2, 2, 0, 0},    /* 2x2 rows: 37 outputs (16 + 16 + 5), odd H and W */
    {1, 2, 6, 34, 2, 2, 2, 2, 0, 0},    /* 2x2 rows: exactly 17 outputs (a block of 1) */
    {1, 2, 66, 70, 2, 2, 2, 2, 0, 0},   /* 2x2: a plane above CK_X86_POOL2_PLANE_MAX takes the rows */
    {2, 3, 64, 64, 2, 2, 2, 2, 0, 0},   /* 2x2: a plane of exactly CK_X86_POOL2_PLANE_MAX cells */
    {1, 2, 6, 6, 2, 2, 2, 2, 1, 1},     /* 2x2 with padding: the general blocks */
};

/* _i = shape index; x holds NaNs and ties so both tie and NaN rules count. */
START_TEST(test_maxpool) {
  const int64_t *s = xc_pool_shapes[_i];
  int64_t N = s[0], C = s[1], H = s[2], W = s[3], KH = s[4], KW = s[5], sh = s[6], sw = s[7], ph = s[8], pw = s[9];
  int64_t OH = (H + 2 * ph - KH) / sh + 1, OW = (W + 2 * pw - KW) / sw + 1;
  int64_t nx = N * C * H * W, no = N * C * OH * OW;
  XcRng r = {(uint64_t)_i + 41u};
  float *x = xc_rand(&r, nx), *dy = xc_rand(&r, no), *dx0 = xc_rand(&r, nx);
  for (int64_t i = 0; i < nx; i += 37) { /* NaNs with distinct payloads: which NaN wins shows */
    uint32_t bits = 0x7fc00000u | (uint32_t)(i & 0x3fffff);
    memcpy(&x[i], &bits, sizeof bits);
  }
  for (int64_t i = 1; i < nx; i += 74) x[i] = x[i - 1]; /* two NaNs in one window, often */
  for (int64_t i = 5; i < nx; i += 11) x[i] = 1.5f; /* ties */
  for (int64_t i = 3; i < nx; i += 13) dx0[i] = -0.0f; /* adding +0 to a cell would show */
  float *ref = malloc((size_t)no * sizeof *ref), *got = malloc((size_t)no * sizeof *got), *rdx = xc_copy(dx0, nx);
  ck_maxpool2d_f32(ref, x, N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
  ck_maxpool2d_backward_f32(rdx, dy, x, N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
  for (int p = 0; p <= 3; p++) {
    CkPool *pool = p ? ck_pool_create(p) : NULL;
    float *gdx = xc_copy(dx0, nx);
    memset(got, 0xff, (size_t)no * sizeof *got);
    ck_x86_maxpool2d_f32(pool, got, x, N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
    ck_x86_maxpool2d_backward_f32(pool, gdx, dy, x, N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
    xc_same(ref, got, no, "maxpool out", _i);
    xc_same(rdx, gdx, nx, "maxpool dx", _i);
    free(gdx);
    ck_pool_destroy(pool);
  }
  free(x), free(dy), free(dx0), free(ref), free(got), free(rdx);
}
END_TEST

/* The AVX2 rows of the 2x2 / stride-2 pool, called directly (the dispatch
 * takes them only on CPUs without AVX-512F, so an AVX-512 machine would not
 * reach them through test_maxpool): one plane of 2 x 2n (+1 odd column and
 * row when _i is odd) for every n in 1..40 (a row of whole 8-blocks, or
 * ending in a masked block of 1..7), NaNs with payloads, ties, -0 in x,
 * dy and the dx being added to; forward, backward (dx +=) and the relu
 * backward of an exactly covered plane, bitwise against the reference. */
START_TEST(test_maxpool2x2_avx2_rows) {
  if (!ck_gemm_cpu_has(CK_GEMM_AVX2)) {
    printf("check_x86_conv: NOTE: this CPU lacks AVX2: the AVX2 pool rows are not run\n");
    return;
  }
  int odd = _i & 1;
  for (int64_t n = 1; n <= 40; n++) {
    int64_t OH = 3, OW = n, H = 2 * OH + odd, W = 2 * OW + odd, nx = H * W, no = OH * OW;
    XcRng r = {(uint64_t)(n * 7 + _i)};
    float *x = xc_rand(&r, nx), *dy = xc_rand(&r, no), *dx0 = xc_rand(&r, nx);
    for (int64_t i = 0; i < nx; i += 13) x[i] = 0.5f; /* ties, often in one window */
    for (int64_t i = 2; i < nx; i += 17) {
      uint32_t bits = 0x7fc00000u | (uint32_t)(i + 1);
      memcpy(&x[i], &bits, sizeof bits);
    }
    for (int64_t i = 3; i < nx; i += 11) x[i] = (i & 2) ? -0.0f : 0.0f;
    for (int64_t i = 1; i < nx; i += 7) dx0[i] = -0.0f;
    for (int64_t i = 0; i < no; i += 5) dy[i] = -0.0f;
    float *ref = malloc((size_t)no * sizeof *ref), *got = malloc((size_t)(no + 8) * sizeof *got);
    float *rdx = xc_copy(dx0, nx), *gdx = xc_copy(dx0, nx), *rrelu = calloc((size_t)nx, sizeof *rrelu);
    ck_maxpool2d_f32(ref, x, 1, 1, H, W, 2, 2, 2, 2, 0, 0, OH, OW);
    ck_maxpool2d_backward_f32(rdx, dy, x, 1, 1, H, W, 2, 2, 2, 2, 0, 0, OH, OW);
    for (int64_t i = 0; i < no + 8; i++) got[i] = 42.0f; /* past the row: must stay */
    for (int64_t oh = 0; oh < OH; oh++) {
      ck_x86_maxpool2x2_row_avx2(got + oh * OW, x + 2 * oh * W, x + (2 * oh + 1) * W, OW);
      ck_x86_maxpool2x2_bwd_row_avx2(gdx + 2 * oh * W, gdx + (2 * oh + 1) * W, x + 2 * oh * W,
                                     x + (2 * oh + 1) * W, dy + oh * OW, OW);
    }
    xc_same(ref, got, no, "avx2 2x2 row", (int)n);
    for (int64_t i = no; i < no + 8; i++) ck_assert_float_eq(got[i], 42.0f);
    xc_same(rdx, gdx, nx, "avx2 2x2 bwd row", (int)n);
    if (!odd) { /* the relu plane: zero, pool backward, where(x > 0, dx, 0) */
      ck_maxpool2d_backward_f32(rrelu, dy, x, 1, 1, H, W, 2, 2, 2, 2, 0, 0, OH, OW);
      for (int64_t i = 0; i < nx; i++) rrelu[i] = x[i] > 0.0f ? rrelu[i] : 0.0f;
      for (int64_t i = 0; i < nx; i++) gdx[i] = (float)i + 0.25f; /* every cell must be set */
      ck_x86_maxpool2x2_relu_bwd_rows_avx2(gdx, x, dy, W, OH, OW);
      xc_same(rrelu, gdx, nx, "avx2 2x2 relu bwd rows", (int)n);
    }
    free(x), free(dy), free(dx0), free(ref), free(got), free(rdx), free(gdx), free(rrelu);
  }
}
END_TEST

Suite *check_x86_conv_suite(void) {
  Suite *s = suite_create("x86_conv");
  TCase *tc = tcase_create("conv_and_pool");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_conv_forward, 0, XC_NSHAPES);
  tcase_add_loop_test(tc, test_conv_backward, 0, XC_NSHAPES * 8);
  tcase_add_test(tc, test_conv_backward_moves);
  tcase_add_loop_test(tc, test_maxpool, 0, (int)(sizeof xc_pool_shapes / sizeof xc_pool_shapes[0]));
  tcase_add_loop_test(tc, test_maxpool2x2_avx2_rows, 0, 2);
  suite_add_tcase(s, tc);
  return s;
}

#else /* not x86-64 */

START_TEST(test_not_x86) { printf("check_x86_conv: NOTE: not an x86-64 host, tests skipped\n"); }
END_TEST

Suite *check_x86_conv_suite(void) {
  Suite *s = suite_create("x86_conv");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}

#endif
