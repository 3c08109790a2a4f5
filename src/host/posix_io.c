/* Host-only POSIX I/O: whole-file reads into aligned buffers and an atomic
 * file writer (a new uniquely named temporary file beside PATH, fsync, rename,
 * fsync of the directory). */
#define _POSIX_C_SOURCE 200809L

#include "odl/posix_io.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define ODL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ODL_PRINTF(a, b)
#endif

#define READ_ALIGN 16

static odl_status failf(odl_diag *d, odl_status s, const char *fmt, ...) ODL_PRINTF(3, 4);

static odl_status failf(odl_diag *d, odl_status s, const char *fmt, ...)
{
    if (!d)
        return s;
    d->status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    for (char *p = d->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return s;
}

static odl_status errno_fail(odl_diag *d, const char *path, int e)
{
    return failf(d, e == ENOENT || e == ENOTDIR ? ODL_ERR_NOT_FOUND : ODL_ERR_IO, "%s: %s", path,
                 strerror(e));
}

static void *aligned_buf(size_t n)
{
    void *p = NULL;
    if (n == 0)
        n = READ_ALIGN;
    if (posix_memalign(&p, READ_ALIGN, n) != 0)
        return NULL;
    return p;
}

/* ------------------------------------------------------------------ */
/* reading                                                             */

odl_status odl_host_read_file(const char *path, void **buf, size_t *len, odl_diag *d)
{
    if (buf)
        *buf = NULL;
    if (len)
        *len = 0;
    if (!path || !buf || !len)
        return failf(d, ODL_ERR_ARG, "odl_host_read_file: NULL argument");

    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno_fail(d, path, errno);

    odl_status st = ODL_OK;
    unsigned char *p = NULL;
    size_t cap = 0, n = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = errno_fail(d, path, errno);
        goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = failf(d, ODL_ERR_IO, "%s: %s", path, strerror(EISDIR));
        goto done;
    }
    /* regular files: their size (+1 to see the end in one read); others
     * (pipes, devices): grow as data arrives */
    if (S_ISREG(sb.st_mode) && sb.st_size >= 0 && (uintmax_t)sb.st_size < SIZE_MAX - 64)
        cap = (size_t)sb.st_size + 1;
    else
        cap = 1 << 16;
    p = aligned_buf(cap);
    if (!p) {
        st = failf(d, ODL_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, cap);
        goto done;
    }
    for (;;) {
        if (n == cap) {
            if (cap > SIZE_MAX / 2) {
                st = failf(d, ODL_ERR_NOMEM, "%s: file too large", path);
                goto done;
            }
            unsigned char *q = aligned_buf(cap * 2);
            if (!q) {
                st = failf(d, ODL_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, cap * 2);
                goto done;
            }
            memcpy(q, p, n);
            free(p);
            p = q;
            cap *= 2;
        }
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            st = errno_fail(d, path, errno);
            goto done;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }

done:
    close(fd);
    if (st != ODL_OK) {
        free(p);
        return st;
    }
    *buf = p;
    *len = n;
    return ODL_OK;
}

void odl_host_free(void *buf)
{
    free(buf);
}

static odl_status membuf_write(void *ctx, const void *data, size_t n)
{
    odl_host_membuf *b = ctx;
    if (n > SIZE_MAX / 2 - b->n)
        return ODL_ERR_NOMEM;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return ODL_ERR_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return ODL_OK;
}

void odl_host_membuf_writer(odl_host_membuf *b, odl_writer *w)
{
    w->write = membuf_write;
    w->ctx = b;
    w->offset = 0;
}

/* ------------------------------------------------------------------ */
/* atomic writing                                                      */

static odl_status posix_write(void *ctx, const void *data, size_t n)
{
    odl_posix_file *f = ctx;
    const unsigned char *p = data;
    if (!f || f->fd < 0 || (!p && n))
        return ODL_ERR_IO;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = write(f->fd, p, chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ODL_ERR_IO; /* errno is left for the caller */
        }
        if (r == 0) {
            errno = ENOSPC;
            return ODL_ERR_IO;
        }
        p += r;
        n -= (size_t)r;
    }
    return ODL_OK;
}

/* The directory holding `path` ("." for a bare name). */
static void dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
        return;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/x" -> "/" */
    if (n >= cap)
        n = cap - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

/* 64 unpredictable bits for a temporary name: the kernel's random source,
 * else the clock, the pid and a counter (still unique; O_EXCL keeps it safe). */
static uint64_t tmp_random(void)
{
    static unsigned counter;
    uint64_t r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k = read(fd, &r, sizeof r);
        close(fd);
        if (k == (ssize_t)sizeof r)
            return r;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec << 20 ^
        (uint64_t)getpid() << 40 ^ (uint64_t)++counter;
    return r;
}

/* The temporary files of writers still open, so that a process ending on a
 * signal can remove them (odl_posix_remove_pending). Lock-free slots: a
 * writer beyond the last slot is simply not cleaned up on a signal. */
#define PENDING_MAX 32
static _Atomic(const char *) pending[PENDING_MAX];

static void pending_add(const char *tmp)
{
    for (int i = 0; i < PENDING_MAX; i++) {
        const char *expected = NULL;
        if (atomic_compare_exchange_strong(&pending[i], &expected, tmp))
            return;
    }
}

static void pending_remove(const char *tmp)
{
    for (int i = 0; i < PENDING_MAX; i++) {
        const char *expected = tmp;
        if (atomic_compare_exchange_strong(&pending[i], &expected, NULL))
            return;
    }
}

void odl_posix_remove_pending(void)
{
    for (int i = 0; i < PENDING_MAX; i++) {
        const char *p = atomic_load(&pending[i]);
        if (p)
            unlink(p);
    }
}

/* Refuses an existing PATH that is not a regular file: a symlink is never
 * followed or replaced, a device or a directory never replaced. */
static odl_status check_replaceable(const char *path, odl_diag *d)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return ODL_OK;
        return errno_fail(d, path, errno);
    }
    if (S_ISREG(sb.st_mode))
        return ODL_OK;
    const char *what = S_ISLNK(sb.st_mode)   ? "a symbolic link"
                       : S_ISDIR(sb.st_mode) ? "a directory"
                       : S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ? "a device"
                       : S_ISFIFO(sb.st_mode) ? "a pipe"
                                              : "not a regular file";
    return failf(d, ODL_ERR_IO, "%s exists and is %s: refusing to replace it (outputs are written "
                 "only as regular files)", path, what);
}

/* Creates a new temporary file beside PATH: "PATH.<16 hex>.tmp", opened with
 * O_EXCL|O_NOFOLLOW so that nothing planted there (a file, a symlink) is used. */
static int open_tmp_beside(const char *path, char *tmp, size_t cap, odl_diag *d)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        int n = snprintf(tmp, cap, "%s.%016llx.tmp", path, (unsigned long long)tmp_random());
        if (n < 0 || (size_t)n >= cap) {
            failf(d, ODL_ERR_ARG, "%s: path too long", path);
            return -1;
        }
        int fd;
        do {
            fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        } while (fd < 0 && errno == EINTR);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST) {
            errno_fail(d, tmp, errno);
            return -1;
        }
    }
    failf(d, ODL_ERR_IO, "%s: cannot create a unique temporary file beside it", path);
    return -1;
}

odl_status odl_posix_output_check(const char *path, odl_diag *d)
{
    if (!path || !*path)
        return failf(d, ODL_ERR_ARG, "odl_posix_output_check: NULL or empty path");
    size_t n = strlen(path);
    if (n >= sizeof ((odl_posix_file *)0)->path || path[n - 1] == '/')
        return failf(d, ODL_ERR_ARG, "%s: not a file name (too long or ends with '/')", path);
    odl_status st = check_replaceable(path, d);
    if (st != ODL_OK)
        return st;
    char dir[1024];
    dir_of(path, dir, sizeof dir);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return failf(d, errno == ENOENT ? ODL_ERR_NOT_FOUND : ODL_ERR_IO,
                     "%s: cannot write here: directory %s: %s", path, dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return failf(d, ODL_ERR_IO, "%s: cannot write here: %s is not a directory", path, dir);
    /* the only reliable test (root, read-only mounts, ACLs): make a file */
    char tmp[1100];
    int fd = open_tmp_beside(path, tmp, sizeof tmp, d);
    if (fd < 0) {
        int e = errno;
        return failf(d, ODL_ERR_IO, "%s: cannot write in directory %s: %s", path, dir, strerror(e));
    }
    close(fd);
    unlink(tmp);
    return ODL_OK;
}

odl_status odl_posix_writer_open(odl_posix_file *f, odl_writer *w, const char *path, odl_diag *d)
{
    if (!f || !w || !path || !*path)
        return failf(d, ODL_ERR_ARG, "odl_posix_writer_open: NULL or empty argument");
    memset(f, 0, sizeof *f);
    f->fd = -1;
    memset(w, 0, sizeof *w);
    size_t n = strlen(path);
    if (n >= sizeof f->path || n + 22 >= sizeof f->tmp_path)
        return failf(d, ODL_ERR_ARG, "%s: path too long (max %zu bytes)", path,
                     sizeof f->path - 1);
    memcpy(f->path, path, n + 1);
    odl_status st = check_replaceable(path, d);
    if (st != ODL_OK)
        return st;
    int fd = open_tmp_beside(path, f->tmp_path, sizeof f->tmp_path, d);
    if (fd < 0) {
        f->tmp_path[0] = '\0';
        return d ? d->status : ODL_ERR_IO;
    }
    f->fd = fd;
    pending_add(f->tmp_path);
    w->write = posix_write;
    w->ctx = f;
    w->offset = 0;
    return ODL_OK;
}

odl_status odl_posix_writer_commit(odl_posix_file *f, odl_diag *d)
{
    if (!f)
        return failf(d, ODL_ERR_ARG, "odl_posix_writer_commit: f is NULL");
    if (f->fd < 0)
        return failf(d, ODL_ERR_STATE, "%s: writer is not open (already committed or aborted?)",
                     f->path);
    int fd = f->fd;
    f->fd = -1;
    pending_remove(f->tmp_path); /* from here on, every path below removes it */
    int r;
    do {
        r = fsync(fd);
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        close(fd);
        unlink(f->tmp_path);
        return failf(d, ODL_ERR_IO, "%s: fsync failed: %s", f->tmp_path, strerror(e));
    }
    if (close(fd) != 0 && errno != EINTR) {
        int e = errno;
        unlink(f->tmp_path);
        return failf(d, ODL_ERR_IO, "%s: close failed: %s", f->tmp_path, strerror(e));
    }
    /* the target may have been replaced meanwhile: still never over a
     * symlink, a device or a directory (rename would replace the link) */
    odl_status chk = check_replaceable(f->path, d);
    if (chk != ODL_OK) {
        unlink(f->tmp_path);
        return chk;
    }
    if (rename(f->tmp_path, f->path) != 0) {
        int e = errno;
        unlink(f->tmp_path);
        return failf(d, ODL_ERR_IO, "%s: cannot rename %s over it: %s", f->path, f->tmp_path,
                     strerror(e));
    }
    /* make the rename itself durable */
    char dir[sizeof f->path];
    dir_of(f->path, dir, sizeof dir);
    int dfd;
    do {
        dfd = open(dir, O_RDONLY | O_CLOEXEC);
    } while (dfd < 0 && errno == EINTR);
    if (dfd < 0)
        return failf(d, ODL_ERR_IO, "%s: written, but its directory %s cannot be opened to fsync: %s",
                     f->path, dir, strerror(errno));
    do {
        r = fsync(dfd);
    } while (r != 0 && errno == EINTR);
    int e = errno;
    close(dfd);
    /* some file systems cannot fsync a directory (EINVAL): nothing to do */
    if (r != 0 && e != EINVAL && e != EROFS)
        return failf(d, ODL_ERR_IO, "%s: written, but fsync of directory %s failed: %s", f->path,
                     dir, strerror(e));
    return ODL_OK;
}

void odl_posix_writer_abort(odl_posix_file *f)
{
    if (!f || f->fd < 0)
        return;
    close(f->fd);
    f->fd = -1;
    pending_remove(f->tmp_path);
    unlink(f->tmp_path);
}

odl_status odl_host_read_desc(const void *buf, size_t len, odl_model_desc *desc, odl_diag *d)
{
    memset(desc, 0, sizeof *desc);
    int32_t n = 0;
    odl_status s = odl_file_count_nodes(buf, len, &n, d);
    if (s != ODL_OK)
        return s;
    odl_node_desc *nodes = calloc((size_t)n, sizeof *nodes);
    odl_layer_shape *shapes = calloc((size_t)n, sizeof *shapes);
    if (!nodes || !shapes) {
        free(nodes);
        free(shapes);
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory for a topology of %ld nodes", (long)n);
    }
    s = odl_desc_init(desc, nodes, n, 1, 1, 1);
    if (s == ODL_OK)
        s = odl_file_read_desc_ws(buf, len, desc, shapes, n, d);
    free(shapes);
    if (s != ODL_OK) {
        free(nodes);
        memset(desc, 0, sizeof *desc);
    }
    return s;
}

odl_status odl_host_desc_copy(odl_model_desc *desc, const odl_model_desc *src, int32_t cap, odl_diag *d)
{
    memset(desc, 0, sizeof *desc);
    if (cap < src->n_layers)
        cap = src->n_layers;
    if (cap < 1)
        cap = 1;
    odl_node_desc *nodes = calloc((size_t)cap, sizeof *nodes);
    if (!nodes)
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory for a description of %ld nodes", (long)cap);
    odl_status s = odl_desc_init(desc, nodes, cap, src->in_c, src->in_h, src->in_w);
    if (s == ODL_OK)
        s = odl_desc_copy(desc, src, d);
    if (s != ODL_OK) {
        free(nodes);
        memset(desc, 0, sizeof *desc);
    }
    return s;
}

void odl_host_desc_free(odl_model_desc *desc)
{
    if (!desc)
        return;
    free(desc->layers);
    memset(desc, 0, sizeof *desc);
}

odl_layer_shape *odl_host_shapes(const odl_model_desc *desc, odl_diag *d)
{
    size_t n = desc && desc->n_layers > 0 ? (size_t)desc->n_layers : 1;
    odl_layer_shape *s = calloc(n, sizeof *s);
    if (!s)
        odl_fail(d, ODL_ERR_NOMEM, "out of memory for %zu shapes", n);
    return s;
}
