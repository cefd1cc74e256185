/* frontend/train.c - the `train` block: from `key = expr;` items to the
 * IrTrainConfig of ir/train.h (S->ir->train) and the entry graph "loss".
 *
 *   train MLP {
 *     data  = idx(images = "...", labels = "...", batch = B, shape = (784));
 *     loss  = cross_entropy(forward(data.x), data.y);
 *     optim = adam(lr = 1e-3);
 *     steps = 2000;
 *   }
 *
 * Every value but the loss is a constant expression evaluated in the model's
 * scope (top-level and model consts, -D overrides applied). Data sources,
 * optimizers and schedules are calls checked against one table each
 * (TrainCall): argument names, kinds, defaults and which are required, so
 * that unknown names and keywords get "did you mean" suggestions from the
 * same table the checks use. The loss is an expression over `data.x` and
 * `data.y` elaborated like a fn body into its own entry graph, in which the
 * model's fns are callable (CALL nodes with prefix ""): forward(data.x) is
 * type-checked by the ordinary call rules, so a data shape that does not fit
 * the model is the usual argument-type error at data.x.
 *
 * Ids E0550..E0561 (docs/errors.md, "E05xx: training"). One mistake gives
 * one error: a failed data source skips the loss graph rather than piling
 * follow-up errors onto it. */
#include <math.h>
#include <string.h>

#include "frontend/sema_int.h"
#include "ir/train.h"

/* ---- the tables ------------------------------------------------------------------ */

typedef enum TrainArgKind {
  TA_INT,    /* an int constant */
  TA_NUM,    /* an int or float constant, kept as double */
  TA_BOOL,   /* true / false */
  TA_STR,    /* a string (file paths) */
  TA_SHAPE,  /* an int or a tuple of ints: (784), (1, 28, 28), () */
  TA_PAIR,   /* a tuple of two numbers: betas = (0.9, 0.999) */
  TA_TOKDT,  /* u8 | u16 | i32 (a name, or the same as a string) */
  TA_YDT,    /* i32 | f32 */
} TrainArgKind;

typedef struct TrainArg {
  const char *name;
  TrainArgKind kind;
  bool required;
} TrainArg;

enum { TRAIN_MAX_ARGS = 8 };

/* One data source, optimizer or schedule; kind is its Ir*Kind. Arguments can
 * be given by keyword or, in table order, by position (Python's rule). */
typedef struct TrainCall {
  const char *name;
  int kind;
  TrainArg args[TRAIN_MAX_ARGS];
} TrainCall;

static const TrainCall data_sources[] = {
    {"tokens", IR_DATA_TOKENS,
     {{"path", TA_STR, true}, {"batch", TA_INT, true}, {"seq", TA_INT, true}, {"dtype", TA_TOKDT, false},
      {"vocab", TA_INT, false}, {"val", TA_NUM, false}}},
    {"idx", IR_DATA_IDX,
     {{"images", TA_STR, true}, {"labels", TA_STR, true}, {"batch", TA_INT, true},
      {"shape", TA_SHAPE, false}, {"scale", TA_NUM, false}}},
    {"npy", IR_DATA_NPY,
     {{"x", TA_STR, true}, {"y", TA_STR, true}, {"batch", TA_INT, true}, {"shape", TA_SHAPE, true},
      {"y_shape", TA_SHAPE, false}, {"y_dtype", TA_YDT, false}}},
};

static const TrainCall optimizers[] = {
    {"sgd", IR_OPTIM_SGD,
     {{"lr", TA_NUM, true}, {"momentum", TA_NUM, false}, {"dampening", TA_NUM, false},
      {"nesterov", TA_BOOL, false}, {"weight_decay", TA_NUM, false}, {"clip", TA_NUM, false},
      {"accum", TA_INT, false}}},
    {"adam", IR_OPTIM_ADAM,
     {{"lr", TA_NUM, true}, {"betas", TA_PAIR, false}, {"eps", TA_NUM, false},
      {"weight_decay", TA_NUM, false}, {"clip", TA_NUM, false}, {"accum", TA_INT, false}}},
    {"adamw", IR_OPTIM_ADAMW,
     {{"lr", TA_NUM, true}, {"betas", TA_PAIR, false}, {"eps", TA_NUM, false},
      {"weight_decay", TA_NUM, false}, {"clip", TA_NUM, false}, {"accum", TA_INT, false}}},
};

static const TrainCall schedules[] = {
    {"constant", IR_SCHED_CONSTANT, {{"warmup", TA_INT, false}}},
    {"linear", IR_SCHED_LINEAR, {{"warmup", TA_INT, false}, {"min_lr", TA_NUM, false}}},
    {"cosine", IR_SCHED_COSINE, {{"warmup", TA_INT, false}, {"min_lr", TA_NUM, false}}},
    {"step", IR_SCHED_STEP,
     {{"step_size", TA_INT, true}, {"gamma", TA_NUM, false}, {"warmup", TA_INT, false}}},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The keys of a train block, in the order they are checked. */
typedef enum TrainKey {
  TK_DATA, TK_EVAL_DATA, TK_OPTIM, TK_SCHEDULE, TK_STEPS, TK_SEED, TK_CHECKPOINT_EVERY,
  TK_EVAL_EVERY, TK_EVAL_BATCHES, TK_LOG_EVERY, TK_DECAY_EXCLUDE, TK_DECAY_INCLUDE, TK_LOSS,
  TK_COUNT
} TrainKey;

static const char *const key_names[TK_COUNT] = {
    "data",       "eval_data",    "optim",     "schedule",      "steps",         "seed",
    "checkpoint_every", "eval_every", "eval_batches", "log_every", "decay_exclude", "decay_include",
    "loss",
};

/* ---- the context ------------------------------------------------------------------ */

typedef struct TrainCtx {
  Sema *S;
  SemaInst *model;
  SemaScope sc;             /* constants: the model's scope, no graph */
  IrTrainConfig *cfg;
  AstTrainItem *items[TK_COUNT];
} TrainCtx;

/* Arguments of one call bound to its table row. */
typedef struct TrainArgs {
  const TrainCall *spec;
  CkcLoc loc;               /* the whole call */
  bool given[TRAIN_MAX_ARGS];
  SemaVal val[TRAIN_MAX_ARGS];
  CkcLoc at[TRAIN_MAX_ARGS]; /* each value's span */
  AstExpr *expr[TRAIN_MAX_ARGS];
} TrainArgs;

/* Rows end at the first unnamed argument (tables are zero-padded). */
static int nargs_of(const TrainCall *c) {
  int n = 0;
  while (n < TRAIN_MAX_ARGS && c->args[n].name) n++;
  return n;
}

/* The position of a named argument in its row, or -1. */
static int arg_slot(const TrainCall *c, const char *name) {
  for (int i = 0; i < nargs_of(c); i++)
    if (strcmp(c->args[i].name, name) == 0) return i;
  return -1;
}

/* "; did you mean 'x'?" or "". */
static const char *did_you_mean(Sema *S, const char *name, const char *const *cands, int n) {
  const char *best = sema_suggest(name, cands, n);
  return best ? ckc_arena_printf(S->a, "; did you mean '%s'?", best) : "";
}

/* "a, b, c" for messages that list the valid choices. */
static const char *join_names(Sema *S, const char *const *names, int n) {
  CkcBuf b;
  ckc_buf_init(&b, S->a);
  for (int i = 0; i < n; i++) ckc_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
  return ckc_buf_str(&b);
}

/* Numbers are checked as doubles whichever way they were written. */
static double num_of(const SemaVal *v) { return v->kind == SV_FLOAT ? v->f : (double)v->i; }

/* ---- constant values of a given kind ---------------------------------------------- */

/* What a kind is called in "must be ..." messages. */
static const char *kind_desc(TrainArgKind k) {
  switch (k) {
  case TA_INT: return "an integer";
  case TA_NUM: return "a number";
  case TA_BOOL: return "true or false";
  case TA_STR: return "a string";
  case TA_SHAPE: return "an integer or a tuple of integers";
  case TA_PAIR: return "a pair of numbers (a, b)";
  case TA_TOKDT: return "u8, u16 or i32";
  case TA_YDT: return "i32 or f32";
  }
  return "?";
}

/* The two dtype arguments name types that are not all CkDTypes (u16), so
 * they are read as names (or strings) before any evaluation. */
static bool dtype_choice(TrainCtx *T, const char *what, TrainArgKind kind, AstExpr *e, SemaVal *out) {
  const char *name = e->kind == AST_EXPR_NAME ? e->u.name : e->kind == AST_EXPR_STRING ? e->u.str : NULL;
  static const char *const tok[] = {"u8", "u16", "i32"};
  static const char *const ydt[] = {"i32", "f32"};
  const char *const *ok = kind == TA_TOKDT ? tok : ydt;
  int n = kind == TA_TOKDT ? 3 : 2;
  for (int i = 0; name && i < n; i++)
    if (strcmp(name, ok[i]) == 0) {
      *out = sema_poison();
      out->kind = SV_STR;
      out->s = ok[i];
      return true;
    }
  return ckc_error(T->S->d, e->loc, "E0558", "%s must be %s, got %s%s", what, kind_desc(kind),
                   name ? ckc_arena_printf(T->S->a, "'%s'", name) : "an expression",
                   name ? did_you_mean(T->S, name, ok, n) : "");
}

/* Evaluates e as a constant of the given kind; `what` names it in messages
 * ("adam: 'lr'", "'steps'"). */
static bool eval_kind(TrainCtx *T, const char *what, TrainArgKind kind, AstExpr *e, SemaVal *out) {
  Sema *S = T->S;
  if (!e) return false;
  if (kind == TA_TOKDT || kind == TA_YDT) return dtype_choice(T, what, kind, e, out);
  SemaVal v = sema_eval(S, &T->sc, e);
  *out = v;
  if (v.kind == SV_POISON) return false;
  bool ok = false;
  switch (kind) {
  case TA_INT: ok = v.kind == SV_INT; break;
  case TA_NUM: ok = v.kind == SV_INT || v.kind == SV_FLOAT; break;
  case TA_BOOL: ok = v.kind == SV_BOOL; break;
  case TA_STR: ok = v.kind == SV_STR; break;
  case TA_SHAPE:
    ok = v.kind == SV_INT || v.kind == SV_TUPLE;
    for (int i = 0; ok && v.kind == SV_TUPLE && i < v.n; i++) ok = v.elems[i].kind == SV_INT;
    break;
  case TA_PAIR:
    ok = v.kind == SV_TUPLE && v.n == 2;
    for (int i = 0; ok && i < 2; i++) ok = v.elems[i].kind == SV_INT || v.elems[i].kind == SV_FLOAT;
    break;
  case TA_TOKDT:
  case TA_YDT: break;
  }
  if (ok) return true;
  const char *got = sema_val_kind_str(S, &v);
  if (sema_is_const(&v) || v.kind == SV_STR || v.kind == SV_TUPLE)
    got = ckc_arena_printf(S->a, "%s %s", got, sema_val_str(S, &v));
  return ckc_error(S->d, e->loc, "E0558", "%s must be %s, got %s", what, kind_desc(kind), got);
}

/* Range errors share one id and one shape: "<what> must be <rule>, got <v>". */
static bool out_of_range(TrainCtx *T, CkcLoc loc, const char *what, const char *rule, const SemaVal *v) {
  return ckc_error(T->S->d, loc, "E0559", "%s must be %s, got %s", what, rule, sema_val_str(T->S, v));
}

/* ---- calls: data sources, optimizers, schedules ----------------------------------- */

/* Binds `name(args)` (or a bare `name`) to its row of table: the callee must
 * name a row, keywords must name its arguments, positions follow its order,
 * nothing twice, every required argument present, every value of its kind. */
static bool bind_call(TrainCtx *T, AstExpr *e, const TrainCall *table, int ntable, const char *what,
                      TrainArgs *A) {
  Sema *S = T->S;
  memset(A, 0, sizeof *A);
  const char *names[8];
  for (int i = 0; i < ntable; i++) names[i] = table[i].name;
  AstExpr *callee = e->kind == AST_EXPR_CALL ? e->u.call.callee : e;
  if (!callee || callee->kind != AST_EXPR_NAME) {
    const char *calls[8];
    for (int i = 0; i < ntable; i++) calls[i] = ckc_arena_printf(S->a, "%s(...)", names[i]);
    return ckc_error(S->d, e->loc, "E0555", "the %s must be a call: one of %s", what,
                     join_names(S, calls, ntable));
  }
  const TrainCall *spec = NULL;
  for (int i = 0; i < ntable; i++)
    if (strcmp(table[i].name, callee->u.name) == 0) spec = &table[i];
  if (!spec)
    return ckc_error(S->d, callee->loc, "E0556", "unknown %s '%s'%s (%ss: %s)", what, callee->u.name,
                     did_you_mean(S, callee->u.name, names, ntable), what, join_names(S, names, ntable));
  A->spec = spec;
  A->loc = e->loc;
  int n = nargs_of(spec);
  const char *anames[TRAIN_MAX_ARGS];
  for (int i = 0; i < n; i++) anames[i] = spec->args[i].name;
  bool ok = true;
  int npos = 0;
  bool keywords = false;
  AstExpr *by[TRAIN_MAX_ARGS] = {NULL};
  for (AstArg *a = e->kind == AST_EXPR_CALL ? e->u.call.args : NULL; a; a = a->next) {
    int slot;
    if (a->name) {
      slot = arg_slot(spec, a->name);
      if (slot < 0) {
        ok = ckc_error(S->d, a->loc, "E0557", "%s has no argument '%s'%s (arguments: %s)", spec->name,
                       a->name, did_you_mean(S, a->name, anames, n), join_names(S, anames, n));
        continue;
      }
      keywords = true;
    } else {
      if (keywords) {
        ok = ckc_error(S->d, a->loc, "E0557", "%s: a positional argument cannot follow keyword arguments",
                       spec->name);
        break;
      }
      slot = npos++;
      if (slot >= n) {
        ok = ckc_error(S->d, a->loc, "E0557", "%s takes at most %d argument%s (%s), got %d", spec->name,
                       n, n == 1 ? "" : "s", join_names(S, anames, n), e->u.call.nargs);
        break;
      }
    }
    if (by[slot]) {
      ok = ckc_error(S->d, a->loc, "E0557", "argument '%s' of %s given twice", spec->args[slot].name,
                     spec->name);
      continue;
    }
    by[slot] = a->value;
  }
  for (int i = 0; ok && i < n; i++)
    if (!by[i] && spec->args[i].required)
      ok = ckc_error(S->d, e->loc, "E0557", "%s: missing argument '%s'", spec->name, spec->args[i].name);
  if (!ok) return false;
  for (int i = 0; i < n; i++) {
    if (!by[i]) continue;
    const char *w = ckc_arena_printf(S->a, "%s: '%s'", spec->name, spec->args[i].name);
    if (!eval_kind(T, w, spec->args[i].kind, by[i], &A->val[i])) {
      ok = false;
      continue;
    }
    A->given[i] = true;
    A->at[i] = by[i]->loc;
    A->expr[i] = by[i];
  }
  return ok;
}

/* Accessors by argument name: asking for a name the row lacks is a bug in
 * this file, not in the program, hence an internal error. */
static int slot_or_ice(const TrainArgs *A, const char *name) {
  int i = arg_slot(A->spec, name);
  if (i < 0) CKC_ICE("train: %s has no argument '%s' in its table", A->spec->name, name);
  return i;
}

static bool has(const TrainArgs *A, const char *name) {
  int i = arg_slot(A->spec, name);
  return i >= 0 && A->given[i];
}

static double get_num(const TrainArgs *A, const char *name, double dflt) {
  int i = slot_or_ice(A, name);
  return A->given[i] ? num_of(&A->val[i]) : dflt;
}

static int64_t get_int(const TrainArgs *A, const char *name, int64_t dflt) {
  int i = slot_or_ice(A, name);
  return A->given[i] ? A->val[i].i : dflt;
}

static const char *get_str(const TrainArgs *A, const char *name, const char *dflt) {
  int i = slot_or_ice(A, name);
  return A->given[i] ? A->val[i].s : dflt;
}

/* A numeric argument checked against [lo, hi] with open/closed ends; absent
 * arguments pass. */
static bool check_num(TrainCtx *T, const TrainArgs *A, const char *name, double lo, bool lo_open,
                      double hi, bool hi_open, const char *rule) {
  int i = slot_or_ice(A, name);
  if (!A->given[i]) return true;
  double x = num_of(&A->val[i]);
  bool ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  if (ok) return true;
  return out_of_range(T, A->at[i], ckc_arena_printf(T->S->a, "%s: '%s'", A->spec->name, name), rule,
                      &A->val[i]);
}

static bool check_int_min(TrainCtx *T, const TrainArgs *A, const char *name, int64_t min) {
  int i = slot_or_ice(A, name);
  if (!A->given[i] || A->val[i].i >= min) return true;
  return out_of_range(T, A->at[i], ckc_arena_printf(T->S->a, "%s: '%s'", A->spec->name, name),
                      min == 0 ? "at least 0" : ckc_arena_printf(T->S->a, "at least %lld", (long long)min),
                      &A->val[i]);
}

/* shape = (d0, d1, ...) behind a batch dimension: every dim positive, the
 * whole type representable. */
static bool batch_shape(TrainCtx *T, const TrainArgs *A, const char *name, int64_t batch,
                        const int64_t *dflt, int ndflt, CkDType dt, CkShape *out) {
  Sema *S = T->S;
  int i = slot_or_ice(A, name);
  const char *what = ckc_arena_printf(S->a, "%s: '%s'", A->spec->name, name);
  memset(out, 0, sizeof *out);
  out->rank = 1;
  out->dims[0] = batch;
  int n = !A->given[i] ? ndflt : A->val[i].kind == SV_INT ? 1 : A->val[i].n;
  if (n > CK_MAX_RANK - 1)
    return ckc_error(S->d, A->at[i], "E0559", "%s has %d dims; at most %d fit behind the batch dimension",
                     what, n, CK_MAX_RANK - 1);
  int64_t dims[CK_MAX_RANK];
  for (int k = 0; k < n; k++)
    dims[k] = !A->given[i] ? dflt[k] : A->val[i].kind == SV_INT ? A->val[i].i : A->val[i].elems[k].i;
  for (int k = 0; k < n; k++) {
    if (dims[k] < 1)
      return ckc_error(S->d, A->at[i], "E0559", "%s: dimension %d must be positive, got %lld", what, k,
                       (long long)dims[k]);
    out->dims[out->rank++] = dims[k];
  }
  int64_t cnt;
  if (!ck_shape_numel(out, &cnt) || cnt > INT64_MAX / (int64_t)ck_dtype_size(dt))
    return ckc_error(S->d, A->at[i], "E0559", "%s: a batch of %s has too many elements", what,
                     sema_type_str(S, dt, out));
  return true;
}

/* tokens(...), idx(...), npy(...) -> spec, with the tensor types of data.x
 * and data.y (batch dimension first). */
static bool check_data(TrainCtx *T, AstTrainItem *it, IrDataSpec *ds) {
  TrainArgs A;
  memset(ds, 0, sizeof *ds);
  if (!bind_call(T, it->value, data_sources, COUNT(data_sources), "data source", &A))
    return false;
  bool ok = check_int_min(T, &A, "batch", 1);
  ds->kind = (IrDataKind)A.spec->kind;
  ds->loc = it->value->loc;
  ds->batch = get_int(&A, "batch", 1);
  switch (ds->kind) {
  case IR_DATA_TOKENS: {
    ok = check_int_min(T, &A, "seq", 1) && ok;
    ok = check_int_min(T, &A, "vocab", 1) && ok;
    ok = check_num(T, &A, "val", 0.0, true, 1.0, true, "in (0, 1) (the tail fraction held out for eval)") && ok;
    ds->path = get_str(&A, "path", "");
    ds->seq = get_int(&A, "seq", 1);
    ds->vocab = get_int(&A, "vocab", 0);
    ds->val_fraction = get_num(&A, "val", 0.1);
    const char *fdt = get_str(&A, "dtype", "u8");
    ds->is_u16 = strcmp(fdt, "u16") == 0;
    ds->file_dtype = ds->is_u16 ? CK_DT_COUNT : strcmp(fdt, "i32") == 0 ? CK_DT_I32 : CK_DT_U8;
    ds->x_dtype = ds->y_dtype = CK_DT_I32;
    ds->x_shape.rank = ds->y_shape.rank = 2;
    ds->x_shape.dims[0] = ds->y_shape.dims[0] = ds->batch;
    ds->x_shape.dims[1] = ds->y_shape.dims[1] = ds->seq;
    if (ok) {
      int64_t cnt;
      if (!ck_shape_numel(&ds->x_shape, &cnt) || cnt > INT64_MAX / 4)
        ok = ckc_error(T->S->d, A.loc, "E0559", "tokens: a batch of i32[%lld,%lld] has too many elements",
                       (long long)ds->batch, (long long)ds->seq);
    }
    break;
  }
  case IR_DATA_IDX: {
    static const int64_t mnist[3] = {1, 28, 28};
    ok = check_num(T, &A, "scale", 0.0, true, INFINITY, true, "positive") && ok;
    ds->x_path = get_str(&A, "images", "");
    ds->y_path = get_str(&A, "labels", "");
    ds->scale = get_num(&A, "scale", 1.0 / 255.0);
    ds->x_dtype = CK_DT_F32;
    ds->y_dtype = CK_DT_I32;
    if (ok) ok = batch_shape(T, &A, "shape", ds->batch, mnist, 3, CK_DT_F32, &ds->x_shape);
    ds->y_shape.rank = 1;
    ds->y_shape.dims[0] = ds->batch;
    break;
  }
  case IR_DATA_NPY: {
    ds->x_path = get_str(&A, "x", "");
    ds->y_path = get_str(&A, "y", "");
    ds->x_dtype = CK_DT_F32;
    ds->y_dtype = strcmp(get_str(&A, "y_dtype", "i32"), "f32") == 0 ? CK_DT_F32 : CK_DT_I32;
    if (ok) ok = batch_shape(T, &A, "shape", ds->batch, NULL, 0, CK_DT_F32, &ds->x_shape);
    if (ok) ok = batch_shape(T, &A, "y_shape", ds->batch, NULL, 0, ds->y_dtype, &ds->y_shape);
    break;
  }
  case IR_DATA_NONE: break;
  }
  return ok;
}

/* sgd(...), adam(...), adamw(...) with PyTorch's defaults and checks. */
static bool check_optim(TrainCtx *T, AstTrainItem *it, IrOptimSpec *o) {
  TrainArgs A;
  if (!bind_call(T, it->value, optimizers, COUNT(optimizers), "optimizer", &A)) return false;
  o->kind = (IrOptimKind)A.spec->kind;
  bool ok = check_num(T, &A, "lr", 0.0, true, INFINITY, true, "positive");
  ok = check_num(T, &A, "weight_decay", 0.0, false, INFINITY, true, "at least 0") && ok;
  ok = check_num(T, &A, "clip", 0.0, false, INFINITY, true, "at least 0 (0 = no clipping)") && ok;
  ok = check_int_min(T, &A, "accum", 1) && ok;
  o->lr = get_num(&A, "lr", 1e-3);
  o->weight_decay = get_num(&A, "weight_decay", o->kind == IR_OPTIM_ADAMW ? 0.01 : 0.0);
  o->clip = get_num(&A, "clip", 0.0);
  o->accum = get_int(&A, "accum", 1);
  if (o->kind == IR_OPTIM_SGD) {
    ok = check_num(T, &A, "momentum", 0.0, false, INFINITY, true, "at least 0") && ok;
    ok = check_num(T, &A, "dampening", 0.0, false, 1.0, false, "in [0, 1]") && ok;
    o->momentum = get_num(&A, "momentum", 0.0);
    o->dampening = get_num(&A, "dampening", 0.0);
    int ni = slot_or_ice(&A, "nesterov");
    o->nesterov = A.given[ni] && A.val[ni].i;
    if (ok && o->nesterov && (o->momentum <= 0.0 || o->dampening != 0.0))
      ok = ckc_error(T->S->d, A.at[ni], "E0559",
                     "sgd: nesterov needs a positive momentum and zero dampening (momentum %g, dampening %g)",
                     o->momentum, o->dampening);
    return ok;
  }
  ok = check_num(T, &A, "eps", 0.0, true, INFINITY, true, "positive") && ok;
  o->eps = get_num(&A, "eps", 1e-8);
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  int bi = slot_or_ice(&A, "betas");
  if (A.given[bi]) {
    for (int k = 0; k < 2; k++) {
      SemaVal *b = &A.val[bi].elems[k];
      double x = num_of(b);
      if (!(x >= 0.0 && x < 1.0)) {
        AstExpr *te = A.expr[bi];
        CkcLoc at = te->kind == AST_EXPR_TUPLE && te->u.tuple.n == 2 ? te->u.tuple.elems[k]->loc : A.at[bi];
        ok = out_of_range(T, at, ckc_arena_printf(T->S->a, "%s: beta%d", A.spec->name, k + 1),
                          "in [0, 1)", b);
        break;
      }
    }
    o->beta1 = num_of(&A.val[bi].elems[0]);
    o->beta2 = num_of(&A.val[bi].elems[1]);
  }
  return ok;
}

/* constant(), linear(...), cosine(...), step(...); warmup and min_lr are
 * checked against steps and lr when those are known. */
static bool check_schedule(TrainCtx *T, AstTrainItem *it, IrSchedSpec *s, bool steps_ok, bool lr_ok) {
  TrainArgs A;
  if (!bind_call(T, it->value, schedules, COUNT(schedules), "schedule", &A)) return false;
  IrTrainConfig *c = T->cfg;
  s->kind = (IrSchedKind)A.spec->kind;
  bool warm_ok = check_int_min(T, &A, "warmup", 0), ok = warm_ok;
  s->warmup = get_int(&A, "warmup", 0);
  if (has(&A, "min_lr")) {
    ok = check_num(T, &A, "min_lr", 0.0, false, INFINITY, true, "at least 0") && ok;
    s->min_lr = get_num(&A, "min_lr", 0.0);
    int i = slot_or_ice(&A, "min_lr");
    if (lr_ok && s->min_lr >= 0.0 && s->min_lr > c->optim.lr)
      ok = ckc_error(T->S->d, A.at[i], "E0559", "%s: min_lr (%g) must not exceed the optimizer's lr (%g)",
                     A.spec->name, s->min_lr, c->optim.lr);
  }
  if (s->kind == IR_SCHED_STEP) {
    ok = check_int_min(T, &A, "step_size", 1) && ok;
    ok = check_num(T, &A, "gamma", 0.0, true, 1.0, false, "in (0, 1]") && ok;
    s->step_size = get_int(&A, "step_size", 1);
    s->gamma = get_num(&A, "gamma", 0.1);
  }
  if (warm_ok && steps_ok && s->warmup > c->steps) {
    int i = slot_or_ice(&A, "warmup");
    ok = ckc_error(T->S->d, A.at[i], "E0559", "%s: warmup (%lld) must not exceed steps (%lld)",
                   A.spec->name, (long long)s->warmup, (long long)c->steps);
  }
  return ok;
}

/* steps, seed, checkpoint_every, ...: an int constant with a lower bound. */
static bool check_count(TrainCtx *T, TrainKey k, int64_t min, int64_t *out) {
  AstTrainItem *it = T->items[k];
  if (!it) return true;
  SemaVal v;
  const char *what = ckc_arena_printf(T->S->a, "'%s'", key_names[k]);
  if (!eval_kind(T, what, TA_INT, it->value, &v)) return false;
  if (v.i < min)
    return out_of_range(T, it->value->loc, what, ckc_arena_printf(T->S->a, "at least %lld", (long long)min),
                        &v);
  *out = v.i;
  return true;
}

/* decay_exclude / decay_include: a string or a tuple of strings, each a glob
 * over dotted parameter names ('*' matches any run of characters). A pattern
 * with other characters could never match, so it is reported. */
static bool check_globs(TrainCtx *T, TrainKey k) {
  Sema *S = T->S;
  AstTrainItem *it = T->items[k];
  if (!it) return true;
  SemaVal v = sema_eval(S, &T->sc, it->value);
  if (v.kind == SV_POISON) return false;
  int n = v.kind == SV_TUPLE ? v.n : 1;
  const SemaVal *el = v.kind == SV_TUPLE ? v.elems : &v;
  bool ok = true;
  for (int i = 0; i < n; i++) {
    if (el[i].kind != SV_STR) {
      const char *got = sema_val_kind_str(S, &el[i]);
      if (sema_is_const(&el[i])) got = ckc_arena_printf(S->a, "%s %s", got, sema_val_str(S, &el[i]));
      return ckc_error(S->d, it->value->loc, "E0558",
                       "'%s' must be a string or a tuple of strings (glob patterns such as \"*.bias\"), got %s",
                       key_names[k], got);
    }
    const char *p = el[i].s;
    bool good = p[0] != '\0';
    for (const char *c = p; *c; c++)
      good = good && (*c == '_' || *c == '.' || *c == '*' || (*c >= '0' && *c <= '9') ||
                      (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'));
    if (!good) {
      ok = ckc_error(S->d, it->value->loc, "E0558",
                     "'%s': the pattern \"%s\" can never match a parameter name (names use letters, digits, '_' and '.'; '*' is the wildcard)",
                     key_names[k], p);
      continue;
    }
    if (k == TK_DECAY_INCLUDE) CKC_VEC_PUSH(S->a, T->cfg->decay_include, p);
    else CKC_VEC_PUSH(S->a, T->cfg->decay_exclude, p);
  }
  return ok;
}

/* ---- the loss graph ----------------------------------------------------------------- */

/* `loss = expr`: a new entry graph with inputs data.x, data.y; `data` is a
 * local of the expression, the model's members and fns are in scope as in
 * its own fns. outputs[0] = the scalar f32 loss; for cross_entropy also
 * outputs[1] = its logits (eval reports accuracy from them). */
static bool build_loss(TrainCtx *T, AstTrainItem *it) {
  Sema *S = T->S;
  IrTrainConfig *c = T->cfg;
  IrGraph *g = ir_graph_new(S->ir, "loss", true);
  IrNode *x = ir_input(g, "x", c->data.x_dtype, &c->data.x_shape, c->data.loc);
  IrNode *y = ir_input(g, "y", c->data.y_dtype, &c->data.y_shape, c->data.loc);
  SemaVal dv = sema_poison();
  dv.kind = SV_DATA;
  dv.n = 2;
  dv.elems = CKC_NEW_ARRAY(S->a, SemaVal, 2);
  dv.elems[0].kind = dv.elems[1].kind = SV_TENSOR;
  dv.elems[0].node = x;
  dv.elems[1].node = y;
  SemaFrame frame = {0};
  SemaLocal local = {"data", dv, T->items[TK_DATA]->loc, false};
  CKC_VEC_PUSH(S->a, frame.locals, local);
  SemaScope sc = {.mod = T->model->mod, .inst = T->model, .frame = &frame, .g = g, .where = "loss"};
  SemaVal v = sema_eval(S, &sc, it->value);
  if (v.kind == SV_POISON) return false;
  if (v.kind != SV_TENSOR) {
    const char *got = sema_val_kind_str(S, &v);
    if (sema_is_const(&v)) got = ckc_arena_printf(S->a, "%s %s", got, sema_val_str(S, &v));
    return ckc_error(S->d, it->value->loc, "E0560", "the loss must be a scalar f32 tensor, got %s", got);
  }
  IrNode *n = v.node;
  if (n->dtype != CK_DT_F32 || n->shape.rank != 0)
    return ckc_error(S->d, it->value->loc, "E0560", "the loss must be a scalar f32 tensor (f32[]), got %s%s",
                     sema_type_str(S, n->dtype, &n->shape),
                     n->shape.rank ? " (reduce it, e.g. with mean(...))" : "");
  if (!n->name && n->graph == g && !(ir_op_info[n->op].flags & IR_OPF_LEAF)) n->name = "loss";
  ir_set_output(g, n);
  switch (n->op) {
  case IR_OP_CROSS_ENTROPY:
    c->loss_kind = IR_LOSS_CROSS_ENTROPY;
    ir_set_output(g, n->in[0]);
    break;
  case IR_OP_MSE: c->loss_kind = IR_LOSS_MSE; break;
  case IR_OP_BCE_WITH_LOGITS: c->loss_kind = IR_LOSS_BCE_WITH_LOGITS; break;
  default: c->loss_kind = IR_LOSS_OTHER; break;
  }
  return true;
}

/* eval_data feeds the same loss graph, so its tensors must have data's types. */
static bool same_types(TrainCtx *T, const IrDataSpec *d, const IrDataSpec *e, CkcLoc loc) {
  Sema *S = T->S;
  const char *part = NULL;
  const char *want = NULL, *got = NULL;
  if (d->x_dtype != e->x_dtype || !ck_shape_eq(&d->x_shape, &e->x_shape)) {
    part = "x";
    want = sema_type_str(S, d->x_dtype, &d->x_shape);
    got = sema_type_str(S, e->x_dtype, &e->x_shape);
  } else if (d->y_dtype != e->y_dtype || !ck_shape_eq(&d->y_shape, &e->y_shape)) {
    part = "y";
    want = sema_type_str(S, d->y_dtype, &d->y_shape);
    got = sema_type_str(S, e->y_dtype, &e->y_shape);
  }
  if (!part) return true;
  return ckc_error(S->d, loc, "E0561",
                   "eval_data must give the types of data (the loss graph has one batch shape): data.%s is %s, eval_data.%s is %s",
                   part, want, part, got);
}

/* ---- the block ------------------------------------------------------------------------ */

/* The main file's train blocks: at most one, naming the file's model. */
static AstDecl *find_train(Sema *S, SemaInst *model) {
  AstDecl *first = NULL;
  if (!S->main->ast) return NULL;
  for (AstDecl *d = S->main->ast->decls; d; d = d->next) {
    if (d->kind != AST_DECL_TRAIN) continue;
    if (first) {
      ckc_error(S->d, d->name_loc, "E0550", "more than one train block (a file trains its model one way)");
      ckc_note(S->d, first->name_loc, "the first train block is here");
      continue;
    }
    first = d;
    const char *mname = model->decl->name;
    if (d->name && mname && strcmp(d->name, mname) != 0) {
      ckc_error(S->d, d->name_loc, "E0551", "train block names '%s', but the model of this file is '%s'",
                d->name, mname);
      ckc_note(S->d, model->decl->name_loc, "the model is declared here");
    }
  }
  return first;
}

/* The span of an item's key (items span `key = value`). */
static CkcLoc key_loc(const AstTrainItem *it) {
  CkcLoc l = it->loc;
  l.end_line = l.line;
  l.end_col = l.col + (int)strlen(it->key) - 1;
  return l;
}

/* Items by key: each known key at most once; unknown keys get a suggestion. */
static bool collect_items(TrainCtx *T, AstDecl *decl) {
  Sema *S = T->S;
  bool ok = true;
  for (AstTrainItem *it = decl->items; it; it = it->next) {
    if (!it->key || !it->value) {
      ok = false; /* a syntax error already said why */
      continue;
    }
    int k = 0;
    while (k < TK_COUNT && strcmp(key_names[k], it->key) != 0) k++;
    CkcLoc kl = key_loc(it);
    if (k == TK_COUNT) {
      ok = ckc_error(S->d, kl, "E0552", "unknown train key '%s'%s (keys: %s)", it->key,
                     did_you_mean(S, it->key, key_names, TK_COUNT), join_names(S, key_names, TK_COUNT));
      continue;
    }
    if (T->items[k]) {
      ok = ckc_error(S->d, kl, "E0553", "train key '%s' is given twice", it->key);
      ckc_note(S->d, key_loc(T->items[k]), "first given here");
      continue;
    }
    T->items[k] = it;
  }
  static const TrainKey required[] = {TK_DATA, TK_LOSS, TK_OPTIM, TK_STEPS};
  static const char *const example[] = {
      "data = tokens(\"train.u8\", batch = 8, seq = 64);", "loss = cross_entropy(forward(data.x), data.y);",
      "optim = adam(lr = 1e-3);", "steps = 1000;"};
  for (int i = 0; i < COUNT(required); i++)
    if (!T->items[required[i]])
      ok = ckc_error(S->d, decl->name_loc, "E0554", "train block has no '%s' (required: data, loss, optim, steps; e.g. %s)",
                     key_names[required[i]], example[i]);
  return ok;
}

/* Keys in a fixed order (data before eval_data and the loss, optim and steps
 * before the schedule that is checked against them); the config is published
 * only if the whole block is valid. */
void sema_elab_train(Sema *S, SemaInst *model, bool entry_ok) {
  AstDecl *decl = find_train(S, model);
  if (!decl) return;
  int e0 = S->d->nerrors;
  TrainCtx T;
  memset(&T, 0, sizeof T);
  T.S = S;
  T.model = model;
  T.sc.mod = model->mod;
  T.sc.inst = model;
  T.sc.where = "train";
  IrTrainConfig *c = CKC_NEW(S->a, IrTrainConfig);
  T.cfg = c;
  c->loc = decl->loc;
  c->log_every = 1;
  c->sched.kind = IR_SCHED_CONSTANT;
  c->sched.gamma = 0.1;
  c->optim.accum = 1;
  collect_items(&T, decl);
  bool data_ok = T.items[TK_DATA] && check_data(&T, T.items[TK_DATA], &c->data);
  if (T.items[TK_EVAL_DATA] && check_data(&T, T.items[TK_EVAL_DATA], &c->eval_data) && data_ok)
    same_types(&T, &c->data, &c->eval_data, T.items[TK_EVAL_DATA]->value->loc);
  bool lr_ok = T.items[TK_OPTIM] && check_optim(&T, T.items[TK_OPTIM], &c->optim);
  bool steps_ok = T.items[TK_STEPS] && check_count(&T, TK_STEPS, 1, &c->steps);
  if (T.items[TK_SCHEDULE]) check_schedule(&T, T.items[TK_SCHEDULE], &c->sched, steps_ok, lr_ok);
  check_count(&T, TK_SEED, 0, &c->seed);
  check_count(&T, TK_CHECKPOINT_EVERY, 0, &c->checkpoint_every);
  check_count(&T, TK_EVAL_EVERY, 0, &c->eval_every);
  check_count(&T, TK_EVAL_BATCHES, 0, &c->eval_batches);
  check_count(&T, TK_LOG_EVERY, 1, &c->log_every);
  check_globs(&T, TK_DECAY_EXCLUDE);
  check_globs(&T, TK_DECAY_INCLUDE);
  if (T.items[TK_LOSS] && data_ok && entry_ok) build_loss(&T, T.items[TK_LOSS]);
  if (S->d->nerrors == e0) S->ir->train = c;
}
