/* odl — the host tool: train, evaluate and inspect on-device learning models. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"

static void usage(FILE *f)
{
    fputs("usage: odl <command> [options]\n"
          "\n"
          "commands:\n"
          "  train   train a base model on a dataset and save it (.odl)\n"
          "  eval    accuracy, per-class accuracy and confusion matrix of a model\n"
          "  info    layers, parameters and the exact memory plan of a model\n"
          "  adapt   adapt a model to a user's examples (transfer / continual learning)\n"
          "  experiment  run the standard experiments (S1, S2, S3) of docs/protocol.md\n"
          "  quantize  convert a model's frozen layers to INT8\n"
          "  drift     run drift detectors over a data stream\n"
          "  versions  list the versions in a model store\n"
          "  rollback  restore an earlier version of a model store\n"
          "  session   run a logged stream of user events through the learner\n"
          "  export-c  write a .odl file as a C array for firmware\n"
          "  import    convert an ONNX or TFLite model to a .odl model\n"
          "  export    write a .odl model as a TFLite flatbuffer\n"
          "  predict   a model's outputs (logits or probabilities) for every sample\n"
          "  report    an HTML report (charts) of odl experiment --json results\n"
          "  fleet     many devices: simulate on Dask; signed head deltas over MQTT\n"
          "\n"
          "Every command takes --max-memory SIZE (e.g. 512M, 2G; default 4G): the most\n"
          "memory a model, a learner or a dataset may take.\n"
          "\n"
          "Every command that reads CSV data takes --label-col NAME|N: the label's column\n"
          "(default: a header's 'label' column wherever it stands, else the first).\n"
          "\n"
          "Run 'odl <command> --help' for a command's options.\n",
          f);
}

/* A result that did not reach standard output (a full disk, a closed pipe)
 * is a failure, whatever the command thought: flush and close it and say so. */
static int finish_stdout(int rc)
{
    int e = 0;
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout))
        e = errno ? errno : EIO;
    errno = 0;
    if (fclose(stdout) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e)
        return rc;
    fprintf(stderr, "odl: cannot write the output (standard output): %s\n", strerror(e));
    return rc ? rc : 1;
}

/* --max-memory SIZE (or --max-memory=SIZE) is global: taken out of argv
 * wherever it appears, so every command accepts it. 0 = ok, 2 = bad. */
static int take_max_memory(int *argc, char **argv)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--max-memory")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "odl: option --max-memory needs a value (e.g. 512M, 2G)\n");
                return 2;
            }
            v = argv[++i];
        } else if (!strncmp(argv[i], "--max-memory=", 13)) {
            v = argv[i] + 13;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (cli_parse_size(v, &cli_max_memory)) {
            fprintf(stderr, "odl: --max-memory: '%s' is not a size (bytes, or with K, M, G, T: e.g. 512M, 2G)\n", v);
            return 2;
        }
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int main(int argc, char **argv)
{
    if (take_max_memory(&argc, argv))
        return 2;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return finish_stdout(0);
    }
    if (!strcmp(cmd, "--version")) {
        printf("odl %s (libodl %s, file format %d.%d)\n", ODL_TOOL_VERSION, ODL_VERSION_STRING,
               ODL_FILE_VERSION_MAJOR, ODL_FILE_VERSION_MINOR);
        return finish_stdout(0);
    }
    /* --label-col applies to every command that reads CSV data: taken out here */
    int kept = 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--label-col") || !strncmp(argv[i], "--label-col=", 12)) {
            const char *v = argv[i][11] == '=' ? argv[i] + 12 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v) {
                fprintf(stderr, "odl: --label-col needs a column: a header name or a number from 1\n");
                return 2;
            }
            cli_label_col = v;
            continue;
        }
        argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = NULL;
    cli_install_cleanup(); /* an interrupted save leaves no temporary file */
    int rc;
    if (!strcmp(cmd, "train"))
        rc = cmd_train(argc - 1, argv + 1);
    else if (!strcmp(cmd, "eval"))
        rc = cmd_eval(argc - 1, argv + 1);
    else if (!strcmp(cmd, "info"))
        rc = cmd_info(argc - 1, argv + 1);
    else if (!strcmp(cmd, "adapt"))
        rc = cmd_adapt(argc - 1, argv + 1);
    else if (!strcmp(cmd, "experiment"))
        rc = cmd_experiment(argc - 1, argv + 1);
    else if (!strcmp(cmd, "quantize"))
        rc = cmd_quantize(argc - 1, argv + 1);
    else if (!strcmp(cmd, "drift"))
        rc = cmd_drift(argc - 1, argv + 1);
    else if (!strcmp(cmd, "versions"))
        rc = cmd_versions(argc - 1, argv + 1);
    else if (!strcmp(cmd, "rollback"))
        rc = cmd_rollback(argc - 1, argv + 1);
    else if (!strcmp(cmd, "session"))
        rc = cmd_session(argc - 1, argv + 1);
    else if (!strcmp(cmd, "export-c"))
        rc = cmd_export(argc - 1, argv + 1);
    else if (!strcmp(cmd, "export"))
        rc = cmd_export_tflite(argc - 1, argv + 1);
    else if (!strcmp(cmd, "import"))
        rc = cmd_import(argc - 1, argv + 1);
    else if (!strcmp(cmd, "predict"))
        rc = cmd_predict(argc - 1, argv + 1);
    else if (!strcmp(cmd, "fleet"))
        rc = cmd_fleet(argc - 1, argv + 1);
    else if (!strcmp(cmd, "report"))
        rc = cmd_report(argc - 1, argv + 1);
    else {
        fprintf(stderr, "odl: unknown command '%s' (try 'odl --help')\n", cmd);
        return 2;
    }
    return finish_stdout(rc);
}
