/* rt-min/ck_main.c - the command-line program of every generated hosted
 * project: info | init | infer | train | eval | sample | grad, driven by the
 * model's descriptor tables (ck_model.h). Nothing here depends on a model:
 * the generated main.c is only `return ck_main(argc, argv, &desc);`.
 *
 * Exit status: 0 success, 1 bad input or files (one line naming the file and
 * the problem), 2 usage error (with the usage text).
 *
 * Determinism: every random choice comes from a ck_rng stream derived from
 * the seed ("init:" per parameter via its name, "data", "sample"); a
 * checkpoint holds everything that changes during training, so a resumed run
 * continues bit for bit. docs/train.md states the guarantees. */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ck_ckpt.h"
#include "ck_data.h"
#include "ck_io.h"
#include "ck_mem.h"
#include "ck_model.h"
#include "ck_optim.h"
#include "ck_rng.h"
#include "ck_run.h"

#define CK_PATH_MAX 1024

/* ---- small helpers ------------------------------------------------------------------------- */

const char *ck_model_error_text(int code) {
  if (code == 0) return "ok";
  if (code >= 16) return "an embedding index is outside its table";
  if (code >= 8) return "a loss target is outside the class range";
  return "the compute function rejected its input";
}

/* The compute entry points through the target's execution context when it
 * has one (x86: the thread pool in m->ctx), else the plain c99 functions. */
static int call_forward(const CkModelDesc *m, const float *params, void *arena, const void *const *in, float *out) {
  if (m->forward_ctx) return m->forward_ctx(m->ctx, params, arena, in, out);
  return m->forward(params, arena, in, out);
}

static int call_loss(const CkModelDesc *m, const float *params, void *arena, const void *x, const void *y,
                     float *loss, float *logits) {
  if (m->train->loss_ctx) return m->train->loss_ctx(m->ctx, params, arena, x, y, loss, logits);
  return m->train->loss(params, arena, x, y, loss, logits);
}

static int call_train_step(const CkModelDesc *m, const float *params, float *grads, void *arena, const void *x,
                           const void *y, float *loss) {
  if (m->train->train_step_ctx) return m->train->train_step_ctx(m->ctx, params, grads, arena, x, y, loss);
  return m->train->train_step(params, grads, arena, x, y, loss);
}

static int usage(const CkModelDesc *m, const char *msg) {
  const char *p = m->exe;
  int k;
  if (msg) fprintf(stderr, "%s: %s\n", p, msg);
  fprintf(stderr, "usage: %s info\n", p);
  fprintf(stderr, "       %s init --seed N --out W.safetensors\n", p);
  fprintf(stderr, "       %s infer --weights W.safetensors ", p);
  for (k = 0; k < m->ninputs; k++) fprintf(stderr, "--in %s.npy ", m->inputs[k].name);
  fprintf(stderr, "--out Y.npy\n");
  if (m->train) {
    fprintf(stderr,
            "       %s train [--weights W.safetensors] [--steps N] [--lr X] [--seed N] [--run-dir DIR]\n"
            "             [--resume] [--checkpoint-every N] [--eval-every N] [--data PATH]\n"
            "             [--eval-data PATH] [--quiet]\n"
            "       %s eval --weights W.safetensors [--eval-data PATH]\n"
            "       %s grad --weights W.safetensors --x X.npy --y Y.npy --out G.safetensors\n",
            p, p, p);
  }
  fprintf(stderr,
          "       %s sample --weights W.safetensors [--prompt TEXT] [--tokens N] [--temperature T]\n"
          "             [--top-k K] [--seed S] [--kv-cache on|off]\n"
          "(IDX and .npy data take PATH as X,Y)\n"
          "every command takes --threads N (default: $CK_THREADS, else 1); results do not depend on it\n",
          p);
  return 2;
}

/* malloc that never returns NULL (a hosted tool: out of memory ends it);
 * big buffers on huge pages (ck_mem.h). */
static void *xmalloc(const CkModelDesc *m, size_t n) {
  void *q = ck_mem_alloc(n);
  if (!q) {
    fprintf(stderr, "%s: out of memory (%lu bytes)\n", m->exe, (unsigned long)n);
    exit(1);
  }
  return q;
}

static void *xcalloc(const CkModelDesc *m, size_t n) {
  void *q = xmalloc(m, n);
  memset(q, 0, n ? n : 1);
  return q;
}

/* A whole non-negative decimal integer at least lo. */
static int parse_i64(const char *s, int64_t lo, int64_t *out) {
  char *end = NULL;
  long long v;
  if (!s || !*s || s[0] == '-' || s[0] == '+' || s[0] == ' ') return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end || v < lo) return -1;
  *out = v;
  return 0;
}

/* A finite number >= 0. */
static int parse_f64(const char *s, double *out) {
  char *end = NULL;
  double v;
  if (!s || !*s) return -1;
  v = strtod(s, &end);
  if (*end || !isfinite(v) || v < 0) return -1;
  *out = v;
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_dims(int rank, const int64_t *dims) {
  int d;
  printf("[");
  for (d = 0; d < rank; d++) printf("%s%lld", d ? "," : "", (long long)dims[d]);
  printf("]");
}

static const char *io_name(CkIoDType t) {
  switch (t) {
  case CK_IO_F32: return "f32";
  case CK_IO_F64: return "f64";
  case CK_IO_I32: return "i32";
  case CK_IO_U8: return "u8";
  default: return "bool";
  }
}

static const char *init_name(int k) {
  switch (k) {
  case CK_INIT_ZEROS: return "zeros";
  case CK_INIT_ONES: return "ones";
  case CK_INIT_CONSTANT: return "constant";
  case CK_INIT_NORMAL: return "normal";
  default: return "uniform";
  }
}

static const char *optim_name(int o) {
  return o == CK_OPTIM_SGD ? "sgd" : o == CK_OPTIM_ADAM ? "adam" : "adamw";
}

static const char *sched_name(int s) {
  return s == CK_SCHED_LINEAR ? "linear" : s == CK_SCHED_COSINE ? "cosine" : s == CK_SCHED_STEP ? "step" : "constant";
}

/* One safetensors spec per parameter, pointing into the params blob (malloc'd). */
static CkTensorSpec *param_specs(const CkModelDesc *m, float *blob) {
  CkTensorSpec *s = xcalloc(m, (size_t)(m->nparams > 0 ? m->nparams : 1) * sizeof *s);
  int i, d;
  for (i = 0; i < m->nparams; i++) {
    const CkParamDesc *p = &m->params[i];
    s[i].name = p->name;
    s[i].dtype = CK_IO_F32;
    s[i].rank = p->rank;
    for (d = 0; d < 8; d++) s[i].dims[d] = p->dims[d];
    s[i].data = blob + p->offset;
  }
  return s;
}

/* Every parameter from its own initialiser on its own random stream (seed,
 * dotted name): adding a parameter changes no other's values. */
static void init_params(const CkModelDesc *m, uint64_t seed, float *blob) {
  int i;
  int64_t e;
  memset(blob, 0, (size_t)m->params_floats * sizeof(float));
  for (i = 0; i < m->nparams; i++) {
    const CkParamDesc *p = &m->params[i];
    float *w = blob + p->offset;
    CkRng rng;
    ck_rng_seed_stream(&rng, seed, p->name);
    if (p->init == CK_INIT_NORMAL) ck_rng_fill_normal(&rng, w, p->numel, p->a, p->b);
    else if (p->init == CK_INIT_UNIFORM) ck_rng_fill_uniform(&rng, w, p->numel, p->a, p->b);
    else
      for (e = 0; e < p->numel; e++)
        w[e] = p->init == CK_INIT_ZEROS ? 0.0f : p->init == CK_INIT_ONES ? 1.0f : p->a;
  }
}

static int load_weights(const CkModelDesc *m, const char *path, float *blob) {
  CkTensorSpec *specs = param_specs(m, blob);
  CkIoErr err;
  int rc = ck_safetensors_read(path, specs, m->nparams, &err);
  free(specs);
  if (rc != CK_IO_OK) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    return 1;
  }
  return 0;
}

static int save_weights(const CkModelDesc *m, const char *path, float *blob) {
  CkTensorSpec *specs = param_specs(m, blob);
  CkIoErr err;
  int rc = ck_safetensors_write(path, specs, m->nparams, &err);
  free(specs);
  if (rc != CK_IO_OK) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    return 1;
  }
  return 0;
}

/* ---- info / init / infer --------------------------------------------------------------------- */

static int cmd_info(const CkModelDesc *m) {
  int i, k;
  int64_t count = 0;
  for (i = 0; i < m->nparams; i++) count += m->params[i].numel;
  printf("model %s (target %s)\n", m->name, m->target);
  printf("parameters: %d tensors, %lld scalars\n", m->nparams, (long long)count);
  for (i = 0; i < m->nparams; i++) {
    const CkParamDesc *p = &m->params[i];
    printf("  %-32s f32", p->name);
    print_dims(p->rank, p->dims);
    printf(" %lld  init %s\n", (long long)p->numel, init_name(p->init));
  }
  for (k = 0; k < m->ninputs; k++) {
    printf("input %d: %s %s", k, m->inputs[k].name, io_name(m->inputs[k].dtype));
    print_dims(m->inputs[k].rank, m->inputs[k].dims);
    if (m->inputs[k].index_rows > 0) printf(" indices in [0, %lld)", (long long)m->inputs[k].index_rows);
    printf("\n");
  }
  printf("output: %s", io_name(m->output.dtype));
  print_dims(m->output.rank, m->output.dims);
  printf("\n");
  printf("memory: params %lld bytes, arena %lld bytes\n", (long long)(m->params_floats * 4),
         (long long)m->forward_arena_bytes);
  if (m->train) {
    const CkTrainDesc *t = m->train;
    printf("train: %s lr %g, schedule %s, %lld steps, seed %lld, batch %lld, accum %lld\n",
           optim_name(t->optim), t->lr, sched_name(t->sched), (long long)t->steps, (long long)t->seed,
           (long long)t->data.batch, (long long)(t->accum > 0 ? t->accum : 1));
  }
  return 0;
}

static int cmd_init(const CkModelDesc *m, int argc, char **argv) {
  const char *seed_s = NULL, *outp = NULL;
  int64_t seed;
  float *blob;
  int i, rc;
  for (i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed_s = argv[++i];
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) outp = argv[++i];
    else return usage(m, "init: unknown or incomplete option");
  }
  if (!seed_s || !outp) return usage(m, "init needs --seed N and --out FILE");
  if (parse_i64(seed_s, 0, &seed)) return usage(m, "init: --seed must be a non-negative integer");
  blob = xmalloc(m, (size_t)m->params_floats * sizeof(float));
  init_params(m, (uint64_t)seed, blob);
  rc = save_weights(m, outp, blob);
  free(blob);
  return rc;
}

/* Explains an index error: the first index of input k outside its table. */
static void report_index(const CkModelDesc *m, int k, const void *data, const char *path) {
  const CkTensorDesc *t;
  const int32_t *v = data;
  int64_t i;
  if (k < 0 || k >= m->ninputs || m->inputs[k].dtype != CK_IO_I32) {
    fprintf(stderr, "%s: an embedding index is out of range\n", m->exe);
    return;
  }
  t = &m->inputs[k];
  for (i = 0; i < t->numel; i++)
    if (t->index_rows > 0 && (v[i] < 0 || v[i] >= t->index_rows)) {
      fprintf(stderr, "%s: %s: input '%s': index %ld at position %lld is outside [0, %lld)\n", m->exe, path,
              t->name, (long)v[i], (long long)i, (long long)t->index_rows);
      return;
    }
  fprintf(stderr, "%s: %s: input '%s': an index is out of range\n", m->exe, path, t->name);
}

static int cmd_infer(const CkModelDesc *m, int argc, char **argv) {
  const char *wpath = NULL, *outp = NULL;
  const char **inp = xcalloc(m, (size_t)(m->ninputs + 1) * sizeof *inp);
  void **in = xcalloc(m, (size_t)(m->ninputs + 1) * sizeof *in);
  int nin = 0, i, k, rc = 1, st;
  float *blob = NULL;
  void *arena = NULL, *out = NULL;
  CkIoErr err;
  for (i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) wpath = argv[++i];
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) outp = argv[++i];
    else if (strcmp(argv[i], "--in") == 0 && i + 1 < argc) {
      if (nin == m->ninputs) {
        rc = usage(m, "infer: too many --in files");
        goto done;
      }
      inp[nin++] = argv[++i];
    } else {
      rc = usage(m, "infer: unknown or incomplete option");
      goto done;
    }
  }
  if (!wpath || !outp || nin != m->ninputs) {
    rc = usage(m, "infer needs --weights FILE, one --in FILE per input and --out FILE");
    goto done;
  }
  blob = xmalloc(m, (size_t)m->params_floats * sizeof(float));
  arena = xmalloc(m, (size_t)m->forward_arena_bytes);
  out = xmalloc(m, (size_t)m->output.numel * ck_data_elsize(m->output.dtype));
  if (load_weights(m, wpath, blob)) goto done;
  for (k = 0; k < m->ninputs; k++) {
    const CkTensorDesc *t = &m->inputs[k];
    in[k] = xmalloc(m, (size_t)t->numel * ck_data_elsize(t->dtype));
    if (ck_npy_read(inp[k], t->dtype, t->rank, t->dims, in[k], &err) != CK_IO_OK) {
      fprintf(stderr, "%s: input '%s': %s\n", m->exe, t->name, err.msg);
      goto done;
    }
  }
  st = call_forward(m, blob, arena, (const void *const *)in, out);
  if (st != 0) {
    k = st - 16;
    if (st >= 16 && k < m->ninputs) report_index(m, k, in[k], inp[k]);
    else if (st == 16 + m->ninputs) report_index(m, -1, NULL, NULL);
    else fprintf(stderr, "%s: forward failed with code %d (%s)\n", m->exe, st, ck_model_error_text(st));
    goto done;
  }
  if (ck_npy_write(outp, m->output.dtype, m->output.rank, m->output.dims, out, &err) != CK_IO_OK) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    goto done;
  }
  rc = 0;
done:
  for (k = 0; k < m->ninputs; k++) free(in[k]);
  free(in);
  free((void *)inp);
  free(out);
  free(arena);
  free(blob);
  return rc;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

typedef struct EvalResult {
  double loss, accuracy;
  int have_accuracy;
  int64_t batches, correct, total;
} EvalResult;

/* Accuracy applies when the loss is cross-entropy on logits [.., V] whose
 * rows line up with integer targets. */
static int wants_accuracy(const CkTrainDesc *t) {
  int64_t V;
  if (t->loss_kind != CK_LOSS_CROSS_ENTROPY || !t->has_logits || t->logits.rank < 1) return 0;
  V = t->logits.dims[t->logits.rank - 1];
  return V > 0 && t->data.y.dtype == CK_IO_I32 && t->logits.numel / V == t->data.y.numel;
}

/* Batches per evaluation during training: the train block's eval_batches,
 * where 0 means the whole eval set for idx/npy data and 20 batches for token
 * data (whose validation split is usually far larger than one check needs). */
static int64_t eval_limit(const CkTrainDesc *t) {
  if (t->eval_batches > 0) return t->eval_batches;
  return t->data.kind == CK_DATA_TOKENS ? 20 : 0;
}

/* Mean loss over the eval batches in order (max_batches > 0 limits them);
 * accuracy = argmax over the last logits axis (first maximum) vs y. */
static int run_eval(const CkModelDesc *m, const float *params, void *arena, const CkData *ev, void *x, void *y,
                    float *logits, int64_t max_batches, EvalResult *r) {
  const CkTrainDesc *t = m->train;
  int64_t nb = ck_data_eval_batches(ev), b, i, j;
  int acc = wants_accuracy(t) && logits;
  double sum = 0;
  if (max_batches > 0 && max_batches < nb) nb = max_batches;
  memset(r, 0, sizeof *r);
  for (b = 0; b < nb; b++) {
    float l = 0;
    int st;
    ck_data_eval_batch(ev, b, x, y);
    st = call_loss(m, params, arena, x, y, &l, acc ? logits : NULL);
    if (st != 0) {
      fprintf(stderr, "%s: eval batch %lld: %s (code %d)\n", m->exe, (long long)b, ck_model_error_text(st), st);
      return 1;
    }
    sum += l;
    if (acc) {
      int64_t V = t->logits.dims[t->logits.rank - 1], rows = t->logits.numel / V;
      const int32_t *yy = y;
      for (i = 0; i < rows; i++) {
        const float *row = logits + i * V;
        int64_t best = 0;
        for (j = 1; j < V; j++)
          if (row[j] > row[best] || (isnan(row[j]) && !isnan(row[best]))) best = j;
        r->correct += best == yy[i];
        r->total++;
      }
    }
  }
  r->batches = nb;
  r->loss = nb ? sum / (double)nb : NAN;
  if (acc && r->total) {
    r->have_accuracy = 1;
    r->accuracy = (double)r->correct / (double)r->total;
  }
  return 0;
}

/* Opens the eval source: --eval-data (the whole file), else the train
 * block's eval data, else the validation split of the train data (a view on
 * `train` when the caller has it open, so the file is held once). Returns
 * 1 on error, 0 with *have = 0 when there is none. */
static int open_eval(const CkModelDesc *m, const char *override, const char *data_override, uint64_t seed,
                     const CkData *train, CkData *ev, int *have) {
  const CkTrainDesc *t = m->train;
  CkIoErr err;
  *have = 0;
  if (override || t->eval_data.kind != CK_DATA_NONE) {
    const CkDataDesc *d = t->eval_data.kind != CK_DATA_NONE ? &t->eval_data : &t->data;
    /* eval batches go through the train batch buffers and the loss function */
    if (d->x.dtype != t->data.x.dtype || d->x.numel != t->data.x.numel || d->y.dtype != t->data.y.dtype ||
        d->y.numel != t->data.y.numel) {
      fprintf(stderr, "%s: eval data: x and y must have the train data's dtypes and shapes\n", m->exe);
      return 1;
    }
    if (ck_data_open(ev, d, override, CK_DATA_ROLE_EVAL, seed, &err)) {
      fprintf(stderr, "%s: %s\n", m->exe, err.msg);
      return 1;
    }
    *have = 1;
    return 0;
  }
  if (t->data.val_fraction > 0) {
    if (train) {
      ck_data_view(ev, train);
    } else if (ck_data_open(ev, &t->data, data_override, CK_DATA_ROLE_TRAIN, seed, &err)) {
      fprintf(stderr, "%s: %s\n", m->exe, err.msg);
      return 1;
    }
    *have = ck_data_eval_batches(ev) > 0;
    if (!*have) ck_data_free(ev);
  }
  return 0;
}

static int cmd_eval(const CkModelDesc *m, int argc, char **argv) {
  const CkTrainDesc *t = m->train;
  const char *wpath = NULL, *edata = NULL;
  float *params, *logits;
  void *arena, *x, *y;
  CkData ev;
  EvalResult r;
  int i, have, rc;
  if (!t) return usage(m, "eval: this model has no train block (no loss to evaluate)");
  for (i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) wpath = argv[++i];
    else if (strcmp(argv[i], "--eval-data") == 0 && i + 1 < argc) edata = argv[++i];
    else return usage(m, "eval: unknown or incomplete option");
  }
  if (!wpath) return usage(m, "eval needs --weights FILE");
  params = xmalloc(m, (size_t)m->params_floats * sizeof(float));
  if (load_weights(m, wpath, params)) {
    free(params);
    return 1;
  }
  if (open_eval(m, edata, NULL, (uint64_t)t->seed, NULL, &ev, &have)) {
    free(params);
    return 1;
  }
  if (!have) {
    fprintf(stderr, "%s: eval: no eval data (give --eval-data PATH)\n", m->exe);
    free(params);
    return 1;
  }
  arena = xmalloc(m, (size_t)t->loss_arena_bytes);
  x = xmalloc(m, (size_t)t->data.x.numel * ck_data_elsize(t->data.x.dtype));
  y = xmalloc(m, (size_t)t->data.y.numel * ck_data_elsize(t->data.y.dtype));
  logits = t->has_logits ? xmalloc(m, (size_t)t->logits.numel * sizeof(float)) : NULL;
  rc = run_eval(m, params, arena, &ev, x, y, logits, 0, &r);
  if (!rc) {
    printf("eval loss %.6f (%lld batches)\n", r.loss, (long long)r.batches);
    if (r.have_accuracy)
      printf("eval accuracy %.4f (%lld/%lld)\n", r.accuracy, (long long)r.correct, (long long)r.total);
  }
  ck_data_free(&ev);
  free(logits);
  free(x);
  free(y);
  free(arena);
  free(params);
  return rc;
}

/* ---- training ------------------------------------------------------------------------------ */

typedef struct TrainOpts {
  const char *weights, *run_dir, *data, *eval_data;
  int64_t steps, seed, ckpt_every, eval_every;
  double lr;
  int resume, quiet;
} TrainOpts;

typedef struct Trainer {
  const CkModelDesc *m;
  const CkTrainDesc *t;
  TrainOpts o;
  int64_t accum;
  float *params, *grads, *mom[2];
  int nmom;
  void *arena, *x, *y;
  float *logits;
  CkData data, ev;
  int has_eval;
  char dir[CK_PATH_MAX], ckdir[CK_PATH_MAX + 16], metrics_path[CK_PATH_MAX + 16], svg_path[CK_PATH_MAX + 16];
  char last_ckpt[CK_PATH_MAX + 48];
  FILE *metrics;
  int ckpt_writes, crash_at;
} Trainer;

/* The learning rate of (0-based) step s: the schedule of the train block. */
static double sched_lr(const CkTrainDesc *t, double lr, int64_t s, int64_t steps) {
  switch (t->sched) {
  case CK_SCHED_LINEAR: return ck_lr_linear(lr, t->min_lr, s, t->warmup, steps);
  case CK_SCHED_COSINE: return ck_lr_cosine(lr, t->min_lr, s, t->warmup, steps);
  case CK_SCHED_STEP:
    if (s < t->warmup) return ck_lr_linear_warmup(lr, s, t->warmup);
    return t->step_size > 0 ? ck_lr_step(lr, s - t->warmup, t->step_size, t->gamma) : ck_lr_constant(lr, s);
  default: return t->warmup > 0 ? ck_lr_linear_warmup(lr, s, t->warmup) : ck_lr_constant(lr, s);
  }
}

static void warn_ckpt(void *ctx, const char *msg) {
  fprintf(stderr, "%s: warning: skipping %s\n", (const char *)ctx, msg);
}

static void ckpt_state(Trainer *tr, CkCkpt *c, int64_t step) {
  memset(c, 0, sizeof *c);
  c->step = step;
  c->seed = (uint64_t)tr->o.seed;
  c->model_hash = ck_ckpt_model_hash(tr->m);
  ck_data_get_cursor(&tr->data, &c->cursor);
  c->optim = tr->t->optim;
  c->nmoments = tr->nmom;
  c->floats = tr->m->params_floats;
  c->params = tr->params;
  c->moments[0] = tr->mom[0];
  c->moments[1] = tr->mom[1];
}

static int write_checkpoint(Trainer *tr, int64_t step) {
  CkCkpt c;
  CkIoErr err;
  char path[CK_PATH_MAX + 48];
  ckpt_state(tr, &c, step);
  ck_ckpt_name(path, sizeof path, tr->ckdir, step);
  tr->ckpt_writes++;
  if (ck_ckpt_write(path, &c, tr->crash_at > 0 && tr->ckpt_writes == tr->crash_at, &err) != CK_IO_OK) {
    fprintf(stderr, "%s: %s\n", tr->m->exe, err.msg);
    return 1;
  }
  snprintf(tr->last_ckpt, sizeof tr->last_ckpt, "%s", path);
  if (ck_run_write_svg(tr->metrics_path, tr->svg_path, tr->m->name, &err) != CK_IO_OK)
    fprintf(stderr, "%s: warning: %s\n", tr->m->exe, err.msg);
  return 0;
}

/* True when DIR holds any checkpoint file (valid or not). */
static int has_checkpoints(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  int found = 0;
  if (!d) return 0;
  while (!found && (de = readdir(d)) != NULL) {
    size_t n = strlen(de->d_name);
    found = n > 10 && strncmp(de->d_name, "ckpt-", 5) == 0 && strcmp(de->d_name + n - 5, ".ckpt") == 0;
  }
  closedir(d);
  return found;
}

static void manifest_files(FILE *f, const CkData *d) {
  int i;
  fputc('[', f);
  for (i = 0; i < d->nfiles; i++) {
    fprintf(f, "%s{\"path\":", i ? "," : "");
    ck_json_string(f, d->files[i].path);
    fprintf(f, ",\"bytes\":%lld,\"fnv1a64\":\"%016llx\"}", (long long)d->files[i].bytes,
            (unsigned long long)d->files[i].digest);
  }
  fputc(']', f);
}

/* manifest.json: what produced this run (model, source digest, compiler,
 * target, flags, seed, effective hyper-parameters, data digests). */
static int write_manifest(Trainer *tr, int argc, char **argv, int64_t resumed_from) {
  const CkModelDesc *m = tr->m;
  const CkTrainDesc *t = tr->t;
  char path[CK_PATH_MAX + 32], *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CkIoErr err;
  int i, rc;
  if (!f) return 1;
  fprintf(f, "{\n  \"model\": ");
  ck_json_string(f, m->name);
  fprintf(f, ",\n  \"exe\": ");
  ck_json_string(f, m->exe);
  fprintf(f, ",\n  \"source\": ");
  ck_json_string(f, m->source);
  fprintf(f, ",\n  \"source_digest\": ");
  ck_json_string(f, m->source_digest);
  fprintf(f, ",\n  \"ckc_version\": ");
  ck_json_string(f, m->ckc_version);
  fprintf(f, ",\n  \"target\": ");
  ck_json_string(f, m->target);
  fprintf(f, ",\n  \"ckc_flags\": ");
  ck_json_string(f, m->flags);
  fprintf(f, ",\n  \"command\": [");
  for (i = 0; i < argc; i++) {
    if (i) fputc(',', f);
    ck_json_string(f, argv[i]);
  }
  fprintf(f, "],\n  \"seed\": %lld,\n  \"steps\": %lld,\n", (long long)tr->o.seed, (long long)tr->o.steps);
  fprintf(f, "  \"optimizer\": {\"kind\": \"%s\", \"lr\": %.17g, \"momentum\": %.17g, \"dampening\": %.17g, "
             "\"nesterov\": %s, \"beta1\": %.17g, \"beta2\": %.17g, \"eps\": %.17g, \"weight_decay\": %.17g, "
             "\"clip\": %.17g, \"accum\": %lld},\n",
          optim_name(t->optim), tr->o.lr, t->momentum, t->dampening, t->nesterov ? "true" : "false", t->beta1,
          t->beta2, t->eps, t->weight_decay, t->clip, (long long)tr->accum);
  fprintf(f, "  \"schedule\": {\"kind\": \"%s\", \"warmup\": %lld, \"min_lr\": %.17g, \"step_size\": %lld, "
             "\"gamma\": %.17g},\n",
          sched_name(t->sched), (long long)t->warmup, t->min_lr, (long long)t->step_size, t->gamma);
  fprintf(f, "  \"checkpoint_every\": %lld,\n  \"eval_every\": %lld,\n", (long long)tr->o.ckpt_every,
          (long long)tr->o.eval_every);
  fprintf(f, "  \"data\": ");
  manifest_files(f, &tr->data);
  fprintf(f, ",\n  \"eval_data\": ");
  if (tr->has_eval) manifest_files(f, &tr->ev);
  else fprintf(f, "[]");
  fprintf(f, ",\n  \"initial_weights\": ");
  if (tr->o.weights) ck_json_string(f, tr->o.weights);
  else fprintf(f, "null");
  if (resumed_from >= 0) fprintf(f, ",\n  \"resumed_from_step\": %lld", (long long)resumed_from);
  fprintf(f, "\n}\n");
  fclose(f);
  snprintf(path, sizeof path, "%s/manifest.json", tr->dir);
  rc = ck_run_write_file(path, text, len, &err);
  free(text);
  if (rc) fprintf(stderr, "%s: %s\n", m->exe, err.msg);
  return rc;
}

static int parse_train_opts(const CkModelDesc *m, int argc, char **argv, TrainOpts *o) {
  const CkTrainDesc *t = m->train;
  int i;
  memset(o, 0, sizeof *o);
  o->steps = t->steps;
  o->seed = t->seed;
  o->lr = t->lr;
  o->ckpt_every = t->checkpoint_every;
  o->eval_every = t->eval_every;
  for (i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--resume") == 0) o->resume = 1;
    else if (strcmp(a, "--quiet") == 0) o->quiet = 1;
    else if (!v) return usage(m, "train: unknown or incomplete option");
    else if (strcmp(a, "--weights") == 0) o->weights = v, i++;
    else if (strcmp(a, "--run-dir") == 0) o->run_dir = v, i++;
    else if (strcmp(a, "--data") == 0) o->data = v, i++;
    else if (strcmp(a, "--eval-data") == 0) o->eval_data = v, i++;
    else if (strcmp(a, "--steps") == 0) {
      if (parse_i64(v, 1, &o->steps)) return usage(m, "train: --steps must be a positive integer");
      i++;
    } else if (strcmp(a, "--seed") == 0) {
      if (parse_i64(v, 0, &o->seed)) return usage(m, "train: --seed must be a non-negative integer");
      i++;
    } else if (strcmp(a, "--checkpoint-every") == 0) {
      if (parse_i64(v, 0, &o->ckpt_every)) return usage(m, "train: --checkpoint-every must be an integer >= 0");
      i++;
    } else if (strcmp(a, "--eval-every") == 0) {
      if (parse_i64(v, 0, &o->eval_every)) return usage(m, "train: --eval-every must be an integer >= 0");
      i++;
    } else if (strcmp(a, "--lr") == 0) {
      if (parse_f64(v, &o->lr)) return usage(m, "train: --lr must be a finite number >= 0");
      i++;
    } else
      return usage(m, "train: unknown or incomplete option");
  }
  if (o->steps < 1) return usage(m, "train: the number of steps must be positive (--steps N)");
  return 0;
}

static void trainer_free(Trainer *tr) {
  if (tr->metrics) fclose(tr->metrics);
  ck_data_free(&tr->data);
  if (tr->has_eval) ck_data_free(&tr->ev);
  free(tr->params);
  free(tr->grads);
  free(tr->mom[0]);
  free(tr->mom[1]);
  free(tr->arena);
  free(tr->x);
  free(tr->y);
  free(tr->logits);
}

/* Sets up state: data, weights (file, seed or checkpoint), run directory. */
static int trainer_setup(Trainer *tr, int argc, char **argv, int64_t *start) {
  const CkModelDesc *m = tr->m;
  const CkTrainDesc *t = tr->t;
  CkIoErr err;
  size_t pbytes = (size_t)m->params_floats * sizeof(float);
  int64_t resumed = -1;
  const char *crash = getenv("CK_TEST_CRASH_IN_CHECKPOINT");
  tr->crash_at = crash ? atoi(crash) : 0;
  tr->accum = t->accum > 0 ? t->accum : 1;
  tr->nmom = t->optim == CK_OPTIM_SGD ? (t->momentum != 0 ? 1 : 0) : 2;
  if (tr->o.run_dir) snprintf(tr->dir, sizeof tr->dir, "%s", tr->o.run_dir);
  else snprintf(tr->dir, sizeof tr->dir, "runs/%s-%lld", m->exe, (long long)tr->o.seed);
  snprintf(tr->ckdir, sizeof tr->ckdir, "%s/checkpoints", tr->dir);
  snprintf(tr->metrics_path, sizeof tr->metrics_path, "%s/metrics.jsonl", tr->dir);
  snprintf(tr->svg_path, sizeof tr->svg_path, "%s/loss.svg", tr->dir);
  if (ck_data_open(&tr->data, &t->data, tr->o.data, CK_DATA_ROLE_TRAIN, (uint64_t)tr->o.seed, &err)) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    return 1;
  }
  if (open_eval(m, tr->o.eval_data, tr->o.data, (uint64_t)tr->o.seed, &tr->data, &tr->ev, &tr->has_eval))
    return 1;
  tr->params = xmalloc(m, pbytes);
  tr->grads = xcalloc(m, pbytes);
  if (tr->nmom >= 1) tr->mom[0] = xcalloc(m, pbytes);
  if (tr->nmom >= 2) tr->mom[1] = xcalloc(m, pbytes);
  tr->arena = xmalloc(m, (size_t)(t->train_arena_bytes > t->loss_arena_bytes ? t->train_arena_bytes
                                                                                : t->loss_arena_bytes));
  tr->x = xmalloc(m, (size_t)t->data.x.numel * ck_data_elsize(t->data.x.dtype));
  tr->y = xmalloc(m, (size_t)t->data.y.numel * ck_data_elsize(t->data.y.dtype));
  tr->logits = t->has_logits ? xmalloc(m, (size_t)t->logits.numel * sizeof(float)) : NULL;
  if (tr->o.weights) {
    if (load_weights(m, tr->o.weights, tr->params)) return 1;
  } else {
    init_params(m, (uint64_t)tr->o.seed, tr->params);
  }
  if (ck_run_mkdirs(tr->dir, &err)) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    return 1;
  }
  *start = 0;
  if (tr->o.resume) {
    CkCkpt c;
    char path[CK_PATH_MAX + 48];
    int64_t step;
    ckpt_state(tr, &c, 0);
    if (ck_ckpt_find_newest(tr->ckdir, &c, path, sizeof path, &step, warn_ckpt, (void *)m->exe)) {
      if (ck_ckpt_read(path, &c, &err)) {
        fprintf(stderr, "%s: %s\n", m->exe, err.msg);
        return 1;
      }
      if (c.seed != (uint64_t)tr->o.seed) {
        fprintf(stderr, "%s: %s: written with seed %llu, this run has seed %lld (pass --seed %llu)\n", m->exe, path,
                (unsigned long long)c.seed, (long long)tr->o.seed, (unsigned long long)c.seed);
        return 1;
      }
      if (ck_data_set_cursor(&tr->data, &c.cursor, &err)) {
        fprintf(stderr, "%s: %s: %s\n", m->exe, path, err.msg);
        return 1;
      }
      *start = resumed = c.step;
      snprintf(tr->last_ckpt, sizeof tr->last_ckpt, "%s", path);
      if (!tr->o.quiet) printf("resuming from %s (step %lld)\n", path, (long long)c.step);
    } else if (!tr->o.quiet) {
      printf("no valid checkpoint in %s: starting at step 0\n", tr->ckdir);
    }
  } else if (has_checkpoints(tr->ckdir)) {
    fprintf(stderr,
            "%s: %s already holds checkpoints: pass --resume to continue that run, or choose another --run-dir\n",
            m->exe, tr->ckdir);
    return 1;
  }
  if (ck_run_metrics_truncate(tr->metrics_path, *start > 0 ? *start : -1, &err)) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    return 1;
  }
  tr->metrics = ck_run_metrics_open(tr->metrics_path, &err);
  if (!tr->metrics) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    return 1;
  }
  return write_manifest(tr, argc, argv, resumed);
}

/* One optimizer step: accumulate gradients over the window, average, check
 * the loss, clip by global norm, update every trainable parameter. With the
 * target's CkOptimOps (x86) the averaging, clipping and update are one fused
 * pass over the pool (same float results); without, the reference kernels
 * run param by param. */
static int train_one(Trainer *tr, int64_t step, double *loss_out, double *lr_out, double *gnorm_out) {
  const CkModelDesc *m = tr->m;
  const CkTrainDesc *t = tr->t;
  const CkOptimOps *ops = t->optim_ops;
  double lsum = 0, sq = 0, gnorm, lr;
  float gscale = tr->accum > 1 ? (float)(1.0 / (double)tr->accum) : 1.0f, coef;
  int64_t a;
  int i;
  memset(tr->grads, 0, (size_t)m->params_floats * sizeof(float));
  for (a = 0; a < tr->accum; a++) {
    float l = 0;
    int st;
    ck_data_next(&tr->data, tr->x, tr->y);
    st = call_train_step(m, tr->params, tr->grads, tr->arena, tr->x, tr->y, &l);
    if (st != 0) {
      fprintf(stderr, "%s: step %lld: train_step failed: %s (code %d)\n", m->exe, (long long)step,
              ck_model_error_text(st), st);
      return 1;
    }
    lsum += l;
  }
  *loss_out = lsum / (double)tr->accum;
  if (!isfinite(*loss_out)) {
    fprintf(stderr, "%s: step %lld: the loss is %s; stopping (last good checkpoint: %s)\n", m->exe, (long long)step,
            isnan(*loss_out) ? "NaN" : "infinite", tr->last_ckpt[0] ? tr->last_ckpt : "none");
    return 2;
  }
  if (ops) /* the target's fused step: g is scaled on the fly, never rewritten */
    sq = ops->grad_sq_norm(m->ctx, m->params, m->nparams, tr->grads, gscale);
  else
    for (i = 0; i < m->nparams; i++) {
      const CkParamDesc *p = &m->params[i];
      if (!p->trainable) continue;
      if (tr->accum > 1) ck_scale_f32(tr->grads + p->offset, p->numel, gscale);
      sq += ck_grad_sq_norm_f32(tr->grads + p->offset, p->numel);
    }
  gnorm = sqrt(sq);
  *gnorm_out = gnorm;
  if (!isfinite(gnorm)) {
    fprintf(stderr, "%s: step %lld: the gradient norm is %s; stopping (last good checkpoint: %s)\n", m->exe,
            (long long)step, isnan(gnorm) ? "NaN" : "infinite", tr->last_ckpt[0] ? tr->last_ckpt : "none");
    return 2;
  }
  coef = t->clip > 0 ? (float)ck_clip_coef(gnorm, t->clip) : 1.0f;
  lr = sched_lr(t, tr->o.lr, step - 1, tr->o.steps);
  *lr_out = lr;
  if (ops) {
    CkOptimStep s;
    memset(&s, 0, sizeof s);
    s.optim = t->optim;
    s.lr = lr;
    s.momentum = t->momentum;
    s.dampening = t->dampening;
    s.beta1 = t->beta1;
    s.beta2 = t->beta2;
    s.eps = t->eps;
    s.weight_decay = t->weight_decay;
    s.nesterov = t->nesterov;
    s.first_step = step == 1;
    s.t = step;
    s.gscale = gscale;
    s.coef = coef;
    ops->update(m->ctx, m->params, m->nparams, tr->params, tr->grads, tr->mom[0], tr->mom[1], &s);
    return 0;
  }
  if (t->clip > 0)
    for (i = 0; i < m->nparams; i++)
      if (m->params[i].trainable) ck_scale_f32(tr->grads + m->params[i].offset, m->params[i].numel, coef);
  for (i = 0; i < m->nparams; i++) {
    const CkParamDesc *p = &m->params[i];
    double wd = p->decay ? t->weight_decay : 0;
    float *pp = tr->params + p->offset, *g = tr->grads + p->offset;
    if (!p->trainable) continue;
    if (t->optim == CK_OPTIM_SGD)
      ck_sgd_update_f32(pp, g, tr->nmom ? tr->mom[0] + p->offset : NULL, p->numel, lr, t->momentum, t->dampening,
                        wd, t->nesterov, step == 1);
    else
      ck_adam_update_f32(pp, g, tr->mom[0] + p->offset, tr->mom[1] + p->offset, p->numel, lr, t->beta1, t->beta2,
                         t->eps, wd, step, t->optim == CK_OPTIM_ADAMW);
  }
  return 0;
}

static int cmd_train(const CkModelDesc *m, int argc, char **argv) {
  Trainer tr;
  CkProgress prog;
  CkIoErr err;
  int64_t start = 0, step;
  int rc = 1;
  double t0, tprev;
  const char *unit;
  double per_step;
  char rec[512], wpath[CK_PATH_MAX + 32];
  if (!m->train) return usage(m, "train: this model has no train block");
  memset(&tr, 0, sizeof tr);
  tr.m = m;
  tr.t = m->train;
  if (parse_train_opts(m, argc, argv, &tr.o)) return 2;
  if (trainer_setup(&tr, argc + 2, argv - 2, &start)) goto done;
  unit = tr.t->data.kind == CK_DATA_TOKENS ? "tokens" : "samples";
  per_step = (double)tr.data.batch * (double)tr.accum * (tr.t->data.kind == CK_DATA_TOKENS ? (double)tr.data.seq : 1);
  ck_progress_init(&prog, tr.o.quiet ? NULL : stdout, tr.t->log_every > 0 ? tr.t->log_every : 10);
  t0 = tprev = now_s();
  for (step = start + 1; step <= tr.o.steps; step++) {
    double loss, lr, gnorm, t1, rate;
    int st = train_one(&tr, step, &loss, &lr, &gnorm);
    if (st) {
      ck_progress_break(&prog);
      goto done;
    }
    t1 = now_s();
    rate = t1 > tprev ? per_step / (t1 - tprev) : 0;
    tprev = t1;
    snprintf(rec, sizeof rec,
             "{\"step\":%lld,\"loss\":%.9g,\"lr\":%.17g,\"grad_norm\":%.17g,\"%s_per_s\":%.1f,\"time_s\":%.3f}",
             (long long)step, loss, lr, gnorm, unit, rate, t1 - t0);
    if (ck_run_metrics_append(tr.metrics, rec)) {
      fprintf(stderr, "%s: %s: write failed\n", m->exe, tr.metrics_path);
      goto done;
    }
    ck_progress_step(&prog, step, tr.o.steps, loss, lr, gnorm, rate, unit[0] == 't' ? "tok" : "samples",
                     (t1 - t0) / (double)(step - start) * (double)(tr.o.steps - step));
    if (tr.has_eval && tr.o.eval_every > 0 && (step % tr.o.eval_every == 0 || step == tr.o.steps)) {
      EvalResult r;
      if (run_eval(m, tr.params, tr.arena, &tr.ev, tr.x, tr.y, tr.logits, eval_limit(tr.t), &r)) goto done;
      if (r.have_accuracy)
        snprintf(rec, sizeof rec, "{\"step\":%lld,\"eval_loss\":%.17g,\"eval_accuracy\":%.17g}", (long long)step,
                 r.loss, r.accuracy);
      else
        snprintf(rec, sizeof rec, "{\"step\":%lld,\"eval_loss\":%.17g}", (long long)step, r.loss);
      if (ck_run_metrics_append(tr.metrics, rec)) goto done;
      if (!tr.o.quiet) {
        ck_progress_break(&prog);
        printf("step %lld: eval loss %.6f", (long long)step, r.loss);
        if (r.have_accuracy) printf(", accuracy %.4f", r.accuracy);
        printf("\n");
      }
    }
    if ((tr.o.ckpt_every > 0 && step % tr.o.ckpt_every == 0) || step == tr.o.steps)
      if (write_checkpoint(&tr, step)) goto done;
  }
  ck_progress_break(&prog);
  if (start >= tr.o.steps && !tr.o.quiet)
    printf("the checkpoint is at step %lld, --steps is %lld: nothing to train\n", (long long)start,
           (long long)tr.o.steps);
  snprintf(wpath, sizeof wpath, "%s/weights.safetensors", tr.dir);
  if (save_weights(m, wpath, tr.params)) goto done;
  if (ck_run_write_svg(tr.metrics_path, tr.svg_path, m->name, &err) != CK_IO_OK) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    goto done;
  }
  if (!tr.o.quiet) printf("done: %s (%.1f s)\n", wpath, now_s() - t0);
  rc = 0;
done:
  trainer_free(&tr);
  return rc;
}

/* ---- grad ---------------------------------------------------------------------------------- */

/* One train_step on a given batch; writes "loss" and every trainable
 * parameter's gradient under its name (parity tests against PyTorch). */
static int cmd_grad(const CkModelDesc *m, int argc, char **argv) {
  const CkTrainDesc *t = m->train;
  const char *wpath = NULL, *xp = NULL, *yp = NULL, *outp = NULL;
  float *params = NULL, *grads = NULL, loss = 0;
  void *arena = NULL, *x = NULL, *y = NULL;
  CkTensorSpec *specs = NULL;
  CkIoErr err;
  int i, n = 0, rc = 1, st;
  if (!t) return usage(m, "grad: this model has no train block");
  for (i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) wpath = argv[++i];
    else if (strcmp(argv[i], "--x") == 0 && i + 1 < argc) xp = argv[++i];
    else if (strcmp(argv[i], "--y") == 0 && i + 1 < argc) yp = argv[++i];
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) outp = argv[++i];
    else return usage(m, "grad: unknown or incomplete option");
  }
  if (!wpath || !xp || !yp || !outp) return usage(m, "grad needs --weights W, --x X.npy, --y Y.npy and --out G");
  params = xmalloc(m, (size_t)m->params_floats * sizeof(float));
  grads = xcalloc(m, (size_t)m->params_floats * sizeof(float));
  arena = xmalloc(m, (size_t)t->train_arena_bytes);
  x = xmalloc(m, (size_t)t->data.x.numel * ck_data_elsize(t->data.x.dtype));
  y = xmalloc(m, (size_t)t->data.y.numel * ck_data_elsize(t->data.y.dtype));
  if (load_weights(m, wpath, params)) goto done;
  if (ck_npy_read(xp, t->data.x.dtype, t->data.x.rank, t->data.x.dims, x, &err) ||
      ck_npy_read(yp, t->data.y.dtype, t->data.y.rank, t->data.y.dims, y, &err)) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    goto done;
  }
  st = call_train_step(m, params, grads, arena, x, y, &loss);
  if (st) {
    fprintf(stderr, "%s: train_step failed: %s (code %d)\n", m->exe, ck_model_error_text(st), st);
    goto done;
  }
  specs = xcalloc(m, (size_t)(m->nparams + 1) * sizeof *specs);
  specs[n].name = "loss";
  specs[n].dtype = CK_IO_F32;
  specs[n].rank = 0;
  specs[n].data = &loss;
  n++;
  for (i = 0; i < m->nparams; i++) {
    const CkParamDesc *p = &m->params[i];
    int d;
    if (!p->trainable) continue;
    specs[n].name = p->name;
    specs[n].dtype = CK_IO_F32;
    specs[n].rank = p->rank;
    for (d = 0; d < 8; d++) specs[n].dims[d] = p->dims[d];
    specs[n].data = grads + p->offset;
    n++;
  }
  if (ck_safetensors_write(outp, specs, n, &err)) {
    fprintf(stderr, "%s: %s\n", m->exe, err.msg);
    goto done;
  }
  rc = 0;
done:
  free(specs);
  free(params);
  free(grads);
  free(arena);
  free(x);
  free(y);
  return rc;
}

/* ---- sample -------------------------------------------------------------------------------- */

/* Next token from the logits row: argmax at temperature 0, otherwise a draw
 * from softmax(logits / temperature) restricted to the top_k largest (ties
 * kept by lower index), weights summed in double in index order. `sorted` is
 * V floats of scratch. */
static int cmp_float_desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

static int32_t pick_token(const float *row, int64_t V, double temp, int64_t top_k, CkRng *rng, double *w,
                          float *sorted) {
  int64_t j, best = 0, equal_left = V;
  double mx, sum = 0, u, acc = 0;
  float thr = 0;
  int limit = top_k > 0 && top_k < V;
  for (j = 1; j < V; j++)
    if (row[j] > row[best]) best = j;
  if (temp <= 0) return (int32_t)best;
  if (limit) {
    int64_t greater = 0;
    memcpy(sorted, row, (size_t)V * sizeof(float));
    qsort(sorted, (size_t)V, sizeof(float), cmp_float_desc);
    thr = sorted[top_k - 1];
    for (j = 0; j < V; j++) greater += row[j] > thr;
    equal_left = top_k - greater;
  }
  mx = row[best];
  for (j = 0; j < V; j++) {
    int keep = 1;
    if (limit) {
      keep = row[j] > thr;
      if (!keep && row[j] == thr && equal_left > 0) {
        keep = 1;
        equal_left--;
      }
    }
    w[j] = keep ? exp(((double)row[j] - mx) / temp) : 0;
    sum += w[j];
  }
  u = (double)ck_rng_uniform(rng) * sum;
  for (j = 0; j < V; j++) {
    acc += w[j];
    if (u < acc && w[j] > 0) return (int32_t)j;
  }
  return (int32_t)best;
}

static int cmd_sample(const CkModelDesc *m, int argc, char **argv) {
  const char *wpath = NULL, *prompt = NULL;
  int64_t ntok = 200, top_k = 0, seed = m->train ? m->train->seed : 1337, B, T, V, len, g;
  double temp = 1.0, *w = NULL;
  float *params = NULL, *out = NULL, *sorted = NULL, *cache = NULL, *dlogits = NULL;
  void *arena = NULL, *darena = NULL;
  int32_t *idx = NULL, *ctx = NULL, *dtok = NULL;
  const void *ins[1];
  CkRng rng;
  int rc = 1, st, i, use_cache = m->decode != NULL;
  int64_t cached = 0; /* positions 0..cached-1 of ctx are in the K/V cache */
  for (i = 0; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage(m, "sample: unknown or incomplete option");
    if (strcmp(a, "--weights") == 0) wpath = v;
    else if (strcmp(a, "--prompt") == 0) prompt = v;
    else if (strcmp(a, "--tokens") == 0) {
      if (parse_i64(v, 0, &ntok)) return usage(m, "sample: --tokens must be a non-negative integer");
    } else if (strcmp(a, "--top-k") == 0) {
      if (parse_i64(v, 0, &top_k)) return usage(m, "sample: --top-k must be a non-negative integer");
    } else if (strcmp(a, "--seed") == 0) {
      if (parse_i64(v, 0, &seed)) return usage(m, "sample: --seed must be a non-negative integer");
    } else if (strcmp(a, "--temperature") == 0) {
      if (parse_f64(v, &temp)) return usage(m, "sample: --temperature must be a finite number >= 0");
    } else if (strcmp(a, "--kv-cache") == 0) {
      if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) return usage(m, "sample: --kv-cache must be on or off");
      use_cache = m->decode != NULL && strcmp(v, "on") == 0;
    } else
      return usage(m, "sample: unknown or incomplete option");
  }
  if (!wpath) return usage(m, "sample needs --weights FILE");
  if (m->ninputs != 1 || m->inputs[0].dtype != CK_IO_I32 || m->inputs[0].rank != 2 || m->output.rank != 3 ||
      m->output.dtype != CK_IO_F32 || m->output.dims[0] != m->inputs[0].dims[0] ||
      m->output.dims[1] != m->inputs[0].dims[1]) {
    fprintf(stderr, "%s: sample needs a language model: forward(i32[B, T]) -> f32[B, T, V]\n", m->exe);
    return 1;
  }
  B = m->inputs[0].dims[0];
  T = m->inputs[0].dims[1];
  V = m->output.dims[2];
  if (!prompt) prompt = "\n";
  len = (int64_t)strlen(prompt);
  params = xmalloc(m, (size_t)m->params_floats * sizeof(float));
  arena = xmalloc(m, (size_t)m->forward_arena_bytes);
  out = xmalloc(m, (size_t)m->output.numel * sizeof(float));
  idx = xcalloc(m, (size_t)(B * T) * sizeof(int32_t));
  ctx = xmalloc(m, (size_t)(len + ntok + 1) * sizeof(int32_t));
  w = xmalloc(m, (size_t)V * sizeof(double));
  sorted = xmalloc(m, (size_t)V * sizeof(float));
  if (use_cache) {
    cache = xmalloc(m, (size_t)m->cache_bytes);
    darena = xmalloc(m, (size_t)m->decode_arena_bytes);
    dlogits = xmalloc(m, (size_t)(B * V) * sizeof(float));
    dtok = xcalloc(m, (size_t)B * sizeof(int32_t));
  }
  if (load_weights(m, wpath, params)) goto done;
  for (g = 0; g < len; g++) {
    ctx[g] = (unsigned char)prompt[g];
    if (ctx[g] >= V) {
      fprintf(stderr, "%s: --prompt: byte %ld at position %lld is outside the vocabulary [0, %lld)\n", m->exe,
              (long)ctx[g], (long long)g, (long long)V);
      goto done;
    }
  }
  if (len == 0) ctx[len++] = 0;
  ck_rng_seed_stream(&rng, (uint64_t)seed, "sample");
  fwrite(prompt, 1, strlen(prompt), stdout);
  for (g = 0; g < ntok; g++) {
    int64_t n = len < T ? len : T, first = len - n;
    int32_t nt;
    if (use_cache && len <= m->decode_max_pos) {
      /* the context still starts at position 0: decode the positions not
       * yet in the K/V cache (the prompt, then each new token) one by one;
       * the last one's logits are forward's at position len - 1 */
      for (; cached < len; cached++) {
        dtok[0] = ctx[cached];
        st = m->decode(m->ctx, params, cache, darena, dtok, cached, dlogits);
        if (st) {
          fprintf(stderr, "%s: decode failed: %s (code %d)\n", m->exe, ck_model_error_text(st), st);
          goto done;
        }
      }
      nt = pick_token(dlogits, V, temp, top_k, &rng, w, sorted);
      ctx[len++] = nt;
      if (nt < 256) putchar(nt);
      else printf("<%ld>", (long)nt);
      continue;
    }
    /* no cache, or a full window that slides: every position moves, so the
     * whole window goes through forward */
    memset(idx, 0, (size_t)(B * T) * sizeof(int32_t));
    memcpy(idx, ctx + first, (size_t)n * sizeof(int32_t));
    ins[0] = idx;
    st = call_forward(m, params, arena, ins, out);
    if (st) {
      fprintf(stderr, "%s: forward failed: %s (code %d)\n", m->exe, ck_model_error_text(st), st);
      goto done;
    }
    nt = pick_token(out + (n - 1) * V, V, temp, top_k, &rng, w, sorted);
    ctx[len++] = nt;
    if (nt < 256) putchar(nt);
    else printf("<%ld>", (long)nt);
  }
  putchar('\n');
  rc = 0;
done:
  fflush(stdout);
  free(params);
  free(arena);
  free(out);
  free(idx);
  free(ctx);
  free(w);
  free(sorted);
  free(cache);
  free(darena);
  free(dlogits);
  free(dtok);
  return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static int dispatch(int argc, char **argv, const CkModelDesc *m);

/* `--threads N` may follow any sub-command: it is taken out of argv here
 * (so no sub-command sees it) and sizes the target's execution context,
 * created once for the whole run. Without it the context reads CK_THREADS.
 * Targets without a context (c99) accept and ignore it. */
int ck_main(int argc, char **argv, const CkModelDesc *m) {
  CkModelDesc run = *m;
  char **av = xcalloc(m, (size_t)(argc + 1) * sizeof *av);
  int i, n = 0, rc;
  int64_t threads = 0;
  for (i = 0; i < argc; i++) {
    if (i >= 2 && strcmp(argv[i], "--threads") == 0) {
      if (i + 1 >= argc || parse_i64(argv[i + 1], 1, &threads) || threads > 256) {
        free(av);
        return usage(m, "--threads must be an integer in [1, 256]");
      }
      i++;
      continue;
    }
    av[n++] = argv[i];
  }
  av[n] = NULL;
  run.ctx = m->ctx_create ? m->ctx_create((int)threads) : NULL;
  rc = dispatch(n, av, &run);
  if (m->ctx_destroy) m->ctx_destroy(run.ctx);
  free(av);
  return rc;
}

static int dispatch(int argc, char **argv, const CkModelDesc *m) {
  if (argc < 2) return usage(m, NULL);
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(m, NULL);
    return 0;
  }
  if (strcmp(argv[1], "info") == 0) {
    if (argc != 2) return usage(m, "info takes no arguments");
    return cmd_info(m);
  }
  if (strcmp(argv[1], "init") == 0) return cmd_init(m, argc - 2, argv + 2);
  if (strcmp(argv[1], "infer") == 0) return cmd_infer(m, argc - 2, argv + 2);
  if (strcmp(argv[1], "train") == 0) return cmd_train(m, argc - 2, argv + 2);
  if (strcmp(argv[1], "eval") == 0) return cmd_eval(m, argc - 2, argv + 2);
  if (strcmp(argv[1], "sample") == 0) return cmd_sample(m, argc - 2, argv + 2);
  if (strcmp(argv[1], "grad") == 0) return cmd_grad(m, argc - 2, argv + 2);
  return usage(m, "unknown command");
}
