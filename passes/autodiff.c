/* passes/autodiff.c - reverse-mode automatic differentiation over the IR.
 *
 * Input: an entry graph "loss" (sema builds it from the train block; its
 * output 0 is the scalar loss). Output: a new entry graph "train_step" with
 * the same inputs whose outputs are [loss, grad.<p> for each trainable
 * parameter p, in order of first appearance] (ir/train.h). A module without
 * a "loss" graph is left alone.
 *
 * The algorithm is the textbook one (Griewank; PyTorch's autograd engine):
 *   1. clone the loss graph's nodes into train_step (the forward);
 *   2. mark which values need a gradient: a float value that depends on a
 *      trainable parameter through differentiable ops (forward sweep) and
 *      reaches the loss through differentiable ops (backward sweep);
 *   3. seed d.loss = 1 and walk the forward nodes in reverse topological
 *      order; each node's rule (ad_rule) turns its output adjoint into one
 *      contribution per input that needs a gradient;
 *   4. fan-out: a value used k times receives k contributions, summed by
 *      explicit ADD nodes in the order they arrive (reverse node order,
 *      then operand order), so the backward graph is deterministic.
 * What the backward needs from the forward (x for relu', y for exp', the
 * softmax output...) is simply a use of the forward clone: the saved tensors
 * are the forward values that backward nodes read, visible in the IR.
 *
 * Trainable: a float PARAM without frozen=1. A parameter that reaches the
 * loss only through stop_gradient is treated like a frozen one (no output);
 * one that does not reach the loss through differentiable ops at all (or
 * only through comparisons/argmax/integer casts) gets a zero constant as its
 * gradient and warning W0501. Integer and bool values never get gradients.
 *
 *   before (loss)                         after (train_step, backward part)
 *     %0 x: f32[2,4] = input()              %5 : f32[] = const() value=1
 *     %1 w: f32[4,3] = param()              %6 : f32[2,3] = broadcast(%5) shape=(2,3)
 *     %2 h: f32[2,3] = matmul(%0, %1)       %7 : f32[2,3] = div(%6, %..)  (mean: /6)
 *     %3 l: f32[] = mean(%2 h)              %8 grad.w: f32[4,3] = matmul(%0 x, %7) transpose_a=1
 */
#include <string.h>

#include "ir/train.h"
#include "passes/passes.h"

/* <math.h>'s M_* constants are not C11; the values PyTorch's kernels use. */
#define AD_SQRT1_2 0.70710678118654752440
#define AD_SQRT2 1.41421356237309504880
#define AD_2_SQRTPI 1.12837916709551257390

typedef struct AdCtx {
  IrModule *m;
  CkcDiag *d;
  CkcArena *a;
  IrGraph *src;   /* "loss" */
  IrGraph *g;     /* "train_step" */
  IrNode **fwd;   /* src node id -> its clone in g */
  IrNode **adj;   /* src node id -> its accumulated adjoint in g (NULL: none yet) */
  bool *dep;      /* src node id -> depends on a trainable parameter differentiably */
  bool *reach;    /* src node id -> reaches the loss through differentiable ops */
  CkcLoc loc;     /* of the forward node whose rule is running */
  bool ok;
} AdCtx;

/* ---- small builders: every backward node goes through ad_mk ------------------------ */

/* Backward nodes are ckc's own construction: a shape-rule failure is a bug
 * in a rule below, not a user error. */
static IrNode *ad_mk(AdCtx *c, IrOp op, IrNode *const *in, int nin, const IrAttr *at, int nat) {
  IrErr err;
  IrNode *n = ir_op(c->g, op, in, nin, at, nat, NULL, c->loc, &err);
  if (!n) CKC_ICE("autodiff: building %s: %s", ir_op_name(op), err.msg);
  return n;
}

static IrNode *ad_un(AdCtx *c, IrOp op, IrNode *x) { return ad_mk(c, op, &x, 1, NULL, 0); }

static IrNode *ad_bin(AdCtx *c, IrOp op, IrNode *x, IrNode *y) {
  IrNode *in[2] = {x, y};
  return ad_mk(c, op, in, 2, NULL, 0);
}

static IrNode *ad_where(AdCtx *c, IrNode *cond, IrNode *x, IrNode *y) {
  IrNode *in[3] = {cond, x, y};
  return ad_mk(c, IR_OP_WHERE, in, 3, NULL, 0);
}

/* A scalar constant of x's dtype (broadcasts in elementwise ops). */
static IrNode *ad_k(AdCtx *c, const IrNode *like, double v) {
  return ir_const_scalar(c->g, like->dtype, v, c->loc);
}

static IrNode *ad_mulk(AdCtx *c, IrNode *x, double v) { return ad_bin(c, IR_OP_MUL, x, ad_k(c, x, v)); }

static IrNode *ad_reshape(AdCtx *c, IrNode *x, const CkShape *s) {
  if (ck_shape_eq(&x->shape, s)) return x;
  IrErr err;
  IrNode *n = ir_reshape(c->g, x, s, NULL, c->loc, &err);
  if (!n) CKC_ICE("autodiff: reshape: %s", err.msg);
  return n;
}

static IrNode *ad_sum(AdCtx *c, IrNode *x, const int64_t *axes, int naxes, bool keepdim) {
  IrAttr at[2] = {ir_attr_ints("axes", axes, naxes), ir_attr_int("keepdim", keepdim)};
  return ad_mk(c, IR_OP_SUM, &x, 1, at, 2);
}

/* The gradient of a broadcast: g has the broadcast shape, the operand had
 * `to`; sum over the leading axes it lacked and the axes where it had 1. */
static IrNode *ad_reduce_to(AdCtx *c, IrNode *g, const CkShape *to) {
  if (ck_shape_eq(&g->shape, to)) return g;
  int64_t axes[CK_MAX_RANK];
  int na = 0, lead = g->shape.rank - to->rank;
  for (int k = 0; k < g->shape.rank; k++)
    if (k < lead || (to->dims[k - lead] == 1 && g->shape.dims[k] != 1)) axes[na++] = k;
  IrNode *s = na ? ad_sum(c, g, axes, na, true) : g;
  return ad_reshape(c, s, to);
}

/* ---- adjoint bookkeeping ---------------------------------------------------------------- */

static bool ad_wants(const AdCtx *c, const IrNode *x) { return c->dep[x->id] && c->reach[x->id]; }

/* Fan-out: the first contribution is the adjoint; later ones are ADDed in
 * arrival order (an explicit node per addition, so the order is in the IR). */
static void ad_accum(AdCtx *c, const IrNode *x, IrNode *contrib) {
  if (!ad_wants(c, x)) return;
  if (contrib->dtype != x->dtype || !ck_shape_eq(&contrib->shape, &x->shape)) {
    char a[160], b[160];
    CKC_ICE("autodiff: gradient of %%%d %s is %s, the value is %s", x->id, ir_op_name(x->op),
            ck_type_str(contrib->dtype, &contrib->shape, a, sizeof a),
            ck_type_str(x->dtype, &x->shape, b, sizeof b));
  }
  IrNode *old = c->adj[x->id];
  c->adj[x->id] = old ? ad_bin(c, IR_OP_ADD, old, contrib) : contrib;
}

/* ---- the rules: one case per differentiable op ------------------------------------------- */

/* Elementwise binary ops see their output's (broadcast) shape; each
 * contribution is reduced back to its operand's shape. */
static void ad_accum_bcast(AdCtx *c, const IrNode *x, IrNode *g) {
  if (!ad_wants(c, x)) return;
  ad_accum(c, x, ad_reduce_to(c, g, &x->shape));
}

/* max(a,b)/min(a,b): the winner takes dy, ties split it in half (PyTorch). */
static void ad_minmax(AdCtx *c, IrNode *a, IrNode *b, IrNode *dy, bool is_max, const IrNode *sa,
                      const IrNode *sb) {
  IrNode *zero = ad_k(c, dy, 0.0), *half = ad_mulk(c, dy, 0.5);
  IrNode *eq = ad_bin(c, IR_OP_EQ, a, b);
  IrNode *tie = ad_where(c, eq, half, zero);
  if (ad_wants(c, sa))
    ad_accum_bcast(c, sa, ad_where(c, ad_bin(c, is_max ? IR_OP_GT : IR_OP_LT, a, b), dy, tie));
  if (ad_wants(c, sb))
    ad_accum_bcast(c, sb, ad_where(c, ad_bin(c, is_max ? IR_OP_LT : IR_OP_GT, a, b), dy, tie));
}

/* gelu'(x): exact form Phi(x) + x phi(x); tanh form as PyTorch's
 * GeluBackward with approximate='tanh' (same operation order). */
static IrNode *ad_gelu_grad(AdCtx *c, IrNode *x, IrNode *dy, bool tanh_form) {
  if (!tanh_form) {
    IrNode *cdf = ad_mulk(c, ad_bin(c, IR_OP_ADD, ad_un(c, IR_OP_ERF, ad_mulk(c, x, AD_SQRT1_2)), ad_k(c, x, 1.0)), 0.5);
    IrNode *pdf = ad_mulk(c, ad_un(c, IR_OP_EXP, ad_mulk(c, ad_bin(c, IR_OP_MUL, x, x), -0.5)),
                          AD_2_SQRTPI * AD_SQRT1_2 * 0.5);
    return ad_bin(c, IR_OP_MUL, dy, ad_bin(c, IR_OP_ADD, cdf, ad_bin(c, IR_OP_MUL, x, pdf)));
  }
  const double beta = AD_SQRT2 * AD_2_SQRTPI * 0.5, kappa = 0.044715;
  IrNode *xsq = ad_bin(c, IR_OP_MUL, x, x), *xcube = ad_bin(c, IR_OP_MUL, xsq, x);
  IrNode *inner = ad_mulk(c, ad_bin(c, IR_OP_ADD, x, ad_mulk(c, xcube, kappa)), beta);
  IrNode *t = ad_un(c, IR_OP_TANH, inner);
  IrNode *left = ad_mulk(c, x, 0.5), *right = ad_bin(c, IR_OP_ADD, ad_k(c, x, 1.0), t);
  IrNode *dleft = ad_mulk(c, right, 0.5);
  IrNode *sech2 = ad_bin(c, IR_OP_SUB, ad_k(c, x, 1.0), ad_bin(c, IR_OP_MUL, t, t));
  IrNode *dinner = ad_mulk(c, ad_bin(c, IR_OP_ADD, ad_k(c, x, 1.0), ad_mulk(c, xsq, 3.0 * kappa)), beta);
  IrNode *dright = ad_bin(c, IR_OP_MUL, ad_bin(c, IR_OP_MUL, left, sech2), dinner);
  return ad_bin(c, IR_OP_MUL, dy, ad_bin(c, IR_OP_ADD, dleft, dright));
}

/* matmul: C = A' @ B' (A' = A or A^T): dA' = dC B'^T, dB' = A'^T dC, each
 * spelled as one matmul with transpose flags, then the broadcast batch axes
 * summed away. */
static void ad_matmul(AdCtx *c, const IrNode *s, IrNode *A, IrNode *B, IrNode *dC) {
  bool ta = ir_get_int(s, "transpose_a", 0) != 0, tb = ir_get_int(s, "transpose_b", 0) != 0;
  IrNode *x, *y;
  IrAttr at[2];
  if (ad_wants(c, s->in[0])) {
    /* dA: (0,0) dC B^T; (0,1) dC B; (1,0) B dC^T; (1,1) B^T dC^T */
    x = ta ? B : dC;
    y = ta ? dC : B;
    at[0] = ir_attr_int("transpose_a", ta && tb);
    at[1] = ir_attr_int("transpose_b", ta ? 1 : !tb);
    IrNode *in[2] = {x, y};
    ad_accum(c, s->in[0], ad_reduce_to(c, ad_mk(c, IR_OP_MATMUL, in, 2, at, 2), &s->in[0]->shape));
  }
  if (ad_wants(c, s->in[1]) && !ta && B->shape.rank == 2 && A->shape.rank > 2) {
    /* a shared weight under batched activations (Linear on [B,T,C]): fold
     * the batch into the rows, so that dB is one GEMM, not a batched
     * matmul and a sum: A [..., M, K] -> [R, K], dC [..., M, N] -> [R, N]. */
    CkShape a2 = {.rank = 2}, c2 = {.rank = 2};
    a2.dims[1] = A->shape.dims[A->shape.rank - 1];
    c2.dims[1] = dC->shape.dims[dC->shape.rank - 1];
    a2.dims[0] = 1;
    for (int k = 0; k < A->shape.rank - 1; k++) a2.dims[0] *= A->shape.dims[k];
    c2.dims[0] = a2.dims[0];
    IrNode *in[2] = {tb ? ad_reshape(c, dC, &c2) : ad_reshape(c, A, &a2),
                     tb ? ad_reshape(c, A, &a2) : ad_reshape(c, dC, &c2)};
    at[0] = ir_attr_int("transpose_a", 1);
    at[1] = ir_attr_int("transpose_b", 0);
    ad_accum(c, s->in[1], ad_mk(c, IR_OP_MATMUL, in, 2, at, 2));
  } else if (ad_wants(c, s->in[1])) {
    /* dB: (0,0) A^T dC; (0,1) dC^T A; (1,0) A dC; (1,1) dC^T A^T */
    x = tb ? dC : A;
    y = tb ? A : dC;
    at[0] = ir_attr_int("transpose_a", tb ? 1 : !ta);
    at[1] = ir_attr_int("transpose_b", ta && tb);
    IrNode *in[2] = {x, y};
    ad_accum(c, s->in[1], ad_reduce_to(c, ad_mk(c, IR_OP_MATMUL, in, 2, at, 2), &s->in[1]->shape));
  }
}

/* sum/mean/max over axes: dy (reduced shape) goes back to every element
 * (sum, mean scaled by 1/count) or to the first maximum (one axis only). */
static bool ad_reduce(AdCtx *c, const IrNode *s, IrNode *x, IrNode *dy) {
  int na;
  const int64_t *axes = ir_get_ints(s, "axes", &na);
  bool keep = ir_get_int(s, "keepdim", 0) != 0;
  if (s->op == IR_OP_MAX) {
    if (na == 0) {
      ad_accum(c, s->in[0], dy);
      return true;
    }
    if (na > 1) {
      char t[160];
      ckc_error(c->d, s->loc, "E0500",
                "autodiff: max over %d axes of %s has no gradient rule; reduce one axis at a time "
                "(max(max(x, axis=a), axis=b))",
                na, ck_type_str(x->dtype, &x->shape, t, sizeof t));
      return false;
    }
    IrAttr at[2] = {ir_attr_int("axis", axes[0]), ir_attr_int("keepdim", keep)};
    IrNode *in[2] = {x, dy};
    ad_accum(c, s->in[0], ad_mk(c, IR_OP_MAX_BWD, in, 2, at, 2));
    return true;
  }
  IrNode *g = dy;
  if (s->op == IR_OP_MEAN) {
    int64_t count = 1;
    for (int i = 0; i < na; i++) count *= x->shape.dims[axes[i]];
    g = ad_bin(c, IR_OP_DIV, g, ad_k(c, g, (double)count));
  }
  CkShape kd = x->shape;
  for (int i = 0; i < na; i++) kd.dims[axes[i]] = 1;
  g = ad_reshape(c, g, &kd);
  if (!ck_shape_eq(&g->shape, &x->shape)) {
    IrAttr at = ir_attr_ints("shape", x->shape.dims, x->shape.rank);
    g = ad_mk(c, IR_OP_BROADCAST, &g, 1, &at, 1);
  }
  ad_accum(c, s->in[0], g);
  return true;
}

/* Copies the forward's attributes that the backward op shares. */
static int ad_copy_attrs(const IrNode *s, const char *const *keys, int nkeys, IrAttr *out) {
  int n = 0;
  for (int i = 0; i < nkeys; i++) {
    const IrAttr *a = ir_find_attr(s, keys[i]);
    if (a) out[n++] = *a;
  }
  return n;
}

/* layernorm/rmsnorm: dx and dweight from the kernels' rows; dbias = sum(dy)
 * over all axes but the last. */
static void ad_norm(AdCtx *c, const IrNode *s, IrNode **in, IrNode *dy) {
  bool ln = s->op == IR_OP_LAYERNORM;
  IrAttr eps = ir_attr_float("eps", ir_get_float(s, "eps", 1e-5));
  if (ad_wants(c, s->in[0])) {
    IrNode *bin[3] = {dy, in[0], s->nin > 1 ? in[1] : NULL};
    ad_accum(c, s->in[0], ad_mk(c, ln ? IR_OP_LAYERNORM_BWD_X : IR_OP_RMSNORM_BWD_X, bin, s->nin > 1 ? 3 : 2, &eps, 1));
  }
  if (s->nin > 1 && ad_wants(c, s->in[1])) {
    IrNode *bin[2] = {dy, in[0]};
    ad_accum(c, s->in[1], ad_mk(c, ln ? IR_OP_LAYERNORM_BWD_W : IR_OP_RMSNORM_BWD_W, bin, 2, &eps, 1));
  }
  if (s->nin > 2 && ad_wants(c, s->in[2])) {
    int64_t axes[CK_MAX_RANK];
    int na = dy->shape.rank - 1;
    for (int k = 0; k < na; k++) axes[k] = k;
    ad_accum(c, s->in[2], na ? ad_sum(c, dy, axes, na, false) : dy);
  }
}

/* The rule of forward node s (clone y, inputs in[] as clones, output
 * adjoint dy): contributions to s's inputs. False after an error. */
static bool ad_rule(AdCtx *c, const IrNode *s, IrNode *y, IrNode **in, IrNode *dy) {
  const IrNode *s0 = s->nin > 0 ? s->in[0] : NULL, *s1 = s->nin > 1 ? s->in[1] : NULL;
  IrNode *x = s->nin > 0 ? in[0] : NULL, *b = s->nin > 1 ? in[1] : NULL;
  switch (s->op) {
  /* ---- elementwise ---- */
  case IR_OP_ADD:
    ad_accum_bcast(c, s0, dy);
    ad_accum_bcast(c, s1, dy);
    return true;
  case IR_OP_SUB:
    ad_accum_bcast(c, s0, dy);
    if (ad_wants(c, s1)) ad_accum_bcast(c, s1, ad_un(c, IR_OP_NEG, dy));
    return true;
  case IR_OP_MUL:
    if (ad_wants(c, s0)) ad_accum_bcast(c, s0, ad_bin(c, IR_OP_MUL, dy, b));
    if (ad_wants(c, s1)) ad_accum_bcast(c, s1, ad_bin(c, IR_OP_MUL, dy, x));
    return true;
  case IR_OP_DIV: /* d(a/b): dy/b, -dy*y/b */
    if (ad_wants(c, s0)) ad_accum_bcast(c, s0, ad_bin(c, IR_OP_DIV, dy, b));
    if (ad_wants(c, s1))
      ad_accum_bcast(c, s1, ad_un(c, IR_OP_NEG, ad_bin(c, IR_OP_DIV, ad_bin(c, IR_OP_MUL, dy, y), b)));
    return true;
  case IR_OP_MAXIMUM:
  case IR_OP_MINIMUM: ad_minmax(c, x, b, dy, s->op == IR_OP_MAXIMUM, s0, s1); return true;
  case IR_OP_POW: { /* PyTorch: 0 where b == 0 (base), where a == 0 and b >= 0 (exponent) */
    IrNode *zero = ad_k(c, dy, 0.0);
    if (ad_wants(c, s0)) {
      IrNode *p = ad_bin(c, IR_OP_POW, x, ad_bin(c, IR_OP_SUB, b, ad_k(c, b, 1.0)));
      IrNode *g = ad_bin(c, IR_OP_MUL, dy, ad_bin(c, IR_OP_MUL, b, p));
      ad_accum_bcast(c, s0, ad_where(c, ad_bin(c, IR_OP_EQ, b, ad_k(c, b, 0.0)), zero, g));
    }
    if (ad_wants(c, s1)) {
      IrNode *g = ad_bin(c, IR_OP_MUL, dy, ad_bin(c, IR_OP_MUL, y, ad_un(c, IR_OP_LOG, x)));
      IrNode *bpos = ad_bin(c, IR_OP_GE, b, ad_k(c, b, 0.0));
      IrNode *inner = ad_where(c, bpos, zero, g);
      ad_accum_bcast(c, s1, ad_where(c, ad_bin(c, IR_OP_EQ, x, ad_k(c, x, 0.0)), inner, g));
    }
    return true;
  }
  case IR_OP_NEG: ad_accum(c, s0, ad_un(c, IR_OP_NEG, dy)); return true;
  case IR_OP_ABS: { /* sign(0) = 0 */
    IrNode *zero = ad_k(c, dy, 0.0);
    IrNode *neg = ad_where(c, ad_bin(c, IR_OP_LT, x, ad_k(c, x, 0.0)), ad_un(c, IR_OP_NEG, dy), zero);
    ad_accum(c, s0, ad_where(c, ad_bin(c, IR_OP_GT, x, ad_k(c, x, 0.0)), dy, neg));
    return true;
  }
  case IR_OP_EXP: ad_accum(c, s0, ad_bin(c, IR_OP_MUL, dy, y)); return true;
  case IR_OP_LOG: ad_accum(c, s0, ad_bin(c, IR_OP_DIV, dy, x)); return true;
  case IR_OP_SQRT: ad_accum(c, s0, ad_bin(c, IR_OP_DIV, dy, ad_mulk(c, y, 2.0))); return true;
  case IR_OP_RSQRT: /* -0.5 * dy * y^3 */
    ad_accum(c, s0, ad_bin(c, IR_OP_MUL, ad_mulk(c, dy, -0.5), ad_bin(c, IR_OP_MUL, ad_bin(c, IR_OP_MUL, y, y), y)));
    return true;
  case IR_OP_TANH:
    ad_accum(c, s0, ad_bin(c, IR_OP_MUL, dy, ad_bin(c, IR_OP_SUB, ad_k(c, y, 1.0), ad_bin(c, IR_OP_MUL, y, y))));
    return true;
  case IR_OP_SIGMOID:
    ad_accum(c, s0, ad_bin(c, IR_OP_MUL, dy, ad_bin(c, IR_OP_MUL, y, ad_bin(c, IR_OP_SUB, ad_k(c, y, 1.0), y))));
    return true;
  case IR_OP_RELU:
    ad_accum(c, s0, ad_where(c, ad_bin(c, IR_OP_GT, x, ad_k(c, x, 0.0)), dy, ad_k(c, dy, 0.0)));
    return true;
  case IR_OP_GELU:
    ad_accum(c, s0, ad_gelu_grad(c, x, dy, strcmp(ir_get_str(s, "approximate", "none"), "tanh") == 0));
    return true;
  case IR_OP_SILU: { /* s (1 + x (1 - s)) */
    IrNode *sg = ad_un(c, IR_OP_SIGMOID, x);
    IrNode *t = ad_bin(c, IR_OP_ADD, ad_k(c, x, 1.0), ad_bin(c, IR_OP_MUL, x, ad_bin(c, IR_OP_SUB, ad_k(c, x, 1.0), sg)));
    ad_accum(c, s0, ad_bin(c, IR_OP_MUL, dy, ad_bin(c, IR_OP_MUL, sg, t)));
    return true;
  }
  case IR_OP_ERF: /* 2/sqrt(pi) exp(-x^2) */
    ad_accum(c, s0, ad_bin(c, IR_OP_MUL, dy,
                          ad_mulk(c, ad_un(c, IR_OP_EXP, ad_un(c, IR_OP_NEG, ad_bin(c, IR_OP_MUL, x, x))), AD_2_SQRTPI)));
    return true;
  case IR_OP_CAST: { /* float -> float only (ad_wants excludes integer ends) */
    IrAttr to = ir_attr_str("to", ck_dtype_name(s0->dtype));
    ad_accum(c, s0, ad_mk(c, IR_OP_CAST, &dy, 1, &to, 1));
    return true;
  }
  case IR_OP_WHERE: {
    IrNode *zero = ad_k(c, dy, 0.0);
    if (ad_wants(c, s->in[1])) ad_accum_bcast(c, s->in[1], ad_where(c, x, dy, zero));
    if (ad_wants(c, s->in[2])) ad_accum_bcast(c, s->in[2], ad_where(c, x, zero, dy));
    return true;
  }
  /* ---- linear algebra, data movement ---- */
  case IR_OP_MATMUL: ad_matmul(c, s, x, b, dy); return true;
  case IR_OP_PERMUTE: {
    int np;
    const int64_t *perm = ir_get_ints(s, "perm", &np);
    int64_t inv[CK_MAX_RANK];
    for (int i = 0; i < np; i++) inv[perm[i]] = i;
    IrAttr at = ir_attr_ints("perm", inv, np);
    ad_accum(c, s0, ad_mk(c, IR_OP_PERMUTE, &dy, 1, &at, 1));
    return true;
  }
  case IR_OP_RESHAPE: ad_accum(c, s0, ad_reshape(c, dy, &s0->shape)); return true;
  case IR_OP_BROADCAST: ad_accum(c, s0, ad_reduce_to(c, dy, &s0->shape)); return true;
  case IR_OP_SLICE: {
    int64_t axis = ir_get_int(s, "axis", 0);
    IrAttr at[4] = {ir_attr_int("axis", axis), ir_attr_int("start", ir_get_int(s, "start", 0)),
                    ir_attr_int("step", ir_get_int(s, "step", 1)),
                    ir_attr_int("size", s0->shape.dims[axis])};
    ad_accum(c, s0, ad_mk(c, IR_OP_SLICE_BWD, &dy, 1, at, 4));
    return true;
  }
  case IR_OP_CONCAT: { /* input i is dy[off_i : off_i + len_i] along the axis */
    int64_t axis = ir_get_int(s, "axis", 0), off = 0;
    for (int i = 0; i < s->nin; i++) {
      int64_t len = s->in[i]->shape.dims[axis];
      if (ad_wants(c, s->in[i])) {
        IrAttr at[4] = {ir_attr_int("axis", axis), ir_attr_int("start", off), ir_attr_int("end", off + len),
                        ir_attr_int("step", 1)};
        ad_accum(c, s->in[i], ad_mk(c, IR_OP_SLICE, &dy, 1, at, 4));
      }
      off += len;
    }
    return true;
  }
  case IR_OP_SUM:
  case IR_OP_MEAN:
  case IR_OP_MAX: return ad_reduce(c, s, x, dy);
  /* ---- neural-network primitives ---- */
  case IR_OP_SOFTMAX:
  case IR_OP_LOG_SOFTMAX: {
    IrAttr at = ir_attr_int("axis", ir_get_int(s, "axis", s0->shape.rank - 1));
    IrNode *bin[2] = {y, dy};
    ad_accum(c, s0, ad_mk(c, s->op == IR_OP_SOFTMAX ? IR_OP_SOFTMAX_BWD : IR_OP_LOG_SOFTMAX_BWD, bin, 2, &at, 1));
    return true;
  }
  case IR_OP_LAYERNORM:
  case IR_OP_RMSNORM: ad_norm(c, s, in, dy); return true;
  case IR_OP_EMBEDDING: {
    IrAttr at = ir_attr_int("num", s0->shape.dims[0]);
    IrNode *bin[2] = {dy, b};
    ad_accum(c, s0, ad_mk(c, IR_OP_EMBEDDING_BWD, bin, 2, &at, 1));
    return true;
  }
  case IR_OP_CONV2D: {
    static const char *const keys[] = {"stride", "padding", "groups"};
    IrAttr at[4];
    int na = ad_copy_attrs(s, keys, 3, at);
    if (ad_wants(c, s0)) {
      at[na] = ir_attr_ints("in_shape", s0->shape.dims, 4);
      IrNode *bin[2] = {dy, b};
      ad_accum(c, s0, ad_mk(c, IR_OP_CONV2D_BWD_X, bin, 2, at, na + 1));
    }
    if (ad_wants(c, s1)) {
      at[na] = ir_attr_ints("w_shape", s1->shape.dims, 4);
      IrNode *bin[2] = {dy, x};
      ad_accum(c, s1, ad_mk(c, IR_OP_CONV2D_BWD_W, bin, 2, at, na + 1));
    }
    if (s->nin > 2 && ad_wants(c, s->in[2])) {
      static const int64_t axes[3] = {0, 2, 3};
      ad_accum(c, s->in[2], ad_sum(c, dy, axes, 3, false));
    }
    return true;
  }
  case IR_OP_MAXPOOL2D:
  case IR_OP_AVGPOOL2D: {
    static const char *const keys[] = {"kernel", "stride", "padding"};
    IrAttr at[4];
    int na = ad_copy_attrs(s, keys, 3, at);
    if (s->op == IR_OP_MAXPOOL2D) {
      IrNode *bin[2] = {dy, x};
      ad_accum(c, s0, ad_mk(c, IR_OP_MAXPOOL2D_BWD, bin, 2, at, na));
    } else {
      at[na] = ir_attr_ints("in_shape", s0->shape.dims, 4);
      ad_accum(c, s0, ad_mk(c, IR_OP_AVGPOOL2D_BWD, &dy, 1, at, na + 1));
    }
    return true;
  }
  case IR_OP_ATTENTION: {
    IrAttr at[2] = {ir_attr_int("causal", ir_get_int(s, "causal", 1)),
                    ir_attr_float("scale", ir_get_float(s, "scale", 1.0))};
    IrNode *bin[4] = {dy, in[0], in[1], in[2]};
    static const IrOp ops[3] = {IR_OP_ATTENTION_BWD_Q, IR_OP_ATTENTION_BWD_K, IR_OP_ATTENTION_BWD_V};
    for (int i = 0; i < 3; i++)
      if (ad_wants(c, s->in[i])) ad_accum(c, s->in[i], ad_mk(c, ops[i], bin, 4, at, 2));
    return true;
  }
  /* ---- losses ---- */
  case IR_OP_CROSS_ENTROPY: {
    static const char *const keys[] = {"ignore_index", "label_smoothing"};
    IrAttr at[2];
    int na = ad_copy_attrs(s, keys, 2, at);
    IrNode *bin[3] = {dy, x, b};
    ad_accum(c, s0, ad_mk(c, IR_OP_CROSS_ENTROPY_BWD, bin, 3, at, na));
    return true;
  }
  case IR_OP_MSE: { /* PyTorch: 2/N (a - b) dy */
    double n = (double)ck_shape_numel_unchecked(&s0->shape);
    IrNode *g = ad_bin(c, IR_OP_MUL, ad_mulk(c, ad_bin(c, IR_OP_SUB, x, b), 2.0 / n), dy);
    ad_accum(c, s0, g);
    if (ad_wants(c, s1)) ad_accum(c, s1, ad_un(c, IR_OP_NEG, g));
    return true;
  }
  case IR_OP_BCE_WITH_LOGITS: { /* PyTorch: (sigmoid(x) - y) dy / N; target: -x dy / N */
    IrNode *n = ad_k(c, x, (double)ck_shape_numel_unchecked(&s0->shape));
    if (ad_wants(c, s0))
      ad_accum(c, s0, ad_bin(c, IR_OP_DIV, ad_bin(c, IR_OP_MUL, ad_bin(c, IR_OP_SUB, ad_un(c, IR_OP_SIGMOID, x), b), dy), n));
    if (ad_wants(c, s1))
      ad_accum(c, s1, ad_bin(c, IR_OP_DIV, ad_bin(c, IR_OP_MUL, ad_un(c, IR_OP_NEG, x), dy), n));
    return true;
  }
  default: break;
  }
  ckc_error(c->d, s->loc, "E0500", "autodiff: op '%s' has no gradient rule", ir_op_name(s->op));
  return false;
}

/* ---- marking ------------------------------------------------------------------------------ */

/* An op passes gradient from its result to operand j (given float types). */
static bool ad_edge(const IrNode *s, int j, bool through_stop) {
  if (!ck_dtype_is_float(s->dtype) || !ck_dtype_is_float(s->in[j]->dtype)) return false;
  if (s->op == IR_OP_STOP_GRADIENT) return through_stop;
  return !(ir_op_info[s->op].flags & IR_OPF_NONDIFF);
}

static bool ad_trainable(const IrNode *p) {
  return p->op == IR_OP_PARAM && ck_dtype_is_float(p->dtype) && ir_get_int(p, "frozen", 0) == 0;
}

/* Backward sweep: which values reach output 0 through differentiable edges
 * (through_stop: also through stop_gradient, to tell "detached" from
 * "unused"). */
static void ad_mark_reach(const IrGraph *src, bool *reach, bool through_stop) {
  for (int i = 0; i < src->next_id; i++) reach[i] = false;
  reach[src->outputs.items[0]->id] = true;
  for (int i = src->nodes.len - 1; i >= 0; i--) {
    const IrNode *s = src->nodes.items[i];
    if (!reach[s->id]) continue;
    for (int j = 0; j < s->nin; j++)
      if (ad_edge(s, j, through_stop)) reach[s->in[j]->id] = true;
  }
}

/* Forward sweep: which values depend on a trainable parameter. */
static void ad_mark_dep(const IrGraph *src, bool *dep) {
  for (int i = 0; i < src->nodes.len; i++) {
    const IrNode *s = src->nodes.items[i];
    dep[s->id] = ad_trainable(s);
    for (int j = 0; j < s->nin && !dep[s->id]; j++)
      dep[s->id] = dep[s->in[j]->id] && ad_edge(s, j, false);
  }
}

/* ---- the pass ------------------------------------------------------------------------------ */

/* "d.<name>" for an adjoint made only for this value (not one it shares
 * with its consumer, which keeps the consumer's name). */
static void ad_name_adjoint(AdCtx *c, const IrNode *s) {
  IrNode *a = c->adj[s->id];
  if (a && !a->name && s->name && a != c->fwd[s->id])
    a->name = ckc_arena_printf(c->a, "d.%s", s->name);
}

/* Clones the forward: inputs keep their positions, parameters their attributes. */
static void ad_clone_forward(AdCtx *c) {
  const IrGraph *src = c->src;
  for (int i = 0; i < src->nodes.len; i++) {
    const IrNode *s = src->nodes.items[i];
    IrNode *n;
    if (s->op == IR_OP_CALL) CKC_ICE("autodiff: graph 'loss' still has calls (inline first)");
    if (s->op == IR_OP_INPUT) {
      n = ir_input(c->g, s->name, s->dtype, &s->shape, s->loc);
    } else if (s->op == IR_OP_PARAM) {
      n = ir_param(c->g, s->name, s->dtype, &s->shape, s->attrs, s->nattrs, s->loc);
    } else {
      IrNode **in = CKC_NEW_ARRAY(c->a, IrNode *, s->nin ? s->nin : 1);
      for (int j = 0; j < s->nin; j++) in[j] = c->fwd[s->in[j]->id];
      n = ir_clone_node(c->g, s, in, NULL);
    }
    c->fwd[s->id] = n;
  }
  /* inputs must be in argument order: sema creates them first, in order */
  for (int i = 0; i < src->inputs.len; i++)
    if (c->g->inputs.items[i] != c->fwd[src->inputs.items[i]->id])
      CKC_ICE("autodiff: inputs of 'loss' are not in argument order");
}

/* The gradient output of parameter s: its adjoint, named grad.<p>; a copy
 * when the adjoint is already some other value's (a + b: both get dy). */
static IrNode *ad_grad_output(AdCtx *c, const IrNode *s) {
  const char *name = ckc_arena_printf(c->a, "grad.%s", s->name);
  IrNode *a = c->adj[s->id];
  if (!a) {
    a = ir_const_fill(c->g, s->dtype, &s->shape, 0.0, s->loc);
    a->name = name;
    return a;
  }
  bool shared = a->name != NULL;
  for (int i = 0; i < c->g->outputs.len && !shared; i++) shared = c->g->outputs.items[i] == a;
  if (shared) {
    IrAttr at = ir_attr_ints("shape", s->shape.dims, s->shape.rank);
    IrErr err;
    a = ir_op(c->g, IR_OP_RESHAPE, &a, 1, &at, 1, name, s->loc, &err);
    if (!a) CKC_ICE("autodiff: %s", err.msg);
    return a;
  }
  a->name = name;
  return a;
}

bool pass_autodiff(IrModule *m, CkcDiag *d) {
  IrGraph *src = ir_module_entry(m, "loss");
  if (!src || ir_module_entry(m, "train_step")) return true;
  if (src->outputs.len < 1) CKC_ICE("autodiff: graph 'loss' has no output");
  const IrNode *loss = src->outputs.items[0];
  if (loss->shape.rank != 0 || !ck_dtype_is_float(loss->dtype)) {
    char t[160];
    return ckc_error(d, loss->loc, "E0502", "the loss must be a float scalar, got %s",
                     ck_type_str(loss->dtype, &loss->shape, t, sizeof t));
  }
  AdCtx cx = {.m = m, .d = d, .a = m->arena, .src = src, .ok = true};
  AdCtx *c = &cx;
  int nid = src->next_id > 0 ? src->next_id : 1;
  c->fwd = CKC_NEW_ARRAY(c->a, IrNode *, nid);
  c->adj = CKC_NEW_ARRAY(c->a, IrNode *, nid);
  c->dep = CKC_NEW_ARRAY(c->a, bool, nid);
  c->reach = CKC_NEW_ARRAY(c->a, bool, nid);
  bool *reach_sg = CKC_NEW_ARRAY(c->a, bool, nid);
  memset(c->fwd, 0, sizeof(IrNode *) * (size_t)nid);
  memset(c->adj, 0, sizeof(IrNode *) * (size_t)nid);
  ad_mark_reach(src, c->reach, false);
  ad_mark_reach(src, reach_sg, true);
  ad_mark_dep(src, c->dep);

  c->g = ir_graph_new(m, "train_step", true);
  ad_clone_forward(c);
  ir_set_output(c->g, c->fwd[loss->id]);

  /* seed, then the reverse sweep */
  c->loc = loss->loc;
  if (ad_wants(c, loss)) {
    /* unnamed: cse merges it with the other 1.0 constants of the backward */
    c->adj[loss->id] = ad_k(c, loss, 1.0);
  }
  for (int i = src->nodes.len - 1; i >= 0 && c->ok; i--) {
    const IrNode *s = src->nodes.items[i];
    if (!c->adj[s->id] || (ir_op_info[s->op].flags & IR_OPF_LEAF)) continue;
    ad_name_adjoint(c, s);
    IrNode **in = CKC_NEW_ARRAY(c->a, IrNode *, s->nin ? s->nin : 1);
    for (int j = 0; j < s->nin; j++) in[j] = c->fwd[s->in[j]->id];
    c->loc = s->loc;
    c->ok = ad_rule(c, s, c->fwd[s->id], in, c->adj[s->id]);
  }
  if (!c->ok) return false;

  /* outputs: one gradient per trainable parameter, in order of appearance */
  IrTrainConfig *tc = m->train;
  if (tc) tc->params.len = 0;
  for (int i = 0; i < src->nodes.len; i++) {
    const IrNode *s = src->nodes.items[i];
    if (!ad_trainable(s)) continue;
    if (!c->reach[s->id] && reach_sg[s->id]) continue; /* detached: like frozen */
    if (!c->adj[s->id])
      ckc_warning(d, s->loc, "W0501", "parameter '%s' does not affect the loss; its gradient is zero",
                  s->name);
    ir_set_output(c->g, ad_grad_output(c, s));
    if (tc) {
      IrTrainParam p = {.name = s->name, .decay = false};
      CKC_VEC_PUSH(c->a, tc->params, p);
    }
  }
  return true;
}
