/* test_malloc.c — the unit tests' malloc on the target. The tests size
 * arenas exactly (odl_arena_init over plan.total bytes) and so assume, as
 * glibc gives on x86-64, 16-byte aligned malloc blocks; newlib-nano's are
 * 8-byte aligned, which would cost the arena its first 8 bytes. Linked with
 * -Wl,--wrap=malloc,--wrap=calloc. */
#include <stddef.h>
#include <string.h>

void *memalign(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);

void *__wrap_malloc(size_t n) { return memalign(16, n ? n : 1); }

void *__wrap_calloc(size_t k, size_t n)
{
    if (n && k > (size_t)-1 / n)
        return NULL;
    const size_t bytes = k * n;
    void *p = memalign(16, bytes ? bytes : 1);
    if (p)
        memset(p, 0, bytes);
    return p;
}
