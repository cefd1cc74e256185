/* test-suite/unit/check_passes.c - the IR passes on hand-built IR: inline
 * (nested calls, shared parameters, prefixes), fold (values computed here
 * independently; IEEE cases that must NOT fold), cse (merges and non-merges),
 * dce (inputs kept), the registry. ir_verify must pass after every pass. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "passes/passes.h"

typedef struct T {
  CkcArena a;
  CkcDiag d;
  FILE *diag_out;
  IrModule *m;
  IrGraph *g; /* the entry graph */
  CkcLoc loc;
} T;

static void t_init(T *t) {
  memset(t, 0, sizeof *t);
  ckc_arena_init(&t->a);
  t->diag_out = tmpfile();
  ck_assert_ptr_nonnull(t->diag_out);
  ckc_diag_init(&t->d, &t->a, t->diag_out);
  t->m = ir_module_new(&t->a, "M", "m.ckm");
  t->g = ir_graph_new(t->m, "forward", true);
}

static void t_free(T *t) {
  fclose(t->diag_out);
  ckc_arena_free(&t->a);
}

/* The diagnostics written so far. */
static const char *t_diag_text(T *t) {
  static char buf[4096]; /* test-only scratch */
  fflush(t->diag_out);
  rewind(t->diag_out);
  size_t n = fread(buf, 1, sizeof buf - 1, t->diag_out);
  buf[n] = 0;
  return buf;
}

static CkShape shp(int rank, int64_t d0, int64_t d1, int64_t d2) {
  CkShape s;
  memset(&s, 0, sizeof s);
  s.rank = rank;
  s.dims[0] = d0;
  s.dims[1] = d1;
  s.dims[2] = d2;
  return s;
}

static void assert_verifies(T *t, bool flat) {
  CkcBuf err;
  ckc_buf_init(&err, &t->a);
  bool ok = ir_verify(t->m, flat, &err);
  ck_assert_msg(ok, "ir_verify failed: %s", ckc_buf_str(&err));
}

static IrNode *op1(T *t, IrGraph *g, IrOp op, IrNode *x, const char *name) {
  IrErr err;
  IrNode *n = ir_op(g, op, &x, 1, NULL, 0, name, t->loc, &err);
  ck_assert_msg(n != NULL, "ir_op: %s", err.msg);
  return n;
}

static IrNode *op2(T *t, IrGraph *g, IrOp op, IrNode *x, IrNode *y, const char *name) {
  IrErr err;
  IrNode *in[2] = {x, y};
  IrNode *n = ir_op(g, op, in, 2, NULL, 0, name, t->loc, &err);
  ck_assert_msg(n != NULL, "ir_op: %s", err.msg);
  return n;
}

static IrNode *opa(T *t, IrGraph *g, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat) {
  IrErr err;
  IrNode *n = ir_op(g, op, in, nin, at, nat, NULL, t->loc, &err);
  ck_assert_msg(n != NULL, "ir_op: %s", err.msg);
  return n;
}

static IrNode *param(T *t, IrGraph *g, const char *name, CkShape s) {
  IrAttr init = ir_attr_str("init", "zeros");
  return ir_param(g, name, CK_DT_F32, &s, &init, 1, t->loc);
}

static IrNode *find_named(IrGraph *g, const char *name) {
  for (int i = 0; i < g->nodes.len; i++)
    if (g->nodes.items[i]->name && strcmp(g->nodes.items[i]->name, name) == 0) return g->nodes.items[i];
  return NULL;
}

static int count_op(IrGraph *g, IrOp op) {
  int c = 0;
  for (int i = 0; i < g->nodes.len; i++) c += g->nodes.items[i]->op == op;
  return c;
}

static IrNode *out0(IrGraph *g) { return g->outputs.items[0]; }

static IrNode *dense_f32(T *t, CkShape s, const float *v) {
  return ir_const_data(t->g, CK_DT_F32, &s, v, t->loc);
}

static float f32_at(const IrNode *c, int64_t i) {
  ck_assert_int_eq(c->op, IR_OP_CONST);
  if (!c->data) return (float)ir_get_float(c, "value", NAN);
  return ((const float *)c->data)[i];
}

/* ---- inline ----------------------------------------------------------------------------- */

/* inner(x) = relu(x @ w) ; block(x) = inner_attn(inner_attn(x) * scale) + ...
 * forward calls block twice (blocks.0, blocks.1) and inner once with prefix "",
 * whose parameter w is the root's own w (weight tying by name). */
START_TEST(test_inline_nested_shared) {
  T t;
  t_init(&t);
  CkShape x24 = shp(2, 2, 4, 0), w44 = shp(2, 4, 4, 0), s4 = shp(1, 4, 0, 0);

  IrGraph *inner = ir_graph_new(t.m, "Inner.forward", false);
  IrNode *ix = ir_input(inner, "x", CK_DT_F32, &x24, t.loc);
  IrNode *iw = param(&t, inner, "w", w44);
  IrNode *ih = op2(&t, inner, IR_OP_MATMUL, ix, iw, "h");
  ir_set_output(inner, op1(&t, inner, IR_OP_RELU, ih, NULL));

  IrGraph *block = ir_graph_new(t.m, "Block.forward", false);
  IrNode *bx = ir_input(block, "x", CK_DT_F32, &x24, t.loc);
  IrNode *bs = param(&t, block, "scale", s4);
  IrNode *a1 = ir_call(block, inner, "attn", &bx, 1, "a", t.loc);
  IrNode *bz = op2(&t, block, IR_OP_MUL, a1, bs, "z");
  IrNode *a2 = ir_call(block, inner, "attn", &bz, 1, NULL, t.loc); /* same instance again */
  ir_set_output(block, op2(&t, block, IR_OP_ADD, a2, bz, NULL));

  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &x24, t.loc);
  IrNode *rw = param(&t, t.g, "w", w44);
  IrNode *p0 = ir_call(t.g, block, "blocks.0", &x, 1, NULL, t.loc);
  IrNode *p1 = ir_call(t.g, block, "blocks.1", &p0, 1, "y", t.loc);
  IrNode *p2 = ir_call(t.g, inner, "", &p1, 1, NULL, t.loc);
  ir_set_output(t.g, p2);
  assert_verifies(&t, false);

  ck_assert(pass_inline(t.m, &t.d));
  ck_assert_int_eq(t.d.nerrors, 0);
  assert_verifies(&t, true);
  ck_assert_int_eq(t.m->graphs.len, 1);
  ck_assert_ptr_eq(t.m->graphs.items[0], t.g);
  ck_assert_int_eq(count_op(t.g, IR_OP_CALL), 0);

  /* exactly these parameters, each once */
  const char *want[] = {"w", "blocks.0.scale", "blocks.0.attn.w", "blocks.1.scale", "blocks.1.attn.w"};
  ck_assert_int_eq(count_op(t.g, IR_OP_PARAM), 5);
  for (int i = 0; i < 5; i++) {
    IrNode *p = find_named(t.g, want[i]);
    ck_assert_msg(p && p->op == IR_OP_PARAM, "missing parameter %s", want[i]);
  }
  ck_assert_ptr_eq(find_named(t.g, "w"), rw);
  /* 5 matmuls: two per block, one at the root */
  ck_assert_int_eq(count_op(t.g, IR_OP_MATMUL), 5);
  /* the root-level copy (prefix "") uses the root's own w */
  IrNode *h = find_named(t.g, "h");
  ck_assert_ptr_nonnull(h);
  ck_assert_int_eq(h->op, IR_OP_MATMUL);
  ck_assert_ptr_eq(h->in[1], rw);
  /* prefixed values, wired to the right parameters */
  IrNode *z1 = find_named(t.g, "blocks.1.z");
  ck_assert_ptr_nonnull(z1);
  ck_assert_int_eq(z1->op, IR_OP_MUL);
  ck_assert_ptr_eq(z1->in[1], find_named(t.g, "blocks.1.scale"));
  ck_assert_ptr_nonnull(find_named(t.g, "blocks.0.attn.h"));
  ck_assert_ptr_nonnull(find_named(t.g, "blocks.0.a")); /* the call's name moved to its result */
  IrNode *bh = find_named(t.g, "blocks.0.attn.h");
  ck_assert_ptr_eq(bh->in[0], x); /* inner's input became the caller's operand */
  ck_assert_ptr_eq(bh->in[1], find_named(t.g, "blocks.0.attn.w"));
  /* the output is the copy of inner's relu */
  ck_assert_int_eq(out0(t.g)->op, IR_OP_RELU);
  ck_assert_ptr_eq(out0(t.g)->in[0], h);
  /* the call named y became block 1's add */
  IrNode *y = find_named(t.g, "y");
  ck_assert_ptr_nonnull(y);
  ck_assert_int_eq(y->op, IR_OP_ADD);
  ck_assert_ptr_eq(h->in[0], y);
  /* ids are dense and in order */
  for (int i = 0; i < t.g->nodes.len; i++) ck_assert_int_eq(t.g->nodes.items[i]->id, i);
  ck_assert_int_eq(t.g->next_id, t.g->nodes.len);
  t_free(&t);
}
END_TEST

/* The same full name with two different types is a user error, not a crash. */
START_TEST(test_inline_param_conflict) {
  T t;
  t_init(&t);
  CkShape s4 = shp(1, 4, 0, 0), s8 = shp(1, 8, 0, 0);
  IrGraph *lin = ir_graph_new(t.m, "Lin.forward", false);
  IrNode *lx = ir_input(lin, "x", CK_DT_F32, &s4, t.loc);
  IrNode *lb = param(&t, lin, "b", s4);
  ir_set_output(lin, op2(&t, lin, IR_OP_ADD, lx, lb, NULL));
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s4, t.loc);
  IrNode *tb = param(&t, t.g, "l.b", s8);
  IrNode *c = ir_call(t.g, lin, "l", &x, 1, NULL, t.loc);
  IrNode *sum = opa(&t, t.g, IR_OP_SUM, &tb, 1, NULL, 0);
  ir_set_output(t.g, op2(&t, t.g, IR_OP_ADD, c, sum, NULL));
  ck_assert(!pass_inline(t.m, &t.d));
  ck_assert_int_eq(t.d.nerrors, 1);
  ck_assert_ptr_nonnull(strstr(t_diag_text(&t), "[E0030]"));
  ck_assert_ptr_nonnull(strstr(t_diag_text(&t), "'l.b'"));
  t_free(&t);
}
END_TEST

/* A module without calls is left as it is. */
START_TEST(test_inline_no_calls) {
  T t;
  t_init(&t);
  CkShape s4 = shp(1, 4, 0, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s4, t.loc);
  IrNode *e = op1(&t, t.g, IR_OP_EXP, x, "e");
  ir_set_output(t.g, e);
  ck_assert(pass_inline(t.m, &t.d));
  assert_verifies(&t, true);
  ck_assert_int_eq(t.g->nodes.len, 2);
  ck_assert_ptr_eq(out0(t.g), e);
  t_free(&t);
}
END_TEST

/* ---- fold ------------------------------------------------------------------------------------ */

static void run_fold(T *t) {
  ck_assert(pass_fold(t->m, &t->d));
  assert_verifies(t, true);
}

START_TEST(test_fold_scalar_f32) {
  T t;
  t_init(&t);
  IrNode *two = ir_const_scalar(t.g, CK_DT_F32, 2.0, t.loc);
  IrNode *three = ir_const_scalar(t.g, CK_DT_F32, 3.0, t.loc);
  IrNode *q = op2(&t, t.g, IR_OP_DIV, two, three, NULL); /* 2/3 rounded to float */
  IrNode *r = op2(&t, t.g, IR_OP_ADD, q, op1(&t, t.g, IR_OP_SQRT, two, NULL), "r");
  ir_set_output(t.g, r);
  run_fold(&t);
  IrNode *o = out0(t.g);
  ck_assert_int_eq(o->op, IR_OP_CONST);
  ck_assert_str_eq(o->name, "r");
  volatile float a = 2.0f, b = 3.0f;
  float want = a / b + sqrtf(a);
  ck_assert(f32_at(o, 0) == want);
  t_free(&t);
}
END_TEST

/* dense op splat with broadcasting; the splat must be read as an f32 (0.1f) */
START_TEST(test_fold_dense_broadcast) {
  T t;
  t_init(&t);
  const float v[6] = {1, 2, 3, 4, 5, 6};
  IrNode *a = dense_f32(&t, shp(2, 2, 3, 0), v);
  CkShape s3 = shp(1, 3, 0, 0);
  const float bv[3] = {10, 20, 30};
  IrNode *b = dense_f32(&t, s3, bv);
  IrNode *c = ir_const_scalar(t.g, CK_DT_F32, 0.1, t.loc);
  IrNode *s = op2(&t, t.g, IR_OP_MUL, op2(&t, t.g, IR_OP_ADD, a, b, NULL), c, NULL);
  ir_set_output(t.g, s);
  run_fold(&t);
  IrNode *o = out0(t.g);
  ck_assert_int_eq(o->op, IR_OP_CONST);
  ck_assert_ptr_nonnull(o->data);
  for (int i = 0; i < 6; i++) {
    volatile float sum = v[i] + bv[i % 3];
    float want = sum * 0.1f;
    ck_assert_msg(f32_at(o, i) == want, "element %d: %.9g vs %.9g", i, f32_at(o, i), want);
  }
  /* the folded operands are dead now; dce removes them, leaving the result */
  ck_assert(pass_dce(t.m, &t.d));
  assert_verifies(&t, true);
  ck_assert_int_eq(t.g->nodes.len, 1);
  t_free(&t);
}
END_TEST

/* elementwise on splats folds at any size, as a splat */
START_TEST(test_fold_big_splat) {
  T t;
  t_init(&t);
  CkShape big = shp(2, 128, 128, 0);
  IrNode *one = ir_const_fill(t.g, CK_DT_F32, &big, 1.5, t.loc);
  IrNode *e = op1(&t, t.g, IR_OP_EXP, one, NULL);
  ir_set_output(t.g, e);
  run_fold(&t);
  IrNode *o = out0(t.g);
  ck_assert_int_eq(o->op, IR_OP_CONST);
  ck_assert_ptr_null(o->data);
  ck_assert(ck_shape_eq(&o->shape, &big));
  ck_assert(f32_at(o, 0) == expf(1.5f));
  t_free(&t);
}
END_TEST

/* dense results above 4096 elements are not materialised */
START_TEST(test_fold_size_limit) {
  T t;
  t_init(&t);
  CkShape big = shp(1, 5000, 0, 0);
  float *v = CKC_NEW_ARRAY(&t.a, float, 5000);
  for (int i = 0; i < 5000; i++) v[i] = (float)i;
  IrNode *d = dense_f32(&t, big, v);
  IrNode *e = op1(&t, t.g, IR_OP_NEG, d, NULL);
  ir_set_output(t.g, e);
  run_fold(&t);
  ck_assert_int_eq(out0(t.g)->op, IR_OP_NEG);
  t_free(&t);
}
END_TEST

START_TEST(test_fold_kernels) {
  T t;
  t_init(&t);
  const float av[6] = {1, 2, 3, 4, 5, 6};  /* 2x3 */
  const float bv[6] = {1, 0, -1, 2, 0.5f, 1}; /* 3x2 */
  IrNode *a = dense_f32(&t, shp(2, 2, 3, 0), av);
  IrNode *b = dense_f32(&t, shp(2, 3, 2, 0), bv);
  IrNode *mm = op2(&t, t.g, IR_OP_MATMUL, a, b, NULL); /* 2x2 */
  int64_t ax1 = 1;
  IrAttr axes = ir_attr_ints("axes", &ax1, 1);
  IrNode *s = opa(&t, t.g, IR_OP_SUM, &mm, 1, &axes, 1); /* [2] */
  ir_set_output(t.g, s);
  run_fold(&t);
  IrNode *o = out0(t.g);
  ck_assert_int_eq(o->op, IR_OP_CONST);
  /* row 0: [1*1+2*-1+3*0.5, 1*0+2*2+3*1] = [0.5, 7]; row 1: [4-5+3, 0+10+6] = [2, 16] */
  ck_assert(f32_at(o, 0) == 7.5f);
  ck_assert(f32_at(o, 1) == 18.0f);
  t_free(&t);
}
END_TEST

START_TEST(test_fold_movement) {
  T t;
  t_init(&t);
  const float v[6] = {0, 1, 2, 3, 4, 5};
  IrNode *a = dense_f32(&t, shp(2, 2, 3, 0), v);
  int64_t perm[2] = {1, 0};
  IrAttr pa = ir_attr_ints("perm", perm, 2);
  IrNode *p = opa(&t, t.g, IR_OP_PERMUTE, &a, 1, &pa, 1); /* 3x2: 0 3 1 4 2 5 */
  IrAttr sl[4] = {ir_attr_int("axis", 0), ir_attr_int("start", 1), ir_attr_int("end", 3),
                  ir_attr_int("step", 1)};
  IrNode *s = opa(&t, t.g, IR_OP_SLICE, &p, 1, sl, 4); /* 2x2: 1 4 2 5 */
  IrNode *cin[2] = {s, a};
  IrAttr cax = ir_attr_int("axis", 1);
  IrNode *c = opa(&t, t.g, IR_OP_CONCAT, cin, 2, &cax, 1); /* 2x5 */
  ir_set_output(t.g, c);
  run_fold(&t);
  IrNode *o = out0(t.g);
  ck_assert_int_eq(o->op, IR_OP_CONST);
  const float want[10] = {1, 4, 0, 1, 2, 2, 5, 3, 4, 5};
  for (int i = 0; i < 10; i++) ck_assert_msg(f32_at(o, i) == want[i], "element %d", i);
  t_free(&t);
}
END_TEST

/* x*1, x+0, maximum with NaN, integer overflow and division are left alone */
START_TEST(test_fold_ieee_not_folded) {
  T t;
  t_init(&t);
  CkShape s4 = shp(1, 4, 0, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s4, t.loc);
  IrNode *one = ir_const_scalar(t.g, CK_DT_F32, 1.0, t.loc);
  IrNode *zero = ir_const_scalar(t.g, CK_DT_F32, 0.0, t.loc);
  IrNode *m1 = op2(&t, t.g, IR_OP_MUL, x, one, "m1");
  IrNode *a0 = op2(&t, t.g, IR_OP_ADD, m1, zero, "a0");
  IrNode *nan = ir_const_scalar(t.g, CK_DT_F32, NAN, t.loc);
  IrNode *mx = op2(&t, t.g, IR_OP_MAXIMUM, nan, one, "mx");
  IrNode *imax = ir_const_scalar(t.g, CK_DT_I32, 2147483647.0, t.loc);
  IrNode *i1 = ir_const_scalar(t.g, CK_DT_I32, 1.0, t.loc);
  IrNode *ov = op2(&t, t.g, IR_OP_ADD, imax, i1, "ov");
  IrNode *idv = op2(&t, t.g, IR_OP_DIV, imax, i1, "idv");
  IrNode *r = op2(&t, t.g, IR_OP_ADD, a0, mx, NULL);
  IrNode *ri = op2(&t, t.g, IR_OP_ADD, ov, idv, NULL);
  IrNode *rf = op1(&t, t.g, IR_OP_SUM, op2(&t, t.g, IR_OP_ADD, r, r, NULL), NULL);
  IrAttr to = ir_attr_str("to", "f32");
  IrNode *cf = opa(&t, t.g, IR_OP_CAST, &ri, 1, &to, 1);
  ir_set_output(t.g, op2(&t, t.g, IR_OP_ADD, rf, cf, NULL));
  run_fold(&t);
  ck_assert_int_eq(find_named(t.g, "m1")->op, IR_OP_MUL);
  ck_assert_int_eq(find_named(t.g, "a0")->op, IR_OP_ADD);
  ck_assert_int_eq(find_named(t.g, "mx")->op, IR_OP_MAXIMUM);
  ck_assert_int_eq(find_named(t.g, "ov")->op, IR_OP_ADD);
  ck_assert_int_eq(find_named(t.g, "idv")->op, IR_OP_DIV);
  t_free(&t);
}
END_TEST

/* i32 arithmetic in range, compares and where do fold */
START_TEST(test_fold_int_compare_where) {
  T t;
  t_init(&t);
  IrNode *a = ir_const_scalar(t.g, CK_DT_I32, 7.0, t.loc);
  IrNode *b = ir_const_scalar(t.g, CK_DT_I32, -3.0, t.loc);
  IrNode *p = op2(&t, t.g, IR_OP_MUL, a, b, NULL); /* -21 */
  IrNode *lt = op2(&t, t.g, IR_OP_LT, p, b, NULL); /* true */
  IrNode *win[3] = {lt, a, b};
  IrNode *w = opa(&t, t.g, IR_OP_WHERE, win, 3, NULL, 0); /* 7 */
  ir_set_output(t.g, op2(&t, t.g, IR_OP_SUB, w, p, NULL)); /* 28 */
  run_fold(&t);
  IrNode *o = out0(t.g);
  ck_assert_int_eq(o->op, IR_OP_CONST);
  ck_assert_int_eq(o->dtype, CK_DT_I32);
  ck_assert(ir_get_float(o, "value", 0) == 28.0);
  t_free(&t);
}
END_TEST

START_TEST(test_fold_canon_reshape_permute) {
  T t;
  t_init(&t);
  CkShape s234 = shp(3, 2, 3, 4), s64 = shp(2, 6, 4, 0), s24 = shp(1, 24, 0, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s234, t.loc);
  IrErr err;
  IrNode *r1 = ir_reshape(t.g, x, &s64, NULL, t.loc, &err);
  IrNode *r2 = ir_reshape(t.g, r1, &s24, "flat", t.loc, &err);
  IrNode *same = ir_reshape(t.g, x, &s234, "same", t.loc, &err);
  int64_t p1[3] = {1, 0, 2}, q1[3] = {0, 2, 1};
  IrAttr pa = ir_attr_ints("perm", p1, 3), qa = ir_attr_ints("perm", q1, 3);
  IrNode *pp = opa(&t, t.g, IR_OP_PERMUTE, &same, 1, &pa, 1);
  IrNode *pq = opa(&t, t.g, IR_OP_PERMUTE, &pp, 1, &qa, 1); /* composed: [1,2,0] */
  IrNode *flat2 = ir_reshape(t.g, pq, &s24, NULL, t.loc, &err);
  ir_set_output(t.g, op2(&t, t.g, IR_OP_ADD, r2, flat2, NULL));
  run_fold(&t);
  IrNode *f = find_named(t.g, "flat");
  ck_assert_int_eq(f->op, IR_OP_RESHAPE);
  ck_assert_ptr_eq(f->in[0], x); /* reshape(reshape(x)) -> reshape(x) */
  IrNode *o = out0(t.g);
  IrNode *perm = o->in[1]->in[0];
  ck_assert_int_eq(perm->op, IR_OP_PERMUTE);
  ck_assert_ptr_eq(perm->in[0], x); /* reshape to own shape dropped, permutes composed */
  int n = 0;
  const int64_t *pv = ir_get_ints(perm, "perm", &n);
  ck_assert_int_eq(n, 3);
  ck_assert(pv[0] == 1 && pv[1] == 2 && pv[2] == 0);
  ck_assert_int_eq(perm->shape.dims[0], 3);
  ck_assert_int_eq(perm->shape.dims[1], 4);
  ck_assert_int_eq(perm->shape.dims[2], 2);
  ck_assert(pass_dce(t.m, &t.d)); /* the inner permute is dead now */
  ck_assert_int_eq(count_op(t.g, IR_OP_PERMUTE), 1);
  t_free(&t);
}
END_TEST

START_TEST(test_fold_canon_matmul_cast_neg) {
  T t;
  t_init(&t);
  CkShape s23 = shp(2, 2, 3, 0), s43 = shp(2, 4, 3, 0);
  IrNode *a = ir_input(t.g, "a", CK_DT_F32, &s23, t.loc);
  IrNode *b = ir_input(t.g, "b", CK_DT_F32, &s43, t.loc);
  int64_t sw[2] = {1, 0};
  IrAttr pa = ir_attr_ints("perm", sw, 2);
  IrNode *bt = opa(&t, t.g, IR_OP_PERMUTE, &b, 1, &pa, 1); /* 3x4 */
  IrNode *mm = op2(&t, t.g, IR_OP_MATMUL, a, bt, "mm");    /* 2x4 */
  IrNode *nn = op1(&t, t.g, IR_OP_NEG, op1(&t, t.g, IR_OP_NEG, mm, NULL), NULL);
  IrAttr to = ir_attr_str("to", "f32");
  IrNode *c = opa(&t, t.g, IR_OP_CAST, &nn, 1, &to, 1);
  ir_set_output(t.g, c);
  run_fold(&t);
  IrNode *o = out0(t.g);
  ck_assert_int_eq(o->op, IR_OP_MATMUL);
  ck_assert_str_eq(o->name, "mm");
  ck_assert_ptr_eq(o->in[0], a);
  ck_assert_ptr_eq(o->in[1], b);
  ck_assert_int_eq(ir_get_int(o, "transpose_b", 0), 1);
  ck_assert_int_eq(ir_get_int(o, "transpose_a", 0), 0);
  t_free(&t);
}
END_TEST

/* ---- cse ------------------------------------------------------------------------------------------ */

START_TEST(test_cse_merges) {
  T t;
  t_init(&t);
  CkShape s4 = shp(1, 4, 0, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s4, t.loc);
  IrNode *y = ir_input(t.g, "y", CK_DT_F32, &s4, t.loc);
  IrNode *e1 = op1(&t, t.g, IR_OP_EXP, x, NULL);
  IrNode *e2 = op1(&t, t.g, IR_OP_EXP, x, "e2");
  IrNode *s1 = op2(&t, t.g, IR_OP_ADD, e1, y, "s1");
  IrNode *s2 = op2(&t, t.g, IR_OP_ADD, y, e2, "s2"); /* commutes with s1 after e2 -> e1 */
  IrNode *c1 = ir_const_scalar(t.g, CK_DT_F32, 2.0, t.loc);
  IrNode *c2 = ir_const_scalar(t.g, CK_DT_F32, 2.0, t.loc);
  IrNode *m = op2(&t, t.g, IR_OP_MUL, op2(&t, t.g, IR_OP_MUL, s1, c1, NULL),
                  op2(&t, t.g, IR_OP_MUL, s2, c2, NULL), NULL);
  ir_set_output(t.g, m);
  ck_assert(pass_cse(t.m, &t.d));
  assert_verifies(&t, true);
  ck_assert_int_eq(count_op(t.g, IR_OP_EXP), 1);
  ck_assert_int_eq(count_op(t.g, IR_OP_ADD), 1);
  ck_assert_int_eq(count_op(t.g, IR_OP_CONST), 1);
  ck_assert_int_eq(count_op(t.g, IR_OP_MUL), 2);
  IrNode *o = out0(t.g);
  ck_assert_ptr_eq(o->in[0], o->in[1]);
  /* the first node survives with its name; an anonymous survivor takes the duplicate's */
  ck_assert_ptr_nonnull(find_named(t.g, "s1"));
  ck_assert_ptr_null(find_named(t.g, "s2"));
  ck_assert_ptr_eq(find_named(t.g, "e2"), e1);
  for (int i = 0; i < t.g->nodes.len; i++) ck_assert_int_eq(t.g->nodes.items[i]->id, i);
  t_free(&t);
}
END_TEST

START_TEST(test_cse_keeps_distinct) {
  T t;
  t_init(&t);
  CkShape s4 = shp(1, 4, 0, 0), s24 = shp(2, 2, 4, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s4, t.loc);
  IrNode *x2 = ir_input(t.g, "x2", CK_DT_F32, &s4, t.loc);
  IrNode *p1 = param(&t, t.g, "p1", s4);
  IrNode *p2 = param(&t, t.g, "p2", s4);
  IrNode *d1 = op2(&t, t.g, IR_OP_SUB, x, p1, NULL);
  IrNode *d2 = op2(&t, t.g, IR_OP_SUB, p1, x, NULL); /* not commutative */
  IrNode *d3 = op2(&t, t.g, IR_OP_SUB, x, p2, NULL); /* other param */
  IrNode *d4 = op2(&t, t.g, IR_OP_SUB, x2, p1, NULL); /* other input */
  IrNode *pz = ir_const_scalar(t.g, CK_DT_F32, 0.0, t.loc);
  IrNode *nz = ir_const_scalar(t.g, CK_DT_F32, -0.0, t.loc); /* -0 is not +0 */
  IrNode *z = op2(&t, t.g, IR_OP_ADD, pz, nz, NULL);
  IrNode *b = ir_reshape(t.g, op2(&t, t.g, IR_OP_ADD, op2(&t, t.g, IR_OP_ADD, d1, d2, NULL),
                                  op2(&t, t.g, IR_OP_ADD, d3, d4, NULL), NULL),
                         &s4, NULL, t.loc, NULL);
  IrNode *bb = op2(&t, t.g, IR_OP_ADD, b, z, NULL);
  IrAttr ax0 = ir_attr_int("axis", 0), ax1 = ir_attr_int("axis", 1);
  IrNode *cin[2] = {bb, bb};
  IrNode *c2 = opa(&t, t.g, IR_OP_CONCAT, cin, 2, &ax0, 1); /* [8] */
  IrErr err;
  IrNode *r = ir_reshape(t.g, c2, &s24, NULL, t.loc, &err);
  IrNode *sm0 = opa(&t, t.g, IR_OP_SOFTMAX, &r, 1, &ax0, 1);
  IrNode *sm1 = opa(&t, t.g, IR_OP_SOFTMAX, &r, 1, &ax1, 1); /* other attribute */
  ir_set_output(t.g, op2(&t, t.g, IR_OP_ADD, sm0, sm1, NULL));
  int before = t.g->nodes.len;
  ck_assert(pass_cse(t.m, &t.d));
  assert_verifies(&t, true);
  ck_assert_int_eq(t.g->nodes.len, before);
  ck_assert_int_eq(count_op(t.g, IR_OP_PARAM), 2);
  ck_assert_int_eq(count_op(t.g, IR_OP_SOFTMAX), 2);
  ck_assert_int_eq(count_op(t.g, IR_OP_CONST), 2);
  t_free(&t);
}
END_TEST

/* ---- dce ----------------------------------------------------------------------------------------------- */

START_TEST(test_dce_keeps_inputs) {
  T t;
  t_init(&t);
  CkShape s4 = shp(1, 4, 0, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s4, t.loc);
  IrNode *unused = ir_input(t.g, "unused", CK_DT_F32, &s4, t.loc);
  IrNode *w = param(&t, t.g, "w", s4);
  IrNode *dead = op2(&t, t.g, IR_OP_MUL, x, w, "dead");
  op1(&t, t.g, IR_OP_EXP, dead, "dead2");
  IrNode *live = op1(&t, t.g, IR_OP_TANH, x, "live");
  ir_set_output(t.g, live);
  ck_assert(pass_dce(t.m, &t.d));
  assert_verifies(&t, true);
  ck_assert_int_eq(t.g->nodes.len, 3);
  ck_assert_ptr_eq(t.g->nodes.items[0], x);
  ck_assert_ptr_eq(t.g->nodes.items[1], unused);
  ck_assert_ptr_eq(t.g->nodes.items[2], live);
  ck_assert_int_eq(live->id, 2);
  ck_assert_ptr_null(find_named(t.g, "dead"));
  ck_assert_ptr_null(find_named(t.g, "w"));
  ck_assert_int_eq(t.g->inputs.len, 2);
  t_free(&t);
}
END_TEST

/* the whole pipeline on a small inlined graph: fold leaves dead operands, dce removes them */
START_TEST(test_pipeline) {
  T t;
  t_init(&t);
  CkShape s23 = shp(2, 2, 3, 0), s33 = shp(2, 3, 3, 0);
  IrGraph *lin = ir_graph_new(t.m, "Lin.forward", false);
  IrNode *lx = ir_input(lin, "x", CK_DT_F32, &s23, t.loc);
  IrNode *lw = param(&t, lin, "w", s33);
  int64_t sw[2] = {1, 0};
  IrAttr pa = ir_attr_ints("perm", sw, 2);
  IrNode *wt = opa(&t, lin, IR_OP_PERMUTE, &lw, 1, &pa, 1);
  ir_set_output(lin, op2(&t, lin, IR_OP_MATMUL, lx, wt, "y"));
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &s23, t.loc);
  IrNode *c1 = ir_call(t.g, lin, "l1", &x, 1, NULL, t.loc);
  IrNode *c2 = ir_call(t.g, lin, "l1", &x, 1, NULL, t.loc);
  ir_set_output(t.g, op2(&t, t.g, IR_OP_ADD, c1, c2, NULL));
  for (const CkcPass *p = ckc_passes; p->name; p++) {
    if (strcmp(p->name, "fusion") == 0) continue; /* would merge the add into the matmul: check_fusion.c */
    ck_assert_msg(p->run(t.m, &t.d), "pass %s failed", p->name);
    assert_verifies(&t, true);
  }
  /* x, l1.w, one matmul (transpose_b=1), add */
  ck_assert_int_eq(t.g->nodes.len, 4);
  ck_assert_int_eq(count_op(t.g, IR_OP_PERMUTE), 0);
  ck_assert_int_eq(count_op(t.g, IR_OP_MATMUL), 1);
  IrNode *mm = find_named(t.g, "l1.y");
  ck_assert_ptr_nonnull(mm);
  ck_assert_int_eq(ir_get_int(mm, "transpose_b", 0), 1);
  ck_assert_ptr_eq(mm->in[1], find_named(t.g, "l1.w"));
  t_free(&t);
}
END_TEST

START_TEST(test_registry) {
  /* Pipeline order; inline, autodiff and optimizer cannot be disabled
   * (later stages need flat graphs, a train_step and resolved decay masks). */
  static const struct { const char *name; bool required; } order[] = {
      {"inline", true}, {"autodiff", true}, {"decode", false}, {"fold", false},
      {"cse", false},   {"dce", false},     {"fusion", false}, {"optimizer", true},
  };
  const int count = (int)(sizeof order / sizeof order[0]);
  int n = 0;
  for (const CkcPass *p = ckc_passes; p->name; p++, n++) {
    ck_assert_int_lt(n, count);
    ck_assert_str_eq(p->name, order[n].name);
    ck_assert_ptr_eq(ckc_pass_find(p->name), p);
    ck_assert_ptr_nonnull(p->summary);
    ck_assert(p->required == order[n].required);
  }
  ck_assert_int_eq(n, count);
  ck_assert(ckc_pass_find("inline")->run == pass_inline);
  ck_assert(ckc_pass_find("autodiff")->run == pass_autodiff);
  ck_assert_ptr_null(ckc_pass_find("nope"));
  ck_assert_ptr_null(ckc_pass_find(NULL));
}
END_TEST

Suite *check_passes_suite(void) {
  Suite *s = suite_create("passes");
  TCase *tc = tcase_create("inline");
  tcase_add_test(tc, test_inline_nested_shared);
  tcase_add_test(tc, test_inline_param_conflict);
  tcase_add_test(tc, test_inline_no_calls);
  suite_add_tcase(s, tc);
  tc = tcase_create("fold");
  tcase_add_test(tc, test_fold_scalar_f32);
  tcase_add_test(tc, test_fold_dense_broadcast);
  tcase_add_test(tc, test_fold_big_splat);
  tcase_add_test(tc, test_fold_size_limit);
  tcase_add_test(tc, test_fold_kernels);
  tcase_add_test(tc, test_fold_movement);
  tcase_add_test(tc, test_fold_ieee_not_folded);
  tcase_add_test(tc, test_fold_int_compare_where);
  tcase_add_test(tc, test_fold_canon_reshape_permute);
  tcase_add_test(tc, test_fold_canon_matmul_cast_neg);
  suite_add_tcase(s, tc);
  tc = tcase_create("cse");
  tcase_add_test(tc, test_cse_merges);
  tcase_add_test(tc, test_cse_keeps_distinct);
  suite_add_tcase(s, tc);
  tc = tcase_create("dce");
  tcase_add_test(tc, test_dce_keeps_inputs);
  suite_add_tcase(s, tc);
  tc = tcase_create("pipeline");
  tcase_add_test(tc, test_pipeline);
  tcase_add_test(tc, test_registry);
  suite_add_tcase(s, tc);
  return s;
}
