/* Continual learning on real data, through the core API only: a base
 * learns Fashion-MNIST classes 0-4; a grown head then learns 5-9 from
 * 30 examples each. Replay of 100 INT8 latents must forget far less of
 * 0-4 than naive fine-tuning, and still learn the new classes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/data.h"
#include "odl/odl.h"

typedef struct mm {
    void *buf;
    odl_model *m;
} mm;

static int make(mm *o, const odl_model_desc *d, odl_model_mode mode, int32_t batch)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = mode;
    cfg.max_batch = batch;
    odl_mem_plan p;
    if (odl_model_plan(d, &cfg, &p, NULL) != ODL_OK)
        return 0;
    o->buf = malloc(p.total);
    odl_arena a;
    odl_arena_init(&a, o->buf, p.total);
    return odl_model_init(&o->m, d, &cfg, &a, NULL) == ODL_OK;
}

static double head_acc(odl_model *head, const float *z, const int32_t *y, int32_t n, int32_t lo, int32_t hi)
{
    const int32_t C = odl_model_n_classes(head);
    int64_t ok = 0, tot = 0;
    for (int32_t k = 0; k < n; k++) {
        if (y[k] < lo || y[k] > hi)
            continue;
        const float *o;
        if (odl_model_forward(head, 0, z + (size_t)k * 64, 1, &o, NULL) != ODL_OK)
            return -1;
        int32_t best = 0;
        for (int32_t j = 1; j < C; j++)
            if (o[j] > o[best])
                best = j;
        ok += best == y[k];
        tot++;
    }
    return tot ? (double)ok / tot : -1;
}

static void test_replay_forgets_less(odl_test_ctx *t)
{
    odl_data_opts o = odl_data_opts_defaults();
    odl_dataset tr, te;
    o.split = ODL_SPLIT_TRAIN;
    o.limit = 12000;
    REQUIRE(odl_data_load(ODL_FASHION_DIR, &o, &tr, NULL) == ODL_OK);
    o.split = ODL_SPLIT_TEST;
    o.limit = 3000;
    REQUIRE(odl_data_load(ODL_FASHION_DIR, &o, &te, NULL) == ODL_OK);
    const size_t in = 784;

    /* base: classes 0-4, 2 epochs */
    odl_node_desc bd_nodes[64];
    odl_model_desc bd;
    odl_desc_init(&bd, bd_nodes, 64, 1, 1, 1);
    odl_desc_edge_cnn(&bd, 1, 28, 28, 5);
    mm base;
    REQUIRE(make(&base, &bd, ODL_MODE_TRAIN, 32));
    odl_rng rng;
    odl_rng_seed(&rng, 7, 1);
    odl_model_init_params(base.m, &rng);
    float *xb = malloc(sizeof(float) * in * 32);
    int32_t yb[32];
    int32_t *old_idx = malloc(sizeof(int32_t) * tr.n), n_old = 0;
    for (int32_t k = 0; k < tr.n; k++)
        if (tr.y[k] <= 4)
            old_idx[n_old++] = k;
    for (int ep = 0; ep < 2; ep++)
        for (int32_t s = 0; s + 32 <= n_old; s += 32) {
            for (int k = 0; k < 32; k++) {
                int32_t i = old_idx[(s + k + ep * 7919) % n_old];
                memcpy(xb + (size_t)k * in, tr.x + (size_t)i * in, sizeof(float) * in);
                yb[k] = tr.y[i];
            }
            float loss;
            CHECK_OK(odl_model_train_step(base.m, 0, xb, yb, 32, &rng, &loss, NULL));
        }

    /* latents (boundary 9: the 64-d output of dense+ReLU) of train and test */
    float *ztr = malloc(sizeof(float) * 64 * tr.n), *zte = malloc(sizeof(float) * 64 * te.n);
    for (int32_t k = 0; k < tr.n; k += 32) {
        int32_t n = tr.n - k < 32 ? tr.n - k : 32;
        CHECK_OK(odl_model_forward_range(base.m, 0, 9, tr.x + (size_t)k * in, n, ztr + (size_t)k * 64, NULL));
    }
    for (int32_t k = 0; k < te.n; k += 32) {
        int32_t n = te.n - k < 32 ? te.n - k : 32;
        CHECK_OK(odl_model_forward_range(base.m, 0, 9, te.x + (size_t)k * in, n, zte + (size_t)k * 64, NULL));
    }

    /* the user's examples: 30 of each new class 5-9 */
    float znew[150 * 64];
    int32_t ynew[150], have[10] = {0}, n_new = 0;
    for (int32_t k = 0; k < tr.n && n_new < 150; k++)
        if (tr.y[k] >= 5 && have[tr.y[k]] < 30) {
            have[tr.y[k]]++;
            memcpy(znew + (size_t)n_new * 64, ztr + (size_t)k * 64, sizeof(float) * 64);
            ynew[n_new++] = tr.y[k];
        }
    REQUIRE(n_new == 150);

    double old_acc[2], new_acc[2];
    for (int use_replay = 0; use_replay < 2; use_replay++) {
        /* head: dense 64->10, grown from the base's 5-class head */
        odl_node_desc hd_nodes[64];
        odl_model_desc hd;
        odl_desc_init(&hd, hd_nodes, 64, 1, 1, 1);
        odl_node_desc hd5_nodes[64];
        odl_model_desc hd5;
        odl_desc_init(&hd5, hd5_nodes, 64, 1, 1, 1);
        odl_desc_init(&hd5, hd5.layers, hd5.cap_layers, 64, 1, 1);
        odl_desc_dense(&hd5, 5);
        REQUIRE(odl_desc_copy(&hd, &hd5, NULL) == ODL_OK);
        odl_desc_set_classes(&hd, 10);
        mm h5, h;
        REQUIRE(make(&h5, &hd5, ODL_MODE_INFER, 1));
        REQUIRE(make(&h, &hd, ODL_MODE_TRAIN, 16));
        for (int which = 0; which < 2; which++) {
            size_t n1, n2;
            float *dst = odl_model_param(h5.m, 0, which, &n1);
            const float *src = odl_model_param_const(base.m, 9, which, &n2);
            REQUIRE(dst && src && n1 == n2);
            memcpy(dst, src, sizeof(float) * n1);
        }
        odl_rng r;
        odl_rng_seed(&r, 3, 3);
        CHECK_OK(odl_model_transfer_params(h.m, h5.m, &r, NULL));

        odl_replay *rb = NULL;
        void *rbuf = NULL;
        if (use_replay) {
            odl_replay_cfg rc = {100, 64, 10, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_INT8};
            odl_mem_plan p;
            CHECK_OK(odl_replay_plan(&rc, &p, NULL));
            rbuf = malloc(p.total);
            odl_arena a;
            odl_arena_init(&a, rbuf, p.total);
            CHECK_OK(odl_replay_init(&rb, &rc, &a, NULL));
            for (int32_t k = 0; k < n_old; k++)
                CHECK_OK(odl_replay_add(rb, ztr + (size_t)old_idx[k] * 64, tr.y[old_idx[k]], &r, NULL));
            CHECK(odl_replay_count(rb) == 100);
        }
        odl_adapt_cfg ac = odl_adapt_cfg_defaults();
        odl_mem_plan tp;
        CHECK_OK(odl_adapt_plan(h.m, &ac, n_new, 100, &tp, NULL));
        void *tbuf = malloc(tp.total);
        odl_arena ta;
        odl_arena_init(&ta, tbuf, tp.total);
        odl_adapt *trn;
        CHECK_OK(odl_adapt_init(&trn, h.m, &ac, n_new, 100, &ta, NULL));
        CHECK(ta.used == tp.total);
        odl_adapt_stats st;
        CHECK_OK(odl_adapt_run(trn, h.m, znew, ynew, n_new, NULL, 0, rb, NULL, &r, &st, NULL));
        CHECK(st.last_epoch_loss < st.first_epoch_loss);
        old_acc[use_replay] = head_acc(h.m, zte, te.y, te.n, 0, 4);
        new_acc[use_replay] = head_acc(h.m, zte, te.y, te.n, 5, 9);
        free(tbuf);
        free(rbuf);
        free(h.buf);
        free(h5.buf);
    }
    odl_test_logf(t, "    old classes: naive %.1f%%, replay %.1f%%; new classes: naive %.1f%%, replay %.1f%%",
                  100 * old_acc[0], 100 * old_acc[1], 100 * new_acc[0], 100 * new_acc[1]);
    CHECK(old_acc[1] > old_acc[0] + 0.30); /* replay forgets far less */
    /* and still learns the new classes (measured 54.8%; chance is 10%) */
    CHECK(new_acc[1] > 0.45);
    free(xb);
    free(old_idx);
    free(ztr);
    free(zte);
    free(base.buf);
    odl_dataset_free(&tr);
    odl_dataset_free(&te);
}

/* Dark experience replay: distilling the replayed slots toward the
 * pre-update head keeps the head's outputs on them closer to what they were
 * than plain replay does (synthetic latents; the effect, not a threshold). */
static void test_replay_distillation_anchors(odl_test_ctx *t)
{
    enum { D = 8, C = 4, R = 40, N = 24 };
    odl_node_desc hd_nodes[64];
    odl_model_desc hd;
    odl_desc_init(&hd, hd_nodes, 64, 1, 1, 1);
    odl_desc_init(&hd, hd.layers, hd.cap_layers, D, 1, 1);
    odl_desc_dense(&hd, C);
    odl_rng r;
    odl_rng_seed(&r, 11, 2);
    float zr[R * D], zn[N * D];
    int32_t yr[R], yn[N];
    for (int k = 0; k < R * D; k++)
        zr[k] = odl_rng_normal(&r);
    for (int k = 0; k < R; k++)
        yr[k] = k % C;
    for (int k = 0; k < N * D; k++)
        zn[k] = odl_rng_normal(&r) + 1.5f;
    for (int k = 0; k < N; k++)
        yn[k] = 3; /* the new data pushes everything toward class 3 */
    double drift[2];
    for (int use = 0; use < 2; use++) {
        mm h;
        REQUIRE(make(&h, &hd, ODL_MODE_TRAIN, 8));
        odl_rng ri;
        odl_rng_seed(&ri, 5, 5);
        odl_model_init_params(h.m, &ri);
        odl_replay_cfg rc = {R, D, C, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32};
        odl_mem_plan p;
        CHECK_OK(odl_replay_plan(&rc, &p, NULL));
        void *rbuf = malloc(p.total);
        odl_arena a;
        odl_arena_init(&a, rbuf, p.total);
        odl_replay *rb;
        CHECK_OK(odl_replay_init(&rb, &rc, &a, NULL));
        for (int k = 0; k < R; k++)
            CHECK_OK(odl_replay_add(rb, zr + k * D, yr[k], &ri, NULL));
        /* the teacher: the head's logits on every slot, before the update */
        float teach[R * C], z1[D];
        for (int k = 0; k < R; k++) {
            int32_t lab;
            const float *o;
            CHECK_OK(odl_replay_get(rb, k, z1, &lab));
            CHECK_OK(odl_model_forward(h.m, 0, z1, 1, &o, NULL));
            memcpy(teach + k * C, o, sizeof(float) * C);
        }
        odl_adapt_cfg ac = odl_adapt_cfg_defaults();
        ac.batch = 8;
        ac.epochs = 20;
        ac.lwf_classes = C;
        ac.replay_distill = use ? 50.0f : 0.0f;
        odl_mem_plan tp;
        CHECK_OK(odl_adapt_plan(h.m, &ac, N, R, &tp, NULL));
        void *tbuf = malloc(tp.total);
        odl_arena ta;
        odl_arena_init(&ta, tbuf, tp.total);
        odl_adapt *tr;
        CHECK_OK(odl_adapt_init(&tr, h.m, &ac, N, R, &ta, NULL));
        if (use) {
            /* without the teacher it is refused, with it it runs */
            CHECK(odl_adapt_run(tr, h.m, zn, yn, N, NULL, 0, rb, NULL, &ri, NULL, NULL) == ODL_ERR_ARG);
            odl_adapt_set_replay_teacher(tr, teach, C);
        }
        CHECK_OK(odl_adapt_run(tr, h.m, zn, yn, N, NULL, 0, rb, NULL, &ri, NULL, NULL));
        double dsum = 0.0;
        for (int k = 0; k < R; k++) {
            int32_t lab;
            const float *o;
            CHECK_OK(odl_replay_get(rb, k, z1, &lab));
            CHECK_OK(odl_model_forward(h.m, 0, z1, 1, &o, NULL));
            for (int c = 0; c < C; c++)
                dsum += (o[c] - teach[k * C + c]) * (o[c] - teach[k * C + c]);
        }
        drift[use] = dsum / R;
        free(tbuf);
        free(rbuf);
        free(h.buf);
    }
    odl_test_logf(t, "    mean squared logit change on replayed slots: plain %.4f, distilled %.4f", drift[0], drift[1]);
    CHECK(drift[1] < 0.5 * drift[0]);
}

static const odl_test_case cases[] = {
    {"replay_distillation_anchors", test_replay_distillation_anchors},
    {"replay_forgets_less_than_naive", test_replay_forgets_less},
};

TEST_MAIN(cases)
