/* passes/fusion.c - fusion: elementwise chains into one loop, elementwise
 * epilogues into the matmul that feeds them.
 *
 *   ew(ew(x, y), z)          -> fused_ew(x, y, z) body="op1($0,$1); op2(t0,$2)"
 *   ew(matmul(a, b), bias)   -> fused_matmul(a, b, bias) body="add($0,$1)"
 *
 * Both rewrites keep every single op, its operand order and its rounding:
 * the fused body is the unfused instructions in graph order, so the
 * generated loop computes the same floats, bitwise (docs/passes.md).
 *
 * A group is grown backwards from a root (a float elementwise op): an
 * elementwise producer joins when it has the root's shape (no value is
 * recomputed per broadcast element) and every one of its uses is already in
 * the group (no value is computed twice, none is lost). Non-root members
 * therefore have no use outside the group, which also makes the fused node
 * acyclic. A group of one op stays as it is. */
#include <string.h>

#include "ir/fused.h"
#include "passes/passes.h"

typedef struct FuseCtx {
  IrGraph *g;
  CkcArena *a;
  int nid;
  int *uses;   /* node id -> number of input slots (and outputs) reading it */
  int *group;  /* node id -> group number, -1 none */
  int *pos;    /* node id -> position in the graph (orders a group's members) */
  int fused_ew, fused_mm, absorbed;
} FuseCtx;

/* A root or member: a float elementwise op the body language can express
 * (compares only as members, feeding a where). */
static bool fuse_ok_op(const IrNode *n, bool root) {
  if (!ir_fused_op_ok(n->op)) return false;
  if (ir_op_info[n->op].flags & IR_OPF_COMPARE)
    return !root && ck_dtype_is_float(n->in[0]->dtype);
  return ck_dtype_is_float(n->dtype);
}

#define FUSE_MAX_EXT 8

static bool fuse_is_splat(const IrNode *n) { return n->op == IR_OP_CONST && !n->data; }

static bool fuse_is_output(const IrGraph *g, const IrNode *n) {
  for (int i = 0; i < g->outputs.len; i++)
    if (g->outputs.items[i] == n) return true;
  return false;
}

/* Distinct operands of a member set that need memory (splats are literals):
 * the lowered loop has at most LOWER_MAX_OPERANDS (8) of them. */
static int fuse_count_ext(FuseCtx *c, IrNode **mem, int nm, int gid) {
  const IrNode *seen[FUSE_MAX_EXT + 1];
  int cnt = 0;
  for (int i = 0; i < nm; i++)
    for (int k = 0; k < mem[i]->nin; k++) {
      const IrNode *x = mem[i]->in[k];
      if (c->group[x->id] == gid || fuse_is_splat(x)) continue;
      bool dup = false;
      for (int j = 0; j < cnt && !dup; j++) dup = seen[j] == x;
      if (dup) continue;
      if (cnt == FUSE_MAX_EXT) return cnt + 1;
      seen[cnt++] = x;
    }
  return cnt;
}

/* Grows the group of root: repeatedly adds producers whose every use is a
 * member; returns the members in graph (topological) order. */
static int fuse_grow(FuseCtx *c, IrNode *root, int gid, IrNode **mem) {
  int nm = 0;
  mem[nm++] = root;
  c->group[root->id] = gid;
  bool changed = true;
  while (changed) {
    changed = false;
    for (int i = 0; i < nm; i++) {
      for (int k = 0; k < mem[i]->nin; k++) {
        IrNode *p = mem[i]->in[k];
        if (c->group[p->id] != -1 || !fuse_ok_op(p, false) || !ck_shape_eq(&p->shape, &root->shape)) continue;
        if (fuse_is_output(c->g, p) || nm >= IR_FUSED_MAX_INSTR) continue;
        int inside = 0;
        for (int j = 0; j < nm; j++)
          for (int q = 0; q < mem[j]->nin; q++) inside += mem[j]->in[q] == p;
        if (inside != c->uses[p->id]) continue;
        c->group[p->id] = gid;
        mem[nm++] = p;
        if (fuse_count_ext(c, mem, nm, gid) > FUSE_MAX_EXT) {
          c->group[p->id] = -1;
          nm--;
          continue;
        }
        changed = true;
      }
    }
  }
  /* graph order: node positions are ids' order after toposort; sort by position */
  for (int i = 1; i < nm; i++) {
    IrNode *x = mem[i];
    int j = i;
    while (j > 0 && c->pos[mem[j - 1]->id] > c->pos[x->id]) {
      mem[j] = mem[j - 1];
      j--;
    }
    mem[j] = x;
  }
  return nm;
}

/* The body of members mem[0..nm) (in graph order) over the operand list
 * ops (appended as met); `self` maps an extra node to operand 0 (the
 * matmul product of an epilogue), NULL for none. */
static const char *fuse_body(FuseCtx *c, IrNode **mem, int nm, IrNode **ops, int *nops, const IrNode *self) {
  IrFusedProg *p = CKC_NEW(c->a, IrFusedProg);
  p->n = nm;
  for (int i = 0; i < nm; i++) {
    const IrNode *m = mem[i];
    IrFusedInstr *in = &p->ins[i];
    in->op = m->op;
    in->gelu_tanh = m->op == IR_OP_GELU && strcmp(ir_get_str(m, "approximate", "none"), "tanh") == 0;
    in->nargs = m->nin;
    for (int k = 0; k < m->nin; k++) {
      IrNode *x = m->in[k];
      int idx = -1;
      for (int j = 0; j < i && idx < 0; j++)
        if (mem[j] == x) idx = j;
      if (idx >= 0) {
        in->arg[k] = idx;
        continue;
      }
      int o = -1;
      if (x == self) o = 0;
      for (int j = 0; j < *nops && o < 0; j++)
        if (ops[j] == x) o = j;
      if (o < 0) {
        o = *nops;
        ops[(*nops)++] = x;
      }
      in->arg[k] = IR_FUSED_OPERAND(o);
    }
  }
  return ir_fused_format(c->a, p);
}

static void fuse_count(FuseCtx *c) {
  IrGraph *g = c->g;
  c->nid = g->next_id + 1;
  for (int i = 0; i < g->nodes.len; i++)
    if (g->nodes.items[i]->id >= c->nid) c->nid = g->nodes.items[i]->id + 1;
  c->uses = CKC_NEW_ARRAY(c->a, int, c->nid);
  c->group = CKC_NEW_ARRAY(c->a, int, c->nid);
  c->pos = CKC_NEW_ARRAY(c->a, int, c->nid);
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    c->group[n->id] = -1;
    c->pos[n->id] = i; /* graph position */
    for (int k = 0; k < n->nin; k++) c->uses[n->in[k]->id]++;
  }
  for (int i = 0; i < g->outputs.len; i++) c->uses[g->outputs.items[i]->id]++;
}

/* Replaces `old` (and drops `dead` nodes) by `repl`, which ir_op appended. */
static void fuse_finish(IrGraph *g) {
  ir_graph_remove_marked(g);
  ir_graph_toposort(g);
}

/* ---- elementwise chains ------------------------------------------------------------------ */

/* ew chains: roots from the last node backwards, so a group's root is its
 * last member and groups never overlap. */
static bool fuse_ew(FuseCtx *c, CkcDiag *d) {
  IrGraph *g = c->g;
  fuse_count(c);
  IrNode **mem = CKC_NEW_ARRAY(c->a, IrNode *, IR_FUSED_MAX_INSTR + 1);
  IrNode **ops = CKC_NEW_ARRAY(c->a, IrNode *, IR_FUSED_MAX_INSTR * 3 + 1);
  int ngroups = 0;
  int nnodes = g->nodes.len;
  IrNode **snapshot = CKC_NEW_ARRAY(c->a, IrNode *, nnodes + 1);
  for (int i = 0; i < nnodes; i++) snapshot[i] = g->nodes.items[i];
  for (int i = 0; i < nnodes; i++) snapshot[i]->mark = 0;
  for (int i = nnodes - 1; i >= 0; i--) {
    IrNode *root = snapshot[i];
    if (c->group[root->id] != -1 || !fuse_ok_op(root, true)) continue;
    int gid = ngroups++;
    int nm = fuse_grow(c, root, gid, mem);
    if (nm < 2) continue;
    int nops = 0;
    const char *body = fuse_body(c, mem, nm, ops, &nops, NULL);
    IrAttr at = ir_attr_str("body", body);
    IrErr err;
    IrNode *f = ir_op(g, IR_OP_FUSED_EW, ops, nops, &at, 1, root->name, root->loc, &err);
    if (!f) return ckc_error(d, root->loc, "E0332", "internal: fusion built a bad fused_ew: %s", err.msg);
    ir_replace_uses(g, root, f);
    for (int k = 0; k < nm; k++) mem[k]->mark = 1;
    c->fused_ew++;
    c->absorbed += nm;
  }
  fuse_finish(g);
  return true;
}

/* ---- matmul epilogues ---------------------------------------------------------------------- */

/* u(..., matmul(a, b), ...) -> fused_matmul(a, b, ...) when u is a float
 * elementwise op or fused_ew of the product's shape and the product has no
 * other use: the epilogue runs over the product while it is in cache. */
static bool fuse_epilogues(FuseCtx *c, CkcDiag *d) {
  IrGraph *g = c->g;
  fuse_count(c);
  int nnodes = g->nodes.len;
  IrNode **snapshot = CKC_NEW_ARRAY(c->a, IrNode *, nnodes + 1);
  for (int i = 0; i < nnodes; i++) snapshot[i] = g->nodes.items[i];
  for (int i = 0; i < nnodes; i++) snapshot[i]->mark = 0;
  IrNode **ops = CKC_NEW_ARRAY(c->a, IrNode *, IR_FUSED_MAX_INPUTS + 3);
  for (int i = 0; i < nnodes; i++) {
    IrNode *u = snapshot[i];
    bool ew = u->op == IR_OP_FUSED_EW || fuse_ok_op(u, true);
    if (!ew || u->dtype != CK_DT_F32) continue;
    IrNode *mm = NULL;
    for (int k = 0; k < u->nin && !mm; k++) {
      IrNode *x = u->in[k];
      if (x->op != IR_OP_MATMUL || x->mark || x->dtype != CK_DT_F32 || !ck_shape_eq(&x->shape, &u->shape)) continue;
      int inside = 0;
      for (int q = 0; q < u->nin; q++) inside += u->in[q] == x;
      if (inside == c->uses[x->id] && !fuse_is_output(g, x)) mm = x;
    }
    if (!mm) continue;
    /* the epilogue program over $0 = product, then u's other operands */
    const char *body;
    int nops = 1;
    ops[0] = mm;
    if (u->op == IR_OP_FUSED_EW) {
      IrFusedProg *p = CKC_NEW(c->a, IrFusedProg);
      char why[160];
      if (!ir_fused_parse(ir_get_str(u, "body", NULL), u->nin, p, why, sizeof why))
        return ckc_error(d, u->loc, "E0332", "internal: %s", why);
      int map[IR_FUSED_MAX_INPUTS];
      for (int k = 0; k < u->nin; k++) {
        int o = -1;
        for (int j = 0; j < nops && o < 0; j++)
          if (ops[j] == u->in[k]) o = j;
        if (o < 0) {
          o = nops;
          ops[nops++] = u->in[k];
        }
        map[k] = o;
      }
      for (int q = 0; q < p->n; q++)
        for (int j = 0; j < p->ins[q].nargs; j++)
          if (p->ins[q].arg[j] < 0) p->ins[q].arg[j] = IR_FUSED_OPERAND(map[-1 - p->ins[q].arg[j]]);
      body = ir_fused_format(c->a, p);
    } else {
      IrNode *one[1] = {u};
      int n2 = 1;
      IrNode *tmp[4];
      tmp[0] = mm;
      body = fuse_body(c, one, 1, tmp, &n2, mm);
      for (int k = 1; k < n2; k++) ops[nops++] = tmp[k];
    }
    int ext = 0;
    for (int k = 1; k < nops; k++) ext += !fuse_is_splat(ops[k]);
    if (ext > FUSE_MAX_EXT - 1) continue; /* the product itself is the loop's first operand */
    IrNode *in[IR_FUSED_MAX_INPUTS + 2];
    in[0] = mm->in[0];
    in[1] = mm->in[1];
    for (int k = 1; k < nops; k++) in[k + 1] = ops[k];
    IrAttr at[3];
    int na = 0;
    if (ir_get_int(mm, "transpose_a", 0)) at[na++] = ir_attr_int("transpose_a", 1);
    if (ir_get_int(mm, "transpose_b", 0)) at[na++] = ir_attr_int("transpose_b", 1);
    at[na++] = ir_attr_str("body", body);
    IrErr err;
    IrNode *f = ir_op(g, IR_OP_FUSED_MATMUL, in, nops + 1, at, na, u->name, u->loc, &err);
    if (!f) return ckc_error(d, u->loc, "E0332", "internal: fusion built a bad fused_matmul: %s", err.msg);
    ir_replace_uses(g, u, f);
    u->mark = 1;
    mm->mark = 1;
    c->fused_mm++;
  }
  fuse_finish(g);
  return true;
}

/* Every entry graph: chains first (so an epilogue takes a whole chain),
 * then epilogues. */
bool pass_fusion(IrModule *m, CkcDiag *d) {
  for (int i = 0; i < m->graphs.len; i++) {
    IrGraph *g = m->graphs.items[i];
    if (!g->is_entry) continue;
    FuseCtx c = {0};
    c.g = g;
    c.a = m->arena;
    if (!fuse_ew(&c, d) || !fuse_epilogues(&c, d)) return false;
    for (int k = 0; k < g->nodes.len; k++) g->nodes.items[k]->mark = 0;
  }
  return true;
}
