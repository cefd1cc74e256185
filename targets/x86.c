/* targets/x86.c - the x86-64 workstation targets: the c99 project plus
 * rt-min/x86 (packed AVX-512/AVX2 GEMM, deterministic pthread pool). Every
 * file is compiled for the target's ISA level; -ffp-contract=off keeps the
 * reference kernels and loops rounding exactly as on c99 (no silent FMA), so
 * only the GEMM (one fmaf chain per element) and the elementwise math of
 * loops (rt-min/x86/ck_x86_math.h, vec_math) differ from c99, by rounding.
 * -O3 turns on gcc's full loop vectoriser (at -O2 it only takes loops that
 * need no alias check or epilogue: 17 of tinygpt.c's loops instead of all),
 * and -fno-math-errno lets sqrtf compile to vsqrtps (it changes no value,
 * only whether errno is set). -fno-trapping-math (no program enables FP
 * traps) lets gcc if-convert the compares and selects of the branch-free
 * math for AVX2, which has no masked operations: without it every exp/tanh
 * loop of an x86-avx2 program ran scalar (it changes no value either; the
 * x86 test group checks that every loop vectorises). Never -ffast-math:
 * loops keep IEEE semantics. */
#include "targets/target.h"

/* AVX-512: the 12x32 asm micro-kernel; ck_gemm.c still checks the CPU. */
const CkcTarget ckc_target_x86_avx512 = {
    .name = "x86-avx512",
    .description = "x86-64-v4 (AVX-512), hosted, AVX-512 GEMM, thread pool (--threads N / CK_THREADS)",
    .cc = "cc",
    .cflags = "-std=c99 -O3 -march=x86-64-v4 -mprefer-vector-width=512 -ffp-contract=off -fno-math-errno -fno-trapping-math -pthread "
              "-Wall -Wextra -Werror",
    .ldlibs = "-lm -lpthread",
    .hosted = true,
    .rt_subdir = "x86",
    .pool = true,
    .fast_gemm = true,
    .vec_math = true,
};

/* AVX2 + FMA: the 6x16 micro-kernel only; the AVX-512 file is not shipped
 * and CK_GEMM_NO_AVX512 removes it from the dispatch. */
const CkcTarget ckc_target_x86_avx2 = {
    .name = "x86-avx2",
    .description = "x86-64-v3 (AVX2+FMA), hosted, AVX2 GEMM, thread pool (--threads N / CK_THREADS)",
    .cc = "cc",
    .cflags = "-std=c99 -O3 -march=x86-64-v3 -ffp-contract=off -fno-math-errno -fno-trapping-math -pthread -DCK_GEMM_NO_AVX512 "
              "-Wall -Wextra -Werror",
    .ldlibs = "-lm -lpthread",
    .hosted = true,
    .rt_subdir = "x86",
    .rt_skip = "ck_gemm_avx512.c",
    .pool = true,
    .fast_gemm = true,
    .vec_math = true,
};
