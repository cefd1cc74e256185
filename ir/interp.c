/* ir/interp.c - the float64 reference interpreter (ir/interp.h).
 *
 * Deliberately naive: one function per op family, every loop written from
 * the op's definition in ops.def (index arithmetic on full coordinates, no
 * collapsed extents or blocking), floats in double, integers exact. It is an
 * oracle for the fast paths, so clarity beats speed and no code is shared
 * with rt-min. Values are indexed by node id, so the graph stays const and
 * the passes' scratch fields (aux, mark) are never touched. */
#include "ir/interp.h"
#include "ir/fused.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The state of one graph evaluation (a CALL evaluates its callee with a
 * nested Interp that carries the instance prefix). */
typedef struct Interp {
  CkcArena *a;
  IrInterpParamFn params;
  void *ctx;
  const char *prefix; /* instance path of the graph's parameters; NULL at top level */
  const IrNode *node; /* the node being evaluated, for messages */
  char *err;
  size_t errlen;
  int depth;
} Interp;

/* Every failure names the node, so a test failure points into the IR dump. */
static bool fail(Interp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(Interp *I, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (I->err && I->errlen > 0) {
    if (I->node)
      snprintf(I->err, I->errlen, "interp: graph '%s': %%%d %s: %s",
               I->node->graph && I->node->graph->name ? I->node->graph->name : "?", I->node->id,
               ir_op_name(I->node->op), msg);
    else
      snprintf(I->err, I->errlen, "interp: %s", msg);
  }
  return false;
}

/* ---- tensors ---------------------------------------------------------------- */

IrTensor ir_tensor_new(CkcArena *a, CkDType dt, const CkShape *s) {
  IrTensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dt;
  t.shape = *s;
  t.numel = ck_shape_numel_unchecked(s);
  size_t n = t.numel > 0 ? (size_t)t.numel : 1;
  if (ck_dtype_is_float(dt))
    t.f = CKC_NEW_ARRAY(a, double, n);
  else
    t.i = CKC_NEW_ARRAY(a, int32_t, n);
  return t;
}

double ir_tensor_get(const IrTensor *t, int64_t k) {
  return t->f ? t->f[k] : (double)t->i[k];
}

/* Integer results wrap like the C the back end emits for their dtype (i32
 * two's complement, u8 modulo 256, bool 0/1), written without relying on
 * implementation-defined conversions. */
static int32_t wrap_int(CkDType dt, int64_t v) {
  if (dt == CK_DT_BOOL) return v != 0;
  if (dt == CK_DT_U8) return (int32_t)(v & 0xff);
  uint32_t u = (uint32_t)((uint64_t)v & 0xffffffffu);
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)(u - 2147483648u) - INT32_MAX - 1;
}

/* Row-major strides of a shape. */
static void strides_of(const CkShape *s, int64_t *st) {
  int64_t m = 1;
  for (int d = s->rank - 1; d >= 0; d--) {
    st[d] = m;
    m *= s->dims[d];
  }
}

/* NumPy broadcasting: the stride in `in` for each axis of `out` (axes
 * aligned at the right; a size-1 or missing axis has stride 0). */
static void bcast_strides(const CkShape *in, const CkShape *out, int64_t *st) {
  int off = out->rank - in->rank;
  int64_t m = 1;
  for (int d = out->rank - 1; d >= 0; d--) {
    int k = d - off;
    if (k < 0) {
      st[d] = 0;
      continue;
    }
    st[d] = in->dims[k] == 1 ? 0 : m;
    m *= in->dims[k];
  }
}

/* Offset in a strided input of the output's flat index o. */
static int64_t strided_off(int64_t o, const CkShape *out, const int64_t *st) {
  int64_t off = 0;
  for (int d = out->rank - 1; d >= 0; d--) {
    int64_t c = o % out->dims[d];
    o /= out->dims[d];
    off += c * st[d];
  }
  return off;
}

/* x viewed as (outer, n, inner) around one axis. */
static void split3(const CkShape *s, int axis, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < axis; d++) *outer *= s->dims[d];
  for (int d = axis + 1; d < s->rank; d++) *inner *= s->dims[d];
  *n = s->dims[axis];
}

static void copy_el(IrTensor *o, int64_t ko, const IrTensor *x, int64_t kx) {
  if (o->f)
    o->f[ko] = x->f ? x->f[kx] : (double)x->i[kx];
  else
    o->i[ko] = x->i ? x->i[kx] : (int32_t)x->f[kx];
}

/* A pair attribute (stride, padding, kernel) with its default. */
static void get_pair(const IrNode *n, const char *key, int64_t d0, int64_t d1, int64_t *out) {
  int cnt = 0;
  const int64_t *v = ir_get_ints(n, key, &cnt);
  if (v && cnt == 2) {
    out[0] = v[0];
    out[1] = v[1];
  } else if (v && cnt == 1) {
    out[0] = out[1] = v[0];
  } else {
    out[0] = d0;
    out[1] = d1;
  }
}

/* ---- elementwise ---------------------------------------------------------- */

/* Float binary ops; maximum/minimum propagate NaN (torch.maximum). */
static double f_binary(IrOp op, double a, double b) {
  switch (op) {
  case IR_OP_ADD: return a + b;
  case IR_OP_SUB: return a - b;
  case IR_OP_MUL: return a * b;
  case IR_OP_DIV: return a / b;
  case IR_OP_MAXIMUM: return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b);
  case IR_OP_MINIMUM: return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b);
  case IR_OP_POW: return pow(a, b);
  default: return NAN;
  }
}

/* Integer binary ops in int64, then wrapped to the dtype: C semantics
 * (truncating division) without C's undefined overflow. */
static bool i_binary(Interp *I, IrOp op, CkDType dt, int64_t a, int64_t b, int32_t *r) {
  int64_t v = 0;
  switch (op) {
  case IR_OP_ADD: v = a + b; break;
  case IR_OP_SUB: v = a - b; break;
  case IR_OP_MUL: v = a * b; break;
  case IR_OP_DIV:
    if (b == 0) return fail(I, "integer division by zero");
    v = a / b;
    break;
  case IR_OP_MAXIMUM: v = a > b ? a : b; break;
  case IR_OP_MINIMUM: v = a < b ? a : b; break;
  case IR_OP_POW: {
    if (b < 0) return fail(I, "integer to a negative power (%lld)", (long long)b);
    uint32_t base = (uint32_t)((uint64_t)a & 0xffffffffu), acc = 1;
    for (int64_t e = b; e > 0; e >>= 1) {
      if (e & 1) acc *= base;
      base *= base;
    }
    v = (int64_t)acc;
    break;
  }
  default: return fail(I, "not an integer binary op");
  }
  *r = wrap_int(dt, v);
  return true;
}

static bool is_compare(IrOp op) {
  return op == IR_OP_LT || op == IR_OP_LE || op == IR_OP_GT || op == IR_OP_GE ||
         op == IR_OP_EQ || op == IR_OP_NE;
}

/* Comparisons read both operands as doubles: exact for every i32 and u8,
 * and IEEE rules for NaN (every comparison false except ne). */
static int compare(IrOp op, double a, double b) {
  switch (op) {
  case IR_OP_LT: return a < b;
  case IR_OP_LE: return a <= b;
  case IR_OP_GT: return a > b;
  case IR_OP_GE: return a >= b;
  case IR_OP_EQ: return a == b;
  default: return a != b;
  }
}

/* binary elementwise ops and comparisons, with NumPy broadcasting */
static bool op_binary(Interp *I, const IrNode *n, const IrTensor *x, const IrTensor *y,
                      IrTensor *o) {
  int64_t sx[CK_MAX_RANK], sy[CK_MAX_RANK];
  bcast_strides(&x->shape, &o->shape, sx);
  bcast_strides(&y->shape, &o->shape, sy);
  for (int64_t k = 0; k < o->numel; k++) {
    int64_t kx = strided_off(k, &o->shape, sx), ky = strided_off(k, &o->shape, sy);
    if (is_compare(n->op)) {
      o->i[k] = compare(n->op, ir_tensor_get(x, kx), ir_tensor_get(y, ky));
    } else if (o->f) {
      o->f[k] = f_binary(n->op, x->f[kx], y->f[ky]);
    } else if (!i_binary(I, n->op, o->dtype, x->i[kx], y->i[ky], &o->i[k])) {
      return false;
    }
  }
  return true;
}

/* where(cond, a, b): all three broadcast together */
static bool op_where(const IrTensor *c, const IrTensor *x, const IrTensor *y, IrTensor *o) {
  int64_t sc[CK_MAX_RANK], sx[CK_MAX_RANK], sy[CK_MAX_RANK];
  bcast_strides(&c->shape, &o->shape, sc);
  bcast_strides(&x->shape, &o->shape, sx);
  bcast_strides(&y->shape, &o->shape, sy);
  for (int64_t k = 0; k < o->numel; k++) {
    bool t = ir_tensor_get(c, strided_off(k, &o->shape, sc)) != 0.0;
    if (t)
      copy_el(o, k, x, strided_off(k, &o->shape, sx));
    else
      copy_el(o, k, y, strided_off(k, &o->shape, sy));
  }
  return true;
}

/* PyTorch's sigmoid without overflow for large |x|. */
static double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

/* unary float ops, by their textbook definitions (gelu_tanh: approximate="tanh") */
static double f_unary_op(IrOp op, bool gelu_tanh, double x) {
  switch (op) {
  case IR_OP_NEG: return -x;
  case IR_OP_ABS: return fabs(x);
  case IR_OP_EXP: return exp(x);
  case IR_OP_LOG: return log(x);
  case IR_OP_SQRT: return sqrt(x);
  case IR_OP_RSQRT: return 1.0 / sqrt(x);
  case IR_OP_TANH: return tanh(x);
  case IR_OP_SIGMOID: return sigmoid(x);
  case IR_OP_RELU: return x > 0 ? x : (isnan(x) ? x : 0.0);
  case IR_OP_SILU: return x * sigmoid(x);
  case IR_OP_ERF: return erf(x);
  case IR_OP_GELU:
    if (gelu_tanh) {
      double c = sqrt(2.0 / 3.14159265358979323846);
      return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)));
    }
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
  default: return NAN;
  }
}

static double f_unary(const IrNode *n, double x) {
  bool gt = n->op == IR_OP_GELU && strcmp(ir_get_str(n, "approximate", "none"), "tanh") == 0;
  return f_unary_op(n->op, gt, x);
}

static bool op_unary(Interp *I, const IrNode *n, const IrTensor *x, IrTensor *o) {
  for (int64_t k = 0; k < o->numel; k++) {
    if (o->f) {
      o->f[k] = f_unary(n, x->f[k]);
    } else if (n->op == IR_OP_NEG) {
      o->i[k] = wrap_int(o->dtype, -(int64_t)x->i[k]);
    } else if (n->op == IR_OP_ABS) {
      o->i[k] = wrap_int(o->dtype, x->i[k] < 0 ? -(int64_t)x->i[k] : x->i[k]);
    } else {
      return fail(I, "no integer form");
    }
  }
  return true;
}

/* cast: float -> int truncates toward zero (C conversion); a value the
 * target cannot hold is C's undefined behaviour, reported here; anything ->
 * bool is x != 0; floats stay double (no rounding to f32 in this mode). */
static bool op_cast(Interp *I, const IrTensor *x, IrTensor *o) {
  for (int64_t k = 0; k < o->numel; k++) {
    if (o->f) {
      o->f[k] = ir_tensor_get(x, k);
    } else if (o->dtype == CK_DT_BOOL) {
      o->i[k] = ir_tensor_get(x, k) != 0.0;
    } else if (x->i) {
      o->i[k] = wrap_int(o->dtype, x->i[k]);
    } else {
      double v = trunc(x->f[k]);
      double hi = o->dtype == CK_DT_U8 ? 255.0 : 2147483647.0;
      double lo = o->dtype == CK_DT_U8 ? 0.0 : -2147483648.0;
      if (!(v >= lo && v <= hi))
        return fail(I, "value %g does not fit %s", x->f[k], ck_dtype_name(o->dtype));
      o->i[k] = (int32_t)v;
    }
  }
  return true;
}

/* ---- linear algebra ---------------------------------------------------------- */

/* matmul: the last two axes are matrices, op(a) [M,K] @ op(b) [K,N]; the
 * leading axes broadcast (a broadcast operand repeats its matrix). */
static bool op_matmul(const IrNode *n, const IrTensor *x, const IrTensor *y, IrTensor *o) {
  int ta = (int)ir_get_int(n, "transpose_a", 0), tb = (int)ir_get_int(n, "transpose_b", 0);
  int ra = x->shape.rank, ro = o->shape.rank;
  int64_t M = o->shape.dims[ro - 2], N = o->shape.dims[ro - 1];
  int64_t K = ta ? x->shape.dims[ra - 2] : x->shape.dims[ra - 1];
  CkShape ob = o->shape, ab = x->shape, bb = y->shape;
  ob.rank -= 2;
  ab.rank -= 2;
  bb.rank -= 2;
  int64_t sa[CK_MAX_RANK], sb[CK_MAX_RANK];
  bcast_strides(&ab, &ob, sa);
  bcast_strides(&bb, &ob, sb);
  int64_t nbatch = ck_shape_numel_unchecked(&ob);
  for (int64_t bi = 0; bi < nbatch; bi++) {
    const double *A = x->f + strided_off(bi, &ob, sa) * M * K;
    const double *B = y->f + strided_off(bi, &ob, sb) * K * N;
    double *C = o->f + bi * M * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double acc = 0.0;
        for (int64_t k = 0; k < K; k++)
          acc += (ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
        C[i * N + j] = acc;
      }
  }
  return true;
}

/* ---- data movement ------------------------------------------------------------- */

/* permute: output axis d is input axis perm[d] */
static bool op_permute(Interp *I, const IrNode *n, const IrTensor *x, IrTensor *o) {
  int cnt = 0;
  const int64_t *perm = ir_get_ints(n, "perm", &cnt);
  if (!perm || cnt != x->shape.rank) return fail(I, "bad perm");
  int64_t sx[CK_MAX_RANK], st[CK_MAX_RANK];
  strides_of(&x->shape, sx);
  for (int d = 0; d < cnt; d++) st[d] = sx[perm[d]];
  for (int64_t k = 0; k < o->numel; k++) copy_el(o, k, x, strided_off(k, &o->shape, st));
  return true;
}

static bool op_broadcast(const IrTensor *x, IrTensor *o) {
  int64_t st[CK_MAX_RANK];
  bcast_strides(&x->shape, &o->shape, st);
  for (int64_t k = 0; k < o->numel; k++) copy_el(o, k, x, strided_off(k, &o->shape, st));
  return true;
}

/* slice: out[..., i, ...] = x[..., start + i*step, ...] along axis */
static bool op_slice(const IrNode *n, const IrTensor *x, IrTensor *o) {
  int axis = (int)ir_get_int(n, "axis", 0);
  int64_t start = ir_get_int(n, "start", 0), step = ir_get_int(n, "step", 1);
  int64_t sx[CK_MAX_RANK], st[CK_MAX_RANK];
  strides_of(&x->shape, sx);
  memcpy(st, sx, sizeof st);
  st[axis] = sx[axis] * step;
  for (int64_t k = 0; k < o->numel; k++)
    copy_el(o, k, x, start * sx[axis] + strided_off(k, &o->shape, st));
  return true;
}

/* slice_bwd: the adjoint of slice, zeros outside the sliced positions */
static bool op_slice_bwd(const IrNode *n, const IrTensor *dy, IrTensor *o) {
  int axis = (int)ir_get_int(n, "axis", 0);
  int64_t start = ir_get_int(n, "start", 0), step = ir_get_int(n, "step", 1);
  int64_t so[CK_MAX_RANK], st[CK_MAX_RANK];
  strides_of(&o->shape, so);
  memcpy(st, so, sizeof st);
  st[axis] = so[axis] * step;
  for (int64_t k = 0; k < dy->numel; k++)
    copy_el(o, start * so[axis] + strided_off(k, &dy->shape, st), dy, k);
  return true;
}

/* concat: inputs laid one after another along axis */
static bool op_concat(const IrNode *n, IrTensor *const *args, int nargs, IrTensor *o) {
  int axis = (int)ir_get_int(n, "axis", 0);
  int64_t outer, ntot, inner, off = 0;
  split3(&o->shape, axis, &outer, &ntot, &inner);
  for (int q = 0; q < nargs; q++) {
    const IrTensor *x = args[q];
    int64_t np = x->shape.dims[axis];
    for (int64_t a = 0; a < outer; a++)
      for (int64_t j = 0; j < np; j++)
        for (int64_t c = 0; c < inner; c++)
          copy_el(o, (a * ntot + off + j) * inner + c, x, (a * np + j) * inner + c);
    off += np;
  }
  return true;
}

/* ---- reductions ------------------------------------------------------------------ */

/* sum/mean/max over a set of axes: each input element maps to the output
 * element with its reduced coordinates dropped (keepdim only changes the
 * shape, not the flat order). max propagates NaN (torch.amax). */
static bool op_reduce(Interp *I, const IrNode *n, const IrTensor *x, IrTensor *o) {
  int cnt = 0;
  const int64_t *axes = ir_get_ints(n, "axes", &cnt);
  bool red[CK_MAX_RANK] = {false};
  for (int q = 0; q < cnt; q++) {
    if (axes[q] < 0 || axes[q] >= x->shape.rank) return fail(I, "bad axis %lld", (long long)axes[q]);
    red[axes[q]] = true;
  }
  if (!axes)
    for (int d = 0; d < x->shape.rank; d++) red[d] = true;
  /* strides of the kept axes in the output */
  int64_t st[CK_MAX_RANK], m = 1, count = 1;
  for (int d = x->shape.rank - 1; d >= 0; d--) {
    if (red[d]) {
      st[d] = 0;
      count *= x->shape.dims[d];
    } else {
      st[d] = m;
      m *= x->shape.dims[d];
    }
  }
  int64_t *iacc = NULL;
  if (o->f) {
    for (int64_t k = 0; k < o->numel; k++) o->f[k] = n->op == IR_OP_MAX ? -INFINITY : 0.0;
  } else {
    iacc = CKC_NEW_ARRAY(I->a, int64_t, o->numel > 0 ? o->numel : 1);
    for (int64_t k = 0; k < o->numel; k++) iacc[k] = n->op == IR_OP_MAX ? INT64_MIN : 0;
  }
  for (int64_t k = 0; k < x->numel; k++) {
    int64_t ko = strided_off(k, &x->shape, st);
    if (o->f) {
      double v = x->f[k];
      if (n->op == IR_OP_MAX) {
        if (v != v || v > o->f[ko]) o->f[ko] = v;
      } else {
        o->f[ko] += v;
      }
    } else if (n->op == IR_OP_MAX) {
      if (x->i[k] > iacc[ko]) iacc[ko] = x->i[k];
    } else {
      iacc[ko] += x->i[k];
    }
  }
  for (int64_t k = 0; k < o->numel; k++) {
    if (n->op == IR_OP_MEAN) o->f[k] /= (double)count;
    if (!o->f) o->i[k] = wrap_int(o->dtype, iacc[k]);
  }
  return true;
}

/* argmax: the first index of the maximum; the first NaN wins */
static bool op_argmax(const IrNode *n, const IrTensor *x, IrTensor *o) {
  int axis = (int)ir_get_int(n, "axis", x->shape.rank - 1);
  int64_t outer, len, inner;
  split3(&x->shape, axis, &outer, &len, &inner);
  for (int64_t a = 0; a < outer; a++)
    for (int64_t c = 0; c < inner; c++) {
      int64_t best = 0;
      double m = len > 0 ? ir_tensor_get(x, a * len * inner + c) : 0.0;
      for (int64_t j = 1; j < len && m == m; j++) {
        double v = ir_tensor_get(x, (a * len + j) * inner + c);
        if (v != v || v > m) {
          m = v;
          best = j;
        }
      }
      o->i[a * inner + c] = (int32_t)best;
    }
  return true;
}

/* max_bwd: dy of each reduced row goes to the first maximum (first NaN) */
static bool op_max_bwd(const IrNode *n, const IrTensor *x, const IrTensor *dy, IrTensor *o) {
  int axis = (int)ir_get_int(n, "axis", 0);
  int64_t outer, len, inner;
  split3(&x->shape, axis, &outer, &len, &inner);
  for (int64_t a = 0; a < outer; a++)
    for (int64_t c = 0; c < inner; c++) {
      int64_t best = 0;
      double m = len > 0 ? x->f[a * len * inner + c] : 0.0;
      for (int64_t j = 1; j < len && m == m; j++) {
        double v = x->f[(a * len + j) * inner + c];
        if (v != v || v > m) {
          m = v;
          best = j;
        }
      }
      if (len > 0) o->f[(a * len + best) * inner + c] = dy->f[a * inner + c];
    }
  return true;
}

/* ---- softmax family ------------------------------------------------------------- */

/* softmax / log_softmax with the maximum subtracted first */
static bool op_softmax(const IrNode *n, const IrTensor *x, IrTensor *o) {
  int axis = (int)ir_get_int(n, "axis", x->shape.rank - 1);
  int64_t outer, len, inner;
  split3(&x->shape, axis, &outer, &len, &inner);
  for (int64_t a = 0; a < outer; a++)
    for (int64_t c = 0; c < inner; c++) {
      const double *p = x->f + a * len * inner + c;
      double *q = o->f + a * len * inner + c;
      double m = -INFINITY, s = 0.0;
      for (int64_t j = 0; j < len; j++)
        if (p[j * inner] > m || p[j * inner] != p[j * inner]) m = p[j * inner];
      for (int64_t j = 0; j < len; j++) s += exp(p[j * inner] - m);
      for (int64_t j = 0; j < len; j++)
        q[j * inner] = n->op == IR_OP_SOFTMAX ? exp(p[j * inner] - m) / s : p[j * inner] - m - log(s);
    }
  return true;
}

/* softmax_bwd: dx = y (dy - sum(dy y)); log_softmax_bwd: dx = dy - exp(y) sum(dy) */
static bool op_softmax_bwd(const IrNode *n, const IrTensor *y, const IrTensor *dy, IrTensor *o) {
  int axis = (int)ir_get_int(n, "axis", y->shape.rank - 1);
  int64_t outer, len, inner;
  split3(&y->shape, axis, &outer, &len, &inner);
  for (int64_t a = 0; a < outer; a++)
    for (int64_t c = 0; c < inner; c++) {
      int64_t base = a * len * inner + c;
      double s = 0.0;
      for (int64_t j = 0; j < len; j++) {
        int64_t k = base + j * inner;
        s += n->op == IR_OP_SOFTMAX_BWD ? dy->f[k] * y->f[k] : dy->f[k];
      }
      for (int64_t j = 0; j < len; j++) {
        int64_t k = base + j * inner;
        o->f[k] = n->op == IR_OP_SOFTMAX_BWD ? y->f[k] * (dy->f[k] - s) : dy->f[k] - exp(y->f[k]) * s;
      }
    }
  return true;
}

/* ---- normalisation ---------------------------------------------------------------- */

/* Row statistics over the last axis: mean and 1/sqrt(biased var + eps) for
 * layernorm, 1/sqrt(mean(x^2) + eps) for rmsnorm (mean = 0). */
static void norm_stats(bool rms, const double *p, int64_t len, double eps, double *mean,
                       double *rstd) {
  double m = 0.0, v = 0.0;
  if (!rms) {
    for (int64_t j = 0; j < len; j++) m += p[j];
    m /= (double)len;
  }
  for (int64_t j = 0; j < len; j++) v += (p[j] - m) * (p[j] - m);
  v /= (double)len;
  *mean = m;
  *rstd = 1.0 / sqrt(v + eps);
}

/* layernorm / rmsnorm forward: (x - mean) * rstd * weight + bias */
static bool op_norm(const IrNode *n, IrTensor *const *args, int nargs, IrTensor *o) {
  const IrTensor *x = args[0];
  const double *w = nargs > 1 ? args[1]->f : NULL, *b = nargs > 2 ? args[2]->f : NULL;
  bool rms = n->op == IR_OP_RMSNORM;
  double eps = ir_get_float(n, "eps", 1e-5);
  int64_t len = x->shape.rank > 0 ? x->shape.dims[x->shape.rank - 1] : 1;
  int64_t rows = len > 0 ? x->numel / len : 0;
  for (int64_t r = 0; r < rows; r++) {
    const double *p = x->f + r * len;
    double m, rs;
    norm_stats(rms, p, len, eps, &m, &rs);
    for (int64_t j = 0; j < len; j++) {
      double v = (p[j] - m) * rs;
      if (w) v *= w[j];
      if (b) v += b[j];
      o->f[r * len + j] = v;
    }
  }
  return true;
}

/* layernorm_bwd_x / rmsnorm_bwd_x (dy, x, [w]) and *_bwd_w (dy, x) by the
 * formulas of ops.def: g = dy * w, xhat = (x - mean) * rstd;
 *   layernorm dx = rstd (g - mean(g) - xhat mean(g xhat)), dw = sum_rows dy xhat
 *   rmsnorm   dx = rstd g - x rstd^3 mean(g x),            dw = sum_rows dy x rstd */
static bool op_norm_bwd(const IrNode *n, IrTensor *const *args, int nargs, IrTensor *o) {
  const IrTensor *dy = args[0], *x = args[1];
  const double *w = nargs > 2 ? args[2]->f : NULL;
  bool rms = n->op == IR_OP_RMSNORM_BWD_X || n->op == IR_OP_RMSNORM_BWD_W;
  bool wgrad = n->op == IR_OP_LAYERNORM_BWD_W || n->op == IR_OP_RMSNORM_BWD_W;
  double eps = ir_get_float(n, "eps", 1e-5);
  int64_t len = x->shape.rank > 0 ? x->shape.dims[x->shape.rank - 1] : 1;
  int64_t rows = len > 0 ? x->numel / len : 0;
  for (int64_t r = 0; r < rows; r++) {
    const double *p = x->f + r * len, *d = dy->f + r * len;
    double m, rs, mg = 0.0, mgx = 0.0;
    norm_stats(rms, p, len, eps, &m, &rs);
    if (wgrad) {
      for (int64_t j = 0; j < len; j++) o->f[j] += d[j] * (p[j] - m) * rs;
      continue;
    }
    for (int64_t j = 0; j < len; j++) {
      double g = w ? d[j] * w[j] : d[j];
      mg += g;
      mgx += rms ? g * p[j] : g * (p[j] - m) * rs;
    }
    mg /= (double)len;
    mgx /= (double)len;
    for (int64_t j = 0; j < len; j++) {
      double g = w ? d[j] * w[j] : d[j];
      o->f[r * len + j] = rms ? rs * g - p[j] * rs * rs * rs * mgx
                              : rs * (g - mg - (p[j] - m) * rs * mgx);
    }
  }
  return true;
}

/* ---- embedding ---------------------------------------------------------------- */

static bool op_embedding(Interp *I, const IrTensor *table, const IrTensor *idx, IrTensor *o) {
  int64_t V = table->shape.dims[0], C = table->shape.dims[1];
  for (int64_t k = 0; k < idx->numel; k++) {
    int64_t v = idx->i[k];
    if (v < 0 || v >= V)
      return fail(I, "index %lld at position %lld is outside [0, %lld)", (long long)v,
                  (long long)k, (long long)V);
    memcpy(o->f + k * C, table->f + v * C, (size_t)C * sizeof(double));
  }
  return true;
}

/* embedding_bwd: dtable[v] = sum of dy rows whose index is v */
static bool op_embedding_bwd(Interp *I, const IrTensor *dy, const IrTensor *idx, IrTensor *o) {
  int64_t V = o->shape.dims[0], C = o->shape.dims[1];
  for (int64_t k = 0; k < idx->numel; k++) {
    int64_t v = idx->i[k];
    if (v < 0 || v >= V)
      return fail(I, "index %lld at position %lld is outside [0, %lld)", (long long)v,
                  (long long)k, (long long)V);
    for (int64_t c = 0; c < C; c++) o->f[v * C + c] += dy->f[k * C + c];
  }
  return true;
}

/* ---- convolution and pooling (NCHW) ------------------------------------------------ */

typedef struct ConvDims {
  int64_t N, C, H, W, OC, Cg, KH, KW, OH, OW, groups;
  int64_t st[2], pad[2];
} ConvDims;

/* The one loop nest of conv2d and both of its gradients: visits every
 * (n, oc, oh, ow, c, kh, kw) whose input cell is inside the image, so the
 * forward, dx and dw are three readings of the same sum. */
static void conv_loop(const ConvDims *cd, const double *x, const double *w, const double *dy,
                      double *out, double *dx, double *dw) {
  int64_t OCg = cd->OC / cd->groups;
  for (int64_t nn = 0; nn < cd->N; nn++)
    for (int64_t oc = 0; oc < cd->OC; oc++) {
      int64_t grp = oc / OCg;
      for (int64_t oh = 0; oh < cd->OH; oh++)
        for (int64_t ow = 0; ow < cd->OW; ow++) {
          int64_t ko = ((nn * cd->OC + oc) * cd->OH + oh) * cd->OW + ow;
          double acc = 0.0;
          for (int64_t c = 0; c < cd->Cg; c++)
            for (int64_t kh = 0; kh < cd->KH; kh++) {
              int64_t ih = oh * cd->st[0] - cd->pad[0] + kh;
              if (ih < 0 || ih >= cd->H) continue;
              for (int64_t kw = 0; kw < cd->KW; kw++) {
                int64_t iw = ow * cd->st[1] - cd->pad[1] + kw;
                if (iw < 0 || iw >= cd->W) continue;
                int64_t kx = ((nn * cd->C + grp * cd->Cg + c) * cd->H + ih) * cd->W + iw;
                int64_t kwt = ((oc * cd->Cg + c) * cd->KH + kh) * cd->KW + kw;
                if (out) acc += x[kx] * w[kwt];
                if (dx) dx[kx] += dy[ko] * w[kwt];
                if (dw) dw[kwt] += dy[ko] * x[kx];
              }
            }
          if (out) out[ko] += acc;
        }
    }
}

static void conv_attrs(const IrNode *n, ConvDims *cd) {
  get_pair(n, "stride", 1, 1, cd->st);
  get_pair(n, "padding", 0, 0, cd->pad);
  cd->groups = ir_get_int(n, "groups", 1);
}

static void conv_xdims(ConvDims *cd, const CkShape *xs) {
  cd->N = xs->dims[0];
  cd->C = xs->dims[1];
  cd->H = xs->dims[2];
  cd->W = xs->dims[3];
}

static void conv_wdims(ConvDims *cd, const CkShape *ws) {
  cd->OC = ws->dims[0];
  cd->Cg = ws->dims[1];
  cd->KH = ws->dims[2];
  cd->KW = ws->dims[3];
}

/* conv2d forward (x, w, [b]); conv2d_bwd_x (dy, w); conv2d_bwd_w (dy, x) */
static bool op_conv(const IrNode *n, IrTensor *const *args, int nargs, IrTensor *o) {
  ConvDims cd;
  conv_attrs(n, &cd);
  if (n->op == IR_OP_CONV2D) {
    conv_xdims(&cd, &args[0]->shape);
    conv_wdims(&cd, &args[1]->shape);
    cd.OH = o->shape.dims[2];
    cd.OW = o->shape.dims[3];
    conv_loop(&cd, args[0]->f, args[1]->f, NULL, o->f, NULL, NULL);
    if (nargs > 2) {
      int64_t plane = cd.OH * cd.OW;
      for (int64_t k = 0; k < o->numel; k++) o->f[k] += args[2]->f[(k / plane) % cd.OC];
    }
    return true;
  }
  const IrTensor *dy = args[0];
  cd.OH = dy->shape.dims[2];
  cd.OW = dy->shape.dims[3];
  if (n->op == IR_OP_CONV2D_BWD_X) {
    conv_xdims(&cd, &o->shape);
    conv_wdims(&cd, &args[1]->shape);
    conv_loop(&cd, NULL, args[1]->f, dy->f, NULL, o->f, NULL);
  } else {
    conv_xdims(&cd, &args[1]->shape);
    conv_wdims(&cd, &o->shape);
    conv_loop(&cd, args[1]->f, NULL, dy->f, NULL, NULL, o->f);
  }
  return true;
}

/* maxpool2d / avgpool2d and their gradients. Max: padding is -inf, the
 * forward propagates NaN; the gradient goes to the first maximum of the
 * window in (kh, kw) order, or the last NaN. Avg: the divisor counts padding
 * cells (count_include_pad), clipped at the padded border as PyTorch does. */
static bool op_pool(const IrNode *n, IrTensor *const *args, IrTensor *o) {
  bool is_max = n->op == IR_OP_MAXPOOL2D || n->op == IR_OP_MAXPOOL2D_BWD;
  bool bwd = n->op == IR_OP_MAXPOOL2D_BWD || n->op == IR_OP_AVGPOOL2D_BWD;
  const IrTensor *dy = bwd ? args[0] : NULL;
  const IrTensor *x = n->op == IR_OP_AVGPOOL2D_BWD ? NULL : (bwd ? args[1] : args[0]);
  const CkShape *xs = bwd ? &o->shape : &x->shape, *os = bwd ? &dy->shape : &o->shape;
  int64_t k[2], st[2], pad[2];
  get_pair(n, "kernel", 1, 1, k);
  get_pair(n, "stride", k[0], k[1], st);
  get_pair(n, "padding", 0, 0, pad);
  int64_t NC = xs->dims[0] * xs->dims[1], H = xs->dims[2], W = xs->dims[3];
  int64_t OH = os->dims[2], OW = os->dims[3];
  for (int64_t nc = 0; nc < NC; nc++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        int64_t ko = (nc * OH + oh) * OW + ow;
        int64_t h0 = oh * st[0] - pad[0], w0 = ow * st[1] - pad[1];
        int64_t h1 = h0 + k[0] < H + pad[0] ? h0 + k[0] : H + pad[0];
        int64_t w1 = w0 + k[1] < W + pad[1] ? w0 + k[1] : W + pad[1];
        double cnt = (double)((h1 - h0) * (w1 - w0));
        double acc = 0.0, m = -INFINITY;
        int64_t best = -1;
        bool nan_seen = false;
        for (int64_t ih = h0; ih < h0 + k[0]; ih++) {
          if (ih < 0 || ih >= H) continue;
          for (int64_t iw = w0; iw < w0 + k[1]; iw++) {
            if (iw < 0 || iw >= W) continue;
            int64_t kx = (nc * H + ih) * W + iw;
            if (!is_max) {
              if (bwd)
                o->f[kx] += dy->f[ko] / cnt;
              else
                acc += x->f[kx];
              continue;
            }
            double v = x->f[kx];
            if (v != v) {
              nan_seen = true;
              best = kx;
              m = v;
            } else if (!nan_seen && (best < 0 || v > m)) {
              best = kx;
              m = v;
            }
          }
        }
        if (bwd) {
          if (is_max && best >= 0) o->f[best] += dy->f[ko];
        } else {
          o->f[ko] = is_max ? m : acc / cnt;
        }
      }
  return true;
}

/* ---- attention ------------------------------------------------------------------------ */

/* The probabilities of query row i: softmax(scale q_i k^T + mask), causal
 * keys j <= i + (S - T) when S > T, j <= i otherwise (rt-min's rule). */
static void attn_probs(const double *q, const double *kk, int64_t i, int64_t T, int64_t S,
                       int64_t D, int causal, double scale, double *p) {
  int64_t off = S > T ? S - T : 0, jend = causal ? (i + off + 1 < S ? i + off + 1 : S) : S;
  double m = -INFINITY, s = 0.0;
  for (int64_t j = 0; j < S; j++) {
    if (j >= jend) {
      p[j] = 0.0;
      continue;
    }
    double acc = 0.0;
    for (int64_t d = 0; d < D; d++) acc += q[i * D + d] * kk[j * D + d];
    p[j] = acc * scale;
    if (p[j] > m) m = p[j];
  }
  for (int64_t j = 0; j < jend; j++) {
    p[j] = exp(p[j] - m);
    s += p[j];
  }
  for (int64_t j = 0; j < jend; j++) p[j] /= s;
}

/* attention (q, k, v) and attention_bwd_{q,k,v} (dout, q, k, v) */
static bool op_attention(Interp *I, const IrNode *n, IrTensor *const *args, IrTensor *o) {
  bool bwd = n->op != IR_OP_ATTENTION;
  const IrTensor *dout = bwd ? args[0] : NULL;
  const IrTensor *q = args[bwd], *kt = args[bwd + 1], *v = args[bwd + 2];
  int r = q->shape.rank;
  int64_t T = q->shape.dims[r - 2], D = q->shape.dims[r - 1], S = kt->shape.dims[r - 2];
  int64_t Dv = v->shape.dims[r - 1];
  int64_t batch = T * D > 0 ? q->numel / (T * D) : 0;
  int causal = (int)ir_get_int(n, "causal", 1);
  double scale = ir_get_float(n, "scale", D > 0 ? 1.0 / sqrt((double)D) : 1.0);
  double *p = CKC_NEW_ARRAY(I->a, double, S > 0 ? S : 1);
  double *ds = CKC_NEW_ARRAY(I->a, double, S > 0 ? S : 1);
  for (int64_t b = 0; b < batch; b++) {
    const double *qb = q->f + b * T * D, *kb = kt->f + b * S * D, *vb = v->f + b * S * Dv;
    double *ob = o->f + b * (n->op == IR_OP_ATTENTION_BWD_K ? S * D
                             : n->op == IR_OP_ATTENTION_BWD_V ? S * Dv
                             : n->op == IR_OP_ATTENTION_BWD_Q ? T * D
                                                              : T * Dv);
    for (int64_t i = 0; i < T; i++) {
      attn_probs(qb, kb, i, T, S, D, causal, scale, p);
      if (!bwd) {
        for (int64_t e = 0; e < Dv; e++) {
          double acc = 0.0;
          for (int64_t j = 0; j < S; j++) acc += p[j] * vb[j * Dv + e];
          ob[i * Dv + e] = acc;
        }
        continue;
      }
      const double *db = dout->f + b * T * Dv + i * Dv;
      double dot = 0.0;
      for (int64_t j = 0; j < S; j++) {
        double dp = 0.0;
        for (int64_t e = 0; e < Dv; e++) dp += db[e] * vb[j * Dv + e];
        ds[j] = dp;
        dot += p[j] * dp;
      }
      for (int64_t j = 0; j < S; j++) ds[j] = p[j] * (ds[j] - dot);
      for (int64_t j = 0; j < S; j++) {
        if (n->op == IR_OP_ATTENTION_BWD_V)
          for (int64_t e = 0; e < Dv; e++) ob[j * Dv + e] += p[j] * db[e];
        else if (n->op == IR_OP_ATTENTION_BWD_K)
          for (int64_t d = 0; d < D; d++) ob[j * D + d] += scale * ds[j] * qb[i * D + d];
        else
          for (int64_t d = 0; d < D; d++) ob[i * D + d] += scale * ds[j] * kb[j * D + d];
      }
    }
  }
  return true;
}

/* ---- losses ---------------------------------------------------------------------------- */

/* cross_entropy and its gradient, by the formulas of ops.def: rows are all
 * but the last (class) axis; ignored rows contribute nothing and do not
 * count in the mean; a target outside [0, V) is an error (torch raises). */
static bool op_cross_entropy(Interp *I, const IrNode *n, IrTensor *const *args, IrTensor *o) {
  bool bwd = n->op == IR_OP_CROSS_ENTROPY_BWD;
  const IrTensor *x = args[bwd], *t = args[bwd + 1];
  double dl = bwd ? args[0]->f[0] : 0.0;
  int64_t ign = ir_get_int(n, "ignore_index", -100);
  double eps = ir_get_float(n, "label_smoothing", 0.0);
  int64_t V = x->shape.dims[x->shape.rank - 1], R = V > 0 ? x->numel / V : 0, cnt = 0;
  double total = 0.0;
  for (int64_t r = 0; r < R; r++) {
    int64_t tr = t->i[r];
    if (tr == ign) continue;
    if (tr < 0 || tr >= V)
      return fail(I, "target %lld of row %lld is outside [0, %lld)", (long long)tr, (long long)r,
                  (long long)V);
    cnt++;
  }
  for (int64_t r = 0; r < R; r++) {
    int64_t tr = t->i[r];
    if (tr == ign) continue;
    const double *p = x->f + r * V;
    double m = -INFINITY, s = 0.0, mean = 0.0;
    for (int64_t j = 0; j < V; j++)
      if (p[j] > m || p[j] != p[j]) m = p[j];
    for (int64_t j = 0; j < V; j++) {
      s += exp(p[j] - m);
      mean += p[j];
    }
    double lse = m + log(s);
    mean /= (double)V;
    if (!bwd) {
      total += (1.0 - eps) * (lse - p[tr]) + eps * (lse - mean);
      continue;
    }
    for (int64_t j = 0; j < V; j++)
      o->f[r * V + j] =
          dl / (double)cnt * (exp(p[j] - lse) - (1.0 - eps) * (j == tr) - eps / (double)V);
  }
  if (!bwd) o->f[0] = total / (double)cnt; /* 0/0 = NaN when every row is ignored */
  return true;
}

/* mse = mean((a-b)^2); bce_with_logits = mean(max(x,0) - x y + log1p(exp(-|x|))) */
static bool op_loss_pair(const IrNode *n, const IrTensor *x, const IrTensor *y, IrTensor *o) {
  double acc = 0.0;
  for (int64_t k = 0; k < x->numel; k++) {
    double a = x->f[k], b = y->f[k];
    if (n->op == IR_OP_MSE)
      acc += (a - b) * (a - b);
    else
      acc += (a > 0 ? a : 0.0) - a * b + log1p(exp(-fabs(a)));
  }
  o->f[0] = acc / (double)x->numel;
  return true;
}

/* ---- the evaluator ------------------------------------------------------------------------ */

/* ---- fused ops (passes/fusion.c; ir/fused.h) ------------------------------------------- */

/* fused_ew / fused_matmul epilogue: the body program evaluated per result
 * element over its operands broadcast to the result (ops[k] is program
 * operand $k), each instruction with its single op's semantics, so a fused
 * graph and its unfused original give the same doubles. */
static bool op_fused_body(Interp *I, const IrNode *n, const IrTensor *const *ops, int nops, IrTensor *o) {
  IrFusedProg *p = CKC_NEW(I->a, IrFusedProg);
  char why[160];
  if (!ir_fused_parse(ir_get_str(n, "body", NULL), nops, p, why, sizeof why)) return fail(I, "%s", why);
  if (!o->f) return fail(I, "fused result must be a float");
  int64_t *st = CKC_NEW_ARRAY(I->a, int64_t, (nops > 0 ? nops : 1) * CK_MAX_RANK);
  for (int k = 0; k < nops; k++) bcast_strides(&ops[k]->shape, &o->shape, st + k * CK_MAX_RANK);
  double v[IR_FUSED_MAX_INSTR], x[IR_FUSED_MAX_INPUTS];
  for (int64_t e = 0; e < o->numel; e++) {
    for (int k = 0; k < nops; k++) x[k] = ir_tensor_get(ops[k], strided_off(e, &o->shape, st + k * CK_MAX_RANK));
    for (int q = 0; q < p->n; q++) {
      const IrFusedInstr *in = &p->ins[q];
      double a[3] = {0, 0, 0};
      for (int j = 0; j < in->nargs; j++) a[j] = in->arg[j] < 0 ? x[-1 - in->arg[j]] : v[in->arg[j]];
      if (in->op == IR_OP_WHERE)
        v[q] = a[0] != 0.0 ? a[1] : a[2];
      else if (is_compare(in->op))
        v[q] = compare(in->op, a[0], a[1]);
      else if (in->nargs == 2)
        v[q] = f_binary(in->op, a[0], a[1]);
      else
        v[q] = f_unary_op(in->op, in->gelu_tanh, a[0]);
    }
    o->f[e] = v[p->n - 1];
  }
  return true;
}

static bool op_fused(Interp *I, const IrNode *n, IrTensor *const *args, int nargs, IrTensor *o) {
  if (n->op == IR_OP_FUSED_EW) {
    if (nargs > IR_FUSED_MAX_INPUTS) return fail(I, "too many fused operands");
    return op_fused_body(I, n, (const IrTensor *const *)args, nargs, o);
  }
  if (nargs - 1 > IR_FUSED_MAX_INPUTS) return fail(I, "too many fused operands");
  IrTensor prod = ir_tensor_new(I->a, n->dtype, &n->shape);
  if (!op_matmul(n, args[0], args[1], &prod)) return false;
  const IrTensor *ops[IR_FUSED_MAX_INPUTS];
  ops[0] = &prod;
  for (int k = 2; k < nargs; k++) ops[k - 1] = args[k];
  return op_fused_body(I, n, ops, nargs - 1, o);
}

static bool eval_graph(Interp *I, const IrGraph *g, const IrTensor *inputs, IrTensor *outputs);

/* A leaf: inputs by position, parameters through the caller's lookup (with
 * the instance prefix inside a CALL), constants from the splat or the data. */
static bool eval_leaf(Interp *I, const IrNode *n, const IrGraph *g, const IrTensor *inputs,
                      IrTensor *out) {
  const IrTensor *src = NULL;
  if (n->op == IR_OP_INPUT) {
    int64_t idx = ir_get_int(n, "index", -1);
    if (idx < 0 || idx >= g->inputs.len) return fail(I, "input index %lld out of range", (long long)idx);
    src = &inputs[idx];
  } else if (n->op == IR_OP_PARAM) {
    const char *name = n->name ? n->name : "?";
    if (I->prefix) name = ckc_arena_printf(I->a, "%s.%s", I->prefix, name);
    src = I->params ? I->params(I->ctx, name) : NULL;
    if (!src) return fail(I, "no value for parameter '%s'", name);
  } else {
    *out = ir_tensor_new(I->a, n->dtype, &n->shape);
    const IrAttr *v = ir_find_attr(n, "value");
    for (int64_t k = 0; k < out->numel; k++) {
      double d = 0.0;
      if (!n->data && v) {
        d = v->kind == IR_ATTR_FLOAT ? v->f : (double)v->i;
      } else if (n->data) {
        switch (n->dtype) {
        case CK_DT_F32: d = ((const float *)n->data)[k]; break;
        case CK_DT_F64: d = ((const double *)n->data)[k]; break;
        case CK_DT_I32: d = ((const int32_t *)n->data)[k]; break;
        default: d = ((const uint8_t *)n->data)[k]; break;
        }
      }
      if (out->f)
        out->f[k] = d;
      else
        out->i[k] = n->dtype == CK_DT_BOOL ? d != 0.0 : (int32_t)d;
    }
    return true;
  }
  char want[96], got[96];
  if ((src->f == NULL) != !ck_dtype_is_float(n->dtype) || !ck_shape_eq(&src->shape, &n->shape) ||
      (src->numel > 0 && !src->f && !src->i))
    return fail(I, "value of type %s given for %s", ck_type_str(src->dtype, &src->shape, got, sizeof got),
                ck_type_str(n->dtype, &n->shape, want, sizeof want));
  *out = *src;
  out->dtype = n->dtype;
  out->numel = ck_shape_numel_unchecked(&n->shape);
  return true;
}

/* The ops this interpreter gives a meaning to: every row of ops.def when
 * it was written. A row added later answers false until its semantics are
 * written here (check_interp.c asserts the whole table, so a row cannot be
 * half-registered unnoticed). */
bool ir_interp_supports(IrOp op) {
  switch (op) {
  case IR_OP_INPUT: case IR_OP_PARAM: case IR_OP_CONST: case IR_OP_CALL:
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAXIMUM:
  case IR_OP_MINIMUM: case IR_OP_POW: case IR_OP_NEG: case IR_OP_ABS: case IR_OP_EXP:
  case IR_OP_LOG: case IR_OP_SQRT: case IR_OP_RSQRT: case IR_OP_TANH: case IR_OP_SIGMOID:
  case IR_OP_RELU: case IR_OP_GELU: case IR_OP_SILU: case IR_OP_CAST: case IR_OP_LT:
  case IR_OP_LE: case IR_OP_GT: case IR_OP_GE: case IR_OP_EQ: case IR_OP_NE: case IR_OP_WHERE:
  case IR_OP_MATMUL: case IR_OP_PERMUTE: case IR_OP_RESHAPE: case IR_OP_BROADCAST:
  case IR_OP_SLICE: case IR_OP_CONCAT: case IR_OP_SUM: case IR_OP_MEAN: case IR_OP_MAX:
  case IR_OP_ARGMAX: case IR_OP_SOFTMAX: case IR_OP_LOG_SOFTMAX: case IR_OP_LAYERNORM:
  case IR_OP_RMSNORM: case IR_OP_EMBEDDING: case IR_OP_CONV2D: case IR_OP_MAXPOOL2D:
  case IR_OP_AVGPOOL2D: case IR_OP_ATTENTION: case IR_OP_STOP_GRADIENT: case IR_OP_ERF:
  case IR_OP_CROSS_ENTROPY: case IR_OP_MSE: case IR_OP_BCE_WITH_LOGITS:
  case IR_OP_CROSS_ENTROPY_BWD: case IR_OP_SOFTMAX_BWD: case IR_OP_LOG_SOFTMAX_BWD:
  case IR_OP_MAX_BWD: case IR_OP_LAYERNORM_BWD_X: case IR_OP_LAYERNORM_BWD_W:
  case IR_OP_RMSNORM_BWD_X: case IR_OP_RMSNORM_BWD_W: case IR_OP_EMBEDDING_BWD:
  case IR_OP_CONV2D_BWD_X: case IR_OP_CONV2D_BWD_W: case IR_OP_MAXPOOL2D_BWD:
  case IR_OP_AVGPOOL2D_BWD: case IR_OP_ATTENTION_BWD_Q: case IR_OP_ATTENTION_BWD_K:
  case IR_OP_ATTENTION_BWD_V: case IR_OP_SLICE_BWD:
  case IR_OP_FUSED_EW: case IR_OP_FUSED_MATMUL:
    return true;
  default:
    return false;
  }
}

/* What an operand must hold: 'i' integer indices (embedding, cross_entropy
 * targets), 'f' floats (every kernel op: the interpreter has no integer
 * matmul, softmax...), '?' either (elementwise, data movement, sum, max,
 * argmax, where's branches, cast). */
static char operand_kind(IrOp op, int k) {
  switch (op) {
  case IR_OP_EMBEDDING: case IR_OP_EMBEDDING_BWD: case IR_OP_CROSS_ENTROPY: return k == 1 ? 'i' : 'f';
  case IR_OP_CROSS_ENTROPY_BWD: return k == 2 ? 'i' : 'f';
  case IR_OP_WHERE: return k == 0 ? 'i' : '?';
  case IR_OP_FUSED_MATMUL: return k < 2 ? 'f' : '?';
  case IR_OP_FUSED_EW: return '?';
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV: case IR_OP_MAXIMUM:
  case IR_OP_MINIMUM: case IR_OP_POW: case IR_OP_NEG: case IR_OP_ABS: case IR_OP_CAST:
  case IR_OP_LT: case IR_OP_LE: case IR_OP_GT: case IR_OP_GE: case IR_OP_EQ: case IR_OP_NE:
  case IR_OP_PERMUTE: case IR_OP_RESHAPE: case IR_OP_BROADCAST: case IR_OP_SLICE:
  case IR_OP_SLICE_BWD: case IR_OP_CONCAT: case IR_OP_SUM: case IR_OP_MAX: case IR_OP_ARGMAX:
  case IR_OP_STOP_GRADIENT: case IR_OP_CALL:
    return '?';
  default: return 'f';
  }
}

/* One op: checks the storage class of every operand (so a malformed graph
 * is an error, not a wild read), allocates the result and dispatches. */
static bool eval_op(Interp *I, const IrNode *n, IrTensor *const *args, int nargs, IrTensor *out) {
  const IrOpInfo *info = &ir_op_info[n->op];
  if (!ir_interp_supports(n->op))
    return fail(I, "the reference interpreter does not implement op '%s'", ir_op_name(n->op));
  if (nargs < info->min_in || (info->max_in >= 0 && nargs > info->max_in))
    return fail(I, "takes %d..%d operands, got %d", info->min_in, info->max_in, nargs);
  if (n->op == IR_OP_CALL) {
    if (!n->callee) return fail(I, "call without a callee");
    if (n->callee->inputs.len != nargs || n->callee->outputs.len < 1)
      return fail(I, "call of '%s' with %d arguments", n->callee->name, nargs);
    if (I->depth > 64) return fail(I, "calls nested too deeply");
    Interp sub = *I;
    sub.depth = I->depth + 1;
    sub.node = NULL;
    const char *pfx = n->prefix && *n->prefix ? n->prefix : NULL;
    sub.prefix = I->prefix && pfx ? ckc_arena_printf(I->a, "%s.%s", I->prefix, pfx)
                                  : (pfx ? pfx : I->prefix);
    IrTensor *ins = CKC_NEW_ARRAY(I->a, IrTensor, nargs > 0 ? nargs : 1);
    for (int k = 0; k < nargs; k++) ins[k] = *args[k];
    IrTensor *outs = CKC_NEW_ARRAY(I->a, IrTensor, n->callee->outputs.len);
    if (!eval_graph(&sub, n->callee, ins, outs)) return false;
    *out = outs[0];
    return true;
  }
  for (int k = 0; k < nargs; k++) {
    const IrTensor *t = args[k];
    bool want_f = ck_dtype_is_float(n->in[k]->dtype);
    char kind = operand_kind(n->op, k);
    if ((want_f != (t->f != NULL) || (!t->f && !t->i)) && t->numel > 0)
      return fail(I, "operand %d has the wrong storage", k);
    if ((kind == 'f' && !want_f) || (kind == 'i' && want_f))
      return fail(I, "operand %d must be %s, got %s", k, kind == 'f' ? "float" : "integer",
                  ck_dtype_name(n->in[k]->dtype));
  }
  *out = ir_tensor_new(I->a, n->dtype, &n->shape);

  switch (n->op) {
  case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_DIV:
  case IR_OP_MAXIMUM: case IR_OP_MINIMUM: case IR_OP_POW:
  case IR_OP_LT: case IR_OP_LE: case IR_OP_GT: case IR_OP_GE: case IR_OP_EQ: case IR_OP_NE:
    if ((args[0]->f == NULL) != (args[1]->f == NULL)) return fail(I, "mixed float and integer operands");
    return op_binary(I, n, args[0], args[1], out);
  case IR_OP_NEG: case IR_OP_ABS: case IR_OP_EXP: case IR_OP_LOG: case IR_OP_SQRT:
  case IR_OP_RSQRT: case IR_OP_TANH: case IR_OP_SIGMOID: case IR_OP_RELU: case IR_OP_GELU:
  case IR_OP_SILU: case IR_OP_ERF:
    return op_unary(I, n, args[0], out);
  case IR_OP_CAST: return op_cast(I, args[0], out);
  case IR_OP_WHERE:
    if ((args[1]->f == NULL) != (args[2]->f == NULL)) return fail(I, "mixed float and integer operands");
    return op_where(args[0], args[1], args[2], out);
  case IR_OP_MATMUL: return op_matmul(n, args[0], args[1], out);
  case IR_OP_PERMUTE: return op_permute(I, n, args[0], out);
  case IR_OP_RESHAPE:
  case IR_OP_STOP_GRADIENT:
    if (args[0]->numel != out->numel) return fail(I, "element counts differ");
    for (int64_t k = 0; k < out->numel; k++) copy_el(out, k, args[0], k);
    return true;
  case IR_OP_BROADCAST: return op_broadcast(args[0], out);
  case IR_OP_SLICE: return op_slice(n, args[0], out);
  case IR_OP_SLICE_BWD: return op_slice_bwd(n, args[0], out);
  case IR_OP_CONCAT: return op_concat(n, args, nargs, out);
  case IR_OP_SUM: case IR_OP_MEAN: case IR_OP_MAX: return op_reduce(I, n, args[0], out);
  case IR_OP_ARGMAX: return op_argmax(n, args[0], out);
  case IR_OP_MAX_BWD: return op_max_bwd(n, args[0], args[1], out);
  case IR_OP_SOFTMAX: case IR_OP_LOG_SOFTMAX: return op_softmax(n, args[0], out);
  case IR_OP_SOFTMAX_BWD: case IR_OP_LOG_SOFTMAX_BWD: return op_softmax_bwd(n, args[0], args[1], out);
  case IR_OP_LAYERNORM: case IR_OP_RMSNORM: return op_norm(n, args, nargs, out);
  case IR_OP_LAYERNORM_BWD_X: case IR_OP_LAYERNORM_BWD_W:
  case IR_OP_RMSNORM_BWD_X: case IR_OP_RMSNORM_BWD_W:
    return op_norm_bwd(n, args, nargs, out);
  case IR_OP_EMBEDDING: return op_embedding(I, args[0], args[1], out);
  case IR_OP_EMBEDDING_BWD: return op_embedding_bwd(I, args[0], args[1], out);
  case IR_OP_CONV2D: case IR_OP_CONV2D_BWD_X: case IR_OP_CONV2D_BWD_W:
    return op_conv(n, args, nargs, out);
  case IR_OP_MAXPOOL2D: case IR_OP_AVGPOOL2D: case IR_OP_MAXPOOL2D_BWD: case IR_OP_AVGPOOL2D_BWD:
    return op_pool(n, args, out);
  case IR_OP_ATTENTION: case IR_OP_ATTENTION_BWD_Q: case IR_OP_ATTENTION_BWD_K:
  case IR_OP_ATTENTION_BWD_V:
    return op_attention(I, n, args, out);
  case IR_OP_CROSS_ENTROPY: case IR_OP_CROSS_ENTROPY_BWD: return op_cross_entropy(I, n, args, out);
  case IR_OP_MSE: case IR_OP_BCE_WITH_LOGITS: return op_loss_pair(n, args[0], args[1], out);
  case IR_OP_FUSED_EW: case IR_OP_FUSED_MATMUL: return op_fused(I, n, args, nargs, out);
  default: /* ir_interp_supports and this switch disagree: a bug here */
    return fail(I, "op '%s' is listed as supported but has no case", ir_op_name(n->op));
  }
}

/* Walks the nodes in their (topological) order, skipping those no output
 * depends on (a dead node's bad data must not fail the run); a value is kept
 * per node id, so an operand that was not computed yet is reported, not read. */
static bool eval_graph(Interp *I, const IrGraph *g, const IrTensor *inputs, IrTensor *outputs) {
  int nid = g->next_id > 0 ? g->next_id : 1;
  IrTensor *vals = CKC_NEW_ARRAY(I->a, IrTensor, nid);
  bool *have = CKC_NEW_ARRAY(I->a, bool, nid);
  bool *live = CKC_NEW_ARRAY(I->a, bool, nid);
  IrTensor **args = NULL;
  int cap = 0;
  for (int k = 0; k < g->outputs.len; k++) {
    const IrNode *o = g->outputs.items[k];
    if (o && o->id >= 0 && o->id < nid) live[o->id] = true;
  }
  for (int q = g->nodes.len - 1; q >= 0; q--) {
    const IrNode *n = g->nodes.items[q];
    if (n->id < 0 || n->id >= nid || !live[n->id]) continue;
    for (int k = 0; k < n->nin; k++)
      if (n->in[k] && n->in[k]->id >= 0 && n->in[k]->id < nid) live[n->in[k]->id] = true;
  }
  for (int q = 0; q < g->nodes.len; q++) {
    const IrNode *n = g->nodes.items[q];
    I->node = n;
    if (n->id < 0 || n->id >= nid) return fail(I, "node id out of range");
    if (!live[n->id]) continue;
    if ((unsigned)n->op >= IR_OP_COUNT) return fail(I, "unknown op %d", (int)n->op);
    if (ir_op_info[n->op].flags & IR_OPF_LEAF) {
      if (!eval_leaf(I, n, g, inputs, &vals[n->id])) return false;
    } else {
      if (n->nin > cap) {
        cap = n->nin * 2;
        args = CKC_NEW_ARRAY(I->a, IrTensor *, cap);
      }
      for (int k = 0; k < n->nin; k++) {
        const IrNode *p = n->in[k];
        if (!p || p->id < 0 || p->id >= nid || !have[p->id])
          return fail(I, "operand %d is not computed before its use", k);
        args[k] = &vals[p->id];
      }
      if (!eval_op(I, n, args, n->nin, &vals[n->id])) return false;
      I->node = n;
    }
    have[n->id] = true;
  }
  I->node = NULL;
  for (int k = 0; k < g->outputs.len; k++) {
    const IrNode *o = g->outputs.items[k];
    if (!o || o->id < 0 || o->id >= nid || !have[o->id])
      return fail(I, "graph '%s': output %d is not computed", g->name ? g->name : "?", k);
    outputs[k] = vals[o->id];
  }
  return true;
}

bool ir_interp_run(const IrGraph *g, CkcArena *a, const IrTensor *inputs, IrInterpParamFn params,
                   void *ctx, IrTensor *outputs, char *err, size_t errlen) {
  Interp I;
  memset(&I, 0, sizeof I);
  I.a = a;
  I.params = params;
  I.ctx = ctx;
  I.err = err;
  I.errlen = errlen;
  if (err && errlen > 0) err[0] = 0;
  if (!g) return fail(&I, "no graph");
  if (g->inputs.len > 0 && !inputs) return fail(&I, "graph '%s' needs %d inputs", g->name, g->inputs.len);
  return eval_graph(&I, g, inputs, outputs);
}
