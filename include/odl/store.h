/* odl/store.h — the version store: every accepted model head is a version.
 * The full description (layout, commit protocol, why it survives power cuts)
 * is docs/store.md.
 *
 * A version is an opaque payload (the caller serialises a whole .odl file
 * into it: model + learner state) plus fixed-size metadata (id, parent, time,
 * strategy, description, a few metrics). The store keeps the last `keep`
 * versions, knows which one is *current*, rolls back any number of steps
 * along the parent chain, and survives a power cut at any byte of any write:
 * it always reopens to the last committed state, never to a damaged record,
 * and a commit never destroys one of the `keep` newest versions.
 *
 * Storage goes through region callbacks (odl_store_io). Regions 0 and 1 are
 * two small *head* records (rollback markers), regions 2..n_slots+1 hold one
 * version each. Two ports are provided:
 *   - flash (core): regions mapped to fixed offsets of a block device with
 *     optional erase (odl_store_flash), e.g. an MCU's flash or odl_store_ram;
 *   - POSIX (host only, below): one file per region, each rewritten through
 *     PATH.tmp + fsync + rename + fsync of the directory.
 *
 * Memory: odl_store_plan gives the exact bytes odl_store_open takes from the
 * caller's arena (the handle and an index of n_slots entries). The core does
 * no allocation, no stdio and reads no clock: times are caller-supplied. */
#ifndef ODL_STORE_H
#define ODL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metadata ------------------------------------------------------------ */

#define ODL_STORE_STRATEGY_MAX 32  /* bytes, NUL included */
#define ODL_STORE_DESC_MAX 88      /* bytes, NUL included */
#define ODL_STORE_KEY_MAX 16       /* metric name, NUL included */
#define ODL_STORE_MAX_METRICS 4
#define ODL_STORE_MAX_SLOTS 64     /* n_slots limit (keep = n_slots - 1) */

typedef struct odl_store_metric {
    char key[ODL_STORE_KEY_MAX];
    float value; /* finite */
} odl_store_metric;

typedef struct odl_store_meta {
    uint32_t id;     /* assigned by the store at commit: 1, 2, 3, ... */
    uint32_t parent; /* the version that was current at commit (0: none) */
    uint64_t time;   /* caller-supplied (the host uses UNIX seconds) */
    char strategy[ODL_STORE_STRATEGY_MAX];
    char description[ODL_STORE_DESC_MAX];
    int32_t n_metrics;
    odl_store_metric metrics[ODL_STORE_MAX_METRICS];
} odl_store_meta;

/* Zeroes `m` and copies strategy/description (NULL allowed), truncated to fit
 * (at a byte, not a UTF-8 character, boundary). */
void odl_store_meta_init(odl_store_meta *m, const char *strategy, const char *description,
                         uint64_t time);
/* Appends a metric (key truncated to fit). ODL_ERR_ARG when full or the key
 * is empty, ODL_ERR_NUMERIC for a non-finite value. */
odl_status odl_store_meta_add_metric(odl_store_meta *m, const char *key, float value,
                                     odl_diag *d);

/* ---- I/O ----------------------------------------------------------------- */

/* Region numbers: heads 0 and 1, then version slots. */
#define ODL_STORE_HEAD_BYTES 32     /* a head region must hold this much */
#define ODL_STORE_RECORD_OVERHEAD (256u + 16u + 15u) /* header + trailer + padding */
#define ODL_STORE_REGION_SLOT(i) ((uint32_t)(i) + 2u)

typedef struct odl_store_io {
    void *ctx;
    uint32_t n_slots;    /* version regions: 2..ODL_STORE_MAX_SLOTS; keep = n_slots - 1 */
    uint32_t slot_bytes; /* bytes one version region can hold */
    /* Reads n bytes at `off` of region `r`: ODL_OK; ODL_ERR_NOT_FOUND if the
     * region was never written; ODL_ERR_TRUNCATED if it holds fewer bytes;
     * ODL_ERR_UNSUPPORTED if it is not something the store may read (POSIX: a
     * symlink or a special file); anything else is a read error. The region
     * is then skipped and reported. */
    odl_status (*read)(void *ctx, uint32_t r, uint32_t off, void *buf, uint32_t n);
    /* Starts rewriting region r (flash: erase; POSIX: open r's temporary file).
     * The old contents may be destroyed from here on. */
    odl_status (*begin)(void *ctx, uint32_t r);
    /* Writes at `off` of the region being rewritten; the store writes each
     * region sequentially from offset 0. */
    odl_status (*write)(void *ctx, uint32_t r, uint32_t off, const void *buf, uint32_t n);
    /* Makes the region's new contents durable (flash: sync; POSIX: fsync,
     * rename over the region's file, fsync of the directory). */
    odl_status (*commit)(void *ctx, uint32_t r);
} odl_store_io;

/* Largest payload a version region of `slot_bytes` bytes can hold. */
size_t odl_store_max_payload(uint32_t slot_bytes);

/* ---- the store ----------------------------------------------------------- */

typedef struct odl_store odl_store;

/* What the store says about one kept version. */
typedef struct odl_store_version {
    odl_store_meta meta;
    uint32_t payload_len;
    uint32_t seq;       /* commit sequence number on the medium */
    int32_t is_current;
} odl_store_version;

/* Exact arena bytes odl_store_open takes for this io (kind `state`). */
odl_status odl_store_plan(const odl_store_io *io, odl_mem_plan *plan, odl_diag *d);

/* Takes the handle from `arena` and scans the medium: every record's header,
 * payload and commit trailer are checked (CRC-32); damaged or incomplete
 * records are skipped and counted (odl_store_skipped). An empty medium is a
 * valid, empty store. The io struct is copied; its ctx must outlive the store. */
odl_status odl_store_open(odl_store **out, const odl_store_io *io, odl_arena *arena,
                          odl_diag *d);

/* Scans the medium again (after an I/O error, or if someone else wrote it). */
odl_status odl_store_rescan(odl_store *s, odl_diag *d);

/* Number of kept versions (at most n_slots - 1), and version i, newest
 * (highest commit sequence) first. */
int32_t odl_store_count(const odl_store *s);
odl_status odl_store_get(const odl_store *s, int32_t i, odl_store_version *v);
/* Finds a kept version by id (ODL_ERR_NOT_FOUND if it is not kept). */
odl_status odl_store_find(const odl_store *s, uint32_t id, odl_store_version *v);
/* The current version's id, 0 for an empty store. */
uint32_t odl_store_current(const odl_store *s);
/* Versions kept (n_slots - 1). */
int32_t odl_store_keep(const odl_store *s);

/* Records skipped by the last scan, and a line about the first of them
 * ("" when none). Skipped records are reported, never used. */
int32_t odl_store_skipped(const odl_store *s);
const char *odl_store_problem(const odl_store *s);

/* Copies version `id`'s payload into buf (cap bytes), re-reading it from the
 * medium and checking its CRC again: the bytes returned are the bytes
 * committed. meta may be NULL. On error the contents of buf are unspecified. */
odl_status odl_store_read(odl_store *s, uint32_t id, void *buf, size_t cap, size_t *len,
                          odl_store_meta *meta, odl_diag *d);

/* Commits a new version and makes it current. meta's strategy, description,
 * metrics and time are stored; id and parent are assigned (new_id may be
 * NULL). The slot written is an empty or damaged one, else the oldest
 * version's, which is not among the `keep` newest: a failure or a power cut
 * at any point leaves every kept version and the current one intact. On a
 * failure the store stays usable and still has the previous current. */
odl_status odl_store_commit(odl_store *s, const void *payload, size_t len,
                            const odl_store_meta *meta, uint32_t *new_id, odl_diag *d);

/* Makes the version `steps` (>= 1) parents back from the current one current
 * again, by writing a head record (power-cut safe like a commit). Versions
 * newer than the target stay kept and listed; the next commit's parent is the
 * target. now_current may be NULL. */
odl_status odl_store_rollback(odl_store *s, int32_t steps, uint64_t time, uint32_t *now_current,
                              odl_diag *d);
/* Makes kept version `id` current (no-op if it already is). */
odl_status odl_store_checkout(odl_store *s, uint32_t id, uint64_t time, odl_diag *d);

/* ---- flash port (core) -------------------------------------------------- */

/* A block device: absolute offsets in [0, capacity). erase may be NULL (RAM,
 * FRAM, files) and sync may be NULL. With erase, erase_size is the erase
 * block; every region starts on an erase block and spans whole blocks. */
typedef struct odl_store_flash {
    odl_status (*read)(void *ctx, uint32_t off, void *buf, uint32_t n);
    odl_status (*write)(void *ctx, uint32_t off, const void *buf, uint32_t n);
    odl_status (*erase)(void *ctx, uint32_t off, uint32_t n);
    odl_status (*sync)(void *ctx);
    void *ctx;
    uint32_t capacity;   /* bytes */
    uint32_t erase_size; /* 0 or 1: no erase blocks */
    uint32_t n_slots;    /* versions kept + 1 */
    /* set by odl_store_flash_io: */
    uint32_t head_bytes, slot_bytes;
} odl_store_flash;

/* Lays out the device: two heads of max(32, erase_size) bytes, then n_slots
 * equal version slots filling the rest (rounded down to erase blocks); fills
 * `io` (ctx = f, which must outlive the store). ODL_ERR_NOMEM when a slot
 * could not hold even an empty payload. */
odl_status odl_store_flash_io(odl_store_flash *f, odl_store_io *io, odl_diag *d);

/* A RAM "flash" device (tests, or the MCU's RAM for a session): erase sets
 * bytes to 0xFF; with nor = 1 a write can only clear bits (NOR flash), so a
 * write without an erase shows up as garbage, as on real flash. */
typedef struct odl_store_ram {
    uint8_t *mem;
    uint32_t size;
    int32_t nor;
} odl_store_ram;
odl_status odl_store_ram_read(void *ram, uint32_t off, void *buf, uint32_t n);
odl_status odl_store_ram_write(void *ram, uint32_t off, const void *buf, uint32_t n);
odl_status odl_store_ram_erase(void *ram, uint32_t off, uint32_t n);

/* ==== HOST ONLY (src/host/store_posix.c, library odl_host) ================
 * A store in a directory: DIR/STORE (its layout: "odl-store 1 slots=N
 * slot_bytes=M"), DIR/head-a.odls, DIR/head-b.odls and DIR/slot-NN.odls,
 * each file written atomically (tmp + fsync + rename + fsync of DIR). */

typedef struct odl_store_posix {
    char dir[1024];
    uint32_t n_slots, slot_bytes;
    /* internal: the region being rewritten, its temporary file, the store
     * directory, the lock, a read-ahead cache of one region file */
    int32_t open_region;
    uint32_t offset;
    int dir_fd, lock_fd, write_fd;
    int32_t read_only;    /* no write lock could be had (read-only medium): reads only */
    int32_t cache_region;
    int cache_fd;
    uint64_t cache_size, cache_off;
    uint32_t cache_len;
    void *cache;
    /* Fault injection for tests: called instead of fsync(2) when set (the
     * region files and the directory). */
    int (*sys_fsync)(int fd);
    odl_diag last_error;  /* the port's last failure, with errno text */
} odl_store_posix;

/* How long odl_store_posix_io waits for another process to release the
 * store's lock before it fails with "store DIR is in use by pid N"
 * (seconds; the environment variable ODL_STORE_WAIT overrides it, 0 = do
 * not wait). */
#define ODL_STORE_POSIX_WAIT_S 10

/* Default number of versions kept by a new POSIX store. */
#define ODL_STORE_POSIX_DEFAULT_KEEP 8

/* Sets up `io` over directory `dir`. With keep > 0 the directory and its
 * STORE file are created if missing (an existing store keeps its own layout);
 * with keep == 0 the store must exist (ODL_ERR_NOT_FOUND otherwise).
 * Takes the store's lock (flock on DIR/LOCK, exclusive) until
 * odl_store_posix_close, waiting at most ODL_STORE_POSIX_WAIT_S for another
 * holder, and removes temporary files a killed writer left behind. No file
 * in the store is followed through a symlink; temporary files are created
 * exclusively. On an error nothing is left held or open. */
odl_status odl_store_posix_io(odl_store_posix *p, odl_store_io *io, const char *dir,
                              uint32_t keep, odl_diag *d);
void odl_store_posix_close(odl_store_posix *p);

/* A store with its own (malloc'd) arena. */
typedef struct odl_store_host {
    odl_store_posix posix;
    odl_store_io io;
    void *arena_buf;
    odl_arena arena;
    odl_store *store;
} odl_store_host;
odl_status odl_store_host_open(odl_store_host *h, const char *dir, uint32_t keep, odl_diag *d);
void odl_store_host_close(odl_store_host *h);

/* For other commands: commits the file at `path` (e.g. a .odl model saved by
 * odl_host_save_model) into the store in `dir`, creating it (keeping `keep`
 * versions, 0: ODL_STORE_POSIX_DEFAULT_KEEP) if needed. meta->time == 0 is
 * replaced by the current UNIX time. new_id may be NULL. */
odl_status odl_store_posix_commit_file(const char *dir, uint32_t keep, const char *path,
                                       const odl_store_meta *meta, uint32_t *new_id,
                                       odl_diag *d);
/* Reads the current version of the store in `dir` into a 16-byte-aligned
 * malloc'd buffer (free with odl_host_free); meta may be NULL. */
odl_status odl_store_posix_read_current(const char *dir, void **buf, size_t *len,
                                        odl_store_meta *meta, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
