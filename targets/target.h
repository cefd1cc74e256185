/* targets/target.h - a target is one descriptor (QBE's Target): adding a
 * target is adding a file here plus its rt-min pieces, not editing switches. */
#ifndef CKC_TARGET_H
#define CKC_TARGET_H

#include <stdbool.h>

typedef struct CkcTarget {
  const char *name;         /* "c99" */
  const char *description;  /* one line for --list-targets */
  const char *cc;           /* default compiler in the generated Makefile */
  const char *cflags;       /* "-std=c99 -O2 -Wall -Wextra -Werror" */
  const char *ldlibs;       /* "-lm" */
  bool hosted;              /* stdio, files, malloc in main.c allowed */
  /* Additive (x86 targets; zero on c99). */
  const char *rt_subdir;    /* "x86": rt-min/x86/ files shipped too (see rt_skip) */
  const char *rt_skip;      /* a file of rt_subdir not shipped ("ck_gemm_avx512.c"), or NULL */
  bool pool;                /* entries take `CkPool *pool` first; main.c owns the pool (--threads) */
  bool fast_gemm;           /* matmuls lower to ck_gemm_f32 (rt-min/x86/ck_gemm.h) on the pool */
  bool vec_math;            /* f32 loops call rt-min/x86/ck_x86_math.h (inline, vectorisable) */
} CkcTarget;

/* NULL-terminated list, in --list-targets order. */
extern const CkcTarget *const ckc_targets[];
const CkcTarget *ckc_target_find(const char *name);

#endif
