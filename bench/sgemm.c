/* bench/sgemm.c - ckc's x86 GEMM against OpenBLAS, both in one process.
 *
 * For each n and thread count the two libraries run alternately (ckc, BLAS,
 * ckc, BLAS, ...) after a warm-up, so drifting load from other tenants hits
 * both alike; each sample times enough calls to last >= 20 ms, and the table
 * reports medians. An FMA peak (independent FMA chains of the widest
 * vectors the core has, zmm or ymm, one thread) gives the denominator for
 * "% of peak"; ck_gemm_f32 runs its AVX-512 or AVX2 kernels alike. Prints a markdown table on stdout;
 * bench/run.sh adds the machine description and writes bench/results.md.
 * `--shapes` adds a second table: the products the sample models run
 * (tiny_gpt at M=512, batch-1 inference at M=64, GPT-2-small at M=256, with
 * the transposes and the accumulate flag their backward uses), OpenBLAS
 * given the same transposes and beta=1 for accumulate.
 * Building with -DBENCH_BASELINE=fn (fn with ck_gemm_f32_avx512's signature,
 * e.g. an older copy of the GEMM renamed) adds it as a third alternated
 * column, for A/B comparisons of GEMM changes in one process.
 * Usage: sgemm [--shapes] [--threads N] [reps] (default: 1 and 2 threads,
 * 9 samples). Never part of `make test`. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "rt-min/x86/ck_gemm.h"

static double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* FMA peak: 24 independent accumulators hide the FMA latency on two pipes.
 * Written in asm so nothing but the FMAs (and one loop branch per 24) runs. */
#define BENCH_F(r) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #r "\n\t"
__attribute__((target("avx512f"), noinline)) static double bench_fma_peak_512(void) {
  long iters = 5000000, n = iters;
  double t0, t1;
  t0 = bench_now();
  __asm__ volatile("vxorps %%xmm30, %%xmm30, %%xmm30\n\t"
                   "vxorps %%xmm31, %%xmm31, %%xmm31\n\t"
                   "1:\n\t" BENCH_F(0) BENCH_F(1) BENCH_F(2) BENCH_F(3) BENCH_F(4) BENCH_F(5)
                   BENCH_F(6) BENCH_F(7) BENCH_F(8) BENCH_F(9) BENCH_F(10) BENCH_F(11) BENCH_F(12)
                   BENCH_F(13) BENCH_F(14) BENCH_F(15) BENCH_F(16) BENCH_F(17) BENCH_F(18)
                   BENCH_F(19) BENCH_F(20) BENCH_F(21) BENCH_F(22) BENCH_F(23)
                   "dec %0\n\t"
                   "jnz 1b\n\t"
                   "vzeroupper"
                   : "+r"(n)
                   :
                   : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                     "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16",
                     "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm30",
                     "xmm31", "cc");
  t1 = bench_now();
  return (double)iters * 24 * 16 * 2 / (t1 - t0) * 1e-9;
}

/* The same on an AVX2 + FMA core: 12 ymm chains (16 ymm registers; 12 cover
 * the 4-5 cycle FMA latency on two pipes). */
#define BENCH_Y(r) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #r "\n\t"
__attribute__((target("avx2,fma"), noinline)) static double bench_fma_peak_256(void) {
  long iters = 10000000, n = iters;
  double t0, t1;
  t0 = bench_now();
  __asm__ volatile("vxorps %%xmm14, %%xmm14, %%xmm14\n\t"
                   "vxorps %%xmm15, %%xmm15, %%xmm15\n\t"
                   "1:\n\t" BENCH_Y(0) BENCH_Y(1) BENCH_Y(2) BENCH_Y(3) BENCH_Y(4) BENCH_Y(5)
                   BENCH_Y(6) BENCH_Y(7) BENCH_Y(8) BENCH_Y(9) BENCH_Y(10) BENCH_Y(11)
                   "dec %0\n\t"
                   "jnz 1b\n\t"
                   "vzeroupper"
                   : "+r"(n)
                   :
                   : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                     "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "cc");
  t1 = bench_now();
  return (double)iters * 12 * 8 * 2 / (t1 - t0) * 1e-9;
}

/* The widest FMA the core has: what ck_gemm_f32 dispatches to. */
static double bench_fma_peak(int wide) { return wide ? bench_fma_peak_512() : bench_fma_peak_256(); }

/* One timed product: C (M x N) = op(A) @ op(B), row-major, as the models call it. */
typedef struct BenchShape {
  const char *what;
  int M, N, K, ta, tb, acc;
} BenchShape;

typedef struct BenchCase {
  BenchShape s;
  int threads;
  double ck, blas, base;  /* medians of GFLOP/s */
  double r_blas, r_base;  /* medians of the per-sample ratios ckc/other */
} BenchCase;

/* Calls per sample so that one sample lasts about 20 ms at ~150 GFLOP/s. */
static int bench_calls(double flop) {
  double c = 0.02 * 150e9 / flop;
  return c < 1 ? 1 : (int)c;
}

static void bench_ck(CkPool *pool, const BenchShape *s, float *c, const float *a, const float *b) {
  ck_gemm_f32(pool, c, a, b, 1, s->M, s->N, s->K, s->ta, s->tb, 0, 0,
              s->acc ? CK_GEMM_ACCUMULATE : 0);
}

static void bench_blas(const BenchShape *s, float *c, const float *a, const float *b) {
  cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
              s->M, s->N, s->K, 1.0f, a, s->ta ? s->M : s->K, b, s->tb ? s->K : s->N,
              s->acc ? 1.0f : 0.0f, c, s->N);
}

#ifdef BENCH_BASELINE
void BENCH_BASELINE(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                    int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                    int64_t b_bstride, int flags);
#endif

/* Alternates ckc and OpenBLAS (and the baseline) on one shape; medians. */
static void bench_shape(CkPool *pool, BenchCase *bc, int reps, int wide, double *peak) {
  const BenchShape *s = &bc->s;
  size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, no = (size_t)s->M * s->N, i;
  double flop1 = 2.0 * s->M * s->N * s->K, maxd = 0, scale = 1;
  int calls = bench_calls(flop1), r, c;
  double flop = flop1 * calls;
  float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b);
  float *c1 = calloc(no, sizeof *c1), *c2 = calloc(no, sizeof *c2), *c3 = calloc(no, sizeof *c3);
  double *s1 = malloc((size_t)reps * sizeof *s1), *s2 = malloc((size_t)reps * sizeof *s2);
  double *s3 = malloc((size_t)reps * sizeof *s3), *q2 = malloc((size_t)reps * sizeof *q2);
  double *q3 = malloc((size_t)reps * sizeof *q3);
  if (!a || !b || !c1 || !c2 || !c3 || !s1 || !s2 || !s3 || !q2 || !q3) {
    fprintf(stderr, "sgemm: out of memory\n");
    exit(1);
  }
  for (i = 0; i < na; i++) a[i] = (float)((i * 7919u) % 1000u) / 1000.0f - 0.5f;
  for (i = 0; i < nb; i++) b[i] = (float)((i * 104729u) % 997u) / 997.0f - 0.5f;
  /* warm-up (pages, pool scratch, BLAS buffers) and a cross-check */
  bench_ck(pool, s, c1, a, b);
  bench_blas(s, c2, a, b);
  for (i = 0; i < no; i++) {
    double d = fabs((double)c1[i] - (double)c2[i]);
    if (d > maxd) maxd = d;
    if (fabs((double)c2[i]) > scale) scale = fabs((double)c2[i]);
  }
  if (maxd > 1e-5 * scale * sqrt((double)s->K))
    fprintf(stderr, "sgemm: %dx%dx%d results differ by %g\n", s->M, s->N, s->K, maxd);
  for (r = 0; r < 3; r++) {
    double p = bench_fma_peak(wide);
    *peak = p > *peak ? p : *peak;
  }
  for (r = 0; r < reps; r++) {
    double t0 = bench_now(), t1;
    for (c = 0; c < calls; c++) bench_ck(pool, s, c1, a, b);
    t1 = bench_now();
    s1[r] = flop / (t1 - t0) * 1e-9;
    t0 = bench_now();
    for (c = 0; c < calls; c++) bench_blas(s, c2, a, b);
    t1 = bench_now();
    s2[r] = flop / (t1 - t0) * 1e-9;
    s3[r] = 0;
#ifdef BENCH_BASELINE
    t0 = bench_now();
    for (c = 0; c < calls; c++)
      BENCH_BASELINE(pool, c3, a, b, 1, s->M, s->N, s->K, s->ta, s->tb, 0, 0,
                     s->acc ? CK_GEMM_ACCUMULATE : 0);
    t1 = bench_now();
    s3[r] = flop / (t1 - t0) * 1e-9;
#endif
    q2[r] = s1[r] / s2[r];
    q3[r] = s3[r] > 0 ? s1[r] / s3[r] : 0;
  }
  bc->ck = bench_median(s1, reps);
  bc->blas = bench_median(s2, reps);
  bc->base = bench_median(s3, reps);
  bc->r_blas = bench_median(q2, reps);
  bc->r_base = bench_median(q3, reps);
  free(a), free(b), free(c1), free(c2), free(c3), free(s1), free(s2), free(s3), free(q2), free(q3);
}

/* The products of samples/tiny_gpt.ckm (B*T = 512 rows, C = 128, V = 256),
 * its batch-1 forward (64 rows) and samples/gpt2_small.ckm (B*T = 256 rows,
 * C = 768, V = 50257), as lower_x86 emits them: weights are [out, in], so
 * forward is tb=1, dX = dY @ W is plain, dW = dY^T @ X is ta=1, accumulated. */
static const BenchShape bench_model_shapes[] = {
    {"tiny_gpt fwd qkv", 512, 384, 128, 0, 1, 0},
    {"tiny_gpt fwd proj", 512, 128, 128, 0, 1, 0},
    {"tiny_gpt fwd fc", 512, 512, 128, 0, 1, 0},
    {"tiny_gpt fwd fc2", 512, 128, 512, 0, 1, 0},
    {"tiny_gpt fwd head", 512, 256, 128, 0, 1, 0},
    {"tiny_gpt dX qkv", 512, 128, 384, 0, 0, 0},
    {"tiny_gpt dX fc", 512, 512, 128, 0, 0, 0},
    {"tiny_gpt dX fc2", 512, 128, 512, 0, 0, 0},
    {"tiny_gpt dW qkv", 384, 128, 512, 1, 0, 1},
    {"tiny_gpt dW proj", 128, 128, 512, 1, 0, 1},
    {"tiny_gpt dW fc2", 128, 512, 512, 1, 0, 1},
    {"infer fwd qkv", 64, 384, 128, 0, 1, 0},
    {"infer fwd fc", 64, 512, 128, 0, 1, 0},
    {"infer fwd fc2", 64, 128, 512, 0, 1, 0},
    {"infer fwd head", 64, 256, 128, 0, 1, 0},
    {"gpt2 fwd qkv", 256, 2304, 768, 0, 1, 0},
    {"gpt2 fwd proj", 256, 768, 768, 0, 1, 0},
    {"gpt2 fwd fc", 256, 3072, 768, 0, 1, 0},
    {"gpt2 fwd fc2", 256, 768, 3072, 0, 1, 0},
    {"gpt2 fwd head", 256, 50257, 768, 0, 1, 0},
    {"gpt2 dX fc", 256, 768, 3072, 0, 0, 0},
    {"gpt2 dX head", 256, 768, 50257, 0, 0, 0},
    {"gpt2 dW fc", 3072, 768, 256, 1, 0, 1},
    {"gpt2 dW qkv", 2304, 768, 256, 1, 0, 1},
    {"gpt2 dW head", 50257, 768, 256, 1, 0, 0},
};

int main(int argc, char **argv) {
  static const int sizes[] = {256, 512, 1024, 2048};
  static const int threads[] = {1, 2};
  int nshapes = (int)(sizeof bench_model_shapes / sizeof bench_model_shapes[0]);
  int reps = 9, shapes = 0, ncases, nc = 0, si, ti, i, npeak = 5, only = 0, wide;
  double peak = 0;
  BenchCase *cases;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--shapes") == 0) shapes = 1;
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) only = atoi(argv[++i]);
    else reps = atoi(argv[i]);
  }
  if (reps < 1) reps = 9;
  wide = ck_gemm_cpu_has(CK_GEMM_AVX512);
  if (!wide && !ck_gemm_cpu_has(CK_GEMM_AVX2)) {
    fprintf(stderr, "sgemm: this benchmark needs AVX2 and FMA (or AVX-512F)\n");
    return 1;
  }
  ncases = 2 * (4 + (shapes ? nshapes : 0));
  cases = calloc((size_t)ncases, sizeof *cases);
  if (!cases) return 1;
  /* The peak is a property of the core: other tenants can only lower a
   * sample, so take the best of samples spread over the whole run. */
  for (i = 0; i < 5; i++) {
    double p = bench_fma_peak(wide);
    peak = p > peak ? p : peak;
  }
  for (ti = 0; ti < 2; ti++) {
    CkPool *pool;
    if (only > 0 && threads[ti] != only) continue;
    pool = ck_pool_create(threads[ti]);
    openblas_set_num_threads(threads[ti]);
    for (si = 0; si < 4 + (shapes ? nshapes : 0); si++) {
      BenchCase *bc = &cases[nc++];
      if (si < 4) {
        BenchShape sq = {"square", sizes[si], sizes[si], sizes[si], 0, 0, 0};
        bc->s = sq;
      } else {
        bc->s = bench_model_shapes[si - 4];
      }
      bc->threads = threads[ti];
      bench_shape(pool, bc, reps, wide, &peak);
      npeak += 3;
    }
    ck_pool_destroy(pool);
  }
  printf("Measured FMA peak (1 thread, %s, %d independent chains, best of %d samples spread "
         "over the run): %.1f GFLOP/s; 2-thread peak taken as 2x. ckc runs its %s kernels.\n\n",
         wide ? "AVX-512" : "AVX2", wide ? 24 : 12, npeak, peak, wide ? "AVX-512" : "AVX2");
  printf("OpenBLAS: %s (core %s). Medians of %d samples, alternating; a ratio is the median of "
         "the per-sample ratios (robust to load that comes and goes).\n\n",
         openblas_get_config(),
         openblas_get_corename(), reps);
  printf("| n | threads | ckc GFLOP/s | OpenBLAS GFLOP/s | ckc/OpenBLAS | ckc %% of peak |%s\n",
#ifdef BENCH_BASELINE
         " baseline GFLOP/s | ckc/baseline |"
#else
         ""
#endif
  );
  printf("|---:|---:|---:|---:|---:|---:|%s\n",
#ifdef BENCH_BASELINE
         "---:|---:|"
#else
         ""
#endif
  );
  for (i = 0; i < nc; i++) {
    const BenchCase *x = &cases[i];
    if (strcmp(x->s.what, "square") != 0) continue;
    printf("| %d | %d | %.1f | %.1f | %.3f | %.1f%% |", x->s.M, x->threads, x->ck, x->blas,
           x->r_blas, 100.0 * x->ck / (peak * x->threads));
#ifdef BENCH_BASELINE
    printf(" %.1f | %.3f |", x->base, x->r_base);
#endif
    printf("\n");
  }
  if (shapes) {
    printf("\nModel shapes (C = op(A) @ op(B), M x N x K; acc: C += ..., OpenBLAS beta = 1):\n\n");
    printf("| product | M x N x K | ta tb acc | threads | ckc GFLOP/s | OpenBLAS GFLOP/s | "
           "ckc/OpenBLAS | ckc %% of peak |%s\n",
#ifdef BENCH_BASELINE
           " baseline GFLOP/s | ckc/baseline |"
#else
           ""
#endif
    );
    printf("|---|---:|---:|---:|---:|---:|---:|---:|%s\n",
#ifdef BENCH_BASELINE
           "---:|---:|"
#else
           ""
#endif
    );
    for (i = 0; i < nc; i++) {
      const BenchCase *x = &cases[i];
      if (strcmp(x->s.what, "square") == 0) continue;
      printf("| %s | %dx%dx%d | %d %d %d | %d | %.1f | %.1f | %.3f | %.1f%% |", x->s.what, x->s.M,
             x->s.N, x->s.K, x->s.ta, x->s.tb, x->s.acc, x->threads, x->ck, x->blas,
             x->r_blas, 100.0 * x->ck / (peak * x->threads));
#ifdef BENCH_BASELINE
      printf(" %.1f | %.3f |", x->base, x->r_base);
#endif
      printf("\n");
    }
  }
  free(cases);
  return 0;
}
