/* odl/status.h — status codes and detailed error messages.
 *
 * Negative codes are errors, zero is success, positive codes are events worth
 * reporting (drift detected, update rolled back) that are not failures.
 * Functions that can fail in ways a person must act on take an optional
 * `odl_diag *` (NULL allowed) and write one human-readable line into it.
 * Define ODL_NO_MESSAGES to compile the detail strings out on tiny MCUs. */
#ifndef ODL_STATUS_H
#define ODL_STATUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum odl_status {
    ODL_OK = 0,
    /* events (> 0) */
    ODL_EVENT_DRIFT = 1,
    ODL_EVENT_ROLLED_BACK = 2,
    ODL_EVENT_REJECTED = 3,
    /* errors (< 0) */
    ODL_ERR_ARG = -1,        /* a bad argument from the caller */
    ODL_ERR_NOMEM = -2,      /* arena or budget too small */
    ODL_ERR_SHAPE = -3,      /* impossible or mismatched shape */
    ODL_ERR_FORMAT = -4,     /* malformed file contents */
    ODL_ERR_CRC = -5,        /* checksum mismatch */
    ODL_ERR_VERSION = -6,    /* unsupported file format version */
    ODL_ERR_TRUNCATED = -7,  /* file or buffer ends early */
    ODL_ERR_IO = -8,         /* the I/O callback failed */
    ODL_ERR_UNSUPPORTED = -9,/* valid, but not implemented here */
    ODL_ERR_STATE = -10,     /* call out of order (e.g. train on an inference-only model) */
    ODL_ERR_NUMERIC = -11,   /* non-finite values */
    ODL_ERR_NOT_FOUND = -12  /* no such file, version or key */
} odl_status;

/* Static name of a status ("ODL_ERR_CRC: checksum mismatch"). Never NULL. */
const char *odl_status_str(odl_status s);

#define ODL_DIAG_MAX 256

/* Where a failing call writes what happened, in one line a person can act on. */
typedef struct odl_diag {
    odl_status status;
    char msg[ODL_DIAG_MAX];
} odl_diag;

/* Clears a diag (status OK, empty message). Safe with NULL. */
void odl_diag_clear(odl_diag *d);

/* Records `s` and a printf-style message (supports %s %d %u %ld %lu %zu %x %%
 * and %.Nf) in `d` (if non-NULL); returns `s` so callers can
 * `return odl_fail(d, ODL_ERR_SHAPE, "...", ...)`. The core has no stdio, so
 * this is a small formatter of its own. */
odl_status odl_fail(odl_diag *d, odl_status s, const char *fmt, ...);

/* v with prec (0..9) decimals, rounded half up ("nan", "inf", "-1.250"),
 * into buf; returns buf. For messages about float values: odl_fail's %f
 * takes a double (C promotes a float argument to double, a software
 * conversion on a single-precision FPU); "%s" with this does not. */
#define ODL_FMT_F32_MAX 32
const char *odl_fmt_f32(char buf[ODL_FMT_F32_MAX], float v, int prec);

/* Prefixes the existing message with `prefix: ` (e.g. a file name). */
void odl_diag_prefix(odl_diag *d, const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
