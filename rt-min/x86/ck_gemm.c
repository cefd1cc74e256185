/* rt-min/x86/ck_gemm.c - ISA dispatch and the scalar fallback of ck_gemm.h.
 * Built for the baseline ISA: it only asks the CPU what it has and calls the
 * variant built for that ISA. The scalar loop is the executable definition of
 * the numerics every variant reproduces bit for bit (one fmaf chain in k
 * order per element). */
#include "ck_gemm.h"

#include <math.h>

#include "ck_gemm_small.h"

/* CK_GEMM_NO_AVX512 (the x86-avx2 target): ck_gemm_avx512.c is not linked,
 * so the dispatch never offers it, whatever the CPU. */
int ck_gemm_cpu_has(int isa) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
#ifdef CK_GEMM_NO_AVX512
  if (isa == CK_GEMM_AVX512) return 0;
#else
  if (isa == CK_GEMM_AVX512) return __builtin_cpu_supports("avx512f") != 0;
#endif
  if (isa == CK_GEMM_AVX2)
    return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0;
#endif
  return isa == CK_GEMM_SCALAR;
}

int ck_gemm_best_isa(void) {
  if (ck_gemm_cpu_has(CK_GEMM_AVX512)) return CK_GEMM_AVX512;
  if (ck_gemm_cpu_has(CK_GEMM_AVX2)) return CK_GEMM_AVX2;
  return CK_GEMM_SCALAR;
}

/* The reference numerics: fmaf chain per element, k ascending; batch-sum
 * continues the chain over the batch in order. */
void ck_gemm_f32_scalar(float *out, const float *a, const float *b, int64_t batch, int64_t M,
                        int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                        int64_t b_bstride, int flags) {
  int64_t bi, i, j, k;
  for (bi = 0; bi < batch; bi++) {
    const float *ab = a + bi * a_bstride, *bb = b + bi * b_bstride;
    float *o = (flags & CK_GEMM_BATCH_SUM) ? out : out + bi * M * N;
    int load = (flags & CK_GEMM_ACCUMULATE) || ((flags & CK_GEMM_BATCH_SUM) && bi > 0);
    for (i = 0; i < M; i++)
      for (j = 0; j < N; j++) {
        float acc = load ? o[i * N + j] : 0.0f;
        for (k = 0; k < K; k++) {
          float x = ta ? ab[k * M + i] : ab[i * K + k];
          float y = tb ? bb[j * K + k] : bb[k * N + j];
          acc = fmaf(x, y, acc);
        }
        o[i * N + j] = acc;
      }
  }
}

void ck_gemm_f32_isa(int isa, CkPool *pool, float *out, const float *a, const float *b,
                     int64_t batch, int64_t M, int64_t N, int64_t K, int ta, int tb,
                     int64_t a_bstride, int64_t b_bstride, int flags) {
#ifndef CK_GEMM_NO_AVX512
  if (isa == CK_GEMM_AVX512) {
    ck_gemm_f32_avx512(pool, out, a, b, batch, M, N, K, ta, tb, a_bstride, b_bstride, flags);
    return;
  }
#endif
  if (isa == CK_GEMM_AVX2)
    ck_gemm_f32_avx2(pool, out, a, b, batch, M, N, K, ta, tb, a_bstride, b_bstride, flags);
  else
    ck_gemm_f32_scalar(out, a, b, batch, M, N, K, ta, tb, a_bstride, b_bstride, flags);
}

void ck_gemm_f32(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                 int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                 int64_t b_bstride, int flags) {
  /* X @ W^T with 9..64 rows (batch-1 inference): no transpose-pack of W */
  if (ck_gemm_mid_takes(batch, M, N, K, ta, tb, a_bstride, b_bstride, flags)) {
    ck_gemm_mid_f32(pool, out, a, b, batch * M, N, K, flags);
    return;
  }
  ck_gemm_f32_isa(ck_gemm_best_isa(), pool, out, a, b, batch, M, N, K, ta, tb, a_bstride,
                  b_bstride, flags);
}

void ck_matmul_f32_fast(CkPool *pool, float *out, const float *a, const float *b, int64_t batch,
                        int64_t M, int64_t N, int64_t K, int ta, int tb, int64_t a_bstride,
                        int64_t b_bstride) {
  ck_gemm_f32(pool, out, a, b, batch, M, N, K, ta, tb, a_bstride, b_bstride, 0);
}
