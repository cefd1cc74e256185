/* lower/lower_x86.h - what the x86 lowering files share (lower_x86.c, the
 * kernel choices and folds; lower_x86_heads.c, the attention-heads
 * rewrite). The target-facing entry, lower_x86_kernels, is in lower.h. */
#ifndef CKC_LOWER_X86_H
#define CKC_LOWER_X86_H

#include "lower/lower.h"

/* Removes step si from p's step list (the later steps move up). */
void lower_x86_drop(LowerProgram *p, int si);

/* Attention steps read q, k, v (and write out, dq, dk, dv) in place with
 * head strides; the head split/merge copies nothing else reads go. */
void lower_x86_heads(LowerProgram *p);

#endif
