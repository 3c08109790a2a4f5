/* INT8 tests: the fixed-point helpers on hand-computed values, every INT8
 * kernel against its reference loop bit for bit (random shapes, padding,
 * strides, zero points, clamps), hand-computed tiny layers, calibration and
 * quantisation of a small model against its FP32 output, exact plans, the
 * quantised file (round trip, FP32 compatibility, byte-exact FP32 part, a
 * flip-every-byte and cut-at-every-length sweep, crafted chunks). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/odl.h"
#include "odl/quant.h"
#ifndef ODL_PORT_TEST_TARGET_H
#include "odl/data.h"
#endif

/* ---- helpers -------------------------------------------------------------- */

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static odl_status mb_write(void *ctx, const void *data, size_t n)
{
    membuf *b = ctx;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np)
            return ODL_ERR_IO;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return ODL_OK;
}

static odl_writer mb_writer(membuf *b)
{
    odl_writer w;
    memset(&w, 0, sizeof w);
    w.write = mb_write;
    w.ctx = b;
    return w;
}

/* A 16-byte-aligned copy (the file code expects aligned buffers). */
static uint8_t *aligned_dup(const void *p, size_t n)
{
    uint8_t *q = aligned_alloc(16, (n + 15u) & ~(size_t)15u);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

static int32_t rnd_int(odl_rng *r, int32_t lo, int32_t hi)
{
    return lo + (int32_t)(odl_rng_uniform(r) * (float)(hi - lo + 1)) % (hi - lo + 1);
}

static void fill_s8(odl_rng *r, int8_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (int8_t)rnd_int(r, -128, 127);
}

static void fill_f(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * odl_rng_uniform(&r);
}

typedef struct built {
    void *buf;
    odl_arena arena;
    odl_model *m;
} built;

static odl_status build_fp32(built *b, const odl_model_desc *desc, int32_t max_batch, uint64_t seed)
{
    odl_diag d;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = max_batch;
    odl_mem_plan plan;
    memset(b, 0, sizeof *b);
    odl_status s = odl_model_plan(desc, &cfg, &plan, &d);
    if (s != ODL_OK)
        return s;
    b->buf = malloc(plan.total);
    odl_arena_init(&b->arena, b->buf, plan.total);
    s = odl_model_init(&b->m, desc, &cfg, &b->arena, &d);
    if (s != ODL_OK)
        return s;
    odl_rng r;
    odl_rng_seed(&r, seed, 1);
    return odl_model_init_params(b->m, &r);
}

typedef struct qbuilt {
    void *buf;
    odl_arena arena;
    odl_qmodel *q;
    odl_mem_plan plan;
} qbuilt;

static odl_status build_q(qbuilt *b, const odl_model_desc *desc, int32_t boundary, int32_t max_batch)
{
    odl_diag d;
    memset(b, 0, sizeof *b);
    odl_status s = odl_qmodel_plan(desc, boundary, max_batch, &b->plan, &d);
    if (s != ODL_OK)
        return s;
    b->buf = malloc(b->plan.total);
    odl_arena_init(&b->arena, b->buf, b->plan.total);
    return odl_qmodel_init(&b->q, desc, boundary, max_batch, &b->arena, &d);
}

/* Calibrates on n random inputs in [lo, hi) and quantises. */
static odl_status calibrate(qbuilt *qb, odl_model *m, const float *x, int32_t n, int32_t boundary)
{
    odl_diag d;
    odl_qcalib c;
    float ranges[2 * 64];
    const odl_model_desc *desc = odl_model_get_desc(m);
    odl_status s = boundary <= 64 ? odl_qcalib_begin(&c, desc, boundary, ranges, &d) : ODL_ERR_ARG;
    if (s != ODL_OK)
        return s;
    size_t wf = odl_qcalib_work_floats(desc, boundary, n);
    float *work = malloc(wf * sizeof(float));
    s = odl_qcalib_observe(&c, m, x, n, work, wf, &d);
    free(work);
    if (s != ODL_OK)
        return s;
    return odl_qmodel_quantize(qb->q, m, &c, &d);
}

/* A small model exercising every supported layer type in its prefix. */
static void small_desc(odl_model_desc *d)
{
    odl_desc_init(d, (d)->layers, (d)->cap_layers, 2, 12, 12);
    odl_desc_conv2d(d, 4, 3, 1, 1);   /* 0 */
    odl_desc_relu(d);                 /* 1 fused */
    odl_desc_maxpool(d, 2, 2);        /* 2 */
    odl_desc_depthwise(d, 2, 3, 2, 1); /* 3: 8×3×3 */
    odl_desc_relu6(d);                /* 4 fused */
    odl_desc_avgpool(d, 2, 1);        /* 5: 8×2×2 */
    odl_desc_relu(d);                 /* 6 standalone clamp */
    odl_desc_dropout(d, 0.25f);       /* 7 */
    odl_desc_flatten(d);              /* 8 */
    odl_desc_dense(d, 6);             /* 9 */
    odl_desc_relu(d);                 /* 10 fused */
    odl_desc_dense(d, 3);             /* 11 head */
}

/* ---- scalar helpers ------------------------------------------------------- */

static void test_multiplier(odl_test_ctx *t)
{
    int32_t m, s;
    odl_q_quantize_multiplier(0.5, &m, &s);
    CHECK(m == (1 << 30) && s == 0);
    odl_q_quantize_multiplier(0.25, &m, &s);
    CHECK(m == (1 << 30) && s == -1);
    odl_q_quantize_multiplier(1.0, &m, &s);
    CHECK(m == (1 << 30) && s == 1);
    odl_q_quantize_multiplier(0.75, &m, &s);
    CHECK(m == 3 * (1 << 29) && s == 0);
    odl_q_quantize_multiplier(0.0, &m, &s);
    CHECK(m == 0 && s == 0);
    odl_q_quantize_multiplier(1e-20, &m, &s); /* below 2^-32: zero */
    CHECK(m == 0 && s == 0);
    odl_q_quantize_multiplier(1e20, &m, &s); /* saturates */
    CHECK(m == INT32_MAX && s == 30);

    /* M = 0.5: SaturatingRoundingDoublingHighMul rounds ties toward +inf */
    CHECK(odl_q_multiply(5, 1 << 30, 0) == 3);   /* 2.5 -> 3 */
    CHECK(odl_q_multiply(-5, 1 << 30, 0) == -2); /* -2.5 -> -2 */
    CHECK(odl_q_multiply(6, 1 << 30, 0) == 3);
    /* M = 0.25: exact high-mul, then RoundingDivideByPOT, ties away from zero */
    CHECK(odl_q_multiply(10, 1 << 30, -1) == 3);   /* 2.5 -> 3 */
    CHECK(odl_q_multiply(-10, 1 << 30, -1) == -3); /* -2.5 -> -3 */
    CHECK(odl_q_multiply(-9, 1 << 30, -1) == -2);  /* -2.25 -> -2 */
    /* M = 2: left shift, saturating */
    CHECK(odl_q_multiply(7, 1 << 30, 2) == 14);
    CHECK(odl_q_multiply(INT32_MAX, 1 << 30, 2) == INT32_MAX / 2 + 1);
    CHECK(odl_q_multiply(INT32_MIN, INT32_MIN, 0) == INT32_MAX);

    /* random: within 1 of x·M (the high-mul and the shift both round, so a
     * result can be off by one where a single rounding would not be), and
     * correctly rounded for most */
    odl_rng r;
    odl_rng_seed(&r, 5, 5);
    int exact = 0, total = 0;
    for (int k = 0; k < 20000; k++) {
        double M = exp(-12.0 * (double)odl_rng_uniform(&r));
        int32_t x = rnd_int(&r, -2000000, 2000000);
        odl_q_quantize_multiplier(M, &m, &s);
        double mq = (double)m * ldexp(1.0, s - 31);
        int32_t got = odl_q_multiply(x, m, s);
        double want = (double)x * mq;
        if (!(fabs((double)got - want) < 1.0)) {
            odl_test_logf(t, "    x %d M %.9g: got %d want %.3f", (int)x, M, (int)got, want);
            CHECK(0);
            break;
        }
        exact += (double)got == round(want);
        total++;
    }
    CHECK(exact > total * 9 / 10);
}

static void test_params(odl_test_ctx *t)
{
    odl_qparams p = odl_q_choose_params(0.0f, 1.0f);
    CHECK_NEAR(p.scale, 1.0 / 255.0, 1e-9);
    CHECK(p.zero_point == -128);
    p = odl_q_choose_params(-1.0f, 3.0f); /* zero point −128 + 63.75 = −64.25 */
    CHECK_NEAR(p.scale, 4.0 / 255.0, 1e-9);
    CHECK(p.zero_point == -64);
    p = odl_q_choose_params(2.0f, 5.0f); /* widened to [0, 5] */
    CHECK_NEAR(p.scale, 5.0 / 255.0, 1e-7);
    CHECK(p.zero_point == -128);
    p = odl_q_choose_params(-3.0f, -1.0f); /* widened to [-3, 0] */
    CHECK(p.zero_point == 127);
    p = odl_q_choose_params(0.0f, 0.0f);
    CHECK(p.scale == 1.0f && p.zero_point == 0);
    p = odl_q_choose_params(INFINITY, -INFINITY); /* nothing observed */
    CHECK(p.scale == 1.0f && p.zero_point == 0);
    /* 0.0 is exact for any range, and quantise/dequantise errs by ≤ scale/2 inside the range */
    odl_rng r;
    odl_rng_seed(&r, 9, 9);
    for (int k = 0; k < 2000; k++) {
        float lo = -10.0f * odl_rng_uniform(&r), hi = 10.0f * odl_rng_uniform(&r);
        p = odl_q_choose_params(lo, hi);
        REQUIRE(p.zero_point >= -128 && p.zero_point <= 127 && p.scale > 0.0f);
        CHECK(odl_q_quantize(0.0f, p) == p.zero_point);
        CHECK(odl_q_dequantize((int8_t)p.zero_point, p) == 0.0f);
        float x = lo + (hi - lo) * odl_rng_uniform(&r);
        CHECK(fabsf(odl_q_dequantize(odl_q_quantize(x, p), p) - x) <= 0.5f * p.scale * 1.0001f + 1e-7f);
    }
    p.scale = 0.5f;
    p.zero_point = 3;
    CHECK(odl_q_quantize(1.25f, p) == 6);    /* 2.5 -> 3, + 3 */
    CHECK(odl_q_quantize(-1.25f, p) == 0);   /* -2.5 -> -3, + 3 */
    CHECK(odl_q_quantize(1000.0f, p) == 127);
    CHECK(odl_q_quantize(-1000.0f, p) == -128);
    CHECK(odl_q_quantize(NAN, p) == 3);
}

/* ---- kernels ---------------------------------------------------------------- */

typedef struct rq_store {
    int32_t bias[64], mult[64], shift[64];
    odl_qrequant r;
} rq_store;

static void random_requant(odl_rng *r, rq_store *s, int32_t channels, int32_t reduction)
{
    for (int32_t c = 0; c < channels; c++) {
        s->bias[c] = rnd_int(r, -50000, 50000);
        /* M around 1/(typical |acc|) so outputs spread over the int8 range */
        double M = (0.5 + odl_rng_uniform(r)) * 8.0 / (64.0 * sqrt((double)reduction) * 32.0);
        if (c % 5 == 4)
            M *= 64.0; /* some saturate */
        odl_q_quantize_multiplier(M, &s->mult[c], &s->shift[c]);
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

static odl_window_dims random_window(odl_rng *r, int depthwise)
{
    odl_window_dims d;
    for (;;) {
        d.batch = rnd_int(r, 1, 3);
        d.in_c = rnd_int(r, 1, 4);
        d.in_h = rnd_int(r, 1, 9);
        d.in_w = rnd_int(r, 1, 9);
        d.k_h = rnd_int(r, 1, 4);
        d.k_w = rnd_int(r, 1, 4);
        d.stride_h = rnd_int(r, 1, 3);
        d.stride_w = rnd_int(r, 1, 3);
        d.pad_h = rnd_int(r, 0, d.k_h - 1);
        d.pad_w = rnd_int(r, 0, d.k_w - 1);
        d.out_h = odl_window_out_size(d.in_h, d.k_h, d.stride_h, d.pad_h);
        d.out_w = odl_window_out_size(d.in_w, d.k_w, d.stride_w, d.pad_w);
        if (d.out_h > 0 && d.out_w > 0)
            break;
    }
    d.out_c = depthwise ? d.in_c * rnd_int(r, 1, 3) : rnd_int(r, 1, 6);
    /* INT8 windows: symmetric padding, no dilation, one group */
    d.pad_b = d.pad_h;
    d.pad_r = d.pad_w;
    d.dil_h = d.dil_w = 1;
    d.groups = 1;
    d.flags = 0;
    return d;
}

static int same_bytes(const int8_t *a, const int8_t *b, size_t n, odl_test_ctx *t, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            odl_test_logf(t, "    %s: element %zu: %d vs %d", what, i, (int)a[i], (int)b[i]);
            return 0;
        }
    return 1;
}

static void test_kernels_vs_ref(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 2024, 11);
    int8_t x[4096], w[4096], y0[8192], y1[8192];
    static uint8_t scratch[1 << 16];
    rq_store rs;
    int spread = 0;
    for (int iter = 0; iter < 400; iter++) {
        /* conv2d */
        odl_window_dims d = random_window(&r, 0);
        size_t nx = (size_t)d.batch * d.in_c * d.in_h * d.in_w;
        size_t nw = (size_t)d.out_c * d.in_c * d.k_h * d.k_w;
        size_t ny = (size_t)d.batch * d.out_c * d.out_h * d.out_w;
        REQUIRE(nx <= sizeof x && nw <= sizeof w && ny <= sizeof y0);
        REQUIRE(odl_qconv2d_scratch_bytes(&d) <= sizeof scratch);
        fill_s8(&r, x, nx);
        fill_s8(&r, w, nw);
        random_requant(&r, &rs, d.out_c, d.in_c * d.k_h * d.k_w);
        memset(y0, 0x55, ny);
        memset(y1, 0x22, ny);
        odl_qconv2d_s8_ref(&d, x, w, &rs.r, y0);
        odl_qconv2d_s8(&d, x, w, &rs.r, y1, scratch);
        if (!same_bytes(y0, y1, ny, t, "conv2d")) {
            CHECK(0);
            return;
        }
        for (size_t i = 0; i < ny; i++)
            spread += y0[i] != rs.r.act_min && y0[i] != rs.r.act_max;
        /* depthwise */
        d = random_window(&r, 1);
        nx = (size_t)d.batch * d.in_c * d.in_h * d.in_w;
        nw = (size_t)d.out_c * d.k_h * d.k_w;
        ny = (size_t)d.batch * d.out_c * d.out_h * d.out_w;
        fill_s8(&r, x, nx);
        fill_s8(&r, w, nw);
        random_requant(&r, &rs, d.out_c, d.k_h * d.k_w);
        odl_qdepthwise_s8_ref(&d, x, w, &rs.r, y0);
        odl_qdepthwise_s8(&d, x, w, &rs.r, y1);
        if (!same_bytes(y0, y1, ny, t, "depthwise")) {
            CHECK(0);
            return;
        }
        /* pools */
        d = random_window(&r, 0);
        d.out_c = d.in_c;
        nx = (size_t)d.batch * d.in_c * d.in_h * d.in_w;
        ny = (size_t)d.batch * d.out_c * d.out_h * d.out_w;
        fill_s8(&r, x, nx);
        odl_qmaxpool_s8_ref(&d, x, y0);
        odl_qmaxpool_s8(&d, x, y1);
        if (!same_bytes(y0, y1, ny, t, "maxpool")) {
            CHECK(0);
            return;
        }
        odl_qavgpool_s8_ref(&d, x, y0);
        odl_qavgpool_s8(&d, x, y1);
        if (!same_bytes(y0, y1, ny, t, "avgpool")) {
            CHECK(0);
            return;
        }
        odl_qgap_s8_ref(d.batch, d.in_c, d.in_h * d.in_w, x, y0);
        odl_qgap_s8(d.batch, d.in_c, d.in_h * d.in_w, x, y1);
        if (!same_bytes(y0, y1, (size_t)d.batch * d.in_c, t, "gap")) {
            CHECK(0);
            return;
        }
        /* dense */
        odl_dense_dims dd = {rnd_int(&r, 1, 4), rnd_int(&r, 1, 200), rnd_int(&r, 1, 20)};
        fill_s8(&r, x, (size_t)dd.batch * dd.in);
        fill_s8(&r, w, (size_t)dd.in * dd.out);
        random_requant(&r, &rs, dd.out, dd.in);
        odl_qdense_s8_ref(&dd, x, w, &rs.r, y0);
        odl_qdense_s8(&dd, x, w, &rs.r, y1);
        if (!same_bytes(y0, y1, (size_t)dd.batch * dd.out, t, "dense")) {
            CHECK(0);
            return;
        }
    }
    CHECK(spread > 1000); /* the outputs are not all clamped */
    /* the 2x2/2 max-pool fast path */
    odl_window_dims d = odl_window_dims_simple(2, 3, 8, 6, 3, 4, 3, 2, 2, 2, 2, 0, 0);
    fill_s8(&r, x, 2 * 3 * 8 * 6);
    odl_qmaxpool_s8_ref(&d, x, y0);
    odl_qmaxpool_s8(&d, x, y1);
    CHECK(same_bytes(y0, y1, 2 * 3 * 4 * 3, t, "maxpool 2x2"));
    /* the extremes: every input −128 or 127, weights ±128/127, long reductions */
    odl_dense_dims big = {1, 4096, 1};
    int8_t *bx = malloc(4096), *bw = malloc(4096);
    for (int k = 0; k < 4096; k++) {
        bx[k] = (int8_t)(k & 1 ? 127 : -128);
        bw[k] = (int8_t)(k & 1 ? -128 : 127);
    }
    int32_t bias = -(1 << 30), mult = 1 << 30, shift = -20;
    odl_qrequant rq = {127, 0, -128, 127, &bias, &mult, &shift};
    odl_qdense_s8_ref(&big, bx, bw, &rq, y0);
    odl_qdense_s8(&big, bx, bw, &rq, y1);
    CHECK(y0[0] == y1[0]);
    free(bx);
    free(bw);
}

static void test_hand_computed(odl_test_ctx *t)
{
    /* dense 2 -> 1: x − zp = [8, −22], w = [3, −1], bias 5:
     * acc = 5 + 24 + 22 = 51; M = 0.25 (2^30, shift −1):
     * high-mul 25.5 -> 26, then 26 / 2 = 13; + out_zp −5 = 8 */
    const int8_t x[2] = {10, -20}, w[2] = {3, -1};
    int32_t bias = 5, mult = 1 << 30, shift = -1;
    odl_qrequant r = {2, -5, -128, 127, &bias, &mult, &shift};
    odl_dense_dims dd = {1, 2, 1};
    int8_t y = 0, yr = 0;
    odl_qdense_s8(&dd, x, w, &r, &y);
    odl_qdense_s8_ref(&dd, x, w, &r, &yr);
    CHECK(y == 8 && yr == 8);
    r.act_min = 10; /* a fused ReLU whose zero point is 10 */
    odl_qdense_s8(&dd, x, w, &r, &y);
    CHECK(y == 10);

    /* conv 1 -> 1 channel, 3x3 kernel of ones, padding 1, on a 2x2 input:
     * every window covers all four pixels; padding is the real value 0 (not
     * the int8 value 0), so the result must not depend on the zero point:
     * x − zp = [1, 2, 3, 4] -> acc 10, M = 0.5 -> 5 everywhere */
    const int8_t xc[4] = {4, 5, 6, 7}, wc[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    int32_t m2 = 1 << 30, s2 = 0;
    odl_qrequant rc = {3, 0, -128, 127, NULL, &m2, &s2};
    odl_window_dims wd = odl_window_dims_simple(1, 1, 2, 2, 1, 2, 2, 3, 3, 1, 1, 1, 1);
    int8_t yc[4], ycr[4];
    uint8_t scratch[256];
    REQUIRE(odl_qconv2d_scratch_bytes(&wd) <= sizeof scratch);
    odl_qconv2d_s8(&wd, xc, wc, &rc, yc, scratch);
    odl_qconv2d_s8_ref(&wd, xc, wc, &rc, ycr);
    for (int k = 0; k < 4; k++)
        CHECK(yc[k] == 5 && ycr[k] == 5);
    /* depthwise, same numbers */
    odl_qdepthwise_s8(&wd, xc, wc, &rc, yc);
    for (int k = 0; k < 4; k++)
        CHECK(yc[k] == 5);

    /* avg pool 2x2 over [1, 2, 3, 5] = 2.75 -> 3; over [−1, −2, −3, −4] = −2.5 -> −3 */
    const int8_t xp[8] = {1, 2, 3, 5, -1, -2, -3, -4};
    int8_t yp[2];
    odl_window_dims pd = odl_window_dims_simple(1, 2, 2, 2, 2, 1, 1, 2, 2, 2, 2, 0, 0);
    odl_qavgpool_s8(&pd, xp, yp);
    CHECK(yp[0] == 3 && yp[1] == -3);
    odl_qmaxpool_s8(&pd, xp, yp);
    CHECK(yp[0] == 5 && yp[1] == -1);
}

/* ---- the model ------------------------------------------------------------- */

static void test_plan_exact(odl_test_ctx *t)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    small_desc(&desc);
    odl_diag d;
    for (int32_t boundary = 1; boundary <= desc.n_layers; boundary++)
        for (int32_t mb = 1; mb <= 5; mb += 4) {
            odl_mem_plan plan;
            CHECK_OK(odl_qmodel_plan(&desc, boundary, mb, &plan, &d));
            uint8_t *buf = malloc(plan.total);
            odl_arena a;
            odl_arena_init(&a, buf, plan.total);
            odl_qmodel *q = NULL;
            CHECK_OK(odl_qmodel_init(&q, &desc, boundary, mb, &a, &d));
            CHECK(a.used == plan.total);
            for (int k = 0; k < ODL_MEM_KINDS; k++)
                CHECK(a.plan.bytes[k] == plan.bytes[k]);
            /* one byte less is refused with a message */
            odl_arena_init(&a, buf, plan.total - 1);
            CHECK(odl_qmodel_init(&q, &desc, boundary, mb, &a, &d) == ODL_ERR_NOMEM);
            CHECK(strstr(d.msg, "needs") != NULL);
            free(buf);
        }
    /* the head boundary of edge-cnn: int8 weights + per-channel data */
    odl_node_desc e_nodes[64];
    odl_model_desc e;
    odl_desc_init(&e, e_nodes, 64, 1, 1, 1);
    CHECK_OK(odl_desc_edge_cnn(&e, 1, 28, 28, 10));
    odl_mem_plan plan;
    CHECK_OK(odl_qmodel_plan(&e, 9, 1, &plan, &d));
    size_t expect = 0, C[3] = {8, 16, 64}, W[3] = {72, 1152, 50176};
    for (int k = 0; k < 3; k++)
        expect += ((W[k] + 15) & ~(size_t)15) + 4 * ((4 * C[k] + 15) & ~(size_t)15);
    CHECK(plan.bytes[ODL_MEM_PARAMS] == expect);
    /* errors */
    CHECK(odl_qmodel_plan(&e, 0, 1, &plan, &d) == ODL_ERR_ARG);
    CHECK(odl_qmodel_plan(&e, 11, 1, &plan, &d) == ODL_ERR_ARG);
    CHECK(odl_qmodel_plan(&e, 9, 0, &plan, &d) == ODL_ERR_ARG);
    odl_node_desc wide_nodes[64];
    odl_model_desc wide;
    odl_desc_init(&wide, wide_nodes, 64, 1, 1, 1);
    odl_desc_init(&wide, wide.layers, wide.cap_layers, 1, 200, 200);
    odl_desc_flatten(&wide);
    odl_desc_dense(&wide, 2);
    CHECK(odl_qmodel_plan(&wide, 2, 1, &plan, &d) == ODL_ERR_UNSUPPORTED);
    CHECK(strstr(d.msg, "40000") != NULL);
}

static void test_model_matches_fp32(odl_test_ctx *t)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    small_desc(&desc);
    const int32_t boundary = 11, N = 64;
    built b;
    CHECK_OK(build_fp32(&b, &desc, N, 7));
    const size_t in = 2 * 12 * 12;
    float *x = malloc(sizeof(float) * in * N);
    fill_f(x, in * N, 1, 0.0f, 1.0f);
    qbuilt qb;
    CHECK_OK(build_q(&qb, &desc, boundary, 5)); /* forward splits 64 into batches of 5 */
    odl_diag d;
    float z0[64 * 6];
    CHECK(odl_qmodel_forward(qb.q, x, N, z0, &d) == ODL_ERR_STATE); /* not quantised yet */
    CHECK_OK(calibrate(&qb, b.m, x, N, boundary));
    CHECK(odl_qmodel_latent_size(qb.q) == 6);
    CHECK(odl_qmodel_boundary(qb.q) == boundary);
    float zq[64 * 6], zf[64 * 6];
    CHECK_OK(odl_qmodel_forward(qb.q, x, N, zq, &d));
    CHECK_OK(odl_model_forward_range(b.m, 0, boundary, x, N, zf, &d));
    double maxerr = 0, range = 0;
    for (int k = 0; k < N * 6; k++) {
        maxerr = fmax(maxerr, fabs((double)zq[k] - zf[k]));
        range = fmax(range, fabs((double)zf[k]));
    }
    odl_test_logf(t, "    small model: max |int8 - fp32| = %.4f of a range %.4f", maxerr, range);
    CHECK(range > 0.0);
    CHECK(maxerr <= 0.06 * range);
    /* batch-independent: one sample at a time gives the same bytes */
    for (int k = 0; k < N; k += 13) {
        float z1[6];
        CHECK_OK(odl_qmodel_forward(qb.q, x + (size_t)k * in, 1, z1, &d));
        CHECK(memcmp(z1, zq + (size_t)k * 6, sizeof z1) == 0);
    }
    /* int8 latents: dequantised they are the float ones */
    int8_t y8[64 * 6];
    odl_qparams p;
    CHECK_OK(odl_qmodel_forward_s8(qb.q, x, N, y8, &p, &d));
    for (int k = 0; k < N * 6; k++)
        CHECK(odl_q_dequantize(y8[k], p) == zq[k]);
    CHECK(p.zero_point == -128); /* after a fused ReLU the range starts at 0 */
    /* the INT8 latents feed the FP32 head */
    const float *logits;
    CHECK_OK(odl_model_forward(b.m, boundary, zq, N, &logits, &d));
    /* non-finite calibration data is refused */
    odl_qcalib c;
    float ranges[2 * 64];
    CHECK_OK(odl_qcalib_begin(&c, &desc, boundary, ranges, &d));
    x[3] = NAN;
    size_t wf = odl_qcalib_work_floats(&desc, boundary, 2);
    float *work = malloc(wf * sizeof(float));
    CHECK(odl_qcalib_observe(&c, b.m, x, 2, work, wf, &d) == ODL_ERR_NUMERIC);
    CHECK(odl_qcalib_observe(&c, b.m, x + in, 2, work, wf - 1, &d) == ODL_ERR_NOMEM);
    CHECK(odl_qmodel_quantize(qb.q, b.m, &c, &d) == ODL_ERR_STATE); /* nothing observed */
    free(work);
    free(x);
    free(qb.buf);
    free(b.buf);
}

/* ---- files ------------------------------------------------------------------ */

typedef struct qfile {
    membuf fp32, q8;
    built b;
    qbuilt qb;
    int32_t boundary;
} qfile;

static odl_status make_qfile(qfile *f)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    small_desc(&desc);
    memset(f, 0, sizeof *f);
    f->boundary = 11;
    odl_status s = build_fp32(&f->b, &desc, 16, 3);
    if (s == ODL_OK)
        s = build_q(&f->qb, &desc, f->boundary, 4);
    float x[16 * 288];
    fill_f(x, 16 * 288, 2, 0.0f, 1.0f);
    if (s == ODL_OK)
        s = calibrate(&f->qb, f->b.m, x, 16, f->boundary);
    odl_meta_kv meta[1] = {{"arch", "small"}};
    odl_writer w = mb_writer(&f->fp32);
    if (s == ODL_OK)
        s = odl_model_save(f->b.m, meta, 1, &w, NULL);
    w = mb_writer(&f->q8);
    if (s == ODL_OK)
        s = odl_qmodel_save(f->qb.q, f->b.m, meta, 1, &w, NULL);
    return s;
}

static void free_qfile(qfile *f)
{
    free(f->fp32.p);
    free(f->q8.p);
    free(f->b.buf);
    free(f->qb.buf);
}

/* Loads a quantised file into a fresh INT8 model (the device's path). */
static odl_status load_q(const uint8_t *buf, size_t len, qbuilt *out, odl_diag *d)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    int32_t boundary;
    memset(out, 0, sizeof *out);
    odl_status s = odl_qfile_read_desc(buf, len, &desc, &boundary, d);
    if (s != ODL_OK)
        return s;
    s = build_q(out, &desc, boundary, 3);
    if (s != ODL_OK)
        return s;
    return odl_qmodel_load(out->q, buf, len, d);
}

/* The conv scratch does not grow with the image: two unfolded pixels */
static void test_conv_scratch_small(odl_test_ctx *t)
{
    odl_window_dims a = odl_window_dims_simple(1, 8, 14, 14, 16, 14, 14, 3, 3, 1, 1, 1, 1);
    odl_window_dims b = odl_window_dims_simple(4, 8, 96, 96, 16, 96, 96, 3, 3, 1, 1, 1, 1);
    CHECK(odl_qconv2d_scratch_bytes(&a) == 288);
    CHECK(odl_qconv2d_scratch_bytes(&b) == 288);
    /* grouped: one group's channels at a time */
    odl_window_dims g = a;
    g.groups = 2;
    CHECK(odl_qconv2d_scratch_bytes(&g) == 144);
}

/* The parameters used in place from the file: no parameter bytes in the
 * plan, the same output bytes as a copying load, and the copy-only calls
 * refused (and the other way round), as is a misaligned file. */
static void test_in_place(odl_test_ctx *t)
{
    qfile f;
    CHECK_OK(make_qfile(&f));
    odl_diag d;
    uint8_t *buf = aligned_dup(f.q8.p, f.q8.len);
    odl_node_desc nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, nodes, 64, 1, 1, 1);
    int32_t boundary;
    CHECK_OK(odl_qfile_read_desc(buf, f.q8.len, &desc, &boundary, &d));
    odl_mem_plan copy_plan, plan;
    CHECK_OK(odl_qmodel_plan(&desc, boundary, 3, &copy_plan, &d));
    CHECK_OK(odl_qmodel_plan_in_place(&desc, boundary, 3, &plan, &d));
    CHECK(plan.bytes[ODL_MEM_PARAMS] == 0 && copy_plan.bytes[ODL_MEM_PARAMS] > 0);
    CHECK(plan.total + copy_plan.bytes[ODL_MEM_PARAMS] == copy_plan.total);
    void *mem = malloc(plan.total);
    odl_arena a;
    odl_arena_init(&a, mem, plan.total);
    odl_qmodel *q;
    CHECK_OK(odl_qmodel_init_in_place(&q, &desc, boundary, 3, &a, &d));
    CHECK(a.used == plan.total);
    CHECK(odl_qmodel_load(q, buf, f.q8.len, &d) == ODL_ERR_STATE);
    CHECK(odl_qmodel_load_in_place(q, buf + 1, f.q8.len, &d) == ODL_ERR_ARG);
    CHECK(strstr(d.msg, "aligned") != NULL);
    CHECK_OK(odl_qmodel_load_in_place(q, buf, f.q8.len, &d));
    qbuilt q2;
    CHECK_OK(load_q(buf, f.q8.len, &q2, &d));
    CHECK(odl_qmodel_load_in_place(q2.q, buf, f.q8.len, &d) == ODL_ERR_STATE);
    float x[7 * 288], z1[7 * 6], z2[7 * 6];
    fill_f(x, 7 * 288, 78, -0.2f, 1.2f);
    CHECK_OK(odl_qmodel_forward(q2.q, x, 7, z1, &d));
    CHECK_OK(odl_qmodel_forward(q, x, 7, z2, &d));
    CHECK(memcmp(z1, z2, sizeof z1) == 0);
    /* quantising would write into the file */
    odl_qcalib c;
    float ranges[2 * 64];
    CHECK_OK(odl_qcalib_begin(&c, &desc, boundary, ranges, &d));
    c.samples = 1;
    CHECK(odl_qmodel_quantize(q, f.b.m, &c, &d) == ODL_ERR_STATE);
    free(q2.buf);
    free(mem);
    free(buf);
    free_qfile(&f);
}

static void test_file_round_trip(odl_test_ctx *t)
{
    qfile f;
    CHECK_OK(make_qfile(&f));
    odl_diag d;
    uint8_t *buf = aligned_dup(f.q8.p, f.q8.len);
    /* 1. an FP32 reader loads it as the FP32 model it contains */
    odl_node_desc fd_nodes[64];
    odl_model_desc fd;
    odl_desc_init(&fd, fd_nodes, 64, 1, 1, 1);
    CHECK_OK(odl_file_read_desc(buf, f.q8.len, &fd, &d));
    built b2;
    CHECK_OK(build_fp32(&b2, &fd, 16, 99));
    CHECK_OK(odl_model_load_params(b2.m, buf, f.q8.len, &d));
    for (int32_t i = 0; i < fd.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n1, n2;
            const float *p1 = odl_model_param_const(f.b.m, i, which, &n1);
            const float *p2 = odl_model_param_const(b2.m, i, which, &n2);
            CHECK(n1 == n2 && (!n1 || memcmp(p1, p2, n1 * sizeof(float)) == 0));
        }
    char v[16];
    CHECK_OK(odl_file_meta_get(buf, f.q8.len, "arch", v, sizeof v, &d));
    CHECK(strcmp(v, "small") == 0);
    /* 2. without its Q chunks the file is odl_model_save's, byte for byte */
    membuf stripped = {0};
    odl_file_iter it;
    CHECK_OK(odl_file_open(&it, buf, f.q8.len, &d));
    mb_write(&stripped, buf, ODL_FILE_HEADER_BYTES);
    size_t pos = ODL_FILE_HEADER_BYTES;
    int q_chunks = 0;
    for (;;) {
        uint32_t type;
        const uint8_t *p;
        size_t n;
        CHECK_OK(odl_file_next(&it, &type, &p, &n, &d));
        if (type == ODL_CHUNK_QUANT || type == ODL_CHUNK_QLAYER)
            q_chunks++;
        else
            mb_write(&stripped, buf + pos, it.pos - pos);
        pos = it.pos;
        if (type == ODL_CHUNK_END)
            break;
    }
    CHECK(q_chunks == 1 + f.boundary);
    CHECK(stripped.len == f.fp32.len && memcmp(stripped.p, f.fp32.p, f.fp32.len) == 0);
    free(stripped.p);
    /* 3. the INT8 model loaded from the file computes the same bytes */
    qbuilt q2;
    CHECK_OK(load_q(buf, f.q8.len, &q2, &d));
    float x[7 * 288], z1[7 * 6], z2[7 * 6];
    fill_f(x, 7 * 288, 77, -0.2f, 1.2f); /* beyond the calibrated range too */
    CHECK_OK(odl_qmodel_forward(f.qb.q, x, 7, z1, &d));
    CHECK_OK(odl_qmodel_forward(q2.q, x, 7, z2, &d));
    CHECK(memcmp(z1, z2, sizeof z1) == 0);
    for (int32_t i = 0; i < f.boundary; i++) {
        odl_qparams a = odl_qmodel_output_params(f.qb.q, i), b = odl_qmodel_output_params(q2.q, i);
        CHECK(a.scale == b.scale && a.zero_point == b.zero_point);
    }
    size_t i8, f32;
    odl_qmodel_param_bytes(q2.q, &i8, &f32);
    CHECK(f32 == 4 * (72 + 4 + 72 + 8 + 192 + 6));
    CHECK(i8 == 72 + 72 + 192 + 16 * (4 + 8 + 6));
    /* 4. a plain FP32 file has no INT8 layers */
    uint8_t *plain = aligned_dup(f.fp32.p, f.fp32.len);
    int32_t bnd;
    CHECK(odl_qfile_read_desc(plain, f.fp32.len, &fd, &bnd, &d) == ODL_ERR_NOT_FOUND);
    CHECK(strstr(d.msg, "odl quantize") != NULL);
    /* 5. a model built for another boundary refuses the file */
    qbuilt q3;
    CHECK_OK(build_q(&q3, &fd, 3, 1));
    CHECK(odl_qmodel_load(q3.q, buf, f.q8.len, &d) == ODL_ERR_SHAPE);
    free(q3.buf);
    free(plain);
    free(q2.buf);
    free(b2.buf);
    free(buf);
    free_qfile(&f);
}

static void test_file_sweep(odl_test_ctx *t)
{
    qfile f;
    CHECK_OK(make_qfile(&f));
    const size_t len = f.q8.len;
    uint8_t *buf = aligned_dup(f.q8.p, len);
    /* where the Q chunks start: damage there must be caught by the INT8
     * reader; damage anywhere must be caught by someone */
    odl_diag d;
    int bad = 0;
    const uint8_t masks[2] = {0xFF, 0x01};
    for (size_t k = 0; k < len && bad < 5; k++)
        for (int mi = 0; mi < 2; mi++) {
            buf[k] ^= masks[mi];
            odl_node_desc desc_nodes[64];
            odl_model_desc desc;
            odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
            int32_t b;
            odl_diag_clear(&d);
            odl_status s = odl_qfile_read_desc(buf, len, &desc, &b, &d);
            if (s == ODL_OK || d.msg[0] == '\0') {
                if (bad++ < 5)
                    odl_test_logf(t, "    byte %zu ^0x%02x: status %d, message '%s'", k, masks[mi], (int)s, d.msg);
            }
            buf[k] ^= masks[mi];
        }
    CHECK(bad == 0);
    int bad_cut = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = aligned_dup(buf, n ? n : 1);
        odl_node_desc desc_nodes[64];
        odl_model_desc desc;
        odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
        int32_t b;
        odl_status s = odl_qfile_read_desc(cut, n, &desc, &b, &d);
        if (s != ODL_ERR_TRUNCATED && bad_cut++ < 3)
            odl_test_logf(t, "    cut at %zu: status %d (%s)", n, (int)s, d.msg);
        free(cut);
    }
    CHECK(bad_cut == 0);
    /* an intact file still loads */
    qbuilt q2;
    CHECK_OK(load_q(buf, len, &q2, &d));
    free(q2.buf);
    free(buf);
    free_qfile(&f);
}

/* Rewrites the file chunk by chunk (fresh CRCs), letting `edit` change,
 * drop (return 0) or duplicate (return 2) each Q chunk. */
typedef int (*chunk_edit)(uint32_t type, uint8_t *p, size_t *n, int arg);

static membuf rewrite(const uint8_t *src, size_t len, chunk_edit edit, int arg)
{
    membuf out = {0};
    odl_writer w = mb_writer(&out);
    odl_file_iter it;
    odl_file_open(&it, src, len, NULL);
    odl_file_write_header(&w, NULL);
    static uint8_t tmp[1 << 16];
    for (;;) {
        uint32_t type;
        const uint8_t *p;
        size_t n;
        if (odl_file_next(&it, &type, &p, &n, NULL) != ODL_OK || type == ODL_CHUNK_END)
            break;
        memcpy(tmp, p, n);
        int times = 1;
        if (type == ODL_CHUNK_QUANT || type == ODL_CHUNK_QLAYER)
            times = edit(type, tmp, &n, arg);
        for (int k = 0; k < times; k++)
            odl_file_write_chunk(&w, type, tmp, n, NULL);
    }
    odl_file_write_end(&w, NULL);
    if (out.len >= ODL_FILE_HEADER_BYTES && len >= ODL_FILE_HEADER_BYTES)
        memcpy(out.p, src, ODL_FILE_HEADER_BYTES); /* the source's version (a graph topology is 1.1) */
    return out;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int qlay_layer(const uint8_t *p) { return (int)(p[0] | (p[1] << 8)); }

enum { E_NONE, E_VERSION, E_BOUNDARY0, E_BOUNDARY_BIG, E_IN_ZP, E_IN_SCALE, E_DROP_QNT, E_DUP_QNT, E_DROP_L3,
       E_DUP_L3, E_TYPE, E_FUSED, E_ZP, E_CLAMP, E_SCALE_NAN, E_CHANNELS, E_SHORT, E_LONG, E_BIAS, E_MULT,
       E_SHIFT, E_WSCALE, E_CHAIN, E_LAYER, E_RESERVED, E_N };

static int edit_case(uint32_t type, uint8_t *p, size_t *n, int e)
{
    const int qnt = type == ODL_CHUNK_QUANT;
    const int layer = qnt ? -1 : qlay_layer(p);
    switch (e) {
    case E_VERSION: if (qnt) put32(p, 3); break;
    case E_BOUNDARY0: if (qnt) put32(p + 4, 0); break;
    case E_BOUNDARY_BIG: if (qnt) put32(p + 4, 99); break;
    case E_IN_ZP: if (qnt) put32(p + 12, 200); break;
    case E_IN_SCALE: if (qnt) put32(p + 8, 0xBF800000u); break; /* −1.0 */
    case E_DROP_QNT: if (qnt) return 0; break;
    case E_DUP_QNT: if (qnt) return 2; break;
    case E_DROP_L3: if (layer == 3) return 0; break;
    case E_DUP_L3: if (layer == 3) return 2; break;
    case E_TYPE: if (layer == 3) put32(p + 4, ODL_LAYER_CONV2D); break;
    case E_FUSED: if (layer == 0) put32(p + 8, 0); break;
    case E_ZP: if (layer == 0) put32(p + 16, (uint32_t)-129); break;
    case E_CLAMP: if (layer == 0) { put32(p + 20, 5); put32(p + 24, 4); } break;
    case E_SCALE_NAN: if (layer == 9) put32(p + 12, 0x7FC00000u); break;
    case E_CHANNELS: if (layer == 0) put32(p + 28, 5); break;
    case E_SHORT: if (layer == 9) *n -= 1; break;
    case E_LONG: if (layer == 9) *n += 1; break;
    case E_BIAS: if (layer == 0) put32(p + 48, 0x7FFFFFFFu); break;
    case E_MULT: if (layer == 0) put32(p + 48 + 16, 12345); break;
    case E_SHIFT: if (layer == 0) put32(p + 48 + 32, 31); break;
    case E_WSCALE: if (layer == 0) put32(p + 48 + 48, 0); break;
    case E_CHAIN: if (layer == 2) put32(p + 16, (uint32_t)((int32_t)(p[16] | (p[17] << 8)) == 5 ? 6 : 5)); break;
    case E_LAYER: if (layer == 3) put32(p, 11); break;
    case E_RESERVED: if (layer == 3) p[44] = 1; break;
    }
    return 1;
}

static void test_file_crafted(odl_test_ctx *t)
{
    qfile f;
    CHECK_OK(make_qfile(&f));
    static const odl_status want[E_N] = {
        [E_NONE] = ODL_OK, [E_VERSION] = ODL_ERR_UNSUPPORTED, [E_BOUNDARY0] = ODL_ERR_FORMAT,
        [E_BOUNDARY_BIG] = ODL_ERR_FORMAT, [E_IN_ZP] = ODL_ERR_FORMAT, [E_IN_SCALE] = ODL_ERR_FORMAT,
        [E_DROP_QNT] = ODL_ERR_NOT_FOUND, [E_DUP_QNT] = ODL_ERR_FORMAT, [E_DROP_L3] = ODL_ERR_FORMAT,
        [E_DUP_L3] = ODL_ERR_FORMAT, [E_TYPE] = ODL_ERR_FORMAT, [E_FUSED] = ODL_ERR_FORMAT,
        [E_ZP] = ODL_ERR_FORMAT, [E_CLAMP] = ODL_ERR_FORMAT, [E_SCALE_NAN] = ODL_ERR_FORMAT,
        [E_CHANNELS] = ODL_ERR_FORMAT, [E_SHORT] = ODL_ERR_FORMAT, [E_LONG] = ODL_ERR_FORMAT,
        [E_BIAS] = ODL_ERR_FORMAT, [E_MULT] = ODL_ERR_FORMAT, [E_SHIFT] = ODL_ERR_FORMAT,
        [E_WSCALE] = ODL_ERR_FORMAT, [E_CHAIN] = ODL_ERR_FORMAT, [E_LAYER] = ODL_ERR_FORMAT,
        [E_RESERVED] = ODL_ERR_FORMAT};
    for (int e = 0; e < E_N; e++) {
        membuf m = rewrite(f.q8.p, f.q8.len, edit_case, e);
        uint8_t *buf = aligned_dup(m.p, m.len);
        odl_diag d;
        odl_diag_clear(&d);
        qbuilt q2;
        odl_status s = load_q(buf, m.len, &q2, &d);
        if (s != want[e]) {
            odl_test_logf(t, "    case %d: status %d, expected %d (%s)", e, (int)s, (int)want[e], d.msg);
            CHECK(0);
        } else if (s != ODL_OK) {
            CHECK(d.msg[0] != '\0');
        }
        /* the FP32 model in the same file is still readable */
        odl_node_desc fd_nodes[64];
        odl_model_desc fd;
        odl_desc_init(&fd, fd_nodes, 64, 1, 1, 1);
        CHECK(odl_file_read_desc(buf, m.len, &fd, &d) == ODL_OK);
        free(q2.buf);
        free(buf);
        free(m.p);
    }
    free_qfile(&f);
}

/* Graph prefixes plan; the boundary must be a cut point; an operator INT8
 * does not run (the adapter) is refused by name. */
static void test_graph_prefix(odl_test_ctx *t)
{
    odl_node_desc nodes[12];
    odl_model_desc g;
    REQUIRE(odl_desc_init(&g, nodes, 12, 1, 6, 6) == ODL_OK);
    CHECK_OK(odl_desc_conv2d(&g, 4, 3, 1, 1));  /* node 0 -> t1 */
    CHECK_OK(odl_desc_relu(&g));                /* node 1 -> t2 */
    CHECK_OK(odl_desc_conv2d(&g, 4, 3, 1, 1));  /* node 2 -> t3 */
    odl_node_desc n = odl_node_defaults(&g, ODL_LAYER_ADD);
    n.n_in = 2;
    n.in[0] = 3;
    n.in[1] = 2;
    CHECK_OK(odl_desc_add_node(&g, &n, NULL)); /* node 3 -> t4 = t3 + t2 */
    CHECK_OK(odl_desc_gap(&g));
    CHECK_OK(odl_desc_flatten(&g));
    CHECK_OK(odl_desc_dense(&g, 3));
    odl_mem_plan p;
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(odl_qmodel_plan(&g, 6, 1, &p, &d));
    CHECK_OK(odl_qmodel_plan(&g, 7, 1, &p, &d));
    odl_diag_clear(&d);
    CHECK(odl_qmodel_plan(&g, 3, 1, &p, &d) == ODL_ERR_ARG); /* tensor 3: the add still reads t2 */
    CHECK(strstr(d.msg, "cut point") != NULL);
    CHECK_OK(odl_qmodel_plan(&g, 2, 1, &p, &d));
    /* groups, dilation, asymmetric padding, ceil mode: all run now */
    for (int k = 0; k < 4; k++) {
        odl_node_desc saved = g.layers[2];
        switch (k) {
        case 0: g.layers[2].groups = 2; break;
        case 1: g.layers[2].dil_h = 2; g.layers[2].pad_t = g.layers[2].pad_b = 2; break;
        case 2: g.layers[2].pad_b = 0; g.layers[2].pad_r = 2; break;
        default: g.layers[4] = odl_node_defaults(&g, ODL_LAYER_AVGPOOL); break;
        }
        odl_model_desc seq = g;     /* a view: a prefix ending at node 2 */
        seq.n_layers = 3;
        odl_diag_clear(&d);
        CHECK_OK(odl_qmodel_plan(&seq, 3, 1, &p, &d));
        g.layers[2] = saved;
    }
    odl_node_desc a_nodes[4];
    odl_model_desc ad;
    REQUIRE(odl_desc_init(&ad, a_nodes, 4, 1, 4, 4) == ODL_OK);
    CHECK_OK(odl_desc_flatten(&ad));
    CHECK_OK(odl_desc_adapter(&ad, 2));
    CHECK_OK(odl_desc_dense(&ad, 3));
    odl_diag_clear(&d);
    CHECK(odl_qmodel_plan(&ad, 2, 1, &p, &d) == ODL_ERR_UNSUPPORTED);
    CHECK(strstr(d.msg, "node 1 (adapter)") != NULL);
}

/* ---- graph operators ------------------------------------------------------ */

/* A window with everything INT8 now runs: groups, dilation, asymmetric
 * padding, ceil mode, count_include_pad. */
static odl_window_dims random_window_ex(odl_rng *r, int kind) /* 0 conv, 1 depthwise, 2 pool */
{
    odl_window_dims d;
    memset(&d, 0, sizeof d);
    for (;;) {
        d.batch = rnd_int(r, 1, 2);
        d.groups = kind == 0 ? rnd_int(r, 1, 3) : 1;
        d.in_c = d.groups * rnd_int(r, 1, 3);
        d.in_h = rnd_int(r, 1, 9);
        d.in_w = rnd_int(r, 1, 9);
        d.k_h = rnd_int(r, 1, 4);
        d.k_w = rnd_int(r, 1, 4);
        d.stride_h = rnd_int(r, 1, 3);
        d.stride_w = rnd_int(r, 1, 3);
        d.dil_h = kind == 2 ? 1 : rnd_int(r, 1, 2);
        d.dil_w = kind == 2 ? 1 : rnd_int(r, 1, 2);
        d.pad_h = rnd_int(r, 0, d.k_h - 1);
        d.pad_w = rnd_int(r, 0, d.k_w - 1);
        d.pad_b = rnd_int(r, 0, d.k_h - 1);
        d.pad_r = rnd_int(r, 0, d.k_w - 1);
        const int ceil = kind == 2 && rnd_int(r, 0, 1);
        d.flags = (ceil ? ODL_NODE_CEIL_MODE : 0u) | (kind == 2 && rnd_int(r, 0, 1) ? ODL_NODE_COUNT_PAD : 0u);
        d.out_h = odl_window_out_size_ex(d.in_h, d.k_h, d.stride_h, d.pad_h, d.pad_b, d.dil_h, ceil);
        d.out_w = odl_window_out_size_ex(d.in_w, d.k_w, d.stride_w, d.pad_w, d.pad_r, d.dil_w, ceil);
        if (d.out_h > 0 && d.out_w > 0)
            break;
    }
    d.out_c = kind == 0 ? d.groups * rnd_int(r, 1, 3) : kind == 1 ? d.in_c * rnd_int(r, 1, 2) : d.in_c;
    return d;
}

/* The int8 result of an exact accumulator through the real multiplier: what
 * the integer path must match within 1. */
static int32_t ideal(double acc, double M, int32_t zp, int32_t lo, int32_t hi)
{
    double v = round(acc * M) + zp;
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

static double real_mult(int32_t mult, int32_t shift)
{
    return (double)mult * ldexp(1.0, shift - 31);
}

static void test_graph_kernels(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 77, 5);
    static int8_t x[8192], w[8192], y0[16384], y1[16384];
    static float xf[8192], wf[8192], bf[64], yf[16384], sc[1 << 16];
    static uint8_t scratch[1 << 17];
    rq_store rs;
    for (int it = 0; it < 300; it++) {
        const int kind = it % 3;
        odl_window_dims d = random_window_ex(&r, kind);
        const size_t nx = (size_t)d.batch * d.in_c * d.in_h * d.in_w;
        const size_t ny = (size_t)d.batch * d.out_c * d.out_h * d.out_w;
        REQUIRE(nx <= sizeof x && ny <= sizeof y0);
        fill_s8(&r, x, nx);
        if (kind < 2) {
            const size_t nw = kind == 0 ? (size_t)d.out_c * (d.in_c / d.groups) * d.k_h * d.k_w
                                        : (size_t)d.out_c * d.k_h * d.k_w;
            fill_s8(&r, w, nw);
            random_requant(&r, &rs, d.out_c, (int32_t)(nw / (size_t)d.out_c));
            rs.r.act_min = -128;
            rs.r.act_max = 127;
            if (kind == 0) {
                odl_qconv2d_s8_ref(&d, x, w, &rs.r, y0);
                const size_t sb = odl_qconv2d_scratch_bytes(&d);
                REQUIRE(sb + 64 <= sizeof scratch);
                memset(scratch, 0x5a, sb + 64);
                odl_qconv2d_s8(&d, x, w, &rs.r, y1, scratch);
                /* the kernel stays within the scratch it reports */
                int spill = 0;
                for (size_t k = sb; k < sb + 64; k++)
                    spill |= scratch[k] != 0x5a;
                CHECK(!spill);
            } else {
                odl_qdepthwise_s8_ref(&d, x, w, &rs.r, y0);
                odl_qdepthwise_s8(&d, x, w, &rs.r, y1);
            }
            CHECK(same_bytes(y0, y1, ny, t, kind == 0 ? "conv groups/dilation" : "depthwise dilation"));
            /* the FP32 operator on the integers (x − zp, w, bias) gives the
             * exact accumulator: the int8 output is it through M, within 1 */
            for (size_t k = 0; k < nx; k++)
                xf[k] = (float)((int32_t)x[k] - rs.r.in_zp);
            for (size_t k = 0; k < nw; k++)
                wf[k] = (float)w[k];
            for (int32_t c = 0; c < d.out_c; c++)
                bf[c] = rs.r.bias ? (float)rs.r.bias[c] : 0.0f;
            if (kind == 0) {
                REQUIRE(odl_conv2d_scratch_floats(&d) <= sizeof sc / sizeof sc[0]);
                odl_conv2d_forward_f32(&d, xf, wf, bf, yf, sc);
            } else {
                odl_depthwise_forward_f32(&d, xf, wf, bf, yf);
            }
            const size_t P = (size_t)d.out_h * d.out_w;
            int worst = 0;
            for (size_t k = 0; k < ny; k++) {
                const int32_t c = (int32_t)((k / P) % (size_t)d.out_c);
                const int32_t e = ideal(yf[k], real_mult(rs.mult[c], rs.shift[c]), rs.r.out_zp, -128, 127);
                const int diff = abs(e - y0[k]);
                worst = diff > worst ? diff : worst;
            }
            if (worst > 1)
                odl_test_logf(t, "    %s vs FP32: off by %d", kind == 0 ? "conv" : "depthwise", worst);
            CHECK(worst <= 1);
        } else {
            odl_qavgpool_s8_ref(&d, x, y0);
            odl_qavgpool_s8(&d, x, y1);
            CHECK(same_bytes(y0, y1, ny, t, "avgpool ceil/count_pad"));
            for (size_t k = 0; k < nx; k++)
                xf[k] = (float)x[k];
            odl_avgpool_forward_f32(&d, xf, yf);
            for (size_t k = 0; k < ny; k++)
                CHECK(fabsf(yf[k] - (float)y0[k]) <= 0.5f + 1e-4f);
            odl_qmaxpool_s8_ref(&d, x, y0);
            odl_qmaxpool_s8(&d, x, y1);
            CHECK(same_bytes(y0, y1, ny, t, "maxpool ceil"));
            odl_maxpool_forward_f32(&d, xf, yf);
            for (size_t k = 0; k < ny; k++)
                CHECK(yf[k] == (float)y0[k]);
        }
    }
}

static odl_qparams random_q(odl_rng *r)
{
    odl_qparams p = {(float)(0.002 + 0.1 * odl_rng_uniform(r)), rnd_int(r, -100, 100)};
    return p;
}

/* Add, mul, concat, mean, relu requantisation against a direct computation
 * in double; fast forms against the plain loops. */
static void test_requant_ops(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 31, 2);
    static int8_t a[4096], b[4096], y0[8192], y1[8192];
    int worst_add = 0, worst_mul = 0, worst_cat = 0, worst_mean = 0, worst_relu = 0;
    for (int it = 0; it < 200; it++) {
        const int32_t n = rnd_int(&r, 1, 2), c = rnd_int(&r, 1, 6), hw = rnd_int(&r, 1, 30);
        const int bc = rnd_int(&r, 0, 2); /* 0 full, 1 c x 1 x 1, 2 1 x 1 x 1 */
        const int32_t b_c = bc == 2 ? 1 : c, b_hw = bc ? 1 : hw;
        const size_t na = (size_t)n * c * hw, nb = (size_t)n * b_c * b_hw;
        fill_s8(&r, a, na);
        fill_s8(&r, b, nb);
        const odl_qparams qa = random_q(&r), qb = random_q(&r), qo = random_q(&r);
        for (int op = 0; op < 2; op++) {
            odl_qbinary p;
            memset(&p, 0, sizeof p);
            p.a_zp = qa.zero_point, p.b_zp = qb.zero_point, p.out_zp = qo.zero_point;
            p.act_min = -128, p.act_max = 127;
            if (op == 0) {
                const double twice = 2.0 * fmax(qa.scale, qb.scale);
                odl_q_quantize_multiplier(qa.scale / twice, &p.a_mult, &p.a_shift);
                odl_q_quantize_multiplier(qb.scale / twice, &p.b_mult, &p.b_shift);
                odl_q_quantize_multiplier(twice / ((1 << 20) * (double)qo.scale), &p.out_mult, &p.out_shift);
                p.left_shift = 20;
                odl_qadd_s8_ref(&p, n, c, hw, a, b, b_c, b_hw, y0);
                odl_qadd_s8(&p, n, c, hw, a, b, b_c, b_hw, y1);
            } else {
                odl_q_quantize_multiplier((double)qa.scale * qb.scale / qo.scale, &p.out_mult, &p.out_shift);
                odl_qmul_s8_ref(&p, n, c, hw, a, b, b_c, b_hw, y0);
                odl_qmul_s8(&p, n, c, hw, a, b, b_c, b_hw, y1);
            }
            CHECK(same_bytes(y0, y1, na, t, op ? "mul" : "add"));
            for (int32_t i = 0; i < n; i++)
                for (int32_t k = 0; k < c; k++)
                    for (int32_t j = 0; j < hw; j++) {
                        const size_t at = ((size_t)i * c + k) * hw + j;
                        const size_t bt = ((size_t)i * b_c + (b_c == 1 ? 0 : k)) * b_hw + (b_hw == 1 ? 0 : j);
                        const double ra = qa.scale * ((int32_t)a[at] - qa.zero_point);
                        const double rb = qb.scale * ((int32_t)b[bt] - qb.zero_point);
                        const int32_t e = ideal(op ? ra * rb : ra + rb, 1.0 / qo.scale, qo.zero_point, -128, 127);
                        const int diff = abs(e - y0[at]);
                        if (op)
                            worst_mul = diff > worst_mul ? diff : worst_mul;
                        else
                            worst_add = diff > worst_add ? diff : worst_add;
                    }
        }
        /* concat of a (c channels) and b (b_c channels) at hw = b_hw */
        {
            const int32_t cs[2] = {c, b_c};
            const int8_t *xs[2] = {a, b};
            odl_qconcat_in rq[2] = {{qa.zero_point, 0, 0}, {qb.zero_point, 0, 0}};
            odl_q_quantize_multiplier(qa.scale / qo.scale, &rq[0].mult, &rq[0].shift);
            odl_q_quantize_multiplier(qb.scale / qo.scale, &rq[1].mult, &rq[1].shift);
            const int same = rnd_int(&r, 0, 1); /* input 1 shares the output's parameters: copied */
            if (same)
                rq[1].mult = 0;
            const int32_t chw = b_hw; /* both planes b_hw: use a's first b_hw values per channel */
            static int8_t a2[4096];
            for (int32_t i = 0; i < n; i++)
                for (int32_t k = 0; k < c; k++)
                    for (int32_t j = 0; j < chw; j++)
                        a2[((size_t)i * c + k) * chw + j] = a[((size_t)i * c + k) * hw + j];
            xs[0] = a2;
            odl_qconcat_s8_ref(n, 2, xs, cs, rq, chw, qo.zero_point, y0);
            odl_qconcat_s8(n, 2, xs, cs, rq, chw, qo.zero_point, y1);
            const size_t ny = (size_t)n * (c + b_c) * chw;
            CHECK(same_bytes(y0, y1, ny, t, "concat"));
            for (int32_t i = 0; i < n; i++)
                for (int32_t k = 0; k < c + b_c; k++)
                    for (int32_t j = 0; j < chw; j++) {
                        const int from_a = k < c;
                        const int8_t v = from_a ? a2[((size_t)i * c + k) * chw + j] : b[((size_t)i * b_c + k - c) * chw + j];
                        const int8_t got = y0[((size_t)i * (c + b_c) + k) * chw + j];
                        if (!from_a && same) {
                            CHECK(got == v);
                            continue;
                        }
                        const odl_qparams qi = from_a ? qa : qb;
                        const int32_t e = ideal(qi.scale * ((int32_t)v - qi.zero_point), 1.0 / qo.scale,
                                                qo.zero_point, -128, 127);
                        worst_cat = abs(e - got) > worst_cat ? abs(e - got) : worst_cat;
                    }
        }
        /* mean over hw into other parameters */
        {
            int32_t m, s;
            odl_q_quantize_multiplier(qa.scale / ((double)hw * qo.scale), &m, &s);
            odl_qmean_s8(n, c, hw, a, qa.zero_point, qo.zero_point, m, s, y0);
            for (size_t pl = 0; pl < (size_t)n * c; pl++) {
                double sum = 0;
                for (int32_t j = 0; j < hw; j++)
                    sum += qa.scale * ((int32_t)a[pl * hw + j] - qa.zero_point);
                const int32_t e = ideal(sum / hw, 1.0 / qo.scale, qo.zero_point, -128, 127);
                worst_mean = abs(e - y0[pl]) > worst_mean ? abs(e - y0[pl]) : worst_mean;
            }
        }
        /* relu / relu6 into other parameters */
        {
            int32_t m, s;
            odl_q_quantize_multiplier((double)qa.scale / qo.scale, &m, &s);
            const int six = rnd_int(&r, 0, 1);
            const int32_t hi = six ? odl_q_quantize(6.0f, qo) : 127;
            odl_qrelu_requant_s8(na, a, qa.zero_point, qo.zero_point, m, s, qo.zero_point, hi, y0);
            for (size_t k = 0; k < na; k++) {
                double v = qa.scale * ((int32_t)a[k] - qa.zero_point);
                v = v > 0 ? v : 0;
                if (six && v > 6)
                    v = 6;
                const int32_t e = ideal(v, 1.0 / qo.scale, qo.zero_point, qo.zero_point, hi);
                worst_relu = abs(e - y0[k]) > worst_relu ? abs(e - y0[k]) : worst_relu;
            }
        }
    }
    odl_test_logf(t, "    worst |int8 - direct|: add %d, mul %d, concat %d, mean %d, relu %d", worst_add, worst_mul,
                  worst_cat, worst_mean, worst_relu);
    CHECK(worst_add <= 1 && worst_mul <= 1 && worst_cat <= 1 && worst_mean <= 1 && worst_relu <= 1);
    /* pad: the fill around, the input inside */
    odl_window_dims d = odl_window_dims_simple(1, 1, 2, 3, 1, 5, 4, 1, 1, 1, 1, 2, 1);
    const int8_t px[6] = {1, 2, 3, 4, 5, 6};
    int8_t py[20];
    odl_qpad_s8(&d, -7, px, py);
    static const int8_t want[20] = {-7, -7, -7, -7, -7, -7, -7, -7, -7, 1, 2, 3, -7, 4, 5, 6, -7, -7, -7, -7};
    CHECK(memcmp(py, want, sizeof want) == 0);
}

/* Every tabulated activation: exact w.r.t. the FP32 function of the
 * dequantised input, requantised. */
static void test_lut(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 5, 9);
    static const int32_t types[8] = {ODL_LAYER_RELU,        ODL_LAYER_RELU6,      ODL_LAYER_CLIP,
                                     ODL_LAYER_LEAKY_RELU,  ODL_LAYER_SIGMOID,    ODL_LAYER_HARD_SIGMOID,
                                     ODL_LAYER_HARD_SWISH, ODL_LAYER_TANH};
    for (int it = 0; it < 64; it++) {
        const int32_t type = types[it % 8];
        const float alpha = type == ODL_LAYER_CLIP ? -1.0f : type == ODL_LAYER_HARD_SIGMOID ? 0.2f : 0.1f;
        const float beta = type == ODL_LAYER_CLIP ? 2.0f : 0.5f;
        const odl_qparams in = random_q(&r), out = random_q(&r);
        int8_t lut[256], x[256], y[256];
        odl_diag d;
        CHECK_OK(odl_q_make_lut(type, alpha, beta, in, out, lut, &d));
        for (int v = 0; v < 256; v++)
            x[v] = (int8_t)(v - 128);
        odl_qlut_s8(256, x, lut, y);
        for (int v = 0; v < 256; v++) {
            const float xf = odl_q_dequantize(x[v], in);
            float yf;
            if (type == ODL_LAYER_RELU)
                yf = xf > 0 ? xf : 0;
            else if (type == ODL_LAYER_RELU6)
                yf = xf > 0 ? (xf < 6 ? xf : 6) : 0;
            else
                odl_act_forward_f32_ref(type, alpha, beta, 1, &xf, &yf);
            if (type == ODL_LAYER_HARD_SWISH) /* TFLite's fixed point (test_tflite_int8.c): within a step */
                CHECK(abs(y[v] - odl_q_quantize(yf, out)) <= 1);
            else
                CHECK(y[v] == odl_q_quantize(yf, out));
        }
    }
    int8_t lut[256];
    odl_diag d;
    const odl_qparams p = {0.1f, 0};
    CHECK(odl_q_make_lut(ODL_LAYER_ADD, 0, 0, p, p, lut, &d) == ODL_ERR_ARG);
}

/* A graph with every INT8 operator: residual add, squeeze-and-excitation
 * (gap, 1x1 convs, sigmoid, broadcast mul), concat, batch norm, grouped and
 * dilated convs with asymmetric padding, pools with ceil mode and
 * count_include_pad, pad, and the tabulated activations. */
static odl_status graph_desc(odl_model_desc *g, odl_node_desc *nodes, int32_t cap)
{
    odl_status s = odl_desc_init(g, nodes, cap, 3, 12, 12);
    odl_node_desc n;
#define ADD(node) do { n = (node); if ((s = odl_desc_add_node(g, &n, NULL)) != ODL_OK) return s; } while (0)
    if ((s = odl_desc_conv2d(g, 8, 3, 1, 1)) != ODL_OK) return s;     /* 0 -> t1 8x12x12 */
    if ((s = odl_desc_relu(g)) != ODL_OK) return s;                   /* 1 -> t2 (fused) */
    n = odl_node_defaults(g, ODL_LAYER_DEPTHWISE);                    /* 2 -> t3 dilated, asym pads */
    n.units = 1, n.k_h = n.k_w = 3, n.dil_h = n.dil_w = 2, n.pad_t = 1, n.pad_b = 3, n.pad_l = 3, n.pad_r = 1;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_BATCHNORM);                    /* 3 -> t4 */
    ADD(n);
    if ((s = odl_desc_relu6(g)) != ODL_OK) return s;                  /* 4 -> t5 (fused into bn) */
    n = odl_node_defaults(g, ODL_LAYER_CONV2D);                       /* 5 -> t6 grouped 1x1 */
    n.units = 8, n.groups = 2, n.k_h = n.k_w = 1;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_ADD);                          /* 6 -> t7 = t6 + t2 */
    n.n_in = 2, n.in[0] = 6, n.in[1] = 2;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_HARD_SWISH);                   /* 7 -> t8 */
    ADD(n);
    if ((s = odl_desc_gap(g)) != ODL_OK) return s;                    /* 8 -> t9 8x1x1 */
    if ((s = odl_desc_conv2d(g, 4, 1, 1, 0)) != ODL_OK) return s;     /* 9 -> t10 */
    if ((s = odl_desc_relu(g)) != ODL_OK) return s;                   /* 10 -> t11 (fused) */
    if ((s = odl_desc_conv2d(g, 8, 1, 1, 0)) != ODL_OK) return s;     /* 11 -> t12 */
    n = odl_node_defaults(g, ODL_LAYER_HARD_SIGMOID);                 /* 12 -> t13 */
    n.alpha = 1.0f / 6.0f, n.beta = 0.5f;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_MUL);                          /* 13 -> t14 = t8 * t13 (SE) */
    n.n_in = 2, n.in[0] = 8, n.in[1] = 13;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_MAXPOOL);                      /* 14 -> t15 8x6x6 */
    n.k_h = n.k_w = 2, n.stride_h = n.stride_w = 2;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_AVGPOOL);                      /* 15 -> t16 from t14: 8x6x6 ceil, count pad */
    n.in[0] = 14, n.k_h = n.k_w = 3, n.stride_h = n.stride_w = 2, n.pad_t = n.pad_l = 1, n.pad_b = n.pad_r = 0;
    n.flags = ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_SIGMOID);                      /* 16 -> t17 */
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_CONCAT);                       /* 17 -> t18 16x6x6 */
    n.n_in = 2, n.in[0] = 15, n.in[1] = 17;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_PAD);                          /* 18 -> t19 16x7x8 */
    n.pad_t = 1, n.pad_l = 2;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_CONV2D);                       /* 19 -> t20 */
    n.units = 6, n.k_h = n.k_w = 3, n.stride_h = n.stride_w = 2;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_LEAKY_RELU);                   /* 20 -> t21 */
    n.alpha = 0.1f;
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_TANH);                         /* 21 -> t22 */
    ADD(n);
    n = odl_node_defaults(g, ODL_LAYER_CLIP);                         /* 22 -> t23 */
    n.alpha = -0.5f, n.beta = 0.75f;
    ADD(n);
    if ((s = odl_desc_flatten(g)) != ODL_OK) return s;                /* 23 -> t24 */
    if ((s = odl_desc_dense(g, 5)) != ODL_OK) return s;               /* 24 -> t25 */
#undef ADD
    return ODL_OK;
}

/* Random batch-norm parameters (init gives the identity). */
static void randomise_bn(odl_model *m, uint64_t seed)
{
    const odl_model_desc *d = odl_model_get_desc(m);
    for (int32_t i = 0; i < d->n_layers; i++)
        if (d->layers[i].type == ODL_LAYER_BATCHNORM) {
            size_t nw, nb;
            float *w = odl_model_param(m, i, 0, &nw), *b = odl_model_param(m, i, 1, &nb);
            fill_f(w, nw, seed, 0.5f, 1.5f);
            fill_f(b, nb, seed + 1, -0.3f, 0.3f);
        }
}

static int same_q(odl_qparams a, odl_qparams b) { return a.scale == b.scale && a.zero_point == b.zero_point; }

static void test_graph_model(odl_test_ctx *t)
{
    odl_node_desc nodes[32];
    odl_model_desc g;
    REQUIRE(graph_desc(&g, nodes, 32) == ODL_OK);
    const int32_t L = g.n_layers, N = 48, NC = 32, D = 3 * 12 * 12;
    built b;
    REQUIRE(build_fp32(&b, &g, N, 7) == ODL_OK);
    randomise_bn(b.m, 3);
    float *x = malloc(sizeof(float) * (size_t)N * D);
    fill_f(x, (size_t)N * D, 11, -1.0f, 1.0f);
    odl_diag d;
    for (int32_t boundary = L; boundary >= L - 1; boundary--) {
        qbuilt qb;
        CHECK_OK(build_q(&qb, &g, boundary, 4));
        CHECK(qb.arena.used == qb.plan.total); /* the plan is the arena used */
        CHECK_OK(calibrate(&qb, b.m, x, NC, boundary));
        /* INT8 vs FP32 on inputs not calibrated on */
        const size_t O = odl_qmodel_latent_size(qb.q);
        float *z8 = malloc(sizeof(float) * (size_t)(N - NC) * O), *z32 = malloc(sizeof(float) * (size_t)(N - NC) * O);
        CHECK_OK(odl_qmodel_forward(qb.q, x + (size_t)NC * D, N - NC, z8, &d));
        CHECK_OK(odl_model_forward_range(b.m, 0, boundary, x + (size_t)NC * D, N - NC, z32, &d));
        float lo = INFINITY, hi = -INFINITY, worst = 0;
        int agree = 0;
        for (int32_t s = 0; s < N - NC; s++) {
            int32_t a8 = 0, a32 = 0;
            for (size_t k = 0; k < O; k++) {
                const float v = z32[(size_t)s * O + k], v8 = z8[(size_t)s * O + k];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                worst = fabsf(v - v8) > worst ? fabsf(v - v8) : worst;
                a8 = v8 > z8[(size_t)s * O + a8] ? (int32_t)k : a8;
                a32 = v > z32[(size_t)s * O + a32] ? (int32_t)k : a32;
            }
            agree += a8 == a32;
        }
        odl_test_logf(t, "    graph of %d nodes, boundary %d: max |int8 - fp32| = %.4f of a range %.4f, argmax agrees %d/%d",
                      (int)L, (int)boundary, (double)worst, (double)(hi - lo), agree, (int)(N - NC));
        CHECK(worst <= 0.08f * (hi - lo));
        /* the int8 output and its parameters give the same floats */
        int8_t *y8 = malloc((size_t)(N - NC) * O);
        odl_qparams op;
        CHECK_OK(odl_qmodel_forward_s8(qb.q, x + (size_t)NC * D, N - NC, y8, &op, &d));
        for (size_t k = 0; k < (size_t)(N - NC) * O; k++)
            CHECK(odl_q_dequantize(y8[k], op) == z8[k]);
        /* from int8 inputs: the same bytes */
        {
            int8_t *xq = malloc((size_t)(N - NC) * D), *yq = malloc((size_t)(N - NC) * O);
            const odl_qparams ip = odl_qmodel_input_params(qb.q);
            for (size_t k = 0; k < (size_t)(N - NC) * D; k++)
                xq[k] = odl_q_quantize(x[(size_t)NC * D + k], ip);
            CHECK_OK(odl_qmodel_run_s8(qb.q, xq, N - NC, yq, &d));
            CHECK(memcmp(yq, y8, (size_t)(N - NC) * O) == 0);
            CHECK(same_q(odl_qmodel_output_params(qb.q, boundary - 1), op));
            free(xq);
            free(yq);
        }
        /* a file round trip (format 2) gives the same bytes out */
        membuf f = {0};
        odl_writer w = mb_writer(&f);
        CHECK_OK(odl_qmodel_save(qb.q, b.m, NULL, 0, &w, &d));
        uint8_t *buf = aligned_dup(f.p, f.len);
        qbuilt q2;
        odl_diag_clear(&d);
        odl_status ls = load_q(buf, f.len, &q2, &d);
        if (ls != ODL_OK)
            odl_test_logf(t, "    load: %s", d.msg);
        CHECK_OK(ls);
        if (ls == ODL_OK) {
            int8_t *y2 = malloc((size_t)(N - NC) * O);
            CHECK_OK(odl_qmodel_forward_s8(q2.q, x + (size_t)NC * D, N - NC, y2, NULL, &d));
            CHECK(memcmp(y8, y2, (size_t)(N - NC) * O) == 0);
            free(y2);
        }
        /* an importer's path: the same parameters given, the same bytes out */
        qbuilt q3;
        CHECK_OK(build_q(&q3, &g, boundary, 5));
        odl_qnode_params np[32];
        for (int32_t i = 0; i < boundary; i++)
            CHECK_OK(odl_qmodel_node_params(qb.q, i, &np[i], &d));
        CHECK_OK(odl_qmodel_set_params(q3.q, odl_qmodel_input_params(qb.q), np, &d));
        int8_t *y3 = malloc((size_t)(N - NC) * O);
        CHECK_OK(odl_qmodel_forward_s8(q3.q, x + (size_t)NC * D, N - NC, y3, NULL, &d));
        CHECK(memcmp(y8, y3, (size_t)(N - NC) * O) == 0);
        /* a pool given other output parameters is refused */
        np[14].out.scale *= 2.0f;
        odl_diag_clear(&d);
        CHECK(odl_qmodel_set_params(q3.q, odl_qmodel_input_params(qb.q), np, &d) == ODL_ERR_ARG);
        CHECK(strstr(d.msg, "node 14 (maxpool)") != NULL);
        free(y3);
        free(q3.buf);
        free(q2.buf);
        free(buf);
        free(f.p);
        free(y8);
        free(z8);
        free(z32);
        free(qb.buf);
    }
    free(x);
    free(b.buf);
}

/* Format-2 chunks with hostile values: each refused with a message, none
 * crashes; random byte edits of every Q chunk never crash. */
static int edit_graph(uint32_t type, uint8_t *p, size_t *n, int e)
{
    if (type == ODL_CHUNK_QUANT) {
        if (e == 1)
            put32(p, 1); /* format 1 cannot describe a graph */
        return 1;
    }
    const int layer = qlay_layer(p);
    const uint32_t C = (uint32_t)(p[28] | (p[29] << 8));
    const size_t W = (size_t)(p[32] | (p[33] << 8) | (p[34] << 16));
    uint8_t *ex = p + 48 + 16u * C + W;
    switch (e) {
    case 2: if (layer == 6) put32(ex + 24, 21); break;               /* add: left shift beyond 20 */
    case 3: if (layer == 6) put32(ex, 12345); break;                 /* add: multiplier below 2^30 */
    case 4: if (layer == 18) put32(ex, 300); break;                  /* pad: fill outside int8 */
    case 5: if (layer == 17) put32(ex + 4, 40); break;               /* concat: shift out of range */
    case 6: if (layer == 16) { put32(p + 40, 8); *n -= 248; } break; /* sigmoid without its table */
    case 7: if (layer == 14) put32(p + 40, 4); break;                /* maxpool claiming values */
    case 8: if (layer == 14) put32(p + 12, 0x3f800000u); break;      /* maxpool with new parameters */
    case 9: if (layer == 0) put32(p + 8, ODL_LAYER_CLIP); break;     /* the wrong fused activation */
    case 10: if (layer == 1) put32(p + 12, 0x3f800000u); break;      /* fused relu with other parameters */
    case 11: if (layer == 13) put32(ex + 4, (uint32_t)-40); break;   /* mul: shift out of range */
    }
    return 1;
}

static int edit_random(uint32_t type, uint8_t *p, size_t *n, int e)
{
    odl_rng r;
    odl_rng_seed(&r, (uint64_t)e, type);
    if (odl_rng_below(&r, 3) == 0 && *n > 0) {
        const size_t at = odl_rng_below(&r, (uint32_t)(*n < 64 ? *n : 64 + (*n - 64) / 4 * 0 + 64));
        p[at < *n ? at : *n - 1] ^= (uint8_t)(1u << odl_rng_below(&r, 8));
    }
    if (odl_rng_below(&r, 8) == 0 && *n > 4)
        *n -= 1 + odl_rng_below(&r, 4);
    return 1;
}

static void test_graph_file_hostile(odl_test_ctx *t)
{
    odl_node_desc nodes[32];
    odl_model_desc g;
    REQUIRE(graph_desc(&g, nodes, 32) == ODL_OK);
    built b;
    REQUIRE(build_fp32(&b, &g, 8, 7) == ODL_OK);
    randomise_bn(b.m, 3);
    float x[8 * 3 * 12 * 12];
    fill_f(x, 8 * 3 * 12 * 12, 4, -1.0f, 1.0f);
    qbuilt qb;
    REQUIRE(build_q(&qb, &g, g.n_layers, 2) == ODL_OK);
    REQUIRE(calibrate(&qb, b.m, x, 8, g.n_layers) == ODL_OK);
    membuf f = {0};
    odl_writer w = mb_writer(&f);
    odl_diag d;
    REQUIRE(odl_qmodel_save(qb.q, b.m, NULL, 0, &w, &d) == ODL_OK);
    for (int e = 0; e <= 11; e++) {
        membuf m = rewrite(f.p, f.len, edit_graph, e);
        uint8_t *buf = aligned_dup(m.p, m.len);
        qbuilt q2;
        odl_diag_clear(&d);
        const odl_status s = load_q(buf, m.len, &q2, &d);
        if ((e == 0) != (s == ODL_OK))
            odl_test_logf(t, "    graph edit %d: status %d (%s)", e, (int)s, d.msg);
        CHECK((e == 0) == (s == ODL_OK));
        if (s != ODL_OK)
            CHECK(d.msg[0] != '\0');
        free(q2.buf);
        free(buf);
        free(m.p);
    }
    int refused = 0;
    for (int e = 0; e < 300; e++) {
        membuf m = rewrite(f.p, f.len, edit_random, e);
        uint8_t *buf = aligned_dup(m.p, m.len);
        qbuilt q2;
        const odl_status s = load_q(buf, m.len, &q2, &d);
        refused += s != ODL_OK;
        if (s == ODL_OK) { /* accepted edits still run */
            int8_t y[5];
            CHECK_OK(odl_qmodel_forward_s8(q2.q, x, 1, y, NULL, &d));
        }
        free(q2.buf);
        free(buf);
        free(m.p);
    }
    odl_test_logf(t, "    random edits of the INT8 chunks: %d of 300 refused, the rest run", refused);
    free(f.p);
    free(qb.buf);
    free(b.buf);
}

/* A conv/dense whose ReLU is fused writes the ReLU's tensor while it still
 * reads its own input: the planner must not give that tensor the input's
 * slot (here the input dies at the dense, a pool's output). */
static void test_fused_write_alias(odl_test_ctx *t)
{
    odl_node_desc nodes[8];
    odl_model_desc g;
    REQUIRE(odl_desc_init(&g, nodes, 8, 4, 4, 4) == ODL_OK);
    odl_node_desc n = odl_node_defaults(&g, ODL_LAYER_AVGPOOL); /* 0 -> t1 4x4x4, transient */
    n.k_h = n.k_w = 1;
    CHECK_OK(odl_desc_add_node(&g, &n, NULL));
    CHECK_OK(odl_desc_flatten(&g));    /* 1 -> t2, a view of t1 */
    CHECK_OK(odl_desc_dense(&g, 64));  /* 2 -> t3, fused */
    CHECK_OK(odl_desc_relu(&g));       /* 3 -> t4 */
    CHECK_OK(odl_desc_dense(&g, 5));   /* 4 -> t5 */
    built b;
    REQUIRE(build_fp32(&b, &g, 3, 5) == ODL_OK);
    float x[3 * 64], z32[3 * 5], z8[3 * 5], zr[3 * 5];
    fill_f(x, 3 * 64, 9, -1.0f, 1.0f);
    qbuilt qb;
    CHECK_OK(build_q(&qb, &g, 5, 3));
    CHECK_OK(calibrate(&qb, b.m, x, 3, 5));
    odl_diag d;
    CHECK_OK(odl_model_forward_range(b.m, 0, 5, x, 3, z32, &d));
    CHECK_OK(odl_qmodel_forward(qb.q, x, 3, z8, &d));
    /* the FP32 answer computed node by node (each call stores only its own output) */
    float h[3 * 64];
    CHECK_OK(odl_model_forward_range(b.m, 0, 2, x, 3, h, &d));
    float h2[3 * 64];
    CHECK_OK(odl_model_forward_range(b.m, 2, 4, h, 3, h2, &d));
    CHECK_OK(odl_model_forward_range(b.m, 4, 5, h2, 3, zr, &d));
    float worst32 = 0, worst8 = 0, range = 0;
    for (int k = 0; k < 15; k++) {
        worst32 = fmaxf(worst32, fabsf(z32[k] - zr[k]));
        worst8 = fmaxf(worst8, fabsf(z8[k] - zr[k]));
        range = fmaxf(range, fabsf(zr[k]));
    }
    odl_test_logf(t, "    fused dense over a dying input: FP32 off by %g, INT8 by %g (of %g)", (double)worst32,
                  (double)worst8, (double)range);
    CHECK(worst32 <= 1e-5f * (1.0f + range));
    CHECK(worst8 <= 0.1f * range);
    free(qb.buf);
    free(b.buf);
}

#ifndef ODL_PORT_TEST_TARGET_H /* the host only: a file system */
/* A format-1 file written by the previous INT8 code (sequential prefix, 11
 * nodes; tests/data/int8-v1-small.odl, made by that code with the int8 output
 * of a fixed input in its "probe" metadata): it still loads, computes the same
 * bytes, and saving it again gives the same file. */
static void test_old_file(odl_test_ctx *t)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/int8-v1-small.odl", ODL_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    if (!f) {
        odl_test_logf(t, "    note: %s not found, skipping", path);
        return;
    }
    static uint8_t raw[8192];
    const size_t len = fread(raw, 1, sizeof raw, f);
    fclose(f);
    REQUIRE(len > 0 && len < sizeof raw);
    uint8_t *buf = aligned_dup(raw, len);
    odl_diag d;
    qbuilt q;
    CHECK_OK(load_q(buf, len, &q, &d));
    float x[4 * 288];
    for (int k = 0; k < 4 * 288; k++)
        x[k] = (float)((k * 37) % 101) / 101.0f;
    int8_t y[24];
    char hex[49], probe[64];
    /* the probe was made with that code's input quantisation, in double
     * precision (odl_q_quantize is single precision now, as TFLite's, and
     * may round a tie the other way): the same int8 input, the same bytes */
    const odl_qparams ip = odl_qmodel_input_params(q.q);
    static int8_t xq[4 * 288];
    for (int k = 0; k < 4 * 288; k++) {
        const double r = round((double)x[k] / (double)ip.scale) + (double)ip.zero_point;
        xq[k] = (int8_t)(r < -128.0 ? -128 : r > 127.0 ? 127 : (int32_t)r);
    }
    CHECK_OK(odl_qmodel_run_s8(q.q, xq, 4, y, &d));
    for (int k = 0; k < 24; k++)
        snprintf(hex + 2 * k, 3, "%02x", (uint8_t)y[k]);
    CHECK_OK(odl_file_meta_get(buf, len, "probe", probe, sizeof probe, &d));
    CHECK(strcmp(hex, probe) == 0);
    /* and through the single-precision input quantisation: at most a tie
     * rounded the other way, one step at the output */
    int8_t y2[24];
    CHECK_OK(odl_qmodel_forward_s8(q.q, x, 4, y2, NULL, &d));
    int worst = 0;
    for (int k = 0; k < 24; k++)
        worst = abs((int)y2[k] - (int)y[k]) > worst ? abs((int)y2[k] - (int)y[k]) : worst;
    odl_test_logf(t, "    old file: float input quantisation moves the output by at most %d steps", worst);
    CHECK(worst <= 4);
    /* saved again (format 1 for a prefix format 1 describes): the same bytes */
    odl_node_desc nodes[16];
    odl_model_desc desc;
    odl_desc_init(&desc, nodes, 16, 1, 1, 1);
    CHECK_OK(odl_file_read_desc(buf, len, &desc, &d));
    built b;
    CHECK_OK(build_fp32(&b, &desc, 1, 0));
    CHECK_OK(odl_model_load_params(b.m, buf, len, &d));
    odl_meta_kv meta[2] = {{"arch", "int8-v1-small"}, {"probe", probe}};
    membuf out = {0};
    odl_writer w = mb_writer(&out);
    CHECK_OK(odl_qmodel_save(q.q, b.m, meta, 2, &w, &d));
    CHECK(out.len == len && memcmp(out.p, raw, len) == 0);
    free(out.p);
    free(b.buf);
    free(q.buf);
    free(buf);
}
#endif

#ifndef ODL_PORT_TEST_TARGET_H /* the host only: the data set and the trainer's time */
/* A small residual network trained by odl on Fashion-MNIST, quantised:
 * INT8 within 1 point of FP32 on the test split, with the INT8 prefix + FP32
 * head and with the whole model in INT8. ODL_QUANT_SAVE=FILE also saves the
 * trained FP32 model (for odl quantize). */
static odl_status resnet_desc(odl_model_desc *g, odl_node_desc *nodes, int32_t cap)
{
    odl_status s = odl_desc_init(g, nodes, cap, 1, 28, 28);
    odl_node_desc n;
#define TRY_(x) do { if ((s = (x)) != ODL_OK) return s; } while (0)
    TRY_(odl_desc_conv2d(g, 16, 3, 2, 1)); /* 0 -> t1 16x14x14 */
    TRY_(odl_desc_relu(g));                /* 1 -> t2 */
    TRY_(odl_desc_conv2d(g, 16, 3, 1, 1)); /* 2 -> t3 */
    TRY_(odl_desc_relu(g));                /* 3 -> t4 */
    TRY_(odl_desc_conv2d(g, 16, 3, 1, 1)); /* 4 -> t5 */
    n = odl_node_defaults(g, ODL_LAYER_ADD); /* 5 -> t6 = t5 + t2 */
    n.n_in = 2, n.in[0] = 5, n.in[1] = 2;
    TRY_(odl_desc_add_node(g, &n, NULL));
    TRY_(odl_desc_relu(g));                /* 6 -> t7 */
    TRY_(odl_desc_conv2d(g, 32, 3, 2, 1)); /* 7 -> t8 32x7x7 */
    TRY_(odl_desc_relu(g));                /* 8 -> t9 */
    TRY_(odl_desc_conv2d(g, 32, 3, 1, 1)); /* 9 -> t10 */
    n = odl_node_defaults(g, ODL_LAYER_ADD); /* 10 -> t11 = t10 + t9 */
    n.n_in = 2, n.in[0] = 10, n.in[1] = 9;
    TRY_(odl_desc_add_node(g, &n, NULL));
    TRY_(odl_desc_relu(g));                /* 11 -> t12 */
    n = odl_node_defaults(g, ODL_LAYER_AVGPOOL); /* 12 -> t13 32x4x4 (ceil mode) */
    n.k_h = n.k_w = 2, n.stride_h = n.stride_w = 2, n.flags = ODL_NODE_CEIL_MODE;
    TRY_(odl_desc_add_node(g, &n, NULL));
    TRY_(odl_desc_flatten(g));             /* 13 -> t14 */
    TRY_(odl_desc_dense(g, 10));           /* 14 -> t15 */
#undef TRY_
    return ODL_OK;
}

static double accuracy_fp32(odl_model *m, const odl_dataset *te, int32_t B)
{
    const size_t D = (size_t)te->c * te->h * te->w;
    int64_t ok = 0;
    for (int32_t i = 0; i < te->n; i += B) {
        const int32_t n = te->n - i < B ? te->n - i : B;
        const float *o;
        if (odl_model_forward(m, 0, te->x + (size_t)i * D, n, &o, NULL) != ODL_OK)
            return -1;
        for (int32_t k = 0; k < n; k++) {
            int32_t best = 0;
            for (int32_t c = 1; c < 10; c++)
                best = o[k * 10 + c] > o[k * 10 + best] ? c : best;
            ok += best == te->y[i + k];
        }
    }
    return 100.0 * (double)ok / te->n;
}

/* INT8 prefix [0, boundary) then the FP32 rest. */
static double accuracy_int8(odl_qmodel *q, odl_model *m, const odl_dataset *te, int32_t B)
{
    const size_t D = (size_t)te->c * te->h * te->w, Z = odl_qmodel_latent_size(q);
    const int32_t boundary = odl_qmodel_boundary(q), L = odl_model_get_desc(m)->n_layers;
    float *z = malloc(sizeof(float) * Z * (size_t)B);
    int64_t ok = 0;
    for (int32_t i = 0; i < te->n; i += B) {
        const int32_t n = te->n - i < B ? te->n - i : B;
        const float *o = z;
        if (odl_qmodel_forward(q, te->x + (size_t)i * D, n, z, NULL) != ODL_OK ||
            (boundary < L && odl_model_forward(m, boundary, z, n, &o, NULL) != ODL_OK)) {
            free(z);
            return -1;
        }
        for (int32_t k = 0; k < n; k++) {
            int32_t best = 0;
            for (int32_t c = 1; c < 10; c++)
                best = o[k * 10 + c] > o[k * 10 + best] ? c : best;
            ok += best == te->y[i + k];
        }
    }
    free(z);
    return 100.0 * (double)ok / te->n;
}

/* Under the sanitizers (an unoptimised build, ~30x slower) a shorter run:
 * fewer images, the same checks on a smaller test set (2 points there). */
#if defined(__SANITIZE_ADDRESS__)
#define FM_TRAIN_N 3000
#define FM_TEST_N 1000
#define FM_FP32_FLOOR 65.0
#define FM_TOL 2.0
#else
#define FM_TRAIN_N 12000
#define FM_TEST_N 0
#define FM_FP32_FLOOR 75.0
#define FM_TOL 1.0
#endif

static void test_fashion_residual(odl_test_ctx *t)
{
    odl_dataset tr, te;
    odl_data_opts o = odl_data_opts_defaults();
    odl_diag d;
    odl_diag_clear(&d);
    o.split = ODL_SPLIT_TRAIN;
    o.limit = FM_TRAIN_N;
    if (odl_data_load(ODL_FASHION_DIR, &o, &tr, &d) != ODL_OK) {
        odl_test_logf(t, "    note: %s not loadable (%s), skipping", ODL_FASHION_DIR, d.msg);
        return;
    }
    o.split = ODL_SPLIT_TEST;
    o.limit = FM_TEST_N;
    REQUIRE(odl_data_load(ODL_FASHION_DIR, &o, &te, &d) == ODL_OK);
    odl_node_desc nodes[16];
    odl_model_desc g;
    REQUIRE(resnet_desc(&g, nodes, 16) == ODL_OK);
    const int32_t B = 32, L = g.n_layers;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = B;
    cfg.optim.lr = 2e-3f;
    odl_mem_plan plan;
    REQUIRE(odl_model_plan(&g, &cfg, &plan, &d) == ODL_OK);
    void *mbuf = malloc(plan.total);
    odl_arena a;
    odl_arena_init(&a, mbuf, plan.total);
    odl_model *m;
    REQUIRE(odl_model_init(&m, &g, &cfg, &a, &d) == ODL_OK);
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    REQUIRE(odl_model_init_params(m, &r) == ODL_OK);
    const size_t D = 784;
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)tr.n);
    for (int32_t i = 0; i < tr.n; i++)
        order[i] = (uint32_t)i;
    odl_rng_shuffle_u32(&r, order, (uint32_t)tr.n);
    float *xb = malloc(sizeof(float) * D * B);
    int32_t yb[32];
    for (int32_t i = 0; i + B <= tr.n; i += B) { /* one epoch */
        for (int32_t k = 0; k < B; k++) {
            memcpy(xb + (size_t)k * D, tr.x + (size_t)order[i + k] * D, sizeof(float) * D);
            yb[k] = tr.y[order[i + k]];
        }
        float loss;
        CHECK_OK(odl_model_train_step(m, 0, xb, yb, B, &r, &loss, &d));
    }
    const double a32 = accuracy_fp32(m, &te, B);
    const char *save = getenv("ODL_QUANT_SAVE");
    if (save) {
        FILE *f = fopen(save, "wb");
        membuf mb = {0};
        odl_writer w = mb_writer(&mb);
        CHECK_OK(odl_model_save(m, NULL, 0, &w, &d));
        if (f) {
            fwrite(mb.p, 1, mb.len, f);
            fclose(f);
        }
        free(mb.p);
    }
    int32_t head = 0;
    CHECK_OK(odl_desc_boundary_for_unfreeze(&g, 1, &head, &d));
    const int32_t bounds[2] = {head, L};
    for (int k = 0; k < 2; k++) {
        const int32_t boundary = bounds[k];
        odl_qcalib c;
        float ranges[2 * 16];
        CHECK_OK(odl_qcalib_begin(&c, &g, boundary, ranges, &d));
        const size_t wf = odl_qcalib_work_floats(&g, boundary, B);
        float *work = malloc(sizeof(float) * wf);
        for (int32_t i = 0; i < 1024; i += B) /* calibration: 1000-odd training images */
            CHECK_OK(odl_qcalib_observe(&c, m, tr.x + (size_t)i * D, B, work, wf, &d));
        free(work);
        qbuilt qb;
        CHECK_OK(build_q(&qb, &g, boundary, B));
        CHECK_OK(odl_qmodel_quantize(qb.q, m, &c, &d));
        const double a8 = accuracy_int8(qb.q, m, &te, B);
        odl_test_logf(t, "    residual net (%d nodes, 1 epoch on %d images): FP32 %.2f%%, INT8 layers 0..%d %s %.2f%% (%+.2f)",
                      (int)L, (int)tr.n, a32, (int)boundary - 1, boundary < L ? "+ FP32 head" : "(all)", a8, a8 - a32);
        CHECK(a32 > FM_FP32_FLOOR);
        CHECK(fabs(a8 - a32) <= FM_TOL);
        free(qb.buf);
    }
    free(xb);
    free(order);
    free(mbuf);
    odl_dataset_free(&tr);
    odl_dataset_free(&te);
}
#endif

static const odl_test_case cases[] = {
    {"multiplier", test_multiplier},
    {"params", test_params},
    {"kernels_vs_ref", test_kernels_vs_ref},
    {"hand_computed", test_hand_computed},
    {"plan_exact", test_plan_exact},
    {"model_matches_fp32", test_model_matches_fp32},
    {"file_round_trip", test_file_round_trip},
    {"in_place", test_in_place},
    {"conv_scratch_small", test_conv_scratch_small},
    {"file_sweep", test_file_sweep},
    {"file_crafted", test_file_crafted},
    {"graph_prefix", test_graph_prefix},
    {"graph_kernels", test_graph_kernels},
    {"requant_ops", test_requant_ops},
    {"lut", test_lut},
    {"graph_model", test_graph_model},
    {"graph_file_hostile", test_graph_file_hostile},
#ifndef ODL_PORT_TEST_TARGET_H
    {"old_file", test_old_file},
#endif
    {"fused_write_alias", test_fused_write_alias},
#ifndef ODL_PORT_TEST_TARGET_H
    {"fashion_residual", test_fashion_residual},
#endif
};

TEST_MAIN(cases)
