/* frontend/module.c - reading source files, resolving imports, detecting
 * import cycles, and declaring each module's top-level names.
 *
 * `import a.b;` looks for a/b.ckm in the importing file's directory, then in
 * each -I directory, then in the stdlib compiled into ckc. A module is parsed
 * once however often it is imported (identity: its real path). Loading is a
 * depth-first walk; a module met again while its own imports are still being
 * loaded closes a cycle, reported at that import with one note per link. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/sema_int.h"
#include "util/embedded.h"

/* One edge of the import chain being loaded, for cycle notes. */
typedef struct ImportLink {
  SemaModule *from;
  AstDecl *imp;
} ImportLink;

typedef struct LoadCtx {
  Sema *S;
  CKC_VEC(ImportLink) stack;
} LoadCtx;

/* Whole-file read into the arena, NUL-terminated; errno kept on failure. */
static bool read_file(CkcArena *a, const char *path, char **text, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return false;
  }
  for (;;) {
    if (n + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return false;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (got == 0) break;
  }
  bool bad = ferror(f) != 0;
  int err = errno;
  fclose(f);
  if (bad) {
    free(buf);
    errno = err ? err : EIO;
    return false;
  }
  *text = ckc_arena_alloc(a, n + 1);
  memcpy(*text, buf, n);
  (*text)[n] = '\0';
  *len = n;
  free(buf);
  return true;
}

/* The directory part of a path ("" for a bare file name). */
static const char *dir_of(CkcArena *a, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return "";
  if (slash == path) return "/";
  return ckc_arena_strndup(a, path, (size_t)(slash - path));
}

static const char *base_of(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static const char *join_path(CkcArena *a, const char *dir, const char *rel) {
  if (!dir[0]) return ckc_arena_strdup(a, rel);
  size_t n = strlen(dir);
  return ckc_arena_printf(a, "%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", rel);
}

/* ---- declarations --------------------------------------------------------------- */

/* Top-level names share one namespace per module: a second definition is an
 * error that points back at the first. */
static SemaSym *declare(Sema *S, SemaModule *m, const char *name, SemaSymKind kind, AstDecl *decl,
                        CkcLoc loc) {
  if (!name) return NULL;
  SemaSym *old = sema_module_find(m, name);
  if (old) {
    ckc_error(S->d, loc, "E0202", "duplicate definition of '%s'", name);
    ckc_note(S->d, old->loc, "'%s' was first defined here", name);
    return NULL;
  }
  SemaSym *s = CKC_NEW(S->a, SemaSym);
  s->name = name;
  s->kind = kind;
  s->decl = decl;
  s->loc = loc;
  CKC_VEC_PUSH(S->a, m->syms, s);
  return s;
}

/* Registers and parses one file; NULL (and an error) if unreadable. */
static SemaModule *new_module(Sema *S, const char *shown, const char *key, const char *text,
                              size_t len) {
  SemaModule *m = CKC_NEW(S->a, SemaModule);
  m->path = ckc_arena_strdup(S->a, shown);
  m->key = ckc_arena_strdup(S->a, key);
  int file = ckc_diag_add_source(S->d, m->path, text, len);
  m->ast = ckc_parse(S->a, S->d, file);
  CKC_VEC_PUSH(S->a, S->mods, m);
  return m;
}

static SemaModule *find_by_key(Sema *S, const char *key) {
  for (int i = 0; i < S->mods.len; i++)
    if (strcmp(S->mods.items[i]->key, key) == 0) return S->mods.items[i];
  return NULL;
}

/* Identity of a file on disk: its real path when it has one. */
static const char *file_key(Sema *S, const char *path) {
  char buf[PATH_MAX];
  if (realpath(path, buf)) return ckc_arena_strdup(S->a, buf);
  return path;
}

/* A candidate file for an import: true if it exists; *out is the module
 * (already loaded, newly parsed, or NULL after a read error). */
static bool try_candidate(Sema *S, AstDecl *imp, const char *cand, SemaModule **out) {
  FILE *f = fopen(cand, "rb");
  if (!f) return false;
  fclose(f);
  const char *key = file_key(S, cand);
  SemaModule *m = find_by_key(S, key);
  if (!m) {
    char *text;
    size_t len;
    if (!read_file(S->a, cand, &text, &len)) {
      ckc_error(S->d, imp->name_loc, "E0200", "cannot read module '%s' at '%s': %s", imp->name,
                cand, strerror(errno));
      *out = NULL;
      return true;
    }
    m = new_module(S, cand, key, text, len);
    m->dotted = imp->name;
  }
  *out = m;
  return true;
}

/* import a.b -> a/b.ckm in the importer's directory, then -I dirs, then the
 * embedded stdlib. Returns the (possibly already loaded) module or NULL. */
static SemaModule *resolve_import(Sema *S, SemaModule *from, AstDecl *imp) {
  const char *dotted = imp->name;
  char *rel = ckc_arena_printf(S->a, "%s.ckm", dotted);
  for (char *p = rel; *p && strcmp(p, ".ckm") != 0; p++)
    if (*p == '.') *p = '/';
  CkcBuf searched;
  ckc_buf_init(&searched, S->a);
  SemaModule *m = NULL;
  int nsearched = 0;
  if (strncmp(from->key, "<embedded>/", 11) != 0) {
    const char *dir = dir_of(S->a, from->path);
    ckc_buf_puts(&searched, dir[0] ? dir : ".");
    nsearched++;
    if (try_candidate(S, imp, join_path(S->a, dir, rel), &m)) return m;
  }
  for (int i = 0; i < S->opt->nimport_dirs; i++) {
    const char *dir = S->opt->import_dirs[i];
    if (nsearched++) ckc_buf_puts(&searched, ", ");
    ckc_buf_puts(&searched, dir);
    if (try_candidate(S, imp, join_path(S->a, dir, rel), &m)) return m;
  }
  if (S->opt->use_embedded_stdlib) {
    if (nsearched++) ckc_buf_puts(&searched, ", ");
    ckc_buf_puts(&searched, "stdlib");
    const char *epath = ckc_arena_printf(S->a, "stdlib/%s", rel);
    const CkcEmbeddedFile *ef = ckc_embedded_find(epath);
    if (ef) {
      const char *key = ckc_arena_printf(S->a, "<embedded>/%s", epath);
      m = find_by_key(S, key);
      if (m) return m;
      char *text = ckc_arena_alloc(S->a, ef->len + 1);
      memcpy(text, ef->data, ef->len);
      m = new_module(S, epath, key, text, ef->len);
      m->dotted = dotted;
      return m;
    }
  }
  ckc_error(S->d, imp->name_loc, "E0200", "cannot find module '%s' (searched: %s)", dotted,
            ckc_buf_str(&searched));
  return NULL;
}

static void load_module(LoadCtx *L, SemaModule *m);

/* An import whose target is still loading its own imports closes a cycle:
 * the error sits on this import; the notes walk the chain from the target. */
static void report_cycle(LoadCtx *L, SemaModule *m, AstDecl *imp, SemaModule *target) {
  Sema *S = L->S;
  int k = 0;
  while (k < L->stack.len && L->stack.items[k].from != target) k++;
  CkcBuf chain;
  ckc_buf_init(&chain, S->a);
  for (int j = k; j < L->stack.len; j++)
    ckc_buf_printf(&chain, "'%s' -> ", base_of(L->stack.items[j].from->path));
  ckc_buf_printf(&chain, "'%s' -> '%s'", base_of(m->path), base_of(target->path));
  ckc_error(S->d, imp->name_loc, "E0201", "import cycle: %s", ckc_buf_str(&chain));
  for (int j = k; j < L->stack.len; j++) {
    ImportLink *ln = &L->stack.items[j];
    SemaModule *to = j + 1 < L->stack.len ? L->stack.items[j + 1].from : m;
    ckc_note(S->d, ln->imp->name_loc, "'%s' imports '%s' here", base_of(ln->from->path),
             base_of(to->path));
  }
}

/* Declares the module's names, then loads every import depth first. */
static void load_module(LoadCtx *L, SemaModule *m) {
  Sema *S = L->S;
  m->state = 1;
  if (!m->ast) {
    m->state = 2;
    return;
  }
  for (AstDecl *d = m->ast->decls; d; d = d->next) {
    switch (d->kind) {
    case AST_DECL_IMPORT: {
      if (!d->name) break;
      SemaModule *t = resolve_import(S, m, d);
      const char *alias = d->alias;
      if (!alias) {
        const char *dot = strrchr(d->name, '.');
        alias = dot ? dot + 1 : d->name;
      }
      SemaSym *s = declare(S, m, alias, SYM_IMPORT, d, d->name_loc);
      if (s) s->target = t;
      if (!t) break;
      if (t->state == 1) {
        report_cycle(L, m, d, t);
        if (s) s->target = NULL;
        break;
      }
      if (t->state == 0) {
        ImportLink ln = {m, d};
        CKC_VEC_PUSH(S->a, L->stack, ln);
        load_module(L, t);
        L->stack.len--;
      }
      break;
    }
    case AST_DECL_CONST: declare(S, m, d->name, SYM_CONST, d, d->name_loc); break;
    case AST_DECL_LAYER: declare(S, m, d->name, SYM_LAYER, d, d->name_loc); break;
    case AST_DECL_MODEL: declare(S, m, d->name, SYM_MODEL, d, d->name_loc); break;
    case AST_DECL_TRAIN: break; /* not a name: elaborated after the model (train.c) */
    }
  }
  m->state = 2;
}

/* Reads and parses the main file and everything it imports. */
bool sema_load_program(Sema *S, const char *path) {
  char *text;
  size_t len;
  if (!read_file(S->a, path, &text, &len))
    return ckc_error_noloc(S->d, "E0020", "cannot read '%s': %s", path, strerror(errno));
  SemaModule *m = new_module(S, path, file_key(S, path), text, len);
  m->is_main = true;
  S->main = m;
  LoadCtx L = {.S = S};
  load_module(&L, m);
  return S->d->nerrors == 0;
}
