/* odl/posix_io.h — the host's port of the core's I/O (HOST ONLY).
 * Reading a whole file into an aligned buffer, and an atomic file writer:
 * data goes to a new temporary file beside PATH ("PATH.<random>.tmp", created
 * with O_EXCL|O_NOFOLLOW, so nothing planted there is followed or reused), is
 * fsync'd, renamed over PATH, and the directory is fsync'd, so PATH is always
 * either the old or the new complete file. An existing PATH that is not a
 * regular file (a symlink, a device, a directory, a pipe) is refused. */
#ifndef ODL_POSIX_IO_H
#define ODL_POSIX_IO_H

#include <stddef.h>
#include "odl/status.h"
#include "odl/file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads PATH into a 16-byte-aligned malloc'd buffer (free with odl_host_free). */
odl_status odl_host_read_file(const char *path, void **buf, size_t *len, odl_diag *d);
void odl_host_free(void *buf);

/* Reads a model file's topology into desc with node storage malloc'd to the
 * exact count (odl_file_count_nodes); free it with odl_host_desc_free. */
odl_status odl_host_read_desc(const void *buf, size_t len, odl_model_desc *desc, odl_diag *d);
/* Gives desc malloc'd storage for cap nodes and copies src into it
 * (the host's odl_desc_copy for a description it will modify). */
odl_status odl_host_desc_copy(odl_model_desc *desc, const odl_model_desc *src, int32_t cap, odl_diag *d);
void odl_host_desc_free(odl_model_desc *desc);
/* malloc'd scratch for n_layers shapes (odl_desc_check); free() it. */
odl_layer_shape *odl_host_shapes(const odl_model_desc *desc, odl_diag *d);

typedef struct odl_posix_file {
    int fd;
    char path[1024];
    char tmp_path[1040];
} odl_posix_file;

/* Checks, before any work, that PATH can be written: it is absent or a
 * regular file (not a symlink), and a file can be created in its directory. */
odl_status odl_posix_output_check(const char *path, odl_diag *d);

/* Creates the temporary file for PATH and sets up `w` to write into it. */
odl_status odl_posix_writer_open(odl_posix_file *f, odl_writer *w, const char *path, odl_diag *d);
/* fsync, rename over PATH, fsync the directory. */
odl_status odl_posix_writer_commit(odl_posix_file *f, odl_diag *d);
/* Abandons the temporary file (PATH is untouched). */
void odl_posix_writer_abort(odl_posix_file *f);

/* Removes the temporary files of the writers still open. Async-signal-safe:
 * for a handler of SIGINT/SIGTERM that then ends the process, so that an
 * interrupted save leaves nothing behind. */
void odl_posix_remove_pending(void);

/* A malloc'd buffer that grows as an odl_writer writes into it (files built
 * in memory before they are parsed, embedded or sent). Start it zeroed,
 * attach it with odl_host_membuf_writer, free(p) when done. */
typedef struct odl_host_membuf {
    uint8_t *p;
    size_t n, cap;
} odl_host_membuf;

void odl_host_membuf_writer(odl_host_membuf *b, odl_writer *w);

/* Convenience: save a model to PATH atomically. */
odl_status odl_host_save_model(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                               const char *path, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
