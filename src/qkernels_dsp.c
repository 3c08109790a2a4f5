/* INT8 conv2d, depthwise conv2d, dense, 2x2 max pool and window sums for
 * cores with the Armv7E-M DSP extension (Cortex-M4/M7/M33), built when
 * ODL_USE_DSP is defined (ports/cortex-m/Makefile); odl_qconv2d_s8,
 * odl_qdepthwise_s8, odl_qdense_s8, odl_qmaxpool_s8, odl_qavgpool_s8 and
 * odl_qadd_s8 call these then. Same results as the `_ref` loops bit for bit: integer
 * sums (exact) and the reference's requantisation, written for 32-bit
 * registers.
 *
 * The multiply-accumulates are SMLAD: two 16x16 products and a 32-bit add in
 * one instruction. SXTB16 sign-extends bytes 0 and 2 of a word into two
 * halfwords; rotated by 8, bytes 1 and 3. So four int8 weights w0..w3 become
 * (w0, w2) and (w1, w3), and the unfolded input column is stored in that
 * order too, (c0, c2, c1, c3) for every four values, once per output pixel
 * rather than once per output channel. */
#include "odl/quant.h"

#if defined(ODL_USE_DSP)
#if !defined(__ARM_FEATURE_DSP)
#error "ODL_USE_DSP needs a core with the DSP extension (e.g. -mcpu=cortex-m4)"
#endif

#include <arm_acle.h>
#include <string.h>

/* A 32-bit load at any alignment (one LDR on Armv7-M). */
static inline uint32_t ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Bytes 1 and 3 sign-extended into two halfwords (GCC does not fold a
 * rotate into SXTB16 by itself). */
static inline int32_t sxtb16_ror8(uint32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* a + bytes 1 and 3 of v, per halfword. */
static inline int32_t sxtab16_ror8(int32_t a, uint32_t v)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}

/* (low half of a, low half of b) and (high half of a, high half of b). */
static inline uint32_t pack_lo(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline uint32_t pack_hi(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* The requantisation of one output channel, its constants unpacked once
 * for the outputs that share them. `fast`: shift in [−31, 0] and mult ≠
 * INT32_MIN (every multiplier odl makes or loads); then gemmlowp's rounding
 * doubling high multiply is h = floor((x·m + 2^30) / 2^31) (the reference's
 * nudge −(2^30 − 1) for a negative product, with division toward zero, gives
 * the same integer) and the rounding right shift by e = −shift adds one
 * when the remainder exceeds half (half included for a negative x).
 * `one_step`: besides, e ≥ 1 and m > 2^30 (a layer's multipliers, but for
 * exact powers of two); the rounding shift is then floor((h + 2^(e−1) + s)
 * / 2^e), s = −1 for h < 0 (ties away from zero), and both floors fold into
 * one: floor((x·m + 2^30 + 2^(30+e) + s·2^31) / 2^(31+e)), a 64-bit
 * multiply-accumulate and the high word shifted by e − 1; with m > 2^30,
 * h < 0 exactly when x < 0, so s is x's sign (requant_run). Other
 * channels take odl_q_multiply. */
typedef struct chan_rq {
    int64_t k; /* one_step: 2^30 + 2^(30+e) */
    int32_t mult, shift, e, mask, half, fast, one_step;
} chan_rq;

typedef struct layer_rq {
    const int32_t *mult, *shift;
    int32_t out_zp, lo, hi;
} layer_rq;

static inline layer_rq layer_of(const odl_qrequant *r)
{
    layer_rq l = {r->mult, r->shift, r->out_zp, r->act_min, r->act_max};
    return l;
}

static inline chan_rq chan_of(const layer_rq *l, int32_t c)
{
    chan_rq q;
    q.mult = l->mult[c];
    q.shift = l->shift[c];
    q.fast = q.shift <= 0 && q.shift >= -31 && q.mult != INT32_MIN;
    q.e = q.fast ? -q.shift : 0;
    q.mask = (int32_t)((1u << q.e) - 1u);
    q.half = q.mask >> 1;
    q.one_step = 0; /* set by with_one_step: the kernels that use it */
    q.k = 0;
    return q;
}

static inline chan_rq with_one_step(chan_rq q)
{
    q.one_step = q.fast && q.e >= 1 && q.mult > (1 << 30);
    q.k = q.one_step ? ((int64_t)1 << 30) + ((int64_t)1 << (30 + q.e)) : 0;
    return q;
}

static inline int8_t requant(int32_t acc, const chan_rq *q, const layer_rq *l)
{
    int32_t v;
    if (q->fast) {
        const int32_t hi = (int32_t)(((int64_t)acc * q->mult + ((int64_t)1 << 30)) >> 31);
        v = (hi >> q->e) + ((hi & q->mask) > q->half + (int32_t)((uint32_t)hi >> 31));
    } else {
        v = odl_q_multiply(acc, q->mult, q->shift);
    }
    v = __qadd(v, l->out_zp); /* saturating: as the reference's int64 sum before the clamp */
    v = v < l->lo ? l->lo : v;
    return (int8_t)(v > l->hi ? l->hi : v);
}

static inline int8_t requant_at(int32_t acc, const layer_rq *l, int32_t c)
{
    const chan_rq q = chan_of(l, c);
    return requant(acc, &q, l);
}

static inline int32_t bias_of(const odl_qrequant *r, int32_t c)
{
    return r->bias ? r->bias[c] : 0;
}

/* ---- conv2d -------------------------------------------------------------- */

/* col[k] = x − in_zp of output pixel (oh, ow), 0 over the padding; k =
 * (cj, kh, kw) over the channels [c0, c0 + cg); then every four values
 * reordered to (c0, c2, c1, c3) (the tail K mod 4 stays in order). */
static void im2col_pixel(const odl_window_dims *d, const int8_t *xn, int32_t zp, int32_t c0, int32_t cg, int32_t oh,
                         int32_t ow, int16_t *col, int32_t K)
{
    const int32_t dh = d->dil_h > 0 ? d->dil_h : 1, dw = d->dil_w > 0 ? d->dil_w : 1;
    const int32_t ih0 = oh * d->stride_h - d->pad_h, iw0 = ow * d->stride_w - d->pad_w;
    const size_t plane = (size_t)d->in_h * d->in_w;
    const int inside = ih0 >= 0 && iw0 >= 0 && ih0 + (d->k_h - 1) * dh < d->in_h && iw0 + (d->k_w - 1) * dw < d->in_w;
    int16_t *c = col;
    if (inside && d->k_h == 1 && d->k_w == 1) { /* pointwise: one value per channel, a plane apart */
        const int8_t *xp = xn + (size_t)c0 * plane + (size_t)ih0 * d->in_w + iw0;
        int32_t cj = 0;
        for (; cj + 2 <= cg; cj += 2, xp += 2 * plane) {
            c[cj] = (int16_t)(xp[0] - zp);
            c[cj + 1] = (int16_t)(xp[plane] - zp);
        }
        if (cj < cg)
            c[cj] = (int16_t)(xp[0] - zp);
    } else if (inside && dw == 1 && d->k_w == 3) { /* the common 3-wide kernel, unrolled */
        for (int32_t cj = 0; cj < cg; cj++) {
            const int8_t *xr = xn + (size_t)(c0 + cj) * plane + (size_t)ih0 * d->in_w + iw0;
            for (int32_t kh = 0; kh < d->k_h; kh++, xr += (size_t)dh * d->in_w, c += 3) {
                c[0] = (int16_t)(xr[0] - zp);
                c[1] = (int16_t)(xr[1] - zp);
                c[2] = (int16_t)(xr[2] - zp);
            }
        }
    } else if (inside && dw == 1) { /* no bounds to check: rows of k_w adjacent bytes */
        for (int32_t cj = 0; cj < cg; cj++) {
            const int8_t *xr = xn + (size_t)(c0 + cj) * plane + (size_t)ih0 * d->in_w + iw0;
            for (int32_t kh = 0; kh < d->k_h; kh++, xr += (size_t)dh * d->in_w)
                for (int32_t kw = 0; kw < d->k_w; kw++)
                    *c++ = (int16_t)(xr[kw] - zp);
        }
    } else {
        for (int32_t cj = 0; cj < cg; cj++) {
            const int8_t *xc = xn + (size_t)(c0 + cj) * plane;
            for (int32_t kh = 0; kh < d->k_h; kh++) {
                const int32_t ih = ih0 + kh * dh;
                if (ih < 0 || ih >= d->in_h) {
                    memset(c, 0, sizeof(int16_t) * (size_t)d->k_w);
                    c += d->k_w;
                    continue;
                }
                const int8_t *xr = xc + (size_t)ih * d->in_w;
                for (int32_t kw = 0; kw < d->k_w; kw++) {
                    const int32_t iw = iw0 + kw * dw;
                    *c++ = (iw < 0 || iw >= d->in_w) ? (int16_t)0 : (int16_t)(xr[iw] - zp);
                }
            }
        }
    }
    for (int32_t k = 0; k + 4 <= K; k += 4) { /* (c0, c1), (c2, c3) -> (c0, c2), (c1, c3) */
        const uint32_t a = ld32(col + k), b = ld32(col + k + 2);
        const uint32_t even = pack_lo(a, b), odd = pack_hi(a, b);
        memcpy(col + k, &even, sizeof even);
        memcpy(col + k + 2, &odd, sizeof odd);
    }
}

/* Output channels co and co + 1 at pixels with columns c0 and c1. */
static void mac_2x2(const int8_t *w0, const int8_t *w1, const int16_t *c0, const int16_t *c1, int32_t K,
                    int32_t acc[4])
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    const int8_t *const w0_end = w0 + (K & ~3);
    if (w0 != w0_end) {
        /* 20 instructions for 16 MACs; written out because the compiler,
         * short of registers, spills a pointer in this loop */
        uint32_t W0, W1, E0, E1, P;
        __asm__ volatile("1:\n\t"
                         "ldr %[W0], [%[w0]], #4\n\t"
                         "ldr %[W1], [%[w1]], #4\n\t"
                         "ldr %[P], [%[c0]], #4\n\t"
                         "sxtb16 %[E0], %[W0]\n\t"
                         "sxtb16 %[E1], %[W1]\n\t"
                         "smlad %[a00], %[E0], %[P], %[a00]\n\t"
                         "smlad %[a10], %[E1], %[P], %[a10]\n\t"
                         "ldr %[P], [%[c1]], #4\n\t"
                         "smlad %[a01], %[E0], %[P], %[a01]\n\t"
                         "smlad %[a11], %[E1], %[P], %[a11]\n\t"
                         "sxtb16 %[W0], %[W0], ror #8\n\t"
                         "sxtb16 %[W1], %[W1], ror #8\n\t"
                         "ldr %[P], [%[c0]], #4\n\t"
                         "smlad %[a00], %[W0], %[P], %[a00]\n\t"
                         "smlad %[a10], %[W1], %[P], %[a10]\n\t"
                         "ldr %[P], [%[c1]], #4\n\t"
                         "smlad %[a01], %[W0], %[P], %[a01]\n\t"
                         "smlad %[a11], %[W1], %[P], %[a11]\n\t"
                         "cmp %[w0], %[end]\n\t"
                         "bne 1b"
                         : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [w0] "+r"(w0),
                           [w1] "+r"(w1), [c0] "+r"(c0), [c1] "+r"(c1), [W0] "=&r"(W0), [W1] "=&r"(W1),
                           [E0] "=&r"(E0), [E1] "=&r"(E1), [P] "=&r"(P)
                         : [end] "r"(w0_end)
                         : "cc", "memory");
    }
    for (int32_t k = 0; k < (K & 3); k++) {
        a00 += w0[k] * c0[k];
        a01 += w0[k] * c1[k];
        a10 += w1[k] * c0[k];
        a11 += w1[k] * c1[k];
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

/* One output channel at one pixel. */
static int32_t mac_1x1(const int8_t *w0, const int16_t *c0, int32_t K, int32_t acc)
{
    int32_t k = 0;
    for (; k + 4 <= K; k += 4) {
        const uint32_t W0 = ld32(w0 + k);
        acc = __smlad(__sxtb16(W0), (int32_t)ld32(c0 + k), acc);
        acc = __smlad(sxtb16_ror8(W0), (int32_t)ld32(c0 + k + 2), acc);
    }
    for (; k < K; k++)
        acc += w0[k] * c0[k];
    return acc;
}

void odl_qconv2d_s8_dsp(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r, int8_t *y,
                        void *scratch)
{
    const size_t P = (size_t)d->out_h * d->out_w, plane = (size_t)d->in_h * d->in_w;
    const int32_t g = d->groups > 0 ? d->groups : 1, cg = d->in_c / g, og = d->out_c / g;
    const int32_t K = cg * d->k_h * d->k_w;
    int16_t *col0 = scratch, *col1 = col0 + K; /* two pixels: odl_qconv2d_scratch_bytes */
    const layer_rq lq = layer_of(r);
    for (int32_t n = 0; n < d->batch; n++) {
        const int8_t *xn = x + (size_t)n * d->in_c * plane;
        int8_t *yn = y + (size_t)n * d->out_c * P;
        int32_t oh = 0, ow = 0; /* of pixel p */
        for (size_t p = 0; p < P; p += 2) {
            const int pair = p + 1 < P;
            const int32_t oh1 = ow + 1 < d->out_w ? oh : oh + 1, ow1 = ow + 1 < d->out_w ? ow + 1 : 0;
            for (int32_t gi = 0; gi < g; gi++) {
                im2col_pixel(d, xn, r->in_zp, gi * cg, cg, oh, ow, col0, K);
                if (pair)
                    im2col_pixel(d, xn, r->in_zp, gi * cg, cg, oh1, ow1, col1, K);
                const int32_t co_end = (gi + 1) * og;
                int32_t co = gi * og;
                if (pair) {
                    for (; co + 2 <= co_end; co += 2) {
                        const int32_t b0 = bias_of(r, co), b1 = bias_of(r, co + 1);
                        int32_t acc[4] = {b0, b0, b1, b1};
                        const int8_t *w0 = w + (size_t)co * K;
                        mac_2x2(w0, w0 + K, col0, col1, K, acc);
                        int8_t *y0 = yn + (size_t)co * P + p;
                        const chan_rq q0 = chan_of(&lq, co), q1 = chan_of(&lq, co + 1);
                        y0[0] = requant(acc[0], &q0, &lq);
                        y0[1] = requant(acc[1], &q0, &lq);
                        y0[P] = requant(acc[2], &q1, &lq);
                        y0[P + 1] = requant(acc[3], &q1, &lq);
                    }
                }
                for (; co < co_end; co++) {
                    const int8_t *w0 = w + (size_t)co * K;
                    const int32_t b = bias_of(r, co);
                    const chan_rq q0 = chan_of(&lq, co);
                    yn[(size_t)co * P + p] = requant(mac_1x1(w0, col0, K, b), &q0, &lq);
                    if (pair)
                        yn[(size_t)co * P + p + 1] = requant(mac_1x1(w0, col1, K, b), &q0, &lq);
                }
            }
            oh = oh1 + (ow1 + 1 < d->out_w ? 0 : 1);
            ow = ow1 + 1 < d->out_w ? ow1 + 1 : 0;
        }
    }
}

/* ---- dense --------------------------------------------------------------- */

/* acc[r] += Σ_{i < n4} (x[i] − zp) · w[r·in + i] for the rows r = 0..3; n4
 * a multiple of 4 and > 0, neg_zp −zp in both halfwords. Written out in a
 * function of its own (the compiler spills accumulators in this loop, and
 * inline the asm finds too few registers): 29 instructions for 16 MACs,
 * rows 1 and 3 read at an offset of `in` from rows 0 and 2, each weight word
 * loaded once per half for want of a register. */
__attribute__((noinline)) static void dot4(const int8_t *x, const int8_t *w, int32_t in, int32_t n4, int32_t neg_zp,
                                           int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *xp = x, *r0 = w, *r2 = w + 2 * (size_t)in;
    const int8_t *const x_end = x + n4;
    uint32_t xe, xo, W;
    __asm__ volatile("1:\n\t"
                     "ldr %[xo], [%[xp]], #4\n\t"
                     "sxtab16 %[xe], %[nzp], %[xo]\n\t"
                     "sxtab16 %[xo], %[nzp], %[xo], ror #8\n\t"
                     "ldr %[W], [%[r0], %[in]]\n\t"
                     "sxtb16 %[W], %[W]\n\t"
                     "smlad %[a1], %[W], %[xe], %[a1]\n\t"
                     "ldr %[W], [%[r0], %[in]]\n\t"
                     "sxtb16 %[W], %[W], ror #8\n\t"
                     "smlad %[a1], %[W], %[xo], %[a1]\n\t"
                     "ldr %[W], [%[r0]]\n\t"
                     "sxtb16 %[W], %[W]\n\t"
                     "smlad %[a0], %[W], %[xe], %[a0]\n\t"
                     "ldr %[W], [%[r0]], #4\n\t"
                     "sxtb16 %[W], %[W], ror #8\n\t"
                     "smlad %[a0], %[W], %[xo], %[a0]\n\t"
                     "ldr %[W], [%[r2], %[in]]\n\t"
                     "sxtb16 %[W], %[W]\n\t"
                     "smlad %[a3], %[W], %[xe], %[a3]\n\t"
                     "ldr %[W], [%[r2], %[in]]\n\t"
                     "sxtb16 %[W], %[W], ror #8\n\t"
                     "smlad %[a3], %[W], %[xo], %[a3]\n\t"
                     "ldr %[W], [%[r2]]\n\t"
                     "sxtb16 %[W], %[W]\n\t"
                     "smlad %[a2], %[W], %[xe], %[a2]\n\t"
                     "ldr %[W], [%[r2]], #4\n\t"
                     "sxtb16 %[W], %[W], ror #8\n\t"
                     "smlad %[a2], %[W], %[xo], %[a2]\n\t"
                     "cmp %[xp], %[end]\n\t"
                     "bne 1b"
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp), [r0] "+r"(r0),
                       [r2] "+r"(r2), [xe] "=&r"(xe), [xo] "=&r"(xo), [W] "=&r"(W)
                     : [end] "r"(x_end), [nzp] "r"(neg_zp), [in] "r"(in)
                     : "cc", "memory");
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

void odl_qdense_s8_dsp(const odl_dense_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r, int8_t *y)
{
    const int32_t in = d->in, out = d->out, zp = r->in_zp, in4 = in & ~3;
    /* −in_zp in both halfwords: SXTAB16 adds it to the sign-extended bytes
     * (x − in_zp is in −255..255, exact in 16 bits) */
    const int32_t neg_zp = (int32_t)(((uint32_t)(uint16_t)(int16_t)-zp) * 0x00010001u);
    const layer_rq lq = layer_of(r);
    for (int32_t n = 0; n < d->batch; n++) {
        const int8_t *xn = x + (size_t)n * in;
        int8_t *yn = y + (size_t)n * out;
        int32_t o = 0;
        for (; o + 4 <= out; o += 4) { /* four rows share each unpacked input word */
            const int8_t *w0 = w + (size_t)o * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
            int32_t a0 = bias_of(r, o), a1 = bias_of(r, o + 1), a2 = bias_of(r, o + 2), a3 = bias_of(r, o + 3);
            int32_t acc4[4] = {a0, a1, a2, a3};
            if (in4 > 0)
                dot4(xn, w0, in, in4, neg_zp, acc4);
            a0 = acc4[0], a1 = acc4[1], a2 = acc4[2], a3 = acc4[3];
            for (int32_t i = in4; i < in; i++) {
                const int32_t xv = xn[i] - zp;
                a0 += xv * w0[i];
                a1 += xv * w1[i];
                a2 += xv * w2[i];
                a3 += xv * w3[i];
            }
            yn[o] = requant_at(a0, &lq, o);
            yn[o + 1] = requant_at(a1, &lq, o + 1);
            yn[o + 2] = requant_at(a2, &lq, o + 2);
            yn[o + 3] = requant_at(a3, &lq, o + 3);
        }
        for (; o < out; o++) {
            const int8_t *w0 = w + (size_t)o * in;
            int32_t a0 = bias_of(r, o);
            for (int32_t i = 0; i < in4; i += 4) {
                const uint32_t X = ld32(xn + i), W = ld32(w0 + i);
                a0 = __smlad(__sxtb16(W), __sxtab16(neg_zp, X), a0);
                a0 = __smlad(sxtb16_ror8(W), sxtab16_ror8(neg_zp, X), a0);
            }
            for (int32_t i = in4; i < in; i++)
                a0 += (xn[i] - zp) * w0[i];
            yn[o] = requant_at(a0, &lq, o);
        }
    }
}

/* ---- 2x2 max pool, stride 2, no padding ---------------------------------- */

/* Per byte: SSUB8 sets the GE flags where a ≥ b, SEL picks a there. */
static inline uint32_t max8(uint32_t a, uint32_t b)
{
    (void)__ssub8((int32_t)a, (int32_t)b);
    return __sel(a, b);
}

void odl_qmaxpool2x2_s8_dsp(const odl_window_dims *d, const int8_t *x, int8_t *y)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    const int32_t ow2 = d->out_w & ~1;
    for (size_t pl = 0; pl < planes; pl++) {
        const int8_t *xc = x + pl * (size_t)d->in_h * d->in_w;
        int8_t *yc = y + pl * (size_t)d->out_h * d->out_w;
        for (int32_t oh = 0; oh < d->out_h; oh++) {
            const int8_t *r0 = xc + (size_t)(2 * oh) * d->in_w, *r1 = r0 + d->in_w;
            int8_t *yr = yc + (size_t)oh * d->out_w;
            for (int32_t ow = 0; ow < ow2; ow += 2) { /* two outputs from four columns */
                const uint32_t v = max8(ld32(r0 + 2 * ow), ld32(r1 + 2 * ow));
                const uint32_t m = max8(v, v >> 8); /* bytes 0 and 2: the maxima */
                yr[ow] = (int8_t)(m & 0xffu);
                yr[ow + 1] = (int8_t)((m >> 16) & 0xffu);
            }
            if (ow2 < d->out_w) {
                const int32_t c = 2 * ow2;
                int8_t m = r0[c] > r0[c + 1] ? r0[c] : r0[c + 1];
                m = r1[c] > m ? r1[c] : m;
                yr[ow2] = r1[c + 1] > m ? r1[c + 1] : m;
            }
        }
    }
}

/* ---- depthwise ----------------------------------------------------------- */

/* The layout is channel-planar, so a depthwise layer is one 2-D
 * convolution per plane. The plane's rows are unfolded once into an int16
 * band (x − in_zp, zeros over the padding and one column past it), the
 * weights of a channel into int16 pairs (w[2j], w[2j + 1]) with a zero after
 * an odd last tap; then each output is SMLADs of a weight pair with two
 * adjacent band values, read as one word at any column (no bounds checks, no
 * reordering: the taps are adjacent in the band as in the weights). */
#define DW_BAND 512 /* int16 band: 1 KB of stack */
#define DW_PAIRS 32 /* k_h · ceil(k_w / 2) weight pairs at most */
#define DW_CHUNK 128 /* outputs summed before they are requantised */

/* dst[i] = src[i] − zp, i < n (neg_zp: −zp in both halfwords). */
static inline void to_s16(const int8_t *src, int32_t n, int32_t neg_zp, int16_t *dst)
{
    int32_t c = 0;
    for (; c + 4 <= n; c += 4) { /* (b0, b2), (b1, b3) -> (b0, b1), (b2, b3) */
        const uint32_t v = ld32(src + c);
        const uint32_t e = (uint32_t)__sxtab16(neg_zp, v), o = (uint32_t)sxtab16_ror8(neg_zp, v);
        const uint32_t lo = pack_lo(e, o), hi = pack_hi(e, o);
        memcpy(dst + c, &lo, sizeof lo);
        memcpy(dst + c + 2, &hi, sizeof hi);
    }
    for (; c < n; c++)
        dst[c] = (int16_t)(src[c] + (int16_t)neg_zp);
}

/* dst[c] = src[c − pad] − zp for the columns of the input row, else 0. */
static void band_row(const int8_t *src, int32_t in_w, int32_t pad, int32_t width, int32_t neg_zp, int16_t *dst)
{
    int32_t c = 0;
    for (; c < pad && c < width; c++)
        dst[c] = 0;
    const int32_t end = pad + in_w < width ? pad + in_w : width;
    const int8_t *s = src + (c - pad);
    for (; c + 4 <= end; c += 4, s += 4) { /* (b0, b2), (b1, b3) -> (b0, b1), (b2, b3) */
        const uint32_t v = ld32(s);
        const uint32_t e = (uint32_t)__sxtab16(neg_zp, v), o = (uint32_t)sxtab16_ror8(neg_zp, v);
        const uint32_t lo = pack_lo(e, o), hi = pack_hi(e, o);
        memcpy(dst + c, &lo, sizeof lo);
        memcpy(dst + c + 2, &hi, sizeof hi);
    }
    for (; c < end; c++, s++)
        dst[c] = (int16_t)(*s + (int16_t)neg_zp);
    for (; c < width; c++)
        dst[c] = 0;
}

/* acc[i·n + k] = Σ over the 3x3 window of output k of output row i
 * (rows) of a band (rows `row_step` int16 apart, stride sw 1 or 2),
 * weights wp (three rows of two pairs). Written out: 15 instructions an
 * output, the weights in five registers (the third taps of rows 0 and 1
 * share one: SMLABB/SMLATB multiply one halfword), which the compiler would
 * spill. */
__attribute__((noinline)) static void dw3x3_rows(const int16_t *row, int32_t width, int32_t row_step, int32_t rows,
                                                 int32_t sw, const uint32_t *wp, int32_t n, int32_t *acc)
{
    const uint32_t w0 = wp[0], w1 = wp[2], w2 = wp[4];
    const uint32_t w01c = (wp[1] & 0xffffu) | (wp[3] << 16), w2c = wp[5];
    uint32_t t, a;
#define DW3X3_LOOP(step)                                                                                           \
    __asm__ volatile("1:\n\t"                                                                                      \
                     "ldr %[t], [%[p0], #4]\n\t"                                                                  \
                     "smulbb %[a], %[w01c], %[t]\n\t"                                                             \
                     "ldr %[t], [%[p0]], #" step "\n\t"                                                           \
                     "smlad %[a], %[w0], %[t], %[a]\n\t"                                                          \
                     "ldr %[t], [%[p1], #4]\n\t"                                                                  \
                     "smlatb %[a], %[w01c], %[t], %[a]\n\t"                                                       \
                     "ldr %[t], [%[p1]], #" step "\n\t"                                                           \
                     "smlad %[a], %[w1], %[t], %[a]\n\t"                                                          \
                     "ldr %[t], [%[p2], #4]\n\t"                                                                  \
                     "smlabb %[a], %[w2c], %[t], %[a]\n\t"                                                        \
                     "ldr %[t], [%[p2]], #" step "\n\t"                                                           \
                     "smlad %[a], %[w2], %[t], %[a]\n\t"                                                          \
                     "str %[a], [%[acc]], #4\n\t"                                                                 \
                     "cmp %[acc], %[end]\n\t"                                                                     \
                     "bne 1b"                                                                                     \
                     : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [acc] "+r"(acc), [t] "=&r"(t), [a] "=&r"(a)    \
                     : [w0] "r"(w0), [w1] "r"(w1), [w2] "r"(w2), [w01c] "r"(w01c), [w2c] "r"(w2c), [end] "r"(end) \
                     : "cc", "memory")
    if (n <= 0)
        return;
    for (int32_t i = 0; i < rows; i++, row += row_step) {
        const int16_t *p0 = row, *p1 = row + width, *p2 = p1 + width;
        int32_t *const end = acc + n;
        if (sw == 1)
            DW3X3_LOOP("2");
        else
            DW3X3_LOOP("4");
    }
#undef DW3X3_LOOP
}

/* y[k] = requant(acc[k] + b), k < n: apart from the sums, so that the
 * channel's constants stay in registers. */
__attribute__((noinline)) static void requant_run(const int32_t *acc, int32_t n, int32_t b, const chan_rq *q,
                                                  const layer_rq *l, int8_t *y)
{
    if (!q->one_step || q->e > 24 || n <= 0) {
        for (int32_t k = 0; k < n; k++)
            y[k] = requant(acc[k] + b, q, l);
        return;
    }
    /* the one-step form with out_zp folded into the constant too (zp·2^(31+e),
     * within int64 for e ≤ 24): 18 instructions an output */
    const int64_t k = q->k + (int64_t)l->out_zp * ((int64_t)1 << (31 + q->e));
    const uint32_t klo = (uint32_t)k, khi = (uint32_t)((uint64_t)k >> 32);
    const int32_t e1 = q->e - 1, lo = l->lo, hi = l->hi, mult = q->mult;
    const int8_t *const end = y + n;
    int32_t x;
    uint32_t rlo, rhi;
    __asm__ volatile("1:\n\t"
                     "ldr %[x], [%[acc]], #4\n\t"
                     "add %[x], %[x], %[b]\n\t"
                     "mov %[rlo], %[klo]\n\t"
                     "mov %[rhi], %[khi]\n\t"
                     "smlal %[rlo], %[rhi], %[x], %[m]\n\t"
                     "asr %[x], %[x], #31\n\t"
                     "adds %[rlo], %[rlo], %[x], lsl #31\n\t"
                     "adc %[rhi], %[rhi], %[x]\n\t"
                     "asr %[rhi], %[rhi], %[e1]\n\t"
                     "cmp %[rhi], %[lo]\n\t"
                     "it lt\n\t"
                     "movlt %[rhi], %[lo]\n\t"
                     "cmp %[rhi], %[hi]\n\t"
                     "it gt\n\t"
                     "movgt %[rhi], %[hi]\n\t"
                     "strb %[rhi], [%[y]], #1\n\t"
                     "cmp %[y], %[end]\n\t"
                     "bne 1b"
                     : [acc] "+r"(acc), [y] "+r"(y), [x] "=&r"(x), [rlo] "=&r"(rlo), [rhi] "=&r"(rhi)
                     : [b] "r"(b), [klo] "r"(klo), [khi] "r"(khi), [m] "r"(mult), [e1] "r"(e1), [lo] "r"(lo),
                       [hi] "r"(hi), [end] "r"(end)
                     : "cc", "memory");
}

/* acc[k] = Σ over the window of output k, any window: a pass per
 * pair of taps over the n outputs of a row. */
static void dw_row(const int16_t *p, int32_t width, int32_t sw, int32_t k_h, int32_t kwp, const uint32_t *wp,
                   int32_t n, int32_t *acc)
{
    memset(acc, 0, sizeof(int32_t) * (size_t)n);
    for (int32_t kh = 0; kh < k_h; kh++, p += width)
        for (int32_t j = 0; j < kwp; j++) {
            const int32_t wj = (int32_t)wp[kh * kwp + j];
            const int16_t *pj = p + 2 * j;
            for (int32_t k = 0; k < n; k++, pj += sw)
                acc[k] = __smlad(wj, (int32_t)ld32(pj), acc[k]);
        }
}

int odl_qdepthwise_s8_dsp(const odl_window_dims *d, const int8_t *x, const int8_t *w, const odl_qrequant *r, int8_t *y)
{
    if (d->dil_h > 1 || d->dil_w > 1 || d->in_c < 1 || d->out_c % d->in_c != 0)
        return 0;
    const int32_t kwp = (d->k_w + 1) / 2, sh = d->stride_h, sw = d->stride_w;
    /* band columns: every word the last output of a row reads */
    const int32_t width = (d->out_w - 1) * sw + 2 * kwp;
    if (d->k_h < 1 || d->k_w < 1 || d->k_h * kwp > DW_PAIRS || (int64_t)width * d->k_h > DW_BAND)
        return 0;
    /* output rows per band: the band holds (rows − 1)·stride + k_h input rows */
    const int32_t band_rows = DW_BAND / width, per_band = (band_rows - d->k_h) / sh + 1;
    int16_t band[DW_BAND];
    uint32_t wp[DW_PAIRS];
    int32_t acc[DW_CHUNK];
    const int32_t mult = d->out_c / d->in_c, zp = r->in_zp;
    const int32_t neg_zp = (int32_t)(((uint32_t)(uint16_t)(int16_t)-zp) * 0x00010001u);
    const size_t plane = (size_t)d->in_h * d->in_w, P = (size_t)d->out_h * d->out_w;
    const layer_rq lq = layer_of(r);
    const int one_band = per_band >= d->out_h;
    if (one_band)
        memset(band, 0, sizeof(int16_t) * (size_t)((d->out_h - 1) * sh + d->k_h) * (size_t)width);
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t ci = 0; ci < d->in_c; ci++) {
            const int8_t *xc = x + ((size_t)n * d->in_c + ci) * plane;
            for (int32_t oh0 = 0; oh0 < d->out_h; oh0 += per_band) {
                const int32_t oh1 = oh0 + per_band < d->out_h ? oh0 + per_band : d->out_h;
                const int32_t r0 = oh0 * sh - d->pad_h, rows = (oh1 - 1 - oh0) * sh + d->k_h;
                if (one_band) { /* the padding stays zero from the first plane: the input's cells only */
                    const int32_t i0 = r0 < 0 ? -r0 : 0, i1 = d->in_h - r0 < rows ? d->in_h - r0 : rows;
                    const int32_t cols = d->in_w < width - d->pad_w ? d->in_w : width - d->pad_w;
                    for (int32_t i = i0; i < i1; i++)
                        to_s16(xc + (size_t)(r0 + i) * d->in_w, cols, neg_zp, band + (size_t)i * width + d->pad_w);
                } else {
                    for (int32_t i = 0; i < rows; i++) {
                        const int32_t ih = r0 + i;
                        if (ih < 0 || ih >= d->in_h)
                            memset(band + (size_t)i * width, 0, sizeof(int16_t) * (size_t)width);
                        else
                            band_row(xc + (size_t)ih * d->in_w, d->in_w, d->pad_w, width, neg_zp,
                                     band + (size_t)i * width);
                    }
                }
                for (int32_t m = 0; m < mult; m++) {
                    const int32_t o = ci * mult + m;
                    const int8_t *wo = w + (size_t)o * d->k_h * d->k_w;
                    for (int32_t kh = 0; kh < d->k_h; kh++)
                        for (int32_t j = 0; j < kwp; j++) {
                            const int32_t a = wo[kh * d->k_w + 2 * j];
                            const int32_t b = 2 * j + 1 < d->k_w ? wo[kh * d->k_w + 2 * j + 1] : 0;
                            wp[kh * kwp + j] = ((uint32_t)(uint16_t)a) | ((uint32_t)(uint16_t)b << 16);
                        }
                    const chan_rq q = with_one_step(chan_of(&lq, o));
                    const int32_t b = bias_of(r, o);
                    int8_t *yc = y + ((size_t)n * d->out_c + o) * P;
                    /* a run: whole rows of outputs (or a part of one long
                     * row), summed into acc, then requantised together */
                    const int32_t run_w = d->out_w < DW_CHUNK ? d->out_w : DW_CHUNK;
                    const int32_t run_rows = d->out_w < DW_CHUNK ? DW_CHUNK / d->out_w : 1;
                    for (int32_t oh = oh0; oh < oh1; oh += run_rows) {
                        const int32_t nr = oh1 - oh < run_rows ? oh1 - oh : run_rows;
                        for (int32_t ow0 = 0; ow0 < d->out_w; ow0 += run_w) {
                            const int32_t nw = d->out_w - ow0 < run_w ? d->out_w - ow0 : run_w;
                            const int16_t *p = band + (size_t)((oh - oh0) * sh) * width + (size_t)ow0 * sw;
                            if (d->k_h == 3 && d->k_w == 3 && sw <= 2)
                                dw3x3_rows(p, width, sh * width, nr, sw, wp, nw, acc);
                            else
                                for (int32_t i = 0; i < nr; i++)
                                    dw_row(p + (size_t)(i * sh) * width, width, sw, d->k_h, kwp, wp, nw,
                                           acc + i * nw);
                            /* nr > 1 only when nw is the whole row: the outputs are contiguous */
                            requant_run(acc, nr * nw, b, &q, &lq, yc + (size_t)oh * d->out_w + ow0);
                        }
                    }
                }
            }
        }
    return 1;
}

/* ---- sums for average pools ----------------------------------------------- */

/* USADA8 adds four unsigned bytes: with the sign bit flipped they are
 * x + 128, so the sum is Σ(x + 128) − 128·n. */
int32_t odl_qsum_s8_dsp(const int8_t *x, size_t n)
{
    uint32_t s = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s = __usada8(ld32(x + i) ^ 0x80808080u, 0, s);
        s = __usada8(ld32(x + i + 4) ^ 0x80808080u, 0, s);
    }
    for (; i + 4 <= n; i += 4)
        s = __usada8(ld32(x + i) ^ 0x80808080u, 0, s);
    int32_t t = (int32_t)s - (int32_t)(128u * (uint32_t)i);
    for (; i < n; i++)
        t += x[i];
    return t;
}

/* ---- add ------------------------------------------------------------------ */

/* The rescaled inputs of TFLite's add depend on one int8 each: with 256
 * values per input, they are tabulated once per call (by the reference's
 * own arithmetic, so the sums are the reference's), and each output is two
 * loads, an add and the output's requantisation. 2 KB of stack. */
static void rescale_table(int32_t zp, int32_t left_shift, int32_t mult, int32_t shift, int32_t t[256])
{
    for (int32_t v = -128; v < 128; v++)
        t[(uint8_t)v] = odl_q_multiply((v - zp) * (1 << left_shift), mult, shift);
}

int odl_qadd_s8_dsp(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,
                    int32_t b_c, int32_t b_hw, int8_t *y)
{
    /* (v − zp)·2^left_shift within int32 (|v − zp| ≤ 255), enough outputs
     * to pay for the tables */
    if (p->left_shift < 0 || p->left_shift > 22 || (int64_t)batch * c * hw < 512)
        return 0;
    int32_t ta[256], tb[256];
    rescale_table(p->a_zp, p->left_shift, p->a_mult, p->a_shift, ta);
    rescale_table(p->b_zp, p->left_shift, p->b_mult, p->b_shift, tb);
    const int32_t m[1] = {p->out_mult}, sft[1] = {p->out_shift};
    const layer_rq lq = {m, sft, p->out_zp, p->act_min, p->act_max};
    const chan_rq q = chan_of(&lq, 0);
    for (int32_t n = 0; n < batch; n++)
        for (int32_t k = 0; k < c; k++) {
            const size_t at = ((size_t)n * c + k) * hw;
            const int8_t *ap = a + at;
            const size_t bat = ((size_t)n * b_c + (b_c == 1 ? 0 : k)) * b_hw;
            int8_t *yp = y + at;
            if (b_hw == 1) {
                const int32_t rb = tb[(uint8_t)b[bat]];
                for (int32_t i = 0; i < hw; i++)
                    yp[i] = requant(ta[(uint8_t)ap[i]] + rb, &q, &lq);
            } else {
                const int8_t *bp = b + bat;
                for (int32_t i = 0; i < hw; i++)
                    yp[i] = requant(ta[(uint8_t)ap[i]] + tb[(uint8_t)bp[i]], &q, &lq);
            }
        }
    return 1;
}

#else
typedef int odl_qkernels_dsp_unused; /* ISO C: a translation unit is not empty */
#endif
