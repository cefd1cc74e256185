/* lower/recompute.c - `--recompute=...`: trade compute for memory in train_step.
 *
 *   fwd:  h = gelu(x)            ...   bwd:  dW = matmul(h^T, dy)
 *   ==>   fwd:  h = gelu(x)      ...   bwd:  h' = gelu(x); dW = matmul(h'^T, dy)
 *
 * A forward value h of a cheap op that the backward reads is cloned, and the
 * backward reads the clone: h dies in the forward (or is never kept past
 * its forward users) and the saved-tensor section of the memory plan
 * shrinks. Only when every input of h is a leaf or is read by the backward
 * anyway (saved regardless): recomputing then keeps nothing extra alive.
 * The clone is the same op on the same inputs, so every gradient is bitwise
 * the one of the plain program. Runs after every pass: cse would merge the
 * clone back into h. */
#include <string.h>

#include "lower/memplan.h"

/* The ops `cheap` stands for: one pass over their input, no reduction
 * beyond a row (norms). */
static const IrOp memplan_cheap_ops[] = {IR_OP_GELU, IR_OP_RELU,      IR_OP_SILU,   IR_OP_SIGMOID,
                                         IR_OP_TANH, IR_OP_LAYERNORM, IR_OP_RMSNORM};
#define MEMPLAN_NCHEAP ((int)(sizeof memplan_cheap_ops / sizeof memplan_cheap_ops[0]))

/* "gelu,layernorm" | "cheap" | "none": each name one of memplan_cheap_ops. */
bool memplan_recompute_parse(const char *spec, MemplanRecompute *r, const char **why, CkcArena *a) {
  memset(r, 0, sizeof *r);
  const char *p = spec;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char *name = ckc_arena_strndup(a, p, len);
    IrOp op = IR_OP_COUNT;
    bool known = false;
    if (strcmp(name, "cheap") == 0) {
      for (int k = 0; k < MEMPLAN_NCHEAP; k++) r->op[memplan_cheap_ops[k]] = true;
      known = true;
    } else if (strcmp(name, "none") == 0) {
      known = true;
    } else if (ir_op_from_name(name, &op)) {
      for (int k = 0; k < MEMPLAN_NCHEAP; k++)
        if (memplan_cheap_ops[k] == op) known = r->op[op] = true;
    }
    if (!known) {
      *why = ckc_arena_printf(a, "'%s' is not a recomputable op (expected cheap, none, gelu, relu, silu, "
                                 "sigmoid, tanh, layernorm or rmsnorm)", name);
      return false;
    }
    if (!e) break;
    p = e + 1;
    if (!*p) {
      *why = "empty name after ','";
      return false;
    }
  }
  for (int k = 0; k < MEMPLAN_NCHEAP; k++) r->any = r->any || r->op[memplan_cheap_ops[k]];
  return true;
}

/* train_step only (forward and loss keep nothing for a backward). */
int memplan_recompute(IrModule *m, const MemplanRecompute *r) {
  IrGraph *g = ir_module_entry(m, "train_step");
  if (!g || !r->any || g->outputs.len == 0) return 0;
  int nid = g->next_id + 1;
  bool *fwd = CKC_NEW_ARRAY(m->arena, bool, nid);
  bool *bwd_reads = CKC_NEW_ARRAY(m->arena, bool, nid);
  fwd[g->outputs.items[0]->id] = true;
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    const IrNode *n = g->nodes.items[i];
    if (!fwd[n->id]) continue;
    for (int k = 0; k < n->nin; k++) fwd[n->in[k]->id] = true;
  }
  for (int i = 0; i < g->nodes.len; i++) {
    const IrNode *n = g->nodes.items[i];
    if (fwd[n->id]) continue;
    for (int k = 0; k < n->nin; k++)
      if (fwd[n->in[k]->id]) bwd_reads[n->in[k]->id] = true;
  }
  int nodes = g->nodes.len, cloned = 0;
  for (int i = 0; i < nodes; i++) {
    IrNode *n = g->nodes.items[i];
    if (!fwd[n->id] || !r->op[n->op] || !bwd_reads[n->id]) continue;
    bool inputs_kept = true;
    for (int k = 0; k < n->nin; k++) {
      const IrNode *x = n->in[k];
      inputs_kept = inputs_kept && ((ir_op_info[x->op].flags & IR_OPF_LEAF) || bwd_reads[x->id]);
    }
    if (!inputs_kept) continue;
    IrNode *c = ir_clone_node(g, n, NULL, n->name);
    for (int j = 0; j < nodes; j++) {
      IrNode *u = g->nodes.items[j];
      if (fwd[u->id]) continue;
      for (int k = 0; k < u->nin; k++)
        if (u->in[k] == n) u->in[k] = c;
    }
    cloned++;
  }
  /* the clones have the largest ids: the stable sort puts each as late as
   * its first backward reader allows */
  if (cloned) ir_graph_toposort(g);
  return cloned;
}
