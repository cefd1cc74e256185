/* ir/dot.c - Graphviz export (--emit=dot): one digraph, one cluster per IR
 * graph (entries first, like the text form), a box per node labelled
 * "name\nop\ntype", edges operand -> user. Node ids are "g<graph>_n<id>",
 * emitted in graph order, so the file is stable and diffable. A CALL gets a
 * dashed edge to its callee's result. */
#include <string.h>

#include "ir/ir_impl.h"

/* DOT string contents: quotes and backslashes escaped; "\n" is DOT's own
 * line break and is written by the caller. */
static void put_escaped(CkcBuf *out, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') ckc_buf_putc(out, '\\');
    if (*s == '\n') {
      ckc_buf_puts(out, "\\n");
      continue;
    }
    ckc_buf_putc(out, *s);
  }
}

static int graph_index(const IrModule *m, const IrGraph *g) {
  for (int i = 0; i < m->graphs.len; i++)
    if (m->graphs.items[i] == g) return i;
  return -1;
}

static void dot_graph(const IrModule *m, int gi, CkcBuf *out) {
  const IrGraph *g = m->graphs.items[gi];
  ckc_buf_printf(out, "  subgraph cluster_%d {\n    label=\"", gi);
  put_escaped(out, g->name);
  ckc_buf_puts(out, "\";\n");
  for (int i = 0; i < g->nodes.len; i++) {
    const IrNode *n = g->nodes.items[i];
    char t[IR_TYPE_STR_LEN];
    ckc_buf_printf(out, "    g%d_n%d [label=\"", gi, n->id);
    if (n->name) put_escaped(out, n->name);
    else ckc_buf_printf(out, "%%%d", n->id);
    ckc_buf_puts(out, "\\n");
    put_escaped(out, ir_op_name(n->op));
    if (n->op == IR_OP_CALL && n->callee) {
      ckc_buf_putc(out, ' ');
      put_escaped(out, n->callee->name);
    }
    ckc_buf_puts(out, "\\n");
    put_escaped(out, ir_node_type_str(n, t));
    ckc_buf_putc(out, '"');
    if (ir_op_info[n->op].flags & IR_OPF_LEAF) ckc_buf_puts(out, ", style=rounded");
    for (int k = 0; k < g->outputs.len; k++)
      if (g->outputs.items[k] == n) {
        ckc_buf_puts(out, ", penwidth=2");
        break;
      }
    ckc_buf_puts(out, "];\n");
  }
  for (int i = 0; i < g->nodes.len; i++) {
    const IrNode *n = g->nodes.items[i];
    for (int j = 0; j < n->nin; j++)
      if (n->in[j]) ckc_buf_printf(out, "    g%d_n%d -> g%d_n%d;\n", gi, n->in[j]->id, gi, n->id);
  }
  ckc_buf_puts(out, "  }\n");
}

void ir_to_dot(const IrModule *m, CkcBuf *out) {
  ckc_buf_puts(out, "digraph ckc {\n  node [shape=box, fontname=\"monospace\"];\n");
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < m->graphs.len; i++)
      if (m->graphs.items[i]->is_entry == (pass == 0)) dot_graph(m, i, out);
  /* calls, after all clusters so that edges between clusters are not
   * pulled into the caller's cluster */
  for (int pass = 0; pass < 2; pass++) {
    for (int gi = 0; gi < m->graphs.len; gi++) {
      const IrGraph *g = m->graphs.items[gi];
      if (g->is_entry != (pass == 0)) continue;
      for (int i = 0; i < g->nodes.len; i++) {
        const IrNode *n = g->nodes.items[i];
        if (n->op != IR_OP_CALL || !n->callee || n->callee->outputs.len < 1) continue;
        int ci = graph_index(m, n->callee);
        if (ci < 0) continue;
        ckc_buf_printf(out, "  g%d_n%d -> g%d_n%d [style=dashed, label=\"call\"];\n", gi, n->id, ci,
                       n->callee->outputs.items[0]->id);
      }
    }
  }
  ckc_buf_puts(out, "}\n");
}
