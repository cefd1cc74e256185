/* ir/print.c - the text form of the IR (--emit=ir, --dump-after=PASS).
 *
 *   graph forward(idx: i32[8,64]) -> f32[8,64,256] {
 *     %0 idx: i32[8,64] = input index=0
 *     %1 wte: f32[256,128] = param init="normal" mean=0 std=0.02
 *     %5 x: f32[8,64,128] = add(%2, %3 wpe)
 *     return %40
 *   }
 *
 * Deterministic by construction: nodes in graph order, attributes in stored
 * order, floats with %.9g (round-trips every f32), no addresses. The grammar
 * is documented in docs/ir.md; golden tests diff this text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_impl.h"

/* Strings are quoted C-style so names with odd bytes stay on one line. */
static void put_quoted(CkcBuf *out, const char *s) {
  ckc_buf_putc(out, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      ckc_buf_putc(out, '\\');
      ckc_buf_putc(out, (char)*p);
    } else if (*p == '\n') {
      ckc_buf_puts(out, "\\n");
    } else if (*p < 0x20 || *p == 0x7f) {
      ckc_buf_printf(out, "\\x%02x", *p);
    } else {
      ckc_buf_putc(out, (char)*p);
    }
  }
  ckc_buf_putc(out, '"');
}

static void put_type(CkcBuf *out, CkDType t, const CkShape *s) {
  char buf[IR_TYPE_STR_LEN];
  ckc_buf_puts(out, ck_type_str(t, s, buf, sizeof buf));
}

/* An operand: "%3" or "%3 wpe". */
static void put_ref(CkcBuf *out, const IrNode *n) {
  if (!n) {
    ckc_buf_puts(out, "%?");
    return;
  }
  ckc_buf_printf(out, "%%%d", n->id);
  if (n->name) ckc_buf_printf(out, " %s", n->name);
}

static void put_attr(CkcBuf *out, const IrAttr *a) {
  ckc_buf_printf(out, " %s=", a->key);
  switch (a->kind) {
  case IR_ATTR_INT: ckc_buf_printf(out, "%lld", (long long)a->i); break;
  case IR_ATTR_FLOAT: ckc_buf_printf(out, "%.9g", a->f); break;
  case IR_ATTR_STR: put_quoted(out, a->s ? a->s : ""); break;
  case IR_ATTR_INTS:
    ckc_buf_putc(out, '[');
    for (int i = 0; i < a->nints; i++) ckc_buf_printf(out, "%s%lld", i ? "," : "", (long long)a->ints[i]);
    ckc_buf_putc(out, ']');
    break;
  }
}

/* One element of dense constant data, as a double for printing. */
static double elem_at(CkDType t, const void *data, int64_t i) {
  switch (t) {
  case CK_DT_F32: return ((const float *)data)[i];
  case CK_DT_F64: return ((const double *)data)[i];
  case CK_DT_I32: return ((const int32_t *)data)[i];
  case CK_DT_U8:
  case CK_DT_BOOL: return ((const uint8_t *)data)[i];
  default: return 0;
  }
}

/* Dense constants: small ones in full; big ones by size and an FNV-1a hash
 * of their bytes, so goldens still change when the data does. */
static void put_dense(CkcBuf *out, const IrNode *n) {
  int64_t numel = ck_shape_numel_unchecked(&n->shape);
  if (numel <= 16) {
    ckc_buf_puts(out, " data=[");
    for (int64_t i = 0; i < numel; i++)
      ckc_buf_printf(out, "%s%.9g", i ? "," : "", elem_at(n->dtype, n->data, i));
    ckc_buf_putc(out, ']');
    return;
  }
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = n->data;
  size_t bytes = (size_t)numel * ck_dtype_size(n->dtype);
  for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 1099511628211ull;
  ckc_buf_printf(out, " data=<%lld elements, fnv1a %016llx>", (long long)numel,
                 (unsigned long long)h);
}

static void print_node(const IrNode *n, CkcBuf *out) {
  ckc_buf_printf(out, "  %%%d", n->id);
  if (n->name) ckc_buf_printf(out, " %s", n->name);
  ckc_buf_puts(out, ": ");
  put_type(out, n->dtype, &n->shape);
  ckc_buf_printf(out, " = %s", ir_op_name(n->op));
  if (n->op == IR_OP_CALL) ckc_buf_printf(out, " %s", n->callee ? n->callee->name : "?");
  if (!(ir_op_info[n->op].flags & IR_OPF_LEAF)) {
    ckc_buf_putc(out, '(');
    for (int i = 0; i < n->nin; i++) {
      if (i) ckc_buf_puts(out, ", ");
      put_ref(out, n->in[i]);
    }
    ckc_buf_putc(out, ')');
  }
  if (n->op == IR_OP_CALL && n->prefix) {
    ckc_buf_puts(out, " prefix=");
    put_quoted(out, n->prefix);
  }
  for (int i = 0; i < n->nattrs; i++) put_attr(out, &n->attrs[i]);
  if (n->op == IR_OP_CONST && n->data) put_dense(out, n);
  ckc_buf_putc(out, '\n');
}

/* graph NAME(arg: type, ...) -> type { nodes; return ... } */
void ir_print_graph(const IrGraph *g, CkcBuf *out) {
  ckc_buf_printf(out, "graph %s(", g->name);
  for (int i = 0; i < g->inputs.len; i++) {
    const IrNode *x = g->inputs.items[i];
    if (i) ckc_buf_puts(out, ", ");
    if (x->name) ckc_buf_puts(out, x->name);
    else ckc_buf_printf(out, "arg%d", i);
    ckc_buf_puts(out, ": ");
    put_type(out, x->dtype, &x->shape);
  }
  ckc_buf_puts(out, ")");
  if (g->outputs.len > 0) {
    ckc_buf_puts(out, " -> ");
    if (g->outputs.len > 1) ckc_buf_putc(out, '(');
    for (int i = 0; i < g->outputs.len; i++) {
      if (i) ckc_buf_puts(out, ", ");
      put_type(out, g->outputs.items[i]->dtype, &g->outputs.items[i]->shape);
    }
    if (g->outputs.len > 1) ckc_buf_putc(out, ')');
  }
  ckc_buf_puts(out, " {\n");
  for (int i = 0; i < g->nodes.len; i++) print_node(g->nodes.items[i], out);
  ckc_buf_puts(out, "  return");
  for (int i = 0; i < g->outputs.len; i++) {
    ckc_buf_puts(out, i ? ", " : " ");
    put_ref(out, g->outputs.items[i]);
  }
  ckc_buf_puts(out, "\n}\n");
}

/* Constants are f64: the shortest %g spelling that reads back exactly
 * (0.1, not 0.10000000000000001). */
static const char *shortest_double(double v, char *buf, size_t len) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  return buf;
}

/* Module header, constants, then entry graphs and then callees, each group
 * in creation order; a blank line between graphs. */
void ir_print_module(const IrModule *m, CkcBuf *out) {
  ckc_buf_printf(out, "module %s", m->model_name ? m->model_name : "?");
  if (m->source_name) {
    ckc_buf_puts(out, " from ");
    put_quoted(out, m->source_name);
  }
  ckc_buf_putc(out, '\n');
  for (int i = 0; i < m->consts.len; i++) {
    const IrConstDef *c = &m->consts.items[i];
    if (c->is_float) {
      char num[40];
      ckc_buf_printf(out, "const %s = %s\n", c->name, shortest_double(c->fval, num, sizeof num));
    }
    else ckc_buf_printf(out, "const %s = %lld\n", c->name, (long long)c->ival);
  }
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < m->graphs.len; i++) {
      const IrGraph *g = m->graphs.items[i];
      if (g->is_entry != (pass == 0)) continue;
      ckc_buf_putc(out, '\n');
      ir_print_graph(g, out);
    }
  }
}
