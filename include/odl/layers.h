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
    int32_t k_h, k_w, stride_h, stride_w, pad_h, pad_w; /* pad_h, pad_w: top and left */
    int32_t pad_b, pad_r;  /* bottom and right padding (= pad_h, pad_w when symmetric) */
    int32_t dil_h, dil_w;  /* dilation, >= 1 */
    int32_t groups;        /* conv2d: in_c and out_c divisible by it; 1 otherwise */
    uint32_t flags;        /* pools: ODL_NODE_CEIL_MODE, ODL_NODE_COUNT_PAD (odl/model.h) */
} odl_window_dims;

/* A window with symmetric padding, no dilation, one group, no flags: what
 * every field not named here defaults to. Callers fill the rest. */
odl_window_dims odl_window_dims_simple(int32_t batch, int32_t in_c, int32_t in_h, int32_t in_w,
                                       int32_t out_c, int32_t out_h, int32_t out_w, int32_t k_h,
                                       int32_t k_w, int32_t stride_h, int32_t stride_w, int32_t pad_h,
                                       int32_t pad_w);

/* Output size of a window op: (in + 2*pad - k) / stride + 1 (floor), or -1 if
 * the window does not fit. */
int32_t odl_window_out_size(int32_t in, int32_t k, int32_t stride, int32_t pad);
/* The general case: padding before and after, dilation, ceil mode (as
 * PyTorch: with ceil, the last window must start inside the input or the
 * leading padding). -1 if no window fits. */
int32_t odl_window_out_size_ex(int32_t in, int32_t k, int32_t stride, int32_t pad_begin,
                               int32_t pad_end, int32_t dilation, int ceil_mode);

/* Scratch floats the optimised conv2d needs (im2col of one sample, one
 * group at a time). */
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

/* out_c must be a multiple of in_c (the depth multiplier). Honours dilation
 * and asymmetric padding; `groups` is implied (in_c) and not read. */
void odl_depthwise_forward_f32(const odl_window_dims *d, const float *x,
                               const float *w, const float *b, float *y);
void odl_depthwise_forward_f32_ref(const odl_window_dims *d, const float *x,
                                   const float *w, const float *b, float *y);
void odl_depthwise_backward_f32(const odl_window_dims *d, const float *x,
                                const float *w, const float *dy, float *dx,
                                float *dw, float *db);
void odl_depthwise_backward_f32_ref(const odl_window_dims *d, const float *x,
                                    const float *w, const float *dy, float *dx,
                                    float *dw, float *db);

/* Pools: out_c == in_c. Padding counts as -inf (max). The average's divisor
 * counts the window's cells inside the input, or with ODL_NODE_COUNT_PAD
 * also those in the padding [-pad_begin, in + pad_end), never the cells a
 * ceil-mode window reaches beyond that (PyTorch and ONNX). A window wholly in
 * padding (pads wider than the window) gives 0. Max-pool backward sends the
 * gradient to the first maximum in the window. Dilation is honoured. */
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

/* ---- graph operators -------------------------------------------------------
 * conv2d, depthwise and the pools above honour every field of
 * odl_window_dims (groups, dilation, asymmetric padding, ceil mode,
 * count_include_pad); the fast paths serve the simple cases unchanged.
 * The kernels below overwrite dx (and their other d-outputs unless said);
 * a tensor read by several nodes gets the sum, which the model adds. */

/* Per-channel affine (inference-form batch norm): y = x*scale[c] + shift[c]
 * over [batch][c][hw]. Backward accumulates dscale and dshift (may be NULL). */
void odl_affine_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *x,
                            const float *scale, const float *shift, float *y);
void odl_affine_backward_f32(int32_t batch, int32_t c, int32_t hw, const float *x,
                             const float *scale, const float *dy, float *dx, float *dscale,
                             float *dshift);

/* Elementwise activations by node type (ODL_LAYER_RELU, RELU6, CLIP,
 * LEAKY_RELU, SIGMOID, HARD_SIGMOID, HARD_SWISH, TANH), with the node's
 * alpha and beta; forward may run in place (y = x). Backward gets the
 * forward input x and output y and reads only one: relu, relu6, sigmoid and
 * tanh read y (x may be NULL), clip, leaky relu, hard sigmoid and hard swish
 * read x (y may be NULL; so in training their forward must not overwrite
 * x). dx may be dy. Derivatives at the kinks are PyTorch's:
 * 0 for relu, relu6 and hard sigmoid; 1 at clip's bounds (torch.clamp);
 * alpha for leaky relu at 0; hard swish -0.5 at -3 and 1.5 at 3. */
void odl_act_forward_f32(int32_t type, float alpha, float beta, size_t n, const float *x, float *y);
void odl_act_forward_f32_ref(int32_t type, float alpha, float beta, size_t n, const float *x, float *y);
void odl_act_backward_f32(int32_t type, float alpha, float beta, size_t n, const float *x,
                          const float *y, const float *dy, float *dx);

/* y = a + b and y = a * b over [batch][c][hw], b broadcast: b is
 * [batch][b_c][b_hw] with (b_c, b_hw) = (c, hw), (c, 1) or (1, 1).
 * Backward: da (may be NULL) overwritten, db (may be NULL) overwritten with
 * the sum over the broadcast axes. */
void odl_add_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *a, const float *b,
                         int32_t b_c, int32_t b_hw, float *y);
void odl_add_backward_f32(int32_t batch, int32_t c, int32_t hw, int32_t b_c, int32_t b_hw,
                          const float *dy, float *da, float *db);
void odl_mul_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *a, const float *b,
                         int32_t b_c, int32_t b_hw, float *y);
void odl_mul_backward_f32(int32_t batch, int32_t c, int32_t hw, const float *a, const float *b,
                          int32_t b_c, int32_t b_hw, const float *dy, float *da, float *db);

/* Concatenation on channels of n_in tensors [batch][c_in[i]][hw]. */
void odl_concat_forward_f32(int32_t batch, int32_t n_in, const float *const *x, const int32_t *c_in,
                            int32_t hw, float *y);
void odl_concat_backward_f32(int32_t batch, int32_t n_in, const int32_t *c_in, int32_t hw,
                             const float *dy, float *const *dx);

/* Constant padding of h and w: d gives in/out shapes and pad_h (top),
 * pad_w (left), pad_b, pad_r (k, stride unused); out_h = in_h + pad_h +
 * pad_b. A negative pad crops (ONNX Pad allows it); cropped cells get no
 * gradient. */
void odl_pad_forward_f32(const odl_window_dims *d, float value, const float *x, float *y);
void odl_pad_backward_f32(const odl_window_dims *d, const float *dy, float *dx);

/* y += x (n floats): the model sums gradients of tensors read twice. */
void odl_accumulate_f32(size_t n, const float *x, float *y);

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
