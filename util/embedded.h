/* util/embedded.h - files compiled into ckc (rt-min sources, stdlib .ckm). */
#ifndef CKC_EMBEDDED_H
#define CKC_EMBEDDED_H

#include <stddef.h>

typedef struct CkcEmbeddedFile {
  const char *path; /* "rt-min/ck_io.c", "stdlib/nn.ckm" */
  const char *data;
  size_t len;
} CkcEmbeddedFile;

/* Terminated by an entry with path NULL. */
extern const CkcEmbeddedFile ckc_embedded_files[];
/* NULL if absent. */
const CkcEmbeddedFile *ckc_embedded_find(const char *path);

#endif
