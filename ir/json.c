/* ir/json.c - the IR as JSON (--emit=json) for tools and the HTML explorer:
 *   {"model", "source", "consts": [{"name","value"}],
 *    "graphs": [{"name","entry","inputs":[id],"outputs":[id],
 *                "nodes":[{"id","op","name","dtype","shape":[..],"inputs":[id],
 *                          "attrs":{key: value}, "callee"?, "prefix"?}]}]}
 * Built with cJSON and printed with cJSON_Print: key order is insertion
 * order, so the text is deterministic. Graph order matches the text form
 * (entries, then callees). */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir_impl.h"

static cJSON *ids_array(IrNode *const *nodes, int n) {
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(nodes[i] ? nodes[i]->id : -1));
  return arr;
}

static cJSON *attr_value(const IrAttr *a) {
  switch (a->kind) {
  case IR_ATTR_INT: return cJSON_CreateNumber((double)a->i);
  case IR_ATTR_FLOAT: return cJSON_CreateNumber(a->f);
  case IR_ATTR_STR: return cJSON_CreateString(a->s ? a->s : "");
  case IR_ATTR_INTS: {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < a->nints; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)a->ints[i]));
    return arr;
  }
  }
  return cJSON_CreateNull();
}

static cJSON *node_json(const IrNode *n) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", n->id);
  cJSON_AddStringToObject(o, "op", ir_op_name(n->op));
  if (n->name) cJSON_AddStringToObject(o, "name", n->name);
  else cJSON_AddNullToObject(o, "name");
  cJSON_AddStringToObject(o, "dtype", ck_dtype_name(n->dtype));
  cJSON *shape = cJSON_AddArrayToObject(o, "shape");
  for (int i = 0; i < n->shape.rank; i++)
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)n->shape.dims[i]));
  cJSON_AddItemToObject(o, "inputs", ids_array(n->in, n->nin));
  cJSON *attrs = cJSON_AddObjectToObject(o, "attrs");
  for (int i = 0; i < n->nattrs; i++) cJSON_AddItemToObject(attrs, n->attrs[i].key, attr_value(&n->attrs[i]));
  if (n->op == IR_OP_CALL) {
    cJSON_AddStringToObject(o, "callee", n->callee ? n->callee->name : "");
    if (n->prefix) cJSON_AddStringToObject(o, "prefix", n->prefix);
  }
  if (n->op == IR_OP_CONST && n->data) cJSON_AddBoolToObject(o, "dense", 1);
  return o;
}

static cJSON *graph_json(const IrGraph *g) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "name", g->name);
  cJSON_AddBoolToObject(o, "entry", g->is_entry);
  cJSON_AddItemToObject(o, "inputs", ids_array(g->inputs.items, g->inputs.len));
  cJSON_AddItemToObject(o, "outputs", ids_array(g->outputs.items, g->outputs.len));
  cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
  for (int i = 0; i < g->nodes.len; i++) cJSON_AddItemToArray(nodes, node_json(g->nodes.items[i]));
  return o;
}

/* cJSON allocates with malloc; the text is copied into the arena and the
 * tree freed here, so callers see arena memory only. */
const char *ir_to_json(const IrModule *m, CkcArena *a) {
  cJSON *root = cJSON_CreateObject();
  if (m->model_name) cJSON_AddStringToObject(root, "model", m->model_name);
  else cJSON_AddNullToObject(root, "model");
  if (m->source_name) cJSON_AddStringToObject(root, "source", m->source_name);
  else cJSON_AddNullToObject(root, "source");
  cJSON *consts = cJSON_AddArrayToObject(root, "consts");
  for (int i = 0; i < m->consts.len; i++) {
    const IrConstDef *c = &m->consts.items[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddNumberToObject(o, "value", c->is_float ? c->fval : (double)c->ival);
    cJSON_AddItemToArray(consts, o);
  }
  cJSON *graphs = cJSON_AddArrayToObject(root, "graphs");
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < m->graphs.len; i++)
      if (m->graphs.items[i]->is_entry == (pass == 0))
        cJSON_AddItemToArray(graphs, graph_json(m->graphs.items[i]));
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) CKC_ICE("ir_to_json: cJSON_Print failed");
  char *copy = ckc_arena_strdup(a, text);
  free(text);
  return copy;
}
