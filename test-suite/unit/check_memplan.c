/* check_memplan.c - the memory planner (lower/memplan.c, lower/recompute.c):
 * placement on synthetic interval sets (no overlap, alignment, optimal on
 * small cases, never below the lower bound), the verifier, in-place reuse
 * and sections on lowered programs, --recompute parsing and the IR rewrite. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "lower/lower.h"
#include "lower/memplan.h"
#include "targets/target.h"

static CkcArena arena;
static CkcDiag diag;
static const CkcLoc L0;

static void setup(void) {
  ckc_arena_init(&arena);
  ckc_diag_init(&diag, &arena, stderr);
}
static void teardown(void) { ckc_arena_free(&arena); }

/* A deterministic pseudo-random interval set: n items over `steps` steps. */
static MemplanItem *random_items(int n, int steps, uint32_t seed) {
  MemplanItem *it = CKC_NEW_ARRAY(&arena, MemplanItem, n);
  uint32_t s = seed * 2654435761u + 1;
  for (int i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    int a = (int)(s >> 8) % steps;
    s = s * 1664525u + 1013904223u;
    int len = (int)(s >> 8) % (steps / 4 + 1);
    s = s * 1664525u + 1013904223u;
    it[i].size = 1 + (int64_t)((s >> 8) % 5000);
    it[i].start = a;
    it[i].end = a + len < steps ? a + len : steps - 1;
  }
  return it;
}

/* Every strategy, on many random sets: verified, aligned, never below the
 * lower bound, and MEMPLAN_BEST no worse than any single strategy. */
START_TEST(random_sets_are_valid) {
  for (uint32_t seed = 1; seed <= 40; seed++) {
    int n = 5 + (int)(seed * 7 % 60);
    MemplanItem *it = random_items(n, 30, seed);
    int64_t lb = memplan_lower_bound(it, n, &arena);
    int64_t best_single = -1;
    for (int s = 0; s <= MEMPLAN_BEST; s++) {
      int64_t peak = memplan_place(it, n, (MemplanStrategy)s, &arena);
      int bi = -1, bj = -1;
      ck_assert_msg(memplan_verify(it, n, &bi, &bj), "seed %u strategy %s: items %d and %d overlap", seed,
                    memplan_strategy_name((MemplanStrategy)s), bi, bj);
      ck_assert_int_ge(peak, lb);
      for (int i = 0; i < n; i++) {
        ck_assert_int_eq(it[i].offset % 64, 0);
        ck_assert_int_le(memplan_align(it[i].offset + it[i].size), peak);
      }
      if (s < MEMPLAN_BEST && (best_single < 0 || peak < best_single)) best_single = peak;
      if (s == MEMPLAN_BEST) ck_assert_int_eq(peak, best_single);
    }
  }
}
END_TEST

/* The verifier rejects two live-together items that share a byte, and a
 * misaligned offset; it accepts the same bytes at disjoint times. */
START_TEST(verify_rejects_overlap) {
  MemplanItem it[3] = {{100, 0, 2, 0}, {100, 2, 3, 64}, {10, 4, 5, 0}};
  int bi = -1, bj = -1;
  ck_assert(!memplan_verify(it, 2, &bi, &bj));
  ck_assert_int_eq(bi, 1);
  ck_assert_int_eq(bj, 0);
  it[1].offset = 128;
  ck_assert(memplan_verify(it, 3, NULL, NULL)); /* item 2 reuses item 0's bytes later */
  it[2].offset = 32;
  ck_assert(!memplan_verify(it, 3, NULL, NULL)); /* not 64-byte aligned */
}
END_TEST

/* Hand-computed lower bounds: disjoint lifetimes need the largest item;
 * all live together need the sum of the 64-byte rounded sizes. */
START_TEST(lower_bound_and_optimal_simple) {
  MemplanItem chain[4] = {{640, 0, 0, 0}, {64, 1, 1, 0}, {1000, 2, 2, 0}, {1, 3, 3, 0}};
  ck_assert_int_eq(memplan_lower_bound(chain, 4, &arena), 1024);
  for (int s = 0; s <= MEMPLAN_BEST; s++) ck_assert_int_eq(memplan_place(chain, 4, (MemplanStrategy)s, &arena), 1024);
  MemplanItem all[3] = {{100, 0, 5, 0}, {65, 1, 4, 0}, {64, 2, 3, 0}};
  ck_assert_int_eq(memplan_lower_bound(all, 3, &arena), 128 + 128 + 64);
  for (int s = 0; s <= MEMPLAN_BEST; s++) ck_assert_int_eq(memplan_place(all, 3, (MemplanStrategy)s, &arena), 320);
  /* zero-sized items still get an address of their own */
  MemplanItem z[2] = {{0, 0, 1, 0}, {0, 1, 2, 0}};
  ck_assert_int_eq(memplan_place(z, 2, MEMPLAN_BEST, &arena), 128);
  ck_assert(memplan_verify(z, 2, NULL, NULL));
}
END_TEST

/* Where first-fit in order loses: a short small item takes offset 0, the
 * long one goes above it and the big late one cannot use the hole. Greedy
 * by size reaches the lower bound (192). */
START_TEST(size_order_beats_first_fit) {
  MemplanItem it[3] = {{64, 0, 0, 0}, {64, 0, 2, 0}, {128, 1, 1, 0}};
  ck_assert_int_eq(memplan_lower_bound(it, 3, &arena), 192);
  ck_assert_int_eq(memplan_place(it, 3, MEMPLAN_FIRST_FIT_IN_ORDER, &arena), 256);
  ck_assert_int_eq(memplan_place(it, 3, MEMPLAN_SIZE_BEST_FIT, &arena), 192);
  ck_assert_int_eq(memplan_place(it, 3, MEMPLAN_BEST, &arena), 192);
  ck_assert(memplan_verify(it, 3, NULL, NULL));
}
END_TEST

static IrNode *mk(IrGraph *g, IrOp op, IrNode *a, IrNode *b, const char *name) {
  IrNode *in[2] = {a, b};
  IrErr e;
  IrNode *n = ir_op(g, op, in, b ? 2 : 1, NULL, 0, name, L0, &e);
  ck_assert_msg(n != NULL, "%s", e.msg);
  return n;
}

/* x -> tanh -> exp -> ... (10 loops): each loop overwrites its dying input,
 * so the whole chain needs one buffer; every buffer of the chain sits at the
 * same offset and the statistics say so. */
START_TEST(inplace_chain_needs_one_buffer) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {2, {16, 16}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  for (int i = 0; i < 10; i++) x = mk(g, i % 2 ? IR_OP_EXP : IR_OP_TANH, x, NULL, NULL);
  ir_set_output(g, x);
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  const MemplanStats *st = memplan_stats(p);
  ck_assert_ptr_nonnull(st);
  ck_assert_int_eq(p->arena_bytes, 16 * 16 * 4);
  ck_assert_int_eq(st->peak, p->arena_bytes);
  ck_assert_int_eq(st->lower_bound, 16 * 16 * 4);
  ck_assert_int_eq(st->ninplace, 8); /* t1..t9 in the arena, the last loop writes out */
  ck_assert_int_eq(st->first_fit_peak, 2 * 16 * 16 * 4);
  ck_assert_int_eq(st->section[MEMPLAN_SEC_ACTIVATIONS], 16 * 16 * 4);
  ck_assert_int_eq(st->section[MEMPLAN_SEC_SAVED], 0);
}
END_TEST

/* No in place when the dying input is read through another index map
 * (broadcast: b[16] added along rows) or has another size: y = a + b where
 * both die; a has y's size and map, so y takes a, never b. */
START_TEST(inplace_respects_index_maps) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sa = {2, {16, 16}}, sb = {1, {16}};
  IrNode *xa = ir_input(g, "xa", CK_DT_F32, &sa, L0);
  IrNode *xb = ir_input(g, "xb", CK_DT_F32, &sb, L0);
  IrNode *a = mk(g, IR_OP_EXP, xa, NULL, "a");
  IrNode *b = mk(g, IR_OP_EXP, xb, NULL, "b");
  IrNode *y = mk(g, IR_OP_ADD, b, a, "y"); /* b first: the planner must skip it */
  IrNode *z = mk(g, IR_OP_TANH, y, NULL, "z");
  ir_set_output(g, mk(g, IR_OP_ADD, z, y, "w"));
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  const LowerBuf *ba = NULL, *bb = NULL, *by = NULL, *bz = NULL;
  for (int i = 0; i < p->bufs.len; i++) {
    const LowerBuf *q = p->bufs.items[i];
    if (!q->name || q->kind != LOWER_BUF_ARENA) continue;
    if (!strcmp(q->name, "a")) ba = q;
    if (!strcmp(q->name, "b")) bb = q;
    if (!strcmp(q->name, "y")) by = q;
    if (!strcmp(q->name, "z")) bz = q;
  }
  ck_assert(ba && bb && by && bz);
  ck_assert_int_eq(by->offset, ba->offset);
  ck_assert_int_ne(by->offset, bb->offset);
  /* y is still read after z's loop: z may not take it */
  ck_assert_int_ne(bz->offset, by->offset);
  ck_assert_int_eq(memplan_stats(p)->ninplace, 1);
}
END_TEST

/* --recompute names: a list of cheap ops, `cheap`, `none`; anything else is refused. */
START_TEST(recompute_parse) {
  MemplanRecompute r;
  const char *why = NULL;
  ck_assert(memplan_recompute_parse("gelu,layernorm", &r, &why, &arena));
  ck_assert(r.any && r.op[IR_OP_GELU] && r.op[IR_OP_LAYERNORM] && !r.op[IR_OP_RELU]);
  ck_assert(memplan_recompute_parse("cheap", &r, &why, &arena));
  ck_assert(r.op[IR_OP_RELU] && r.op[IR_OP_RMSNORM] && r.op[IR_OP_TANH]);
  ck_assert(memplan_recompute_parse("none", &r, &why, &arena));
  ck_assert(!r.any);
  ck_assert(!memplan_recompute_parse("matmul", &r, &why, &arena));
  ck_assert_ptr_nonnull(strstr(why, "'matmul'"));
  ck_assert(!memplan_recompute_parse("gelu,", &r, &why, &arena));
  ck_assert(!memplan_recompute_parse("bogus", &r, &why, &arena));
}
END_TEST

/* train_step: h = gelu(a) is read by the backward, and so is a: the backward
 * gets a clone of h on a, the forward's h keeps only forward readers. relu
 * alone clones nothing. The graph stays valid. */
START_TEST(recompute_clones_for_backward) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "train_step", true);
  CkShape s = {2, {4, 8}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrNode *a = mk(g, IR_OP_EXP, x, NULL, "a");
  IrNode *h = mk(g, IR_OP_GELU, a, NULL, "h");
  IrNode *loss = mk(g, IR_OP_SUM, h, NULL, "loss");
  IrNode *gb = mk(g, IR_OP_MUL, h, a, "grad.w"); /* backward: reads h and a */
  ir_set_output(g, loss);
  ir_set_output(g, gb);
  MemplanRecompute r;
  const char *why = NULL;
  ck_assert(memplan_recompute_parse("relu", &r, &why, &arena));
  ck_assert_int_eq(memplan_recompute(m, &r), 0);
  ck_assert(memplan_recompute_parse("gelu", &r, &why, &arena));
  ck_assert_int_eq(memplan_recompute(m, &r), 1);
  ck_assert_ptr_ne(gb->in[0], h);
  ck_assert_int_eq(gb->in[0]->op, IR_OP_GELU);
  ck_assert_ptr_eq(gb->in[0]->in[0], a);
  ck_assert_ptr_eq(loss->in[0], h);
  CkcBuf err;
  ckc_buf_init(&err, &arena);
  ck_assert_msg(ir_verify(m, true, &err), "%s", ckc_buf_str(&err));
  /* the clone comes after the forward's loss and right before its reader */
  int pos_clone = -1, pos_loss = -1, pos_gb = -1;
  for (int i = 0; i < g->nodes.len; i++) {
    if (g->nodes.items[i] == gb->in[0]) pos_clone = i;
    if (g->nodes.items[i] == loss) pos_loss = i;
    if (g->nodes.items[i] == gb) pos_gb = i;
  }
  ck_assert_int_gt(pos_clone, pos_loss);
  ck_assert_int_eq(pos_gb, pos_clone + 1);
}
END_TEST

Suite *check_memplan_suite(void) {
  Suite *s = suite_create("memplan");
  TCase *tc = tcase_create("intervals");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, random_sets_are_valid);
  tcase_add_test(tc, verify_rejects_overlap);
  tcase_add_test(tc, lower_bound_and_optimal_simple);
  tcase_add_test(tc, size_order_beats_first_fit);
  suite_add_tcase(s, tc);
  TCase *tp = tcase_create("programs");
  tcase_add_checked_fixture(tp, setup, teardown);
  tcase_add_test(tp, inplace_chain_needs_one_buffer);
  tcase_add_test(tp, inplace_respects_index_maps);
  suite_add_tcase(s, tp);
  TCase *tr = tcase_create("recompute");
  tcase_add_checked_fixture(tr, setup, teardown);
  tcase_add_test(tr, recompute_parse);
  tcase_add_test(tr, recompute_clones_for_backward);
  suite_add_tcase(s, tr);
  return s;
}
