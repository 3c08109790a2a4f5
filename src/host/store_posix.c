/* Host-only port of the version store (include/odl/store.h, HOST ONLY part):
 * one file per region in a directory, each rewritten atomically through the
 * POSIX atomic writer (PATH.tmp, fsync, rename, fsync of the directory). */
#define _POSIX_C_SOURCE 200809L

#include "odl/store.h"
#include "odl/posix_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define STORE_FILE "STORE"
#define POSIX_SLOT_BYTES 0xFFFFFFF0u

typedef struct open_file {
    odl_posix_file f;
    odl_writer w;
} open_file;

static int region_path(const odl_store_posix *p, uint32_t r, char *out, size_t cap)
{
    int n;
    if (r < 2)
        n = snprintf(out, cap, "%s/head-%c.odls", p->dir, r ? 'b' : 'a');
    else
        n = snprintf(out, cap, "%s/slot-%02u.odls", p->dir, (unsigned)(r - 2));
    return n > 0 && (size_t)n < cap;
}

static odl_status px_read(void *ctx, uint32_t r, uint32_t off, void *buf, uint32_t n)
{
    odl_store_posix *p = ctx;
    char path[1100];
    if (!region_path(p, r, path, sizeof path))
        return ODL_ERR_ARG;
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno == ENOENT ? ODL_ERR_NOT_FOUND : ODL_ERR_IO;
    odl_status st = ODL_OK;
    uint8_t *q = buf;
    uint64_t pos = off;
    while (n > 0) {
        ssize_t k = pread(fd, q, n, (off_t)pos);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            st = ODL_ERR_IO;
            break;
        }
        if (k == 0) {
            st = ODL_ERR_TRUNCATED;
            break;
        }
        q += k;
        pos += (uint64_t)k;
        n -= (uint32_t)k;
    }
    close(fd);
    return st;
}

static void px_abort(odl_store_posix *p)
{
    open_file *of = p->file;
    if (of) {
        odl_posix_writer_abort(&of->f);
        free(of);
    }
    p->file = NULL;
    p->open_region = -1;
    p->offset = 0;
}

static odl_status px_begin(void *ctx, uint32_t r)
{
    odl_store_posix *p = ctx;
    char path[1100];
    px_abort(p);
    if (!region_path(p, r, path, sizeof path))
        return ODL_ERR_ARG;
    open_file *of = calloc(1, sizeof *of);
    if (!of)
        return ODL_ERR_NOMEM;
    odl_status st = odl_posix_writer_open(&of->f, &of->w, path, &p->last_error);
    if (st != ODL_OK) {
        free(of);
        return st;
    }
    p->file = of;
    p->open_region = (int32_t)r;
    p->offset = 0;
    return ODL_OK;
}

static odl_status px_write(void *ctx, uint32_t r, uint32_t off, const void *buf, uint32_t n)
{
    odl_store_posix *p = ctx;
    open_file *of = p->file;
    if (!of || p->open_region != (int32_t)r || off != p->offset)
        return odl_fail(&p->last_error, ODL_ERR_STATE,
                        "store: region %u written out of order", (unsigned)r);
    odl_status st = of->w.write(of->w.ctx, buf, n);
    if (st != ODL_OK) {
        odl_fail(&p->last_error, st, "%s: write failed: %s", of->f.tmp_path, strerror(errno));
        px_abort(p);
        return st;
    }
    p->offset += n;
    return ODL_OK;
}

static odl_status px_commit(void *ctx, uint32_t r)
{
    odl_store_posix *p = ctx;
    open_file *of = p->file;
    if (!of || p->open_region != (int32_t)r)
        return odl_fail(&p->last_error, ODL_ERR_STATE, "store: region %u committed before begin",
                        (unsigned)r);
    odl_status st = odl_posix_writer_commit(&of->f, &p->last_error);
    free(of);
    p->file = NULL;
    p->open_region = -1;
    p->offset = 0;
    return st;
}

static odl_status write_store_file(const char *path, uint32_t n_slots, uint32_t slot_bytes,
                                   odl_diag *d)
{
    char text[128];
    int n = snprintf(text, sizeof text, "odl-store 1 slots=%u slot_bytes=%u\n", (unsigned)n_slots,
                     (unsigned)slot_bytes);
    odl_posix_file f;
    odl_writer w;
    odl_status st = odl_posix_writer_open(&f, &w, path, d);
    if (st != ODL_OK)
        return st;
    st = w.write(w.ctx, text, (size_t)n);
    if (st != ODL_OK) {
        odl_posix_writer_abort(&f);
        return odl_fail(d, st, "%s: write failed: %s", path, strerror(errno));
    }
    return odl_posix_writer_commit(&f, d);
}

static odl_status read_store_file(const char *path, uint32_t *n_slots, uint32_t *slot_bytes,
                                  odl_diag *d)
{
    void *buf;
    size_t len;
    odl_status st = odl_host_read_file(path, &buf, &len, d);
    if (st != ODL_OK)
        return st;
    char text[128];
    int ok = len > 0 && len < sizeof text;
    if (ok) {
        memcpy(text, buf, len);
        text[len] = '\0';
    }
    odl_host_free(buf);
    unsigned s = 0, b = 0;
    int used = 0;
    if (ok)
        ok = sscanf(text, "odl-store 1 slots=%u slot_bytes=%u\n%n", &s, &b, &used) == 2 &&
             (size_t)used == len && s >= 2 && s <= ODL_STORE_MAX_SLOTS && b >= 512;
    if (!ok)
        return odl_fail(d, ODL_ERR_FORMAT,
                        "%s: not an odl store description (expected one line 'odl-store 1 "
                        "slots=N slot_bytes=M')", path);
    *n_slots = s;
    *slot_bytes = b;
    return ODL_OK;
}

odl_status odl_store_posix_io(odl_store_posix *p, odl_store_io *io, const char *dir,
                              uint32_t keep, odl_diag *d)
{
    if (!p || !io || !dir || !*dir)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_posix_io: NULL or empty argument");
    memset(p, 0, sizeof *p);
    memset(io, 0, sizeof *io);
    p->open_region = -1;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n + 32 >= sizeof p->dir)
        return odl_fail(d, ODL_ERR_ARG, "%s: store path too long", dir);
    memcpy(p->dir, dir, n);
    p->dir[n] = '\0';
    if (keep + 1 > ODL_STORE_MAX_SLOTS)
        return odl_fail(d, ODL_ERR_ARG, "%s: cannot keep %u versions (at most %d)", p->dir,
                        (unsigned)keep, ODL_STORE_MAX_SLOTS - 1);

    struct stat sb;
    if (stat(p->dir, &sb) != 0) {
        if (errno != ENOENT || keep == 0)
            return odl_fail(d, errno == ENOENT ? ODL_ERR_NOT_FOUND : ODL_ERR_IO,
                            "%s: no such store (%s)", p->dir, strerror(errno));
        if (mkdir(p->dir, 0755) != 0)
            return odl_fail(d, ODL_ERR_IO, "%s: cannot create the store directory: %s", p->dir,
                            strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        return odl_fail(d, ODL_ERR_ARG, "%s: not a directory (a store is a directory)", p->dir);
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", p->dir, STORE_FILE);
    odl_status st;
    if (access(path, F_OK) != 0) {
        if (keep == 0)
            return odl_fail(d, ODL_ERR_NOT_FOUND,
                            "%s: not an odl store (no %s file; a store is created by committing "
                            "a first version)", p->dir, STORE_FILE);
        st = write_store_file(path, keep + 1, POSIX_SLOT_BYTES, d);
        if (st != ODL_OK)
            return st;
    }
    st = read_store_file(path, &p->n_slots, &p->slot_bytes, d);
    if (st != ODL_OK)
        return st;
    io->ctx = p;
    io->n_slots = p->n_slots;
    io->slot_bytes = p->slot_bytes;
    io->read = px_read;
    io->begin = px_begin;
    io->write = px_write;
    io->commit = px_commit;
    return ODL_OK;
}

void odl_store_posix_close(odl_store_posix *p)
{
    if (p)
        px_abort(p);
}

odl_status odl_store_host_open(odl_store_host *h, const char *dir, uint32_t keep, odl_diag *d)
{
    if (!h)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_host_open: h is NULL");
    memset(h, 0, sizeof *h);
    odl_status st = odl_store_posix_io(&h->posix, &h->io, dir, keep, d);
    if (st != ODL_OK)
        return st;
    odl_mem_plan plan;
    st = odl_store_plan(&h->io, &plan, d);
    if (st != ODL_OK)
        return st;
    h->arena_buf = malloc(plan.total + ODL_ALIGN);
    if (!h->arena_buf)
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory (%zu bytes)", plan.total);
    st = odl_arena_init(&h->arena, h->arena_buf, plan.total + ODL_ALIGN);
    if (st == ODL_OK)
        st = odl_store_open(&h->store, &h->io, &h->arena, d);
    if (st != ODL_OK) {
        odl_diag_prefix(d, h->posix.dir);
        odl_store_host_close(h);
    }
    return st;
}

void odl_store_host_close(odl_store_host *h)
{
    if (!h)
        return;
    odl_store_posix_close(&h->posix);
    free(h->arena_buf);
    memset(h, 0, sizeof *h);
}

/* Appends the port's own detail (errno text) to a failed store call's line. */
static void add_io_detail(odl_diag *d, const odl_store_posix *p)
{
    if (!d || !p->last_error.msg[0])
        return;
    size_t n = strlen(d->msg);
    snprintf(d->msg + n, sizeof d->msg - n, " [%s]", p->last_error.msg);
}

odl_status odl_store_posix_commit_file(const char *dir, uint32_t keep, const char *path,
                                       const odl_store_meta *meta, uint32_t *new_id,
                                       odl_diag *d)
{
    if (new_id)
        *new_id = 0;
    if (!dir || !path || !meta)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_posix_commit_file: NULL argument");
    void *buf;
    size_t len;
    odl_status st = odl_host_read_file(path, &buf, &len, d);
    if (st != ODL_OK)
        return st;
    odl_store_host h;
    st = odl_store_host_open(&h, dir, keep ? keep : ODL_STORE_POSIX_DEFAULT_KEEP, d);
    if (st != ODL_OK) {
        odl_host_free(buf);
        return st;
    }
    odl_store_meta m = *meta;
    if (m.time == 0)
        m.time = (uint64_t)time(NULL);
    st = odl_store_commit(h.store, buf, len, &m, new_id, d);
    if (st != ODL_OK) {
        add_io_detail(d, &h.posix);
        odl_diag_prefix(d, h.posix.dir);
    }
    odl_store_host_close(&h);
    odl_host_free(buf);
    return st;
}

odl_status odl_store_posix_read_current(const char *dir, void **buf, size_t *len,
                                        odl_store_meta *meta, odl_diag *d)
{
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    if (!dir || !buf || !len)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_posix_read_current: NULL argument");
    odl_store_host h;
    odl_status st = odl_store_host_open(&h, dir, 0, d);
    if (st != ODL_OK)
        return st;
    uint32_t id = odl_store_current(h.store);
    odl_store_version v;
    if (!id || odl_store_find(h.store, id, &v) != ODL_OK) {
        st = odl_fail(d, ODL_ERR_NOT_FOUND, "%s: the store is empty (no version committed yet)",
                      h.posix.dir);
        odl_store_host_close(&h);
        return st;
    }
    void *p = NULL;
    if (posix_memalign(&p, 16, v.payload_len ? v.payload_len : 16) != 0) {
        odl_store_host_close(&h);
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory (%u bytes)", (unsigned)v.payload_len);
    }
    st = odl_store_read(h.store, id, p, v.payload_len, len, meta, d);
    if (st != ODL_OK) {
        odl_diag_prefix(d, h.posix.dir);
        free(p);
    } else {
        *buf = p;
    }
    odl_store_host_close(&h);
    return st;
}
