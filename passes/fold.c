/* passes/fold.c - constant folding and exact canonicalisations.
 *
 * 1. Constant folding. A node whose inputs are all CONST is evaluated at
 *    compile time and replaced by a CONST holding its value:
 *
 *      before                                   after
 *      %0 : f32[] = const() value=2             %2 : f32[] = const() value=1.41421354
 *      %1 : f32[] = sqrt(%0)
 *
 *    Only small results are materialised (at most FOLD_MAX_ELEMS = 4096
 *    elements), so folding never bloats the generated project; an
 *    elementwise op of splat constants (one value, any shape) is folded at
 *    any size because its result is again a splat.
 *
 *    Semantics are the runtime's, exactly:
 *    - f32 + - * / sqrt, neg, abs, compares, maximum/minimum: computed in
 *      double and rounded once to float. For these operations the double
 *      result rounded to float is the correctly rounded float result (double
 *      has more than 2*24+2 significand bits), i.e. bit-identical to what the
 *      generated float code computes.
 *    - f32 exp log tanh pow: the C library's float functions (expf, ...),
 *      which the generated code calls too; sigmoid relu gelu silu rsqrt: the
 *      rt-min scalar helpers (ck_sigmoidf, ...) linked into ckc, the same
 *      source the generated project compiles.
 *    - f64: the double versions (exp, log, tanh, pow, sqrt); f64 sigmoid,
 *      relu, gelu, silu and rsqrt are not folded (no shared helper).
 *    - i32/u8: exact integer arithmetic; a result outside the dtype's range
 *      (overflow) and integer division are left to the runtime.
 *    - cast: C conversion rules; float -> int of NaN or out-of-range values
 *      (undefined in C) is not folded.
 *    - maximum/minimum with a NaN operand or with +0/-0 (where C helpers and
 *      PyTorch may disagree) are not folded.
 *    - non-elementwise f32 ops (matmul, sum/mean/max, argmax, softmax,
 *      log_softmax, layernorm, rmsnorm, embedding) call the reference kernels
 *      of rt-min/ck_kernels.h; data movement (reshape, permute, broadcast,
 *      slice, concat) works on any dtype.
 *
 * 2. Canonicalisations that are exact for every input, NaN and -0 included:
 *      reshape(x) to x's own shape           -> x
 *      reshape(reshape(x))                   -> reshape(x)
 *      permute(x) by the identity            -> x
 *      permute(permute(x, p), q)             -> permute(x, p o q)
 *      matmul(a, permute_last2(b), tb)       -> matmul(a, b, transpose_b = !tb)   (same for a)
 *      cast(x) to x's dtype                  -> x
 *      neg(neg(x))                           -> x
 *    Rules like x*1 -> x or x+0 -> x are NOT applied: -0.0 + 0 is +0.0 and
 *    x*1 quiets a signalling NaN, so they would change IEEE results.
 *
 * Replaced nodes are removed here; operands that become unused are dce's. */
#include <math.h>
#include <string.h>

#include "ck_kernels.h"
#include "passes/passes.h"

enum { FOLD_MAX_ELEMS = 4096, FOLD_MAX_INPUT = 1 << 16 };

typedef struct FoldCtx {
  IrGraph *g;
  CkcArena *a;
} FoldCtx;

/* ---- reading and writing constants ------------------------------------------------ */

/* A value as the dtype stores it (a splat's double rounded to f32, ...). */
static double fold_round(CkDType dt, double v) {
  switch (dt) {
  case CK_DT_F32: return (double)(float)v;
  case CK_DT_F64: return v;
  case CK_DT_I32: return (double)(int32_t)v;
  case CK_DT_U8: return (double)(uint8_t)v;
  case CK_DT_BOOL: return v != 0 ? 1.0 : 0.0;
  default: return v;
  }
}

static double fold_load(const void *data, CkDType dt, int64_t i) {
  switch (dt) {
  case CK_DT_F32: return ((const float *)data)[i];
  case CK_DT_F64: return ((const double *)data)[i];
  case CK_DT_I32: return ((const int32_t *)data)[i];
  case CK_DT_U8:
  case CK_DT_BOOL: return ((const uint8_t *)data)[i];
  default: return 0;
  }
}

static void fold_store(void *data, CkDType dt, int64_t i, double v) {
  switch (dt) {
  case CK_DT_F32: ((float *)data)[i] = (float)v; break;
  case CK_DT_F64: ((double *)data)[i] = v; break;
  case CK_DT_I32: ((int32_t *)data)[i] = (int32_t)v; break;
  case CK_DT_U8:
  case CK_DT_BOOL: ((uint8_t *)data)[i] = (uint8_t)v; break;
  default: break;
  }
}

static bool fold_is_splat(const IrNode *c) { return c->op == IR_OP_CONST && !c->data; }

static double fold_elem(const IrNode *c, int64_t i) {
  if (!c->data) return fold_round(c->dtype, ir_get_float(c, "value", 0.0));
  return fold_load(c->data, c->dtype, i);
}

/* Dense bytes of a constant (a splat is expanded), or NULL if too large. */
static const void *fold_dense(FoldCtx *cx, const IrNode *c) {
  if (c->data) return c->data;
  int64_t n = ck_shape_numel_unchecked(&c->shape);
  if (n > FOLD_MAX_INPUT) return NULL;
  void *p = ckc_arena_alloc(cx->a, (size_t)(n ? n : 1) * ck_dtype_size(c->dtype));
  double v = fold_elem(c, 0);
  for (int64_t i = 0; i < n; i++) fold_store(p, c->dtype, i, v);
  return p;
}

/* A CONST with n's dtype and shape holding data; a splat when all elements
 * are bitwise equal (so printing and cse see one value). */
static IrNode *fold_make_const(FoldCtx *cx, const IrNode *n, const void *data) {
  int64_t cnt = ck_shape_numel_unchecked(&n->shape);
  size_t es = ck_dtype_size(n->dtype);
  bool splat = cnt > 0;
  for (int64_t i = 1; i < cnt && splat; i++)
    splat = memcmp((const char *)data + (size_t)i * es, data, es) == 0;
  IrNode *c = splat ? ir_const_fill(cx->g, n->dtype, &n->shape, fold_load(data, n->dtype, 0), n->loc)
                    : ir_const_data(cx->g, n->dtype, &n->shape, data, n->loc);
  c->name = n->name;
  return c;
}

static void *fold_alloc_out(FoldCtx *cx, const IrNode *n) {
  int64_t cnt = ck_shape_numel_unchecked(&n->shape);
  return ckc_arena_alloc(cx->a, (size_t)(cnt ? cnt : 1) * ck_dtype_size(n->dtype));
}

/* ---- scalar semantics -------------------------------------------------------------- */

static bool fold_int_range(CkDType dt, double r) {
  if (dt == CK_DT_I32) return r >= -2147483648.0 && r <= 2147483647.0;
  if (dt == CK_DT_U8) return r >= 0 && r <= 255;
  return dt == CK_DT_BOOL ? (r == 0 || r == 1) : true;
}

/* maximum/minimum: NaN and signed-zero ties are where implementations differ. */
static bool fold_minmax_ok(double a, double b) {
  if (isnan(a) || isnan(b)) return false;
  return !(a == 0 && b == 0 && signbit(a) != signbit(b));
}

/* float op of a float dtype; false = leave it to the runtime */
static bool fold_float(const IrNode *n, CkDType dt, const double *v, double *r) {
  bool f32 = dt == CK_DT_F32;
  double a = v[0], b = n->nin > 1 ? v[1] : 0;
  float fa = (float)a, fb = (float)b;
  switch (n->op) {
  case IR_OP_ADD: *r = a + b; break;
  case IR_OP_SUB: *r = a - b; break;
  case IR_OP_MUL: *r = a * b; break;
  case IR_OP_DIV: *r = a / b; break;
  case IR_OP_MAXIMUM:
    if (!fold_minmax_ok(a, b)) return false;
    *r = a > b ? a : b;
    break;
  case IR_OP_MINIMUM:
    if (!fold_minmax_ok(a, b)) return false;
    *r = a < b ? a : b;
    break;
  case IR_OP_NEG: *r = -a; break;
  case IR_OP_ABS: *r = fabs(a); break;
  case IR_OP_SQRT: *r = f32 ? sqrtf(fa) : sqrt(a); break;
  case IR_OP_POW: *r = f32 ? powf(fa, fb) : pow(a, b); break;
  case IR_OP_EXP: *r = f32 ? expf(fa) : exp(a); break;
  case IR_OP_LOG: *r = f32 ? logf(fa) : log(a); break;
  case IR_OP_TANH: *r = f32 ? tanhf(fa) : tanh(a); break;
  case IR_OP_RSQRT:
    if (!f32) return false;
    *r = ck_rsqrtf(fa);
    break;
  case IR_OP_SIGMOID:
    if (!f32) return false;
    *r = ck_sigmoidf(fa);
    break;
  case IR_OP_RELU:
    if (!f32) return false;
    *r = ck_reluf(fa);
    break;
  case IR_OP_SILU:
    if (!f32) return false;
    *r = ck_siluf(fa);
    break;
  case IR_OP_GELU:
    if (!f32) return false;
    *r = strcmp(ir_get_str(n, "approximate", "none"), "tanh") == 0 ? ck_gelu_tanhf(fa) : ck_gelu_erff(fa);
    break;
  default: return false;
  }
  if (f32) *r = (double)(float)*r;
  return true;
}

/* integer op (i32, u8); exact in double since |a|, |b| < 2^31 */
static bool fold_int(const IrNode *n, CkDType dt, const double *v, double *r) {
  double a = v[0], b = n->nin > 1 ? v[1] : 0;
  switch (n->op) {
  case IR_OP_ADD: *r = a + b; break;
  case IR_OP_SUB: *r = a - b; break;
  case IR_OP_MUL: *r = a * b; break;
  case IR_OP_NEG: *r = -a; break;
  case IR_OP_ABS: *r = fabs(a); break;
  case IR_OP_MAXIMUM: *r = a > b ? a : b; break;
  case IR_OP_MINIMUM: *r = a < b ? a : b; break;
  default: return false;
  }
  return fold_int_range(dt, *r);
}

/* cast with C conversion semantics; refuses the undefined cases */
static bool fold_cast(CkDType from, CkDType to, double a, double *r) {
  (void)from;
  switch (to) {
  case CK_DT_F32: *r = (double)(float)a; return true;
  case CK_DT_F64: *r = a; return true;
  case CK_DT_BOOL: *r = a != 0; return true; /* NaN != 0: true, as in C */
  case CK_DT_I32:
  case CK_DT_U8: {
    if (isnan(a)) return false;
    double t = trunc(a);
    if (ck_dtype_is_float(from)) {
      if (!fold_int_range(to, t)) return false;
      *r = t;
    } else {
      *r = to == CK_DT_U8 ? (double)(uint8_t)(int64_t)t : t; /* int -> u8 wraps (defined) */
      if (!fold_int_range(to, *r)) return false;
    }
    return true;
  }
  default: return false;
  }
}

/* One element of an elementwise op. */
static bool fold_scalar(const IrNode *n, const double *v, double *r) {
  CkDType in_dt = n->in[0]->dtype;
  switch (n->op) {
  case IR_OP_LT: *r = v[0] < v[1]; return true;
  case IR_OP_LE: *r = v[0] <= v[1]; return true;
  case IR_OP_GT: *r = v[0] > v[1]; return true;
  case IR_OP_GE: *r = v[0] >= v[1]; return true;
  case IR_OP_EQ: *r = v[0] == v[1]; return true;
  case IR_OP_NE: *r = v[0] != v[1]; return true;
  case IR_OP_WHERE: *r = v[0] != 0 ? v[1] : v[2]; return true;
  case IR_OP_CAST: return fold_cast(in_dt, n->dtype, v[0], r);
  default: break;
  }
  if (ck_dtype_is_float(n->dtype)) return fold_float(n, n->dtype, v, r);
  if (n->dtype == CK_DT_I32 || n->dtype == CK_DT_U8) return fold_int(n, n->dtype, v, r);
  return false;
}

/* ---- evaluation ---------------------------------------------------------------------- */

/* Elementwise with NumPy broadcasting: the input index of an output
 * coordinate drops the leading dims the input lacks and pins size-1 dims. */
static IrNode *fold_elementwise(FoldCtx *cx, IrNode *n) {
  bool all_splat = true;
  for (int k = 0; k < n->nin; k++) all_splat = all_splat && fold_is_splat(n->in[k]);
  double v[3], r;
  if (all_splat) {
    for (int k = 0; k < n->nin; k++) v[k] = fold_elem(n->in[k], 0);
    if (!fold_scalar(n, v, &r)) return NULL;
    IrNode *c = ir_const_fill(cx->g, n->dtype, &n->shape, fold_round(n->dtype, r), n->loc);
    c->name = n->name;
    return c;
  }
  int64_t cnt = ck_shape_numel_unchecked(&n->shape);
  if (cnt > FOLD_MAX_ELEMS) return NULL;
  void *out = fold_alloc_out(cx, n);
  int rank = n->shape.rank;
  int64_t coord[CK_MAX_RANK] = {0};
  for (int64_t i = 0; i < cnt; i++) {
    for (int k = 0; k < n->nin; k++) {
      const IrNode *x = n->in[k];
      int64_t idx = 0;
      for (int d = 0; d < x->shape.rank; d++) {
        int64_t ext = x->shape.dims[d];
        int64_t c = coord[rank - x->shape.rank + d];
        idx = idx * ext + (ext == 1 ? 0 : c);
      }
      v[k] = fold_elem(x, idx);
    }
    if (!fold_scalar(n, v, &r)) return NULL;
    fold_store(out, n->dtype, i, r);
    for (int d = rank - 1; d >= 0; d--) {
      if (++coord[d] < n->shape.dims[d]) break;
      coord[d] = 0;
    }
  }
  return fold_make_const(cx, n, out);
}

static int64_t fold_prod(const CkShape *s, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= s->dims[i];
  return p;
}

/* matmul of f32 constants; batch dims must be equal or absent (rank 2). */
static IrNode *fold_matmul(FoldCtx *cx, IrNode *n, const float *a, const float *b) {
  const CkShape *sa = &n->in[0]->shape, *sb = &n->in[1]->shape, *so = &n->shape;
  if (sa->rank < 2 || sb->rank < 2) return NULL;
  int br = so->rank - 2;
  int64_t batch = fold_prod(so, 0, br);
  for (int k = 0; k < 2; k++) {
    const CkShape *s = k ? sb : sa;
    if (s->rank == 2) continue;
    if (s->rank != so->rank) return NULL;
    for (int d = 0; d < br; d++)
      if (s->dims[d] != so->dims[d]) return NULL;
  }
  int ta = (int)ir_get_int(n, "transpose_a", 0), tb = (int)ir_get_int(n, "transpose_b", 0);
  int64_t M = so->dims[br], N = so->dims[br + 1];
  int64_t K = ta ? sa->dims[sa->rank - 2] : sa->dims[sa->rank - 1];
  float *out = fold_alloc_out(cx, n);
  ck_matmul_f32(out, a, b, batch, M, N, K, ta, tb, sa->rank == 2 ? 0 : M * K,
                sb->rank == 2 ? 0 : K * N);
  return fold_make_const(cx, n, out);
}

/* Reductions over a contiguous run of axes collapse to one (outer, n, inner)
 * call, the way the runtime calls them. */
static IrNode *fold_reduce(FoldCtx *cx, IrNode *n, const float *x) {
  const CkShape *s = &n->in[0]->shape;
  int cnt = 0;
  const int64_t *axes = ir_get_ints(n, "axes", &cnt);
  int lo = 0, hi = s->rank;
  if (axes && cnt > 0) {
    lo = (int)axes[0];
    hi = (int)axes[cnt - 1] + 1;
    if (hi - lo != cnt) return NULL;
  }
  int64_t outer = fold_prod(s, 0, lo), len = fold_prod(s, lo, hi), inner = fold_prod(s, hi, s->rank);
  float *out = fold_alloc_out(cx, n);
  switch (n->op) {
  case IR_OP_SUM: ck_sum_f32(out, x, outer, len, inner); break;
  case IR_OP_MEAN: ck_mean_f32(out, x, outer, len, inner); break;
  case IR_OP_MAX: ck_max_f32(out, x, outer, len, inner); break;
  default: return NULL;
  }
  return fold_make_const(cx, n, out);
}

/* softmax, log_softmax, argmax along one axis */
static IrNode *fold_axis(FoldCtx *cx, IrNode *n, const float *x) {
  const CkShape *s = &n->in[0]->shape;
  int ax = (int)ir_get_int(n, "axis", s->rank - 1);
  if (ax < 0 || ax >= s->rank) return NULL;
  int64_t outer = fold_prod(s, 0, ax), len = s->dims[ax], inner = fold_prod(s, ax + 1, s->rank);
  void *out = fold_alloc_out(cx, n);
  switch (n->op) {
  case IR_OP_SOFTMAX: ck_softmax_f32(out, x, outer, len, inner); break;
  case IR_OP_LOG_SOFTMAX: ck_log_softmax_f32(out, x, outer, len, inner); break;
  case IR_OP_ARGMAX: ck_argmax_f32(out, x, outer, len, inner); break;
  default: return NULL;
  }
  return fold_make_const(cx, n, out);
}

/* Data movement on any dtype. */
static IrNode *fold_move(FoldCtx *cx, IrNode *n) {
  const IrNode *x = n->in[0];
  size_t es = ck_dtype_size(n->dtype);
  if (n->op != IR_OP_CONCAT && fold_is_splat(x)) { /* moving a splat gives the same splat */
    IrNode *c = ir_const_fill(cx->g, n->dtype, &n->shape, fold_elem(x, 0), n->loc);
    c->name = n->name;
    return c;
  }
  if (ck_shape_numel_unchecked(&n->shape) > FOLD_MAX_ELEMS) return NULL;
  const void *xd = fold_dense(cx, x);
  if (!xd) return NULL;
  void *out = fold_alloc_out(cx, n);
  const CkShape *s = &x->shape;
  switch (n->op) {
  case IR_OP_RESHAPE: memcpy(out, xd, (size_t)ck_shape_numel_unchecked(s) * es); break;
  case IR_OP_PERMUTE: {
    int np = 0;
    const int64_t *perm = ir_get_ints(n, "perm", &np);
    if (!perm || np != s->rank) return NULL;
    ck_permute(out, xd, es, s->rank, s->dims, perm);
    break;
  }
  case IR_OP_BROADCAST: {
    int64_t in_dims[CK_MAX_RANK];
    int r = n->shape.rank, off = r - s->rank;
    for (int d = 0; d < r; d++) in_dims[d] = d < off ? 1 : s->dims[d - off];
    ck_broadcast(out, xd, es, r, in_dims, n->shape.dims);
    break;
  }
  case IR_OP_SLICE: {
    int ax = (int)ir_get_int(n, "axis", 0);
    int64_t step = ir_get_int(n, "step", 1), len, start = ir_get_int(n, "start", 0);
    if (ax < 0 || ax >= s->rank || step <= 0) return NULL;
    len = s->dims[ax];
    if (start < 0) start += len;
    if (start < 0) start = 0;
    if (start > len) start = len;
    ck_slice(out, xd, es, fold_prod(s, 0, ax), len, fold_prod(s, ax + 1, s->rank), start, step,
             n->shape.dims[ax]);
    break;
  }
  case IR_OP_CONCAT: {
    int ax = (int)ir_get_int(n, "axis", 0);
    if (ax < 0 || ax >= n->shape.rank) return NULL;
    int64_t off = 0;
    for (int k = 0; k < n->nin; k++) {
      const CkShape *p = &n->in[k]->shape;
      const void *pd = fold_dense(cx, n->in[k]);
      if (!pd) return NULL;
      ck_concat_part(out, pd, es, fold_prod(p, 0, ax), p->dims[ax], n->shape.dims[ax], off,
                     fold_prod(p, ax + 1, p->rank));
      off += p->dims[ax];
    }
    break;
  }
  default: return NULL;
  }
  return fold_make_const(cx, n, out);
}

/* All inputs are CONST: evaluate n, or return NULL to leave it alone. */
static IrNode *fold_eval(FoldCtx *cx, IrNode *n) {
  unsigned fl = ir_op_info[n->op].flags;
  if (fl & IR_OPF_ELEMWISE) return fold_elementwise(cx, n);
  if (fl & IR_OPF_SHAPE) return fold_move(cx, n);
  if (ck_shape_numel_unchecked(&n->shape) > FOLD_MAX_ELEMS) return NULL;
  for (int k = 0; k < n->nin; k++)
    if (n->in[k]->dtype != CK_DT_F32 && !(n->op == IR_OP_EMBEDDING && k == 1)) return NULL;
  const float *x[3] = {NULL, NULL, NULL};
  for (int k = 0; k < n->nin && k < 3; k++)
    if (!(x[k] = fold_dense(cx, n->in[k]))) return NULL;
  const CkShape *s = &n->in[0]->shape;
  switch (n->op) {
  case IR_OP_MATMUL: return fold_matmul(cx, n, x[0], x[1]);
  case IR_OP_SUM:
  case IR_OP_MEAN:
  case IR_OP_MAX: return fold_reduce(cx, n, x[0]);
  case IR_OP_ARGMAX:
  case IR_OP_SOFTMAX:
  case IR_OP_LOG_SOFTMAX: return fold_axis(cx, n, x[0]);
  case IR_OP_LAYERNORM:
  case IR_OP_RMSNORM: {
    if (s->rank < 1) return NULL;
    int64_t len = s->dims[s->rank - 1], rows = fold_prod(s, 0, s->rank - 1);
    float eps = (float)ir_get_float(n, "eps", 1e-5);
    float *out = fold_alloc_out(cx, n);
    if (n->op == IR_OP_LAYERNORM)
      ck_layernorm_f32(out, NULL, NULL, x[0], x[1], x[2], rows, len, eps);
    else
      ck_rmsnorm_f32(out, NULL, x[0], x[1], rows, len, eps);
    return fold_make_const(cx, n, out);
  }
  case IR_OP_EMBEDDING: {
    const IrNode *t = n->in[0];
    if (t->shape.rank != 2 || n->in[1]->dtype != CK_DT_I32) return NULL;
    float *out = fold_alloc_out(cx, n);
    int64_t bad = ck_embedding_f32(out, x[0], (const int32_t *)(const void *)x[1],
                                   ck_shape_numel_unchecked(&n->in[1]->shape), t->shape.dims[0],
                                   t->shape.dims[1]);
    if (bad >= 0) return NULL; /* out-of-range index: the runtime reports it */
    return fold_make_const(cx, n, out);
  }
  default: return NULL;
  }
}

/* ---- canonicalisations ---------------------------------------------------------------- */

static bool fold_is_identity(const int64_t *perm, int n) {
  for (int i = 0; i < n; i++)
    if (perm[i] != i) return false;
  return true;
}

/* permute that swaps the last two axes and keeps the others */
static bool fold_swaps_last2(const IrNode *p) {
  int np = 0;
  const int64_t *perm = ir_get_ints(p, "perm", &np);
  if (p->op != IR_OP_PERMUTE || !perm || np < 2) return false;
  for (int i = 0; i < np - 2; i++)
    if (perm[i] != i) return false;
  return perm[np - 2] == np - 1 && perm[np - 1] == np - 2;
}

static IrNode *fold_new(FoldCtx *cx, IrNode *n, IrOp op, IrNode *const *in, int nin, const IrAttr *at,
                        int nat) {
  IrErr err;
  IrNode *r = ir_op(cx->g, op, in, nin, at, nat, n->name, n->loc, &err);
  if (!r) CKC_ICE("fold: rewrite of %%%d (%s) is ill-typed: %s", n->id, ir_op_name(n->op), err.msg);
  return r;
}

/* Exact rewrites; NULL if none applies. */
static IrNode *fold_canon(FoldCtx *cx, IrNode *n) {
  IrNode *x = n->nin > 0 ? n->in[0] : NULL;
  switch (n->op) {
  case IR_OP_RESHAPE: /* reshape(x) -> x ; reshape(reshape(x)) -> reshape(x) */
    if (ck_shape_eq(&x->shape, &n->shape)) return x;
    if (x->op == IR_OP_RESHAPE) {
      IrNode *src = x->in[0];
      if (ck_shape_eq(&src->shape, &n->shape)) return src;
      IrErr err;
      IrNode *r = ir_reshape(cx->g, src, &n->shape, n->name, n->loc, &err);
      if (!r) CKC_ICE("fold: reshape(reshape) of %%%d: %s", n->id, err.msg);
      return r;
    }
    return NULL;
  case IR_OP_PERMUTE: { /* permute(x, id) -> x ; permute(permute(x, p), q) -> permute(x, p o q) */
    int np = 0, np0 = 0;
    const int64_t *q = ir_get_ints(n, "perm", &np);
    if (!q) return NULL;
    if (fold_is_identity(q, np)) return x;
    const int64_t *p = x->op == IR_OP_PERMUTE ? ir_get_ints(x, "perm", &np0) : NULL;
    if (!p || np0 != np) return NULL;
    int64_t comp[CK_MAX_RANK];
    for (int i = 0; i < np; i++) comp[i] = p[q[i]]; /* out dim i = x dim q[i] = src dim p[q[i]] */
    if (fold_is_identity(comp, np)) return x->in[0];
    IrAttr at = ir_attr_ints("perm", comp, np);
    return fold_new(cx, n, IR_OP_PERMUTE, &x->in[0], 1, &at, 1);
  }
  case IR_OP_MATMUL: { /* matmul(a, swap(b), tb) -> matmul(a, b, !tb); same for a */
    IrNode *in[2] = {n->in[0], n->in[1]};
    int64_t t[2] = {ir_get_int(n, "transpose_a", 0), ir_get_int(n, "transpose_b", 0)};
    bool changed = false;
    for (int k = 0; k < 2; k++)
      if (fold_swaps_last2(in[k]) && in[k]->shape.rank >= 2) {
        in[k] = in[k]->in[0];
        t[k] = !t[k];
        changed = true;
      }
    if (!changed) return NULL;
    IrAttr at[2];
    int nat = 0;
    if (t[0] || ir_find_attr(n, "transpose_a")) at[nat++] = ir_attr_int("transpose_a", t[0]);
    if (t[1] || ir_find_attr(n, "transpose_b")) at[nat++] = ir_attr_int("transpose_b", t[1]);
    return fold_new(cx, n, IR_OP_MATMUL, in, 2, at, nat);
  }
  case IR_OP_CAST: /* cast(x: T) to T -> x */
    return x->dtype == n->dtype ? x : NULL;
  case IR_OP_NEG: /* neg(neg(x)) -> x : negation only flips the sign bit */
    return x->op == IR_OP_NEG ? x->in[0] : NULL;
  default: return NULL;
  }
}

/* ---- driver ------------------------------------------------------------------------ */

static IrNode *fold_resolve(IrNode *x) {
  while (x->aux) x = x->aux;
  return x;
}

/* Nodes are visited in order, new nodes included (they are appended and may
 * fold again: permute(permute(permute(x)))). A replaced node forwards to its
 * replacement through ->aux until every use has been redirected. */
static void fold_graph(FoldCtx *cx, IrGraph *g) {
  cx->g = g;
  for (int i = 0; i < g->nodes.len; i++) {
    g->nodes.items[i]->aux = NULL;
    g->nodes.items[i]->mark = 0;
  }
  bool changed = false;
  int fresh = g->next_id; /* nodes with ids from here on are this sweep's */
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    if (ir_op_info[n->op].flags & IR_OPF_LEAF) continue;
    bool all_const = n->nin > 0;
    for (int k = 0; k < n->nin; k++) {
      n->in[k] = fold_resolve(n->in[k]);
      all_const = all_const && n->in[k]->op == IR_OP_CONST;
    }
    if (n->op == IR_OP_CALL) continue;
    IrNode *r = fold_canon(cx, n);
    if (!r && all_const) r = fold_eval(cx, n);
    if (!r || r == n) continue;
    if (!r->name) r->name = n->name;
    /* A new node inherits the id of the node it replaces, so the re-sort
     * below puts it where that node was and dumps stay easy to diff. */
    if (r->id >= fresh) r->id = n->id;
    n->aux = r;
    n->mark = 1;
    changed = true;
  }
  if (!changed) return;
  for (int i = 0; i < g->outputs.len; i++) g->outputs.items[i] = fold_resolve(g->outputs.items[i]);
  ir_graph_remove_marked(g);
  for (int i = 0; i < g->nodes.len; i++) g->nodes.items[i]->aux = NULL;
  ir_graph_toposort(g);
  for (int i = 0; i < g->nodes.len; i++) {
    g->nodes.items[i]->id = i;
    g->nodes.items[i]->mark = 0;
  }
  g->next_id = g->nodes.len;
}

bool pass_fold(IrModule *m, CkcDiag *d) {
  (void)d;
  FoldCtx cx = {NULL, m->arena};
  for (int i = 0; i < m->graphs.len; i++) fold_graph(&cx, m->graphs.items[i]);
  return true;
}
