/* The C API's parameter tensors (odl_capi_model_param_list / get / set):
 * counts against the architecture, a round trip, a bias change moving exactly
 * its logit, and every refusal leaving the model unchanged. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "odl/capi.h"
#include "odl/odl.h"

/* mlp:8 on a 1x4x4 input, 3 classes: dense 8x16 + 8, relu, dense 3x8 + 3 */
static odl_capi_model *small_mlp(odl_test_ctx *t)
{
    char err[256];
    odl_capi_model *m = odl_capi_model_new("mlp:8", 1, 4, 4, 3, 7, err, sizeof err);
    if (!m)
        odl_test_logf(t, "    %s", err);
    return m;
}

static void test_list_counts(odl_test_ctx *t)
{
    odl_capi_model *m = small_mlp(t);
    REQUIRE(m);
    int32_t layer[8], which[8];
    int64_t count[8];
    int n = odl_capi_model_param_list(m, 0, layer, which, count, 8);
    REQUIRE(n == 4);
    CHECK(count[0] == 8 * 16 && which[0] == 0);
    CHECK(count[1] == 8 && which[1] == 1 && layer[1] == layer[0]);
    CHECK(count[2] == 3 * 8 && count[3] == 3 && layer[2] == layer[3] && layer[2] > layer[0]);
    /* only the head after freezing below it; cap smaller than the count: the count, nothing past cap */
    char err[256];
    CHECK(odl_capi_model_freeze(m, layer[2], err, sizeof err) == ODL_OK);
    int32_t one[1] = {-5};
    CHECK(odl_capi_model_param_list(m, 1, one, NULL, NULL, 1) == 2);
    CHECK(one[0] == layer[2]);
    CHECK(odl_capi_model_param_list(m, 1, NULL, NULL, NULL, 0) == 2);
    CHECK(odl_capi_model_param_list(NULL, 1, NULL, NULL, NULL, 0) < 0);
    odl_capi_model_free(m);
}

static void test_round_trip_and_bias(odl_test_ctx *t)
{
    odl_capi_model *m = small_mlp(t);
    REQUIRE(m);
    int32_t layer[4], which[4];
    int64_t count[4];
    REQUIRE(odl_capi_model_param_list(m, 0, layer, which, count, 4) == 4);
    char err[256];
    float x[16], before[3], after[3], b[3], b2[3];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i / 16.0f;
    CHECK(odl_capi_model_predict(m, x, 1, NULL, NULL, before, err, sizeof err) == ODL_OK);
    REQUIRE(odl_capi_model_get_param(m, layer[3], 1, b, 3, err, sizeof err) == ODL_OK);
    float moved[3] = {b[0], b[1] + 1.5f, b[2]};
    REQUIRE(odl_capi_model_set_param(m, layer[3], 1, moved, 3, err, sizeof err) == ODL_OK);
    CHECK(odl_capi_model_predict(m, x, 1, NULL, NULL, after, err, sizeof err) == ODL_OK);
    CHECK(after[0] == before[0] && after[2] == before[2]);
    CHECK_NEAR(after[1], before[1] + 1.5f, 1e-5);
    CHECK(odl_capi_model_get_param(m, layer[3], 1, b2, 3, err, sizeof err) == ODL_OK);
    CHECK(memcmp(b2, moved, sizeof moved) == 0);
    odl_capi_model_free(m);
}

static void test_refusals(odl_test_ctx *t)
{
    odl_capi_model *m = small_mlp(t);
    REQUIRE(m);
    int32_t layer[4];
    REQUIRE(odl_capi_model_param_list(m, 0, layer, NULL, NULL, 4) == 4);
    const int32_t head = layer[3];
    char err[256];
    float b[3], keep[3], big[200];
    memset(big, 0, sizeof big);
    REQUIRE(odl_capi_model_get_param(m, head, 1, keep, 3, err, sizeof err) == ODL_OK);
    CHECK(odl_capi_model_get_param(m, head, 1, b, 2, err, sizeof err) == ODL_ERR_ARG);
    CHECK(strstr(err, "holds 3 values, not 2") != NULL);
    CHECK(odl_capi_model_set_param(m, head, 1, big, 4, err, sizeof err) == ODL_ERR_ARG);
    CHECK(odl_capi_model_set_param(m, head, 1, big, -1, err, sizeof err) == ODL_ERR_ARG);
    CHECK(odl_capi_model_set_param(m, head, 2, big, 3, err, sizeof err) == ODL_ERR_ARG);
    CHECK(strstr(err, "outside the model") != NULL);
    CHECK(odl_capi_model_set_param(m, 1000, 0, big, 3, err, sizeof err) == ODL_ERR_ARG);
    CHECK(odl_capi_model_set_param(m, -1, 0, big, 3, err, sizeof err) == ODL_ERR_ARG);
    CHECK(odl_capi_model_get_param(m, 0, 0, big, 0, err, sizeof err) == ODL_ERR_ARG); /* flatten: none */
    CHECK(strstr(err, "has no float weights") != NULL);
    CHECK(odl_capi_model_set_param(m, head, 1, NULL, 3, err, sizeof err) == ODL_ERR_ARG);
    CHECK(odl_capi_model_get_param(m, head, 1, NULL, 3, err, sizeof err) == ODL_ERR_ARG);
    CHECK(odl_capi_model_set_param(NULL, head, 1, big, 3, err, sizeof err) == ODL_ERR_ARG);
    float bad[3] = {0.0f, NAN, 1.0f};
    CHECK(odl_capi_model_set_param(m, head, 1, bad, 3, err, sizeof err) == ODL_ERR_ARG);
    CHECK(strstr(err, "value 1 is not finite") != NULL);
    bad[1] = INFINITY;
    CHECK(odl_capi_model_set_param(m, head, 1, bad, 3, err, sizeof err) == ODL_ERR_ARG);
    REQUIRE(odl_capi_model_get_param(m, head, 1, b, 3, err, sizeof err) == ODL_OK);
    CHECK(memcmp(b, keep, sizeof b) == 0); /* nothing written by a refusal */
    odl_capi_model_free(m);
}

static const odl_test_case cases[] = {
    {"list_counts", test_list_counts},
    {"round_trip_and_bias", test_round_trip_and_bias},
    {"refusals", test_refusals},
};

TEST_MAIN(cases)
