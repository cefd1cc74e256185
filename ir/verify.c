/* ir/verify.c - structural invariants of a module, checked after every pass
 * in debug builds: a pass that breaks one is caught at the pass that broke
 * it, not three passes later in the emitter. Messages name the graph and the
 * node (%id and op) so a failure reads like a bug report. */
#include <string.h>

#include "ir/ir_impl.h"

typedef struct VerifyCtx {
  const IrModule *m;
  const IrGraph *g;
  CkcBuf *out;
  int nerr;
  int *pos_of_id; /* node id -> position in g->nodes, -1 if absent */
} VerifyCtx;

static void vfail(VerifyCtx *v, const IrNode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "graph 'forward': %5 add: <message>" */
static void vfail(VerifyCtx *v, const IrNode *n, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n)
    ckc_buf_printf(v->out, "ir verify: graph '%s': %%%d %s: %s\n", v->g ? v->g->name : "?", n->id,
                   ir_op_name(n->op), msg);
  else
    ckc_buf_printf(v->out, "ir verify: graph '%s': %s\n", v->g ? v->g->name : "?", msg);
  v->nerr++;
}

static bool graph_in_module(const IrModule *m, const IrGraph *g) {
  for (int i = 0; i < m->graphs.len; i++)
    if (m->graphs.items[i] == g) return true;
  return false;
}

/* One node: ownership, operand order, arity, attributes, and the type the
 * shape rule gives today (a pass that rewires inputs must keep types). */
static void verify_node(VerifyCtx *v, const IrNode *n, int pos, bool flat) {
  const IrGraph *g = v->g;
  if ((unsigned)n->op >= IR_OP_COUNT) {
    vfail(v, n, "bad op %d", (int)n->op);
    return;
  }
  const IrOpInfo *info = &ir_op_info[n->op];
  if (n->graph != g) vfail(v, n, "owned by graph '%s'", n->graph ? n->graph->name : "(none)");
  if (n->nin < info->min_in || (info->max_in >= 0 && n->nin > info->max_in))
    vfail(v, n, "takes %d..%d inputs, has %d", info->min_in, info->max_in, n->nin);
  bool inputs_ok = true;
  for (int j = 0; j < n->nin; j++) {
    const IrNode *x = n->in[j];
    if (!x) {
      vfail(v, n, "input %d is NULL", j);
      inputs_ok = false;
      continue;
    }
    if (x->graph != g || x->id < 0 || x->id >= g->next_id || v->pos_of_id[x->id] < 0 ||
        g->nodes.items[v->pos_of_id[x->id]] != x) {
      vfail(v, n, "input %d (%%%d) is not a node of this graph", j, x->id);
      inputs_ok = false;
    } else if (v->pos_of_id[x->id] >= pos) {
      vfail(v, n, "input %d (%%%d) comes later: not in topological order", j, x->id);
      inputs_ok = false;
    }
  }
  char why[256];
  if (!ir_attrs_check(n->op, n->attrs, n->nattrs, why, sizeof why)) {
    vfail(v, n, "%s", why);
    return;
  }
  if (n->op == IR_OP_CALL) {
    if (flat) vfail(v, n, "CALL of '%s' left in a flat module", n->callee ? n->callee->name : "?");
    if (!n->callee) {
      vfail(v, n, "CALL without a callee");
      return;
    }
    if (!graph_in_module(v->m, n->callee))
      vfail(v, n, "callee '%s' is not a graph of the module", n->callee->name);
    if (n->callee->inputs.len != n->nin) {
      vfail(v, n, "callee '%s' takes %d arguments, got %d", n->callee->name, n->callee->inputs.len,
            n->nin);
      return;
    }
    for (int j = 0; inputs_ok && j < n->nin; j++) {
      const IrNode *p = n->callee->inputs.items[j];
      if (p->dtype != n->in[j]->dtype || !ck_shape_eq(&p->shape, &n->in[j]->shape)) {
        char a[IR_TYPE_STR_LEN], b[IR_TYPE_STR_LEN];
        vfail(v, n, "argument %d is %s, callee '%s' expects %s", j, ir_node_type_str(n->in[j], a),
              n->callee->name, ir_node_type_str(p, b));
      }
    }
  } else if (n->callee) {
    vfail(v, n, "has a callee but is not a CALL");
  }
  if (n->op == IR_OP_PARAM && !n->name) vfail(v, n, "parameter without a name");
  if (n->data && n->op != IR_OP_CONST) vfail(v, n, "has dense data but is not a CONST");
  if (n->shape.rank < 0 || n->shape.rank > CK_MAX_RANK) {
    vfail(v, n, "bad rank %d", n->shape.rank);
    return;
  }
  if (!inputs_ok || (info->flags & IR_OPF_LEAF)) return;
  CkDType dt;
  CkShape sh;
  memset(&sh, 0, sizeof sh);
  IrErr err = {0};
  if (!info->infer(n, &dt, &sh, &err)) {
    vfail(v, n, "shape rule fails: %s", err.msg);
    return;
  }
  if (dt != n->dtype || !ck_shape_eq(&sh, &n->shape)) {
    char a[IR_TYPE_STR_LEN], b[IR_TYPE_STR_LEN];
    vfail(v, n, "has type %s but its shape rule gives %s", ir_node_type_str(n, a),
          ck_type_str(dt, &sh, b, sizeof b));
  }
}

static void verify_graph(VerifyCtx *v, const IrGraph *g, bool flat) {
  v->g = g;
  CkcArena *a = g->module ? g->module->arena : v->m->arena;
  if (g->module != v->m) vfail(v, NULL, "graph's module pointer is wrong");
  v->pos_of_id = CKC_NEW_ARRAY(a, int, g->next_id > 0 ? g->next_id : 1);
  for (int i = 0; i < g->next_id; i++) v->pos_of_id[i] = -1;
  for (int i = 0; i < g->nodes.len; i++) {
    const IrNode *n = g->nodes.items[i];
    if (!n) {
      vfail(v, NULL, "NULL node at position %d", i);
      return;
    }
    if (n->id < 0 || n->id >= g->next_id) {
      vfail(v, n, "id out of range (next_id %d)", g->next_id);
      return;
    }
    if (v->pos_of_id[n->id] >= 0) {
      vfail(v, n, "id used twice");
      return;
    }
    v->pos_of_id[n->id] = i;
  }
  for (int i = 0; i < g->nodes.len; i++) verify_node(v, g->nodes.items[i], i, flat);

  /* parameter names are the keys of the weights file: one node per name */
  for (int i = 0; i < g->nodes.len; i++) {
    const IrNode *p = g->nodes.items[i];
    if (p->op != IR_OP_PARAM || !p->name) continue;
    for (int j = 0; j < i; j++) {
      const IrNode *q = g->nodes.items[j];
      if (q->op == IR_OP_PARAM && q->name && strcmp(q->name, p->name) == 0) {
        vfail(v, p, "parameter name '%s' also used by %%%d", p->name, q->id);
        break;
      }
    }
  }
  for (int i = 0; i < g->inputs.len; i++) {
    const IrNode *x = g->inputs.items[i];
    if (!x || x->op != IR_OP_INPUT || x->graph != g || x->id < 0 || x->id >= g->next_id ||
        v->pos_of_id[x->id] < 0)
      vfail(v, NULL, "argument %d is not an INPUT node of the graph", i);
    else if (ir_get_int(x, "index", -1) != i)
      vfail(v, x, "argument %d has index %lld", i, (long long)ir_get_int(x, "index", -1));
  }
  int ninputs = 0;
  for (int i = 0; i < g->nodes.len; i++) ninputs += g->nodes.items[i]->op == IR_OP_INPUT;
  if (ninputs != g->inputs.len)
    vfail(v, NULL, "%d INPUT nodes but %d arguments", ninputs, g->inputs.len);
  if (g->outputs.len < 1) vfail(v, NULL, "no output");
  for (int i = 0; i < g->outputs.len; i++) {
    const IrNode *o = g->outputs.items[i];
    if (!o || o->graph != g || o->id < 0 || o->id >= g->next_id || v->pos_of_id[o->id] < 0)
      vfail(v, NULL, "output %d is not a node of the graph", i);
  }
}

/* Checks every graph; graph names are unique so --dump and CALL targets are
 * unambiguous. A flat module (after inline) has no CALL anywhere. */
bool ir_verify(const IrModule *m, bool flat, CkcBuf *err) {
  VerifyCtx v = {.m = m, .out = err};
  for (int i = 0; i < m->graphs.len; i++) {
    const IrGraph *g = m->graphs.items[i];
    v.g = g;
    for (int j = 0; j < i; j++)
      if (strcmp(m->graphs.items[j]->name, g->name) == 0) vfail(&v, NULL, "graph name used twice");
    verify_graph(&v, g, flat);
  }
  return v.nerr == 0;
}
