/* ir/interp.h - the float64 reference interpreter of the graph IR.
 *
 * An oracle that shares no code with the C kernels (rt-min) or the back end:
 * it walks a graph node by node and computes every float in double,
 * whatever the declared dtype (f32 nodes are NOT rounded to float), every
 * integer exactly. Tests use it to check the autodiff pass against central
 * finite differences (test-suite/unit/check_gradcheck.c) and to cross-check
 * the float32 kernels' forward semantics (test-suite/unit/check_interp.c).
 *
 * Storage: a float tensor (f32, f64) keeps its values in `f` (double), an
 * integer or bool tensor (i32, u8, bool) in `i` (int32_t; u8 0..255, bool
 * 0/1); exactly one of the two is non-NULL (both NULL only when numel is 0
 * and nothing was allocated). Data is dense, row-major.
 *
 * Semantics are the ones ops.def documents per row (PyTorch's), including
 * the *_bwd rows; see docs/ir.md "The reference interpreter". A run never
 * crashes on a bad graph or bad data: it returns false with a one-line
 * message naming the node (an op the interpreter does not know, a missing
 * parameter, an index out of range, an integer division by zero...). */
#ifndef CKC_IR_INTERP_H
#define CKC_IR_INTERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

typedef struct IrTensor {
  CkDType dtype;  /* the declared dtype */
  CkShape shape;
  int64_t numel;
  double *f;      /* f32, f64 */
  int32_t *i;     /* i32, u8, bool */
} IrTensor;

/* Returns the value of the parameter with this full dotted name, or NULL if
 * there is none (the run then fails naming it). Its dtype class (float or
 * integer) and shape must match the PARAM node. */
typedef const IrTensor *(*IrInterpParamFn)(void *ctx, const char *name);

/* A zero-filled tensor in the arena (storage chosen by dtype). */
IrTensor ir_tensor_new(CkcArena *a, CkDType dt, const CkShape *s);
/* Element k as a double (either storage). */
double ir_tensor_get(const IrTensor *t, int64_t k);

/* Whether the interpreter implements op (false for an ops.def row added
 * after it; running such a node fails with a message naming the op). */
bool ir_interp_supports(IrOp op);

/* Evaluates graph g. inputs[k] is the value of g->inputs.items[k] (same
 * dtype and shape); parameters come from params(ctx, name) (params may be
 * NULL when the graph has none). CALL nodes are evaluated recursively, their
 * callee's parameters looked up as "<prefix>.<name>", so a graph need not be
 * inlined. outputs has g->outputs.len slots; their data lives in the arena a
 * (as do all intermediates: use a scratch arena for repeated runs). On
 * failure returns false with a message in err (errlen bytes, may be 0). */
bool ir_interp_run(const IrGraph *g, CkcArena *a, const IrTensor *inputs, IrInterpParamFn params,
                   void *ctx, IrTensor *outputs, char *err, size_t errlen);

#endif
