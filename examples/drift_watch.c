/* examples/drift_watch.c — watch a stream of images for sensor drift.
 *
 *   drift_watch [FASHION_MNIST_DIR] [CHANGE_AT]
 *
 * Streams the test images in file order: as they are up to CHANGE_AT
 * (default 2000), then through gain:0.8,0.1 (a sensor losing contrast). Each
 * image's contrast (per-sample standard deviation, odl_drift_sample_stats)
 * goes to a z-score detector and a Page-Hinkley detector (library defaults;
 * each is a plain struct: no arena, no allocation). Reports alarms before the
 * change (false alarms) and the delay of the first alarm after it. Exits
 * non-zero on a false alarm or if the z-score detector misses the change. */
#include <stdio.h>
#include <stdlib.h>

#include "odl/data.h"
#include "odl/odl.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

int main(int argc, char **argv)
{
    const char *data = argc > 1 ? argv[1] : DEFAULT_DATA;
    const int32_t change_at = argc > 2 ? (int32_t)atoi(argv[2]) : 2000;
    odl_diag d;
    odl_diag_clear(&d);
    odl_data_opts o = odl_data_opts_defaults();
    o.split = ODL_SPLIT_TEST;
    odl_dataset ds;
    odl_status s = odl_data_load(data, &o, &ds, &d);
    if (s != ODL_OK) {
        fprintf(stderr, "drift_watch: %s\n", d.msg);
        return 1;
    }
    if (change_at < 1 || change_at >= ds.n) {
        fprintf(stderr, "drift_watch: CHANGE_AT must be in 1..%d\n", (int)ds.n - 1);
        return 2;
    }
    const size_t in = (size_t)ds.c * ds.h * ds.w;
    odl_shift sh;
    odl_shift_parse("gain:0.8,0.1", &sh, &d);
    odl_shift_apply(&sh, ds.x + (size_t)change_at * in, ds.n - change_at, ds.c, ds.h, ds.w);

    odl_zscore_drift z;
    odl_ph_drift ph;
    odl_zscore_cfg zc = odl_zscore_cfg_defaults();
    odl_ph_cfg pc = odl_ph_cfg_defaults();
    if (odl_zscore_init(&z, &zc, &d) != ODL_OK || odl_ph_init(&ph, &pc, &d) != ODL_OK) {
        fprintf(stderr, "drift_watch: %s\n", d.msg);
        return 1;
    }
    const char *names[2] = {"zscore", "page-hinkley"};
    int32_t false_alarms[2] = {0, 0}, first[2] = {-1, -1}, after[2] = {0, 0};
    for (int32_t i = 0; i < ds.n; i++) {
        float mean, std;
        if (odl_drift_sample_stats(ds.x + (size_t)i * in, in, &mean, &std) != ODL_OK)
            continue;
        odl_status r[2] = {odl_zscore_update(&z, std), odl_ph_update(&ph, std)};
        for (int k = 0; k < 2; k++) {
            if (r[k] != ODL_EVENT_DRIFT)
                continue;
            if (i < change_at) {
                false_alarms[k]++;
                printf("%-12s alarm at sample %d, before the change (false alarm)\n", names[k], (int)i);
            } else {
                if (first[k] < 0) {
                    first[k] = i;
                    printf("%-12s drift detected at sample %d: %d samples after the change\n", names[k], (int)i,
                           (int)(i - change_at));
                }
                after[k]++;
            }
        }
    }
    printf("stream: %d test images, gain:0.8,0.1 from sample %d on; statistic: per-sample std\n", (int)ds.n,
           (int)change_at);
    for (int k = 0; k < 2; k++)
        printf("%-12s false alarms %d, first alarm after the change %d (delay %d), alarms after %d\n", names[k],
               (int)false_alarms[k], (int)first[k], first[k] < 0 ? -1 : (int)(first[k] - change_at),
               (int)after[k]);
    printf("detector state: %zu bytes (zscore), %zu bytes (page-hinkley)\n", sizeof z, sizeof ph);
    odl_dataset_free(&ds);
    int ok = false_alarms[0] == 0 && false_alarms[1] == 0 && first[0] >= 0;
    printf("drift_watch: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
