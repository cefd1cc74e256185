/* util/diag.h - diagnostics: "file:line:col: error: message [E0123]", the source
 * line, a ^~~~ range, then note: lines (cproc, chibicc). Errors accumulate up
 * to a limit (SQLite's nErr); internal errors go through ckc_ice instead. */
#ifndef CKC_DIAG_H
#define CKC_DIAG_H

#include <stdbool.h>
#include <stdio.h>

#include "util/arena.h"

/* A source span. Lines and columns are 1-based; end is inclusive. file is an
 * index into CkcDiag.files (0 = unknown / command line). */
typedef struct CkcLoc {
  int file;
  int line, col;
  int end_line, end_col;
} CkcLoc;

typedef struct CkcSource {
  const char *path;   /* as given on the command line or as resolved by import */
  const char *text;   /* NUL-terminated contents (may contain other NULs) */
  size_t len;
} CkcSource;

typedef struct CkcDiag {
  CkcArena *arena;
  FILE *out;          /* where diagnostics go (stderr by default) */
  CKC_VEC(CkcSource) files; /* index 0 is a placeholder for "no file" */
  int nerrors;
  int nwarnings;
  int max_errors;     /* stop reporting after this many (default 20) */
  bool color;
} CkcDiag;

void ckc_diag_init(CkcDiag *d, CkcArena *a, FILE *out);
/* Registers a source file; returns its index for CkcLoc.file. */
int ckc_diag_add_source(CkcDiag *d, const char *path, const char *text, size_t len);
const char *ckc_diag_path(const CkcDiag *d, int file);

/* id is a stable error-index id such as "E0301" (docs/errors.md); fmt is the
 * one-line message. Returns false so callers can `return ckc_error(...)`. */
bool ckc_error(CkcDiag *d, CkcLoc loc, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ckc_warning(CkcDiag *d, CkcLoc loc, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A note attached to the previous error (printed only if it was printed). */
void ckc_note(CkcDiag *d, CkcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error with no source position: "ckc: error: message [id]". */
bool ckc_error_noloc(CkcDiag *d, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool ckc_diag_too_many(const CkcDiag *d);

/* A span covering a..b. */
CkcLoc ckc_loc_span(CkcLoc a, CkcLoc b);

#endif
