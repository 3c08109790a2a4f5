/* bench_graph: batch-1 times of a graph model read from an .odl file (an
 * imported MobileNetV2, say), one thread, as JSON; bench/odl_speed.py runs it
 * beside PyTorch. Not a test: timings vary with the machine. Each row is the
 * median of --reps calls after a warm-up of a tenth as many.
 *
 *   infer_b1  odl_model_forward of the whole model on one image (inference
 *             configuration, frozen weights used in place from the file's
 *             buffer, as odl adapt and the learner hold the base);
 *   head_b1   a head step from a raw image, as odl's learner does it: the
 *             frozen base in that inference configuration runs to the freeze
 *             boundary (odl_model_forward_range), then the head, a model of
 *             its own (odl_desc_tail) in training configuration, does
 *             forward_train, softmax cross-entropy, backward and an Adam step.
 *
 * Also prints the activation planner's figures (odl_model_plan_activations:
 * peak, naive sum, lower bound) for inference at batch 1 and for training the
 * head at batch 1 and 16, and the logits of the image, so a caller can check
 * that the weights are the ones it compares with.
 *
 * Usage: bench_graph MODEL.odl [--reps N] [--input RAW] [--head-from T]
 *        bench_graph MODEL.odl --row infer_b1|head_b1 [--iters N]
 * RAW: one image as little-endian float32, C*H*W values (default: uniform
 * [0, 1) from a fixed seed). --head-from: the freeze boundary (default: the
 * one before the last dense layer, as `odl import --head auto`). --row runs
 * one row N times inside bench_graph_iters(), for
 *   valgrind --tool=callgrind --toggle-collect=bench_graph_iters
 * or perf record. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odl/layers.h"
#include "odl/odl.h"
#include "odl/posix_io.h"

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

static int fail(const char *what, const odl_diag *d)
{
    fprintf(stderr, "bench_graph: %s: %s\n", what, d->msg);
    return 1;
}

typedef struct bench {
    void *file;
    size_t file_len;
    odl_model_desc desc, head_desc;
    int32_t boundary, dim, classes;
    void *base_buf, *head_buf;
    odl_model *base, *head;
    odl_mem_plan base_plan, head_plan;
    float *x, *z, *dlogits;
    int32_t label;
    odl_rng rng;
} bench;

static odl_status plan_alloc(const odl_model_desc *d, const odl_model_cfg *cfg, odl_mem_plan *plan, void **buf,
                             odl_model **m, odl_diag *dg)
{
    odl_status s = odl_model_plan(d, cfg, plan, dg);
    if (s != ODL_OK)
        return s;
    *buf = malloc(plan->total + ODL_ALIGN);
    if (!*buf)
        return odl_fail(dg, ODL_ERR_NOMEM, "bench_graph: %zu bytes for a model", plan->total);
    odl_arena a;
    if ((s = odl_arena_init(&a, *buf, plan->total + ODL_ALIGN)) != ODL_OK)
        return s;
    return odl_model_init(m, d, cfg, &a, dg);
}

static int setup(bench *b, const char *path, int32_t head_from, const char *input)
{
    odl_diag dg;
    odl_diag_clear(&dg);
    if (odl_host_read_file(path, &b->file, &b->file_len, &dg) != ODL_OK ||
        odl_host_read_desc(b->file, b->file_len, &b->desc, &dg) != ODL_OK)
        return fail(path, &dg);
    if (head_from < 0) {
        if (odl_desc_boundary_for_unfreeze(&b->desc, 1, &b->boundary, &dg) != ODL_OK)
            return fail("the head's boundary", &dg);
    } else {
        b->boundary = head_from;
    }
    if (b->boundary <= 0 || b->boundary >= b->desc.n_layers || !odl_desc_is_cut(&b->desc, b->boundary)) {
        fprintf(stderr, "bench_graph: boundary %d is not a cut point inside the model (1..%d)\n", (int)b->boundary,
                (int)b->desc.n_layers - 1);
        return 1;
    }

    /* the base: inference, batch 1, frozen weights in place (odl adapt's icfg) */
    odl_model_cfg icfg = odl_model_cfg_defaults();
    icfg.mode = ODL_MODE_INFER;
    icfg.max_batch = 1;
    icfg.frozen_weights_in_place = 1;
    if (plan_alloc(&b->desc, &icfg, &b->base_plan, &b->base_buf, &b->base, &dg) != ODL_OK ||
        odl_model_load_params(b->base, b->file, b->file_len, &dg) != ODL_OK)
        return fail("the base model", &dg);

    /* the head: nodes [boundary, n) as a model of their own, training, batch 1, Adam (lr 1e-3) */
    odl_node_desc *hn = calloc((size_t)(b->desc.n_layers - b->boundary), sizeof *hn);
    if (!hn || odl_desc_init(&b->head_desc, hn, b->desc.n_layers - b->boundary, 1, 1, 1) != ODL_OK ||
        odl_desc_tail(&b->head_desc, &b->desc, b->boundary, &dg) != ODL_OK)
        return fail("the head's description", &dg);
    for (int32_t i = 0; i < b->head_desc.n_layers; i++)
        b->head_desc.layers[i].trainable = 1;
    odl_model_cfg hcfg = odl_model_cfg_defaults();
    hcfg.mode = ODL_MODE_TRAIN;
    hcfg.max_batch = 1;
    if (plan_alloc(&b->head_desc, &hcfg, &b->head_plan, &b->head_buf, &b->head, &dg) != ODL_OK)
        return fail("the head model", &dg);
    for (int32_t i = 0; i < b->head_desc.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t nh, nb;
            float *dst = odl_model_param(b->head, i, which, &nh);
            const float *src = odl_model_param_const(b->base, b->boundary + i, which, &nb);
            if (nh != nb) {
                fprintf(stderr, "bench_graph: head node %d: %zu parameters, base node %d: %zu\n", (int)i, nh,
                        (int)(b->boundary + i), nb);
                return 1;
            }
            if (nh)
                memcpy(dst, src, sizeof(float) * nh);
        }

    const size_t in = (size_t)b->desc.in_c * (size_t)b->desc.in_h * (size_t)b->desc.in_w;
    b->dim = (int32_t)odl_model_layer_shape(b->base, b->boundary - 1).size;
    b->classes = odl_model_n_classes(b->base);
    b->x = malloc(sizeof(float) * in);
    b->z = malloc(sizeof(float) * (size_t)b->dim);
    b->dlogits = malloc(sizeof(float) * (size_t)b->classes);
    if (!b->x || !b->z || !b->dlogits)
        return fprintf(stderr, "bench_graph: out of memory\n"), 1;
    if (input) {
        FILE *f = fopen(input, "rb");
        size_t got = f ? fread(b->x, sizeof(float), in, f) : 0;
        int extra = f ? fgetc(f) != EOF : 0;
        if (f)
            fclose(f);
        if (got != in || extra) {
            fprintf(stderr, "bench_graph: %s must hold exactly %zu float32 values (the model's %dx%dx%d input)\n",
                    input, in, (int)b->desc.in_c, (int)b->desc.in_h, (int)b->desc.in_w);
            return 1;
        }
    } else {
        odl_rng r;
        odl_rng_seed(&r, 3, 1);
        for (size_t i = 0; i < in; i++)
            b->x[i] = odl_rng_uniform(&r);
    }
    b->label = 3 % b->classes;
    odl_rng_seed(&b->rng, 1, 1);
    return 0;
}

typedef enum { ROW_INFER, ROW_HEAD } row_kind;

static odl_status call_row(bench *b, row_kind kind, odl_diag *dg)
{
    const float *out;
    if (kind == ROW_INFER)
        return odl_model_forward(b->base, 0, b->x, 1, &out, dg);
    odl_status s = odl_model_forward_range(b->base, 0, b->boundary, b->x, 1, b->z, dg);
    if (s == ODL_OK)
        s = odl_model_forward_train(b->head, 0, b->z, 1, &b->rng, &out, dg);
    if (s != ODL_OK)
        return s;
    (void)odl_softmax_xent_f32(1, b->classes, out, &b->label, NULL, b->dlogits);
    s = odl_model_backward(b->head, b->dlogits, 1, dg);
    return s == ODL_OK ? odl_model_step(b->head, NULL, dg) : s;
}

/* The region callgrind counts (--toggle-collect=bench_graph_iters). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
int bench_graph_iters(bench *b, row_kind kind, int iters);
int bench_graph_iters(bench *b, row_kind kind, int iters)
{
    odl_diag dg;
    for (int i = 0; i < iters; i++)
        if (call_row(b, kind, &dg) != ODL_OK)
            return fail("row", &dg);
    return 0;
}

/* median and best milliseconds of one call */
static int time_row(bench *b, row_kind kind, int reps, double *med, double *best)
{
    double *t = malloc(sizeof(double) * (size_t)reps);
    odl_diag dg;
    if (!t)
        return 1;
    for (int i = -reps / 10 - 1; i < reps; i++) {
        double t0 = now();
        if (call_row(b, kind, &dg) != ODL_OK) {
            free(t);
            return fail("row", &dg);
        }
        double dt = now() - t0;
        if (i >= 0)
            t[i] = dt;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    *med = t[reps / 2] * 1e3;
    *best = t[0] * 1e3;
    free(t);
    return 0;
}

static int plan_json(const char *name, const odl_model_desc *d, int32_t boundary, odl_model_mode mode,
                     int32_t batch, const char *sep)
{
    odl_diag dg;
    odl_model_desc c;
    if (odl_host_desc_copy(&c, d, d->n_layers, &dg) != ODL_OK)
        return fail("plan", &dg);
    if (mode == ODL_MODE_TRAIN)
        odl_desc_freeze_below(&c, boundary);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = mode;
    cfg.max_batch = batch;
    odl_act_stats st;
    odl_mem_plan p;
    int rc = 0;
    if (odl_model_plan_activations(&c, &cfg, &st, &dg) != ODL_OK || odl_model_plan(&c, &cfg, &p, &dg) != ODL_OK)
        rc = fail("plan", &dg);
    else
        printf("  \"%s\": {\"batch\": %d, \"peak\": %zu, \"naive_sum\": %zu, \"lower_bound\": %zu, "
               "\"plan_total\": %zu}%s\n",
               name, (int)batch, st.peak, st.naive_sum, st.lower_bound, p.total, sep);
    odl_host_desc_free(&c);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *row = NULL, *input = NULL;
    int reps = 200, iters = 10;
    int32_t head_from = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--row") && i + 1 < argc)
            row = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--input") && i + 1 < argc)
            input = argv[++i];
        else if (!strcmp(argv[i], "--head-from") && i + 1 < argc)
            head_from = (int32_t)atoi(argv[++i]);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (!path) {
        fprintf(stderr, "usage: bench_graph MODEL.odl [--reps N] [--input RAW] [--head-from T]\n"
                        "       bench_graph MODEL.odl --row infer_b1|head_b1 [--iters N]\n");
        return 2;
    }
    if (reps < 5)
        reps = 5;
    if (iters < 1)
        iters = 1;
    bench b;
    memset(&b, 0, sizeof b);
    if (setup(&b, path, head_from, input))
        return 1;
    if (row) {
        row_kind k;
        if (!strcmp(row, "infer_b1"))
            k = ROW_INFER;
        else if (!strcmp(row, "head_b1"))
            k = ROW_HEAD;
        else
            return fprintf(stderr, "bench_graph: unknown row '%s' (infer_b1, head_b1)\n", row), 2;
        odl_diag dg;
        if (call_row(&b, k, &dg) != ODL_OK) /* warm-up */
            return fail(row, &dg);
        return bench_graph_iters(&b, k, iters);
    }

    /* the logits of the image before any step changes the head */
    const float *logits;
    odl_diag dg;
    if (odl_model_forward(b.base, 0, b.x, 1, &logits, &dg) != ODL_OK)
        return fail("forward", &dg);
    printf("{\"bench\": \"odl graph\", \"model\": \"");
    for (const char *p = path; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            printf("\\u%04x", (unsigned)(unsigned char)*p);
        else
            putchar(*p);
    printf("\"");
    printf(", \"nodes\": %d, \"boundary\": %d, \"latent\": %d, \"classes\": %d, \"reps\": %d, \"threads\": 1,\n",
           (int)b.desc.n_layers, (int)b.boundary, (int)b.dim, (int)b.classes, reps);
    printf(" \"logits\": [");
    for (int32_t k = 0; k < b.classes; k++)
        printf("%s%.9g", k ? ", " : "", (double)logits[k]);
    printf("],\n");

    double inf_med, inf_best, head_med, head_best;
    if (time_row(&b, ROW_INFER, reps, &inf_med, &inf_best) || time_row(&b, ROW_HEAD, reps, &head_med, &head_best))
        return 1;
    printf(" \"infer_b1_ms\": %.4f, \"infer_b1_min_ms\": %.4f, \"head_step_b1_ms\": %.4f, \"head_step_b1_min_ms\": "
           "%.4f,\n",
           inf_med, inf_best, head_med, head_best);
    printf(" \"memory_bytes\": {\"base_inference_b1\": %zu, \"head_train_b1\": %zu},\n", b.base_plan.total,
           b.head_plan.total);
    printf(" \"activations\": {\n");
    if (plan_json("inference_b1", &b.desc, b.boundary, ODL_MODE_INFER, 1, ",") ||
        plan_json("head_train_b1", &b.desc, b.boundary, ODL_MODE_TRAIN, 1, ",") ||
        plan_json("head_train_b16", &b.desc, b.boundary, ODL_MODE_TRAIN, 16, ""))
        return 1;
    printf(" }}\n");
    free(b.x);
    free(b.z);
    free(b.dlogits);
    free(b.base_buf);
    free(b.head_buf);
    free(b.head_desc.layers);
    odl_host_desc_free(&b.desc);
    odl_host_free(b.file);
    return 0;
}
