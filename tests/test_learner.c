/* The learner façade on real data: gates, rollback, calibration, plans. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/adapt.h"
#include "odl/data.h"
#include "odl/learner.h"
#include "odl/odl.h"
#include "odl/state.h"

typedef struct fixture {
    odl_dataset tr, te;
    void *base_buf;
    odl_model *base;
} fixture;

/* A base trained briefly on real images (1 epoch, 6000 samples). */
static int setup(odl_test_ctx *t, fixture *f)
{
    memset(f, 0, sizeof *f);
    odl_data_opts o = odl_data_opts_defaults();
    o.limit = 6000;
    if (odl_data_load(ODL_FASHION_DIR, &o, &f->tr, NULL) != ODL_OK)
        return 0;
    o.split = ODL_SPLIT_TEST;
    o.limit = 1000;
    if (odl_data_load(ODL_FASHION_DIR, &o, &f->te, NULL) != ODL_OK)
        return 0;
    odl_node_desc d_nodes[64];
    odl_model_desc d;
    odl_desc_init(&d, d_nodes, 64, 1, 1, 1);
    odl_desc_edge_cnn(&d, 1, 28, 28, 10);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 32;
    odl_mem_plan p;
    odl_model_plan(&d, &cfg, &p, NULL);
    f->base_buf = malloc(p.total);
    odl_arena a;
    odl_arena_init(&a, f->base_buf, p.total);
    if (odl_model_init(&f->base, &d, &cfg, &a, NULL) != ODL_OK)
        return 0;
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    odl_model_init_params(f->base, &r);
    for (int32_t s = 0; s + 32 <= f->tr.n; s += 32) {
        float loss;
        if (odl_model_train_step(f->base, 0, f->tr.x + (size_t)s * 784, f->tr.y + s, 32, &r, &loss, NULL) != ODL_OK)
            return 0;
    }
    (void)t;
    return 1;
}

static void teardown(fixture *f)
{
    free(f->base_buf);
    odl_dataset_free(&f->tr);
    odl_dataset_free(&f->te);
}

static odl_learner *make_learner(odl_test_ctx *t, fixture *f, const odl_learner_cfg *cfg, void **buf)
{
    odl_mem_plan p;
    odl_diag d;
    if (odl_learner_plan(cfg, f->base, &p, &d) != ODL_OK) {
        odl_test_logf(t, "    plan: %s", d.msg);
        return NULL;
    }
    *buf = malloc(p.total);
    odl_arena a;
    odl_arena_init(&a, *buf, p.total);
    odl_learner *L;
    if (odl_learner_init(&L, cfg, f->base, &a, &d) != ODL_OK) {
        odl_test_logf(t, "    init: %s", d.msg);
        return NULL;
    }
    CHECK(a.used == p.total); /* the plan is the arena, byte for byte */
    odl_rng r;
    odl_rng_seed(&r, 2, 2);
    /* the device ships with 2000 original examples' statistics */
    if (odl_learner_seed_old(L, f->tr.x, f->tr.y, 2000, &r, &d) != ODL_OK) {
        odl_test_logf(t, "    seed: %s", d.msg);
        return NULL;
    }
    return L;
}

static void head_params(const odl_learner *L, float *out, size_t *n_out)
{
    size_t n;
    const float *w = odl_model_param_const(odl_learner_head(L), 0, 0, &n);
    memcpy(out, w, sizeof(float) * n);
    *n_out = n;
}

/* The last gate decision's figures: each set measured on its count of
 * examples, accuracies in [0, 1]; an unmeasured set (count 0) holds 0 and is
 * left out of the message; no sentinel anywhere. */
static int figures_consistent(const odl_learner_status *st)
{
    const int32_t n[3] = {st->last_old_n, st->last_new_n, st->last_user_n};
    const float v[3][2] = {{st->last_old_before, st->last_old_after},
                           {st->last_new_before, st->last_new_after},
                           {st->last_user_before, st->last_user_after}};
    const char *name[3] = {"old ", "new ", "earlier user "};
    for (int k = 0; k < 3; k++) {
        if (n[k] < 0)
            return 0;
        for (int b = 0; b < 2; b++)
            if (!(v[k][b] >= 0.0f && v[k][b] <= 1.0f) || (n[k] == 0 && v[k][b] != 0.0f))
                return 0;
        const char *at = strstr(st->last_decision, name[k]);
        if ((n[k] > 0) != (at != NULL))
            return 0;
        float before, after;
        int count;
        if (at && (sscanf(at + strlen(name[k]), "%f -> %f on %d", &before, &after, &count) != 3 || count != n[k] ||
                   fabsf(before - v[k][0]) > 5e-4f || fabsf(after - v[k][1]) > 5e-4f))
            return 0;
    }
    return st->user_guard == st->last_user_n && !strstr(st->last_decision, "-1");
}

static void test_gates_and_rollback(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_learner_cfg cfg = odl_learner_cfg_defaults();
    void *buf = NULL;
    odl_learner *L = make_learner(t, &f, &cfg, &buf);
    REQUIRE(L);
    odl_diag d;
    odl_reason why;
    odl_rng r;
    odl_rng_seed(&r, 3, 3);
    float x[784];
    odl_learner_status st;

    /* no decision yet: nothing measured, and no figure pretends otherwise */
    odl_learner_get_status(L, &st);
    CHECK(st.last_old_n == 0 && st.last_new_n == 0 && st.last_user_n == 0 && st.last_accepted == 0);
    CHECK(st.last_old_before == 0.0f && st.last_old_after == 0.0f && st.last_new_before == 0.0f &&
          st.last_new_after == 0.0f && st.last_user_before == 0.0f && st.last_user_after == 0.0f);

    /* the data-quality gate */
    memcpy(x, f.te.x, sizeof x);
    x[5] = NAN;
    CHECK(odl_learner_feedback(L, x, 1, &why, &d) == ODL_EVENT_REJECTED && why == ODL_REASON_NONFINITE);
    CHECK(odl_learner_feedback(L, f.te.x, 99, &why, &d) == ODL_EVENT_REJECTED && why == ODL_REASON_LABEL);
    for (int k = 0; k < 784; k++)
        x[k] = 40.0f; /* finite, but nothing like an image */
    CHECK(odl_learner_feedback(L, x, 3, &why, &d) == ODL_EVENT_REJECTED && why == ODL_REASON_OUTLIER);
    int32_t dup_rejected = 0;
    for (int k = 0; k < 4; k++)
        dup_rejected += odl_learner_feedback(L, f.te.x + 784 * 7, f.te.y[7], &why, &d) == ODL_EVENT_REJECTED &&
                        why == ODL_REASON_DUPLICATE;
    CHECK(dup_rejected == 2); /* max_dups = 2: the 3rd and 4th copies */

    /* a good update: the user's sensor drifted (gain 0.8, +0.1); 60 correct labels */
    odl_shift sh;
    odl_shift_parse("gain:0.8,0.1", &sh, NULL);
    odl_dataset user;
    odl_dataset_copy(&f.te, &user);
    odl_dataset_shift(&user, &sh);
    int32_t fed = 0, n_acc = 0;
    for (int32_t k = 100; k < 1000 && n_acc < 60; k++) {
        odl_status s = odl_learner_feedback(L, user.x + (size_t)k * 784, user.y[k], &why, &d);
        fed++;
        n_acc += s == ODL_OK;
    }
    odl_learner_get_status(L, &st);
    odl_test_logf(t, "    collected %d of %d fed (imbalance %u, contradicts %u, outlier %u)", (int)st.collected,
                  (int)fed, st.rejected[ODL_REASON_IMBALANCE], st.rejected[ODL_REASON_CONTRADICTS],
                  st.rejected[ODL_REASON_OUTLIER]);
    CHECK(st.collected >= 50 && st.held_out >= 10);
    float before[640];
    size_t nw;
    head_params(L, before, &nw);
    odl_status s = odl_learner_update(L, &r, &d);
    odl_learner_get_status(L, &st);
    odl_test_logf(t, "    good update: %s", st.last_decision);
    CHECK(s == ODL_OK && st.version == 1 && st.updates_accepted == 1);
    /* measured: the guard set and this update's held-out examples; no earlier user update yet */
    const int32_t held_first = st.last_new_n;
    CHECK(st.last_old_n == cfg.guard_size && held_first >= 10 && st.last_user_n == 0 && st.last_accepted == 1);
    CHECK(figures_consistent(&st));
    float v1[640];
    head_params(L, v1, &nw);
    CHECK(memcmp(before, v1, sizeof(float) * nw) != 0);

    /* a bad update: every label shifted by one class; confident contradictions
     * are held first, then confirmed by sending them again */
    int32_t bad = 0;
    for (int32_t k = 100; k < 1000 && bad < 40; k++) {
        int32_t wrong = (user.y[k] + 1) % 10;
        s = odl_learner_feedback(L, user.x + (size_t)k * 784, wrong, &why, &d);
        if (s == ODL_EVENT_REJECTED && why == ODL_REASON_CONTRADICTS)
            s = odl_learner_feedback(L, user.x + (size_t)k * 784, wrong, &why, &d);
        bad += s == ODL_OK;
    }
    odl_learner_get_status(L, &st);
    CHECK(st.rejected[ODL_REASON_CONTRADICTS] > 0);
    CHECK(bad >= 20);
    s = odl_learner_update(L, &r, &d);
    odl_learner_get_status(L, &st);
    odl_test_logf(t, "    mislabelled update: %s", st.last_decision);
    CHECK(s == ODL_EVENT_ROLLED_BACK && st.version == 1 && st.updates_rolled_back == 1);
    /* the first update's held-out examples now guard what the user taught */
    CHECK(st.last_user_n == held_first && st.last_new_n > 0 && st.last_accepted == 0);
    CHECK(figures_consistent(&st));
    float after_bad[640];
    head_params(L, after_bad, &nw);
    CHECK(memcmp(v1, after_bad, sizeof(float) * nw) == 0); /* exactly as before */

    /* rollback to the base's head */
    CHECK_OK(odl_learner_rollback(L, 1, &d));
    head_params(L, after_bad, &nw);
    CHECK(memcmp(before, after_bad, sizeof(float) * nw) == 0);
    CHECK(odl_learner_rollback(L, 1, &d) == ODL_ERR_NOT_FOUND);
    odl_dataset_free(&user);
    free(buf);
    teardown(&f);
}

static void test_plan_refuses_small_arena(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_learner_cfg cfg = odl_learner_cfg_defaults();
    cfg.max_classes = 12; /* room for two new classes */
    odl_mem_plan p;
    odl_diag d;
    CHECK_OK(odl_learner_plan(&cfg, f.base, &p, &d));
    void *buf = malloc(p.total);
    odl_arena a;
    odl_arena_init(&a, buf, p.total - 16);
    odl_learner *L;
    CHECK(odl_learner_init(&L, &cfg, f.base, &a, &d) == ODL_ERR_NOMEM);
    CHECK(strstr(d.msg, "needs") && strstr(d.msg, "available"));
    odl_arena_init(&a, buf, p.total);
    CHECK_OK(odl_learner_init(&L, &cfg, f.base, &a, &d));
    CHECK(a.used == p.total);
    /* a label for a new class (10) activates it */
    odl_rng r;
    odl_rng_seed(&r, 4, 4);
    CHECK_OK(odl_learner_seed_old(L, f.tr.x, f.tr.y, 500, &r, &d));
    odl_reason why;
    CHECK(odl_learner_feedback(L, f.te.x, 10, &why, &d) == ODL_OK);
    odl_learner_status st;
    odl_learner_get_status(L, &st);
    CHECK(st.active_classes == 11);
    free(buf);
    teardown(&f);
}

static void test_calibration(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_learner_cfg cfg = odl_learner_cfg_defaults();
    void *buf = NULL;
    odl_learner *L = make_learner(t, &f, &cfg, &buf);
    REQUIRE(L);
    odl_diag d;
    CHECK(odl_learner_calibrate(L, &d) == ODL_ERR_STATE); /* nothing marked */
    /* mark every prediction of class 6 (shirt, often confused) wrong when it is */
    int32_t marked = 0;
    for (int32_t k = 0; k < 1000; k++) {
        int32_t c;
        float conf;
        CHECK_OK(odl_learner_predict(L, f.te.x + (size_t)k * 784, &c, &conf, &d));
        if (c != f.te.y[k]) {
            odl_reason why;
            CHECK_OK(odl_learner_mark(L, f.te.x + (size_t)k * 784, 0, &why, &d));
            marked++;
        }
    }
    CHECK(marked > 0);
    odl_status s = odl_learner_calibrate(L, &d);
    odl_learner_status st;
    odl_learner_get_status(L, &st);
    odl_test_logf(t, "    calibration after %d wrong marks: %s", (int)marked, st.last_decision);
    CHECK(s == ODL_OK || s == ODL_EVENT_ROLLED_BACK);
    /* marks collect nothing: no held-out examples, so "new" is not measured */
    CHECK(st.last_new_n == 0 && st.last_old_n == cfg.guard_size && st.last_user_n == 0);
    CHECK(figures_consistent(&st));
    int moved = 0;
    for (int c = 0; c < 10; c++)
        moved += odl_learner_bias(L)[c] != 0.0f;
    CHECK(s == ODL_OK ? moved > 0 : moved == 0); /* rolled back means restored */
    free(buf);
    teardown(&f);
}

/* A device whose base runs elsewhere (an INT8 prefix) feeds latents: the
 * result must be exactly that of feeding the raw inputs. */
static void test_latent_api_matches_raw(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_learner_cfg cfg = odl_learner_cfg_defaults();
    cfg.drift = 0;
    void *b1 = NULL, *b2 = NULL;
    odl_mem_plan p;
    odl_diag d;
    CHECK_OK(odl_learner_plan(&cfg, f.base, &p, &d));
    b1 = malloc(p.total);
    b2 = malloc(p.total);
    odl_arena a1, a2;
    odl_arena_init(&a1, b1, p.total);
    odl_arena_init(&a2, b2, p.total);
    odl_learner *L1, *L2;
    CHECK_OK(odl_learner_init(&L1, &cfg, f.base, &a1, &d));
    CHECK_OK(odl_learner_init(&L2, &cfg, f.base, &a2, &d));
    const int32_t dim = odl_learner_dim(L2), b = odl_learner_boundary(L2);
    REQUIRE(dim == 64);
    float *z = malloc(sizeof(float) * 64 * 300);
    for (int32_t k = 0; k < 300; k += 30)
        CHECK_OK(odl_model_forward_range(f.base, 0, b, f.tr.x + (size_t)k * 784, 30, z + (size_t)k * 64, &d));
    odl_rng r1, r2;
    odl_rng_seed(&r1, 5, 5);
    odl_rng_seed(&r2, 5, 5);
    /* seeded in chunks: the guard reservoir must not care */
    CHECK_OK(odl_learner_seed_old(L1, f.tr.x, f.tr.y, 200, &r1, &d));
    CHECK_OK(odl_learner_seed_old_latent(L2, z, f.tr.y, 120, &r2, &d));
    CHECK_OK(odl_learner_seed_old_latent(L2, z + 120 * 64, f.tr.y + 120, 80, &r2, &d));
    for (int32_t k = 200; k < 300; k++) {
        odl_reason w1, w2;
        odl_status s1 = odl_learner_feedback(L1, f.tr.x + (size_t)k * 784, f.tr.y[k], &w1, &d);
        odl_status s2 = odl_learner_feedback_latent(L2, z + (size_t)k * 64, f.tr.y[k], &w2, &d);
        CHECK(s1 == s2 && w1 == w2);
    }
    CHECK(odl_learner_update(L1, &r1, &d) == odl_learner_update(L2, &r2, &d));
    size_t n1, n2;
    const float *h1 = odl_model_param_const(odl_learner_head(L1), 0, 0, &n1);
    const float *h2 = odl_model_param_const(odl_learner_head(L2), 0, 0, &n2);
    CHECK(n1 == n2 && memcmp(h1, h2, sizeof(float) * n1) == 0);
    int32_t c1, c2;
    float f1, f2;
    CHECK_OK(odl_learner_predict(L1, f.te.x, &c1, &f1, &d));
    CHECK_OK(odl_learner_predict_latent(L2, z, -1.0f, &c2, &f2, &d));
    free(z);
    free(b1);
    free(b2);
    teardown(&f);
}

/* A NaN or Inf in the seed data is refused (whole seed, with a message):
 * taken, it would poison the class statistics so that every good example
 * after it is refused as an outlier. */
static void test_seed_refuses_non_finite(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_learner_cfg cfg = odl_learner_cfg_defaults();
    void *buf = NULL;
    odl_learner *L = make_learner(t, &f, &cfg, &buf);
    REQUIRE(L);
    const int32_t n = 300;
    float *x = malloc(sizeof(float) * 784 * (size_t)n);
    REQUIRE(x);
    memcpy(x, f.tr.x, sizeof(float) * 784 * (size_t)n);
    odl_rng r;
    odl_rng_seed(&r, 6, 6);
    odl_diag d;
    x[3 * 784 + 100] = NAN;
    CHECK(odl_learner_seed_old(L, x, f.tr.y, n, &r, &d) == ODL_ERR_NUMERIC);
    CHECK(strstr(d.msg, "sample 3") && strstr(d.msg, "NaN"));
    x[3 * 784 + 100] = INFINITY;
    CHECK(odl_learner_seed_old(L, x, f.tr.y, n, &r, &d) == ODL_ERR_NUMERIC);
    CHECK(strstr(d.msg, "infinite"));
    /* latents too */
    const int32_t dim = odl_learner_dim(L);
    float *z = calloc((size_t)dim * 4, sizeof(float));
    REQUIRE(z);
    z[2 * (size_t)dim + 1] = -INFINITY;
    CHECK(odl_learner_seed_old_latent(L, z, f.tr.y, 4, &r, &d) == ODL_ERR_NUMERIC);
    free(z);
    /* nothing was taken: a clean seed then gives a learner that accepts
     * good examples (not all refused as outliers) */
    x[3 * 784 + 100] = 0.5f;
    CHECK_OK(odl_learner_seed_old(L, x, f.tr.y, n, &r, &d));
    int32_t accepted = 0;
    for (int32_t k = 0; k < 50; k++) {
        odl_reason why;
        if (odl_learner_feedback(L, f.te.x + (size_t)k * 784, f.te.y[k], &why, &d) == ODL_OK)
            accepted++;
    }
    CHECK(accepted > 25);
    free(x);
    free(buf);
    teardown(&f);
}

/* max_new + max_replay is an int32_t: INT32_MAX + 200 (the Python binding's
 * max_collected=2**31-1 with the default replay) is refused, not wrapped. */
static void test_adapt_capacity_overflow(odl_test_ctx *t)
{
    odl_adapt_cfg ac = odl_adapt_cfg_defaults();
    odl_mem_plan p;
    odl_diag d;
    odl_diag_clear(&d);
    CHECK(odl_adapt_plan_dims(16, 4, &ac, INT32_MAX, 200, &p, &d) == ODL_ERR_ARG);
    CHECK(strstr(d.msg, "sum to at most") != NULL);
    CHECK(odl_adapt_plan_dims(16, 4, &ac, 200, INT32_MAX, &p, &d) == ODL_ERR_ARG);
    CHECK_OK(odl_adapt_plan_dims(16, 4, &ac, 64, 200, &p, &d));
    (void)t;
}

/* Accuracy of the learner on samples [from, to) of ds. */
static float learner_acc(odl_learner *L, const odl_dataset *ds, int32_t from, int32_t to)
{
    int32_t ok = 0;
    for (int32_t k = from; k < to; k++) {
        int32_t c;
        float conf;
        odl_status s = odl_learner_predict(L, ds->x + (size_t)k * 784, &c, &conf, NULL);
        if (s != ODL_OK && s != ODL_EVENT_DRIFT)
            return -1.0f;
        ok += c == ds->y[k];
    }
    return (float)ok / (float)(to - from);
}

/* Feeds up to `want` accepted examples from [from, 1000) of ds, labels
 * shifted by `shift` classes (0: correct); confident contradictions are
 * confirmed by sending them again. Returns how many were accepted. */
static int32_t feed(odl_learner *L, const odl_dataset *ds, int32_t from, int32_t want, int32_t shift)
{
    int32_t n = 0;
    for (int32_t k = from; k < 1000 && n < want; k++) {
        odl_reason why;
        const int32_t y = (ds->y[k] + shift) % 10;
        odl_status s = odl_learner_feedback(L, ds->x + (size_t)k * 784, y, &why, NULL);
        if (s == ODL_EVENT_REJECTED && why == ODL_REASON_CONTRADICTS)
            s = odl_learner_feedback(L, ds->x + (size_t)k * 784, y, &why, NULL);
        n += s == ODL_OK;
    }
    return n;
}

/* Every strategy on real data: the user's images are moved 2 pixels right
 * (the base loses ~7 points); 60 correct labels must be accepted by the gate
 * and raise the drifted accuracy above the base's by a floor (the nearest
 * class mean cannot follow this drift: its gain is on new classes, below), and then a mislabelled batch must be rolled
 * back leaving the whole state exactly as it was. */
static void test_every_strategy(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_shift sh;
    odl_shift_parse("translate:2,0", &sh, NULL);
    odl_dataset user;
    odl_dataset_copy(&f.te, &user);
    odl_dataset_shift(&user, &sh);
    /* the gain each strategy must reach on the drifted evaluation samples */
    static const float min_gain[ODL_STRATEGY_COUNT] = {0.05f, 0.03f, 0.03f, 0.02f, -0.01f, 0.05f, 0.01f, 0.04f};
    for (int strat = 0; strat < ODL_STRATEGY_COUNT; strat++) {
        odl_learner_cfg cfg = odl_learner_cfg_for((odl_strategy)strat);
        void *buf = NULL;
        odl_learner *L = make_learner(t, &f, &cfg, &buf);
        REQUIRE(L);
        odl_diag d;
        odl_rng r;
        odl_rng_seed(&r, 3, 3);
        const float before = learner_acc(L, &user, 500, 1000);
        const float orig_before = learner_acc(L, &f.te, 500, 1000);
        const int32_t n_good = feed(L, &user, 100, 60, 0);
        odl_status s = odl_learner_update(L, &r, &d);
        odl_learner_status st;
        odl_learner_get_status(L, &st);
        const float after = learner_acc(L, &user, 500, 1000);
        const float orig_after = learner_acc(L, &f.te, 500, 1000);
        odl_mem_plan p;
        CHECK_OK(odl_learner_plan(&cfg, f.base, &p, &d));
        odl_test_logf(t, "    %-10s %7zu B  drifted %.3f -> %.3f  original %.3f -> %.3f  (%d fed) %s",
                      odl_strategy_name((odl_strategy)strat), p.total, (double)before, (double)after,
                      (double)orig_before, (double)orig_after, (int)n_good, st.last_decision);
        CHECK(st.strategy == strat);
        CHECK(s == ODL_OK && st.version == 1);
        CHECK(after >= before + min_gain[strat]);
        /* a mislabelled batch: rolled back, every prediction as before */
        int32_t cls_before[50], cls_after[50];
        for (int32_t k = 0; k < 50; k++) {
            float conf;
            CHECK(odl_learner_predict(L, user.x + (size_t)(500 + k) * 784, &cls_before[k], &conf, &d) >= 0);
        }
        const int32_t n_bad = feed(L, &user, 200, 40, 3);
        CHECK(n_bad >= 20);
        s = odl_learner_update(L, &r, &d);
        odl_learner_get_status(L, &st);
        odl_test_logf(t, "    %-10s mislabelled: %s", odl_strategy_name((odl_strategy)strat), st.last_decision);
        CHECK(s == ODL_EVENT_ROLLED_BACK && st.version == 1);
        for (int32_t k = 0; k < 50; k++) {
            float conf;
            CHECK(odl_learner_predict(L, user.x + (size_t)(500 + k) * 784, &cls_after[k], &conf, &d) >= 0);
        }
        CHECK(memcmp(cls_before, cls_after, sizeof cls_before) == 0);
        free(buf);
    }
    odl_dataset_free(&user);
    teardown(&f);
}

static size_t al16(size_t n) { return (n + 15) / 16 * 16; }

/* |a - b| <= tol, logged when not */
static int near(odl_test_ctx *t, const char *what, float a, float b, float tol)
{
    if (fabsf(a - b) <= tol)
        return 1;
    odl_test_logf(t, "    %s: %.3f (F32 guard) against %.3f (INT8 guard)", what, (double)a, (double)b);
    return 0;
}

/* INT8 guard sets (guard_dtype): the plan shrinks by exactly the latents'
 * three quarters, and the gate decides as with float guard sets. Replay and
 * LwF do not train on the guard sets, so their heads stay bit for bit the
 * same, and the guard figures may differ only where quantisation
 * (|z - read| <= max|z|/254) flips a near tie: 2 examples of 100 at most.
 * EWC takes its Fisher on the dequantised old guard set, so its head moves
 * a little: one more example of each set. */
static void test_int8_guard(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_shift sh;
    odl_shift_parse("translate:2,0", &sh, NULL);
    odl_dataset user;
    odl_dataset_copy(&f.te, &user);
    odl_dataset_shift(&user, &sh);
    const odl_strategy which[] = {ODL_STRATEGY_REPLAY, ODL_STRATEGY_LWF, ODL_STRATEGY_EWC};
    for (size_t w = 0; w < sizeof which / sizeof which[0]; w++) {
        odl_learner_cfg c32 = odl_learner_cfg_for(which[w]), c8 = c32;
        c8.guard_dtype = ODL_REPLAY_INT8;
        odl_mem_plan p32, p8;
        odl_diag d;
        CHECK_OK(odl_learner_plan(&c32, f.base, &p32, &d));
        CHECK_OK(odl_learner_plan(&c8, f.base, &p8, &d));
        void *b32 = NULL, *b8 = NULL;
        odl_learner *L32 = make_learner(t, &f, &c32, &b32), *L8 = make_learner(t, &f, &c8, &b8);
        REQUIRE(L32 && L8);
        const size_t dim = (size_t)odl_learner_dim(L8), g = (size_t)c8.guard_size;
        /* two sets: float latents -> INT8 latents + a scale each; one float latent of scratch */
        CHECK(p32.bytes[ODL_MEM_BUFFERS] - p8.bytes[ODL_MEM_BUFFERS] ==
              2 * (al16(sizeof(float) * dim * g) - al16(dim * g) - al16(sizeof(float) * g)));
        CHECK(p8.bytes[ODL_MEM_SCRATCH] - p32.bytes[ODL_MEM_SCRATCH] == al16(sizeof(float) * dim));
        odl_test_logf(t, "    %-7s plan %zu B with F32 guard sets of %zu, %zu B with INT8", odl_strategy_name(which[w]),
                      p32.total, g, p8.total);
        odl_learner *Ls[2] = {L32, L8};
        odl_learner_status st[2];
        odl_status s[2];
        float acc[2];
        /* two good updates (the second is measured on the first's held-out
         * examples too), then a mislabelled one */
        for (int round = 0; round < 3; round++) {
            for (int k = 0; k < 2; k++) {
                odl_rng r;
                odl_rng_seed(&r, 3, (uint64_t)(3 + round));
                CHECK(feed(Ls[k], &user, 100 + 150 * round, round < 2 ? 50 : 40, round < 2 ? 0 : 3) >= 20);
                s[k] = odl_learner_update(Ls[k], &r, &d);
                odl_learner_get_status(Ls[k], &st[k]);
                acc[k] = learner_acc(Ls[k], &user, 500, 1000);
            }
            odl_test_logf(t, "    %-7s F32:  %s", odl_strategy_name(which[w]), st[0].last_decision);
            odl_test_logf(t, "    %-7s INT8: %s", odl_strategy_name(which[w]), st[1].last_decision);
            CHECK(s[0] == s[1]); /* the same decision; the first update is good, the last mislabelled */
            CHECK(round == 1 || s[0] == (round == 0 ? ODL_OK : ODL_EVENT_ROLLED_BACK));
            CHECK(st[0].last_old_n == st[1].last_old_n && st[0].last_user_n == st[1].last_user_n &&
                  st[0].last_new_n == st[1].last_new_n && st[1].last_old_n == (int32_t)g);
            /* EWC's heads differ a little from the first update on: one
             * example of a guard set either way, beside quantisation's 2 */
            const int ewc = which[w] == ODL_STRATEGY_EWC;
            const float tol_old = 0.02f + (ewc ? 1.0f / (float)g : 0.0f);
            const float tol_user = 0.02f + (ewc && st[0].last_user_n ? 1.0f / (float)st[0].last_user_n : 0.0f);
            CHECK(near(t, "old before", st[0].last_old_before, st[1].last_old_before, tol_old));
            CHECK(near(t, "old after", st[0].last_old_after, st[1].last_old_after, tol_old));
            CHECK(near(t, "user before", st[0].last_user_before, st[1].last_user_before, tol_user));
            CHECK(near(t, "user after", st[0].last_user_after, st[1].last_user_after, tol_user));
            if (which[w] == ODL_STRATEGY_EWC) {
                CHECK(near(t, "new after", st[0].last_new_after, st[1].last_new_after, 0.1f));
                CHECK(near(t, "drifted accuracy", acc[0], acc[1], 0.01f));
            } else {
                CHECK(st[0].last_new_before == st[1].last_new_before && st[0].last_new_after == st[1].last_new_after);
                size_t n0, n1;
                const float *w0 = odl_model_param_const(odl_learner_head(L32), 0, 0, &n0);
                const float *w1 = odl_model_param_const(odl_learner_head(L8), 0, 0, &n1);
                CHECK(n0 == n1 && memcmp(w0, w1, sizeof(float) * n0) == 0);
                CHECK(acc[0] == acc[1]);
            }
        }
        free(b32);
        free(b8);
    }
    /* a dtype that is neither */
    odl_learner_cfg bad = odl_learner_cfg_defaults();
    bad.guard_dtype = 2;
    odl_mem_plan p;
    odl_diag d;
    CHECK(odl_learner_plan(&bad, f.base, &p, &d) == ODL_ERR_ARG && strstr(d.msg, "guard_dtype"));
    odl_dataset_free(&user);
    teardown(&f);
}

/* The gate's verdict from a decision's figures (the rules of odl/learner.h),
 * computed here independently: 1 = accept. */
static int gate_verdict(const odl_learner_status *st, const odl_gate_policy *g)
{
    const float k = (float)g->noise_examples;
    const float tn = st->last_new_n ? k / (float)st->last_new_n : 0.0f;
    const float to = st->last_old_n ? k / (float)st->last_old_n : 0.0f;
    const float tu = st->last_user_n ? k / (float)st->last_user_n : 0.0f;
    if (st->last_new_n && st->last_new_after < g->new_target - tn)
        return 0;
    if (st->last_old_n && st->last_old_after < st->last_old_before - g->max_old_drop - to)
        return 0;
    if (st->last_user_n && st->last_user_after < st->last_user_before - g->max_old_drop - tu)
        return 0;
    const float w = g->new_weight;
    if (g->require_avg_not_worse && st->last_old_n && st->last_new_n &&
        w * st->last_new_after + (1 - w) * st->last_old_after <
            w * st->last_new_before + (1 - w) * st->last_old_before - 1e-6f - (w * tn + (1 - w) * to))
        return 0;
    return 1;
}

/* noise_examples: on small updates (8 collected, 2 held out) the same
 * figures are judged with and without one example's worth of tolerance per
 * set; each verdict must follow the stated rules, the tolerance must save
 * some update a single example vetoed, and a mislabelled batch is still
 * rolled back with it. */
static void test_gate_noise(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_shift sh;
    odl_shift_parse("translate:2,0", &sh, NULL);
    odl_dataset user;
    odl_dataset_copy(&f.te, &user);
    odl_dataset_shift(&user, &sh);
    odl_learner_cfg c0 = odl_learner_cfg_for(ODL_STRATEGY_EWC_ONLINE);
    c0.max_collected = 8;
    c0.guard_size = 50;
    odl_learner_cfg c1 = c0;
    c1.gate.noise_examples = 1;
    int32_t saved = 0, rounds = 0;
    for (int32_t round = 0; round < 10; round++) {
        void *b0 = NULL, *b1 = NULL;
        odl_learner *L0 = make_learner(t, &f, &c0, &b0), *L1 = make_learner(t, &f, &c1, &b1);
        REQUIRE(L0 && L1);
        odl_learner *Ls[2] = {L0, L1};
        odl_learner_status st[2];
        odl_status s[2];
        for (int k = 0; k < 2; k++) {
            odl_rng r;
            odl_rng_seed(&r, 5, (uint64_t)round);
            feed(Ls[k], &user, 100 + 40 * round, 8, 0);
            s[k] = odl_learner_update(Ls[k], &r, NULL);
            odl_learner_get_status(Ls[k], &st[k]);
        }
        /* the same training, the same figures; verdicts by the rules */
        CHECK(st[0].last_old_after == st[1].last_old_after && st[0].last_new_after == st[1].last_new_after &&
              st[0].last_new_n == st[1].last_new_n);
        CHECK((s[0] == ODL_OK) == gate_verdict(&st[0], &c0.gate));
        CHECK((s[1] == ODL_OK) == gate_verdict(&st[1], &c1.gate));
        CHECK(!(s[0] == ODL_OK && s[1] != ODL_OK)); /* tolerance only ever accepts more */
        saved += s[0] != ODL_OK && s[1] == ODL_OK;
        rounds++;
        if (s[0] != s[1])
            odl_test_logf(t, "    %s | with noise_examples 1: %s", st[0].last_decision, st[1].last_decision);
        free(b0);
        free(b1);
    }
    odl_test_logf(t, "    %d of %d small updates vetoed by one example were accepted with the tolerance", (int)saved,
                  (int)rounds);
    CHECK(saved >= 1);
    /* a mislabelled batch is rolled back with the tolerance too */
    c1.max_collected = 40;
    void *b = NULL;
    odl_learner *L = make_learner(t, &f, &c1, &b);
    REQUIRE(L);
    odl_rng r;
    odl_rng_seed(&r, 6, 6);
    CHECK(feed(L, &user, 100, 40, 3) >= 20);
    odl_learner_status st;
    CHECK(odl_learner_update(L, &r, NULL) == ODL_EVENT_ROLLED_BACK);
    odl_learner_get_status(L, &st);
    odl_test_logf(t, "    mislabelled, noise_examples 1: %s", st.last_decision);
    free(b);
    /* out of range */
    c1.gate.noise_examples = -1;
    odl_mem_plan p;
    odl_diag d;
    CHECK(odl_learner_plan(&c1, f.base, &p, &d) == ODL_ERR_ARG && strstr(d.msg, "noise_examples"));
    odl_dataset_free(&user);
    teardown(&f);
}

/* New classes for the class-statistics heads: the device ships the
 * statistics of classes 0..7 only; the user labels examples of every class.
 * Classes 8 and 9 must then be recognised (from ~20 examples each) and the
 * accuracy over all classes must rise. */
static void test_stats_new_classes(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    float *ox = malloc(sizeof(float) * 784 * 2000);
    int32_t *oy = malloc(sizeof(int32_t) * 2000);
    REQUIRE(ox && oy);
    int32_t n_old = 0;
    for (int32_t k = 0; k < f.tr.n && n_old < 2000; k++)
        if (f.tr.y[k] < 8) {
            memcpy(ox + (size_t)n_old * 784, f.tr.x + (size_t)k * 784, sizeof(float) * 784);
            oy[n_old++] = f.tr.y[k];
        }
    const odl_strategy which[2] = {ODL_STRATEGY_NCM, ODL_STRATEGY_SLDA};
    for (int w = 0; w < 2; w++) {
        odl_learner_cfg cfg = odl_learner_cfg_for(which[w]);
        cfg.max_class_share = 1.0f; /* the new classes come first */
        odl_mem_plan p;
        odl_diag d;
        CHECK_OK(odl_learner_plan(&cfg, f.base, &p, &d));
        void *buf = malloc(p.total);
        odl_arena a;
        odl_arena_init(&a, buf, p.total);
        odl_learner *L;
        REQUIRE(odl_learner_init(&L, &cfg, f.base, &a, &d) == ODL_OK);
        CHECK(a.used == p.total);
        odl_rng r;
        odl_rng_seed(&r, 7, 7);
        CHECK_OK(odl_learner_seed_old(L, ox, oy, n_old, &r, &d));
        const float before = learner_acc(L, &f.te, 500, 1000);
        int32_t fed = 0;
        for (int32_t k = 0; k < 500 && fed < 60; k++) {
            odl_reason why;
            if (f.te.y[k] >= 8 || k % 8 == 0)
                fed += odl_learner_feedback(L, f.te.x + (size_t)k * 784, f.te.y[k], &why, &d) == ODL_OK;
        }
        odl_status s = odl_learner_update(L, &r, &d);
        odl_learner_status st;
        odl_learner_get_status(L, &st);
        const float after = learner_acc(L, &f.te, 500, 1000);
        int32_t ok_new = 0, n_new = 0;
        for (int32_t k = 500; k < 1000; k++)
            if (f.te.y[k] >= 8) {
                int32_t c;
                float conf;
                CHECK(odl_learner_predict(L, f.te.x + (size_t)k * 784, &c, &conf, &d) >= 0);
                ok_new += c == f.te.y[k];
                n_new++;
            }
        const float acc_new = (float)ok_new / (float)n_new;
        odl_test_logf(t, "    %s new classes: all %.3f -> %.3f, classes 8-9 %.3f (%d fed) %s",
                      odl_strategy_name(which[w]), (double)before, (double)after, (double)acc_new, (int)fed,
                      st.last_decision);
        CHECK(s == ODL_OK);
        CHECK(after >= before + 0.1f);
        CHECK(acc_new >= 0.7f);
        free(buf);
    }
    free(ox);
    free(oy);
    teardown(&f);
}

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static odl_status mb_write(void *ctx, const void *data, size_t n)
{
    membuf *b = ctx;
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + n)
            c *= 2;
        uint8_t *q = realloc(b->p, c);
        if (!q)
            return ODL_ERR_IO;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return ODL_OK;
}

/* The strategy's state goes through a .odl file: a learner seeded
 * differently, given the file, predicts exactly as the saved one, and a
 * damaged file changes nothing. */
static void test_state_round_trip(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    const odl_strategy which[3] = {ODL_STRATEGY_EWC_ONLINE, ODL_STRATEGY_NCM, ODL_STRATEGY_SLDA};
    for (int w = 0; w < 3; w++) {
        odl_learner_cfg cfg = odl_learner_cfg_for(which[w]);
        void *b1 = NULL;
        odl_learner *L1 = make_learner(t, &f, &cfg, &b1);
        REQUIRE(L1);
        odl_rng r;
        odl_rng_seed(&r, 8, 8);
        odl_diag d;
        feed(L1, &f.te, 0, 60, 0);
        CHECK(odl_learner_update(L1, &r, &d) >= 0); /* accepted or not: the state is what it is */
        membuf mb = {0};
        odl_writer wr = {mb_write, &mb, 0};
        CHECK_OK(odl_state_save_model_with_state(odl_learner_head(L1), NULL, 0, odl_learner_replay(L1),
                                                 odl_learner_ewc(L1), odl_learner_ncm(L1), odl_learner_slda(L1),
                                                 &wr, &d));
        /* a second device: the same configuration, other old data */
        odl_mem_plan p;
        CHECK_OK(odl_learner_plan(&cfg, f.base, &p, &d));
        void *b2 = malloc(p.total);
        odl_arena a;
        odl_arena_init(&a, b2, p.total);
        odl_learner *L2;
        REQUIRE(odl_learner_init(&L2, &cfg, f.base, &a, &d) == ODL_OK);
        CHECK_OK(odl_learner_seed_old(L2, f.tr.x + 784 * 3000, f.tr.y + 3000, 500, &r, &d));
        int differ = 0;
        if (which[w] == ODL_STRATEGY_EWC_ONLINE)
            differ = memcmp(odl_ewc_fisher(odl_learner_ewc(L1)), odl_ewc_fisher(odl_learner_ewc(L2)),
                            sizeof(float) * odl_ewc_n_params(odl_learner_ewc(L1))) != 0;
        else
            for (int32_t k = 0; k < 200; k++) {
                int32_t c1, c2;
                float f1, f2;
                odl_learner_predict(L1, f.te.x + (size_t)(500 + k) * 784, &c1, &f1, NULL);
                odl_learner_predict(L2, f.te.x + (size_t)(500 + k) * 784, &c2, &f2, NULL);
                differ += c1 != c2 || f1 != f2;
            }
        CHECK(differ); /* the test can tell the two apart before the load */
        /* a flipped byte: refused, nothing changed */
        mb.p[mb.len / 2] ^= 0x40;
        CHECK(odl_learner_load_state(L2, mb.p, mb.len, &d) != ODL_OK);
        mb.p[mb.len / 2] ^= 0x40;
        CHECK_OK(odl_learner_load_state(L2, mb.p, mb.len, &d));
        if (which[w] == ODL_STRATEGY_EWC_ONLINE) {
            const size_t n = odl_ewc_n_params(odl_learner_ewc(L1));
            CHECK(memcmp(odl_ewc_fisher(odl_learner_ewc(L1)), odl_ewc_fisher(odl_learner_ewc(L2)),
                         sizeof(float) * n) == 0);
            CHECK(memcmp(odl_ewc_anchor(odl_learner_ewc(L1)), odl_ewc_anchor(odl_learner_ewc(L2)),
                         sizeof(float) * n) == 0);
        } else {
            int32_t same = 0;
            for (int32_t k = 0; k < 200; k++) {
                int32_t c1, c2;
                float f1, f2;
                odl_learner_predict(L1, f.te.x + (size_t)(500 + k) * 784, &c1, &f1, NULL);
                odl_learner_predict(L2, f.te.x + (size_t)(500 + k) * 784, &c2, &f2, NULL);
                /* NCM's confidence scale comes from the device's own latent statistics */
                same += c1 == c2 && (which[w] == ODL_STRATEGY_NCM || f1 == f2);
            }
            CHECK(same == 200);
        }
        odl_test_logf(t, "    %s: %zu bytes of file", odl_strategy_name(which[w]), mb.len);
        free(mb.p);
        free(b1);
        free(b2);
    }
    teardown(&f);
}

/* Shadow evaluation: a good update waits as a candidate and is promoted
 * after 40 labelled examples; a bad one (let through a permissive gate) is
 * dropped, leaving the current head exactly as it was. */
static void test_shadow(odl_test_ctx *t)
{
    fixture f;
    REQUIRE(setup(t, &f));
    odl_shift sh;
    odl_shift_parse("translate:2,0", &sh, NULL);
    odl_dataset user;
    odl_dataset_copy(&f.te, &user);
    odl_dataset_shift(&user, &sh);
    odl_learner_cfg cfg = odl_learner_cfg_defaults();
    cfg.shadow_n = 40;
    void *buf = NULL;
    odl_learner *L = make_learner(t, &f, &cfg, &buf);
    REQUIRE(L);
    odl_rng r;
    odl_rng_seed(&r, 9, 9);
    odl_diag d;
    feed(L, &user, 100, 60, 0);
    const float base_acc = learner_acc(L, &user, 500, 1000);
    CHECK_OK(odl_learner_update(L, &r, &d));
    odl_learner_status st;
    odl_learner_get_status(L, &st);
    CHECK(st.shadow_active == 1 && st.version == 0);
    CHECK(learner_acc(L, &user, 500, 1000) == base_acc); /* the candidate does not predict yet */
    CHECK(odl_learner_update(L, &r, &d) == ODL_ERR_STATE && strstr(d.msg, "shadow"));
    feed(L, &user, 200, 40, 0);
    odl_learner_get_status(L, &st);
    odl_test_logf(t, "    good: %s", st.shadow_decision);
    CHECK(st.shadow_active == 0 && st.shadow_promoted == 1 && st.version == 1);
    CHECK(learner_acc(L, &user, 500, 1000) > base_acc + 0.03f);
    free(buf);

    /* a mislabelled update the gate lets through */
    cfg.gate.new_target = 0.0f;
    cfg.gate.max_old_drop = 1.0f;
    cfg.gate.require_avg_not_worse = 0;
    L = make_learner(t, &f, &cfg, &buf);
    REQUIRE(L);
    feed(L, &user, 100, 60, 3);
    CHECK_OK(odl_learner_update(L, &r, &d));
    odl_learner_get_status(L, &st);
    CHECK(st.shadow_active == 1);
    size_t nw;
    const float *w0 = odl_model_param_const(odl_learner_head(L), 0, 0, &nw);
    REQUIRE(nw == 640);
    float before[640];
    memcpy(before, w0, sizeof before);
    feed(L, &user, 200, 40, 0);
    odl_learner_get_status(L, &st);
    odl_test_logf(t, "    bad: %s", st.shadow_decision);
    CHECK(st.shadow_active == 0 && st.shadow_dropped == 1 && st.version == 0);
    CHECK(memcmp(before, odl_model_param_const(odl_learner_head(L), 0, 0, &nw), sizeof before) == 0);
    free(buf);
    odl_dataset_free(&user);
    teardown(&f);
}

static const odl_test_case cases[] = {
    {"state_round_trip", test_state_round_trip},
    {"shadow", test_shadow},
    {"stats_new_classes", test_stats_new_classes},
    {"every_strategy", test_every_strategy},
    {"int8_guard", test_int8_guard},
    {"gate_noise", test_gate_noise},
    {"adapt_capacity_overflow", test_adapt_capacity_overflow},
    {"seed_refuses_non_finite", test_seed_refuses_non_finite},
    {"latent_api_matches_raw", test_latent_api_matches_raw},
    {"gates_and_rollback", test_gates_and_rollback},
    {"plan_refuses_small_arena", test_plan_refuses_small_arena},
    {"calibration", test_calibration},
};

TEST_MAIN(cases)
