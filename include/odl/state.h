/* odl/state.h — learner state in the .odl file: the replay buffer, EWC's
 * Fisher and anchors, and the NCM / SLDA class statistics, as optional chunks
 * after the model's own chunks, so that a later `adapt` goes on from them.
 * The chunk layouts are in docs/format.md ("Learner-state chunks").
 *
 * Readers that do not know these chunk types skip them, so a file with state
 * is still a plain model file for every model reader.
 *
 * Writing (one call does a whole file):
 *
 *   odl_state_save_model_with_state(model, meta, n_meta, rb, ewc, ncm, slda, &w, &diag);
 *
 * writes the header, the model's chunks (exactly as odl_model_save), one
 * state chunk for each non-NULL component, in the order RPLY, EWC, NCM,
 * SLDA, and END. Callers that write their own chunks use
 * odl_state_write_all (or odl_state_write_<x>) between
 * odl_file_write_header and odl_file_write_end instead.
 *
 * Reading. The learner objects must exist first, built with the same
 * configuration as the saved ones; the shape functions read that
 * configuration from a chunk so the caller can plan and init:
 *
 *   odl_replay_cfg cfg;
 *   if (odl_state_find_replay_cfg(buf, len, &cfg, &diag) == ODL_OK) {
 *       odl_replay_plan(&cfg, &plan, &diag); ... odl_replay_init(&rb, &cfg, &arena, &diag);
 *   }
 *   uint32_t found;
 *   odl_state_load(buf, len, rb, ewc, ncm, slda, &found, &diag);
 *
 * or, chunk by chunk, odl_file_next and odl_state_read_<x>(obj, payload, len).
 *
 * Every reader checks every length, count and value before it changes
 * anything: a damaged or hostile chunk gives an error (ODL_ERR_FORMAT for a
 * malformed chunk, ODL_ERR_UNSUPPORTED for an unknown layout version,
 * ODL_ERR_SHAPE when the chunk's configuration differs from the object's,
 * ODL_ERR_NUMERIC for a non-finite value, ODL_ERR_ARG for a payload that is not
 * 4-byte aligned where floats are used in place) and leaves the object as it
 * was. The EWC, NCM and SLDA readers hand float arrays in the payload to
 * odl_ewc_set / odl_ncm_set / odl_slda_set, so the file buffer must be
 * 4-byte aligned (16-byte aligned as file.h asks for is enough: every array
 * starts at a multiple of 16 in the file). The replay reader decodes byte by
 * byte and takes any alignment.
 *
 * The RNG is not saved: a restored buffer continues exactly like the
 * original when it is fed the same items with an RNG in the same state. */
#ifndef ODL_STATE_H
#define ODL_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/file.h"
#include "odl/model.h"
#include "odl/replay.h"
#include "odl/ewc.h"
#include "odl/classmean.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODL_CHUNK_REPLAY ODL_FOURCC('R', 'P', 'L', 'Y')
#define ODL_CHUNK_EWC    ODL_FOURCC('E', 'W', 'C', ' ')
#define ODL_CHUNK_NCM    ODL_FOURCC('N', 'C', 'M', ' ')
#define ODL_CHUNK_SLDA   ODL_FOURCC('S', 'L', 'D', 'A')
/* Raw original samples kept for sensor matching (odl/imatch.h); the RPLY
 * payload, read with odl_state_read_replay. */
#define ODL_CHUNK_RAW_REPLAY ODL_FOURCC('R', 'P', 'L', 'X')

/* The layout version in the first u32 of every state chunk. Readers refuse
 * another version with ODL_ERR_UNSUPPORTED. */
#define ODL_STATE_LAYOUT_VERSION 1u

/* ---- writing -------------------------------------------------------------- */

/* Each writes one chunk through w (after odl_file_write_header). */
odl_status odl_state_write_replay(odl_writer *w, const odl_replay *rb, odl_diag *d);
odl_status odl_state_write_ewc(odl_writer *w, const odl_ewc *e, odl_diag *d);
odl_status odl_state_write_ncm(odl_writer *w, const odl_ncm *h, odl_diag *d);
odl_status odl_state_write_slda(odl_writer *w, const odl_slda *h, odl_diag *d);

/* The chunks of the non-NULL components, in the order RPLY, EWC, NCM, SLDA. */
odl_status odl_state_write_all(odl_writer *w, const odl_replay *rb, const odl_ewc *e,
                               const odl_ncm *ncm, const odl_slda *slda, odl_diag *d);

/* Header, the model's chunks (odl_model_write_chunks: TOPO, TENS...,
 * META...), the state chunks of the non-NULL components, END. The file is
 * byte for byte what odl_model_save writes, with the state chunks inserted
 * before END. w->offset counts the bytes w got. */
odl_status odl_state_save_model_with_state(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                                           const odl_replay *rb, const odl_ewc *e, const odl_ncm *ncm,
                                           const odl_slda *slda, odl_writer *w, odl_diag *d);

/* The learner state of a file, any part NULL. */
typedef struct odl_state_parts {
    const odl_replay *replay;     /* RPLY */
    const odl_replay *raw_replay; /* RPLX: raw samples for sensor matching */
    const odl_ewc *ewc;
    const odl_ncm *ncm;
    const odl_slda *slda;
} odl_state_parts;

/* odl_state_save_model_with_state with every part, RPLX after SLDA. */
odl_status odl_state_save_model_with_parts(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                                           const odl_state_parts *parts, odl_writer *w, odl_diag *d);

/* ---- reading one chunk (payload and len from odl_file_next) ----------------- */

/* Restore into an object built with the same configuration. */
odl_status odl_state_read_replay(odl_replay *rb, const uint8_t *payload, size_t len, odl_diag *d);
odl_status odl_state_read_ewc(odl_ewc *e, const uint8_t *payload, size_t len, odl_diag *d);
odl_status odl_state_read_ncm(odl_ncm *h, const uint8_t *payload, size_t len, odl_diag *d);
/* The head keeps its own shrinkage (a hyperparameter, free to change) and
 * is marked stale (the next predict fits). */
odl_status odl_state_read_slda(odl_slda *h, const uint8_t *payload, size_t len, odl_diag *d);

/* The configuration in a chunk, checked (a returned configuration is one
 * the plan/init functions accept), so the object can be planned and built
 * before it is read. */
odl_status odl_state_replay_cfg(const uint8_t *payload, size_t len, odl_replay_cfg *cfg, odl_diag *d);
odl_status odl_state_ewc_n_params(const uint8_t *payload, size_t len, size_t *n_params, odl_diag *d);
odl_status odl_state_ncm_shape(const uint8_t *payload, size_t len, int32_t *dim, int32_t *max_classes,
                               odl_diag *d);
odl_status odl_state_slda_shape(const uint8_t *payload, size_t len, int32_t *dim, int32_t *max_classes,
                                float *shrinkage, odl_diag *d);

/* ---- reading a whole file ------------------------------------------------- */

/* Walks the whole file (every CRC checked, END required) and returns the
 * payload of its chunk of `type`. ODL_ERR_NOT_FOUND when there is none,
 * ODL_ERR_FORMAT when there are two; the file's own errors otherwise. */
odl_status odl_state_find(const void *buf, size_t len, uint32_t type, const uint8_t **payload,
                          size_t *payload_len, odl_diag *d);

/* odl_state_find(ODL_CHUNK_REPLAY) + odl_state_replay_cfg. */
odl_status odl_state_find_replay_cfg(const void *buf, size_t len, odl_replay_cfg *cfg, odl_diag *d);

/* Bits of *found in odl_state_load. */
#define ODL_STATE_HAS_REPLAY 1u
#define ODL_STATE_HAS_EWC    2u
#define ODL_STATE_HAS_NCM    4u
#define ODL_STATE_HAS_SLDA   8u
#define ODL_STATE_HAS_RAW_REPLAY 16u

/* Restores every non-NULL component whose chunk the file has; *found
 * (may be NULL) gets a bit per chunk present in the file (whether or not
 * its component was given). A missing chunk is not an error. The whole file
 * is checked (framing, every CRC, END, no duplicate state chunk) before
 * anything is restored, so a damaged file changes nothing. A chunk whose
 * content is invalid gives its error; the components restored before it
 * (in file order) then hold the file's state, the others are unchanged:
 * treat the learner as unusable (re-init) after an error. */
odl_status odl_state_load(const void *buf, size_t len, odl_replay *rb, odl_ewc *e, odl_ncm *ncm,
                          odl_slda *slda, uint32_t *found, odl_diag *d);

/* ---- streaming chunk writer (for chunk producers such as odl_replay_save) ----
 *
 * odl_state_write_chunk_fn calls fill(out, ctx) three times: to count the
 * payload bytes, to compute the CRC, and to write. fill must produce the
 * same bytes every time (ODL_ERR_STATE otherwise). Nothing is buffered
 * beyond 256 bytes, so a chunk of any size needs no scratch memory. The put
 * functions encode little-endian; after an error they do nothing. */
typedef struct odl_chunk_out odl_chunk_out;
typedef void (*odl_chunk_fill_fn)(odl_chunk_out *out, const void *ctx);

odl_status odl_state_write_chunk_fn(odl_writer *w, uint32_t type, odl_chunk_fill_fn fill, const void *ctx,
                                    odl_diag *d);
void odl_chunk_put_bytes(odl_chunk_out *o, const void *p, size_t n);
void odl_chunk_put_u32(odl_chunk_out *o, uint32_t v);
void odl_chunk_put_u64(odl_chunk_out *o, uint64_t v);
void odl_chunk_put_f32(odl_chunk_out *o, float v);
void odl_chunk_put_f32s(odl_chunk_out *o, const float *v, size_t n);
/* Zero bytes up to the next multiple of 16 of the payload. */
void odl_chunk_align16(odl_chunk_out *o);

#ifdef __cplusplus
}
#endif
#endif
