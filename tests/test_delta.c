/* Signed head deltas (odl/delta.h): SHA-256 against NIST's vectors and
 * Python's hashlib, HMAC-SHA256 against RFC 4231 and Python's hmac; the
 * message's round trip (values = device − global, bit for bit), its exact
 * size and byte layout; and every refusal, each with its own reason: a
 * tampered byte (with and without the CRC mended), a wrong key, an unknown
 * device, a replay, stale and future rounds, another base, another head
 * shape, every truncation, a NaN, no signature, an unknown layout. A
 * refusal never changes the receiver. Damaged inputs are exact-size heap
 * copies, so ASan sees any read past them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/odl.h"
#include "odl/delta.h"
#include "golden/golden_sha256.h"

/* ---- helpers ---------------------------------------------------------------- */

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
    odl_writer w = {mb_write, b, 0};
    return w;
}

static void mb_free(membuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static uint8_t *dup_bytes(const void *p, size_t n)
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
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int hexeq(const uint8_t *got, const char *hex)
{
    for (size_t i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || got[i] != (uint8_t)v)
            return 0;
    }
    return 1;
}

typedef struct test_model {
    void *buf;
    odl_model *m;
    odl_node_desc nodes[16];
    odl_model_desc desc;
} test_model;

/* edge-cnn (28×28, 10 classes) or an MLP, parameters from `seed`. */
static int model_make_frozen(test_model *tm, int edge, int hidden, uint64_t seed, int32_t freeze_below)
{
    memset(tm, 0, sizeof *tm);
    odl_desc_init(&tm->desc, tm->nodes, 16, 1, 28, 28);
    int32_t h[1] = {hidden};
    if ((edge ? odl_desc_edge_cnn(&tm->desc, 1, 28, 28, 10) : odl_desc_mlp(&tm->desc, 1, 28, 28, h, 1, 10)) != ODL_OK)
        return 0;
    if (freeze_below > 0 && odl_desc_freeze_below(&tm->desc, freeze_below) != ODL_OK)
        return 0;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan p;
    if (odl_model_plan(&tm->desc, &cfg, &p, NULL) != ODL_OK)
        return 0;
    tm->buf = malloc(p.total);
    odl_arena a;
    odl_arena_init(&a, tm->buf, p.total);
    if (odl_model_init(&tm->m, &tm->desc, &cfg, &a, NULL) != ODL_OK)
        return 0;
    odl_rng r;
    odl_rng_seed(&r, seed, 1);
    return odl_model_init_params(tm->m, &r) == ODL_OK;
}

static int model_make(test_model *tm, int edge, int hidden, uint64_t seed)
{
    return model_make_frozen(tm, edge, hidden, seed, 0);
}

static void model_free(test_model *tm)
{
    free(tm->buf);
    memset(tm, 0, sizeof *tm);
}

/* device = global's parameters, the head (nodes >= boundary) moved by small steps */
static void model_copy_params(odl_model *dst, const odl_model *src)
{
    const odl_model_desc *md = odl_model_get_desc(src);
    for (int32_t i = 0; i < md->n_layers; i++)
        for (int w = 0; w < 2; w++) {
            size_t n = 0, nd = 0;
            const float *s = odl_model_param_const(src, i, w, &n);
            float *d = odl_model_param(dst, i, w, &nd);
            if (s && d && n == nd)
                memcpy(d, s, n * sizeof(float));
        }
}

static void nudge_head(odl_model *m, int32_t boundary, uint64_t seed)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 7);
    const odl_model_desc *md = odl_model_get_desc(m);
    for (int32_t i = boundary; i < md->n_layers; i++)
        for (int w = 0; w < 2; w++) {
            size_t n = 0;
            float *p = odl_model_param(m, i, w, &n);
            for (size_t k = 0; p && k < n; k++)
                p[k] += 0.01f * (odl_rng_uniform(&r) - 0.5f);
        }
}

static const uint8_t KEY_A[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY_B[16] = {0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
                                  0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf};

/* A fleet of two: global (edge-cnn), a device model, keys for devices 7 and 9. */
typedef struct fleet {
    test_model global, device;
    int32_t boundary;
    odl_delta_key keys[2];
    odl_delta_receiver r;
} fleet;

static int fleet_make(fleet *f)
{
    memset(f, 0, sizeof *f);
    if (!model_make(&f->global, 1, 0, 11) || !model_make(&f->device, 1, 0, 99))
        return 0;
    if (odl_desc_boundary_for_unfreeze(&f->global.desc, 1, &f->boundary, NULL) != ODL_OK)
        return 0;
    model_copy_params(f->device.m, f->global.m);
    nudge_head(f->device.m, f->boundary, 5);
    f->keys[0].device_id = 7;
    f->keys[0].key_len = sizeof KEY_A;
    memcpy(f->keys[0].key, KEY_A, sizeof KEY_A);
    f->keys[1].device_id = 9;
    f->keys[1].key_len = sizeof KEY_B;
    memcpy(f->keys[1].key, KEY_B, sizeof KEY_B);
    f->r.global = f->global.m;
    f->r.boundary = f->boundary;
    f->r.round = 3;
    f->r.keys = f->keys;
    f->r.n_keys = 2;
    return odl_delta_model_id(f->global.m, f->r.base_id, NULL) == ODL_OK;
}

static void fleet_free(fleet *f)
{
    model_free(&f->global);
    model_free(&f->device);
}

static odl_status encode(const fleet *f, uint32_t device, uint32_t round, uint64_t seq, const uint8_t *key,
                         size_t key_len, membuf *out)
{
    odl_delta_info info = {device, round, seq, 42, f->boundary};
    odl_writer w = mb_writer(out);
    return odl_delta_encode(f->device.m, f->global.m, &info, key, key_len, &w, NULL);
}

/* Verifies an exact-size copy; checks that a refusal left the keys alone. */
static odl_delta_reason verify_copy(odl_test_ctx *t, fleet *f, const uint8_t *msg, size_t len)
{
    uint8_t *c = dup_bytes(msg, len);
    odl_delta_key before[2];
    memcpy(before, f->keys, sizeof before);
    odl_delta_view v;
    odl_delta_reason why = ODL_DELTA_ACCEPTED;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_delta_verify(&f->r, c, len, &v, &why, &d);
    if (s == ODL_OK) {
        CHECK(why == ODL_DELTA_ACCEPTED);
    } else {
        CHECK(s == ODL_EVENT_REJECTED);
        CHECK(why != ODL_DELTA_ACCEPTED);
        CHECK(d.msg[0] != '\0');
        CHECK(memcmp(before, f->keys, sizeof before) == 0);
    }
    free(c);
    return why;
}

/* Chunk k's offset in a message (0: DLTA, 1: AUTH, 2: END). */
static size_t chunk_at(const uint8_t *m, int k)
{
    size_t off = 16;
    for (int i = 0; i < k; i++) {
        const uint64_t n = get64(m + off + 8);
        off += 16 + (size_t)((n + 15) & ~(uint64_t)15);
    }
    return off;
}

static void fix_crc(uint8_t *m, size_t chunk)
{
    const uint64_t n = get64(m + chunk + 8);
    uint32_t c = odl_crc32(0, m + chunk, 4);
    c = odl_crc32(c, m + chunk + 8, 8);
    c = odl_crc32(c, m + chunk + 16, (size_t)n);
    put32(m + chunk + 4, c);
}

/* What a device holding `key` would send after editing its DLTA payload:
 * the CRC mended and the message signed again. */
static void resign(uint8_t *m, const uint8_t *key, size_t key_len)
{
    fix_crc(m, chunk_at(m, 0));
    const size_t auth = chunk_at(m, 1);
    odl_hmac_sha256(key, key_len, m, auth, m + auth + 16 + 16);
    fix_crc(m, auth);
}

/* ---- SHA-256 and HMAC ---------------------------------------------------------- */

static void fill_pattern(uint8_t *p, size_t n, unsigned mul, unsigned add)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * mul + add) & 0xffu);
}

static void test_sha256_nist(odl_test_ctx *t)
{
    uint8_t h[32];
    odl_sha256("abc", 3, h);
    CHECK(hexeq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    odl_sha256("", 0, h);
    CHECK(hexeq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    odl_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
    CHECK(hexeq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu";
    odl_sha256(m896, strlen(m896), h);
    CHECK(hexeq(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"));
    /* one million 'a's, fed in uneven pieces */
    uint8_t a[1000];
    memset(a, 'a', sizeof a);
    odl_sha256_ctx c;
    odl_sha256_init(&c);
    size_t left = 1000000, step = 1;
    while (left) {
        const size_t n = step < left ? step : left;
        odl_sha256_update(&c, a, n);
        left -= n;
        step = step % 977 + 13; /* at most 989 < sizeof a */
    }
    odl_sha256_final(&c, h);
    CHECK(hexeq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

static void test_sha256_python(odl_test_ctx *t)
{
    uint8_t *msg = malloc(4097), h[32];
    REQUIRE(msg);
    int bad = 0;
    for (size_t i = 0; i < sizeof G_SHA256 / sizeof G_SHA256[0]; i++) {
        const size_t n = G_SHA256[i].len;
        fill_pattern(msg, n, 31, 7);
        odl_sha256(msg, n, h);
        bad += memcmp(h, G_SHA256[i].digest, 32) != 0;
        /* the same message in pieces of every size from 1 to 70 */
        for (size_t piece = 1; piece <= 70 && n <= 256; piece++) {
            odl_sha256_ctx c;
            odl_sha256_init(&c);
            for (size_t off = 0; off < n; off += piece)
                odl_sha256_update(&c, msg + off, n - off < piece ? n - off : piece);
            odl_sha256_final(&c, h);
            bad += memcmp(h, G_SHA256[i].digest, 32) != 0;
        }
    }
    CHECK(bad == 0);
    free(msg);
}

static void test_hmac_rfc4231(odl_test_ctx *t)
{
    uint8_t k[131], m[160], h[32];
    memset(k, 0x0b, 20);
    odl_hmac_sha256(k, 20, "Hi There", 8, h);
    CHECK(hexeq(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
    odl_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, h);
    CHECK(hexeq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    memset(k, 0xaa, 20);
    memset(m, 0xdd, 50);
    odl_hmac_sha256(k, 20, m, 50, h);
    CHECK(hexeq(h, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"));
    for (int i = 0; i < 25; i++)
        k[i] = (uint8_t)(i + 1);
    memset(m, 0xcd, 50);
    odl_hmac_sha256(k, 25, m, 50, h);
    CHECK(hexeq(h, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"));
    memset(k, 0x0c, 20);
    odl_hmac_sha256(k, 20, "Test With Truncation", 20, h);
    static const uint8_t trunc[16] = {0xa3, 0xb6, 0x16, 0x74, 0x73, 0x10, 0x0e, 0xe0,
                                      0x6e, 0x0c, 0x79, 0x6c, 0x29, 0x55, 0x55, 0x2b};
    CHECK(memcmp(h, trunc, 16) == 0);
    memset(k, 0xaa, 131);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    odl_hmac_sha256(k, 131, m6, strlen(m6), h);
    CHECK(hexeq(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
    const char *m7 = "This is a test using a larger than block-size key and a larger than block-size data. The key "
                     "needs to be hashed before being used by the HMAC algorithm.";
    odl_hmac_sha256(k, 131, m7, strlen(m7), h);
    CHECK(hexeq(h, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"));
}

static void test_hmac_python(odl_test_ctx *t)
{
    uint8_t k[131], m[200], h[32];
    int bad = 0;
    for (size_t i = 0; i < sizeof G_HMAC / sizeof G_HMAC[0]; i++) {
        fill_pattern(k, G_HMAC[i].key_len, 17, 101);
        fill_pattern(m, G_HMAC[i].msg_len, 31, 7);
        odl_hmac_sha256(k, G_HMAC[i].key_len, m, G_HMAC[i].msg_len, h);
        bad += memcmp(h, G_HMAC[i].mac, 32) != 0;
        /* streamed in two parts at every split */
        for (size_t cut = 0; cut <= G_HMAC[i].msg_len; cut += 5) {
            odl_hmac_sha256_ctx c;
            odl_hmac_sha256_init(&c, k, G_HMAC[i].key_len);
            odl_hmac_sha256_update(&c, m, cut);
            odl_hmac_sha256_update(&c, m + cut, G_HMAC[i].msg_len - cut);
            odl_hmac_sha256_final(&c, h);
            bad += memcmp(h, G_HMAC[i].mac, 32) != 0;
        }
    }
    CHECK(bad == 0);
}

static void test_ct_equal(odl_test_ctx *t)
{
    uint8_t a[32], b[32];
    fill_pattern(a, 32, 3, 1);
    memcpy(b, a, 32);
    CHECK(odl_ct_equal(a, b, 32));
    CHECK(odl_ct_equal(a, b, 0));
    for (int i = 0; i < 32; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            CHECK(!odl_ct_equal(a, b, 32));
            b[i] ^= (uint8_t)(1u << bit);
        }
}

/* ---- the message ------------------------------------------------------------------ */

static void test_round_trip(odl_test_ctx *t)
{
    fleet f;
    REQUIRE(fleet_make(&f));
    membuf m = {0};
    CHECK_OK(encode(&f, 7, 3, 1, KEY_A, sizeof KEY_A, &m));
    size_t planned = 0;
    CHECK_OK(odl_delta_size(f.global.m, f.boundary, &planned, NULL));
    CHECK(m.len == planned);
    /* edge-cnn's head (dense 64 -> 10): 650 values, 2600 bytes; the message 2816 */
    CHECK(planned == 2816);
    odl_delta_view v;
    odl_delta_reason why = ODL_DELTA_MALFORMED;
    odl_diag d;
    CHECK_OK(odl_delta_verify(&f.r, m.p, m.len, &v, &why, &d));
    CHECK(why == ODL_DELTA_ACCEPTED);
    CHECK(v.info.device_id == 7 && v.info.round == 3 && v.info.seq == 1 && v.info.examples == 42);
    CHECK(v.info.boundary == f.boundary && v.signed_ == 1 && v.bytes == m.len);
    CHECK(memcmp(v.base_id, f.r.base_id, 32) == 0);
    CHECK(f.keys[0].last_seq == 1 && f.keys[1].last_seq == 0);
    /* the values are device − global, bit for bit, tensor by tensor */
    const odl_model_desc *md = odl_model_get_desc(f.global.m);
    int32_t i = 0, bad = 0;
    for (int32_t node = f.boundary; node < md->n_layers; node++)
        for (int w = 0; w < 2; w++) {
            size_t n = 0, nd = 0, cnt = 0;
            const float *g = odl_model_param_const(f.global.m, node, w, &n);
            const float *dv = odl_model_param_const(f.device.m, node, w, &nd);
            if (!g || !n)
                continue;
            int32_t tn = -1, tw = -1;
            CHECK_OK(odl_delta_tensor_info(&v, i, &tn, &tw, &cnt, NULL));
            CHECK(tn == node && tw == w && cnt == n);
            float *out = malloc(n * sizeof(float));
            REQUIRE(out);
            CHECK_OK(odl_delta_tensor_copy(&v, i, out, n, NULL));
            for (size_t k = 0; k < n; k++) {
                const float want = dv[k] - g[k];
                bad += memcmp(&out[k], &want, 4) != 0;
            }
            bad += out[0] == 0.0f; /* the nudge moved the head */
            free(out);
            i++;
        }
    CHECK(i == v.n_tensors && i == 2 && bad == 0);
    CHECK(odl_delta_tensor_copy(&v, 0, NULL, 0, NULL) == ODL_ERR_ARG);
    CHECK(odl_delta_tensor_info(&v, 2, NULL, NULL, NULL, NULL) == ODL_ERR_ARG);
    /* parse reads the same without keys */
    odl_delta_view pv;
    CHECK_OK(odl_delta_parse(m.p, m.len, &pv, &why, NULL));
    CHECK(why == ODL_DELTA_ACCEPTED && pv.info.seq == 1 && pv.n_tensors == 2 && pv.signed_ == 1);
    /* encoding is deterministic */
    membuf m2 = {0};
    CHECK_OK(encode(&f, 7, 3, 1, KEY_A, sizeof KEY_A, &m2));
    CHECK(m2.len == m.len && memcmp(m2.p, m.p, m.len) == 0);
    mb_free(&m);
    mb_free(&m2);
    fleet_free(&f);
}

/* The bytes docs/format.md describes. */
static void test_layout(odl_test_ctx *t)
{
    fleet f;
    REQUIRE(fleet_make(&f));
    membuf m = {0};
    CHECK_OK(encode(&f, 7, 3, 0x0102030405ull, KEY_A, sizeof KEY_A, &m));
    const uint8_t *p = m.p;
    static const uint8_t magic[8] = {0x89, 'O', 'D', 'L', '\r', '\n', 0x1a, '\n'};
    CHECK(memcmp(p, magic, 8) == 0 && p[8] == 1 && p[9] == 0 && p[10] == 0 && p[11] == 0);
    CHECK(memcmp(p + 16, "DLTA", 4) == 0);
    const uint64_t plen = get64(p + 24);
    CHECK(plen == 2704);
    const uint8_t *q = p + 32;
    CHECK(get32(q) == 1 && get32(q + 4) == 7 && get64(q + 8) == 0x0102030405ull);
    CHECK(get32(q + 16) == 3 && get32(q + 20) == 42 && get32(q + 24) == (uint32_t)f.boundary && get32(q + 28) == 2);
    CHECK(memcmp(q + 32, f.r.base_id, 32) == 0);
    CHECK(get32(q + 64) == (uint32_t)f.boundary && get32(q + 68) == 0 && get64(q + 72) == 640);
    CHECK(get32(q + 80) == (uint32_t)f.boundary && get32(q + 84) == 1 && get64(q + 88) == 10);
    /* weights at 96, bias at 96 + 2560 (40 bytes, then 8 of padding) */
    size_t n = 0;
    const float *gw = odl_model_param_const(f.global.m, f.boundary, 0, &n);
    const float *dw = odl_model_param_const(f.device.m, f.boundary, 0, &n);
    const float want0 = dw[0] - gw[0];
    CHECK(memcmp(q + 96, &want0, 4) == 0);
    CHECK(get64(q + 96 + 2560 + 40) == 0);
    const size_t auth = 32 + 2704;
    CHECK(memcmp(p + auth, "AUTH", 4) == 0 && get64(p + auth + 8) == 48);
    CHECK(get32(p + auth + 16) == 1 && get32(p + auth + 20) == 1 && get64(p + auth + 24) == 0);
    uint8_t mac[32];
    odl_hmac_sha256(KEY_A, sizeof KEY_A, p, auth, mac);
    CHECK(memcmp(p + auth + 32, mac, 32) == 0);
    CHECK(memcmp(p + auth + 64, "END ", 4) == 0 && get64(p + auth + 72) == 0 && m.len == auth + 80);
    mb_free(&m);
    fleet_free(&f);
}

static void test_refusals(odl_test_ctx *t)
{
    fleet f;
    REQUIRE(fleet_make(&f));
    membuf good = {0}, other = {0};
    CHECK_OK(encode(&f, 7, 3, 5, KEY_A, sizeof KEY_A, &good));
    const size_t len = good.len, dlta = chunk_at(good.p, 0), auth = chunk_at(good.p, 1);
    uint8_t *c = dup_bytes(good.p, len);
    REQUIRE(c);

    /* a tampered value: the CRC catches it; with the CRC mended, the HMAC does */
    c[dlta + 16 + 200] ^= 0x40;
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_MALFORMED);
    fix_crc(c, dlta);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_BAD_SIGNATURE);
    /* a tampered round or device id, CRC mended */
    memcpy(c, good.p, len);
    c[dlta + 16 + 16] ^= 1;
    fix_crc(c, dlta);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_BAD_SIGNATURE);
    memcpy(c, good.p, len);
    c[dlta + 16 + 4] = 9; /* claims to be device 9 */
    fix_crc(c, dlta);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_BAD_SIGNATURE);
    /* every byte of the MAC, CRC mended */
    int bad = 0;
    for (int i = 0; i < 32; i++) {
        memcpy(c, good.p, len);
        c[auth + 32 + i] ^= 0x01;
        fix_crc(c, auth);
        bad += verify_copy(t, &f, c, len) != ODL_DELTA_BAD_SIGNATURE;
    }
    CHECK(bad == 0);

    /* signed with another device's key */
    CHECK_OK(encode(&f, 7, 3, 6, KEY_B, sizeof KEY_B, &other));
    CHECK(verify_copy(t, &f, other.p, other.len) == ODL_DELTA_BAD_SIGNATURE);
    mb_free(&other);
    /* a device the receiver has no key for */
    CHECK_OK(encode(&f, 8, 3, 1, KEY_A, sizeof KEY_A, &other));
    CHECK(verify_copy(t, &f, other.p, other.len) == ODL_DELTA_UNKNOWN_DEVICE);
    mb_free(&other);
    /* stale and future rounds */
    CHECK_OK(encode(&f, 7, 2, 6, KEY_A, sizeof KEY_A, &other));
    CHECK(verify_copy(t, &f, other.p, other.len) == ODL_DELTA_STALE_ROUND);
    mb_free(&other);
    CHECK_OK(encode(&f, 7, 4, 6, KEY_A, sizeof KEY_A, &other));
    CHECK(verify_copy(t, &f, other.p, other.len) == ODL_DELTA_FUTURE_ROUND);
    mb_free(&other);

    /* no signature: the AUTH chunk cut out */
    memcpy(c, good.p, len);
    memmove(c + auth, c + auth + 64, 16);
    CHECK(verify_copy(t, &f, c, auth + 16) == ODL_DELTA_UNSIGNED);
    odl_delta_view pv;
    odl_delta_reason why;
    CHECK_OK(odl_delta_parse(c, auth + 16, &pv, &why, NULL));
    CHECK(pv.signed_ == 0);

    /* a NaN and an infinity, from a device that holds the key (a bug, not a forger) */
    memcpy(c, good.p, len);
    const float nan = NAN, inf = INFINITY;
    memcpy(c + dlta + 16 + 96 + 4 * 17, &nan, 4);
    resign(c, KEY_A, sizeof KEY_A);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_NON_FINITE);
    CHECK(odl_delta_parse(c, len, &pv, &why, NULL) == ODL_ERR_NUMERIC && why == ODL_DELTA_NON_FINITE);
    memcpy(c, good.p, len);
    memcpy(c + len - 80 - 8 - 4, &inf, 4); /* the last bias value */
    resign(c, KEY_A, sizeof KEY_A);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_NON_FINITE);

    /* another head: the last tensor claims another node */
    memcpy(c, good.p, len);
    put32(c + dlta + 16 + 80, (uint32_t)f.boundary + 1);
    resign(c, KEY_A, sizeof KEY_A);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_OUT_OF_SHAPE);
    /* a receiver whose head starts lower (two dense layers) */
    int32_t b2 = 0;
    CHECK_OK(odl_desc_boundary_for_unfreeze(&f.global.desc, 2, &b2, NULL));
    f.r.boundary = b2;
    CHECK(verify_copy(t, &f, good.p, len) == ODL_DELTA_OUT_OF_SHAPE);
    f.r.boundary = f.boundary;
    /* a layout version this odl does not read */
    memcpy(c, good.p, len);
    put32(c + dlta + 16, 2);
    resign(c, KEY_A, sizeof KEY_A);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_UNSUPPORTED);
    /* a non-zero reserved field in AUTH */
    memcpy(c, good.p, len);
    c[auth + 16 + 8] = 1;
    fix_crc(c, auth);
    CHECK(verify_copy(t, &f, c, len) == ODL_DELTA_MALFORMED);
    /* a delta made against another global model */
    uint8_t saved[32];
    memcpy(saved, f.r.base_id, 32);
    f.r.base_id[5] ^= 1;
    CHECK(verify_copy(t, &f, good.p, len) == ODL_DELTA_WRONG_BASE);
    memcpy(f.r.base_id, saved, 32);

    /* every truncation */
    bad = 0;
    for (size_t n = 0; n < len; n++)
        bad += verify_copy(t, &f, good.p, n) != ODL_DELTA_MALFORMED;
    CHECK(bad == 0);
    /* a byte more */
    uint8_t *longer = calloc(len + 16, 1);
    REQUIRE(longer);
    memcpy(longer, good.p, len);
    CHECK(verify_copy(t, &f, longer, len + 16) == ODL_DELTA_MALFORMED);
    free(longer);
    /* every byte flipped: never accepted */
    bad = 0;
    for (size_t i = 0; i < len; i++) {
        memcpy(c, good.p, len);
        c[i] ^= 0x01;
        bad += verify_copy(t, &f, c, len) == ODL_DELTA_ACCEPTED;
    }
    CHECK(bad == 0);

    /* the good one, then its replay, then an older one, then a newer one */
    CHECK(verify_copy(t, &f, good.p, len) == ODL_DELTA_ACCEPTED);
    CHECK(f.keys[0].last_seq == 5);
    CHECK(verify_copy(t, &f, good.p, len) == ODL_DELTA_REPLAY);
    CHECK_OK(encode(&f, 7, 3, 4, KEY_A, sizeof KEY_A, &other));
    CHECK(verify_copy(t, &f, other.p, other.len) == ODL_DELTA_REPLAY);
    mb_free(&other);
    CHECK_OK(encode(&f, 7, 3, 6, KEY_A, sizeof KEY_A, &other));
    CHECK(verify_copy(t, &f, other.p, other.len) == ODL_DELTA_ACCEPTED);
    CHECK(f.keys[0].last_seq == 6);
    mb_free(&other);
    /* device 9's own sequence is separate */
    CHECK_OK(encode(&f, 9, 3, 1, KEY_B, sizeof KEY_B, &other));
    CHECK(verify_copy(t, &f, other.p, other.len) == ODL_DELTA_ACCEPTED);
    mb_free(&other);

    /* the names are distinct */
    for (int i = 0; i < ODL_DELTA_N_REASONS; i++)
        for (int j = 0; j < i; j++)
            CHECK(strcmp(odl_delta_reason_name(i), odl_delta_reason_name(j)) != 0);
    CHECK(strcmp(odl_delta_reason_name(ODL_DELTA_N_REASONS), "?") == 0);
    free(c);
    mb_free(&good);
    fleet_free(&f);
}

static void test_encode_refusals(odl_test_ctx *t)
{
    fleet f;
    REQUIRE(fleet_make(&f));
    membuf m = {0};
    odl_diag d;
    odl_delta_info info = {7, 3, 1, 10, f.boundary};
    odl_writer w = mb_writer(&m);
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 15, &w, &d) == ODL_ERR_ARG);
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 65, &w, &d) == ODL_ERR_ARG);
    info.seq = 0;
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 32, &w, &d) == ODL_ERR_ARG);
    info.seq = 1;
    info.examples = 0;
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 32, &w, &d) == ODL_ERR_ARG);
    info.examples = 10;
    info.boundary = 1; /* a longer head (from the second convolution) is fine too */
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 32, &w, &d) == ODL_OK);
    mb_free(&m);
    w = mb_writer(&m);
    info.boundary = 10; /* past the last node */
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 32, &w, &d) == ODL_ERR_ARG);
    info.boundary = f.boundary;
    /* the device trained below the head */
    size_t n = 0;
    float *p = odl_model_param(f.device.m, 0, 0, &n);
    p[3] += 1.0f;
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 32, &w, &d) == ODL_ERR_SHAPE);
    CHECK(strstr(d.msg, "node 0") != NULL);
    p[3] -= 1.0f;
    /* a NaN in the head */
    p = odl_model_param(f.device.m, f.boundary, 1, &n);
    const float keep = p[2];
    p[2] = NAN;
    CHECK(odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 32, &w, &d) == ODL_ERR_NUMERIC);
    p[2] = keep;
    /* another architecture */
    test_model mlp;
    REQUIRE(model_make(&mlp, 0, 16, 3));
    CHECK(odl_delta_encode(mlp.m, f.global.m, &info, KEY_A, 32, &w, &d) == ODL_ERR_SHAPE);
    model_free(&mlp);
    /* a writer that fails at each call: an error, never a crash */
    for (int k = 1; k <= 8; k++) {
        membuf fm = {0};
        fm.fail_at = k;
        odl_writer fw = mb_writer(&fm);
        odl_status s = odl_delta_encode(f.device.m, f.global.m, &info, KEY_A, 32, &fw, &d);
        CHECK(s == ODL_ERR_IO || (s == ODL_OK && fm.calls < k));
        mb_free(&fm);
    }
    mb_free(&m);
    fleet_free(&f);
}

/* The identity changes with any parameter and any structure, not with the trainable flags. */
static void test_model_id(odl_test_ctx *t)
{
    test_model a, b;
    REQUIRE(model_make(&a, 1, 0, 1) && model_make_frozen(&b, 1, 0, 1, 7));
    uint8_t ia[32], ib[32];
    CHECK_OK(odl_delta_model_id(a.m, ia, NULL));
    CHECK_OK(odl_delta_model_id(b.m, ib, NULL));
    CHECK(memcmp(ia, ib, 32) == 0);
    size_t n = 0;
    float *p = odl_model_param(b.m, 3, 0, &n);
    REQUIRE(p && n);
    p[n - 1] = -p[n - 1] + 1e-3f;
    CHECK_OK(odl_delta_model_id(b.m, ib, NULL));
    CHECK(memcmp(ia, ib, 32) != 0);
    model_free(&b);
    REQUIRE(model_make(&b, 0, 64, 1));
    CHECK_OK(odl_delta_model_id(b.m, ib, NULL));
    CHECK(memcmp(ia, ib, 32) != 0);
    model_free(&a);
    model_free(&b);
}

static const odl_test_case cases[] = {
    {"sha256_nist", test_sha256_nist},
    {"sha256_python", test_sha256_python},
    {"hmac_rfc4231", test_hmac_rfc4231},
    {"hmac_python", test_hmac_python},
    {"ct_equal", test_ct_equal},
    {"round_trip", test_round_trip},
    {"layout", test_layout},
    {"refusals", test_refusals},
    {"encode_refusals", test_encode_refusals},
    {"model_id", test_model_id},
};

TEST_MAIN(cases)
