/* test-suite/unit/check_fusion.c - the fusion pass on hand-built IR: which
 * nodes fuse (chains with internal fan-out, broadcast operands, values used
 * outside the chain that must stay, matmul epilogues), the body text, and
 * the reference interpreter on the graph before and after the pass, which
 * must agree exactly (the fused body is the same ops in the same order). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/fused.h"
#include "ir/interp.h"
#include "passes/passes.h"

typedef struct F {
  CkcArena a;
  CkcDiag d;
  FILE *diag_out;
  IrModule *m;
  IrGraph *g;
  CkcLoc loc;
} F;

static void f_init(F *t) {
  memset(t, 0, sizeof *t);
  ckc_arena_init(&t->a);
  t->diag_out = tmpfile();
  ck_assert_ptr_nonnull(t->diag_out);
  ckc_diag_init(&t->d, &t->a, t->diag_out);
  t->m = ir_module_new(&t->a, "M", "m.ckm");
  t->g = ir_graph_new(t->m, "forward", true);
}

static void f_free(F *t) {
  fclose(t->diag_out);
  ckc_arena_free(&t->a);
}

static IrNode *in_f(F *t, const char *name, int rank, int64_t d0, int64_t d1) {
  CkShape s = {rank, {d0, d1}};
  return ir_input(t->g, name, CK_DT_F32, &s, t->loc);
}

static IrNode *opn(F *t, IrOp op, IrNode *x, IrNode *y, const IrAttr *at, int nat) {
  IrErr err;
  IrNode *in[2] = {x, y};
  IrNode *n = ir_op(t->g, op, in, y ? 2 : 1, at, nat, NULL, t->loc, &err);
  ck_assert_msg(n != NULL, "ir_op: %s", err.msg);
  return n;
}

static int count_op(const IrGraph *g, IrOp op) {
  int c = 0;
  for (int i = 0; i < g->nodes.len; i++) c += g->nodes.items[i]->op == op;
  return c;
}

/* Deterministic, sign-mixed input values. */
static void fill(IrTensor *x, int seed) {
  for (int64_t k = 0; k < x->numel; k++) x->f[k] = sin(0.7 * (double)(k + 1) * (seed + 1)) * 1.5;
}

/* Runs the graph on fixed inputs; returns output 0. */
static IrTensor eval(F *t, CkcArena *scratch) {
  IrTensor in[8];
  for (int k = 0; k < t->g->inputs.len; k++) {
    const IrNode *n = t->g->inputs.items[k];
    in[k] = ir_tensor_new(scratch, n->dtype, &n->shape);
    fill(&in[k], k);
  }
  IrTensor out[2];
  char msg[256];
  ck_assert_msg(ir_interp_run(t->g, scratch, in, NULL, NULL, out, msg, sizeof msg), "%s", msg);
  return out[0];
}

static void run_fusion(F *t) {
  ck_assert(pass_fusion(t->m, &t->d));
  CkcBuf err;
  ckc_buf_init(&err, &t->a);
  ck_assert_msg(ir_verify(t->m, true, &err), "ir_verify: %s", ckc_buf_str(&err));
}

static void assert_same(const IrTensor *x, const IrTensor *y) {
  ck_assert_int_eq(x->numel, y->numel);
  ck_assert(ck_shape_eq(&x->shape, &y->shape));
  for (int64_t k = 0; k < x->numel; k++)
    ck_assert_msg(memcmp(&x->f[k], &y->f[k], sizeof(double)) == 0, "element %lld: %.17g vs %.17g",
                  (long long)k, x->f[k], y->f[k]);
}

/* relu(mul(e, z) - e) with e = exp(x + y[3]): e has two uses, both inside
 * the chain, y broadcasts: one fused_ew of 5 instructions over (x, y, z). */
START_TEST(test_chain_fanout_broadcast) {
  F t;
  f_init(&t);
  CkcArena s1, s2;
  ckc_arena_init(&s1);
  ckc_arena_init(&s2);
  IrNode *x = in_f(&t, "x", 2, 4, 3), *y = in_f(&t, "y", 1, 3, 0), *z = in_f(&t, "z", 2, 4, 3);
  IrNode *e = opn(&t, IR_OP_EXP, opn(&t, IR_OP_ADD, x, y, NULL, 0), NULL, NULL, 0);
  IrNode *r = opn(&t, IR_OP_RELU, opn(&t, IR_OP_SUB, opn(&t, IR_OP_MUL, e, z, NULL, 0), e, NULL, 0), NULL, NULL, 0);
  ir_set_output(t.g, r);
  IrTensor before = eval(&t, &s1);
  run_fusion(&t);
  ck_assert_int_eq(count_op(t.g, IR_OP_FUSED_EW), 1);
  ck_assert_int_eq(count_op(t.g, IR_OP_EXP) + count_op(t.g, IR_OP_ADD) + count_op(t.g, IR_OP_RELU), 0);
  const IrNode *f = t.g->outputs.items[0];
  ck_assert_int_eq(f->op, IR_OP_FUSED_EW);
  ck_assert_int_eq(f->nin, 3);
  ck_assert_str_eq(ir_get_str(f, "body", ""), "add($0,$1); exp(t0); mul(t1,$2); sub(t2,t1); relu(t3)");
  IrTensor after = eval(&t, &s2);
  assert_same(&before, &after);
  ckc_arena_free(&s1);
  ckc_arena_free(&s2);
  f_free(&t);
}
END_TEST

/* A value also read outside the chain (a sum, or a graph output) is not
 * absorbed: it stays a buffer and the chain reads it. A lone op stays. */
START_TEST(test_outside_use_stays) {
  F t;
  f_init(&t);
  CkcArena s1, s2;
  ckc_arena_init(&s1);
  ckc_arena_init(&s2);
  IrNode *x = in_f(&t, "x", 2, 4, 3), *y = in_f(&t, "y", 2, 4, 3);
  IrNode *a = opn(&t, IR_OP_MUL, x, y, NULL, 0);
  IrNode *b = opn(&t, IR_OP_TANH, opn(&t, IR_OP_NEG, a, NULL, NULL, 0), NULL, NULL, 0);
  IrNode *sm = opn(&t, IR_OP_SUM, a, NULL, NULL, 0);
  IrNode *o = opn(&t, IR_OP_ADD, b, sm, NULL, 0);
  ir_set_output(t.g, o);
  IrTensor before = eval(&t, &s1);
  run_fusion(&t);
  ck_assert_int_eq(count_op(t.g, IR_OP_MUL), 1); /* a: used by sum too */
  ck_assert_int_eq(count_op(t.g, IR_OP_SUM), 1);
  ck_assert_int_eq(count_op(t.g, IR_OP_FUSED_EW), 1);
  const IrNode *f = t.g->outputs.items[0];
  ck_assert_str_eq(ir_get_str(f, "body", ""), "neg($0); tanh(t0); add(t1,$1)");
  ck_assert_ptr_eq(f->in[0], a);
  IrTensor after = eval(&t, &s2);
  assert_same(&before, &after);
  ckc_arena_free(&s1);
  ckc_arena_free(&s2);
  f_free(&t);
}
END_TEST

/* residual + gelu_tanh(x @ w^T + bias) -> one fused_matmul with the
 * epilogue body over ($0 = product, bias, residual). */
START_TEST(test_matmul_epilogue) {
  F t;
  f_init(&t);
  CkcArena s1, s2;
  ckc_arena_init(&s1);
  ckc_arena_init(&s2);
  IrNode *x = in_f(&t, "x", 2, 4, 5), *w = in_f(&t, "w", 2, 3, 5), *bias = in_f(&t, "bias", 1, 3, 0);
  IrNode *res = in_f(&t, "res", 2, 4, 3);
  IrAttr tb = ir_attr_int("transpose_b", 1);
  IrAttr ap = ir_attr_str("approximate", "tanh");
  IrNode *mm = opn(&t, IR_OP_MATMUL, x, w, &tb, 1);
  IrNode *g = opn(&t, IR_OP_GELU, opn(&t, IR_OP_ADD, mm, bias, NULL, 0), NULL, &ap, 1);
  ir_set_output(t.g, opn(&t, IR_OP_ADD, res, g, NULL, 0));
  IrTensor before = eval(&t, &s1);
  run_fusion(&t);
  ck_assert_int_eq(count_op(t.g, IR_OP_MATMUL), 0);
  ck_assert_int_eq(count_op(t.g, IR_OP_FUSED_EW), 0);
  const IrNode *f = t.g->outputs.items[0];
  ck_assert_int_eq(f->op, IR_OP_FUSED_MATMUL);
  ck_assert_int_eq(ir_get_int(f, "transpose_b", 0), 1);
  ck_assert_int_eq(f->nin, 4);
  ck_assert_str_eq(ir_get_str(f, "body", ""), "add($0,$1); gelu_tanh(t0); add($2,t1)");
  IrTensor after = eval(&t, &s2);
  assert_same(&before, &after);
  ckc_arena_free(&s1);
  ckc_arena_free(&s2);
  f_free(&t);
}
END_TEST

/* A product with a second use keeps its matmul. */
START_TEST(test_matmul_shared_not_fused) {
  F t;
  f_init(&t);
  IrNode *x = in_f(&t, "x", 2, 4, 5), *w = in_f(&t, "w", 2, 5, 3);
  IrNode *mm = opn(&t, IR_OP_MATMUL, x, w, NULL, 0);
  IrNode *r = opn(&t, IR_OP_RELU, mm, NULL, NULL, 0);
  ir_set_output(t.g, opn(&t, IR_OP_SUM, opn(&t, IR_OP_MAXIMUM, r, opn(&t, IR_OP_SUM, mm, NULL, NULL, 0), NULL, 0),
                          NULL, NULL, 0));
  run_fusion(&t);
  ck_assert_int_eq(count_op(t.g, IR_OP_MATMUL), 1);
  ck_assert_int_eq(count_op(t.g, IR_OP_FUSED_MATMUL), 0);
  f_free(&t);
}
END_TEST

/* Malformed bodies are rejected with a reason; the text round-trips. */
static const struct {
  const char *body;
  int nops;
  bool ok;
} parse_cases[] = {
    {"add($0,$1); relu(t0)", 2, true},  {"gelu_tanh($0)", 1, true},
    {"where($0,$1,$2)", 3, true},       {"foo($0)", 1, false},
    {"add($0)", 1, false},              {"add($0,t0)", 1, false},
    {"relu($2)", 2, false},             {"cast($0)", 1, false},
    {"", 1, false},                     {"relu($0) relu(t0)", 1, false},
    {"matmul($0,$1)", 2, false},
};

START_TEST(test_parse) {
  CkcArena a;
  ckc_arena_init(&a);
  IrFusedProg p;
  char why[160] = "";
  bool ok = ir_fused_parse(parse_cases[_i].body, parse_cases[_i].nops, &p, why, sizeof why);
  ck_assert_msg(ok == parse_cases[_i].ok, "'%s': %s", parse_cases[_i].body, why);
  if (ok) ck_assert_str_eq(ir_fused_format(&a, &p), parse_cases[_i].body);
  else ck_assert(strstr(why, "fused body") != NULL);
  ckc_arena_free(&a);
}
END_TEST

Suite *check_fusion_suite(void) {
  Suite *s = suite_create("fusion");
  TCase *t = tcase_create("pass");
  tcase_add_test(t, test_chain_fanout_broadcast);
  tcase_add_test(t, test_outside_use_stays);
  tcase_add_test(t, test_matmul_epilogue);
  tcase_add_test(t, test_matmul_shared_not_fused);
  suite_add_tcase(s, t);
  t = tcase_create("body");
  tcase_add_loop_test(t, test_parse, 0, (int)(sizeof parse_cases / sizeof parse_cases[0]));
  suite_add_tcase(s, t);
  return s;
}
