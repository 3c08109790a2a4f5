/* POSIX I/O: whole-file reads, the atomic writer. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "odl/arena.h"
#include "odl/file.h"
#include "odl/model.h"
#include "odl/posix_io.h"
#include "odl/rng.h"

typedef struct tmpdir {
    char path[256];
} tmpdir;

static int tmp_make(tmpdir *td)
{
    snprintf(td->path, sizeof td->path, "/tmp/odl_test_posix_XXXXXX");
    return mkdtemp(td->path) != NULL;
}

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

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Files in `dir` whose name ends in ".tmp" (left-over temporary files). */
static int count_tmp(const char *dir)
{
    DIR *dd = opendir(dir);
    int n = 0;
    if (!dd)
        return -1;
    struct dirent *e;
    while ((e = readdir(dd)) != NULL) {
        size_t k = strlen(e->d_name);
        n += k > 4 && !strcmp(e->d_name + k - 4, ".tmp");
    }
    closedir(dd);
    return n;
}

static int read_text(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    size_t k = fread(out, 1, cap - 1, fp);
    out[k] = '\0';
    fclose(fp);
    return (int)k;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Writes `n` bytes of a pattern through the writer in uneven pieces. */
static odl_status write_pattern(odl_writer *w, size_t n, unsigned seed)
{
    unsigned char buf[1000];
    size_t done = 0, piece = 1;
    while (done < n) {
        size_t k = piece < n - done ? piece : n - done;
        if (k > sizeof buf)
            k = sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = (unsigned char)((done + i) * 31u + seed);
        odl_status st = w->write(w->ctx, buf, k);
        if (st != ODL_OK)
            return st;
        w->offset += k;
        done += k;
        piece = piece * 3 + 1;
    }
    return ODL_OK;
}

static int is_pattern(const void *data, size_t n, unsigned seed)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31u + seed))
            return 0;
    return 1;
}

static void test_write_read_back(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char path[300], tmp[1100];
    snprintf(path, sizeof path, "%s/model.odl", td.path);
    const size_t sizes[] = {0, 1, 15, 16, 17, 4096, 100003};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        odl_posix_file f;
        odl_writer w;
        odl_diag d;
        odl_diag_clear(&d);
        CHECK_OK(odl_posix_writer_open(&f, &w, path, &d));
        CHECK(w.offset == 0 && w.write != NULL && w.ctx == &f);
        snprintf(tmp, sizeof tmp, "%s", f.tmp_path);
        CHECK(exists(tmp) && starts_with(tmp, path) && strcmp(tmp, path) != 0);
        CHECK_OK(write_pattern(&w, sizes[i], (unsigned)i));
        CHECK_OK(odl_posix_writer_commit(&f, &d));
        CHECK(!exists(tmp));
        CHECK(count_tmp(td.path) == 0);
        /* committing twice is an error, not a crash */
        CHECK(odl_posix_writer_commit(&f, &d) == ODL_ERR_STATE);
        odl_posix_writer_abort(&f); /* harmless after commit */
        CHECK(exists(path));

        void *buf = NULL;
        size_t len = 123;
        CHECK_OK(odl_host_read_file(path, &buf, &len, &d));
        REQUIRE(buf != NULL);
        CHECK(((uintptr_t)buf % 16) == 0);
        CHECK(len == sizes[i]);
        CHECK(is_pattern(buf, len, (unsigned)i));
        odl_host_free(buf);
        struct stat sb;
        mode_t um = umask(0);
        umask(um);
        CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == (0644 & ~um));
    }
    odl_host_free(NULL);
    rm_tree(td.path);
}

static void test_read_missing(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char path[300];
    snprintf(path, sizeof path, "%s/missing.odl", td.path);
    void *buf = (void *)&td;
    size_t len = 7;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status st = odl_host_read_file(path, &buf, &len, &d);
    CHECK(st == ODL_ERR_NOT_FOUND || st == ODL_ERR_IO);
    CHECK(d.status == st);
    CHECK(starts_with(d.msg, path));
    CHECK(strstr(d.msg, "No such file or directory") != NULL);
    CHECK(buf == NULL && len == 0);

    /* a directory is not a file */
    st = odl_host_read_file(td.path, &buf, &len, &d);
    CHECK(st == ODL_ERR_IO);
    CHECK(starts_with(d.msg, td.path));
    CHECK(buf == NULL && len == 0);

    /* NULL arguments */
    CHECK(odl_host_read_file(NULL, &buf, &len, &d) == ODL_ERR_ARG);
    CHECK(odl_host_read_file(path, NULL, &len, NULL) == ODL_ERR_ARG);
    rm_tree(td.path);
}

static void test_abort_keeps_old(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char path[300], tmp[1100];
    snprintf(path, sizeof path, "%s/keep.odl", td.path);
    odl_posix_file f;
    odl_writer w;
    odl_diag d;
    CHECK_OK(odl_posix_writer_open(&f, &w, path, &d));
    CHECK_OK(write_pattern(&w, 5000, 7));
    CHECK_OK(odl_posix_writer_commit(&f, &d));

    /* a second save that is abandoned halfway */
    CHECK_OK(odl_posix_writer_open(&f, &w, path, &d));
    CHECK_OK(write_pattern(&w, 300, 99));
    snprintf(tmp, sizeof tmp, "%s", f.tmp_path);
    odl_posix_writer_abort(&f);
    CHECK(!exists(tmp));
    CHECK(count_tmp(td.path) == 0);
    odl_posix_writer_abort(&f); /* twice: no-op */
    CHECK(odl_posix_writer_commit(&f, &d) == ODL_ERR_STATE);

    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(odl_host_read_file(path, &buf, &len, &d));
    CHECK(len == 5000);
    CHECK(is_pattern(buf, len, 7));
    odl_host_free(buf);

    /* while a save is in progress, PATH still holds the old file */
    CHECK_OK(odl_posix_writer_open(&f, &w, path, &d));
    CHECK_OK(write_pattern(&w, 100, 3));
    CHECK_OK(odl_host_read_file(path, &buf, &len, &d));
    CHECK(len == 5000 && is_pattern(buf, len, 7));
    odl_host_free(buf);
    CHECK_OK(odl_posix_writer_commit(&f, &d));
    CHECK_OK(odl_host_read_file(path, &buf, &len, &d));
    CHECK(len == 100 && is_pattern(buf, len, 3));
    odl_host_free(buf);
    rm_tree(td.path);
}

static void test_writer_errors(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char path[2100];
    odl_posix_file f;
    odl_writer w;
    odl_diag d;

    /* the directory does not exist */
    snprintf(path, sizeof path, "%s/no/such/dir/m.odl", td.path);
    odl_status st = odl_posix_writer_open(&f, &w, path, &d);
    CHECK(st == ODL_ERR_NOT_FOUND || st == ODL_ERR_IO);
    CHECK(starts_with(d.msg, path));
    CHECK(f.fd < 0);
    odl_posix_writer_abort(&f); /* safe after a failed open */

    /* too long for the fixed path buffers */
    memset(path, 'a', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    CHECK(odl_posix_writer_open(&f, &w, path, &d) == ODL_ERR_ARG);
    CHECK(odl_posix_writer_open(&f, &w, "", &d) == ODL_ERR_ARG);

    /* a bare file name (directory ".") commits too */
    char cwd[1024];
    REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    REQUIRE(chdir(td.path) == 0);
    st = odl_posix_writer_open(&f, &w, "bare.odl", &d);
    if (st == ODL_OK) {
        st = write_pattern(&w, 10, 1);
        if (st == ODL_OK)
            st = odl_posix_writer_commit(&f, &d);
        else
            odl_posix_writer_abort(&f);
    }
    CHECK(exists("bare.odl"));
    REQUIRE(chdir(cwd) == 0);
    CHECK(st == ODL_OK);
    rm_tree(td.path);
}

/* odl_host_save_model: a real model through odl_model_save, read back. */
static void test_save_model(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char path[300], tmp[310];
    snprintf(path, sizeof path, "%s/mlp.odl", td.path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    odl_node_desc desc_nodes[64];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, 64, 1, 1, 1);
    odl_diag d;
    odl_diag_clear(&d);
    const int32_t hidden[1] = {8};
    CHECK_OK(odl_desc_mlp(&desc, 1, 2, 3, hidden, 1, 4));
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan plan;
    CHECK_OK(odl_model_plan(&desc, &cfg, &plan, &d));
    void *mem = malloc(plan.total + ODL_ALIGN);
    REQUIRE(mem);
    odl_arena arena;
    odl_model *m = NULL;
    odl_status st = odl_arena_init(&arena, mem, plan.total + ODL_ALIGN);
    if (st == ODL_OK)
        st = odl_model_init(&m, &desc, &cfg, &arena, &d);
    if (st != ODL_OK) {
        odl_test_logf(t, "    %s", d.msg);
        free(mem);
        rm_tree(td.path);
        CHECK_OK(st);
    }
    odl_rng rng;
    odl_rng_seed(&rng, 42, 1);
    CHECK(odl_model_init_params(m, &rng) == ODL_OK);

    const odl_meta_kv meta[2] = {{"dataset", "unit-test"}, {"note", "first"}};
    st = odl_host_save_model(m, meta, 2, path, &d);
    if (st != ODL_OK)
        odl_test_logf(t, "    %s", d.msg);
    CHECK(st == ODL_OK);
    CHECK(!exists(tmp));

    void *buf = NULL;
    size_t len = 0;
    st = odl_host_read_file(path, &buf, &len, &d);
    CHECK(st == ODL_OK);
    if (st == ODL_OK) {
        odl_node_desc back_nodes[64];
        odl_model_desc back;
        odl_desc_init(&back, back_nodes, 64, 1, 1, 1);
        CHECK(odl_file_read_desc(buf, len, &back, &d) == ODL_OK);
        CHECK(back.n_layers == desc.n_layers && back.in_h == 2 && back.in_w == 3);
        /* the host helper: storage of exactly the file's node count */
        odl_model_desc exact;
        CHECK(odl_host_read_desc(buf, len, &exact, &d) == ODL_OK);
        CHECK(exact.n_layers == desc.n_layers && exact.cap_layers == exact.n_layers &&
              memcmp(exact.layers, back.layers, sizeof(odl_node_desc) * (size_t)exact.n_layers) == 0);
        odl_host_desc_free(&exact);
        CHECK(exact.layers == NULL && exact.n_layers == 0);
        char value[32];
        CHECK(odl_file_meta_get(buf, len, "note", value, sizeof value, &d) == ODL_OK);
        CHECK(strcmp(value, "first") == 0);
    }

    /* a save that fails halfway (bad metadata) leaves the old file intact */
    const odl_meta_kv bad[1] = {{NULL, "x"}};
    odl_diag_clear(&d);
    st = odl_host_save_model(m, bad, 1, path, &d);
    CHECK(st < 0);
    CHECK(starts_with(d.msg, path));
    CHECK(!exists(tmp));
    void *buf2 = NULL;
    size_t len2 = 0;
    CHECK(odl_host_read_file(path, &buf2, &len2, &d) == ODL_OK);
    CHECK(buf && buf2 && len2 == len && memcmp(buf, buf2, len) == 0);
    odl_host_free(buf2);
    odl_host_free(buf);

    /* an unwritable destination */
    snprintf(path, sizeof path, "%s/missing-dir/mlp.odl", td.path);
    st = odl_host_save_model(m, NULL, 0, path, &d);
    CHECK(st == ODL_ERR_NOT_FOUND || st == ODL_ERR_IO);
    CHECK(strstr(d.msg, "missing-dir") != NULL);
    free(mem);
    rm_tree(td.path);
}

/* Outputs are regular files only: a symlink, a device, a pipe or a
 * directory at PATH is refused, and a file planted at the old fixed
 * temporary name (PATH.tmp) is neither followed nor reused. */
static void test_writer_refuses_non_regular(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char path[300], victim[300], planted[320], text[64];
    odl_posix_file f;
    odl_writer w;
    odl_diag d;
    snprintf(victim, sizeof victim, "%s/victim.txt", td.path);
    FILE *fp = fopen(victim, "w");
    REQUIRE(fp != NULL);
    fputs("precious", fp);
    fclose(fp);

    /* a symlink at PATH: refused, neither followed nor replaced */
    snprintf(path, sizeof path, "%s/link.odl", td.path);
    REQUIRE(symlink(victim, path) == 0);
    odl_diag_clear(&d);
    CHECK(odl_posix_writer_open(&f, &w, path, &d) == ODL_ERR_IO);
    CHECK(strstr(d.msg, "symbolic link") != NULL);
    CHECK(odl_posix_output_check(path, &d) == ODL_ERR_IO);
    struct stat sb;
    CHECK(lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode));
    CHECK(read_text(victim, text, sizeof text) == 8 && !strcmp(text, "precious"));

    /* a pipe and a directory at PATH */
    snprintf(path, sizeof path, "%s/fifo.odl", td.path);
    REQUIRE(mkfifo(path, 0600) == 0);
    CHECK(odl_posix_writer_open(&f, &w, path, &d) == ODL_ERR_IO);
    CHECK(strstr(d.msg, "pipe") != NULL);
    CHECK(lstat(path, &sb) == 0 && S_ISFIFO(sb.st_mode));
    snprintf(path, sizeof path, "%s/dir.odl", td.path);
    REQUIRE(mkdir(path, 0700) == 0);
    CHECK(odl_posix_writer_open(&f, &w, path, &d) == ODL_ERR_IO);
    CHECK(odl_posix_output_check(path, &d) == ODL_ERR_IO);
    /* a device */
    if (exists("/dev/null")) {
        CHECK(odl_posix_writer_open(&f, &w, "/dev/null", &d) == ODL_ERR_IO);
        CHECK(strstr(d.msg, "device") != NULL);
    }

    /* a symlink planted at PATH.tmp: never followed, the save still lands */
    snprintf(path, sizeof path, "%s/out.odl", td.path);
    snprintf(planted, sizeof planted, "%s.tmp", path);
    REQUIRE(symlink(victim, planted) == 0);
    CHECK_OK(odl_posix_writer_open(&f, &w, path, &d));
    CHECK(strcmp(f.tmp_path, planted) != 0);
    /* two writers of one path never share a temporary file */
    odl_posix_file f2;
    odl_writer w2;
    CHECK_OK(odl_posix_writer_open(&f2, &w2, path, &d));
    CHECK(strcmp(f.tmp_path, f2.tmp_path) != 0);
    odl_posix_writer_abort(&f2);
    CHECK_OK(write_pattern(&w, 1000, 5));
    CHECK_OK(odl_posix_writer_commit(&f, &d));
    CHECK(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 1000);
    CHECK(read_text(victim, text, sizeof text) == 8 && !strcmp(text, "precious"));
    CHECK(lstat(planted, &sb) == 0 && S_ISLNK(sb.st_mode));
    REQUIRE(unlink(planted) == 0);

    /* PATH swapped for a symlink while the save runs: the commit refuses */
    CHECK_OK(odl_posix_writer_open(&f, &w, path, &d));
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s", f.tmp_path);
    CHECK_OK(write_pattern(&w, 10, 1));
    REQUIRE(unlink(path) == 0 && symlink(victim, path) == 0);
    CHECK(odl_posix_writer_commit(&f, &d) == ODL_ERR_IO);
    CHECK(lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode));
    CHECK(!exists(tmp));
    CHECK(read_text(victim, text, sizeof text) == 8 && !strcmp(text, "precious"));
    CHECK(count_tmp(td.path) == 0);
    rm_tree(td.path);
}

/* odl_posix_output_check: fails early and leaves nothing behind. */
static void test_output_check(odl_test_ctx *t)
{
    tmpdir td;
    REQUIRE(tmp_make(&td));
    char path[300];
    odl_diag d;
    odl_diag_clear(&d);
    snprintf(path, sizeof path, "%s/new.odl", td.path);
    CHECK_OK(odl_posix_output_check(path, &d));
    CHECK(!exists(path));
    CHECK(count_tmp(td.path) == 0);
    snprintf(path, sizeof path, "%s/no/such/dir/x.odl", td.path);
    CHECK(odl_posix_output_check(path, &d) == ODL_ERR_NOT_FOUND);
    CHECK(starts_with(d.msg, path) && strstr(d.msg, "No such file") != NULL);
    snprintf(path, sizeof path, "%s/", td.path);
    CHECK(odl_posix_output_check(path, &d) == ODL_ERR_ARG);
    CHECK(odl_posix_output_check("", &d) == ODL_ERR_ARG);
    rm_tree(td.path);
}

static const odl_test_case cases[] = {
    {"writer_refuses_non_regular", test_writer_refuses_non_regular},
    {"output_check", test_output_check},
    {"write_read_back", test_write_read_back},
    {"read_missing", test_read_missing},
    {"abort_keeps_old", test_abort_keeps_old},
    {"writer_errors", test_writer_errors},
    {"save_model", test_save_model},
};

TEST_MAIN(cases)
