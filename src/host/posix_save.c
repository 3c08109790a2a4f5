/* odl_host_save_model: odl_model_save through the atomic POSIX writer.
 * Kept apart from posix_io.c so that reading files does not pull the model
 * file code into programs that only read. */
#define _POSIX_C_SOURCE 200809L

#include "odl/posix_io.h"

#include <errno.h>
#include <string.h>

odl_status odl_host_save_model(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                               const char *path, odl_diag *d)
{
    odl_posix_file f;
    odl_writer w;
    odl_status st = odl_posix_writer_open(&f, &w, path, d);
    if (st != ODL_OK)
        return st;
    errno = 0;
    st = odl_model_save(m, meta, n_meta, &w, d);
    int e = errno;
    if (st != ODL_OK) {
        odl_posix_writer_abort(&f);
        if (d) {
            if (st == ODL_ERR_IO && e != 0) {
                /* the write callback failed: say why */
                char why[ODL_DIAG_MAX];
                memcpy(why, d->msg, sizeof why);
                why[sizeof why - 1] = '\0';
                odl_fail(d, st, "%s: %s (%s)", path, strerror(e), why);
            } else {
                odl_diag_prefix(d, path);
            }
        }
        return st;
    }
    return odl_posix_writer_commit(&f, d);
}
