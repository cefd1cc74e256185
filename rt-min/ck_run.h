/* rt-min/ck_run.h - the run directory of a training run and its live
 * progress line.
 *
 *   DIR/manifest.json        what produced the run (written by ck_main)
 *   DIR/metrics.jsonl        one JSON object per line, flushed per record
 *   DIR/checkpoints/         ckpt-<step>.ckpt (ck_ckpt.h)
 *   DIR/weights.safetensors  the final weights
 *   DIR/loss.svg             train and eval loss against the step
 *
 * The helpers here know nothing of models: ck_main formats the records. */
#ifndef CK_RUN_H
#define CK_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "ck_io.h"

/* mkdir -p DIR and DIR/checkpoints. */
int ck_run_mkdirs(const char *dir, CkIoErr *err);

/* Writes s as a JSON string literal (quotes, escapes) to f. */
void ck_json_string(FILE *f, const char *s);

/* Writes text to path atomically (path.tmp + fsync + rename). */
int ck_run_write_file(const char *path, const char *text, size_t len, CkIoErr *err);

/* metrics.jsonl: keep only the complete records whose "step" is <= max_step
 * (max_step < 0 keeps nothing), so a resumed run continues the file exactly
 * where its checkpoint was taken. A missing file is an empty one. */
int ck_run_metrics_truncate(const char *path, int64_t max_step, CkIoErr *err);
/* Opens metrics.jsonl for appending. */
FILE *ck_run_metrics_open(const char *path, CkIoErr *err);
/* Appends one record line (a JSON object without the newline) and flushes. */
int ck_run_metrics_append(FILE *f, const char *record);

/* Draws loss.svg from metrics.jsonl: "loss" (train) and "eval_loss" points
 * against "step", axes with ticks and labels, a legend and the title. The
 * text depends only on the records (deterministic). */
int ck_run_write_svg(const char *metrics_path, const char *svg_path, const char *title, CkIoErr *err);

/* Live progress: on a terminal one line rewritten with '\r' every step;
 * otherwise a plain line every `every` steps (and at the last step). */
typedef struct CkProgress {
  FILE *f;
  int tty;
  int64_t every;
  int dirty;       /* a '\r' line is showing */
} CkProgress;

void ck_progress_init(CkProgress *p, FILE *f, int64_t every);
void ck_progress_step(CkProgress *p, int64_t step, int64_t steps, double loss, double lr, double gnorm,
                      double rate, const char *unit, double eta_s);
/* Ends a live line (newline) before other output. */
void ck_progress_break(CkProgress *p);

#endif
