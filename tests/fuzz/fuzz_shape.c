/* libFuzzer target: a model paired with data of another shape. The input
 * chooses a small model (its input shape and width) and holds a dataset
 * file (CSV or IDX, plain or gzip) read under a small memory limit; the
 * tool's pairing code (cli_fit_shape, the plan check against the memory
 * limit, cli_evaluate) and the learner then run on whatever was accepted.
 * Data whose samples do not match the model must be refused before any
 * sample reaches it: a mismatch that slipped through reads past a buffer
 * here, which ASan reports. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "odl/learner.h"
#include "odl/odl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int put(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Runs the learner over the accepted data: seeds it and predicts each sample. */
static void run_learner(odl_model *m, const odl_dataset *ds)
{
    odl_learner_cfg lc = odl_learner_cfg_defaults();
    lc.replay.capacity = 8;
    lc.guard_size = 4;
    odl_mem_plan plan;
    odl_diag d;
    if (odl_learner_plan(&lc, m, &plan, &d) != ODL_OK)
        return;
    void *buf = cli_alloc("learner plan", plan.total);
    if (!buf)
        return;
    odl_arena a;
    odl_arena_init(&a, buf, plan.total);
    odl_learner *L;
    odl_rng rng;
    odl_rng_seed(&rng, 1, 2);
    if (odl_learner_init(&L, &lc, m, &a, &d) == ODL_OK) {
        const size_t in = (size_t)ds->c * ds->h * ds->w;
        const int32_t n = ds->n < 16 ? ds->n : 16;
        (void)odl_learner_seed_old(L, ds->x, ds->y, n, &rng, &d);
        for (int32_t k = 0; k < n; k++) {
            int32_t c;
            float conf;
            (void)odl_learner_predict(L, ds->x + (size_t)k * in, &c, &conf, &d);
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    /* bytes 0-3: the model's input c, h, w (1..4, 1..16, 1..16) and hidden width */
    const int32_t c = 1 + data[0] % 4, h = 1 + data[1] % 16, w = 1 + data[2] % 16, units = 1 + data[3] % 32;
    /* byte 4: the data's kind and the memory limit */
    const int kind = data[4] & 3; /* 0 csv, 1 csv.gz name, 2 idx, 3 idx.gz name */
    cli_max_memory = ((size_t)1 << 12) << (data[4] >> 4); /* 4 KiB .. 128 MiB */
    const uint8_t *body = data + 5;
    const size_t n = size - 5;

    odl_node_desc nodes[ODL_MLP_NODES(1)];
    odl_model_desc desc;
    int32_t hidden[1] = {units};
    if (odl_desc_init(&desc, nodes, ODL_MLP_NODES(1), c, h, w) != ODL_OK ||
        odl_desc_mlp(&desc, c, h, w, hidden, 1, 10) != ODL_OK)
        return 0;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 4;
    odl_mem_plan plan;
    if (odl_model_plan(&desc, &cfg, &plan, NULL) != ODL_OK)
        return 0;
    void *mbuf = cli_alloc("model plan", plan.total);
    if (!mbuf)
        return 0;
    odl_arena a;
    odl_arena_init(&a, mbuf, plan.total);
    odl_model *m;
    odl_rng rng;
    odl_rng_seed(&rng, 3, 4);
    if (odl_model_init(&m, &desc, &cfg, &a, NULL) != ODL_OK) {
        free(mbuf);
        return 0;
    }
    odl_model_init_params(m, &rng);

    char base[64], path[128], lab[128];
    snprintf(base, sizeof base, "/tmp/odl-fuzz-shape-%ld", (long)getpid());
    static const char *const suffix[4] = {".csv", ".csv.gz", "-images-idx3-ubyte", "-images-idx3-ubyte.gz"};
    snprintf(path, sizeof path, "%s%s", base, suffix[kind]);
    snprintf(lab, sizeof lab, "%s-labels-idx1-ubyte%s", base, kind == 3 ? ".gz" : "");
    int ok = 1;
    if (kind >= 2) {
        /* the first body byte splits images from labels */
        size_t cut = n ? (size_t)body[0] * n / 256 : 0;
        if (cut < 1)
            cut = 1;
        ok = put(path, body + 1, cut - 1) && put(lab, body + cut, n - cut);
    } else {
        ok = put(path, body, n);
    }
    odl_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (ok && cli_load_data(path, ODL_SPLIT_AUTO, ODL_SPLIT_TEST, NULL, NULL, 0, &ds) == 0) {
        if (cli_fit_shape(&ds, &desc, path) == 0) {
            cli_eval ev;
            if (cli_evaluate(m, &ds, 4, &ev) == 0)
                cli_eval_free(&ev);
            run_learner(m, &ds);
        }
        odl_dataset_free(&ds);
    }
    remove(path);
    remove(lab);
    free(mbuf);
    return 0;
}
