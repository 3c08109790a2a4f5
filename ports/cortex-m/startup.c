/* startup.c — reset and fault handling for Cortex-M4F (mps2-an386 under QEMU).
 * Our own start-up (linked with -nostartfiles): newlib's rdimon crt0 would
 * place stack and heap by the board's 4 MB of RAM, not by our budget. */
#include <stdint.h>
#include <string.h>
#include "target.h"

extern uint32_t __stack_bottom[], __stack_top[];
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

int main(void);
void target_stack_paint(void);
void target_fault_report(const char *what, const uint32_t *frame, uint32_t exc_return);
void SysTick_Handler(void);

#define STACK_PAINT 0xC0FFEE11u

__attribute__((noreturn)) void Reset_Handler(void)
{
    /* FPU: full access to CP10 and CP11, before any FP instruction (even the
     * compiler's spills in main), then the barriers the ARM ARM requires. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= (0xFu << 20);
    __asm volatile("dsb\n isb" ::: "memory");
    /* usage faults for division by zero and unaligned... keep unaligned
     * allowed (the core may memcpy), trap divide by zero */
    volatile uint32_t *ccr = (volatile uint32_t *)0xE000ED14u;
    *ccr |= (1u << 4);
    /* enable MemManage, BusFault, UsageFault as separate handlers */
    volatile uint32_t *shcsr = (volatile uint32_t *)0xE000ED24u;
    *shcsr |= (1u << 16) | (1u << 17) | (1u << 18);

    for (uint32_t *s = __data_load, *d = __data_start; d < __data_end;)
        *d++ = *s++;
    for (uint32_t *d = __bss_start; d < __bss_end;)
        *d++ = 0;
    target_stack_paint();
    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++)
        (*f)();
    target_exit(main());
}

/* Fault entry: the first thing is to move SP back to the top of the stack
 * (a stack overflow faults with SP below RAM, and any push would fault
 * again and lock the core up), then report in C with the stacked frame. */
#define FAULT_ENTRY(name, text)                                              \
    __attribute__((used)) static const char name##_text[] = text;            \
    __attribute__((naked, noreturn)) void name(void)                         \
    {                                                                        \
        __asm volatile("mov r1, sp\n"                                        \
                       "mov r2, lr\n"                                        \
                       "ldr r0, =__stack_top\n"                              \
                       "mov sp, r0\n"                                        \
                       "ldr r0, =" #name "_text\n"                          \
                       "b target_fault_entry\n");                            \
    }

__attribute__((noreturn, used)) void target_fault_entry(const char *what, const uint32_t *frame, uint32_t exc_return)
{
    target_fault_report(what, frame, exc_return);
    target_exit(3);
}

FAULT_ENTRY(NMI_Handler, "NMI")
FAULT_ENTRY(HardFault_Handler, "HardFault")
FAULT_ENTRY(MemManage_Handler, "MemManage fault")
FAULT_ENTRY(BusFault_Handler, "BusFault")
FAULT_ENTRY(UsageFault_Handler, "UsageFault")
FAULT_ENTRY(Default_Handler, "unexpected interrupt")

typedef void (*vector)(void);
__attribute__((section(".vectors"), used)) const vector target_vectors[16 + 32] = {
    (vector)(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    Default_Handler, /* SVC */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    [16 ... 47] = Default_Handler,
};
