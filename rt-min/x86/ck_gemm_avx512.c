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

/* The whole micro-kernel is inline asm: gcc 12 compiles the intrinsic
 * version (24 accumulators, 2 B vectors, broadcasts) with extra address
 * arithmetic and, once inlined, spills; at 65-70% of the FMA peak it was the
 * bottleneck. This fixed stream keeps the accumulators in zmm0-23, B in
 * zmm30-31, and rotates the A broadcasts through zmm24-27; per k step it
 * issues 2 vector loads, 12 broadcast loads and 24 FMAs. Row r of the tile
 * lives in zmm(2r) (columns 0-15) and zmm(2r+1) (columns 16-31).
 * c = (load_c ? c : 0) + sum_k ap[k,:]^T bp[k,:], one fma per (element, k)
 * in k order. kc >= 1. */
static CKG_NOINLINE void ckg_kernel(int64_t kc, const float *ap, const float *bp, float *c,
                                    int64_t ldc, int load_c) {
  float *cp = c, *cl = c; /* two outputs: gcc may not merge them */
  int64_t ldb = ldc * (int64_t)sizeof(float);
  __asm__ volatile(
      "test %[ld], %[ld]\n\t"
      "jz 3f\n\t"
      "vmovups (%[cl]), %%zmm0\n\t"
      "vmovups 64(%[cl]), %%zmm1\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm2\n\t"
      "vmovups 64(%[cl]), %%zmm3\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm4\n\t"
      "vmovups 64(%[cl]), %%zmm5\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm6\n\t"
      "vmovups 64(%[cl]), %%zmm7\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm8\n\t"
      "vmovups 64(%[cl]), %%zmm9\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm10\n\t"
      "vmovups 64(%[cl]), %%zmm11\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm12\n\t"
      "vmovups 64(%[cl]), %%zmm13\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm14\n\t"
      "vmovups 64(%[cl]), %%zmm15\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm16\n\t"
      "vmovups 64(%[cl]), %%zmm17\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm18\n\t"
      "vmovups 64(%[cl]), %%zmm19\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm20\n\t"
      "vmovups 64(%[cl]), %%zmm21\n\t"
      "add %[ldb], %[cl]\n\t"
      "vmovups (%[cl]), %%zmm22\n\t"
      "vmovups 64(%[cl]), %%zmm23\n\t"
      "add %[ldb], %[cl]\n\t"
      "jmp 4f\n\t"
      "3:\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
      "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
      "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
      "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
      "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
      "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
      "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
      "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
      "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
      "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
      "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
      "4:\n\t"
      "1:\n\t"
      "vmovaps (%[bp]), %%zmm30\n\t"
      "vmovaps 64(%[bp]), %%zmm31\n\t"
      "vbroadcastss 0(%[ap]), %%zmm24\n\t"
      "vfmadd231ps %%zmm30, %%zmm24, %%zmm0\n\t"
      "vfmadd231ps %%zmm31, %%zmm24, %%zmm1\n\t"
      "vbroadcastss 4(%[ap]), %%zmm25\n\t"
      "vfmadd231ps %%zmm30, %%zmm25, %%zmm2\n\t"
      "vfmadd231ps %%zmm31, %%zmm25, %%zmm3\n\t"
      "vbroadcastss 8(%[ap]), %%zmm26\n\t"
      "vfmadd231ps %%zmm30, %%zmm26, %%zmm4\n\t"
      "vfmadd231ps %%zmm31, %%zmm26, %%zmm5\n\t"
      "vbroadcastss 12(%[ap]), %%zmm27\n\t"
      "vfmadd231ps %%zmm30, %%zmm27, %%zmm6\n\t"
      "vfmadd231ps %%zmm31, %%zmm27, %%zmm7\n\t"
      "vbroadcastss 16(%[ap]), %%zmm24\n\t"
      "vfmadd231ps %%zmm30, %%zmm24, %%zmm8\n\t"
      "vfmadd231ps %%zmm31, %%zmm24, %%zmm9\n\t"
      "vbroadcastss 20(%[ap]), %%zmm25\n\t"
      "vfmadd231ps %%zmm30, %%zmm25, %%zmm10\n\t"
      "vfmadd231ps %%zmm31, %%zmm25, %%zmm11\n\t"
      "vbroadcastss 24(%[ap]), %%zmm26\n\t"
      "vfmadd231ps %%zmm30, %%zmm26, %%zmm12\n\t"
      "vfmadd231ps %%zmm31, %%zmm26, %%zmm13\n\t"
      "vbroadcastss 28(%[ap]), %%zmm27\n\t"
      "vfmadd231ps %%zmm30, %%zmm27, %%zmm14\n\t"
      "vfmadd231ps %%zmm31, %%zmm27, %%zmm15\n\t"
      "vbroadcastss 32(%[ap]), %%zmm24\n\t"
      "vfmadd231ps %%zmm30, %%zmm24, %%zmm16\n\t"
      "vfmadd231ps %%zmm31, %%zmm24, %%zmm17\n\t"
      "vbroadcastss 36(%[ap]), %%zmm25\n\t"
      "vfmadd231ps %%zmm30, %%zmm25, %%zmm18\n\t"
      "vfmadd231ps %%zmm31, %%zmm25, %%zmm19\n\t"
      "vbroadcastss 40(%[ap]), %%zmm26\n\t"
      "vfmadd231ps %%zmm30, %%zmm26, %%zmm20\n\t"
      "vfmadd231ps %%zmm31, %%zmm26, %%zmm21\n\t"
      "vbroadcastss 44(%[ap]), %%zmm27\n\t"
      "vfmadd231ps %%zmm30, %%zmm27, %%zmm22\n\t"
      "vfmadd231ps %%zmm31, %%zmm27, %%zmm23\n\t"
      "add $48, %[ap]\n\t"
      "sub $-128, %[bp]\n\t"
      "dec %[kc]\n\t"
      "jnz 1b\n\t"
      "vmovups %%zmm0, (%[cp])\n\t"
      "vmovups %%zmm1, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm2, (%[cp])\n\t"
      "vmovups %%zmm3, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm4, (%[cp])\n\t"
      "vmovups %%zmm5, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm6, (%[cp])\n\t"
      "vmovups %%zmm7, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm8, (%[cp])\n\t"
      "vmovups %%zmm9, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm10, (%[cp])\n\t"
      "vmovups %%zmm11, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm12, (%[cp])\n\t"
      "vmovups %%zmm13, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm14, (%[cp])\n\t"
      "vmovups %%zmm15, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm16, (%[cp])\n\t"
      "vmovups %%zmm17, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm18, (%[cp])\n\t"
      "vmovups %%zmm19, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm20, (%[cp])\n\t"
      "vmovups %%zmm21, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vmovups %%zmm22, (%[cp])\n\t"
      "vmovups %%zmm23, 64(%[cp])\n\t"
      "add %[ldb], %[cp]\n\t"
      "vzeroupper\n\t"
      : [ap] "+r"(ap), [bp] "+r"(bp), [kc] "+r"(kc), [cp] "+r"(cp), [cl] "+r"(cl)
      : [ldb] "r"(ldb), [ld] "r"(load_c)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm30", "xmm31", "cc", "memory");
}

#include "ck_gemm_driver.h"
