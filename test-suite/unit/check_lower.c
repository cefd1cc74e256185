/* check_lower.c - lowering: compile-time broadcasting and dim collapsing,
 * kernel choice and extents, views, the v0 memory plan, unsupported ops. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit/emit.h"
#include "emit/emit_impl.h"
#include "ir/ir.h"
#include "ir/train.h"
#include "lower/lower.h"
#include "targets/target.h"

static CkcArena arena;
static CkcDiag diag;
static FILE *diag_out;
static char *diag_text;
static size_t diag_len;
static const CkcLoc L0;

static void setup(void) {
  ckc_arena_init(&arena);
  diag_out = open_memstream(&diag_text, &diag_len);
  ckc_diag_init(&diag, &arena, diag_out);
}
static void teardown(void) {
  fclose(diag_out);
  free(diag_text);
  ckc_arena_free(&arena);
}

static IrNode *mk(IrGraph *g, IrOp op, IrNode *a, IrNode *b, const IrAttr *at, int na, const char *name) {
  IrNode *in[2] = {a, b};
  IrErr e;
  IrNode *n = ir_op(g, op, in, b ? 2 : 1, at, na, name, L0, &e);
  ck_assert_msg(n != NULL, "%s", e.msg);
  return n;
}

static IrNode *param(IrGraph *g, const char *name, CkShape s) {
  IrAttr at[1] = {ir_attr_str("init", "zeros")};
  return ir_param(g, name, CK_DT_F32, &s, at, 1, L0);
}

static LowerStep *step_of(LowerProgram *p, const char *name) {
  for (int i = 0; i < p->steps.len; i++)
    if (p->steps.items[i]->node->name && strcmp(p->steps.items[i]->node->name, name) == 0)
      return p->steps.items[i];
  return NULL;
}

/* [8,64,128] + [64,128]: two loops (batch, 8192), the bias broadcast with stride 0. */
START_TEST(broadcast_collapses_dims) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {3, {8, 64, 128}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  IrNode *w = param(g, "wpe", (CkShape){2, {64, 128}});
  IrNode *y = mk(g, IR_OP_ADD, x, w, NULL, 0, "y");
  IrNode *z = mk(g, IR_OP_MUL, y, ir_const_scalar(g, CK_DT_F32, 2.0, L0), NULL, 0, "z");
  ir_set_output(g, z);
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  LowerStep *s = step_of(p, "y");
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(s->kind, LOWER_STEP_LOOP);
  ck_assert_int_eq(s->rank, 2);
  ck_assert_int_eq(s->extents[0], 8);
  ck_assert_int_eq(s->extents[1], 8192);
  ck_assert_int_eq(s->strides[1][0], 0); /* wpe: broadcast over the batch */
  ck_assert_int_eq(s->strides[1][1], 1);
  ck_assert_int_eq(s->strides[0][0], 8192);
  /* the splat 2.0 is a literal, not an operand; the whole op is one flat loop */
  LowerStep *t = step_of(p, "z");
  ck_assert_int_eq(t->noperands, 1);
  ck_assert_int_eq(t->rank, 1);
  ck_assert_int_eq(t->out->kind, LOWER_BUF_OUTPUT);
}
END_TEST

/* [B,M,K] @ [N,K]^T is one GEMM of B*M rows; reshape is a view, not a step. */
START_TEST(matmul_folds_batch_and_reshape_is_view) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {3, {4, 5, 6}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  IrNode *w = param(g, "w", (CkShape){2, {7, 6}});
  IrAttr tb[1] = {ir_attr_int("transpose_b", 1)};
  IrNode *y = mk(g, IR_OP_MATMUL, x, w, tb, 1, "y");
  CkShape rs = {2, {20, 7}};
  IrErr e;
  IrNode *r = ir_reshape(g, y, &rs, "r", L0, &e);
  IrNode *s = mk(g, IR_OP_RELU, r, NULL, NULL, 0, "s");
  ir_set_output(g, s);
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(p->steps.len, 2);
  LowerStep *mm = step_of(p, "y");
  ck_assert_str_eq(mm->kernel, "ck_matmul_f32");
  ck_assert_int_eq(mm->args[3].i, 1);  /* batch */
  ck_assert_int_eq(mm->args[4].i, 20); /* M = 4*5 */
  ck_assert_int_eq(mm->args[5].i, 7);  /* N */
  ck_assert_int_eq(mm->args[6].i, 6);  /* K */
  ck_assert_int_eq(mm->args[8].i, 1);  /* tb */
  LowerStep *relu = step_of(p, "s");
  ck_assert_int_eq(relu->operands[0]->kind, LOWER_BUF_ALIAS);
  ck_assert_ptr_eq(lower_buf_root(relu->operands[0]), mm->out);
}
END_TEST

/* A chain of n elementwise steps needs two live buffers at a time: the plan
 * reuses memory, and never overlaps buffers that are live together (the
 * planner checks that itself and would abort). */
START_TEST(memory_plan_reuses) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {2, {16, 16}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  for (int i = 0; i < 10; i++) x = mk(g, i % 2 ? IR_OP_EXP : IR_OP_TANH, x, NULL, NULL, 0, NULL);
  ir_set_output(g, x);
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(p->steps.len, 10);
  /* each loop overwrites its dying input in place (lower/memplan.c): one buffer */
  ck_assert_int_eq(p->arena_bytes, 1 * 16 * 16 * 4);
  for (int i = 0; i < p->bufs.len; i++)
    if (p->bufs.items[i]->kind == LOWER_BUF_ARENA) ck_assert_int_eq(p->bufs.items[i]->offset % 64, 0);
}
END_TEST

/* permute (0,2,1,3) of [2,1,5,4]: the unit dim drops, the kernel sees rank 3. */
START_TEST(permute_drops_unit_dims) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {4, {2, 3, 5, 4}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  int64_t perm[4] = {0, 2, 1, 3};
  IrAttr pa[1] = {ir_attr_ints("perm", perm, 4)};
  IrNode *y = mk(g, IR_OP_PERMUTE, x, NULL, pa, 1, "y");
  ir_set_output(g, y);
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  LowerStep *s = step_of(p, "y");
  ck_assert_str_eq(s->kernel, "ck_permute");
  ck_assert_int_eq(s->args[3].i, 4);
  /* identity permutation after dropping unit dims: a view of x, so the only
   * step is the copy of that view into the caller's out */
  CkShape s1 = {3, {1, 6, 1}};
  IrGraph *g2 = ir_graph_new(ir_module_new(&arena, "U", "u.ckm"), "forward", true);
  IrNode *x2 = ir_input(g2, "x", CK_DT_F32, &s1, L0);
  int64_t perm2[3] = {2, 1, 0};
  IrAttr pa2[1] = {ir_attr_ints("perm", perm2, 3)};
  ir_set_output(g2, mk(g2, IR_OP_PERMUTE, x2, NULL, pa2, 1, "y"));
  LowerProgram *p2 = lower_program(g2->module, ckc_target_find("c99"), &diag);
  ck_assert_int_eq(p2->steps.len, 1);
  ck_assert_int_eq(p2->steps.items[0]->kind, LOWER_STEP_COPY);
}
END_TEST

/* f64 matmul has no c99 kernel: E0910 with the op and the type, no crash. */
START_TEST(unsupported_dtype_is_reported) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape s = {2, {4, 4}};
  IrNode *x = ir_input(g, "x", CK_DT_F64, &s, L0);
  ir_set_output(g, mk(g, IR_OP_MATMUL, x, x, NULL, 0, "y"));
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_null(p);
  ck_assert_int_eq(diag.nerrors, 1);
  fflush(diag_out);
  ck_assert_ptr_nonnull(strstr(diag_text, "E0910"));
  ck_assert_ptr_nonnull(strstr(diag_text, "matmul on f64[4,4]"));
}
END_TEST

/* --emit=c is deterministic and names values after the source. */
START_TEST(emit_c_is_stable) {
  CkcBuf a, b;
  for (int k = 0; k < 2; k++) {
    IrModule *m = ir_module_new(&arena, "Net", "dir/net.ckm");
    IrGraph *g = ir_graph_new(m, "forward", true);
    CkShape sx = {2, {3, 4}};
    IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
    IrNode *w = param(g, "fc.weight", (CkShape){2, {5, 4}});
    IrAttr tb[1] = {ir_attr_int("transpose_b", 1)};
    ir_set_output(g, mk(g, IR_OP_MATMUL, x, w, tb, 1, "h"));
    CkcBuf *o = k ? &b : &a;
    ckc_buf_init(o, &arena);
    ck_assert(ckc_emit_model_c(m, ckc_target_find("c99"), o, &diag));
  }
  ck_assert_str_eq(ckc_buf_str(&a), ckc_buf_str(&b));
  ck_assert_ptr_nonnull(strstr(ckc_buf_str(&a), "/* generated by ckc 0.1.0 from net.ckm - do not edit */"));
  ck_assert_ptr_nonnull(strstr(ckc_buf_str(&a), "const float *const fc_weight = params + 0;"));
  ck_assert_ptr_nonnull(strstr(ckc_buf_str(&a), "/* return h = matmul(x, fc.weight, transpose_b=1)  f32[3,5] */"));
}
END_TEST


/* ---- training entry graphs ------------------------------------------------------------- */

static LowerStep *step_kernel(LowerProgram *p, const char *kernel, int *index) {
  for (int i = 0; i < p->steps.len; i++)
    if (p->steps.items[i]->kind == LOWER_STEP_KERNEL && strcmp(p->steps.items[i]->kernel, kernel) == 0) {
      if (index) *index = i;
      return p->steps.items[i];
    }
  return NULL;
}

/* A module with forward, loss and train_step: linear logits, cross_entropy,
 * and (train_step) the cross_entropy_bwd of a splat 1.0 plus a gradient for
 * "w" and for "extra" (a parameter only the loss uses). */
static IrModule *train_module(void) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  m->train = CKC_NEW(&arena, IrTrainConfig);
  IrTrainParam tw = {"w", true}, te = {"extra", false};
  CKC_VEC_PUSH(&arena, m->train->params, tw);
  CKC_VEC_PUSH(&arena, m->train->params, te);
  CkShape sx = {2, {4, 5}}, sy = {1, {4}};
  IrAttr tb[1] = {ir_attr_int("transpose_b", 1)};
  IrGraph *f = ir_graph_new(m, "forward", true);
  IrNode *fx = ir_input(f, "x", CK_DT_F32, &sx, L0);
  ir_set_output(f, mk(f, IR_OP_MATMUL, fx, param(f, "w", (CkShape){2, {3, 5}}), tb, 1, "logits"));
  for (int k = 0; k < 2; k++) {
    IrGraph *g = ir_graph_new(m, k ? "train_step" : "loss", true);
    IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
    IrNode *y = ir_input(g, "y", CK_DT_I32, &sy, L0);
    IrNode *w = param(g, "w", (CkShape){2, {3, 5}});
    IrNode *e = param(g, "extra", (CkShape){1, {3}});
    IrNode *lg = mk(g, IR_OP_ADD, mk(g, IR_OP_MATMUL, x, w, tb, 1, NULL), e, NULL, 0, "logits");
    IrNode *l = mk(g, IR_OP_CROSS_ENTROPY, lg, y, NULL, 0, "loss");
    ir_set_output(g, l);
    if (!k) {
      ir_set_output(g, lg);
      continue;
    }
    IrNode *in[3] = {ir_const_scalar(g, CK_DT_F32, 1.0, L0), lg, y};
    IrErr err;
    IrNode *dl = ir_op(g, IR_OP_CROSS_ENTROPY_BWD, in, 3, NULL, 0, "d.logits", L0, &err);
    ck_assert_msg(dl != NULL, "%s", err.msg);
    int64_t ax[1] = {0};
    IrAttr sa[1] = {ir_attr_ints("axes", ax, 1)};
    IrNode *ta[2] = {dl, x};
    IrAttr tt[2] = {ir_attr_int("transpose_a", 1), ir_attr_int("transpose_b", 0)};
    IrNode *gw = ir_op(g, IR_OP_MATMUL, ta, 2, tt, 2, NULL, L0, &err); /* [3,5] */
    ck_assert_msg(gw != NULL, "%s", err.msg);
    ir_set_output(g, gw);
    ir_set_output(g, mk(g, IR_OP_SUM, dl, NULL, sa, 1, "grad.extra"));
  }
  return m;
}

/* One params layout for all entry graphs: forward's params first, then
 * the loss's extras, 64-byte aligned; trainable/decay from the train config. */
START_TEST(layout_is_union_of_entries) {
  IrModule *m = train_module();
  LowerModule *lm = lower_module(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(lm);
  ck_assert_int_eq(lm->layout->params.len, 2);
  ck_assert_str_eq(lm->layout->params.items[0].name, "w");
  ck_assert_str_eq(lm->layout->params.items[1].name, "extra");
  ck_assert_int_eq(lm->layout->params.items[1].offset, 64);
  ck_assert_int_eq(lm->layout->params.items[1].train_index, 1);
  ck_assert(lm->layout->params.items[0].decay);
  ck_assert(!lm->layout->params.items[1].decay);
  ck_assert_int_eq(lm->forward->params_bytes, 128);
  ck_assert_int_eq(lm->train_step->params_bytes, 128);
  ck_assert_ptr_nonnull(lm->loss->logits);
}
END_TEST

/* cross_entropy_bwd: the splat dloss is filled before the kernel, dlogits is
 * zeroed before it (the kernel accumulates), a bad target reports input 1;
 * each gradient output is ADDED into a grads slot at its param's offset. */
START_TEST(train_step_zeroes_and_accumulates) {
  IrModule *m = train_module();
  LowerModule *lm = lower_module(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(lm);
  LowerProgram *p = lm->train_step;
  int ki = -1;
  LowerStep *k = step_kernel(p, "ck_cross_entropy_backward_f32", &ki);
  ck_assert_ptr_nonnull(k);
  ck_assert_int_eq(k->check, LOWER_CHECK_TARGET);
  ck_assert_int_eq(k->check_input, 1);
  bool zeroed = false, filled = false;
  for (int i = 0; i < ki; i++) {
    LowerStep *s = p->steps.items[i];
    if (s->kind == LOWER_STEP_ZERO && s->out == k->out) zeroed = true;
    if (s->kind == LOWER_STEP_LOOP && s->out == k->args[1].buf) filled = true;
  }
  ck_assert(zeroed);
  ck_assert(filled);
  int grads = 0;
  for (int i = 0; i < p->steps.len; i++) {
    LowerStep *s = p->steps.items[i];
    if (s->out->kind != LOWER_BUF_GRAD) continue;
    grads++;
    ck_assert_int_eq(s->kind, LOWER_STEP_LOOP);
    ck_assert_ptr_eq(s->operands[0], s->out); /* reads the slot: accumulation */
    ck_assert_int_eq(s->body[s->nbody - 1].op, IR_OP_ADD);
    ck_assert_int_eq(s->out->offset, strcmp(s->out->name, "w") == 0 ? 0 : 64);
  }
  ck_assert_int_eq(grads, 2);
  CkcBuf c;
  ckc_buf_init(&c, &arena);
  emit_model_c(lm, &c);
  ck_assert_ptr_nonnull(strstr(ckc_buf_str(&c), "int t_train_step(const float *params, float *grads"));
  ck_assert_ptr_nonnull(strstr(ckc_buf_str(&c), ">= 0) return T_ERR_TARGET_RANGE + 1;"));
  ck_assert_ptr_nonnull(strstr(ckc_buf_str(&c), "if (logits) memcpy(logits, "));
}
END_TEST

/* layernorm_bwd_x and layernorm_bwd_w of the same (dy, x): the statistics
 * are recomputed once, and one backward call produces both gradients. */
START_TEST(norm_backward_pair_is_one_call) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape s = {2, {6, 8}};
  IrNode *dy = ir_input(g, "dy", CK_DT_F32, &s, L0);
  IrNode *x = ir_input(g, "x", CK_DT_F32, &s, L0);
  IrNode *w = param(g, "w", (CkShape){1, {8}});
  IrErr err;
  IrNode *ix[3] = {dy, x, w};
  IrNode *dx = ir_op(g, IR_OP_LAYERNORM_BWD_X, ix, 3, NULL, 0, "dx", L0, &err);
  ck_assert_msg(dx != NULL, "%s", err.msg);
  IrNode *dw = ir_op(g, IR_OP_LAYERNORM_BWD_W, ix, 2, NULL, 0, "dw", L0, &err);
  ck_assert_msg(dw != NULL, "%s", err.msg);
  ir_set_output(g, mk(g, IR_OP_ADD, dx, dw, NULL, 0, "r"));
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  int n = 0;
  LowerStep *bw = NULL;
  for (int i = 0; i < p->steps.len; i++)
    if (p->steps.items[i]->kind == LOWER_STEP_KERNEL &&
        strcmp(p->steps.items[i]->kernel, "ck_layernorm_backward_f32") == 0) {
      n++;
      bw = p->steps.items[i];
    }
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(bw->args[0].kind, LOWER_ARG_BUF); /* dx */
  ck_assert_int_eq(bw->args[1].kind, LOWER_ARG_BUF); /* dw */
  ck_assert_ptr_nonnull(step_kernel(p, "ck_layernorm_f32", NULL));
}
END_TEST

/* slice_bwd: zeros, then dy written at start + i*step along the axis. */
START_TEST(slice_bwd_is_zero_and_strided_copy) {
  IrModule *m = ir_module_new(&arena, "T", "t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape s = {2, {3, 4}};
  IrNode *dy = ir_input(g, "dy", CK_DT_F32, &s, L0);
  IrAttr at[4] = {ir_attr_int("axis", 1), ir_attr_int("start", 1), ir_attr_int("step", 2),
                  ir_attr_int("size", 9)};
  IrErr err;
  IrNode *dx = ir_op(g, IR_OP_SLICE_BWD, &dy, 1, at, 4, "dx", L0, &err);
  ck_assert_msg(dx != NULL, "%s", err.msg);
  ir_set_output(g, dx);
  LowerProgram *p = lower_program(m, ckc_target_find("c99"), &diag);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_eq(p->steps.len, 2);
  ck_assert_int_eq(p->steps.items[0]->kind, LOWER_STEP_ZERO);
  LowerStep *cp = p->steps.items[1];
  ck_assert_int_eq(cp->kind, LOWER_STEP_LOOP);
  ck_assert_int_eq(cp->out_offset, 1);
  ck_assert_int_eq(cp->rank, 2);
  ck_assert_int_eq(cp->out_strides[0], 9);
  ck_assert_int_eq(cp->out_strides[1], 2);
  ck_assert_int_eq(cp->strides[0][0], 4);
}
END_TEST

Suite *check_lower_suite(void) {
  Suite *s = suite_create("lower");
  TCase *tc = tcase_create("lower");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, broadcast_collapses_dims);
  tcase_add_test(tc, matmul_folds_batch_and_reshape_is_view);
  tcase_add_test(tc, memory_plan_reuses);
  tcase_add_test(tc, permute_drops_unit_dims);
  tcase_add_test(tc, unsupported_dtype_is_reported);
  tcase_add_test(tc, emit_c_is_stable);
  tcase_add_test(tc, layout_is_union_of_entries);
  tcase_add_test(tc, train_step_zeroes_and_accumulates);
  tcase_add_test(tc, norm_backward_pair_is_one_call);
  tcase_add_test(tc, slice_bwd_is_zero_and_strided_copy);
  suite_add_tcase(s, tc);
  return s;
}
