/* rt-min/ck_ckpt.c - checkpoint files (format in ck_ckpt.h and docs/train.md).
 *
 * Neither side holds a whole file in memory (a GPT-2-small checkpoint is
 * 1.4 GB): the writer streams the header and each buffer with the checksum
 * computed as the bytes go; the reader checks every field and the checksum in
 * one streaming pass and only then reads the payload straight into the
 * caller's buffers: a corrupt or truncated file changes nothing. Integers and floats are stored little-endian byte by byte
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
#include <sys/stat.h>
#include <sys/types.h>
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

/* Checkpoints of a large model are as big as the model three times over, so
 * the writer never assembles the file in memory: the header, then each
 * buffer straight from the caller's memory (little-endian hosts) or through a
 * small bounce buffer, the checksum updated as the bytes go out. */
#define CKPT_CHUNK ((size_t)1 << 20)

static int ckpt_host_le(void) {
  const uint32_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

typedef struct CkptOut {
  int fd;
  uint64_t hash;     /* FNV-1a 64 of the bytes so far */
  uint64_t done;     /* bytes written */
  uint64_t stop_at;  /* test hook: SIGKILL once this many bytes are out (0: never) */
  int err;           /* first errno */
} CkptOut;

/* write(2) until all n bytes are out (short writes and EINTR retried). */
static void ckpt_out_raw(CkptOut *o, const unsigned char *p, size_t n) {
  while (n && !o->err) {
    ssize_t k = write(o->fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      o->err = errno ? errno : EIO;
    } else if (k == 0) {
      o->err = EIO;
    } else {
      p += k;
      n -= (size_t)k;
      o->done += (uint64_t)k;
    }
  }
}

/* Appends bytes to the file; hash != 0 folds them into the checksum. */
static void ckpt_out(CkptOut *o, const unsigned char *p, size_t n, int hash) {
  if (o->err) return;
  if (hash) o->hash = ck_fnv1a64(o->hash, p, n);
  if (o->stop_at && o->done + n >= o->stop_at) {
    /* test hook: die like SIGKILL in the middle of the write */
    ckpt_out_raw(o, p, (size_t)(o->stop_at - o->done));
    raise(SIGKILL);
  }
  ckpt_out_raw(o, p, n);
}

/* One f32 buffer, little-endian, in chunks. */
static void ckpt_out_f32s(CkptOut *o, const float *v, int64_t n, unsigned char *bounce) {
  int64_t per = (int64_t)(CKPT_CHUNK / 4), i;
  for (i = 0; i < n && !o->err; i += per) {
    int64_t k = n - i < per ? n - i : per;
    if (ckpt_host_le()) {
      ckpt_out(o, (const unsigned char *)(v + i), (size_t)k * 4, 1);
    } else {
      put_f32s(bounce, v + i, k);
      ckpt_out(o, bounce, (size_t)k * 4, 1);
    }
  }
}

int ck_ckpt_write(const char *path, const CkCkpt *c, int crash_half, CkIoErr *err) {
  int64_t payload = (1 + (int64_t)c->nmoments) * c->floats * 4;
  uint64_t total = (uint64_t)(CK_CKPT_HEADER + payload + 8);
  unsigned char hdr[CK_CKPT_HEADER], sum[8];
  unsigned char *bounce = NULL;
  char tmp[1100];
  CkptOut o;
  int k, e;
  err->msg[0] = '\0';
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return ckpt_fail(err, path, "path too long");
  if (!ckpt_host_le()) {
    bounce = malloc(CKPT_CHUNK);
    if (!bounce) return ckpt_fail(err, path, "out of memory (%lu bytes)", (unsigned long)CKPT_CHUNK);
  }
  memset(&o, 0, sizeof o);
  o.hash = CK_FNV_BASIS;
  o.stop_at = crash_half ? total / 2 : 0;
  o.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (o.fd < 0) {
    e = errno;
    free(bounce);
    return ckpt_fail(err, tmp, "cannot create: %s", strerror(e));
  }
  encode_header(hdr, c, payload);
  ckpt_out(&o, hdr, sizeof hdr, 1);
  ckpt_out_f32s(&o, c->params, c->floats, bounce);
  for (k = 0; k < c->nmoments; k++) ckpt_out_f32s(&o, c->moments[k], c->floats, bounce);
  put_u64(sum, o.hash);
  ckpt_out(&o, sum, 8, 0);
  free(bounce);
  e = o.err;
  if (!e && o.done != total) e = EIO;
  if (!e && fsync(o.fd) != 0) e = errno ? errno : EIO;
  if (close(o.fd) != 0 && !e) e = errno ? errno : EIO;
  if (!e && rename(tmp, path) != 0) e = errno ? errno : EIO;
  if (e) {
    remove(tmp);
    return ckpt_fail(err, path, "write failed: %s", strerror(e));
  }
  sync_dir_of(path);
  return CK_IO_OK;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* pread(2) of exactly n bytes at off; 0 on success. */
static int ckpt_pread(int fd, void *buf, size_t n, uint64_t off) {
  unsigned char *p = buf;
  while (n) {
    ssize_t k = pread(fd, p, n, (off_t)off);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
    off += (uint64_t)k;
  }
  return 0;
}

/* Validates the open file against `c`'s expectations without holding it in
 * memory: the header first, then one streaming pass for the checksum
 * (through a 1 MiB buffer). On success h holds the header. */
static int ckpt_validate(int fd, const char *path, const CkCkpt *c, unsigned char *h, CkIoErr *err) {
  struct stat st;
  uint64_t sz, stored, actual, payload, floats, off;
  uint32_t version, hdr;
  int32_t optim, nmom;
  unsigned char tail[8], *buf;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0)
    return ckpt_fail(err, path, "cannot determine the file size");
  sz = (uint64_t)st.st_size;
  if (sz < CK_CKPT_HEADER + 8)
    return ckpt_fail(err, path, "truncated: %llu bytes, a checkpoint has at least %d", (unsigned long long)sz,
                     CK_CKPT_HEADER + 8);
  if (ckpt_pread(fd, h, CK_CKPT_HEADER, 0) != 0) return ckpt_fail(err, path, "read error");
  if (memcmp(h, ck_ckpt_magic, 8) != 0) return ckpt_fail(err, path, "not a ckc checkpoint (bad magic)");
  version = get_u32(h + 8);
  if (version != CK_CKPT_VERSION)
    return ckpt_fail(err, path, "unsupported checkpoint version %lu (%u is read)", (unsigned long)version,
                     CK_CKPT_VERSION);
  hdr = get_u32(h + 12);
  if (hdr != CK_CKPT_HEADER) return ckpt_fail(err, path, "header size %lu, %d expected", (unsigned long)hdr, CK_CKPT_HEADER);
  payload = get_u64(h + 112);
  if (payload != sz - CK_CKPT_HEADER - 8) {
    if (payload > sz - CK_CKPT_HEADER - 8)
      return ckpt_fail(err, path, "truncated: %llu bytes, the header announces %llu", (unsigned long long)sz,
                       (unsigned long long)(payload + CK_CKPT_HEADER + 8));
    return ckpt_fail(err, path, "size %llu bytes, the header announces %llu", (unsigned long long)sz,
                     (unsigned long long)(payload + CK_CKPT_HEADER + 8));
  }
  buf = malloc(CKPT_CHUNK);
  if (!buf) return ckpt_fail(err, path, "out of memory (%lu bytes)", (unsigned long)CKPT_CHUNK);
  actual = ck_fnv1a64(CK_FNV_BASIS, h, CK_CKPT_HEADER);
  for (off = CK_CKPT_HEADER; off < sz - 8;) {
    size_t k = sz - 8 - off < CKPT_CHUNK ? (size_t)(sz - 8 - off) : CKPT_CHUNK;
    if (ckpt_pread(fd, buf, k, off) != 0) {
      free(buf);
      return ckpt_fail(err, path, "read error");
    }
    actual = ck_fnv1a64(actual, buf, k);
    off += k;
  }
  free(buf);
  if (ckpt_pread(fd, tail, 8, sz - 8) != 0) return ckpt_fail(err, path, "read error");
  stored = get_u64(tail);
  if (stored != actual)
    return ckpt_fail(err, path, "checksum mismatch (stored %016llx, contents hash to %016llx): the file is corrupt",
                     (unsigned long long)stored, (unsigned long long)actual);
  if (get_u64(h + 32) != c->model_hash) return ckpt_fail(err, path, "written for a different model (parameter table differs)");
  optim = (int32_t)get_u32(h + 96);
  nmom = (int32_t)get_u32(h + 100);
  floats = get_u64(h + 104);
  if (optim != c->optim)
    return ckpt_fail(err, path, "optimizer %s expected, the checkpoint has %s", optim_name(c->optim), optim_name(optim));
  if (nmom != c->nmoments)
    return ckpt_fail(err, path, "%d moment buffers expected, the checkpoint has %d", (int)c->nmoments, (int)nmom);
  if (floats != (uint64_t)c->floats)
    return ckpt_fail(err, path, "%lld parameter floats expected, the checkpoint has %llu", (long long)c->floats,
                     (unsigned long long)floats);
  if (payload != (uint64_t)(1 + nmom) * floats * 4) return ckpt_fail(err, path, "payload size does not match its buffers");
  if ((int64_t)get_u64(h + 16) < 0 || (int64_t)get_u64(h + 72) < 0 || (int64_t)get_u64(h + 80) < 0 ||
      (int64_t)get_u64(h + 88) < 0)
    return ckpt_fail(err, path, "negative step or data cursor");
  return CK_IO_OK;
}

/* Opens and validates; on success *fd is open (caller closes). */
static int ckpt_open_valid(const char *path, const CkCkpt *c, int *fd, unsigned char *h, CkIoErr *err) {
  *fd = open(path, O_RDONLY);
  if (*fd < 0) return ckpt_fail(err, path, "cannot open: %s", strerror(errno));
  if (ckpt_validate(*fd, path, c, h, err) != CK_IO_OK) {
    close(*fd);
    *fd = -1;
    return CK_IO_ERR;
  }
  return CK_IO_OK;
}

/* One buffer of the payload straight into the caller's memory (the file is
 * little-endian; big-endian hosts swap in place). */
static int ckpt_read_f32s(int fd, float *v, int64_t n, uint64_t off) {
  if (ckpt_pread(fd, v, (size_t)n * 4, off) != 0) return -1;
  if (!ckpt_host_le()) {
    unsigned char *p = (unsigned char *)v;
    int64_t i;
    for (i = 0; i < n; i++) {
      uint32_t u = get_u32(p + 4 * i);
      memcpy(p + 4 * i, &u, 4);
    }
  }
  return 0;
}

/* Two passes over one open file: validation (checksum included) first, then
 * the payload straight into the destination buffers. A checkpoint is never
 * modified in place (writers rename a new file over it), so the descriptor
 * validated is the data read; a read error in the second pass is reported,
 * though the buffers may then hold part of the payload. */
int ck_ckpt_read(const char *path, CkCkpt *c, CkIoErr *err) {
  unsigned char h[CK_CKPT_HEADER];
  int fd, k, i;
  uint64_t off = CK_CKPT_HEADER, bytes = (uint64_t)c->floats * 4;
  err->msg[0] = '\0';
  if (ckpt_open_valid(path, c, &fd, h, err)) return CK_IO_ERR;
  if (ckpt_read_f32s(fd, c->params, c->floats, off) != 0) {
    close(fd);
    return ckpt_fail(err, path, "read error");
  }
  for (k = 0; k < c->nmoments; k++) {
    off += bytes;
    if (ckpt_read_f32s(fd, c->moments[k], c->floats, off) != 0) {
      close(fd);
      return ckpt_fail(err, path, "read error");
    }
  }
  close(fd);
  c->step = (int64_t)get_u64(h + 16);
  c->seed = get_u64(h + 24);
  for (i = 0; i < 4; i++) c->cursor.rng[i] = get_u64(h + 40 + 8 * i);
  c->cursor.epoch = (int64_t)get_u64(h + 72);
  c->cursor.pos = (int64_t)get_u64(h + 80);
  c->cursor.batches = (int64_t)get_u64(h + 88);
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
    unsigned char h[CK_CKPT_HEADER];
    int fd;
    CkIoErr err;
    ck_ckpt_name(p, sizeof p, dir, steps[i]);
    if (ckpt_open_valid(p, expect, &fd, h, &err) == CK_IO_OK) {
      close(fd);
      if ((int64_t)get_u64(h + 16) != steps[i]) {
        ckpt_fail(&err, p, "holds step %lld, not the step in its name", (long long)get_u64(h + 16));
        if (warn) warn(ctx, err.msg);
        continue;
      }
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
