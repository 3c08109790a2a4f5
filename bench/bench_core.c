/* bench_core: per-step times and training throughput of edge-cnn, as JSON.
 * Not a test: timings vary with the machine. Median of many runs after a
 * warm-up. Usage: bench_core [--data DIR] [--reps N] */
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
    odl_model_desc d;
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

/* median microseconds of one call */
static double time_row(bench_model *bm, row_kind kind, int32_t from, const float *x, const int32_t *y, int32_t n,
                       int reps)
{
    odl_rng r;
    odl_rng_seed(&r, 1, 1);
    double *t = malloc(sizeof(double) * (size_t)reps);
    const float *out;
    float loss;
    for (int i = -reps / 10 - 1; i < reps; i++) {
        double t0 = now();
        if (kind == ROW_TRAIN)
            odl_model_train_step(bm->m, from, x, y, n, &r, &loss, NULL);
        else
            odl_model_forward(bm->m, from, x, n, &out, NULL);
        double dt = now() - t0;
        if (i >= 0)
            t[i] = dt;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = t[reps / 2] * 1e6;
    free(t);
    return med;
}

int main(int argc, char **argv)
{
    const char *data = "/usr/share/datasets/fashion-mnist";
    int reps = 200;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_core [--data DIR] [--reps N]\n");
            return 2;
        }
    }
    if (reps < 5)
        reps = 5;
    /* real images when present, otherwise random ones of the same shape */
    odl_dataset ds;
    memset(&ds, 0, sizeof ds);
    odl_data_opts o = odl_data_opts_defaults();
    o.limit = 4096;
    odl_diag dg;
    int real = odl_data_load(data, &o, &ds, &dg) == ODL_OK;
    if (!real) {
        ds.n = 64;
        ds.x = calloc(64 * 784, sizeof(float));
        ds.y = calloc(64, sizeof(int32_t));
        for (int i = 0; i < 64 * 784; i++)
            ds.x[i] = (float)(i % 255) / 255.0f;
        for (int i = 0; i < 64; i++)
            ds.y[i] = i % 10;
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

    /* base training throughput: batch 64 over the loaded images */
    bench_model full64;
    if (make(&full64, 0, ODL_MODE_TRAIN, 64))
        return 1;
    odl_rng r;
    odl_rng_seed(&r, 2, 1);
    int32_t steps = ds.n / 64 > 0 ? ds.n / 64 : 1;
    if (steps > 64)
        steps = 64;
    float loss;
    double t0 = now();
    for (int32_t s = 0; s < steps; s++)
        odl_model_train_step(full64.m, 0, ds.x + (size_t)(s % (ds.n / 64 > 0 ? ds.n / 64 : 1)) * 64 * 784,
                             ds.y + (size_t)(s % (ds.n / 64 > 0 ? ds.n / 64 : 1)) * 64, 64, &r, &loss, NULL);
    double ips = (double)steps * 64 / (now() - t0);

    printf("{\"bench\": \"odl core\", \"data\": \"%s\", \"reps\": %d, \"threads\": 1,\n", real ? "fashion-mnist" : "synthetic",
           reps);
    printf(" \"median_us\": {\"head_step_raw_b1\": %.1f, \"head_step_raw_b16\": %.1f, \"head_step_latent_b1\": %.2f, "
           "\"head_step_latent_b16\": %.2f, \"inference_b1\": %.1f, \"full_step_b16\": %.1f},\n",
           r_raw1, r_raw16, r_lat1, r_lat16, r_inf1, r_full16);
    printf(" \"base_training_images_per_second\": %.1f,\n", ips);
    printf(" \"plan_bytes\": {\"inference_b1\": %zu, \"head_train_b16\": %zu, \"full_train_b16\": %zu}}\n",
           infer1.plan.total, head16.plan.total, full16.plan.total);
    free(head1.buf); free(head16.buf); free(infer1.buf); free(full16.buf); free(full64.buf);
    odl_dataset_free(&ds);
    return 0;
}
