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

/* Output pixels unfolded at a time (im2col): the scratch is QCONV_COLS
 * columns of K = in_c·k_h·k_w int16 values, K contiguous (CMSIS-NN's
 * layout: 288 bytes for a 3x3 conv over 8 channels), not the whole plane. */
#define QCONV_COLS 2

size_t odl_qconv2d_scratch_bytes(const odl_window_dims *d)
{
    const size_t k = (size_t)d->in_c * d->k_h * d->k_w;
    return (k * QCONV_COLS * sizeof(int16_t) + 3u) & ~(size_t)3u;
}

void odl_qconv2d_s8_ref(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r,
                        int8_t *y)
{
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    int32_t acc = r->bias ? r->bias[co] : 0;
                    for (int32_t ci = 0; ci < d->in_c; ci++)
                        for (int32_t kh = 0; kh < d->k_h; kh++)
                            for (int32_t kw = 0; kw < d->k_w; kw++) {
                                int32_t ih = oh * d->stride_h - d->pad_h + kh;
                                int32_t iw = ow * d->stride_w - d->pad_w + kw;
                                if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                    continue;
                                int32_t xv = x[(((size_t)n * d->in_c + ci) * d->in_h + ih) * d->in_w + iw];
                                int32_t wv = w[(((size_t)co * d->in_c + ci) * d->k_h + kh) * d->k_w + kw];
                                acc += (xv - r->in_zp) * wv;
                            }
                    y[(((size_t)n * d->out_c + co) * d->out_h + oh) * d->out_w + ow] = requant(acc, co, r);
                }
}

/* col[k] = x − in_zp (int16) of output pixel (oh, ow), 0 over the padding;
 * k = (ci, kh, kw). */
static void im2col_pixel_s8(const odl_window_dims *d, const int8_t *xn, int32_t zp, int32_t oh, int32_t ow,
                            int16_t *col)
{
    for (int32_t ci = 0; ci < d->in_c; ci++) {
        const int8_t *xc = xn + (size_t)ci * plane_in(d);
        for (int32_t kh = 0; kh < d->k_h; kh++) {
            const int32_t ih = oh * d->stride_h - d->pad_h + kh;
            if (ih < 0 || ih >= d->in_h) {
                memset(col, 0, sizeof(int16_t) * (size_t)d->k_w);
                col += d->k_w;
                continue;
            }
            const int8_t *xr = xc + (size_t)ih * d->in_w;
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                const int32_t iw = ow * d->stride_w - d->pad_w + kw;
                *col++ = (iw < 0 || iw >= d->in_w) ? (int16_t)0 : (int16_t)((int32_t)xr[iw] - zp);
            }
        }
    }
}

void odl_qconv2d_s8(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r, int8_t *y,
                    void *scratch)
{
    const size_t P = plane_out(d);
    const size_t K = (size_t)d->in_c * d->k_h * d->k_w;
    int16_t *col = scratch;
    for (int32_t n = 0; n < d->batch; n++) {
        const int8_t *xn = x + (size_t)n * d->in_c * plane_in(d);
        int8_t *yn = y + (size_t)n * d->out_c * P;
        int32_t oh = 0, ow = 0;
        for (size_t p0 = 0; p0 < P; p0 += QCONV_COLS) {
            const size_t np = P - p0 < QCONV_COLS ? P - p0 : QCONV_COLS;
            for (size_t j = 0; j < np; j++) {
                im2col_pixel_s8(d, xn, r->in_zp, oh, ow, col + j * K);
                if (++ow == d->out_w)
                    ow = 0, oh++;
            }
            for (int32_t co = 0; co < d->out_c; co++) {
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
                            int32_t ih = oh * d->stride_h - d->pad_h + kh;
                            int32_t iw = ow * d->stride_w - d->pad_w + kw;
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
        if (d->k_h == 2 && d->k_w == 2 && d->stride_h == 2 && d->stride_w == 2 && d->pad_h == 0 && d->pad_w == 0) {
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
                    y[(((size_t)n * d->in_c + c) * d->out_h + oh) * d->out_w + ow] =
                        (int8_t)clamp_i32(cnt ? div_round(acc, cnt) : 0, -128, 127);
                }
}

void odl_qavgpool_s8(const odl_window_dims *d, const int8_t *x, int8_t *y)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const int8_t *xc = x + pl * plane_in(d);
        int8_t *yc = y + pl * plane_out(d);
        for (int32_t oh = 0; oh < d->out_h; oh++) {
            const span rs = row_span(d, oh);
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                const span cs = col_span(d, ow);
                int32_t acc = 0;
                for (int32_t kh = rs.lo; kh < rs.hi; kh++)
                    for (int32_t kw = cs.lo; kw < cs.hi; kw++)
                        acc += xc[(size_t)(rs.start + kh) * d->in_w + cs.start + kw];
                const int32_t cnt = (rs.hi > rs.lo && cs.hi > cs.lo) ? (rs.hi - rs.lo) * (cs.hi - cs.lo) : 0;
                yc[(size_t)oh * d->out_w + ow] = (int8_t)clamp_i32(cnt > 0 ? div_round(acc, cnt) : 0, -128, 127);
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

typedef struct qlayer {
    odl_layer_shape in, out;
    odl_qparams out_q;         /* output parameters (= input's for layers without weights) */
    int32_t fused;             /* ODL_LAYER_RELU/RELU6 folded into this layer's clamp, else 0 */
    int32_t fused_away;        /* 1: this activation is applied by the layer before */
    int32_t act_min, act_max;
    int32_t n_ch;              /* output channels with weights (0: none) */
    size_t n_w;
    int8_t *w;
    int32_t *bias, *mult, *shift;
    float *w_scale;
} qlayer;

struct odl_qmodel {
    odl_model_desc desc;       /* the prefix's nodes [0, boundary), in the arena */
    int32_t boundary, max_batch;
    odl_layer_shape in_shape;
    odl_qparams in_q;
    qlayer *l;                 /* boundary, in the arena */
    int8_t *buf[2];
    void *conv_scratch;
    int32_t ready; /* 1 once quantised or loaded */
    int32_t in_place; /* parameters point into the caller's file (read-only), not the arena */
};

static int has_params(int32_t t)
{
    return t == ODL_LAYER_DENSE || t == ODL_LAYER_CONV2D || t == ODL_LAYER_DEPTHWISE;
}

/* The activation layer i+1 folds into layer i when both are in the prefix. */
static int32_t fused_act(const odl_model_desc *desc, int32_t boundary, int32_t i)
{
    if (!has_params(desc->layers[i].type) || i + 1 >= boundary)
        return 0;
    const int32_t t = desc->layers[i + 1].type;
    return (t == ODL_LAYER_RELU || t == ODL_LAYER_RELU6) ? t : 0;
}

static size_t reduction(const odl_model_desc *desc, const odl_layer_shape *in, int32_t i)
{
    const odl_node_desc *l = &desc->layers[i];
    switch (l->type) {
    case ODL_LAYER_DENSE: return in->size;
    case ODL_LAYER_CONV2D: return (size_t)in->c * l->k_h * l->k_w;
    case ODL_LAYER_DEPTHWISE: return (size_t)l->k_h * l->k_w;
    }
    return 0;
}

static odl_layer_shape input_shape(const odl_model_desc *desc)
{
    const odl_layer_shape in = {desc->in_c, desc->in_h, desc->in_w, (size_t)desc->in_c * desc->in_h * desc->in_w, 0, 0};
    return in;
}

/* Whether the INT8 path runs node i of a prefix, and if not, why. INT8
 * covers sequential prefixes of the original operators; graph nodes come in
 * a later step. */
static const char *unsupported_node(const odl_node_desc *l, int32_t i)
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
        return "the operator has no INT8 kernel yet";
    }
    if (l->n_in != 1 || l->in[0] != i)
        return "it does not read the node before it (INT8 runs sequential prefixes only)";
    if (l->groups != 1)
        return "grouped convolution has no INT8 kernel yet";
    if (l->dil_h != 1 || l->dil_w != 1)
        return "dilation has no INT8 kernel yet";
    if (l->pad_b != l->pad_t || l->pad_r != l->pad_l)
        return "asymmetric padding has no INT8 kernel yet";
    if (l->flags)
        return "ceil mode / count_include_pad have no INT8 kernel yet";
    return NULL;
}

/* The output shape of prefix node i from its input's (the prefix is
 * sequential, so no table of every shape is needed): the node checked as a
 * one-node model. */
static odl_status node_shape(const odl_node_desc *node, const odl_layer_shape *in, odl_layer_shape *out,
                             odl_diag *d)
{
    odl_node_desc one = *node;
    one.in[0] = 0;
    odl_model_desc m1;
    odl_status s = odl_desc_init(&m1, &one, 1, in->c, in->h, in->w);
    if (s != ODL_OK)
        return odl_fail(d, s, "quantize: node input %dx%dx%d out of range", (int)in->c, (int)in->h, (int)in->w);
    m1.layers[0] = one;
    m1.n_layers = 1;
    return odl_desc_check(&m1, out, d);
}

/* Checks the prefix [0, boundary) of desc (n_layers nodes, boundary in
 * 1..n_layers) for INT8: every node supported, reductions in range. With
 * shapes != NULL (room for boundary), fills each prefix node's output. */
static odl_status check_desc(const odl_model_desc *desc, int32_t boundary, odl_layer_shape *shapes, odl_diag *d)
{
    if (boundary < 1 || boundary > desc->n_layers)
        return odl_fail(d, ODL_ERR_ARG, "quantize: boundary %d out of range 1..%d", (int)boundary,
                        (int)desc->n_layers);
    if (!odl_desc_is_cut(desc, boundary))
        return odl_fail(d, ODL_ERR_ARG, "quantize: boundary %d is not a cut point (a later node reads an earlier tensor)",
                        (int)boundary);
    odl_layer_shape in = input_shape(desc);
    for (int32_t i = 0; i < boundary; i++) {
        const char *why = unsupported_node(&desc->layers[i], i);
        if (why)
            return odl_fail(d, ODL_ERR_UNSUPPORTED, "quantize: node %d (%s): %s; pick a boundary at or before %d",
                            (int)i, odl_layer_type_name(desc->layers[i].type), why, (int)i);
        odl_layer_shape out;
        odl_status s = node_shape(&desc->layers[i], &in, &out, d);
        if (s != ODL_OK) {
            odl_diag_prefix(d, "quantize");
            return s;
        }
        const size_t k = reduction(desc, &in, i);
        if (k > ODL_QUANT_MAX_REDUCTION)
            return odl_fail(d, ODL_ERR_UNSUPPORTED,
                            "quantize: layer %d (%s) sums %zu inputs per output; INT8 supports at most %d", (int)i,
                            odl_layer_type_name(desc->layers[i].type), k, ODL_QUANT_MAX_REDUCTION);
        if (shapes)
            shapes[i] = out;
        in = out;
    }
    return ODL_OK;
}

static odl_window_dims wdims(const odl_node_desc *l, const odl_layer_shape *in, const odl_layer_shape *out,
                             int32_t batch)
{
    /* INT8 nodes have symmetric padding, no dilation, one group (check_desc) */
    return odl_window_dims_simple(batch, in->c, in->h, in->w, out->c, out->h, out->w, l->k_h, l->k_w, l->stride_h,
                                  l->stride_w, l->pad_t, l->pad_l);
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
    odl_layer_shape in = input_shape(desc);
    QALLOC(q->l, sizeof(qlayer) * (size_t)boundary, ODL_MEM_STATE);
    odl_node_desc *nodes = NULL;
    QALLOC(nodes, sizeof(odl_node_desc) * (size_t)boundary, ODL_MEM_STATE);
    if (q) {
        memset(q->l, 0, sizeof(qlayer) * (size_t)boundary);
        odl_desc_init(&q->desc, nodes, boundary, desc->in_c, desc->in_h, desc->in_w);
        memcpy(nodes, desc->layers, sizeof(odl_node_desc) * (size_t)boundary);
        q->desc.n_layers = boundary;
        q->boundary = boundary;
        q->max_batch = max_batch;
        q->in_place = in_place;
        q->in_shape = in;
        q->in_q.scale = 1.0f;
    }
    size_t biggest = in.size, scratch = 0;
    for (int32_t i = 0; i < boundary; i++) {
        const odl_node_desc *l = &desc->layers[i];
        odl_layer_shape out;
        s = node_shape(l, &in, &out, d);
        if (s != ODL_OK)
            return s;
        qlayer *ql = q ? &q->l[i] : NULL;
        if (ql) {
            ql->in = in;
            ql->out = out;
            ql->out_q.scale = 1.0f;
            ql->fused = fused_act(desc, boundary, i);
            ql->fused_away = i > 0 && fused_act(desc, boundary, i - 1);
            ql->act_min = -128;
            ql->act_max = 127;
        }
        if (has_params(l->type)) {
            const size_t C = out.n_bias;
            if (ql) {
                ql->n_ch = (int32_t)C;
                ql->n_w = out.n_weights;
            }
        }
        if (has_params(l->type) && !in_place) {
            const size_t C = out.n_bias;
            QALLOC(ql->w, out.n_weights, ODL_MEM_PARAMS);
            QALLOC(ql->bias, C * sizeof(int32_t), ODL_MEM_PARAMS);
            QALLOC(ql->mult, C * sizeof(int32_t), ODL_MEM_PARAMS);
            QALLOC(ql->shift, C * sizeof(int32_t), ODL_MEM_PARAMS);
            QALLOC(ql->w_scale, C * sizeof(float), ODL_MEM_PARAMS);
        }
        if (l->type == ODL_LAYER_CONV2D) {
            odl_window_dims wd = wdims(l, &in, &out, 1);
            size_t sb = odl_qconv2d_scratch_bytes(&wd);
            scratch = sb > scratch ? sb : scratch;
        }
        biggest = out.size > biggest ? out.size : biggest;
        in = out;
    }
    QALLOC(q->buf[0], biggest * (size_t)max_batch, ODL_MEM_SCRATCH);
    QALLOC(q->buf[1], biggest * (size_t)max_batch, ODL_MEM_SCRATCH);
    if (scratch)
        QALLOC(q->conv_scratch, scratch, ODL_MEM_SCRATCH);
#undef QALLOC
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

/* Output clamp of an activation applied to a tensor with parameters p. */
static void act_range(int32_t act, odl_qparams p, int32_t *lo, int32_t *hi)
{
    *lo = -128;
    *hi = 127;
    if (act == ODL_LAYER_RELU || act == ODL_LAYER_RELU6)
        *lo = p.zero_point;
    if (act == ODL_LAYER_RELU6)
        *hi = odl_q_quantize(6.0f, p);
}

static int same_layer(const odl_node_desc *a, const odl_node_desc *b)
{
    return a->type == b->type && a->units == b->units && a->k_h == b->k_h && a->k_w == b->k_w &&
           a->stride_h == b->stride_h && a->stride_w == b->stride_w && a->pad_t == b->pad_t &&
           a->pad_l == b->pad_l && a->pad_b == b->pad_b && a->pad_r == b->pad_r && a->n_in == b->n_in &&
           a->in[0] == b->in[0] && a->groups == b->groups && a->dil_h == b->dil_h && a->dil_w == b->dil_w &&
           a->flags == b->flags;
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
    odl_qparams cur = q->in_q;
    for (int32_t i = 0; i < q->boundary; i++) {
        qlayer *ql = &q->l[i];
        const int32_t type = q->desc.layers[i].type;
        if (!has_params(type)) {
            ql->out_q = cur;
            ql->act_min = -128;
            ql->act_max = 127;
            if ((type == ODL_LAYER_RELU || type == ODL_LAYER_RELU6) && !ql->fused_away)
                act_range(type, cur, &ql->act_min, &ql->act_max);
            continue;
        }
        const int32_t src = ql->fused ? i + 1 : i; /* calibrated range after the activation */
        ql->out_q = odl_q_choose_params(c->min[src], c->max[src]);
        act_range(ql->fused, ql->out_q, &ql->act_min, &ql->act_max);
        size_t nw, nb;
        const float *w = odl_model_param_const(m, i, 0, &nw);
        const float *b = odl_model_param_const(m, i, 1, &nb);
        if (!w || !b || nw != ql->n_w || nb != (size_t)ql->n_ch)
            return odl_fail(d, ODL_ERR_STATE, "quantize: layer %d (%s) has no parameters loaded", (int)i,
                            odl_layer_type_name(type));
        const size_t per = ql->n_w / (size_t)ql->n_ch;
        for (int32_t ch = 0; ch < ql->n_ch; ch++) {
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
                ql->w[(size_t)ch * per + k] = (int8_t)(v < -127.0 ? -127 : v > 127.0 ? 127 : (int32_t)v);
            }
            const double sacc = (double)cur.scale * (double)sw;
            const double bq = round((double)b[ch] / sacc);
            if (!(fabs(bq) <= (double)ODL_QUANT_MAX_BIAS))
                return odl_fail(d, ODL_ERR_NUMERIC,
                                "quantize: layer %d channel %d: bias %.4f is too large for int32 at scale %.9f",
                                (int)i, (int)ch, (double)b[ch], sacc);
            ql->bias[ch] = (int32_t)bq;
            ql->w_scale[ch] = sw;
            odl_q_quantize_multiplier(sacc / (double)ql->out_q.scale, &ql->mult[ch], &ql->shift[ch]);
        }
        cur = ql->out_q;
    }
    q->ready = 1;
    return ODL_OK;
}

static odl_qrequant rq_of(const qlayer *ql, odl_qparams in_q)
{
    odl_qrequant r = {in_q.zero_point, ql->out_q.zero_point, ql->act_min, ql->act_max, ql->bias, ql->mult, ql->shift};
    return r;
}

/* Runs the prefix on nb ≤ max_batch samples; returns the int8 output. */
static const int8_t *qrun(odl_qmodel *q, const float *x, int32_t nb)
{
    const size_t in_total = q->in_shape.size * (size_t)nb;
    int8_t *cur = q->buf[0];
    for (size_t k = 0; k < in_total; k++)
        cur[k] = odl_q_quantize(x[k], q->in_q);
    odl_qparams cur_q = q->in_q;
    for (int32_t i = 0; i < q->boundary; i++) {
        const odl_node_desc *l = &q->desc.layers[i];
        const qlayer *ql = &q->l[i];
        int8_t *dst = cur == q->buf[0] ? q->buf[1] : q->buf[0];
        switch (l->type) {
        case ODL_LAYER_DENSE: {
            odl_dense_dims dd = {nb, (int32_t)ql->in.size, (int32_t)ql->out.size};
            odl_qrequant r = rq_of(ql, cur_q);
            odl_qdense_s8(&dd, cur, ql->w, &r, dst);
            cur = dst;
            break;
        }
        case ODL_LAYER_CONV2D: {
            odl_window_dims wd = wdims(l, &ql->in, &ql->out, nb);
            odl_qrequant r = rq_of(ql, cur_q);
            odl_qconv2d_s8(&wd, cur, ql->w, &r, dst, q->conv_scratch);
            cur = dst;
            break;
        }
        case ODL_LAYER_DEPTHWISE: {
            odl_window_dims wd = wdims(l, &ql->in, &ql->out, nb);
            odl_qrequant r = rq_of(ql, cur_q);
            odl_qdepthwise_s8(&wd, cur, ql->w, &r, dst);
            cur = dst;
            break;
        }
        case ODL_LAYER_MAXPOOL: {
            odl_window_dims wd = wdims(l, &ql->in, &ql->out, nb);
            odl_qmaxpool_s8(&wd, cur, dst);
            cur = dst;
            break;
        }
        case ODL_LAYER_AVGPOOL: {
            odl_window_dims wd = wdims(l, &ql->in, &ql->out, nb);
            odl_qavgpool_s8(&wd, cur, dst);
            cur = dst;
            break;
        }
        case ODL_LAYER_GAP:
            odl_qgap_s8(nb, ql->in.c, ql->in.h * ql->in.w, cur, dst);
            cur = dst;
            break;
        case ODL_LAYER_RELU:
        case ODL_LAYER_RELU6:
            if (!ql->fused_away)
                odl_qclamp_s8(ql->out.size * (size_t)nb, cur, ql->act_min, ql->act_max, cur);
            break;
        default: /* flatten, dropout (inference): the same bytes */
            break;
        }
        cur_q = ql->out_q;
    }
    return cur;
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
static void qforward(odl_qmodel *q, const float *x, int32_t n, float *z, int8_t *y)
{
    const size_t in_sz = q->in_shape.size, out_sz = q->l[q->boundary - 1].out.size;
    const odl_qparams p = q->l[q->boundary - 1].out_q;
    for (int32_t start = 0; start < n; start += q->max_batch) {
        const int32_t nb = n - start < q->max_batch ? n - start : q->max_batch;
        const int8_t *o = qrun(q, x + (size_t)start * in_sz, nb);
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
    qforward(q, x, n, z, NULL);
    return ODL_OK;
}

odl_status odl_qmodel_forward_s8(odl_qmodel *q, const float *x, int32_t n, int8_t *y, odl_qparams *p, odl_diag *d)
{
    odl_status s = check_forward(q, x, n, y, d);
    if (s != ODL_OK)
        return s;
    qforward(q, x, n, NULL, y);
    if (p)
        *p = q->l[q->boundary - 1].out_q;
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
        a += q->l[i].n_w + 16u * (size_t)q->l[i].n_ch;
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
    if (!desc || n < 1 || boundary < 1 || boundary > desc->n_layers || check_desc(desc, boundary, NULL, NULL) != ODL_OK)
        return 0;
    size_t big = 0;
    odl_layer_shape in = input_shape(desc), out;
    for (int32_t i = 0; i < boundary; i++, in = out) {
        if (node_shape(&desc->layers[i], &in, &out, NULL) != ODL_OK)
            return 0;
        big = out.size > big ? out.size : big;
    }
    return 2u * big * (size_t)n;
}

static int widen(const float *v, size_t n, float *lo, float *hi)
{
    float a = *lo, b = *hi;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(v[k]))
            return 0;
        a = v[k] < a ? v[k] : a;
        b = v[k] > b ? v[k] : b;
    }
    *lo = a;
    *hi = b;
    return 1;
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
    const odl_layer_shape in = odl_model_layer_shape(m, -1);
    if (!widen(x, in.size * (size_t)n, &c->in_min, &c->in_max))
        return odl_fail(d, ODL_ERR_NUMERIC, "calibration: non-finite input value");
    const size_t half = need / 2;
    const float *cur = x;
    for (int32_t i = 0; i < c->boundary; i++) {
        float *dst = work + (size_t)(i & 1) * half;
        odl_status s = odl_model_forward_range(m, i, i + 1, cur, n, dst, d);
        if (s != ODL_OK)
            return s;
        const size_t sz = odl_model_layer_shape(m, i).size * (size_t)n;
        if (!widen(dst, sz, &c->min[i], &c->max[i]))
            return odl_fail(d, ODL_ERR_NUMERIC, "calibration: layer %d (%s) produced a non-finite value", (int)i,
                            odl_layer_type_name(desc->layers[i].type));
        cur = dst;
    }
    c->samples += n;
    return ODL_OK;
}

/* ---- files ----------------------------------------------------------------- */

#define QNT_BYTES 32
#define QLAY_HEADER 48

odl_status odl_qmodel_write_chunks(const odl_qmodel *q, odl_writer *w, odl_diag *d)
{
    if (!q || !w || !w->write)
        return odl_fail(d, ODL_ERR_ARG, "qmodel_write_chunks: bad arguments");
    if (!q->ready)
        return odl_fail(d, ODL_ERR_STATE, "qmodel_write_chunks: the INT8 model was neither quantised nor loaded");
    uint8_t h[QNT_BYTES] = {0};
    le_put_u32(h, ODL_QUANT_VERSION);
    le_put_u32(h + 4, (uint32_t)q->boundary);
    le_put_f32(h + 8, q->in_q.scale);
    le_put_u32(h + 12, (uint32_t)q->in_q.zero_point);
    odl_status s = odl_file_write_chunk(w, ODL_CHUNK_QUANT, h, sizeof h, d);
    for (int32_t i = 0; i < q->boundary && s == ODL_OK; i++) {
        const qlayer *ql = &q->l[i];
        uint8_t lh[QLAY_HEADER] = {0};
        le_put_u32(lh, (uint32_t)i);
        le_put_u32(lh + 4, (uint32_t)q->desc.layers[i].type);
        le_put_u32(lh + 8, (uint32_t)ql->fused);
        le_put_f32(lh + 12, ql->out_q.scale);
        le_put_u32(lh + 16, (uint32_t)ql->out_q.zero_point);
        le_put_u32(lh + 20, (uint32_t)ql->act_min);
        le_put_u32(lh + 24, (uint32_t)ql->act_max);
        le_put_u32(lh + 28, (uint32_t)ql->n_ch);
        le_put_u64(lh + 32, (uint64_t)ql->n_w);
        if (!ql->n_ch) {
            s = odl_file_write_chunk(w, ODL_CHUNK_QLAYER, lh, sizeof lh, d);
            continue;
        }
        /* the target is little-endian (checked above): the int32 and float
         * arrays are already in file byte order and are written as they are */
        const size_t C = (size_t)ql->n_ch;
        const void *parts[6] = {lh, ql->bias, ql->mult, ql->shift, ql->w_scale, ql->w};
        const size_t sizes[6] = {QLAY_HEADER, 4 * C, 4 * C, 4 * C, 4 * C, ql->n_w};
        s = odl_file_write_chunk_parts(w, ODL_CHUNK_QLAYER, parts, sizes, 6, d);
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

static int in_s8(int32_t v) { return v >= -128 && v <= 127; }
static int good_scale(float f) { return isfinite(f) && f >= FLT_MIN; }

/* The QLAY chunk of prefix layer i, or NULL; *count (may be NULL) gets the
 * number of QLAY chunks for i. Walks chunk headers only: the file passed
 * odl_file_open/next once (every CRC and bound). */
static const uint8_t *find_qlay(const uint8_t *buf, size_t len, uint32_t i, size_t *n_out, int32_t *chunk,
                                int *count)
{
    const uint8_t *found = NULL;
    int k = 0;
    int32_t idx = 0;
    for (size_t pos = ODL_FILE_HEADER_BYTES; pos <= len - ODL_CHUNK_HEADER_BYTES; idx++) {
        const uint8_t *h = buf + pos;
        const uint64_t cn = le_get_u64(h + 8);
        const uint32_t t = le_get_u32(h);
        if (t == ODL_CHUNK_END)
            break;
        if (t == ODL_CHUNK_QLAYER && cn >= 4 && le_get_u32(h + ODL_CHUNK_HEADER_BYTES) == i) {
            if (!found) {
                found = h + ODL_CHUNK_HEADER_BYTES;
                *n_out = (size_t)cn;
                *chunk = idx;
            }
            k++;
        }
        pos += ODL_CHUNK_HEADER_BYTES + (size_t)cn + (size_t)((16u - (cn & 15u)) & 15u);
    }
    if (count)
        *count = k;
    return found;
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
        const uint32_t ver = le_get_u32(p), bb = le_get_u32(p + 4);
        if (ver != ODL_QUANT_VERSION)
            return odl_fail(d, ODL_ERR_UNSUPPORTED, "INT8 layers of version %lu; this odl reads version %d",
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
    /* pass 2: one QLAY per prefix layer, in layer order (each layer's
     * output parameters are checked against its input's) */
    odl_qparams cur = in_q;
    odl_layer_shape in = input_shape(desc);
    for (int32_t i = 0; i < b; i++) {
        int32_t chunk = 0;
        int count = 0;
        p = find_qlay(buf, len, (uint32_t)i, &n, &chunk, &count);
        if (!p)
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): INT8 parameters missing from the file", (int)i,
                            odl_layer_type_name(desc->layers[i].type));
        if (count > 1)
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d: INT8 parameters appear twice", (int)i);
        odl_layer_shape sh;
        s = node_shape(&desc->layers[i], &in, &sh, d);
        if (s != ODL_OK)
            return s;
        in = sh;
        const int32_t type = le_get_i32(p + 4), fused = le_get_i32(p + 8);
        if (type != desc->layers[i].type || fused != fused_act(desc, b, i))
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d: INT8 layer type %d / fused activation %d, the topology says %d / %d",
                            (int)i, (int)type, (int)fused, (int)desc->layers[i].type, (int)fused_act(desc, b, i));
        odl_qparams oq = {le_get_f32(p + 12), le_get_i32(p + 16)};
        const int32_t amin = le_get_i32(p + 20), amax = le_get_i32(p + 24);
        if (!good_scale(oq.scale) || !in_s8(oq.zero_point) || !in_s8(amin) || !in_s8(amax) || amin > amax)
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d: output scale, zero point %d or clamp %d..%d out of range",
                            (int)i, (int)oq.zero_point, (int)amin, (int)amax);
        const uint32_t C = le_get_u32(p + 28);
        const uint64_t W = le_get_u64(p + 32);
        if (C != sh.n_bias || W != sh.n_weights)
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): %lu channels / %lu weights in the file, %zu / %zu expected",
                            (int)i, odl_layer_type_name(type), (unsigned long)C, (unsigned long)W, sh.n_bias,
                            sh.n_weights);
        if (le_get_u32(p + 40) || le_get_u32(p + 44))
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d: reserved INT8 header bytes are not zero", (int)i);
        /* C ≤ 2^26 and W ≤ 2^26 (checked topology), so no overflow here */
        if (n != QLAY_HEADER + 16u * (size_t)C + (size_t)W)
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d: INT8 chunk is %zu bytes, %zu expected", (int)i, n,
                            QLAY_HEADER + 16u * (size_t)C + (size_t)W);
        const uint8_t *pb = p + QLAY_HEADER, *pm = pb + 4u * C, *ps = pm + 4u * C, *pw = ps + 4u * C,
                      *pq = pw + 4u * C;
        for (uint32_t c = 0; c < C; c++) {
            const int32_t bias = le_get_i32(pb + 4u * c), mult = le_get_i32(pm + 4u * c), sh2 = le_get_i32(ps + 4u * c);
            if (bias < -ODL_QUANT_MAX_BIAS || bias > ODL_QUANT_MAX_BIAS)
                return odl_fail(d, ODL_ERR_FORMAT, "layer %d channel %lu: bias %d beyond +-2^30", (int)i,
                                (unsigned long)c, (int)bias);
            if ((mult != 0 && mult < (1 << 30)) || sh2 < -31 || sh2 > 30)
                return odl_fail(d, ODL_ERR_FORMAT, "layer %d channel %lu: multiplier %d / shift %d out of range",
                                (int)i, (unsigned long)c, (int)mult, (int)sh2);
            if (!good_scale(le_get_f32(pw + 4u * c)))
                return odl_fail(d, ODL_ERR_FORMAT, "layer %d channel %lu: weight scale out of range", (int)i,
                                (unsigned long)c);
        }
        if (!has_params(desc->layers[i].type) && (oq.scale != cur.scale || oq.zero_point != cur.zero_point))
            return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): output parameters differ from its input's", (int)i,
                            odl_layer_type_name(desc->layers[i].type));
        cur = oq;
        (void)chunk;
        if (q) {
            qlayer *ql = &q->l[i];
            ql->out_q = oq;
            ql->act_min = amin;
            ql->act_max = amax;
            if (C && q->in_place) { /* little-endian, 4-byte aligned (checked by the caller): the values */
                ql->bias = (int32_t *)(uintptr_t)pb; /* read only: nothing writes a loaded model's parameters */
                ql->mult = (int32_t *)(uintptr_t)pm;
                ql->shift = (int32_t *)(uintptr_t)ps;
                ql->w_scale = (float *)(uintptr_t)pw;
                ql->w = (int8_t *)(uintptr_t)pq;
            } else if (C) { /* little-endian target: the bytes are the values */
                memcpy(ql->bias, pb, 4u * C);
                memcpy(ql->mult, pm, 4u * C);
                memcpy(ql->shift, ps, 4u * C);
                memcpy(ql->w_scale, pw, 4u * C);
                memcpy(ql->w, pq, (size_t)W);
            }
        }
    }
    if (n_qlay != b) {
        /* every prefix layer has exactly one: the rest name a layer at or past the boundary */
        odl_file_open(&it, buf, len, NULL);
        while (odl_file_next(&it, &t, &p, &n, NULL) == ODL_OK && t != ODL_CHUNK_END)
            if (t == ODL_CHUNK_QLAYER && le_get_u32(p) >= (uint32_t)b)
                return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('QLAY'): layer %lu is not below the boundary %d",
                                (int)(it.index - 1), (unsigned long)le_get_u32(p), (int)b);
        return odl_fail(d, ODL_ERR_FORMAT, "%d INT8 layer chunks for a boundary of %d", n_qlay, (int)b);
    }
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
    /* a prefix-only view */
    odl_model_desc pd = *a;
    pd.n_layers = q->boundary;
    int32_t b = 0;
    s = qparse(buf, len, &pd, &b, NULL, d);
    if (s != ODL_OK)
        return s;
    if (b != q->boundary)
        return odl_fail(d, ODL_ERR_SHAPE, "the file's INT8 boundary is %d, the model's %d", (int)b, (int)q->boundary);
    q->ready = 0;
    return qparse(buf, len, &pd, &b, q, d);
}
