/* rt-min/x86/ck_gemm_avx2.c - fp32 GEMM with AVX2 + FMA micro-kernels.
 * Build with -mavx2 -mfma (e.g. -march=x86-64-v3). The micro-tile is 6 x 16:
 * 12 ymm accumulators, two ymm of packed B and 6 broadcasts of packed A per k
 * (the classic Haswell shape: 15 of the 16 ymm registers). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "ck_gemm.h"

#include <immintrin.h>

/* Kept out of line: inlined into the edge-handling caller, gcc 12 runs out of
 * registers and spills the B vectors inside the k loop. */
#if defined(__GNUC__)
#define CKG_NOINLINE __attribute__((noinline))
#else
#define CKG_NOINLINE
#endif

#define CKG_MR 6
#define CKG_NR 16
#ifndef CKG_KC
#define CKG_KC 256 /* A micro-panel 6 KiB in L1 */
#endif
#ifndef CKG_NC
#define CKG_NC 1024 /* B block 1 MiB in L2 */
#endif
#define CKG_ENTRY ck_gemm_f32_avx2

#define CKG_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define CKG_DECL(r) __m256 c##r##a, c##r##b;
#define CKG_ZERO(r) c##r##a = _mm256_setzero_ps(); c##r##b = _mm256_setzero_ps();
#define CKG_LOAD(r)                                                                          \
  c##r##a = _mm256_loadu_ps(c + (r) * ldc);                                                  \
  c##r##b = _mm256_loadu_ps(c + (r) * ldc + 8);
#define CKG_FMA(r)                                                                           \
  {                                                                                          \
    __m256 av = _mm256_broadcast_ss(ap + (r));                                               \
    c##r##a = _mm256_fmadd_ps(av, b0, c##r##a);                                              \
    c##r##b = _mm256_fmadd_ps(av, b1, c##r##b);                                              \
  }
#define CKG_STORE(r)                                                                         \
  _mm256_storeu_ps(c + (r) * ldc, c##r##a);                                                  \
  _mm256_storeu_ps(c + (r) * ldc + 8, c##r##b);

/* Full 6 x 16 tile, same fma-chain contract as the AVX-512 kernel. During
 * its first 6 k steps it prefetches one 64-byte row of the next C tile (pf)
 * each, spread out so the prefetches do not queue up in a burst. */
static CKG_NOINLINE void ckg_kernel(int64_t kc, const float *ap, const float *bp, float *c,
                                    int64_t ldc, int load_c, const float *pf) {
  int64_t k;
  CKG_ROWS(CKG_DECL)
  if (load_c) {
    CKG_ROWS(CKG_LOAD)
  } else {
    CKG_ROWS(CKG_ZERO)
  }
  for (k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
    if (k < CKG_MR) {
      _mm_prefetch((const char *)(pf + k * ldc), _MM_HINT_T0);
      _mm_prefetch((const char *)(pf + k * ldc + CKG_NR - 1), _MM_HINT_T0);
    }
    CKG_ROWS(CKG_FMA)
    ap += CKG_MR;
    bp += CKG_NR;
  }
  CKG_ROWS(CKG_STORE)
}

#include "ck_gemm_driver.h"
