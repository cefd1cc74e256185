/* frontend/sema.h - from ASTs to IR: imports, name resolution, constant
 * evaluation (with -D overrides), type and shape checking, and elaboration of
 * the model's fns into IR graphs (one graph per layer instantiation; layer
 * calls stay CALL nodes until the inline pass). */
#ifndef CKC_SEMA_H
#define CKC_SEMA_H

#include "frontend/ast.h"
#include "ir/ir.h"

typedef struct CkcDefine {
  const char *name;
  const char *value; /* as typed: "16", "0.5" */
} CkcDefine;

typedef struct CkcSemaOptions {
  const char *const *import_dirs; /* -I DIR, searched after the importing file's directory */
  int nimport_dirs;
  const CkcDefine *defines;       /* -D NAME=VALUE */
  int ndefines;
  bool use_embedded_stdlib;       /* fall back to the stdlib compiled into ckc (default true) */
} CkcSemaOptions;

/* Loads and parses path (registering it with diag), follows its imports,
 * checks everything and builds the module. Returns NULL if any error was
 * reported (diag->nerrors > 0). Never crashes on bad input. */
IrModule *ckc_sema_file(CkcArena *a, CkcDiag *d, const char *path, const CkcSemaOptions *opt);

#endif
