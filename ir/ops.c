/* ir/ops.c - the op table built from ops.def (one X-macro row per op, so an
 * op cannot be half-registered), op-name lookup, dtype helpers, and the
 * attribute schema of every op (the keys ops.def lists in its comments). */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "ir/ir_impl.h"

/* ---- the op table ----------------------------------------------------------- */

const IrOpInfo ir_op_info[IR_OP_COUNT] = {
#define X(E, nm, mn, mx, fl, inf) [IR_OP_##E] = {#nm, mn, mx, fl, inf},
#include "ir/ops.def"
#undef X
};

/* Counting the rows a second way catches a row that the enum and the table
 * would disagree on (ggml's static_assert on GGML_OP_COUNT). */
enum {
#define X(E, nm, mn, mx, fl, inf) +1
  IR_OPS_DEF_ROWS = 0
#include "ir/ops.def"
#undef X
};
static_assert((int)IR_OPS_DEF_ROWS == (int)IR_OP_COUNT, "ops.def rows and IR_OP_COUNT disagree");
static_assert(sizeof ir_op_info / sizeof ir_op_info[0] == IR_OP_COUNT, "op table size");

/* Op names are the ones printed in the text IR and JSON. */
const char *ir_op_name(IrOp op) {
  if ((unsigned)op >= IR_OP_COUNT) return "?";
  return ir_op_info[op].name;
}

/* Linear search: 50 ops, used only by tools and tests. */
bool ir_op_from_name(const char *name, IrOp *out) {
  for (int i = 0; i < IR_OP_COUNT; i++) {
    if (strcmp(ir_op_info[i].name, name) == 0) {
      if (out) *out = (IrOp)i;
      return true;
    }
  }
  return false;
}

/* ---- dtypes ----------------------------------------------------------------- */

static const struct {
  const char *name, *ctype;
  size_t size;
  bool is_float;
} ck_dtypes[CK_DT_COUNT] = {
    [CK_DT_F32] = {"f32", "float", 4, true},
    [CK_DT_F64] = {"f64", "double", 8, true},
    [CK_DT_I32] = {"i32", "int32_t", 4, false},
    [CK_DT_U8] = {"u8", "uint8_t", 1, false},
    /* bool is one byte 0/1 so that generated C needs no <stdbool.h> tricks */
    [CK_DT_BOOL] = {"bool", "uint8_t", 1, false},
};

const char *ck_dtype_name(CkDType t) {
  return (unsigned)t < CK_DT_COUNT ? ck_dtypes[t].name : "?";
}

bool ck_dtype_from_name(const char *s, CkDType *out) {
  for (int i = 0; i < CK_DT_COUNT; i++) {
    if (s && strcmp(ck_dtypes[i].name, s) == 0) {
      if (out) *out = (CkDType)i;
      return true;
    }
  }
  return false;
}

size_t ck_dtype_size(CkDType t) { return (unsigned)t < CK_DT_COUNT ? ck_dtypes[t].size : 0; }
bool ck_dtype_is_float(CkDType t) { return (unsigned)t < CK_DT_COUNT && ck_dtypes[t].is_float; }
const char *ck_dtype_ctype(CkDType t) {
  return (unsigned)t < CK_DT_COUNT ? ck_dtypes[t].ctype : "?";
}

/* ---- attribute schema ----------------------------------------------------------
 * Mirrors the comments in ops.def. Optional attributes have documented
 * defaults (docs/ir.md); the builder does not materialise them so the printed
 * IR stays short. */

#define A_INT(k, req) {k, IR_ATTR_INT, req, 0}
#define A_FLT(k, req) {k, IR_ATTR_FLOAT, req, 0}
#define A_STR(k, req) {k, IR_ATTR_STR, req, 0}
#define A_INTS(k, req, len) {k, IR_ATTR_INTS, req, len}

static const IrAttrSpec spec_input[] = {A_INT("index", true)};
static const IrAttrSpec spec_param[] = {
    A_STR("init", false), A_FLT("mean", false),   A_FLT("std", false),
    A_FLT("low", false),  A_FLT("high", false),   A_FLT("value", false),
    A_INT("fan_in", false), A_INT("fan_out", false), A_INT("frozen", false)};
static const IrAttrSpec spec_const[] = {A_FLT("value", false)};
static const IrAttrSpec spec_gelu[] = {A_STR("approximate", false)};
static const IrAttrSpec spec_cast[] = {A_STR("to", true)};
static const IrAttrSpec spec_matmul[] = {A_INT("transpose_a", false), A_INT("transpose_b", false)};
static const IrAttrSpec spec_permute[] = {A_INTS("perm", true, 0)};
static const IrAttrSpec spec_shape[] = {A_INTS("shape", true, 0)};
static const IrAttrSpec spec_slice[] = {A_INT("axis", true), A_INT("start", true),
                                        A_INT("end", true), A_INT("step", false)};
static const IrAttrSpec spec_concat[] = {A_INT("axis", true)};
static const IrAttrSpec spec_reduce[] = {A_INTS("axes", false, 0), A_INT("keepdim", false)};
static const IrAttrSpec spec_argmax[] = {A_INT("axis", false), A_INT("keepdim", false)};
static const IrAttrSpec spec_axis[] = {A_INT("axis", false)};
static const IrAttrSpec spec_norm[] = {A_FLT("eps", false)};
static const IrAttrSpec spec_conv[] = {A_INTS("stride", false, 2), A_INTS("padding", false, 2),
                                       A_INT("groups", false)};
static const IrAttrSpec spec_pool[] = {A_INTS("kernel", true, 2), A_INTS("stride", false, 2),
                                       A_INTS("padding", false, 2)};
static const IrAttrSpec spec_attention[] = {A_INT("causal", false), A_FLT("scale", false)};
/* training ops (passes/autodiff.c) */
static const IrAttrSpec spec_xent[] = {A_INT("ignore_index", false), A_FLT("label_smoothing", false)};
static const IrAttrSpec spec_axis_req[] = {A_INT("axis", true)};
static const IrAttrSpec spec_max_bwd[] = {A_INT("axis", true), A_INT("keepdim", false)};
static const IrAttrSpec spec_embedding_bwd[] = {A_INT("num", true)};
static const IrAttrSpec spec_conv_bwd_x[] = {A_INTS("stride", false, 2), A_INTS("padding", false, 2),
                                             A_INT("groups", false), A_INTS("in_shape", true, 4)};
static const IrAttrSpec spec_conv_bwd_w[] = {A_INTS("stride", false, 2), A_INTS("padding", false, 2),
                                             A_INT("groups", false), A_INTS("w_shape", true, 4)};
static const IrAttrSpec spec_avgpool_bwd[] = {A_INTS("kernel", true, 2), A_INTS("stride", false, 2),
                                              A_INTS("padding", false, 2), A_INTS("in_shape", true, 4)};
static const IrAttrSpec spec_slice_bwd[] = {A_INT("axis", true), A_INT("start", true),
                                            A_INT("step", true), A_INT("size", true)};
/* fused ops (passes/fusion.c) */
static const IrAttrSpec spec_fused_ew[] = {A_STR("body", true)};
static const IrAttrSpec spec_fused_matmul[] = {A_INT("transpose_a", false), A_INT("transpose_b", false),
                                               A_STR("body", true)};

#define SPEC(arr) *n = (int)(sizeof arr / sizeof arr[0]); return arr

/* The schema of each op; ops without attributes return an empty list. */
const IrAttrSpec *ir_op_attr_spec(IrOp op, int *n) {
  switch (op) {
  case IR_OP_INPUT: SPEC(spec_input);
  case IR_OP_PARAM: SPEC(spec_param);
  case IR_OP_CONST: SPEC(spec_const);
  case IR_OP_GELU: SPEC(spec_gelu);
  case IR_OP_CAST: SPEC(spec_cast);
  case IR_OP_MATMUL: SPEC(spec_matmul);
  case IR_OP_PERMUTE: SPEC(spec_permute);
  case IR_OP_RESHAPE:
  case IR_OP_BROADCAST: SPEC(spec_shape);
  case IR_OP_SLICE: SPEC(spec_slice);
  case IR_OP_CONCAT: SPEC(spec_concat);
  case IR_OP_SUM:
  case IR_OP_MEAN:
  case IR_OP_MAX: SPEC(spec_reduce);
  case IR_OP_ARGMAX: SPEC(spec_argmax);
  case IR_OP_SOFTMAX:
  case IR_OP_LOG_SOFTMAX: SPEC(spec_axis);
  case IR_OP_LAYERNORM:
  case IR_OP_RMSNORM: SPEC(spec_norm);
  case IR_OP_CONV2D: SPEC(spec_conv);
  case IR_OP_MAXPOOL2D:
  case IR_OP_AVGPOOL2D: SPEC(spec_pool);
  case IR_OP_ATTENTION: SPEC(spec_attention);
  case IR_OP_CROSS_ENTROPY:
  case IR_OP_CROSS_ENTROPY_BWD: SPEC(spec_xent);
  case IR_OP_SOFTMAX_BWD:
  case IR_OP_LOG_SOFTMAX_BWD: SPEC(spec_axis_req);
  case IR_OP_MAX_BWD: SPEC(spec_max_bwd);
  case IR_OP_LAYERNORM_BWD_X:
  case IR_OP_LAYERNORM_BWD_W:
  case IR_OP_RMSNORM_BWD_X:
  case IR_OP_RMSNORM_BWD_W: SPEC(spec_norm);
  case IR_OP_EMBEDDING_BWD: SPEC(spec_embedding_bwd);
  case IR_OP_CONV2D_BWD_X: SPEC(spec_conv_bwd_x);
  case IR_OP_CONV2D_BWD_W: SPEC(spec_conv_bwd_w);
  case IR_OP_MAXPOOL2D_BWD: SPEC(spec_pool);
  case IR_OP_AVGPOOL2D_BWD: SPEC(spec_avgpool_bwd);
  case IR_OP_ATTENTION_BWD_Q:
  case IR_OP_ATTENTION_BWD_K:
  case IR_OP_ATTENTION_BWD_V: SPEC(spec_attention);
  case IR_OP_SLICE_BWD: SPEC(spec_slice_bwd);
  case IR_OP_FUSED_EW: SPEC(spec_fused_ew);
  case IR_OP_FUSED_MATMUL: SPEC(spec_fused_matmul);
  default: *n = 0; return NULL;
  }
}

const IrAttrSpec *ir_op_find_attr_spec(IrOp op, const char *key) {
  int n;
  const IrAttrSpec *s = ir_op_attr_spec(op, &n);
  for (int i = 0; i < n; i++)
    if (strcmp(s[i].key, key) == 0) return &s[i];
  return NULL;
}

static const char *attr_kind_name(IrAttrKind k) {
  switch (k) {
  case IR_ATTR_INT: return "int";
  case IR_ATTR_FLOAT: return "float";
  case IR_ATTR_INTS: return "ints";
  case IR_ATTR_STR: return "str";
  }
  return "?";
}

/* Attributes come from sema, never from the user directly, so a schema
 * violation is a ckc bug: the caller turns `why` into an ICE or a verifier
 * message. An INT where a FLOAT is expected is accepted (eps=1), and so is
 * an INT for a pair (stride=2 means (2,2)); the builder converts both. */
bool ir_attrs_check(IrOp op, const IrAttr *attrs, int nattrs, char *why, size_t whylen) {
  int n;
  const IrAttrSpec *spec = ir_op_attr_spec(op, &n);
  for (int i = 0; i < nattrs; i++) {
    const IrAttr *a = &attrs[i];
    if (!a->key) {
      snprintf(why, whylen, "%s: attribute without a key", ir_op_name(op));
      return false;
    }
    for (int j = 0; j < i; j++) {
      if (strcmp(attrs[j].key, a->key) == 0) {
        snprintf(why, whylen, "%s: attribute '%s' given twice", ir_op_name(op), a->key);
        return false;
      }
    }
    const IrAttrSpec *s = ir_op_find_attr_spec(op, a->key);
    if (!s) {
      snprintf(why, whylen, "%s: unknown attribute '%s'", ir_op_name(op), a->key);
      return false;
    }
    bool ok = a->kind == s->kind || (s->kind == IR_ATTR_FLOAT && a->kind == IR_ATTR_INT) ||
              (s->kind == IR_ATTR_INTS && s->ints_len == 2 && a->kind == IR_ATTR_INT);
    if (!ok) {
      snprintf(why, whylen, "%s: attribute '%s' must be %s, got %s", ir_op_name(op), a->key,
               attr_kind_name(s->kind), attr_kind_name(a->kind));
      return false;
    }
    if (a->kind == IR_ATTR_STR && !a->s) {
      snprintf(why, whylen, "%s: attribute '%s' has no string", ir_op_name(op), a->key);
      return false;
    }
    if (a->kind == IR_ATTR_INTS && s->kind == IR_ATTR_INTS) {
      if (a->nints < 0 || (a->nints > 0 && !a->ints) || a->nints > CK_MAX_RANK) {
        snprintf(why, whylen, "%s: attribute '%s' has a bad list", ir_op_name(op), a->key);
        return false;
      }
      if (s->ints_len > 0 && a->nints != s->ints_len) {
        snprintf(why, whylen, "%s: attribute '%s' needs %d values, got %d", ir_op_name(op),
                 a->key, s->ints_len, a->nints);
        return false;
      }
    }
  }
  for (int j = 0; j < n; j++) {
    if (!spec[j].required) continue;
    bool found = false;
    for (int i = 0; i < nattrs && !found; i++) found = strcmp(attrs[i].key, spec[j].key) == 0;
    if (!found) {
      snprintf(why, whylen, "%s: missing attribute '%s'", ir_op_name(op), spec[j].key);
      return false;
    }
  }
  return true;
}
