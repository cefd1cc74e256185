/* frontend/parse.c - ckc_parse: runs the reentrant scanner and the pure parser
 * (grammar/ckm.l, grammar/ckm.y) over one registered source file. */
#include <limits.h>
#include <string.h>

#include "frontend/ast.h"
#include "grammar/ckm.tab.h"
#include "grammar/lex.yy.h"

/* One parse, one context: the scanner reads the whole text from memory
 * (embedded NULs included), the parser appends declarations to the context
 * as it reduces them, so whatever was built before an early stop is kept. */
AstFile *ckc_parse(CkcArena *arena, CkcDiag *diag, int file) {
  if (file <= 0 || file >= diag->files.len) return NULL;
  const CkcSource *src = &diag->files.items[file];
  AstFile *f = CKC_NEW(arena, AstFile);
  f->path = src->path;
  f->file = file;
  if (src->len > (size_t)INT_MAX / 2) {
    CkcLoc at = {file, 1, 1, 1, 1};
    ckc_error(diag, at, "E0112", "source file too large (%zu bytes; at most %d)", src->len,
              INT_MAX / 2);
    return f;
  }

  CkmParseCtx *pc = CKC_NEW(arena, CkmParseCtx);
  pc->arena = arena;
  pc->diag = diag;
  pc->file = file;
  pc->line = 1;
  pc->col = 1;

  yyscan_t scanner;
  if (yylex_init(&scanner) != 0) CKC_ICE("cannot initialise the scanner");
  /* The text may be NULL for an empty source; flex needs a real buffer. */
  const char *text = src->text ? src->text : "";
  YY_BUFFER_STATE buf = yy_scan_bytes(text, (int)(src->text ? src->len : 0), scanner);
  ckm_parse_run(scanner, pc);
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);

  f->decls = pc->decls;
  return f;
}
