/* lower/memplan.c - the memory planner (docs/memory.md).
 *
 * Liveness: a buffer is live from the first step that writes it to the last
 * step that reads it (views count as reads of their storage), over the whole
 * step list of the entry function (train_step: forward and backward; the
 * optimizer update runs in rt-min on its own blobs and is only reported).
 *
 * In place: an elementwise loop whose out is first written at step s may take
 * the storage of an operand that dies at s when both have the same size and
 * dtype and the operand is read with exactly the out's index map (same
 * strides, no out offset): each iteration reads element i before it writes
 * element i, and no other iteration reads element i, so nothing is read after
 * being overwritten. The pair becomes one interval.
 *
 * Placement: every strategy of MemplanStrategy runs on the intervals and the
 * smallest peak wins (ties: the earlier strategy). Greedy by size with
 * best-fit usually wins; the lower bound (largest live set) says how far from
 * optimal it is. The result is checked: two buffers live at the same step
 * never share a byte unless they are an in-place pair at the same offset. */
#include "lower/memplan.h"

#include <stdlib.h>
#include <string.h>

#include "ir/train.h"

/* ---- the interval planner ------------------------------------------------------------------ */

int64_t memplan_align(int64_t v) { return (v + LOWER_ALIGN - 1) / LOWER_ALIGN * LOWER_ALIGN; }

static int64_t mp_size(const MemplanItem *it) { return it->size > 0 ? it->size : 1; }

static bool mp_live_together(const MemplanItem *x, const MemplanItem *y) {
  return x->start <= y->end && y->start <= x->end;
}

const char *memplan_strategy_name(MemplanStrategy s) {
  static const char *const names[] = {"first-fit-in-order", "size-first-fit", "size-best-fit",
                                      "area-best-fit", "lifetime-first-fit", "best"};
  return (int)s >= 0 && (int)s <= (int)MEMPLAN_BEST ? names[s] : "?";
}

/* Sort keys: ascending over (k[0], k[1], k[2], idx); descending keys are negated. */
typedef struct MpKey {
  int64_t k[3];
  int idx;
} MpKey;

static int mp_key_cmp(const void *pa, const void *pb) {
  const MpKey *a = pa, *b = pb;
  for (int i = 0; i < 3; i++)
    if (a->k[i] != b->k[i]) return a->k[i] < b->k[i] ? -1 : 1;
  return (a->idx > b->idx) - (a->idx < b->idx);
}

/* The order in which a strategy places items: big or long-lived items first
 * leave the small ones to fill the gaps between them. */
static void mp_order(const MemplanItem *items, int n, MemplanStrategy s, MpKey *keys) {
  for (int i = 0; i < n; i++) {
    const MemplanItem *it = &items[i];
    int64_t size = memplan_align(mp_size(it)), len = (int64_t)it->end - it->start + 1;
    MpKey k = {{0, 0, 0}, i};
    switch (s) {
    case MEMPLAN_FIRST_FIT_IN_ORDER: k.k[0] = it->start; break;
    case MEMPLAN_SIZE_FIRST_FIT:
    case MEMPLAN_SIZE_BEST_FIT: k.k[0] = -size; k.k[1] = -len; k.k[2] = it->start; break;
    case MEMPLAN_AREA_BEST_FIT: k.k[0] = -size * len; k.k[1] = -size; k.k[2] = it->start; break;
    case MEMPLAN_LONG_FIRST_FIT: k.k[0] = -len; k.k[1] = -size; k.k[2] = it->start; break;
    default: break;
    }
    keys[i] = k;
  }
  qsort(keys, (size_t)n, sizeof *keys, mp_key_cmp);
}

/* One strategy: each item, in the strategy's order, goes into a gap between
 * the already placed items it is live with (sorted by offset): the lowest
 * gap that fits (first fit) or the smallest (best fit; ties: lowest), else
 * on top of them. */
static int64_t mp_place_one(MemplanItem *items, int n, MemplanStrategy s, CkcArena *a) {
  MpKey *order = CKC_NEW_ARRAY(a, MpKey, n + 1);
  MpKey *conf = CKC_NEW_ARRAY(a, MpKey, n + 1);
  bool *placed = CKC_NEW_ARRAY(a, bool, n + 1);
  bool best = s == MEMPLAN_SIZE_BEST_FIT || s == MEMPLAN_AREA_BEST_FIT;
  mp_order(items, n, s, order);
  int64_t peak = 0;
  for (int oi = 0; oi < n; oi++) {
    MemplanItem *it = &items[order[oi].idx];
    int nc = 0;
    for (int j = 0; j < n; j++)
      if (placed[j] && mp_live_together(it, &items[j]))
        conf[nc++] = (MpKey){{items[j].offset, 0, 0}, j};
    qsort(conf, (size_t)nc, sizeof *conf, mp_key_cmp);
    int64_t size = mp_size(it), prev = 0, pick = -1, pick_gap = 0;
    for (int c = 0; c < nc; c++) {
      const MemplanItem *o = &items[conf[c].idx];
      int64_t gap = o->offset - prev;
      if (gap >= size && (pick < 0 || (best && gap < pick_gap))) {
        pick = prev;
        pick_gap = gap;
        if (!best) break;
      }
      int64_t end = memplan_align(o->offset + mp_size(o));
      if (end > prev) prev = end;
    }
    it->offset = pick >= 0 ? pick : prev;
    placed[order[oi].idx] = true;
    int64_t top = memplan_align(it->offset + size);
    if (top > peak) peak = top;
  }
  return peak;
}

int64_t memplan_place(MemplanItem *items, int n, MemplanStrategy s, CkcArena *a) {
  if (n <= 0) return 0;
  if (s != MEMPLAN_BEST) return mp_place_one(items, n, s, a);
  int64_t *best_off = CKC_NEW_ARRAY(a, int64_t, n);
  int64_t best_peak = -1;
  for (int k = 0; k < MEMPLAN_STRATEGY_COUNT; k++) {
    int64_t peak = mp_place_one(items, n, (MemplanStrategy)k, a);
    if (best_peak < 0 || peak < best_peak) {
      best_peak = peak;
      for (int i = 0; i < n; i++) best_off[i] = items[i].offset;
    }
  }
  for (int i = 0; i < n; i++) items[i].offset = best_off[i];
  return best_peak;
}

/* A sweep over steps: +size where an item starts, -size after it ends. */
int64_t memplan_lower_bound(const MemplanItem *items, int n, CkcArena *a) {
  int last = 0;
  for (int i = 0; i < n; i++)
    if (items[i].end > last) last = items[i].end;
  int64_t *delta = CKC_NEW_ARRAY(a, int64_t, last + 2);
  for (int i = 0; i < n; i++) {
    if (items[i].start < 0 || items[i].end < items[i].start) continue;
    delta[items[i].start] += memplan_align(mp_size(&items[i]));
    delta[items[i].end + 1] -= memplan_align(mp_size(&items[i]));
  }
  int64_t live = 0, bound = 0;
  for (int t = 0; t <= last; t++) {
    live += delta[t];
    if (live > bound) bound = live;
  }
  return bound;
}

bool memplan_verify(const MemplanItem *items, int n, int *bad_i, int *bad_j) {
  for (int i = 0; i < n; i++) {
    if (items[i].offset < 0 || items[i].offset % LOWER_ALIGN != 0) {
      if (bad_i) *bad_i = i;
      if (bad_j) *bad_j = i;
      return false;
    }
    for (int j = 0; j < i; j++) {
      const MemplanItem *x = &items[i], *y = &items[j];
      if (mp_live_together(x, y) && x->offset < y->offset + mp_size(y) && y->offset < x->offset + mp_size(x)) {
        if (bad_i) *bad_i = i;
        if (bad_j) *bad_j = j;
        return false;
      }
    }
  }
  return true;
}

/* ---- liveness of a lowered program -------------------------------------------------------------- */

static void mp_touch_def(LowerBuf *b, int s) {
  b = lower_buf_root(b);
  if (!b) return;
  if (b->first_def < 0 || s < b->first_def) b->first_def = s;
  if (s > b->last_use) b->last_use = s;
}

static void mp_touch_use(LowerBuf *b, int s) {
  b = lower_buf_root(b);
  if (!b) return;
  if (s > b->last_use) b->last_use = s;
  if (b->first_def < 0) b->first_def = s;
}

/* Writes (out, scratch) open a live range, reads (operands, buffer args)
 * extend it; a buffer read before any write (a leaf) starts at its read. */
static void mp_liveness(LowerProgram *p) {
  for (int i = 0; i < p->bufs.len; i++) p->bufs.items[i]->first_def = p->bufs.items[i]->last_use = -1;
  for (int si = 0; si < p->steps.len; si++) {
    LowerStep *s = p->steps.items[si];
    mp_touch_def(s->out, si);
    for (int k = 0; k < s->noperands; k++) mp_touch_use(s->operands[k], si);
    for (int k = 0; k < s->nargs; k++)
      if (s->args[k].kind == LOWER_ARG_BUF) mp_touch_use(s->args[k].buf, si);
    if (s->scratch) mp_touch_def(s->scratch, si);
  }
}

/* ---- sections ---------------------------------------------------------------------------------- */

const char *memplan_section_name(MemplanSection s) {
  static const char *const names[] = {"parameters", "gradients", "optimizer state",
                                      "activations", "saved tensors", "scratch"};
  return (int)s >= 0 && (int)s < (int)MEMPLAN_SEC_COUNT ? names[s] : "?";
}

const char *memplan_section_macro(MemplanSection s) {
  static const char *const names[] = {"PARAMS", "GRADS", "OPTIM_STATE", "ACTIVATIONS", "SAVED", "SCRATCH"};
  return (int)s >= 0 && (int)s < (int)MEMPLAN_SEC_COUNT ? names[s] : "?";
}

/* train_step: the forward is what the loss (outputs[0]) depends on; every
 * other node is backward. Marks fwd[node id]. */
static bool *mp_forward_nodes(const LowerProgram *p, CkcArena *a) {
  const IrGraph *g = p->graph;
  int nid = g->next_id + 1;
  for (int i = 0; i < g->nodes.len; i++)
    if (g->nodes.items[i]->id >= nid) nid = g->nodes.items[i]->id + 1;
  bool *fwd = CKC_NEW_ARRAY(a, bool, nid);
  if (p->entry != LOWER_ENTRY_TRAIN_STEP || g->outputs.len == 0) {
    for (int i = 0; i < nid; i++) fwd[i] = true;
    return fwd;
  }
  fwd[g->outputs.items[0]->id] = true;
  for (int i = g->nodes.len - 1; i >= 0; i--) { /* reverse topological order */
    const IrNode *n = g->nodes.items[i];
    if (!fwd[n->id]) continue;
    for (int k = 0; k < n->nin; k++) fwd[n->in[k]->id] = true;
  }
  return fwd;
}

/* Scratch: a kernel workspace (no IR value, or a step's scratch); saved: a
 * forward value read by a backward step; everything else: activations. */
static void mp_classify(const LowerProgram *p, MemplanSection *sec, CkcArena *a) {
  const bool *fwd = mp_forward_nodes(p, a);
  for (int i = 0; i < p->bufs.len; i++) {
    const LowerBuf *b = p->bufs.items[i];
    sec[i] = b->node ? MEMPLAN_SEC_ACTIVATIONS : MEMPLAN_SEC_SCRATCH;
  }
  for (int si = 0; si < p->steps.len; si++) {
    const LowerStep *s = p->steps.items[si];
    if (s->scratch) sec[lower_buf_root(s->scratch)->id] = MEMPLAN_SEC_SCRATCH;
    if (p->entry != LOWER_ENTRY_TRAIN_STEP || !s->node || fwd[s->node->id]) continue;
    for (int k = 0; k < s->noperands + s->nargs; k++) {
      LowerBuf *r = k < s->noperands ? s->operands[k]
                    : s->args[k - s->noperands].kind == LOWER_ARG_BUF ? s->args[k - s->noperands].buf
                                                                      : NULL;
      r = lower_buf_root(r);
      if (r && r->kind == LOWER_BUF_ARENA && r->node && fwd[r->node->id] && sec[r->id] != MEMPLAN_SEC_SCRATCH)
        sec[r->id] = MEMPLAN_SEC_SAVED;
    }
  }
}

/* ---- in place ------------------------------------------------------------------------------------ */

/* The operand of loop step si (at step index si) whose storage the out may
 * take (the rule at the top of this file), or NULL. */
static LowerBuf *mp_inplace_donor(const LowerStep *s, int si, const bool *donated) {
  if (s->kind != LOWER_STEP_LOOP || s->out_offset != 0) return NULL;
  LowerBuf *out = lower_buf_root(s->out);
  if (!out || out->kind != LOWER_BUF_ARENA || out->first_def != si) return NULL;
  for (int k = 0; k < s->noperands; k++)
    if (lower_buf_root(s->operands[k]) == out) return NULL;
  for (int k = 0; k < s->noperands; k++) {
    LowerBuf *in = lower_buf_root(s->operands[k]);
    if (!in || in->kind != LOWER_BUF_ARENA || in->last_use != si || donated[in->id]) continue;
    if (in->bytes != out->bytes || in->dtype != out->dtype || s->operands[k]->dtype != s->out->dtype) continue;
    bool same = true;
    for (int j = 0; j < s->noperands && same; j++) {
      if (lower_buf_root(s->operands[j]) != in) continue;
      for (int d = 0; d < s->rank; d++) same = same && s->strides[j][d] == s->out_strides[d];
    }
    if (same) return in;
  }
  return NULL;
}

/* ---- the plan of a program ------------------------------------------------------------------------- */

static int mp_find(int *parent, int x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

/* Params at the shared layout's offsets; arena buffers: liveness, sections,
 * in-place pairs, placement (best strategy), self-check, statistics. */
void lower_plan_memory(LowerProgram *p) {
  CkcArena *a = p->module->arena;
  mp_liveness(p);
  const LowerLayout *L = p->layout;
  for (int i = 0; i < p->bufs.len; i++) {
    LowerBuf *b = p->bufs.items[i];
    if (b->kind != LOWER_BUF_PARAM && b->kind != LOWER_BUF_GRAD) continue;
    for (int k = 0; k < L->params.len; k++)
      if (strcmp(L->params.items[k].name, b->name) == 0) b->offset = L->params.items[k].offset;
  }
  p->params_bytes = L->params_bytes;
  p->param_count = L->param_count;

  int nb = p->bufs.len;
  MemplanSection *sec = CKC_NEW_ARRAY(a, MemplanSection, nb + 1);
  mp_classify(p, sec, a);
  bool *arena_buf = CKC_NEW_ARRAY(a, bool, nb + 1);
  for (int i = 0; i < nb; i++) {
    LowerBuf *b = p->bufs.items[i];
    arena_buf[i] = b->kind == LOWER_BUF_ARENA && b->first_def >= 0;
    if (arena_buf[i] && b->last_use < b->first_def) b->last_use = b->first_def;
  }

  /* in-place pairs: parent links, one group per storage */
  int *parent = CKC_NEW_ARRAY(a, int, nb + 1);
  bool *donated = CKC_NEW_ARRAY(a, bool, nb + 1);
  LowerBuf **donor_of = CKC_NEW_ARRAY(a, LowerBuf *, nb + 1);
  for (int i = 0; i < nb; i++) parent[i] = i;
  int ninplace = 0;
  for (int si = 0; si < p->steps.len; si++) {
    const LowerStep *s = p->steps.items[si];
    LowerBuf *in = mp_inplace_donor(s, si, donated);
    if (!in) continue;
    LowerBuf *out = lower_buf_root(s->out);
    donated[in->id] = true;
    donor_of[out->id] = in;
    parent[out->id] = mp_find(parent, in->id);
    ninplace++;
  }

  /* one interval per group */
  int *item_of = CKC_NEW_ARRAY(a, int, nb + 1);
  MemplanItem *items = CKC_NEW_ARRAY(a, MemplanItem, nb + 1);
  MemplanItem *plain = CKC_NEW_ARRAY(a, MemplanItem, nb + 1);
  int nitems = 0, nplain = 0;
  for (int i = 0; i < nb; i++) {
    item_of[i] = -1;
    if (!arena_buf[i]) continue;
    const LowerBuf *b = p->bufs.items[i];
    plain[nplain++] = (MemplanItem){b->bytes, b->first_def, b->last_use, 0};
    if (mp_find(parent, i) != i) continue;
    item_of[i] = nitems;
    items[nitems++] = (MemplanItem){b->bytes, b->first_def, b->last_use, 0};
  }
  for (int i = 0; i < nb; i++) {
    if (!arena_buf[i] || mp_find(parent, i) == i) continue;
    MemplanItem *it = &items[item_of[mp_find(parent, i)]];
    const LowerBuf *b = p->bufs.items[i];
    if (b->first_def < it->start) it->start = b->first_def;
    if (b->last_use > it->end) it->end = b->last_use;
  }

  MemplanStats *st = CKC_NEW(a, MemplanStats);
  st->first_fit_peak = memplan_place(plain, nplain, MEMPLAN_FIRST_FIT_IN_ORDER, a);
  int64_t best = -1;
  for (int k = 0; k < MEMPLAN_STRATEGY_COUNT; k++) {
    int64_t peak = memplan_place(items, nitems, (MemplanStrategy)k, a);
    if (best < 0 || peak < best) {
      best = peak;
      st->strategy = (MemplanStrategy)k;
    }
  }
  st->peak = memplan_place(items, nitems, st->strategy, a);
  st->lower_bound = memplan_lower_bound(items, nitems, a);
  int bi = 0, bj = 0;
  if (!memplan_verify(items, nitems, &bi, &bj)) CKC_ICE("memory plan: intervals %d and %d overlap", bi, bj);
  for (int i = 0; i < nb; i++)
    if (arena_buf[i]) p->bufs.items[i]->offset = items[item_of[mp_find(parent, i)]].offset;
  p->arena_bytes = st->peak;

  /* the plan's invariant, checked on the buffers themselves: two buffers
   * live at the same step never share a byte, except an in-place pair
   * (the out takes its dying operand's storage at the step that kills it) */
  for (int i = 0; i < nb; i++) {
    if (!arena_buf[i]) continue;
    const LowerBuf *x = p->bufs.items[i];
    if (x->offset % LOWER_ALIGN || x->offset + (x->bytes > 0 ? x->bytes : 1) > p->arena_bytes)
      CKC_ICE("memory plan: %s misplaced at %lld", x->cname, (long long)x->offset);
    for (int j = 0; j < i; j++) {
      if (!arena_buf[j]) continue;
      const LowerBuf *y = p->bufs.items[j];
      bool both = x->first_def <= y->last_use && y->first_def <= x->last_use;
      bool overlap = x->offset < y->offset + (y->bytes > 0 ? y->bytes : 1) &&
                     y->offset < x->offset + (x->bytes > 0 ? x->bytes : 1);
      bool pair = (donor_of[x->id] == y && y->last_use == x->first_def) ||
                  (donor_of[y->id] == x && x->last_use == y->first_def);
      if (both && overlap && !(pair && x->offset == y->offset))
        CKC_ICE("memory plan: %s and %s overlap", x->cname, y->cname);
    }
  }

  /* statistics: each arena section's largest live set (an in-place donor
   * stops counting at the step its recipient starts) */
  int last = p->steps.len + 1;
  int64_t *delta = CKC_NEW_ARRAY(a, int64_t, (size_t)(last + 2) * MEMPLAN_SEC_COUNT);
  for (int i = 0; i < nb; i++) {
    if (!arena_buf[i]) continue;
    const LowerBuf *b = p->bufs.items[i];
    int end = donated[i] ? b->last_use - 1 : b->last_use;
    if (end < b->first_def) continue;
    int64_t sz = memplan_align(b->bytes > 0 ? b->bytes : 1);
    delta[(size_t)b->first_def * MEMPLAN_SEC_COUNT + sec[i]] += sz;
    delta[(size_t)(end + 1) * MEMPLAN_SEC_COUNT + sec[i]] -= sz;
    st->nbufs++;
  }
  int64_t live[MEMPLAN_SEC_COUNT] = {0};
  for (int t = 0; t <= last; t++)
    for (int k = 0; k < MEMPLAN_SEC_COUNT; k++) {
      live[k] += delta[(size_t)t * MEMPLAN_SEC_COUNT + k];
      if (live[k] > st->section[k]) st->section[k] = live[k];
    }
  st->section[MEMPLAN_SEC_PARAMS] = L->params_bytes;
  if (p->entry == LOWER_ENTRY_TRAIN_STEP) {
    st->section[MEMPLAN_SEC_GRADS] = L->params_bytes;
    const IrTrainConfig *tc = p->module->train;
    int nmom = !tc ? 0 : tc->optim.kind == IR_OPTIM_SGD ? (tc->optim.momentum != 0 ? 1 : 0) : 2;
    st->section[MEMPLAN_SEC_OPTIM] = (int64_t)nmom * L->params_bytes;
  }
  st->ninplace = ninplace;
  st->nsteps = p->steps.len;
  p->mem = st;
}

const MemplanStats *memplan_stats(const LowerProgram *p) { return p ? p->mem : NULL; }

/* ---- header macros ------------------------------------------------------------------------------ */

static void mp_defines_entry(const LowerProgram *p, const char *entry, CkcBuf *b) {
  const MemplanStats *st = memplan_stats(p);
  if (!st) return;
  for (int k = MEMPLAN_SEC_ACTIVATIONS; k < MEMPLAN_SEC_COUNT; k++) {
    if (k == MEMPLAN_SEC_SAVED && p->entry != LOWER_ENTRY_TRAIN_STEP) continue;
    ckc_buf_printf(b, "#define %s_%s_%s_BYTES %lld\n", p->upper, entry, memplan_section_macro((MemplanSection)k),
                   (long long)st->section[k]);
  }
  ckc_buf_printf(b, "#define %s_%s_LOWER_BOUND_BYTES %lld\n", p->upper, entry, (long long)st->lower_bound);
}

void memplan_emit_defines(const LowerModule *lm, CkcBuf *b) {
  ckc_buf_puts(b, "/* memory plan (docs/memory.md): each arena section's largest live set; the\n"
                  " * sections share the entry's arena (*_ARENA_BYTES), which is never below\n"
                  " * *_LOWER_BOUND_BYTES, the largest live set of all of them */\n");
  mp_defines_entry(lm->forward, "FORWARD", b);
  mp_defines_entry(lm->loss, "LOSS", b);
  mp_defines_entry(lm->train_step, "TRAIN", b);
  const MemplanStats *st = memplan_stats(lm->train_step);
  if (st) {
    const char *U = lm->train_step->upper;
    ckc_buf_printf(b, "#define %s_GRADS_BYTES %lld /* the grads blob (params layout) */\n", U,
                   (long long)st->section[MEMPLAN_SEC_GRADS]);
    ckc_buf_printf(b, "#define %s_OPTIM_STATE_BYTES %lld /* optimizer moments, allocated by the runtime */\n", U,
                   (long long)st->section[MEMPLAN_SEC_OPTIM]);
  }
}

/* ---- the report ------------------------------------------------------------------------------------- */

static void mp_report_entry(const LowerProgram *p, const char *name, CkcBuf *out) {
  const MemplanStats *st = memplan_stats(p);
  if (!st) return;
  ckc_buf_printf(out, "\n%s: %d steps, %d arena buffers, %d in place, placement %s\n", name, st->nsteps,
                 st->nbufs, st->ninplace, memplan_strategy_name(st->strategy));
  for (int k = 0; k < MEMPLAN_SEC_COUNT; k++) {
    if (p->entry != LOWER_ENTRY_TRAIN_STEP && (k == MEMPLAN_SEC_GRADS || k == MEMPLAN_SEC_OPTIM ||
                                               k == MEMPLAN_SEC_SAVED))
      continue;
    ckc_buf_printf(out, "  %-22s %12lld\n", memplan_section_name((MemplanSection)k), (long long)st->section[k]);
  }
  ckc_buf_printf(out, "  %-22s %12lld\n", "arena peak", (long long)st->peak);
  ckc_buf_printf(out, "  %-22s %12lld\n", "lower bound", (long long)st->lower_bound);
  int64_t lb = st->lower_bound > 0 ? st->lower_bound : 1;
  ckc_buf_printf(out, "  %-22s %12.3f\n", "ratio peak/bound", st->peak > 0 ? (double)st->peak / (double)lb : 1.0);
  ckc_buf_printf(out, "  %-22s %12lld  (%.3f)\n", "v0 first-fit peak", (long long)st->first_fit_peak,
                 st->first_fit_peak > 0 ? (double)st->first_fit_peak / (double)lb : 1.0);
}

void memplan_report(const LowerModule *lm, CkcBuf *out) {
  const IrModule *m = lm->module;
  ckc_buf_printf(out, "memory report: %s, model %s, target %s\n", m->source_name ? m->source_name : "?",
                 m->model_name, lm->target ? lm->target->name : "?");
  ckc_buf_puts(out, "bytes; arena sections: the largest live set of the section; arena peak: the arena\n"
                    "the function needs (all arena sections, 64-byte aligned offsets)\n");
  if (m->train) {
    const IrOptimSpec *o = &m->train->optim;
    ckc_buf_printf(out, "optimizer: %s (%s)\n",
                   o->kind == IR_OPTIM_SGD ? "sgd" : o->kind == IR_OPTIM_ADAM ? "adam" : "adamw",
                   o->kind != IR_OPTIM_SGD ? "2 moments per parameter"
                   : o->momentum != 0      ? "1 momentum buffer per parameter"
                                           : "no state");
  }
  mp_report_entry(lm->forward, "forward", out);
  mp_report_entry(lm->loss, "loss", out);
  mp_report_entry(lm->train_step, "train_step", out);
}
