/* passes/inline.c - flatten layer calls into the entry graphs.
 *
 * sema builds one graph per layer instantiation and leaves CALL nodes that
 * point to it, each carrying the instance path of the callee ("blocks.0").
 * This pass replaces every CALL in an entry graph by a copy of the callee's
 * body, recursively (a Block calls its Attention, which may call a Linear):
 *   - the callee's INPUT i becomes the call's operand i;
 *   - a callee PARAM `wq` becomes the caller parameter "<prefix>.wq"
 *     (prefixes compose: "blocks.0" + "attn" + "wq" = "blocks.0.attn.wq";
 *     an empty prefix adds no dot); two uses of the same full name are the
 *     same tensor (weight tying), so each name is created once;
 *   - named values get the same prefix ("q" -> "blocks.0.attn.q");
 *   - the call's uses become uses of the copy of the callee's output.
 * The body is copied where the call stood, so the flat graph reads in source
 * order. Afterwards the callee graphs are dropped from the module and node
 * ids are renumbered 0..n-1, so dumps are stable.
 *
 *   before                                          after
 *   graph forward                                   graph forward
 *     %0 x: f32[2,4] = input() index=0                %0 x: f32[2,4] = input() index=0
 *     %1 y: f32[2,4] = call(%0 x) blocks.0 -> lin     %1 blocks.0.w: f32[4,4] = param()
 *     output %1                                       %2 blocks.0.h: f32[2,4] = matmul(%0 x, %1)
 *   graph lin                                         %3 y: f32[2,4] = relu(%2)
 *     %0 x: f32[2,4] = input() index=0                output %3
 *     %1 w: f32[4,4] = param()
 *     %2 h: f32[2,4] = matmul(%0 x, %1 w)
 *     %3 : f32[2,4] = relu(%2 h)
 *     output %3
 *
 * The copy of the callee's result takes the call's name when it has none of
 * its own (y above): that is the name the user gave the value at the call. */
#include <string.h>

#include "passes/passes.h"

enum { INLINE_MAX_DEPTH = 64 };

typedef struct InlineCtx {
  IrModule *m;
  CkcDiag *d;
  IrGraph *g;                      /* the entry graph being flattened */
  CKC_VEC(IrNode *) params;        /* g's parameters so far, unique by full name */
  const IrGraph *stack[INLINE_MAX_DEPTH]; /* callees being copied (recursion check) */
  int depth;
} InlineCtx;

/* "" + "w" = "w"; "blocks.0" + "w" = "blocks.0.w" */
static const char *inline_join(CkcArena *a, const char *prefix, const char *name) {
  if (!name) return NULL;
  if (!prefix || !*prefix) return name;
  if (!*name) return prefix; /* a call with prefix "" (same instance) adds no level */
  return ckc_arena_printf(a, "%s.%s", prefix, name);
}

static IrNode *inline_find_param(InlineCtx *cx, const char *name) {
  for (int i = 0; i < cx->params.len; i++)
    if (strcmp(cx->params.items[i]->name, name) == 0) return cx->params.items[i];
  return NULL;
}

/* PARAM p of a callee -> the caller's parameter named prefix.p, created once. */
static IrNode *inline_param(InlineCtx *cx, const IrNode *p, const char *prefix) {
  const char *full = inline_join(cx->m->arena, prefix, p->name ? p->name : "");
  IrNode *q = inline_find_param(cx, full);
  if (q) {
    if (q->dtype != p->dtype || !ck_shape_eq(&q->shape, &p->shape)) {
      char b1[160], b2[160];
      ckc_error(cx->d, p->loc, "E0030", "parameter '%s' is defined twice with different types: %s and %s",
                full, ck_type_str(q->dtype, &q->shape, b1, sizeof b1),
                ck_type_str(p->dtype, &p->shape, b2, sizeof b2));
      ckc_note(cx->d, q->loc, "first definition of '%s'", full);
      return NULL;
    }
    return q;
  }
  q = ir_param(cx->g, full, p->dtype, &p->shape, p->attrs, p->nattrs, p->loc);
  CKC_VEC_PUSH(cx->m->arena, cx->params, q);
  return q;
}

static IrNode *inline_call(InlineCtx *cx, const IrNode *call, IrGraph *callee, const char *prefix,
                           IrNode *const *args, int nargs);

/* A CALL (in the entry graph or inside a callee being copied) with operands
 * already mapped into the entry graph: copy the callee, then name its result. */
static IrNode *inline_one(InlineCtx *cx, const IrNode *call, const char *prefix, IrNode *const *args,
                          const char *name) {
  IrNode *r = inline_call(cx, call, call->callee, prefix, args, call->nin);
  if (!r) return NULL;
  bool is_arg = false;
  for (int i = 0; i < call->nin; i++) is_arg = is_arg || r == args[i];
  if (!r->name && name && !is_arg && !(ir_op_info[r->op].flags & IR_OPF_LEAF)) r->name = name;
  return r;
}

/* Copies callee's nodes into cx->g in order; callee node -> copy in ->aux. */
static IrNode *inline_call(InlineCtx *cx, const IrNode *call, IrGraph *callee, const char *prefix,
                           IrNode *const *args, int nargs) {
  CkcArena *a = cx->m->arena;
  if (!callee || callee->outputs.len != 1)
    CKC_ICE("inline: call to '%s' has no callee or not exactly one output",
            callee ? callee->name : "(null)");
  if (nargs != callee->inputs.len)
    CKC_ICE("inline: call to '%s' passes %d operands for %d inputs", callee->name, nargs,
            callee->inputs.len);
  for (int i = 0; i < cx->depth; i++)
    if (cx->stack[i] == callee) {
      ckc_error(cx->d, call->loc, "E0031", "layer '%s' calls itself (recursion cannot be inlined)",
                callee->name);
      return NULL;
    }
  if (cx->depth == INLINE_MAX_DEPTH) {
    ckc_error(cx->d, call->loc, "E0031", "layer calls nest deeper than %d levels", INLINE_MAX_DEPTH);
    return NULL;
  }
  cx->stack[cx->depth++] = callee;
  IrNode *result = NULL;
  for (int i = 0; i < callee->nodes.len; i++) {
    IrNode *c = callee->nodes.items[i];
    IrNode **in = CKC_NEW_ARRAY(a, IrNode *, c->nin ? c->nin : 1);
    for (int k = 0; k < c->nin; k++) {
      in[k] = c->in[k]->aux;
      if (!in[k]) CKC_ICE("inline: '%s' node %%%d uses a node not yet copied", callee->name, c->id);
    }
    IrNode *copy = NULL;
    switch (c->op) {
    case IR_OP_INPUT: {
      int idx = -1;
      for (int k = 0; k < callee->inputs.len; k++)
        if (callee->inputs.items[k] == c) idx = k;
      if (idx < 0) CKC_ICE("inline: input %%%d of '%s' is not in its input list", c->id, callee->name);
      copy = args[idx];
      break;
    }
    case IR_OP_PARAM: copy = inline_param(cx, c, prefix); break;
    case IR_OP_CALL:
      copy = inline_one(cx, c, inline_join(a, prefix, c->prefix), in, inline_join(a, prefix, c->name));
      break;
    default: copy = ir_clone_node(cx->g, c, in, inline_join(a, prefix, c->name)); break;
    }
    if (!copy) goto done;
    c->aux = copy;
  }
  result = callee->outputs.items[0]->aux;
done:
  cx->depth--;
  return result;
}

/* Rebuilds g's node list: non-CALL nodes are kept in place, each CALL is
 * replaced by the copied callee body. */
static bool inline_graph(InlineCtx *cx, IrGraph *g) {
  CkcArena *a = cx->m->arena;
  cx->g = g;
  cx->params.len = 0;
  cx->depth = 0;
  int n = g->nodes.len;
  IrNode **old = CKC_NEW_ARRAY(a, IrNode *, n ? n : 1);
  bool has_call = false;
  for (int i = 0; i < n; i++) {
    old[i] = g->nodes.items[i];
    old[i]->aux = NULL;
    has_call = has_call || old[i]->op == IR_OP_CALL;
    if (old[i]->op == IR_OP_PARAM) CKC_VEC_PUSH(a, cx->params, old[i]);
  }
  if (!has_call) return true;
  g->nodes.len = 0;
  for (int i = 0; i < n; i++) {
    IrNode *x = old[i];
    for (int k = 0; k < x->nin; k++)
      if (x->in[k]->aux) x->in[k] = x->in[k]->aux;
    if (x->op != IR_OP_CALL) {
      CKC_VEC_PUSH(a, g->nodes, x);
      continue;
    }
    IrNode *r = inline_one(cx, x, x->prefix, x->in, x->name);
    if (!r) return false;
    x->aux = r;
  }
  for (int i = 0; i < g->outputs.len; i++)
    if (g->outputs.items[i]->aux) g->outputs.items[i] = g->outputs.items[i]->aux;
  for (int i = 0; i < n; i++) old[i]->aux = NULL;
  return true;
}

bool pass_inline(IrModule *m, CkcDiag *d) {
  InlineCtx cx;
  memset(&cx, 0, sizeof cx);
  cx.m = m;
  cx.d = d;
  for (int i = 0; i < m->graphs.len; i++)
    for (int k = 0; k < m->graphs.items[i]->nodes.len; k++) m->graphs.items[i]->nodes.items[k]->aux = NULL;
  for (int i = 0; i < m->graphs.len; i++) {
    IrGraph *g = m->graphs.items[i];
    if (!g->is_entry) continue;
    if (!inline_graph(&cx, g)) return false;
    /* Number in copy order first: toposort breaks ties by id, so the copy
     * order (already topological) is kept and ids come out dense. */
    for (int pass = 0; pass < 2; pass++) {
      for (int k = 0; k < g->nodes.len; k++) {
        g->nodes.items[k]->id = k;
        g->nodes.items[k]->aux = NULL;
      }
      g->next_id = g->nodes.len;
      if (pass == 0) ir_graph_toposort(g);
    }
  }
  /* The callees now live inside the entry graphs; drop them (keeps order). */
  int keep = 0;
  for (int i = 0; i < m->graphs.len; i++)
    if (m->graphs.items[i]->is_entry) m->graphs.items[keep++] = m->graphs.items[i];
  m->graphs.len = keep;
  return true;
}
