/* test-suite/e2e/hand_ir.c - lowering tests on IR built by hand: each graph
 * exercises ops and broadcast patterns the samples do not (multi-axis
 * reductions, batched matmul with two-way batch broadcasting, where/compare/
 * cast, concat, conv/pool, attention through reshape/permute views, an i32
 * output). `hand_ir GRAPH DIR` writes the c99 project for GRAPH into DIR;
 * run.sh builds it and compares `infer` with hand_ir_oracle.py (PyTorch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emit/emit.h"
#include "ir/ir.h"

static const CkcLoc L0;
static IrNode *op(IrGraph *g, IrOp o, IrNode **in, int nin, IrAttr *at, int na, const char *name) {
  IrErr e;
  IrNode *n = ir_op(g, o, in, nin, at, na, name, L0, &e);
  if (!n) { fprintf(stderr, "ir_op %s: %s\n", ir_op_name(o), e.msg); exit(3); }
  return n;
}
#define OP(g, o, name, ...) op(g, o, (IrNode *[]){__VA_ARGS__}, (int)(sizeof((IrNode *[]){__VA_ARGS__}) / sizeof(IrNode *)), NULL, 0, name)
#define OPA(g, o, name, at, ...) op(g, o, (IrNode *[]){__VA_ARGS__}, (int)(sizeof((IrNode *[]){__VA_ARGS__}) / sizeof(IrNode *)), at, (int)(sizeof(at) / sizeof(IrAttr)), name)

static IrNode *param(IrGraph *g, const char *name, CkShape s, double std) {
  IrAttr at[3] = {ir_attr_str("init", "normal"), ir_attr_float("mean", 0.0), ir_attr_float("std", std)};
  return ir_param(g, name, CK_DT_F32, &s, at, 3, L0);
}

/* gpt-ish: embed + pos, layernorm, qkv, heads via reshape/permute, attention, gelu mlp, head */
static IrModule *build_gpt(CkcArena *a) {
  IrModule *m = ir_module_new(a, "TinyT", "tests/tiny_t.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  const int B = 2, T = 5, C = 8, H = 2, V = 11;
  CkShape si = {2, {B, T}};
  IrNode *idx = ir_input(g, "idx", CK_DT_I32, &si, L0);
  IrNode *wte = param(g, "wte", (CkShape){2, {V, C}}, 0.5);
  IrNode *wpe = param(g, "wpe", (CkShape){2, {T, C}}, 0.5);
  IrNode *lnw = param(g, "ln.weight", (CkShape){1, {C}}, 0.3);
  IrNode *lnb = param(g, "ln.bias", (CkShape){1, {C}}, 0.3);
  IrNode *wqkv = param(g, "attn.c_attn.weight", (CkShape){2, {3 * C, C}}, 0.3);
  IrNode *w1 = param(g, "mlp.fc.weight", (CkShape){2, {C, C}}, 0.3);
  IrNode *e = OP(g, IR_OP_EMBEDDING, "tok", wte, idx);
  IrNode *x = OP(g, IR_OP_ADD, "x", e, wpe);
  IrAttr eps[] = {ir_attr_float("eps", 1e-5)};
  IrNode *h = OPA(g, IR_OP_LAYERNORM, "ln.h", eps, x, lnw, lnb);
  IrAttr tb[] = {ir_attr_int("transpose_b", 1)};
  IrNode *qkv = OPA(g, IR_OP_MATMUL, "attn.qkv", tb, h, wqkv);
  IrNode *parts[3];
  for (int i = 0; i < 3; i++) {
    IrAttr sl[] = {ir_attr_int("axis", 2), ir_attr_int("start", i * C), ir_attr_int("end", (i + 1) * C), ir_attr_int("step", 1)};
    IrNode *s = OPA(g, IR_OP_SLICE, i == 0 ? "attn.q" : i == 1 ? "attn.k" : "attn.v", sl, qkv);
    CkShape rs = {4, {B, T, H, C / H}};
    IrErr er;
    IrNode *r = ir_reshape(g, s, &rs, NULL, L0, &er);
    int64_t pv[4] = {0, 2, 1, 3};
    IrAttr pa[] = {ir_attr_ints("perm", pv, 4)};
    parts[i] = OPA(g, IR_OP_PERMUTE, NULL, pa, r);
  }
  IrAttr att[] = {ir_attr_int("causal", 1), ir_attr_float("scale", 0.5)};
  IrNode *y = OPA(g, IR_OP_ATTENTION, "attn.y", att, parts[0], parts[1], parts[2]);
  int64_t pv[4] = {0, 2, 1, 3};
  IrAttr pa[] = {ir_attr_ints("perm", pv, 4)};
  IrNode *yp = OPA(g, IR_OP_PERMUTE, NULL, pa, y);
  CkShape rs = {3, {B, T, C}};
  IrErr er;
  IrNode *yr = ir_reshape(g, yp, &rs, "attn.out", L0, &er);
  IrNode *x2 = OP(g, IR_OP_ADD, "x", x, yr);
  IrNode *f = OPA(g, IR_OP_MATMUL, "mlp.h", tb, x2, w1);
  IrAttr ga[] = {ir_attr_str("approximate", "tanh")};
  IrNode *gl = OPA(g, IR_OP_GELU, "mlp.g", ga, f);
  IrNode *half = ir_const_scalar(g, CK_DT_F32, 0.5, L0);
  IrNode *x3 = OP(g, IR_OP_ADD, "x", x2, OP(g, IR_OP_MUL, NULL, gl, half));
  IrNode *logits = OPA(g, IR_OP_MATMUL, "logits", tb, x3, wte);
  IrAttr ax[] = {ir_attr_int("axis", -1)};
  IrNode *lsm = OPA(g, IR_OP_LOG_SOFTMAX, "logp", ax, logits);
  ir_set_output(g, lsm);
  return m;
}

/* misc ops: broadcast elementwise, where/compare/cast, reductions over non-adjacent axes, concat, softmax axis 1,
 * batched matmul with broadcast batch, rmsnorm, maximum, sqrt/exp/... */
static IrModule *build_misc(CkcArena *a) {
  IrModule *m = ir_module_new(a, "Misc", "misc.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {3, {3, 4, 5}}, sy = {2, {4, 1}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  IrNode *y = ir_input(g, "y", CK_DT_F32, &sy, L0);
  IrNode *w = param(g, "w", (CkShape){3, {1, 5, 4}}, 1.0);
  IrNode *g1 = param(g, "g", (CkShape){1, {5}}, 1.0);
  IrNode *s = OP(g, IR_OP_SUB, "s", x, y);                       /* [3,4,5] - [4,1] */
  IrNode *cond = OP(g, IR_OP_GT, "c", s, ir_const_scalar(g, CK_DT_F32, 0.0, L0));
  IrNode *wh = OP(g, IR_OP_WHERE, "wh", cond, OP(g, IR_OP_EXP, NULL, OP(g, IR_OP_NEG, NULL, s)), OP(g, IR_OP_SIGMOID, NULL, s));
  IrNode *mx = OP(g, IR_OP_MAXIMUM, "mx", wh, OP(g, IR_OP_TANH, NULL, x));
  IrAttr toi[] = {ir_attr_str("to", "i32")};
  IrNode *ci = OPA(g, IR_OP_CAST, "ci", toi, cond);
  (void)ci;
  IrAttr tof[] = {ir_attr_str("to", "f32")};
  IrNode *cf = OPA(g, IR_OP_CAST, "cf", tof, cond);
  IrNode *z = OP(g, IR_OP_ADD, "z", mx, cf);
  IrAttr eps[] = {ir_attr_float("eps", 1e-5)};
  IrNode *r = OPA(g, IR_OP_RMSNORM, "r", eps, z, g1);
  IrNode *mm = OP(g, IR_OP_MATMUL, "mm", r, w);                  /* [3,4,5] @ [1,5,4] -> [3,4,4] */
  int64_t ax02[2] = {0, 2};
  IrAttr ra[] = {ir_attr_ints("axes", ax02, 2), ir_attr_int("keepdim", 0)};
  IrNode *sm = OPA(g, IR_OP_MEAN, "sm", ra, mm);                  /* [4] */
  IrAttr sa[] = {ir_attr_int("axis", 1)};
  IrNode *so = OPA(g, IR_OP_SOFTMAX, "so", sa, mm);               /* [3,4,4] */
  int64_t ax1[1] = {1};
  IrAttr ma[] = {ir_attr_ints("axes", ax1, 1), ir_attr_int("keepdim", 0)};
  IrNode *mxr = OPA(g, IR_OP_MAX, "mxr", ma, so);                 /* [3,4] */
  IrNode *add = OP(g, IR_OP_ADD, "add", mxr, sm);                 /* [3,4] */
  IrAttr ca[] = {ir_attr_int("axis", 1)};
  IrNode *cc = OPA(g, IR_OP_CONCAT, "cc", ca, add, OP(g, IR_OP_SQRT, NULL, OP(g, IR_OP_ABS, NULL, add)));  /* [3,8] */
  int64_t bs[3] = {2, 3, 8};
  IrAttr ba[] = {ir_attr_ints("shape", bs, 3)};
  IrNode *bc = OPA(g, IR_OP_BROADCAST, "bc", ba, cc);
  ir_set_output(g, bc);
  return m;
}

/* cnn */
static IrModule *build_cnn(CkcArena *a) {
  IrModule *m = ir_module_new(a, "Cnn", "cnn.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {4, {2, 3, 8, 8}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  IrNode *w = param(g, "conv.weight", (CkShape){4, {4, 3, 3, 3}}, 0.3);
  IrNode *b = param(g, "conv.bias", (CkShape){1, {4}}, 0.3);
  int64_t one[2] = {1, 1}, two[2] = {2, 2};
  IrAttr cat[] = {ir_attr_ints("stride", one, 2), ir_attr_ints("padding", one, 2), ir_attr_int("groups", 1)};
  IrNode *c = OPA(g, IR_OP_CONV2D, "conv.y", cat, x, w, b);
  IrNode *r = OP(g, IR_OP_RELU, "r", c);
  IrAttr pat[] = {ir_attr_ints("kernel", two, 2), ir_attr_ints("stride", two, 2), ir_attr_ints("padding", (int64_t[]){0, 0}, 2)};
  IrNode *p = OPA(g, IR_OP_MAXPOOL2D, "p", pat, r);
  IrNode *q = OPA(g, IR_OP_AVGPOOL2D, "q", pat, p);
  CkShape fs = {2, {2, 16}};
  IrErr er;
  IrNode *fl = ir_reshape(g, q, &fs, "flat", L0, &er);
  ir_set_output(g, fl);
  return m;
}

/* batched matmul whose batch dims broadcast both ways, sums, argmax */
static IrModule *build_bmm(CkcArena *a) {
  IrModule *m = ir_module_new(a, "Bmm", "bmm.ckm");
  IrGraph *g = ir_graph_new(m, "forward", true);
  CkShape sx = {4, {2, 1, 3, 4}};
  IrNode *x = ir_input(g, "x", CK_DT_F32, &sx, L0);
  IrNode *w = param(g, "w", (CkShape){3, {3, 5, 4}}, 1.0);
  IrAttr tb[] = {ir_attr_int("transpose_b", 1)};
  IrNode *mm = OPA(g, IR_OP_MATMUL, "mm", tb, x, w);          /* [2,3,3,5] */
  int64_t ax[2] = {1, 3};
  IrAttr ra[] = {ir_attr_ints("axes", ax, 2), ir_attr_int("keepdim", 1)};
  IrNode *s = OPA(g, IR_OP_SUM, "s", ra, mm);                 /* [2,1,3,1] */
  IrNode *d = OP(g, IR_OP_DIV, "d", mm, s);                   /* [2,3,3,5] */
  IrAttr am[] = {ir_attr_int("axis", 3), ir_attr_int("keepdim", 0)};
  IrNode *r = OPA(g, IR_OP_ARGMAX, "r", am, d);               /* i32[2,3,3] */
  ir_set_output(g, r);
  return m;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: hand_ir gpt|misc|cnn|bmm DIR\n");
    return 2;
  }
  CkcArena a;
  ckc_arena_init(&a);
  CkcDiag d;
  ckc_diag_init(&d, &a, stderr);
  IrModule *m = NULL;
  if (strcmp(argv[1], "gpt") == 0) m = build_gpt(&a);
  else if (strcmp(argv[1], "misc") == 0) m = build_misc(&a);
  else if (strcmp(argv[1], "cnn") == 0) m = build_cnn(&a);
  else if (strcmp(argv[1], "bmm") == 0) m = build_bmm(&a);
  else {
    fprintf(stderr, "hand_ir: unknown graph '%s'\n", argv[1]);
    return 2;
  }
  CkcBuf err;
  ckc_buf_init(&err, &a);
  if (!ir_verify(m, true, &err)) {
    fprintf(stderr, "hand_ir: verify: %s\n", ckc_buf_str(&err));
    return 3;
  }
  bool ok = ckc_emit_project(m, ckc_target_find("c99"), argv[2], &d);
  ckc_arena_free(&a);
  return ok ? 0 : 1;
}
