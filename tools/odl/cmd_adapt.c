/* odl adapt: adapt a model to a user's examples and save the result. */
#include <stdlib.h>
#include <string.h>

#include "learn.h"
#include "odl/state.h"

static void help(FILE *f)
{
    fputs("usage: odl adapt BASE.odl --data USER_PATH -o ADAPTED.odl [options]\n"
          "\n"
          "Adapts a model to a user's labelled examples. The base runs once per example\n"
          "(frozen); the head (or, with --unfreeze K, K more layers) learns.\n"
          "\n"
          "  --data PATH          the user's examples (IDX dir/file or CSV; train split)\n"
          "  --strategy S         naive | replay | ewc | lwf | full | ncm | slda (default replay:\n"
          "                       from the buffer the model carries, or --replay-from;\n"
          "                       naive, with a note, when there is neither)\n"
          "  --replay-from PATH   the original training data the replay buffer, EWC's Fisher\n"
          "                       and class statistics are drawn from (required for\n"
          "                       replay, ewc, ncm, slda)\n"
          "  --replay-size N      replay buffer slots                    (default 200)\n"
          "  --replay-balanced    class-balanced instead of reservoir sampling\n"
          "  --replay-int8        store replayed latents as INT8 (4x smaller)\n"
          "  --ewc-lambda X       EWC penalty strength                   (default 10)\n"
          "  --lwf-weight X       distillation weight                    (default 1)\n"
          "  --new-classes        the user's labels may extend the head (grows it)\n"
          "  --unfreeze K         also train the K layers below the head (default 0)\n"
          "  --lr-decay G         layer l below the head learns at lr*G^l (default 1)\n"
          "  --gradual E          gradual unfreezing: one more layer every E epochs\n"
          "  --adapter R          insert a residual adapter (bottleneck R) before the head\n"
          "  --mix R              replayed samples per new sample each epoch (default: all)\n"
          "  --match N            sensor matching: keep N raw original samples (class-\n"
          "                       balanced; INT8 with --replay-int8), fit the user's\n"
          "                       intensity curve from the labelled examples, and also\n"
          "                       train on the originals as the user's sensor sees them\n"
          "                       (needs --replay-from the first time; docs/cli.md)\n"
          "  --augment K          also learn from K copies of each example moved by up to\n"
          "                       2 pixels (images only)                 (default 0)\n"
          "  --classes SPEC       use only these labels of the user data\n"
          "  --shift S            gain:A,B or translate:DX,DY applied to the user data\n"
          "  --limit N            first N user samples only\n"
          "  --shape CxHxW        input shape for CSV data (default the model's)\n"
          "  --json               print the result as one JSON object\n"
          "  --epochs N --lr X --batch B --seed S   (defaults 10, 0.001, 16, 0)\n"
          "  --quiet\n",
          f);
}

int cmd_adapt(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *out = NULL, *from = NULL, *classes = NULL, *shift = NULL, *v = NULL;
    static const char default_strategy[] = "replay";
    const char *strategy = default_strategy, *shape = NULL;
    int json = 0;
    strat st;
    int32_t replay_size = 200, epochs = 10, batch = 16, seed = 0, unfreeze = 0, limit = 0, gradual = 0, adapter = 0;
    int32_t match = 0, augment = 0;
    float mix = 0.0f;
    float lr = 1e-3f, ewc_lambda = 10.0f, lwf_weight = 1.0f, lr_decay = 1.0f;
    int balanced = 0, int8 = 0, new_classes = 0, quiet = 0;
    cli_args a = {argc, argv, 1, "adapt"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--quiet")) {
            quiet = 1;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if ((r = cli_opt(&a, "--shape", &shape))) {
            if (r < 0) return 2;
        } else if (cli_flag(&a, "--replay-balanced")) {
            balanced = 1;
        } else if (cli_flag(&a, "--replay-int8")) {
            int8 = 1;
        } else if (cli_flag(&a, "--new-classes")) {
            new_classes = 1;
        } else if ((r = cli_opt(&a, "--data", &data)) || (r = cli_opt(&a, "--output", &out)) ||
                   (r = cli_opt(&a, "-o", &out)) || (r = cli_opt(&a, "--replay-from", &from)) ||
                   (r = cli_opt(&a, "--classes", &classes)) || (r = cli_opt(&a, "--shift", &shift)) ||
                   (r = cli_opt(&a, "--strategy", &strategy))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--replay-size", &v))) {
            if (r < 0 || cli_parse_int("--replay-size", v, 1, 1 << 24, &replay_size)) return 2;
        } else if ((r = cli_opt(&a, "--epochs", &v))) {
            if (r < 0 || cli_parse_int("--epochs", v, 1, 100000, &epochs)) return 2;
        } else if ((r = cli_opt(&a, "--batch", &v))) {
            if (r < 0 || cli_parse_int("--batch", v, 1, 65536, &batch)) return 2;
        } else if ((r = cli_opt(&a, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, 2147483647L, &seed)) return 2;
        } else if ((r = cli_opt(&a, "--unfreeze", &v))) {
            if (r < 0 || cli_parse_int("--unfreeze", v, 0, 65536, &unfreeze)) return 2;
        } else if ((r = cli_opt(&a, "--gradual", &v))) {
            if (r < 0 || cli_parse_int("--gradual", v, 1, 100000, &gradual)) return 2;
        } else if ((r = cli_opt(&a, "--adapter", &v))) {
            if (r < 0 || cli_parse_int("--adapter", v, 1, 4096, &adapter)) return 2;
        } else if ((r = cli_opt(&a, "--mix", &v))) {
            if (r < 0 || cli_parse_float("--mix", v, 0.001, 1000.0, &mix)) return 2;
        } else if ((r = cli_opt(&a, "--augment", &v))) {
            if (r < 0 || cli_parse_int("--augment", v, 0, 64, &augment)) return 2;
        } else if ((r = cli_opt(&a, "--match", &v))) {
            if (r < 0 || cli_parse_int("--match", v, 1, 1 << 20, &match)) return 2;
        } else if ((r = cli_opt(&a, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 1, 2147483647L, &limit)) return 2;
        } else if ((r = cli_opt(&a, "--lr", &v))) {
            if (r < 0 || cli_parse_float("--lr", v, 1e-9, 10.0, &lr)) return 2;
        } else if ((r = cli_opt(&a, "--lr-decay", &v))) {
            if (r < 0 || cli_parse_float("--lr-decay", v, 0.0, 10.0, &lr_decay)) return 2;
        } else if ((r = cli_opt(&a, "--ewc-lambda", &v))) {
            if (r < 0 || cli_parse_float("--ewc-lambda", v, 0.0, 1e9, &ewc_lambda)) return 2;
        } else if ((r = cli_opt(&a, "--lwf-weight", &v))) {
            if (r < 0 || cli_parse_float("--lwf-weight", v, 0.0, 1e6, &lwf_weight)) return 2;
        } else if (argv[a.i][0] == '-') {
            cli_error("adapt: unknown option '%s' (see odl adapt --help)", argv[a.i]);
            return 2;
        } else if (!model) {
            model = argv[a.i];
        } else {
            cli_error("adapt: one model at a time ('%s' is extra)", argv[a.i]);
            return 2;
        }
    }
    if (!model || !data || !out) {
        cli_error("adapt: BASE.odl, --data and -o are required (see odl adapt --help)");
        return 2;
    }
    {
        const char *ins[] = {model, data, from};
        int orc = cli_check_output("-o", out, ins, 3);
        if (orc)
            return orc;
    }
    strat_kind kind;
    if (strat_kind_parse(strategy, &kind)) {
        cli_error("--strategy: unknown strategy '%s' (naive, replay, ewc, lwf, full, ncm, slda)", strategy);
        return 2;
    }
    odl_shift sh;
    odl_diag d;
    odl_diag_clear(&d);
    if (shift && odl_shift_parse(shift, &sh, &d) != ODL_OK)
        return cli_error("%s", d.msg) + 1;
    st = strat_default(kind);
    st.epochs = epochs;
    st.batch = batch;
    st.lr = lr;
    st.unfreeze = unfreeze;
    st.lr_decay = lr_decay;
    st.gradual = gradual;
    st.adapter = kind == STRAT_FULL ? 0 : adapter;
    st.mix = mix;
    if (kind == STRAT_REPLAY) {
        st.replay_size = replay_size;
        st.replay_balanced = balanced;
        st.replay_int8 = int8;
    }
    if (kind == STRAT_EWC)
        st.ewc_lambda = ewc_lambda;
    if ((match || augment) && (kind == STRAT_NCM || kind == STRAT_SLDA)) {
        cli_error("%s: %s learns class statistics, not from samples; use it with naive, replay, ewc, lwf or "
                  "full",
                  match ? "--match" : "--augment", strategy);
        return 2;
    }
    st.match = match;
    st.augment = augment;
    st.replay_int8 = st.replay_int8 || (match && int8);
    if (kind == STRAT_LWF)
        st.lwf_weight = lwf_weight;

    odl_model_cfg icfg = odl_model_cfg_defaults();
    /* latents in batches of 8, weights used in place from the file (as from
     * flash on a device): the base costs its scratch only */
    icfg.max_batch = 8;
    icfg.frozen_weights_in_place = 1;
    cli_model cm;
    if (cli_check_classes(classes))
        return 2;
    if (cli_model_load(model, &icfg, &cm))
        return 1;
    /* a model adapted before carries its learner state: go on from it */
    odl_replay_cfg saved_rc;
    const int has_replay = odl_state_find_replay_cfg(cm.file, cm.file_len, &saved_rc, NULL) == ODL_OK;
    const uint8_t *ewc_p, *cs_p;
    size_t ewc_n, cs_n;
    const int has_ewc = odl_state_find(cm.file, cm.file_len, ODL_CHUNK_EWC, &ewc_p, &ewc_n, NULL) == ODL_OK;
    int32_t cs_dim = 0, cs_classes = 0;
    const int has_stats =
        (kind == STRAT_NCM &&
         odl_state_find(cm.file, cm.file_len, ODL_CHUNK_NCM, &cs_p, &cs_n, NULL) == ODL_OK &&
         odl_state_ncm_shape(cs_p, cs_n, &cs_dim, &cs_classes, NULL) == ODL_OK) ||
        (kind == STRAT_SLDA &&
         odl_state_find(cm.file, cm.file_len, ODL_CHUNK_SLDA, &cs_p, &cs_n, NULL) == ODL_OK &&
         odl_state_slda_shape(cs_p, cs_n, &cs_dim, &cs_classes, NULL, NULL) == ODL_OK);
    odl_replay_cfg saved_raw;
    const uint8_t *raw_p;
    size_t raw_n;
    const int has_raw = kind != STRAT_NCM && kind != STRAT_SLDA &&
                        odl_state_find(cm.file, cm.file_len, ODL_CHUNK_RAW_REPLAY, &raw_p, &raw_n, NULL) == ODL_OK &&
                        odl_state_replay_cfg(raw_p, raw_n, &saved_raw, NULL) == ODL_OK;
    if (has_raw) {
        /* a model adapted with sensor matching keeps matching */
        st.match = saved_raw.capacity;
        if (kind != STRAT_REPLAY || !has_replay)
            st.replay_int8 = saved_raw.dtype == ODL_REPLAY_INT8;
    }
    if (kind == STRAT_REPLAY && has_replay) {
        st.replay_size = saved_rc.capacity;
        st.replay_balanced = saved_rc.policy == ODL_REPLAY_CLASS_BALANCED;
        st.replay_int8 = saved_rc.dtype == ODL_REPLAY_INT8;
    }
    if (match && !has_raw && !from) {
        cli_model_free(&cm);
        cli_error("--match needs --replay-from ORIG_PATH (the original samples to match), or a model that carries "
                  "them from an earlier adapt with --match");
        return 2;
    }
    if (kind == STRAT_REPLAY && !has_replay && !from && strategy == default_strategy) {
        /* the defaults: nothing to replay from, so learn from the new examples alone */
        if (!quiet)
            fprintf(stderr, "note: %s carries no replay buffer and no --replay-from was given: adapting with naive "
                            "(the new examples only; old classes may be forgotten). Add --replay-from ORIG_PATH to "
                            "replay the original data.\n",
                    model);
        strategy = "naive";
        kind = STRAT_NAIVE;
        st = strat_default(kind);
        st.epochs = epochs;
        st.batch = batch;
        st.lr = lr;
        st.unfreeze = unfreeze;
        st.lr_decay = lr_decay;
        st.gradual = gradual;
        st.adapter = adapter;
        st.mix = mix;
        st.match = match;
        st.augment = augment;
    }
    if ((kind == STRAT_REPLAY && !has_replay && !from) || (kind == STRAT_EWC && !has_ewc && !from) ||
        ((kind == STRAT_NCM || kind == STRAT_SLDA) && !has_stats && !from)) {
        cli_model_free(&cm);
        cli_error("--strategy %s needs --replay-from ORIG_PATH (the original training data), or a model that "
                  "carries its learner state from an earlier adapt",
                  strategy);
        return 2;
    }
    odl_dataset user, orig;
    memset(&orig, 0, sizeof orig);
    if (cli_load_data(data, ODL_SPLIT_AUTO, ODL_SPLIT_TRAIN, classes, shape, limit, &user)) {
        cli_model_free(&cm);
        return 1;
    }
    /* the model's sample shape first: a translate shift moves pixels of that shape */
    int rc = cli_fit_shape(&user, &cm.desc, data);
    if (!rc && shift)
        odl_dataset_shift(&user, &sh);
    const int32_t base_classes = odl_model_n_classes(cm.m);
    int32_t n_classes = base_classes;
    for (int32_t k = 0; k < user.n; k++)
        if (user.y[k] + 1 > n_classes)
            n_classes = user.y[k] + 1;
    const size_t in = (size_t)cm.desc.in_c * cm.desc.in_h * cm.desc.in_w;
    if (!rc && n_classes > base_classes && !new_classes)
        rc = cli_error("%s: labels up to %d, but %s has %d classes (add --new-classes to grow the head)", data,
                       (int)n_classes - 1, model, (int)base_classes);
    if (!rc && from)
        rc = cli_load_data(from, ODL_SPLIT_AUTO, ODL_SPLIT_TRAIN, NULL, NULL, 0, &orig);
    if (!rc && from && cli_fit_shape(&orig, &cm.desc, from))
        rc = 1;
    if (!rc && from) {
        /* the original data the base knew: its classes only */
        int32_t j = 0;
        for (int32_t k = 0; k < orig.n; k++)
            if (orig.y[k] < base_classes) {
                memmove(orig.x + (size_t)j * in, orig.x + (size_t)k * in, sizeof(float) * in);
                orig.y[j++] = orig.y[k];
            }
        orig.n = j;
    }
    session s;
    memset(&s, 0, sizeof s);
    float *z = NULL;
    double t0 = cli_now();
    uint32_t restored = 0;
    if (!rc) {
        old_data od = {orig.x, orig.y, orig.n, in, NULL, 0, 1000};
        /* a new buffer has room for classes added by later adapts (12 bytes
         * each); a saved one keeps its own room */
        int32_t max_classes = n_classes > 32 ? n_classes : 32;
        if (has_stats) {
            max_classes = cs_classes;
            if (n_classes > max_classes)
                rc = cli_error("%s: its class statistics hold labels below %d; the data has %d", model,
                               (int)max_classes, (int)n_classes - 1);
        } else if ((kind == STRAT_REPLAY && has_replay) || has_raw) {
            max_classes = kind == STRAT_REPLAY && has_replay ? saved_rc.n_classes : saved_raw.n_classes;
            if (n_classes > max_classes)
                rc = cli_error("%s: its replay buffer holds labels below %d; the data has %d", model,
                               (int)max_classes, (int)n_classes - 1);
        }
        if (!rc)
            rc = session_start(&s, &st, cm.m, max_classes, &od, (uint64_t)seed);
        if (!rc && (has_replay || has_ewc || has_stats || has_raw))
            rc = session_restore(&s, cm.file, cm.file_len, &restored);
        if (!rc && restored && !quiet)
            fprintf(stderr, "continuing from the learner state in %s:%s%s%s%s\n", model,
                    restored & ODL_STATE_HAS_REPLAY ? " replay buffer" : "",
                    restored & ODL_STATE_HAS_EWC ? " EWC Fisher and anchors" : "",
                    restored & (ODL_STATE_HAS_NCM | ODL_STATE_HAS_SLDA) ? " class statistics" : "",
                    restored & ODL_STATE_HAS_RAW_REPLAY ? " sensor-matching samples" : "");
    }
    int32_t dim = 0;
    if (!rc && kind != STRAT_FULL)
        rc = learn_latents(cm.m, s.boundary, user.x, user.n, &z, &dim);
    if (!rc)
        rc = session_learn(&s, user.x, z, user.y, user.n, n_classes);
    if (!rc) {
        /* the adapted model: the base's frozen layers, the trained tail, and
         * the learner state (replay buffer, EWC) for a later adapt */
        odl_model_desc nd;
        odl_diag dc;
        odl_diag_clear(&dc);
        odl_status cs = odl_host_desc_copy(&nd, &cm.desc, cm.desc.n_layers + 1, &dc);
        if (cs != ODL_OK)
            rc = cli_fail(model, cs, &dc);
        if (!rc)
            odl_desc_set_classes(&nd, n_classes);
        if (!rc && st.adapter > 0 && odl_desc_insert_adapter(&nd, s.boundary, st.adapter) != ODL_OK)
            rc = cli_error("%s: cannot insert an adapter before node %d (not a cut point?)", model, (int)s.boundary);
        if (!rc)
            odl_desc_freeze_below(&nd, s.boundary);
        char s_n[32], s_classes[32], s_epochs[32], s_seed[32], s_bytes[32];
        snprintf(s_n, sizeof s_n, "%d", (int)user.n);
        snprintf(s_classes, sizeof s_classes, "%d", (int)n_classes);
        snprintf(s_epochs, sizeof s_epochs, "%d", (int)epochs);
        snprintf(s_seed, sizeof s_seed, "%d", (int)seed);
        snprintf(s_bytes, sizeof s_bytes, "%zu", session_plan(&s).total);
        odl_meta_kv meta[] = {{"created_by", "odl adapt " ODL_TOOL_VERSION},
                              {"parent", model},
                              {"strategy", st.name},
                              {"user_data", data},
                              {"shift", shift ? shift : "none"},
                              {"user_samples", s_n},
                              {"classes", s_classes},
                              {"epochs", s_epochs},
                              {"seed", s_seed},
                              {"planned_learning_bytes", s_bytes}};
        if (!rc)
            rc = session_save(&s, cm.m, &nd, meta, (int32_t)(sizeof meta / sizeof meta[0]), out);
        odl_host_desc_free(&nd);
    }
    if (!rc && st.match && !quiet) {
        if (s.match_classes)
            fprintf(stderr, "sensor matching: intensity curve fitted on %d classes, mean shift %.4f, image moved "
                            "by (%d, %d); %d original samples seen through it\n",
                    (int)s.match_classes, (double)s.match_shift, (int)s.match_dx, (int)s.match_dy,
                    (int)odl_replay_count(s.raw));
        else
            fprintf(stderr, "sensor matching: no class in common with the kept samples, nothing matched\n");
    }
    if (!rc && json) {
        printf("{\"model\": ");
        json_str(stdout, model);
        printf(", \"strategy\": ");
        json_str(stdout, st.name);
        printf(", \"examples\": %d, \"classes\": %d, \"trainable_params\": %zu, \"planned_bytes\": %zu, "
               "\"seconds\": %.3f, \"output\": ",
               (int)user.n, (int)n_classes, s.trainable, session_plan(&s).total, cli_now() - t0);
        json_str(stdout, out);
        printf("}\n");
    } else if (!rc)
        printf("adapted %s with %s on %d examples (%d classes, %zu trainable parameters, %zu bytes planned for "
               "learning) in %.2f s; saved %s\n",
               model, st.name, (int)user.n, (int)n_classes, s.trainable, session_plan(&s).total, cli_now() - t0, out);
    (void)quiet;
    free(z);
    session_end(&s);
    odl_dataset_free(&user);
    odl_dataset_free(&orig);
    cli_model_free(&cm);
    return rc;
}
