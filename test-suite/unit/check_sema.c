/* check_sema.c - semantic analysis: imports, names, constants and -D,
 * elaboration of fns into IR graphs (monomorphisation, dimension variables,
 * builtins and their attribute normalisation) and the diagnostics of bad
 * programs. Programs are written to a fresh temporary directory and compiled
 * with ckc_sema_file; diagnostics go to a memory stream. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/sema.h"
#include "ir/ir.h"

static CkcArena arena;
static char dir[256];
static char *diag_text;
static int diag_errors;

static void setup(void) {
  ckc_arena_init(&arena);
  snprintf(dir, sizeof dir, "/tmp/ckc-sema-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  diag_text = NULL;
}

static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
  free(diag_text);
  diag_text = NULL;
  ckc_arena_free(&arena);
}

static const char *write_src(const char *name, const char *src) {
  char *path = ckc_arena_printf(&arena, "%s/%s", dir, name);
  char *slash = strrchr(path, '/');
  if (slash > path + strlen(dir)) { /* a sub-directory */
    *slash = '\0';
    mkdir(path, 0700);
    *slash = '/';
  }
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(src, f);
  fclose(f);
  return path;
}

/* Compiles main.ckm (written from src) with the given options. */
static IrModule *compile_opts(const char *src, const CkcSemaOptions *opt) {
  const char *path = write_src("main.ckm", src);
  free(diag_text);
  size_t len = 0;
  FILE *out = open_memstream(&diag_text, &len);
  CkcDiag d;
  ckc_diag_init(&d, &arena, out);
  d.max_errors = 50;
  IrModule *m = ckc_sema_file(&arena, &d, path, opt);
  fclose(out);
  diag_errors = d.nerrors;
  return m;
}

static IrModule *compile(const char *src) {
  CkcSemaOptions opt = {.use_embedded_stdlib = true};
  return compile_opts(src, &opt);
}

static bool has_id(const char *id) {
  char tag[16];
  snprintf(tag, sizeof tag, "[%s]", id);
  return diag_text && strstr(diag_text, tag) != NULL;
}

static IrGraph *graph(IrModule *m, const char *name) {
  for (int i = 0; i < m->graphs.len; i++)
    if (strcmp(m->graphs.items[i]->name, name) == 0) return m->graphs.items[i];
  return NULL;
}

static int count_op(const IrGraph *g, IrOp op) {
  int n = 0;
  for (int i = 0; i < g->nodes.len; i++) n += g->nodes.items[i]->op == op;
  return n;
}

static IrNode *first_op(const IrGraph *g, IrOp op) {
  for (int i = 0; i < g->nodes.len; i++)
    if (g->nodes.items[i]->op == op) return g->nodes.items[i];
  return NULL;
}

static IrNode *output(const IrGraph *g) {
  ck_assert_int_eq(g->outputs.len, 1);
  return g->outputs.items[0];
}

static void assert_shape(const IrNode *n, int rank, const int64_t *dims) {
  ck_assert_int_eq(n->shape.rank, rank);
  for (int i = 0; i < rank; i++) ck_assert_int_eq(n->shape.dims[i], dims[i]);
}

static void assert_ints(const IrNode *n, const char *key, int count, const int64_t *want) {
  int got;
  const int64_t *v = ir_get_ints(n, key, &got);
  ck_assert_ptr_nonnull(v);
  ck_assert_int_eq(got, count);
  for (int i = 0; i < count; i++) ck_assert_int_eq(v[i], want[i]);
}

/* ---- elaboration ---------------------------------------------------------------- */

START_TEST(entry_graph_and_model) {
  IrModule *m = compile("const B = 4;\n"
                        "model Tiny {\n"
                        "  param w: f32[8, 16] = normal(0.0, 0.02);\n"
                        "  fn forward(x: f32[B, 8]) -> f32[B, 16] {\n"
                        "    let h = x @ w;\n"
                        "    return relu(h);\n"
                        "  }\n"
                        "}\n");
  ck_assert_msg(m != NULL, "%s", diag_text);
  ck_assert_str_eq(m->model_name, "Tiny");
  ck_assert_str_eq(m->source_name, "main.ckm");
  ck_assert_int_eq(m->graphs.len, 1);
  IrGraph *g = m->graphs.items[0];
  ck_assert_str_eq(g->name, "forward");
  ck_assert(g->is_entry);
  ck_assert_int_eq(g->inputs.len, 1);
  ck_assert_str_eq(g->input_names.items[0], "x");
  IrNode *w = first_op(g, IR_OP_PARAM);
  ck_assert_str_eq(w->name, "w");
  ck_assert_str_eq(ir_get_str(w, "init", ""), "normal");
  ck_assert(fabs(ir_get_float(w, "std", 0) - 0.02) < 1e-12);
  IrNode *mm = first_op(g, IR_OP_MATMUL);
  ck_assert_str_eq(mm->name, "h"); /* let names are recorded on nodes */
  int64_t want[] = {4, 16};
  assert_shape(output(g), 2, want);
  ck_assert_int_eq(output(g)->op, IR_OP_RELU);
  ck_assert_int_eq(m->consts.len, 1);
  ck_assert_str_eq(m->consts.items[0].name, "B");
  ck_assert_int_eq(m->consts.items[0].ival, 4);
}
END_TEST

START_TEST(stdlib_block_instances) {
  IrModule *m = compile("import nn;\n"
                        "model G {\n"
                        "  blocks: nn.Block(32, 4)[3];\n"
                        "  ln: nn.LayerNorm(32);\n"
                        "  fn forward(x: f32[2, 8, 32]) -> f32[2, 8, 32] {\n"
                        "    let h = x;\n"
                        "    for b in blocks { h = b(h); }\n"
                        "    return ln(blocks[-1](h));\n"
                        "  }\n"
                        "}\n");
  ck_assert_msg(m != NULL, "%s", diag_text);
  IrGraph *g = ir_module_entry(m, "forward");
  ck_assert_ptr_nonnull(g);
  ck_assert_int_eq(count_op(g, IR_OP_CALL), 5);
  const char *prefixes[] = {"blocks.0", "blocks.1", "blocks.2", "blocks.2", "ln"};
  int k = 0;
  for (int i = 0; i < g->nodes.len; i++)
    if (g->nodes.items[i]->op == IR_OP_CALL) ck_assert_str_eq(g->nodes.items[i]->prefix, prefixes[k++]);
  /* one graph per instantiation, however often it is called */
  IrGraph *blk = graph(m, "nn.Block(32,4).forward");
  ck_assert_ptr_nonnull(blk);
  ck_assert_ptr_nonnull(graph(m, "nn.LayerNorm(32).forward"));
  ck_assert_ptr_nonnull(graph(m, "nn.CausalSelfAttention(32,4).forward"));
  ck_assert_ptr_nonnull(graph(m, "nn.Linear(32,96).forward"));
  int nblock = 0;
  for (int i = 0; i < m->graphs.len; i++)
    nblock += strncmp(m->graphs.items[i]->name, "nn.Block", 8) == 0;
  ck_assert_int_eq(nblock, 1);
  ck_assert_ptr_eq(g->nodes.items[1]->callee, blk);
  /* parameters are named relative to their own instance */
  IrGraph *lin = graph(m, "nn.Linear(32,96).forward");
  IrNode *p = first_op(lin, IR_OP_PARAM);
  ck_assert_str_eq(p->name, "weight");
  int64_t wshape[] = {96, 32};
  assert_shape(p, 2, wshape);
  /* the attention default scale is 1/sqrt(D), D = 32 / 4 */
  IrNode *att = first_op(graph(m, "nn.CausalSelfAttention(32,4).forward"), IR_OP_ATTENTION);
  ck_assert(fabs(ir_get_float(att, "scale", 0) - 1.0 / sqrt(8.0)) < 1e-12);
  ck_assert_int_eq(ir_get_int(att, "causal", 0), 1);
}
END_TEST

START_TEST(monomorphisation_by_shape) {
  IrModule *m = compile("layer Scale(n) {\n"
                        "  param s: f32[n] = ones();\n"
                        "  fn forward(x: f32[..., n]) -> f32[..., n] { return x * s; }\n"
                        "}\n"
                        "model M {\n"
                        "  a: Scale(4);\n"
                        "  b: Scale(4);\n"
                        "  fn forward(x: f32[2, 4], y: f32[3, 5, 4]) -> f32[3, 5, 4] {\n"
                        "    let p = a(x);\n"
                        "    let q = b(x);\n"
                        "    return a(y) + sum(p + q);\n"
                        "  }\n"
                        "}\n");
  ck_assert_msg(m != NULL, "%s", diag_text);
  /* entry + Scale(4).forward for [2,4] + a second graph for [3,5,4] */
  ck_assert_int_eq(m->graphs.len, 3);
  ck_assert_ptr_nonnull(graph(m, "Scale(4).forward"));
  ck_assert_ptr_nonnull(graph(m, "Scale(4).forward#2"));
  int64_t want[] = {3, 5, 4};
  assert_shape(output(graph(m, "Scale(4).forward#2")), 3, want);
}
END_TEST

START_TEST(helper_fn_and_keyword_args) {
  IrModule *m = compile("layer Heads(C, H) {\n"
                        "  const D = C / H;\n"
                        "  fn split(t: f32[B, T, C]) -> f32[B, H, T, D] {\n"
                        "    return permute(reshape(t, (B, T, H, -1)), (0, 2, 1, 3));\n"
                        "  }\n"
                        "  fn forward(x: f32[B, T, C]) -> f32[B, H, T, D] { return split(t = x); }\n"
                        "}\n"
                        "model M {\n"
                        "  h: Heads(12, 3);\n"
                        "  fn forward(x: f32[2, 5, 12]) -> f32[2, 3, 5, 4] { return h(x); }\n"
                        "}\n");
  ck_assert_msg(m != NULL, "%s", diag_text);
  IrGraph *fwd = graph(m, "Heads(12,3).forward");
  ck_assert_ptr_nonnull(fwd);
  IrNode *call = first_op(fwd, IR_OP_CALL);
  ck_assert_str_eq(call->prefix, "");
  ck_assert_str_eq(call->callee->name, "Heads(12,3).split");
  IrNode *rs = first_op(call->callee, IR_OP_RESHAPE);
  int64_t want[] = {2, 5, 3, 4};
  assert_shape(rs, 4, want);
}
END_TEST

START_TEST(builtin_attribute_normalisation) {
  IrModule *m = compile("model M {\n"
                        "  fn forward(x: f32[2, 6, 8]) -> f32[2, 8] {\n"
                        "    let t = transpose(x);\n"
                        "    let s = slice(t, axis = -1, start = -4, end = 100);\n"
                        "    let r = sum(s, axis = (-1, 0), keepdim = true);\n"
                        "    let sm = softmax(x, axis = -2);\n"
                        "    let mx = max(sm, axis = 1);\n"
                        "    return mx + mean(r) * 2;\n"
                        "  }\n"
                        "}\n");
  ck_assert_msg(m != NULL, "%s", diag_text);
  IrGraph *g = m->graphs.items[0];
  int64_t perm[] = {0, 2, 1};
  assert_ints(first_op(g, IR_OP_PERMUTE), "perm", 3, perm);
  IrNode *sl = first_op(g, IR_OP_SLICE);
  ck_assert_int_eq(ir_get_int(sl, "axis", -1), 2);
  ck_assert_int_eq(ir_get_int(sl, "start", -1), 2);
  ck_assert_int_eq(ir_get_int(sl, "end", -1), 6);
  IrNode *sum = first_op(g, IR_OP_SUM);
  int64_t axes[] = {0, 2};
  assert_ints(sum, "axes", 2, axes);
  ck_assert_int_eq(ir_get_int(sum, "keepdim", 0), 1);
  ck_assert_int_eq(ir_get_int(first_op(g, IR_OP_SOFTMAX), "axis", -1), 1);
  IrNode *mean = first_op(g, IR_OP_MEAN);
  int64_t all[] = {0, 1, 2};
  assert_ints(mean, "axes", 3, all);
  /* the literal 2 became an f32 scalar constant */
  IrNode *c = first_op(g, IR_OP_CONST);
  ck_assert_int_eq(c->dtype, CK_DT_F32);
  ck_assert_int_eq(c->shape.rank, 0);
}
END_TEST

START_TEST(literal_dtype_and_cast) {
  IrModule *m = compile("model M {\n"
                        "  fn forward(x: f64[3], i: i32[3]) -> f64[3] {\n"
                        "    let a = 1.5 - x;\n"
                        "    let b = cast(i + 1, f64);\n"
                        "    return where(a > b, a, 0.0);\n"
                        "  }\n"
                        "}\n");
  ck_assert_msg(m != NULL, "%s", diag_text);
  IrGraph *g = m->graphs.items[0];
  int nconst = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    if (n->op != IR_OP_CONST) continue;
    nconst++;
    ck_assert(n->dtype == CK_DT_F64 || n->dtype == CK_DT_I32);
  }
  ck_assert_int_eq(nconst, 3);
  ck_assert_str_eq(ir_get_str(first_op(g, IR_OP_CAST), "to", ""), "f64");
  ck_assert_int_eq(first_op(g, IR_OP_GT)->dtype, CK_DT_BOOL);
}
END_TEST

/* ---- constants and -D ------------------------------------------------------------ */

START_TEST(defines_override_consts) {
  CkcDefine defs[] = {{"B", "16"}, {"SCALE", "0.25"}};
  CkcSemaOptions opt = {.defines = defs, .ndefines = 2, .use_embedded_stdlib = true};
  IrModule *m = compile_opts("const B = 4;\n"
                             "const SCALE = 1.0;\n"
                             "const N = B * 2;\n"
                             "model M {\n"
                             "  fn forward(x: f32[N, 3]) -> f32[N, 3] { return x * SCALE; }\n"
                             "}\n",
                             &opt);
  ck_assert_msg(m != NULL, "%s", diag_text);
  int64_t want[] = {32, 3};
  assert_shape(m->graphs.items[0]->inputs.items[0], 2, want);
  ck_assert_int_eq(m->consts.len, 3);
  ck_assert(m->consts.items[1].is_float);
  ck_assert(m->consts.items[1].fval == 0.25);
  ck_assert_int_eq(m->consts.items[2].ival, 32);
}
END_TEST

START_TEST(defines_errors) {
  CkcDefine defs[] = {{"BATCH", "16"}, {"B", "1x"}};
  CkcSemaOptions opt = {.defines = defs, .ndefines = 2, .use_embedded_stdlib = true};
  IrModule *m = compile_opts("const B = 4;\n"
                             "model M { fn forward(x: f32[B]) -> f32[B] { return x; } }\n",
                             &opt);
  ck_assert_ptr_null(m);
  ck_assert(has_id("E0404"));
  ck_assert(has_id("E0405"));
  ck_assert_msg(strstr(diag_text, "its consts: B") != NULL, "%s", diag_text);
}
END_TEST

START_TEST(const_arithmetic) {
  IrModule *m = compile("const A = 7 % -3;\n"
                        "const F = 1 / 4.0;\n"
                        "const S = sqrt(16);\n"
                        "const MN = min(3, 9, -2);\n"
                        "const MX = max(2, 2.5);\n"
                        "const K = 9223372036854775807;\n"
                        "model M { fn forward(x: f32[2]) -> f32[2] { return x; } }\n");
  ck_assert_msg(m != NULL, "%s", diag_text);
  ck_assert_int_eq(m->consts.items[0].ival, -2); /* floored, as in Python */
  ck_assert(m->consts.items[1].fval == 0.25);
  ck_assert(m->consts.items[2].is_float && m->consts.items[2].fval == 4.0);
  ck_assert_int_eq(m->consts.items[3].ival, -2);
  ck_assert(m->consts.items[4].is_float && m->consts.items[4].fval == 2.5);
  ck_assert_int_eq(m->consts.items[5].ival, INT64_MAX);
}
END_TEST

/* ---- diagnostics: one bad program per row -------------------------------------------- */

typedef struct BadCase {
  const char *src;
  const char *id;
  const char *text; /* a fragment the message must contain */
} BadCase;

#define MODEL_X(body) "model M { fn forward(x: f32[4, 8]) -> f32[4, 8] { " body " } }\n"

static const BadCase bad_cases[] = {
    {"const C = 1; const C = 2;\n" MODEL_X("return x;"), "E0202", "duplicate definition of 'C'"},
    {MODEL_X("let hidden = x; return hiddn;"), "E0203", "did you mean 'hidden'?"},
    {MODEL_X("return sofmax(x);"), "E0203", "did you mean 'softmax'?"},
    {MODEL_X("return softmax(x, dim = 1);"), "E0208", "no argument named 'dim'"},
    {MODEL_X("return layernorm(x, x, x, 0.1);"), "E0300", "layernorm expects 1 to 3 positional arguments, got 4"},
    {MODEL_X("return transpose(x, 0);"), "E0300", "transpose expects 1 or 3 positional arguments, got 2"},
    {MODEL_X("return x(1);"), "E0205", "is not callable"},
    {"layer L { fn forward(x: f32[4, 8]) -> f32[4, 8] { return x; } }\n" MODEL_X("return L(x);"), "E0206",
     "cannot be constructed inside a fn"},
    {"model M { param w: f23[2] = zeros(); fn forward(x: f32[2]) -> f32[2] { return x; } }\n", "E0207",
     "unknown dtype 'f23'"},
    {"layer L { fn forward(x: f32[2]) -> f32[2] { return x; } }\n", "E0209", "no model"},
    {"import nosuchmod;\n" MODEL_X("return x;"), "E0200", "cannot find module 'nosuchmod'"},
    {"import nn;\n" MODEL_X("return x;") "model N { l: nn.Lin(2, 2); fn forward(x: f32[2]) -> f32[2] { return x; } }\n",
     "E0209", "more than one model"},
    {"import nn;\nmodel M { l: nn.Linera(8, 8); fn forward(x: f32[4, 8]) -> f32[4, 8] { return l(x); } }\n",
     "E0204", "did you mean 'Linear'?"},
    {"import nn;\nmodel M { l: nn.LayerNorm(16); fn forward(x: f32[4, 8]) -> f32[4, 8] { return l(x); } }\n",
     "E0301", "argument 'x' of nn.LayerNorm(16).forward: expected f32[..., 16], got f32[4,8] (dim -1: 16 vs 8)"},
    {"model M { fn forward(x: f32[4, 8]) -> f32[4, 9] { return x; } }\n", "E0302", "(dim 1: 9 vs 8)"},
    {"model M { fn forward(x: f32[4], i: i32[4]) -> f32[4] { return x * i; } }\n", "E0303", "dtype mismatch"},
    {MODEL_X("return x @ x;"), "E0315", "matmul"},
    {"const A = 9223372036854775807 + 1;\n" MODEL_X("return x;"), "E0400", "overflow"},
    {"const A = 7 / 2;\n" MODEL_X("return x;"), "E0401", "not exact"},
    {"const A = 7 % 0;\n" MODEL_X("return x;"), "E0402", "division by zero"},
    {"const A = B; const B = A;\n" MODEL_X("return x;"), "E0406", "depends on itself"},
    {"const A = true + 1;\n" MODEL_X("return x;"), "E0407", "bool"},
    {"const A = sqrt(-4.0);\n" MODEL_X("return x;"), "E0408", "negative"},
    {"const N = 2.5;\nmodel M { param w: f32[N] = zeros(); fn forward(x: f32[2]) -> f32[2] { return x; } }\n",
     "E0409", "must be an integer"},
    {"const N = 1099511627776;\nmodel M { param w: f32[N, N] = zeros(); fn forward(x: f32[2]) -> f32[2] { return x; } }\n",
     "E0305", "too many elements"},
    {"model M { fn forward(x: f32[N]) -> f32[N] { return x; } }\n", "E0306", "dimension 'N' is not a constant"},
    {MODEL_X("let y = x;"), "E0307", "without returning"},
    {MODEL_X("return x; let y = x;"), "E0307", "unreachable"},
    {MODEL_X("y = x; return x;"), "E0212", "undeclared variable 'y'"},
    {MODEL_X("return softmax(x, axis = 2);"), "E0308", "axis 2 is out of range"},
    {MODEL_X("return gelu(x, approximate = \"erf\");"), "E0308", "approximate"},
    {MODEL_X("return permute(x, (0, 0));"), "E0308", "appears twice"},
    {"import nn;\nmodel M { b: nn.MLP(8)[2]; fn forward(x: f32[4, 8]) -> f32[4, 8] { return b[2](x); } }\n",
     "E0309", "out of range"},
    {MODEL_X("return x % 2;"), "E0351", "only defined on constants"},
    {MODEL_X("return x[0];"), "E0351", "cannot be indexed"},
    {MODEL_X("for v in x { } return x;"), "E0353", "cannot iterate"},
    {"model M { param w: f32[2] = gauss(0.0, 1.0); fn forward(x: f32[2]) -> f32[2] { return x; } }\n", "E0354",
     "unknown initialiser"},
    {MODEL_X("return reshape(x, (5, -1));"), "E0355", "not a multiple"},
    {MODEL_X("return reshape(x, (-1, -1));"), "E0355", "must be positive"},
    {MODEL_X("return slice(x, axis = 1, start = 6, end = 2);"), "E0356", "empty"},
    {"layer L(n) { fn forward(x: f32[n]) -> f32[K] { return x; } }\n"
     "model M { l: L(2); fn forward(x: f32[2]) -> f32[2] { return l(x); } }\n",
     "E0357", "dimension variable 'K'"},
    {"layer A(n) { b: B(n); fn forward(x: f32[n]) -> f32[n] { return x; } }\n"
     "layer B(n) { a: A(n); fn forward(x: f32[n]) -> f32[n] { return x; } }\n"
     "model M { a: A(2); fn forward(x: f32[2]) -> f32[2] { return a(x); } }\n",
     "E0210", "contains itself"},
    {"layer A(n) { fn forward(x: f32[n]) -> f32[n] { return forward(x); } }\n"
     "model M { a: A(2); fn forward(x: f32[2]) -> f32[2] { return a(x); } }\n",
     "E0211", "recursive call"},
    {"import nn;\nmodel M { l: nn.Linear(8); fn forward(x: f32[4, 8]) -> f32[4, 8] { return l(x); } }\n", "E0300",
     "missing argument 'out_features'"},
    {"layer A(n) { fn forward(a: f32[N, n], b: f32[N, n]) -> f32[N, n] { return a + b; } }\n"
     "model M { l: A(2); fn forward(x: f32[4, 2], y: f32[3, 2]) -> f32[4, 2] { return l(x, y); } }\n",
     "E0301", "N is 4, but 3 here"},
    {MODEL_X("let y: f32[4, 9] = x; return x;"), "E0352", "let y"},
    {MODEL_X("return concat(x, x, axis = 3);"), "E0308", "out of range"},
    {"model M { fn forward(x: f32[4]) -> f32[4] { return x * 0.5 + min(x, 1); } }\n", "E0304", "minimum"},
};

START_TEST(bad_programs) {
  const BadCase *c = &bad_cases[_i];
  IrModule *m = compile(c->src);
  ck_assert_msg(m == NULL, "case %d compiled: %s", _i, c->src);
  ck_assert_msg(has_id(c->id), "case %d: expected %s, got:\n%s", _i, c->id, diag_text);
  ck_assert_msg(strstr(diag_text, c->text) != NULL, "case %d: expected '%s' in:\n%s", _i, c->text,
                diag_text);
  ck_assert_msg(strstr(diag_text, "internal error") == NULL, "case %d: %s", _i, diag_text);
}
END_TEST

START_TEST(several_errors_per_run) {
  IrModule *m = compile("model M {\n"
                        "  fn forward(x: f32[4, 8], i: i32[4, 8]) -> f32[4, 8] {\n"
                        "    let a = x + i;\n"
                        "    let b = relu(a) * 2;\n" /* poisoned by a: no second error */
                        "    let c = nope;\n"
                        "    let d = softmax(x, dim = 0);\n"
                        "    return x;\n"
                        "  }\n"
                        "}\n");
  ck_assert_ptr_null(m);
  ck_assert_int_eq(diag_errors, 3);
  ck_assert(has_id("E0303") && has_id("E0203") && has_id("E0208"));
}
END_TEST

/* ---- modules ------------------------------------------------------------------------- */

START_TEST(imports_dotted_alias_and_search_dirs) {
  write_src("lib/act.ckm", "layer Act { fn forward(x: f32[..., C]) -> f32[..., C] { return silu(x); } }\n"
                           "const WIDTH = 6;\n");
  char *incdir = ckc_arena_printf(&arena, "%s/inc", dir);
  write_src("inc/extra.ckm", "import lib.act as a2;\n"
                             "layer Twice { f: a2.Act; fn forward(x: f32[N]) -> f32[N] { return f(f(x)); } }\n");
  /* extra.ckm's own directory has no lib/: its import is found through the
   * second -I directory */
  const char *dirs[] = {incdir, dir};
  CkcSemaOptions opt = {.import_dirs = dirs, .nimport_dirs = 2, .use_embedded_stdlib = true};
  IrModule *m = compile_opts("import lib.act;\n"
                             "import extra as ex;\n"
                             "model M {\n"
                             "  a: act.Act;\n"
                             "  t: ex.Twice;\n"
                             "  fn forward(x: f32[act.WIDTH]) -> f32[6] { return t(a(x)); }\n"
                             "}\n",
                             &opt);
  ck_assert_msg(m != NULL, "%s", diag_text);
  ck_assert_ptr_nonnull(graph(m, "lib.act.Act.forward"));
  ck_assert_ptr_nonnull(graph(m, "extra.Twice.forward"));
  /* lib/act.ckm was parsed once although imported twice */
  int n = 0;
  for (int i = 0; i < m->graphs.len; i++) n += strstr(m->graphs.items[i]->name, "Act.forward") != NULL;
  ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(import_cycle_notes) {
  write_src("a.ckm", "import b;\nlayer A { fn forward(x: f32[2]) -> f32[2] { return x; } }\n");
  write_src("b.ckm", "import main;\nlayer B { fn forward(x: f32[2]) -> f32[2] { return x; } }\n");
  IrModule *m = compile("import a;\nmodel M { fn forward(x: f32[2]) -> f32[2] { return x; } }\n");
  ck_assert_ptr_null(m);
  ck_assert_int_eq(diag_errors, 1);
  ck_assert(has_id("E0201"));
  ck_assert_msg(strstr(diag_text, "'main.ckm' -> 'a.ckm' -> 'b.ckm' -> 'main.ckm'") != NULL, "%s", diag_text);
  ck_assert(strstr(diag_text, "note: 'main.ckm' imports 'a.ckm' here") != NULL);
  ck_assert(strstr(diag_text, "note: 'a.ckm' imports 'b.ckm' here") != NULL);
}
END_TEST

START_TEST(missing_import_lists_search_path) {
  CkcSemaOptions opt = {.use_embedded_stdlib = false};
  IrModule *m = compile_opts("import nn;\nmodel M { fn forward(x: f32[2]) -> f32[2] { return x; } }\n", &opt);
  ck_assert_ptr_null(m);
  ck_assert(has_id("E0200"));
  char *want = ckc_arena_printf(&arena, "cannot find module 'nn' (searched: %s)", dir);
  ck_assert_msg(strstr(diag_text, want) != NULL, "%s", diag_text);
}
END_TEST

START_TEST(garbage_never_crashes) {
  /* odd but syntactically valid shapes of programs */
  const char *srcs[] = {
      "model M { fn forward() -> f32 { return 1.0; } }\n",
      "model M { fn forward(x: f32) -> f32[] { return -x; } }\n",
      "model M { fn forward(x: f32[2]) -> f32[2] { return ...; } }\n",
      "model M { fn forward(x: f32[2]) -> f32[2] { return (x, x); } }\n",
      "model M { fn forward(x: f32[2]) -> f32[2] { for i in (1, 2) { x = x * i; } return x; } }\n",
      "const C = -3;\nmodel M { param w: f32[C] = zeros(); fn forward(x: f32[2]) -> f32[2] { return x; } }\n",
      "model M { fn forward(x: f32[2, 3, 4, 5, 6, 7, 8, 9, 10]) -> f32[2] { return x; } }\n",
  };
  for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
    compile(srcs[i]);
    ck_assert_msg(strstr(diag_text, "internal error") == NULL, "%s", diag_text);
  }
}
END_TEST

/* ---- instantiation context notes ------------------------------------------------ */

static int count_str(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay ? strstr(hay, needle) : NULL; p; p = strstr(p + 1, needle)) n++;
  return n;
}

/* Where "FILE:LINE:COL: note: TEXT" starts in the diagnostics (file is the
 * base name of a file in the test directory), or NULL. */
static const char *find_note(const char *file, int line, int col, const char *text) {
  char *want = ckc_arena_printf(&arena, "%s/%s:%d:%d: note: %s\n", dir, file, line, col, text);
  return diag_text ? strstr(diag_text, want) : NULL;
}

START_TEST(call_chain_notes) {
  /* an error two layers deep, in an imported module: one note per call,
   * innermost first, each at the call that asked for the graph */
  write_src("lib.ckm", "layer Inner(n) {\n"
                       "  fn forward(x: f32[B, n]) -> f32[B, n] {\n"
                       "    return sum(x, axis = 1);\n" /* result rank 1: E0302 */
                       "  }\n"
                       "}\n"
                       "layer Outer(n) {\n"
                       "  inner: Inner(n);\n"
                       "  fn forward(x: f32[B, n]) -> f32[B, n] {\n"
                       "    return inner(relu(x));\n"
                       "  }\n"
                       "}\n");
  IrModule *m = compile("import lib;\n"
                        "model M {\n"
                        "  outer: lib.Outer(4);\n"
                        "  fn forward(x: f32[2, 4]) -> f32[2, 4] {\n"
                        "    return outer(x);\n"
                        "  }\n"
                        "}\n");
  ck_assert_ptr_null(m);
  ck_assert_int_eq(diag_errors, 1);
  ck_assert_msg(has_id("E0302"), "%s", diag_text);
  ck_assert_msg(strstr(diag_text, "lib.ckm:3:12: error: result of lib.Inner(4).forward") != NULL, "%s",
                diag_text);
  const char *n1 = find_note("lib.ckm", 9, 12, "in lib.Inner(4).forward, called from here");
  const char *n2 = find_note("main.ckm", 5, 12, "in lib.Outer(4).forward, called from here");
  ck_assert_msg(n1 && n2 && n1 < n2, "%s", diag_text);
  ck_assert_int_eq(count_str(diag_text, ": note: "), 2);
  /* the caret of the outer note spans the whole call outer(x) */
  ck_assert_msg(strstr(n2, "    return outer(x);\n             ^~~~~~~~\n") != NULL, "%s", diag_text);
}
END_TEST

START_TEST(instance_chain_notes) {
  /* a param-shape error while a nested instance is built names every member
   * declaration that led there; a constructor argument's default that fails
   * names the declaration with the layer's name */
  IrModule *m = compile("layer Heads(C, H) {\n"
                        "  param w: f32[C / H] = zeros();\n"
                        "  fn forward(x: f32[C]) -> f32[C] { return x; }\n"
                        "}\n"
                        "layer Blk(C) {\n"
                        "  heads: Heads(C, 3);\n"
                        "  fn forward(x: f32[C]) -> f32[C] { return heads(x); }\n"
                        "}\n"
                        "layer Half(C, D = C / 2) {\n"
                        "  fn forward(x: f32[C]) -> f32[C] { return x; }\n"
                        "}\n"
                        "model M {\n"
                        "  blocks: Blk(8)[2];\n"
                        "  half: Half(5);\n"
                        "  fn forward(x: f32[8]) -> f32[8] { return x; }\n"
                        "}\n");
  ck_assert_ptr_null(m);
  ck_assert_int_eq(diag_errors, 2);
  ck_assert_msg(strstr(diag_text, "main.ckm:2:16: error: integer division 8 / 3 is not exact") != NULL,
                "%s", diag_text);
  const char *n1 = find_note("main.ckm", 6, 3, "in instance 'heads' of Heads(8,3) declared here");
  const char *n2 = find_note("main.ckm", 13, 3, "in instance 'blocks' of Blk(8) declared here");
  ck_assert_msg(n1 && n2 && n1 < n2, "%s", diag_text);
  ck_assert_msg(strstr(diag_text, "main.ckm:9:19: error: integer division 5 / 2 is not exact") != NULL,
                "%s", diag_text);
  ck_assert_msg(find_note("main.ckm", 14, 3, "in instance 'half' of Half declared here") != NULL, "%s",
                diag_text);
  ck_assert_int_eq(count_str(diag_text, ": note: "), 3);
}
END_TEST

START_TEST(user_span_errors_have_no_notes) {
  /* mistakes in the model's own fns, in a call's arguments and in a member's
   * constructor arguments sit on the user's span already */
  IrModule *m = compile("import nn;\n"
                        "model M {\n"
                        "  fc: nn.Linear(8, 4);\n"
                        "  bad: nn.Linear(8, 9 / 2);\n"
                        "  fn forward(x: f32[2, 8]) -> f32[2, 4] {\n"
                        "    let a = fc(relu(x) @ x);\n"
                        "    let b = fc(transpose(x));\n"
                        "    return helper(x);\n"
                        "  }\n"
                        "  fn helper(x: f32[2, 8]) -> f32[2, 4] { return x; }\n"
                        "}\n");
  ck_assert_ptr_null(m);
  ck_assert_int_eq(diag_errors, 4);
  ck_assert_msg(has_id("E0401") && has_id("E0315") && has_id("E0301") && has_id("E0302"), "%s",
                diag_text);
  ck_assert_msg(strstr(diag_text, "note:") == NULL, "%s", diag_text);
}
END_TEST

START_TEST(repeated_failures_reported_once) {
  /* the same body fails for two argument shapes, and the same param fails
   * in two instances: each mistake is printed once, yet still fails */
  IrModule *m = compile("layer Bad(n) {\n"
                        "  fn forward(x: f32[..., n]) -> f32[..., n] { return x + missing; }\n"
                        "}\n"
                        "layer P(n) {\n"
                        "  param w: f32[n] = bogus();\n"
                        "  fn forward(x: f32[n]) -> f32[n] { return x; }\n"
                        "}\n"
                        "model M {\n"
                        "  a: Bad(4);\n"
                        "  p: P(4);\n"
                        "  q: P(5);\n"
                        "  fn forward(x: f32[2, 4], y: f32[3, 4]) -> f32[2, 4] {\n"
                        "    let u = a(y);\n"
                        "    return a(x);\n"
                        "  }\n"
                        "}\n");
  ck_assert_ptr_null(m);
  ck_assert_int_eq(diag_errors, 2);
  ck_assert_int_eq(count_str(diag_text, "error: unknown name 'missing'"), 1);
  ck_assert_int_eq(count_str(diag_text, "error: unknown initialiser 'bogus'"), 1);
  /* the first instantiation's context is the one reported */
  ck_assert_msg(find_note("main.ckm", 13, 13, "in Bad(4).forward, called from here") != NULL, "%s",
                diag_text);
  ck_assert_msg(find_note("main.ckm", 10, 3, "in instance 'p' of P(4) declared here") != NULL, "%s",
                diag_text);
  ck_assert_int_eq(count_str(diag_text, ": note: "), 2);
}
END_TEST

START_TEST(long_chains_are_capped) {
  /* L0 calls L1 ... calls L9, which fails: 10 levels keep the 4 innermost
   * and the 4 outermost notes and count the 2 between */
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  for (int i = 0; i < 9; i++)
    ckc_buf_printf(&b, "layer L%d {\n  sub: L%d;\n  fn forward(x: f32[2]) -> f32[2] { return sub(x); }\n}\n",
                   i, i + 1);
  ckc_buf_puts(&b, "layer L9 {\n  fn forward(x: f32[2]) -> f32[2] { return x @ x; }\n}\n");
  ckc_buf_puts(&b, "model M {\n  top: L0;\n  fn forward(x: f32[2]) -> f32[2] { return top(x); }\n}\n");
  IrModule *m = compile(ckc_buf_str(&b));
  ck_assert_ptr_null(m);
  ck_assert_int_eq(diag_errors, 1);
  ck_assert_int_eq(count_str(diag_text, ": note: "), 9);
  /* innermost: L9 is called from L8's body (line 4*8+3), L8 from L7's ... */
  const char *prev = diag_text;
  for (int i = 9; i >= 6; i--) {
    const char *n = find_note("main.ckm", 4 * (i - 1) + 3, 44,
                              ckc_arena_printf(&arena, "in L%d.forward, called from here", i));
    ck_assert_msg(n && n > prev, "level %d: %s", i, diag_text);
    prev = n;
  }
  const char *skip = find_note("main.ckm", 4 * 4 + 3, 44, "... 2 more levels");
  ck_assert_msg(skip && skip > prev, "%s", diag_text);
  prev = skip;
  for (int i = 3; i >= 0; i--) {
    int line = i == 0 ? 4 * 9 + 3 + 3 : 4 * (i - 1) + 3;
    const char *n = find_note("main.ckm", line, 44,
                              ckc_arena_printf(&arena, "in L%d.forward, called from here", i));
    ck_assert_msg(n && n > prev, "level %d: %s", i, diag_text);
    prev = n;
  }
}
END_TEST

Suite *check_sema_suite(void) {
  Suite *s = suite_create("sema");
  TCase *tc = tcase_create("elaboration");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, entry_graph_and_model);
  tcase_add_test(tc, stdlib_block_instances);
  tcase_add_test(tc, monomorphisation_by_shape);
  tcase_add_test(tc, helper_fn_and_keyword_args);
  tcase_add_test(tc, builtin_attribute_normalisation);
  tcase_add_test(tc, literal_dtype_and_cast);
  suite_add_tcase(s, tc);
  tc = tcase_create("constants");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, defines_override_consts);
  tcase_add_test(tc, defines_errors);
  tcase_add_test(tc, const_arithmetic);
  suite_add_tcase(s, tc);
  tc = tcase_create("diagnostics");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, bad_programs, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
  tcase_add_test(tc, several_errors_per_run);
  tcase_add_test(tc, garbage_never_crashes);
  suite_add_tcase(s, tc);
  tc = tcase_create("instantiation_context");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, call_chain_notes);
  tcase_add_test(tc, instance_chain_notes);
  tcase_add_test(tc, user_span_errors_have_no_notes);
  tcase_add_test(tc, repeated_failures_reported_once);
  tcase_add_test(tc, long_chains_are_capped);
  suite_add_tcase(s, tc);
  tc = tcase_create("modules");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, imports_dotted_alias_and_search_dirs);
  tcase_add_test(tc, import_cycle_notes);
  tcase_add_test(tc, missing_import_lists_search_path);
  suite_add_tcase(s, tc);
  return s;
}
