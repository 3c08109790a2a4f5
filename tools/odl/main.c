/* odl — the host tool: train, evaluate and inspect on-device learning models. */
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
          "  experiment  run the standard experiments (S1, S2, S3) of PROTOCOL.md\n"
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
          "\n"
          "Run 'odl <command> --help' for a command's options.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("odl %s (libodl %s, file format %d.%d)\n", ODL_TOOL_VERSION, ODL_VERSION_STRING,
               ODL_FILE_VERSION_MAJOR, ODL_FILE_VERSION_MINOR);
        return 0;
    }
    if (!strcmp(cmd, "train"))
        return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "adapt"))
        return cmd_adapt(argc - 1, argv + 1);
    if (!strcmp(cmd, "experiment"))
        return cmd_experiment(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize"))
        return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "drift"))
        return cmd_drift(argc - 1, argv + 1);
    if (!strcmp(cmd, "versions"))
        return cmd_versions(argc - 1, argv + 1);
    if (!strcmp(cmd, "rollback"))
        return cmd_rollback(argc - 1, argv + 1);
    if (!strcmp(cmd, "session"))
        return cmd_session(argc - 1, argv + 1);
    if (!strcmp(cmd, "export-c"))
        return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return cmd_export_tflite(argc - 1, argv + 1);
    if (!strcmp(cmd, "import"))
        return cmd_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "report"))
        return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "odl: unknown command '%s' (try 'odl --help')\n", cmd);
    return 2;
}
