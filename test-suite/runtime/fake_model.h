/* test-suite/runtime/fake_model.h - two hand-written models that implement
 * the CkModelDesc contract (rt-min/ck_model.h) the way generated code does,
 * so the generic runtime (ck_main, data, checkpoints, run directories) is
 * tested without the compiler.
 *
 *   mlp  x f32[4, 4] -> relu(x W1^T + b1) W2^T + b2 -> logits f32[4, 3];
 *        cross-entropy against y i32[4]; data IDX or .npy; SGD momentum.
 *   lm   a bigram language model: forward(idx i32[2, 8]) = emb[idx] ->
 *        f32[2, 8, 128]; cross-entropy against the next token; data: a token
 *        file (u8, u16 or i32) with a validation split; AdamW, cosine
 *        schedule with warmup, clipping, gradient accumulation 2.
 *
 * Gradients are written out by hand (and checked against finite differences
 * in check_runtime.c). Everything is static: include it once per program. */
#ifndef FAKE_MODEL_H
#define FAKE_MODEL_H

#include <string.h>

#include "rt-min/ck_grad.h"
#include "rt-min/ck_model.h"
#include "rt-min/ck_optim.h"

#define MLP_B 4
#define MLP_D 4
#define MLP_H 8
#define MLP_K 3
/* params blob: W1 [H, D] at 0, b1 [H] at 32, W2 [K, H] at 40, b2 [K] at 64 */
#define MLP_W1 0
#define MLP_B1 32
#define MLP_W2 40
#define MLP_B2 64
#define MLP_FLOATS 67

#define LM_B 2
#define LM_T 8
#define LM_V 128

typedef struct FakeModel {
  CkModelDesc m;
  CkTrainDesc t;
  CkParamDesc params[4];
  CkTensorDesc inputs[1];
} FakeModel;

/* ---- mlp ----------------------------------------------------------------------------------- */

/* pre, h: [B, H]; logits: [B, K]. */
static void mlp_fwd(const float *p, const float *x, float *pre, float *h, float *logits) {
  int b, j, d, k;
  for (b = 0; b < MLP_B; b++) {
    for (j = 0; j < MLP_H; j++) {
      float s = p[MLP_B1 + j];
      for (d = 0; d < MLP_D; d++) s += x[b * MLP_D + d] * p[MLP_W1 + j * MLP_D + d];
      pre[b * MLP_H + j] = s;
      h[b * MLP_H + j] = s > 0 ? s : 0;
    }
    for (k = 0; k < MLP_K; k++) {
      float s = p[MLP_B2 + k];
      for (j = 0; j < MLP_H; j++) s += h[b * MLP_H + j] * p[MLP_W2 + k * MLP_H + j];
      logits[b * MLP_K + k] = s;
    }
  }
}

static int mlp_forward(const float *params, void *arena, const void *const *inputs, float *out) {
  float *a = arena;
  mlp_fwd(params, inputs[0], a, a + MLP_B * MLP_H, out);
  return 0;
}

static int mlp_loss(const float *params, void *arena, const void *x, const void *y, float *loss, float *logits) {
  float *a = arena, *lg = a + 2 * MLP_B * MLP_H;
  mlp_fwd(params, x, a, a + MLP_B * MLP_H, lg);
  if (ck_cross_entropy_f32(loss, lg, y, MLP_B, MLP_K, -100, 0.0f) >= 0) return 15;
  if (logits) memcpy(logits, lg, sizeof(float) * MLP_B * MLP_K);
  return 0;
}

static int mlp_train_step(const float *params, float *grads, void *arena, const void *xv, const void *y,
                          float *loss) {
  float *a = arena, *pre = a, *h = a + MLP_B * MLP_H, *lg = h + MLP_B * MLP_H, *dl = lg + MLP_B * MLP_K;
  float *dh = dl + MLP_B * MLP_K, one = 1.0f;
  const float *x = xv;
  int b, j, d, k;
  mlp_fwd(params, x, pre, h, lg);
  if (ck_cross_entropy_f32(loss, lg, y, MLP_B, MLP_K, -100, 0.0f) >= 0) return 15;
  memset(dl, 0, sizeof(float) * MLP_B * MLP_K);
  ck_cross_entropy_backward_f32(dl, &one, lg, y, MLP_B, MLP_K, -100, 0.0f);
  for (b = 0; b < MLP_B; b++) {
    for (k = 0; k < MLP_K; k++) {
      float g = dl[b * MLP_K + k];
      grads[MLP_B2 + k] += g;
      for (j = 0; j < MLP_H; j++) grads[MLP_W2 + k * MLP_H + j] += g * h[b * MLP_H + j];
    }
    for (j = 0; j < MLP_H; j++) {
      float s = 0;
      for (k = 0; k < MLP_K; k++) s += dl[b * MLP_K + k] * params[MLP_W2 + k * MLP_H + j];
      dh[b * MLP_H + j] = pre[b * MLP_H + j] > 0 ? s : 0;
    }
    for (j = 0; j < MLP_H; j++) {
      grads[MLP_B1 + j] += dh[b * MLP_H + j];
      for (d = 0; d < MLP_D; d++) grads[MLP_W1 + j * MLP_D + d] += dh[b * MLP_H + j] * x[b * MLP_D + d];
    }
  }
  return 0;
}

static void fake_tensor(CkTensorDesc *t, const char *name, CkIoDType dt, int rank, int64_t d0, int64_t d1,
                        int64_t d2) {
  int i;
  memset(t, 0, sizeof *t);
  t->name = name;
  t->dtype = dt;
  t->rank = rank;
  t->dims[0] = d0;
  t->dims[1] = d1;
  t->dims[2] = d2;
  t->numel = 1;
  for (i = 0; i < rank; i++) t->numel *= t->dims[i];
}

static void fake_param(CkParamDesc *p, const char *name, int rank, int64_t d0, int64_t d1, int64_t off, int init,
                       float a, float b, int decay) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->rank = rank;
  p->dims[0] = d0;
  p->dims[1] = d1;
  p->numel = rank == 2 ? d0 * d1 : d0;
  p->offset = off;
  p->init = init;
  p->a = a;
  p->b = b;
  p->trainable = 1;
  p->decay = decay;
}

static void fake_common(FakeModel *f, const char *name, const char *exe) {
  memset(f, 0, sizeof *f);
  f->m.name = name;
  f->m.exe = exe;
  f->m.source = "fake.ckm";
  f->m.source_digest = "0123456789abcdef";
  f->m.ckc_version = "0.1.0";
  f->m.target = "c99";
  f->m.flags = "";
  f->m.params = f->params;
  f->m.inputs = f->inputs;
  f->m.train = &f->t;
  f->t.lr = 0.1;
  f->t.beta1 = 0.9;
  f->t.beta2 = 0.999;
  f->t.eps = 1e-8;
  f->t.accum = 1;
  f->t.gamma = 0.1;
  f->t.log_every = 5;
}

/* data_kind: CK_DATA_IDX or CK_DATA_NPY; paths may be NULL (then --data). */
static void fake_mlp_make(FakeModel *f, int data_kind, const char *xp, const char *yp, const char *exp_,
                          const char *eyp) {
  fake_common(f, "FakeMLP", "fakemlp");
  f->m.nparams = 4;
  fake_param(&f->params[0], "fc1.weight", 2, MLP_H, MLP_D, MLP_W1, CK_INIT_UNIFORM, -0.5f, 0.5f, 1);
  fake_param(&f->params[1], "fc1.bias", 1, MLP_H, 0, MLP_B1, CK_INIT_ZEROS, 0, 0, 0);
  fake_param(&f->params[2], "fc2.weight", 2, MLP_K, MLP_H, MLP_W2, CK_INIT_NORMAL, 0.0f, 0.3f, 1);
  fake_param(&f->params[3], "fc2.bias", 1, MLP_K, 0, MLP_B2, CK_INIT_CONSTANT, 0.01f, 0, 0);
  f->m.params_floats = MLP_FLOATS;
  f->m.ninputs = 1;
  fake_tensor(&f->inputs[0], "x", CK_IO_F32, 2, MLP_B, MLP_D, 0);
  fake_tensor(&f->m.output, "out", CK_IO_F32, 2, MLP_B, MLP_K, 0);
  f->m.forward = mlp_forward;
  f->m.forward_arena_bytes = sizeof(float) * 2 * MLP_B * MLP_H;
  f->t.data.kind = data_kind;
  f->t.data.x_path = xp;
  f->t.data.y_path = yp;
  f->t.data.batch = MLP_B;
  f->t.data.vocab = MLP_K;
  f->t.data.val_fraction = 0;
  f->t.data.scale = data_kind == CK_DATA_IDX ? 1.0 / 255.0 : 0;
  fake_tensor(&f->t.data.x, "data.x", CK_IO_F32, 2, MLP_B, MLP_D, 0);
  fake_tensor(&f->t.data.y, "data.y", CK_IO_I32, 1, MLP_B, 0, 0);
  if (exp_) {
    f->t.eval_data = f->t.data;
    f->t.eval_data.x_path = exp_;
    f->t.eval_data.y_path = eyp;
  }
  f->t.loss_kind = CK_LOSS_CROSS_ENTROPY;
  f->t.optim = CK_OPTIM_SGD;
  f->t.lr = 0.5;
  f->t.momentum = 0.9;
  f->t.weight_decay = 1e-3;
  f->t.sched = CK_SCHED_STEP;
  f->t.step_size = 7;
  f->t.gamma = 0.5;
  f->t.clip = 5.0;
  f->t.steps = 20;
  f->t.seed = 7;
  f->t.checkpoint_every = 5;
  f->t.eval_every = 4;
  f->t.loss = mlp_loss;
  f->t.train_step = mlp_train_step;
  f->t.loss_arena_bytes = sizeof(float) * (2 * MLP_B * MLP_H + MLP_B * MLP_K);
  f->t.train_arena_bytes = sizeof(float) * (3 * MLP_B * MLP_H + 2 * MLP_B * MLP_K);
  f->t.has_logits = 1;
  fake_tensor(&f->t.logits, "logits", CK_IO_F32, 2, MLP_B, MLP_K, 0);
}

/* ---- lm ------------------------------------------------------------------------------------ */

static int lm_gather(const float *emb, const int32_t *idx, float *out) {
  int i;
  for (i = 0; i < LM_B * LM_T; i++) {
    if (idx[i] < 0 || idx[i] >= LM_V) return 16;
    memcpy(out + (size_t)i * LM_V, emb + (size_t)idx[i] * LM_V, sizeof(float) * LM_V);
  }
  return 0;
}

static int lm_forward(const float *params, void *arena, const void *const *inputs, float *out) {
  (void)arena;
  return lm_gather(params, inputs[0], out);
}

static int lm_loss(const float *params, void *arena, const void *x, const void *y, float *loss, float *logits) {
  float *lg = arena;
  int st = lm_gather(params, x, lg);
  if (st) return st;
  if (ck_cross_entropy_f32(loss, lg, y, LM_B * LM_T, LM_V, -100, 0.0f) >= 0) return 15;
  if (logits) memcpy(logits, lg, sizeof(float) * LM_B * LM_T * LM_V);
  return 0;
}

static int lm_train_step(const float *params, float *grads, void *arena, const void *x, const void *y, float *loss) {
  float *lg = arena, *dl = lg + LM_B * LM_T * LM_V, one = 1.0f;
  int st = lm_gather(params, x, lg);
  if (st) return st;
  if (ck_cross_entropy_f32(loss, lg, y, LM_B * LM_T, LM_V, -100, 0.0f) >= 0) return 15;
  memset(dl, 0, sizeof(float) * LM_B * LM_T * LM_V);
  ck_cross_entropy_backward_f32(dl, &one, lg, y, LM_B * LM_T, LM_V, -100, 0.0f);
  if (ck_embedding_backward_f32(grads, dl, x, LM_B * LM_T, LM_V, LM_V) >= 0) return 16;
  return 0;
}

/* width: 1 (u8), 2 (u16) or 4 (i32) bytes per token. */
static void fake_lm_make(FakeModel *f, const char *path, int width, double val_fraction) {
  fake_common(f, "FakeLM", "fakelm");
  f->m.nparams = 1;
  fake_param(&f->params[0], "wte", 2, LM_V, LM_V, 0, CK_INIT_NORMAL, 0.0f, 0.02f, 1);
  f->m.params_floats = LM_V * LM_V;
  f->m.ninputs = 1;
  fake_tensor(&f->inputs[0], "idx", CK_IO_I32, 2, LM_B, LM_T, 0);
  f->inputs[0].index_rows = LM_V;
  fake_tensor(&f->m.output, "logits", CK_IO_F32, 3, LM_B, LM_T, LM_V);
  f->m.forward = lm_forward;
  f->m.forward_arena_bytes = 16;
  f->t.data.kind = CK_DATA_TOKENS;
  f->t.data.path = path;
  f->t.data.file_dtype = width == 4 ? CK_IO_I32 : CK_IO_U8;
  f->t.data.file_u16 = width == 2;
  f->t.data.batch = LM_B;
  f->t.data.seq = LM_T;
  f->t.data.vocab = LM_V;
  f->t.data.val_fraction = val_fraction;
  fake_tensor(&f->t.data.x, "data.x", CK_IO_I32, 2, LM_B, LM_T, 0);
  fake_tensor(&f->t.data.y, "data.y", CK_IO_I32, 2, LM_B, LM_T, 0);
  f->t.loss_kind = CK_LOSS_CROSS_ENTROPY;
  f->t.optim = CK_OPTIM_ADAMW;
  f->t.lr = 0.05;
  f->t.beta1 = 0.9;
  f->t.beta2 = 0.95;
  f->t.weight_decay = 0.1;
  f->t.clip = 1.0;
  f->t.accum = 2;
  f->t.sched = CK_SCHED_COSINE;
  f->t.warmup = 3;
  f->t.min_lr = 0.005;
  f->t.steps = 24;
  f->t.seed = 1337;
  f->t.checkpoint_every = 6;
  f->t.eval_every = 8;
  f->t.eval_batches = 2;
  f->t.loss = lm_loss;
  f->t.train_step = lm_train_step;
  f->t.loss_arena_bytes = sizeof(float) * LM_B * LM_T * LM_V;
  f->t.train_arena_bytes = sizeof(float) * 2 * LM_B * LM_T * LM_V;
  f->t.has_logits = 1;
  fake_tensor(&f->t.logits, "logits", CK_IO_F32, 3, LM_B, LM_T, LM_V);
}

#endif
