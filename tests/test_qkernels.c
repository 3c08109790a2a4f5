/* The INT8 conv2d, depthwise, dense, max-pool, average-pool and add
 * kernels against their plain reference loops, bit for bit, on shapes the fast
 * paths split differently: odd channel counts (and depth multipliers) and
 * reductions that are not a multiple of four (the DSP kernels' tails), one
 * pixel left over, padding, stride 2, dilation, groups, batches, unaligned
 * inputs, multipliers that saturate or take the reference's slow path,
 * planes the depthwise band holds in several passes, and the edge-cnn
 * base's and the KWS DS-CNN's layers. On the host this checks the portable
 * kernels; built for the Cortex-M4 (ports/cortex-m, ODL_USE_DSP) it checks
 * the dual-MAC kernels, called directly as well as through the dispatching
 * entry points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/odl.h"
#include "odl/quant.h"

static int32_t rnd_int(odl_rng *r, int32_t lo, int32_t hi)
{
    return lo + (int32_t)odl_rng_below(r, (uint32_t)(hi - lo + 1));
}

static void fill_s8(odl_rng *r, int8_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (int8_t)rnd_int(r, -128, 127);
}

#define MAX_C 40

typedef struct rq_store {
    int32_t bias[MAX_C * 2], mult[MAX_C * 2], shift[MAX_C * 2];
    odl_qrequant r;
} rq_store;

/* Multipliers around 1/(typical |acc|) so that most outputs land inside the
 * int8 range; a few channels saturate, one in seven takes a left shift
 * (shift > 0) or a zero multiplier, zero points and clamps at random. */
static void random_requant(odl_rng *r, rq_store *s, int32_t channels, int32_t reduction)
{
    for (int32_t c = 0; c < channels; c++) {
        s->bias[c] = rnd_int(r, -40000, 40000);
        float m = (0.5f + odl_rng_uniform(r)) * 4.0f / (64.0f * 32.0f);
        for (int32_t k = reduction; k > 1; k /= 4)
            m *= 0.5f; /* ~ 1 / sqrt(reduction) */
        if (c % 5 == 4)
            m *= 64.0f;
        odl_q_quantize_multiplier((double)m, &s->mult[c], &s->shift[c]);
        if (c % 7 == 6) {
            s->shift[c] = rnd_int(r, 0, 3) == 0 ? 0 : rnd_int(r, 1, 4);
            if (rnd_int(r, 0, 3) == 0)
                s->mult[c] = 0;
        }
        if (c % 11 == 10)
            s->shift[c] = -31; /* the largest right shift a file may hold */
    }
    s->r.in_zp = rnd_int(r, -128, 127);
    s->r.out_zp = rnd_int(r, -128, 127);
    s->r.act_min = rnd_int(r, -128, 0);
    s->r.act_max = rnd_int(r, 0, 127);
    if (rnd_int(r, 0, 2) == 0) {
        s->r.act_min = -128;
        s->r.act_max = 127;
    }
    s->r.bias = rnd_int(r, 0, 4) ? s->bias : NULL;
    s->r.mult = s->mult;
    s->r.shift = s->shift;
}

static int same_bytes(const int8_t *a, const int8_t *b, size_t n, odl_test_ctx *t, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            odl_test_logf(t, "    %s: element %lu of %lu: %d (reference) vs %d", what, (unsigned long)i,
                          (unsigned long)n, (int)a[i], (int)b[i]);
            return 0;
        }
    return 1;
}

static size_t spread_of(const int8_t *y, size_t n, const odl_qrequant *r)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += y[i] != r->act_min && y[i] != r->act_max;
    return s;
}

typedef struct bufs {
    int8_t *x, *w, *y0, *y1;
    void *scratch;
} bufs;

#define BUF_BYTES 65536

static int bufs_alloc(bufs *b)
{
    b->x = malloc(BUF_BYTES + 4);
    b->w = malloc(BUF_BYTES);
    b->y0 = malloc(BUF_BYTES);
    b->y1 = malloc(BUF_BYTES);
    b->scratch = malloc(4096);
    return b->x && b->w && b->y0 && b->y1 && b->scratch;
}

static void bufs_free(bufs *b)
{
    free(b->x);
    free(b->w);
    free(b->y0);
    free(b->y1);
    free(b->scratch);
}

/* conv d (weights, input, requantisation random) against the reference;
 * returns 0 and logs on the first difference. */
static int conv_case(odl_test_ctx *t, odl_rng *r, const odl_window_dims *d, bufs *b, size_t *spread)
{
    const int32_t g = d->groups, cg = d->in_c / g;
    const size_t nx = (size_t)d->batch * d->in_c * d->in_h * d->in_w;
    const size_t nw = (size_t)d->out_c * cg * d->k_h * d->k_w;
    const size_t ny = (size_t)d->batch * d->out_c * d->out_h * d->out_w;
    if (nx > BUF_BYTES || nw > BUF_BYTES || ny > BUF_BYTES || odl_qconv2d_scratch_bytes(d) > 4096) {
        odl_test_logf(t, "    conv case too large for the test's buffers");
        return 0;
    }
    rq_store rs;
    fill_s8(r, b->x, nx);
    fill_s8(r, b->w, nw);
    random_requant(r, &rs, d->out_c, cg * d->k_h * d->k_w);
    memset(b->y0, 0x55, ny);
    memset(b->y1, 0x22, ny);
    odl_qconv2d_s8_ref(d, b->x, b->w, &rs.r, b->y0);
    odl_qconv2d_s8(d, b->x, b->w, &rs.r, b->y1, b->scratch);
    if (!same_bytes(b->y0, b->y1, ny, t, "conv2d"))
        goto fail;
#if defined(ODL_USE_DSP)
    memset(b->y1, 0x22, ny);
    odl_qconv2d_s8_dsp(d, b->x, b->w, &rs.r, b->y1, b->scratch);
    if (!same_bytes(b->y0, b->y1, ny, t, "conv2d (DSP)"))
        goto fail;
#endif
    *spread += spread_of(b->y0, ny, &rs.r);
    return 1;
fail:
    odl_test_logf(t, "    batch %d, %dx%dx%d -> %dx%dx%d, k %dx%d, stride %d,%d, pad %d,%d, dil %d,%d, groups %d",
                  (int)d->batch, (int)d->in_c, (int)d->in_h, (int)d->in_w, (int)d->out_c, (int)d->out_h,
                  (int)d->out_w, (int)d->k_h, (int)d->k_w, (int)d->stride_h, (int)d->stride_w, (int)d->pad_h,
                  (int)d->pad_w, (int)d->dil_h, (int)d->dil_w, (int)g);
    return 0;
}

static void test_conv(odl_test_ctx *t)
{
#if defined(ODL_USE_DSP)
    odl_test_logf(t, "    kernels: Armv7E-M DSP (dual 16-bit MACs) against the reference loops");
#else
    odl_test_logf(t, "    kernels: portable against the reference loops");
#endif
    bufs b;
    REQUIRE(bufs_alloc(&b));
    odl_rng r;
    odl_rng_seed(&r, 14, 3);
    size_t spread = 0;
    int odd_c = 0, stride2 = 0, padded = 0, tail = 0;
    for (int iter = 0; iter < 160; iter++) {
        odl_window_dims d;
        memset(&d, 0, sizeof d);
        d.batch = rnd_int(&r, 1, 2);
        d.groups = rnd_int(&r, 0, 5) == 0 ? rnd_int(&r, 2, 3) : 1;
        d.in_c = d.groups * rnd_int(&r, 1, 9);
        d.out_c = d.groups * rnd_int(&r, 1, d.groups > 1 ? 5 : 13);
        d.in_h = rnd_int(&r, 1, 10);
        d.in_w = rnd_int(&r, 1, 10);
        d.k_h = rnd_int(&r, 1, 4);
        d.k_w = rnd_int(&r, 1, 4);
        d.stride_h = rnd_int(&r, 1, 2);
        d.stride_w = rnd_int(&r, 1, 2);
        d.dil_h = rnd_int(&r, 0, 6) == 0 ? 2 : 1;
        d.dil_w = rnd_int(&r, 0, 6) == 0 ? 2 : 1;
        d.pad_h = rnd_int(&r, 0, d.k_h - 1);
        d.pad_w = rnd_int(&r, 0, d.k_w - 1);
        d.pad_b = d.pad_h;
        d.pad_r = d.pad_w;
        d.out_h = odl_window_out_size_ex(d.in_h, d.k_h, d.stride_h, d.pad_h, d.pad_b, d.dil_h, 0);
        d.out_w = odl_window_out_size_ex(d.in_w, d.k_w, d.stride_w, d.pad_w, d.pad_r, d.dil_w, 0);
        if (d.out_h < 1 || d.out_w < 1) {
            iter--;
            continue;
        }
        odd_c += d.out_c / d.groups % 2 == 1;
        stride2 += d.stride_h == 2 || d.stride_w == 2;
        padded += d.pad_h > 0 || d.pad_w > 0;
        tail += (d.in_c / d.groups * d.k_h * d.k_w) % 4 != 0;
        if (!conv_case(t, &r, &d, &b, &spread)) {
            CHECK(0);
            break;
        }
    }
    CHECK(odd_c > 20 && stride2 > 20 && padded > 20 && tail > 20); /* the draws cover the cases */
    CHECK(spread > 20000);                                          /* the outputs are not all clamped */
    /* the edge-cnn base's two convolutions (3x3, padding 1) */
    odl_window_dims c1 = odl_window_dims_simple(1, 1, 28, 28, 8, 28, 28, 3, 3, 1, 1, 1, 1);
    odl_window_dims c2 = odl_window_dims_simple(1, 8, 14, 14, 16, 14, 14, 3, 3, 1, 1, 1, 1);
    CHECK(odl_qconv2d_scratch_bytes(&c1) <= 1024 && odl_qconv2d_scratch_bytes(&c2) <= 1024);
    CHECK(conv_case(t, &r, &c1, &b, &spread));
    CHECK(conv_case(t, &r, &c2, &b, &spread));
    /* the KWS DS-CNN's pointwise convolutions (1x1, 64 -> 64 at 25x5), an
     * odd channel count and a strided one */
    odl_window_dims pw = odl_window_dims_simple(1, 64, 25, 5, 64, 25, 5, 1, 1, 1, 1, 0, 0);
    odl_window_dims pw_odd = odl_window_dims_simple(2, 13, 7, 9, 11, 7, 9, 1, 1, 1, 1, 0, 0);
    odl_window_dims pw_s2 = odl_window_dims_simple(1, 9, 8, 7, 6, 4, 4, 1, 1, 2, 2, 0, 0);
    CHECK(conv_case(t, &r, &pw, &b, &spread));
    CHECK(conv_case(t, &r, &pw_odd, &b, &spread));
    CHECK(conv_case(t, &r, &pw_s2, &b, &spread));
    bufs_free(&b);
}

static void test_dense(odl_test_ctx *t)
{
    bufs b;
    REQUIRE(bufs_alloc(&b));
    odl_rng r;
    odl_rng_seed(&r, 14, 4);
    size_t spread = 0;
    rq_store rs;
    for (int iter = 0; iter < 300; iter++) {
        odl_dense_dims d = {rnd_int(&r, 1, 3), rnd_int(&r, 1, 300), rnd_int(&r, 1, 2 * MAX_C - 1)};
        if (iter == 0)
            d.batch = 1, d.in = 784, d.out = 64; /* the edge-cnn base's dense layer */
        const size_t off = (size_t)rnd_int(&r, 0, 3); /* the input at any alignment */
        int8_t *x = b.x + off;
        fill_s8(&r, x, (size_t)d.batch * d.in);
        fill_s8(&r, b.w, (size_t)d.in * d.out);
        random_requant(&r, &rs, d.out, d.in);
        odl_qdense_s8_ref(&d, x, b.w, &rs.r, b.y0);
        odl_qdense_s8(&d, x, b.w, &rs.r, b.y1);
        int ok = same_bytes(b.y0, b.y1, (size_t)d.batch * d.out, t, "dense");
#if defined(ODL_USE_DSP)
        memset(b.y1, 0x22, (size_t)d.batch * d.out);
        odl_qdense_s8_dsp(&d, x, b.w, &rs.r, b.y1);
        ok = ok && same_bytes(b.y0, b.y1, (size_t)d.batch * d.out, t, "dense (DSP)");
#endif
        if (!ok) {
            odl_test_logf(t, "    batch %d, in %d, out %d", (int)d.batch, (int)d.in, (int)d.out);
            CHECK(0);
            break;
        }
        spread += spread_of(b.y0, (size_t)d.batch * d.out, &rs.r);
    }
    CHECK(spread > 3000);
    /* the extremes: inputs −128/127 against weights 127/−128 over 4096 taps
     * with in_zp 127 (|x − zp| = 255), a bias that brings the sum near the
     * int32 limits, multipliers of 1 (shift 0, 1) whose product saturates */
    odl_dense_dims big = {1, 4096, 4};
    for (int k = 0; k < 4096; k++) {
        b.x[k] = (int8_t)(k & 1 ? 127 : -128);
        for (int o = 0; o < 4; o++)
            b.w[o * 4096 + k] = (int8_t)((k + o) & 1 ? -128 : 127);
    }
    int32_t bias[4] = {-(1 << 30), 1 << 30, INT32_MAX - (1 << 28), INT32_MIN + (1 << 28)};
    int32_t mult[4] = {1 << 30, INT32_MAX, INT32_MAX, 1 << 30}, shift[4] = {-20, 1, 0, 0};
    odl_qrequant rq = {127, 100, -128, 127, bias, mult, shift};
    odl_qdense_s8_ref(&big, b.x, b.w, &rq, b.y0);
    odl_qdense_s8(&big, b.x, b.w, &rq, b.y1);
    CHECK(same_bytes(b.y0, b.y1, 4, t, "dense extremes"));
#if defined(ODL_USE_DSP)
    odl_qdense_s8_dsp(&big, b.x, b.w, &rq, b.y1);
    CHECK(same_bytes(b.y0, b.y1, 4, t, "dense extremes (DSP)"));
#endif
    bufs_free(&b);
}

static void test_maxpool(odl_test_ctx *t)
{
    bufs b;
    REQUIRE(bufs_alloc(&b));
    odl_rng r;
    odl_rng_seed(&r, 14, 5);
    for (int iter = 0; iter < 200; iter++) {
        /* 2x2 stride 2 (the fast path) on odd and even sizes, and other windows */
        const int fast = iter % 4 != 3;
        const int32_t in_h = rnd_int(&r, 1, 17), in_w = rnd_int(&r, 1, 17);
        const int32_t k = fast ? 2 : rnd_int(&r, 1, 3), s = fast ? 2 : rnd_int(&r, 1, 2);
        const int32_t pad = fast ? 0 : rnd_int(&r, 0, k - 1);
        const int32_t oh = odl_window_out_size(in_h, k, s, pad), ow = odl_window_out_size(in_w, k, s, pad);
        if (oh < 1 || ow < 1)
            continue;
        odl_window_dims d = odl_window_dims_simple(rnd_int(&r, 1, 2), rnd_int(&r, 1, 5), in_h, in_w, 0, oh, ow, k, k,
                                                   s, s, pad, pad);
        d.out_c = d.in_c;
        const size_t nx = (size_t)d.batch * d.in_c * in_h * in_w, ny = (size_t)d.batch * d.in_c * oh * ow;
        fill_s8(&r, b.x, nx);
        if (iter % 8 == 0)
            memset(b.x, 0x80, nx); /* all −128: ties at the bottom of the range */
        memset(b.y1, 0x22, ny);
        odl_qmaxpool_s8_ref(&d, b.x, b.y0);
        odl_qmaxpool_s8(&d, b.x, b.y1);
        int ok = same_bytes(b.y0, b.y1, ny, t, "maxpool");
#if defined(ODL_USE_DSP)
        if (fast) {
            memset(b.y1, 0x22, ny);
            odl_qmaxpool2x2_s8_dsp(&d, b.x, b.y1);
            ok = ok && same_bytes(b.y0, b.y1, ny, t, "maxpool 2x2 (DSP)");
        }
#endif
        if (!ok) {
            odl_test_logf(t, "    batch %d, c %d, %dx%d -> %dx%d, k %d, stride %d, pad %d", (int)d.batch,
                          (int)d.in_c, (int)in_h, (int)in_w, (int)oh, (int)ow, (int)k, (int)s, (int)pad);
            CHECK(0);
            break;
        }
    }
    bufs_free(&b);
}

/* depthwise d (weights, input, requantisation random) against the
 * reference; *fast counts the cases the DSP kernel took (not a fallback). */
static int depthwise_case(odl_test_ctx *t, odl_rng *r, const odl_window_dims *d, bufs *b, size_t *spread, int *fast)
{
    const size_t nx = (size_t)d->batch * d->in_c * d->in_h * d->in_w;
    const size_t nw = (size_t)d->out_c * d->k_h * d->k_w;
    const size_t ny = (size_t)d->batch * d->out_c * d->out_h * d->out_w;
    if (nx > BUF_BYTES || nw > BUF_BYTES || ny > BUF_BYTES || d->out_c > 2 * MAX_C) {
        odl_test_logf(t, "    depthwise case too large for the test's buffers");
        return 0;
    }
    rq_store rs;
    fill_s8(r, b->x, nx);
    fill_s8(r, b->w, nw);
    random_requant(r, &rs, d->out_c, d->k_h * d->k_w);
    memset(b->y0, 0x55, ny);
    memset(b->y1, 0x22, ny);
    odl_qdepthwise_s8_ref(d, b->x, b->w, &rs.r, b->y0);
    odl_qdepthwise_s8(d, b->x, b->w, &rs.r, b->y1);
    if (!same_bytes(b->y0, b->y1, ny, t, "depthwise"))
        goto fail;
#if defined(ODL_USE_DSP)
    memset(b->y1, 0x22, ny);
    if (odl_qdepthwise_s8_dsp(d, b->x, b->w, &rs.r, b->y1)) {
        (*fast)++;
        if (!same_bytes(b->y0, b->y1, ny, t, "depthwise (DSP)"))
            goto fail;
    } else {
        for (size_t i = 0; i < ny; i++) /* a shape it refuses: nothing written */
            if (b->y1[i] != 0x22) {
                odl_test_logf(t, "    depthwise (DSP) refused the shape but wrote element %lu", (unsigned long)i);
                goto fail;
            }
    }
#else
    (*fast)++;
#endif
    *spread += spread_of(b->y0, ny, &rs.r);
    return 1;
fail:
    odl_test_logf(t, "    batch %d, %dx%dx%d -> %dx%dx%d, k %dx%d, stride %d,%d, pad %d,%d,%d,%d, dil %d,%d",
                  (int)d->batch, (int)d->in_c, (int)d->in_h, (int)d->in_w, (int)d->out_c, (int)d->out_h,
                  (int)d->out_w, (int)d->k_h, (int)d->k_w, (int)d->stride_h, (int)d->stride_w, (int)d->pad_h,
                  (int)d->pad_w, (int)d->pad_b, (int)d->pad_r, (int)d->dil_h, (int)d->dil_w);
    return 0;
}

static void test_depthwise(odl_test_ctx *t)
{
    bufs b;
    REQUIRE(bufs_alloc(&b));
    odl_rng r;
    odl_rng_seed(&r, 14, 6);
    size_t spread = 0;
    int fast = 0, odd_c = 0, stride2 = 0, padded = 0, multiplier = 0, bands = 0, k3 = 0;
    for (int iter = 0; iter < 240; iter++) {
        odl_window_dims d;
        memset(&d, 0, sizeof d);
        const int big = iter % 10 == 9; /* planes the 1 KB band holds in several passes */
        d.batch = big ? 1 : rnd_int(&r, 1, 2);
        d.groups = 1;
        d.in_c = rnd_int(&r, 1, big ? 3 : 9);
        d.out_c = d.in_c * (rnd_int(&r, 0, 3) == 0 ? rnd_int(&r, 2, 3) : 1);
        d.in_h = rnd_int(&r, 1, big ? 48 : 12);
        d.in_w = rnd_int(&r, 1, big ? 40 : 12);
        d.k_h = iter % 3 == 0 ? 3 : rnd_int(&r, 1, 5);
        d.k_w = iter % 3 == 0 ? 3 : rnd_int(&r, 1, 5);
        d.stride_h = rnd_int(&r, 1, 2);
        d.stride_w = rnd_int(&r, 1, 2);
        d.dil_h = rnd_int(&r, 0, 8) == 0 ? 2 : 1;
        d.dil_w = rnd_int(&r, 0, 8) == 0 ? 2 : 1;
        d.pad_h = rnd_int(&r, 0, d.k_h - 1);
        d.pad_w = rnd_int(&r, 0, d.k_w - 1);
        d.pad_b = rnd_int(&r, 0, 2) ? d.pad_h : rnd_int(&r, 0, d.k_h - 1); /* asymmetric too (TFLite's SAME) */
        d.pad_r = rnd_int(&r, 0, 2) ? d.pad_w : rnd_int(&r, 0, d.k_w - 1);
        d.out_h = odl_window_out_size_ex(d.in_h, d.k_h, d.stride_h, d.pad_h, d.pad_b, d.dil_h, 0);
        d.out_w = odl_window_out_size_ex(d.in_w, d.k_w, d.stride_w, d.pad_w, d.pad_r, d.dil_w, 0);
        if (d.out_h < 1 || d.out_w < 1) {
            iter--;
            continue;
        }
        odd_c += d.in_c % 2 == 1;
        stride2 += d.stride_h == 2 || d.stride_w == 2;
        padded += d.pad_h > 0 || d.pad_w > 0;
        multiplier += d.out_c > d.in_c;
        k3 += d.k_h == 3 && d.k_w == 3;
        /* rows of the band: (out_w − 1)·stride + 2·ceil(k_w / 2) int16 each, 512 in all */
        bands += big && d.in_h > 512 / ((d.out_w - 1) * d.stride_w + 2 * ((d.k_w + 1) / 2));
        if (!depthwise_case(t, &r, &d, &b, &spread, &fast)) {
            CHECK(0);
            break;
        }
    }
    CHECK(odd_c > 40 && stride2 > 40 && padded > 40 && multiplier > 20 && k3 > 40 && bands > 5);
    CHECK(fast > 150);     /* the DSP kernel took most shapes */
    CHECK(spread > 20000); /* the outputs are not all clamped */
    /* the KWS DS-CNN's depthwise layers (64 channels, 25x5, 3x3, padding 1),
     * a stride-2 one, and a row too wide for the band (the portable loop) */
    odl_window_dims kws = odl_window_dims_simple(1, 64, 25, 5, 64, 25, 5, 3, 3, 1, 1, 1, 1);
    odl_window_dims s2 = odl_window_dims_simple(1, 16, 28, 28, 16, 14, 14, 3, 3, 2, 2, 1, 1);
    odl_window_dims wide = odl_window_dims_simple(1, 2, 3, 400, 2, 3, 400, 3, 3, 1, 1, 1, 1);
    const int fast0 = fast;
    CHECK(depthwise_case(t, &r, &kws, &b, &spread, &fast));
    CHECK(depthwise_case(t, &r, &s2, &b, &spread, &fast));
    CHECK(fast == fast0 + 2);
    CHECK(depthwise_case(t, &r, &wide, &b, &spread, &fast));
    bufs_free(&b);
}

static void test_avgpool(odl_test_ctx *t)
{
    bufs b;
    REQUIRE(bufs_alloc(&b));
    odl_rng r;
    odl_rng_seed(&r, 14, 7);
    int whole = 0, count_pad = 0;
    for (int iter = 0; iter < 240; iter++) {
        const int32_t in_h = rnd_int(&r, 1, 30), in_w = rnd_int(&r, 1, 17);
        int32_t k_h = rnd_int(&r, 1, 5), k_w = rnd_int(&r, 1, 5), s = rnd_int(&r, 1, 3);
        int32_t pad_h = rnd_int(&r, 0, k_h - 1), pad_w = rnd_int(&r, 0, k_w - 1);
        if (iter % 4 == 0) /* one window over the whole plane (the KWS pool, a global average) */
            k_h = in_h, k_w = in_w, s = 1, pad_h = pad_w = 0;
        const int32_t oh = odl_window_out_size(in_h, k_h, s, pad_h), ow = odl_window_out_size(in_w, k_w, s, pad_w);
        if (oh < 1 || ow < 1) {
            iter--;
            continue;
        }
        odl_window_dims d = odl_window_dims_simple(rnd_int(&r, 1, 2), rnd_int(&r, 1, 5), in_h, in_w, 0, oh, ow, k_h,
                                                   k_w, s, s, pad_h, pad_w);
        d.out_c = d.in_c;
        if (iter % 3 == 1)
            d.flags = ODL_NODE_COUNT_PAD;
        whole += k_w == in_w;
        count_pad += d.flags != 0 && (pad_h > 0 || pad_w > 0);
        const size_t nx = (size_t)d.batch * d.in_c * in_h * in_w, ny = (size_t)d.batch * d.in_c * oh * ow;
        fill_s8(&r, b.x, nx);
        if (iter % 8 == 2)
            memset(b.x, 0x80, nx); /* all −128: the most negative sums */
        if (iter % 8 == 6)
            memset(b.x, 0x7f, nx); /* all 127 */
        for (size_t i = 0; iter % 8 == 4 && i < nx; i++)
            b.x[i] = (int8_t)(i % 2 ? -2 : 1); /* means of exactly −0.5: ties away from zero */
        memset(b.y1, 0x22, ny);
        odl_qavgpool_s8_ref(&d, b.x, b.y0);
        odl_qavgpool_s8(&d, b.x, b.y1);
        if (!same_bytes(b.y0, b.y1, ny, t, "avgpool")) {
            odl_test_logf(t, "    batch %d, c %d, %dx%d -> %dx%d, k %dx%d, stride %d, pad %d,%d, flags %u",
                          (int)d.batch, (int)d.in_c, (int)in_h, (int)in_w, (int)oh, (int)ow, (int)k_h, (int)k_w,
                          (int)s, (int)pad_h, (int)pad_w, (unsigned)d.flags);
            CHECK(0);
            break;
        }
    }
    CHECK(whole > 50 && count_pad > 20);
#if defined(ODL_USE_DSP)
    /* the four-byte sums at every alignment and length, at the extremes */
    for (int fill = 0; fill < 3; fill++)
        for (size_t off = 0; off < 4; off++)
            for (size_t n = 0; n < 70; n++) {
                int8_t *x = b.x + off;
                for (size_t i = 0; i < n; i++)
                    x[i] = (int8_t)(fill == 0 ? -128 : fill == 1 ? 127 : rnd_int(&r, -128, 127));
                int32_t want = 0;
                for (size_t i = 0; i < n; i++)
                    want += x[i];
                if (odl_qsum_s8_dsp(x, n) != want) {
                    odl_test_logf(t, "    sum (DSP) of %lu bytes at offset %lu: %d, want %d", (unsigned long)n,
                                  (unsigned long)off, (int)odl_qsum_s8_dsp(x, n), (int)want);
                    CHECK(0);
                    fill = 3, off = 4, n = 70;
                }
            }
    /* a long run near the limit a window may have */
    for (size_t i = 0; i < BUF_BYTES; i++)
        b.x[i] = -128;
    CHECK(odl_qsum_s8_dsp(b.x, BUF_BYTES) == -128 * BUF_BYTES);
#endif
    bufs_free(&b);
}

/* A multiplier of M: at random a value a layer would have, zero, or the
 * largest right shift a file may hold. (Not one with a left shift: the
 * reference's int32 sums would overflow.) */
static void random_mult(odl_rng *r, double m, int32_t *mult, int32_t *shift)
{
    const int kind = rnd_int(r, 0, 9);
    odl_q_quantize_multiplier(m, mult, shift);
    if (kind == 8)
        *mult = 0, *shift = 0;
    if (kind == 9)
        *shift = -31;
}

static void test_add(odl_test_ctx *t)
{
    bufs b;
    REQUIRE(bufs_alloc(&b));
    odl_rng r;
    odl_rng_seed(&r, 14, 8);
    size_t spread = 0;
    int broadcast = 0, large = 0, tabulated = 0;
    for (int iter = 0; iter < 200; iter++) {
        const int32_t n = rnd_int(&r, 1, 2), c = rnd_int(&r, 1, 9), hw = rnd_int(&r, 1, iter % 2 ? 40 : 700);
        const int bc = rnd_int(&r, 0, 3); /* 0, 3 full; 1 c x 1 x 1; 2 1 x 1 x 1 */
        const int32_t b_c = bc == 2 ? 1 : c, b_hw = bc == 1 || bc == 2 ? 1 : hw;
        const size_t na = (size_t)n * c * hw, nb = (size_t)n * b_c * b_hw;
        fill_s8(&r, b.x, na);
        fill_s8(&r, b.w, nb);
        const double sa = 0.002 + 0.1 * odl_rng_uniform(&r), sb = 0.002 + 0.1 * odl_rng_uniform(&r);
        const double so = (0.002 + 0.1 * odl_rng_uniform(&r)) * (rnd_int(&r, 0, 3) ? 1.0 : 0.05);
        odl_qbinary p;
        memset(&p, 0, sizeof p);
        p.a_zp = rnd_int(&r, -128, 127), p.b_zp = rnd_int(&r, -128, 127), p.out_zp = rnd_int(&r, -128, 127);
        p.left_shift = rnd_int(&r, 0, 3) ? 20 : rnd_int(&r, 0, 20);
        const double twice = 2.0 * (sa > sb ? sa : sb);
        random_mult(&r, sa / twice, &p.a_mult, &p.a_shift);
        random_mult(&r, sb / twice, &p.b_mult, &p.b_shift);
        random_mult(&r, twice / ((double)(1 << p.left_shift) * so), &p.out_mult, &p.out_shift);
        p.act_min = rnd_int(&r, 0, 2) ? -128 : rnd_int(&r, -128, 0);
        p.act_max = rnd_int(&r, 0, 2) ? 127 : rnd_int(&r, 0, 127);
        broadcast += bc == 1 || bc == 2;
        large += na >= 512;
        memset(b.y1, 0x22, na);
        odl_qadd_s8_ref(&p, n, c, hw, b.x, b.w, b_c, b_hw, b.y0);
        odl_qadd_s8(&p, n, c, hw, b.x, b.w, b_c, b_hw, b.y1);
        int ok = same_bytes(b.y0, b.y1, na, t, "add");
#if defined(ODL_USE_DSP)
        memset(b.y1, 0x22, na);
        if (odl_qadd_s8_dsp(&p, n, c, hw, b.x, b.w, b_c, b_hw, b.y1)) {
            tabulated++;
            ok = ok && same_bytes(b.y0, b.y1, na, t, "add (DSP)");
        } else {
            for (size_t i = 0; ok && i < na; i++)
                ok = b.y1[i] == 0x22; /* refused: nothing written */
        }
#else
        tabulated += na >= 512;
#endif
        /* in place (y = a), as a residual connection runs */
        memcpy(b.y1, b.x, na);
        odl_qadd_s8(&p, n, c, hw, b.y1, b.w, b_c, b_hw, b.y1);
        ok = ok && same_bytes(b.y0, b.y1, na, t, "add in place");
        if (!ok) {
            odl_test_logf(t, "    n %d, c %d, hw %d, b %dx%d, zp %d %d %d, mult %d/%d %d/%d %d/%d, left shift %d",
                          (int)n, (int)c, (int)hw, (int)b_c, (int)b_hw, (int)p.a_zp, (int)p.b_zp, (int)p.out_zp,
                          (int)p.a_mult, (int)p.a_shift, (int)p.b_mult, (int)p.b_shift, (int)p.out_mult,
                          (int)p.out_shift, (int)p.left_shift);
            CHECK(0);
            break;
        }
        for (size_t i = 0; i < na; i++)
            spread += b.y0[i] != p.act_min && b.y0[i] != p.act_max;
    }
    CHECK(broadcast > 60 && large > 60 && tabulated > 60);
    CHECK(spread > 100000); /* the outputs are not all clamped */
    bufs_free(&b);
}

static const odl_test_case cases[] = {
    {"conv", test_conv},
    {"dense", test_dense},
    {"maxpool", test_maxpool},
    {"depthwise", test_depthwise},
    {"avgpool", test_avgpool},
    {"add", test_add},
};

TEST_MAIN(cases)
