/* odl session: a logged stream of user events, run through the learner. */
#include <ctype.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "learn.h"
#include "odl/learner.h"

static void help(FILE *f)
{
    fputs("usage: odl session --model M.odl --data PATH --events LOG [options]\n"
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
          "  save,FILE            write the current model (base + adapted head) to FILE\n"
          "SRC is 'user' (the data with --shift applied) or 'orig' (the data as it is).\n"
          "\n"
          "  --data PATH          samples the events refer to  (test split by default)\n"
          "  --split S            train | test                  (default test)\n"
          "  --shift S            gain:A,B or translate:DX,DY for SRC=user\n"
          "  --old PATH           original training data the device ships with (replay,\n"
          "                       guard set, class statistics)  (default: --data's train split)\n"
          "  --old-samples N      how many of them              (default 2000)\n"
          "  --max-classes N      room for new classes          (default: the model's)\n"
          "  --store DIR          keep every accepted version in a power-cut-safe store\n"
          "                       (the base is version 1; see odl versions / odl rollback)\n"
          "  --keep N             versions the store keeps            (default 8)\n"
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
    odl_model_desc nd = base->desc;
    odl_desc_set_classes(&nd, st.active_classes);
    odl_desc_freeze_below(&nd, b);
    owned_model om;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    if (owned_model_make(&om, &nd, &cfg))
        return 1;
    const int32_t last = nd.n_layers - 1;
    for (int32_t i = 0; i < nd.n_layers; i++)
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
    odl_status s = odl_host_save_model(om.m, meta, 3, path, d);
    owned_model_free(&om);
    return s == ODL_OK ? 0 : cli_fail(path, s, d);
}

/* Commits the current model (or the file at `path` as it is) to the store. */
static int store_commit(const char *store, int32_t keep, const char *file, const char *strategy,
                        const odl_learner_status *st, uint64_t logical_time, uint32_t *id, odl_diag *d)
{
    odl_store_meta meta;
    odl_store_meta_init(&meta, strategy, st ? st->last_decision : "the base model", logical_time);
    if (st) {
        odl_store_meta_add_metric(&meta, "old", st->last_old_after, NULL);
        odl_store_meta_add_metric(&meta, "new", st->last_new_after, NULL);
        if (st->last_user_after >= 0.0f)
            odl_store_meta_add_metric(&meta, "user", st->last_user_after, NULL);
    }
    odl_status s = odl_store_posix_commit_file(store, (uint32_t)keep, file, &meta, id, d);
    return s == ODL_OK ? 0 : cli_fail(store, s, d);
}

int cmd_session(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *events = NULL, *shift = NULL, *old = NULL, *store = NULL, *v = NULL;
    int32_t keep = ODL_STORE_POSIX_DEFAULT_KEEP;
    odl_split split = ODL_SPLIT_TEST;
    int32_t old_n = 2000, max_classes = 0, seed = 0;
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
                   (r = cli_opt(&a, "--old", &old)) || (r = cli_opt(&a, "--store", &store))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--split", &v))) {
            if (r < 0 || cli_parse_split(v, &split)) return 2;
        } else if ((r = cli_opt(&a, "--old-samples", &v))) {
            if (r < 0 || cli_parse_int("--old-samples", v, 1, 1 << 24, &old_n)) return 2;
        } else if ((r = cli_opt(&a, "--max-classes", &v))) {
            if (r < 0 || cli_parse_int("--max-classes", v, 2, 4096, &max_classes)) return 2;
        } else if ((r = cli_opt(&a, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, 2147483647L, &seed)) return 2;
        } else if ((r = cli_opt(&a, "--keep", &v))) {
            if (r < 0 || cli_parse_int("--keep", v, 1, 63, &keep)) return 2;
        } else {
            cli_error("session: unknown option '%s' (see odl session --help)", argv[a.i]);
            return 2;
        }
    }
    if (!model || !data || !events) {
        cli_error("session: --model, --data and --events are required (see odl session --help)");
        return 2;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_shift sh;
    if (odl_shift_parse(shift, &sh, &d) != ODL_OK)
        return cli_error("%s", d.msg) + 1;
    FILE *ev = fopen(events, "r");
    if (!ev)
        return cli_error("%s: cannot open the event log", events);
    odl_model_cfg icfg = odl_model_cfg_defaults();
    icfg.max_batch = 1;
    cli_model cm;
    odl_dataset orig, user, olds;
    memset(&orig, 0, sizeof orig);
    memset(&user, 0, sizeof user);
    memset(&olds, 0, sizeof olds);
    int rc = cli_model_load(model, &icfg, &cm);
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
        fclose(ev);
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
    odl_learner_cfg lc = odl_learner_cfg_defaults();
    lc.max_classes = max_classes;
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
    if (s != ODL_OK) {
        rc = cli_fail("session", s, &d);
        goto done;
    }
    if (!quiet)
        printf("learner: %zu bytes (params %zu, grads %zu, optimizer %zu, buffers %zu, scratch %zu, state %zu); "
               "%d old samples seeded\n",
               plan.total, plan.bytes[ODL_MEM_PARAMS], plan.bytes[ODL_MEM_GRADS], plan.bytes[ODL_MEM_OPTIM],
               plan.bytes[ODL_MEM_BUFFERS], plan.bytes[ODL_MEM_SCRATCH], plan.bytes[ODL_MEM_STATE], (int)n_old);
    char tmp_model[64];
    snprintf(tmp_model, sizeof tmp_model, "/tmp/odl-session-%ld.odl", (long)getpid());
    if (store) {
        odl_store_host h;
        odl_status so = odl_store_host_open(&h, store, (uint32_t)keep, &d);
        int empty = so == ODL_OK && odl_store_count(h.store) == 0;
        if (so == ODL_OK)
            odl_store_host_close(&h);
        uint32_t id = 0;
        if (so != ODL_OK)
            rc = cli_fail(store, so, &d);
        else if (empty && !(rc = store_commit(store, keep, model, "base", NULL, 0, &id, &d)) && !quiet)
            printf("store %s: the base is version %u\n", store, id);
        if (rc)
            goto done;
    }
    char line[512];
    int lineno = 0;
    uint32_t rejected_run[ODL_REASON_COUNT] = {0};
    int32_t first_user_predict = -1; /* prediction count when SRC=user began */
    while (!rc && fgets(line, sizeof line, ev)) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        p[strcspn(p, "\r\n")] = '\0';
        char *f[5] = {0};
        int nf = 0;
        for (char *tok = p; tok && nf < 5; nf++) {
            f[nf] = tok;
            tok = strchr(tok, ',');
            if (tok)
                *tok++ = '\0';
        }
        const odl_dataset *src = NULL;
        int32_t idx = -1;
        if (nf >= 3 && (!strcmp(f[0], "predict") || !strcmp(f[0], "label") || !strcmp(f[0], "right") ||
                        !strcmp(f[0], "wrong"))) {
            src = !strcmp(f[1], "user") ? &user : !strcmp(f[1], "orig") ? &orig : NULL;
            char *end;
            long v2 = strtol(f[2], &end, 10);
            if (!src || *end || end == f[2] || v2 < 0 || v2 >= (src ? src->n : 0)) {
                rc = cli_error("%s:%d: expected %s,user|orig,INDEX with 0 <= INDEX < %d", events, lineno, f[0],
                               src ? (int)src->n : 0);
                break;
            }
            idx = (int32_t)v2;
        }
        const float *x = src ? src->x + (size_t)idx * in : NULL;
        odl_reason why = ODL_REASON_NONE;
        if (!strcmp(f[0], "predict") && x) {
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
                printf("%4d predict %s[%d]: class %d (%.2f), true %d\n", lineno, f[1], (int)idx, (int)c, (double)conf,
                       (int)src->y[idx]);
            }
        } else if (!strcmp(f[0], "label") && x && nf >= 4) {
            char *end;
            long lab = strtol(f[3], &end, 10);
            if (*end || end == f[3]) {
                rc = cli_error("%s:%d: label must be a whole number", events, lineno);
                break;
            }
            s = odl_learner_feedback(L, x, (int32_t)lab, &why, &d);
            if (s == ODL_EVENT_REJECTED) {
                rejected_run[why]++;
                if (!quiet)
                    printf("%4d label %s[%d]=%ld: %s\n", lineno, f[1], (int)idx, lab, odl_reason_str(why));
                s = ODL_OK;
            }
        } else if ((!strcmp(f[0], "right") || !strcmp(f[0], "wrong")) && x) {
            s = odl_learner_mark(L, x, !strcmp(f[0], "right"), &why, &d);
            if (s == ODL_EVENT_REJECTED) {
                rejected_run[why]++;
                s = ODL_OK;
            }
        } else if (!strcmp(f[0], "update") || !strcmp(f[0], "calibrate")) {
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            int upd = !strcmp(f[0], "update");
            s = upd ? odl_learner_update(L, &rng, &d) : odl_learner_calibrate(L, &d);
            if (s == ODL_ERR_STATE) { /* nothing to learn from: a decision, not a failure */
                printf("%4d %s skipped: %s\n", lineno, f[0], d.msg);
                s = ODL_OK;
                continue;
            }
            if (s == ODL_OK || s == ODL_EVENT_ROLLED_BACK) {
                odl_learner_status st2;
                odl_learner_get_status(L, &st2);
                printf("%4d %s on %d collected (%d held out); rejected so far:", lineno, f[0], (int)st.collected,
                       (int)st.held_out);
                for (int r2 = 1; r2 < ODL_REASON_COUNT; r2++)
                    if (st2.rejected[r2])
                        printf(" %s %u;", odl_reason_str((odl_reason)r2), st2.rejected[r2]);
                printf("\n     -> %s; version %u\n", st2.last_decision, st2.version);
                if (store && s == ODL_OK) {
                    uint32_t id = 0;
                    rc = save_model(L, &cm, tmp_model, st2.version, &d);
                    if (!rc)
                        rc = store_commit(store, keep, tmp_model, upd ? "update" : "calibrate", &st2, 0, &id, &d);
                    remove(tmp_model);
                    if (!rc)
                        printf("     -> stored as version %u in %s\n", id, store);
                }
                s = ODL_OK;
            }
        } else if (!strcmp(f[0], "rollback")) {
            long steps = nf >= 2 ? strtol(f[1], NULL, 10) : 1;
            s = odl_learner_rollback(L, (int32_t)steps, &d);
            if (s == ODL_OK) {
                odl_learner_status st;
                odl_learner_get_status(L, &st);
                printf("%4d rollback %ld: version %u is current\n", lineno, steps, st.version);
                if (store) {
                    odl_store_host h;
                    uint32_t now = 0;
                    s = odl_store_host_open(&h, store, 0, &d);
                    if (s == ODL_OK) {
                        s = odl_store_rollback(h.store, (int32_t)steps, (uint64_t)time(NULL), &now, &d);
                        odl_store_host_close(&h);
                    }
                    if (s == ODL_OK)
                        printf("     -> store %s: version %u is current\n", store, now);
                }
            }
        } else if (!strcmp(f[0], "save") && nf >= 2) {
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            rc = save_model(L, &cm, f[1], st.version, &d);
            if (!rc && !quiet)
                printf("%4d saved version %u to %s\n", lineno, st.version, f[1]);
        } else {
            rc = cli_error("%s:%d: unknown or incomplete event '%s'", events, lineno, f[0]);
            break;
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
               st.updates, st.updates_accepted, st.updates_rolled_back, st.rollbacks, st.version);
    }
done:
    fclose(ev);
    free(buf);
    odl_dataset_free(&orig);
    odl_dataset_free(&user);
    odl_dataset_free(&olds);
    cli_model_free(&cm);
    return rc;
}
