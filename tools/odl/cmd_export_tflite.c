/* odl export: an odl model as a TensorFlow Lite flatbuffer (odl/tflite.h),
 * for runtimes people already deploy (TFLite, TFLite Micro, ArmNN). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "odl/posix_io.h"
#include "odl/tflite.h"

static void help(FILE *f)
{
    fputs("usage: odl export MODEL.odl --tflite OUT.tflite [--fp32 | --int8-base BASE.odl]\n"
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
          "                  MODEL's head export as int8, the trained head as FP32\n",
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

int cmd_export_tflite(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *qbase = NULL;
    int fp32 = 0;
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
        } else if (!strcmp(argv[a.i], "--int8-head")) {
            cli_error("export: --int8-head: a quantised head needs its activation ranges (calibration), which "
                      "export cannot do yet; the INT8 layers of the file are exported as int8, the head as FP32");
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
    const char *ins[2] = {in, qbase};
    int crc = cli_check_output("--tflite", out, ins, 2);
    if (crc)
        return crc;
    odl_model_cfg cfg = odl_model_cfg_defaults();
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
    s = odl_tflite_export_ex(cm.m, names, qbase ? qbuf : cm.file, qbase ? qlen : cm.file_len, fp32 ? 0 : qbase ? 2 : 1, &buf, &len,
                             &d);
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
