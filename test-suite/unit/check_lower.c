/* check_lower.c - lowering: compile-time broadcasting and dim collapsing,
 * kernel choice and extents, views, the v0 memory plan, unsupported ops. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit/emit.h"
#include "ir/ir.h"
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
  ck_assert_int_eq(p->arena_bytes, 2 * 16 * 16 * 4);
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
  /* identity permutation after dropping unit dims: a copy loop */
  CkShape s1 = {3, {1, 6, 1}};
  IrGraph *g2 = ir_graph_new(ir_module_new(&arena, "U", "u.ckm"), "forward", true);
  IrNode *x2 = ir_input(g2, "x", CK_DT_F32, &s1, L0);
  int64_t perm2[3] = {2, 1, 0};
  IrAttr pa2[1] = {ir_attr_ints("perm", perm2, 3)};
  ir_set_output(g2, mk(g2, IR_OP_PERMUTE, x2, NULL, pa2, 1, "y"));
  LowerProgram *p2 = lower_program(g2->module, ckc_target_find("c99"), &diag);
  ck_assert_int_eq(p2->steps.items[0]->kind, LOWER_STEP_LOOP);
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
  suite_add_tcase(s, tc);
  return s;
}
