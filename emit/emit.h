/* emit/emit.h - writes the generated C project for a flat, optimised module. */
#ifndef CKC_EMIT_H
#define CKC_EMIT_H

#include <stdbool.h>

#include "ir/ir.h"
#include "targets/target.h"

/* Writes DIR/Makefile, DIR/<model>.h, DIR/<model>.c, DIR/main.c and the rt-min
 * files the project uses. Byte-identical output for identical input and flags.
 * Reports I/O failures through diag (E09xx) and returns false. */
bool ckc_emit_project(const IrModule *m, const CkcTarget *t, const char *outdir, CkcDiag *d);
/* --emit=c: the model translation unit (<model>.c) to out. */
bool ckc_emit_model_c(const IrModule *m, const CkcTarget *t, CkcBuf *out, CkcDiag *d);

#endif
