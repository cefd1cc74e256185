/* rt-min/ck_data.h - training and evaluation data for hosted programs.
 *
 * Three sources, described by a CkDataDesc (ck_model.h):
 *   tokens  a raw file of token ids (u8, little-endian u16, or little-endian
 *           i32); the last val_fraction of the tokens is the validation split.
 *           Training batches are B windows of seq+1 tokens at seeded random
 *           offsets in the train split (x = window[0..seq), y = window[1..]).
 *   IDX     uncompressed IDX files (MNIST / Fashion-MNIST): images and labels;
 *           the last val_fraction of the samples is the validation split.
 *   npy     two .npy arrays x [N, ...] and y [N, ...] (val split likewise).
 * Sample sources (IDX, npy) are visited in a seeded shuffle per epoch; the
 * trailing partial batch of an epoch is skipped.
 *
 * Everything is validated when the source is opened (sizes, shapes, token ids
 * against the vocabulary, labels against the class count), so producing a
 * batch never fails. Evaluation visits the validation split (or a whole eval
 * file) in order, in full batches.
 *
 * Randomness: one ck_rng stream per purpose, derived from the run's seed:
 * "data" for token windows, "data:epoch:<e>" for the shuffle of epoch e. The
 * cursor (CkDataCursor) is the complete position of the stream, saved in
 * checkpoints, so a resumed run draws the same batches. */
#ifndef CK_DATA_H
#define CK_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ck_io.h"
#include "ck_model.h"
#include "ck_rng.h"

/* FNV-1a 64 over n bytes, continuing from h (start with CK_FNV_BASIS). */
#define CK_FNV_BASIS 0xcbf29ce484222325ull
uint64_t ck_fnv1a64(uint64_t h, const void *data, size_t n);

enum { CK_DATA_ROLE_TRAIN, CK_DATA_ROLE_EVAL };

/* The position of a data stream: token windows use rng; sample sources use
 * (epoch, pos); batches counts the batches drawn so far. */
typedef struct CkDataCursor {
  uint64_t rng[4];
  int64_t epoch, pos, batches;
} CkDataCursor;

typedef struct CkDataFile {
  char path[400];
  uint64_t digest;  /* FNV-1a 64 of the file's bytes */
  int64_t bytes;
} CkDataFile;

typedef struct CkData {
  int kind;                  /* CK_DATA_* */
  int role;                  /* CK_DATA_ROLE_* */
  CkTensorDesc x, y;
  int64_t batch, seq, vocab;
  int nfiles;
  CkDataFile files[2];
  /* tokens: the file's bytes as read (tok_width bytes per id, little-endian,
   * every id checked at open), decoded per window: a u16 file costs its own
   * size in memory, not twice that as i32 */
  unsigned char *tok;
  int tok_width;
  int64_t ntok;
  /* samples (IDX, npy): x and y of every sample, converted to the model's dtypes */
  unsigned char *xs, *ys;
  size_t x_item, y_item;     /* bytes per sample */
  int64_t nsamples;
  int64_t *perm;             /* this epoch's order of the training samples */
  /* splits: [train_begin, train_end) and [eval_begin, eval_end), in tokens or samples */
  int64_t train_begin, train_end, eval_begin, eval_end;
  uint64_t seed;
  CkRng rng;
  int64_t epoch, pos, batches;
  int borrowed;              /* a view (ck_data_view): the buffers belong to another CkData */
} CkData;

/* Opens a source. path_override (may be NULL) replaces the descriptor's
 * paths: one path for tokens, "X,Y" for IDX and npy. ROLE_TRAIN splits off
 * the validation part; ROLE_EVAL makes the whole source the eval set. Every
 * problem is one line "path: what is wrong" in err. */
int ck_data_open(CkData *d, const CkDataDesc *desc, const char *path_override, int role,
                 uint64_t seed, CkIoErr *err);
void ck_data_free(CkData *d);

/* A second handle on an open source that shares its buffers (no copy): the
 * eval side of a train source's validation split. view must not outlive src
 * and only serves ck_data_eval_batch / ck_data_eval_batches;
 * ck_data_free(view) frees nothing of src's. */
void ck_data_view(CkData *view, const CkData *src);

/* Token ids [o, o + n) of a token source, decoded to i32 (the caller keeps
 * within [0, ntok)). */
void ck_data_tokens(const CkData *d, int64_t o, int64_t n, int32_t *out);

/* The next training batch into x (x.numel elements) and y (y.numel). */
void ck_data_next(CkData *d, void *x, void *y);
/* Full eval batches available, and the i-th one (0-based, in file order). */
int64_t ck_data_eval_batches(const CkData *d);
void ck_data_eval_batch(const CkData *d, int64_t i, void *x, void *y);

void ck_data_get_cursor(const CkData *d, CkDataCursor *c);
/* Restores a cursor; an impossible one (pos outside the split) is an error
 * and leaves d unchanged. */
int ck_data_set_cursor(CkData *d, const CkDataCursor *c, CkIoErr *err);

/* Element size of a dtype in bytes. */
size_t ck_data_elsize(CkIoDType t);

#endif
