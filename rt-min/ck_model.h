/* rt-min/ck_model.h - what a generated project tells the generic runtime
 * driver (rt-min/ck_main.c) about its model.
 *
 * The emitter writes <model>.c (the compute functions) and main.c, which is
 * only descriptor tables and `return ck_main(argc, argv, &desc);`. Everything
 * generic - sub-commands, file formats, data loading, the training loop,
 * optimizers, schedules, checkpoints, run directories - lives in rt-min and is
 * tested once, independently of any model. */
#ifndef CK_MODEL_H
#define CK_MODEL_H

#include <stdint.h>

#include "ck_io.h"

enum { CK_INIT_ZEROS, CK_INIT_ONES, CK_INIT_CONSTANT, CK_INIT_NORMAL, CK_INIT_UNIFORM };

typedef struct CkParamDesc {
  const char *name;     /* dotted: "blocks.0.attn.c_attn.weight" */
  int rank;
  int64_t dims[8];
  int64_t numel;
  int64_t offset;       /* in floats, into the params blob (and the grads/moment blobs) */
  int init;             /* CK_INIT_* */
  float a, b;           /* normal: mean, std; uniform: low, high; constant: value */
  int trainable;        /* has a gradient output in train_step */
  int decay;            /* weight decay applies */
} CkParamDesc;

typedef struct CkTensorDesc {
  const char *name;     /* "idx", "data.x" */
  CkIoDType dtype;
  int rank;
  int64_t dims[8];
  int64_t numel;
  int64_t index_rows;   /* embedding indices: valid in [0, index_rows); 0 = not an index input */
} CkTensorDesc;

/* Compute entry points written by the emitter. They return 0, or a nonzero
 * code describing bad input data (see ck_model_error_text); they never read
 * out of bounds. `arena` is caller-owned scratch of the stated size. */
typedef int (*CkForwardFn)(const float *params, void *arena, const void *const *inputs, float *out);
/* loss: *loss = the scalar loss; logits may be NULL (not wanted). */
typedef int (*CkLossFn)(const float *params, void *arena, const void *x, const void *y, float *loss,
                        float *logits);
/* train_step: *loss as above; ACCUMULATES d loss / d param into grads (same
 * layout as params; entries of non-trainable params untouched). */
typedef int (*CkTrainStepFn)(const float *params, float *grads, void *arena, const void *x,
                             const void *y, float *loss);

enum { CK_DATA_NONE, CK_DATA_TOKENS, CK_DATA_IDX, CK_DATA_NPY };
enum { CK_OPTIM_SGD, CK_OPTIM_ADAM, CK_OPTIM_ADAMW };
enum { CK_SCHED_CONSTANT, CK_SCHED_LINEAR, CK_SCHED_COSINE, CK_SCHED_STEP };
enum { CK_LOSS_CROSS_ENTROPY, CK_LOSS_MSE, CK_LOSS_BCE_WITH_LOGITS, CK_LOSS_OTHER };

typedef struct CkDataDesc {
  int kind;               /* CK_DATA_* */
  const char *path;       /* tokens */
  const char *x_path, *y_path;
  CkIoDType file_dtype;   /* tokens: CK_IO_U8 or CK_IO_I32; */
  int file_u16;           /* tokens stored as little-endian u16 */
  int64_t batch, seq, vocab;
  double val_fraction, scale;
  CkTensorDesc x, y;      /* the tensors fed to loss/train_step (batch dim first) */
} CkDataDesc;

/* One optimizer step's scalars, for CkOptimOps.update: the values ck_main
 * passes to ck_optim.h's reference kernels, plus how g is scaled first. */
typedef struct CkOptimStep {
  int optim;              /* CK_OPTIM_* */
  double lr, momentum, dampening, beta1, beta2, eps;
  double weight_decay;    /* for params with `decay` set; 0 for the others */
  int nesterov;
  int first_step;         /* SGD: the momentum buffer starts as d */
  int64_t t;              /* Adam: the step number after the increment (1 first) */
  float gscale, coef;     /* g is used as (g * gscale) * coef: 1/accum and the
                           * clip coefficient, each 1.0f when off */
} CkOptimStep;

/* Optional fast optimizer over all trainable params at once (x86:
 * rt-min/x86/ck_x86_optim.h; NULL on c99, where ck_main calls the
 * reference kernels param by param). grads are only read. */
typedef struct CkOptimOps {
  /* sum of ((g * gscale) rounded to float)^2 over trainable params, in double */
  double (*grad_sq_norm)(void *ctx, const CkParamDesc *params, int nparams, const float *grads,
                         float gscale);
  /* the update of every trainable param; mom1 NULL for SGD, both NULL
   * for SGD without momentum */
  void (*update)(void *ctx, const CkParamDesc *params, int nparams, float *weights, const float *grads,
                 float *mom0, float *mom1, const CkOptimStep *s);
} CkOptimOps;

typedef struct CkTrainDesc {
  CkDataDesc data, eval_data;
  int loss_kind;          /* CK_LOSS_*; cross_entropy: eval reports accuracy from logits */
  int optim;              /* CK_OPTIM_* */
  double lr, momentum, dampening, beta1, beta2, eps, weight_decay, clip;
  int nesterov;
  int64_t accum;
  int sched;              /* CK_SCHED_* */
  int64_t warmup, step_size;
  double min_lr, gamma;
  int64_t steps, seed, checkpoint_every, eval_every, eval_batches, log_every;
  CkLossFn loss;
  CkTrainStepFn train_step;
  int64_t loss_arena_bytes, train_arena_bytes;
  int has_logits;
  CkTensorDesc logits;
  /* Targets with an execution context (x86: the thread pool; NULL on c99):
   * loss/train_step taking it first. ck_main calls these when set. */
  int (*loss_ctx)(void *ctx, const float *params, void *arena, const void *x, const void *y, float *loss,
                  float *logits);
  int (*train_step_ctx)(void *ctx, const float *params, float *grads, void *arena, const void *x, const void *y,
                        float *loss);
  /* The fused optimizer step run with ctx (x86); NULL: the reference path. */
  const CkOptimOps *optim_ops;
} CkTrainDesc;

typedef struct CkModelDesc {
  const char *name;        /* "TinyGPT" */
  const char *exe;         /* "tinygpt" */
  const char *source;      /* "tiny_gpt.ckm" */
  const char *source_digest; /* hex FNV-1a 64 of the source text (manifest) */
  const char *ckc_version; /* "0.1.0" */
  const char *target;      /* "c99" */
  const char *flags;       /* the ckc flags that shaped the code, e.g. "-D B=16" ("" if none) */
  int nparams;
  const CkParamDesc *params;
  int64_t params_floats;   /* size of the params blob in floats */
  int ninputs;
  const CkTensorDesc *inputs;
  CkTensorDesc output;
  CkForwardFn forward;
  int64_t forward_arena_bytes;
  const CkTrainDesc *train; /* NULL when the source has no train block */
  /* Execution context (x86 targets: a CkPool; all NULL on c99). ck_main
   * creates it once from `--threads N` (0 when absent: the target then reads
   * CK_THREADS, else uses 1 thread), stores it in `ctx` of its own copy of
   * this descriptor and calls forward_ctx/loss_ctx/train_step_ctx with it.
   * Results never depend on the thread count. */
  void *(*ctx_create)(int threads);
  void (*ctx_destroy)(void *ctx);
  int (*forward_ctx)(void *ctx, const float *params, void *arena, const void *const *inputs, float *out);
  void *ctx;
  /* Generation with a K/V cache (passes/decode.c), or NULL: the logits
   * [batch, V] of position pos, tokens[b] being row b's token there; cache
   * (cache_bytes, caller-owned) keeps the earlier positions' keys and values,
   * so positions are decoded 0, 1, ... in order. Equals forward's logits at
   * that position. ctx as for forward_ctx (NULL on c99). */
  int (*decode)(void *ctx, const float *params, float *cache, void *arena, const int32_t *tokens, int64_t pos,
                float *logits);
  int64_t decode_arena_bytes, cache_bytes, decode_max_pos;
} CkModelDesc;

/* Text for a nonzero code returned by a compute function. */
const char *ck_model_error_text(int code);

/* The program: info | init | infer | train | eval | sample | grad. Returns the
 * process exit status (0 ok, 1 bad input/files, 2 usage). */
int ck_main(int argc, char **argv, const CkModelDesc *m);

#endif
