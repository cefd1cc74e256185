/* check_train_sema.c - semantic analysis of `train` blocks (frontend/train.c):
 * the IrTrainConfig fields of a full block, every default, the data sources'
 * tensor types, -D overrides, the structure of the "loss" entry graph, the
 * loss builtins, and each diagnostic id E0550..E0561 (plus the ordinary call
 * errors a loss can produce). Programs are written to a temporary directory
 * and compiled with ckc_sema_file; diagnostics go to a memory stream. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/sema.h"
#include "ir/ir.h"
#include "ir/train.h"

static CkcArena arena;
static char dir[256];
static char *diag_text;

static void setup(void) {
  ckc_arena_init(&arena);
  snprintf(dir, sizeof dir, "/tmp/ckc-train-XXXXXX");
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

/* Compiles src as main.ckm with the given -D overrides. */
static IrModule *compile_defs(const char *src, const CkcDefine *defs, int ndefs) {
  char *path = ckc_arena_printf(&arena, "%s/main.ckm", dir);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(src, f);
  fclose(f);
  free(diag_text);
  size_t len = 0;
  FILE *out = open_memstream(&diag_text, &len);
  CkcDiag d;
  ckc_diag_init(&d, &arena, out);
  d.max_errors = 50;
  CkcSemaOptions opt = {.use_embedded_stdlib = true, .defines = defs, .ndefines = ndefs};
  IrModule *m = ckc_sema_file(&arena, &d, path, &opt);
  fclose(out);
  return m;
}

static IrModule *compile(const char *src) { return compile_defs(src, NULL, 0); }

static bool has_id(const char *id) {
  char tag[16];
  snprintf(tag, sizeof tag, "[%s]", id);
  return diag_text && strstr(diag_text, tag) != NULL;
}

static bool has_text(const char *s) { return diag_text && strstr(diag_text, s) != NULL; }

static void assert_shape(const CkShape *s, int rank, const int64_t *dims) {
  ck_assert_int_eq(s->rank, rank);
  for (int i = 0; i < rank; i++) ck_assert_int_eq(s->dims[i], dims[i]);
}

/* An MLP on 784 features; the train block is appended. */
#define MLP_MODEL                                                                       \
  "import nn;\n"                                                                        \
  "const B = 64;\n"                                                                     \
  "model MLP {\n"                                                                       \
  "  fc1: nn.Linear(784, 32);\n"                                                        \
  "  fc2: nn.Linear(32, 10);\n"                                                         \
  "  fn forward(x: f32[B, 784]) -> f32[B, 10] { return fc2(relu(fc1(x))); }\n"          \
  "  fn score(x: f32[N, 784], y: i32[N]) -> f32 { return cross_entropy(forward(x), y); }\n" \
  "}\n"

#define IDX_DATA "  data = idx(\"tr-img\", \"tr-lbl\", batch = B, shape = (784));\n"
#define CE_LOSS "  loss = cross_entropy(forward(data.x), data.y);\n"
#define ADAM "  optim = adam(lr = 1e-3);\n"
#define STEPS "  steps = 100;\n"

/* The minimal block with one item replaced or added. */
static IrModule *with(const char *data, const char *loss, const char *optim, const char *extra) {
  const char *src = ckc_arena_printf(&arena, MLP_MODEL "train MLP {\n%s%s%s" STEPS "%s}\n", data,
                                     loss, optim, extra);
  return compile(src);
}

/* ---- a full block ----------------------------------------------------------------- */

START_TEST(full_block_fields) {
  IrModule *m = compile(
      MLP_MODEL
      "train MLP {\n"
      "  data = idx(images = \"train-images\", labels = \"train-labels\", batch = B, shape = (784), scale = 1.0 / 255.0);\n"
      "  eval_data = idx(images = \"t10k-images\", labels = \"t10k-labels\", batch = B, shape = (784), scale = 0.5);\n"
      "  loss = cross_entropy(forward(data.x), data.y);\n"
      "  optim = adamw(lr = 3e-4, betas = (0.9, 0.95), eps = 1e-6, weight_decay = 0.1, clip = 1.0, accum = 4);\n"
      "  schedule = cosine(warmup = 100, min_lr = 1e-5);\n"
      "  steps = 2000; seed = 1337; checkpoint_every = 200; eval_every = 100; eval_batches = 5; log_every = 10;\n"
      "  decay_exclude = (\"*.bias\", \"ln_*\");  decay_include = (\"fc2.weight\");\n"
      "}\n");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrTrainConfig *c = m->train;
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(c->data.kind, IR_DATA_IDX);
  ck_assert_str_eq(c->data.x_path, "train-images");
  ck_assert_str_eq(c->data.y_path, "train-labels");
  ck_assert_int_eq(c->data.batch, 64);
  ck_assert(fabs(c->data.scale - 1.0 / 255.0) < 1e-15);
  ck_assert_int_eq(c->data.x_dtype, CK_DT_F32);
  ck_assert_int_eq(c->data.y_dtype, CK_DT_I32);
  assert_shape(&c->data.x_shape, 2, (int64_t[]){64, 784});
  assert_shape(&c->data.y_shape, 1, (int64_t[]){64});
  ck_assert_int_eq(c->eval_data.kind, IR_DATA_IDX);
  ck_assert_str_eq(c->eval_data.x_path, "t10k-images");
  ck_assert(c->eval_data.scale == 0.5);
  ck_assert_int_eq(c->optim.kind, IR_OPTIM_ADAMW);
  ck_assert(c->optim.lr == 3e-4);
  ck_assert(c->optim.beta1 == 0.9 && c->optim.beta2 == 0.95);
  ck_assert(c->optim.eps == 1e-6);
  ck_assert(c->optim.weight_decay == 0.1);
  ck_assert(c->optim.clip == 1.0);
  ck_assert_int_eq(c->optim.accum, 4);
  ck_assert_int_eq(c->sched.kind, IR_SCHED_COSINE);
  ck_assert_int_eq(c->sched.warmup, 100);
  ck_assert(c->sched.min_lr == 1e-5);
  ck_assert_int_eq(c->steps, 2000);
  ck_assert_int_eq(c->seed, 1337);
  ck_assert_int_eq(c->checkpoint_every, 200);
  ck_assert_int_eq(c->eval_every, 100);
  ck_assert_int_eq(c->eval_batches, 5);
  ck_assert_int_eq(c->log_every, 10);
  ck_assert_int_eq(c->decay_exclude.len, 2);
  ck_assert_str_eq(c->decay_exclude.items[0], "*.bias");
  ck_assert_str_eq(c->decay_exclude.items[1], "ln_*");
  ck_assert_int_eq(c->decay_include.len, 1);
  ck_assert_str_eq(c->decay_include.items[0], "fc2.weight");
  ck_assert_int_eq(c->loss_kind, IR_LOSS_CROSS_ENTROPY);
  ck_assert_int_eq(c->params.len, 0); /* the optimizer pass fills them */
}
END_TEST

START_TEST(loss_graph_structure) {
  IrModule *m = with(IDX_DATA, CE_LOSS, ADAM, "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrGraph *fwd = ir_module_entry(m, "forward");
  IrGraph *g = ir_module_entry(m, "loss");
  ck_assert_ptr_nonnull(fwd);
  ck_assert_ptr_nonnull(g);
  ck_assert(g->is_entry);
  ck_assert_int_eq(g->inputs.len, 2);
  IrNode *x = g->inputs.items[0], *y = g->inputs.items[1];
  ck_assert_int_eq(x->dtype, CK_DT_F32);
  assert_shape(&x->shape, 2, (int64_t[]){64, 784});
  ck_assert_int_eq(y->dtype, CK_DT_I32);
  assert_shape(&y->shape, 1, (int64_t[]){64});
  ck_assert_int_eq(ir_get_int(x, "index", -1), 0);
  ck_assert_int_eq(ir_get_int(y, "index", -1), 1);
  ck_assert_int_eq(g->outputs.len, 2);
  IrNode *loss = g->outputs.items[0], *logits = g->outputs.items[1];
  ck_assert_int_eq(loss->op, IR_OP_CROSS_ENTROPY);
  ck_assert_int_eq(loss->dtype, CK_DT_F32);
  ck_assert_int_eq(loss->shape.rank, 0);
  ck_assert_str_eq(loss->name, "loss");
  ck_assert_ptr_eq(loss->in[0], logits);
  ck_assert_ptr_eq(loss->in[1], y);
  /* forward(data.x): a CALL into the model's forward graph, prefix "" */
  ck_assert_int_eq(logits->op, IR_OP_CALL);
  ck_assert_ptr_eq(logits->callee, fwd);
  ck_assert_str_eq(logits->prefix, "");
  ck_assert_ptr_eq(logits->in[0], x);
  assert_shape(&logits->shape, 2, (int64_t[]){64, 10});
  /* PyTorch defaults are not spelled out as attributes */
  ck_assert_ptr_null(ir_find_attr(loss, "ignore_index"));
  ck_assert_ptr_null(ir_find_attr(loss, "label_smoothing"));
  CkcBuf err;
  ckc_buf_init(&err, &arena);
  ck_assert_msg(ir_verify(m, false, &err), "%s", ckc_buf_str(&err));
}
END_TEST

START_TEST(cross_entropy_attributes) {
  IrModule *m = with(IDX_DATA,
                     "  loss = cross_entropy(forward(data.x), data.y, ignore_index = 3, label_smoothing = 0.1);\n",
                     ADAM, "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrNode *loss = ir_module_entry(m, "loss")->outputs.items[0];
  ck_assert_int_eq(ir_get_int(loss, "ignore_index", -100), 3);
  ck_assert(ir_get_float(loss, "label_smoothing", 0.0) == 0.1);
}
END_TEST

/* ---- defaults ---------------------------------------------------------------------- */

START_TEST(defaults_of_the_block) {
  IrModule *m = with(IDX_DATA, CE_LOSS, ADAM, "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrTrainConfig *c = m->train;
  ck_assert_int_eq(c->seed, 0);
  ck_assert_int_eq(c->checkpoint_every, 0);
  ck_assert_int_eq(c->eval_every, 0);
  ck_assert_int_eq(c->eval_batches, 0);
  ck_assert_int_eq(c->log_every, 1);
  ck_assert_int_eq(c->sched.kind, IR_SCHED_CONSTANT);
  ck_assert_int_eq(c->sched.warmup, 0);
  ck_assert_int_eq(c->eval_data.kind, IR_DATA_NONE);
  ck_assert_int_eq(c->decay_exclude.len, 0);
  ck_assert_int_eq(c->decay_include.len, 0);
  /* adam */
  ck_assert_int_eq(c->optim.kind, IR_OPTIM_ADAM);
  ck_assert(c->optim.beta1 == 0.9 && c->optim.beta2 == 0.999);
  ck_assert(c->optim.eps == 1e-8);
  ck_assert(c->optim.weight_decay == 0.0);
  ck_assert(c->optim.clip == 0.0);
  ck_assert_int_eq(c->optim.accum, 1);
  /* idx */
  ck_assert(fabs(c->data.scale - 1.0 / 255.0) < 1e-15);
}
END_TEST

START_TEST(defaults_of_optimizers) {
  IrModule *m = with(IDX_DATA, CE_LOSS, "  optim = adamw(lr = 1e-3);\n", "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_int_eq(m->train->optim.kind, IR_OPTIM_ADAMW);
  ck_assert(m->train->optim.weight_decay == 0.01);
  ck_assert(m->train->optim.beta2 == 0.999);
  m = with(IDX_DATA, CE_LOSS, "  optim = sgd(0.1);\n", "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrOptimSpec *o = &m->train->optim;
  ck_assert_int_eq(o->kind, IR_OPTIM_SGD);
  ck_assert(o->lr == 0.1);
  ck_assert(o->momentum == 0.0 && o->dampening == 0.0 && !o->nesterov && o->weight_decay == 0.0);
  ck_assert_int_eq(o->accum, 1);
  m = with(IDX_DATA, CE_LOSS, "  optim = sgd(0.1, 0.9, nesterov = true, weight_decay = 5e-4);\n", "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  o = &m->train->optim;
  ck_assert(o->momentum == 0.9 && o->nesterov && o->weight_decay == 5e-4);
}
END_TEST

START_TEST(defaults_of_schedules) {
  IrModule *m = with(IDX_DATA, CE_LOSS, ADAM, "  schedule = step(step_size = 30);\n");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrSchedSpec *s = &m->train->sched;
  ck_assert_int_eq(s->kind, IR_SCHED_STEP);
  ck_assert_int_eq(s->step_size, 30);
  ck_assert(s->gamma == 0.1);
  ck_assert_int_eq(s->warmup, 0);
  m = with(IDX_DATA, CE_LOSS, ADAM, "  schedule = linear;\n");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  s = &m->train->sched;
  ck_assert_int_eq(s->kind, IR_SCHED_LINEAR);
  ck_assert(s->min_lr == 0.0 && s->warmup == 0);
  m = with(IDX_DATA, CE_LOSS, ADAM, "  schedule = constant(warmup = 10);\n");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_int_eq(m->train->sched.kind, IR_SCHED_CONSTANT);
  ck_assert_int_eq(m->train->sched.warmup, 10);
}
END_TEST

START_TEST(idx_default_shape_is_one_by_28_by_28) {
  const char *src = "const B = 8;\n"
                    "model CNN {\n"
                    "  param w: f32[10, 784] = zeros();\n"
                    "  fn forward(x: f32[B, 1, 28, 28]) -> f32[B, 10] { return reshape(x, (B, 784)) @ transpose(w); }\n"
                    "}\n"
                    "train CNN {\n"
                    "  data = idx(\"i\", \"l\", batch = B);\n"
                    CE_LOSS ADAM STEPS "}\n";
  IrModule *m = compile(src);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  assert_shape(&m->train->data.x_shape, 4, (int64_t[]){8, 1, 28, 28});
}
END_TEST

START_TEST(tokens_types_and_defaults) {
  const char *src = "const B = 4; const T = 16; const V = 256;\n"
                    "model LM {\n"
                    "  param wte: f32[V, 8] = normal(0.0, 0.02);\n"
                    "  fn forward(idx: i32[B, T]) -> f32[B, T, V] { return embed(wte, idx) @ transpose(wte); }\n"
                    "}\n"
                    "train LM {\n"
                    "  data = tokens(\"text.u8\", batch = B, seq = T);\n"
                    CE_LOSS ADAM STEPS "}\n";
  IrModule *m = compile(src);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrDataSpec *d = &m->train->data;
  ck_assert_int_eq(d->kind, IR_DATA_TOKENS);
  ck_assert_str_eq(d->path, "text.u8");
  ck_assert_int_eq(d->file_dtype, CK_DT_U8);
  ck_assert(!d->is_u16);
  ck_assert_int_eq(d->vocab, 0);
  ck_assert(d->val_fraction == 0.1);
  ck_assert_int_eq(d->seq, 16);
  ck_assert_int_eq(d->x_dtype, CK_DT_I32);
  ck_assert_int_eq(d->y_dtype, CK_DT_I32);
  assert_shape(&d->x_shape, 2, (int64_t[]){4, 16});
  assert_shape(&d->y_shape, 2, (int64_t[]){4, 16});
  IrGraph *g = ir_module_entry(m, "loss");
  ck_assert_int_eq(g->outputs.len, 2);
  assert_shape(&g->outputs.items[1]->shape, 3, (int64_t[]){4, 16, 256});

  src = "const B = 4; const T = 16; const V = 300;\n"
        "model LM {\n"
        "  param wte: f32[V, 8] = normal(0.0, 0.02);\n"
        "  fn forward(idx: i32[B, T]) -> f32[B, T, V] { return embed(wte, idx) @ transpose(wte); }\n"
        "}\n"
        "train LM {\n"
        "  data = tokens(\"text.u16\", batch = B, seq = T, dtype = u16, vocab = V, val = 0.05);\n"
        "  eval_data = tokens(\"val.i32\", batch = B, seq = T, dtype = \"i32\");\n"
        CE_LOSS ADAM STEPS "}\n";
  m = compile(src);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  d = &m->train->data;
  ck_assert(d->is_u16);
  ck_assert_int_eq(d->vocab, 300);
  ck_assert(d->val_fraction == 0.05);
  ck_assert_int_eq(m->train->eval_data.file_dtype, CK_DT_I32);
}
END_TEST

START_TEST(npy_types) {
  const char *src = "const B = 8;\n"
                    "model Reg {\n"
                    "  param w: f32[3, 5] = zeros();\n"
                    "  fn forward(x: f32[B, 5]) -> f32[B, 3] { return x @ transpose(w); }\n"
                    "}\n"
                    "train Reg {\n"
                    "  data = npy(\"x.npy\", \"y.npy\", batch = B, shape = 5, y_shape = (3), y_dtype = f32);\n"
                    "  loss = mse(forward(data.x), data.y);\n"
                    ADAM STEPS "}\n";
  IrModule *m = compile(src);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  IrDataSpec *d = &m->train->data;
  ck_assert_int_eq(d->kind, IR_DATA_NPY);
  ck_assert_str_eq(d->x_path, "x.npy");
  ck_assert_str_eq(d->y_path, "y.npy");
  ck_assert_int_eq(d->y_dtype, CK_DT_F32);
  assert_shape(&d->x_shape, 2, (int64_t[]){8, 5});
  assert_shape(&d->y_shape, 2, (int64_t[]){8, 3});
  ck_assert_int_eq(m->train->loss_kind, IR_LOSS_MSE);
  IrGraph *g = ir_module_entry(m, "loss");
  ck_assert_int_eq(g->outputs.len, 1);
  ck_assert_int_eq(g->outputs.items[0]->op, IR_OP_MSE);

  /* y_shape defaults to (): y is [B] of y_dtype (default i32) */
  src = "const B = 8;\n"
        "model Cls {\n"
        "  param w: f32[3, 5] = zeros();\n"
        "  fn forward(x: f32[B, 5]) -> f32[B, 3] { return x @ transpose(w); }\n"
        "}\n"
        "train Cls {\n"
        "  data = npy(x = \"x.npy\", y = \"y.npy\", batch = B, shape = (5));\n"
        CE_LOSS ADAM STEPS "}\n";
  m = compile(src);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_int_eq(m->train->data.y_dtype, CK_DT_I32);
  assert_shape(&m->train->data.y_shape, 1, (int64_t[]){8});
}
END_TEST

START_TEST(defines_reach_the_block) {
  CkcDefine defs[] = {{"B", "16"}};
  IrModule *m = compile_defs(MLP_MODEL "train MLP {\n" IDX_DATA CE_LOSS ADAM "  steps = 10 * B;\n}\n",
                             defs, 1);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_int_eq(m->train->data.batch, 16);
  ck_assert_int_eq(m->train->steps, 160);
  assert_shape(&ir_module_entry(m, "loss")->inputs.items[0]->shape, 2, (int64_t[]){16, 784});
}
END_TEST

/* ---- losses ------------------------------------------------------------------------- */

START_TEST(loss_kinds_and_helpers) {
  /* a helper fn of the model computes the loss: kind OTHER, one output */
  IrModule *m = with(IDX_DATA, "  loss = score(data.x, data.y);\n", ADAM, "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_int_eq(m->train->loss_kind, IR_LOSS_OTHER);
  IrGraph *g = ir_module_entry(m, "loss");
  ck_assert_int_eq(g->outputs.len, 1);
  ck_assert_int_eq(g->outputs.items[0]->op, IR_OP_CALL);
  ck_assert_str_eq(g->outputs.items[0]->callee->name, "MLP.score");
  /* a regulariser over the model's parameters */
  m = with(IDX_DATA,
           "  loss = cross_entropy(forward(data.x), data.y) + 0.001 * sum(fc1.weight * fc1.weight);\n",
           ADAM, "");
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_int_eq(m->train->loss_kind, IR_LOSS_OTHER);
  g = ir_module_entry(m, "loss");
  ck_assert_int_eq(g->outputs.len, 1);
  ck_assert_int_eq(g->outputs.items[0]->op, IR_OP_ADD);
  bool has_param = false;
  for (int i = 0; i < g->nodes.len; i++)
    has_param = has_param || (g->nodes.items[i]->op == IR_OP_PARAM &&
                              strcmp(g->nodes.items[i]->name, "fc1.weight") == 0);
  ck_assert(has_param);
}
END_TEST

START_TEST(bce_and_stop_gradient) {
  const char *src = "const B = 8;\n"
                    "model Bin {\n"
                    "  param w: f32[1, 5] = zeros();\n"
                    "  fn forward(x: f32[B, 5]) -> f32[B, 1] { return stop_gradient(x) @ transpose(w); }\n"
                    "}\n"
                    "train Bin {\n"
                    "  data = npy(\"x.npy\", \"y.npy\", batch = B, shape = (5), y_shape = (1), y_dtype = f32);\n"
                    "  loss = bce_with_logits(forward(data.x), stop_gradient(data.y));\n"
                    ADAM STEPS "}\n";
  IrModule *m = compile(src);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_int_eq(m->train->loss_kind, IR_LOSS_BCE_WITH_LOGITS);
  IrGraph *fwd = ir_module_entry(m, "forward");
  int n = 0;
  for (int i = 0; i < fwd->nodes.len; i++) n += fwd->nodes.items[i]->op == IR_OP_STOP_GRADIENT;
  ck_assert_int_eq(n, 1);
  IrNode *loss = ir_module_entry(m, "loss")->outputs.items[0];
  ck_assert_int_eq(loss->op, IR_OP_BCE_WITH_LOGITS);
  ck_assert_int_eq(loss->in[1]->op, IR_OP_STOP_GRADIENT);
}
END_TEST

START_TEST(no_train_block_no_config) {
  IrModule *m = compile(MLP_MODEL);
  ck_assert_msg(m != NULL, "%s", diag_text ? diag_text : "");
  ck_assert_ptr_null(m->train);
  ck_assert_ptr_null(ir_module_entry(m, "loss"));
}
END_TEST

/* ---- diagnostics ---------------------------------------------------------------------- */

typedef struct BadCase {
  const char *id;
  const char *data, *loss, *optim, *extra;
  const char *text; /* a piece of the expected message */
} BadCase;

static const BadCase bad_cases[] = {
    {"E0552", IDX_DATA, CE_LOSS, ADAM, "  stesp = 3;\n", "did you mean 'steps'?"},
    {"E0553", IDX_DATA, CE_LOSS, ADAM, "  steps = 5;\n", "train key 'steps' is given twice"},
    {"E0554", IDX_DATA, CE_LOSS, "", "", "train block has no 'optim'"},
    {"E0554", "", CE_LOSS, ADAM, "", "train block has no 'data'"},
    {"E0554", IDX_DATA, "", ADAM, "", "train block has no 'loss'"},
    {"E0555", "  data = \"x\";\n", CE_LOSS, ADAM, "", "the data source must be a call"},
    {"E0555", IDX_DATA, CE_LOSS, "  optim = 0.1;\n", "", "the optimizer must be a call"},
    {"E0556", "  data = tokenz(\"t\", batch = B, seq = 4);\n", CE_LOSS, ADAM, "", "did you mean 'tokens'?"},
    {"E0556", IDX_DATA, CE_LOSS, "  optim = adamm(lr = 1e-3);\n", "", "did you mean 'adam'?"},
    {"E0556", IDX_DATA, CE_LOSS, ADAM, "  schedule = cosinus();\n", "unknown schedule 'cosinus'"},
    {"E0557", IDX_DATA, CE_LOSS, "  optim = adam(lr = 1e-3, epss = 1e-8);\n", "", "did you mean 'eps'?"},
    {"E0557", IDX_DATA, CE_LOSS, "  optim = adam();\n", "", "adam: missing argument 'lr'"},
    {"E0557", IDX_DATA, CE_LOSS, "  optim = adam(1e-3, lr = 1e-3);\n", "", "argument 'lr' of adam given twice"},
    {"E0557", IDX_DATA, CE_LOSS, "  optim = adam(1e-3, (0.9, 0.9), 1e-8, 0.0, 0.0, 1, 7);\n", "", "adam takes at most 6 arguments"},
    {"E0557", IDX_DATA, CE_LOSS, ADAM, "  schedule = step(gamma = 0.5);\n", "step: missing argument 'step_size'"},
    {"E0558", IDX_DATA, CE_LOSS, ADAM, "  seed = 1.5;\n", "'seed' must be an integer, got a float constant 1.5"},
    {"E0558", IDX_DATA, CE_LOSS, "  optim = adam(lr = \"fast\");\n", "", "adam: 'lr' must be a number"},
    {"E0558", IDX_DATA, CE_LOSS, "  optim = adam(lr = 1e-3, betas = 0.9);\n", "", "must be a pair of numbers"},
    {"E0558", "  data = idx(1, \"l\", batch = B);\n", CE_LOSS, ADAM, "", "idx: 'images' must be a string"},
    {"E0558", IDX_DATA, CE_LOSS, ADAM, "  decay_exclude = (\"*.bias\", 2);\n", "must be a string or a tuple of strings"},
    {"E0558", IDX_DATA, CE_LOSS, "  optim = sgd(lr = 0.1, nesterov = 1);\n", "", "sgd: 'nesterov' must be true or false"},
    {"E0559", IDX_DATA, CE_LOSS, "  optim = sgd(lr = -0.1);\n", "", "sgd: 'lr' must be positive, got -0.1"},
    {"E0559", "  data = idx(\"i\", \"l\", batch = 0, shape = (784));\n", CE_LOSS, ADAM, "", "'batch' must be at least 1"},
    {"E0559", "  data = idx(\"i\", \"l\", batch = B, shape = (784, 0));\n", CE_LOSS, ADAM, "", "dimension 1 must be positive"},
    {"E0559", IDX_DATA, CE_LOSS, "  optim = adam(lr = 1e-3, betas = (1.0, 0.9));\n", "", "beta1 must be in [0, 1)"},
    {"E0559", IDX_DATA, CE_LOSS, "  optim = adam(lr = 1e-3, accum = 0);\n", "", "'accum' must be at least 1"},
    {"E0559", IDX_DATA, CE_LOSS, "  optim = adam(lr = 1e-3, clip = -1.0);\n", "", "'clip' must be at least 0"},
    {"E0559", IDX_DATA, CE_LOSS, ADAM, "  schedule = cosine(warmup = 101);\n", "warmup (101) must not exceed steps (100)"},
    {"E0559", IDX_DATA, CE_LOSS, ADAM, "  schedule = linear(min_lr = 0.5);\n", "min_lr (0.5) must not exceed"},
    {"E0559", IDX_DATA, CE_LOSS, ADAM, "  schedule = step(step_size = 10, gamma = 0.0);\n", "'gamma' must be in (0, 1]"},
    {"E0559", IDX_DATA, CE_LOSS, ADAM, "  log_every = 0;\n", "'log_every' must be at least 1"},
    {"E0559", IDX_DATA, CE_LOSS, ADAM, "  eval_every = -1;\n", "'eval_every' must be at least 0"},
    {"E0559", IDX_DATA, CE_LOSS, "  optim = sgd(lr = 0.1, nesterov = true);\n", "", "nesterov needs a positive momentum"},
    {"E0560", IDX_DATA, "  loss = forward(data.x);\n", ADAM, "", "got f32[64,10]"},
    {"E0560", IDX_DATA, "  loss = 3;\n", ADAM, "", "got an int constant 3"},
    {"E0560", IDX_DATA, "  loss = cast(cross_entropy(forward(data.x), data.y), f64);\n", ADAM, "", "got f64[]"},
    {"E0561", IDX_DATA, CE_LOSS, ADAM, "  eval_data = idx(\"a\", \"b\", batch = 32, shape = (784));\n", "data.x is f32[64,784], eval_data.x is f32[32,784]"},
    /* the loss's own calls are checked like any other */
    {"E0301", "  data = idx(\"i\", \"l\", batch = B, shape = (28, 28));\n", CE_LOSS, ADAM, "", "argument 'x' of MLP.forward"},
    {"E0204", IDX_DATA, "  loss = cross_entropy(forward(data.x), data.label);\n", ADAM, "", "the data source has no member 'label'"},
    {"E0304", IDX_DATA, "  loss = cross_entropy(forward(data.x), data);\n", ADAM, "", "got the data source"},
    {"E0203", IDX_DATA, "  loss = cross_entropy(forwrd(data.x), data.y);\n", ADAM, "", "did you mean 'forward'?"},
    {"E0203", IDX_DATA, CE_LOSS, ADAM, "  seed = data.x;\n", "unknown name 'data'"},
    {"E0510", IDX_DATA, "  loss = cross_entropy(forward(data.x), cast(data.y, f32));\n", ADAM, "", "targets must be i32"},
    {"E0511", IDX_DATA, "  loss = mse(forward(data.x), data.y);\n", ADAM, "", "mse: operands must have the same float dtype"},
    {"E0512", IDX_DATA, "  loss = cross_entropy(forward(data.x), data.y, label_smoothing = 1.5);\n", ADAM, "", "got 1.5"},
};

START_TEST(each_error_id) {
  const BadCase *bc = &bad_cases[_i];
  IrModule *m = with(bc->data, bc->loss, bc->optim, bc->extra);
  ck_assert_msg(m == NULL, "case %d (%s) compiled", _i, bc->id);
  ck_assert_msg(has_id(bc->id), "case %d: expected [%s], got:\n%s", _i, bc->id, diag_text ? diag_text : "");
  ck_assert_msg(has_text(bc->text), "case %d: expected '%s' in:\n%s", _i, bc->text, diag_text ? diag_text : "");
}
END_TEST

START_TEST(block_level_errors) {
  /* E0550: two blocks, the note points at the first */
  IrModule *m = compile(MLP_MODEL "train MLP {\n" IDX_DATA CE_LOSS ADAM STEPS "}\n"
                                  "train MLP {\n" STEPS "}\n");
  ck_assert_ptr_null(m);
  ck_assert(has_id("E0550"));
  ck_assert(has_text("note: the first train block is here"));
  /* E0551: a train block for another model */
  m = compile(MLP_MODEL "train Other {\n" IDX_DATA CE_LOSS ADAM STEPS "}\n");
  ck_assert_ptr_null(m);
  ck_assert(has_id("E0551"));
  ck_assert(has_text("train block names 'Other', but the model of this file is 'MLP'"));
  /* the exact span of an error: line 12 holds the optim item, the value of lr is at column 21 */
  m = with(IDX_DATA, CE_LOSS, "  optim = adam(lr = 0.0);\n", "");
  ck_assert_ptr_null(m);
  ck_assert_msg(has_text("main.ckm:12:21: error: adam: 'lr' must be positive"), "%s", diag_text);
}
END_TEST

START_TEST(one_error_per_mistake) {
  /* a bad data source does not also produce loss errors */
  IrModule *m = with("  data = idx(\"i\", \"l\", batch = 0, shape = (784));\n", CE_LOSS, ADAM, "");
  ck_assert_ptr_null(m);
  int n = 0;
  for (const char *p = diag_text; (p = strstr(p, "error:")) != NULL; p++) n++;
  ck_assert_int_eq(n, 1);
}
END_TEST

Suite *check_train_sema_suite(void) {
  Suite *s = suite_create("train_sema");
  TCase *tc = tcase_create("config");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, full_block_fields);
  tcase_add_test(tc, loss_graph_structure);
  tcase_add_test(tc, cross_entropy_attributes);
  tcase_add_test(tc, defaults_of_the_block);
  tcase_add_test(tc, defaults_of_optimizers);
  tcase_add_test(tc, defaults_of_schedules);
  tcase_add_test(tc, idx_default_shape_is_one_by_28_by_28);
  tcase_add_test(tc, tokens_types_and_defaults);
  tcase_add_test(tc, npy_types);
  tcase_add_test(tc, defines_reach_the_block);
  suite_add_tcase(s, tc);
  tc = tcase_create("loss");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, loss_kinds_and_helpers);
  tcase_add_test(tc, bce_and_stop_gradient);
  tcase_add_test(tc, no_train_block_no_config);
  suite_add_tcase(s, tc);
  tc = tcase_create("errors");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, each_error_id, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
  tcase_add_test(tc, block_level_errors);
  tcase_add_test(tc, one_error_per_mistake);
  suite_add_tcase(s, tc);
  return s;
}
