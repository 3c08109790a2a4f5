/* A tiny program built against an installed odl (see docs/install.md).
 *
 * Builds an MLP with the public API, plans its memory, builds it in a
 * malloc'd arena of exactly the planned size, trains it for a few steps on
 * synthetic, linearly separable data and prints the plan and the losses.
 * Exits 0 only if every call succeeds and the loss dropped. */
#include <stdio.h>
#include <stdlib.h>

#include "odl/odl.h"

#define N_FEATURES 8
#define N_CLASSES 2
#define BATCH 32
#define STEPS 60

/* A batch of points x ~ N(0, 1); label 1 when w·x > 0 for a fixed w. */
static void make_batch(odl_rng *rng, float *x, int32_t *y)
{
    static const float w[N_FEATURES] = {1.0f, -2.0f, 0.5f, 1.5f, -1.0f, 0.25f, 2.0f, -0.75f};
    for (int i = 0; i < BATCH; i++) {
        float dot = 0.0f;
        for (int j = 0; j < N_FEATURES; j++) {
            x[i * N_FEATURES + j] = odl_rng_normal(rng);
            dot += w[j] * x[i * N_FEATURES + j];
        }
        y[i] = dot > 0.0f;
    }
}

static int failed(const char *what, odl_status s, const odl_diag *diag)
{
    fprintf(stderr, "consumer: %s failed: %s: %s\n", what, odl_status_str(s), diag->msg);
    return 1;
}

int main(void)
{
    odl_diag diag;
    odl_diag_clear(&diag);

    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    const int32_t hidden[] = {16};
    odl_status s = odl_desc_mlp(&desc, 1, 1, N_FEATURES, hidden, 1, N_CLASSES);
    if (s != ODL_OK)
        return failed("odl_desc_mlp", s, &diag);

    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = BATCH;
    cfg.optim.lr = 0.01f;

    odl_mem_plan plan;
    if ((s = odl_model_plan(&desc, &cfg, &plan, &diag)) != ODL_OK)
        return failed("odl_model_plan", s, &diag);

    void *buf = malloc(plan.total);
    if (!buf) {
        fprintf(stderr, "consumer: out of memory (%zu bytes)\n", plan.total);
        return 1;
    }
    odl_arena arena;
    odl_model *m = NULL;
    odl_rng rng;
    odl_rng_seed(&rng, 42, 1);
    int rc = 0;
    /* The buffer from malloc is aligned for any type, ODL_ALIGN included,
     * so a plan-sized arena is exactly big enough. */
    if ((s = odl_arena_init(&arena, buf, plan.total)) != ODL_OK) {
        rc = failed("odl_arena_init", s, &diag);
        goto done;
    }
    if ((s = odl_model_init(&m, &desc, &cfg, &arena, &diag)) != ODL_OK) {
        rc = failed("odl_model_init", s, &diag);
        goto done;
    }
    if ((s = odl_model_init_params(m, &rng)) != ODL_OK) {
        rc = failed("odl_model_init_params", s, &diag);
        goto done;
    }

    float x[BATCH * N_FEATURES];
    int32_t y[BATCH];
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < STEPS; step++) {
        float loss;
        make_batch(&rng, x, y);
        if ((s = odl_model_train_step(m, 0, x, y, BATCH, &rng, &loss, &diag)) != ODL_OK) {
            rc = failed("odl_model_train_step", s, &diag);
            goto done;
        }
        if (step == 0)
            first = loss;
        last = loss;
    }

    printf("odl %s: plan %zu bytes (params %zu, grads %zu, optim %zu, activations %zu, scratch %zu)\n",
           ODL_VERSION_STRING, plan.total, plan.bytes[ODL_MEM_PARAMS], plan.bytes[ODL_MEM_GRADS],
           plan.bytes[ODL_MEM_OPTIM], plan.bytes[ODL_MEM_ACTIVATIONS], plan.bytes[ODL_MEM_SCRATCH]);
    printf("arena used %zu of %zu bytes\n", arena.used, plan.total);
    printf("loss: first %.4f, final %.4f after %d steps\n", (double)first, (double)last, STEPS);
    if (!(last < first)) {
        fprintf(stderr, "consumer: the loss did not drop\n");
        rc = 1;
    }
done:
    free(buf);
    return rc;
}
