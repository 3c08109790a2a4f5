/* The harness's formatting uses vsnprintf, which newlib also provides on
 * the MCU; the core library itself stays free of stdio. */
#include "harness.h"
#include <stdarg.h>
#include <stdio.h>

void odl_test_logf(odl_test_ctx *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t->log(buf);
}

void odl_test_fail_at(odl_test_ctx *t, const char *file, int line, const char *what)
{
    t->checks_failed++;
    if (t->checks_failed <= 5)
        odl_test_logf(t, "    FAIL %s:%d: %s", file, line, what);
}

int odl_test_run(odl_test_ctx *t, const odl_test_case *cases, size_t n, const char *filter)
{
    for (size_t i = 0; i < n; i++) {
        if (filter && !strstr(cases[i].name, filter))
            continue;
        t->current = cases[i].name;
        t->checks_failed = 0;
        cases[i].fn(t);
        if (t->checks_failed) {
            t->tests_failed++;
            odl_test_logf(t, "not ok  %s (%d failed checks)", cases[i].name, (int)t->checks_failed);
        } else {
            t->tests_passed++;
            odl_test_logf(t, "ok      %s", cases[i].name);
        }
    }
    odl_test_logf(t, "%d passed, %d failed", (int)t->tests_passed, (int)t->tests_failed);
    return t->tests_failed;
}
