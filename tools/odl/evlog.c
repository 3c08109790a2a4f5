/* The event log of 'odl session': see evlog.h. */
#define _POSIX_C_SOURCE 200809L
#include "evlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void evlog_reader_init(evlog_reader *r, const char *buf, size_t len)
{
    r->buf = buf;
    r->len = buf ? len : 0;
    r->pos = 0;
    r->line = 0;
}

int evlog_name_ok(const char *name, size_t n)
{
    if (n == 0 || n > EVLOG_NAME_MAX || name[0] == '.' || name[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '+' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* A whole number: decimal digits only (no sign, no space), at most `max`. */
static int parse_uint(const char *s, size_t n, uint32_t max, int32_t *out)
{
    if (n == 0 || n > 10)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return 0;
    *out = (int32_t)v;
    return 1;
}

static int field_is(const char *f, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(f, word, n) == 0;
}

#define MAX_FIELDS 5

static int fail(char *err, size_t cap, int32_t line, const char *msg)
{
    if (err && cap)
        snprintf(err, cap, "%ld: %s", (long)line, msg);
    return -1;
}

int evlog_next(evlog_reader *r, evlog_event *e, char *err, size_t cap)
{
    while (r->pos < r->len) {
        const char *p = r->buf + r->pos;
        size_t rest = r->len - r->pos;
        const char *nl = memchr(p, '\n', rest);
        size_t n = nl ? (size_t)(nl - p) : rest;
        r->pos += nl ? n + 1 : n;
        if (r->line == INT32_MAX)
            return fail(err, cap, r->line, "too many lines");
        r->line++;
        if (n && p[n - 1] == '\r')
            n--;
        if (memchr(p, '\0', n))
            return fail(err, cap, r->line, "a NUL byte in the line (the log is text)");
        while (n && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        if (n == 0 || *p == '#')
            continue;
        /* split at commas: every field is kept, extra ones are an error */
        const char *f[MAX_FIELDS];
        size_t fl[MAX_FIELDS];
        int nf = 0;
        size_t start = 0;
        for (size_t i = 0; i <= n; i++)
            if (i == n || p[i] == ',') {
                if (nf == MAX_FIELDS)
                    return fail(err, cap, r->line, "too many fields");
                f[nf] = p + start;
                fl[nf] = i - start;
                nf++;
                start = i + 1;
            }
        memset(e, 0, sizeof *e);
        e->line = r->line;
        e->steps = 1;
        int want;
        if (field_is(f[0], fl[0], "predict"))
            e->kind = EVLOG_PREDICT, want = 3;
        else if (field_is(f[0], fl[0], "label"))
            e->kind = EVLOG_LABEL, want = 4;
        else if (field_is(f[0], fl[0], "right"))
            e->kind = EVLOG_RIGHT, want = 3;
        else if (field_is(f[0], fl[0], "wrong"))
            e->kind = EVLOG_WRONG, want = 3;
        else if (field_is(f[0], fl[0], "update"))
            e->kind = EVLOG_UPDATE, want = 1;
        else if (field_is(f[0], fl[0], "calibrate"))
            e->kind = EVLOG_CALIBRATE, want = 1;
        else if (field_is(f[0], fl[0], "rollback"))
            e->kind = EVLOG_ROLLBACK, want = nf == 1 ? 1 : 2;
        else if (field_is(f[0], fl[0], "save"))
            e->kind = EVLOG_SAVE, want = 2;
        else
            return fail(err, cap, r->line,
                        "unknown event (expected predict, label, right, wrong, update, calibrate, rollback or save)");
        if (nf != want) {
            static const char *const forms[] = {
                "predict,user|orig,INDEX", "label,user|orig,INDEX,LABEL", "right,user|orig,INDEX",
                "wrong,user|orig,INDEX",   "update",                      "calibrate",
                "rollback[,STEPS]",        "save,FILE"};
            char msg[96];
            snprintf(msg, sizeof msg, "expected %s (%d field%s, found %d)", forms[e->kind], want,
                     want == 1 ? "" : "s", nf);
            return fail(err, cap, r->line, msg);
        }
        if (want >= 3 && e->kind != EVLOG_SAVE) {
            if (field_is(f[1], fl[1], "user"))
                e->src_user = 1;
            else if (!field_is(f[1], fl[1], "orig"))
                return fail(err, cap, r->line, "SRC must be user or orig");
            if (!parse_uint(f[2], fl[2], INT32_MAX, &e->index))
                return fail(err, cap, r->line, "INDEX must be a whole number 0..2147483647 (digits only)");
        }
        if (e->kind == EVLOG_LABEL && !parse_uint(f[3], fl[3], INT32_MAX, &e->label))
            return fail(err, cap, r->line, "LABEL must be a whole number 0..2147483647 (digits only)");
        if (e->kind == EVLOG_ROLLBACK && nf == 2 &&
            (!parse_uint(f[1], fl[1], INT32_MAX, &e->steps) || e->steps < 1))
            return fail(err, cap, r->line, "STEPS must be a whole number 1..2147483647 (digits only)");
        if (e->kind == EVLOG_SAVE) {
            if (!evlog_name_ok(f[1], fl[1]))
                return fail(err, cap, r->line,
                            "save: FILE must be a plain file name (letters, digits, '.', '_', '+', '-'; "
                            "not starting with '.' or '-'; at most 255 bytes): it is written in --out-dir");
            memcpy(e->name, f[1], fl[1]);
            e->name[fl[1]] = '\0';
        }
        return 1;
    }
    return 0;
}

int evlog_read_file(const char *path, char **buf, size_t *len, char *err, size_t cap)
{
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below */
    int fd;
    do {
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        snprintf(err, cap, "%s: cannot open the event log: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, cap, "%s: the event log must be a regular file (not a directory, device or pipe)", path);
        close(fd);
        return -1;
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > EVLOG_MAX_BYTES) {
        snprintf(err, cap, "%s: the event log is %lld bytes; at most %zu are read", path, (long long)sb.st_size,
                 EVLOG_MAX_BYTES);
        close(fd);
        return -1;
    }
    size_t want = (size_t)sb.st_size;
    char *p = malloc(want ? want : 1);
    if (!p) {
        snprintf(err, cap, "%s: out of memory (%zu bytes)", path, want);
        close(fd);
        return -1;
    }
    size_t n = 0;
    while (n < want) { /* the size at open: a log growing meanwhile is read as it was */
        ssize_t k = read(fd, p + n, want - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(err, cap, "%s: read failed: %s", path, strerror(errno));
            free(p);
            close(fd);
            return -1;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    *buf = p;
    *len = n;
    return 0;
}
