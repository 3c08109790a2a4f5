/* test_target.h — force-included (-include) before a core unit test built
 * for the target: the same harness (tests/harness.h), with TEST_MAIN
 * redefined so the one log hook is the semihosting log, and the stack's
 * high-water mark reported after the run. */
#ifndef ODL_PORT_TEST_TARGET_H
#define ODL_PORT_TEST_TARGET_H
#include "harness.h"
#include "target.h"

#ifndef ODL_TEST_FILTER
#define ODL_TEST_FILTER NULL
#endif

size_t target_heap_used(void);

#undef TEST_MAIN
#define TEST_MAIN(cases)                                                                          \
    int main(void)                                                                                \
    {                                                                                             \
        odl_test_ctx t = {0};                                                                     \
        t.log = target_log;                                                                       \
        target_counter_start();                                                                   \
        int failed = odl_test_run(&t, cases, sizeof(cases) / sizeof(cases[0]), ODL_TEST_FILTER);  \
        size_t hw = target_stack_high_water();                                                    \
        target_logf("target: stack high-water %zu of %zu bytes, heap used %zu of %zu, %lu instructions", hw, \
                    target_stack_size(), target_heap_used(), target_heap_size(),                  \
                    (unsigned long)target_instructions());                                        \
        if (hw + 256 > target_stack_size()) {                                                     \
            target_log("target: stack overflow risk: high-water within 256 bytes of the stack size"); \
            return 1;                                                                             \
        }                                                                                         \
        return failed ? 1 : 0;                                                                    \
    }
#endif
