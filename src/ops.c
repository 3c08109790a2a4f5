/* Graph operator kernels (odl/layers.h, "graph operators"): per-channel
 * affine, elementwise activations, broadcast add/mul, channel concat,
 * constant pad and gradient accumulation. Definitions follow PyTorch's
 * kernels (the same operations in the same order, so results match its
 * float arithmetic), derivatives at kinks included. Nothing allocates. */
#include "odl/layers.h"
#include "odl/model.h" /* ODL_LAYER_* */

#include <math.h>
#include <string.h>

/* ---- affine ------------------------------------------------------------ */

void odl_affine_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *x,
                            const float *scale, const float *shift, float *y)
{
    for (int32_t n = 0; n < batch; n++)
        for (int32_t ch = 0; ch < c; ch++) {
            const size_t off = ((size_t)n * c + ch) * hw;
            const float s = scale[ch], t = shift[ch];
            for (int32_t i = 0; i < hw; i++)
                y[off + i] = x[off + i] * s + t;
        }
}

void odl_affine_backward_f32(int32_t batch, int32_t c, int32_t hw, const float *x,
                             const float *scale, const float *dy, float *dx, float *dscale,
                             float *dshift)
{
    for (int32_t n = 0; n < batch; n++)
        for (int32_t ch = 0; ch < c; ch++) {
            const size_t off = ((size_t)n * c + ch) * hw;
            float gs = 0.0f, gt = 0.0f;
            for (int32_t i = 0; i < hw; i++) {
                gs += dy[off + i] * x[off + i];
                gt += dy[off + i];
            }
            if (dscale)
                dscale[ch] += gs;
            if (dshift)
                dshift[ch] += gt;
            if (dx)
                for (int32_t i = 0; i < hw; i++)
                    dx[off + i] = dy[off + i] * scale[ch];
        }
}

/* ---- activations ---------------------------------------------------------
 * One scalar definition per type (act_one); the forward runs a tight loop
 * per type that the compiler vectorises, the _ref applies act_one. */

static float act_one(int32_t type, float alpha, float beta, float v)
{
    switch (type) {
    case ODL_LAYER_RELU:
        return v > 0.0f ? v : 0.0f;
    case ODL_LAYER_RELU6: {
        const float r = v > 0.0f ? v : 0.0f;
        return r < 6.0f ? r : 6.0f;
    }
    case ODL_LAYER_CLIP: { /* torch.clamp(x, min, max) */
        const float r = v < alpha ? alpha : v;
        return r > beta ? beta : r;
    }
    case ODL_LAYER_LEAKY_RELU:
        return v > 0.0f ? v : v * alpha;
    case ODL_LAYER_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    case ODL_LAYER_HARD_SIGMOID: { /* ONNX HardSigmoid */
        const float r = alpha * v + beta;
        return r < 0.0f ? 0.0f : r > 1.0f ? 1.0f : r;
    }
    case ODL_LAYER_HARD_SWISH: { /* PyTorch: x * min(max(x + 3, 0), 6) / 6 */
        float r = v + 3.0f;
        r = r > 0.0f ? r : 0.0f;
        r = r < 6.0f ? r : 6.0f;
        return v * r / 6.0f;
    }
    case ODL_LAYER_TANH:
        return tanhf(v);
    default:
        return v;
    }
}

void odl_act_forward_f32_ref(int32_t type, float alpha, float beta, size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = act_one(type, alpha, beta, x[i]);
}

void odl_act_forward_f32(int32_t type, float alpha, float beta, size_t n, const float *x, float *y)
{
    switch (type) {
    case ODL_LAYER_RELU:
        odl_relu_forward_f32(n, x, y);
        return;
    case ODL_LAYER_RELU6:
        odl_relu6_forward_f32(n, x, y);
        return;
    case ODL_LAYER_CLIP:
        for (size_t i = 0; i < n; i++) {
            const float r = x[i] < alpha ? alpha : x[i];
            y[i] = r > beta ? beta : r;
        }
        return;
    case ODL_LAYER_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : x[i] * alpha;
        return;
    case ODL_LAYER_HARD_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            const float r = alpha * x[i] + beta;
            y[i] = r < 0.0f ? 0.0f : r > 1.0f ? 1.0f : r;
        }
        return;
    case ODL_LAYER_HARD_SWISH:
        for (size_t i = 0; i < n; i++) {
            float r = x[i] + 3.0f;
            r = r > 0.0f ? r : 0.0f;
            r = r < 6.0f ? r : 6.0f;
            y[i] = x[i] * r / 6.0f;
        }
        return;
    default: /* sigmoid, tanh: libm dominates, nothing to gain */
        odl_act_forward_f32_ref(type, alpha, beta, n, x, y);
        return;
    }
}

/* Derivatives as PyTorch's backward kernels define them: relu, relu6
 * (hardtanh) and hard sigmoid pass nothing at the kinks; clamp passes the
 * gradient at its bounds (min <= x <= max); leaky relu takes the slope at 0;
 * hard swish is 0 below -3, x/3 + 0.5 on [-3, 3], 1 above. */
void odl_act_backward_f32(int32_t type, float alpha, float beta, size_t n, const float *x,
                          const float *y, const float *dy, float *dx)
{
    switch (type) {
    case ODL_LAYER_RELU:
        odl_relu_backward_f32(n, y, dy, dx);
        return;
    case ODL_LAYER_RELU6:
        odl_relu6_backward_f32(n, y, dy, dx);
        return;
    case ODL_LAYER_CLIP:
        for (size_t i = 0; i < n; i++)
            dx[i] = x[i] >= alpha && x[i] <= beta ? dy[i] : 0.0f;
        return;
    case ODL_LAYER_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * alpha;
        return;
    case ODL_LAYER_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i]) * y[i];
        return;
    case ODL_LAYER_HARD_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            const float r = alpha * x[i] + beta;
            dx[i] = r > 0.0f && r < 1.0f ? dy[i] * alpha : 0.0f;
        }
        return;
    case ODL_LAYER_HARD_SWISH:
        for (size_t i = 0; i < n; i++)
            dx[i] = x[i] < -3.0f ? 0.0f : x[i] <= 3.0f ? dy[i] * (x[i] / 3.0f + 0.5f) : dy[i];
        return;
    case ODL_LAYER_TANH:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        return;
    default:
        if (dx != dy)
            memmove(dx, dy, sizeof(float) * n);
        return;
    }
}

/* ---- broadcast add / mul ------------------------------------------------ */

/* b's element for (channel ch, position i) of sample n */
static size_t bcast_index(int32_t n, int32_t ch, int32_t i, int32_t b_c, int32_t b_hw)
{
    return ((size_t)n * b_c + (b_c > 1 ? (size_t)ch : 0)) * b_hw + (b_hw > 1 ? (size_t)i : 0);
}

void odl_add_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *a, const float *b,
                         int32_t b_c, int32_t b_hw, float *y)
{
    for (int32_t n = 0; n < batch; n++)
        for (int32_t ch = 0; ch < c; ch++) {
            const size_t off = ((size_t)n * c + ch) * hw;
            if (b_hw == hw) {
                const float *bp = b + bcast_index(n, ch, 0, b_c, b_hw);
                for (int32_t i = 0; i < hw; i++)
                    y[off + i] = a[off + i] + bp[i];
            } else {
                const float bv = b[bcast_index(n, ch, 0, b_c, b_hw)];
                for (int32_t i = 0; i < hw; i++)
                    y[off + i] = a[off + i] + bv;
            }
        }
}

/* db = dy summed over the axes b was broadcast along (b_hw and b_c of 1) */
static void reduce_to_b(int32_t batch, int32_t c, int32_t hw, int32_t b_c, int32_t b_hw,
                        const float *a, const float *dy, float *db)
{
    memset(db, 0, sizeof(float) * (size_t)batch * b_c * b_hw);
    for (int32_t n = 0; n < batch; n++)
        for (int32_t ch = 0; ch < c; ch++) {
            const size_t off = ((size_t)n * c + ch) * hw;
            float *dbp = db + bcast_index(n, ch, 0, b_c, b_hw);
            if (b_hw == hw) {
                for (int32_t i = 0; i < hw; i++)
                    dbp[i] += a ? dy[off + i] * a[off + i] : dy[off + i];
            } else {
                float acc = 0.0f;
                for (int32_t i = 0; i < hw; i++)
                    acc += a ? dy[off + i] * a[off + i] : dy[off + i];
                *dbp += acc;
            }
        }
}

void odl_add_backward_f32(int32_t batch, int32_t c, int32_t hw, int32_t b_c, int32_t b_hw,
                          const float *dy, float *da, float *db)
{
    if (da && da != dy)
        memmove(da, dy, sizeof(float) * (size_t)batch * c * hw);
    if (db)
        reduce_to_b(batch, c, hw, b_c, b_hw, NULL, dy, db);
}

void odl_mul_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *a, const float *b,
                         int32_t b_c, int32_t b_hw, float *y)
{
    for (int32_t n = 0; n < batch; n++)
        for (int32_t ch = 0; ch < c; ch++) {
            const size_t off = ((size_t)n * c + ch) * hw;
            if (b_hw == hw) {
                const float *bp = b + bcast_index(n, ch, 0, b_c, b_hw);
                for (int32_t i = 0; i < hw; i++)
                    y[off + i] = a[off + i] * bp[i];
            } else {
                const float bv = b[bcast_index(n, ch, 0, b_c, b_hw)];
                for (int32_t i = 0; i < hw; i++)
                    y[off + i] = a[off + i] * bv;
            }
        }
}

void odl_mul_backward_f32(int32_t batch, int32_t c, int32_t hw, const float *a, const float *b,
                          int32_t b_c, int32_t b_hw, const float *dy, float *da, float *db)
{
    /* db first: da may alias dy (in place) */
    if (db)
        reduce_to_b(batch, c, hw, b_c, b_hw, a, dy, db);
    if (da)
        odl_mul_forward_f32(batch, c, hw, dy, b, b_c, b_hw, da);
}

/* ---- concat on channels ------------------------------------------------- */

void odl_concat_forward_f32(int32_t batch, int32_t n_in, const float *const *x, const int32_t *c_in,
                            int32_t hw, float *y)
{
    size_t c_total = 0;
    for (int32_t i = 0; i < n_in; i++)
        c_total += (size_t)c_in[i];
    for (int32_t n = 0; n < batch; n++) {
        float *yn = y + (size_t)n * c_total * hw;
        for (int32_t i = 0; i < n_in; i++) {
            const size_t len = (size_t)c_in[i] * hw;
            memcpy(yn, x[i] + (size_t)n * len, sizeof(float) * len);
            yn += len;
        }
    }
}

void odl_concat_backward_f32(int32_t batch, int32_t n_in, const int32_t *c_in, int32_t hw,
                             const float *dy, float *const *dx)
{
    size_t c_total = 0;
    for (int32_t i = 0; i < n_in; i++)
        c_total += (size_t)c_in[i];
    for (int32_t n = 0; n < batch; n++) {
        const float *dyn = dy + (size_t)n * c_total * hw;
        for (int32_t i = 0; i < n_in; i++) {
            const size_t len = (size_t)c_in[i] * hw;
            if (dx[i]) /* an input that needs no gradient */
                memcpy(dx[i] + (size_t)n * len, dyn, sizeof(float) * len);
            dyn += len;
        }
    }
}

/* ---- constant pad --------------------------------------------------------
 * out_h = in_h + pad_h + pad_b; a negative pad crops (ONNX allows it). */

void odl_pad_forward_f32(const odl_window_dims *d, float value, const float *x, float *y)
{
    const size_t in_pl = (size_t)d->in_h * d->in_w, out_pl = (size_t)d->out_h * d->out_w;
    for (size_t pl = 0; pl < (size_t)d->batch * d->in_c; pl++)
        for (int32_t oh = 0; oh < d->out_h; oh++) {
            const int32_t ih = oh - d->pad_h;
            float *yr = y + pl * out_pl + (size_t)oh * d->out_w;
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                const int32_t iw = ow - d->pad_w;
                yr[ow] = ih >= 0 && ih < d->in_h && iw >= 0 && iw < d->in_w
                             ? x[pl * in_pl + (size_t)ih * d->in_w + iw]
                             : value;
            }
        }
}

void odl_pad_backward_f32(const odl_window_dims *d, const float *dy, float *dx)
{
    const size_t in_pl = (size_t)d->in_h * d->in_w, out_pl = (size_t)d->out_h * d->out_w;
    for (size_t pl = 0; pl < (size_t)d->batch * d->in_c; pl++)
        for (int32_t ih = 0; ih < d->in_h; ih++) {
            const int32_t oh = ih + d->pad_h;
            float *dxr = dx + pl * in_pl + (size_t)ih * d->in_w;
            for (int32_t iw = 0; iw < d->in_w; iw++) {
                const int32_t ow = iw + d->pad_w;
                dxr[iw] = oh >= 0 && oh < d->out_h && ow >= 0 && ow < d->out_w
                              ? dy[pl * out_pl + (size_t)oh * d->out_w + ow]
                              : 0.0f; /* cropped away */
            }
        }
}

void odl_accumulate_f32(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}
