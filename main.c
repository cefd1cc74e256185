/* main.c - the ckc driver (QBE's main.c: the whole pipeline on one screen).
 *
 *   parse arguments -> sema (parse, imports, checks, IR)
 *                   -> for each pass in ckc_passes[]: run, verify, maybe dump
 *                   -> emit (a project with -o, or text with --emit=)
 *
 * One CkcArena holds everything for the compilation and is freed once at the
 * end. Exit status: 0 success, 1 user error (diagnostics printed), 2 usage
 * error, 3 internal error (ckc_ice). docs/cli.md documents every flag. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "emit/emit.h"
#include "frontend/sema.h"
#include "ir/ir.h"
#include "lower/memplan.h"
#include "passes/passes.h"
#include "targets/target.h"
#include "util/arena.h"
#include "util/diag.h"

#define CKC_VERSION "0.1.0"

enum { EXIT_USER = 1, EXIT_USAGE = 2 };

typedef enum CkcAction { ACT_COMPILE, ACT_HELP, ACT_VERSION, ACT_LIST_TARGETS } CkcAction;

typedef struct CkcOptions {
  CkcAction action;
  const char *input;
  const char *outdir;      /* -o */
  const char *target_name; /* -t; default c99 */
  const char *emit;        /* --emit=ir|json|dot|c */
  CKC_VEC(const char *) dump_after;
  CKC_VEC(const char *) disabled;
  CKC_VEC(CkcDefine) defines;
  CKC_VEC(const char *) import_dirs;
  int max_errors;
  bool verify; /* accepted; this build verifies after every pass anyway */
  bool mem_report;             /* --mem-report: print the memory plan (lower/memplan.h) */
  const char *recompute;       /* --recompute=SPEC: recompute cheap activations in the backward */
} CkcOptions;

/* Everything one run needs: no globals. */
typedef struct CkcDriver {
  CkcArena *arena;
  CkcDiag diag;
  CkcOptions opt;
  CkcBuf out; /* what goes to stdout, written once at the end */
} CkcDriver;

/* ---- usage ------------------------------------------------------------------------------ */

static void print_help(CkcBuf *b) {
  ckc_buf_puts(b,
               "usage: ckc FILE.ckm -t TARGET -o DIR        write a C project for TARGET into DIR\n"
               "       ckc FILE.ckm --emit=ir|json|dot|c    print the IR (text, JSON, Graphviz) or the model C\n"
               "       ckc --list-targets | --version | --help\n"
               "\n"
               "options:\n"
               "  -o DIR               write the generated project into DIR\n"
               "  -t TARGET            target (default c99; see --list-targets)\n"
               "  --emit=KIND          print KIND to stdout: ir, json, dot, c (the model translation unit)\n"
               "  --dump-after=PASS    print the IR after PASS (repeatable; 'sema' = before any pass)\n"
               "  --disable-pass=PASS  skip an optional pass (repeatable)\n"
               "  -D NAME=VALUE        override the top-level constant NAME of FILE (also -DNAME=VALUE)\n"
               "  -I DIR               search DIR for imports (repeatable; also -IDIR)\n"
               "  --max-errors=N       stop after N errors (default 20)\n"
               "  --mem-report         print each entry's memory sections, peak and lower bound\n"
               "  --recompute=OPS      recompute OPS (gelu,relu,silu,sigmoid,tanh,layernorm,rmsnorm;\n"
               "                       cheap = all; none) in the backward instead of saving them\n"
               "  --verify             check the IR after every pass (always on in this build)\n"
               "  --list-targets       list the targets and exit\n"
               "  --version            print the version and exit\n"
               "  --help               print this help and exit\n"
               "\n"
               "passes, in pipeline order:\n");
  for (const CkcPass *p = ckc_passes; p->name; p++)
    ckc_buf_printf(b, "  %-8s %s%s\n", p->name, p->summary, p->required ? " (required)" : "");
  ckc_buf_puts(b, "\nexit status: 0 success, 1 errors in the input, 2 usage error, 3 internal error\n");
}

/* "ckc: error: ... [E00xx]" + the hint; returns the usage exit status. */
static int usage_error(CkcDriver *dr, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage_error(CkcDriver *dr, const char *id, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ckc_error_noloc(&dr->diag, id, "%s", msg);
  fprintf(dr->diag.out, "try 'ckc --help'\n");
  return EXIT_USAGE;
}

/* The value of `-o DIR` / `-oDIR` / `--opt=VAL` / `--opt VAL`; NULL if missing. */
static const char *option_value(const char *arg, size_t optlen, int argc, char **argv, int *i) {
  if (arg[optlen] == '=') return arg + optlen + 1;
  if (arg[optlen] != '\0') return arg[1] == '-' ? NULL : arg + optlen; /* -oDIR */
  if (*i + 1 >= argc) return NULL;
  return argv[++*i];
}

static bool is_identifier(const char *s, size_t n) {
  if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
    return false;
  for (size_t k = 1; k < n; k++)
    if (!(s[k] == '_' || (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
          (s[k] >= '0' && s[k] <= '9')))
      return false;
  return true;
}

static bool is_dump_name(const char *s) { return strcmp(s, "sema") == 0 || ckc_pass_find(s) != NULL; }

static const char *pass_names(CkcArena *a, bool with_sema) {
  CkcBuf b;
  ckc_buf_init(&b, a);
  if (with_sema) ckc_buf_puts(&b, "sema");
  for (const CkcPass *p = ckc_passes; p->name; p++) ckc_buf_printf(&b, "%s%s", b.len ? ", " : "", p->name);
  return ckc_buf_str(&b);
}

/* A flag that takes a value: accepts `-x V`, `-xV`, `--long=V`, `--long V`. */
#define TAKE_VALUE(flagname, len)                                                      \
  do {                                                                                 \
    v = option_value(a, (len), argc, argv, &i);                                        \
    if (!v || !*v) return usage_error(dr, "E0002", "missing argument to '%s'", flagname); \
  } while (0)

/* Returns -1 to go on, or an exit status. */
static int parse_args(CkcDriver *dr, int argc, char **argv) {
  CkcOptions *o = &dr->opt;
  CkcArena *ar = dr->arena;
  bool only_files = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (only_files || a[0] != '-' || a[1] == '\0') {
      if (o->input) return usage_error(dr, "E0004", "more than one input file ('%s' and '%s')", o->input, a);
      o->input = a;
    } else if (strcmp(a, "--") == 0) {
      only_files = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      o->action = ACT_HELP;
    } else if (strcmp(a, "--version") == 0) {
      if (o->action == ACT_COMPILE) o->action = ACT_VERSION;
    } else if (strcmp(a, "--list-targets") == 0) {
      if (o->action == ACT_COMPILE) o->action = ACT_LIST_TARGETS;
    } else if (strcmp(a, "--verify") == 0) {
      o->verify = true;
    } else if (strncmp(a, "-o", 2) == 0 && a[1] == 'o') {
      TAKE_VALUE("-o", 2);
      o->outdir = v;
    } else if (strncmp(a, "-t", 2) == 0) {
      TAKE_VALUE("-t", 2);
      o->target_name = v;
    } else if (strncmp(a, "--target", 8) == 0 && (a[8] == '=' || a[8] == '\0')) {
      TAKE_VALUE("--target", 8);
      o->target_name = v;
    } else if (strncmp(a, "--emit", 6) == 0 && (a[6] == '=' || a[6] == '\0')) {
      TAKE_VALUE("--emit", 6);
      if (strcmp(v, "ir") && strcmp(v, "json") && strcmp(v, "dot") && strcmp(v, "c"))
        return usage_error(dr, "E0010", "unknown --emit kind '%s' (expected ir, json, dot or c)", v);
      o->emit = v;
    } else if (strncmp(a, "--dump-after", 12) == 0 && (a[12] == '=' || a[12] == '\0')) {
      TAKE_VALUE("--dump-after", 12);
      if (!is_dump_name(v))
        return usage_error(dr, "E0007", "unknown pass '%s' in --dump-after (passes: %s)", v, pass_names(ar, true));
      CKC_VEC_PUSH(ar, o->dump_after, v);
    } else if (strncmp(a, "--disable-pass", 14) == 0 && (a[14] == '=' || a[14] == '\0')) {
      TAKE_VALUE("--disable-pass", 14);
      const CkcPass *p = ckc_pass_find(v);
      if (!p)
        return usage_error(dr, "E0007", "unknown pass '%s' in --disable-pass (passes: %s)", v, pass_names(ar, false));
      if (p->required)
        return usage_error(dr, "E0008", "pass '%s' is required and cannot be disabled", v);
      CKC_VEC_PUSH(ar, o->disabled, v);
    } else if (strcmp(a, "--mem-report") == 0) {
      o->mem_report = true;
    } else if (strncmp(a, "--recompute", 11) == 0 && (a[11] == '=' || a[11] == '\0')) {
      TAKE_VALUE("--recompute", 11);
      MemplanRecompute rc;
      const char *why = NULL;
      if (!memplan_recompute_parse(v, &rc, &why, ar))
        return usage_error(dr, "E0016", "bad --recompute '%s': %s", v, why);
      o->recompute = v;
    } else if (strncmp(a, "-D", 2) == 0) {
      TAKE_VALUE("-D", 2);
      const char *eq = strchr(v, '=');
      if (!eq || !is_identifier(v, (size_t)(eq - v)) || eq[1] == '\0')
        return usage_error(dr, "E0006", "bad -D '%s': expected NAME=VALUE", v);
      CkcDefine def = {ckc_arena_strndup(ar, v, (size_t)(eq - v)), eq + 1};
      CKC_VEC_PUSH(ar, o->defines, def);
    } else if (strncmp(a, "-I", 2) == 0) {
      TAKE_VALUE("-I", 2);
      CKC_VEC_PUSH(ar, o->import_dirs, v);
    } else if (strncmp(a, "--max-errors", 12) == 0 && (a[12] == '=' || a[12] == '\0')) {
      TAKE_VALUE("--max-errors", 12);
      char *end = NULL;
      errno = 0;
      long n = strtol(v, &end, 10);
      if (errno || *end || n < 1 || n > 1000000)
        return usage_error(dr, "E0011", "bad --max-errors '%s': expected a number from 1 to 1000000", v);
      o->max_errors = (int)n;
    } else {
      return usage_error(dr, "E0001", "unknown option '%s'", a);
    }
  }
  return -1;
}

/* ---- the pipeline -------------------------------------------------------------------------- */

/* Missing, unreadable, directory or empty input: a user error before sema,
 * with the system's reason. */
static bool check_input(CkcDriver *dr) {
  const char *path = dr->opt.input;
  struct stat st;
  if (stat(path, &st) != 0)
    return ckc_error_noloc(&dr->diag, "E0020", "cannot read '%s': %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return ckc_error_noloc(&dr->diag, "E0020", "cannot read '%s': %s", path, strerror(EISDIR));
  FILE *f = fopen(path, "rb");
  if (!f) return ckc_error_noloc(&dr->diag, "E0020", "cannot read '%s': %s", path, strerror(errno));
  int c = fgetc(f);
  bool err = ferror(f);
  int saved = errno;
  fclose(f);
  if (err) return ckc_error_noloc(&dr->diag, "E0020", "cannot read '%s': %s", path, strerror(saved));
  if (c == EOF)
    return ckc_error_noloc(&dr->diag, "E0021", "'%s' is empty: expected a model definition", path);
  return true;
}

static bool wants(const CkcOptions *o, const char *name, bool dump) {
  for (int i = 0; i < (dump ? o->dump_after.len : o->disabled.len); i++)
    if (strcmp(dump ? o->dump_after.items[i] : o->disabled.items[i], name) == 0) return true;
  return false;
}

/* ir_verify after every stage: a failure is ckc's bug, named after the stage. */
static void verify_after(CkcDriver *dr, const IrModule *m, bool flat, const char *stage) {
  CkcBuf err;
  ckc_buf_init(&err, dr->arena);
  if (!ir_verify(m, flat, &err))
    CKC_ICE("the IR is invalid after %s '%s':\n%s", strcmp(stage, "sema") ? "pass" : "stage", stage,
            ckc_buf_str(&err));
}

static void dump_after(CkcDriver *dr, const IrModule *m, const char *stage, bool disabled) {
  if (!wants(&dr->opt, stage, true)) return;
  ckc_buf_printf(&dr->out, "// ---- IR after %s%s ----\n", stage, disabled ? " (disabled)" : "");
  ir_print_module(m, &dr->out);
}

static int compile(CkcDriver *dr) {
  CkcOptions *o = &dr->opt;
  if (!o->input) return usage_error(dr, "E0003", "no input file");
  if (o->emit && o->outdir)
    return usage_error(dr, "E0009", "-o and --emit=%s cannot be combined: give one of them", o->emit);
  if (!o->emit && !o->outdir && o->dump_after.len == 0 && !o->mem_report)
    return usage_error(dr, "E0009", "nothing to do: give -o DIR (write a project) or --emit=ir|json|dot|c");
  const CkcTarget *target = ckc_target_find(o->target_name ? o->target_name : "c99");
  if (!target) {
    CkcBuf names;
    ckc_buf_init(&names, dr->arena);
    for (int i = 0; ckc_targets[i]; i++) ckc_buf_printf(&names, "%s%s", i ? ", " : "", ckc_targets[i]->name);
    return usage_error(dr, "E0005", "unknown target '%s' (targets: %s)", o->target_name,
                       ckc_buf_str(&names));
  }
  if (!check_input(dr)) return EXIT_USER;

  CkcSemaOptions so = {o->import_dirs.items, o->import_dirs.len, o->defines.items, o->defines.len, true};
  IrModule *m = ckc_sema_file(dr->arena, &dr->diag, o->input, &so);
  if (!m || dr->diag.nerrors > 0) {
    if (dr->diag.nerrors == 0) CKC_ICE("sema failed without reporting an error");
    return EXIT_USER;
  }
  /* The flags that shaped the code, in command-line order, for manifests. */
  CkcBuf flags;
  ckc_buf_init(&flags, dr->arena);
  for (int i = 0; i < o->defines.len; i++)
    ckc_buf_printf(&flags, "%s-D %s=%s", i ? " " : "", o->defines.items[i].name, o->defines.items[i].value);
  m->flags = ckc_arena_strdup(dr->arena, ckc_buf_str(&flags));
  verify_after(dr, m, false, "sema");
  dump_after(dr, m, "sema", false);

  bool flat = false;
  for (const CkcPass *p = ckc_passes; p->name; p++) {
    bool off = wants(o, p->name, false);
    if (!off) {
      if (!p->run(m, &dr->diag) || dr->diag.nerrors > 0) {
        if (dr->diag.nerrors == 0) CKC_ICE("pass '%s' failed without reporting an error", p->name);
        return EXIT_USER;
      }
      if (strcmp(p->name, "inline") == 0) flat = true;
      verify_after(dr, m, flat, p->name);
    }
    dump_after(dr, m, p->name, off);
  }

  if (o->recompute) { /* after every pass: cse would merge the clones back */
    MemplanRecompute rc;
    const char *why = NULL;
    if (!memplan_recompute_parse(o->recompute, &rc, &why, dr->arena)) CKC_ICE("--recompute: %s", why);
    memplan_recompute(m, &rc);
    verify_after(dr, m, flat, "recompute");
  }
  if (o->mem_report) {
    LowerModule *lm = lower_module(m, target, &dr->diag);
    if (!lm || dr->diag.nerrors > 0) return EXIT_USER;
    memplan_report(lm, &dr->out);
    if (!o->outdir && !o->emit) return 0;
  }
  if (o->outdir) return ckc_emit_project(m, target, o->outdir, &dr->diag) ? 0 : EXIT_USER;
  if (!o->emit) return 0;
  if (strcmp(o->emit, "ir") == 0) {
    ir_print_module(m, &dr->out);
  } else if (strcmp(o->emit, "json") == 0) {
    const char *js = ir_to_json(m, dr->arena);
    ckc_buf_puts(&dr->out, js);
    if (!*js || js[strlen(js) - 1] != '\n') ckc_buf_putc(&dr->out, '\n');
  } else if (strcmp(o->emit, "dot") == 0) {
    ir_to_dot(m, &dr->out);
  } else if (!ckc_emit_model_c(m, target, &dr->out, &dr->diag)) {
    return EXIT_USER;
  }
  return 0;
}

static int run(CkcDriver *dr, int argc, char **argv) {
  int rc = parse_args(dr, argc, argv);
  if (rc >= 0) return rc;
  if (dr->opt.max_errors > 0) dr->diag.max_errors = dr->opt.max_errors;
  switch (dr->opt.action) {
  case ACT_HELP: print_help(&dr->out); return 0;
  case ACT_VERSION: ckc_buf_puts(&dr->out, "ckc " CKC_VERSION "\n"); return 0;
  case ACT_LIST_TARGETS:
    for (int i = 0; ckc_targets[i]; i++)
      ckc_buf_printf(&dr->out, "%-14s %s\n", ckc_targets[i]->name, ckc_targets[i]->description);
    return 0;
  case ACT_COMPILE: break;
  }
  return compile(dr);
}

int main(int argc, char **argv) {
  CkcArena arena;
  ckc_arena_init(&arena);
  CkcDriver dr;
  memset(&dr, 0, sizeof dr);
  dr.arena = &arena;
  ckc_diag_init(&dr.diag, &arena, stderr);
  ckc_buf_init(&dr.out, &arena);
  int rc = run(&dr, argc, argv);
  /* stdout is written even after an error: dumps before the failing stage help. */
  if (dr.out.len && fwrite(dr.out.data, 1, dr.out.len, stdout) != dr.out.len) rc = rc ? rc : EXIT_USER;
  if (fflush(stdout) != 0 || ferror(stdout)) {
    ckc_error_noloc(&dr.diag, "E0022", "cannot write to standard output: %s", strerror(errno));
    if (rc == 0) rc = EXIT_USER;
  }
  ckc_arena_free(&arena);
  return rc;
}
