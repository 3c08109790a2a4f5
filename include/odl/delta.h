/* odl/delta.h — signed head deltas: what a device sends its fleet's server
 * after learning locally, and how the server checks it. Also SHA-256 and
 * HMAC-SHA256, which the messages are signed with.
 *
 * A delta message is an .odl container (docs/format.md, "Head deltas"):
 *
 *   header | DLTA chunk | AUTH chunk | END chunk
 *
 * DLTA holds who sent it (device id), when (round, sequence number), what it
 * applies to (the SHA-256 identity of the global model and the head's tensor
 * table) and the head's parameter change, device − global, as float32 per
 * tensor. AUTH holds HMAC-SHA256 under the device's key over every byte
 * before it. Every chunk carries its CRC-32 as in any .odl file; the CRC
 * catches damage, the HMAC catches forgery.
 *
 * Device side:
 *   size_t n; odl_delta_size(global, boundary, &n, &diag);     // exact bytes
 *   odl_delta_encode(device_model, global, &info, key, key_len, &writer, &diag);
 * Server side:
 *   odl_delta_receiver r = {...};            // global model, boundary, round, keys
 *   odl_delta_model_id(global, r.base_id);   // once per global model
 *   odl_delta_verify(&r, buf, len, &view, &reason, &diag);
 *   // reason says why a message was refused; on ODL_OK the device's last
 *   // sequence number in r.keys was raised to the message's
 *
 * No malloc, no stdio: the encoder streams through an odl_writer; the
 * verifier reads the message in place. */
#ifndef ODL_DELTA_H
#define ODL_DELTA_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/model.h"
#include "odl/file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) ---------------------- */

#define ODL_SHA256_BYTES 32
#define ODL_SHA256_BLOCK 64

typedef struct odl_sha256_ctx {
    uint32_t h[8];
    uint64_t bytes;            /* message bytes so far */
    uint8_t block[ODL_SHA256_BLOCK];
    uint32_t fill;             /* bytes waiting in block */
} odl_sha256_ctx;

void odl_sha256_init(odl_sha256_ctx *c);
void odl_sha256_update(odl_sha256_ctx *c, const void *data, size_t n);
void odl_sha256_final(odl_sha256_ctx *c, uint8_t out[ODL_SHA256_BYTES]);
/* One call: out = SHA-256(data). */
void odl_sha256(const void *data, size_t n, uint8_t out[ODL_SHA256_BYTES]);

typedef struct odl_hmac_sha256_ctx {
    odl_sha256_ctx inner, outer;
} odl_hmac_sha256_ctx;

/* Any key length (a key longer than 64 bytes is hashed first, as RFC 2104 says). */
void odl_hmac_sha256_init(odl_hmac_sha256_ctx *c, const uint8_t *key, size_t key_len);
void odl_hmac_sha256_update(odl_hmac_sha256_ctx *c, const void *data, size_t n);
void odl_hmac_sha256_final(odl_hmac_sha256_ctx *c, uint8_t out[ODL_SHA256_BYTES]);
void odl_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t n,
                     uint8_t out[ODL_SHA256_BYTES]);

/* 1 if a and b (n bytes each) are equal. Its time depends on n only, never
 * on where they differ, so a forger learns nothing from how long a refusal
 * took. */
int odl_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* ---- the message --------------------------------------------------------- */

#define ODL_CHUNK_DELTA ODL_FOURCC('D', 'L', 'T', 'A')
#define ODL_CHUNK_AUTH  ODL_FOURCC('A', 'U', 'T', 'H')
#define ODL_DELTA_LAYOUT_VERSION 1u
#define ODL_DELTA_AUTH_HMAC_SHA256 1u
/* Per-device keys: 16 to 64 bytes (128 to 512 bits). */
#define ODL_DELTA_KEY_MIN 16
#define ODL_DELTA_KEY_MAX 64
/* At most this many tensors in a head (a bound checked before any loop). */
#define ODL_DELTA_MAX_TENSORS 4096

/* What a device says about its delta. */
typedef struct odl_delta_info {
    uint32_t device_id;
    uint32_t round;      /* the aggregation round the device learned in */
    uint64_t seq;        /* this device's message number, >= 1, strictly increasing */
    uint32_t examples;   /* examples the device learned from (>= 1; the aggregator's weight) */
    int32_t boundary;    /* the head: parameter tensors of nodes [boundary, n_layers) */
} odl_delta_info;

/* The identity of a model: SHA-256 over its input shape, every node's
 * structure (the trainable flags excepted) and every parameter's float32
 * bytes (docs/format.md gives the exact bytes). Two models that compute the
 * same function with the same parameters have the same identity. */
odl_status odl_delta_model_id(const odl_model *m, uint8_t id[ODL_SHA256_BYTES], odl_diag *d);

/* Exact bytes of a message for m's head from `boundary` (a cut point
 * 0..n_layers-1 with at least one parameter tensor after it). */
odl_status odl_delta_size(const odl_model *m, int32_t boundary, size_t *bytes, odl_diag *d);

/* Writes a signed message: the head of `device` minus the head of
 * `global`, nodes [info->boundary, n_layers). The two models must have the
 * same nodes, and equal parameters below the boundary (else the delta would
 * not apply to the global model: ODL_ERR_SHAPE naming the node). Every
 * difference must be finite (ODL_ERR_NUMERIC). key: 16..64 bytes. The
 * global model's identity goes into the message. */
odl_status odl_delta_encode(const odl_model *device, const odl_model *global, const odl_delta_info *info,
                            const uint8_t *key, size_t key_len, odl_writer *w, odl_diag *d);

/* Why a message was refused (or ODL_DELTA_ACCEPTED). The checks run in this
 * order; a message is counted under the first one it fails, and nothing a
 * sender without the key can change gets past the signature check. */
typedef enum odl_delta_reason {
    ODL_DELTA_ACCEPTED = 0,
    ODL_DELTA_MALFORMED = 1,        /* framing, CRC, lengths, fields out of range, chunk order */
    ODL_DELTA_UNSUPPORTED = 2,      /* a DLTA or AUTH layout version this odl does not read */
    ODL_DELTA_UNSIGNED = 3,         /* no AUTH chunk */
    ODL_DELTA_UNKNOWN_DEVICE = 4,   /* no key for the device id */
    ODL_DELTA_BAD_SIGNATURE = 5,    /* the HMAC does not match */
    ODL_DELTA_STALE_ROUND = 6,      /* an earlier round than the receiver's */
    ODL_DELTA_FUTURE_ROUND = 7,     /* a later round than the receiver's */
    ODL_DELTA_REPLAY = 8,           /* sequence number not above the device's last */
    ODL_DELTA_WRONG_BASE = 9,       /* made against another global model */
    ODL_DELTA_OUT_OF_SHAPE = 10,    /* head tensors differ from the receiver's */
    ODL_DELTA_NON_FINITE = 11       /* a NaN or infinity in the values */
} odl_delta_reason;
#define ODL_DELTA_N_REASONS 12

/* Static snake_case name ("bad_signature", ...), "?" if unknown. */
const char *odl_delta_reason_name(int32_t reason);

/* One device the receiver knows. */
typedef struct odl_delta_key {
    uint32_t device_id;
    uint32_t key_len;              /* ODL_DELTA_KEY_MIN..ODL_DELTA_KEY_MAX */
    uint8_t key[ODL_DELTA_KEY_MAX];
    uint64_t last_seq;             /* 0: none seen yet (sequence numbers start at 1) */
} odl_delta_key;

typedef struct odl_delta_receiver {
    const odl_model *global;       /* the model the deltas must apply to */
    int32_t boundary;              /* its head */
    uint32_t round;                /* the round being collected */
    uint8_t base_id[ODL_SHA256_BYTES]; /* odl_delta_model_id(global) */
    odl_delta_key *keys;           /* the devices, sorted by device_id, ids distinct (a binary search
                                      finds a device; an unsorted table may miss one) */
    int32_t n_keys;
} odl_delta_receiver;

/* A message read in place (pointers into the caller's buffer). */
typedef struct odl_delta_view {
    odl_delta_info info;
    uint8_t base_id[ODL_SHA256_BYTES];
    int32_t n_tensors;
    int32_t signed_;               /* 1: an AUTH chunk is present (checked only by verify) */
    const uint8_t *table;          /* n_tensors records of 16 bytes */
    const uint8_t *data;           /* the first tensor's values */
    size_t bytes;                  /* the message's length */
} odl_delta_view;

/* Checks a message from a device and reads it: framing and CRCs, layouts,
 * the device's key and signature (constant-time), the round, the sequence
 * number, the base identity, the tensor table against r's head, every value
 * finite. ODL_OK: accepted, *view filled, and that device's last_seq raised
 * to the message's (the caller persists it to refuse replays across runs).
 * ODL_EVENT_REJECTED: refused, *reason says why (never ODL_DELTA_ACCEPTED)
 * and d holds one line naming the device and the value; nothing in r
 * changes. An error (< 0) is the caller's mistake (NULL arguments, a key of
 * the wrong length in r). reason may be NULL. */
odl_status odl_delta_verify(odl_delta_receiver *r, const void *buf, size_t len, odl_delta_view *view,
                            odl_delta_reason *reason, odl_diag *d);

/* Reads a message without keys or a receiver: framing, CRCs, layouts,
 * lengths and finite values (not the signature: for messages a verifier
 * has already accepted, e.g. files written by `odl fleet collect`). A
 * refusal is an error status (ODL_ERR_FORMAT, _CRC, _TRUNCATED,
 * _UNSUPPORTED, _VERSION, _NUMERIC) with *reason set as verify would. */
odl_status odl_delta_parse(const void *buf, size_t len, odl_delta_view *view, odl_delta_reason *reason,
                           odl_diag *d);

/* Tensor i of a view: the node, which (0 weights, 1 bias) and count. */
odl_status odl_delta_tensor_info(const odl_delta_view *v, int32_t i, int32_t *node, int32_t *which, size_t *count,
                                 odl_diag *d);
/* Copies tensor i's values (count floats, as odl_delta_tensor_info gives)
 * into out: any alignment, any host byte order. */
odl_status odl_delta_tensor_copy(const odl_delta_view *v, int32_t i, float *out, size_t count, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
