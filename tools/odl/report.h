/* Reports: one self-contained HTML file with inline SVG charts (host only).
 *
 * No JavaScript, no fonts, no images, nothing fetched: the file opens in any
 * browser offline. Charts are written directly as SVG (docs/reports.md says
 * why): horizontal bars (grouped, with ± whiskers, or stacked), heatmaps and
 * line charts, with titles, axis labels, legends and a colour-blind-safe
 * palette (Okabe & Ito; viridis for heatmaps). Every mark carries a <title>,
 * so hovering shows the exact value.
 *
 * Usage:
 *     report r;
 *     if (report_open(&r, "out.html", "odl info base.odl", "memory plans")) return 1;
 *     report_memory_plans(&r, "Memory plans", names, plans, 3);
 *     return report_close(&r);      // 0, or prints the error and returns 1
 *
 * Each chart is one <svg class="chart" data-kind="..."> with content; the
 * closing <footer data-charts="N"> counts them (tests/report_test.sh checks
 * the count in the page Chromium rendered). */
#ifndef ODL_REPORT_H
#define ODL_REPORT_H

#include <stdio.h>

#include "odl/arena.h"

typedef struct report {
    FILE *f;
    const char *path; /* for error messages; NULL when writing to a caller's FILE */
    int charts;       /* charts written so far */
    int in_grid;      /* inside report_grid_begin/end */
    int owns_file;
    void *out;        /* the cli_outfile that report_open writes to (atomic at close) */
} report;

/* Opens `path` for writing and writes the page head and the title (HTML
 * escaped) with an optional subtitle. Prints the error and returns 1 when the
 * file cannot be written. */
int report_open(report *r, const char *path, const char *title, const char *subtitle);
/* The same on an open stream (not closed by report_close). */
void report_begin(report *r, FILE *f, const char *title, const char *subtitle);
/* Writes the footer, closes the file if report_open opened it. Returns 0, or
 * prints "odl: PATH: write failed" and returns 1. */
int report_close(report *r);

/* Text between charts (escaped). level 2 or 3. */
void report_heading(report *r, int level, const char *text);
void report_text(report *r, const char *text);
/* Charts between these two flow side by side, `min_width` pixels each at
 * least (they wrap on narrow windows). */
void report_grid_begin(report *r, int min_width);
void report_grid_end(report *r);
/* A card groups charts (e.g. one strategy's heatmap and curve) under a caption. */
void report_card_begin(report *r, const char *caption);
void report_card_end(report *r);
/* A collapsible block (<details>, no script), closed until clicked. */
void report_details_begin(report *r, const char *summary);
void report_details_end(report *r);
/* A plain table: n_cols header cells, then n_rows × n_cols cells (escaped). */
void report_table(report *r, const char *const *head, int n_cols, const char *const *cells, int n_rows);

/* How values print on axes and labels. */
typedef enum report_fmt {
    REPORT_FMT_NUMBER = 0, /* 12.3 */
    REPORT_FMT_BYTES       /* 12.3 KiB (axis in B, KiB or MiB, whichever fits) */
} report_fmt;

/* Horizontal bars: one row per category (long names fit), in each row one
 * bar per series (grouped) or the series stacked into one bar. */
typedef struct report_bar_chart {
    const char *title;
    const char *value_label;           /* the value axis, with its unit: "accuracy (%)" */
    const char *const *categories;     /* n_categories row labels */
    int n_categories;
    const char *const *series;         /* n_series legend entries (NULL names: no legend) */
    int n_series;
    const double *value;               /* [c * n_series + s]; NAN: missing */
    const double *err;                 /* the same layout: ± whisker (e.g. std), or NULL */
    double lo, hi;                     /* value axis; NAN: from the data (0 always included) */
    int stacked;                       /* 1: series stacked, the total printed at the end */
    report_fmt fmt;
    const char *const *colors;         /* n_series CSS colours, or NULL for the palette */
    int width;                         /* pixels; 0: 1160 */
    const char *note;                  /* a line under the chart, or NULL */
    const double *ref;                 /* n_ref reference lines across all rows (a base's
                                          accuracy, a memory budget), in value units */
    const char *const *ref_labels;     /* n_ref labels, drawn at the top of each line */
    const int *ref_series;             /* n_ref: the series whose colour a line takes, or NULL (dark red) */
    int n_ref;
    int log_axis;                      /* 1 (not stacked): a logarithmic value axis from the smallest
                                          positive value, so small and large bars both read; ticks
                                          at powers of 10 (bytes: of 2, 4, 16...) */
    int normalize;                     /* 1 (stacked): each row as shares of its own total (0-100%),
                                          each part labelled with its value where it fits; the
                                          row's total printed at the end */
} report_bar_chart;
int report_bars(report *r, const report_bar_chart *c);

/* A heatmap with the value printed in each cell (viridis, lo..hi). */
typedef struct report_heatmap {
    const char *title;
    const char *row_label, *col_label; /* axis titles */
    const char *const *rows;           /* n_rows labels, top to bottom */
    int n_rows;
    const char *const *cols;           /* n_cols labels, left to right */
    int n_cols;
    const double *v;                   /* [r * n_cols + c]; NAN: not measured (grey, "–") */
    double lo, hi;                     /* colour scale; NAN: from the data */
    const char *unit;                  /* for the colour legend and tooltips, e.g. "%" */
    int width;                         /* pixels; 0: 300 */
} report_heatmap;
int report_heat(report *r, const report_heatmap *h);

/* Lines over a shared x: numeric (x given) or categorical (x_ticks given). */
typedef struct report_line_chart {
    const char *title;
    const char *x_label, *y_label;
    int n_x;                           /* points per series */
    const double *x;                   /* n_x numeric positions, or NULL */
    const char *const *x_ticks;        /* n_x category labels (when x is NULL); NULL: 1..n_x */
    const char *const *series;         /* n_series legend entries */
    int n_series;
    const double *y;                   /* [s * n_x + i]; NAN: no point (lines break) */
    double lo, hi;                     /* y axis; NAN: from the data */
    int markers;                       /* 1: a marker on each point */
    const char *const *colors;         /* n_series CSS colours, or NULL for the palette */
    int width;                         /* pixels; 0: 1160 */
    const char *note;
} report_line_chart;
int report_lines(report *r, const report_line_chart *c);

/* ---- ready-made charts for the other commands ---------------------------- */

/* One stacked bar per plan, a segment per memory kind (params, grads,
 * optimizer, activations, scratch, buffers, state), the total at its end. */
int report_memory_plans(report *r, const char *title, const char *const *names, const odl_mem_plan *plans, int n);

/* A learning curve: loss[i] at x[i] (epochs, fractional allowed: the mean
 * loss of a block of steps ending there). epoch_loss (n_epochs, may be NULL)
 * adds each epoch's mean loss as markers at x = 1..n_epochs. */
int report_loss_curve(report *r, const char *title, const double *x, const double *loss, int n,
                      const double *epoch_loss, int n_epochs);

/* Whole files in one call (title, the chart, close): for `odl info --report`
 * and `odl train --report`. Return 0, or print the error and return 1. */
int report_write_memory_plans(const char *path, const char *title, const char *subtitle, const char *const *names,
                              const odl_mem_plan *plans, int n);
int report_write_loss_curve(const char *path, const char *title, const char *subtitle, const double *x,
                            const double *loss, int n, const double *epoch_loss, int n_epochs);

/* The colour of memory kind k (the same in every chart) and its label. */
const char *report_mem_kind_color(int k);
const char *report_mem_kind_label(int k);

/* `odl report RESULTS.json -o out.html` (cmd_report.c). */
int cmd_report(int argc, char **argv);

#endif
