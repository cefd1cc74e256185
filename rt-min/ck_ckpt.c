/* rt-min/ck_ckpt.c - checkpoint files (format in ck_ckpt.h and docs/train.md).
 *
 * The reader loads the whole file, checks every field and the checksum, and
 * only then copies into the caller's buffers: a corrupt or truncated file
 * changes nothing. Integers and floats are stored little-endian byte by byte
 * so files move between hosts. */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include "ck_ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const unsigned char ck_ckpt_magic[8] = {'C', 'K', 'C', 'K', 'P', 'T', 0x1a, '\n'};

#if defined(__GNUC__)
#define CK_CKPT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CK_CKPT_PRINTF(a, b)
#endif

static int ckpt_fail(CkIoErr *err, const char *path, const char *fmt, ...) CK_CKPT_PRINTF(3, 4);
static int ckpt_fail(CkIoErr *err, const char *path, const char *fmt, ...) {
  va_list ap;
  int n = snprintf(err->msg, sizeof err->msg, "%s: ", path);
  if (n < 0) n = 0;
  if ((size_t)n < sizeof err->msg) {
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return CK_IO_ERR;
}

static void put_u64(unsigned char *p, uint64_t v) {
  int i;
  for (i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u32(unsigned char *p, uint32_t v) {
  int i;
  for (i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  int i;
  for (i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_f32s(unsigned char *p, const float *v, int64_t n) {
  int64_t i;
  for (i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    put_u32(p + 4 * i, u);
  }
}
static void get_f32s(float *v, const unsigned char *p, int64_t n) {
  int64_t i;
  for (i = 0; i < n; i++) {
    uint32_t u = get_u32(p + 4 * i);
    memcpy(&v[i], &u, 4);
  }
}

static const char *optim_name(int32_t o) {
  return o == CK_OPTIM_SGD ? "sgd" : o == CK_OPTIM_ADAM ? "adam" : o == CK_OPTIM_ADAMW ? "adamw" : "unknown";
}

uint64_t ck_ckpt_model_hash(const CkModelDesc *m) {
  uint64_t h = CK_FNV_BASIS;
  unsigned char b[8];
  int i, d;
  put_u64(b, (uint64_t)m->params_floats);
  h = ck_fnv1a64(h, b, 8);
  for (i = 0; i < m->nparams; i++) {
    const CkParamDesc *p = &m->params[i];
    h = ck_fnv1a64(h, p->name, strlen(p->name) + 1);
    put_u64(b, (uint64_t)p->offset);
    h = ck_fnv1a64(h, b, 8);
    for (d = 0; d < p->rank; d++) {
      put_u64(b, (uint64_t)p->dims[d]);
      h = ck_fnv1a64(h, b, 8);
    }
  }
  return h;
}

void ck_ckpt_name(char *out, size_t cap, const char *dir, int64_t step) {
  snprintf(out, cap, "%s/ckpt-%08lld.ckpt", dir, (long long)step);
}

/* ---- writing ------------------------------------------------------------------------------- */

static void encode_header(unsigned char *h, const CkCkpt *c, int64_t payload) {
  int i;
  memset(h, 0, CK_CKPT_HEADER);
  memcpy(h, ck_ckpt_magic, 8);
  put_u32(h + 8, CK_CKPT_VERSION);
  put_u32(h + 12, CK_CKPT_HEADER);
  put_u64(h + 16, (uint64_t)c->step);
  put_u64(h + 24, c->seed);
  put_u64(h + 32, c->model_hash);
  for (i = 0; i < 4; i++) put_u64(h + 40 + 8 * i, c->cursor.rng[i]);
  put_u64(h + 72, (uint64_t)c->cursor.epoch);
  put_u64(h + 80, (uint64_t)c->cursor.pos);
  put_u64(h + 88, (uint64_t)c->cursor.batches);
  put_u32(h + 96, (uint32_t)c->optim);
  put_u32(h + 100, (uint32_t)c->nmoments);
  put_u64(h + 104, (uint64_t)c->floats);
  put_u64(h + 112, (uint64_t)payload);
}

/* Makes a finished rename durable: fsync of the containing directory. */
static void sync_dir_of(const char *path) {
  char dir[1024];
  const char *slash = strrchr(path, '/');
  int fd;
  if (!slash) {
    strcpy(dir, ".");
  } else {
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir) return;
    memcpy(dir, path, n);
    dir[n ? n : 1] = '\0';
    if (!n) dir[0] = '/';
  }
  fd = open(dir, O_RDONLY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

int ck_ckpt_write(const char *path, const CkCkpt *c, int crash_half, CkIoErr *err) {
  int64_t payload = (1 + (int64_t)c->nmoments) * c->floats * 4;
  size_t total = (size_t)(CK_CKPT_HEADER + payload + 8);
  unsigned char *buf;
  char tmp[1100];
  FILE *f;
  int k, e = 0;
  err->msg[0] = '\0';
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return ckpt_fail(err, path, "path too long");
  buf = malloc(total);
  if (!buf) return ckpt_fail(err, path, "out of memory (%lu bytes)", (unsigned long)total);
  encode_header(buf, c, payload);
  put_f32s(buf + CK_CKPT_HEADER, c->params, c->floats);
  for (k = 0; k < c->nmoments; k++) put_f32s(buf + CK_CKPT_HEADER + (size_t)(k + 1) * (size_t)c->floats * 4, c->moments[k], c->floats);
  put_u64(buf + total - 8, ck_fnv1a64(CK_FNV_BASIS, buf, total - 8));
  f = fopen(tmp, "wb");
  if (!f) {
    free(buf);
    return ckpt_fail(err, tmp, "cannot create: %s", strerror(errno));
  }
  if (crash_half) {
    /* test hook: die like SIGKILL in the middle of the write */
    (void)fwrite(buf, 1, total / 2, f);
    fflush(f);
    raise(SIGKILL);
  }
  if (fwrite(buf, 1, total, f) != total) e = errno ? errno : EIO;
  free(buf);
  if (!e && fflush(f) != 0) e = errno ? errno : EIO;
  if (!e && fsync(fileno(f)) != 0) e = errno ? errno : EIO;
  if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
  if (!e && rename(tmp, path) != 0) e = errno ? errno : EIO;
  if (e) {
    remove(tmp);
    return ckpt_fail(err, path, "write failed: %s", strerror(e));
  }
  sync_dir_of(path);
  return CK_IO_OK;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Loads and validates the whole file against `c`'s expectations; on success
 * *out holds the file (caller frees). */
static int ckpt_load(const char *path, const CkCkpt *c, unsigned char **out, CkIoErr *err) {
  FILE *f = fopen(path, "rb");
  long sz;
  unsigned char *b;
  uint64_t stored, actual, payload, floats;
  uint32_t version, hdr;
  int32_t optim, nmom;
  *out = NULL;
  if (!f) return ckpt_fail(err, path, "cannot open: %s", strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return ckpt_fail(err, path, "cannot determine the file size");
  }
  if (sz < CK_CKPT_HEADER + 8) {
    fclose(f);
    return ckpt_fail(err, path, "truncated: %ld bytes, a checkpoint has at least %d", sz, CK_CKPT_HEADER + 8);
  }
  b = malloc((size_t)sz);
  if (!b) {
    fclose(f);
    return ckpt_fail(err, path, "out of memory (%ld bytes)", sz);
  }
  if (fread(b, 1, (size_t)sz, f) != (size_t)sz) {
    fclose(f);
    free(b);
    return ckpt_fail(err, path, "read error");
  }
  fclose(f);
#define CKPT_BAD(...)                                                                              \
  do {                                                                                             \
    free(b);                                                                                       \
    return ckpt_fail(err, path, __VA_ARGS__);                                                      \
  } while (0)
  if (memcmp(b, ck_ckpt_magic, 8) != 0) CKPT_BAD("not a ckc checkpoint (bad magic)");
  version = get_u32(b + 8);
  if (version != CK_CKPT_VERSION) CKPT_BAD("unsupported checkpoint version %lu (%u is read)", (unsigned long)version, CK_CKPT_VERSION);
  hdr = get_u32(b + 12);
  if (hdr != CK_CKPT_HEADER) CKPT_BAD("header size %lu, %d expected", (unsigned long)hdr, CK_CKPT_HEADER);
  payload = get_u64(b + 112);
  if (payload != (uint64_t)sz - CK_CKPT_HEADER - 8) {
    if (payload > (uint64_t)sz - CK_CKPT_HEADER - 8)
      CKPT_BAD("truncated: %ld bytes, the header announces %llu", sz,
               (unsigned long long)(payload + CK_CKPT_HEADER + 8));
    CKPT_BAD("size %ld bytes, the header announces %llu", sz, (unsigned long long)(payload + CK_CKPT_HEADER + 8));
  }
  stored = get_u64(b + sz - 8);
  actual = ck_fnv1a64(CK_FNV_BASIS, b, (size_t)sz - 8);
  if (stored != actual)
    CKPT_BAD("checksum mismatch (stored %016llx, contents hash to %016llx): the file is corrupt",
             (unsigned long long)stored, (unsigned long long)actual);
  if (get_u64(b + 32) != c->model_hash) CKPT_BAD("written for a different model (parameter table differs)");
  optim = (int32_t)get_u32(b + 96);
  nmom = (int32_t)get_u32(b + 100);
  floats = get_u64(b + 104);
  if (optim != c->optim) CKPT_BAD("optimizer %s expected, the checkpoint has %s", optim_name(c->optim), optim_name(optim));
  if (nmom != c->nmoments) CKPT_BAD("%d moment buffers expected, the checkpoint has %d", (int)c->nmoments, (int)nmom);
  if (floats != (uint64_t)c->floats)
    CKPT_BAD("%lld parameter floats expected, the checkpoint has %llu", (long long)c->floats, (unsigned long long)floats);
  if (payload != (uint64_t)(1 + nmom) * floats * 4) CKPT_BAD("payload size does not match its buffers");
  if ((int64_t)get_u64(b + 16) < 0 || (int64_t)get_u64(b + 72) < 0 || (int64_t)get_u64(b + 80) < 0 ||
      (int64_t)get_u64(b + 88) < 0)
    CKPT_BAD("negative step or data cursor");
#undef CKPT_BAD
  *out = b;
  return CK_IO_OK;
}

int ck_ckpt_read(const char *path, CkCkpt *c, CkIoErr *err) {
  unsigned char *b;
  int k, i;
  err->msg[0] = '\0';
  if (ckpt_load(path, c, &b, err)) return CK_IO_ERR;
  c->step = (int64_t)get_u64(b + 16);
  c->seed = get_u64(b + 24);
  for (i = 0; i < 4; i++) c->cursor.rng[i] = get_u64(b + 40 + 8 * i);
  c->cursor.epoch = (int64_t)get_u64(b + 72);
  c->cursor.pos = (int64_t)get_u64(b + 80);
  c->cursor.batches = (int64_t)get_u64(b + 88);
  get_f32s(c->params, b + CK_CKPT_HEADER, c->floats);
  for (k = 0; k < c->nmoments; k++)
    get_f32s(c->moments[k], b + CK_CKPT_HEADER + (size_t)(k + 1) * (size_t)c->floats * 4, c->floats);
  free(b);
  return CK_IO_OK;
}

/* ---- newest valid -------------------------------------------------------------------------- */

/* Step of a file name "ckpt-<digits>.ckpt", or -1. */
static int64_t ckpt_step_of(const char *name) {
  size_t n = strlen(name), i;
  int64_t v = 0;
  if (n < 11 || strncmp(name, "ckpt-", 5) != 0 || strcmp(name + n - 5, ".ckpt") != 0) return -1;
  for (i = 5; i < n - 5; i++) {
    if (name[i] < '0' || name[i] > '9' || v > ((int64_t)1 << 58)) return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

static int cmp_desc_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

int ck_ckpt_find_newest(const char *dir, const CkCkpt *expect, char *path, size_t cap, int64_t *step,
                        CkCkptWarnFn warn, void *ctx) {
  DIR *d = opendir(dir);
  struct dirent *de;
  int64_t *steps = NULL;
  size_t n = 0, ncap = 0, i;
  int found = 0;
  if (!d) return 0;
  while ((de = readdir(d)) != NULL) {
    int64_t s = ckpt_step_of(de->d_name);
    if (s < 0) continue;
    if (n == ncap) {
      int64_t *t;
      ncap = ncap ? 2 * ncap : 16;
      t = realloc(steps, ncap * sizeof *steps);
      if (!t) break;
      steps = t;
    }
    steps[n++] = s;
  }
  closedir(d);
  if (n) qsort(steps, n, sizeof *steps, cmp_desc_i64);
  for (i = 0; i < n && !found; i++) {
    char p[1100];
    unsigned char *b;
    CkIoErr err;
    ck_ckpt_name(p, sizeof p, dir, steps[i]);
    if (ckpt_load(p, expect, &b, &err) == CK_IO_OK) {
      if ((int64_t)get_u64(b + 16) != steps[i]) {
        ckpt_fail(&err, p, "holds step %lld, not the step in its name", (long long)get_u64(b + 16));
        free(b);
        if (warn) warn(ctx, err.msg);
        continue;
      }
      free(b);
      snprintf(path, cap, "%s", p);
      *step = steps[i];
      found = 1;
    } else if (warn) {
      warn(ctx, err.msg);
    }
  }
  free(steps);
  return found;
}
