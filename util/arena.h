/* util/arena.h - one arena per compilation: every object ckc builds lives here
 * and is freed at once by ckc_arena_free (chibicc, QBE's pool, ggml's context). */
#ifndef CKC_ARENA_H
#define CKC_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct CkcArenaBlock CkcArenaBlock;

typedef struct CkcArena {
  CkcArenaBlock *head;
  size_t total; /* bytes handed out, for statistics */
} CkcArena;

void ckc_arena_init(CkcArena *a);
void ckc_arena_free(CkcArena *a);
/* Zeroed, 16-byte aligned memory; aborts through ckc_ice on exhaustion. */
void *ckc_arena_alloc(CkcArena *a, size_t size);
/* Grows an arena array: returns new storage of new_count elements holding the
 * old_count elements of old (the old storage stays in the arena). */
void *ckc_arena_grow(CkcArena *a, void *old, size_t elem, size_t old_count, size_t new_count);
char *ckc_arena_strdup(CkcArena *a, const char *s);
char *ckc_arena_strndup(CkcArena *a, const char *s, size_t n);
char *ckc_arena_printf(CkcArena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *ckc_arena_vprintf(CkcArena *a, const char *fmt, va_list ap);

#define CKC_NEW(arena, T) ((T *)ckc_arena_alloc((arena), sizeof(T)))
#define CKC_NEW_ARRAY(arena, T, n) ((T *)ckc_arena_alloc((arena), sizeof(T) * (size_t)(n)))

/* Growable array living in an arena: CKC_VEC(IrNode *) nodes;  */
#define CKC_VEC(T) struct { T *items; int len, cap; }
#define CKC_VEC_PUSH(arena, v, x)                                                     \
  do {                                                                                \
    if ((v).len == (v).cap) {                                                         \
      int ncap_ = (v).cap ? (v).cap * 2 : 8;                                          \
      (v).items = ckc_arena_grow((arena), (v).items, sizeof(*(v).items), (size_t)(v).len, \
                                 (size_t)ncap_);                                      \
      (v).cap = ncap_;                                                                \
    }                                                                                 \
    (v).items[(v).len++] = (x);                                                       \
  } while (0)

/* Growable string buffer in an arena (for emitters and printers). */
typedef struct CkcBuf {
  CkcArena *arena;
  char *data;
  size_t len, cap;
} CkcBuf;

void ckc_buf_init(CkcBuf *b, CkcArena *a);
void ckc_buf_puts(CkcBuf *b, const char *s);
void ckc_buf_putc(CkcBuf *b, char c);
void ckc_buf_printf(CkcBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* NUL-terminated contents (valid until the next write). */
const char *ckc_buf_str(CkcBuf *b);

/* Internal compiler error: a bug in ckc, never a user error. Prints
 * "ckc: internal error: ..." and exits with status 3. */
_Noreturn void ckc_ice(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define CKC_ICE(...) ckc_ice(__FILE__, __LINE__, __VA_ARGS__)
#define CKC_ASSERT(c)                                  \
  do {                                                 \
    if (!(c)) CKC_ICE("assertion failed: %s", #c);     \
  } while (0)

#endif
