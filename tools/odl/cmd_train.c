/* odl train: train a base model from scratch and save it. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn.h"
#include "report.h"

static void help(FILE *f)
{
    fputs("usage: odl train --data PATH -o MODEL.odl [options]\n"
          "\n"
          "Trains a model from scratch (softmax cross-entropy) and saves it.\n"
          "\n"
          "  --data PATH         a directory with MNIST-style IDX files (train-* used),\n"
          "                      an IDX images file (labels file beside it), or a CSV\n"
          "                      file (label first, then features; header optional)\n"
          "  -o, --output FILE   where to save the model (written atomically)\n"
          "  --arch A            edge-cnn | mlp:H1,H2,...       (default edge-cnn)\n"
          "  --classes SPEC      train on these labels only, e.g. 0-7 or 1,3,5 (default all)\n"
          "  --split S           train | test                    (default train)\n"
          "  --shape CxHxW       input shape for CSV data        (default from the data)\n"
          "  --epochs N          passes over the data            (default 3)\n"
          "  --batch B           minibatch size                  (default 64)\n"
          "  --lr X              Adam learning rate              (default 0.001)\n"
          "  --optim O           adam | sgd (momentum 0.9)       (default adam)\n"
          "  --seed S            initialisation and shuffling    (default 0)\n"
          "  --init I            he | torch (PyTorch's default)  (default he)\n"
          "  --limit N           use the first N samples only    (default all)\n"
          "  --threads N         host threads (default: the machine's CPUs); the\n"
          "                      trained model does not depend on it\n"
          "  --shards S          each batch is computed as S fixed slices, one\n"
          "                      replica each, averaged in order; up to S threads\n"
          "                      share the work                  (default 4)\n"
          "  --report FILE       also write the learning curve as HTML (docs/reports.md)\n"
          "  --quiet             no progress output\n"
          "  --json              print the result as one JSON object\n",
          f);
}

#define CLI_MAX_HIDDEN 1024

/* The syntax of --arch (no data needed): 0, or prints the error and returns 1. */
static int parse_arch_syntax(const char *arch, int32_t *hidden, int32_t *nh)
{
    *nh = 0;
    if (!strcmp(arch, "edge-cnn"))
        return 0;
    if (strncmp(arch, "mlp:", 4) && strcmp(arch, "mlp"))
        return cli_error("--arch: unknown architecture '%s' (edge-cnn or mlp:H1,H2,...)", arch);
    const char *p = arch[3] == ':' ? arch + 4 : "";
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 65536 || (*end && *end != ','))
            return cli_error("--arch: '%s' is not mlp:H1,H2,... with widths in 1..65536", arch);
        if (*nh >= CLI_MAX_HIDDEN)
            return cli_error("--arch: too many hidden layers (at most %d)", CLI_MAX_HIDDEN);
        hidden[(*nh)++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Builds --arch into desc, whose node storage (malloc'd) the caller frees
 * with odl_host_desc_free. */
static int parse_arch(const char *arch, const odl_dataset *ds, int32_t n_classes, odl_model_desc *desc)
{
    odl_status s;
    memset(desc, 0, sizeof *desc);
    if (!strcmp(arch, "edge-cnn")) {
        odl_node_desc *nodes = calloc(ODL_EDGE_CNN_NODES, sizeof *nodes);
        if (!nodes)
            return cli_error("out of memory");
        s = odl_desc_init(desc, nodes, ODL_EDGE_CNN_NODES, ds->c, ds->h, ds->w);
        if (s == ODL_OK)
            s = odl_desc_edge_cnn(desc, ds->c, ds->h, ds->w, n_classes);
        if (s != ODL_OK) {
            free(nodes);
            memset(desc, 0, sizeof *desc);
        }
    } else if (!strncmp(arch, "mlp:", 4) || !strcmp(arch, "mlp")) {
        int32_t hidden[CLI_MAX_HIDDEN];
        int32_t nh = 0;
        if (parse_arch_syntax(arch, hidden, &nh))
            return 1;
        odl_node_desc *nodes = calloc((size_t)ODL_MLP_NODES(nh), sizeof *nodes);
        if (!nodes)
            return cli_error("out of memory");
        s = odl_desc_init(desc, nodes, ODL_MLP_NODES(nh), ds->c, ds->h, ds->w);
        if (s == ODL_OK)
            s = odl_desc_mlp(desc, ds->c, ds->h, ds->w, hidden, nh, n_classes);
        if (s != ODL_OK) {
            free(nodes);
            memset(desc, 0, sizeof *desc);
        }
    } else {
        return cli_error("--arch: unknown architecture '%s' (edge-cnn or mlp:H1,H2,...)", arch);
    }
    if (s != ODL_OK)
        return cli_error("--arch %s: cannot build it for %dx%dx%d inputs", arch, (int)ds->c, (int)ds->h, (int)ds->w);
    odl_diag d;
    odl_diag_clear(&d);
    s = odl_desc_check(desc, NULL, &d);
    if (s != ODL_OK) {
        odl_host_desc_free(desc);
        if (ds->c == 1 && ds->h == 1 && strcmp(arch, "edge-cnn") == 0)
            return cli_error("%s: %s (flat CSV samples need --shape CxHxW for a conv model)", arch, d.msg);
        return cli_fail(arch, s, &d);
    }
    return 0;
}

int cmd_train(int argc, char **argv)
{
    const char *data = NULL, *out = NULL, *arch = "edge-cnn", *classes = NULL, *shape = NULL, *v = NULL;
    const char *optim = "adam", *init = "he", *report_path = NULL;
    odl_split split = ODL_SPLIT_TRAIN;
    int32_t epochs = 3, batch = 64, seed = 0, limit = 0, threads = learn_threads_default(), shards = LEARN_SHARDS_DEFAULT;
    float lr = 1e-3f;
    int quiet = 0, json = 0;
    cli_args a = {argc, argv, 1, "train"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--quiet")) {
            quiet = 1;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if ((r = cli_opt(&a, "--data", &data))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--output", &out)) || (r = cli_opt(&a, "-o", &out))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--report", &report_path))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--arch", &arch))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--classes", &classes))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--shape", &shape))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--init", &init))) {
            if (r < 0) return 2;
            if (strcmp(init, "he") && strcmp(init, "torch"))
                return cli_error("--init: '%s' is not he or torch", init) + 1;
        } else if ((r = cli_opt(&a, "--optim", &optim))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--split", &v))) {
            if (r < 0 || cli_parse_split(v, &split)) return 2;
        } else if ((r = cli_opt(&a, "--epochs", &v))) {
            if (r < 0 || cli_parse_int("--epochs", v, 1, 100000, &epochs)) return 2;
        } else if ((r = cli_opt(&a, "--batch", &v))) {
            if (r < 0 || cli_parse_int("--batch", v, 1, 65536, &batch)) return 2;
        } else if ((r = cli_opt(&a, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, 2147483647L, &seed)) return 2;
        } else if ((r = cli_opt(&a, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 1, 2147483647L, &limit)) return 2;
        } else if ((r = cli_opt(&a, "--threads", &v))) {
            if (r < 0 || cli_parse_int("--threads", v, 1, 64, &threads)) return 2;
        } else if ((r = cli_opt(&a, "--shards", &v))) {
            if (r < 0 || cli_parse_int("--shards", v, 1, LEARN_SHARDS_MAX, &shards)) return 2;
        } else if ((r = cli_opt(&a, "--lr", &v))) {
            if (r < 0 || cli_parse_float("--lr", v, 1e-9, 10.0, &lr)) return 2;
        } else {
            cli_error("train: unknown option '%s' (see odl train --help)", argv[a.i]);
            return 2;
        }
    }
    if (!data || !out) {
        cli_error("train: --data and -o are required (see odl train --help)");
        return 2;
    }
    {
        /* the outputs can be written: checked before training, not after */
        const char *ins[] = {data, out};
        int orc = cli_check_output("-o", out, ins, 1);
        if (!orc && report_path)
            orc = cli_check_output("--report", report_path, ins, 2);
        if (orc)
            return orc;
    }
    odl_optim_kind okind;
    if (!strcmp(optim, "adam")) okind = ODL_OPTIM_ADAM;
    else if (!strcmp(optim, "sgd")) okind = ODL_OPTIM_SGD;
    else return cli_error("--optim: '%s' is not adam or sgd", optim) + 1;

    {
        /* a bad command line exits 2 before any data is read */
        int32_t hidden[CLI_MAX_HIDDEN], nh;
        if (parse_arch_syntax(arch, hidden, &nh) || cli_check_classes(classes))
            return 2;
    }
    odl_dataset ds;
    if (cli_load_data(data, split, ODL_SPLIT_TRAIN, classes, shape, limit, &ds))
        return 1;
    int32_t n_classes = 0, distinct = 0;
    for (int32_t k = 0; k < ds.n; k++)
        if (ds.y[k] + 1 > n_classes)
            n_classes = ds.y[k] + 1;
    {
        uint8_t *present = calloc((size_t)n_classes + 1, 1);
        for (int32_t k = 0; present && k < ds.n; k++)
            distinct += !present[ds.y[k]]++;
        free(present);
    }
    if (distinct < 2) {
        odl_dataset_free(&ds);
        return cli_error("%s: only one class in the data; a classifier needs at least two", data);
    }

    odl_model_desc desc;
    if (parse_arch(arch, &ds, n_classes, &desc)) {
        odl_dataset_free(&ds);
        return 1;
    }
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = batch;
    cfg.optim = odl_optim_defaults(okind);
    cfg.optim.lr = lr;
    if (okind == ODL_OPTIM_SGD)
        cfg.optim.momentum = 0.9f;

    odl_diag d;
    odl_diag_clear(&d);
    odl_mem_plan plan;
    odl_status s = odl_model_plan(&desc, &cfg, &plan, &d);
    void *buf = s == ODL_OK ? malloc(plan.total) : NULL;
    odl_arena arena;
    odl_model *m = NULL;
    if (s == ODL_OK && !buf)
        s = odl_fail(&d, ODL_ERR_NOMEM, "out of memory (%zu bytes)", plan.total);
    if (s == ODL_OK)
        s = odl_arena_init(&arena, buf, plan.total);
    if (s == ODL_OK)
        s = odl_model_init(&m, &desc, &cfg, &arena, &d);
    odl_rng rng;
    odl_rng_seed(&rng, (uint64_t)seed, 0x6f646c);
    if (s == ODL_OK)
        s = odl_model_init_params_as(m, &rng, strcmp(init, "torch") ? ODL_INIT_HE : ODL_INIT_TORCH);
    if (s != ODL_OK) {
        odl_dataset_free(&ds);
        odl_host_desc_free(&desc);
        free(buf);
        return cli_fail("train", s, &d);
    }
    size_t n_params = 0;
    odl_desc_count_params(&desc, NULL, &n_params, NULL); /* a built-in architecture: sequential */
    odl_host_desc_free(&desc);

    if (!quiet)
        fprintf(stderr, "training %s (%zu parameters, %d classes) on %d samples of %dx%dx%d; arena %zu bytes\n", arch,
                n_params, (int)n_classes, (int)ds.n, (int)ds.c, (int)ds.h, (int)ds.w, plan.total);
    train_result tres;
    const learn_train_opts topts = {epochs, batch, shards, threads, quiet, ""};
    if (learn_train(m, &ds, &topts, &rng, &tres)) {
        free(buf);
        odl_dataset_free(&ds);
        return 1;
    }
    const double t_total = tres.seconds, last_loss = tres.last_loss;
    /* training accuracy is a by-product of the training forward passes; it is
     * measured while the weights move, as the key's name says */
    char s_batch[32], s_epochs[32], s_lr[32], s_seed[32], s_loss[32], s_time[32], s_ips[32], s_acc[32], s_n[32], s_shards[32];
    snprintf(s_batch, sizeof s_batch, "%d", (int)batch);
    snprintf(s_epochs, sizeof s_epochs, "%d", (int)epochs);
    snprintf(s_lr, sizeof s_lr, "%g", (double)lr);
    snprintf(s_seed, sizeof s_seed, "%d", (int)seed);
    snprintf(s_loss, sizeof s_loss, "%.6f", last_loss);
    snprintf(s_time, sizeof s_time, "%.2f", t_total);
    snprintf(s_ips, sizeof s_ips, "%.1f", tres.images_per_second);
    snprintf(s_acc, sizeof s_acc, "%.4f", tres.last_epoch_accuracy);
    snprintf(s_n, sizeof s_n, "%d", (int)ds.n);
    snprintf(s_shards, sizeof s_shards, "%d", (int)shards);
    odl_meta_kv meta[] = {
        {"created_by", "odl " ODL_TOOL_VERSION},
        {"arch", arch},
        {"data", data},
        {"classes", classes ? classes : "all"},
        {"train_samples", s_n},
        {"epochs", s_epochs},
        {"batch", s_batch},
        {"shards", s_shards},
        {"optimizer", optim},
        {"init", init},
        {"lr", s_lr},
        {"seed", s_seed},
        {"final_train_loss", s_loss},
        {"last_epoch_train_accuracy", s_acc},
        {"train_seconds", s_time},
        {"train_images_per_second", s_ips},
    };
    s = odl_host_save_model(m, meta, (int32_t)(sizeof meta / sizeof meta[0]), out, &d);
    free(buf);
    odl_dataset_free(&ds);
    if (s != ODL_OK)
        return cli_fail(out, s, &d);
    if (report_path && report_write_loss_curve(report_path, out, "odl train: the learning curve", tres.curve_x,
                                               tres.curve_loss, tres.n_curve, tres.epoch_loss, tres.n_epoch_loss))
        return 1;
    if (json) {
        printf("{\"arch\": ");
        json_str(stdout, arch);
        printf(", \"epochs\": %d, \"samples\": %s, \"seconds\": %.3f, \"images_per_second\": %.1f, "
               "\"final_loss\": %.6g, \"last_epoch_train_accuracy\": %s, \"output\": ",
               (int)epochs, s_n, t_total, tres.images_per_second, (double)last_loss, s_acc);
        json_str(stdout, out);
        printf("}\n");
        return 0;
    }
    printf("trained %s: %d epochs in %.1f s (%.0f images/s), final loss %.4f, saved %s\n", arch, (int)epochs, t_total,
           tres.images_per_second, last_loss, out);
    return 0;
}
