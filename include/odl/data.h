/* odl/data.h — datasets for the host tool (HOST ONLY: uses stdio, malloc, zlib).
 *
 * Readers for MNIST-style IDX files (plain or gzip) and CSV (label first,
 * then features, optional header line). Shapes and class counts come from
 * the data, never from assumptions. Pixels of u8 IDX files are scaled x/255. */
#ifndef ODL_DATA_H
#define ODL_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odl_dataset {
    int32_t n;             /* samples */
    int32_t c, h, w;       /* shape of one sample; CSV without --shape: 1×1×n_features */
    int32_t n_classes;     /* max label + 1 over the file (before filtering) */
    float *x;              /* n × c*h*w, malloc'd */
    int32_t *y;            /* n labels, malloc'd */
} odl_dataset;

#define ODL_MAX_CLASSES 4096

/* A set of class labels, parsed from "0-7", "1,3,5", "0-3,8,9". */
typedef struct odl_class_set {
    int32_t any;                     /* 1: no filter */
    uint8_t member[ODL_MAX_CLASSES];
} odl_class_set;

odl_status odl_class_set_parse(const char *spec, odl_class_set *s, odl_diag *d);

typedef enum odl_split { ODL_SPLIT_AUTO = 0, ODL_SPLIT_TRAIN, ODL_SPLIT_TEST } odl_split;

typedef struct odl_data_opts {
    odl_split split;       /* for a directory: train-* or t10k-* files */
    odl_split default_split; /* what AUTO means for this command (train: TRAIN, eval: TEST) */
    int32_t c, h, w;       /* shape override (CSV: --shape); 0 = from the data */
    const odl_class_set *classes; /* NULL = all */
    int32_t limit;         /* keep at most this many samples (after filtering); 0 = all */
    size_t max_bytes;      /* memory limit: the decoded samples and the (decompressed) bytes read
                              may not exceed it; 0 = ODL_DATA_MAX_BYTES_DEFAULT */
    const char *label_col; /* CSV: the label's column, a number from 1 or a header name;
                              NULL = the header's "label" column, else the first */
} odl_data_opts;

/* 4 GiB: a dataset that fits a laptop's memory several times over. */
#define ODL_DATA_MAX_BYTES_DEFAULT ((size_t)4 << 30)

odl_data_opts odl_data_opts_defaults(void);

/* Loads PATH: a directory holding MNIST-style names (train-images-idx3-ubyte[.gz],
 * train-labels-idx1-ubyte[.gz], t10k-...), an IDX images file (its labels file
 * found beside it by replacing "images" with "labels" and idx3 with idx1), or
 * a .csv file. Errors name the file and what is wrong with it. */
odl_status odl_data_load(const char *path, const odl_data_opts *opts,
                         odl_dataset *out, odl_diag *d);

/* Readers the loader uses, exposed for tests. */
odl_status odl_idx_read(const char *images_path, const char *labels_path,
                        odl_dataset *out, odl_diag *d);
odl_status odl_csv_read(const char *path, odl_dataset *out, odl_diag *d);

/* Keeps only samples whose label is in `s` (order preserved). */
void odl_dataset_filter(odl_dataset *ds, const odl_class_set *s);
/* Reshapes to c×h×w (c*h*w must equal the current sample size). */
odl_status odl_dataset_reshape(odl_dataset *ds, int32_t c, int32_t h, int32_t w, odl_diag *d);
void odl_dataset_free(odl_dataset *ds);

/* A data shift, as the experiments apply to simulate a drifted sensor:
 *   "gain:A,B"        x' = clip(A·x + B, 0, 1)
 *   "translate:DX,DY" the image moved DX pixels right and DY down, zero fill
 *                     (negative values move left/up) */
typedef struct odl_shift {
    int32_t kind; /* 0 none, 1 gain, 2 translate */
    float a, b;
    int32_t dx, dy;
} odl_shift;

odl_status odl_shift_parse(const char *spec, odl_shift *s, odl_diag *d);
/* Applies a shift in place to n samples of c×h×w. */
void odl_shift_apply(const odl_shift *s, float *x, int32_t n, int32_t c, int32_t h, int32_t w);
void odl_dataset_shift(odl_dataset *ds, const odl_shift *s);
/* Copies ds (x and y) into out; returns ODL_ERR_NOMEM on allocation failure. */
odl_status odl_dataset_copy(const odl_dataset *ds, odl_dataset *out);


/* .npy arrays (NumPy's format, version 1.0 to 3.0): float32 little-endian
 * ('<f4'), C order, rank 1 to 4. The reader checks the header strictly
 * (magic, version, dict keys, shape values) and the payload size against
 * the file; the writer writes atomically (PATH.tmp, then rename). */
#define ODL_NPY_MAX_RANK 4
typedef struct odl_npy {
    int32_t rank;
    int64_t dims[ODL_NPY_MAX_RANK];
    size_t count;  /* product of dims */
    float *data;   /* malloc'd */
} odl_npy;

odl_status odl_npy_parse(const void *buf, size_t len, odl_npy *out, odl_diag *d);
odl_status odl_npy_read(const char *path, odl_npy *out, odl_diag *d);
odl_status odl_npy_write(const char *path, const float *data, int32_t rank, const int64_t *dims,
                         odl_diag *d);
void odl_npy_free(odl_npy *a);
/* A dataset from a .npy array of samples: (N, C, H, W), (N, C, L) as
 * C x L x 1, or (N, F) as 1 x 1 x F like CSV features; labels are 0 and
 * n_classes 0 (the array holds inputs only). */
odl_status odl_npy_load_dataset(const char *path, odl_dataset *out, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
