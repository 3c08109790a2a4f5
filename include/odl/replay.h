/* odl/replay.h — a fixed-capacity replay buffer for continual learning.
 *
 * It holds latent vectors z (the output of a frozen base) with their labels,
 * so a head can rehearse old data while it learns new data. Like a model,
 * it is planned, then built in a caller-provided arena (the handle too):
 *
 *   odl_replay_cfg cfg = {capacity, dim, n_classes, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32};
 *   odl_mem_plan plan;
 *   odl_replay_plan(&cfg, &plan, &diag);          // exact bytes, nothing allocated
 *   odl_arena_init(&arena, buf, plan.total);
 *   odl_replay *rb;
 *   odl_replay_init(&rb, &cfg, &arena, &diag);
 *   odl_replay_add(rb, z, label, &rng, &diag);     // for every example seen
 *   odl_replay_sample(rb, batch, &rng, zs, ys, &diag);
 *
 * Memory (kind `buffers`, each block rounded up to ODL_ALIGN):
 *   F32:  capacity*dim*4 bytes of vectors + capacity*4 of labels;
 *   INT8: capacity*dim bytes of vectors + capacity*4 of scales + capacity*4
 *         of labels.
 * Kind `state`: the handle and two per-class counters (int32 count, uint64
 * seen) per class.
 *
 * Policies (the exact rules; n = items offered so far including the new one,
 * k = capacity, m_c = items of class c in the buffer, n_c = items of class c
 * offered so far including the new one):
 *
 * ODL_REPLAY_RESERVOIR (Vitter's Algorithm R). While the buffer is not full
 *   the item goes to the next free slot. Otherwise j = uniform integer in
 *   [0, n); if j < k the item replaces slot j, else it is dropped. So the
 *   n-th item is kept with probability k/n, replacing a uniformly chosen
 *   slot, and after n items each of them is in the buffer with probability
 *   k/n. Labels are stored but play no part.
 *
 * ODL_REPLAY_CLASS_BALANCED (class-balancing reservoir sampling, as CBRS,
 *   Chrysakis & Moens 2020). While the buffer is not full the item goes to
 *   the next free slot. Otherwise, with y the new item's label and
 *   M = max_c m_c (the size of the largest class in the buffer):
 *   - if m_y < M (y is not a largest class): the item replaces a uniformly
 *     chosen item among all items of the largest classes (with ties, every
 *     item of every tied class is equally likely);
 *   - if m_y == M (y is itself a largest class): per-class reservoir
 *     sampling — with probability m_y/n_y the item replaces a uniformly
 *     chosen item of class y, else it is dropped. (m_y is y's current share
 *     of the buffer, its quota; using it keeps class y's stored items a
 *     uniform sample of class y's stream.)
 *   Consequences: the capacity is shared equally among the classes seen so
 *   far, except that a class that has seen fewer items than its share keeps
 *   all of them and leaves the rest to the others ("water-filling"). A class
 *   loses items only while it is a largest class, so once the buffer is full,
 *   for every class c: m_c >= min(n_c, M - 1) — every class either keeps all
 *   its items or is within one item of the largest. Each add scans the
 *   buffer's labels once (O(capacity)) when the buffer is full; no extra
 *   memory.
 *
 * Herding (iCaRL exemplar selection) is a third way to fill the buffer, at
 * task boundaries: odl_replay_herding_fill, below. A buffer can be saved to
 * and restored from the model file (odl_replay_save / odl_replay_load, the
 * 'RPLY' chunk; odl/state.h).
 *
 * INT8 storage: each vector is quantised symmetrically on its own:
 *   scale = max_i |z_i| / 127 (stored as a float per slot; 0 for an all-zero
 *   vector), q_i = round-half-away(z_i / scale) clamped to [-127, 127],
 *   and read back as q_i * scale, so |z_i - read_i| <= scale/2 (plus float
 *   rounding).
 *
 * Every randomised call takes the caller's odl_rng: the same seed and the
 * same stream give the same buffer bit for bit. */
#ifndef ODL_REPLAY_H
#define ODL_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/arena.h"
#include "odl/rng.h"
#include "odl/file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits checked by plan/init. */
#define ODL_REPLAY_MAX_CAPACITY (1 << 24)
#define ODL_REPLAY_MAX_DIM 65536
#define ODL_REPLAY_MAX_CLASSES 65536

typedef enum odl_replay_policy {
    ODL_REPLAY_RESERVOIR = 0,
    ODL_REPLAY_CLASS_BALANCED = 1
} odl_replay_policy;

typedef enum odl_replay_dtype {
    ODL_REPLAY_F32 = 0,
    ODL_REPLAY_INT8 = 1
} odl_replay_dtype;

typedef struct odl_replay_cfg {
    int32_t capacity;  /* slots, 1..ODL_REPLAY_MAX_CAPACITY */
    int32_t dim;       /* floats per vector, 1..ODL_REPLAY_MAX_DIM */
    int32_t n_classes; /* labels are 0..n_classes-1 */
    odl_replay_policy policy;
    odl_replay_dtype dtype;
} odl_replay_cfg;

typedef struct odl_replay odl_replay;

/* Exact bytes odl_replay_init takes for cfg, per kind (ODL_ERR_ARG for a
 * configuration out of range). */
odl_status odl_replay_plan(const odl_replay_cfg *cfg, odl_mem_plan *plan, odl_diag *diag);

/* Builds an empty buffer in `arena` (the handle included). ODL_ERR_NOMEM,
 * with needed and available bytes in diag, when the arena is too small;
 * the arena is then unchanged. */
odl_status odl_replay_init(odl_replay **out, const odl_replay_cfg *cfg, odl_arena *arena,
                           odl_diag *diag);

/* Offers one example (z: cfg.dim floats) to the buffer under the policy
 * above. `rng` is required. ODL_ERR_ARG for a label outside
 * [0, n_classes) or NULL arguments, ODL_ERR_NUMERIC for a non-finite z;
 * on an error nothing is stored, nothing counted and the rng is untouched. */
odl_status odl_replay_add(odl_replay *rb, const float *z, int32_t label, odl_rng *rng,
                          odl_diag *diag);

/* Items in the buffer (0..capacity). */
int32_t odl_replay_count(const odl_replay *rb);
/* Items offered so far (successful adds), kept or not. */
uint64_t odl_replay_seen(const odl_replay *rb);
/* Items of class cls in the buffer (0 for a class out of range). */
int32_t odl_replay_class_count(const odl_replay *rb, int32_t cls);
/* Items of class cls offered so far (0 for a class out of range). */
uint64_t odl_replay_class_seen(const odl_replay *rb, int32_t cls);
/* The configuration the buffer was built with. */
const odl_replay_cfg *odl_replay_get_cfg(const odl_replay *rb);

/* Slot i (0 <= i < count): its vector (dequantised for INT8) into z_out
 * (dim floats) and its label into *label_out; either may be NULL.
 * ODL_ERR_ARG for i out of range. */
odl_status odl_replay_get(const odl_replay *rb, int32_t i, float *z_out, int32_t *label_out);

/* Draws n items into z_out (n*dim floats, row-major) and labels_out (n
 * labels; either may be NULL). When n <= count: n distinct items, every
 * n-subset equally likely, in uniformly random order. When n > count: n
 * independent uniform draws (with replacement). ODL_ERR_ARG for n < 0 or
 * NULL rb/rng, ODL_ERR_STATE for n > 0 on an empty buffer. */
odl_status odl_replay_sample(const odl_replay *rb, int32_t n, odl_rng *rng, float *z_out,
                             int32_t *labels_out, odl_diag *diag);

/* ---- herding (iCaRL exemplar selection) ------------------------------------
 *
 * The herding variant of the buffer (Welling 2009; Rebuffi et al. 2017,
 * iCaRL): at a task boundary, given the task's items (z: n x dim floats,
 * y: n labels), the buffer is refilled with exemplars whose mean best
 * approximates each class mean.
 *
 * Classes present = the classes in y, plus the classes already in the buffer
 * that are not in y. quota = capacity / (classes present) (floor;
 * ODL_ERR_ARG if that is 0). Then:
 *  - classes already in the buffer and not in y keep their first `quota`
 *    items in slot order (for a class stored by herding: its best exemplars,
 *    iCaRL's ReduceExemplarSet); the buffer is compacted, order kept;
 *  - every class c in y, in increasing class order, gets m = min(quota, n_c)
 *    exemplars chosen greedily: mu = the mean of c's items in z and, for
 *    k = 1..m, the item i not yet chosen minimising
 *        || mu - (s + z_i) / k ||^2        (s: sum of the k-1 chosen items)
 *    (distance in double, lowest index on ties), appended in that order;
 *    a class in y that was already in the buffer loses its old items.
 *  - counters: seen += n, class_seen[c] += n_c for c in y; class counts
 *    follow the contents.
 * Afterwards odl_replay_add keeps working under the buffer's policy (a
 * buffer left below capacity fills its free slots first). iCaRL herds
 * L2-normalised features; normalise z first to do the same. INT8 buffers
 * herd on the float z and store the chosen items quantised.
 *
 * Memory: scratch (caller's), odl_replay_herding_scratch_floats(cfg, n) =
 * 2*dim + n + n_classes floats. Cost O(m * n * dim) per class in y.
 * Errors (nothing changed): ODL_ERR_ARG (NULL, n < 0, a label out of range,
 * scratch too small, quota 0), ODL_ERR_NUMERIC (non-finite z). */
size_t odl_replay_herding_scratch_floats(const odl_replay_cfg *cfg, int32_t n);
odl_status odl_replay_herding_fill(odl_replay *rb, const float *z, const int32_t *y, int32_t n,
                                   float *scratch, size_t scratch_floats, odl_diag *diag);

/* ---- saving and restoring (the 'RPLY' chunk, docs/format.md) -------------
 *
 * odl_replay_save writes one chunk: the configuration, the counters (seen,
 * per class: count and seen) and the filled slots exactly as held (F32
 * values, or INT8 values and scales), so a restored buffer is bit-identical
 * and, given an RNG in the same state and the same further items, evolves
 * exactly like the original.
 *
 * odl_replay_load restores a payload (from odl_file_next) into a buffer
 * built with the same configuration (ODL_ERR_SHAPE naming the field
 * otherwise). Everything is checked before the buffer changes: layout
 * version (ODL_ERR_UNSUPPORTED), lengths, zero padding and reserved fields,
 * count <= capacity and count <= seen, per class count <= seen, the sums,
 * every label in range and the labels' histogram equal to the class counts,
 * every value finite, INT8 scales >= 0 and values in [-127, 127]
 * (ODL_ERR_FORMAT / ODL_ERR_NUMERIC). On error the buffer is unchanged.
 * odl_replay_chunk_cfg reads and checks just the configuration. */
odl_status odl_replay_save(const odl_replay *rb, odl_writer *w, odl_diag *diag);
/* The same payload under another chunk type (a second buffer in one file,
 * e.g. ODL_CHUNK_RAW_REPLAY). */
odl_status odl_replay_save_as(const odl_replay *rb, uint32_t chunk_type, odl_writer *w, odl_diag *diag);
odl_status odl_replay_load(odl_replay *rb, const uint8_t *payload, size_t len, odl_diag *diag);
odl_status odl_replay_chunk_cfg(const uint8_t *payload, size_t len, odl_replay_cfg *cfg, odl_diag *diag);

#ifdef __cplusplus
}
#endif
#endif
