/* odl predict: a model's outputs (logits, or probabilities) for every
 * sample of a dataset, as .npy, CSV or JSON: how users compare odl with
 * another runtime. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "odl/layers.h"
#include "odl/quant.h"

static void help(FILE *f)
{
    fputs("usage: odl predict MODEL.odl --data PATH [-o OUT.npy|OUT.csv] [--softmax] [--json]\n"
          "\n"
          "Runs the model on every sample of PATH and writes its outputs, one row\n"
          "per sample (N x outputs): logits, or probabilities with --softmax.\n"
          "\n"
          "  --data PATH        samples: a .npy float32 array (N,C,H,W), (N,C,L) or\n"
          "                     (N,F); an IDX file or directory; a CSV file (label\n"
          "                     first). The sample size must match the model's input.\n"
          "  --split S          train | test, for an IDX directory (default test)\n"
          "  --limit N          the first N samples only\n"
          "  -o, --output FILE  write OUT.npy (float32, shape (N, outputs)) or OUT.csv\n"
          "                     (atomically); without it the rows go to stdout as CSV\n"
          "  --softmax          probabilities instead of logits\n"
          "  --int8             run the file's INT8 layers (an 'odl quantize' output or an\n"
          "                     imported int8 TFLite model), the FP32 head after them;\n"
          "                     outputs are the dequantised values\n"
          "  --json             JSON on stdout (the rows when no -o, else a summary)\n"
          "  --batch B          samples per forward call (default 64)\n",
          f);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static odl_status write_csv(const char *path, const float *y, int32_t n, int32_t k, odl_diag *d)
{
    odl_posix_file f;
    odl_writer w;
    odl_status s = odl_posix_writer_open(&f, &w, path, d);
    if (s != ODL_OK)
        return s;
    char line[64];
    for (int32_t i = 0; i < n && s == ODL_OK; i++)
        for (int32_t j = 0; j < k && s == ODL_OK; j++) {
            int l = snprintf(line, sizeof line, "%.9g%s", (double)y[(size_t)i * k + j], j + 1 < k ? "," : "\n");
            s = w.write(w.ctx, line, (size_t)l);
        }
    if (s != ODL_OK) {
        odl_posix_writer_abort(&f);
        return odl_fail(d, s, "%s: write failed", path);
    }
    return odl_posix_writer_commit(&f, d);
}

int cmd_predict(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *split_s = NULL;
    int softmax = 0, json = 0, int8 = 0;
    int32_t limit = 0, batch = 64;
    cli_args a = {argc, argv, 1, "predict"};
    for (; a.i < argc; a.i++) {
        const char *v;
        int r;
        if (!strcmp(argv[a.i], "--help") || !strcmp(argv[a.i], "-h")) {
            help(stdout);
            return 0;
        }
        if ((r = cli_opt(&a, "-o", &v)) || (r = cli_opt(&a, "--output", &v))) {
            if (r < 0)
                return 2;
            out = v;
        } else if ((r = cli_opt(&a, "--data", &v))) {
            if (r < 0)
                return 2;
            data = v;
        } else if ((r = cli_opt(&a, "--split", &v))) {
            if (r < 0)
                return 2;
            split_s = v;
        } else if ((r = cli_opt(&a, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 1, INT32_MAX, &limit))
                return 2;
        } else if ((r = cli_opt(&a, "--batch", &v))) {
            if (r < 0 || cli_parse_int("--batch", v, 1, 4096, &batch))
                return 2;
        } else if (cli_flag(&a, "--softmax")) {
            softmax = 1;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if (cli_flag(&a, "--int8")) {
            int8 = 1;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            cli_error("predict: unknown option '%s' (try 'odl predict --help')", argv[a.i]);
            return 2;
        } else if (!model) {
            model = argv[a.i];
        } else {
            cli_error("predict: more than one model given ('%s' and '%s')", model, argv[a.i]);
            return 2;
        }
    }
    if (!model || !data) {
        help(stderr);
        return 2;
    }
    if (out && !ends_with(out, ".npy") && !ends_with(out, ".csv")) {
        cli_error("predict: -o %s: the output must end in .npy or .csv", out);
        return 2;
    }
    odl_split split = ODL_SPLIT_AUTO;
    if (split_s && cli_parse_split(split_s, &split))
        return 2;

    odl_diag d;
    odl_diag_clear(&d);
    odl_dataset ds;
    memset(&ds, 0, sizeof ds);
    if (ends_with(data, ".npy")) {
        odl_status s = odl_npy_load_dataset(data, &ds, &d);
        if (s != ODL_OK)
            return cli_fail("", s, &d);
        if (limit && ds.n > limit)
            ds.n = limit;
    } else if (cli_load_data(data, split, ODL_SPLIT_TEST, NULL, NULL, limit, &ds)) {
        return 1;
    }
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_INFER;
    cfg.max_batch = batch < ds.n ? batch : ds.n;
    cli_model cm;
    if (cli_model_load(model, &cfg, &cm)) {
        odl_dataset_free(&ds);
        return 1;
    }
    int rc = 1;
    float *y = NULL, *z = NULL;
    void *qbuf = NULL;
    odl_qmodel *q = NULL;
    odl_model_desc qd = {0};
    int32_t qb = 0;
    const odl_model_desc *desc = odl_model_get_desc(cm.m);
    if (int8) {
        odl_mem_plan qp;
        odl_arena qa;
        odl_status s = odl_host_desc_copy(&qd, desc, desc->n_layers, &d);
        if (s == ODL_OK)
            s = odl_qfile_read_desc(cm.file, cm.file_len, &qd, &qb, &d);
        if (s == ODL_OK)
            s = odl_qmodel_plan(&qd, qb, cfg.max_batch, &qp, &d);
        if (s == ODL_OK && !(qbuf = malloc(qp.total + ODL_ALIGN)))
            s = odl_fail(&d, ODL_ERR_NOMEM, "out of memory (%zu bytes)", qp.total);
        if (s == ODL_OK)
            s = odl_arena_init(&qa, qbuf, qp.total + ODL_ALIGN);
        if (s == ODL_OK)
            s = odl_qmodel_init(&q, &qd, qb, cfg.max_batch, &qa, &d);
        if (s == ODL_OK)
            s = odl_qmodel_load(q, cm.file, cm.file_len, &d);
        if (s == ODL_OK && !(z = malloc(odl_qmodel_latent_size(q) * (size_t)cfg.max_batch * sizeof *z)))
            s = odl_fail(&d, ODL_ERR_NOMEM, "out of memory");
        if (s != ODL_OK) {
            cli_fail(model, s, &d);
            goto done;
        }
    }
    size_t in_size = (size_t)desc->in_c * (size_t)desc->in_h * (size_t)desc->in_w;
    size_t ds_size = (size_t)ds.c * (size_t)ds.h * (size_t)ds.w;
    if (ds_size != in_size) {
        cli_error("%s: samples of %dx%dx%d (%zu values) for a model whose input is %dx%dx%d (%zu)", data,
                  ds.c, ds.h, ds.w, ds_size, desc->in_c, desc->in_h, desc->in_w, in_size);
        goto done;
    }
    int32_t k = odl_model_n_classes(cm.m);
    y = malloc((size_t)ds.n * (size_t)k * sizeof *y);
    if (!y) {
        cli_error("out of memory");
        goto done;
    }
    for (int32_t i = 0; i < ds.n; i += cfg.max_batch) {
        int32_t n = ds.n - i < cfg.max_batch ? ds.n - i : cfg.max_batch;
        const float *logits;
        odl_status s;
        if (q) { /* the INT8 layers, then the FP32 ones after them */
            s = odl_qmodel_forward(q, ds.x + (size_t)i * in_size, n, z, &d);
            if (s == ODL_OK && qb < desc->n_layers)
                s = odl_model_forward(cm.m, qb, z, n, &logits, &d);
            else
                logits = z;
        } else {
            s = odl_model_forward(cm.m, 0, ds.x + (size_t)i * in_size, n, &logits, &d);
        }
        if (s != ODL_OK) {
            cli_fail(model, s, &d);
            goto done;
        }
        for (int32_t r = 0; r < n; r++) {
            float *row = y + (size_t)(i + r) * k;
            if (softmax)
                odl_softmax_f32(k, logits + (size_t)r * k, row);
            else
                memcpy(row, logits + (size_t)r * k, (size_t)k * sizeof *row);
        }
    }
    if (out) {
        int64_t dims[2] = {ds.n, k};
        odl_status s = ends_with(out, ".npy") ? odl_npy_write(out, y, 2, dims, &d)
                                              : write_csv(out, y, ds.n, k, &d);
        if (s != ODL_OK) {
            cli_fail(out, s, &d);
            goto done;
        }
        if (json) {
            printf("{\"model\": ");
            json_str(stdout, model);
            printf(", \"data\": ");
            json_str(stdout, data);
            printf(", \"samples\": %d, \"outputs\": %d, \"softmax\": %s, \"output\": ", ds.n, k,
                   softmax ? "true" : "false");
            json_str(stdout, out);
            printf("}\n");
        } else {
            printf("wrote %s: %d samples x %d %s\n", out, ds.n, k, softmax ? "probabilities" : "logits");
        }
    } else if (json) {
        printf("{\"model\": ");
        json_str(stdout, model);
        printf(", \"samples\": %d, \"outputs\": %d, \"softmax\": %s, \"rows\": [", ds.n, k,
               softmax ? "true" : "false");
        for (int32_t i = 0; i < ds.n; i++) {
            printf("%s[", i ? ", " : "");
            for (int32_t j = 0; j < k; j++)
                printf("%s%.9g", j ? ", " : "", (double)y[(size_t)i * k + j]);
            printf("]");
        }
        printf("]}\n");
    } else {
        for (int32_t i = 0; i < ds.n; i++)
            for (int32_t j = 0; j < k; j++)
                printf("%.9g%s", (double)y[(size_t)i * k + j], j + 1 < k ? "," : "\n");
    }
    rc = 0;
done:
    free(y);
    free(z);
    free(qbuf);
    odl_host_desc_free(&qd);
    cli_model_free(&cm);
    odl_dataset_free(&ds);
    return rc;
}
