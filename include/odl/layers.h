/* odl/layers.h — FP32 layer kernels, forward and backward.
 *
 * Layout: activations are NCHW, one sample after another (batch outer).
 * Weights follow PyTorch so golden vectors compare directly:
 *   dense      w[out][in], b[out]
 *   conv2d     w[cout][cin][kh][kw], b[cout]
 *   depthwise  w[cin*mult][1][kh][kw], b[cin*mult]  (output channel o reads input o/mult)
 *
 * Kernels cannot fail once their dimensions are valid (odl_model_init checks
 * them), so they return void. Backward kernels *accumulate* into dw and db
 * (the caller zeroes them once per step) and *overwrite* dx; any of dx, dw, db
 * may be NULL when not needed (a frozen layer has no dw/db; the first
 * trainable layer needs no dx).
 *
 * Each optimised kernel has a plain reference loop beside it (`_ref`); the
 * tests compare the two. */
#ifndef ODL_LAYERS_H
#define ODL_LAYERS_H

#include <stddef.h>
#include <stdint.h>
#include "odl/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dense: y = x w^T + b ---------------------------------------------- */
typedef struct odl_dense_dims {
    int32_t batch, in, out;
} odl_dense_dims;

void odl_dense_forward_f32(const odl_dense_dims *d, const float *x,
                           const float *w, const float *b, float *y);
void odl_dense_forward_f32_ref(const odl_dense_dims *d, const float *x,
                               const float *w, const float *b, float *y);
void odl_dense_backward_f32(const odl_dense_dims *d, const float *x,
                            const float *w, const float *dy, float *dx,
                            float *dw, float *db);
void odl_dense_backward_f32_ref(const odl_dense_dims *d, const float *x,
                                const float *w, const float *dy, float *dx,
                                float *dw, float *db);

/* ---- windowed ops: conv2d, depthwise conv2d, max/avg pool --------------- */
typedef struct odl_window_dims {
    int32_t batch;
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
} odl_window_dims;

/* Output size of a window op: (in + 2*pad - k) / stride + 1 (floor), or -1 if
 * the window does not fit. */
int32_t odl_window_out_size(int32_t in, int32_t k, int32_t stride, int32_t pad);

/* Scratch floats the optimised conv2d needs (im2col of one sample). */
size_t odl_conv2d_scratch_floats(const odl_window_dims *d);

void odl_conv2d_forward_f32(const odl_window_dims *d, const float *x,
                            const float *w, const float *b, float *y,
                            float *scratch);
void odl_conv2d_forward_f32_ref(const odl_window_dims *d, const float *x,
                                const float *w, const float *b, float *y);
void odl_conv2d_backward_f32(const odl_window_dims *d, const float *x,
                             const float *w, const float *dy, float *dx,
                             float *dw, float *db, float *scratch);
void odl_conv2d_backward_f32_ref(const odl_window_dims *d, const float *x,
                                 const float *w, const float *dy, float *dx,
                                 float *dw, float *db);

/* out_c must be a multiple of in_c (the depth multiplier). */
void odl_depthwise_forward_f32(const odl_window_dims *d, const float *x,
                               const float *w, const float *b, float *y);
void odl_depthwise_backward_f32(const odl_window_dims *d, const float *x,
                                const float *w, const float *dy, float *dx,
                                float *dw, float *db);

/* Pools: out_c == in_c. Padding counts as -inf (max) and is excluded from
 * the divisor (avg: count_include_pad=False in PyTorch terms). Max-pool
 * backward sends the gradient to the first maximum in the window. */
void odl_maxpool_forward_f32(const odl_window_dims *d, const float *x, float *y);
void odl_maxpool_backward_f32(const odl_window_dims *d, const float *x,
                              const float *dy, float *dx);
void odl_avgpool_forward_f32(const odl_window_dims *d, const float *x, float *y);
void odl_avgpool_backward_f32(const odl_window_dims *d, const float *dy, float *dx);

/* Global average pool: [batch][c][h][w] -> [batch][c]. */
void odl_gap_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *x, float *y);
void odl_gap_backward_f32(int32_t batch, int32_t c, int32_t hw, const float *dy, float *dx);

/* ---- elementwise ------------------------------------------------------- */
void odl_relu_forward_f32(size_t n, const float *x, float *y);
/* Uses the forward *output* y (relu'(x) = y > 0), so x need not be kept. */
void odl_relu_backward_f32(size_t n, const float *y, const float *dy, float *dx);
void odl_relu6_forward_f32(size_t n, const float *x, float *y);
void odl_relu6_backward_f32(size_t n, const float *y, const float *dy, float *dx);

/* Inverted dropout: zeroes each element with probability p and scales the
 * rest by 1/(1-p). The mask is regenerated in backward from a copy of the
 * RNG state taken before forward, so no mask memory is needed. */
void odl_dropout_forward_f32(size_t n, float p, odl_rng *r, const float *x, float *y);
void odl_dropout_backward_f32(size_t n, float p, odl_rng *r_at_forward,
                              const float *dy, float *dx);

/* ---- loss -------------------------------------------------------------- */
/* Mean softmax cross-entropy over the batch. probs (optional, [batch][c])
 * receives the softmax; dlogits (optional) receives d(mean loss)/d(logits).
 * Returns the mean loss. Labels must be in [0, c). */
float odl_softmax_xent_f32(int32_t batch, int32_t c, const float *logits,
                           const int32_t *labels, float *probs, float *dlogits);
/* Numerically stable softmax of one row. */
void odl_softmax_f32(int32_t c, const float *logits, float *probs);

/* ---- fused variants (used by odl/model.c) --------------------------------
 * The kernels above are these with flags = 0. */
#define ODL_FUSE_RELU 1u      /* forward: y = relu(layer(x)), the next layer's ReLU done on the way out;
                               * maxpool backward: also the backward of the ReLU before the pool
                               * (x, the pool's input, is that ReLU's output: relu'(x) = x > 0) */
#define ODL_GRAD_OVERWRITE 2u /* backward: dw and db are overwritten, not accumulated (no zeroing) */

void odl_dense_forward_f32_ex(const odl_dense_dims *d, const float *x, const float *w,
                              const float *b, float *y, unsigned flags);
void odl_dense_backward_f32_ex(const odl_dense_dims *d, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db, unsigned flags);
void odl_conv2d_forward_f32_ex(const odl_window_dims *d, const float *x, const float *w,
                               const float *b, float *y, float *scratch, unsigned flags);
void odl_conv2d_backward_f32_ex(const odl_window_dims *d, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db, float *scratch,
                                unsigned flags);
void odl_maxpool_backward_f32_ex(const odl_window_dims *d, const float *x, const float *dy,
                                 float *dx, unsigned flags);

/* ---- Adam update --------------------------------------------------------
 * torch.optim.Adam's element update with the per-step constants computed
 * once (odl/model.c): g' = g + wd*w; m = b1*m + (1-b1)*g'; v = b2*v +
 * (1-b2)*g'*g'; w -= step_size*m / (sqrt(v)*inv_sqrt_bc2 + eps), with
 * step_size = lr/(1 - b1^t) and inv_sqrt_bc2 = 1/sqrt(1 - b2^t). Same bits
 * as odl_adam_step_f32 (odl/optim.h). */
typedef struct odl_adam_coef {
    float b1, b2, one_m_b1, one_m_b2, wd, eps, step_size, inv_sqrt_bc2;
} odl_adam_coef;
void odl_adam_update_f32(const odl_adam_coef *k, size_t n, float *w, const float *g,
                         float *m, float *v);
void odl_adam_update_f32_ref(const odl_adam_coef *k, size_t n, float *w, const float *g,
                             float *m, float *v);

#ifdef __cplusplus
}
#endif
#endif
