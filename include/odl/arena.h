/* odl/arena.h — the caller-provided memory arena and exact memory plans.
 *
 * The core never allocates. Every object is sized by a planning call, then
 * carved out of one buffer the caller owns (a static array on an MCU). A
 * *counting* arena (no buffer) runs the very same allocation sequence as the
 * real one, so a plan is exact by construction: the bytes a plan reports are
 * the bytes init takes, alignment padding included. */
#ifndef ODL_ARENA_H
#define ODL_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every block is aligned to this many bytes (SIMD loads, flash mapping). */
#define ODL_ALIGN 16

/* What a block of memory is for; plans report bytes per kind. */
typedef enum odl_mem_kind {
    ODL_MEM_PARAMS = 0,   /* weights and biases held in RAM */
    ODL_MEM_GRADS,        /* parameter gradients */
    ODL_MEM_OPTIM,        /* optimizer state (momentum, Adam moments) */
    ODL_MEM_ACTIVATIONS,  /* layer inputs kept for backward */
    ODL_MEM_SCRATCH,      /* reused buffers: ping-pong activations, im2col */
    ODL_MEM_BUFFERS,      /* replay buffers, latent caches, Fisher, statistics */
    ODL_MEM_STATE,        /* small bookkeeping structs */
    ODL_MEM_KINDS
} odl_mem_kind;

/* Static lower-case name of a kind ("params", "grads", ...). */
const char *odl_mem_kind_name(odl_mem_kind k);

typedef struct odl_mem_plan {
    size_t bytes[ODL_MEM_KINDS];
    size_t total; /* sum of bytes[], alignment padding included */
} odl_mem_plan;

typedef struct odl_arena {
    uint8_t *base;     /* NULL for a counting arena */
    size_t capacity;   /* bytes available at base */
    size_t used;       /* bytes handed out so far (offset of the next block) */
    odl_mem_plan plan; /* bytes handed out, per kind */
} odl_arena;

/* A real arena over `buf` (any alignment; the first block is aligned up). */
odl_status odl_arena_init(odl_arena *a, void *buf, size_t capacity);
/* A counting arena: allocations succeed, return NULL and only count bytes. */
void odl_arena_init_counting(odl_arena *a);
/* 1 if `a` only counts. */
int odl_arena_is_counting(const odl_arena *a);

/* Takes `bytes` (rounded up to ODL_ALIGN), zero-filled, of kind `kind`.
 * On a counting arena *out is set to NULL and ODL_OK returned. When the
 * buffer is too small, returns ODL_ERR_NOMEM with needed and available bytes
 * in `d`, and leaves the arena unchanged. */
odl_status odl_arena_alloc(odl_arena *a, size_t bytes, odl_mem_kind kind,
                           void **out, odl_diag *d);

/* Bytes still free in a real arena (0 for a counting one). */
size_t odl_arena_remaining(const odl_arena *a);

/* Adds plan b into a. */
void odl_mem_plan_add(odl_mem_plan *a, const odl_mem_plan *b);

#ifdef __cplusplus
}
#endif
#endif
