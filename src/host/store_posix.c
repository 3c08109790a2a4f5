/* Host-only port of the version store (include/odl/store.h, HOST ONLY part):
 * one file per region in a directory, each rewritten atomically (an
 * exclusively created temporary file, fsync, rename, fsync of the directory).
 * Every file is reached through the directory's descriptor and never through
 * a symlink; a lock on DIR/LOCK keeps a second process out for the whole
 * read-modify-write of a commit or a rollback. */
#define _GNU_SOURCE /* O_DIRECTORY, O_NOFOLLOW, flock */

#include "odl/store.h"
#include "odl/posix_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define STORE_FILE "STORE"
#define LOCK_FILE "LOCK"
#define POSIX_SLOT_BYTES 0xFFFFFFF0u
#define READ_AHEAD (1u << 20) /* region files are read in blocks of this size */

static void region_name(uint32_t r, char *out, size_t cap)
{
    if (r < 2)
        snprintf(out, cap, "head-%c.odls", r ? 'b' : 'a');
    else
        snprintf(out, cap, "slot-%02u.odls", (unsigned)(r - 2));
}

static int do_fsync(const odl_store_posix *p, int fd)
{
    int r;
    do {
        r = p->sys_fsync ? p->sys_fsync(fd) : fsync(fd);
    } while (r != 0 && errno == EINTR);
    return r;
}

/* Opens a store file for reading: never through a symlink, never a FIFO or a
 * device (O_NONBLOCK keeps a planted FIFO from hanging the open). */
static int open_regular(int dir_fd, const char *name, struct stat *sb)
{
    int fd;
    do {
        fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

static void cache_drop(odl_store_posix *p)
{
    if (p->cache_fd >= 0)
        close(p->cache_fd);
    p->cache_fd = -1;
    p->cache_region = -1;
    p->cache_len = 0;
    p->cache_off = 0;
    p->cache_size = 0;
}

static odl_status pread_all(int fd, uint8_t *q, uint32_t n, uint64_t pos)
{
    while (n > 0) {
        ssize_t k = pread(fd, q, n, (off_t)pos);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return ODL_ERR_IO;
        }
        if (k == 0)
            return ODL_ERR_TRUNCATED;
        q += k;
        pos += (uint64_t)k;
        n -= (uint32_t)k;
    }
    return ODL_OK;
}

/* Reads through a read-ahead block of the region's file, which stays open
 * while the core reads the same region (a record is read header, trailer,
 * payload in small pieces). The length is checked against the file's size
 * first: a short file is ODL_ERR_TRUNCATED without reading it. */
static odl_status px_read(void *ctx, uint32_t r, uint32_t off, void *buf, uint32_t n)
{
    odl_store_posix *p = ctx;
    if (p->cache_region != (int32_t)r) {
        cache_drop(p);
        char name[32];
        region_name(r, name, sizeof name);
        struct stat sb;
        int fd = open_regular(p->dir_fd, name, &sb);
        if (fd < 0) {
            if (errno == ENOENT)
                return ODL_ERR_NOT_FOUND;
            const int refused = errno == ELOOP || errno == EINVAL;
            odl_fail(&p->last_error, ODL_ERR_IO, "%s/%s: cannot read it: %s", p->dir, name,
                     errno == ELOOP ? "a symlink (store files are never followed)"
                     : errno == EINVAL ? "not a regular file"
                                       : strerror(errno));
            return refused ? ODL_ERR_UNSUPPORTED : ODL_ERR_IO;
        }
        p->cache_fd = fd;
        p->cache_region = (int32_t)r;
        p->cache_size = (uint64_t)sb.st_size;
    }
    if ((uint64_t)off + n > p->cache_size)
        return ODL_ERR_TRUNCATED;
    uint8_t *q = buf;
    uint64_t pos = off;
    while (n > 0) {
        if (pos >= p->cache_off && pos < p->cache_off + p->cache_len) {
            uint64_t k = p->cache_off + p->cache_len - pos;
            if (k > n)
                k = n;
            memcpy(q, (uint8_t *)p->cache + (pos - p->cache_off), (size_t)k);
            q += k;
            pos += k;
            n -= (uint32_t)k;
            continue;
        }
        if (n >= READ_AHEAD) /* large reads go straight to the caller */
            return pread_all(p->cache_fd, q, n, pos);
        if (!p->cache && !(p->cache = malloc(READ_AHEAD)))
            return ODL_ERR_NOMEM;
        uint64_t want = p->cache_size - pos;
        if (want > READ_AHEAD)
            want = READ_AHEAD;
        p->cache_len = 0;
        odl_status st = pread_all(p->cache_fd, p->cache, (uint32_t)want, pos);
        if (st != ODL_OK)
            return st;
        p->cache_off = pos;
        p->cache_len = (uint32_t)want;
    }
    return ODL_OK;
}

static void px_abort(odl_store_posix *p)
{
    if (p->write_fd >= 0) {
        close(p->write_fd);
        char name[48];
        region_name((uint32_t)p->open_region, name, sizeof name - 4);
        strcat(name, ".tmp");
        unlinkat(p->dir_fd, name, 0);
    }
    p->write_fd = -1;
    p->open_region = -1;
    p->offset = 0;
}

/* Creates DIR/NAME.tmp exclusively, never through a symlink. A name already
 * there (a stale temporary file, or a planted link) is removed first: unlink
 * removes the link itself, not what it points to. */
static int create_tmp(odl_store_posix *p, const char *tmp)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd;
        do {
            fd = openat(p->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        } while (fd < 0 && errno == EINTR);
        if (fd >= 0 || errno != EEXIST || attempt)
            return fd;
        if (unlinkat(p->dir_fd, tmp, 0) != 0)
            return -1;
    }
    return -1;
}

static odl_status px_begin(void *ctx, uint32_t r)
{
    odl_store_posix *p = ctx;
    px_abort(p);
    if (p->read_only)
        return odl_fail(&p->last_error, ODL_ERR_IO,
                        "store %s is read-only here (its %s file could not be opened for writing)",
                        p->dir, LOCK_FILE);
    if (p->cache_region == (int32_t)r)
        cache_drop(p);
    char tmp[48];
    region_name(r, tmp, sizeof tmp - 4);
    strcat(tmp, ".tmp");
    int fd = create_tmp(p, tmp);
    if (fd < 0)
        return odl_fail(&p->last_error, ODL_ERR_IO, "%s/%s: cannot create it: %s", p->dir, tmp,
                        strerror(errno));
    p->write_fd = fd;
    p->open_region = (int32_t)r;
    p->offset = 0;
    return ODL_OK;
}

static odl_status write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *q = buf;
    while (n > 0) {
        ssize_t k = write(fd, q, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return ODL_ERR_IO;
        }
        q += k;
        n -= (size_t)k;
    }
    return ODL_OK;
}

static odl_status px_write(void *ctx, uint32_t r, uint32_t off, const void *buf, uint32_t n)
{
    odl_store_posix *p = ctx;
    if (p->write_fd < 0 || p->open_region != (int32_t)r || off != p->offset)
        return odl_fail(&p->last_error, ODL_ERR_STATE,
                        "store: region %u written out of order", (unsigned)r);
    if (write_all(p->write_fd, buf, n) != ODL_OK) {
        odl_fail(&p->last_error, ODL_ERR_IO, "%s: write to a temporary file failed: %s", p->dir,
                 strerror(errno));
        px_abort(p);
        return ODL_ERR_IO;
    }
    p->offset += n;
    return ODL_OK;
}

/* fsync the temporary file, rename it over the region's file, fsync the
 * directory. Before the rename the region's file is the old one; after it,
 * the new one, but only the directory fsync makes that survive a power cut:
 * when that fails, the store does not know which one the medium will hold. */
static odl_status px_commit(void *ctx, uint32_t r)
{
    odl_store_posix *p = ctx;
    if (p->write_fd < 0 || p->open_region != (int32_t)r)
        return odl_fail(&p->last_error, ODL_ERR_STATE, "store: region %u committed before begin",
                        (unsigned)r);
    char name[48], tmp[56];
    region_name(r, name, sizeof name - 4);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = p->write_fd;
    p->write_fd = -1;
    p->open_region = -1;
    p->offset = 0;
    if (do_fsync(p, fd) != 0) {
        int e = errno;
        close(fd);
        unlinkat(p->dir_fd, tmp, 0);
        return odl_fail(&p->last_error, ODL_ERR_IO, "%s/%s: fsync failed: %s", p->dir, tmp,
                        strerror(e));
    }
    if (close(fd) != 0 && errno != EINTR) {
        int e = errno;
        unlinkat(p->dir_fd, tmp, 0);
        return odl_fail(&p->last_error, ODL_ERR_IO, "%s/%s: close failed: %s", p->dir, tmp,
                        strerror(e));
    }
    if (p->cache_region == (int32_t)r)
        cache_drop(p);
    if (renameat(p->dir_fd, tmp, p->dir_fd, name) != 0) {
        int e = errno;
        unlinkat(p->dir_fd, tmp, 0);
        return odl_fail(&p->last_error, ODL_ERR_IO, "%s/%s: cannot rename %s over it: %s", p->dir,
                        name, tmp, strerror(e));
    }
    /* some file systems cannot fsync a directory (EINVAL): nothing to do */
    if (do_fsync(p, p->dir_fd) != 0 && errno != EINVAL && errno != EROFS)
        return odl_fail(&p->last_error, ODL_ERR_IO,
                        "%s/%s: renamed into place, but fsync of the directory failed: %s", p->dir,
                        name, strerror(errno));
    return ODL_OK;
}

/* DIR/STORE, written once when the store is created. */
static odl_status write_store_file(odl_store_posix *p, uint32_t n_slots, uint32_t slot_bytes,
                                   odl_diag *d)
{
    char text[128];
    int n = snprintf(text, sizeof text, "odl-store 1 slots=%u slot_bytes=%u\n", (unsigned)n_slots,
                     (unsigned)slot_bytes);
    int fd = create_tmp(p, STORE_FILE ".tmp");
    if (fd < 0)
        return odl_fail(d, ODL_ERR_IO, "%s/%s.tmp: cannot create it: %s", p->dir, STORE_FILE,
                        strerror(errno));
    int ok = write_all(fd, text, (size_t)n) == ODL_OK && do_fsync(p, fd) == 0;
    int e = errno;
    ok = close(fd) == 0 && ok;
    if (ok)
        ok = renameat(p->dir_fd, STORE_FILE ".tmp", p->dir_fd, STORE_FILE) == 0;
    if (!ok) {
        e = errno ? errno : e;
        unlinkat(p->dir_fd, STORE_FILE ".tmp", 0);
        return odl_fail(d, ODL_ERR_IO, "%s/%s: cannot write it: %s", p->dir, STORE_FILE,
                        strerror(e));
    }
    if (do_fsync(p, p->dir_fd) != 0 && errno != EINVAL && errno != EROFS)
        return odl_fail(d, ODL_ERR_IO, "%s: fsync of the new store's directory failed: %s",
                        p->dir, strerror(errno));
    return ODL_OK;
}

static odl_status read_store_file(odl_store_posix *p, odl_diag *d)
{
    char text[128];
    struct stat sb;
    int fd = open_regular(p->dir_fd, STORE_FILE, &sb);
    if (fd < 0)
        return odl_fail(d, errno == ENOENT ? ODL_ERR_NOT_FOUND : ODL_ERR_IO,
                        "%s/%s: cannot read it: %s", p->dir, STORE_FILE,
                        errno == ELOOP ? "a symlink (store files are never followed)"
                        : errno == EINVAL ? "not a regular file"
                                          : strerror(errno));
    size_t len = sb.st_size > 0 && (uint64_t)sb.st_size < sizeof text ? (size_t)sb.st_size : 0;
    int ok = len > 0 && pread_all(fd, (uint8_t *)text, (uint32_t)len, 0) == ODL_OK;
    close(fd);
    text[ok ? len : 0] = '\0';
    unsigned s = 0, b = 0;
    int used = 0;
    if (ok)
        ok = sscanf(text, "odl-store 1 slots=%u slot_bytes=%u\n%n", &s, &b, &used) == 2 &&
             (size_t)used == len && s >= 2 && s <= ODL_STORE_MAX_SLOTS && b >= 512;
    if (!ok)
        return odl_fail(d, ODL_ERR_FORMAT,
                        "%s/%s: not an odl store description (expected one line 'odl-store 1 "
                        "slots=N slot_bytes=M')", p->dir, STORE_FILE);
    p->n_slots = s;
    p->slot_bytes = b;
    return ODL_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int wait_seconds(void)
{
    const char *e = getenv("ODL_STORE_WAIT");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (!*end && v >= 0 && v <= 86400)
            return (int)v;
    }
    return ODL_STORE_POSIX_WAIT_S;
}

/* Takes the lock: exclusive for a writer, shared when the store can only be
 * read here (a read-only medium). flock is released by the kernel when its
 * holder exits, however it exits, so a lock is never stale. */
static odl_status take_lock(odl_store_posix *p, odl_diag *d)
{
    int fd, how = LOCK_EX;
    do {
        fd = openat(p->dir_fd, LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                    0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && (errno == EROFS || errno == EACCES)) {
        p->read_only = 1;
        how = LOCK_SH;
        fd = openat(p->dir_fd, LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
            return ODL_OK; /* nobody can have written it here either */
    }
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = fd < 0 ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        return odl_fail(d, ODL_ERR_IO, "%s/%s: cannot open the store's lock file: %s", p->dir,
                        LOCK_FILE,
                        e == ELOOP ? "a symlink (store files are never followed)"
                        : e == EINVAL ? "not a regular file"
                                      : strerror(e));
    }
    const int wait_s = wait_seconds();
    const double until = now_s() + wait_s;
    for (;;) {
        if (flock(fd, how | LOCK_NB) == 0)
            break;
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int e = errno;
            close(fd);
            return odl_fail(d, ODL_ERR_IO, "%s/%s: cannot lock it: %s", p->dir, LOCK_FILE,
                            strerror(e));
        }
        if (now_s() >= until) {
            char text[32] = {0};
            long pid = 0;
            if (pread(fd, text, sizeof text - 1, 0) > 0)
                pid = strtol(text, NULL, 10);
            close(fd);
            if (pid > 0)
                return odl_fail(d, ODL_ERR_STATE,
                                "store %s is in use by pid %ld (waited %d s; ODL_STORE_WAIT=SECONDS "
                                "waits longer)", p->dir, pid, wait_s);
            return odl_fail(d, ODL_ERR_STATE,
                            "store %s is in use by another process (waited %d s; "
                            "ODL_STORE_WAIT=SECONDS waits longer)", p->dir, wait_s);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    p->lock_fd = fd;
    if (how == LOCK_EX) {
        char text[32];
        int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
            /* the pid is only for the message of a process that waits */
        }
    }
    return ODL_OK;
}

/* Temporary files of a writer that was killed: removed under the lock (no
 * writer is running), by name; a symlink is removed, never followed. */
static void remove_stale_tmps(odl_store_posix *p)
{
    char name[48];
    unlinkat(p->dir_fd, STORE_FILE ".tmp", 0);
    for (uint32_t r = 0; r < ODL_STORE_MAX_SLOTS + 2; r++) {
        region_name(r, name, sizeof name - 4);
        strcat(name, ".tmp");
        unlinkat(p->dir_fd, name, 0);
    }
}

odl_status odl_store_posix_io(odl_store_posix *p, odl_store_io *io, const char *dir,
                              uint32_t keep, odl_diag *d)
{
    if (!p || !io || !dir || !*dir)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_posix_io: NULL or empty argument");
    memset(p, 0, sizeof *p);
    memset(io, 0, sizeof *io);
    p->open_region = -1;
    p->dir_fd = p->lock_fd = p->write_fd = p->cache_fd = -1;
    p->cache_region = -1;
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
        if (mkdir(p->dir, 0755) != 0 && errno != EEXIST)
            return odl_fail(d, ODL_ERR_IO, "%s: cannot create the store directory: %s", p->dir,
                            strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        return odl_fail(d, ODL_ERR_ARG, "%s: not a directory (a store is a directory)", p->dir);
    }
    do {
        p->dir_fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (p->dir_fd < 0 && errno == EINTR);
    if (p->dir_fd < 0)
        return odl_fail(d, ODL_ERR_IO, "%s: cannot open the store directory: %s", p->dir,
                        strerror(errno));
    odl_status st = ODL_OK;
    if (keep == 0 && fstatat(p->dir_fd, STORE_FILE, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        st = odl_fail(d, ODL_ERR_NOT_FOUND,
                      "%s: not an odl store (no %s file; a store is created by committing a first "
                      "version)", p->dir, STORE_FILE);
    if (st == ODL_OK)
        st = take_lock(p, d);
    if (st == ODL_OK && !p->read_only)
        remove_stale_tmps(p);
    if (st == ODL_OK && fstatat(p->dir_fd, STORE_FILE, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT || keep == 0)
            st = odl_fail(d, ODL_ERR_NOT_FOUND, "%s: not an odl store (no %s file)", p->dir,
                          STORE_FILE);
        else if (p->read_only)
            st = odl_fail(d, ODL_ERR_IO, "%s: cannot create a store here (read-only)", p->dir);
        else
            st = write_store_file(p, keep + 1, POSIX_SLOT_BYTES, d);
    }
    if (st == ODL_OK)
        st = read_store_file(p, d);
    if (st != ODL_OK) {
        odl_store_posix_close(p);
        return st;
    }
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
    if (!p)
        return;
    if (p->dir_fd >= 0 || p->write_fd >= 0)
        px_abort(p);
    cache_drop(p);
    free(p->cache);
    p->cache = NULL;
    if (p->lock_fd >= 0) {
        if (!p->read_only && ftruncate(p->lock_fd, 0) != 0) {
            /* a stale pid only shows in the message of a process that waits */
        }
        close(p->lock_fd); /* releases the flock */
    }
    p->lock_fd = -1;
    if (p->dir_fd >= 0)
        close(p->dir_fd);
    p->dir_fd = -1;
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
