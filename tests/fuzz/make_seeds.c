/* Writes valid seed inputs for the fuzz targets into DIR: a model file, a
 * model file with learner-state chunks (of the shapes fuzz_state loads
 * into), and a store medium with committed versions. Fuzzing explores far
 * deeper from valid files than from noise (every chunk has a CRC). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/odl.h"
#include "odl/quant.h"

typedef struct membuf {
    uint8_t data[1 << 16];
    size_t len;
} membuf;

static odl_status mem_write(void *ctx, const void *p, size_t n)
{
    membuf *b = ctx;
    if (b->len + n > sizeof b->data)
        return ODL_ERR_IO;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return ODL_OK;
}

static int dump(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        return 1;
    }
    return fclose(f) != 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    static uint8_t arena_buf[1 << 20];
    odl_arena a;
    odl_arena_init(&a, arena_buf, sizeof arena_buf);
    odl_rng r;
    odl_rng_seed(&r, 3, 3);
    /* a small model: 8 inputs -> dense 8 -> relu -> dense 4 */
    odl_node_desc nodes[ODL_MLP_NODES(1)];
    odl_model_desc desc;
    odl_desc_init(&desc, nodes, ODL_MLP_NODES(1), 1, 1, 8);
    int32_t hidden[1] = {8};
    odl_desc_mlp(&desc, 1, 1, 8, hidden, 1, 4);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_model *m;
    if (odl_model_init(&m, &desc, &cfg, &a, NULL) != ODL_OK || odl_model_init_params(m, &r) != ODL_OK)
        return 1;
    static membuf f1, f2;
    odl_writer w = {mem_write, &f1, 0};
    odl_meta_kv meta[] = {{"arch", "mlp:8"}};
    if (odl_model_save(m, meta, 1, &w, NULL) != ODL_OK)
        return 1;
    /* learner state of the shapes fuzz_state uses */
    odl_replay_cfg rc = {50, 8, 4, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_INT8};
    odl_replay *rb;
    odl_ncm *ncm;
    odl_slda *slda;
    if (odl_replay_init(&rb, &rc, &a, NULL) != ODL_OK || odl_ncm_init(&ncm, 8, 4, &a, NULL) != ODL_OK ||
        odl_slda_init(&slda, 8, 4, 0.01f, &a, NULL) != ODL_OK)
        return 1;
    for (int k = 0; k < 80; k++) {
        float z[8];
        for (int j = 0; j < 8; j++)
            z[j] = odl_rng_normal(&r) + (float)(k % 4);
        odl_replay_add(rb, z, k % 4, &r, NULL);
        odl_ncm_add(ncm, z, k % 4);
        odl_slda_add(slda, z, k % 4);
    }
    odl_writer w2 = {mem_write, &f2, 0};
    if (odl_state_save_model_with_state(m, meta, 1, rb, NULL, ncm, slda, &w2, NULL) != ODL_OK)
        return 1;
    /* a graph model (format 1.1): 1x4x4 -> conv 2 (t1) -> relu (t2); t2 + t1
     * (t3); concat t3, t1 (t4); gap, flatten, dense 3 */
    odl_node_desc gnodes[8];
    odl_model_desc g;
    odl_desc_init(&g, gnodes, 8, 1, 4, 4);
    odl_desc_conv2d(&g, 2, 3, 1, 1);
    odl_desc_relu(&g);
    odl_node_desc n = odl_node_defaults(&g, ODL_LAYER_ADD);
    n.n_in = 2;
    n.in[0] = 2;
    n.in[1] = 1;
    odl_desc_add_node(&g, &n, NULL);
    n = odl_node_defaults(&g, ODL_LAYER_CONCAT);
    n.n_in = 2;
    n.in[0] = 3;
    n.in[1] = 1;
    odl_desc_add_node(&g, &n, NULL);
    odl_desc_gap(&g);
    odl_desc_flatten(&g);
    odl_desc_dense(&g, 3);
    g.softmax_output = 1;
    odl_model *gm;
    static membuf f3;
    odl_writer w3 = {mem_write, &f3, 0};
    if (odl_model_init(&gm, &g, &cfg, &a, NULL) != ODL_OK || odl_model_init_params(gm, &r) != ODL_OK ||
        odl_model_save(gm, NULL, 0, &w3, NULL) != ODL_OK)
        return 1;
    /* the same graph with INT8 layers (format 2 chunks: add, concat) */
    static membuf f4;
    {
        odl_qcalib qc;
        float ranges[2 * 8], x[4 * 16], work[4 * 3];
        for (int k = 0; k < 4 * 16; k++)
            x[k] = (float)((k * 7) % 11) / 11.0f;
        odl_mem_plan qp;
        odl_qmodel *q;
        odl_model_cfg c4 = cfg;
        c4.max_batch = 4;
        odl_model *gm4;
        odl_writer w4 = {mem_write, &f4, 0};
        if (odl_model_init(&gm4, &g, &c4, &a, NULL) != ODL_OK || odl_model_init_params(gm4, &r) != ODL_OK ||
            odl_qcalib_begin(&qc, &g, g.n_layers, ranges, NULL) != ODL_OK ||
            odl_qcalib_observe(&qc, gm4, x, 4, work, sizeof work / sizeof work[0], NULL) != ODL_OK ||
            odl_qmodel_plan(&g, g.n_layers, 1, &qp, NULL) != ODL_OK ||
            odl_qmodel_init(&q, &g, g.n_layers, 1, &a, NULL) != ODL_OK ||
            odl_qmodel_quantize(q, gm4, &qc, NULL) != ODL_OK || odl_qmodel_save(q, gm4, NULL, 0, &w4, NULL) != ODL_OK)
            return 1;
    }
    /* a store medium (the layout fuzz_store uses) with three commits, one rollback */
    enum { CAP = 8192 };
    static uint8_t mem[CAP];
    memset(mem, 0xFF, sizeof mem);
    odl_store_ram ram = {mem, CAP, 0};
    odl_store_flash fl = {odl_store_ram_read, odl_store_ram_write, NULL, NULL, &ram, CAP, 0, 4, 0, 0};
    odl_store_io io;
    odl_store *s;
    uint32_t id;
    if (odl_store_flash_io(&fl, &io, NULL) != ODL_OK || odl_store_open(&s, &io, &a, NULL) != ODL_OK)
        return 1;
    for (int k = 0; k < 3; k++) {
        odl_store_meta sm;
        odl_store_meta_init(&sm, "seed", "a seed version", (uint64_t)k + 1);
        odl_store_meta_add_metric(&sm, "old", 0.5f + 0.1f * k, NULL);
        if (odl_store_commit(s, f1.data, 200 + 100 * (size_t)k, &sm, &id, NULL) != ODL_OK)
            return 1;
    }
    odl_store_rollback(s, 1, 9, NULL, NULL);
    char d1[512], d2[512], d3[512];
    snprintf(d1, sizeof d1, "%s/corpus_model", argv[1]);
    snprintf(d2, sizeof d2, "%s/corpus_state", argv[1]);
    snprintf(d3, sizeof d3, "%s/corpus_store", argv[1]);
    return dump(d1, "seed.odl", f1.data, f1.len) || dump(d1, "seed-graph.odl", f3.data, f3.len) ||
           dump(d1, "seed-graph-int8.odl", f4.data, f4.len) ||
           dump(d2, "seed-state.odl", f2.data, f2.len) ||
           dump(d3, "seed-medium", mem, CAP);
}
