/* lower/lower.c - flat entry graph -> LowerProgram (steps over buffers).
 *
 * Walks the entry graph in node order. Elementwise ops become loop nests
 * whose broadcasting is resolved here, at compile time: unit dims are dropped
 * and neighbouring dims that every operand treats alike are collapsed, so the
 * emitted nest has as few loops as the broadcast pattern allows. Every other
 * op becomes one call (or a few) of a ck_kernels.h function with collapsed
 * extents. RESHAPE is a view: the same storage under a new shape. */
#include "lower/lower.h"
#include "lower/fused.h"

#include <math.h>
#include <string.h>

typedef struct LowerCtx {
  LowerProgram *p;
  CkcArena *a;
  CkcDiag *d;
  bool ok;
  LowerBuf **map;          /* node id -> buffer */
  LowerBuf **splat_mat;    /* node id -> materialised splat constant (kernels need memory) */
  int nmap;
  CKC_VEC(const char *) names; /* C identifiers taken inside the entry function */
  const char *const *extra;    /* the entry function's own parameter names */
  const IrNode *direct_out;    /* the output node computed straight into p->out */
  int node_first_step;         /* index of the first step of the node being lowered */
} LowerCtx;

/* Parameter names of each entry function beyond params/arena (a value of
 * the graph may not take them). */
static const char *const lower_params_forward[] = {"out", NULL};
static const char *const lower_params_loss[] = {"loss", "logits", "data_x", "data_y", "arena_mem", NULL};
static const char *const lower_params_train[] = {"loss", "grads", "data_x", "data_y", "arena_mem", NULL};
static const char *const lower_params_decode[] = {"logits", "cache", "pos", NULL};

/* ---- names ------------------------------------------------------------------------ */

/* Identifiers the forward function or C itself already uses: a value may not
 * take them, whatever the source called it. */
static const char *const lower_reserved[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict",
    "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "_Bool", "bool", "true", "false", "params", "arena",
    "out", "rc", "memcpy", "memset", "NULL", "size_t", "int32_t", "int64_t", "uint8_t", "expf", "logf",
    "sqrtf", "tanhf", "fabsf", "powf", "erff", "exp", "log", "sqrt", "tanh", "fabs", "pow", "erf",
    "main", "errno", "HUGE_VALF", "HUGE_VAL", "NAN", "INFINITY", NULL};

static bool lower_name_taken(LowerCtx *c, const char *s) {
  for (int i = 0; lower_reserved[i]; i++)
    if (strcmp(lower_reserved[i], s) == 0) return true;
  for (int i = 0; c->extra && c->extra[i]; i++)
    if (strcmp(c->extra[i], s) == 0) return true;
  /* loop indices i0.., body locals e0.., constant arrays k0.. */
  if ((s[0] == 'i' || s[0] == 'e' || s[0] == 'k') && s[1]) {
    const char *q = s + 1;
    while (*q >= '0' && *q <= '9') q++;
    if (!*q) return true;
  }
  if (strncmp(s, "ck_", 3) == 0) return true;
  /* the API's own names (<PREFIX>_* macros are kept off in lower_cname) */
  size_t pl = strlen(c->p->prefix);
  if (strncmp(s, c->p->prefix, pl) == 0 &&
      (strcmp(s + pl, "_forward") == 0 || strcmp(s + pl, "_params") == 0 ||
       strcmp(s + pl, "_loss") == 0 || strcmp(s + pl, "_train_step") == 0 || strcmp(s + pl, "_decode") == 0))
    return true;
  for (int i = 0; i < c->names.len; i++)
    if (strcmp(c->names.items[i], s) == 0) return true;
  return false;
}

/* Dotted source name -> unique C identifier: blocks.0.attn.q -> blocks_0_attn_q;
 * a clash gets _2, _3, ... in the order values are met (deterministic). */
static const char *lower_cname(LowerCtx *c, const char *name, int id) {
  char base[200];
  if (name && *name) {
    size_t j = 0;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
          name[0] == '_'))
      base[j++] = 'v';
    for (size_t i = 0; name[i] && j < sizeof base - 16; i++) {
      char ch = name[i];
      bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
      base[j++] = ok ? ch : '_';
    }
    base[j] = '\0';
  } else {
    snprintf(base, sizeof base, "t%d", id);
  }
  size_t ul = strlen(c->p->upper);
  const char *s = ckc_arena_strdup(c->a, base);
  if (strncmp(base, c->p->upper, ul) == 0 && base[ul] == '_') s = ckc_arena_printf(c->a, "v_%s", base);
  const char *stem = s;
  for (int k = 2; lower_name_taken(c, s); k++) s = ckc_arena_printf(c->a, "%s_%d", stem, k);
  CKC_VEC_PUSH(c->a, c->names, s);
  return s;
}

LowerBuf *lower_buf_root(LowerBuf *b) {
  while (b && b->kind == LOWER_BUF_ALIAS) b = b->alias_of;
  return b;
}

static LowerBuf *lower_new_buf(LowerCtx *c, LowerBufKind kind, const IrNode *n, CkDType dt,
                               const CkShape *s, const char *name) {
  LowerBuf *b = CKC_NEW(c->a, LowerBuf);
  b->id = c->p->bufs.len;
  b->kind = kind;
  b->name = name;
  b->dtype = dt;
  b->shape = *s;
  b->numel = ck_shape_numel_unchecked(s);
  b->bytes = b->numel * (int64_t)ck_dtype_size(dt);
  b->node = n;
  b->first_def = b->last_use = -1;
  b->index_input = -1;
  b->cname = lower_cname(c, name, n ? n->id : b->id);
  CKC_VEC_PUSH(c->a, c->p->bufs, b);
  return b;
}

static LowerStep *lower_new_step(LowerCtx *c, LowerStepKind kind, const IrNode *n, LowerBuf *out) {
  LowerStep *s = CKC_NEW(c->a, LowerStep);
  s->kind = kind;
  s->node = n;
  s->out = out;
  s->check_input = -1;
  CKC_VEC_PUSH(c->a, c->p->steps, s);
  return s;
}

static bool lower_unsupported(LowerCtx *c, const IrNode *n, const char *why) {
  char ty[128];
  c->ok = false;
  return ckc_error(c->d, n->loc, "E0910", "target %s cannot run %s on %s: %s", c->p->target->name,
                   ir_op_name(n->op), ck_type_str(n->dtype, &n->shape, ty, sizeof ty), why);
}

/* ---- loop nests with compile-time broadcasting -------------------------------------- */

/* NumPy broadcasting resolved into a collapsed loop nest. Operand k has
 * shape (ranks[k], dims[k]) aligned to the right of the output. Unit output
 * dims vanish; neighbouring dims merge when every operand is broadcast in
 * both or in neither (then the merged dim is still one affine stride). Each
 * operand's stride in a dim is its contiguous stride, or 0 where it is
 * broadcast. `unit` scales strides (whole matrices for batched matmul). */
void lower_collapse(LowerStep *s, const CkShape *out, int nops, const CkShape *const *ops,
                    const int64_t *unit) {
  int R = out->rank;
  int64_t ext[CK_MAX_RANK];
  int64_t st[LOWER_MAX_OPERANDS][CK_MAX_RANK];
  bool bc[LOWER_MAX_OPERANDS][CK_MAX_RANK];
  int64_t ost[CK_MAX_RANK];
  int r = 0;
  for (int d = 0; d < R; d++) {
    if (out->dims[d] == 1) continue;
    ext[r] = out->dims[d];
    int64_t o = 1;
    for (int e = d + 1; e < R; e++) o *= out->dims[e];
    ost[r] = o * unit[LOWER_MAX_OPERANDS - 1];
    for (int k = 0; k < nops; k++) {
      const CkShape *sh = ops[k];
      int dk = d - (R - sh->rank);
      int64_t dim = dk >= 0 ? sh->dims[dk] : 1;
      int64_t stride = 1;
      for (int e = dk + 1; e < sh->rank; e++) stride *= sh->dims[e];
      bc[k][r] = dim == 1;
      st[k][r] = dim == 1 ? 0 : stride * unit[k];
    }
    r++;
  }
  /* merge dim j into the dim before it when all operands agree */
  int w = 0;
  for (int j = 0; j < r; j++) {
    bool merge = w > 0;
    for (int k = 0; k < nops && merge; k++)
      if (bc[k][w - 1] != bc[k][j]) merge = false;
    if (merge) {
      ext[w - 1] *= ext[j];
      ost[w - 1] = ost[j];
      for (int k = 0; k < nops; k++) st[k][w - 1] = st[k][j];
      continue;
    }
    ext[w] = ext[j];
    ost[w] = ost[j];
    for (int k = 0; k < nops; k++) {
      st[k][w] = st[k][j];
      bc[k][w] = bc[k][j];
    }
    w++;
  }
  s->rank = w;
  for (int j = 0; j < w; j++) {
    s->extents[j] = ext[j];
    s->out_strides[j] = ost[j];
    for (int k = 0; k < nops; k++) s->strides[k][j] = st[k][j];
  }
}

/* A splat constant as an elementwise operand is a literal in the loop body. */
static bool lower_is_splat(const IrNode *n) { return n->op == IR_OP_CONST && !n->data; }

static double lower_splat_value(const IrNode *n) { return ir_get_float(n, "value", 0.0); }

static LowerBuf *lower_operand(LowerCtx *c, const IrNode *n);

/* ew(a, b, ...) -> for (...) out[i] = op(a[ia], b[ib], ...): one LOAD per
 * array operand, one CONST per splat, then the op. */
static void lower_elemwise(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  LowerStep *s = lower_new_step(c, LOWER_STEP_LOOP, n, out);
  const CkShape *shapes[LOWER_MAX_OPERANDS];
  int64_t unit[LOWER_MAX_OPERANDS];
  int instr_of[4] = {-1, -1, -1, -1};
  s->body = CKC_NEW_ARRAY(c->a, LowerInstr, n->nin + 2);
  for (int i = 0; i < n->nin; i++) {
    const IrNode *x = n->in[i];
    LowerInstr *in = &s->body[s->nbody];
    in->dtype = x->dtype;
    in->in_dtype = x->dtype;
    in->a = in->b = in->c = -1;
    if (lower_is_splat(x)) {
      in->kind = LOWER_I_CONST;
      in->value = lower_splat_value(x);
    } else {
      in->kind = LOWER_I_LOAD;
      in->a = s->noperands;
      shapes[s->noperands] = &x->shape;
      unit[s->noperands] = 1;
      s->operands[s->noperands++] = c->map[x->id];
    }
    instr_of[i] = s->nbody++;
  }
  LowerInstr *op = &s->body[s->nbody++];
  op->kind = LOWER_I_OP;
  op->op = n->op;
  op->dtype = n->dtype;
  op->in_dtype = n->in[0]->dtype;
  op->a = instr_of[0];
  op->b = n->nin > 1 ? instr_of[1] : -1;
  op->c = n->nin > 2 ? instr_of[2] : -1;
  op->gelu_tanh = n->op == IR_OP_GELU && strcmp(ir_get_str(n, "approximate", "none"), "tanh") == 0;
  unit[LOWER_MAX_OPERANDS - 1] = 1;
  lower_collapse(s, &n->shape, s->noperands, shapes, unit);
}

/* out = x with x broadcast (NumPy broadcast_to), or a plain copy: a loop
 * whose body is the load itself. */
static LowerStep *lower_copy_loop(LowerCtx *c, const IrNode *n, LowerBuf *out, LowerBuf *x) {
  LowerStep *s = lower_new_step(c, LOWER_STEP_LOOP, n, out);
  const CkShape *shapes[1] = {&x->shape};
  int64_t unit[LOWER_MAX_OPERANDS];
  for (int k = 0; k < LOWER_MAX_OPERANDS; k++) unit[k] = 1;
  s->body = CKC_NEW(c->a, LowerInstr);
  s->body[0].kind = LOWER_I_LOAD;
  s->body[0].dtype = s->body[0].in_dtype = x->dtype;
  s->body[0].a = 0;
  s->body[0].b = s->body[0].c = -1;
  s->nbody = 1;
  s->operands[0] = x;
  s->noperands = 1;
  lower_collapse(s, &out->shape, 1, shapes, unit);
  return s;
}

/* A splat constant where memory is needed (a kernel argument): filled by a
 * loop into the arena once, at its first use. */
static LowerBuf *lower_operand(LowerCtx *c, const IrNode *n) {
  if (!lower_is_splat(n)) return c->map[n->id];
  if (c->splat_mat[n->id]) return c->splat_mat[n->id];
  LowerBuf *b = lower_new_buf(c, LOWER_BUF_ARENA, n, n->dtype, &n->shape, n->name);
  LowerStep *s = lower_new_step(c, LOWER_STEP_LOOP, n, b);
  /* the fill runs before every step of the node that needs it, whatever
   * order the node's lowering asked for its operands in */
  int at = c->node_first_step;
  for (int i = c->p->steps.len - 1; i > at; i--) c->p->steps.items[i] = c->p->steps.items[i - 1];
  c->p->steps.items[at] = s;
  c->node_first_step++;
  s->body = CKC_NEW(c->a, LowerInstr);
  s->body[0].kind = LOWER_I_CONST;
  s->body[0].dtype = s->body[0].in_dtype = n->dtype;
  s->body[0].value = lower_splat_value(n);
  s->body[0].a = s->body[0].b = s->body[0].c = -1;
  s->nbody = 1;
  int64_t unit[LOWER_MAX_OPERANDS];
  for (int k = 0; k < LOWER_MAX_OPERANDS; k++) unit[k] = 1;
  lower_collapse(s, &n->shape, 0, NULL, unit);
  c->splat_mat[n->id] = b;
  return b;
}

/* The buffer a computed node's value lives in: the caller's out for the
 * output that is written in place, an arena buffer otherwise. */
static LowerBuf *lower_value_buf(LowerCtx *c, const IrNode *n) {
  LowerBuf *b = n == c->direct_out ? c->p->out
                                   : lower_new_buf(c, LOWER_BUF_ARENA, n, n->dtype, &n->shape, n->name);
  c->map[n->id] = b;
  return b;
}

/* memset(b, 0): the gradient and loss kernels accumulate into their outputs. */
static void lower_zero(LowerCtx *c, const IrNode *n, LowerBuf *b) {
  LowerStep *s = lower_new_step(c, LOWER_STEP_ZERO, n, b);
  s->operands[0] = b;
  s->noperands = 0;
}

/* ---- kernel calls --------------------------------------------------------------------- */

static LowerArg *lower_args(LowerCtx *c, LowerStep *s, int n) {
  s->args = CKC_NEW_ARRAY(c->a, LowerArg, n);
  s->nargs = 0;
  return s->args;
}
static void arg_buf(LowerStep *s, LowerBuf *b, int operand) {
  LowerArg *a = &s->args[s->nargs++];
  a->kind = b ? LOWER_ARG_BUF : LOWER_ARG_NULL;
  a->buf = b;
  a->operand = operand;
}
static void arg_int(LowerStep *s, int64_t v) {
  LowerArg *a = &s->args[s->nargs++];
  a->kind = LOWER_ARG_INT;
  a->i = v;
  a->operand = -1;
}
static void arg_float(LowerStep *s, double v) {
  LowerArg *a = &s->args[s->nargs++];
  a->kind = LOWER_ARG_FLOAT;
  a->f = v;
  a->operand = -1;
}
static void arg_elsize(LowerStep *s, CkDType dt) {
  LowerArg *a = &s->args[s->nargs++];
  a->kind = LOWER_ARG_ELSIZE;
  a->dtype = dt;
  a->operand = -1;
}
static void arg_ints(LowerCtx *c, LowerStep *s, const int64_t *v, int n) {
  LowerArg *a = &s->args[s->nargs++];
  int64_t *copy = CKC_NEW_ARRAY(c->a, int64_t, n > 0 ? n : 1);
  for (int i = 0; i < n; i++) copy[i] = v[i];
  a->kind = LOWER_ARG_INTS;
  a->ints = copy;
  a->nints = n;
  a->operand = -1;
}

static LowerStep *lower_kernel(LowerCtx *c, const IrNode *n, LowerBuf *out, const char *kernel,
                               int nargs) {
  LowerStep *s = lower_new_step(c, LOWER_STEP_KERNEL, n, out);
  s->kernel = kernel;
  lower_args(c, s, nargs);
  return s;
}

static int64_t prod(const CkShape *s, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= s->dims[i];
  return p;
}

static int norm_axis(int64_t axis, int rank) {
  if (axis < 0) axis += rank;
  if (axis < 0) axis = 0;
  if (rank > 0 && axis >= rank) axis = rank - 1;
  return (int)axis;
}

static bool all_f32(LowerCtx *c, const IrNode *n) {
  if (n->dtype != CK_DT_F32) return lower_unsupported(c, n, "only f32 is implemented");
  return true;
}

/* a @ b with NumPy batch broadcasting. One call when each operand's batch is
 * either the full output batch or a single matrix (stride 0); otherwise a
 * loop nest over the batch dims with one call per matrix. */
static void lower_matmul(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *A = n->in[0], *Bn = n->in[1];
  if (A->dtype != CK_DT_F32 || Bn->dtype != CK_DT_F32 || n->dtype != CK_DT_F32) {
    lower_unsupported(c, n, "only f32 is implemented");
    return;
  }
  int ta = (int)ir_get_int(n, "transpose_a", 0), tb = (int)ir_get_int(n, "transpose_b", 0);
  CkShape as = A->shape, bs = Bn->shape;
  if (as.rank == 1) { /* [K] -> [1, K] */
    as.rank = 2;
    as.dims[1] = as.dims[0];
    as.dims[0] = 1;
    ta = 0;
  }
  if (bs.rank == 1) { /* [K] -> [K, 1] */
    bs.rank = 2;
    bs.dims[1] = 1;
    tb = 0;
  }
  int64_t M = ta ? as.dims[as.rank - 1] : as.dims[as.rank - 2];
  int64_t K = ta ? as.dims[as.rank - 2] : as.dims[as.rank - 1];
  int64_t N = tb ? bs.dims[bs.rank - 2] : bs.dims[bs.rank - 1];
  CkShape ab = as, bb = bs, ob;
  ab.rank -= 2;
  bb.rank -= 2;
  if (!ck_shape_broadcast(&ab, &bb, &ob)) {
    lower_unsupported(c, n, "batch dims do not broadcast");
    return;
  }
  int64_t batch = ck_shape_numel_unchecked(&ob);
  int64_t an = ck_shape_numel_unchecked(&ab), bn = ck_shape_numel_unchecked(&bb);
  LowerBuf *a = lower_operand(c, A), *b = lower_operand(c, Bn);
  /* [batch, M, K] @ [K, N]: one [batch*M, K] @ [K, N] product */
  if (bn == 1 && an == batch && !ta) {
    M *= batch;
    batch = 1;
    an = 1;
  }
  if ((an == batch || an == 1) && (bn == batch || bn == 1)) {
    LowerStep *s = lower_kernel(c, n, out, "ck_matmul_f32", 11);
    arg_buf(s, out, -1);
    arg_buf(s, a, -1);
    arg_buf(s, b, -1);
    arg_int(s, batch);
    arg_int(s, M);
    arg_int(s, N);
    arg_int(s, K);
    arg_int(s, ta);
    arg_int(s, tb);
    arg_int(s, an == 1 ? 0 : M * K);
    arg_int(s, bn == 1 ? 0 : K * N);
    return;
  }
  LowerStep *s = lower_kernel(c, n, out, "ck_matmul_f32", 11);
  s->operands[0] = out;
  s->operands[1] = a;
  s->operands[2] = b;
  s->noperands = 3;
  const CkShape *shapes[3] = {&ob, &ab, &bb};
  int64_t unit[LOWER_MAX_OPERANDS] = {0};
  unit[0] = M * N;
  unit[1] = M * K;
  unit[2] = K * N;
  unit[LOWER_MAX_OPERANDS - 1] = M * N;
  lower_collapse(s, &ob, 3, shapes, unit);
  arg_buf(s, out, 0);
  arg_buf(s, a, 1);
  arg_buf(s, b, 2);
  arg_int(s, 1);
  arg_int(s, M);
  arg_int(s, N);
  arg_int(s, K);
  arg_int(s, ta);
  arg_int(s, tb);
  arg_int(s, 0);
  arg_int(s, 0);
}

/* sum/mean/max over `axes`: unit dims are ignored; each maximal run of
 * reduced dims is one kernel call over (outer, n, inner), the last run first,
 * through arena temporaries when there are several runs. */
static void lower_reduce(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *X = n->in[0];
  if (!all_f32(c, n) || X->dtype != CK_DT_F32) return;
  int na = 0;
  const int64_t *axes = ir_get_ints(n, "axes", &na);
  bool red[CK_MAX_RANK] = {false};
  if (!axes) {
    for (int i = 0; i < X->shape.rank; i++) red[i] = true;
  } else {
    for (int i = 0; i < na; i++) red[norm_axis(axes[i], X->shape.rank)] = true;
  }
  /* compact: drop unit dims */
  CkShape cur;
  bool cred[CK_MAX_RANK];
  cur.rank = 0;
  for (int i = 0; i < X->shape.rank; i++) {
    if (X->shape.dims[i] == 1) continue;
    cred[cur.rank] = red[i];
    cur.dims[cur.rank++] = X->shape.dims[i];
  }
  const char *kernel = n->op == IR_OP_SUM ? "ck_sum_f32" : n->op == IR_OP_MEAN ? "ck_mean_f32"
                                                                                : "ck_max_f32";
  LowerBuf *src = lower_operand(c, X);
  bool any = false;
  for (int i = 0; i < cur.rank; i++) any = any || cred[i];
  if (!any) {
    lower_copy_loop(c, n, out, src);
    return;
  }
  for (;;) {
    int hi = cur.rank - 1;
    while (hi >= 0 && !cred[hi]) hi--;
    if (hi < 0) break;
    int lo = hi;
    while (lo > 0 && cred[lo - 1]) lo--;
    int64_t outer = prod(&cur, 0, lo), nn = prod(&cur, lo, hi + 1), inner = prod(&cur, hi + 1, cur.rank);
    /* the reduced run disappears from cur */
    CkShape next;
    next.rank = 0;
    bool nred[CK_MAX_RANK];
    for (int i = 0; i < cur.rank; i++) {
      if (i >= lo && i <= hi) continue;
      nred[next.rank] = cred[i];
      next.dims[next.rank++] = cur.dims[i];
    }
    bool last = true;
    for (int i = 0; i < next.rank; i++) last = last && !nred[i];
    LowerBuf *dst = out;
    if (!last) dst = lower_new_buf(c, LOWER_BUF_ARENA, NULL, CK_DT_F32, &next, NULL);
    LowerStep *s = lower_kernel(c, n, dst, kernel, 5);
    arg_buf(s, dst, -1);
    arg_buf(s, src, -1);
    arg_int(s, outer);
    arg_int(s, nn);
    arg_int(s, inner);
    src = dst;
    cur = next;
    memcpy(cred, nred, sizeof nred);
    if (last) break;
  }
}

/* A permute that moves only unit dims ([1,4,1,32] -> [1,1,4,32]) keeps every
 * element at its offset: lowered as a view, like reshape, never a copy. */
static bool lower_permute_is_view(const IrNode *n) {
  int np = 0;
  const int64_t *perm = ir_get_ints(n, "perm", &np);
  const IrNode *X = n->in[0];
  if (!perm || np != X->shape.rank) return false;
  int64_t last = -1;
  for (int i = 0; i < np; i++) {
    if (perm[i] < 0 || perm[i] >= np) return false;
    if (X->shape.dims[perm[i]] == 1) continue;
    if (perm[i] < last) return false;
    last = perm[i];
  }
  return true;
}

/* permute: unit dims vanish and runs of dims that stay neighbours in the
 * same order merge, so the kernel sees the smallest rank. */
static void lower_permute(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *X = n->in[0];
  int np = 0;
  const int64_t *perm = ir_get_ints(n, "perm", &np);
  int R = X->shape.rank;
  if (!perm || np != R) {
    lower_unsupported(c, n, "perm attribute missing");
    return;
  }
  /* kept input dims and their new numbering */
  int newidx[CK_MAX_RANK];
  int64_t idims[CK_MAX_RANK];
  int r = 0;
  for (int i = 0; i < R; i++) {
    if (X->shape.dims[i] == 1) {
      newidx[i] = -1;
      continue;
    }
    newidx[i] = r;
    idims[r++] = X->shape.dims[i];
  }
  int p[CK_MAX_RANK], q = 0;
  for (int i = 0; i < R; i++)
    if (newidx[perm[i]] >= 0) p[q++] = newidx[perm[i]];
  /* merge input dims d, d+1 when d+1 follows d in the output too */
  int group[CK_MAX_RANK]; /* input dim -> group head */
  for (int i = 0; i < r; i++) group[i] = i;
  for (int j = 0; j + 1 < q; j++)
    if (p[j + 1] == p[j] + 1) group[p[j + 1]] = group[p[j]];
  int gid[CK_MAX_RANK], ng = 0;
  int64_t gdims[CK_MAX_RANK];
  for (int i = 0; i < r; i++) {
    if (group[i] == i) {
      gid[i] = ng;
      gdims[ng++] = idims[i];
    } else {
      gid[i] = gid[group[i]];
      gdims[gid[i]] *= idims[i];
    }
  }
  int64_t gperm[CK_MAX_RANK];
  int ngp = 0;
  for (int j = 0; j < q; j++)
    if (group[p[j]] == p[j]) gperm[ngp++] = gid[p[j]];
  bool identity = true;
  for (int j = 0; j < ngp; j++) identity = identity && gperm[j] == j;
  LowerBuf *x = lower_operand(c, X);
  if (identity) {
    /* the same elements in the same order: a flat copy (x's shape need not
     * broadcast to out's when only unit dims move, [1,4,1,32] -> [1,1,4,32]) */
    LowerStep *s = lower_copy_loop(c, n, out, x);
    s->rank = out->numel > 1 ? 1 : 0;
    s->extents[0] = out->numel;
    s->strides[0][0] = 1;
    s->out_strides[0] = 1;
    return;
  }
  LowerStep *s = lower_kernel(c, n, out, "ck_permute", 6);
  arg_buf(s, out, -1);
  arg_buf(s, x, -1);
  arg_elsize(s, X->dtype);
  arg_int(s, ngp);
  arg_ints(c, s, gdims, ng);
  arg_ints(c, s, gperm, ngp);
}

static void lower_slice(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *X = n->in[0];
  int R = X->shape.rank;
  int axis = norm_axis(ir_get_int(n, "axis", 0), R);
  int64_t dim = X->shape.dims[axis];
  int64_t start = ir_get_int(n, "start", 0), step = ir_get_int(n, "step", 1);
  if (step <= 0) {
    lower_unsupported(c, n, "slice step must be positive");
    return;
  }
  if (start < 0) start += dim;
  if (start < 0) start = 0;
  if (start > dim) start = dim;
  LowerStep *s = lower_kernel(c, n, out, "ck_slice", 9);
  arg_buf(s, out, -1);
  arg_buf(s, lower_operand(c, X), -1);
  arg_elsize(s, X->dtype);
  arg_int(s, prod(&X->shape, 0, axis));
  arg_int(s, dim);
  arg_int(s, prod(&X->shape, axis + 1, R));
  arg_int(s, start);
  arg_int(s, step);
  arg_int(s, n->shape.dims[axis]);
}

/* concat(a, b, ...) -> one ck_concat_part call per input. */
static void lower_concat(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  int R = n->shape.rank;
  int axis = norm_axis(ir_get_int(n, "axis", 0), R);
  int64_t off = 0;
  for (int i = 0; i < n->nin; i++) {
    const IrNode *X = n->in[i];
    LowerStep *s = lower_kernel(c, n, out, "ck_concat_part", 8);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_elsize(s, X->dtype);
    arg_int(s, prod(&n->shape, 0, axis));
    arg_int(s, X->shape.dims[axis]);
    arg_int(s, n->shape.dims[axis]);
    arg_int(s, off);
    arg_int(s, prod(&n->shape, axis + 1, R));
    off += X->shape.dims[axis];
  }
}

/* Follows views back to an argument of forward (for error reports). */
static int lower_trace_input(LowerBuf *b) {
  b = lower_buf_root(b);
  return b && b->kind == LOWER_BUF_INPUT ? b->input_index : -1;
}

/* The extents shared by ck_conv2d_f32 and ck_conv2d_backward_f32:
 * N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW. */
static void arg_conv_extents(LowerStep *s, const IrNode *n, const CkShape *x, const CkShape *w,
                             const CkShape *y, const int64_t st[2], const int64_t pd[2]) {
  for (int i = 0; i < 4; i++) arg_int(s, x->dims[i]);
  arg_int(s, w->dims[0]);
  arg_int(s, w->dims[2]);
  arg_int(s, w->dims[3]);
  arg_int(s, st[0]);
  arg_int(s, st[1]);
  arg_int(s, pd[0]);
  arg_int(s, pd[1]);
  arg_int(s, ir_get_int(n, "groups", 1));
  arg_int(s, y->dims[2]);
  arg_int(s, y->dims[3]);
}

static void lower_ints2(const IrNode *n, const char *key, int64_t d0, int64_t d1, int64_t out[2]) {
  int cnt = 0;
  const int64_t *v = ir_get_ints(n, key, &cnt);
  out[0] = d0;
  out[1] = d1;
  if (v && cnt >= 2) {
    out[0] = v[0];
    out[1] = v[1];
  } else if (v && cnt == 1) {
    out[0] = out[1] = v[0];
  } else if (ir_find_attr(n, key) && ir_find_attr(n, key)->kind == IR_ATTR_INT) {
    out[0] = out[1] = ir_get_int(n, key, d0);
  }
}

/* ---- training ops: losses and backward kernels (ck_optim.h, ck_grad.h) --------------------- */

/* Every kernel below ACCUMULATES into its gradient outputs (ck_grad.h), so
 * each fresh gradient buffer is zeroed by a memset step right before its
 * kernel: the IR value is the contribution alone. Losses write their scalar. */

/* A not-yet-lowered node of the graph computing `op` from the same first
 * `nin` inputs and the same float attribute `key` (NULL: none): the other
 * half of a backward pair that one kernel call can produce together. */
static const IrNode *lower_sibling(LowerCtx *c, const IrNode *n, IrOp op, int nin, const char *key) {
  const IrGraph *g = c->p->graph;
  for (int i = 0; i < g->nodes.len; i++) {
    const IrNode *o = g->nodes.items[i];
    if (o == n || o->op != op || c->map[o->id] || o->nin < nin) continue;
    bool same = true;
    for (int k = 0; k < nin; k++) same = same && o->in[k] == n->in[k];
    if (key) same = same && ir_get_float(o, key, 1e-5) == ir_get_float(n, key, 1e-5);
    if (same && (op == IR_OP_ATTENTION_BWD_Q || op == IR_OP_ATTENTION_BWD_K || op == IR_OP_ATTENTION_BWD_V))
      same = ir_get_int(o, "causal", 0) == ir_get_int(n, "causal", 0) &&
             ir_get_float(o, "scale", 0) == ir_get_float(n, "scale", 0);
    if (same) return o;
  }
  return NULL;
}

static LowerBuf *lower_scratch(LowerCtx *c, const IrNode *n, const char *what, int64_t floats) {
  CkShape s = {1, {floats > 0 ? floats : 1}};
  return lower_new_buf(c, LOWER_BUF_ARENA, NULL, CK_DT_F32, &s, ckc_arena_printf(c->a, "%s_%d", what, n->id));
}

/* layernorm_bwd_x(dy, x, [w]) and layernorm_bwd_w(dy, x), rmsnorm alike ->
 *   ck_layernorm_f32(junk, mean, rstd, x)     recompute the row statistics
 *   memset(dx), memset(dw)
 *   ck_layernorm_backward_f32(dx, dw, NULL, dy, x, w, mean, rstd)
 * The statistics are recomputed rather than saved by the forward: the
 * forward stays the inference kernel, and it costs one pass over x. The
 * normalised output the recomputation must write goes into dx (zeroed
 * after) or, for dw alone, a scratch of x's size. An X/W pair on the same
 * (dy, x) is one call. */
static void lower_norm_bwd(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  bool ln = n->op == IR_OP_LAYERNORM_BWD_X || n->op == IR_OP_LAYERNORM_BWD_W;
  bool is_x = n->op == IR_OP_LAYERNORM_BWD_X || n->op == IR_OP_RMSNORM_BWD_X;
  IrOp other = ln ? (is_x ? IR_OP_LAYERNORM_BWD_W : IR_OP_LAYERNORM_BWD_X)
                  : (is_x ? IR_OP_RMSNORM_BWD_W : IR_OP_RMSNORM_BWD_X);
  const IrNode *X = n->in[1];
  if (!all_f32(c, n)) return;
  int R = X->shape.rank;
  int64_t cols = R ? X->shape.dims[R - 1] : 1, rows = prod(&X->shape, 0, R > 0 ? R - 1 : 0);
  double eps = ir_get_float(n, "eps", 1e-5);
  const IrNode *sib = lower_sibling(c, n, other, 2, "eps");
  const IrNode *xn = is_x ? n : sib;
  LowerBuf *dx = is_x ? out : (sib ? lower_value_buf(c, sib) : NULL);
  LowerBuf *dw = is_x ? (sib ? lower_value_buf(c, sib) : NULL) : out;
  LowerBuf *mean = ln ? lower_scratch(c, n, "mean", rows) : NULL;
  LowerBuf *rstd = lower_scratch(c, n, "rstd", rows);
  LowerBuf *junk = dx ? dx : lower_scratch(c, n, "xhat", rows * cols);
  LowerBuf *xb = lower_operand(c, X), *dy = lower_operand(c, n->in[0]);
  LowerBuf *w = xn && xn->nin > 2 ? lower_operand(c, xn->in[2]) : NULL;
  LowerStep *s = lower_kernel(c, n, junk, ln ? "ck_layernorm_f32" : "ck_rmsnorm_f32", ln ? 9 : 7);
  arg_buf(s, junk, -1);
  if (ln) arg_buf(s, mean, -1);
  arg_buf(s, rstd, -1);
  arg_buf(s, xb, -1);
  arg_buf(s, NULL, -1);
  if (ln) arg_buf(s, NULL, -1);
  arg_int(s, rows);
  arg_int(s, cols);
  arg_float(s, eps);
  if (dx) lower_zero(c, n, dx);
  if (dw) lower_zero(c, n, dw);
  s = lower_kernel(c, n, dx ? dx : dw, ln ? "ck_layernorm_backward_f32" : "ck_rmsnorm_backward_f32",
                   ln ? 10 : 8);
  arg_buf(s, dx, -1);
  arg_buf(s, dw, -1);
  if (ln) arg_buf(s, NULL, -1);
  arg_buf(s, dy, -1);
  arg_buf(s, xb, -1);
  arg_buf(s, w, -1);
  if (ln) arg_buf(s, mean, -1);
  arg_buf(s, rstd, -1);
  arg_int(s, rows);
  arg_int(s, cols);
  if (dx && dw) s->scratch = dw; /* the second output: written by this step too */
}

/* attention_bwd_{q,k,v}(dout, q, k, v) -> memset + one
 * ck_attention_backward_f32(dq, dk, dv, ...) for every gradient of the same
 * (dout, q, k, v) in the graph: the probabilities are recomputed once per
 * call, so the three gradients together cost one recomputation. */
static void lower_attention_bwd(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  if (!all_f32(c, n)) return;
  const IrNode *Q = n->in[1], *Kn = n->in[2], *Vn = n->in[3];
  int R = Q->shape.rank;
  int64_t T = Q->shape.dims[R - 2], D = Q->shape.dims[R - 1];
  int64_t S = Kn->shape.dims[Kn->shape.rank - 2], Dv = Vn->shape.dims[Vn->shape.rank - 1];
  int64_t batch = prod(&Q->shape, 0, R - 2);
  if (prod(&Kn->shape, 0, Kn->shape.rank - 2) != batch || prod(&Vn->shape, 0, Vn->shape.rank - 2) != batch) {
    lower_unsupported(c, n, "q, k and v must have the same batch dims");
    return;
  }
  static const IrOp ops[3] = {IR_OP_ATTENTION_BWD_Q, IR_OP_ATTENTION_BWD_K, IR_OP_ATTENTION_BWD_V};
  LowerBuf *d[3] = {NULL, NULL, NULL};
  for (int k = 0; k < 3; k++) {
    if (ops[k] == n->op) {
      d[k] = out;
      continue;
    }
    const IrNode *sib = lower_sibling(c, n, ops[k], 4, NULL);
    if (sib) d[k] = lower_value_buf(c, sib);
  }
  for (int k = 0; k < 3; k++)
    if (d[k]) lower_zero(c, n, d[k]);
  LowerBuf *scratch = lower_scratch(c, n, "scratch", 2 * S);
  LowerStep *s = lower_kernel(c, n, out, "ck_attention_backward_f32", 15);
  s->scratch = scratch;
  for (int k = 0; k < 3; k++) arg_buf(s, d[k], -1);
  for (int k = 0; k < 4; k++) arg_buf(s, lower_operand(c, n->in[k]), -1);
  arg_int(s, batch);
  arg_int(s, T);
  arg_int(s, S);
  arg_int(s, D);
  arg_int(s, Dv);
  arg_int(s, ir_get_int(n, "causal", 0) != 0);
  arg_float(s, ir_get_float(n, "scale", 1.0 / sqrt((double)D)));
  arg_buf(s, scratch, -1);
}

/* slice_bwd(dy) -> memset(dx) + a copy loop over dy's (outer, m, inner)
 * writing dx[o, start + i*step, j]: the adjoint of slice. */
static void lower_slice_bwd(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *DY = n->in[0];
  int R = n->shape.rank;
  int axis = norm_axis(ir_get_int(n, "axis", 0), R);
  int64_t size = n->shape.dims[axis], m = DY->shape.dims[axis];
  int64_t start = ir_get_int(n, "start", 0), step = ir_get_int(n, "step", 1);
  if (start < 0) start += size;
  if (step <= 0 || start < 0 || (m > 0 && start + (m - 1) * step >= size)) {
    lower_unsupported(c, n, "slice_bwd window outside the input");
    return;
  }
  int64_t outer = prod(&n->shape, 0, axis), inner = prod(&n->shape, axis + 1, R);
  lower_zero(c, n, out);
  LowerStep *s = lower_new_step(c, LOWER_STEP_LOOP, n, out);
  s->body = CKC_NEW(c->a, LowerInstr);
  s->body[0].kind = LOWER_I_LOAD;
  s->body[0].dtype = s->body[0].in_dtype = DY->dtype;
  s->body[0].a = 0;
  s->body[0].b = s->body[0].c = -1;
  s->nbody = 1;
  s->operands[0] = lower_operand(c, DY);
  s->noperands = 1;
  int64_t ext[3] = {outer, m, inner}, ist[3] = {m * inner, inner, 1}, ost[3] = {size * inner, step * inner, 1};
  for (int k = 0; k < 3; k++) {
    if (ext[k] == 1) continue;
    s->extents[s->rank] = ext[k];
    s->strides[0][s->rank] = ist[k];
    s->out_strides[s->rank] = ost[k];
    s->rank++;
  }
  s->out_offset = start * inner;
}

/* A kernel returning -1 or the position of a bad index/target: the step
 * returns an error code naming the input the values came from. */
static void lower_check(LowerCtx *c, LowerStep *s, LowerBuf *idx, LowerCheck kind) {
  int k = lower_trace_input(idx);
  s->check = kind;
  s->check_input = k >= 0 ? k : c->p->inputs.len;
}

/* ---- decode: attention against the K/V cache (passes/decode.c) ------------------------- */

/* The positions a decode entry serves: the sequence length T of forward's
 * input i32[B, T] (passes/decode.c derives decode only for that form). */
static int64_t lower_decode_max_pos(const IrModule *m) {
  const IrGraph *f = ir_module_entry(m, "forward");
  if (!f || f->inputs.len != 1 || f->inputs.items[0]->shape.rank != 2) return 0;
  return f->inputs.items[0]->shape.dims[1];
}

/* In the decode entry, attention(q, k, v) on one row ([..., 1, D] each) is
 * that row of the causal attention over the sequence:
 *   ck_attention_decode_f32(out, q, k, v, kcache, vcache, batch, pos, S, D, Dv, scale, scratch)
 * stores k, v at row pos of this node's cache slots ([batch, S, D] and
 * [batch, S, Dv], laid out one after another in node order) and attends over
 * rows 0..pos, in the reference kernel's order of operations. */
static void lower_attention_decode(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *Q = n->in[0], *Kn = n->in[1], *Vn = n->in[2];
  int R = Q->shape.rank;
  int64_t S = c->p->max_pos, D = Q->shape.dims[R - 1], Dv = Vn->shape.dims[R - 1];
  int64_t batch = prod(&Q->shape, 0, R - 2);
  if (Q->shape.dims[R - 2] != 1 || Kn->shape.dims[R - 2] != 1 || !ir_get_int(n, "causal", 0) || S < 1) {
    lower_unsupported(c, n, "decode attention needs one causal row of q, k and v");
    return;
  }
  CkShape ks = {3, {batch, S, D}}, vs = {3, {batch, S, Dv}}, ss = {1, {S}};
  LowerBuf *kc = lower_new_buf(c, LOWER_BUF_CACHE, NULL, CK_DT_F32, &ks,
                               ckc_arena_printf(c->a, "%s.kcache", n->name ? n->name : "attention"));
  kc->offset = c->p->cache_bytes;
  c->p->cache_bytes += kc->bytes;
  LowerBuf *vc = lower_new_buf(c, LOWER_BUF_CACHE, NULL, CK_DT_F32, &vs,
                               ckc_arena_printf(c->a, "%s.vcache", n->name ? n->name : "attention"));
  vc->offset = c->p->cache_bytes;
  c->p->cache_bytes += vc->bytes;
  LowerBuf *scratch = lower_new_buf(c, LOWER_BUF_ARENA, NULL, CK_DT_F32, &ss,
                                    ckc_arena_printf(c->a, "scratch_%d", n->id));
  LowerStep *s = lower_kernel(c, n, out, "ck_attention_decode_f32", 13);
  s->scratch = scratch;
  arg_buf(s, out, -1);
  arg_buf(s, lower_operand(c, Q), -1);
  arg_buf(s, lower_operand(c, Kn), -1);
  arg_buf(s, lower_operand(c, Vn), -1);
  arg_buf(s, kc, -1);
  arg_buf(s, vc, -1);
  arg_int(s, batch);
  LowerArg *pos = &s->args[s->nargs++];
  pos->kind = LOWER_ARG_POS;
  pos->operand = -1;
  arg_int(s, S);
  arg_int(s, D);
  arg_int(s, Dv);
  arg_float(s, ir_get_float(n, "scale", 1.0 / sqrt((double)D)));
  arg_buf(s, scratch, -1);
}

/* Losses and backward ops. */
static void lower_train_op(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *X = n->in[0];
  switch (n->op) {
  case IR_OP_CROSS_ENTROPY:
  case IR_OP_CROSS_ENTROPY_BWD: {
    /* cross_entropy(logits, targets) -> ck_cross_entropy_f32 over (rows, V);
     * the backward zeroes dlogits and accumulates; a bad target -> ERR_TARGET_RANGE */
    bool bwd = n->op == IR_OP_CROSS_ENTROPY_BWD;
    const IrNode *L = n->in[bwd ? 1 : 0], *T = n->in[bwd ? 2 : 1];
    if (L->dtype != CK_DT_F32 || T->dtype != CK_DT_I32) {
      lower_unsupported(c, n, "cross_entropy needs f32 logits and i32 targets");
      return;
    }
    int R = L->shape.rank;
    int64_t V = R ? L->shape.dims[R - 1] : 1;
    LowerBuf *tg = lower_operand(c, T);
    if (bwd) lower_zero(c, n, out);
    LowerStep *s = lower_kernel(c, n, out, bwd ? "ck_cross_entropy_backward_f32" : "ck_cross_entropy_f32",
                                bwd ? 8 : 7);
    arg_buf(s, out, -1);
    if (bwd) arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, lower_operand(c, L), -1);
    arg_buf(s, tg, -1);
    arg_int(s, ck_shape_numel_unchecked(&T->shape));
    arg_int(s, V);
    arg_int(s, ir_get_int(n, "ignore_index", -100));
    arg_float(s, ir_get_float(n, "label_smoothing", 0.0));
    lower_check(c, s, tg, LOWER_CHECK_TARGET);
    return;
  }
  case IR_OP_MSE:
  case IR_OP_BCE_WITH_LOGITS: {
    if (!all_f32(c, n)) return;
    LowerStep *s = lower_kernel(c, n, out, n->op == IR_OP_MSE ? "ck_mse_f32" : "ck_bce_with_logits_f32", 4);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, lower_operand(c, n->in[1]), -1);
    arg_int(s, ck_shape_numel_unchecked(&X->shape));
    return;
  }
  case IR_OP_SOFTMAX_BWD:
  case IR_OP_LOG_SOFTMAX_BWD:
  case IR_OP_MAX_BWD: {
    /* (y|x, dy) over (outer, n, inner) of the axis */
    if (!all_f32(c, n)) return;
    int R = X->shape.rank;
    int axis = norm_axis(ir_get_int(n, "axis", -1), R);
    const char *k = n->op == IR_OP_SOFTMAX_BWD     ? "ck_softmax_backward_f32"
                    : n->op == IR_OP_LOG_SOFTMAX_BWD ? "ck_log_softmax_backward_f32"
                                                     : "ck_max_backward_f32";
    lower_zero(c, n, out);
    LowerStep *s = lower_kernel(c, n, out, k, 6);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, lower_operand(c, n->in[1]), -1);
    arg_int(s, prod(&X->shape, 0, axis));
    arg_int(s, R ? X->shape.dims[axis] : 1);
    arg_int(s, prod(&X->shape, axis + 1, R));
    return;
  }
  case IR_OP_LAYERNORM_BWD_X:
  case IR_OP_LAYERNORM_BWD_W:
  case IR_OP_RMSNORM_BWD_X:
  case IR_OP_RMSNORM_BWD_W: lower_norm_bwd(c, n, out); return;
  case IR_OP_EMBEDDING_BWD: {
    /* dtable[V, C] += dy rows at idx; bad indices -> ERR_INDEX_RANGE */
    const IrNode *I = n->in[1];
    if (n->dtype != CK_DT_F32 || I->dtype != CK_DT_I32 || n->shape.rank != 2) {
      lower_unsupported(c, n, "embedding_bwd needs f32 gradients and i32 indices");
      return;
    }
    LowerBuf *idx = lower_operand(c, I);
    lower_zero(c, n, out);
    LowerStep *s = lower_kernel(c, n, out, "ck_embedding_backward_f32", 6);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, idx, -1);
    arg_int(s, ck_shape_numel_unchecked(&I->shape));
    arg_int(s, n->shape.dims[0]);
    arg_int(s, n->shape.dims[1]);
    lower_check(c, s, idx, LOWER_CHECK_INDEX);
    return;
  }
  case IR_OP_CONV2D_BWD_X:
  case IR_OP_CONV2D_BWD_W: {
    /* one ck_conv2d_backward_f32 call with only dx (from dy, w) or only dw (from dy, x) */
    if (!all_f32(c, n)) return;
    bool bx = n->op == IR_OP_CONV2D_BWD_X;
    const IrNode *DY = n->in[0], *O = n->in[1];
    const CkShape *xs = bx ? &n->shape : &O->shape, *ws = bx ? &O->shape : &n->shape;
    int64_t st[2], pd[2];
    lower_ints2(n, "stride", 1, 1, st);
    lower_ints2(n, "padding", 0, 0, pd);
    lower_zero(c, n, out);
    LowerStep *s = lower_kernel(c, n, out, "ck_conv2d_backward_f32", 20);
    arg_buf(s, bx ? out : NULL, -1);
    arg_buf(s, bx ? NULL : out, -1);
    arg_buf(s, NULL, -1);
    arg_buf(s, lower_operand(c, DY), -1);
    arg_buf(s, bx ? NULL : lower_operand(c, O), -1);
    arg_buf(s, bx ? lower_operand(c, O) : NULL, -1);
    arg_conv_extents(s, n, xs, ws, &DY->shape, st, pd);
    return;
  }
  case IR_OP_MAXPOOL2D_BWD:
  case IR_OP_AVGPOOL2D_BWD: {
    if (!all_f32(c, n)) return;
    bool mx = n->op == IR_OP_MAXPOOL2D_BWD;
    int64_t k[2], st[2], pd[2];
    lower_ints2(n, "kernel", 1, 1, k);
    lower_ints2(n, "stride", k[0], k[1], st);
    lower_ints2(n, "padding", 0, 0, pd);
    lower_zero(c, n, out);
    LowerStep *s = lower_kernel(c, n, out, mx ? "ck_maxpool2d_backward_f32" : "ck_avgpool2d_backward_f32",
                                mx ? 15 : 14);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    if (mx) arg_buf(s, lower_operand(c, n->in[1]), -1);
    for (int i = 0; i < 4; i++) arg_int(s, n->shape.dims[i]);
    arg_int(s, k[0]);
    arg_int(s, k[1]);
    arg_int(s, st[0]);
    arg_int(s, st[1]);
    arg_int(s, pd[0]);
    arg_int(s, pd[1]);
    arg_int(s, X->shape.dims[2]);
    arg_int(s, X->shape.dims[3]);
    return;
  }
  case IR_OP_ATTENTION_BWD_Q:
  case IR_OP_ATTENTION_BWD_K:
  case IR_OP_ATTENTION_BWD_V: lower_attention_bwd(c, n, out); return;
  case IR_OP_SLICE_BWD: lower_slice_bwd(c, n, out); return;
  default: lower_unsupported(c, n, "no lowering for this op"); return;
  }
}

/* Every non-elementwise op: one kernel call with collapsed extents. */
static void lower_call_op(LowerCtx *c, const IrNode *n, LowerBuf *out) {
  const IrNode *X = n->in[0];
  int R = X->shape.rank;
  switch (n->op) {
  case IR_OP_MATMUL: lower_matmul(c, n, out); return;
  case IR_OP_FUSED_MATMUL: /* the product, then its epilogue over it (lower/fused.c) */
    lower_matmul(c, n, out);
    lower_fused_loop(c->p, c->a, n, out, c->map);
    return;
  case IR_OP_SUM:
  case IR_OP_MEAN:
  case IR_OP_MAX: lower_reduce(c, n, out); return;
  case IR_OP_PERMUTE: lower_permute(c, n, out); return;
  case IR_OP_SLICE: lower_slice(c, n, out); return;
  case IR_OP_CONCAT: lower_concat(c, n, out); return;
  case IR_OP_BROADCAST: lower_copy_loop(c, n, out, lower_operand(c, X)); return;
  case IR_OP_ARGMAX: {
    if (X->dtype != CK_DT_F32) {
      lower_unsupported(c, n, "only f32 is implemented");
      return;
    }
    int axis = norm_axis(ir_get_int(n, "axis", -1), R);
    LowerStep *s = lower_kernel(c, n, out, "ck_argmax_f32", 5);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_int(s, prod(&X->shape, 0, axis));
    arg_int(s, R ? X->shape.dims[axis] : 1);
    arg_int(s, prod(&X->shape, axis + 1, R));
    return;
  }
  case IR_OP_SOFTMAX:
  case IR_OP_LOG_SOFTMAX: {
    if (!all_f32(c, n)) return;
    int axis = norm_axis(ir_get_int(n, "axis", -1), R);
    LowerStep *s = lower_kernel(c, n, out, n->op == IR_OP_SOFTMAX ? "ck_softmax_f32"
                                                                  : "ck_log_softmax_f32", 5);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_int(s, prod(&X->shape, 0, axis));
    arg_int(s, R ? X->shape.dims[axis] : 1);
    arg_int(s, prod(&X->shape, axis + 1, R));
    return;
  }
  case IR_OP_LAYERNORM:
  case IR_OP_RMSNORM: {
    if (!all_f32(c, n)) return;
    int64_t cols = R ? X->shape.dims[R - 1] : 1;
    int64_t rows = prod(&X->shape, 0, R > 0 ? R - 1 : 0);
    double eps = ir_get_float(n, "eps", 1e-5);
    bool ln = n->op == IR_OP_LAYERNORM;
    LowerStep *s = lower_kernel(c, n, out, ln ? "ck_layernorm_f32" : "ck_rmsnorm_f32", ln ? 10 : 7);
    arg_buf(s, out, -1);
    arg_buf(s, NULL, -1);
    if (ln) arg_buf(s, NULL, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, n->nin > 1 ? lower_operand(c, n->in[1]) : NULL, -1);
    if (ln) arg_buf(s, n->nin > 2 ? lower_operand(c, n->in[2]) : NULL, -1);
    arg_int(s, rows);
    arg_int(s, cols);
    arg_float(s, eps);
    return;
  }
  case IR_OP_EMBEDDING: {
    const IrNode *I = n->in[1];
    if (X->dtype != CK_DT_F32 || I->dtype != CK_DT_I32) {
      lower_unsupported(c, n, "embedding needs an f32 table and i32 indices");
      return;
    }
    LowerBuf *idx = lower_operand(c, I);
    LowerStep *s = lower_kernel(c, n, out, "ck_embedding_f32", 6);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, idx, -1);
    arg_int(s, ck_shape_numel_unchecked(&I->shape));
    arg_int(s, X->shape.dims[0]);
    arg_int(s, X->shape.dims[1]);
    int k = lower_trace_input(idx);
    s->check_input = k >= 0 ? k : c->p->inputs.len;
    if (k >= 0) {
      LowerBuf *in = c->p->inputs.items[k];
      if (in->index_input < 0 || X->shape.dims[0] < in->index_bound) in->index_bound = X->shape.dims[0];
      in->index_input = k;
    }
    return;
  }
  case IR_OP_CONV2D: {
    if (!all_f32(c, n)) return;
    int64_t st[2], pd[2];
    lower_ints2(n, "stride", 1, 1, st);
    lower_ints2(n, "padding", 0, 0, pd);
    const IrNode *W = n->in[1];
    LowerStep *s = lower_kernel(c, n, out, "ck_conv2d_f32", 19);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, lower_operand(c, W), -1);
    arg_buf(s, n->nin > 2 ? lower_operand(c, n->in[2]) : NULL, -1);
    arg_conv_extents(s, n, &X->shape, &W->shape, &n->shape, st, pd);
    return;
  }
  case IR_OP_MAXPOOL2D:
  case IR_OP_AVGPOOL2D: {
    if (!all_f32(c, n)) return;
    int64_t k[2], st[2], pd[2];
    lower_ints2(n, "kernel", 1, 1, k);
    lower_ints2(n, "stride", k[0], k[1], st);
    lower_ints2(n, "padding", 0, 0, pd);
    LowerStep *s = lower_kernel(c, n, out, n->op == IR_OP_MAXPOOL2D ? "ck_maxpool2d_f32"
                                                                    : "ck_avgpool2d_f32", 14);
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    for (int i = 0; i < 4; i++) arg_int(s, X->shape.dims[i]);
    arg_int(s, k[0]);
    arg_int(s, k[1]);
    arg_int(s, st[0]);
    arg_int(s, st[1]);
    arg_int(s, pd[0]);
    arg_int(s, pd[1]);
    arg_int(s, n->shape.dims[2]);
    arg_int(s, n->shape.dims[3]);
    return;
  }
  case IR_OP_ATTENTION: {
    if (!all_f32(c, n)) return;
    if (c->p->entry == LOWER_ENTRY_DECODE) {
      lower_attention_decode(c, n, out);
      return;
    }
    const IrNode *Kn = n->in[1], *Vn = n->in[2];
    int64_t T = X->shape.dims[R - 2], D = X->shape.dims[R - 1];
    int64_t S = Kn->shape.dims[Kn->shape.rank - 2], Dv = Vn->shape.dims[Vn->shape.rank - 1];
    int64_t batch = prod(&X->shape, 0, R - 2);
    if (prod(&Kn->shape, 0, Kn->shape.rank - 2) != batch ||
        prod(&Vn->shape, 0, Vn->shape.rank - 2) != batch) {
      lower_unsupported(c, n, "q, k and v must have the same batch dims");
      return;
    }
    CkShape ss = {1, {S}};
    LowerBuf *scratch = lower_new_buf(c, LOWER_BUF_ARENA, NULL, CK_DT_F32, &ss,
                                      ckc_arena_printf(c->a, "scratch_%d", n->id));
    LowerStep *s = lower_kernel(c, n, out, "ck_attention_f32", 12);
    s->scratch = scratch;
    arg_buf(s, out, -1);
    arg_buf(s, lower_operand(c, X), -1);
    arg_buf(s, lower_operand(c, Kn), -1);
    arg_buf(s, lower_operand(c, Vn), -1);
    arg_int(s, batch);
    arg_int(s, T);
    arg_int(s, S);
    arg_int(s, D);
    arg_int(s, Dv);
    arg_int(s, ir_get_int(n, "causal", 0) != 0);
    arg_float(s, ir_get_float(n, "scale", 1.0 / sqrt((double)D)));
    arg_buf(s, scratch, -1);
    return;
  }
  default: lower_train_op(c, n, out); return;
  }
}

/* ---- memory plan: lower/memplan.c (liveness, sections, in place, placement) ---------------- */

static int64_t align_up(int64_t v) { return (v + LOWER_ALIGN - 1) / LOWER_ALIGN * LOWER_ALIGN; }

/* ---- the walk ------------------------------------------------------------------------------------ */

static const char *lower_lower_name(CkcArena *a, const char *s, bool upper) {
  char *r = ckc_arena_strdup(a, s);
  for (char *q = r; *q; q++) {
    char ch = *q;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))) ch = '_';
    if (upper && ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
    if (!upper && ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    *q = ch;
  }
  return r;
}


/* ---- the params layout ----------------------------------------------------------------------------- */

static const char *const lower_entry_names[] = {"forward", "loss", "train_step", "decode"};

/* Union of the entry graphs' parameters by name, in order of first
 * appearance (forward first, so a model without a train block keeps the
 * layout it always had), each at a 64-byte aligned offset. The grads blob of
 * train_step has the same layout. */
LowerLayout *lower_layout(const IrModule *m) {
  LowerLayout *L = CKC_NEW(m->arena, LowerLayout);
  int64_t off = 0;
  for (int e = 0; e < 3; e++) {
    const IrGraph *g = ir_module_entry(m, lower_entry_names[e]);
    if (!g) continue;
    for (int i = 0; i < g->nodes.len; i++) {
      const IrNode *n = g->nodes.items[i];
      if (n->op != IR_OP_PARAM) continue;
      bool seen = false;
      for (int k = 0; k < L->params.len && !seen; k++) seen = strcmp(L->params.items[k].name, n->name) == 0;
      if (seen) continue;
      LowerParam lp = {0};
      lp.name = n->name;
      lp.node = n;
      lp.dtype = n->dtype;
      lp.shape = n->shape;
      lp.numel = ck_shape_numel_unchecked(&n->shape);
      lp.bytes = lp.numel * (int64_t)ck_dtype_size(n->dtype);
      off = align_up(off);
      lp.offset = off;
      off += lp.bytes;
      lp.train_index = -1;
      if (m->train)
        for (int k = 0; k < m->train->params.len; k++)
          if (strcmp(m->train->params.items[k].name, n->name) == 0) {
            lp.train_index = k;
            lp.decay = m->train->params.items[k].decay;
          }
      L->param_count += lp.numel;
      CKC_VEC_PUSH(m->arena, L->params, lp);
    }
  }
  L->params_bytes = align_up(off);
  return L;
}

static const LowerParam *lower_layout_find(const LowerLayout *L, const char *name) {
  for (int k = 0; k < L->params.len; k++)
    if (strcmp(L->params.items[k].name, name) == 0) return &L->params.items[k];
  return NULL;
}

/* ---- the walk ------------------------------------------------------------------------------------ */

/* A returned leaf, splat or view cannot be computed in place: a step makes
 * it the caller's buffer `dst` (a constant fill loop, or memcpy). */
static void lower_copy_out(LowerCtx *c, const IrNode *n, LowerBuf *dst, bool optional) {
  LowerBuf *res = c->map[n->id];
  if (lower_is_splat(n)) {
    LowerStep *s = lower_new_step(c, LOWER_STEP_LOOP, n, dst);
    s->body = CKC_NEW(c->a, LowerInstr);
    s->body[0].kind = LOWER_I_CONST;
    s->body[0].dtype = s->body[0].in_dtype = n->dtype;
    s->body[0].value = lower_splat_value(n);
    s->body[0].a = s->body[0].b = s->body[0].c = -1;
    s->nbody = 1;
    int64_t unit[LOWER_MAX_OPERANDS];
    for (int k = 0; k < LOWER_MAX_OPERANDS; k++) unit[k] = 1;
    lower_collapse(s, &n->shape, 0, NULL, unit);
  } else if (res != dst) {
    LowerStep *s = lower_new_step(c, LOWER_STEP_COPY, n, dst);
    s->operands[0] = res;
    s->noperands = 1;
    s->optional_out = optional;
  }
}

/* train_step's gradient outputs: grads[param] += value, one loop per
 * trained parameter (the contract ACCUMULATES, so gradient accumulation
 * windows need no copy). A gradient that is a splat 0 (the loss does not
 * depend on the parameter) adds nothing and emits nothing. */
static void lower_accumulate_grad(LowerCtx *c, const IrNode *n, const LowerParam *lp) {
  if (lower_is_splat(n) && lower_splat_value(n) == 0.0) return;
  LowerBuf *g = lower_new_buf(c, LOWER_BUF_GRAD, n, lp->dtype, &lp->shape,
                              ckc_arena_printf(c->a, "grads.%s", lp->name));
  g->name = lp->name;
  LowerStep *s = lower_new_step(c, LOWER_STEP_LOOP, n, g);
  s->body = CKC_NEW_ARRAY(c->a, LowerInstr, 3);
  const CkShape *shapes[2] = {&lp->shape, &n->shape};
  int64_t unit[LOWER_MAX_OPERANDS];
  for (int k = 0; k < LOWER_MAX_OPERANDS; k++) unit[k] = 1;
  s->operands[s->noperands++] = g;
  s->body[0] = (LowerInstr){.kind = LOWER_I_LOAD, .dtype = lp->dtype, .in_dtype = lp->dtype, .a = 0, .b = -1, .c = -1};
  if (lower_is_splat(n)) {
    s->body[1] = (LowerInstr){.kind = LOWER_I_CONST, .dtype = n->dtype, .in_dtype = n->dtype,
                              .value = lower_splat_value(n), .a = -1, .b = -1, .c = -1};
  } else {
    s->operands[s->noperands++] = c->map[n->id];
    s->body[1] = (LowerInstr){.kind = LOWER_I_LOAD, .dtype = n->dtype, .in_dtype = n->dtype, .a = 1, .b = -1, .c = -1};
  }
  s->body[2] = (LowerInstr){.kind = LOWER_I_OP, .op = IR_OP_ADD, .dtype = lp->dtype, .in_dtype = lp->dtype,
                            .a = 0, .b = 1, .c = -1};
  s->nbody = 3;
  lower_collapse(s, &lp->shape, s->noperands, shapes, unit);
}

/* entry(inputs) over the flat graph: leaves become buffers, each other
 * node one or more steps; outputs[0] is computed straight into the
 * caller's buffer (out, or *loss), or copied there when it is a view or a
 * leaf; loss's logits are copied out when the caller asks for them;
 * train_step's gradients are accumulated into grads. */
LowerProgram *lower_entry(const IrModule *m, const CkcTarget *t, const LowerLayout *L, LowerEntry entry,
                          CkcDiag *d) {
  const char *ename = lower_entry_names[entry];
  const IrGraph *g = ir_module_entry(m, ename);
  if (!g) {
    ckc_error_noloc(d, "E0911", "model %s has no entry function '%s'", m->model_name, ename);
    return NULL;
  }
  int want = entry == LOWER_ENTRY_FORWARD || entry == LOWER_ENTRY_DECODE ? 1 : -1;
  if (entry == LOWER_ENTRY_FORWARD && g->outputs.len != 1) {
    ckc_error_noloc(d, "E0911", "forward must return exactly one tensor (it returns %d)", g->outputs.len);
    return NULL;
  }
  if (entry == LOWER_ENTRY_LOSS && (g->outputs.len < 1 || g->outputs.len > 2)) want = 0;
  if (entry == LOWER_ENTRY_TRAIN_STEP && (!m->train || g->outputs.len != 1 + m->train->params.len)) want = 0;
  if (entry != LOWER_ENTRY_FORWARD && g->inputs.len != 2) want = 0;
  if (entry == LOWER_ENTRY_DECODE && (g->outputs.len != 1 || !lower_decode_max_pos(m))) want = 0;
  for (int k = 0; k < g->outputs.len && want < 0; k++) {
    const IrNode *o = g->outputs.items[k];
    if (o->dtype != CK_DT_F32 || (k == 0 && o->shape.rank != 0)) want = 0;
  }
  if (want == 0) {
    ckc_error_noloc(d, "E0911", "entry graph '%s' does not have the form the back end expects "
                    "(inputs x, y; a scalar f32 loss first; see ir/train.h)", ename);
    return NULL;
  }
  CkcArena *a = m->arena;
  LowerProgram *p = CKC_NEW(a, LowerProgram);
  p->module = m;
  p->entry = entry;
  p->layout = L;
  p->graph = g;
  p->target = t;
  p->prefix = lower_lower_name(a, m->model_name, false);
  p->upper = lower_lower_name(a, m->model_name, true);
  LowerCtx c = {0};
  c.p = p;
  c.a = a;
  c.d = d;
  c.ok = true;
  c.extra = entry == LOWER_ENTRY_FORWARD  ? lower_params_forward
            : entry == LOWER_ENTRY_LOSS   ? lower_params_loss
            : entry == LOWER_ENTRY_DECODE ? lower_params_decode
                                          : lower_params_train;
  if (entry == LOWER_ENTRY_DECODE) p->max_pos = lower_decode_max_pos(m);
  c.nmap = g->next_id + 1;
  for (int i = 0; i < g->nodes.len; i++)
    if (g->nodes.items[i]->id >= c.nmap) c.nmap = g->nodes.items[i]->id + 1;
  c.map = CKC_NEW_ARRAY(a, LowerBuf *, c.nmap);
  c.splat_mat = CKC_NEW_ARRAY(a, LowerBuf *, c.nmap);

  /* the inputs first: their names are the function's parameter names */
  for (int k = 0; k < g->inputs.len; k++) {
    const IrNode *n = g->inputs.items[k];
    const char *nm = k < g->input_names.len ? g->input_names.items[k] : n->name;
    if (!nm) nm = ckc_arena_printf(a, "in%d", k);
    LowerBuf *b = lower_new_buf(&c, LOWER_BUF_INPUT, n, n->dtype, &n->shape, nm);
    b->input_index = k;
    c.map[n->id] = b;
    CKC_VEC_PUSH(a, p->inputs, b);
  }
  for (int i = 0; i < g->nodes.len; i++) {
    const IrNode *n = g->nodes.items[i];
    if (n->op == IR_OP_PARAM) {
      LowerBuf *b = lower_new_buf(&c, LOWER_BUF_PARAM, n, n->dtype, &n->shape, n->name);
      c.map[n->id] = b;
      CKC_VEC_PUSH(a, p->params, b);
    }
  }
  const IrNode *outn = g->outputs.items[0];
  const char *oname = entry == LOWER_ENTRY_FORWARD ? "out" : entry == LOWER_ENTRY_DECODE ? "logits" : "loss";
  p->out = lower_new_buf(&c, LOWER_BUF_OUTPUT, outn, outn->dtype, &outn->shape, oname);
  p->out->cname = oname;
  c.direct_out = outn;
  const IrNode *logn = entry == LOWER_ENTRY_LOSS && g->outputs.len > 1 ? g->outputs.items[1] : NULL;
  if (logn) {
    p->logits = lower_new_buf(&c, LOWER_BUF_OUTPUT, logn, logn->dtype, &logn->shape, "logits");
    p->logits->cname = "logits";
  }
  const char *const_prefix = entry == LOWER_ENTRY_FORWARD  ? "const"
                             : entry == LOWER_ENTRY_LOSS   ? "loss_const"
                             : entry == LOWER_ENTRY_DECODE ? "decode_const"
                                                           : "train_const";

  for (int i = 0; i < g->nodes.len && !ckc_diag_too_many(d); i++) {
    const IrNode *n = g->nodes.items[i];
    const IrOpInfo *info = &ir_op_info[n->op];
    if (n->op == IR_OP_INPUT || n->op == IR_OP_PARAM) {
      if (!c.map[n->id]) lower_unsupported(&c, n, "input is not an argument of the entry function");
      continue;
    }
    if (c.map[n->id]) continue; /* computed together with a sibling (backward pairs) */
    if (n->op == IR_OP_CONST) {
      LowerBuf *b;
      if (n->data) {
        b = lower_new_buf(&c, LOWER_BUF_CONST, n, n->dtype, &n->shape,
                          ckc_arena_printf(a, "%s_%d", const_prefix, n->id));
        b->data = n->data;
        CKC_VEC_PUSH(a, p->consts, b);
        c.map[n->id] = b;
      }
      continue; /* splats are literals, or materialised at their first kernel use */
    }
    if (n->op == IR_OP_CALL) {
      lower_unsupported(&c, n, "the module is not flat (run the inline pass)");
      continue;
    }
    c.node_first_step = p->steps.len;
    if (n->op == IR_OP_RESHAPE || n->op == IR_OP_STOP_GRADIENT ||
        (n->op == IR_OP_PERMUTE && lower_permute_is_view(n))) {
      /* views: the same storage under a new shape (stop_gradient: the same value) */
      LowerBuf *src = lower_operand(&c, n->in[0]);
      LowerBuf *b = lower_new_buf(&c, LOWER_BUF_ALIAS, n, n->dtype, &n->shape, n->name);
      b->alias_of = src;
      c.map[n->id] = b;
      continue;
    }
    c.node_first_step = p->steps.len;
    LowerBuf *out = lower_value_buf(&c, n);
    if (n->op == IR_OP_FUSED_EW)
      lower_fused_loop(p, a, n, out, c.map);
    else if (info->flags & IR_OPF_ELEMWISE)
      lower_elemwise(&c, n, out);
    else
      lower_call_op(&c, n, out);
  }
  if (!c.ok) return NULL;

  c.node_first_step = p->steps.len;
  lower_copy_out(&c, outn, p->out, false);
  if (logn) lower_copy_out(&c, logn, p->logits, true);
  if (entry == LOWER_ENTRY_TRAIN_STEP)
    for (int k = 1; k < g->outputs.len; k++) {
      const LowerParam *lp = lower_layout_find(L, m->train->params.items[k - 1].name);
      const IrNode *gn = g->outputs.items[k];
      if (!lp || lp->dtype != gn->dtype || !ck_shape_eq(&lp->shape, &gn->shape)) {
        ckc_error_noloc(d, "E0911", "train_step output %d does not match parameter '%s'", k,
                        m->train->params.items[k - 1].name);
        return NULL;
      }
      lower_accumulate_grad(&c, gn, lp);
    }
  LowerBuf *res = c.map[outn->id];
  p->output = res ? res : p->out;
  if (t->fast_gemm) lower_x86_kernels(p);
  lower_plan_memory(p);
  return p;
}

LowerProgram *lower_program(const IrModule *m, const CkcTarget *t, CkcDiag *d) {
  return lower_entry(m, t, lower_layout(m), LOWER_ENTRY_FORWARD, d);
}

LowerModule *lower_module(const IrModule *m, const CkcTarget *t, CkcDiag *d) {
  LowerModule *lm = CKC_NEW(m->arena, LowerModule);
  lm->module = m;
  lm->target = t;
  lm->layout = lower_layout(m);
  lm->forward = lower_entry(m, t, lm->layout, LOWER_ENTRY_FORWARD, d);
  if (!lm->forward) return NULL;
  lm->prefix = lm->forward->prefix;
  lm->upper = lm->forward->upper;
  if (ir_module_entry(m, "loss") || ir_module_entry(m, "train_step")) {
    lm->loss = lower_entry(m, t, lm->layout, LOWER_ENTRY_LOSS, d);
    lm->train_step = lower_entry(m, t, lm->layout, LOWER_ENTRY_TRAIN_STEP, d);
    if (!lm->loss || !lm->train_step) return NULL;
  }
  if (ir_module_entry(m, "decode")) {
    lm->decode = lower_entry(m, t, lm->layout, LOWER_ENTRY_DECODE, d);
    if (!lm->decode) return NULL;
  }
  return lm;
}
