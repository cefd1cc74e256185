/* emit/main_c.c - prints main.c of a hosted project: the model's descriptor
 * tables (rt-min/ck_model.h) and `return ck_main(argc, argv, &desc);`.
 * Every sub-command (info, init, infer, train, eval, sample, grad), file
 * format, the training loop, optimizers and checkpoints live in rt-min and
 * are the same text for every model; main.c only says what this model is:
 * its parameters, its inputs and output, its entry functions and, with a
 * train block, the recipe (data, optimizer, schedule, cadences). */
#include <stdio.h>
#include <string.h>

#include "emit/emit_impl.h"

static const char *io_dtype(CkDType t) {
  switch (t) {
  case CK_DT_F32: return "CK_IO_F32";
  case CK_DT_F64: return "CK_IO_F64";
  case CK_DT_I32: return "CK_IO_I32";
  case CK_DT_U8: return "CK_IO_U8";
  default: return "CK_IO_BOOL";
  }
}

/* A C string literal: quotes, backslashes and anything outside printable
 * ASCII as octal escapes (three digits, so a following digit is safe). */
static void emit_cstring(CkcBuf *b, const char *s) {
  if (!s) {
    ckc_buf_puts(b, "NULL");
    return;
  }
  ckc_buf_putc(b, '"');
  for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
    if (*q == '"' || *q == '\\')
      ckc_buf_printf(b, "\\%c", *q);
    else if (*q < 0x20 || *q >= 0x7f || *q == '?')
      ckc_buf_printf(b, "\\%03o", *q);
    else
      ckc_buf_putc(b, (char)*q);
  }
  ckc_buf_putc(b, '"');
}

static void emit_dims(CkcBuf *b, const CkShape *s) {
  ckc_buf_puts(b, "{");
  for (int d = 0; d < s->rank; d++) ckc_buf_printf(b, "%s%lld", d ? ", " : "", (long long)s->dims[d]);
  if (s->rank == 0) ckc_buf_puts(b, "0");
  ckc_buf_puts(b, "}");
}

/* {name, dtype, rank, dims, numel, index_rows} */
static void emit_tensor_desc(CkcBuf *b, const char *name, CkDType dt, const CkShape *s, int64_t index_rows) {
  ckc_buf_puts(b, "{");
  emit_cstring(b, name);
  ckc_buf_printf(b, ", %s, %d, ", io_dtype(dt), s->rank);
  emit_dims(b, s);
  ckc_buf_printf(b, ", %lld, %lld}", (long long)ck_shape_numel_unchecked(s), (long long)index_rows);
}

/* Doubles print with 17 significant digits (exact round trip). */
static const char *dbl(CkcArena *a, double v) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%.17g", v);
  if (!strpbrk(tmp, ".eni")) strcat(tmp, ".0");
  return ckc_arena_strdup(a, tmp);
}

/* CK_INIT_* and its (a, b) from the source initialiser (emit_param_init's
 * three kinds; zeros and ones keep their own names for `info`). */
static void param_desc_init(const LowerParam *x, const char **kind, double *a, double *bb) {
  const char *iname;
  int k;
  emit_param_init(x->node, &iname, &k, a, bb);
  if (k == 0)
    *kind = "CK_INIT_NORMAL";
  else if (k == 1)
    *kind = "CK_INIT_UNIFORM";
  else if (strcmp(iname, "zeros") == 0 || (strcmp(iname, "constant") == 0 && *a == 0.0))
    *kind = "CK_INIT_ZEROS";
  else if (strcmp(iname, "ones") == 0)
    *kind = "CK_INIT_ONES";
  else
    *kind = "CK_INIT_CONSTANT";
}

static void emit_params(const LowerModule *lm, CkcBuf *b) {
  const LowerLayout *L = lm->layout;
  int n = L->params.len;
  ckc_buf_puts(b,
               "/* The parameters, in the params blob's order: name, rank, dims, scalars,\n"
               " * offset (floats), initialiser (a, b), trainable, weight decay. */\n");
  ckc_buf_printf(b, "static const CkParamDesc params[%d] = {\n", n > 0 ? n : 1);
  for (int i = 0; i < n; i++) {
    const LowerParam *x = &L->params.items[i];
    const char *kind;
    double pa, pb;
    param_desc_init(x, &kind, &pa, &pb);
    ckc_buf_puts(b, "    {");
    emit_cstring(b, x->name);
    ckc_buf_printf(b, ", %d, ", x->shape.rank);
    emit_dims(b, &x->shape);
    ckc_buf_printf(b, ", %lld, %lld, %s, ", (long long)x->numel, (long long)(x->offset / 4), kind);
    emit_literal(b, CK_DT_F32, pa);
    ckc_buf_puts(b, ", ");
    emit_literal(b, CK_DT_F32, pb);
    ckc_buf_printf(b, ", %d, %d},\n", x->train_index >= 0, x->train_index >= 0 && x->decay);
  }
  if (n == 0) ckc_buf_puts(b, "    {\"\", 0, {0}, 0, 0, CK_INIT_ZEROS, 0.0f, 0.0f, 0, 0},\n");
  ckc_buf_puts(b, "};\n\n");
}

static void emit_inputs(const LowerModule *lm, CkcBuf *b) {
  const LowerProgram *p = lm->forward;
  int n = p->inputs.len;
  ckc_buf_puts(b,
               "/* The arguments of forward, in order; index_rows > 0 for embedding\n"
               " * indices (valid in [0, index_rows)). */\n");
  ckc_buf_printf(b, "static const CkTensorDesc inputs[%d] = {\n", n > 0 ? n : 1);
  for (int k = 0; k < n; k++) {
    const LowerBuf *x = p->inputs.items[k];
    ckc_buf_puts(b, "    ");
    emit_tensor_desc(b, x->name, x->dtype, &x->shape, x->index_input >= 0 ? x->index_bound : 0);
    ckc_buf_puts(b, ",\n");
  }
  if (n == 0) ckc_buf_puts(b, "    {\"\", CK_IO_F32, 0, {0}, 0, 0},\n");
  ckc_buf_puts(b, "};\n\n");
}

/* CkForwardFn passes the inputs as an array of untyped pointers; the
 * generated forward takes them typed, in order. */
static void emit_forward_entry1(const LowerModule *lm, CkcBuf *b, bool ctx) {
  const LowerProgram *p = lm->forward;
  if (ctx)
    ckc_buf_puts(b, "/* forward on the thread pool (CkModelDesc.forward_ctx). */\n"
                    "static int forward_entry_ctx(void *ctx, const float *params, void *arena, const void *const *in,\n"
                    "                             float *out) {\n");
  else
    ckc_buf_puts(b, "/* forward with the CkForwardFn signature. */\n"
                    "static int forward_entry(const float *params, void *arena, const void *const *in, float *out) {\n");
  if (p->inputs.len == 0) ckc_buf_puts(b, "  (void)in;\n");
  ckc_buf_printf(b, "  return %s_forward(%sparams, (float *)arena", p->prefix,
                 !p->target->pool ? "" : ctx ? "(CkPool *)ctx, " : "NULL, ");
  for (int k = 0; k < p->inputs.len; k++)
    ckc_buf_printf(b, ", (const %s *)in[%d]", ck_dtype_ctype(p->inputs.items[k]->dtype), k);
  if (p->out->dtype == CK_DT_F32)
    ckc_buf_puts(b, ", out);\n}\n\n");
  else
    ckc_buf_printf(b, ", (%s *)(void *)out);\n}\n\n", ck_dtype_ctype(p->out->dtype));
}

/* Targets with a pool (x86) also get the context entries and the pool's
 * create/destroy hooks; the plain entries run on one thread (NULL pool). */
static void emit_forward_entry(const LowerModule *lm, CkcBuf *b) {
  emit_forward_entry1(lm, b, false);
  if (!lm->target->pool) return;
  emit_forward_entry1(lm, b, true);
  ckc_buf_puts(b, "/* The pool, created once by ck_main: --threads N, else CK_THREADS, else 1. */\n"
                  "static void *ctx_create(int threads) { return ck_pool_create(threads); }\n"
                  "static void ctx_destroy(void *ctx) { ck_pool_destroy((CkPool *)ctx); }\n\n");
}

/* The decode entry (passes/decode.c) behind CkModelDesc.decode: the
 * context is the pool on x86 and unused on c99. */
static void emit_decode_entry(const LowerModule *lm, CkcBuf *b) {
  ckc_buf_puts(b, "/* decode with a K/V cache (CkModelDesc.decode). */\n"
                  "static int decode_entry(void *ctx, const float *params, float *cache, void *arena,\n"
                  "                        const int32_t *tokens, int64_t pos, float *logits) {\n");
  if (lm->target->pool)
    ckc_buf_printf(b, "  return %s_decode((CkPool *)ctx, params, cache, (float *)arena, tokens, pos, logits);\n}\n\n",
                   lm->prefix);
  else
    ckc_buf_printf(b, "  (void)ctx;\n  return %s_decode(params, cache, (float *)arena, tokens, pos, logits);\n}\n\n",
                   lm->prefix);
}

/* loss/train_step adapters to CkLossFn/CkTrainStepFn and the ctx variants. */
static void emit_train_entries(const LowerModule *lm, CkcBuf *b) {
  const char *P = lm->prefix;
  for (int ctx = 0; ctx < 2; ctx++) {
    const char *cp = ctx ? "void *ctx, " : "", *sfx = ctx ? "_ctx" : "", *pool = ctx ? "(CkPool *)ctx" : "NULL";
    ckc_buf_printf(b,
                   "static int loss_entry%s(%sconst float *params, void *arena, const void *x, const void *y,\n"
                   "                      float *loss, float *logits) {\n"
                   "  return %s_loss(%s, params, arena, x, y, loss, logits);\n}\n",
                   sfx, cp, P, pool);
    ckc_buf_printf(b,
                   "static int train_step_entry%s(%sconst float *params, float *grads, void *arena, const void *x,\n"
                   "                            const void *y, float *loss) {\n"
                   "  return %s_train_step(%s, params, grads, arena, x, y, loss);\n}\n",
                   sfx, cp, P, pool);
  }
  ckc_buf_puts(b, "\n");
}

static const char *data_kind(IrDataKind k) {
  switch (k) {
  case IR_DATA_TOKENS: return "CK_DATA_TOKENS";
  case IR_DATA_IDX: return "CK_DATA_IDX";
  case IR_DATA_NPY: return "CK_DATA_NPY";
  default: return "CK_DATA_NONE";
  }
}

/* One data source: the file(s) and the batch tensors fed to loss/train_step
 * (named data.x/data.y; index_rows from the loss graph's embeddings). */
static void emit_data_desc(const LowerModule *lm, CkcBuf *b, const char *field, const IrDataSpec *ds) {
  CkcArena *a = lm->module->arena;
  ckc_buf_printf(b, "    .%s =\n        {\n", field);
  ckc_buf_printf(b, "            .kind = %s,\n", data_kind(ds->kind));
  if (ds->kind == IR_DATA_NONE) {
    ckc_buf_puts(b, "        },\n");
    return;
  }
  if (ds->path) {
    ckc_buf_puts(b, "            .path = ");
    emit_cstring(b, ds->path);
    ckc_buf_puts(b, ",\n");
  }
  if (ds->x_path) {
    ckc_buf_puts(b, "            .x_path = ");
    emit_cstring(b, ds->x_path);
    ckc_buf_puts(b, ",\n");
  }
  if (ds->y_path) {
    ckc_buf_puts(b, "            .y_path = ");
    emit_cstring(b, ds->y_path);
    ckc_buf_puts(b, ",\n");
  }
  if (ds->kind == IR_DATA_TOKENS) {
    ckc_buf_printf(b, "            .file_dtype = %s,\n", ds->is_u16 ? "CK_IO_U8" : io_dtype(ds->file_dtype));
    ckc_buf_printf(b, "            .file_u16 = %d,\n", ds->is_u16 ? 1 : 0);
  }
  ckc_buf_printf(b, "            .batch = %lld,\n            .seq = %lld,\n            .vocab = %lld,\n",
                 (long long)ds->batch, (long long)ds->seq, (long long)ds->vocab);
  ckc_buf_printf(b, "            .val_fraction = %s,\n            .scale = %s,\n", dbl(a, ds->val_fraction),
                 dbl(a, ds->scale));
  const LowerProgram *lp = lm->loss;
  int64_t xrows = lp->inputs.len > 0 && lp->inputs.items[0]->index_input >= 0 ? lp->inputs.items[0]->index_bound : 0;
  int64_t yrows = lp->inputs.len > 1 && lp->inputs.items[1]->index_input >= 0 ? lp->inputs.items[1]->index_bound : 0;
  ckc_buf_puts(b, "            .x = ");
  emit_tensor_desc(b, "data.x", ds->x_dtype, &ds->x_shape, xrows);
  ckc_buf_puts(b, ",\n            .y = ");
  emit_tensor_desc(b, "data.y", ds->y_dtype, &ds->y_shape, yrows);
  ckc_buf_puts(b, ",\n        },\n");
}

/* The recipe of the train block, field by field (designated initialisers:
 * a reader sees each name next to its value). */
static void emit_train_desc(const LowerModule *lm, CkcBuf *b) {
  const IrTrainConfig *tc = lm->module->train;
  CkcArena *a = lm->module->arena;
  const char *P = lm->prefix, *U = lm->upper;
  static const char *const losses[] = {"CK_LOSS_CROSS_ENTROPY", "CK_LOSS_MSE", "CK_LOSS_BCE_WITH_LOGITS",
                                       "CK_LOSS_OTHER"};
  static const char *const optims[] = {"CK_OPTIM_SGD", "CK_OPTIM_ADAM", "CK_OPTIM_ADAMW"};
  static const char *const scheds[] = {"CK_SCHED_CONSTANT", "CK_SCHED_LINEAR", "CK_SCHED_COSINE",
                                       "CK_SCHED_STEP"};
  const IrOptimSpec *o = &tc->optim;
  const IrSchedSpec *sc = &tc->sched;
  ckc_buf_puts(b, "/* The train block: data, loss, optimizer, schedule, cadences. */\n"
                  "static const CkTrainDesc train = {\n");
  emit_data_desc(lm, b, "data", &tc->data);
  emit_data_desc(lm, b, "eval_data", &tc->eval_data);
  ckc_buf_printf(b, "    .loss_kind = %s,\n", losses[tc->loss_kind <= IR_LOSS_OTHER ? tc->loss_kind : IR_LOSS_OTHER]);
  ckc_buf_printf(b, "    .optim = %s,\n", optims[o->kind <= IR_OPTIM_ADAMW ? o->kind : 0]);
  ckc_buf_printf(b, "    .lr = %s,\n    .momentum = %s,\n    .dampening = %s,\n", dbl(a, o->lr), dbl(a, o->momentum),
                 dbl(a, o->dampening));
  ckc_buf_printf(b, "    .beta1 = %s,\n    .beta2 = %s,\n    .eps = %s,\n", dbl(a, o->beta1), dbl(a, o->beta2),
                 dbl(a, o->eps));
  ckc_buf_printf(b, "    .weight_decay = %s,\n    .clip = %s,\n    .nesterov = %d,\n    .accum = %lld,\n",
                 dbl(a, o->weight_decay), dbl(a, o->clip), o->nesterov ? 1 : 0,
                 (long long)(o->accum > 0 ? o->accum : 1));
  ckc_buf_printf(b, "    .sched = %s,\n    .warmup = %lld,\n    .step_size = %lld,\n",
                 scheds[sc->kind <= IR_SCHED_STEP ? sc->kind : 0], (long long)sc->warmup, (long long)sc->step_size);
  ckc_buf_printf(b, "    .min_lr = %s,\n    .gamma = %s,\n", dbl(a, sc->min_lr), dbl(a, sc->gamma));
  ckc_buf_printf(b,
                 "    .steps = %lld,\n    .seed = %lld,\n    .checkpoint_every = %lld,\n    .eval_every = %lld,\n"
                 "    .eval_batches = %lld,\n    .log_every = %lld,\n",
                 (long long)tc->steps, (long long)tc->seed, (long long)tc->checkpoint_every,
                 (long long)tc->eval_every, (long long)tc->eval_batches,
                 (long long)(tc->log_every > 0 ? tc->log_every : 1));
  if (lm->target->pool)
    ckc_buf_puts(b, "    .loss = loss_entry,\n    .train_step = train_step_entry,\n");
  else
    ckc_buf_printf(b, "    .loss = %s_loss,\n    .train_step = %s_train_step,\n", P, P);
  ckc_buf_printf(b, "    .loss_arena_bytes = %s_LOSS_ARENA_BYTES,\n    .train_arena_bytes = %s_TRAIN_ARENA_BYTES,\n",
                 U, U);
  const LowerBuf *lg = lm->loss->logits;
  ckc_buf_printf(b, "    .has_logits = %d,\n", lg ? 1 : 0);
  if (lg) {
    ckc_buf_puts(b, "    .logits = ");
    emit_tensor_desc(b, "logits", lg->dtype, &lg->shape, 0);
    ckc_buf_puts(b, ",\n");
  }
  if (lm->target->pool)
    ckc_buf_puts(b, "    .loss_ctx = loss_entry_ctx,\n    .train_step_ctx = train_step_entry_ctx,\n"
                    "    .optim_ops = &ck_x86_optim_ops,\n");
  ckc_buf_puts(b, "};\n\n");
}

void emit_main_c(const LowerModule *lm, const char *digest, CkcBuf *b) {
  const LowerProgram *p = lm->forward;
  const char *P = lm->prefix, *U = lm->upper;
  emit_banner(p, b);
  ckc_buf_printf(b,
                 "/* main.c - model %s: what it is, as tables for the generic driver\n"
                 " * rt-min/ck_main.c, which implements every sub-command:\n"
                 " *   %s info | init | infer%s | grad\n"
                 " * (`%s --help` lists their options). */\n",
                 p->module->model_name, P, lm->loss ? " | train | eval | sample" : "", P);
  ckc_buf_printf(b, "#include <stddef.h>\n#include <stdint.h>\n\n#include \"ck_model.h\"\n%s#include \"%s.h\"\n\n",
                 lm->target->pool && lm->loss ? "#include \"ck_x86_optim.h\"\n" : "", emit_stem(p));
  emit_params(lm, b);
  emit_inputs(lm, b);
  emit_forward_entry(lm, b);
  if (lm->loss && lm->target->pool) emit_train_entries(lm, b);
  if (lm->decode) emit_decode_entry(lm, b);
  if (lm->loss) emit_train_desc(lm, b);
  ckc_buf_puts(b, "static const CkModelDesc desc = {\n    .name = ");
  emit_cstring(b, p->module->model_name);
  ckc_buf_printf(b, ",\n    .exe = \"%s\",\n    .source = ", P);
  emit_cstring(b, emit_source_base(p));
  ckc_buf_printf(b, ",\n    .source_digest = \"%s\",\n    .ckc_version = \"%s\",\n    .target = ", digest,
                 CKC_VERSION_STR);
  emit_cstring(b, p->target->name);
  ckc_buf_puts(b, ",\n    .flags = ");
  emit_cstring(b, p->module->flags ? p->module->flags : "");
  ckc_buf_puts(b, ",\n");
  ckc_buf_printf(b, "    .nparams = %s_NUM_PARAMS,\n    .params = params,\n", U);
  ckc_buf_printf(b, "    .params_floats = %s_PARAMS_BYTES / 4,\n", U);
  ckc_buf_printf(b, "    .ninputs = %s_NUM_INPUTS,\n    .inputs = inputs,\n    .output = ", U);
  emit_tensor_desc(b, "out", p->out->dtype, &p->out->shape, 0);
  ckc_buf_printf(b, ",\n    .forward = forward_entry,\n    .forward_arena_bytes = %s_FORWARD_ARENA_BYTES,\n", U);
  ckc_buf_printf(b, "    .train = %s,\n", lm->loss ? "&train" : "NULL");
  if (lm->target->pool)
    ckc_buf_puts(b, "    .ctx_create = ctx_create,\n    .ctx_destroy = ctx_destroy,\n"
                    "    .forward_ctx = forward_entry_ctx,\n");
  if (lm->decode)
    ckc_buf_printf(b, "    .decode = decode_entry,\n    .decode_arena_bytes = %s_DECODE_ARENA_BYTES,\n"
                      "    .cache_bytes = %s_CACHE_BYTES,\n    .decode_max_pos = %s_DECODE_MAX_POS,\n", U, U, U);
  ckc_buf_puts(b, "};\n\n");
  ckc_buf_puts(b, "int main(int argc, char **argv) { return ck_main(argc, argv, &desc); }\n");
}
