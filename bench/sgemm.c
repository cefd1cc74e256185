/* bench/sgemm.c - ckc's x86 GEMM against OpenBLAS, both in one process.
 *
 * For each n and thread count the two libraries run alternately (ckc, BLAS,
 * ckc, BLAS, ...) after a warm-up, so drifting load from other tenants hits
 * both alike; each sample times enough calls to last >= 20 ms, and the table
 * reports medians. An FMA peak (independent zmm FMA chains, one thread)
 * gives the denominator for "% of peak". Prints a markdown table on stdout;
 * bench/run.sh adds the machine description and writes bench/results.md.
 * Usage: sgemm [reps] (default 9). Never part of `make test`. */
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

typedef struct BenchCase {
  int n, threads;
  double ck, blas;
} BenchCase;

/* Calls per sample so that one sample lasts about 20 ms at ~150 GFLOP/s. */
static int bench_calls(int n) {
  double flop = 2.0 * n * n * n, c = 0.02 * 150e9 / flop;
  return c < 1 ? 1 : (int)c;
}

int main(int argc, char **argv) {
  static const int sizes[] = {256, 512, 1024, 2048};
  static const int threads[] = {1, 2};
  int reps = argc > 1 ? atoi(argv[1]) : 9;
  double peak, peak_samples[5];
  BenchCase cases[8];
  int nc = 0, si, ti, r, i;
  if (reps < 1) reps = 9;
  if (!ck_gemm_cpu_has(CK_GEMM_AVX512)) {
    fprintf(stderr, "sgemm: this benchmark needs AVX-512F\n");
    return 1;
  }
  /* The peak is a property of the core: other tenants can only lower a
   * sample, so take the best of samples spread over the whole run. */
  peak = 0;
  for (i = 0; i < 5; i++) peak_samples[i] = bench_fma_peak_512();
  for (i = 0; i < 5; i++) peak = peak_samples[i] > peak ? peak_samples[i] : peak;
  for (ti = 0; ti < 2; ti++) {
    CkPool *pool = ck_pool_create(threads[ti]);
    openblas_set_num_threads(threads[ti]);
    for (si = 0; si < 4; si++) {
      int n = sizes[si], calls = bench_calls(n), c;
      size_t nn = (size_t)n * n;
      float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b);
      float *c1 = malloc(nn * sizeof *c1), *c2 = malloc(nn * sizeof *c2);
      double *s1 = malloc((size_t)reps * sizeof *s1), *s2 = malloc((size_t)reps * sizeof *s2);
      double flop = 2.0 * n * n * n * calls, maxd = 0;
      for (i = 0; i < (int)nn; i++) {
        a[i] = (float)(((uint64_t)i * 7919u) % 1000u) / 1000.0f - 0.5f;
        b[i] = (float)(((uint64_t)i * 104729u) % 997u) / 997.0f - 0.5f;
      }
      for (r = 0; r < 2; r++) { /* warm-up: pages, pool scratch, BLAS buffers */
        ck_matmul_f32_fast(pool, c1, a, b, 1, n, n, n, 0, 0, 0, 0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c2, n);
      }
      for (i = 0; i < (int)nn; i++) {
        double d = fabs((double)c1[i] - (double)c2[i]);
        if (d > maxd) maxd = d;
      }
      if (maxd > 1e-3) fprintf(stderr, "sgemm: n=%d results differ by %g\n", n, maxd);
      for (r = 0; r < 3; r++) {
        double p = bench_fma_peak_512();
        peak = p > peak ? p : peak;
      }
      for (r = 0; r < reps; r++) {
        double t0 = bench_now(), t1;
        for (c = 0; c < calls; c++) ck_matmul_f32_fast(pool, c1, a, b, 1, n, n, n, 0, 0, 0, 0);
        t1 = bench_now();
        s1[r] = flop / (t1 - t0) * 1e-9;
        t0 = bench_now();
        for (c = 0; c < calls; c++)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                      c2, n);
        t1 = bench_now();
        s2[r] = flop / (t1 - t0) * 1e-9;
      }
      cases[nc].n = n;
      cases[nc].threads = threads[ti];
      cases[nc].ck = bench_median(s1, reps);
      cases[nc].blas = bench_median(s2, reps);
      nc++;
      free(a), free(b), free(c1), free(c2), free(s1), free(s2);
    }
    ck_pool_destroy(pool);
  }
  printf("Measured FMA peak (1 thread, AVX-512, 24 independent chains, best of %d samples spread "
         "over the run): %.1f GFLOP/s; 2-thread peak taken as 2x.\n\n",
         5 + 3 * nc,
         peak);
  printf("OpenBLAS: %s (core %s). Medians of %d samples, alternating.\n\n", openblas_get_config(),
         openblas_get_corename(), reps);
  printf("| n | threads | ckc GFLOP/s | OpenBLAS GFLOP/s | ckc/OpenBLAS | ckc %% of peak |\n");
  printf("|---:|---:|---:|---:|---:|---:|\n");
  for (i = 0; i < nc; i++)
    printf("| %d | %d | %.1f | %.1f | %.3f | %.1f%% |\n", cases[i].n, cases[i].threads, cases[i].ck,
           cases[i].blas, cases[i].ck / cases[i].blas,
           100.0 * cases[i].ck / (peak * cases[i].threads));
  return 0;
}
