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
 * (rt-min/x86/ck_x86_kernels.h). */
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
  }
  for (int si = 0; si < p->steps.len; si++)
    if (lower_x86_fold_transpose(p, si)) si--;
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
}
