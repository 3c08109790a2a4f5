/* The event log of 'odl session': reading it (a regular file, whole) and
 * parsing it line by line from a buffer. The log is untrusted input (it may
 * come from a phone): every line is read whole, every number is parsed
 * strictly, and a save target is a plain file name confined to the session's
 * output directory. */
#ifndef ODL_EVLOG_H
#define ODL_EVLOG_H

#include <stddef.h>
#include <stdint.h>

/* The largest log read (bytes). */
#define EVLOG_MAX_BYTES ((size_t)256 << 20)
/* The longest save file name (bytes). */
#define EVLOG_NAME_MAX 255

typedef enum evlog_kind {
    EVLOG_PREDICT,
    EVLOG_LABEL,
    EVLOG_RIGHT,
    EVLOG_WRONG,
    EVLOG_UPDATE,
    EVLOG_CALIBRATE,
    EVLOG_ROLLBACK,
    EVLOG_SAVE
} evlog_kind;

typedef struct evlog_event {
    evlog_kind kind;
    int32_t line;      /* 1-based line number in the log */
    int src_user;      /* sample events: 1 = SRC user, 0 = orig */
    int32_t index;     /* sample events: the sample (0..INT32_MAX; the caller checks the data's size) */
    int32_t label;     /* label: 0..INT32_MAX */
    int32_t steps;     /* rollback: 1..INT32_MAX (default 1) */
    char name[EVLOG_NAME_MAX + 1]; /* save: the file name */
} evlog_event;

typedef struct evlog_reader {
    const char *buf;
    size_t len, pos;
    int32_t line;
} evlog_reader;

void evlog_reader_init(evlog_reader *r, const char *buf, size_t len);
/* The next event: returns 1 (filled *e), 0 at the end of the log, -1 on a
 * malformed line (a one-line reason in err, starting with the line number:
 * "LINE: ..."). */
int evlog_next(evlog_reader *r, evlog_event *e, char *err, size_t cap);

/* 1 if `name` (n bytes) may be a save target: 1..EVLOG_NAME_MAX bytes of
 * letters, digits and ._+-, not starting with '.' or '-' (so no directory,
 * no "..", no hidden file, no option-like or terminal-driving name). */
int evlog_name_ok(const char *name, size_t n);

/* Reads the log at `path`: it must be a regular file of at most
 * EVLOG_MAX_BYTES. Returns 0 with a malloc'd *buf (free it), or -1 with the
 * reason in err. */
int evlog_read_file(const char *path, char **buf, size_t *len, char *err, size_t cap);

#endif
