/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for odl/delta.h: a plain,
 * portable implementation (byte order handled explicitly, no tables beyond
 * the 64 round constants), checked against NIST's and RFC 4231's vectors and
 * Python's hashlib in tests/test_delta.c. */
#include "odl/delta.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static void compress(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        const uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void odl_sha256_init(odl_sha256_ctx *c)
{
    static const uint32_t h0[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(c->h, h0, sizeof h0);
    c->bytes = 0;
    c->fill = 0;
}

void odl_sha256_update(odl_sha256_ctx *c, const void *data, size_t n)
{
    const uint8_t *p = data;
    if (!n)
        return;
    c->bytes += (uint64_t)n;
    if (c->fill) {
        size_t take = ODL_SHA256_BLOCK - c->fill;
        if (take > n)
            take = n;
        memcpy(c->block + c->fill, p, take);
        c->fill += (uint32_t)take;
        p += take;
        n -= take;
        if (c->fill < ODL_SHA256_BLOCK)
            return;
        compress(c->h, c->block);
        c->fill = 0;
    }
    for (; n >= ODL_SHA256_BLOCK; p += ODL_SHA256_BLOCK, n -= ODL_SHA256_BLOCK)
        compress(c->h, p);
    if (n) {
        memcpy(c->block, p, n);
        c->fill = (uint32_t)n;
    }
}

void odl_sha256_final(odl_sha256_ctx *c, uint8_t out[ODL_SHA256_BYTES])
{
    const uint64_t bits = c->bytes * 8u;
    c->block[c->fill++] = 0x80;
    if (c->fill > ODL_SHA256_BLOCK - 8) {
        memset(c->block + c->fill, 0, ODL_SHA256_BLOCK - c->fill);
        compress(c->h, c->block);
        c->fill = 0;
    }
    memset(c->block + c->fill, 0, ODL_SHA256_BLOCK - 8 - c->fill);
    for (int i = 0; i < 8; i++)
        c->block[ODL_SHA256_BLOCK - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(c->h, c->block);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(c->h[i] >> (24 - 8 * j));
    /* a finished context holds nothing worth keeping */
    memset(c->block, 0, sizeof c->block);
    c->fill = 0;
}

void odl_sha256(const void *data, size_t n, uint8_t out[ODL_SHA256_BYTES])
{
    odl_sha256_ctx c;
    odl_sha256_init(&c);
    odl_sha256_update(&c, data, n);
    odl_sha256_final(&c, out);
}

void odl_hmac_sha256_init(odl_hmac_sha256_ctx *c, const uint8_t *key, size_t key_len)
{
    uint8_t k[ODL_SHA256_BLOCK], pad[ODL_SHA256_BLOCK];
    memset(k, 0, sizeof k);
    if (key_len > ODL_SHA256_BLOCK)
        odl_sha256(key, key_len, k);
    else if (key_len)
        memcpy(k, key, key_len);
    for (int i = 0; i < ODL_SHA256_BLOCK; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x36u);
    odl_sha256_init(&c->inner);
    odl_sha256_update(&c->inner, pad, sizeof pad);
    for (int i = 0; i < ODL_SHA256_BLOCK; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x5cu);
    odl_sha256_init(&c->outer);
    odl_sha256_update(&c->outer, pad, sizeof pad);
    memset(k, 0, sizeof k);
    memset(pad, 0, sizeof pad);
}

void odl_hmac_sha256_update(odl_hmac_sha256_ctx *c, const void *data, size_t n)
{
    odl_sha256_update(&c->inner, data, n);
}

void odl_hmac_sha256_final(odl_hmac_sha256_ctx *c, uint8_t out[ODL_SHA256_BYTES])
{
    uint8_t ih[ODL_SHA256_BYTES];
    odl_sha256_final(&c->inner, ih);
    odl_sha256_update(&c->outer, ih, sizeof ih);
    odl_sha256_final(&c->outer, out);
    memset(ih, 0, sizeof ih);
}

void odl_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t n, uint8_t out[ODL_SHA256_BYTES])
{
    odl_hmac_sha256_ctx c;
    odl_hmac_sha256_init(&c, key, key_len);
    odl_hmac_sha256_update(&c, data, n);
    odl_hmac_sha256_final(&c, out);
    memset(&c, 0, sizeof c);
}

int odl_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    /* volatile: keeps the compiler from ending the loop at the first difference */
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff = (uint8_t)(diff | (a[i] ^ b[i]));
    return diff == 0;
}
