/* passes/cse.c - common subexpression elimination by hash-consing.
 *
 * Two nodes compute the same value when they have the same op, dtype, shape,
 * attributes and (already merged) inputs; two constants are the same when
 * their values are bitwise equal (so -0.0 and 0.0 stay apart). Nodes are
 * visited in topological order, so a node's inputs have been merged before
 * the node itself is looked up: one sweep finds every redundancy, the
 * classic value-numbering argument. The first node wins and keeps its name
 * (it takes the duplicate's name only if it had none). INPUT and PARAM nodes
 * are never merged: equal shapes do not make two parameters the same tensor.
 * For commutative ops (add, mul, maximum, minimum, eq, ne) the two inputs
 * are compared as an unordered pair; IEEE add and mul are commutative, so
 * this is exact.
 *
 *   before                                    after
 *   %2 : f32[4] = exp(%0 x)                   %2 : f32[4] = exp(%0 x)
 *   %3 : f32[4] = exp(%0 x)                   %4 : f32[4] = add(%2, %2)
 *   %4 : f32[4] = add(%2, %3)
 *
 * Duplicates are removed here; inputs that become unused are left for dce. */
#include <string.h>

#include "passes/passes.h"

typedef struct CseTable {
  IrNode **slots;
  size_t cap; /* power of two */
} CseTable;

static uint64_t cse_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

static uint64_t cse_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull; /* FNV-1a */
  return h;
}

static uint64_t cse_str(uint64_t h, const char *s) {
  return s ? cse_bytes(h, s, strlen(s) + 1) : cse_mix(h, 0x51);
}

/* Commutative two-input ops compare their inputs as an unordered pair. */
static bool cse_commutes(const IrNode *n) {
  return (ir_op_info[n->op].flags & IR_OPF_COMMUTATIVE) && n->nin == 2;
}

static uint64_t cse_double_bits(double f) {
  uint64_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* Attributes hash order-independently (sum of per-attribute hashes), since
 * equality below does not depend on their order either. */
static uint64_t cse_hash_attr(const IrAttr *a) {
  uint64_t h = cse_str(1469598103934665603ull, a->key);
  h = cse_mix(h, (uint64_t)a->kind);
  switch (a->kind) {
  case IR_ATTR_INT: h = cse_mix(h, (uint64_t)a->i); break;
  case IR_ATTR_FLOAT: h = cse_mix(h, cse_double_bits(a->f)); break;
  case IR_ATTR_INTS:
    for (int i = 0; i < a->nints; i++) h = cse_mix(h, (uint64_t)a->ints[i]);
    h = cse_mix(h, (uint64_t)a->nints);
    break;
  case IR_ATTR_STR: h = cse_str(h, a->s); break;
  }
  return h;
}

static uint64_t cse_hash(const IrNode *n) {
  uint64_t h = 1469598103934665603ull;
  h = cse_mix(h, (uint64_t)n->op);
  h = cse_mix(h, (uint64_t)n->dtype);
  h = cse_mix(h, (uint64_t)n->shape.rank);
  for (int i = 0; i < n->shape.rank; i++) h = cse_mix(h, (uint64_t)n->shape.dims[i]);
  if (cse_commutes(n)) {
    uintptr_t a = (uintptr_t)n->in[0], b = (uintptr_t)n->in[1];
    h = cse_mix(h, (uint64_t)(a < b ? a : b));
    h = cse_mix(h, (uint64_t)(a < b ? b : a));
  } else {
    for (int i = 0; i < n->nin; i++) h = cse_mix(h, (uint64_t)(uintptr_t)n->in[i]);
  }
  h = cse_mix(h, (uint64_t)n->nin);
  uint64_t ah = 0;
  for (int i = 0; i < n->nattrs; i++) ah += cse_hash_attr(&n->attrs[i]);
  h = cse_mix(h, ah);
  h = cse_mix(h, (uint64_t)(uintptr_t)n->callee);
  h = cse_str(h, n->prefix);
  if (n->data) h = cse_bytes(h, n->data, (size_t)ck_shape_numel_unchecked(&n->shape) * ck_dtype_size(n->dtype));
  return h;
}

static bool cse_attr_eq(const IrAttr *a, const IrAttr *b) {
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case IR_ATTR_INT: return a->i == b->i;
  case IR_ATTR_FLOAT: return cse_double_bits(a->f) == cse_double_bits(b->f);
  case IR_ATTR_INTS:
    return a->nints == b->nints &&
           (a->nints == 0 || memcmp(a->ints, b->ints, sizeof(int64_t) * (size_t)a->nints) == 0);
  case IR_ATTR_STR: return (a->s == NULL) == (b->s == NULL) && (!a->s || strcmp(a->s, b->s) == 0);
  }
  return false;
}

/* Same key set with equal values, in any order. */
static bool cse_attrs_eq(const IrNode *a, const IrNode *b) {
  if (a->nattrs != b->nattrs) return false;
  for (int i = 0; i < a->nattrs; i++) {
    const IrAttr *x = &a->attrs[i], *y = NULL;
    for (int k = 0; k < b->nattrs && !y; k++)
      if (strcmp(b->attrs[k].key, x->key) == 0) y = &b->attrs[k];
    if (!y || !cse_attr_eq(x, y)) return false;
  }
  return true;
}

static bool cse_eq(const IrNode *a, const IrNode *b) {
  if (a->op != b->op || a->dtype != b->dtype || !ck_shape_eq(&a->shape, &b->shape) || a->nin != b->nin)
    return false;
  bool same_in = true;
  for (int i = 0; i < a->nin && same_in; i++) same_in = a->in[i] == b->in[i];
  if (!same_in && cse_commutes(a)) same_in = a->in[0] == b->in[1] && a->in[1] == b->in[0];
  if (!same_in || !cse_attrs_eq(a, b)) return false;
  if (a->callee != b->callee) return false;
  if ((a->prefix == NULL) != (b->prefix == NULL) || (a->prefix && strcmp(a->prefix, b->prefix) != 0))
    return false;
  if ((a->data == NULL) != (b->data == NULL)) return false;
  if (a->data) {
    size_t bytes = (size_t)ck_shape_numel_unchecked(&a->shape) * ck_dtype_size(a->dtype);
    if (memcmp(a->data, b->data, bytes) != 0) return false;
  }
  return true;
}

/* Returns the first node equal to n, inserting n if there is none. */
static IrNode *cse_lookup(CseTable *t, IrNode *n) {
  size_t mask = t->cap - 1;
  for (size_t i = (size_t)cse_hash(n) & mask;; i = (i + 1) & mask) {
    if (!t->slots[i]) {
      t->slots[i] = n;
      return n;
    }
    if (cse_eq(t->slots[i], n)) return t->slots[i];
  }
}

/* cse over one graph: n.in[*] := rep(n.in[*]); rep(n) := table[n] */
static void cse_graph(IrGraph *g, CkcArena *a) {
  CseTable t;
  t.cap = 16;
  while (t.cap < (size_t)g->nodes.len * 2) t.cap *= 2;
  t.slots = CKC_NEW_ARRAY(a, IrNode *, t.cap);
  for (int i = 0; i < g->nodes.len; i++) {
    g->nodes.items[i]->aux = NULL;
    g->nodes.items[i]->mark = 0;
  }
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    for (int k = 0; k < n->nin; k++)
      if (n->in[k]->aux) n->in[k] = n->in[k]->aux;
    if (n->op == IR_OP_INPUT || n->op == IR_OP_PARAM) continue;
    IrNode *rep = cse_lookup(&t, n);
    if (rep == n) continue;
    if (!rep->name) rep->name = n->name;
    n->aux = rep;
    n->mark = 1;
  }
  for (int i = 0; i < g->outputs.len; i++)
    if (g->outputs.items[i]->aux) g->outputs.items[i] = g->outputs.items[i]->aux;
  ir_graph_remove_marked(g);
  for (int i = 0; i < g->nodes.len; i++) {
    g->nodes.items[i]->aux = NULL;
    g->nodes.items[i]->mark = 0;
    g->nodes.items[i]->id = i;
  }
  g->next_id = g->nodes.len;
}

bool pass_cse(IrModule *m, CkcDiag *d) {
  (void)d;
  for (int i = 0; i < m->graphs.len; i++) cse_graph(m->graphs.items[i], m->arena);
  return true;
}
