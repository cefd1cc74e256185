/* frontend/sema.c - the semantic analyser's entry point and its name
 * resolution: from a path to an IrModule. The stages are a flat list:
 *   load + parse every module (module.c) -> -D overrides and constants
 *   (consts.c) -> find the model -> elaborate its forward into IR (elab.c)
 *   -> its train block and the "loss" graph (train.c).
 * Errors accumulate; any error makes the result NULL. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/sema_int.h"

/* ---- values ------------------------------------------------------------------ */

SemaVal sema_poison(void) {
  SemaVal v;
  memset(&v, 0, sizeof v);
  return v;
}

SemaVal sema_int(int64_t i) {
  SemaVal v = sema_poison();
  v.kind = SV_INT;
  v.i = i;
  return v;
}

SemaVal sema_float(double f) {
  SemaVal v = sema_poison();
  v.kind = SV_FLOAT;
  v.f = f;
  return v;
}

SemaVal sema_bool(bool b) {
  SemaVal v = sema_poison();
  v.kind = SV_BOOL;
  v.i = b;
  return v;
}

bool sema_is_const(const SemaVal *v) {
  return v->kind == SV_INT || v->kind == SV_FLOAT || v->kind == SV_BOOL;
}

char *sema_type_str(Sema *S, CkDType dt, const CkShape *s) {
  char buf[256];
  return ckc_arena_strdup(S->a, ck_type_str(dt, s, buf, sizeof buf));
}

/* What a value is, for "expected a tensor, got ..." messages. */
const char *sema_val_kind_str(Sema *S, const SemaVal *v) {
  switch (v->kind) {
  case SV_POISON: return "an invalid value";
  case SV_INT: return "an int constant";
  case SV_FLOAT: return "a float constant";
  case SV_BOOL: return "a bool constant";
  case SV_STR: return "a string";
  case SV_TUPLE: return "a tuple";
  case SV_DTYPE: return "a dtype";
  case SV_TENSOR: return sema_type_str(S, v->node->dtype, &v->node->shape);
  case SV_MODULE: return "a module";
  case SV_LAYER: return "a layer";
  case SV_INST: return "a layer instance";
  case SV_ARRAY: return "an instance array";
  case SV_METHOD: return "a fn";
  case SV_BUILTIN: return "a builtin";
  case SV_DATA: return "the data source (use data.x or data.y)";
  }
  return "?";
}

/* A constant as written in graph names and messages: 128, 0.5, true. */
const char *sema_val_str(Sema *S, const SemaVal *v) {
  switch (v->kind) {
  case SV_INT: return ckc_arena_printf(S->a, "%lld", (long long)v->i);
  case SV_FLOAT: {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v->f);
    /* shortest round-tripping form */
    for (int p = 1; p <= 17; p++) {
      char t[64];
      snprintf(t, sizeof t, "%.*g", p, v->f);
      if (strtod(t, NULL) == v->f) {
        memcpy(buf, t, sizeof t);
        break;
      }
    }
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    return ckc_arena_strdup(S->a, buf);
  }
  case SV_BOOL: return v->i ? "true" : "false";
  case SV_STR: return ckc_arena_printf(S->a, "\"%s\"", v->s);
  case SV_DTYPE: return ck_dtype_name(v->dt);
  case SV_TUPLE: {
    CkcBuf b;
    ckc_buf_init(&b, S->a);
    ckc_buf_putc(&b, '(');
    for (int i = 0; i < v->n; i++) {
      if (i) ckc_buf_puts(&b, ", ");
      ckc_buf_puts(&b, sema_val_str(S, &v->elems[i]));
    }
    ckc_buf_putc(&b, ')');
    return ckc_buf_str(&b);
  }
  default: return sema_val_kind_str(S, v);
  }
}

/* ---- symbol tables --------------------------------------------------------------- */

SemaSym *sema_module_find(SemaModule *m, const char *name) {
  for (int i = 0; i < m->syms.len; i++)
    if (strcmp(m->syms.items[i]->name, name) == 0) return m->syms.items[i];
  return NULL;
}

SemaMemb *sema_inst_member(SemaInst *inst, const char *name) {
  for (int i = 0; i < inst->members.len; i++)
    if (inst->members.items[i]->m->name && strcmp(inst->members.items[i]->m->name, name) == 0)
      return inst->members.items[i];
  return NULL;
}

/* Name lookup, innermost first: fn locals and dimension variables, then the
 * instance (constructor arguments and members), then the module's top-level
 * names, then dtype names. Returns false if the name is unknown (the caller
 * decides between a builtin and an error). */
bool sema_lookup(Sema *S, SemaScope *sc, const char *name, CkcLoc loc, SemaVal *out) {
  for (SemaFrame *f = sc->frame; f; f = f->parent)
    for (int i = f->locals.len - 1; i >= 0; i--)
      if (strcmp(f->locals.items[i].name, name) == 0) {
        *out = f->locals.items[i].val;
        return true;
      }
  if (sc->inst) {
    SemaInst *inst = sc->inst;
    for (int i = 0; i < inst->nargs; i++)
      if (strcmp(inst->argnames[i], name) == 0) {
        *out = inst->args[i];
        return true;
      }
    SemaMemb *mb = sema_inst_member(inst, name);
    if (mb) {
      *out = sema_member_val(S, sc, inst, mb, "", loc);
      return true;
    }
  }
  SemaSym *sym = sema_module_find(sc->mod, name);
  if (sym) {
    SemaVal v = sema_poison();
    switch (sym->kind) {
    case SYM_CONST: sema_module_const(S, sc->mod, sym, &v); break;
    case SYM_LAYER:
    case SYM_MODEL:
      v.kind = SV_LAYER;
      v.decl = sym->decl;
      v.mod = sc->mod;
      break;
    case SYM_IMPORT:
      if (sym->target) {
        v.kind = SV_MODULE;
        v.mod = sym->target;
      }
      break;
    case SYM_TRAIN: break;
    }
    *out = v;
    return true;
  }
  CkDType dt;
  if (ck_dtype_from_name(name, &dt)) {
    SemaVal v = sema_poison();
    v.kind = SV_DTYPE;
    v.dt = dt;
    *out = v;
    return true;
  }
  return false;
}

/* Levenshtein distance, capped: only small distances matter. */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  int prev[65], cur[65];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int c = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (prev[j] + 1 < c) c = prev[j] + 1;
      if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
      cur[j] = c;
    }
    memcpy(prev, cur, sizeof(int) * (lb + 1));
  }
  return prev[lb];
}

/* The closest candidate within distance 2 (1 for names of up to 3 letters, so
 * that `x` does not suggest every other one-letter name); first wins ties. */
const char *sema_suggest(const char *name, const char *const *cands, int n) {
  size_t len = strlen(name);
  int limit = len <= 3 ? 1 : 2;
  const char *best = NULL;
  int bestd = limit + 1;
  for (int i = 0; i < n; i++) {
    if (!cands[i] || strcmp(cands[i], name) == 0) continue;
    int dd = edit_distance(name, cands[i]);
    if (dd < bestd) {
      bestd = dd;
      best = cands[i];
    }
  }
  return best;
}

/* ", did you mean 'x'?" over every name visible in sc. */
const char *sema_suggest_in_scope(Sema *S, SemaScope *sc, const char *name, bool builtins) {
  CKC_VEC(const char *) c = {0};
  for (SemaFrame *f = sc->frame; f; f = f->parent)
    for (int i = f->locals.len - 1; i >= 0; i--) CKC_VEC_PUSH(S->a, c, f->locals.items[i].name);
  if (sc->inst) {
    for (int i = 0; i < sc->inst->nargs; i++) CKC_VEC_PUSH(S->a, c, sc->inst->argnames[i]);
    for (int i = 0; i < sc->inst->members.len; i++)
      CKC_VEC_PUSH(S->a, c, sc->inst->members.items[i]->m->name);
  }
  for (int i = 0; i < sc->mod->syms.len; i++) CKC_VEC_PUSH(S->a, c, sc->mod->syms.items[i]->name);
  if (builtins)
    for (int i = 0; sema_builtin_name(i); i++) CKC_VEC_PUSH(S->a, c, sema_builtin_name(i));
  const char *best = sema_suggest(name, c.items, c.len);
  return best ? ckc_arena_printf(S->a, "; did you mean '%s'?", best) : "";
}

/* ---- diagnostics in context ------------------------------------------------------ */

static bool same_loc(CkcLoc a, CkcLoc b) {
  return a.file == b.file && a.line == b.line && a.col == b.col && a.end_line == b.end_line &&
         a.end_col == b.end_col;
}

/* One frame of the instantiation context as a note; frames whose instance is
 * not known yet say nothing (see SemaCtx). */
static void ctx_note(Sema *S, const SemaCtx *c) {
  if (c->kind == SEMA_CTX_CALL)
    ckc_note(S->d, c->loc, "in %s, called from here", c->what);
  else
    ckc_note(S->d, c->loc, "in instance '%s' of %s declared here", c->member, c->what);
}

/* The context notes of an error, innermost first. A chain longer than
 * SEMA_CTX_NOTES_MAX keeps its innermost half (where the mistake is) and its
 * outermost half (the user's own line) and counts the levels between, like
 * clang's -ftemplate-backtrace-limit. */
static void ctx_notes(Sema *S) {
  const SemaCtx **fr = CKC_NEW_ARRAY(S->a, const SemaCtx *, S->ctx.len + 1);
  int n = 0;
  for (int i = S->ctx.len - 1; i >= 0; i--)
    if (S->ctx.items[i].what) fr[n++] = &S->ctx.items[i];
  int head = n, tail = 0;
  if (n > SEMA_CTX_NOTES_MAX) {
    head = SEMA_CTX_NOTES_MAX / 2;
    tail = SEMA_CTX_NOTES_MAX - head;
  }
  for (int i = 0; i < head; i++) ctx_note(S, fr[i]);
  if (!tail) return;
  int skipped = n - head - tail;
  ckc_note(S->d, fr[head]->loc, "... %d more level%s", skipped, skipped == 1 ? "" : "s");
  for (int i = n - tail; i < n; i++) ctx_note(S, fr[i]);
}

bool sema_error(Sema *S, CkcLoc loc, const char *id, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *msg = ckc_arena_vprintf(S->a, fmt, ap);
  va_end(ap);
  /* the same mistake met again through another instantiation (another
   * argument shape, another instance of the layer): say it once */
  for (int i = 0; i < S->reported.len; i++) {
    const SemaReported *r = &S->reported.items[i];
    if (same_loc(r->loc, loc) && strcmp(r->id ? r->id : "", id ? id : "") == 0 &&
        strcmp(r->msg, msg) == 0) {
      S->nquiet++;
      S->last_quiet = true;
      return false;
    }
  }
  SemaReported r = {loc, id, msg};
  CKC_VEC_PUSH(S->a, S->reported, r);
  S->last_quiet = false;
  ckc_error(S->d, loc, id, "%s", msg);
  ctx_notes(S);
  return false;
}

void sema_note(Sema *S, CkcLoc loc, const char *fmt, ...) {
  if (S->last_quiet) return;
  va_list ap;
  va_start(ap, fmt);
  const char *msg = ckc_arena_vprintf(S->a, fmt, ap);
  va_end(ap);
  ckc_note(S->d, loc, "%s", msg);
}

int sema_failures(const Sema *S) { return S->d->nerrors + S->nquiet; }

/* ---- the entry point ------------------------------------------------------------ */

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* The main file declares exactly one model: the program's root. */
static AstDecl *find_model(Sema *S) {
  AstDecl *model = NULL;
  if (S->main->ast)
    for (AstDecl *d = S->main->ast->decls; d; d = d->next) {
      if (d->kind != AST_DECL_MODEL) continue;
      if (model) {
        ckc_error(S->d, d->name_loc, "E0209", "more than one model in '%s' ('%s' and '%s')",
                  base_name(S->main->path), model->name, d->name);
        ckc_note(S->d, model->name_loc, "the first model is declared here");
        continue;
      }
      model = d;
    }
  if (!model) {
    CkcLoc loc = {0, 0, 0, 0, 0};
    if (S->main->ast) loc.file = S->main->ast->file;
    loc.line = loc.col = loc.end_line = loc.end_col = 1;
    ckc_error(S->d, loc, "E0209", "no model in '%s' (the main file must declare one `model Name { ... }`)",
              base_name(S->main->path));
  }
  return model;
}

IrModule *ckc_sema_file(CkcArena *a, CkcDiag *d, const char *path, const CkcSemaOptions *opt) {
  CkcSemaOptions dflt = {.use_embedded_stdlib = true};
  Sema S;
  memset(&S, 0, sizeof S);
  S.a = a;
  S.d = d;
  S.opt = opt ? opt : &dflt;
  int err0 = d->nerrors;
  if (!sema_load_program(&S, path) || d->nerrors > err0) return NULL;
  sema_apply_defines(&S);
  sema_eval_all_consts(&S);
  AstDecl *model = find_model(&S);
  S.ir = ir_module_new(a, model ? model->name : "", base_name(path));
  sema_collect_consts(&S);
  if (model) {
    SemaInst *inst = sema_make_instance(&S, S.main, model, NULL, 0, 0, model->name_loc);
    if (inst) {
      bool entry_ok = sema_elab_entry(&S, inst);
      sema_elab_train(&S, inst, entry_ok);
    }
  }
  return d->nerrors > err0 ? NULL : S.ir;
}
