/* util/diag.c - diagnostic printing with source excerpts and caret ranges. */
#include "util/diag.h"

#include <stdarg.h>
#include <string.h>

void ckc_diag_init(CkcDiag *d, CkcArena *a, FILE *out) {
  memset(d, 0, sizeof *d);
  d->arena = a;
  d->out = out ? out : stderr;
  d->max_errors = 20;
  CkcSource none = {"<command line>", "", 0};
  CKC_VEC_PUSH(a, d->files, none);
}

int ckc_diag_add_source(CkcDiag *d, const char *path, const char *text, size_t len) {
  CkcSource s = {ckc_arena_strdup(d->arena, path), text, len};
  CKC_VEC_PUSH(d->arena, d->files, s);
  return d->files.len - 1;
}

const char *ckc_diag_path(const CkcDiag *d, int file) {
  if (file <= 0 || file >= d->files.len) return "<command line>";
  return d->files.items[file].path;
}

bool ckc_diag_too_many(const CkcDiag *d) { return d->nerrors >= d->max_errors; }

CkcLoc ckc_loc_span(CkcLoc a, CkcLoc b) {
  CkcLoc r = a;
  if (b.file == a.file && (b.end_line > a.end_line || (b.end_line == a.end_line && b.end_col > a.end_col))) {
    r.end_line = b.end_line;
    r.end_col = b.end_col;
  }
  return r;
}

/* Prints the source line of loc and a ^~~~ marker under the span (only its
 * first line when the span covers several). Tabs are kept so carets align. */
static void print_excerpt(CkcDiag *d, CkcLoc loc) {
  if (loc.file <= 0 || loc.file >= d->files.len || loc.line <= 0) return;
  const CkcSource *s = &d->files.items[loc.file];
  const char *p = s->text, *end = s->text + s->len;
  for (int l = 1; l < loc.line && p < end; p++)
    if (*p == '\n') l++;
  if (p >= end && loc.line > 1) return;
  const char *eol = p;
  while (eol < end && *eol != '\n') eol++;
  size_t n = (size_t)(eol - p);
  if (n > 400) n = 400; /* do not print megabytes of one-line garbage */
  fputc(' ', d->out);
  fputc(' ', d->out);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    fputc(c == '\t' || (c >= 0x20 && c != 0x7f) ? c : '?', d->out);
  }
  fputc('\n', d->out);
  fputc(' ', d->out);
  fputc(' ', d->out);
  int col = loc.col < 1 ? 1 : loc.col;
  int last = (loc.end_line == loc.line && loc.end_col >= col) ? loc.end_col : (int)n;
  if (last < col) last = col;
  for (int c = 1; c < col && (size_t)(c - 1) < n; c++) fputc(p[c - 1] == '\t' ? '\t' : ' ', d->out);
  fputc('^', d->out);
  for (int c = col + 1; c <= last && c <= 400; c++) fputc('~', d->out);
  fputc('\n', d->out);
}

static void vreport(CkcDiag *d, CkcLoc loc, const char *kind, const char *id, const char *fmt, va_list ap) {
  if (loc.file > 0 && loc.file < d->files.len)
    fprintf(d->out, "%s:%d:%d: %s: ", d->files.items[loc.file].path, loc.line, loc.col, kind);
  else
    fprintf(d->out, "ckc: %s: ", kind);
  vfprintf(d->out, fmt, ap);
  if (id) fprintf(d->out, " [%s]", id);
  fputc('\n', d->out);
  print_excerpt(d, loc);
}

bool ckc_error(CkcDiag *d, CkcLoc loc, const char *id, const char *fmt, ...) {
  d->nerrors++;
  if (d->nerrors > d->max_errors) return false;
  va_list ap;
  va_start(ap, fmt);
  vreport(d, loc, "error", id, fmt, ap);
  va_end(ap);
  if (d->nerrors == d->max_errors)
    fprintf(d->out, "ckc: note: stopping after %d errors (--max-errors=N)\n", d->max_errors);
  return false;
}

void ckc_warning(CkcDiag *d, CkcLoc loc, const char *id, const char *fmt, ...) {
  d->nwarnings++;
  va_list ap;
  va_start(ap, fmt);
  vreport(d, loc, "warning", id, fmt, ap);
  va_end(ap);
}

void ckc_note(CkcDiag *d, CkcLoc loc, const char *fmt, ...) {
  if (d->nerrors > d->max_errors) return; /* its error was suppressed */
  va_list ap;
  va_start(ap, fmt);
  vreport(d, loc, "note", NULL, fmt, ap);
  va_end(ap);
}

bool ckc_error_noloc(CkcDiag *d, const char *id, const char *fmt, ...) {
  d->nerrors++;
  if (d->nerrors > d->max_errors) return false;
  va_list ap;
  va_start(ap, fmt);
  CkcLoc none = {0, 0, 0, 0, 0};
  vreport(d, none, "error", id, fmt, ap);
  va_end(ap);
  return false;
}
