#include "odl/arena.h"

#include <string.h>

static const char *const kind_names[ODL_MEM_KINDS] = {
    "params", "grads", "optimizer", "activations", "scratch", "buffers", "state"};

const char *odl_mem_kind_name(odl_mem_kind k)
{
    return (unsigned)k < ODL_MEM_KINDS ? kind_names[k] : "?";
}

static size_t align_up(size_t v)
{
    return (v + (ODL_ALIGN - 1)) & ~(size_t)(ODL_ALIGN - 1);
}

odl_status odl_arena_init(odl_arena *a, void *buf, size_t capacity)
{
    if (!a || (!buf && capacity))
        return ODL_ERR_ARG;
    memset(a, 0, sizeof *a);
    uintptr_t p = (uintptr_t)buf;
    size_t skip = (size_t)((ODL_ALIGN - (p & (ODL_ALIGN - 1))) & (ODL_ALIGN - 1));
    if (skip > capacity)
        skip = capacity;
    a->base = (uint8_t *)buf + skip;
    a->capacity = capacity - skip;
    return ODL_OK;
}

void odl_arena_init_counting(odl_arena *a)
{
    memset(a, 0, sizeof *a);
}

int odl_arena_is_counting(const odl_arena *a)
{
    return a->base == NULL;
}

odl_status odl_arena_alloc(odl_arena *a, size_t bytes, odl_mem_kind kind, void **out,
                           odl_diag *d)
{
    *out = NULL;
    if ((unsigned)kind >= ODL_MEM_KINDS)
        return odl_fail(d, ODL_ERR_ARG, "arena: unknown memory kind %d", (int)kind);
    size_t size = align_up(bytes);
    if (size < bytes)
        return odl_fail(d, ODL_ERR_NOMEM, "arena: request of %zu bytes overflows", bytes);
    if (a->base) {
        if (size > a->capacity - a->used)
            return odl_fail(d, ODL_ERR_NOMEM,
                            "arena too small: %zu more bytes of %s needed, %zu of %zu available",
                            size, odl_mem_kind_name(kind), a->capacity - a->used, a->capacity);
        *out = a->base + a->used;
        memset(*out, 0, size);
    }
    a->used += size;
    a->plan.bytes[kind] += size;
    a->plan.total += size;
    return ODL_OK;
}

size_t odl_arena_remaining(const odl_arena *a)
{
    return a->base ? a->capacity - a->used : 0;
}

void odl_mem_plan_add(odl_mem_plan *a, const odl_mem_plan *b)
{
    for (int k = 0; k < ODL_MEM_KINDS; k++)
        a->bytes[k] += b->bytes[k];
    a->total += b->total;
}
