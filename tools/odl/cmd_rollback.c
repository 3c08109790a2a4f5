/* odl rollback: make an earlier version of a model store current again. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "cli.h"
#include "odl/store.h"

void store_iso_time(uint64_t t, char *out, size_t cap); /* cmd_versions.c */

static void help(FILE *f)
{
    fputs("usage: odl rollback --store DIR [--steps N | --to ID]\n"
          "\n"
          "Makes an earlier version of the model store DIR current again, following\n"
          "the parent chain from the current version (default: one step). The newer\n"
          "versions stay in the store (until the store's keep limit pushes them out),\n"
          "so 'odl rollback --to ID' can return to one of them. The change is written\n"
          "atomically: a power cut leaves either the old or the new current version.\n"
          "A store another process is using is waited for (at most 10 s; the\n"
          "environment variable ODL_STORE_WAIT=SECONDS changes it).\n"
          "\n"
          "  --store DIR  the store directory (docs/store.md)\n"
          "  --steps N    how many parents back to go              (default 1)\n"
          "  --to ID      make version ID current (any kept version)\n",
          f);
}

int cmd_rollback(int argc, char **argv)
{
    const char *dir = NULL, *v = NULL;
    int32_t steps = 1, to = 0;
    int steps_given = 0;
    cli_args a = {argc, argv, 1, "rollback"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if ((r = cli_opt(&a, "--store", &v))) {
            if (r < 0)
                return 2;
            dir = v;
        } else if ((r = cli_opt(&a, "--steps", &v))) {
            if (r < 0 || cli_parse_int("--steps", v, 1, 1000000, &steps))
                return 2;
            steps_given = 1;
        } else if ((r = cli_opt(&a, "--to", &v))) {
            if (r < 0 || cli_parse_int("--to", v, 1, 2147483647L, &to))
                return 2;
        } else {
            cli_error("rollback: unknown argument '%s' (see odl rollback --help)", argv[a.i]);
            return 2;
        }
    }
    if (!dir) {
        cli_error("rollback: --store DIR is required (see odl rollback --help)");
        return 2;
    }
    if (to && steps_given) {
        cli_error("rollback: give --steps or --to, not both");
        return 2;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;
    odl_status s = odl_store_host_open(&h, dir, 0, &d);
    if (s != ODL_OK)
        return cli_fail("rollback", s, &d);
    odl_store *st = h.store;
    const uint32_t was = odl_store_current(st);
    if (!was) {
        odl_store_host_close(&h);
        return cli_error("rollback: %s: the store is empty (no version committed yet)", dir);
    }
    if (odl_store_skipped(st))
        fprintf(stderr, "odl: warning: %s: %d damaged or incomplete record%s skipped (%s)\n", dir,
                (int)odl_store_skipped(st), odl_store_skipped(st) == 1 ? "" : "s",
                odl_store_problem(st));
    const uint64_t now = (uint64_t)time(NULL);
    if (to)
        s = odl_store_checkout(st, (uint32_t)to, now, &d);
    else
        s = odl_store_rollback(st, steps, now, NULL, &d);
    if (s != ODL_OK) {
        if (h.posix.last_error.msg[0]) {
            size_t n = strlen(d.msg);
            if (snprintf(d.msg + n, sizeof d.msg - n, " [%s]", h.posix.last_error.msg) < 0)
                d.msg[n] = '\0'; /* a detail that does not fit is cut, not an error */
        }
        odl_diag_prefix(&d, dir);
        odl_store_host_close(&h);
        return cli_fail("", s, &d);
    }
    const uint32_t cur = odl_store_current(st);
    odl_store_version ver;
    odl_store_find(st, cur, &ver);
    char when[40];
    store_iso_time(ver.meta.time, when, sizeof when);
    if (cur == was)
        printf("v%u is already current; nothing changed\n", (unsigned)cur);
    else if (to)
        printf("current is now v%u (was v%u)\n", (unsigned)cur, (unsigned)was);
    else
        printf("rolled back %d step%s: current is now v%u (was v%u)\n", (int)steps,
               steps == 1 ? "" : "s", (unsigned)cur, (unsigned)was);
    printf("  v%u: committed %s, %u bytes, strategy %s%s%s\n", (unsigned)cur, when,
           (unsigned)ver.payload_len, ver.meta.strategy[0] ? ver.meta.strategy : "-",
           ver.meta.description[0] ? ", " : "", ver.meta.description);
    odl_store_host_close(&h);
    return 0;
}
