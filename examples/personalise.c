/* examples/personalise.c — personalise a head from a handful of user examples,
 * with automatic rollback when an update makes things worse.
 *
 *   personalise BASE.odl [FASHION_MNIST_DIR] [SEED]
 *
 * The device ships with a base model and 2,000 of its original training
 * samples (replay, guard set, class statistics). The user's sensor has
 * drifted: it lost half its contrast (gain:0.5,0.25, x' = 0.5x + 0.25). The
 * user labels 50 drifted samples: the update is accepted. Then somebody labels 50 samples wrongly (each sent
 * twice, so the held ones are confirmed): the update is rolled back and the
 * head stays exactly as it was. Exits non-zero if either decision differs.
 *
 * Why this shift: under the milder gain:0.8,0.1 of the README's scenario a
 * 1-epoch base still gets most drifted samples right, and 50 examples (12
 * held out, 100 guard samples) are too few for the gate to see a gain
 * reliably: it accepted the update for 2 of 8 seeds. At gain:0.5,0.25 the
 * base falls to about 39% on drifted samples and the update is accepted for
 * 8 of 8 seeds (and the mislabelled one rolled back for 8 of 8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/data.h"
#include "odl/odl.h"
#include "odl/posix_io.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define SHIFT "gain:0.5,0.25" /* the user's drifted sensor */

static int die(const char *what, odl_status s, const odl_diag *d)
{
    fprintf(stderr, "personalise: %s: %s%s%s\n", what, odl_status_str(s), d && d->msg[0] ? ": " : "",
            d ? d->msg : "");
    return 1;
}

/* Accuracy of the learner on samples [from, from+n) (counts as predictions). */
static double accuracy(odl_learner *L, const odl_dataset *ds, int32_t from, int32_t n)
{
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    int32_t right = 0;
    for (int32_t i = from; i < from + n; i++) {
        int32_t c;
        float conf;
        odl_status s = odl_learner_predict(L, ds->x + (size_t)i * in, &c, &conf, NULL);
        if (s >= 0 && c == ds->y[i])
            right++;
    }
    return (double)right / n;
}

static void print_status(odl_learner *L)
{
    odl_learner_status st;
    odl_learner_get_status(L, &st);
    printf("status: version %u; %u predictions, %u feedback (%u accepted); updates %u: %u accepted, %u rolled "
           "back; rejected:",
           st.version, st.predictions, st.feedback, st.accepted_examples, st.updates, st.updates_accepted,
           st.updates_rolled_back);
    for (int r = 1; r < ODL_REASON_COUNT; r++)
        if (st.rejected[r])
            printf(" %s %u;", odl_reason_str((odl_reason)r), st.rejected[r]);
    printf("\n        last decision: %s\n", st.last_decision);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: personalise BASE.odl [FASHION_MNIST_DIR] [SEED]\n");
        return 2;
    }
    const char *data = argc > 2 ? argv[2] : DEFAULT_DATA;
    odl_diag d;
    odl_diag_clear(&d);

    /* 1. the base model, for inference, in an arena of exactly its plan */
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
    odl_model_cfg mc = odl_model_cfg_defaults(); /* inference, batch 1 */
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
    const int32_t classes = odl_model_n_classes(base);

    /* 2. data: the old training samples the device ships with; the user's
     *    drifted samples (the test split through SHIFT) */
    odl_data_opts o = odl_data_opts_defaults();
    o.split = ODL_SPLIT_TRAIN;
    o.limit = 2000;
    odl_dataset old, user;
    if ((s = odl_data_load(data, &o, &old, &d)) != ODL_OK)
        return die(data, s, &d);
    o.split = ODL_SPLIT_TEST;
    o.limit = 0;
    if ((s = odl_data_load(data, &o, &user, &d)) != ODL_OK)
        return die(data, s, &d);
    odl_shift sh;
    odl_shift_parse(SHIFT, &sh, &d);
    odl_dataset_shift(&user, &sh);
    const size_t in = (size_t)user.c * user.h * user.w;

    /* 3. the learner: defaults, its own arena */
    odl_learner_cfg lc = odl_learner_cfg_defaults();
    if ((s = odl_learner_plan(&lc, base, &plan, &d)) != ODL_OK)
        return die("learner plan", s, &d);
    void *learner_buf = malloc(plan.total);
    odl_arena_init(&arena, learner_buf, plan.total);
    odl_learner *L;
    if ((s = odl_learner_init(&L, &lc, base, &arena, &d)) != ODL_OK)
        return die("learner", s, &d);
    /* The learner's random choices (guard set, replay, shuffling) come from one
     * generator. Stream "learn" is the one odl_capi_learner_new uses, so
     * examples/personalise.py, making the same calls with the same seed, gets
     * the same decisions bit for bit. */
    const unsigned long long seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    odl_rng rng;
    odl_rng_seed(&rng, seed, 0x6c6561726eULL);
    if ((s = odl_learner_seed_old(L, old.x, old.y, old.n, &rng, &d)) != ODL_OK)
        return die("seed", s, &d);
    printf("base: %d classes; learner: %zu bytes; %d old samples seeded; user data: test split through %s\n",
           (int)classes, plan.total, (int)old.n, SHIFT);

    const int32_t eval_from = 5000, eval_n = 2000; /* never labelled */
    double acc0 = accuracy(L, &user, eval_from, eval_n);
    printf("accuracy on 2000 drifted samples before: %.3f\n", acc0);

    /* 4. the user labels 50 drifted samples correctly */
    int fails = 0;
    for (int32_t i = 100; i < 150; i++) {
        odl_reason why;
        s = odl_learner_feedback(L, user.x + (size_t)i * in, user.y[i], &why, &d);
        if (s < 0)
            return die("feedback", s, &d);
    }
    s = odl_learner_update(L, &rng, &d);
    if (s < 0)
        return die("update", s, &d);
    print_status(L);
    if (s != ODL_OK) {
        printf("FAIL: the good update was not accepted\n");
        fails++;
    } else {
        printf("ok: good update accepted\n");
    }
    double acc1 = accuracy(L, &user, eval_from, eval_n);
    printf("accuracy on 2000 drifted samples after: %.3f\n", acc1);

    /* 5. 50 wrong labels (off by one), each sent twice */
    const float *before = odl_model_param_const(odl_learner_head(L), 0, 0, &len);
    float *snapshot = malloc(sizeof(float) * len);
    memcpy(snapshot, before, sizeof(float) * len);
    for (int32_t i = 200; i < 250; i++)
        for (int k = 0; k < 2; k++) {
            odl_reason why;
            s = odl_learner_feedback(L, user.x + (size_t)i * in, (user.y[i] + 1) % classes, &why, &d);
            if (s < 0)
                return die("feedback", s, &d);
        }
    s = odl_learner_update(L, &rng, &d);
    if (s < 0)
        return die("update", s, &d);
    print_status(L);
    const float *after = odl_model_param_const(odl_learner_head(L), 0, 0, &len);
    if (s != ODL_EVENT_ROLLED_BACK) {
        printf("FAIL: the mislabelled update was not rolled back\n");
        fails++;
    } else if (memcmp(snapshot, after, sizeof(float) * len)) {
        printf("FAIL: rolled back, but the head changed\n");
        fails++;
    } else {
        printf("ok: mislabelled update rolled back, head bit-identical\n");
    }
    double acc2 = accuracy(L, &user, eval_from, eval_n);
    printf("accuracy on 2000 drifted samples now: %.3f\n", acc2);
    if (acc2 != acc1) {
        printf("FAIL: accuracy changed after the rollback\n");
        fails++;
    }

    free(snapshot);
    free(learner_buf);
    free(model_buf);
    odl_host_free(file);
    odl_host_desc_free(&desc);
    odl_dataset_free(&old);
    odl_dataset_free(&user);
    printf("%s\n", fails ? "personalise: FAILED" : "personalise: ok");
    return fails ? 1 : 0;
}
