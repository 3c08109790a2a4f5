/* EWC and LwF tests: the EWC penalty's gradient against finite differences,
 * the Fisher against per-sample gradients computed here, online decay,
 * plans against the arena used, EWC protecting a first task; the LwF loss
 * and gradient against PyTorch golden vectors and finite differences. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/odl.h"
#include "odl/ewc.h"
#include "odl/lwf.h"
#include "golden/golden_lwf.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct built {
    void *buf;
    odl_arena arena;
    odl_model *m;
    odl_mem_plan plan;
} built;

static odl_status build_model(built *b, const odl_model_desc *desc, const odl_model_cfg *cfg, uint64_t seed)
{
    odl_diag d;
    memset(b, 0, sizeof *b);
    odl_status s = odl_model_plan(desc, cfg, &b->plan, &d);
    if (s != ODL_OK)
        return s;
    b->buf = malloc(b->plan.total);
    odl_arena_init(&b->arena, b->buf, b->plan.total);
    s = odl_model_init(&b->m, desc, cfg, &b->arena, &d);
    if (s != ODL_OK)
        return s;
    odl_rng r;
    odl_rng_seed(&r, seed, 1);
    return odl_model_init_params(b->m, &r);
}

static void free_model(built *b) { free(b->buf); }

typedef struct built_ewc {
    void *buf;
    odl_arena arena;
    odl_ewc *e;
    odl_mem_plan plan;
} built_ewc;

static odl_status build_ewc(built_ewc *b, const odl_model *m)
{
    odl_diag d;
    memset(b, 0, sizeof *b);
    odl_status s = odl_ewc_plan(m, &b->plan, &d);
    if (s != ODL_OK)
        return s;
    b->buf = malloc(b->plan.total);
    odl_arena_init(&b->arena, b->buf, b->plan.total);
    return odl_ewc_init(&b->e, m, &b->arena, &d);
}

static void free_ewc(built_ewc *b) { free(b->buf); }

static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 7);
    for (size_t i = 0; i < n; i++)
        x[i] = (2.0f * odl_rng_uniform(&r) - 1.0f) * scale;
}

static odl_model_cfg train_cfg(int32_t max_batch, odl_optim_kind kind, float lr)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = max_batch;
    cfg.optim = odl_optim_defaults(kind);
    cfg.optim.lr = lr;
    return cfg;
}

/* The test's own walk over the trainable tensors (layers in order, weights
 * then bias, only those with a gradient): the order odl/ewc.h promises. */
typedef void (*tensor_fn)(void *ctx, float *p, float *g, size_t n);

static size_t for_trainable(odl_model *m, tensor_fn fn, void *ctx)
{
    size_t total = 0;
    for (int32_t i = 0; i < odl_model_get_desc(m)->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0, ng = 0;
            float *g = odl_model_grad(m, i, which, &ng);
            if (!g || !ng)
                continue;
            float *p = odl_model_param(m, i, which, &n);
            if (fn)
                fn(ctx, p, g, n);
            total += n;
        }
    return total;
}

typedef struct cursor {
    float *v;
    size_t at;
} cursor;

static void get_params_fn(void *ctx, float *p, float *g, size_t n)
{
    cursor *c = ctx;
    (void)g;
    memcpy(c->v + c->at, p, n * sizeof(float));
    c->at += n;
}
static void set_params_fn(void *ctx, float *p, float *g, size_t n)
{
    cursor *c = ctx;
    (void)g;
    memcpy(p, c->v + c->at, n * sizeof(float));
    c->at += n;
}
static void get_grads_fn(void *ctx, float *p, float *g, size_t n)
{
    cursor *c = ctx;
    (void)p;
    memcpy(c->v + c->at, g, n * sizeof(float));
    c->at += n;
}

static void get_params(odl_model *m, float *v)
{
    cursor c = {v, 0};
    for_trainable(m, get_params_fn, &c);
}
static void set_params(odl_model *m, const float *v)
{
    cursor c = {(float *)(uintptr_t)v, 0};
    for_trainable(m, set_params_fn, &c);
}
static void get_grads(odl_model *m, float *v)
{
    cursor c = {v, 0};
    for_trainable(m, get_grads_fn, &c);
}

/* Zeroes the model's gradients: a backward of a zero d(logits). */
static odl_status zero_grads(odl_model *m, const float *x, odl_rng *rng)
{
    const float *logits;
    odl_diag d;
    odl_status s = odl_model_forward_train(m, 0, x, 1, rng, &logits, &d);
    if (s != ODL_OK)
        return s;
    float *zero = calloc((size_t)odl_model_n_classes(m), sizeof(float));
    s = odl_model_backward(m, zero, 1, &d);
    free(zero);
    return s;
}

static void small_mlp(odl_model_desc *d, int32_t in, int32_t hidden, int32_t classes)
{
    int32_t h[1] = {hidden};
    odl_desc_mlp(d, 1, 1, in, h, 1, classes);
}

/* ---- EWC: plans and errors ------------------------------------------------ */

static void test_ewc_plan_matches_arena(odl_test_ctx *t)
{
    odl_node_desc nodes[3][ODL_EDGE_CNN_NODES];
    odl_model_desc descs[3];
    for (int k = 0; k < 3; k++)
        odl_desc_init(&descs[k], nodes[k], ODL_EDGE_CNN_NODES, 1, 1, 1);
    small_mlp(&descs[0], 10, 8, 4);
    odl_desc_copy(&descs[1], &descs[0], NULL);
    odl_desc_freeze_below(&descs[1], 3); /* first dense frozen */
    odl_desc_edge_cnn(&descs[2], 1, 12, 12, 5);
    for (int k = 0; k < 3; k++) {
        odl_model_cfg cfg = train_cfg(4, ODL_OPTIM_ADAM, 1e-3f);
        built b;
        CHECK_OK(build_model(&b, &descs[k], &cfg, 1));
        odl_mem_plan p;
        odl_diag d;
        CHECK_OK(odl_ewc_plan(b.m, &p, &d));
        size_t sum = 0;
        for (int j = 0; j < ODL_MEM_KINDS; j++)
            sum += p.bytes[j];
        CHECK(sum == p.total);
        size_t trainable = 0;
        odl_layer_shape shapes[ODL_EDGE_CNN_NODES];
        CHECK_OK(odl_desc_count_params(&descs[k], shapes, NULL, &trainable));
        CHECK(for_trainable(b.m, NULL, NULL) == trainable);
        /* 3 floats per trainable parameter, the handle, one row of d(logits) */
        CHECK(p.bytes[ODL_MEM_BUFFERS] >= 3 * trainable * sizeof(float));
        CHECK(p.bytes[ODL_MEM_BUFFERS] < 3 * trainable * sizeof(float) + 3 * ODL_ALIGN);
        CHECK(p.bytes[ODL_MEM_STATE] > 0);
        CHECK(p.bytes[ODL_MEM_PARAMS] == 0 && p.bytes[ODL_MEM_GRADS] == 0 && p.bytes[ODL_MEM_OPTIM] == 0);

        uint8_t *buf = malloc(p.total + 64);
        odl_arena a;
        odl_ewc *e;
        /* misaligned start: the arena aligns itself, the plan still holds */
        CHECK_OK(odl_arena_init(&a, buf + 3, p.total + 13));
        const size_t before = a.used;
        CHECK_OK(odl_ewc_init(&e, b.m, &a, &d));
        CHECK(a.used - before == p.total);
        CHECK(memcmp(&a.plan, &p, sizeof p) == 0);
        CHECK(odl_ewc_n_params(e) == trainable);
        /* fresh: Fisher 0, so no penalty */
        CHECK(odl_ewc_penalty(e, b.m, 1000.0f) == 0.0f);

        odl_arena small;
        CHECK_OK(odl_arena_init(&small, buf + 16, p.total - 1));
        odl_diag_clear(&d);
        CHECK(odl_ewc_init(&e, b.m, &small, &d) == ODL_ERR_NOMEM);
        CHECK(e == NULL);
        CHECK(small.used == 0);
        CHECK(strstr(d.msg, "needs") != NULL && strstr(d.msg, "available") != NULL);
        if (k == 0)
            odl_test_logf(t, "    too small: %s", d.msg);
        odl_arena counting;
        odl_arena_init_counting(&counting);
        CHECK(odl_ewc_init(&e, b.m, &counting, &d) == ODL_ERR_ARG);
        free(buf);
        free_model(&b);
    }
    /* model and EWC in one arena of exactly the sum of their plans */
    odl_model_cfg cfg = train_cfg(2, ODL_OPTIM_SGD, 0.1f);
    odl_mem_plan pm, pe;
    odl_diag d;
    CHECK_OK(odl_model_plan(&descs[0], &cfg, &pm, &d));
    odl_arena a;
    odl_model *m;
    odl_ewc *e;
    void *buf = malloc(pm.total + 4096);
    odl_arena_init(&a, buf, pm.total);
    CHECK_OK(odl_model_init(&m, &descs[0], &cfg, &a, &d));
    CHECK_OK(odl_ewc_plan(m, &pe, &d));
    odl_arena_init(&a, buf, pm.total + pe.total);
    CHECK_OK(odl_model_init(&m, &descs[0], &cfg, &a, &d));
    CHECK_OK(odl_ewc_init(&e, m, &a, &d));
    CHECK(odl_arena_remaining(&a) == 0);
    odl_mem_plan both = pm;
    odl_mem_plan_add(&both, &pe);
    CHECK(memcmp(&a.plan, &both, sizeof both) == 0);
    free(buf);
}

static void test_ewc_errors(odl_test_ctx *t)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    small_mlp(&desc, 6, 5, 3);
    odl_diag d;
    /* an inference-only model has nothing to protect */
    odl_model_cfg icfg = odl_model_cfg_defaults();
    built bi;
    CHECK_OK(build_model(&bi, &desc, &icfg, 1));
    odl_mem_plan p;
    odl_diag_clear(&d);
    CHECK(odl_ewc_plan(bi.m, &p, &d) == ODL_ERR_STATE);
    CHECK(strlen(d.msg) > 0);
    free_model(&bi);

    odl_model_cfg cfg = train_cfg(2, ODL_OPTIM_SGD, 0.1f);
    built b, b2;
    CHECK_OK(build_model(&b, &desc, &cfg, 1));
    built_ewc be;
    CHECK_OK(build_ewc(&be, b.m));
    odl_ewc *e = be.e;
    const size_t n = odl_ewc_n_params(e);
    CHECK(n == 6 * 5 + 5 + 5 * 3 + 3);

    CHECK_OK(odl_ewc_begin(e));
    odl_diag_clear(&d);
    CHECK(odl_ewc_end(e, b.m, 0.0f, &d) == ODL_ERR_STATE); /* nothing accumulated */
    CHECK(strlen(d.msg) > 0);

    float x[6] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f};
    int32_t y = 2, bad = 3;
    odl_rng r;
    odl_rng_seed(&r, 5, 5);
    CHECK(odl_ewc_estimate(e, b.m, 0, x, &bad, 1, 0.0f, &r, &d) == ODL_ERR_ARG);
    CHECK(odl_ewc_estimate(e, b.m, 0, x, &y, 0, 0.0f, &r, &d) == ODL_ERR_ARG);
    CHECK(odl_ewc_estimate(e, b.m, 0, x, &y, 1, -0.5f, &r, &d) == ODL_ERR_ARG);
    CHECK(odl_ewc_estimate(e, b.m, 0, x, &y, 1, 1.5f, &r, &d) == ODL_ERR_ARG);
    CHECK(odl_ewc_estimate(e, b.m, 0, x, &y, 1, NAN, &r, &d) == ODL_ERR_ARG);
    CHECK(odl_ewc_estimate(e, b.m, 7, x, &y, 1, 0.0f, &r, &d) == ODL_ERR_ARG); /* no layer 7 */
    CHECK(odl_ewc_estimate(e, b.m, 0, x, &y, 1, 0.0f, NULL, &d) == ODL_ERR_ARG);
    CHECK_OK(odl_ewc_estimate(e, b.m, 0, x, &y, 1, 0.0f, &r, &d));

    float *f = calloc(n, sizeof(float)), *a = calloc(n, sizeof(float));
    CHECK(odl_ewc_set(e, f, a, n - 1, &d) == ODL_ERR_SHAPE);
    f[3] = -1.0f;
    CHECK(odl_ewc_set(e, f, a, n, &d) == ODL_ERR_NUMERIC);
    f[3] = 0.0f;
    a[4] = NAN;
    CHECK(odl_ewc_set(e, f, a, n, &d) == ODL_ERR_NUMERIC);
    a[4] = 0.0f;
    CHECK_OK(odl_ewc_set(e, f, a, n, &d));
    CHECK(odl_ewc_penalty(e, b.m, 1.0f) == 0.0f);

    /* a different model: refused everywhere */
    odl_node_desc other_nodes[64];
    odl_model_desc other;
    odl_desc_init(&other, other_nodes, 64, 1, 1, 1);
    small_mlp(&other, 6, 4, 3);
    CHECK_OK(build_model(&b2, &other, &cfg, 2));
    CHECK(isnan(odl_ewc_penalty(e, b2.m, 1.0f)));
    CHECK(odl_ewc_add_grad(e, b2.m, 1.0f) == ODL_ERR_SHAPE);
    CHECK(odl_ewc_accumulate(e, b2.m) == ODL_ERR_SHAPE);
    CHECK(odl_ewc_end(e, b2.m, 0.0f, &d) == ODL_ERR_SHAPE);
    CHECK(odl_ewc_estimate(e, b2.m, 0, x, &y, 1, 0.0f, &r, &d) == ODL_ERR_SHAPE);
    free(f);
    free(a);
    free_model(&b2);
    free_ewc(&be);
    free_model(&b);
}

/* ---- EWC: the penalty and its gradient ------------------------------------ */

static void test_ewc_penalty_gradcheck(odl_test_ctx *t)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    small_mlp(&desc, 7, 6, 4);
    odl_model_cfg cfg = train_cfg(1, ODL_OPTIM_SGD, 0.1f);
    built b;
    CHECK_OK(build_model(&b, &desc, &cfg, 11));
    built_ewc be;
    CHECK_OK(build_ewc(&be, b.m));
    const size_t n = odl_ewc_n_params(be.e);
    float *f = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float));
    float *theta = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *g0 = malloc(n * sizeof(float));
    get_params(b.m, theta);
    odl_rng r;
    odl_rng_seed(&r, 3, 3);
    for (size_t i = 0; i < n; i++) {
        f[i] = 0.05f + 2.0f * odl_rng_uniform(&r);           /* non-trivial, positive */
        a[i] = theta[i] + 0.5f * (2.0f * odl_rng_uniform(&r) - 1.0f); /* away from θ */
    }
    odl_diag d;
    CHECK_OK(odl_ewc_set(be.e, f, a, n, &d));
    CHECK(memcmp(odl_ewc_fisher(be.e), f, n * sizeof(float)) == 0);
    CHECK(memcmp(odl_ewc_anchor(be.e), a, n * sizeof(float)) == 0);
    const float lambda = 3.0f;

    /* closed form, in double */
    double ref = 0.0;
    for (size_t i = 0; i < n; i++)
        ref += (double)f[i] * ((double)theta[i] - a[i]) * ((double)theta[i] - a[i]);
    ref *= 0.5 * lambda;
    CHECK_NEAR(odl_ewc_penalty(be.e, b.m, lambda), ref, 1e-5 * ref);
    CHECK(odl_ewc_penalty(be.e, b.m, 0.0f) == 0.0f);

    /* gradient alone: zero the grads, add the penalty's */
    float x[7];
    fill(x, 7, 9, 1.0f);
    CHECK_OK(zero_grads(b.m, x, &r));
    CHECK_OK(odl_ewc_add_grad(be.e, b.m, lambda));
    get_grads(b.m, g);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double an = lambda * (double)f[i] * ((double)theta[i] - a[i]);
        if (fabs(g[i] - an) > 1e-6 + 1e-5 * fabs(an) && bad++ < 3)
            odl_test_logf(t, "    grad[%zu] %.7g vs λF(θ−θ*) %.7g", i, g[i], an);
    }
    CHECK(bad == 0);

    /* against central differences of odl_ewc_penalty (a quadratic: the
     * difference is exact up to float rounding of the penalty) */
    int checked = 0;
    bad = 0;
    for (size_t i = 0; i < n; i++) {
        const float eps = 1e-2f;
        float *p = theta; /* perturb through the model */
        float keep = p[i];
        p[i] = keep + eps;
        set_params(b.m, p);
        const double lp = odl_ewc_penalty(be.e, b.m, lambda);
        p[i] = keep - eps;
        set_params(b.m, p);
        const double lm = odl_ewc_penalty(be.e, b.m, lambda);
        p[i] = keep;
        set_params(b.m, p);
        const double fd = (lp - lm) / (2.0 * (double)eps);
        checked++;
        if (fabs(fd - g[i]) > 2e-3 + 1e-3 * fabs(fd) && bad++ < 3)
            odl_test_logf(t, "    param %zu: analytic %.6g vs numeric %.6g", i, (double)g[i], fd);
    }
    CHECK(checked == (int)n);
    CHECK(bad == 0);

    /* add_grad ACCUMULATES onto a loss gradient */
    const float *logits;
    int32_t y = 1;
    float dl[4];
    CHECK_OK(odl_model_forward_train(b.m, 0, x, 1, &r, &logits, &d));
    odl_softmax_xent_f32(1, 4, logits, &y, NULL, dl);
    CHECK_OK(odl_model_backward(b.m, dl, 1, &d));
    get_grads(b.m, g0);
    CHECK_OK(odl_ewc_add_grad(be.e, b.m, lambda));
    float *g1 = malloc(n * sizeof(float));
    get_grads(b.m, g1);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((g1[i] - g0[i]) - g[i]) > 1e-5 + 1e-5 * fabs(g[i]))
            bad++;
    CHECK(bad == 0);
    free(g1);
    free(f);
    free(a);
    free(theta);
    free(g);
    free(g0);
    free_ewc(&be);
    free_model(&b);
}

/* ---- EWC: the Fisher -------------------------------------------------------- */

/* Mean over samples of the squared per-sample gradient of −log p(y|x),
 * computed here from forward_train/backward, in double. */
static odl_status direct_fisher(odl_model *m, const float *x, const int32_t *y, int32_t ns, size_t in,
                                double *out, size_t n)
{
    const int32_t c = odl_model_n_classes(m);
    float *dl = malloc((size_t)c * sizeof(float)), *g = malloc(n * sizeof(float));
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    odl_diag d;
    odl_status s = ODL_OK;
    memset(out, 0, n * sizeof(double));
    for (int32_t k = 0; k < ns && s == ODL_OK; k++) {
        const float *logits;
        s = odl_model_forward_train(m, 0, x + (size_t)k * in, 1, &r, &logits, &d);
        if (s != ODL_OK)
            break;
        odl_softmax_xent_f32(1, c, logits, &y[k], NULL, dl);
        s = odl_model_backward(m, dl, 1, &d);
        get_grads(m, g);
        for (size_t i = 0; i < n; i++)
            out[i] += (double)g[i] * g[i];
    }
    for (size_t i = 0; i < n; i++)
        out[i] /= ns;
    free(dl);
    free(g);
    return s;
}

static int fisher_close(odl_test_ctx *t, const float *f, const double *ref, size_t n, const char *what)
{
    int bad = 0;
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        if (ref[i] > mx)
            mx = ref[i];
    for (size_t i = 0; i < n; i++)
        if (fabs(f[i] - ref[i]) > 1e-6 * mx + 1e-5 * fabs(ref[i]) && bad++ < 3)
            odl_test_logf(t, "    %s[%zu]: %.7g vs %.7g", what, i, (double)f[i], ref[i]);
    return bad == 0 && mx > 0.0;
}

static void test_ewc_fisher_direct(odl_test_ctx *t)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    small_mlp(&desc, 4, 3, 3);
    odl_model_cfg cfg = train_cfg(8, ODL_OPTIM_SGD, 0.1f);
    built b;
    CHECK_OK(build_model(&b, &desc, &cfg, 21));
    built_ewc be;
    CHECK_OK(build_ewc(&be, b.m));
    odl_ewc *e = be.e;
    const size_t n = odl_ewc_n_params(e);
    REQUIRE(n == 4 * 3 + 3 + 3 * 3 + 3);
    enum { NS = 6, IN = 4 };
    float x1[NS * IN], x2[NS * IN];
    fill(x1, NS * IN, 31, 1.5f);
    fill(x2, NS * IN, 32, 1.5f);
    const int32_t y1[NS] = {0, 1, 2, 2, 1, 0}, y2[NS] = {2, 2, 0, 1, 0, 1};
    double *f1 = malloc(n * sizeof(double)), *f2 = malloc(n * sizeof(double));
    double *ref = malloc(n * sizeof(double));
    float *theta = malloc(n * sizeof(float)), *save = malloc(n * sizeof(float));
    odl_diag d;
    odl_rng r;
    odl_rng_seed(&r, 4, 4);

    /* plain EWC (decay 0): F = mean of squared per-sample gradients */
    CHECK_OK(direct_fisher(b.m, x1, y1, NS, IN, f1, n));
    CHECK_OK(odl_ewc_estimate(e, b.m, 0, x1, y1, NS, 0.0f, &r, &d));
    CHECK(fisher_close(t, odl_ewc_fisher(e), f1, n, "F1"));
    get_params(b.m, theta);
    CHECK(memcmp(odl_ewc_anchor(e), theta, n * sizeof(float)) == 0);
    memcpy(save, odl_ewc_fisher(e), n * sizeof(float));

    /* move the parameters (a few SGD steps), then online EWC: F = 0.7·F1 + F2 */
    for (int s = 0; s < 3; s++)
        CHECK_OK(odl_model_train_step(b.m, 0, x2, y2, NS, &r, NULL, &d));
    CHECK_OK(direct_fisher(b.m, x2, y2, NS, IN, f2, n));
    for (size_t i = 0; i < n; i++)
        ref[i] = 0.7 * (double)save[i] + f2[i];
    CHECK_OK(odl_ewc_estimate(e, b.m, 0, x2, y2, NS, 0.7f, &r, &d));
    CHECK(fisher_close(t, odl_ewc_fisher(e), ref, n, "online F"));
    get_params(b.m, theta);
    CHECK(memcmp(odl_ewc_anchor(e), theta, n * sizeof(float)) == 0); /* anchors moved too */

    /* the pieces by hand give the same: begin, accumulate per sample, end */
    CHECK_OK(odl_ewc_set(e, save, theta, n, &d));
    CHECK_OK(odl_ewc_begin(e));
    const int32_t c = odl_model_n_classes(b.m);
    float dl[3];
    for (int32_t k = 0; k < NS; k++) {
        const float *logits;
        CHECK_OK(odl_model_forward_train(b.m, 0, x2 + k * IN, 1, &r, &logits, &d));
        odl_softmax_xent_f32(1, c, logits, &y2[k], NULL, dl);
        CHECK_OK(odl_model_backward(b.m, dl, 1, &d));
        CHECK_OK(odl_ewc_accumulate(e, b.m));
    }
    CHECK_OK(odl_ewc_end(e, b.m, 0.7f, &d));
    CHECK(fisher_close(t, odl_ewc_fisher(e), ref, n, "manual F"));

    /* decay 1 keeps everything and adds; begin clears the running sum */
    memcpy(save, odl_ewc_fisher(e), n * sizeof(float));
    CHECK_OK(odl_ewc_estimate(e, b.m, 0, x1, y1, 2, 1.0f, &r, &d));
    CHECK_OK(direct_fisher(b.m, x1, y1, 2, IN, f1, n));
    for (size_t i = 0; i < n; i++)
        ref[i] = (double)save[i] + f1[i];
    CHECK(fisher_close(t, odl_ewc_fisher(e), ref, n, "decay 1"));
    free(f1);
    free(f2);
    free(ref);
    free(theta);
    free(save);
    free_ewc(&be);
    free_model(&b);
}

/* Frozen base: only the head is trainable; the Fisher from raw inputs
 * (from 0) equals the Fisher from cached latents (from = first trainable). */
static void test_ewc_fisher_frozen_base(odl_test_ctx *t)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    int32_t hidden[2] = {6, 5};
    odl_desc_mlp(&desc, 1, 1, 8, hidden, 2, 3); /* flatten d r d r d */
    odl_desc_freeze_below(&desc, 3);             /* flatten, dense, relu frozen */
    odl_model_cfg cfg = train_cfg(4, ODL_OPTIM_SGD, 0.1f);
    built b;
    CHECK_OK(build_model(&b, &desc, &cfg, 5));
    const int32_t from = odl_model_first_trainable(b.m);
    REQUIRE(from == 3);
    built_ewc be;
    CHECK_OK(build_ewc(&be, b.m));
    const size_t n = odl_ewc_n_params(be.e);
    CHECK(n == 6 * 5 + 5 + 5 * 3 + 3);
    enum { NS = 5 };
    float x[NS * 8];
    fill(x, NS * 8, 17, 1.0f);
    const int32_t y[NS] = {0, 2, 1, 1, 0};
    const size_t lat = odl_model_layer_shape(b.m, from - 1).size;
    float *z = malloc(NS * lat * sizeof(float));
    odl_diag d;
    for (int32_t k = 0; k < NS; k++)
        CHECK_OK(odl_model_forward_range(b.m, 0, from, x + k * 8, 1, z + k * lat, &d));
    odl_rng r;
    odl_rng_seed(&r, 2, 2);
    CHECK_OK(odl_ewc_estimate(be.e, b.m, 0, x, y, NS, 0.0f, &r, &d));
    float *f0 = malloc(n * sizeof(float));
    memcpy(f0, odl_ewc_fisher(be.e), n * sizeof(float));
    CHECK_OK(odl_ewc_estimate(be.e, b.m, from, z, y, NS, 0.0f, &r, &d));
    double *ref = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        ref[i] = f0[i];
    CHECK(fisher_close(t, odl_ewc_fisher(be.e), ref, n, "latent F"));
    free(ref);
    free(f0);
    free(z);
    free_ewc(&be);
    free_model(&b);
}

/* ---- EWC protects a first task ------------------------------------------- */

enum { P_IN = 8, P_HID = 16, P_C = 2, P_TRAIN = 256, P_TEST = 256, P_BATCH = 16 };

/* Task A: label = x0 > 0 with the domain marker x7 = +1.5;
 * task B: label = x1 > 0 with x7 = −1.5. One network can solve both, but
 * plain fine-tuning on B does not care what it does to A. */
static void make_task(float *x, int32_t *y, int32_t n, int task, uint64_t seed)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 11);
    for (int32_t k = 0; k < n; k++) {
        float *v = x + (size_t)k * P_IN;
        for (int j = 0; j < P_IN; j++)
            v[j] = odl_rng_normal(&r);
        v[P_IN - 1] = task == 0 ? 1.5f : -1.5f;
        y[k] = task == 0 ? v[0] > 0.0f : v[1] > 0.0f;
    }
}

static double eval_loss(odl_model *m, const float *x, const int32_t *y, int32_t n)
{
    double total = 0.0;
    odl_diag d;
    for (int32_t k = 0; k < n; k += P_BATCH) {
        const int32_t nb = n - k < P_BATCH ? n - k : P_BATCH;
        const float *logits;
        if (odl_model_forward(m, 0, x + (size_t)k * P_IN, nb, &logits, &d) != ODL_OK)
            return NAN;
        total += (double)odl_softmax_xent_f32(nb, P_C, logits, y + k, NULL, NULL) * nb;
    }
    return total / n;
}

static odl_status train_epochs(odl_model *m, const odl_ewc *e, float lambda, const float *x, const int32_t *y,
                               int32_t n, int epochs, odl_rng *r)
{
    float dl[P_BATCH * P_C];
    odl_diag d;
    odl_status s = ODL_OK;
    for (int ep = 0; ep < epochs && s == ODL_OK; ep++)
        for (int32_t k = 0; k + P_BATCH <= n && s == ODL_OK; k += P_BATCH) {
            const float *logits;
            s = odl_model_forward_train(m, 0, x + (size_t)k * P_IN, P_BATCH, r, &logits, &d);
            if (s != ODL_OK)
                break;
            odl_softmax_xent_f32(P_BATCH, P_C, logits, y + k, NULL, dl);
            s = odl_model_backward(m, dl, P_BATCH, &d);
            if (s == ODL_OK && e)
                s = odl_ewc_add_grad(e, m, lambda);
            if (s == ODL_OK)
                s = odl_model_step(m, NULL, &d);
        }
    return s;
}

static void test_ewc_protects(odl_test_ctx *t)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    small_mlp(&desc, P_IN, P_HID, P_C);
    odl_model_cfg cfg = train_cfg(P_BATCH, ODL_OPTIM_SGD, 0.05f); /* plain SGD: no state to reset */
    built b;
    CHECK_OK(build_model(&b, &desc, &cfg, 77));
    built_ewc be;
    CHECK_OK(build_ewc(&be, b.m));
    const size_t n = odl_ewc_n_params(be.e);
    float *xa = malloc(sizeof(float) * P_IN * P_TRAIN), *xb = malloc(sizeof(float) * P_IN * P_TRAIN);
    float *xat = malloc(sizeof(float) * P_IN * P_TEST);
    int32_t *ya = malloc(sizeof(int32_t) * P_TRAIN), *yb = malloc(sizeof(int32_t) * P_TRAIN);
    int32_t *yat = malloc(sizeof(int32_t) * P_TEST);
    make_task(xa, ya, P_TRAIN, 0, 1);
    make_task(xb, yb, P_TRAIN, 1, 2);
    make_task(xat, yat, P_TEST, 0, 3);
    odl_rng r;
    odl_rng_seed(&r, 8, 8);
    odl_diag d;

    CHECK_OK(train_epochs(b.m, NULL, 0.0f, xa, ya, P_TRAIN, 30, &r));
    const double loss_a0 = eval_loss(b.m, xat, yat, P_TEST);
    CHECK(loss_a0 < 0.25);
    CHECK_OK(odl_ewc_estimate(be.e, b.m, 0, xa, ya, P_TRAIN, 0.0f, &r, &d));
    float *theta_a = malloc(n * sizeof(float));
    get_params(b.m, theta_a);
    double fsum = 0.0;
    for (size_t i = 0; i < n; i++)
        fsum += odl_ewc_fisher(be.e)[i];
    CHECK(fsum > 0.0);

    /* task B without EWC */
    odl_rng r2 = r;
    CHECK_OK(train_epochs(b.m, NULL, 0.0f, xb, yb, P_TRAIN, 30, &r));
    const double loss_a_plain = eval_loss(b.m, xat, yat, P_TEST);
    const double loss_b_plain = eval_loss(b.m, xb, yb, P_TRAIN);
    const double dist_plain = odl_ewc_penalty(be.e, b.m, 2.0f); /* Σ F (θ−θ*)² */

    /* task B with EWC, from the same start */
    set_params(b.m, theta_a);
    const float lambda = 200.0f;
    CHECK_OK(train_epochs(b.m, be.e, lambda, xb, yb, P_TRAIN, 30, &r2));
    const double loss_a_ewc = eval_loss(b.m, xat, yat, P_TEST);
    const double loss_b_ewc = eval_loss(b.m, xb, yb, P_TRAIN);
    const double dist_ewc = odl_ewc_penalty(be.e, b.m, 2.0f);

    odl_test_logf(t, "    task A loss: after A %.4f; after B plain %.4f, with EWC (λ %g) %.4f", loss_a0,
                  loss_a_plain, (double)lambda, loss_a_ewc);
    odl_test_logf(t, "    task B loss: plain %.4f, EWC %.4f; Σ F(θ−θ*)²: plain %.4g, EWC %.4g", loss_b_plain,
                  loss_b_ewc, dist_plain, dist_ewc);
    CHECK(isfinite(loss_a_ewc) && isfinite(dist_ewc));
    CHECK(dist_ewc < 0.5 * dist_plain);
    CHECK(loss_a_ewc < loss_a_plain);
    CHECK(loss_a_plain > 2.0 * loss_a0); /* the setup does forget without EWC */
    free(theta_a);
    free(xa);
    free(xb);
    free(xat);
    free(ya);
    free(yb);
    free(yat);
    free_ewc(&be);
    free_model(&b);
}

/* ---- LwF ------------------------------------------------------------------ */

typedef struct lwf_case {
    const char *name;
    int32_t batch, c, c_old, stride;
    float T, weight;
    const float *z, *teacher, *loss, *dz;
} lwf_case;

#define LWF_CASE(tag)                                                                              \
    {#tag, G_##tag##_BATCH, G_##tag##_C, G_##tag##_C_OLD, G_##tag##_STRIDE, G_##tag##_T, G_##tag##_WEIGHT, \
     G_##tag##_Z, G_##tag##_TEACHER, G_##tag##_LOSS, G_##tag##_DZ}

static const lwf_case lwf_cases[G_LWF_N_CASES] = {LWF_CASE(LWF_A), LWF_CASE(LWF_B), LWF_CASE(LWF_C),
                                                  LWF_CASE(LWF_D)};

static void test_lwf_golden(odl_test_ctx *t)
{
    for (int k = 0; k < G_LWF_N_CASES; k++) {
        const lwf_case *g = &lwf_cases[k];
        const int32_t nz = g->batch * g->c;
        float dl[64];
        REQUIRE(nz <= 64);
        /* pre-filled: the gradient is added, columns past c_old untouched */
        for (int32_t i = 0; i < nz; i++)
            dl[i] = 0.25f;
        const float loss = odl_lwf_loss_f32(g->batch, g->c, g->c_old, g->z, g->teacher, g->stride, g->T,
                                            g->weight, dl);
        CHECK_NEAR(loss, g->loss[0], 1e-5 + 1e-5 * fabs(g->loss[0]));
        int bad = 0;
        for (int32_t i = 0; i < nz; i++) {
            const int32_t col = i % g->c;
            if (col >= g->c_old) {
                if (dl[i] != 0.25f)
                    bad++;
            } else if (fabs((dl[i] - 0.25f) - g->dz[i]) > 1e-6 + 1e-5 * fabs(g->dz[i])) {
                if (bad++ < 3)
                    odl_test_logf(t, "    %s dz[%d]: %.7g vs %.7g", g->name, (int)i, dl[i] - 0.25, g->dz[i]);
            }
        }
        CHECK(bad == 0);
        /* twice: doubled */
        for (int32_t i = 0; i < nz; i++)
            dl[i] = 0.0f;
        odl_lwf_loss_f32(g->batch, g->c, g->c_old, g->z, g->teacher, g->stride, g->T, g->weight, dl);
        const float loss2 =
            odl_lwf_loss_f32(g->batch, g->c, g->c_old, g->z, g->teacher, g->stride, g->T, g->weight, dl);
        CHECK(loss2 == loss); /* the loss itself does not accumulate */
        bad = 0;
        for (int32_t i = 0; i < nz; i++) {
            const int32_t col = i % g->c;
            if (col >= g->c_old ? dl[i] != 0.0f : fabs(dl[i] - 2.0f * g->dz[i]) > 2e-6 + 2e-5 * fabs(g->dz[i]))
                bad++;
        }
        CHECK(bad == 0);
        /* dlogits NULL: loss only */
        CHECK(odl_lwf_loss_f32(g->batch, g->c, g->c_old, g->z, g->teacher, g->stride, g->T, g->weight, NULL) ==
              loss);
    }
}

static void test_lwf_gradcheck(odl_test_ctx *t)
{
    for (int k = 0; k < G_LWF_N_CASES; k++) {
        const lwf_case *g = &lwf_cases[k];
        const int32_t nz = g->batch * g->c;
        float z[64], dl[64];
        REQUIRE(nz <= 64);
        memcpy(z, g->z, sizeof(float) * nz);
        memset(dl, 0, sizeof dl);
        odl_lwf_loss_f32(g->batch, g->c, g->c_old, z, g->teacher, g->stride, g->T, g->weight, dl);
        int bad = 0;
        for (int32_t i = 0; i < nz; i++) {
            const float eps = 1e-2f, keep = z[i];
            z[i] = keep + eps;
            const double lp = odl_lwf_loss_f32(g->batch, g->c, g->c_old, z, g->teacher, g->stride, g->T,
                                               g->weight, NULL);
            z[i] = keep - eps;
            const double lm = odl_lwf_loss_f32(g->batch, g->c, g->c_old, z, g->teacher, g->stride, g->T,
                                               g->weight, NULL);
            z[i] = keep;
            const double fd = (lp - lm) / (2.0 * (double)eps);
            if (fabs(fd - dl[i]) > 2e-4 + 1e-3 * fabs(fd) && bad++ < 3)
                odl_test_logf(t, "    %s z[%d]: analytic %.6g vs numeric %.6g", g->name, (int)i, (double)dl[i], fd);
        }
        CHECK(bad == 0);
    }
}

static void test_lwf_edges(odl_test_ctx *t)
{
    /* the student equal to the teacher: loss 0, gradient 0 */
    float z[2 * 4] = {0.3f, -1.0f, 2.0f, 9.0f, 1.5f, 0.0f, -0.5f, -9.0f};
    float teach[2 * 3] = {0.3f, -1.0f, 2.0f, 1.5f, 0.0f, -0.5f};
    float dl[8] = {0};
    CHECK_NEAR(odl_lwf_loss_f32(2, 4, 3, z, teach, 3, 2.0f, 1.0f, dl), 0.0, 1e-6);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(dl[i], 0.0, 1e-7);
    /* large logits stay finite (stable log-softmax) */
    float zb[3] = {80.0f, -80.0f, 0.0f}, tb[3] = {-80.0f, 80.0f, 0.0f};
    float db[3] = {0};
    const float lb = odl_lwf_loss_f32(1, 3, 3, zb, tb, 3, 1.0f, 1.0f, db);
    CHECK(isfinite(lb) && lb > 100.0f);
    CHECK(isfinite(db[0]) && isfinite(db[1]) && isfinite(db[2]));
    /* bad arguments: NAN, dlogits untouched */
    memset(dl, 0, sizeof dl);
    CHECK(isnan(odl_lwf_loss_f32(0, 4, 3, z, teach, 3, 2.0f, 1.0f, dl)));
    CHECK(isnan(odl_lwf_loss_f32(2, 4, 5, z, teach, 3, 2.0f, 1.0f, dl)));
    CHECK(isnan(odl_lwf_loss_f32(2, 4, 0, z, teach, 3, 2.0f, 1.0f, dl)));
    CHECK(isnan(odl_lwf_loss_f32(2, 4, 3, z, teach, 2, 2.0f, 1.0f, dl)));
    CHECK(isnan(odl_lwf_loss_f32(2, 4, 3, z, teach, 3, 0.0f, 1.0f, dl)));
    CHECK(isnan(odl_lwf_loss_f32(2, 4, 3, z, teach, 3, NAN, 1.0f, dl)));
    CHECK(isnan(odl_lwf_loss_f32(2, 4, 3, NULL, teach, 3, 2.0f, 1.0f, dl)));
    for (int i = 0; i < 8; i++)
        CHECK(dl[i] == 0.0f);
}

static const odl_test_case cases[] = {
    {"ewc_plan_matches_arena", test_ewc_plan_matches_arena},
    {"ewc_errors", test_ewc_errors},
    {"ewc_penalty_gradcheck", test_ewc_penalty_gradcheck},
    {"ewc_fisher_direct", test_ewc_fisher_direct},
    {"ewc_fisher_frozen_base", test_ewc_fisher_frozen_base},
    {"ewc_protects", test_ewc_protects},
    {"lwf_golden", test_lwf_golden},
    {"lwf_gradcheck", test_lwf_gradcheck},
    {"lwf_edges", test_lwf_edges},
};

TEST_MAIN(cases)
