/* Drift detector tests: detection of a known mean shift within a measured
 * delay bound (several seeds), false alarms on long stationary streams under
 * a bound, variance changes, direction of Page-Hinkley alarms, the behaviour
 * after an alarm, ADWIN's window statistics against a brute-force recount and
 * its bucket bound on a long stream, fixed memory, determinism, bad
 * configurations and non-finite values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/drift.h"
#include "odl/rng.h"

/* A detector behind one interface, for the shared stream tests. */
typedef enum { DET_ZSCORE, DET_PH, DET_ADWIN, DET_CONF, DET_N } det_kind;
static const char *det_name[DET_N] = {"zscore", "page-hinkley", "adwin", "confidence"};

typedef struct det {
    det_kind kind;
    odl_zscore_drift z;
    odl_ph_drift ph;
    odl_adwin_drift ad;
    odl_conf_drift cf;
} det;

static odl_status det_init(det *d, det_kind k)
{
    memset(d, 0, sizeof *d);
    d->kind = k;
    switch (k) {
    case DET_ZSCORE: { odl_zscore_cfg c = odl_zscore_cfg_defaults(); return odl_zscore_init(&d->z, &c, NULL); }
    case DET_PH: { odl_ph_cfg c = odl_ph_cfg_defaults(); return odl_ph_init(&d->ph, &c, NULL); }
    case DET_ADWIN: { odl_adwin_cfg c = odl_adwin_cfg_defaults(); return odl_adwin_init(&d->ad, &c, NULL); }
    default: { odl_conf_cfg c = odl_conf_cfg_defaults(); return odl_conf_init(&d->cf, &c, NULL); }
    }
}

static odl_status det_update(det *d, double x)
{
    switch (d->kind) {
    case DET_ZSCORE: return odl_zscore_update(&d->z, x);
    case DET_PH: return odl_ph_update(&d->ph, x);
    case DET_ADWIN: return odl_adwin_update(&d->ad, x);
    default: return odl_conf_update(&d->cf, x);
    }
}

/* Stream kinds: value = base + sd·N(0,1), changed from t0 on. */
typedef enum { S_STATIONARY, S_MEAN_DOWN, S_MEAN_UP, S_RAMP_DOWN, S_VAR_UP } stream_kind;

#define BASE 0.5
#define SD 0.1

static double stream_value(odl_rng *r, stream_kind k, int64_t t, int64_t t0)
{
    const double n = (double)odl_rng_normal(r);
    if (k == S_STATIONARY || t < t0)
        return BASE + SD * n;
    switch (k) {
    case S_MEAN_DOWN: return BASE - SD + SD * n;            /* -1 sd */
    case S_MEAN_UP: return BASE + SD + SD * n;              /* +1 sd */
    case S_RAMP_DOWN: {                                     /* to -1 sd over 2000 values */
        double f = (double)(t - t0) / 2000.0;
        return BASE - SD * (f < 1.0 ? f : 1.0) + SD * n;
    }
    default: return BASE + 2.0 * SD * n;                    /* sd doubled */
    }
}

/* Runs a detector over a stream of n values with a change at t0; returns the
 * delay of the first alarm at or after t0 (-1 if none) and the alarms before. */
static int64_t run_stream(det_kind k, stream_kind sk, uint64_t seed, int64_t n, int64_t t0, int64_t *before)
{
    det d;
    odl_rng r;
    odl_rng_seed(&r, seed, 7);
    if (det_init(&d, k) != ODL_OK)
        return -2;
    *before = 0;
    for (int64_t t = 0; t < n; t++) {
        odl_status s = det_update(&d, stream_value(&r, sk, t, t0));
        if (s == ODL_EVENT_DRIFT) {
            if (t < t0)
                (*before)++;
            else
                return t - t0;
        }
    }
    return -1;
}

/* ---- configuration and memory ------------------------------------------ */

static void test_defaults_and_memory(odl_test_ctx *t)
{
    det d;
    for (int k = 0; k < DET_N; k++)
        CHECK_OK(det_init(&d, (det_kind)k));
    odl_test_logf(t, "    sizeof: zscore %zu, page-hinkley %zu, adwin %zu, confidence %zu bytes",
                  sizeof(odl_zscore_drift), sizeof(odl_ph_drift), sizeof(odl_adwin_drift), sizeof(odl_conf_drift));
    /* O(1): fixed-size structs, small enough for an MCU */
    CHECK(sizeof(odl_zscore_drift) <= 256);
    CHECK(sizeof(odl_ph_drift) <= 128);
    CHECK(sizeof(odl_conf_drift) <= 128);
    CHECK(sizeof(odl_adwin_drift) <= 4096);
}

static void test_bad_cfg(odl_test_ctx *t)
{
    odl_diag dg;
    odl_zscore_drift z;
    odl_zscore_cfg zc = odl_zscore_cfg_defaults();
    odl_zscore_cfg zbad[7];
    for (int i = 0; i < 7; i++)
        zbad[i] = zc;
    zbad[0].ref_n = 1;
    zbad[1].alpha = 0.0f;
    zbad[2].alpha = NAN;
    zbad[3].z = -1.0f;
    zbad[4].min_run = 0;
    zbad[5].check_var = 2;
    zbad[6].z_var = 0.0f;
    for (int i = 0; i < 7; i++) {
        odl_diag_clear(&dg);
        CHECK(odl_zscore_init(&z, &zbad[i], &dg) == ODL_ERR_ARG);
        CHECK(dg.status == ODL_ERR_ARG && strstr(dg.msg, "zscore") != NULL);
    }
    odl_test_logf(t, "    %s", dg.msg);
    CHECK(odl_zscore_init(&z, NULL, &dg) == ODL_ERR_ARG);
    CHECK(odl_zscore_init(NULL, &zc, NULL) == ODL_ERR_ARG);

    odl_ph_drift ph;
    odl_ph_cfg pc = odl_ph_cfg_defaults();
    odl_ph_cfg pbad[6];
    for (int i = 0; i < 6; i++)
        pbad[i] = pc;
    pbad[0].warmup = 1;
    pbad[1].warmup = -3;
    pbad[2].delta = -0.1f;
    pbad[3].lambda = 0.0f;
    pbad[4].alpha = 1.5f;
    pbad[5].lambda = INFINITY;
    for (int i = 0; i < 6; i++) {
        odl_diag_clear(&dg);
        CHECK(odl_ph_init(&ph, &pbad[i], &dg) == ODL_ERR_ARG);
        CHECK(strstr(dg.msg, "page-hinkley") != NULL);
    }

    odl_adwin_drift ad;
    odl_adwin_cfg ac = odl_adwin_cfg_defaults();
    odl_adwin_cfg abad[7];
    for (int i = 0; i < 7; i++)
        abad[i] = ac;
    abad[0].delta = 0.0f;
    abad[1].delta = 1.0f;
    abad[2].m = 1;
    abad[3].m = ODL_ADWIN_MAX_M + 1;
    abad[4].max_rows = ODL_ADWIN_MAX_ROWS + 1;
    abad[5].clock = 0;
    abad[6].min_sub = 0;
    for (int i = 0; i < 7; i++) {
        odl_diag_clear(&dg);
        CHECK(odl_adwin_init(&ad, &abad[i], &dg) == ODL_ERR_ARG);
        CHECK(strstr(dg.msg, "adwin") != NULL);
    }

    odl_conf_drift cf;
    odl_conf_cfg cc = odl_conf_cfg_defaults();
    odl_conf_cfg cbad[5];
    for (int i = 0; i < 5; i++)
        cbad[i] = cc;
    cbad[0].ref_n = 0;
    cbad[1].alpha = 2.0f;
    cbad[2].z = 0.0f;
    cbad[3].min_run = -1;
    cbad[4].two_sided = 5;
    for (int i = 0; i < 5; i++) {
        odl_diag_clear(&dg);
        CHECK(odl_conf_init(&cf, &cbad[i], &dg) == ODL_ERR_ARG);
        CHECK(strstr(dg.msg, "confidence") != NULL);
    }
}

/* A non-finite value is refused and changes nothing. */
static void test_non_finite(odl_test_ctx *t)
{
    for (int k = 0; k < DET_N; k++) {
        det d, before;
        CHECK_OK(det_init(&d, (det_kind)k));
        odl_rng r;
        odl_rng_seed(&r, 3, 1);
        for (int i = 0; i < 1000; i++)
            det_update(&d, BASE + SD * odl_rng_normal(&r));
        memcpy(&before, &d, sizeof d);
        CHECK(det_update(&d, NAN) == ODL_ERR_NUMERIC);
        CHECK(det_update(&d, INFINITY) == ODL_ERR_NUMERIC);
        CHECK(det_update(&d, -INFINITY) == ODL_ERR_NUMERIC);
        CHECK(memcmp(&d, &before, sizeof d) == 0);
    }
}

static void test_sample_stats(odl_test_ctx *t)
{
    const float x[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    float m, s;
    CHECK_OK(odl_drift_sample_stats(x, 4, &m, &s));
    CHECK_NEAR(m, 1.5, 1e-7);
    CHECK_NEAR(s, sqrt(1.25), 1e-6);
    const float c[3] = {0.25f, 0.25f, 0.25f};
    CHECK_OK(odl_drift_sample_stats(c, 3, &m, &s));
    CHECK(m == 0.25f && s == 0.0f);
    CHECK(odl_drift_sample_stats(x, 0, &m, &s) == ODL_ERR_ARG);
    CHECK(odl_drift_sample_stats(NULL, 4, &m, &s) == ODL_ERR_ARG);
    const float bad[2] = {1.0f, NAN};
    CHECK(odl_drift_sample_stats(bad, 2, &m, &s) == ODL_ERR_NUMERIC);
}

/* single precision over many values stays close to a double reference: a
 * plain float sum of 200,000 values is off by about 1e-5 relative; the blocked
 * sums keep it near 1e-6 */
static void test_sample_stats_long(odl_test_ctx *t)
{
    const size_t n = 200000;
    float *x = malloc(n * sizeof(float));
    CHECK(x != NULL);
    if (!x)
        return;
    double s = 0.0, v = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = 0.3f + 0.1f * (float)(i % 7) + 1e-4f * (float)(i % 1000);
        s += x[i];
    }
    const double mu = s / (double)n;
    for (size_t i = 0; i < n; i++)
        v += ((double)x[i] - mu) * ((double)x[i] - mu);
    const double sd = sqrt(v / (double)n);
    float m, sdf;
    CHECK_OK(odl_drift_sample_stats(x, n, &m, &sdf));
    CHECK(fabs((double)m - mu) <= 1e-6 * mu);
    CHECK(fabs((double)sdf - sd) <= 1e-6 * sd);
    free(x);
}

/* ---- detection and false alarms ---------------------------------------- */

#define SEEDS 10
#define T0 5000
#define LEN 20000

static void delays(odl_test_ctx *t, det_kind k, stream_kind sk, int64_t bound, const char *what)
{
    int64_t worst = -1, sum = 0, fa = 0;
    int missed = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        int64_t before;
        const int64_t dl = run_stream(k, sk, seed, LEN, T0, &before);
        fa += before;
        if (dl < 0) {
            missed++;
            continue;
        }
        sum += dl;
        if (dl > worst)
            worst = dl;
    }
    odl_test_logf(t, "    %-12s %-22s mean delay %6.1f, worst %5lld (bound %lld), missed %d, alarms before %lld",
                  det_name[k], what, missed < SEEDS ? (double)sum / (SEEDS - missed) : -1.0, (long long)worst,
                  (long long)bound, missed, (long long)fa);
    CHECK(missed == 0);
    CHECK(worst <= bound);
    CHECK(fa == 0);
}

/* A 1-sd drop at t = 5000 is found by every detector within its bound on
 * 10 seeds (bounds: about twice the worst delay measured; no alarm before t0). */
static void test_abrupt_shift(odl_test_ctx *t)
{
    delays(t, DET_ZSCORE, S_MEAN_DOWN, 120, "abrupt -1 sd");
    delays(t, DET_PH, S_MEAN_DOWN, 110, "abrupt -1 sd");
    delays(t, DET_ADWIN, S_MEAN_DOWN, 300, "abrupt -1 sd");
    delays(t, DET_CONF, S_MEAN_DOWN, 120, "abrupt -1 sd");
    delays(t, DET_ZSCORE, S_MEAN_UP, 120, "abrupt +1 sd");
    delays(t, DET_PH, S_MEAN_UP, 110, "abrupt +1 sd");
    delays(t, DET_ADWIN, S_MEAN_UP, 300, "abrupt +1 sd");
}

/* A ramp to -1 sd over 2000 values: found before the ramp ends (worst
 * measured about 1,200 values in). */
static void test_gradual_drift(odl_test_ctx *t)
{
    delays(t, DET_ZSCORE, S_RAMP_DOWN, 2000, "ramp to -1 sd / 2000");
    delays(t, DET_PH, S_RAMP_DOWN, 2000, "ramp to -1 sd / 2000");
    delays(t, DET_ADWIN, S_RAMP_DOWN, 2000, "ramp to -1 sd / 2000");
    delays(t, DET_CONF, S_RAMP_DOWN, 2000, "ramp to -1 sd / 2000");
}

/* The z-score detector also tests the variance: a doubled sd is found. */
static void test_variance_change(odl_test_ctx *t)
{
    delays(t, DET_ZSCORE, S_VAR_UP, 100, "sd doubled");
}

/* The confidence detector is one-sided: a rise of the confidence is not
 * drift; with two_sided it is. */
static void test_conf_one_sided(odl_test_ctx *t)
{
    int64_t before;
    CHECK(run_stream(DET_CONF, S_MEAN_UP, 5, LEN, T0, &before) == -1);
    odl_conf_drift c;
    odl_conf_cfg cc = odl_conf_cfg_defaults();
    cc.two_sided = 1;
    CHECK_OK(odl_conf_init(&c, &cc, NULL));
    odl_rng r;
    odl_rng_seed(&r, 5, 7);
    int64_t at = -1;
    for (int64_t i = 0; i < LEN && at < 0; i++)
        if (odl_conf_update(&c, stream_value(&r, S_MEAN_UP, i, T0)) == ODL_EVENT_DRIFT)
            at = i;
    CHECK(at >= T0 && at < T0 + 120);
}

/* Long stationary streams: false alarms per 10,000 values under a bound. */
static void test_false_alarms(odl_test_ctx *t)
{
    const int64_t n = 200000;
    const int nseeds = 5;
    /* bounds per 10,000 values (measured well below; see the log) */
    const double bound[DET_N] = {0.2, 0.2, 0.2, 0.2};
    for (int k = 0; k < DET_N; k++) {
        int64_t alarms = 0;
        for (int seed = 100; seed < 100 + nseeds; seed++) {
            det d;
            odl_rng r;
            odl_rng_seed(&r, (uint64_t)seed, 7);
            CHECK_OK(det_init(&d, (det_kind)k));
            for (int64_t i = 0; i < n; i++)
                alarms += det_update(&d, BASE + SD * odl_rng_normal(&r)) == ODL_EVENT_DRIFT;
        }
        const double rate = 1e4 * (double)alarms / ((double)n * nseeds);
        odl_test_logf(t, "    %-12s %lld alarms in %d x %lld stationary values: %.3f per 10,000 (bound %.2f)",
                      det_name[k], (long long)alarms, nseeds, (long long)n, rate, bound[k]);
        CHECK(rate <= bound[k]);
    }
}

/* ---- behaviour of each detector ----------------------------------------- */

/* After an alarm the z-score and confidence detectors learn a new baseline:
 * no alarm during the next ref_n values, then monitoring against the new
 * level (no repeated alarms on the shifted but stationary stream). */
static void test_reset_after_alarm(odl_test_ctx *t)
{
    odl_zscore_drift z;
    odl_zscore_cfg zc = odl_zscore_cfg_defaults();
    CHECK_OK(odl_zscore_init(&z, &zc, NULL));
    odl_rng r;
    odl_rng_seed(&r, 11, 7);
    int64_t first = -1, alarms = 0;
    for (int64_t i = 0; i < LEN; i++) {
        odl_status s = odl_zscore_update(&z, stream_value(&r, S_MEAN_DOWN, i, T0));
        if (s == ODL_EVENT_DRIFT) {
            alarms++;
            if (first < 0) {
                first = i;
                CHECK(!z.ready && z.n == 0);
            }
        }
        if (first >= 0 && i > first && i - first < zc.ref_n)
            CHECK(!z.ready);
    }
    CHECK(first >= T0);
    CHECK(alarms == 1);
    CHECK(z.ready);
    CHECK_NEAR(z.mu, BASE - SD, 0.02);
    CHECK(z.alarms == 1 && z.t == LEN);

    /* Page-Hinkley restarts: its running mean follows the new level */
    odl_ph_drift ph;
    odl_ph_cfg pc = odl_ph_cfg_defaults();
    CHECK_OK(odl_ph_init(&ph, &pc, NULL));
    odl_rng_seed(&r, 11, 7);
    alarms = 0;
    for (int64_t i = 0; i < LEN; i++)
        alarms += odl_ph_update(&ph, stream_value(&r, S_MEAN_DOWN, i, T0)) == ODL_EVENT_DRIFT;
    CHECK(alarms == 1);
    CHECK_NEAR(ph.mean, BASE - SD, 0.01);
    CHECK(ph.last_dir == -1);

    /* odl_*_reset forgets the baseline but not the counters */
    odl_zscore_reset(&z);
    CHECK(!z.ready && z.n == 0 && z.t == LEN && z.alarms == 1);
}

/* Page-Hinkley reports the direction of the change. */
static void test_ph_direction(odl_test_ctx *t)
{
    for (int up = 0; up < 2; up++) {
        odl_ph_drift ph;
        odl_ph_cfg pc = odl_ph_cfg_defaults();
        CHECK_OK(odl_ph_init(&ph, &pc, NULL));
        odl_rng r;
        odl_rng_seed(&r, 21, 7);
        int fired = 0;
        for (int64_t i = 0; i < LEN && !fired; i++)
            fired = odl_ph_update(&ph, stream_value(&r, up ? S_MEAN_UP : S_MEAN_DOWN, i, T0)) == ODL_EVENT_DRIFT;
        CHECK(fired);
        CHECK(ph.last_dir == (up ? 1 : -1));
    }
    /* raw units (warmup 0): delta and lambda in the value's own units */
    odl_ph_drift ph;
    odl_ph_cfg pc = odl_ph_cfg_defaults();
    pc.warmup = 0;
    pc.delta = 0.005f;
    pc.lambda = 2.0f;
    CHECK_OK(odl_ph_init(&ph, &pc, NULL));
    int64_t at = -1;
    for (int64_t i = 0; i < 2000 && at < 0; i++)
        if (odl_ph_update(&ph, i < 1000 ? 0.0 : 1.0) == ODL_EVENT_DRIFT)
            at = i;
    /* after the step the sum grows by about 1 - mean per value: 3 values */
    CHECK(at >= 1000 && at <= 1004);
}

/* ADWIN's window: its sum and variance equal a recount of the last |W|
 * values at every step; buckets and width stay within the bound on a long
 * stream (max_rows 8, m 5: at most 40 buckets, |W| <= 5·255). */
static void test_adwin_window(odl_test_ctx *t)
{
    odl_adwin_drift ad;
    odl_adwin_cfg ac = odl_adwin_cfg_defaults();
    ac.max_rows = 8;
    CHECK_OK(odl_adwin_init(&ad, &ac, NULL));
    const int64_t n = 300000;
    double *hist = malloc(sizeof(double) * (size_t)n);
    REQUIRE(hist);
    odl_rng r;
    odl_rng_seed(&r, 9, 7);
    int32_t max_b = 0;
    int64_t max_w = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        /* a level that changes every 50,000 values */
        hist[i] = 0.3 + 0.1 * (double)((i / 50000) % 3) + 0.05 * odl_rng_normal(&r);
        odl_status s = odl_adwin_update(&ad, hist[i]);
        CHECK(s == ODL_OK || s == ODL_EVENT_DRIFT);
        const int32_t b = odl_adwin_buckets(&ad);
        const int64_t w = odl_adwin_width(&ad);
        if (b > max_b)
            max_b = b;
        if (w > max_w)
            max_w = w;
        if (i % 997 == 0 || s == ODL_EVENT_DRIFT) {
            double sum = 0.0, m2 = 0.0;
            for (int64_t j = i - w + 1; j <= i; j++)
                sum += hist[j];
            const double mu = sum / (double)w;
            for (int64_t j = i - w + 1; j <= i; j++)
                m2 += (hist[j] - mu) * (hist[j] - mu);
            if (fabs(mu - odl_adwin_mean(&ad)) > 1e-9 || fabs(m2 - ad.var) > 1e-6 * (1.0 + m2))
                bad++;
        }
    }
    odl_test_logf(t, "    %lld values: max %d buckets, max |W| %lld, %lld alarms", (long long)n, (int)max_b,
                  (long long)max_w, (long long)ad.alarms);
    CHECK(bad == 0);
    CHECK(max_b <= ac.max_rows * ac.m);
    CHECK(max_w <= (int64_t)ac.m * ((1 << ac.max_rows) - 1));
    CHECK(max_w > 1000); /* the bound is reached, not just respected */
    CHECK(ad.alarms >= 5); /* 5 level changes */
    free(hist);

    /* defaults: after a change, W holds (nearly) only the new level */
    CHECK_OK(odl_adwin_init(&ad, &(odl_adwin_cfg){0.002f, 5, 16, 32, 5}, NULL));
    odl_rng_seed(&r, 4, 7);
    for (int64_t i = 0; i < 10000; i++)
        odl_adwin_update(&ad, stream_value(&r, S_MEAN_UP, i, 5000));
    CHECK(ad.alarms >= 1);
    CHECK(odl_adwin_width(&ad) < 5100);
    CHECK_NEAR(odl_adwin_mean(&ad), BASE + SD, 0.02);
}

/* Same seed, same alarms, bit for bit; a different seed differs. */
static void test_determinism(odl_test_ctx *t)
{
    for (int k = 0; k < DET_N; k++) {
        int64_t at[2][8];
        double last[2];
        for (int rep = 0; rep < 2; rep++) {
            det d;
            odl_rng r;
            odl_rng_seed(&r, 77, 7);
            CHECK_OK(det_init(&d, (det_kind)k));
            int na = 0;
            for (int64_t i = 0; i < LEN; i++)
                if (det_update(&d, stream_value(&r, S_RAMP_DOWN, i, 3000)) == ODL_EVENT_DRIFT && na < 8)
                    at[rep][na++] = i;
            for (; na < 8; na++)
                at[rep][na] = -1;
            last[rep] = k == DET_ZSCORE ? d.z.e : k == DET_PH ? d.ph.up : k == DET_ADWIN ? d.ad.total : d.cf.e;
        }
        CHECK(memcmp(at[0], at[1], sizeof at[0]) == 0);
        CHECK(memcmp(&last[0], &last[1], sizeof last[0]) == 0);
    }
}

static const odl_test_case cases[] = {
    {"defaults_and_memory", test_defaults_and_memory},
    {"bad_cfg", test_bad_cfg},
    {"non_finite", test_non_finite},
    {"sample_stats", test_sample_stats},
    {"sample_stats_long", test_sample_stats_long},
    {"abrupt_shift", test_abrupt_shift},
    {"gradual_drift", test_gradual_drift},
    {"variance_change", test_variance_change},
    {"conf_one_sided", test_conf_one_sided},
    {"false_alarms", test_false_alarms},
    {"reset_after_alarm", test_reset_after_alarm},
    {"ph_direction", test_ph_direction},
    {"adwin_window", test_adwin_window},
    {"determinism", test_determinism},
};

TEST_MAIN(cases)
