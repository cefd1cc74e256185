/* util/arena.c - bump allocator in chained blocks; freed once per compilation. */
#include "util/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct CkcArenaBlock {
  CkcArenaBlock *next;
  size_t used, size;
  _Alignas(16) unsigned char data[];
};

enum { ARENA_BLOCK = 1 << 20 };

void ckc_arena_init(CkcArena *a) {
  a->head = NULL;
  a->total = 0;
}

void ckc_arena_free(CkcArena *a) {
  CkcArenaBlock *b = a->head;
  while (b) {
    CkcArenaBlock *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
  a->total = 0;
}

void *ckc_arena_alloc(CkcArena *a, size_t size) {
  size_t need = (size + 15) & ~(size_t)15;
  if (need < size) CKC_ICE("arena request overflows: %zu bytes", size);
  CkcArenaBlock *b = a->head;
  if (!b || b->size - b->used < need) {
    size_t bsize = need > ARENA_BLOCK ? need : ARENA_BLOCK;
    b = malloc(sizeof(CkcArenaBlock) + bsize);
    if (!b) CKC_ICE("out of memory (arena block of %zu bytes)", bsize);
    b->used = 0;
    b->size = bsize;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += need;
  a->total += need;
  memset(p, 0, need);
  return p;
}

void *ckc_arena_grow(CkcArena *a, void *old, size_t elem, size_t old_count, size_t new_count) {
  if (new_count && elem > SIZE_MAX / new_count) CKC_ICE("arena array overflows");
  void *p = ckc_arena_alloc(a, elem * new_count);
  if (old && old_count) memcpy(p, old, elem * (old_count < new_count ? old_count : new_count));
  return p;
}

char *ckc_arena_strndup(CkcArena *a, const char *s, size_t n) {
  char *p = ckc_arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *ckc_arena_strdup(CkcArena *a, const char *s) { return ckc_arena_strndup(a, s, strlen(s)); }

char *ckc_arena_vprintf(CkcArena *a, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) CKC_ICE("bad format string '%s'", fmt);
  char *p = ckc_arena_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *ckc_arena_printf(CkcArena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = ckc_arena_vprintf(a, fmt, ap);
  va_end(ap);
  return p;
}

/* ---- string buffer ---------------------------------------------------- */

static void buf_reserve(CkcBuf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t ncap = b->cap ? b->cap * 2 : 256;
  while (ncap < b->len + extra + 1) ncap *= 2;
  b->data = ckc_arena_grow(b->arena, b->data, 1, b->len, ncap);
  b->cap = ncap;
}

void ckc_buf_init(CkcBuf *b, CkcArena *a) {
  b->arena = a;
  b->data = NULL;
  b->len = b->cap = 0;
  buf_reserve(b, 0);
  b->data[0] = '\0';
}

void ckc_buf_puts(CkcBuf *b, const char *s) {
  size_t n = strlen(s);
  buf_reserve(b, n);
  memcpy(b->data + b->len, s, n + 1);
  b->len += n;
}

void ckc_buf_putc(CkcBuf *b, char c) {
  buf_reserve(b, 1);
  b->data[b->len++] = c;
  b->data[b->len] = '\0';
}

void ckc_buf_printf(CkcBuf *b, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) CKC_ICE("bad format string '%s'", fmt);
  buf_reserve(b, (size_t)n);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

const char *ckc_buf_str(CkcBuf *b) { return b->data; }

_Noreturn void ckc_ice(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "ckc: internal error: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (%s:%d)\nckc: this is a bug in ckc; please report it with the input that triggered it\n",
          file, line);
  va_end(ap);
  exit(3);
}
