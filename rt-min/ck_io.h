/* rt-min/ck_io.h - files in the ecosystem's formats, for hosted targets:
 * .npy tensors and .safetensors weights. Every failure is reported as one line
 * naming the file and what is wrong ("w.safetensors: tensor 'fc1.weight':
 * shape [256,784] expected, file has [784,256]") and returned as an error
 * code; nothing here exits, crashes or reads past a buffer on bad input. */
#ifndef CK_IO_H
#define CK_IO_H

#include <stddef.h>
#include <stdint.h>

enum { CK_IO_OK = 0, CK_IO_ERR = 1 };

typedef enum CkIoDType { CK_IO_F32, CK_IO_F64, CK_IO_I32, CK_IO_U8, CK_IO_BOOL } CkIoDType;

typedef struct CkIoErr {
  char msg[512]; /* "path: what is wrong" */
} CkIoErr;

/* ---- .npy (format 1.0/2.0/3.0 read, 1.0 write; little-endian, C order) ---- */

/* Reads path into caller memory `data` of exactly `count` elements of `dtype`
 * with shape (rank, dims); any mismatch (magic, version, dtype, fortran order,
 * shape, truncated data, trailing bytes) is an error. */
int ck_npy_read(const char *path, CkIoDType dtype, int rank, const int64_t *dims, void *data,
                CkIoErr *err);
int ck_npy_write(const char *path, CkIoDType dtype, int rank, const int64_t *dims, const void *data,
                 CkIoErr *err);

/* ---- .safetensors ------------------------------------------------------------------------ */

typedef struct CkTensorSpec {
  const char *name;     /* dotted parameter name */
  CkIoDType dtype;
  int rank;
  int64_t dims[8];
  void *data;           /* caller memory (read: destination; write: source) */
} CkTensorSpec;

/* Reads every spec'd tensor by name; errors on a missing tensor, a dtype or
 * shape mismatch, bad offsets, a malformed header, a truncated file. Extra
 * tensors in the file are an error too (a mismatched model). */
int ck_safetensors_read(const char *path, CkTensorSpec *specs, int n, CkIoErr *err);
/* Writes the tensors in the given order; header keys in the same order; no
 * metadata but {"format":"pt"}. Written to path.tmp then renamed. */
int ck_safetensors_write(const char *path, const CkTensorSpec *specs, int n, CkIoErr *err);

#endif
