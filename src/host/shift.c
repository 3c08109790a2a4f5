/* Data shifts for experiments (host only). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "odl/data.h"

odl_status odl_shift_parse(const char *spec, odl_shift *s, odl_diag *d)
{
    memset(s, 0, sizeof *s);
    if (!spec || !*spec || !strcmp(spec, "none"))
        return ODL_OK;
    char *end;
    if (!strncmp(spec, "gain:", 5)) {
        errno = 0;
        double a = strtod(spec + 5, &end);
        if (errno || end == spec + 5 || *end != ',')
            return odl_fail(d, ODL_ERR_ARG, "--shift %s: expected gain:A,B (e.g. gain:0.8,0.1)", spec);
        const char *q = end + 1;
        double b = strtod(q, &end);
        if (errno || end == q || *end || !isfinite(a) || !isfinite(b))
            return odl_fail(d, ODL_ERR_ARG, "--shift %s: expected gain:A,B (e.g. gain:0.8,0.1)", spec);
        s->kind = 1;
        s->a = (float)a;
        s->b = (float)b;
        return ODL_OK;
    }
    if (!strncmp(spec, "translate:", 10)) {
        errno = 0;
        long dx = strtol(spec + 10, &end, 10);
        if (errno || end == spec + 10 || *end != ',')
            return odl_fail(d, ODL_ERR_ARG, "--shift %s: expected translate:DX,DY (e.g. translate:2,2)", spec);
        const char *q = end + 1;
        long dy = strtol(q, &end, 10);
        if (errno || end == q || *end || labs(dx) > 4096 || labs(dy) > 4096)
            return odl_fail(d, ODL_ERR_ARG, "--shift %s: expected translate:DX,DY (e.g. translate:2,2)", spec);
        s->kind = 2;
        s->dx = (int32_t)dx;
        s->dy = (int32_t)dy;
        return ODL_OK;
    }
    return odl_fail(d, ODL_ERR_ARG, "--shift %s: unknown shift (gain:A,B or translate:DX,DY)", spec);
}

void odl_shift_apply(const odl_shift *s, float *x, int32_t n, int32_t c, int32_t h, int32_t w)
{
    const size_t plane = (size_t)h * w;
    if (s->kind == 1) {
        const size_t total = (size_t)n * c * plane;
        for (size_t i = 0; i < total; i++) {
            float v = s->a * x[i] + s->b;
            x[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    } else if (s->kind == 2) {
        float *tmp = malloc(sizeof(float) * plane);
        if (!tmp)
            return;
        for (size_t p = 0; p < (size_t)n * c; p++) {
            float *img = x + p * plane;
            for (int32_t r = 0; r < h; r++)
                for (int32_t q = 0; q < w; q++) {
                    int32_t sr = r - s->dy, sq = q - s->dx;
                    tmp[(size_t)r * w + q] = (sr >= 0 && sr < h && sq >= 0 && sq < w) ? img[(size_t)sr * w + sq] : 0.0f;
                }
            memcpy(img, tmp, sizeof(float) * plane);
        }
        free(tmp);
    }
}

void odl_dataset_shift(odl_dataset *ds, const odl_shift *s)
{
    odl_shift_apply(s, ds->x, ds->n, ds->c, ds->h, ds->w);
}

odl_status odl_dataset_copy(const odl_dataset *ds, odl_dataset *out)
{
    *out = *ds;
    size_t nx = (size_t)ds->n * ds->c * ds->h * ds->w;
    out->x = malloc(sizeof(float) * (nx ? nx : 1));
    out->y = malloc(sizeof(int32_t) * (ds->n ? (size_t)ds->n : 1));
    if (!out->x || !out->y) {
        free(out->x);
        free(out->y);
        memset(out, 0, sizeof *out);
        return ODL_ERR_NOMEM;
    }
    memcpy(out->x, ds->x, sizeof(float) * nx);
    memcpy(out->y, ds->y, sizeof(int32_t) * (size_t)ds->n);
    return ODL_OK;
}
