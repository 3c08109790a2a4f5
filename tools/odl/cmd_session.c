/* odl session: a logged stream of user events, run through the learner. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "evlog.h"
#include "learn.h"
#include "odl/learner.h"
#include "odl/posix_io.h"
#include "odl/state.h"

static void help(FILE *f)
{
    fputs("usage: odl session --model M.odl --data PATH --events LOG [options]\n"
          "       odl session --store DIR --data PATH --events LOG [options]\n"
          "\n"
          "Runs a logged stream of user events through the learner (data-quality gate,\n"
          "updates with the evaluation gate and automatic rollback) and prints every\n"
          "decision. Replaying the same log on the same model gives the same results,\n"
          "bit for bit. The event log (CSV, one event per line, '#' comments):\n"
          "  predict,SRC,I        predict sample I\n"
          "  label,SRC,I,LABEL    the user labels sample I (LABEL may be wrong on purpose)\n"
          "  right,SRC,I          the user marks the prediction for sample I right\n"
          "  wrong,SRC,I          ... or wrong\n"
          "  update               learn what was collected; the gate accepts or rolls back\n"
          "  calibrate            move per-class biases by the marks; gated the same way\n"
          "  rollback[,STEPS]     restore an earlier accepted head (default 1 step)\n"
          "  save,FILE            write the current model (base + adapted head) to FILE in\n"
          "                       --out-dir (a plain file name: letters, digits, . _ + -)\n"
          "SRC is 'user' (the data with --shift applied) or 'orig' (the data as it is).\n"
          "INDEX, LABEL and STEPS are whole numbers (digits only). The log must be a\n"
          "regular file with at least one event; it is checked whole before anything runs.\n"
          "\n"
          "  --data PATH          samples the events refer to  (test split by default)\n"
          "  --split S            train | test                  (default test)\n"
          "  --shift S            gain:A,B or translate:DX,DY for SRC=user\n"
          "  --old PATH           original training data the device ships with (replay,\n"
          "                       guard set, class statistics)  (default: --data's train split)\n"
          "  --old-samples N      how many of them              (default 2000)\n"
          "  --max-classes N      room for new classes          (default: the model's)\n"
          "  --strategy NAME      how updates learn: replay, ewc, ewc-online, lwf, ncm,\n"
          "                       slda, bias, unfreeze  (default replay; see docs/learner.md)\n"
          "  --shadow N           an update the gate accepts waits as a candidate for the\n"
          "                       next N labelled or marked samples, scored side by side\n"
          "                       with the current head; promoted if not worse, else\n"
          "                       dropped                              (default 0: off)\n"
          "  --store DIR          keep every accepted version in a power-cut-safe store\n"
          "                       (see odl versions / odl rollback). A new store gets\n"
          "                       --model as version 1; a store that has versions is\n"
          "                       continued from its current version (leave out --model,\n"
          "                       or give the same model). Versions are numbered as the\n"
          "                       store numbers them: the base is version 1.\n"
          "  --keep N             versions the store keeps            (default 8)\n"
          "  --out-dir DIR        where save,FILE writes            (default: the current one)\n"
          "  --seed S             (default 0)\n"
          "  --quiet              decisions only\n",
          f);
}

/* The model to save: the base's frozen layers + the learner's head with its
 * active classes (calibration biases folded into the last layer's bias). */
static int save_model(odl_learner *L, const cli_model *base, const char *path, uint32_t version, odl_diag *d)
{
    odl_learner_status st;
    odl_learner_get_status(L, &st);
    const int32_t b = odl_learner_boundary(L);
    const odl_model *head = odl_learner_head(L);
    odl_model_desc nd;
    odl_status cs = odl_host_desc_copy(&nd, &base->desc, base->desc.n_layers, d);
    if (cs != ODL_OK)
        return cli_fail("save", cs, d);
    odl_desc_set_classes(&nd, st.active_classes);
    odl_desc_freeze_below(&nd, b);
    owned_model om;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    const int made = owned_model_make(&om, &nd, &cfg);
    const int32_t last = nd.n_layers - 1, n_nodes = nd.n_layers;
    odl_host_desc_free(&nd);
    if (made)
        return 1;
    for (int32_t i = 0; i < n_nodes; i++)
        for (int which = 0; which < 2; which++) {
            size_t n, ns;
            float *dst = odl_model_param(om.m, i, which, &n);
            const float *src = i < b ? odl_model_param_const(base->m, i, which, &ns)
                                     : odl_model_param_const(head, i - b, which, &ns);
            if (!n)
                continue;
            memcpy(dst, src, sizeof(float) * n); /* the last layer: the first active rows */
            if (i == last && which == 1)
                for (size_t c = 0; c < n; c++)
                    dst[c] += odl_learner_bias(L)[c];
        }
    char ver[32];
    snprintf(ver, sizeof ver, "%u", (unsigned)version);
    odl_meta_kv meta[] = {{"created_by", "odl session " ODL_TOOL_VERSION}, {"version", ver},
                          {"last_decision", st.last_decision}};
    /* the strategy's state (EWC, class statistics, replay) after the model,
     * so that a session on the store goes on from it */
    odl_posix_file pf;
    odl_writer w;
    odl_status s = odl_posix_writer_open(&pf, &w, path, d);
    if (s == ODL_OK) {
        s = odl_state_save_model_with_state(om.m, meta, 3, odl_learner_replay(L), odl_learner_ewc(L),
                                            odl_learner_ncm(L), odl_learner_slda(L), &w, d);
        if (s == ODL_OK)
            s = odl_posix_writer_commit(&pf, d);
        else
            odl_posix_writer_abort(&pf);
    }
    owned_model_free(&om);
    return s == ODL_OK ? 0 : cli_fail(path, s, d);
}

/* The session's versions, numbered as the store numbers them (the base is
 * version 1): ids[top] is the current one; the stack mirrors the learner's
 * in-memory versions (cfg.versions + 1 entries, the oldest dropped when full). */
typedef struct session_versions {
    uint32_t ids[65];
    int32_t top, cap;
    uint32_t next_id; /* without a store */
} session_versions;

static void versions_push(session_versions *v, uint32_t id)
{
    if (v->top + 1 >= v->cap) {
        memmove(v->ids, v->ids + 1, sizeof(uint32_t) * (size_t)v->top);
        v->top--;
    }
    v->ids[++v->top] = id;
    if (id >= v->next_id)
        v->next_id = id + 1;
}

/* Opens the store (its lock is held until the close) and checks that its
 * current version is still the session's: another process may have
 * committed or rolled back in between. */
static int store_open_checked(const char *store, uint32_t expect, odl_store_host *h, odl_diag *d)
{
    odl_status s = odl_store_host_open(h, store, 0, d);
    if (s != ODL_OK)
        return cli_fail(store, s, d);
    const uint32_t cur = odl_store_current(h->store);
    if (cur != expect) {
        odl_store_host_close(h);
        return cli_error("store %s changed during the session: its current version is v%u, the "
                         "session's is v%u (another process committed or rolled back); not "
                         "writing to it", store, (unsigned)cur, (unsigned)expect);
    }
    return 0;
}

/* The id the store will give its next commit (a fresh handle: one more than
 * the newest version's). */
static uint32_t store_next_id(const odl_store *st)
{
    odl_store_version v;
    return odl_store_get(st, 0, &v) == ODL_OK ? v.meta.id + 1 : 1;
}

/* Commits the model file at `file` to the open store. */
static int store_commit(odl_store_host *h, const char *store, const char *file, const char *strategy,
                        const odl_learner_status *st, uint64_t logical_time, uint32_t *id, odl_diag *d)
{
    odl_store_meta meta;
    odl_store_meta_init(&meta, strategy, st ? st->last_decision : "the base model", logical_time);
    if (st) {
        /* the sets the gate measured (a count of 0: not measured, no figure) */
        if (st->last_old_n > 0)
            odl_store_meta_add_metric(&meta, "old", st->last_old_after, NULL);
        if (st->last_new_n > 0)
            odl_store_meta_add_metric(&meta, "new", st->last_new_after, NULL);
        if (st->last_user_n > 0)
            odl_store_meta_add_metric(&meta, "user", st->last_user_after, NULL);
        if (st->shadow_scored > 0 && strncmp(st->last_decision, "candidate", 9) == 0) {
            /* a promoted candidate: the side-by-side scores */
            odl_store_meta_add_metric(&meta, "shadow_candidate", st->shadow_cand_correct / (float)st->shadow_scored,
                                      NULL);
            odl_store_meta_add_metric(&meta, "shadow_current", st->shadow_cur_correct / (float)st->shadow_scored,
                                      NULL);
        }
    }
    if (meta.time == 0)
        meta.time = (uint64_t)time(NULL);
    void *buf;
    size_t len;
    odl_status s = odl_host_read_file(file, &buf, &len, d);
    if (s == ODL_OK) {
        s = odl_store_commit(h->store, buf, len, &meta, id, d);
        odl_host_free(buf);
        if (s != ODL_OK && h->posix.last_error.msg[0]) {
            size_t n = strlen(d->msg);
            if (snprintf(d->msg + n, sizeof d->msg - n, " [%s]", h->posix.last_error.msg) < 0)
                d->msg[n] = '\0';
        }
    }
    return s == ODL_OK ? 0 : cli_fail(s == ODL_OK ? "" : store, s, d);
}

/* A model from the store's current version (the session goes on from it). */
static int model_from_store(const char *store, const odl_model_cfg *cfg, cli_model *cm, uint32_t *id)
{
    memset(cm, 0, sizeof *cm);
    odl_diag d;
    odl_diag_clear(&d);
    odl_store_meta meta;
    void *file;
    size_t len;
    odl_status s = odl_store_posix_read_current(store, &file, &len, &meta, &d);
    if (s != ODL_OK)
        return cli_fail(store, s, &d);
    if (cli_model_from_bytes(store, file, len, cfg, cm))
        return 1;
    *id = meta.id;
    return 0;
}

static const char *event_name(evlog_kind k)
{
    static const char *const names[] = {"predict", "label",    "right",    "wrong",
                                        "update",  "calibrate", "rollback", "save"};
    return names[k];
}

static void save_path(const char *out_dir, const char *name, char *out, size_t cap)
{
    if (!strcmp(out_dir, "."))
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "%s/%s", out_dir, name);
}

/* The whole log, before anything runs: every line parses, there is at least
 * one event, and every save target can be written in out_dir and names none
 * of the inputs. Prints the error; returns 0 or 1. */
static int check_log(const char *log, size_t len, const char *events, const char *out_dir, const char *model,
                     const char *data, const char *old)
{
    evlog_reader rd;
    evlog_event e;
    char err[512];
    int k, n = 0, saves = 0;
    evlog_reader_init(&rd, log, len);
    while ((k = evlog_next(&rd, &e, err, sizeof err)) == 1) {
        n++;
        if (e.kind != EVLOG_SAVE)
            continue;
        if (!saves++) {
            struct stat sb;
            if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
                return cli_error("--out-dir %s: not a directory (save,FILE in %s writes there)", out_dir, events);
        }
        char path[4096];
        save_path(out_dir, e.name, path, sizeof path);
        const char *ins[] = {model, data, old, events};
        char ctx[600];
        snprintf(ctx, sizeof ctx, "%s:%d: save", events, (int)e.line);
        if (cli_check_output(ctx, path, ins, 4))
            return 1;
    }
    if (k < 0)
        return cli_error("%s:%s", events, err);
    if (n == 0)
        return cli_error("%s: no events (only blank lines and comments): nothing to run", events);
    return 0;
}

int cmd_session(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *events = NULL, *shift = NULL, *old = NULL, *store = NULL, *v = NULL;
    const char *out_dir = ".";
    char tmp_dir[1024] = "", tmp_model[1100] = ""; /* see below: before any goto done */
    int32_t keep = ODL_STORE_POSIX_DEFAULT_KEEP;
    odl_split split = ODL_SPLIT_TEST;
    int32_t old_n = 2000, max_classes = 0, seed = 0, shadow = 0;
    odl_strategy strategy = ODL_STRATEGY_REPLAY;
    int quiet = 0;
    cli_args a = {argc, argv, 1, "session"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--quiet")) {
            quiet = 1;
        } else if ((r = cli_opt(&a, "--model", &model)) || (r = cli_opt(&a, "--data", &data)) ||
                   (r = cli_opt(&a, "--events", &events)) || (r = cli_opt(&a, "--shift", &shift)) ||
                   (r = cli_opt(&a, "--old", &old)) || (r = cli_opt(&a, "--store", &store)) ||
                   (r = cli_opt(&a, "--out-dir", &out_dir))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--split", &v))) {
            if (r < 0 || cli_parse_split(v, &split)) return 2;
        } else if ((r = cli_opt(&a, "--old-samples", &v))) {
            if (r < 0 || cli_parse_int("--old-samples", v, 1, 1 << 24, &old_n)) return 2;
        } else if ((r = cli_opt(&a, "--max-classes", &v))) {
            if (r < 0 || cli_parse_int("--max-classes", v, 2, 4096, &max_classes)) return 2;
        } else if ((r = cli_opt(&a, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, 2147483647L, &seed)) return 2;
        } else if ((r = cli_opt(&a, "--strategy", &v))) {
            odl_diag sd;
            if (r < 0)
                return 2;
            if (odl_strategy_parse(v, &strategy, &sd) != ODL_OK) {
                cli_error("session: --strategy: %s", sd.msg);
                return 2;
            }
        } else if ((r = cli_opt(&a, "--shadow", &v))) {
            if (r < 0 || cli_parse_int("--shadow", v, 0, 1000000, &shadow)) return 2;
        } else if ((r = cli_opt(&a, "--keep", &v))) {
            if (r < 0 || cli_parse_int("--keep", v, 1, 63, &keep)) return 2;
        } else {
            cli_error("session: unknown option '%s' (see odl session --help)", argv[a.i]);
            return 2;
        }
    }
    if ((!model && !store) || !data || !events) {
        cli_error("session: --model (or --store), --data and --events are required (see odl session --help)");
        return 2;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_shift sh;
    if (odl_shift_parse(shift, &sh, &d) != ODL_OK)
        return cli_error("%s", d.msg) + 1;
    /* the whole log is read and checked before anything runs */
    char *log = NULL;
    size_t log_len = 0;
    char err[512];
    if (evlog_read_file(events, &log, &log_len, err, sizeof err))
        return cli_error("%s", err);
    if (check_log(log, log_len, events, out_dir, model, data, old)) {
        free(log);
        return 1;
    }
    odl_model_cfg icfg = odl_model_cfg_defaults();
    icfg.max_batch = 1;
    cli_model cm;
    odl_dataset orig, user, olds;
    memset(&orig, 0, sizeof orig);
    memset(&user, 0, sizeof user);
    memset(&olds, 0, sizeof olds);
    /* the store: a new one gets the model as version 1; one that has
     * versions is continued from its current version */
    session_versions vs;
    memset(&vs, 0, sizeof vs);
    uint32_t store_cur = 0;
    int rc = 0;
    if (store) {
        odl_store_host h;
        odl_status so = odl_store_host_open(&h, store, (uint32_t)keep, &d);
        if (so != ODL_OK)
            rc = cli_fail(store, so, &d);
        else {
            store_cur = odl_store_current(h.store);
            odl_store_host_close(&h);
        }
        if (!rc && !store_cur && !model)
            rc = cli_error("session: store %s is empty: --model is required to start it", store);
    }
    if (!rc && store_cur && !model)
        rc = model_from_store(store, &icfg, &cm, &store_cur);
    else if (!rc)
        rc = cli_model_load(model, &icfg, &cm);
    if (!rc && store_cur && model) {
        void *cur = NULL;
        size_t cur_len = 0;
        odl_status so = odl_store_posix_read_current(store, &cur, &cur_len, NULL, &d);
        if (so != ODL_OK)
            rc = cli_fail(store, so, &d);
        else if (cur_len != cm.file_len || memcmp(cur, cm.file, cur_len) != 0)
            rc = cli_error("session: store %s already holds versions and its current one (v%u) is "
                           "not %s: leave out --model to go on from v%u, or give a new --store "
                           "directory to start from %s", store, (unsigned)store_cur, model,
                           (unsigned)store_cur, model);
        odl_host_free(cur);
        if (rc)
            cli_model_free(&cm);
    }
    if (rc) {
        free(log);
        return 1;
    }
    if (!rc)
        rc = cli_load_data(data, split, ODL_SPLIT_TEST, NULL, NULL, 0, &orig);
    if (!rc && cli_fit_shape(&orig, &cm.desc, data))
        rc = 1;
    if (!rc && odl_dataset_copy(&orig, &user) != ODL_OK)
        rc = cli_error("out of memory");
    if (!rc) {
        odl_dataset_shift(&user, &sh);
        rc = cli_load_data(old ? old : data, ODL_SPLIT_TRAIN, ODL_SPLIT_TRAIN, NULL, NULL, 0, &olds);
        if (!rc && cli_fit_shape(&olds, &cm.desc, old ? old : data))
            rc = 1;
    }
    if (rc) {
        free(log);
        odl_dataset_free(&orig);
        odl_dataset_free(&user);
        odl_dataset_free(&olds);
        cli_model_free(&cm);
        return 1;
    }
    /* the device's old data: the base's classes only */
    const int32_t base_classes = odl_model_n_classes(cm.m);
    int32_t n_old = 0;
    const size_t in = (size_t)olds.c * olds.h * olds.w;
    for (int32_t k = 0; k < olds.n && n_old < old_n; k++)
        if (olds.y[k] < base_classes) {
            memmove(olds.x + (size_t)n_old * in, olds.x + (size_t)k * in, sizeof(float) * in);
            olds.y[n_old++] = olds.y[k];
        }
    odl_learner_cfg lc = odl_learner_cfg_for(strategy);
    lc.max_classes = max_classes;
    lc.shadow_n = shadow;
    odl_mem_plan plan;
    odl_status s = odl_learner_plan(&lc, cm.m, &plan, &d);
    void *buf = NULL;
    if (s == ODL_OK && !(buf = cli_alloc("learner plan", plan.total))) {
        rc = 1;
        goto done;
    }
    odl_learner *L = NULL;
    odl_rng rng;
    odl_rng_seed(&rng, (uint64_t)seed, 0x73657373);
    if (s == ODL_OK) {
        odl_arena ar;
        odl_arena_init(&ar, buf, plan.total);
        s = odl_learner_init(&L, &lc, cm.m, &ar, &d);
    }
    if (s == ODL_OK)
        s = odl_learner_seed_old(L, olds.x, olds.y, n_old, &rng, &d);
    /* going on from a version that holds the strategy's state */
    int state_loaded = 0;
    if (s == ODL_OK && store_cur && (odl_learner_ewc(L) || odl_learner_ncm(L) || odl_learner_slda(L))) {
        s = odl_learner_load_state(L, cm.file, cm.file_len, &d);
        if (s == ODL_ERR_NOT_FOUND) {
            s = ODL_OK; /* a version of another strategy: this one starts from the old data */
        } else if (s == ODL_OK) {
            state_loaded = 1;
        }
    }
    if (s != ODL_OK) {
        rc = cli_fail("session", s, &d);
        goto done;
    }
    if (!quiet)
        printf("learner: %zu bytes (params %zu, grads %zu, optimizer %zu, buffers %zu, scratch %zu, state %zu); "
               "%d old samples seeded\n",
               plan.total, plan.bytes[ODL_MEM_PARAMS], plan.bytes[ODL_MEM_GRADS], plan.bytes[ODL_MEM_OPTIM],
               plan.bytes[ODL_MEM_BUFFERS], plan.bytes[ODL_MEM_SCRATCH], plan.bytes[ODL_MEM_STATE], (int)n_old);
    if (!quiet)
        printf("strategy: %s%s", odl_strategy_name(strategy), state_loaded ? " (state from the store's version)" : "");
    if (!quiet && shadow)
        printf("; shadow evaluation over %d samples", (int)shadow);
    if (!quiet)
        printf("\n");
    /* every sample index against the data, before the first event runs */
    {
        evlog_reader rd;
        evlog_event e;
        int k;
        evlog_reader_init(&rd, log, log_len);
        while ((k = evlog_next(&rd, &e, err, sizeof err)) == 1)
            if (e.kind <= EVLOG_WRONG && e.index >= (e.src_user ? user.n : orig.n)) {
                rc = cli_error("%s:%d: INDEX %d is out of range (the data has %d samples: 0..%d)", events,
                               (int)e.line, (int)e.index, (int)orig.n, (int)orig.n - 1);
                goto done;
            }
    }
    /* a version for the store goes through a private temporary directory
     * (mkdtemp: unpredictable, created by us, mode 0700) */
    if (store) {
        const char *td = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/odl-session-XXXXXX", td && *td ? td : "/tmp");
        if (!mkdtemp(tmp_dir)) {
            rc = cli_error("%s: cannot create a temporary directory: %s", tmp_dir, strerror(errno));
            tmp_dir[0] = '\0';
            goto done;
        }
        snprintf(tmp_model, sizeof tmp_model, "%s/version.odl", tmp_dir);
        cli_cleanup_dir(tmp_dir, tmp_model);
    }
    vs.cap = lc.versions + 1;
    vs.top = -1;
    if (store && store_cur) {
        versions_push(&vs, store_cur);
        if (!quiet)
            printf("store %s: going on from version %u (its current)\n", store, (unsigned)store_cur);
    } else if (store) {
        odl_store_host h;
        uint32_t id = 0;
        rc = store_open_checked(store, 0, &h, &d);
        if (!rc) {
            rc = store_commit(&h, store, model, "base", NULL, 0, &id, &d);
            odl_store_host_close(&h);
        }
        if (rc)
            goto done;
        versions_push(&vs, id);
        if (!quiet)
            printf("store %s: the base is version %u\n", store, id);
    } else {
        versions_push(&vs, 1); /* numbered as a new store would number it */
    }
    uint32_t rejected_run[ODL_REASON_COUNT] = {0};
    int32_t first_user_predict = -1; /* prediction count when SRC=user began */
    evlog_reader rd;
    evlog_reader_init(&rd, log, log_len);
    evlog_event e;
    while (!rc && evlog_next(&rd, &e, err, sizeof err) == 1) {
        const int lineno = (int)e.line;
        const char *kind = event_name(e.kind);
        const odl_dataset *src = e.kind <= EVLOG_WRONG ? (e.src_user ? &user : &orig) : NULL;
        const int32_t idx = e.index;
        const float *x = src ? src->x + (size_t)idx * in : NULL;
        odl_reason why = ODL_REASON_NONE;
        odl_learner_status sh0;
        odl_learner_get_status(L, &sh0);
        if (e.kind == EVLOG_PREDICT) {
            int32_t c;
            float conf;
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            if (src == &user && first_user_predict < 0)
                first_user_predict = (int32_t)st.predictions;
            s = odl_learner_predict(L, x, &c, &conf, &d);
            if (s == ODL_EVENT_DRIFT) {
                odl_learner_get_status(L, &st);
                if (first_user_predict >= 0)
                    printf("%4d drift detected at prediction %u: %u predictions after the first drifted sample\n",
                           lineno, st.predictions, st.predictions - (uint32_t)first_user_predict);
                else
                    printf("%4d drift detected at prediction %u (no drifted sample yet: a false alarm)\n", lineno,
                           st.predictions);
                s = ODL_OK;
            } else if (s == ODL_OK && !quiet) {
                printf("%4d predict %s[%d]: class %d (%.2f), true %d\n", lineno, e.src_user ? "user" : "orig", (int)idx,
                       (int)c, (double)conf,
                       (int)src->y[idx]);
            }
        } else if (e.kind == EVLOG_LABEL) {
            const int32_t lab = e.label;
            s = odl_learner_feedback(L, x, lab, &why, &d);
            if (s == ODL_EVENT_REJECTED) {
                rejected_run[why]++;
                if (!quiet)
                    printf("%4d label %s[%d]=%d: %s\n", lineno, e.src_user ? "user" : "orig", (int)idx, (int)lab,
                           odl_reason_str(why));
                s = ODL_OK;
            }
        } else if (e.kind == EVLOG_RIGHT || e.kind == EVLOG_WRONG) {
            s = odl_learner_mark(L, x, e.kind == EVLOG_RIGHT, &why, &d);
            if (s == ODL_EVENT_REJECTED) {
                rejected_run[why]++;
                s = ODL_OK;
            }
        } else if (e.kind == EVLOG_UPDATE || e.kind == EVLOG_CALIBRATE) {
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            int upd = e.kind == EVLOG_UPDATE;
            s = upd ? odl_learner_update(L, &rng, &d) : odl_learner_calibrate(L, &d);
            if (s == ODL_ERR_STATE) { /* nothing to learn from: a decision, not a failure */
                printf("%4d %s skipped: %s\n", lineno, kind, d.msg);
                s = ODL_OK;
                continue;
            }
            if (s == ODL_OK || s == ODL_EVENT_ROLLED_BACK) {
                odl_learner_status st2;
                odl_learner_get_status(L, &st2);
                uint32_t new_id = 0;
                const int waits = s == ODL_OK && st2.shadow_active; /* a candidate, not yet a version */
                if (s == ODL_OK && store && !waits) { /* stored first: the store gives the number */
                    odl_store_host h;
                    rc = store_open_checked(store, vs.ids[vs.top], &h, &d);
                    if (!rc) {
                        rc = save_model(L, &cm, tmp_model, store_next_id(h.store), &d);
                        if (!rc)
                            rc = store_commit(&h, store, tmp_model, upd ? odl_strategy_name(strategy) : "calibrate",
                                              &st2, 0, &new_id, &d);
                        odl_store_host_close(&h);
                    }
                    remove(tmp_model);
                    if (rc)
                        break;
                }
                if (s == ODL_OK && !waits)
                    versions_push(&vs, store ? new_id : vs.next_id);
                printf("%4d %s on %d collected (%d held out); rejected so far:", lineno, kind, (int)st.collected,
                       (int)st.held_out);
                int any_rejected = 0;
                for (int r2 = 1; r2 < ODL_REASON_COUNT; r2++)
                    if (st2.rejected[r2]) {
                        printf(" %s %u;", odl_reason_str((odl_reason)r2), st2.rejected[r2]);
                        any_rejected = 1;
                    }
                if (!any_rejected)
                    printf(" none");
                printf("\n     -> %s; version %u\n", st2.last_decision, (unsigned)vs.ids[vs.top]);
                if (store && s == ODL_OK && !waits)
                    printf("     -> stored as version %u in %s\n", (unsigned)new_id, store);
                s = ODL_OK;
            }
        } else if (e.kind == EVLOG_ROLLBACK) {
            const int32_t steps = e.steps;
            s = odl_learner_rollback(L, steps, &d);
            if (s == ODL_OK) {
                const uint32_t was = vs.ids[vs.top];
                vs.top -= (int32_t)steps; /* the learner checked steps against the same stack */
                printf("%4d rollback %d: version %u is current\n", lineno, (int)steps, (unsigned)vs.ids[vs.top]);
                if (store) {
                    odl_store_host h;
                    rc = store_open_checked(store, was, &h, &d);
                    if (rc)
                        break;
                    s = odl_store_checkout(h.store, vs.ids[vs.top], (uint64_t)time(NULL), &d);
                    if (s != ODL_OK && h.posix.last_error.msg[0]) {
                        size_t n = strlen(d.msg);
                        if (snprintf(d.msg + n, sizeof d.msg - n, " [%s]", h.posix.last_error.msg) < 0)
                            d.msg[n] = '\0';
                    }
                    odl_store_host_close(&h);
                    if (s == ODL_OK)
                        printf("     -> store %s: version %u is current\n", store, (unsigned)vs.ids[vs.top]);
                }
            }
        } else if (e.kind == EVLOG_SAVE) {
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            char path[4096];
            save_path(out_dir, e.name, path, sizeof path);
            rc = save_model(L, &cm, path, vs.ids[vs.top], &d);
            if (!rc && !quiet)
                printf("%4d saved version %u to %s\n", lineno, (unsigned)vs.ids[vs.top], path);
        }
        /* shadow evaluation decided on this event's sample */
        odl_learner_status sh1;
        odl_learner_get_status(L, &sh1);
        if (!rc && s == ODL_OK && sh1.shadow_promoted + sh1.shadow_dropped > sh0.shadow_promoted + sh0.shadow_dropped) {
            const int promoted = sh1.shadow_promoted > sh0.shadow_promoted;
            uint32_t new_id = 0;
            if (promoted && store) {
                odl_store_host h;
                rc = store_open_checked(store, vs.ids[vs.top], &h, &d);
                if (!rc) {
                    rc = save_model(L, &cm, tmp_model, store_next_id(h.store), &d);
                    if (!rc) {
                        odl_learner_status stm = sh1;
                        memcpy(stm.last_decision, sh1.shadow_decision, sizeof sh1.shadow_decision);
                        rc = store_commit(&h, store, tmp_model, odl_strategy_name(strategy), &stm, 0, &new_id, &d);
                    }
                    odl_store_host_close(&h);
                }
                remove(tmp_model);
                if (rc)
                    break;
            }
            if (promoted)
                versions_push(&vs, store ? new_id : vs.next_id);
            printf("%4d shadow: %s; version %u\n", lineno, sh1.shadow_decision, (unsigned)vs.ids[vs.top]);
            if (promoted && store)
                printf("     -> stored as version %u in %s\n", (unsigned)new_id, store);
        }
        if (s != ODL_OK) {
            char ctx[64];
            snprintf(ctx, sizeof ctx, "%s:%d", events, lineno);
            rc = cli_fail(ctx, s, &d);
        }
    }
    if (!rc) {
        odl_learner_status st;
        odl_learner_get_status(L, &st);
        printf("session: %u predictions (%u drift events), %u feedback (%u examples accepted), %u right / %u wrong "
               "marks; %u updates: %u accepted, %u rolled back; %u rollbacks; version %u\n",
               st.predictions, st.drift_events, st.feedback, st.accepted_examples, st.marks_right, st.marks_wrong,
               st.updates, st.updates_accepted, st.updates_rolled_back, st.rollbacks, (unsigned)vs.ids[vs.top]);
        if (shadow)
            printf("shadow: %u promoted, %u dropped%s\n", st.shadow_promoted, st.shadow_dropped,
                   st.shadow_active ? ", one candidate still waiting" : "");
    }
done:
    if (tmp_dir[0]) {
        cli_cleanup_dir(NULL, NULL);
        unlink(tmp_model);
        rmdir(tmp_dir);
    }
    free(log);
    free(buf);
    odl_dataset_free(&orig);
    odl_dataset_free(&user);
    odl_dataset_free(&olds);
    cli_model_free(&cm);
    return rc;
}
