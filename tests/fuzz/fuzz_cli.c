/* libFuzzer target: the command line's option parsing (tools/odl/cli.c and
 * the spec parsers it calls). The input is split at NUL bytes into an argv;
 * each argument goes through the option matcher (--name VALUE and
 * --name=VALUE forms) and every value parser: whole numbers, numbers,
 * CxHxW shapes, splits, --shift and --classes specs, save names of the event
 * log, and the text escaper used for metadata (whose output must hold no
 * control byte). Nothing here touches the file system. Run it with
 * -close_fd_mask=2: every refusal prints its one-line error. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/odl/cli.h"
#include "../../tools/odl/evlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
        argv[argc++] = copy + i;
        i += strlen(copy + i) + 1;
    }
    argv[argc] = NULL;
    static const char *const names[] = {"--epochs", "--lr", "--shape", "--split", "--shift", "--classes",
                                        "-o",       "--seed", "--out-dir"};
    cli_args a = {argc, argv, 1, "fuzz"};
    for (; a.i < argc; a.i++) {
        const char *v = NULL;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            int r = cli_opt(&a, names[k], &v);
            if (r < 0 || (r > 0 && (!v || a.i >= argc)))
                break;
            if (r == 0)
                continue;
            int32_t i32, c, h, w;
            float f;
            odl_split sp;
            odl_shift sh;
            odl_class_set cs;
            odl_diag d;
            if (!cli_parse_int(names[k], v, -5, 1 << 24, &i32) && (i32 < -5 || i32 > (1 << 24)))
                abort();
            if (!cli_parse_float(names[k], v, 1e-9, 10.0, &f) && !(f >= 1e-9f && f <= 10.0f))
                abort();
            if (!cli_parse_shape(v, &c, &h, &w) && (c <= 0 || h <= 0 || w <= 0))
                abort();
            cli_parse_split(v, &sp);
            odl_shift_parse(v, &sh, &d);
            odl_class_set_parse(v, &cs, &d);
            evlog_name_ok(v, strlen(v));
            break;
        }
        cli_flag(&a, "--quiet");
        char out[256];
        size_t n = cli_escape_text(argv[a.i], out, sizeof out);
        if (n >= sizeof out || out[n] != '\0')
            abort();
        for (size_t k = 0; k < n; k++)
            if ((unsigned char)out[k] < 0x20 || out[k] == 0x7f)
                abort();
    }
    free(copy);
    return 0;
}
