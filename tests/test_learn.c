/* Learning on real data: edge-cnn trained on a slice of Fashion-MNIST must
 * clear an accuracy floor on held-out test images. A wrong gradient that
 * still lowers the loss does not reach it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/data.h"
#include "odl/odl.h"

static int load(odl_test_ctx *t, odl_split split, int32_t limit, odl_dataset *ds)
{
    odl_data_opts o = odl_data_opts_defaults();
    o.split = split;
    o.limit = limit;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_data_load(ODL_FASHION_DIR, &o, ds, &d);
    if (s != ODL_OK) {
        odl_test_logf(t, "    cannot load %s: %s", ODL_FASHION_DIR, d.msg);
        return 0;
    }
    return 1;
}

static double accuracy(odl_model *m, const odl_dataset *ds, int32_t batch)
{
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    const int32_t C = odl_model_n_classes(m);
    int64_t ok = 0;
    for (int32_t s = 0; s < ds->n; s += batch) {
        int32_t n = ds->n - s < batch ? ds->n - s : batch;
        const float *out;
        if (odl_model_forward(m, 0, ds->x + (size_t)s * in, n, &out, NULL) != ODL_OK)
            return -1.0;
        for (int32_t k = 0; k < n; k++) {
            int32_t best = 0;
            for (int32_t j = 1; j < C; j++)
                if (out[(size_t)k * C + j] > out[(size_t)k * C + best])
                    best = j;
            ok += best == ds->y[s + k];
        }
    }
    return (double)ok / ds->n;
}

static void test_edge_cnn_learns_fashion(odl_test_ctx *t)
{
    odl_dataset tr, te;
    REQUIRE(load(t, ODL_SPLIT_TRAIN, 8000, &tr));
    REQUIRE(load(t, ODL_SPLIT_TEST, 2000, &te));
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    CHECK_OK(odl_desc_edge_cnn(&desc, tr.c, tr.h, tr.w, tr.n_classes));
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 32;
    odl_mem_plan plan;
    odl_diag d;
    CHECK_OK(odl_model_plan(&desc, &cfg, &plan, &d));
    void *buf = malloc(plan.total);
    odl_arena arena;
    odl_model *m;
    CHECK_OK(odl_arena_init(&arena, buf, plan.total));
    CHECK_OK(odl_model_init(&m, &desc, &cfg, &arena, &d));
    odl_rng rng;
    odl_rng_seed(&rng, 0, 1);
    CHECK_OK(odl_model_init_params(m, &rng));
    const double before = accuracy(m, &te, 32);
    const size_t in = (size_t)tr.c * tr.h * tr.w;
    uint32_t *order = malloc(sizeof(uint32_t) * tr.n);
    float *xb = malloc(sizeof(float) * in * 32);
    int32_t yb[32];
    for (int ep = 0; ep < 2; ep++) {
        for (int32_t k = 0; k < tr.n; k++)
            order[k] = (uint32_t)k;
        odl_rng_shuffle_u32(&rng, order, (uint32_t)tr.n);
        for (int32_t s = 0; s + 32 <= tr.n; s += 32) {
            for (int k = 0; k < 32; k++) {
                memcpy(xb + (size_t)k * in, tr.x + (size_t)order[s + k] * in, sizeof(float) * in);
                yb[k] = tr.y[order[s + k]];
            }
            float loss;
            CHECK_OK(odl_model_train_step(m, 0, xb, yb, 32, &rng, &loss, &d));
        }
    }
    const double after = accuracy(m, &te, 32);
    odl_test_logf(t, "    test accuracy %.2f%% before, %.2f%% after 2 epochs on 8000 images", 100 * before,
                  100 * after);
    CHECK(before >= 0.0 && before < 0.3);
    CHECK(after > 0.78);
    free(order);
    free(xb);
    free(buf);
    odl_dataset_free(&tr);
    odl_dataset_free(&te);
}

static const odl_test_case cases[] = {
    {"edge_cnn_learns_fashion", test_edge_cnn_learns_fashion},
};

TEST_MAIN(cases)
