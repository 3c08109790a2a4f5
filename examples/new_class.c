/* examples/new_class.c — add new classes on the device.
 *
 *   new_class BASE8.odl [FASHION_MNIST_DIR]
 *
 * BASE8.odl knows classes 0-7 (odl train --classes 0-7 ...). The learner is
 * created with room for 10 classes (its head is allocated for 10 outputs from
 * the start, so nothing is allocated when a new class appears). The user
 * labels a few examples of classes 8 and 9 (bag, ankle boot), in rounds of up
 * to 60; each round is one update through the evaluation gate. Reports the
 * accuracy on test samples of classes 8-9 and 0-7 that were never labelled,
 * before and after. Exits non-zero unless at least one update is accepted,
 * classes 8-9 reach 50% and 0-7 lose at most 10 points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/data.h"
#include "odl/odl.h"
#include "odl/posix_io.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define ROUNDS 2
#define PER_CLASS 30 /* labelled examples per new class per round */

static int die(const char *what, odl_status s, const odl_diag *d)
{
    fprintf(stderr, "new_class: %s: %s%s%s\n", what, odl_status_str(s), d && d->msg[0] ? ": " : "",
            d ? d->msg : "");
    return 1;
}

/* Accuracy on test samples [from, n) whose label is in [lo, hi]. */
static double accuracy(odl_learner *L, const odl_dataset *ds, int32_t from, int32_t lo, int32_t hi)
{
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    int32_t right = 0, total = 0;
    for (int32_t i = from; i < ds->n; i++) {
        if (ds->y[i] < lo || ds->y[i] > hi)
            continue;
        int32_t c;
        float conf;
        if (odl_learner_predict(L, ds->x + (size_t)i * in, &c, &conf, NULL) >= 0 && c == ds->y[i])
            right++;
        total++;
    }
    return total ? (double)right / total : 0.0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: new_class BASE8.odl [FASHION_MNIST_DIR]\n");
        return 2;
    }
    const char *data = argc > 2 ? argv[2] : DEFAULT_DATA;
    odl_diag d;
    odl_diag_clear(&d);

    void *file = NULL;
    size_t len = 0;
    odl_status s = odl_host_read_file(argv[1], &file, &len, &d);
    if (s != ODL_OK)
        return die(argv[1], s, &d);
    /* the topology, in node storage sized from the file (the model copies
     * its nodes into its arena, so this storage may go after init) */
    odl_model_desc desc;
    if ((s = odl_host_read_desc(file, len, &desc, &d)) != ODL_OK)
        return die(argv[1], s, &d);
    odl_model_cfg mc = odl_model_cfg_defaults();
    odl_mem_plan plan;
    if ((s = odl_model_plan(&desc, &mc, &plan, &d)) != ODL_OK)
        return die("model plan", s, &d);
    void *model_buf = malloc(plan.total);
    odl_arena arena;
    odl_arena_init(&arena, model_buf, plan.total);
    odl_model *base;
    if ((s = odl_model_init(&base, &desc, &mc, &arena, &d)) != ODL_OK ||
        (s = odl_model_load_params(base, file, len, &d)) != ODL_OK)
        return die("model", s, &d);
    const int32_t base_classes = odl_model_n_classes(base);
    if (base_classes != 8) {
        fprintf(stderr, "new_class: %s has %d classes; expected a model of classes 0-7\n", argv[1],
                (int)base_classes);
        return 1;
    }

    /* the old data: 2000 training samples of classes 0-7 */
    odl_class_set old_classes;
    if ((s = odl_class_set_parse("0-7", &old_classes, &d)) != ODL_OK)
        return die("classes", s, &d);
    odl_data_opts o = odl_data_opts_defaults();
    o.split = ODL_SPLIT_TRAIN;
    o.classes = &old_classes;
    o.limit = 2000;
    odl_dataset old, test;
    if ((s = odl_data_load(data, &o, &old, &d)) != ODL_OK)
        return die(data, s, &d);
    o = odl_data_opts_defaults();
    o.split = ODL_SPLIT_TEST;
    if ((s = odl_data_load(data, &o, &test, &d)) != ODL_OK)
        return die(data, s, &d);
    const size_t in = (size_t)test.c * test.h * test.w;

    odl_learner_cfg lc = odl_learner_cfg_defaults();
    lc.max_classes = 10;
    lc.drift = 0; /* this example is not about drift */
    if ((s = odl_learner_plan(&lc, base, &plan, &d)) != ODL_OK)
        return die("learner plan", s, &d);
    void *learner_buf = malloc(plan.total);
    odl_arena_init(&arena, learner_buf, plan.total);
    odl_learner *L;
    if ((s = odl_learner_init(&L, &lc, base, &arena, &d)) != ODL_OK)
        return die("learner", s, &d);
    odl_rng rng;
    odl_rng_seed(&rng, 0, 2);
    if ((s = odl_learner_seed_old(L, old.x, old.y, old.n, &rng, &d)) != ODL_OK)
        return die("seed", s, &d);
    printf("base: classes 0-7; learner: %zu bytes, room for 10 classes\n", plan.total);

    /* labelled examples come from the first 2000 test samples; the accuracy
     * is measured on the other 8000 */
    const int32_t eval_from = 2000;
    double old0 = accuracy(L, &test, eval_from, 0, 7);
    printf("before: classes 0-7 %.3f, classes 8-9 %.3f\n", old0, accuracy(L, &test, eval_from, 8, 9));

    int32_t next[2] = {0, 0}; /* scan position per new class */
    int accepted = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int32_t sent = 0, taken = 0;
        for (int k = 0; k < PER_CLASS; k++)
            for (int cls = 8; cls <= 9; cls++) { /* alternate: no class floods the buffer */
                int32_t *p = &next[cls - 8];
                while (*p < eval_from && test.y[*p] != cls)
                    (*p)++;
                if (*p >= eval_from)
                    continue;
                odl_reason why;
                s = odl_learner_feedback(L, test.x + (size_t)(*p) * in, cls, &why, &d);
                (*p)++;
                if (s < 0)
                    return die("feedback", s, &d);
                sent++;
                taken += s == ODL_OK;
            }
        s = odl_learner_update(L, &rng, &d);
        if (s < 0)
            return die("update", s, &d);
        odl_learner_status st;
        odl_learner_get_status(L, &st);
        printf("round %d: %d labelled, %d collected -> %s (active classes %d, version %u)\n", round + 1, (int)sent,
               (int)taken, st.last_decision, (int)st.active_classes, st.version);
        accepted += s == ODL_OK;
    }
    double old1 = accuracy(L, &test, eval_from, 0, 7), new1 = accuracy(L, &test, eval_from, 8, 9);
    double all1 = accuracy(L, &test, eval_from, 0, 9);
    printf("after: classes 0-7 %.3f, classes 8-9 %.3f, all %.3f\n", old1, new1, all1);

    int ok = accepted > 0 && new1 >= 0.5 && old1 >= old0 - 0.10;
    free(learner_buf);
    free(model_buf);
    odl_host_free(file);
    odl_host_desc_free(&desc);
    odl_dataset_free(&old);
    odl_dataset_free(&test);
    printf("new_class: %s (%d of %d updates accepted)\n", ok ? "ok" : "FAILED", accepted, ROUNDS);
    return ok ? 0 : 1;
}
