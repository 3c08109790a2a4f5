/* libFuzzer target: the event log of 'odl session' (tools/odl/evlog.c) on
 * arbitrary bytes, parsed from a buffer exactly as the tool parses a file.
 * Beyond "no crash", it checks what the parser promises: line numbers only
 * grow and never pass the real number of lines, every number is in range,
 * every save target is a plain file name, and an error names its line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/odl/evlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    int64_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += buf[i] == '\n';
    evlog_reader r;
    evlog_event e;
    char err[512];
    evlog_reader_init(&r, buf, size);
    int32_t last = 0;
    int k;
    while ((k = evlog_next(&r, &e, err, sizeof err)) == 1) {
        if (e.line <= last || e.line > lines)
            abort();
        last = e.line;
        if (e.index < 0 || e.label < 0 || e.steps < 1)
            abort();
        if (e.kind > EVLOG_SAVE)
            abort();
        if (e.kind == EVLOG_SAVE &&
            (!evlog_name_ok(e.name, strlen(e.name)) || strchr(e.name, '/') || !strcmp(e.name, "..")))
            abort();
    }
    if (k < 0) {
        /* "LINE: reason", LINE the line after the last good event or later */
        char *end;
        long n = strtol(err, &end, 10);
        if (end == err || *end != ':' || n <= last || n > lines)
            abort();
    }
    if (r.pos > size)
        abort();
    return 0;
}
