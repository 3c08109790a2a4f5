/* odl info: layers, shapes, parameters and the exact memory plans. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "odl/learner.h"
#include "odl/quant.h"
#include "odl_mcu_costs.h" /* generated from ports/cortex-m/baseline.txt */

static void help(FILE *f)
{
    fputs("usage: odl info MODEL.odl [options]\n"
          "\n"
          "Shows the layers, output shapes, parameters (total and trainable) and the\n"
          "exact memory plan, per kind, for inference and for training.\n"
          "\n"
          "  --batch B   batch size of the training plans        (default 16)\n"
          "  --json      machine-readable output\n"
          "  --report F  also write the memory plans as an HTML chart (docs/reports.md)\n"
          "\n"
          "The on-device learner's plan (odl/learner.h: head, replay, guard sets,\n"
          "versions, trainer), and whether it fits a RAM budget:\n"
          "  --strategy S        naive, or a learner strategy: replay, ewc, ewc-online,\n"
          "                      lwf, ncm, slda, bias, unfreeze    (default replay)\n"
          "  --replay-size N     replay slots                    (default 200)\n"
          "  --replay-f32        FP32 replay instead of INT8\n"
          "  --collect N         examples collected per update   (default 64)\n"
          "  --max-classes N     head outputs                    (default: the model's)\n"
          "  --guard N           old-task examples kept to check forgetting (default 100)\n"
          "  --versions N        accepted heads kept for rollback (default 4)\n"
          "  --budget B          RAM available for learning, e.g. 64K, 256K, 1M, 200000\n"
          "                      (the frozen base's weights stay in flash; its\n"
          "                      inference scratch counts). Lists every strategy with\n"
          "                      its exact bytes, with the FP32 base and with its INT8\n"
          "                      prefix (odl quantize), whether it fits, and its\n"
          "                      instructions per update measured on the Cortex-M4F\n"
          "                      (the firmware's edge-cnn head), then recommends one\n"
          "                      and says why; when nothing fits, what would. Fails\n"
          "                      when none fits, or when a --strategy given does not.\n"
          "  --baseline F        the firmware's costs from F (run.sh's baseline.txt)\n"
          "                      instead of those recorded when odl was built\n",
          f);
}

typedef struct plan_row {
    const char *name;
    const char *what;
    odl_mem_plan plan;
    size_t trainable;
} plan_row;

/* A cost the Cortex-M4F firmware recorded (ports/cortex-m/baseline.txt):
 * from the file `path` when given, else from the table embedded when odl was
 * built; 0 when it has none. */
static unsigned long long mcu_cost(const char *path, const char *key)
{
    if (!path) {
        for (int k = 0; odl_mcu_costs[k].name; k++)
            if (!strcmp(odl_mcu_costs[k].name, key))
                return odl_mcu_costs[k].value;
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char name[64], line[256];
    unsigned long long v, found = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%63s %llu", name, &v) == 2 && !strcmp(name, key))
            found = v;
    fclose(f);
    return found;
}

/* "insn_update_ewc_online" for ewc-online */
static void strategy_key(char *buf, size_t cap, const char *prefix, const char *strategy)
{
    snprintf(buf, cap, "%s%s", prefix, strategy);
    for (char *c = buf; *c; c++)
        if (*c == '-')
            *c = '_';
}

/* The strategies in the order the firmware's measurements rank them (the
 * drift scenario on the Cortex-M4F, docs/mcu.md), each with why. */
static const struct {
    odl_strategy s;
    const char *why;
} device_order[ODL_STRATEGY_COUNT] = {
    {ODL_STRATEGY_EWC_ONLINE, "on the device's drift scenario (lambda 1000, INT8 guard sets) it met the targets for "
                              "8 of 8 seeds (drifted accuracy up 8 points or more, original down 1 or less), "
                              "with no replay buffer"},
    {ODL_STRATEGY_REPLAY, "the strategy that learned new classes on the device (the others' updates failed the "
                          "gate); on the drift it met the targets for 2 of 8 seeds"},
    {ODL_STRATEGY_LWF, "no buffer; on the device's drift it gained 7.2 points but lost 3.8 on the original"},
    {ODL_STRATEGY_EWC, "no buffer; on the device it gained less than online EWC on the drift"},
    {ODL_STRATEGY_BIAS, "the cheapest update that trains nothing but per-class biases: small gains"},
    {ODL_STRATEGY_SLDA, "no backpropagation; its covariance (and one copy per kept version) needs the most RAM "
                        "of the head strategies"},
    {ODL_STRATEGY_NCM, "no backpropagation and little RAM, but on the device it lost accuracy on the drift"},
    {ODL_STRATEGY_UNFREEZE, "trains the block before the head too: far more RAM than any head strategy"},
};

/* A cut point and what training a head from it would take. */
typedef struct cut_row {
    int32_t tensor;
    size_t trainable;
    odl_mem_plan plan;
} cut_row;

static void print_plan_json(const plan_row *r)
{
    printf("{\"name\": \"%s\", \"description\": ", r->name);
    json_str(stdout, r->what);
    printf(", \"trainable_params\": %zu, \"bytes\": {", r->trainable);
    for (int k = 0; k < ODL_MEM_KINDS; k++)
        printf("\"%s\": %zu, ", odl_mem_kind_name((odl_mem_kind)k), r->plan.bytes[k]);
    printf("\"total\": %zu}}", r->plan.total);
}

/* The learner state a file carries (odl/state.h chunks), one phrase each;
 * json: as a JSON object. */
static void print_state(const cli_model *cm, int json)
{
    const uint8_t *p;
    size_t n;
    odl_replay_cfg rc;
    int first = 1;
    static const struct { uint32_t type; const char *name, *key; } bufs[] = {
        {ODL_CHUNK_REPLAY, "replay buffer", "replay"},
        {ODL_CHUNK_RAW_REPLAY, "sensor-matching samples", "sensor_match"},
    };
    if (json)
        printf(", \"learner_state\": {");
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) {
        if (odl_state_find(cm->file, cm->file_len, bufs[k].type, &p, &n, NULL) != ODL_OK ||
            odl_state_replay_cfg(p, n, &rc, NULL) != ODL_OK)
            continue;
        const char *dtype = rc.dtype == ODL_REPLAY_INT8 ? "int8" : "f32";
        const char *policy = rc.policy == ODL_REPLAY_CLASS_BALANCED ? "class-balanced" : "reservoir";
        if (json)
            printf("%s\"%s\": {\"capacity\": %d, \"dim\": %d, \"classes\": %d, \"dtype\": \"%s\", \"policy\": \"%s\"}",
                   first ? "" : ", ", bufs[k].key, (int)rc.capacity, (int)rc.dim, (int)rc.n_classes, dtype, policy);
        else
            printf("%s%s (%d %s slots of %d values, %s)", first ? "\nlearner state in the file: " : "; ",
                   bufs[k].name, (int)rc.capacity, rc.dtype == ODL_REPLAY_INT8 ? "INT8" : "FP32", (int)rc.dim,
                   policy);
        first = 0;
    }
    size_t np = 0;
    if (odl_state_find(cm->file, cm->file_len, ODL_CHUNK_EWC, &p, &n, NULL) == ODL_OK &&
        odl_state_ewc_n_params(p, n, &np, NULL) == ODL_OK) {
        if (json)
            printf("%s\"ewc_params\": %zu", first ? "" : ", ", np);
        else
            printf("%sEWC Fisher and anchors (%zu parameters)", first ? "\nlearner state in the file: " : "; ", np);
        first = 0;
    }
    int32_t dim = 0, classes = 0;
    if ((odl_state_find(cm->file, cm->file_len, ODL_CHUNK_NCM, &p, &n, NULL) == ODL_OK &&
         odl_state_ncm_shape(p, n, &dim, &classes, NULL) == ODL_OK) ||
        (odl_state_find(cm->file, cm->file_len, ODL_CHUNK_SLDA, &p, &n, NULL) == ODL_OK &&
         odl_state_slda_shape(p, n, &dim, &classes, NULL, NULL) == ODL_OK)) {
        if (json)
            printf("%s\"class_statistics\": {\"dim\": %d, \"classes\": %d}", first ? "" : ", ", (int)dim,
                   (int)classes);
        else
            printf("%sclass statistics (dim %d, room for %d classes)", first ? "\nlearner state in the file: " : "; ",
                   (int)dim, (int)classes);
        first = 0;
    }
    if (json)
        printf("}");
    else if (!first)
        printf("\n");
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL, *v = NULL, *report_path = NULL;
    int32_t batch = 16, replay_size = 200, collect = 64, max_classes = 0, guard = 100, versions = 4;
    int json = 0, replay_f32 = 0;
    const char *strategy = "replay", *budget_s = NULL, *baseline = NULL;
    int strategy_given = 0;
    cli_args a = {argc, argv, 1, "info"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if ((r = cli_opt(&a, "--report", &report_path))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--batch", &v))) {
            if (r < 0 || cli_parse_int("--batch", v, 1, 65536, &batch)) return 2;
        } else if (cli_flag(&a, "--replay-f32")) {
            replay_f32 = 1;
        } else if ((r = cli_opt(&a, "--strategy", &strategy)) || (r = cli_opt(&a, "--budget", &budget_s)) ||
                   (r = cli_opt(&a, "--baseline", &baseline))) {
            if (r < 0) return 2;
            strategy_given |= !strcmp(argv[a.i - 1], "--strategy") || !strncmp(argv[a.i], "--strategy=", 11);
        } else if ((r = cli_opt(&a, "--replay-size", &v))) {
            if (r < 0 || cli_parse_int("--replay-size", v, 0, 1 << 24, &replay_size)) return 2;
        } else if ((r = cli_opt(&a, "--collect", &v))) {
            if (r < 0 || cli_parse_int("--collect", v, 1, 1 << 20, &collect)) return 2;
        } else if ((r = cli_opt(&a, "--guard", &v))) {
            if (r < 0 || cli_parse_int("--guard", v, 0, 1 << 20, &guard)) return 2;
        } else if ((r = cli_opt(&a, "--versions", &v))) {
            if (r < 0 || cli_parse_int("--versions", v, 1, 64, &versions)) return 2;
        } else if ((r = cli_opt(&a, "--max-classes", &v))) {
            if (r < 0 || cli_parse_int("--max-classes", v, 2, 4096, &max_classes)) return 2;
        } else if (argv[a.i][0] == '-') {
            cli_error("info: unknown option '%s' (see odl info --help)", argv[a.i]);
            return 2;
        } else if (!model) {
            model = argv[a.i];
        } else {
            cli_error("info: one model at a time ('%s' is extra)", argv[a.i]);
            return 2;
        }
    }
    if (!model) {
        cli_error("info: a MODEL.odl is required (see odl info --help)");
        return 2;
    }
    if (baseline) {
        FILE *bf = fopen(baseline, "r");
        if (!bf) {
            cli_error("--baseline: cannot read '%s' (the firmware's baseline.txt)", baseline);
            return 2;
        }
        fclose(bf);
    }
    if (report_path) {
        int orc = cli_check_output("--report", report_path, &model, 1);
        if (orc)
            return orc;
    }
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cli_model cm;
    if (cli_model_load(model, &cfg, &cm))
        return 1;
    const odl_model_desc desc = cm.desc; /* read only: shares cm's nodes */
    odl_diag d;
    odl_diag_clear(&d);
    odl_layer_shape *shapes = odl_host_shapes(&desc, &d);
    odl_model_desc full, head_only;
    if (!shapes || odl_host_desc_copy(&full, &desc, desc.n_layers, &d) != ODL_OK) {
        free(shapes);
        cli_model_free(&cm);
        return cli_error("%s: out of memory", model);
    }
    if (odl_host_desc_copy(&head_only, &desc, desc.n_layers, &d) != ODL_OK) {
        free(shapes);
        odl_host_desc_free(&full);
        cli_model_free(&cm);
        return cli_error("%s: out of memory", model);
    }
    odl_desc_check(&desc, shapes, &d);
    size_t total = 0, trainable = 0;
    odl_desc_count_params(&desc, shapes, &total, &trainable);

    /* the plans: inference, full training, head-only (from the latest cut at
     * or before the last dense layer) */
    int32_t head = desc.n_layers - 1;
    while (head > 0 && desc.layers[head].type != ODL_LAYER_DENSE)
        head--;
    if (head > 0 && odl_desc_boundary_for_unfreeze(&desc, 1, &head, NULL) != ODL_OK)
        head = 0;
    plan_row rows[3];
    odl_desc_freeze_below(&full, 0);
    odl_desc_freeze_below(&head_only, head);
    odl_model_cfg tc = odl_model_cfg_defaults();
    tc.mode = ODL_MODE_TRAIN;
    tc.max_batch = batch;
    char w0[96], w1[96], w2[96];
    snprintf(w0, sizeof w0, "inference, batch 1");
    snprintf(w1, sizeof w1, "training every layer, Adam, batch %d", (int)batch);
    snprintf(w2, sizeof w2, "training layers %d.. (head), Adam, batch %d", (int)head, (int)batch);
    rows[0] = (plan_row){"inference", w0, {{0}, 0}, 0};
    rows[1] = (plan_row){"train_full", w1, {{0}, 0}, total};
    rows[2] = (plan_row){"train_head", w2, {{0}, 0}, 0};
    odl_desc_count_params(&head_only, shapes, NULL, &rows[2].trainable);
    odl_status s = odl_model_plan(&desc, &cfg, &rows[0].plan, &d);
    if (s == ODL_OK) s = odl_model_plan(&full, &tc, &rows[1].plan, &d);
    if (s == ODL_OK) s = odl_model_plan(&head_only, &tc, &rows[2].plan, &d);
    /* the cut points: where a head may start, what training it would take */
    cut_row *cuts = calloc((size_t)desc.n_layers + 1, sizeof *cuts);
    int32_t n_cuts = 0;
    if (!cuts && s == ODL_OK)
        s = odl_fail(&d, ODL_ERR_NOMEM, "out of memory");
    for (int32_t t = 0; t <= desc.n_layers && s == ODL_OK; t++) {
        if (!odl_desc_is_cut(&desc, t) || t == desc.n_layers)
            continue;
        cut_row *c = &cuts[n_cuts++];
        c->tensor = t;
        odl_desc_freeze_below(&head_only, t);
        s = odl_desc_count_params(&head_only, shapes, NULL, &c->trainable);
        if (s == ODL_OK)
            s = odl_model_plan(&head_only, &tc, &c->plan, &d);
    }
    odl_act_stats act = {0, 0, 0}, act_train = {0, 0, 0};
    odl_desc_freeze_below(&head_only, head);
    if (s == ODL_OK)
        s = odl_model_plan_activations(&desc, &cfg, &act, &d);
    if (s == ODL_OK)
        s = odl_model_plan_activations(&head_only, &tc, &act_train, &d);
    odl_host_desc_free(&full);
    odl_host_desc_free(&head_only);
    if (s != ODL_OK) {
        free(shapes);
        free(cuts);
        cli_model_free(&cm);
        return cli_fail(model, s, &d);
    }
    char meta_arch[64] = "", meta_created[64] = "";
    odl_file_meta_get(cm.file, cm.file_len, "arch", meta_arch, sizeof meta_arch, NULL);
    odl_file_meta_get(cm.file, cm.file_len, "created_by", meta_created, sizeof meta_created, NULL);

    /* the on-device learner's exact plan, and the budget check */
    size_t budget = 0;
    if (budget_s) {
        char *end;
        double b = strtod(budget_s, &end);
        double mult = 1;
        if (*end == 'K' || *end == 'k') mult = 1024, end++;
        else if (*end == 'M' || *end == 'm') mult = 1024.0 * 1024, end++;
        if (end == budget_s || *end || !(b > 0) || b * mult > 1e15) {
            free(shapes);
            free(cuts);
            cli_model_free(&cm);
            return cli_error("--budget: '%s' is not a size like 256K, 1M or 200000", budget_s) + 1;
        }
        budget = (size_t)(b * mult);
    }
    odl_strategy strat = ODL_STRATEGY_REPLAY;
    if (strcmp(strategy, "naive") && odl_strategy_parse(strategy, &strat, &d) != ODL_OK) {
        free(shapes);
        free(cuts);
        cli_model_free(&cm);
        return cli_error("--strategy: %s (or naive)", d.msg) + 1;
    }
    odl_learner_cfg lc = odl_learner_cfg_for(strat);
    lc.max_collected = collect;
    lc.max_classes = max_classes;
    lc.guard_size = guard;
    lc.versions = versions;
    lc.adapt.batch = batch;
    lc.replay.capacity = strcmp(strategy, "naive") && lc.replay.capacity ? replay_size : 0;
    lc.replay.dtype = replay_f32 ? ODL_REPLAY_F32 : ODL_REPLAY_INT8;
    odl_mem_plan lp, bp;
    odl_model_cfg bcfg = odl_model_cfg_defaults();
    bcfg.frozen_weights_in_place = 1;
    s = odl_learner_plan(&lc, cm.m, &lp, &d);
    if (s == ODL_OK)
        s = odl_model_plan(&desc, &bcfg, &bp, &d);
    if (s != ODL_OK) {
        free(shapes);
        free(cuts);
        cli_model_free(&cm);
        return cli_fail("learner plan", s, &d);
    }
    /* a file with INT8 nodes covering everything below the head (an
     * imported INT8 model, an odl quantize output): a device runs them in
     * place from flash, as the firmwares do, so the frozen base's RAM is that
     * prefix's plan (activations, conv scratch, state), not the FP32 scratch */
    int32_t int8_below = 0;
    if (head > 0) {
        odl_model_desc qd;
        int32_t qb = 0;
        odl_mem_plan qp;
        if (odl_host_desc_copy(&qd, &desc, desc.n_layers, NULL) == ODL_OK) {
            if (odl_qfile_read_desc(cm.file, cm.file_len, &qd, &qb, NULL) == ODL_OK && qb >= head &&
                odl_qmodel_plan_in_place(&desc, head, 1, &qp, NULL) == ODL_OK) {
                bp = qp;
                int8_below = head;
            }
            odl_host_desc_free(&qd);
        }
    }
    const size_t device = lp.total + bp.total;
    if (json) {
        printf("{\"model\": ");
        json_str(stdout, model);
        printf(", \"file_bytes\": %zu, \"arch\": ", cm.file_len);
        json_str(stdout, meta_arch);
        printf(", \"input\": [%d, %d, %d], \"classes\": %d, \"params\": %zu, \"trainable_params\": %zu, \"layers\": [",
               (int)desc.in_c, (int)desc.in_h, (int)desc.in_w, (int)odl_model_n_classes(cm.m), total, trainable);
        for (int32_t i = 0; i < desc.n_layers; i++) {
            const odl_layer_shape *sh = &shapes[i];
            const odl_node_desc *l = &desc.layers[i];
            printf("%s{\"index\": %d, \"type\": \"%s\", \"inputs\": [", i ? ", " : "", (int)i,
                   odl_layer_type_name(l->type));
            for (int32_t k = 0; k < l->n_in; k++)
                printf("%s%d", k ? ", " : "", (int)l->in[k]);
            printf("], \"output\": [%d, %d, %d], \"params\": %zu, \"trainable\": %s}", (int)sh->c, (int)sh->h,
                   (int)sh->w, sh->n_weights + sh->n_bias, l->trainable ? "true" : "false");
        }
        printf("], \"cuts\": [");
        for (int32_t k = 0; k < n_cuts; k++)
            printf("%s{\"tensor\": %d, \"trainable_params\": %zu, \"train_bytes\": %zu}", k ? ", " : "",
                   (int)cuts[k].tensor, cuts[k].trainable, cuts[k].plan.total);
        printf("], \"activations\": {\"peak\": %zu, \"naive_sum\": %zu, \"lower_bound\": %zu, "
               "\"train_head_peak\": %zu, \"train_head_naive_sum\": %zu, \"train_head_lower_bound\": %zu}",
               act.peak, act.naive_sum, act.lower_bound, act_train.peak, act_train.naive_sum, act_train.lower_bound);
        printf(", \"plans\": [");
        for (int k = 0; k < 3; k++) {
            if (k)
                printf(", ");
            print_plan_json(&rows[k]);
        }
        printf("]");
        print_state(&cm, 1);
        printf(", \"learner\": {\"strategy\": \"%s\", \"replay_size\": %d, \"replay_dtype\": \"%s\", \"bytes\": {",
               strategy, (int)lc.replay.capacity, replay_f32 ? "f32" : "int8");
        for (int k = 0; k < ODL_MEM_KINDS; k++)
            printf("\"%s\": %zu, ", odl_mem_kind_name((odl_mem_kind)k), lp.bytes[k]);
        printf("\"total\": %zu}, \"base_inference_in_place\": %zu, \"base_int8_nodes\": %d, \"device_total\": %zu",
               lp.total, bp.total, (int)int8_below, device);
        if (budget)
            printf(", \"budget\": %zu, \"fits\": %s", budget, device <= budget ? "true" : "false");
        printf("}}\n");
    } else {
        /* metadata is the file's text: escaped, so it cannot drive the terminal */
        char arch_text[4 * sizeof meta_arch], created_text[4 * sizeof meta_created];
        cli_escape_text(meta_arch, arch_text, sizeof arch_text);
        cli_escape_text(meta_created, created_text, sizeof created_text);
        printf("%s: %s%s%s, %zu bytes, input %dx%dx%d, %d classes\n", model, arch_text[0] ? arch_text : "model",
               created_text[0] ? ", made by " : "", created_text, cm.file_len, (int)desc.in_c, (int)desc.in_h,
               (int)desc.in_w, (int)odl_model_n_classes(cm.m));
        int graph = 0;
        for (int32_t i = 0; i < desc.n_layers; i++)
            graph |= desc.layers[i].n_in != 1 || desc.layers[i].in[0] != i;
        printf("\n  #  layer        output          params  trainable%s\n", graph ? "  inputs" : "");
        for (int32_t i = 0; i < desc.n_layers; i++) {
            const odl_node_desc *l = &desc.layers[i];
            const odl_layer_shape *sh = &shapes[i];
            char out[32], kind[32];
            snprintf(out, sizeof out, "%dx%dx%d", (int)sh->c, (int)sh->h, (int)sh->w);
            if (l->type == ODL_LAYER_CONV2D || l->type == ODL_LAYER_DEPTHWISE || l->type == ODL_LAYER_MAXPOOL ||
                l->type == ODL_LAYER_AVGPOOL)
                snprintf(kind, sizeof kind, "%s %dx%d", odl_layer_type_name(l->type), (int)l->k_h, (int)l->k_w);
            else
                snprintf(kind, sizeof kind, "%s", odl_layer_type_name(l->type));
            printf("%3d  %-12s %-14s %7zu  %s", (int)i, kind, out, sh->n_weights + sh->n_bias,
                   (sh->n_weights && l->trainable) ? "yes" : (sh->n_weights ? "no" : "-"));
            if (graph) {
                /* tensor numbers: 0 is the input, k the output of node k-1 */
                printf("%*s", (sh->n_weights && l->trainable) ? 8 : (sh->n_weights ? 9 : 10), "");
                for (int32_t k = 0; k < l->n_in; k++)
                    printf("%s%d", k ? "," : "", (int)l->in[k]);
            }
            printf("\n");
        }
        printf("\ncut points (a head may start at tensor t: node t onwards trains, batch %d, Adam):\n",
               (int)batch);
        printf("  %6s %16s %14s\n", "tensor", "trainable params", "training bytes");
        for (int32_t k = 0; k < n_cuts; k++)
            printf("  %6d %16zu %14zu%s\n", (int)cuts[k].tensor, cuts[k].trainable, cuts[k].plan.total,
                   cuts[k].tensor == head ? "   <- the head (last dense layer)" : "");
        printf("\nactivations (bytes): inference at batch 1: peak %zu, naive sum %zu, lower bound %zu;\n"
               "  training the head at batch %d: peak %zu, naive sum %zu, lower bound %zu\n",
               act.peak, act.naive_sum, act.lower_bound, (int)batch, act_train.peak, act_train.naive_sum,
               act_train.lower_bound);
        printf("\nparameters: %zu total, %zu trainable\n", total, trainable);
        print_state(&cm, 0);
        printf("\nmemory plan (exact bytes, 16-byte aligned blocks):\n");
        printf("  %-11s %8s %8s %9s %11s %8s %8s %8s %9s\n", "plan", "params", "grads", "optimizer", "activations",
               "scratch", "buffers", "state", "total");
        for (int k = 0; k < 3; k++) {
            const odl_mem_plan *p = &rows[k].plan;
            printf("  %-11s %8zu %8zu %9zu %11zu %8zu %8zu %8zu %9zu   %s, %zu trainable params\n", rows[k].name,
                   p->bytes[ODL_MEM_PARAMS], p->bytes[ODL_MEM_GRADS], p->bytes[ODL_MEM_OPTIM],
                   p->bytes[ODL_MEM_ACTIVATIONS], p->bytes[ODL_MEM_SCRATCH], p->bytes[ODL_MEM_BUFFERS],
                   p->bytes[ODL_MEM_STATE], p->total, rows[k].what, rows[k].trainable);
        }
        printf("\non-device learner (%s, %d %s replay slots, %d collected per update, batch %d):\n", strategy,
               (int)lc.replay.capacity, replay_f32 ? "FP32" : "INT8", (int)collect, (int)batch);
        printf("  learner %zu bytes (params %zu, grads %zu, optimizer %zu, activations %zu, scratch %zu, buffers %zu, "
               "state %zu)\n",
               lp.total, lp.bytes[ODL_MEM_PARAMS], lp.bytes[ODL_MEM_GRADS], lp.bytes[ODL_MEM_OPTIM],
               lp.bytes[ODL_MEM_ACTIVATIONS], lp.bytes[ODL_MEM_SCRATCH], lp.bytes[ODL_MEM_BUFFERS],
               lp.bytes[ODL_MEM_STATE]);
        if (int8_below)
            printf("  + frozen base, INT8 nodes 0..%d with their weights in flash: %zu bytes of RAM (input, "
                   "activations, conv scratch and state)\n",
                   (int)int8_below - 1, bp.total);
        else
            printf("  + frozen base, weights in flash: %zu bytes of RAM (inference scratch and state)\n", bp.total);
        printf("  = %zu bytes of RAM\n", device);
        if (budget) {
            if (device <= budget) {
                printf("fits the %zu-byte budget with %zu bytes to spare\n", budget, budget - device);
            } else {
                size_t over = device - budget;
                printf("does NOT fit the %zu-byte budget: %zu bytes over. To fit:\n", budget, over);
                /* what each knob saves, from exact plans */
                odl_learner_cfg t = lc;
                odl_mem_plan tp;
                if (lc.replay.capacity > 0) {
                    t.replay.capacity = 0;
                    if (odl_learner_plan(&t, cm.m, &tp, NULL) == ODL_OK) {
                        const size_t replay_bytes = lp.total - tp.total;
                        const size_t slot = replay_bytes / (size_t)lc.replay.capacity;
                        if (replay_bytes >= over)
                            printf("  - each replay slot costs %zu bytes (%s): --replay-size %ld would fit\n", slot,
                                   replay_f32 ? "FP32" : "INT8",
                                   (long)lc.replay.capacity - (long)((over + slot - 1) / slot));
                        else
                            printf("  - even without replay (%zu bytes) it does not fit\n", replay_bytes);
                        if (replay_f32)
                            printf("  - INT8 replay (drop --replay-f32) stores each slot in about a quarter\n");
                    }
                    t = lc;
                }
                t.max_collected = collect > 8 ? collect / 2 : collect;
                if (odl_learner_plan(&t, cm.m, &tp, NULL) == ODL_OK && tp.total < lp.total)
                    printf("  - --collect %d saves %zu bytes\n", (int)t.max_collected, lp.total - tp.total);
                t = lc;
                t.adapt.batch = batch > 1 ? batch / 2 : 1;
                if (odl_learner_plan(&t, cm.m, &tp, NULL) == ODL_OK && tp.total < lp.total)
                    printf("  - --batch %d saves %zu bytes\n", (int)t.adapt.batch, lp.total - tp.total);
            }
        }
    }
    /* every strategy against the budget: exact plans with the FP32 base and
     * with its INT8 prefix (in place, as odl quantize makes it), the M4F's
     * measured instructions per update; the recommendation is the first
     * that fits in the device's ranking */
    int any_fits = 0;
    if (budget) {
        /* the INT8 prefix's RAM up to the head (or the unfreeze cut) */
        size_t q_head = 0, q_unfreeze = 0;
        odl_mem_plan qp;
        int32_t ub = -1;
        if (head > 0 && odl_qmodel_plan_in_place(&desc, head, 1, &qp, NULL) == ODL_OK)
            q_head = qp.total;
        if (odl_desc_boundary_for_unfreeze(&desc, 2, &ub, NULL) == ODL_OK && ub > 0 &&
            odl_qmodel_plan_in_place(&desc, ub, 1, &qp, NULL) == ODL_OK)
            q_unfreeze = qp.total;
        if (!json) {
            printf("\nevery strategy against the %zu-byte budget: learner + the base's RAM (weights in flash), with\n"
                   "the %s base (%zu bytes) and with its INT8 prefix (odl quantize; %s); instructions per\n"
                   "update measured on the Cortex-M4F (the firmware's edge-cnn head, for edge-cnn models; %s):\n",
                   budget, int8_below ? "file's own INT8" : "FP32", bp.total, q_head ? "in place" : "not quantisable here",
                   baseline ? baseline : "recorded when odl was built");
            printf("  %-11s %10s %5s %12s %5s %16s\n", "strategy", "FP32 base", "fits", "INT8 base", "fits",
                   "M4F insn/update");
        }
        int rec = -1, rec_q = -1;
        size_t rec_bytes = 0, rec_q_bytes = 0, least = (size_t)-1;
        int least_k = -1, least_q = 0, replay_fits = 0;
        for (int k = 0; k < ODL_STRATEGY_COUNT; k++) {
            const odl_strategy st = device_order[k].s;
            odl_learner_cfg sc = odl_learner_cfg_for(st);
            sc.max_collected = collect;
            sc.max_classes = max_classes;
            sc.guard_size = guard;
            sc.versions = versions;
            sc.adapt.batch = batch;
            if (sc.replay.capacity)
                sc.replay.capacity = replay_size;
            sc.replay.dtype = lc.replay.dtype;
            odl_mem_plan sp;
            const char *name = odl_strategy_name(st);
            char key[64], ib[32] = "-", qb[24] = "-";
            strategy_key(key, sizeof key, "insn_update_", name);
            /* the counts are the edge-cnn firmware's head: another model's
             * head costs something else, so none are shown for it */
            const unsigned long long insn = strcmp(meta_arch, "edge-cnn") ? 0 : mcu_cost(baseline, key);
            if (insn)
                snprintf(ib, sizeof ib, "%llu", insn);
            if (odl_learner_plan(&sc, cm.m, &sp, NULL) != ODL_OK) {
                if (!json)
                    printf("  %-11s %10s %5s %12s %5s %16s\n", name, "n/a", "-", "n/a", "-", ib);
                continue;
            }
            const size_t tot = sp.total + bp.total;
            const size_t qbase = st == ODL_STRATEGY_UNFREEZE ? q_unfreeze : q_head;
            const size_t qtot = qbase ? sp.total + qbase : 0;
            const int fits = tot <= budget, qfits = qtot && qtot <= budget;
            any_fits |= fits;
            replay_fits |= fits && st == ODL_STRATEGY_REPLAY;
            if (fits && rec < 0)
                rec = k, rec_bytes = tot;
            if (qfits && rec_q < 0)
                rec_q = k, rec_q_bytes = qtot;
            const size_t need = qtot && qtot < tot ? qtot : tot;
            if (need < least)
                least = need, least_k = k, least_q = qtot && qtot < tot;
            if (qtot)
                snprintf(qb, sizeof qb, "%zu", qtot);
            if (!json)
                printf("  %-11s %10zu %5s %12s %5s %16s\n", name, tot, fits ? "yes" : "no", qb,
                       qtot ? (qfits ? "yes" : "no") : "-", ib);
        }
        if (!json) {
            if (rec >= 0) {
                printf("recommended: --strategy %s (%zu bytes):\n  %s\n", odl_strategy_name(device_order[rec].s),
                       rec_bytes, device_order[rec].why);
            } else if (rec_q >= 0) {
                printf("nothing fits with the FP32 base (its inference alone needs %zu bytes). With its INT8 prefix\n"
                       "(odl quantize; the device runs it from flash): --strategy %s fits (%zu bytes):\n  %s\n",
                       bp.total, odl_strategy_name(device_order[rec_q].s), rec_q_bytes, device_order[rec_q].why);
            } else {
                /* smaller buffers, step by step (each step keeps the ones
                 * before); at each step the strategies in the ranking: the
                 * least shrinking that makes one fit, and its options */
                static const struct { int32_t versions, guard, collect, replay, batch; } steps[] = {
                    {1, 0, 0, 0, 0}, {1, 50, 0, 0, 0}, {1, 50, 20, 100, 0}, {1, 20, 20, 100, 8},
                    {1, 20, 16, 50, 8}, {1, 10, 8, 32, 4}, {1, 0, 4, 16, 2}};
                int done = 0;
                for (size_t j = 0; j < sizeof steps / sizeof steps[0] && !done; j++) {
                    for (int k = 0; k < ODL_STRATEGY_COUNT && !done; k++) {
                        const odl_strategy st = device_order[k].s;
                        const size_t qbase = st == ODL_STRATEGY_UNFREEZE ? q_unfreeze : q_head;
                        odl_learner_cfg sc = odl_learner_cfg_for(st);
                        sc.max_classes = max_classes;
                        sc.replay.dtype = lc.replay.dtype;
                        sc.versions = versions < steps[j].versions ? versions : steps[j].versions;
                        sc.guard_size = steps[j].guard && guard > steps[j].guard ? steps[j].guard
                                        : steps[j].guard ? guard : (j ? 0 : guard);
                        sc.max_collected = steps[j].collect && collect > steps[j].collect ? steps[j].collect : collect;
                        sc.adapt.batch = steps[j].batch && batch > steps[j].batch ? steps[j].batch : batch;
                        if (sc.replay.capacity)
                            sc.replay.capacity =
                                steps[j].replay && replay_size > steps[j].replay ? steps[j].replay : replay_size;
                        odl_mem_plan sp;
                        if (odl_learner_plan(&sc, cm.m, &sp, NULL) != ODL_OK)
                            continue;
                        const int with_q = sp.total + bp.total > budget && qbase && sp.total + qbase <= budget;
                        if (sp.total + bp.total > budget && !with_q)
                            continue;
                        printf("nothing fits with these buffers. With smaller ones%s:\n  --strategy %s --versions %d "
                               "--guard %d --collect %d --batch %d",
                               with_q ? " and the INT8 base (odl quantize; the device runs it from flash)" : "",
                               odl_strategy_name(st), (int)sc.versions, (int)sc.guard_size, (int)sc.max_collected,
                               (int)sc.adapt.batch);
                        if (sc.replay.capacity)
                            printf(" --replay-size %d", (int)sc.replay.capacity);
                        printf(" fits (%zu bytes):\n  %s\n", sp.total + (with_q ? qbase : bp.total),
                               device_order[k].why);
                        done = 1;
                    }
                }
                if (!done && least_k >= 0)
                    printf("no strategy fits the %zu-byte budget, even with the smallest buffers; the smallest "
                           "with these: --strategy %s, %zu bytes%s\n",
                           budget, odl_strategy_name(device_order[least_k].s), least,
                           least_q ? " with the INT8 base (odl quantize)" : "");
            }
            if (rec >= 0 && device_order[rec].s != ODL_STRATEGY_REPLAY && replay_fits)
                printf("to teach new classes: --strategy replay, %s\n",
                       "the strategy that learned them on the device");
        }
    }
    if (report_path) {
        char lw[96];
        snprintf(lw, sizeof lw, "on-device learner (%s), beyond the frozen base", strategy);
        const char *names[4] = {rows[0].what, rows[1].what, rows[2].what, lw};
        const odl_mem_plan plans[4] = {rows[0].plan, rows[1].plan, rows[2].plan, lp};
        if (report_write_memory_plans(report_path, model, "odl info: the exact memory plans", names, plans, 4)) {
            free(shapes);
            free(cuts);
            cli_model_free(&cm);
            return 1;
        }
    }
    if (budget && device > budget && (strategy_given || !any_fits)) {
        free(shapes);
        free(cuts);
        cli_model_free(&cm);
        return cli_error("%s: the learner needs %zu bytes of RAM, %zu over the %zu-byte budget", model, device,
                         device - budget, budget);
    }
    free(shapes);
    free(cuts);
    cli_model_free(&cm);
    return 0;
}
