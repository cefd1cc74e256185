/* rt-min/ck_mem.h - big buffers of the hosted runtime (parameters,
 * gradients, optimizer moments, arenas), on transparent huge pages where the
 * kernel gives them on request. */
#ifndef CK_MEM_H
#define CK_MEM_H

#include <stddef.h>

/* Buffers of at least this many bytes are asked for huge pages. */
#define CK_MEM_HUGE_MIN ((size_t)4 << 20)
/* The huge page size asked for (x86-64 and arm64 Linux: 2 MiB). */
#define CK_MEM_HUGE_PAGE ((size_t)2 << 20)

/* malloc(n) (n = 0 is 1 byte), released with free(); NULL when out of
 * memory. On Linux a buffer of at least CK_MEM_HUGE_MIN bytes is
 * CK_MEM_HUGE_PAGE aligned and its whole huge pages are advised
 * MADV_HUGEPAGE (Linux's default THP mode, "madvise", backs only such
 * ranges): the first touch then faults 2 MiB at a time instead of 4 KiB.
 * GPT-2-small's first training step faulted 1.8 GB in page by page and took
 * 7.3 s against 1.2 s for the next steps; with huge pages it takes 1.2 s.
 * Elsewhere, and for smaller buffers, plain malloc. */
void *ck_mem_alloc(size_t n);

#endif
