/* Gradient-free heads (odl/classmean.h): NCM and streaming LDA against a
 * NumPy reference, one-pass learning of a new class without disturbing old
 * ones, order independence, exact plans, refusal of bad input with the state
 * left as it was, and (if the data are installed) Fashion-MNIST accuracy
 * floors on raw pixels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <sys/stat.h>

#include "harness.h"
#include "odl/classmean.h"
#include "odl/data.h"
#include "odl/odl.h"
#include "golden/golden_classmean.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct ncm_box {
    void *buf;
    odl_arena arena;
    odl_ncm *h;
} ncm_box;

typedef struct slda_box {
    void *buf;
    odl_arena arena;
    odl_slda *h;
} slda_box;

static odl_status ncm_new(ncm_box *b, int32_t dim, int32_t classes)
{
    odl_mem_plan p;
    odl_diag d;
    memset(b, 0, sizeof *b);
    odl_status s = odl_ncm_plan(dim, classes, &p, &d);
    if (s != ODL_OK)
        return s;
    b->buf = malloc(p.total);
    odl_arena_init(&b->arena, b->buf, p.total);
    return odl_ncm_init(&b->h, dim, classes, &b->arena, &d);
}

static odl_status slda_new(slda_box *b, int32_t dim, int32_t classes, float shrink)
{
    odl_mem_plan p;
    odl_diag d;
    memset(b, 0, sizeof *b);
    odl_status s = odl_slda_plan(dim, classes, &p, &d);
    if (s != ODL_OK)
        return s;
    b->buf = malloc(p.total);
    odl_arena_init(&b->arena, b->buf, p.total);
    return odl_slda_init(&b->h, dim, classes, shrink, &b->arena, &d);
}

static double max_abs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i]) > m)
            m = fabs((double)a[i]);
    return m;
}

/* Max |a - b| over n, relative to max(1, max |b|). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double m = 0.0, s = max_abs(b, n);
    if (s < 1.0)
        s = 1.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (e > m)
            m = e;
    }
    return m / s;
}

/* A synthetic set of well-separated classes: class k is centred at 6 e_k
 * (+1 on the last dimension), with unit-ish noise whose scale differs per
 * dimension. */
#define SYN_D 8
#define SYN_C 4
static void syn_sample(odl_rng *r, int32_t k, float *z)
{
    for (int32_t i = 0; i < SYN_D; i++)
        z[i] = (i == k ? 6.0f : 0.0f) + (i == SYN_D - 1 ? 1.0f : 0.0f) +
               odl_rng_normal(r) * (0.5f + 0.1f * (float)i);
}

/* ---- golden: NCM -------------------------------------------------------- */

/* Tolerances: means are a running average of ~15 float32 samples of size
 * ~5, so float rounding leaves ~1e-6 relative; scores are squared distances
 * O(10..100) computed in double from float means. 1e-5 relative covers both
 * with a wide margin while any formula error is O(1e-1) or more. */
#define TOL_STATS 1e-5
/* SLDA W, b, scores go through a float Cholesky of a matrix with condition
 * number ~40 (recorded in the golden header): expected error ~cond * 1e-7. */
#define TOL_SLDA 2e-5

static void test_golden_ncm(odl_test_ctx *t)
{
    ncm_box b;
    CHECK_OK(ncm_new(&b, GCM_DIM, GCM_MAX_CLASSES));
    for (int32_t i = 0; i < GCM_N; i++)
        CHECK_OK(odl_ncm_add(b.h, GCM_X + (size_t)i * GCM_DIM, GCM_Y[i]));
    for (int32_t c = 0; c < GCM_MAX_CLASSES; c++)
        CHECK(odl_ncm_count(b.h, c) == GCM_COUNTS[c]);
    double e = rel_err(odl_ncm_means(b.h), GCM_MEANS, GCM_MAX_CLASSES * GCM_DIM);
    odl_test_logf(t, "    means rel. error %.3g", e);
    CHECK(e <= TOL_STATS);
    double worst = 0.0;
    for (int32_t k = 0; k < GCM_N_TEST; k++) {
        float s[GCM_MAX_CLASSES];
        int32_t cls = -1;
        CHECK_OK(odl_ncm_predict(b.h, GCM_TEST_X + (size_t)k * GCM_DIM, &cls, s));
        CHECK(cls == GCM_NCM_PRED[k]);
        double ek = rel_err(s, GCM_NCM_SCORES + (size_t)k * GCM_CLASSES_SEEN, GCM_CLASSES_SEEN);
        if (ek > worst)
            worst = ek;
        CHECK(isinf(s[GCM_MAX_CLASSES - 1]) && s[GCM_MAX_CLASSES - 1] < 0); /* never seen */
        int32_t cls2 = -1;
        CHECK_OK(odl_ncm_predict(b.h, GCM_TEST_X + (size_t)k * GCM_DIM, &cls2, NULL));
        CHECK(cls2 == cls);
    }
    odl_test_logf(t, "    scores rel. error %.3g", worst);
    CHECK(worst <= TOL_STATS);
    free(b.buf);
}

/* ---- golden: SLDA ------------------------------------------------------- */

static void test_golden_slda(odl_test_ctx *t)
{
    slda_box b;
    odl_diag d;
    CHECK_OK(slda_new(&b, GCM_DIM, GCM_MAX_CLASSES, GCM_SHRINKAGE));
    CHECK(odl_slda_fit(b.h, &d) == ODL_ERR_STATE); /* nothing added */
    for (int32_t i = 0; i < GCM_N; i++)
        CHECK_OK(odl_slda_add(b.h, GCM_X + (size_t)i * GCM_DIM, GCM_Y[i]));
    for (int32_t c = 0; c < GCM_MAX_CLASSES; c++)
        CHECK(odl_slda_count(b.h, c) == GCM_COUNTS[c]);
    CHECK(rel_err(odl_slda_means(b.h), GCM_MEANS, GCM_MAX_CLASSES * GCM_DIM) <= TOL_STATS);
    float cov[GCM_DIM * GCM_DIM];
    CHECK_OK(odl_slda_covariance(b.h, cov));
    double ec = rel_err(cov, GCM_COV, GCM_DIM * GCM_DIM);
    odl_test_logf(t, "    streaming covariance vs batch within-class (1/N): rel. error %.3g", ec);
    CHECK(ec <= TOL_STATS);
    CHECK(odl_slda_stale(b.h) && odl_slda_weights(b.h) == NULL);
    CHECK_OK(odl_slda_fit(b.h, &d));
    CHECK(!odl_slda_stale(b.h));
    const float *W = odl_slda_weights(b.h), *B = odl_slda_bias(b.h);
    REQUIRE(W && B);
    double ew = rel_err(W, GCM_W, GCM_CLASSES_SEEN * GCM_DIM);
    double eb = rel_err(B, GCM_B, GCM_CLASSES_SEEN);
    odl_test_logf(t, "    W rel. error %.3g, b rel. error %.3g", ew, eb);
    CHECK(ew <= TOL_SLDA && eb <= TOL_SLDA);
    for (int32_t i = 0; i < GCM_DIM; i++) /* unseen class: zero row */
        CHECK(W[(size_t)(GCM_MAX_CLASSES - 1) * GCM_DIM + i] == 0.0f);
    double worst = 0.0;
    for (int32_t k = 0; k < GCM_N_TEST; k++) {
        float s[GCM_MAX_CLASSES];
        int32_t cls = -1;
        CHECK_OK(odl_slda_predict(b.h, GCM_TEST_X + (size_t)k * GCM_DIM, &cls, s));
        CHECK(cls == GCM_SLDA_PRED[k]);
        double ek = rel_err(s, GCM_SLDA_SCORES + (size_t)k * GCM_CLASSES_SEEN, GCM_CLASSES_SEEN);
        if (ek > worst)
            worst = ek;
        CHECK(isinf(s[GCM_MAX_CLASSES - 1]) && s[GCM_MAX_CLASSES - 1] < 0);
    }
    odl_test_logf(t, "    scores rel. error %.3g", worst);
    CHECK(worst <= TOL_SLDA);

    /* predict fits a stale head by itself: a fresh head, no explicit fit */
    slda_box b2;
    CHECK_OK(slda_new(&b2, GCM_DIM, GCM_MAX_CLASSES, GCM_SHRINKAGE));
    for (int32_t i = 0; i < GCM_N; i++)
        CHECK_OK(odl_slda_add(b2.h, GCM_X + (size_t)i * GCM_DIM, GCM_Y[i]));
    int32_t cls = -1;
    CHECK_OK(odl_slda_predict(b2.h, GCM_TEST_X, &cls, NULL));
    CHECK(cls == GCM_SLDA_PRED[0] && !odl_slda_stale(b2.h));
    /* an add marks it stale again */
    CHECK_OK(odl_slda_add(b2.h, GCM_X, GCM_Y[0]));
    CHECK(odl_slda_stale(b2.h) && odl_slda_weights(b2.h) == NULL);
    free(b2.buf);
    free(b.buf);
}

/* ---- one pass over a new class ----------------------------------------- */

#define NEW_TRAIN 40
#define NEW_TEST 30

static void test_new_class_one_pass(odl_test_ctx *t)
{
    ncm_box n;
    slda_box s;
    CHECK_OK(ncm_new(&n, SYN_D, SYN_C));
    CHECK_OK(slda_new(&s, SYN_D, SYN_C, ODL_SLDA_DEFAULT_SHRINKAGE));
    odl_rng r;
    odl_rng_seed(&r, 11, 3);
    float z[SYN_D];
    for (int32_t k = 0; k < SYN_C - 1; k++)
        for (int32_t i = 0; i < NEW_TRAIN; i++) {
            syn_sample(&r, k, z);
            CHECK_OK(odl_ncm_add(n.h, z, k));
            CHECK_OK(odl_slda_add(s.h, z, k));
        }
    /* test set: all SYN_C classes */
    static float tx[SYN_C * NEW_TEST][SYN_D];
    int32_t ty[SYN_C * NEW_TEST];
    for (int32_t k = 0; k < SYN_C; k++)
        for (int32_t i = 0; i < NEW_TEST; i++) {
            syn_sample(&r, k, tx[k * NEW_TEST + i]);
            ty[k * NEW_TEST + i] = k;
        }
    const int32_t n_old = (SYN_C - 1) * NEW_TEST;
    int32_t pn_before[SYN_C * NEW_TEST], ps_before[SYN_C * NEW_TEST];
    int32_t acc_n = 0, acc_s = 0;
    for (int32_t i = 0; i < n_old; i++) {
        CHECK_OK(odl_ncm_predict(n.h, tx[i], &pn_before[i], NULL));
        CHECK_OK(odl_slda_predict(s.h, tx[i], &ps_before[i], NULL));
        acc_n += pn_before[i] == ty[i];
        acc_s += ps_before[i] == ty[i];
    }
    float old_means[SYN_C * SYN_D];
    memcpy(old_means, odl_ncm_means(n.h), sizeof old_means);
    float old_smeans[SYN_C * SYN_D];
    memcpy(old_smeans, odl_slda_means(s.h), sizeof old_smeans);

    /* the new class, one pass */
    const int32_t k_new = SYN_C - 1;
    for (int32_t i = 0; i < NEW_TRAIN; i++) {
        syn_sample(&r, k_new, z);
        CHECK_OK(odl_ncm_add(n.h, z, k_new));
        CHECK_OK(odl_slda_add(s.h, z, k_new));
    }
    CHECK(odl_ncm_count(n.h, k_new) == NEW_TRAIN && odl_slda_count(s.h, k_new) == NEW_TRAIN);
    /* old means are untouched, bit for bit */
    CHECK(memcmp(old_means, odl_ncm_means(n.h), sizeof(float) * (SYN_C - 1) * SYN_D) == 0);
    CHECK(memcmp(old_smeans, odl_slda_means(s.h), sizeof(float) * (SYN_C - 1) * SYN_D) == 0);
    int32_t new_n = 0, new_s = 0, acc_n2 = 0, acc_s2 = 0, changed_n = 0, changed_s = 0;
    for (int32_t i = 0; i < SYN_C * NEW_TEST; i++) {
        int32_t cn, cs;
        CHECK_OK(odl_ncm_predict(n.h, tx[i], &cn, NULL));
        CHECK_OK(odl_slda_predict(s.h, tx[i], &cs, NULL));
        if (i >= n_old) {
            new_n += cn == k_new;
            new_s += cs == k_new;
            continue;
        }
        acc_n2 += cn == ty[i];
        acc_s2 += cs == ty[i];
        changed_n += cn != pn_before[i];
        changed_s += cs != ps_before[i];
        /* NCM: an old-class prediction can only move to the new class */
        CHECK(cn == pn_before[i] || cn == k_new);
    }
    odl_test_logf(t, "    old-class accuracy NCM %d/%d -> %d/%d, SLDA %d/%d -> %d/%d; "
                     "new class NCM %d/%d, SLDA %d/%d",
                  (int)acc_n, (int)n_old, (int)acc_n2, (int)n_old, (int)acc_s, (int)n_old,
                  (int)acc_s2, (int)n_old, (int)new_n, NEW_TEST, (int)new_s, NEW_TEST);
    CHECK(acc_n == n_old && acc_s == n_old); /* well separated: perfect before */
    CHECK(acc_n2 == acc_n && acc_s2 == acc_s);
    CHECK(changed_n == 0 && changed_s == 0);
    CHECK(new_n == NEW_TEST && new_s == NEW_TEST);
    free(n.buf);
    free(s.buf);
}

/* ---- order independence ------------------------------------------------- */

#define ORD_N 200

static void test_order_independence(odl_test_ctx *t)
{
    static float x[ORD_N][SYN_D];
    int32_t y[ORD_N];
    uint32_t perm[ORD_N];
    odl_rng r;
    odl_rng_seed(&r, 5, 9);
    for (int32_t i = 0; i < ORD_N; i++) {
        y[i] = (int32_t)odl_rng_below(&r, SYN_C);
        syn_sample(&r, y[i], x[i]);
        perm[i] = (uint32_t)i;
    }
    odl_rng_shuffle_u32(&r, perm, ORD_N);
    ncm_box n1, n2;
    slda_box s1, s2;
    CHECK_OK(ncm_new(&n1, SYN_D, SYN_C));
    CHECK_OK(ncm_new(&n2, SYN_D, SYN_C));
    CHECK_OK(slda_new(&s1, SYN_D, SYN_C, ODL_SLDA_DEFAULT_SHRINKAGE));
    CHECK_OK(slda_new(&s2, SYN_D, SYN_C, ODL_SLDA_DEFAULT_SHRINKAGE));
    for (int32_t i = 0; i < ORD_N; i++) {
        CHECK_OK(odl_ncm_add(n1.h, x[i], y[i]));
        CHECK_OK(odl_slda_add(s1.h, x[i], y[i]));
        CHECK_OK(odl_ncm_add(n2.h, x[perm[i]], y[perm[i]]));
        CHECK_OK(odl_slda_add(s2.h, x[perm[i]], y[perm[i]]));
    }
    /* Tolerance: the running mean of ~50 float samples of size <= ~10 in two
     * orders; each update rounds at ~FLT_EPSILON * |mean|, so the orders
     * differ by a few ulps of the data scale (measured: ~1 ulp). */
    const double scale = max_abs(&x[0][0], (size_t)ORD_N * SYN_D);
    const double tol = 8.0 * FLT_EPSILON * scale;
    double em = 0.0, es = 0.0;
    for (int32_t i = 0; i < SYN_C * SYN_D; i++) {
        em = fmax(em, fabs((double)odl_ncm_means(n1.h)[i] - odl_ncm_means(n2.h)[i]));
        es = fmax(es, fabs((double)odl_slda_means(s1.h)[i] - odl_slda_means(s2.h)[i]));
    }
    float c1[SYN_D * SYN_D], c2[SYN_D * SYN_D];
    CHECK_OK(odl_slda_covariance(s1.h, c1));
    CHECK_OK(odl_slda_covariance(s2.h, c2));
    double ec = rel_err(c1, c2, SYN_D * SYN_D);
    odl_test_logf(t, "    mean differences NCM %.3g, SLDA %.3g (tol %.3g); covariance rel. %.3g",
                  em, es, tol, ec);
    CHECK(em <= tol && es <= tol);
    CHECK(ec <= 1e-5);
    for (int32_t c = 0; c < SYN_C; c++)
        CHECK(odl_ncm_count(n1.h, c) == odl_ncm_count(n2.h, c));
    odl_rng_seed(&r, 6, 9);
    int32_t same = 0;
    for (int32_t i = 0; i < 100; i++) {
        float z[SYN_D], a[SYN_C], b[SYN_C];
        syn_sample(&r, (int32_t)odl_rng_below(&r, SYN_C), z);
        int32_t p1, p2, q1, q2;
        CHECK_OK(odl_ncm_predict(n1.h, z, &p1, a));
        CHECK_OK(odl_ncm_predict(n2.h, z, &p2, b));
        CHECK(rel_err(a, b, SYN_C) <= 1e-5);
        CHECK_OK(odl_slda_predict(s1.h, z, &q1, a));
        CHECK_OK(odl_slda_predict(s2.h, z, &q2, b));
        CHECK(rel_err(a, b, SYN_C) <= 1e-4);
        same += p1 == p2 && q1 == q2;
    }
    CHECK(same == 100);
    free(n1.buf);
    free(n2.buf);
    free(s1.buf);
    free(s2.buf);
}

/* ---- plans -------------------------------------------------------------- */

static void test_plan_matches_arena(odl_test_ctx *t)
{
    static const int32_t shapes[][2] = {{1, 1}, {6, 5}, {7, 3}, {64, 10}, {33, 17}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int32_t D = shapes[k][0], C = shapes[k][1];
        for (int which = 0; which < 2; which++) {
            odl_mem_plan p;
            odl_diag d;
            if (which == 0)
                CHECK_OK(odl_ncm_plan(D, C, &p, &d));
            else
                CHECK_OK(odl_slda_plan(D, C, &p, &d));
            size_t sum = 0;
            for (int m = 0; m < ODL_MEM_KINDS; m++)
                sum += p.bytes[m];
            CHECK(sum == p.total);
            if (which == 1) /* Sigma and its factor, at least */
                CHECK(p.total >= 2 * sizeof(float) * (size_t)D * D);
            uint8_t *buf = malloc(p.total + 32);
            odl_arena a;
            /* misaligned start: the arena aligns itself, the plan still holds */
            CHECK_OK(odl_arena_init(&a, buf + 16 + 3, p.total + 13));
            void *h = NULL;
            if (which == 0)
                CHECK_OK(odl_ncm_init((odl_ncm **)&h, D, C, &a, &d));
            else
                CHECK_OK(odl_slda_init((odl_slda **)&h, D, C, 0.01f, &a, &d));
            CHECK(h != NULL);
            CHECK(a.used == p.total);
            CHECK(memcmp(&a.plan, &p, sizeof p) == 0);
            /* one byte short: refused, with needed and available in the message */
            odl_arena small;
            CHECK_OK(odl_arena_init(&small, buf + 16, p.total - 1));
            h = (void *)1;
            odl_diag_clear(&d);
            odl_status s = which == 0 ? odl_ncm_init((odl_ncm **)&h, D, C, &small, &d)
                                      : odl_slda_init((odl_slda **)&h, D, C, 0.01f, &small, &d);
            CHECK(s == ODL_ERR_NOMEM && h == NULL);
            CHECK(small.used == 0);
            char want[64];
            snprintf(want, sizeof want, "needs %zu bytes", p.total);
            CHECK(strstr(d.msg, want) != NULL);
            snprintf(want, sizeof want, "%zu available", p.total - 1);
            CHECK(strstr(d.msg, want) != NULL);
            if (k == 1)
                odl_test_logf(t, "    %s", d.msg);
            /* a counting arena is not a real one */
            odl_arena cnt;
            odl_arena_init_counting(&cnt);
            s = which == 0 ? odl_ncm_init((odl_ncm **)&h, D, C, &cnt, &d)
                           : odl_slda_init((odl_slda **)&h, D, C, 0.01f, &cnt, &d);
            CHECK(s == ODL_ERR_ARG);
            free(buf);
        }
    }
}

static void test_bad_arguments(odl_test_ctx *t)
{
    odl_mem_plan p;
    odl_diag d;
    CHECK(odl_ncm_plan(0, 3, &p, &d) == ODL_ERR_SHAPE);
    CHECK(strstr(d.msg, "dim 0") != NULL);
    CHECK(odl_ncm_plan(4, 0, &p, &d) == ODL_ERR_SHAPE);
    CHECK(odl_ncm_plan(-1, 3, &p, &d) == ODL_ERR_SHAPE);
    CHECK(odl_ncm_plan(4, 3, NULL, &d) == ODL_ERR_ARG);
    CHECK(odl_slda_plan(ODL_CM_MAX_DIM + 1, 3, &p, &d) == ODL_ERR_SHAPE);
    CHECK(odl_slda_plan(4, ODL_CM_MAX_CLASSES + 1, &p, &d) == ODL_ERR_SHAPE);
    static uint8_t buf[4096];
    odl_arena a;
    odl_slda *s = NULL;
    CHECK_OK(odl_arena_init(&a, buf, sizeof buf));
    CHECK(odl_slda_init(&s, 4, 3, -0.1f, &a, &d) == ODL_ERR_ARG);
    CHECK(odl_slda_init(&s, 4, 3, 1.5f, &a, &d) == ODL_ERR_ARG);
    CHECK(odl_slda_init(&s, 4, 3, NAN, &a, &d) == ODL_ERR_ARG);
    CHECK(strstr(d.msg, "shrinkage") != NULL);
    CHECK(a.used == 0);
    CHECK(odl_slda_init(NULL, 4, 3, 0.1f, &a, &d) == ODL_ERR_ARG);
    CHECK(odl_ncm_init(NULL, 4, 3, &a, &d) == ODL_ERR_ARG);
    CHECK(odl_ncm_count(NULL, 0) == 0);
    CHECK(odl_ncm_means(NULL) == NULL);
    CHECK(odl_slda_fit(NULL, &d) == ODL_ERR_ARG);
}

/* ---- rejected samples leave everything as it was ------------------------ */

static void test_rejects_unchanged(odl_test_ctx *t)
{
    enum { D = 5, C = 3 };
    ncm_box n;
    slda_box s;
    CHECK_OK(ncm_new(&n, D, C));
    CHECK_OK(slda_new(&s, D, C, 0.05f));
    float z[D] = {1, 2, 3, 4, 5};
    int32_t cls;
    /* nothing seen yet */
    CHECK(odl_ncm_predict(n.h, z, &cls, NULL) == ODL_ERR_STATE);
    CHECK(odl_slda_predict(s.h, z, &cls, NULL) == ODL_ERR_STATE);
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    for (int32_t i = 0; i < 20; i++) {
        for (int32_t j = 0; j < D; j++)
            z[j] = odl_rng_normal(&r) + (float)(i % 2) * 3.0f;
        CHECK_OK(odl_ncm_add(n.h, z, i % 2));
        CHECK_OK(odl_slda_add(s.h, z, i % 2));
    }
    odl_diag d;
    CHECK_OK(odl_slda_fit(s.h, &d));
    /* snapshots of every byte the heads own */
    const size_t nb = n.arena.used, sb = s.arena.used;
    uint8_t *nsnap = malloc(nb), *ssnap = malloc(sb);
    memcpy(nsnap, n.arena.base, nb);
    memcpy(ssnap, s.arena.base, sb);
    const float good[D] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    CHECK(odl_ncm_add(n.h, good, -1) == ODL_ERR_ARG);
    CHECK(odl_ncm_add(n.h, good, C) == ODL_ERR_ARG);
    CHECK(odl_ncm_add(n.h, NULL, 0) == ODL_ERR_ARG);
    CHECK(odl_ncm_add(NULL, good, 0) == ODL_ERR_ARG);
    CHECK(odl_slda_add(s.h, good, -1) == ODL_ERR_ARG);
    CHECK(odl_slda_add(s.h, good, C) == ODL_ERR_ARG);
    CHECK(odl_slda_add(s.h, NULL, 0) == ODL_ERR_ARG);
    const float bad_vals[3] = {NAN, INFINITY, -INFINITY};
    for (int32_t v = 0; v < 3; v++)
        for (int32_t pos = 0; pos < D; pos += D - 1) { /* first and last component */
            float zb[D];
            memcpy(zb, good, sizeof zb);
            zb[pos] = bad_vals[v];
            CHECK(odl_ncm_add(n.h, zb, 0) == ODL_ERR_NUMERIC);
            CHECK(odl_slda_add(s.h, zb, 2) == ODL_ERR_NUMERIC);
            CHECK(odl_ncm_predict(n.h, zb, &cls, NULL) == ODL_ERR_NUMERIC);
            CHECK(odl_slda_predict(s.h, zb, &cls, NULL) == ODL_ERR_NUMERIC);
        }
    CHECK(odl_ncm_predict(n.h, good, NULL, NULL) == ODL_ERR_ARG);
    CHECK(odl_slda_predict(s.h, good, NULL, NULL) == ODL_ERR_ARG);
    CHECK(memcmp(nsnap, n.arena.base, nb) == 0);
    CHECK(memcmp(ssnap, s.arena.base, sb) == 0);
    CHECK(!odl_slda_stale(s.h)); /* a refused add does not invalidate the fit */
    CHECK(odl_ncm_count(n.h, 2) == 0 && odl_slda_count(s.h, 2) == 0);
    CHECK(odl_ncm_count(n.h, -1) == 0 && odl_ncm_count(n.h, C) == 0);
    free(nsnap);
    free(ssnap);
    free(n.buf);
    free(s.buf);
}

/* ---- NCM restore ------------------------------------------------------- */

static void test_ncm_set(odl_test_ctx *t)
{
    ncm_box a, b;
    CHECK_OK(ncm_new(&a, GCM_DIM, GCM_MAX_CLASSES));
    CHECK_OK(ncm_new(&b, GCM_DIM, GCM_MAX_CLASSES));
    for (int32_t i = 0; i < GCM_N; i++)
        CHECK_OK(odl_ncm_add(a.h, GCM_X + (size_t)i * GCM_DIM, GCM_Y[i]));
    uint32_t counts[GCM_MAX_CLASSES];
    for (int32_t c = 0; c < GCM_MAX_CLASSES; c++)
        counts[c] = (uint32_t)odl_ncm_count(a.h, c);
    float means[GCM_MAX_CLASSES * GCM_DIM];
    memcpy(means, odl_ncm_means(a.h), sizeof means);
    means[(GCM_MAX_CLASSES - 1) * GCM_DIM] = 123.0f; /* row of an unseen class: ignored */
    odl_diag d;
    CHECK_OK(odl_ncm_set(b.h, means, counts, &d));
    CHECK(memcmp(odl_ncm_means(a.h), odl_ncm_means(b.h), sizeof means) == 0);
    for (int32_t k = 0; k < GCM_N_TEST; k++) {
        int32_t c1, c2;
        float s1[GCM_MAX_CLASSES], s2[GCM_MAX_CLASSES];
        CHECK_OK(odl_ncm_predict(a.h, GCM_TEST_X + (size_t)k * GCM_DIM, &c1, s1));
        CHECK_OK(odl_ncm_predict(b.h, GCM_TEST_X + (size_t)k * GCM_DIM, &c2, s2));
        CHECK(c1 == c2 && memcmp(s1, s2, sizeof s1) == 0);
    }
    /* restored counts keep the running mean going */
    CHECK_OK(odl_ncm_add(a.h, GCM_X, GCM_Y[0]));
    CHECK_OK(odl_ncm_add(b.h, GCM_X, GCM_Y[0]));
    CHECK(memcmp(odl_ncm_means(a.h), odl_ncm_means(b.h), sizeof means) == 0);
    /* invalid input: refused, nothing changed */
    float snap[GCM_MAX_CLASSES * GCM_DIM];
    memcpy(snap, odl_ncm_means(b.h), sizeof snap);
    memcpy(means, odl_ncm_means(b.h), sizeof means);
    means[3] = NAN;
    CHECK(odl_ncm_set(b.h, means, counts, &d) == ODL_ERR_NUMERIC);
    CHECK(strstr(d.msg, "not finite") != NULL);
    means[3] = 0.0f;
    counts[1] = 0x80000000u;
    CHECK(odl_ncm_set(b.h, means, counts, &d) == ODL_ERR_ARG);
    CHECK(odl_ncm_set(b.h, NULL, counts, &d) == ODL_ERR_ARG);
    CHECK(memcmp(snap, odl_ncm_means(b.h), sizeof snap) == 0);
    CHECK(odl_ncm_count(b.h, 1) == GCM_COUNTS[1] + (GCM_Y[0] == 1));
    /* all counts zero: a valid reset; predict then has nothing to go on */
    memset(counts, 0, sizeof counts);
    CHECK_OK(odl_ncm_set(b.h, means, counts, &d));
    int32_t c;
    CHECK(odl_ncm_predict(b.h, GCM_TEST_X, &c, NULL) == ODL_ERR_STATE);
    CHECK(max_abs(odl_ncm_means(b.h), GCM_MAX_CLASSES * GCM_DIM) == 0.0);
    free(a.buf);
    free(b.buf);
}

/* ---- SLDA: singular covariance ----------------------------------------- */

static void test_slda_not_positive_definite(odl_test_ctx *t)
{
    enum { D = 6 };
    slda_box s;
    CHECK_OK(slda_new(&s, D, 2, 0.0f)); /* no shrinkage */
    float z[D];
    for (int32_t i = 0; i < 4; i++) { /* 4 samples in 6 dims: Sigma singular */
        for (int32_t j = 0; j < D; j++)
            z[j] = (float)((i * 7 + j * 3) % 5) - 2.0f;
        CHECK_OK(odl_slda_add(s.h, z, i % 2));
    }
    odl_diag d;
    CHECK(odl_slda_fit(s.h, &d) == ODL_ERR_NUMERIC);
    odl_test_logf(t, "    %s", d.msg);
    CHECK(strstr(d.msg, "positive definite") != NULL);
    CHECK(odl_slda_stale(s.h) && odl_slda_weights(s.h) == NULL);
    int32_t cls;
    CHECK(odl_slda_predict(s.h, z, &cls, NULL) == ODL_ERR_NUMERIC);
    free(s.buf);
    /* the same data with shrinkage fits */
    CHECK_OK(slda_new(&s, D, 2, 0.01f));
    for (int32_t i = 0; i < 4; i++) {
        for (int32_t j = 0; j < D; j++)
            z[j] = (float)((i * 7 + j * 3) % 5) - 2.0f;
        CHECK_OK(odl_slda_add(s.h, z, i % 2));
    }
    CHECK_OK(odl_slda_fit(s.h, &d));
    CHECK_OK(odl_slda_predict(s.h, z, &cls, NULL));
    CHECK(cls == 1);
    free(s.buf);
}

/* ---- Fashion-MNIST, raw pixels ------------------------------------------ */

#define FM_TRAIN 5000
#define FM_TEST 2000
/* Floors. Measured on this slice (first 5000 train / first 2000 test images;
 * the computation is deterministic, and a float64 NumPy reference gives the
 * same accuracies): NCM 0.6650, SLDA (eps 1e-2) 0.8125. SLDA's floor sits
 * 3 points below. NCM's is the required 0.65, only 1.5 points below the
 * measurement: nearest-mean on raw pixels is simply that weak, and with no
 * randomness anywhere the margin covers only float-rounding differences
 * between compilers, which move single borderline images (0.05 points). */
#define FM_NCM_FLOOR 0.65
#define FM_SLDA_FLOOR 0.78

static void test_fashion_raw_pixels(odl_test_ctx *t)
{
    struct stat sb;
    if (stat(ODL_FASHION_DIR, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        odl_test_logf(t, "    note: %s not found, skipping", ODL_FASHION_DIR);
        return;
    }
    odl_dataset tr, te;
    odl_data_opts o = odl_data_opts_defaults();
    odl_diag d;
    odl_diag_clear(&d);
    o.split = ODL_SPLIT_TRAIN;
    o.limit = FM_TRAIN;
    odl_status st = odl_data_load(ODL_FASHION_DIR, &o, &tr, &d);
    if (st != ODL_OK)
        odl_test_logf(t, "    %s", d.msg);
    CHECK_OK(st);
    o.split = ODL_SPLIT_TEST;
    o.limit = FM_TEST;
    st = odl_data_load(ODL_FASHION_DIR, &o, &te, &d);
    if (st != ODL_OK) {
        odl_test_logf(t, "    %s", d.msg);
        odl_dataset_free(&tr);
    }
    CHECK_OK(st);
    const int32_t D = tr.c * tr.h * tr.w, C = tr.n_classes;
    REQUIRE(D == 784 && C == 10 && tr.n == FM_TRAIN && te.n == FM_TEST);
    ncm_box n;
    slda_box s;
    CHECK_OK(ncm_new(&n, D, C));
    CHECK_OK(slda_new(&s, D, C, ODL_SLDA_DEFAULT_SHRINKAGE));
    for (int32_t i = 0; i < tr.n; i++) {
        CHECK_OK(odl_ncm_add(n.h, tr.x + (size_t)i * D, tr.y[i]));
        CHECK_OK(odl_slda_add(s.h, tr.x + (size_t)i * D, tr.y[i]));
    }
    CHECK_OK(odl_slda_fit(s.h, &d));
    int32_t ok_n = 0, ok_s = 0;
    for (int32_t i = 0; i < te.n; i++) {
        int32_t cn, cs;
        CHECK_OK(odl_ncm_predict(n.h, te.x + (size_t)i * D, &cn, NULL));
        CHECK_OK(odl_slda_predict(s.h, te.x + (size_t)i * D, &cs, NULL));
        ok_n += cn == te.y[i];
        ok_s += cs == te.y[i];
    }
    const double an = (double)ok_n / te.n, as = (double)ok_s / te.n;
    odl_test_logf(t, "    Fashion-MNIST raw pixels, %d train / %d test: NCM %.4f (floor %.2f), "
                     "SLDA eps=%g %.4f (floor %.2f); SLDA arena %zu bytes",
                  (int)tr.n, (int)te.n, an, FM_NCM_FLOOR, (double)ODL_SLDA_DEFAULT_SHRINKAGE, as,
                  FM_SLDA_FLOOR, s.arena.used);
    CHECK(an >= FM_NCM_FLOOR);
    CHECK(as >= FM_SLDA_FLOOR);
    free(n.buf);
    free(s.buf);
    odl_dataset_free(&tr);
    odl_dataset_free(&te);
}

static const odl_test_case cases[] = {
    {"golden_ncm", test_golden_ncm},
    {"golden_slda", test_golden_slda},
    {"new_class_one_pass", test_new_class_one_pass},
    {"order_independence", test_order_independence},
    {"plan_matches_arena", test_plan_matches_arena},
    {"bad_arguments", test_bad_arguments},
    {"rejects_unchanged", test_rejects_unchanged},
    {"ncm_set", test_ncm_set},
    {"slda_not_positive_definite", test_slda_not_positive_definite},
    {"fashion_raw_pixels", test_fashion_raw_pixels},
};

TEST_MAIN(cases)
