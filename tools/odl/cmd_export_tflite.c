/* odl export: an odl model as a TensorFlow Lite flatbuffer (odl/tflite.h),
 * for runtimes people already deploy (TFLite, TFLite Micro, ArmNN). */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "odl/posix_io.h"
#include "odl/quant.h"
#include "odl/rng.h"
#include "odl/tflite.h"

static void help(FILE *f)
{
    fputs("usage: odl export MODEL.odl --tflite OUT.tflite [--fp32 | --int8-base BASE.odl]\n"
          "                  [--int8-head --calib DATA [--calib-samples N] [--seed S]]\n"
          "\n"
          "Writes MODEL.odl (an imported, adapted or trained model) as a TFLite\n"
          "flatbuffer. A file with INT8 layers (an imported int8 TFLite model, an\n"
          "'odl quantize' output) exports them as int8 operators with their own\n"
          "scales, zero points and weights, then a DEQUANTIZE and the FP32 layers\n"
          "after them; other layers have float32 weights. Tensors keep TFLite's\n"
          "layout ([1,H,W,C], or [1,F] for flat ones); odl's C x H x W tensors are\n"
          "transposed on the way out. The tensor names of an imported model are\n"
          "kept. docs/tflite.md lists what exports.\n"
          "\n"
          "  --tflite FILE   the .tflite file to write (atomically)\n"
          "  --fp32          float32 throughout, even where the file has INT8 layers\n"
          "  --int8-base B   take the INT8 layers from B, the INT8 model MODEL was adapted\n"
          "                  from (odl adapt keeps the FP32 model only): its layers below\n"
          "                  MODEL's head export as int8, the trained head as FP32\n"
          "  --int8-head     quantise the rest of the model too (all-INT8 file): activation\n"
          "                  ranges from --calib, symmetric int8 weights (per channel for\n"
          "                  convolutions, per tensor for dense layers, as TFLite's\n"
          "                  FULLY_CONNECTED takes them); the INT8 layers of the file or\n"
          "                  of --int8-base are kept as they are\n"
          "  --calib DATA    calibration data for --int8-head (as odl quantize --calib)\n"
          "  --calib-samples N  random calibration samples (default 1000)\n"
          "  --seed S        picks the calibration samples (default 0)\n",
          f);
}

static odl_status write_bytes(const char *path, const void *p, size_t n, odl_diag *d)
{
    odl_posix_file f;
    odl_writer w;
    odl_status s = odl_posix_writer_open(&f, &w, path, d);
    if (s != ODL_OK)
        return s;
    if ((s = w.write(w.ctx, p, n)) != ODL_OK) {
        odl_posix_writer_abort(&f);
        return odl_fail(d, s, "%s: write failed", path);
    }
    return odl_posix_writer_commit(&f, d);
}

/* ---- --int8-head: the whole model in int8 ---------------------------------- */

/* How many leading nodes of `base` (an INT8 file's topology, kb INT8 nodes)
 * m keeps: up to m's first trainable node when the file is the base m was
 * adapted from, where the nodes agree, at a cut point. */
static int32_t kept_prefix(const odl_model_desc *md, const odl_model_desc *bd, int32_t kb, int from_base)
{
    if (bd->in_c != md->in_c || bd->in_h != md->in_h || bd->in_w != md->in_w)
        return 0;
    int32_t k = 0;
    while (k < kb && k < md->n_layers && (!from_base || !md->layers[k].trainable)) {
        odl_node_desc a = bd->layers[k], b = md->layers[k];
        a.trainable = b.trainable = 0;
        if (memcmp(&a, &b, sizeof a))
            break;
        k++;
    }
    while (k > 0 && !odl_desc_is_cut(md, k))
        k--;
    return k;
}

/* The .odl file (FP32 model + INT8 chunks for every node) of m quantised
 * whole: nodes below the INT8 layers of qfile (the file itself, or the base
 * m was adapted from) keep them; the rest get calibrated activation ranges
 * and symmetric weights, per channel for convolutions and per tensor for
 * dense layers (TFLite's FULLY_CONNECTED and ArmNN take one weight scale). */
static int int8_head_file(cli_model *cm, const void *qfile, size_t qlen, int from_base, const char *calib,
                          int32_t samples, uint64_t seed, int32_t batch, odl_host_membuf *outf)
{
    odl_diag d;
    odl_diag_clear(&d);
    const odl_model_desc *md = &cm->desc;
    const int32_t L = md->n_layers;
    odl_model_desc bd = {0};
    cli_qmodel qb = {0}, qc = {0}, qf = {0};
    odl_dataset ds;
    int have_ds = 0, rc = 1;
    float *ranges = NULL;
    odl_qnode_params *np = calloc((size_t)L + 1, sizeof *np);
    int8_t **wq = calloc((size_t)L + 1, sizeof *wq);
    float **wsc = calloc((size_t)L + 1, sizeof *wsc);
    int32_t **bq = calloc((size_t)L + 1, sizeof *bq);
    odl_status s = np && wq && wsc && bq ? ODL_OK : odl_fail(&d, ODL_ERR_NOMEM, "out of memory");
    /* the INT8 layers kept */
    int32_t kb = 0, K = 0;
    if (s == ODL_OK && (s = odl_host_desc_copy(&bd, md, md->n_layers, &d)) == ODL_OK) {
        s = odl_qfile_read_desc(qfile, qlen, &bd, &kb, &d);
        if (s == ODL_ERR_NOT_FOUND) {
            s = ODL_OK;
            kb = 0;
        } else if (s == ODL_OK) {
            K = kept_prefix(md, &bd, kb, from_base);
            if (K > 0 && (s = cli_qmodel_init(&qb, &bd, kb, 1, &d)) == ODL_OK)
                s = odl_qmodel_load(qb.q, qfile, qlen, &d);
        }
    }
    if (s != ODL_OK) {
        cli_fail("--int8-head: the INT8 layers", s, &d);
        goto done;
    }
    if (cli_load_data(calib, ODL_SPLIT_AUTO, ODL_SPLIT_TRAIN, NULL, NULL, 0, &ds))
        goto done;
    have_ds = 1;
    if (cli_fit_shape(&ds, md, calib))
        goto done;
    if (samples > ds.n)
        samples = ds.n;
    odl_qcalib c;
    if (!(ranges = malloc(sizeof(float) * 2 * (size_t)L))) {
        cli_error("out of memory");
        goto done;
    }
    if (cli_calibrate(cm->m, odl_model_get_desc(cm->m)->n_layers, &ds, samples, batch, seed, &c, ranges))
        goto done;
    if ((s = cli_qmodel_init(&qc, md, L, 1, &d)) != ODL_OK || (s = odl_qmodel_quantize(qc.q, cm->m, &c, &d)) != ODL_OK) {
        cli_fail("--int8-head", s, &d);
        goto done;
    }
    odl_qparams in_q = K > 0 ? odl_qmodel_input_params(qb.q) : odl_qmodel_input_params(qc.q);
    for (int32_t i = 0; i < L && s == ODL_OK; i++) {
        const odl_node_desc *l = &md->layers[i];
        s = odl_qmodel_node_params(i < K ? qb.q : qc.q, i, &np[i], &d);
        /* an activation fused into a kept layer keeps that layer's parameters */
        if (s == ODL_OK && i == K && K > 0 && K < kb && (l->type == ODL_LAYER_RELU || l->type == ODL_LAYER_RELU6) &&
            l->in[0] == K && (md->layers[K - 1].type == ODL_LAYER_CONV2D || md->layers[K - 1].type == ODL_LAYER_DEPTHWISE ||
                              md->layers[K - 1].type == ODL_LAYER_DENSE))
            s = odl_qmodel_node_params(qb.q, i, &np[i], &d);
        if (s != ODL_OK || i < K || l->type != ODL_LAYER_DENSE)
            continue;
        /* dense: one weight scale, the bias at s_in · s_w */
        size_t nw, nbias;
        const float *w = odl_model_param_const(cm->m, i, 0, &nw), *b = odl_model_param_const(cm->m, i, 1, &nbias);
        const odl_qparams xin = l->in[0] == 0 ? in_q : np[l->in[0] - 1].out;
        float amax = 0.0f;
        for (size_t k = 0; w && k < nw; k++)
            amax = fabsf(w[k]) > amax ? fabsf(w[k]) : amax;
        float sw = amax / 127.0f;
        if (!(sw >= FLT_MIN))
            sw = 1.0f;
        wq[i] = malloc(nw + 1);
        wsc[i] = malloc(sizeof(float) * (nbias + 1));
        bq[i] = malloc(sizeof(int32_t) * (nbias + 1));
        if (!w || !b || !nbias || nw % nbias || !wq[i] || !wsc[i] || !bq[i]) {
            s = odl_fail(&d, ODL_ERR_STATE, "node %d (dense): no parameters loaded", (int)i);
            break;
        }
        for (size_t k = 0; k < nw; k++) {
            double v = round((double)w[k] / (double)sw);
            wq[i][k] = (int8_t)(v < -127.0 ? -127 : v > 127.0 ? 127 : (int32_t)v);
        }
        const double sacc = (double)xin.scale * (double)sw;
        for (size_t o = 0; o < nbias; o++) {
            const double v = round((double)b[o] / sacc);
            if (!(fabs(v) <= (double)ODL_QUANT_MAX_BIAS)) {
                s = odl_fail(&d, ODL_ERR_NUMERIC, "node %d (dense) channel %zu: bias %g is too large for int32 at "
                             "scale %g", (int)i, o, (double)b[o], sacc);
                break;
            }
            bq[i][o] = (int32_t)v;
            wsc[i][o] = sw;
        }
        np[i].w = wq[i];
        np[i].w_scale = wsc[i];
        np[i].bias = bq[i];
    }
    odl_writer w;
    odl_host_membuf_writer(outf, &w);
    if (s == ODL_OK && (s = cli_qmodel_init(&qf, md, L, 1, &d)) == ODL_OK &&
        (s = odl_qmodel_set_params(qf.q, in_q, np, &d)) == ODL_OK)
        s = odl_qmodel_save(qf.q, cm->m, NULL, 0, &w, &d);
    if (s != ODL_OK) {
        cli_fail("--int8-head", s, &d);
        goto done;
    }
    printf("int8 head: nodes %d..%d quantised (ranges from %d samples of %s)%s\n", (int)K, (int)L - 1,
           (int)samples, calib, K ? ", the INT8 layers below kept" : "");
    rc = 0;
done:
    for (int32_t i = 0; i < L && wq && wsc && bq; i++) {
        free(wq[i]);
        free(wsc[i]);
        free(bq[i]);
    }
    free(wq);
    free(wsc);
    free(bq);
    free(np);
    free(ranges);
    if (have_ds)
        odl_dataset_free(&ds);
    free(qb.buf);
    free(qc.buf);
    free(qf.buf);
    if (bd.layers)
        odl_host_desc_free(&bd);
    return rc;
}

int cmd_export_tflite(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *qbase = NULL, *calib = NULL;
    int fp32 = 0, int8_head = 0;
    int32_t samples = 1000, seed = 0;
    cli_args a = {argc, argv, 1, "export"};
    for (; a.i < argc; a.i++) {
        const char *v;
        int r;
        if (!strcmp(argv[a.i], "--help") || !strcmp(argv[a.i], "-h")) {
            help(stdout);
            return 0;
        }
        if ((r = cli_opt(&a, "--tflite", &v))) {
            if (r < 0)
                return 2;
            out = v;
        } else if ((r = cli_opt(&a, "--int8-base", &v))) {
            if (r < 0)
                return 2;
            qbase = v;
        } else if (cli_flag(&a, "--fp32")) {
            fp32 = 1;
        } else if (cli_flag(&a, "--int8-head")) {
            int8_head = 1;
        } else if ((r = cli_opt(&a, "--calib-samples", &v))) {
            if (r < 0 || cli_parse_int("--calib-samples", v, 1, 2147483647L, &samples))
                return 2;
        } else if ((r = cli_opt(&a, "--calib", &v))) {
            if (r < 0)
                return 2;
            calib = v;
        } else if ((r = cli_opt(&a, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, 2147483647L, &seed))
                return 2;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            cli_error("export: unknown option '%s' (try 'odl export --help')", argv[a.i]);
            return 2;
        } else if (!in) {
            in = argv[a.i];
        } else {
            cli_error("export: more than one model given ('%s' and '%s')", in, argv[a.i]);
            return 2;
        }
    }
    if (!in || !out) {
        help(stderr);
        return 2;
    }
    if (int8_head && !calib) {
        cli_error("export: --int8-head needs --calib DATA: the head's activation ranges come from calibration "
                  "data (as for odl quantize --calib)");
        return 2;
    }
    if (calib && !int8_head) {
        cli_error("export: --calib is for --int8-head (the INT8 layers of a file need no calibration)");
        return 2;
    }
    if (int8_head && fp32) {
        cli_error("export: --int8-head and --fp32 contradict each other");
        return 2;
    }
    const char *ins[3] = {in, qbase, calib};
    int crc = cli_check_output("--tflite", out, ins, 3);
    if (crc)
        return crc;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    const int32_t batch = 256;
    if (int8_head)
        cfg.max_batch = batch;
    cli_model cm;
    if (cli_model_load(in, &cfg, &cm))
        return 1;
    odl_diag d;
    odl_diag_clear(&d);
    char **names = NULL;
    int32_t n_names = 0;
    if (odl_names_read(cm.file, cm.file_len, &names, &n_names, &d) != ODL_OK ||
        n_names != cm.desc.n_layers + 1) {
        odl_names_free(names, n_names);
        names = NULL;
        n_names = 0;
    }
    void *buf = NULL;
    size_t len = 0;
    int rc = 1;
    void *qbuf = NULL;
    size_t qlen = 0;
    odl_status s = ODL_OK;
    if (qbase && fp32) {
        cli_error("export: --int8-base and --fp32 contradict each other");
        goto done;
    }
    if (qbase && (s = odl_host_read_file(qbase, &qbuf, &qlen, &d)) != ODL_OK) {
        cli_fail(qbase, s, &d);
        goto done;
    }
    odl_host_membuf hf = {0};
    if (int8_head) {
        if (int8_head_file(&cm, qbase ? qbuf : cm.file, qbase ? qlen : cm.file_len, qbase != NULL, calib, samples,
                           (uint64_t)seed, batch, &hf))
            goto done;
        s = odl_tflite_export_ex(cm.m, names, hf.p, hf.n, 1, &buf, &len, &d);
        free(hf.p);
    } else {
        s = odl_tflite_export_ex(cm.m, names, qbase ? qbuf : cm.file, qbase ? qlen : cm.file_len,
                                 fp32 ? 0 : qbase ? 2 : 1, &buf, &len, &d);
    }
    if (s != ODL_OK) {
        cli_fail(in, s, &d);
        goto done;
    }
    if ((s = write_bytes(out, buf, len, &d)) != ODL_OK) {
        cli_fail(out, s, &d);
        goto done;
    }
    printf("wrote %s: %zu bytes, %d odl nodes%s\n", out, len, (int)cm.desc.n_layers,
           cm.desc.softmax_output ? " (+ softmax)" : "");
    rc = 0;
done:
    if (qbuf)
        odl_host_free(qbuf);
    free(buf);
    odl_names_free(names, n_names);
    cli_model_free(&cm);
    return rc;
}
