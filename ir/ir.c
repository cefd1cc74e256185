/* ir/ir.c - shapes, attributes, builders and the mutation helpers passes use.
 *
 * Builders are the only way nodes come to exist: they give each node its id,
 * owner and place at the end of the graph, copy everything into the module's
 * arena, check arity and attributes (a violation is a ckc bug: CKC_ICE) and
 * run the op's shape rule (a violation is the user's: IrErr, E0310..E0349). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_impl.h"

/* ---- shapes ---------------------------------------------------------------------- */

/* Checked product: shapes come from user constants, so a huge product is a
 * user error that sema or the shape rules report, never undefined behaviour. */
bool ck_shape_numel(const CkShape *s, int64_t *out) {
  int64_t n = 1;
  for (int i = 0; i < s->rank; i++) {
    int64_t d = s->dims[i];
    if (d < 0) return false;
    if (d != 0 && n > INT64_MAX / d) return false;
    n *= d;
  }
  if (out) *out = n;
  return true;
}

/* For callers that already know the shape is sane (after sema or ir_op);
 * wraps instead of trapping if it is not. */
int64_t ck_shape_numel_unchecked(const CkShape *s) {
  uint64_t n = 1;
  for (int i = 0; i < s->rank; i++) n *= (uint64_t)s->dims[i];
  return (int64_t)n;
}

bool ck_shape_eq(const CkShape *a, const CkShape *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

/* "f32[8,64,128]", scalars "f32[]": the spelling every diagnostic uses. */
const char *ck_type_str(CkDType t, const CkShape *s, char *buf, size_t len) {
  if (!buf || len == 0) return "";
  size_t used = 0;
  int k = snprintf(buf, len, "%s[", ck_dtype_name(t));
  used = k < 0 ? 0 : (size_t)k;
  for (int i = 0; s && i < s->rank && used < len; i++) {
    k = snprintf(buf + used, len - used, "%s%lld", i ? "," : "", (long long)s->dims[i]);
    if (k < 0) break;
    used += (size_t)k;
  }
  if (used < len) snprintf(buf + used, len - used, "]");
  return buf;
}

const char *ir_node_type_str(const IrNode *n, char *buf) {
  return ck_type_str(n->dtype, &n->shape, buf, IR_TYPE_STR_LEN);
}

/* NumPy: align from the right; each pair of dims is equal or one of them is 1. */
bool ck_shape_broadcast(const CkShape *a, const CkShape *b, CkShape *out) {
  CkShape r;
  r.rank = a->rank > b->rank ? a->rank : b->rank;
  for (int i = 0; i < r.rank; i++) {
    int ia = a->rank - r.rank + i, ib = b->rank - r.rank + i;
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da == db || db == 1) r.dims[i] = da;
    else if (da == 1) r.dims[i] = db;
    else return false;
  }
  for (int i = r.rank; i < CK_MAX_RANK; i++) r.dims[i] = 0;
  if (out) *out = r;
  return true;
}

/* ---- attributes ------------------------------------------------------------------- */

IrAttr ir_attr_int(const char *key, int64_t v) {
  return (IrAttr){.key = key, .kind = IR_ATTR_INT, .i = v};
}
IrAttr ir_attr_float(const char *key, double v) {
  return (IrAttr){.key = key, .kind = IR_ATTR_FLOAT, .f = v};
}
IrAttr ir_attr_ints(const char *key, const int64_t *v, int n) {
  return (IrAttr){.key = key, .kind = IR_ATTR_INTS, .ints = v, .nints = n};
}
IrAttr ir_attr_str(const char *key, const char *s) {
  return (IrAttr){.key = key, .kind = IR_ATTR_STR, .s = s};
}

const IrAttr *ir_find_attr(const IrNode *n, const char *key) {
  for (int i = 0; i < n->nattrs; i++)
    if (strcmp(n->attrs[i].key, key) == 0) return &n->attrs[i];
  return NULL;
}

int64_t ir_get_int(const IrNode *n, const char *key, int64_t dflt) {
  const IrAttr *a = ir_find_attr(n, key);
  return a && a->kind == IR_ATTR_INT ? a->i : dflt;
}

/* An INT stored under a float key (eps=1) reads as that float. */
double ir_get_float(const IrNode *n, const char *key, double dflt) {
  const IrAttr *a = ir_find_attr(n, key);
  if (!a) return dflt;
  if (a->kind == IR_ATTR_FLOAT) return a->f;
  if (a->kind == IR_ATTR_INT) return (double)a->i;
  return dflt;
}

const char *ir_get_str(const IrNode *n, const char *key, const char *dflt) {
  const IrAttr *a = ir_find_attr(n, key);
  return a && a->kind == IR_ATTR_STR ? a->s : dflt;
}

const int64_t *ir_get_ints(const IrNode *n, const char *key, int *count) {
  const IrAttr *a = ir_find_attr(n, key);
  if (!a || a->kind != IR_ATTR_INTS) {
    if (count) *count = 0;
    return NULL;
  }
  if (count) *count = a->nints;
  return a->ints;
}

/* Deep copy into the arena with `extra` spare slots for defaults the builder
 * materialises (reduction axes, softmax axis). INT under a FLOAT key becomes
 * a FLOAT, and an INT under a pair key (stride=2) the pair (2,2), so that
 * every later reader sees the schema's kind. */
static IrAttr *copy_attrs(CkcArena *a, IrOp op, const IrAttr *src, int n, int extra) {
  if (n + extra == 0) return NULL;
  IrAttr *dst = CKC_NEW_ARRAY(a, IrAttr, n + extra);
  for (int i = 0; i < n; i++) {
    dst[i] = src[i];
    dst[i].key = ckc_arena_strdup(a, src[i].key);
    if (src[i].kind == IR_ATTR_STR) dst[i].s = ckc_arena_strdup(a, src[i].s);
    if (src[i].kind == IR_ATTR_INTS) {
      int64_t *v = CKC_NEW_ARRAY(a, int64_t, src[i].nints > 0 ? src[i].nints : 1);
      if (src[i].nints > 0) memcpy(v, src[i].ints, sizeof(int64_t) * (size_t)src[i].nints);
      dst[i].ints = v;
    }
    const IrAttrSpec *s = ir_op_find_attr_spec(op, src[i].key);
    if (s && s->kind == IR_ATTR_FLOAT && src[i].kind == IR_ATTR_INT) {
      dst[i].kind = IR_ATTR_FLOAT;
      dst[i].f = (double)src[i].i;
      dst[i].i = 0;
    }
    if (s && s->kind == IR_ATTR_INTS && s->ints_len == 2 && src[i].kind == IR_ATTR_INT) {
      int64_t *v = CKC_NEW_ARRAY(a, int64_t, 2);
      v[0] = v[1] = src[i].i;
      dst[i].kind = IR_ATTR_INTS;
      dst[i].ints = v;
      dst[i].nints = 2;
      dst[i].i = 0;
    }
  }
  return dst;
}

static IrAttr *find_attr_mut(IrNode *n, const char *key) {
  for (int i = 0; i < n->nattrs; i++)
    if (strcmp(n->attrs[i].key, key) == 0) return &n->attrs[i];
  return NULL;
}

/* ---- modules and graphs -------------------------------------------------------------- */

IrModule *ir_module_new(CkcArena *a, const char *model_name, const char *source_name) {
  IrModule *m = CKC_NEW(a, IrModule);
  m->arena = a;
  m->model_name = model_name ? ckc_arena_strdup(a, model_name) : NULL;
  m->source_name = source_name ? ckc_arena_strdup(a, source_name) : NULL;
  return m;
}

IrGraph *ir_graph_new(IrModule *m, const char *name, bool is_entry) {
  IrGraph *g = CKC_NEW(m->arena, IrGraph);
  g->module = m;
  g->name = ckc_arena_strdup(m->arena, name ? name : "");
  g->is_entry = is_entry;
  CKC_VEC_PUSH(m->arena, m->graphs, g);
  return g;
}

IrGraph *ir_module_entry(const IrModule *m, const char *name) {
  for (int i = 0; i < m->graphs.len; i++) {
    IrGraph *g = m->graphs.items[i];
    if (g->is_entry && strcmp(g->name, name) == 0) return g;
  }
  return NULL;
}

/* ---- builders --------------------------------------------------------------------------- */

static CkcArena *g_arena(const IrGraph *g) { return g->module->arena; }

/* A fresh, not yet registered node (ir_op must be able to drop it on error). */
static IrNode *node_alloc(IrGraph *g, IrOp op, const char *name, CkcLoc loc) {
  IrNode *n = CKC_NEW(g_arena(g), IrNode);
  n->op = op;
  n->name = name ? ckc_arena_strdup(g_arena(g), name) : NULL;
  n->loc = loc;
  n->graph = g;
  n->id = -1;
  return n;
}

static IrNode *node_register(IrGraph *g, IrNode *n) {
  n->id = g->next_id++;
  CKC_VEC_PUSH(g_arena(g), g->nodes, n);
  return n;
}

static void check_attrs_or_ice(IrOp op, const IrAttr *attrs, int nattrs) {
  char why[256];
  if (!ir_attrs_check(op, attrs, nattrs, why, sizeof why)) CKC_ICE("ir builder: %s", why);
}

static void check_shape_or_ice(const char *what, const CkShape *s) {
  if (!s || s->rank < 0 || s->rank > CK_MAX_RANK) CKC_ICE("ir builder: %s: bad rank", what);
  for (int i = 0; i < s->rank; i++)
    if (s->dims[i] < 0) CKC_ICE("ir builder: %s: negative dimension", what);
}

static void set_shape(IrNode *n, const CkShape *s) {
  memset(&n->shape, 0, sizeof n->shape);
  n->shape.rank = s->rank;
  for (int i = 0; i < s->rank; i++) n->shape.dims[i] = s->dims[i];
}

/* input: the graph's arguments, in order; `index` records the position. */
IrNode *ir_input(IrGraph *g, const char *name, CkDType dt, const CkShape *s, CkcLoc loc) {
  check_shape_or_ice("input", s);
  IrNode *n = node_alloc(g, IR_OP_INPUT, name, loc);
  n->dtype = dt;
  set_shape(n, s);
  n->attrs = CKC_NEW_ARRAY(g_arena(g), IrAttr, 1);
  n->attrs[0] = ir_attr_int("index", g->inputs.len);
  n->nattrs = 1;
  node_register(g, n);
  CKC_VEC_PUSH(g_arena(g), g->inputs, n);
  CKC_VEC_PUSH(g_arena(g), g->input_names, n->name ? n->name : "");
  return n;
}

/* param: unique by name so that weight tying (the same `wte` used twice)
 * yields one node; a second request with another type is a sema bug. */
IrNode *ir_param(IrGraph *g, const char *name, CkDType dt, const CkShape *s, const IrAttr *attrs,
                 int nattrs, CkcLoc loc) {
  if (!name) CKC_ICE("ir_param: parameter without a name");
  check_shape_or_ice(name, s);
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *p = g->nodes.items[i];
    if (p->op == IR_OP_PARAM && p->name && strcmp(p->name, name) == 0) {
      if (p->dtype != dt || !ck_shape_eq(&p->shape, s)) {
        char a[IR_TYPE_STR_LEN], b[IR_TYPE_STR_LEN];
        CKC_ICE("ir_param: '%s' requested as %s and %s", name, ir_node_type_str(p, a),
                ck_type_str(dt, s, b, sizeof b));
      }
      return p;
    }
  }
  check_attrs_or_ice(IR_OP_PARAM, attrs, nattrs);
  IrNode *n = node_alloc(g, IR_OP_PARAM, name, loc);
  n->dtype = dt;
  set_shape(n, s);
  n->attrs = copy_attrs(g_arena(g), IR_OP_PARAM, attrs, nattrs, 0);
  n->nattrs = nattrs;
  return node_register(g, n);
}

/* const splat: one value, any shape; `value` holds it as a double. */
IrNode *ir_const_fill(IrGraph *g, CkDType dt, const CkShape *s, double v, CkcLoc loc) {
  check_shape_or_ice("const", s);
  IrNode *n = node_alloc(g, IR_OP_CONST, NULL, loc);
  n->dtype = dt;
  set_shape(n, s);
  n->attrs = CKC_NEW_ARRAY(g_arena(g), IrAttr, 1);
  n->attrs[0] = ir_attr_float("value", v);
  n->nattrs = 1;
  return node_register(g, n);
}

IrNode *ir_const_scalar(IrGraph *g, CkDType dt, double v, CkcLoc loc) {
  CkShape s = {0};
  return ir_const_fill(g, dt, &s, v, loc);
}

/* const dense: the bytes are copied (row-major, dtype as the node). */
IrNode *ir_const_data(IrGraph *g, CkDType dt, const CkShape *s, const void *data, CkcLoc loc) {
  check_shape_or_ice("const", s);
  int64_t numel;
  if (!ck_shape_numel(s, &numel)) CKC_ICE("ir_const_data: element count overflows");
  if (!data && numel > 0) CKC_ICE("ir_const_data: no data");
  IrNode *n = node_alloc(g, IR_OP_CONST, NULL, loc);
  n->dtype = dt;
  set_shape(n, s);
  size_t bytes = (size_t)numel * ck_dtype_size(dt);
  void *copy = ckc_arena_alloc(g_arena(g), bytes ? bytes : 1);
  if (bytes) memcpy(copy, data, bytes);
  n->data = copy;
  return node_register(g, n);
}

static bool is_axis_op(IrOp op) {
  return op == IR_OP_SLICE || op == IR_OP_CONCAT || op == IR_OP_ARGMAX || op == IR_OP_SOFTMAX ||
         op == IR_OP_LOG_SOFTMAX;
}

static bool is_reduce_op(IrOp op) {
  return op == IR_OP_SUM || op == IR_OP_MEAN || op == IR_OP_MAX;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Canonical attributes, so that passes, the verifier and backends see one
 * spelling: negative axes count from the end (-1 = last) and become
 * non-negative; softmax/argmax without an axis get the last one; reductions
 * without axes get all of them, sorted; attention gets causal=1 and
 * scale=1/sqrt(D) when absent; reshape's single -1 is resolved.
 * Out-of-range values are left alone for the shape rule to report. */
static bool normalise_attrs(IrNode *n, IrErr *err) {
  int rank = n->nin > 0 ? n->in[0]->shape.rank : 0;
  if (is_axis_op(n->op)) {
    IrAttr *a = find_attr_mut(n, "axis");
    if (!a) {
      n->attrs[n->nattrs++] = ir_attr_int("axis", rank - 1);
    } else if (a->i < 0 && a->i >= -(int64_t)rank) {
      a->i += rank;
    }
  }
  if (is_reduce_op(n->op)) {
    IrAttr *a = find_attr_mut(n, "axes");
    if (!a) {
      int64_t *all = CKC_NEW_ARRAY(g_arena(n->graph), int64_t, rank > 0 ? rank : 1);
      for (int i = 0; i < rank; i++) all[i] = i;
      n->attrs[n->nattrs++] = ir_attr_ints("axes", all, rank);
    } else {
      int64_t *v = (int64_t *)a->ints; /* our own arena copy */
      for (int i = 0; i < a->nints; i++)
        if (v[i] < 0 && v[i] >= -(int64_t)rank) v[i] += rank;
      if (a->nints > 1) qsort(v, (size_t)a->nints, sizeof *v, cmp_i64);
    }
  }
  if (n->op == IR_OP_ATTENTION) {
    /* the language's defaults, made explicit so no backend has to know them */
    if (!find_attr_mut(n, "causal")) n->attrs[n->nattrs++] = ir_attr_int("causal", 1);
    if (!find_attr_mut(n, "scale")) {
      int64_t d = rank > 0 ? n->in[0]->shape.dims[rank - 1] : 1;
      n->attrs[n->nattrs++] = ir_attr_float("scale", d > 0 ? 1.0 / sqrt((double)d) : 1.0);
    }
  }
  if (n->op == IR_OP_RESHAPE) {
    IrAttr *a = find_attr_mut(n, "shape");
    int64_t *v = (int64_t *)a->ints;
    int hole = -1;
    int64_t known = 1;
    char t[IR_TYPE_STR_LEN];
    for (int i = 0; i < a->nints; i++) {
      if (v[i] == -1) {
        if (hole >= 0)
          return ir_fail(err, "E0318", "reshape: more than one -1 in the target shape of %s",
                         ir_node_type_str(n->in[0], t));
        hole = i;
      } else if (v[i] < 0) {
        return ir_fail(err, "E0318", "reshape: negative dimension %lld in the target shape of %s",
                       (long long)v[i], ir_node_type_str(n->in[0], t));
      } else if (v[i] != 0 && known > INT64_MAX / v[i]) {
        return ir_fail(err, "E0330", "reshape: element count of the target shape overflows");
      } else {
        known *= v[i];
      }
    }
    if (hole >= 0) {
      int64_t total;
      if (!ck_shape_numel(&n->in[0]->shape, &total))
        return ir_fail(err, "E0330", "reshape: element count of %s overflows",
                       ir_node_type_str(n->in[0], t));
      if (known == 0 || total % known != 0)
        return ir_fail(err, "E0318",
                       "reshape: cannot infer -1: %lld elements of %s are not a multiple of %lld",
                       (long long)total, ir_node_type_str(n->in[0], t), (long long)known);
      v[hole] = total / known;
    }
  }
  return true;
}

/* Any non-leaf op. Arity, input ownership and attribute schema are ckc's own
 * invariants (ICE); the shape rule's verdict is the user's (IrErr). */
IrNode *ir_op(IrGraph *g, IrOp op, IrNode *const *in, int nin, const IrAttr *attrs, int nattrs,
              const char *name, CkcLoc loc, IrErr *err) {
  if ((unsigned)op >= IR_OP_COUNT) CKC_ICE("ir_op: bad op %d", (int)op);
  const IrOpInfo *info = &ir_op_info[op];
  if (info->flags & IR_OPF_LEAF) CKC_ICE("ir_op: %s is a leaf; use its builder", info->name);
  if (op == IR_OP_CALL) CKC_ICE("ir_op: use ir_call for calls");
  if (nin < info->min_in || (info->max_in >= 0 && nin > info->max_in))
    CKC_ICE("ir_op: %s takes %d..%d inputs, got %d", info->name, info->min_in, info->max_in, nin);
  for (int i = 0; i < nin; i++) {
    if (!in[i]) CKC_ICE("ir_op: %s: input %d is NULL", info->name, i);
    if (in[i]->graph != g)
      CKC_ICE("ir_op: %s: input %d (%%%d) belongs to another graph", info->name, i, in[i]->id);
  }
  check_attrs_or_ice(op, attrs, nattrs);

  IrNode *n = node_alloc(g, op, name, loc);
  n->in = CKC_NEW_ARRAY(g_arena(g), IrNode *, nin > 0 ? nin : 1);
  for (int i = 0; i < nin; i++) n->in[i] = in[i];
  n->nin = nin;
  n->attrs = copy_attrs(g_arena(g), op, attrs, nattrs, 2);
  n->nattrs = nattrs;

  IrErr local;
  if (!err) err = &local;
  err->id = NULL;
  err->msg[0] = 0;
  if (!normalise_attrs(n, err)) return NULL;
  CkDType dt;
  CkShape sh;
  memset(&sh, 0, sizeof sh);
  if (!info->infer(n, &dt, &sh, err)) {
    if (err == &local) CKC_ICE("ir_op: unreported shape error: %s", local.msg);
    return NULL;
  }
  if (!ck_shape_numel(&sh, NULL)) {
    char t[IR_TYPE_STR_LEN];
    ir_fail(err, "E0330", "%s: the result %s has more elements than fit in 64 bits", info->name,
            ck_type_str(dt, &sh, t, sizeof t));
    if (err == &local) CKC_ICE("ir_op: %s", local.msg);
    return NULL;
  }
  n->dtype = dt;
  set_shape(n, &sh);
  return node_register(g, n);
}

/* reshape to a known shape: the builder spells it as the `shape` attribute. */
IrNode *ir_reshape(IrGraph *g, IrNode *x, const CkShape *s, const char *name, CkcLoc loc,
                   IrErr *err) {
  IrAttr a = ir_attr_ints("shape", s->dims, s->rank);
  return ir_op(g, IR_OP_RESHAPE, &x, 1, &a, 1, name, loc, err);
}

/* call: sema binds the callee per argument shapes, so argument types that do
 * not match the callee's inputs are a ckc bug, not a user error. */
IrNode *ir_call(IrGraph *g, IrGraph *callee, const char *prefix, IrNode *const *in, int nin,
                const char *name, CkcLoc loc) {
  if (!callee) CKC_ICE("ir_call: no callee");
  if (callee == g) CKC_ICE("ir_call: graph '%s' calls itself", g->name);
  if (callee->outputs.len < 1) CKC_ICE("ir_call: callee '%s' has no output yet", callee->name);
  if (nin != callee->inputs.len)
    CKC_ICE("ir_call: '%s' takes %d arguments, got %d", callee->name, callee->inputs.len, nin);
  for (int i = 0; i < nin; i++) {
    const IrNode *p = callee->inputs.items[i];
    if (!in[i] || in[i]->graph != g)
      CKC_ICE("ir_call: '%s': argument %d is not a node of '%s'", callee->name, i, g->name);
    if (in[i]->dtype != p->dtype || !ck_shape_eq(&in[i]->shape, &p->shape)) {
      char a[IR_TYPE_STR_LEN], b[IR_TYPE_STR_LEN];
      CKC_ICE("ir_call: '%s': argument %d is %s, the callee expects %s", callee->name, i,
              ir_node_type_str(in[i], a), ir_node_type_str(p, b));
    }
  }
  IrNode *n = node_alloc(g, IR_OP_CALL, name, loc);
  n->in = CKC_NEW_ARRAY(g_arena(g), IrNode *, nin > 0 ? nin : 1);
  for (int i = 0; i < nin; i++) n->in[i] = in[i];
  n->nin = nin;
  n->callee = callee;
  n->prefix = prefix ? ckc_arena_strdup(g_arena(g), prefix) : NULL;
  IrErr err;
  CkDType dt;
  CkShape sh;
  memset(&sh, 0, sizeof sh);
  if (!ir_infer_call(n, &dt, &sh, &err)) CKC_ICE("ir_call: %s", err.msg);
  n->dtype = dt;
  set_shape(n, &sh);
  return node_register(g, n);
}

void ir_set_output(IrGraph *g, IrNode *n) {
  if (!n || n->graph != g) CKC_ICE("ir_set_output: node is not in graph '%s'", g->name);
  CKC_VEC_PUSH(g_arena(g), g->outputs, n);
}

/* clone: same op, attributes, callee and data, new inputs and a new id in g.
 * new_name NULL keeps the original name. The shape rule runs again, so a
 * clone over differently shaped inputs (autodiff) gets its own type; a
 * failure there is a pass bug. A cloned INPUT is not added to g->inputs. */
IrNode *ir_clone_node(IrGraph *g, const IrNode *n, IrNode *const *new_in, const char *new_name) {
  IrNode *c = node_alloc(g, n->op, new_name ? new_name : n->name, n->loc);
  c->dtype = n->dtype;
  c->shape = n->shape;
  c->nin = n->nin;
  c->in = CKC_NEW_ARRAY(g_arena(g), IrNode *, n->nin > 0 ? n->nin : 1);
  for (int i = 0; i < n->nin; i++) {
    IrNode *x = new_in ? new_in[i] : n->in[i];
    if (!x || x->graph != g)
      CKC_ICE("ir_clone_node: input %d of %%%d is not a node of '%s'", i, n->id, g->name);
    c->in[i] = x;
  }
  c->attrs = copy_attrs(g_arena(g), n->op, n->attrs, n->nattrs, 0);
  c->nattrs = n->nattrs;
  c->callee = n->callee;
  c->prefix = n->prefix ? ckc_arena_strdup(g_arena(g), n->prefix) : NULL;
  c->data = n->data;
  if (!(ir_op_info[n->op].flags & IR_OPF_LEAF)) {
    IrErr err;
    CkDType dt;
    CkShape sh;
    memset(&sh, 0, sizeof sh);
    if (!ir_op_info[n->op].infer(c, &dt, &sh, &err)) CKC_ICE("ir_clone_node: %s", err.msg);
    c->dtype = dt;
    set_shape(c, &sh);
  }
  return node_register(g, c);
}

/* ---- mutation helpers --------------------------------------------------------------------- */

/* RAUW. repl's own inputs are left alone, so `x -> f(x)` rewrites (insert a
 * cast after x) do not create a cycle. */
void ir_replace_uses(IrGraph *g, IrNode *old, IrNode *repl) {
  if (old == repl) return;
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    if (n == repl) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] == old) n->in[j] = repl;
  }
  for (int i = 0; i < g->outputs.len; i++)
    if (g->outputs.items[i] == old) g->outputs.items[i] = repl;
}

/* Kahn's algorithm with a min-heap on node id: among the nodes whose inputs
 * are placed, the oldest goes first, so an already ordered graph keeps its
 * order and new nodes land right after their last input. Scratch arrays are
 * indexed by id (ids are < next_id) so that node->mark/aux stay the caller's. */
static void heap_push(int *heap, int *len, int v, const int *key) {
  int i = (*len)++;
  heap[i] = v;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (key[heap[p]] <= key[heap[i]]) break;
    int t = heap[p];
    heap[p] = heap[i];
    heap[i] = t;
    i = p;
  }
}

static int heap_pop(int *heap, int *len, const int *key) {
  int top = heap[0];
  heap[0] = heap[--(*len)];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < *len && key[heap[l]] < key[heap[m]]) m = l;
    if (r < *len && key[heap[r]] < key[heap[m]]) m = r;
    if (m == i) break;
    int t = heap[m];
    heap[m] = heap[i];
    heap[i] = t;
    i = m;
  }
  return top;
}

void ir_graph_toposort(IrGraph *g) {
  int n = g->nodes.len;
  if (n == 0) return;
  CkcArena *a = g_arena(g);
  int *pos_of_id = CKC_NEW_ARRAY(a, int, g->next_id > 0 ? g->next_id : 1);
  for (int i = 0; i < g->next_id; i++) pos_of_id[i] = -1;
  int *key = CKC_NEW_ARRAY(a, int, n);
  for (int i = 0; i < n; i++) {
    IrNode *x = g->nodes.items[i];
    if (x->id < 0 || x->id >= g->next_id || pos_of_id[x->id] >= 0)
      CKC_ICE("ir_graph_toposort: bad or duplicate id %d in '%s'", x->id, g->name);
    pos_of_id[x->id] = i;
    key[i] = x->id;
  }
  int *indeg = CKC_NEW_ARRAY(a, int, n);
  int *nusers = CKC_NEW_ARRAY(a, int, n + 1);
  for (int i = 0; i < n; i++) {
    IrNode *x = g->nodes.items[i];
    for (int j = 0; j < x->nin; j++) {
      IrNode *y = x->in[j];
      if (!y || y->graph != g || y->id < 0 || y->id >= g->next_id || pos_of_id[y->id] < 0)
        CKC_ICE("ir_graph_toposort: %%%d uses a node outside '%s'", x->id, g->name);
      indeg[i]++;
      nusers[pos_of_id[y->id]]++;
    }
  }
  /* users in CSR form */
  int *start = CKC_NEW_ARRAY(a, int, n + 1);
  for (int i = 0; i < n; i++) start[i + 1] = start[i] + nusers[i];
  int *fill = CKC_NEW_ARRAY(a, int, n);
  int *users = CKC_NEW_ARRAY(a, int, start[n] > 0 ? start[n] : 1);
  for (int i = 0; i < n; i++) {
    IrNode *x = g->nodes.items[i];
    for (int j = 0; j < x->nin; j++) {
      int p = pos_of_id[x->in[j]->id];
      users[start[p] + fill[p]++] = i;
    }
  }
  int *heap = CKC_NEW_ARRAY(a, int, n);
  int hlen = 0;
  for (int i = 0; i < n; i++)
    if (indeg[i] == 0) heap_push(heap, &hlen, i, key);
  IrNode **order = CKC_NEW_ARRAY(a, IrNode *, n);
  int placed = 0;
  while (hlen > 0) {
    int i = heap_pop(heap, &hlen, key);
    order[placed++] = g->nodes.items[i];
    for (int k = start[i]; k < start[i + 1]; k++)
      if (--indeg[users[k]] == 0) heap_push(heap, &hlen, users[k], key);
  }
  if (placed != n) CKC_ICE("ir_graph_toposort: graph '%s' has a cycle", g->name);
  memcpy(g->nodes.items, order, sizeof(IrNode *) * (size_t)n);
}

/* INPUT nodes are never dropped: they are the graph's signature. */
void ir_graph_remove_marked(IrGraph *g) {
  int k = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    if (n->mark && n->op != IR_OP_INPUT) continue;
    g->nodes.items[k++] = n;
  }
  g->nodes.len = k;
}

/* One count per operand slot (add(x, x) uses x twice) and per output slot. */
void ir_count_uses(IrGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) g->nodes.items[i]->mark = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    for (int j = 0; j < n->nin; j++) n->in[j]->mark++;
  }
  for (int i = 0; i < g->outputs.len; i++) g->outputs.items[i]->mark++;
}
