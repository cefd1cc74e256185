/* test-suite/decode/harness.c - checks a generated decode entry against the
 * forward of the same project (test-suite/decode/run.sh builds it with the
 * project's sources and CFLAGS, -DMODEL=<prefix> -DUPPER=<PREFIX>, and
 * -DPOOLED on targets whose entries take a CkPool).
 *
 *   harness THREADS SEED B      (B: the batch the model was compiled with)
 *
 * Fills params with a deterministic pseudo-random pattern and every row of a
 * [B, T] batch with pseudo-random tokens, runs forward once, then decode for
 * pos = 0 .. T-1 on one cache, and compares decode's logits [B, V] with
 * forward's logits at each position: |decode - forward| <= 1e-5 * max(1,
 * max|forward|) per element (the infer tolerance). Also checks the error
 * codes of a position and a token out of range, and that a second sequence
 * in the same cache (started again at pos 0) gives the same logits. Prints
 * one line "max_abs_diff=... bitwise=0|1 checked=N" (decode and forward run
 * the same kernels in the same order, so bitwise=1 is expected), exits 1 on
 * any failure. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define STR_(a) #a
#define STR(a) STR_(a)
#define FN(x) CAT(MODEL, x)
#define UP(x) CAT(UPPER, x)

#include STR(MODEL.h)

#ifdef POOLED
#define POOL_ARG pool,
#else
#define POOL_ARG
#endif

/* xorshift64*: the same pattern on every host. */
static uint64_t next_u64(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static float next_f(uint64_t *s, float scale) {
  return scale * ((float)(next_u64(s) >> 40) / 16777216.0f * 2.0f - 1.0f);
}

static void *alloc_or_die(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  uint64_t seed = argc > 2 ? (uint64_t)strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1 : 1;
  const int64_t B = argc > 3 ? atoll(argv[3]) : 1, T = UP(_DECODE_MAX_POS);
  const int64_t V = UP(_DECODE_LOGITS_COUNT) / B, n_tok = B * T;
  float *params = alloc_or_die(UP(_PARAMS_BYTES));
  float *arena = alloc_or_die(UP(_ARENA_BYTES));
  float *darena = alloc_or_die(UP(_DECODE_ARENA_BYTES));
  float *cache = alloc_or_die(UP(_CACHE_BYTES));
  float *out = alloc_or_die((size_t)UP(_OUT_COUNT) * sizeof(float));
  float *logits = alloc_or_die((size_t)UP(_DECODE_LOGITS_COUNT) * sizeof(float));
  float *first = alloc_or_die((size_t)UP(_DECODE_LOGITS_COUNT) * sizeof(float));
  int32_t *idx = alloc_or_die((size_t)n_tok * sizeof(int32_t));
  int32_t *tok = alloc_or_die((size_t)B * sizeof(int32_t));
  int64_t b, t, j, checked = 0, V_in = 0;
  int bitwise = 1, rc;
  if (B < 1 || V * B != UP(_DECODE_LOGITS_COUNT) || n_tok * V != UP(_OUT_COUNT)) {
    fprintf(stderr, "harness: batch %lld does not fit the model\n", (long long)B);
    return 2;
  }
  double maxdiff = 0.0, maxref = 0.0;
#ifdef POOLED
  CkPool *pool = ck_pool_create(threads);
#else
  (void)threads;
#endif
  for (j = 0; j < UP(_PARAMS_BYTES) / 4; j++) params[j] = next_f(&seed, 0.25f);
  /* layernorm weights near 1 keep activations in a normal range */
  for (j = 0; j < UP(_NUM_PARAMS); j++) {
    const char *nm = FN(_params)[j].name;
    size_t n = strlen(nm);
    if (n > 7 && strcmp(nm + n - 7, ".weight") == 0 && FN(_params)[j].rank == 1) {
      int64_t k;
      for (k = 0; k < FN(_params)[j].count; k++) params[FN(_params)[j].offset / 4 + k] += 1.0f;
    }
  }
  /* tokens below the vocabulary of the first embedding table */
  V_in = FN(_params)[0].dims[0];
  for (j = 0; j < n_tok; j++) idx[j] = (int32_t)(next_u64(&seed) % (uint64_t)V_in);

  rc = FN(_forward)(POOL_ARG params, arena, idx, out);
  if (rc != UP(_OK)) {
    printf("FAILED: forward returned %d\n", rc);
    return 1;
  }
  for (j = 0; j < UP(_OUT_COUNT); j++)
    if (fabs((double)out[j]) > maxref) maxref = fabs((double)out[j]);
  for (t = 0; t < T; t++) {
    for (b = 0; b < B; b++) tok[b] = idx[b * T + t];
    rc = FN(_decode)(POOL_ARG params, cache, darena, tok, t, logits);
    if (rc != UP(_OK)) {
      printf("FAILED: decode at pos %lld returned %d\n", (long long)t, rc);
      return 1;
    }
    if (t == 0) memcpy(first, logits, (size_t)UP(_DECODE_LOGITS_COUNT) * sizeof(float));
    for (b = 0; b < B; b++)
      for (j = 0; j < V; j++) {
        double ref = out[(b * T + t) * V + j], got = logits[b * V + j];
        double diff = fabs(got - ref);
        if (!(diff <= maxdiff)) maxdiff = diff; /* NaN sticks */
        if (memcmp(&out[(b * T + t) * V + j], &logits[b * V + j], sizeof(float)) != 0) bitwise = 0;
        checked++;
      }
  }
  printf("max_abs_diff=%.3g max_ref=%.3g bitwise=%d checked=%lld\n", maxdiff, maxref, bitwise,
         (long long)checked);
  if (!(maxdiff <= 1e-5 * (maxref > 1.0 ? maxref : 1.0))) {
    printf("FAILED: decode differs from forward beyond the infer tolerance\n");
    return 1;
  }
  /* a new sequence in the same cache: pos 0 forgets the old rows */
  for (b = 0; b < B; b++) tok[b] = idx[b * T];
  rc = FN(_decode)(POOL_ARG params, cache, darena, tok, 0, logits);
  if (rc != UP(_OK) || memcmp(logits, first, (size_t)UP(_DECODE_LOGITS_COUNT) * sizeof(float)) != 0) {
    printf("FAILED: restarting at pos 0 gave other logits (rc %d)\n", rc);
    return 1;
  }
  /* bad input: clear codes, never a crash */
  rc = FN(_decode)(POOL_ARG params, cache, darena, tok, T, logits);
  if (rc != UP(_ERR_INDEX_RANGE) + 1) {
    printf("FAILED: pos = T returned %d, expected %d\n", rc, UP(_ERR_INDEX_RANGE) + 1);
    return 1;
  }
  rc = FN(_decode)(POOL_ARG params, cache, darena, tok, -1, logits);
  if (rc != UP(_ERR_INDEX_RANGE) + 1) {
    printf("FAILED: pos = -1 returned %d\n", rc);
    return 1;
  }
  tok[0] = (int32_t)V_in;
  rc = FN(_decode)(POOL_ARG params, cache, darena, tok, 1, logits);
  if (rc != UP(_ERR_INDEX_RANGE) + 0) {
    printf("FAILED: token = V returned %d, expected %d\n", rc, UP(_ERR_INDEX_RANGE));
    return 1;
  }
#ifdef POOLED
  ck_pool_destroy(pool);
#endif
  free(params);
  free(arena);
  free(darena);
  free(cache);
  free(out);
  free(logits);
  free(first);
  free(idx);
  free(tok);
  return 0;
}
