/* odl.h — on-device learning for edge devices. Includes every core header.
 *
 * The core (libodl) never allocates, never prints and never touches a file
 * system: memory comes from a caller-provided arena sized by a plan
 * (odl/arena.h, odl_model_plan), randomness from an explicit odl_rng, errors
 * are odl_status codes with a detail line in an odl_diag. */
#ifndef ODL_ODL_H
#define ODL_ODL_H

#define ODL_VERSION_MAJOR 0
#define ODL_VERSION_MINOR 1
#define ODL_VERSION_PATCH 0
#define ODL_VERSION_STRING "0.1.0"

#include "odl/status.h"
#include "odl/rng.h"
#include "odl/arena.h"
#include "odl/layers.h"
#include "odl/optim.h"
#include "odl/model.h"
#include "odl/file.h"
#include "odl/replay.h"
#include "odl/ewc.h"
#include "odl/lwf.h"
#include "odl/classmean.h"
#include "odl/imatch.h"
#include "odl/adapt.h"
#include "odl/drift.h"
#include "odl/learner.h"
#include "odl/quant.h"
#include "odl/state.h"
#include "odl/store.h"
#include "odl/delta.h"

#endif
