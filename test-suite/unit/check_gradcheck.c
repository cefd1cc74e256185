/* test-suite/unit/check_gradcheck.c - the autodiff pass (passes/autodiff.c)
 * against central finite differences, both evaluated by the float64
 * reference interpreter (ir/interp.c).
 *
 * For every case of the table: a "loss" graph is built by hand,
 *   loss = sum(op(params...) * R)
 * with R a fixed random constant of op's shape (so the incoming gradient is
 * not uniform), the parameters filled with random values from a fixed seed,
 * kept away from kinks (|x| >= 0.1 for relu/abs, distinct values for
 * max/maxpool/maximum; gaps >> h). pass_autodiff builds "train_step"; its
 * gradient outputs ("grad.<param>") are evaluated in double and compared with
 *   fd = (loss(p + h e_j) - loss(p - h e_j)) / 2h,   h = 1e-6 * max(1, |p_j|)
 * TOLERANCE: max_j |g_j - fd_j| / max(1, |fd_j|) <= 1e-6 over every trainable
 * parameter of the case. (The truncation error of central differences is
 * O(h^2) ~ 1e-12 and the rounding error ~ 1e-16 |loss| / h ~ 1e-9 here, so
 * 1e-6 leaves room only for real mistakes.) Frozen parameters and those seen
 * only through stop_gradient must have no gradient output. The observed
 * maximum error of each case is printed to stderr. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/interp.h"
#include "ir/train.h"
#include "passes/passes.h"
#include "rt-min/ck_rng.h"

#define GC_TOL 1e-6
#define GC_H 1e-6
#define GC_MAXP 12
#define GC_MAXIN 8

static const CkcLoc L0 = {0};

/* The state of one case: the module being built, the values of its
 * parameters and inputs, and which parameters must get no gradient. */
typedef struct Gc {
  CkcArena *a;
  IrModule *m;
  IrGraph *g;
  CkRng rng;
  int np;
  const char *pname[GC_MAXP];
  IrTensor pval[GC_MAXP];
  bool pnograd[GC_MAXP];
  IrTensor in[GC_MAXIN];
} Gc;

static CkShape mkshape(int rank, const int64_t *d) {
  CkShape s;
  memset(&s, 0, sizeof s);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.dims[i] = d[i];
  return s;
}
#define SH(...) mkshape((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

/* Uniform in [lo, hi]; with sign, a random sign too (so |x| >= lo: off the kinks). */
static double gc_rand(Gc *c, double lo, double hi, bool sign) {
  double v = lo + (hi - lo) * (double)ck_rng_uniform(&c->rng);
  if (sign && ck_rng_uniform(&c->rng) < 0.5f) v = -v;
  return v;
}

static IrNode *gc_param_ex(Gc *c, const char *name, CkShape s, double lo, double hi, bool sign,
                           bool frozen, bool nograd) {
  ck_assert_int_lt(c->np, GC_MAXP);
  IrAttr fz = ir_attr_int("frozen", 1);
  IrNode *n = ir_param(c->g, name, CK_DT_F32, &s, frozen ? &fz : NULL, frozen ? 1 : 0, L0);
  IrTensor t = ir_tensor_new(c->a, CK_DT_F32, &s);
  for (int64_t k = 0; k < t.numel; k++) t.f[k] = gc_rand(c, lo, hi, sign);
  c->pname[c->np] = name;
  c->pval[c->np] = t;
  c->pnograd[c->np] = frozen || nograd;
  c->np++;
  return n;
}
/* a trainable parameter with values +-[0.1, 1] */
static IrNode *P(Gc *c, const char *name, CkShape s) { return gc_param_ex(c, name, s, 0.1, 1.0, true, false, false); }
/* positive values in [lo, hi] (log, sqrt, div, pow bases) */
static IrNode *Ppos(Gc *c, const char *name, CkShape s, double lo, double hi) {
  return gc_param_ex(c, name, s, lo, hi, false, false, false);
}

static IrNode *gc_input(Gc *c, CkDType dt, CkShape s, const double *v, double lo, double hi) {
  int k = c->g->inputs.len;
  ck_assert_int_lt(k, GC_MAXIN);
  char *name = ckc_arena_printf(c->a, "in%d", k);
  IrNode *n = ir_input(c->g, name, dt, &s, L0);
  c->in[k] = ir_tensor_new(c->a, dt, &s);
  for (int64_t j = 0; j < c->in[k].numel; j++) {
    if (c->in[k].f)
      c->in[k].f[j] = v ? v[j] : gc_rand(c, lo, hi, true);
    else
      c->in[k].i[j] = (int32_t)v[j];
  }
  return n;
}
/* a random float input (data, not trained) */
static IrNode *Xin(Gc *c, CkShape s) { return gc_input(c, CK_DT_F32, s, NULL, 0.1, 1.0); }
#define IIN(c, shape, ...) gc_input(c, CK_DT_I32, shape, (const double[]){__VA_ARGS__}, 0, 0)
#define FIN(c, shape, ...) gc_input(c, CK_DT_F32, shape, (const double[]){__VA_ARGS__}, 0, 0)

static IrNode *On(Gc *c, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat) {
  IrErr err;
  IrNode *n = ir_op(c->g, op, in, nin, at, nat, NULL, L0, &err);
  ck_assert_msg(n != NULL, "%s: %s", ir_op_name(op), err.msg);
  return n;
}
#define NODES(...) (IrNode *[]){__VA_ARGS__}, (int)(sizeof((IrNode *[]){__VA_ARGS__}) / sizeof(IrNode *))
#define ATTRS(...) (IrAttr[]){__VA_ARGS__}, (int)(sizeof((IrAttr[]){__VA_ARGS__}) / sizeof(IrAttr))
#define NOATTRS NULL, 0
static IrNode *O1(Gc *c, IrOp op, IrNode *x) { return On(c, op, &x, 1, NULL, 0); }
static IrNode *O2(Gc *c, IrOp op, IrNode *x, IrNode *y) { return On(c, op, NODES(x, y), NOATTRS); }
#define INTS(k, ...) ir_attr_ints(k, (int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* ---- the cases: each builds op(params...) and returns it ------------------------------------- */

static IrNode *c_add(Gc *c) { return O2(c, IR_OP_ADD, P(c, "a", SH(2, 3)), P(c, "b", SH(3))); }
static IrNode *c_sub(Gc *c) { return O2(c, IR_OP_SUB, P(c, "a", SH(2, 1, 3)), P(c, "b", SH(4, 1))); }
static IrNode *c_mul(Gc *c) { return O2(c, IR_OP_MUL, P(c, "a", SH(4, 1)), P(c, "b", SH(2, 1, 3))); }
static IrNode *c_div(Gc *c) { return O2(c, IR_OP_DIV, P(c, "a", SH(2, 3)), Ppos(c, "b", SH(2, 1), 0.5, 1.5)); }
static IrNode *c_maximum(Gc *c) { return O2(c, IR_OP_MAXIMUM, P(c, "a", SH(3, 4)), P(c, "b", SH(4))); }
static IrNode *c_minimum(Gc *c) { return O2(c, IR_OP_MINIMUM, P(c, "a", SH(3, 1)), P(c, "b", SH(3, 4))); }
static IrNode *c_pow(Gc *c) { return O2(c, IR_OP_POW, Ppos(c, "a", SH(2, 3), 0.5, 1.5), P(c, "b", SH(3))); }
static IrNode *c_neg(Gc *c) { return O1(c, IR_OP_NEG, P(c, "x", SH(2, 3))); }
static IrNode *c_abs(Gc *c) { return O1(c, IR_OP_ABS, P(c, "x", SH(2, 3))); }
static IrNode *c_exp(Gc *c) { return O1(c, IR_OP_EXP, P(c, "x", SH(2, 3))); }
static IrNode *c_log(Gc *c) { return O1(c, IR_OP_LOG, Ppos(c, "x", SH(2, 3), 0.2, 2.0)); }
static IrNode *c_sqrt(Gc *c) { return O1(c, IR_OP_SQRT, Ppos(c, "x", SH(2, 3), 0.2, 2.0)); }
static IrNode *c_rsqrt(Gc *c) { return O1(c, IR_OP_RSQRT, Ppos(c, "x", SH(2, 3), 0.2, 2.0)); }
static IrNode *c_tanh(Gc *c) { return O1(c, IR_OP_TANH, P(c, "x", SH(2, 3))); }
static IrNode *c_sigmoid(Gc *c) { return O1(c, IR_OP_SIGMOID, P(c, "x", SH(2, 3))); }
static IrNode *c_relu(Gc *c) { return O1(c, IR_OP_RELU, P(c, "x", SH(3, 4))); }
static IrNode *c_gelu(Gc *c) { return O1(c, IR_OP_GELU, gc_param_ex(c, "x", SH(3, 4), 0.0, 3.0, true, false, false)); }
static IrNode *c_gelu_tanh(Gc *c) {
  IrNode *x = gc_param_ex(c, "x", SH(3, 4), 0.0, 3.0, true, false, false);
  return On(c, IR_OP_GELU, &x, 1, ATTRS(ir_attr_str("approximate", "tanh")));
}
static IrNode *c_silu(Gc *c) { return O1(c, IR_OP_SILU, gc_param_ex(c, "x", SH(3, 4), 0.0, 3.0, true, false, false)); }
static IrNode *c_erf(Gc *c) { return O1(c, IR_OP_ERF, P(c, "x", SH(2, 3))); }

/* where(x > 0, a, b): the condition comes from data, a and b broadcast */
static IrNode *c_where(Gc *c) {
  IrNode *x = Xin(c, SH(2, 3));
  IrNode *zero = ir_const_scalar(c->g, CK_DT_F32, 0.0, L0);
  IrNode *cond = O2(c, IR_OP_GT, x, zero);
  return On(c, IR_OP_WHERE, NODES(cond, P(c, "a", SH(3)), P(c, "b", SH(2, 1))), NOATTRS);
}

static IrNode *c_matmul(Gc *c) { return O2(c, IR_OP_MATMUL, P(c, "a", SH(3, 4)), P(c, "b", SH(4, 2))); }
static IrNode *c_matmul_ta(Gc *c) {
  return On(c, IR_OP_MATMUL, NODES(P(c, "a", SH(4, 3)), P(c, "b", SH(4, 2))), ATTRS(ir_attr_int("transpose_a", 1)));
}
static IrNode *c_matmul_tb(Gc *c) {
  return On(c, IR_OP_MATMUL, NODES(P(c, "a", SH(2, 3, 4)), P(c, "b", SH(5, 4))), ATTRS(ir_attr_int("transpose_b", 1)));
}
/* batch broadcast on both sides: [2,1,3,4]^T-ish @ [3,4,2] -> [2,3,4,2]... with both transposes */
static IrNode *c_matmul_batch(Gc *c) {
  return On(c, IR_OP_MATMUL, NODES(P(c, "a", SH(2, 1, 4, 3)), P(c, "b", SH(3, 2, 4))),
            ATTRS(ir_attr_int("transpose_a", 1), ir_attr_int("transpose_b", 1)));
}

static IrNode *c_permute(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 3, 4));
  return On(c, IR_OP_PERMUTE, &x, 1, ATTRS(INTS("perm", 2, 0, 1)));
}
static IrNode *c_reshape(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 3, 4));
  IrNode *r = On(c, IR_OP_RESHAPE, &x, 1, ATTRS(INTS("shape", 4, 6)));
  return O2(c, IR_OP_MUL, r, r); /* nonlinear, so a wrong element order shows */
}
static IrNode *c_broadcast(Gc *c) {
  IrNode *x = P(c, "x", SH(3, 1));
  return On(c, IR_OP_BROADCAST, &x, 1, ATTRS(INTS("shape", 2, 3, 4)));
}
static IrNode *c_slice(Gc *c) {
  IrNode *x = P(c, "x", SH(3, 7));
  return On(c, IR_OP_SLICE, &x, 1,
            ATTRS(ir_attr_int("axis", 1), ir_attr_int("start", 1), ir_attr_int("end", 6), ir_attr_int("step", 2)));
}
static IrNode *c_concat(Gc *c) {
  IrNode *a = P(c, "a", SH(2, 2, 3)), *b = P(c, "b", SH(2, 1, 3));
  return On(c, IR_OP_CONCAT, NODES(a, b, a), ATTRS(ir_attr_int("axis", 1)));
}

static IrNode *c_sum(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 3, 4));
  IrNode *s = On(c, IR_OP_SUM, &x, 1, ATTRS(INTS("axes", 0, 2), ir_attr_int("keepdim", 1)));
  return O2(c, IR_OP_MUL, s, s);
}
static IrNode *c_mean(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 3, 4));
  IrNode *s = On(c, IR_OP_MEAN, &x, 1, ATTRS(INTS("axes", 1)));
  return O2(c, IR_OP_MUL, s, s);
}
static IrNode *c_max(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 5, 3));
  return On(c, IR_OP_MAX, &x, 1, ATTRS(INTS("axes", 1), ir_attr_int("keepdim", 1)));
}
/* max over several axes has no rule (E0500 says: one axis at a time), so nest */
static IrNode *c_max_nested(Gc *c) {
  IrNode *x = P(c, "x", SH(3, 4));
  IrNode *m = On(c, IR_OP_MAX, &x, 1, ATTRS(INTS("axes", 1)));
  return On(c, IR_OP_MAX, &m, 1, NOATTRS);
}
static IrNode *c_mean_all(Gc *c) {
  IrNode *x = P(c, "x", SH(3, 4));
  return O1(c, IR_OP_MEAN, O2(c, IR_OP_MUL, x, O1(c, IR_OP_SIGMOID, x)));
}

static IrNode *c_softmax(Gc *c) {
  IrNode *x = P(c, "x", SH(3, 4, 2));
  return On(c, IR_OP_SOFTMAX, &x, 1, ATTRS(ir_attr_int("axis", 1)));
}
static IrNode *c_log_softmax(Gc *c) { return O1(c, IR_OP_LOG_SOFTMAX, P(c, "x", SH(3, 5))); }
static IrNode *c_layernorm(Gc *c) {
  return On(c, IR_OP_LAYERNORM, NODES(P(c, "x", SH(3, 5)), P(c, "w", SH(5)), P(c, "b", SH(5))),
            ATTRS(ir_attr_float("eps", 1e-5)));
}
static IrNode *c_layernorm_now(Gc *c) { return O1(c, IR_OP_LAYERNORM, P(c, "x", SH(2, 3, 4))); }
static IrNode *c_rmsnorm(Gc *c) {
  return On(c, IR_OP_RMSNORM, NODES(P(c, "x", SH(3, 5)), P(c, "w", SH(5))), ATTRS(ir_attr_float("eps", 1e-5)));
}
static IrNode *c_embedding(Gc *c) {
  IrNode *idx = IIN(c, SH(2, 3), 4, 0, 4, 2, 1, 4); /* repeated indices add up */
  return O2(c, IR_OP_EMBEDDING, P(c, "table", SH(5, 3)), idx);
}
static IrNode *c_conv2d(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 4, 5, 5)), *w = P(c, "w", SH(6, 2, 3, 3)), *b = P(c, "b", SH(6));
  return On(c, IR_OP_CONV2D, NODES(x, w, b),
            ATTRS(INTS("stride", 2, 1), INTS("padding", 1, 0), ir_attr_int("groups", 2)));
}
static IrNode *c_conv2d_plain(Gc *c) {
  return O2(c, IR_OP_CONV2D, P(c, "x", SH(1, 2, 4, 4)), P(c, "w", SH(3, 2, 2, 2)));
}
static IrNode *c_maxpool(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 2, 5, 5));
  return On(c, IR_OP_MAXPOOL2D, &x, 1, ATTRS(INTS("kernel", 3, 3), INTS("stride", 2, 2), INTS("padding", 1, 1)));
}
static IrNode *c_avgpool(Gc *c) {
  IrNode *x = P(c, "x", SH(2, 2, 5, 5));
  return On(c, IR_OP_AVGPOOL2D, &x, 1, ATTRS(INTS("kernel", 3, 3), INTS("stride", 2, 2), INTS("padding", 1, 1)));
}
static IrNode *gc_attention(Gc *c, int T, int S, int causal) {
  IrNode *q = P(c, "q", SH(2, 2, T, 4)), *k = P(c, "k", SH(2, 2, S, 4)), *v = P(c, "v", SH(2, 2, S, 3));
  return On(c, IR_OP_ATTENTION, NODES(q, k, v), ATTRS(ir_attr_int("causal", causal), ir_attr_float("scale", 0.8)));
}
static IrNode *c_attention_causal(Gc *c) { return gc_attention(c, 4, 4, 1); }
static IrNode *c_attention_full(Gc *c) { return gc_attention(c, 3, 5, 0); }
static IrNode *c_attention_offset(Gc *c) { return gc_attention(c, 3, 5, 1); }

/* losses: scalar results (the harness still multiplies by a random scalar R) */
static IrNode *c_cross_entropy(Gc *c) {
  IrNode *lg = gc_param_ex(c, "logits", SH(2, 3, 5), 0.0, 2.0, true, false, false);
  IrNode *t = IIN(c, SH(2, 3), 4, -1, 0, 2, 2, -1);
  return On(c, IR_OP_CROSS_ENTROPY, NODES(lg, t),
            ATTRS(ir_attr_int("ignore_index", -1), ir_attr_float("label_smoothing", 0.1)));
}
static IrNode *c_cross_entropy_plain(Gc *c) {
  IrNode *lg = gc_param_ex(c, "logits", SH(4, 3), 0.0, 2.0, true, false, false);
  return O2(c, IR_OP_CROSS_ENTROPY, lg, IIN(c, SH(4), 2, 0, 1, 1));
}
static IrNode *c_mse(Gc *c) { return O2(c, IR_OP_MSE, P(c, "a", SH(3, 4)), P(c, "b", SH(3, 4))); }
static IrNode *c_bce(Gc *c) {
  IrNode *x = gc_param_ex(c, "x", SH(3, 4), 0.1, 3.0, true, false, false);
  IrNode *y = Ppos(c, "y", SH(3, 4), 0.0, 1.0);
  return O2(c, IR_OP_BCE_WITH_LOGITS, x, y);
}

/* graph structure */
static IrNode *c_fanout(Gc *c) { /* x used three times: x*x + tanh(x) */
  IrNode *x = P(c, "x", SH(2, 3));
  return O2(c, IR_OP_ADD, O2(c, IR_OP_MUL, x, x), O1(c, IR_OP_TANH, x));
}
static IrNode *c_frozen(Gc *c) { /* w frozen: no grad.w; x still exact */
  IrNode *w = gc_param_ex(c, "w", SH(3, 2), 0.1, 1.0, true, true, false);
  IrNode *x = P(c, "x", SH(2, 3));
  return O1(c, IR_OP_TANH, O2(c, IR_OP_MATMUL, x, w));
}
static IrNode *c_stop_gradient(Gc *c) {
  /* d only through stop_gradient: no output; w through both paths: only the live one counts,
   * which the finite differences of the full loss would contradict, so the detached path
   * multiplies a value that does not depend on w */
  IrNode *w = P(c, "w", SH(2, 3));
  IrNode *d = gc_param_ex(c, "d", SH(2, 3), 0.1, 1.0, true, false, true);
  IrNode *sd = O1(c, IR_OP_STOP_GRADIENT, d);
  return O2(c, IR_OP_MUL, O1(c, IR_OP_EXP, w), sd);
}
static IrNode *c_tied(Gc *c) { /* weight tying: embed(wte, idx) @ transpose(wte) */
  IrNode *wte = P(c, "wte", SH(5, 3));
  IrNode *e = O2(c, IR_OP_EMBEDDING, wte, IIN(c, SH(2, 2), 1, 3, 3, 0));
  return On(c, IR_OP_MATMUL, NODES(e, wte), ATTRS(ir_attr_int("transpose_b", 1)));
}
static IrNode *c_unused(Gc *c) { /* u does not reach the loss: a zero gradient (and W0501) */
  P(c, "u", SH(2));
  return O1(c, IR_OP_EXP, P(c, "x", SH(2, 2)));
}
static IrNode *c_mlp(Gc *c) { /* a small classifier end to end */
  IrNode *x = Xin(c, SH(4, 3));
  IrNode *h = O2(c, IR_OP_ADD, O2(c, IR_OP_MATMUL, x, P(c, "w1", SH(3, 5))), P(c, "b1", SH(5)));
  h = On(c, IR_OP_LAYERNORM, NODES(O1(c, IR_OP_GELU, h), P(c, "ln.w", SH(5))), NOATTRS);
  IrNode *lg = On(c, IR_OP_MATMUL, NODES(h, P(c, "w2", SH(2, 5))), ATTRS(ir_attr_int("transpose_b", 1)));
  return O2(c, IR_OP_CROSS_ENTROPY, lg, IIN(c, SH(4), 1, 0, 0, 1));
}

typedef struct GcCase {
  const char *name;
  IrNode *(*build)(Gc *c);
} GcCase;

static const GcCase gc_cases[] = {
    {"add (broadcast)", c_add}, {"sub (broadcast)", c_sub}, {"mul (broadcast)", c_mul},
    {"div (broadcast)", c_div}, {"maximum", c_maximum}, {"minimum", c_minimum}, {"pow", c_pow},
    {"neg", c_neg}, {"abs", c_abs}, {"exp", c_exp}, {"log", c_log}, {"sqrt", c_sqrt},
    {"rsqrt", c_rsqrt}, {"tanh", c_tanh}, {"sigmoid", c_sigmoid}, {"relu", c_relu},
    {"gelu", c_gelu}, {"gelu tanh", c_gelu_tanh}, {"silu", c_silu}, {"erf", c_erf},
    {"where", c_where}, {"matmul", c_matmul}, {"matmul transpose_a", c_matmul_ta},
    {"matmul transpose_b", c_matmul_tb}, {"matmul batch bcast", c_matmul_batch},
    {"permute", c_permute}, {"reshape", c_reshape}, {"broadcast", c_broadcast},
    {"slice (step 2)", c_slice}, {"concat", c_concat}, {"sum (keepdim)", c_sum},
    {"mean", c_mean}, {"max (axis)", c_max}, {"max (nested axes)", c_max_nested},
    {"mean (all)", c_mean_all}, {"softmax", c_softmax},
    {"log_softmax", c_log_softmax}, {"layernorm", c_layernorm},
    {"layernorm (no weight)", c_layernorm_now}, {"rmsnorm", c_rmsnorm},
    {"embedding", c_embedding}, {"conv2d groups", c_conv2d}, {"conv2d", c_conv2d_plain},
    {"maxpool2d", c_maxpool}, {"avgpool2d", c_avgpool}, {"attention causal", c_attention_causal},
    {"attention", c_attention_full}, {"attention causal S>T", c_attention_offset},
    {"cross_entropy ls+ignore", c_cross_entropy}, {"cross_entropy", c_cross_entropy_plain},
    {"mse", c_mse}, {"bce_with_logits", c_bce}, {"fan-out", c_fanout}, {"frozen", c_frozen},
    {"stop_gradient", c_stop_gradient}, {"tied weights", c_tied}, {"unused param", c_unused},
    {"mlp", c_mlp},
};
#define GC_NCASES ((int)(sizeof gc_cases / sizeof gc_cases[0]))

/* ---- the harness ------------------------------------------------------------------------------ */

static const IrTensor *gc_lookup(void *ctx, const char *name) {
  Gc *c = ctx;
  for (int k = 0; k < c->np; k++)
    if (strcmp(c->pname[k], name) == 0) return &c->pval[k];
  return NULL;
}

/* The loss in double, on a scratch arena (thousands of runs per case). */
static double gc_loss(Gc *c, const IrGraph *lossg) {
  CkcArena scratch;
  ckc_arena_init(&scratch);
  IrTensor out[2];
  char err[512];
  bool ok = ir_interp_run(lossg, &scratch, c->in, gc_lookup, c, out, err, sizeof err);
  double v = ok ? out[0].f[0] : NAN;
  ckc_arena_free(&scratch);
  ck_assert_msg(ok, "%s", err);
  return v;
}

START_TEST(test_gradcheck) {
  const GcCase *cs = &gc_cases[_i];
  CkcArena arena;
  ckc_arena_init(&arena);
  Gc cx;
  memset(&cx, 0, sizeof cx);
  Gc *c = &cx;
  c->a = &arena;
  c->m = ir_module_new(&arena, "Gc", "gc.ckm");
  c->g = ir_graph_new(c->m, "loss", true);
  ck_rng_seed(&c->rng, 20240 + (uint64_t)_i);
  IrTrainConfig *tc = CKC_NEW(&arena, IrTrainConfig);
  tc->loss_kind = IR_LOSS_OTHER;
  tc->optim.kind = IR_OPTIM_SGD;
  tc->optim.lr = 0.1;
  tc->optim.accum = 1;
  tc->steps = 1;
  tc->seed = 1;
  c->m->train = tc;

  /* loss = sum(op * R) */
  IrNode *y = cs->build(c);
  int64_t ny = ck_shape_numel_unchecked(&y->shape);
  float *r = CKC_NEW_ARRAY(&arena, float, ny > 0 ? ny : 1);
  for (int64_t k = 0; k < ny; k++) r[k] = (float)gc_rand(c, 0.5, 1.5, true);
  IrNode *rn = ir_const_data(c->g, CK_DT_F32, &y->shape, r, L0);
  IrNode *loss = O1(c, IR_OP_SUM, O2(c, IR_OP_MUL, y, rn));
  loss->name = "loss";
  ir_set_output(c->g, loss);

  CkcDiag diag;
  ckc_diag_init(&diag, &arena, stderr);
  ck_assert_msg(pass_autodiff(c->m, &diag), "%s: autodiff failed", cs->name);
  CkcBuf vb;
  ckc_buf_init(&vb, &arena);
  ck_assert_msg(ir_verify(c->m, true, &vb), "%s: %s", cs->name, ckc_buf_str(&vb));
  const IrGraph *lossg = ir_module_entry(c->m, "loss"), *ts = ir_module_entry(c->m, "train_step");
  ck_assert_ptr_nonnull(ts);

  IrTensor *outs = CKC_NEW_ARRAY(&arena, IrTensor, ts->outputs.len);
  char err[512];
  ck_assert_msg(ir_interp_run(ts, &arena, c->in, gc_lookup, c, outs, err, sizeof err), "%s: %s",
                cs->name, err);
  double l0 = gc_loss(c, lossg);
  ck_assert_msg(fabs(outs[0].f[0] - l0) <= 1e-12 * fmax(1.0, fabs(l0)),
                "%s: train_step loss %.17g vs loss %.17g", cs->name, outs[0].f[0], l0);

  double worst = 0.0;
  int ngrads = 0;
  for (int p = 0; p < c->np; p++) {
    char want[128];
    snprintf(want, sizeof want, "grad.%s", c->pname[p]);
    const IrTensor *gr = NULL;
    for (int k = 1; k < ts->outputs.len; k++)
      if (ts->outputs.items[k]->name && strcmp(ts->outputs.items[k]->name, want) == 0) gr = &outs[k];
    if (c->pnograd[p]) {
      ck_assert_msg(gr == NULL, "%s: %s must have no gradient output", cs->name, c->pname[p]);
      continue;
    }
    ck_assert_msg(gr != NULL, "%s: no output %s", cs->name, want);
    ck_assert(ck_shape_eq(&gr->shape, &c->pval[p].shape));
    ngrads++;
    double *v = c->pval[p].f;
    for (int64_t j = 0; j < c->pval[p].numel; j++) {
      double keep = v[j], h = GC_H * fmax(1.0, fabs(keep));
      v[j] = keep + h;
      double lp = gc_loss(c, lossg);
      v[j] = keep - h;
      double lm = gc_loss(c, lossg);
      v[j] = keep;
      double fd = (lp - lm) / (2.0 * h);
      double e = fabs(gr->f[j] - fd) / fmax(1.0, fabs(fd));
      ck_assert_msg(e <= GC_TOL, "%s: d loss / d %s[%lld]: autodiff %.12g, central difference %.12g (err %.3g)",
                    cs->name, c->pname[p], (long long)j, gr->f[j], fd, e);
      if (e > worst) worst = e;
    }
  }
  /* no stray gradient outputs: exactly one per trainable parameter */
  ck_assert_int_eq(ts->outputs.len, 1 + ngrads);
  fprintf(stderr, "gradcheck %-26s max err %.2e (%d gradient%s)\n", cs->name, worst, ngrads,
          ngrads == 1 ? "" : "s");
  ckc_arena_free(&arena);
}
END_TEST

Suite *check_gradcheck_suite(void) {
  Suite *s = suite_create("gradcheck");
  TCase *t = tcase_create("ops");
  tcase_set_timeout(t, 60);
  tcase_add_loop_test(t, test_gradcheck, 0, GC_NCASES);
  suite_add_tcase(s, t);
  return s;
}
