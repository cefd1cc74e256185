/* lower/fused.h - lowering of the fused ops (passes/fusion.c): one loop
 * nest per fused_ew, and for fused_matmul the epilogue loop that follows
 * the matmul kernel call over its product. Called from lower/lower.c. */
#ifndef CKC_LOWER_FUSED_H
#define CKC_LOWER_FUSED_H

#include "lower/lower.h"

/* The broadcast-collapsing loop-nest builder of lower/lower.c, shared. */
void lower_collapse(LowerStep *s, const CkShape *out, int nops, const CkShape *const *ops, const int64_t *unit);

/* fused_ew(x...) -> one LOOP step computing the body per element into out;
 * fused_matmul -> the epilogue LOOP step, in place over out (its $0), to be
 * appended right after the matmul kernel step. map: node id -> buffer. */
void lower_fused_loop(LowerProgram *p, CkcArena *a, const IrNode *n, LowerBuf *out, LowerBuf *const *map);

#endif
