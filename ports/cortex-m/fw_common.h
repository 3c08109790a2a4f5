/* fw_common.h — what the port's firmware programs share: the pass/fail
 * log, the fatal-error exit, and the head source (an FP32 model of a file's
 * last nodes, weights in place from flash) that a learner over an INT8
 * prefix copies its head from. */
#ifndef ODL_FW_COMMON_H
#define ODL_FW_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "odl/odl.h"

/* node storage of a head source: the nodes from the latent's producer on */
#define FW_HEAD_NODES 48

/* "ok      WHAT" or "not ok  WHAT", counted for fw_summary */
void fw_check(int ok, const char *what);
/* "N passed, N failed", the programs' last line; returns the failures */
int fw_summary(void);
/* logs WHAT with the status and the diagnostic, the summary, and exits 1 */
__attribute__((noreturn)) void fw_die(const char *what, odl_status s, const odl_diag *d);

/* runs EXPR; a negative status ends the program (needs `odl_diag diag` in scope) */
#define TRY(what, expr)                    \
    do {                                   \
        odl_status s_ = (expr);            \
        if (s_ < 0)                        \
            fw_die(what, s_, &diag);       \
    } while (0)

int32_t fw_argmax(const float *v, int32_t n);

/* The head's source: the FP32 nodes [boundary-1, L) of the file (the
 * latent's producer, then the head), weights in place from flash, planned
 * into PLAN and placed in A. The learner copies its head from node 1 and
 * takes the latent's shape from node 0's output. */
odl_model *fw_head_source(const uint8_t *file, size_t len, const odl_model_desc *desc, int32_t boundary,
                          odl_arena *a, odl_mem_plan *plan);

#endif
