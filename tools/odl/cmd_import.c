/* odl import: an ONNX model as a .odl file (odl/onnx.h), with the freeze
 * boundary at the head, ready for odl adapt / session / quantize. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "odl/onnx.h"
#include "odl/tflite.h"

static void help(FILE *f)
{
    fputs("usage: odl import MODEL.onnx|MODEL.tflite -o BASE.odl [--input-shape CxHxW]\n"
          "                  [--head auto|TENSOR]\n"
          "\n"
          "Converts an ONNX model (opsets 9 to 17, float32) or a TensorFlow Lite\n"
          "model (chosen by content) to an odl model. TFLite's NHWC layout becomes\n"
          "odl's C x H x W (inputs are given channel-major to odl). The ONNX\n"
          "input must be [N,C,H,W], [N,C,L] or [N,F] with N = 1 or symbolic.\n"
          "Batch norm is folded, Dropout/Identity removed, PyTorch's shape\n"
          "arithmetic evaluated; an operator odl cannot run is an error naming\n"
          "the node. The ONNX tensor names are kept in the file.\n"
          "\n"
          "  -o, --output FILE     the .odl file to write (atomically)\n"
          "  --input-shape CxHxW   the sample shape, when the model's is dynamic\n"
          "                        ([N,F] models: Fx1x1; [N,C,L]: CxLx1)\n"
          "  --head auto|TENSOR    where the trainable head starts: auto (default)\n"
          "                        cuts before the last parameterised layer;\n"
          "                        TENSOR names a cut point (an error lists them)\n"
          "  --max-mb N            refuse ONNX files above N MiB (default 1024)\n",
          f);
}

/* The names of the cut points, for the error message. */
static int list_cuts(const odl_onnx_model *im, char *out, size_t cap)
{
    size_t n = 0;
    int count = 0;
    out[0] = 0;
    for (int32_t t = 0; t <= im->desc.n_layers; t++) {
        if (!odl_desc_is_cut(&im->desc, t))
            continue;
        int w = snprintf(out + n, cap - n, "%s%s", count ? ", " : "", im->names[t]);
        count++;
        if (w < 0 || (size_t)w >= cap - n) {
            snprintf(out + (cap > 5 ? cap - 5 : 0), 5, "...");
            break;
        }
        n += (size_t)w;
    }
    return count;
}

int cmd_import(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *shape = NULL, *head = "auto";
    int32_t max_mb = 1024;
    cli_args a = {argc, argv, 1, "import"};
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
        } else if ((r = cli_opt(&a, "--input-shape", &v))) {
            if (r < 0)
                return 2;
            shape = v;
        } else if ((r = cli_opt(&a, "--head", &v))) {
            if (r < 0)
                return 2;
            head = v;
        } else if ((r = cli_opt(&a, "--max-mb", &v))) {
            if (r < 0 || cli_parse_int("--max-mb", v, 1, 1 << 20, &max_mb))
                return 2;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            cli_error("import: unknown option '%s' (try 'odl import --help')", argv[a.i]);
            return 2;
        } else if (!in) {
            in = argv[a.i];
        } else {
            cli_error("import: more than one model given ('%s' and '%s')", in, argv[a.i]);
            return 2;
        }
    }
    if (!in || !out) {
        help(stderr);
        return 2;
    }
    const char *ins[1] = {in};
    int crc = cli_check_output("-o", out, ins, 1);
    if (crc)
        return crc;
    odl_onnx_opts o = odl_onnx_opts_defaults();
    o.max_bytes = (size_t)max_mb << 20;
    if (shape && cli_parse_shape(shape, &o.in_c, &o.in_h, &o.in_w))
        return 2;

    /* the format, by content: ONNX now, TFLite ("TFL3" at offset 4) later */
    FILE *f = fopen(in, "rb");
    if (!f)
        return cli_error("%s: cannot open it", in);
    unsigned char head8[8] = {0};
    size_t got = fread(head8, 1, sizeof head8, f);
    fclose(f);
    int tflite = odl_tflite_detect(head8, got);
    odl_tflite_int8 q8;
    memset(&q8, 0, sizeof q8);
    if (!tflite && !odl_onnx_detect(head8, got))
        return cli_error("%s: neither an ONNX model (a ModelProto protobuf) nor a TensorFlow Lite "
                         "model (\"TFL3\" at byte 4)", in);
    if (tflite && shape)
        return cli_error("--input-shape: a TFLite model's shapes are fixed in the file");

    odl_diag d;
    odl_diag_clear(&d);
    odl_onnx_model im;
    odl_status s = tflite ? odl_tflite_import_file(in, o.max_bytes, &im, &q8, &d)
                          : odl_onnx_import_file(in, &o, &im, &d);
    if (s != ODL_OK)
        return cli_fail(in, s, &d);
    int rc = 1;
    odl_onnx_built built = {0};
    odl_layer_shape *shapes = calloc((size_t)im.desc.n_layers + 1, sizeof *shapes);
    if (!shapes) {
        cli_error("out of memory");
        goto done;
    }
    s = odl_desc_check(&im.desc, shapes, &d);
    if (s != ODL_OK) {
        cli_fail(in, s, &d);
        goto done;
    }
    int32_t boundary = -1;
    int has_params = 0;
    for (int32_t i = 0; i < im.desc.n_layers; i++)
        has_params |= im.n_w[i] > 0 || im.n_b[i] > 0;
    if (!strcmp(head, "auto") && !has_params) {
        /* nothing to train: the whole model is the frozen base */
        boundary = im.desc.n_layers;
    } else if (!strcmp(head, "auto")) {
        s = odl_desc_boundary_for_unfreeze(&im.desc, 1, &boundary, &d);
        if (s != ODL_OK) {
            cli_fail("--head auto", s, &d);
            goto done;
        }
    } else {
        for (int32_t t = 0; t <= im.desc.n_layers; t++)
            if (!strcmp(im.names[t], head)) {
                boundary = t;
                break;
            }
        char cuts[1024];
        if (boundary < 0 || !odl_desc_is_cut(&im.desc, boundary)) {
            int n = list_cuts(&im, cuts, sizeof cuts);
            cli_error("--head %s: %s; the cut points (%d) are: %s", head,
                      boundary < 0 ? "no tensor of the model has that name"
                                   : "not a cut point (a later node reads an earlier tensor)",
                      n, cuts);
            goto done;
        }
    }
    s = odl_desc_freeze_below(&im.desc, boundary);
    if (s != ODL_OK) {
        cli_fail("freeze boundary", s, &d);
        goto done;
    }
    s = odl_onnx_build(&im, NULL, &built, &d);
    if (s != ODL_OK) {
        cli_fail(in, s, &d);
        goto done;
    }
    size_t total = 0, trainable = 0;
    odl_desc_count_params(&im.desc, shapes, &total, &trainable);
    char s_opset[32], s_boundary[32];
    snprintf(s_opset, sizeof s_opset, "%lld", (long long)im.opset);
    snprintf(s_boundary, sizeof s_boundary, "%d", (int)boundary);
    const char *base = strrchr(in, '/') ? strrchr(in, '/') + 1 : in;
    odl_meta_kv meta[] = {
        {"created_by", "odl " ODL_TOOL_VERSION},
        {"arch", tflite ? "tflite" : "onnx"},
        {"imported_from", base},
        {tflite ? "tflite_description" : "onnx_producer", im.producer[0] ? im.producer : "unknown"},
        {tflite ? "tflite_schema" : "onnx_opset", s_opset},
        {"freeze_boundary", s_boundary},
        {"tflite_int8", !q8.is_int8 ? "no" : q8.n_chunks ? "int8 (QNT/QLAY chunks, the whole model)"
                                                           : "dequantised to FP32"},
    };
    /* the last entry is TFLite's only */
    s = tflite ? odl_tflite_save(&im, built.m, &q8, meta, (int32_t)(sizeof meta / sizeof meta[0]), out, &d)
               : odl_onnx_save(&im, built.m, meta, (int32_t)(sizeof meta / sizeof meta[0]) - 1, out, &d);
    if (s != ODL_OK) {
        cli_fail(out, s, &d);
        goto done;
    }
    if (q8.is_int8 && q8.n_chunks && q8.boundary == im.desc.n_layers)
        printf("int8 model: every node runs in int8 with the file's scales and zero points "
               "(odl predict --int8); the FP32 equivalent (weights and biases dequantised exactly) "
               "is in the file too\n");
    else if (q8.is_int8 && q8.n_chunks)
        printf("int8 base: nodes 0..%d run in int8 with the file's scales and zero points, the rest "
               "in FP32 (odl predict --int8); the FP32 equivalent is in the file too\n",
               (int)q8.boundary - 1);
    else if (q8.is_int8)
        printf("note: %s has int8 activations, but odl's INT8 runtime cannot run it: %s; imported as "
               "its FP32 equivalent (weights and biases dequantised exactly)\n", in, q8.why);
    printf("imported %s (%s %lld, %s): %d nodes, input %dx%dx%d, %d outputs%s, %zu parameters\n",
           in, tflite ? "TFLite schema" : "opset", (long long)im.opset, im.producer[0] ? im.producer : "unknown producer",
           (int)im.desc.n_layers, (int)im.desc.in_c, (int)im.desc.in_h, (int)im.desc.in_w,
           (int)shapes[im.desc.n_layers - 1].size, im.desc.softmax_output ? " (softmax)" : "", total);
    printf("head from tensor %d '%s': %zu trainable parameters\n", (int)boundary, im.names[boundary],
           trainable);
    printf("wrote %s\n", out);
    rc = 0;
done:
    free(shapes);
    odl_onnx_built_free(&built);
    odl_onnx_free(&im);
    odl_tflite_int8_free(&q8);
    return rc;
}
