/* passes/decode.c - decode: derive a one-position entry graph "decode" from
 * the forward of a language model, for generation with a K/V cache.
 *
 *   forward(idx: i32[B, T]) -> f32[B, T, V]
 *     =>  decode(tokens: i32[B, 1], position: i32[1]) -> f32[B, 1, V]
 *
 * The pass tracks, for every value the forward's output depends on, which
 * axis (if any) runs along the sequence: the "row axis". A value whose every
 * op acts on each row alone (elementwise ops, matmuls against weights,
 * norms and softmax over other axes, reshapes and permutes that keep the
 * axis whole, embeddings) is rebuilt with that axis cut to one row. Two
 * cases read more than the current row:
 *
 *   - a parameter or constant with T rows broadcast into a row-wise value
 *     (GPT-2's wpe [T, C] added to [B, T, C]) is read at row `position`:
 *     embedding(wpe, position), which gives [1, C] and bounds-checks it;
 *   - a causal self-attention attention(q, k, v), all three row-wise on
 *     their T axis, keeps its form attention(q1, k1, v1) on the one row.
 *     In the decode entry the back end gives every attention node a K/V
 *     cache (lower/lower.c): it stores k1, v1 at row `position` of the
 *     layer's cache and attends over rows 0..position. That is exactly row
 *     `position` of the causal attention over the whole sequence.
 *
 * Anything else (a reduction or softmax over the row axis, a slice or
 * concat along it, a non-causal attention, convolutions, a reshape that
 * merges the row axis with another) means the analysis cannot prove the
 * forward row-wise: the module then gets no decode entry, and the runtime
 * samples with the full forward as before. So every decode graph computes,
 * op for op, what the forward computes for its last row, and the back end
 * runs the same kernels in the same order on it (docs/passes.md "decode").
 *
 * The pass runs right after inline, so fold, cse, dce and fusion treat the
 * decode graph like the forward. */
#include <string.h>

#include "passes/passes.h"

enum { DC_STATIC = -1, DC_NONE = -2 };

typedef struct DcCtx {
  IrModule *m;
  const IrGraph *src;  /* forward */
  IrGraph *g;          /* decode, under construction */
  int64_t T;           /* sequence length of forward's input */
  int *axis;           /* by source node id: the row axis, DC_STATIC (no row axis) or DC_NONE */
  IrNode **nw;         /* by source node id: its value in the decode graph */
  IrNode **rows;       /* by source node id: a static value read at `position` (memo) */
  IrNode *position;    /* the decode graph's position input, i32[1] */
  bool ok;
} DcCtx;

/* A rejected pattern: no decode entry (not an error: sample uses forward). */
static bool dc_reject(DcCtx *c) {
  c->ok = false;
  return false;
}

static IrNode *dc_op(DcCtx *c, IrOp op, IrNode *const *in, int nin, const IrAttr *attrs, int nattrs,
                     const char *name, CkcLoc loc) {
  IrErr err;
  IrNode *n = ir_op(c->g, op, in, nin, attrs, nattrs, name, loc, &err);
  if (!n) CKC_ICE("decode: rebuilding %s: %s", ir_op_name(op), err.msg);
  return n;
}

static IrNode *dc_reshape(DcCtx *c, IrNode *x, const CkShape *s, const char *name, CkcLoc loc) {
  IrErr err;
  IrNode *n = ir_reshape(c->g, x, s, name, loc, &err);
  if (!n) CKC_ICE("decode: reshape: %s", err.msg);
  return n;
}

/* static x (shape aligned to the right of a rank-R value whose row axis is
 * `ax`) as an operand of a row-wise op: unchanged when it has no extent
 * along the row axis, else its row `position`:
 *   x [.., T, rest..] -> reshape [T, prod(rest)] -> embedding(., position)
 *     -> [1, prod(rest)] -> reshape to x's shape with T -> 1.
 * Only leading unit dims may precede the row axis. */
static IrNode *dc_static_operand(DcCtx *c, const IrNode *x, int R, int ax) {
  IrNode *v = c->nw[x->id];
  int a = ax - (R - x->shape.rank);
  if (a < 0 || x->shape.dims[a] == 1) return v;
  if (x->shape.dims[a] != c->T || !ck_dtype_is_float(x->dtype)) {
    dc_reject(c);
    return NULL;
  }
  if (c->rows[x->id]) return c->rows[x->id];
  for (int i = 0; i < a; i++)
    if (x->shape.dims[i] != 1) {
      dc_reject(c);
      return NULL;
    }
  int64_t rest = 1;
  for (int i = a + 1; i < x->shape.rank; i++) rest *= x->shape.dims[i];
  IrNode *tab = v;
  if (!(x->shape.rank == 2 && a == 0)) {
    CkShape ts = {2, {c->T, rest}};
    tab = dc_reshape(c, v, &ts, NULL, x->loc);
  }
  IrNode *in[2] = {tab, c->position};
  IrNode *row = dc_op(c, IR_OP_EMBEDDING, in, 2, NULL, 0, NULL, x->loc);
  CkShape rs = x->shape;
  rs.dims[a] = 1;
  if (!(x->shape.rank == 2 && a == 0)) row = dc_reshape(c, row, &rs, NULL, x->loc);
  c->rows[x->id] = row;
  return row;
}

/* The operands of an op whose result (rank R) is row-wise on the axis its
 * row-wise operands agree on (right-aligned, as broadcasting aligns them).
 * Returns that axis, or DC_NONE after a rejection; static operands are read
 * at `position` where they extend along it. */
static int dc_aligned_operands(DcCtx *c, const IrNode *n, int R, IrNode **in) {
  int ax = DC_STATIC;
  for (int i = 0; i < n->nin; i++) {
    const IrNode *x = n->in[i];
    int xa = c->axis[x->id];
    if (xa == DC_STATIC) continue;
    int oa = xa + (R - x->shape.rank);
    if (ax != DC_STATIC && oa != ax) return dc_reject(c), DC_NONE;
    ax = oa;
  }
  for (int i = 0; i < n->nin && c->ok; i++) {
    const IrNode *x = n->in[i];
    in[i] = c->axis[x->id] == DC_STATIC ? dc_static_operand(c, x, R, ax) : c->nw[x->id];
  }
  return c->ok ? ax : DC_NONE;
}

static int dc_norm_axis(int64_t a, int rank) { return (int)(a < 0 ? a + rank : a); }

/* One node of the forward whose inputs are rebuilt: its value in decode and
 * its row axis. Returns false after a rejection. */
static bool dc_node(DcCtx *c, const IrNode *n) {
  int id = n->id, R = n->shape.rank;
  IrNode **in = CKC_NEW_ARRAY(c->m->arena, IrNode *, n->nin > 0 ? n->nin : 1);
  bool any_row = false;
  for (int i = 0; i < n->nin; i++) {
    in[i] = c->nw[n->in[i]->id];
    any_row = any_row || c->axis[n->in[i]->id] != DC_STATIC;
  }
  if (!any_row) { /* parameters and what is computed from them alone */
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = DC_STATIC;
    return true;
  }
  const IrNode *x = n->in[0];
  int xa = c->axis[x->id];
  const IrOpInfo *info = &ir_op_info[n->op];
  if ((info->flags & IR_OPF_ELEMWISE) || n->op == IR_OP_CONCAT) {
    int ax = dc_aligned_operands(c, n, R, in);
    if (ax == DC_NONE) return false;
    if (n->op == IR_OP_CONCAT && dc_norm_axis(ir_get_int(n, "axis", 0), R) == ax) return dc_reject(c);
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = ax;
    return true;
  }
  switch (n->op) {
  case IR_OP_STOP_GRADIENT:
  case IR_OP_PERMUTE: {
    int ax = xa;
    if (n->op == IR_OP_PERMUTE) {
      int np = 0;
      const int64_t *perm = ir_get_ints(n, "perm", &np);
      for (int i = 0; i < np; i++)
        if (perm[i] == xa) ax = i;
    }
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = ax;
    return true;
  }
  case IR_OP_RESHAPE:
  case IR_OP_BROADCAST: {
    /* the row axis must survive whole: the output axis with the same
     * extent and the same number of elements before it */
    int ax = DC_NONE;
    if (n->op == IR_OP_BROADCAST) {
      ax = xa + (R - x->shape.rank);
    } else {
      int64_t before = 1, ob = 1;
      for (int i = 0; i < xa; i++) before *= x->shape.dims[i];
      for (int j = 0; j < R && ax == DC_NONE; j++) {
        if (ob == before && n->shape.dims[j] == c->T) ax = j;
        ob *= n->shape.dims[j];
      }
    }
    if (ax == DC_NONE || n->shape.dims[ax] != c->T) return dc_reject(c);
    CkShape s = n->shape;
    s.dims[ax] = 1;
    if (n->op == IR_OP_RESHAPE) {
      c->nw[id] = dc_reshape(c, in[0], &s, n->name, n->loc);
    } else {
      IrAttr at = ir_attr_ints("shape", s.dims, s.rank);
      c->nw[id] = dc_op(c, IR_OP_BROADCAST, in, 1, &at, 1, n->name, n->loc);
    }
    c->axis[id] = ax;
    return true;
  }
  case IR_OP_SLICE: {
    int a = dc_norm_axis(ir_get_int(n, "axis", 0), x->shape.rank);
    if (a == xa) return dc_reject(c); /* a window of rows */
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = xa;
    return true;
  }
  case IR_OP_SUM:
  case IR_OP_MEAN:
  case IR_OP_MAX:
  case IR_OP_ARGMAX: {
    int na = 0, removed = 0;
    const int64_t *axes = ir_get_ints(n, "axes", &na);
    int64_t one = ir_get_int(n, "axis", 0);
    if (n->op == IR_OP_ARGMAX) {
      axes = &one;
      na = 1;
    }
    if (!axes) return dc_reject(c); /* over everything, rows included */
    for (int i = 0; i < na; i++) {
      int a = dc_norm_axis(axes[i], x->shape.rank);
      if (a == xa) return dc_reject(c);
      if (a < xa) removed++;
    }
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = ir_get_int(n, "keepdim", 0) ? xa : xa - removed;
    return true;
  }
  case IR_OP_SOFTMAX:
  case IR_OP_LOG_SOFTMAX:
    if (dc_norm_axis(ir_get_int(n, "axis", -1), R) == xa) return dc_reject(c);
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = xa;
    return true;
  case IR_OP_LAYERNORM:
  case IR_OP_RMSNORM:
    /* over the last axis, with per-channel weights */
    for (int i = 1; i < n->nin; i++)
      if (c->axis[n->in[i]->id] != DC_STATIC) return dc_reject(c);
    if (xa == R - 1) return dc_reject(c);
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = xa;
    return true;
  case IR_OP_EMBEDDING:
    if (c->axis[n->in[0]->id] != DC_STATIC) return dc_reject(c);
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = c->axis[n->in[1]->id];
    return true;
  case IR_OP_MATMUL: {
    /* row-wise A (rows on its M axis or a batch axis) times a static B */
    const IrNode *Bn = n->in[1];
    int ra = x->shape.rank;
    bool ta = ir_get_int(n, "transpose_a", 0) != 0;
    if (c->axis[Bn->id] != DC_STATIC || xa < 0 || ra < 2) return dc_reject(c);
    int m_axis = ta ? ra - 1 : ra - 2;
    int ax;
    if (xa == m_axis) {
      ax = R - 2;
    } else if (xa < ra - 2) {
      ax = xa + (R - ra);
      int bb = ax - (R - Bn->shape.rank); /* B's batch dim under the row axis */
      if (bb >= 0 && bb < Bn->shape.rank - 2 && Bn->shape.dims[bb] != 1) return dc_reject(c);
    } else {
      return dc_reject(c); /* the contracted axis */
    }
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = ax;
    return true;
  }
  case IR_OP_ATTENTION: {
    /* causal self-attention over the sequence: each of q, k, v row-wise on
     * its T axis; becomes attention against the K/V cache in decode */
    int r = x->shape.rank;
    if (!ir_get_int(n, "causal", 0)) return dc_reject(c);
    for (int i = 0; i < 3; i++) {
      const IrNode *t = n->in[i];
      if (c->axis[t->id] != r - 2 || t->shape.dims[r - 2] != c->T) return dc_reject(c);
    }
    c->nw[id] = ir_clone_node(c->g, n, in, NULL);
    c->axis[id] = r - 2;
    return true;
  }
  default: return dc_reject(c); /* convolutions, pools, losses: not row-wise */
  }
}

/* Marks in `live` every node the output depends on. */
static void dc_live(const IrGraph *g, bool *live) {
  for (int i = 0; i < g->outputs.len; i++) live[g->outputs.items[i]->id] = true;
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    const IrNode *n = g->nodes.items[i];
    if (!live[n->id]) continue;
    for (int k = 0; k < n->nin; k++) live[n->in[k]->id] = true;
  }
}

/* The language-model form that `sample` drives: forward(i32[B, T]) ->
 * f32[B, T, V], same B and T. */
static bool dc_is_lm(const IrGraph *f) {
  if (f->inputs.len != 1 || f->outputs.len != 1) return false;
  const IrNode *x = f->inputs.items[0], *y = f->outputs.items[0];
  return x->dtype == CK_DT_I32 && x->shape.rank == 2 && y->dtype == CK_DT_F32 && y->shape.rank == 3 &&
         y->shape.dims[0] == x->shape.dims[0] && y->shape.dims[1] == x->shape.dims[1] && x->shape.dims[1] >= 1;
}

bool pass_decode(IrModule *m, CkcDiag *d) {
  (void)d;
  const IrGraph *f = ir_module_entry(m, "forward");
  if (!f || ir_module_entry(m, "decode") || !dc_is_lm(f)) return true;
  int nid = f->next_id + 1;
  for (int i = 0; i < f->nodes.len; i++)
    if (f->nodes.items[i]->id >= nid) nid = f->nodes.items[i]->id + 1;
  DcCtx cx = {.m = m, .src = f, .ok = true};
  DcCtx *c = &cx;
  c->T = f->inputs.items[0]->shape.dims[1];
  c->axis = CKC_NEW_ARRAY(m->arena, int, nid);
  c->nw = CKC_NEW_ARRAY(m->arena, IrNode *, nid);
  c->rows = CKC_NEW_ARRAY(m->arena, IrNode *, nid);
  bool *live = CKC_NEW_ARRAY(m->arena, bool, nid);
  memset(live, 0, sizeof(bool) * (size_t)nid);
  dc_live(f, live);
  for (int i = 0; i < nid; i++) c->axis[i] = DC_NONE;

  /* built aside first: a rejected graph must not stay in the module */
  IrGraph *g = ir_graph_new(m, "decode", true);
  m->graphs.len--;
  c->g = g;
  const IrNode *idx = f->inputs.items[0];
  CkShape ts = {2, {idx->shape.dims[0], 1}}, ps = {1, {1}};
  c->nw[idx->id] = ir_input(g, "tokens", CK_DT_I32, &ts, idx->loc);
  c->axis[idx->id] = 1;
  c->position = ir_input(g, "position", CK_DT_I32, &ps, idx->loc);
  for (int i = 0; i < f->nodes.len && c->ok; i++) {
    const IrNode *n = f->nodes.items[i];
    if (!live[n->id] || n->op == IR_OP_INPUT) continue;
    if (ir_op_info[n->op].flags & IR_OPF_LEAF) {
      c->nw[n->id] = ir_clone_node(g, n, NULL, NULL);
      c->axis[n->id] = DC_STATIC;
      continue;
    }
    dc_node(c, n);
  }
  const IrNode *out = f->outputs.items[0];
  if (!c->ok || c->axis[out->id] != 1) return true;
  ir_set_output(g, c->nw[out->id]);
  CKC_VEC_PUSH(m->arena, m->graphs, g);
  return true;
}
