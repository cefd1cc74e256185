/* rt-min/x86/ck_x86_conv.h - conv2d forward and backward for the x86
 * targets as im2col + the pooled GEMM (rt-min/x86/ck_gemm.h), and pooled
 * max pooling (hosted C99, no intrinsics).
 *
 * Same contracts as ck_conv2d_f32 (rt-min/ck_kernels.h) and
 * ck_conv2d_backward_f32 (rt-min/ck_grad.h): NCHW, w [OC, C/groups, KH, KW],
 * zero padding, grouped; dx / dw / dbias accumulate (+=) and any may be NULL.
 * Two arguments are added: the pool first, and a workspace the caller owns
 * (the generated code passes an arena buffer planned for this one step):
 * `scratch` of `scratch_floats` floats. The batch is processed in slabs of
 * nb samples, nb = the number of samples whose workspace fits,
 *     CK_X86_CONV_SCRATCH(C, OC, KH, KW, OH, OW, nb) floats,
 * so the slab size depends on the shape and the workspace only. With a
 * pool (and N > 1) the forward and dx instead run batch-parallel: one chunk
 * per slab of ceil(768 / (OH*OW)) samples (the shape alone), each doing its
 * slab's im2col, GEMM and scatter / col2im on one thread in the pool's
 * scratch slot of that thread (the caller's workspace with one thread);
 * the slab dw kernel's dw runs over the whole batch from dy transposed into
 * the pool's shared slot. Same layout and bits either way. Within a
 * slab the columns of every sample sit side by side (L = nb*OH*OW columns):
 *     col [C*KH*KW][L]   im2col of x (zeros where the window is padding)
 *     dys [OC][L]        the GEMM result (forward) or dy regrouped (backward)
 * and per group g (Kc = C/groups*KH*KW rows, opg = OC/groups):
 *     forward  out_g [opg][L]  = w_g [opg][Kc] @ col_g           (+ bias after)
 *     dw       dw_g  [opg][Kc] += dys_g [opg][L] @ col_g^T       (one chain over n, oh, ow)
 *     dx       dcol_g [Kc][L]  = w_g^T @ dys_g, then col2im: every dx element
 *              gathers its (kh, kw) terms in that order in a float, added once
 *     dbias    per oc, 16 lanes over (n, p) (lane l: p % 16 == l), a fixed
 *              pairwise tree (l + 8, + 4, + 2, + 1), then dbias += once.
 *
 * NUMERICS: each GEMM element is one fmaf chain in k order (ck_gemm.h), so
 *     out = fmaf chain over (c, kh, kw) of x * w, then + bias;
 *     dx  = sum over (kh, kw) of [fmaf chain over oc of dy * w], then dx +=;
 *     dw  = fmaf chain over (n, oh, ow) of dy * x, starting from the old dw;
 *     dbias = the lane sums above (the reference: one chain over (n, oh, ow)).
 * These differ from the reference (separate multiply and add; dx summed oc
 * outermost) by rounding only; padding positions enter as exact zero
 * products (fmaf(0, w, acc) == acc for finite w; an infinite weight facing
 * padding gives NaN where the reference skips the tap). The bits do not
 * depend on the thread count (the GEMM splits only output tiles, every other
 * loop is chunked by shape and each chunk writes its own rows) nor on the
 * slab size (a GEMM chain continues through memory exactly as in registers).
 *
 * A workspace too small for one sample, or groups / strides the reference
 * would not accept, runs the reference kernel instead. */
#ifndef CK_X86_CONV_H
#define CK_X86_CONV_H

#include <stdint.h>

#include "ck_pool.h"

/* Workspace floats for a slab of nb samples (forward and backward alike). */
#define CK_X86_CONV_SCRATCH(C, OC, KH, KW, OH, OW, nb) \
  (((int64_t)(C) * (KH) * (KW) + (OC)) * (int64_t)(OH) * (OW) * (int64_t)(nb))

/* ck_conv2d_f32 on the pool, with a workspace (see above). */
void ck_x86_conv2d_f32(CkPool *pool, float *out, const float *x, const float *w, const float *bias,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups, int64_t OH,
                       int64_t OW, float *scratch, int64_t scratch_floats);

/* ck_conv2d_backward_f32 on the pool, with a workspace (see above). */
void ck_x86_conv2d_backward_f32(CkPool *pool, float *dx, float *dw, float *dbias, const float *dy,
                                const float *x, const float *w, int64_t N, int64_t C, int64_t H,
                                int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, int64_t groups, int64_t OH, int64_t OW,
                                float *scratch, int64_t scratch_floats);

/* relu(conv): ck_x86_conv2d_f32's output with relu applied to each element
 * once its bias is added, as ck_x86_reluf (rt-min/x86/ck_x86_math.h:
 * x < 0 ? 0 : x, so NaN and -0 pass): the bits of the conv step followed by
 * the relu loop, without writing and re-reading the pre-relu tensor. The
 * relu gradient's mask `pre > 0` equals `relu(pre) > 0` for every float
 * (NaN and -0 included), so a backward can take it from this output. */
void ck_x86_conv2d_relu_f32(CkPool *pool, float *out, const float *x, const float *w, const float *bias,
                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                            int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups, int64_t OH,
                            int64_t OW, float *scratch, int64_t scratch_floats);

/* ck_x86_conv2d_relu_f32 into out, then ck_x86_maxpool2d_f32 of out into
 * pout (window PKH x PKW, stride psh x psw, padding pph x ppw, POH x POW
 * outputs): each conv chunk (a sample, or a slab of samples) pools its own
 * planes while they are in cache, so out is not read back from memory. The
 * bits of the two calls. */
void ck_x86_conv2d_relu_maxpool2d_f32(CkPool *pool, float *out, const float *x, const float *w, const float *bias,
                                      int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                      int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups,
                                      int64_t OH, int64_t OW, float *scratch, int64_t scratch_floats, float *pout,
                                      int64_t PKH, int64_t PKW, int64_t psh, int64_t psw, int64_t pph, int64_t ppw,
                                      int64_t POH, int64_t POW);

/* ck_maxpool2d_f32 and ck_maxpool2d_backward_f32 on the pool: the (n, c)
 * planes split into fixed blocks, each plane computed with the reference's
 * comparisons in the reference's order, so the results are bitwise equal to
 * the reference kernels. A plane's gradient lands only in its own plane, so
 * no two chunks write the same memory. */
void ck_x86_maxpool2d_f32(CkPool *pool, float *out, const float *x, int64_t N, int64_t C, int64_t H,
                          int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                          int64_t pw, int64_t OH, int64_t OW);
void ck_x86_maxpool2d_backward_f32(CkPool *pool, float *dx, const float *dy, const float *x, int64_t N,
                                   int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                                   int64_t sw, int64_t ph, int64_t pw, int64_t OH, int64_t OW);
/* The gradient through maxpool(relu(.)), x being relu's output (the pool's
 * input): dx = x > 0 ? d : 0.0f with d the pool backward of dy into a zeroed
 * plane; every element of dx is SET (not accumulated). Bitwise what the
 * three steps memset(dx), ck_x86_maxpool2d_backward_f32 and the loop
 * where(x > 0, dx, 0) give, but one pass over each plane while it is in
 * cache. */
void ck_x86_maxpool2d_relu_backward_f32(CkPool *pool, float *dx, const float *dy, const float *x, int64_t N,
                                        int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                                        int64_t sw, int64_t ph, int64_t pw, int64_t OH, int64_t OW);

/* The AVX-512 blocks of the above (rt-min/x86/ck_x86_conv_avx512.c; internal:
 * call only where the CPU has AVX-512F). 16 windows whose first cells are
 * xc + off[l], cells at + taps[t] (t < ntaps, in (kh, kw) order): the
 * forward's maxima into o, or the backward's recorded offsets into best. */
void ck_x86_maxpool16_avx512(float *o, const float *xc, const int32_t *off, const int32_t *taps, int ntaps);
void ck_x86_maxpool16_bwd_avx512(int32_t *best, const float *xc, const int32_t *off, const int32_t *taps,
                                 int ntaps);
/* A 2x2, stride-2, unpadded pool (the common case): one output row of n
 * outputs from input rows r0, r1 (the forward into o; the backward adds
 * g[ow] into the recorded cell of dx rows d0, d1), same rules and bits. */
/* The direct convolution for few taps (C*KH*KW <= 16, groups 1, column
 * stride 1; ck_x86_conv.c picks it where the CPU has AVX-512F): vectors of
 * 16 output columns (forward) or 16 output channels (dw) with the taps in
 * registers, the same fma chains as the im2col + GEMM path, so the same
 * bits, without the im2col matrix or a GEMM whose K (or N) is 9. */
typedef struct CkX86Direct {
  int64_t N, C, H, W, OC, KH, KW, sh, ph, pw, OH, OW;
  int relu; /* the forward stores relu(out) (ck_x86_conv2d_relu_f32) */
} CkX86Direct;
#define CK_X86_DIRECT_TAPS 16
/* out [OC][OH*OW] of one sample x [C][H][W] (+ bias, may be NULL). */
void ck_x86_direct_fwd_avx512(const CkX86Direct *d, float *out, const float *x, const float *w,
                              const float *bias);
/* dw rows [oc0, oc0 + noc), noc <= 16, accumulated over all N samples; tmp:
 * CK_X86_DIRECT_PAD floats (one sample zero-padded to every cell a window reads). */
#define CK_X86_DIRECT_PAD(C, KH, KW, sh, OH, OW) ((int64_t)(C) * (((OH) - 1) * (sh) + (KH)) * ((OW) - 1 + (KW)))
void ck_x86_direct_dw_avx512(const CkX86Direct *d, float *dw, const float *dy, const float *x, int64_t oc0,
                             int64_t noc, float *tmp);
/* dw for channels [oc0, oc0 + noc) (noc <= 32) and one input channel ci
 * over a slab of cnt samples (x its first sample, dyt its dy transposed:
 * dyt[l*ldt + oc], l = (n, oh, ow)), continuing each dw element's chain:
 * the im2col + GEMM path's bits without im2col (KH*KW <= CK_X86_DWC_TAPS;
 * xp: CK_X86_DWC_PAD floats, one zero-padded channel plane). */
#define CK_X86_DWC_TAPS 12
#define CK_X86_DWC_PAD(KH, KW, sh, OH, OW) ((int64_t)(((OH) - 1) * (sh) + (KH)) * ((OW) - 1 + (KW)))
/* The conv bias gradient's 16-lane sum of channel oc of dy [N][OC][P]. */
float ck_x86_dbias_avx512(const float *dy, int64_t N, int64_t OC, int64_t P, int64_t oc);
/* dy of one sample [OC][P] transposed into dst [P][OC] (16 * P < 2^31). */
void ck_x86_dyt_avx512(float *dst, const float *src, int64_t OC, int64_t P);
void ck_x86_direct_dwc_avx512(const CkX86Direct *d, float *dw, const float *dyt, int64_t ldt, const float *x,
                              int64_t cnt, int64_t ci, int64_t oc0, int64_t noc, float *xp);
/* im2col and col2im of one channel plane of one sample (column stride 1;
 * the shape's N and OC unused): its KH*KW rows of col, each L floats apart. */
void ck_x86_im2col_plane_avx512(const CkX86Direct *d, float *col, int64_t L, const float *xc);
void ck_x86_col2im_plane_avx512(const CkX86Direct *d, float *dxc, int64_t L, const float *col);
void ck_x86_maxpool2x2_row_avx512(float *o, const float *r0, const float *r1, int64_t n);
void ck_x86_maxpool2x2_bwd_row_avx512(float *d0, float *d1, const float *r0, const float *r1, const float *g,
                                      int64_t n);
/* The backward of one whole plane of that pool (H*W cells, dx += at the
 * recorded cells, the others keep their bits), through buf (H*W floats). */
#define CK_X86_POOL2_PLANE_MAX 4096
void ck_x86_maxpool2x2_bwd_plane_avx512(float *dxc, const float *xc, const float *g, int64_t H, int64_t W,
                                        int64_t OH, int64_t OW, float *buf);
/* The same plane for ck_x86_maxpool2d_relu_backward_f32: every cell set to
 * xc > 0 ? +0.0f + (its addend) : +0.0f. */
void ck_x86_maxpool2x2_relu_bwd_plane_avx512(float *dxc, const float *xc, const float *g, int64_t H, int64_t W,
                                             int64_t OH, int64_t OW, float *buf);

/* The AVX2 rows of that pool (rt-min/x86/ck_x86_conv_avx2.c), for CPUs
 * without AVX-512F: one output row, its backward (dx += at the recorded
 * cells), and the relu-masked backward of a plane the windows cover
 * exactly (H = 2*OH, W = 2*OW; every cell set). Same bits as the reference. */
void ck_x86_maxpool2x2_row_avx2(float *o, const float *r0, const float *r1, int64_t n);
void ck_x86_maxpool2x2_bwd_row_avx2(float *d0, float *d1, const float *r0, const float *r1, const float *g,
                                    int64_t n);
void ck_x86_maxpool2x2_relu_bwd_rows_avx2(float *dxc, const float *xc, const float *g, int64_t W, int64_t OH,
                                          int64_t OW);

#endif
