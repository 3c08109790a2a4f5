/* INT8 kernels of graph operators (docs/quant.md): add and mul with TFLite's
 * requantisation, concat, lookup-table activations, constant pad, mean with
 * requantisation. Each has a plain `_ref` loop beside it where the fast one
 * differs; the two agree bit for bit. Integer only: no float on this path. */
#include "odl/quant.h"

#include <string.h>

static int8_t sat8(int32_t v, int32_t lo, int32_t hi)
{
    return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* One output of add: TFLite's reference (both inputs shifted left by
 * left_shift, rescaled to a common scale, summed, rescaled to the output). */
static int8_t add_one(const odl_qbinary *p, int32_t a, int32_t b)
{
    const int32_t sa = (a - p->a_zp) * (1 << p->left_shift), sb = (b - p->b_zp) * (1 << p->left_shift);
    const int32_t ra = odl_q_multiply(sa, p->a_mult, p->a_shift), rb = odl_q_multiply(sb, p->b_mult, p->b_shift);
    const int32_t o = odl_q_multiply(ra + rb, p->out_mult, p->out_shift) + p->out_zp;
    return sat8(o, p->act_min, p->act_max);
}

static int8_t mul_one(const odl_qbinary *p, int32_t a, int32_t b)
{
    const int32_t o = odl_q_multiply((a - p->a_zp) * (b - p->b_zp), p->out_mult, p->out_shift) + p->out_zp;
    return sat8(o, p->act_min, p->act_max);
}

/* in[1] broadcast: b_c 1 or c, b_hw 1 or hw (checked by the model). */
static size_t bindex(int32_t n, int32_t k, int32_t i, int32_t b_c, int32_t b_hw)
{
    return ((size_t)n * b_c + (b_c == 1 ? 0 : k)) * b_hw + (b_hw == 1 ? 0 : i);
}

#define BINARY_REF(name, one)                                                                                      \
    void name(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,        \
              int32_t b_c, int32_t b_hw, int8_t *y)                                                                \
    {                                                                                                              \
        for (int32_t n = 0; n < batch; n++)                                                                        \
            for (int32_t k = 0; k < c; k++)                                                                        \
                for (int32_t i = 0; i < hw; i++) {                                                                 \
                    const size_t at = ((size_t)n * c + k) * hw + i;                                                \
                    y[at] = one(p, a[at], b[bindex(n, k, i, b_c, b_hw)]);                                          \
                }                                                                                                  \
    }

/* Fast forms: per plane, a broadcast operand is rescaled once. */
#define BINARY_FAST(name, one)                                                                                     \
    void name(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,        \
              int32_t b_c, int32_t b_hw, int8_t *y)                                                                \
    {                                                                                                              \
        for (int32_t n = 0; n < batch; n++)                                                                        \
            for (int32_t k = 0; k < c; k++) {                                                                      \
                const size_t at = ((size_t)n * c + k) * hw;                                                        \
                const int8_t *ap = a + at;                                                                         \
                int8_t *yp = y + at;                                                                               \
                if (b_hw == 1) {                                                                                   \
                    const int32_t bv = b[bindex(n, k, 0, b_c, 1)];                                                 \
                    for (int32_t i = 0; i < hw; i++)                                                               \
                        yp[i] = one(p, ap[i], bv);                                                                 \
                } else {                                                                                           \
                    const int8_t *bp = b + bindex(n, k, 0, b_c, b_hw);                                             \
                    for (int32_t i = 0; i < hw; i++)                                                               \
                        yp[i] = one(p, ap[i], bp[i]);                                                              \
                }                                                                                                  \
            }                                                                                                      \
    }

BINARY_REF(odl_qadd_s8_ref, add_one)
BINARY_REF(odl_qmul_s8_ref, mul_one)
static BINARY_FAST(qadd_s8_portable, add_one)
BINARY_FAST(odl_qmul_s8, mul_one)

void odl_qadd_s8(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,
                 int32_t b_c, int32_t b_hw, int8_t *y)
{
#if defined(ODL_USE_DSP)
    if (odl_qadd_s8_dsp(p, batch, c, hw, a, b, b_c, b_hw, y))
        return;
#endif
    qadd_s8_portable(p, batch, c, hw, a, b, b_c, b_hw, y);
}

void odl_qconcat_s8_ref(int32_t batch, int32_t n_in, const int8_t *const *xs, const int32_t *cs,
                        const odl_qconcat_in *rq, int32_t hw, int32_t out_zp, int8_t *y)
{
    int32_t total = 0;
    for (int32_t k = 0; k < n_in; k++)
        total += cs[k];
    for (int32_t n = 0; n < batch; n++) {
        int32_t c0 = 0;
        for (int32_t k = 0; k < n_in; k++) {
            for (int32_t c = 0; c < cs[k]; c++)
                for (int32_t i = 0; i < hw; i++) {
                    const int32_t v = xs[k][((size_t)n * cs[k] + c) * hw + i];
                    const int32_t o = rq[k].mult ? odl_q_multiply(v - rq[k].zp, rq[k].mult, rq[k].shift) + out_zp : v;
                    y[((size_t)n * total + c0 + c) * hw + i] = sat8(o, -128, 127);
                }
            c0 += cs[k];
        }
    }
}

void odl_qconcat_s8(int32_t batch, int32_t n_in, const int8_t *const *xs, const int32_t *cs,
                    const odl_qconcat_in *rq, int32_t hw, int32_t out_zp, int8_t *y)
{
    int32_t total = 0;
    for (int32_t k = 0; k < n_in; k++)
        total += cs[k];
    for (int32_t n = 0; n < batch; n++) {
        int8_t *yn = y + (size_t)n * total * hw;
        for (int32_t k = 0; k < n_in; k++) {
            const size_t len = (size_t)cs[k] * hw;
            const int8_t *xk = xs[k] + (size_t)n * len;
            if (!rq[k].mult) { /* the output's parameters: the bytes as they are */
                memcpy(yn, xk, len);
            } else {
                for (size_t i = 0; i < len; i++)
                    yn[i] = sat8(odl_q_multiply((int32_t)xk[i] - rq[k].zp, rq[k].mult, rq[k].shift) + out_zp, -128,
                                 127);
            }
            yn += len;
        }
    }
}

void odl_qlut_s8(size_t n, const int8_t *x, const int8_t *lut, int8_t *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = lut[(uint8_t)x[i]];
}

void odl_qpad_s8(const odl_window_dims *d, int8_t fill, const int8_t *x, int8_t *y)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const int8_t *xc = x + pl * (size_t)d->in_h * d->in_w;
        int8_t *yc = y + pl * (size_t)d->out_h * d->out_w;
        for (int32_t oh = 0; oh < d->out_h; oh++) {
            const int32_t ih = oh - d->pad_h;
            int8_t *yr = yc + (size_t)oh * d->out_w;
            if (ih < 0 || ih >= d->in_h) {
                memset(yr, fill, (size_t)d->out_w);
                continue;
            }
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                const int32_t iw = ow - d->pad_w;
                yr[ow] = (iw < 0 || iw >= d->in_w) ? fill : xc[(size_t)ih * d->in_w + iw];
            }
        }
    }
}

void odl_qmean_s8(int32_t batch, int32_t c, int32_t hw, const int8_t *x, int32_t in_zp, int32_t out_zp, int32_t mult,
                  int32_t shift, int8_t *y)
{
    const size_t planes = (size_t)batch * c;
    for (size_t pl = 0; pl < planes; pl++) {
        const int8_t *xp = x + pl * (size_t)hw;
        int32_t acc = 0; /* |x - zp| <= 255 over at most 2^22 cells */
        for (int32_t i = 0; i < hw; i++)
            acc += (int32_t)xp[i] - in_zp;
        y[pl] = sat8(odl_q_multiply(acc, mult, shift) + out_zp, -128, 127);
    }
}

void odl_qrelu_requant_s8(size_t n, const int8_t *x, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift,
                          int32_t lo, int32_t hi, int8_t *y)
{
    for (size_t i = 0; i < n; i++) {
        const int32_t v = (int32_t)x[i] - in_zp;
        y[i] = sat8(odl_q_multiply(v > 0 ? v : 0, mult, shift) + out_zp, lo, hi);
    }
}
