/* lower/lower_x86.c - the x86 targets' kernel choices on a lowered entry
 * (CkcTarget.fast_gemm): a rewrite of the step list that lower_entry runs
 * before the memory plan. The c99 lowering stays the single source of every
 * extent and stride; this file only swaps kernels and removes work, so what
 * it does is visible step by step in the generated C.
 *
 *   ck_matmul_f32(out, a, b, batch, M, N, K, ta, tb, as, bs)
 *     -> ck_gemm_f32(pool, out, a, b, batch, M, N, K, ta, tb, as, bs, 0)
 *
 * and a weight gradient produced by one GEMM and only added into grads
 * (`t = a @ b; grads[w] += t`) becomes one accumulating GEMM straight into
 * grads: ck_gemm_f32(..., CK_GEMM_ACCUMULATE). The FMA chain then starts
 * from the old grads value, so the bits differ from the two-step form by
 * rounding only (the same bound as any GEMM); they do not depend on the
 * thread count either way.
 *
 *   ck_attention_f32(...) / ck_attention_backward_f32(...)
 *     -> ck_x86_attention_f32(pool, ...) / ck_x86_attention_backward_f32(pool, ...)
 *
 * the same arguments on the pool, split over (batch, head) items; likewise
 * ck_layernorm_f32 / ck_layernorm_backward_f32 -> ck_x86_layernorm_*(pool, ...),
 * and ck_sum_f32 -> ck_x86_sum_f32(pool, ...), split over fixed row (and
 * column) blocks. All bitwise equal to the reference kernels
 * (rt-min/x86/ck_x86_kernels.h).
 *
 *   ck_cross_entropy_f32(...) / ck_cross_entropy_backward_f32(...)
 *     -> ck_x86_cross_entropy_f32(pool, ...) / ck_x86_cross_entropy_backward_f32(pool, ...)
 *
 * rows in parallel, the row's log-sum-exp vectorised (rt-min/x86/ck_x86_nn.h:
 * rounding differs from the reference, a polynomial exp and 16-lane sums).
 *
 *   ck_conv2d_f32(...) / ck_conv2d_backward_f32(...)
 *     -> ck_x86_conv2d_f32(pool, ..., ws, floats) / ck_x86_conv2d_backward_f32(pool, ..., ws, floats)
 *
 * im2col + GEMM over slabs of samples, in a workspace `ws` planned for the
 * step (rt-min/x86/ck_x86_conv.h; rounding differs from the reference as a
 * GEMM's does), and a conv bias gradient (two sum steps over the same dy)
 * is folded into the conv backward step that reads dy; ck_maxpool2d_f32 / _backward_f32 -> ck_x86_maxpool2d_*(pool,
 * ...), bitwise equal, split over (n, c) planes.
 *
 *   ck_gemm_f32(pool, out, a, b, batch, M, ...) with M <= 8 rows
 *     -> ck_gemm_small_f32(pool, out, a, b, batch, M, ...)
 *
 * decoding's products read the weights in place, never packing them
 * (rt-min/x86/ck_gemm_small.h); the same bits as ck_gemm_f32. */
#include <string.h>

#include "lower/lower.h"

#define LOWER_X86_ACCUMULATE 1 /* CK_GEMM_ACCUMULATE of rt-min/x86/ck_gemm.h */

/* A reference GEMM call becomes the pool GEMM: the pool first, flags last. */
static void lower_x86_gemm(LowerProgram *p, LowerStep *s) {
  LowerArg *args = CKC_NEW_ARRAY(p->module->arena, LowerArg, s->nargs + 2);
  args[0].kind = LOWER_ARG_POOL;
  args[0].operand = -1;
  memcpy(args + 1, s->args, (size_t)s->nargs * sizeof *args);
  args[s->nargs + 1].kind = LOWER_ARG_INT;
  args[s->nargs + 1].i = 0;
  args[s->nargs + 1].operand = -1;
  s->args = args;
  s->nargs += 2;
  s->kernel = "ck_gemm_f32";
}

/* How many steps mention buffer b (as out, operand, argument or scratch),
 * and whether any view aliases it: a temporary is private to a pair of steps
 * only when both are 0 outside them. */
static int lower_x86_refs(const LowerProgram *p, const LowerBuf *b) {
  int n = 0;
  for (int i = 0; i < p->bufs.len; i++)
    if (p->bufs.items[i]->alias_of == b) return 1000;
  for (int si = 0; si < p->steps.len; si++) {
    const LowerStep *s = p->steps.items[si];
    bool hit = lower_buf_root(s->out) == b || (s->scratch && lower_buf_root(s->scratch) == b);
    for (int k = 0; k < s->noperands; k++) hit = hit || lower_buf_root(s->operands[k]) == b;
    for (int k = 0; k < s->nargs; k++)
      hit = hit || (s->args[k].kind == LOWER_ARG_BUF && lower_buf_root(s->args[k].buf) == b);
    n += hit;
  }
  return n;
}

/* `grads[w] += t` as lowered by lower_accumulate_grad: out GRAD, operands
 * (grads, t) of equal size, body LOAD 0, LOAD 1, ADD. Returns t or NULL. */
static LowerBuf *lower_x86_grad_add(const LowerStep *s) {
  if (s->kind != LOWER_STEP_LOOP || s->out->kind != LOWER_BUF_GRAD || s->nbody != 3 || s->noperands != 2)
    return NULL;
  const LowerInstr *in = s->body;
  if (in[0].kind != LOWER_I_LOAD || in[0].a != 0 || in[1].kind != LOWER_I_LOAD || in[1].a != 1 ||
      in[2].kind != LOWER_I_OP || in[2].op != IR_OP_ADD || in[2].a != 0 || in[2].b != 1)
    return NULL;
  LowerBuf *t = s->operands[1];
  if (s->operands[0] != s->out || t->kind != LOWER_BUF_ARENA || t->dtype != CK_DT_F32 ||
      s->out->dtype != CK_DT_F32 || t->numel != s->out->numel || s->out_offset != 0)
    return NULL;
  return t;
}

/* The step before `before` that writes t: a whole (rank 0) pool GEMM with
 * flags 0 and t private to it and one consumer, or NULL. */
static LowerStep *lower_x86_producer(LowerProgram *p, int before, const LowerBuf *t) {
  if (lower_x86_refs(p, t) != 2) return NULL;
  LowerStep *g = NULL;
  for (int k = 0; k < before; k++)
    if (p->steps.items[k]->out == t) g = p->steps.items[k];
  if (!g || g->kind != LOWER_STEP_KERNEL || strcmp(g->kernel, "ck_gemm_f32") != 0 || g->rank != 0 ||
      g->nargs != 13 || g->args[1].kind != LOWER_ARG_BUF || g->args[1].buf != t || g->args[12].i != 0)
    return NULL;
  return g;
}

static void lower_x86_drop(LowerProgram *p, int si) {
  for (int k = si; k + 1 < p->steps.len; k++) p->steps.items[k] = p->steps.items[k + 1];
  p->steps.len--;
}

/* `t = op(A) op(B); u = permute(t, (1, 0))` (how autodiff spells a Linear
 * weight's gradient) is one GEMM writing u = op(B)^T op(A)^T. Each element
 * is the same fmaf chain in the same k order (fmaf(x, y, c) == fmaf(y, x, c)),
 * so u is bit for bit what the two steps gave. */
static bool lower_x86_fold_transpose(LowerProgram *p, int si) {
  LowerStep *s = p->steps.items[si];
  if (s->kind != LOWER_STEP_KERNEL || !s->kernel || strcmp(s->kernel, "ck_permute") != 0 || s->rank != 0 ||
      s->nargs != 6 || s->args[0].kind != LOWER_ARG_BUF || s->args[1].kind != LOWER_ARG_BUF ||
      s->args[3].kind != LOWER_ARG_INT || s->args[3].i != 2 || s->args[4].kind != LOWER_ARG_INTS ||
      s->args[5].kind != LOWER_ARG_INTS || s->args[5].ints[0] != 1 || s->args[5].ints[1] != 0)
    return false;
  LowerBuf *t = s->args[1].buf, *u = s->args[0].buf;
  if (t->dtype != CK_DT_F32 || u->dtype != CK_DT_F32 || u != s->out || lower_buf_root(u) != u) return false;
  LowerStep *g = lower_x86_producer(p, si, t);
  /* args: pool, out, a, b, batch, M, N, K, ta, tb, as, bs, flags */
  if (!g || g->args[4].i != 1 || g->args[5].i != s->args[4].ints[0] || g->args[6].i != s->args[4].ints[1])
    return false;
  LowerArg a = g->args[2], b = g->args[3];
  int64_t M = g->args[5].i, N = g->args[6].i, ta = g->args[8].i, tb = g->args[9].i;
  g->out = u;
  g->node = s->node;
  g->args[1].buf = u;
  g->args[2] = b;
  g->args[3] = a;
  g->args[5].i = N;
  g->args[6].i = M;
  g->args[8].i = !tb;
  g->args[9].i = !ta;
  lower_x86_drop(p, si);
  return true;
}

/* A reference kernel with a pooled twin of the same contract (the pool
 * first) in rt-min/x86/ck_x86_kernels.h becomes that twin. */
static void lower_x86_pooled(LowerProgram *p, LowerStep *s, const char *kernel) {
  LowerArg *args = CKC_NEW_ARRAY(p->module->arena, LowerArg, s->nargs + 1);
  args[0].kind = LOWER_ARG_POOL;
  args[0].operand = -1;
  memcpy(args + 1, s->args, (size_t)s->nargs * sizeof *args);
  s->args = args;
  s->nargs += 1;
  s->kernel = kernel;
}

/* Floats of conv workspace per slab (CK_X86_CONV_SCRATCH of rt-min/x86/ck_x86_conv.h):
 * 640 KB, so that a slab's col and dys stay in a 2 MB L2 beside the GEMM's
 * packed panels (the cnn sample's second conv: 4 samples a slab, 20-25%
 * faster than 22 samples in 3 MB). */
#define LOWER_X86_CONV_FLOATS ((int64_t)160 << 10)

/* ck_conv2d_f32 (18 args) / ck_conv2d_backward_f32 (20) -> the im2col + GEMM
 * kernels of rt-min/x86/ck_x86_conv.h: the pool first, and last a workspace
 * planned in the arena for this step alone (its size fixes the slab of
 * samples per GEMM: as many as fit in LOWER_X86_CONV_FLOATS, at least one,
 * split evenly), so the kernel allocates nothing at run time. */
static void lower_x86_conv(LowerProgram *p, LowerStep *s, const char *kernel) {
  int o = s->nargs == 20 ? 2 : 0; /* the backward's two extra pointers */
  for (int k = 4 + o; k < s->nargs; k++)
    if (s->args[k].kind != LOWER_ARG_INT) return;
  int64_t N = s->args[4 + o].i, C = s->args[5 + o].i, OC = s->args[8 + o].i, KH = s->args[9 + o].i,
          KW = s->args[10 + o].i, OH = s->args[16 + o].i, OW = s->args[17 + o].i;
  int64_t per = (C * KH * KW + OC) * OH * OW, nb = per > 0 ? LOWER_X86_CONV_FLOATS / per : 1;
  if (nb < 1) nb = 1;
  if (nb > N) nb = N > 0 ? N : 1;
  int64_t nslab = (N + nb - 1) / nb;
  if (nslab > 0) nb = (N + nslab - 1) / nslab;
  int64_t floats = per * nb > 0 ? per * nb : 1;
  CkcArena *a = p->module->arena;
  LowerBuf *ws = CKC_NEW(a, LowerBuf);
  ws->id = p->bufs.len;
  ws->kind = LOWER_BUF_ARENA;
  ws->dtype = CK_DT_F32;
  ws->shape.rank = 1;
  ws->shape.dims[0] = floats;
  ws->numel = floats;
  ws->bytes = floats * 4;
  ws->first_def = ws->last_use = -1;
  ws->index_input = -1;
  const char *name = ckc_arena_printf(a, "conv_ws_%d", ws->id);
  for (int i = 0, k = 2; i < p->bufs.len; i++)
    if (p->bufs.items[i]->cname && strcmp(p->bufs.items[i]->cname, name) == 0) {
      name = ckc_arena_printf(a, "conv_ws_%d_%d", ws->id, k++);
      i = -1;
    }
  ws->name = ws->cname = name;
  CKC_VEC_PUSH(a, p->bufs, ws);
  lower_x86_pooled(p, s, kernel);
  LowerArg *args = CKC_NEW_ARRAY(a, LowerArg, s->nargs + 2);
  memcpy(args, s->args, (size_t)s->nargs * sizeof *args);
  args[s->nargs].kind = LOWER_ARG_BUF;
  args[s->nargs].buf = ws;
  args[s->nargs].operand = -1;
  args[s->nargs + 1].kind = LOWER_ARG_INT;
  args[s->nargs + 1].i = floats;
  args[s->nargs + 1].operand = -1;
  s->args = args;
  s->nargs += 2;
  s->scratch = ws;
}

/* Whether step s is ck_x86_sum_f32(pool, out, x, outer, n, inner) with
 * these extents (x and out: the buffers themselves, no views). */
static bool lower_x86_is_sum(const LowerStep *s, const LowerBuf *x, int64_t outer, int64_t n, int64_t inner) {
  return s->kind == LOWER_STEP_KERNEL && s->kernel && strcmp(s->kernel, "ck_x86_sum_f32") == 0 && s->rank == 0 &&
         s->nargs == 6 && s->args[1].kind == LOWER_ARG_BUF && s->args[1].buf == s->out &&
         s->args[2].kind == LOWER_ARG_BUF && s->args[2].buf == x && s->args[3].i == outer && s->args[4].i == n &&
         s->args[5].i == inner;
}

/* A conv bias gradient `sum(dy, axes=(0, 2, 3))`, lowered as
 * ck_x86_sum_f32(t, dy, N*OC, P, 1); ck_x86_sum_f32(db, t, 1, N, OC) (one
 * step when N == 1), where an earlier conv backward step reads the same dy
 * with the same N, OC and P = OH*OW and has no dbias: that step computes db
 * (zeroed just before it; its 16-lane sums, rt-min/x86/ck_x86_conv.h) and
 * the sum steps go. The conv reads dy anyway, so the bias costs one more
 * pass over rows already in cache instead of two separate kernels. The bits
 * differ from the two sums by rounding only (a different summation order),
 * and do not depend on the thread count. */
static bool lower_x86_fold_conv_bias(LowerProgram *p, int si) {
  LowerStep *a = p->steps.items[si];
  if (a->kind != LOWER_STEP_KERNEL || !a->kernel || strcmp(a->kernel, "ck_x86_sum_f32") != 0 || a->nargs != 6 ||
      a->args[2].kind != LOWER_ARG_BUF || a->args[5].i != 1)
    return false;
  LowerBuf *dy = a->args[2].buf;
  for (int ci = 0; ci < si; ci++) {
    LowerStep *c = p->steps.items[ci];
    if (c->kind != LOWER_STEP_KERNEL || !c->kernel || strcmp(c->kernel, "ck_x86_conv2d_backward_f32") != 0 ||
        c->nargs != 23 || c->args[3].kind != LOWER_ARG_NULL || c->args[4].kind != LOWER_ARG_BUF ||
        c->args[4].buf != dy)
      continue;
    int64_t N = c->args[7].i, OC = c->args[11].i, P = c->args[19].i * c->args[20].i;
    if (N < 1 || OC < 2 || P < 2) return false; /* unit dims lower to other sums */
    LowerStep *b = NULL;
    LowerBuf *db = NULL;
    if (N == 1 && lower_x86_is_sum(a, dy, OC, P, 1)) {
      db = a->out;
    } else if (N > 1 && lower_x86_is_sum(a, dy, N * OC, P, 1) && si + 1 < p->steps.len &&
               lower_x86_refs(p, a->out) == 2 && lower_x86_is_sum(p->steps.items[si + 1], a->out, 1, N, OC)) {
      b = p->steps.items[si + 1];
      db = b->out;
    }
    if (!db || db->kind != LOWER_BUF_ARENA || db->dtype != CK_DT_F32 || db->numel != OC || db->alias_of)
      return false;
    for (int k = ci; k < si; k++) { /* db untouched until the sums write it, dy unchanged */
      const LowerBuf *o = lower_buf_root(p->steps.items[k]->out);
      if (o == lower_buf_root(db) || (k > ci && o == lower_buf_root(dy))) return false;
    }
    c->args[3].kind = LOWER_ARG_BUF;
    c->args[3].buf = db;
    c->args[3].operand = -1;
    LowerStep *z = CKC_NEW(p->module->arena, LowerStep);
    z->kind = LOWER_STEP_ZERO;
    z->node = c->node;
    z->out = db;
    z->operands[0] = db;
    z->noperands = 0;
    if (b) lower_x86_drop(p, si + 1);
    lower_x86_drop(p, si);
    CKC_VEC_PUSH(p->module->arena, p->steps, z);
    for (int k = p->steps.len - 1; k > ci; k--) p->steps.items[k] = p->steps.items[k - 1];
    p->steps.items[ci] = z;
    return true;
  }
  return false;
}

/* Rows at or below which a GEMM reads B in place (CK_GEMM_SMALL_MAX_M of
 * rt-min/x86/ck_gemm_small.h). */
#define LOWER_X86_SMALL_M 8

/* ck_gemm_f32(pool, ..., M, ...) with M <= LOWER_X86_SMALL_M rows (counting
 * the batch when B is shared across it, as the rows then fold together)
 *   -> ck_gemm_small_f32(pool, ...same args...)
 * the path that reads B in place instead of packing it (one-token decoding:
 * M = the sequences, B = a weight). Same contract and bits as ck_gemm_f32. */
static void lower_x86_small_gemm(LowerStep *s) {
  if (s->kind != LOWER_STEP_KERNEL || !s->kernel || strcmp(s->kernel, "ck_gemm_f32") != 0 || s->nargs != 13)
    return;
  const LowerArg *batch = &s->args[4], *m = &s->args[5], *bs = &s->args[11];
  if (batch->kind != LOWER_ARG_INT || m->kind != LOWER_ARG_INT || bs->kind != LOWER_ARG_INT) return;
  int64_t rows = bs->i == 0 ? batch->i * m->i : m->i;
  if (m->i >= 1 && rows <= LOWER_X86_SMALL_M) s->kernel = "ck_gemm_small_f32";
}

void lower_x86_kernels(LowerProgram *p) {
  for (int si = 0; si < p->steps.len; si++) {
    LowerStep *s = p->steps.items[si];
    if (s->kind != LOWER_STEP_KERNEL || !s->kernel) continue;
    if (strcmp(s->kernel, "ck_matmul_f32") == 0 && s->nargs == 11)
      lower_x86_gemm(p, s);
    else if (strcmp(s->kernel, "ck_attention_f32") == 0 && s->nargs == 12 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_attention_f32");
    else if (strcmp(s->kernel, "ck_attention_backward_f32") == 0 && s->nargs == 15 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_attention_backward_f32");
    else if (strcmp(s->kernel, "ck_layernorm_f32") == 0 && s->nargs == 9 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_layernorm_f32");
    else if (strcmp(s->kernel, "ck_layernorm_backward_f32") == 0 && s->nargs == 10 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_layernorm_backward_f32");
    else if (strcmp(s->kernel, "ck_sum_f32") == 0 && s->nargs == 5 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_sum_f32");
    else if (strcmp(s->kernel, "ck_cross_entropy_f32") == 0 && s->nargs == 7 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_cross_entropy_f32");
    else if (strcmp(s->kernel, "ck_cross_entropy_backward_f32") == 0 && s->nargs == 8 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_cross_entropy_backward_f32");
    else if (strcmp(s->kernel, "ck_conv2d_f32") == 0 && s->nargs == 18 && s->rank == 0 && !s->scratch)
      lower_x86_conv(p, s, "ck_x86_conv2d_f32");
    else if (strcmp(s->kernel, "ck_conv2d_backward_f32") == 0 && s->nargs == 20 && s->rank == 0 && !s->scratch)
      lower_x86_conv(p, s, "ck_x86_conv2d_backward_f32");
    else if (strcmp(s->kernel, "ck_maxpool2d_f32") == 0 && s->nargs == 14 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_maxpool2d_f32");
    else if (strcmp(s->kernel, "ck_maxpool2d_backward_f32") == 0 && s->nargs == 15 && s->rank == 0)
      lower_x86_pooled(p, s, "ck_x86_maxpool2d_backward_f32");
  }
  for (int si = 0; si < p->steps.len; si++)
    if (lower_x86_fold_transpose(p, si)) si--;
  for (int si = 0; si < p->steps.len; si++)
    if (lower_x86_fold_conv_bias(p, si)) si--;
  /* gradient epilogue: the producing GEMM accumulates into grads itself */
  for (int si = 0; si < p->steps.len; si++) {
    LowerStep *add = p->steps.items[si];
    LowerBuf *t = lower_x86_grad_add(add);
    LowerStep *g = t ? lower_x86_producer(p, si, t) : NULL;
    if (!g) continue;
    g->out = add->out;
    g->args[1].buf = add->out;
    g->args[12].i = LOWER_X86_ACCUMULATE;
    lower_x86_drop(p, si);
    si--;
  }
  /* last, so the rewrites above still see every ck_gemm_f32 */
  for (int si = 0; si < p->steps.len; si++) lower_x86_small_gemm(p->steps.items[si]);
}
