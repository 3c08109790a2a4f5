/* libFuzzer target: head-delta messages (odl/delta.h) against a receiver
 * with a fixed global model (an MLP 4 -> 5 -> 3, head = the last dense
 * layer) and three device keys. Each input is verified as it is, parsed
 * without keys, and verified again "re-signed": its DLTA CRC mended and its
 * MAC replaced by the right one for the device it names, as a device with a
 * bug (not a forger) would send it, so the fuzzer reaches the checks behind
 * the signature. Invariants: accepted iff ODL_OK and reason ACCEPTED; an
 * accepted message's values are finite, its tensors are the head's and the
 * device's sequence number moved to it; a refusal changes no key; a
 * refusal's reason is a known one.
 *
 * Built with -DODL_FUZZ_DELTA_SEEDS (no libFuzzer), it writes seed messages
 * for the same receiver into the directory given: scripts/fuzz.sh does that. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/odl.h"
#include "odl/delta.h"

#define N_KEYS 3

typedef struct fixture {
    odl_node_desc nodes[8];
    odl_model_desc desc;
    uint8_t *arena_buf;
    odl_model *global, *device;
    int32_t boundary;
    uint8_t base_id[32];
    odl_delta_key keys[N_KEYS];
} fixture;

static odl_model *build(fixture *f, size_t *off, uint64_t seed)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan p;
    if (odl_model_plan(&f->desc, &cfg, &p, NULL) != ODL_OK)
        return NULL;
    odl_arena a;
    odl_arena_init(&a, f->arena_buf + *off, p.total);
    *off += p.total;
    odl_model *m = NULL;
    if (odl_model_init(&m, &f->desc, &cfg, &a, NULL) != ODL_OK)
        return NULL;
    odl_rng r;
    odl_rng_seed(&r, seed, 1);
    odl_model_init_params(m, &r);
    return m;
}

static fixture *fixture_get(void)
{
    static fixture f;
    static int ready;
    if (ready)
        return &f;
    odl_desc_init(&f.desc, f.nodes, 8, 4, 1, 1);
    const int32_t hidden[1] = {5};
    odl_desc_mlp(&f.desc, 4, 1, 1, hidden, 1, 3);
    f.arena_buf = malloc(1 << 20);
    size_t off = 0;
    f.global = build(&f, &off, 1);
    f.device = build(&f, &off, 1);
    odl_desc_boundary_for_unfreeze(&f.desc, 1, &f.boundary, NULL);
    /* the device moved its head */
    const odl_model_desc *md = odl_model_get_desc(f.device);
    for (int32_t i = f.boundary; i < md->n_layers; i++)
        for (int w = 0; w < 2; w++) {
            size_t n = 0;
            float *p = odl_model_param(f.device, i, w, &n);
            for (size_t k = 0; p && k < n; k++)
                p[k] += 0.125f * (float)((int)(k % 5) - 2);
        }
    odl_delta_model_id(f.global, f.base_id, NULL);
    for (int i = 0; i < N_KEYS; i++) {
        f.keys[i].device_id = (uint32_t)(2 * i + 1); /* 1, 3, 5 */
        f.keys[i].key_len = (uint32_t)(16 + 16 * i);
        for (uint32_t k = 0; k < f.keys[i].key_len; k++)
            f.keys[i].key[k] = (uint8_t)(31 * k + 7 * (uint32_t)i + 1);
    }
    ready = 1;
    return &f;
}

static void check(int cond)
{
    if (!cond)
        abort();
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

static void verify_once(fixture *f, const uint8_t *msg, size_t len, uint32_t round)
{
    odl_delta_key keys[N_KEYS];
    memcpy(keys, f->keys, sizeof keys);
    odl_delta_receiver r;
    memset(&r, 0, sizeof r);
    r.global = f->global;
    r.boundary = f->boundary;
    r.round = round;
    memcpy(r.base_id, f->base_id, 32);
    r.keys = keys;
    r.n_keys = N_KEYS;
    odl_delta_view v;
    odl_delta_reason why = ODL_DELTA_ACCEPTED;
    odl_diag d;
    odl_status s = odl_delta_verify(&r, msg, len, &v, &why, &d);
    check(why >= 0 && why < ODL_DELTA_N_REASONS);
    if (s != ODL_OK) {
        check(s == ODL_EVENT_REJECTED && why != ODL_DELTA_ACCEPTED);
        check(memcmp(keys, f->keys, sizeof keys) == 0);
        return;
    }
    check(why == ODL_DELTA_ACCEPTED && v.signed_ && v.info.round == round);
    int found = 0;
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].device_id == v.info.device_id) {
            check(keys[i].last_seq == v.info.seq && f->keys[i].last_seq < v.info.seq);
            found = 1;
        }
    check(found);
    float vals[64];
    for (int32_t i = 0; i < v.n_tensors; i++) {
        int32_t node = -1, which = -1;
        size_t count = 0;
        check(odl_delta_tensor_info(&v, i, &node, &which, &count, NULL) == ODL_OK);
        size_t n = 0;
        check(odl_model_param_const(f->global, node, which, &n) != NULL && n == count && count <= 64);
        check(odl_delta_tensor_copy(&v, i, vals, count, NULL) == ODL_OK);
        for (size_t k = 0; k < count; k++)
            check(isfinite(vals[k]));
    }
    /* the same message again is a replay */
    check(odl_delta_verify(&r, msg, len, &v, &why, &d) == ODL_EVENT_REJECTED && why == ODL_DELTA_REPLAY);
}

/* DLTA CRC mended, the MAC of the device the message names, AUTH's CRC
 * mended: what a device with a bug would send. 0 when the framing is not
 * header + DLTA + AUTH + END within the buffer. */
static int resign(fixture *f, uint8_t *m, size_t len)
{
    size_t pos = 16;
    size_t at[3];
    for (int k = 0; k < 3; k++) {
        if (len < pos || len - pos < 16)
            return 0;
        const uint64_t n = get64(m + pos + 8);
        if (n > len - pos - 16)
            return 0;
        at[k] = pos;
        pos += 16 + (size_t)((n + 15) & ~(uint64_t)15);
        if (pos > len)
            return 0;
    }
    if (get64(m + at[1] + 8) != 48 || get64(m + at[0] + 8) < 8)
        return 0;
    for (int k = 0; k < 2; k++) {
        const size_t c = at[k];
        uint32_t crc = odl_crc32(0, m + c, 4);
        crc = odl_crc32(crc, m + c + 8, 8);
        crc = odl_crc32(crc, m + c + 16, (size_t)get64(m + c + 8));
        put32(m + c + 4, crc);
        if (k == 0) {
            const uint32_t dev = get32(m + at[0] + 16 + 4);
            for (int i = 0; i < N_KEYS; i++)
                if (f->keys[i].device_id == dev)
                    odl_hmac_sha256(f->keys[i].key, f->keys[i].key_len, m, at[1], m + at[1] + 32);
        }
    }
    return 1;
}

#ifndef ODL_FUZZ_DELTA_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fixture *f = fixture_get();
    uint8_t *m = malloc(size ? size : 1);
    if (!m)
        return 0;
    memcpy(m, data, size);
    verify_once(f, m, size, 2);
    odl_delta_view v;
    odl_delta_reason why;
    odl_status s = odl_delta_parse(m, size, &v, &why, NULL);
    check((s == ODL_OK) == (why == ODL_DELTA_ACCEPTED));
    if (s == ODL_OK)
        for (int32_t i = 0; i < v.n_tensors; i++)
            check(odl_delta_tensor_info(&v, i, NULL, NULL, NULL, NULL) == ODL_OK);
    if (resign(f, m, size))
        verify_once(f, m, size, 2);
    free(m);
    return 0;
}
#else
typedef struct membuf {
    uint8_t p[4096];
    size_t len;
} membuf;

static odl_status mem_write(void *ctx, const void *data, size_t n)
{
    membuf *b = ctx;
    if (n > sizeof b->p - b->len)
        return ODL_ERR_IO;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return ODL_OK;
}

static int save(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n) {
        if (fp)
            fclose(fp);
        return 1;
    }
    return fclose(fp) != 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_delta_seeds DIR\n");
        return 2;
    }
    fixture *f = fixture_get();
    int rc = 0;
    const struct {
        const char *name;
        uint32_t device, round;
        uint64_t seq;
        int key;
    } seeds[] = {{"good", 1, 2, 1, 0}, {"good3", 3, 2, 7, 1}, {"stale", 5, 1, 2, 2}, {"unknown", 2, 2, 1, 0},
                 {"wrongkey", 3, 2, 1, 0}};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        membuf b = {{0}, 0};
        odl_writer w = {mem_write, &b, 0};
        odl_delta_info info = {seeds[i].device, seeds[i].round, seeds[i].seq, 3, f->boundary};
        const odl_delta_key *k = &f->keys[seeds[i].key];
        if (odl_delta_encode(f->device, f->global, &info, k->key, k->key_len, &w, NULL) != ODL_OK)
            return 1;
        rc |= save(argv[1], seeds[i].name, b.p, b.len);
        if (i == 0) {
            /* unsigned: AUTH cut out */
            const size_t auth = b.len - 80;
            memmove(b.p + auth, b.p + auth + 64, 16);
            rc |= save(argv[1], "unsigned", b.p, auth + 16);
        }
    }
    return rc;
}
#endif
