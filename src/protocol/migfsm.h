/* SPDX-License-Identifier: MIT */
/*
 * The VFIO v2 migration state machine as pure data: which states a device's
 * feature flags allow, and the next single arc on the shortest path from one
 * state toward another. Shared so that the device library walks the same
 * table the VMM uses to predict paths.
 */
#ifndef VFMIG_PROTOCOL_MIGFSM_H
#define VFMIG_PROTOCOL_MIGFSM_H

#include <stdbool.h>
#include <stdint.h>

#include "wire.h"

/* Name of a state ("PRE_COPY"), or "INVALID" for values >= 8. */
const char *vfw_mig_state_name(uint32_t state);

/* True if a device with migration flags `features` (VFW_MIGRATION_*) has
 * state `state`. ERROR and out-of-range values are never "supported" as a
 * target. */
bool vfw_mig_state_supported(uint32_t state, uint64_t features);

/* True if state belongs to the saving group (PRE_COPY, PRE_COPY_P2P,
 * STOP_COPY), which shares one data session. */
bool vfw_mig_state_saving(uint32_t state);

/*
 * Next single arc from cur toward target for a device with `features`.
 * Returns 0 with *next set (== target when one arc suffices, == cur when
 * already there), or -EINVAL when cur or target is not a supported state,
 * or the transition is forbidden (STOP_COPY -> PRE_COPY, anything from or to
 * ERROR). features must include VFW_MIGRATION_STOP_COPY.
 */
int vfw_mig_next_state(uint32_t cur, uint32_t target, uint64_t features,
		       uint32_t *next);

#endif
