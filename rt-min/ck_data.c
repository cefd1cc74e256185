/* rt-min/ck_data.c - token files, IDX and .npy data sources (see ck_data.h).
 *
 * Files are read once and validated up front: a bad token id or a label
 * outside the class range is reported with its position when the run starts,
 * not as a mysterious failure a thousand steps in. Memory holds one copy of
 * the data: token files stay as read (ids decoded per window), IDX files are
 * converted chunk by chunk as they stream in, npy files are digested in
 * chunks and read straight into the converted array. */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include "ck_data.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define CK_DATA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CK_DATA_PRINTF(a, b)
#endif

uint64_t ck_fnv1a64(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

size_t ck_data_elsize(CkIoDType t) {
  switch (t) {
  case CK_IO_F64: return 8;
  case CK_IO_F32:
  case CK_IO_I32: return 4;
  default: return 1;
  }
}

/* One line "path: problem" into err; always returns CK_IO_ERR. */
static int data_fail(CkIoErr *err, const char *path, const char *fmt, ...) CK_DATA_PRINTF(3, 4);
static int data_fail(CkIoErr *err, const char *path, const char *fmt, ...) {
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

static const char *dtype_name(CkIoDType t) {
  switch (t) {
  case CK_IO_F32: return "f32";
  case CK_IO_F64: return "f64";
  case CK_IO_I32: return "i32";
  case CK_IO_U8: return "u8";
  default: return "bool";
  }
}

/* "f32[64,784]" */
static void desc_text(char *out, size_t cap, const CkTensorDesc *t) {
  size_t n = (size_t)snprintf(out, cap, "%s[", dtype_name(t->dtype));
  int i;
  for (i = 0; i < t->rank && n < cap; i++)
    n += (size_t)snprintf(out + n, cap - n, "%s%lld", i ? "," : "", (long long)t->dims[i]);
  if (n < cap) snprintf(out + n, cap - n, "]");
}

/* Reads a whole file into malloc'd memory and records its digest. */
static int read_whole(const char *path, unsigned char **buf, int64_t *len, CkDataFile *rec,
                      CkIoErr *err) {
  FILE *f = fopen(path, "rb");
  long sz;
  unsigned char *b;
  if (!f) return data_fail(err, path, "cannot open: %s", strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return data_fail(err, path, "cannot determine the file size");
  }
  b = malloc(sz > 0 ? (size_t)sz : 1);
  if (!b) {
    fclose(f);
    return data_fail(err, path, "out of memory (%ld bytes)", sz);
  }
  if (sz > 0 && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
    free(b);
    fclose(f);
    return data_fail(err, path, "read error");
  }
  fclose(f);
  *buf = b;
  *len = sz;
  snprintf(rec->path, sizeof rec->path, "%s", path);
  rec->digest = ck_fnv1a64(CK_FNV_BASIS, b, (size_t)sz);
  rec->bytes = sz;
  return CK_IO_OK;
}

/* A file read in order, in chunks, with its digest computed as it goes:
 * sources that convert their data (IDX) or re-read it (npy) never hold the
 * raw file next to the converted copy. */
#define CK_DATA_CHUNK ((size_t)1 << 20)

typedef struct DataStream {
  FILE *f;
  int64_t len;      /* file size */
  uint64_t digest;  /* FNV-1a 64 of the bytes read so far */
} DataStream;

static int stream_open(DataStream *st, const char *path, CkIoErr *err) {
  long sz;
  st->digest = CK_FNV_BASIS;
  st->f = fopen(path, "rb");
  if (!st->f) return data_fail(err, path, "cannot open: %s", strerror(errno));
  if (fseek(st->f, 0, SEEK_END) != 0 || (sz = ftell(st->f)) < 0 || fseek(st->f, 0, SEEK_SET) != 0) {
    fclose(st->f);
    st->f = NULL;
    return data_fail(err, path, "cannot determine the file size");
  }
  st->len = sz;
  return CK_IO_OK;
}

/* The next n bytes (the caller keeps within the file) into buf, digested. */
static int stream_read(DataStream *st, const char *path, void *buf, size_t n, CkIoErr *err) {
  if (n && fread(buf, 1, n, st->f) != n) return data_fail(err, path, "read error");
  st->digest = ck_fnv1a64(st->digest, buf, n);
  return CK_IO_OK;
}

/* Digests the rest of the file; records path, digest and size; closes. */
static int stream_finish(DataStream *st, const char *path, CkDataFile *rec, CkIoErr *err) {
  unsigned char *buf = malloc(CK_DATA_CHUNK);
  int64_t pos = ftell(st->f);
  int rc = CK_IO_OK;
  if (!buf) rc = data_fail(err, path, "out of memory");
  while (!rc && pos < st->len) {
    size_t k = st->len - pos < (int64_t)CK_DATA_CHUNK ? (size_t)(st->len - pos) : CK_DATA_CHUNK;
    rc = stream_read(st, path, buf, k, err);
    pos += (int64_t)k;
  }
  free(buf);
  fclose(st->f);
  st->f = NULL;
  if (rc) return rc;
  snprintf(rec->path, sizeof rec->path, "%s", path);
  rec->digest = st->digest;
  rec->bytes = st->len;
  return CK_IO_OK;
}

static void stream_close(DataStream *st) {
  if (st->f) fclose(st->f);
  st->f = NULL;
}

/* ---- tokens -------------------------------------------------------------------------------- */

/* Token id i of the stored file bytes (u8 / u16 LE / i32 LE). */
static int64_t tok_at(const unsigned char *b, int width, int64_t i) {
  const unsigned char *p = b + i * width;
  if (width == 1) return p[0];
  if (width == 2) return (int64_t)p[0] | (int64_t)p[1] << 8;
  return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* n ids from token position o into out (a batch row). */
void ck_data_tokens(const CkData *d, int64_t o, int64_t n, int32_t *out) {
  int64_t i;
  if (d->tok_width == 1) {
    const unsigned char *p = d->tok + o;
    for (i = 0; i < n; i++) out[i] = p[i];
  } else {
    for (i = 0; i < n; i++) out[i] = (int32_t)tok_at(d->tok, d->tok_width, o + i);
  }
}

/* Keeps the token file as read (its bytes are the storage) and checks every
 * id against the vocabulary, so a batch can never carry an out-of-range id. */
static int open_tokens(CkData *d, const CkDataDesc *desc, const char *path, CkIoErr *err) {
  unsigned char *b = NULL;
  int64_t len = 0, i, n, width;
  int64_t need = d->seq + 1;
  char tx[120];
  if (d->x.dtype != CK_IO_I32 || d->y.dtype != CK_IO_I32 || d->x.numel != d->batch * d->seq ||
      d->y.numel != d->batch * d->seq) {
    desc_text(tx, sizeof tx, &d->x);
    return data_fail(err, path, "shape mismatch: token batches are i32[%lld,%lld] (x and y), the model's x is %s",
                     (long long)d->batch, (long long)d->seq, tx);
  }
  if (read_whole(path, &b, &len, &d->files[0], err)) return CK_IO_ERR;
  d->nfiles = 1;
  width = desc->file_u16 ? 2 : desc->file_dtype == CK_IO_I32 ? 4 : 1;
  if (len % width != 0) {
    free(b);
    return data_fail(err, path, "%lld bytes is not a whole number of %s tokens", (long long)len,
                     width == 2 ? "u16" : "i32");
  }
  n = len / width;
  for (i = 0; i < n; i++) {
    int64_t v = tok_at(b, (int)width, i);
    if (v < 0 || (d->vocab > 0 && v >= d->vocab)) {
      free(b);
      return data_fail(err, path, "token id %lld at position %lld is outside the vocabulary [0, %lld)",
                       (long long)v, (long long)i, (long long)d->vocab);
    }
  }
  d->tok = b;
  d->tok_width = (int)width;
  d->ntok = n;
  if (d->role == CK_DATA_ROLE_EVAL) {
    d->train_begin = d->train_end = 0;
    d->eval_begin = 0;
    d->eval_end = n;
  } else {
    int64_t nval = (int64_t)((double)n * desc->val_fraction);
    if (nval < 0 || desc->val_fraction <= 0) nval = 0;
    d->train_begin = 0;
    d->train_end = n - nval;
    d->eval_begin = n - nval;
    d->eval_end = n;
    if (d->train_end < need)
      return data_fail(err, path,
                       "too short for one batch: the train split has %lld tokens, a window needs %lld (seq %lld + 1)",
                       (long long)d->train_end, (long long)need, (long long)d->seq);
  }
  if ((d->role == CK_DATA_ROLE_EVAL || d->eval_end > d->eval_begin) && ck_data_eval_batches(d) < 1)
    return data_fail(err, path,
                     "too short for one batch: the %s has %lld tokens, one eval batch needs %lld windows of %lld tokens",
                     d->role == CK_DATA_ROLE_EVAL ? "eval set" : "validation split",
                     (long long)(d->eval_end - d->eval_begin), (long long)d->batch, (long long)need);
  return CK_IO_OK;
}

/* ---- IDX ----------------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The value of element i of IDX data of type code `ty` (big-endian). */
static double idx_value(const unsigned char *p, int ty, int64_t i) {
  uint32_t u;
  uint64_t w;
  switch (ty) {
  case 0x08: return p[i];
  case 0x09: return (signed char)p[i];
  case 0x0B: return (int16_t)(uint16_t)((unsigned)p[2 * i] << 8 | p[2 * i + 1]);
  case 0x0C: return (int32_t)be32(p + 4 * i);
  case 0x0D: {
    float f;
    u = be32(p + 4 * i);
    memcpy(&f, &u, 4);
    return f;
  }
  default: {
    double v;
    w = (uint64_t)be32(p + 8 * i) << 32 | be32(p + 8 * i + 4);
    memcpy(&v, &w, 8);
    return v;
  }
  }
}

/* Stores v as element i of an array of dtype t. */
static void store_value(unsigned char *dst, CkIoDType t, int64_t i, double v) {
  if (t == CK_IO_F32) {
    float f = (float)v;
    memcpy(dst + 4 * i, &f, 4);
  } else if (t == CK_IO_F64) {
    memcpy(dst + 8 * i, &v, 8);
  } else if (t == CK_IO_I32) {
    int32_t k = (int32_t)v;
    memcpy(dst + 4 * i, &k, 4);
  } else {
    dst[i] = (unsigned char)v;
  }
}

/* Parses one IDX file into per-sample values of the model's dtype `t`
 * (values times `scale` for float tensors). per_sample = elements one sample
 * of the model tensor holds. The header is checked against the file size
 * first; the data is then decoded chunk by chunk straight into *out. */
static int read_idx(const char *path, CkDataFile *rec, const CkTensorDesc *t, int64_t per_sample,
                    double scale, int64_t *nsamples, unsigned char **out, CkIoErr *err) {
  DataStream st;
  unsigned char b[36], *chunk;
  int64_t len, n, items = 1, i, hdr, esz, done, total;
  int ty, nd, k;
  char shape[200], tx[120];
  size_t sl = 0, per;
  *out = NULL;
  if (stream_open(&st, path, err)) return CK_IO_ERR;
  len = st.len;
#define IDX_BAD(...)                                                                               \
  do {                                                                                             \
    stream_close(&st);                                                                             \
    free(*out);                                                                                    \
    *out = NULL;                                                                                   \
    return data_fail(err, path, __VA_ARGS__);                                                      \
  } while (0)
  if (stream_read(&st, path, b, (size_t)(len < 4 ? len : 4), err)) {
    stream_close(&st);
    return CK_IO_ERR;
  }
  if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b)
    IDX_BAD("gzip-compressed IDX files are not read; decompress with gunzip first");
  if (len < 4 || b[0] != 0 || b[1] != 0) IDX_BAD("not an IDX file (magic 00 00 TT NN expected)");
  ty = b[2];
  nd = b[3];
  esz = ty == 0x08 || ty == 0x09 ? 1 : ty == 0x0B ? 2 : ty == 0x0C || ty == 0x0D ? 4 : ty == 0x0E ? 8 : 0;
  if (!esz) IDX_BAD("unknown IDX element type 0x%02x", (unsigned)ty);
  if (nd < 1 || nd > 8) IDX_BAD("IDX rank %d is not supported (1 to 8)", nd);
  hdr = 4 + 4 * (int64_t)nd;
  if (len < hdr) IDX_BAD("truncated: the header needs %lld bytes, the file has %lld", (long long)hdr, (long long)len);
  if (stream_read(&st, path, b + 4, (size_t)(hdr - 4), err)) {
    stream_close(&st);
    return CK_IO_ERR;
  }
  n = be32(b + 4);
  shape[0] = '\0';
  for (k = 1; k < nd; k++) {
    int64_t dk = be32(b + 4 + 4 * k);
    items *= dk;
    if (items > ((int64_t)1 << 40)) IDX_BAD("IDX dimensions too large");
    sl += (size_t)snprintf(shape + sl, sizeof shape - sl, "%s%lld", k > 1 ? "," : "", (long long)dk);
    if (sl >= sizeof shape) sl = sizeof shape - 1;
  }
  /* n < 2^32 and items * esz <= 2^43: compare by division first so the
   * product below cannot overflow */
  if (items * esz > 0 && n > (len - hdr) / (items * esz)) {
    if (n > ((int64_t)1 << 62) / (items * esz)) IDX_BAD("truncated: the header announces more data than the file holds");
    IDX_BAD("truncated: %lld bytes of data expected, %lld present", (long long)(n * items * esz), (long long)(len - hdr));
  }
  if (n * items * esz != len - hdr) IDX_BAD("%lld trailing bytes after the data", (long long)(len - hdr - n * items * esz));
  if (items != per_sample) {
    desc_text(tx, sizeof tx, t);
    IDX_BAD("shape mismatch: a sample is [%s] (%lld values), the model's %s takes %lld per sample", shape,
            (long long)items, tx, (long long)per_sample);
  }
  total = n * items;
  *out = malloc((size_t)(total > 0 ? total : 1) * ck_data_elsize(t->dtype));
  chunk = malloc(CK_DATA_CHUNK);
  if (!*out || !chunk) {
    free(chunk);
    IDX_BAD("out of memory");
  }
  per = CK_DATA_CHUNK / (size_t)esz;
  for (done = 0; done < total;) {
    int64_t m = total - done < (int64_t)per ? total - done : (int64_t)per;
    if (stream_read(&st, path, chunk, (size_t)(m * esz), err)) {
      free(chunk);
      stream_close(&st);
      free(*out);
      *out = NULL;
      return CK_IO_ERR;
    }
    for (i = 0; i < m; i++) {
      double v = idx_value(chunk, ty, i);
      if (t->dtype == CK_IO_F32 || t->dtype == CK_IO_F64) v *= scale;
      store_value(*out, t->dtype, done + i, v);
    }
    done += m;
  }
  free(chunk);
#undef IDX_BAD
  if (stream_finish(&st, path, rec, err)) {
    free(*out);
    *out = NULL;
    return CK_IO_ERR;
  }
  *nsamples = n;
  return CK_IO_OK;
}

/* ---- npy ----------------------------------------------------------------------------------- */

/* Counts the samples of a .npy array from its size (header length from the
 * preamble), then lets ck_npy_read validate magic, dtype and the full shape
 * [N, per-sample dims...] against the model's tensor. */
static int read_npy(const char *path, CkDataFile *rec, const CkTensorDesc *t, double scale,
                    int64_t *nsamples, unsigned char **out, CkIoErr *err) {
  DataStream st;
  unsigned char b[12];
  int64_t len = 0, off, per = 1, n, i;
  int64_t dims[8];
  size_t es = ck_data_elsize(t->dtype);
  int k;
  /* the digest in one streaming pass; the preamble is all this needs */
  if (stream_open(&st, path, err)) return CK_IO_ERR;
  len = st.len;
  if (stream_read(&st, path, b, (size_t)(len < 12 ? len : 12), err) || stream_finish(&st, path, rec, err)) {
    stream_close(&st);
    return CK_IO_ERR;
  }
  if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return data_fail(err, path, "not a .npy file (no \\x93NUMPY magic; %lld bytes)", (long long)len);
  if (b[6] == 1)
    off = 10 + ((int64_t)b[8] | (int64_t)b[9] << 8);
  else if (len >= 12)
    off = 12 + (int64_t)((uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24);
  else
    off = len + 1;
  for (k = 1; k < t->rank; k++) per *= t->dims[k];
  if (off > len || per <= 0) {
    /* let the reader produce its precise message */
    n = 0;
  } else {
    n = (len - off) / (per * (int64_t)es);
  }
  dims[0] = n;
  for (k = 1; k < t->rank && k < 8; k++) dims[k] = t->dims[k];
  *out = malloc((size_t)(n * per > 0 ? n * per : 1) * es);
  if (!*out) return data_fail(err, path, "out of memory");
  if (ck_npy_read(path, t->dtype, t->rank, dims, *out, err) != CK_IO_OK) {
    free(*out);
    *out = NULL;
    return CK_IO_ERR;
  }
  if (scale != 1.0 && t->dtype == CK_IO_F32)
    for (i = 0; i < n * per; i++) {
      float f;
      memcpy(&f, *out + 4 * i, 4);
      f = (float)(f * scale);
      memcpy(*out + 4 * i, &f, 4);
    }
  *nsamples = n;
  return CK_IO_OK;
}

/* ---- sample sources ------------------------------------------------------------------------ */

/* Splits "X,Y" into two paths (for IDX and npy overrides). */
static int split_pair(const char *s, char *a, char *b, size_t cap) {
  const char *c = strchr(s, ',');
  size_t la;
  if (!c) return -1;
  la = (size_t)(c - s);
  if (la >= cap || strlen(c + 1) >= cap || la == 0 || !c[1]) return -1;
  memcpy(a, s, la);
  a[la] = '\0';
  strcpy(b, c + 1);
  return 0;
}

/* IDX or npy: x and y files, equal sample counts, labels within the classes. */
static int open_samples(CkData *d, const CkDataDesc *desc, const char *override, CkIoErr *err) {
  char xp[400], yp[400];
  int64_t nx = 0, ny = 0, perx, pery, i, nval;
  double scale = desc->scale != 0 ? desc->scale : 1.0;
  int rc;
  if (override) {
    if (split_pair(override, xp, yp, sizeof xp) != 0)
      return data_fail(err, override, "two files expected as X,Y (images and labels)");
  } else {
    snprintf(xp, sizeof xp, "%s", desc->x_path ? desc->x_path : "");
    snprintf(yp, sizeof yp, "%s", desc->y_path ? desc->y_path : "");
  }
  if (d->x.rank < 1 || d->y.rank < 1 || d->x.dims[0] != d->batch || d->y.dims[0] != d->batch)
    return data_fail(err, xp, "shape mismatch: the model's x and y must have the batch (%lld) first",
                     (long long)d->batch);
  perx = d->x.numel / d->batch;
  pery = d->y.numel / d->batch;
  d->x_item = (size_t)perx * ck_data_elsize(d->x.dtype);
  d->y_item = (size_t)pery * ck_data_elsize(d->y.dtype);
  if (d->kind == CK_DATA_IDX) {
    rc = read_idx(xp, &d->files[0], &d->x, perx, scale, &nx, &d->xs, err);
    if (!rc) rc = read_idx(yp, &d->files[1], &d->y, pery, 1.0, &ny, &d->ys, err);
  } else {
    rc = read_npy(xp, &d->files[0], &d->x, scale, &nx, &d->xs, err);
    if (!rc) rc = read_npy(yp, &d->files[1], &d->y, 1.0, &ny, &d->ys, err);
  }
  if (rc) return CK_IO_ERR;
  d->nfiles = 2;
  if (nx != ny)
    return data_fail(err, yp, "%lld samples, but %s has %lld", (long long)ny, xp, (long long)nx);
  if (d->y.dtype == CK_IO_I32 && d->vocab > 0)
    for (i = 0; i < ny * pery; i++) {
      int32_t v;
      memcpy(&v, d->ys + 4 * i, 4);
      if (v < 0 || v >= d->vocab)
        return data_fail(err, yp, "label %ld at position %lld is outside the classes [0, %lld)", (long)v,
                         (long long)i, (long long)d->vocab);
    }
  d->nsamples = nx;
  nval = d->role == CK_DATA_ROLE_EVAL ? nx : desc->val_fraction > 0 ? (int64_t)((double)nx * desc->val_fraction) : 0;
  d->train_begin = 0;
  d->train_end = nx - nval;
  d->eval_begin = nx - nval;
  d->eval_end = nx;
  if (d->role == CK_DATA_ROLE_TRAIN && d->train_end < d->batch)
    return data_fail(err, xp, "too short for one batch: the train split has %lld samples, a batch needs %lld",
                     (long long)d->train_end, (long long)d->batch);
  if ((d->role == CK_DATA_ROLE_EVAL || nval > 0) && nval < d->batch)
    return data_fail(err, xp, "too short for one batch: the %s has %lld samples, a batch needs %lld",
                     d->role == CK_DATA_ROLE_EVAL ? "eval set" : "validation split", (long long)nval,
                     (long long)d->batch);
  d->perm = malloc((size_t)(d->train_end > 0 ? d->train_end : 1) * sizeof(int64_t));
  if (!d->perm) return data_fail(err, xp, "out of memory");
  return CK_IO_OK;
}

/* The order of epoch e: Fisher-Yates over the train split with the stream
 * "data:epoch:<e>", so any epoch's order is recomputed from (seed, e) alone. */
static void shuffle_epoch(CkData *d, int64_t e) {
  char name[48];
  CkRng r;
  int64_t i, n = d->train_end - d->train_begin;
  snprintf(name, sizeof name, "data:epoch:%lld", (long long)e);
  ck_rng_seed_stream(&r, d->seed, name);
  for (i = 0; i < n; i++) d->perm[i] = d->train_begin + i;
  for (i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(ck_rng_u64(&r) % (uint64_t)(i + 1));
    int64_t t = d->perm[i];
    d->perm[i] = d->perm[j];
    d->perm[j] = t;
  }
}

/* ---- public -------------------------------------------------------------------------------- */

int ck_data_open(CkData *d, const CkDataDesc *desc, const char *path_override, int role,
                 uint64_t seed, CkIoErr *err) {
  const char *path;
  memset(d, 0, sizeof *d);
  err->msg[0] = '\0';
  d->kind = desc->kind;
  d->role = role;
  d->x = desc->x;
  d->y = desc->y;
  d->batch = desc->batch > 0 ? desc->batch : desc->x.rank > 0 ? desc->x.dims[0] : 0;
  d->seq = desc->seq;
  d->vocab = desc->vocab;
  d->seed = seed;
  ck_rng_seed_stream(&d->rng, seed, "data");
  if (d->batch <= 0) return data_fail(err, "data", "the batch size must be positive");
  if (desc->kind == CK_DATA_TOKENS) {
    path = path_override ? path_override : desc->path ? desc->path : "";
    if (d->seq <= 0) return data_fail(err, path, "the sequence length must be positive");
    if (open_tokens(d, desc, path, err)) {
      ck_data_free(d);
      return CK_IO_ERR;
    }
    return CK_IO_OK;
  }
  if (desc->kind == CK_DATA_IDX || desc->kind == CK_DATA_NPY) {
    if (open_samples(d, desc, path_override, err)) {
      ck_data_free(d);
      return CK_IO_ERR;
    }
    if (role == CK_DATA_ROLE_TRAIN) shuffle_epoch(d, 0);
    return CK_IO_OK;
  }
  return data_fail(err, "data", "no data source");
}

void ck_data_free(CkData *d) {
  if (!d->borrowed) {
    free(d->tok);
    free(d->xs);
    free(d->ys);
    free(d->perm);
  }
  d->tok = NULL;
  d->xs = d->ys = NULL;
  d->perm = NULL;
}

/* The validation split lives in the train source's own buffers: a view
 * instead of opening (reading, validating, holding) the file a second time. */
void ck_data_view(CkData *view, const CkData *src) {
  *view = *src;
  view->perm = NULL;
  view->borrowed = 1;
}

void ck_data_next(CkData *d, void *x, void *y) {
  int64_t b;
  if (d->kind == CK_DATA_TOKENS) {
    int32_t *xo = x, *yo = y;
    uint64_t span = (uint64_t)(d->train_end - d->train_begin - d->seq);
    for (b = 0; b < d->batch; b++) {
      int64_t o = d->train_begin + (int64_t)(ck_rng_u64(&d->rng) % span);
      ck_data_tokens(d, o, d->seq, xo + b * d->seq);
      ck_data_tokens(d, o + 1, d->seq, yo + b * d->seq);
    }
  } else {
    unsigned char *xo = x, *yo = y;
    if (d->pos + d->batch > d->train_end - d->train_begin) {
      d->epoch++;
      d->pos = 0;
      shuffle_epoch(d, d->epoch);
    }
    for (b = 0; b < d->batch; b++) {
      int64_t s = d->perm[d->pos + b];
      memcpy(xo + (size_t)b * d->x_item, d->xs + (size_t)s * d->x_item, d->x_item);
      memcpy(yo + (size_t)b * d->y_item, d->ys + (size_t)s * d->y_item, d->y_item);
    }
    d->pos += d->batch;
  }
  d->batches++;
}

int64_t ck_data_eval_batches(const CkData *d) {
  int64_t n = d->eval_end - d->eval_begin;
  if (d->kind == CK_DATA_TOKENS) {
    int64_t windows = n >= d->seq + 1 ? (n - 1) / d->seq : 0;
    return windows / d->batch;
  }
  return n / d->batch;
}

/* Eval batch i: tokens are consecutive non-overlapping windows (stride seq),
 * samples are consecutive samples, both in file order. */
void ck_data_eval_batch(const CkData *d, int64_t i, void *x, void *y) {
  int64_t b;
  if (d->kind == CK_DATA_TOKENS) {
    int32_t *xo = x, *yo = y;
    for (b = 0; b < d->batch; b++) {
      int64_t o = d->eval_begin + (i * d->batch + b) * d->seq;
      ck_data_tokens(d, o, d->seq, xo + b * d->seq);
      ck_data_tokens(d, o + 1, d->seq, yo + b * d->seq);
    }
  } else {
    size_t s0 = (size_t)(d->eval_begin + i * d->batch);
    memcpy(x, d->xs + s0 * d->x_item, (size_t)d->batch * d->x_item);
    memcpy(y, d->ys + s0 * d->y_item, (size_t)d->batch * d->y_item);
  }
}

void ck_data_get_cursor(const CkData *d, CkDataCursor *c) {
  memcpy(c->rng, d->rng.s, sizeof c->rng);
  c->epoch = d->epoch;
  c->pos = d->pos;
  c->batches = d->batches;
}

int ck_data_set_cursor(CkData *d, const CkDataCursor *c, CkIoErr *err) {
  const char *path = d->nfiles > 0 ? d->files[0].path : "data";
  if (c->epoch < 0 || c->pos < 0 || c->batches < 0 ||
      (d->kind != CK_DATA_TOKENS && c->pos > d->train_end - d->train_begin) ||
      (d->kind == CK_DATA_TOKENS && (c->epoch != 0 || c->pos != 0)))
    return data_fail(err, path, "data cursor (epoch %lld, position %lld) does not fit this data",
                     (long long)c->epoch, (long long)c->pos);
  if (d->kind == CK_DATA_TOKENS && !(c->rng[0] | c->rng[1] | c->rng[2] | c->rng[3]))
    return data_fail(err, path, "data cursor has an all-zero random state");
  memcpy(d->rng.s, c->rng, sizeof c->rng);
  if (d->kind != CK_DATA_TOKENS && c->epoch != d->epoch) shuffle_epoch(d, c->epoch);
  d->epoch = c->epoch;
  d->pos = c->pos;
  d->batches = c->batches;
  return CK_IO_OK;
}
