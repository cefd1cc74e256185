/* rt-min/ck_io.c - .npy and .safetensors files for hosted targets (C99 + POSIX
 * fsync).
 *
 * Readers treat every byte of a file as hostile: headers are parsed with
 * explicit lengths (no reliance on NUL termination), every size is computed
 * with overflow checks, every offset is range-checked against the file size
 * before any data is read, and the destination buffers are the caller's, sized
 * from the caller's own shapes. Each failure fills CkIoErr with one line
 * "path: what is wrong" and returns CK_IO_ERR. Writers go through path.tmp,
 * fsync and rename, so a crash never leaves a half-written file under the
 * real name. Files are little-endian; big-endian hosts byte-swap. */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include "ck_io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#include <sys/stat.h>
#include <unistd.h>
#endif

#define CK_NPY_MAX_RANK 32      /* numpy's NPY_MAXDIMS */
#define CK_ST_MAX_RANK 32       /* generous: model tensors have rank <= 8 */
#define CK_ST_MAX_HEADER 100000000u /* the safetensors reference limit */

#if defined(__GNUC__)
#define CK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CK_PRINTF(a, b)
#endif

/* ---- errors ------------------------------------------------------------------------------ */

/* Every message is "path: problem"; err may be NULL (status only). */
static int ck_fail(CkIoErr *err, const char *path, const char *fmt, ...) CK_PRINTF(3, 4);
static int ck_fail(CkIoErr *err, const char *path, const char *fmt, ...) {
  va_list ap;
  int n;
  if (!err) return CK_IO_ERR;
  n = snprintf(err->msg, sizeof err->msg, "%s: ", path ? path : "(null)");
  if (n < 0) n = 0;
  if ((size_t)n < sizeof err->msg) {
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return CK_IO_ERR;
}

static int ck_ok(CkIoErr *err) {
  if (err) err->msg[0] = '\0';
  return CK_IO_OK;
}

/* "[3,4]" (or "[]" for a scalar); long shapes end in "...]" rather than
 * overflowing the buffer. */
static const char *ck_fmt_dims(char *buf, size_t cap, int rank, const int64_t *dims) {
  size_t len = 1;
  int i;
  buf[0] = '[';
  buf[1] = '\0';
  for (i = 0; i < rank; i++) {
    char tmp[32];
    size_t tl;
    sprintf(tmp, "%s%lld", i ? "," : "", (long long)dims[i]);
    tl = strlen(tmp);
    if (len + tl + 5 > cap) {
      strcpy(buf + len, "...]");
      return buf;
    }
    memcpy(buf + len, tmp, tl + 1);
    len += tl;
  }
  strcpy(buf + len, "]");
  return buf;
}

/* A name from a file, printable and short enough for a one-line message. */
static const char *ck_fmt_name(char *buf, size_t cap, const char *s, size_t n) {
  size_t i, o = 0;
  for (i = 0; i < n && o + 4 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (i < n) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
  return buf;
}

/* ---- dtypes ------------------------------------------------------------------------------- */

static int ck_dtype_valid(CkIoDType t) { return t >= CK_IO_F32 && t <= CK_IO_BOOL; }

static size_t ck_dtype_size(CkIoDType t) {
  switch (t) {
  case CK_IO_F32: return 4;
  case CK_IO_F64: return 8;
  case CK_IO_I32: return 4;
  case CK_IO_U8: return 1;
  case CK_IO_BOOL: return 1;
  }
  return 0;
}

static const char *ck_dtype_st(CkIoDType t) {
  static const char *const names[] = {"F32", "F64", "I32", "U8", "BOOL"};
  return ck_dtype_valid(t) ? names[t] : "?";
}

static const char *ck_dtype_npy(CkIoDType t) {
  static const char *const names[] = {"<f4", "<f8", "<i4", "|u1", "|b1"};
  return ck_dtype_valid(t) ? names[t] : "?";
}

static const char *ck_dtype_lower(CkIoDType t) {
  static const char *const names[] = {"f32", "f64", "i32", "u8", "bool"};
  return ck_dtype_valid(t) ? names[t] : "?";
}

/* numel * elsize with overflow and negative-extent checks (0 = bad shape). */
static int ck_nbytes(int rank, const int64_t *dims, size_t elsize, uint64_t *out) {
  uint64_t n = 1;
  const uint64_t lim = (uint64_t)INT64_MAX;
  int i;
  for (i = 0; i < rank; i++) {
    if (dims[i] < 0) return 0;
    if (dims[i] != 0 && n > lim / (uint64_t)dims[i]) return 0;
    n *= (uint64_t)dims[i];
  }
  if (elsize && n > lim / elsize) return 0;
  *out = n * elsize;
  return 1;
}

static int ck_host_le(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* Reverses each elsize-byte element in place (big-endian hosts only). */
static void ck_bswap(void *data, size_t count, size_t elsize) {
  unsigned char *p = (unsigned char *)data;
  size_t i, j;
  if (elsize < 2) return;
  for (i = 0; i < count; i++, p += elsize)
    for (j = 0; j < elsize / 2; j++) {
      unsigned char t = p[j];
      p[j] = p[elsize - 1 - j];
      p[elsize - 1 - j] = t;
    }
}

/* bool data must be 0 or 1: any other byte would be a trap value for C's
 * _Bool and PyTorch refuses to produce it. Returns the first bad index or -1. */
static long long ck_bad_bool(const unsigned char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] > 1) return (long long)i;
  return -1;
}

static uint64_t ck_le64(const unsigned char *p) {
  uint64_t v = 0;
  int i;
  for (i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct CkFile {
  FILE *f;
  long long size;
} CkFile;

/* Opens for reading and learns the size (a directory or a pipe fails here). */
static int ck_open_read(CkFile *cf, const char *path, CkIoErr *err) {
  long sz;
  cf->f = fopen(path, "rb");
  if (!cf->f) return ck_fail(err, path, "cannot open: %s", strerror(errno));
#if !defined(_WIN32)
  {
    struct stat st; /* fopen succeeds on a directory; say so plainly */
    if (fstat(fileno(cf->f), &st) == 0 && S_ISDIR(st.st_mode)) {
      fclose(cf->f);
      cf->f = NULL;
      return ck_fail(err, path, "cannot read: %s", strerror(EISDIR));
    }
  }
#endif
  if (fseek(cf->f, 0, SEEK_END) != 0 || (sz = ftell(cf->f)) < 0 || fseek(cf->f, 0, SEEK_SET) != 0) {
    int e = errno;
    fclose(cf->f);
    cf->f = NULL;
    return ck_fail(err, path, "cannot read: %s", strerror(e));
  }
  cf->size = sz;
  return CK_IO_OK;
}

/* Exactly n bytes at off (the caller has checked off + n <= size). */
static int ck_read_at(CkFile *cf, const char *path, long long off, void *buf, size_t n,
                      CkIoErr *err) {
  if (n == 0) return CK_IO_OK;
  if (fseek(cf->f, (long)off, SEEK_SET) != 0 || fread(buf, 1, n, cf->f) != n)
    return ck_fail(err, path, "read error at byte %lld: %s", off,
                   ferror(cf->f) ? strerror(errno) : "unexpected end of file");
  return CK_IO_OK;
}

/* ---- writing (path.tmp, fsync, rename) --------------------------------------------------- */

typedef struct CkWriter {
  FILE *f;
  char *tmp;
  const char *path;
  int failed;
} CkWriter;

static int ck_wopen(CkWriter *w, const char *path, CkIoErr *err) {
  size_t n = strlen(path);
  w->path = path;
  w->failed = 0;
  w->f = NULL;
  w->tmp = (char *)malloc(n + 5);
  if (!w->tmp) return ck_fail(err, path, "out of memory");
  memcpy(w->tmp, path, n);
  memcpy(w->tmp + n, ".tmp", 5);
  w->f = fopen(w->tmp, "wb");
  if (!w->f) {
    int e = errno;
    free(w->tmp);
    w->tmp = NULL;
    return ck_fail(err, path, "cannot create %s.tmp: %s", path, strerror(e));
  }
  return CK_IO_OK;
}

static void ck_wbytes(CkWriter *w, const void *p, size_t n) {
  if (!w->failed && n && fwrite(p, 1, n, w->f) != n) w->failed = errno ? errno : EIO;
}

/* Tensor data in little-endian order; big-endian hosts swap through a small
 * bounce buffer so the caller's memory is never modified. */
static void ck_wdata(CkWriter *w, const void *data, size_t count, size_t elsize) {
  unsigned char buf[4096];
  const unsigned char *p = (const unsigned char *)data;
  size_t per = sizeof buf / elsize, done = 0;
  if (ck_host_le() || elsize < 2) {
    ck_wbytes(w, data, count * elsize);
    return;
  }
  while (done < count) {
    size_t k = count - done < per ? count - done : per;
    memcpy(buf, p + done * elsize, k * elsize);
    ck_bswap(buf, k, elsize);
    ck_wbytes(w, buf, k * elsize);
    done += k;
  }
}

/* Flush, fsync and rename into place; on any failure the temp file is
 * removed and the previous file under `path` (if any) is untouched. */
static int ck_wclose(CkWriter *w, CkIoErr *err) {
  int e = w->failed;
  if (!e && fflush(w->f) != 0) e = errno ? errno : EIO;
#if !defined(_WIN32)
  if (!e && fsync(fileno(w->f)) != 0) e = errno ? errno : EIO;
#endif
  if (fclose(w->f) != 0 && !e) e = errno ? errno : EIO;
  w->f = NULL;
  if (!e && rename(w->tmp, w->path) != 0) e = errno ? errno : EIO;
  if (e) {
    remove(w->tmp);
    free(w->tmp);
    w->tmp = NULL;
    return ck_fail(err, w->path, "cannot write: %s", strerror(e));
  }
  free(w->tmp);
  w->tmp = NULL;
  return ck_ok(err);
}

/* ---- .npy header: a Python dict literal -------------------------------------------------- */

typedef struct CkLit {
  const char *s;
  size_t n, pos;
  char msg[200];
} CkLit;

static void lit_ws(CkLit *L) {
  while (L->pos < L->n && (L->s[L->pos] == ' ' || L->s[L->pos] == '\t' || L->s[L->pos] == '\n' ||
                           L->s[L->pos] == '\r'))
    L->pos++;
}

static int lit_fail(CkLit *L, const char *what) {
  if (L->pos < L->n && L->s[L->pos] >= 0x20 && L->s[L->pos] < 0x7f)
    sprintf(L->msg, "malformed header: %s expected at header byte %lu, found '%c'", what,
            (unsigned long)L->pos, L->s[L->pos]);
  else if (L->pos < L->n)
    sprintf(L->msg, "malformed header: %s expected at header byte %lu, found byte 0x%02x", what,
            (unsigned long)L->pos, (unsigned)(unsigned char)L->s[L->pos]);
  else
    sprintf(L->msg, "malformed header: %s expected, header ends at byte %lu", what,
            (unsigned long)L->pos);
  return 0;
}

static int lit_char(CkLit *L, char c) {
  lit_ws(L);
  if (L->pos < L->n && L->s[L->pos] == c) {
    L->pos++;
    return 1;
  }
  return 0;
}

/* 'text' or "text" without escapes (numpy never writes any in its keys or
 * dtype strings); returns a pointer into the header and the length. */
static int lit_str(CkLit *L, const char **out, size_t *len) {
  char q;
  size_t start;
  lit_ws(L);
  if (L->pos >= L->n || (L->s[L->pos] != '\'' && L->s[L->pos] != '"'))
    return lit_fail(L, "a quoted string");
  q = L->s[L->pos++];
  start = L->pos;
  while (L->pos < L->n && L->s[L->pos] != q) {
    if (L->s[L->pos] == '\\' || L->s[L->pos] == '\n') return lit_fail(L, "a simple string");
    L->pos++;
  }
  if (L->pos >= L->n) return lit_fail(L, "a closing quote");
  *out = L->s + start;
  *len = L->pos - start;
  L->pos++;
  return 1;
}

/* A non-negative int (Python 2 era files may carry an 'L' suffix). */
static int lit_int(CkLit *L, int64_t *v) {
  uint64_t x = 0;
  size_t start;
  lit_ws(L);
  start = L->pos;
  while (L->pos < L->n && L->s[L->pos] >= '0' && L->s[L->pos] <= '9') {
    unsigned d = (unsigned)(L->s[L->pos] - '0');
    if (x > ((uint64_t)INT64_MAX - d) / 10) return lit_fail(L, "a dimension below 2^63");
    x = x * 10 + d;
    L->pos++;
  }
  if (L->pos == start) return lit_fail(L, "a non-negative integer");
  if (L->pos < L->n && L->s[L->pos] == 'L') L->pos++;
  *v = (int64_t)x;
  return 1;
}

static int lit_word(CkLit *L, const char *w) {
  size_t n = strlen(w);
  lit_ws(L);
  if (L->n - L->pos >= n && memcmp(L->s + L->pos, w, n) == 0) {
    L->pos += n;
    return 1;
  }
  return 0;
}

typedef struct CkNpyHeader {
  char descr[16];
  int fortran;
  int rank;
  int64_t dims[CK_NPY_MAX_RANK];
} CkNpyHeader;

/* {'descr': STR, 'fortran_order': BOOL, 'shape': (INT, ...), } in any key
 * order; exactly these three keys, as numpy itself requires. */
static int ck_npy_parse_header(CkLit *L, CkNpyHeader *h) {
  int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
  if (!lit_char(L, '{')) return lit_fail(L, "'{'");
  while (!lit_char(L, '}')) {
    const char *key;
    size_t klen;
    if (!lit_str(L, &key, &klen)) return 0;
    if (!lit_char(L, ':')) return lit_fail(L, "':'");
    if (klen == 5 && memcmp(key, "descr", 5) == 0) {
      const char *d;
      size_t dlen;
      if (seen_descr++) return lit_fail(L, "no duplicate 'descr' key;");
      if (!lit_str(L, &d, &dlen)) return 0;
      if (dlen >= sizeof h->descr) dlen = sizeof h->descr - 1;
      memcpy(h->descr, d, dlen);
      h->descr[dlen] = '\0';
    } else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
      if (seen_fortran++) return lit_fail(L, "no duplicate 'fortran_order' key;");
      if (lit_word(L, "True")) h->fortran = 1;
      else if (lit_word(L, "False")) h->fortran = 0;
      else return lit_fail(L, "True or False");
    } else if (klen == 5 && memcmp(key, "shape", 5) == 0) {
      if (seen_shape++) return lit_fail(L, "no duplicate 'shape' key;");
      if (!lit_char(L, '(')) return lit_fail(L, "'(' opening the shape");
      h->rank = 0;
      while (!lit_char(L, ')')) {
        if (h->rank == CK_NPY_MAX_RANK) return lit_fail(L, "at most 32 dimensions;");
        if (!lit_int(L, &h->dims[h->rank])) return 0;
        h->rank++;
        if (!lit_char(L, ',')) {
          if (!lit_char(L, ')')) return lit_fail(L, "',' or ')' in the shape");
          break;
        }
      }
    } else {
      char nb[64];
      snprintf(L->msg, sizeof L->msg, "malformed header: unexpected key '%s'",
               ck_fmt_name(nb, sizeof nb, key, klen));
      return 0;
    }
    if (!lit_char(L, ',')) {
      if (!lit_char(L, '}')) return lit_fail(L, "',' or '}'");
      break;
    }
  }
  lit_ws(L);
  if (L->pos != L->n) return lit_fail(L, "end of header (only spaces may follow '}')");
  if (!seen_descr || !seen_fortran || !seen_shape) {
    sprintf(L->msg, "malformed header: key '%s' missing",
            !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    return 0;
  }
  return 1;
}

/* ---- .npy ---------------------------------------------------------------------------------- */

/* Checks, in order: magic, version, header, dtype, order, shape, then the
 * exact data size; reads the data only once everything agrees. */
int ck_npy_read(const char *path, CkIoDType dtype, int rank, const int64_t *dims, void *data,
                CkIoErr *err) {
  unsigned char pre[12];
  CkFile cf;
  CkNpyHeader h;
  CkLit L;
  char *hbuf;
  char want[256], have[256];
  uint64_t need;
  long long hlen, hoff, avail;
  int major, i;
  size_t es = ck_dtype_size(dtype);
  if (!ck_dtype_valid(dtype)) return ck_fail(err, path, "invalid dtype code %d", (int)dtype);
  if (rank < 0 || rank > CK_NPY_MAX_RANK || (rank > 0 && !dims) || !ck_nbytes(rank, dims, es, &need))
    return ck_fail(err, path, "invalid expected shape (rank %d)", rank);
  if (ck_open_read(&cf, path, err)) return CK_IO_ERR;
  memset(pre, 0, sizeof pre);
  if (ck_read_at(&cf, path, 0, pre, (size_t)(cf.size < 12 ? cf.size : 12), err)) goto fail;
  if (cf.size < 6 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    ck_fail(err, path, "not a .npy file (no \\x93NUMPY magic; %lld bytes)", cf.size);
    goto fail;
  }
  if (cf.size < 8) {
    ck_fail(err, path, "truncated: file ends inside the format version (%lld bytes)", cf.size);
    goto fail;
  }
  major = pre[6];
  if (major < 1 || major > 3 || pre[7] != 0) {
    ck_fail(err, path, "unsupported .npy format version %d.%d (1.0, 2.0 and 3.0 are read)", major,
            pre[7]);
    goto fail;
  }
  hoff = major == 1 ? 10 : 12;
  if (cf.size < hoff) {
    ck_fail(err, path, "truncated: file ends inside the header length (%lld bytes)", cf.size);
    goto fail;
  }
  hlen = major == 1 ? (long long)(pre[8] | (pre[9] << 8))
                    : (long long)((uint32_t)pre[8] | ((uint32_t)pre[9] << 8) |
                                  ((uint32_t)pre[10] << 16) | ((uint32_t)pre[11] << 24));
  if (hlen > cf.size - hoff) {
    ck_fail(err, path, "truncated: header of %lld bytes declared, %lld present", hlen,
            cf.size - hoff);
    goto fail;
  }
  hbuf = (char *)malloc((size_t)hlen + 1);
  if (!hbuf) {
    ck_fail(err, path, "out of memory reading a %lld-byte header", hlen);
    goto fail;
  }
  if (ck_read_at(&cf, path, hoff, hbuf, (size_t)hlen, err)) {
    free(hbuf);
    goto fail;
  }
  memset(&h, 0, sizeof h);
  L.s = hbuf;
  L.n = (size_t)hlen;
  L.pos = 0;
  L.msg[0] = '\0';
  i = ck_npy_parse_header(&L, &h);
  free(hbuf);
  if (!i) {
    ck_fail(err, path, "%s", L.msg);
    goto fail;
  }
  if (strcmp(h.descr, ck_dtype_npy(dtype)) != 0) {
    char nb[32];
    ck_fail(err, path, "dtype '%s' found, '%s' (%s) expected",
            ck_fmt_name(nb, sizeof nb, h.descr, strlen(h.descr)), ck_dtype_npy(dtype),
            ck_dtype_lower(dtype));
    goto fail;
  }
  if (h.fortran) {
    ck_fail(err, path, "fortran_order True is not supported (C order expected)");
    goto fail;
  }
  for (i = 0; i < rank && h.rank == rank; i++)
    if (h.dims[i] != dims[i]) break;
  if (h.rank != rank || i < rank) {
    ck_fail(err, path, "shape %s expected, file has %s", ck_fmt_dims(want, sizeof want, rank, dims),
            ck_fmt_dims(have, sizeof have, h.rank, h.dims));
    goto fail;
  }
  avail = cf.size - hoff - hlen;
  if ((uint64_t)avail < need) {
    ck_fail(err, path, "truncated: %llu bytes of data expected, %lld present",
            (unsigned long long)need, avail);
    goto fail;
  }
  if ((uint64_t)avail > need) {
    ck_fail(err, path, "%lld trailing bytes after the %llu bytes of data",
            avail - (long long)need, (unsigned long long)need);
    goto fail;
  }
  if (need && !data) {
    ck_fail(err, path, "no destination buffer");
    goto fail;
  }
  if (ck_read_at(&cf, path, hoff + hlen, data, (size_t)need, err)) goto fail;
  fclose(cf.f);
  if (!ck_host_le()) ck_bswap(data, (size_t)(need / es), es);
  if (dtype == CK_IO_BOOL) {
    long long bad = ck_bad_bool((const unsigned char *)data, (size_t)need);
    if (bad >= 0)
      return ck_fail(err, path, "bool element %lld is %u (0 or 1 expected)", bad,
                     (unsigned)((const unsigned char *)data)[bad]);
  }
  return ck_ok(err);
fail:
  fclose(cf.f);
  return CK_IO_ERR;
}

/* Format 1.0 exactly as numpy 1.2x's np.save writes it (byte-identical
 * files): the dict in sorted key order, spaces for in-place growth of the
 * first axis (21 digits), padding to a multiple of 64, then '\n'. */
int ck_npy_write(const char *path, CkIoDType dtype, int rank, const int64_t *dims, const void *data,
                 CkIoErr *err) {
  char hdr[1024];
  size_t len, total, pad;
  uint64_t need;
  unsigned char pre[10];
  CkWriter w;
  int i;
  size_t es = ck_dtype_size(dtype);
  if (!ck_dtype_valid(dtype)) return ck_fail(err, path, "invalid dtype code %d", (int)dtype);
  if (rank < 0 || rank > CK_NPY_MAX_RANK || (rank > 0 && !dims) || !ck_nbytes(rank, dims, es, &need))
    return ck_fail(err, path, "invalid shape (rank %d)", rank);
  if (need && !data) return ck_fail(err, path, "no source buffer");
  len = (size_t)sprintf(hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                        ck_dtype_npy(dtype));
  for (i = 0; i < rank; i++)
    len += (size_t)sprintf(hdr + len, "%s%lld", i ? ", " : "", (long long)dims[i]);
  len += (size_t)sprintf(hdr + len, "%s), }", rank == 1 ? "," : "");
  if (rank > 0) {
    char d0[32];
    size_t grow = 21 - (size_t)sprintf(d0, "%lld", (long long)dims[0]);
    memset(hdr + len, ' ', grow);
    len += grow;
  }
  total = 10 + len + 1;
  pad = (64 - total % 64) % 64;
  memset(hdr + len, ' ', pad);
  len += pad;
  hdr[len++] = '\n';
  memcpy(pre, "\x93NUMPY\x01\x00", 8);
  pre[8] = (unsigned char)(len & 0xff);
  pre[9] = (unsigned char)(len >> 8);
  if (ck_wopen(&w, path, err)) return CK_IO_ERR;
  ck_wbytes(&w, pre, sizeof pre);
  ck_wbytes(&w, hdr, len);
  ck_wdata(&w, data, (size_t)(need / es), es);
  return ck_wclose(&w, err);
}

/* ---- .safetensors header: a small JSON reader -------------------------------------------- */

typedef struct CkJson {
  const char *s;
  size_t n, pos;
  char *sbuf; /* decoded strings; capacity >= n + 1 in total */
  size_t sused;
  int depth;
  char msg[200];
} CkJson;

static int js_fail(CkJson *J, const char *what) {
  if (J->pos < J->n && J->s[J->pos] >= 0x20 && J->s[J->pos] < 0x7f)
    sprintf(J->msg, "header JSON: %s expected at header byte %lu, found '%c'", what,
            (unsigned long)J->pos, J->s[J->pos]);
  else if (J->pos < J->n)
    sprintf(J->msg, "header JSON: %s expected at header byte %lu, found byte 0x%02x", what,
            (unsigned long)J->pos, (unsigned)(unsigned char)J->s[J->pos]);
  else
    sprintf(J->msg, "header JSON: %s expected, header ends at byte %lu", what,
            (unsigned long)J->pos);
  return 0;
}

static void js_ws(CkJson *J) {
  while (J->pos < J->n && (J->s[J->pos] == ' ' || J->s[J->pos] == '\t' || J->s[J->pos] == '\n' ||
                           J->s[J->pos] == '\r'))
    J->pos++;
}

static int js_peek(CkJson *J, char c) {
  js_ws(J);
  return J->pos < J->n && J->s[J->pos] == c;
}

static int js_eat(CkJson *J, char c) {
  if (!js_peek(J, c)) return 0;
  J->pos++;
  return 1;
}

static int js_hex4(CkJson *J, unsigned *v) {
  int i;
  *v = 0;
  for (i = 0; i < 4; i++) {
    char c;
    if (J->pos >= J->n) return js_fail(J, "4 hex digits after \\u");
    c = J->s[J->pos];
    if (c >= '0' && c <= '9') *v = *v * 16 + (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') *v = *v * 16 + (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') *v = *v * 16 + (unsigned)(c - 'A' + 10);
    else return js_fail(J, "4 hex digits after \\u");
    J->pos++;
  }
  return 1;
}

/* A JSON string, decoded to UTF-8 into sbuf (NUL-terminated; *len excludes
 * the NUL, and embedded U+0000 is kept, so names compare by length). The
 * decoded text is never longer than its source, so sbuf cannot overflow. */
static int js_string(CkJson *J, const char **out, size_t *len) {
  char *o;
  js_ws(J);
  if (J->pos >= J->n || J->s[J->pos] != '"') return js_fail(J, "a string");
  J->pos++;
  o = J->sbuf + J->sused;
  *out = o;
  for (;;) {
    unsigned char c;
    if (J->pos >= J->n) return js_fail(J, "a closing '\"'");
    c = (unsigned char)J->s[J->pos];
    if (c == '"') {
      J->pos++;
      break;
    }
    if (c < 0x20) return js_fail(J, "a string character (control bytes must be escaped)");
    if (c != '\\') {
      *o++ = (char)c;
      J->pos++;
      continue;
    }
    J->pos++;
    if (J->pos >= J->n) return js_fail(J, "an escape character");
    c = (unsigned char)J->s[J->pos++];
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '/': *o++ = '/'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (!js_hex4(J, &cp)) return 0;
      if (cp >= 0xDC00 && cp <= 0xDFFF) return js_fail(J, "no lone low surrogate;");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (J->n - J->pos < 2 || J->s[J->pos] != '\\' || J->s[J->pos + 1] != 'u')
          return js_fail(J, "a low surrogate \\u escape");
        J->pos += 2;
        if (!js_hex4(J, &lo)) return 0;
        if (lo < 0xDC00 || lo > 0xDFFF) return js_fail(J, "a low surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      /* 6 or 12 source bytes become at most 4 */
      if (cp < 0x80) {
        *o++ = (char)cp;
      } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
      } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
      }
      break;
    }
    default: J->pos--; return js_fail(J, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
    }
  }
  *len = (size_t)(o - *out);
  *o++ = '\0';
  J->sused = (size_t)(o - J->sbuf);
  return 1;
}

/* A JSON number that must be a non-negative integer below 2^63 (shapes and
 * offsets); fractions, exponents and signs are rejected with a clear message. */
static int js_uint(CkJson *J, uint64_t *v) {
  uint64_t x = 0;
  size_t start;
  js_ws(J);
  start = J->pos;
  while (J->pos < J->n && J->s[J->pos] >= '0' && J->s[J->pos] <= '9') {
    unsigned d = (unsigned)(J->s[J->pos] - '0');
    if (x > ((uint64_t)INT64_MAX - d) / 10) return js_fail(J, "an integer below 2^63");
    x = x * 10 + d;
    J->pos++;
  }
  if (J->pos == start) return js_fail(J, "a non-negative integer");
  if (J->pos < J->n && (J->s[J->pos] == '.' || J->s[J->pos] == 'e' || J->s[J->pos] == 'E'))
    return js_fail(J, "an integer (no fraction or exponent)");
  *v = x;
  return 1;
}

/* Skips any JSON value (unknown keys); nesting is bounded so hostile input
 * cannot exhaust the stack. */
static int js_skip(CkJson *J) {
  js_ws(J);
  if (J->pos >= J->n) return js_fail(J, "a value");
  if (++J->depth > 64) return js_fail(J, "nesting of at most 64 levels;");
  switch (J->s[J->pos]) {
  case '"': {
    const char *s;
    size_t l, keep = J->sused;
    if (!js_string(J, &s, &l)) return 0;
    J->sused = keep; /* skipped text needs no storage */
    break;
  }
  case '{':
    J->pos++;
    if (!js_eat(J, '}')) {
      do {
        const char *s;
        size_t l, keep = J->sused;
        if (!js_string(J, &s, &l)) return 0;
        J->sused = keep;
        if (!js_eat(J, ':')) return js_fail(J, "':'");
        if (!js_skip(J)) return 0;
      } while (js_eat(J, ','));
      if (!js_eat(J, '}')) return js_fail(J, "',' or '}'");
    }
    break;
  case '[':
    J->pos++;
    if (!js_eat(J, ']')) {
      do {
        if (!js_skip(J)) return 0;
      } while (js_eat(J, ','));
      if (!js_eat(J, ']')) return js_fail(J, "',' or ']'");
    }
    break;
  case 't':
  case 'f':
  case 'n': {
    static const char *const words[] = {"true", "false", "null"};
    int k;
    for (k = 0; k < 3; k++) {
      size_t wl = strlen(words[k]);
      if (J->n - J->pos >= wl && memcmp(J->s + J->pos, words[k], wl) == 0) {
        J->pos += wl;
        break;
      }
    }
    if (k == 3) return js_fail(J, "a value");
    break;
  }
  default: {
    size_t start = J->pos;
    if (J->s[J->pos] == '-') J->pos++;
    if (J->pos >= J->n || J->s[J->pos] < '0' || J->s[J->pos] > '9') {
      J->pos = start;
      return js_fail(J, "a value");
    }
    while (J->pos < J->n && J->s[J->pos] >= '0' && J->s[J->pos] <= '9') J->pos++;
    if (J->pos < J->n && J->s[J->pos] == '.') {
      J->pos++;
      if (J->pos >= J->n || J->s[J->pos] < '0' || J->s[J->pos] > '9') return js_fail(J, "a digit");
      while (J->pos < J->n && J->s[J->pos] >= '0' && J->s[J->pos] <= '9') J->pos++;
    }
    if (J->pos < J->n && (J->s[J->pos] == 'e' || J->s[J->pos] == 'E')) {
      J->pos++;
      if (J->pos < J->n && (J->s[J->pos] == '+' || J->s[J->pos] == '-')) J->pos++;
      if (J->pos >= J->n || J->s[J->pos] < '0' || J->s[J->pos] > '9') return js_fail(J, "a digit");
      while (J->pos < J->n && J->s[J->pos] >= '0' && J->s[J->pos] <= '9') J->pos++;
    }
  }
  }
  J->depth--;
  return 1;
}

/* ---- .safetensors ------------------------------------------------------------------------ */

typedef struct CkStEntry {
  const char *name; /* in the decoded-string buffer */
  size_t name_len;
  char dtype[16];   /* as written in the file (truncated if absurd) */
  size_t elsize;    /* 0: unknown dtype */
  int rank;
  int64_t dims[CK_ST_MAX_RANK];
  uint64_t begin, end;
  int spec; /* index of the matching spec, -1 if none */
} CkStEntry;

/* Element sizes of every dtype the safetensors format defines, so entries
 * the model does not read are still size-checked. */
static size_t ck_st_elsize(const char *d) {
  static const struct {
    const char *name;
    size_t size;
  } t[] = {{"F64", 8}, {"F32", 4},     {"F16", 2},     {"BF16", 2}, {"I64", 8}, {"I32", 4},
           {"I16", 2}, {"I8", 1},      {"U64", 8},     {"U32", 4},  {"U16", 2}, {"U8", 1},
           {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  size_t i;
  for (i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(d, t[i].name) == 0) return t[i].size;
  return 0;
}

typedef struct CkStHeader {
  CkStEntry *e;
  int n, cap;
} CkStHeader;

/* One tensor entry: {"dtype": S, "shape": [U, ...], "data_offsets": [U, U]}
 * in any order; other keys are skipped (forward compatibility). */
static int ck_st_parse_entry(CkJson *J, CkStEntry *e) {
  int have_dtype = 0, have_shape = 0, have_off = 0;
  if (!js_eat(J, '{')) return js_fail(J, "'{' opening a tensor entry");
  if (js_eat(J, '}')) goto done;
  do {
    const char *k;
    size_t kl, keep = J->sused;
    if (!js_string(J, &k, &kl)) return 0;
    J->sused = keep;
    if (!js_eat(J, ':')) return js_fail(J, "':'");
    if (kl == 5 && memcmp(k, "dtype", 5) == 0) {
      const char *d;
      size_t dl;
      if (have_dtype++) return js_fail(J, "no duplicate \"dtype\";");
      keep = J->sused;
      if (!js_string(J, &d, &dl)) return 0;
      if (dl >= sizeof e->dtype) dl = sizeof e->dtype - 1;
      memcpy(e->dtype, d, dl);
      e->dtype[dl] = '\0';
      if (memchr(e->dtype, '\0', dl)) e->dtype[0] = '?';
      J->sused = keep;
    } else if (kl == 5 && memcmp(k, "shape", 5) == 0) {
      if (have_shape++) return js_fail(J, "no duplicate \"shape\";");
      if (!js_eat(J, '[')) return js_fail(J, "'[' opening the shape");
      e->rank = 0;
      if (!js_eat(J, ']')) {
        do {
          uint64_t v;
          if (e->rank == CK_ST_MAX_RANK) return js_fail(J, "at most 32 dimensions;");
          if (!js_uint(J, &v)) return 0;
          e->dims[e->rank++] = (int64_t)v;
        } while (js_eat(J, ','));
        if (!js_eat(J, ']')) return js_fail(J, "',' or ']' in the shape");
      }
    } else if (kl == 12 && memcmp(k, "data_offsets", 12) == 0) {
      if (have_off++) return js_fail(J, "no duplicate \"data_offsets\";");
      if (!js_eat(J, '[')) return js_fail(J, "'[' opening data_offsets");
      if (!js_uint(J, &e->begin)) return 0;
      if (!js_eat(J, ',')) return js_fail(J, "',' between the two data_offsets");
      if (!js_uint(J, &e->end)) return 0;
      if (!js_eat(J, ']')) return js_fail(J, "']' after the two data_offsets");
    } else if (!js_skip(J)) {
      return 0;
    }
  } while (js_eat(J, ','));
  if (!js_eat(J, '}')) return js_fail(J, "',' or '}' in a tensor entry");
done:
  if (!have_dtype || !have_shape || !have_off) {
    char nb[128];
    snprintf(J->msg, sizeof J->msg, "tensor '%s': header entry lacks \"%s\"",
             ck_fmt_name(nb, sizeof nb, e->name, e->name_len),
             !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return 0;
  }
  e->elsize = ck_st_elsize(e->dtype);
  return 1;
}

/* __metadata__ is a flat object of string values (the format's rule). */
static int ck_st_parse_metadata(CkJson *J) {
  if (!js_eat(J, '{')) return js_fail(J, "'{' opening __metadata__");
  if (js_eat(J, '}')) return 1;
  do {
    const char *s;
    size_t l, keep = J->sused;
    if (!js_string(J, &s, &l)) return 0;
    if (!js_eat(J, ':')) return js_fail(J, "':'");
    if (!js_peek(J, '"')) return js_fail(J, "a string value in __metadata__");
    if (!js_string(J, &s, &l)) return 0;
    J->sused = keep;
  } while (js_eat(J, ','));
  if (!js_eat(J, '}')) return js_fail(J, "',' or '}' in __metadata__");
  return 1;
}

/* The whole header: one object of tensor entries plus optional __metadata__,
 * then only spaces (writers pad to a multiple of 8). */
static int ck_st_parse(CkJson *J, CkStHeader *H) {
  if (!js_eat(J, '{')) return js_fail(J, "'{'");
  if (!js_eat(J, '}')) {
    do {
      const char *k;
      size_t kl;
      int i;
      if (!js_string(J, &k, &kl)) return 0;
      if (!js_eat(J, ':')) return js_fail(J, "':'");
      if (kl == 12 && memcmp(k, "__metadata__", 12) == 0) {
        if (!ck_st_parse_metadata(J)) return 0;
        continue;
      }
      for (i = 0; i < H->n; i++)
        if (H->e[i].name_len == kl && memcmp(H->e[i].name, k, kl) == 0) {
          char nb[128];
          snprintf(J->msg, sizeof J->msg, "header JSON: duplicate tensor '%s'",
                   ck_fmt_name(nb, sizeof nb, k, kl));
          return 0;
        }
      if (H->n == H->cap) {
        int nc = H->cap ? H->cap * 2 : 16;
        CkStEntry *ne = (CkStEntry *)realloc(H->e, (size_t)nc * sizeof *ne);
        if (!ne) {
          strcpy(J->msg, "out of memory parsing the header");
          return 0;
        }
        H->e = ne;
        H->cap = nc;
      }
      memset(&H->e[H->n], 0, sizeof H->e[H->n]);
      H->e[H->n].name = k;
      H->e[H->n].name_len = kl;
      H->e[H->n].spec = -1;
      if (!ck_st_parse_entry(J, &H->e[H->n])) return 0;
      H->n++;
    } while (js_eat(J, ','));
    if (!js_eat(J, '}')) return js_fail(J, "',' or '}'");
  }
  while (J->pos < J->n && J->s[J->pos] == ' ') J->pos++;
  if (J->pos != J->n) return js_fail(J, "end of header (only spaces may follow the object)");
  return 1;
}

/* Entries by data offset, for the overlap check. qsort offers no context
 * pointer, so the indices are sorted with a plain insertion sort rather than
 * through a global. */
static void ck_st_sort(const CkStEntry *e, int *idx, int n) {
  int i, j;
  for (i = 1; i < n; i++) {
    int v = idx[i];
    for (j = i; j > 0 && e[idx[j - 1]].begin > e[v].begin; j--) idx[j] = idx[j - 1];
    idx[j] = v;
  }
}

/* Per-entry checks (offsets in range, size = numel * elsize), overlaps,
 * then the match against the model (missing, dtype, shape, extras). */
static int ck_st_validate(const char *path, CkStHeader *H, long long data_len, CkTensorSpec *specs,
                          int n, CkIoErr *err) {
  char nb[128], nb2[128], d1[256], d2[256];
  int i, j, *idx;
  for (i = 0; i < H->n; i++) {
    CkStEntry *e = &H->e[i];
    uint64_t need = 0;
    int sized;
    ck_fmt_name(nb, sizeof nb, e->name, e->name_len);
    if (!e->elsize) return ck_fail(err, path, "tensor '%s': unknown dtype '%s'", nb, e->dtype);
    if (e->begin > e->end)
      return ck_fail(err, path, "tensor '%s': data_offsets [%llu,%llu] are reversed", nb,
                     (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > (uint64_t)data_len)
      return ck_fail(err, path,
                     "truncated: tensor '%s': data_offsets [%llu,%llu] reach past the %lld-byte "
                     "data section",
                     nb, (unsigned long long)e->begin, (unsigned long long)e->end, data_len);
    sized = ck_nbytes(e->rank, e->dims, e->elsize, &need);
    if (!sized)
      return ck_fail(err, path, "tensor '%s': %s %s holds more than 2^63 bytes", nb, e->dtype,
                     ck_fmt_dims(d1, sizeof d1, e->rank, e->dims));
    if (need != e->end - e->begin)
      return ck_fail(err, path,
                     "tensor '%s': data_offsets [%llu,%llu] hold %llu bytes, %s %s needs %llu", nb,
                     (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)(e->end - e->begin), e->dtype,
                     ck_fmt_dims(d1, sizeof d1, e->rank, e->dims), (unsigned long long)need);
  }
  idx = (int *)malloc((H->n > 0 ? (size_t)H->n : 1u) * sizeof *idx);
  if (!idx) return ck_fail(err, path, "out of memory");
  for (i = 0; i < H->n; i++) idx[i] = i;
  ck_st_sort(H->e, idx, H->n);
  for (i = 1; i < H->n; i++) {
    const CkStEntry *a = NULL, *b = &H->e[idx[i]];
    if (b->begin == b->end) continue;
    for (j = i - 1; j >= 0; j--) /* nearest earlier non-empty entry */
      if (H->e[idx[j]].begin != H->e[idx[j]].end) {
        a = &H->e[idx[j]];
        break;
      }
    if (a && b->begin < a->end) {
      free(idx);
      return ck_fail(err, path, "tensors '%s' and '%s' overlap (data_offsets [%llu,%llu] and [%llu,%llu])",
                     ck_fmt_name(nb, sizeof nb, a->name, a->name_len),
                     ck_fmt_name(nb2, sizeof nb2, b->name, b->name_len),
                     (unsigned long long)a->begin, (unsigned long long)a->end,
                     (unsigned long long)b->begin, (unsigned long long)b->end);
    }
  }
  free(idx);
  for (j = 0; j < n; j++) {
    const char *want = specs[j].name ? specs[j].name : "";
    size_t wl = strlen(want);
    CkStEntry *e = NULL;
    for (i = 0; i < H->n; i++)
      if (H->e[i].name_len == wl && memcmp(H->e[i].name, want, wl) == 0) {
        e = &H->e[i];
        break;
      }
    ck_fmt_name(nb, sizeof nb, want, wl);
    if (!e) return ck_fail(err, path, "tensor '%s' missing", nb);
    if (e->spec >= 0) return ck_fail(err, path, "tensor '%s' requested twice", nb);
    e->spec = j;
    if (!ck_dtype_valid(specs[j].dtype))
      return ck_fail(err, path, "tensor '%s': invalid dtype code %d requested", nb,
                     (int)specs[j].dtype);
    if (strcmp(e->dtype, ck_dtype_st(specs[j].dtype)) != 0)
      return ck_fail(err, path, "tensor '%s': dtype %s expected, file has %s", nb,
                     ck_dtype_st(specs[j].dtype), e->dtype);
    if (specs[j].rank < 0 || specs[j].rank > 8)
      return ck_fail(err, path, "tensor '%s': invalid rank %d requested", nb, specs[j].rank);
    for (i = 0; i < e->rank && e->rank == specs[j].rank; i++)
      if (e->dims[i] != specs[j].dims[i]) break;
    if (e->rank != specs[j].rank || i < e->rank)
      return ck_fail(err, path, "tensor '%s': shape %s expected, file has %s", nb,
                     ck_fmt_dims(d1, sizeof d1, specs[j].rank, specs[j].dims),
                     ck_fmt_dims(d2, sizeof d2, e->rank, e->dims));
    if (e->end > e->begin && !specs[j].data)
      return ck_fail(err, path, "tensor '%s': no destination buffer", nb);
  }
  for (i = 0; i < H->n; i++)
    if (H->e[i].spec < 0)
      return ck_fail(err, path, "unexpected tensor '%s' (not in the model)",
                     ck_fmt_name(nb, sizeof nb, H->e[i].name, H->e[i].name_len));
  return CK_IO_OK;
}

/* Header first (length sane against the file size, then JSON), all
 * validation next, and only then the data, straight into the callers'
 * buffers. */
int ck_safetensors_read(const char *path, CkTensorSpec *specs, int n, CkIoErr *err) {
  CkFile cf;
  CkJson J;
  CkStHeader H;
  unsigned char pre[8];
  uint64_t hlen;
  long long data_off, data_len;
  char *hbuf = NULL, *sbuf = NULL;
  int i, rc = CK_IO_ERR;
  if (n < 0 || (n > 0 && !specs)) return ck_fail(err, path, "invalid tensor list (n = %d)", n);
  if (ck_open_read(&cf, path, err)) return CK_IO_ERR;
  memset(&H, 0, sizeof H);
  if (cf.size < 8) {
    ck_fail(err, path, "truncated: %lld bytes, the 8-byte header length is incomplete", cf.size);
    goto out;
  }
  if (ck_read_at(&cf, path, 0, pre, 8, err)) goto out;
  hlen = ck_le64(pre);
  if (hlen > CK_ST_MAX_HEADER) {
    ck_fail(err, path, "header length %llu exceeds the %u-byte limit (not a .safetensors file?)",
            (unsigned long long)hlen, CK_ST_MAX_HEADER);
    goto out;
  }
  if ((long long)hlen > cf.size - 8) {
    ck_fail(err, path, "truncated: header of %llu bytes declared, %lld present",
            (unsigned long long)hlen, cf.size - 8);
    goto out;
  }
  if (hlen < 2) {
    ck_fail(err, path, "header length %llu is too small for a JSON object",
            (unsigned long long)hlen);
    goto out;
  }
  hbuf = (char *)malloc((size_t)hlen);
  sbuf = (char *)malloc((size_t)hlen + 1);
  if (!hbuf || !sbuf) {
    ck_fail(err, path, "out of memory reading a %llu-byte header", (unsigned long long)hlen);
    goto out;
  }
  if (ck_read_at(&cf, path, 8, hbuf, (size_t)hlen, err)) goto out;
  J.s = hbuf;
  J.n = (size_t)hlen;
  J.pos = 0;
  J.sbuf = sbuf;
  J.sused = 0;
  J.depth = 0;
  J.msg[0] = '\0';
  if (!ck_st_parse(&J, &H)) {
    ck_fail(err, path, "%s", J.msg);
    goto out;
  }
  data_off = 8 + (long long)hlen;
  data_len = cf.size - data_off;
  if (ck_st_validate(path, &H, data_len, specs, n, err)) goto out;
  for (i = 0; i < H.n; i++) {
    const CkStEntry *e = &H.e[i];
    CkTensorSpec *s = &specs[e->spec];
    size_t bytes = (size_t)(e->end - e->begin);
    if (ck_read_at(&cf, path, data_off + (long long)e->begin, s->data, bytes, err)) goto out;
    if (!ck_host_le()) ck_bswap(s->data, bytes / e->elsize, e->elsize);
    if (s->dtype == CK_IO_BOOL) {
      long long bad = ck_bad_bool((const unsigned char *)s->data, bytes);
      if (bad >= 0) {
        ck_fail(err, path, "tensor '%s': bool element %lld is %u (0 or 1 expected)", s->name, bad,
                (unsigned)((const unsigned char *)s->data)[bad]);
        goto out;
      }
    }
  }
  rc = ck_ok(err);
out:
  free(H.e);
  free(hbuf);
  free(sbuf);
  fclose(cf.f);
  return rc;
}

/* Growable text for the header (names can be long). */
typedef struct CkBuf {
  char *p;
  size_t len, cap;
  int oom;
} CkBuf;

static void ck_buf_put(CkBuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    char *np;
    while (nc < b->len + n + 1) nc *= 2;
    np = (char *)realloc(b->p, nc);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void ck_buf_str(CkBuf *b, const char *s) { ck_buf_put(b, s, strlen(s)); }

/* JSON string with the mandatory escapes (quote, backslash, control bytes). */
static void ck_buf_json_str(CkBuf *b, const char *s) {
  ck_buf_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      ck_buf_put(b, esc, 2);
    } else if (c < 0x20) {
      sprintf(esc, "\\u%04x", (unsigned)c);
      ck_buf_put(b, esc, 6);
    } else {
      ck_buf_put(b, (const char *)&c, 1);
    }
  }
  ck_buf_put(b, "\"", 1);
}

/* Header = {"__metadata__":{"format":"pt"}, then the tensors in the given
 * order with consecutive data_offsets}, space-padded to a multiple of 8 so
 * the data section is 8-byte aligned (as the reference writer does). */
int ck_safetensors_write(const char *path, const CkTensorSpec *specs, int n, CkIoErr *err) {
  CkBuf b = {NULL, 0, 0, 0};
  CkWriter w;
  uint64_t off = 0, hl;
  unsigned char pre[8];
  char num[64];
  int i, j, k;
  if (n < 0 || (n > 0 && !specs)) return ck_fail(err, path, "invalid tensor list (n = %d)", n);
  for (i = 0; i < n; i++) {
    const CkTensorSpec *s = &specs[i];
    uint64_t bytes;
    if (!s->name || !s->name[0]) return ck_fail(err, path, "tensor %d has no name", i);
    if (strcmp(s->name, "__metadata__") == 0)
      return ck_fail(err, path, "tensor name '__metadata__' is reserved");
    for (j = 0; j < i; j++)
      if (strcmp(specs[j].name, s->name) == 0)
        return ck_fail(err, path, "tensor '%s' listed twice", s->name);
    if (!ck_dtype_valid(s->dtype))
      return ck_fail(err, path, "tensor '%s': invalid dtype code %d", s->name, (int)s->dtype);
    if (s->rank < 0 || s->rank > 8 || !ck_nbytes(s->rank, s->dims, ck_dtype_size(s->dtype), &bytes))
      return ck_fail(err, path, "tensor '%s': invalid shape", s->name);
    if (bytes && !s->data) return ck_fail(err, path, "tensor '%s': no source buffer", s->name);
  }
  ck_buf_str(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (i = 0; i < n; i++) {
    const CkTensorSpec *s = &specs[i];
    uint64_t bytes = 0;
    ck_nbytes(s->rank, s->dims, ck_dtype_size(s->dtype), &bytes);
    ck_buf_str(&b, ",");
    ck_buf_json_str(&b, s->name);
    ck_buf_str(&b, ":{\"dtype\":\"");
    ck_buf_str(&b, ck_dtype_st(s->dtype));
    ck_buf_str(&b, "\",\"shape\":[");
    for (k = 0; k < s->rank; k++) {
      sprintf(num, "%s%lld", k ? "," : "", (long long)s->dims[k]);
      ck_buf_str(&b, num);
    }
    sprintf(num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
            (unsigned long long)(off + bytes));
    ck_buf_str(&b, num);
    off += bytes;
  }
  ck_buf_str(&b, "}");
  while (!b.oom && b.len % 8) ck_buf_str(&b, " ");
  if (b.oom) {
    free(b.p);
    return ck_fail(err, path, "out of memory building the header");
  }
  hl = b.len;
  for (i = 0; i < 8; i++) pre[i] = (unsigned char)(hl >> (8 * i));
  if (ck_wopen(&w, path, err)) {
    free(b.p);
    return CK_IO_ERR;
  }
  ck_wbytes(&w, pre, 8);
  ck_wbytes(&w, b.p, b.len);
  free(b.p);
  for (i = 0; i < n; i++) {
    uint64_t bytes = 0;
    size_t es = ck_dtype_size(specs[i].dtype);
    ck_nbytes(specs[i].rank, specs[i].dims, es, &bytes);
    ck_wdata(&w, specs[i].data, (size_t)(bytes / es), es);
  }
  return ck_wclose(&w, err);
}
