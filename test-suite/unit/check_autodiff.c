/* test-suite/unit/check_autodiff.c - the autodiff and optimizer passes.
 *
 * Structure: hand-built "loss" graphs, the pass, then the train_step graph's
 * outputs, names, fan-out ADDs, frozen/stop_gradient/integer handling,
 * broadcast reductions, errors, and ir_verify after every step.
 * Numbers: for every differentiable op rule, a loss built from that op is
 * differentiated by the pass and the gradient (evaluated by the float64
 * reference interpreter, ir/interp.c) is compared with central finite
 * differences of the loss graph itself. The interpreter shares no code with
 * the pass, so a wrong rule cannot agree with its own check. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/interp.h"
#include "ir/train.h"
#include "passes/passes.h"

enum { T_MAX_PARAMS = 8 };

typedef struct T {
  CkcArena a;
  CkcDiag d;
  FILE *diag_out;
  IrModule *m;
  IrGraph *g; /* "loss" */
  CkcLoc loc;
  uint64_t rng;
  /* parameter values for the interpreter, by name */
  const char *pname[T_MAX_PARAMS];
  IrTensor pval[T_MAX_PARAMS];
  int np;
} T;

static void t_init(T *t) {
  memset(t, 0, sizeof *t);
  ckc_arena_init(&t->a);
  t->diag_out = tmpfile();
  ck_assert_ptr_nonnull(t->diag_out);
  ckc_diag_init(&t->d, &t->a, t->diag_out);
  t->m = ir_module_new(&t->a, "M", "m.ckm");
  t->g = ir_graph_new(t->m, "loss", true);
  t->rng = 0x9e3779b97f4a7c15ull;
}

static void t_free(T *t) {
  fclose(t->diag_out);
  ckc_arena_free(&t->a);
}

static const char *t_diag_text(T *t) {
  static char buf[4096]; /* test-only scratch */
  fflush(t->diag_out);
  rewind(t->diag_out);
  size_t n = fread(buf, 1, sizeof buf - 1, t->diag_out);
  buf[n] = 0;
  return buf;
}

/* Uniform in [-1, 1) from a 64-bit LCG (deterministic across hosts). */
static double t_rand(T *t) {
  t->rng = t->rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(t->rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static CkShape shp(int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  CkShape s;
  memset(&s, 0, sizeof s);
  s.rank = rank;
  s.dims[0] = d0;
  s.dims[1] = d1;
  s.dims[2] = d2;
  s.dims[3] = d3;
  return s;
}

static void assert_verifies(T *t) {
  CkcBuf err;
  ckc_buf_init(&err, &t->a);
  bool ok = ir_verify(t->m, true, &err);
  ck_assert_msg(ok, "ir_verify failed: %s", ckc_buf_str(&err));
}

static IrNode *opn(T *t, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat, const char *name) {
  IrErr err;
  IrNode *n = ir_op(t->g, op, in, nin, at, nat, name, t->loc, &err);
  ck_assert_msg(n != NULL, "ir_op %s: %s", ir_op_name(op), err.msg);
  return n;
}
static IrNode *op1(T *t, IrOp op, IrNode *x) { return opn(t, op, &x, 1, NULL, 0, NULL); }
static IrNode *op2(T *t, IrOp op, IrNode *x, IrNode *y) {
  IrNode *in[2] = {x, y};
  return opn(t, op, in, 2, NULL, 0, NULL);
}
static IrNode *op1a(T *t, IrOp op, IrNode *x, IrAttr a) { return opn(t, op, &x, 1, &a, 1, NULL); }

/* A parameter with random values in [lo, hi) (for the interpreter). */
static IrNode *t_param_range(T *t, const char *name, CkShape s, double lo, double hi) {
  IrNode *p = ir_param(t->g, name, CK_DT_F32, &s, NULL, 0, t->loc);
  ck_assert_int_lt(t->np, T_MAX_PARAMS);
  IrTensor v = ir_tensor_new(&t->a, CK_DT_F32, &s);
  for (int64_t k = 0; k < v.numel; k++) v.f[k] = lo + (hi - lo) * (t_rand(t) + 1.0) / 2.0;
  t->pname[t->np] = p->name;
  t->pval[t->np++] = v;
  return p;
}
static IrNode *t_param(T *t, const char *name, CkShape s) { return t_param_range(t, name, s, -1.0, 1.0); }

/* A dense random constant (data the loss is weighted by). */
static IrNode *t_const_rand(T *t, CkShape s) {
  int64_t n = ck_shape_numel_unchecked(&s);
  float *v = CKC_NEW_ARRAY(&t->a, float, n > 0 ? n : 1);
  for (int64_t k = 0; k < n; k++) v[k] = (float)t_rand(t);
  return ir_const_data(t->g, CK_DT_F32, &s, v, t->loc);
}

static IrNode *t_const_i32(T *t, CkShape s, const int32_t *v) {
  return ir_const_data(t->g, CK_DT_I32, &s, v, t->loc);
}

/* loss = sum(y * R) for a random R: every element of y gets its own weight. */
static IrNode *t_weighted_sum(T *t, IrNode *y) {
  if (y->shape.rank == 0) return y;
  IrNode *w = t_const_rand(t, y->shape);
  return op1(t, IR_OP_SUM, op2(t, IR_OP_MUL, y, w));
}

static void t_set_loss(T *t, IrNode *l) {
  if (!l->name) l->name = "loss";
  ir_set_output(t->g, l);
}

static const IrTensor *t_params_cb(void *ctx, const char *name) {
  T *t = ctx;
  for (int i = 0; i < t->np; i++)
    if (strcmp(t->pname[i], name) == 0) return &t->pval[i];
  return NULL;
}

static IrNode *find_named(const IrGraph *g, const char *name) {
  for (int i = 0; i < g->nodes.len; i++)
    if (g->nodes.items[i]->name && strcmp(g->nodes.items[i]->name, name) == 0) return g->nodes.items[i];
  return NULL;
}

static int count_op(const IrGraph *g, IrOp op) {
  int n = 0;
  for (int i = 0; i < g->nodes.len; i++) n += g->nodes.items[i]->op == op;
  return n;
}

static IrGraph *t_autodiff(T *t) {
  ck_assert_msg(pass_autodiff(t->m, &t->d), "autodiff failed: %s", t_diag_text(t));
  IrGraph *ts = ir_module_entry(t->m, "train_step");
  ck_assert_ptr_nonnull(ts);
  assert_verifies(t);
  return ts;
}

static double t_eval_loss(T *t, CkcArena *scratch) {
  IrTensor out[2];
  char err[512];
  bool ok = ir_interp_run(t->g, scratch, NULL, t_params_cb, t, out, err, sizeof err);
  ck_assert_msg(ok, "%s", err);
  return ir_tensor_get(&out[0], 0);
}

/* Gradient check: every element of every trainable parameter, central
 * differences with h = 1e-6 on the float64 interpreter. */
static void t_gradcheck_graph(T *t, IrGraph *ts, const char *what) {
  ck_assert_int_eq(ts->outputs.len, 1 + t->np);
  CkcArena scratch;
  ckc_arena_init(&scratch);
  IrTensor *out = CKC_NEW_ARRAY(&t->a, IrTensor, ts->outputs.len);
  char err[512];
  bool ok = ir_interp_run(ts, &scratch, NULL, t_params_cb, t, out, err, sizeof err);
  ck_assert_msg(ok, "%s: train_step: %s", what, err);
  double l0 = t_eval_loss(t, &scratch);
  ck_assert_msg(fabs(ir_tensor_get(&out[0], 0) - l0) <= 1e-12 * (1 + fabs(l0)),
                "%s: train_step loss %.17g differs from loss %.17g", what, ir_tensor_get(&out[0], 0), l0);
  const double h = 1e-6;
  for (int i = 0; i < t->np; i++) {
    const IrNode *go = ts->outputs.items[1 + i];
    char want[128];
    snprintf(want, sizeof want, "grad.%s", t->pname[i]);
    ck_assert_str_eq(go->name, want);
    IrTensor *p = &t->pval[i];
    ck_assert_int_eq(out[1 + i].numel, p->numel);
    for (int64_t k = 0; k < p->numel; k++) {
      double save = p->f[k];
      p->f[k] = save + h;
      double lp = t_eval_loss(t, &scratch);
      p->f[k] = save - h;
      double lm = t_eval_loss(t, &scratch);
      p->f[k] = save;
      double fd = (lp - lm) / (2 * h), an = ir_tensor_get(&out[1 + i], k);
      ck_assert_msg(fabs(fd - an) <= 1e-6 + 1e-5 * fabs(fd),
                    "%s: d loss / d %s[%lld]: autodiff %.12g, finite differences %.12g", what,
                    t->pname[i], (long long)k, an, fd);
    }
  }
  ckc_arena_free(&scratch);
}

static void t_gradcheck(T *t, const char *what) { t_gradcheck_graph(t, t_autodiff(t), what); }

/* ---- structure ------------------------------------------------------------------------ */

/* mse(x @ w + b, y): outputs [loss, grad.w, grad.b]; the bias gradient is a
 * SUM over the broadcast batch axis; inputs keep their positions; the
 * target input gets no gradient. */
START_TEST(test_linear_structure) {
  T t;
  t_init(&t);
  CkShape sx = shp(2, 2, 4, 0, 0), sy = shp(2, 2, 3, 0, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &sx, t.loc);
  IrNode *y = ir_input(t.g, "y", CK_DT_F32, &sy, t.loc);
  IrNode *w = t_param(&t, "w", shp(2, 4, 3, 0, 0));
  IrNode *b = t_param(&t, "b", shp(1, 3, 0, 0, 0));
  IrNode *h = op2(&t, IR_OP_ADD, op2(&t, IR_OP_MATMUL, x, w), b);
  h->name = "h";
  t_set_loss(&t, op2(&t, IR_OP_MSE, h, y));
  IrGraph *ts = t_autodiff(&t);
  ck_assert_int_eq(ts->inputs.len, 2);
  ck_assert_str_eq(ts->inputs.items[0]->name, "x");
  ck_assert_str_eq(ts->inputs.items[1]->name, "y");
  ck_assert_int_eq(ts->outputs.len, 3);
  ck_assert_int_eq(ts->outputs.items[0]->op, IR_OP_MSE);
  ck_assert_str_eq(ts->outputs.items[1]->name, "grad.w");
  ck_assert_str_eq(ts->outputs.items[2]->name, "grad.b");
  const IrNode *gw = ts->outputs.items[1], *gb = ts->outputs.items[2];
  ck_assert_int_eq(gw->op, IR_OP_MATMUL);
  ck_assert_int_eq(ir_get_int(gw, "transpose_a", 0), 1);
  ck_assert(gw->in[0] == ts->inputs.items[0]); /* saved tensor: the forward's x */
  ck_assert_int_eq(gw->shape.rank, 2);
  ck_assert_int_eq(gw->shape.dims[0], 4);
  ck_assert_int_eq(gw->shape.dims[1], 3);
  /* bias: sum over axis 0 (keepdim) then reshape to [3] */
  ck_assert_int_eq(gb->shape.rank, 1);
  ck_assert_int_eq(gb->shape.dims[0], 3);
  ck_assert_int_eq(gb->op, IR_OP_RESHAPE);
  ck_assert_int_eq(gb->in[0]->op, IR_OP_SUM);
  int na;
  const int64_t *axes = ir_get_ints(gb->in[0], "axes", &na);
  ck_assert_int_eq(na, 1);
  ck_assert_int_eq(axes[0], 0);
  /* the adjoint of the named value h */
  ck_assert_ptr_nonnull(find_named(ts, "d.h"));
  /* the loss graph is untouched */
  ck_assert_int_eq(t.g->outputs.len, 1);
  t_free(&t);
}
END_TEST

/* A value used twice gets its contributions summed by an explicit ADD. */
START_TEST(test_fanout_add) {
  T t;
  t_init(&t);
  IrNode *w = t_param(&t, "w", shp(1, 3, 0, 0, 0));
  IrNode *a = op1(&t, IR_OP_TANH, w);
  IrNode *m = op2(&t, IR_OP_MUL, a, w);
  t_set_loss(&t, op1(&t, IR_OP_SUM, m));
  IrGraph *ts = t_autodiff(&t);
  const IrNode *gw = ts->outputs.items[1];
  ck_assert_str_eq(gw->name, "grad.w");
  ck_assert_int_eq(gw->op, IR_OP_ADD);
  /* the contribution through mul's second operand arrives first (reverse order) */
  ck_assert_int_eq(gw->in[0]->op, IR_OP_MUL);
  ck_assert_int_eq(gw->in[1]->op, IR_OP_MUL); /* dy * (1 - y^2) from tanh */
  t_free(&t);
  /* and the numbers */
  t_init(&t);
  IrNode *w2 = t_param(&t, "w", shp(1, 3, 0, 0, 0));
  t_set_loss(&t, t_weighted_sum(&t, op2(&t, IR_OP_MUL, op1(&t, IR_OP_TANH, w2), op2(&t, IR_OP_MUL, w2, w2))));
  t_gradcheck(&t, "fanout");
  t_free(&t);
}
END_TEST

/* frozen=1 and stop_gradient-only parameters get no output; an unused one
 * gets a zero constant and W0501; an integer input gets nothing. */
START_TEST(test_frozen_stop_unused) {
  T t;
  t_init(&t);
  CkShape s = shp(1, 3, 0, 0, 0);
  IrAttr fz = ir_attr_int("frozen", 1);
  IrNode *f = ir_param(t.g, "f", CK_DT_F32, &s, &fz, 1, t.loc);
  IrNode *w = t_param(&t, "w", s);
  IrNode *sg = t_param(&t, "sg", s);
  IrNode *u = t_param(&t, "u", s);
  (void)u;
  IrNode *l = op2(&t, IR_OP_ADD, op2(&t, IR_OP_MUL, w, f), op1(&t, IR_OP_STOP_GRADIENT, sg));
  t_set_loss(&t, op1(&t, IR_OP_SUM, l));
  IrGraph *ts = t_autodiff(&t);
  ck_assert_int_eq(ts->outputs.len, 3);
  ck_assert_str_eq(ts->outputs.items[1]->name, "grad.w");
  ck_assert_str_eq(ts->outputs.items[2]->name, "grad.u");
  ck_assert_int_eq(ts->outputs.items[2]->op, IR_OP_CONST);
  ck_assert(ir_get_float(ts->outputs.items[2], "value", 1.0) == 0.0);
  ck_assert_int_eq(t.d.nwarnings, 1);
  ck_assert_ptr_nonnull(strstr(t_diag_text(&t), "W0501"));
  ck_assert_ptr_nonnull(strstr(t_diag_text(&t), "'u'"));
  /* grad.w = f (the frozen value, saved from the forward) */
  ck_assert_int_eq(ts->outputs.items[1]->op, IR_OP_MUL);
  ck_assert_ptr_eq(find_named(ts, "grad.f"), NULL);
  ck_assert_ptr_eq(find_named(ts, "grad.sg"), NULL);
  t_free(&t);
}
END_TEST

/* stop_gradient blocks one path but not another: grad of sum(w * sg(w)) is w. */
START_TEST(test_stop_gradient_value) {
  T t;
  t_init(&t);
  IrNode *w = t_param(&t, "w", shp(1, 4, 0, 0, 0));
  t_set_loss(&t, op1(&t, IR_OP_SUM, op2(&t, IR_OP_MUL, w, op1(&t, IR_OP_STOP_GRADIENT, w))));
  IrGraph *ts = t_autodiff(&t);
  CkcArena scratch;
  ckc_arena_init(&scratch);
  IrTensor out[2];
  char err[256];
  ck_assert_msg(ir_interp_run(ts, &scratch, NULL, t_params_cb, &t, out, err, sizeof err), "%s", err);
  for (int k = 0; k < 4; k++) ck_assert(fabs(out[1].f[k] - t.pval[0].f[k]) < 1e-15);
  ckc_arena_free(&scratch);
  t_free(&t);
}
END_TEST

/* embedding(table, idx): the i32 indices get no gradient; the table gets
 * embedding_bwd with num = V; argmax and comparisons pass nothing. */
START_TEST(test_integer_and_nondiff) {
  T t;
  t_init(&t);
  CkShape si = shp(2, 2, 3, 0, 0);
  IrNode *idx = ir_input(t.g, "idx", CK_DT_I32, &si, t.loc);
  IrNode *tab = t_param(&t, "wte", shp(2, 5, 4, 0, 0));
  IrNode *e = opn(&t, IR_OP_EMBEDDING, (IrNode *[]){tab, idx}, 2, NULL, 0, "e");
  IrNode *am = op1a(&t, IR_OP_ARGMAX, e, ir_attr_int("axis", -1)); /* i32[2,3] */
  IrNode *c = op1a(&t, IR_OP_CAST, am, ir_attr_str("to", "f32"));
  IrNode *l = op2(&t, IR_OP_ADD, op1(&t, IR_OP_SUM, e), op1(&t, IR_OP_SUM, c));
  t_set_loss(&t, l);
  IrGraph *ts = t_autodiff(&t);
  ck_assert_int_eq(ts->outputs.len, 2);
  const IrNode *g = ts->outputs.items[1];
  ck_assert_int_eq(g->op, IR_OP_EMBEDDING_BWD);
  ck_assert_int_eq(ir_get_int(g, "num", -1), 5);
  ck_assert(g->in[1] == ts->inputs.items[0]);
  ck_assert_int_eq(count_op(ts, IR_OP_ARGMAX), 1); /* the forward's only */
  ck_assert_int_eq(t.d.nwarnings, 0);
  t_free(&t);
}
END_TEST

/* broadcast reduction: a [1,3] parameter added to [2,3] keeps its rank:
 * sum over axis 0 with keepdim, no reshape needed. */
START_TEST(test_broadcast_shapes) {
  T t;
  t_init(&t);
  IrNode *a = t_param(&t, "a", shp(2, 2, 3, 0, 0));
  IrNode *b = t_param(&t, "b", shp(2, 1, 3, 0, 0));
  IrNode *c = t_param(&t, "c", shp(0, 0, 0, 0, 0));
  t_set_loss(&t, t_weighted_sum(&t, op2(&t, IR_OP_MUL, op2(&t, IR_OP_ADD, a, b), c)));
  IrGraph *ts = t_autodiff(&t);
  const IrNode *gb = ts->outputs.items[2], *gc = ts->outputs.items[3];
  ck_assert_int_eq(gb->op, IR_OP_SUM);
  ck_assert_int_eq(gb->shape.rank, 2);
  ck_assert_int_eq(gb->shape.dims[0], 1);
  ck_assert_int_eq(gc->shape.rank, 0);
  ck_assert_int_eq(gc->op, IR_OP_RESHAPE);
  t_free(&t);
}
END_TEST

/* Errors: a multi-axis max, a non-scalar loss. No loss graph: no-op. */
START_TEST(test_errors_and_noop) {
  T t;
  t_init(&t);
  IrNode *w = t_param(&t, "w", shp(2, 2, 3, 0, 0));
  int64_t axes[2] = {0, 1};
  t_set_loss(&t, op1a(&t, IR_OP_MAX, w, ir_attr_ints("axes", axes, 2)));
  ck_assert(!pass_autodiff(t.m, &t.d));
  ck_assert_ptr_nonnull(strstr(t_diag_text(&t), "E0500"));
  t_free(&t);

  t_init(&t);
  w = t_param(&t, "w", shp(1, 3, 0, 0, 0));
  t_set_loss(&t, op1(&t, IR_OP_TANH, w));
  ck_assert(!pass_autodiff(t.m, &t.d));
  ck_assert_ptr_nonnull(strstr(t_diag_text(&t), "E0502"));
  t_free(&t);

  t_init(&t);
  t.g->name = "forward";
  w = t_param(&t, "w", shp(1, 3, 0, 0, 0));
  t_set_loss(&t, op1(&t, IR_OP_SUM, w));
  ck_assert(pass_autodiff(t.m, &t.d));
  ck_assert_int_eq(t.m->graphs.len, 1);
  t_free(&t);
}
END_TEST

/* The whole pipeline on a module with a train config: every pass keeps the
 * IR valid, train->params follows the gradient outputs and the decay flags
 * follow rank >= 2, exclude, include (include wins). */
START_TEST(test_pipeline_decay) {
  T t;
  t_init(&t);
  IrTrainConfig *tc = CKC_NEW(&t.a, IrTrainConfig);
  memset(tc, 0, sizeof *tc);
  t.m->train = tc;
  CKC_VEC_PUSH(&t.a, tc->decay_exclude, "head.*");
  CKC_VEC_PUSH(&t.a, tc->decay_include, "*.keep");
  CKC_VEC_PUSH(&t.a, tc->decay_include, "nothing.matches");
  CkShape sx = shp(2, 2, 4, 0, 0);
  IrNode *x = ir_input(t.g, "x", CK_DT_F32, &sx, t.loc);
  IrNode *w = t_param(&t, "body.w", shp(2, 4, 4, 0, 0));
  IrNode *g = t_param(&t, "ln.g", shp(1, 4, 0, 0, 0));
  IrNode *hw = t_param(&t, "head.w", shp(2, 4, 2, 0, 0));
  IrNode *hk = t_param(&t, "head.keep", shp(2, 1, 2, 0, 0));
  IrNode *h = op2(&t, IR_OP_MATMUL, x, w);
  h = opn(&t, IR_OP_LAYERNORM, (IrNode *[]){h, g}, 2, NULL, 0, "hn");
  h = op2(&t, IR_OP_ADD, op2(&t, IR_OP_MATMUL, h, hw), hk);
  int32_t tv[2] = {1, 0};
  IrNode *tgt = t_const_i32(&t, shp(1, 2, 0, 0, 0), tv);
  t_set_loss(&t, opn(&t, IR_OP_CROSS_ENTROPY, (IrNode *[]){h, tgt}, 2, NULL, 0, "loss"));
  for (const CkcPass *p = ckc_passes; p->name; p++) {
    ck_assert_msg(p->run(t.m, &t.d), "pass %s failed: %s", p->name, t_diag_text(&t));
    assert_verifies(&t);
  }
  IrGraph *ts = ir_module_entry(t.m, "train_step");
  ck_assert_ptr_nonnull(ts);
  ck_assert_int_eq(ts->outputs.len, 5);
  ck_assert_int_eq(tc->params.len, 4);
  const char *names[4] = {"body.w", "ln.g", "head.w", "head.keep"};
  const bool decay[4] = {true, false, false, true};
  for (int i = 0; i < 4; i++) {
    ck_assert_str_eq(tc->params.items[i].name, names[i]);
    ck_assert_msg(tc->params.items[i].decay == decay[i], "decay of %s", names[i]);
  }
  ck_assert_int_eq(count_op(ts, IR_OP_CROSS_ENTROPY_BWD), 1);
  ck_assert_int_eq(count_op(ts, IR_OP_LAYERNORM_BWD_X), 1);
  ck_assert_int_eq(count_op(ts, IR_OP_LAYERNORM_BWD_W), 1);
  ck_assert_ptr_nonnull(strstr(t_diag_text(&t), "W0520"));
  ck_assert_ptr_null(strstr(t_diag_text(&t), "'*.keep'"));
  t_free(&t);
}
END_TEST

/* The gradients survive fold, cse and dce: a two-layer GELU network with a
 * shared weight and cross_entropy, checked after the whole pipeline. */
START_TEST(test_pipeline_gradcheck) {
  T t;
  t_init(&t);
  IrNode *w = t_param(&t, "w", shp(2, 4, 4, 0, 0));
  IrNode *g = t_param(&t, "ln.g", shp(1, 4, 0, 0, 0));
  IrNode *b = t_param(&t, "b", shp(1, 4, 0, 0, 0));
  IrNode *x = t_const_rand(&t, shp(3, 2, 3, 4, 0));
  IrNode *h = op1(&t, IR_OP_GELU, op2(&t, IR_OP_ADD, op2(&t, IR_OP_MATMUL, x, w), b));
  h = opn(&t, IR_OP_LAYERNORM, (IrNode *[]){h, g}, 2, NULL, 0, "hn");
  IrAttr tb = ir_attr_int("transpose_b", 1);
  h = opn(&t, IR_OP_MATMUL, (IrNode *[]){h, w}, 2, &tb, 1, "logits");
  int32_t tv[6] = {1, 0, 3, 2, 2, 1};
  IrNode *tgt = t_const_i32(&t, shp(2, 2, 3, 0, 0), tv);
  t_set_loss(&t, opn(&t, IR_OP_CROSS_ENTROPY, (IrNode *[]){h, tgt}, 2, NULL, 0, "loss"));
  for (const CkcPass *p = ckc_passes; p->name; p++) {
    ck_assert_msg(p->run(t.m, &t.d), "pass %s failed: %s", p->name, t_diag_text(&t));
    assert_verifies(&t);
  }
  t_gradcheck_graph(&t, ir_module_entry(t.m, "train_step"), "pipeline");
}
END_TEST

/* ---- finite differences, one case per rule ------------------------------------------------ */

typedef void (*CaseFn)(T *t);

static IrNode *P(T *t, const char *n, int r, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  return t_param(t, n, shp(r, d0, d1, d2, d3));
}
static IrNode *Ppos(T *t, const char *n, int r, int64_t d0, int64_t d1) {
  return t_param_range(t, n, shp(r, d0, d1, 0, 0), 0.5, 2.0);
}
static void L(T *t, IrNode *y) { t_set_loss(t, t_weighted_sum(t, y)); }

static void c_add(T *t) { L(t, op2(t, IR_OP_ADD, P(t, "a", 2, 2, 3, 0, 0), P(t, "b", 1, 3, 0, 0, 0))); }
static void c_sub(T *t) { L(t, op2(t, IR_OP_SUB, P(t, "a", 2, 2, 3, 0, 0), P(t, "b", 2, 1, 3, 0, 0))); }
static void c_mul(T *t) { L(t, op2(t, IR_OP_MUL, P(t, "a", 2, 2, 3, 0, 0), P(t, "b", 2, 2, 1, 0, 0))); }
static void c_div(T *t) { L(t, op2(t, IR_OP_DIV, P(t, "a", 2, 2, 3, 0, 0), Ppos(t, "b", 1, 3, 0))); }
static void c_maximum(T *t) { L(t, op2(t, IR_OP_MAXIMUM, P(t, "a", 2, 2, 3, 0, 0), P(t, "b", 1, 3, 0, 0, 0))); }
static void c_minimum(T *t) { L(t, op2(t, IR_OP_MINIMUM, P(t, "a", 2, 2, 3, 0, 0), P(t, "b", 2, 2, 3, 0, 0))); }
static void c_pow(T *t) { L(t, op2(t, IR_OP_POW, Ppos(t, "a", 2, 2, 3), P(t, "b", 1, 3, 0, 0, 0))); }
static void c_unary(T *t, IrOp op, bool pos) {
  L(t, op1(t, op, pos ? Ppos(t, "x", 2, 2, 3) : P(t, "x", 2, 2, 3, 0, 0)));
}
static void c_neg(T *t) { c_unary(t, IR_OP_NEG, false); }
static void c_abs(T *t) { c_unary(t, IR_OP_ABS, false); }
static void c_exp(T *t) { c_unary(t, IR_OP_EXP, false); }
static void c_log(T *t) { c_unary(t, IR_OP_LOG, true); }
static void c_sqrt(T *t) { c_unary(t, IR_OP_SQRT, true); }
static void c_rsqrt(T *t) { c_unary(t, IR_OP_RSQRT, true); }
static void c_tanh(T *t) { c_unary(t, IR_OP_TANH, false); }
static void c_sigmoid(T *t) { c_unary(t, IR_OP_SIGMOID, false); }
static void c_relu(T *t) { c_unary(t, IR_OP_RELU, false); }
static void c_silu(T *t) { c_unary(t, IR_OP_SILU, false); }
static void c_erf(T *t) { c_unary(t, IR_OP_ERF, false); }
static void c_gelu(T *t) { c_unary(t, IR_OP_GELU, false); }
static void c_gelu_tanh(T *t) {
  L(t, op1a(t, IR_OP_GELU, P(t, "x", 2, 2, 3, 0, 0), ir_attr_str("approximate", "tanh")));
}
static void c_cast(T *t) {
  IrNode *c = op1a(t, IR_OP_CAST, P(t, "x", 1, 4, 0, 0, 0), ir_attr_str("to", "f64"));
  t_set_loss(t, op1(t, IR_OP_SUM, op2(t, IR_OP_MUL, c, c)));
}
static void c_where(T *t) {
  IrNode *a = P(t, "a", 2, 2, 3, 0, 0), *b = P(t, "b", 1, 3, 0, 0, 0);
  IrNode *cond = op2(t, IR_OP_GT, t_const_rand(t, shp(2, 2, 3, 0, 0)), ir_const_scalar(t->g, CK_DT_F32, 0, t->loc));
  L(t, opn(t, IR_OP_WHERE, (IrNode *[]){cond, a, b}, 3, NULL, 0, NULL));
}
static void c_matmul_flags(T *t, bool ta, bool tb) {
  IrNode *a = P(t, "a", 3, 2, ta ? 3 : 2, ta ? 2 : 3, 0); /* batch 2 */
  IrNode *b = P(t, "b", 2, tb ? 4 : 3, tb ? 3 : 4, 0, 0);  /* broadcast over the batch */
  IrAttr at[2] = {ir_attr_int("transpose_a", ta), ir_attr_int("transpose_b", tb)};
  L(t, opn(t, IR_OP_MATMUL, (IrNode *[]){a, b}, 2, at, 2, NULL));
}
static void c_mm00(T *t) { c_matmul_flags(t, false, false); }
static void c_mm01(T *t) { c_matmul_flags(t, false, true); }
static void c_mm10(T *t) { c_matmul_flags(t, true, false); }
static void c_mm11(T *t) { c_matmul_flags(t, true, true); }
static void c_mm_batched(T *t) { /* a rank-2 left operand under a batched right one */
  L(t, op2(t, IR_OP_MATMUL, P(t, "a", 2, 3, 4, 0, 0), P(t, "b", 3, 2, 4, 5, 0)));
}
static void c_mm_both(T *t) {
  L(t, op2(t, IR_OP_MATMUL, P(t, "a", 3, 2, 3, 4, 0), P(t, "b", 3, 2, 4, 5, 0)));
}
static void c_permute(T *t) {
  int64_t perm[3] = {2, 0, 1};
  L(t, op1a(t, IR_OP_PERMUTE, P(t, "x", 3, 2, 3, 4, 0), ir_attr_ints("perm", perm, 3)));
}
static void c_reshape(T *t) {
  CkShape s = shp(2, 3, 4, 0, 0);
  IrErr err;
  L(t, ir_reshape(t->g, P(t, "x", 3, 2, 3, 2, 0), &s, NULL, t->loc, &err));
}
static void c_broadcast(T *t) {
  int64_t s[3] = {2, 3, 4};
  L(t, op1a(t, IR_OP_BROADCAST, P(t, "x", 2, 3, 1, 0, 0), ir_attr_ints("shape", s, 3)));
}
static void c_slice(T *t) {
  IrAttr at[4] = {ir_attr_int("axis", 1), ir_attr_int("start", 1), ir_attr_int("end", 6), ir_attr_int("step", 2)};
  L(t, opn(t, IR_OP_SLICE, (IrNode *[]){P(t, "x", 2, 2, 7, 0, 0)}, 1, at, 4, NULL));
}
static void c_concat(T *t) {
  IrAttr at = ir_attr_int("axis", 1);
  L(t, opn(t, IR_OP_CONCAT, (IrNode *[]){P(t, "a", 2, 2, 3, 0, 0), P(t, "b", 2, 2, 1, 0, 0)}, 2, &at, 1, NULL));
}
static void c_sum(T *t) {
  int64_t axes[1] = {1};
  L(t, op1a(t, IR_OP_SUM, P(t, "x", 3, 2, 3, 4, 0), ir_attr_ints("axes", axes, 1)));
}
static void c_mean(T *t) {
  int64_t axes[2] = {0, 2};
  IrAttr at[2] = {ir_attr_ints("axes", axes, 2), ir_attr_int("keepdim", 1)};
  L(t, opn(t, IR_OP_MEAN, (IrNode *[]){P(t, "x", 3, 2, 3, 4, 0)}, 1, at, 2, NULL));
}
static void c_max(T *t) {
  int64_t axes[1] = {1};
  L(t, op1a(t, IR_OP_MAX, P(t, "x", 3, 2, 3, 4, 0), ir_attr_ints("axes", axes, 1)));
}
static void c_softmax(T *t) { L(t, op1a(t, IR_OP_SOFTMAX, P(t, "x", 2, 3, 4, 0, 0), ir_attr_int("axis", 0))); }
static void c_log_softmax(T *t) { L(t, op1(t, IR_OP_LOG_SOFTMAX, P(t, "x", 2, 3, 4, 0, 0))); }
static void c_layernorm(T *t) {
  IrNode *in[3] = {P(t, "x", 2, 3, 5, 0, 0), P(t, "w", 1, 5, 0, 0, 0), P(t, "b", 1, 5, 0, 0, 0)};
  L(t, opn(t, IR_OP_LAYERNORM, in, 3, NULL, 0, NULL));
}
static void c_layernorm_plain(T *t) { L(t, op1(t, IR_OP_LAYERNORM, P(t, "x", 2, 3, 5, 0, 0))); }
static void c_rmsnorm(T *t) {
  IrNode *in[2] = {P(t, "x", 3, 2, 2, 5, 0), P(t, "w", 1, 5, 0, 0, 0)};
  L(t, opn(t, IR_OP_RMSNORM, in, 2, NULL, 0, NULL));
}
static void c_embedding(T *t) {
  int32_t iv[5] = {1, 3, 1, 0, 3};
  IrNode *idx = t_const_i32(t, shp(1, 5, 0, 0, 0), iv);
  L(t, opn(t, IR_OP_EMBEDDING, (IrNode *[]){P(t, "tab", 2, 4, 3, 0, 0), idx}, 2, NULL, 0, NULL));
}
static void c_conv2d(T *t) {
  IrNode *in[3] = {P(t, "x", 4, 2, 4, 5, 5), P(t, "w", 4, 6, 2, 3, 3), P(t, "b", 1, 6, 0, 0, 0)};
  IrAttr at[3] = {ir_attr_int("stride", 2), ir_attr_int("padding", 1), ir_attr_int("groups", 2)};
  L(t, opn(t, IR_OP_CONV2D, in, 3, at, 3, NULL));
}
static void c_maxpool(T *t) {
  IrAttr at[3] = {ir_attr_int("kernel", 3), ir_attr_int("stride", 2), ir_attr_int("padding", 1)};
  L(t, opn(t, IR_OP_MAXPOOL2D, (IrNode *[]){P(t, "x", 4, 1, 2, 5, 5)}, 1, at, 3, NULL));
}
static void c_avgpool(T *t) {
  IrAttr at[2] = {ir_attr_int("kernel", 2), ir_attr_int("padding", 1)};
  L(t, opn(t, IR_OP_AVGPOOL2D, (IrNode *[]){P(t, "x", 4, 1, 2, 5, 4)}, 1, at, 2, NULL));
}
static void c_attention(T *t, bool causal) {
  IrNode *in[3] = {P(t, "q", 3, 2, 3, 4, 0), P(t, "k", 3, 2, 5, 4, 0), P(t, "v", 3, 2, 5, 2, 0)};
  IrAttr at = ir_attr_int("causal", causal);
  L(t, opn(t, IR_OP_ATTENTION, in, 3, &at, 1, NULL));
}
static void c_attn_causal(T *t) { c_attention(t, true); }
static void c_attn_full(T *t) { c_attention(t, false); }
static void c_xent(T *t) {
  int32_t tv[6] = {2, 0, -100, 4, 1, 2};
  IrNode *tg = t_const_i32(t, shp(2, 2, 3, 0, 0), tv);
  IrAttr at = ir_attr_float("label_smoothing", 0.1);
  t_set_loss(t, opn(t, IR_OP_CROSS_ENTROPY, (IrNode *[]){P(t, "x", 3, 2, 3, 5, 0), tg}, 2, &at, 1, NULL));
}
static void c_xent_ignore(T *t) {
  int32_t tv[4] = {2, 7, 7, 0};
  IrNode *tg = t_const_i32(t, shp(1, 4, 0, 0, 0), tv);
  IrAttr at = ir_attr_int("ignore_index", 7);
  t_set_loss(t, opn(t, IR_OP_CROSS_ENTROPY, (IrNode *[]){P(t, "x", 2, 4, 3, 0, 0), tg}, 2, &at, 1, NULL));
}
static void c_mse(T *t) { t_set_loss(t, op2(t, IR_OP_MSE, P(t, "a", 2, 2, 3, 0, 0), P(t, "b", 2, 2, 3, 0, 0))); }
static void c_bce(T *t) {
  IrNode *y = t_param_range(t, "y", shp(2, 2, 3, 0, 0), 0.0, 1.0);
  t_set_loss(t, op2(t, IR_OP_BCE_WITH_LOGITS, P(t, "x", 2, 2, 3, 0, 0), y));
}

static const struct {
  const char *name;
  CaseFn fn;
} cases[] = {
    {"add", c_add},         {"sub", c_sub},           {"mul", c_mul},
    {"div", c_div},         {"maximum", c_maximum},   {"minimum", c_minimum},
    {"pow", c_pow},         {"neg", c_neg},           {"abs", c_abs},
    {"exp", c_exp},         {"log", c_log},           {"sqrt", c_sqrt},
    {"rsqrt", c_rsqrt},     {"tanh", c_tanh},         {"sigmoid", c_sigmoid},
    {"relu", c_relu},       {"silu", c_silu},         {"erf", c_erf},
    {"gelu", c_gelu},       {"gelu_tanh", c_gelu_tanh}, {"cast", c_cast},
    {"where", c_where},     {"matmul", c_mm00},       {"matmul_tb", c_mm01},
    {"matmul_ta", c_mm10},  {"matmul_tatb", c_mm11},  {"matmul_batched", c_mm_batched},
    {"matmul_both", c_mm_both},  {"permute", c_permute},
    {"reshape", c_reshape}, {"broadcast", c_broadcast}, {"slice", c_slice},
    {"concat", c_concat},   {"sum", c_sum},           {"mean", c_mean},
    {"max", c_max},         {"softmax", c_softmax},   {"log_softmax", c_log_softmax},
    {"layernorm", c_layernorm}, {"layernorm_plain", c_layernorm_plain}, {"rmsnorm", c_rmsnorm},
    {"embedding", c_embedding}, {"conv2d", c_conv2d}, {"maxpool2d", c_maxpool},
    {"avgpool2d", c_avgpool}, {"attention_causal", c_attn_causal}, {"attention", c_attn_full},
    {"cross_entropy", c_xent}, {"cross_entropy_ignore", c_xent_ignore}, {"mse", c_mse},
    {"bce_with_logits", c_bce},
};

START_TEST(test_gradcheck) {
  T t;
  t_init(&t);
  t.rng += (uint64_t)_i * 7919u;
  cases[_i].fn(&t);
  t_gradcheck(&t, cases[_i].name);
  t_free(&t);
}
END_TEST

/* maximum/minimum ties split the gradient in half (PyTorch), abs'(0) = 0,
 * relu'(0) = 0: points where finite differences cannot judge. */
START_TEST(test_tie_rules) {
  T t;
  t_init(&t);
  IrNode *a = t_param(&t, "a", shp(1, 3, 0, 0, 0));
  IrNode *b = t_param(&t, "b", shp(1, 3, 0, 0, 0));
  IrNode *l = op2(&t, IR_OP_ADD, op1(&t, IR_OP_SUM, op2(&t, IR_OP_MAXIMUM, a, b)),
                  op1(&t, IR_OP_SUM, op2(&t, IR_OP_ADD, op1(&t, IR_OP_ABS, a), op1(&t, IR_OP_RELU, b))));
  t_set_loss(&t, l);
  double av[3] = {0.0, 1.0, -2.0}, bv[3] = {0.0, 1.0, 3.0};
  for (int k = 0; k < 3; k++) {
    t.pval[0].f[k] = av[k];
    t.pval[1].f[k] = bv[k];
  }
  IrGraph *ts = t_autodiff(&t);
  CkcArena scratch;
  ckc_arena_init(&scratch);
  IrTensor out[3];
  char err[256];
  ck_assert_msg(ir_interp_run(ts, &scratch, NULL, t_params_cb, &t, out, err, sizeof err), "%s", err);
  /* a: max tie 0.5 + abs'(0)=0; tie 0.5 + abs'(1)=1; loses 0 + abs'(-2)=-1 */
  const double ga[3] = {0.5, 1.5, -1.0}, gb[3] = {0.5, 1.5, 2.0};
  for (int k = 0; k < 3; k++) {
    ck_assert_msg(out[1].f[k] == ga[k], "grad a[%d] = %g, want %g", k, out[1].f[k], ga[k]);
    ck_assert_msg(out[2].f[k] == gb[k], "grad b[%d] = %g, want %g", k, out[2].f[k], gb[k]);
  }
  ckc_arena_free(&scratch);
  t_free(&t);
}
END_TEST

Suite *check_autodiff_suite(void) {
  Suite *s = suite_create("autodiff");
  TCase *tc = tcase_create("structure");
  tcase_add_test(tc, test_linear_structure);
  tcase_add_test(tc, test_fanout_add);
  tcase_add_test(tc, test_frozen_stop_unused);
  tcase_add_test(tc, test_stop_gradient_value);
  tcase_add_test(tc, test_integer_and_nondiff);
  tcase_add_test(tc, test_broadcast_shapes);
  tcase_add_test(tc, test_errors_and_noop);
  tcase_add_test(tc, test_tie_rules);
  suite_add_tcase(s, tc);
  tc = tcase_create("optimizer");
  tcase_add_test(tc, test_pipeline_decay);
  tcase_add_test(tc, test_pipeline_gradcheck);
  suite_add_tcase(s, tc);
  tc = tcase_create("gradcheck");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_gradcheck, 0, (int)(sizeof cases / sizeof cases[0]));
  suite_add_tcase(s, tc);
  return s;
}
