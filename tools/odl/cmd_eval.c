/* odl eval: accuracy, per-class accuracy and the confusion matrix. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f)
{
    fputs("usage: odl eval MODEL.odl --data PATH [options]\n"
          "\n"
          "  --data PATH       a directory with MNIST-style IDX files (t10k-* used),\n"
          "                    an IDX images file, or a CSV file\n"
          "  --classes SPEC    evaluate on these labels only, e.g. 0-7 (default all)\n"
          "  --split S         train | test                     (default test)\n"
          "  --shape CxHxW     input shape for CSV data         (default the model's)\n"
          "  --shift S         gain:A,B or translate:DX,DY applied to the data\n"
          "  --batch B         inference batch size             (default 256)\n"
          "  --limit N         use the first N samples only     (default all)\n"
          "  --json            machine-readable output\n",
          f);
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *classes = NULL, *shape = NULL, *shift = NULL, *v = NULL;
    odl_split split = ODL_SPLIT_TEST;
    int32_t batch = 256, limit = 0;
    int json = 0;
    cli_args a = {argc, argv, 1, "eval"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if ((r = cli_opt(&a, "--data", &data))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--classes", &classes))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--shape", &shape)) || (r = cli_opt(&a, "--shift", &shift))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--split", &v))) {
            if (r < 0 || cli_parse_split(v, &split)) return 2;
        } else if ((r = cli_opt(&a, "--batch", &v))) {
            if (r < 0 || cli_parse_int("--batch", v, 1, 65536, &batch)) return 2;
        } else if ((r = cli_opt(&a, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 1, 2147483647L, &limit)) return 2;
        } else if (argv[a.i][0] == '-') {
            cli_error("eval: unknown option '%s' (see odl eval --help)", argv[a.i]);
            return 2;
        } else if (!model) {
            model = argv[a.i];
        } else {
            cli_error("eval: one model at a time ('%s' is extra)", argv[a.i]);
            return 2;
        }
    }
    if (!model || !data) {
        cli_error("eval: a MODEL.odl and --data are required (see odl eval --help)");
        return 2;
    }
    odl_shift sh;
    odl_diag sd;
    if (odl_shift_parse(shift, &sh, &sd) != ODL_OK) {
        cli_error("%s", sd.msg);
        return 2;
    }
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = batch;
    cli_model cm;
    if (cli_check_classes(classes))
        return 2;
    if (cli_model_load(model, &cfg, &cm))
        return 1;
    odl_dataset ds;
    if (cli_load_data(data, split, ODL_SPLIT_TEST, classes, shape, limit, &ds)) {
        cli_model_free(&cm);
        return 1;
    }
    /* CSV rows are flat; give them the model's input shape */
    if (cli_fit_shape(&ds, &cm.desc, data)) {
        odl_dataset_free(&ds);
        cli_model_free(&cm);
        return 1;
    }
    odl_dataset_shift(&ds, &sh);
    cli_eval ev;
    int rc = cli_evaluate(cm.m, &ds, batch, &ev);
    if (rc) {
        odl_dataset_free(&ds);
        cli_model_free(&cm);
        return rc;
    }
    const int32_t C = ev.n_classes;
    if (json) {
        printf("{\"model\": ");
        json_str(stdout, model);
        printf(", \"data\": ");
        json_str(stdout, data);
        printf(", \"samples\": %lld, \"correct\": %lld, \"accuracy\": %.6f, \"per_class\": [",
               (long long)ev.n, (long long)ev.correct, (double)ev.correct / (double)ev.n);
        int first = 1;
        for (int32_t c = 0; c < C; c++) {
            int64_t tot = 0;
            for (int32_t j = 0; j < C; j++)
                tot += ev.confusion[(size_t)c * C + j];
            if (!tot)
                continue;
            printf("%s{\"class\": %d, \"samples\": %lld, \"accuracy\": %.6f}", first ? "" : ", ", (int)c,
                   (long long)tot, (double)ev.confusion[(size_t)c * C + c] / (double)tot);
            first = 0;
        }
        printf("], \"confusion\": [");
        for (int32_t c = 0; c < C; c++) {
            printf("%s[", c ? ", " : "");
            for (int32_t j = 0; j < C; j++)
                printf("%s%lld", j ? ", " : "", (long long)ev.confusion[(size_t)c * C + j]);
            printf("]");
        }
        printf("]}\n");
    } else {
        printf("accuracy %.2f%% (%lld of %lld) on %s\n", 100.0 * (double)ev.correct / (double)ev.n,
               (long long)ev.correct, (long long)ev.n, data);
        printf("\nper class:\n");
        for (int32_t c = 0; c < C; c++) {
            int64_t tot = 0;
            for (int32_t j = 0; j < C; j++)
                tot += ev.confusion[(size_t)c * C + j];
            if (tot)
                printf("  class %3d  %6.2f%%  (%lld samples)\n", (int)c,
                       100.0 * (double)ev.confusion[(size_t)c * C + c] / (double)tot, (long long)tot);
        }
        printf("\nconfusion matrix (rows: true class, columns: predicted):\n      ");
        for (int32_t j = 0; j < C; j++)
            printf("%6d", (int)j);
        printf("\n");
        for (int32_t c = 0; c < C; c++) {
            printf("%6d", (int)c);
            for (int32_t j = 0; j < C; j++)
                printf("%6lld", (long long)ev.confusion[(size_t)c * C + j]);
            printf("\n");
        }
    }
    cli_eval_free(&ev);
    odl_dataset_free(&ds);
    cli_model_free(&cm);
    return 0;
}
