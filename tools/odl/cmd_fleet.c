/* odl fleet publish | collect | keygen: signed head deltas over MQTT
 * (odl/delta.h for the messages, odl/mqtt.h for the transport;
 * docs/fleet-transport.md). Key files, the sequence-number state and the
 * collected deltas are read and written by the rules of every odl file:
 * regular files only, never through a symlink, checked lengths, atomic
 * writes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "learn.h"
#include "odl/delta.h"
#ifdef ODL_HAVE_MQTT
#include "odl/mqtt.h"
#endif

#define KEY_FILE_MAX 4096u                 /* one device's key file */
#define KEYS_FILE_MAX ((size_t)64 << 20)   /* the server's keys: about 400,000 devices */
#define STATE_FILE_MAX ((size_t)64 << 20)
#define LINE_MAX_BYTES 1024u
#define DEFAULT_TOPIC "odl/fleet"
#define STATE_MAGIC "odl-fleet-seq 1"
#define DEFAULT_SESSION_EXPIRY 604800u   /* a week: the broker keeps the collector's queue that long */

static void help(FILE *f)
{
    fputs("usage: odl fleet simulate [options]   (the fleet on Dask: odl fleet simulate --help)\n"
          "       odl fleet aggregate --deltas DIR --global GLOBAL.odl --rule RULE --heldout DATA\n"
          "                           -o NEW.odl [options]   (odl fleet aggregate --help)\n"
          "       odl fleet publish ADAPTED.odl --global GLOBAL.odl --device ID --key-file K\n"
          "                         --round R --seq S [--broker HOST:PORT] [--out FILE] [options]\n"
          "       odl fleet publish --message FILE --broker HOST:PORT [--device ID] [--topic PREFIX]\n"
          "       odl fleet collect --broker HOST:PORT --keys KEYS --global GLOBAL.odl --round R\n"
          "                         --count N --timeout SEC --out DIR [--state FILE] [options]\n"
          "       odl fleet publish-global NEW.odl --global OLD.odl --key-file SERVER.key\n"
          "                         --round R --seq S --broker HOST:PORT [--device ID] [options]\n"
          "       odl fleet fetch-global --broker HOST:PORT --global OLD.odl --server-key K\n"
          "                         --state FILE -o NEW.odl [--server-id ID] [options]\n"
          "       odl fleet keygen --device ID -o KEYFILE\n"
          "\n"
          "aggregate: reads the collected deltas, aggregates them (fedavg, median, trimmed,\n"
          "clip), checks the new global model on held-out data and writes it only if it does\n"
          "not regress (docs/fleet.md).\n"
          "\n"
          "A device sends what it learned as a signed head delta: its head minus the global\n"
          "model's, signed with HMAC-SHA256 under its own key (docs/fleet-transport.md).\n"
          "\n"
          "publish: encodes ADAPTED - GLOBAL for the head and sends it with MQTT QoS 1 to\n"
          "PREFIX/delta/ID (waiting for the broker's acknowledgement), and/or writes it to\n"
          "--out FILE. With --message FILE, sends a message made elsewhere as it is.\n"
          "  --examples N     examples the device learned from (the aggregator's weight; default 1)\n"
          "  --unfreeze K     the head: the last K+1 parameterised layers (as odl adapt; default 0)\n"
          "  --topic PREFIX   MQTT topic prefix                        (default " DEFAULT_TOPIC ")\n"
          "  --timeout SEC    for the broker's answers                 (default 10)\n"
          "  --tls-ca FILE    TLS to the broker, whose certificate must be signed by this CA\n"
          "                   (PEM) and name HOST; without it, plain TCP\n"
          "  --username NAME --password-file FILE   the broker's user (the password on the\n"
          "                   file's first line; the file private as a key file)\n"
          "\n"
          "collect: subscribes to PREFIX/delta/+, verifies every message (framing, CRCs, the\n"
          "device's signature, round, sequence number, base model, head shape, finite values),\n"
          "writes each accepted one atomically as DIR/ID.delta (the message as received) and\n"
          "stops when N devices have sent an accepted delta or after SEC seconds. Sequence\n"
          "numbers are kept in --state FILE (default DIR/sequence.state), so a message\n"
          "replayed in a later run is refused too. Prints a JSON summary: accepted, refused by\n"
          "reason. Exit status 0 when N devices were collected, 3 on a timeout short of N.\n"
          "  --keys KEYS      lines 'ID HEX-KEY' (IDs 0..4294967295, keys 16..64 bytes)\n"
          "  --max-message B  the largest message taken: the broker keeps larger ones away\n"
          "                   (MQTT 5 Maximum Packet Size; default 16M)\n"
          "  --client-id ID   the collector's MQTT client id       (default odl-collector:PREFIX)\n"
          "  --session-expiry SEC  a persistent session: the broker keeps the subscription and\n"
          "                   queues deltas (QoS 1) for ID while no collector runs, for SEC\n"
          "                   seconds after it leaves (default 604800, a week; 0: a clean\n"
          "                   session, deltas sent while no collector runs are lost)\n"
          "  --unfreeze K --topic PREFIX --tls-ca --username --password-file   as for publish\n"
          "  --quiet          no line per message on standard error\n"
          "\n"
          "publish-global: the server's new global head, NEW - OLD signed with the server's\n"
          "key (signer id --device, default 0), as a retained message on PREFIX/global: the\n"
          "broker hands it to every device that subscribes later.\n"
          "\n"
          "fetch-global: a device takes that message, verifies it (the server's signature,\n"
          "made against OLD, its head's shape, a sequence number above the last one taken,\n"
          "kept in --state FILE), adds it to OLD's head and writes NEW.odl. Prints a JSON\n"
          "summary. Exit 0 updated; 3 nothing on the broker within --timeout, or refused\n"
          "(e.g. wrong_base: OLD is already the new model, or more than one version behind).\n"
          "  --server-id ID   the signer's id in the message (default 0)\n"
          "  --unfreeze K --topic PREFIX --timeout --tls-ca --username --password-file   as above\n"
          "\n"
          "keygen: writes a new random 32-byte key for device ID to KEYFILE (mode 0600) and\n"
          "prints the line 'ID HEX-KEY' for the server's KEYS file.\n"
          "\n"
          "Key files hold the key as hex (comment lines start with #). They must be regular\n"
          "files owned by you (or root) that no one else can read or write (chmod 600).\n",
          f);
}

/* ---- strict text parsing --------------------------------------------------- */

static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        const uint64_t dgt = (uint64_t)(s[i] - '0');
        if (v > (max - dgt) / 10u)
            return 0;
        v = v * 10u + dgt;
    }
    *out = v;
    return 1;
}

static int opt_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v = 0;
    if (!parse_u64(s, strlen(s), hi, &v) || v < lo) {
        cli_error("fleet: %s '%s' is not a whole number in %llu..%llu", opt, s, (unsigned long long)lo,
                  (unsigned long long)hi);
        return 1;
    }
    *out = v;
    return 0;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A key: 32..128 hex digits (16..64 bytes). */
static int parse_key(const char *s, size_t n, uint8_t *key, uint32_t *key_len)
{
    if (n % 2 || n < 2 * ODL_DELTA_KEY_MIN || n > 2 * ODL_DELTA_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i += 2) {
        const int hi = hex_val(s[i]), lo = hex_val(s[i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        key[i / 2] = (uint8_t)(hi * 16 + lo);
    }
    *key_len = (uint32_t)(n / 2);
    return 1;
}

/* Lines of a text file: blank lines and '#' comments skipped; fields split on
 * spaces and tabs. Returns the number of fields (at most cap; -1: too many or
 * a line over LINE_MAX_BYTES); 0 at the end of the text. */
typedef struct lines {
    const char *p, *end;
    long line;
} lines;

typedef struct field {
    const char *s;
    size_t n;
} field;

static int next_line(lines *L, field *f, int cap)
{
    while (L->p < L->end) {
        const char *nl = memchr(L->p, '\n', (size_t)(L->end - L->p));
        const char *e = nl ? nl : L->end;
        const char *s = L->p;
        L->p = nl ? nl + 1 : L->end;
        L->line++;
        if ((size_t)(e - s) > LINE_MAX_BYTES)
            return -1;
        if (e > s && e[-1] == '\r')
            e--;
        int nf = 0;
        while (s < e) {
            while (s < e && (*s == ' ' || *s == '\t'))
                s++;
            if (s == e)
                break;
            if (nf == 0 && *s == '#') {
                s = e;
                break;
            }
            const char *w = s;
            while (s < e && *s != ' ' && *s != '\t')
                s++;
            if (nf == cap)
                return -1;
            f[nf].s = w;
            f[nf].n = (size_t)(s - w);
            nf++;
        }
        if (nf)
            return nf;
    }
    return 0;
}

/* ---- files ------------------------------------------------------------------ */

/* Reads a small private file: a regular file (not a symlink, device or FIFO),
 * owned by this user or root, no bigger than max bytes, with no NUL byte.
 * private_read: nobody else may read or write it (keys); otherwise nobody
 * else may write it (the sequence state). Returns 0, or 1 after printing
 * the error; ENOENT is left to the caller when missing_ok (returns 2). */
static int read_guarded(const char *path, const char *what, size_t max, int private_read, int missing_ok,
                        char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return 2;
        if (errno == ELOOP)
            return cli_error("fleet: %s %s is a symbolic link; give the file itself", what, path);
        return cli_error("fleet: cannot open the %s %s: %s", what, path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cli_error("fleet: cannot stat the %s %s: %s", what, path, strerror(e));
    }
    const char *problem = NULL;
    char buf[160];
    if (!S_ISREG(st.st_mode))
        problem = "is not a regular file";
    else if (st.st_uid != geteuid() && st.st_uid != 0)
        problem = "belongs to another user";
    else if (private_read && (st.st_mode & 077)) {
        snprintf(buf, sizeof buf, "has permissions %04o: others may read or change it (chmod 600 %s)",
                 (unsigned)(st.st_mode & 0777), path);
        problem = buf;
    } else if (!private_read && (st.st_mode & 022)) {
        snprintf(buf, sizeof buf, "has permissions %04o: others may change it (chmod 644 or 600)",
                 (unsigned)(st.st_mode & 0777));
        problem = buf;
    } else if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max) {
        snprintf(buf, sizeof buf, "is %lld bytes, over the %zu-byte limit", (long long)st.st_size, max);
        problem = buf;
    }
    if (problem) {
        close(fd);
        return cli_error("fleet: the %s %s %s", what, path, problem);
    }
    const size_t n = (size_t)st.st_size;
    char *p = malloc(n + 1);
    if (!p) {
        close(fd);
        return cli_error("fleet: out of memory reading %s", path);
    }
    size_t got = 0;
    for (;;) {
        /* one byte past the size seen: a file that grew is refused, not cut */
        ssize_t r = read(fd, p + got, n + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(p);
            close(fd);
            return cli_error("fleet: cannot read the %s %s: %s", what, path, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > n)
            break;
    }
    close(fd);
    if (got != n) {
        free(p);
        return cli_error("fleet: the %s %s changed while it was read; try again", what, path);
    }
    if (memchr(p, '\0', n)) {
        free(p);
        return cli_error("fleet: the %s %s holds a NUL byte: not a text file", what, path);
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    return 0;
}

static void wipe_free(void *p, size_t n)
{
    if (!p)
        return;
    volatile uint8_t *v = p;
    for (size_t i = 0; i < n; i++)
        v[i] = 0;
    free(p);
}

/* A device's key file: one line of hex. */
static int load_device_key(const char *path, uint8_t *key, uint32_t *key_len)
{
    char *text;
    size_t n;
    if (read_guarded(path, "key file", KEY_FILE_MAX, 1, 0, &text, &n))
        return 1;
    lines L = {text, text + n, 0};
    field f[2];
    int nf = next_line(&L, f, 1);
    int rc = 0;
    if (nf != 1 || !parse_key(f[0].s, f[0].n, key, key_len))
        rc = cli_error("fleet: key file %s, line %ld: want one key of %d..%d hex digits on a line of its own",
                       path, L.line, 2 * ODL_DELTA_KEY_MIN, 2 * ODL_DELTA_KEY_MAX);
    else if (next_line(&L, f, 1) != 0)
        rc = cli_error("fleet: key file %s, line %ld: more than one key", path, L.line);
    wipe_free(text, n);
    return rc;
}

#ifdef ODL_HAVE_MQTT /* the server's side: keys and sequence state */
static int key_cmp(const void *a, const void *b)
{
    const uint32_t x = ((const odl_delta_key *)a)->device_id, y = ((const odl_delta_key *)b)->device_id;
    return x < y ? -1 : x > y;
}

/* The server's keys: lines "ID HEX", sorted by id on return. */
static int load_keys(const char *path, odl_delta_key **out, int32_t *n_out)
{
    char *text;
    size_t n;
    *out = NULL;
    *n_out = 0;
    if (read_guarded(path, "keys file", KEYS_FILE_MAX, 1, 0, &text, &n))
        return 1;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += text[i] == '\n';
    odl_delta_key *keys = calloc(cap, sizeof *keys);
    if (!keys) {
        wipe_free(text, n);
        return cli_error("fleet: out of memory for %zu keys", cap);
    }
    lines L = {text, text + n, 0};
    field f[2];
    int32_t k = 0;
    int rc = 0, nf;
    while ((nf = next_line(&L, f, 2)) != 0) {
        uint64_t id = 0;
        if (nf != 2 || !parse_u64(f[0].s, f[0].n, UINT32_MAX, &id) ||
            !parse_key(f[1].s, f[1].n, keys[k].key, &keys[k].key_len)) {
            rc = cli_error("fleet: keys file %s, line %ld: want 'ID KEY': ID 0..4294967295, KEY %d..%d hex digits",
                           path, L.line, 2 * ODL_DELTA_KEY_MIN, 2 * ODL_DELTA_KEY_MAX);
            break;
        }
        keys[k++].device_id = (uint32_t)id;
    }
    wipe_free(text, n);
    if (!rc && k == 0)
        rc = cli_error("fleet: keys file %s holds no key", path);
    if (!rc) {
        qsort(keys, (size_t)k, sizeof *keys, key_cmp);
        for (int32_t i = 1; i < k && !rc; i++)
            if (keys[i].device_id == keys[i - 1].device_id)
                rc = cli_error("fleet: keys file %s: device %u has two keys", path, (unsigned)keys[i].device_id);
    }
    if (rc) {
        wipe_free(keys, cap * sizeof *keys);
        return rc;
    }
    *out = keys;
    *n_out = k;
    return 0;
}

/* ---- the sequence-number state ------------------------------------------------ */

typedef struct seq_entry {
    uint32_t device_id;
    uint64_t last_seq;
} seq_entry;

typedef struct seq_state {
    seq_entry *e;
    size_t n, cap;
} seq_state;

static seq_entry *state_find(seq_state *s, uint32_t id, size_t *at)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (s->e[mid].device_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at)
        *at = lo;
    return lo < s->n && s->e[lo].device_id == id ? &s->e[lo] : NULL;
}

static int state_set(seq_state *s, uint32_t id, uint64_t seq)
{
    size_t at;
    seq_entry *e = state_find(s, id, &at);
    if (e) {
        e->last_seq = seq;
        return 0;
    }
    if (s->n == s->cap) {
        const size_t c = s->cap ? 2 * s->cap : 64;
        seq_entry *q = realloc(s->e, c * sizeof *q);
        if (!q)
            return cli_error("fleet: out of memory for the sequence state");
        s->e = q;
        s->cap = c;
    }
    memmove(s->e + at + 1, s->e + at, (s->n - at) * sizeof *s->e);
    s->e[at].device_id = id;
    s->e[at].last_seq = seq;
    s->n++;
    return 0;
}

static int state_load(const char *path, seq_state *s)
{
    memset(s, 0, sizeof *s);
    char *text;
    size_t n;
    int r = read_guarded(path, "sequence state", STATE_FILE_MAX, 0, 1, &text, &n);
    if (r == 2)
        return 0; /* the first run */
    if (r)
        return 1;
    lines L = {text, text + n, 0};
    field f[2];
    int rc = 0, nf = next_line(&L, f, 2);
    if (nf != 2 || f[0].n != 13 || memcmp(f[0].s, "odl-fleet-seq", 13) || f[1].n != 1 || f[1].s[0] != '1')
        rc = cli_error("fleet: %s is not an odl sequence state (its first line is not '" STATE_MAGIC "')", path);
    uint64_t prev = 0;
    int first = 1;
    while (!rc && (nf = next_line(&L, f, 2)) != 0) {
        uint64_t id = 0, seq = 0;
        if (nf != 2 || !parse_u64(f[0].s, f[0].n, UINT32_MAX, &id) || !parse_u64(f[1].s, f[1].n, UINT64_MAX, &seq) ||
            seq == 0 || (!first && id <= prev)) {
            rc = cli_error("fleet: sequence state %s, line %ld: want 'DEVICE SEQ' (devices in increasing order, "
                           "SEQ >= 1)", path, L.line);
            break;
        }
        first = 0;
        prev = id;
        rc = state_set(s, (uint32_t)id, seq);
    }
    free(text);
    return rc;
}

static int state_save(const char *path, const seq_state *s)
{
    cli_outfile o;
    if (cli_outfile_open(&o, path))
        return 1;
    fprintf(o.f, "# odl fleet collect: the last accepted sequence number of each device\n" STATE_MAGIC "\n");
    for (size_t i = 0; i < s->n; i++)
        fprintf(o.f, "%u %llu\n", (unsigned)s->e[i].device_id, (unsigned long long)s->e[i].last_seq);
    return cli_outfile_commit(&o);
}

#endif

/* Writes bytes to PATH atomically (a new temporary file, fsync, rename). */
static int write_atomic(const char *path, const void *p, size_t n, int private_mode)
{
    odl_posix_file pf;
    odl_writer w;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_posix_writer_open(&pf, &w, path, &d);
    if (s != ODL_OK)
        return cli_fail(path, s, &d);
    if (private_mode && fchmod(pf.fd, 0600) != 0) {
        int e = errno;
        odl_posix_writer_abort(&pf);
        return cli_error("fleet: cannot make %s private: %s", path, strerror(e));
    }
    s = w.write(w.ctx, p, n);
    if (s == ODL_OK)
        s = odl_posix_writer_commit(&pf, &d);
    else
        odl_posix_writer_abort(&pf);
    if (s != ODL_OK)
        return cli_fail(path, s, &d);
    return 0;
}

/* ---- an in-memory writer ------------------------------------------------------- */

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static odl_status mem_write(void *ctx, const void *data, size_t n)
{
    membuf *b = ctx;
    if (n > b->cap - b->len)
        return ODL_ERR_IO; /* more than planned: a bug, refused rather than grown */
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return ODL_OK;
}

static int load_model(const char *path, cli_model *cm)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    return cli_model_load(path, &cfg, cm);
}

static int check_topic(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 0 || n > 200)
        return cli_error("fleet: --topic '%s': want 1..200 bytes", prefix);
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)prefix[i];
        if (c < 0x21 || c > 0x7e || c == '+' || c == '#')
            return cli_error("fleet: --topic '%s': printable ASCII without spaces, '+' or '#' only", prefix);
    }
    return 0;
}

/* An MQTT client id: 1..200 printable ASCII bytes (brokers differ on anything else). */
static int check_client_id(const char *id)
{
    const size_t n = strlen(id);
    if (n == 0 || n > 200)
        return cli_error("fleet collect: --client-id '%s': want 1..200 bytes", id);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e)
            return cli_error("fleet collect: --client-id '%s': printable ASCII without spaces only", id);
    return 0;
}

/* ---- the broker's TLS and user ----------------------------------------------------- */

typedef struct broker_auth {
    const char *tls_ca, *username, *password_file;
    char password[257];
} broker_auth;

/* --tls-ca FILE, --username NAME, --password-file FILE: 1 if argv[a->i] was
 * one of them (-1: a missing value). */
static int auth_opt(cli_args *a, broker_auth *b)
{
    const char *v = NULL;
    int r;
    if ((r = cli_opt(a, "--tls-ca", &v)))
        b->tls_ca = v;
    else if ((r = cli_opt(a, "--username", &v)))
        b->username = v;
    else if ((r = cli_opt(a, "--password-file", &v)))
        b->password_file = v;
    return r;
}

#ifdef ODL_HAVE_MQTT
/* Checks the options and reads the password (a private file, one line). */
static int auth_load(broker_auth *b)
{
    b->password[0] = '\0';
    if (b->username) {
        const size_t n = strlen(b->username);
        if (n == 0 || n > 256)
            return cli_error("fleet: --username: want 1..256 bytes");
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)b->username[i] < 0x20 || b->username[i] == 0x7f)
                return cli_error("fleet: --username holds a control character");
    }
    if (!b->password_file)
        return 0;
    if (!b->username)
        return cli_error("fleet: --password-file needs --username");
    char *text;
    size_t n;
    if (read_guarded(b->password_file, "password file", KEY_FILE_MAX, 1, 0, &text, &n))
        return 1;
    size_t len = 0;
    while (len < n && text[len] != '\n' && text[len] != '\r')
        len++;
    int rc = 0;
    if (len == 0 || len > 256)
        rc = cli_error("fleet: password file %s: want the password (1..256 bytes) on its first line",
                       b->password_file);
    else {
        memcpy(b->password, text, len);
        b->password[len] = '\0';
    }
    wipe_free(text, n);
    return rc;
}

static odl_mqtt_opts auth_opts(const broker_auth *b, uint32_t max_packet)
{
    odl_mqtt_opts o = {NULL, max_packet, b->tls_ca, b->username, b->password_file ? b->password : NULL, 0};
    return o;
}
#endif

/* ---- keygen -------------------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL, *v = NULL;
    uint64_t device = 0;
    int have_device = 0;
    cli_args a = {argc, argv, 1, "fleet keygen"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if ((r = cli_opt(&a, "--device", &v))) {
            if (r < 0 || opt_u64("--device", v, 0, UINT32_MAX, &device))
                return 2;
            have_device = 1;
        } else if ((r = cli_opt(&a, "-o", &v)) || (r = cli_opt(&a, "--out", &v))) {
            if (r < 0)
                return 2;
            out = v;
        } else {
            cli_error("fleet keygen: unknown argument '%s' (see odl fleet --help)", argv[a.i]);
            return 2;
        }
    }
    if (!have_device || !out) {
        cli_error("fleet keygen: --device ID and -o KEYFILE are required");
        return 2;
    }
    struct stat st;
    if (lstat(out, &st) == 0)
        return cli_error("fleet keygen: %s exists; a key is never overwritten (remove it first)", out);
    uint8_t key[32];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    while (fd >= 0 && got < sizeof key) {
        ssize_t r = read(fd, key + got, sizeof key - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    if (got != sizeof key)
        return cli_error("fleet keygen: cannot read 32 random bytes from /dev/urandom");
    char hex[2 * sizeof key + 2];
    for (size_t i = 0; i < sizeof key; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    hex[2 * sizeof key] = '\n';
    hex[2 * sizeof key + 1] = '\0';
    int rc = write_atomic(out, hex, 2 * sizeof key + 1, 1);
    if (!rc) {
        hex[2 * sizeof key] = '\0';
        printf("%u %s\n", (unsigned)device, hex);
    }
    memset(key, 0, sizeof key);
    memset(hex, 0, sizeof hex);
    return rc;
}

/* ---- publish --------------------------------------------------------------------- */

/* global_mode: `publish-global`, the server's signed global head (device id
 * 0 unless --device, topic PREFIX/global, a retained message). */
static int cmd_publish(int argc, char **argv, int global_mode)
{
    const char *cmd = global_mode ? "fleet publish-global" : "fleet publish";
    const char *adapted = NULL, *global = NULL, *key_file = NULL, *broker = NULL, *out = NULL, *message = NULL;
    const char *topic = DEFAULT_TOPIC, *v = NULL;
    uint64_t device = 0, round = 0, seq = 0, examples = 1, unfreeze = 0;
    int have_device = 0, have_round = 0, have_seq = 0;
    float timeout = 10.0f;
    broker_auth auth;
    memset(&auth, 0, sizeof auth);
    cli_args a = {argc, argv, 1, cmd};
    if (global_mode)
        have_device = 1; /* the server: device id 0 unless --device */
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if ((r = auth_opt(&a, &auth))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--global", &v))) {
            if (r < 0) return 2;
            global = v;
        } else if ((r = cli_opt(&a, "--key-file", &v))) {
            if (r < 0) return 2;
            key_file = v;
        } else if ((r = cli_opt(&a, "--broker", &v))) {
            if (r < 0) return 2;
            broker = v;
        } else if ((r = cli_opt(&a, "--out", &v)) || (r = cli_opt(&a, "-o", &v))) {
            if (r < 0) return 2;
            out = v;
        } else if ((r = cli_opt(&a, "--message", &v))) {
            if (r < 0) return 2;
            message = v;
        } else if ((r = cli_opt(&a, "--topic", &v))) {
            if (r < 0) return 2;
            topic = v;
        } else if ((r = cli_opt(&a, "--device", &v))) {
            if (r < 0 || opt_u64("--device", v, 0, UINT32_MAX, &device)) return 2;
            have_device = 1;
        } else if ((r = cli_opt(&a, "--round", &v))) {
            if (r < 0 || opt_u64("--round", v, 0, UINT32_MAX, &round)) return 2;
            have_round = 1;
        } else if ((r = cli_opt(&a, "--seq", &v))) {
            if (r < 0 || opt_u64("--seq", v, 1, UINT64_MAX, &seq)) return 2;
            have_seq = 1;
        } else if ((r = cli_opt(&a, "--examples", &v))) {
            if (r < 0 || opt_u64("--examples", v, 1, UINT32_MAX, &examples)) return 2;
        } else if ((r = cli_opt(&a, "--unfreeze", &v))) {
            if (r < 0 || opt_u64("--unfreeze", v, 0, 65536, &unfreeze)) return 2;
        } else if ((r = cli_opt(&a, "--timeout", &v))) {
            if (r < 0 || cli_parse_float("--timeout", v, 0.1, 86400.0, &timeout)) return 2;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            cli_error("%s: unknown option '%s' (see odl fleet --help)", cmd, argv[a.i]);
            return 2;
        } else if (!adapted) {
            adapted = argv[a.i];
        } else {
            cli_error("%s: one model only ('%s' and '%s')", cmd, adapted, argv[a.i]);
            return 2;
        }
    }
    if (check_topic(topic))
        return 2;
    if (message && (adapted || global || key_file || out || have_round || have_seq)) {
        cli_error("fleet publish: --message sends a message as it is: no model, --global, --key-file, --round, "
                  "--seq or --out with it");
        return 2;
    }
    if (!message) {
        if (!adapted || !global || !key_file || !have_device || !have_round || !have_seq) {
            cli_error("fleet publish: needs ADAPTED.odl, --global, --device, --key-file, --round and --seq "
                      "(see odl fleet --help)");
            return 2;
        }
        if (!broker && !out) {
            cli_error("%s: nowhere to send it: give --broker HOST:PORT and/or --out FILE", cmd);
            return 2;
        }
        const char *inputs[3] = {adapted, global, key_file};
        if (out) {
            int rc = cli_check_output("--out", out, inputs, 3);
            if (rc)
                return rc;
        }
    } else if (!broker) {
        cli_error("%s: --message needs --broker HOST:PORT", cmd);
        return 2;
    }
    char host[256];
    int port = 0;
    odl_diag d;
    odl_diag_clear(&d);
#ifndef ODL_HAVE_MQTT
    if (broker)
        return cli_error("fleet publish: this odl was built without libmosquitto, so it cannot reach a broker "
                         "(install libmosquitto-dev and rebuild; --out FILE still works)");
#else
    if (broker && odl_mqtt_parse_broker(broker, host, sizeof host, &port, &d) != ODL_OK) {
        cli_fail(cmd, ODL_ERR_ARG, &d);
        return 2;
    }
#endif
    (void)host;
    (void)port;

    uint8_t *msg = NULL;
    size_t msg_len = 0;
    void *msg_file = NULL;
    int rc = 0;
    if (message) {
        odl_status s = odl_host_read_file(message, &msg_file, &msg_len, &d);
        if (s != ODL_OK)
            return cli_fail("", s, &d);
        msg = msg_file;
        if (!have_device) {
            /* the topic names the device the message says it is from (0 if unreadable);
             * the collector trusts the signed id, never the topic */
            odl_delta_view pv;
            odl_delta_parse(msg, msg_len, &pv, NULL, NULL);
            device = pv.info.device_id;
        }
    } else {
        uint8_t key[ODL_DELTA_KEY_MAX];
        uint32_t key_len = 0;
        if (load_device_key(key_file, key, &key_len))
            return 1;
        cli_model dev, glob;
        if (load_model(adapted, &dev)) {
            memset(key, 0, sizeof key);
            return 1;
        }
        if (load_model(global, &glob)) {
            cli_model_free(&dev);
            memset(key, 0, sizeof key);
            return 1;
        }
        const int32_t boundary = learn_boundary(&glob.desc, (int32_t)unfreeze);
        odl_delta_info info = {(uint32_t)device, (uint32_t)round, seq, (uint32_t)examples, boundary};
        odl_status s = odl_delta_size(glob.m, boundary, &msg_len, &d);
        membuf mb = {NULL, 0, 0};
        if (s == ODL_OK) {
            mb.p = malloc(msg_len);
            mb.cap = msg_len;
            if (!mb.p)
                s = odl_fail(&d, ODL_ERR_NOMEM, "out of memory for a %zu-byte message", msg_len);
        }
        if (s == ODL_OK) {
            odl_writer w = {mem_write, &mb, 0};
            s = odl_delta_encode(dev.m, glob.m, &info, key, key_len, &w, &d);
        }
        memset(key, 0, sizeof key);
        cli_model_free(&dev);
        cli_model_free(&glob);
        if (s != ODL_OK) {
            free(mb.p);
            return cli_fail(cmd, s, &d);
        }
        msg = mb.p;
        msg_len = mb.len;
        if (out)
            rc = write_atomic(out, msg, msg_len, 0);
    }
#ifdef ODL_HAVE_MQTT
    if (!rc && broker) {
        char t[300];
        if (global_mode)
            snprintf(t, sizeof t, "%s/global", topic);
        else
            snprintf(t, sizeof t, "%s/delta/%u", topic, (unsigned)device);
        odl_mqtt *c = NULL;
        odl_status s = ODL_OK;
        if (auth_load(&auth))
            rc = 1;
        odl_mqtt_opts mo = auth_opts(&auth, 0);
        if (!rc)
            s = odl_mqtt_connect(&c, host, port, &mo, timeout, NULL, &d);
        if (s == ODL_OK)
            s = global_mode ? odl_mqtt_publish_retained(c, t, msg, msg_len, timeout, &d)
                            : odl_mqtt_publish(c, t, msg, msg_len, timeout, &d);
        odl_mqtt_close(c);
        memset(auth.password, 0, sizeof auth.password);
        if (!rc && s != ODL_OK)
            rc = cli_fail(cmd, s, &d);
        else if (!rc)
            printf("published %zu bytes to %s at %s:%d (%s %u%s)\n", msg_len, t, host, port,
                   global_mode ? "a retained global head, signer" : "device", (unsigned)device,
                   message ? ", a message as given" : "");
    }
#endif
    if (!rc && out && !broker)
        printf("wrote %zu bytes to %s (device %u, round %u, seq %llu)\n", msg_len, out, (unsigned)device,
               (unsigned)round, (unsigned long long)seq);
    if (message)
        odl_host_free(msg_file);
    else
        free(msg);
    return rc;
}

/* ---- collect ---------------------------------------------------------------------- */

#ifdef ODL_HAVE_MQTT
typedef struct collector {
    odl_delta_receiver r;
    const char *dir, *state_path;
    seq_state state;
    size_t delta_bytes;        /* a delta of this head */
    uint64_t want;             /* devices */
    uint64_t received, accepted, counts[ODL_DELTA_N_REASONS];
    uint32_t *devices;         /* accepted devices, in order of first acceptance */
    size_t n_devices, cap_devices;
    int quiet;
    int failed;                /* a write failed: stop */
} collector;

static int collect_one(void *ctx, const char *topic, const void *payload, size_t len)
{
    collector *c = ctx;
    c->received++;
    odl_diag d;
    odl_diag_clear(&d);
    odl_delta_reason why = ODL_DELTA_MALFORMED;
    odl_delta_view v;
    /* the broker keeps messages over --max-message away; anything smaller is
     * verified, so a device sending another head is counted as out of shape */
    odl_status s = odl_delta_verify(&c->r, payload, len, &v, &why, &d);
    if (s != ODL_OK) {
        if (why < 0 || why >= ODL_DELTA_N_REASONS || why == ODL_DELTA_ACCEPTED)
            why = ODL_DELTA_MALFORMED;
        c->counts[why]++;
        if (!c->quiet) {
            char safe[ODL_DIAG_MAX * 4];
            cli_escape_text(topic, safe, sizeof safe);
            fprintf(stderr, "refused (%s) on %s: %s\n", odl_delta_reason_name(why), safe, d.msg);
        }
        return 0;
    }
    c->accepted++;
    c->counts[ODL_DELTA_ACCEPTED]++;
    const uint32_t dev = v.info.device_id;
    /* the verifier raised the key's last_seq; the state file follows it, before the delta lands */
    if (state_set(&c->state, dev, v.info.seq) || state_save(c->state_path, &c->state)) {
        c->failed = 1;
        return 1;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%u.delta", c->dir, (unsigned)dev) >= (int)sizeof path) {
        cli_error("fleet collect: output path too long");
        c->failed = 1;
        return 1;
    }
    if (write_atomic(path, payload, len, 0)) {
        c->failed = 1;
        return 1;
    }
    int seen = 0;
    for (size_t i = 0; i < c->n_devices && !seen; i++)
        seen = c->devices[i] == dev;
    if (!seen) {
        if (c->n_devices == c->cap_devices) {
            const size_t nc = c->cap_devices ? 2 * c->cap_devices : 64;
            uint32_t *q = realloc(c->devices, nc * sizeof *q);
            if (!q) {
                cli_error("fleet collect: out of memory");
                c->failed = 1;
                return 1;
            }
            c->devices = q;
            c->cap_devices = nc;
        }
        c->devices[c->n_devices++] = dev;
    }
    if (!c->quiet)
        fprintf(stderr, "accepted device %u round %u seq %llu (%u examples, %zu bytes) -> %s\n", (unsigned)dev,
                (unsigned)v.info.round, (unsigned long long)v.info.seq, (unsigned)v.info.examples, len, path);
    return c->n_devices >= c->want;
}
#endif

static int cmd_collect(int argc, char **argv)
{
    const char *broker = NULL, *keys_path = NULL, *global = NULL, *dir = NULL, *state_path = NULL, *v = NULL;
    const char *topic = DEFAULT_TOPIC, *client_id = NULL;
    uint64_t round = 0, count = 0, unfreeze = 0, max_message = (uint64_t)16 << 20;
    uint64_t session_expiry = DEFAULT_SESSION_EXPIRY;
    int have_round = 0, quiet = 0;
    float timeout = -1.0f;
    broker_auth auth;
    memset(&auth, 0, sizeof auth);
    cli_args a = {argc, argv, 1, "fleet collect"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if ((r = auth_opt(&a, &auth))) {
            if (r < 0) return 2;
        } else if (cli_flag(&a, "--quiet")) {
            quiet = 1;
        } else if ((r = cli_opt(&a, "--broker", &v))) {
            if (r < 0) return 2;
            broker = v;
        } else if ((r = cli_opt(&a, "--keys", &v))) {
            if (r < 0) return 2;
            keys_path = v;
        } else if ((r = cli_opt(&a, "--global", &v))) {
            if (r < 0) return 2;
            global = v;
        } else if ((r = cli_opt(&a, "--out", &v))) {
            if (r < 0) return 2;
            dir = v;
        } else if ((r = cli_opt(&a, "--state", &v))) {
            if (r < 0) return 2;
            state_path = v;
        } else if ((r = cli_opt(&a, "--topic", &v))) {
            if (r < 0) return 2;
            topic = v;
        } else if ((r = cli_opt(&a, "--round", &v))) {
            if (r < 0 || opt_u64("--round", v, 0, UINT32_MAX, &round)) return 2;
            have_round = 1;
        } else if ((r = cli_opt(&a, "--client-id", &v))) {
            if (r < 0 || check_client_id(v)) return 2;
            client_id = v;
        } else if ((r = cli_opt(&a, "--session-expiry", &v))) {
            if (r < 0 || opt_u64("--session-expiry", v, 0, UINT32_MAX, &session_expiry)) return 2;
        } else if ((r = cli_opt(&a, "--count", &v))) {
            if (r < 0 || opt_u64("--count", v, 1, 100000000, &count)) return 2;
        } else if ((r = cli_opt(&a, "--unfreeze", &v))) {
            if (r < 0 || opt_u64("--unfreeze", v, 0, 65536, &unfreeze)) return 2;
        } else if ((r = cli_opt(&a, "--max-message", &v))) {
            size_t mm = 0;
            if (r < 0) return 2;
            if (cli_parse_size(v, &mm) || mm < 64 || mm > ((size_t)1 << 28)) {
                cli_error("fleet collect: --max-message '%s': want a size from 64 bytes to 256M (e.g. 16M)", v);
                return 2;
            }
            max_message = mm;
        } else if ((r = cli_opt(&a, "--timeout", &v))) {
            if (r < 0 || cli_parse_float("--timeout", v, 0.1, 31536000.0, &timeout)) return 2;
        } else {
            cli_error("fleet collect: unknown argument '%s' (see odl fleet --help)", argv[a.i]);
            return 2;
        }
    }
    if (!broker || !keys_path || !global || !dir || !have_round || !count || timeout < 0) {
        cli_error("fleet collect: needs --broker, --keys, --global, --round, --count, --timeout and --out "
                  "(see odl fleet --help)");
        return 2;
    }
    if (check_topic(topic))
        return 2;
#ifndef ODL_HAVE_MQTT
    (void)quiet;
    (void)auth;
    (void)max_message;
    (void)unfreeze;
    (void)state_path;
    (void)client_id;
    (void)session_expiry;
    return cli_error("fleet collect: this odl was built without libmosquitto, so it cannot reach a broker "
                     "(install libmosquitto-dev and rebuild)");
#else
    char host[256];
    int port = 0;
    odl_diag d;
    odl_diag_clear(&d);
    if (odl_mqtt_parse_broker(broker, host, sizeof host, &port, &d) != ODL_OK) {
        cli_fail("fleet collect", ODL_ERR_ARG, &d);
        return 2;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || mkdir(dir, 0755) != 0)
            return cli_error("fleet collect: cannot create the output directory %s: %s", dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        return cli_error("fleet collect: --out %s is not a directory", dir);
    }
    char default_state[4096];
    if (!state_path) {
        if (snprintf(default_state, sizeof default_state, "%s/sequence.state", dir) >= (int)sizeof default_state)
            return cli_error("fleet collect: --out path too long");
        state_path = default_state;
    }
    collector c;
    memset(&c, 0, sizeof c);
    c.dir = dir;
    c.state_path = state_path;
    c.want = count;
    c.quiet = quiet;
    cli_model glob;
    memset(&glob, 0, sizeof glob);
    int rc = 0;
    if (auth_load(&auth) || load_keys(keys_path, &c.r.keys, &c.r.n_keys) || state_load(state_path, &c.state) ||
        load_model(global, &glob)) {
        rc = 1;
        goto done;
    }
    /* what the state remembers for each known device */
    for (int32_t i = 0; i < c.r.n_keys; i++) {
        seq_entry *e = state_find(&c.state, c.r.keys[i].device_id, NULL);
        c.r.keys[i].last_seq = e ? e->last_seq : 0;
    }
    c.r.global = glob.m;
    c.r.boundary = learn_boundary(&glob.desc, (int32_t)unfreeze);
    c.r.round = (uint32_t)round;
    odl_status s = odl_delta_model_id(glob.m, c.r.base_id, &d);
    if (s == ODL_OK)
        s = odl_delta_size(glob.m, c.r.boundary, &c.delta_bytes, &d);
    if (s != ODL_OK) {
        rc = cli_fail("fleet collect", s, &d);
        goto done;
    }
    if (max_message < (uint64_t)c.delta_bytes) {
        rc = cli_error("fleet collect: --max-message %llu is smaller than a delta of this head (%zu bytes)",
                       (unsigned long long)max_message, c.delta_bytes);
        goto done;
    }
    char filter[300];
    snprintf(filter, sizeof filter, "%s/delta/+", topic);
    odl_mqtt *mq = NULL;
    /* room for the message, its topic and MQTT's headers; the broker drops anything larger */
    odl_mqtt_opts mo = auth_opts(&auth, (uint32_t)(max_message + 1024u));
    char default_id[300];
    if (!client_id) {
        snprintf(default_id, sizeof default_id, "odl-collector:%s", topic);
        client_id = default_id;
    }
    mo.client_id = client_id;
    mo.session_expiry = (uint32_t)session_expiry;
    int resumed = 0;
    s = odl_mqtt_connect(&mq, host, port, &mo, 10.0, &resumed, &d);
    if (s == ODL_OK)
        s = odl_mqtt_subscribe(mq, filter, 10.0, &d);
    if (s != ODL_OK) {
        odl_mqtt_close(mq);
        rc = cli_fail("fleet collect", s, &d);
        goto done;
    }
    if (session_expiry)
        fprintf(stderr, "odl: fleet collect: %s session '%s' (the broker queues deltas for it while it is away, "
                "for %llu s)\n", resumed ? "resumed the broker's" : "a new persistent", client_id,
                (unsigned long long)session_expiry);
    fprintf(stderr, "odl: fleet collect: listening on %s at %s:%d (round %u, head from node %d, %zu bytes per "
            "delta, %llu devices, %.0f s)\n", filter, host, port, (unsigned)round, (int)c.r.boundary, c.delta_bytes,
            (unsigned long long)count, (double)timeout);
    s = odl_mqtt_run(mq, collect_one, &c, timeout, &d);
    odl_mqtt_close(mq);
    if (c.failed) {
        rc = 1;
        goto done;
    }
    if (s != ODL_OK && s != ODL_ERR_NOT_FOUND) {
        rc = cli_fail("fleet collect", s, &d);
        goto done;
    }
    const int complete = c.n_devices >= c.want;
    printf("{\"round\": %u, \"complete\": %s, \"devices_wanted\": %llu, \"received\": %llu, \"accepted\": %llu, "
           "\"refused\": {", (unsigned)round, complete ? "true" : "false", (unsigned long long)count,
           (unsigned long long)c.received, (unsigned long long)c.accepted);
    for (int i = 1; i < ODL_DELTA_N_REASONS; i++)
        printf("%s\"%s\": %llu", i > 1 ? ", " : "", odl_delta_reason_name(i), (unsigned long long)c.counts[i]);
    printf("}, \"refused_total\": %llu, \"devices\": [", (unsigned long long)(c.received - c.accepted));
    for (size_t i = 0; i < c.n_devices; i++)
        printf("%s%u", i ? ", " : "", (unsigned)c.devices[i]);
    printf("], \"bytes_per_delta\": %zu, \"out\": ", c.delta_bytes);
    json_str(stdout, dir);
    printf("}\n");
    rc = complete ? 0 : 3;
done:
    memset(auth.password, 0, sizeof auth.password);
    if (c.r.keys)
        wipe_free(c.r.keys, (size_t)c.r.n_keys * sizeof *c.r.keys);
    free(c.state.e);
    free(c.devices);
    if (glob.m || glob.file)
        cli_model_free(&glob);
    return rc;
#endif
}

/* ---- fetch-global: a device takes the server's signed global head ------------------ */

#ifdef ODL_HAVE_MQTT
typedef struct first_message {
    uint8_t *p;
    size_t len;
    int failed;
} first_message;

static int keep_first(void *ctx, const char *topic, const void *payload, size_t len)
{
    (void)topic;
    first_message *f = ctx;
    if (f->p || f->failed)
        return 1; /* one retained message per topic: anything after the first is not ours to take */
    f->p = malloc(len ? len : 1);
    if (!f->p) {
        f->failed = 1;
        return 1;
    }
    memcpy(f->p, payload, len);
    f->len = len;
    return 1;
}

/* Writes m to path atomically (no learner state: the global model). */
static int save_model(const char *path, const odl_model *m)
{
    odl_posix_file pf;
    odl_writer w;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_posix_writer_open(&pf, &w, path, &d);
    if (s != ODL_OK)
        return cli_fail(path, s, &d);
    s = odl_model_save(m, NULL, 0, &w, &d);
    if (s == ODL_OK)
        s = odl_posix_writer_commit(&pf, &d);
    else
        odl_posix_writer_abort(&pf);
    return s == ODL_OK ? 0 : cli_fail(path, s, &d);
}

/* The verified message's head added to m's (the server made the new head so
 * that this float32 addition gives it exactly). */
static odl_status apply_delta(odl_model *m, const odl_delta_view *v, odl_diag *d)
{
    float *buf = NULL;
    size_t cap = 0;
    odl_status s = ODL_OK;
    for (int32_t i = 0; i < v->n_tensors && s == ODL_OK; i++) {
        int32_t node = 0, which = 0;
        size_t count = 0, n = 0;
        s = odl_delta_tensor_info(v, i, &node, &which, &count, d);
        if (s != ODL_OK)
            break;
        float *p = odl_model_param(m, node, which, &n);
        if (!p || n != count) {
            s = odl_fail(d, ODL_ERR_SHAPE, "global head: node %d %s has %zu values, the message %zu", (int)node,
                         which ? "bias" : "weights", n, count);
            break;
        }
        if (count > cap) {
            float *q = realloc(buf, count * sizeof *q);
            if (!q) {
                s = odl_fail(d, ODL_ERR_NOMEM, "out of memory for %zu values", count);
                break;
            }
            buf = q;
            cap = count;
        }
        s = odl_delta_tensor_copy(v, i, buf, count, d);
        for (size_t k = 0; s == ODL_OK && k < count; k++)
            p[k] += buf[k];
    }
    free(buf);
    return s;
}
#endif

static int cmd_fetch_global(int argc, char **argv)
{
    const char *broker = NULL, *global = NULL, *key_file = NULL, *out = NULL, *state_path = NULL, *v = NULL;
    const char *topic = DEFAULT_TOPIC;
    uint64_t server_id = 0, unfreeze = 0;
    float timeout = 10.0f;
    broker_auth auth;
    memset(&auth, 0, sizeof auth);
    cli_args a = {argc, argv, 1, "fleet fetch-global"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if ((r = auth_opt(&a, &auth))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--broker", &v))) {
            if (r < 0) return 2;
            broker = v;
        } else if ((r = cli_opt(&a, "--global", &v))) {
            if (r < 0) return 2;
            global = v;
        } else if ((r = cli_opt(&a, "--server-key", &v))) {
            if (r < 0) return 2;
            key_file = v;
        } else if ((r = cli_opt(&a, "--state", &v))) {
            if (r < 0) return 2;
            state_path = v;
        } else if ((r = cli_opt(&a, "--out", &v)) || (r = cli_opt(&a, "-o", &v))) {
            if (r < 0) return 2;
            out = v;
        } else if ((r = cli_opt(&a, "--topic", &v))) {
            if (r < 0) return 2;
            topic = v;
        } else if ((r = cli_opt(&a, "--server-id", &v))) {
            if (r < 0 || opt_u64("--server-id", v, 0, UINT32_MAX, &server_id)) return 2;
        } else if ((r = cli_opt(&a, "--unfreeze", &v))) {
            if (r < 0 || opt_u64("--unfreeze", v, 0, 65536, &unfreeze)) return 2;
        } else if ((r = cli_opt(&a, "--timeout", &v))) {
            if (r < 0 || cli_parse_float("--timeout", v, 0.1, 86400.0, &timeout)) return 2;
        } else {
            cli_error("fleet fetch-global: unknown argument '%s' (see odl fleet --help)", argv[a.i]);
            return 2;
        }
    }
    if (!broker || !global || !key_file || !state_path || !out) {
        cli_error("fleet fetch-global: needs --broker, --global, --server-key, --state and -o (see odl fleet --help)");
        return 2;
    }
    if (check_topic(topic))
        return 2;
    const char *inputs[3] = {global, key_file, state_path};
    int rc = cli_check_output("-o", out, inputs, 3);
    if (rc)
        return rc;
#ifndef ODL_HAVE_MQTT
    (void)server_id;
    (void)unfreeze;
    (void)timeout;
    return cli_error("fleet fetch-global: this odl was built without libmosquitto, so it cannot reach a broker "
                     "(install libmosquitto-dev and rebuild)");
#else
    char host[256];
    int port = 0;
    odl_diag d;
    odl_diag_clear(&d);
    if (odl_mqtt_parse_broker(broker, host, sizeof host, &port, &d) != ODL_OK) {
        cli_fail("fleet fetch-global", ODL_ERR_ARG, &d);
        return 2;
    }
    odl_delta_key key;
    memset(&key, 0, sizeof key);
    key.device_id = (uint32_t)server_id;
    seq_state st;
    memset(&st, 0, sizeof st);
    cli_model glob;
    memset(&glob, 0, sizeof glob);
    first_message fm = {NULL, 0, 0};
    if (load_device_key(key_file, key.key, &key.key_len) || auth_load(&auth) || state_load(state_path, &st) ||
        load_model(global, &glob)) {
        rc = 1;
        goto done;
    }
    const seq_entry *e = state_find(&st, key.device_id, NULL);
    key.last_seq = e ? e->last_seq : 0;
    char filter[300];
    snprintf(filter, sizeof filter, "%s/global", topic);
    odl_mqtt *mq = NULL;
    size_t head_bytes = 0;
    odl_delta_receiver r;
    memset(&r, 0, sizeof r);
    r.global = glob.m;
    r.boundary = learn_boundary(&glob.desc, (int32_t)unfreeze);
    r.keys = &key;
    r.n_keys = 1;
    odl_status s = odl_delta_model_id(glob.m, r.base_id, &d);
    if (s == ODL_OK)
        s = odl_delta_size(glob.m, r.boundary, &head_bytes, &d);
    odl_mqtt_opts mo = auth_opts(&auth, (uint32_t)(head_bytes + 1024u));
    if (s == ODL_OK)
        s = odl_mqtt_connect(&mq, host, port, &mo, timeout, NULL, &d);
    if (s == ODL_OK)
        s = odl_mqtt_subscribe(mq, filter, timeout, &d);
    if (s == ODL_OK)
        s = odl_mqtt_run(mq, keep_first, &fm, timeout, &d);
    odl_mqtt_close(mq);
    if (fm.failed) {
        rc = cli_error("fleet fetch-global: out of memory");
        goto done;
    }
    if (s == ODL_ERR_NOT_FOUND) {
        printf("{\"status\": \"none\", \"topic\": ");
        json_str(stdout, filter);
        printf("}\n");
        fprintf(stderr, "odl: fleet fetch-global: no global head on %s at %s:%d within %.1f s\n", filter, host, port,
                (double)timeout);
        rc = 3;
        goto done;
    }
    if (s != ODL_OK) {
        rc = cli_fail("fleet fetch-global", s, &d);
        goto done;
    }
    /* the round is whatever the server signed: read it first, then verify everything with it */
    odl_delta_view view;
    odl_delta_reason why = ODL_DELTA_MALFORMED;
    if (odl_delta_parse(fm.p, fm.len, &view, &why, &d) == ODL_OK) {
        r.round = view.info.round;
        s = odl_delta_verify(&r, fm.p, fm.len, &view, &why, &d);
    } else {
        s = ODL_EVENT_REJECTED;
    }
    if (s != ODL_OK) {
        printf("{\"status\": \"refused\", \"reason\": \"%s\", \"message\": ", odl_delta_reason_name(why));
        json_str(stdout, d.msg);
        printf("}\n");
        fprintf(stderr, "odl: fleet fetch-global: refused (%s): %s%s\n", odl_delta_reason_name(why), d.msg,
                why == ODL_DELTA_WRONG_BASE ? " (this model is already the new one, or more than one version "
                                              "behind: fetch the full model from the server's versions)" : "");
        rc = 3;
        goto done;
    }
    s = apply_delta(glob.m, &view, &d);
    if (s != ODL_OK) {
        rc = cli_fail("fleet fetch-global", s, &d);
        goto done;
    }
    /* the model first, then the sequence number: a crash between the two
     * leaves a message that is refused as made against another model, never
     * a model that was not updated and a message refused as a replay */
    if (save_model(out, glob.m) || state_set(&st, key.device_id, view.info.seq) || state_save(state_path, &st)) {
        rc = 1;
        goto done;
    }
    printf("{\"status\": \"updated\", \"round\": %u, \"seq\": %llu, \"server\": %u, \"bytes\": %zu, \"out\": ",
           (unsigned)view.info.round, (unsigned long long)view.info.seq, (unsigned)key.device_id, fm.len);
    json_str(stdout, out);
    printf("}\n");
    rc = 0;
done:
    memset(&key, 0, sizeof key);
    memset(auth.password, 0, sizeof auth.password);
    free(fm.p);
    free(st.e);
    if (glob.m || glob.file)
        cli_model_free(&glob);
    return rc;
#endif
}

int cmd_fleet(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "simulate") || !strcmp(argv[1], "aggregate"))
        return cmd_fleet_simulate(argc, argv); /* both in Python: python3 -m odl.fleet */
    if (!strcmp(argv[1], "publish"))
        return cmd_publish(argc - 1, argv + 1, 0);
    if (!strcmp(argv[1], "publish-global"))
        return cmd_publish(argc - 1, argv + 1, 1);
    if (!strcmp(argv[1], "fetch-global"))
        return cmd_fetch_global(argc - 1, argv + 1);
    if (!strcmp(argv[1], "collect"))
        return cmd_collect(argc - 1, argv + 1);
    if (!strcmp(argv[1], "keygen"))
        return cmd_keygen(argc - 1, argv + 1);
    cli_error("fleet: unknown subcommand '%s' (simulate, aggregate, publish, collect, publish-global, fetch-global, "
              "keygen; see odl fleet --help)", argv[1]);
    return 2;
}
