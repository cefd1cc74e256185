/* ir/ir_impl.h - private to ir/: the shape-rule prototypes named by ops.def,
 * the per-op attribute schema shared by the builder (ir.c) and the verifier
 * (verify.c), and the attribute normalisation step. Nothing outside ir/
 * includes this header: other stages use ir/ir.h only. */
#ifndef CKC_IR_IMPL_H
#define CKC_IR_IMPL_H

#include "ir/ir.h"

/* One prototype per distinct shape rule (ops.def names them; duplicates are
 * harmless redeclarations). */
#define X(E, name, mn, mx, flags, infer) \
  bool infer(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err);
#include "ir/ops.def"
#undef X

/* An attribute an op accepts. ints_len > 0 fixes the length of an INTS
 * attribute (conv2d stride: 2). */
typedef struct IrAttrSpec {
  const char *key;
  IrAttrKind kind;
  bool required;
  int ints_len;
} IrAttrSpec;

/* The attributes of op (count in *n); the list is closed: any other key is
 * an internal error in the builder and a verifier failure. */
const IrAttrSpec *ir_op_attr_spec(IrOp op, int *n);
const IrAttrSpec *ir_op_find_attr_spec(IrOp op, const char *key);

/* Checks attrs against the schema of op. Writes a reason into why and
 * returns false on the first problem (missing/unknown/wrong kind). */
bool ir_attrs_check(IrOp op, const IrAttr *attrs, int nattrs, char *why, size_t whylen);

/* Formats "f32[8,64]" of a node (buffer of at least IR_TYPE_STR_LEN). */
#define IR_TYPE_STR_LEN 160
const char *ir_node_type_str(const IrNode *n, char *buf);

/* Fills err (id + printf message); returns false for `return ir_fail(...)`. */
bool ir_fail(IrErr *err, const char *id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
