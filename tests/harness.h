/* tests/harness.h — a test harness small enough for a microcontroller.
 * No malloc, no stdio in the checks themselves: output goes through one log
 * hook (host: stdout; target: semihosting/UART). A run prints
 * "N passed, N failed" as its last line and returns non-zero on failure. */
#ifndef ODL_TEST_HARNESS_H
#define ODL_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

typedef void (*odl_test_log_fn)(const char *text);

typedef struct odl_test_ctx {
    odl_test_log_fn log;
    int32_t checks_failed; /* in the current test */
    int32_t tests_passed, tests_failed;
    const char *current;
} odl_test_ctx;

typedef void (*odl_test_fn)(odl_test_ctx *t);

typedef struct odl_test_case {
    const char *name;
    odl_test_fn fn;
} odl_test_case;

void odl_test_logf(odl_test_ctx *t, const char *fmt, ...);
void odl_test_fail_at(odl_test_ctx *t, const char *file, int line, const char *what);
/* Runs every case (or only those whose name contains `filter`, if non-NULL);
 * returns the number of failed tests. */
int odl_test_run(odl_test_ctx *t, const odl_test_case *cases, size_t n, const char *filter);

#define CHECK(cond) do { if (!(cond)) { odl_test_fail_at(t, __FILE__, __LINE__, #cond); } } while (0)
#define REQUIRE(cond) do { if (!(cond)) { odl_test_fail_at(t, __FILE__, __LINE__, #cond); return; } } while (0)
#define CHECK_OK(expr) do { odl_status s_ = (expr); if (s_ != ODL_OK) { \
    odl_test_logf(t, "    status %d (%s)", (int)s_, odl_status_str(s_)); \
    odl_test_fail_at(t, __FILE__, __LINE__, #expr); return; } } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (double)(a), b_ = (double)(b); \
    if (!(fabs(a_ - b_) <= (double)(tol)) ) { \
    odl_test_logf(t, "    %g vs %g (tol %g)", a_, b_, (double)(tol)); \
    odl_test_fail_at(t, __FILE__, __LINE__, #a " ~ " #b); } } while (0)

#define TEST_MAIN(cases) \
    static void log_stdout_(const char *s) { fputs(s, stdout); fputc('\n', stdout); fflush(stdout); } \
    int main(int argc, char **argv) { \
        odl_test_ctx t = {0}; t.log = log_stdout_; \
        return odl_test_run(&t, cases, sizeof(cases) / sizeof(cases[0]), argc > 1 ? argv[1] : NULL) ? 1 : 0; \
    }

#endif
