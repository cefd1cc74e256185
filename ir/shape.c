/* ir/shape.c - the shape rules named in ops.def: given an op's inputs and
 * attributes, the result's dtype and static shape, or a user-facing error.
 *
 * Every message names the op, spells out the operand types with ck_type_str
 * and says what differed, e.g.
 *   matmul: inner dimensions differ: f32[8,64,128] @ f32[256,128] (128 vs 256)
 * Ids E0310..E0349 are listed in docs/errors.md. Attribute presence and kinds
 * were checked by the builder (ir_attrs_check); attribute *values* that a
 * user could have written (an axis, a padding) are checked here. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ir/fused.h"
#include "ir/ir_impl.h"

bool ir_fail(IrErr *err, const char *id, const char *fmt, ...) {
  if (!err) return false;
  err->id = id;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return false;
}

/* Type strings of up to three operands at once. */
typedef struct TypeStrs {
  char a[IR_TYPE_STR_LEN], b[IR_TYPE_STR_LEN], c[IR_TYPE_STR_LEN];
} TypeStrs;

#define OPN(n) ir_op_name((n)->op)
#define TY(n, buf) ir_node_type_str((n), (buf))

/* Infix spelling of binary ops in messages ("f32[4] + i32[4]"); ops without
 * an operator are joined with a comma. */
static const char *op_sym(IrOp op) {
  switch (op) {
  case IR_OP_ADD: return "+";
  case IR_OP_SUB: return "-";
  case IR_OP_MUL: return "*";
  case IR_OP_DIV: return "/";
  case IR_OP_LT: return "<";
  case IR_OP_LE: return "<=";
  case IR_OP_GT: return ">";
  case IR_OP_GE: return ">=";
  case IR_OP_EQ: return "==";
  case IR_OP_NE: return "!=";
  case IR_OP_MATMUL: return "@";
  default: return ",";
  }
}

/* "a + b" or "a, b" */
static const char *pair_str(const IrNode *n, char *out, size_t len) {
  TypeStrs t;
  const char *sym = op_sym(n->op);
  snprintf(out, len, "%s%s%s %s", TY(n->in[0], t.a), strcmp(sym, ",") == 0 ? "" : " ", sym,
           TY(n->in[1], t.b));
  return out;
}

/* NumPy broadcasting that remembers the first conflict, counted from the
 * right as NumPy aligns (axis -1 is the last). */
static bool bcast_where(const CkShape *a, const CkShape *b, CkShape *out, int *axis, int64_t *da,
                        int64_t *db) {
  CkShape r;
  memset(&r, 0, sizeof r);
  r.rank = a->rank > b->rank ? a->rank : b->rank;
  for (int k = 1; k <= r.rank; k++) {
    int64_t x = k <= a->rank ? a->dims[a->rank - k] : 1;
    int64_t y = k <= b->rank ? b->dims[b->rank - k] : 1;
    if (x == y || y == 1) r.dims[r.rank - k] = x;
    else if (x == 1) r.dims[r.rank - k] = y;
    else {
      *axis = -k;
      *da = x;
      *db = y;
      return false;
    }
  }
  *out = r;
  return true;
}

static bool is_bool(CkDType t) { return t == CK_DT_BOOL; }

/* ---- leaves and calls --------------------------------------------------------------- */

/* Leaves carry their type from the builder. */
bool ir_infer_leaf(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  (void)err;
  *dtype = n->dtype;
  *shape = n->shape;
  return true;
}

/* A call has its callee's (single) result type. */
bool ir_infer_call(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  if (!n->callee || n->callee->outputs.len < 1 || !n->callee->outputs.items[0])
    return ir_fail(err, NULL, "call: callee missing or without an output");
  const IrNode *o = n->callee->outputs.items[0];
  *dtype = o->dtype;
  *shape = o->shape;
  return true;
}

/* ---- elementwise ---------------------------------------------------------------------- */

/* Binary arithmetic: equal dtypes (no implicit promotion), no arithmetic on
 * bool, NumPy broadcasting. */
bool ir_infer_broadcast(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char p[2 * IR_TYPE_STR_LEN + 8];
  const IrNode *a = n->in[0], *b = n->in[1];
  if (a->dtype != b->dtype)
    return ir_fail(err, "E0310", "%s: dtypes differ: %s", OPN(n), pair_str(n, p, sizeof p));
  if (is_bool(a->dtype))
    return ir_fail(err, "E0331", "%s: arithmetic on bool: %s", OPN(n), pair_str(n, p, sizeof p));
  int axis;
  int64_t da, db;
  if (!bcast_where(&a->shape, &b->shape, shape, &axis, &da, &db))
    return ir_fail(err, "E0311", "%s: shapes do not broadcast: %s (axis %d: %lld vs %lld)", OPN(n),
                   pair_str(n, p, sizeof p), axis, (long long)da, (long long)db);
  *dtype = a->dtype;
  return true;
}

/* neg, abs: any numeric dtype. */
bool ir_infer_unary(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  if (is_bool(n->in[0]->dtype))
    return ir_fail(err, "E0331", "%s: arithmetic on bool: %s", OPN(n), TY(n->in[0], t));
  *dtype = n->in[0]->dtype;
  *shape = n->in[0]->shape;
  return true;
}

/* exp, log, tanh, ...: only defined on floats (cast first). */
bool ir_infer_unary_float(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  if (!ck_dtype_is_float(n->in[0]->dtype))
    return ir_fail(err, "E0312", "%s: requires a float dtype, got %s", OPN(n), TY(n->in[0], t));
  if (n->op == IR_OP_GELU) {
    const char *ap = ir_get_str(n, "approximate", "none");
    if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
      return ir_fail(err, "E0332", "gelu: approximate must be \"none\" or \"tanh\", got \"%s\"", ap);
  }
  *dtype = n->in[0]->dtype;
  *shape = n->in[0]->shape;
  return true;
}

/* cast(x, to): any dtype to any dtype, same shape. */
bool ir_infer_cast(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  const char *to = ir_get_str(n, "to", "");
  if (!ck_dtype_from_name(to, dtype))
    return ir_fail(err, "E0332", "cast: unknown dtype \"%s\" (expected f32, f64, i32, u8 or bool)",
                   to);
  *shape = n->in[0]->shape;
  return true;
}

/* Comparisons: equal dtypes, broadcasting, bool result. */
bool ir_infer_compare(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char p[2 * IR_TYPE_STR_LEN + 8];
  const IrNode *a = n->in[0], *b = n->in[1];
  if (a->dtype != b->dtype)
    return ir_fail(err, "E0310", "%s: dtypes differ: %s", OPN(n), pair_str(n, p, sizeof p));
  int axis;
  int64_t da, db;
  if (!bcast_where(&a->shape, &b->shape, shape, &axis, &da, &db))
    return ir_fail(err, "E0311", "%s: shapes do not broadcast: %s (axis %d: %lld vs %lld)", OPN(n),
                   pair_str(n, p, sizeof p), axis, (long long)da, (long long)db);
  *dtype = CK_DT_BOOL;
  return true;
}

/* where(cond, a, b): cond is bool, a and b share a dtype, all three broadcast. */
bool ir_infer_where(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *c = n->in[0], *a = n->in[1], *b = n->in[2];
  TY(c, t.a);
  TY(a, t.b);
  TY(b, t.c);
  if (!is_bool(c->dtype))
    return ir_fail(err, "E0313", "where: condition must be bool, got %s", t.a);
  if (a->dtype != b->dtype)
    return ir_fail(err, "E0310", "where: dtypes differ: %s, %s", t.b, t.c);
  CkShape ca, all;
  int axis;
  int64_t x, y;
  if (!bcast_where(&c->shape, &a->shape, &ca, &axis, &x, &y) ||
      !bcast_where(&ca, &b->shape, &all, &axis, &x, &y))
    return ir_fail(err, "E0311", "where: shapes do not broadcast: %s, %s, %s (axis %d: %lld vs %lld)",
                   t.a, t.b, t.c, axis, (long long)x, (long long)y);
  *dtype = a->dtype;
  *shape = all;
  return true;
}

/* ---- matmul ------------------------------------------------------------------------------- */

/* matmul: [..., M, K] @ [..., K, N] -> [..., M, N] after the optional
 * transposes of the last two axes; batch dims broadcast (torch.matmul).
 * Vectors (rank 1) are not promoted as torch does: the user reshapes, so
 * that the result rank is always visible in the source. */
bool ir_infer_matmul(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char p[2 * IR_TYPE_STR_LEN + 8];
  const IrNode *a = n->in[0], *b = n->in[1];
  bool ta = ir_get_int(n, "transpose_a", 0) != 0, tb = ir_get_int(n, "transpose_b", 0) != 0;
  const char *with = ta && tb ? " with transpose_a, transpose_b"
                     : ta     ? " with transpose_a"
                     : tb     ? " with transpose_b"
                              : "";
  pair_str(n, p, sizeof p);
  if (a->dtype != b->dtype) return ir_fail(err, "E0310", "matmul: dtypes differ: %s", p);
  if (is_bool(a->dtype)) return ir_fail(err, "E0331", "matmul: arithmetic on bool: %s", p);
  if (a->shape.rank < 2 || b->shape.rank < 2)
    return ir_fail(err, "E0314",
                   "matmul: operands need rank >= 2 (reshape vectors to matrices): %s", p);
  int ra = a->shape.rank, rb = b->shape.rank;
  int64_t m = a->shape.dims[ra - (ta ? 1 : 2)], ka = a->shape.dims[ra - (ta ? 2 : 1)];
  int64_t kb = b->shape.dims[rb - (tb ? 1 : 2)], nn = b->shape.dims[rb - (tb ? 2 : 1)];
  if (ka != kb)
    return ir_fail(err, "E0315", "matmul: inner dimensions differ: %s%s (%lld vs %lld)", p, with,
                   (long long)ka, (long long)kb);
  CkShape ba = a->shape, bb = b->shape, bo;
  ba.rank -= 2;
  bb.rank -= 2;
  int axis;
  int64_t da, db;
  if (!bcast_where(&ba, &bb, &bo, &axis, &da, &db))
    return ir_fail(err, "E0316", "matmul: batch dimensions do not broadcast: %s (axis %d: %lld vs %lld)",
                   p, axis - 2, (long long)da, (long long)db);
  if (bo.rank + 2 > CK_MAX_RANK)
    return ir_fail(err, "E0333", "matmul: result rank exceeds %d: %s", CK_MAX_RANK, p);
  bo.dims[bo.rank++] = m;
  bo.dims[bo.rank++] = nn;
  *dtype = a->dtype;
  *shape = bo;
  return true;
}

/* ---- data movement --------------------------------------------------------------------------- */

static void ints_str(const int64_t *v, int n, char *out, size_t len) {
  size_t used = 0;
  int k = snprintf(out, len, "(");
  used = (size_t)k;
  for (int i = 0; i < n && used < len; i++) {
    k = snprintf(out + used, len - used, "%s%lld", i ? "," : "", (long long)v[i]);
    used += (size_t)k;
  }
  if (used < len) snprintf(out + used, len - used, ")");
}

/* permute(x, perm): out[i] = x[perm[i]]; perm is a permutation of 0..rank-1. */
bool ir_infer_permute(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN], ps[128];
  int np;
  const int64_t *perm = ir_get_ints(n, "perm", &np);
  const IrNode *x = n->in[0];
  int r = x->shape.rank;
  bool seen[CK_MAX_RANK] = {0};
  bool ok = np == r;
  for (int i = 0; ok && i < np; i++) {
    if (perm[i] < 0 || perm[i] >= r || seen[perm[i]]) ok = false;
    else seen[perm[i]] = true;
  }
  if (!ok) {
    ints_str(perm, np, ps, sizeof ps);
    return ir_fail(err, "E0317", "permute: %s is not a permutation of 0..%d for %s", ps, r - 1,
                   TY(x, t));
  }
  CkShape s;
  memset(&s, 0, sizeof s);
  s.rank = r;
  for (int i = 0; i < r; i++) s.dims[i] = x->shape.dims[perm[i]];
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* reshape(x, shape): same elements, new shape (a -1 was resolved by the builder). */
bool ir_infer_reshape(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN], ss[160];
  int ns;
  const int64_t *v = ir_get_ints(n, "shape", &ns);
  const IrNode *x = n->in[0];
  CkShape s;
  memset(&s, 0, sizeof s);
  s.rank = ns;
  for (int i = 0; i < ns; i++) {
    if (v[i] < 0) {
      ints_str(v, ns, ss, sizeof ss);
      return ir_fail(err, "E0318", "reshape: negative dimension in target %s for %s", ss, TY(x, t));
    }
    s.dims[i] = v[i];
  }
  int64_t from, to;
  if (!ck_shape_numel(&x->shape, &from) || !ck_shape_numel(&s, &to))
    return ir_fail(err, "E0330", "reshape: element count overflows for %s", TY(x, t));
  if (from != to) {
    ck_type_str(x->dtype, &s, ss, sizeof ss);
    return ir_fail(err, "E0318", "reshape: element counts differ: %s (%lld) to %s (%lld)", TY(x, t),
                   (long long)from, ss, (long long)to);
  }
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* broadcast(x, shape): NumPy broadcast_to; x's dims align right, each equal
 * or 1, and the target has at least x's rank. */
bool ir_infer_broadcast_to(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN], ss[IR_TYPE_STR_LEN];
  int ns;
  const int64_t *v = ir_get_ints(n, "shape", &ns);
  const IrNode *x = n->in[0];
  CkShape s;
  memset(&s, 0, sizeof s);
  s.rank = ns;
  for (int i = 0; i < ns; i++) s.dims[i] = v[i];
  ck_type_str(x->dtype, &s, ss, sizeof ss);
  for (int i = 0; i < ns; i++)
    if (v[i] < 0)
      return ir_fail(err, "E0319", "broadcast: negative dimension in target %s", ss);
  if (ns < x->shape.rank)
    return ir_fail(err, "E0319", "broadcast: cannot broadcast %s to the lower rank %s", TY(x, t), ss);
  for (int k = 1; k <= x->shape.rank; k++) {
    int64_t d = x->shape.dims[x->shape.rank - k], e = s.dims[ns - k];
    if (d != e && d != 1)
      return ir_fail(err, "E0319", "broadcast: cannot broadcast %s to %s (axis %d: %lld vs %lld)",
                     TY(x, t), ss, -k, (long long)d, (long long)e);
  }
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* An axis attribute after normalisation: 0 <= axis < rank. */
static bool check_axis(const IrNode *n, int64_t axis, const IrNode *x, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  if (axis < 0 || axis >= x->shape.rank)
    return ir_fail(err, "E0320", "%s: axis %lld is out of range for %s (rank %d)", OPN(n),
                   (long long)axis, TY(x, t), x->shape.rank);
  return true;
}

/* slice(x, axis, start, end, step): sema made start/end non-negative; the
 * range must be non-empty and inside the axis, step positive. */
bool ir_infer_slice(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  const IrNode *x = n->in[0];
  int64_t axis = ir_get_int(n, "axis", 0), start = ir_get_int(n, "start", 0),
          end = ir_get_int(n, "end", 0), step = ir_get_int(n, "step", 1);
  if (!check_axis(n, axis, x, err)) return false;
  if (step <= 0)
    return ir_fail(err, "E0321", "slice: step must be positive, got %lld", (long long)step);
  int64_t d = x->shape.dims[axis];
  if (start < 0 || end > d || start >= end)
    return ir_fail(err, "E0321", "slice: range %lld:%lld is %s axis %lld of %s (size %lld)",
                   (long long)start, (long long)end,
                   start >= end && start >= 0 && end <= d ? "empty on" : "outside", (long long)axis,
                   TY(x, t), (long long)d);
  CkShape s = x->shape;
  s.dims[axis] = (end - start + step - 1) / step;
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* concat(a, b, ..., axis): same dtype and rank, equal dims except along axis. */
bool ir_infer_concat(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *x = n->in[0];
  int64_t axis = ir_get_int(n, "axis", 0);
  if (!check_axis(n, axis, x, err)) return false;
  CkShape s = x->shape;
  for (int i = 1; i < n->nin; i++) {
    const IrNode *y = n->in[i];
    if (y->dtype != x->dtype)
      return ir_fail(err, "E0310", "concat: dtypes differ: input %d is %s, input 0 is %s", i,
                     TY(y, t.a), TY(x, t.b));
    if (y->shape.rank != x->shape.rank)
      return ir_fail(err, "E0322", "concat: ranks differ: input %d is %s, input 0 is %s", i,
                     TY(y, t.a), TY(x, t.b));
    for (int k = 0; k < s.rank; k++) {
      if (k == axis) continue;
      if (y->shape.dims[k] != x->shape.dims[k])
        return ir_fail(err, "E0322",
                       "concat: input %d is %s, input 0 is %s: axis %d differs (%lld vs %lld)", i,
                       TY(y, t.a), TY(x, t.b), k, (long long)y->shape.dims[k],
                       (long long)x->shape.dims[k]);
    }
    if (s.dims[axis] > INT64_MAX - y->shape.dims[axis])
      return ir_fail(err, "E0330", "concat: the result has more elements than fit in 64 bits");
    s.dims[axis] += y->shape.dims[axis];
  }
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* ---- reductions --------------------------------------------------------------------------------- */

/* sum/mean/max over `axes` (sorted, in range, no repeats); keepdim keeps
 * them as size 1. mean needs a float dtype (no silent integer division). */
bool ir_infer_reduce(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN], as[128];
  const IrNode *x = n->in[0];
  int na;
  const int64_t *axes = ir_get_ints(n, "axes", &na);
  bool keep = ir_get_int(n, "keepdim", 0) != 0;
  if (n->op == IR_OP_MEAN && !ck_dtype_is_float(x->dtype))
    return ir_fail(err, "E0312", "mean: requires a float dtype, got %s", TY(x, t));
  if (is_bool(x->dtype))
    return ir_fail(err, "E0331", "%s: arithmetic on bool: %s", OPN(n), TY(x, t));
  bool red[CK_MAX_RANK] = {0};
  for (int i = 0; i < na; i++) {
    if (!check_axis(n, axes[i], x, err)) return false;
    if (red[axes[i]]) {
      ints_str(axes, na, as, sizeof as);
      return ir_fail(err, "E0323", "%s: axis %lld repeated in %s for %s", OPN(n),
                     (long long)axes[i], as, TY(x, t));
    }
    if (i > 0 && axes[i] < axes[i - 1]) {
      ints_str(axes, na, as, sizeof as);
      return ir_fail(err, "E0323", "%s: axes %s are not sorted", OPN(n), as);
    }
    red[axes[i]] = true;
  }
  CkShape s;
  memset(&s, 0, sizeof s);
  for (int k = 0; k < x->shape.rank; k++) {
    if (!red[k]) s.dims[s.rank++] = x->shape.dims[k];
    else if (keep) s.dims[s.rank++] = 1;
  }
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* argmax(x, axis, keepdim): index of the first maximum, as i32. */
bool ir_infer_argmax(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  const IrNode *x = n->in[0];
  int64_t axis = ir_get_int(n, "axis", x->shape.rank - 1);
  if (!check_axis(n, axis, x, err)) return false;
  if (is_bool(x->dtype))
    return ir_fail(err, "E0331", "argmax: arithmetic on bool: %s", TY(x, t));
  CkShape s;
  memset(&s, 0, sizeof s);
  for (int k = 0; k < x->shape.rank; k++) {
    if (k != axis) s.dims[s.rank++] = x->shape.dims[k];
    else if (ir_get_int(n, "keepdim", 0)) s.dims[s.rank++] = 1;
  }
  *dtype = CK_DT_I32;
  *shape = s;
  return true;
}

/* ---- neural-network primitives ------------------------------------------------------------------------ */

/* softmax, log_softmax along one axis: float in, same type out. */
bool ir_infer_axis_op(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  const IrNode *x = n->in[0];
  if (!ck_dtype_is_float(x->dtype))
    return ir_fail(err, "E0312", "%s: requires a float dtype, got %s", OPN(n), TY(x, t));
  if (!check_axis(n, ir_get_int(n, "axis", x->shape.rank - 1), x, err)) return false;
  *dtype = x->dtype;
  *shape = x->shape;
  return true;
}

/* layernorm(x, [weight, [bias]]), rmsnorm(x, [weight]) over the last axis:
 * weight and bias are [C] of x's dtype, where C is x's last dimension. */
bool ir_infer_norm(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *x = n->in[0];
  if (!ck_dtype_is_float(x->dtype))
    return ir_fail(err, "E0312", "%s: requires a float dtype, got %s", OPN(n), TY(x, t.a));
  if (x->shape.rank < 1)
    return ir_fail(err, "E0324", "%s: input needs rank >= 1, got %s", OPN(n), TY(x, t.a));
  double eps = ir_get_float(n, "eps", 1e-5);
  if (!(eps >= 0))
    return ir_fail(err, "E0332", "%s: eps must be non-negative, got %.9g", OPN(n), eps);
  CkShape c = {.rank = 1};
  c.dims[0] = x->shape.dims[x->shape.rank - 1];
  static const char *const role[] = {"input", "weight", "bias"};
  for (int i = 1; i < n->nin; i++) {
    const IrNode *w = n->in[i];
    if (w->dtype != x->dtype || !ck_shape_eq(&w->shape, &c))
      return ir_fail(err, "E0324", "%s: %s must be %s for input %s, got %s", OPN(n), role[i],
                     ck_type_str(x->dtype, &c, t.c, sizeof t.c), TY(x, t.a), TY(w, t.b));
  }
  *dtype = x->dtype;
  *shape = x->shape;
  return true;
}

/* embedding(table [V,C] float, idx i32[...]) -> [..., C] of the table's dtype. */
bool ir_infer_embedding(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *tab = n->in[0], *idx = n->in[1];
  if (tab->shape.rank != 2 || !ck_dtype_is_float(tab->dtype))
    return ir_fail(err, "E0325", "embedding: table must be a float matrix [V,C], got %s",
                   TY(tab, t.a));
  if (idx->dtype != CK_DT_I32)
    return ir_fail(err, "E0325", "embedding: indices must be i32, got %s", TY(idx, t.b));
  if (idx->shape.rank + 1 > CK_MAX_RANK)
    return ir_fail(err, "E0333", "embedding: result rank exceeds %d for indices %s", CK_MAX_RANK,
                   TY(idx, t.b));
  CkShape s = idx->shape;
  s.dims[s.rank++] = tab->shape.dims[1];
  *dtype = tab->dtype;
  *shape = s;
  return true;
}

/* Reads a 2-int attribute with a default for both. */
static void get2(const IrNode *n, const char *key, int64_t dflt0, int64_t dflt1, int64_t out[2]) {
  int c;
  const int64_t *v = ir_get_ints(n, key, &c);
  out[0] = v && c == 2 ? v[0] : dflt0;
  out[1] = v && c == 2 ? v[1] : dflt1;
}

/* One spatial output size: (in + 2*pad - k) / stride + 1, or 0 if empty. */
static int64_t out_size(int64_t in, int64_t pad, int64_t k, int64_t stride) {
  int64_t span = in + 2 * pad - k;
  return span < 0 ? 0 : span / stride + 1;
}

/* conv2d(x[N,C,H,W], w[OC,C/groups,KH,KW], [b[OC]]) -> [N,OC,OH,OW] with
 * OH = (H + 2*ph - KH)/sh + 1 (PyTorch, NCHW). */
bool ir_infer_conv2d(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *x = n->in[0], *w = n->in[1], *b = n->nin > 2 ? n->in[2] : NULL;
  TY(x, t.a);
  TY(w, t.b);
  if (!ck_dtype_is_float(x->dtype))
    return ir_fail(err, "E0312", "conv2d: requires a float dtype, got %s", t.a);
  if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
    return ir_fail(err, "E0310", "conv2d: dtypes differ: input %s, weight %s%s%s", t.a, t.b,
                   b ? ", bias " : "", b ? TY(b, t.c) : "");
  if (x->shape.rank != 4)
    return ir_fail(err, "E0326", "conv2d: input must be [N,C,H,W], got %s", t.a);
  if (w->shape.rank != 4)
    return ir_fail(err, "E0326", "conv2d: weight must be [OC,C/groups,KH,KW], got %s", t.b);
  int64_t groups = ir_get_int(n, "groups", 1), st[2], pd[2];
  get2(n, "stride", 1, 1, st);
  get2(n, "padding", 0, 0, pd);
  if (groups < 1) return ir_fail(err, "E0332", "conv2d: groups must be >= 1, got %lld", (long long)groups);
  if (st[0] < 1 || st[1] < 1 || pd[0] < 0 || pd[1] < 0)
    return ir_fail(err, "E0332",
                   "conv2d: stride must be >= 1 and padding >= 0, got stride (%lld,%lld) padding (%lld,%lld)",
                   (long long)st[0], (long long)st[1], (long long)pd[0], (long long)pd[1]);
  int64_t C = x->shape.dims[1], OC = w->shape.dims[0];
  if (C % groups != 0 || OC % groups != 0)
    return ir_fail(err, "E0326",
                   "conv2d: groups %lld must divide the input channels %lld and the output channels %lld: input %s, weight %s",
                   (long long)groups, (long long)C, (long long)OC, t.a, t.b);
  if (w->shape.dims[1] != C / groups)
    return ir_fail(err, "E0326",
                   "conv2d: weight expects %lld input channels per group, the input has %lld (groups %lld): input %s, weight %s",
                   (long long)w->shape.dims[1], (long long)(C / groups), (long long)groups, t.a, t.b);
  if (b && (b->shape.rank != 1 || b->shape.dims[0] != OC))
    return ir_fail(err, "E0326", "conv2d: bias must be %s[%lld], got %s", ck_dtype_name(x->dtype),
                   (long long)OC, TY(b, t.c));
  int64_t kh = w->shape.dims[2], kw = w->shape.dims[3];
  int64_t oh = out_size(x->shape.dims[2], pd[0], kh, st[0]);
  int64_t ow = out_size(x->shape.dims[3], pd[1], kw, st[1]);
  if (oh < 1 || ow < 1)
    return ir_fail(err, "E0327",
                   "conv2d: empty output: input %s with kernel %lldx%lld, stride (%lld,%lld), padding (%lld,%lld)",
                   t.a, (long long)kh, (long long)kw, (long long)st[0], (long long)st[1],
                   (long long)pd[0], (long long)pd[1]);
  CkShape s = {.rank = 4};
  s.dims[0] = x->shape.dims[0];
  s.dims[1] = OC;
  s.dims[2] = oh;
  s.dims[3] = ow;
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* maxpool2d/avgpool2d(x[N,C,H,W]): kernel, stride (default kernel), padding;
 * PyTorch requires padding <= kernel/2 on each axis. */
bool ir_infer_pool2d(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  const IrNode *x = n->in[0];
  TY(x, t);
  if (!ck_dtype_is_float(x->dtype))
    return ir_fail(err, "E0312", "%s: requires a float dtype, got %s", OPN(n), t);
  if (x->shape.rank != 4)
    return ir_fail(err, "E0326", "%s: input must be [N,C,H,W], got %s", OPN(n), t);
  int64_t k[2], st[2], pd[2];
  get2(n, "kernel", 1, 1, k);
  get2(n, "stride", k[0], k[1], st);
  get2(n, "padding", 0, 0, pd);
  if (k[0] < 1 || k[1] < 1 || st[0] < 1 || st[1] < 1 || pd[0] < 0 || pd[1] < 0)
    return ir_fail(err, "E0332",
                   "%s: kernel and stride must be >= 1 and padding >= 0, got kernel (%lld,%lld) stride (%lld,%lld) padding (%lld,%lld)",
                   OPN(n), (long long)k[0], (long long)k[1], (long long)st[0], (long long)st[1],
                   (long long)pd[0], (long long)pd[1]);
  for (int i = 0; i < 2; i++)
    if (pd[i] > k[i] / 2)
      return ir_fail(err, "E0328",
                     "%s: padding %lld exceeds half the kernel %lld on axis %d (PyTorch requires padding <= kernel/2)",
                     OPN(n), (long long)pd[i], (long long)k[i], i + 2);
  int64_t oh = out_size(x->shape.dims[2], pd[0], k[0], st[0]);
  int64_t ow = out_size(x->shape.dims[3], pd[1], k[1], st[1]);
  if (oh < 1 || ow < 1)
    return ir_fail(err, "E0327",
                   "%s: empty output: input %s with kernel %lldx%lld, stride (%lld,%lld), padding (%lld,%lld)",
                   OPN(n), t, (long long)k[0], (long long)k[1], (long long)st[0], (long long)st[1],
                   (long long)pd[0], (long long)pd[1]);
  CkShape s = x->shape;
  s.dims[2] = oh;
  s.dims[3] = ow;
  *dtype = x->dtype;
  *shape = s;
  return true;
}

/* attention(q[...,T,D], k[...,S,D], v[...,S,Dv]) -> [...,T,Dv]: the batch
 * dims are equal (no broadcasting: heads are explicit), causal needs T <= S
 * (the mask aligns the last query with the last key). */
bool ir_infer_attention(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *q = n->in[0], *k = n->in[1], *v = n->in[2];
  TY(q, t.a);
  TY(k, t.b);
  TY(v, t.c);
  if (q->dtype != k->dtype || q->dtype != v->dtype)
    return ir_fail(err, "E0310", "attention: dtypes differ: q %s, k %s, v %s", t.a, t.b, t.c);
  if (!ck_dtype_is_float(q->dtype))
    return ir_fail(err, "E0312", "attention: requires a float dtype, got q %s", t.a);
  if (q->shape.rank < 2 || k->shape.rank != q->shape.rank || v->shape.rank != q->shape.rank)
    return ir_fail(err, "E0329",
                   "attention: q, k, v need the same rank >= 2: q %s, k %s, v %s", t.a, t.b, t.c);
  int r = q->shape.rank;
  for (int i = 0; i < r - 2; i++)
    if (k->shape.dims[i] != q->shape.dims[i] || v->shape.dims[i] != q->shape.dims[i])
      return ir_fail(err, "E0329", "attention: batch dimensions differ: q %s, k %s, v %s", t.a, t.b,
                     t.c);
  int64_t T = q->shape.dims[r - 2], D = q->shape.dims[r - 1];
  int64_t S = k->shape.dims[r - 2], Dk = k->shape.dims[r - 1];
  if (D != Dk)
    return ir_fail(err, "E0329", "attention: q and k head sizes differ: q %s, k %s (%lld vs %lld)",
                   t.a, t.b, (long long)D, (long long)Dk);
  if (v->shape.dims[r - 2] != S)
    return ir_fail(err, "E0329", "attention: k and v lengths differ: k %s, v %s (%lld vs %lld)",
                   t.b, t.c, (long long)S, (long long)v->shape.dims[r - 2]);
  if (ir_get_int(n, "causal", 0) && T > S)
    return ir_fail(err, "E0329",
                   "attention: causal needs no more queries than keys: q %s, k %s (%lld > %lld)", t.a,
                   t.b, (long long)T, (long long)S);
  CkShape s = q->shape;
  s.dims[r - 1] = v->shape.dims[r - 1];
  *dtype = q->dtype;
  *shape = s;
  return true;
}

/* ---- training ops (passes/autodiff.c; ids E0510..E0519) --------------------------------------------- */

/* stop_gradient and other identities: the input's type. */
bool ir_infer_identity(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  (void)err;
  *dtype = n->in[0]->dtype;
  *shape = n->in[0]->shape;
  return true;
}

/* cross_entropy(logits f[..., V], targets i32[...]): the classes are the
 * last axis of the logits, the targets have the logits' other dims (a
 * language model's [B,T,V] with [B,T]; a classifier's [N,C] with [N]). */
bool ir_infer_cross_entropy(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *x = n->in[0], *y = n->in[1];
  TY(x, t.a);
  TY(y, t.b);
  if (!ck_dtype_is_float(x->dtype))
    return ir_fail(err, "E0510", "cross_entropy: logits must be float, got %s", t.a);
  if (y->dtype != CK_DT_I32)
    return ir_fail(err, "E0510", "cross_entropy: targets must be i32 class indices, got %s", t.b);
  if (x->shape.rank < 1)
    return ir_fail(err, "E0510", "cross_entropy: logits need a class axis, got %s", t.a);
  bool ok = y->shape.rank == x->shape.rank - 1;
  for (int i = 0; ok && i < y->shape.rank; i++) ok = y->shape.dims[i] == x->shape.dims[i];
  if (!ok) {
    CkShape want = x->shape;
    want.rank--;
    return ir_fail(err, "E0510",
                   "cross_entropy: targets must be i32%s for logits %s (classes on the last axis), got %s",
                   ck_type_str(CK_DT_I32, &want, t.c, sizeof t.c) + 3, t.a, t.b);
  }
  double ls = ir_get_float(n, "label_smoothing", 0.0);
  if (!(ls >= 0.0 && ls <= 1.0))
    return ir_fail(err, "E0512", "cross_entropy: label_smoothing must be in [0, 1], got %.9g", ls);
  *dtype = x->dtype;
  memset(shape, 0, sizeof *shape);
  return true;
}

/* mse(a, b), bce_with_logits(x, y): same float type (no broadcasting: a
 * shape mismatch in a loss is almost always a bug), scalar mean. */
bool ir_infer_loss_pair(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *a = n->in[0], *b = n->in[1];
  TY(a, t.a);
  TY(b, t.b);
  if (!ck_dtype_is_float(a->dtype) || a->dtype != b->dtype)
    return ir_fail(err, "E0511", "%s: operands must have the same float dtype, got %s and %s",
                   OPN(n), t.a, t.b);
  if (!ck_shape_eq(&a->shape, &b->shape))
    return ir_fail(err, "E0511", "%s: operand shapes differ: %s and %s", OPN(n), t.a, t.b);
  *dtype = a->dtype;
  memset(shape, 0, sizeof *shape);
  return true;
}

/* ---- backward ops: only autodiff builds them, so a mismatch is a pass bug
 * (E0519) that the verifier reports; the rules still check everything the
 * back end relies on. ---------------------------------------------------------------------------------- */

/* The checks of the forward cross_entropy on (logits, targets) at in[1], in[2]. */
bool ir_infer_cross_entropy_bwd(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *g = n->in[0], *x = n->in[1], *y = n->in[2];
  if (g->shape.rank != 0 || g->dtype != x->dtype)
    return ir_fail(err, "E0519", "cross_entropy_bwd: dloss must be a scalar of the logits' dtype, got %s for %s",
                   TY(g, t.a), TY(x, t.b));
  bool ok = ck_dtype_is_float(x->dtype) && y->dtype == CK_DT_I32 && x->shape.rank >= 1 &&
            y->shape.rank == x->shape.rank - 1;
  for (int i = 0; ok && i < y->shape.rank; i++) ok = y->shape.dims[i] == x->shape.dims[i];
  if (!ok)
    return ir_fail(err, "E0519", "cross_entropy_bwd: logits %s and targets %s do not fit", TY(x, t.a),
                   TY(y, t.b));
  *dtype = x->dtype;
  *shape = x->shape;
  return true;
}

/* softmax_bwd/log_softmax_bwd(y, dy; axis): y and dy of one float type. */
bool ir_infer_grad_like0(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *a = n->in[0], *b = n->in[1];
  if (!ck_dtype_is_float(a->dtype) || a->dtype != b->dtype || !ck_shape_eq(&a->shape, &b->shape))
    return ir_fail(err, "E0519", "%s: operands must share one float type, got %s and %s", OPN(n),
                   TY(a, t.a), TY(b, t.b));
  if (!check_axis(n, ir_get_int(n, "axis", -1), a, err)) return false;
  *dtype = a->dtype;
  *shape = a->shape;
  return true;
}

/* max_bwd(x, dy; axis, keepdim): dy has the type of max(x, axis, keepdim). */
bool ir_infer_max_bwd(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *x = n->in[0], *dy = n->in[1];
  int64_t axis = ir_get_int(n, "axis", -1);
  if (!check_axis(n, axis, x, err)) return false;
  CkShape r;
  memset(&r, 0, sizeof r);
  for (int k = 0; k < x->shape.rank; k++) {
    if (k != axis) r.dims[r.rank++] = x->shape.dims[k];
    else if (ir_get_int(n, "keepdim", 0)) r.dims[r.rank++] = 1;
  }
  if (!ck_dtype_is_float(x->dtype) || dy->dtype != x->dtype || !ck_shape_eq(&r, &dy->shape))
    return ir_fail(err, "E0519", "max_bwd: dy %s does not fit x %s reduced over axis %lld",
                   TY(dy, t.a), TY(x, t.b), (long long)axis);
  *dtype = x->dtype;
  *shape = x->shape;
  return true;
}

/* The shared checks of the norm backward ops: dy and x one float type of
 * rank >= 1, weight (x-gradient only) [C]. */
static bool norm_bwd_check(const IrNode *n, IrErr *err) {
  TypeStrs t;
  const IrNode *dy = n->in[0], *x = n->in[1];
  if (!ck_dtype_is_float(x->dtype) || dy->dtype != x->dtype || !ck_shape_eq(&dy->shape, &x->shape) ||
      x->shape.rank < 1)
    return ir_fail(err, "E0519", "%s: dy %s and x %s must share one float type of rank >= 1", OPN(n),
                   TY(dy, t.a), TY(x, t.b));
  if (n->nin > 2) {
    const IrNode *w = n->in[2];
    if (w->dtype != x->dtype || w->shape.rank != 1 || w->shape.dims[0] != x->shape.dims[x->shape.rank - 1])
      return ir_fail(err, "E0519", "%s: weight %s does not fit x %s", OPN(n), TY(w, t.a), TY(x, t.b));
  }
  return true;
}

bool ir_infer_norm_bwd_x(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  if (!norm_bwd_check(n, err)) return false;
  *dtype = n->in[1]->dtype;
  *shape = n->in[1]->shape;
  return true;
}

/* The weight gradient is [C], C = x's last dimension. */
bool ir_infer_norm_bwd_w(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  if (!norm_bwd_check(n, err)) return false;
  const IrNode *x = n->in[1];
  memset(shape, 0, sizeof *shape);
  shape->rank = 1;
  shape->dims[0] = x->shape.dims[x->shape.rank - 1];
  *dtype = x->dtype;
  return true;
}

/* embedding_bwd(dy f[...,C], idx i32[...]; num) -> f[num, C]. */
bool ir_infer_embedding_bwd(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *dy = n->in[0], *idx = n->in[1];
  int64_t num = ir_get_int(n, "num", -1);
  bool ok = ck_dtype_is_float(dy->dtype) && idx->dtype == CK_DT_I32 &&
            dy->shape.rank == idx->shape.rank + 1 && num >= 0;
  for (int i = 0; ok && i < idx->shape.rank; i++) ok = dy->shape.dims[i] == idx->shape.dims[i];
  if (!ok)
    return ir_fail(err, "E0519", "embedding_bwd: dy %s does not fit indices %s (num %lld)", TY(dy, t.a),
                   TY(idx, t.b), (long long)num);
  memset(shape, 0, sizeof *shape);
  shape->rank = 2;
  shape->dims[0] = num;
  shape->dims[1] = dy->shape.dims[dy->shape.rank - 1];
  *dtype = dy->dtype;
  return true;
}

/* A 4-int attribute as a shape. */
static bool get_shape4(const IrNode *n, const char *key, CkShape *s) {
  int c;
  const int64_t *v = ir_get_ints(n, key, &c);
  memset(s, 0, sizeof *s);
  if (!v || c != 4) return false;
  s->rank = 4;
  for (int i = 0; i < 4; i++) {
    if (v[i] < 0) return false;
    s->dims[i] = v[i];
  }
  return true;
}

/* conv2d_bwd_x(dy, w; in_shape) and conv2d_bwd_w(dy, x; w_shape): the
 * forward conv2d of (x, w) must produce dy's type; the result is x (resp. w). */
bool ir_infer_conv2d_bwd(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *dy = n->in[0], *other = n->in[1];
  bool want_x = n->op == IR_OP_CONV2D_BWD_X;
  CkShape xs, ws, res;
  if (!get_shape4(n, want_x ? "in_shape" : "w_shape", &res))
    return ir_fail(err, "E0519", "%s: bad %s attribute", OPN(n), want_x ? "in_shape" : "w_shape");
  if (other->shape.rank != 4 || dy->shape.rank != 4 || dy->dtype != other->dtype ||
      !ck_dtype_is_float(dy->dtype))
    return ir_fail(err, "E0519", "%s: dy %s and %s %s must be rank-4 floats of one dtype", OPN(n),
                   TY(dy, t.a), want_x ? "w" : "x", TY(other, t.b));
  xs = want_x ? res : other->shape;
  ws = want_x ? other->shape : res;
  int64_t groups = ir_get_int(n, "groups", 1), st[2], pd[2];
  get2(n, "stride", 1, 1, st);
  get2(n, "padding", 0, 0, pd);
  bool ok = groups >= 1 && st[0] >= 1 && st[1] >= 1 && pd[0] >= 0 && pd[1] >= 0 &&
            xs.dims[1] % groups == 0 && ws.dims[0] % groups == 0 && ws.dims[1] * groups == xs.dims[1] &&
            dy->shape.dims[0] == xs.dims[0] && dy->shape.dims[1] == ws.dims[0] &&
            dy->shape.dims[2] == out_size(xs.dims[2], pd[0], ws.dims[2], st[0]) &&
            dy->shape.dims[3] == out_size(xs.dims[3], pd[1], ws.dims[3], st[1]);
  if (!ok) {
    char xb[IR_TYPE_STR_LEN], wb[IR_TYPE_STR_LEN];
    return ir_fail(err, "E0519", "%s: dy %s is not conv2d(%s, %s)", OPN(n), TY(dy, t.a),
                   ck_type_str(dy->dtype, &xs, xb, sizeof xb), ck_type_str(dy->dtype, &ws, wb, sizeof wb));
  }
  *dtype = dy->dtype;
  *shape = res;
  return true;
}

/* maxpool2d_bwd(dy, x), avgpool2d_bwd(dy; in_shape): dy is the pooled x. */
bool ir_infer_pool2d_bwd(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *dy = n->in[0];
  CkShape xs;
  if (n->op == IR_OP_MAXPOOL2D_BWD) {
    xs = n->in[1]->shape;
    if (n->in[1]->dtype != dy->dtype)
      return ir_fail(err, "E0519", "%s: dtypes differ: dy %s, x %s", OPN(n), TY(dy, t.a), TY(n->in[1], t.b));
  } else if (!get_shape4(n, "in_shape", &xs)) {
    return ir_fail(err, "E0519", "%s: bad in_shape attribute", OPN(n));
  }
  int64_t k[2], st[2], pd[2];
  get2(n, "kernel", 1, 1, k);
  get2(n, "stride", k[0], k[1], st);
  get2(n, "padding", 0, 0, pd);
  bool ok = xs.rank == 4 && dy->shape.rank == 4 && ck_dtype_is_float(dy->dtype) && k[0] >= 1 &&
            k[1] >= 1 && st[0] >= 1 && st[1] >= 1 && pd[0] >= 0 && pd[1] >= 0 &&
            dy->shape.dims[0] == xs.dims[0] && dy->shape.dims[1] == xs.dims[1] &&
            dy->shape.dims[2] == out_size(xs.dims[2], pd[0], k[0], st[0]) &&
            dy->shape.dims[3] == out_size(xs.dims[3], pd[1], k[1], st[1]);
  if (!ok) {
    char xb[IR_TYPE_STR_LEN];
    return ir_fail(err, "E0519", "%s: dy %s is not the pooled %s", OPN(n), TY(dy, t.a),
                   ck_type_str(dy->dtype, &xs, xb, sizeof xb));
  }
  *dtype = dy->dtype;
  *shape = xs;
  return true;
}

/* attention_bwd_{q,k,v}(dout, q, k, v): dout has the forward's result type;
 * the result is the type of q, k or v. */
bool ir_infer_attention_bwd(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  TypeStrs t;
  const IrNode *dout = n->in[0], *q = n->in[1], *k = n->in[2], *v = n->in[3];
  bool ok = ck_dtype_is_float(q->dtype) && k->dtype == q->dtype && v->dtype == q->dtype &&
            dout->dtype == q->dtype && q->shape.rank >= 2 && k->shape.rank == q->shape.rank &&
            v->shape.rank == q->shape.rank && dout->shape.rank == q->shape.rank;
  int r = q->shape.rank;
  for (int i = 0; ok && i < r - 2; i++)
    ok = k->shape.dims[i] == q->shape.dims[i] && v->shape.dims[i] == q->shape.dims[i] &&
         dout->shape.dims[i] == q->shape.dims[i];
  ok = ok && q->shape.dims[r - 1] == k->shape.dims[r - 1] && k->shape.dims[r - 2] == v->shape.dims[r - 2] &&
       dout->shape.dims[r - 2] == q->shape.dims[r - 2] && dout->shape.dims[r - 1] == v->shape.dims[r - 1];
  if (!ok)
    return ir_fail(err, "E0519", "%s: dout %s does not fit q %s, k %s, v ...", OPN(n), TY(dout, t.a),
                   TY(q, t.b), TY(k, t.c));
  const IrNode *res = n->op == IR_OP_ATTENTION_BWD_Q ? q : n->op == IR_OP_ATTENTION_BWD_K ? k : v;
  *dtype = res->dtype;
  *shape = res->shape;
  return true;
}

/* slice_bwd(dy; axis, start, step, size): the slice must fit in size. */
bool ir_infer_slice_bwd(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  char t[IR_TYPE_STR_LEN];
  const IrNode *dy = n->in[0];
  int64_t axis = ir_get_int(n, "axis", 0), start = ir_get_int(n, "start", 0),
          step = ir_get_int(n, "step", 1), size = ir_get_int(n, "size", 0);
  if (!check_axis(n, axis, dy, err)) return false;
  int64_t d = dy->shape.dims[axis];
  if (step < 1 || start < 0 || d < 1 || start + (d - 1) * step >= size)
    return ir_fail(err, "E0519", "slice_bwd: %s along axis %lld does not fit start %lld step %lld in size %lld",
                   TY(dy, t), (long long)axis, (long long)start, (long long)step, (long long)size);
  *dtype = dy->dtype;
  *shape = dy->shape;
  shape->dims[axis] = size;
  return true;
}

/* ---- fused ops (passes/fusion.c) ---------------------------------------------------------------- */

/* The body program typed over the given operand dtypes; its result must be
 * a float (fusion roots are float ops). Malformed bodies are fusion-pass
 * bugs, reported with the attribute id E0332. */
static bool fused_body_type(const IrNode *n, const CkDType *dt, int nops, CkDType *out, IrErr *err) {
  IrFusedProg p;
  CkDType idt[IR_FUSED_MAX_INSTR];
  char why[160];
  if (!ir_fused_parse(ir_get_str(n, "body", NULL), nops, &p, why, sizeof why) ||
      !ir_fused_types(&p, dt, nops, idt, why, sizeof why))
    return ir_fail(err, "E0332", "%s: %s", OPN(n), why);
  *out = idt[p.n - 1];
  if (!ck_dtype_is_float(*out)) return ir_fail(err, "E0332", "%s: the body's result is not a float", OPN(n));
  return true;
}

/* fused_ew(x0, x1, ...): every operand broadcasts to the result (NumPy). */
bool ir_infer_fused_ew(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  if (n->nin > IR_FUSED_MAX_INPUTS) return ir_fail(err, "E0332", "%s: too many operands", OPN(n));
  CkDType dt[IR_FUSED_MAX_INPUTS];
  CkShape all = n->in[0]->shape;
  for (int k = 0; k < n->nin; k++) {
    dt[k] = n->in[k]->dtype;
    CkShape next;
    int axis;
    int64_t x, y;
    char t[IR_TYPE_STR_LEN];
    if (!bcast_where(&all, &n->in[k]->shape, &next, &axis, &x, &y))
      return ir_fail(err, "E0311", "%s: operand %d %s does not broadcast (axis %d: %lld vs %lld)", OPN(n), k,
                     TY(n->in[k], t), axis, (long long)x, (long long)y);
    all = next;
  }
  *shape = all;
  return fused_body_type(n, dt, n->nin, dtype, err);
}

/* fused_matmul(a, b, extra...): the matmul's shape; every extra operand
 * broadcasts to it without growing it (an epilogue never widens). */
bool ir_infer_fused_matmul(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err) {
  CkDType mdt;
  if (!ir_infer_matmul(n, &mdt, shape, err)) return false;
  if (n->nin - 1 > IR_FUSED_MAX_INPUTS) return ir_fail(err, "E0332", "%s: too many operands", OPN(n));
  CkDType dt[IR_FUSED_MAX_INPUTS];
  dt[0] = mdt;
  for (int k = 2; k < n->nin; k++) {
    dt[k - 1] = n->in[k]->dtype;
    CkShape next;
    int axis;
    int64_t x, y;
    char t[IR_TYPE_STR_LEN];
    if (!bcast_where(shape, &n->in[k]->shape, &next, &axis, &x, &y) || !ck_shape_eq(&next, shape))
      return ir_fail(err, "E0311", "%s: epilogue operand %d %s does not broadcast to the product", OPN(n), k,
                     TY(n->in[k], t));
  }
  return fused_body_type(n, dt, n->nin - 1, dtype, err);
}
