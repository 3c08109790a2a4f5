/* The version store (docs/store.md): versions in slots, two head records for
 * rollbacks, sequence numbers and CRC-32 everywhere, a commit protocol that
 * survives a power cut at any byte. No malloc, no stdio, no clock. */
#include "odl/store.h"
#include "bytes_le.h"
#include "odl/file.h" /* odl_crc32, ODL_FOURCC */

#include <math.h>
#include <string.h>

#define VREC_MAGIC ODL_FOURCC('O', 'D', 'L', 'V')
#define TRAIL_MAGIC ODL_FOURCC('O', 'D', 'L', 'C')
#define HEAD_MAGIC ODL_FOURCC('O', 'D', 'L', 'H')
#define STORE_FORMAT 1u
#define HDR_BYTES 256u
#define TRAIL_BYTES 16u
#define CHUNK 256u

/* header field offsets */
#define H_MAGIC 0
#define H_FORMAT 4
#define H_HDRLEN 6
#define H_SEQ 8
#define H_REGION 12
#define H_ID 16
#define H_PARENT 20
#define H_TIME 24
#define H_PLEN 32
#define H_PCRC 36
#define H_NMET 40
#define H_RSV 44
#define H_STRAT 48
#define H_DESC (H_STRAT + ODL_STORE_STRATEGY_MAX)           /* 80 */
#define H_METRICS (H_DESC + ODL_STORE_DESC_MAX)             /* 168 */
#define METRIC_BYTES (ODL_STORE_KEY_MAX + 4)                /* 20 */
#define H_RSV2 (H_METRICS + ODL_STORE_MAX_METRICS * METRIC_BYTES) /* 248 */
#define H_CRC 252

typedef struct entry {
    uint32_t seq, region, payload_len, payload_crc;
    odl_store_meta meta;
} entry;

typedef struct head {
    int32_t valid;
    uint32_t seq, target;
    uint64_t time;
} head;

struct odl_store {
    odl_store_io io;
    entry *ent;    /* n_slots capacity; valid versions, seq descending */
    int32_t n_ent;
    head heads[2];
    uint32_t current, max_seq, max_id;
    int32_t cur_head; /* the head that makes `current` current, -1: none */
    int32_t skipped;
    odl_diag problem;
};

/* ---- float bits and padding ------------------------------------------------ */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static size_t pad16(size_t n) { return (16u - (n & 15u)) & 15u; }

size_t odl_store_max_payload(uint32_t slot_bytes)
{
    if (slot_bytes < HDR_BYTES + TRAIL_BYTES)
        return 0;
    return (size_t)((slot_bytes - HDR_BYTES - TRAIL_BYTES) & ~(uint32_t)15u);
}

/* ---- metadata ----------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
    memset(dst, 0, cap);
    if (!src)
        return;
    size_t n = strlen(src);
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, src, n);
}

void odl_store_meta_init(odl_store_meta *m, const char *strategy, const char *description,
                         uint64_t time)
{
    if (!m)
        return;
    memset(m, 0, sizeof *m);
    copy_str(m->strategy, sizeof m->strategy, strategy);
    copy_str(m->description, sizeof m->description, description);
    m->time = time;
}

odl_status odl_store_meta_add_metric(odl_store_meta *m, const char *key, float value, odl_diag *d)
{
    if (!m || !key || !*key)
        return odl_fail(d, ODL_ERR_ARG, "store metric: meta and a non-empty key are required");
    if (m->n_metrics < 0 || m->n_metrics >= ODL_STORE_MAX_METRICS)
        return odl_fail(d, ODL_ERR_ARG, "store metric '%s': at most %d metrics per version", key,
                        ODL_STORE_MAX_METRICS);
    if (!isfinite(value))
        return odl_fail(d, ODL_ERR_NUMERIC, "store metric '%s' is not finite", key);
    odl_store_metric *e = &m->metrics[m->n_metrics++];
    copy_str(e->key, sizeof e->key, key);
    e->value = value;
    return ODL_OK;
}

/* A fixed string field: NUL-terminated within cap, zeros after the NUL. */
static int str_field_ok(const char *s, size_t cap)
{
    size_t n = 0;
    while (n < cap && s[n])
        n++;
    if (n == cap)
        return 0;
    for (size_t i = n; i < cap; i++)
        if (s[i])
            return 0;
    return 1;
}

static odl_status check_meta(const odl_store_meta *m, odl_diag *d)
{
    if (!str_field_ok(m->strategy, sizeof m->strategy))
        return odl_fail(d, ODL_ERR_ARG,
                        "store commit: strategy must be NUL-terminated within %d bytes, zero-filled "
                        "after (use odl_store_meta_init)", ODL_STORE_STRATEGY_MAX);
    if (!str_field_ok(m->description, sizeof m->description))
        return odl_fail(d, ODL_ERR_ARG,
                        "store commit: description must be NUL-terminated within %d bytes, "
                        "zero-filled after (use odl_store_meta_init)", ODL_STORE_DESC_MAX);
    if (m->n_metrics < 0 || m->n_metrics > ODL_STORE_MAX_METRICS)
        return odl_fail(d, ODL_ERR_ARG, "store commit: n_metrics %d out of range 0..%d",
                        (int)m->n_metrics, ODL_STORE_MAX_METRICS);
    for (int32_t i = 0; i < m->n_metrics; i++) {
        if (!m->metrics[i].key[0] || !str_field_ok(m->metrics[i].key, ODL_STORE_KEY_MAX))
            return odl_fail(d, ODL_ERR_ARG,
                            "store commit: metric %d: key must be non-empty, NUL-terminated within "
                            "%d bytes, zero-filled after", (int)i, ODL_STORE_KEY_MAX);
        if (!isfinite(m->metrics[i].value))
            return odl_fail(d, ODL_ERR_NUMERIC, "store commit: metric '%s' is not finite",
                            m->metrics[i].key);
    }
    return ODL_OK;
}

/* ---- records ------------------------------------------------------------ */

static void encode_header(uint8_t h[HDR_BYTES], const entry *e)
{
    memset(h, 0, HDR_BYTES);
    le_put_u32(h + H_MAGIC, VREC_MAGIC);
    le_put_u16(h + H_FORMAT, STORE_FORMAT);
    le_put_u16(h + H_HDRLEN, HDR_BYTES);
    le_put_u32(h + H_SEQ, e->seq);
    le_put_u32(h + H_REGION, e->region);
    le_put_u32(h + H_ID, e->meta.id);
    le_put_u32(h + H_PARENT, e->meta.parent);
    le_put_u64(h + H_TIME, e->meta.time);
    le_put_u32(h + H_PLEN, e->payload_len);
    le_put_u32(h + H_PCRC, e->payload_crc);
    le_put_u32(h + H_NMET, (uint32_t)e->meta.n_metrics);
    memcpy(h + H_STRAT, e->meta.strategy, ODL_STORE_STRATEGY_MAX);
    memcpy(h + H_DESC, e->meta.description, ODL_STORE_DESC_MAX);
    for (int32_t i = 0; i < e->meta.n_metrics; i++) {
        uint8_t *p = h + H_METRICS + (size_t)i * METRIC_BYTES;
        memcpy(p, e->meta.metrics[i].key, ODL_STORE_KEY_MAX);
        le_put_u32(p + ODL_STORE_KEY_MAX, f2u(e->meta.metrics[i].value));
    }
    le_put_u32(h + H_CRC, odl_crc32(0, h, H_CRC));
}

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void encode_trailer(uint8_t t[TRAIL_BYTES], uint32_t seq, uint32_t hdr_crc)
{
    le_put_u32(t, TRAIL_MAGIC);
    le_put_u32(t + 4, seq);
    le_put_u32(t + 8, hdr_crc);
    le_put_u32(t + 12, odl_crc32(0, t, 12));
}

static void encode_head(uint8_t h[ODL_STORE_HEAD_BYTES], const head *hd)
{
    memset(h, 0, ODL_STORE_HEAD_BYTES);
    le_put_u32(h, HEAD_MAGIC);
    le_put_u16(h + 4, STORE_FORMAT);
    le_put_u16(h + 6, ODL_STORE_HEAD_BYTES);
    le_put_u32(h + 8, hd->seq);
    le_put_u32(h + 12, hd->target);
    le_put_u64(h + 16, hd->time);
    le_put_u32(h + 28, odl_crc32(0, h, 28));
}

/* Records a skipped record: counts it and keeps the first reason. */
static void skip(odl_store *s, uint32_t region, const char *why, odl_status st)
{
    s->skipped++;
    if (s->skipped > 1)
        return;
    if (region < 2)
        odl_fail(&s->problem, st, "head %s: %s; skipped", region ? "b" : "a", why);
    else
        odl_fail(&s->problem, st, "slot %u: %s; skipped", (unsigned)(region - 2), why);
}

static const char *read_why(odl_status st)
{
    return st == ODL_ERR_TRUNCATED   ? "record truncated (an interrupted write or a damaged medium)"
           : st == ODL_ERR_UNSUPPORTED ? "not a region the store reads (a symlink or a special file: "
                                         "never followed)"
                                       : "read error";
}

static void scan_head(odl_store *s, uint32_t r)
{
    uint8_t h[ODL_STORE_HEAD_BYTES];
    head *hd = &s->heads[r];
    memset(hd, 0, sizeof *hd);
    odl_status st = s->io.read(s->io.ctx, r, 0, h, sizeof h);
    if (st == ODL_ERR_NOT_FOUND)
        return;
    if (st != ODL_OK) {
        skip(s, r, read_why(st), st);
        return;
    }
    if (all_bytes(h, sizeof h, 0xFF) || all_bytes(h, sizeof h, 0))
        return; /* erased / never written */
    if (le_get_u32(h) != HEAD_MAGIC) {
        skip(s, r, "bad magic (an interrupted write or a damaged medium)", ODL_ERR_FORMAT);
        return;
    }
    if (le_get_u32(h + 28) != odl_crc32(0, h, 28)) {
        skip(s, r, "CRC mismatch (an interrupted write or a damaged medium)", ODL_ERR_CRC);
        return;
    }
    if (le_get_u16(h + 4) != STORE_FORMAT || le_get_u16(h + 6) != ODL_STORE_HEAD_BYTES) {
        skip(s, r, "written by another store format version", ODL_ERR_VERSION);
        return;
    }
    if (le_get_u32(h + 24) != 0 || le_get_u32(h + 12) == 0) {
        skip(s, r, "malformed head record", ODL_ERR_FORMAT);
        return;
    }
    hd->valid = 1;
    hd->seq = le_get_u32(h + 8);
    hd->target = le_get_u32(h + 12);
    hd->time = le_get_u64(h + 16);
}

/* CRC of the payload of region r (read in chunks through `buf`). */
static odl_status payload_crc(odl_store *s, uint32_t r, uint32_t len, uint8_t *buf, uint32_t *crc)
{
    uint32_t c = 0, off = 0;
    while (off < len) {
        uint32_t n = len - off < CHUNK ? len - off : CHUNK;
        odl_status st = s->io.read(s->io.ctx, r, HDR_BYTES + off, buf, n);
        if (st != ODL_OK)
            return st == ODL_ERR_NOT_FOUND ? ODL_ERR_TRUNCATED : st;
        c = odl_crc32(c, buf, n);
        off += n;
    }
    *crc = c;
    return ODL_OK;
}

/* Decodes and checks the version record in region r into e: 1 valid, 0 not. */
static int scan_slot(odl_store *s, uint32_t r, entry *e)
{
    uint8_t h[HDR_BYTES];
    odl_status st = s->io.read(s->io.ctx, r, 0, h, HDR_BYTES);
    if (st == ODL_ERR_NOT_FOUND)
        return 0;
    if (st != ODL_OK) {
        skip(s, r, read_why(st), st);
        return 0;
    }
    if (all_bytes(h, HDR_BYTES, 0xFF) || all_bytes(h, HDR_BYTES, 0))
        return 0;
    if (le_get_u32(h + H_MAGIC) != VREC_MAGIC) {
        skip(s, r, "bad magic (an interrupted commit or a damaged medium)", ODL_ERR_FORMAT);
        return 0;
    }
    const uint32_t hcrc = le_get_u32(h + H_CRC);
    if (hcrc != odl_crc32(0, h, H_CRC)) {
        skip(s, r, "header CRC mismatch (an interrupted commit or a damaged medium)", ODL_ERR_CRC);
        return 0;
    }
    if (le_get_u16(h + H_FORMAT) != STORE_FORMAT || le_get_u16(h + H_HDRLEN) != HDR_BYTES) {
        skip(s, r, "written by another store format version", ODL_ERR_VERSION);
        return 0;
    }
    memset(e, 0, sizeof *e);
    e->seq = le_get_u32(h + H_SEQ);
    e->region = le_get_u32(h + H_REGION);
    e->payload_len = le_get_u32(h + H_PLEN);
    e->payload_crc = le_get_u32(h + H_PCRC);
    odl_store_meta *m = &e->meta;
    m->id = le_get_u32(h + H_ID);
    m->parent = le_get_u32(h + H_PARENT);
    m->time = le_get_u64(h + H_TIME);
    uint32_t nm = le_get_u32(h + H_NMET);
    if (e->region != r) {
        skip(s, r, "record belongs to another slot (store layout changed?)", ODL_ERR_FORMAT);
        return 0;
    }
    if (m->id == 0 || m->parent >= m->id || nm > ODL_STORE_MAX_METRICS || le_get_u32(h + H_RSV) ||
        le_get_u32(h + H_RSV2) || e->seq == 0) {
        skip(s, r, "malformed header", ODL_ERR_FORMAT);
        return 0;
    }
    m->n_metrics = (int32_t)nm;
    memcpy(m->strategy, h + H_STRAT, ODL_STORE_STRATEGY_MAX);
    memcpy(m->description, h + H_DESC, ODL_STORE_DESC_MAX);
    int ok = str_field_ok(m->strategy, ODL_STORE_STRATEGY_MAX) &&
             str_field_ok(m->description, ODL_STORE_DESC_MAX);
    for (uint32_t i = 0; i < ODL_STORE_MAX_METRICS; i++) {
        const uint8_t *p = h + H_METRICS + (size_t)i * METRIC_BYTES;
        if (i >= nm) {
            ok = ok && all_bytes(p, METRIC_BYTES, 0);
            continue;
        }
        memcpy(m->metrics[i].key, p, ODL_STORE_KEY_MAX);
        m->metrics[i].value = u2f(le_get_u32(p + ODL_STORE_KEY_MAX));
        ok = ok && m->metrics[i].key[0] && str_field_ok(m->metrics[i].key, ODL_STORE_KEY_MAX) &&
             isfinite(m->metrics[i].value);
    }
    if (!ok) {
        skip(s, r, "malformed metadata", ODL_ERR_FORMAT);
        return 0;
    }
    if (e->payload_len > odl_store_max_payload(s->io.slot_bytes)) {
        skip(s, r, "payload length larger than the slot", ODL_ERR_FORMAT);
        return 0;
    }
    /* the zero padding after the payload and the commit trailer first: an
     * interrupted commit, or a length that claims more than the medium
     * holds, is refused without reading the payload */
    const uint32_t pad = (uint32_t)pad16(e->payload_len);
    uint8_t pt[16 + TRAIL_BYTES];
    st = s->io.read(s->io.ctx, r, HDR_BYTES + e->payload_len, pt, pad + TRAIL_BYTES);
    const uint8_t *t = pt + pad;
    if (st != ODL_OK) {
        st = st == ODL_ERR_NOT_FOUND ? ODL_ERR_TRUNCATED : st;
        skip(s, r, st == ODL_ERR_TRUNCATED ? "commit trailer missing (an interrupted commit)"
                                           : "read error", st);
        return 0;
    }
    if (!all_bytes(pt, pad, 0)) {
        skip(s, r, "non-zero padding after the payload (a damaged medium)", ODL_ERR_FORMAT);
        return 0;
    }
    if (le_get_u32(t) != TRAIL_MAGIC || le_get_u32(t + 4) != e->seq || le_get_u32(t + 8) != hcrc ||
        le_get_u32(t + 12) != odl_crc32(0, t, 12)) {
        skip(s, r, "commit trailer missing or damaged (an interrupted commit)", ODL_ERR_CRC);
        return 0;
    }
    uint32_t c;
    st = payload_crc(s, r, e->payload_len, h, &c);
    if (st != ODL_OK) {
        skip(s, r, read_why(st), st);
        return 0;
    }
    if (c != e->payload_crc) {
        skip(s, r, "payload CRC mismatch (an interrupted commit or a damaged medium)", ODL_ERR_CRC);
        return 0;
    }
    return 1;
}

/* ---- the index ---------------------------------------------------------- */

static int32_t kept(const odl_store *s)
{
    int32_t k = (int32_t)s->io.n_slots - 1;
    return s->n_ent < k ? s->n_ent : k;
}

static int32_t find_kept(const odl_store *s, uint32_t id)
{
    const int32_t k = kept(s);
    for (int32_t i = 0; i < k; i++)
        if (s->ent[i].meta.id == id)
            return i;
    return -1;
}

static void insert_sorted(odl_store *s, const entry *e)
{
    int32_t i = s->n_ent++;
    while (i > 0 && s->ent[i - 1].seq < e->seq) {
        s->ent[i] = s->ent[i - 1];
        i--;
    }
    s->ent[i] = *e;
}

static void remove_region(odl_store *s, uint32_t r)
{
    for (int32_t i = 0; i < s->n_ent; i++)
        if (s->ent[i].region == r) {
            for (int32_t j = i + 1; j < s->n_ent; j++)
                s->ent[j - 1] = s->ent[j];
            s->n_ent--;
            return;
        }
}

/* The current version: the newest record (by seq) that resolves, a version
 * record naming itself, a head naming a kept version. */
static void resolve_current(odl_store *s)
{
    s->current = 0;
    s->cur_head = -1;
    s->max_seq = 0;
    s->max_id = 0;
    for (int32_t i = 0; i < s->n_ent; i++) {
        if (s->ent[i].seq > s->max_seq)
            s->max_seq = s->ent[i].seq;
        if (s->ent[i].meta.id > s->max_id)
            s->max_id = s->ent[i].meta.id;
    }
    int used[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
        if (!s->heads[r].valid)
            continue;
        if (s->heads[r].seq > s->max_seq)
            s->max_seq = s->heads[r].seq;
        if (s->heads[r].target > s->max_id)
            s->max_id = s->heads[r].target;
    }
    uint32_t vseq = s->n_ent ? s->ent[0].seq : 0;
    for (;;) {
        int best = -1;
        for (int r = 0; r < 2; r++)
            if (s->heads[r].valid && !used[r] && s->heads[r].seq > vseq &&
                (best < 0 || s->heads[r].seq > s->heads[best].seq))
                best = r;
        if (best < 0)
            break;
        used[best] = 1;
        if (find_kept(s, s->heads[best].target) >= 0) {
            s->current = s->heads[best].target;
            s->cur_head = best;
            return;
        }
        skip(s, (uint32_t)best, "names a version that is not kept (damaged versions?)",
             ODL_ERR_NOT_FOUND);
    }
    if (s->n_ent)
        s->current = s->ent[0].meta.id;
}

static odl_status scan(odl_store *s, odl_diag *d)
{
    (void)d;
    s->n_ent = 0;
    s->skipped = 0;
    odl_diag_clear(&s->problem);
    for (uint32_t r = 0; r < 2; r++)
        scan_head(s, r);
    for (uint32_t i = 0; i < s->io.n_slots; i++) {
        entry e;
        if (scan_slot(s, ODL_STORE_REGION_SLOT(i), &e)) {
            /* two valid records with one seq cannot come from this code;
             * keep the first and report the other */
            int dup = 0;
            for (int32_t j = 0; j < s->n_ent; j++)
                if (s->ent[j].seq == e.seq || s->ent[j].meta.id == e.meta.id)
                    dup = 1;
            if (dup)
                skip(s, ODL_STORE_REGION_SLOT(i), "duplicate sequence number or id", ODL_ERR_FORMAT);
            else
                insert_sorted(s, &e);
        }
    }
    resolve_current(s);
    return ODL_OK;
}

/* ---- public ------------------------------------------------------------- */

static odl_status check_io(const odl_store_io *io, odl_diag *d)
{
    if (!io)
        return odl_fail(d, ODL_ERR_ARG, "store: io is NULL");
    if (!io->read || !io->begin || !io->write || !io->commit)
        return odl_fail(d, ODL_ERR_ARG, "store: io needs read, begin, write and commit callbacks");
    if (io->n_slots < 2 || io->n_slots > ODL_STORE_MAX_SLOTS)
        return odl_fail(d, ODL_ERR_ARG, "store: n_slots %u out of range 2..%d (versions kept + 1)",
                        (unsigned)io->n_slots, ODL_STORE_MAX_SLOTS);
    if (io->slot_bytes < HDR_BYTES + TRAIL_BYTES)
        return odl_fail(d, ODL_ERR_ARG, "store: slot_bytes %u too small (at least %u)",
                        (unsigned)io->slot_bytes, (unsigned)(HDR_BYTES + TRAIL_BYTES));
    return ODL_OK;
}

static odl_status layout(const odl_store_io *io, odl_arena *a, odl_store **out, odl_diag *d)
{
    void *p;
    odl_status st = odl_arena_alloc(a, sizeof(odl_store), ODL_MEM_STATE, &p, d);
    if (st != ODL_OK)
        return st;
    odl_store *s = p;
    st = odl_arena_alloc(a, sizeof(entry) * io->n_slots, ODL_MEM_STATE, &p, d);
    if (st != ODL_OK)
        return st;
    if (s) {
        memset(s, 0, sizeof *s);
        s->io = *io;
        s->ent = p;
    }
    *out = s;
    return ODL_OK;
}

odl_status odl_store_plan(const odl_store_io *io, odl_mem_plan *plan, odl_diag *d)
{
    if (!plan)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_plan: plan is NULL");
    odl_status st = check_io(io, d);
    if (st != ODL_OK)
        return st;
    odl_arena a;
    odl_store *s;
    odl_arena_init_counting(&a);
    st = layout(io, &a, &s, d);
    if (st != ODL_OK)
        return st;
    *plan = a.plan;
    return ODL_OK;
}

odl_status odl_store_open(odl_store **out, const odl_store_io *io, odl_arena *arena, odl_diag *d)
{
    if (!out || !arena)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_open: out and arena must not be NULL");
    *out = NULL;
    odl_mem_plan plan;
    odl_status st = odl_store_plan(io, &plan, d);
    if (st != ODL_OK)
        return st;
    if (odl_arena_is_counting(arena))
        return odl_fail(d, ODL_ERR_ARG, "odl_store_open needs a real arena (use odl_store_plan to count)");
    if (odl_arena_remaining(arena) < plan.total)
        return odl_fail(d, ODL_ERR_NOMEM, "arena too small for the store: needs %zu bytes, %zu available",
                        plan.total, odl_arena_remaining(arena));
    odl_store *s;
    st = layout(io, arena, &s, d);
    if (st != ODL_OK)
        return st;
    st = scan(s, d);
    if (st != ODL_OK)
        return st;
    *out = s;
    return ODL_OK;
}

odl_status odl_store_rescan(odl_store *s, odl_diag *d)
{
    if (!s)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_rescan: store is NULL");
    return scan(s, d);
}

int32_t odl_store_count(const odl_store *s) { return s ? kept(s) : 0; }
int32_t odl_store_keep(const odl_store *s) { return s ? (int32_t)s->io.n_slots - 1 : 0; }
uint32_t odl_store_current(const odl_store *s) { return s ? s->current : 0; }
int32_t odl_store_skipped(const odl_store *s) { return s ? s->skipped : 0; }
const char *odl_store_problem(const odl_store *s) { return s ? s->problem.msg : ""; }

static void fill_version(const odl_store *s, int32_t i, odl_store_version *v)
{
    v->meta = s->ent[i].meta;
    v->payload_len = s->ent[i].payload_len;
    v->seq = s->ent[i].seq;
    v->is_current = s->ent[i].meta.id == s->current;
}

odl_status odl_store_get(const odl_store *s, int32_t i, odl_store_version *v)
{
    if (!s || !v || i < 0 || i >= kept(s))
        return ODL_ERR_ARG;
    fill_version(s, i, v);
    return ODL_OK;
}

odl_status odl_store_find(const odl_store *s, uint32_t id, odl_store_version *v)
{
    if (!s)
        return ODL_ERR_ARG;
    int32_t i = find_kept(s, id);
    if (i < 0)
        return ODL_ERR_NOT_FOUND;
    if (v)
        fill_version(s, i, v);
    return ODL_OK;
}

static odl_status not_kept(const odl_store *s, uint32_t id, odl_diag *d)
{
    if (s->n_ent == 0)
        return odl_fail(d, ODL_ERR_NOT_FOUND, "the store is empty (no version committed yet)");
    return odl_fail(d, ODL_ERR_NOT_FOUND, "version %u is not in the store (it keeps the last %d: v%u..v%u)",
                    (unsigned)id, (int)kept(s), (unsigned)s->ent[kept(s) - 1].meta.id,
                    (unsigned)s->ent[0].meta.id);
}

odl_status odl_store_read(odl_store *s, uint32_t id, void *buf, size_t cap, size_t *len,
                          odl_store_meta *meta, odl_diag *d)
{
    if (len)
        *len = 0;
    if (!s || (!buf && cap))
        return odl_fail(d, ODL_ERR_ARG, "odl_store_read: NULL argument");
    int32_t i = find_kept(s, id);
    if (i < 0)
        return not_kept(s, id, d);
    const entry *e = &s->ent[i];
    if (e->payload_len > cap)
        return odl_fail(d, ODL_ERR_NOMEM, "version %u: payload of %u bytes does not fit the %zu-byte buffer",
                        (unsigned)id, (unsigned)e->payload_len, cap);
    odl_status st = ODL_OK;
    if (e->payload_len)
        st = s->io.read(s->io.ctx, e->region, HDR_BYTES, buf, e->payload_len);
    if (st != ODL_OK)
        return odl_fail(d, st == ODL_ERR_NOT_FOUND ? ODL_ERR_TRUNCATED : st,
                        "version %u (slot %u): read failed: %s", (unsigned)id,
                        (unsigned)(e->region - 2), odl_status_str(st));
    if (odl_crc32(0, buf, e->payload_len) != e->payload_crc)
        return odl_fail(d, ODL_ERR_CRC,
                        "version %u (slot %u): payload CRC mismatch (the medium changed since it "
                        "was opened?)", (unsigned)id, (unsigned)(e->region - 2));
    if (len)
        *len = e->payload_len;
    if (meta)
        *meta = e->meta;
    return ODL_OK;
}

static const uint8_t zeros16[16] = {0};

/* After a failed commit callback (sync; on POSIX: fsync, rename, fsync of
 * the directory) the store cannot know whether the new record is on the
 * medium: it may have landed (e.g. the rename happened, only the directory
 * fsync failed). It re-reads the medium, so that the handle and its messages
 * say what the medium now shows, and keeps the attempt's numbers burnt.
 * Returns the current version after the re-read. */
static uint32_t after_failed_sync(odl_store *s, uint32_t seq, uint32_t id)
{
    scan(s, NULL);
    if (s->max_seq < seq)
        s->max_seq = seq;
    if (s->max_id < id)
        s->max_id = id;
    return s->current;
}

odl_status odl_store_commit(odl_store *s, const void *payload, size_t len,
                            const odl_store_meta *meta, uint32_t *new_id, odl_diag *d)
{
    if (new_id)
        *new_id = 0;
    if (!s || !meta || (!payload && len))
        return odl_fail(d, ODL_ERR_ARG, "odl_store_commit: NULL argument");
    odl_status st = check_meta(meta, d);
    if (st != ODL_OK)
        return st;
    const size_t maxp = odl_store_max_payload(s->io.slot_bytes);
    if (len > maxp)
        return odl_fail(d, ODL_ERR_NOMEM, "store commit: payload of %zu bytes exceeds a slot's %zu",
                        len, maxp);
    if (s->max_seq == UINT32_MAX || s->max_id == UINT32_MAX)
        return odl_fail(d, ODL_ERR_STATE, "store commit: sequence numbers exhausted");

    /* the slot: empty or damaged first, else the oldest version's */
    uint32_t r = 0;
    for (uint32_t i = 0; i < s->io.n_slots && !r; i++) {
        uint32_t cand = ODL_STORE_REGION_SLOT(i);
        int used = 0;
        for (int32_t j = 0; j < s->n_ent; j++)
            used |= s->ent[j].region == cand;
        if (!used)
            r = cand;
    }
    if (!r) {
        const entry *old = &s->ent[s->n_ent - 1];
        /* all n_slots hold versions: the oldest is outside the kept window,
         * so it can be neither current nor a kept version */
        if (old->meta.id == s->current || s->n_ent - 1 < kept(s))
            return odl_fail(d, ODL_ERR_STATE, "store commit: no slot can be overwritten safely");
        r = old->region;
    }

    entry e;
    memset(&e, 0, sizeof e);
    e.meta = *meta;
    e.meta.id = s->max_id + 1;
    e.meta.parent = s->current;
    e.seq = s->max_seq + 1;
    e.region = r;
    e.payload_len = (uint32_t)len;
    e.payload_crc = odl_crc32(0, payload, len);
    uint8_t h[HDR_BYTES];
    encode_header(h, &e);
    uint8_t t[TRAIL_BYTES];
    encode_trailer(t, e.seq, le_get_u32(h + H_CRC));

    /* from here on the slot's old contents are gone */
    remove_region(s, r);
    const char *stage = "begin";
    st = s->io.begin(s->io.ctx, r);
    if (st == ODL_OK) {
        stage = "header write";
        st = s->io.write(s->io.ctx, r, 0, h, HDR_BYTES);
    }
    if (st == ODL_OK && len) {
        stage = "payload write";
        st = s->io.write(s->io.ctx, r, HDR_BYTES, payload, (uint32_t)len);
    }
    const uint32_t pad = (uint32_t)pad16(len);
    if (st == ODL_OK && pad) {
        stage = "payload write";
        st = s->io.write(s->io.ctx, r, HDR_BYTES + (uint32_t)len, zeros16, pad);
    }
    if (st == ODL_OK) {
        stage = "trailer write";
        st = s->io.write(s->io.ctx, r, HDR_BYTES + (uint32_t)len + pad, t, TRAIL_BYTES);
    }
    if (st == ODL_OK) {
        stage = "commit";
        st = s->io.commit(s->io.ctx, r);
    }
    if (st != ODL_OK) {
        if (st >= 0)
            st = ODL_ERR_IO;
        /* burn the numbers: the record may still land (a failed sync), and a
         * retry must not write a second record with the same seq and id */
        const uint32_t was = s->current;
        if (stage[0] == 'c' && after_failed_sync(s, e.seq, e.meta.id) == e.meta.id)
            return odl_fail(d, st, "store commit of v%u into slot %u failed at its final sync "
                            "(%s): the medium now shows v%u as current, but a power cut may "
                            "still bring back %s%u", (unsigned)e.meta.id, (unsigned)(r - 2),
                            odl_status_str(st), (unsigned)e.meta.id, was ? "v" : "the empty store ",
                            (unsigned)was);
        if (s->max_seq < e.seq)
            s->max_seq = e.seq;
        if (s->max_id < e.meta.id)
            s->max_id = e.meta.id;
        if (s->current)
            return odl_fail(d, st, "store commit of v%u into slot %u failed at %s (%s); v%u is "
                            "still current", (unsigned)e.meta.id, (unsigned)(r - 2), stage,
                            odl_status_str(st), (unsigned)s->current);
        return odl_fail(d, st, "store commit of v%u into slot %u failed at %s (%s); the store is "
                        "still empty", (unsigned)e.meta.id, (unsigned)(r - 2), stage,
                        odl_status_str(st));
    }
    insert_sorted(s, &e);
    s->max_seq = e.seq;
    s->max_id = e.meta.id;
    s->current = e.meta.id;
    s->cur_head = -1;
    if (new_id)
        *new_id = e.meta.id;
    return ODL_OK;
}

odl_status odl_store_checkout(odl_store *s, uint32_t id, uint64_t time, odl_diag *d)
{
    if (!s)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_checkout: store is NULL");
    if (find_kept(s, id) < 0)
        return not_kept(s, id, d);
    if (id == s->current)
        return ODL_OK;
    if (s->max_seq == UINT32_MAX)
        return odl_fail(d, ODL_ERR_STATE, "store: sequence numbers exhausted");
    /* the head to rewrite: an invalid one, else the one that does not make
     * the current version current (else the older one) */
    uint32_t r;
    if (!s->heads[0].valid)
        r = 0;
    else if (!s->heads[1].valid)
        r = 1;
    else if (s->cur_head >= 0)
        r = s->cur_head ? 0 : 1;
    else
        r = s->heads[0].seq < s->heads[1].seq ? 0 : 1;
    head hd = {1, s->max_seq + 1, id, time};
    uint8_t h[ODL_STORE_HEAD_BYTES];
    encode_head(h, &hd);
    s->heads[r].valid = 0;
    odl_status st = s->io.begin(s->io.ctx, r);
    if (st == ODL_OK)
        st = s->io.write(s->io.ctx, r, 0, h, sizeof h);
    int synced = 0;
    if (st == ODL_OK) {
        synced = 1;
        st = s->io.commit(s->io.ctx, r);
    }
    if (st != ODL_OK) {
        if (st >= 0)
            st = ODL_ERR_IO;
        const uint32_t was = s->current;
        if (synced && after_failed_sync(s, hd.seq, 0) == id && id != was)
            return odl_fail(d, st, "store: the head record making v%u current failed at its final "
                            "sync (%s): the medium now shows v%u as current, but a power cut may "
                            "still bring back v%u", (unsigned)id, odl_status_str(st), (unsigned)id,
                            (unsigned)was);
        if (s->max_seq < hd.seq)
            s->max_seq = hd.seq;
        return odl_fail(d, st, "store: writing the head record to make v%u current failed (%s); "
                        "v%u is still current", (unsigned)id, odl_status_str(st),
                        (unsigned)s->current);
    }
    s->heads[r] = hd;
    s->max_seq = hd.seq;
    s->current = id;
    s->cur_head = (int32_t)r;
    return ODL_OK;
}

odl_status odl_store_rollback(odl_store *s, int32_t steps, uint64_t time, uint32_t *now_current,
                              odl_diag *d)
{
    if (now_current)
        *now_current = 0;
    if (!s)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_rollback: store is NULL");
    if (steps < 1)
        return odl_fail(d, ODL_ERR_ARG, "rollback: steps must be at least 1 (got %d)", (int)steps);
    if (!s->current)
        return odl_fail(d, ODL_ERR_NOT_FOUND, "rollback: the store is empty (no version committed yet)");
    uint32_t id = s->current;
    for (int32_t k = 0; k < steps; k++) {
        int32_t i = find_kept(s, id);
        uint32_t parent = i >= 0 ? s->ent[i].meta.parent : 0;
        if (parent == 0)
            return odl_fail(d, ODL_ERR_NOT_FOUND,
                            "rollback: cannot go back %d step%s from v%u: v%u is the first version "
                            "(%d step%s possible)", (int)steps, steps == 1 ? "" : "s",
                            (unsigned)s->current, (unsigned)id, (int)k, k == 1 ? "" : "s");
        if (find_kept(s, parent) < 0)
            return odl_fail(d, ODL_ERR_NOT_FOUND,
                            "rollback: cannot go back %d step%s from v%u: v%u's parent v%u is no "
                            "longer kept (the store keeps %d versions; %d step%s possible)",
                            (int)steps, steps == 1 ? "" : "s", (unsigned)s->current, (unsigned)id,
                            (unsigned)parent, (int)(s->io.n_slots - 1), (int)k, k == 1 ? "" : "s");
        id = parent;
    }
    odl_status st = odl_store_checkout(s, id, time, d);
    if (st != ODL_OK)
        return st;
    if (now_current)
        *now_current = id;
    return ODL_OK;
}

/* ---- flash port --------------------------------------------------------- */

typedef struct {
    uint32_t off, len;
} span;

static int region_span(const odl_store_flash *f, uint32_t r, span *sp)
{
    if (r < 2) {
        sp->off = r * f->head_bytes;
        sp->len = f->head_bytes;
        return 1;
    }
    if (r - 2 >= f->n_slots)
        return 0;
    sp->off = 2 * f->head_bytes + (r - 2) * f->slot_bytes;
    sp->len = f->slot_bytes;
    return 1;
}

static odl_status flash_read(void *ctx, uint32_t r, uint32_t off, void *buf, uint32_t n)
{
    const odl_store_flash *f = ctx;
    span sp;
    if (!region_span(f, r, &sp) || off > sp.len || n > sp.len - off)
        return ODL_ERR_ARG;
    return f->read(f->ctx, sp.off + off, buf, n);
}

static odl_status flash_begin(void *ctx, uint32_t r)
{
    const odl_store_flash *f = ctx;
    span sp;
    if (!region_span(f, r, &sp))
        return ODL_ERR_ARG;
    return f->erase ? f->erase(f->ctx, sp.off, sp.len) : ODL_OK;
}

static odl_status flash_write(void *ctx, uint32_t r, uint32_t off, const void *buf, uint32_t n)
{
    const odl_store_flash *f = ctx;
    span sp;
    if (!region_span(f, r, &sp) || off > sp.len || n > sp.len - off)
        return ODL_ERR_ARG;
    return f->write(f->ctx, sp.off + off, buf, n);
}

static odl_status flash_commit(void *ctx, uint32_t r)
{
    const odl_store_flash *f = ctx;
    (void)r;
    return f->sync ? f->sync(f->ctx) : ODL_OK;
}

odl_status odl_store_flash_io(odl_store_flash *f, odl_store_io *io, odl_diag *d)
{
    if (!f || !io || !f->read || !f->write)
        return odl_fail(d, ODL_ERR_ARG, "odl_store_flash_io: device needs read and write callbacks");
    if (f->n_slots < 2 || f->n_slots > ODL_STORE_MAX_SLOTS)
        return odl_fail(d, ODL_ERR_ARG, "flash store: n_slots %u out of range 2..%d (versions kept + 1)",
                        (unsigned)f->n_slots, ODL_STORE_MAX_SLOTS);
    uint32_t eb = f->erase_size > 1 ? f->erase_size : 16;
    if (f->erase && f->erase_size > 1 && (f->erase_size & 15u))
        return odl_fail(d, ODL_ERR_ARG, "flash store: erase_size %u is not a multiple of 16",
                        (unsigned)f->erase_size);
    uint32_t hb = ODL_STORE_HEAD_BYTES > eb ? ODL_STORE_HEAD_BYTES : eb;
    hb = (hb + eb - 1) / eb * eb;
    uint64_t rest = f->capacity > 2ull * hb ? (uint64_t)f->capacity - 2ull * hb : 0;
    uint64_t sb = rest / f->n_slots / eb * eb;
    if (sb < HDR_BYTES + TRAIL_BYTES)
        return odl_fail(d, ODL_ERR_NOMEM,
                        "flash store: %u bytes cannot hold 2 heads of %u bytes and %u slots of at "
                        "least %u bytes", (unsigned)f->capacity, (unsigned)hb, (unsigned)f->n_slots,
                        (unsigned)(HDR_BYTES + TRAIL_BYTES));
    f->head_bytes = hb;
    f->slot_bytes = (uint32_t)sb;
    memset(io, 0, sizeof *io);
    io->ctx = f;
    io->n_slots = f->n_slots;
    io->slot_bytes = f->slot_bytes;
    io->read = flash_read;
    io->begin = flash_begin;
    io->write = flash_write;
    io->commit = flash_commit;
    return ODL_OK;
}

/* ---- RAM "flash" -------------------------------------------------------- */

odl_status odl_store_ram_read(void *ctx, uint32_t off, void *buf, uint32_t n)
{
    const odl_store_ram *m = ctx;
    if (!m || (!buf && n))
        return ODL_ERR_ARG;
    if (off > m->size || n > m->size - off)
        return ODL_ERR_TRUNCATED;
    if (n)
        memcpy(buf, m->mem + off, n);
    return ODL_OK;
}

odl_status odl_store_ram_write(void *ctx, uint32_t off, const void *buf, uint32_t n)
{
    odl_store_ram *m = ctx;
    if (!m || (!buf && n))
        return ODL_ERR_ARG;
    if (off > m->size || n > m->size - off)
        return ODL_ERR_IO;
    const uint8_t *p = buf;
    for (uint32_t i = 0; i < n; i++)
        m->mem[off + i] = m->nor ? (uint8_t)(m->mem[off + i] & p[i]) : p[i];
    return ODL_OK;
}

odl_status odl_store_ram_erase(void *ctx, uint32_t off, uint32_t n)
{
    odl_store_ram *m = ctx;
    if (!m)
        return ODL_ERR_ARG;
    if (off > m->size || n > m->size - off)
        return ODL_ERR_IO;
    if (n)
        memset(m->mem + off, 0xFF, n);
    return ODL_OK;
}
