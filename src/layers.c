/* FP32 layer kernels. The optimised paths are plain C written so GCC
 * vectorises them (axpy-shaped inner loops, `omp simd` reductions, enabled
 * by -fopenmp-simd without any OpenMP runtime); the `_ref` loops beside them
 * are the obvious definitions the tests hold them to. */
#include "odl/layers.h"

#include <float.h>
#include <string.h>

#if defined(_OPENMP) || defined(ODL_OMP_SIMD)
#define ODL_SIMD_REDUCE _Pragma("omp simd reduction(+:acc)")
#else
#define ODL_SIMD_REDUCE
#endif

/* ---- dense ------------------------------------------------------------- */

void odl_dense_forward_f32_ref(const odl_dense_dims *d, const float *x, const float *w,
                               const float *b, float *y)
{
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t o = 0; o < d->out; o++) {
            float acc = b ? b[o] : 0.0f;
            for (int32_t i = 0; i < d->in; i++)
                acc += x[(size_t)n * d->in + i] * w[(size_t)o * d->in + i];
            y[(size_t)n * d->out + o] = acc;
        }
}

void odl_dense_forward_f32(const odl_dense_dims *d, const float *x, const float *w,
                           const float *b, float *y)
{
    const int32_t in = d->in, out = d->out;
    for (int32_t n = 0; n < d->batch; n++) {
        const float *xn = x + (size_t)n * in;
        float *yn = y + (size_t)n * out;
        for (int32_t o = 0; o < out; o++) {
            const float *wo = w + (size_t)o * in;
            float acc = 0.0f;
            ODL_SIMD_REDUCE
            for (int32_t i = 0; i < in; i++)
                acc += xn[i] * wo[i];
            yn[o] = acc + (b ? b[o] : 0.0f);
        }
    }
}

void odl_dense_backward_f32_ref(const odl_dense_dims *d, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db)
{
    const int32_t in = d->in, out = d->out;
    if (dx)
        for (int32_t n = 0; n < d->batch; n++)
            for (int32_t i = 0; i < in; i++) {
                float acc = 0.0f;
                for (int32_t o = 0; o < out; o++)
                    acc += dy[(size_t)n * out + o] * w[(size_t)o * in + i];
                dx[(size_t)n * in + i] = acc;
            }
    if (dw)
        for (int32_t o = 0; o < out; o++)
            for (int32_t i = 0; i < in; i++) {
                float acc = 0.0f;
                for (int32_t n = 0; n < d->batch; n++)
                    acc += dy[(size_t)n * out + o] * x[(size_t)n * in + i];
                dw[(size_t)o * in + i] += acc;
            }
    if (db)
        for (int32_t o = 0; o < out; o++) {
            float acc = 0.0f;
            for (int32_t n = 0; n < d->batch; n++)
                acc += dy[(size_t)n * out + o];
            db[o] += acc;
        }
}

void odl_dense_backward_f32(const odl_dense_dims *d, const float *x, const float *w,
                            const float *dy, float *dx, float *dw, float *db)
{
    const int32_t in = d->in, out = d->out;
    for (int32_t n = 0; n < d->batch; n++) {
        const float *xn = x + (size_t)n * in;
        const float *dyn = dy + (size_t)n * out;
        if (dx) {
            float *dxn = dx + (size_t)n * in;
            memset(dxn, 0, sizeof(float) * (size_t)in);
            for (int32_t o = 0; o < out; o++) {
                const float g = dyn[o];
                const float *wo = w + (size_t)o * in;
                for (int32_t i = 0; i < in; i++)
                    dxn[i] += g * wo[i];
            }
        }
        if (dw)
            for (int32_t o = 0; o < out; o++) {
                const float g = dyn[o];
                if (g == 0.0f)
                    continue;
                float *dwo = dw + (size_t)o * in;
                for (int32_t i = 0; i < in; i++)
                    dwo[i] += g * xn[i];
            }
        if (db)
            for (int32_t o = 0; o < out; o++)
                db[o] += dyn[o];
    }
}

/* ---- window helpers ---------------------------------------------------- */

int32_t odl_window_out_size(int32_t in, int32_t k, int32_t stride, int32_t pad)
{
    if (in <= 0 || k <= 0 || stride <= 0 || pad < 0)
        return -1;
    int32_t span = in + 2 * pad - k;
    if (span < 0)
        return -1;
    return span / stride + 1;
}

static size_t in_plane(const odl_window_dims *d) { return (size_t)d->in_h * d->in_w; }
static size_t out_plane(const odl_window_dims *d) { return (size_t)d->out_h * d->out_w; }

/* ---- conv2d ------------------------------------------------------------ */

size_t odl_conv2d_scratch_floats(const odl_window_dims *d)
{
    size_t k = (size_t)d->in_c * d->k_h * d->k_w;
    return (k + 1) * out_plane(d);
}

void odl_conv2d_forward_f32_ref(const odl_window_dims *d, const float *x, const float *w,
                                const float *b, float *y)
{
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float acc = b ? b[co] : 0.0f;
                    for (int32_t ci = 0; ci < d->in_c; ci++)
                        for (int32_t kh = 0; kh < d->k_h; kh++)
                            for (int32_t kw = 0; kw < d->k_w; kw++) {
                                int32_t ih = oh * d->stride_h - d->pad_h + kh;
                                int32_t iw = ow * d->stride_w - d->pad_w + kw;
                                if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                    continue;
                                acc += x[(((size_t)n * d->in_c + ci) * d->in_h + ih) * d->in_w + iw] *
                                       w[(((size_t)co * d->in_c + ci) * d->k_h + kh) * d->k_w + kw];
                            }
                    y[(((size_t)n * d->out_c + co) * d->out_h + oh) * d->out_w + ow] = acc;
                }
}

/* col[k][p]: k = (ci, kh, kw), p = (oh, ow); zero where the window hangs
 * over the padding. */
static void im2col(const odl_window_dims *d, const float *xn, float *col)
{
    const int32_t oh_n = d->out_h, ow_n = d->out_w;
    for (int32_t ci = 0; ci < d->in_c; ci++) {
        const float *xc = xn + (size_t)ci * in_plane(d);
        for (int32_t kh = 0; kh < d->k_h; kh++)
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                float *row = col + (((size_t)ci * d->k_h + kh) * d->k_w + kw) * out_plane(d);
                for (int32_t oh = 0; oh < oh_n; oh++) {
                    int32_t ih = oh * d->stride_h - d->pad_h + kh;
                    float *r = row + (size_t)oh * ow_n;
                    if (ih < 0 || ih >= d->in_h) {
                        memset(r, 0, sizeof(float) * (size_t)ow_n);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * d->in_w;
                    if (d->stride_w == 1) {
                        int32_t off = kw - d->pad_w; /* iw = ow + off */
                        int32_t lo = off < 0 ? -off : 0;
                        int32_t hi = d->in_w - off;
                        if (hi > ow_n)
                            hi = ow_n;
                        for (int32_t ow = 0; ow < lo && ow < ow_n; ow++)
                            r[ow] = 0.0f;
                        for (int32_t ow = lo; ow < hi; ow++)
                            r[ow] = xr[ow + off];
                        for (int32_t ow = (hi > lo ? hi : lo); ow < ow_n; ow++)
                            r[ow] = 0.0f;
                    } else {
                        for (int32_t ow = 0; ow < ow_n; ow++) {
                            int32_t iw = ow * d->stride_w - d->pad_w + kw;
                            r[ow] = (iw < 0 || iw >= d->in_w) ? 0.0f : xr[iw];
                        }
                    }
                }
            }
    }
}

void odl_conv2d_forward_f32(const odl_window_dims *d, const float *x, const float *w,
                            const float *b, float *y, float *scratch)
{
    const size_t P = out_plane(d);
    const size_t K = (size_t)d->in_c * d->k_h * d->k_w;
    for (int32_t n = 0; n < d->batch; n++) {
        const float *xn = x + (size_t)n * d->in_c * in_plane(d);
        float *yn = y + (size_t)n * d->out_c * P;
        im2col(d, xn, scratch);
        for (int32_t co = 0; co < d->out_c; co++) {
            float *yr = yn + (size_t)co * P;
            const float bias = b ? b[co] : 0.0f;
            for (size_t p = 0; p < P; p++)
                yr[p] = bias;
            const float *wr = w + (size_t)co * K;
            for (size_t k = 0; k < K; k++) {
                const float a = wr[k];
                const float *cr = scratch + k * P;
                for (size_t p = 0; p < P; p++)
                    yr[p] += a * cr[p];
            }
        }
    }
}

void odl_conv2d_backward_f32_ref(const odl_window_dims *d, const float *x, const float *w,
                                 const float *dy, float *dx, float *dw, float *db)
{
    if (dx)
        memset(dx, 0, sizeof(float) * (size_t)d->batch * d->in_c * in_plane(d));
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float g = dy[(((size_t)n * d->out_c + co) * d->out_h + oh) * d->out_w + ow];
                    if (db)
                        db[co] += g;
                    for (int32_t ci = 0; ci < d->in_c; ci++)
                        for (int32_t kh = 0; kh < d->k_h; kh++)
                            for (int32_t kw = 0; kw < d->k_w; kw++) {
                                int32_t ih = oh * d->stride_h - d->pad_h + kh;
                                int32_t iw = ow * d->stride_w - d->pad_w + kw;
                                if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                    continue;
                                size_t xi = (((size_t)n * d->in_c + ci) * d->in_h + ih) * d->in_w + iw;
                                size_t wi = (((size_t)co * d->in_c + ci) * d->k_h + kh) * d->k_w + kw;
                                if (dw)
                                    dw[wi] += g * x[xi];
                                if (dx)
                                    dx[xi] += g * w[wi];
                            }
                }
}

void odl_conv2d_backward_f32(const odl_window_dims *d, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *db, float *scratch)
{
    const size_t P = out_plane(d);
    const size_t K = (size_t)d->in_c * d->k_h * d->k_w;
    float *col = scratch;
    float *drow = scratch + K * P; /* one row of d(col), P floats */
    for (int32_t n = 0; n < d->batch; n++) {
        const float *dyn = dy + (size_t)n * d->out_c * P;
        if (db)
            for (int32_t co = 0; co < d->out_c; co++) {
                const float *g = dyn + (size_t)co * P;
                float acc = 0.0f;
                ODL_SIMD_REDUCE
                for (size_t p = 0; p < P; p++)
                    acc += g[p];
                db[co] += acc;
            }
        if (dw) {
            im2col(d, x + (size_t)n * d->in_c * in_plane(d), col);
            for (int32_t co = 0; co < d->out_c; co++) {
                const float *g = dyn + (size_t)co * P;
                float *dwr = dw + (size_t)co * K;
                for (size_t k = 0; k < K; k++) {
                    const float *cr = col + k * P;
                    float acc = 0.0f;
                    ODL_SIMD_REDUCE
                    for (size_t p = 0; p < P; p++)
                        acc += g[p] * cr[p];
                    dwr[k] += acc;
                }
            }
        }
        if (dx) {
            float *dxn = dx + (size_t)n * d->in_c * in_plane(d);
            memset(dxn, 0, sizeof(float) * (size_t)d->in_c * in_plane(d));
            for (int32_t ci = 0; ci < d->in_c; ci++)
                for (int32_t kh = 0; kh < d->k_h; kh++)
                    for (int32_t kw = 0; kw < d->k_w; kw++) {
                        size_t k = ((size_t)ci * d->k_h + kh) * d->k_w + kw;
                        memset(drow, 0, sizeof(float) * P);
                        for (int32_t co = 0; co < d->out_c; co++) {
                            const float a = w[(size_t)co * K + k];
                            const float *g = dyn + (size_t)co * P;
                            for (size_t p = 0; p < P; p++)
                                drow[p] += a * g[p];
                        }
                        /* col2im for this row */
                        float *dxc = dxn + (size_t)ci * in_plane(d);
                        for (int32_t oh = 0; oh < d->out_h; oh++) {
                            int32_t ih = oh * d->stride_h - d->pad_h + kh;
                            if (ih < 0 || ih >= d->in_h)
                                continue;
                            float *dxr = dxc + (size_t)ih * d->in_w;
                            const float *dr = drow + (size_t)oh * d->out_w;
                            for (int32_t ow = 0; ow < d->out_w; ow++) {
                                int32_t iw = ow * d->stride_w - d->pad_w + kw;
                                if (iw >= 0 && iw < d->in_w)
                                    dxr[iw] += dr[ow];
                            }
                        }
                    }
        }
    }
}

/* ---- depthwise conv2d (direct; the loops are already the reference) ---- */

void odl_depthwise_forward_f32(const odl_window_dims *d, const float *x, const float *w,
                               const float *b, float *y)
{
    const int32_t mult = d->out_c / d->in_c;
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++) {
            const float *xc = x + ((size_t)n * d->in_c + co / mult) * in_plane(d);
            const float *wk = w + (size_t)co * d->k_h * d->k_w;
            float *yc = y + ((size_t)n * d->out_c + co) * out_plane(d);
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float acc = b ? b[co] : 0.0f;
                    for (int32_t kh = 0; kh < d->k_h; kh++) {
                        int32_t ih = oh * d->stride_h - d->pad_h + kh;
                        if (ih < 0 || ih >= d->in_h)
                            continue;
                        for (int32_t kw = 0; kw < d->k_w; kw++) {
                            int32_t iw = ow * d->stride_w - d->pad_w + kw;
                            if (iw >= 0 && iw < d->in_w)
                                acc += xc[(size_t)ih * d->in_w + iw] * wk[kh * d->k_w + kw];
                        }
                    }
                    yc[(size_t)oh * d->out_w + ow] = acc;
                }
        }
}

void odl_depthwise_backward_f32(const odl_window_dims *d, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db)
{
    const int32_t mult = d->out_c / d->in_c;
    if (dx)
        memset(dx, 0, sizeof(float) * (size_t)d->batch * d->in_c * in_plane(d));
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++) {
            size_t xoff = ((size_t)n * d->in_c + co / mult) * in_plane(d);
            const float *xc = x + xoff;
            const float *wk = w + (size_t)co * d->k_h * d->k_w;
            float *dwk = dw ? dw + (size_t)co * d->k_h * d->k_w : NULL;
            const float *gc = dy + ((size_t)n * d->out_c + co) * out_plane(d);
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float g = gc[(size_t)oh * d->out_w + ow];
                    if (db)
                        db[co] += g;
                    for (int32_t kh = 0; kh < d->k_h; kh++) {
                        int32_t ih = oh * d->stride_h - d->pad_h + kh;
                        if (ih < 0 || ih >= d->in_h)
                            continue;
                        for (int32_t kw = 0; kw < d->k_w; kw++) {
                            int32_t iw = ow * d->stride_w - d->pad_w + kw;
                            if (iw < 0 || iw >= d->in_w)
                                continue;
                            size_t xi = (size_t)ih * d->in_w + iw;
                            if (dwk)
                                dwk[kh * d->k_w + kw] += g * xc[xi];
                            if (dx)
                                dx[xoff + xi] += g * wk[kh * d->k_w + kw];
                        }
                    }
                }
        }
}

/* ---- pooling ----------------------------------------------------------- */

/* Index (within the input plane) of the first maximum of one window, or -1
 * when the window lies wholly in padding (cannot happen for valid dims). */
static int64_t window_argmax(const odl_window_dims *d, const float *xc, int32_t oh, int32_t ow)
{
    int64_t best = -1;
    float bv = -FLT_MAX;
    for (int32_t kh = 0; kh < d->k_h; kh++) {
        int32_t ih = oh * d->stride_h - d->pad_h + kh;
        if (ih < 0 || ih >= d->in_h)
            continue;
        for (int32_t kw = 0; kw < d->k_w; kw++) {
            int32_t iw = ow * d->stride_w - d->pad_w + kw;
            if (iw < 0 || iw >= d->in_w)
                continue;
            size_t i = (size_t)ih * d->in_w + iw;
            if (best < 0 || xc[i] > bv) {
                bv = xc[i];
                best = (int64_t)i;
            }
        }
    }
    return best;
}

void odl_maxpool_forward_f32(const odl_window_dims *d, const float *x, float *y)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * in_plane(d);
        float *yc = y + pl * out_plane(d);
        if (d->k_h == 2 && d->k_w == 2 && d->stride_h == 2 && d->stride_w == 2 &&
            d->pad_h == 0 && d->pad_w == 0) {
            /* the common case, without bounds checks */
            for (int32_t oh = 0; oh < d->out_h; oh++) {
                const float *r0 = xc + (size_t)(2 * oh) * d->in_w;
                const float *r1 = r0 + d->in_w;
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], e = r1[2 * ow + 1];
                    float m = a;
                    if (b > m) m = b;
                    if (c > m) m = c;
                    if (e > m) m = e;
                    yc[(size_t)oh * d->out_w + ow] = m;
                }
            }
            continue;
        }
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                int64_t i = window_argmax(d, xc, oh, ow);
                yc[(size_t)oh * d->out_w + ow] = i >= 0 ? xc[i] : 0.0f;
            }
    }
}

void odl_maxpool_backward_f32(const odl_window_dims *d, const float *x, const float *dy, float *dx)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    memset(dx, 0, sizeof(float) * planes * in_plane(d));
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * in_plane(d);
        const float *gc = dy + pl * out_plane(d);
        float *dxc = dx + pl * in_plane(d);
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                int64_t i = window_argmax(d, xc, oh, ow);
                if (i >= 0)
                    dxc[i] += gc[(size_t)oh * d->out_w + ow];
            }
    }
}

static int32_t window_count(const odl_window_dims *d, int32_t oh, int32_t ow)
{
    int32_t h0 = oh * d->stride_h - d->pad_h, w0 = ow * d->stride_w - d->pad_w;
    int32_t h1 = h0 + d->k_h, w1 = w0 + d->k_w;
    if (h0 < 0) h0 = 0;
    if (w0 < 0) w0 = 0;
    if (h1 > d->in_h) h1 = d->in_h;
    if (w1 > d->in_w) w1 = d->in_w;
    return (h1 - h0) * (w1 - w0);
}

void odl_avgpool_forward_f32(const odl_window_dims *d, const float *x, float *y)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * in_plane(d);
        float *yc = y + pl * out_plane(d);
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                float acc = 0.0f;
                for (int32_t kh = 0; kh < d->k_h; kh++) {
                    int32_t ih = oh * d->stride_h - d->pad_h + kh;
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    for (int32_t kw = 0; kw < d->k_w; kw++) {
                        int32_t iw = ow * d->stride_w - d->pad_w + kw;
                        if (iw >= 0 && iw < d->in_w)
                            acc += xc[(size_t)ih * d->in_w + iw];
                    }
                }
                yc[(size_t)oh * d->out_w + ow] = acc / (float)window_count(d, oh, ow);
            }
    }
}

void odl_avgpool_backward_f32(const odl_window_dims *d, const float *dy, float *dx)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    memset(dx, 0, sizeof(float) * planes * in_plane(d));
    for (size_t pl = 0; pl < planes; pl++) {
        const float *gc = dy + pl * out_plane(d);
        float *dxc = dx + pl * in_plane(d);
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                float g = gc[(size_t)oh * d->out_w + ow] / (float)window_count(d, oh, ow);
                for (int32_t kh = 0; kh < d->k_h; kh++) {
                    int32_t ih = oh * d->stride_h - d->pad_h + kh;
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    for (int32_t kw = 0; kw < d->k_w; kw++) {
                        int32_t iw = ow * d->stride_w - d->pad_w + kw;
                        if (iw >= 0 && iw < d->in_w)
                            dxc[(size_t)ih * d->in_w + iw] += g;
                    }
                }
            }
    }
}

void odl_gap_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *x, float *y)
{
    for (size_t pl = 0; pl < (size_t)batch * c; pl++) {
        const float *xc = x + pl * hw;
        float acc = 0.0f;
        for (int32_t i = 0; i < hw; i++)
            acc += xc[i];
        y[pl] = acc / (float)hw;
    }
}

void odl_gap_backward_f32(int32_t batch, int32_t c, int32_t hw, const float *dy, float *dx)
{
    for (size_t pl = 0; pl < (size_t)batch * c; pl++) {
        float g = dy[pl] / (float)hw;
        for (int32_t i = 0; i < hw; i++)
            dx[pl * hw + i] = g;
    }
}

/* ---- elementwise ------------------------------------------------------- */

void odl_relu_forward_f32(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void odl_relu_backward_f32(size_t n, const float *y, const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void odl_relu6_forward_f32(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

void odl_relu6_backward_f32(size_t n, const float *y, const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f;
}

void odl_dropout_forward_f32(size_t n, float p, odl_rng *r, const float *x, float *y)
{
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++)
        y[i] = odl_rng_uniform(r) < p ? 0.0f : x[i] * scale;
}

void odl_dropout_backward_f32(size_t n, float p, odl_rng *r_at_forward, const float *dy, float *dx)
{
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    odl_rng r = *r_at_forward;
    for (size_t i = 0; i < n; i++)
        dx[i] = odl_rng_uniform(&r) < p ? 0.0f : dy[i] * scale;
}
