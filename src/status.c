#include "odl/status.h"

#include <stdarg.h>
#include <string.h>

const char *odl_status_str(odl_status s)
{
    switch (s) {
    case ODL_OK: return "ODL_OK: success";
    case ODL_EVENT_DRIFT: return "ODL_EVENT_DRIFT: drift detected";
    case ODL_EVENT_ROLLED_BACK: return "ODL_EVENT_ROLLED_BACK: update rolled back";
    case ODL_EVENT_REJECTED: return "ODL_EVENT_REJECTED: input rejected";
    case ODL_ERR_ARG: return "ODL_ERR_ARG: invalid argument";
    case ODL_ERR_NOMEM: return "ODL_ERR_NOMEM: memory budget too small";
    case ODL_ERR_SHAPE: return "ODL_ERR_SHAPE: impossible or mismatched shape";
    case ODL_ERR_FORMAT: return "ODL_ERR_FORMAT: malformed file";
    case ODL_ERR_CRC: return "ODL_ERR_CRC: checksum mismatch";
    case ODL_ERR_VERSION: return "ODL_ERR_VERSION: unsupported format version";
    case ODL_ERR_TRUNCATED: return "ODL_ERR_TRUNCATED: data ends early";
    case ODL_ERR_IO: return "ODL_ERR_IO: I/O failure";
    case ODL_ERR_UNSUPPORTED: return "ODL_ERR_UNSUPPORTED: not supported";
    case ODL_ERR_STATE: return "ODL_ERR_STATE: call out of order";
    case ODL_ERR_NUMERIC: return "ODL_ERR_NUMERIC: non-finite values";
    case ODL_ERR_NOT_FOUND: return "ODL_ERR_NOT_FOUND: not found";
    }
    return "ODL_ERR_?: unknown status";
}

void odl_diag_clear(odl_diag *d)
{
    if (!d)
        return;
    d->status = ODL_OK;
    d->msg[0] = '\0';
}

/* A tiny formatter: the core has no stdio. */
typedef struct {
    char *buf;
    size_t cap, len;
} sink;

static void put_c(sink *s, char c)
{
    if (s->len + 1 < s->cap)
        s->buf[s->len++] = c;
}

static void put_s(sink *s, const char *str)
{
    if (!str)
        str = "(null)";
    while (*str)
        put_c(s, *str++);
}

static void put_u(sink *s, unsigned long long v, unsigned base)
{
    char tmp[24];
    int n = 0;
    do {
        unsigned dgt = (unsigned)(v % base);
        tmp[n++] = (char)(dgt < 10 ? '0' + dgt : 'a' + dgt - 10);
        v /= base;
    } while (v && n < (int)sizeof tmp);
    while (n)
        put_c(s, tmp[--n]);
}

/* sign · m · 2^e (m < 2^53) with prec decimals (at most 9), rounded half up
 * from the exact binary value, in integer arithmetic only: a double's or a
 * float's bits, and no double-precision operation (software on a
 * single-precision FPU). Beyond 2^60 it prints "inf". */
static void put_fixed(sink *s, int neg, uint64_t m, int e, int prec)
{
    prec = prec < 0 ? 0 : prec > 9 ? 9 : prec;
    if (neg && m)
        put_c(s, '-');
    uint32_t one = 1;
    for (int i = 0; i < prec; i++)
        one *= 10u;
    uint64_t ip = 0;
    uint32_t fp = 0;
    if (e >= 0) {
        if (m && (e >= 60 || (m >> (60 - e)) != 0)) {
            put_s(s, "inf");
            return;
        }
        ip = m << e;
    } else {
        /* the fraction f / 2^sh (f < 2^53) times 10^prec: R = f · one, 96 bits
         * as hi · 2^32 + lo; its integer part and the bit below it */
        const int sh = -e;
        uint64_t f = m;
        if (sh < 53) {
            ip = m >> sh;
            f = m & (((uint64_t)1 << sh) - 1u);
        }
        const uint64_t lo_p = (f & 0xffffffffu) * one;
        const uint64_t hi = (f >> 32) * one + (lo_p >> 32);
        const uint32_t lo = (uint32_t)lo_p;
        int half;
        if (sh >= 32) {
            fp = sh - 32 < 64 ? (uint32_t)(hi >> (sh - 32)) : 0u;
            half = sh == 32 ? (int)(lo >> 31) : sh - 33 < 64 ? (int)((hi >> (sh - 33)) & 1u) : 0;
        } else {
            fp = (uint32_t)((hi << (32 - sh)) | (lo >> sh));
            half = (int)((lo >> (sh - 1)) & 1u);
        }
        if (half && ++fp == one) {
            fp = 0;
            ip++;
        }
    }
    put_u(s, ip, 10);
    if (prec > 0) {
        put_c(s, '.');
        char tmp[9];
        for (int i = prec - 1; i >= 0; i--) {
            tmp[i] = (char)('0' + fp % 10u);
            fp /= 10u;
        }
        for (int i = 0; i < prec; i++)
            put_c(s, tmp[i]);
    }
}

const char *odl_fmt_f32(char buf[ODL_FMT_F32_MAX], float v, int prec)
{
    sink s = {buf, ODL_FMT_F32_MAX, 0};
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    const int ex = (int)((b >> 23) & 0xffu);
    const uint32_t f = b & 0x7fffffu;
    if (ex == 0xff)
        put_s(&s, f ? "nan" : (b >> 31) ? "-inf" : "inf");
    else
        put_fixed(&s, (int)(b >> 31), ex ? f | 0x800000u : f, ex ? ex - 150 : -149, prec);
    buf[s.len] = '\0';
    return buf;
}

#ifndef ODL_NO_MESSAGES
static void put_f64(sink *s, double v, int prec)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    const int ex = (int)((b >> 52) & 0x7ffu);
    const uint64_t f = b & (((uint64_t)1 << 52) - 1u);
    if (ex == 0x7ff) {
        put_s(s, f ? "nan" : (b >> 63) ? "-inf" : "inf");
        return;
    }
    put_fixed(s, (int)(b >> 63), ex ? f | ((uint64_t)1 << 52) : f, ex ? ex - 1075 : -1074, prec);
}

static void put_i(sink *s, long long v)
{
    if (v < 0) {
        put_c(s, '-');
        put_u(s, (unsigned long long)(-(v + 1)) + 1u, 10);
    } else {
        put_u(s, (unsigned long long)v, 10);
    }
}

static void vformat(sink *s, const char *fmt, va_list ap)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            put_c(s, *p);
            continue;
        }
        p++;
        int prec = 6;
        if (*p == '.') {
            p++;
            prec = 0;
            while (*p >= '0' && *p <= '9')
                prec = prec * 10 + (*p++ - '0');
        }
        int longs = 0, size_t_arg = 0;
        while (*p == 'l') {
            longs++;
            p++;
        }
        if (*p == 'z') {
            size_t_arg = 1;
            p++;
        }
        switch (*p) {
        case 'd':
            if (size_t_arg) put_i(s, (long long)va_arg(ap, size_t));
            else if (longs >= 2) put_i(s, va_arg(ap, long long));
            else if (longs == 1) put_i(s, va_arg(ap, long));
            else put_i(s, va_arg(ap, int));
            break;
        case 'u':
        case 'x':
            if (size_t_arg) put_u(s, va_arg(ap, size_t), *p == 'x' ? 16 : 10);
            else if (longs >= 2) put_u(s, va_arg(ap, unsigned long long), *p == 'x' ? 16 : 10);
            else if (longs == 1) put_u(s, va_arg(ap, unsigned long), *p == 'x' ? 16 : 10);
            else put_u(s, va_arg(ap, unsigned), *p == 'x' ? 16 : 10);
            break;
        case 'f':
            put_f64(s, va_arg(ap, double), prec);
            break;
        case 'g':
            /* Scales and ranges are often far below 1: nine decimals keep
             * their significant digits where %f's six would not. */
            put_f64(s, va_arg(ap, double), prec == 6 ? 9 : prec);
            break;
        case 's':
            put_s(s, va_arg(ap, const char *));
            break;
        case 'c':
            put_c(s, (char)va_arg(ap, int));
            break;
        case '%':
            put_c(s, '%');
            break;
        case '\0':
            p--;
            break;
        default:
            put_c(s, '%');
            put_c(s, *p);
        }
    }
    s->buf[s->len] = '\0';
}
#endif

odl_status odl_fail(odl_diag *d, odl_status st, const char *fmt, ...)
{
    if (!d)
        return st;
    d->status = st;
#ifndef ODL_NO_MESSAGES
    sink s = {d->msg, sizeof d->msg, 0};
    va_list ap;
    va_start(ap, fmt);
    vformat(&s, fmt, ap);
    va_end(ap);
#else
    (void)fmt;
    d->msg[0] = '\0';
#endif
    return st;
}

void odl_diag_prefix(odl_diag *d, const char *prefix)
{
    if (!d || !prefix)
        return;
#ifndef ODL_NO_MESSAGES
    char tmp[ODL_DIAG_MAX];
    size_t pl = strlen(prefix);
    size_t ml = strlen(d->msg);
    size_t n = 0;
    for (size_t i = 0; i < pl && n + 1 < sizeof tmp; i++)
        tmp[n++] = prefix[i];
    if (n + 2 < sizeof tmp) {
        tmp[n++] = ':';
        tmp[n++] = ' ';
    }
    for (size_t i = 0; i < ml && n + 1 < sizeof tmp; i++)
        tmp[n++] = d->msg[i];
    tmp[n] = '\0';
    memcpy(d->msg, tmp, n + 1);
#endif
}
