/* passes/dce.c - dead code elimination.
 *
 * A node is live if a graph output depends on it. Because nodes are kept in
 * topological order, one backward sweep finds every live node: an output is
 * live, and the inputs of a live node are live. Everything else is dropped,
 * except INPUT nodes, which are the graph's calling convention (the generated
 * `infer` reads one tensor per input, used or not).
 *
 *   before                                   after
 *   %0 x: f32[4] = input() index=0           %0 x: f32[4] = input() index=0
 *   %1 w: f32[4] = param() init="zeros"      %1 : f32[4] = exp(%0 x)
 *   %2 : f32[4] = mul(%0 x, %1 w)            output %1
 *   %3 : f32[4] = exp(%0 x)
 *   output %3
 *
 * Parameters that nothing uses are dropped too (they would only cost memory
 * and checkpoint space); node ids are renumbered so dumps stay dense. */
#include "passes/passes.h"

/* dce: live(outputs); live(n) => live(n.in[*]); keep live or INPUT */
static void dce_graph(IrGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) g->nodes.items[i]->mark = 0;
  for (int i = 0; i < g->outputs.len; i++) g->outputs.items[i]->mark = 1;
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    IrNode *n = g->nodes.items[i];
    if (n->op == IR_OP_INPUT) n->mark = 1;
    if (!n->mark) continue;
    for (int k = 0; k < n->nin; k++) n->in[k]->mark = 1;
  }
  /* ir_graph_remove_marked drops the nodes whose mark is set: invert. */
  for (int i = 0; i < g->nodes.len; i++) g->nodes.items[i]->mark = !g->nodes.items[i]->mark;
  ir_graph_remove_marked(g);
  for (int i = 0; i < g->nodes.len; i++) {
    g->nodes.items[i]->mark = 0;
    g->nodes.items[i]->id = i;
  }
  g->next_id = g->nodes.len;
}

bool pass_dce(IrModule *m, CkcDiag *d) {
  (void)d;
  for (int i = 0; i < m->graphs.len; i++) dce_graph(m->graphs.items[i]);
  return true;
}
