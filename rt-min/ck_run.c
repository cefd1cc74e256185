/* rt-min/ck_run.c - run directory files and the progress line (ck_run.h). */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#include "ck_run.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* "path: what" into err (truncated to fit); always returns CK_IO_ERR. */
static int run_fail(CkIoErr *err, const char *path, const char *what) {
  size_t cap = sizeof err->msg, n = strlen(path), w = strlen(what);
  if (n > cap / 2) n = cap / 2;
  memcpy(err->msg, path, n);
  memcpy(err->msg + n, ": ", 2);
  n += 2;
  if (w > cap - 1 - n) w = cap - 1 - n;
  memcpy(err->msg + n, what, w);
  err->msg[n + w] = '\0';
  return CK_IO_ERR;
}

/* mkdir -p: every prefix ending at a '/' , then the whole path. */
static int mkdir_p(const char *dir, CkIoErr *err) {
  char p[1024];
  size_t i, n = strlen(dir);
  if (n == 0 || n >= sizeof p) return run_fail(err, dir, "bad directory name");
  memcpy(p, dir, n + 1);
  for (i = 1; i <= n; i++) {
    if (p[i] == '/' || p[i] == '\0') {
      char c = p[i];
      p[i] = '\0';
      if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot create directory: %s", strerror(errno));
        return run_fail(err, p, msg);
      }
      p[i] = c;
    }
  }
  return CK_IO_OK;
}

int ck_run_mkdirs(const char *dir, CkIoErr *err) {
  char sub[1100];
  err->msg[0] = '\0';
  if (mkdir_p(dir, err)) return CK_IO_ERR;
  snprintf(sub, sizeof sub, "%s/checkpoints", dir);
  return mkdir_p(sub, err);
}

void ck_json_string(FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  fputc('"', f);
  for (; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", f);
    else if (*p == '\t') fputs("\\t", f);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

int ck_run_write_file(const char *path, const char *text, size_t len, CkIoErr *err) {
  char tmp[1100];
  FILE *f;
  int e = 0;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  f = fopen(tmp, "wb");
  if (!f) return run_fail(err, tmp, strerror(errno));
  if (len && fwrite(text, 1, len, f) != len) e = errno ? errno : EIO;
  if (!e && fflush(f) != 0) e = errno ? errno : EIO;
  if (!e && fsync(fileno(f)) != 0) e = errno ? errno : EIO;
  if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
  if (!e && rename(tmp, path) != 0) e = errno ? errno : EIO;
  if (e) {
    remove(tmp);
    return run_fail(err, path, strerror(e));
  }
  return CK_IO_OK;
}

/* Reads a whole text file (NUL-terminated); a missing file gives "". */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *b;
  long sz;
  *len = 0;
  if (!f) {
    b = malloc(1);
    if (b) b[0] = '\0';
    return b;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return NULL;
  }
  b = malloc((size_t)sz + 1);
  if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) {
    b[sz] = '\0';
    *len = (size_t)sz;
  }
  return b;
}

/* The number after "key": in a record line [s, e), or 0 when absent. */
static int field(const char *s, const char *e, const char *key, double *v) {
  char pat[64];
  size_t pl;
  const char *p;
  snprintf(pat, sizeof pat, "\"%s\":", key);
  pl = strlen(pat);
  for (p = s; p + pl <= e; p++)
    if (memcmp(p, pat, pl) == 0) {
      char *end;
      *v = strtod(p + pl, &end);
      return end != p + pl;
    }
  return 0;
}

int ck_run_metrics_truncate(const char *path, int64_t max_step, CkIoErr *err) {
  size_t len, o = 0;
  char *b = slurp(path, &len), *out;
  const char *p;
  if (!b) return run_fail(err, path, "cannot read");
  out = malloc(len + 1);
  if (!out) {
    free(b);
    return run_fail(err, path, "out of memory");
  }
  for (p = b; *p;) {
    const char *nl = strchr(p, '\n');
    double step;
    if (!nl) break; /* an incomplete last record (killed mid-write) */
    if (field(p, nl, "step", &step) && step <= (double)max_step && p[0] == '{') {
      memcpy(out + o, p, (size_t)(nl - p + 1));
      o += (size_t)(nl - p + 1);
    }
    p = nl + 1;
  }
  free(b);
  if (ck_run_write_file(path, out, o, err)) {
    free(out);
    return CK_IO_ERR;
  }
  free(out);
  return CK_IO_OK;
}

FILE *ck_run_metrics_open(const char *path, CkIoErr *err) {
  FILE *f = fopen(path, "ab");
  if (!f) run_fail(err, path, strerror(errno));
  return f;
}

int ck_run_metrics_append(FILE *f, const char *record) {
  if (fputs(record, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0) return CK_IO_ERR;
  return CK_IO_OK;
}

/* ---- loss.svg ------------------------------------------------------------------------------ */

typedef struct SvgSeries {
  double *x, *y;
  size_t n, cap;
} SvgSeries;

static int series_add(SvgSeries *s, double x, double y) {
  if (s->n == s->cap) {
    size_t nc = s->cap ? 2 * s->cap : 256;
    double *nx = realloc(s->x, nc * sizeof *nx), *ny;
    if (!nx) return -1;
    s->x = nx;
    ny = realloc(s->y, nc * sizeof *ny);
    if (!ny) return -1;
    s->y = ny;
    s->cap = nc;
  }
  s->x[s->n] = x;
  s->y[s->n] = y;
  s->n++;
  return 0;
}

/* A "nice" tick spacing (1, 2 or 5 times a power of ten) for ~5 ticks. */
static double nice_step(double range) {
  double raw = range / 5, mag, f;
  if (!(raw > 0)) return 1;
  mag = pow(10, floor(log10(raw)));
  f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void svg_text_escaped(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '&') fputs("&amp;", f);
    else fputc(*s, f);
  }
}

/* Tick label: %g with -0 and tiny rounding noise cleaned up. */
static void tick_label(char *out, size_t cap, double v, double step) {
  if (fabs(v) < step * 1e-9) v = 0;
  snprintf(out, cap, "%.6g", v);
}

#define SVG_W 720
#define SVG_H 440
#define SVG_L 80
#define SVG_R 24
#define SVG_T 44
#define SVG_B 56

static void svg_polyline(FILE *f, const SvgSeries *s, double x0, double x1, double y0, double y1,
                         const char *color) {
  size_t i;
  double pw = SVG_W - SVG_L - SVG_R, ph = SVG_H - SVG_T - SVG_B;
  if (!s->n) return;
  fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
  for (i = 0; i < s->n; i++) {
    double px = SVG_L + (s->x[i] - x0) / (x1 - x0) * pw;
    double py = SVG_T + ph - (s->y[i] - y0) / (y1 - y0) * ph;
    fprintf(f, "%s%.2f,%.2f", i ? " " : "", px, py);
  }
  fputs("\"/>\n", f);
  if (s->n < 40)
    for (i = 0; i < s->n; i++) {
      double px = SVG_L + (s->x[i] - x0) / (x1 - x0) * pw;
      double py = SVG_T + ph - (s->y[i] - y0) / (y1 - y0) * ph;
      fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n", px, py, color);
    }
}

int ck_run_write_svg(const char *metrics_path, const char *svg_path, const char *title, CkIoErr *err) {
  size_t len;
  char *b = slurp(metrics_path, &len), tmp[1100], lab[64];
  const char *p;
  SvgSeries tr = {0, 0, 0, 0}, ev = {0, 0, 0, 0};
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1, xs, ys, v;
  int have = 0, e = 0;
  FILE *f;
  double pw = SVG_W - SVG_L - SVG_R, ph = SVG_H - SVG_T - SVG_B;
  if (!b) return run_fail(err, metrics_path, "cannot read");
  for (p = b; *p;) {
    const char *nl = strchr(p, '\n');
    double step, loss;
    if (!nl) nl = p + strlen(p);
    if (field(p, nl, "step", &step)) {
      if (field(p, nl, "loss", &loss) && isfinite(loss)) e |= series_add(&tr, step, loss);
      if (field(p, nl, "eval_loss", &loss) && isfinite(loss)) e |= series_add(&ev, step, loss);
    }
    p = *nl ? nl + 1 : nl;
  }
  free(b);
  {
    size_t i;
    for (i = 0; i < tr.n + ev.n; i++) {
      double sx = i < tr.n ? tr.x[i] : ev.x[i - tr.n], sy = i < tr.n ? tr.y[i] : ev.y[i - tr.n];
      if (!have) {
        x0 = x1 = sx;
        y0 = y1 = sy;
        have = 1;
      }
      if (sx < x0) x0 = sx;
      if (sx > x1) x1 = sx;
      if (sy < y0) y0 = sy;
      if (sy > y1) y1 = sy;
    }
  }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  xs = nice_step(x1 - x0);
  ys = nice_step(y1 - y0);
  x0 = floor(x0 / xs) * xs;
  x1 = ceil(x1 / xs) * xs;
  y0 = floor(y0 / ys) * ys;
  y1 = ceil(y1 / ys) * ys;
  snprintf(tmp, sizeof tmp, "%s.tmp", svg_path);
  f = fopen(tmp, "wb");
  if (!f) {
    free(tr.x), free(tr.y), free(ev.x), free(ev.y);
    return run_fail(err, tmp, strerror(errno));
  }
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
             "font-family=\"sans-serif\" font-size=\"12\">\n", SVG_W, SVG_H, SVG_W, SVG_H);
  fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SVG_W, SVG_H);
  fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", SVG_W / 2);
  svg_text_escaped(f, title);
  fputs("</text>\n", f);
  /* grid and ticks */
  for (v = x0; v <= x1 + xs * 1e-9; v += xs) {
    double px = SVG_L + (v - x0) / (x1 - x0) * pw;
    tick_label(lab, sizeof lab, v, xs);
    fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#e0e0e0\"/>\n", px, SVG_T, px,
            SVG_H - SVG_B);
    fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"black\"/>\n", px, SVG_H - SVG_B, px,
            SVG_H - SVG_B + 5);
    fprintf(f, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", px, SVG_H - SVG_B + 19, lab);
  }
  for (v = y0; v <= y1 + ys * 1e-9; v += ys) {
    double py = SVG_T + ph - (v - y0) / (y1 - y0) * ph;
    tick_label(lab, sizeof lab, v, ys);
    fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e0e0e0\"/>\n", SVG_L, py,
            SVG_W - SVG_R, py);
    fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"black\"/>\n", SVG_L - 5, py, SVG_L, py);
    fprintf(f, "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", SVG_L - 8, py + 4, lab);
  }
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", SVG_L, SVG_H - SVG_B,
          SVG_W - SVG_R, SVG_H - SVG_B);
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", SVG_L, SVG_T, SVG_L,
          SVG_H - SVG_B);
  fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">step</text>\n", SVG_L + pw / 2, SVG_H - 12);
  fprintf(f, "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)\">loss</text>\n",
          SVG_T + ph / 2, SVG_T + ph / 2);
  svg_polyline(f, &tr, x0, x1, y0, y1, "#1f77b4");
  svg_polyline(f, &ev, x0, x1, y0, y1, "#ff7f0e");
  /* legend */
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n",
          SVG_W - SVG_R - 150, SVG_T + 12, SVG_W - SVG_R - 126, SVG_T + 12);
  fprintf(f, "<text x=\"%d\" y=\"%d\">train loss (%lu)</text>\n", SVG_W - SVG_R - 120, SVG_T + 16,
          (unsigned long)tr.n);
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ff7f0e\" stroke-width=\"2\"/>\n",
          SVG_W - SVG_R - 150, SVG_T + 30, SVG_W - SVG_R - 126, SVG_T + 30);
  fprintf(f, "<text x=\"%d\" y=\"%d\">eval loss (%lu)</text>\n", SVG_W - SVG_R - 120, SVG_T + 34,
          (unsigned long)ev.n);
  fputs("</svg>\n", f);
  free(tr.x), free(tr.y), free(ev.x), free(ev.y);
  if (e) {
    fclose(f);
    remove(tmp);
    return run_fail(err, svg_path, "out of memory");
  }
  if (fflush(f) != 0 || ferror(f)) e = 1;
  if (fclose(f) != 0) e = 1;
  if (e || rename(tmp, svg_path) != 0) {
    remove(tmp);
    return run_fail(err, svg_path, "write failed");
  }
  return CK_IO_OK;
}

/* ---- progress ------------------------------------------------------------------------------ */

void ck_progress_init(CkProgress *p, FILE *f, int64_t every) {
  p->f = f;
  p->tty = f ? isatty(fileno(f)) : 0;
  p->every = every > 0 ? every : 1;
  p->dirty = 0;
}

/* "1:02:03" or "2:03" */
static void fmt_eta(char *out, size_t cap, double s) {
  long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
  if (t >= 3600) snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

void ck_progress_step(CkProgress *p, int64_t step, int64_t steps, double loss, double lr, double gnorm,
                      double rate, const char *unit, double eta_s) {
  char eta[32];
  if (!p->f) return;
  if (!p->tty && step % p->every != 0 && step != steps) return;
  fmt_eta(eta, sizeof eta, eta_s);
  fprintf(p->f, "%sstep %lld/%lld  loss %.6f  lr %.3e  grad norm %.4f  %.0f %s/s  ETA %s%s",
          p->tty ? "\r" : "", (long long)step, (long long)steps, loss, lr, gnorm, rate, unit, eta,
          p->tty ? "\033[K" : "\n");
  p->dirty = p->tty;
  fflush(p->f);
}

void ck_progress_break(CkProgress *p) {
  if (p->f && p->dirty) {
    fputc('\n', p->f);
    fflush(p->f);
  }
  p->dirty = 0;
}
