/* rt-min/x86/ck_gemm_avx512.c - fp32 GEMM with AVX-512F micro-kernels.
 * Build with -mavx512f -mfma (e.g. -march=x86-64-v4); call only where the CPU
 * has AVX-512F (ck_gemm_f32 dispatches). The micro-tile is 12 x 32: 24 zmm
 * accumulators, two zmm of packed B per k and 12 broadcasts of packed A, so
 * each k step is 24 FMAs for 2 vector loads + 12 broadcast loads (the two FMA
 * pipes stay the bottleneck, not the load ports). */
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

#define CKG_MR 12
#define CKG_NR 32
#ifndef CKG_KC
#define CKG_KC 256 /* A micro-panel 12 KiB in L1 */
#endif
#ifndef CKG_NC
#define CKG_NC 1024 /* B block 1 MiB in L2 */
#endif
#define CKG_ENTRY ck_gemm_f32_avx512

/* One k step of the 12 x 32 tile, U-th of an unrolled group: 2 vector loads
 * of packed B, 12 broadcasts of packed A (rotating through zmm24-27), 24
 * FMAs. Row r of the tile lives in zmm(2r) (columns 0-15) and zmm(2r+1)
 * (columns 16-31). The offsets are assembler expressions. */
#define CKG_ROW(U, R, T, C0, C1)                                                             \
  "vbroadcastss " #U "*48+" #R "*4(%[ap]), %%zmm" #T "\n\t"                                 \
  "vfmadd231ps %%zmm30, %%zmm" #T ", %%zmm" #C0 "\n\t"                                      \
  "vfmadd231ps %%zmm31, %%zmm" #T ", %%zmm" #C1 "\n\t"
#define CKG_STEP(U)                                                                          \
  "vmovaps " #U "*128(%[bp]), %%zmm30\n\t"                                                  \
  "vmovaps " #U "*128+64(%[bp]), %%zmm31\n\t"                                               \
  CKG_ROW(U, 0, 24, 0, 1) CKG_ROW(U, 1, 25, 2, 3) CKG_ROW(U, 2, 26, 4, 5)                  \
  CKG_ROW(U, 3, 27, 6, 7) CKG_ROW(U, 4, 24, 8, 9) CKG_ROW(U, 5, 25, 10, 11)                \
  CKG_ROW(U, 6, 26, 12, 13) CKG_ROW(U, 7, 27, 14, 15) CKG_ROW(U, 8, 24, 16, 17)            \
  CKG_ROW(U, 9, 25, 18, 19) CKG_ROW(U, 10, 26, 20, 21) CKG_ROW(U, 11, 27, 22, 23)
#define CKG_STEP4 CKG_STEP(0) CKG_STEP(1) CKG_STEP(2) CKG_STEP(3)
#define CKG_CROW(A, B) "vmovups (%[cl]), %%zmm" #A "\n\t" "vmovups 64(%[cl]), %%zmm" #B "\n\t" \
  "add %[ldb], %[cl]\n\t"
#define CKG_SROW(A, B) "vmovups %%zmm" #A ", (%[cp])\n\t" "vmovups %%zmm" #B ", 64(%[cp])\n\t" \
  "add %[ldb], %[cp]\n\t"
#define CKG_ZERO(A) "vpxord %%zmm" #A ", %%zmm" #A ", %%zmm" #A "\n\t"

/* The whole micro-kernel is inline asm: gcc 12 compiles the intrinsic
 * version (24 accumulators, 2 B vectors, broadcasts) with extra address
 * arithmetic and, once inlined, spills; at 65-70% of the FMA peak it was the
 * bottleneck. This fixed stream keeps the accumulators in zmm0-23 and B in
 * zmm30-31. The k loop is unrolled 4 times (pointer arithmetic and the
 * branch once per 4 steps); during its first 12 trips it also prefetches one
 * row of the NEXT C tile (`pf`, 128 bytes = up to 3 lines), so that tile's
 * loads do not stall the next call. Prefetching those 24-36 lines in a burst
 * before the call, as the first version did, filled the line-fill buffers
 * and stalled (3-4% of a 1024^3 product in perf). A tail loop runs kc % 4
 * single steps. In the measured kernel-only test (B from L2, C hot) it runs
 * at 93-97% of the FMA peak.
 * c = (load_c ? c : 0) + sum_k ap[k,:]^T bp[k,:], one fma per (element, k)
 * in k order. kc >= 1. */
#if defined(__GNUC__) /* one asm string, longer than the 4095 characters ISO C99 guarantees */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#endif
static CKG_NOINLINE void ckg_kernel(int64_t kc, const float *ap, const float *bp, float *c,
                                    int64_t ldc, int load_c, const float *pf) {
  float *cp = c, *cl = c; /* two outputs: gcc may not merge them */
  int64_t ldb = ldc * (int64_t)sizeof(float), n, m;
  __asm__ volatile(
      "test %[ld], %[ld]\n\t"
      "jz 3f\n\t"
      CKG_CROW(0, 1) CKG_CROW(2, 3) CKG_CROW(4, 5) CKG_CROW(6, 7) CKG_CROW(8, 9)
      CKG_CROW(10, 11) CKG_CROW(12, 13) CKG_CROW(14, 15) CKG_CROW(16, 17) CKG_CROW(18, 19)
      CKG_CROW(20, 21) CKG_CROW(22, 23)
      "jmp 4f\n\t"
      "3:\n\t"
      CKG_ZERO(0) CKG_ZERO(1) CKG_ZERO(2) CKG_ZERO(3) CKG_ZERO(4) CKG_ZERO(5) CKG_ZERO(6)
      CKG_ZERO(7) CKG_ZERO(8) CKG_ZERO(9) CKG_ZERO(10) CKG_ZERO(11) CKG_ZERO(12) CKG_ZERO(13)
      CKG_ZERO(14) CKG_ZERO(15) CKG_ZERO(16) CKG_ZERO(17) CKG_ZERO(18) CKG_ZERO(19)
      CKG_ZERO(20) CKG_ZERO(21) CKG_ZERO(22) CKG_ZERO(23)
      "4:\n\t"
      /* n = kc / 4 trips; the first m = min(n, 12) prefetch a row of pf */
      "mov %[kc], %[n]\n\t"
      "shr $2, %[n]\n\t"
      "mov $12, %[m]\n\t"
      "cmp %[m], %[n]\n\t"
      "cmovb %[n], %[m]\n\t"
      "sub %[m], %[n]\n\t"
      "test %[m], %[m]\n\t"
      "jz 5f\n\t"
      "2:\n\t"
      "prefetcht0 (%[pf])\n\t"
      "prefetcht0 64(%[pf])\n\t"
      "prefetcht0 127(%[pf])\n\t"
      "add %[ldb], %[pf]\n\t"
      CKG_STEP4
      "add $192, %[ap]\n\t"
      "add $512, %[bp]\n\t"
      "dec %[m]\n\t"
      "jnz 2b\n\t"
      "5:\n\t"
      "test %[n], %[n]\n\t"
      "jz 6f\n\t"
      "1:\n\t"
      CKG_STEP4
      "add $192, %[ap]\n\t"
      "add $512, %[bp]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "6:\n\t"
      "and $3, %[kc]\n\t"
      "jz 7f\n\t"
      "8:\n\t"
      CKG_STEP(0)
      "add $48, %[ap]\n\t"
      "sub $-128, %[bp]\n\t"
      "dec %[kc]\n\t"
      "jnz 8b\n\t"
      "7:\n\t"
      CKG_SROW(0, 1) CKG_SROW(2, 3) CKG_SROW(4, 5) CKG_SROW(6, 7) CKG_SROW(8, 9)
      CKG_SROW(10, 11) CKG_SROW(12, 13) CKG_SROW(14, 15) CKG_SROW(16, 17) CKG_SROW(18, 19)
      CKG_SROW(20, 21) CKG_SROW(22, 23)
      "vzeroupper\n\t"
      : [ap] "+r"(ap), [bp] "+r"(bp), [kc] "+r"(kc), [cp] "+r"(cp), [cl] "+r"(cl),
        [pf] "+r"(pf), [n] "=&r"(n), [m] "=&r"(m)
      : [ldb] "r"(ldb), [ld] "r"(load_c)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20",
        "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm30", "xmm31", "cc",
        "memory");
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* Edge tiles (mr < 12 rows or nr < 32 columns): the same per-element fma
 * chains in k order, with masked loads and stores so nothing outside the
 * matrix is touched and no padded copy of C is needed, and only as many
 * accumulator rows (4, 8 or 12) as the tile has. Intrinsics are fine here:
 * edge tiles are a small share of the work. Rows past mr read the zero
 * padding of the packed A panel and are never stored. */
#define CKE_DECL(r) __m512 c##r##a = _mm512_setzero_ps(), c##r##b = _mm512_setzero_ps();
#define CKE_LOAD(r)                                                                          \
  if ((r) < mr) {                                                                            \
    c##r##a = _mm512_maskz_loadu_ps(m0, c + (r)*ldc);                                        \
    c##r##b = _mm512_maskz_loadu_ps(m1, c + (r)*ldc + 16);                                   \
  }
#define CKE_FMA(r)                                                                           \
  {                                                                                          \
    __m512 av = _mm512_set1_ps(ap[r]);                                                       \
    c##r##a = _mm512_fmadd_ps(av, b0, c##r##a);                                              \
    c##r##b = _mm512_fmadd_ps(av, b1, c##r##b);                                              \
  }
#define CKE_STORE(r)                                                                         \
  if ((r) < mr) {                                                                            \
    _mm512_mask_storeu_ps(c + (r)*ldc, m0, c##r##a);                                         \
    _mm512_mask_storeu_ps(c + (r)*ldc + 16, m1, c##r##b);                                    \
  }
#define CKE_R4(X) X(0) X(1) X(2) X(3)
#define CKE_R8(X) CKE_R4(X) X(4) X(5) X(6) X(7)
#define CKE_R12(X) CKE_R8(X) X(8) X(9) X(10) X(11)
#define CKE_KERNEL(NAME, ROWS)                                                               \
  static CKG_NOINLINE void NAME(int64_t kc, const float *ap, const float *bp, float *c,     \
                                int64_t ldc, int load_c, int mr, __mmask16 m0,               \
                                __mmask16 m1) {                                              \
    int64_t k;                                                                               \
    ROWS(CKE_DECL)                                                                           \
    if (load_c) {                                                                            \
      ROWS(CKE_LOAD)                                                                         \
    }                                                                                        \
    for (k = 0; k < kc; k++) {                                                               \
      __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);                         \
      ROWS(CKE_FMA)                                                                          \
      ap += CKG_MR;                                                                          \
      bp += CKG_NR;                                                                          \
    }                                                                                        \
    ROWS(CKE_STORE)                                                                          \
  }
CKE_KERNEL(ckg_edge4, CKE_R4)
CKE_KERNEL(ckg_edge8, CKE_R8)
CKE_KERNEL(ckg_edge12, CKE_R12)

/* The driver's hook for a partial mr x nr tile at c (row stride ldc). */
static void ckg_kernel_edge(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                            int load_c, int mr, int nr) {
  __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
  __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffff : nr <= 16 ? 0 : (1u << (nr - 16)) - 1);
  if (mr <= 4) ckg_edge4(kc, ap, bp, c, ldc, load_c, mr, m0, m1);
  else if (mr <= 8) ckg_edge8(kc, ap, bp, c, ldc, load_c, mr, m0, m1);
  else ckg_edge12(kc, ap, bp, c, ldc, load_c, mr, m0, m1);
}
#define CKG_HAS_EDGE 1

#include "ck_gemm_driver.h"
