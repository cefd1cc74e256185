/* ir/train.h - the elaborated `train` block (IrModule.train).
 *
 * Contract between sema (frontend/train.c fills it and builds the "loss"
 * entry graph), the autodiff pass (builds the "train_step" entry graph), the
 * optimizer pass (resolves which parameters train and decay) and the back end
 * (emits the descriptor tables of rt-min/ck_model.h).
 *
 * Entry graphs of a module with a train block:
 *   forward     inputs as declared by the model's fn forward
 *   loss        inputs (data.x, data.y); outputs[0] = scalar f32 loss;
 *               outputs[1] = the logits the loss was computed from, when the
 *               loss is cross_entropy (eval reports accuracy from them)
 *   train_step  built by autodiff from loss: same inputs; outputs[0] = loss,
 *               outputs[1 + i] = gradient of IrTrainConfig.params[i] (same
 *               shape as the parameter), named "grad.<param name>". */
#ifndef CKC_IR_TRAIN_H
#define CKC_IR_TRAIN_H

#include "ir/ir.h"

typedef enum IrDataKind {
  IR_DATA_NONE,
  IR_DATA_TOKENS, /* tokens(path, batch=B, seq=T, dtype=u8|u16|i32, vocab=V, val=0.1) */
  IR_DATA_IDX,    /* idx(images=path, labels=path, batch=B, shape=(784), scale=1/255) */
  IR_DATA_NPY,    /* npy(x=path, y=path, batch=B)  (sample shapes from x/y types: shape=..., y_shape=...) */
} IrDataKind;

typedef struct IrDataSpec {
  IrDataKind kind;
  CkcLoc loc;
  const char *path;     /* TOKENS: the token file */
  const char *x_path;   /* IDX: images file; NPY: x file */
  const char *y_path;   /* IDX: labels file; NPY: y file */
  CkDType file_dtype;   /* TOKENS: u8 | i32 (u16 recorded as CK_DT_COUNT + is_u16) */
  bool is_u16;
  int64_t batch, seq;
  int64_t vocab;        /* TOKENS: ids must be < vocab (0 = unchecked) */
  double val_fraction;  /* TOKENS: the tail fraction of the file used for eval */
  double scale;         /* IDX: pixel value multiplier (default 1/255) */
  CkDType x_dtype, y_dtype;
  CkShape x_shape, y_shape; /* including the batch dimension */
} IrDataSpec;

typedef enum IrOptimKind { IR_OPTIM_SGD, IR_OPTIM_ADAM, IR_OPTIM_ADAMW } IrOptimKind;

typedef struct IrOptimSpec {
  IrOptimKind kind;
  double lr;
  double momentum, dampening; /* SGD */
  bool nesterov;              /* SGD */
  double beta1, beta2, eps;   /* Adam, AdamW */
  double weight_decay;
  double clip;                /* global-norm clipping; 0 = off */
  int64_t accum;              /* gradient accumulation window (micro-batches per step), >= 1 */
} IrOptimSpec;

typedef enum IrSchedKind {
  IR_SCHED_CONSTANT, /* constant(warmup=0) */
  IR_SCHED_LINEAR,   /* linear(warmup=0, min_lr=0): warmup then linear decay to min_lr at `steps` */
  IR_SCHED_COSINE,   /* cosine(warmup=0, min_lr=0) */
  IR_SCHED_STEP,     /* step(step_size=N, gamma=0.1, warmup=0) */
} IrSchedKind;

typedef struct IrSchedSpec {
  IrSchedKind kind;
  int64_t warmup;
  double min_lr;
  int64_t step_size;
  double gamma;
} IrSchedSpec;

typedef enum IrLossKind { IR_LOSS_CROSS_ENTROPY, IR_LOSS_MSE, IR_LOSS_BCE_WITH_LOGITS, IR_LOSS_OTHER } IrLossKind;

/* One trainable parameter (filled by the optimizer pass, in the order of the
 * train_step graph's gradient outputs). */
typedef struct IrTrainParam {
  const char *name;
  bool decay; /* weight decay applies (default: rank >= 2; overridable) */
} IrTrainParam;

typedef struct IrTrainConfig {
  CkcLoc loc;
  IrDataSpec data;
  IrDataSpec eval_data;     /* kind NONE: tokens use the val split; others: no eval */
  IrLossKind loss_kind;
  IrOptimSpec optim;
  IrSchedSpec sched;
  int64_t steps, seed;
  int64_t checkpoint_every; /* 0 = only at the end */
  int64_t eval_every;       /* 0 = only at the end */
  int64_t eval_batches;     /* batches per eval (0 = the whole eval set for idx/npy, 20 for tokens) */
  int64_t log_every;        /* metrics record cadence (default 1) */
  CKC_VEC(const char *) decay_exclude; /* glob patterns (`*` wildcard) over dotted names */
  CKC_VEC(const char *) decay_include; /* take precedence over exclude and the default */
  CKC_VEC(IrTrainParam) params;        /* filled by passes/optimizer.c */
} IrTrainConfig;

#endif
