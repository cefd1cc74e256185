/* test-suite/runtime/ckpt_stream.c - the streaming writers and readers of
 * rt-min (ck_ckpt.c, ck_io.c, ck_data.c) against references assembled here,
 * with no code shared with the runtime:
 *
 *   - a checkpoint written by ck_ckpt_write is byte-identical to the file
 *     laid out by docs/train.md (header fields, little-endian floats, FNV-1a
 *     64 of everything before the checksum), for sizes that end inside, on
 *     and across the writer's 1 MiB chunks, and reads back exactly;
 *   - write errors: the temp file is a link to /dev/full (ENOSPC) or the
 *     process file size limit cuts the file in the middle (EFBIG): a one-line
 *     error naming the file and the cause, no file and no temp file left,
 *     and a previous file under the same name untouched (checkpoints and
 *     weights.safetensors alike);
 *   - peak resident memory (each in a child process): writing and reading
 *     a 48 MiB checkpoint raise the peak RSS by a small bounded amount, not
 *     by a copy of the file; opening an 8 MiB u16 token file costs the file
 *     (ids kept at their width), not the file plus an i32 copy.
 *
 * Prints PASS/FAIL lines; exit status 1 if any failed. Built and run by
 * test-suite/runtime/run.sh. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt-min/ck_ckpt.h"
#include "rt-min/ck_data.h"
#include "rt-min/ck_io.h"

typedef struct T {
  const char *dir;
  int nfail;
} T;

static void report(T *t, int ok, const char *name, const char *detail) {
  if (ok) {
    printf("PASS %s\n", name);
  } else {
    printf("FAIL %s%s%s\n", name, detail ? ": " : "", detail ? detail : "");
    t->nfail++;
  }
}

/* ---- the reference checkpoint, from the documented layout ---------------------------------- */

static uint64_t ref_fnv(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static void le(unsigned char *p, uint64_t v, int bytes) {
  int i;
  for (i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned char *ref_ckpt(const CkCkpt *c, size_t *len) {
  size_t n = (size_t)c->floats, total = 120 + (size_t)(1 + c->nmoments) * n * 4 + 8, i;
  unsigned char *b = calloc(total, 1), *p;
  int k;
  if (!b) return NULL;
  memcpy(b, "CKCKPT\032\n", 8);
  le(b + 8, 1, 4);
  le(b + 12, 120, 4);
  le(b + 16, (uint64_t)c->step, 8);
  le(b + 24, c->seed, 8);
  le(b + 32, c->model_hash, 8);
  for (k = 0; k < 4; k++) le(b + 40 + 8 * k, c->cursor.rng[k], 8);
  le(b + 72, (uint64_t)c->cursor.epoch, 8);
  le(b + 80, (uint64_t)c->cursor.pos, 8);
  le(b + 88, (uint64_t)c->cursor.batches, 8);
  le(b + 96, (uint32_t)c->optim, 4);
  le(b + 100, (uint32_t)c->nmoments, 4);
  le(b + 104, (uint64_t)c->floats, 8);
  le(b + 112, (uint64_t)(total - 128), 8);
  p = b + 120;
  for (k = 0; k <= c->nmoments; k++) {
    const float *v = k == 0 ? c->params : c->moments[k - 1];
    for (i = 0; i < n; i++, p += 4) {
      uint32_t u;
      memcpy(&u, &v[i], 4);
      le(p, u, 4);
    }
  }
  le(b + total - 8, ref_fnv(b, total - 8), 8);
  *len = total;
  return b;
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *b;
  long n;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  b = malloc(n > 0 ? (size_t)n : 1);
  if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

/* A state with every field distinct and floats that are not all small
 * integers (NaN, -0, denormals included). */
static void fill_state(CkCkpt *c, int64_t floats, int nmom, float *p, float *m0, float *m1) {
  int64_t i;
  memset(c, 0, sizeof *c);
  c->step = 123456789012ll;
  c->seed = 0xfedcba9876543210ull;
  c->model_hash = 0x0123456789abcdefull;
  c->cursor.rng[0] = 1;
  c->cursor.rng[1] = 0x8000000000000000ull;
  c->cursor.rng[2] = 3;
  c->cursor.rng[3] = 0xffffffffffffffffull;
  c->cursor.epoch = 7;
  c->cursor.pos = 11;
  c->cursor.batches = 99;
  c->optim = nmom == 2 ? CK_OPTIM_ADAMW : CK_OPTIM_SGD;
  c->nmoments = nmom;
  c->floats = floats;
  for (i = 0; i < floats; i++) {
    p[i] = (float)i * 0.37f - 1000.0f;
    if (m0) m0[i] = 1e-39f * (float)(i % 97);
    if (m1) m1[i] = -(float)(i % 1013) / 3.0f;
  }
  if (floats > 2) {
    p[1] = -0.0f;
    p[2] = (float)NAN;
  }
  c->params = p;
  c->moments[0] = m0;
  c->moments[1] = m1;
}

/* Write, compare with the reference, read back. */
static void ckpt_identical(T *t, int64_t floats, int nmom) {
  float *p = malloc((size_t)floats * 4 + 4), *m0 = malloc((size_t)floats * 4 + 4),
        *m1 = malloc((size_t)floats * 4 + 4), *q = malloc((size_t)floats * 4 + 4),
        *n0 = malloc((size_t)floats * 4 + 4), *n1 = malloc((size_t)floats * 4 + 4);
  CkCkpt w, r;
  CkIoErr err;
  char path[600], name[160], detail[700];
  unsigned char *ref, *got;
  size_t nref = 0, ngot = 0;
  int ok;
  fill_state(&w, floats, nmom, p, nmom >= 1 ? m0 : NULL, nmom >= 2 ? m1 : NULL);
  snprintf(path, sizeof path, "%s/s-%lld-%d.ckpt", t->dir, (long long)floats, nmom);
  snprintf(name, sizeof name, "ckpt streaming write byte-identical (%lld floats, %d moments)", (long long)floats, nmom);
  ref = ref_ckpt(&w, &nref);
  if (ck_ckpt_write(path, &w, 0, &err) != CK_IO_OK) {
    report(t, 0, name, err.msg);
  } else {
    got = slurp(path, &ngot);
    ok = got && ref && ngot == nref && memcmp(got, ref, nref) == 0;
    snprintf(detail, sizeof detail, "%lu bytes written, %lu expected", (unsigned long)ngot, (unsigned long)nref);
    report(t, ok, name, ok ? NULL : detail);
    free(got);
    memset(&r, 0, sizeof r);
    r.model_hash = w.model_hash;
    r.optim = w.optim;
    r.nmoments = nmom;
    r.floats = floats;
    r.params = q;
    r.moments[0] = n0;
    r.moments[1] = n1;
    snprintf(name, sizeof name, "ckpt read into the caller's buffers (%lld floats, %d moments)", (long long)floats, nmom);
    ok = ck_ckpt_read(path, &r, &err) == CK_IO_OK && r.step == w.step && r.seed == w.seed &&
         memcmp(&r.cursor, &w.cursor, sizeof r.cursor) == 0 && memcmp(q, p, (size_t)floats * 4) == 0 &&
         (nmom < 1 || memcmp(n0, m0, (size_t)floats * 4) == 0) && (nmom < 2 || memcmp(n1, m1, (size_t)floats * 4) == 0);
    report(t, ok, name, ok ? NULL : err.msg);
  }
  free(ref);
  free(p);
  free(m0);
  free(m1);
  free(q);
  free(n0);
  free(n1);
}

/* ---- write errors -------------------------------------------------------------------------- */

typedef int (*WriteFn)(const char *path, void *ctx, CkIoErr *err);

static int write_ckpt(const char *path, void *ctx, CkIoErr *err) {
  return ck_ckpt_write(path, (const CkCkpt *)ctx, 0, err);
}

static int write_st(const char *path, void *ctx, CkIoErr *err) {
  return ck_safetensors_write(path, (const CkTensorSpec *)ctx, 2, err);
}

/* The write fails (how: `how`); the error names path and `cause`; neither
 * a temp file nor a new file stays, and `previous` bytes under path stay. */
static void write_error(T *t, const char *what, const char *how, WriteFn fn, void *ctx, const char *base,
                        const char *cause) {
  char path[600], tmp[620], name[200], detail[800];
  size_t n = 0;
  unsigned char *after;
  CkIoErr err;
  int rc, ok;
  static const char previous[] = "previous contents";
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", t->dir, base);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  f = fopen(path, "wb");
  if (f) {
    fwrite(previous, 1, sizeof previous, f);
    fclose(f);
  }
  err.msg[0] = '\0';
  if (strcmp(how, "/dev/full") == 0) {
    if (symlink("/dev/full", tmp) != 0) {
      snprintf(name, sizeof name, "%s: write error on %s", what, how);
      report(t, 0, name, "cannot link the temp file to /dev/full");
      return;
    }
    rc = fn(path, ctx, &err);
  } else {
    /* the file size limit cuts the file after 1 MiB + 5 bytes: EFBIG in the middle of the data */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = ((rlim_t)1 << 20) + 5;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    rc = fn(path, ctx, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
  }
  after = slurp(path, &n);
  ok = rc == CK_IO_ERR && strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, cause) != NULL &&
       !strchr(err.msg, '\n') && !exists(tmp) && after && n == sizeof previous && memcmp(after, previous, n) == 0;
  snprintf(name, sizeof name, "%s: write error on %s is reported, no partial file", what, how);
  snprintf(detail, sizeof detail, "rc %d, message '%s', temp file %s, previous file %s", rc, err.msg,
           exists(tmp) ? "left" : "gone", after && n == sizeof previous ? "kept" : "changed");
  report(t, ok, name, ok ? NULL : detail);
  free(after);
  remove(tmp);
  remove(path);
}

/* ---- peak RSS ------------------------------------------------------------------------------ */

static long maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* 3 x 16 MiB of state: writing it (ckpt_peak_write), then reading it back
 * in another process (ckpt_peak_read), may raise the peak by the small
 * buffers of the writer and the reader only. A writer or reader that holds
 * the whole file in memory raises it by 48 MiB. */
static void ckpt_peak(T *t, int reading) {
  int64_t floats = (int64_t)4 << 20, i;
  float *p = malloc((size_t)floats * 4), *m0 = malloc((size_t)floats * 4), *m1 = malloc((size_t)floats * 4);
  CkCkpt c;
  CkIoErr err;
  char path[600], detail[800];
  long before, after;
  int ok;
  fill_state(&c, floats, 2, p, m0, m1);
  for (i = 0; i < floats; i++) m0[i] = m1[i] = 1.0f; /* touched: resident */
  snprintf(path, sizeof path, "%s/peak.ckpt", t->dir);
  err.msg[0] = '\0';
  before = maxrss_kib();
  ok = reading ? ck_ckpt_read(path, &c, &err) == CK_IO_OK : ck_ckpt_write(path, &c, 0, &err) == CK_IO_OK;
  after = maxrss_kib();
  snprintf(detail, sizeof detail, "peak RSS %ld KiB before, %ld after %s 48 MiB (%s)", before, after,
           reading ? "reading" : "writing", ok ? "ok" : err.msg);
  ok = ok && after - before < 8 * 1024;
  report(t, ok, reading ? "ckpt read of 48 MiB raises peak RSS by < 8 MiB" : "ckpt write of 48 MiB raises peak RSS by < 8 MiB",
         ok ? NULL : detail);
  printf("    %s\n", detail);
  if (reading) remove(path);
  free(p);
  free(m0);
  free(m1);
}

static void ckpt_peak_write(T *t) { ckpt_peak(t, 0); }
static void ckpt_peak_read(T *t) { ckpt_peak(t, 1); }

/* A u16 token file of 8 MiB: opening it may cost the file's size (the ids
 * stay at their width), not the file plus an i32 copy (24 MiB). */
static void tokens_peak(T *t) {
  CkDataDesc desc;
  CkData d;
  CkIoErr err;
  char path[600], detail[800];
  int64_t n = (int64_t)4 << 20, i;
  unsigned char b[2];
  int32_t x[4 * 16], y[4 * 16];
  FILE *f;
  long before, after;
  int ok = 1;
  snprintf(path, sizeof path, "%s/peak.u16", t->dir);
  f = fopen(path, "wb");
  for (i = 0; f && i < n && ok; i++) {
    le(b, (uint64_t)((i * 7919) % 50257), 2);
    ok = fwrite(b, 1, 2, f) == 2;
  }
  if (!f || !ok) {
    report(t, 0, "tokens", "cannot write the token file");
    if (f) fclose(f);
    return;
  }
  fclose(f);
  memset(&desc, 0, sizeof desc);
  desc.kind = CK_DATA_TOKENS;
  desc.path = path;
  desc.batch = 4;
  desc.seq = 16;
  desc.vocab = 50257;
  desc.file_u16 = 1;
  desc.val_fraction = 0.1;
  desc.x.dtype = desc.y.dtype = CK_IO_I32;
  desc.x.rank = desc.y.rank = 2;
  desc.x.dims[0] = desc.y.dims[0] = 4;
  desc.x.dims[1] = desc.y.dims[1] = 16;
  desc.x.numel = desc.y.numel = 64;
  before = maxrss_kib();
  ok = ck_data_open(&d, &desc, NULL, CK_DATA_ROLE_TRAIN, 5, &err) == CK_IO_OK;
  after = maxrss_kib();
  if (ok) {
    CkData view;
    int64_t k, o;
    ck_data_next(&d, x, y);
    /* every window is consecutive ids of the file, y shifted by one */
    for (k = 0; k < 4 && ok; k++) {
      for (o = 0; o < n - 16 && ((o * 7919) % 50257) != x[k * 16]; o++) {
      }
      for (i = 0; i < 16 && ok; i++)
        ok = x[k * 16 + i] == (int32_t)(((o + i) * 7919) % 50257) && y[k * 16 + i] == (int32_t)(((o + i + 1) * 7919) % 50257);
    }
    /* the validation split through a view: same batches as the source's own */
    ck_data_view(&view, &d);
    if (ok && ck_data_eval_batches(&view) > 0) {
      int32_t x2[64], y2[64];
      ck_data_eval_batch(&view, 0, x, y);
      ck_data_eval_batch(&d, 0, x2, y2);
      ok = memcmp(x, x2, sizeof x) == 0 && memcmp(y, y2, sizeof y) == 0 &&
           x[0] == (int32_t)(((n - n / 10) * 7919) % 50257);
    } else {
      ok = 0;
    }
    ck_data_free(&view); /* frees nothing of d's */
    ck_data_next(&d, x, y);
    ck_data_free(&d);
  }
  snprintf(detail, sizeof detail, "peak RSS %ld KiB before, %ld after opening 8 MiB of u16 tokens (%s)", before, after,
           ok ? "ok" : err.msg);
  report(t, ok, "tokens u16 windows, eval view", ok ? NULL : detail);
  report(t, after - before < 12 * 1024, "tokens u16 file of 8 MiB raises peak RSS by < 12 MiB",
         after - before < 12 * 1024 ? NULL : detail);
  printf("    %s\n", detail);
  remove(path);
}

/* Runs a peak-RSS test in a child process: its peak starts from the
 * parent's current resident set, not from earlier tests' high-water mark. */
static void isolated(T *t, void (*fn)(T *)) {
  pid_t pid;
  int st = 0;
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    T c = *t;
    c.nfail = 0;
    fn(&c);
    fflush(stdout);
    _exit(c.nfail ? 1 : 0);
  }
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) t->nfail++;
}

int main(int argc, char **argv) {
  T t;
  CkCkpt c;
  float p[1000], m0[1000], m1[1000];
  CkTensorSpec specs[2];
  static float big[(1 << 20) / 4 + 100];
  memset(&t, 0, sizeof t);
  if (argc != 2) {
    fprintf(stderr, "usage: ckpt_stream DIR\n");
    return 2;
  }
  t.dir = argv[1];
  /* within one chunk, exactly one chunk per buffer, across chunks */
  ckpt_identical(&t, 1, 0);
  ckpt_identical(&t, 1000, 2);
  ckpt_identical(&t, (1 << 20) / 4, 1);
  ckpt_identical(&t, (1 << 20) / 4 * 2 + 3, 2);

  fill_state(&c, 1000, 2, p, m0, m1);
  write_error(&t, "ckpt", "/dev/full", write_ckpt, &c, "full.ckpt", "No space left on device");
  memset(specs, 0, sizeof specs);
  specs[0].name = "a.weight";
  specs[0].dtype = CK_IO_F32;
  specs[0].rank = 1;
  specs[0].dims[0] = 1000;
  specs[0].data = p;
  specs[1].name = "b.big";
  specs[1].dtype = CK_IO_F32;
  specs[1].rank = 1;
  specs[1].dims[0] = (int64_t)(sizeof big / 4);
  specs[1].data = big;
  write_error(&t, "safetensors", "/dev/full", write_st, specs, "full.safetensors", "No space left on device");
  {
    /* a checkpoint larger than the limit: cut in the middle of the data */
    int64_t floats = (1 << 20) / 4 + 50000;
    float *q = calloc((size_t)floats, 4), *a = calloc((size_t)floats, 4), *b = calloc((size_t)floats, 4);
    CkCkpt l;
    fill_state(&l, floats, 2, q, a, b);
    write_error(&t, "ckpt", "a file size limit", write_ckpt, &l, "big.ckpt", "File too large");
    free(q);
    free(a);
    free(b);
  }
  write_error(&t, "safetensors", "a file size limit", write_st, specs, "big.safetensors", "File too large");

  isolated(&t, ckpt_peak_write);
  isolated(&t, ckpt_peak_read);
  isolated(&t, tokens_peak);
  return t.nfail ? 1 : 0;
}
