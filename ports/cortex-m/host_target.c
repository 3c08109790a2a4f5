/* host_target.c — target.h on a host, so that firmware.c runs natively
 * (seed_sweep.sh): the log to stdout, no instruction counter (every cost
 * reads 0), no stack measurement. The learning is the same code as on the
 * device; float results can differ in the last bits (x87/SSE vs the M4F). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "target.h"

void target_log(const char *line) { puts(line); }

void target_logf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

void target_vformat(char *buf, size_t cap, const char *fmt, __builtin_va_list ap) { vsnprintf(buf, cap, fmt, ap); }
void target_exit(int code) { exit(code); }
void target_counter_start(void) {}
uint64_t target_ticks(void) { return 0; }
uint64_t target_instructions(void) { return 0; }
uint64_t target_cal_ticks(void) { return 0; }
size_t target_stack_size(void) { return (size_t)1 << 20; }
size_t target_stack_high_water(void) { return 0; }
size_t target_ram_static(void) { return (size_t)1 << 20; }
size_t target_heap_size(void) { return 0; }
