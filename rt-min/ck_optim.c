/* rt-min/ck_optim.c - losses, optimizer updates and learning-rate schedules (C99).
 *
 * PyTorch semantics, deterministic order, freestanding friendly (only
 * <math.h>, <stdint.h>, <stddef.h>; no stdio, no allocation). */
#include "ck_optim.h"

#include <math.h>

/* ---- losses ------------------------------------------------------------------------- */

/* A target is usable when it is ignore_index (skipped) or a class in [0, V).
 * Checked for every row before anything is read through it. */
static int64_t ck_first_bad_target(const int32_t *targets, int64_t rows, int64_t V,
                                   int32_t ignore_index) {
  int64_t r;
  for (r = 0; r < rows; r++) {
    int32_t t = targets[r];
    if (t != ignore_index && (t < 0 || (int64_t)t >= V)) return r;
  }
  return -1;
}

/* Stable log-sum-exp of one row: the max is subtracted before expf, so no
 * term overflows and the largest one is exactly 1. */
static float ck_row_lse(const float *x, int64_t V) {
  float m = -INFINITY, s = 0.0f;
  int64_t j;
  for (j = 0; j < V; j++)
    if (x[j] > m) m = x[j];
  for (j = 0; j < V; j++) s += expf(x[j] - m);
  return m + logf(s);
}

/* Cross entropy with label smoothing as PyTorch composes it: (1-e) nll +
 * e/V * (-sum log p), both averaged over the non-ignored rows. */
int64_t ck_cross_entropy_f32(float *loss, const float *logits, const int32_t *targets,
                             int64_t rows, int64_t V, int32_t ignore_index, float label_smoothing) {
  int64_t r, j, count = 0, bad = ck_first_bad_target(targets, rows, V, ignore_index);
  double nll = 0.0, smooth = 0.0, e = (double)label_smoothing;
  if (bad >= 0) return bad;
  for (r = 0; r < rows; r++) {
    const float *x = logits + r * V;
    float lse, s = 0.0f;
    if (targets[r] == ignore_index) continue;
    count++;
    lse = ck_row_lse(x, V);
    nll += (double)(lse - x[targets[r]]);
    if (label_smoothing != 0.0f) {
      for (j = 0; j < V; j++) s += lse - x[j];
      smooth += (double)s;
    }
  }
  if (count == 0) {
    *loss = NAN; /* mean over no rows: PyTorch's 0/0 */
    return -1;
  }
  *loss = (float)(((1.0 - e) * nll + e / (double)V * smooth) / (double)count);
  return -1;
}

/* d loss / d x_j = (p_j - (1-e)[j == t] - e/V) / count per counted row. */
int64_t ck_cross_entropy_backward_f32(float *dlogits, const float *dloss, const float *logits,
                                      const int32_t *targets, int64_t rows, int64_t V,
                                      int32_t ignore_index, float label_smoothing) {
  int64_t r, j, count = 0, bad = ck_first_bad_target(targets, rows, V, ignore_index);
  float c, on, off;
  if (bad >= 0) return bad;
  for (r = 0; r < rows; r++)
    if (targets[r] != ignore_index) count++;
  if (count == 0) return -1;
  c = *dloss / (float)count;
  on = (float)(1.0 - (double)label_smoothing);
  off = (float)((double)label_smoothing / (double)V);
  for (r = 0; r < rows; r++) {
    const float *x = logits + r * V;
    float *dx = dlogits + r * V;
    float lse;
    if (targets[r] == ignore_index) continue;
    lse = ck_row_lse(x, V);
    for (j = 0; j < V; j++) {
      float g = expf(x[j] - lse) - off;
      if (j == targets[r]) g -= on;
      dx[j] += c * g;
    }
  }
  return -1;
}

/* Mean squared error; the sum runs in double in index order. */
void ck_mse_f32(float *loss, const float *pred, const float *target, int64_t n) {
  double s = 0.0;
  int64_t i;
  for (i = 0; i < n; i++) {
    float d = pred[i] - target[i];
    s += (double)(d * d);
  }
  *loss = (float)(s / (double)n);
}

/* PyTorch's mse backward: (2 / n * dloss) * (pred - target). */
void ck_mse_backward_f32(float *dpred, float *dtarget, const float *dloss, const float *pred,
                         const float *target, int64_t n) {
  float k = (float)(2.0 / (double)n) * *dloss;
  int64_t i;
  for (i = 0; i < n; i++) {
    float g = k * (pred[i] - target[i]);
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}

/* max(x,0) - x y + log1p(exp(-|x|)) never exponentiates a positive number,
 * so large |x| neither overflows nor loses the log term. */
void ck_bce_with_logits_f32(float *loss, const float *x, const float *y, int64_t n) {
  double s = 0.0;
  int64_t i;
  for (i = 0; i < n; i++) {
    float xi = x[i];
    float l = (xi > 0.0f ? xi : 0.0f) - xi * y[i] + log1pf(expf(-fabsf(xi)));
    s += (double)l;
  }
  *loss = (float)(s / (double)n);
}

/* d/dx = sigmoid(x) - y, d/dy = -x, both scaled by dloss / n. */
void ck_bce_with_logits_backward_f32(float *dx, float *dy, const float *dloss, const float *x,
                                     const float *y, int64_t n) {
  float k = *dloss / (float)n;
  int64_t i;
  for (i = 0; i < n; i++) {
    if (dx) dx[i] += k * (1.0f / (1.0f + expf(-x[i])) - y[i]);
    if (dy) dy[i] += -k * x[i];
  }
}

/* ---- optimizers ---------------------------------------------------------------------- */

/* torch.optim.SGD's _single_tensor_sgd, element by element. */
void ck_sgd_update_f32(float *p, const float *g, float *buf, int64_t n, double lr, double momentum,
                       double dampening, double weight_decay, int nesterov, int first_step) {
  float wd = (float)weight_decay, mom = (float)momentum, damp = (float)(1.0 - dampening);
  float neg_lr = (float)(-lr);
  int64_t i;
  for (i = 0; i < n; i++) {
    float d = g[i];
    if (weight_decay != 0.0) d = d + wd * p[i];
    if (momentum != 0.0) {
      buf[i] = first_step ? d : buf[i] * mom + damp * d;
      d = nesterov ? d + mom * buf[i] : buf[i];
    }
    p[i] = p[i] + neg_lr * d;
  }
}

/* torch.optim.Adam / AdamW (_single_tensor_adam(w), not capturable): bias
 * corrections in double from the Python formulae, per-element work in float
 * in the order of mul_/add_/addcmul_/sqrt/div/add_/addcdiv_. */
void ck_adam_update_f32(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                        double beta1, double beta2, double eps, double weight_decay, int64_t t,
                        int decoupled) {
  double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
  float b1 = (float)beta1, omb1 = (float)(1.0 - beta1);
  float b2 = (float)beta2, omb2 = (float)(1.0 - beta2);
  float neg_step = (float)(-(lr / bc1)), bc2s = (float)sqrt(bc2), epsf = (float)eps;
  float wd = (float)weight_decay, shrink = (float)(1.0 - lr * weight_decay);
  int64_t i;
  for (i = 0; i < n; i++) {
    float gi = g[i], denom;
    if (decoupled)
      p[i] = p[i] * shrink;
    else if (weight_decay != 0.0)
      gi = gi + wd * p[i];
    m[i] = m[i] * b1 + omb1 * gi;
    v[i] = v[i] * b2 + omb2 * gi * gi;
    denom = sqrtf(v[i]) / bc2s + epsf;
    p[i] = p[i] + neg_step * m[i] / denom;
  }
}

/* ---- gradient clipping ---------------------------------------------------------------- */

/* Double accumulation: a million float squares summed in float would lose
 * about 3 digits; in double the order-dependence is far below float. */
double ck_grad_sq_norm_f32(const float *g, int64_t n) {
  double s = 0.0;
  int64_t i;
  for (i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
  return s;
}

/* clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1. */
double ck_clip_coef(double total_norm, double max_norm) {
  double c = max_norm / (total_norm + 1e-6);
  return c < 1.0 ? c : 1.0;
}

void ck_scale_f32(float *g, int64_t n, float s) {
  int64_t i;
  for (i = 0; i < n; i++) g[i] *= s;
}

/* ---- learning-rate schedules ----------------------------------------------------------- */

double ck_lr_constant(double lr, int64_t step) {
  (void)step;
  return lr;
}

/* nanoGPT: the (step+1)/(warmup+1) ramp never starts at lr 0 (a wasted step)
 * and reaches lr on the step after the warmup. */
double ck_lr_linear_warmup(double lr, int64_t step, int64_t warmup) {
  if (step < warmup) return lr * (double)(step + 1) / (double)(warmup + 1);
  return lr;
}

/* nanoGPT's get_lr; step >= decay_steps short-cuts to min_lr, which also
 * keeps decay_steps == warmup from dividing by zero. */
double ck_lr_cosine(double lr, double min_lr, int64_t step, int64_t warmup, int64_t decay_steps) {
  const double pi = 3.14159265358979323846;
  double r, coeff;
  if (step < warmup) return lr * (double)(step + 1) / (double)(warmup + 1);
  if (step >= decay_steps) return min_lr;
  r = (double)(step - warmup) / (double)(decay_steps - warmup);
  coeff = 0.5 * (1.0 + cos(pi * r));
  return min_lr + coeff * (lr - min_lr);
}

double ck_lr_linear(double lr, double min_lr, int64_t step, int64_t warmup, int64_t decay_steps) {
  if (step < warmup) return lr * (double)(step + 1) / (double)(warmup + 1);
  if (step >= decay_steps) return min_lr;
  return lr + (min_lr - lr) * (double)(step - warmup) / (double)(decay_steps - warmup);
}

/* StepLR in closed form; a non-positive step_size means no decay. */
double ck_lr_step(double lr, int64_t step, int64_t step_size, double gamma) {
  if (step_size <= 0 || step < 0) return lr;
  return lr * pow(gamma, (double)(step / step_size));
}
