/* test-suite/unit/check_interp.c - the float64 reference interpreter
 * (ir/interp.c): every op on small hand-built graphs against values worked
 * out in the test (arithmetic written here, never copied from the
 * interpreter), error paths (bad data, unknown ops, missing parameters), and
 * agreement with the float32 kernels of rt-min (ck_kernels.h, ck_grad.h) on
 * random inputs: max |interp - kernel| / max(1, |interp|) <= 1e-5. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/interp.h"
#include "rt-min/ck_grad.h"
#include "rt-min/ck_kernels.h"
#include "rt-min/ck_rng.h"

/* ---- fixture: a fresh arena, module and graph per test ------------------------------------ */

static CkcArena arena;
static IrModule *mod;
static IrGraph *g;
static IrTensor tin[16]; /* values of g's inputs, in order */
static const CkcLoc L0 = {0};

static void setup(void) {
  ckc_arena_init(&arena);
  mod = ir_module_new(&arena, "T", "t.ckm");
  g = ir_graph_new(mod, "forward", true);
  memset(tin, 0, sizeof tin);
}

static void teardown(void) { ckc_arena_free(&arena); }

static CkShape mkshape(int rank, const int64_t *d) {
  CkShape s;
  memset(&s, 0, sizeof s);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.dims[i] = d[i];
  return s;
}
#define SH(...) mkshape((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
static const CkShape SCALAR = {0};

/* An input of the graph with the given values (doubles; ints for i32/bool). */
static IrNode *input(CkDType dt, CkShape s, const double *v) {
  char name[16];
  snprintf(name, sizeof name, "x%d", g->inputs.len);
  IrNode *n = ir_input(g, name, dt, &s, L0);
  IrTensor *t = &tin[g->inputs.len - 1];
  *t = ir_tensor_new(&arena, dt, &s);
  for (int64_t k = 0; k < t->numel; k++) {
    if (t->f)
      t->f[k] = v[k];
    else
      t->i[k] = (int32_t)v[k];
  }
  return n;
}
#define IN_F(shape, ...) input(CK_DT_F32, shape, (const double[]){__VA_ARGS__})
#define IN_I(shape, ...) input(CK_DT_I32, shape, (const double[]){__VA_ARGS__})

static IrNode *opn(IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat) {
  IrErr err;
  IrNode *n = ir_op(g, op, in, nin, at, nat, NULL, L0, &err);
  ck_assert_msg(n != NULL, "%s: %s", ir_op_name(op), err.msg);
  return n;
}
static IrNode *op1(IrOp op, IrNode *a) { return opn(op, &a, 1, NULL, 0); }
static IrNode *op2(IrOp op, IrNode *a, IrNode *b) {
  IrNode *in[2] = {a, b};
  return opn(op, in, 2, NULL, 0);
}

/* Runs g with `out` as its only output; the run must succeed. */
static IrTensor eval(IrNode *out) {
  char err[512];
  IrTensor res;
  g->outputs.len = 0;
  ir_set_output(g, out);
  bool ok = ir_interp_run(g, &arena, tin, NULL, NULL, &res, err, sizeof err);
  ck_assert_msg(ok, "%s", err);
  ck_assert(ck_shape_eq(&res.shape, &out->shape));
  return res;
}

/* Runs g with `out` as output; the run must fail with a message containing needle. */
static void eval_fails(IrNode *out, const char *needle) {
  char err[512];
  IrTensor res;
  g->outputs.len = 0;
  ir_set_output(g, out);
  ck_assert_msg(!ir_interp_run(g, &arena, tin, NULL, NULL, &res, err, sizeof err),
                "run succeeded, wanted an error '%s'", needle);
  ck_assert_msg(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
}

static void expect_vals(const IrTensor *t, int64_t n, const double *want, double tol) {
  ck_assert_int_eq(t->numel, n);
  for (int64_t k = 0; k < n; k++) {
    double got = ir_tensor_get(t, k);
    if (isnan(want[k])) {
      ck_assert_msg(isnan(got), "element %lld: got %.17g, want NaN", (long long)k, got);
      continue;
    }
    ck_assert_msg(fabs(got - want[k]) <= tol * fmax(1.0, fabs(want[k])),
                  "element %lld: got %.17g, want %.17g", (long long)k, got, want[k]);
  }
}
#define EXPECT(t, tol, ...)                                                             \
  expect_vals(&(t), (int64_t)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)),       \
              (const double[]){__VA_ARGS__}, tol)
#define EXACT 0.0
#define TIGHT 1e-14

/* ---- elementwise --------------------------------------------------------------------------- */

START_TEST(test_binary_broadcast) {
  IrNode *x = IN_F(SH(2, 3), 1, 2, 3, 4, 5, 6);
  IrNode *y = IN_F(SH(3), 10, 20, 30);
  IrNode *c = IN_F(SH(2, 1), -1, 2);
  IrTensor r = eval(op2(IR_OP_ADD, x, y));
  EXPECT(r, EXACT, 11, 22, 33, 14, 25, 36);
  r = eval(op2(IR_OP_SUB, y, x));
  EXPECT(r, EXACT, 9, 18, 27, 6, 15, 24);
  r = eval(op2(IR_OP_MUL, x, c));
  EXPECT(r, EXACT, -1, -2, -3, 8, 10, 12);
  r = eval(op2(IR_OP_DIV, x, c));
  EXPECT(r, EXACT, -1, -2, -3, 2, 2.5, 3);
  r = eval(op2(IR_OP_POW, c, x));
  EXPECT(r, EXACT, -1, 1, -1, 16, 32, 64);
  /* [3] op [2,1] -> [2,3] */
  r = eval(op2(IR_OP_MAXIMUM, y, op2(IR_OP_MUL, c, IN_F(SCALAR, 15))));
  EXPECT(r, EXACT, 10, 20, 30, 30, 30, 30);
  r = eval(op2(IR_OP_MINIMUM, y, op2(IR_OP_MUL, c, IN_F(SCALAR, 15))));
  EXPECT(r, EXACT, -15, -15, -15, 10, 20, 30);
}
END_TEST

START_TEST(test_maximum_nan) {
  IrNode *a = IN_F(SH(3), NAN, 1, 2);
  IrNode *b = IN_F(SH(3), 0, NAN, 1);
  IrTensor r = eval(op2(IR_OP_MAXIMUM, a, b));
  EXPECT(r, EXACT, NAN, NAN, 2);
  r = eval(op2(IR_OP_MINIMUM, a, b));
  EXPECT(r, EXACT, NAN, NAN, 1);
}
END_TEST

START_TEST(test_integer_ops) {
  IrNode *a = IN_I(SH(4), -7, 7, 2147483647, -2147483647 - 1.0);
  IrNode *b = IN_I(SH(4), 2, -2, 1, 1);
  IrTensor r = eval(op2(IR_OP_DIV, a, b)); /* C truncation toward zero */
  EXPECT(r, EXACT, -3, -3, 2147483647, -2147483648.0);
  r = eval(op2(IR_OP_ADD, a, b)); /* i32 wraps */
  EXPECT(r, EXACT, -5, 5, -2147483648.0, -2147483647);
  r = eval(op1(IR_OP_NEG, a));
  EXPECT(r, EXACT, 7, -7, -2147483647, -2147483648.0);
  r = eval(op2(IR_OP_POW, b, IN_I(SH(4), 3, 3, 5, 0)));
  EXPECT(r, EXACT, 8, -8, 1, 1);
  eval_fails(op2(IR_OP_DIV, a, IN_I(SH(4), 1, 0, 1, 1)), "integer division by zero");
}
END_TEST

START_TEST(test_unary) {
  IrNode *x = IN_F(SH(4), -1.5, 0, 0.5, 2);
  double v[4] = {-1.5, 0, 0.5, 2};
  struct { IrOp op; double (*f)(double); } t[] = {{IR_OP_EXP, exp}, {IR_OP_TANH, tanh},
                                                  {IR_OP_ERF, erf}, {IR_OP_ABS, fabs}};
  for (size_t q = 0; q < sizeof t / sizeof t[0]; q++) {
    IrTensor r = eval(op1(t[q].op, x));
    for (int k = 0; k < 4; k++) ck_assert_double_eq_tol(r.f[k], t[q].f(v[k]), 1e-15);
  }
  IrTensor r = eval(op1(IR_OP_RELU, x));
  EXPECT(r, EXACT, 0, 0, 0.5, 2);
  r = eval(op1(IR_OP_NEG, x));
  EXPECT(r, EXACT, 1.5, -0.0, -0.5, -2);
  r = eval(op1(IR_OP_SIGMOID, x));
  EXPECT(r, TIGHT, 1 / (1 + exp(1.5)), 0.5, 1 / (1 + exp(-0.5)), 1 / (1 + exp(-2.0)));
  r = eval(op1(IR_OP_SILU, x));
  EXPECT(r, TIGHT, -1.5 / (1 + exp(1.5)), 0, 0.5 / (1 + exp(-0.5)), 2 / (1 + exp(-2.0)));
  /* published values: Phi(1) = 0.8413447460685429, tanh-GELU(1) = 0.8411919906082768 */
  IrNode *one = IN_F(SH(1), 1.0);
  r = eval(op1(IR_OP_GELU, one));
  EXPECT(r, 1e-15, 0.8413447460685429);
  IrAttr tanh_attr = ir_attr_str("approximate", "tanh");
  r = eval(opn(IR_OP_GELU, &one, 1, &tanh_attr, 1));
  EXPECT(r, 1e-15, 0.8411919906082768);
  IrNode *p = IN_F(SH(3), 4, 0.25, 1);
  r = eval(op1(IR_OP_SQRT, p));
  EXPECT(r, EXACT, 2, 0.5, 1);
  r = eval(op1(IR_OP_RSQRT, p));
  EXPECT(r, EXACT, 0.5, 2, 1);
  r = eval(op1(IR_OP_LOG, IN_F(SH(2), 1, exp(3.0))));
  EXPECT(r, TIGHT, 0, 3);
  /* float-only ops refuse integers with a message, not a crash */
  IrNode *iv = IN_I(SH(1), 4);
  IrNode *e = op1(IR_OP_EXP, IN_F(SH(1), 0.0));
  e->in[0] = iv; /* exp of an i32: the shape rule forbids it, so build it by hand */
  eval_fails(e, "must be float, got i32");
}
END_TEST

START_TEST(test_compare_where_cast) {
  IrNode *x = IN_F(SH(4), -2, 0, NAN, 3);
  IrNode *z = IN_F(SCALAR, 0);
  IrTensor r = eval(op2(IR_OP_GT, x, z));
  ck_assert_int_eq(r.dtype, CK_DT_BOOL);
  EXPECT(r, EXACT, 0, 0, 0, 1);
  r = eval(op2(IR_OP_LE, x, z));
  EXPECT(r, EXACT, 1, 1, 0, 0);
  r = eval(op2(IR_OP_NE, x, z));
  EXPECT(r, EXACT, 1, 0, 1, 1);
  r = eval(op2(IR_OP_EQ, x, z));
  EXPECT(r, EXACT, 0, 1, 0, 0);
  /* leaky relu: where(x > 0, x, 0.1 x) */
  IrNode *in3[3] = {op2(IR_OP_GT, x, z), x, op2(IR_OP_MUL, x, IN_F(SCALAR, 0.1))};
  r = eval(opn(IR_OP_WHERE, in3, 3, NULL, 0));
  EXPECT(r, TIGHT, -0.2, 0, NAN, 3);
  IrNode *y = IN_F(SH(4), -2.7, 2.7, 0.0, 255.9);
  IrAttr to_i = ir_attr_str("to", "i32"), to_b = ir_attr_str("to", "bool"), to_u8 = ir_attr_str("to", "u8");
  r = eval(opn(IR_OP_CAST, &y, 1, &to_i, 1));
  EXPECT(r, EXACT, -2, 2, 0, 255);
  r = eval(opn(IR_OP_CAST, &y, 1, &to_b, 1));
  EXPECT(r, EXACT, 1, 1, 0, 1);
  IrNode *iv = IN_I(SH(2), 300, -1);
  r = eval(opn(IR_OP_CAST, &iv, 1, &to_u8, 1)); /* integer -> u8 wraps modulo 256 */
  EXPECT(r, EXACT, 44, 255);
  IrNode *big = IN_F(SH(1), 3e9);
  eval_fails(opn(IR_OP_CAST, &big, 1, &to_i, 1), "does not fit i32");
}
END_TEST

/* ---- matmul and data movement ------------------------------------------------------------- */

START_TEST(test_matmul) {
  IrNode *a = IN_F(SH(2, 3), 1, 2, 3, 4, 5, 6);
  IrNode *b = IN_F(SH(3, 2), 7, 8, 9, 10, 11, 12);
  IrTensor r = eval(op2(IR_OP_MATMUL, a, b));
  /* [1 2 3; 4 5 6] @ [7 8; 9 10; 11 12] */
  EXPECT(r, EXACT, 1 * 7 + 2 * 9 + 3 * 11, 1 * 8 + 2 * 10 + 3 * 12, 4 * 7 + 5 * 9 + 6 * 11,
         4 * 8 + 5 * 10 + 6 * 12);
  /* a @ a^T via transpose_b */
  IrNode *aa[2] = {a, a};
  IrAttr tb = ir_attr_int("transpose_b", 1), ta = ir_attr_int("transpose_a", 1);
  r = eval(opn(IR_OP_MATMUL, aa, 2, &tb, 1));
  EXPECT(r, EXACT, 14, 32, 32, 77);
  /* a^T @ a: 3x3 */
  r = eval(opn(IR_OP_MATMUL, aa, 2, &ta, 1));
  EXPECT(r, EXACT, 17, 22, 27, 22, 29, 36, 27, 36, 45);
  /* batch broadcast: [2,1,2] @ [2,1] -> [2,1,1] */
  IrNode *bt = IN_F(SH(2, 1, 2), 1, 2, 3, 4);
  IrNode *v = IN_F(SH(2, 1), 10, 100);
  r = eval(op2(IR_OP_MATMUL, bt, v));
  ck_assert(ck_shape_eq(&r.shape, &(CkShape){3, {2, 1, 1}}));
  EXPECT(r, EXACT, 210, 430);
}
END_TEST

START_TEST(test_movement) {
  IrNode *x = IN_F(SH(2, 3), 0, 1, 2, 3, 4, 5);
  int64_t perm[2] = {1, 0};
  IrAttr ap = ir_attr_ints("perm", perm, 2);
  IrTensor r = eval(opn(IR_OP_PERMUTE, &x, 1, &ap, 1));
  EXPECT(r, EXACT, 0, 3, 1, 4, 2, 5);
  int64_t shape[3] = {3, 1, 2};
  IrAttr as = ir_attr_ints("shape", shape, 3);
  r = eval(opn(IR_OP_RESHAPE, &x, 1, &as, 1));
  EXPECT(r, EXACT, 0, 1, 2, 3, 4, 5);
  IrNode *col = IN_F(SH(2, 1), 7, 8);
  int64_t bs[3] = {2, 2, 3};
  IrAttr ab = ir_attr_ints("shape", bs, 3);
  r = eval(opn(IR_OP_BROADCAST, &col, 1, &ab, 1));
  EXPECT(r, EXACT, 7, 7, 7, 8, 8, 8, 7, 7, 7, 8, 8, 8);
  IrAttr sl[4] = {ir_attr_int("axis", 1), ir_attr_int("start", 0), ir_attr_int("end", 3),
                  ir_attr_int("step", 2)};
  r = eval(opn(IR_OP_SLICE, &x, 1, sl, 4));
  EXPECT(r, EXACT, 0, 2, 3, 5);
  IrAttr sl2[3] = {ir_attr_int("axis", 0), ir_attr_int("start", 1), ir_attr_int("end", 2)};
  r = eval(opn(IR_OP_SLICE, &x, 1, sl2, 3));
  EXPECT(r, EXACT, 3, 4, 5);
  IrNode *cc[3] = {x, col, x};
  IrAttr ax1 = ir_attr_int("axis", 1);
  r = eval(opn(IR_OP_CONCAT, cc, 3, &ax1, 1));
  EXPECT(r, EXACT, 0, 1, 2, 7, 0, 1, 2, 3, 4, 5, 8, 3, 4, 5);
  r = eval(op1(IR_OP_STOP_GRADIENT, x));
  EXPECT(r, EXACT, 0, 1, 2, 3, 4, 5);
  /* slice_bwd scatters back: the adjoint of slice(axis 1, 0:3:2) of a [2,3] */
  IrNode *dy = IN_F(SH(2, 2), 1, 2, 3, 4);
  IrAttr sb[4] = {ir_attr_int("axis", 1), ir_attr_int("start", 0), ir_attr_int("step", 2),
                  ir_attr_int("size", 3)};
  r = eval(opn(IR_OP_SLICE_BWD, &dy, 1, sb, 4));
  EXPECT(r, EXACT, 1, 0, 2, 3, 0, 4);
}
END_TEST

/* ---- reductions ------------------------------------------------------------------------------ */

START_TEST(test_reductions) {
  IrNode *x = IN_F(SH(2, 3), 1, 5, 3, 4, 2, 6);
  int64_t ax1[1] = {1}, ax0[1] = {0};
  IrAttr a1 = ir_attr_ints("axes", ax1, 1), a0[2] = {ir_attr_ints("axes", ax0, 1), ir_attr_int("keepdim", 1)};
  IrTensor r = eval(opn(IR_OP_SUM, &x, 1, &a1, 1));
  EXPECT(r, EXACT, 9, 12);
  r = eval(opn(IR_OP_MEAN, &x, 1, a0, 2));
  ck_assert(ck_shape_eq(&r.shape, &(CkShape){2, {1, 3}}));
  EXPECT(r, EXACT, 2.5, 3.5, 4.5);
  r = eval(opn(IR_OP_MAX, &x, 1, &a1, 1));
  EXPECT(r, EXACT, 5, 6);
  r = eval(op1(IR_OP_SUM, x)); /* all axes */
  EXPECT(r, EXACT, 21);
  r = eval(op1(IR_OP_MEAN, x));
  EXPECT(r, TIGHT, 3.5);
  IrNode *t = IN_F(SH(2, 4), 1, 3, 3, 0, 2, NAN, 9, NAN);
  r = eval(op1(IR_OP_ARGMAX, t)); /* ties: first; NaN wins (first NaN) */
  ck_assert_int_eq(r.dtype, CK_DT_I32);
  EXPECT(r, EXACT, 1, 1);
  r = eval(opn(IR_OP_MAX, &t, 1, &a1, 1));
  EXPECT(r, EXACT, 3, NAN);
  IrNode *iv = IN_I(SH(3), 2147483647, 10, -5);
  r = eval(op1(IR_OP_SUM, iv)); /* 2147483652 wraps as i32 */
  EXPECT(r, EXACT, 2147483652.0 - 4294967296.0);
  /* max_bwd: the gradient goes to the first maximum of each row */
  IrNode *dy = IN_F(SH(2), 10, 20);
  IrNode *mb[2] = {IN_F(SH(2, 3), 1, 5, 5, 7, 2, 7), dy};
  IrAttr mba[2] = {ir_attr_int("axis", 1), ir_attr_int("keepdim", 0)};
  r = eval(opn(IR_OP_MAX_BWD, mb, 2, mba, 2));
  EXPECT(r, EXACT, 0, 10, 0, 20, 0, 0);
}
END_TEST

/* ---- nn primitives ---------------------------------------------------------------------------- */

START_TEST(test_softmax) {
  IrNode *x = IN_F(SH(2, 3), 1, 2, 3, 1000, 1000, 1000);
  double s = exp(1.0) + exp(2.0) + exp(3.0);
  IrTensor r = eval(op1(IR_OP_SOFTMAX, x));
  EXPECT(r, TIGHT, exp(1.0) / s, exp(2.0) / s, exp(3.0) / s, 1.0 / 3, 1.0 / 3, 1.0 / 3);
  r = eval(op1(IR_OP_LOG_SOFTMAX, x));
  EXPECT(r, TIGHT, 1 - log(s), 2 - log(s), 3 - log(s), -log(3.0), -log(3.0), -log(3.0));
  /* over axis 0 */
  IrAttr a0 = ir_attr_int("axis", 0);
  IrNode *y = IN_F(SH(2, 2), 0, 1, 0, 3);
  r = eval(opn(IR_OP_SOFTMAX, &y, 1, &a0, 1));
  EXPECT(r, TIGHT, 0.5, 1 / (1 + exp(2.0)), 0.5, 1 / (1 + exp(-2.0)));
}
END_TEST

START_TEST(test_norms) {
  IrNode *x = IN_F(SH(2, 4), 1, 2, 3, 4, 2, 4, 2, 4);
  IrNode *w = IN_F(SH(4), 1, 2, 1, 1);
  IrNode *b = IN_F(SH(4), 0, 0, 0, 10);
  IrAttr eps0 = ir_attr_float("eps", 0.0);
  IrNode *in3[3] = {x, w, b};
  IrTensor r = eval(opn(IR_OP_LAYERNORM, in3, 3, &eps0, 1));
  /* mean 2.5, biased var 1.25 */
  double s = sqrt(1.25);
  /* row 1: mean 3, var 1 */
  EXPECT(r, TIGHT, -1.5 / s, 2 * -0.5 / s, 0.5 / s, 1.5 / s + 10, -1, 2, -1, 11);
  IrAttr eps = ir_attr_float("eps", 1e-5);
  r = eval(opn(IR_OP_LAYERNORM, &x, 1, &eps, 1));
  double s2 = sqrt(1.25 + 1e-5);
  double s3 = sqrt(1 + 1e-5);
  EXPECT(r, TIGHT, -1.5 / s2, -0.5 / s2, 0.5 / s2, 1.5 / s2, -1 / s3, 1 / s3, -1 / s3, 1 / s3);
  IrNode *in2[2] = {x, w};
  r = eval(opn(IR_OP_RMSNORM, in2, 2, &eps0, 1));
  double ms = sqrt((1 + 4 + 9 + 16) / 4.0);
  double ms1 = sqrt((4 + 16 + 4 + 16) / 4.0);
  EXPECT(r, TIGHT, 1 / ms, 4 / ms, 3 / ms, 4 / ms, 2 / ms1, 8 / ms1, 2 / ms1, 4 / ms1);
}
END_TEST

START_TEST(test_embedding) {
  IrNode *tab = IN_F(SH(3, 2), 0, 1, 10, 11, 20, 21);
  IrNode *idx = IN_I(SH(2, 2), 2, 0, 2, 1);
  IrTensor r = eval(op2(IR_OP_EMBEDDING, tab, idx));
  ck_assert(ck_shape_eq(&r.shape, &(CkShape){3, {2, 2, 2}}));
  EXPECT(r, EXACT, 20, 21, 0, 1, 20, 21, 10, 11);
  /* embedding_bwd: rows of dy added into the rows their index names */
  IrNode *dy = IN_F(SH(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8);
  IrNode *eb[2] = {dy, idx};
  IrAttr num = ir_attr_int("num", 3);
  r = eval(opn(IR_OP_EMBEDDING_BWD, eb, 2, &num, 1));
  EXPECT(r, EXACT, 3, 4, 7, 8, 6, 8);
  IrNode *bad = IN_I(SH(1), 3);
  eval_fails(op2(IR_OP_EMBEDDING, tab, bad), "index 3 at position 0 is outside [0, 3)");
}
END_TEST

START_TEST(test_conv_pool) {
  IrNode *x = IN_F(SH(1, 1, 3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9);
  IrNode *w = IN_F(SH(1, 1, 2, 2), 1, 1, 1, 1);
  IrTensor r = eval(op2(IR_OP_CONV2D, x, w));
  EXPECT(r, EXACT, 12, 16, 24, 28);
  /* padding 1, stride 2, bias 0.5, kernel [1 0; 0 -1] */
  IrNode *w2 = IN_F(SH(1, 1, 2, 2), 1, 0, 0, -1);
  IrNode *bias = IN_F(SH(1), 0.5);
  int64_t two[2] = {2, 2}, one[2] = {1, 1};
  IrAttr ca[2] = {ir_attr_ints("stride", two, 2), ir_attr_ints("padding", one, 2)};
  IrNode *cin[3] = {x, w2, bias};
  r = eval(opn(IR_OP_CONV2D, cin, 3, ca, 2));
  /* windows start at (-1,-1), (-1,1), (1,-1), (1,1): out = x[h0][w0] - x[h0+1][w0+1] + 0.5
   * with x = 0 outside */
  EXPECT(r, EXACT, 0 - 1 + 0.5, 0 - 3 + 0.5, 0 - 7 + 0.5, 5 - 9 + 0.5);
  /* groups = 2: each output channel sees its own input channel */
  IrNode *x2 = IN_F(SH(1, 2, 1, 2), 1, 2, 3, 4);
  IrNode *wg = IN_F(SH(2, 1, 1, 1), 10, 100);
  IrAttr gr = ir_attr_int("groups", 2);
  IrNode *gin[2] = {x2, wg};
  r = eval(opn(IR_OP_CONV2D, gin, 2, &gr, 1));
  EXPECT(r, EXACT, 10, 20, 300, 400);
  /* pooling */
  IrAttr pk[1] = {ir_attr_ints("kernel", two, 2)};
  IrNode *p = IN_F(SH(1, 1, 2, 4), 1, 5, 2, 0, 3, 4, NAN, 1);
  r = eval(opn(IR_OP_MAXPOOL2D, &p, 1, pk, 1));
  EXPECT(r, EXACT, 5, NAN);
  r = eval(opn(IR_OP_AVGPOOL2D, &x, 1, (IrAttr[]){ir_attr_ints("kernel", two, 2),
                                                  ir_attr_ints("stride", one, 2)}, 2));
  EXPECT(r, EXACT, 3, 4, 6, 7);
  /* padding counts in the divisor: kernel 2 stride 2 padding 1 on [1 2; 3 4] */
  IrNode *q = IN_F(SH(1, 1, 2, 2), 1, 2, 3, 4);
  IrAttr pa[3] = {ir_attr_ints("kernel", two, 2), ir_attr_ints("stride", two, 2),
                  ir_attr_ints("padding", one, 2)};
  r = eval(opn(IR_OP_AVGPOOL2D, &q, 1, pa, 3));
  EXPECT(r, EXACT, 0.25, 0.5, 0.75, 1.0);
  r = eval(opn(IR_OP_MAXPOOL2D, &q, 1, pa, 3));
  EXPECT(r, EXACT, 1, 2, 3, 4);
  IrNode *neg = IN_F(SH(1, 1, 2, 2), -1, -2, -3, -4); /* padding is -inf, not 0 */
  r = eval(opn(IR_OP_MAXPOOL2D, &neg, 1, pa, 3));
  EXPECT(r, EXACT, -1, -2, -3, -4);
  /* maxpool2d_bwd: first maximum of the window gets dy */
  IrNode *tie = IN_F(SH(1, 1, 2, 2), 3, 3, 1, 3);
  IrNode *dy = IN_F(SH(1, 1, 1, 1), 7);
  IrNode *mb[2] = {dy, tie};
  r = eval(opn(IR_OP_MAXPOOL2D_BWD, mb, 2, pk, 1));
  EXPECT(r, EXACT, 7, 0, 0, 0);
}
END_TEST

START_TEST(test_attention) {
  /* T = S = 2, D = Dv = 1, scale 1 */
  IrNode *q = IN_F(SH(1, 2, 1), 1, 2);
  IrNode *k = IN_F(SH(1, 2, 1), 0, 1);
  IrNode *v = IN_F(SH(1, 2, 1), 10, 20);
  IrNode *in3[3] = {q, k, v};
  IrAttr at[2] = {ir_attr_int("causal", 1), ir_attr_float("scale", 1.0)};
  IrTensor r = eval(opn(IR_OP_ATTENTION, in3, 3, at, 2));
  /* row 0 sees key 0 only; row 1: scores (0, 2) */
  double p1 = exp(2.0) / (1 + exp(2.0));
  EXPECT(r, TIGHT, 10, 10 * (1 - p1) + 20 * p1);
  at[0] = ir_attr_int("causal", 0);
  r = eval(opn(IR_OP_ATTENTION, in3, 3, at, 2));
  double p0 = exp(1.0) / (1 + exp(1.0));
  EXPECT(r, TIGHT, 10 * (1 - p0) + 20 * p0, 10 * (1 - p1) + 20 * p1);
}
END_TEST

START_TEST(test_losses) {
  IrNode *lg = IN_F(SH(3, 3), 1, 2, 3, 0, 0, 0, 5, 1, 1);
  IrNode *tg = IN_I(SH(3), 2, -100, 0);
  double l0 = log(exp(1.0) + exp(2.0) + exp(3.0)), l2 = log(exp(5.0) + 2 * exp(1.0));
  IrTensor r = eval(op2(IR_OP_CROSS_ENTROPY, lg, tg));
  EXPECT(r, TIGHT, ((l0 - 3) + (l2 - 5)) / 2);
  IrNode *ce[2] = {lg, tg};
  IrAttr ca[2] = {ir_attr_int("ignore_index", 0), ir_attr_float("label_smoothing", 0.3)};
  IrNode *tg2 = IN_I(SH(3), 2, 1, 0); /* row 2 ignored now */
  ce[1] = tg2;
  r = eval(opn(IR_OP_CROSS_ENTROPY, ce, 2, ca, 2));
  EXPECT(r, TIGHT, (0.7 * (l0 - 3) + 0.3 * (l0 - 2) + 0.7 * (log(3.0) - 0) + 0.3 * log(3.0)) / 2);
  IrNode *all_ign = IN_I(SH(3), 0, 0, 0);
  ce[1] = all_ign;
  r = eval(opn(IR_OP_CROSS_ENTROPY, ce, 2, ca, 2));
  EXPECT(r, EXACT, NAN);
  IrNode *bad = IN_I(SH(3), 3, 0, 0);
  eval_fails(op2(IR_OP_CROSS_ENTROPY, lg, bad), "target 3 of row 0 is outside [0, 3)");
  IrNode *a = IN_F(SH(2), 1, -2), *b = IN_F(SH(2), 0.5, 1);
  r = eval(op2(IR_OP_MSE, a, b));
  EXPECT(r, TIGHT, (0.25 + 9) / 2);
  r = eval(op2(IR_OP_BCE_WITH_LOGITS, a, b));
  /* -[y log s(x) + (1-y) log(1-s(x))] */
  double s1 = 1 / (1 + exp(-1.0)), s2 = 1 / (1 + exp(2.0));
  EXPECT(r, 1e-13, (-(0.5 * log(s1) + 0.5 * log(1 - s1)) - log(s2)) / 2);
  /* cross_entropy_bwd: dloss / n (softmax - onehot) on kept rows */
  IrNode *dl = IN_F(SCALAR, 2.0);
  IrNode *cb[3] = {dl, lg, tg};
  r = eval(opn(IR_OP_CROSS_ENTROPY_BWD, cb, 3, NULL, 0));
  double e0 = exp(1.0 - l0), e1 = exp(2.0 - l0), e2 = exp(3.0 - l0);
  double f0 = exp(5.0 - l2), f1 = exp(1.0 - l2);
  EXPECT(r, 1e-14, e0, e1, e2 - 1, 0, 0, 0, f0 - 1, f1, f1);
}
END_TEST

/* ---- graphs: calls, parameters, errors ---------------------------------------------------------- */

typedef struct ParamTab {
  const char *names[4];
  IrTensor vals[4];
  int n;
} ParamTab;

static const IrTensor *lookup(void *ctx, const char *name) {
  ParamTab *t = ctx;
  for (int k = 0; k < t->n; k++)
    if (strcmp(t->names[k], name) == 0) return &t->vals[k];
  return NULL;
}

START_TEST(test_call_and_params) {
  /* callee: y = x * w (w a parameter, named "lin.w" inside instance "blocks.1") */
  IrGraph *cal = ir_graph_new(mod, "Lin.forward", false);
  CkShape s2 = SH(2);
  IrNode *cx = ir_input(cal, "x", CK_DT_F32, &s2, L0);
  IrNode *cw = ir_param(cal, "w", CK_DT_F32, &s2, NULL, 0, L0);
  IrErr err;
  IrNode *in2[2] = {cx, cw};
  ir_set_output(cal, ir_op(cal, IR_OP_MUL, in2, 2, NULL, 0, NULL, L0, &err));
  IrNode *x = IN_F(SH(2), 3, 4);
  IrNode *c1 = ir_call(g, cal, "blocks.1", &x, 1, NULL, L0);
  IrNode *c2 = ir_call(g, cal, "blocks.2", &c1, 1, NULL, L0);
  IrNode *top = ir_param(g, "bias", CK_DT_F32, &s2, NULL, 0, L0);
  IrNode *out = op2(IR_OP_ADD, c2, top);
  ParamTab pt = {{"blocks.1.w", "blocks.2.w", "bias"}, {{0}}, 3};
  for (int k = 0; k < 3; k++) pt.vals[k] = ir_tensor_new(&arena, CK_DT_F32, &s2);
  pt.vals[0].f[0] = 2, pt.vals[0].f[1] = 3;
  pt.vals[1].f[0] = 5, pt.vals[1].f[1] = 7;
  pt.vals[2].f[0] = 0.5, pt.vals[2].f[1] = -1;
  g->outputs.len = 0;
  ir_set_output(g, out);
  ir_set_output(g, c1);
  IrTensor res[2];
  char msg[512];
  ck_assert_msg(ir_interp_run(g, &arena, tin, lookup, &pt, res, msg, sizeof msg), "%s", msg);
  EXPECT(res[0], EXACT, 3 * 2 * 5 + 0.5, 4 * 3 * 7 - 1);
  EXPECT(res[1], EXACT, 6, 12);
  /* a missing parameter is named with its full path */
  pt.n = 1;
  ck_assert(!ir_interp_run(g, &arena, tin, lookup, &pt, res, msg, sizeof msg));
  ck_assert_msg(strstr(msg, "no value for parameter 'blocks.2.w'"), "%s", msg);
  /* a parameter of the wrong shape */
  pt.n = 3;
  pt.vals[2] = ir_tensor_new(&arena, CK_DT_F32, &(CkShape){1, {3}});
  ck_assert(!ir_interp_run(g, &arena, tin, lookup, &pt, res, msg, sizeof msg));
  ck_assert_msg(strstr(msg, "value of type f32[3] given for f32[2]"), "%s", msg);
}
END_TEST

/* every row of ops.def has reference semantics: a new row without them fails here */
START_TEST(test_every_op_supported) {
  for (int op = 0; op < IR_OP_COUNT; op++)
    ck_assert_msg(ir_interp_supports((IrOp)op),
                  "ops.def row '%s' has no reference semantics in ir/interp.c", ir_op_name((IrOp)op));
  ck_assert(!ir_interp_supports(IR_OP_COUNT));
}
END_TEST

START_TEST(test_unknown_op_and_bad_graphs) {
  IrNode *x = IN_F(SH(2), 1, 2);
  IrNode *y = op1(IR_OP_EXP, x);
  y->op = IR_OP_COUNT; /* an op the interpreter cannot know: an error, never a crash */
  eval_fails(y, "unknown op");
  y->op = IR_OP_EXP;
  /* an operand used before it is computed */
  IrNode *z = op1(IR_OP_NEG, x);
  g->nodes.items[g->nodes.len - 1] = y;
  g->nodes.items[g->nodes.len - 2] = z;
  z->in[0] = y;
  eval_fails(z, "operand 0 is not computed before its use");
  /* an input of the wrong type */
  ir_set_output(g, x);
  tin[0] = ir_tensor_new(&arena, CK_DT_I32, &(CkShape){1, {2}});
  char msg[256];
  IrTensor out[2];
  g->outputs.len = 1;
  g->outputs.items[0] = x;
  ck_assert(!ir_interp_run(g, &arena, tin, NULL, NULL, out, msg, sizeof msg));
  ck_assert_msg(strstr(msg, "value of type i32[2] given for f32[2]"), "%s", msg);
  /* float-only op on an integer operand: refused by message */
  IrNode *iv = IN_I(SH(1), -3);
  IrNode *ab = op1(IR_OP_ABS, iv);
  IrTensor r = eval(ab);
  EXPECT(r, EXACT, 3);
}
END_TEST

/* ---- agreement with the float32 kernels of rt-min ------------------------------------------------ */

/* Random inputs in [-1, 1) rounded to float, so both sides see the same numbers. */
static IrNode *rand_input(CkRng *rng, CkShape s, float *fbuf) {
  char name[16];
  snprintf(name, sizeof name, "x%d", g->inputs.len);
  IrNode *n = ir_input(g, name, CK_DT_F32, &s, L0);
  IrTensor *t = &tin[g->inputs.len - 1];
  *t = ir_tensor_new(&arena, CK_DT_F32, &s);
  for (int64_t k = 0; k < t->numel; k++) {
    fbuf[k] = ck_rng_uniform(rng) * 2.0f - 1.0f;
    t->f[k] = fbuf[k];
  }
  return n;
}

static double max_rel_err(const IrTensor *t, const float *ref) {
  double m = 0.0;
  for (int64_t k = 0; k < t->numel; k++) {
    double e = fabs(t->f[k] - (double)ref[k]) / fmax(1.0, fabs(t->f[k]));
    if (!(e <= m)) m = e; /* NaN sticks */
  }
  return m;
}

#define KTOL 1e-5
#define AGREE(t, ref, what)                                                              \
  do {                                                                                   \
    double e_ = max_rel_err(&(t), (ref));                                                \
    ck_assert_msg(e_ <= KTOL, "%s: interp vs kernel max rel err %.3g", what, e_);        \
  } while (0)

START_TEST(test_kernels_linear_movement) {
  CkRng rng;
  ck_rng_seed(&rng, 11);
  float a[2 * 4 * 3], b[4 * 5], c[2 * 4 * 5], out[64];
  IrNode *x = rand_input(&rng, SH(2, 4, 3), a);
  IrNode *w = rand_input(&rng, SH(5, 3), b);
  IrNode *in2[2] = {x, w};
  IrAttr tb = ir_attr_int("transpose_b", 1);
  IrTensor r = eval(opn(IR_OP_MATMUL, in2, 2, &tb, 1));
  ck_matmul_f32(out, a, b, 2, 4, 5, 3, 0, 1, 12, 0);
  AGREE(r, out, "matmul transpose_b batch-broadcast");
  IrNode *y = rand_input(&rng, SH(2, 4, 5), c);
  IrAttr ta = ir_attr_int("transpose_a", 1);
  IrNode *in2d[2] = {y, x};
  r = eval(opn(IR_OP_MATMUL, in2d, 2, &ta, 1)); /* y^T [5,4] @ x [4,3] per batch */
  ck_matmul_f32(out, c, a, 2, 5, 3, 4, 1, 0, 20, 12);
  AGREE(r, out, "matmul transpose_a");
  IrNode *xt = opn(IR_OP_PERMUTE, &x, 1, (IrAttr[]){ir_attr_ints("perm", (int64_t[]){0, 2, 1}, 3)}, 1);
  float xt_buf[24];
  ck_permute(xt_buf, a, sizeof(float), 3, (int64_t[]){2, 4, 3}, (int64_t[]){0, 2, 1});
  r = eval(xt);
  AGREE(r, xt_buf, "permute");
  IrAttr sl[4] = {ir_attr_int("axis", 1), ir_attr_int("start", 1), ir_attr_int("end", 4),
                  ir_attr_int("step", 2)};
  r = eval(opn(IR_OP_SLICE, &x, 1, sl, 4));
  ck_slice(out, a, sizeof(float), 2, 4, 3, 1, 2, 2);
  AGREE(r, out, "slice");
  IrNode *xt2 = opn(IR_OP_PERMUTE, &xt, 1, (IrAttr[]){ir_attr_ints("perm", (int64_t[]){0, 2, 1}, 3)}, 1);
  IrNode *cc[2] = {x, xt2}; /* xt2 == x, concatenated along the last axis */
  IrAttr ax2 = ir_attr_int("axis", 2);
  r = eval(opn(IR_OP_CONCAT, cc, 2, &ax2, 1));
  ck_concat_part(out, a, sizeof(float), 8, 3, 6, 0, 1);
  ck_concat_part(out, a, sizeof(float), 8, 3, 6, 3, 1);
  AGREE(r, out, "concat");
  float col[3];
  IrNode *cv = rand_input(&rng, SH(3, 1), col);
  r = eval(opn(IR_OP_BROADCAST, &cv, 1, (IrAttr[]){ir_attr_ints("shape", (int64_t[]){2, 3, 4}, 3)}, 1));
  ck_broadcast(out, col, sizeof(float), 3, (int64_t[]){1, 3, 1}, (int64_t[]){2, 3, 4});
  AGREE(r, out, "broadcast");
}
END_TEST

START_TEST(test_kernels_reduce_softmax_norm) {
  CkRng rng;
  ck_rng_seed(&rng, 12);
  float a[3 * 5 * 4], w[4], b[4], out[64], mean[16], rstd[16];
  IrNode *x = rand_input(&rng, SH(3, 5, 4), a);
  IrAttr ax[2] = {ir_attr_ints("axes", (int64_t[]){1}, 1), ir_attr_int("keepdim", 1)};
  IrTensor r = eval(opn(IR_OP_SUM, &x, 1, ax, 2));
  ck_sum_f32(out, a, 3, 5, 4);
  AGREE(r, out, "sum");
  r = eval(opn(IR_OP_MEAN, &x, 1, ax, 1));
  ck_mean_f32(out, a, 3, 5, 4);
  AGREE(r, out, "mean");
  r = eval(opn(IR_OP_MAX, &x, 1, ax, 1));
  ck_max_f32(out, a, 3, 5, 4);
  AGREE(r, out, "max");
  IrAttr a1 = ir_attr_int("axis", 1);
  r = eval(opn(IR_OP_ARGMAX, &x, 1, &a1, 1));
  int32_t am[16];
  ck_argmax_f32(am, a, 3, 5, 4);
  for (int k = 0; k < 12; k++) ck_assert_int_eq(r.i[k], am[k]);
  r = eval(opn(IR_OP_SOFTMAX, &x, 1, &a1, 1));
  ck_softmax_f32(out, a, 3, 5, 4);
  AGREE(r, out, "softmax");
  r = eval(op1(IR_OP_LOG_SOFTMAX, x));
  ck_log_softmax_f32(out, a, 15, 4, 1);
  AGREE(r, out, "log_softmax");
  IrNode *wn = rand_input(&rng, SH(4), w), *bn = rand_input(&rng, SH(4), b);
  IrNode *in3[3] = {x, wn, bn};
  IrAttr eps = ir_attr_float("eps", 1e-5);
  r = eval(opn(IR_OP_LAYERNORM, in3, 3, &eps, 1));
  ck_layernorm_f32(out, mean, rstd, a, w, b, 15, 4, 1e-5f);
  AGREE(r, out, "layernorm");
  r = eval(opn(IR_OP_RMSNORM, in3, 2, &eps, 1));
  ck_rmsnorm_f32(out, rstd, a, w, 15, 4, 1e-5f);
  AGREE(r, out, "rmsnorm");

  /* backward kernels: the IR *_bwd ops give fresh gradients, the kernels accumulate into zeros */
  float dy[60], dx[60], dw[4], db[4];
  IrNode *dyn = rand_input(&rng, SH(3, 5, 4), dy);
  IrNode *sm = opn(IR_OP_SOFTMAX, &x, 1, &a1, 1);
  float y[60];
  ck_softmax_f32(y, a, 3, 5, 4);
  IrNode *sb[2] = {sm, dyn};
  r = eval(opn(IR_OP_SOFTMAX_BWD, sb, 2, &a1, 1));
  memset(dx, 0, sizeof dx);
  ck_softmax_backward_f32(dx, y, dy, 3, 5, 4);
  AGREE(r, dx, "softmax_bwd");
  IrNode *ls = op1(IR_OP_LOG_SOFTMAX, x);
  ck_log_softmax_f32(y, a, 15, 4, 1);
  sb[0] = ls;
  r = eval(opn(IR_OP_LOG_SOFTMAX_BWD, sb, 2, (IrAttr[]){ir_attr_int("axis", 2)}, 1));
  memset(dx, 0, sizeof dx);
  ck_log_softmax_backward_f32(dx, y, dy, 15, 4, 1);
  AGREE(r, dx, "log_softmax_bwd");
  IrNode *dyr = rand_input(&rng, SH(3, 4), dy);
  IrNode *mb[2] = {x, dyr};
  IrAttr mba[2] = {ir_attr_int("axis", 1), ir_attr_int("keepdim", 0)};
  r = eval(opn(IR_OP_MAX_BWD, mb, 2, mba, 2));
  memset(dx, 0, sizeof dx);
  ck_max_backward_f32(dx, a, dy, 3, 5, 4);
  AGREE(r, dx, "max_bwd");
  dyn = rand_input(&rng, SH(3, 5, 4), dy);
  IrNode *lb[3] = {dyn, x, wn};
  ck_layernorm_f32(out, mean, rstd, a, w, b, 15, 4, 1e-5f);
  memset(dx, 0, sizeof dx);
  memset(dw, 0, sizeof dw);
  memset(db, 0, sizeof db);
  ck_layernorm_backward_f32(dx, dw, db, dy, a, w, mean, rstd, 15, 4);
  r = eval(opn(IR_OP_LAYERNORM_BWD_X, lb, 3, &eps, 1));
  AGREE(r, dx, "layernorm_bwd_x");
  r = eval(opn(IR_OP_LAYERNORM_BWD_W, lb, 2, &eps, 1));
  AGREE(r, dw, "layernorm_bwd_w");
  ck_rmsnorm_f32(out, rstd, a, w, 15, 4, 1e-5f);
  memset(dx, 0, sizeof dx);
  memset(dw, 0, sizeof dw);
  ck_rmsnorm_backward_f32(dx, dw, dy, a, w, rstd, 15, 4);
  r = eval(opn(IR_OP_RMSNORM_BWD_X, lb, 3, &eps, 1));
  AGREE(r, dx, "rmsnorm_bwd_x");
  r = eval(opn(IR_OP_RMSNORM_BWD_W, lb, 2, &eps, 1));
  AGREE(r, dw, "rmsnorm_bwd_w");
}
END_TEST

START_TEST(test_kernels_embedding_conv_pool_attention) {
  CkRng rng;
  ck_rng_seed(&rng, 13);
  float tab[5 * 3], out[512], x[2 * 4 * 5 * 5], w[6 * 2 * 3 * 3], bias[6], dy[512], dx[512],
      dw[512], db[8], scratch[64];
  IrNode *tn = rand_input(&rng, SH(5, 3), tab);
  IrNode *idx = IN_I(SH(2, 3), 4, 0, 4, 2, 1, 0);
  int32_t iv[6] = {4, 0, 4, 2, 1, 0};
  IrTensor r = eval(op2(IR_OP_EMBEDDING, tn, idx));
  ck_assert_int_eq(ck_embedding_f32(out, tab, iv, 6, 5, 3), -1);
  AGREE(r, out, "embedding");
  IrNode *dyn = rand_input(&rng, SH(2, 3, 3), dy);
  IrNode *eb[2] = {dyn, idx};
  r = eval(opn(IR_OP_EMBEDDING_BWD, eb, 2, (IrAttr[]){ir_attr_int("num", 5)}, 1));
  memset(dx, 0, sizeof dx);
  ck_assert_int_eq(ck_embedding_backward_f32(dx, dy, iv, 6, 5, 3), -1);
  AGREE(r, dx, "embedding_bwd");

  /* conv2d: N=2 C=4 H=W=5, OC=6 groups=2 (C/g=2), 3x3, stride (2,1), padding (1,0) */
  IrNode *xn = rand_input(&rng, SH(2, 4, 5, 5), x);
  IrNode *wn = rand_input(&rng, SH(6, 2, 3, 3), w);
  IrNode *bn = rand_input(&rng, SH(6), bias);
  IrAttr ca[3] = {ir_attr_ints("stride", (int64_t[]){2, 1}, 2),
                  ir_attr_ints("padding", (int64_t[]){1, 0}, 2), ir_attr_int("groups", 2)};
  IrNode *cin[3] = {xn, wn, bn};
  IrNode *cv = opn(IR_OP_CONV2D, cin, 3, ca, 3);
  int64_t OH = cv->shape.dims[2], OW = cv->shape.dims[3];
  ck_assert_int_eq(OH, 3);
  ck_assert_int_eq(OW, 3);
  r = eval(cv);
  ck_conv2d_f32(out, x, w, bias, 2, 4, 5, 5, 6, 3, 3, 2, 1, 1, 0, 2, OH, OW);
  AGREE(r, out, "conv2d");
  IrNode *cdy = rand_input(&rng, SH(2, 6, 3, 3), dy);
  memset(dx, 0, sizeof dx);
  memset(dw, 0, sizeof dw);
  memset(db, 0, sizeof db);
  ck_conv2d_backward_f32(dx, dw, db, dy, x, w, 2, 4, 5, 5, 6, 3, 3, 2, 1, 1, 0, 2, OH, OW);
  IrAttr cbx[4] = {ca[0], ca[1], ca[2], ir_attr_ints("in_shape", (int64_t[]){2, 4, 5, 5}, 4)};
  IrNode *bx[2] = {cdy, wn};
  r = eval(opn(IR_OP_CONV2D_BWD_X, bx, 2, cbx, 4));
  AGREE(r, dx, "conv2d_bwd_x");
  IrAttr cbw[4] = {ca[0], ca[1], ca[2], ir_attr_ints("w_shape", (int64_t[]){6, 2, 3, 3}, 4)};
  IrNode *bw[2] = {cdy, xn};
  r = eval(opn(IR_OP_CONV2D_BWD_W, bw, 2, cbw, 4));
  AGREE(r, dw, "conv2d_bwd_w");

  /* pooling: kernel 3, stride 2, padding 1 on 5x5 -> 3x3 */
  IrAttr pa[3] = {ir_attr_ints("kernel", (int64_t[]){3, 3}, 2), ir_attr_ints("stride", (int64_t[]){2, 2}, 2),
                  ir_attr_ints("padding", (int64_t[]){1, 1}, 2)};
  r = eval(opn(IR_OP_MAXPOOL2D, &xn, 1, pa, 3));
  ck_maxpool2d_f32(out, x, 2, 4, 5, 5, 3, 3, 2, 2, 1, 1, 3, 3);
  AGREE(r, out, "maxpool2d");
  r = eval(opn(IR_OP_AVGPOOL2D, &xn, 1, pa, 3));
  ck_avgpool2d_f32(out, x, 2, 4, 5, 5, 3, 3, 2, 2, 1, 1, 3, 3);
  AGREE(r, out, "avgpool2d");
  IrNode *pdy = rand_input(&rng, SH(2, 4, 3, 3), dy);
  IrNode *mp[2] = {pdy, xn};
  r = eval(opn(IR_OP_MAXPOOL2D_BWD, mp, 2, pa, 3));
  memset(dx, 0, sizeof dx);
  ck_maxpool2d_backward_f32(dx, dy, x, 2, 4, 5, 5, 3, 3, 2, 2, 1, 1, 3, 3);
  AGREE(r, dx, "maxpool2d_bwd");
  IrAttr pab[4] = {pa[0], pa[1], pa[2], ir_attr_ints("in_shape", (int64_t[]){2, 4, 5, 5}, 4)};
  r = eval(opn(IR_OP_AVGPOOL2D_BWD, &pdy, 1, pab, 4));
  memset(dx, 0, sizeof dx);
  ck_avgpool2d_backward_f32(dx, dy, 2, 4, 5, 5, 3, 3, 2, 2, 1, 1, 3, 3);
  AGREE(r, dx, "avgpool2d_bwd");

  /* attention: batch (2, 2), T = 3, S = 5 (causal offset 2), D = 4, Dv = 3 */
  float q[48], k[80], v[60], dq[48], dk[80], dv[60];
  IrNode *qn = rand_input(&rng, SH(2, 2, 3, 4), q);
  IrNode *kn = rand_input(&rng, SH(2, 2, 5, 4), k);
  IrNode *vn = rand_input(&rng, SH(2, 2, 5, 3), v);
  for (int causal = 0; causal <= 1; causal++) {
    IrAttr aa[2] = {ir_attr_int("causal", causal), ir_attr_float("scale", 0.7)};
    IrNode *an[3] = {qn, kn, vn};
    r = eval(opn(IR_OP_ATTENTION, an, 3, aa, 2));
    ck_attention_f32(out, q, k, v, 4, 3, 5, 4, 3, causal, 0.7f, scratch);
    AGREE(r, out, causal ? "attention causal" : "attention");
    IrNode *don = rand_input(&rng, SH(2, 2, 3, 3), dy);
    memset(dq, 0, sizeof dq);
    memset(dk, 0, sizeof dk);
    memset(dv, 0, sizeof dv);
    ck_attention_backward_f32(dq, dk, dv, dy, q, k, v, 4, 3, 5, 4, 3, causal, 0.7f, scratch);
    IrNode *ab[4] = {don, qn, kn, vn};
    r = eval(opn(IR_OP_ATTENTION_BWD_Q, ab, 4, aa, 2));
    AGREE(r, dq, "attention_bwd_q");
    r = eval(opn(IR_OP_ATTENTION_BWD_K, ab, 4, aa, 2));
    AGREE(r, dk, "attention_bwd_k");
    r = eval(opn(IR_OP_ATTENTION_BWD_V, ab, 4, aa, 2));
    AGREE(r, dv, "attention_bwd_v");
  }
}
END_TEST

Suite *check_interp_suite(void) {
  Suite *s = suite_create("interp");
  TCase *t = tcase_create("elementwise");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, test_binary_broadcast);
  tcase_add_test(t, test_maximum_nan);
  tcase_add_test(t, test_integer_ops);
  tcase_add_test(t, test_unary);
  tcase_add_test(t, test_compare_where_cast);
  suite_add_tcase(s, t);
  t = tcase_create("kernels_ops");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, test_matmul);
  tcase_add_test(t, test_movement);
  tcase_add_test(t, test_reductions);
  tcase_add_test(t, test_softmax);
  tcase_add_test(t, test_norms);
  tcase_add_test(t, test_embedding);
  tcase_add_test(t, test_conv_pool);
  tcase_add_test(t, test_attention);
  tcase_add_test(t, test_losses);
  suite_add_tcase(s, t);
  t = tcase_create("graphs");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, test_call_and_params);
  tcase_add_test(t, test_unknown_op_and_bad_graphs);
  tcase_add_test(t, test_every_op_supported);
  suite_add_tcase(s, t);
  t = tcase_create("rtmin_agreement");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, test_kernels_linear_movement);
  tcase_add_test(t, test_kernels_reduce_softmax_norm);
  tcase_add_test(t, test_kernels_embedding_conv_pool_attention);
  suite_add_tcase(s, t);
  return s;
}
