/* rt-min/ck_mem.c - see ck_mem.h. */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise */
#endif
#include "ck_mem.h"

#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

void *ck_mem_alloc(size_t n) {
#if defined(MADV_HUGEPAGE)
  void *q = NULL;
  if (n >= CK_MEM_HUGE_MIN && posix_memalign(&q, CK_MEM_HUGE_PAGE, n) == 0) {
    /* a hint: where it fails (THP off, old kernel) the buffer is just 4 KiB pages */
    (void)madvise(q, n / CK_MEM_HUGE_PAGE * CK_MEM_HUGE_PAGE, MADV_HUGEPAGE);
    return q;
  }
#endif
  return malloc(n ? n : 1);
}
