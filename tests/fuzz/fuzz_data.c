/* libFuzzer target: the host dataset readers (CSV, and IDX images + labels
 * split from one input; plain or gzip, a byte order mark, bytes after the
 * gzip stream) on arbitrary file contents, also under a small memory limit. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "odl/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int put(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[64], csv[96], img[96], lab[96];
    snprintf(dir, sizeof dir, "/tmp/odl-fuzz-%ld", (long)getpid());
    snprintf(csv, sizeof csv, "%s.csv", dir);
    snprintf(img, sizeof img, "%s-images-idx3-ubyte", dir);
    snprintf(lab, sizeof lab, "%s-labels-idx1-ubyte", dir);
    odl_dataset ds;
    odl_diag d;
    if (put(csv, data, size) && odl_csv_read(csv, &ds, &d) == ODL_OK)
        odl_dataset_free(&ds);
    /* the first byte splits the input into an images and a labels file */
    size_t cut = size ? (size_t)data[0] * size / 256 : 0;
    if (size && put(img, data + 1, cut > 0 ? cut - 1 : 0) && put(lab, data + cut, size - cut) &&
        odl_idx_read(img, lab, &ds, &d) == ODL_OK)
        odl_dataset_free(&ds);
    /* the loader with a small memory limit (byte 0 picks 256 B .. 32 KiB):
     * the declared-size, decompression and row limits */
    odl_data_opts o = odl_data_opts_defaults();
    o.max_bytes = (size_t)256 << (size ? data[0] & 7 : 0);
    if (size && odl_data_load(csv, &o, &ds, &d) == ODL_OK)
        odl_dataset_free(&ds);
    if (size && odl_data_load(img, &o, &ds, &d) == ODL_OK)
        odl_dataset_free(&ds);
    remove(csv);
    remove(img);
    remove(lab);
    return 0;
}
