/* The .odl file format (docs/format.md): round trips, in-place frozen weights,
 * the on-disk layout, and damaged or hostile files. Every damaged file must
 * give an error status with a message, never a crash: this suite runs under
 * ASan/UBSan, and the corruption sweeps hand the reader exact-size heap
 * copies so any read past the end is caught. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "harness.h"
#include "odl/odl.h"

/* ---- helpers ------------------------------------------------------------ */

/* A growable memory sink for odl_writer; can be told to fail at call N. */
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
    w.offset = b->len;
    return w;
}

static void mb_free(membuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void mb_append(membuf *b, const void *data, size_t n)
{
    int fa = b->fail_at;
    b->fail_at = 0;
    (void)mb_write(b, data, n);
    b->fail_at = fa;
}

static size_t round16(size_t n) { return (n + 15u) & ~(size_t)15u; }

/* A 16-byte-aligned copy (what odl_host_read_file gives; flash on an MCU). */
static uint8_t *aligned_dup(const void *p, size_t n)
{
    uint8_t *q = aligned_alloc(16, round16(n ? n : 1));
    if (q && n)
        memcpy(q, p, n);
    return q;
}

/* An exact-size heap copy: ASan sees any read past `n`. */
static uint8_t *exact_dup(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

static int contains(const char *s, const char *needle) { return strstr(s, needle) != NULL; }

/* A model with its own arena. */
typedef struct held {
    void *mem;
    odl_arena arena;
    odl_model *m;
    odl_mem_plan plan;
} held;

static odl_status held_init(held *h, const odl_model_desc *desc, const odl_model_cfg *cfg, odl_diag *d)
{
    memset(h, 0, sizeof *h);
    odl_status s = odl_model_plan(desc, cfg, &h->plan, d);
    if (s != ODL_OK)
        return s;
    h->mem = aligned_alloc(16, round16(h->plan.total ? h->plan.total : 16));
    if (!h->mem)
        return ODL_ERR_NOMEM;
    s = odl_arena_init(&h->arena, h->mem, h->plan.total);
    if (s == ODL_OK)
        s = odl_model_init(&h->m, desc, cfg, &h->arena, d);
    return s;
}

static void held_free(held *h)
{
    free(h->mem);
    memset(h, 0, sizeof *h);
}

/* Builds a model from desc with seeded parameters. */
static odl_status held_make(held *h, const odl_model_desc *desc, const odl_model_cfg *cfg, uint64_t seed,
                            odl_diag *d)
{
    odl_status s = held_init(h, desc, cfg, d);
    if (s != ODL_OK)
        return s;
    odl_rng rng;
    odl_rng_seed(&rng, seed, 7);
    return odl_model_init_params(h->m, &rng);
}

static odl_model_cfg infer_cfg(int32_t max_batch)
{
    odl_model_cfg c = odl_model_cfg_defaults();
    c.max_batch = max_batch;
    return c;
}

/* 1x1x4 -> flatten, dense 3, relu, dense 2: a file of a few hundred bytes. */
static void desc_tiny(odl_model_desc *d)
{
    odl_desc_init(d, 1, 1, 4);
    odl_desc_flatten(d);
    odl_desc_dense(d, 3);
    odl_desc_relu(d);
    odl_desc_dense(d, 2);
}

/* Every layer type, strides, padding, and a non-square kernel set by hand
 * (so h/w fields swapped by a reader would show). */
static void desc_multi(odl_model_desc *d)
{
    odl_desc_init(d, 2, 8, 8);
    odl_desc_conv2d(d, 4, 3, 1, 1);          /* 0: 4x8x8 */
    odl_desc_relu(d);                        /* 1 */
    odl_desc_depthwise(d, 2, 3, 1, 1);       /* 2: 8x8x8 */
    odl_desc_relu6(d);                       /* 3 */
    odl_desc_maxpool(d, 2, 2);               /* 4: 8x4x4 */
    odl_desc_conv2d(d, 4, 3, 1, 1);          /* 5: made 3x1, pad 1x0 below */
    d->layers[5].k_w = 1;
    d->layers[5].pad_w = 0;
    odl_desc_avgpool(d, 2, 1);               /* 6: 4x3x3 */
    odl_desc_conv2d(d, 6, 3, 2, 1);          /* 7: 6x2x2 */
    odl_desc_dropout(d, 0.25f);              /* 8 */
    odl_desc_gap(d);                         /* 9: 6x1x1 */
    odl_desc_flatten(d);                     /* 10 */
    odl_desc_dense(d, 5);                    /* 11 */
}

static int params_equal(const odl_model *a, const odl_model *b)
{
    const odl_model_desc *da = odl_model_get_desc(a);
    for (int32_t i = 0; i < da->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t na, nb;
            const float *pa = odl_model_param_const(a, i, which, &na);
            const float *pb = odl_model_param_const(b, i, which, &nb);
            if (na != nb)
                return 0;
            if (na && (!pa || !pb || memcmp(pa, pb, na * sizeof(float)) != 0))
                return 0;
        }
    return 1;
}

static void fill_input(float *x, size_t n, uint64_t seed)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++)
        x[i] = odl_rng_normal(&r);
}

/* Forward of 2 samples through both models; 1 if the logits are bit-identical. */
static int same_outputs(odl_model *a, odl_model *b)
{
    const odl_model_desc *d = odl_model_get_desc(a);
    size_t in = (size_t)d->in_c * d->in_h * d->in_w;
    float *x = malloc(2 * in * sizeof(float));
    if (!x)
        return 0;
    fill_input(x, 2 * in, 99);
    int32_t C = odl_model_n_classes(a);
    float *ya = malloc(2 * (size_t)C * sizeof(float));
    const float *oa, *ob;
    int ok = ya && C == odl_model_n_classes(b) && odl_model_forward(a, 0, x, 2, &oa, NULL) == ODL_OK;
    if (ok) {
        memcpy(ya, oa, 2 * (size_t)C * sizeof(float));
        ok = odl_model_forward(b, 0, x, 2, &ob, NULL) == ODL_OK && memcmp(ya, ob, 2 * (size_t)C * sizeof(float)) == 0;
    }
    free(x);
    free(ya);
    return ok;
}

static const odl_meta_kv test_meta[] = {
    {"arch", "mlp:3"},
    {"created_by", "test_file"},
    {"empty", ""},
    {"utf8", "caf\xc3\xa9 \xe2\x88\x9a"},
};
#define N_TEST_META ((int32_t)(sizeof test_meta / sizeof test_meta[0]))

/* Saves a model into `out` (cleared first). */
static odl_status save_to(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta, membuf *out, odl_diag *d)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    return odl_model_save(m, meta, n_meta, &w, d);
}

/* The file of the tiny model (seed 1) with test_meta. */
static odl_status tiny_file(membuf *out, odl_diag *d)
{
    odl_model_desc desc;
    desc_tiny(&desc);
    odl_model_cfg cfg = infer_cfg(2);
    held h;
    odl_status s = held_make(&h, &desc, &cfg, 1, d);
    if (s == ODL_OK)
        s = save_to(h.m, test_meta, N_TEST_META, out, d);
    held_free(&h);
    return s;
}

/* Our own encoder of the TOPO payload, written from docs/format.md. */
static size_t topo_payload(const odl_model_desc *m, uint8_t *out)
{
    put32(out, (uint32_t)m->n_layers);
    put32(out + 4, (uint32_t)m->in_c);
    put32(out + 8, (uint32_t)m->in_h);
    put32(out + 12, (uint32_t)m->in_w);
    for (int32_t i = 0; i < m->n_layers; i++) {
        const odl_layer_desc *l = &m->layers[i];
        uint8_t *p = out + 16 + 40 * (size_t)i;
        const int32_t v[9] = {l->type, l->trainable, l->units, l->k_h, l->k_w,
                              l->stride_h, l->stride_w, l->pad_h, l->pad_w};
        for (int k = 0; k < 9; k++)
            put32(p + 4 * k, (uint32_t)v[k]);
        uint32_t r;
        memcpy(&r, &l->rate, 4);
        put32(p + 36, r);
    }
    return 16 + 40 * (size_t)m->n_layers;
}

/* Writes a TENS chunk with an explicit header. */
static odl_status write_tens(odl_writer *w, uint32_t layer, uint32_t which, uint32_t dtype, uint32_t ndim,
                             uint64_t count, const void *data, size_t bytes)
{
    uint8_t h[32] = {0};
    put32(h, layer);
    put32(h + 4, which);
    put32(h + 8, dtype);
    put32(h + 12, ndim);
    put64(h + 16, count);
    return odl_file_write_chunk2(w, ODL_CHUNK_TENSOR, h, sizeof h, data, bytes, NULL);
}

/* Writes every tensor of model m with correct headers, except layer `skip_layer`'s `skip_which`. */
static odl_status write_all_tens(odl_writer *w, const odl_model *m, int32_t skip_layer, int skip_which)
{
    const odl_model_desc *d = odl_model_get_desc(m);
    for (int32_t i = 0; i < d->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            const float *p = odl_model_param_const(m, i, which, &n);
            if (!n || (i == skip_layer && which == skip_which))
                continue;
            odl_status s = write_tens(w, (uint32_t)i, (uint32_t)which, 0, 1, n, p, n * sizeof(float));
            if (s != ODL_OK)
                return s;
        }
    return ODL_OK;
}

/* Result of pushing a (possibly damaged) file through the readers. */
typedef struct load_result {
    odl_status s;
    odl_diag d;
    int stage; /* 1: read_desc failed, 2: load_params failed, 3: both passed */
} load_result;

/* read_desc, then (if it passes) load_params into `m`, on an exact-size copy. */
static load_result try_load(const uint8_t *file, size_t len, odl_model *m)
{
    load_result r;
    odl_diag_clear(&r.d);
    uint8_t *buf = exact_dup(file, len);
    odl_model_desc desc;
    r.s = odl_file_read_desc(buf, len, &desc, &r.d);
    r.stage = 1;
    if (r.s == ODL_OK) {
        r.stage = 2;
        odl_diag_clear(&r.d);
        r.s = odl_model_load_params(m, buf, len, &r.d);
        if (r.s == ODL_OK)
            r.stage = 3;
    }
    free(buf);
    return r;
}

/* A failure must be an error with a message that matches its status. */
static int good_error(const load_result *r)
{
    if (r->s >= 0 || r->d.status != r->s || r->d.msg[0] == '\0')
        return 0;
    switch (r->s) {
    case ODL_ERR_TRUNCATED: return contains(r->d.msg, "truncated");
    case ODL_ERR_CRC: return contains(r->d.msg, "CRC");
    case ODL_ERR_VERSION: return contains(r->d.msg, "version");
    default: return 1;
    }
}

/* ---- tests -------------------------------------------------------------- */

static void test_crc32(odl_test_ctx *t)
{
    CHECK(odl_crc32(0, "123456789", 9) == 0xCBF43926u);
    CHECK(odl_crc32(odl_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u);
    CHECK(odl_crc32(0, "", 0) == 0);
    CHECK(odl_crc32(0, "a", 1) == 0xE8B7BE43u);
    /* same as zlib's crc32 on random data of every length up to 300 */
    uint8_t buf[300];
    odl_rng r;
    odl_rng_seed(&r, 5, 5);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)odl_rng_u32(&r);
    for (size_t n = 0; n <= sizeof buf; n++)
        CHECK(odl_crc32(0, buf, n) == (uint32_t)crc32(0L, buf, (uInt)n));
}

static void test_round_trip(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_tiny(&desc);
    odl_model_cfg cfg = infer_cfg(2);
    held a, b;
    CHECK_OK(held_make(&a, &desc, &cfg, 1, &d));
    membuf f = {0};
    CHECK_OK(save_to(a.m, test_meta, N_TEST_META, &f, &d));
    CHECK(f.len % 16 == 0);

    uint8_t *buf = aligned_dup(f.p, f.len);
    odl_model_desc rd;
    memset(&rd, 0xAB, sizeof rd);
    CHECK_OK(odl_file_read_desc(buf, f.len, &rd, &d));
    CHECK(memcmp(&rd, &desc, sizeof desc) == 0);
    CHECK_OK(held_init(&b, &rd, &cfg, &d));
    CHECK(!params_equal(a.m, b.m)); /* b starts at zero */
    CHECK_OK(odl_model_load_params(b.m, buf, f.len, &d));
    CHECK(params_equal(a.m, b.m));
    CHECK(same_outputs(a.m, b.m));

    /* metadata */
    char v[64];
    for (int32_t k = 0; k < N_TEST_META; k++) {
        memset(v, 'x', sizeof v);
        CHECK_OK(odl_file_meta_get(buf, f.len, test_meta[k].key, v, sizeof v, &d));
        CHECK(strcmp(v, test_meta[k].value) == 0);
    }
    CHECK(odl_file_meta_get(buf, f.len, "missing", v, sizeof v, &d) == ODL_ERR_NOT_FOUND);
    CHECK(odl_file_meta_get(buf, f.len, "ar", v, sizeof v, &d) == ODL_ERR_NOT_FOUND);   /* a prefix */
    CHECK(odl_file_meta_get(buf, f.len, "archx", v, sizeof v, &d) == ODL_ERR_NOT_FOUND);
    CHECK(odl_file_meta_get(buf, f.len, "", v, sizeof v, &d) == ODL_ERR_NOT_FOUND);
    /* a small buffer gets a truncated, NUL-terminated value */
    memset(v, 'x', sizeof v);
    CHECK_OK(odl_file_meta_get(buf, f.len, "created_by", v, 5, &d));
    CHECK(strcmp(v, "test") == 0 && v[5] == 'x');
    CHECK_OK(odl_file_meta_get(buf, f.len, "arch", v, 0, &d)); /* cap 0: found, nothing written */

    /* saving the loaded model gives the same bytes (the writer is deterministic) */
    membuf g = {0};
    CHECK_OK(save_to(b.m, test_meta, N_TEST_META, &g, &d));
    CHECK(g.len == f.len && memcmp(g.p, f.p, f.len) == 0);
    /* no metadata at all */
    CHECK_OK(save_to(a.m, NULL, 0, &g, &d));
    CHECK(odl_file_meta_get(g.p, g.len, "arch", v, sizeof v, &d) == ODL_ERR_NOT_FOUND);
    CHECK_OK(odl_model_load_params(b.m, g.p, g.len, &d));

    /* bad arguments */
    odl_writer w = mb_writer(&g);
    CHECK(odl_model_save(NULL, NULL, 0, &w, &d) == ODL_ERR_ARG);
    CHECK(odl_model_save(a.m, NULL, 1, &w, &d) == ODL_ERR_ARG);
    CHECK(odl_model_save(a.m, test_meta, -1, &w, &d) == ODL_ERR_ARG);
    odl_meta_kv badm[1] = {{"k", NULL}};
    CHECK(odl_model_save(a.m, badm, 1, &w, &d) == ODL_ERR_ARG);
    CHECK(odl_file_read_desc(NULL, 100, &rd, &d) == ODL_ERR_ARG);

    mb_free(&f);
    mb_free(&g);
    free(buf);
    held_free(&a);
    held_free(&b);
}

static void test_round_trip_layer_types(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_multi(&desc);
    CHECK_OK(odl_desc_check(&desc, NULL, &d));
    odl_model_cfg cfg = infer_cfg(2);
    held a, b;
    CHECK_OK(held_make(&a, &desc, &cfg, 11, &d));
    membuf f = {0};
    CHECK_OK(save_to(a.m, test_meta, 2, &f, &d));
    uint8_t *buf = aligned_dup(f.p, f.len);
    odl_model_desc rd;
    CHECK_OK(odl_file_read_desc(buf, f.len, &rd, &d));
    CHECK(memcmp(&rd, &desc, sizeof desc) == 0);
    CHECK(rd.layers[5].k_h == 3 && rd.layers[5].k_w == 1 && rd.layers[5].pad_h == 1 && rd.layers[5].pad_w == 0);
    CHECK(rd.layers[8].rate == 0.25f);
    CHECK_OK(held_init(&b, &rd, &cfg, &d));
    CHECK_OK(odl_model_load_params(b.m, buf, f.len, &d));
    CHECK(params_equal(a.m, b.m));
    CHECK(same_outputs(a.m, b.m));

    /* trainable flags round-trip too, and a model with other flags still loads the file */
    odl_model_desc fz = desc;
    CHECK_OK(odl_desc_freeze_below(&fz, 7));
    held c;
    CHECK_OK(held_make(&c, &fz, &cfg, 12, &d));
    membuf g = {0};
    CHECK_OK(save_to(c.m, NULL, 0, &g, &d));
    CHECK_OK(odl_file_read_desc(g.p, g.len, &rd, &d));
    CHECK(memcmp(&rd, &fz, sizeof fz) == 0);
    CHECK_OK(odl_model_load_params(b.m, g.p, g.len, &d));
    CHECK(params_equal(c.m, b.m));

    mb_free(&f);
    mb_free(&g);
    free(buf);
    held_free(&a);
    held_free(&b);
    held_free(&c);
}

/* The bytes on disk are what docs/format.md says. */
static void test_layout(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_multi(&desc);
    odl_desc_freeze_below(&desc, 5);
    odl_model_cfg cfg = infer_cfg(1);
    held a;
    CHECK_OK(held_make(&a, &desc, &cfg, 3, &d));
    membuf f = {0};
    CHECK_OK(save_to(a.m, test_meta, N_TEST_META, &f, &d));
    const uint8_t *p = f.p;
    static const uint8_t magic[8] = {0x89, 'O', 'D', 'L', '\r', '\n', 0x1a, '\n'};
    REQUIRE(f.len >= 32);
    CHECK(memcmp(p, magic, 8) == 0);
    CHECK(p[8] == 1 && p[9] == 0 && p[10] == 0 && p[11] == 0); /* version 1.0, u16 LE each */
    CHECK(get32(p + 12) == odl_crc32(0, p, 12));

    size_t pos = 16;
    int idx = 0, n_tens = 0, n_meta = 0, saw_end = 0;
    int32_t next_layer = 0;
    int next_which = 0;
    while (pos < f.len && !saw_end) {
        REQUIRE(pos % 16 == 0 && pos + 16 <= f.len);
        uint32_t type = get32(p + pos), crc = get32(p + pos + 4);
        uint64_t n = get64(p + pos + 8);
        const uint8_t *pl = p + pos + 16;
        REQUIRE(n <= f.len - pos - 16);
        /* CRC: type (4 bytes), length (8 bytes), then the payload */
        uint8_t tl[12];
        memcpy(tl, p + pos, 4);
        memcpy(tl + 4, p + pos + 8, 8);
        CHECK(crc == odl_crc32(odl_crc32(0, tl, 12), pl, (size_t)n));
        size_t padded = round16((size_t)n);
        REQUIRE(pos + 16 + padded <= f.len);
        for (size_t k = (size_t)n; k < padded; k++)
            CHECK(pl[k] == 0);
        CHECK(((uintptr_t)(pl - p)) % 16 == 0);
        if (idx == 0) {
            CHECK(type == ODL_CHUNK_TOPOLOGY);
            CHECK(memcmp(&type, "TOPO", 4) == 0); /* little-endian fourcc: the ASCII bytes in order */
            uint8_t mine[16 + 40 * ODL_MAX_LAYERS];
            size_t ml = topo_payload(&desc, mine);
            CHECK(n == ml && memcmp(mine, pl, ml) == 0);
        } else if (type == ODL_CHUNK_TENSOR) {
            CHECK(n_meta == 0); /* tensors before metadata */
            REQUIRE(n >= 32);
            /* in layer order, weights then bias */
            size_t cnt;
            for (;;) {
                (void)odl_model_param_const(a.m, next_layer, next_which, &cnt);
                if (cnt || next_layer >= desc.n_layers)
                    break;
                next_which ^= 1;
                if (!next_which)
                    next_layer++;
            }
            const float *src = odl_model_param_const(a.m, next_layer, next_which, &cnt);
            CHECK(get32(pl) == (uint32_t)next_layer && get32(pl + 4) == (uint32_t)next_which);
            CHECK(get32(pl + 8) == 0 && get32(pl + 12) == 1); /* dtype f32, 1 dimension */
            CHECK(get64(pl + 16) == cnt);
            CHECK(get64(pl + 24) == 0); /* reserved */
            CHECK(n == 32 + cnt * 4);
            CHECK(src && memcmp(pl + 32, src, cnt * 4) == 0);
            next_which ^= 1;
            if (!next_which)
                next_layer++;
            n_tens++;
        } else if (type == ODL_CHUNK_META) {
            REQUIRE(n_meta < N_TEST_META);
            size_t kl = strlen(test_meta[n_meta].key) + 1, vl = strlen(test_meta[n_meta].value) + 1;
            CHECK(n == kl + vl);
            CHECK(memcmp(pl, test_meta[n_meta].key, kl) == 0 && memcmp(pl + kl, test_meta[n_meta].value, vl) == 0);
            n_meta++;
        } else if (type == ODL_CHUNK_END) {
            CHECK(n == 0);
            saw_end = 1;
        } else {
            CHECK(!"unexpected chunk type");
        }
        pos += 16 + padded;
        idx++;
    }
    CHECK(saw_end && pos == f.len);
    CHECK(n_tens == 10); /* 5 layers with params */
    CHECK(n_meta == N_TEST_META);

    /* the iterator: chunk by chunk, then NOT_FOUND after END */
    odl_file_iter it;
    CHECK_OK(odl_file_open(&it, f.p, f.len, &d));
    int count = 0;
    uint32_t type = 0;
    const uint8_t *pl;
    size_t n;
    odl_status s;
    while ((s = odl_file_next(&it, &type, &pl, &n, &d)) == ODL_OK)
        count++;
    CHECK(s == ODL_ERR_NOT_FOUND);
    CHECK(count == idx && type == ODL_CHUNK_END);
    CHECK(odl_file_next(&it, &type, &pl, &n, &d) == ODL_ERR_NOT_FOUND);

    mb_free(&f);
    held_free(&a);
}

static void test_in_place(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_multi(&desc);
    const int32_t boundary = 7; /* layers 0..6 frozen: conv 0, depthwise 2, conv 5 */
    CHECK_OK(odl_desc_freeze_below(&desc, boundary));
    odl_model_cfg copy_cfg = infer_cfg(2);
    copy_cfg.mode = ODL_MODE_TRAIN;
    odl_model_cfg ip_cfg = copy_cfg;
    ip_cfg.frozen_weights_in_place = 1;

    held a, b;
    CHECK_OK(held_make(&a, &desc, &copy_cfg, 21, &d));
    membuf f = {0};
    CHECK_OK(save_to(a.m, test_meta, 1, &f, &d));
    uint8_t *buf = aligned_dup(f.p, f.len);
    uint8_t *pristine = exact_dup(f.p, f.len);

    /* the plan: frozen params take no arena bytes */
    odl_mem_plan pc, pi;
    CHECK_OK(odl_model_plan(&desc, &copy_cfg, &pc, &d));
    CHECK_OK(odl_model_plan(&desc, &ip_cfg, &pi, &d));
    size_t frozen_bytes = 0;
    for (int32_t i = 0; i < boundary; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            (void)odl_model_param_const(a.m, i, which, &n);
            frozen_bytes += round16(n * sizeof(float));
        }
    CHECK(frozen_bytes > 0);
    CHECK(pi.bytes[ODL_MEM_PARAMS] < pc.bytes[ODL_MEM_PARAMS]);
    CHECK(pc.bytes[ODL_MEM_PARAMS] - pi.bytes[ODL_MEM_PARAMS] == frozen_bytes);
    CHECK(pc.total - pi.total == frozen_bytes);

    CHECK_OK(held_init(&b, &desc, &ip_cfg, &d));
    CHECK(b.plan.bytes[ODL_MEM_PARAMS] == pi.bytes[ODL_MEM_PARAMS]);
    /* nothing loaded yet: saving is refused, not a NULL dereference */
    membuf g = {0};
    odl_writer w = mb_writer(&g);
    CHECK(odl_model_save(b.m, NULL, 0, &w, &d) == ODL_ERR_STATE);
    CHECK(d.msg[0] != '\0');

    CHECK_OK(odl_model_load_params(b.m, buf, f.len, &d));
    for (int32_t i = 0; i < desc.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            const float *p = odl_model_param_const(b.m, i, which, &n);
            if (!n)
                continue;
            const uint8_t *q = (const uint8_t *)p;
            int inside = q >= buf && q + n * sizeof(float) <= buf + f.len;
            if (i < boundary) {
                CHECK(inside);
                CHECK(((uintptr_t)p) % 16 == 0);
                size_t nm;
                CHECK(odl_model_param(b.m, i, which, &nm) == NULL); /* read-only */
            } else {
                CHECK(!inside);
            }
        }
    CHECK(params_equal(a.m, b.m));
    CHECK(same_outputs(a.m, b.m));

    /* saving the in-place model writes the same file */
    CHECK_OK(save_to(b.m, test_meta, 1, &g, &d));
    CHECK(g.len == f.len && memcmp(g.p, f.p, f.len) == 0);

    /* training the head never writes into the file buffer */
    const size_t in = (size_t)desc.in_c * desc.in_h * desc.in_w;
    float x[2 * 2 * 8 * 8];
    REQUIRE(2 * in <= sizeof x / sizeof x[0]);
    fill_input(x, 2 * in, 4);
    int32_t labels[2] = {1, 3};
    odl_rng rng;
    odl_rng_seed(&rng, 1, 1);
    float loss = 0.0f;
    for (int k = 0; k < 3; k++)
        CHECK_OK(odl_model_train_step(b.m, 0, x, labels, 2, &rng, &loss, &d));
    CHECK(memcmp(buf, pristine, f.len) == 0);
    CHECK(!params_equal(a.m, b.m)); /* the head did move */

    /* a buffer not aligned for float cannot be used in place: an error */
    uint8_t *odd = malloc(f.len + 1);
    REQUIRE(odd != NULL);
    memcpy(odd + 1, f.p, f.len);
    held c;
    CHECK_OK(held_init(&c, &desc, &ip_cfg, &d));
    odl_diag_clear(&d);
    odl_status s = odl_model_load_params(c.m, odd + 1, f.len, &d);
    CHECK(s < 0 && d.msg[0] != '\0');
    /* ... while a copying model takes any alignment */
    held e;
    CHECK_OK(held_init(&e, &desc, &copy_cfg, &d));
    CHECK_OK(odl_model_load_params(e.m, odd + 1, f.len, &d));
    CHECK(params_equal(a.m, e.m));

    free(odd);
    free(buf);
    free(pristine);
    mb_free(&f);
    mb_free(&g);
    held_free(&a);
    held_free(&b);
    held_free(&c);
    held_free(&e);
}

/* Flip every byte (two ways) and cut the file at every length. */
static void sweep(odl_test_ctx *t, const odl_model_desc *desc, uint64_t seed)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_cfg cfg = infer_cfg(1);
    held a, b;
    CHECK_OK(held_make(&a, desc, &cfg, seed, &d));
    CHECK_OK(held_init(&b, desc, &cfg, &d));
    membuf f = {0};
    CHECK_OK(save_to(a.m, test_meta, N_TEST_META, &f, &d));
    const size_t len = f.len;
    load_result r = try_load(f.p, len, b.m);
    REQUIRE(r.s == ODL_OK && r.stage == 3);

    uint8_t *mut = exact_dup(f.p, len);
    static const uint8_t masks[2] = {0xFF, 0x01};
    int logged = 0;
    for (int mi = 0; mi < 2; mi++) {
        int by_status[16] = {0};
        for (size_t i = 0; i < len; i++) {
            memcpy(mut, f.p, len);
            mut[i] ^= masks[mi];
            r = try_load(mut, len, b.m);
            if (!good_error(&r)) {
                CHECK(!"a flipped byte must give an error with a fitting message");
                if (logged++ < 5)
                    odl_test_logf(t, "    flip 0x%02x at byte %zu of %zu: status %d stage %d msg '%s'",
                                  masks[mi], i, len, (int)r.s, r.stage, r.d.msg);
            }
            if (r.s < 0 && -r.s < 16)
                by_status[-r.s]++;
        }
        odl_test_logf(t, "    %zu-byte file, every byte ^0x%02x: %d CRC, %d format, %d truncated, %d other", len,
                      masks[mi], by_status[-ODL_ERR_CRC], by_status[-ODL_ERR_FORMAT],
                      by_status[-ODL_ERR_TRUNCATED],
                      (int)len - by_status[-ODL_ERR_CRC] - by_status[-ODL_ERR_FORMAT] -
                          by_status[-ODL_ERR_TRUNCATED]);
    }
    /* truncation: always ODL_ERR_TRUNCATED, the message saying so */
    for (size_t cut = 0; cut < len; cut++) {
        r = try_load(f.p, cut, b.m);
        if (!(r.s == ODL_ERR_TRUNCATED && good_error(&r))) {
            CHECK(!"a truncated file must give ODL_ERR_TRUNCATED");
            if (logged++ < 5)
                odl_test_logf(t, "    cut at %zu of %zu: status %d stage %d msg '%s'", cut, len, (int)r.s, r.stage,
                              r.d.msg);
        }
    }
    /* a failed load may leave b's parameters partly overwritten (no promise
     * there), but the good file still loads completely afterwards */
    r = try_load(f.p, len, b.m);
    CHECK(r.s == ODL_OK);
    CHECK(params_equal(a.m, b.m));
    free(mut);
    mb_free(&f);
    held_free(&a);
    held_free(&b);
}

static void test_corruption_sweep_tiny(odl_test_ctx *t)
{
    odl_model_desc desc;
    desc_tiny(&desc);
    sweep(t, &desc, 1);
}

static void test_corruption_sweep_multi(odl_test_ctx *t)
{
    odl_model_desc desc;
    desc_multi(&desc);
    sweep(t, &desc, 2);
}

static void set_version(uint8_t *p, uint16_t major, uint16_t minor)
{
    p[8] = (uint8_t)major;
    p[9] = (uint8_t)(major >> 8);
    p[10] = (uint8_t)minor;
    p[11] = (uint8_t)(minor >> 8);
    put32(p + 12, odl_crc32(0, p, 12));
}

static void test_header_errors(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    membuf f = {0};
    CHECK_OK(tiny_file(&f, &d));
    odl_model_desc desc;
    desc_tiny(&desc);
    odl_model_cfg cfg = infer_cfg(1);
    held b;
    CHECK_OK(held_init(&b, &desc, &cfg, &d));
    uint8_t *m = exact_dup(f.p, f.len);

    /* a newer (or older) major version: refused, naming the version */
    set_version(m, 2, 0);
    load_result r = try_load(m, f.len, b.m);
    CHECK(r.s == ODL_ERR_VERSION && r.stage == 1 && good_error(&r));
    CHECK(contains(r.d.msg, "2.0"));
    set_version(m, 0, 9);
    r = try_load(m, f.len, b.m);
    CHECK(r.s == ODL_ERR_VERSION && contains(r.d.msg, "0.9"));
    set_version(m, 0xFFFF, 0xFFFF);
    r = try_load(m, f.len, b.m);
    CHECK(r.s == ODL_ERR_VERSION && contains(r.d.msg, "65535.65535"));
    /* a version patched without fixing the CRC is a CRC error */
    memcpy(m, f.p, f.len);
    m[8] = 2;
    r = try_load(m, f.len, b.m);
    CHECK(r.s == ODL_ERR_CRC && good_error(&r) && contains(r.d.msg, "header"));
    /* a newer minor version of the same major loads */
    memcpy(m, f.p, f.len);
    set_version(m, 1, 7);
    r = try_load(m, f.len, b.m);
    CHECK(r.s == ODL_OK && r.stage == 3);

    /* bad magic */
    memcpy(m, f.p, f.len);
    m[1] = 'X';
    r = try_load(m, f.len, b.m);
    CHECK(r.s == ODL_ERR_FORMAT && good_error(&r) && contains(r.d.msg, "magic"));
    /* other files: zeros, text */
    memset(m, 0, f.len);
    r = try_load(m, f.len, b.m);
    CHECK(r.s == ODL_ERR_FORMAT && good_error(&r));
    const char *text = "label,x0,x1\n0,1.5,2.5\n1,3.5,4.5\n";
    r = try_load((const uint8_t *)text, strlen(text), b.m);
    CHECK(r.s == ODL_ERR_FORMAT && good_error(&r));
    /* just the header */
    r = try_load(f.p, 16, b.m);
    CHECK(r.s == ODL_ERR_TRUNCATED && good_error(&r));

    free(m);
    mb_free(&f);
    held_free(&b);
}

static void test_trailing_and_unknown_chunks(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_tiny(&desc);
    odl_model_cfg cfg = infer_cfg(2);
    held a, b;
    CHECK_OK(held_make(&a, &desc, &cfg, 1, &d));
    CHECK_OK(held_init(&b, &desc, &cfg, &d));
    membuf f = {0};
    CHECK_OK(save_to(a.m, test_meta, N_TEST_META, &f, &d));
    load_result r;

    /* garbage after END: one byte, a block of zeros, a second END chunk */
    static const uint8_t zeros[32] = {0};
    const size_t extra[3] = {1, 16, 32};
    for (int k = 0; k < 3; k++) {
        membuf g = {0};
        mb_append(&g, f.p, f.len);
        mb_append(&g, zeros, extra[k]);
        r = try_load(g.p, g.len, b.m);
        CHECK(r.s == ODL_ERR_FORMAT && good_error(&r) && contains(r.d.msg, "garbage"));
        mb_free(&g);
    }
    {
        membuf g = {0};
        mb_append(&g, f.p, f.len);
        odl_writer w = mb_writer(&g);
        CHECK_OK(odl_file_write_end(&w, &d));
        r = try_load(g.p, g.len, b.m);
        CHECK(r.s == ODL_ERR_FORMAT && contains(r.d.msg, "garbage"));
        mb_free(&g);
    }
    /* no END chunk at all */
    r = try_load(f.p, f.len - 16, b.m);
    CHECK(r.s == ODL_ERR_TRUNCATED && good_error(&r));

    /* unknown chunks (a later minor version's) are skipped: before END,
     * right after the header, empty ones and ones needing padding */
    static const char payload[] = "future data, 16+ bytes";
    const uint32_t fourccs[3] = {ODL_FOURCC('X', 'T', 'R', 'A'), ODL_FOURCC('o', 'p', 't', '1'),
                                 ODL_FOURCC(0xff, 0, 0x80, 'z')};
    const size_t plen[3] = {5, 0, 16};
    for (int k = 0; k < 3; k++) {
        membuf g = {0};
        mb_append(&g, f.p, f.len - 16); /* everything but END */
        odl_writer w = mb_writer(&g);
        CHECK_OK(odl_file_write_chunk(&w, fourccs[k], payload, plen[k], &d));
        CHECK_OK(odl_file_write_end(&w, &d));
        CHECK(g.len == f.len + 16 + round16(plen[k]));
        r = try_load(g.p, g.len, b.m);
        CHECK(r.s == ODL_OK && r.stage == 3);
        CHECK(params_equal(a.m, b.m));
        char v[32];
        CHECK_OK(odl_file_meta_get(g.p, g.len, "arch", v, sizeof v, &d));
        mb_free(&g);

        /* and right after the header, before the topology */
        membuf h2 = {0};
        odl_writer w2 = mb_writer(&h2);
        CHECK_OK(odl_file_write_header(&w2, &d));
        CHECK_OK(odl_file_write_chunk(&w2, fourccs[k], payload, plen[k], &d));
        mb_append(&h2, f.p + 16, f.len - 16);
        r = try_load(h2.p, h2.len, b.m);
        CHECK(r.s == ODL_OK && r.stage == 3);
        mb_free(&h2);
    }

    mb_free(&f);
    held_free(&a);
    held_free(&b);
}

/* A file: header, a TOPO chunk with the given payload, then END. */
static void topo_file(membuf *out, const uint8_t *topo, size_t n)
{
    mb_free(out);
    odl_writer w = mb_writer(out);
    (void)odl_file_write_header(&w, NULL);
    (void)odl_file_write_chunk(&w, ODL_CHUNK_TOPOLOGY, topo, n, NULL);
    (void)odl_file_write_end(&w, NULL);
}

static void test_crafted_topology(odl_test_ctx *t)
{
    odl_model_desc base;
    desc_tiny(&base);
    uint8_t topo[16 + 40 * (ODL_MAX_LAYERS + 2)];
    membuf f = {0};
    odl_model_desc rd;
    odl_diag d;

    /* a valid topology with no tensors behind it is refused before anything
     * could be sized from it (a 1 KB file must not make a reader allocate GBs) */
    size_t n = topo_payload(&base, topo);
    topo_file(&f, topo, n);
    odl_diag_clear(&d);
    CHECK(odl_file_read_desc(f.p, f.len, &rd, &d) == ODL_ERR_FORMAT);
    CHECK(contains(d.msg, "missing"));

    /* each case: a desc mutation with a valid CRC -> FORMAT, message about the topology */
    enum { N_CASES = 22 };
    int failures = 0, noted = 0;
    for (int c = 0; c < N_CASES; c++) {
        odl_model_desc m = base;
        const char *what = "";
        switch (c) {
        case 0: m.n_layers = 0; what = "0 layers"; break;
        case 1: m.layers[1].units = 1000000000; what = "1e9 units"; break;
        case 2: m.layers[1].units = -3; what = "negative units"; break;
        case 3: m.layers[1].units = 0; what = "0 units"; break;
        case 4: m.in_c = 0; what = "0 channels"; break;
        case 5: m.in_w = -1; what = "negative width"; break;
        case 6: m.in_h = 1 << 30; what = "huge height"; break;
        case 7: m.in_c = 65536; m.in_h = 65536; m.in_w = 65536; what = "2^48 input values"; break;
        case 8: m.layers[2].type = 99; what = "unknown layer type"; break;
        case 9: m.layers[2].type = 0; what = "layer type 0"; break;
        case 10: m.layers[0].trainable = 2; what = "trainable 2"; break;
        case 11: /* a 5x5 conv on a 3x3 input */
            odl_desc_init(&m, 1, 3, 3);
            odl_desc_conv2d(&m, 2, 5, 1, 0);
            what = "kernel bigger than the input"; break;
        case 12:
            odl_desc_init(&m, 1, 8, 8);
            odl_desc_conv2d(&m, 2, 3, 0, 0);
            what = "stride 0"; break;
        case 13:
            odl_desc_init(&m, 1, 8, 8);
            odl_desc_maxpool(&m, 2, 2);
            m.layers[0].pad_h = 2;
            what = "padding >= kernel"; break;
        case 14:
            odl_desc_init(&m, 1, 8, 8);
            odl_desc_conv2d(&m, 2, 3, 1, 1);
            m.layers[0].k_w = 1000;
            what = "kernel 1000"; break;
        case 15:
            odl_desc_init(&m, 1, 8, 8);
            odl_desc_depthwise(&m, 1000, 3, 1, 1);
            what = "depth multiplier 1000"; break;
        case 16:
            odl_desc_init(&m, 1, 1, 4);
            odl_desc_dropout(&m, 0.5f);
            m.layers[0].rate = 1.0f;
            what = "dropout rate 1"; break;
        case 17: {
            odl_desc_init(&m, 1, 1, 4);
            odl_desc_dropout(&m, 0.5f);
            uint32_t nan_bits = 0x7fc00000u;
            memcpy(&m.layers[0].rate, &nan_bits, 4);
            what = "dropout rate NaN"; break;
        }
        case 18: /* dense: 65536 inputs x 65536 units */
            odl_desc_init(&m, 1, 256, 256);
            odl_desc_flatten(&m);
            odl_desc_dense(&m, 65536);
            what = "2^32 dense weights"; break;
        case 19: /* a huge conv output */
            odl_desc_init(&m, 4096, 64, 64);
            odl_desc_conv2d(&m, 65536, 3, 1, 1);
            what = "huge conv output"; break;
        case 20: /* depthwise channel product explodes */
            odl_desc_init(&m, 65536, 1, 1);
            for (int k = 0; k < 4; k++)
                odl_desc_depthwise(&m, 64, 1, 1, 0);
            what = "depthwise channel explosion"; break;
        case 21:
            m.n_layers = ODL_MAX_LAYERS + 1;
            what = "33 layers"; break;
        }
        /* encode by hand for counts the encoder cannot produce */
        size_t len;
        if (m.n_layers > ODL_MAX_LAYERS) { /* the encoder's desc holds 32 layers */
            memset(topo, 0, sizeof topo);
            put32(topo, (uint32_t)m.n_layers);
            put32(topo + 4, 1);
            put32(topo + 8, 1);
            put32(topo + 12, 4);
            for (int32_t k = 0; k < m.n_layers; k++)
                put32(topo + 16 + 40 * (size_t)k, ODL_LAYER_RELU);
            len = 16 + 40 * (size_t)m.n_layers;
        } else {
            len = topo_payload(&m, topo);
        }
        topo_file(&f, topo, len);
        odl_diag_clear(&d);
        odl_status s = odl_file_read_desc(f.p, f.len, &rd, &d);
        /* the returned status is what counts (d.status may still hold the
         * ODL_ERR_SHAPE of odl_desc_check: see the note below) */
        int ok = s == ODL_ERR_FORMAT && d.status < 0 && d.msg[0] != '\0' &&
                 (contains(d.msg, "topology") || contains(d.msg, "layer"));
        if (ok && d.status != s && !noted++)
            odl_test_logf(t, "    note: read_desc returns %d but leaves diag.status %d ('%s')", (int)s,
                          (int)d.status, d.msg);
        if (!ok) {
            CHECK(!"crafted topology must give ODL_ERR_FORMAT");
            if (failures++ < 5)
                odl_test_logf(t, "    case %d (%s): status %d msg '%s'", c, what, (int)s, d.msg);
        }
    }

    /* TOPO chunk sizes that do not match the layer count */
    n = topo_payload(&base, topo);
    const size_t bad_len[5] = {0, 4, 15, n - 1, n + 40};
    memset(topo + n, 0, 40);
    for (int k = 0; k < 5; k++) {
        topo_file(&f, topo, bad_len[k]);
        odl_diag_clear(&d);
        odl_status s = odl_file_read_desc(f.p, f.len, &rd, &d);
        CHECK(s == ODL_ERR_FORMAT && d.msg[0] != '\0');
    }
    /* a layer count of 2^32-1 with a small chunk: no overflow in the size check */
    put32(topo, 0xFFFFFFFFu);
    topo_file(&f, topo, n);
    odl_diag_clear(&d);
    CHECK(odl_file_read_desc(f.p, f.len, &rd, &d) == ODL_ERR_FORMAT);

    /* two TOPO chunks; none */
    n = topo_payload(&base, topo);
    mb_free(&f);
    odl_writer w = mb_writer(&f);
    CHECK_OK(odl_file_write_header(&w, &d));
    CHECK_OK(odl_file_write_chunk(&w, ODL_CHUNK_TOPOLOGY, topo, n, &d));
    CHECK_OK(odl_file_write_chunk(&w, ODL_CHUNK_TOPOLOGY, topo, n, &d));
    CHECK_OK(odl_file_write_end(&w, &d));
    odl_diag_clear(&d);
    CHECK(odl_file_read_desc(f.p, f.len, &rd, &d) == ODL_ERR_FORMAT && d.msg[0] != '\0');
    mb_free(&f);
    w = mb_writer(&f);
    CHECK_OK(odl_file_write_header(&w, &d));
    CHECK_OK(odl_file_write_end(&w, &d));
    odl_diag_clear(&d);
    CHECK(odl_file_read_desc(f.p, f.len, &rd, &d) == ODL_ERR_FORMAT && contains(d.msg, "topology"));
    mb_free(&f);
}

/* Files whose tensors do not fit the topology (all CRCs valid). */
static void test_crafted_tensors(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_tiny(&desc); /* layers: flatten, dense(4->3), relu, dense(3->2) */
    odl_model_cfg cfg = infer_cfg(1);
    held a, b;
    CHECK_OK(held_make(&a, &desc, &cfg, 1, &d));
    CHECK_OK(held_init(&b, &desc, &cfg, &d));
    uint8_t topo[16 + 40 * ODL_MAX_LAYERS];
    const size_t tn = topo_payload(&desc, topo);
    size_t n1;
    const float *w1 = odl_model_param_const(a.m, 1, 0, &n1);
    REQUIRE(n1 == 12);
    float big[64] = {0};

    enum { N_CASES = 15 };
    for (int c = 0; c < N_CASES; c++) {
        membuf f = {0};
        odl_writer w = mb_writer(&f);
        CHECK_OK(odl_file_write_header(&w, &d));
        CHECK_OK(odl_file_write_chunk(&w, ODL_CHUNK_TOPOLOGY, topo, tn, &d));
        odl_status want = ODL_ERR_FORMAT;
        const char *needle = "";
        switch (c) {
        case 0: needle = "missing"; break; /* no tensors */
        case 1: CHECK_OK(write_all_tens(&w, a.m, 3, 1)); needle = "missing"; break;
        case 2: /* a duplicate */
            CHECK_OK(write_all_tens(&w, a.m, -1, 0));
            CHECK_OK(write_tens(&w, 1, 0, 0, 1, n1, w1, n1 * 4));
            needle = "twice";
            break;
        case 3: /* count says 11, data 11 floats */
            CHECK_OK(write_tens(&w, 1, 0, 0, 1, 11, w1, 11 * 4));
            break;
        case 4: /* count right, data one float short */
            CHECK_OK(write_tens(&w, 1, 0, 0, 1, n1, w1, (n1 - 1) * 4));
            break;
        case 5: /* count right, data one byte long */
            CHECK_OK(write_tens(&w, 1, 0, 0, 1, n1, big, n1 * 4 + 1));
            break;
        case 6: /* a huge count */
            CHECK_OK(write_tens(&w, 1, 0, 0, 1, (uint64_t)1 << 62, w1, n1 * 4));
            break;
        case 7: /* count wrapping to 12 in 32 bits */
            CHECK_OK(write_tens(&w, 1, 0, 0, 1, ((uint64_t)1 << 32) + 12, w1, n1 * 4));
            break;
        case 8: /* dtype 1 */
            CHECK_OK(write_tens(&w, 1, 0, 1, 1, n1, w1, n1 * 4));
            want = ODL_ERR_UNSUPPORTED;
            break;
        case 9: /* 2 dimensions */
            CHECK_OK(write_tens(&w, 1, 0, 0, 2, n1, w1, n1 * 4));
            want = ODL_ERR_UNSUPPORTED;
            break;
        case 10: /* no such layer */
            CHECK_OK(write_tens(&w, 99, 0, 0, 1, n1, w1, n1 * 4));
            needle = "exist";
            break;
        case 11: /* which = 2 */
            CHECK_OK(write_tens(&w, 1, 2, 0, 1, n1, w1, n1 * 4));
            needle = "exist";
            break;
        case 12: { /* a header shorter than 32 bytes */
            uint8_t h[20] = {0};
            put32(h, 1);
            CHECK_OK(odl_file_write_chunk(&w, ODL_CHUNK_TENSOR, h, sizeof h, &d));
            needle = "short";
            break;
        }
        case 14: { /* a tensor whose header's reserved bytes are not zero */
            CHECK_OK(write_all_tens(&w, a.m, 1, 0));
            uint8_t h[32] = {0};
            put32(h, 1);
            put32(h + 12, 1);
            put64(h + 16, n1);
            h[30] = 1;
            CHECK_OK(odl_file_write_chunk2(&w, ODL_CHUNK_TENSOR, h, sizeof h, w1, n1 * 4, &d));
            needle = "reserved";
            break;
        }
        case 13: /* an empty tensor for a layer without parameters (relu) */
            CHECK_OK(write_all_tens(&w, a.m, -1, 0));
            CHECK_OK(write_tens(&w, 2, 0, 0, 1, 0, NULL, 0));
            want = (odl_status)0x7fff; /* any error */
            break;
        }
        CHECK_OK(odl_file_write_end(&w, &d));
        load_result r = try_load(f.p, f.len, b.m);
        int ok = (r.stage == 1 || r.stage == 2) && r.s < 0 && r.d.msg[0] != '\0' && contains(r.d.msg, needle) &&
                 (want == (odl_status)0x7fff || r.s == want);
        if (!ok) {
            CHECK(!"crafted tensors must give a clean error");
            odl_test_logf(t, "    case %d: stage %d status %d msg '%s'", c, r.stage, (int)r.s, r.d.msg);
        }
        if (c == 13 && r.s != ODL_ERR_FORMAT)
            odl_test_logf(t, "    note: an empty TENS chunk for a parameterless layer gives %s ('%s')",
                          odl_status_str(r.s), r.d.msg);
        mb_free(&f);
    }
    held_free(&a);
    held_free(&b);
}

static void test_topology_mismatch(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_tiny(&desc);
    odl_model_cfg cfg = infer_cfg(1);
    held a;
    CHECK_OK(held_make(&a, &desc, &cfg, 1, &d));
    membuf f = {0};
    CHECK_OK(save_to(a.m, NULL, 0, &f, &d));

    for (int c = 0; c < 6; c++) {
        odl_model_desc m;
        switch (c) {
        case 0: desc_tiny(&m); m.layers[1].units = 4; break;          /* other width */
        case 1: odl_desc_init(&m, 1, 1, 5); odl_desc_flatten(&m); odl_desc_dense(&m, 3); odl_desc_relu(&m);
                odl_desc_dense(&m, 2); break;                          /* other input */
        case 2: odl_desc_init(&m, 1, 4, 1); odl_desc_flatten(&m); odl_desc_dense(&m, 3); odl_desc_relu(&m);
                odl_desc_dense(&m, 2); break;                          /* same size, other shape */
        case 3: desc_tiny(&m); odl_desc_relu(&m); break;              /* one layer more */
        case 4: desc_tiny(&m); m.layers[2].type = ODL_LAYER_RELU6; break; /* other layer type */
        default: desc_tiny(&m); m.n_layers = 3; m.layers[2].type = ODL_LAYER_DENSE; m.layers[2].units = 2; break;
        }
        held b;
        CHECK_OK(held_init(&b, &m, &cfg, &d));
        odl_diag_clear(&d);
        odl_status s = odl_model_load_params(b.m, f.p, f.len, &d);
        CHECK(s == ODL_ERR_SHAPE && d.status == s && d.msg[0] != '\0');
        held_free(&b);
    }
    /* the multi-layer file into the tiny model */
    odl_model_desc md;
    desc_multi(&md);
    held c;
    CHECK_OK(held_make(&c, &md, &cfg, 2, &d));
    membuf g = {0};
    CHECK_OK(save_to(c.m, NULL, 0, &g, &d));
    odl_diag_clear(&d);
    CHECK(odl_model_load_params(a.m, g.p, g.len, &d) == ODL_ERR_SHAPE);
    odl_diag_clear(&d);
    CHECK(odl_model_load_params(c.m, f.p, f.len, &d) == ODL_ERR_SHAPE);
    mb_free(&f);
    mb_free(&g);
    held_free(&a);
    held_free(&c);
}

static void test_writer_failures(odl_test_ctx *t)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_desc desc;
    desc_multi(&desc);
    odl_model_cfg cfg = infer_cfg(1);
    held a;
    CHECK_OK(held_make(&a, &desc, &cfg, 1, &d));
    membuf ok = {0};
    CHECK_OK(save_to(a.m, test_meta, N_TEST_META, &ok, &d));
    const int calls = ok.calls;
    CHECK(calls > 20);
    for (int n = 1; n <= calls; n++) {
        membuf f = {0};
        f.fail_at = n;
        odl_writer w = mb_writer(&f);
        odl_diag_clear(&d);
        odl_status s = odl_model_save(a.m, test_meta, N_TEST_META, &w, &d);
        if (!(s == ODL_ERR_IO && d.status == ODL_ERR_IO && contains(d.msg, "write failed"))) {
            CHECK(!"a failing write must give ODL_ERR_IO");
            odl_test_logf(t, "    fail at call %d of %d: status %d msg '%s'", n, calls, (int)s, d.msg);
        }
        CHECK(f.calls == n); /* nothing written after the failure */
        CHECK(w.offset == f.len);
        mb_free(&f);
    }
    /* with a NULL diag too */
    membuf f = {0};
    f.fail_at = 3;
    odl_writer w = mb_writer(&f);
    CHECK(odl_model_save(a.m, NULL, 0, &w, NULL) == ODL_ERR_IO);
    mb_free(&f);
    mb_free(&ok);
    held_free(&a);
}

static const odl_test_case cases[] = {
    {"crc32", test_crc32},
    {"round_trip", test_round_trip},
    {"round_trip_layer_types", test_round_trip_layer_types},
    {"layout", test_layout},
    {"in_place_frozen_weights", test_in_place},
    {"corruption_sweep_tiny", test_corruption_sweep_tiny},
    {"corruption_sweep_multi", test_corruption_sweep_multi},
    {"header_errors", test_header_errors},
    {"trailing_and_unknown_chunks", test_trailing_and_unknown_chunks},
    {"crafted_topology", test_crafted_topology},
    {"crafted_tensors", test_crafted_tensors},
    {"topology_mismatch", test_topology_mismatch},
    {"writer_failures", test_writer_failures},
};

TEST_MAIN(cases)
