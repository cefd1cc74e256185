/* tools/ckc-lint.c - validates emitted C with libclang: every file is parsed
 * as strict C99 with -Wall -Wextra -Werror -pedantic, every diagnostic is
 * printed (file:line:col: severity: message), and the exit status says
 * whether any warning or error was seen. It checks what a compiler on the
 * user's machine would see, independently of the host's cc.
 *
 *   ckc-lint [--target=TRIPLE] [-I dir]... FILE.c...
 * Exit: 0 clean, 1 diagnostics found or a file could not be parsed, 2 usage. */
#include <clang-c/Index.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CKC_CLANG_RESOURCE_DIR
#define CKC_CLANG_RESOURCE_DIR ""
#endif

#define LINT_MAX_ARGS 256

static int lint_usage(void) {
  fprintf(stderr, "usage: ckc-lint [--target=TRIPLE] [-I dir]... FILE.c...\n");
  return 2;
}

/* Parses one file and prints its diagnostics; returns how many were warnings
 * or worse (a parse failure counts as one). */
static int lint_file(CXIndex index, const char *path, const char *const *args, int nargs) {
  CXTranslationUnit tu = NULL;
  enum CXErrorCode rc = clang_parseTranslationUnit2(index, path, args, nargs, NULL, 0,
                                                    CXTranslationUnit_None, &tu);
  if (rc != CXError_Success || !tu) {
    fprintf(stderr, "%s: error: cannot parse (libclang error %d)\n", path, (int)rc);
    return 1;
  }
  int bad = 0;
  unsigned n = clang_getNumDiagnostics(tu);
  for (unsigned i = 0; i < n; i++) {
    CXDiagnostic dg = clang_getDiagnostic(tu, i);
    enum CXDiagnosticSeverity sev = clang_getDiagnosticSeverity(dg);
    CXString s = clang_formatDiagnostic(dg, clang_defaultDiagnosticDisplayOptions());
    fprintf(stderr, "%s\n", clang_getCString(s));
    clang_disposeString(s);
    if (sev >= CXDiagnostic_Warning) bad++;
    clang_disposeDiagnostic(dg);
  }
  clang_disposeTranslationUnit(tu);
  return bad;
}

int main(int argc, char **argv) {
  const char *args[LINT_MAX_ARGS];
  int nargs = 0;
  const char *files[LINT_MAX_ARGS];
  int nfiles = 0;
  args[nargs++] = "-x";
  args[nargs++] = "c";
  args[nargs++] = "-std=c99";
  args[nargs++] = "-Wall";
  args[nargs++] = "-Wextra";
  args[nargs++] = "-Werror";
  args[nargs++] = "-pedantic";
  if (CKC_CLANG_RESOURCE_DIR[0]) {
    args[nargs++] = "-resource-dir";
    args[nargs++] = CKC_CLANG_RESOURCE_DIR;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (nargs >= LINT_MAX_ARGS - 2 || nfiles >= LINT_MAX_ARGS) {
      fprintf(stderr, "ckc-lint: too many arguments\n");
      return 2;
    }
    if (strncmp(a, "--target=", 9) == 0) {
      args[nargs++] = a;
    } else if (strcmp(a, "-I") == 0) {
      if (i + 1 >= argc) return lint_usage();
      args[nargs++] = "-I";
      args[nargs++] = argv[++i];
    } else if (strncmp(a, "-I", 2) == 0) {
      args[nargs++] = a;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      lint_usage();
      return 0;
    } else if (a[0] == '-') {
      fprintf(stderr, "ckc-lint: unknown option '%s'\n", a);
      return lint_usage();
    } else {
      files[nfiles++] = a;
    }
  }
  if (nfiles == 0) return lint_usage();
  CXIndex index = clang_createIndex(0, 0);
  int bad = 0;
  for (int i = 0; i < nfiles; i++) bad += lint_file(index, files[i], args, nargs);
  clang_disposeIndex(index);
  return bad ? 1 : 0;
}
