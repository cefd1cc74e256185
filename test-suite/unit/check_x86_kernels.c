/* test-suite/unit/check_x86_kernels.c - the pooled x86 kernels of
 * rt-min/x86/ck_x86_kernels.h (attention forward/backward, layernorm
 * forward/backward, sum).
 *
 * Their contract is the reference kernel's, computed with the same
 * floating-point operations in the same order (but for the tiled attention
 * path's softmax, see xk_vec_softmax, and the layernorm row sums: 16 lane
 * partials, held to the same bound and bitwise over pools), so the check is the strongest
 * one there is: bitwise equality (memcmp) with the reference kernel, for a
 * NULL pool and pools of 1, 2 and 3 threads. Gradients are accumulated into
 * buffers that start nonzero, every optional output is left out in turn, and
 * the shapes cover causal and full masks, S > T, D and Dv off the 16-lane
 * block, rows and columns off the 16-row/16-column chunks, and single rows.
 * A summation order, a skipped lane tail or a chunk boundary that drops or
 * repeats a row changes bits and fails here. */
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
#include "rt-min/ck_optim.h"

#if defined(__x86_64__)
#include "rt-min/x86/ck_pool.h"
#include "rt-min/x86/ck_x86_kernels.h"
#include "rt-min/x86/ck_x86_nn.h"

typedef struct XkRng {
  uint64_t s;
} XkRng;

/* Values in [-2, 2) from a 64-bit LCG (deterministic, no libc rand state). */
static float xk_next(XkRng *r) {
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((double)(r->s >> 40) / (double)(1ULL << 24) * 4.0 - 2.0);
}

static float *xk_rand(XkRng *r, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = xk_next(r);
  return p;
}

static float *xk_copy(const float *x, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  memcpy(p, x, (size_t)n * sizeof *p);
  return p;
}

static void xk_same(const float *ref, const float *got, int64_t n, const char *what) {
  int64_t i = 0;
  while (i < n && memcmp(ref + i, got + i, sizeof *ref) == 0) i++;
  ck_assert_msg(i == n, "%s differs from the reference at element %lld: %.9g, expected %.9g", what, (long long)i,
                i < n ? (double)got[i] : 0.0, i < n ? (double)ref[i] : 0.0);
}

/* The register-tiled attention path (D and Dv whole 16-lane blocks, a
 * pool) has a vectorised softmax (ck_x86_expf, 16-lane sums in a fixed
 * tree): rounding-level from the reference, stated bound |got - ref| <=
 * 1e-5 * max(1, max |ref|) per tensor, and bitwise equal over 1, 2, 3
 * threads. Every other path, and a NULL pool, is bitwise the reference. */
static bool xk_vec_softmax(int pw, int64_t D, int64_t Dv) { return pw > 0 && D % 16 == 0 && Dv % 16 == 0; }

static void xk_close(const float *ref, const float *got, int64_t n, const char *what) {
  float mx = 1.0f;
  for (int64_t i = 0; i < n; i++) mx = fabsf(ref[i]) > mx ? fabsf(ref[i]) : mx;
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(fabsf(got[i] - ref[i]) <= 1e-5f * mx, "%s[%ld]: %.9g vs reference %.9g", what, (long)i,
                  (double)got[i], (double)ref[i]);
}

/* Against the reference: bitwise, or within the bound on the tiled path,
 * where got must also equal the first pool's bits (first: NULL the first time). */
static void xk_attn_check(const float *ref, const float **first, const float *got, int64_t n, bool vec,
                          const char *what) {
  if (!vec) {
    xk_same(ref, got, n, what);
    return;
  }
  xk_close(ref, got, n, what);
  if (*first)
    ck_assert_msg(memcmp(*first, got, (size_t)n * sizeof *got) == 0, "%s differs across thread counts", what);
  else
    *first = got;
}

/* attention shapes: batch, T, S, D, Dv, causal */
static const int64_t xk_attn_shapes[][6] = {
    {1, 1, 1, 1, 1, 1},   {3, 5, 5, 7, 9, 1},     {2, 4, 9, 33, 17, 1}, {2, 17, 17, 16, 32, 0},
    {4, 64, 64, 32, 32, 1}, {2, 9, 4, 20, 3, 1}, {3, 19, 37, 48, 15, 0},
    /* D and Dv whole 16-lane blocks: the register-tiled path (4-row tiles,
     * T off the tile, S > T and S < T, keys off the 16-key block) */
    {2, 64, 64, 64, 64, 1}, {3, 13, 29, 16, 48, 1}, {2, 10, 3, 16, 16, 1}, {2, 7, 21, 32, 16, 0},
};
#define XK_NSHAPES ((int)(sizeof xk_attn_shapes / sizeof xk_attn_shapes[0]))

/* pool index 0: NULL; 1..3: that many threads */
static CkPool *xk_pool(int which) { return which == 0 ? NULL : ck_pool_create(which); }

START_TEST(test_attention_forward) {
  XkRng r = {(uint64_t)_i * 7919u + 11u};
  for (int si = 0; si < XK_NSHAPES; si++) {
    const int64_t *sh = xk_attn_shapes[si];
    int64_t B = sh[0], T = sh[1], S = sh[2], D = sh[3], Dv = sh[4];
    int causal = (int)sh[5];
    float scale = 1.0f / sqrtf((float)D);
    float *q = xk_rand(&r, B * T * D), *k = xk_rand(&r, B * S * D), *v = xk_rand(&r, B * S * Dv);
    float *ref = xk_rand(&r, B * T * Dv), *got = xk_rand(&r, B * T * Dv), *scr = xk_rand(&r, S);
    float *first = xk_rand(&r, B * T * Dv);
    const float *fp = NULL;
    ck_attention_f32(ref, q, k, v, B, T, S, D, Dv, causal, scale, scr);
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = xk_pool(pw);
      float *dst = pw == 1 ? first : got;
      memset(dst, 0xff, (size_t)(B * T * Dv) * sizeof *dst); /* NaN: an unwritten element fails */
      ck_x86_attention_f32(pool, dst, q, k, v, B, T, S, D, Dv, causal, scale, scr);
      xk_attn_check(ref, &fp, dst, B * T * Dv, xk_vec_softmax(pw, D, Dv), "attention out");
      ck_pool_destroy(pool);
    }
    free(q), free(k), free(v), free(ref), free(got), free(scr), free(first);
  }
}
END_TEST

/* _i selects which of dq, dk, dv are wanted (bit set = NULL). */
START_TEST(test_attention_backward) {
  XkRng r = {(uint64_t)_i * 104729u + 3u};
  for (int si = 0; si < XK_NSHAPES; si++) {
    const int64_t *sh = xk_attn_shapes[si];
    int64_t B = sh[0], T = sh[1], S = sh[2], D = sh[3], Dv = sh[4];
    int causal = (int)sh[5];
    float scale = 0.37f;
    float *q = xk_rand(&r, B * T * D), *k = xk_rand(&r, B * S * D), *v = xk_rand(&r, B * S * Dv);
    float *g = xk_rand(&r, B * T * Dv), *scr = xk_rand(&r, 2 * S);
    float *q0 = xk_rand(&r, B * T * D), *k0 = xk_rand(&r, B * S * D), *v0 = xk_rand(&r, B * S * Dv);
    float *rq = xk_copy(q0, B * T * D), *rk = xk_copy(k0, B * S * D), *rv = xk_copy(v0, B * S * Dv);
    ck_attention_backward_f32(_i & 1 ? NULL : rq, _i & 2 ? NULL : rk, _i & 4 ? NULL : rv, g, q, k, v, B, T, S, D,
                              Dv, causal, scale, scr);
    float *fq = NULL, *fk = NULL, *fv = NULL; /* the 1-thread pool's results */
    const float *pq = NULL, *pk = NULL, *pv = NULL;
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = xk_pool(pw);
      float *gq = xk_copy(q0, B * T * D), *gk = xk_copy(k0, B * S * D), *gv = xk_copy(v0, B * S * Dv);
      bool vec = xk_vec_softmax(pw, D, Dv);
      ck_x86_attention_backward_f32(pool, _i & 1 ? NULL : gq, _i & 2 ? NULL : gk, _i & 4 ? NULL : gv, g, q, k,
                                    v, B, T, S, D, Dv, causal, scale, scr);
      xk_attn_check(rq, &pq, gq, B * T * D, vec, "attention dq");
      xk_attn_check(rk, &pk, gk, B * S * D, vec, "attention dk");
      xk_attn_check(rv, &pv, gv, B * S * Dv, vec, "attention dv");
      if (pw == 1)
        fq = gq, fk = gk, fv = gv;
      else
        free(gq), free(gk), free(gv);
      ck_pool_destroy(pool);
    }
    free(fq), free(fk), free(fv);
    free(q), free(k), free(v), free(g), free(scr), free(q0), free(k0), free(v0), free(rq), free(rk), free(rv);
  }
}
END_TEST

/* The gradients really move: a zero dout leaves the inputs, a nonzero one
 * changes every requested gradient (guards against a kernel that does
 * nothing and a reference that does nothing alike). */
START_TEST(test_attention_backward_moves) {
  XkRng r = {99};
  int64_t B = 2, T = 6, S = 6, D = 5, Dv = 4;
  float *q = xk_rand(&r, B * T * D), *k = xk_rand(&r, B * S * D), *v = xk_rand(&r, B * S * Dv);
  float *g = xk_rand(&r, B * T * Dv), *scr = xk_rand(&r, 2 * S);
  float *dq = calloc((size_t)(B * T * D), sizeof *dq), *dv = calloc((size_t)(B * S * Dv), sizeof *dv);
  CkPool *pool = ck_pool_create(2);
  ck_x86_attention_backward_f32(pool, dq, NULL, dv, g, q, k, v, B, T, S, D, Dv, 1, 0.5f, scr);
  int nzq = 0, nzv = 0;
  for (int64_t i = 0; i < B * T * D; i++) nzq += dq[i] != 0.0f;
  for (int64_t i = 0; i < B * S * Dv; i++) nzv += dv[i] != 0.0f;
  ck_assert_int_gt(nzq, B * T * D / 2);
  ck_assert_int_gt(nzv, B * S * Dv / 2);
  ck_pool_destroy(pool);
  free(q), free(k), free(v), free(g), free(scr), free(dq), free(dv);
}
END_TEST

/* Gathers item (n, h) of a [batch, rows, heads * cols] tensor stored with
 * batch stride bs and row stride ld from element off (q, k, v as column
 * blocks of qkv) into a contiguous [batch * heads, rows, cols] one, and
 * scatters back. */
static void xk_heads_gather(float *dst, const float *src, int64_t off, int64_t bs, int64_t ld, int64_t B,
                            int64_t H, int64_t rows, int64_t cols, bool back) {
  for (int64_t n = 0; n < B; n++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < rows; i++)
        for (int64_t d = 0; d < cols; d++) {
          float *c = dst + ((n * H + h) * rows + i) * cols + d;
          float *s = (float *)src + off + n * bs + h * cols + i * ld + d;
          if (back)
            *s = *c;
          else
            *c = *s;
        }
}

/* heads shapes: batch, heads, T, S, D, Dv, causal */
static const int64_t xk_heads_shapes[][7] = {
    {2, 4, 64, 64, 32, 32, 1}, {1, 3, 13, 13, 16, 16, 1}, {2, 2, 9, 9, 5, 7, 1}, {3, 2, 7, 21, 32, 16, 0},
};

/* ck_x86_attention_heads_f32 / _backward_f32 reading q, k, v as column
 * blocks of one qkv buffer (row stride H(2D + Dv) + 5, padded so the layout
 * is no accident) and writing out / dq / dk / dv in place: bitwise what
 * the contiguous kernels give on the gathered operands, for a NULL pool
 * (the strided reference path) and 1, 2, 3 threads; and what lies outside
 * the written blocks is untouched. */
START_TEST(test_attention_heads) {
  const int64_t *sh = xk_heads_shapes[_i];
  int64_t B = sh[0], H = sh[1], T = sh[2], S = sh[3], D = sh[4], Dv = sh[5];
  int causal = (int)sh[6];
  int64_t ldx = H * (2 * D + Dv) + 5, ldo = H * Dv + 3, R = T > S ? T : S;
  XkRng r = {(uint64_t)_i * 31u + 7u};
  float scale = 1.0f / sqrtf((float)D);
  /* q rows T, k / v rows S: one buffer of R rows per batch item */
  float *qkv = xk_rand(&r, B * R * ldx), *g = xk_rand(&r, B * T * ldo);
  float *q = xk_rand(&r, B * H * T * D), *k = xk_rand(&r, B * H * S * D), *v = xk_rand(&r, B * H * S * Dv);
  float *gc = xk_rand(&r, B * H * T * Dv);
  xk_heads_gather(q, qkv, 0, R * ldx, ldx, B, H, T, D, false);
  xk_heads_gather(k, qkv, H * D, R * ldx, ldx, B, H, S, D, false);
  xk_heads_gather(v, qkv, 2 * H * D, R * ldx, ldx, B, H, S, Dv, false);
  xk_heads_gather(gc, g, 0, T * ldo, ldo, B, H, T, Dv, false);
  const int64_t lay[28] = {0,          R * ldx, D,  ldx, H * D,       R * ldx, D,  ldx, 2 * H * D, R * ldx, Dv, ldx,
                           0,          T * ldo, Dv, ldo, 0,           R * ldx, D,  ldx, H * D,     R * ldx, D,  ldx,
                           2 * H * D, R * ldx, Dv, ldx};
  float *scr = xk_rand(&r, 2 * S), *ref = xk_rand(&r, B * H * T * Dv);
  float *rq = calloc((size_t)(B * H * T * D), 4), *rk = calloc((size_t)(B * H * S * D), 4);
  float *rv = calloc((size_t)(B * H * S * Dv), 4);
  for (int pw = 0; pw <= 3; pw++) {
    CkPool *pool = xk_pool(pw);
    float *out = xk_rand(&r, B * T * ldo), *out0 = xk_copy(out, B * T * ldo), *got = xk_rand(&r, B * H * T * Dv);
    float *dx = xk_rand(&r, B * R * ldx), *dx0 = xk_copy(dx, B * R * ldx);
    /* the contiguous kernel on the same pool is the reference (bitwise) */
    ck_x86_attention_f32(pool, ref, q, k, v, B * H, T, S, D, Dv, causal, scale, scr);
    ck_x86_attention_heads_f32(pool, out, qkv, qkv, qkv, lay, B, H, T, S, D, Dv, causal, scale, scr);
    xk_heads_gather(got, out, 0, T * ldo, ldo, B, H, T, Dv, false);
    xk_same(ref, got, B * H * T * Dv, pw ? "heads out (pool)" : "heads out (no pool)");
    for (int64_t n = 0; n < B * T; n++) /* the pad columns are untouched */
      ck_assert(memcmp(out + n * ldo + H * Dv, out0 + n * ldo + H * Dv, 3 * 4) == 0);
    /* backward: dq, dk, dv accumulated into a dqkv laid out as qkv */
    memset(rq, 0, (size_t)(B * H * T * D) * 4), memset(rk, 0, (size_t)(B * H * S * D) * 4);
    memset(rv, 0, (size_t)(B * H * S * Dv) * 4);
    xk_heads_gather(rq, dx, 0, R * ldx, ldx, B, H, T, D, false);
    xk_heads_gather(rk, dx, H * D, R * ldx, ldx, B, H, S, D, false);
    xk_heads_gather(rv, dx, 2 * H * D, R * ldx, ldx, B, H, S, Dv, false);
    ck_x86_attention_backward_f32(pool, rq, rk, rv, gc, q, k, v, B * H, T, S, D, Dv, causal, scale, scr);
    ck_x86_attention_heads_backward_f32(pool, dx, dx, dx, g, qkv, qkv, qkv, lay, B, H, T, S, D, Dv, causal, scale,
                                        scr);
    /* scatter the reference into dx0 and compare the whole buffers */
    xk_heads_gather(rq, dx0, 0, R * ldx, ldx, B, H, T, D, true);
    xk_heads_gather(rk, dx0, H * D, R * ldx, ldx, B, H, S, D, true);
    xk_heads_gather(rv, dx0, 2 * H * D, R * ldx, ldx, B, H, S, Dv, true);
    xk_same(dx0, dx, B * R * ldx, "heads dq/dk/dv");
    ck_pool_destroy(pool);
    free(out), free(out0), free(got), free(dx), free(dx0);
  }
  free(qkv), free(g), free(q), free(k), free(v), free(gc), free(scr), free(ref), free(rq), free(rk), free(rv);
}
END_TEST

/* A softmax row whose scores span far more than exp's range (keys at -1e4
 * against 0: their exps underflow) and rows of one key: the tiled path
 * still agrees with the reference within the stated bound, with no NaN. */
START_TEST(test_attention_extreme_scores) {
  int64_t B = 1, T = 37, S = 37, D = 16, Dv = 16;
  XkRng r = {4242};
  float *q = xk_rand(&r, B * T * D), *k = xk_rand(&r, B * S * D), *v = xk_rand(&r, B * S * Dv);
  for (int64_t j = 0; j < S; j += 3) k[j * D] = 3000.0f; /* every third key far off */
  float *ref = xk_rand(&r, T * Dv), *got = xk_rand(&r, T * Dv), *scr = xk_rand(&r, S);
  CkPool *pool = ck_pool_create(2);
  ck_attention_f32(ref, q, k, v, B, T, S, D, Dv, 1, 1.0f, scr);
  ck_x86_attention_f32(pool, got, q, k, v, B, T, S, D, Dv, 1, 1.0f, scr);
  for (int64_t i = 0; i < T * Dv; i++) ck_assert(got[i] == got[i]);
  xk_close(ref, got, T * Dv, "attention out, extreme scores");
  ck_pool_destroy(pool);
  free(q), free(k), free(v), free(ref), free(got), free(scr);
}
END_TEST

/* layernorm shapes: rows, n */
static const int64_t xk_ln_shapes[][2] = {{1, 1}, {1, 128}, {15, 7}, {16, 16}, {17, 33}, {100, 128}, {513, 20}};
#define XK_NLN ((int)(sizeof xk_ln_shapes / sizeof xk_ln_shapes[0]))

/* _i: bit 0 no weight, bit 1 no bias, bit 2 no mean/rstd. */
START_TEST(test_layernorm_forward) {
  XkRng r = {(uint64_t)_i + 5u};
  for (int si = 0; si < XK_NLN; si++) {
    int64_t rows = xk_ln_shapes[si][0], n = xk_ln_shapes[si][1];
    float *x = xk_rand(&r, rows * n), *w = xk_rand(&r, n), *b = xk_rand(&r, n);
    for (int64_t i = 0; i < rows * n; i++) x[i] += (float)(i % 3) * 100.0f; /* large row offsets */
    float *ro = xk_rand(&r, rows * n), *rm = xk_rand(&r, rows), *rr = xk_rand(&r, rows);
    bool stats = !(_i & 4);
    ck_layernorm_f32(ro, stats ? rm : NULL, stats ? rr : NULL, x, _i & 1 ? NULL : w, _i & 2 ? NULL : b, rows, n,
                     1e-5f);
    const float *po = NULL, *pm = NULL, *pr = NULL; /* the NULL pool's results: every pool's bits */
    float *fo = NULL, *fm = NULL, *fr = NULL;
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = xk_pool(pw);
      float *go = xk_rand(&r, rows * n), *gm = xk_copy(rm, rows), *gr = xk_copy(rr, rows);
      if (stats) memset(gm, 0xff, (size_t)rows * sizeof *gm), memset(gr, 0xff, (size_t)rows * sizeof *gr);
      ck_x86_layernorm_f32(pool, go, stats ? gm : NULL, stats ? gr : NULL, x, _i & 1 ? NULL : w,
                           _i & 2 ? NULL : b, rows, n, 1e-5f);
      xk_attn_check(ro, &po, go, rows * n, true, "layernorm out");
      xk_attn_check(rm, &pm, gm, rows, true, "layernorm mean");
      xk_attn_check(rr, &pr, gr, rows, true, "layernorm rstd");
      if (pw == 0)
        fo = go, fm = gm, fr = gr;
      else
        free(go), free(gm), free(gr);
      ck_pool_destroy(pool);
    }
    free(fo), free(fm), free(fr);
    free(x), free(w), free(b), free(ro), free(rm), free(rr);
  }
}
END_TEST

/* _i: bit 0 no dx, bit 1 no dweight, bit 2 no dbias, bit 3 no weight. */
START_TEST(test_layernorm_backward) {
  XkRng r = {(uint64_t)_i * 31u + 1u};
  for (int si = 0; si < XK_NLN; si++) {
    int64_t rows = xk_ln_shapes[si][0], n = xk_ln_shapes[si][1];
    float *x = xk_rand(&r, rows * n), *w = xk_rand(&r, n), *dy = xk_rand(&r, rows * n);
    float *mean = xk_rand(&r, rows), *rstd = xk_rand(&r, rows), *junk = xk_rand(&r, rows * n);
    ck_layernorm_f32(junk, mean, rstd, x, NULL, NULL, rows, n, 1e-5f);
    float *dx0 = xk_rand(&r, rows * n), *dw0 = xk_rand(&r, n), *db0 = xk_rand(&r, n);
    float *rx = xk_copy(dx0, rows * n), *rw = xk_copy(dw0, n), *rb = xk_copy(db0, n);
    const float *wt = _i & 8 ? NULL : w;
    ck_layernorm_backward_f32(_i & 1 ? NULL : rx, _i & 2 ? NULL : rw, _i & 4 ? NULL : rb, dy, x, wt, mean, rstd,
                              rows, n);
    const float *px = NULL;
    float *fx = NULL;
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = xk_pool(pw);
      float *gx = xk_copy(dx0, rows * n), *gw = xk_copy(dw0, n), *gb = xk_copy(db0, n);
      ck_x86_layernorm_backward_f32(pool, _i & 1 ? NULL : gx, _i & 2 ? NULL : gw, _i & 4 ? NULL : gb, dy, x, wt,
                                    mean, rstd, rows, n);
      xk_attn_check(rx, &px, gx, rows * n, true, "layernorm dx"); /* 16-lane row sums: the bound */
      xk_same(rw, gw, n, "layernorm dweight");
      xk_same(rb, gb, n, "layernorm dbias");
      if (pw == 0)
        fx = gx;
      else
        free(gx);
      free(gw), free(gb);
      ck_pool_destroy(pool);
    }
    free(fx);
    free(x), free(w), free(dy), free(mean), free(rstd), free(junk), free(dx0), free(dw0), free(db0);
    free(rx), free(rw), free(rb);
  }
}
END_TEST

/* sum shapes: outer, n, inner (inner off the 16-lane block, outer off the
 * 16-row block, n = 0 giving zeros). */
static const int64_t xk_sum_shapes[][3] = {{1, 512, 128}, {1, 512, 512}, {3, 7, 1},   {17, 5, 33},
                                           {40, 3, 16},   {1, 1, 1},     {2, 0, 19}, {5, 100, 7}};

START_TEST(test_sum) {
  XkRng r = {77};
  for (int si = 0; si < (int)(sizeof xk_sum_shapes / sizeof xk_sum_shapes[0]); si++) {
    int64_t outer = xk_sum_shapes[si][0], n = xk_sum_shapes[si][1], inner = xk_sum_shapes[si][2];
    float *x = xk_rand(&r, outer * n * inner), *ro = xk_rand(&r, outer * inner);
    ck_sum_f32(ro, x, outer, n, inner);
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = xk_pool(pw);
      float *go = xk_rand(&r, outer * inner);
      ck_x86_sum_f32(pool, go, x, outer, n, inner);
      xk_same(ro, go, outer * inner, "sum");
      free(go);
      ck_pool_destroy(pool);
    }
    free(x), free(ro);
  }
}
END_TEST

/* ---- cross entropy (rt-min/x86/ck_x86_nn.h): rounding-level, not bitwise ----
 * The oracle is the same formula in double. Stated bounds:
 *   loss: |x86 - oracle| <= 2e-6 * max(1, |oracle|), and never worse than the
 *         reference's own error plus 1e-6 * max(1, |oracle|);
 *   dlogits: |x86 - oracle| <= |c| (4e-6 p + 2^-22 |g|) + 2^-23 |dx|, with
 *         c = dloss / count, p the probability and g = p - (1-e)[j == t] - e/V
 *         (the exponential's 2 ulp, the shifted argument's rounding over
 *         |x - lse| <= 20, the lse error, one rounding of g and of the add).
 * Pools of 1, 2 and 3 threads give the same bits. */
/* rows, V, label smoothing * 1000, ignore every k-th row (0: none) */
static const int64_t xk_ce_shapes[][4] = {{3, 50257, 0, 0}, {37, 256, 0, 5}, {40, 256, 100, 3}, {5, 17, 0, 0},
                                          {1, 1, 0, 0},     {9, 1000, 50, 4}, {700, 33, 0, 7}};

static void xk_ce_oracle(const float *x, const int32_t *t, int64_t rows, int64_t V, int32_t ign, double e,
                         double *loss, double *lse) {
  double nll = 0.0, sm = 0.0;
  int64_t count = 0;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * V;
    double m = -INFINITY, s = 0.0;
    for (int64_t j = 0; j < V; j++) m = xr[j] > m ? xr[j] : m;
    for (int64_t j = 0; j < V; j++) s += exp((double)xr[j] - m);
    lse[r] = m + log(s);
    if (t[r] == ign) continue;
    count++;
    nll += lse[r] - xr[t[r]];
    for (int64_t j = 0; j < V; j++) sm += lse[r] - xr[j];
  }
  *loss = ((1.0 - e) * nll + e / (double)V * sm) / (double)count;
}

START_TEST(test_cross_entropy) {
  XkRng r = {(uint64_t)_i * 13u + 2u};
  const int64_t *sh = xk_ce_shapes[_i];
  int64_t rows = sh[0], V = sh[1], every = sh[3], count = 0;
  float eps = (float)sh[2] / 1000.0f, dloss = 0.75f;
  int32_t ign = -100, *t = malloc((size_t)rows * sizeof *t);
  float *x = xk_rand(&r, rows * V), *dx0 = xk_rand(&r, rows * V);
  double *lse = malloc((size_t)rows * sizeof *lse), oloss, refloss_err;
  for (int64_t i = 0; i < rows * V; i++) x[i] *= 4.0f; /* logits in [-8, 8) */
  for (int64_t i = 0; i < rows; i++) {
    t[i] = every && i % every == 1 ? ign : (int32_t)((r.s >> 33) % (uint64_t)V);
    xk_next(&r);
    count += t[i] != ign;
  }
  xk_ce_oracle(x, t, rows, V, ign, eps, &oloss, lse);
  float ref = 0.0f, got0 = 0.0f;
  ck_assert_int_eq(ck_cross_entropy_f32(&ref, x, t, rows, V, ign, eps), -1);
  refloss_err = fabs((double)ref - oloss);
  double scale = fmax(1.0, fabs(oloss)), c = (double)(dloss / (float)count);
  float *got_dx0 = NULL;
  for (int pw = 1; pw <= 3; pw++) {
    CkPool *pool = xk_pool(pw);
    float got = NAN, *dx = xk_copy(dx0, rows * V);
    ck_assert_int_eq(ck_x86_cross_entropy_f32(pool, &got, x, t, rows, V, ign, eps), -1);
    double err = fabs((double)got - oloss);
    ck_assert_msg(err <= 2e-6 * scale && err <= refloss_err + 1e-6 * scale,
                  "loss %.9g vs oracle %.9g (reference %.9g)", got, oloss, ref);
    ck_assert_int_eq(ck_x86_cross_entropy_backward_f32(pool, dx, &dloss, x, t, rows, V, ign, eps), -1);
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < V; j++) {
        double p = exp((double)x[i * V + j] - lse[i]), g = p - (j == t[i] ? 1.0 - eps : 0.0) - eps / (double)V;
        double want = t[i] == ign ? dx0[i * V + j] : dx0[i * V + j] + c * g;
        double bound = t[i] == ign ? 0.0 : c * (4e-6 * p + ldexp(fabs(g), -22)) + ldexp(fabs(want), -23);
        ck_assert_msg(fabs(dx[i * V + j] - want) <= bound, "dlogits[%ld, %ld] = %.9g, oracle %.9g", (long)i,
                      (long)j, dx[i * V + j], want);
      }
    if (pw == 1) got0 = got, got_dx0 = dx;
    else {
      ck_assert_msg(memcmp(&got, &got0, sizeof got) == 0, "loss differs across thread counts");
      xk_same(got_dx0, dx, rows * V, "dlogits across thread counts");
      free(dx);
    }
    ck_pool_destroy(pool);
  }
  free(got_dx0), free(t), free(x), free(dx0), free(lse);
}
END_TEST

/* Rows with an infinity or a NaN take the reference's path: the same bits
 * (NaN where the reference gives NaN); bad targets write nothing; a batch
 * of ignored rows gives NaN and adds no gradient. */
START_TEST(test_cross_entropy_edges) {
  XkRng r = {4242};
  int64_t rows = 4, V = 40;
  int32_t t[4] = {3, 7, 39, 0};
  float *x = xk_rand(&r, rows * V), *rd = xk_rand(&r, rows * V), dloss = 1.0f, ref, got;
  x[1 * V + 5] = -INFINITY;
  x[2 * V + 9] = INFINITY;
  CkPool *pool = ck_pool_create(2);
  float *gd = xk_copy(rd, rows * V);
  ck_cross_entropy_f32(&ref, x, t, rows, V, -100, 0.0f);
  ck_x86_cross_entropy_f32(pool, &got, x, t, rows, V, -100, 0.0f);
  ck_assert(isnan(ref) && isnan(got));
  ck_cross_entropy_backward_f32(rd, &dloss, x, t, rows, V, -100, 0.0f);
  ck_x86_cross_entropy_backward_f32(pool, gd, &dloss, x, t, rows, V, -100, 0.0f);
  for (int64_t i = V; i < 3 * V; i++) /* rows 1 (-inf) and 2 (+inf): the reference's bits or both NaN */
    ck_assert_msg(memcmp(rd + i, gd + i, sizeof *gd) == 0 || (isnan(rd[i]) && isnan(gd[i])), "row %ld", (long)(i / V));
  /* -inf alone: a finite loss, bitwise the reference's row */
  x[2 * V + 9] = 0.5f;
  int32_t t1[1] = {7};
  ck_cross_entropy_f32(&ref, x + V, t1, 1, V, -100, 0.0f);
  ck_x86_cross_entropy_f32(pool, &got, x + V, t1, 1, V, -100, 0.0f);
  ck_assert(isfinite(got) && memcmp(&ref, &got, sizeof got) == 0);
  /* bad target: its index back, nothing written */
  int32_t bad[4] = {1, -100, 40, 2};
  got = 123.0f;
  memcpy(gd, rd, (size_t)(rows * V) * sizeof *gd);
  ck_assert_int_eq(ck_x86_cross_entropy_f32(pool, &got, x, bad, rows, V, -100, 0.0f), 2);
  ck_assert_int_eq(ck_x86_cross_entropy_backward_f32(pool, gd, &dloss, x, bad, rows, V, -100, 0.0f), 2);
  ck_assert(got == 123.0f && memcmp(gd, rd, (size_t)(rows * V) * sizeof *gd) == 0);
  /* every row ignored */
  int32_t none[4] = {-100, -100, -100, -100};
  ck_assert_int_eq(ck_x86_cross_entropy_f32(pool, &got, x, none, rows, V, -100, 0.0f), -1);
  ck_assert(isnan(got));
  ck_x86_cross_entropy_backward_f32(pool, gd, &dloss, x, none, rows, V, -100, 0.0f);
  ck_assert(memcmp(gd, rd, (size_t)(rows * V) * sizeof *gd) == 0);
  ck_pool_destroy(pool);
  free(x), free(rd), free(gd);
}
END_TEST

Suite *check_x86_kernels_suite(void) {
  Suite *s = suite_create("x86_kernels");
  TCase *tc = tcase_create("bitwise_vs_reference");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_attention_forward, 0, 2);
  tcase_add_loop_test(tc, test_attention_backward, 0, 8);
  tcase_add_test(tc, test_attention_backward_moves);
  tcase_add_loop_test(tc, test_attention_heads, 0, (int)(sizeof xk_heads_shapes / sizeof xk_heads_shapes[0]));
  tcase_add_test(tc, test_attention_extreme_scores);
  tcase_add_loop_test(tc, test_layernorm_forward, 0, 8);
  tcase_add_loop_test(tc, test_layernorm_backward, 0, 16);
  tcase_add_test(tc, test_sum);
  suite_add_tcase(s, tc);
  TCase *ce = tcase_create("cross_entropy_vs_oracle");
  tcase_set_timeout(ce, 120);
  tcase_add_loop_test(ce, test_cross_entropy, 0, (int)(sizeof xk_ce_shapes / sizeof xk_ce_shapes[0]));
  tcase_add_test(ce, test_cross_entropy_edges);
  suite_add_tcase(s, ce);
  return s;
}

#else /* not x86-64 */

START_TEST(test_not_x86) { printf("check_x86_kernels: NOTE: not an x86-64 host, tests skipped\n"); }
END_TEST

Suite *check_x86_kernels_suite(void) {
  Suite *s = suite_create("x86_kernels");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}
#endif
