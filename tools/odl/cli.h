/* Shared pieces of the odl command-line tool (host only). */
#ifndef ODL_CLI_H
#define ODL_CLI_H

#include <stdio.h>
#include <stdint.h>
#include "odl/odl.h"
#include "odl/data.h"
#include "odl/posix_io.h"

#define ODL_TOOL_VERSION "0.1.0"

/* Prints "odl: <msg>" on stderr and returns 1 (the exit status). */
int cli_error(const char *fmt, ...);
/* Reports a failed call: "odl: <context>: <diag message or status string>". */
int cli_fail(const char *context, odl_status s, const odl_diag *d);

/* Argument iteration: `--name value` and `--name=value` forms. */
typedef struct cli_args {
    int argc;
    char **argv;
    int i;
    const char *cmd;
} cli_args;

/* 1 if argv[i] is option `name`; fills *val for options that take a value
 * (returns -1 when the value is missing). */
int cli_opt(cli_args *a, const char *name, const char **val);
int cli_flag(cli_args *a, const char *name);
int cli_parse_int(const char *opt, const char *s, long lo, long hi, int32_t *out);
int cli_parse_float(const char *opt, const char *s, double lo, double hi, float *out);
int cli_parse_shape(const char *s, int32_t *c, int32_t *h, int32_t *w);
/* --split: "train" or "test"; prints the error and returns 1 otherwise. */
int cli_parse_split(const char *s, odl_split *out);

/* Before a command starts work: checks that `path` (given as option `opt`)
 * can be written (absent or a regular file, its directory exists and takes
 * a new file) and that it names none of the command's inputs (NULL entries
 * are skipped). Prints the error; returns 0, or the exit status: 2 when the
 * output names an input (a usage error), 1 when it cannot be written. */
int cli_check_output(const char *opt, const char *path, const char *const *inputs, int n_inputs);

/* A private temporary directory (and the one file it may hold) removed if
 * the tool ends on SIGINT, SIGTERM or SIGHUP; NULLs: none. */
void cli_cleanup_dir(const char *dir, const char *file);
/* Installs the handlers that remove pending temporary files on those signals. */
void cli_install_cleanup(void);

/* A text output built in memory and written atomically at the end (the
 * shared writer: a new temporary file, never through a symlink or over a
 * device). Write to `f` with stdio; commit reports any write error. */
typedef struct cli_outfile {
    FILE *f;
    char *buf;
    size_t len;
    const char *path;
} cli_outfile;
int cli_outfile_open(cli_outfile *o, const char *path);
/* Returns 0 when the whole text reached `path`; prints the error otherwise. */
int cli_outfile_commit(cli_outfile *o);
void cli_outfile_discard(cli_outfile *o);

/* Text from a file (metadata, names) made safe to print: control characters,
 * DEL and bytes that are not valid UTF-8 become \xNN, so it cannot drive the
 * terminal. `out` is always terminated, cut at a whole character. */
size_t cli_escape_text(const char *s, char *out, size_t cap);
/* The tool's memory limit: every model/learner plan and every dataset is
 * checked against it before anything is allocated. Set by the global
 * --max-memory SIZE option (main.c); the default fits a laptop. */
#define CLI_MAX_MEMORY_DEFAULT ((size_t)4 << 30)
extern size_t cli_max_memory;
/* Parses a size: a whole number of bytes with an optional K, M, G or T
 * suffix (powers of 1024), e.g. 512M, 2G. Returns 0 on success. */
int cli_parse_size(const char *s, size_t *out);
/* 0 if `bytes` fits the memory limit; otherwise prints
 * "odl: WHAT needs N bytes, over the memory limit ..." and returns 1. */
int cli_memory_check(const char *what, size_t bytes);
/* malloc after cli_memory_check; prints the error and returns NULL on failure. */
void *cli_alloc(const char *what, size_t bytes);

/* --classes SPEC: 0 if it parses (or is NULL); else prints the error and
 * returns 1 (callers exit 2: a bad command line). */
int cli_check_classes(const char *classes);

/* --label-col NAME|N, taken by main() for every command that reads CSV data
 * (NULL: a header's "label" column, else the first). */
extern const char *cli_label_col;

/* Loads a dataset for a command, printing errors. Returns 0 on success. */
int cli_load_data(const char *path, odl_split split, odl_split default_split, const char *classes,
                  const char *shape, int32_t limit, odl_dataset *ds);

/* Gives a dataset the model's input shape: flat CSV rows of the right size
 * are reshaped; any other sample shape prints an error naming both shapes
 * and returns 1 (data of another shape must never reach the model). */
int cli_fit_shape(odl_dataset *ds, const odl_model_desc *md, const char *path);

/* A loaded model with its arena (host convenience). */
typedef struct cli_model {
    void *file;       /* the file bytes */
    size_t file_len;
    void *arena_buf;
    odl_arena arena;
    odl_model *m;
    odl_model_desc desc;
} cli_model;

int cli_model_load(const char *path, const odl_model_cfg *cfg, cli_model *cm);
/* The same from a file's bytes already in memory (odl_host_read_file's or a
 * store's buffer): cm takes them over, freed by cli_model_free even on failure. */
int cli_model_from_bytes(const char *name, void *file, size_t len, const odl_model_cfg *cfg, cli_model *cm);
void cli_model_free(cli_model *cm);

/* Progress reporting: a bar on a terminal, plain lines otherwise. */
typedef struct cli_progress {
    int tty;
    int quiet;
    double t0, last;
} cli_progress;
void cli_progress_init(cli_progress *p, int quiet);
double cli_now(void);

/* Accuracy and confusion matrix of a model on a dataset. */
typedef struct cli_eval {
    int32_t n_classes;
    int64_t n, correct;
    int64_t *confusion; /* n_classes × n_classes, [true][pred] */
} cli_eval;
int cli_evaluate(odl_model *m, const odl_dataset *ds, int32_t batch, cli_eval *ev);
void cli_eval_free(cli_eval *ev);

/* An INT8 model (nodes below `boundary`) in its own malloc'd arena; free(buf). */
typedef struct cli_qmodel {
    void *buf;
    odl_qmodel *q;
    odl_mem_plan plan;
} cli_qmodel;
odl_status cli_qmodel_init(cli_qmodel *h, const odl_model_desc *desc, int32_t boundary, int32_t batch, odl_diag *d);
/* Widens the INT8 calibration ranges of m's nodes below `boundary` over
 * `samples` samples of ds drawn without replacement (seeded); 0 or exit 1. */
int cli_calibrate(odl_model *m, int32_t boundary, const odl_dataset *ds, int32_t samples, int32_t batch,
                  uint64_t seed, odl_qcalib *c, float *ranges);

void json_str(FILE *f, const char *s);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_experiment(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_drift(int argc, char **argv);
int cmd_versions(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_session(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_export_tflite(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_fleet(int argc, char **argv); /* cmd_fleet.c: simulate (cmd_fleet_sim.c), publish, collect, keygen */
int cmd_fleet_simulate(int argc, char **argv); /* execs python3 -m odl.fleet */

#endif
