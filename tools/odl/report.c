/* Reports: one self-contained HTML file with inline SVG (report.h). */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Okabe & Ito's colour-blind-safe palette, yellow (too pale on white) last. */
static const char *const PALETTE[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
#define N_PALETTE 8
/* Beyond the palette, lines repeat its colours dashed. */
static const char *const DASHES[] = {"", "6 3", "2 3", "8 3 2 3"};

static const char *series_color(const char *const *colors, int s)
{
    return colors ? colors[s] : PALETTE[s % N_PALETTE];
}

const char *report_mem_kind_color(int k)
{
    static const char *const c[ODL_MEM_KINDS] = {"#0072B2", "#56B4E9", "#E69F00", "#D55E00",
                                                 "#BBBBBB", "#009E73", "#CC79A7"};
    return k >= 0 && k < ODL_MEM_KINDS ? c[k] : "#777777";
}

const char *report_mem_kind_label(int k)
{
    static const char *const l[ODL_MEM_KINDS] = {"weights (params)", "gradients",    "optimizer state",
                                                 "activations",      "scratch",      "buffers (replay, Fisher, stats)",
                                                 "state"};
    return k >= 0 && k < ODL_MEM_KINDS ? l[k] : "other";
}

/* ---- text ------------------------------------------------------------------------ */

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Escaped, cut to at most max_chars characters (UTF-8 aware) with "…". */
static void esc_cut(FILE *f, const char *s, int max_chars)
{
    int n = 0;
    for (const char *p = s; p && *p; p++)
        n += ((unsigned char)*p & 0xC0) != 0x80;
    if (n <= max_chars || max_chars < 2) {
        esc(f, s);
        return;
    }
    char buf[512];
    int chars = 0;
    size_t k = 0;
    for (const char *p = s; *p && k + 4 < sizeof buf; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80 && ++chars > max_chars - 1)
            break;
        buf[k++] = *p;
    }
    buf[k] = 0;
    esc(f, buf);
    fputs("\xE2\x80\xA6", f);
}

static int n_chars(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Width of text in pixels, estimated for a sans-serif face (DejaVu Sans is
 * the widest common one: 0.6 em per character on average). */
static double text_w(const char *s, double size)
{
    return n_chars(s) * size * 0.6;
}

static void fmt_num(char *buf, size_t n, double v, double step)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "–");
        return;
    }
    int dec = 0;
    if (step > 0 && step < 1)
        dec = (int)ceil(-log10(step) - 1e-9);
    if (dec > 6)
        dec = 6;
    if (fabs(v) < 1e-12)
        v = 0;
    snprintf(buf, n, "%.*f", dec, v);
}

/* Bytes as B, KiB or MiB. */
static void fmt_bytes(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "–");
    else if (fabs(v) < 1024)
        snprintf(buf, n, "%.0f B", v);
    else if (fabs(v) < 1024.0 * 1024.0)
        snprintf(buf, n, "%.1f KiB", v / 1024.0);
    else
        snprintf(buf, n, "%.2f MiB", v / (1024.0 * 1024.0));
}

/* ---- the page ---------------------------------------------------------------------- */

static const char CSS[] =
    "body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;color:#222;background:#fff;"
    "max-width:1200px;margin:0 auto;padding:16px 20px 40px}\n"
    "h1{font-size:24px;margin:8px 0 2px}h2{font-size:19px;margin:28px 0 6px;border-bottom:1px solid #ccc;"
    "padding-bottom:3px}h3{font-size:15px;margin:16px 0 4px}\n"
    "p{font-size:13px;line-height:1.45;margin:4px 0 8px;max-width:1100px}.sub{color:#555;font-size:13px}\n"
    "svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}\n"
    "svg text{font-family:inherit;fill:#222}\n"
    ".grid{display:flex;flex-wrap:wrap;gap:10px 18px;align-items:flex-start}\n"
    ".card{border:1px solid #d8d8d8;border-radius:6px;padding:4px 8px 2px}\n"
    ".card>.cap{font-size:13px;font-weight:bold;margin:4px 0 0}\n"
    ".cards{display:flex;gap:6px;flex-wrap:wrap}\n"
    "table{border-collapse:collapse;font-size:12px;margin:6px 0 10px}"
    "th,td{border-bottom:1px solid #e3e3e3;padding:2px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}\n"
    "details{font-size:13px;margin:2px 0 8px}summary{cursor:pointer;color:#0b5394}\n"
    "footer{margin-top:30px;font-size:11px;color:#777}\n";

void report_begin(report *r, FILE *f, const char *title, const char *subtitle)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    esc(f, title);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", CSS);
    esc(f, title);
    fputs("</h1>\n", f);
    if (subtitle && *subtitle) {
        fputs("<p class=\"sub\">", f);
        esc(f, subtitle);
        fputs("</p>\n", f);
    }
}

int report_open(report *r, const char *path, const char *title, const char *subtitle)
{
    /* built in memory, written atomically by report_close */
    memset(r, 0, sizeof *r);
    cli_outfile *o = malloc(sizeof *o);
    if (!o)
        return cli_error("%s: out of memory", path);
    if (cli_outfile_open(o, path)) {
        free(o);
        return 1;
    }
    report_begin(r, o->f, title, subtitle);
    r->path = path;
    r->owns_file = 1;
    r->out = o;
    return 0;
}

int report_close(report *r)
{
    if (!r->f)
        return 1;
    if (r->in_grid)
        report_grid_end(r);
    fprintf(r->f,
            "<footer data-charts=\"%d\">%d chart%s, written by odl %s as inline SVG: no script, nothing "
            "fetched.</footer>\n</body>\n</html>\n",
            r->charts, r->charts, r->charts == 1 ? "" : "s", ODL_TOOL_VERSION);
    FILE *f = r->f;
    r->f = NULL;
    if (r->owns_file) {
        cli_outfile *o = r->out;
        r->out = NULL;
        int rc = cli_outfile_commit(o); /* prints its own error */
        free(o);
        return rc;
    }
    int bad = ferror(f) != 0;
    bad |= fflush(f) != 0;
    if (bad)
        return cli_error("%s: write failed", r->path ? r->path : "report");
    return 0;
}

void report_heading(report *r, int level, const char *text)
{
    if (level < 2 || level > 3)
        level = 2;
    fprintf(r->f, "<h%d>", level);
    esc(r->f, text);
    fprintf(r->f, "</h%d>\n", level);
}

void report_text(report *r, const char *text)
{
    fputs("<p>", r->f);
    esc(r->f, text);
    fputs("</p>\n", r->f);
}

void report_grid_begin(report *r, int min_width)
{
    (void)min_width;
    fputs("<div class=\"grid\">\n", r->f);
    r->in_grid = 1;
}

void report_grid_end(report *r)
{
    fputs("</div>\n", r->f);
    r->in_grid = 0;
}

void report_card_begin(report *r, const char *caption)
{
    fputs("<div class=\"card\">", r->f);
    if (caption) {
        fputs("<div class=\"cap\">", r->f);
        esc(r->f, caption);
        fputs("</div>", r->f);
    }
    fputs("<div class=\"cards\">\n", r->f);
}

void report_card_end(report *r)
{
    fputs("</div></div>\n", r->f);
}

void report_details_begin(report *r, const char *summary)
{
    fputs("<details><summary>", r->f);
    esc(r->f, summary);
    fputs("</summary>\n", r->f);
}

void report_details_end(report *r)
{
    fputs("</details>\n", r->f);
}

void report_table(report *r, const char *const *head, int n_cols, const char *const *cells, int n_rows)
{
    FILE *f = r->f;
    fputs("<table>\n<tr>", f);
    for (int c = 0; c < n_cols; c++) {
        fputs("<th>", f);
        esc(f, head[c]);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int i = 0; i < n_rows; i++) {
        fputs("<tr>", f);
        for (int c = 0; c < n_cols; c++) {
            fputs("<td>", f);
            esc(f, cells[(size_t)i * n_cols + c]);
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* ---- chart pieces ------------------------------------------------------------------------- */

static void svg_open(report *r, const char *kind, double w, double h, const char *title)
{
    r->charts++;
    fprintf(r->f,
            "<svg class=\"chart\" data-kind=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
            kind, w, h, w, h);
    esc(r->f, title ? title : kind);
    fputs("\">\n", r->f);
    fprintf(r->f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n", w, h);
}

static void svg_text(FILE *f, double x, double y, double size, const char *anchor, const char *extra,
                     const char *s)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" text-anchor=\"%s\"%s%s>", x, y, size, anchor,
            extra ? " " : "", extra ? extra : "");
    esc(f, s);
    fputs("</text>\n", f);
}

static void svg_title(FILE *f, double w, const char *title)
{
    if (title && *title) {
        fprintf(f, "<text x=\"%.1f\" y=\"20\" font-size=\"14\" font-weight=\"bold\" text-anchor=\"middle\">",
                w / 2);
        esc_cut(f, title, (int)(w / (14 * 0.62)));
        fputs("</text>\n", f);
    }
}

/* A legend of swatches (rect, or line when `lines`), wrapped within width;
 * returns the height used. */
static double legend(FILE *f, double x0, double y0, double width, const char *const *names, int n,
                     const char *const *colors, int lines, int draw)
{
    double x = x0, y = y0;
    int any = 0;
    for (int s = 0; s < n; s++) {
        if (!names || !names[s])
            continue;
        double w = 22 + text_w(names[s], 12) + 16;
        if (x + w > x0 + width && x > x0) {
            x = x0;
            y += 18;
        }
        if (draw) {
            const char *c = colors ? colors[s] : series_color(NULL, s);
            if (lines) {
                const char *dash = DASHES[(s / N_PALETTE) % 4];
                fprintf(f,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"%s%s%s/>"
                        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                        x, y - 4, x + 18, y - 4, c, *dash ? " stroke-dasharray=\"" : "", dash, *dash ? "\"" : "",
                        x + 9, y - 4, c);
            } else {
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"12\" fill=\"%s\" stroke=\"#444\" "
                           "stroke-width=\"0.4\"/>\n",
                        x + 2, y - 10, c);
            }
            svg_text(f, x + 22, y, 12, "start", NULL, names[s]);
        }
        x += w;
        any = 1;
    }
    return any ? y - y0 + 18 : 0;
}

/* Nice tick step for a range: 1, 2 or 5 × 10^k, about `target` ticks. */
static double nice_step(double range, int target)
{
    if (!(range > 0) || !isfinite(range))
        return 1;
    double raw = range / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Extends [*lo, *hi] outwards to multiples of the step it returns, for the
 * bounds that were not given (NAN). */
static double nice_range(double *lo, double *hi, int lo_given, int hi_given, int target)
{
    if (*hi <= *lo)
        *hi = *lo + 1;
    double step = nice_step(*hi - *lo, target);
    if (!lo_given)
        *lo = floor(*lo / step + 1e-9) * step;
    if (!hi_given)
        *hi = ceil(*hi / step - 1e-9) * step;
    return step;
}

/* Byte axes: a unit that keeps tick labels short. */
static double bytes_div(double hi, const char **unit)
{
    if (hi >= 4.0 * 1024 * 1024) {
        *unit = "MiB";
        return 1024.0 * 1024.0;
    }
    if (hi >= 4.0 * 1024) {
        *unit = "KiB";
        return 1024.0;
    }
    *unit = "B";
    return 1.0;
}

/* ---- horizontal bars ---------------------------------------------------------------------------- */

/* The value axis of a bar chart: linear (value / div between lo and hi) or
 * logarithmic (raw values between lo and hi, both > 0). */
typedef struct bar_axis {
    double lo, hi, div, left, pw;
    int log;
} bar_axis;

static double axis_x(const bar_axis *a, double v)
{
    if (a->log) {
        if (!(v > 0))
            return a->left; /* zero and below sit at the axis' start */
        return a->left + (log(v) - log(a->lo)) / (log(a->hi) - log(a->lo)) * a->pw;
    }
    return a->left + (v / a->div - a->lo) / (a->hi - a->lo) * a->pw;
}

/* A power-of-two byte count as a short tick label: "512 B", "4 KiB", "1 MiB". */
static void fmt_bytes_tick(char *buf, size_t n, double v)
{
    if (v < 1024)
        snprintf(buf, n, "%.0f B", v);
    else if (v < 1024.0 * 1024.0)
        snprintf(buf, n, "%.0f KiB", v / 1024.0);
    else
        snprintf(buf, n, "%.0f MiB", v / (1024.0 * 1024.0));
}

/* Text colour readable on a "#rrggbb" fill: white on dark, near-black on light. */
static const char *text_on(const char *fill)
{
    unsigned r = 0, g = 0, b = 0;
    if (!fill || sscanf(fill, "#%2x%2x%2x", &r, &g, &b) != 3)
        return "#fff";
    return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#111" : "#fff";
}

int report_bars(report *r, const report_bar_chart *c)
{
    FILE *f = r->f;
    const int nc = c->n_categories, ns = c->n_series;
    if (nc <= 0 || ns <= 0)
        return 0;
    const int logax = c->log_axis && !c->stacked, norm = c->normalize && c->stacked;
    const double W = c->width > 0 ? c->width : 1160;
    /* the data range (0 always on a linear axis; the positive values on a log one) */
    double dlo = 0, dhi = 0, pmin = INFINITY, pmax = 0;
    for (int i = 0; i < nc; i++) {
        double sum_pos = 0, sum_neg = 0;
        for (int s = 0; s < ns; s++) {
            double v = c->value[(size_t)i * ns + s], e = c->err ? c->err[(size_t)i * ns + s] : 0;
            if (!isfinite(v))
                continue;
            if (!isfinite(e))
                e = 0;
            if (v > 0 && v < pmin) pmin = v;
            if (v + e > pmax) pmax = v + e;
            if (c->stacked) {
                if (v >= 0) sum_pos += v;
                else sum_neg += v;
            } else {
                if (v + e > dhi) dhi = v + e;
                if (v - e < dlo) dlo = v - e;
                if (v > dhi) dhi = v;
                if (v < dlo) dlo = v;
            }
        }
        if (c->stacked) {
            if (sum_pos > dhi) dhi = sum_pos;
            if (sum_neg < dlo) dlo = sum_neg;
        }
    }
    for (int k = 0; k < c->n_ref; k++)
        if (isfinite(c->ref[k])) {
            if (c->ref[k] > dhi) dhi = c->ref[k];
            if (c->ref[k] < dlo) dlo = c->ref[k];
            if (c->ref[k] > 0 && c->ref[k] < pmin) pmin = c->ref[k];
            if (c->ref[k] > pmax) pmax = c->ref[k];
        }
    const char *unit = NULL;
    bar_axis ax = {0, 1, 1, 0, 0, logax};
    double step = 1, lbase = 10;
    if (norm) {
        dlo = 0;
        dhi = 100;
    } else if (c->fmt == REPORT_FMT_BYTES && !logax) {
        ax.div = bytes_div(isfinite(c->hi) ? c->hi : dhi, &unit);
    }
    /* room for the labels */
    double lab_w = 0;
    for (int i = 0; i < nc; i++) {
        double w = text_w(c->categories[i], 12);
        if (w > lab_w)
            lab_w = w;
    }
    if (lab_w > W * 0.42)
        lab_w = W * 0.42;
    ax.left = lab_w + 16;
    const double right = c->stacked || c->fmt == REPORT_FMT_BYTES ? 78 : 58;
    ax.pw = W - ax.left - right;
    if (logax) {
        /* whole powers of the base around the positive values: bytes in powers
         * of 2 (4, 16... when the range is wide), other values in decades */
        if (!(pmax > 0) || !isfinite(pmin)) {
            pmin = 1;
            pmax = 10;
        }
        lbase = c->fmt == REPORT_FMT_BYTES ? 2 : 10;
        double lo_e = floor(log(pmin / 1.5) / log(lbase)), hi_e = ceil(log(pmax * 1.05) / log(lbase));
        while (c->fmt == REPORT_FMT_BYTES && (hi_e - lo_e) / (log(lbase) / log(2)) > 9) {
            lbase *= lbase; /* 2 -> 4 -> 16 -> 256: exponents stay whole powers of 2 */
            lo_e = floor(log(pmin / 1.5) / log(lbase));
            hi_e = ceil(log(pmax * 1.05) / log(lbase));
        }
        if (hi_e <= lo_e)
            hi_e = lo_e + 1;
        ax.lo = pow(lbase, lo_e);
        ax.hi = pow(lbase, hi_e);
    } else {
        ax.lo = (isfinite(c->lo) ? c->lo : dlo) / ax.div;
        ax.hi = (isfinite(c->hi) ? c->hi : dhi) / ax.div;
        if (norm) {
            ax.lo = 0;
            ax.hi = 100;
        }
        if (ax.hi <= ax.lo)
            ax.hi = ax.lo + 1;
        step = nice_range(&ax.lo, &ax.hi, isfinite(c->lo) || norm, isfinite(c->hi) || norm, ax.pw > 500 ? 10 : 5);
    }
    const double left = ax.left, pw = ax.pw;
    const double bar_h = c->stacked ? 16 : (ns <= 2 ? 12 : 10), gap = c->stacked ? 8 : 10;
    const double row_h = c->stacked ? bar_h + gap : ns * bar_h + gap;
    int has_legend = 0;
    for (int s = 0; s < ns && c->series; s++)
        has_legend |= c->series[s] != NULL;
    double leg_h = has_legend ? legend(f, left, 0, pw + right - 10, c->series, ns, c->colors, 0, 0) : 0;
    const double top = 34 + leg_h + (leg_h ? 6 : 0), ph = nc * row_h;
    const double H = top + ph + 44 + (c->note ? 16 : 0);
    svg_open(r, c->stacked ? "stacked-bars" : "bars", W, H, c->title);
    svg_title(f, W, c->title);
    if (has_legend) {
        const char *cols[64];
        for (int s = 0; s < ns && s < 64; s++)
            cols[s] = series_color(c->colors, s);
        legend(f, left, 44, pw + right - 10, c->series, ns < 64 ? ns : 64, cols, 0, 1);
    }
#define XV(v) axis_x(&ax, (v))
    /* grid and ticks */
    char buf[64];
    if (logax) {
        for (double t = ax.lo; t <= ax.hi * (1 + 1e-9); t *= lbase) {
            double x = XV(t);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n", x,
                    top, x, top + ph, t == ax.lo ? "#666" : "#e2e2e2");
            if (c->fmt == REPORT_FMT_BYTES)
                fmt_bytes_tick(buf, sizeof buf, t);
            else
                snprintf(buf, sizeof buf, "%g", t);
            svg_text(f, x, top + ph + 15, 11, "middle", NULL, buf);
        }
    } else {
        for (double t = ax.lo; t <= ax.hi + step * 1e-6; t += step) {
            double x = left + (t - ax.lo) / (ax.hi - ax.lo) * pw;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n", x,
                    top, x, top + ph, fabs(t) < step * 1e-6 ? "#666" : "#e2e2e2");
            fmt_num(buf, sizeof buf, t, step);
            svg_text(f, x, top + ph + 15, 11, "middle", NULL, buf);
        }
    }
    char axis[160];
    if (unit)
        snprintf(axis, sizeof axis, "%s (%s)", c->value_label ? c->value_label : "", unit);
    else if (logax)
        snprintf(axis, sizeof axis, "%s (log scale)", c->value_label ? c->value_label : "");
    else
        snprintf(axis, sizeof axis, "%s", c->value_label ? c->value_label : "");
    svg_text(f, left + pw / 2, top + ph + 34, 12, "middle", NULL, axis);
    if (c->note)
        svg_text(f, left, H - 6, 11, "start", "fill=\"#555\"", c->note);
    /* rows */
    for (int i = 0; i < nc; i++) {
        double y0 = top + i * row_h + gap / 2;
        if (i % 2 == 1)
            fprintf(f, "<rect x=\"0\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#000\" fill-opacity=\"0.03\"/>\n",
                    top + i * row_h, left + pw, row_h);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\"><title>", left - 8,
                y0 + (row_h - gap) / 2 + 4);
        esc(f, c->categories[i]);
        fputs("</title>", f);
        esc_cut(f, c->categories[i], (int)(lab_w / (12 * 0.6)));
        fputs("</text>\n", f);
        double row_total = 0; /* normalize: the parts as shares of this */
        for (int s = 0; norm && s < ns; s++) {
            double v = c->value[(size_t)i * ns + s];
            if (isfinite(v) && v > 0)
                row_total += v;
        }
        double pos = 0, neg = 0;
        for (int s = 0; s < ns; s++) {
            double v = c->value[(size_t)i * ns + s];
            if (!isfinite(v) || (norm && !(v > 0)) || (logax && !(v > 0)))
                continue;
            double vv = norm ? (row_total > 0 ? v / row_total * 100 : 0) : v; /* where it is drawn */
            double e = c->err ? c->err[(size_t)i * ns + s] : NAN;
            double a, b, y = c->stacked ? y0 : y0 + s * bar_h;
            if (c->stacked) {
                if (vv >= 0) { a = pos; b = pos + vv; pos = b; }
                else { b = neg; a = neg + vv; neg = a; }
            } else {
                a = vv < 0 ? vv : 0;
                b = vv < 0 ? 0 : vv;
            }
            double xa = XV(a), xb = XV(b);
            if (xa < left) xa = left;
            if (xb > left + pw) xb = left + pw;
            const char *col = series_color(c->colors, s);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"#fff\" "
                       "stroke-width=\"0.5\"><title>",
                    xa, y, xb - xa > 0 ? xb - xa : 0, bar_h - 1, col);
            esc(f, c->categories[i]);
            if (c->series && c->series[s]) {
                fputs(" \xE2\x80\x94 ", f);
                esc(f, c->series[s]);
            }
            if (c->fmt == REPORT_FMT_BYTES)
                fmt_bytes(buf, sizeof buf, v);
            else
                snprintf(buf, sizeof buf, "%.2f", v);
            fprintf(f, ": %s", buf);
            if (norm)
                fprintf(f, " (%.1f%%)", vv);
            if (isfinite(e) && e > 0)
                fprintf(f, " \xC2\xB1 %.2f", e);
            fputs("</title></rect>\n", f);
            if (norm) { /* the part's own value, inside it when it fits */
                if (c->fmt == REPORT_FMT_BYTES)
                    fmt_bytes(buf, sizeof buf, v);
                else
                    snprintf(buf, sizeof buf, "%.1f", v);
                if (xb - xa >= text_w(buf, 10) + 6) {
                    char style[40];
                    snprintf(style, sizeof style, "style=\"fill:%s\"", text_on(col));
                    svg_text(f, (xa + xb) / 2, y + bar_h - 4.5, 10, "middle", style, buf);
                }
            }
            if (!c->stacked) {
                double xe = XV(v);
                if (isfinite(e) && e > 0) {
                    double x1 = XV(v - e), x2 = XV(v + e), ym = y + (bar_h - 1) / 2;
                    fprintf(f, "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\" stroke=\"#222\" "
                               "stroke-width=\"1.2\" fill=\"none\"/>\n",
                            x1, ym, x2, x1, ym - 3, ym + 3, x2, ym - 3, ym + 3);
                    if (v >= 0 && x2 > xe)
                        xe = x2;
                    if (v < 0 && x1 < xe)
                        xe = x1;
                }
                if (c->fmt == REPORT_FMT_BYTES)
                    fmt_bytes(buf, sizeof buf, v);
                else
                    snprintf(buf, sizeof buf, "%.1f", v);
                const double fs = bar_h >= 12 ? 10 : 9;
                if (v < 0 && xe - 3 - text_w(buf, fs) < left && XV(0) - XV(v) > text_w(buf, fs) + 6)
                    /* no room left of the bar: inside it, in white */
                    svg_text(f, XV(v) + 3, y + bar_h - 3, fs, "start", "style=\"fill:#fff\"", buf);
                else if (v >= 0 && xe + 3 + text_w(buf, fs) > W && XV(v) - XV(0) > text_w(buf, fs) + 6)
                    svg_text(f, XV(v) - 3, y + bar_h - 3, fs, "end", "style=\"fill:#fff\"", buf);
                else
                    svg_text(f, v < 0 ? xe - 3 : xe + 3, y + bar_h - 3, fs, v < 0 ? "end" : "start",
                             "fill=\"#333\"", buf);
            }
        }
        if (c->stacked) {
            double total = norm ? row_total : pos + neg;
            if (c->fmt == REPORT_FMT_BYTES)
                fmt_bytes(buf, sizeof buf, total);
            else
                snprintf(buf, sizeof buf, "%.1f", total);
            svg_text(f, XV(pos) + 4, y0 + bar_h - 4, 11, "start", NULL, buf);
        }
    }
    /* reference lines on top of the bars */
    for (int k = 0; k < c->n_ref; k++) {
        if (!isfinite(c->ref[k]) || norm)
            continue;
        double x = XV(c->ref[k]);
        if (x < left || x > left + pw)
            continue;
        const char *col = c->ref_series && c->ref_series[k] >= 0 ? series_color(c->colors, c->ref_series[k]) : "#a00";
        fprintf(f, "<line class=\"ref\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"1.5\" stroke-dasharray=\"5 3\"><title>",
                x, top - 2, x, top + ph, col);
        esc(f, c->ref_labels ? c->ref_labels[k] : "reference");
        fputs("</title></line>\n", f);
        if (c->ref_labels) { /* beside the line, never across it */
            const int at_end = x > left + pw * 0.8;
            svg_text(f, at_end ? x - 4 : x + 4, top + 9 + 11 * (k % 2), 10, at_end ? "end" : "start",
                     "fill=\"#333\"", c->ref_labels[k]);
        }
    }
#undef XV
    fputs("</svg>\n", f);
    return ferror(f) != 0;
}

/* ---- heatmap ---------------------------------------------------------------------------------- */

static void viridis(double t, int rgb[3])
{
    static const int cp[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                 {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double p = t * 8;
    int k = (int)p;
    if (k >= 8) k = 7;
    double u = p - k;
    for (int j = 0; j < 3; j++)
        rgb[j] = (int)lround(cp[k][j] + (cp[k + 1][j] - cp[k][j]) * u);
}

int report_heat(report *r, const report_heatmap *h)
{
    FILE *f = r->f;
    const int nr = h->n_rows, nc = h->n_cols;
    if (nr <= 0 || nc <= 0)
        return 0;
    const double W = h->width > 0 ? h->width : 300;
    double lo = h->lo, hi = h->hi;
    if (!isfinite(lo) || !isfinite(hi)) {
        double a = INFINITY, b = -INFINITY;
        for (int k = 0; k < nr * nc; k++)
            if (isfinite(h->v[k])) {
                if (h->v[k] < a) a = h->v[k];
                if (h->v[k] > b) b = h->v[k];
            }
        if (!isfinite(lo)) lo = isfinite(a) ? a : 0;
        if (!isfinite(hi)) hi = isfinite(b) ? b : 1;
    }
    if (hi <= lo)
        hi = lo + 1;
    double lab_w = 0;
    for (int i = 0; i < nr; i++)
        if (text_w(h->rows[i], 11) > lab_w)
            lab_w = text_w(h->rows[i], 11);
    const double left = 22 + lab_w + 6, right = 10, top = h->col_label ? 62 : 48;
    const double cw = (W - left - right) / nc, ch = cw * 0.72 < 34 ? cw * 0.72 : 34;
    const double H = top + nr * ch + 52;
    svg_open(r, "heatmap", W, H, h->title);
    svg_title(f, W, h->title);
    /* column labels and title */
    if (h->col_label)
        svg_text(f, left + nc * cw / 2, 40, 11, "middle", "fill=\"#444\"", h->col_label);
    for (int j = 0; j < nc; j++)
        svg_text(f, left + (j + 0.5) * cw, top - 4, 11, "middle", NULL, h->cols[j]);
    if (h->row_label) {
        fprintf(f, "<text transform=\"translate(12 %.1f) rotate(-90)\" font-size=\"11\" text-anchor=\"middle\" "
                   "fill=\"#444\">",
                top + nr * ch / 2);
        esc(f, h->row_label);
        fputs("</text>\n", f);
    }
    char buf[64];
    for (int i = 0; i < nr; i++) {
        svg_text(f, left - 5, top + (i + 0.5) * ch + 4, 11, "end", NULL, h->rows[i]);
        for (int j = 0; j < nc; j++) {
            double v = h->v[(size_t)i * nc + j], x = left + j * cw, y = top + i * ch;
            if (!isfinite(v)) {
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f0f0f0\" "
                           "stroke=\"#fff\"><title>not measured</title></rect>\n",
                        x, y, cw, ch);
                svg_text(f, x + cw / 2, y + ch / 2 + 4, 11, "middle", "fill=\"#999\"", "\xE2\x80\x93");
                continue;
            }
            int c[3];
            double t = (v - lo) / (hi - lo);
            viridis(t, c);
            double lum = (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\" "
                       "stroke=\"#fff\"><title>",
                    x, y, cw, ch, c[0], c[1], c[2]);
            esc(f, h->rows[i]);
            fputs(", ", f);
            esc(f, h->cols[j]);
            fprintf(f, ": %.2f%s</title></rect>\n", v, h->unit ? h->unit : "");
            snprintf(buf, sizeof buf, "%.1f", v);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"middle\" style=\"fill:%s\">%s</text>\n",
                    x + cw / 2, y + ch / 2 + 4, cw >= 44 ? 11 : 9, lum < 0.45 ? "#fff" : "#111", buf);
        }
    }
    /* the colour scale */
    int id = r->charts;
    double ly = top + nr * ch + 16, lx = left, lw = nc * cw;
    fprintf(f, "<defs><linearGradient id=\"odl-vir-%d\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">", id);
    for (int k = 0; k <= 8; k++) {
        int c[3];
        viridis(k / 8.0, c);
        fprintf(f, "<stop offset=\"%.3f\" stop-color=\"rgb(%d,%d,%d)\"/>", k / 8.0, c[0], c[1], c[2]);
    }
    fputs("</linearGradient></defs>\n", f);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"9\" fill=\"url(#odl-vir-%d)\"/>\n", lx, ly, lw, id);
    snprintf(buf, sizeof buf, "%.0f%s", lo, h->unit ? h->unit : "");
    svg_text(f, lx, ly + 22, 10, "start", NULL, buf);
    snprintf(buf, sizeof buf, "%.0f%s", hi, h->unit ? h->unit : "");
    svg_text(f, lx + lw, ly + 22, 10, "end", NULL, buf);
    fputs("</svg>\n", f);
    return ferror(f) != 0;
}

/* ---- lines ------------------------------------------------------------------------------------------ */

int report_lines(report *r, const report_line_chart *c)
{
    FILE *f = r->f;
    const int n = c->n_x, ns = c->n_series;
    if (n <= 0 || ns <= 0)
        return 0;
    const double W = c->width > 0 ? c->width : 1160;
    double ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < n * ns; k++)
        if (isfinite(c->y[k])) {
            if (c->y[k] < ylo) ylo = c->y[k];
            if (c->y[k] > yhi) yhi = c->y[k];
        }
    if (!isfinite(ylo)) { ylo = 0; yhi = 1; }
    int lo_given = isfinite(c->lo), hi_given = isfinite(c->hi);
    if (lo_given) ylo = c->lo;
    if (hi_given) yhi = c->hi;
    const double small = W < 500;
    double ystep = nice_range(&ylo, &yhi, lo_given, hi_given, small ? 5 : 6);
    /* x */
    double xlo = 1, xhi = n, xstep = 1;
    if (c->x) {
        xlo = INFINITY;
        xhi = -INFINITY;
        for (int i = 0; i < n; i++)
            if (isfinite(c->x[i])) {
                if (c->x[i] < xlo) xlo = c->x[i];
                if (c->x[i] > xhi) xhi = c->x[i];
            }
        if (!isfinite(xlo)) { xlo = 0; xhi = 1; }
        if (xlo > 0 && xlo <= (xhi - xlo) * 0.25)
            xlo = 0;
        xstep = nice_range(&xlo, &xhi, 0, 0, small ? 4 : 8);
        int whole = 1;
        for (int i = 0; i < n; i++)
            whole &= !isfinite(c->x[i]) || c->x[i] == floor(c->x[i]);
        if (whole && xstep < 1) /* epochs 1, 2, 3: no ticks at 1.5 */
            xstep = 1;
    } else if (!c->x_ticks) {
        xstep = nice_step(n - 1 > 0 ? n - 1 : 1, small ? 4 : 8);
        if (xstep < 1)
            xstep = 1;
    }
    /* y label width */
    char buf[64];
    double yl_w = 0;
    for (double t = ylo; t <= yhi + ystep * 1e-6; t += ystep) {
        fmt_num(buf, sizeof buf, t, ystep);
        if (text_w(buf, 11) > yl_w)
            yl_w = text_w(buf, 11);
    }
    const double left = 28 + yl_w + 6, right = 16;
    const double pw = W - left - right;
    double leg_h = legend(f, left, 0, pw, c->series, ns, NULL, 1, 0);
    const double top = 34 + leg_h + (leg_h ? 8 : 0);
    const double ph = small ? 150 : 260;
    const double H = top + ph + 44 + (c->note ? 16 : 0);
    svg_open(r, "lines", W, H, c->title);
    svg_title(f, W, c->title);
    {
        const char *cols[64];
        for (int s = 0; s < ns && s < 64; s++)
            cols[s] = series_color(c->colors, s);
        legend(f, left, 46, pw, c->series, ns < 64 ? ns : 64, cols, 1, 1);
    }
    double cat_w = pw / n;
#define XP(i) (c->x ? left + (c->x[i] - xlo) / (xhi - xlo) * pw : c->x_ticks ? left + ((i) + 0.5) * cat_w \
                                                                     : left + ((i) + 1 - xlo) / (xhi - xlo > 0 ? xhi - xlo : 1) * pw)
#define YP(v) (top + ph - ((v) - ylo) / (yhi - ylo) * ph)
    for (double t = ylo; t <= yhi + ystep * 1e-6; t += ystep) {
        double y = YP(t);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e2e2e2\"/>\n", left, y, left + pw, y);
        fmt_num(buf, sizeof buf, t, ystep);
        svg_text(f, left - 5, y + 4, 11, "end", NULL, buf);
    }
    fprintf(f, "<path d=\"M%.1f %.1fV%.1fH%.1f\" stroke=\"#666\" fill=\"none\"/>\n", left, top, top + ph, left + pw);
    if (c->x || !c->x_ticks) {
        for (double t = xlo; t <= xhi + xstep * 1e-6; t += xstep) {
            double x = left + (t - xlo) / (xhi - xlo > 0 ? xhi - xlo : 1) * pw;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#666\"/>\n", x, top + ph, x,
                    top + ph + 4);
            fmt_num(buf, sizeof buf, t, xstep);
            svg_text(f, x, top + ph + 16, 11, "middle", NULL, buf);
        }
    } else {
        for (int i = 0; i < n; i++)
            svg_text(f, XP(i), top + ph + 16, 11, "middle", NULL, c->x_ticks[i]);
    }
    if (c->x_label)
        svg_text(f, left + pw / 2, top + ph + 34, 12, "middle", NULL, c->x_label);
    if (c->y_label) {
        fprintf(f, "<text transform=\"translate(13 %.1f) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">",
                top + ph / 2);
        esc(f, c->y_label);
        fputs("</text>\n", f);
    }
    if (c->note)
        svg_text(f, left, H - 6, 11, "start", "fill=\"#555\"", c->note);
    for (int s = 0; s < ns; s++) {
        const double *y = c->y + (size_t)s * n;
        const char *col = series_color(c->colors, s), *dash = DASHES[(s / N_PALETTE) % 4];
        fputs("<path d=\"", f);
        int pen = 0;
        for (int i = 0; i < n; i++) {
            if (!isfinite(y[i]) || (c->x && !isfinite(c->x[i]))) {
                pen = 0;
                continue;
            }
            fprintf(f, "%s%.1f %.1f", pen ? "L" : "M", XP(i), YP(y[i]));
            pen = 1;
        }
        fprintf(f, "\" stroke=\"%s\" stroke-width=\"2.2\" fill=\"none\" stroke-linejoin=\"round\"%s%s%s/>\n", col,
                *dash ? " stroke-dasharray=\"" : "", dash, *dash ? "\"" : "");
        int pts = 0;
        for (int i = 0; i < n; i++)
            pts += isfinite(y[i]) != 0;
        if (!c->markers || pts > 60)
            continue; /* a dense curve: markers would only blur it */
        for (int i = 0; i < n; i++) {
            if (!isfinite(y[i]) || (c->x && !isfinite(c->x[i])))
                continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.8\"><title>",
                    XP(i), YP(y[i]), col);
            if (c->series && c->series[s]) {
                esc(f, c->series[s]);
                fputs(", ", f);
            }
            if (c->x)
                fprintf(f, "%g: ", c->x[i]);
            else if (c->x_ticks) {
                esc(f, c->x_ticks[i]);
                fputs(": ", f);
            } else
                fprintf(f, "%d: ", i + 1);
            fprintf(f, "%.4g</title></circle>\n", y[i]);
        }
    }
#undef XP
#undef YP
    fputs("</svg>\n", f);
    return ferror(f) != 0;
}

/* ---- ready-made charts ---------------------------------------------------------------------------- */

int report_memory_plans(report *r, const char *title, const char *const *names, const odl_mem_plan *plans, int n)
{
    if (n <= 0)
        return 0;
    double *v = malloc(sizeof(double) * (size_t)n * ODL_MEM_KINDS);
    if (!v)
        return cli_error("out of memory");
    const char *kinds[ODL_MEM_KINDS], *cols[ODL_MEM_KINDS];
    for (int k = 0; k < ODL_MEM_KINDS; k++) {
        kinds[k] = report_mem_kind_label(k);
        cols[k] = report_mem_kind_color(k);
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ODL_MEM_KINDS; k++)
            v[(size_t)i * ODL_MEM_KINDS + k] = (double)plans[i].bytes[k];
    report_bar_chart c = {0};
    c.title = title;
    c.value_label = "planned bytes";
    c.categories = names;
    c.n_categories = n;
    c.series = kinds;
    c.n_series = ODL_MEM_KINDS;
    c.value = v;
    c.lo = 0;
    c.hi = NAN;
    c.stacked = 1;
    c.fmt = REPORT_FMT_BYTES;
    c.colors = cols;
    c.note = "exact bytes of each plan, per kind (16-byte aligned blocks, from the planning calls)";
    int rc = report_bars(r, &c);
    free(v);
    return rc;
}

int report_loss_curve(report *r, const char *title, const double *x, const double *loss, int n,
                      const double *epoch_loss, int n_epochs)
{
    if (n <= 0 && n_epochs <= 0)
        return 0;
    if (!epoch_loss || n_epochs <= 0) {
        static const char *const names[] = {"training loss"};
        report_line_chart c = {0};
        c.title = title;
        c.x_label = "epoch";
        c.y_label = "loss (cross-entropy)";
        c.n_x = n;
        c.x = x;
        c.series = names;
        c.n_series = 1;
        c.y = loss;
        c.lo = 0;
        c.hi = NAN;
        c.markers = n <= 40;
        return report_lines(r, &c);
    }
    /* both on one x: the points of the curve, then the epochs' means */
    const int m = (n > 0 ? n : 0) + n_epochs;
    double *xs = malloc(sizeof(double) * (size_t)m), *ys = malloc(sizeof(double) * (size_t)m * 2);
    if (!xs || !ys) {
        free(xs);
        free(ys);
        return cli_error("out of memory");
    }
    for (int i = 0; i < m; i++) {
        ys[i] = ys[m + i] = NAN;
        if (i < n) {
            xs[i] = x[i];
            ys[i] = loss[i];
        } else {
            xs[i] = i - n + 1;
            ys[m + i] = epoch_loss[i - n];
        }
    }
    static const char *const names[] = {"mean loss over the last steps", "mean loss of the epoch"};
    report_line_chart c = {0};
    c.title = title;
    c.x_label = "epoch";
    c.y_label = "loss (cross-entropy)";
    c.n_x = m;
    c.x = xs;
    c.series = names;
    c.n_series = 2;
    c.y = ys;
    c.lo = 0;
    c.hi = NAN;
    c.markers = 1;
    int rc = report_lines(r, &c);
    free(xs);
    free(ys);
    return rc;
}

int report_write_memory_plans(const char *path, const char *title, const char *subtitle, const char *const *names,
                              const odl_mem_plan *plans, int n)
{
    report r;
    if (report_open(&r, path, title, subtitle))
        return 1;
    int rc = report_memory_plans(&r, "Memory plan per kind", names, plans, n);
    return report_close(&r) || rc;
}

int report_write_loss_curve(const char *path, const char *title, const char *subtitle, const double *x,
                            const double *loss, int n, const double *epoch_loss, int n_epochs)
{
    report r;
    if (report_open(&r, path, title, subtitle))
        return 1;
    int rc = report_loss_curve(&r, "Training loss", x, loss, n, epoch_loss, n_epochs);
    return report_close(&r) || rc;
}
