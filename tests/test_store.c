/* The version store (docs/store.md): commits, listing, rollback, plans; a
 * power cut at every byte of every write of a commit and of a rollback, on a
 * NOR-flash model (erase + program), on RAM without erase and on the POSIX
 * port; an I/O error at every call; and a corruption sweep (flip every byte,
 * truncate at every length) of the flash medium and of every POSIX file.
 * Runs under ASan/UBSan: the devices bounds-check, and payloads are read
 * into exact-size heap buffers. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "odl/odl.h"
#include "odl/store.h"
#include "odl/posix_io.h"

/* ---- payloads: content is a function of (id, seq) ------------------------ */

static uint32_t plen_of(uint32_t id) { return 180u + (id * 37u) % 160u; } /* 180..339 */

static void gen_payload(uint8_t *p, uint32_t len, uint32_t id, uint32_t seq)
{
    uint32_t x = id * 2654435761u ^ seq * 40503u ^ 0x9E3779B9u;
    for (uint32_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void mk_meta(odl_store_meta *m, uint32_t id)
{
    char desc[64];
    snprintf(desc, sizeof desc, "version %u of the test", (unsigned)id);
    odl_store_meta_init(m, id % 2 ? "replay" : "ewc", desc, 1700000000ull + id);
    odl_store_meta_add_metric(m, "acc", 0.5f + 0.01f * (float)id, NULL);
    if (id % 3 == 0)
        odl_store_meta_add_metric(m, "forget", 0.125f, NULL);
}

/* Commits a version whose payload is gen(id, seq). The store assigns id and
 * seq; we predict them to build the payload, then check the prediction. */
static odl_status commit_gen(odl_store *s, uint32_t id, uint32_t seq, odl_diag *d)
{
    uint32_t len = plen_of(id);
    uint8_t *p = malloc(len);
    gen_payload(p, len, id, seq);
    odl_store_meta m;
    mk_meta(&m, id);
    uint32_t got = 0;
    odl_status st = odl_store_commit(s, p, len, &m, &got, d);
    free(p);
    if (st == ODL_OK && got != id)
        return ODL_ERR_STATE;
    return st;
}

/* Every listed version reads back, with bytes gen(id, seq) and its metadata. */
static int verify_listed(odl_test_ctx *t, odl_store *s)
{
    int bad = 0;
    for (int32_t i = 0; i < odl_store_count(s); i++) {
        odl_store_version v;
        if (odl_store_get(s, i, &v) != ODL_OK) {
            bad++;
            continue;
        }
        uint8_t *buf = malloc(v.payload_len ? v.payload_len : 1);
        uint8_t *want = malloc(v.payload_len ? v.payload_len : 1);
        size_t len = 0;
        odl_store_meta m;
        odl_diag d;
        odl_diag_clear(&d);
        odl_status st = odl_store_read(s, v.meta.id, buf, v.payload_len, &len, &m, &d);
        gen_payload(want, v.payload_len, v.meta.id, v.seq);
        odl_store_meta em;
        mk_meta(&em, v.meta.id);
        if (st != ODL_OK || len != plen_of(v.meta.id) || memcmp(buf, want, len) != 0 ||
            strcmp(m.description, em.description) != 0 || m.n_metrics != em.n_metrics ||
            m.time != em.time) {
            if (bad == 0)
                odl_test_logf(t, "    version %u (seq %u) does not read back: %s", (unsigned)v.meta.id,
                              (unsigned)v.seq, d.msg);
            bad++;
        }
        free(buf);
        free(want);
    }
    uint32_t cur = odl_store_current(s);
    if (odl_store_count(s) > 0 && odl_store_find(s, cur, NULL) != ODL_OK)
        bad++;
    if (odl_store_count(s) == 0 && cur != 0)
        bad++;
    return bad == 0;
}

/* A snapshot of what a store shows. */
typedef struct shown {
    int32_t n;
    uint32_t ids[ODL_STORE_MAX_SLOTS], seqs[ODL_STORE_MAX_SLOTS];
    uint32_t current;
} shown;

static shown show(odl_store *s)
{
    shown w;
    memset(&w, 0, sizeof w);
    w.n = odl_store_count(s);
    for (int32_t i = 0; i < w.n; i++) {
        odl_store_version v;
        odl_store_get(s, i, &v);
        w.ids[i] = v.meta.id;
        w.seqs[i] = v.seq;
    }
    w.current = odl_store_current(s);
    return w;
}

static int has(const shown *w, uint32_t id, uint32_t seq)
{
    for (int32_t i = 0; i < w->n; i++)
        if (w->ids[i] == id && w->seqs[i] == seq)
            return 1;
    return 0;
}

/* A store and its arena, over any io. */
typedef struct held {
    void *mem;
    odl_arena arena;
    odl_store *s;
} held;

static odl_status held_open(held *h, const odl_store_io *io, odl_diag *d)
{
    memset(h, 0, sizeof *h);
    odl_mem_plan plan;
    odl_status st = odl_store_plan(io, &plan, d);
    if (st != ODL_OK)
        return st;
    h->mem = malloc(plan.total);
    st = odl_arena_init(&h->arena, h->mem, plan.total);
    if (st == ODL_OK)
        st = odl_store_open(&h->s, io, &h->arena, d);
    return st;
}

static void held_close(held *h)
{
    free(h->mem);
    memset(h, 0, sizeof *h);
}

/* ---- a flash device with power cuts and failures -------------------------- */

typedef struct fdev {
    odl_store_ram ram;
    int64_t budget;   /* units (erased + written bytes, 1 per sync) before the cut; -1: none */
    int64_t used;
    int dead;
    int calls, fail_call; /* fail_call: that call returns ODL_ERR_IO (no cut) */
    uint32_t trunc;   /* reads past this offset are truncated */
    int64_t written_units; /* units spent by writes (not erase/sync) */
} fdev;

static uint32_t spend(fdev *f, uint32_t n)
{
    if (f->budget < 0)
        return n;
    int64_t left = f->budget - f->used;
    uint32_t k = left >= (int64_t)n ? n : (uint32_t)(left > 0 ? left : 0);
    f->used += k;
    if (k < n)
        f->dead = 1;
    return k;
}

static odl_status fd_read(void *ctx, uint32_t off, void *buf, uint32_t n)
{
    fdev *f = ctx;
    if (off > f->trunc || n > f->trunc - off)
        return ODL_ERR_TRUNCATED;
    return odl_store_ram_read(&f->ram, off, buf, n);
}

static odl_status fd_write(void *ctx, uint32_t off, const void *buf, uint32_t n)
{
    fdev *f = ctx;
    if (++f->calls == f->fail_call || f->dead)
        return ODL_ERR_IO;
    uint32_t k = spend(f, n);
    f->written_units += k;
    if (k)
        odl_store_ram_write(&f->ram, off, buf, k);
    return k == n ? ODL_OK : ODL_ERR_IO;
}

static odl_status fd_erase(void *ctx, uint32_t off, uint32_t n)
{
    fdev *f = ctx;
    if (++f->calls == f->fail_call || f->dead)
        return ODL_ERR_IO;
    uint32_t k = spend(f, n);
    if (k)
        odl_store_ram_erase(&f->ram, off, k);
    return k == n ? ODL_OK : ODL_ERR_IO;
}

static odl_status fd_sync(void *ctx)
{
    fdev *f = ctx;
    if (++f->calls == f->fail_call || f->dead)
        return ODL_ERR_IO;
    return spend(f, 1) == 1 ? ODL_OK : ODL_ERR_IO;
}

#define FLASH_SLOTS 4u  /* keep 3 */
#define FLASH_ERASE 64u
#define FLASH_SLOT 640u
#define FLASH_CAP (2u * FLASH_ERASE + FLASH_SLOTS * FLASH_SLOT)

typedef struct flash_rig {
    fdev dev;
    odl_store_flash fl;
    odl_store_io io;
    uint8_t mem[FLASH_CAP];
} flash_rig;

/* nor = 1: NOR flash with erase; 0: RAM-like, no erase, writes overwrite. */
static odl_status rig_init(flash_rig *r, int nor, odl_diag *d)
{
    memset(r, 0, sizeof *r);
    memset(r->mem, nor ? 0xFF : 0x00, sizeof r->mem);
    r->dev.ram.mem = r->mem;
    r->dev.ram.size = FLASH_CAP;
    r->dev.ram.nor = nor;
    r->dev.budget = -1;
    r->dev.trunc = FLASH_CAP;
    r->fl.read = fd_read;
    r->fl.write = fd_write;
    r->fl.erase = nor ? fd_erase : NULL;
    r->fl.sync = fd_sync;
    r->fl.ctx = &r->dev;
    r->fl.capacity = FLASH_CAP;
    r->fl.erase_size = nor ? FLASH_ERASE : 0;
    r->fl.n_slots = FLASH_SLOTS;
    return odl_store_flash_io(&r->fl, &r->io, d);
}

/* Builds a history: v1..v5 committed (so the 4 slots are full and v1, v2
 * are gone or the spare), and with `rolled` a rollback of one step (v4
 * current, v5 kept). */
static odl_status build_history(odl_store *s, int n_commits, int rolled, odl_diag *d)
{
    for (int i = 0; i < n_commits; i++) {
        /* no rollback yet: version i+1 gets seq i+1 */
        odl_status st = commit_gen(s, (uint32_t)i + 1, (uint32_t)i + 1, d);
        if (st != ODL_OK)
            return st;
    }
    /* rolled = 2: two rollbacks, so both heads hold records */
    for (int i = 0; i < rolled; i++) {
        odl_status st = odl_store_rollback(s, 1, 1800000000ull, NULL, d);
        if (st != ODL_OK)
            return st;
    }
    return ODL_OK;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_plan_equals_arena(odl_test_ctx *t)
{
    for (uint32_t n = 2; n <= ODL_STORE_MAX_SLOTS; n += 7) {
        flash_rig *r = calloc(1, sizeof *r);
        CHECK_OK(rig_init(r, 1, NULL));
        r->io.n_slots = n;
        odl_mem_plan plan;
        CHECK_OK(odl_store_plan(&r->io, &plan, NULL));
        uint8_t *mem = malloc(plan.total + 64);
        odl_arena a;
        /* an unaligned base: the first block is aligned up, so give the slack */
        CHECK_OK(odl_arena_init(&a, mem, plan.total));
        r->io.n_slots = FLASH_SLOTS; /* the medium's layout; plan for n only */
        odl_store_io io = r->io;
        io.n_slots = n;
        /* n slots beyond the device: reads of missing regions fail cleanly */
        odl_store *s = NULL;
        odl_diag d;
        odl_diag_clear(&d);
        odl_status st = odl_store_open(&s, &io, &a, &d);
        CHECK(st == ODL_OK);
        CHECK(a.used == plan.total);
        CHECK(plan.bytes[ODL_MEM_STATE] == plan.total);
        odl_arena b;
        CHECK_OK(odl_arena_init(&b, mem, plan.total - 1));
        st = odl_store_open(&s, &io, &b, &d);
        CHECK(st == ODL_ERR_NOMEM && strstr(d.msg, "arena too small"));
        free(mem);
        free(r);
    }
    odl_store_io bad;
    memset(&bad, 0, sizeof bad);
    odl_mem_plan p;
    odl_diag d;
    CHECK(odl_store_plan(&bad, &p, &d) == ODL_ERR_ARG && d.msg[0]);
}

static void test_basic(odl_test_ctx *t)
{
    flash_rig *r = calloc(1, sizeof *r);
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(rig_init(r, 1, &d));
    CHECK(r->fl.slot_bytes == FLASH_SLOT && r->fl.head_bytes == FLASH_ERASE);
    held h = {0};
    CHECK_OK(held_open(&h, &r->io, &d));
    odl_store *s = h.s;
    CHECK(odl_store_count(s) == 0 && odl_store_current(s) == 0 && odl_store_skipped(s) == 0);
    CHECK(odl_store_keep(s) == 3);
    CHECK(odl_store_rollback(s, 1, 0, NULL, &d) == ODL_ERR_NOT_FOUND && strstr(d.msg, "empty"));

    /* commits */
    for (uint32_t id = 1; id <= 5; id++) {
        CHECK_OK(commit_gen(s, id, id, &d));
        CHECK(odl_store_current(s) == id);
    }
    CHECK(odl_store_count(s) == 3);
    odl_store_version v;
    CHECK_OK(odl_store_get(s, 0, &v));
    CHECK(v.meta.id == 5 && v.meta.parent == 4 && v.is_current && v.seq == 5);
    CHECK(strcmp(v.meta.strategy, "replay") == 0 && v.meta.n_metrics == 1);
    CHECK_NEAR(v.meta.metrics[0].value, 0.55f, 1e-6);
    CHECK(strcmp(v.meta.metrics[0].key, "acc") == 0);
    CHECK_OK(odl_store_get(s, 2, &v));
    CHECK(v.meta.id == 3 && !v.is_current && v.meta.n_metrics == 2);
    CHECK(odl_store_find(s, 2, NULL) == ODL_ERR_NOT_FOUND); /* the spare: not kept */
    CHECK(verify_listed(t, s));

    /* reading: too small a buffer, a version not kept */
    uint8_t small[8];
    size_t len;
    CHECK(odl_store_read(s, 5, small, sizeof small, &len, NULL, &d) == ODL_ERR_NOMEM);
    CHECK(odl_store_read(s, 1, small, sizeof small, &len, NULL, &d) == ODL_ERR_NOT_FOUND &&
          strstr(d.msg, "keeps the last 3"));

    /* rollback: along the parent chain, too far, then commit after it */
    uint32_t now = 0;
    CHECK(odl_store_rollback(s, 3, 0, &now, &d) == ODL_ERR_NOT_FOUND && strstr(d.msg, "2 steps possible"));
    CHECK(odl_store_current(s) == 5);
    CHECK_OK(odl_store_rollback(s, 2, 1234, &now, &d));
    CHECK(now == 3 && odl_store_current(s) == 3 && odl_store_count(s) == 3);
    CHECK(odl_store_rollback(s, 1, 0, &now, &d) == ODL_ERR_NOT_FOUND && strstr(d.msg, "no longer kept"));
    CHECK(odl_store_rollback(s, 0, 0, &now, &d) == ODL_ERR_ARG);
    CHECK_OK(odl_store_checkout(s, 4, 0, &d));
    CHECK_OK(odl_store_checkout(s, 3, 0, &d));
    CHECK_OK(odl_store_checkout(s, 3, 0, &d)); /* no-op */
    CHECK(odl_store_checkout(s, 9, 0, &d) == ODL_ERR_NOT_FOUND);

    /* reopen: same state */
    shown before = show(s);
    held h2 = {0};
    CHECK_OK(held_open(&h2, &r->io, &d));
    shown after = show(h2.s);
    CHECK(memcmp(&before, &after, sizeof before) == 0);
    CHECK(odl_store_current(h2.s) == 3 && odl_store_skipped(h2.s) == 0);
    held_close(&h2);

    /* a commit after the rollback: parent is the rolled-back-to version;
     * the newest (v5, v4) stay kept, the oldest (v3) is the spare now */
    /* heads took seqs 6, 7, 8 */
    CHECK_OK(commit_gen(s, 6, 9, &d));
    CHECK_OK(odl_store_find(s, 6, &v));
    CHECK(v.meta.parent == 3 && v.seq == 9 && v.is_current);
    CHECK(odl_store_find(s, 5, NULL) == ODL_OK && odl_store_find(s, 4, NULL) == ODL_OK);
    CHECK(odl_store_find(s, 3, NULL) == ODL_ERR_NOT_FOUND);
    CHECK(odl_store_rollback(s, 1, 0, &now, &d) == ODL_ERR_NOT_FOUND);

    /* argument checks */
    odl_store_meta m;
    mk_meta(&m, 7);
    uint8_t big[FLASH_SLOT];
    memset(big, 1, sizeof big);
    CHECK(odl_store_commit(s, big, odl_store_max_payload(FLASH_SLOT) + 1, &m, NULL, &d) == ODL_ERR_NOMEM &&
          strstr(d.msg, "exceeds"));
    memset(m.strategy, 'x', sizeof m.strategy);
    CHECK(odl_store_commit(s, big, 10, &m, NULL, &d) == ODL_ERR_ARG && strstr(d.msg, "strategy"));
    mk_meta(&m, 7);
    m.metrics[0].value = NAN;
    CHECK(odl_store_commit(s, big, 10, &m, NULL, &d) == ODL_ERR_NUMERIC);
    mk_meta(&m, 7);
    for (int i = 0; i < 4; i++)
        (void)odl_store_meta_add_metric(&m, "k", 1.0f, NULL);
    CHECK(m.n_metrics == 4 && odl_store_meta_add_metric(&m, "k", 1.0f, &d) == ODL_ERR_ARG);
    /* the largest payload fits, an empty one too */
    mk_meta(&m, 7);
    uint32_t id = 0;
    CHECK_OK(odl_store_commit(s, big, odl_store_max_payload(FLASH_SLOT), &m, &id, &d));
    CHECK_OK(odl_store_commit(s, NULL, 0, &m, &id, &d));
    CHECK_OK(odl_store_read(s, id, small, 0, &len, NULL, &d));
    CHECK(len == 0);
    CHECK(odl_store_skipped(s) == 0);

    /* a flash too small for its slots */
    odl_store_flash f2 = r->fl;
    odl_store_io io2;
    f2.capacity = 1000;
    CHECK(odl_store_flash_io(&f2, &io2, &d) == ODL_ERR_NOMEM && strstr(d.msg, "cannot hold"));
    held_close(&h);
    free(r);
}

/* Power cut at every unit of an operation. op 0: commit, 1: rollback one
 * step. rolled: the history ends with a rollback (the current version is not
 * the newest). Returns the number of cut points tested. */
static int64_t cut_sweep_flash(odl_test_ctx *t, int nor, int op, int rolled)
{
    flash_rig *r = calloc(1, sizeof *r);
    uint8_t *snap = malloc(FLASH_CAP);
    odl_diag d;
    odl_diag_clear(&d);
    int64_t tested = 0;
    if (rig_init(r, nor, &d) != ODL_OK) {
        CHECK(0);
        goto out;
    }
    held h = {0};
    if (held_open(&h, &r->io, &d) != ODL_OK || build_history(h.s, 5, rolled, &d) != ODL_OK) {
        odl_test_logf(t, "    history: %s", d.msg);
        CHECK(0);
        held_close(&h);
        goto out;
    }
    const shown base = show(h.s);
    const uint32_t seq_next = 5u + (uint32_t)rolled + 1u;
    /* op 1: roll back one step from the newest, else return to the newest */
    const uint32_t co = base.current == base.ids[0] ? 0u : base.ids[0];
    const uint32_t id_next = 6;
    held_close(&h);
    memcpy(snap, r->mem, FLASH_CAP);

    /* a clean run gives the number of units (and of write units) */
    int64_t total = 0, wtotal = 0;
    uint32_t target = 0;
    {
        CHECK(held_open(&h, &r->io, &d) == ODL_OK);
        r->dev.used = 0;
        r->dev.written_units = 0;
        r->dev.budget = INT64_MAX / 2;
        odl_status st = op == 0 ? commit_gen(h.s, id_next, seq_next, &d)
                        : co ? odl_store_checkout(h.s, co, 99, &d)
                             : odl_store_rollback(h.s, 1, 99, &target, &d);
        if (co)
            target = co;
        if (st != ODL_OK)
            odl_test_logf(t, "    clean run: %s", d.msg);
        CHECK(st == ODL_OK);
        total = r->dev.used;
        wtotal = r->dev.written_units;
        held_close(&h);
    }
    const uint32_t new_cur = op == 0 ? id_next : target;

    int fails = 0;
    for (int64_t k = 0; k <= total && fails < 3; k++) {
        memcpy(r->mem, snap, FLASH_CAP);
        r->dev.budget = -1;
        r->dev.dead = 0;
        if (held_open(&h, &r->io, &d) != ODL_OK) {
            CHECK(0);
            break;
        }
        r->dev.budget = k;
        r->dev.used = 0;
        r->dev.written_units = 0;
        odl_status st = op == 0 ? commit_gen(h.s, id_next, seq_next, &d)
                        : co ? odl_store_checkout(h.s, co, 99, &d)
                             : odl_store_rollback(h.s, 1, 99, NULL, &d);
        int64_t wdone = r->dev.written_units;
        int ok = (k == total) == (st == ODL_OK);
        if (st != ODL_OK)
            ok = ok && d.msg[0] && strstr(d.msg, "still");
        /* the store that saw the failure shows the old state, or, when the
         * failure was the final sync after every byte was written, what the
         * medium now shows, and says that a power cut may undo it */
        if (st != ODL_OK) {
            shown now = show(h.s);
            if (strstr(d.msg, "medium now shows"))
                ok = ok && now.current == new_cur && wdone == wtotal && k == total - 1;
            else
                ok = ok && now.current == base.current && strstr(d.msg, "still current");
        }
        held_close(&h);
        /* power back: reopen from the medium */
        r->dev.budget = -1;
        r->dev.dead = 0;
        held h2 = {0};
        ok = ok && held_open(&h2, &r->io, &d) == ODL_OK;
        if (ok) {
            shown now = show(h2.s);
            uint32_t cur = now.current;
            /* the last committed state: the old one, or the new one if every
             * byte of it was written */
            ok = ok && (cur == base.current || (cur == new_cur && wdone == wtotal));
            if (st == ODL_OK)
                ok = ok && cur == new_cur;
            /* nothing kept is lost: every version kept before is still kept,
             * except the oldest one when a commit completed */
            for (int32_t i = 0; i < base.n; i++) {
                int may_drop = op == 0 && cur == new_cur && i == base.n - 1;
                ok = ok && (has(&now, base.ids[i], base.seqs[i]) || may_drop);
            }
            ok = ok && verify_listed(t, h2.s);
            /* the store goes on: the next commit works and is current */
            if (ok) {
                odl_store_meta m;
                mk_meta(&m, 1);
                uint8_t pl[40];
                memset(pl, 0x5A, sizeof pl);
                uint32_t nid = 0;
                ok = ok && odl_store_commit(h2.s, pl, sizeof pl, &m, &nid, &d) == ODL_OK &&
                     odl_store_current(h2.s) == nid && nid >= 6;
                held h3 = {0};
                ok = ok && held_open(&h3, &r->io, &d) == ODL_OK && odl_store_current(h3.s) == nid &&
                     (op == 1 || odl_store_skipped(h3.s) == 0);
                held_close(&h3);
            }
        }
        held_close(&h2);
        if (!ok) {
            odl_test_logf(t, "    %s cut at unit %ld of %ld (nor %d, rolled %d): status %d, %s",
                          op ? "rollback" : "commit", (long)k, (long)total, nor, rolled, (int)st, d.msg);
            CHECK(0);
            fails++;
        }
        tested++;
    }
out:
    free(snap);
    free(r);
    return tested;
}

static void test_power_cut_flash(odl_test_ctx *t)
{
    int64_t n = 0;
    for (int nor = 1; nor >= 0; nor--)
        for (int rolled = 0; rolled < 3; rolled++) {
            n += cut_sweep_flash(t, nor, 0, rolled);
            n += cut_sweep_flash(t, nor, 1, rolled);
        }
    odl_test_logf(t, "    %ld power-cut points (flash with erase and RAM without)", (long)n);
    CHECK(n > 3500);
}

/* An I/O error at every call of a commit and of a rollback: a clean error,
 * the same handle keeps working, and a reopen agrees. */
static void test_io_errors(odl_test_ctx *t)
{
    for (int op = 0; op < 2; op++) {
        for (int call = 1; call <= 8; call++) {
            flash_rig *r = calloc(1, sizeof *r);
            odl_diag d;
            odl_diag_clear(&d);
            CHECK_OK(rig_init(r, 1, &d));
            held h = {0};
            CHECK_OK(held_open(&h, &r->io, &d));
            CHECK_OK(build_history(h.s, 4, 0, &d));
            shown base = show(h.s);
            r->dev.calls = 0;
            r->dev.fail_call = call;
            odl_status st = op == 0 ? commit_gen(h.s, 5, 5, &d) : odl_store_rollback(h.s, 2, 5, NULL, &d);
            int calls = r->dev.calls;
            r->dev.fail_call = 0;
            if (st == ODL_OK) { /* past the last call */
                CHECK(call > calls);
            } else if (call == calls && strstr(d.msg, "medium now shows")) {
                /* the final sync failed after every byte was written: the
                 * handle says what the medium shows, and a reopen agrees */
                CHECK(st == ODL_ERR_IO && strstr(d.msg, "power cut may still bring back v4"));
                CHECK(odl_store_current(h.s) == (op == 0 ? 5u : 2u));
                held h2 = {0};
                CHECK_OK(held_open(&h2, &r->io, &d));
                CHECK(odl_store_current(h2.s) == odl_store_current(h.s));
                held_close(&h2);
            } else {
                CHECK(st == ODL_ERR_IO && strstr(d.msg, "still current"));
                shown now = show(h.s);
                CHECK(now.current == base.current);
                CHECK(verify_listed(t, h.s));
                /* retry on the same handle */
                if (op == 0) {
                    odl_store_meta m;
                    mk_meta(&m, 5);
                    uint8_t pl[100] = {0};
                    uint32_t id = 0;
                    CHECK_OK(odl_store_commit(h.s, pl, sizeof pl, &m, &id, &d));
                    CHECK(odl_store_current(h.s) == id && id == 6); /* id 5 was burned */
                } else {
                    CHECK_OK(odl_store_rollback(h.s, 2, 5, NULL, &d));
                    CHECK(odl_store_current(h.s) == 2);
                }
                shown after = show(h.s);
                held h2 = {0};
                CHECK_OK(held_open(&h2, &r->io, &d));
                shown re = show(h2.s);
                CHECK(re.current == after.current && re.n == after.n);
                if (op == 1) /* op 0 retried with other bytes than mk_meta's */
                    CHECK(verify_listed(t, h2.s));
                held_close(&h2);
            }
            held_close(&h);
            free(r);
        }
    }
}

/* Flip every byte (^0xFF, ^0x01) and truncate at every length. */
static void test_corruption_flash(odl_test_ctx *t)
{
    flash_rig *r = calloc(1, sizeof *r);
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(rig_init(r, 1, &d));
    held h = {0};
    CHECK_OK(held_open(&h, &r->io, &d));
    CHECK_OK(build_history(h.s, 6, 1, &d));
    const shown base = show(h.s);
    held_close(&h);
    /* the byte ranges of live records: a flip there must be reported */
    uint8_t live[FLASH_CAP];
    memset(live, 0, sizeof live);
    for (int32_t i = 0; i < base.n; i++) {
        /* find the slot by its header */
        for (uint32_t sl = 0; sl < FLASH_SLOTS; sl++) {
            const uint8_t *p = r->mem + 2 * FLASH_ERASE + sl * FLASH_SLOT;
            uint32_t id = (uint32_t)p[16] | ((uint32_t)p[17] << 8);
            if (id == base.ids[i]) {
                uint32_t n = 256 + ((plen_of(id) + 15u) & ~15u) + 16;
                memset(live + 2 * FLASH_ERASE + sl * FLASH_SLOT, 1, n);
            }
        }
    }
    memset(live + 0, 1, 32); /* the rollback's head (region 0: the first head written) */
    uint8_t *snap = malloc(FLASH_CAP);
    memcpy(snap, r->mem, FLASH_CAP);
    int64_t variants = 0, reported = 0, bad = 0;
    for (uint32_t pos = 0; pos < FLASH_CAP; pos++)
        for (int f = 0; f < 2; f++) {
            memcpy(r->mem, snap, FLASH_CAP);
            r->mem[pos] ^= f ? 0x01 : 0xFF;
            odl_diag_clear(&d);
            held h2 = {0};
            odl_status st = held_open(&h2, &r->io, &d);
            int ok = st == ODL_OK && verify_listed(t, h2.s);
            if (ok && live[pos])
                ok = odl_store_skipped(h2.s) >= 1 && odl_store_problem(h2.s)[0];
            if (ok && odl_store_skipped(h2.s))
                reported++;
            /* never a version that was not committed */
            if (ok) {
                shown now = show(h2.s);
                for (int32_t i = 0; i < now.n; i++)
                    ok = ok && now.ids[i] >= 1 && now.ids[i] <= 6;
            }
            held_close(&h2);
            if (!ok && bad++ < 3)
                odl_test_logf(t, "    flip at %u (^%s): status %d %s", (unsigned)pos, f ? "01" : "FF",
                              (int)st, d.msg);
            variants++;
        }
    for (uint32_t L = 0; L <= FLASH_CAP; L++) {
        memcpy(r->mem, snap, FLASH_CAP);
        r->dev.trunc = L;
        held h2 = {0};
        odl_status st = held_open(&h2, &r->io, &d);
        int ok = st == ODL_OK && verify_listed(t, h2.s);
        if (ok && L == FLASH_CAP) {
            shown now = show(h2.s);
            ok = memcmp(&now, &base, sizeof now) == 0 && odl_store_skipped(h2.s) == 0;
        }
        held_close(&h2);
        if (!ok && bad++ < 3)
            odl_test_logf(t, "    truncated at %u: status %d %s", (unsigned)L, (int)st, d.msg);
        variants++;
    }
    r->dev.trunc = FLASH_CAP;
    CHECK(bad == 0);
    odl_test_logf(t, "    %ld damaged media opened, %ld with skipped records reported", (long)variants,
                  (long)reported);
    free(snap);
    free(r);
}

/* ---- POSIX port ------------------------------------------------------------ */

static char g_dir_buf[256]; /* test-only */

static const char *tmp_dir(void)
{
    snprintf(g_dir_buf, sizeof g_dir_buf, "%s/odl_store_test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(g_dir_buf);
}

typedef struct dfile {
    char name[256];
    uint8_t *data;
    size_t len;
} dfile;

typedef struct dsnap {
    dfile f[80];
    int n;
} dsnap;

static void dir_clear(const char *dir)
{
    DIR *dd = opendir(dir);
    if (!dd)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(dd)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue; /* a name too long for the buffer is not one of ours */
        unlink(path);
    }
    closedir(dd);
}

static void snap_take(dsnap *s, const char *dir)
{
    memset(s, 0, sizeof *s);
    DIR *dd = opendir(dir);
    struct dirent *e;
    char path[512];
    while (dd && (e = readdir(dd)) != NULL && s->n < 80) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp"))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue; /* a name too long for the buffer is not one of ours */
        dfile *f = &s->f[s->n++];
        snprintf(f->name, sizeof f->name, "%s", e->d_name);
        void *buf;
        odl_host_read_file(path, &buf, &f->len, NULL);
        f->data = malloc(f->len + 1);
        memcpy(f->data, buf, f->len);
        odl_host_free(buf);
    }
    if (dd)
        closedir(dd);
}

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        if (n)
            fwrite(p, 1, n, f);
        fclose(f);
    }
}

static void snap_restore(const dsnap *s, const char *dir)
{
    dir_clear(dir);
    for (int i = 0; i < s->n; i++)
        write_file(dir, s->f[i].name, s->f[i].data, s->f[i].len);
}

static void snap_free(dsnap *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->f[i].data);
    memset(s, 0, sizeof *s);
}

/* A region-level wrapper: power cut after `budget` units (1 per begin, 1 per
 * byte written, 1 per commit); the cut write performs its first bytes. */
typedef struct fio {
    odl_store_io in;
    int64_t budget, used;
    int dead;
    int64_t written;
} fio;

static uint32_t fio_spend(fio *f, uint32_t n)
{
    if (f->budget < 0)
        return n;
    int64_t left = f->budget - f->used;
    uint32_t k = left >= (int64_t)n ? n : (uint32_t)(left > 0 ? left : 0);
    f->used += k;
    if (k < n)
        f->dead = 1;
    return k;
}
static odl_status fio_read(void *c, uint32_t r, uint32_t off, void *b, uint32_t n)
{
    fio *f = c;
    return f->in.read(f->in.ctx, r, off, b, n);
}
static odl_status fio_begin(void *c, uint32_t r)
{
    fio *f = c;
    if (f->dead || fio_spend(f, 1) != 1)
        return ODL_ERR_IO;
    return f->in.begin(f->in.ctx, r);
}
static odl_status fio_write(void *c, uint32_t r, uint32_t off, const void *b, uint32_t n)
{
    fio *f = c;
    if (f->dead)
        return ODL_ERR_IO;
    uint32_t k = fio_spend(f, n);
    f->written += k;
    odl_status st = k ? f->in.write(f->in.ctx, r, off, b, k) : ODL_OK;
    return k == n ? st : ODL_ERR_IO;
}
static odl_status fio_commit(void *c, uint32_t r)
{
    fio *f = c;
    if (f->dead || fio_spend(f, 1) != 1)
        return ODL_ERR_IO; /* the power went before the rename */
    return f->in.commit(f->in.ctx, r);
}
static odl_store_io fio_wrap(fio *f, const odl_store_io *in)
{
    memset(f, 0, sizeof *f);
    f->in = *in;
    f->budget = -1;
    odl_store_io io = *in;
    io.ctx = f;
    io.read = fio_read;
    io.begin = fio_begin;
    io.write = fio_write;
    io.commit = fio_commit;
    return io;
}

static void test_posix_basic(odl_test_ctx *t)
{
    const char *dir = tmp_dir();
    REQUIRE(dir);
    char sdir[300], model[300];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    snprintf(model, sizeof model, "%s/m.odl", dir);
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;

    /* no store yet */
    CHECK(odl_store_host_open(&h, sdir, 0, &d) == ODL_ERR_NOT_FOUND && strstr(d.msg, "no such store"));
    void *buf;
    size_t len;
    CHECK(odl_store_posix_read_current(sdir, &buf, &len, NULL, &d) == ODL_ERR_NOT_FOUND);

    /* commit real model files through the helper */
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    odl_desc_init(&desc, desc.layers, desc.cap_layers, 1, 1, 4);
    odl_desc_dense(&desc, 3);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan plan;
    CHECK_OK(odl_model_plan(&desc, &cfg, &plan, &d));
    void *mem = malloc(plan.total);
    odl_arena a;
    odl_model *m;
    CHECK_OK(odl_arena_init(&a, mem, plan.total));
    CHECK_OK(odl_model_init(&m, &desc, &cfg, &a, &d));
    odl_rng rng;
    odl_rng_seed(&rng, 1, 2);
    for (uint32_t i = 1; i <= 4; i++) {
        odl_model_init_params(m, &rng);
        CHECK_OK(odl_host_save_model(m, NULL, 0, model, &d));
        odl_store_meta meta;
        odl_store_meta_init(&meta, "head-only", "a test model", 0);
        odl_store_meta_add_metric(&meta, "acc", 0.7f + 0.01f * (float)i, NULL);
        uint32_t id = 0;
        CHECK_OK(odl_store_posix_commit_file(sdir, 2, model, &meta, &id, &d));
        CHECK(id == i);
    }
    /* keep 2: v4, v3 */
    CHECK_OK(odl_store_host_open(&h, sdir, 0, &d));
    CHECK(odl_store_count(h.store) == 2 && odl_store_current(h.store) == 4);
    CHECK(odl_store_keep(h.store) == 2);
    odl_store_version v;
    CHECK_OK(odl_store_get(h.store, 0, &v));
    CHECK(v.meta.time > 1600000000ull && strcmp(v.meta.strategy, "head-only") == 0);
    CHECK_OK(odl_store_rollback(h.store, 1, 0, NULL, &d));
    odl_store_host_close(&h);

    /* the current one is v3, a complete model file */
    odl_store_meta got;
    CHECK_OK(odl_store_posix_read_current(sdir, &buf, &len, &got, &d));
    CHECK(got.id == 3 && ((uintptr_t)buf & 15u) == 0);
    CHECK_OK(odl_file_read_desc(buf, len, &desc, &d));
    CHECK(desc.n_layers == 1);
    odl_host_free(buf);

    /* an existing store keeps its layout whatever keep says */
    CHECK_OK(odl_store_host_open(&h, sdir, 7, &d));
    CHECK(odl_store_keep(h.store) == 2);
    odl_store_host_close(&h);

    /* a damaged STORE file: a clean error */
    char path[400];
    snprintf(path, sizeof path, "%s/STORE", sdir);
    write_file(sdir, "STORE", (const uint8_t *)"odl-store 1 slots=999 slot_bytes=5\n", 35);
    CHECK(odl_store_host_open(&h, sdir, 0, &d) == ODL_ERR_FORMAT && strstr(d.msg, "STORE"));
    /* not a directory */
    CHECK(odl_store_host_open(&h, model, 0, &d) == ODL_ERR_ARG && strstr(d.msg, "not a directory"));
    /* a missing file to commit */
    odl_store_meta meta;
    odl_store_meta_init(&meta, "x", "y", 0);
    CHECK(odl_store_posix_commit_file(sdir, 2, "/nonexistent/m.odl", &meta, NULL, &d) == ODL_ERR_NOT_FOUND);

    free(mem);
    dir_clear(sdir);
    rmdir(sdir);
    dir_clear(dir);
    rmdir(dir);
}

/* POSIX: a power cut at every unit of a commit and of a rollback, and a flip
 * of every byte / a cut at every length of every file. */
static void test_posix_power_cut_and_corruption(odl_test_ctx *t)
{
    const char *dir = tmp_dir();
    REQUIRE(dir);
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;
    CHECK_OK(odl_store_host_open(&h, sdir, 3, &d));
    CHECK_OK(build_history(h.store, 5, 1, &d));
    const shown base = show(h.store);
    odl_store_host_close(&h);
    dsnap *snap = calloc(1, sizeof *snap);
    snap_take(snap, sdir);
    CHECK(snap->n == 1 + 1 + 1 + 4); /* STORE, LOCK, one head, 4 slots */

    int64_t points = 0;
    for (int op = 0; op < 2; op++) {
        int64_t total = -1;
        int fails = 0;
        for (int64_t k = 0; fails < 3; k++) {
            snap_restore(snap, sdir);
            odl_store_posix p;
            odl_store_io pio;
            CHECK_OK(odl_store_posix_io(&p, &pio, sdir, 0, &d));
            fio f;
            odl_store_io io = fio_wrap(&f, &pio);
            held hh = {0};
            CHECK_OK(held_open(&hh, &io, &d));
            f.budget = k;
            odl_status st = op == 0 ? commit_gen(hh.s, 6, 7, &d) : odl_store_rollback(hh.s, 1, 5, NULL, &d);
            held_close(&hh);
            odl_store_posix_close(&p);
            CHECK_OK(odl_store_posix_io(&p, &pio, sdir, 0, &d));
            held h2 = {0};
            int ok = held_open(&h2, &pio, &d) == ODL_OK && verify_listed(t, h2.s);
            if (ok) {
                shown now = show(h2.s);
                uint32_t want = st == ODL_OK ? (op == 0 ? 6u : 3u) : base.current;
                /* the rename is the commit point: old until it happens */
                ok = now.current == want;
                for (int32_t i = 0; i < base.n; i++)
                    ok = ok && (has(&now, base.ids[i], base.seqs[i]) ||
                                (op == 0 && st == ODL_OK && i == base.n - 1));
                ok = ok && (st == ODL_OK || strstr(d.msg, "still current"));
            }
            held_close(&h2);
            odl_store_posix_close(&p);
            if (!ok) {
                odl_test_logf(t, "    posix %s cut at %ld: status %d %s", op ? "rollback" : "commit",
                              (long)k, (int)st, d.msg);
                CHECK(0);
                fails++;
            }
            points++;
            if (st == ODL_OK) {
                total = k;
                break;
            }
        }
        CHECK(total > 0);
    }
    odl_test_logf(t, "    %ld power-cut points on the POSIX port", (long)points);

    /* corruption of every file */
    int64_t variants = 0, bad = 0;
    for (int fi = 0; fi < snap->n; fi++) {
        const dfile *f = &snap->f[fi];
        if (strcmp(f->name, "STORE") == 0 || strcmp(f->name, "LOCK") == 0)
            continue;
        uint8_t *tmp = malloc(f->len + 1);
        for (size_t pos = 0; pos < f->len * 3; pos++) {
            /* pos < len: ^0xFF at pos; < 2 len: ^0x01; else truncate to 0..len-1 */
            size_t n = f->len;
            memcpy(tmp, f->data, f->len);
            if (pos < f->len)
                tmp[pos] ^= 0xFF;
            else if (pos < 2 * f->len)
                tmp[pos - f->len] ^= 0x01;
            else
                n = pos - 2 * f->len;
            snap_restore(snap, sdir);
            write_file(sdir, f->name, tmp, n);
            odl_store_posix p;
            odl_store_io pio;
            held h2 = {0};
            int ok = odl_store_posix_io(&p, &pio, sdir, 0, &d) == ODL_OK &&
                     held_open(&h2, &pio, &d) == ODL_OK && verify_listed(t, h2.s);
            if (ok) {
                /* every byte of these files belongs to a record: any damage
                 * is reported, and only committed versions are listed */
                shown now = show(h2.s);
                ok = odl_store_skipped(h2.s) >= 1 && odl_store_problem(h2.s)[0];
                for (int32_t i = 0; i < now.n; i++)
                    ok = ok && now.ids[i] >= 1 && now.ids[i] <= 5;
            }
            held_close(&h2);
            odl_store_posix_close(&p);
            if (!ok && bad++ < 3)
                odl_test_logf(t, "    %s damaged at %zu: %s", f->name, pos, d.msg);
            variants++;
        }
        free(tmp);
    }
    CHECK(bad == 0);
    odl_test_logf(t, "    %ld damaged POSIX stores opened", (long)variants);

    snap_free(snap);
    free(snap);
    dir_clear(sdir);
    rmdir(sdir);
    dir_clear(dir);
    rmdir(dir);
}


/* ---- POSIX: several writers, symlinks, a failed directory fsync, lies ------ */

/* Payload of child c's k-th commit: its first 8 bytes say who wrote it. */
static void writer_payload(uint8_t *p, uint32_t len, uint32_t c, uint32_t k)
{
    gen_payload(p, len, 1000u + c, k);
    memcpy(p, &c, 4);
    memcpy(p + 4, &k, 4);
}

/* Several processes commit to one store at once: every commit that reports
 * success is a distinct version that reads back with the bytes its writer
 * committed, and none is lost. Then a held lock: "in use by pid N". */
static void test_posix_concurrent_writers(odl_test_ctx *t)
{
    enum { CHILDREN = 4, EACH = 12 };
    const char *dir = tmp_dir();
    REQUIRE(dir);
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;
    CHECK_OK(odl_store_host_open(&h, sdir, 63, &d)); /* keeps all 48 */
    odl_store_host_close(&h);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    for (uint32_t c = 0; c < CHILDREN; c++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            for (uint32_t k = 0; k < EACH; k++) {
                uint8_t pl[200];
                writer_payload(pl, sizeof pl, c, k);
                odl_store_host hc;
                uint32_t rec[3] = {c, k, 0};
                odl_diag dc;
                if (odl_store_host_open(&hc, sdir, 0, &dc) == ODL_OK) {
                    odl_store_meta m;
                    mk_meta(&m, 1);
                    if (odl_store_commit(hc.store, pl, sizeof pl, &m, &rec[2], &dc) != ODL_OK)
                        rec[2] = 0;
                    odl_store_host_close(&hc);
                }
                if (write(fds[1], rec, sizeof rec) != (ssize_t)sizeof rec)
                    _exit(2);
            }
            _exit(0);
        }
    }
    close(fds[1]);
    uint32_t rec[3], owner_c[64], owner_k[64], ok_n = 0, dup = 0;
    memset(owner_c, 0xFF, sizeof owner_c);
    while (read(fds[0], rec, sizeof rec) == (ssize_t)sizeof rec) {
        if (!rec[2])
            continue;
        ok_n++;
        if (rec[2] >= 64 || owner_c[rec[2]] != 0xFFFFFFFFu) {
            dup++;
            continue;
        }
        owner_c[rec[2]] = rec[0];
        owner_k[rec[2]] = rec[1];
    }
    close(fds[0]);
    for (int c = 0; c < CHILDREN; c++) {
        int status = 0;
        wait(&status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(dup == 0);
    CHECK(ok_n == CHILDREN * EACH); /* the lock waits: nobody gives up */
    CHECK_OK(odl_store_host_open(&h, sdir, 0, &d));
    CHECK(odl_store_skipped(h.store) == 0);
    CHECK(odl_store_count(h.store) == (int32_t)ok_n);
    int readable = 0;
    for (uint32_t id = 1; id < 64; id++) {
        if (owner_c[id] == 0xFFFFFFFFu)
            continue;
        uint8_t got[200], want[200];
        size_t len = 0;
        writer_payload(want, sizeof want, owner_c[id], owner_k[id]);
        readable += odl_store_read(h.store, id, got, sizeof got, &len, NULL, &d) == ODL_OK &&
                    len == sizeof want && memcmp(got, want, len) == 0;
    }
    CHECK(readable == (int)ok_n);
    odl_test_logf(t, "    %d processes x %d commits: %u reported, %d distinct and readable",
                  CHILDREN, EACH, (unsigned)ok_n, readable);

    /* while this handle holds the store, another open fails after the wait
     * and names the holder */
    setenv("ODL_STORE_WAIT", "0", 1);
    odl_store_host h2;
    odl_status st = odl_store_host_open(&h2, sdir, 0, &d);
    char want[64];
    snprintf(want, sizeof want, "is in use by pid %ld", (long)getpid());
    CHECK(st == ODL_ERR_STATE && strstr(d.msg, want));
    odl_store_host_close(&h);
    CHECK_OK(odl_store_host_open(&h2, sdir, 0, &d)); /* released on close */
    odl_store_host_close(&h2);
    unsetenv("ODL_STORE_WAIT");
    dir_clear(sdir);
    rmdir(sdir);
    dir_clear(dir);
    rmdir(dir);
}

/* A symlink planted as a temporary file (or as a region file) is never
 * written through. */
static void test_posix_symlinks(odl_test_ctx *t)
{
    const char *dir = tmp_dir();
    REQUIRE(dir);
    char sdir[300], victim[300], link[400];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    write_file(dir, "victim", (const uint8_t *)"precious\n", 9);
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;
    CHECK_OK(odl_store_host_open(&h, sdir, 3, &d));
    CHECK_OK(build_history(h.store, 2, 0, &d));
    odl_store_host_close(&h);
    /* the next rollback writes head-a or head-b; the next commit slot-02 */
    const char *names[] = {"head-a.odls.tmp", "head-b.odls.tmp", "slot-02.odls.tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(link, sizeof link, "%s/%s", sdir, names[i]);
        CHECK(symlink(victim, link) == 0);
    }
    CHECK_OK(odl_store_host_open(&h, sdir, 0, &d));
    CHECK_OK(odl_store_rollback(h.store, 1, 9, NULL, &d));
    CHECK_OK(commit_gen(h.store, 3, 4, &d));
    odl_store_host_close(&h);
    void *buf;
    size_t len;
    CHECK_OK(odl_host_read_file(victim, &buf, &len, &d));
    CHECK(len == 9 && memcmp(buf, "precious\n", 9) == 0);
    odl_host_free(buf);
    struct stat sb;
    for (int i = 0; i < 3; i++) { /* stale temporaries are gone */
        snprintf(link, sizeof link, "%s/%s", sdir, names[i]);
        CHECK(lstat(link, &sb) != 0);
    }
    /* planted while a handle is open (after the stale sweep): still not followed */
    CHECK_OK(odl_store_host_open(&h, sdir, 0, &d));
    snprintf(link, sizeof link, "%s/slot-00.odls.tmp", sdir);
    CHECK(symlink(victim, link) == 0);
    CHECK_OK(commit_gen(h.store, 4, 5, &d));
    odl_store_host_close(&h);
    CHECK_OK(odl_host_read_file(victim, &buf, &len, &d));
    CHECK(len == 9 && memcmp(buf, "precious\n", 9) == 0);
    odl_host_free(buf);
    /* a region file that is a symlink is not read through either */
    char slot[400];
    snprintf(slot, sizeof slot, "%s/slot-01.odls", sdir);
    CHECK(unlink(slot) == 0 && symlink(victim, slot) == 0);
    CHECK_OK(odl_store_host_open(&h, sdir, 0, &d));
    CHECK(odl_store_skipped(h.store) == 1);
    odl_store_host_close(&h);
    odl_test_logf(t, "    planted links left alone; the victim is intact");
    dir_clear(sdir);
    rmdir(sdir);
    dir_clear(dir);
    rmdir(dir);
}

/* fsync(2) that fails with EIO on directories (the rename has happened). */
static int fsync_dir_eio(int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

/* The directory fsync fails after the rename: the error says what the
 * medium now shows (the new state) and that a power cut may undo it, and a
 * reopen agrees with the handle. */
static void test_posix_dir_fsync_fails(odl_test_ctx *t)
{
    const char *dir = tmp_dir();
    REQUIRE(dir);
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;
    CHECK_OK(odl_store_host_open(&h, sdir, 3, &d));
    CHECK_OK(build_history(h.store, 2, 0, &d)); /* v1, v2 current */
    h.posix.sys_fsync = fsync_dir_eio;
    odl_status st = odl_store_rollback(h.store, 1, 9, NULL, &d);
    odl_test_logf(t, "    rollback: %s [%s]", d.msg, h.posix.last_error.msg);
    CHECK(st == ODL_ERR_IO);
    CHECK(strstr(d.msg, "now shows v1 as current") && strstr(d.msg, "bring back v2"));
    CHECK(!strstr(d.msg, "still current"));
    CHECK(odl_store_current(h.store) == 1);
    st = commit_gen(h.store, 3, 4, &d);
    odl_test_logf(t, "    commit: %s", d.msg);
    CHECK(st == ODL_ERR_IO && strstr(d.msg, "now shows v3 as current") &&
          strstr(d.msg, "bring back v1"));
    CHECK(odl_store_current(h.store) == 3);
    odl_store_host_close(&h);
    CHECK_OK(odl_store_host_open(&h, sdir, 0, &d));
    CHECK(odl_store_current(h.store) == 3 && odl_store_skipped(h.store) == 0);
    odl_store_host_close(&h);
    dir_clear(sdir);
    rmdir(sdir);
    dir_clear(dir);
    rmdir(dir);
}

/* Counts the bytes the store asks the medium for. */
typedef struct counting_io {
    odl_store_io in;
    uint64_t bytes;
} counting_io;
static odl_status cnt_read(void *c, uint32_t r, uint32_t off, void *b, uint32_t n)
{
    counting_io *k = c;
    k->bytes += n;
    return k->in.read(k->in.ctx, r, off, b, n);
}

/* A slot whose header claims a 200 MB payload, in a 4 KB file and in a
 * sparse 200 MB file: refused from the trailer, without reading the payload. */
static void test_posix_length_lies(odl_test_ctx *t)
{
    const char *dir = tmp_dir();
    REQUIRE(dir);
    char sdir[300], slot[400];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    snprintf(slot, sizeof slot, "%s/slot-00.odls", sdir);
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_host h;
    CHECK_OK(odl_store_host_open(&h, sdir, 3, &d));
    CHECK_OK(build_history(h.store, 1, 0, &d)); /* v1 in slot 0 */
    odl_store_host_close(&h);
    void *buf;
    size_t len;
    CHECK_OK(odl_host_read_file(slot, &buf, &len, &d));
    uint8_t hdr[256];
    memcpy(hdr, buf, 256);
    odl_host_free(buf);
    const uint32_t big = 200u << 20;
    memcpy(hdr + 32, &big, 4); /* payload length (little-endian host) */
    uint32_t crc = odl_crc32(0, hdr, 252);
    memcpy(hdr + 252, &crc, 4);
    for (int sparse = 0; sparse < 2; sparse++) {
        uint8_t file[4096] = {0};
        memcpy(file, hdr, 256);
        int fd = open(slot, O_WRONLY | O_TRUNC);
        REQUIRE(fd >= 0);
        CHECK(write(fd, file, sizeof file) == (ssize_t)sizeof file);
        if (sparse)
            CHECK(ftruncate(fd, (off_t)big + 4096) == 0);
        close(fd);
        odl_store_posix p;
        odl_store_io pio;
        CHECK_OK(odl_store_posix_io(&p, &pio, sdir, 0, &d));
        counting_io k = {pio, 0};
        odl_store_io io = pio;
        io.ctx = &k;
        io.read = cnt_read;
        held hh = {0};
        CHECK_OK(held_open(&hh, &io, &d));
        CHECK(odl_store_count(hh.s) == 0 && odl_store_skipped(hh.s) == 1);
        CHECK(strstr(odl_store_problem(hh.s), "trailer"));
        odl_test_logf(t, "    %s: %s; %llu bytes read", sparse ? "sparse 200 MB file" : "4 KB file",
                      odl_store_problem(hh.s), (unsigned long long)k.bytes);
        CHECK(k.bytes < 4096);
        held_close(&hh);
        odl_store_posix_close(&p);
    }
    dir_clear(sdir);
    rmdir(sdir);
    dir_clear(dir);
    rmdir(dir);
}

static const odl_test_case cases[] = {
    {"plan_equals_arena", test_plan_equals_arena},
    {"basic", test_basic},
    {"power_cut_flash", test_power_cut_flash},
    {"io_errors", test_io_errors},
    {"corruption_flash", test_corruption_flash},
    {"posix_basic", test_posix_basic},
    {"posix_power_cut_and_corruption", test_posix_power_cut_and_corruption},
    {"posix_concurrent_writers", test_posix_concurrent_writers},
    {"posix_symlinks", test_posix_symlinks},
    {"posix_dir_fsync_fails", test_posix_dir_fsync_fails},
    {"posix_length_lies", test_posix_length_lies},
};

TEST_MAIN(cases)
