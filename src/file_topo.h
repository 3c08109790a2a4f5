/* The topology chunk of a checked .odl file, node by node: for core code
 * that compares a file's nodes with a model's without storing them all.
 * Internal to src/. */
#ifndef ODL_FILE_TOPO_H
#define ODL_FILE_TOPO_H

#include "odl/file.h"

typedef struct topo_view {
    const uint8_t *p; /* the TOPO payload */
    size_t n;
    int v10;          /* format 1.0 records */
    uint32_t n_nodes;
    size_t header, record;
} topo_view;

/* Checks the whole file (every CRC, END) and finds its topology. */
odl_status odl_topo_find(const void *buf, size_t len, topo_view *v, odl_diag *d);
/* Node i (< n_nodes), decoded and checked except for shapes. */
odl_status odl_topo_get(const topo_view *v, int32_t i, odl_node_desc *l, odl_diag *d);
/* The file's input shape. */
static inline void odl_topo_input(const topo_view *v, int32_t *c, int32_t *h, int32_t *w)
{
    *c = (int32_t)((uint32_t)v->p[4] | (uint32_t)v->p[5] << 8 | (uint32_t)v->p[6] << 16 | (uint32_t)v->p[7] << 24);
    *h = (int32_t)((uint32_t)v->p[8] | (uint32_t)v->p[9] << 8 | (uint32_t)v->p[10] << 16 | (uint32_t)v->p[11] << 24);
    *w = (int32_t)((uint32_t)v->p[12] | (uint32_t)v->p[13] << 8 | (uint32_t)v->p[14] << 16 |
                   (uint32_t)v->p[15] << 24);
}

#endif
