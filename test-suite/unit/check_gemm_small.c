/* test-suite/unit/check_gemm_small.c - the small-M GEMM
 * (rt-min/x86/ck_gemm_small.h) that decoding runs.
 *
 * Its contract is ck_gemm_f32's bits, so every case is compared bit for bit
 * (memcmp, signed zeros and all) against the scalar definition
 * ck_gemm_f32_scalar and against ck_gemm_f32 itself, for M = 1..8 (and 9, 12,
 * above the threshold, where it falls back), N and K odd and even around the
 * 16-lane and 16 x 16 block edges and the 64-column chunk, all four
 * transpose orders, the accumulate and batch-sum flags, batches with dense
 * and broadcast (stride 0) operands; and the output must not depend on the
 * pool (1, 2 and 3 threads). Columns of `out` outside the product (a guard
 * band past M x N) must stay untouched. On CPUs without AVX-512F the kernel
 * is the ck_gemm_f32 fallback and the same comparisons still hold. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include "rt-min/x86/ck_gemm.h"
#include "rt-min/x86/ck_gemm_small.h"
#include "rt-min/x86/ck_pool.h"

typedef struct GsLcg {
  uint64_t s;
} GsLcg;

/* Values in [-1, 1) with exact zeros (both signs) and halves mixed in. */
static float gs_float(GsLcg *g) {
  g->s = g->s * 6364136223846793005ull + 1442695040888963407ull;
  uint32_t r = (uint32_t)(g->s >> 40);
  if ((r & 63) == 0) return 0.0f;
  if ((r & 63) == 1) return -0.0f;
  if ((r & 63) == 2) return 0.5f;
  return (float)((double)(r & 0xffffff) / 8388608.0 - 1.0);
}

static float *gs_fill(GsLcg *g, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++) p[i] = gs_float(g);
  return p;
}

#define GS_GUARD 37 /* floats past the output that must stay as they were */

static const int64_t gs_ns[] = {1, 5, 16, 17, 31, 64, 65, 100, 130};
static const int64_t gs_ks[] = {0, 1, 3, 15, 16, 17, 32, 45};
#define GS_NN ((int)(sizeof gs_ns / sizeof gs_ns[0]))
#define GS_NK ((int)(sizeof gs_ks / sizeof gs_ks[0]))
static const int64_t gs_ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12};
#define GS_NM ((int)(sizeof gs_ms / sizeof gs_ms[0]))

/* One product, batch layout `lay` (0: batch 1; 1: batch 3 dense; 2: batch 3,
 * A dense and B broadcast; 3: batch 2, A broadcast and B dense), three ways:
 * the scalar definition, ck_gemm_f32, and ck_gemm_small_f32 on `pool`. */
static void gs_case(CkPool *pool, int64_t M, int64_t N, int64_t K, int ta, int tb, int flags, int lay,
                    uint64_t seed) {
  GsLcg g = {seed};
  int64_t batch = lay == 0 ? 1 : lay == 3 ? 2 : 3;
  int64_t as = lay == 3 ? 0 : M * K, bs = lay == 2 ? 0 : K * N;
  int64_t na = (as ? batch : 1) * M * K, nb = (bs ? batch : 1) * K * N;
  int64_t no = ((flags & CK_GEMM_BATCH_SUM) ? 1 : batch) * M * N + GS_GUARD;
  float *a = gs_fill(&g, (size_t)na), *b = gs_fill(&g, (size_t)nb), *o0 = gs_fill(&g, (size_t)no);
  float *want = malloc((size_t)no * sizeof *want), *fast = malloc((size_t)no * sizeof *fast),
        *got = malloc((size_t)no * sizeof *got);
  ck_assert_ptr_nonnull(want);
  ck_assert_ptr_nonnull(fast);
  ck_assert_ptr_nonnull(got);
  memcpy(want, o0, (size_t)no * sizeof *want);
  memcpy(fast, o0, (size_t)no * sizeof *fast);
  memcpy(got, o0, (size_t)no * sizeof *got);
  ck_gemm_f32_scalar(want, a, b, batch, M, N, K, ta, tb, as, bs, flags);
  ck_gemm_f32(NULL, fast, a, b, batch, M, N, K, ta, tb, as, bs, flags);
  ck_gemm_small_f32(pool, got, a, b, batch, M, N, K, ta, tb, as, bs, flags);
  ck_assert_msg(memcmp(want, fast, (size_t)no * sizeof *want) == 0,
                "ck_gemm_f32 != scalar: M=%ld N=%ld K=%ld ta=%d tb=%d flags=%d layout=%d", (long)M, (long)N,
                (long)K, ta, tb, flags, lay);
  for (int64_t i = 0; i < no; i++)
    ck_assert_msg(memcmp(&want[i], &got[i], sizeof *got) == 0,
                  "small != scalar at %ld (%a vs %a): M=%ld N=%ld K=%ld ta=%d tb=%d flags=%d layout=%d "
                  "threads=%d",
                  (long)i, (double)got[i], (double)want[i], (long)M, (long)N, (long)K, ta, tb, flags, lay,
                  ck_pool_threads(pool));
  free(a);
  free(b);
  free(o0);
  free(want);
  free(fast);
  free(got);
}

/* Loop index -> (M, ta, tb, flags); each sweeps N x K x batch layouts on a
 * pool of 1 thread, and a fixed quarter of them on pools of 2 and 3. */
START_TEST(test_small_bits) {
  int m = _i % GS_NM, t = (_i / GS_NM) % 4, flags = _i / (GS_NM * 4);
  int ta = t & 1, tb = t >> 1;
  for (int th = 1; th <= 3; th++) {
    CkPool *pool = ck_pool_create(th);
    ck_assert_ptr_nonnull(pool);
    for (int n = 0; n < GS_NN; n++)
      for (int k = 0; k < GS_NK; k++)
        for (int lay = 0; lay < 4; lay++)
          if (th == 1 || (n + k + lay) % 4 == 0) /* pools of 2, 3: a quarter of the cases */
            gs_case(pool, gs_ms[m], gs_ns[n], gs_ks[k], ta, tb, flags, lay,
                    (uint64_t)(_i * 1000003 + n * 1009 + k * 31 + lay));
    ck_pool_destroy(pool);
  }
}
END_TEST

/* A decode-sized product (tiny_gpt's MLP and a GPT-2 sized head slice):
 * K and N large enough for many chunks and full 16 x 16 blocks. */
START_TEST(test_small_large) {
  static const int64_t shapes[][3] = {{8, 512, 128}, {1, 768, 768}, {3, 1000, 257}, {8, 130, 512}};
  for (int th = 1; th <= 2; th++) {
    CkPool *pool = ck_pool_create(th);
    ck_assert_ptr_nonnull(pool);
    for (int s = 0; s < 4; s++)
      for (int tb = 0; tb < 2; tb++)
        gs_case(pool, shapes[s][0], shapes[s][1], shapes[s][2], 0, tb, 0, 0, (uint64_t)(77 + s * 2 + tb));
    ck_pool_destroy(pool);
  }
}
END_TEST

/* The mid-M path (ck_gemm_mid_f32: X @ W^T, 9..64 rows, reached through
 * ck_gemm_f32): bit for bit the scalar definition for M around the 16-row
 * vectors and the 64-row limit (65: the packed GEMM), N around the 16 x 16
 * blocks, the register tiles (6, 8, 12 rows) and the 64-column chunk, K
 * around the 16-k transpose blocks, with and without accumulate, batch 1 and
 * batches whose rows fold (A dense, W shared), on pools of 1, 2 and 3 threads
 * (gs_case: ck_gemm_small_f32 falls back to ck_gemm_f32 above 8 rows). */
static const int64_t gm_ms[] = {9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65};
static const int64_t gm_ns[] = {1, 5, 16, 17, 47, 48, 63, 64, 65, 130, 384};
static const int64_t gm_ks[] = {1, 3, 16, 17, 128, 129};
#define GM_NM ((int)(sizeof gm_ms / sizeof gm_ms[0]))
#define GM_NN ((int)(sizeof gm_ns / sizeof gm_ns[0]))
#define GM_NK ((int)(sizeof gm_ks / sizeof gm_ks[0]))

/* ck_gemm_mid_f32 called directly (ck_gemm_f32 sends small K to the packed
 * GEMM), bit for bit against the scalar definition, guard band untouched. */
static void gm_direct(CkPool *pool, int64_t M, int64_t N, int64_t K, int flags, uint64_t seed) {
  GsLcg g = {seed};
  int64_t no = M * N + GS_GUARD;
  float *x = gs_fill(&g, (size_t)(M * K)), *w = gs_fill(&g, (size_t)(N * K)), *want = gs_fill(&g, (size_t)no);
  float *got = malloc((size_t)no * sizeof *got);
  ck_assert_ptr_nonnull(got);
  memcpy(got, want, (size_t)no * sizeof *got);
  ck_gemm_f32_scalar(want, x, w, 1, M, N, K, 0, 1, 0, 0, flags);
  ck_gemm_mid_f32(pool, got, x, w, M, N, K, flags);
  ck_assert_msg(memcmp(want, got, (size_t)no * sizeof *got) == 0, "mid != scalar: M=%ld N=%ld K=%ld flags=%d threads=%d",
                (long)M, (long)N, (long)K, flags, ck_pool_threads(pool));
  free(x);
  free(w);
  free(want);
  free(got);
}

START_TEST(test_mid_bits) {
  int m = _i % GM_NM, flags = (_i / GM_NM) ? CK_GEMM_ACCUMULATE : 0;
  for (int th = 1; th <= 3; th++) {
    CkPool *pool = ck_pool_create(th);
    ck_assert_ptr_nonnull(pool);
    for (int n = 0; n < GM_NN; n++)
      for (int k = 0; k < GM_NK; k++) {
        gs_case(pool, gm_ms[m], gm_ns[n], gm_ks[k], 0, 1, flags, 0, (uint64_t)(_i * 7919 + n * 131 + k));
        if (gm_ms[m] <= CK_GEMM_MID_MAX_M) /* the mid kernel itself, whatever ck_gemm_f32 picks */
          gm_direct(pool, gm_ms[m], gm_ns[n], gm_ks[k], flags, (uint64_t)(_i * 7919 + n * 131 + k + 9));
        if (gm_ms[m] <= 32 && (n + k) % 3 == 0) /* batch 2 or 3 with W shared: rows fold to <= 96 */
          gs_case(pool, gm_ms[m], gm_ns[n], gm_ks[k], 0, 1, flags, 2, (uint64_t)(_i * 7919 + n * 131 + k + 5));
      }
    ck_pool_destroy(pool);
  }
}
END_TEST

/* The inference shapes against a double-precision reference: every element
 * within the fp32 dot-product bound K * 2^-24 * sum_k |x w| (plus a denormal
 * floor); and each row equals the one-row product (M = 1, the small path
 * decode runs) bit for bit, so decode and the full forward agree. */
START_TEST(test_mid_double) {
  static const int64_t shapes[][3] = {{64, 384, 128}, {64, 128, 512}, {64, 256, 128}, {40, 100, 77}};
  GsLcg g = {4242};
  for (int s = 0; s < 4; s++) {
    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    float *x = gs_fill(&g, (size_t)(M * K)), *w = gs_fill(&g, (size_t)(N * K));
    float *c = malloc((size_t)(M * N) * sizeof *c), *row = malloc((size_t)N * sizeof *row);
    CkPool *pool = ck_pool_create(2);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(row);
    ck_assert_ptr_nonnull(pool);
    ck_gemm_f32(pool, c, x, w, 1, M, N, K, 0, 1, 0, 0, 0);
    for (int64_t i = 0; i < M; i++) {
      for (int64_t j = 0; j < N; j++) {
        double ref = 0.0, mag = 0.0;
        for (int64_t k = 0; k < K; k++) {
          ref += (double)x[i * K + k] * (double)w[j * K + k];
          mag += fabs((double)x[i * K + k] * (double)w[j * K + k]);
        }
        ck_assert_msg(fabs((double)c[i * N + j] - ref) <= (double)K * 0x1p-24 * mag + 0x1p-126,
                      "mid %ldx%ldx%ld at (%ld, %ld): %.9g vs %.9g", (long)M, (long)N, (long)K, (long)i,
                      (long)j, (double)c[i * N + j], ref);
      }
      ck_gemm_small_f32(NULL, row, x + i * K, w, 1, 1, N, K, 0, 1, 0, 0, 0);
      ck_assert_msg(memcmp(row, c + i * N, (size_t)N * sizeof *row) == 0, "row %ld != one-row product", (long)i);
    }
    ck_pool_destroy(pool);
    free(x);
    free(w);
    free(c);
    free(row);
  }
}
END_TEST

/* Empty products: nothing written when M or N or the batch is 0; K = 0
 * writes zeros (or leaves out when accumulating), as ck_gemm_f32 does. */
START_TEST(test_small_empty) {
  float out[4] = {1.5f, -2.0f, 3.0f, 4.0f}, a[1] = {1.0f}, b[1] = {1.0f};
  ck_gemm_small_f32(NULL, out, a, b, 1, 0, 2, 3, 0, 1, 0, 0, 0);
  ck_gemm_small_f32(NULL, out, a, b, 1, 2, 0, 3, 0, 1, 0, 0, 0);
  ck_gemm_small_f32(NULL, out, a, b, 0, 2, 2, 3, 0, 0, 0, 0, 0);
  ck_assert(out[0] == 1.5f && out[1] == -2.0f && out[2] == 3.0f && out[3] == 4.0f);
  ck_gemm_small_f32(NULL, out, a, b, 1, 1, 2, 0, 0, 1, 0, 0, CK_GEMM_ACCUMULATE);
  ck_assert(out[0] == 1.5f && out[1] == -2.0f);
  ck_gemm_small_f32(NULL, out, a, b, 1, 1, 3, 0, 0, 1, 0, 0, 0);
  ck_assert(out[0] == 0.0f && out[1] == 0.0f && out[2] == 0.0f && out[3] == 4.0f);
}
END_TEST

Suite *check_gemm_small_suite(void) {
  Suite *s = suite_create("gemm_small");
  TCase *tc = tcase_create("bits");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_small_bits, 0, GS_NM * 4 * 4);
  tcase_add_test(tc, test_small_large);
  tcase_add_test(tc, test_small_empty);
  tcase_add_loop_test(tc, test_mid_bits, 0, GM_NM * 2);
  tcase_add_test(tc, test_mid_double);
  suite_add_tcase(s, tc);
  return s;
}

#else
START_TEST(test_not_x86) { ck_assert(1); }
END_TEST

Suite *check_gemm_small_suite(void) {
  Suite *s = suite_create("gemm_small");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}
#endif
