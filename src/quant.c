/* INT8 inference for a model's frozen prefix (docs/quant.md).
 *
 * Integer kernels (int8 data, int32 accumulators, fixed-point requantisation)
 * with plain reference loops; calibration over an FP32 model; quantisation of
 * its weights; the QNT/QLAY chunks of a quantised .odl file. No malloc, no
 * stdio, no global mutable state; every length read from a file is checked. */
#include "odl/quant.h"
#include "bytes_le.h"
#include "file_topo.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "odl's quantised chunks assume a little-endian target"
#endif

#if defined(_OPENMP) || defined(ODL_OMP_SIMD)
#define ODL_SIMD_REDUCE _Pragma("omp simd reduction(+:acc)")
#else
#define ODL_SIMD_REDUCE
#endif

/* ---- scalar helpers ------------------------------------------------------ */

static int32_t clamp_i32(int64_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

odl_qparams odl_q_choose_params(float fmin, float fmax)
{
    odl_qparams p = {1.0f, 0};
    if (!isfinite(fmin) || !isfinite(fmax))
        return p;
    const double rmin = fmin < 0.0f ? (double)fmin : 0.0, rmax = fmax > 0.0f ? (double)fmax : 0.0;
    if (!(rmax - rmin > 0.0))
        return p;
    const float fs = (float)((rmax - rmin) / 255.0);
    if (!(fs >= FLT_MIN) || !isfinite(fs))
        return p;
    const double s = (double)fs;
    /* TFLite's ChooseQuantizationParams: the zero point from whichever end
     * of the range loses less precision, then rounded into [qmin, qmax]. */
    const double zp_min = -128.0 - rmin / s, zp_max = 127.0 - rmax / s;
    const double err_min = 128.0 + fabs(rmin / s), err_max = 127.0 + fabs(rmax / s);
    const double zp = err_min < err_max ? zp_min : zp_max;
    p.scale = fs;
    p.zero_point = zp < -128.0 ? -128 : zp > 127.0 ? 127 : (int32_t)round(zp);
    return p;
}

int8_t odl_q_quantize(float x, odl_qparams p)
{
    /* single precision, as TFLite's Quantize: a device's FPU has no double */
    const float v = x / p.scale;
    if (v != v)
        return (int8_t)p.zero_point;
    const float r = roundf(v) + (float)p.zero_point;
    return (int8_t)(r < -128.0f ? -128 : r > 127.0f ? 127 : (int32_t)r);
}

float odl_q_dequantize(int8_t q, odl_qparams p)
{
    return p.scale * (float)((int32_t)q - p.zero_point);
}

void odl_q_quantize_multiplier(double m, int32_t *mult, int32_t *shift)
{
    *mult = 0;
    *shift = 0;
    if (!(m > 0.0))
        return;
    if (!isfinite(m)) {
        *mult = INT32_MAX;
        *shift = 30;
        return;
    }
    int e = 0;
    const double f = frexp(m, &e); /* m = f · 2^e, f in [0.5, 1) */
    int64_t qf = (int64_t)round(f * 2147483648.0);
    if (qf == ((int64_t)1 << 31)) {
        qf /= 2;
        e++;
    }
    if (e < -31)
        return;
    if (e > 30) {
        qf = INT32_MAX;
        e = 30;
    }
    *mult = (int32_t)qf;
    *shift = (int32_t)e;
}

/* gemmlowp's SaturatingRoundingDoublingHighMul: round(a·b / 2^31), ties
 * toward +inf, the single overflowing case saturated. */
static int32_t srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp's RoundingDivideByPOT: round(x / 2^e), ties away from zero. The
 * floor shift is written without right-shifting a negative number. */
static int32_t rdbpot(int32_t x, int32_t e)
{
    if (e <= 0)
        return x;
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t rem = x & mask;
    const int32_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    const int32_t fl = x >= 0 ? (x >> e) : ~(~x >> e);
    return fl + (rem > thr ? 1 : 0);
}

int32_t odl_q_multiply(int32_t x, int32_t mult, int32_t shift)
{
    if (shift > 0) {
        const int64_t v = (int64_t)x * ((int64_t)1 << (shift > 31 ? 31 : shift));
        x = clamp_i32(v, INT32_MIN, INT32_MAX);
    }
    return rdbpot(srdhm(x, mult), shift > 0 ? 0 : (shift < -31 ? 31 : -shift));
}

static int32_t bias_of(const odl_qrequant *r, int32_t c)
{
    return r->bias ? r->bias[c] : 0;
}

static inline int8_t requant(int32_t acc, int32_t c, const odl_qrequant *r)
{
    const int64_t v = (int64_t)odl_q_multiply(acc, r->mult[c], r->shift[c]) + r->out_zp;
    return (int8_t)clamp_i32(v, r->act_min, r->act_max);
}

/* ---- dense --------------------------------------------------------------- */

void odl_qdense_s8_ref(const odl_dense_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r,
                       int8_t *y)
{
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t o = 0; o < d->out; o++) {
            int32_t acc = r->bias ? r->bias[o] : 0;
            for (int32_t i = 0; i < d->in; i++)
                acc += ((int32_t)x[(size_t)n * d->in + i] - r->in_zp) * (int32_t)w[(size_t)o * d->in + i];
            y[(size_t)n * d->out + o] = requant(acc, o, r);
        }
}

void odl_qdense_s8(const odl_dense_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r, int8_t *y)
{
#if defined(ODL_USE_DSP)
    odl_qdense_s8_dsp(d, x, w, r, y);
    return;
#endif
    const int32_t in = d->in, out = d->out, zp = r->in_zp;
    for (int32_t n = 0; n < d->batch; n++) {
        const int8_t *xn = x + (size_t)n * in;
        int8_t *yn = y + (size_t)n * out;
        for (int32_t o = 0; o < out; o++) {
            const int8_t *wo = w + (size_t)o * in;
            int32_t acc = 0;
            ODL_SIMD_REDUCE
            for (int32_t i = 0; i < in; i++)
                acc += (int32_t)(int16_t)((int16_t)xn[i] - (int16_t)zp) * (int32_t)wo[i];
            yn[o] = requant(acc + bias_of(r, o), o, r);
        }
    }
}

/* ---- conv2d -------------------------------------------------------------- */

static size_t plane_in(const odl_window_dims *d) { return (size_t)d->in_h * d->in_w; }
static size_t plane_out(const odl_window_dims *d) { return (size_t)d->out_h * d->out_w; }

static int32_t n_groups(const odl_window_dims *d) { return d->groups > 0 ? d->groups : 1; }

/* Output pixels unfolded at a time (im2col): the scratch is QCONV_COLS
 * columns of K = (in_c / groups)·k_h·k_w int16 values, K contiguous
 * (CMSIS-NN's layout: 288 bytes for a 3x3 conv over 8 channels), not the
 * whole plane. */
#define QCONV_COLS 2

size_t odl_qconv2d_scratch_bytes(const odl_window_dims *d)
{
    const size_t k = (size_t)(d->in_c / n_groups(d)) * d->k_h * d->k_w;
    return (k * QCONV_COLS * sizeof(int16_t) + 3u) & ~(size_t)3u;
}

void odl_qconv2d_s8_ref(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r,
                        int8_t *y)
{
    const int32_t g = d->groups > 0 ? d->groups : 1, cg = d->in_c / g, og = d->out_c / g;
    const int32_t dh = d->dil_h > 0 ? d->dil_h : 1, dw = d->dil_w > 0 ? d->dil_w : 1;
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    int32_t acc = r->bias ? r->bias[co] : 0;
                    for (int32_t cj = 0; cj < cg; cj++)
                        for (int32_t kh = 0; kh < d->k_h; kh++)
                            for (int32_t kw = 0; kw < d->k_w; kw++) {
                                int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                                int32_t iw = ow * d->stride_w - d->pad_w + kw * dw;
                                if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                    continue;
                                const int32_t ci = (co / og) * cg + cj;
                                int32_t xv = x[(((size_t)n * d->in_c + ci) * d->in_h + ih) * d->in_w + iw];
                                int32_t wv = w[(((size_t)co * cg + cj) * d->k_h + kh) * d->k_w + kw];
                                acc += (xv - r->in_zp) * wv;
                            }
                    y[(((size_t)n * d->out_c + co) * d->out_h + oh) * d->out_w + ow] = requant(acc, co, r);
                }
}

/* col[k] = x − in_zp (int16) of output pixel (oh, ow), 0 over the padding;
 * k = (cj, kh, kw) over the channels [c0, c0 + cg) of one group. */
static void im2col_pixel_s8(const odl_window_dims *d, const int8_t *xn, int32_t zp, int32_t c0, int32_t cg,
                            int32_t oh, int32_t ow, int16_t *col)
{
    const int32_t dh = d->dil_h > 0 ? d->dil_h : 1, dw = d->dil_w > 0 ? d->dil_w : 1;
    for (int32_t cj = 0; cj < cg; cj++) {
        const int8_t *xc = xn + (size_t)(c0 + cj) * plane_in(d);
        for (int32_t kh = 0; kh < d->k_h; kh++) {
            const int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
            if (ih < 0 || ih >= d->in_h) {
                memset(col, 0, sizeof(int16_t) * (size_t)d->k_w);
                col += d->k_w;
                continue;
            }
            const int8_t *xr = xc + (size_t)ih * d->in_w;
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                const int32_t iw = ow * d->stride_w - d->pad_w + kw * dw;
                *col++ = (iw < 0 || iw >= d->in_w) ? (int16_t)0 : (int16_t)((int32_t)xr[iw] - zp);
            }
        }
    }
}

void odl_qconv2d_s8(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r, int8_t *y,
                    void *scratch)
{
#if defined(ODL_USE_DSP)
    odl_qconv2d_s8_dsp(d, x, w, r, y, scratch);
    return;
#endif
    const size_t P = plane_out(d);
    const int32_t g = n_groups(d), cg = d->in_c / g, og = d->out_c / g;
    const size_t K = (size_t)cg * d->k_h * d->k_w;
    int16_t *col = scratch;
    for (int32_t n = 0; n < d->batch; n++) {
        const int8_t *xn = x + (size_t)n * d->in_c * plane_in(d);
        int8_t *yn = y + (size_t)n * d->out_c * P;
        for (size_t p0 = 0; p0 < P; p0 += QCONV_COLS) {
            const size_t np = P - p0 < QCONV_COLS ? P - p0 : QCONV_COLS;
            for (int32_t gi = 0; gi < g; gi++) {
                /* (oh, ow) by a division: one udiv on a Cortex-M3/M4, fewer
                 * instructions there than carrying counters through the loop */
                for (size_t j = 0; j < np; j++) {
                    const size_t pj = p0 + j;
                    im2col_pixel_s8(d, xn, r->in_zp, gi * cg, cg, (int32_t)(pj / (size_t)d->out_w),
                                    (int32_t)(pj % (size_t)d->out_w), col + j * K);
                }
                for (int32_t co = gi * og; co < (gi + 1) * og; co++) {
                    const int8_t *wc = w + (size_t)co * K;
                    const int32_t b = bias_of(r, co);
                    for (size_t j = 0; j < np; j++) {
                        const int16_t *cj = col + j * K;
                        int32_t acc = b;
                        for (size_t k = 0; k < K; k++)
                            acc += (int32_t)wc[k] * cj[k];
                        yn[(size_t)co * P + p0 + j] = requant(acc, co, r);
                    }
                }
            }
        }
    }
}

/* ---- depthwise ----------------------------------------------------------- */

void odl_qdepthwise_s8_ref(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r,
                           int8_t *y)
{
    const int32_t mult = d->out_c / d->in_c;
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t o = 0; o < d->out_c; o++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    const int32_t ci = o / mult;
                    int32_t acc = r->bias ? r->bias[o] : 0;
                    for (int32_t kh = 0; kh < d->k_h; kh++)
                        for (int32_t kw = 0; kw < d->k_w; kw++) {
                            int32_t ih = oh * d->stride_h - d->pad_h + kh * (d->dil_h > 0 ? d->dil_h : 1);
                            int32_t iw = ow * d->stride_w - d->pad_w + kw * (d->dil_w > 0 ? d->dil_w : 1);
                            if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                continue;
                            int32_t xv = x[(((size_t)n * d->in_c + ci) * d->in_h + ih) * d->in_w + iw];
                            int32_t wv = w[((size_t)o * d->k_h + kh) * d->k_w + kw];
                            acc += (xv - r->in_zp) * wv;
                        }
                    y[(((size_t)n * d->out_c + o) * d->out_h + oh) * d->out_w + ow] = requant(acc, o, r);
                }
}

/* The valid kernel rows (or columns) of an output position, computed once,
 * so the inner loops carry no bounds checks: kernel taps lo..hi-1 read the
 * input at start + lo .. start + hi - 1. */
typedef struct span {
    int32_t lo, hi, start;
} span;

static span window_span(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t in)
{
    span s;
    s.start = o * stride - pad;
    s.lo = s.start < 0 ? -s.start : 0;
    s.hi = in - s.start < k ? in - s.start : k;
    return s;
}

static span row_span(const odl_window_dims *d, int32_t oh)
{
    return window_span(oh, d->stride_h, d->pad_h, d->k_h, d->in_h);
}

static span col_span(const odl_window_dims *d, int32_t ow)
{
    return window_span(ow, d->stride_w, d->pad_w, d->k_w, d->in_w);
}

void odl_qdepthwise_s8(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r,
                       int8_t *y)
{
#if defined(ODL_USE_DSP)
    if (odl_qdepthwise_s8_dsp(d, x, w, r, y))
        return;
#endif
    if ((d->dil_h > 1) || (d->dil_w > 1)) { /* dilated taps are not contiguous: the plain loop */
        odl_qdepthwise_s8_ref(d, x, w, r, y);
        return;
    }
    const int32_t mult = d->out_c / d->in_c, zp = r->in_zp;
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t o = 0; o < d->out_c; o++) {
            const int8_t *xc = x + ((size_t)n * d->in_c + o / mult) * plane_in(d);
            const int8_t *wo = w + (size_t)o * d->k_h * d->k_w;
            int8_t *yc = y + ((size_t)n * d->out_c + o) * plane_out(d);
            const int32_t b = bias_of(r, o);
            for (int32_t oh = 0; oh < d->out_h; oh++) {
                const span rs = row_span(d, oh);
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    const span cs = col_span(d, ow);
                    int32_t acc = b;
                    for (int32_t kh = rs.lo; kh < rs.hi; kh++) {
                        const int8_t *xr = xc + (size_t)(rs.start + kh) * d->in_w + cs.start;
                        const int8_t *wr = wo + (size_t)kh * d->k_w;
                        for (int32_t kw = cs.lo; kw < cs.hi; kw++)
                            acc += ((int32_t)xr[kw] - zp) * (int32_t)wr[kw];
                    }
                    yc[(size_t)oh * d->out_w + ow] = requant(acc, o, r);
                }
            }
        }
}

/* ---- pools ---------------------------------------------------------------- */

void odl_qmaxpool_s8_ref(const odl_window_dims *d, const int8_t *x, int8_t *y)
{
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t c = 0; c < d->in_c; c++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    int32_t m = -129;
                    for (int32_t kh = 0; kh < d->k_h; kh++)
                        for (int32_t kw = 0; kw < d->k_w; kw++) {
                            int32_t ih = oh * d->stride_h - d->pad_h + kh;
                            int32_t iw = ow * d->stride_w - d->pad_w + kw;
                            if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                continue;
                            int32_t v = x[(((size_t)n * d->in_c + c) * d->in_h + ih) * d->in_w + iw];
                            if (v > m)
                                m = v;
                        }
                    y[(((size_t)n * d->in_c + c) * d->out_h + oh) * d->out_w + ow] = (int8_t)(m < -128 ? -128 : m);
                }
}

void odl_qmaxpool_s8(const odl_window_dims *d, const int8_t *x, int8_t *y)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const int8_t *xc = x + pl * plane_in(d);
        int8_t *yc = y + pl * plane_out(d);
        if (d->k_h == 2 && d->k_w == 2 && d->stride_h == 2 && d->stride_w == 2 && d->pad_h == 0 && d->pad_w == 0 &&
            2 * d->out_h <= d->in_h && 2 * d->out_w <= d->in_w) {
#if defined(ODL_USE_DSP)
            odl_qmaxpool2x2_s8_dsp(d, x, y); /* every plane */
            return;
#endif
            for (int32_t oh = 0; oh < d->out_h; oh++) {
                const int8_t *r0 = xc + (size_t)(2 * oh) * d->in_w, *r1 = r0 + d->in_w;
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    int8_t a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], e = r1[2 * ow + 1];
                    int8_t m = a > b ? a : b;
                    int8_t m2 = c > e ? c : e;
                    yc[(size_t)oh * d->out_w + ow] = m > m2 ? m : m2;
                }
            }
            continue;
        }
        for (int32_t oh = 0; oh < d->out_h; oh++) {
            const span rs = row_span(d, oh);
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                const span cs = col_span(d, ow);
                int32_t m = -128;
                for (int32_t kh = rs.lo; kh < rs.hi; kh++)
                    for (int32_t kw = cs.lo; kw < cs.hi; kw++) {
                        const int32_t v = xc[(size_t)(rs.start + kh) * d->in_w + cs.start + kw];
                        m = v > m ? v : m;
                    }
                yc[(size_t)oh * d->out_w + ow] = (int8_t)m;
            }
        }
    }
}

/* Integer division rounded half away from zero (TFLite's average pool). */
static int64_t div_round(int64_t a, int32_t b)
{
    return a >= 0 ? (a + b / 2) / b : (a - b / 2) / b;
}

/* Cells an average divides by: the valid ones, or with count_include_pad
 * also those in the padding but never beyond it (ceil mode), as the FP32
 * kernel. */
static int32_t taps_in(int32_t start, int32_t k, int32_t lo, int32_t hi)
{
    const int32_t a = start > lo ? start : lo, b = start + k < hi ? start + k : hi;
    return b > a ? b - a : 0;
}

static int32_t pool_count(const odl_window_dims *d, int32_t oh, int32_t ow)
{
    const int32_t h0 = oh * d->stride_h - d->pad_h, w0 = ow * d->stride_w - d->pad_w;
    if (d->flags & ODL_NODE_COUNT_PAD)
        return taps_in(h0, d->k_h, -d->pad_h, d->in_h + d->pad_b) * taps_in(w0, d->k_w, -d->pad_w, d->in_w + d->pad_r);
    return taps_in(h0, d->k_h, 0, d->in_h) * taps_in(w0, d->k_w, 0, d->in_w);
}

void odl_qavgpool_s8_ref(const odl_window_dims *d, const int8_t *x, int8_t *y)
{
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t c = 0; c < d->in_c; c++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    int32_t acc = 0, cnt = 0;
                    for (int32_t kh = 0; kh < d->k_h; kh++)
                        for (int32_t kw = 0; kw < d->k_w; kw++) {
                            int32_t ih = oh * d->stride_h - d->pad_h + kh;
                            int32_t iw = ow * d->stride_w - d->pad_w + kw;
                            if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                continue;
                            acc += x[(((size_t)n * d->in_c + c) * d->in_h + ih) * d->in_w + iw];
                            cnt++;
                        }
                    if (d->flags & ODL_NODE_COUNT_PAD)
                        cnt = pool_count(d, oh, ow);
                    y[(((size_t)n * d->in_c + c) * d->out_h + oh) * d->out_w + ow] =
                        (int8_t)clamp_i32(cnt ? div_round(acc, cnt) : 0, -128, 127);
                }
}

/* Σ of n int8 (n < 2^24: the sum fits int32). */
static int32_t sum_s8(const int8_t *x, int32_t n)
{
#if defined(ODL_USE_DSP)
    return odl_qsum_s8_dsp(x, (size_t)n);
#else
    int32_t acc = 0;
    for (int32_t i = 0; i < n; i++)
        acc += x[i];
    return acc;
#endif
}

/* div_round in 32 bits (no 64-bit division on a 32-bit core): |a| + b / 2
 * < 2^31 as |a| ≤ 128 · cells and b ≤ the window's cells < 2^23. */
static int32_t div_round32(int32_t a, int32_t b)
{
    return a >= 0 ? (a + b / 2) / b : (a - b / 2) / b;
}

void odl_qavgpool_s8(const odl_window_dims *d, const int8_t *x, int8_t *y)
{
    if ((int64_t)d->k_h * d->k_w >= ((int64_t)1 << 23)) { /* sums could pass int32 */
        odl_qavgpool_s8_ref(d, x, y);
        return;
    }
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const int8_t *xc = x + pl * plane_in(d);
        int8_t *yc = y + pl * plane_out(d);
        for (int32_t oh = 0; oh < d->out_h; oh++) {
            const span rs = row_span(d, oh);
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                const span cs = col_span(d, ow);
                int32_t acc = 0;
                if (rs.hi > rs.lo && cs.hi > cs.lo) {
                    const int8_t *x0 = xc + (size_t)(rs.start + rs.lo) * d->in_w + cs.start + cs.lo;
                    if (cs.hi - cs.lo == d->in_w) /* whole rows: one run of bytes */
                        acc = sum_s8(x0, (rs.hi - rs.lo) * d->in_w);
                    else
                        for (int32_t kh = rs.lo; kh < rs.hi; kh++, x0 += d->in_w)
                            acc += sum_s8(x0, cs.hi - cs.lo);
                }
                const int32_t cnt = (d->flags & ODL_NODE_COUNT_PAD) ? pool_count(d, oh, ow)
                                    : (rs.hi > rs.lo && cs.hi > cs.lo) ? (rs.hi - rs.lo) * (cs.hi - cs.lo) : 0;
                yc[(size_t)oh * d->out_w + ow] = (int8_t)clamp_i32(cnt > 0 ? div_round32(acc, cnt) : 0, -128, 127);
            }
        }
    }
}

void odl_qgap_s8_ref(int32_t batch, int32_t c, int32_t hw, const int8_t *x, int8_t *y)
{
    for (int32_t n = 0; n < batch; n++)
        for (int32_t k = 0; k < c; k++) {
            int64_t acc = 0;
            for (int32_t i = 0; i < hw; i++)
                acc += x[((size_t)n * c + k) * hw + i];
            /* |acc| < 2^33 but the mean fits int8 */
            int64_t q = acc >= 0 ? (acc + hw / 2) / hw : (acc - hw / 2) / hw;
            y[(size_t)n * c + k] = (int8_t)clamp_i32(q, -128, 127);
        }
}

void odl_qgap_s8(int32_t batch, int32_t c, int32_t hw, const int8_t *x, int8_t *y)
{
    const size_t planes = (size_t)batch * c;
    for (size_t pl = 0; pl < planes; pl++) {
        const int8_t *xp = x + pl * (size_t)hw;
        int64_t acc = 0;
        for (int32_t i = 0; i < hw; i++)
            acc += xp[i];
        y[pl] = (int8_t)clamp_i32(div_round(acc, hw), -128, 127);
    }
}

void odl_qclamp_s8(size_t n, const int8_t *x, int32_t lo, int32_t hi, int8_t *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (int8_t)clamp_i32(x[i], lo, hi);
}

/* ---- the quantised model ------------------------------------------------- */

#define QEX_MAX (2 * ODL_NODE_MAX_IN) /* int32 requantisation values of one node */
#define QLUT 256

typedef struct qnode {
    odl_layer_shape in, out;   /* in: input 0's shape */
    int32_t b_c, b_hw;         /* add/mul: the second operand's channels and plane */
    odl_qparams out_q;         /* output parameters */
    int32_t fused;             /* activation type (relu, relu6, clip) folded into this node's clamp, else 0 */
    int32_t fused_away;        /* 1: this activation runs inside the node before */
    int32_t act_min, act_max;
    int32_t n_ch;              /* output channels with weights (0: none) */
    size_t n_w;
    int8_t *w;
    int32_t *bias, *mult, *shift;
    float *w_scale;
    int32_t n_ex;              /* values in ex (add 7, mul 2, concat 2 per input, mean 2, pad 1) */
    int32_t ex[QEX_MAX];
    int8_t *lut;               /* activations: room for a 256-entry table */
    int32_t use_lut;           /* 1: the table is in use (relu/relu6 with new parameters clamp otherwise) */
} qnode;

struct odl_qmodel {
    odl_model_desc desc;       /* the prefix's nodes [0, boundary), in the arena */
    int32_t boundary, max_batch;
    odl_layer_shape in_shape;
    odl_qparams in_q;
    qnode *l;                  /* boundary entries */
    odl_tensor_slot *slots;    /* boundary + 1: where each tensor lives (odl_desc_plan_tensors) */
    int8_t *input;             /* the quantised input, max_batch samples */
    int8_t *act;               /* the activation region */
    void *conv_scratch;
    int32_t ready;             /* 1 once quantised, loaded or given parameters */
    int32_t in_place;          /* parameters and tables point into the caller's file (read only), not the arena */
};

static int has_params(int32_t t)
{
    return t == ODL_LAYER_DENSE || t == ODL_LAYER_CONV2D || t == ODL_LAYER_DEPTHWISE || t == ODL_LAYER_BATCHNORM;
}

static int is_lut_type(int32_t t)
{
    return t == ODL_LAYER_SIGMOID || t == ODL_LAYER_HARD_SIGMOID || t == ODL_LAYER_HARD_SWISH ||
           t == ODL_LAYER_TANH || t == ODL_LAYER_LEAKY_RELU || t == ODL_LAYER_CLIP || t == ODL_LAYER_RELU ||
           t == ODL_LAYER_RELU6;
}

/* Nodes whose output has their input's parameters (the bytes only move). */
static int keeps_params(int32_t t)
{
    return t == ODL_LAYER_MAXPOOL || t == ODL_LAYER_AVGPOOL || t == ODL_LAYER_FLATTEN || t == ODL_LAYER_RESHAPE ||
           t == ODL_LAYER_DROPOUT || t == ODL_LAYER_PAD;
}

static size_t reduction(const odl_node_desc *l, const odl_layer_shape *in)
{
    switch (l->type) {
    case ODL_LAYER_DENSE: return in->size;
    case ODL_LAYER_CONV2D: return (size_t)(in->c / (l->groups > 0 ? l->groups : 1)) * l->k_h * l->k_w;
    case ODL_LAYER_DEPTHWISE: return (size_t)l->k_h * l->k_w;
    case ODL_LAYER_BATCHNORM: return 1;
    }
    return 0;
}

static odl_layer_shape input_shape(const odl_model_desc *desc)
{
    const odl_layer_shape in = {desc->in_c, desc->in_h, desc->in_w, (size_t)desc->in_c * desc->in_h * desc->in_w, 0, 0};
    return in;
}

/* Whether the INT8 path runs node l, and if not, why. */
static const char *unsupported_node(const odl_node_desc *l)
{
    switch (l->type) {
    case ODL_LAYER_ADAPTER:
        return "the adapter has no INT8 kernel (keep it in the FP32 part)";
    case ODL_LAYER_MAXPOOL:
    case ODL_LAYER_AVGPOOL:
        if (l->dil_h != 1 || l->dil_w != 1)
            return "a dilated pool has no INT8 kernel";
        break;
    }
    return NULL;
}

/* The node the format-1 INT8 chunks could describe: the original operators
 * in a sequential prefix, symmetric padding, no groups, dilation or flags.
 * Prefixes made only of these are written as format 1, byte for byte. */
static int v1_node(const odl_node_desc *l, int32_t i)
{
    switch (l->type) {
    case ODL_LAYER_DENSE:
    case ODL_LAYER_CONV2D:
    case ODL_LAYER_DEPTHWISE:
    case ODL_LAYER_MAXPOOL:
    case ODL_LAYER_AVGPOOL:
    case ODL_LAYER_GAP:
    case ODL_LAYER_RELU:
    case ODL_LAYER_RELU6:
    case ODL_LAYER_FLATTEN:
    case ODL_LAYER_DROPOUT:
        break;
    default:
        return 0;
    }
    return l->n_in == 1 && l->in[0] == i && l->groups == 1 && l->dil_h == 1 && l->dil_w == 1 &&
           l->pad_b == l->pad_t && l->pad_r == l->pad_l && !l->flags;
}

static odl_window_dims wdims(const odl_node_desc *l, const odl_layer_shape *in, const odl_layer_shape *out,
                             int32_t batch)
{
    odl_window_dims w = odl_window_dims_simple(batch, in->c, in->h, in->w, out->c, out->h, out->w, l->k_h, l->k_w,
                                               l->stride_h, l->stride_w, l->pad_t, l->pad_l);
    w.pad_b = l->pad_b;
    w.pad_r = l->pad_r;
    w.dil_h = l->dil_h;
    w.dil_w = l->dil_w;
    w.groups = l->type == ODL_LAYER_CONV2D ? l->groups : 1;
    w.flags = (uint32_t)l->flags;
    return w;
}

/* A view of desc's first `boundary` nodes (sharing them, read only). */
static odl_model_desc prefix_of(const odl_model_desc *desc, int32_t boundary)
{
    odl_model_desc pd = *desc;
    pd.n_layers = boundary;
    pd.softmax_output = 0;
    return pd;
}

/* ---- building (one code path for the plan and the arena) ---- */

typedef struct check_ctx {
    const odl_model_desc *desc;
    odl_qmodel *q;
    odl_arena *a;
    size_t scratch;
    int32_t in_place; /* parameters and tables stay in the file: none in the arena */
    odl_layer_shape last;
} check_ctx;

static odl_status check_node(void *vctx, int32_t i, const odl_layer_shape *const *ins, const odl_layer_shape *out,
                             odl_diag *d)
{
    check_ctx *c = vctx;
    const odl_node_desc *l = &c->desc->layers[i];
    const char *why = unsupported_node(l);
    if (why)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "quantize: node %d (%s): %s; pick a boundary at or before %d", (int)i,
                        odl_layer_type_name(l->type), why, (int)i);
    const size_t k = reduction(l, ins[0]);
    if (k > ODL_QUANT_MAX_REDUCTION)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "quantize: layer %d (%s) sums %zu inputs per output; INT8 supports at most %d",
                        (int)i, odl_layer_type_name(l->type), k, ODL_QUANT_MAX_REDUCTION);
    c->last = *out;
    if (!c->a)
        return ODL_OK;
    odl_status s;
    void *p;
    qnode *qn = c->q ? &c->q->l[i] : NULL;
#define QALLOC(target, bytes, kind)                          \
    do {                                                     \
        s = odl_arena_alloc(c->a, (bytes), (kind), &p, d);   \
        if (s != ODL_OK)                                     \
            return s;                                        \
        if (qn)                                              \
            target = p;                                      \
    } while (0)
    if (qn) {
        qn->in = *ins[0];
        qn->out = *out;
        qn->out_q.scale = 1.0f;
        qn->act_min = -128;
        qn->act_max = 127;
        if (l->type == ODL_LAYER_ADD || l->type == ODL_LAYER_MUL) {
            qn->b_c = ins[1]->c;
            qn->b_hw = ins[1]->h * ins[1]->w;
        }
    }
    if (has_params(l->type)) {
        const size_t C = out->n_bias;
        if (qn) {
            qn->n_ch = (int32_t)C;
            qn->n_w = out->n_weights;
        }
    }
    if (has_params(l->type) && !c->in_place) {
        const size_t C = out->n_bias;
        QALLOC(qn->w, out->n_weights, ODL_MEM_PARAMS);
        QALLOC(qn->bias, C * sizeof(int32_t), ODL_MEM_PARAMS);
        QALLOC(qn->mult, C * sizeof(int32_t), ODL_MEM_PARAMS);
        QALLOC(qn->shift, C * sizeof(int32_t), ODL_MEM_PARAMS);
        QALLOC(qn->w_scale, C * sizeof(float), ODL_MEM_PARAMS);
    }
    /* a table for every activation that may not be fused (whether it is
     * depends on its readers, known after the walk) */
    /* relu and relu6 clamp (or requantise, given other output parameters) */
    if (is_lut_type(l->type) && l->type != ODL_LAYER_RELU && l->type != ODL_LAYER_RELU6 && !c->in_place)
        QALLOC(qn->lut, QLUT, ODL_MEM_PARAMS);
    if (l->type == ODL_LAYER_CONV2D) {
        odl_window_dims wd = wdims(l, ins[0], out, 1);
        const size_t sb = odl_qconv2d_scratch_bytes(&wd);
        c->scratch = sb > c->scratch ? sb : c->scratch;
    }
#undef QALLOC
    return ODL_OK;
}

/* Checks the prefix [0, boundary) of desc for INT8 (a cut point, every node
 * supported, reductions in range); *last (may be NULL) gets the output
 * shape of node boundary − 1. */
static odl_status check_desc(const odl_model_desc *desc, int32_t boundary, odl_layer_shape *last, odl_diag *d)
{
    if (boundary < 1 || boundary > desc->n_layers)
        return odl_fail(d, ODL_ERR_ARG, "quantize: boundary %d out of range 1..%d", (int)boundary,
                        (int)desc->n_layers);
    if (!odl_desc_is_cut(desc, boundary))
        return odl_fail(d, ODL_ERR_ARG, "quantize: boundary %d is not a cut point (a later node reads an earlier tensor)",
                        (int)boundary);
    const odl_model_desc pd = prefix_of(desc, boundary);
    check_ctx c;
    memset(&c, 0, sizeof c);
    c.desc = &pd;
    odl_status s = odl_desc_visit(&pd, check_node, &c, d);
    if (s != ODL_OK) {
        odl_diag_prefix(d, "quantize");
        return s;
    }
    if (last)
        *last = c.last;
    return ODL_OK;
}

static odl_status qbuild(odl_qmodel *q, const odl_model_desc *desc, int32_t boundary, int32_t max_batch,
                         int32_t in_place, odl_arena *a, odl_diag *d)
{
    odl_status s = check_desc(desc, boundary, NULL, d);
    if (s != ODL_OK)
        return s;
    if (max_batch < 1 || max_batch > 65536)
        return odl_fail(d, ODL_ERR_ARG, "quantize: max_batch %d out of range 1..65536", (int)max_batch);
    void *p;
#define QALLOC(target, bytes, kind)                         \
    do {                                                    \
        s = odl_arena_alloc(a, (bytes), (kind), &p, d);     \
        if (s != ODL_OK)                                    \
            return s;                                       \
        if (q)                                              \
            target = p;                                     \
    } while (0)
    const odl_layer_shape in = input_shape(desc);
    QALLOC(q->l, sizeof(qnode) * (size_t)boundary, ODL_MEM_STATE);
    odl_node_desc *nodes = NULL;
    QALLOC(nodes, sizeof(odl_node_desc) * (size_t)boundary, ODL_MEM_STATE);
    QALLOC(q->slots, sizeof(odl_tensor_slot) * ((size_t)boundary + 1), ODL_MEM_STATE);
    if (q) {
        memset(q->l, 0, sizeof(qnode) * (size_t)boundary);
        odl_desc_init(&q->desc, nodes, boundary, desc->in_c, desc->in_h, desc->in_w);
        memcpy(nodes, desc->layers, sizeof(odl_node_desc) * (size_t)boundary);
        q->desc.n_layers = boundary;
        q->boundary = boundary;
        q->max_batch = max_batch;
        q->in_place = in_place;
        q->in_shape = in;
        q->in_q.scale = 1.0f;
    }
    const odl_model_desc pd = prefix_of(desc, boundary);
    check_ctx c;
    memset(&c, 0, sizeof c);
    c.desc = &pd;
    c.q = q;
    c.a = a;
    c.in_place = in_place;
    if ((s = odl_desc_visit(&pd, check_node, &c, d)) != ODL_OK)
        return s;
    size_t peak = 0;
    if ((s = odl_desc_plan_tensors(&pd, max_batch, 1, q ? q->slots : NULL, &peak, d)) != ODL_OK)
        return s;
    QALLOC(q->input, in.size * (size_t)max_batch, ODL_MEM_SCRATCH);
    if (peak)
        QALLOC(q->act, peak, ODL_MEM_SCRATCH);
    if (c.scratch)
        QALLOC(q->conv_scratch, c.scratch, ODL_MEM_SCRATCH);
#undef QALLOC
    if (q)
        for (int32_t i = 0; i + 1 < boundary; i++)
            if (q->slots[i + 1].root < 0) { /* the planner fused node i+1 (an activation) into node i */
                q->l[i].fused = q->desc.layers[i + 1].type;
                q->l[i + 1].fused_away = 1;
            }
    return ODL_OK;
}

static odl_status qplan(const odl_model_desc *desc, int32_t boundary, int32_t max_batch, int32_t in_place,
                        odl_mem_plan *plan, odl_diag *d)
{
    if (!desc || !plan)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_plan: NULL argument");
    odl_arena a;
    odl_arena_init_counting(&a);
    void *p;
    odl_status s = odl_arena_alloc(&a, sizeof(odl_qmodel), ODL_MEM_STATE, &p, d);
    if (s == ODL_OK)
        s = qbuild(NULL, desc, boundary, max_batch, in_place, &a, d);
    if (s != ODL_OK)
        return s;
    *plan = a.plan;
    return ODL_OK;
}

static odl_status qinit(odl_qmodel **out, const odl_model_desc *desc, int32_t boundary, int32_t max_batch,
                        int32_t in_place, odl_arena *arena, odl_diag *d)
{
    if (!out || !desc || !arena)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_init: NULL argument");
    *out = NULL;
    odl_mem_plan plan;
    odl_status s = qplan(desc, boundary, max_batch, in_place, &plan, d);
    if (s != ODL_OK)
        return s;
    if (odl_arena_is_counting(arena))
        return odl_fail(d, ODL_ERR_ARG, "qmodel_init: the arena only counts (use odl_qmodel_plan)");
    if (odl_arena_remaining(arena) < plan.total)
        return odl_fail(d, ODL_ERR_NOMEM, "arena too small for the INT8 model: needs %zu bytes (params %zu), %zu available",
                        plan.total, plan.bytes[ODL_MEM_PARAMS], odl_arena_remaining(arena));
    void *p;
    s = odl_arena_alloc(arena, sizeof(odl_qmodel), ODL_MEM_STATE, &p, d);
    if (s != ODL_OK)
        return s;
    odl_qmodel *q = p;
    memset(q, 0, sizeof *q);
    s = qbuild(q, desc, boundary, max_batch, in_place, arena, d);
    if (s != ODL_OK)
        return s;
    *out = q;
    return ODL_OK;
}

odl_status odl_qmodel_plan(const odl_model_desc *desc, int32_t boundary, int32_t max_batch, odl_mem_plan *plan,
                           odl_diag *d)
{
    return qplan(desc, boundary, max_batch, 0, plan, d);
}

odl_status odl_qmodel_init(odl_qmodel **out, const odl_model_desc *desc, int32_t boundary, int32_t max_batch,
                           odl_arena *arena, odl_diag *d)
{
    return qinit(out, desc, boundary, max_batch, 0, arena, d);
}

odl_status odl_qmodel_plan_in_place(const odl_model_desc *desc, int32_t boundary, int32_t max_batch,
                                    odl_mem_plan *plan, odl_diag *d)
{
    return qplan(desc, boundary, max_batch, 1, plan, d);
}

odl_status odl_qmodel_init_in_place(odl_qmodel **out, const odl_model_desc *desc, int32_t boundary,
                                    int32_t max_batch, odl_arena *arena, odl_diag *d)
{
    return qinit(out, desc, boundary, max_batch, 1, arena, d);
}

/* Parameters of tensor t (0: the input). */
static odl_qparams tq(const odl_qmodel *q, int32_t t)
{
    return t == 0 ? q->in_q : q->l[t - 1].out_q;
}

static int same_q(odl_qparams a, odl_qparams b)
{
    return a.scale == b.scale && a.zero_point == b.zero_point;
}

/* Output clamp of an activation (relu, relu6, clip) applied to a tensor with parameters p. */
static void act_range(const odl_node_desc *act, odl_qparams p, int32_t *lo, int32_t *hi)
{
    *lo = -128;
    *hi = 127;
    if (!act)
        return;
    if (act->type == ODL_LAYER_RELU || act->type == ODL_LAYER_RELU6)
        *lo = p.zero_point;
    if (act->type == ODL_LAYER_RELU6)
        *hi = odl_q_quantize(6.0f, p);
    if (act->type == ODL_LAYER_CLIP) {
        *lo = odl_q_quantize(act->alpha, p);
        *hi = odl_q_quantize(act->beta, p);
        if (*hi < *lo)
            *hi = *lo;
    }
}

static int same_layer(const odl_node_desc *a, const odl_node_desc *b)
{
    if (!(a->type == b->type && a->units == b->units && a->k_h == b->k_h && a->k_w == b->k_w &&
          a->stride_h == b->stride_h && a->stride_w == b->stride_w && a->pad_t == b->pad_t && a->pad_l == b->pad_l &&
          a->pad_b == b->pad_b && a->pad_r == b->pad_r && a->n_in == b->n_in && a->groups == b->groups &&
          a->dil_h == b->dil_h && a->dil_w == b->dil_w && a->flags == b->flags && a->shape_c == b->shape_c &&
          a->shape_h == b->shape_h && a->shape_w == b->shape_w))
        return 0;
    if (is_lut_type(a->type) || a->type == ODL_LAYER_PAD)
        if (memcmp(&a->alpha, &b->alpha, sizeof a->alpha) || memcmp(&a->beta, &b->beta, sizeof a->beta))
            return 0;
    for (int32_t k = 0; k < a->n_in && k < ODL_NODE_MAX_IN; k++)
        if (a->in[k] != b->in[k])
            return 0;
    return 1;
}

static odl_status check_prefix(const odl_model_desc *a, const odl_model_desc *b, int32_t boundary, odl_diag *d)
{
    if (a->in_c != b->in_c || a->in_h != b->in_h || a->in_w != b->in_w || b->n_layers < boundary)
        return odl_fail(d, ODL_ERR_SHAPE, "INT8 model and FP32 model differ (input %dx%dx%d vs %dx%dx%d, %d layers)",
                        (int)a->in_c, (int)a->in_h, (int)a->in_w, (int)b->in_c, (int)b->in_h, (int)b->in_w,
                        (int)b->n_layers);
    for (int32_t i = 0; i < boundary; i++)
        if (!same_layer(&a->layers[i], &b->layers[i]))
            return odl_fail(d, ODL_ERR_SHAPE, "layer %d differs between the INT8 model (%s) and the FP32 model (%s)",
                            (int)i, odl_layer_type_name(a->layers[i].type), odl_layer_type_name(b->layers[i].type));
    return ODL_OK;
}

/* ---- TFLite's int8 hard swish (16-bit fixed point) ------------------------
 * TFLite computes an int8 hard swish in int16 fixed point, not through the
 * float function, so a table of the float function can be one step off.
 * These reproduce its arithmetic; the table holds its result for each of
 * the 256 inputs. */

/* int16 SaturatingRoundingDoublingHighMul: round(a·b / 2^15), ties to +inf. */
static int16_t srdhm16(int16_t a, int16_t b)
{
    if (a == INT16_MIN && b == INT16_MIN)
        return INT16_MAX;
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (int16_t)((ab + nudge) / (1 << 15));
}

/* The same, truncating toward zero (TFLite's SaturatingDoublingHighMul). */
static int16_t sdhm16(int16_t a, int16_t b)
{
    if (a == INT16_MIN && b == INT16_MIN)
        return INT16_MAX;
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static int16_t sat_shl16(int16_t v, int32_t amount)
{
    const int64_t r = (int64_t)v * ((int64_t)1 << amount);
    return (int16_t)(r > INT16_MAX ? INT16_MAX : r < INT16_MIN ? INT16_MIN : r);
}

/* A QuantizeMultiplier result rounded to its top 16 bits. */
static int16_t mult_to_16(int32_t m)
{
    if (m >= INT32_MAX - (1 << 15))
        return INT16_MAX;
    return (int16_t)((m + (1 << 15)) >> 16);
}

/* 1 and the table when TFLite's kernel takes these parameters (its output
 * multiplier, (s_in / 128) / s_out, must be below 1 after rounding). */
static int hswish_lut_tflite(odl_qparams in, odl_qparams out, int8_t lut[256])
{
    /* the scales in float, as TFLite's Prepare takes them */
    const float hires = (1.0f / 128.0f) * in.scale;
    const float out_m = hires / out.scale, relu_m = hires / (3.0f / 32768.0f);
    int32_t om32, oe, rm32, re;
    odl_q_quantize_multiplier((double)out_m, &om32, &oe);
    odl_q_quantize_multiplier((double)relu_m, &rm32, &re);
    if (oe > 0 || om32 <= 0 || rm32 <= 0 || re > 15 || re < -15 || oe < -15)
        return 0;
    const int16_t om = mult_to_16(om32), rm = mult_to_16(rm32);
    for (int32_t v = -128; v <= 127; v++) {
        const int16_t x = (int16_t)(v - in.zero_point);
        const int16_t hi = (int16_t)(x * 128);
        const int16_t pre = srdhm16(hi, om);
        int16_t r = hi;
        if (re > 0)
            r = sat_shl16(r, re - 1);
        r = srdhm16(r, rm);
        if (re > 0)
            r = sat_shl16(r, 1);
        if (re < 0)
            r = (int16_t)rdbpot(r, -re);
        r = (int16_t)(((int32_t)r + (1 << 15)) >> 1);
        const int16_t po = sdhm16(r, pre);
        const int32_t o = rdbpot(po, -oe) + out.zero_point;
        lut[(uint8_t)(int8_t)v] = (int8_t)(o > 127 ? 127 : o < -128 ? -128 : o);
    }
    return 1;
}

odl_status odl_q_make_lut(int32_t type, float alpha, float beta, odl_qparams in, odl_qparams out, int8_t lut[256],
                          odl_diag *d)
{
    if (!is_lut_type(type) || !lut)
        return odl_fail(d, ODL_ERR_ARG, "make_lut: %s is not a tabulated activation", odl_layer_type_name(type));
    if (type == ODL_LAYER_HARD_SWISH && hswish_lut_tflite(in, out, lut))
        return ODL_OK;
    for (int32_t v = -128; v <= 127; v++) {
        const float x = odl_q_dequantize((int8_t)v, in);
        float y;
        if (type == ODL_LAYER_RELU)
            y = x > 0.0f ? x : 0.0f;
        else if (type == ODL_LAYER_RELU6)
            y = x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f;
        else
            odl_act_forward_f32(type, alpha, beta, 1, &x, &y);
        lut[(uint8_t)(int8_t)v] = odl_q_quantize(y, out);
    }
    return ODL_OK;
}

/* With every node's output parameters (and the int8 weights, weight scales
 * and biases of parameterised nodes) in place, computes what the kernels
 * need: multipliers, clamps, tables and the requantisation of add, mul,
 * concat and mean. Host or import time (double precision). */
static odl_status qfinish(odl_qmodel *q, odl_diag *d)
{
    for (int32_t i = 0; i < q->boundary; i++) {
        qnode *qn = &q->l[i];
        const odl_node_desc *l = &q->desc.layers[i];
        const odl_qparams in_q = tq(q, l->in[0]);
        qn->act_min = -128;
        qn->act_max = 127;
        qn->n_ex = 0;
        qn->use_lut = 0;
        if (qn->fused_away) {
            qn->out_q = q->l[i - 1].out_q;
            continue;
        }
        if (has_params(l->type)) {
            act_range(qn->fused ? &q->desc.layers[i + 1] : NULL, qn->out_q, &qn->act_min, &qn->act_max);
            for (int32_t ch = 0; ch < qn->n_ch; ch++)
                odl_q_quantize_multiplier((double)in_q.scale * (double)qn->w_scale[ch] / (double)qn->out_q.scale,
                                          &qn->mult[ch], &qn->shift[ch]);
            continue;
        }
        switch (l->type) {
        case ODL_LAYER_RELU:
        case ODL_LAYER_RELU6:
        case ODL_LAYER_CLIP:
        case ODL_LAYER_LEAKY_RELU:
        case ODL_LAYER_SIGMOID:
        case ODL_LAYER_HARD_SIGMOID:
        case ODL_LAYER_HARD_SWISH:
        case ODL_LAYER_TANH: {
            if (l->type == ODL_LAYER_RELU || l->type == ODL_LAYER_RELU6) {
                /* a clamp; with new output parameters a requantisation as TFLite's */
                act_range(l, qn->out_q, &qn->act_min, &qn->act_max);
                if (!same_q(qn->out_q, in_q)) {
                    odl_q_quantize_multiplier((double)in_q.scale / (double)qn->out_q.scale, &qn->ex[0], &qn->ex[1]);
                    qn->n_ex = 2;
                }
                break;
            }
            odl_status s = odl_q_make_lut(l->type, l->alpha, l->beta, in_q, qn->out_q, qn->lut, d);
            if (s != ODL_OK)
                return s;
            qn->use_lut = 1;
            break;
        }
        case ODL_LAYER_ADD: {
            const odl_qparams bq = tq(q, l->in[1]);
            const double twice = 2.0 * (in_q.scale > bq.scale ? (double)in_q.scale : (double)bq.scale);
            odl_q_quantize_multiplier((double)in_q.scale / twice, &qn->ex[0], &qn->ex[1]);
            odl_q_quantize_multiplier((double)bq.scale / twice, &qn->ex[2], &qn->ex[3]);
            odl_q_quantize_multiplier(twice / ((double)(1 << 20) * (double)qn->out_q.scale), &qn->ex[4], &qn->ex[5]);
            qn->ex[6] = 20;
            qn->n_ex = 7;
            break;
        }
        case ODL_LAYER_MUL: {
            /* in float, then widened: TFLite's mul multiplies the float
             * scales, so its multiplier can differ from double's in the last bit */
            const odl_qparams bq = tq(q, l->in[1]);
            const float real = in_q.scale * bq.scale / qn->out_q.scale;
            odl_q_quantize_multiplier((double)real, &qn->ex[0], &qn->ex[1]);
            qn->n_ex = 2;
            break;
        }
        case ODL_LAYER_CONCAT:
            for (int32_t k = 0; k < l->n_in; k++) {
                const odl_qparams kq = tq(q, l->in[k]);
                qn->ex[2 * k] = qn->ex[2 * k + 1] = 0;
                if (!same_q(kq, qn->out_q))
                    odl_q_quantize_multiplier((double)kq.scale / (double)qn->out_q.scale, &qn->ex[2 * k],
                                              &qn->ex[2 * k + 1]);
            }
            qn->n_ex = 2 * l->n_in;
            break;
        case ODL_LAYER_GAP:
            if (!same_q(qn->out_q, in_q)) {
                const double hw = (double)qn->in.h * (double)qn->in.w;
                odl_q_quantize_multiplier((double)in_q.scale / (hw * (double)qn->out_q.scale), &qn->ex[0], &qn->ex[1]);
                qn->n_ex = 2;
            }
            break;
        case ODL_LAYER_PAD:
            qn->ex[0] = odl_q_quantize(l->alpha, in_q);
            qn->n_ex = 1;
            break;
        default:
            break;
        }
        if (keeps_params(l->type) && !same_q(qn->out_q, in_q))
            return odl_fail(d, ODL_ERR_ARG, "node %d (%s): INT8 output parameters must be its input's (scale %g, zero point %d)",
                            (int)i, odl_layer_type_name(l->type), (double)in_q.scale, (int)in_q.zero_point);
    }
    q->ready = 1;
    return ODL_OK;
}

static int good_range(float lo, float hi) { return isfinite(lo) && isfinite(hi); }

odl_status odl_qmodel_quantize(odl_qmodel *q, const odl_model *m, const odl_qcalib *c, odl_diag *d)
{
    if (!q || !m || !c)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_quantize: NULL argument");
    if (c->boundary != q->boundary || c->samples <= 0)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_quantize: calibration for boundary %d with %ld samples (boundary %d needs > 0)",
                        (int)c->boundary, (long)c->samples, (int)q->boundary);
    if (q->in_place)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_quantize: this INT8 model's parameters are read in place from a "
                        "file (odl_qmodel_init_in_place); quantise into one made by odl_qmodel_init");
    odl_status s = check_prefix(&q->desc, odl_model_get_desc(m), q->boundary, d);
    if (s != ODL_OK)
        return s;
    q->ready = 0;
    q->in_q = odl_q_choose_params(c->in_min, c->in_max);
    for (int32_t i = 0; i < q->boundary; i++) {
        qnode *qn = &q->l[i];
        const odl_node_desc *l = &q->desc.layers[i];
        const int32_t type = l->type;
        const odl_qparams in_q = tq(q, l->in[0]);
        if (qn->fused_away) {
            qn->out_q = q->l[i - 1].out_q;
            continue;
        }
        if (keeps_params(type) || type == ODL_LAYER_GAP || type == ODL_LAYER_RELU || type == ODL_LAYER_RELU6) {
            qn->out_q = in_q;
            continue;
        }
        const int32_t src = qn->fused ? i + 1 : i; /* the range after a fused activation */
        if (!good_range(c->min[src], c->max[src]))
            return odl_fail(d, ODL_ERR_STATE, "quantize: node %d (%s): no calibrated range", (int)src,
                            odl_layer_type_name(q->desc.layers[src].type));
        qn->out_q = odl_q_choose_params(c->min[src], c->max[src]);
        /* TFLite's int8 LOGISTIC and TANH take only these output parameters */
        if (type == ODL_LAYER_SIGMOID)
            qn->out_q = (odl_qparams){1.0f / 256.0f, -128};
        else if (type == ODL_LAYER_TANH)
            qn->out_q = (odl_qparams){1.0f / 128.0f, 0};
        if (!has_params(type))
            continue;
        size_t nw, nb;
        const float *w = odl_model_param_const(m, i, 0, &nw);
        const float *b = odl_model_param_const(m, i, 1, &nb);
        if (!w || !b || nw != qn->n_w || nb != (size_t)qn->n_ch)
            return odl_fail(d, ODL_ERR_STATE, "quantize: layer %d (%s) has no parameters loaded", (int)i,
                            odl_layer_type_name(type));
        const size_t per = qn->n_w / (size_t)qn->n_ch;
        for (int32_t ch = 0; ch < qn->n_ch; ch++) {
            const float *wc = w + (size_t)ch * per;
            float amax = 0.0f;
            for (size_t k = 0; k < per; k++) {
                if (!isfinite(wc[k]))
                    return odl_fail(d, ODL_ERR_NUMERIC, "quantize: layer %d has a non-finite weight", (int)i);
                amax = fabsf(wc[k]) > amax ? fabsf(wc[k]) : amax;
            }
            float sw = amax / 127.0f;
            if (!(sw >= FLT_MIN))
                sw = 1.0f; /* an all-zero channel */
            for (size_t k = 0; k < per; k++) {
                double v = round((double)wc[k] / (double)sw);
                qn->w[(size_t)ch * per + k] = (int8_t)(v < -127.0 ? -127 : v > 127.0 ? 127 : (int32_t)v);
            }
            const double sacc = (double)in_q.scale * (double)sw;
            const double bq = round((double)b[ch] / sacc);
            if (!(fabs(bq) <= (double)ODL_QUANT_MAX_BIAS))
                return odl_fail(d, ODL_ERR_NUMERIC,
                                "quantize: layer %d channel %d: bias %.4f is too large for int32 at scale %.9f",
                                (int)i, (int)ch, (double)b[ch], sacc);
            qn->bias[ch] = (int32_t)bq;
            qn->w_scale[ch] = sw;
        }
    }
    return qfinish(q, d);
}

static int good_scale(float f) { return isfinite(f) && f >= FLT_MIN; }
static int in_s8(int32_t v) { return v >= -128 && v <= 127; }

odl_status odl_qmodel_set_params(odl_qmodel *q, odl_qparams input, const odl_qnode_params *nodes, odl_diag *d)
{
    if (!q || !nodes)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_set_params: NULL argument");
    if (q->in_place)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_set_params: this INT8 model's parameters are read in place from a "
                        "file (odl_qmodel_init_in_place); set them on one made by odl_qmodel_init");
    if (!good_scale(input.scale) || !in_s8(input.zero_point))
        return odl_fail(d, ODL_ERR_ARG, "qmodel_set_params: input scale %g / zero point %d out of range",
                        (double)input.scale, (int)input.zero_point);
    q->ready = 0;
    q->in_q = input;
    for (int32_t i = 0; i < q->boundary; i++) {
        qnode *qn = &q->l[i];
        const odl_qnode_params *np = &nodes[qn->fused ? i + 1 : i];
        const char *what = odl_layer_type_name(q->desc.layers[i].type);
        if (qn->fused_away)
            continue;
        if (!good_scale(np->out.scale) || !in_s8(np->out.zero_point))
            return odl_fail(d, ODL_ERR_ARG, "node %d (%s): output scale %g / zero point %d out of range", (int)i, what,
                            (double)np->out.scale, (int)np->out.zero_point);
        qn->out_q = np->out;
        if (!qn->n_ch)
            continue;
        const odl_qnode_params *pp = &nodes[i];
        if (!pp->w || !pp->w_scale || !pp->bias)
            return odl_fail(d, ODL_ERR_ARG, "node %d (%s): int8 weights, weight scales and biases are required", (int)i,
                            what);
        for (int32_t ch = 0; ch < qn->n_ch; ch++) {
            if (!good_scale(pp->w_scale[ch]))
                return odl_fail(d, ODL_ERR_ARG, "node %d (%s) channel %d: weight scale %g out of range", (int)i, what,
                                (int)ch, (double)pp->w_scale[ch]);
            if (pp->bias[ch] < -ODL_QUANT_MAX_BIAS || pp->bias[ch] > ODL_QUANT_MAX_BIAS)
                return odl_fail(d, ODL_ERR_ARG, "node %d (%s) channel %d: bias %ld beyond +-2^30", (int)i, what, (int)ch,
                                (long)pp->bias[ch]);
        }
        memcpy(qn->w, pp->w, qn->n_w);
        memcpy(qn->bias, pp->bias, sizeof(int32_t) * (size_t)qn->n_ch);
        memcpy(qn->w_scale, pp->w_scale, sizeof(float) * (size_t)qn->n_ch);
    }
    return qfinish(q, d);
}

odl_status odl_qmodel_node_params(const odl_qmodel *q, int32_t i, odl_qnode_params *out, odl_diag *d)
{
    if (!q || !out || i < 0 || i >= q->boundary)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_node_params: node %d out of range 0..%d", (int)i,
                        q ? (int)q->boundary - 1 : -1);
    const qnode *qn = &q->l[i];
    out->out = qn->out_q;
    out->w = qn->n_ch ? qn->w : NULL;
    out->w_scale = qn->n_ch ? qn->w_scale : NULL;
    out->bias = qn->n_ch ? qn->bias : NULL;
    return ODL_OK;
}

/* Where tensor t lives in q (NULL: fused away). */
static int8_t *tptr(const odl_qmodel *q, int32_t t)
{
    const odl_tensor_slot *s = &q->slots[t];
    if (t == 0)
        return q->input;
    if (s->stored)
        return q->act + s->off;
    if (s->root < 0)
        return NULL;
    return s->root == 0 ? q->input : q->act + q->slots[s->root].off;
}

static odl_qrequant rq_of(const qnode *qn, odl_qparams in_q)
{
    odl_qrequant r = {in_q.zero_point, qn->out_q.zero_point, qn->act_min, qn->act_max, qn->bias, qn->mult, qn->shift};
    return r;
}

/* Runs the prefix on nb ≤ max_batch samples; returns the int8 output. */
static const int8_t *qrun(odl_qmodel *q, const float *x, const int8_t *xs8, int32_t nb)
{
    const size_t in_total = q->in_shape.size * (size_t)nb;
    if (xs8)
        memcpy(q->input, xs8, in_total);
    else
        for (size_t k = 0; k < in_total; k++)
            q->input[k] = odl_q_quantize(x[k], q->in_q);
    for (int32_t i = 0; i < q->boundary; i++) {
        const odl_node_desc *l = &q->desc.layers[i];
        const qnode *qn = &q->l[i];
        if (qn->fused_away)
            continue;
        const odl_tensor_slot *os = &q->slots[i + 1];
        if (!os->stored && os->root >= 0)
            continue; /* flatten, reshape, dropout: a view of its input */
        int8_t *y = tptr(q, qn->fused ? i + 2 : i + 1);
        const int8_t *x0 = tptr(q, l->in[0]);
        const odl_qparams in_q = tq(q, l->in[0]);
        const size_t total = qn->out.size * (size_t)nb;
        switch (l->type) {
        case ODL_LAYER_DENSE: {
            odl_dense_dims dd = {nb, (int32_t)qn->in.size, (int32_t)qn->out.size};
            odl_qrequant r = rq_of(qn, in_q);
            odl_qdense_s8(&dd, x0, qn->w, &r, y);
            break;
        }
        case ODL_LAYER_CONV2D: {
            odl_window_dims wd = wdims(l, &qn->in, &qn->out, nb);
            odl_qrequant r = rq_of(qn, in_q);
            odl_qconv2d_s8(&wd, x0, qn->w, &r, y, q->conv_scratch);
            break;
        }
        case ODL_LAYER_DEPTHWISE: {
            odl_window_dims wd = wdims(l, &qn->in, &qn->out, nb);
            odl_qrequant r = rq_of(qn, in_q);
            odl_qdepthwise_s8(&wd, x0, qn->w, &r, y);
            break;
        }
        case ODL_LAYER_BATCHNORM: { /* a per-channel affine: a 1x1 depthwise */
            odl_window_dims wd = odl_window_dims_simple(nb, qn->in.c, qn->in.h, qn->in.w, qn->in.c, qn->in.h, qn->in.w,
                                                        1, 1, 1, 1, 0, 0);
            odl_qrequant r = rq_of(qn, in_q);
            odl_qdepthwise_s8(&wd, x0, qn->w, &r, y);
            break;
        }
        case ODL_LAYER_MAXPOOL: {
            odl_window_dims wd = wdims(l, &qn->in, &qn->out, nb);
            odl_qmaxpool_s8(&wd, x0, y);
            break;
        }
        case ODL_LAYER_AVGPOOL: {
            odl_window_dims wd = wdims(l, &qn->in, &qn->out, nb);
            odl_qavgpool_s8(&wd, x0, y);
            break;
        }
        case ODL_LAYER_GAP:
            if (qn->n_ex)
                odl_qmean_s8(nb, qn->in.c, qn->in.h * qn->in.w, x0, in_q.zero_point, qn->out_q.zero_point, qn->ex[0],
                             qn->ex[1], y);
            else
                odl_qgap_s8(nb, qn->in.c, qn->in.h * qn->in.w, x0, y);
            break;
        case ODL_LAYER_PAD: {
            odl_window_dims wd = wdims(l, &qn->in, &qn->out, nb);
            odl_qpad_s8(&wd, (int8_t)qn->ex[0], x0, y);
            break;
        }
        case ODL_LAYER_ADD:
        case ODL_LAYER_MUL: {
            const odl_qparams bq = tq(q, l->in[1]);
            odl_qbinary p;
            memset(&p, 0, sizeof p);
            p.a_zp = in_q.zero_point;
            p.b_zp = bq.zero_point;
            p.out_zp = qn->out_q.zero_point;
            p.act_min = -128;
            p.act_max = 127;
            if (l->type == ODL_LAYER_ADD) {
                p.a_mult = qn->ex[0], p.a_shift = qn->ex[1], p.b_mult = qn->ex[2], p.b_shift = qn->ex[3];
                p.out_mult = qn->ex[4], p.out_shift = qn->ex[5], p.left_shift = qn->ex[6];
                odl_qadd_s8(&p, nb, qn->in.c, qn->in.h * qn->in.w, x0, tptr(q, l->in[1]), qn->b_c, qn->b_hw, y);
            } else {
                p.out_mult = qn->ex[0], p.out_shift = qn->ex[1];
                odl_qmul_s8(&p, nb, qn->in.c, qn->in.h * qn->in.w, x0, tptr(q, l->in[1]), qn->b_c, qn->b_hw, y);
            }
            break;
        }
        case ODL_LAYER_CONCAT: {
            const int8_t *xs[ODL_NODE_MAX_IN];
            int32_t cs[ODL_NODE_MAX_IN];
            odl_qconcat_in rq[ODL_NODE_MAX_IN];
            for (int32_t k = 0; k < l->n_in; k++) {
                const int32_t t = l->in[k];
                xs[k] = tptr(q, t);
                cs[k] = t == 0 ? q->in_shape.c : q->l[t - 1].out.c;
                rq[k].zp = tq(q, t).zero_point;
                rq[k].mult = qn->ex[2 * k];
                rq[k].shift = qn->ex[2 * k + 1];
            }
            odl_qconcat_s8(nb, l->n_in, xs, cs, rq, qn->out.h * qn->out.w, qn->out_q.zero_point, y);
            break;
        }
        case ODL_LAYER_RELU:
        case ODL_LAYER_RELU6:
            if (qn->n_ex)
                odl_qrelu_requant_s8(total, x0, in_q.zero_point, qn->out_q.zero_point, qn->ex[0], qn->ex[1],
                                     qn->act_min, qn->act_max, y);
            else
                odl_qclamp_s8(total, x0, qn->act_min, qn->act_max, y);
            break;
        case ODL_LAYER_CLIP:
        case ODL_LAYER_LEAKY_RELU:
        case ODL_LAYER_SIGMOID:
        case ODL_LAYER_HARD_SIGMOID:
        case ODL_LAYER_HARD_SWISH:
        case ODL_LAYER_TANH:
            odl_qlut_s8(total, x0, qn->lut, y);
            break;
        default: /* flatten, reshape, dropout stored apart (never by this planner): the same bytes */
            if (y != x0)
                memmove(y, x0, total);
            break;
        }
    }
    return tptr(q, q->boundary);
}

static odl_status check_forward(const odl_qmodel *q, const float *x, int32_t n, const void *z, odl_diag *d)
{
    if (!q || !x || !z)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_forward: NULL argument");
    if (!q->ready)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_forward: the INT8 model was neither quantised nor loaded");
    if (n < 1)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_forward: batch %d must be positive", (int)n);
    return ODL_OK;
}

/* Runs the prefix over n samples in batches of at most max_batch; the
 * output goes dequantised to z, or (z NULL) as int8 to y. */
static void qforward(odl_qmodel *q, const float *x, const int8_t *xs8, int32_t n, float *z, int8_t *y)
{
    const size_t in_sz = q->in_shape.size, out_sz = q->l[q->boundary - 1].out.size;
    const odl_qparams p = q->l[q->boundary - 1].out_q;
    for (int32_t start = 0; start < n; start += q->max_batch) {
        const int32_t nb = n - start < q->max_batch ? n - start : q->max_batch;
        const int8_t *o = qrun(q, x ? x + (size_t)start * in_sz : NULL, xs8 ? xs8 + (size_t)start * in_sz : NULL, nb);
        if (z) {
            float *zz = z + (size_t)start * out_sz;
            for (size_t k = 0; k < out_sz * (size_t)nb; k++)
                zz[k] = odl_q_dequantize(o[k], p);
        } else {
            memcpy(y + (size_t)start * out_sz, o, out_sz * (size_t)nb);
        }
    }
}

odl_status odl_qmodel_forward(odl_qmodel *q, const float *x, int32_t n, float *z, odl_diag *d)
{
    odl_status s = check_forward(q, x, n, z, d);
    if (s != ODL_OK)
        return s;
    qforward(q, x, NULL, n, z, NULL);
    return ODL_OK;
}

odl_status odl_qmodel_forward_s8(odl_qmodel *q, const float *x, int32_t n, int8_t *y, odl_qparams *p, odl_diag *d)
{
    odl_status s = check_forward(q, x, n, y, d);
    if (s != ODL_OK)
        return s;
    qforward(q, x, NULL, n, NULL, y);
    if (p)
        *p = q->l[q->boundary - 1].out_q;
    return ODL_OK;
}

odl_status odl_qmodel_run_s8(odl_qmodel *q, const int8_t *x, int32_t n, int8_t *y, odl_diag *d)
{
    odl_status s = check_forward(q, (const float *)(const void *)x, n, y, d);
    if (s != ODL_OK)
        return s;
    qforward(q, NULL, x, n, NULL, y);
    return ODL_OK;
}

int32_t odl_qmodel_boundary(const odl_qmodel *q) { return q->boundary; }
size_t odl_qmodel_latent_size(const odl_qmodel *q) { return q->l[q->boundary - 1].out.size; }
odl_qparams odl_qmodel_input_params(const odl_qmodel *q) { return q->in_q; }

odl_qparams odl_qmodel_output_params(const odl_qmodel *q, int32_t i)
{
    if (i < 0 || i >= q->boundary)
        return q->in_q;
    return q->l[i].out_q;
}

void odl_qmodel_param_bytes(const odl_qmodel *q, size_t *int8_bytes, size_t *fp32_bytes)
{
    size_t a = 0, b = 0;
    for (int32_t i = 0; i < q->boundary; i++) {
        a += q->l[i].n_w + 16u * (size_t)q->l[i].n_ch + (q->l[i].use_lut ? QLUT : 0) + 4u * (size_t)q->l[i].n_ex;
        b += 4u * (q->l[i].n_w + (size_t)q->l[i].n_ch);
    }
    if (int8_bytes)
        *int8_bytes = a;
    if (fp32_bytes)
        *fp32_bytes = b;
}

/* ---- calibration ----------------------------------------------------------- */

odl_status odl_qcalib_begin(odl_qcalib *c, const odl_model_desc *desc, int32_t boundary, float *ranges,
                            odl_diag *d)
{
    if (!c || !desc || !ranges)
        return odl_fail(d, ODL_ERR_ARG, "qcalib_begin: NULL argument");
    odl_status s = check_desc(desc, boundary, NULL, d);
    if (s != ODL_OK)
        return s;
    memset(c, 0, sizeof *c);
    c->boundary = boundary;
    c->in_min = INFINITY;
    c->in_max = -INFINITY;
    c->min = ranges;
    c->max = ranges + boundary;
    for (int32_t i = 0; i < boundary; i++) {
        c->min[i] = INFINITY;
        c->max[i] = -INFINITY;
    }
    return ODL_OK;
}

size_t odl_qcalib_work_floats(const odl_model_desc *desc, int32_t boundary, int32_t n)
{
    odl_layer_shape last = {0, 0, 0, 0, 0, 0};
    if (!desc || n < 1 || boundary < 1 || boundary > desc->n_layers || check_desc(desc, boundary, &last, NULL) != ODL_OK)
        return 0;
    return last.size * (size_t)n;
}

typedef struct observe_ctx {
    odl_qcalib *c;
    int32_t bad; /* tensor with a non-finite value + 1, 0 if none */
} observe_ctx;

static void observe(void *vctx, int32_t t, const float *v, size_t n)
{
    observe_ctx *o = vctx;
    float *lo = t == 0 ? &o->c->in_min : &o->c->min[t - 1];
    float *hi = t == 0 ? &o->c->in_max : &o->c->max[t - 1];
    if (t > o->c->boundary)
        return;
    float a = *lo, b = *hi;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(v[k])) {
            if (!o->bad)
                o->bad = t + 1;
            return;
        }
        a = v[k] < a ? v[k] : a;
        b = v[k] > b ? v[k] : b;
    }
    *lo = a;
    *hi = b;
}

odl_status odl_qcalib_observe(odl_qcalib *c, odl_model *m, const float *x, int32_t n, float *work,
                              size_t work_floats, odl_diag *d)
{
    if (!c || !m || !x || !work || n < 1)
        return odl_fail(d, ODL_ERR_ARG, "qcalib_observe: bad arguments");
    const odl_model_desc *desc = odl_model_get_desc(m);
    if (c->boundary < 1 || c->boundary > desc->n_layers)
        return odl_fail(d, ODL_ERR_STATE, "qcalib_observe: calibration boundary %d does not fit a %d-layer model",
                        (int)c->boundary, (int)desc->n_layers);
    const size_t need = odl_qcalib_work_floats(desc, c->boundary, n);
    if (work_floats < need)
        return odl_fail(d, ODL_ERR_NOMEM, "qcalib_observe: %zu work floats given, %zu needed", work_floats, need);
    observe_ctx o = {c, 0};
    odl_status s = odl_model_forward_observe(m, c->boundary, x, n, work, observe, &o, d);
    if (s != ODL_OK)
        return s;
    if (o.bad == 1)
        return odl_fail(d, ODL_ERR_NUMERIC, "calibration: non-finite input value");
    if (o.bad)
        return odl_fail(d, ODL_ERR_NUMERIC, "calibration: layer %d (%s) produced a non-finite value", (int)(o.bad - 2),
                        odl_layer_type_name(desc->layers[o.bad - 2].type));
    c->samples += n;
    return ODL_OK;
}

/* ---- files ----------------------------------------------------------------- */

#define QNT_BYTES 32
#define QLAY_HEADER 48
#define QEX_BYTES_MAX (QLUT + 4 * QEX_MAX)

/* Format 1 describes sequential prefixes of the original operators; format
 * 2 any graph prefix (extra requantisation values and tables after the
 * weights). A prefix format 1 can describe is written as format 1. */
static uint32_t file_version(const odl_qmodel *q)
{
    for (int32_t i = 0; i < q->boundary; i++)
        if (!v1_node(&q->desc.layers[i], i) || q->l[i].n_ex || q->l[i].use_lut ||
            (q->l[i].fused && q->l[i].fused != ODL_LAYER_RELU && q->l[i].fused != ODL_LAYER_RELU6))
            return 2;
    return 1;
}

static size_t ex_bytes(const qnode *qn)
{
    return 4u * (size_t)qn->n_ex + (qn->use_lut ? QLUT : 0);
}

odl_status odl_qmodel_write_chunks(const odl_qmodel *q, odl_writer *w, odl_diag *d)
{
    if (!q || !w || !w->write)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_write_chunks: bad arguments");
    if (!q->ready)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_write_chunks: the INT8 model was neither quantised nor loaded");
    uint8_t h[QNT_BYTES] = {0};
    le_put_u32(h, file_version(q));
    le_put_u32(h + 4, (uint32_t)q->boundary);
    le_put_f32(h + 8, q->in_q.scale);
    le_put_u32(h + 12, (uint32_t)q->in_q.zero_point);
    odl_status s = odl_file_write_chunk(w, ODL_CHUNK_QUANT, h, sizeof h, d);
    for (int32_t i = 0; i < q->boundary && s == ODL_OK; i++) {
        const qnode *qn = &q->l[i];
        uint8_t lh[QLAY_HEADER] = {0};
        le_put_u32(lh, (uint32_t)i);
        le_put_u32(lh + 4, (uint32_t)q->desc.layers[i].type);
        le_put_u32(lh + 8, (uint32_t)qn->fused);
        le_put_f32(lh + 12, qn->out_q.scale);
        le_put_u32(lh + 16, (uint32_t)qn->out_q.zero_point);
        le_put_u32(lh + 20, (uint32_t)qn->act_min);
        le_put_u32(lh + 24, (uint32_t)qn->act_max);
        le_put_u32(lh + 28, (uint32_t)qn->n_ch);
        le_put_u64(lh + 32, (uint64_t)qn->n_w);
        le_put_u32(lh + 40, (uint32_t)ex_bytes(qn));
        /* the target is little-endian (checked above): the int32 and float
         * arrays are already in file byte order and are written as they are */
        const size_t C = (size_t)qn->n_ch;
        const void *parts[8] = {lh, qn->bias, qn->mult, qn->shift, qn->w_scale, qn->w, qn->ex, qn->lut};
        const size_t sizes[8] = {QLAY_HEADER, 4 * C, 4 * C, 4 * C, 4 * C, qn->n_w, 4u * (size_t)qn->n_ex,
                                 qn->use_lut ? QLUT : 0};
        const void *pp[8];
        size_t ps[8];
        int np = 0;
        for (int k = 0; k < 8; k++)
            if (sizes[k]) {
                pp[np] = parts[k];
                ps[np++] = sizes[k];
            }
        s = np == 1 ? odl_file_write_chunk(w, ODL_CHUNK_QLAYER, lh, sizeof lh, d)
                    : odl_file_write_chunk_parts(w, ODL_CHUNK_QLAYER, pp, ps, np, d);
    }
    return s;
}

odl_status odl_qmodel_save(const odl_qmodel *q, const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                           odl_writer *w, odl_diag *d)
{
    if (!q || !m || !w || !w->write || n_meta < 0 || (n_meta && !meta))
        return odl_fail(d, ODL_ERR_ARG, "qmodel_save: bad arguments");
    if (!q->ready)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_save: the INT8 model was neither quantised nor loaded");
    const odl_model_desc *desc = odl_model_get_desc(m);
    odl_status s = check_prefix(&q->desc, desc, q->boundary, d);
    if (s != ODL_OK)
        return s;
    s = odl_model_write_chunks(m, meta, n_meta, w, d);
    if (s == ODL_OK)
        s = odl_qmodel_write_chunks(q, w, d);
    if (s == ODL_OK)
        s = odl_file_write_end(w, d);
    return s;
}

/* The QLAY chunk of prefix layer i, or NULL; *count (may be NULL) gets the
 * number of QLAY chunks for i. Walks chunk headers only: the file passed
 * odl_file_open/next once (every CRC and bound). */
static const uint8_t *find_qlay(const uint8_t *buf, size_t len, uint32_t i, size_t *n_out, int *count)
{
    const uint8_t *found = NULL;
    int k = 0;
    for (size_t pos = ODL_FILE_HEADER_BYTES; pos <= len - ODL_CHUNK_HEADER_BYTES;) {
        const uint8_t *h = buf + pos;
        const uint64_t cn = le_get_u64(h + 8);
        const uint32_t t = le_get_u32(h);
        if (t == ODL_CHUNK_END)
            break;
        if (t == ODL_CHUNK_QLAYER && cn >= 4 && le_get_u32(h + ODL_CHUNK_HEADER_BYTES) == i) {
            if (!found) {
                found = h + ODL_CHUNK_HEADER_BYTES;
                *n_out = (size_t)cn;
            }
            k++;
        }
        pos += ODL_CHUNK_HEADER_BYTES + (size_t)cn + (size_t)((16u - (cn & 15u)) & 15u);
    }
    if (count)
        *count = k;
    return found;
}

static int mult_ok(int32_t mult, int32_t shift)
{
    return (mult == 0 || mult >= (1 << 30)) && shift >= -31 && shift <= 30;
}

typedef struct parse_ctx {
    const uint8_t *buf;
    size_t len;
    const odl_model_desc *desc;
    uint32_t version;
    odl_qparams in_q;
    odl_qmodel *q; /* NULL: checking only */
    int32_t prev_fused; /* the fused field of the node before */
} parse_ctx;

/* Output parameters of tensor t as the file gives them (the chunk of an
 * earlier node, already checked). */
static odl_qparams file_tq(const parse_ctx *c, int32_t t)
{
    if (t == 0)
        return c->in_q;
    size_t n = 0;
    const uint8_t *p = find_qlay(c->buf, c->len, (uint32_t)(t - 1), &n, NULL);
    odl_qparams r = {le_get_f32(p + 12), le_get_i32(p + 16)};
    return r;
}

/* Bytes of requantisation values and table node i of type `type` may carry
 * (format 2); -1 for "0 or the table" (relu, relu6), -2 for "0 or 8" (mean). */
static int32_t ex_expected(const odl_node_desc *l, int fused_away)
{
    if (fused_away)
        return 0;
    switch (l->type) {
    case ODL_LAYER_ADD: return 28;
    case ODL_LAYER_MUL: return 8;
    case ODL_LAYER_CONCAT: return 8 * l->n_in;
    case ODL_LAYER_PAD: return 4;
    case ODL_LAYER_GAP:
    case ODL_LAYER_RELU:
    case ODL_LAYER_RELU6: return -2;
    case ODL_LAYER_CLIP:
    case ODL_LAYER_LEAKY_RELU:
    case ODL_LAYER_SIGMOID:
    case ODL_LAYER_HARD_SIGMOID:
    case ODL_LAYER_HARD_SWISH:
    case ODL_LAYER_TANH: return QLUT;
    }
    return 0;
}

static odl_status parse_node(void *vctx, int32_t i, const odl_layer_shape *const *ins, const odl_layer_shape *out,
                             odl_diag *d)
{
    parse_ctx *c = vctx;
    const odl_node_desc *l = &c->desc->layers[i];
    const char *what = odl_layer_type_name(l->type);
    (void)ins;
    size_t n = 0;
    int count = 0;
    const uint8_t *p = find_qlay(c->buf, c->len, (uint32_t)i, &n, &count);
    if (!p)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): INT8 parameters missing from the file", (int)i, what);
    if (count > 1)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d: INT8 parameters appear twice", (int)i);
    const int32_t type = le_get_i32(p + 4), fused = le_get_i32(p + 8);
    const int fused_away = c->prev_fused != 0;
    if (fused_away && c->prev_fused != l->type)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): the layer before says it fuses a %s", (int)i, what,
                        odl_layer_type_name(c->prev_fused));
    int fused_ok = fused == 0;
    if (fused && has_params(l->type) && i + 1 < c->desc->n_layers) {
        const odl_node_desc *nx = &c->desc->layers[i + 1];
        fused_ok = fused == nx->type && nx->n_in == 1 && nx->in[0] == i + 1 &&
                   (fused == ODL_LAYER_RELU || fused == ODL_LAYER_RELU6 ||
                    (c->version >= 2 && fused == ODL_LAYER_CLIP));
    }
    if (type != l->type || !fused_ok)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d: INT8 layer type %d / fused activation %d do not fit the topology (%d)",
                        (int)i, (int)type, (int)fused, (int)l->type);
    if (c->q && (c->q->l[i].fused != fused || c->q->l[i].fused_away != fused_away))
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): fused activation %d in the file, %d in this model's plan",
                        (int)i, what, (int)fused, (int)c->q->l[i].fused);
    c->prev_fused = fused;
    odl_qparams oq = {le_get_f32(p + 12), le_get_i32(p + 16)};
    const int32_t amin = le_get_i32(p + 20), amax = le_get_i32(p + 24);
    if (!good_scale(oq.scale) || !in_s8(oq.zero_point) || !in_s8(amin) || !in_s8(amax) || amin > amax)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d: output scale, zero point %d or clamp %d..%d out of range", (int)i,
                        (int)oq.zero_point, (int)amin, (int)amax);
    const uint32_t C = le_get_u32(p + 28), E = le_get_u32(p + 40);
    const uint64_t W = le_get_u64(p + 32);
    if (C != out->n_bias || W != out->n_weights)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): %lu channels / %lu weights in the file, %zu / %zu expected",
                        (int)i, what, (unsigned long)C, (unsigned long)W, out->n_bias, out->n_weights);
    if (le_get_u32(p + 44) || (c->version < 2 && E))
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d: reserved INT8 header bytes are not zero", (int)i);
    const int32_t want = ex_expected(l, fused_away);
    const int ex_ok = want >= 0 ? E == (uint32_t)want : (E == 0 || E == 8);
    if (!ex_ok || E > QEX_BYTES_MAX)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): %lu bytes of requantisation values, which this operator does not take",
                        (int)i, what, (unsigned long)E);
    /* C ≤ 2^26, W ≤ 2^26 (checked topology), E ≤ 272: no overflow */
    if (n != QLAY_HEADER + 16u * (size_t)C + (size_t)W + E)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d: INT8 chunk is %zu bytes, %zu expected", (int)i, n,
                        QLAY_HEADER + 16u * (size_t)C + (size_t)W + E);
    const uint8_t *pb = p + QLAY_HEADER, *pm = pb + 4u * C, *ps = pm + 4u * C, *pw = ps + 4u * C, *pq = pw + 4u * C,
                  *pe = pq + W;
    for (uint32_t ch = 0; ch < C; ch++) {
        const int32_t bias = le_get_i32(pb + 4u * ch), mult = le_get_i32(pm + 4u * ch), sh = le_get_i32(ps + 4u * ch);
        if (bias < -ODL_QUANT_MAX_BIAS || bias > ODL_QUANT_MAX_BIAS)
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d channel %lu: bias %d beyond +-2^30", (int)i, (unsigned long)ch,
                            (int)bias);
        if (!mult_ok(mult, sh))
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d channel %lu: multiplier %d / shift %d out of range", (int)i,
                            (unsigned long)ch, (int)mult, (int)sh);
        if (!good_scale(le_get_f32(pw + 4u * ch)))
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d channel %lu: weight scale out of range", (int)i,
                            (unsigned long)ch);
    }
    const int lut = (E == QLUT) && ex_expected(l, fused_away) == QLUT;
    const uint32_t n_ex = lut ? 0 : E / 4;
    int32_t ex[QEX_MAX] = {0};
    for (uint32_t k = 0; k < n_ex; k++)
        ex[k] = le_get_i32(pe + 4u * k);
    if (l->type == ODL_LAYER_PAD && !in_s8(ex[0]))
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (pad): fill %d out of range", (int)i, (int)ex[0]);
    if (l->type == ODL_LAYER_ADD && (!mult_ok(ex[0], ex[1]) || !mult_ok(ex[2], ex[3]) || !mult_ok(ex[4], ex[5]) ||
                                     ex[6] < 0 || ex[6] > 20))
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (add): requantisation out of range", (int)i);
    if ((l->type == ODL_LAYER_MUL || l->type == ODL_LAYER_CONCAT || l->type == ODL_LAYER_GAP ||
         l->type == ODL_LAYER_RELU || l->type == ODL_LAYER_RELU6) && n_ex)
        for (uint32_t k = 0; k + 1 < n_ex; k += 2)
            if (!mult_ok(ex[k], ex[k + 1]))
                return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): requantisation out of range", (int)i, what);
    const odl_qparams in_q = file_tq(c, l->in[0]);
    const int must_keep = keeps_params(l->type) || (l->type == ODL_LAYER_GAP && !n_ex) ||
                          ((l->type == ODL_LAYER_RELU || l->type == ODL_LAYER_RELU6) && !n_ex && !fused_away);
    if (must_keep && !same_q(oq, in_q))
        return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): output parameters differ from its input's", (int)i, what);
    if (fused_away) {
        const odl_qparams pq2 = file_tq(c, i);
        if (!same_q(oq, pq2))
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): a fused activation with parameters other than its layer's",
                            (int)i, what);
    }
    if (c->q) {
        qnode *qn = &c->q->l[i];
        qn->out_q = oq;
        qn->act_min = amin;
        qn->act_max = amax;
        qn->n_ex = (int32_t)n_ex;
        memcpy(qn->ex, ex, sizeof ex);
        qn->use_lut = lut;
        if (c->q->in_place) { /* little-endian, 4-byte aligned (checked by the caller): the values, read only */
            qn->lut = lut ? (int8_t *)(uintptr_t)pe : NULL;
            if (C) {
                qn->bias = (int32_t *)(uintptr_t)pb;
                qn->mult = (int32_t *)(uintptr_t)pm;
                qn->shift = (int32_t *)(uintptr_t)ps;
                qn->w_scale = (float *)(uintptr_t)pw;
                qn->w = (int8_t *)(uintptr_t)pq;
            }
        } else if (lut)
            memcpy(qn->lut, pe, QLUT);
        if (C && !c->q->in_place) { /* little-endian target: the bytes are the values */
            memcpy(qn->bias, pb, 4u * C);
            memcpy(qn->mult, pm, 4u * C);
            memcpy(qn->shift, ps, 4u * C);
            memcpy(qn->w_scale, pw, 4u * C);
            memcpy(qn->w, pq, (size_t)W);
        }
    }
    return ODL_OK;
}

/* Validates every Q chunk of a file against desc (the file's topology, or
 * at least its prefix, already checked against the file); with q != NULL
 * (initialised for this topology and boundary) also copies the values into
 * q. */
static odl_status qparse(const void *buf, size_t len, const odl_model_desc *desc, int32_t *boundary, odl_qmodel *q,
                         odl_diag *d)
{
    odl_status s;
    odl_file_iter it;
    uint32_t t;
    const uint8_t *p;
    size_t n;
    int n_qnt = 0, n_qlay = 0;
    int32_t b = 0;
    uint32_t ver = 0;
    odl_qparams in_q = {1.0f, 0};
    /* pass 1: the QNT chunk (every CRC and the framing checked by the caller) */
    odl_file_open(&it, buf, len, NULL);
    while ((s = odl_file_next(&it, &t, &p, &n, d)) == ODL_OK && t != ODL_CHUNK_END) {
        if (t == ODL_CHUNK_QLAYER) {
            if (n < QLAY_HEADER)
                return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('QLAY'): %zu bytes, shorter than its %d-byte header",
                                (int)(it.index - 1), n, QLAY_HEADER);
            n_qlay++;
        }
        if (t != ODL_CHUNK_QUANT)
            continue;
        const int32_t chunk = it.index - 1;
        if (n_qnt++)
            return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: a second 'QNT ' chunk", (int)chunk);
        if (n != QNT_BYTES)
            return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('QNT '): %zu bytes, %d expected", (int)chunk, n, QNT_BYTES);
        const uint32_t bb = le_get_u32(p + 4);
        ver = le_get_u32(p);
        if (ver < 1 || ver > ODL_QUANT_VERSION)
            return odl_fail(d, ODL_ERR_UNSUPPORTED, "INT8 layers of version %lu; this odl reads versions 1 to %d",
                            (unsigned long)ver, ODL_QUANT_VERSION);
        if (bb < 1 || bb > (uint32_t)desc->n_layers)
            return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('QNT '): boundary %lu out of range 1..%d", (int)chunk,
                            (unsigned long)bb, (int)desc->n_layers);
        in_q.scale = le_get_f32(p + 8);
        in_q.zero_point = le_get_i32(p + 12);
        if (!good_scale(in_q.scale) || !in_s8(in_q.zero_point))
            return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('QNT '): input scale or zero point %d out of range",
                            (int)chunk, (int)in_q.zero_point);
        for (int k = 16; k < QNT_BYTES; k++)
            if (p[k])
                return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('QNT '): reserved byte %d is not zero", (int)chunk, k);
        b = (int32_t)bb;
    }
    if (s != ODL_OK)
        return s;
    if (!n_qnt)
        return odl_fail(d, ODL_ERR_NOT_FOUND, "no INT8 layers in this file (make them with odl quantize)");
    s = check_desc(desc, b, NULL, d);
    if (s != ODL_OK)
        return s;
    if (ver < 2)
        for (int32_t i = 0; i < b; i++)
            if (!v1_node(&desc->layers[i], i))
                return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): INT8 format 1 describes sequential prefixes of the original operators only",
                                (int)i, odl_layer_type_name(desc->layers[i].type));
    /* a chunk per prefix node, in node order (each checked against the
     * parameters of the tensors it reads) */
    if (n_qlay != b) {
        /* every prefix layer has exactly one: the rest name a layer at or past the boundary */
        odl_file_open(&it, buf, len, NULL);
        while (odl_file_next(&it, &t, &p, &n, NULL) == ODL_OK && t != ODL_CHUNK_END)
            if (t == ODL_CHUNK_QLAYER && le_get_u32(p) >= (uint32_t)b)
                return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('QLAY'): layer %lu is not below the boundary %d",
                                (int)(it.index - 1), (unsigned long)le_get_u32(p), (int)b);
        if (n_qlay < b) {
            for (int32_t i = 0; i < b; i++)
                if (!find_qlay(buf, len, (uint32_t)i, &n, NULL))
                    return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): INT8 parameters missing from the file", (int)i,
                                    odl_layer_type_name(desc->layers[i].type));
        }
        return odl_fail(d, ODL_ERR_FORMAT, "%d INT8 layer chunks for a boundary of %d", n_qlay, (int)b);
    }
    parse_ctx c;
    memset(&c, 0, sizeof c);
    c.buf = buf;
    c.len = len;
    c.desc = desc;
    c.version = ver;
    c.in_q = in_q;
    c.q = q;
    const odl_model_desc pd = prefix_of(desc, b);
    c.desc = &pd;
    s = odl_desc_visit(&pd, parse_node, &c, d);
    if (s != ODL_OK)
        return s;
    if (q) {
        q->in_q = in_q;
        q->ready = 1;
    }
    *boundary = b;
    return ODL_OK;
}

odl_status odl_qfile_read_desc(const void *buf, size_t len, odl_model_desc *desc, int32_t *boundary, odl_diag *d)
{
    if (!buf || !desc || !boundary)
        return odl_fail(d, ODL_ERR_ARG, "qfile_read_desc: NULL argument");
    odl_status s = odl_file_read_desc(buf, len, desc, d);
    if (s != ODL_OK)
        return s;
    return qparse(buf, len, desc, boundary, NULL, d);
}

static odl_status qload(odl_qmodel *q, const void *buf, size_t len, odl_diag *d);

odl_status odl_qmodel_load(odl_qmodel *q, const void *buf, size_t len, odl_diag *d)
{
    if (!q || !buf)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_load: NULL argument");
    if (q->in_place)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_load: this INT8 model reads its parameters in place (use "
                        "odl_qmodel_load_in_place)");
    return qload(q, buf, len, d);
}

odl_status odl_qmodel_load_in_place(odl_qmodel *q, const void *buf, size_t len, odl_diag *d)
{
    if (!q || !buf)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_load_in_place: NULL argument");
    if (!q->in_place)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_load_in_place: this INT8 model has its own parameter storage "
                        "(made by odl_qmodel_init; use odl_qmodel_load)");
    /* chunk payloads are at 16-byte multiples of the file (docs/format.md): an
     * aligned buffer gives aligned int32/float arrays */
    if ((uintptr_t)buf % 16u)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_load_in_place: the file's address is %lu past a 16-byte boundary; it "
                        "must be aligned (odl export-c aligns its arrays)", (unsigned long)((uintptr_t)buf % 16u));
    uint16_t probe = 1;
    uint8_t first;
    memcpy(&first, &probe, 1);
    if (!first)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "qmodel_load_in_place: needs a little-endian target");
    return qload(q, buf, len, d);
}

static odl_status qload(odl_qmodel *q, const void *buf, size_t len, odl_diag *d)
{
    /* the file's prefix nodes must be q's: compared node by node, then the
     * Q chunks are checked against q's prefix */
    topo_view v;
    odl_status s = odl_topo_find(buf, len, &v, d);
    if (s != ODL_OK)
        return s;
    int32_t fc, fh, fw;
    odl_topo_input(&v, &fc, &fh, &fw);
    const odl_model_desc *a = &q->desc;
    if (fc != a->in_c || fh != a->in_h || fw != a->in_w || v.n_nodes < (uint32_t)q->boundary)
        return odl_fail(d, ODL_ERR_SHAPE, "INT8 model and the file differ (input %dx%dx%d vs %dx%dx%d, %lu layers)",
                        (int)a->in_c, (int)a->in_h, (int)a->in_w, (int)fc, (int)fh, (int)fw,
                        (unsigned long)v.n_nodes);
    for (int32_t i = 0; i < q->boundary; i++) {
        odl_node_desc fn;
        s = odl_topo_get(&v, i, &fn, d);
        if (s != ODL_OK)
            return s;
        if (!same_layer(&a->layers[i], &fn))
            return odl_fail(d, ODL_ERR_SHAPE, "layer %d differs between the INT8 model (%s) and the file (%s)",
                            (int)i, odl_layer_type_name(a->layers[i].type), odl_layer_type_name(fn.type));
    }
    /* the boundary must be q's */
    for (size_t pos = ODL_FILE_HEADER_BYTES; pos <= len - ODL_CHUNK_HEADER_BYTES;) {
        const uint8_t *h = (const uint8_t *)buf + pos;
        const uint64_t cn = le_get_u64(h + 8);
        if (le_get_u32(h) == ODL_CHUNK_END)
            break;
        if (le_get_u32(h) == ODL_CHUNK_QUANT && cn == QNT_BYTES &&
            le_get_u32(h + ODL_CHUNK_HEADER_BYTES + 4) != (uint32_t)q->boundary)
            return odl_fail(d, ODL_ERR_SHAPE, "the file's INT8 boundary is %lu, the model's %d",
                            (unsigned long)le_get_u32(h + ODL_CHUNK_HEADER_BYTES + 4), (int)q->boundary);
        pos += ODL_CHUNK_HEADER_BYTES + (size_t)cn + (size_t)((16u - (cn & 15u)) & 15u);
    }
    int32_t b = 0;
    s = qparse(buf, len, a, &b, NULL, d);
    if (s != ODL_OK)
        return s;
    if (b != q->boundary)
        return odl_fail(d, ODL_ERR_SHAPE, "the file's INT8 boundary is %d, the model's %d", (int)b, (int)q->boundary);
    q->ready = 0;
    return qparse(buf, len, a, &b, q, d);
}
