/* test-suite/unit/check_runtime.c - the generic runtime driver of generated
 * programs (rt-min/ck_main.c, ck_data, ck_ckpt, ck_run), tested without the
 * compiler through the hand-written fake models of
 * test-suite/runtime/fake_model.h:
 *   data     token windows and splits, u8/u16/i32 decoding, IDX and .npy
 *            sources, per-epoch shuffles, cursor round trips, every error
 *   ckpt     round trip, corruption at every byte and truncation at every
 *            length refused naming the file with the caller's buffers
 *            untouched, newest-valid selection
 *   run      metrics truncation, loss.svg well-formedness
 *   train    two runs bitwise identical; resume from every checkpoint equals
 *            the uninterrupted run; manifest/metrics parse (cJSON); NaN stop;
 *            eval and grad sub-commands; the fake models' own gradients. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt-min/ck_ckpt.h"
#include "rt-min/ck_data.h"
#include "rt-min/ck_run.h"
#include "test-suite/runtime/fake_model.h"

/* ---- helpers -------------------------------------------------------------------------------- */

typedef struct Tmp {
  char dir[64];
  char path[512];
} Tmp;

static void tmp_open(Tmp *t) {
  strcpy(t->dir, "/tmp/ck_runtime_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(t->dir));
}

/* Full path of a name inside the test's directory (valid until the next call). */
static const char *tp(Tmp *t, const char *name) {
  /* one buffer: never pass two tp() results to one call (see tp2) */
  snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
  return t->path;
}

static void tmp_close(Tmp *t) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
  ck_assert_int_eq(system(cmd), 0);
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  if (n) ck_assert_uint_eq(fwrite(p, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

/* A second path buffer, for calls that take two paths. */
static const char *tp2(Tmp *t, char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", t->dir, name);
  return buf;
}

/* Whole file, NUL-terminated; NULL when missing. */
static char *read_text(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  char *b;
  long sz;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  b = malloc((size_t)sz + 1);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
  fclose(f);
  b[sz] = '\0';
  if (n) *n = (size_t)sz;
  return b;
}

static int files_equal(const char *a, const char *b) {
  size_t na, nb;
  char *x = read_text(a, &na), *y = read_text(b, &nb);
  int eq = x && y && na == nb && memcmp(x, y, na) == 0;
  free(x);
  free(y);
  return eq;
}

static void copy_file(const char *from, const char *to) {
  size_t n;
  char *b = read_text(from, &n);
  ck_assert_msg(b != NULL, "missing %s", from);
  write_bytes(to, b, n);
  free(b);
}

/* metrics.jsonl with the timing-dependent fields removed (the only fields
 * outside the bitwise guarantee). */
static char *metrics_sans_timing(const char *path) {
  size_t n, i, o = 0;
  char *b = read_text(path, &n), *out;
  ck_assert_msg(b != NULL, "missing %s", path);
  out = malloc(n + 1);
  for (i = 0; i < n;) {
    if (strncmp(b + i, ",\"tokens_per_s\":", 16) == 0 || strncmp(b + i, ",\"samples_per_s\":", 17) == 0 ||
        strncmp(b + i, ",\"time_s\":", 10) == 0) {
      i++;
      while (i < n && b[i] != ',' && b[i] != '}') i++;
      continue;
    }
    out[o++] = b[i++];
  }
  out[o] = '\0';
  free(b);
  return out;
}

static int run_main(FakeModel *f, const char *const *args) {
  char *argv[40];
  int argc = 0;
  argv[argc++] = (char *)f->m.exe;
  while (args[argc - 1]) {
    argv[argc] = (char *)args[argc - 1];
    argc++;
  }
  argv[argc] = NULL;
  return ck_main(argc, argv, &f->m);
}

/* Token file of n ids: id(i) = (i * 7 + i / 128) % V written with width bytes. */
static void write_tokens(const char *path, int64_t n, int width, int64_t bad_at, int bad_value) {
  unsigned char *b = malloc((size_t)(n * width) + 1);
  int64_t i;
  for (i = 0; i < n; i++) {
    uint32_t v = i == bad_at ? (uint32_t)bad_value : (uint32_t)((i * 7 + i / 128) % LM_V);
    int k;
    for (k = 0; k < width; k++) b[i * width + k] = (unsigned char)(v >> (8 * k));
  }
  write_bytes(path, b, (size_t)(n * width));
  free(b);
}

/* IDX file: magic 00 00 type rank, big-endian dims, data. */
static void write_idx(const char *path, int type, int rank, const uint32_t *dims, const void *data, size_t bytes) {
  unsigned char *b = malloc(4 + 4 * (size_t)rank + bytes);
  int k;
  b[0] = 0;
  b[1] = 0;
  b[2] = (unsigned char)type;
  b[3] = (unsigned char)rank;
  for (k = 0; k < rank; k++) {
    b[4 + 4 * k] = (unsigned char)(dims[k] >> 24);
    b[5 + 4 * k] = (unsigned char)(dims[k] >> 16);
    b[6 + 4 * k] = (unsigned char)(dims[k] >> 8);
    b[7 + 4 * k] = (unsigned char)dims[k];
  }
  memcpy(b + 4 + 4 * rank, data, bytes);
  write_bytes(path, b, 4 + 4 * (size_t)rank + bytes);
  free(b);
}

/* n samples of 2x2 u8 images: pixel p of sample s = (s * 4 + p) % 256 (so
 * every sample is recognisable), label = (s * 5) % 3 (learnable-ish). */
static void write_mlp_idx(const char *xp, const char *yp, uint32_t n) {
  unsigned char *x = malloc(n * 4), *y = malloc(n);
  uint32_t dx[3] = {n, 2, 2}, dy[1] = {n}, s, p;
  for (s = 0; s < n; s++) {
    for (p = 0; p < 4; p++) x[s * 4 + p] = (unsigned char)((s * 4 + p) % 256);
    y[s] = (unsigned char)((x[s * 4] / 32 + (x[s * 4 + 3] > 128)) % 3);
  }
  write_idx(xp, 0x08, 3, dx, x, n * 4);
  write_idx(yp, 0x08, 1, dy, y, n);
  free(x);
  free(y);
}

/* ---- data ----------------------------------------------------------------------------------- */

START_TEST(data_token_windows) {
  Tmp t;
  FakeModel f;
  CkData d;
  CkIoErr err;
  int32_t x[LM_B * LM_T], y[LM_B * LM_T];
  int64_t i, b, k;
  tmp_open(&t);
  /* 100 tokens: id(i) = i*7 % 128 identifies the position */
  write_tokens(tp(&t, "tok.u8"), 100, 1, -1, 0);
  fake_lm_make(&f, tp(&t, "tok.u8"), 1, 0.25);
  ck_assert_int_eq(ck_data_open(&d, &f.t.data, NULL, CK_DATA_ROLE_TRAIN, 1, &err), 0);
  ck_assert_int_eq(d.train_end, 75);
  ck_assert_int_eq(d.eval_begin, 75);
  ck_assert_int_eq(d.eval_end, 100);
  for (i = 0; i < 50; i++) {
    ck_data_next(&d, x, y);
    for (b = 0; b < LM_B; b++) {
      int64_t o = -1;
      for (k = 0; k < 128; k++)
        if ((k * 7) % 128 == x[b * LM_T]) o = k;
      ck_assert_int_ge(o, 0);
      ck_assert_int_le(o + LM_T, 74); /* y's last token is inside the train split */
      for (k = 0; k < LM_T; k++) {
        ck_assert_int_eq(x[b * LM_T + k], ((o + k) * 7) % 128);
        ck_assert_int_eq(y[b * LM_T + k], ((o + k + 1) * 7) % 128);
      }
    }
  }
  /* eval: (25 - 1) / 8 = 3 windows -> 1 batch of 2, consecutive from 75 */
  ck_assert_int_eq(ck_data_eval_batches(&d), 1);
  ck_data_eval_batch(&d, 0, x, y);
  for (k = 0; k < LM_B * LM_T; k++) {
    ck_assert_int_eq(x[k], ((75 + k) * 7) % 128);
    ck_assert_int_eq(y[k], ((76 + k) * 7) % 128);
  }
  ck_data_free(&d);
  tmp_close(&t);
}
END_TEST

START_TEST(data_token_widths_and_cursor) {
  Tmp t;
  FakeModel f8, f16, f32;
  CkData a, b, c, r;
  CkIoErr err;
  CkDataCursor cur;
  int32_t xa[LM_B * LM_T], ya[LM_B * LM_T], xb[LM_B * LM_T], yb[LM_B * LM_T];
  int i;
  tmp_open(&t);
  write_tokens(tp(&t, "t.u8"), 500, 1, -1, 0);
  write_tokens(tp(&t, "t.u16"), 500, 2, -1, 0);
  write_tokens(tp(&t, "t.i32"), 500, 4, -1, 0);
  fake_lm_make(&f8, NULL, 1, 0.1);
  fake_lm_make(&f16, NULL, 2, 0.1);
  fake_lm_make(&f32, NULL, 4, 0.1);
  ck_assert_int_eq(ck_data_open(&a, &f8.t.data, tp(&t, "t.u8"), CK_DATA_ROLE_TRAIN, 9, &err), 0);
  ck_assert_int_eq(ck_data_open(&b, &f16.t.data, tp(&t, "t.u16"), CK_DATA_ROLE_TRAIN, 9, &err), 0);
  ck_assert_int_eq(ck_data_open(&c, &f32.t.data, tp(&t, "t.i32"), CK_DATA_ROLE_TRAIN, 9, &err), 0);
  ck_assert_int_eq(a.ntok, 500);
  ck_assert_int_eq(b.ntok, 500);
  ck_assert_int_eq(c.ntok, 500);
  {
    /* the ids are stored at the file's width and decode alike */
    int32_t ta[500], tb[500], tc[500];
    ck_data_tokens(&a, 0, 500, ta);
    ck_data_tokens(&b, 0, 500, tb);
    ck_data_tokens(&c, 0, 500, tc);
    ck_assert_mem_eq(ta, tb, sizeof ta);
    ck_assert_mem_eq(ta, tc, sizeof ta);
    for (i = 0; i < 500; i++) ck_assert_int_eq(ta[i], (i * 7 + i / 128) % LM_V);
  }
  /* same seed: same windows whatever the width */
  for (i = 0; i < 5; i++) {
    ck_data_next(&a, xa, ya);
    ck_data_next(&c, xb, yb);
    ck_assert_mem_eq(xa, xb, sizeof xa);
  }
  /* cursor round trip into a fresh stream */
  ck_data_get_cursor(&a, &cur);
  ck_assert_int_eq(cur.batches, 5);
  ck_assert_int_eq(ck_data_open(&r, &f8.t.data, tp(&t, "t.u8"), CK_DATA_ROLE_TRAIN, 9, &err), 0);
  ck_assert_int_eq(ck_data_set_cursor(&r, &cur, &err), 0);
  for (i = 0; i < 20; i++) {
    ck_data_next(&a, xa, ya);
    ck_data_next(&r, xb, yb);
    ck_assert_mem_eq(xa, xb, sizeof xa);
    ck_assert_mem_eq(ya, yb, sizeof ya);
  }
  /* another seed: another stream */
  ck_data_free(&r);
  ck_assert_int_eq(ck_data_open(&r, &f8.t.data, tp(&t, "t.u8"), CK_DATA_ROLE_TRAIN, 10, &err), 0);
  ck_data_next(&r, xb, yb);
  ck_data_free(&a);
  ck_assert_int_eq(ck_data_open(&a, &f8.t.data, tp(&t, "t.u8"), CK_DATA_ROLE_TRAIN, 9, &err), 0);
  ck_data_next(&a, xa, ya);
  ck_assert_msg(memcmp(xa, xb, sizeof xa) != 0, "seeds 9 and 10 drew the same windows");
  /* an impossible cursor is refused and changes nothing */
  cur.epoch = 3;
  ck_assert_int_eq(ck_data_set_cursor(&r, &cur, &err), 1);
  ck_assert_ptr_nonnull(strstr(err.msg, "does not fit"));
  ck_data_free(&a);
  ck_data_free(&b);
  ck_data_free(&c);
  ck_data_free(&r);
  tmp_close(&t);
}
END_TEST

START_TEST(data_idx_epochs) {
  Tmp t;
  FakeModel f;
  CkData d, r;
  CkIoErr err;
  CkDataCursor cur;
  float x[MLP_B * MLP_D], x2[MLP_B * MLP_D];
  int32_t y[MLP_B], y2[MLP_B];
  int seen[12], e, b, i, k;
  char xp[512], yp[512], pair[1100];
  tmp_open(&t);
  snprintf(xp, sizeof xp, "%s/x12.idx", t.dir);
  snprintf(yp, sizeof yp, "%s/y12.idx", t.dir);
  write_mlp_idx(xp, yp, 12);
  snprintf(pair, sizeof pair, "%s,%s", xp, yp);
  snprintf(xp, sizeof xp, "%s/x.idx", t.dir);
  snprintf(yp, sizeof yp, "%s/y.idx", t.dir);
  write_mlp_idx(xp, yp, 14);
  fake_mlp_make(&f, CK_DATA_IDX, xp, yp, NULL, NULL);
  f.t.data.val_fraction = 2.0 / 14.0 + 1e-9; /* 2 samples: too few for a batch of 4 */
  ck_assert_int_eq(ck_data_open(&d, &f.t.data, NULL, CK_DATA_ROLE_TRAIN, 5, &err), 1);
  ck_assert_msg(strstr(err.msg, "too short for one batch") && strstr(err.msg, "validation split"), "%s", err.msg);
  f.t.data.val_fraction = 0;
  /* 12 train samples via an X,Y override */
  ck_assert_int_eq(ck_data_open(&d, &f.t.data, pair, CK_DATA_ROLE_TRAIN, 5, &err), 0);
  ck_assert_int_eq(d.nsamples, 12);
  /* three epochs: each visits all 12 samples once, orders differ */
  for (e = 0; e < 3; e++) {
    memset(seen, 0, sizeof seen);
    for (b = 0; b < 3; b++) {
      ck_data_next(&d, x, y);
      for (i = 0; i < MLP_B; i++) {
        int s = (int)lroundf(x[i * MLP_D] * 255.0f) / 4;
        ck_assert_int_lt(s, 12);
        seen[s]++;
        for (k = 0; k < MLP_D; k++) ck_assert_float_eq(x[i * MLP_D + k], (float)((s * 4 + k) * (1.0 / 255.0)));
      }
    }
    for (i = 0; i < 12; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_eq(d.epoch, e);
  }
  /* cursor in the middle of epoch 3 */
  ck_data_next(&d, x, y);
  ck_data_get_cursor(&d, &cur);
  ck_assert_int_eq(cur.epoch, 3);
  ck_assert_int_eq(cur.pos, 4);
  ck_assert_int_eq(ck_data_open(&r, &f.t.data, NULL, CK_DATA_ROLE_TRAIN, 5, &err), 0);
  ck_assert_int_eq(r.nsamples, 14);
  ck_data_free(&r);
  ck_assert_int_eq(ck_data_open(&r, &f.t.data, pair, CK_DATA_ROLE_TRAIN, 5, &err), 0);
  ck_assert_int_eq(ck_data_set_cursor(&r, &cur, &err), 0);
  for (b = 0; b < 10; b++) {
    ck_data_next(&d, x, y);
    ck_data_next(&r, x2, y2);
    ck_assert_mem_eq(x, x2, sizeof x);
    ck_assert_mem_eq(y, y2, sizeof y);
  }
  ck_data_free(&d);
  ck_data_free(&r);
  tmp_close(&t);
}
END_TEST

START_TEST(data_npy_source) {
  Tmp t;
  FakeModel f;
  CkData d;
  CkIoErr err;
  float xs[8 * MLP_D], x[MLP_B * MLP_D];
  int32_t ys[8], y[MLP_B];
  int64_t dx[2] = {8, MLP_D}, dy[1] = {8};
  char xp[512], yp[512];
  int i;
  tmp_open(&t);
  for (i = 0; i < 8 * MLP_D; i++) xs[i] = (float)i;
  for (i = 0; i < 8; i++) ys[i] = i % 3;
  snprintf(xp, sizeof xp, "%s/x.npy", t.dir);
  snprintf(yp, sizeof yp, "%s/y.npy", t.dir);
  ck_assert_int_eq(ck_npy_write(xp, CK_IO_F32, 2, dx, xs, &err), 0);
  ck_assert_int_eq(ck_npy_write(yp, CK_IO_I32, 1, dy, ys, &err), 0);
  fake_mlp_make(&f, CK_DATA_NPY, xp, yp, NULL, NULL);
  f.t.data.val_fraction = 0.5;
  ck_assert_int_eq(ck_data_open(&d, &f.t.data, NULL, CK_DATA_ROLE_TRAIN, 1, &err), 0);
  ck_assert_int_eq(d.nsamples, 8);
  ck_assert_int_eq(ck_data_eval_batches(&d), 1);
  ck_data_eval_batch(&d, 0, x, y);
  ck_assert_mem_eq(x, xs + 4 * MLP_D, sizeof x);
  ck_assert_mem_eq(y, ys + 4, sizeof y);
  ck_data_next(&d, x, y);
  for (i = 0; i < MLP_B; i++) ck_assert_float_lt(x[i * MLP_D], 16.0f); /* train split only */
  ck_assert_int_eq(d.nfiles, 2);
  ck_assert_uint_ne(d.files[0].digest, d.files[1].digest);
  ck_data_free(&d);
  tmp_close(&t);
}
END_TEST

/* Each case writes bad data and expects the open to fail with words. */
typedef struct DataErrCase {
  const char *name;
  const char *expect;
} DataErrCase;

static const DataErrCase data_err_cases[] = {
    {"tokens too short", "too short for one batch"},
    {"token id >= vocab", "token id 200 at position 37 is outside the vocabulary [0, 128)"},
    {"u16 odd size", "not a whole number of u16 tokens"},
    {"val split too short", "validation split has 5 tokens"},
    {"idx gzip", "decompress with gunzip first"},
    {"idx truncated", "truncated: 40 bytes of data expected, 39 present"},
    {"idx shape mismatch", "shape mismatch: a sample is [3,3] (9 values)"},
    {"idx bad magic", "not an IDX file"},
    {"idx label count", "8 samples, but"},
    {"idx label range", "label 3 at position 2 is outside the classes [0, 3)"},
    {"idx too short", "too short for one batch: the train split has 3 samples, a batch needs 4"},
    {"npy shape mismatch", "shape [3,4] expected, file has [3,5]"},
    {"missing file", "cannot open"},
    {"pair override", "two files expected as X,Y"},
    {"idx huge dims", "truncated: the header announces more data than the file holds"},
};

START_TEST(data_errors) {
  const DataErrCase *c = &data_err_cases[_i];
  Tmp t;
  FakeModel f;
  CkData d;
  CkIoErr err;
  char xp[512], yp[512], *over = NULL;
  uint32_t dims[3] = {10, 2, 2}, dl[1] = {10};
  unsigned char px[64] = {0}, lab[16] = {0};
  tmp_open(&t);
  snprintf(xp, sizeof xp, "%s/x", t.dir);
  snprintf(yp, sizeof yp, "%s/y", t.dir);
  if (_i <= 3) {
    fake_lm_make(&f, xp, _i == 2 ? 2 : 1, _i == 3 ? 0.05 : 0);
    if (_i == 0) write_tokens(xp, 8, 1, -1, 0); /* a window needs 9 */
    if (_i == 1) write_tokens(xp, 100, 1, 37, 200);
    if (_i == 2) write_bytes(xp, "abcde", 5);
    if (_i == 3) write_tokens(xp, 100, 1, -1, 0);
  } else if (_i <= 10) {
    fake_mlp_make(&f, CK_DATA_IDX, xp, yp, NULL, NULL);
    write_idx(yp, 0x08, 1, dl, lab, 10);
    if (_i == 4) write_bytes(xp, "\x1f\x8b\x08\x00\x00\x00", 6);
    if (_i == 5) {
      write_idx(xp, 0x08, 3, dims, px, 40);
      ck_assert_int_eq(truncate(xp, 4 + 12 + 39), 0);
    }
    if (_i == 7) write_bytes(xp, "\x01\x02\x08\x03", 4);
    if (_i == 8) {
      uint32_t d8[1] = {8};
      write_idx(xp, 0x08, 3, dims, px, 40);
      write_idx(yp, 0x08, 1, d8, lab, 8);
    }
    if (_i == 9) {
      lab[2] = 3;
      write_idx(xp, 0x08, 3, dims, px, 40);
      write_idx(yp, 0x08, 1, dl, lab, 10);
    }
    if (_i == 10) {
      uint32_t d3[3] = {3, 2, 2}, l3[1] = {3};
      write_idx(xp, 0x08, 3, d3, px, 12);
      write_idx(yp, 0x08, 1, l3, lab, 3);
    }
  } else if (_i == 14) {
    uint32_t huge[3] = {0xffffffffu, 0xffffu, 0xffffu};
    fake_mlp_make(&f, CK_DATA_IDX, xp, yp, NULL, NULL);
    write_idx(xp, 0x0E, 3, huge, px, 8);
  } else {
    float z[32] = {0};
    int32_t zl[8] = {0};
    int64_t d35[2] = {3, 5}, dl3[1] = {3};
    fake_mlp_make(&f, CK_DATA_NPY, xp, yp, NULL, NULL);
    ck_assert_int_eq(ck_npy_write(xp, CK_IO_F32, 2, d35, z, &err), 0);
    ck_assert_int_eq(ck_npy_write(yp, CK_IO_I32, 1, dl3, zl, &err), 0);
    if (_i == 12) remove(xp);
    if (_i == 13) over = xp;
  }
  if (_i == 6) {
    /* rewrite with the full 90 bytes of data */
    unsigned char big[90] = {0};
    uint32_t d3[3] = {10, 3, 3};
    write_idx(xp, 0x08, 3, d3, big, 90);
  }
  ck_assert_int_eq(ck_data_open(&d, &f.t.data, over, CK_DATA_ROLE_TRAIN, 1, &err), 1);
  ck_assert_msg(strstr(err.msg, c->expect) != NULL, "%s: got '%s', expected '%s'", c->name, err.msg, c->expect);
  ck_assert_msg(strncmp(err.msg, t.dir, strlen(t.dir)) == 0, "%s: message does not name the file: %s", c->name,
                err.msg);
  tmp_close(&t);
}
END_TEST

/* ---- checkpoints ---------------------------------------------------------------------------- */

static void ckpt_fill(CkCkpt *c, float *p, float *m0, float *m1, int64_t n, int64_t step) {
  int64_t i;
  memset(c, 0, sizeof *c);
  c->step = step;
  c->seed = 42;
  c->model_hash = 0x1234567890abcdefull;
  c->cursor.rng[0] = 1;
  c->cursor.rng[1] = 2;
  c->cursor.rng[2] = 3;
  c->cursor.rng[3] = 0xffffffffffffffffull;
  c->cursor.epoch = 2;
  c->cursor.pos = 8;
  c->cursor.batches = 77;
  c->optim = CK_OPTIM_ADAMW;
  c->nmoments = 2;
  c->floats = n;
  for (i = 0; i < n; i++) {
    p[i] = (float)i * 0.5f - 3;
    m0[i] = (float)i * 1e-3f;
    m1[i] = -(float)i;
  }
  c->params = p;
  c->moments[0] = m0;
  c->moments[1] = m1;
}

START_TEST(ckpt_roundtrip) {
  Tmp t;
  CkCkpt w, r;
  CkIoErr err;
  float p[10], m0[10], m1[10], q[10], n0[10], n1[10];
  char path[600];
  tmp_open(&t);
  ckpt_fill(&w, p, m0, m1, 10, 30);
  ck_ckpt_name(path, sizeof path, t.dir, 30);
  ck_assert_ptr_nonnull(strstr(path, "/ckpt-00000030.ckpt"));
  ck_assert_int_eq(ck_ckpt_write(path, &w, 0, &err), 0);
  ck_assert_int_eq(access(tp(&t, "ckpt-00000030.ckpt.tmp"), F_OK), -1);
  memset(&r, 0, sizeof r);
  r.model_hash = w.model_hash;
  r.optim = CK_OPTIM_ADAMW;
  r.nmoments = 2;
  r.floats = 10;
  r.params = q;
  r.moments[0] = n0;
  r.moments[1] = n1;
  ck_assert_int_eq(ck_ckpt_read(path, &r, &err), 0);
  ck_assert_int_eq(r.step, 30);
  ck_assert_uint_eq(r.seed, 42);
  ck_assert_mem_eq(&r.cursor, &w.cursor, sizeof r.cursor);
  ck_assert_mem_eq(q, p, sizeof p);
  ck_assert_mem_eq(n0, m0, sizeof p);
  ck_assert_mem_eq(n1, m1, sizeof p);
  /* expectations that do not match are refused by name */
  r.optim = CK_OPTIM_SGD;
  ck_assert_int_eq(ck_ckpt_read(path, &r, &err), 1);
  ck_assert_ptr_nonnull(strstr(err.msg, "optimizer sgd expected, the checkpoint has adamw"));
  r.optim = CK_OPTIM_ADAMW;
  r.model_hash ^= 1;
  ck_assert_int_eq(ck_ckpt_read(path, &r, &err), 1);
  ck_assert_ptr_nonnull(strstr(err.msg, "different model"));
  r.model_hash ^= 1;
  r.floats = 9;
  ck_assert_int_eq(ck_ckpt_read(path, &r, &err), 1);
  ck_assert_msg(strstr(err.msg, "9 parameter floats expected, the checkpoint has 10") != NULL, "%s", err.msg);
  tmp_close(&t);
}
END_TEST

/* Any single corrupted byte and any truncation is refused with the file's
 * name, and the caller's buffers keep their contents. */
START_TEST(ckpt_corruption_every_byte) {
  Tmp t;
  CkCkpt w, r;
  CkIoErr err;
  float p[6], m0[6], m1[6], q[6], n0[6], n1[6], sentinel[6];
  char path[600], bad[600];
  size_t n, i;
  char *orig;
  tmp_open(&t);
  ckpt_fill(&w, p, m0, m1, 6, 4);
  snprintf(path, sizeof path, "%s/good.ckpt", t.dir);
  snprintf(bad, sizeof bad, "%s/bad.ckpt", t.dir);
  ck_assert_int_eq(ck_ckpt_write(path, &w, 0, &err), 0);
  orig = read_text(path, &n);
  ck_assert_uint_eq(n, CK_CKPT_HEADER + 3 * 6 * 4 + 8);
  for (i = 0; i < 6; i++) sentinel[i] = 1234.5f;
  memset(&r, 0, sizeof r);
  r.model_hash = w.model_hash;
  r.optim = w.optim;
  r.nmoments = 2;
  r.floats = 6;
  r.params = q;
  r.moments[0] = n0;
  r.moments[1] = n1;
  for (i = 0; i < n; i++) {
    int bit;
    for (bit = 0; bit < 8; bit += 3) {
      orig[i] ^= (char)(1 << bit);
      write_bytes(bad, orig, n);
      orig[i] ^= (char)(1 << bit);
      memcpy(q, sentinel, sizeof q);
      memcpy(n0, sentinel, sizeof q);
      memcpy(n1, sentinel, sizeof q);
      r.step = -7;
      ck_assert_msg(ck_ckpt_read(bad, &r, &err) == 1, "byte %lu bit %d accepted", (unsigned long)i, bit);
      ck_assert_msg(strncmp(err.msg, bad, strlen(bad)) == 0, "message does not name the file: %s", err.msg);
      ck_assert_mem_eq(q, sentinel, sizeof q);
      ck_assert_mem_eq(n0, sentinel, sizeof q);
      ck_assert_mem_eq(n1, sentinel, sizeof q);
      ck_assert_int_eq(r.step, -7);
    }
  }
  for (i = 0; i < n; i++) {
    write_bytes(bad, orig, i);
    memcpy(q, sentinel, sizeof q);
    ck_assert_msg(ck_ckpt_read(bad, &r, &err) == 1, "truncation to %lu accepted", (unsigned long)i);
    ck_assert_msg(strncmp(err.msg, bad, strlen(bad)) == 0 && strstr(err.msg, "truncated"), "%s", err.msg);
    ck_assert_mem_eq(q, sentinel, sizeof q);
  }
  /* an appended byte is refused too */
  orig = realloc(orig, n + 1);
  orig[n] = 0;
  write_bytes(bad, orig, n + 1);
  ck_assert_int_eq(ck_ckpt_read(bad, &r, &err), 1);
  /* the untouched file still reads */
  ck_assert_int_eq(ck_ckpt_read(path, &r, &err), 0);
  free(orig);
  tmp_close(&t);
}
END_TEST

typedef struct Warns {
  int n;
  char last[600];
} Warns;

static void collect_warn(void *ctx, const char *msg) {
  Warns *w = ctx;
  w->n++;
  snprintf(w->last, sizeof w->last, "%s", msg);
}

START_TEST(ckpt_newest_valid) {
  Tmp t;
  CkCkpt w;
  CkIoErr err;
  float p[4], m0[4], m1[4];
  char path[600], found[600];
  int64_t step = -1, s;
  Warns ws = {0, ""};
  size_t n;
  char *b;
  tmp_open(&t);
  for (s = 5; s <= 15; s += 5) {
    ckpt_fill(&w, p, m0, m1, 4, s);
    ck_ckpt_name(path, sizeof path, t.dir, s);
    ck_assert_int_eq(ck_ckpt_write(path, &w, 0, &err), 0);
  }
  write_bytes(tp(&t, "ckpt-00000020.ckpt.tmp"), "half", 4); /* a crashed write */
  write_bytes(tp(&t, "notes.txt"), "x", 1);
  ck_assert_int_eq(ck_ckpt_find_newest(t.dir, &w, found, sizeof found, &step, collect_warn, &ws), 1);
  ck_assert_int_eq(step, 15);
  ck_assert_int_eq(ws.n, 0);
  /* corrupt the newest: the previous is chosen, with a warning naming the file */
  ck_ckpt_name(path, sizeof path, t.dir, 15);
  b = read_text(path, &n);
  b[n / 2] ^= 0x40;
  write_bytes(path, b, n);
  free(b);
  ck_assert_int_eq(ck_ckpt_find_newest(t.dir, &w, found, sizeof found, &step, collect_warn, &ws), 1);
  ck_assert_int_eq(step, 10);
  ck_assert_ptr_nonnull(strstr(found, "ckpt-00000010.ckpt"));
  ck_assert_int_eq(ws.n, 1);
  ck_assert_msg(strstr(ws.last, "ckpt-00000015.ckpt: checksum mismatch") != NULL, "%s", ws.last);
  /* a file whose name and step disagree is skipped */
  ck_ckpt_name(path, sizeof path, t.dir, 10);
  copy_file(path, tp(&t, "ckpt-00000012.ckpt"));
  ws.n = 0;
  ck_assert_int_eq(ck_ckpt_find_newest(t.dir, &w, found, sizeof found, &step, collect_warn, &ws), 1);
  ck_assert_int_eq(step, 10);
  ck_assert_int_eq(ws.n, 2);
  /* none valid */
  ck_assert_int_eq(ck_ckpt_find_newest(tp(&t, "nowhere"), &w, found, sizeof found, &step, collect_warn, &ws), 0);
  tmp_close(&t);
}
END_TEST

/* ---- run directory -------------------------------------------------------------------------- */

START_TEST(run_metrics_truncate) {
  Tmp t;
  CkIoErr err;
  const char *text = "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1.5}\n{\"step\":2,\"eval_loss\":1.7}\n"
                     "{\"step\":3,\"loss\":1}\n{\"step\":4,\"lo";
  char *b;
  FILE *f;
  tmp_open(&t);
  write_bytes(tp(&t, "m.jsonl"), text, strlen(text));
  ck_assert_int_eq(ck_run_metrics_truncate(tp(&t, "m.jsonl"), 2, &err), 0);
  b = read_text(tp(&t, "m.jsonl"), NULL);
  ck_assert_str_eq(b, "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1.5}\n{\"step\":2,\"eval_loss\":1.7}\n");
  free(b);
  f = ck_run_metrics_open(tp(&t, "m.jsonl"), &err);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(ck_run_metrics_append(f, "{\"step\":3,\"loss\":0.5}"), 0);
  fclose(f);
  ck_assert_int_eq(ck_run_metrics_truncate(tp(&t, "m.jsonl"), 3, &err), 0);
  b = read_text(tp(&t, "m.jsonl"), NULL);
  ck_assert_ptr_nonnull(strstr(b, "{\"step\":3,\"loss\":0.5}\n"));
  free(b);
  ck_assert_int_eq(ck_run_metrics_truncate(tp(&t, "m.jsonl"), -1, &err), 0);
  b = read_text(tp(&t, "m.jsonl"), NULL);
  ck_assert_str_eq(b, "");
  free(b);
  ck_assert_int_eq(ck_run_metrics_truncate(tp(&t, "missing.jsonl"), 5, &err), 0);
  tmp_close(&t);
}
END_TEST

/* XML well-formedness, enough for our SVG: balanced, properly nested
 * elements, quoted attributes, no stray '<' or '&' in text. */
static int xml_well_formed(const char *s, char *why, size_t cap) {
  char stack[64][32];
  int depth = 0, roots = 0;
  const char *p = s;
  if (strncmp(p, "<?xml", 5) == 0) {
    p = strstr(p, "?>");
    if (!p) return snprintf(why, cap, "unterminated declaration"), 0;
    p += 2;
  }
  while (*p) {
    if (*p == '&') {
      if (strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) && strncmp(p, "&amp;", 5) && strncmp(p, "&quot;", 6))
        return snprintf(why, cap, "bad entity at %ld", (long)(p - s)), 0;
      p++;
      continue;
    }
    if (*p != '<') {
      if (depth == 0 && *p != '\n' && *p != ' ') return snprintf(why, cap, "text outside the root"), 0;
      p++;
      continue;
    }
    if (p[1] == '/') {
      char name[32];
      size_t n = 0;
      p += 2;
      while (*p && *p != '>' && n < 31) name[n++] = *p++;
      name[n] = '\0';
      if (*p != '>' || depth == 0 || strcmp(stack[depth - 1], name) != 0)
        return snprintf(why, cap, "mismatched </%s>", name), 0;
      depth--;
      p++;
    } else {
      char name[32];
      size_t n = 0;
      int quote = 0;
      p++;
      while (*p && *p != ' ' && *p != '>' && *p != '/' && n < 31) name[n++] = *p++;
      name[n] = '\0';
      if (!n) return snprintf(why, cap, "empty tag name"), 0;
      while (*p && (quote || (*p != '>'))) {
        if (*p == '"') quote = !quote;
        else if (*p == '<' && !quote) return snprintf(why, cap, "'<' inside <%s>", name), 0;
        p++;
      }
      if (!*p) return snprintf(why, cap, "unterminated <%s>", name), 0;
      if (p[-1] != '/') {
        if (depth == 64) return 0;
        if (depth == 0) roots++;
        strcpy(stack[depth++], name);
      } else if (depth == 0) {
        roots++;
      }
      p++;
    }
  }
  if (depth != 0) return snprintf(why, cap, "%d unclosed elements", depth), 0;
  if (roots != 1) return snprintf(why, cap, "%d root elements", roots), 0;
  return 1;
}

START_TEST(run_svg_well_formed) {
  Tmp t;
  CkIoErr err;
  FILE *f;
  char *a, *b, why[128], m2[512];
  int i;
  tmp_open(&t);
  f = fopen(tp(&t, "m.jsonl"), "w");
  for (i = 1; i <= 50; i++) {
    fprintf(f, "{\"step\":%d,\"loss\":%.9g,\"lr\":0.1,\"grad_norm\":1,\"time_s\":0.5}\n", i, 3.0 / (1 + 0.1 * i));
    if (i % 10 == 0) fprintf(f, "{\"step\":%d,\"eval_loss\":%.9g,\"eval_accuracy\":0.5}\n", i, 3.2 / (1 + 0.1 * i));
  }
  fclose(f);
  ck_assert_int_eq(ck_run_write_svg(tp2(&t, m2, sizeof m2, "m.jsonl"), tp(&t, "loss.svg"), "A<B & C", &err), 0);
  a = read_text(tp(&t, "loss.svg"), NULL);
  ck_assert_msg(xml_well_formed(a, why, sizeof why), "loss.svg: %s", why);
  ck_assert_ptr_nonnull(strstr(a, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  ck_assert_ptr_nonnull(strstr(a, "A&lt;B &amp; C"));
  ck_assert_ptr_nonnull(strstr(a, "train loss (50)"));
  ck_assert_ptr_nonnull(strstr(a, "eval loss (5)"));
  ck_assert_ptr_nonnull(strstr(a, ">step</text>"));
  ck_assert_ptr_nonnull(strstr(a, ">50</text>")); /* an x tick at the last step */
  /* deterministic text */
  ck_assert_int_eq(ck_run_write_svg(tp2(&t, m2, sizeof m2, "m.jsonl"), tp(&t, "again.svg"), "A<B & C", &err), 0);
  b = read_text(tp(&t, "again.svg"), NULL);
  ck_assert_str_eq(a, b);
  free(a);
  free(b);
  /* no records: still a valid (empty) plot */
  write_bytes(tp(&t, "empty.jsonl"), "", 0);
  ck_assert_int_eq(ck_run_write_svg(tp2(&t, m2, sizeof m2, "empty.jsonl"), tp(&t, "e.svg"), "t", &err), 0);
  a = read_text(tp(&t, "e.svg"), NULL);
  ck_assert_msg(xml_well_formed(a, why, sizeof why), "e.svg: %s", why);
  free(a);
  tmp_close(&t);
}
END_TEST

/* ---- the fake models are right (finite differences) ---------------------------------------- */

START_TEST(fake_model_gradients) {
  FakeModel f;
  float p[MLP_FLOATS], g[MLP_FLOATS], arena[256], x[MLP_B * MLP_D], l0, lp, lm;
  int32_t y[MLP_B] = {0, 2, 1, 2};
  CkRng r;
  int i;
  fake_mlp_make(&f, CK_DATA_NPY, NULL, NULL, NULL, NULL);
  ck_rng_seed(&r, 3);
  ck_rng_fill_normal(&r, p, MLP_FLOATS, 0, 0.5f);
  ck_rng_fill_normal(&r, x, MLP_B * MLP_D, 0, 1);
  memset(g, 0, sizeof g);
  ck_assert_int_eq(f.t.train_step(p, g, arena, x, y, &l0), 0);
  for (i = 0; i < MLP_FLOATS; i++) {
    float keep = p[i], h = 1e-3f, fd;
    p[i] = keep + h;
    f.t.loss(p, arena, x, y, &lp, NULL);
    p[i] = keep - h;
    f.t.loss(p, arena, x, y, &lm, NULL);
    p[i] = keep;
    fd = (lp - lm) / (2 * h);
    ck_assert_msg(fabsf(fd - g[i]) < 2e-3f + 0.02f * fabsf(fd), "mlp param %d: grad %g, finite difference %g", i,
                  g[i], fd);
  }
  /* accumulation: a second call adds the same gradient */
  {
    float g2[MLP_FLOATS];
    memcpy(g2, g, sizeof g);
    ck_assert_int_eq(f.t.train_step(p, g2, arena, x, y, &l0), 0);
    for (i = 0; i < MLP_FLOATS; i++) ck_assert_float_eq_tol(g2[i], g[i] + g[i], 1e-6f + 1e-5f * fabsf(g[i]));
  }
}
END_TEST

/* ---- training runs (ck_main in-process) ----------------------------------------------------- */

static void lm_setup(Tmp *t, FakeModel *f) {
  static char path[600];
  tmp_open(t);
  snprintf(path, sizeof path, "%s/tokens.u8", t->dir);
  write_tokens(path, 2000, 1, -1, 0);
  fake_lm_make(f, path, 1, 0.25);
}

static void mlp_setup(Tmp *t, FakeModel *f) {
  static char xp[600], yp[600], ex[600], ey[600];
  tmp_open(t);
  snprintf(xp, sizeof xp, "%s/x.idx", t->dir);
  snprintf(yp, sizeof yp, "%s/y.idx", t->dir);
  snprintf(ex, sizeof ex, "%s/ex.idx", t->dir);
  snprintf(ey, sizeof ey, "%s/ey.idx", t->dir);
  write_mlp_idx(xp, yp, 18); /* 4 full batches per epoch, 2 left over */
  write_mlp_idx(ex, ey, 9);
  fake_mlp_make(f, CK_DATA_IDX, xp, yp, ex, ey);
}

static void train_dir(Tmp *t, FakeModel *f, const char *dir, int expect_rc) {
  char d[600];
  const char *args[] = {"train", "--run-dir", d, "--quiet", NULL};
  snprintf(d, sizeof d, "%s/%s", t->dir, dir);
  ck_assert_int_eq(run_main(f, args), expect_rc);
}

static void assert_runs_equal(Tmp *t, const char *a, const char *b, int64_t steps, int64_t every) {
  char pa[700], pb[700];
  char *ma, *mb;
  int64_t s;
  snprintf(pa, sizeof pa, "%s/%s/weights.safetensors", t->dir, a);
  snprintf(pb, sizeof pb, "%s/%s/weights.safetensors", t->dir, b);
  ck_assert_msg(files_equal(pa, pb), "weights of %s and %s differ", a, b);
  snprintf(pa, sizeof pa, "%s/%s/metrics.jsonl", t->dir, a);
  snprintf(pb, sizeof pb, "%s/%s/metrics.jsonl", t->dir, b);
  ma = metrics_sans_timing(pa);
  mb = metrics_sans_timing(pb);
  ck_assert_str_eq(ma, mb);
  free(ma);
  free(mb);
  for (s = every; s <= steps; s += every) {
    snprintf(pa, sizeof pa, "%s/%s/checkpoints/ckpt-%08lld.ckpt", t->dir, a, (long long)s);
    snprintf(pb, sizeof pb, "%s/%s/checkpoints/ckpt-%08lld.ckpt", t->dir, b, (long long)s);
    if (access(pb, F_OK) == 0) ck_assert_msg(files_equal(pa, pb), "checkpoint %lld differs", (long long)s);
  }
}

/* Resumes from each checkpoint of run "a" in a fresh directory holding only
 * that checkpoint and the metrics, and compares with the uninterrupted run. */
static void resume_each(Tmp *t, FakeModel *f, int64_t steps, int64_t every) {
  int64_t s;
  for (s = every; s < steps; s += every) {
    char d[600], from[700], to[700];
    const char *args[] = {"train", "--run-dir", d, "--resume", "--quiet", NULL};
    char name[32];
    snprintf(name, sizeof name, "r%lld", (long long)s);
    snprintf(d, sizeof d, "%s/%s", t->dir, name);
    snprintf(to, sizeof to, "%s/checkpoints", d);
    mkdir(d, 0777);
    mkdir(to, 0777);
    snprintf(from, sizeof from, "%s/a/checkpoints/ckpt-%08lld.ckpt", t->dir, (long long)s);
    snprintf(to, sizeof to, "%s/checkpoints/ckpt-%08lld.ckpt", d, (long long)s);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/a/metrics.jsonl", t->dir);
    snprintf(to, sizeof to, "%s/metrics.jsonl", d);
    copy_file(from, to); /* the whole file: records after the checkpoint must be dropped */
    ck_assert_int_eq(run_main(f, args), 0);
    assert_runs_equal(t, "a", name, steps, every);
  }
}

START_TEST(train_lm_deterministic_and_resumable) {
  Tmp t;
  FakeModel f;
  lm_setup(&t, &f);
  train_dir(&t, &f, "a", 0);
  train_dir(&t, &f, "b", 0);
  assert_runs_equal(&t, "a", "b", 24, 6);
  resume_each(&t, &f, 24, 6);
  /* a different seed gives different weights */
  {
    char d[600], pa[700], pb[700];
    const char *args[] = {"train", "--run-dir", d, "--seed", "5", "--quiet", NULL};
    snprintf(d, sizeof d, "%s/s5", t.dir);
    ck_assert_int_eq(run_main(&f, args), 0);
    snprintf(pa, sizeof pa, "%s/a/weights.safetensors", t.dir);
    snprintf(pb, sizeof pb, "%s/s5/weights.safetensors", t.dir);
    ck_assert(!files_equal(pa, pb));
  }
  tmp_close(&t);
}
END_TEST

START_TEST(train_mlp_deterministic_and_resumable) {
  Tmp t;
  FakeModel f;
  mlp_setup(&t, &f);
  train_dir(&t, &f, "a", 0);
  train_dir(&t, &f, "b", 0);
  assert_runs_equal(&t, "a", "b", 20, 5);
  resume_each(&t, &f, 20, 5);
  tmp_close(&t);
}
END_TEST

START_TEST(train_run_dir_files) {
  Tmp t;
  FakeModel f;
  char p[700], *text, *line, *save = NULL;
  cJSON *j, *it;
  int steps = 0, evals = 0;
  uint64_t dig;
  size_t n;
  lm_setup(&t, &f);
  train_dir(&t, &f, "a", 0);
  snprintf(p, sizeof p, "%s/a/manifest.json", t.dir);
  text = read_text(p, NULL);
  ck_assert_ptr_nonnull(text);
  j = cJSON_Parse(text);
  ck_assert_msg(j != NULL, "manifest.json does not parse");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "FakeLM");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "ckc_version")->valuestring, "0.1.0");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "target")->valuestring, "c99");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "source_digest")->valuestring, "0123456789abcdef");
  ck_assert_int_eq((int)cJSON_GetObjectItem(j, "seed")->valuedouble, 1337);
  it = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
  ck_assert_ptr_nonnull(it);
  free(text);
  snprintf(p, sizeof p, "%s/tokens.u8", t.dir);
  text = read_text(p, &n);
  dig = ck_fnv1a64(CK_FNV_BASIS, text, n);
  free(text);
  {
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)dig);
    ck_assert_str_eq(cJSON_GetObjectItem(it, "fnv1a64")->valuestring, hex);
  }
  cJSON_Delete(j);
  snprintf(p, sizeof p, "%s/a/metrics.jsonl", t.dir);
  text = read_text(p, NULL);
  for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *r = cJSON_Parse(line);
    ck_assert_msg(r != NULL, "metrics line does not parse: %s", line);
    if (cJSON_GetObjectItem(r, "loss")) {
      steps++;
      ck_assert_int_eq((int)cJSON_GetObjectItem(r, "step")->valuedouble, steps);
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "lr"));
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "grad_norm"));
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "tokens_per_s"));
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "time_s"));
    } else {
      evals++;
      ck_assert_int_eq((int)cJSON_GetObjectItem(r, "step")->valuedouble, 8 * evals);
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "eval_loss"));
      ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "eval_accuracy"));
    }
    cJSON_Delete(r);
  }
  free(text);
  ck_assert_int_eq(steps, 24);
  ck_assert_int_eq(evals, 3);
  snprintf(p, sizeof p, "%s/a/loss.svg", t.dir);
  text = read_text(p, NULL);
  {
    char why[128];
    ck_assert_msg(xml_well_formed(text, why, sizeof why), "%s", why);
  }
  ck_assert_ptr_nonnull(strstr(text, "train loss (24)"));
  free(text);
  /* the loss went down: the runtime trains */
  {
    char q[700];
    snprintf(q, sizeof q, "%s/a/metrics.jsonl", t.dir);
    text = read_text(q, NULL);
    ck_assert_ptr_nonnull(text);
    j = cJSON_Parse(strtok_r(text, "\n", &save));
    {
      double first = cJSON_GetObjectItem(j, "loss")->valuedouble, last = 0;
      char *l2;
      cJSON_Delete(j);
      while ((l2 = strtok_r(NULL, "\n", &save)) != NULL) {
        cJSON *r = cJSON_Parse(l2);
        if (cJSON_GetObjectItem(r, "loss")) last = cJSON_GetObjectItem(r, "loss")->valuedouble;
        cJSON_Delete(r);
      }
      ck_assert_msg(last < first - 0.3, "loss %g -> %g", first, last);
    }
    free(text);
  }
  /* a second run into the same directory without --resume is refused */
  train_dir(&t, &f, "a", 1);
  tmp_close(&t);
}
END_TEST

START_TEST(train_nan_stops) {
  Tmp t;
  FakeModel f;
  char d[600], p[700];
  const char *args[] = {"train", "--run-dir", d, "--lr", "1e30", "--checkpoint-every", "1", "--quiet", NULL};
  CkCkpt c;
  int64_t step = -1;
  float *buf[3];
  mlp_setup(&t, &f);
  f.t.clip = 0;
  snprintf(d, sizeof d, "%s/nan", t.dir);
  ck_assert_int_eq(run_main(&f, args), 1);
  snprintf(p, sizeof p, "%s/nan/weights.safetensors", t.dir);
  ck_assert_int_eq(access(p, F_OK), -1);
  /* the checkpoints that exist are all good ones, and the newest is before the NaN */
  memset(&c, 0, sizeof c);
  c.model_hash = ck_ckpt_model_hash(&f.m);
  c.optim = f.t.optim;
  c.nmoments = 1;
  c.floats = MLP_FLOATS;
  snprintf(p, sizeof p, "%s/nan/checkpoints", t.dir);
  {
    char found[700];
    ck_assert_int_eq(ck_ckpt_find_newest(p, &c, found, sizeof found, &step, NULL, NULL), 1);
    ck_assert_int_ge(step, 1);
    buf[0] = malloc(sizeof(float) * MLP_FLOATS);
    buf[1] = malloc(sizeof(float) * MLP_FLOATS);
    c.params = buf[0];
    c.moments[0] = buf[1];
    {
      CkIoErr err;
      int i;
      ck_assert_int_eq(ck_ckpt_read(found, &c, &err), 0);
      for (i = 0; i < MLP_FLOATS; i++) ck_assert(isfinite(buf[0][i]));
    }
    free(buf[0]);
    free(buf[1]);
  }
  {
    char m[700], *text;
    int lines = 0;
    snprintf(m, sizeof m, "%s/nan/metrics.jsonl", t.dir);
    text = read_text(m, NULL);
    for (char *q = text; *q; q++) lines += *q == '\n';
    free(text);
    ck_assert_int_eq(lines, step); /* one record per finished step, none for the NaN step */
  }
  tmp_close(&t);
}
END_TEST

START_TEST(cli_eval_grad_and_usage) {
  Tmp t;
  FakeModel f;
  char w[600], x[600], y[600], g[600];
  mlp_setup(&t, &f);
  snprintf(w, sizeof w, "%s/w.safetensors", t.dir);
  snprintf(x, sizeof x, "%s/x.npy", t.dir);
  snprintf(y, sizeof y, "%s/y.npy", t.dir);
  snprintf(g, sizeof g, "%s/g.safetensors", t.dir);
  {
    const char *a[] = {"init", "--seed", "3", "--out", w, NULL};
    ck_assert_int_eq(run_main(&f, a), 0);
  }
  {
    const char *a[] = {"eval", "--weights", w, NULL};
    ck_assert_int_eq(run_main(&f, a), 0);
  }
  {
    float xs[MLP_B * MLP_D], params[MLP_FLOATS], grads[MLP_FLOATS], want[MLP_FLOATS], arena[256], loss, got;
    int32_t ys[MLP_B] = {1, 0, 2, 1};
    int64_t dx[2] = {MLP_B, MLP_D}, dy[1] = {MLP_B};
    CkIoErr err;
    CkTensorSpec sp[5];
    int i;
    for (i = 0; i < MLP_B * MLP_D; i++) xs[i] = (float)i / 7.0f - 1;
    ck_assert_int_eq(ck_npy_write(x, CK_IO_F32, 2, dx, xs, &err), 0);
    ck_assert_int_eq(ck_npy_write(y, CK_IO_I32, 1, dy, ys, &err), 0);
    {
      const char *a[] = {"grad", "--weights", w, "--x", x, "--y", y, "--out", g, NULL};
      ck_assert_int_eq(run_main(&f, a), 0);
    }
    /* the same step computed directly */
    memset(sp, 0, sizeof sp);
    for (i = 0; i < 4; i++) {
      sp[i].name = f.params[i].name;
      sp[i].dtype = CK_IO_F32;
      sp[i].rank = f.params[i].rank;
      sp[i].dims[0] = f.params[i].dims[0];
      sp[i].dims[1] = f.params[i].dims[1];
      sp[i].data = params + f.params[i].offset;
    }
    ck_assert_int_eq(ck_safetensors_read(w, sp, 4, &err), 0);
    memset(want, 0, sizeof want);
    ck_assert_int_eq(f.t.train_step(params, want, arena, xs, ys, &loss), 0);
    for (i = 0; i < 4; i++) sp[i].data = grads + f.params[i].offset;
    sp[4].name = "loss";
    sp[4].dtype = CK_IO_F32;
    sp[4].rank = 0;
    sp[4].data = &got;
    ck_assert_int_eq(ck_safetensors_read(g, sp, 5, &err), 0);
    ck_assert_mem_eq(grads, want, sizeof want);
    ck_assert_float_eq(got, loss);
  }
  {
    const char *a[] = {"train", "--steps", "abc", NULL};
    ck_assert_int_eq(run_main(&f, a), 2);
  }
  {
    const char *a[] = {"train", "--bogus", NULL};
    ck_assert_int_eq(run_main(&f, a), 2);
  }
  {
    const char *a[] = {"frobnicate", NULL};
    ck_assert_int_eq(run_main(&f, a), 2);
  }
  {
    const char *a[] = {"eval", NULL};
    ck_assert_int_eq(run_main(&f, a), 2);
  }
  {
    const char *a[] = {"train", "--data", "/nonexistent/x.idx,/nonexistent/y.idx", "--quiet", NULL};
    ck_assert_int_eq(run_main(&f, a), 1);
  }
  tmp_close(&t);
}
END_TEST

Suite *check_runtime_suite(void) {
  Suite *s = suite_create("runtime");
  TCase *data = tcase_create("data");
  TCase *ckpt = tcase_create("ckpt");
  TCase *run = tcase_create("run");
  TCase *train = tcase_create("train");
  tcase_add_test(data, data_token_windows);
  tcase_add_test(data, data_token_widths_and_cursor);
  tcase_add_test(data, data_idx_epochs);
  tcase_add_test(data, data_npy_source);
  tcase_add_loop_test(data, data_errors, 0, (int)(sizeof data_err_cases / sizeof data_err_cases[0]));
  tcase_add_test(ckpt, ckpt_roundtrip);
  tcase_set_timeout(ckpt, 60);
  tcase_add_test(ckpt, ckpt_corruption_every_byte);
  tcase_add_test(ckpt, ckpt_newest_valid);
  tcase_add_test(run, run_metrics_truncate);
  tcase_add_test(run, run_svg_well_formed);
  tcase_set_timeout(train, 120);
  tcase_add_test(train, fake_model_gradients);
  tcase_add_test(train, train_lm_deterministic_and_resumable);
  tcase_add_test(train, train_mlp_deterministic_and_resumable);
  tcase_add_test(train, train_run_dir_files);
  tcase_add_test(train, train_nan_stops);
  tcase_add_test(train, cli_eval_grad_and_usage);
  suite_add_tcase(s, data);
  suite_add_tcase(s, ckpt);
  suite_add_tcase(s, run);
  suite_add_tcase(s, train);
  return s;
}
