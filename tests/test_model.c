/* Model-level tests: every layer's backward against central finite
 * differences, the freeze boundary, plans against the arena actually used,
 * optimised kernels against their reference loops, determinism. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/odl.h"

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

/* Checks d(loss)/d(every trainable parameter) against central differences.
 * Runs in float, so eps and tolerance are chosen for float: a wrong backward
 * is off by O(1) relative, far outside them. */
static void gradcheck(odl_test_ctx *t, const odl_model_desc *desc, int32_t batch)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = batch;
    built b;
    CHECK_OK(build_model(&b, desc, &cfg, 42));
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
    int checked = 0, bad = 0, kinks = 0;
    const double l0 = loss_at(b.m, x, y, batch, &rng0);
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n, ng;
            float *p = odl_model_param(b.m, i, which, &n);
            float *g = odl_model_grad(b.m, i, which, &ng);
            if (!p || !n)
                continue;
            if (!desc->layers[i].trainable) {
                CHECK(g == NULL); /* frozen: no gradient at all */
                continue;
            }
            REQUIRE(g && ng == n);
            float *gsave = malloc(sizeof(float) * n);
            memcpy(gsave, g, sizeof(float) * n);
            size_t stride = n > 40 ? n / 40 : 1; /* a spread sample of parameters */
            for (size_t k = 0; k < n; k += stride) {
                const float eps = 1e-3f, keep = p[k];
                p[k] = keep + eps;
                double lp = loss_at(b.m, x, y, batch, &rng0);
                p[k] = keep - eps;
                double lm = loss_at(b.m, x, y, batch, &rng0);
                p[k] = keep;
                /* A ReLU or max-pool kink inside ±eps makes the central
                 * difference meaningless; such points show a second
                 * difference far above float noise and are skipped (and
                 * counted: too many skips fail the test). */
                if (fabs(lp - 2.0 * l0 + lm) > 2e-6) {
                    kinks++;
                    continue;
                }
                double fd = (lp - lm) / (2.0 * (double)eps);
                double an = gsave[k];
                double err = fabs(fd - an);
                checked++;
                if (err > 1e-3 + 3e-2 * fabs(fd)) {
                    if (bad++ < 3)
                        odl_test_logf(t, "    layer %d %s[%zu]: analytic %.6g vs numeric %.6g", (int)i,
                                      which ? "b" : "w", k, an, fd);
                }
            }
            free(gsave);
        }
    if (kinks * 10 > checked)
        odl_test_logf(t, "    %d of %d points at a kink", kinks, kinks + checked);
    CHECK(kinks * 10 <= checked);
    CHECK(checked > 0);
    CHECK(bad == 0);
    free(dl);
    free(x);
    free_model(&b);
}

/* A trainable conv feeds the layer under test, so that layer's input
 * gradient is checked through the conv's weight gradient. */
static void chain(odl_model_desc *d, int32_t c, int32_t h, int32_t w)
{
    odl_desc_init(d, c, h, w);
    odl_desc_conv2d(d, 3, 3, 1, 1);
}

static void tail(odl_model_desc *d)
{
    odl_desc_flatten(d);
    odl_desc_dense(d, 4);
}

static void test_grad_dense(odl_test_ctx *t)
{
    odl_model_desc d;
    odl_desc_init(&d, 1, 1, 9);
    odl_desc_dense(&d, 7);
    odl_desc_relu(&d);
    odl_desc_dense(&d, 5);
    gradcheck(t, &d, 3);
}

static void test_grad_conv2d(odl_test_ctx *t)
{
    odl_model_desc d;
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
    odl_model_desc d;
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
    odl_model_desc d;
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
    odl_model_desc d;
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
    odl_model_desc d;
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
    odl_model_desc d, da;
    odl_desc_edge_cnn(&d, 1, 12, 12, 5);
    da = d;
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
    CHECK_OK(odl_desc_count_params(&da, &total, NULL));
    CHECK(total == 10853 + 1096); /* edge-cnn at 12x12, 5 classes; adapter 2*64*8 + 64 + 8 */
    free_model(&a);
    free_model(&b);
}

static void test_grad_edge_cnn(odl_test_ctx *t)
{
    odl_model_desc d;
    odl_desc_edge_cnn(&d, 1, 12, 12, 5);
    gradcheck(t, &d, 2);
}

static void test_freeze_boundary(odl_test_ctx *t)
{
    odl_model_desc full, head;
    odl_desc_edge_cnn(&full, 1, 28, 28, 10);
    head = full;
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
    CHECK_OK(odl_desc_count_params(&full, &total, &trainable));
    CHECK(total == 52138 && trainable == 52138);
    CHECK_OK(odl_desc_count_params(&head, &total, &trainable));
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
    odl_model_desc descs[3];
    odl_desc_edge_cnn(&descs[0], 1, 28, 28, 10);
    descs[1] = descs[0];
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
    odl_model_desc d;
    odl_diag dg;
    odl_desc_init(&d, 1, 4, 4);
    odl_desc_conv2d(&d, 2, 5, 1, 0); /* 5x5 window on 4x4 input */
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE);
    CHECK(strstr(dg.msg, "does not fit") != NULL);
    odl_desc_init(&d, 1, 4, 4);
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE); /* no layers */
    odl_desc_init(&d, 1, 4, 4);
    odl_desc_dense(&d, 3);
    d.layers[0].type = 77;
    CHECK(odl_desc_check(&d, NULL, &dg) != ODL_OK);
    CHECK(odl_desc_dropout(&d, 1.0f) == ODL_ERR_ARG);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 0;
    odl_mem_plan p;
    odl_desc_init(&d, 1, 4, 4);
    odl_desc_dense(&d, 3);
    CHECK(odl_model_plan(&d, &cfg, &p, &dg) == ODL_ERR_ARG);
    /* a 240-byte file's description: 1x8192x8192, flatten (2^26 channels),
     * depthwise x32 — 2^31 channels must be refused without int overflow */
    memset(&d, 0, sizeof d);
    d.in_c = 1;
    d.in_h = d.in_w = 8192;
    d.n_layers = 2;
    d.layers[0].type = ODL_LAYER_FLATTEN;
    d.layers[1].type = ODL_LAYER_DEPTHWISE;
    d.layers[1].units = 32;
    d.layers[1].k_h = d.layers[1].k_w = d.layers[1].stride_h = d.layers[1].stride_w = 1;
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE);
    CHECK(strstr(dg.msg, "67108864 channels x 32") != NULL);
    /* the same for a conv whose weights exceed any size_t product check */
    d.layers[1].type = ODL_LAYER_CONV2D;
    d.layers[1].units = 65536;
    d.layers[1].k_h = d.layers[1].k_w = 64;
    d.in_h = 64;
    d.in_w = 64;
    d.layers[0].type = ODL_LAYER_RELU;
    d.in_c = 16384;
    d.in_h = d.in_w = 64;
    CHECK(odl_desc_check(&d, NULL, &dg) == ODL_ERR_SHAPE);
}

static void test_forward_errors(odl_test_ctx *t)
{
    odl_model_desc d;
    odl_desc_init(&d, 1, 1, 4);
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
    odl_model_desc d;
    odl_desc_edge_cnn(&d, 1, 8, 8, 3);
    odl_desc_dropout(&d, 0.0f); /* exercise the dropout path too */
    d.layers[d.n_layers - 1].rate = 0.2f;
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
    odl_model_desc d;
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
}

/* Growing a head for new classes: old rows exactly kept, new rows small,
 * and a topology that differs elsewhere refused. */
static void test_transfer_grows_head(odl_test_ctx *t)
{
    odl_model_desc d8, d10;
    odl_desc_edge_cnn(&d8, 1, 12, 12, 8);
    d10 = d8;
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
    odl_model_desc other;
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
    {"rng", test_rng},
    {"diag_format", test_diag_format},
};

TEST_MAIN(cases)
