/* Head-delta costs (docs/fleet-transport.md): message bytes, and the time
 * to encode and to verify one message, for edge-cnn's head (K = 0: the
 * last dense layer) or a longer one (K = 1: the last two).
 *
 *   bench_delta [K] [REPEAT]      (defaults 0, 2000)
 *
 * For instruction counts of one verify, run it under callgrind with
 * REPEAT 1 and collection only inside odl_delta_verify:
 *   valgrind --tool=callgrind --toggle-collect=odl_delta_verify build/bench/bench_delta 0 1 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odl/odl.h"
#include "odl/delta.h"

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static odl_status mem_write(void *ctx, const void *data, size_t n)
{
    membuf *b = ctx;
    if (n > b->cap - b->len)
        return ODL_ERR_IO;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return ODL_OK;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static odl_model *edge_cnn(odl_node_desc *nodes, odl_model_desc *desc, uint64_t seed)
{
    odl_desc_init(desc, nodes, ODL_EDGE_CNN_NODES, 1, 28, 28);
    odl_desc_edge_cnn(desc, 1, 28, 28, 10);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan p;
    odl_model_plan(desc, &cfg, &p, NULL);
    odl_arena a;
    odl_arena_init(&a, malloc(p.total), p.total);
    odl_model *m = NULL;
    if (odl_model_init(&m, desc, &cfg, &a, NULL) != ODL_OK)
        return NULL;
    odl_rng r;
    odl_rng_seed(&r, seed, 1);
    odl_model_init_params(m, &r);
    return m;
}

int main(int argc, char **argv)
{
    const int32_t unfreeze = argc > 1 ? atoi(argv[1]) : 0;
    const long repeat = argc > 2 ? atol(argv[2]) : 2000;
    odl_node_desc gn[ODL_EDGE_CNN_NODES], dn[ODL_EDGE_CNN_NODES];
    odl_model_desc gd, dd;
    odl_model *global = edge_cnn(gn, &gd, 1), *device = edge_cnn(dn, &dd, 1);
    if (!global || !device || repeat < 1)
        return 1;
    int32_t boundary = 0;
    odl_desc_boundary_for_unfreeze(&gd, unfreeze + 1, &boundary, NULL);
    for (int32_t i = boundary; i < gd.n_layers; i++)
        for (int w = 0; w < 2; w++) {
            size_t n = 0;
            float *p = odl_model_param(device, i, w, &n);
            for (size_t k = 0; p && k < n; k++)
                p[k] += 1e-3f * (float)(k % 7);
        }
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + 3);
    odl_delta_key keys[1];
    memset(keys, 0, sizeof keys);
    keys[0].device_id = 42;
    keys[0].key_len = 32;
    memcpy(keys[0].key, key, 32);
    odl_delta_receiver r;
    memset(&r, 0, sizeof r);
    r.global = global;
    r.boundary = boundary;
    r.round = 1;
    r.keys = keys;
    r.n_keys = 1;
    odl_diag d;
    size_t bytes = 0;
    if (odl_delta_size(global, boundary, &bytes, &d) != ODL_OK || odl_delta_model_id(global, r.base_id, &d) != ODL_OK)
        return 1;
    membuf b = {malloc(bytes), 0, bytes};
    odl_delta_info info = {42, 1, 1, 20, boundary};
    double t0 = now();
    long enc_reps = repeat < 200 ? repeat : 200;
    for (long i = 0; i < enc_reps; i++) {
        b.len = 0;
        odl_writer w = {mem_write, &b, 0};
        if (odl_delta_encode(device, global, &info, key, 32, &w, &d) != ODL_OK) {
            fprintf(stderr, "encode: %s\n", d.msg);
            return 1;
        }
    }
    const double t_enc = (now() - t0) / (double)enc_reps;
    size_t values = 0;
    for (int32_t i = boundary; i < gd.n_layers; i++)
        for (int w = 0; w < 2; w++) {
            size_t n = 0;
            if (odl_model_param_const(global, i, w, &n))
                values += n;
        }
    odl_delta_view v;
    odl_delta_reason why;
    t0 = now();
    for (long i = 0; i < repeat; i++) {
        keys[0].last_seq = 0;
        if (odl_delta_verify(&r, b.p, b.len, &v, &why, &d) != ODL_OK) {
            fprintf(stderr, "verify: %s\n", d.msg);
            return 1;
        }
    }
    const double t_ver = (now() - t0) / (double)repeat;
    printf("edge-cnn head from node %d (unfreeze %d): %zu values, %zu raw bytes; message %zu bytes "
           "(+%zu, %.1f%%); encode %.1f us (identity hash of the whole model included), verify %.1f us\n",
           (int)boundary, (int)unfreeze, values, values * 4, b.len, b.len - values * 4,
           100.0 * (double)(b.len - values * 4) / (double)(values * 4), t_enc * 1e6, t_ver * 1e6);
    free(b.p);
    return 0;
}
