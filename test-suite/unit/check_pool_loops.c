/* test-suite/unit/check_pool_loops.c - the parallel-for of rt-min/x86/ck_pool.h
 * as the split elementwise loops of the generated code use it.
 *
 * Every chunk must run exactly once per call and the call must return only
 * after all of them finished, for a NULL pool and pools of 1, 2 and 3
 * threads, over many back-to-back calls (the workers go from call to call
 * without sleeping) and after idle gaps (they sleep and are woken). A chunk
 * that is slow on a worker thread makes the caller sleep on its condition
 * variable (the wait path for a preempted worker): the call must still see
 * every chunk's writes when it returns. Last, a loop split the way emit/model.c
 * splits it (rows of the outer dimension, chunks from the shape) gives the
 * same bits as the one loop for every thread count. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include "rt-min/x86/ck_pool.h"

#define PL_MAX_CHUNKS 1000

/* Each chunk adds 1 to its own counter and records the call it ran in. */
typedef struct PlCount {
  int runs[PL_MAX_CHUNKS];
  int call[PL_MAX_CHUNKS];
  int current;
  long sleep_ns; /* > 0: chunks on worker threads sleep this long first */
} PlCount;

static void pl_count_chunk(void *ctx, int64_t chunk, int tid) {
  PlCount *c = (PlCount *)ctx;
  if (c->sleep_ns > 0 && tid != 0) {
    struct timespec ts = {0, c->sleep_ns};
    nanosleep(&ts, NULL);
  }
  c->runs[chunk]++;
  c->call[chunk] = c->current;
}

/* Runs `calls` parallel-fors of n chunks and checks each chunk ran once per
 * call and had finished (its write visible) when the call returned. */
static void pl_check_calls(CkPool *pool, PlCount *c, int64_t n, int calls, long gap_ns) {
  int k;
  int64_t i;
  memset(c->runs, 0, sizeof c->runs);
  for (k = 1; k <= calls; k++) {
    c->current = k;
    ck_pool_parallel_for(pool, n, pl_count_chunk, c);
    for (i = 0; i < n; i++) {
      ck_assert_msg(c->runs[i] == k, "chunk %lld of %lld ran %d times in %d calls (%d threads)", (long long)i,
                    (long long)n, c->runs[i], k, ck_pool_threads(pool));
      ck_assert_int_eq(c->call[i], k);
    }
    if (gap_ns > 0) {
      struct timespec ts = {gap_ns / 1000000000L, gap_ns % 1000000000L};
      nanosleep(&ts, NULL);
    }
  }
  for (i = n; i < PL_MAX_CHUNKS; i++) ck_assert_int_eq(c->runs[i], 0);
}

START_TEST(test_every_chunk_once) {
  static const int64_t sizes[] = {1, 2, 3, 7, 64, 1000};
  PlCount *c = (PlCount *)calloc(1, sizeof *c);
  int t;
  size_t s;
  ck_assert_ptr_nonnull(c);
  for (t = 0; t <= 3; t++) {
    CkPool *pool = t == 0 ? NULL : ck_pool_create(t);
    if (t > 0) ck_assert_ptr_nonnull(pool);
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) pl_check_calls(pool, c, sizes[s], 300, 0);
    /* idle gaps longer than the workers' spin: they sleep and are woken */
    pl_check_calls(pool, c, 64, 5, 20 * 1000 * 1000L);
    ck_pool_destroy(pool);
  }
  free(c);
}
END_TEST

START_TEST(test_slow_worker) {
  PlCount *c = (PlCount *)calloc(1, sizeof *c);
  int t;
  ck_assert_ptr_nonnull(c);
  c->sleep_ns = 2 * 1000 * 1000L; /* far past the caller's spin before it sleeps */
  for (t = 2; t <= 3; t++) {
    CkPool *pool = ck_pool_create(t);
    ck_assert_ptr_nonnull(pool);
    pl_check_calls(pool, c, 2, 20, 0);
    pl_check_calls(pool, c, 16, 10, 0);
    ck_pool_destroy(pool);
  }
  free(c);
}
END_TEST

/* ---- a split loop, as emit/model.c writes one ---------------------------------- */

#define PL_ROWS 300
#define PL_COLS 700
#define PL_CHUNK_ROWS 23 /* EMIT_LOOP_CHUNK / PL_COLS: rows per chunk, from the shape */

typedef struct PlLoop {
  float *out;
  const float *x, *bias;
} PlLoop;

static float pl_body(float x, float b) { return tanhf(x * 0.5f + b) * expf(-x * x * 0.01f); }

static void pl_loop_chunk(void *ctx, int64_t chunk, int tid) {
  const PlLoop *c = (const PlLoop *)ctx;
  const int64_t lo = chunk * PL_CHUNK_ROWS, hi = lo + PL_CHUNK_ROWS < PL_ROWS ? lo + PL_CHUNK_ROWS : PL_ROWS;
  int64_t i0, i1;
  (void)tid;
  for (i0 = lo; i0 < hi; i0++)
    for (i1 = 0; i1 < PL_COLS; i1++) c->out[i0 * PL_COLS + i1] = pl_body(c->x[i0 * PL_COLS + i1], c->bias[i1]);
}

START_TEST(test_split_loop_bitwise) {
  float *x = (float *)malloc(sizeof(float) * PL_ROWS * PL_COLS);
  float *ref = (float *)malloc(sizeof(float) * PL_ROWS * PL_COLS);
  float *out = (float *)malloc(sizeof(float) * PL_ROWS * PL_COLS);
  float bias[PL_COLS];
  uint64_t s = 88172645463325252ULL;
  int64_t i, i0, i1, nchunks = (PL_ROWS + PL_CHUNK_ROWS - 1) / PL_CHUNK_ROWS;
  int t;
  ck_assert(x && ref && out);
  for (i = 0; i < PL_ROWS * PL_COLS; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[i] = (float)((double)(s >> 40) / (double)(1 << 24) * 8.0 - 4.0);
  }
  for (i = 0; i < PL_COLS; i++) bias[i] = 0.001f * (float)i - 0.3f;
  for (i0 = 0; i0 < PL_ROWS; i0++) /* the one loop */
    for (i1 = 0; i1 < PL_COLS; i1++) ref[i0 * PL_COLS + i1] = pl_body(x[i0 * PL_COLS + i1], bias[i1]);
  for (t = 0; t <= 3; t++) {
    CkPool *pool = t == 0 ? NULL : ck_pool_create(t);
    PlLoop c;
    c.out = out, c.x = x, c.bias = bias;
    memset(out, 0xff, sizeof(float) * PL_ROWS * PL_COLS); /* NaNs where a chunk did not write */
    ck_pool_parallel_for(pool, nchunks, pl_loop_chunk, &c);
    ck_assert_msg(memcmp(out, ref, sizeof(float) * PL_ROWS * PL_COLS) == 0,
                  "split loop differs from the one loop with %d threads", t);
    ck_pool_destroy(pool);
  }
  free(x), free(ref), free(out);
}
END_TEST

Suite *check_pool_loops_suite(void) {
  Suite *s = suite_create("pool_loops");
  TCase *tc = tcase_create("parallel_for");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_every_chunk_once);
  tcase_add_test(tc, test_slow_worker);
  tcase_add_test(tc, test_split_loop_bitwise);
  suite_add_tcase(s, tc);
  return s;
}

#else /* not x86-64 */

START_TEST(test_not_x86) { printf("check_pool_loops: NOTE: not an x86-64 host, tests skipped\n"); }
END_TEST

Suite *check_pool_loops_suite(void) {
  Suite *s = suite_create("pool_loops");
  TCase *tc = tcase_create("skipped");
  tcase_add_test(tc, test_not_x86);
  suite_add_tcase(s, tc);
  return s;
}
#endif
