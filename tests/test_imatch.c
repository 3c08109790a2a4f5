/* Sensor response matching (odl/imatch.h): known intensity curves recovered
 * from samples, class-conditional fitting that a skewed class mix does not
 * bend, no map without a shared class, exact plans, refusal of bad input,
 * and (if the data are installed) the protocol's gain drift recovered from
 * 100 labelled Fashion-MNIST images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "odl/data.h"
#include "odl/odl.h"

typedef struct hist_pair {
    void *buf;
    odl_arena arena;
    odl_imatch_hist ref, obs;
} hist_pair;

static odl_status pair_new(hist_pair *p, int32_t classes, int32_t bins, float lo, float hi)
{
    odl_mem_plan plan;
    odl_diag d;
    memset(p, 0, sizeof *p);
    odl_status s = odl_imatch_hist_plan(classes, bins, &plan, &d);
    if (s != ODL_OK)
        return s;
    p->buf = malloc(2 * plan.total);
    odl_arena_init(&p->arena, p->buf, 2 * plan.total);
    s = odl_imatch_hist_init(&p->ref, classes, bins, lo, hi, &p->arena, &d);
    if (s == ODL_OK)
        s = odl_imatch_hist_init(&p->obs, classes, bins, lo, hi, &p->arena, &d);
    return s;
}

/* A synthetic "image" of class c: a dark background share and a class-
 * dependent brightness spread over the whole range, values on the 8-bit
 * grid k/255 like a camera's. */
static void synth_sample(odl_rng *r, int32_t c, float *x, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        float v = odl_rng_uniform(r) < 0.4f ? 0.0f : powf(odl_rng_uniform(r), 0.5f + 0.5f * (float)c);
        x[k] = (float)(int)(v * 255.0f + 0.5f) / 255.0f;
    }
}

static float gain_drift(float v) { float y = 0.8f * v + 0.1f; return y < 0.0f ? 0.0f : y > 1.0f ? 1.0f : y; }
static float gamma_drift(float v) { return sqrtf(v); }

/* Fills ref with 200 samples per class and obs with as many seen through
 * `sensor`, fits, and returns the largest |g(v) - sensor(v)| over the 8-bit
 * grid values from first/255 to 253/255 (where a curve is steep, one bin of
 * 1/256 moves it by more than the tolerance, hence `first`). */
static double fit_error(odl_test_ctx *t, float (*sensor)(float), int first, odl_imatch_map *map)
{
    hist_pair p;
    if (pair_new(&p, 3, 256, 0.0f, 1.0f) != ODL_OK) {
        CHECK(0);
        return 1e9;
    }
    odl_rng r;
    odl_rng_seed(&r, 7, 1);
    float x[196];
    for (int32_t c = 0; c < 3; c++)
        for (int32_t k = 0; k < 200; k++) {
            synth_sample(&r, c, x, 196);
            CHECK(odl_imatch_hist_add(&p.ref, c, x, 196, NULL) == ODL_OK);
            synth_sample(&r, c, x, 196);
            for (int i = 0; i < 196; i++)
                x[i] = sensor(x[i]);
            CHECK(odl_imatch_hist_add(&p.obs, c, x, 196, NULL) == ODL_OK);
        }
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_imatch_fit(&p.ref, &p.obs, 196, map, &d);
    free(p.buf);
    if (s != ODL_OK) {
        odl_test_logf(t, "    %s", d.msg);
        CHECK(0);
        return 1e9;
    }
    double worst = 0.0;
    for (int v = first; v <= 253; v++) {
        float in = (float)v / 255.0f, out;
        odl_imatch_apply(map, &in, &out, 1);
        double e = fabs((double)out - sensor(in));
        worst = e > worst ? e : worst;
    }
    return worst;
}

static void test_recovers_gain_and_offset(odl_test_ctx *t)
{
    odl_imatch_map map;
    double e = fit_error(t, gain_drift, 2, &map);
    odl_test_logf(t, "    x' = 0.8x + 0.1: worst error %.4f, mean shift %.4f", e, (double)map.mean_shift);
    CHECK(e < 0.02);
    CHECK(map.classes_used == 3);
    /* the background atom at 0 goes to 0.1 */
    float zero = 0.0f, out;
    odl_imatch_apply(&map, &zero, &out, 1);
    CHECK_NEAR(out, 0.1, 0.01);
    CHECK(map.mean_shift > 0.05f);
}

static void test_recovers_gamma(odl_test_ctx *t)
{
    odl_imatch_map map;
    double e = fit_error(t, gamma_drift, 13, &map);
    odl_test_logf(t, "    x' = sqrt(x): worst error %.4f from 0.05 up", e);
    CHECK(e < 0.03);
}

static float identity(float v) { return v; }

static void test_identity_when_unchanged(odl_test_ctx *t)
{
    odl_imatch_map map;
    double e = fit_error(t, identity, 2, &map);
    odl_test_logf(t, "    same sensor: worst error %.4f, mean shift %.4f", e, (double)map.mean_shift);
    CHECK(e < 0.02);
    CHECK(map.mean_shift < 0.01f);
}

/* The user labels only the brightest class; the stored samples hold all
 * three. Compared class by class the sensor is unchanged; pooled over
 * classes (all labels the same) it would look much darker than it is. */
static void test_skewed_class_mix(odl_test_ctx *t)
{
    hist_pair cond, pooled;
    CHECK_OK(pair_new(&cond, 3, 256, 0.0f, 1.0f));
    CHECK_OK(pair_new(&pooled, 3, 256, 0.0f, 1.0f));
    odl_rng r;
    odl_rng_seed(&r, 11, 1);
    float x[196];
    for (int32_t c = 0; c < 3; c++)
        for (int32_t k = 0; k < 100; k++) {
            synth_sample(&r, c, x, 196);
            CHECK(odl_imatch_hist_add(&cond.ref, c, x, 196, NULL) == ODL_OK);
            CHECK(odl_imatch_hist_add(&pooled.ref, 0, x, 196, NULL) == ODL_OK);
        }
    for (int32_t k = 0; k < 30; k++) {
        synth_sample(&r, 2, x, 196);
        CHECK(odl_imatch_hist_add(&cond.obs, 2, x, 196, NULL) == ODL_OK);
        CHECK(odl_imatch_hist_add(&pooled.obs, 0, x, 196, NULL) == ODL_OK);
    }
    odl_imatch_map mc, mp;
    CHECK_OK(odl_imatch_fit(&cond.ref, &cond.obs, 196, &mc, NULL));
    CHECK_OK(odl_imatch_fit(&pooled.ref, &pooled.obs, 196, &mp, NULL));
    odl_test_logf(t, "    one class labelled: class-conditional shift %.4f, pooled %.4f", (double)mc.mean_shift,
                  (double)mp.mean_shift);
    CHECK(mc.classes_used == 1);
    CHECK(mc.mean_shift < 0.02f);
    CHECK(mp.mean_shift > 0.05f); /* what the conditioning is for */
    free(cond.buf);
    free(pooled.buf);
}

static void test_no_shared_class(odl_test_ctx *t)
{
    hist_pair p;
    CHECK_OK(pair_new(&p, 4, 64, 0.0f, 1.0f));
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)i / 63.0f;
    CHECK_OK(odl_imatch_hist_add(&p.ref, 0, x, 64, NULL));
    CHECK_OK(odl_imatch_hist_add(&p.obs, 3, x, 64, NULL));
    odl_imatch_map map;
    odl_diag d;
    odl_diag_clear(&d);
    CHECK(odl_imatch_fit(&p.ref, &p.obs, 1, &map, &d) == ODL_ERR_STATE);
    CHECK(strstr(d.msg, "share no class") != NULL);
    /* a class below the minimum on one side does not count either */
    CHECK_OK(odl_imatch_hist_add(&p.obs, 0, x, 10, NULL));
    CHECK(odl_imatch_fit(&p.ref, &p.obs, 32, &map, &d) == ODL_ERR_STATE);
    CHECK_OK(odl_imatch_fit(&p.ref, &p.obs, 10, &map, &d));
    CHECK(map.classes_used == 1);
    free(p.buf);
}

static void test_plan_matches_arena(odl_test_ctx *t)
{
    static const int32_t shapes[][2] = {{1, 2}, {3, 256}, {10, 256}, {7, 1024}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        odl_mem_plan plan;
        CHECK_OK(odl_imatch_hist_plan(shapes[k][0], shapes[k][1], &plan, NULL));
        void *buf = malloc(plan.total);
        odl_arena a;
        odl_arena_init(&a, buf, plan.total);
        odl_imatch_hist h;
        CHECK_OK(odl_imatch_hist_init(&h, shapes[k][0], shapes[k][1], 0.0f, 1.0f, &a, NULL));
        CHECK(a.used == plan.total);
        CHECK(plan.bytes[ODL_MEM_BUFFERS] >= sizeof(uint32_t) * (size_t)shapes[k][0] * shapes[k][1]);
        /* one byte less is refused with both figures */
        odl_arena small;
        odl_arena_init(&small, buf, plan.total - 1);
        odl_diag d;
        odl_diag_clear(&d);
        CHECK(odl_imatch_hist_init(&h, shapes[k][0], shapes[k][1], 0.0f, 1.0f, &small, &d) == ODL_ERR_NOMEM);
        free(buf);
    }
}

static void test_bad_input(odl_test_ctx *t)
{
    odl_mem_plan plan;
    odl_diag d;
    CHECK(odl_imatch_hist_plan(0, 256, &plan, &d) == ODL_ERR_ARG);
    CHECK(odl_imatch_hist_plan(3, 1, &plan, &d) == ODL_ERR_ARG);
    CHECK(odl_imatch_hist_plan(3, ODL_IMATCH_MAX_BINS + 1, &plan, &d) == ODL_ERR_ARG);
    CHECK(odl_imatch_hist_plan(3, 256, NULL, &d) == ODL_ERR_ARG);
    hist_pair p;
    CHECK_OK(pair_new(&p, 2, 16, 0.0f, 1.0f));
    odl_imatch_hist h;
    CHECK(odl_imatch_hist_init(&h, 2, 16, 1.0f, 1.0f, &p.arena, &d) == ODL_ERR_ARG);
    CHECK(odl_imatch_hist_init(&h, 2, 16, 0.0f, NAN, &p.arena, &d) == ODL_ERR_ARG);
    odl_arena counting;
    odl_arena_init_counting(&counting);
    CHECK(odl_imatch_hist_init(&h, 2, 16, 0.0f, 1.0f, &counting, &d) == ODL_ERR_ARG);
    /* a non-finite value: refused, nothing counted */
    float x[4] = {0.1f, 0.2f, NAN, 0.4f};
    CHECK(odl_imatch_hist_add(&p.ref, 0, x, 4, &d) == ODL_ERR_NUMERIC);
    CHECK(p.ref.totals[0] == 0);
    uint32_t sum = 0;
    for (int i = 0; i < 16; i++)
        sum += p.ref.counts[i];
    CHECK(sum == 0);
    CHECK(odl_imatch_hist_add(&p.ref, 2, x, 2, &d) == ODL_ERR_ARG);
    CHECK(odl_imatch_hist_add(&p.ref, -1, x, 2, &d) == ODL_ERR_ARG);
    /* values outside the range land in the end bins */
    float out_of_range[2] = {-5.0f, 7.0f};
    CHECK_OK(odl_imatch_hist_add(&p.ref, 1, out_of_range, 2, &d));
    CHECK(p.ref.counts[16] == 1 && p.ref.counts[31] == 1);
    /* histograms of different shapes do not fit */
    hist_pair q;
    CHECK_OK(pair_new(&q, 2, 32, 0.0f, 1.0f));
    odl_imatch_map map;
    CHECK(odl_imatch_fit(&p.ref, &q.obs, 1, &map, &d) == ODL_ERR_ARG);
    CHECK(odl_imatch_fit(NULL, &q.obs, 1, &map, &d) == ODL_ERR_ARG);
    free(p.buf);
    free(q.buf);
}

static void test_apply_monotone_and_passthrough(odl_test_ctx *t)
{
    odl_imatch_map map;
    fit_error(t, gamma_drift, 13, &map);
    float prev = -1.0f;
    for (int k = -10; k <= 1010; k++) {
        float v = (float)k / 1000.0f, o;
        odl_imatch_apply(&map, &v, &o, 1);
        CHECK(o >= prev);
        CHECK(o >= 0.0f && o <= 1.0f);
        prev = o;
    }
    float odd[3] = {NAN, INFINITY, -INFINITY}, o[3];
    odl_imatch_apply(&map, odd, o, 3);
    CHECK(isnan(o[0]) && o[1] == INFINITY && o[2] == -INFINITY);
}

/* The protocol's S1 drift, from 100 labelled user images (10 per class)
 * against 800 stored originals (80 per class). */
static void test_fashion_gain_drift(odl_test_ctx *t)
{
    struct stat sb;
    if (stat(ODL_FASHION_DIR, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        odl_test_logf(t, "    note: %s not found, skipping", ODL_FASHION_DIR);
        return;
    }
    odl_dataset tr;
    odl_data_opts o = odl_data_opts_defaults();
    odl_diag d;
    odl_diag_clear(&d);
    o.split = ODL_SPLIT_TRAIN;
    o.limit = 3000;
    odl_status st = odl_data_load(ODL_FASHION_DIR, &o, &tr, &d);
    if (st != ODL_OK)
        odl_test_logf(t, "    %s", d.msg);
    CHECK_OK(st);
    const size_t in = (size_t)tr.c * tr.h * tr.w;
    hist_pair p;
    CHECK_OK(pair_new(&p, 10, 256, 0.0f, 1.0f));
    int32_t n_ref[10] = {0}, n_obs[10] = {0};
    float *buf = malloc(sizeof(float) * in);
    for (int32_t k = 0; k < tr.n; k++) {
        const int32_t c = tr.y[k];
        const float *x = tr.x + (size_t)k * in;
        if (n_ref[c] < 80) {
            CHECK(odl_imatch_hist_add(&p.ref, c, x, in, NULL) == ODL_OK);
            n_ref[c]++;
        } else if (n_obs[c] < 10) {
            for (size_t i = 0; i < in; i++)
                buf[i] = gain_drift(x[i]);
            CHECK(odl_imatch_hist_add(&p.obs, c, buf, in, NULL) == ODL_OK);
            n_obs[c]++;
        }
    }
    odl_imatch_map map;
    CHECK_OK(odl_imatch_fit(&p.ref, &p.obs, 3 * in, &map, &d));
    double worst = 0.0;
    static const float probe[] = {0.0f, 0.1f, 0.25f, 0.5f, 0.75f, 0.9f};
    for (size_t k = 0; k < sizeof probe / sizeof probe[0]; k++) {
        float out;
        odl_imatch_apply(&map, &probe[k], &out, 1);
        double e = fabs((double)out - gain_drift(probe[k]));
        worst = e > worst ? e : worst;
    }
    odl_test_logf(t, "    Fashion-MNIST, 800 originals vs 100 drifted: worst error %.4f at 0..0.9, %d classes", worst,
                  (int)map.classes_used);
    CHECK(map.classes_used == 10);
    CHECK(worst < 0.03);
    free(buf);
    free(p.buf);
    odl_dataset_free(&tr);
}

/* Geometry: a user's class means moved by (dx, dy) are found again, and
 * unmoved ones give (0, 0). */
static void test_fit_shift(odl_test_ctx *t)
{
    enum { C = 3, H = 12, W = 10 };
    static float ref[C * H * W], obs[C * H * W];
    odl_rng r;
    odl_rng_seed(&r, 5, 5);
    for (int i = 0; i < C * H * W; i++)
        ref[i] = odl_rng_uniform(&r);
    const uint8_t use[C] = {1, 1, 1};
    static const int32_t moves[][2] = {{0, 0}, {2, 2}, {-1, 3}, {3, -2}, {1, 0}};
    for (size_t m = 0; m < sizeof moves / sizeof moves[0]; m++) {
        for (int k = 0; k < C; k++)
            odl_imatch_shift_image(ref + k * H * W, obs + k * H * W, 1, H, W, moves[m][0], moves[m][1], 0.0f);
        int32_t dx = 99, dy = 99;
        float gain = -1.0f;
        CHECK_OK(odl_imatch_fit_shift(ref, obs, use, C, 1, H, W, 3, &dx, &dy, &gain, NULL));
        CHECK(dx == moves[m][0] && dy == moves[m][1]);
        if (moves[m][0] == 0 && moves[m][1] == 0)
            CHECK(gain == 0.0f);
        else
            CHECK(gain > 0.5f);
    }
    /* a class left out does not vote */
    const uint8_t only_first[C] = {1, 0, 0};
    odl_imatch_shift_image(ref, obs, 1, H, W, 1, 1, 0.0f);
    for (int i = H * W; i < C * H * W; i++)
        obs[i] = 0.0f;
    int32_t dx, dy;
    CHECK_OK(odl_imatch_fit_shift(ref, obs, only_first, C, 1, H, W, 2, &dx, &dy, NULL, NULL));
    CHECK(dx == 1 && dy == 1);
    const uint8_t none[C] = {0, 0, 0};
    CHECK(odl_imatch_fit_shift(ref, obs, none, C, 1, H, W, 2, &dx, &dy, NULL, NULL) == ODL_ERR_STATE);
    CHECK(odl_imatch_fit_shift(ref, obs, use, C, 1, H, W, 10, &dx, &dy, NULL, NULL) == ODL_ERR_ARG);
    CHECK(odl_imatch_fit_shift(NULL, obs, use, C, 1, H, W, 2, &dx, &dy, NULL, NULL) == ODL_ERR_ARG);
}

static void test_shift_image(odl_test_ctx *t)
{
    float in[2 * 3 * 4], out[2 * 3 * 4];
    for (int i = 0; i < 24; i++)
        in[i] = (float)(i + 1);
    odl_imatch_shift_image(in, out, 2, 3, 4, 1, -1, -7.0f);
    /* pixel (y, x) of each channel comes from (y + 1, x - 1) */
    for (int ch = 0; ch < 2; ch++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++) {
                const int sy = y + 1, sx = x - 1;
                const float want = (sy < 3 && sx >= 0) ? in[(ch * 3 + sy) * 4 + sx] : -7.0f;
                CHECK(out[(ch * 3 + y) * 4 + x] == want);
            }
}

static const odl_test_case cases[] = {
    {"recovers_gain_and_offset", test_recovers_gain_and_offset},
    {"recovers_gamma", test_recovers_gamma},
    {"identity_when_unchanged", test_identity_when_unchanged},
    {"skewed_class_mix", test_skewed_class_mix},
    {"no_shared_class", test_no_shared_class},
    {"plan_matches_arena", test_plan_matches_arena},
    {"bad_input", test_bad_input},
    {"apply_monotone_and_passthrough", test_apply_monotone_and_passthrough},
    {"fashion_gain_drift", test_fashion_gain_drift},
    {"fit_shift", test_fit_shift},
    {"shift_image", test_shift_image},
};

TEST_MAIN(cases)
