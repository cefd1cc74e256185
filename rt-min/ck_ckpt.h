/* rt-min/ck_ckpt.h - training checkpoints: the complete state of a run
 * (weights, optimizer moments, step, data cursor with its RNG state), in one
 * checksummed little-endian file. Layout (docs/train.md has it byte by byte):
 *
 *   0   8  magic "CKCKPT\032\n"
 *   8   4  u32 version (1)
 *   12  4  u32 header bytes (120: where the payload starts)
 *   16  8  i64 step                      72  8  i64 data epoch
 *   24  8  u64 seed                      80  8  i64 data position
 *   32  8  u64 model fingerprint         88  8  i64 data batches drawn
 *   40 32  u64[4] data RNG state         96  4  i32 optimizer (CK_OPTIM_*)
 *                                       100  4  i32 moment buffers (0, 1, 2)
 *                                       104  8  i64 floats per buffer
 *                                       112  8  i64 payload bytes
 *   120    params, then each moment buffer: f32 little-endian
 *   end-8  u64 FNV-1a 64 of every byte before it
 *
 * Writing streams the caller's buffers to PATH.tmp (never a copy of the
 * file in memory), then fsync, rename, fsync of the directory: a crash
 * leaves either the old state or the new one, never a half file under a
 * checkpoint name. Reading validates the whole file (size, magic, version,
 * checksum, model fingerprint, optimizer, sizes) in one streaming pass before
 * it reads anything into the caller's buffers. */
#ifndef CK_CKPT_H
#define CK_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "ck_data.h"
#include "ck_io.h"

#define CK_CKPT_VERSION 1u
#define CK_CKPT_HEADER 120

typedef struct CkCkpt {
  int64_t step;
  uint64_t seed;
  uint64_t model_hash;       /* ck_ckpt_model_hash of the model that wrote it */
  CkDataCursor cursor;
  int32_t optim;             /* CK_OPTIM_* */
  int32_t nmoments;          /* 0 (plain SGD), 1 (SGD momentum), 2 (Adam/AdamW) */
  int64_t floats;            /* floats in params and in each moment buffer */
  float *params;
  float *moments[2];
} CkCkpt;

/* A fingerprint of a model's parameter table (names, shapes, offsets) so a
 * checkpoint of another model is refused rather than misread. */
uint64_t ck_ckpt_model_hash(const CkModelDesc *m);

/* crash_half != 0 is the test hook behind CK_TEST_CRASH_IN_CHECKPOINT: the
 * writer stops the process with SIGKILL after half the temp file. */
int ck_ckpt_write(const char *path, const CkCkpt *c, int crash_half, CkIoErr *err);

/* Reads path. `c` carries the expectations (model_hash, optim, nmoments,
 * floats) and the destination buffers; on success step, seed and cursor are
 * filled and the buffers overwritten. On any problem nothing is written. */
int ck_ckpt_read(const char *path, CkCkpt *c, CkIoErr *err);

/* The newest valid checkpoint "ckpt-<step>.ckpt" in dir (by step): files
 * that fail validation are skipped, each reported through warn(ctx, msg).
 * Returns 1 and fills path (cap bytes) and *step when one is found, 0 when
 * none is. `expect` as for ck_ckpt_read (its buffers are not touched). */
typedef void (*CkCkptWarnFn)(void *ctx, const char *msg);
int ck_ckpt_find_newest(const char *dir, const CkCkpt *expect, char *path, size_t cap, int64_t *step,
                        CkCkptWarnFn warn, void *ctx);

/* "DIR/ckpt-00000200.ckpt" */
void ck_ckpt_name(char *out, size_t cap, const char *dir, int64_t step);

#endif
