/* Dataset readers: IDX (plain/gzip), CSV, class sets, filtering, loading. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "odl/data.h"

/* ------------------------------------------------------------------ */
/* fixtures                                                            */

typedef struct tmpdir {
    char path[256];
} tmpdir;

static int tmp_make(tmpdir *td)
{
    snprintf(td->path, sizeof td->path, "/tmp/odl_test_data_XXXXXX");
    return mkdtemp(td->path) != NULL;
}

/* Removes the directory and the files (and one level of subdirectories) in it. */
static void rm_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(dir)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat sb;
            if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                rm_tree(p);
            else
                unlink(p);
        }
        closedir(dir);
    }
    rmdir(path);
}

static void tmp_path(const tmpdir *td, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", td->path, name);
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int write_text(const char *path, const char *text)
{
    return write_file(path, text, strlen(text));
}

static int write_gz(const char *path, const void *data, size_t n)
{
    gzFile gz = gzopen(path, "wb");
    if (!gz)
        return 0;
    int ok = n == 0 || gzwrite(gz, data, (unsigned)n) == (int)n;
    return gzclose(gz) == Z_OK && ok;
}

static int read_whole(const char *path, unsigned char *buf, size_t cap, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    *n = fread(buf, 1, cap, f);
    fclose(f);
    return 1;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

#define NI 5
#define IH 3
#define IW 4

/* A valid images file: NI images of IH x IW, pixel = (i*IH*IW + k) * 4 % 256. */
static size_t make_images(unsigned char *buf)
{
    put_be32(buf, 0x00000803u);
    put_be32(buf + 4, NI);
    put_be32(buf + 8, IH);
    put_be32(buf + 12, IW);
    for (size_t k = 0; k < (size_t)NI * IH * IW; k++)
        buf[16 + k] = k == 7 ? 255 : (unsigned char)((k * 4) % 256);
    return 16 + (size_t)NI * IH * IW;
}

static const unsigned char k_labels[NI] = {3, 0, 7, 3, 1};

static size_t make_labels(unsigned char *buf, uint32_t n)
{
    put_be32(buf, 0x00000801u);
    put_be32(buf + 4, n);
    for (uint32_t i = 0; i < n; i++)
        buf[8 + i] = k_labels[i % NI];
    return 8 + n;
}

static int is_zeroed(const odl_dataset *ds)
{
    return ds->n == 0 && ds->c == 0 && ds->h == 0 && ds->w == 0 && ds->n_classes == 0 &&
           ds->x == NULL && ds->y == NULL;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void check_small_dataset(odl_test_ctx *t, const odl_dataset *ds, const unsigned char *img)
{
    CHECK(ds->n == NI);
    CHECK(ds->c == 1);
    CHECK(ds->h == IH);
    CHECK(ds->w == IW);
    CHECK(ds->n_classes == 8);
    REQUIRE(ds->x && ds->y);
    for (int i = 0; i < NI; i++)
        CHECK(ds->y[i] == k_labels[i]);
    int bad = 0;
    for (size_t k = 0; k < (size_t)NI * IH * IW; k++)
        if (ds->x[k] != (float)img[16 + k] / 255.0f)
            bad++;
    CHECK(bad == 0);
    CHECK(ds->x[7] == 1.0f);
    CHECK(ds->x[0] == 0.0f);
}

/* ------------------------------------------------------------------ */
/* IDX                                                                 */

static void test_idx_plain_and_gzip(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300], gi[300], gl[300];
    tmp_path(&td, "a-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "a-labels-idx1-ubyte", pl, sizeof pl);
    tmp_path(&td, "b-images-idx3-ubyte.gz", gi, sizeof gi);
    tmp_path(&td, "b-labels-idx1-ubyte.gz", gl, sizeof gl);
    REQUIRE(write_file(pi, img, ni) && write_file(pl, lab, nl));
    REQUIRE(write_gz(gi, img, ni) && write_gz(gl, lab, nl));

    odl_dataset ds;
    odl_diag d;
    odl_diag_clear(&d);
    CHECK_OK(odl_idx_read(pi, pl, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);
    CHECK(is_zeroed(&ds));

    CHECK_OK(odl_idx_read(gi, gl, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);

    /* mixed: gzip images, plain labels */
    CHECK_OK(odl_idx_read(gi, pl, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);

    /* the loader on an images file finds the labels beside it */
    CHECK_OK(odl_data_load(pi, NULL, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);
    CHECK_OK(odl_data_load(gi, NULL, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);

    /* a labels file given as the images: a clear error */
    CHECK(odl_data_load(pl, NULL, &ds, &d) == ODL_ERR_ARG);
    CHECK(starts_with(d.msg, pl));
    CHECK(is_zeroed(&ds));
    rm_tree(td.path);
}

static void test_idx_two_dims(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[64], lab[64];
    put_be32(img, 0x00000802u);
    put_be32(img + 4, 2);
    put_be32(img + 8, 6);
    for (int k = 0; k < 12; k++)
        img[12 + k] = (unsigned char)(k * 20);
    size_t nl = make_labels(lab, 2);
    char pi[300], pl[300];
    tmp_path(&td, "f-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "f-labels-idx1-ubyte", pl, sizeof pl);
    REQUIRE(write_file(pi, img, 24) && write_file(pl, lab, nl));
    odl_dataset ds;
    odl_diag d;
    CHECK_OK(odl_idx_read(pi, pl, &ds, &d));
    CHECK(ds.n == 2 && ds.c == 1 && ds.h == 1 && ds.w == 6);
    CHECK(ds.n_classes == 4);
    CHECK_NEAR(ds.x[11], 220.0 / 255.0, 1e-6);
    odl_dataset_free(&ds);
    rm_tree(td.path);
}

static void test_idx_bad_magic(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300];
    tmp_path(&td, "train-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "train-labels-idx1-ubyte", pl, sizeof pl);
    REQUIRE(write_file(pl, lab, nl));
    odl_dataset ds;
    odl_diag d;

    put_be32(img, 0x00000804u);
    REQUIRE(write_file(pi, img, ni));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
    CHECK(d.status == ODL_ERR_FORMAT);
    CHECK(starts_with(d.msg, pi));
    CHECK(strstr(d.msg, "bad magic 0x00000804 (expected 0x00000803 for u8 images)") != NULL);
    CHECK(is_zeroed(&ds));

    /* labels given where images are expected */
    CHECK(odl_idx_read(pl, pl, &ds, &d) == ODL_ERR_FORMAT);
    CHECK(strstr(d.msg, "bad magic 0x00000801") != NULL);
    CHECK(strstr(d.msg, "labels file") != NULL);

    /* a float IDX: valid format, unsupported element type */
    put_be32(img, 0x00000D03u);
    REQUIRE(write_file(pi, img, ni));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_UNSUPPORTED);
    CHECK(starts_with(d.msg, pi));

    /* bad labels magic */
    put_be32(img, 0x00000803u);
    REQUIRE(write_file(pi, img, ni));
    put_be32(lab, 0x00000803u);
    REQUIRE(write_file(pl, lab, nl));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
    CHECK(starts_with(d.msg, pl));
    CHECK(strstr(d.msg, "expected 0x00000801 for u8 labels") != NULL);

    /* text instead of IDX */
    REQUIRE(write_text(pi, "hello, world\n"));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
    CHECK(is_zeroed(&ds));
    rm_tree(td.path);
}

/* Every proper prefix of a valid file must fail cleanly. */
static void truncation_sweep(odl_test_ctx *t, int gzip, int cut_labels)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64], whole[1024];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300], full[300];
    tmp_path(&td, gzip ? "x-images-idx3-ubyte.gz" : "x-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, gzip ? "x-labels-idx1-ubyte.gz" : "x-labels-idx1-ubyte", pl, sizeof pl);
    tmp_path(&td, "full", full, sizeof full);
    const unsigned char *src = cut_labels ? lab : img;
    size_t src_n = cut_labels ? nl : ni;
    /* the bytes on disk: raw or compressed */
    size_t disk_n = 0;
    if (gzip) {
        REQUIRE(write_gz(full, src, src_n));
        REQUIRE(read_whole(full, whole, sizeof whole, &disk_n));
    } else {
        memcpy(whole, src, src_n);
        disk_n = src_n;
    }
    REQUIRE(disk_n > 0 && disk_n < sizeof whole);
    const char *cut_path = cut_labels ? pl : pi;
    const char *other_path = cut_labels ? pi : pl;
    if (gzip)
        REQUIRE(write_gz(other_path, cut_labels ? img : lab, cut_labels ? ni : nl));
    else
        REQUIRE(write_file(other_path, cut_labels ? img : lab, cut_labels ? ni : nl));

    int failures = 0, wrong_msg = 0, wrong_code = 0;
    for (size_t len = 0; len < disk_n; len++) {
        REQUIRE(write_file(cut_path, whole, len));
        odl_dataset ds;
        odl_diag d;
        odl_diag_clear(&d);
        odl_status st = odl_idx_read(pi, pl, &ds, &d);
        if (st >= 0)
            failures++;
        if (!is_zeroed(&ds)) {
            failures++;
            odl_dataset_free(&ds);
        }
        if (!starts_with(d.msg, cut_path))
            wrong_msg++;
        if (!gzip && st != ODL_ERR_TRUNCATED)
            wrong_code++;
        if (gzip && st != ODL_ERR_TRUNCATED && st != ODL_ERR_FORMAT)
            wrong_code++;
        if ((failures || wrong_msg || wrong_code) && len < 3000) {
            if (failures + wrong_msg + wrong_code == 1)
                odl_test_logf(t, "    len %zu: status %d, msg '%s'", len, (int)st, d.msg);
        }
    }
    CHECK(failures == 0);
    CHECK(wrong_msg == 0);
    CHECK(wrong_code == 0);

    /* the full file loads */
    REQUIRE(write_file(cut_path, whole, disk_n));
    odl_dataset ds;
    odl_diag d;
    CHECK_OK(odl_idx_read(pi, pl, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);

    /* one extra byte (plain) is an error too */
    if (!gzip) {
        whole[disk_n] = 0;
        REQUIRE(write_file(cut_path, whole, disk_n + 1));
        CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
        CHECK(strstr(d.msg, "unexpected data") != NULL);
    }
    rm_tree(td.path);
}

static void test_idx_truncated_plain_images(odl_test_ctx *t) { truncation_sweep(t, 0, 0); }
static void test_idx_truncated_plain_labels(odl_test_ctx *t) { truncation_sweep(t, 0, 1); }
static void test_idx_truncated_gzip_images(odl_test_ctx *t) { truncation_sweep(t, 1, 0); }
static void test_idx_truncated_gzip_labels(odl_test_ctx *t) { truncation_sweep(t, 1, 1); }

static void test_idx_truncated_message(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300];
    tmp_path(&td, "m-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "m-labels-idx1-ubyte", pl, sizeof pl);
    REQUIRE(write_file(pi, img, ni - 10) && write_file(pl, lab, nl));
    odl_dataset ds;
    odl_diag d;
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_TRUNCATED);
    char want[128];
    snprintf(want, sizeof want, "expected %zu bytes", ni);
    CHECK(strstr(d.msg, want) != NULL);
    snprintf(want, sizeof want, "got %zu", ni - 10);
    CHECK(strstr(d.msg, want) != NULL);
    CHECK(starts_with(d.msg, pi));
    CHECK(strchr(d.msg, '\n') == NULL);
    rm_tree(td.path);
}

static void test_idx_count_mismatch(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI - 1);
    char pi[300], pl[300];
    tmp_path(&td, "c-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "c-labels-idx1-ubyte", pl, sizeof pl);
    REQUIRE(write_file(pi, img, ni) && write_file(pl, lab, nl));
    odl_dataset ds;
    odl_diag d;
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
    CHECK(starts_with(d.msg, pl));
    CHECK(strstr(d.msg, "4 labels") != NULL);
    CHECK(strstr(d.msg, "5 images") != NULL);
    CHECK(is_zeroed(&ds));
    rm_tree(td.path);
}

static void test_idx_huge_dims(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300];
    tmp_path(&td, "h-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "h-labels-idx1-ubyte", pl, sizeof pl);
    REQUIRE(write_file(pl, lab, nl));
    const uint32_t cases[][3] = {
        {0xFFFFFFFFu, 28, 28},             /* count beyond int32 */
        {5, 0xFFFFFFFFu, 0xFFFFFFFFu},     /* h*w overflows 32 bits */
        {5, 0x10000u, 0x10000u},           /* h*w = 2^32 */
        {0x7FFFFFFFu, 0x10000u, 0x8000u},  /* h*w = 2^31, beyond int32 */
        {3, 0xFFFFFFFFu, 1},               /* h beyond int32 */
        {0, 3, 4},                         /* no images */
        {5, 0, 4},                         /* zero dimension */
        {5, 3, 0},
    };
    odl_dataset ds;
    odl_diag d;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_be32(img + 4, cases[i][0]);
        put_be32(img + 8, cases[i][1]);
        put_be32(img + 12, cases[i][2]);
        REQUIRE(write_file(pi, img, ni));
        odl_status st = odl_idx_read(pi, pl, &ds, &d);
        if (st != ODL_ERR_FORMAT || !starts_with(d.msg, pi))
            odl_test_logf(t, "    case %zu: status %d, msg '%s'", i, (int)st, d.msg);
        CHECK(st == ODL_ERR_FORMAT);
        CHECK(starts_with(d.msg, pi));
        CHECK(is_zeroed(&ds));
    }
    /* plausible but enormous: the header claims 2^31-1 images of 28x28 in a
     * tiny file. Must fail as truncated without allocating terabytes. */
    put_be32(img + 4, 0x7FFFFFFFu);
    put_be32(img + 8, 28);
    put_be32(img + 12, 28);
    REQUIRE(write_file(pi, img, ni));
    put_be32(lab + 4, 0x7FFFFFFFu);
    REQUIRE(write_file(pl, lab, nl));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_TRUNCATED);
    CHECK(starts_with(d.msg, pi) || starts_with(d.msg, pl)); /* both are broken: either is named */
    CHECK(is_zeroed(&ds));
    rm_tree(td.path);
}

static void test_idx_corrupt_gzip(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64], gz[1024], bad[1024];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300];
    tmp_path(&td, "z-images-idx3-ubyte.gz", pi, sizeof pi);
    tmp_path(&td, "z-labels-idx1-ubyte", pl, sizeof pl);
    REQUIRE(write_gz(pi, img, ni) && write_file(pl, lab, nl));
    size_t gn = 0;
    REQUIRE(read_whole(pi, gz, sizeof gz, &gn));
    REQUIRE(gn > 18);
    /* flip every byte after the 10-byte gzip header (mtime/OS bytes in the
     * header are not checked by gzip itself) */
    int accepted = 0, wrong_msg = 0;
    for (size_t pos = 10; pos < gn; pos++) {
        memcpy(bad, gz, gn);
        bad[pos] ^= 0xFF;
        REQUIRE(write_file(pi, bad, gn));
        odl_dataset ds;
        odl_diag d;
        odl_diag_clear(&d);
        odl_status st = odl_idx_read(pi, pl, &ds, &d);
        if (st >= 0) {
            accepted++;
            odl_dataset_free(&ds);
        } else if (!starts_with(d.msg, pi) || !is_zeroed(&ds)) {
            wrong_msg++;
        }
    }
    CHECK(accepted == 0);
    CHECK(wrong_msg == 0);
    /* garbage after a valid gzip magic */
    memcpy(bad, gz, 2);
    memset(bad + 2, 0xA5, 100);
    REQUIRE(write_file(pi, bad, 102));
    odl_dataset ds;
    odl_diag d;
    CHECK(odl_idx_read(pi, pl, &ds, &d) < 0);
    CHECK(starts_with(d.msg, pi));
    CHECK(is_zeroed(&ds));
    rm_tree(td.path);
}

/* Large enough that zlib decompresses straight into the caller's buffer:
 * a gzip file missing (part of) its 8-byte trailer must still be caught. */
static void test_idx_gzip_trailer_large(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    const uint32_t n = 1000, hw = 28;
    size_t ni = 16 + (size_t)n * hw * hw;
    unsigned char *img = malloc(ni);
    unsigned char *gz = malloc(ni + 4096);
    REQUIRE(img && gz);
    put_be32(img, 0x00000803u);
    put_be32(img + 4, n);
    put_be32(img + 8, hw);
    put_be32(img + 12, hw);
    uint32_t r = 12345;
    for (size_t k = 16; k < ni; k++) {
        r = r * 1103515245u + 12345u;
        img[k] = (unsigned char)((r >> 16) & 0x3F);
    }
    unsigned char lab[8 + 1000];
    size_t nl = 8 + n;
    put_be32(lab, 0x00000801u);
    put_be32(lab + 4, n);
    for (uint32_t i = 0; i < n; i++)
        lab[8 + i] = (unsigned char)(i % 10);
    char pi[300], pl[300];
    tmp_path(&td, "L-images-idx3-ubyte.gz", pi, sizeof pi);
    tmp_path(&td, "L-labels-idx1-ubyte", pl, sizeof pl);
    int ok = write_gz(pi, img, ni) && write_file(pl, lab, nl);
    size_t gn = 0;
    ok = ok && read_whole(pi, gz, ni + 4096, &gn) && gn > 64 && gn < ni + 4096;
    odl_dataset ds;
    odl_diag d;
    if (ok) {
        CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_OK);
        CHECK(ds.n == 1000 && ds.h == 28 && ds.n_classes == 10);
        CHECK(ds.x[784 * 999 + 783] == (float)img[ni - 1] / 255.0f);
        odl_dataset_free(&ds);
        for (size_t cut = 1; cut <= 20; cut++) {
            ok = write_file(pi, gz, gn - cut);
            odl_status st = odl_idx_read(pi, pl, &ds, &d);
            if (st != ODL_ERR_TRUNCATED)
                odl_test_logf(t, "    cut %zu: status %d, msg '%s'", cut, (int)st, d.msg);
            CHECK(st == ODL_ERR_TRUNCATED);
            CHECK(is_zeroed(&ds));
        }
        /* a corrupted CRC in the trailer */
        gz[gn - 6] ^= 1;
        ok = ok && write_file(pi, gz, gn);
        CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
        CHECK(strstr(d.msg, "gzip") != NULL);
        CHECK(is_zeroed(&ds));
    }
    CHECK(ok);
    free(img);
    free(gz);
    rm_tree(td.path);
}

static void test_idx_missing_files(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512];
    size_t ni = make_images(img);
    char pi[300], pl[300];
    tmp_path(&td, "q-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "q-labels-idx1-ubyte", pl, sizeof pl);
    odl_dataset ds;
    odl_diag d;
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_NOT_FOUND);
    CHECK(starts_with(d.msg, pi));
    CHECK(strstr(d.msg, "No such file") != NULL);
    REQUIRE(write_file(pi, img, ni));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_NOT_FOUND);
    CHECK(starts_with(d.msg, pl));
    /* the loader: labels beside the images file are missing */
    CHECK(odl_data_load(pi, NULL, &ds, &d) == ODL_ERR_NOT_FOUND);
    CHECK(starts_with(d.msg, pi));
    CHECK(strstr(d.msg, "q-labels-idx1-ubyte") != NULL);
    /* a path that does not exist at all */
    tmp_path(&td, "nope.csv", pi, sizeof pi);
    CHECK(odl_data_load(pi, NULL, &ds, &d) == ODL_ERR_NOT_FOUND);
    CHECK(starts_with(d.msg, pi));
    CHECK(is_zeroed(&ds));
    /* a directory given as the images file */
    CHECK(odl_idx_read(td.path, pl, &ds, &d) < 0);
    CHECK(is_zeroed(&ds));
    rm_tree(td.path);
}

static void test_idx_directory_split(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64], img2[512], lab2[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    /* the test split: 2 images of 3x4 */
    memcpy(img2, img, 16 + 2 * IH * IW);
    put_be32(img2 + 4, 2);
    size_t nl2 = make_labels(lab2, 2);
    char p[300];
    tmp_path(&td, "train-images-idx3-ubyte.gz", p, sizeof p);
    REQUIRE(write_gz(p, img, ni));
    tmp_path(&td, "train-labels-idx1-ubyte.gz", p, sizeof p);
    REQUIRE(write_gz(p, lab, nl));
    tmp_path(&td, "t10k-images-idx3-ubyte", p, sizeof p);
    REQUIRE(write_file(p, img2, 16 + 2 * IH * IW));
    tmp_path(&td, "t10k-labels-idx1-ubyte", p, sizeof p);
    REQUIRE(write_file(p, lab2, nl2));

    odl_dataset ds;
    odl_diag d;
    odl_data_opts o = odl_data_opts_defaults();
    CHECK(o.split == ODL_SPLIT_AUTO && o.default_split == ODL_SPLIT_TRAIN && o.limit == 0 &&
          o.classes == NULL && o.c == 0);
    CHECK_OK(odl_data_load(td.path, &o, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);

    o.split = ODL_SPLIT_TEST;
    CHECK_OK(odl_data_load(td.path, &o, &ds, &d));
    CHECK(ds.n == 2 && ds.h == IH && ds.w == IW);
    CHECK(ds.n_classes == 4);
    odl_dataset_free(&ds);

    o.split = ODL_SPLIT_AUTO;
    o.default_split = ODL_SPLIT_TEST;
    CHECK_OK(odl_data_load(td.path, &o, &ds, &d));
    CHECK(ds.n == 2);
    odl_dataset_free(&ds);

    o.default_split = ODL_SPLIT_AUTO; /* AUTO twice: train */
    CHECK_OK(odl_data_load(td.path, &o, &ds, &d));
    CHECK(ds.n == NI);
    odl_dataset_free(&ds);

    /* remove the test labels: a clear not-found naming the directory */
    tmp_path(&td, "t10k-labels-idx1-ubyte", p, sizeof p);
    unlink(p);
    o.split = ODL_SPLIT_TEST;
    CHECK(odl_data_load(td.path, &o, &ds, &d) == ODL_ERR_NOT_FOUND);
    CHECK(starts_with(d.msg, td.path));
    CHECK(strstr(d.msg, "t10k-labels-idx1-ubyte") != NULL);
    CHECK(is_zeroed(&ds));
    rm_tree(td.path);
}

/* ------------------------------------------------------------------ */
/* CSV                                                                 */

static odl_status csv_from(const tmpdir *td, const char *text, odl_dataset *ds, odl_diag *d,
                           char *path, size_t cap)
{
    tmp_path(td, "data.csv", path, cap);
    if (!write_text(path, text))
        return ODL_ERR_IO;
    odl_diag_clear(d);
    return odl_csv_read(path, ds, d);
}

static void test_csv_basic(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char p[300];
    odl_dataset ds;
    odl_diag d;

    /* with a header, \r\n endings, blank trailing lines, spaces around fields */
    CHECK_OK(csv_from(&td, "label,f1,f2,f3\r\n1,0.5,-2,3e2\r\n0, 1 ,2,  3\r\n4,7,8,9\r\n\r\n\n", &ds,
                      &d, p, sizeof p));
    CHECK(ds.n == 3 && ds.c == 1 && ds.h == 1 && ds.w == 3);
    CHECK(ds.n_classes == 5);
    REQUIRE(ds.x && ds.y);
    CHECK(ds.y[0] == 1 && ds.y[1] == 0 && ds.y[2] == 4);
    CHECK(ds.x[0] == 0.5f && ds.x[1] == -2.0f && ds.x[2] == 300.0f);
    CHECK(ds.x[3] == 1.0f && ds.x[8] == 9.0f);
    odl_dataset_free(&ds);

    /* without a header, no final newline, integral float labels */
    CHECK_OK(csv_from(&td, "2,1,2\n2.0,3,4", &ds, &d, p, sizeof p));
    CHECK(ds.n == 2 && ds.w == 2 && ds.n_classes == 3);
    CHECK(ds.x[3] == 4.0f);
    odl_dataset_free(&ds);

    /* many rows (buffer growth) */
    {
        size_t cap = 400 * 32 + 1;
        char *big = malloc(cap);
        REQUIRE(big);
        size_t n = 0;
        for (int i = 0; i < 400; i++)
            n += (size_t)snprintf(big + n, cap - n, "%d,%d,%d.25\n", i % 10, i, -i);
        tmp_path(&td, "big.csv", p, sizeof p);
        int ok = write_text(p, big);
        free(big);
        REQUIRE(ok);
        CHECK_OK(odl_csv_read(p, &ds, &d));
        CHECK(ds.n == 400 && ds.w == 2 && ds.n_classes == 10);
        CHECK(ds.x[2 * 399] == 399.0f && ds.x[2 * 399 + 1] == -399.25f);
        CHECK(ds.y[399] == 9);
        odl_dataset_free(&ds);
    }

    /* gzip-compressed CSV through the loader */
    {
        const char *txt = "y,a\n1,0.5\n0,0.25\n";
        tmp_path(&td, "small.csv.gz", p, sizeof p);
        REQUIRE(write_gz(p, txt, strlen(txt)));
        CHECK_OK(odl_data_load(p, NULL, &ds, &d));
        CHECK(ds.n == 2 && ds.w == 1 && ds.x[1] == 0.25f);
        odl_dataset_free(&ds);
    }
    rm_tree(td.path);
}

typedef struct csv_bad_case {
    const char *text;
    odl_status status;
    const char *where; /* expected in the message after the path, e.g. ":3:" */
} csv_bad_case;

static void test_csv_errors(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    const csv_bad_case cases[] = {
        {"", ODL_ERR_FORMAT, "empty file"},
        {"\n\n\r\n", ODL_ERR_FORMAT, "no data rows"},
        {"label,a,b\n", ODL_ERR_FORMAT, "only a header"},
        {"1,2,3\n0,4\n", ODL_ERR_FORMAT, ":2:"},               /* ragged: fewer */
        {"1,2,3\n0,4,5,6\n", ODL_ERR_FORMAT, ":2:"},           /* ragged: more */
        {"h,a\n1,2\n0,abc\n", ODL_ERR_FORMAT, ":3:"},          /* non-numeric */
        {"1,2\n0,3x\n", ODL_ERR_FORMAT, ":2:"},                /* trailing junk */
        {"1,2\n0,\n", ODL_ERR_FORMAT, ":2:"},                  /* empty field */
        {"1,2\n-1,3\n", ODL_ERR_FORMAT, "negative"},          /* negative label */
        {"1,2\n1.5,3\n", ODL_ERR_FORMAT, "not an integer"},   /* non-integer label */
        {"1,2\nx,3\n", ODL_ERR_FORMAT, ":2:"},                 /* label not a number */
        {"1,2\nnan,3\n", ODL_ERR_FORMAT, "not a number"},
        {"1,2\n,3\n", ODL_ERR_FORMAT, ":2:"},                  /* empty label */
        {"5000,1\n", ODL_ERR_FORMAT, "too large"},             /* label out of range */
        {"1\n", ODL_ERR_FORMAT, "no features"},
        {"1,nan\n", ODL_ERR_NUMERIC, ":1:"},
        {"1,inf\n", ODL_ERR_NUMERIC, ":1:"},
        {"1,1e60\n", ODL_ERR_NUMERIC, ":1:"},                  /* overflows float */
        {"1,2\n\n0,3\n", ODL_ERR_FORMAT, ":2:"},               /* blank line inside */
        {"1,2\n0,3\nlabel,x\n", ODL_ERR_FORMAT, ":3:"},        /* header not first */
        {"1,2\n0;3\n", ODL_ERR_FORMAT, ":2:"},                 /* wrong separator */
    };
    char p[300];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        odl_dataset ds;
        odl_diag d;
        odl_status st = csv_from(&td, cases[i].text, &ds, &d, p, sizeof p);
        int ok = st == cases[i].status && starts_with(d.msg, p) &&
                 strstr(d.msg + strlen(p), cases[i].where) != NULL && is_zeroed(&ds) &&
                 strchr(d.msg, '\n') == NULL;
        if (!ok)
            odl_test_logf(t, "    case %zu: status %d, msg '%s'", i, (int)st, d.msg);
        CHECK(ok);
        if (st == ODL_OK)
            odl_dataset_free(&ds);
    }
    /* embedded NUL byte */
    {
        const char bin[] = "1,2\n0,3\0" "4\n";
        tmp_path(&td, "nul.csv", p, sizeof p);
        REQUIRE(write_file(p, bin, sizeof bin - 1));
        odl_dataset ds;
        odl_diag d;
        CHECK(odl_csv_read(p, &ds, &d) == ODL_ERR_FORMAT);
        CHECK(is_zeroed(&ds));
    }
    rm_tree(td.path);
}

static void test_csv_shape(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char p[300];
    tmp_path(&td, "img.csv", p, sizeof p);
    REQUIRE(write_text(p, "label,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,p10,p11\n"
                          "1,0,1,2,3,4,5,6,7,8,9,10,11\n"
                          "0,1,1,1,1,1,1,1,1,1,1,1,1\n"));
    odl_dataset ds;
    odl_diag d;
    odl_data_opts o = odl_data_opts_defaults();
    CHECK_OK(odl_data_load(p, &o, &ds, &d));
    CHECK(ds.c == 1 && ds.h == 1 && ds.w == 12);
    odl_dataset_free(&ds);

    o.c = 3;
    o.h = 2;
    o.w = 2;
    CHECK_OK(odl_data_load(p, &o, &ds, &d));
    CHECK(ds.n == 2 && ds.c == 3 && ds.h == 2 && ds.w == 2);
    CHECK(ds.x[11] == 11.0f);
    odl_dataset_free(&ds);

    o.c = 1;
    o.h = 3;
    o.w = 3;
    CHECK(odl_data_load(p, &o, &ds, &d) == ODL_ERR_SHAPE);
    CHECK(starts_with(d.msg, p));
    CHECK(strstr(d.msg, "1x3x3") != NULL);
    CHECK(strstr(d.msg, "12") != NULL);
    CHECK(is_zeroed(&ds));

    o.c = 2;
    o.h = 0;
    o.w = 6;
    CHECK(odl_data_load(p, &o, &ds, &d) == ODL_ERR_ARG);
    CHECK(is_zeroed(&ds));

    /* reshape directly */
    CHECK_OK(odl_csv_read(p, &ds, &d));
    CHECK_OK(odl_dataset_reshape(&ds, 1, 3, 4, &d));
    CHECK(ds.c == 1 && ds.h == 3 && ds.w == 4);
    CHECK(odl_dataset_reshape(&ds, 1, 5, 5, &d) == ODL_ERR_SHAPE);
    CHECK(ds.h == 3);
    CHECK(odl_dataset_reshape(&ds, -1, -3, 4, &d) == ODL_ERR_SHAPE);
    odl_dataset_free(&ds);
    rm_tree(td.path);
}

/* ------------------------------------------------------------------ */
/* class sets, filtering, limit                                        */

static int members(const odl_class_set *s, int *out, int cap)
{
    int n = 0;
    for (int i = 0; i < ODL_MAX_CLASSES; i++)
        if (s->member[i]) {
            if (n < cap)
                out[n] = i;
            n++;
        }
    return n;
}

static void test_class_set_parse(odl_test_ctx *t)
{
    odl_class_set s;
    odl_diag d;
    int m[16];

    CHECK_OK(odl_class_set_parse("0-7", &s, &d));
    CHECK(s.any == 0);
    CHECK(members(&s, m, 16) == 8 && m[0] == 0 && m[7] == 7);

    CHECK_OK(odl_class_set_parse("1,3,5", &s, &d));
    CHECK(members(&s, m, 16) == 3 && m[0] == 1 && m[1] == 3 && m[2] == 5);

    CHECK_OK(odl_class_set_parse("0-3,8,9", &s, &d));
    CHECK(members(&s, m, 16) == 6 && m[3] == 3 && m[4] == 8 && m[5] == 9);

    CHECK_OK(odl_class_set_parse(" 2 - 4 , 6 ", &s, &d));
    CHECK(members(&s, m, 16) == 4 && m[0] == 2 && m[3] == 6);

    CHECK_OK(odl_class_set_parse("5-5", &s, &d));
    CHECK(members(&s, m, 16) == 1 && m[0] == 5);

    CHECK_OK(odl_class_set_parse("4095", &s, &d));
    CHECK(members(&s, m, 16) == 1 && m[0] == 4095);

    CHECK_OK(odl_class_set_parse("3,1-4", &s, &d)); /* overlaps are fine */
    CHECK(members(&s, m, 16) == 4);

    const char *bad[] = {"",     "   ",   "7-3",   "4096",    "0-4096", "99999999999999999999",
                         "a",    "1,",    ",1",    "1,,2",    "1-",     "-3",
                         "1-2-3", "1 2",  "0x3",   "+1",      "1.5",    "3-a",
                         "1;2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        odl_diag_clear(&d);
        odl_status st = odl_class_set_parse(bad[i], &s, &d);
        if (st != ODL_ERR_ARG || d.msg[0] == '\0')
            odl_test_logf(t, "    '%s': status %d, msg '%s'", bad[i], (int)st, d.msg);
        CHECK(st == ODL_ERR_ARG);
        CHECK(d.msg[0] != '\0');
    }
    CHECK(odl_class_set_parse(NULL, &s, &d) == ODL_ERR_ARG);
    CHECK(odl_class_set_parse("7-3", &s, &d) == ODL_ERR_ARG);
    CHECK(strstr(d.msg, "7-3") != NULL);
    CHECK(odl_class_set_parse("4096", &s, &d) == ODL_ERR_ARG);
    CHECK(strstr(d.msg, "range") != NULL);
}

static void test_filter_and_limit(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char p[300];
    tmp_path(&td, "f.csv", p, sizeof p);
    /* labels 0..9 twice, feature = row index */
    char text[1024];
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%d,%d,%d\n", i % 10, i, -i);
    REQUIRE(write_text(p, text));

    odl_class_set cs;
    odl_diag d;
    CHECK_OK(odl_class_set_parse("1,3,8-9", &cs, &d));
    odl_data_opts o = odl_data_opts_defaults();
    o.classes = &cs;
    odl_dataset ds;
    CHECK_OK(odl_data_load(p, &o, &ds, &d));
    CHECK(ds.n == 8);
    CHECK(ds.n_classes == 10); /* over the file, before filtering */
    const int want_rows[8] = {1, 3, 8, 9, 11, 13, 18, 19};
    int bad = 0;
    for (int i = 0; i < 8 && i < ds.n; i++) {
        if (ds.x[2 * i] != (float)want_rows[i] || ds.x[2 * i + 1] != -(float)want_rows[i] ||
            ds.y[i] != want_rows[i] % 10)
            bad++;
    }
    CHECK(bad == 0);
    odl_dataset_free(&ds);

    /* limit after filtering: the first 3 kept */
    o.limit = 3;
    CHECK_OK(odl_data_load(p, &o, &ds, &d));
    CHECK(ds.n == 3);
    CHECK(ds.y[0] == 1 && ds.y[1] == 3 && ds.y[2] == 8);
    CHECK(ds.x[4] == 8.0f);
    odl_dataset_free(&ds);

    /* limit without filtering; limit larger than n */
    o.classes = NULL;
    o.limit = 5;
    CHECK_OK(odl_data_load(p, &o, &ds, &d));
    CHECK(ds.n == 5 && ds.y[4] == 4);
    odl_dataset_free(&ds);
    o.limit = 1000;
    CHECK_OK(odl_data_load(p, &o, &ds, &d));
    CHECK(ds.n == 20);
    odl_dataset_free(&ds);
    o.limit = -1;
    CHECK(odl_data_load(p, &o, &ds, &d) == ODL_ERR_ARG);

    /* a filter nothing matches */
    o.limit = 0;
    CHECK_OK(odl_class_set_parse("42", &cs, &d));
    o.classes = &cs;
    CHECK(odl_data_load(p, &o, &ds, &d) == ODL_ERR_ARG);
    CHECK(starts_with(d.msg, p));
    CHECK(is_zeroed(&ds));

    /* "any" sets and NULL are no-ops */
    CHECK_OK(odl_csv_read(p, &ds, &d));
    cs.any = 1;
    odl_dataset_filter(&ds, &cs);
    CHECK(ds.n == 20);
    odl_dataset_filter(&ds, NULL);
    CHECK(ds.n == 20);
    odl_dataset_free(&ds);
    odl_dataset_free(NULL);
    rm_tree(td.path);
}

/* ------------------------------------------------------------------ */
/* the real data                                                       */

static void test_fashion_mnist(odl_test_ctx *t)
{
    struct stat sb;
    if (stat(ODL_FASHION_DIR, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        odl_test_logf(t, "    note: %s not found, skipping", ODL_FASHION_DIR);
        return;
    }
    odl_data_opts o = odl_data_opts_defaults();
    o.split = ODL_SPLIT_TEST;
    odl_dataset ds;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status st = odl_data_load(ODL_FASHION_DIR, &o, &ds, &d);
    if (st != ODL_OK)
        odl_test_logf(t, "    %s", d.msg);
    CHECK_OK(st);
    CHECK(ds.n == 10000);
    CHECK(ds.c == 1 && ds.h == 28 && ds.w == 28);
    CHECK(ds.n_classes == 10);
    float lo = 1e9f, hi = -1e9f;
    for (size_t i = 0; i < (size_t)ds.n * 784; i++) {
        if (ds.x[i] < lo)
            lo = ds.x[i];
        if (ds.x[i] > hi)
            hi = ds.x[i];
    }
    CHECK(lo == 0.0f);
    CHECK(hi == 1.0f);
    int counts[10] = {0};
    int out_of_range = 0;
    for (int i = 0; i < ds.n; i++) {
        if (ds.y[i] < 0 || ds.y[i] > 9)
            out_of_range++;
        else
            counts[ds.y[i]]++;
    }
    CHECK(out_of_range == 0);
    CHECK(counts[0] == 1000 && counts[9] == 1000); /* balanced test split */
    odl_dataset_free(&ds);

    /* the images file directly, with a filter and a limit */
    odl_class_set cs;
    CHECK_OK(odl_class_set_parse("0-7", &cs, &d));
    o = odl_data_opts_defaults();
    o.classes = &cs;
    o.limit = 500;
    CHECK_OK(odl_data_load(ODL_FASHION_DIR "/t10k-images-idx3-ubyte.gz", &o, &ds, &d));
    CHECK(ds.n == 500 && ds.n_classes == 10);
    int bad = 0;
    for (int i = 0; i < ds.n; i++)
        if (ds.y[i] > 7)
            bad++;
    CHECK(bad == 0);
    odl_dataset_free(&ds);
}

/* A CSV exported with a UTF-8 byte order mark keeps its first row. */
static void test_csv_bom(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char p[300];
    odl_dataset ds;
    odl_diag d;
    CHECK_OK(csv_from(&td, "\xEF\xBB\xBF" "1,0.5,2\n0,0.25,3\n", &ds, &d, p, sizeof p));
    CHECK(ds.n == 2 && ds.w == 2);
    if (ds.n == 2)
        CHECK(ds.y[0] == 1 && ds.x[0] == 0.5f && ds.y[1] == 0);
    odl_dataset_free(&ds);
    /* with a header line after the mark: still one header, two rows */
    CHECK_OK(csv_from(&td, "\xEF\xBB\xBF" "label,a,b\n1,0.5,2\n0,0.25,3\n", &ds, &d, p, sizeof p));
    CHECK(ds.n == 2);
    odl_dataset_free(&ds);
    rm_tree(td.path);
}

/* Appends raw bytes to a file. */
static int append_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "ab");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Bytes after the end of a gzip stream are refused (zlib's reader ignores
 * them); a second gzip member is valid gzip and is read. */
static void test_gzip_trailing_data(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300], pc[300];
    tmp_path(&td, "g-images-idx3-ubyte.gz", pi, sizeof pi);
    tmp_path(&td, "g-labels-idx1-ubyte.gz", pl, sizeof pl);
    tmp_path(&td, "g.csv.gz", pc, sizeof pc);
    odl_dataset ds;
    odl_diag d;
    const char junk[] = "trailing junk";
    const unsigned char zeros[1] = {0};
    for (int k = 0; k < 2; k++) {
        REQUIRE(write_gz(pi, img, ni) && write_gz(pl, lab, nl));
        REQUIRE(append_file(pi, k ? (const void *)zeros : junk, k ? 1 : sizeof junk - 1));
        odl_diag_clear(&d);
        CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
        CHECK(strstr(d.msg, "after the end of the gzip stream") != NULL);
        CHECK(is_zeroed(&ds));
    }
    /* the labels file too */
    REQUIRE(write_gz(pi, img, ni) && write_gz(pl, lab, nl));
    REQUIRE(append_file(pl, junk, sizeof junk - 1));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_FORMAT);
    CHECK(strstr(d.msg, "after the end of the gzip stream") != NULL);
    /* a CSV */
    const char *csv = "1,0.5\n0,0.25\n";
    REQUIRE(write_gz(pc, csv, strlen(csv)) && append_file(pc, junk, sizeof junk - 1));
    CHECK(odl_csv_read(pc, &ds, &d) == ODL_ERR_FORMAT);
    CHECK(strstr(d.msg, "after the end of the gzip stream") != NULL);
    /* two members: the images split in two gzip streams read as one */
    REQUIRE(write_gz(pi, img, 20) && write_gz(pl, lab, nl));
    {
        char part[300];
        tmp_path(&td, "part.gz", part, sizeof part);
        REQUIRE(write_gz(part, img + 20, ni - 20));
        unsigned char buf[1024];
        size_t n = 0;
        REQUIRE(read_whole(part, buf, sizeof buf, &n) && append_file(pi, buf, n));
    }
    CHECK_OK(odl_idx_read(pi, pl, &ds, &d));
    check_small_dataset(t, &ds, img);
    odl_dataset_free(&ds);
    rm_tree(td.path);
}

/* The memory limit: declared sizes are checked against the file and the
 * limit before anything is allocated; decompression stops at the limit. */
static void test_memory_limit(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    unsigned char img[512], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, NI);
    char pi[300], pl[300], pc[300];
    tmp_path(&td, "l-images-idx3-ubyte", pi, sizeof pi);
    tmp_path(&td, "l-labels-idx1-ubyte", pl, sizeof pl);
    tmp_path(&td, "l.csv", pc, sizeof pc);
    REQUIRE(write_file(pi, img, ni) && write_file(pl, lab, nl));
    odl_dataset ds;
    odl_diag d;
    odl_data_opts o = odl_data_opts_defaults();
    CHECK_OK(odl_data_load(pi, &o, &ds, &d));
    odl_dataset_free(&ds);
    o.max_bytes = (size_t)NI * IH * IW * sizeof(float) - 1; /* the floats do not fit */
    CHECK(odl_data_load(pi, &o, &ds, &d) == ODL_ERR_NOMEM);
    CHECK(strstr(d.msg, "memory limit") != NULL && starts_with(d.msg, pi));
    CHECK(is_zeroed(&ds));
    o.max_bytes = (size_t)NI * IH * IW * sizeof(float);
    CHECK_OK(odl_data_load(pi, &o, &ds, &d));
    odl_dataset_free(&ds);
    /* CSV: text and rows over the limit */
    const char *csv = "1,0.5,0.5,0.5\n0,0.25,0.25,0.25\n";
    REQUIRE(write_text(pc, csv));
    o.max_bytes = 8;
    CHECK(odl_data_load(pc, &o, &ds, &d) == ODL_ERR_NOMEM);
    CHECK(strstr(d.msg, "the text reaches the memory limit of 8 bytes") != NULL);
    o.max_bytes = strlen(csv) + 1; /* the text and its 2 x 3 floats fit */
    CHECK(odl_data_load(pc, &o, &ds, &d) == ODL_OK);
    odl_dataset_free(&ds);
    /* 40 bytes of text fit a 50-byte limit; its 4 rows of 4 floats (64 bytes) do not */
    REQUIRE(write_text(pc, "1,0,0,0,0\n1,0,0,0,0\n1,0,0,0,0\n1,0,0,0,0\n"));
    o.max_bytes = 50;
    CHECK(odl_data_load(pc, &o, &ds, &d) == ODL_ERR_NOMEM);
    CHECK(strstr(d.msg, "4 rows of 4 features") != NULL && strstr(d.msg, "memory limit of 50 bytes") != NULL);
    CHECK(is_zeroed(&ds));
    o.max_bytes = 0; /* the default */
    CHECK_OK(odl_data_load(pc, &o, &ds, &d));
    odl_dataset_free(&ds);
    /* an 8 KB header-and-data file claiming 30 images of 8192x8192: plain,
     * truncated (checked against the file's size); gzip, over the default
     * limit as floats (8 GB) — refused before allocating either way */
    unsigned char *big = calloc(8192, 1);
    REQUIRE(big);
    put_be32(big, 0x00000803u);
    put_be32(big + 4, 30);
    put_be32(big + 8, 8192);
    put_be32(big + 12, 8192);
    put_be32(lab + 4, 30);
    unsigned char lab30[64];
    memcpy(lab30, lab, 8);
    memset(lab30 + 8, 1, 30);
    REQUIRE(write_file(pi, big, 8192) && write_file(pl, lab30, 38));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_TRUNCATED);
    CHECK(strstr(d.msg, "30 images of 8192x8192") != NULL);
    tmp_path(&td, "z-images-idx3-ubyte.gz", pi, sizeof pi);
    tmp_path(&td, "z-labels-idx1-ubyte.gz", pl, sizeof pl);
    REQUIRE(write_gz(pi, big, 8192) && write_gz(pl, lab30, 38));
    CHECK(odl_idx_read(pi, pl, &ds, &d) == ODL_ERR_NOMEM);
    CHECK(strstr(d.msg, "memory limit") != NULL);
    /* under a limit below the decompressed size: refused from the header */
    o = odl_data_opts_defaults();
    o.max_bytes = (size_t)1 << 20;
    CHECK(odl_data_load(pi, &o, &ds, &d) == ODL_ERR_NOMEM);
    free(big);
    rm_tree(td.path);
}

static const odl_test_case cases[] = {
    {"csv_bom", test_csv_bom},
    {"gzip_trailing_data", test_gzip_trailing_data},
    {"memory_limit", test_memory_limit},
    {"idx_plain_and_gzip", test_idx_plain_and_gzip},
    {"idx_two_dims", test_idx_two_dims},
    {"idx_bad_magic", test_idx_bad_magic},
    {"idx_truncated_plain_images", test_idx_truncated_plain_images},
    {"idx_truncated_plain_labels", test_idx_truncated_plain_labels},
    {"idx_truncated_gzip_images", test_idx_truncated_gzip_images},
    {"idx_truncated_gzip_labels", test_idx_truncated_gzip_labels},
    {"idx_truncated_message", test_idx_truncated_message},
    {"idx_count_mismatch", test_idx_count_mismatch},
    {"idx_huge_dims", test_idx_huge_dims},
    {"idx_corrupt_gzip", test_idx_corrupt_gzip},
    {"idx_gzip_trailer_large", test_idx_gzip_trailer_large},
    {"idx_missing_files", test_idx_missing_files},
    {"idx_directory_split", test_idx_directory_split},
    {"csv_basic", test_csv_basic},
    {"csv_errors", test_csv_errors},
    {"csv_shape", test_csv_shape},
    {"class_set_parse", test_class_set_parse},
    {"filter_and_limit", test_filter_and_limit},
    {"fashion_mnist", test_fashion_mnist},
};

TEST_MAIN(cases)
