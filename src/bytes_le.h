/* Little-endian byte access for the file, chunk and store formats: one copy
 * for every core file that encodes or decodes them. Internal to src/. */
#ifndef ODL_BYTES_LE_H
#define ODL_BYTES_LE_H

#include <stdint.h>
#include <string.h>

static inline void le_put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void le_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void le_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void le_put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    le_put_u32(p, u);
}
static inline uint32_t le_get_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static inline uint32_t le_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline int32_t le_get_i32(const uint8_t *p)
{
    const uint32_t u = le_get_u32(p);
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}
static inline uint64_t le_get_u64(const uint8_t *p)
{
    return (uint64_t)le_get_u32(p) | ((uint64_t)le_get_u32(p + 4) << 32);
}
static inline float le_get_f32(const uint8_t *p)
{
    const uint32_t u = le_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
