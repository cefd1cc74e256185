/* lower/lower_x86_heads.c - the x86 lowering's attention-heads rewrite
 * (called by lower_x86_kernels in lower/lower_x86.c, before its folds):
 * attention reads q, k, v with head strides where the qkv product wrote
 * them and writes the merged rows itself, so the split/merge copies go. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lower/lower.h"
#include "lower/lower_x86.h"

/* ---- attention heads in place ------------------------------------------------------------
 * A transformer block splits qkv into heads and merges them back with copies:
 *   t = ck_slice(qkv, columns start .. start + H*Dh)    (one each for q, k, v)
 *   q = ck_permute(t viewed [B,T,H,Dh], (0,2,1,3))      [B,H,T,Dh]
 *   y = ck_x86_attention_f32(pool, y, q, k, v, B*H, T, S, Dh, Dv, ...)
 *   u = ck_permute(y, (0,2,1,3))                       [B,T,H,Dv], the merged rows
 * and train_step's backward reads the same q, k, v and a dout permuted from
 * the merged rows' gradient. The heads kernels (rt-min/x86/ck_x86_kernels.h)
 * address every operand with (offset, batch, head, row) strides, so
 *   ck_x86_attention_heads_f32(pool, u, qkv, qkv, qkv, lay, B, H, T, S, Dh, Dv, ...)
 * reads the heads where the GEMM wrote them and writes the merged rows
 * itself: the copies and their arena slots go, and every element keeps its
 * bits. A copy goes only when attention steps are all that read it; any
 * other operand is passed as the contiguous [B,H,T,D] it is. */

/* One attention operand: the buffer passed and its four layout numbers
 * (element offset, batch, head and row strides). */
typedef struct LowerX86View {
  LowerBuf *buf;
  int64_t lay[4];
} LowerX86View;

static bool lower_x86_kernel_is(const LowerStep *s, const char *kernel, int nargs) {
  return s->kind == LOWER_STEP_KERNEL && s->kernel && strcmp(s->kernel, kernel) == 0 && s->rank == 0 &&
         s->nargs == nargs;
}

/* Whether step s mentions storage root (out, operand, argument or scratch). */
static bool lower_x86_heads_touch(const LowerStep *s, const LowerBuf *root) {
  if (lower_buf_root(s->out) == root || (s->scratch && lower_buf_root(s->scratch) == root)) return true;
  for (int k = 0; k < s->noperands; k++)
    if (lower_buf_root(s->operands[k]) == root) return true;
  for (int k = 0; k < s->nargs; k++)
    if (s->args[k].kind == LOWER_ARG_BUF && lower_buf_root(s->args[k].buf) == root) return true;
  return false;
}

static int lower_x86_nuses(const LowerProgram *p, const LowerBuf *root) {
  int n = 0;
  for (int si = 0; si < p->steps.len; si++) n += lower_x86_heads_touch(p->steps.items[si], root);
  return n;
}

/* The one step that writes root, or -1 (none, or several). */
static int lower_x86_writer(const LowerProgram *p, const LowerBuf *root) {
  int w = -1;
  for (int si = 0; si < p->steps.len; si++)
    if (lower_buf_root(p->steps.items[si]->out) == root) {
      if (w >= 0) return -1;
      w = si;
    }
  return w;
}

/* Whether a step after `after` (up to `upto`, inclusive) writes root. */
static bool lower_x86_written(const LowerProgram *p, const LowerBuf *root, int after, int upto) {
  for (int si = after + 1; si <= upto && si < p->steps.len; si++)
    if (lower_buf_root(p->steps.items[si]->out) == root) return true;
  return false;
}

/* Step s is ck_permute(out, x, 4, ...) swapping the two middle dims of a
 * 4-d f32 tensor (dims: its input's [d0, d1, d2, d3]), or the same with a
 * unit d0 collapsed away (3-d, perm (1, 0, 2)). */
static bool lower_x86_swap(const LowerStep *s, int64_t d[4]) {
  if (!lower_x86_kernel_is(s, "ck_permute", 6) || s->args[0].kind != LOWER_ARG_BUF ||
      s->args[1].kind != LOWER_ARG_BUF || s->args[2].kind != LOWER_ARG_ELSIZE || s->args[2].dtype != CK_DT_F32 ||
      s->args[3].kind != LOWER_ARG_INT || s->args[4].kind != LOWER_ARG_INTS || s->args[5].kind != LOWER_ARG_INTS ||
      s->args[4].nints != s->args[3].i || s->args[5].nints != s->args[3].i)
    return false;
  const int64_t *dims = s->args[4].ints, *pm = s->args[5].ints;
  if (s->args[3].i == 4 && pm[0] == 0 && pm[1] == 2 && pm[2] == 1 && pm[3] == 3) {
    for (int i = 0; i < 4; i++) d[i] = dims[i];
    return true;
  }
  if (s->args[3].i == 3 && pm[0] == 1 && pm[1] == 0 && pm[2] == 2) {
    d[0] = 1;
    for (int i = 0; i < 3; i++) d[i + 1] = dims[i];
    return true;
  }
  return false;
}

/* Whether every step that reads x, but its writer w, is an attention step
 * reading it as q, k or v (forward args 2..4, backward args 5..7). */
static bool lower_x86_only_attention(const LowerProgram *p, const LowerBuf *x, int w) {
  for (int si = 0; si < p->steps.len; si++) {
    const LowerStep *s = p->steps.items[si];
    if (si == w || !lower_x86_heads_touch(s, x)) continue;
    int lo, hi;
    if (lower_x86_kernel_is(s, "ck_x86_attention_f32", 13) || lower_x86_kernel_is(s, "ck_x86_attention_heads_f32", 15))
      lo = 2, hi = 4;
    else if (lower_x86_kernel_is(s, "ck_x86_attention_backward_f32", 16) ||
             lower_x86_kernel_is(s, "ck_x86_attention_heads_backward_f32", 18))
      lo = 5, hi = 7;
    else
      return false;
    if (lower_buf_root(s->out) == x || (s->scratch && lower_buf_root(s->scratch) == x)) return false;
    for (int k = 0; k < s->nargs; k++)
      if (s->args[k].kind == LOWER_ARG_BUF && lower_buf_root(s->args[k].buf) == x && (k < lo || k > hi))
        return false;
  }
  return true;
}

/* q, k or v of attention step si (rows x cols per item, items = B*H) as
 * the slice of a wider buffer it was copied from: x = permute(view of
 * ck_slice(base, columns start.., step 1)), x read by attention steps only,
 * the slice by the permute only, base not written after the slice. Sets
 * *H and v (offset start, batch stride T*n, head stride Dh, row stride n). */
static bool lower_x86_head_src(const LowerProgram *p, LowerBuf *x, int si, int64_t items, int64_t rows,
                               int64_t cols, int64_t *H, LowerX86View *v) {
  int64_t d[4];
  if (!x || lower_buf_root(x) != x || x->kind != LOWER_BUF_ARENA) return false;
  int pi = lower_x86_writer(p, x);
  if (pi < 0 || pi > si || !lower_x86_swap(p->steps.items[pi], d) || p->steps.items[pi]->args[0].buf != x)
    return false;
  if (d[1] != rows || d[3] != cols || d[0] * d[2] != items || !lower_x86_only_attention(p, x, pi)) return false;
  LowerBuf *t = lower_buf_root(p->steps.items[pi]->args[1].buf);
  int ti = lower_x86_writer(p, t);
  if (ti < 0 || ti > pi || lower_x86_nuses(p, t) != 2) return false;
  const LowerStep *sl = p->steps.items[ti];
  if (!lower_x86_kernel_is(sl, "ck_slice", 9) || sl->args[0].kind != LOWER_ARG_BUF || sl->args[0].buf != t ||
      sl->args[1].kind != LOWER_ARG_BUF || sl->args[2].dtype != CK_DT_F32)
    return false;
  for (int k = 3; k < 9; k++)
    if (sl->args[k].kind != LOWER_ARG_INT) return false;
  int64_t outer = sl->args[3].i, n = sl->args[4].i, inner = sl->args[5].i, start = sl->args[6].i;
  if (inner != 1 || sl->args[7].i != 1 || sl->args[8].i != d[2] * d[3] || outer != d[0] * d[1]) return false;
  LowerBuf *base = sl->args[1].buf;
  if (lower_x86_written(p, lower_buf_root(base), ti, p->steps.len - 1)) return false;
  *H = d[2];
  v->buf = base;
  v->lay[0] = start, v->lay[1] = rows * n, v->lay[2] = cols, v->lay[3] = n;
  return true;
}

/* The contiguous [B, H, rows, cols] layout of an operand that stays as it is. */
static void lower_x86_dense(LowerX86View *v, LowerBuf *b, int64_t H, int64_t rows, int64_t cols) {
  v->buf = b;
  v->lay[0] = 0, v->lay[1] = H * rows * cols, v->lay[2] = rows * cols, v->lay[3] = cols;
}

/* A buffer written by attention step si and read by one heads-merging
 * permute u = permute(y, (0,2,1,3)) ([B,H,T,Dv] -> [B,T,H,Dv]) only: the
 * step writes u instead (the permute goes with the dead copies). Also for
 * the gradient dout read by a backward step: written by one heads-splitting
 * permute of the merged rows' gradient (read as those rows, the permute
 * dies). dir 0: y (output), 1: dout (input). */
static bool lower_x86_merged(const LowerProgram *p, LowerBuf *y, int si, int dir, int64_t items, int64_t T,
                             int64_t Dv, int64_t *H, LowerX86View *v, int *permute) {
  int64_t d[4];
  if (!y || lower_buf_root(y) != y || y->kind != LOWER_BUF_ARENA || lower_x86_nuses(p, y) != 2) return false;
  int qi = -1;
  if (dir == 0) {
    for (int k = si + 1; k < p->steps.len && qi < 0; k++)
      if (lower_x86_heads_touch(p->steps.items[k], y)) qi = k;
  } else {
    qi = lower_x86_writer(p, y);
  }
  if (qi < 0 || (dir == 0 ? qi <= si : qi >= si)) return false;
  const LowerStep *q = p->steps.items[qi];
  if (!lower_x86_swap(q, d) || q->args[dir == 0 ? 1 : 0].buf != y) return false;
  int64_t h = dir == 0 ? d[1] : d[2], t = dir == 0 ? d[2] : d[1];
  if (t != T || d[3] != Dv || d[0] * h != items) return false;
  LowerBuf *u = q->args[dir == 0 ? 0 : 1].buf, *ur = lower_buf_root(u);
  if (dir == 0) { /* u's first write moves from qi to si: nothing in between may touch it */
    if (u != ur) return false;
    for (int k = si + 1; k < qi; k++)
      if (lower_x86_heads_touch(p->steps.items[k], ur)) return false;
  } else if (lower_x86_written(p, ur, qi, si)) {
    return false;
  }
  *H = h;
  *permute = qi;
  v->buf = u;
  v->lay[0] = 0, v->lay[1] = T * h * Dv, v->lay[2] = Dv, v->lay[3] = h * Dv;
  return true;
}

static LowerArg lower_x86_arg_buf(LowerBuf *b) {
  LowerArg a;
  memset(&a, 0, sizeof a);
  a.kind = b ? LOWER_ARG_BUF : LOWER_ARG_NULL;
  a.buf = b;
  a.operand = -1;
  return a;
}

static LowerArg lower_x86_arg_int(int64_t i) {
  LowerArg a;
  memset(&a, 0, sizeof a);
  a.kind = LOWER_ARG_INT;
  a.i = i;
  a.operand = -1;
  return a;
}

/* ck_x86_attention_f32 (13 args) / ck_x86_attention_backward_f32 (16) at si
 * -> the heads kernel, when at least one operand is a head split or merge
 * (see above); returns whether it rewrote the step. */
static bool lower_x86_heads_step(LowerProgram *p, int si) {
  LowerStep *s = p->steps.items[si];
  bool bwd = lower_x86_kernel_is(s, "ck_x86_attention_backward_f32", 16);
  if (!bwd && !lower_x86_kernel_is(s, "ck_x86_attention_f32", 13)) return false;
  int o = bwd ? 5 : 2, ext = o + 3; /* q, k, v; then batch, T, S, D, Dv */
  for (int k = ext; k < ext + 5; k++)
    if (s->args[k].kind != LOWER_ARG_INT) return false;
  int64_t items = s->args[ext].i, T = s->args[ext + 1].i, S = s->args[ext + 2].i, D = s->args[ext + 3].i,
          Dv = s->args[ext + 4].i;
  const int64_t rows[3] = {T, S, S}, cols[3] = {D, D, Dv};
  LowerX86View view[7];
  bool found[7] = {false};
  int64_t H = 0, h = 0;
  int nops = bwd ? 7 : 4, merge = -1;
  for (int k = 0; k < 3; k++)
    if (s->args[o + k].kind == LOWER_ARG_BUF &&
        lower_x86_head_src(p, s->args[o + k].buf, si, items, rows[k], cols[k], &h, &view[k]) && (!H || h == H))
      found[k] = true, H = h;
  /* out (forward, arg 1) or dout (backward, arg 4) */
  LowerBuf *y = s->args[bwd ? 4 : 1].kind == LOWER_ARG_BUF ? s->args[bwd ? 4 : 1].buf : NULL;
  if (lower_x86_merged(p, y, si, bwd, items, T, Dv, &h, &view[3], &merge) && (!H || h == H))
    found[3] = true, H = h;
  if (!H) return false;
  for (int k = 0; k < 3; k++)
    if (!found[k]) lower_x86_dense(&view[k], s->args[o + k].kind == LOWER_ARG_BUF ? s->args[o + k].buf : NULL, H,
                                   rows[k], cols[k]);
  if (!found[3]) lower_x86_dense(&view[3], y, H, T, Dv);
  if (bwd) /* dq, dk, dv: contiguous */
    for (int k = 0; k < 3; k++)
      lower_x86_dense(&view[4 + k], s->args[1 + k].kind == LOWER_ARG_BUF ? s->args[1 + k].buf : NULL, H, rows[k],
                      cols[k]);
  CkcArena *a = p->module->arena;
  int64_t *lay = CKC_NEW_ARRAY(a, int64_t, 4 * nops);
  for (int x = 0; x < nops; x++) /* q, k, v, out / dout, dq, dk, dv */
    for (int j = 0; j < 4; j++) lay[4 * x + j] = view[x].lay[j];
  LowerArg *args = CKC_NEW_ARRAY(a, LowerArg, s->nargs + 3);
  int n = 0;
  args[n++] = s->args[0]; /* pool */
  if (bwd) {
    for (int k = 0; k < 3; k++) args[n++] = s->args[1 + k];
    args[n++] = lower_x86_arg_buf(view[3].buf);
  } else {
    args[n++] = lower_x86_arg_buf(view[3].buf);
  }
  for (int k = 0; k < 3; k++) args[n++] = view[k].buf ? lower_x86_arg_buf(view[k].buf) : s->args[o + k];
  args[n].kind = LOWER_ARG_INTS;
  args[n].ints = lay;
  args[n].nints = 4 * nops;
  args[n++].operand = -1;
  args[n++] = lower_x86_arg_int(items / H);
  args[n++] = lower_x86_arg_int(H);
  for (int k = ext + 1; k < s->nargs; k++) args[n++] = s->args[k]; /* T, S, D, Dv, causal, scale, scratch */
  if (!bwd) s->out = view[3].buf;
  s->args = args;
  s->nargs = n;
  s->kernel = bwd ? "ck_x86_attention_heads_backward_f32" : "ck_x86_attention_heads_f32";
  if (!bwd && found[3]) lower_x86_drop(p, merge); /* the merge: the step writes its rows */
  return true;
}

/* The gradient of qkv, as train_step spells it for one attention step si:
 *   memset(dq); memset(dk); memset(dv); attention_backward(dq, dk, dv, ...)
 *   w = permute(dX, (0,2,1,3)); memset(e); e[:, :, start..] = w  (each X)
 *   g = e_v + e_k + e_q                          (one elementwise loop)
 * -> memset(g); the backward accumulates dq, dk, dv into g's column blocks.
 * Each element of g is the one nonzero term of its sum, which started from
 * the same zero, so g keeps its bits. Returns whether it rewrote. */
static bool lower_x86_heads_dqkv(LowerProgram *p, int si) {
  LowerStep *s = p->steps.items[si];
  if (!lower_x86_kernel_is(s, "ck_x86_attention_heads_backward_f32", 18) || s->args[8].kind != LOWER_ARG_INTS)
    return false;
  int64_t B = s->args[9].i, H = s->args[10].i, T = s->args[11].i, S = s->args[12].i, D = s->args[13].i,
          Dv = s->args[14].i;
  const int64_t rows[3] = {T, S, S}, cols[3] = {D, D, Dv};
  int zero[3] = {-1, -1, -1}, perm[3] = {-1, -1, -1}, sz[3] = {-1, -1, -1}, cp[3] = {-1, -1, -1};
  LowerBuf *e[3] = {NULL, NULL, NULL}, *g = NULL;
  int64_t start[3] = {0, 0, 0}, n = 0;
  int fi = -1, nx = 0;
  for (int x = 0; x < 3; x++) {
    if (s->args[1 + x].kind != LOWER_ARG_BUF) continue;
    LowerBuf *dx = s->args[1 + x].buf;
    const int64_t *l = s->args[8].ints + 4 * (4 + x);
    if (dx != lower_buf_root(dx) || dx->kind != LOWER_BUF_ARENA || l[0] != 0 || l[2] != rows[x] * cols[x] ||
        lower_x86_nuses(p, dx) != 3)
      return false;
    nx++;
    for (int k = 0; k < p->steps.len; k++) {
      const LowerStep *t = p->steps.items[k];
      int64_t d[4];
      if (k < si && t->kind == LOWER_STEP_ZERO && t->out == dx) zero[x] = k;
      if (k > si && lower_x86_swap(t, d) && t->args[1].buf == dx && d[0] == B && d[1] == H && d[2] == rows[x] &&
          d[3] == cols[x])
        perm[x] = k;
    }
    if (zero[x] < 0 || perm[x] < 0) return false;
    LowerBuf *w = p->steps.items[perm[x]]->args[0].buf;
    if (w != lower_buf_root(w) || lower_x86_nuses(p, w) != 2) return false;
    for (int k = perm[x] + 1; k < p->steps.len && cp[x] < 0; k++) {
      const LowerStep *t = p->steps.items[k];
      if (t->kind == LOWER_STEP_LOOP && t->noperands == 1 && lower_buf_root(t->operands[0]) == w) cp[x] = k;
    }
    if (cp[x] < 0) return false;
    const LowerStep *c = p->steps.items[cp[x]];
    int64_t m = H * cols[x];
    e[x] = c->out;
    if (e[x] != lower_buf_root(e[x]) || e[x]->kind != LOWER_BUF_ARENA || c->nbody != 1 ||
        c->body[0].kind != LOWER_I_LOAD || c->body[0].a != 0 || c->rank != 2 || c->extents[0] != B * rows[x] ||
        c->extents[1] != m || c->strides[0][0] != m || c->strides[0][1] != 1 || c->out_strides[1] != 1 ||
        lower_x86_nuses(p, e[x]) != 3 || (n && c->out_strides[0] != n))
      return false;
    n = c->out_strides[0];
    start[x] = c->out_offset;
    if (e[x]->numel != B * rows[x] * n || start[x] < 0 || start[x] + m > n) return false;
    for (int k = 0; k < p->steps.len; k++) {
      const LowerStep *t = p->steps.items[k];
      if (t->kind == LOWER_STEP_ZERO && t->out == e[x] && k < cp[x]) sz[x] = k;
      if (k > cp[x] && t->kind == LOWER_STEP_LOOP && lower_x86_heads_touch(t, e[x])) {
        if (fi >= 0 && fi != k) return false;
        fi = k;
      }
    }
    if (sz[x] < 0 || fi < 0) return false;
  }
  if (!nx || T != S) return false; /* one [B, T, n] gradient for all three */
  /* the sum: loads of exactly the e's, added */
  const LowerStep *f = p->steps.items[fi];
  g = f->out;
  if (g != lower_buf_root(g) || g->kind != LOWER_BUF_ARENA || f->noperands != nx || f->out_offset != 0 ||
      g->numel != B * T * n)
    return false;
  int loads = 0;
  for (int k = 0; k < f->nbody; k++) {
    const LowerInstr *in = &f->body[k];
    if (in->kind == LOWER_I_LOAD)
      loads++;
    else if (in->kind != LOWER_I_OP || in->op != IR_OP_ADD)
      return false;
  }
  if (loads != nx) return false;
  for (int k = 0; k < f->noperands; k++) {
    bool ours = false;
    for (int x = 0; x < 3; x++) ours = ours || (e[x] && f->operands[k] == e[x]);
    for (int d = 0; d < f->rank; d++) ours = ours && f->strides[k][d] == f->out_strides[d];
    if (!ours) return false;
  }
  for (int k = si + 1; k < fi; k++) /* g's first write moves up to si */
    if (lower_x86_heads_touch(p->steps.items[k], g)) return false;
  /* rewrite: dX -> g's column block, one memset of g where dq's was */
  int64_t *lay = CKC_NEW_ARRAY(p->module->arena, int64_t, 28);
  memcpy(lay, s->args[8].ints, 28 * sizeof *lay);
  for (int x = 0; x < 3; x++) {
    if (!e[x]) continue;
    s->args[1 + x].buf = g;
    int64_t *l = lay + 4 * (4 + x);
    l[0] = start[x], l[1] = rows[x] * n, l[2] = cols[x], l[3] = n;
  }
  s->args[8].ints = lay;
  s->out = g;
  int first = -1;
  for (int x = 0; x < 3; x++)
    if (zero[x] >= 0 && (first < 0 || zero[x] < first)) first = zero[x];
  p->steps.items[first]->out = g;
  p->steps.items[first]->operands[0] = g;
  /* drop, from the back: the sum, the copies, their memsets, the permutes, dX's other memsets */
  int drop[13], nd = 0;
  drop[nd++] = fi;
  for (int x = 0; x < 3; x++)
    if (e[x]) {
      drop[nd++] = cp[x], drop[nd++] = sz[x], drop[nd++] = perm[x];
      if (zero[x] != first) drop[nd++] = zero[x];
    }
  for (int i = 0; i < nd; i++) /* descending */
    for (int j = i + 1; j < nd; j++)
      if (drop[j] > drop[i]) {
        int t = drop[i];
        drop[i] = drop[j], drop[j] = t;
      }
  for (int i = 0; i < nd; i++) lower_x86_drop(p, drop[i]);
  return true;
}

/* Drops the copies the heads kernels no longer read: head-swapping
 * permutes and then slices whose output nothing reads. */
void lower_x86_heads(LowerProgram *p) {
  bool any = false;
  for (int si = 0; si < p->steps.len; si++) any = lower_x86_heads_step(p, si) || any;
  if (!any) return;
  for (int si = 0; si < p->steps.len; si++) lower_x86_heads_dqkv(p, si);
  for (int pass = 0; pass < 2; pass++)
    for (int si = 0; si < p->steps.len; si++) {
      LowerStep *s = p->steps.items[si];
      int64_t d[4];
      bool copy = pass == 0 ? lower_x86_swap(s, d) : lower_x86_kernel_is(s, "ck_slice", 9);
      if (!copy || s->out != lower_buf_root(s->out) || s->out->kind != LOWER_BUF_ARENA ||
          lower_x86_nuses(p, s->out) != 1)
        continue;
      lower_x86_drop(p, si);
      si--;
    }
}
