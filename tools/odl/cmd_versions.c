/* odl versions: the versions kept in a model store (include/odl/store.h). */
#define _POSIX_C_SOURCE 200809L
#include <string.h>
#include <time.h>

#include "cli.h"
#include "odl/store.h"

static void help(FILE *f)
{
    fputs("usage: odl versions --store DIR [--json]\n"
          "\n"
          "Lists the versions kept in the model store DIR, newest first: id, parent,\n"
          "commit time (UTC), payload bytes, strategy, metrics and description. The\n"
          "current version is marked '*'. Damaged or incomplete records (an\n"
          "interrupted write) are skipped and reported on stderr.\n"
          "A store another process is using is waited for (at most 10 s; the\n"
          "environment variable ODL_STORE_WAIT=SECONDS changes it).\n"
          "\n"
          "  --store DIR  the store directory (docs/store.md)\n"
          "  --json       machine-readable output\n",
          f);
}

/* "2024-05-01T12:00:00Z", or "-" for time 0. */
void store_iso_time(uint64_t t, char *out, size_t cap);
void store_iso_time(uint64_t t, char *out, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t == 0 || (uint64_t)tt != t || !gmtime_r(&tt, &tm) ||
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "-");
}

static void print_metrics_text(const odl_store_meta *m, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int32_t i = 0; i < m->n_metrics && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s=%.4g", i ? "," : "", m->metrics[i].key,
                              (double)m->metrics[i].value);
    if (!out[0])
        snprintf(out, cap, "-");
}

int cmd_versions(int argc, char **argv)
{
    const char *dir = NULL, *v = NULL;
    int json = 0;
    cli_args a = {argc, argv, 1, "versions"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if ((r = cli_opt(&a, "--store", &v))) {
            if (r < 0)
                return 2;
            dir = v;
        } else {
            cli_error("versions: unknown argument '%s' (see odl versions --help)", argv[a.i]);
            return 2;
        }
    }
    if (!dir) {
        cli_error("versions: --store DIR is required (see odl versions --help)");
        return 2;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;
    odl_status s = odl_store_host_open(&h, dir, 0, &d);
    if (s != ODL_OK)
        return cli_fail("versions", s, &d);
    const odl_store *st = h.store;
    const int32_t n = odl_store_count(st);
    const uint32_t cur = odl_store_current(st);
    if (odl_store_skipped(st))
        fprintf(stderr, "odl: warning: %s: %d damaged or incomplete record%s skipped (%s)\n", dir,
                (int)odl_store_skipped(st), odl_store_skipped(st) == 1 ? "" : "s",
                odl_store_problem(st));
    char when[40], mets[200];
    if (json) {
        printf("{\"store\": ");
        json_str(stdout, dir);
        printf(", \"keep\": %d, \"current\": %u, \"skipped\": %d, \"versions\": [", (int)odl_store_keep(st),
               (unsigned)cur, (int)odl_store_skipped(st));
        for (int32_t i = 0; i < n; i++) {
            odl_store_version ver;
            odl_store_get(st, i, &ver);
            store_iso_time(ver.meta.time, when, sizeof when);
            printf("%s{\"id\": %u, \"parent\": %u, \"time\": %llu, \"time_iso\": ", i ? ", " : "",
                   (unsigned)ver.meta.id, (unsigned)ver.meta.parent, (unsigned long long)ver.meta.time);
            json_str(stdout, when);
            printf(", \"bytes\": %u, \"strategy\": ", (unsigned)ver.payload_len);
            json_str(stdout, ver.meta.strategy);
            printf(", \"description\": ");
            json_str(stdout, ver.meta.description);
            printf(", \"metrics\": {");
            for (int32_t k = 0; k < ver.meta.n_metrics; k++) {
                printf("%s", k ? ", " : "");
                json_str(stdout, ver.meta.metrics[k].key);
                printf(": %.9g", (double)ver.meta.metrics[k].value);
            }
            printf("}, \"current\": %s}", ver.is_current ? "true" : "false");
        }
        printf("]}\n");
        odl_store_host_close(&h);
        return 0;
    }
    if (n == 0) {
        printf("store %s: empty (keeps %d versions)\n", dir, (int)odl_store_keep(st));
        odl_store_host_close(&h);
        return 0;
    }
    odl_store_version newest;
    odl_store_get(st, 0, &newest);
    printf("store %s: %d version%s kept (keeps %d), current v%u", dir, (int)n, n == 1 ? "" : "s",
           (int)odl_store_keep(st), (unsigned)cur);
    if (newest.meta.id != cur)
        printf(" (rolled back; newest is v%u)", (unsigned)newest.meta.id);
    printf("\n\n    %-6s %-6s %-20s %9s  %-12s %-24s %s\n", "id", "parent", "time (UTC)", "bytes",
           "strategy", "metrics", "description");
    for (int32_t i = 0; i < n; i++) {
        odl_store_version ver;
        odl_store_get(st, i, &ver);
        char id[16], parent[16];
        snprintf(id, sizeof id, "v%u", (unsigned)ver.meta.id);
        if (ver.meta.parent)
            snprintf(parent, sizeof parent, "v%u", (unsigned)ver.meta.parent);
        else
            snprintf(parent, sizeof parent, "-");
        store_iso_time(ver.meta.time, when, sizeof when);
        print_metrics_text(&ver.meta, mets, sizeof mets);
        /* the store's text is the medium's: escaped, so it cannot drive the terminal */
        char strategy[4 * sizeof ver.meta.strategy], mets_text[4 * sizeof mets],
            description[4 * sizeof ver.meta.description];
        cli_escape_text(ver.meta.strategy, strategy, sizeof strategy);
        cli_escape_text(mets, mets_text, sizeof mets_text);
        cli_escape_text(ver.meta.description, description, sizeof description);
        printf("  %c %-6s %-6s %-20s %9u  %-12s %-24s %s\n", ver.is_current ? '*' : ' ', id, parent,
               when, (unsigned)ver.payload_len, strategy[0] ? strategy : "-", mets_text, description);
    }
    odl_store_host_close(&h);
    return 0;
}
