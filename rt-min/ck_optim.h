/* rt-min/ck_optim.h - losses, optimizer updates and learning-rate schedules (C99).
 *
 * The numerical end of a training step, with PyTorch semantics. Same
 * conventions as ck_kernels.h / ck_grad.h: dense row-major contiguous
 * tensors, outputs first, no allocation, no stdio, fixed summation order.
 *
 * Losses reduce with 'mean' and write one float through `loss`. Their
 * backward kernels take the upstream gradient as a pointer to one float
 * (`dloss`, a tensor in the IR) and ACCUMULATE into every d* output.
 * Row sums of a loss are accumulated in double in row order, then rounded
 * once to float.
 *
 * Optimizers update ONE parameter tensor per call, in place. Hyper-parameters
 * are doubles, as in torch.optim (Python floats): derived scalars (1 - beta,
 * bias corrections, step size) are formed in double and rounded to float once,
 * then every per-element operation runs in float in PyTorch's order. */
#ifndef CK_OPTIM_H
#define CK_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* ---- losses ------------------------------------------------------------------------- */

/* F.cross_entropy(logits (rows x V), targets, ignore_index, label_smoothing),
 * reduction 'mean' over the rows whose target != ignore_index:
 *   lse_r = max + log(sum exp(x - max))
 *   loss = sum_r [(1-e)(lse_r - x[r,t_r]) + (e/V) sum_j (lse_r - x[r,j])] / count
 * When every row is ignored, count = 0 and the loss is NaN (PyTorch's 0/0).
 * Returns -1, or the position r of the first target that is neither
 * ignore_index nor in [0, V); then nothing is read past the logits and *loss
 * is left untouched. */
int64_t ck_cross_entropy_f32(float *loss, const float *logits, const int32_t *targets,
                             int64_t rows, int64_t V, int32_t ignore_index, float label_smoothing);
/* dlogits[r, j] += (dloss / count) * (p_j - (1-e)[j == t_r] - e/V) for rows
 * not ignored (ignored rows get nothing; count = 0 adds nothing). Same return
 * value and bad-target rule (nothing written). */
int64_t ck_cross_entropy_backward_f32(float *dlogits, const float *dloss, const float *logits,
                                      const int32_t *targets, int64_t rows, int64_t V,
                                      int32_t ignore_index, float label_smoothing);

/* F.mse_loss(pred, target), mean over n elements. */
void ck_mse_f32(float *loss, const float *pred, const float *target, int64_t n);
/* dpred += (2 dloss / n) (pred - target); dtarget += -(same). Either may be NULL. */
void ck_mse_backward_f32(float *dpred, float *dtarget, const float *dloss, const float *pred,
                         const float *target, int64_t n);

/* F.binary_cross_entropy_with_logits(x, y), mean over n, in the stable form
 *   max(x, 0) - x y + log1p(exp(-|x|)). */
void ck_bce_with_logits_f32(float *loss, const float *x, const float *y, int64_t n);
/* dx += (dloss / n) (sigmoid(x) - y); dy += -(dloss / n) x. Either may be NULL. */
void ck_bce_with_logits_backward_f32(float *dx, float *dy, const float *dloss, const float *x,
                                     const float *y, int64_t n);

/* ---- optimizers ---------------------------------------------------------------------- */

/* torch.optim.SGD (maximize=False), one step on p[n] with gradient g[n]:
 *   d = g + weight_decay p                       (if weight_decay != 0)
 *   buf = first_step ? d : momentum buf + (1 - dampening) d   (if momentum != 0)
 *   d = nesterov ? d + momentum buf : buf        (if momentum != 0)
 *   p = p - lr d
 * buf (n floats) may be NULL when momentum == 0; first_step != 0 on the first
 * step of a parameter (PyTorch's "buffer is None"). */
void ck_sgd_update_f32(float *p, const float *g, float *buf, int64_t n, double lr, double momentum,
                       double dampening, double weight_decay, int nesterov, int first_step);

/* torch.optim.Adam (decoupled = 0: weight decay added to the gradient) or
 * torch.optim.AdamW (decoupled = 1: p *= 1 - lr weight_decay first), with
 * amsgrad=False, maximize=False. t is the step number AFTER this step's
 * increment (1 on the first step); m and v (n floats each) start zeroed.
 *   m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g g
 *   p = p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps) */
void ck_adam_update_f32(float *p, const float *g, float *m, float *v, int64_t n, double lr,
                        double beta1, double beta2, double eps, double weight_decay, int64_t t,
                        int decoupled);

/* ---- gradient clipping (torch.nn.utils.clip_grad_norm_, norm_type 2) ------------------ */

/* Sum of squares of g[n], accumulated in double in index order. The caller
 * adds the sums of all parameters in a fixed order; total_norm = sqrt(sum). */
double ck_grad_sq_norm_f32(const float *g, int64_t n);
/* The factor clip_grad_norm_ multiplies by: min(1, max_norm / (total_norm + 1e-6)). */
double ck_clip_coef(double total_norm, double max_norm);
/* g[i] *= s. */
void ck_scale_f32(float *g, int64_t n, float s);

/* ---- learning-rate schedules (pure functions of the 0-based step) --------------------- */

/* lr, whatever the step. */
double ck_lr_constant(double lr, int64_t step);
/* nanoGPT's warmup: lr (step + 1) / (warmup + 1) while step < warmup, then lr. */
double ck_lr_linear_warmup(double lr, int64_t step, int64_t warmup);
/* nanoGPT's get_lr: the warmup above, then cosine decay from lr to min_lr over
 * steps [warmup, decay_steps]; min_lr after decay_steps:
 *   r = (step - warmup) / (decay_steps - warmup)
 *   lr_t = min_lr + 0.5 (1 + cos(pi r)) (lr - min_lr)
 * With warmup = 0 this is torch's CosineAnnealingLR(T_max = decay_steps,
 * eta_min = min_lr) in closed form, for step <= T_max. */
double ck_lr_cosine(double lr, double min_lr, int64_t step, int64_t warmup, int64_t decay_steps);
/* The warmup above, then linear decay from lr to min_lr over steps
 * [warmup, decay_steps]; min_lr after decay_steps:
 *   lr_t = lr + (min_lr - lr) (step - warmup) / (decay_steps - warmup)
 * With warmup = 0 and min_lr = 0 this is torch's LinearLR(start_factor=1,
 * end_factor=0, total_iters=decay_steps). */
double ck_lr_linear(double lr, double min_lr, int64_t step, int64_t warmup, int64_t decay_steps);
/* torch.optim.lr_scheduler.StepLR: lr gamma^floor(step / step_size). */
double ck_lr_step(double lr, int64_t step, int64_t step_size, double gamma);

#endif
