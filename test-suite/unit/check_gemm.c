/* test-suite/unit/check_gemm.c - the fast x86 GEMM (rt-min/x86/ck_gemm.h) and
 * its thread pool (rt-min/x86/ck_pool.h).
 *
 * Three properties, each for every ISA variant the CPU has:
 *  1. Accuracy against the reference ck_matmul_f32 (separate multiply and
 *     add, so the two differ by rounding): for every element
 *       |fast - ref| <= 2 * K * 2^-24 * sum_k |a_ik * b_kj|
 *     i.e. the sum of the two textbook worst-case bounds gamma_K (K unit
 *     roundoffs of the absolute dot product each). A dropped, doubled or
 *     misplaced term moves an element by about one term's size, far above it.
 *  2. The exact numerics: bitwise equal to the scalar fmaf chain
 *     ck_gemm_f32_scalar (the definition in ck_gemm.h).
 *  3. Determinism: bitwise identical output on pools of 1, 2, 3 and 4 threads.
 * Shapes sweep M, N, K over 1..70 (every micro-tile edge case of both ISAs)
 * plus odd sizes crossing the k block (256) and the n block (1024), all four
 * transpose orders, batches with broadcast operands, the accumulate and
 * batch-sum flags, and zero sizes. AVX-512 cases are skipped, with a printed
 * note, on CPUs without AVX-512F. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt-min/ck_kernels.h"

#if defined(__x86_64__)
#include "rt-min/x86/ck_gemm.h"
#include "rt-min/x86/ck_pool.h"

/* ---- data ------------------------------------------------------------------------------ */

typedef struct Lcg {
  uint64_t s;
} Lcg;

/* Values in [-1, 1) with a few exact zeros and powers of two mixed in, so
 * cancellation and signed zeros get exercised too. */
static float lcg_float(Lcg *g) {
  g->s = g->s * 6364136223846793005ull + 1442695040888963407ull;
  uint32_t r = (uint32_t)(g->s >> 40);
  if ((r & 63) == 0) return 0.0f;
  if ((r & 63) == 1) return 0.5f;
  return (float)((double)(r & 0xffffff) / 8388608.0 - 1.0);
}

static float *fill(Lcg *g, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < n; i++) p[i] = lcg_float(g);
  return p;
}

static const char *isa_name(int isa) {
  return isa == CK_GEMM_AVX512 ? "avx512" : isa == CK_GEMM_AVX2 ? "avx2" : "scalar";
}

/* The ISA of loop iteration i; false (with a note) when the CPU lacks it. */
static int isa_usable(int isa) {
  if (ck_gemm_cpu_has(isa)) return 1;
  printf("check_gemm: NOTE: CPU lacks %s, its cases are skipped\n", isa_name(isa));
  return 0;
}

/* ---- one product checked three ways -------------------------------------------------------- */

typedef struct Shape {
  int64_t batch, M, N, K;
  int ta, tb;
  int64_t a_bs, b_bs; /* batch strides; -1 = dense (M*K / K*N) */
} Shape;

/* Property 1 and 2 for one shape: fast vs reference (bound) and vs the scalar
 * fmaf chain (bits). */
static void check_one(int isa, CkPool *pool, Shape s, uint64_t seed) {
  Lcg g = {seed};
  int64_t a_bs = s.a_bs < 0 ? s.M * s.K : s.a_bs, b_bs = s.b_bs < 0 ? s.K * s.N : s.b_bs;
  int64_t na = (a_bs ? s.batch : 1) * s.M * s.K, nb = (b_bs ? s.batch : 1) * s.K * s.N;
  int64_t no = s.batch * s.M * s.N;
  float *a = fill(&g, (size_t)na), *b = fill(&g, (size_t)nb);
  float *ref = malloc((size_t)(no ? no : 1) * sizeof *ref);
  float *fast = malloc((size_t)(no ? no : 1) * sizeof *fast);
  float *fma_ref = malloc((size_t)(no ? no : 1) * sizeof *fma_ref);
  ck_assert_ptr_nonnull(ref);
  ck_assert_ptr_nonnull(fast);
  ck_assert_ptr_nonnull(fma_ref);
  for (int64_t i = 0; i < no; i++) fast[i] = NAN; /* every element must be written */
  ck_matmul_f32(ref, a, b, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_bs, b_bs);
  ck_gemm_f32_scalar(fma_ref, a, b, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_bs, b_bs, 0);
  ck_gemm_f32_isa(isa, pool, fast, a, b, s.batch, s.M, s.N, s.K, s.ta, s.tb, a_bs, b_bs, 0);
  /* Elements are checked in plain C and asserted once (Check logs every
   * assertion call through a pipe); the message names the first bad one. */
  const double u = ldexp(1.0, -24);
  int64_t nbad = 0, first = -1;
  double first_d = 0, first_tol = 0;
  for (int64_t bi = 0; bi < s.batch; bi++)
    for (int64_t i = 0; i < s.M; i++)
      for (int64_t j = 0; j < s.N; j++) {
        const float *ab = a + bi * a_bs, *bb = b + bi * b_bs;
        int64_t o = (bi * s.M + i) * s.N + j;
        double mag = 0.0;
        for (int64_t k = 0; k < s.K; k++) {
          double x = s.ta ? ab[k * s.M + i] : ab[i * s.K + k];
          double y = s.tb ? bb[j * s.K + k] : bb[k * s.N + j];
          mag += fabs(x * y);
        }
        double tol = 2.0 * (double)s.K * u * mag;
        double d = fabs((double)fast[o] - (double)ref[o]);
        if (!(d <= tol)) {
          if (first < 0) first = o, first_d = d, first_tol = tol;
          nbad++;
        }
      }
  ck_assert_msg(nbad == 0,
                "%s b=%lld M=%lld N=%lld K=%lld ta=%d tb=%d: %lld elements off, first at flat "
                "index %lld: fast %.9g ref %.9g diff %.3g > tol %.3g",
                isa_name(isa), (long long)s.batch, (long long)s.M, (long long)s.N,
                (long long)s.K, s.ta, s.tb, (long long)nbad, (long long)first,
                first >= 0 ? fast[first] : 0.0f, first >= 0 ? ref[first] : 0.0f, first_d,
                first_tol);
  ck_assert_msg(memcmp(fast, fma_ref, (size_t)no * sizeof *fast) == 0,
                "%s b=%lld M=%lld N=%lld K=%lld ta=%d tb=%d: not bitwise the fmaf chain",
                isa_name(isa), (long long)s.batch, (long long)s.M, (long long)s.N,
                (long long)s.K, s.ta, s.tb);
  free(a), free(b), free(ref), free(fast), free(fma_ref);
}

/* Loop index -> ISA: even = AVX2, odd = AVX-512. */
static int isa_of(int i) { return (i & 1) ? CK_GEMM_AVX512 : CK_GEMM_AVX2; }

/* ---- accuracy sweeps (single thread and a 2-thread pool) ------------------------------------- */

/* M and N over 1..70 (every edge of 12x32 and 6x16 tiles), K fixed and
 * crossing no block; the transpose order rotates with the shape so all four
 * appear for every residue. */
START_TEST(test_sweep_mn) {
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  for (int64_t M = 1; M <= 70; M++)
    for (int64_t N = 1; N <= 70; N++) {
      Shape s = {1, M, N, 19, (int)((M + N) & 1), (int)(((M + N) >> 1) & 1), -1, -1};
      check_one(isa, NULL, s, (uint64_t)(M * 100 + N));
    }
}
END_TEST

/* K over 1..70 with every transpose order, M and N at awkward sizes. */
START_TEST(test_sweep_k) {
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  for (int64_t K = 1; K <= 70; K++)
    for (int t = 0; t < 4; t++) {
      Shape s = {1, 13, 35, K, t & 1, t >> 1, -1, -1};
      check_one(isa, NULL, s, (uint64_t)(K * 4 + t));
      Shape s2 = {1, 7, 64, K, t & 1, t >> 1, -1, -1};
      check_one(isa, NULL, s2, (uint64_t)(K * 4 + t + 999));
    }
}
END_TEST

/* Odd larger sizes: k blocks continue the chain through out (K > 256), the
 * n block splits (N > 1024), skinny and GEMV-like shapes; threaded. */
START_TEST(test_large_odd) {
  static const int64_t shapes[][3] = {{97, 131, 263}, {200, 45, 517}, {37, 300, 1030},
                                      {1, 1100, 3},   {513, 1, 129},  {130, 1030, 70},
                                      {255, 257, 256}, {12, 32, 1}};
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  CkPool *pool = ck_pool_create(2);
  ck_assert_ptr_nonnull(pool);
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
    for (int t = 0; t < 4; t++) {
      Shape s = {1, shapes[c][0], shapes[c][1], shapes[c][2], t & 1, t >> 1, -1, -1};
      check_one(isa, pool, s, (uint64_t)(c * 8 + (size_t)t));
    }
  ck_pool_destroy(pool);
}
END_TEST

/* Batches: dense, A broadcast (a_bs = 0), B broadcast (b_bs = 0, the path
 * that folds the batch into M), many small items (the batch-parallel path). */
START_TEST(test_batch) {
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  CkPool *pool = ck_pool_create(3);
  ck_assert_ptr_nonnull(pool);
  for (int t = 0; t < 4; t++) {
    Shape dense = {3, 29, 41, 67, t & 1, t >> 1, -1, -1};
    Shape abc = {4, 33, 50, 21, t & 1, t >> 1, 0, -1};
    Shape bbc = {5, 31, 70, 300, t & 1, t >> 1, -1, 0};
    Shape many = {24, 16, 24, 16, t & 1, t >> 1, -1, -1};
    Shape big = {2, 150, 170, 260, t & 1, t >> 1, -1, -1};
    check_one(isa, pool, dense, 11u + (uint64_t)t);
    check_one(isa, pool, abc, 21u + (uint64_t)t);
    check_one(isa, pool, bbc, 31u + (uint64_t)t);
    check_one(isa, pool, many, 41u + (uint64_t)t);
    check_one(isa, pool, big, 51u + (uint64_t)t);
    check_one(isa, NULL, bbc, 61u + (uint64_t)t);
  }
  ck_pool_destroy(pool);
}
END_TEST

/* The products the sample models run (bench/sgemm.c --shapes): tiny_gpt at
 * 512 rows, batch-1 inference at 64 rows (a 4-row edge tile and several
 * chunks per row tile, so the shared packed-A block is used), GPT-2-like
 * widths at 256 rows; forward (tb=1), dX (plain) and dW (ta=1, accumulated,
 * checked bitwise against the scalar chain started from the same out). */
START_TEST(test_model_shapes) {
  static const int64_t shapes[][6] = {
      {64, 384, 128, 0, 1, 0},  {64, 128, 512, 0, 1, 0},  {512, 384, 128, 0, 1, 0},
      {512, 128, 384, 0, 0, 0}, {384, 128, 512, 1, 0, 1}, {128, 512, 512, 1, 0, 1},
      {256, 768, 300, 0, 1, 0}, {256, 700, 260, 0, 0, 1}, {770, 96, 256, 1, 0, 1}};
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  CkPool *pool = ck_pool_create(2);
  ck_assert_ptr_nonnull(pool);
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
    const int64_t M = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
    const int ta = (int)shapes[c][3], tb = (int)shapes[c][4];
    if (!shapes[c][5]) {
      Shape s = {1, M, N, K, ta, tb, -1, -1};
      check_one(isa, pool, s, 300u + (uint64_t)c);
      continue;
    }
    Lcg g = {400u + (uint64_t)c};
    float *a = fill(&g, (size_t)(M * K)), *b = fill(&g, (size_t)(K * N));
    float *x = fill(&g, (size_t)(M * N)), *y = malloc((size_t)(M * N) * sizeof *y);
    ck_assert_ptr_nonnull(y);
    memcpy(y, x, (size_t)(M * N) * sizeof *y);
    ck_gemm_f32_scalar(x, a, b, 1, M, N, K, ta, tb, 0, 0, CK_GEMM_ACCUMULATE);
    ck_gemm_f32_isa(isa, pool, y, a, b, 1, M, N, K, ta, tb, 0, 0, CK_GEMM_ACCUMULATE);
    ck_assert_msg(memcmp(x, y, (size_t)(M * N) * sizeof *x) == 0,
                  "%s M=%lld N=%lld K=%lld ta=%d tb=%d accumulate: not the scalar chain",
                  isa_name(isa), (long long)M, (long long)N, (long long)K, ta, tb);
    free(a), free(b), free(x), free(y);
  }
  ck_pool_destroy(pool);
}
END_TEST

/* Edge tiles (masked or padded) write inside the matrix only: a guard zone
 * after `out` keeps its sentinel, for last tiles of every row and column
 * remainder, with and without accumulate, serial and threaded. */
START_TEST(test_edge_guard) {
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  CkPool *pool = ck_pool_create(2);
  ck_assert_ptr_nonnull(pool);
  const int64_t guard = 256;
  for (int64_t M = 1; M <= 25; M += 3)
    for (int64_t N = 1; N <= 70; N += 5)
      for (int flags = 0; flags <= CK_GEMM_ACCUMULATE; flags++) {
        const int64_t K = 37;
        Lcg g = {(uint64_t)(M * 1000 + N * 10 + flags)};
        float *a = fill(&g, (size_t)(M * K)), *b = fill(&g, (size_t)(K * N));
        float *out = malloc((size_t)(M * N + guard) * sizeof *out);
        float *ref = malloc((size_t)(M * N) * sizeof *ref);
        ck_assert_ptr_nonnull(out);
        ck_assert_ptr_nonnull(ref);
        for (int64_t i = 0; i < M * N + guard; i++) out[i] = (float)i;
        for (int64_t i = 0; i < M * N; i++) ref[i] = (float)i;
        ck_gemm_f32_scalar(ref, a, b, 1, M, N, K, 0, 0, 0, 0, flags);
        ck_gemm_f32_isa(isa, (M + N) % 2 ? pool : NULL, out, a, b, 1, M, N, K, 0, 0, 0, 0, flags);
        ck_assert_msg(memcmp(out, ref, (size_t)(M * N) * sizeof *out) == 0,
                      "%s M=%lld N=%lld flags=%d: not the scalar chain", isa_name(isa),
                      (long long)M, (long long)N, flags);
        int64_t bad = 0;
        for (int64_t i = M * N; i < M * N + guard; i++) bad += out[i] != (float)i;
        ck_assert_msg(bad == 0, "%s M=%lld N=%lld flags=%d: %lld floats written past out",
                      isa_name(isa), (long long)M, (long long)N, flags, (long long)bad);
        free(a), free(b), free(out), free(ref);
      }
  ck_pool_destroy(pool);
}
END_TEST

/* ---- flags ------------------------------------------------------------------------------------ */

/* ACCUMULATE continues each element's chain from out; BATCH_SUM continues it
 * over the batch in order. Both must be the scalar fmaf chain, bit for bit,
 * and differ from the plain product (the flag is not ignored). */
START_TEST(test_flags) {
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  CkPool *pool = ck_pool_create(2);
  ck_assert_ptr_nonnull(pool);
  for (int t = 0; t < 4; t++) {
    const int64_t B = 3, M = 45, N = 77, K = 290;
    Lcg g = {(uint64_t)(7 + t)};
    float *a = fill(&g, (size_t)(B * M * K)), *b = fill(&g, (size_t)(B * K * N));
    float *init = fill(&g, (size_t)(B * M * N));
    float *x = malloc((size_t)(B * M * N) * sizeof *x), *y = malloc((size_t)(B * M * N) * sizeof *y);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    for (int flags = 1; flags <= 3; flags++) {
      size_t n = (size_t)((flags & CK_GEMM_BATCH_SUM) ? M * N : B * M * N);
      memcpy(x, init, n * sizeof *x);
      memcpy(y, init, n * sizeof *y);
      ck_gemm_f32_scalar(x, a, b, B, M, N, K, t & 1, t >> 1, M * K, K * N, flags);
      ck_gemm_f32_isa(isa, pool, y, a, b, B, M, N, K, t & 1, t >> 1, M * K, K * N, flags);
      ck_assert_msg(memcmp(x, y, n * sizeof *x) == 0, "%s flags=%d ta=%d tb=%d differ",
                    isa_name(isa), flags, t & 1, t >> 1);
    }
    /* accumulate really adds: out = init + A@B, checked against the plain product */
    ck_gemm_f32_isa(isa, pool, y, a, b, 1, M, N, K, t & 1, t >> 1, 0, 0, 0);
    memcpy(x, init, (size_t)(M * N) * sizeof *x);
    ck_gemm_f32_isa(isa, pool, x, a, b, 1, M, N, K, t & 1, t >> 1, 0, 0, CK_GEMM_ACCUMULATE);
    int64_t nbad = 0;
    for (int64_t i = 0; i < M * N; i++) nbad += !(fabsf(x[i] - (y[i] + init[i])) <= 1e-4f);
    ck_assert_msg(nbad == 0, "accumulate: %lld elements are not init + A@B", (long long)nbad);
    free(a), free(b), free(init), free(x), free(y);
  }
  ck_pool_destroy(pool);
}
END_TEST

/* ---- determinism across thread counts -------------------------------------------------------- */

START_TEST(test_threads_bitwise) {
  static const int64_t shapes[][4] = {
      {1, 300, 333, 517}, {1, 64, 2100, 40}, {1, 1000, 20, 64}, {4, 70, 90, 300},
      {32, 20, 30, 40},   {1, 129, 131, 1500},
      /* the grids of the parallel path (AVX-512 tiles): 1 x 4 with A packed up
       * front (GPT-2 proj); 2 x 1, each chunk packing its A (tiny_gpt dX); 2 x 2;
       * 1 x 4 with packed A over 4 MiB, in two passes over k; 1 x 2 (batch-1) */
      {1, 256, 768, 768}, {1, 512, 128, 384}, {1, 1000, 520, 130}, {1, 250, 400, 4100},
      {1, 64, 384, 128}};
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  CkPool *pools[4];
  for (int t = 0; t < 4; t++) {
    pools[t] = ck_pool_create(t + 1);
    ck_assert_ptr_nonnull(pools[t]);
    ck_assert_int_eq(ck_pool_threads(pools[t]), t + 1);
  }
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
    for (int tr = 0; tr < 4; tr++) {
      int64_t B = shapes[c][0], M = shapes[c][1], N = shapes[c][2], K = shapes[c][3];
      Lcg g = {c * 17 + (uint64_t)tr};
      float *a = fill(&g, (size_t)(B * M * K)), *b = fill(&g, (size_t)(B * K * N));
      float *out[4];
      for (int t = 0; t < 4; t++) {
        out[t] = malloc((size_t)(B * M * N) * sizeof(float));
        ck_assert_ptr_nonnull(out[t]);
        ck_gemm_f32_isa(isa, pools[t], out[t], a, b, B, M, N, K, tr & 1, tr >> 1, M * K, K * N,
                        0);
      }
      for (int t = 1; t < 4; t++)
        ck_assert_msg(memcmp(out[0], out[t], (size_t)(B * M * N) * sizeof(float)) == 0,
                      "%s B=%lld M=%lld N=%lld K=%lld ta=%d tb=%d: %d threads differ from 1",
                      isa_name(isa), (long long)B, (long long)M, (long long)N, (long long)K,
                      tr & 1, tr >> 1, t + 1);
      for (int t = 0; t < 4; t++) free(out[t]);
      free(a), free(b);
    }
  for (int t = 0; t < 4; t++) ck_pool_destroy(pools[t]);
}
END_TEST

/* AVX2 and AVX-512 compute the same chains, so they agree bit for bit. */
START_TEST(test_isas_agree) {
  if (!isa_usable(CK_GEMM_AVX2) || !isa_usable(CK_GEMM_AVX512)) return;
  CkPool *pool = ck_pool_create(2);
  const int64_t M = 211, N = 190, K = 700;
  Lcg g = {99};
  float *a = fill(&g, (size_t)(M * K)), *b = fill(&g, (size_t)(K * N));
  float *x = malloc((size_t)(M * N) * sizeof *x), *y = malloc((size_t)(M * N) * sizeof *y);
  ck_assert_ptr_nonnull(x);
  ck_assert_ptr_nonnull(y);
  ck_gemm_f32_isa(CK_GEMM_AVX2, pool, x, a, b, 1, M, N, K, 0, 0, 0, 0, 0);
  ck_gemm_f32_isa(CK_GEMM_AVX512, pool, y, a, b, 1, M, N, K, 0, 0, 0, 0, 0);
  ck_assert(memcmp(x, y, (size_t)(M * N) * sizeof *x) == 0);
  /* and the dispatching entry is one of them */
  ck_matmul_f32_fast(pool, y, a, b, 1, M, N, K, 0, 0, 0, 0);
  ck_assert(memcmp(x, y, (size_t)(M * N) * sizeof *x) == 0);
  free(a), free(b), free(x), free(y);
  ck_pool_destroy(pool);
}
END_TEST

/* ---- zero sizes ------------------------------------------------------------------------------- */

/* Empty M, N or batch writes nothing; K == 0 is the empty sum (zeros), or
 * leaves out unchanged when accumulating. */
START_TEST(test_zero_sizes) {
  int isa = isa_of(_i);
  if (!isa_usable(isa)) return;
  CkPool *pool = ck_pool_create(2);
  float a[64], b[64], out[64];
  for (int i = 0; i < 64; i++) a[i] = b[i] = 1.0f;
  for (int i = 0; i < 64; i++) out[i] = 7.0f;
  ck_gemm_f32_isa(isa, pool, out, a, b, 1, 0, 5, 5, 0, 0, 0, 0, 0);
  ck_gemm_f32_isa(isa, pool, out, a, b, 1, 5, 0, 5, 0, 0, 0, 0, 0);
  ck_gemm_f32_isa(isa, pool, out, a, b, 0, 5, 5, 5, 0, 0, 0, 0, 0);
  for (int i = 0; i < 64; i++) ck_assert_float_eq(out[i], 7.0f);
  ck_gemm_f32_isa(isa, pool, out, a, b, 2, 3, 4, 0, 0, 0, 0, 0, CK_GEMM_ACCUMULATE);
  for (int i = 0; i < 64; i++) ck_assert_float_eq(out[i], 7.0f);
  ck_gemm_f32_isa(isa, pool, out, a, b, 2, 3, 4, 0, 1, 1, 0, 0, 0);
  for (int i = 0; i < 24; i++) ck_assert_float_eq(out[i], 0.0f);
  for (int i = 24; i < 64; i++) ck_assert_float_eq(out[i], 7.0f);
  ck_pool_destroy(pool);
}
END_TEST

/* ---- the pool ---------------------------------------------------------------------------------- */

typedef struct PoolCtx {
  int64_t *slots;
  int nthreads;
  int bad_tid;
} PoolCtx;

static void pool_body(void *ctx, int64_t chunk, int tid) {
  PoolCtx *p = (PoolCtx *)ctx;
  if (tid < 0 || tid >= p->nthreads) p->bad_tid = 1;
  p->slots[chunk] += chunk + 1;
}

/* Every chunk runs exactly once per call, for many calls in a row (workers
 * park and wake), on 1..5 threads, with chunk counts below and above the
 * thread count; zero chunks run nothing. */
START_TEST(test_pool_repeated) {
  for (int nt = 1; nt <= 5; nt++) {
    CkPool *pool = ck_pool_create(nt);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(ck_pool_threads(pool), nt);
    for (int64_t nchunks = 0; nchunks <= 37; nchunks += 1 + nchunks / 3) {
      int64_t slots[64] = {0};
      PoolCtx ctx = {slots, nt, 0};
      const int calls = 200;
      for (int r = 0; r < calls; r++) ck_pool_parallel_for(pool, nchunks, pool_body, &ctx);
      for (int64_t c = 0; c < 64; c++)
        ck_assert_int_eq(slots[c], c < nchunks ? calls * (c + 1) : 0);
      ck_assert_int_eq(ctx.bad_tid, 0);
    }
    ck_pool_destroy(pool);
  }
  /* a NULL pool runs inline */
  int64_t slots[8] = {0};
  PoolCtx ctx = {slots, 1, 0};
  ck_pool_parallel_for(NULL, 8, pool_body, &ctx);
  for (int c = 0; c < 8; c++) ck_assert_int_eq(slots[c], c + 1);
  ck_assert_int_eq(ck_pool_threads(NULL), 1);
  ck_pool_destroy(NULL);
}
END_TEST

/* Start and stop many pools, some never used (workers parked or spinning). */
START_TEST(test_pool_start_stop) {
  for (int r = 0; r < 50; r++) {
    CkPool *pool = ck_pool_create(1 + r % 4);
    ck_assert_ptr_nonnull(pool);
    if (r % 2) {
      int64_t slots[4] = {0};
      PoolCtx ctx = {slots, 1 + r % 4, 0};
      ck_pool_parallel_for(pool, 4, pool_body, &ctx);
      ck_assert_int_eq(slots[3], 4);
    }
    ck_pool_destroy(pool);
  }
}
END_TEST

/* Explicit count wins over CK_THREADS; bad or missing values mean 1. */
START_TEST(test_pool_env) {
  setenv("CK_THREADS", "3", 1);
  ck_assert_int_eq(ck_pool_threads_from_env(0), 3);
  ck_assert_int_eq(ck_pool_threads_from_env(2), 2);
  CkPool *pool = ck_pool_create(0);
  ck_assert_int_eq(ck_pool_threads(pool), 3);
  ck_pool_destroy(pool);
  setenv("CK_THREADS", "x4", 1);
  ck_assert_int_eq(ck_pool_threads_from_env(0), 1);
  setenv("CK_THREADS", "-2", 1);
  ck_assert_int_eq(ck_pool_threads_from_env(0), 1);
  setenv("CK_THREADS", "100000", 1);
  ck_assert_int_eq(ck_pool_threads_from_env(0), CK_POOL_MAX_THREADS);
  unsetenv("CK_THREADS");
  ck_assert_int_eq(ck_pool_threads_from_env(0), 1);
}
END_TEST

/* Scratch is aligned, per slot, and kept (same pointer) when it fits. */
START_TEST(test_pool_scratch) {
  CkPool *pool = ck_pool_create(2);
  void *s0 = ck_pool_scratch(pool, 0, 1000), *s1 = ck_pool_scratch(pool, 1, 1000);
  void *sh = ck_pool_scratch(pool, -1, 100000);
  ck_assert_ptr_nonnull(s0);
  ck_assert_ptr_nonnull(s1);
  ck_assert_ptr_nonnull(sh);
  ck_assert(s0 != s1 && s0 != sh && s1 != sh);
  ck_assert_int_eq((int)((uintptr_t)s0 % 64), 0);
  ck_assert_int_eq((int)((uintptr_t)sh % 64), 0);
  ck_assert_ptr_eq(ck_pool_scratch(pool, 0, 500), s0);
  memset(ck_pool_scratch(pool, 0, 1 << 20), 1, 1 << 20);
  ck_assert_ptr_null(ck_pool_scratch(pool, 3, 10));
  ck_assert_ptr_null(ck_pool_scratch(NULL, 0, 10));
  ck_pool_destroy(pool);
}
END_TEST

Suite *check_gemm_suite(void) {
  Suite *s = suite_create("gemm");
  TCase *tc = tcase_create("accuracy");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_sweep_mn, 0, 2);
  tcase_add_loop_test(tc, test_sweep_k, 0, 2);
  tcase_add_loop_test(tc, test_large_odd, 0, 2);
  tcase_add_loop_test(tc, test_batch, 0, 2);
  tcase_add_loop_test(tc, test_flags, 0, 2);
  tcase_add_loop_test(tc, test_model_shapes, 0, 2);
  tcase_add_loop_test(tc, test_edge_guard, 0, 2);
  tcase_add_loop_test(tc, test_zero_sizes, 0, 2);
  suite_add_tcase(s, tc);
  tc = tcase_create("determinism");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_threads_bitwise, 0, 2);
  tcase_add_test(tc, test_isas_agree);
  suite_add_tcase(s, tc);
  tc = tcase_create("pool");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_pool_repeated);
  tcase_add_test(tc, test_pool_start_stop);
  tcase_add_test(tc, test_pool_env);
  tcase_add_test(tc, test_pool_scratch);
  suite_add_tcase(s, tc);
  return s;
}

#else /* not x86-64: the kernels are x86-only; say so instead of passing silently */

START_TEST(test_not_x86) { printf("check_gemm: NOTE: not an x86-64 host, GEMM tests skipped\n"); }
END_TEST

Suite *check_gemm_suite(void) {
  Suite *s = suite_create("gemm");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}
#endif
