/* test-suite/unit/check_ir.c - the IR core: op table, builders, attribute
 * canonicalisation, the verifier against corrupted graphs, the text/JSON/DOT
 * writers, and the mutation helpers passes rely on (toposort, replace_uses,
 * remove_marked, count_uses, clone). */
#include <cJSON.h>
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static CkcArena arena;
static IrModule *mod;
static IrGraph *g;
static const CkcLoc L0 = {0};

static void setup(void) {
  ckc_arena_init(&arena);
  mod = ir_module_new(&arena, "Tiny", "tiny.ckm");
  g = ir_graph_new(mod, "forward", true);
}

static void teardown(void) { ckc_arena_free(&arena); }

static CkShape shp(int rank, int64_t d0, int64_t d1, int64_t d2) {
  CkShape s = {.rank = rank};
  s.dims[0] = d0;
  s.dims[1] = d1;
  s.dims[2] = d2;
  return s;
}

/* Builds a node that must succeed. */
static IrNode *op2(IrGraph *gr, IrOp op, IrNode *a, IrNode *b, const char *name) {
  IrNode *in[2] = {a, b};
  IrErr err;
  IrNode *n = ir_op(gr, op, in, b ? 2 : 1, NULL, 0, name, L0, &err);
  ck_assert_msg(n != NULL, "%s", err.msg);
  return n;
}

static const char *verify_msgs(bool flat, bool *ok) {
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  *ok = ir_verify(mod, flat, &b);
  return ckc_buf_str(&b);
}

static void assert_verify_fails_with(bool flat, const char *needle) {
  bool ok;
  const char *msg = verify_msgs(flat, &ok);
  ck_assert_msg(!ok, "verifier accepted a corrupted graph (wanted '%s')", needle);
  ck_assert_msg(strstr(msg, needle) != NULL, "verifier said:\n%s\nwanted '%s'", msg, needle);
}

static void assert_verify_ok(bool flat) {
  bool ok;
  const char *msg = verify_msgs(flat, &ok);
  ck_assert_msg(ok, "verifier: %s", msg);
}

/* ---- op table and dtypes -------------------------------------------------------------- */

START_TEST(op_table_round_trips) {
  for (int i = 0; i < IR_OP_COUNT; i++) {
    IrOp op;
    ck_assert_ptr_nonnull(ir_op_info[i].name);
    ck_assert(ir_op_info[i].infer != NULL);
    ck_assert(ir_op_from_name(ir_op_name((IrOp)i), &op));
    ck_assert_int_eq(op, i);
  }
  IrOp op;
  ck_assert(!ir_op_from_name("no_such_op", &op));
  ck_assert_str_eq(ir_op_name(IR_OP_MATMUL), "matmul");
  ck_assert_str_eq(ir_op_name(IR_OP_LOG_SOFTMAX), "log_softmax");
  ck_assert_int_eq(ir_op_info[IR_OP_CONCAT].max_in, -1);
  ck_assert(ir_op_info[IR_OP_LT].flags & IR_OPF_COMPARE);
}
END_TEST

START_TEST(dtype_helpers) {
  static const struct {
    const char *name, *ctype;
    size_t size;
    bool fl;
  } want[CK_DT_COUNT] = {{"f32", "float", 4, true},
                         {"f64", "double", 8, true},
                         {"i32", "int32_t", 4, false},
                         {"u8", "uint8_t", 1, false},
                         {"bool", "uint8_t", 1, false}};
  for (int i = 0; i < CK_DT_COUNT; i++) {
    CkDType t;
    ck_assert_str_eq(ck_dtype_name((CkDType)i), want[i].name);
    ck_assert(ck_dtype_from_name(want[i].name, &t));
    ck_assert_int_eq(t, i);
    ck_assert_uint_eq(ck_dtype_size(t), want[i].size);
    ck_assert_int_eq(ck_dtype_is_float(t), want[i].fl);
    ck_assert_str_eq(ck_dtype_ctype(t), want[i].ctype);
  }
  CkDType t;
  ck_assert(!ck_dtype_from_name("f16", &t));
}
END_TEST

/* ---- builders ------------------------------------------------------------------------------ */

START_TEST(builders_basic) {
  CkShape si = shp(2, 2, 3, 0), sw = shp(2, 16, 4, 0);
  IrNode *x = ir_input(g, "idx", CK_DT_I32, &si, L0);
  ck_assert_int_eq(x->id, 0);
  ck_assert_int_eq(ir_get_int(x, "index", -1), 0);
  ck_assert_int_eq(g->inputs.len, 1);
  ck_assert_str_eq(g->input_names.items[0], "idx");
  char key[8] = "init", val[8] = "normal";
  IrAttr pa[2] = {ir_attr_str(key, val), ir_attr_float("std", 0.02)};
  IrNode *w = ir_param(g, "wte", CK_DT_F32, &sw, pa, 2, L0);
  strcpy(val, "zeros"); /* the builder copied the strings */
  strcpy(key, "xxxx");
  ck_assert_str_eq(ir_get_str(w, "init", "?"), "normal");
  ck_assert(fabs(ir_get_float(w, "std", 0) - 0.02) < 1e-15);
  ck_assert_int_eq(ir_get_int(w, "fan_in", 7), 7); /* default when absent */
  /* weight tying: the same name is the same node */
  ck_assert_ptr_eq(ir_param(g, "wte", CK_DT_F32, &sw, NULL, 0, L0), w);
  ck_assert_int_eq(g->nodes.len, 2);
  IrNode *e = op2(g, IR_OP_EMBEDDING, w, x, "e");
  ck_assert_int_eq(e->id, 2);
  ck_assert_int_eq(e->shape.rank, 3);
  ck_assert_int_eq(e->shape.dims[2], 4);
  ck_assert_ptr_eq(e->graph, g);
  IrNode *c = ir_const_scalar(g, CK_DT_F32, 0.5, L0);
  ck_assert_int_eq(c->shape.rank, 0);
  ck_assert(ir_get_float(c, "value", 0) == 0.5);
  float data[4] = {1, 2, 3, 4};
  CkShape s4 = shp(1, 4, 0, 0);
  IrNode *d = ir_const_data(g, CK_DT_F32, &s4, data, L0);
  data[0] = 99;
  ck_assert(((const float *)d->data)[0] == 1.0f);
  IrErr err;
  CkShape s6 = shp(2, 6, 4, 0);
  IrNode *r = ir_reshape(g, e, &s6, "r", L0, &err);
  ck_assert_ptr_nonnull(r);
  ck_assert(ck_shape_eq(&r->shape, &s6));
  int n;
  const int64_t *v = ir_get_ints(r, "shape", &n);
  ck_assert_int_eq(n, 2);
  ck_assert_int_eq(v[0], 6);
  ck_assert_ptr_null(ir_get_ints(r, "perm", &n));
  ck_assert_int_eq(n, 0);
  CkShape s7 = shp(2, 7, 4, 0);
  ck_assert_ptr_null(ir_reshape(g, e, &s7, "r", L0, &err));
  ck_assert_str_eq(err.id, "E0318");
  ir_set_output(g, r);
  ck_assert_ptr_eq(ir_module_entry(mod, "forward"), g);
  ck_assert_ptr_null(ir_module_entry(mod, "train"));
  assert_verify_ok(true);
}
END_TEST

/* Attributes are canonical after the builder: axes non-negative and
 * explicit, attention's defaults written out, INT under a float key a FLOAT. */
START_TEST(builder_canonical_attrs) {
  CkShape s = shp(3, 2, 3, 4);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrErr err;
  IrNode *sm = ir_op(g, IR_OP_SOFTMAX, &x, 1, NULL, 0, NULL, L0, &err);
  ck_assert_int_eq(ir_get_int(sm, "axis", -9), 2);
  int64_t axes[2] = {-1, 0};
  IrAttr ra = ir_attr_ints("axes", axes, 2);
  IrNode *sum = ir_op(g, IR_OP_SUM, &x, 1, &ra, 1, NULL, L0, &err);
  int n;
  const int64_t *v = ir_get_ints(sum, "axes", &n);
  ck_assert_int_eq(n, 2);
  ck_assert_int_eq(v[0], 0);
  ck_assert_int_eq(v[1], 2);
  ck_assert_int_eq(axes[0], -1); /* caller's array untouched */
  IrNode *mean = ir_op(g, IR_OP_MEAN, &x, 1, NULL, 0, NULL, L0, &err);
  v = ir_get_ints(mean, "axes", &n);
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(mean->shape.rank, 0);
  IrNode *qkv[3] = {x, x, x};
  IrNode *at = ir_op(g, IR_OP_ATTENTION, qkv, 3, NULL, 0, NULL, L0, &err);
  ck_assert_int_eq(ir_get_int(at, "causal", -1), 1);
  ck_assert(fabs(ir_get_float(at, "scale", 0) - 0.5) < 1e-12);
  IrAttr eps = ir_attr_int("eps", 1);
  IrNode *ln = ir_op(g, IR_OP_LAYERNORM, &x, 1, &eps, 1, NULL, L0, &err);
  ck_assert_int_eq(ir_find_attr(ln, "eps")->kind, IR_ATTR_FLOAT);
  ck_assert(ir_get_float(ln, "eps", 0) == 1.0);
  ir_set_output(g, ln);
  assert_verify_ok(true);
}
END_TEST

/* Attributes come from sema: a missing or unknown one is a ckc bug and
 * stops with exit status 3 (ckc_ice), never a user diagnostic. */
START_TEST(missing_attr_is_ice) {
  CkShape s = shp(1, 4, 0, 0);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrErr err;
  ir_op(g, IR_OP_PERMUTE, &x, 1, NULL, 0, NULL, L0, &err);
}
END_TEST

START_TEST(unknown_attr_is_ice) {
  CkShape s = shp(1, 4, 0, 0);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrAttr a = ir_attr_int("bogus", 1);
  IrErr err;
  ir_op(g, IR_OP_EXP, &x, 1, &a, 1, NULL, L0, &err);
}
END_TEST

START_TEST(wrong_attr_kind_is_ice) {
  CkShape s = shp(1, 4, 0, 0);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrAttr a = ir_attr_int("to", 1);
  IrErr err;
  ir_op(g, IR_OP_CAST, &x, 1, &a, 1, NULL, L0, &err);
}
END_TEST

START_TEST(arity_is_ice) {
  CkShape s = shp(1, 4, 0, 0);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrErr err;
  ir_op(g, IR_OP_ADD, &x, 1, NULL, 0, NULL, L0, &err);
}
END_TEST

/* ---- a module with a call, used by printer/JSON/DOT/verifier tests ------------------------------ */

typedef struct Sample {
  IrGraph *entry, *callee;
  IrNode *call;
} Sample;

/* callee created first so the printer must still put the entry first */
static Sample build_sample(void) {
  Sample s;
  IrConstDef cv = {.name = "V", .ival = 16}, clr = {.name = "LR", .is_float = true, .fval = 0.1};
  CKC_VEC_PUSH(&arena, mod->consts, cv);
  CKC_VEC_PUSH(&arena, mod->consts, clr);
  s.callee = ir_graph_new(mod, "Blk(4).forward", false);
  s.entry = g;
  /* move the entry behind the callee in module order */
  mod->graphs.items[0] = s.callee;
  mod->graphs.items[1] = g;
  CkShape sx = shp(3, 2, 3, 4), s4 = shp(1, 4, 0, 0), si = shp(2, 2, 3, 0), sw = shp(2, 16, 4, 0);
  IrNode *x = ir_input(s.callee, "x", CK_DT_F32, &sx, L0);
  IrAttr ones = ir_attr_str("init", "ones");
  IrNode *lw = ir_param(s.callee, "ln.weight", CK_DT_F32, &s4, &ones, 1, L0);
  IrNode *in[2] = {x, lw};
  IrAttr eps = ir_attr_float("eps", 1e-5);
  IrErr err;
  IrNode *y = ir_op(s.callee, IR_OP_LAYERNORM, in, 2, &eps, 1, "y", L0, &err);
  IrNode *half = ir_const_scalar(s.callee, CK_DT_F32, 0.5, L0);
  IrNode *out = op2(s.callee, IR_OP_MUL, y, half, "out");
  ir_set_output(s.callee, out);

  IrNode *idx = ir_input(g, "idx", CK_DT_I32, &si, L0);
  IrAttr pa[3] = {ir_attr_str("init", "normal"), ir_attr_float("mean", 0), ir_attr_float("std", 0.02)};
  IrNode *wte = ir_param(g, "wte", CK_DT_F32, &sw, pa, 3, L0);
  IrNode *e = op2(g, IR_OP_EMBEDDING, wte, idx, NULL);
  s.call = ir_call(g, s.callee, "blk", &e, 1, "h", L0);
  IrAttr tb = ir_attr_int("transpose_b", 1);
  IrNode *mm[2] = {s.call, wte};
  IrNode *logits = ir_op(g, IR_OP_MATMUL, mm, 2, &tb, 1, "logits", L0, &err);
  ck_assert_ptr_nonnull(logits);
  ir_set_output(g, logits);
  return s;
}

static const char *sample_text =
    "module Tiny from \"tiny.ckm\"\n"
    "const V = 16\n"
    "const LR = 0.1\n"
    "\n"
    "graph forward(idx: i32[2,3]) -> f32[2,3,16] {\n"
    "  %0 idx: i32[2,3] = input index=0\n"
    "  %1 wte: f32[16,4] = param init=\"normal\" mean=0 std=0.02\n"
    "  %2: f32[2,3,4] = embedding(%1 wte, %0 idx)\n"
    "  %3 h: f32[2,3,4] = call Blk(4).forward(%2) prefix=\"blk\"\n"
    "  %4 logits: f32[2,3,16] = matmul(%3 h, %1 wte) transpose_b=1\n"
    "  return %4 logits\n"
    "}\n"
    "\n"
    "graph Blk(4).forward(x: f32[2,3,4]) -> f32[2,3,4] {\n"
    "  %0 x: f32[2,3,4] = input index=0\n"
    "  %1 ln.weight: f32[4] = param init=\"ones\"\n"
    "  %2 y: f32[2,3,4] = layernorm(%0 x, %1 ln.weight) eps=1e-05\n"
    "  %3: f32[] = const value=0.5\n"
    "  %4 out: f32[2,3,4] = mul(%2 y, %3)\n"
    "  return %4 out\n"
    "}\n";

START_TEST(printer_exact) {
  build_sample();
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  ir_print_module(mod, &b);
  ck_assert_str_eq(ckc_buf_str(&b), sample_text);
  assert_verify_ok(false);
}
END_TEST

START_TEST(printer_dense_and_escapes) {
  int32_t data[3] = {1, -2, 3};
  CkShape s3 = shp(1, 3, 0, 0);
  IrNode *c = ir_const_data(g, CK_DT_I32, &s3, data, L0);
  IrAttr to = ir_attr_str("to", "f32");
  IrErr err;
  IrNode *f = ir_op(g, IR_OP_CAST, &c, 1, &to, 1, "a\"b", L0, &err);
  ir_set_output(g, f);
  float big[20] = {0};
  CkShape s20 = shp(1, 20, 0, 0);
  ir_const_data(g, CK_DT_F32, &s20, big, L0);
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  ir_print_graph(g, &b);
  const char *t = ckc_buf_str(&b);
  ck_assert_msg(strstr(t, "%0: i32[3] = const data=[1,-2,3]\n") != NULL, "%s", t);
  ck_assert_msg(strstr(t, "%1 a\"b: f32[3] = cast(%0) to=\"f32\"\n") != NULL, "%s", t);
  ck_assert_msg(strstr(t, "%2: f32[20] = const data=<20 elements, fnv1a ") != NULL, "%s", t);
}
END_TEST

static cJSON *get(const cJSON *o, const char *k) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  ck_assert_msg(v != NULL, "missing JSON field %s", k);
  return v;
}

START_TEST(json_round_trip) {
  build_sample();
  const char *text = ir_to_json(mod, &arena);
  cJSON *root = cJSON_Parse(text);
  ck_assert_msg(root != NULL, "JSON does not parse:\n%s", text);
  ck_assert_str_eq(get(root, "model")->valuestring, "Tiny");
  ck_assert_str_eq(get(root, "source")->valuestring, "tiny.ckm");
  cJSON *graphs = get(root, "graphs");
  ck_assert_int_eq(cJSON_GetArraySize(graphs), 2);
  cJSON *g0 = cJSON_GetArrayItem(graphs, 0);
  ck_assert_str_eq(get(g0, "name")->valuestring, "forward");
  ck_assert(cJSON_IsTrue(get(g0, "entry")));
  ck_assert_int_eq(cJSON_GetArrayItem(get(g0, "outputs"), 0)->valueint, 4);
  ck_assert_int_eq(cJSON_GetArrayItem(get(g0, "inputs"), 0)->valueint, 0);
  cJSON *nodes = get(g0, "nodes");
  ck_assert_int_eq(cJSON_GetArraySize(nodes), 5);
  cJSON *mm = cJSON_GetArrayItem(nodes, 4);
  ck_assert_int_eq(get(mm, "id")->valueint, 4);
  ck_assert_str_eq(get(mm, "op")->valuestring, "matmul");
  ck_assert_str_eq(get(mm, "name")->valuestring, "logits");
  ck_assert_str_eq(get(mm, "dtype")->valuestring, "f32");
  cJSON *shape = get(mm, "shape");
  ck_assert_int_eq(cJSON_GetArraySize(shape), 3);
  ck_assert_int_eq(cJSON_GetArrayItem(shape, 2)->valueint, 16);
  ck_assert_int_eq(cJSON_GetArrayItem(get(mm, "inputs"), 1)->valueint, 1);
  ck_assert_int_eq(get(get(mm, "attrs"), "transpose_b")->valueint, 1);
  ck_assert(cJSON_IsNull(get(cJSON_GetArrayItem(nodes, 2), "name")));
  cJSON *call = cJSON_GetArrayItem(nodes, 3);
  ck_assert_str_eq(get(call, "callee")->valuestring, "Blk(4).forward");
  ck_assert_str_eq(get(call, "prefix")->valuestring, "blk");
  cJSON *w = cJSON_GetArrayItem(nodes, 1);
  ck_assert_str_eq(get(get(w, "attrs"), "init")->valuestring, "normal");
  cJSON *g1 = cJSON_GetArrayItem(graphs, 1);
  ck_assert(cJSON_IsFalse(get(g1, "entry")));
  cJSON *consts = get(root, "consts");
  ck_assert_int_eq(cJSON_GetArraySize(consts), 2);
  ck_assert(get(cJSON_GetArrayItem(consts, 1), "value")->valuedouble == 0.1);
  cJSON_Delete(root);
  /* deterministic */
  ck_assert_str_eq(ir_to_json(mod, &arena), text);
}
END_TEST

START_TEST(dot_output) {
  build_sample();
  CkcBuf b1, b2;
  ckc_buf_init(&b1, &arena);
  ckc_buf_init(&b2, &arena);
  ir_to_dot(mod, &b1);
  ir_to_dot(mod, &b2);
  const char *t = ckc_buf_str(&b1);
  ck_assert_str_eq(t, ckc_buf_str(&b2));
  ck_assert(strncmp(t, "digraph ckc {\n", 14) == 0);
  /* entry graph (index 1 in the module) is emitted first */
  const char *c1 = strstr(t, "subgraph cluster_1 {"), *c0 = strstr(t, "subgraph cluster_0 {");
  ck_assert(c1 && c0 && c1 < c0);
  ck_assert_msg(strstr(t, "g1_n4 [label=\"logits\\nmatmul\\nf32[2,3,16]\"") != NULL, "%s", t);
  ck_assert_msg(strstr(t, "g1_n3 -> g1_n4;") != NULL, "%s", t);
  ck_assert_msg(strstr(t, "g1_n3 -> g0_n4 [style=dashed") != NULL, "%s", t);
  ck_assert_str_eq(t + strlen(t) - 2, "}\n");
}
END_TEST

/* ---- verifier against corruptions --------------------------------------------------------------------- */

START_TEST(verify_accepts_and_rejects_call_when_flat) {
  build_sample();
  assert_verify_ok(false);
  assert_verify_fails_with(true, "CALL of 'Blk(4).forward' left in a flat module");
}
END_TEST

START_TEST(verify_topological_order) {
  Sample s = build_sample();
  (void)s;
  IrNode *t = g->nodes.items[2];
  g->nodes.items[2] = g->nodes.items[3];
  g->nodes.items[3] = t;
  assert_verify_fails_with(false, "not in topological order");
}
END_TEST

START_TEST(verify_wrong_shape) {
  build_sample();
  g->nodes.items[4]->shape.dims[2] = 17;
  assert_verify_fails_with(false, "has type f32[2,3,17] but its shape rule gives f32[2,3,16]");
}
END_TEST

START_TEST(verify_rewired_input_breaks_rule) {
  Sample s = build_sample();
  /* matmul(h, wte) -> matmul(h, idx): dtypes no longer agree */
  g->nodes.items[4]->in[1] = g->nodes.items[0];
  (void)s;
  assert_verify_fails_with(false, "shape rule fails: matmul: dtypes differ");
}
END_TEST

START_TEST(verify_foreign_input) {
  Sample s = build_sample();
  g->nodes.items[4]->in[0] = s.callee->nodes.items[4];
  assert_verify_fails_with(false, "is not a node of this graph");
}
END_TEST

START_TEST(verify_arity_and_output) {
  build_sample();
  g->nodes.items[4]->nin = 1;
  g->outputs.len = 0;
  assert_verify_fails_with(false, "takes 2..2 inputs, has 1");
  assert_verify_fails_with(false, "no output");
}
END_TEST

START_TEST(verify_duplicate_param) {
  build_sample();
  IrNode *w = g->nodes.items[1];
  IrNode *dup = ir_clone_node(g, w, NULL, NULL);
  ck_assert_str_eq(dup->name, "wte");
  assert_verify_fails_with(false, "parameter name 'wte' also used by %1");
}
END_TEST

START_TEST(verify_bad_attr_and_call_args) {
  Sample s = build_sample();
  IrNode *mm = g->nodes.items[4];
  mm->attrs[0].key = "transpose_c";
  assert_verify_fails_with(false, "matmul: unknown attribute 'transpose_c'");
  mm->attrs[0].key = "transpose_b";
  s.callee->inputs.items[0]->shape.dims[0] = 5;
  assert_verify_fails_with(false, "argument 0 is f32[2,3,4], callee 'Blk(4).forward' expects f32[5,3,4]");
}
END_TEST

/* ---- mutation helpers ------------------------------------------------------------------------------------- */

START_TEST(replace_uses_and_toposort) {
  CkShape s = shp(1, 4, 0, 0);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrNode *a = op2(g, IR_OP_EXP, x, NULL, "a");
  IrNode *b = op2(g, IR_OP_ADD, a, x, "b");
  ir_set_output(g, b);
  /* a pass inserts tanh(x) and routes every use of x through it */
  IrNode *t = op2(g, IR_OP_TANH, x, NULL, "t");
  ir_replace_uses(g, x, t);
  ck_assert_ptr_eq(t->in[0], x); /* repl keeps its own operand */
  ck_assert_ptr_eq(a->in[0], t);
  ck_assert_ptr_eq(b->in[1], t);
  assert_verify_fails_with(true, "not in topological order");
  ir_graph_toposort(g);
  assert_verify_ok(true);
  const int want[4] = {0, 3, 1, 2}; /* x, t, a, b */
  for (int i = 0; i < 4; i++) ck_assert_int_eq(g->nodes.items[i]->id, want[i]);
  /* an ordered graph is left as it is */
  ir_graph_toposort(g);
  for (int i = 0; i < 4; i++) ck_assert_int_eq(g->nodes.items[i]->id, want[i]);
  /* outputs are uses too */
  IrNode *c = op2(g, IR_OP_NEG, b, NULL, "c");
  ir_replace_uses(g, b, c);
  ck_assert_ptr_eq(g->outputs.items[0], c);
  assert_verify_ok(true);
}
END_TEST

START_TEST(count_uses_and_remove_marked) {
  CkShape s = shp(1, 4, 0, 0);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrNode *dead = op2(g, IR_OP_EXP, x, NULL, "dead");
  IrNode *sq = op2(g, IR_OP_MUL, x, x, "sq");
  ir_set_output(g, sq);
  ir_count_uses(g);
  ck_assert_int_eq(x->mark, 3);
  ck_assert_int_eq(dead->mark, 0);
  ck_assert_int_eq(sq->mark, 1);
  for (int i = 0; i < g->nodes.len; i++) g->nodes.items[i]->mark = 0;
  dead->mark = 1;
  x->mark = 1; /* inputs are the signature: never dropped */
  ir_graph_remove_marked(g);
  ck_assert_int_eq(g->nodes.len, 2);
  ck_assert_ptr_eq(g->nodes.items[0], x);
  ck_assert_ptr_eq(g->nodes.items[1], sq);
  assert_verify_ok(true);
}
END_TEST

START_TEST(clone_into_other_graph) {
  Sample s = build_sample();
  /* inline by hand: clone the callee body into the entry graph */
  IrNode *arg = s.call->in[0];
  IrNode *map[8] = {0};
  map[0] = arg;
  for (int i = 1; i < s.callee->nodes.len; i++) {
    IrNode *n = s.callee->nodes.items[i];
    IrNode *ins[3];
    for (int j = 0; j < n->nin; j++) ins[j] = map[n->in[j]->id];
    const char *nm = n->name ? ckc_arena_printf(&arena, "blk.%s", n->name) : NULL;
    map[n->id] = ir_clone_node(g, n, ins, nm);
  }
  IrNode *res = map[s.callee->outputs.items[0]->id];
  ck_assert_str_eq(res->name, "blk.out");
  ck_assert(ck_shape_eq(&res->shape, &s.call->shape));
  ir_replace_uses(g, s.call, res);
  s.call->mark = 1;
  ir_graph_remove_marked(g);
  ir_graph_toposort(g);
  mod->graphs.items[0] = g;
  mod->graphs.len = 1;
  assert_verify_ok(true);
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  ir_print_graph(g, &b);
  ck_assert_msg(strstr(ckc_buf_str(&b), "%6 blk.y: f32[2,3,4] = layernorm(%2, %5 blk.ln.weight) eps=1e-05\n"),
                "%s", ckc_buf_str(&b));
  /* matmul (id 4) now comes after the cloned body */
  ck_assert_int_eq(g->nodes.items[g->nodes.len - 1]->id, 4);
}
END_TEST

Suite *check_ir_suite(void) {
  Suite *s = suite_create("ir");
  TCase *t = tcase_create("table");
  tcase_add_test(t, op_table_round_trips);
  tcase_add_test(t, dtype_helpers);
  suite_add_tcase(s, t);

  t = tcase_create("builders");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, builders_basic);
  tcase_add_test(t, builder_canonical_attrs);
  tcase_add_exit_test(t, missing_attr_is_ice, 3);
  tcase_add_exit_test(t, unknown_attr_is_ice, 3);
  tcase_add_exit_test(t, wrong_attr_kind_is_ice, 3);
  tcase_add_exit_test(t, arity_is_ice, 3);
  suite_add_tcase(s, t);

  t = tcase_create("writers");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, printer_exact);
  tcase_add_test(t, printer_dense_and_escapes);
  tcase_add_test(t, json_round_trip);
  tcase_add_test(t, dot_output);
  suite_add_tcase(s, t);

  t = tcase_create("verify");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, verify_accepts_and_rejects_call_when_flat);
  tcase_add_test(t, verify_topological_order);
  tcase_add_test(t, verify_wrong_shape);
  tcase_add_test(t, verify_rewired_input_breaks_rule);
  tcase_add_test(t, verify_foreign_input);
  tcase_add_test(t, verify_arity_and_output);
  tcase_add_test(t, verify_duplicate_param);
  tcase_add_test(t, verify_bad_attr_and_call_args);
  suite_add_tcase(s, t);

  t = tcase_create("mutation");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, replace_uses_and_toposort);
  tcase_add_test(t, count_uses_and_remove_marked);
  tcase_add_test(t, clone_into_other_graph);
  suite_add_tcase(s, t);
  return s;
}
