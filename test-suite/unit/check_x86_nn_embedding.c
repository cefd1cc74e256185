/* test-suite/unit/check_x86_nn_embedding.c - the one-pass embedding
 * gradient of rt-min/x86/ck_x86_nn.h (ck_x86_embedding_grad_f32).
 *
 * lower_x86.c replaces the steps the c99 lowering writes for an embedding's
 * gradient (memset e; ck_embedding_backward_f32(e, ...); u = base + e for a
 * tied head; grads += u) by this call and promises the same bits, so the
 * check is memcmp against that sequence (run here with the reference
 * kernel), for a NULL pool and pools of 1, 2 and 3 threads: repeated
 * indices (the order of a row's additions), rows nobody hits (base + 0),
 * signed zeros, C off the 16-lane block, V off the 64-row block, with and
 * without base, grads starting nonzero; and a bad index writes nothing. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt-min/ck_grad.h"

#if defined(__x86_64__)
#include "rt-min/x86/ck_pool.h"
#include "rt-min/x86/ck_x86_nn.h"

typedef struct XemRng {
  uint64_t s;
} XemRng;

static uint32_t xem_bits(XemRng *r) {
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)(r->s >> 32);
}

/* Values in [-2, 2), some of them exact -0 / +0. */
static float *xem_rand(XemRng *r, int64_t n) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
  for (int64_t i = 0; i < n; i++) {
    uint32_t b = xem_bits(r);
    p[i] = b % 29 == 0 ? -0.0f : b % 31 == 0 ? 0.0f : (float)((double)(b >> 8) / (double)(1u << 24) * 4.0 - 2.0);
  }
  return p;
}

/* V, C, n_idx, distinct index range (small: many repeats) */
static const int64_t xem_shapes[][4] = {{1, 1, 1, 1},     {5, 16, 9, 3},    {64, 33, 40, 64},  {65, 128, 512, 7},
                                        {257, 20, 100, 257}, {300, 48, 0, 1}, {1000, 64, 256, 1000}};
#define XEM_NSHAPES ((int)(sizeof xem_shapes / sizeof xem_shapes[0]))

/* _i: bit 0 with base (the tied head's gradient). */
START_TEST(test_embedding_grad) {
  XemRng r = {(uint64_t)_i * 977u + 3u};
  for (int si = 0; si < XEM_NSHAPES; si++) {
    int64_t V = xem_shapes[si][0], C = xem_shapes[si][1], n = xem_shapes[si][2], range = xem_shapes[si][3];
    float *dy = xem_rand(&r, n * C), *base = _i & 1 ? xem_rand(&r, V * C) : NULL, *g0 = xem_rand(&r, V * C);
    int32_t *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = (int32_t)(xem_bits(&r) % (uint32_t)range);
    /* the sequence */
    float *e = calloc((size_t)(V * C), sizeof *e), *ref = malloc((size_t)(V * C) * sizeof *ref);
    ck_assert_int_eq(ck_embedding_backward_f32(e, dy, idx, n, V, C), -1);
    for (int64_t k = 0; k < V * C; k++) {
      float u = base ? base[k] + e[k] : e[k];
      ref[k] = g0[k] + u;
    }
    int32_t *ws = malloc((size_t)(V + 1 + n) * sizeof *ws);
    for (int pw = 0; pw <= 3; pw++) {
      CkPool *pool = pw ? ck_pool_create(pw) : NULL;
      float *g = malloc((size_t)(V * C) * sizeof *g);
      memcpy(g, g0, (size_t)(V * C) * sizeof *g);
      ck_assert_int_eq(ck_x86_embedding_grad_f32(pool, g, base, dy, idx, n, V, C, ws), -1);
      ck_assert_msg(memcmp(ref, g, (size_t)(V * C) * sizeof *g) == 0,
                    "grads differ from the sequence (V %ld, C %ld, n %ld, pool %d)", (long)V, (long)C, (long)n, pw);
      free(g);
      ck_pool_destroy(pool);
    }
    free(dy), free(base), free(g0), free(idx), free(e), free(ref), free(ws);
  }
}
END_TEST

/* A bad index (negative, or >= V): its position comes back, nothing written. */
START_TEST(test_embedding_grad_bad_index) {
  const int64_t V = 10, C = 17;
  float dy[3 * 17], g[10 * 17], before[10 * 17];
  int32_t ws[10 + 1 + 3];
  for (int k = 0; k < 3 * 17; k++) dy[k] = (float)k;
  for (int k = 0; k < 10 * 17; k++) g[k] = before[k] = (float)(k % 7);
  int32_t hi[3] = {1, 10, 2}, lo[3] = {0, 3, -1};
  ck_assert_int_eq(ck_x86_embedding_grad_f32(NULL, g, NULL, dy, hi, 3, V, C, ws), 1);
  ck_assert_int_eq(ck_x86_embedding_grad_f32(NULL, g, NULL, dy, lo, 3, V, C, ws), 2);
  ck_assert_msg(memcmp(g, before, sizeof g) == 0, "grads written despite a bad index");
}
END_TEST

Suite *check_x86_nn_embedding_suite(void) {
  Suite *s = suite_create("x86_nn_embedding");
  TCase *tc = tcase_create("grad_vs_sequence");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_embedding_grad, 0, 2);
  tcase_add_test(tc, test_embedding_grad_bad_index);
  suite_add_tcase(s, tc);
  return s;
}

#else /* not x86-64 */

START_TEST(test_not_x86) { printf("check_x86_nn_embedding: NOTE: not an x86-64 host, tests skipped\n"); }
END_TEST

Suite *check_x86_nn_embedding_suite(void) {
  Suite *s = suite_create("x86_nn_embedding");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}
#endif
