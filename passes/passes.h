/* passes/passes.h - every IR pass is `bool pass(IrModule *, CkcDiag *)`, one
 * file each, named so that --dump-after=NAME and --disable-pass=NAME find it.
 * A pass returns false only after reporting an error through diag. The
 * pipeline order lives in the driver (main.c) and is documented in
 * docs/passes.md. */
#ifndef CKC_PASSES_H
#define CKC_PASSES_H

#include <stdbool.h>

#include "ir/ir.h"

typedef bool (*CkcPassFn)(IrModule *m, CkcDiag *d);

typedef struct CkcPass {
  const char *name;    /* "inline" */
  CkcPassFn run;
  bool required;       /* cannot be disabled (later stages depend on it) */
  const char *summary; /* one line for --help and docs */
} CkcPass;

/* inline: replaces every CALL in the entry graphs by a copy of its callee,
 * prefixing parameter and value names with the instance path; drops callee
 * graphs; merges parameters that name the same tensor. */
bool pass_inline(IrModule *m, CkcDiag *d);
/* fold: evaluates nodes whose inputs are all constants (small results only),
 * and algebraic identities that are exact in IEEE arithmetic (x*1, x+0 for
 * non-signed-zero-sensitive cases is NOT applied, reshape of reshape, ...). */
bool pass_fold(IrModule *m, CkcDiag *d);
/* cse: merges nodes with the same op, inputs and attributes. */
bool pass_cse(IrModule *m, CkcDiag *d);
/* dce: removes nodes that no output depends on. */
bool pass_dce(IrModule *m, CkcDiag *d);

/* fusion: elementwise chains -> fused_ew (one loop), elementwise consumers of
 * a matmul -> fused_matmul (the epilogue); bitwise-equal to the unfused
 * program (docs/passes.md "fusion"). */
bool pass_fusion(IrModule *m, CkcDiag *d);

/* autodiff: for a module with an entry graph "loss", builds the entry graph
 * "train_step" = forward + reverse-mode backward (ir/train.h); no-op otherwise. */
bool pass_autodiff(IrModule *m, CkcDiag *d);
/* decode: for a language model forward(i32[B, T]) -> f32[B, T, V] whose ops
 * act row by row along T (plus causal attention), adds the entry graph
 * "decode"(tokens i32[B, 1], position i32[1]) -> f32[B, 1, V]; the back end
 * runs its attention nodes against a K/V cache. No-op otherwise. */
bool pass_decode(IrModule *m, CkcDiag *d);
/* optimizer: after the simplifying passes, resolves IrTrainConfig.params
 * (one per gradient output of train_step) and their weight-decay flags. */
bool pass_optimizer(IrModule *m, CkcDiag *d);

/* The registry, in pipeline order, terminated by {NULL}. */
extern const CkcPass ckc_passes[];
const CkcPass *ckc_pass_find(const char *name);

#endif
