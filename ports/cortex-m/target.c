/* target.c — semihosting log and exit, the instruction counter, the stack
 * high-water mark, and the few newlib system calls the tests' malloc and
 * stdio need (heap bounded by the linker script's budget). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include "target.h"

extern uint32_t __stack_bottom[], __stack_top[];
extern uint8_t __heap_start[], __heap_end[];
extern uint8_t __bss_end[];

#define STACK_PAINT 0xC0FFEE11u

/* ---- semihosting ------------------------------------------------------- */

#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_Stopped_ApplicationExit 0x20026

static inline int semihost(int op, const void *arg)
{
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void target_log(const char *line)
{
    semihost(SYS_WRITE0, line);
    semihost(SYS_WRITE0, "\n");
}

__attribute__((noreturn)) void target_exit(int code)
{
    uint32_t block[2] = {ADP_Stopped_ApplicationExit, (uint32_t)code};
    semihost(SYS_EXIT_EXTENDED, block);
    /* a host without SYS_EXIT_EXTENDED: report an exception (exit 1) unless 0 */
    semihost(SYS_EXIT, (const void *)(uintptr_t)(code == 0 ? ADP_Stopped_ApplicationExit : 0x20023));
    for (;;)
        __asm volatile("bkpt 0");
}

/* ---- formatting -------------------------------------------------------- */

typedef struct out {
    char *p;
    size_t cap, n;
} out;

static void put(out *o, char c)
{
    if (o->n + 1 < o->cap)
        o->p[o->n] = c;
    o->n++;
}

static void put_u(out *o, unsigned long long v, unsigned base, int width, char pad)
{
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (width-- > k)
        put(o, pad);
    while (k)
        put(o, tmp[--k]);
}

void target_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    out o = {buf, cap, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put(&o, *f);
            continue;
        }
        f++;
        char pad = ' ';
        int width = 0, prec = -1, l = 0, z = 0;
        if (*f == '0')
            pad = '0', f++;
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (*f++ - '0');
        if (*f == '.') {
            prec = 0;
            f++;
            while (*f >= '0' && *f <= '9')
                prec = prec * 10 + (*f++ - '0');
        }
        while (*f == 'l')
            l++, f++;
        if (*f == 'z')
            z = 1, f++;
        switch (*f) {
        case 'd': {
            long long v = l >= 2 ? va_arg(ap, long long) : l == 1 ? va_arg(ap, long) : z ? (long long)va_arg(ap, size_t) : va_arg(ap, int);
            if (v < 0) {
                put(&o, '-');
                v = -v;
                if (width)
                    width--;
            }
            put_u(&o, (unsigned long long)v, 10, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = l >= 2 ? va_arg(ap, unsigned long long) : l == 1 ? va_arg(ap, unsigned long)
                                  : z ? va_arg(ap, size_t) : va_arg(ap, unsigned);
            put_u(&o, v, *f == 'x' ? 16 : 10, width, pad);
            break;
        }
        case 'f': {
            /* decoded from the double's bits with integer arithmetic: the
             * firmware links no double-precision routine (run.sh checks) */
            const double dv = va_arg(ap, double);
            uint64_t bits;
            memcpy(&bits, &dv, sizeof bits);
            const int ex = (int)(bits >> 52 & 0x7ff);
            uint64_t mant = bits & ((1ull << 52) - 1);
            if (prec < 0 || prec > 6)
                prec = 6;
            if (ex == 0x7ff) {
                put(&o, 'n'), put(&o, 'a'), put(&o, 'n');
                break;
            }
            if (bits >> 63)
                put(&o, '-');
            uint64_t scale = 1;
            for (int i = 0; i < prec; i++)
                scale *= 10;
            /* value = mant' · 2^(ex - 1075); keep 33 bits of mantissa so
             * that mant' · 10^6 fits 64 bits */
            mant = ex ? (mant | 1ull << 52) >> 20 : mant >> 20;
            int sh = (ex ? ex : 1) - 1075 + 20;
            uint64_t all;
            if (sh >= 0)
                all = sh > 20 ? ~0ull : (mant * scale) << sh; /* |v| < 2^53: logs print no larger */
            else if (sh > -64)
                all = (mant * scale + (1ull << (-sh - 1))) >> -sh;
            else
                all = 0;
            put_u(&o, all / scale, 10, 0, ' ');
            if (prec) {
                put(&o, '.');
                put_u(&o, all % scale, 10, prec, '0');
            }
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            for (s = s ? s : "(null)"; *s; s++)
                put(&o, *s);
            break;
        }
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case '%':
            put(&o, '%');
            break;
        default:
            put(&o, '?');
            break;
        }
    }
    if (cap)
        buf[o.n < cap ? o.n : cap - 1] = 0;
}

void target_logf(const char *fmt, ...)
{
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    target_vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    target_log(buf);
}

/* ---- instruction counter ------------------------------------------------ */

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define RELOAD 0x00FFFFFFu

static volatile uint32_t systick_wraps;
static uint64_t cal_ticks = 1; /* ticks for CAL_INSNS instructions */
#define CAL_INSNS 4000000u

void SysTick_Handler(void)
{
    systick_wraps++;
}

uint64_t target_ticks(void)
{
    uint32_t w, v;
    do {
        w = systick_wraps;
        v = SYST_CVR;
    } while (w != systick_wraps);
    return (uint64_t)w * (RELOAD + 1u) + (RELOAD - v);
}

/* A loop of exactly 2 instructions per iteration (subs, bne). */
static __attribute__((noinline)) void spin(uint32_t n)
{
    __asm volatile("1: subs %0, %0, #1\n bne 1b\n" : "+r"(n) : : "cc");
}

void target_counter_start(void)
{
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */
    while (SYST_CVR == 0u) /* the first tick loads RELOAD */
        ;
    /* calibrate: 4,000,000 known instructions */
    uint64_t t0 = target_ticks();
    spin(2000000u);
    uint64_t dt = target_ticks() - t0;
    cal_ticks = dt ? dt : 1u;
}

uint64_t target_cal_ticks(void) { return cal_ticks; }
uint64_t target_instructions(void) { return target_ticks() * CAL_INSNS / cal_ticks; }

/* ---- stack and RAM -------------------------------------------------------- */

void target_stack_paint(void)
{
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = __stack_bottom; p < sp - 16; p++)
        *p = STACK_PAINT;
}

size_t target_stack_size(void) { return (size_t)((uint8_t *)__stack_top - (uint8_t *)__stack_bottom); }

size_t target_stack_high_water(void)
{
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == STACK_PAINT)
        p++;
    return (size_t)((const uint8_t *)__stack_top - (const uint8_t *)p);
}

size_t target_ram_static(void) { return (size_t)(__bss_end - (uint8_t *)0x20000000u); }
size_t target_heap_size(void) { return (size_t)(__heap_end - __heap_start); }

void target_fault_report(const char *what, const uint32_t *frame, uint32_t exc_return)
{
    volatile uint32_t *cfsr = (volatile uint32_t *)0xE000ED28u;
    volatile uint32_t *hfsr = (volatile uint32_t *)0xE000ED2Cu;
    volatile uint32_t *bfar = (volatile uint32_t *)0xE000ED38u;
    uint32_t pc = 0, lr = 0;
    int ok = (const uint32_t *)frame >= __stack_bottom && (const uint32_t *)frame + 8 <= __stack_top;
    if (ok) {
        pc = frame[6];
        lr = frame[5];
    }
    target_logf("FAULT: %s (CFSR 0x%x, HFSR 0x%x, BFAR 0x%x, EXC_RETURN 0x%x, SP 0x%x%s, PC 0x%x, LR 0x%x)", what,
                (unsigned)*cfsr, (unsigned)*hfsr, (unsigned)*bfar, (unsigned)exc_return, (unsigned)(uintptr_t)frame,
                ok ? "" : " outside the stack: overflow?", (unsigned)pc, (unsigned)lr);
}

/* ---- newlib system calls (tests: malloc, stdio to the log) -------------- */

static uint8_t *heap_brk;

void *_sbrk(ptrdiff_t incr)
{
    if (!heap_brk)
        heap_brk = __heap_start;
    if (incr < 0 || (size_t)(__heap_end - heap_brk) < (size_t)incr) {
        errno = ENOMEM;
        return (void *)-1;
    }
    uint8_t *old = heap_brk;
    heap_brk += incr;
    return old;
}

size_t target_heap_used(void);
size_t target_heap_used(void) { return heap_brk ? (size_t)(heap_brk - __heap_start) : 0; }

/* newlib-nano's aligned_alloc wants it */
void *memalign(size_t align, size_t n);
int posix_memalign(void **p, size_t align, size_t n);
int posix_memalign(void **p, size_t align, size_t n)
{
    void *q = memalign(align, n);
    if (!q)
        return ENOMEM;
    *p = q;
    return 0;
}

int _write(int fd, const char *buf, int n);
int _write(int fd, const char *buf, int n)
{
    (void)fd;
    char chunk[129];
    for (int i = 0; i < n;) {
        int k = n - i < 128 ? n - i : 128;
        memcpy(chunk, buf + i, (size_t)k);
        chunk[k] = 0;
        semihost(SYS_WRITE0, chunk);
        i += k;
    }
    return n;
}
int _read(int fd, char *buf, int n);
int _read(int fd, char *buf, int n) { (void)fd, (void)buf, (void)n; return 0; }
int _close(int fd);
int _close(int fd) { (void)fd; return -1; }
int _lseek(int fd, int off, int whence);
int _lseek(int fd, int off, int whence) { (void)fd, (void)off, (void)whence; return 0; }
int _fstat(int fd, struct stat *st);
int _fstat(int fd, struct stat *st) { (void)fd; memset(st, 0, sizeof *st); st->st_mode = S_IFCHR; return 0; }
int _isatty(int fd);
int _isatty(int fd) { (void)fd; return 1; }
int _getpid(void);
int _getpid(void) { return 1; }
int _kill(int pid, int sig);
int _kill(int pid, int sig) { (void)pid, (void)sig; errno = EINVAL; return -1; }
__attribute__((noreturn)) void _exit(int code);
__attribute__((noreturn)) void _exit(int code) { target_exit(code ? code : 0); }
