/* target.h — the port's glue for Cortex-M4F on QEMU mps2-an386: one log
 * hook (semihosting), exit codes, an instruction counter (SysTick under
 * -icount shift=0) and the stack's high-water mark. Firmware-only code: the
 * portable core (src/) never sees any of this. */
#ifndef ODL_PORT_TARGET_H
#define ODL_PORT_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* The one log hook: a line of text to the host (semihosting SYS_WRITE0). */
void target_log(const char *line);
/* Small printf for the firmware (%d %u %ld %lu %lld %llu %zu %x %s %c %% and
 * %.Nf, which newlib-nano's printf lacks). Writes one line. */
void target_logf(const char *fmt, ...);
/* Formats into buf (cap bytes, always NUL-terminated). */
void target_vformat(char *buf, size_t cap, const char *fmt, __builtin_va_list ap);

/* Ends the program: exit code 0 only when code == 0 (semihosting
 * SYS_EXIT_EXTENDED, so QEMU exits with `code`). */
__attribute__((noreturn)) void target_exit(int code);

/* Instructions executed since start-up (SysTick at the CPU clock, wraps
 * counted; with -icount shift=0 QEMU runs one instruction per ns, so a tick
 * is a fixed number of instructions — calibrated at start-up against a loop
 * of known length). */
void target_counter_start(void);
uint64_t target_ticks(void);
uint64_t target_instructions(void);          /* ticks × insns_per_tick */
uint64_t target_cal_ticks(void);                /* ticks for 4,000,000 instructions */

/* Stack: size and the deepest use so far (from the paint pattern). */
size_t target_stack_size(void);
size_t target_stack_high_water(void);
/* RAM of the linker layout: stack + .data + .bss, and the heap left. */
size_t target_ram_static(void);
size_t target_heap_size(void);

#endif
