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
 * the same arguments on the pool, split over (batch, head) items; and where
 * q, k, v are head-split copies of one qkv buffer (and the output, dout and
 * qkv's gradient head merges), ck_x86_attention_heads_f32 /
 * _heads_backward_f32 read and write them in place and the copies go
 * (lower_x86_heads, lower/lower_x86_heads.c); likewise
 * ck_layernorm_f32 / ck_layernorm_backward_f32 -> ck_x86_layernorm_*(pool, ...),
 * and ck_sum_f32 -> ck_x86_sum_f32(pool, ...), split over fixed row (and
 * column) blocks. All bitwise equal to the reference kernels
 * (rt-min/x86/ck_x86_kernels.h). A layernorm's gradients (recompute,
 * memsets, accumulating backward, and the bias gradient's sum of dy) become
 * one ck_x86_layernorm_backward_set_f32 call that sets dx, dweight and
 * dbias, with the same bits (lower_x86_fold_norm_bwd), and an embedding's
 * gradient (memset, scatter-add, tied join, grads add) one
 * ck_x86_embedding_grad_f32 pass over the table (lower_x86_fold_embedding_grad).
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
 * ...), bitwise equal, split over (n, c) planes. A conv feeding only a relu
 * (whose other readers are relu-gradient masks) becomes
 * ck_x86_conv2d_relu_f32, a max pool of that relu's output is run inside
 * the conv's chunks (ck_x86_conv2d_relu_maxpool2d_f32), and memset + pool
 * backward + relu mask become ck_x86_maxpool2d_relu_backward_f32: all with
 * the bits of the steps they replace.
 *
 *   ck_gemm_f32(pool, out, a, b, batch, M, ...) with M <= 8 rows
 *     -> ck_gemm_small_f32(pool, out, a, b, batch, M, ...)
 *
 * decoding's products read the weights in place, never packing them
 * (rt-min/x86/ck_gemm_small.h); the same bits as ck_gemm_f32. */
#include <stdint.h>
#include <string.h>

#include "lower/lower.h"
#include "lower/lower_x86.h"

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

void lower_x86_drop(LowerProgram *p, int si) {
  for (int k = si; k + 1 < p->steps.len; k++) p->steps.items[k] = p->steps.items[k + 1];
  p->steps.len--;
}

/* `into` now also computes what `from` did (a fold): the IR nodes of both,
 * in program order (from ran after into when `later`), each once, so the
 * emitted comment above the fused call names everything it computes. */
static void lower_x86_absorb(LowerStep *into, const LowerStep *from, bool later) {
  const LowerStep *part[2] = {later ? into : from, later ? from : into};
  const IrNode *all[LOWER_MAX_NODES];
  int n = 0;
  for (int k = 0; k < 2; k++) {
    const IrNode *one[1] = {part[k]->node};
    const IrNode *const *list = part[k]->nnodes ? part[k]->nodes : one;
    int m = part[k]->nnodes ? part[k]->nnodes : part[k]->node != NULL;
    for (int i = 0; i < m; i++) {
      bool seen = false;
      for (int j = 0; j < n; j++) seen = seen || all[j] == list[i];
      if (!seen && n < LOWER_MAX_NODES) all[n++] = list[i];
    }
  }
  memcpy(into->nodes, all, (size_t)n * sizeof all[0]);
  into->nnodes = n;
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
  lower_x86_absorb(g, s, true);
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

/* Whether buffer b (its root) is mentioned by step s in any way. */
static bool lower_x86_mentions(const LowerStep *s, const LowerBuf *b) {
  bool hit = lower_buf_root(s->out) == b || (s->scratch && lower_buf_root(s->scratch) == b);
  for (int k = 0; k < s->noperands; k++) hit = hit || lower_buf_root(s->operands[k]) == b;
  for (int k = 0; k < s->nargs; k++)
    hit = hit || (s->args[k].kind == LOWER_ARG_BUF && lower_buf_root(s->args[k].buf) == b);
  return hit;
}

/* Whether operand k of loop step s (k = -1: its out) walks a whole dense
 * buffer of numel elements in index order. */
static bool lower_x86_dense_walk(const LowerStep *s, int k, int64_t numel) {
  int64_t stride = 1, total = 1;
  for (int d = s->rank - 1; d >= 0; d--) {
    if ((k < 0 ? s->out_strides[d] : s->strides[k][d]) != stride && s->extents[d] != 1) return false;
    stride *= s->extents[d];
    total *= s->extents[d];
  }
  return total == numel;
}

/* The fused layernorm backward at si, then the residual join of its dx:
 *   ck_x86_layernorm_backward_set_f32(..., dx, ..., res = NULL, ...)
 *   out = add(r, dx)  (or add(dx, r)), dx read nowhere else
 *   -> ck_x86_layernorm_backward_set_f32(..., out, ..., res = r, ...)
 * the kernel writes r + dx's value itself (the same bits: float addition
 * commutes), so dx is never stored and read back. */
static void lower_x86_fold_residual(LowerProgram *p, int si) {
  LowerStep *s = p->steps.items[si];
  if (si + 1 >= p->steps.len || s->args[1].kind != LOWER_ARG_BUF) return;
  LowerBuf *dx = s->args[1].buf;
  LowerStep *a = p->steps.items[si + 1];
  if (a->kind != LOWER_STEP_LOOP || a->noperands != 2 || a->nbody != 3 || a->out_offset != 0 ||
      a->body[0].kind != LOWER_I_LOAD || a->body[1].kind != LOWER_I_LOAD || a->body[2].kind != LOWER_I_OP ||
      a->body[2].op != IR_OP_ADD || a->body[0].a == a->body[1].a || a->body[2].a != 0 || a->body[2].b != 1)
    return;
  int k = a->operands[0] == dx ? 0 : a->operands[1] == dx ? 1 : -1;
  if (k < 0 || a->operands[1 - k] == dx || lower_buf_root(dx) != dx || dx->alias_of || lower_x86_refs(p, dx) != 2)
    return;
  LowerBuf *out = a->out, *r = a->operands[1 - k];
  if (out == r || out->kind != LOWER_BUF_ARENA || out->dtype != CK_DT_F32 || r->dtype != CK_DT_F32 ||
      lower_buf_root(out) != out || out->alias_of || out->numel != dx->numel || r->numel != dx->numel ||
      !lower_x86_dense_walk(a, -1, dx->numel) || !lower_x86_dense_walk(a, 0, dx->numel) ||
      !lower_x86_dense_walk(a, 1, dx->numel))
    return;
  s->args[1].buf = out;
  s->args[9].kind = LOWER_ARG_BUF;
  s->args[9].buf = r;
  s->args[9].operand = -1;
  if (s->out == dx) s->out = out;
  lower_x86_absorb(s, a, true);
  lower_x86_drop(p, si + 1);
}

/* A layernorm's gradients as lower_norm_bwd writes them (after the renames):
 *   ck_x86_layernorm_f32(pool, junk, mean, rstd, x, NULL, NULL, rows, n, eps)
 *   memset(dx); memset(dw)            (those that exist)
 *   ck_x86_layernorm_backward_f32(pool, dx, dw, NULL, dy, x, w, mean, rstd, rows, n)
 * plus, later, the bias gradient ck_x86_sum_f32(pool, db, dy, 1, rows, n)
 *   -> ck_x86_layernorm_backward_set_f32(pool, dx, dw, db, mean, rstd, dy, x, w, NULL, rows, n, eps)
 * one call that sets its outputs: the normalised output nobody reads is not
 * written, dx and dw are not zeroed, dy is read by one kernel instead of two.
 * The kernel promises the sequence's bits (rt-min/x86/ck_x86_kernels.h). */
static bool lower_x86_fold_norm_bwd(LowerProgram *p, int si) {
  LowerStep *s = p->steps.items[si];
  if (s->kind != LOWER_STEP_KERNEL || !s->kernel || strcmp(s->kernel, "ck_x86_layernorm_f32") != 0 ||
      s->rank != 0 || s->nargs != 10 || s->args[1].kind != LOWER_ARG_BUF || s->args[2].kind != LOWER_ARG_BUF ||
      s->args[3].kind != LOWER_ARG_BUF || s->args[4].kind != LOWER_ARG_BUF || s->args[5].kind != LOWER_ARG_NULL ||
      s->args[6].kind != LOWER_ARG_NULL)
    return false;
  int bi = si + 1;
  while (bi < p->steps.len && p->steps.items[bi]->kind == LOWER_STEP_ZERO && bi < si + 3) bi++;
  if (bi >= p->steps.len) return false;
  LowerStep *b = p->steps.items[bi];
  if (b->kind != LOWER_STEP_KERNEL || !b->kernel || strcmp(b->kernel, "ck_x86_layernorm_backward_f32") != 0 ||
      b->rank != 0 || b->nargs != 11 || b->args[3].kind != LOWER_ARG_NULL || b->args[4].kind != LOWER_ARG_BUF ||
      b->args[5].kind != LOWER_ARG_BUF || b->args[5].buf != s->args[4].buf || b->args[7].kind != LOWER_ARG_BUF ||
      b->args[7].buf != s->args[2].buf || b->args[8].kind != LOWER_ARG_BUF || b->args[8].buf != s->args[3].buf ||
      b->args[9].kind != LOWER_ARG_INT || s->args[7].kind != LOWER_ARG_INT || b->args[9].i != s->args[7].i ||
      b->args[10].kind != LOWER_ARG_INT || s->args[8].kind != LOWER_ARG_INT || b->args[10].i != s->args[8].i)
    return false;
  LowerBuf *dx = b->args[1].kind == LOWER_ARG_BUF ? b->args[1].buf : NULL;
  LowerBuf *dw = b->args[2].kind == LOWER_ARG_BUF ? b->args[2].buf : NULL;
  LowerBuf *junk = s->args[1].buf, *dy = b->args[4].buf;
  if ((!dx && !dw) || (dx ? junk != dx : lower_x86_refs(p, junk) != 1)) return false;
  for (int k = si + 1; k < bi; k++) { /* the zeroing of exactly dx and dw */
    const LowerBuf *z = p->steps.items[k]->out;
    if (z != dx && z != dw) return false;
  }
  if (bi - si - 1 != (dx != NULL) + (dw != NULL)) return false;
  /* the bias gradient: a later sum of the same dy, dy and db untouched in between */
  int64_t rows = s->args[7].i, n = s->args[8].i;
  LowerBuf *db = NULL;
  int sumi = -1;
  for (int k = bi + 1; k < p->steps.len && sumi < 0; k++) {
    LowerStep *t = p->steps.items[k];
    if (lower_x86_is_sum(t, dy, 1, rows, n) && t->out->kind == LOWER_BUF_ARENA && t->out->dtype == CK_DT_F32 &&
        t->out->numel == n && !t->out->alias_of && lower_buf_root(t->out) == t->out) {
      bool clean = true;
      for (int j = bi + 1; j < k && clean; j++) {
        const LowerStep *u = p->steps.items[j];
        clean = !lower_x86_mentions(u, t->out) &&
                (u->kind == LOWER_STEP_LOOP ? lower_buf_root(u->out) != lower_buf_root(dy)
                                            : !lower_x86_mentions(u, lower_buf_root(dy)));
      }
      if (clean) db = t->out, sumi = k;
      break;
    }
    if (lower_buf_root(t->out) == lower_buf_root(dy)) break; /* dy rewritten: no later sum is of this dy */
  }
  LowerArg *args = CKC_NEW_ARRAY(p->module->arena, LowerArg, 13);
  args[0] = s->args[0];            /* pool */
  args[1] = b->args[1];            /* dx */
  args[2] = b->args[2];            /* dw */
  args[3] = b->args[3];            /* db: NULL unless folded below */
  if (db) {
    args[3].kind = LOWER_ARG_BUF;
    args[3].buf = db;
    args[3].operand = -1;
  }
  args[4] = s->args[2];            /* mean */
  args[5] = s->args[3];            /* rstd */
  args[6] = b->args[4];            /* dy */
  args[7] = b->args[5];            /* x */
  args[8] = b->args[6];            /* w */
  args[9] = b->args[3];            /* res: NULL unless folded below */
  args[10] = s->args[7];           /* rows */
  args[11] = s->args[8];           /* n */
  args[12] = s->args[9];           /* eps */
  s->kernel = "ck_x86_layernorm_backward_set_f32";
  s->args = args;
  s->nargs = 13;
  s->out = b->out;
  s->scratch = b->scratch;
  lower_x86_absorb(s, b, true);
  if (sumi >= 0) lower_x86_absorb(s, p->steps.items[sumi], true);
  if (sumi >= 0) lower_x86_drop(p, sumi);
  for (int k = bi; k > si; k--) lower_x86_drop(p, k);
  lower_x86_fold_residual(p, si);
  return true;
}

/* An embedding's gradient as the c99 lowering writes it:
 *   memset(e); ck_embedding_backward_f32(e, dy, idx, n, V, C)
 *   [u = add(t, e)]            a tied head's gradient t (either operand order)
 *   grads[w] += u (or e)
 *   -> ck_x86_embedding_grad_f32(pool, grads[w], t or NULL, dy, idx, n, V, C, ws)
 * one pass over the table instead of four (rt-min/x86/ck_x86_nn.h: the same
 * bits), and the table-sized temporaries e and u are gone (GPT-2: 154 MB
 * each, and the memset was one thread). ws: V + 1 + n int32 for the
 * kernel's counting sort of idx, planned here like the conv workspace. The
 * fused step takes the place of the grads add; nothing between reads or
 * writes e, u, dy, idx, t or grads[w]. */
static bool lower_x86_fold_embedding_grad(LowerProgram *p, int ki) {
  LowerStep *k = p->steps.items[ki];
  if (k->kind != LOWER_STEP_KERNEL || !k->kernel || strcmp(k->kernel, "ck_embedding_backward_f32") != 0 ||
      k->rank != 0 || k->nargs != 6 || ki < 1 || k->args[0].kind != LOWER_ARG_BUF || k->args[1].kind != LOWER_ARG_BUF ||
      k->args[2].kind != LOWER_ARG_BUF || k->args[3].kind != LOWER_ARG_INT || k->args[4].kind != LOWER_ARG_INT ||
      k->args[5].kind != LOWER_ARG_INT)
    return false;
  LowerBuf *e = k->args[0].buf, *dy = k->args[1].buf, *idx = k->args[2].buf;
  LowerStep *z = p->steps.items[ki - 1];
  if (z->kind != LOWER_STEP_ZERO || z->out != e || e->kind != LOWER_BUF_ARENA || e->dtype != CK_DT_F32 ||
      e->alias_of || lower_buf_root(e) != e)
    return false;
  int64_t n = k->args[3].i, V = k->args[4].i, C = k->args[5].i;
  if (n < 0 || V < 1 || C < 1 || e->numel != V * C || V + 1 + n > INT32_MAX) return false;
  /* the grads add, and the optional tied join before it */
  int ai = -1, gi = -1;
  LowerBuf *t = NULL, *u = e;
  for (int j = ki + 1; j < p->steps.len && gi < 0; j++) {
    LowerStep *s = p->steps.items[j];
    if (ai < 0 && u == e && s->kind == LOWER_STEP_LOOP && s->noperands == 2 && s->nbody == 3 && s->out_offset == 0 &&
        s->body[0].kind == LOWER_I_LOAD && s->body[1].kind == LOWER_I_LOAD && s->body[0].a != s->body[1].a &&
        s->body[2].kind == LOWER_I_OP && s->body[2].op == IR_OP_ADD && s->body[2].a == 0 && s->body[2].b == 1 &&
        (s->operands[0] == e) != (s->operands[1] == e)) {
      t = s->operands[0] == e ? s->operands[1] : s->operands[0];
      if (t->dtype != CK_DT_F32 || t->numel != e->numel || s->out->kind != LOWER_BUF_ARENA || s->out->alias_of ||
          lower_buf_root(s->out) != s->out || !lower_x86_dense_walk(s, -1, e->numel) ||
          !lower_x86_dense_walk(s, 0, e->numel) || !lower_x86_dense_walk(s, 1, e->numel))
        return false;
      ai = j;
      u = s->out;
      continue;
    }
    if (lower_x86_grad_add(s) == u) {
      gi = j;
      break;
    }
    /* anything else in between must leave the fold's buffers alone */
    const LowerBuf *keep[6] = {e, u, lower_buf_root(dy), lower_buf_root(idx), t ? lower_buf_root(t) : NULL, NULL};
    for (int q = 0; q < 5; q++)
      if (keep[q] && lower_x86_mentions(s, keep[q])) return false;
    if (s->out->kind == LOWER_BUF_GRAD) return false; /* grads[w] may be this one */
  }
  if (gi < 0 || lower_x86_refs(p, e) != 3 || (ai >= 0 && lower_x86_refs(p, u) != 2)) return false;
  LowerStep *g = p->steps.items[gi];
  CkcArena *a = p->module->arena;
  LowerBuf *ws = CKC_NEW(a, LowerBuf);
  ws->id = p->bufs.len;
  ws->kind = LOWER_BUF_ARENA;
  ws->dtype = CK_DT_F32; /* int32 in the kernel: the same size */
  ws->shape.rank = 1;
  ws->shape.dims[0] = V + 1 + n;
  ws->numel = V + 1 + n;
  ws->bytes = ws->numel * 4;
  ws->first_def = ws->last_use = -1;
  ws->index_input = -1;
  const char *name = ckc_arena_printf(a, "embed_ws_%d", ws->id);
  for (int i = 0, q = 2; i < p->bufs.len; i++)
    if (p->bufs.items[i]->cname && strcmp(p->bufs.items[i]->cname, name) == 0) {
      name = ckc_arena_printf(a, "embed_ws_%d_%d", ws->id, q++);
      i = -1;
    }
  ws->name = ws->cname = name;
  CKC_VEC_PUSH(a, p->bufs, ws);
  LowerArg *args = CKC_NEW_ARRAY(a, LowerArg, 10);
  memset(args, 0, 10 * sizeof *args);
  args[0].kind = LOWER_ARG_POOL;
  for (int q = 0; q < 10; q++) args[q].operand = -1;
  args[1].kind = LOWER_ARG_BUF;
  args[1].buf = g->out;
  args[2].kind = t ? LOWER_ARG_BUF : LOWER_ARG_NULL;
  args[2].buf = t;
  args[3] = k->args[1]; /* dy */
  args[4] = k->args[2]; /* idx */
  args[5] = k->args[3]; /* n */
  args[6] = k->args[4]; /* V */
  args[7] = k->args[5]; /* C */
  args[8].kind = LOWER_ARG_BUF;
  args[8].buf = ws;
  k->kernel = "ck_x86_embedding_grad_f32";
  k->args = args;
  k->nargs = 9;
  k->out = g->out;
  k->scratch = ws;
  if (ai >= 0) k->node = p->steps.items[ai]->node; /* its comment: grads[w] += the joined gradient */
  p->steps.items[gi] = k; /* the fused step where the grads add was */
  if (ai >= 0) lower_x86_drop(p, ai);
  lower_x86_drop(p, ki);
  lower_x86_drop(p, ki - 1);
  return true;
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

/* Whether loop l is `where(gt(x, 0), g, +0)` over whole contiguous f32
 * buffers (how autodiff writes relu's gradient: x relu's input, g the
 * incoming gradient); *xk and *gk: the operand indices of x and g. */
static bool lower_x86_relu_mask(const LowerStep *l, int *xk, int *gk) {
  if (l->kind != LOWER_STEP_LOOP || l->rank != 1 || l->out_offset != 0 || l->out_strides[0] != 1 ||
      l->noperands != 2 || l->nbody < 4 || l->out->dtype != CK_DT_F32 || l->extents[0] != l->out->numel)
    return false;
  const LowerInstr *in = l->body, *w = &in[l->nbody - 1];
  if (w->kind != LOWER_I_OP || w->op != IR_OP_WHERE || w->a < 0 || w->b < 0 || w->c < 0) return false;
  const LowerInstr *c = &in[w->a], *g = &in[w->b], *z = &in[w->c];
  if (c->kind != LOWER_I_OP || c->op != IR_OP_GT || c->a < 0 || c->b < 0 || g->kind != LOWER_I_LOAD ||
      z->kind != LOWER_I_CONST || z->value != 0.0 || 1.0 / z->value < 0.0)
    return false;
  const LowerInstr *x = &in[c->a], *z2 = &in[c->b];
  if (x->kind != LOWER_I_LOAD || z2->kind != LOWER_I_CONST || z2->value != 0.0 || x->a == g->a) return false;
  for (int k = 0; k < 2; k++)
    if (l->strides[k][0] != 1 || l->operands[k]->dtype != CK_DT_F32 || l->operands[k]->numel != l->extents[0])
      return false;
  *xk = x->a;
  *gk = g->a;
  return true;
}

/* `t = conv2d(...); r = relu(t)` where t's only other readers are relu
 * gradient masks `where(gt(t, 0), g, 0)` -> one ck_x86_conv2d_relu_f32
 * writing r, the masks reading r: relu(t) > 0 exactly when t > 0 (NaN and
 * -0 included, rt-min/x86/ck_x86_conv.h), so every bit stays, and t is
 * neither written nor read again. */
static bool lower_x86_fold_conv_relu(LowerProgram *p, int si) {
  LowerStep *s = p->steps.items[si];
  if (s->kind != LOWER_STEP_KERNEL || !s->kernel || strcmp(s->kernel, "ck_x86_conv2d_f32") != 0 || s->rank != 0 ||
      s->nargs != 21 || s->args[1].kind != LOWER_ARG_BUF || si + 1 >= p->steps.len)
    return false;
  LowerBuf *t = s->args[1].buf;
  LowerStep *r = p->steps.items[si + 1];
  if (t != s->out || lower_buf_root(t) != t || t->dtype != CK_DT_F32 || r->kind != LOWER_STEP_LOOP || r->rank != 1 ||
      r->extents[0] != t->numel || r->out_offset != 0 || r->out_strides[0] != 1 || r->noperands != 1 ||
      r->operands[0] != t || r->strides[0][0] != 1 || r->nbody != 2 || r->body[0].kind != LOWER_I_LOAD ||
      r->body[0].a != 0 || r->body[1].kind != LOWER_I_OP || r->body[1].op != IR_OP_RELU || r->body[1].a != 0)
    return false;
  LowerBuf *rb = r->out;
  if (lower_buf_root(rb) != rb || rb->dtype != CK_DT_F32 || rb->numel != t->numel || lower_x86_refs(p, t) >= 1000)
    return false;
  for (int k = 0; k < p->steps.len; k++) { /* t's other readers: masks only */
    const LowerStep *u = p->steps.items[k];
    int xk, gk;
    if (k == si || k == si + 1 || !lower_x86_mentions(u, t)) continue;
    if (k < si || !lower_x86_relu_mask(u, &xk, &gk) || u->operands[xk] != t || u->operands[gk] == t ||
        lower_buf_root(u->out) == t)
      return false;
  }
  for (int k = si + 2; k < p->steps.len; k++) {
    LowerStep *u = p->steps.items[k];
    int xk, gk;
    if (lower_x86_mentions(u, t) && lower_x86_relu_mask(u, &xk, &gk)) u->operands[xk] = rb;
  }
  s->kernel = "ck_x86_conv2d_relu_f32";
  s->out = rb;
  s->args[1].buf = rb;
  lower_x86_absorb(s, r, true);
  s->node = r->node;
  lower_x86_drop(p, si + 1);
  return true;
}

/* `ck_x86_conv2d_relu_f32(pool, r, ...); ck_x86_maxpool2d_f32(pool, h, r,
 * N, OC, OH, OW, ...)` -> one ck_x86_conv2d_relu_maxpool2d_f32 writing r and
 * h: each conv chunk pools its own planes while they are in cache (the bits
 * of the two calls, rt-min/x86/ck_x86_conv.h). */
static bool lower_x86_fold_conv_pool(LowerProgram *p, int si) {
  LowerStep *s = p->steps.items[si];
  if (s->kind != LOWER_STEP_KERNEL || !s->kernel || strcmp(s->kernel, "ck_x86_conv2d_relu_f32") != 0 ||
      s->rank != 0 || s->nargs != 21 || si + 1 >= p->steps.len)
    return false;
  LowerStep *q = p->steps.items[si + 1];
  if (q->kind != LOWER_STEP_KERNEL || !q->kernel || strcmp(q->kernel, "ck_x86_maxpool2d_f32") != 0 || q->rank != 0 ||
      q->nargs != 15 || q->args[1].kind != LOWER_ARG_BUF || q->args[2].kind != LOWER_ARG_BUF ||
      q->args[2].buf != s->out || q->out != q->args[1].buf)
    return false;
  /* the pool's N, C, H, W are the conv's N, OC, OH, OW */
  static const int conv_at[4] = {5, 9, 17, 18};
  for (int k = 0; k < 4; k++)
    if (q->args[3 + k].kind != LOWER_ARG_INT || s->args[conv_at[k]].kind != LOWER_ARG_INT ||
        q->args[3 + k].i != s->args[conv_at[k]].i)
      return false;
  LowerArg *args = CKC_NEW_ARRAY(p->module->arena, LowerArg, 30);
  memcpy(args, s->args, 21 * sizeof *args);
  args[21] = q->args[1];
  memcpy(args + 22, q->args + 7, 8 * sizeof *args); /* KH, KW, sh, sw, ph, pw, OH, OW */
  s->args = args;
  s->nargs = 30;
  s->kernel = "ck_x86_conv2d_relu_maxpool2d_f32";
  lower_x86_absorb(s, q, true);
  lower_x86_drop(p, si + 1);
  return true;
}

/* `memset(d); ck_x86_maxpool2d_backward_f32(pool, d, dy, x, ...);
 * m = where(gt(x, 0), d, 0)` (the gradient through maxpool(relu(.)) once
 * the mask reads relu's output x), d read by nothing else ->
 * ck_x86_maxpool2d_relu_backward_f32(pool, m, dy, x, ...), which sets m
 * plane by plane with the three steps' bits (rt-min/x86/ck_x86_conv.h). */
static bool lower_x86_fold_pool_relu_bwd(LowerProgram *p, int si) {
  if (si + 2 >= p->steps.len) return false;
  LowerStep *z = p->steps.items[si], *b = p->steps.items[si + 1], *m = p->steps.items[si + 2];
  int xk, gk;
  if (z->kind != LOWER_STEP_ZERO || b->kind != LOWER_STEP_KERNEL || !b->kernel ||
      strcmp(b->kernel, "ck_x86_maxpool2d_backward_f32") != 0 || b->rank != 0 || b->nargs != 16 ||
      b->args[1].kind != LOWER_ARG_BUF || b->args[3].kind != LOWER_ARG_BUF || !lower_x86_relu_mask(m, &xk, &gk))
    return false;
  LowerBuf *d = b->args[1].buf, *x = b->args[3].buf, *mo = m->out;
  if (z->out != d || b->out != d || lower_buf_root(d) != d || m->operands[gk] != d || m->operands[xk] != x ||
      lower_buf_root(mo) != mo || mo->numel != d->numel || d->dtype != CK_DT_F32 || lower_x86_refs(p, d) != 3 ||
      lower_buf_root(mo) == lower_buf_root(x) ||
      (b->args[2].kind == LOWER_ARG_BUF && lower_buf_root(b->args[2].buf) == lower_buf_root(mo)))
    return false;
  b->kernel = "ck_x86_maxpool2d_relu_backward_f32";
  b->out = mo;
  b->args[1].buf = mo;
  lower_x86_absorb(b, m, true);
  b->node = m->node;
  lower_x86_drop(p, si + 2);
  lower_x86_drop(p, si);
  return true;
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
  lower_x86_heads(p); /* before the folds below, which look for permutes too */
  for (int si = 0; si < p->steps.len; si++) lower_x86_fold_conv_relu(p, si);
  for (int si = 0; si < p->steps.len; si++) lower_x86_fold_pool_relu_bwd(p, si);
  for (int si = 0; si < p->steps.len; si++)
    if (lower_x86_fold_transpose(p, si)) si--;
  for (int si = 0; si < p->steps.len; si++)
    if (lower_x86_fold_conv_bias(p, si)) si--;
  for (int si = 0; si < p->steps.len; si++) lower_x86_fold_norm_bwd(p, si);
  for (int si = 0; si < p->steps.len; si++)
    if (lower_x86_fold_embedding_grad(p, si)) si--;
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
  /* after the rewrites above, which take a step's out as all it writes
   * (the fused conv also writes the pool's output, an argument) */
  for (int si = 0; si < p->steps.len; si++) lower_x86_fold_conv_pool(p, si);
  /* last, so the rewrites above still see every ck_gemm_f32 */
  for (int si = 0; si < p->steps.len; si++) lower_x86_small_gemm(p->steps.items[si]);
}
