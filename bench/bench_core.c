/* bench_core: per-step times and training throughput of edge-cnn, as JSON
 * (docs/protocol.md T1, the odl side; bench/run_t1.sh runs it beside PyTorch).
 * Not a test: timings vary with the machine. Median of many runs after a
 * warm-up.
 *
 * Usage: bench_core [--data DIR] [--reps N]
 *        bench_core --row ROW [--iters N] [--data DIR]
 * --row runs one T1 row N times (after one warm-up call) inside
 * bench_row_iters() and prints nothing else, for
 *   valgrind --tool=callgrind --toggle-collect=bench_row_iters
 * whose instruction count / N is the row's cost per call. ROW is one of
 * raw_b1 raw_b16 latent_b1 latent_b16 infer_b1 full_b16 train_b64. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odl/data.h"
#include "odl/odl.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench_model {
    void *buf;
    odl_model *m;
    odl_mem_plan plan;
} bench_model;

static int make(bench_model *bm, int head_only, odl_model_mode mode, int32_t batch)
{
    odl_node_desc d_nodes[64];
    odl_model_desc d;
    odl_desc_init(&d, d_nodes, 64, 1, 1, 1);
    odl_desc_edge_cnn(&d, 1, 28, 28, 10);
    if (head_only)
        odl_desc_freeze_below(&d, 9);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = mode;
    cfg.max_batch = batch;
    odl_diag dg;
    if (odl_model_plan(&d, &cfg, &bm->plan, &dg) != ODL_OK)
        return fprintf(stderr, "bench: %s\n", dg.msg), 1;
    bm->buf = malloc(bm->plan.total);
    odl_arena a;
    odl_arena_init(&a, bm->buf, bm->plan.total);
    odl_rng r;
    odl_rng_seed(&r, 0, 1);
    if (odl_model_init(&bm->m, &d, &cfg, &a, &dg) != ODL_OK || odl_model_init_params(bm->m, &r) != ODL_OK)
        return fprintf(stderr, "bench: %s\n", dg.msg), 1;
    return 0;
}

typedef enum { ROW_TRAIN, ROW_INFER } row_kind;

static void call_row(bench_model *bm, row_kind kind, int32_t from, const float *x, const int32_t *y, int32_t n,
                     odl_rng *r)
{
    const float *out;
    float loss;
    if (kind == ROW_TRAIN)
        odl_model_train_step(bm->m, from, x, y, n, r, &loss, NULL);
    else
        odl_model_forward(bm->m, from, x, n, &out, NULL);
}

/* median microseconds of one call */
static double time_row(bench_model *bm, row_kind kind, int32_t from, const float *x, const int32_t *y, int32_t n,
                       int reps)
{
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int i = -reps / 10 - 1; i < reps; i++) {
        double t0 = now();
        call_row(bm, kind, from, x, y, n, &r);
        double dt = now() - t0;
        if (i >= 0)
            t[i] = dt;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = t[reps / 2] * 1e6;
    free(t);
    return med;
}

/* The region callgrind counts (--toggle-collect=bench_row_iters). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
void bench_row_iters(bench_model *bm, row_kind kind, int32_t from, const float *x, const int32_t *y, int32_t n,
                     int iters, odl_rng *r);
void bench_row_iters(bench_model *bm, row_kind kind, int32_t from, const float *x, const int32_t *y, int32_t n,
                     int iters, odl_rng *r)
{
    for (int i = 0; i < iters; i++)
        call_row(bm, kind, from, x, y, n, r);
}

static int run_one_row(const char *row, int iters, const odl_dataset *ds)
{
    static const struct {
        const char *name;
        int head_only;
        odl_model_mode mode;
        int32_t batch, from;
        row_kind kind;
    } rows[] = {
        {"raw_b1", 1, ODL_MODE_TRAIN, 1, 0, ROW_TRAIN},
        {"raw_b16", 1, ODL_MODE_TRAIN, 16, 0, ROW_TRAIN},
        {"latent_b1", 1, ODL_MODE_TRAIN, 1, 9, ROW_TRAIN},
        {"latent_b16", 1, ODL_MODE_TRAIN, 16, 9, ROW_TRAIN},
        {"infer_b1", 0, ODL_MODE_INFER, 1, 0, ROW_INFER},
        {"full_b16", 0, ODL_MODE_TRAIN, 16, 0, ROW_TRAIN},
        {"train_b64", 0, ODL_MODE_TRAIN, 64, 0, ROW_TRAIN},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (strcmp(rows[k].name, row))
            continue;
        if (ds->n < rows[k].batch)
            return fprintf(stderr, "bench: %d images, row %s needs %d\n", (int)ds->n, row, (int)rows[k].batch), 1;
        bench_model bm;
        if (make(&bm, rows[k].head_only, rows[k].mode, rows[k].batch))
            return 1;
        const float *x = ds->x;
        float *z = NULL;
        if (rows[k].from > 0) {
            z = malloc(sizeof(float) * 64 * (size_t)rows[k].batch);
            odl_model_forward_range(bm.m, 0, rows[k].from, ds->x, rows[k].batch, z, NULL);
            x = z;
        }
        odl_rng r;
        odl_rng_seed(&r, 1, 1);
        call_row(&bm, rows[k].kind, rows[k].from, x, ds->y, rows[k].batch, &r); /* warm-up */
        bench_row_iters(&bm, rows[k].kind, rows[k].from, x, ds->y, rows[k].batch, iters, &r);
        free(z);
        free(bm.buf);
        return 0;
    }
    fprintf(stderr, "bench: unknown row '%s'\n", row);
    return 2;
}

int main(int argc, char **argv)
{
    const char *data = "/usr/share/datasets/fashion-mnist";
    const char *row = NULL;
    int reps = 200, iters = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--row") && i + 1 < argc)
            row = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_core [--data DIR] [--reps N]\n"
                            "       bench_core --row ROW [--iters N] [--data DIR]\n");
            return 2;
        }
    }
    if (reps < 5)
        reps = 5;
    if (iters < 1)
        iters = 1;
    /* real images when present, otherwise random ones of the same shape */
    odl_dataset ds;
    memset(&ds, 0, sizeof ds);
    odl_data_opts o = odl_data_opts_defaults();
    o.limit = row ? 64 : 4096;
    odl_diag dg;
    int real = odl_data_load(data, &o, &ds, &dg) == ODL_OK;
    if (!real || ds.n < 64) {
        odl_dataset_free(&ds);
        memset(&ds, 0, sizeof ds);
        real = 0;
        ds.n = 64;
        ds.x = calloc(64 * 784, sizeof(float));
        ds.y = calloc(64, sizeof(int32_t));
        for (int i = 0; i < 64 * 784; i++)
            ds.x[i] = (float)(i % 255) / 255.0f;
        for (int i = 0; i < 64; i++)
            ds.y[i] = i % 10;
    }
    if (row) {
        int rc = run_one_row(row, iters, &ds);
        odl_dataset_free(&ds);
        return rc;
    }
    float z[16 * 64];
    bench_model head1, head16, infer1, full16;
    if (make(&head1, 1, ODL_MODE_TRAIN, 1) || make(&head16, 1, ODL_MODE_TRAIN, 16) ||
        make(&infer1, 0, ODL_MODE_INFER, 1) || make(&full16, 0, ODL_MODE_TRAIN, 16))
        return 1;
    odl_model_forward_range(head16.m, 0, 9, ds.x, 16, z, NULL);

    double r_raw1 = time_row(&head1, ROW_TRAIN, 0, ds.x, ds.y, 1, reps);
    double r_raw16 = time_row(&head16, ROW_TRAIN, 0, ds.x, ds.y, 16, reps);
    double r_lat1 = time_row(&head1, ROW_TRAIN, 9, z, ds.y, 1, reps * 10);
    double r_lat16 = time_row(&head16, ROW_TRAIN, 9, z, ds.y, 16, reps * 10);
    double r_inf1 = time_row(&infer1, ROW_INFER, 0, ds.x, ds.y, 1, reps);
    double r_full16 = time_row(&full16, ROW_TRAIN, 0, ds.x, ds.y, 16, reps);

    /* base training throughput: batch-64 steps over the loaded images (a
     * warm-up pass, then every step timed); images/s from the median step
     * (robust on a shared machine) and from the total wall time */
    bench_model full64;
    if (make(&full64, 0, ODL_MODE_TRAIN, 64))
        return 1;
    odl_rng r;
    odl_rng_seed(&r, 2, 1);
    const int32_t nb = ds.n / 64;
    const int32_t steps = 64;
    double *ts = malloc(sizeof(double) * steps);
    float loss;
    for (int32_t s = 0; s < nb && s < 8; s++)
        odl_model_train_step(full64.m, 0, ds.x + (size_t)s * 64 * 784, ds.y + (size_t)s * 64, 64, &r, &loss, NULL);
    double t_all = now();
    for (int32_t s = 0; s < steps; s++) {
        double t0 = now();
        odl_model_train_step(full64.m, 0, ds.x + (size_t)(s % nb) * 64 * 784, ds.y + (size_t)(s % nb) * 64, 64, &r,
                             &loss, NULL);
        ts[s] = now() - t0;
    }
    t_all = now() - t_all;
    qsort(ts, (size_t)steps, sizeof(double), cmp_double);
    double ips = 64.0 / ts[steps / 2];
    double ips_wall = (double)steps * 64 / t_all;
    free(ts);

    printf("{\"bench\": \"odl core\", \"data\": \"%s\", \"reps\": %d, \"threads\": 1,\n", real ? "fashion-mnist" : "synthetic",
           reps);
    printf(" \"median_us\": {\"head_step_raw_b1\": %.1f, \"head_step_raw_b16\": %.1f, \"head_step_latent_b1\": %.2f, "
           "\"head_step_latent_b16\": %.2f, \"inference_b1\": %.1f, \"full_step_b16\": %.1f},\n",
           r_raw1, r_raw16, r_lat1, r_lat16, r_inf1, r_full16);
    printf(" \"base_training_images_per_second\": %.1f, \"base_training_images_per_second_wall\": %.1f,\n", ips,
           ips_wall);
    printf(" \"plan_bytes\": {\"inference_b1\": %zu, \"head_train_b16\": %zu, \"full_train_b16\": %zu}}\n",
           infer1.plan.total, head16.plan.total, full16.plan.total);
    free(head1.buf); free(head16.buf); free(infer1.buf); free(full16.buf); free(full64.buf);
    odl_dataset_free(&ds);
    return 0;
}
