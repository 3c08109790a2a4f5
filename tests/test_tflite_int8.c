/* INT8 ADD, MUL and CONCATENATION as odl's INT8 graph runtime runs them for
 * an imported .tflite (odl_qmodel_set_params with the file's parameters),
 * against a plain reference of TFLite's integer kernels written here from
 * their definitions: QuantizeMultiplier, SaturatingRoundingDoublingHighMul,
 * RoundingDivideByPOT, the multipliers of each kernel's Prepare (add:
 * left shift 20 and 2·max(s_a, s_b); mul: the float product of the scales;
 * an int8 input of another scale reaches a concatenation through an int8
 * QUANTIZE, TFLite's int8 CONCATENATION taking only the output's). The
 * outputs must be identical, byte for byte. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/quant.h"
#include "odl/rng.h"

/* ---- the reference, in 64-bit integers ------------------------------------ */

static void ref_quantize_multiplier(double m, int32_t *mult, int32_t *shift)
{
    if (m == 0.0) {
        *mult = 0, *shift = 0;
        return;
    }
    int e;
    const double q = frexp(m, &e);
    int64_t qf = llround(q * 2147483648.0);
    if (qf == (1LL << 31)) {
        qf /= 2;
        e++;
    }
    if (e < -31) {
        e = 0;
        qf = 0;
    }
    *mult = (int32_t)qf;
    *shift = e;
}

static int32_t ref_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31)); /* C division truncates, as TFLite's */
}

static int32_t ref_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t ref_mbqm(int32_t x, int32_t mult, int32_t shift)
{
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return ref_rdbpot(ref_srdhm((int32_t)((int64_t)x * (1LL << left)), mult), right);
}

static int8_t sat(int32_t v) { return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v); }

typedef struct rq {
    float s;
    int32_t zp;
} rq;

/* ADD (reference_integer_ops::Add with add.cc's Prepare). */
static int8_t ref_add(int8_t a, rq pa, int8_t b, rq pb, rq po)
{
    const double twice = 2 * (double)(pa.s > pb.s ? pa.s : pb.s);
    int32_t m1, s1, m2, s2, mo, so;
    ref_quantize_multiplier((double)pa.s / twice, &m1, &s1);
    ref_quantize_multiplier((double)pb.s / twice, &m2, &s2);
    ref_quantize_multiplier(twice / (double)((float)(1 << 20) * po.s), &mo, &so);
    const int32_t x1 = (a - pa.zp) * (1 << 20), x2 = (b - pb.zp) * (1 << 20);
    const int32_t sum = ref_mbqm(x1, m1, s1) + ref_mbqm(x2, m2, s2);
    return sat(ref_mbqm(sum, mo, so) + po.zp);
}

/* MUL: the real multiplier is computed from the float scales in float. */
static int8_t ref_mul(int8_t a, rq pa, int8_t b, rq pb, rq po)
{
    const float real = pa.s * pb.s / po.s;
    int32_t m, s;
    ref_quantize_multiplier((double)real, &m, &s);
    return sat(ref_mbqm((a - pa.zp) * (b - pb.zp), m, s) + po.zp);
}

/* QUANTIZE int8 -> int8 (Requantize); the identity when the parameters agree. */
static int8_t ref_requant(int8_t a, rq pa, rq po)
{
    if (pa.s == po.s && pa.zp == po.zp)
        return a;
    int32_t m, s;
    ref_quantize_multiplier((double)pa.s / (double)po.s, &m, &s);
    return sat(ref_mbqm(a - pa.zp, m, s) + po.zp);
}

/* CONV_2D 1x1 with per-channel weights (reference_integer_ops::ConvPerChannel). */
static int8_t ref_conv1(const int8_t *x, size_t hw, size_t p, int32_t C, const int8_t *w, const float *ws,
                        const int32_t *bias, int32_t o, rq pi, rq po)
{
    int32_t acc = bias[o];
    for (int32_t c = 0; c < C; c++)
        acc += (x[(size_t)c * hw + p] - pi.zp) * w[o * C + c];
    int32_t m, s;
    ref_quantize_multiplier((double)pi.s * (double)ws[o] / (double)po.s, &m, &s);
    return sat(ref_mbqm(acc, m, s) + po.zp);
}

/* ---- the test -------------------------------------------------------------- */

static rq random_rq(odl_rng *r)
{
    rq p = {(float)(0.001 + 0.2 * odl_rng_uniform(r)), (int32_t)odl_rng_below(r, 201) - 100};
    return p;
}

/* Scales whose float product gives another multiplier than the double one:
 * a mul computed in double would differ from TFLite's there. */
static int find_float_mul_case(odl_rng *r, rq *a, rq *b, rq *o)
{
    for (int k = 0; k < 200000; k++) {
        *a = random_rq(r), *b = random_rq(r), *o = random_rq(r);
        int32_t m1, s1, m2, s2;
        ref_quantize_multiplier((double)(a->s * b->s / o->s), &m1, &s1);
        ref_quantize_multiplier((double)a->s * (double)b->s / (double)o->s, &m2, &s2);
        if (m1 != m2 || s1 != s2)
            return 1;
    }
    return 0;
}

/* input (C x H x W) -> t1 = conv1x1(t0) -> t2 = add(t1, t0) -> t3 = mul(t2, t1)
 * -> t4 = concat(t3, t0, t1): every operand with its own parameters. */
static void test_graph_vs_reference(odl_test_ctx *t)
{
    enum { C = 3, H = 4, W = 5, N = 2 };
    const size_t hw = (size_t)H * W, plane = (size_t)C * hw;
    odl_rng r;
    odl_rng_seed(&r, 2024, 13);
    odl_node_desc nodes[8];
    odl_model_desc desc;
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(odl_desc_init(&desc, nodes, 8, C, H, W));
    CHECK_OK(odl_desc_conv2d(&desc, C, 1, 1, 0));
    odl_node_desc add = odl_node_defaults(&desc, ODL_LAYER_ADD);
    add.n_in = 2, add.in[0] = 1, add.in[1] = 0;
    CHECK_OK(odl_desc_add_node(&desc, &add, NULL));
    odl_node_desc mul = odl_node_defaults(&desc, ODL_LAYER_MUL);
    mul.n_in = 2, mul.in[0] = 2, mul.in[1] = 1;
    CHECK_OK(odl_desc_add_node(&desc, &mul, NULL));
    odl_node_desc cat = odl_node_defaults(&desc, ODL_LAYER_CONCAT);
    cat.n_in = 3, cat.in[0] = 3, cat.in[1] = 0, cat.in[2] = 1;
    CHECK_OK(odl_desc_add_node(&desc, &cat, NULL));
    odl_mem_plan plan;
    CHECK_OK(odl_qmodel_plan(&desc, 4, N, &plan, &d));
    void *buf = malloc(plan.total + ODL_ALIGN);
    REQUIRE(buf != NULL);
    odl_arena a;
    CHECK_OK(odl_arena_init(&a, buf, plan.total + ODL_ALIGN));
    odl_qmodel *q = NULL;
    CHECK_OK(odl_qmodel_init(&q, &desc, 4, N, &a, &d));

    rq fa, fb, fo;
    const int have_float_case = find_float_mul_case(&r, &fa, &fb, &fo);
    CHECK(have_float_case);
    int8_t x[N * C * H * W], y[N * 3 * C * H * W], w[C * C];
    float ws[C];
    int32_t bias[C];
    size_t differ = 0, total = 0;
    for (int it = 0; it < 300; it++) {
        rq p0 = random_rq(&r), p1 = random_rq(&r), p2 = random_rq(&r), p3 = random_rq(&r), p4 = random_rq(&r);
        if (it % 3 == 1)
            p4 = p0; /* concat: input 1 copied as it is */
        if (it % 5 == 2)
            p2 = p1; /* add with equal operand scales */
        if (it == 0 && have_float_case)
            p2 = fa, p1 = fb, p3 = fo; /* mul(t2, t1) where float and double multipliers differ */
        for (size_t k = 0; k < sizeof x; k++)
            x[k] = (int8_t)((int32_t)odl_rng_below(&r, 256) - 128);
        for (int k = 0; k < C * C; k++)
            w[k] = (int8_t)((int32_t)odl_rng_below(&r, 255) - 127);
        for (int o = 0; o < C; o++) {
            ws[o] = (float)(0.002 + 0.02 * odl_rng_uniform(&r));
            bias[o] = (int32_t)odl_rng_below(&r, 2001) - 1000;
        }
        odl_qnode_params np[4];
        memset(np, 0, sizeof np);
        np[0].out = (odl_qparams){p1.s, p1.zp};
        np[0].w = w, np[0].w_scale = ws, np[0].bias = bias;
        np[1].out = (odl_qparams){p2.s, p2.zp};
        np[2].out = (odl_qparams){p3.s, p3.zp};
        np[3].out = (odl_qparams){p4.s, p4.zp};
        CHECK_OK(odl_qmodel_set_params(q, (odl_qparams){p0.s, p0.zp}, np, &d));
        CHECK_OK(odl_qmodel_run_s8(q, x, N, y, &d));
        for (int n = 0; n < N; n++) {
            const int8_t *xn = x + (size_t)n * plane;
            int8_t t1[C * H * W], t2[C * H * W], t3[C * H * W];
            for (int o = 0; o < C; o++)
                for (size_t p = 0; p < hw; p++)
                    t1[(size_t)o * hw + p] = ref_conv1(xn, hw, p, C, w, ws, bias, o, p0, p1);
            for (size_t k = 0; k < plane; k++) {
                t2[k] = ref_add(t1[k], p1, xn[k], p0, p2);
                t3[k] = ref_mul(t2[k], p2, t1[k], p1, p3);
            }
            const int8_t *yn = y + (size_t)n * 3 * plane;
            for (size_t k = 0; k < plane; k++) {
                const int8_t e[3] = {ref_requant(t3[k], p3, p4), ref_requant(xn[k], p0, p4),
                                     ref_requant(t1[k], p1, p4)};
                for (int part = 0; part < 3; part++) {
                    differ += yn[(size_t)part * plane + k] != e[part];
                    total++;
                }
            }
        }
    }
    odl_test_logf(t, "    %zu of %zu values differ from TFLite's reference arithmetic", differ, total);
    CHECK(differ == 0);
    free(buf);
}

/* The kernels alone over every int8 pair, parameters from TFLite's Prepare. */
static void test_kernels_exhaustive(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 7, 7);
    static int8_t a[65536], b[65536], y[65536], y2[65536];
    for (int v = 0; v < 65536; v++) {
        a[v] = (int8_t)(v & 255);
        b[v] = (int8_t)(v >> 8);
    }
    size_t bad_add = 0, bad_mul = 0;
    for (int it = 0; it < 20; it++) {
        const rq pa = random_rq(&r), pb = random_rq(&r), po = random_rq(&r);
        odl_qbinary p;
        memset(&p, 0, sizeof p);
        p.a_zp = pa.zp, p.b_zp = pb.zp, p.out_zp = po.zp, p.act_min = -128, p.act_max = 127;
        const double twice = 2 * (double)(pa.s > pb.s ? pa.s : pb.s);
        odl_q_quantize_multiplier((double)pa.s / twice, &p.a_mult, &p.a_shift);
        odl_q_quantize_multiplier((double)pb.s / twice, &p.b_mult, &p.b_shift);
        odl_q_quantize_multiplier(twice / (double)((float)(1 << 20) * po.s), &p.out_mult, &p.out_shift);
        p.left_shift = 20;
        odl_qadd_s8(&p, 1, 1, 65536, a, b, 1, 65536, y);
        odl_qadd_s8_ref(&p, 1, 1, 65536, a, b, 1, 65536, y2);
        for (int v = 0; v < 65536; v++)
            bad_add += y[v] != ref_add(a[v], pa, b[v], pb, po) || y2[v] != y[v];
        odl_q_quantize_multiplier((double)(pa.s * pb.s / po.s), &p.out_mult, &p.out_shift);
        odl_qmul_s8(&p, 1, 1, 65536, a, b, 1, 65536, y);
        odl_qmul_s8_ref(&p, 1, 1, 65536, a, b, 1, 65536, y2);
        for (int v = 0; v < 65536; v++)
            bad_mul += y[v] != ref_mul(a[v], pa, b[v], pb, po) || y2[v] != y[v];
    }
    CHECK(bad_add == 0);
    CHECK(bad_mul == 0);
    /* the reference itself on hand-checked values: 0.5 · 2^31 rounds half away from zero */
    CHECK(ref_rdbpot(5, 1) == 3 && ref_rdbpot(-5, 1) == -3 && ref_rdbpot(4, 1) == 2);
    CHECK(ref_srdhm(1 << 30, 1 << 30) == 1 << 29);
    int32_t m, s;
    ref_quantize_multiplier(0.75, &m, &s);
    CHECK(m == 1610612736 && s == 0);
    odl_q_quantize_multiplier(0.75, &m, &s);
    CHECK(m == 1610612736 && s == 0);
}

/* x · x over every int8 value, at scales where TFLite's float product of
 * the scales gives another multiplier than double arithmetic, and another
 * output for some x: the mul's multiplier must be TFLite's. */
static void test_mul_float_multiplier(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 99, 1);
    rq pi = {0, 0}, po = {0, 0};
    int found = 0;
    for (int k = 0; k < 2000000 && !found; k++) {
        pi = random_rq(&r), po = random_rq(&r);
        int32_t m1, s1, m2, s2;
        ref_quantize_multiplier((double)(pi.s * pi.s / po.s), &m1, &s1);
        ref_quantize_multiplier((double)pi.s * (double)pi.s / (double)po.s, &m2, &s2);
        if (m1 == m2 && s1 == s2)
            continue;
        for (int v = -128; v <= 127 && !found; v++) {
            const int32_t sq = (v - pi.zp) * (v - pi.zp);
            found = sat(ref_mbqm(sq, m1, s1) + po.zp) != sat(ref_mbqm(sq, m2, s2) + po.zp);
        }
    }
    REQUIRE(found);
    odl_node_desc nodes[2];
    odl_model_desc desc;
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(odl_desc_init(&desc, nodes, 2, 1, 16, 16));
    odl_node_desc mul = odl_node_defaults(&desc, ODL_LAYER_MUL);
    mul.n_in = 2, mul.in[0] = 0, mul.in[1] = 0;
    CHECK_OK(odl_desc_add_node(&desc, &mul, NULL));
    odl_mem_plan plan;
    CHECK_OK(odl_qmodel_plan(&desc, 1, 1, &plan, &d));
    void *buf = malloc(plan.total + ODL_ALIGN);
    REQUIRE(buf != NULL);
    odl_arena a;
    CHECK_OK(odl_arena_init(&a, buf, plan.total + ODL_ALIGN));
    odl_qmodel *q = NULL;
    CHECK_OK(odl_qmodel_init(&q, &desc, 1, 1, &a, &d));
    odl_qnode_params np;
    memset(&np, 0, sizeof np);
    np.out = (odl_qparams){po.s, po.zp};
    CHECK_OK(odl_qmodel_set_params(q, (odl_qparams){pi.s, pi.zp}, &np, &d));
    int8_t x[256], y[256];
    for (int v = 0; v < 256; v++)
        x[v] = (int8_t)(v - 128);
    CHECK_OK(odl_qmodel_run_s8(q, x, 1, y, &d));
    int bad = 0;
    for (int v = 0; v < 256; v++)
        bad += y[v] != ref_mul(x[v], pi, x[v], pi, po);
    odl_test_logf(t, "    scales %.9g, %.9g: %d of 256 products differ from TFLite's", (double)pi.s, (double)po.s,
                  bad);
    CHECK(bad == 0);
    free(buf);
}

/* ---- LOGISTIC, TANH, HARD_SWISH ------------------------------------------- */

/* LOGISTIC and TANH: TFLite's int8 table (activations.cc), in float as it is
 * built there: dequantise, the float function, times 1/s_out, rounded. */
static int8_t ref_table_act(int8_t v, int tanh_op, rq pi, rq po)
{
    const float x = pi.s * (float)(v - pi.zp);
    const float f = tanh_op ? tanhf(x) : 1.0f / (1.0f + expf(-x));
    const float inv = 1.0f / po.s;
    return sat((int32_t)roundf(f * inv) + po.zp);
}

/* int16 fixed point of hard_swish.h, each step in 64-bit integers. */
static int64_t ref_sat16(int64_t v) { return v > 32767 ? 32767 : v < -32768 ? -32768 : v; }

static int64_t ref_srdhm16(int64_t a, int64_t b)
{
    if (a == -32768 && b == -32768)
        return 32767;
    const int64_t ab = a * b;
    return (ab + (ab >= 0 ? (1 << 14) : 1 - (1 << 14))) / (1 << 15);
}

static int64_t ref_int16_mult(int32_t m32)
{
    return m32 >= INT32_MAX - (1 << 15) ? 32767 : ((int64_t)m32 + (1 << 15)) >> 16;
}

/* -1: TFLite's Prepare refuses the parameters (output exponent above 0). */
static int32_t ref_hswish(int8_t v, rq pi, rq po)
{
    const float hires = (1.0f / 128.0f) * pi.s;
    int32_t om, oe, rm, re;
    ref_quantize_multiplier((double)(hires / po.s), &om, &oe);
    ref_quantize_multiplier((double)(hires / (3.0f / 32768.0f)), &rm, &re);
    if (oe > 0)
        return -1000;
    const int64_t om16 = ref_int16_mult(om), rm16 = ref_int16_mult(rm);
    const int64_t hi = (int64_t)(v - pi.zp) * 128;
    const int64_t pre = ref_srdhm16(hi, om16);
    int64_t r = hi;
    if (re > 0)
        r = ref_sat16(r * ((int64_t)1 << (re - 1)));
    r = ref_srdhm16(r, rm16);
    if (re > 0)
        r = ref_sat16(r * 2);
    if (re < 0)
        r = ref_rdbpot((int32_t)r, -re);
    r = (r + 32768) >> 1;
    const int64_t prod = (r == -32768 && pre == -32768) ? 32767 : (r * pre) / (1 << 15); /* truncating */
    return sat(ref_rdbpot((int32_t)prod, -oe) + po.zp);
}

/* One activation node run by odl's INT8 runtime on all 256 int8 values. */
static void run_act(odl_test_ctx *t, int32_t type, rq pi, rq po, int8_t y[256])
{
    odl_node_desc nodes[1];
    odl_model_desc desc;
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(odl_desc_init(&desc, nodes, 1, 1, 16, 16));
    odl_node_desc n = odl_node_defaults(&desc, type);
    n.n_in = 1, n.in[0] = 0;
    CHECK_OK(odl_desc_add_node(&desc, &n, NULL));
    odl_mem_plan plan;
    CHECK_OK(odl_qmodel_plan(&desc, 1, 1, &plan, &d));
    void *buf = malloc(plan.total + ODL_ALIGN);
    REQUIRE(buf != NULL);
    odl_arena a;
    CHECK_OK(odl_arena_init(&a, buf, plan.total + ODL_ALIGN));
    odl_qmodel *q = NULL;
    CHECK_OK(odl_qmodel_init(&q, &desc, 1, 1, &a, &d));
    odl_qnode_params np;
    memset(&np, 0, sizeof np);
    np.out = (odl_qparams){po.s, po.zp};
    CHECK_OK(odl_qmodel_set_params(q, (odl_qparams){pi.s, pi.zp}, &np, &d));
    int8_t x[256];
    for (int v = 0; v < 256; v++)
        x[v] = (int8_t)(v - 128);
    CHECK_OK(odl_qmodel_run_s8(q, x, 1, y, &d));
    free(buf);
}

/* Every int8 value through LOGISTIC, TANH (TFLite's fixed output
 * parameters) and HARD_SWISH over random parameters: identical to the
 * reference; hard swish is within one step of the float function, and
 * differs from a table of it on some inputs (which is why it is not one). */
static void test_activations_exhaustive(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 13, 2);
    int bad = 0, off_float = 0, beyond_one = 0;
    for (int it = 0; it < 300; it++) {
        const rq pi = random_rq(&r);
        int8_t y[256];
        const rq sig = {1.0f / 256.0f, -128}, th = {1.0f / 128.0f, 0};
        run_act(t, ODL_LAYER_SIGMOID, pi, sig, y);
        for (int v = 0; v < 256; v++)
            bad += y[v] != ref_table_act((int8_t)(v - 128), 0, pi, sig);
        run_act(t, ODL_LAYER_TANH, pi, th, y);
        for (int v = 0; v < 256; v++)
            bad += y[v] != ref_table_act((int8_t)(v - 128), 1, pi, th);
        /* hard swish: the output range about the input's */
        rq po = random_rq(&r);
        po.s = pi.s * (float)(0.6 + 0.8 * odl_rng_uniform(&r));
        run_act(t, ODL_LAYER_HARD_SWISH, pi, po, y);
        for (int v = 0; v < 256; v++) {
            const int8_t xv = (int8_t)(v - 128);
            const int32_t want = ref_hswish(xv, pi, po);
            REQUIRE(want > -1000);
            bad += y[v] != want;
            const float xf = pi.s * (float)(xv - pi.zp);
            float rr = xf + 3.0f;
            rr = rr < 0.0f ? 0.0f : rr > 6.0f ? 6.0f : rr;
            const int32_t fq = sat((int32_t)roundf(xf * rr / 6.0f / po.s) + po.zp);
            off_float += fq != y[v];
            beyond_one += abs(fq - y[v]) > 1;
        }
    }
    odl_test_logf(t, "    230,400 activations: %d differ from the reference; hard swish: %d of 76,800 one step "
                  "from the float function, %d more", bad, off_float, beyond_one);
    CHECK(bad == 0);
    CHECK(beyond_one == 0);
    CHECK(off_float > 0);
}

static const odl_test_case cases[] = {
    {"activations_exhaustive", test_activations_exhaustive},
    {"mul_float_multiplier", test_mul_float_multiplier},
    {"graph_vs_reference", test_graph_vs_reference},
    {"kernels_exhaustive", test_kernels_exhaustive},
};

TEST_MAIN(cases)
