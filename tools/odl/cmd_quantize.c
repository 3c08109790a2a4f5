/* odl quantize: an INT8 copy of a model's frozen prefix (docs/quant.md),
 * calibrated on a sample of training data, saved beside the FP32 model in
 * one .odl file; optionally FP32 vs INT8 test accuracy. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "odl/quant.h"

static void help(FILE *f)
{
    fputs("usage: odl quantize MODEL.odl --calib PATH -o OUT.odl [options]\n"
          "       odl quantize INT8.odl --eval PATH\n"
          "\n"
          "Quantises layers 0..K-1 of MODEL to INT8 (per-channel symmetric weights,\n"
          "per-tensor asymmetric activations calibrated on PATH's training data) and\n"
          "writes OUT: the FP32 model as it was plus the INT8 layers. The device runs\n"
          "the INT8 prefix and feeds its latents to the FP32 head.\n"
          "\n"
          "  --calib PATH          calibration data: MNIST-style IDX directory (train-*),\n"
          "                        IDX images file or CSV\n"
          "  --calib-samples N     random calibration samples     (default 1000)\n"
          "  --boundary K          quantise layers 0..K-1 (default: up to the last\n"
          "                        dense layer, the head)\n"
          "  --seed S              picks the calibration samples  (default 0)\n"
          "  -o, --output FILE     where to save the quantised model (atomically)\n"
          "  --eval PATH           also report test accuracy (t10k-* of a directory):\n"
          "                        FP32 model vs INT8 prefix + FP32 head (the INT8\n"
          "                        layers are read back from OUT when it is written)\n"
          "  --limit N             evaluate on the first N samples only\n"
          "  --batch B             batch size                      (default 256)\n"
          "  --shape CxHxW         input shape for CSV data (default the model's)\n"
          "  --json                print the result as one JSON object\n"
          "\n"
          "The INT8 file is larger than the FP32 one: it keeps the FP32 prefix beside the\n"
          "INT8 one (readers that know no INT8, and FP32 fine-tuning, need it). INT8 pays\n"
          "off on the device, which loads only the INT8 prefix: about 4x fewer parameter\n"
          "bytes and integer kernels. On this host the FP32 SIMD kernels are faster.\n",
          f);
}

/* FP32 and INT8-prefix + FP32-head predictions on a test set. */
typedef struct qeval {
    double a32, a8, agree, t32, t8;
    int32_t n;
} qeval;

static int evaluate(odl_model *m, odl_qmodel *q, const odl_dataset *ds, int32_t batch, const char *path, int json,
                    qeval *r)
{
    const int32_t C = odl_model_n_classes(m), boundary = odl_qmodel_boundary(q);
    const odl_model_desc *md = odl_model_get_desc(m);
    const size_t in = (size_t)ds->c * ds->h * ds->w, zs = odl_qmodel_latent_size(q);
    for (int32_t k = 0; k < ds->n; k++)
        if (ds->y[k] < 0 || ds->y[k] >= C)
            return cli_error("%s: label %d (sample %d) is outside the model's %d classes", path, (int)ds->y[k], (int)k,
                             (int)C);
    float *z = malloc(sizeof(float) * zs * (size_t)batch);
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)batch);
    if (!z || !pred) {
        free(z);
        free(pred);
        return cli_error("out of memory");
    }
    int64_t ok32 = 0, ok8 = 0, agree = 0;
    double t32 = 0, t8 = 0;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = ODL_OK;
    for (int32_t start = 0; start < ds->n && s == ODL_OK; start += batch) {
        const int32_t n = ds->n - start < batch ? ds->n - start : batch;
        const float *x = ds->x + (size_t)start * in;
        const float *out;
        double t0 = cli_now();
        s = odl_model_forward(m, 0, x, n, &out, &d);
        if (s != ODL_OK)
            break;
        t32 += cli_now() - t0;
        for (int32_t k = 0; k < n; k++) {
            const float *o = out + (size_t)k * C;
            int32_t best = 0;
            for (int32_t j = 1; j < C; j++)
                best = o[j] > o[best] ? j : best;
            pred[k] = best;
            ok32 += best == ds->y[start + k];
        }
        t0 = cli_now();
        s = odl_qmodel_forward(q, x, n, z, &d);
        t8 += cli_now() - t0;
        if (s == ODL_OK && boundary < md->n_layers)
            s = odl_model_forward(m, boundary, z, n, &out, &d);
        else
            out = z;
        if (s != ODL_OK)
            break;
        for (int32_t k = 0; k < n; k++) {
            const float *o = out + (size_t)k * C;
            int32_t best = 0;
            for (int32_t j = 1; j < C; j++)
                best = o[j] > o[best] ? j : best;
            ok8 += best == ds->y[start + k];
            agree += best == pred[k];
        }
    }
    free(z);
    free(pred);
    if (s != ODL_OK)
        return cli_fail("eval", s, &d);
    const double a32 = 100.0 * (double)ok32 / ds->n, a8 = 100.0 * (double)ok8 / ds->n;
    r->a32 = a32;
    r->a8 = a8;
    r->agree = 100.0 * (double)agree / ds->n;
    r->t32 = t32;
    r->t8 = t8;
    r->n = ds->n;
    if (json)
        return 0;
    printf("test accuracy on %d samples of %s:\n", (int)ds->n, path);
    printf("  FP32                       %6.2f%% (%lld correct)\n", a32, (long long)ok32);
    printf("  INT8 layers 0..%d + %s %6.2f%% (%lld correct), %+.2f points; same prediction on %.2f%%\n",
           (int)boundary - 1, boundary < md->n_layers ? "FP32 head" : "no head  ", a8, (long long)ok8, a8 - a32,
           100.0 * (double)agree / ds->n);
    printf("  time for the whole model in FP32 %.2f s; INT8 prefix alone %.2f s (this host, -O%s)\n", t32, t8,
#ifdef NDEBUG
           "3"
#else
           "0"
#endif
    );
    return 0;
}

/* Copies the input file's metadata (pointers into buf), dropping `skip`. */
static int32_t read_meta(const void *buf, size_t len, odl_meta_kv *meta, int32_t cap, const char *skip)
{
    odl_file_iter it;
    int32_t n = 0;
    if (odl_file_open(&it, buf, len, NULL) != ODL_OK)
        return 0;
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t l;
        if (odl_file_next(&it, &t, &p, &l, NULL) != ODL_OK || t == ODL_CHUNK_END)
            break;
        if (t != ODL_CHUNK_META || l < 2 || p[l - 1] != '\0')
            continue;
        const uint8_t *nul = memchr(p, 0, l);
        if (!nul || nul == p + l - 1 || !strcmp((const char *)p, skip) || n >= cap)
            continue;
        meta[n].key = (const char *)p;
        meta[n].value = (const char *)nul + 1;
        n++;
    }
    return n;
}

int cmd_quantize(int argc, char **argv)
{
    const char *model = NULL, *calib = NULL, *out = NULL, *eval = NULL, *v = NULL, *shape = NULL;
    int32_t samples = 1000, boundary = -1, seed = 0, batch = 256, limit = 0;
    int json = 0, have_eval = 0;
    qeval qe;
    memset(&qe, 0, sizeof qe);
    size_t json_b8 = 0, json_b32 = 0;
    cli_args a = {argc, argv, 1, "quantize"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if ((r = cli_opt(&a, "--shape", &shape))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--calib-samples", &v))) {
            if (r < 0 || cli_parse_int("--calib-samples", v, 1, 2147483647L, &samples)) return 2;
        } else if ((r = cli_opt(&a, "--calib", &calib))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--output", &out)) || (r = cli_opt(&a, "-o", &out))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--eval", &eval))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--boundary", &v))) {
            if (r < 0 || cli_parse_int("--boundary", v, 1, 2147483647L, &boundary)) return 2;
        } else if ((r = cli_opt(&a, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, 2147483647L, &seed)) return 2;
        } else if ((r = cli_opt(&a, "--batch", &v))) {
            if (r < 0 || cli_parse_int("--batch", v, 1, 65536, &batch)) return 2;
        } else if ((r = cli_opt(&a, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 1, 2147483647L, &limit)) return 2;
        } else if (argv[a.i][0] == '-') {
            cli_error("quantize: unknown option '%s' (see odl quantize --help)", argv[a.i]);
            return 2;
        } else if (!model) {
            model = argv[a.i];
        } else {
            cli_error("quantize: one model at a time ('%s' is extra)", argv[a.i]);
            return 2;
        }
    }
    if (!model) {
        cli_error("quantize: a MODEL.odl is required (see odl quantize --help)");
        return 2;
    }
    if (calib && !out) {
        cli_error("quantize: -o OUT.odl is required with --calib (see odl quantize --help)");
        return 2;
    }
    if (!calib && (out || !eval)) {
        cli_error("quantize: --calib PATH is required to quantise (or --eval PATH alone to evaluate an INT8 file)");
        return 2;
    }
    if (out) {
        const char *ins[] = {model, calib, eval};
        int orc = cli_check_output("-o", out, ins, 3);
        if (orc)
            return orc;
    }
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = batch;
    cli_model cm;
    if (cli_model_load(model, &cfg, &cm))
        return 1;
    const odl_model_desc *md = &cm.desc;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s;
    cli_qmodel qh = {0};
    int rc = 0;
    float *ranges = NULL;
    odl_model_desc qd = {0};

    if (calib) {
        if (boundary < 0) {
            /* the latest cut at or before the last dense layer */
            boundary = md->n_layers - 1;
            while (boundary > 0 && md->layers[boundary].type != ODL_LAYER_DENSE)
                boundary--;
            if (boundary > 0 && odl_desc_boundary_for_unfreeze(md, 1, &boundary, NULL) != ODL_OK)
                boundary = 0;
            if (boundary <= 0) {
                rc = cli_error("%s: no dense head after layer 0; give --boundary K", model);
                goto done;
            }
        }
        if (boundary > md->n_layers) {
            rc = cli_error("--boundary %d: %s has %d layers", (int)boundary, model, (int)md->n_layers);
            goto done;
        }
        odl_dataset ds;
        if (cli_load_data(calib, ODL_SPLIT_AUTO, ODL_SPLIT_TRAIN, NULL, shape, 0, &ds)) {
            rc = 1;
            goto done;
        }
        if (cli_fit_shape(&ds, md, calib)) {
            odl_dataset_free(&ds);
            rc = 1;
            goto done;
        }
        if (samples > ds.n)
            samples = ds.n;
        odl_qcalib c;
        ranges = malloc(sizeof(float) * 2 * (size_t)boundary);
        if (!ranges) {
            odl_dataset_free(&ds);
            rc = cli_error("out of memory");
            goto done;
        }
        rc = cli_calibrate(cm.m, boundary, &ds, samples, batch, (uint64_t)seed, &c, ranges);
        odl_dataset_free(&ds);
        if (rc)
            goto done;
        s = cli_qmodel_init(&qh, md, boundary, batch, &d);
        if (s == ODL_OK)
            s = odl_qmodel_quantize(qh.q, cm.m, &c, &d);
        if (s != ODL_OK) {
            rc = cli_fail(model, s, &d);
            goto done;
        }
        /* save: the FP32 model with its metadata, then the INT8 layers */
        char qdesc[160];
        snprintf(qdesc, sizeof qdesc, "int8 layers 0..%d, calibrated on %d samples of %s (seed %d)",
                 (int)boundary - 1, (int)samples, calib, (int)seed);
        odl_meta_kv meta[ODL_META_MAX + 1];
        int32_t nm = read_meta(cm.file, cm.file_len, meta, ODL_META_MAX, "quantization");
        meta[nm].key = "quantization";
        meta[nm].value = qdesc;
        nm++;
        odl_posix_file pf;
        odl_writer w;
        s = odl_posix_writer_open(&pf, &w, out, &d);
        if (s == ODL_OK) {
            errno = 0;
            s = odl_qmodel_save(qh.q, cm.m, meta, nm, &w, &d);
            if (s != ODL_OK) {
                int e = errno;
                odl_posix_writer_abort(&pf);
                if (s == ODL_ERR_IO && e)
                    odl_fail(&d, s, "%s (%s)", strerror(e), d.msg);
            } else {
                s = odl_posix_writer_commit(&pf, &d);
            }
        }
        if (s != ODL_OK) {
            rc = cli_fail(out, s, &d);
            goto done;
        }
        size_t b8, b32;
        odl_qmodel_param_bytes(qh.q, &b8, &b32);
        json_b8 = b8;
        json_b32 = b32;
        struct stat sin, sout;
        const int sizes = stat(model, &sin) == 0 && stat(out, &sout) == 0;
        if (json)
            goto saved;
        printf("quantised layers 0..%d of %s to INT8 (calibrated on %d samples of %s)\n", (int)boundary - 1, model,
               (int)samples, calib);
        printf("  prefix parameters: INT8 %zu bytes (int8 weights, int32 biases, per-channel scales and\n"
               "  multipliers) vs FP32 %zu bytes: %.2fx smaller\n",
               b8, b32, (double)b32 / (double)b8);
        odl_mem_plan p1;
        if (odl_qmodel_plan(md, boundary, 1, &p1, NULL) == ODL_OK)
            printf("  INT8 prefix arena at batch 1: %zu bytes (params %zu, scratch %zu, state %zu)\n", p1.total,
                   p1.bytes[ODL_MEM_PARAMS], p1.bytes[ODL_MEM_SCRATCH], p1.bytes[ODL_MEM_STATE]);
        printf("  saved %s\n", out);
        if (sizes)
            printf("  file: %lld bytes against %lld for %s: larger, because it keeps the FP32 prefix too (for\n"
                   "  readers without INT8 and for FP32 fine-tuning). INT8 pays off on the device, which loads\n"
                   "  only the INT8 prefix (%.2fx fewer parameter bytes in flash and RAM, integer kernels); on\n"
                   "  this host the FP32 SIMD kernels are faster (see docs/quant.md).\n",
                   (long long)sout.st_size, (long long)sin.st_size, model, (double)b32 / (double)b8);
    saved:
        /* evaluate what a device would load: the INT8 layers read back */
        free(qh.buf);
        memset(&qh, 0, sizeof qh);
        if (eval) {
            cli_model_free(&cm);
            if (cli_model_load(out, &cfg, &cm))
                return 1;
            md = &cm.desc;
        }
    }
    if (eval) {
        int32_t qb = 0;
        s = odl_host_desc_copy(&qd, md, md->n_layers, &d);
        if (s == ODL_OK)
            s = odl_qfile_read_desc(cm.file, cm.file_len, &qd, &qb, &d);
        if (s == ODL_OK)
            s = cli_qmodel_init(&qh, &qd, qb, batch, &d);
        if (s == ODL_OK)
            s = odl_qmodel_load(qh.q, cm.file, cm.file_len, &d);
        if (s != ODL_OK) {
            rc = cli_fail(calib ? out : model, s, &d);
            goto done;
        }
        odl_dataset ds;
        if (cli_load_data(eval, ODL_SPLIT_AUTO, ODL_SPLIT_TEST, NULL, shape, limit, &ds)) {
            rc = 1;
            goto done;
        }
        if (!cli_fit_shape(&ds, md, eval)) {
            rc = evaluate(cm.m, qh.q, &ds, batch, eval, json, &qe);
            have_eval = rc == 0;
        } else
            rc = 1;
        odl_dataset_free(&ds);
    }
    if (!rc && json) {
        printf("{\"model\": ");
        json_str(stdout, model);
        printf(", \"output\": ");
        if (calib)
            json_str(stdout, out);
        else
            printf("null");
        printf(", \"int8_param_bytes\": %zu, \"fp32_param_bytes\": %zu", json_b8, json_b32);
        if (have_eval)
            printf(", \"eval\": {\"samples\": %d, \"accuracy_fp32\": %.4f, \"accuracy_int8\": %.4f, "
                   "\"same_prediction\": %.4f, \"seconds_fp32\": %.3f, \"seconds_int8_prefix\": %.3f}",
                   (int)qe.n, qe.a32, qe.a8, qe.agree, qe.t32, qe.t8);
        printf("}\n");
    }
done:
    free(qh.buf);
    free(ranges);
    odl_host_desc_free(&qd);
    cli_model_free(&cm);
    return rc;
}
