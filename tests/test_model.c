/* Model-level tests: every layer's backward against central finite
 * differences, the freeze boundary, plans against the arena actually used,
 * optimised kernels against their reference loops, determinism. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/layers.h"
#include "odl/model.h"

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

static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 7);
    for (size_t i = 0; i < n; i++)
        x[i] = (2.0f * odl_rng_uniform(&r) - 1.0f) * scale;
}

/* Descriptions in tests live on the stack with room for NODES nodes. */
#define NODES 64
#define DESC(name)                \
    odl_node_desc name##_nodes[NODES]; \
    odl_model_desc name;           \
    odl_desc_init(&name, name##_nodes, NODES, 1, 1, 1)

/* Restarts d over its own storage with a new input shape. */
static void tinit(odl_model_desc *d, int32_t c, int32_t h, int32_t w)
{
    odl_desc_init(d, d->layers, d->cap_layers, c, h, w);
}

/* Loss of the model on (x, y) with dropout drawn from a copy of *rng0. */
static double loss_at(odl_model *m, const float *x, const int32_t *y, int32_t n, const odl_rng *rng0)
{
    odl_rng r = *rng0;
    const float *logits;
    odl_diag d;
    if (odl_model_forward_train(m, 0, x, n, &r, &logits, &d) != ODL_OK)
        return NAN;
    return odl_softmax_xent_f32(n, odl_model_n_classes(m), logits, y, NULL, NULL);
}

/* Compares d(loss)/d(parameters) after backward with central differences:
 * a spread sample of single parameters, then the derivative along one
 * random direction through every trainable parameter at once (which sums
 * the gradient over all of them, so a small error anywhere shows). The
 * analytic gradient is scaled by gscale first, so a test can check that a
 * wrong gradient is caught. Runs in float: eps = 1e-3 keeps the rounding
 * of a loss near 1 (about 1e-7) far below the difference it measures
 * (about 1e-3 x gradient); single points allow 1e-3 + 3% and the direction
 * 1e-3 + 1%, while a wrong backward is off by O(1). */
typedef struct grad_report {
    int checked, bad, kinks;
    double dir_an, dir_fd; /* along the worst random direction */
    int32_t dir_scope;     /* which: -1 every parameter, else the k-th parameter tensor */
    double dir_ratio;      /* its error over the tolerance (<= 1 passes) */
    int dir_checked, dir_kinks; /* directions compared; skipped at a kink */
} grad_report;

static void grad_compare(odl_test_ctx *t, odl_model *m, const float *x, const int32_t *y, int32_t batch,
                         const odl_rng *rng0, double gscale, grad_report *rep)
{
    const odl_model_desc *desc = odl_model_get_desc(m);
    memset(rep, 0, sizeof *rep);
    const double l0 = loss_at(m, x, y, batch, rng0);
    /* keep the gradients: loss_at's forward passes do not touch them, but copy anyway */
    size_t total = 0;
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t ng;
            if (odl_model_grad(m, i, which, &ng))
                total += ng;
        }
    float *gall = malloc(sizeof(float) * (total + 1));
    float *vall = malloc(sizeof(float) * (total + 1));
    size_t at = 0;
    odl_rng vr;
    odl_rng_seed(&vr, 1234, 9);
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n, ng;
            float *p = odl_model_param(m, i, which, &n);
            float *g = odl_model_grad(m, i, which, &ng);
            if (!g)
                continue;
            for (size_t k = 0; k < ng; k++) {
                gall[at + k] = (float)(g[k] * gscale);
                vall[at + k] = odl_rng_uniform(&vr) < 0.5f ? -1.0f : 1.0f;
            }
            size_t stride = n > 40 ? n / 40 : 1; /* a spread sample of parameters */
            for (size_t k = 0; k < n; k += stride) {
                const float eps = 1e-3f, keep = p[k];
                p[k] = keep + eps;
                double lp = loss_at(m, x, y, batch, rng0);
                p[k] = keep - eps;
                double lm = loss_at(m, x, y, batch, rng0);
                p[k] = keep;
                /* A ReLU or max-pool kink inside ±eps makes the central
                 * difference meaningless; such points show a second
                 * difference far above float noise and are skipped (and
                 * counted: too many skips fail the test). */
                if (fabs(lp - 2.0 * l0 + lm) > 2e-6) {
                    rep->kinks++;
                    continue;
                }
                double fd = (lp - lm) / (2.0 * (double)eps);
                double an = gall[at + k];
                rep->checked++;
                if (fabs(fd - an) > 1e-3 + 3e-2 * fabs(fd) && rep->bad++ < 3 && t)
                    odl_test_logf(t, "    layer %d (%s) %s[%zu]: analytic %.6g vs numeric %.6g", (int)i,
                                  odl_layer_type_name(desc->layers[i].type), which ? "b" : "w", k, an, fd);
            }
            at += ng;
        }
    /* directions: every parameter moves by eps * (+-1) (scope -1), then each
     * parameter tensor alone, from a saved copy; the worst one is reported */
    float *p0 = malloc(sizeof(float) * (total + 1));
    size_t q0 = 0;
    int32_t n_tensors = 0;
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n, ng;
            const float *p = odl_model_param(m, i, which, &n);
            if (!odl_model_grad(m, i, which, &ng))
                continue;
            memcpy(p0 + q0, p, sizeof(float) * n);
            q0 += ng;
            n_tensors++;
        }
    rep->dir_ratio = 0.0;
    for (int32_t scope = -1; scope < n_tensors; scope++) {
        /* shorter steps when the second difference shows a kink; its
         * threshold and the tolerance follow eps (smooth curvature shrinks
         * as eps^2, float noise of the two losses, ~3e-7, does not) */
        static const float steps[3] = {1e-3f, 2.5e-4f, 6e-5f};
        int done = 0;
        for (int attempt = 0; attempt < 3 && !done; attempt++) {
            const float eps = steps[attempt];
            double lpm[2], an = 0.0;
            for (int sgn = 0; sgn < 3; sgn++) { /* +eps, -eps, restore */
                size_t q = 0;
                int32_t idx = 0;
                for (int32_t i = 0; i < desc->n_layers; i++)
                    for (int which = 0; which < 2; which++) {
                        size_t n, ng;
                        float *p = odl_model_param(m, i, which, &n);
                        if (!odl_model_grad(m, i, which, &ng))
                            continue;
                        const int in_scope = scope < 0 || idx == scope;
                        for (size_t k = 0; k < n; k++) {
                            p[k] = sgn == 2 || !in_scope ? p0[q + k] : p0[q + k] + (sgn ? -eps : eps) * vall[q + k];
                            if (sgn == 0 && in_scope)
                                an += (double)gall[q + k] * vall[q + k];
                        }
                        q += ng;
                        idx++;
                    }
                if (sgn < 2)
                    lpm[sgn] = loss_at(m, x, y, batch, rng0);
            }
            const double e = (double)eps / 1e-3;
            if (fabs(lpm[0] - 2.0 * l0 + lpm[1]) > 1e-5 * e * e + 3e-7)
                continue; /* a kink on the way */
            const double fd = (lpm[0] - lpm[1]) / (2.0 * (double)eps);
            const double ratio = fabs(an - fd) / (2.5e-7 / (double)eps + 1e-3 + 1e-2 * fabs(fd));
            if (ratio > rep->dir_ratio) {
                rep->dir_ratio = ratio;
                rep->dir_fd = fd;
                rep->dir_an = an;
                rep->dir_scope = scope;
            }
            rep->dir_checked++;
            done = 1;
        }
        if (!done)
            rep->dir_kinks++;
    }
    free(p0);
    free(gall);
    free(vall);
}

static int dir_ok(const grad_report *r)
{
    return r->dir_ratio <= 1.0 && r->dir_checked > 0 && r->dir_kinks <= r->dir_checked;
}

/* Random values for every parameter (batch-norm scales near 1), so an
 * identity start (adapters, batch norm) hides nothing. */
static void perturb_params(odl_model *m, uint64_t seed)
{
    const odl_model_desc *desc = odl_model_get_desc(m);
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            float *p = odl_model_param(m, i, which, &n);
            if (!p)
                continue;
            const int32_t type = desc->layers[i].type;
            if (type != ODL_LAYER_BATCHNORM && type != ODL_LAYER_ADAPTER)
                continue;
            fill(p, n, seed + (uint64_t)(2 * i + which), 0.3f);
            if (type == ODL_LAYER_BATCHNORM && which == 0)
                for (size_t k = 0; k < n; k++)
                    p[k] += 1.0f;
        }
}

static void gradcheck(odl_test_ctx *t, const odl_model_desc *desc, int32_t batch)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = batch;
    built b;
    CHECK_OK(build_model(&b, desc, &cfg, 42));
    perturb_params(b.m, 500);
    const odl_layer_shape in = odl_model_layer_shape(b.m, -1);
    float *x = malloc(sizeof(float) * in.size * batch);
    fill(x, in.size * batch, 3, 1.0f);
    int32_t y[8];
    const int32_t C = odl_model_n_classes(b.m);
    for (int32_t k = 0; k < batch; k++)
        y[k] = k % C;
    odl_rng rng0;
    odl_rng_seed(&rng0, 99, 5);
    odl_diag d;
    odl_rng r = rng0;
    const float *logits;
    float *dl = malloc(sizeof(float) * C * batch);
    CHECK_OK(odl_model_forward_train(b.m, 0, x, batch, &r, &logits, &d));
    odl_softmax_xent_f32(batch, C, logits, y, NULL, dl);
    CHECK_OK(odl_model_backward(b.m, dl, batch, &d));
    for (int32_t i = 0; i < desc->n_layers; i++) {
        size_t n, ng;
        if (!odl_model_param(b.m, i, 0, &n) || !n)
            continue;
        if (!desc->layers[i].trainable)
            CHECK(odl_model_grad(b.m, i, 0, &ng) == NULL); /* frozen: no gradient at all */
        else
            CHECK(odl_model_grad(b.m, i, 0, &ng) != NULL && ng == n);
    }
    grad_report rep;
    grad_compare(t, b.m, x, y, batch, &rng0, 1.0, &rep);
    if (rep.kinks * 10 > rep.checked)
        odl_test_logf(t, "    %d of %d points at a kink", rep.kinks, rep.kinks + rep.checked);
    if (!dir_ok(&rep))
        odl_test_logf(t, "    along a random direction (parameter tensor %d): analytic %.6g vs numeric %.6g (%d checked, %d at a kink)",
                      (int)rep.dir_scope, rep.dir_an, rep.dir_fd, rep.dir_checked, rep.dir_kinks);
    if (rep.kinks * 10 > rep.checked || rep.bad || !dir_ok(&rep)) {
        char names[512] = "";
        for (int32_t i = 0; i < desc->n_layers && strlen(names) < 400; i++) {
            strcat(names, " ");
            strcat(names, odl_layer_type_name(desc->layers[i].type));
        }
        odl_test_logf(t, "    in the graph:%s", names);
    }
    CHECK(rep.kinks * 10 <= rep.checked);
    CHECK(rep.checked > 0);
    CHECK(rep.bad == 0);
    CHECK(dir_ok(&rep));
    free(dl);
    free(x);
    free_model(&b);
}

/* A trainable conv feeds the layer under test, so that layer's input
 * gradient is checked through the conv's weight gradient. */
static void chain(odl_model_desc *d, int32_t c, int32_t h, int32_t w)
{
    tinit(d, c, h, w);
    odl_desc_conv2d(d, 3, 3, 1, 1);
}

static void tail(odl_model_desc *d)
{
    odl_desc_flatten(d);
    odl_desc_dense(d, 4);
}

static void test_grad_dense(odl_test_ctx *t)
{
    DESC(d);
    tinit(&d, 1, 1, 9);
    odl_desc_dense(&d, 7);
    odl_desc_relu(&d);
    odl_desc_dense(&d, 5);
    gradcheck(t, &d, 3);
}

static void test_grad_conv2d(odl_test_ctx *t)
{
    DESC(d);
    chain(&d, 2, 7, 6);
    odl_desc_conv2d(&d, 4, 3, 2, 1); /* stride 2, pad 1 */
    tail(&d);
    gradcheck(t, &d, 2);
    chain(&d, 1, 6, 6);
    odl_desc_conv2d(&d, 2, 2, 1, 0); /* even kernel, no padding */
    tail(&d);
    gradcheck(t, &d, 2);
}

static void test_grad_depthwise(odl_test_ctx *t)
{
    DESC(d);
    chain(&d, 2, 6, 5);
    odl_desc_depthwise(&d, 2, 3, 1, 1);
    tail(&d);
    gradcheck(t, &d, 2);
    chain(&d, 2, 7, 7);
    odl_desc_depthwise(&d, 1, 3, 2, 0);
    tail(&d);
    gradcheck(t, &d, 2);
}

static void test_grad_pools(odl_test_ctx *t)
{
    DESC(d);
    chain(&d, 1, 7, 7);
    odl_desc_maxpool(&d, 2, 2);
    tail(&d);
    gradcheck(t, &d, 2);
    chain(&d, 1, 7, 7);
    odl_desc_avgpool(&d, 3, 2);
    tail(&d);
    gradcheck(t, &d, 2);
    chain(&d, 1, 5, 4);
    odl_desc_gap(&d);
    tail(&d);
    gradcheck(t, &d, 2);
}

static void test_grad_activations(odl_test_ctx *t)
{
    DESC(d);
    chain(&d, 1, 5, 5);
    odl_desc_relu(&d);
    tail(&d);
    gradcheck(t, &d, 2);
    chain(&d, 1, 5, 5);
    odl_desc_relu6(&d);
    tail(&d);
    gradcheck(t, &d, 2);
    chain(&d, 1, 5, 5);
    odl_desc_dropout(&d, 0.3f);
    tail(&d);
    gradcheck(t, &d, 3);
}

/* Adapters start as the identity (W_up = 0), which would hide a wrong
 * W_down gradient; gradcheck_perturbed first fills every parameter. */
static void test_grad_adapter(odl_test_ctx *t)
{
    DESC(d);
    chain(&d, 1, 4, 4);
    odl_desc_flatten(&d);
    odl_desc_adapter(&d, 5);
    odl_desc_dense(&d, 4);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 3;
    built b;
    CHECK_OK(build_model(&b, &d, &cfg, 4));
    size_t n;
    float *w = odl_model_param(b.m, 2, 0, &n);
    REQUIRE(w && n == 2 * 48 * 5);
    fill(w, n, 77, 0.3f);
    float *bb = odl_model_param(b.m, 2, 1, &n);
    REQUIRE(bb && n == 48 + 5);
    fill(bb, n, 78, 0.3f);
    const odl_layer_shape in = odl_model_layer_shape(b.m, -1);
    float x[3 * 16];
    fill(x, in.size * 3, 3, 1.0f);
    int32_t y[3] = {0, 1, 3};
    odl_rng rng0;
    odl_rng_seed(&rng0, 99, 5);
    odl_rng r = rng0;
    const float *logits;
    float dl[12];
    CHECK_OK(odl_model_forward_train(b.m, 0, x, 3, &r, &logits, NULL));
    odl_softmax_xent_f32(3, 4, logits, y, NULL, dl);
    CHECK_OK(odl_model_backward(b.m, dl, 3, NULL));
    const double l0 = loss_at(b.m, x, y, 3, &rng0);
    int checked = 0, bad = 0, kinks = 0;
    for (int32_t i = 0; i < d.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t np, ng;
            float *p = odl_model_param(b.m, i, which, &np);
            float *g = odl_model_grad(b.m, i, which, &ng);
            if (!p || !np)
                continue;
            float *gs = malloc(sizeof(float) * np);
            memcpy(gs, g, sizeof(float) * np);
            for (size_t k = 0; k < np; k += np > 60 ? np / 60 : 1) {
                const float eps = 1e-3f, keep = p[k];
                p[k] = keep + eps;
                double lp = loss_at(b.m, x, y, 3, &rng0);
                p[k] = keep - eps;
                double lm = loss_at(b.m, x, y, 3, &rng0);
                p[k] = keep;
                if (fabs(lp - 2.0 * l0 + lm) > 2e-6) {
                    kinks++;
                    continue;
                }
                double fd = (lp - lm) / (2.0 * eps);
                checked++;
                if (fabs(fd - gs[k]) > 1e-3 + 3e-2 * fabs(fd) && bad++ < 3)
                    odl_test_logf(t, "    layer %d %s[%zu]: analytic %.6g vs numeric %.6g", (int)i, which ? "b" : "w", k,
                                  (double)gs[k], fd);
            }
            free(gs);
        }
    CHECK(checked > 100 && bad == 0 && kinks * 10 <= checked);
    free_model(&b);
}

/* Inserting a fresh adapter leaves a trained model's outputs unchanged. */
static void test_adapter_identity(odl_test_ctx *t)
{
    DESC(d);
    DESC(da);
    odl_desc_edge_cnn(&d, 1, 12, 12, 5);
    CHECK_OK(odl_desc_copy(&da, &d, NULL));
    CHECK_OK(odl_desc_insert_adapter(&da, 9, 8));
    CHECK(da.n_layers == d.n_layers + 1 && da.layers[9].type == ODL_LAYER_ADAPTER);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 2;
    built a, b;
    CHECK_OK(build_model(&a, &d, &cfg, 8));
    CHECK_OK(build_model(&b, &da, &cfg, 9));
    for (int32_t i = 0; i < d.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n1, n2;
            const float *src = odl_model_param_const(a.m, i, which, &n1);
            float *dst = odl_model_param(b.m, i < 9 ? i : i + 1, which, &n2);
            if (n1) {
                REQUIRE(dst && n1 == n2);
                memcpy(dst, src, sizeof(float) * n1);
            }
        }
    float x[2 * 144];
    fill(x, 288, 12, 1.0f);
    const float *oa, *ob;
    float ya[10];
    CHECK_OK(odl_model_forward(a.m, 0, x, 2, &oa, NULL));
    memcpy(ya, oa, sizeof ya);
    CHECK_OK(odl_model_forward(b.m, 0, x, 2, &ob, NULL));
    CHECK(memcmp(ya, ob, sizeof ya) == 0);
    size_t total;
    odl_layer_shape shapes[NODES];
    CHECK_OK(odl_desc_count_params(&da, shapes, &total, NULL));
    CHECK(total == 10853 + 1096); /* edge-cnn at 12x12, 5 classes; adapter 2*64*8 + 64 + 8 */
    free_model(&a);
    free_model(&b);
}

static void test_grad_edge_cnn(odl_test_ctx *t)
{
    DESC(d);
    odl_desc_edge_cnn(&d, 1, 12, 12, 5);
    gradcheck(t, &d, 2);
}

static void test_freeze_boundary(odl_test_ctx *t)
{
    DESC(full);
    DESC(head);
    odl_desc_edge_cnn(&full, 1, 28, 28, 10);
    CHECK_OK(odl_desc_copy(&head, &full, NULL));
    odl_desc_freeze_below(&head, 9);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 16;
    odl_mem_plan pf, ph;
    odl_diag d;
    CHECK_OK(odl_model_plan(&full, &cfg, &pf, &d));
    CHECK_OK(odl_model_plan(&head, &cfg, &ph, &d));
    /* head only: grads for 64*10+10 params, two Adam moments, nothing else */
    CHECK(ph.bytes[ODL_MEM_GRADS] == 2560 + 48);
    CHECK(ph.bytes[ODL_MEM_OPTIM] == 2 * (2560 + 48));
    CHECK(pf.bytes[ODL_MEM_GRADS] == pf.bytes[ODL_MEM_PARAMS]);
    /* activations kept: only the head's input (64) and logits (10), batch 16 */
    CHECK(ph.bytes[ODL_MEM_ACTIVATIONS] == 16 * 64 * 4 + 16 * 10 * 4);
    CHECK(pf.bytes[ODL_MEM_ACTIVATIONS] > 10 * ph.bytes[ODL_MEM_ACTIVATIONS]);
    size_t total, trainable;
    odl_layer_shape shapes[NODES];
    CHECK_OK(odl_desc_count_params(&full, shapes, &total, &trainable));
    CHECK(total == 52138 && trainable == 52138);
    CHECK_OK(odl_desc_count_params(&head, shapes, &total, &trainable));
    CHECK(total == 52138 && trainable == 650);

    /* training the head leaves the frozen layers' weights untouched */
    built b;
    CHECK_OK(build_model(&b, &head, &cfg, 1));
    size_t n0;
    const float *w0 = odl_model_param_const(b.m, 0, 0, &n0);
    float before[80];
    memcpy(before, w0, sizeof before);
    size_t nh;
    const float *wh = odl_model_param_const(b.m, 9, 0, &nh);
    float head_before[640];
    memcpy(head_before, wh, sizeof head_before);
    float x[16 * 784];
    int32_t y[16];
    fill(x, 16 * 784, 5, 1.0f);
    for (int k = 0; k < 16; k++)
        y[k] = k % 10;
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    float loss;
    CHECK_OK(odl_model_train_step(b.m, 0, x, y, 16, &r, &loss, &d));
    CHECK(memcmp(before, w0, sizeof before) == 0);
    CHECK(memcmp(head_before, wh, sizeof head_before) != 0);
    size_t ng;
    CHECK(odl_model_grad(b.m, 7, 0, &ng) == NULL);
    CHECK(odl_model_grad(b.m, 9, 0, &ng) != NULL && ng == 640);
    free_model(&b);
}

/* The plan is the arena actually used, byte for byte, and one byte less is
 * refused with a message naming needed and available bytes. */
static void test_plan_matches_arena(odl_test_ctx *t)
{
    odl_node_desc nodes[3][NODES];
    odl_model_desc descs[3];
    for (int k = 0; k < 3; k++)
        odl_desc_init(&descs[k], nodes[k], NODES, 1, 1, 1);
    odl_desc_edge_cnn(&descs[0], 1, 28, 28, 10);
    CHECK_OK(odl_desc_copy(&descs[1], &descs[0], NULL));
    odl_desc_freeze_below(&descs[1], 9);
    int32_t hidden[2] = {32, 16};
    odl_desc_mlp(&descs[2], 1, 1, 20, hidden, 2, 3);
    for (int k = 0; k < 3; k++)
        for (int mode = 0; mode < 2; mode++)
            for (int inplace = 0; inplace < 2; inplace++) {
                odl_model_cfg cfg = odl_model_cfg_defaults();
                cfg.mode = mode ? ODL_MODE_TRAIN : ODL_MODE_INFER;
                cfg.max_batch = 1 + 7 * mode;
                cfg.frozen_weights_in_place = inplace;
                if (mode && k == 2)
                    cfg.optim = odl_optim_defaults(ODL_OPTIM_SGD);
                odl_mem_plan p;
                odl_diag d;
                CHECK_OK(odl_model_plan(&descs[k], &cfg, &p, &d));
                size_t sum = 0;
                for (int j = 0; j < ODL_MEM_KINDS; j++)
                    sum += p.bytes[j];
                CHECK(sum == p.total);
                uint8_t *buf = malloc(p.total + 64);
                odl_arena a;
                odl_model *m;
                /* misaligned start: the arena aligns itself, the plan still holds */
                CHECK_OK(odl_arena_init(&a, buf + 16, p.total));
                CHECK_OK(odl_model_init(&m, &descs[k], &cfg, &a, &d));
                CHECK(a.used == p.total);
                CHECK(memcmp(&a.plan, &p, sizeof p) == 0);
                odl_arena small;
                CHECK_OK(odl_arena_init(&small, buf + 16, p.total - 1));
                odl_diag_clear(&d);
                CHECK(odl_model_init(&m, &descs[k], &cfg, &small, &d) == ODL_ERR_NOMEM);
                CHECK(strstr(d.msg, "needs") != NULL && strstr(d.msg, "available") != NULL);
                free(buf);
            }
}

static void test_bad_descriptions(odl_test_ctx *t)
{
    DESC(d);
    odl_diag dg;
    tinit(&d, 1, 4, 4);
    odl_desc_conv2d(&d, 2, 5, 1, 0); /* 5x5 window on 4x4 input */
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE);
    CHECK(strstr(dg.msg, "does not fit") != NULL);
    tinit(&d, 1, 4, 4);
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE); /* no layers */
    tinit(&d, 1, 4, 4);
    odl_desc_dense(&d, 3);
    d.layers[0].type = 77;
    CHECK(odl_desc_check(&d, NULL, &dg) != ODL_OK);
    CHECK(odl_desc_dropout(&d, 1.0f) == ODL_ERR_ARG);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 0;
    odl_mem_plan p;
    tinit(&d, 1, 4, 4);
    odl_desc_dense(&d, 3);
    CHECK(odl_model_plan(&d, &cfg, &p, &dg) == ODL_ERR_ARG);
    /* a 240-byte file's description: 1x8192x8192, flatten (2^26 channels),
     * depthwise x32 — 2^31 channels must be refused without int overflow */
    odl_node_desc big[2];
    CHECK(odl_desc_init(&d, big, 2, 1, 8192, 8192) == ODL_OK);
    CHECK(odl_desc_flatten(&d) == ODL_OK);
    CHECK(odl_desc_depthwise(&d, 32, 1, 1, 0) == ODL_OK);
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE);
    CHECK(strstr(dg.msg, "depthwise") != NULL);
    /* the same for a conv whose weights exceed any size_t product check */
    CHECK(odl_desc_init(&d, big, 2, 16384, 64, 64) == ODL_OK);
    CHECK(odl_desc_relu(&d) == ODL_OK);
    CHECK(odl_desc_conv2d(&d, 65536, 64, 1, 0) == ODL_OK);
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE);
}

static void test_forward_errors(odl_test_ctx *t)
{
    DESC(d);
    tinit(&d, 1, 1, 4);
    odl_desc_dense(&d, 3);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 2;
    built b;
    CHECK_OK(build_model(&b, &d, &cfg, 1));
    float x[12] = {0};
    const float *out;
    odl_diag dg;
    CHECK(odl_model_forward(b.m, 0, x, 3, &out, &dg) == ODL_ERR_ARG); /* over max_batch */
    CHECK(strstr(dg.msg, "max_batch") != NULL);
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    CHECK(odl_model_forward_train(b.m, 0, x, 1, &r, &out, &dg) == ODL_ERR_STATE); /* inference model */
    CHECK(odl_model_backward(b.m, x, 1, &dg) == ODL_ERR_STATE);
    free_model(&b);
}

static void test_kernels_match_reference(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 11, 3);
    for (int trial = 0; trial < 30; trial++) {
        odl_window_dims w;
        memset(&w, 0, sizeof w);
        w.batch = 1 + (int32_t)odl_rng_below(&r, 3);
        w.in_c = 1 + (int32_t)odl_rng_below(&r, 4);
        w.in_h = 3 + (int32_t)odl_rng_below(&r, 8);
        w.in_w = 3 + (int32_t)odl_rng_below(&r, 8);
        w.k_h = 1 + (int32_t)odl_rng_below(&r, 3);
        w.k_w = 1 + (int32_t)odl_rng_below(&r, 3);
        w.stride_h = 1 + (int32_t)odl_rng_below(&r, 2);
        w.stride_w = 1 + (int32_t)odl_rng_below(&r, 2);
        w.pad_h = (int32_t)odl_rng_below(&r, (uint32_t)w.k_h);
        w.pad_w = (int32_t)odl_rng_below(&r, (uint32_t)w.k_w);
        w.out_c = 1 + (int32_t)odl_rng_below(&r, 5);
        w.pad_b = w.pad_h;
        w.pad_r = w.pad_w;
        w.dil_h = w.dil_w = w.groups = 1;
        w.out_h = odl_window_out_size(w.in_h, w.k_h, w.stride_h, w.pad_h);
        w.out_w = odl_window_out_size(w.in_w, w.k_w, w.stride_w, w.pad_w);
        size_t nx = (size_t)w.batch * w.in_c * w.in_h * w.in_w, ny = (size_t)w.batch * w.out_c * w.out_h * w.out_w;
        size_t nw = (size_t)w.out_c * w.in_c * w.k_h * w.k_w;
        float *x = malloc(4 * nx), *wt = malloc(4 * nw), *b = malloc(4 * w.out_c), *y1 = malloc(4 * ny),
              *y2 = malloc(4 * ny), *dy = malloc(4 * ny), *dx1 = malloc(4 * nx), *dx2 = malloc(4 * nx),
              *dw1 = calloc(nw, 4), *dw2 = calloc(nw, 4), *db1 = calloc(w.out_c, 4), *db2 = calloc(w.out_c, 4),
              *sc = malloc(4 * odl_conv2d_scratch_floats(&w));
        fill(x, nx, 100 + trial, 1.0f);
        fill(wt, nw, 200 + trial, 1.0f);
        fill(b, w.out_c, 300 + trial, 1.0f);
        fill(dy, ny, 400 + trial, 1.0f);
        odl_conv2d_forward_f32(&w, x, wt, b, y1, sc);
        odl_conv2d_forward_f32_ref(&w, x, wt, b, y2);
        odl_conv2d_backward_f32(&w, x, wt, dy, dx1, dw1, db1, sc);
        odl_conv2d_backward_f32_ref(&w, x, wt, dy, dx2, dw2, db2);
        float worst = 0.0f;
        for (size_t i = 0; i < ny; i++) worst = fmaxf(worst, fabsf(y1[i] - y2[i]));
        for (size_t i = 0; i < nx; i++) worst = fmaxf(worst, fabsf(dx1[i] - dx2[i]));
        for (size_t i = 0; i < nw; i++) worst = fmaxf(worst, fabsf(dw1[i] - dw2[i]));
        for (int32_t i = 0; i < w.out_c; i++) worst = fmaxf(worst, fabsf(db1[i] - db2[i]));
        CHECK(worst < 1e-4f);
        free(x); free(wt); free(b); free(y1); free(y2); free(dy); free(dx1); free(dx2);
        free(dw1); free(dw2); free(db1); free(db2); free(sc);

        odl_dense_dims dd = {w.batch, 1 + (int32_t)odl_rng_below(&r, 70), 1 + (int32_t)odl_rng_below(&r, 20)};
        size_t dnx = (size_t)dd.batch * dd.in, dny = (size_t)dd.batch * dd.out, dnw = (size_t)dd.in * dd.out;
        float *a = malloc(4 * dnx), *ww = malloc(4 * dnw), *bb = malloc(4 * dd.out), *o1 = malloc(4 * dny),
              *o2 = malloc(4 * dny), *g = malloc(4 * dny), *gx1 = malloc(4 * dnx), *gx2 = malloc(4 * dnx),
              *gw1 = calloc(dnw, 4), *gw2 = calloc(dnw, 4), *gb1 = calloc(dd.out, 4), *gb2 = calloc(dd.out, 4);
        fill(a, dnx, 500 + trial, 1.0f);
        fill(ww, dnw, 600 + trial, 1.0f);
        fill(bb, dd.out, 700 + trial, 1.0f);
        fill(g, dny, 800 + trial, 1.0f);
        odl_dense_forward_f32(&dd, a, ww, bb, o1);
        odl_dense_forward_f32_ref(&dd, a, ww, bb, o2);
        odl_dense_backward_f32(&dd, a, ww, g, gx1, gw1, gb1);
        odl_dense_backward_f32_ref(&dd, a, ww, g, gx2, gw2, gb2);
        worst = 0.0f;
        for (size_t i = 0; i < dny; i++) worst = fmaxf(worst, fabsf(o1[i] - o2[i]));
        for (size_t i = 0; i < dnx; i++) worst = fmaxf(worst, fabsf(gx1[i] - gx2[i]));
        for (size_t i = 0; i < dnw; i++) worst = fmaxf(worst, fabsf(gw1[i] - gw2[i]));
        for (int32_t i = 0; i < dd.out; i++) worst = fmaxf(worst, fabsf(gb1[i] - gb2[i]));
        CHECK(worst < 1e-4f);
        free(a); free(ww); free(bb); free(o1); free(o2); free(g); free(gx1); free(gx2);
        free(gw1); free(gw2); free(gb1); free(gb2);
    }
}

/* Same seed, same data: bit-identical weights after training. */
static void test_deterministic(odl_test_ctx *t)
{
    DESC(d);
    odl_desc_edge_cnn(&d, 1, 8, 8, 3);
    odl_desc_dropout(&d, 0.0f); /* exercise the dropout path too */
    d.layers[d.n_layers - 1].alpha = 0.2f;
    /* dropout after logits is odd but legal; keep a classifier on top */
    odl_desc_dense(&d, 3);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 4;
    built b1, b2;
    CHECK_OK(build_model(&b1, &d, &cfg, 5));
    CHECK_OK(build_model(&b2, &d, &cfg, 5));
    float x[4 * 64];
    int32_t y[4] = {0, 1, 2, 1};
    fill(x, sizeof x / 4, 9, 1.0f);
    odl_rng r1, r2;
    odl_rng_seed(&r1, 77, 1);
    odl_rng_seed(&r2, 77, 1);
    odl_diag dg;
    for (int s = 0; s < 5; s++) {
        float l1, l2;
        CHECK_OK(odl_model_train_step(b1.m, 0, x, y, 4, &r1, &l1, &dg));
        CHECK_OK(odl_model_train_step(b2.m, 0, x, y, 4, &r2, &l2, &dg));
        CHECK(memcmp(&l1, &l2, sizeof l1) == 0);
    }
    for (int32_t i = 0; i < d.n_layers; i++) {
        size_t n1, n2;
        const float *p1 = odl_model_param_const(b1.m, i, 0, &n1);
        const float *p2 = odl_model_param_const(b2.m, i, 0, &n2);
        CHECK(n1 == n2 && (n1 == 0 || memcmp(p1, p2, n1 * 4) == 0));
    }
    free_model(&b1);
    free_model(&b2);
}

/* Head training from cached latents equals head training from raw inputs. */
static void test_latent_equals_raw(odl_test_ctx *t)
{
    DESC(d);
    odl_desc_edge_cnn(&d, 1, 8, 8, 3);
    odl_desc_freeze_below(&d, 9);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 4;
    built a, b;
    CHECK_OK(build_model(&a, &d, &cfg, 5));
    CHECK_OK(build_model(&b, &d, &cfg, 5));
    float x[4 * 64], z[4 * 64];
    int32_t y[4] = {0, 1, 2, 1};
    fill(x, sizeof x / 4, 9, 1.0f);
    odl_diag dg;
    CHECK_OK(odl_model_forward_range(b.m, 0, 9, x, 4, z, &dg));
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    float la, lb;
    CHECK_OK(odl_model_train_step(a.m, 0, x, y, 4, &r, &la, &dg));
    CHECK_OK(odl_model_train_step(b.m, 9, z, y, 4, &r, &lb, &dg));
    CHECK_NEAR(la, lb, 1e-6);
    size_t n;
    const float *wa = odl_model_param_const(a.m, 9, 0, &n);
    const float *wb = odl_model_param_const(b.m, 9, 0, &n);
    float worst = 0.0f;
    for (size_t i = 0; i < n; i++)
        worst = fmaxf(worst, fabsf(wa[i] - wb[i]));
    CHECK(worst < 1e-6f);
    free_model(&a);
    free_model(&b);
}

/* Backward from a start inside the trainable part, at a flatten (a view of
 * a kept tensor): the gradients equal those of the full run, and the
 * caller's input may change between forward_train and backward (the model
 * kept its own copy). */
static void test_latent_at_view(odl_test_ctx *t)
{
    DESC(d);
    odl_desc_edge_cnn(&d, 1, 8, 8, 3);
    CHECK_OK(odl_desc_freeze_below(&d, 3));
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 2;
    built b;
    CHECK_OK(build_model(&b, &d, &cfg, 5));
    CHECK(odl_model_first_trainable(b.m) == 3);
    float x[2 * 64], z[2 * 64], dl[6], g_full[64 * 64 + 64];
    int32_t y[2] = {0, 2};
    fill(x, 128, 4, 1.0f);
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    const float *logits;
    odl_diag dg;
    CHECK_OK(odl_model_forward_range(b.m, 0, 7, x, 2, z, &dg));
    CHECK_OK(odl_model_forward_train(b.m, 0, x, 2, &r, &logits, &dg));
    odl_softmax_xent_f32(2, 3, logits, y, NULL, dl);
    CHECK_OK(odl_model_backward(b.m, dl, 2, &dg));
    size_t n;
    const float *g = odl_model_grad(b.m, 7, 0, &n);
    REQUIRE(g && n <= sizeof g_full / sizeof g_full[0]);
    memcpy(g_full, g, sizeof(float) * n);
    CHECK_OK(odl_model_forward_train(b.m, 7, z, 2, &r, &logits, &dg));
    odl_softmax_xent_f32(2, 3, logits, y, NULL, dl);
    fill(z, 128, 99, 5.0f); /* the caller reuses its buffer */
    CHECK_OK(odl_model_backward(b.m, dl, 2, &dg));
    g = odl_model_grad(b.m, 7, 0, &n);
    float worst = 0.0f;
    for (size_t k = 0; k < n; k++)
        worst = fmaxf(worst, fabsf(g[k] - g_full[k]));
    CHECK(worst < 1e-6f);
    free_model(&b);
}

static void test_rng(odl_test_ctx *t)
{
    odl_rng a, b;
    odl_rng_seed(&a, 123, 4);
    odl_rng_seed(&b, 123, 4);
    for (int i = 0; i < 100; i++)
        CHECK(odl_rng_u32(&a) == odl_rng_u32(&b));
    odl_rng_seed(&b, 124, 4);
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += odl_rng_u32(&a) == odl_rng_u32(&b);
    CHECK(same < 3);
    /* below(n) is uniform: chi-square over 10 bins, 100k draws */
    int64_t bins[10] = {0};
    for (int i = 0; i < 100000; i++)
        bins[odl_rng_below(&a, 10)]++;
    double chi = 0;
    for (int k = 0; k < 10; k++)
        chi += (bins[k] - 10000.0) * (bins[k] - 10000.0) / 10000.0;
    CHECK(chi < 27.9); /* p = 0.001 at 9 degrees of freedom */
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        double v = odl_rng_normal(&a);
        sum += v;
        sq += v * v;
    }
    CHECK_NEAR(sum / 100000, 0.0, 0.02);
    CHECK_NEAR(sq / 100000, 1.0, 0.02);
}

static void test_diag_format(odl_test_ctx *t)
{
    odl_diag d;
    odl_fail(&d, ODL_ERR_CRC, "x %d %u %zu %s %.2f %lu %%", -12, 7u, (size_t)99, "ab", 3.14159, 5ul);
    CHECK(d.status == ODL_ERR_CRC);
    CHECK(strcmp(d.msg, "x -12 7 99 ab 3.14 5 %") == 0);
    odl_diag_prefix(&d, "model.odl");
    CHECK(strncmp(d.msg, "model.odl: x -12", 16) == 0);
    CHECK(strstr(odl_status_str(ODL_ERR_CRC), "checksum") != NULL);
    CHECK(odl_fail(NULL, ODL_ERR_IO, "ignored") == ODL_ERR_IO);
    char longs[400];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    odl_fail(&d, ODL_ERR_ARG, "%s", longs);
    CHECK(strlen(d.msg) == ODL_DIAG_MAX - 1);
    /* %f and odl_fmt_f32 round the exact binary value half up, in integer
     * arithmetic (no double-precision operation on a device) */
    odl_fail(&d, ODL_OK, "%.3f %.2f %.0f %.1f %.4f %f %.3f", 0.0005, 2.675, -1.5, -0.0, 1e-300, 1.0 / 3.0, 1e300);
    CHECK(strcmp(d.msg, "0.001 2.67 -2 0.0 0.0000 0.333333 inf") == 0);
    /* %g, as quant.c's scale messages use it: nine decimals, not a literal "%g" */
    odl_fail(&d, ODL_OK, "scale %g, %.2g", 0.00390625, 0.125);
    CHECK(strcmp(d.msg, "scale 0.003906250, 0.13") == 0);
    char b[ODL_FMT_F32_MAX];
    CHECK(strcmp(odl_fmt_f32(b, 0.1f, 9), "0.100000001") == 0);
    CHECK(strcmp(odl_fmt_f32(b, -2.5f, 0), "-3") == 0);
    CHECK(strcmp(odl_fmt_f32(b, 123.456f, 2), "123.46") == 0);
    CHECK(strcmp(odl_fmt_f32(b, 0.99951f, 3), "1.000") == 0);
    CHECK(strcmp(odl_fmt_f32(b, 1.0e-40f, 3), "0.000") == 0); /* subnormal */
    CHECK(strcmp(odl_fmt_f32(b, 16777216.0f, 1), "16777216.0") == 0);
    CHECK(strcmp(odl_fmt_f32(b, NAN, 3), "nan") == 0);
    CHECK(strcmp(odl_fmt_f32(b, -INFINITY, 3), "-inf") == 0);
}

/* Growing a head for new classes: old rows exactly kept, new rows small,
 * and a topology that differs elsewhere refused. */
static void test_transfer_grows_head(odl_test_ctx *t)
{
    DESC(d8);
    DESC(d10);
    odl_desc_edge_cnn(&d8, 1, 12, 12, 8);
    CHECK_OK(odl_desc_copy(&d10, &d8, NULL));
    CHECK_OK(odl_desc_set_classes(&d10, 10));
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 2;
    built a, b;
    CHECK_OK(build_model(&a, &d8, &cfg, 3));
    CHECK_OK(build_model(&b, &d10, &cfg, 4));
    /* give b's optimizer some state, which the transfer must reset */
    float x[2 * 144];
    int32_t y[2] = {9, 1};
    fill(x, 288, 6, 1.0f);
    odl_rng r;
    odl_rng_seed(&r, 8, 8);
    float loss;
    CHECK_OK(odl_model_train_step(b.m, 0, x, y, 2, &r, &loss, NULL));
    odl_diag dg;
    CHECK_OK(odl_model_transfer_params(b.m, a.m, &r, &dg));
    for (int32_t i = 0; i < d8.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t na, nb;
            const float *pa = odl_model_param_const(a.m, i, which, &na);
            const float *pb = odl_model_param_const(b.m, i, which, &nb);
            if (!na)
                continue;
            REQUIRE(pa && pb);
            CHECK(memcmp(pa, pb, sizeof(float) * na) == 0); /* old rows, bit for bit */
            if (i == d8.n_layers - 1) {
                CHECK(nb == (which ? 10u : 640u));
                for (size_t k = na; k < nb; k++)
                    CHECK(which ? pb[k] == 0.0f : fabsf(pb[k]) < 0.06f); /* N(0, 0.01^2): |w| < 6 sigma */
            } else {
                CHECK(na == nb);
            }
        }
    const float *logits;
    CHECK_OK(odl_model_forward(b.m, 0, x, 2, &logits, NULL));
    CHECK(logits[8] != 0.0f || logits[9] != 0.0f); /* the new rows take part */
    /* the optimizer was reset: a step now equals a step of a fresh model
     * holding the same weights (Adam's moments and step count are zero) */
    built f;
    CHECK_OK(build_model(&f, &d10, &cfg, 9));
    for (int32_t i = 0; i < d10.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n1, n2;
            const float *src = odl_model_param_const(b.m, i, which, &n1);
            float *dst = odl_model_param(f.m, i, which, &n2);
            if (n1)
                memcpy(dst, src, sizeof(float) * n1);
        }
    odl_rng r1, r2;
    odl_rng_seed(&r1, 12, 1);
    r2 = r1;
    CHECK_OK(odl_model_train_step(b.m, 0, x, y, 2, &r1, &loss, NULL));
    CHECK_OK(odl_model_train_step(f.m, 0, x, y, 2, &r2, &loss, NULL));
    for (int32_t i = 0; i < d10.n_layers; i++) {
        size_t n1, n2;
        const float *p1 = odl_model_param_const(b.m, i, 0, &n1);
        const float *p2 = odl_model_param_const(f.m, i, 0, &n2);
        CHECK(n1 == n2 && (n1 == 0 || memcmp(p1, p2, sizeof(float) * n1) == 0));
    }
    free_model(&f);
    DESC(other);
    odl_desc_edge_cnn(&other, 1, 12, 12, 10);
    other.layers[0].units = 4; /* a different first conv */
    built c;
    CHECK_OK(build_model(&c, &other, &cfg, 5));
    CHECK(odl_model_transfer_params(c.m, a.m, &r, &dg) == ODL_ERR_SHAPE);
    CHECK(strstr(dg.msg, "layer 0") != NULL);
    free_model(&a);
    free_model(&b);
    free_model(&c);
}

/* ---- graphs ----------------------------------------------------------------- */

/* Appends a node of `type` reading in0 (and in1 when >= 0); returns its tensor. */
static int32_t gnode(odl_model_desc *d, int32_t type, int32_t in0, int32_t in1)
{
    odl_node_desc n = odl_node_defaults(d, type);
    n.in[0] = in0;
    n.n_in = 1;
    if (in1 >= 0) {
        n.in[1] = in1;
        n.n_in = 2;
    }
    int32_t t = -1;
    if (odl_desc_add_node(d, &n, &t) != ODL_OK)
        return -1;
    return t;
}

static int32_t gconv(odl_model_desc *d, int32_t in, int32_t out_c, int32_t k, int32_t stride, int32_t pad)
{
    odl_node_desc n = odl_node_defaults(d, ODL_LAYER_CONV2D);
    n.in[0] = in;
    n.units = out_c;
    n.k_h = n.k_w = k;
    n.stride_h = n.stride_w = stride;
    n.pad_t = n.pad_l = n.pad_b = n.pad_r = pad;
    int32_t t = -1;
    return odl_desc_add_node(d, &n, &t) == ODL_OK ? t : -1;
}

static int32_t gdense(odl_model_desc *d, int32_t in, int32_t units)
{
    odl_node_desc n = odl_node_defaults(d, ODL_LAYER_DENSE);
    n.in[0] = in;
    n.units = units;
    int32_t t = -1;
    return odl_desc_add_node(d, &n, &t) == ODL_OK ? t : -1;
}

/* Appends *n with its last-set fields; returns its tensor. */
static int32_t gadd(odl_model_desc *d, odl_node_desc n)
{
    int32_t t = -1;
    return odl_desc_add_node(d, &n, &t) == ODL_OK ? t : -1;
}

/* flatten + dense 4: a classifier over any tensor */
static void ghead(odl_model_desc *d, int32_t in, int32_t classes)
{
    int32_t f = gnode(d, ODL_LAYER_FLATTEN, in, -1);
    gdense(d, f, classes);
}

/* conv-bn-relu-conv-add-relu on a 4-channel stem, then a classifier: the
 * stem's output is read by the block's conv and by the add. */
static void residual(odl_model_desc *d)
{
    tinit(d, 2, 6, 6);
    int32_t stem = gconv(d, 0, 4, 3, 1, 1);                       /* 1 */
    int32_t c1 = gconv(d, stem, 4, 3, 1, 1);                      /* 2 */
    int32_t bn = gnode(d, ODL_LAYER_BATCHNORM, c1, -1);           /* 3 */
    int32_t r = gnode(d, ODL_LAYER_RELU, bn, -1);                 /* 4 */
    int32_t c2 = gconv(d, r, 4, 3, 1, 1);                         /* 5 */
    int32_t sum = gnode(d, ODL_LAYER_ADD, c2, stem);              /* 6 */
    int32_t out = gnode(d, ODL_LAYER_RELU, sum, -1);              /* 7 */
    int32_t g = gnode(d, ODL_LAYER_GAP, out, -1);                 /* 8 */
    ghead(d, g, 3);                                               /* 9, 10 */
}

/* squeeze-and-excitation: gap-dense-relu-dense-hardsigmoid, times the map */
static void se_block(odl_model_desc *d)
{
    tinit(d, 2, 5, 5);
    int32_t f = gconv(d, 0, 4, 3, 1, 1);
    int32_t g = gnode(d, ODL_LAYER_GAP, f, -1);
    int32_t s1 = gdense(d, g, 2);
    int32_t r = gnode(d, ODL_LAYER_RELU, s1, -1);
    int32_t s2 = gdense(d, r, 4);
    int32_t hs = gnode(d, ODL_LAYER_HARD_SIGMOID, s2, -1);
    int32_t x = gnode(d, ODL_LAYER_MUL, f, hs);
    ghead(d, x, 3);
}

/* two branches and a repeated operand, concatenated */
static void concat_graph(odl_model_desc *d)
{
    tinit(d, 1, 5, 5);
    int32_t a = gconv(d, 0, 3, 3, 1, 1);
    int32_t b = gconv(d, a, 2, 3, 1, 1);
    odl_node_desc n = odl_node_defaults(d, ODL_LAYER_CONCAT);
    n.n_in = 3;
    n.in[0] = a;
    n.in[1] = b;
    n.in[2] = a;
    int32_t c = gadd(d, n);
    int32_t e = gconv(d, c, 3, 3, 2, 1);
    ghead(d, e, 3);
}

static void test_grad_graph_blocks(odl_test_ctx *t)
{
    DESC(d);
    residual(&d);
    CHECK(d.n_layers == 10);
    gradcheck(t, &d, 3);
    se_block(&d);
    gradcheck(t, &d, 2);
    concat_graph(&d);
    gradcheck(t, &d, 2);
}

/* Every graph operator's gradient, inputs and parameters: a trainable conv
 * before it checks its input gradient through the conv's weights. */
static void test_grad_graph_operators(odl_test_ctx *t)
{
    DESC(d);
    /* grouped conv with asymmetric padding, then a dilated one */
    tinit(&d, 2, 7, 6);
    int32_t a = gconv(&d, 0, 4, 3, 1, 1);
    odl_node_desc n = odl_node_defaults(&d, ODL_LAYER_CONV2D);
    n.in[0] = a;
    n.units = 6;
    n.groups = 2;
    n.k_h = 3;
    n.k_w = 2;
    n.stride_h = 2;
    n.pad_t = 1;
    n.pad_r = 1;
    int32_t g = gadd(&d, n);
    n = odl_node_defaults(&d, ODL_LAYER_CONV2D);
    n.in[0] = g;
    n.units = 3;
    n.k_h = n.k_w = 2;
    n.dil_h = n.dil_w = 2;
    n.pad_b = 1;
    int32_t dl = gadd(&d, n);
    ghead(&d, dl, 4);
    gradcheck(t, &d, 2);

    /* depthwise: multiplier 2, dilation, asymmetric padding */
    tinit(&d, 2, 6, 6);
    a = gconv(&d, 0, 2, 3, 1, 1);
    n = odl_node_defaults(&d, ODL_LAYER_DEPTHWISE);
    n.in[0] = a;
    n.units = 2;
    n.k_h = n.k_w = 3;
    n.dil_h = 2;
    n.pad_t = 2;
    n.pad_l = 1;
    n.pad_r = 1;
    ghead(&d, gadd(&d, n), 4);
    gradcheck(t, &d, 2);

    /* pools: ceil mode with padding; count_include_pad */
    for (int type = 0; type < 3; type++) {
        tinit(&d, 1, 7, 7);
        a = gconv(&d, 0, 2, 3, 1, 1);
        n = odl_node_defaults(&d, type == 0 ? ODL_LAYER_MAXPOOL : ODL_LAYER_AVGPOOL);
        n.in[0] = a;
        n.k_h = n.k_w = 3;
        n.stride_h = n.stride_w = 2;
        n.pad_t = n.pad_l = 1;
        n.flags = ODL_NODE_CEIL_MODE | (type == 2 ? ODL_NODE_COUNT_PAD : 0);
        ghead(&d, gadd(&d, n), 4);
        gradcheck(t, &d, 2);
    }

    /* batch norm, and every activation */
    const int32_t acts[] = {ODL_LAYER_BATCHNORM, ODL_LAYER_CLIP, ODL_LAYER_LEAKY_RELU, ODL_LAYER_SIGMOID,
                            ODL_LAYER_HARD_SIGMOID, ODL_LAYER_HARD_SWISH, ODL_LAYER_TANH};
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        tinit(&d, 2, 4, 4);
        a = gconv(&d, 0, 3, 3, 1, 1);
        n = odl_node_defaults(&d, acts[k]);
        n.in[0] = a;
        if (acts[k] == ODL_LAYER_CLIP) {
            n.alpha = -0.4f;
            n.beta = 0.5f;
        }
        if (acts[k] == ODL_LAYER_LEAKY_RELU)
            n.alpha = 0.2f;
        ghead(&d, gadd(&d, n), 4);
        gradcheck(t, &d, 2);
    }

    /* add and mul: same shape (a tensor read twice), per channel, scalar */
    for (int op = 0; op < 2; op++)
        for (int bc = 0; bc < 3; bc++) {
            const int32_t type = op ? ODL_LAYER_MUL : ODL_LAYER_ADD;
            tinit(&d, 1, 4, 4);
            a = gconv(&d, 0, 3, 3, 1, 1);
            int32_t b = gconv(&d, a, 3, 3, 1, 1);
            int32_t other = a;
            if (bc == 1)
                other = gnode(&d, ODL_LAYER_GAP, a, -1);
            if (bc == 2)
                other = gdense(&d, gnode(&d, ODL_LAYER_FLATTEN, a, -1), 1);
            ghead(&d, gnode(&d, type, b, other), 4);
            gradcheck(t, &d, 2);
        }
    /* x + x: both operands one tensor */
    tinit(&d, 1, 4, 4);
    a = gconv(&d, 0, 2, 3, 1, 1);
    ghead(&d, gnode(&d, ODL_LAYER_MUL, a, a), 4);
    gradcheck(t, &d, 2);

    /* reshape: sole reader (the gradient passes in place) and a second reader (a copy, summed) */
    for (int twice = 0; twice < 2; twice++) {
        tinit(&d, 1, 4, 4);
        a = gconv(&d, 0, 3, 3, 1, 1);
        n = odl_node_defaults(&d, ODL_LAYER_RESHAPE);
        n.in[0] = a;
        n.shape_c = 6;
        n.shape_h = 2;
        n.shape_w = 4;
        int32_t rs = gadd(&d, n);
        int32_t c = gconv(&d, rs, 2, 3, 1, 1);
        if (twice) {
            int32_t g2 = gnode(&d, ODL_LAYER_GAP, a, -1);
            int32_t f1 = gnode(&d, ODL_LAYER_FLATTEN, c, -1);
            int32_t d1 = gdense(&d, f1, 3);
            int32_t d2 = gdense(&d, gnode(&d, ODL_LAYER_FLATTEN, g2, -1), 3);
            gnode(&d, ODL_LAYER_ADD, d1, d2);
        } else {
            ghead(&d, c, 4);
        }
        gradcheck(t, &d, 2);
    }

    /* constant padding, asymmetric */
    tinit(&d, 1, 4, 5);
    a = gconv(&d, 0, 2, 3, 1, 1);
    n = odl_node_defaults(&d, ODL_LAYER_PAD);
    n.in[0] = a;
    n.pad_t = 1;
    n.pad_l = 2;
    n.pad_r = 1;
    n.alpha = 0.5f;
    ghead(&d, gconv(&d, gadd(&d, n), 2, 3, 1, 0), 4);
    gradcheck(t, &d, 2);

    /* dropout inside a graph */
    tinit(&d, 1, 4, 4);
    a = gconv(&d, 0, 3, 3, 1, 1);
    n = odl_node_defaults(&d, ODL_LAYER_DROPOUT);
    n.in[0] = a;
    n.alpha = 0.3f;
    int32_t dr = gadd(&d, n);
    ghead(&d, gnode(&d, ODL_LAYER_ADD, dr, a), 4);
    gradcheck(t, &d, 3);
}

/* The comparison catches a gradient 5% off: the check can fail. A smooth
 * residual graph (tanh, no kinks) so every direction is compared. */
static void test_gradcheck_catches_errors(odl_test_ctx *t)
{
    DESC(d);
    tinit(&d, 2, 6, 6);
    int32_t stem = gconv(&d, 0, 4, 3, 1, 1);
    int32_t c1 = gconv(&d, stem, 4, 3, 1, 1);
    int32_t bn = gnode(&d, ODL_LAYER_BATCHNORM, c1, -1);
    int32_t th = gnode(&d, ODL_LAYER_TANH, bn, -1);
    int32_t c2 = gconv(&d, th, 4, 3, 1, 1);
    int32_t sum = gnode(&d, ODL_LAYER_ADD, c2, stem);
    ghead(&d, gnode(&d, ODL_LAYER_GAP, sum, -1), 3);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 2;
    built b;
    CHECK_OK(build_model(&b, &d, &cfg, 42));
    perturb_params(b.m, 3);
    float x[2 * 72];
    fill(x, 144, 3, 1.0f);
    int32_t y[2] = {0, 2};
    odl_rng rng0, r;
    odl_rng_seed(&rng0, 99, 5);
    r = rng0;
    const float *logits;
    float dl[6];
    CHECK_OK(odl_model_forward_train(b.m, 0, x, 2, &r, &logits, NULL));
    odl_softmax_xent_f32(2, 3, logits, y, NULL, dl);
    CHECK_OK(odl_model_backward(b.m, dl, 2, NULL));
    grad_report good, off;
    grad_compare(t, b.m, x, y, 2, &rng0, 1.0, &good);
    grad_compare(NULL, b.m, x, y, 2, &rng0, 1.05, &off);
    CHECK(good.bad == 0 && dir_ok(&good) && good.dir_kinks == 0 && good.dir_checked == 11);
    CHECK(off.dir_ratio > 3.0); /* far outside, not at the edge */
    CHECK(!dir_ok(&off));
    free_model(&b);
}

static void train_loss_drops(odl_test_ctx *t, const odl_model_desc *d)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 8;
    cfg.optim.lr = 1e-2f;
    built b;
    CHECK_OK(build_model(&b, d, &cfg, 7));
    const odl_layer_shape in = odl_model_layer_shape(b.m, -1);
    float *x = malloc(sizeof(float) * in.size * 8);
    fill(x, in.size * 8, 21, 1.0f);
    int32_t y[8];
    for (int k = 0; k < 8; k++)
        y[k] = k % odl_model_n_classes(b.m);
    odl_rng r;
    odl_rng_seed(&r, 3, 3);
    float first = 0.0f, loss = 0.0f;
    odl_diag dg;
    for (int s = 0; s < 60; s++) {
        CHECK_OK(odl_model_train_step(b.m, 0, x, y, 8, &r, &loss, &dg));
        if (s == 0)
            first = loss;
    }
    if (!(loss < 0.5f * first))
        odl_test_logf(t, "    loss %.4f -> %.4f", (double)first, (double)loss);
    CHECK(loss < 0.5f * first);
    free(x);
    free_model(&b);
}

static void test_graph_training(odl_test_ctx *t)
{
    DESC(d);
    residual(&d);
    train_loss_drops(t, &d);
    se_block(&d);
    train_loss_drops(t, &d);
    concat_graph(&d);
    train_loss_drops(t, &d);
}

/* Cut points: forward from a cut equals the full forward; other tensors
 * are refused with a message saying why; the tail at a cut is a model of
 * its own giving the same outputs. */
static void test_graph_cuts(odl_test_ctx *t)
{
    DESC(d);
    residual(&d);
    const int expect[11] = {1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1};
    for (int32_t k = 0; k <= 10; k++)
        CHECK(odl_desc_is_cut(&d, k) == expect[k]);
    int32_t boundary = -1;
    odl_diag dg;
    CHECK_OK(odl_desc_boundary_for_unfreeze(&d, 1, &boundary, &dg));
    CHECK(boundary == 9); /* before the head's dense */
    CHECK_OK(odl_desc_boundary_for_unfreeze(&d, 2, &boundary, &dg));
    CHECK(boundary == 1); /* the block's second conv is inside it: back to the block's input */
    CHECK(odl_desc_boundary_for_unfreeze(&d, 9, &boundary, &dg) == ODL_ERR_ARG);
    CHECK(odl_desc_freeze_below(&d, 3) == ODL_ERR_ARG);

    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 2;
    built b;
    CHECK_OK(build_model(&b, &d, &cfg, 5));
    float x[2 * 72], z[2 * 144], full[6];
    fill(x, 144, 8, 1.0f);
    const float *o;
    CHECK_OK(odl_model_forward(b.m, 0, x, 2, &o, &dg));
    memcpy(full, o, sizeof full);
    for (int32_t cut = 1; cut <= 9; cut++) {
        if (!expect[cut])
            continue;
        CHECK_OK(odl_model_forward_range(b.m, 0, cut, x, 2, z, &dg));
        CHECK_OK(odl_model_forward(b.m, cut, z, 2, &o, &dg));
        CHECK(memcmp(o, full, sizeof full) == 0);
    }
    CHECK(odl_model_forward(b.m, 3, x, 2, &o, &dg) == ODL_ERR_ARG);
    CHECK(strstr(dg.msg, "not a cut point") != NULL);
    /* the tail from tensor 1 */
    DESC(tl);
    CHECK(odl_desc_tail(&tl, &d, 4, &dg) == ODL_ERR_ARG);
    CHECK(strstr(dg.msg, "not a cut point") != NULL);
    CHECK_OK(odl_desc_tail(&tl, &d, 1, &dg));
    CHECK(tl.n_layers == 9 && tl.in_c == 4 && tl.in_h == 6 && tl.in_w == 6);
    CHECK(tl.layers[4].type == ODL_LAYER_ADD && tl.layers[4].in[0] == 4 && tl.layers[4].in[1] == 0);
    built bt;
    CHECK_OK(build_model(&bt, &tl, &cfg, 6));
    for (int32_t i = 0; i < tl.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n1, n2;
            const float *src = odl_model_param_const(b.m, i + 1, which, &n1);
            float *dst = odl_model_param(bt.m, i, which, &n2);
            CHECK(n1 == n2);
            if (n1)
                memcpy(dst, src, sizeof(float) * n1);
        }
    CHECK_OK(odl_model_forward_range(b.m, 0, 1, x, 2, z, &dg));
    CHECK_OK(odl_model_forward(bt.m, 0, z, 2, &o, &dg));
    CHECK(memcmp(o, full, sizeof full) == 0);
    free_model(&bt);
    free_model(&b);

    /* training from a cut inside the graph: backward starts at the block */
    DESC(h);
    CHECK_OK(odl_desc_copy(&h, &d, &dg));
    CHECK_OK(odl_desc_freeze_below(&h, 1));
    h.layers[4].trainable = 0; /* a frozen conv inside the trainable part still passes gradients */
    gradcheck(t, &h, 2);
}

/* Descriptions: copy, add_node, defaults, insert_adapter renumbering. */
static void test_desc_api(odl_test_ctx *t)
{
    odl_node_desc small[3];
    odl_model_desc s;
    odl_diag dg;
    CHECK_OK(odl_desc_init(&s, small, 3, 1, 4, 4));
    DESC(d);
    residual(&d);
    CHECK(odl_desc_copy(&s, &d, &dg) == ODL_ERR_NOMEM);
    CHECK(strstr(dg.msg, "10") != NULL);
    odl_node_desc n = odl_node_defaults(&s, ODL_LAYER_RELU);
    CHECK(n.n_in == 1 && n.in[0] == 0 && n.groups == 1 && n.dil_h == 1 && n.stride_w == 1 && n.trainable == 1);
    int32_t tn;
    for (int k = 0; k < 3; k++) {
        CHECK_OK(odl_desc_add_node(&s, &n, &tn));
        CHECK(tn == k + 1);
        n.in[0] = tn;
    }
    CHECK(odl_desc_add_node(&s, &n, &tn) == ODL_ERR_ARG); /* full */
    n = odl_node_defaults(&d, ODL_LAYER_ADD);
    CHECK(n.n_in == 2 && n.in[0] == 10 && n.in[1] == 10);
    /* an adapter inserted at a cut renumbers what follows */
    DESC(e);
    CHECK_OK(odl_desc_copy(&e, &d, &dg));
    CHECK(odl_desc_insert_adapter(&e, 3, 4) == ODL_ERR_ARG); /* not a cut */
    CHECK_OK(odl_desc_insert_adapter(&e, 1, 4));
    CHECK(e.n_layers == 11 && e.layers[1].type == ODL_LAYER_ADAPTER && e.layers[1].in[0] == 1);
    CHECK(e.layers[6].type == ODL_LAYER_ADD && e.layers[6].in[0] == 6 && e.layers[6].in[1] == 2);
    CHECK_OK(odl_desc_check(&e, NULL, &dg));
    odl_layer_shape sh[NODES];
    size_t total, trainable;
    CHECK_OK(odl_desc_count_params(&d, sh, &total, &trainable));
    /* stem 2*4*9+4, two convs 4*4*9+4 each, bn 4+4, dense 4*3+3 */
    CHECK(total == 76 + 2 * 148 + 8 + 15 && trainable == total);
    CHECK(sh[5].c == 4 && sh[5].h == 6 && sh[7].size == 4 && sh[9].size == 3);
}

/* The planner: peak <= naive sum, >= the lower bound; a chain of convs
 * needs two buffers; the plan is the arena the model takes. */
static void test_planner(odl_test_ctx *t)
{
    DESC(d);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_act_stats st;
    odl_diag dg;
    tinit(&d, 4, 8, 8);
    for (int k = 0; k < 6; k++)
        odl_desc_conv2d(&d, 4, 3, 1, 1);
    CHECK_OK(odl_model_plan_activations(&d, &cfg, &st, &dg));
    CHECK(st.peak == 2 * 1024 && st.lower_bound == 2 * 1024 && st.naive_sum == 6 * 1024);
    cfg.max_batch = 3;
    CHECK_OK(odl_model_plan_activations(&d, &cfg, &st, &dg));
    CHECK(st.peak == 2 * 3072);

    /* without convolutions the transient region is the whole scratch */
    tinit(&d, 1, 1, 12);
    int32_t f = gnode(&d, ODL_LAYER_FLATTEN, 0, -1);
    int32_t a = gdense(&d, f, 16);
    int32_t r = gnode(&d, ODL_LAYER_RELU, a, -1);
    int32_t b = gdense(&d, r, 16);
    int32_t s = gnode(&d, ODL_LAYER_ADD, b, a);
    gdense(&d, s, 4);
    cfg.max_batch = 2;
    odl_mem_plan p;
    CHECK_OK(odl_model_plan(&d, &cfg, &p, &dg));
    CHECK_OK(odl_model_plan_activations(&d, &cfg, &st, &dg));
    CHECK(p.bytes[ODL_MEM_SCRATCH] == st.peak && p.bytes[ODL_MEM_ACTIVATIONS] == 0);
    CHECK(st.peak == 3 * 128 && st.lower_bound == 3 * 128); /* a, relu, dense b live together */

    odl_model_desc *graphs[1] = {&d};
    (void)graphs;
    for (int g = 0; g < 4; g++) {
        if (g == 0)
            residual(&d);
        else if (g == 1)
            se_block(&d);
        else if (g == 2)
            concat_graph(&d);
        else
            odl_desc_edge_cnn(&d, 1, 28, 28, 10);
        for (int mode = 0; mode < 2; mode++)
            for (int inplace = 0; inplace < 2; inplace++) {
                cfg = odl_model_cfg_defaults();
                cfg.mode = mode ? ODL_MODE_TRAIN : ODL_MODE_INFER;
                cfg.max_batch = mode ? 16 : 1;
                cfg.frozen_weights_in_place = inplace;
                CHECK_OK(odl_model_plan_activations(&d, &cfg, &st, &dg));
                CHECK(st.lower_bound <= st.peak && st.peak <= st.naive_sum && st.lower_bound > 0);
                if (!inplace)
                    odl_test_logf(t, "    %s %s b%d: peak %zu, naive %zu, lower bound %zu bytes",
                                  g == 0 ? "residual" : g == 1 ? "se" : g == 2 ? "concat" : "edge-cnn",
                                  mode ? "train" : "infer", (int)cfg.max_batch, st.peak, st.naive_sum,
                                  st.lower_bound);
                CHECK_OK(odl_model_plan(&d, &cfg, &p, &dg));
                uint8_t *buf = malloc(p.total + 64);
                odl_arena ar;
                odl_model *m;
                CHECK_OK(odl_arena_init(&ar, buf + 16, p.total));
                CHECK_OK(odl_model_init(&m, &d, &cfg, &ar, &dg));
                CHECK(ar.used == p.total && memcmp(&ar.plan, &p, sizeof p) == 0);
                odl_arena small;
                CHECK_OK(odl_arena_init(&small, buf + 16, p.total - 1));
                CHECK(odl_model_init(&m, &d, &cfg, &small, &dg) == ODL_ERR_NOMEM);
                free(buf);
            }
    }
}

/* An inverted residual stack (expand, relu6, depthwise, relu6, project,
 * add), MobileNetV2's block. */
static void inverted_residuals(odl_model_desc *d)
{
    tinit(d, 3, 16, 16);
    int32_t x = gnode(d, ODL_LAYER_RELU6, gconv(d, 0, 8, 3, 2, 1), -1);
    const int32_t stride[4] = {1, 2, 1, 1}, outc[4] = {8, 12, 12, 16};
    int32_t c = 8;
    for (int b = 0; b < 4; b++) {
        int32_t e = gnode(d, ODL_LAYER_RELU6, gconv(d, x, 6 * c, 1, 1, 0), -1);
        odl_node_desc n = odl_node_defaults(d, ODL_LAYER_DEPTHWISE);
        n.in[0] = e;
        n.units = 1;
        n.k_h = n.k_w = 3;
        n.stride_h = n.stride_w = stride[b];
        n.pad_t = n.pad_l = n.pad_b = n.pad_r = 1;
        int32_t dw = gnode(d, ODL_LAYER_RELU6, gadd(d, n), -1);
        int32_t pr = gconv(d, dw, outc[b], 1, 1, 0);
        x = stride[b] == 1 && outc[b] == c ? gnode(d, ODL_LAYER_ADD, pr, x) : pr;
        c = outc[b];
    }
    ghead(d, gnode(d, ODL_LAYER_GAP, x, -1), 5);
}

/* Outputs do not depend on the layout: an inference model (tensors packed,
 * elementwise nodes in place) and a training one (tensors kept) give the
 * same bits; elementwise nodes in place make a chain need two buffers. */
static void test_layouts_agree(odl_test_ctx *t)
{
    DESC(d);
    odl_diag dg;
    for (int g = 0; g < 4; g++) {
        if (g == 0)
            residual(&d);
        else if (g == 1)
            se_block(&d);
        else if (g == 2)
            concat_graph(&d);
        else
            inverted_residuals(&d);
        odl_model_cfg ci = odl_model_cfg_defaults(), ct = ci;
        ci.max_batch = ct.max_batch = 2;
        ct.mode = ODL_MODE_TRAIN;
        built a, b;
        CHECK_OK(build_model(&a, &d, &ci, 11));
        CHECK_OK(build_model(&b, &d, &ct, 11));
        const odl_layer_shape in = odl_model_layer_shape(a.m, -1);
        float *x = malloc(sizeof(float) * in.size * 2), ya[10];
        fill(x, in.size * 2, 17, 1.0f);
        const float *o;
        const int32_t C = odl_model_n_classes(a.m);
        REQUIRE(C <= 5);
        CHECK_OK(odl_model_forward(a.m, 0, x, 2, &o, &dg));
        memcpy(ya, o, sizeof(float) * 2 * C);
        CHECK_OK(odl_model_forward(b.m, 0, x, 2, &o, &dg));
        CHECK(memcmp(ya, o, sizeof(float) * 2 * C) == 0);
        odl_act_stats sa, sb;
        CHECK_OK(odl_model_plan_activations(&d, &ci, &sa, &dg));
        CHECK_OK(odl_model_plan_activations(&d, &ct, &sb, &dg));
        CHECK(sa.peak < sb.peak);
        if (g == 3) {
            odl_test_logf(t, "    inverted residuals infer b2: peak %zu, naive %zu, lower bound %zu bytes", sa.peak,
                          sa.naive_sum, sa.lower_bound);
            CHECK(sa.peak * 4 <= sa.lower_bound * 5); /* within 25% of what no packing beats */
        }
        free(x);
        free_model(&a);
        free_model(&b);
    }
    /* conv, relu6, conv, relu6, ...: each relu6 in its input's slot */
    tinit(&d, 4, 8, 8);
    for (int k = 0; k < 4; k++) {
        odl_desc_conv2d(&d, 4, 3, 1, 1);
        odl_desc_relu6(&d);
    }
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_act_stats st;
    CHECK_OK(odl_model_plan_activations(&d, &cfg, &st, &dg));
    CHECK(st.peak == 2 * 1024 && st.naive_sum == 8 * 1024);
}

/* Hostile descriptions: refused with a status and a message, never a crash
 * or an overflow. */
static void test_hostile_graphs(odl_test_ctx *t)
{
    DESC(d);
    odl_diag dg;
    odl_layer_shape sh[NODES];
    /* forward reference, self reference, negative */
    residual(&d);
    d.layers[3].in[0] = 5;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "only tensors") != NULL);
    d.layers[3].in[0] = 4;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    d.layers[3].in[0] = -1;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    /* n_in out of range for the type */
    residual(&d);
    d.layers[5].n_in = 1;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "inputs") != NULL);
    d.layers[5].n_in = 9;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    d.layers[5].n_in = -3;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    residual(&d);
    d.layers[2].n_in = 2;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    /* a node nobody reads */
    residual(&d);
    d.layers[5].in[1] = 5; /* the add reads c2 twice: the stem's output is still read by c1 */
    CHECK_OK(odl_desc_check(&d, sh, &dg));
    d.layers[1].in[0] = 0; /* now nothing reads the stem */
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "never read") != NULL);
    /* shapes that do not agree */
    residual(&d);
    d.layers[4].units = 3; /* the add's operands differ */
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "broadcast") != NULL);
    residual(&d);
    d.layers[1].groups = 3; /* does not divide 4 */
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "groups") != NULL);
    concat_graph(&d);
    d.layers[3].stride_h = 2; /* fine alone */
    CHECK_OK(odl_desc_check(&d, sh, &dg));
    d.layers[1].stride_h = 2; /* the concat's inputs differ in h */
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "concat") != NULL);
    tinit(&d, 1, 4, 4);
    odl_node_desc n = odl_node_defaults(&d, ODL_LAYER_RESHAPE);
    n.shape_c = 3;
    n.shape_h = 5;
    n.shape_w = 1;
    gadd(&d, n);
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "reshape") != NULL);
    d.layers[0].shape_c = 0x40000000;
    d.layers[0].shape_h = 0x40000000;
    d.layers[0].shape_w = 16;
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    tinit(&d, 1, 4, 4);
    n = odl_node_defaults(&d, ODL_LAYER_CLIP);
    n.alpha = NAN;
    gadd(&d, n);
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    tinit(&d, 1, 4, 4);
    n = odl_node_defaults(&d, ODL_LAYER_PAD);
    n.pad_t = 0x7fffffff;
    n.pad_b = 0x7fffffff;
    gadd(&d, n);
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    /* 1x8192x8192 -> flatten -> depthwise x32: 2^31 channels, a clean error */
    tinit(&d, 1, 8192, 8192);
    odl_desc_flatten(&d);
    odl_desc_depthwise(&d, 32, 1, 1, 0);
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE && strstr(dg.msg, "too large") != NULL);
    tinit(&d, 1, 8192, 8192);
    odl_desc_flatten(&d);
    for (int k = 0; k < 6; k++)
        odl_desc_depthwise(&d, 2, 1, 1, 0);
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan p;
    /* on a 32-bit target the 2^26-float flatten output is refused first, as
     * more than memory can address */
    const odl_status ps = odl_model_plan(&d, &cfg, &p, &dg);
    CHECK(ps == ODL_ERR_SHAPE || (sizeof(size_t) < 8 && ps == ODL_ERR_NOMEM));
    /* concat of 8 inputs of 2^23 channels each: 2^26 fits, one more does not */
    tinit(&d, 1, 1, 1);
    n = odl_node_defaults(&d, ODL_LAYER_DENSE);
    n.units = 65536;
    int32_t big = gadd(&d, n);
    n = odl_node_defaults(&d, ODL_LAYER_DEPTHWISE);
    n.in[0] = big;
    n.units = 64;
    n.k_h = n.k_w = 1;
    big = gadd(&d, n); /* 2^22 channels */
    n = odl_node_defaults(&d, ODL_LAYER_CONCAT);
    n.n_in = 8;
    for (int k = 0; k < 8; k++)
        n.in[k] = big;
    int32_t cc = gadd(&d, n);
    CHECK_OK(odl_desc_check(&d, sh, &dg));
    for (int k = 0; k < 8; k++)
        n.in[k] = cc; /* 8 x 2^25 channels */
    gadd(&d, n);
    CHECK(odl_desc_check(&d, sh, &dg) == ODL_ERR_SHAPE);
    /* too wide to plan with the walk's room: a clean refusal */
    odl_node_desc *wide = malloc(sizeof(odl_node_desc) * 200);
    odl_desc_init(&d, wide, 200, 1, 2, 2);
    int32_t acc = gnode(&d, ODL_LAYER_RELU, 0, -1);
    int32_t firsts[70];
    for (int k = 0; k < 70; k++)
        firsts[k] = gnode(&d, ODL_LAYER_RELU, 0, -1);
    for (int k = 0; k < 70; k++)
        acc = gnode(&d, ODL_LAYER_ADD, acc, firsts[k]);
    REQUIRE(acc > 0);
    odl_status st = odl_desc_check(&d, NULL, &dg);
    CHECK(st == ODL_ERR_UNSUPPORTED && strstr(dg.msg, "at once") != NULL);
    CHECK(odl_model_plan(&d, &cfg, &p, &dg) == ODL_ERR_UNSUPPORTED);
    free(wide);
}

/* Random descriptions: checking never crashes, and whatever passes the
 * check plans, builds, runs forward and trains within its arena (the
 * sanitizer build and valgrind watch the memory). */
static void test_random_graphs(odl_test_ctx *t)
{
    odl_rng r;
    odl_rng_seed(&r, 2024, 11);
    int accepted = 0;
    for (int trial = 0; trial < 3000; trial++) {
        DESC(d);
        tinit(&d, 1 + (int32_t)odl_rng_below(&r, 3), 1 + (int32_t)odl_rng_below(&r, 7),
              1 + (int32_t)odl_rng_below(&r, 7));
        const int32_t L = 1 + (int32_t)odl_rng_below(&r, 8);
        for (int32_t i = 0; i < L; i++) {
            odl_node_desc n = odl_node_defaults(&d, 1 + (int32_t)odl_rng_below(&r, 23));
            for (int k = 0; k < ODL_NODE_MAX_IN; k++)
                n.in[k] = odl_rng_below(&r, 8) ? (int32_t)odl_rng_below(&r, (uint32_t)i + 1) : i + 1;
            if (n.type == ODL_LAYER_CONCAT)
                n.n_in = 1 + (int32_t)odl_rng_below(&r, 3);
            if (odl_rng_below(&r, 20) == 0)
                n.n_in = (int32_t)odl_rng_below(&r, 4);
            n.units = 1 + (int32_t)odl_rng_below(&r, 4);
            n.groups = odl_rng_below(&r, 4) ? 1 : 1 + (int32_t)odl_rng_below(&r, 3);
            n.k_h = 1 + (int32_t)odl_rng_below(&r, 3);
            n.k_w = 1 + (int32_t)odl_rng_below(&r, 3);
            n.stride_h = 1 + (int32_t)odl_rng_below(&r, 2);
            n.stride_w = 1 + (int32_t)odl_rng_below(&r, 2);
            n.pad_t = (int32_t)odl_rng_below(&r, 2);
            n.pad_l = (int32_t)odl_rng_below(&r, 2);
            n.pad_b = (int32_t)odl_rng_below(&r, 2);
            n.pad_r = (int32_t)odl_rng_below(&r, 2);
            n.dil_h = 1 + (int32_t)odl_rng_below(&r, 2);
            n.flags = (int32_t)odl_rng_below(&r, 4);
            n.shape_c = 1 + (int32_t)odl_rng_below(&r, 4);
            n.shape_h = 1 + (int32_t)odl_rng_below(&r, 4);
            n.shape_w = 1 + (int32_t)odl_rng_below(&r, 4);
            if (n.type == ODL_LAYER_DROPOUT)
                n.alpha = 0.25f;
            n.trainable = (int32_t)odl_rng_below(&r, 2);
            odl_desc_add_node(&d, &n, NULL);
        }
        if (odl_rng_below(&r, 2))
            odl_desc_dense(&d, 3);
        odl_layer_shape sh[NODES];
        odl_diag dg;
        if (odl_desc_check(&d, sh, &dg) != ODL_OK)
            continue;
        CHECK(odl_desc_check(&d, NULL, &dg) == ODL_OK);
        accepted++;
        for (int mode = 0; mode < 2; mode++) {
            odl_model_cfg cfg = odl_model_cfg_defaults();
            cfg.mode = mode ? ODL_MODE_TRAIN : ODL_MODE_INFER;
            cfg.max_batch = 2;
            built b;
            odl_status s = build_model(&b, &d, &cfg, (uint64_t)trial);
            CHECK(s == ODL_OK);
            if (s != ODL_OK) {
                free_model(&b);
                continue;
            }
            CHECK(b.arena.used == b.plan.total);
            const odl_layer_shape in = odl_model_layer_shape(b.m, -1);
            float x[2 * 147];
            fill(x, in.size * 2, (uint64_t)trial, 1.0f);
            const float *o;
            CHECK_OK(odl_model_forward(b.m, 0, x, 2, &o, &dg));
            if (mode && odl_model_first_trainable(b.m) < d.n_layers) {
                odl_rng rr;
                odl_rng_seed(&rr, 1, 1);
                int32_t y[2] = {0, 0};
                float loss;
                s = odl_model_train_step(b.m, 0, x, y, 2, &rr, &loss, &dg);
                CHECK(s == ODL_OK || s == ODL_ERR_NUMERIC);
            }
            free_model(&b);
        }
    }
    odl_test_logf(t, "    %d of 3000 random descriptions accepted", accepted);
    CHECK(accepted > 100);
}

static const odl_test_case cases[] = {
    {"transfer_grows_head", test_transfer_grows_head},
    {"grad_dense", test_grad_dense},
    {"grad_conv2d", test_grad_conv2d},
    {"grad_depthwise", test_grad_depthwise},
    {"grad_pools", test_grad_pools},
    {"grad_activations", test_grad_activations},
    {"grad_edge_cnn", test_grad_edge_cnn},
    {"grad_adapter", test_grad_adapter},
    {"adapter_identity", test_adapter_identity},
    {"freeze_boundary", test_freeze_boundary},
    {"plan_matches_arena", test_plan_matches_arena},
    {"bad_descriptions", test_bad_descriptions},
    {"forward_errors", test_forward_errors},
    {"kernels_match_reference", test_kernels_match_reference},
    {"deterministic", test_deterministic},
    {"latent_equals_raw", test_latent_equals_raw},
    {"latent_at_view", test_latent_at_view},
    {"rng", test_rng},
    {"diag_format", test_diag_format},
    {"grad_graph_blocks", test_grad_graph_blocks},
    {"grad_graph_operators", test_grad_graph_operators},
    {"gradcheck_catches_errors", test_gradcheck_catches_errors},
    {"graph_training", test_graph_training},
    {"graph_cuts", test_graph_cuts},
    {"desc_api", test_desc_api},
    {"planner", test_planner},
    {"layouts_agree", test_layouts_agree},
    {"hostile_graphs", test_hostile_graphs},
    {"random_graphs", test_random_graphs},
};

TEST_MAIN(cases)
