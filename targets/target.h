/* targets/target.h - a target is one descriptor (QBE's Target): adding a
 * target is adding a file here plus its rt-min pieces, not editing switches. */
#ifndef CKC_TARGET_H
#define CKC_TARGET_H

#include <stdbool.h>

typedef struct CkcTarget {
  const char *name;         /* "c99" */
  const char *description;  /* one line for --list-targets */
  const char *cc;           /* default compiler in the generated Makefile */
  const char *cflags;       /* "-std=c99 -O2 -Wall -Wextra -Werror" */
  const char *ldlibs;       /* "-lm" */
  bool hosted;              /* stdio, files, malloc in main.c allowed */
} CkcTarget;

/* NULL-terminated list, in --list-targets order. */
extern const CkcTarget *const ckc_targets[];
const CkcTarget *ckc_target_find(const char *name);

#endif
