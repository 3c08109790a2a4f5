/* odl/file.h — the .odl model file: chunked, versioned, little-endian, CRC-32.
 * The full specification is docs/format.md.
 *
 * The core reads from a memory buffer (a file loaded by the host, or flash
 * mapped on an MCU, where frozen weights are then used in place) and writes
 * through a callback, so it touches no file system itself. */
#ifndef ODL_FILE_H
#define ODL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODL_FILE_VERSION_MAJOR 1
/* The newest minor this odl reads and writes. A writer marks each file with
 * the lowest version that holds it (1.0 unless the topology needs 1.1's
 * graph records), so sequential models stay readable by older readers. */
#define ODL_FILE_VERSION_MINOR 1
#define ODL_FILE_HEADER_BYTES 16
#define ODL_CHUNK_HEADER_BYTES 16

/* Chunk types: four ASCII bytes, stored little-endian as a u32. */
#define ODL_FOURCC(a, b, c, d) \
    ((uint32_t)(uint8_t)(a) | ((uint32_t)(uint8_t)(b) << 8) | \
     ((uint32_t)(uint8_t)(c) << 16) | ((uint32_t)(uint8_t)(d) << 24))
#define ODL_CHUNK_TOPOLOGY ODL_FOURCC('T', 'O', 'P', 'O')
#define ODL_CHUNK_TENSOR   ODL_FOURCC('T', 'E', 'N', 'S')
#define ODL_CHUNK_META     ODL_FOURCC('M', 'E', 'T', 'A')
#define ODL_CHUNK_END      ODL_FOURCC('E', 'N', 'D', ' ')

/* CRC-32 (IEEE 802.3, as zlib's crc32); pass 0 to start, the result to go on. */
uint32_t odl_crc32(uint32_t crc, const void *data, size_t n);

/* Output sink. write returns ODL_OK or an error (ODL_ERR_IO). */
typedef struct odl_writer {
    odl_status (*write)(void *ctx, const void *data, size_t n);
    void *ctx;
    uint64_t offset; /* bytes written so far (kept by the file code) */
} odl_writer;

/* Low level: the file header, then chunks, then the END chunk. Payloads are
 * zero-padded to 16 bytes so every payload starts 16-byte aligned. */
odl_status odl_file_write_header(odl_writer *w, odl_diag *d);
odl_status odl_file_write_chunk(odl_writer *w, uint32_t type, const void *payload,
                                size_t len, odl_diag *d);
/* A chunk whose payload comes in two parts (a header and data) — saves a copy. */
odl_status odl_file_write_chunk2(odl_writer *w, uint32_t type, const void *p1, size_t n1,
                                 const void *p2, size_t n2, odl_diag *d);
/* The same for np parts (0 ≤ np), written one after the other. */
odl_status odl_file_write_chunk_parts(odl_writer *w, uint32_t type, const void *const *parts,
                                      const size_t *sizes, int np, odl_diag *d);
odl_status odl_file_write_end(odl_writer *w, odl_diag *d);

/* Reader: validates the header, then walks chunks one by one, checking each
 * chunk's bounds and CRC before handing it out. */
typedef struct odl_file_iter {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    int32_t index;  /* chunk number, for messages */
    int32_t done;   /* END seen */
} odl_file_iter;

odl_status odl_file_open(odl_file_iter *it, const void *buf, size_t len, odl_diag *d);
/* ODL_OK with the next chunk; ODL_ERR_NOT_FOUND after END. */
odl_status odl_file_next(odl_file_iter *it, uint32_t *type, const uint8_t **payload,
                         size_t *len, odl_diag *d);

/* Key/value metadata (UTF-8 strings). */
#define ODL_META_MAX 16
typedef struct odl_meta_kv {
    const char *key;
    const char *value;
} odl_meta_kv;

/* Writes header, topology, every parameter tensor and metadata (may be
 * NULL/0), but not END: a caller adds chunks of its own (INT8 layers,
 * learner state), then odl_file_write_end. */
odl_status odl_model_write_chunks(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta, odl_writer *w,
                                  odl_diag *d);

/* odl_model_write_chunks, then END. */
odl_status odl_model_save(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                          odl_writer *w, odl_diag *d);

/* Reads the topology (and checks the whole file: every CRC, END present)
 * into desc, whose storage was set up by odl_desc_init. When the storage is
 * too small: ODL_ERR_NOMEM, with desc->n_layers set to the nodes needed, so
 * a host can size storage exactly and call again (odl_file_count_nodes does
 * the same without a description). */
odl_status odl_file_read_desc(const void *buf, size_t len, odl_model_desc *desc, odl_diag *d);
/* The same, with the caller's scratch for the shape checks: shapes (room
 * for cap_shapes entries; filled with every node's output shape).
 * odl_file_read_desc uses a scratch of its own on the stack for models of
 * up to 32 nodes and answers ODL_ERR_NOMEM for larger ones. */
odl_status odl_file_read_desc_ws(const void *buf, size_t len, odl_model_desc *desc, odl_layer_shape *shapes,
                                 int32_t cap_shapes, odl_diag *d);
/* The number of nodes in the file's topology (the file checked as above). */
odl_status odl_file_count_nodes(const void *buf, size_t len, int32_t *n_nodes, odl_diag *d);

/* Loads parameter tensors into an initialised model with the same topology.
 * With cfg.frozen_weights_in_place, frozen layers point into `buf`, which
 * must then outlive the model and be 16-byte aligned. */
odl_status odl_model_load_params(odl_model *m, const void *buf, size_t len, odl_diag *d);

/* Finds metadata `key`; copies its value (NUL-terminated, truncated to cap). */
odl_status odl_file_meta_get(const void *buf, size_t len, const char *key,
                             char *value, size_t cap, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
