/* Learner state in the .odl file (odl/state.h): round trips of the replay
 * buffer, EWC, NCM and SLDA chunks (bit-identical contents; a restored
 * reservoir and SLDA continue exactly like the originals), the
 * model-plus-state writer, mismatched configurations, the on-disk layout,
 * and damaged files: every byte of a file flipped and every truncation
 * (always an error, the learners untouched), and every byte of each state
 * payload flipped with the CRC out of the way (an error with the learner
 * untouched, or a learner that still satisfies its invariants). Runs under
 * ASan/UBSan; damaged inputs are exact-size heap copies. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/odl.h"
#include "odl/state.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
    int calls;
    int fail_at; /* 0: never */
} membuf;

static odl_status mb_write(void *ctx, const void *data, size_t n)
{
    membuf *b = ctx;
    b->calls++;
    if (b->fail_at && b->calls == b->fail_at)
        return ODL_ERR_IO;
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
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

static odl_writer mb_writer(membuf *b)
{
    odl_writer w;
    w.write = mb_write;
    w.ctx = b;
    w.offset = 0;
    return w;
}

static void mb_free(membuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static uint8_t *exact_dup(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

static int same_bytes(const membuf *a, const membuf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* Owned memory for one object built in an arena. */
typedef struct box {
    void *mem;
    odl_arena arena;
} box;

static odl_status box_open(box *b, size_t bytes)
{
    b->mem = aligned_alloc(16, (bytes + 15u) & ~(size_t)15u);
    if (!b->mem)
        return ODL_ERR_NOMEM;
    return odl_arena_init(&b->arena, b->mem, bytes);
}

static void box_close(box *b)
{
    free(b->mem);
    b->mem = NULL;
}

static odl_replay_cfg mkcfg(int32_t cap, int32_t dim, int32_t ncls, odl_replay_policy pol, odl_replay_dtype dt)
{
    odl_replay_cfg c;
    memset(&c, 0, sizeof c);
    c.capacity = cap;
    c.dim = dim;
    c.n_classes = ncls;
    c.policy = pol;
    c.dtype = dt;
    return c;
}

static odl_status replay_new(box *b, odl_replay **rb, const odl_replay_cfg *cfg)
{
    odl_mem_plan p;
    odl_status s = odl_replay_plan(cfg, &p, NULL);
    if (s == ODL_OK)
        s = box_open(b, p.total);
    if (s == ODL_OK)
        s = odl_replay_init(rb, cfg, &b->arena, NULL);
    return s;
}

/* A labelled stream from `data`: skewed classes, normal vectors. */
static odl_status feed(odl_replay *rb, int32_t n, odl_rng *data, odl_rng *rng)
{
    const odl_replay_cfg *c = odl_replay_get_cfg(rb);
    float z[64];
    for (int32_t i = 0; i < n; i++) {
        for (int32_t e = 0; e < c->dim; e++)
            z[e] = 3.0f * odl_rng_normal(data);
        const int32_t y =
            odl_rng_uniform(data) < 0.6f ? 0 : (int32_t)odl_rng_below(data, (uint32_t)c->n_classes);
        odl_status s = odl_replay_add(rb, z, y, rng, NULL);
        if (s != ODL_OK)
            return s;
    }
    return ODL_OK;
}

/* One state chunk's bytes (no file header). */
static odl_status chunk_replay(const odl_replay *rb, membuf *out)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    return odl_state_write_replay(&w, rb, NULL);
}
static odl_status chunk_ewc(const odl_ewc *e, membuf *out)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    return odl_state_write_ewc(&w, e, NULL);
}
static odl_status chunk_ncm(const odl_ncm *h, membuf *out)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    return odl_state_write_ncm(&w, h, NULL);
}
static odl_status chunk_slda(const odl_slda *h, membuf *out)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    return odl_state_write_slda(&w, h, NULL);
}

/* A file: header, the given chunks, END. */
static odl_status state_file(membuf *out, const odl_replay *rb, const odl_ewc *e, const odl_ncm *ncm,
                             const odl_slda *slda)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    odl_status s = odl_file_write_header(&w, NULL);
    if (s == ODL_OK)
        s = odl_state_write_all(&w, rb, e, ncm, slda, NULL);
    if (s == ODL_OK)
        s = odl_file_write_end(&w, NULL);
    return s;
}

/* Every invariant of a replay buffer a reader may rely on. */
static int replay_invariants(const odl_replay *rb)
{
    const odl_replay_cfg *c = odl_replay_get_cfg(rb);
    const int32_t count = odl_replay_count(rb);
    if (count < 0 || count > c->capacity || (uint64_t)count > odl_replay_seen(rb))
        return 0;
    int32_t hist[16] = {0};
    if (c->n_classes > 16 || c->dim > 64)
        return 0;
    for (int32_t i = 0; i < count; i++) {
        float z[64];
        int32_t l;
        if (odl_replay_get(rb, i, z, &l) != ODL_OK || l < 0 || l >= c->n_classes)
            return 0;
        for (int32_t e = 0; e < c->dim; e++)
            if (!isfinite(z[e]))
                return 0;
        hist[l]++;
    }
    int64_t sum = 0;
    uint64_t seen = 0;
    for (int32_t k = 0; k < c->n_classes; k++) {
        if (hist[k] != odl_replay_class_count(rb, k) || (uint64_t)hist[k] > odl_replay_class_seen(rb, k))
            return 0;
        sum += hist[k];
        seen += odl_replay_class_seen(rb, k);
    }
    return sum == count && seen == odl_replay_seen(rb);
}

/* ---- models, EWC, heads ------------------------------------------------- */

typedef struct learner {
    box mb, eb, nb, sb, rbx;
    odl_model *m;
    odl_ewc *e;
    odl_ncm *ncm;
    odl_slda *slda;
    odl_replay *rb;
} learner;

/* 1x1x4 -> flatten, dense `hidden`, relu, dense 3; training mode. */
static odl_status model_new(box *b, odl_model **m, int32_t hidden, uint64_t seed)
{
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    odl_desc_init(&desc, desc.layers, desc.cap_layers, 1, 1, 4);
    odl_desc_flatten(&desc);
    odl_desc_dense(&desc, hidden);
    odl_desc_relu(&desc);
    odl_desc_dense(&desc, 3);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = 2;
    odl_mem_plan p;
    odl_status s = odl_model_plan(&desc, &cfg, &p, NULL);
    if (s == ODL_OK)
        s = box_open(b, p.total);
    if (s == ODL_OK)
        s = odl_model_init(m, &desc, &cfg, &b->arena, NULL);
    odl_rng r;
    odl_rng_seed(&r, seed, 1);
    if (s == ODL_OK)
        s = odl_model_init_params(*m, &r);
    return s;
}

static odl_status ewc_new(box *b, odl_ewc **e, const odl_model *m)
{
    odl_mem_plan p;
    odl_status s = odl_ewc_plan(m, &p, NULL);
    if (s == ODL_OK)
        s = box_open(b, p.total);
    if (s == ODL_OK)
        s = odl_ewc_init(e, m, &b->arena, NULL);
    return s;
}

static odl_status ncm_new(box *b, odl_ncm **h, int32_t dim, int32_t ncls)
{
    odl_mem_plan p;
    odl_status s = odl_ncm_plan(dim, ncls, &p, NULL);
    if (s == ODL_OK)
        s = box_open(b, p.total);
    if (s == ODL_OK)
        s = odl_ncm_init(h, dim, ncls, &b->arena, NULL);
    return s;
}

static odl_status slda_new(box *b, odl_slda **h, int32_t dim, int32_t ncls)
{
    odl_mem_plan p;
    odl_status s = odl_slda_plan(dim, ncls, &p, NULL);
    if (s == ODL_OK)
        s = box_open(b, p.total);
    if (s == ODL_OK)
        s = odl_slda_init(h, dim, ncls, 0.05f, &b->arena, NULL);
    return s;
}

#define HDIM 5
#define HCLS 4

/* Samples for the heads: class c centred at c along every axis; class 3
 * never appears (an all-zero row in the chunks). */
static void head_samples(odl_rng *r, int32_t n, float *z, int32_t *y)
{
    for (int32_t i = 0; i < n; i++) {
        y[i] = (int32_t)odl_rng_below(r, 3);
        for (int32_t e = 0; e < HDIM; e++)
            z[i * HDIM + e] = (float)y[i] + 0.7f * odl_rng_normal(r) + 0.1f * (float)e;
    }
}

/* Builds every component; `fill` puts state into them (else they are empty). */
static odl_status learner_new(learner *L, const odl_replay_cfg *rcfg, int fill, uint64_t seed)
{
    memset(L, 0, sizeof *L);
    odl_status s = model_new(&L->mb, &L->m, 3, 11);
    if (s == ODL_OK)
        s = ewc_new(&L->eb, &L->e, L->m);
    if (s == ODL_OK)
        s = ncm_new(&L->nb, &L->ncm, HDIM, HCLS);
    if (s == ODL_OK)
        s = slda_new(&L->sb, &L->slda, HDIM, HCLS);
    if (s == ODL_OK)
        s = replay_new(&L->rbx, &L->rb, rcfg);
    if (s != ODL_OK || !fill)
        return s;
    odl_rng r, data;
    odl_rng_seed(&r, seed, 2);
    odl_rng_seed(&data, seed, 3);
    s = feed(L->rb, 50, &data, &r);
    const size_t n = odl_ewc_n_params(L->e);
    float *f = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float));
    if (!f || !a)
        s = ODL_ERR_NOMEM;
    for (size_t i = 0; s == ODL_OK && i < n; i++) {
        f[i] = odl_rng_uniform(&r) * 2.0f;
        a[i] = odl_rng_normal(&r);
    }
    if (s == ODL_OK)
        s = odl_ewc_set(L->e, f, a, n, NULL);
    free(f);
    free(a);
    float z[40 * HDIM];
    int32_t y[40];
    head_samples(&r, 40, z, y);
    for (int32_t i = 0; s == ODL_OK && i < 40; i++) {
        s = odl_ncm_add(L->ncm, z + i * HDIM, y[i]);
        if (s == ODL_OK)
            s = odl_slda_add(L->slda, z + i * HDIM, y[i]);
    }
    return s;
}

static void learner_free(learner *L)
{
    box_close(&L->mb);
    box_close(&L->eb);
    box_close(&L->nb);
    box_close(&L->sb);
    box_close(&L->rbx);
}

/* The four chunks of a learner, concatenated: equal bytes = equal state. */
static odl_status learner_snapshot(const learner *L, membuf *out)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    return odl_state_write_all(&w, L->rb, L->e, L->ncm, L->slda, NULL);
}

/* ---- round trips --------------------------------------------------------- */

static void test_replay_round_trip(odl_test_ctx *t)
{
    static const int32_t lengths[] = {0, 5, 31, 32, 300};
    int runs = 0;
    for (int dt = 0; dt < 2; dt++)
        for (int pol = 0; pol < 2; pol++)
            for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
                const odl_replay_cfg cfg = mkcfg(32, 6, 4, (odl_replay_policy)pol, (odl_replay_dtype)dt);
                box ba, bb;
                odl_replay *a, *b;
                CHECK_OK(replay_new(&ba, &a, &cfg));
                CHECK_OK(replay_new(&bb, &b, &cfg));
                odl_rng rng, data;
                odl_rng_seed(&rng, 100 + li, 1);
                odl_rng_seed(&data, 200 + li, 1);
                CHECK_OK(feed(a, lengths[li], &data, &rng));
                membuf f = {0}, ca = {0}, cb = {0};
                CHECK_OK(state_file(&f, a, NULL, NULL, NULL));
                /* the configuration alone, for planning */
                odl_replay_cfg got;
                odl_diag d;
                odl_diag_clear(&d);
                CHECK_OK(odl_state_find_replay_cfg(f.p, f.len, &got, &d));
                CHECK(memcmp(&got, &cfg, sizeof cfg) == 0);
                uint32_t found = 99;
                CHECK_OK(odl_state_load(f.p, f.len, b, NULL, NULL, NULL, &found, &d));
                CHECK(found == ODL_STATE_HAS_REPLAY);
                /* bit-identical: counters, every slot, and the saved bytes */
                CHECK(odl_replay_count(a) == odl_replay_count(b) && odl_replay_seen(a) == odl_replay_seen(b));
                for (int32_t c = 0; c < 4; c++)
                    CHECK(odl_replay_class_count(a, c) == odl_replay_class_count(b, c) &&
                          odl_replay_class_seen(a, c) == odl_replay_class_seen(b, c));
                for (int32_t i = 0; i < odl_replay_count(a); i++) {
                    float za[6], zb[6];
                    int32_t la, lb;
                    odl_replay_get(a, i, za, &la);
                    odl_replay_get(b, i, zb, &lb);
                    CHECK(la == lb && memcmp(za, zb, sizeof za) == 0);
                }
                CHECK_OK(chunk_replay(a, &ca));
                CHECK_OK(chunk_replay(b, &cb));
                CHECK(same_bytes(&ca, &cb));
                CHECK(replay_invariants(b));
                /* the restored buffer continues exactly like the original */
                odl_rng rng_b = rng, data_b = data;
                CHECK_OK(feed(a, 400, &data, &rng));
                CHECK_OK(feed(b, 400, &data_b, &rng_b));
                CHECK_OK(chunk_replay(a, &ca));
                CHECK_OK(chunk_replay(b, &cb));
                CHECK(same_bytes(&ca, &cb));
                CHECK(memcmp(&rng, &rng_b, sizeof rng) == 0);
                runs++;
                mb_free(&f);
                mb_free(&ca);
                mb_free(&cb);
                box_close(&ba);
                box_close(&bb);
            }
    odl_test_logf(t, "    %d configurations restored bit for bit and continued 400 items identically", runs);
}

static void test_ewc_round_trip(odl_test_ctx *t)
{
    const odl_replay_cfg rc = mkcfg(8, 4, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    learner a, b;
    CHECK_OK(learner_new(&a, &rc, 1, 5));
    CHECK_OK(learner_new(&b, &rc, 0, 5));
    membuf f = {0};
    CHECK_OK(state_file(&f, NULL, a.e, NULL, NULL));
    const uint8_t *p;
    size_t n, np;
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_EWC, &p, &n, NULL));
    CHECK_OK(odl_state_ewc_n_params(p, n, &np, NULL));
    CHECK(np == odl_ewc_n_params(a.e) && np == 4 * 3 + 3 + 3 * 3 + 3);
    CHECK_OK(odl_state_read_ewc(b.e, p, n, NULL));
    CHECK(memcmp(odl_ewc_fisher(a.e), odl_ewc_fisher(b.e), np * sizeof(float)) == 0);
    CHECK(memcmp(odl_ewc_anchor(a.e), odl_ewc_anchor(b.e), np * sizeof(float)) == 0);
    CHECK(odl_ewc_penalty(a.e, a.m, 3.0f) == odl_ewc_penalty(b.e, a.m, 3.0f));
    CHECK(odl_ewc_penalty(a.e, a.m, 3.0f) > 0.0f);
    mb_free(&f);
    learner_free(&a);
    learner_free(&b);
}

static void test_ncm_round_trip(odl_test_ctx *t)
{
    const odl_replay_cfg rc = mkcfg(8, 4, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    learner a, b;
    CHECK_OK(learner_new(&a, &rc, 1, 6));
    CHECK_OK(learner_new(&b, &rc, 0, 6));
    membuf f = {0};
    CHECK_OK(state_file(&f, NULL, NULL, a.ncm, NULL));
    const uint8_t *p;
    size_t n;
    int32_t dim, cls;
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_NCM, &p, &n, NULL));
    CHECK_OK(odl_state_ncm_shape(p, n, &dim, &cls, NULL));
    CHECK(dim == HDIM && cls == HCLS);
    CHECK_OK(odl_state_read_ncm(b.ncm, p, n, NULL));
    CHECK(memcmp(odl_ncm_means(a.ncm), odl_ncm_means(b.ncm), sizeof(float) * HDIM * HCLS) == 0);
    for (int32_t c = 0; c < HCLS; c++)
        CHECK(odl_ncm_count(a.ncm, c) == odl_ncm_count(b.ncm, c));
    CHECK(odl_ncm_count(b.ncm, 3) == 0 && odl_ncm_count(b.ncm, 0) > 0);
    odl_rng r;
    odl_rng_seed(&r, 9, 9);
    float z[30 * HDIM];
    int32_t y[30];
    head_samples(&r, 30, z, y);
    for (int32_t i = 0; i < 30; i++) {
        int32_t pa, pb;
        float sa[HCLS], sb[HCLS];
        CHECK_OK(odl_ncm_predict(a.ncm, z + i * HDIM, &pa, sa));
        CHECK_OK(odl_ncm_predict(b.ncm, z + i * HDIM, &pb, sb));
        CHECK(pa == pb && memcmp(sa, sb, sizeof sa) == 0);
        CHECK_OK(odl_ncm_add(a.ncm, z + i * HDIM, y[i]));
        CHECK_OK(odl_ncm_add(b.ncm, z + i * HDIM, y[i]));
    }
    CHECK(memcmp(odl_ncm_means(a.ncm), odl_ncm_means(b.ncm), sizeof(float) * HDIM * HCLS) == 0);
    mb_free(&f);
    learner_free(&a);
    learner_free(&b);
}

static void test_slda_round_trip(odl_test_ctx *t)
{
    const odl_replay_cfg rc = mkcfg(8, 4, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    learner a, b;
    CHECK_OK(learner_new(&a, &rc, 1, 7));
    CHECK_OK(learner_new(&b, &rc, 0, 7));
    membuf f = {0}, ca = {0}, cb = {0};
    CHECK_OK(state_file(&f, NULL, NULL, NULL, a.slda));
    const uint8_t *p;
    size_t n;
    int32_t dim, cls;
    float shr;
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_SLDA, &p, &n, NULL));
    CHECK_OK(odl_state_slda_shape(p, n, &dim, &cls, &shr, NULL));
    CHECK(dim == HDIM && cls == HCLS && shr == 0.05f);
    CHECK_OK(odl_state_read_slda(b.slda, p, n, NULL));
    CHECK(odl_slda_stale(b.slda));
    CHECK(odl_slda_n_total(b.slda) == 40 && odl_slda_n_total(a.slda) == 40);
    float cova[HDIM * HDIM], covb[HDIM * HDIM];
    CHECK_OK(odl_slda_covariance(a.slda, cova));
    CHECK_OK(odl_slda_covariance(b.slda, covb));
    CHECK(memcmp(cova, covb, sizeof cova) == 0);
    CHECK(memcmp(odl_slda_means(a.slda), odl_slda_means(b.slda), sizeof(float) * HDIM * HCLS) == 0);
    CHECK_OK(chunk_slda(a.slda, &ca));
    CHECK_OK(chunk_slda(b.slda, &cb));
    CHECK(same_bytes(&ca, &cb));
    /* continues identically: more samples, then the fit */
    odl_rng r;
    odl_rng_seed(&r, 10, 10);
    float z[30 * HDIM];
    int32_t y[30];
    head_samples(&r, 30, z, y);
    for (int32_t i = 0; i < 30; i++) {
        CHECK_OK(odl_slda_add(a.slda, z + i * HDIM, y[i]));
        CHECK_OK(odl_slda_add(b.slda, z + i * HDIM, y[i]));
    }
    CHECK_OK(odl_slda_fit(a.slda, NULL));
    CHECK_OK(odl_slda_fit(b.slda, NULL));
    CHECK(memcmp(odl_slda_weights(a.slda), odl_slda_weights(b.slda), sizeof(float) * HDIM * HCLS) == 0);
    CHECK(memcmp(odl_slda_bias(a.slda), odl_slda_bias(b.slda), sizeof(float) * HCLS) == 0);
    CHECK_OK(chunk_slda(a.slda, &ca));
    CHECK_OK(chunk_slda(b.slda, &cb));
    CHECK(same_bytes(&ca, &cb));
    mb_free(&f);
    mb_free(&ca);
    mb_free(&cb);
    learner_free(&a);
    learner_free(&b);
}

static void test_slda_set_checks(odl_test_ctx *t)
{
    box bx;
    odl_slda *h;
    CHECK_OK(slda_new(&bx, &h, 2, 2));
    float means[4] = {1, 2, 0, 0}, cov[4] = {1, 0.5f, 0.5f, 2};
    uint32_t counts[2] = {3, 0};
    odl_diag d;
    CHECK_OK(odl_slda_set(h, means, counts, cov, 3, &d));
    CHECK(odl_slda_n_total(h) == 3 && odl_slda_count(h, 0) == 3 && odl_slda_cov_at(h, 0, 1) == 0.5f);
    CHECK(odl_slda_set(h, means, counts, cov, 4, &d) == ODL_ERR_ARG); /* sum */
    float asym[4] = {1, 0.5f, 0.25f, 2};
    CHECK(odl_slda_set(h, means, counts, asym, 3, &d) == ODL_ERR_ARG);
    float negd[4] = {-1, 0, 0, 2};
    CHECK(odl_slda_set(h, means, counts, negd, 3, &d) == ODL_ERR_ARG);
    float nanc[4] = {1, NAN, NAN, 2};
    CHECK(odl_slda_set(h, means, counts, nanc, 3, &d) == ODL_ERR_NUMERIC);
    float nanm[4] = {1, INFINITY, 0, 0};
    CHECK(odl_slda_set(h, nanm, counts, cov, 3, &d) == ODL_ERR_NUMERIC);
    uint32_t zero[2] = {0, 0};
    CHECK(odl_slda_set(h, means, zero, cov, 0, &d) == ODL_ERR_ARG); /* no samples, non-zero cov */
    /* nothing changed by the failures */
    CHECK(odl_slda_n_total(h) == 3 && odl_slda_cov_at(h, 1, 1) == 2.0f && odl_slda_means(h)[1] == 2.0f);
    CHECK(odl_slda_cov_at(h, 2, 0) == 0.0f && odl_slda_cov_at(NULL, 0, 0) == 0.0f);
    box_close(&bx);
}

/* ---- the model plus state -------------------------------------------------- */

static const odl_meta_kv meta[] = {{"arch", "mlp:3"}, {"note", "with state"}};

static void test_model_with_state(odl_test_ctx *t)
{
    const odl_replay_cfg rc = mkcfg(16, 4, 3, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_INT8);
    learner a, b;
    CHECK_OK(learner_new(&a, &rc, 1, 8));
    CHECK_OK(learner_new(&b, &rc, 0, 8));
    membuf plain = {0}, f = {0}, sa = {0}, sb = {0};
    odl_writer w = mb_writer(&plain);
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(odl_model_save(a.m, meta, 2, &w, &d));
    w = mb_writer(&f);
    CHECK_OK(odl_state_save_model_with_state(a.m, meta, 2, a.rb, a.e, a.ncm, a.slda, &w, &d));
    CHECK(w.offset == f.len);
    /* the model's bytes, then the state chunks, then the same END */
    REQUIRE(f.len > plain.len);
    CHECK(memcmp(f.p, plain.p, plain.len - 16) == 0);
    CHECK(memcmp(f.p + f.len - 16, plain.p + plain.len - 16, 16) == 0);
    /* chunk order */
    odl_file_iter it;
    CHECK_OK(odl_file_open(&it, f.p, f.len, &d));
    uint32_t types[32];
    int nt = 0;
    for (;;) {
        uint32_t ty;
        const uint8_t *p;
        size_t n;
        CHECK_OK(odl_file_next(&it, &ty, &p, &n, &d));
        if (nt < 32)
            types[nt++] = ty;
        if (ty == ODL_CHUNK_END)
            break;
    }
    REQUIRE(nt >= 6);
    CHECK(types[nt - 5] == ODL_CHUNK_REPLAY && types[nt - 4] == ODL_CHUNK_EWC && types[nt - 3] == ODL_CHUNK_NCM &&
          types[nt - 2] == ODL_CHUNK_SLDA && types[nt - 1] == ODL_CHUNK_END);
    /* still a model file for the model readers (they skip the state) */
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    CHECK_OK(odl_file_read_desc(f.p, f.len, &desc, &d));
    CHECK_OK(odl_model_load_params(b.m, f.p, f.len, &d));
    const odl_model_desc *md = odl_model_get_desc(a.m);
    for (int32_t i = 0; i < md->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t na, nb;
            const float *pa = odl_model_param_const(a.m, i, which, &na);
            const float *pb = odl_model_param_const(b.m, i, which, &nb);
            CHECK(na == nb && (!na || memcmp(pa, pb, na * sizeof(float)) == 0));
        }
    char v[32];
    CHECK_OK(odl_file_meta_get(f.p, f.len, "note", v, sizeof v, &d));
    CHECK(strcmp(v, "with state") == 0);
    /* and the learners come back */
    uint32_t found = 0;
    CHECK_OK(odl_state_load(f.p, f.len, b.rb, b.e, b.ncm, b.slda, &found, &d));
    CHECK(found == 15u);
    CHECK_OK(learner_snapshot(&a, &sa));
    CHECK_OK(learner_snapshot(&b, &sb));
    CHECK(same_bytes(&sa, &sb));
    /* partial restore: only the components asked for */
    learner c;
    CHECK_OK(learner_new(&c, &rc, 0, 8));
    membuf sc0 = {0}, sc1 = {0};
    CHECK_OK(learner_snapshot(&c, &sc0));
    CHECK_OK(odl_state_load(f.p, f.len, NULL, c.e, NULL, NULL, &found, &d));
    CHECK(found == 15u);
    CHECK(memcmp(odl_ewc_fisher(c.e), odl_ewc_fisher(a.e), odl_ewc_n_params(a.e) * sizeof(float)) == 0);
    CHECK(odl_replay_count(c.rb) == 0 && odl_ncm_count(c.ncm, 0) == 0);
    /* a model-only file: nothing found, nothing changed */
    CHECK_OK(learner_snapshot(&c, &sc0));
    CHECK_OK(odl_state_load(plain.p, plain.len, c.rb, c.e, c.ncm, c.slda, &found, &d));
    CHECK(found == 0);
    CHECK_OK(learner_snapshot(&c, &sc1));
    CHECK(same_bytes(&sc0, &sc1));
    odl_replay_cfg cfg;
    CHECK(odl_state_find_replay_cfg(plain.p, plain.len, &cfg, &d) == ODL_ERR_NOT_FOUND);
    /* writer failures at every call: an error, never a crash */
    int failures = 0;
    for (int k = 1; k < 200; k++) {
        membuf x = {0};
        x.fail_at = k;
        odl_writer wx = mb_writer(&x);
        odl_status s = odl_state_save_model_with_state(a.m, meta, 2, a.rb, a.e, a.ncm, a.slda, &wx, &d);
        const int reached = x.calls >= k;
        mb_free(&x);
        if (!reached) {
            CHECK(s == ODL_OK);
            break;
        }
        CHECK(s == ODL_ERR_IO);
        failures++;
    }
    CHECK(failures > 20);
    odl_test_logf(t, "    model %zu bytes, with state %zu; %d writer failure points give ODL_ERR_IO", plain.len, f.len,
                  failures);
    mb_free(&plain);
    mb_free(&f);
    mb_free(&sa);
    mb_free(&sb);
    mb_free(&sc0);
    mb_free(&sc1);
    learner_free(&a);
    learner_free(&b);
    learner_free(&c);
}

/* ---- layout (docs/format.md) ------------------------------------------------ */

static void test_layout(odl_test_ctx *t)
{
    /* RPLY: F32, 3 items of dim 2, 3 classes */
    const odl_replay_cfg rc = mkcfg(4, 2, 3, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_F32);
    box bx;
    odl_replay *rb;
    CHECK_OK(replay_new(&bx, &rb, &rc));
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    const float z[3][2] = {{1.0f, -2.0f}, {0.5f, 0.25f}, {3.0f, 4.0f}};
    const int32_t y[3] = {2, 0, 2};
    for (int i = 0; i < 3; i++)
        CHECK_OK(odl_replay_add(rb, z[i], y[i], &r, NULL));
    membuf c = {0};
    CHECK_OK(chunk_replay(rb, &c));
    REQUIRE(c.len >= 16);
    const uint8_t *p = c.p + 16;
    const uint64_t n = get64(c.p + 8);
    CHECK(get32(c.p) == ODL_CHUNK_REPLAY && memcmp(c.p, "RPLY", 4) == 0);
    /* 48 header + 12 class counts (pad 16) + 24 class seen (pad 32) + 12 labels (pad 16) + 24 data */
    CHECK(n == 48 + 16 + 32 + 16 + 24);
    CHECK(c.len == 16 + 144);
    CHECK(get32(c.p + 4) == odl_crc32(odl_crc32(0, c.p, 4), c.p + 8, 8 + (size_t)n));
    CHECK(get32(p) == 1 && get32(p + 4) == 4 && get32(p + 8) == 2 && get32(p + 12) == 3);
    CHECK(get32(p + 16) == 1 && get32(p + 20) == 0 && get32(p + 24) == 3 && get32(p + 28) == 0);
    CHECK(get64(p + 32) == 3 && get64(p + 40) == 0);
    CHECK(get32(p + 48) == 1 && get32(p + 52) == 0 && get32(p + 56) == 2 && get32(p + 60) == 0);
    CHECK(get64(p + 64) == 1 && get64(p + 72) == 0 && get64(p + 80) == 2 && get64(p + 88) == 0);
    CHECK(get32(p + 96) == 2 && get32(p + 100) == 0 && get32(p + 104) == 2);
    float v[6];
    memcpy(v, p + 112, sizeof v);
    CHECK(memcmp(v, z, sizeof v) == 0);
    box_close(&bx);

    /* RPLY, INT8: scales then values, each 16-aligned */
    const odl_replay_cfg qc = mkcfg(4, 2, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_INT8);
    CHECK_OK(replay_new(&bx, &rb, &qc));
    for (int i = 0; i < 3; i++)
        CHECK_OK(odl_replay_add(rb, z[i], y[i], &r, NULL));
    CHECK_OK(chunk_replay(rb, &c));
    p = c.p + 16;
    CHECK(get64(c.p + 8) == 48 + 16 + 32 + 16 + 16 + 6);
    float s0;
    memcpy(&s0, p + 112, 4);
    CHECK(s0 == 2.0f / 127.0f);
    CHECK((int8_t)p[128] == (int8_t)roundf(1.0f / s0) && (int8_t)p[129] == -127);
    box_close(&bx);

    /* EWC, NCM, SLDA sizes */
    const odl_replay_cfg rc2 = mkcfg(8, 4, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    learner L;
    CHECK_OK(learner_new(&L, &rc2, 1, 3));
    CHECK_OK(chunk_ewc(L.e, &c));
    const size_t np = odl_ewc_n_params(L.e); /* 27: fisher ends at 16 + 108 = 124 -> anchors at 128 */
    CHECK(np == 27 && get64(c.p + 8) == 128 + 4 * np && get64(c.p + 16 + 8) == np);
    CHECK(memcmp(c.p + 32, odl_ewc_fisher(L.e), 4 * np) == 0 && memcmp(c.p + 16 + 128, odl_ewc_anchor(L.e), 4 * np) == 0);
    CHECK_OK(chunk_ncm(L.ncm, &c));
    CHECK(get64(c.p + 8) == 16 + 16 + 4 * HDIM * HCLS && memcmp(c.p, "NCM ", 4) == 0);
    CHECK(memcmp(c.p + 16 + 32, odl_ncm_means(L.ncm), 4 * HDIM * HCLS) == 0);
    CHECK_OK(chunk_slda(L.slda, &c));
    /* 32 + 16 counts + 80 means + 100 cov */
    CHECK(get64(c.p + 8) == 32 + 16 + 80 + 100 && memcmp(c.p, "SLDA", 4) == 0);
    CHECK(get64(c.p + 16 + 16) == 40);
    float cov[HDIM * HDIM];
    CHECK_OK(odl_slda_covariance(L.slda, cov));
    CHECK(memcmp(c.p + 16 + 128, cov, sizeof cov) == 0);
    learner_free(&L);
    mb_free(&c);
}

/* ---- mismatches --------------------------------------------------------------- */

static void test_mismatched_config(odl_test_ctx *t)
{
    const odl_replay_cfg rc = mkcfg(16, 4, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    learner a;
    CHECK_OK(learner_new(&a, &rc, 1, 9));
    membuf f = {0}, s0 = {0}, s1 = {0};
    CHECK_OK(state_file(&f, a.rb, a.e, a.ncm, a.slda));
    const uint8_t *p;
    size_t n;
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_REPLAY, &p, &n, NULL));
    const odl_replay_cfg bad[] = {
        mkcfg(17, 4, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(16, 5, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(16, 4, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(16, 4, 3, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_F32),
        mkcfg(16, 4, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_INT8),
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        box bx;
        odl_replay *rb;
        CHECK_OK(replay_new(&bx, &rb, &bad[k]));
        odl_rng r, data;
        odl_rng_seed(&r, k, 1);
        odl_rng_seed(&data, k, 2);
        CHECK_OK(feed(rb, 7, &data, &r));
        CHECK_OK(chunk_replay(rb, &s0));
        odl_diag d;
        odl_diag_clear(&d);
        CHECK(odl_state_read_replay(rb, p, n, &d) == ODL_ERR_SHAPE);
        CHECK(d.status == ODL_ERR_SHAPE && strstr(d.msg, "replay chunk") != NULL);
        if (k == 0 || k == 3)
            odl_test_logf(t, "    %s", d.msg);
        odl_diag_clear(&d);
        CHECK(odl_state_load(f.p, f.len, rb, NULL, NULL, NULL, NULL, &d) == ODL_ERR_SHAPE);
        CHECK_OK(chunk_replay(rb, &s1));
        CHECK(same_bytes(&s0, &s1));
        box_close(&bx);
    }
    /* EWC of another model; heads of other shapes. odl_state_load checks
     * every shape before restoring anything, so the replay buffer (which
     * matches) is not restored either. */
    learner b;
    CHECK_OK(learner_new(&b, &rc, 0, 9));
    box mb2, eb2, nb2, sb2;
    odl_model *m2;
    odl_ewc *e2;
    odl_ncm *n2;
    odl_slda *sl2;
    CHECK_OK(model_new(&mb2, &m2, 4, 1));
    CHECK_OK(ewc_new(&eb2, &e2, m2));
    CHECK_OK(ncm_new(&nb2, &n2, HDIM + 1, HCLS));
    CHECK_OK(slda_new(&sb2, &sl2, HDIM, HCLS + 1));
    odl_diag d;
    odl_diag_clear(&d);
    CHECK(odl_state_load(f.p, f.len, b.rb, e2, NULL, NULL, NULL, &d) == ODL_ERR_SHAPE);
    odl_test_logf(t, "    %s", d.msg);
    CHECK(odl_replay_count(b.rb) == 0);
    CHECK(odl_state_load(f.p, f.len, b.rb, NULL, n2, NULL, NULL, &d) == ODL_ERR_SHAPE);
    CHECK(odl_state_load(f.p, f.len, b.rb, NULL, NULL, sl2, NULL, &d) == ODL_ERR_SHAPE);
    CHECK(odl_replay_count(b.rb) == 0);
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_EWC, &p, &n, NULL));
    CHECK(odl_state_read_ewc(e2, p, n, &d) == ODL_ERR_SHAPE);
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_NCM, &p, &n, NULL));
    CHECK(odl_state_read_ncm(n2, p, n, &d) == ODL_ERR_SHAPE);
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_SLDA, &p, &n, NULL));
    CHECK(odl_state_read_slda(sl2, p, n, &d) == ODL_ERR_SHAPE);
    /* a chunk handed to the wrong reader is refused too */
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_NCM, &p, &n, NULL));
    CHECK(odl_state_read_slda(b.slda, p, n, &d) < 0);
    CHECK(odl_state_read_replay(b.rb, p, n, &d) < 0);
    CHECK(odl_state_read_ewc(b.e, p, n, &d) < 0);
    /* two chunks of a kind */
    membuf two = {0};
    odl_writer w = mb_writer(&two);
    CHECK_OK(odl_file_write_header(&w, NULL));
    CHECK_OK(odl_state_write_ncm(&w, a.ncm, NULL));
    CHECK_OK(odl_state_write_ncm(&w, a.ncm, NULL));
    CHECK_OK(odl_file_write_end(&w, NULL));
    CHECK(odl_state_load(two.p, two.len, NULL, NULL, b.ncm, NULL, NULL, &d) == ODL_ERR_FORMAT);
    CHECK(odl_state_find(two.p, two.len, ODL_CHUNK_NCM, &p, &n, &d) == ODL_ERR_FORMAT);
    CHECK(odl_ncm_count(b.ncm, 0) == 0);
    /* bad arguments */
    CHECK(odl_state_read_replay(NULL, p, n, &d) == ODL_ERR_ARG);
    CHECK(odl_state_read_replay(b.rb, NULL, 0, &d) == ODL_ERR_ARG);
    CHECK(odl_state_read_ewc(NULL, p, n, &d) == ODL_ERR_ARG);
    CHECK(odl_state_write_replay(&w, NULL, &d) == ODL_ERR_ARG);
    CHECK(odl_state_write_all(NULL, NULL, NULL, NULL, NULL, &d) == ODL_ERR_ARG);
    CHECK(odl_state_save_model_with_state(NULL, NULL, 0, NULL, NULL, NULL, NULL, &w, &d) == ODL_ERR_ARG);
    /* an unaligned payload where floats are used in place */
    CHECK_OK(odl_state_find(f.p, f.len, ODL_CHUNK_NCM, &p, &n, NULL));
    uint8_t *un = malloc(n + 1);
    REQUIRE(un);
    memcpy(un + 1, p, n);
    CHECK(odl_state_read_ncm(b.ncm, un + 1, n, &d) == ODL_ERR_ARG);
    free(un);
    mb_free(&two);
    mb_free(&f);
    mb_free(&s0);
    mb_free(&s1);
    box_close(&mb2);
    box_close(&eb2);
    box_close(&nb2);
    box_close(&sb2);
    learner_free(&a);
    learner_free(&b);
}

/* ---- damaged files ------------------------------------------------------------ */

/* Flip every byte of a model-plus-state file two ways and cut it at every
 * length: always an error with a message, the learner untouched. */
static void file_sweep(odl_test_ctx *t, odl_replay_dtype dt)
{
    const odl_replay_cfg rc = mkcfg(6, 3, 3, ODL_REPLAY_CLASS_BALANCED, dt);
    learner a, b;
    CHECK_OK(learner_new(&a, &rc, 1, 12));
    CHECK_OK(learner_new(&b, &rc, 1, 13)); /* the target holds other state */
    membuf f = {0}, s0 = {0}, s1 = {0};
    odl_writer w = mb_writer(&f);
    CHECK_OK(odl_state_save_model_with_state(a.m, meta, 2, a.rb, a.e, a.ncm, a.slda, &w, NULL));
    CHECK_OK(learner_snapshot(&b, &s0));
    const size_t len = f.len;
    uint8_t *mut = exact_dup(f.p, len);
    REQUIRE(mut);
    static const uint8_t masks[2] = {0xFF, 0x01};
    int bad = 0, by[16] = {0};
    for (int mi = 0; mi < 2; mi++)
        for (size_t i = 0; i < len; i++) {
            memcpy(mut, f.p, len);
            mut[i] ^= masks[mi];
            odl_diag d;
            odl_diag_clear(&d);
            uint32_t found = 0;
            odl_status s = odl_state_load(mut, len, b.rb, b.e, b.ncm, b.slda, &found, &d);
            if (!(s < 0 && d.msg[0]) && bad++ < 5)
                odl_test_logf(t, "    flip at %zu: status %d '%s'", i, (int)s, d.msg);
            if (s < 0 && -s < 16)
                by[-s]++;
        }
    free(mut);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = exact_dup(f.p, cut);
        odl_diag d;
        odl_diag_clear(&d);
        odl_status s = odl_state_load(c, cut, b.rb, b.e, b.ncm, b.slda, NULL, &d);
        if (s != ODL_ERR_TRUNCATED && bad++ < 5)
            odl_test_logf(t, "    cut at %zu: status %d '%s'", cut, (int)s, d.msg);
        free(c);
    }
    CHECK(bad == 0);
    CHECK_OK(learner_snapshot(&b, &s1));
    CHECK(same_bytes(&s0, &s1)); /* never touched */
    CHECK(replay_invariants(b.rb));
    odl_test_logf(t, "    %zu-byte file (%s replay), 2 flips a byte: %d CRC, %d format, %d truncated; every cut truncated",
                  len, dt ? "int8" : "f32", by[-ODL_ERR_CRC], by[-ODL_ERR_FORMAT], by[-ODL_ERR_TRUNCATED]);
    mb_free(&f);
    mb_free(&s0);
    mb_free(&s1);
    learner_free(&a);
    learner_free(&b);
}

static void test_file_sweep_f32(odl_test_ctx *t) { file_sweep(t, ODL_REPLAY_F32); }
static void test_file_sweep_int8(odl_test_ctx *t) { file_sweep(t, ODL_REPLAY_INT8); }

/* Restores one payload (mutated) into b; 0 for the chunk type's reader. */
static odl_status read_any(uint32_t type, learner *b, const uint8_t *p, size_t n, odl_diag *d)
{
    switch (type) {
    case ODL_CHUNK_REPLAY: return odl_state_read_replay(b->rb, p, n, d);
    case ODL_CHUNK_EWC: return odl_state_read_ewc(b->e, p, n, d);
    case ODL_CHUNK_NCM: return odl_state_read_ncm(b->ncm, p, n, d);
    default: return odl_state_read_slda(b->slda, p, n, d);
    }
}

/* The invariants of every component after an accepted payload. */
static int learner_sane(learner *b)
{
    if (!replay_invariants(b->rb))
        return 0;
    const size_t np = odl_ewc_n_params(b->e);
    for (size_t i = 0; i < np; i++)
        if (!(odl_ewc_fisher(b->e)[i] >= 0.0f) || !isfinite(odl_ewc_fisher(b->e)[i]) ||
            !isfinite(odl_ewc_anchor(b->e)[i]))
            return 0;
    uint64_t sum = 0;
    for (int32_t c = 0; c < HCLS; c++) {
        if (odl_ncm_count(b->ncm, c) < 0 || odl_slda_count(b->slda, c) < 0)
            return 0;
        sum += (uint64_t)odl_slda_count(b->slda, c);
        for (int32_t e = 0; e < HDIM; e++)
            if (!isfinite(odl_ncm_means(b->ncm)[c * HDIM + e]) || !isfinite(odl_slda_means(b->slda)[c * HDIM + e]))
                return 0;
    }
    if (sum != odl_slda_n_total(b->slda))
        return 0;
    for (int32_t i = 0; i < HDIM; i++)
        for (int32_t j = 0; j < HDIM; j++)
            if (!isfinite(odl_slda_cov_at(b->slda, i, j)))
                return 0;
    return 1;
}

/* Every byte of each state payload flipped three ways with no CRC in the
 * way (the readers see it directly): an error and the learner untouched, or
 * an accepted value change and a learner that satisfies its invariants and
 * keeps working. Every truncated payload is an error. */
static void payload_sweep(odl_test_ctx *t, odl_replay_policy pol, odl_replay_dtype dt)
{
    const odl_replay_cfg rc = mkcfg(6, 3, 3, pol, dt);
    learner a, b;
    CHECK_OK(learner_new(&a, &rc, 1, 14));
    CHECK_OK(learner_new(&b, &rc, 1, 15));
    membuf f = {0}, s0 = {0}, s1 = {0};
    CHECK_OK(state_file(&f, a.rb, a.e, a.ncm, a.slda));
    CHECK_OK(learner_snapshot(&b, &s0));
    static const uint32_t types[4] = {ODL_CHUNK_REPLAY, ODL_CHUNK_EWC, ODL_CHUNK_NCM, ODL_CHUNK_SLDA};
    static const uint8_t masks[3] = {0xFF, 0x01, 0x80};
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        const uint8_t *p;
        size_t n;
        CHECK_OK(odl_state_find(f.p, f.len, types[k], &p, &n, NULL));
        int accepted = 0, rejected = 0;
        for (int mi = 0; mi < 3; mi++)
            for (size_t i = 0; i < n; i++) {
                uint8_t *m = exact_dup(p, n);
                REQUIRE(m && ((uintptr_t)m & 15u) == 0);
                m[i] ^= masks[mi];
                odl_diag d;
                odl_diag_clear(&d);
                odl_status s = read_any(types[k], &b, m, n, &d);
                if (s < 0) {
                    rejected++;
                    CHECK_OK(learner_snapshot(&b, &s1));
                    if ((!same_bytes(&s0, &s1) || !d.msg[0]) && bad++ < 5)
                        odl_test_logf(t, "    %.4s byte %zu ^%02x: refused (%s) but the learner changed",
                                      (const char *)&types[k], i, masks[mi], d.msg);
                } else {
                    accepted++;
                    if (!learner_sane(&b) && bad++ < 5)
                        odl_test_logf(t, "    %.4s byte %zu ^%02x: accepted, invariants broken",
                                      (const char *)&types[k], i, masks[mi]);
                    /* it keeps working */
                    odl_rng r, data;
                    odl_rng_seed(&r, i, 1);
                    odl_rng_seed(&data, i, 2);
                    CHECK_OK(feed(b.rb, 20, &data, &r));
                    if (!replay_invariants(b.rb) && bad++ < 5)
                        odl_test_logf(t, "    %.4s byte %zu ^%02x: invariants broken after adds",
                                      (const char *)&types[k], i, masks[mi]);
                    /* back to the reference state: rebuild */
                    learner_free(&b);
                    CHECK_OK(learner_new(&b, &rc, 1, 15));
                }
                free(m);
            }
        for (size_t cut = 0; cut < n; cut++) {
            uint8_t *m = exact_dup(p, cut);
            odl_diag d;
            odl_diag_clear(&d);
            odl_status s = read_any(types[k], &b, m, cut, &d);
            if (!(s < 0) && bad++ < 5)
                odl_test_logf(t, "    %.4s cut at %zu accepted", (const char *)&types[k], cut);
            free(m);
        }
        odl_test_logf(t, "    %.4s payload %zu bytes x3 flips: %d refused, %d accepted (value changes)",
                      (const char *)&types[k], n, rejected, accepted);
    }
    CHECK(bad == 0);
    mb_free(&f);
    mb_free(&s0);
    mb_free(&s1);
    learner_free(&a);
    learner_free(&b);
}

static void test_payload_sweep_reservoir_f32(odl_test_ctx *t) { payload_sweep(t, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32); }
static void test_payload_sweep_balanced_int8(odl_test_ctx *t)
{
    payload_sweep(t, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_INT8);
}

static const odl_test_case cases[] = {
    {"replay_round_trip", test_replay_round_trip},
    {"ewc_round_trip", test_ewc_round_trip},
    {"ncm_round_trip", test_ncm_round_trip},
    {"slda_round_trip", test_slda_round_trip},
    {"slda_set_checks", test_slda_set_checks},
    {"model_with_state", test_model_with_state},
    {"layout", test_layout},
    {"mismatched_config", test_mismatched_config},
    {"file_sweep_f32", test_file_sweep_f32},
    {"file_sweep_int8", test_file_sweep_int8},
    {"payload_sweep_reservoir_f32", test_payload_sweep_reservoir_f32},
    {"payload_sweep_balanced_int8", test_payload_sweep_balanced_int8},
};

TEST_MAIN(cases)
