/* SPDX-License-Identifier: MIT */
/*
 * v2 migration FSM: a next-hop table, written as if every optional feature
 * were supported, walked by one small loop that skips hops the device lacks
 * (the algorithm of Linux's vfio_mig_get_next_state).
 *
 * Single arcs a device implements, by feature (from the uAPI header):
 *   STOP_COPY:          RUNNING -> STOP, STOP -> RUNNING (only without P2P)
 *                       STOP -> STOP_COPY, STOP_COPY -> STOP
 *                       STOP -> RESUMING, RESUMING -> STOP
 *   P2P:                RUNNING -> RUNNING_P2P, RUNNING_P2P -> RUNNING
 *                       RUNNING_P2P -> STOP, STOP -> RUNNING_P2P
 *   PRE_COPY:           RUNNING -> PRE_COPY, PRE_COPY -> RUNNING
 *                       PRE_COPY -> STOP_COPY (only without P2P)
 *   PRE_COPY + P2P:     PRE_COPY -> PRE_COPY_P2P, PRE_COPY_P2P -> PRE_COPY
 *                       PRE_COPY_P2P -> STOP_COPY
 *                       RUNNING_P2P -> PRE_COPY_P2P, PRE_COPY_P2P -> RUNNING_P2P
 * Paths are shortest, and a saving-group state is interior to a path only
 * when both ends are in the saving group. STOP_COPY -> PRE_COPY(_P2P) is
 * forbidden. tests/unit/test_migfsm.c checks the table against an
 * independent breadth-first search over exactly these arcs.
 */
#include <errno.h>

#include "migfsm.h"

enum {
	E = VFW_MIG_STATE_ERROR,
	S = VFW_MIG_STATE_STOP,
	R = VFW_MIG_STATE_RUNNING,
	SC = VFW_MIG_STATE_STOP_COPY,
	RS = VFW_MIG_STATE_RESUMING,
	RP = VFW_MIG_STATE_RUNNING_P2P,
	PC = VFW_MIG_STATE_PRE_COPY,
	PP = VFW_MIG_STATE_PRE_COPY_P2P,
	N = VFW_MIG_STATE_NUM,
};

/* next_hop[cur][target], columns in state-number order:
 *                       E  S   R   SC  RS  RP  PC  PP */
static const uint8_t next_hop[N][N] = {
	[E] = { E, E, E, E, E, E, E, E },
	[S] = { E, S, RP, SC, RS, RP, RP, RP },
	[R] = { E, RP, R, RP, RP, RP, PC, RP },
	[SC] = { E, S, S, SC, S, S, E, E },
	[RS] = { E, S, S, S, RS, S, S, S },
	[RP] = { E, S, R, S, S, RP, R, PP },
	[PC] = { E, R, R, PP, R, R, PC, PP },
	[PP] = { E, RP, RP, SC, RP, RP, PC, PP },
};

#define F_SC VFW_MIGRATION_STOP_COPY
#define F_P2P VFW_MIGRATION_P2P
#define F_PRE VFW_MIGRATION_PRE_COPY

/* Feature flags a state needs. ERROR needs "everything" so it is never a
 * reachable hop. */
static const uint64_t state_needs[N] = {
	[E] = ~0ull,
	[S] = F_SC,
	[R] = F_SC,
	[SC] = F_SC,
	[RS] = F_SC,
	[RP] = F_SC | F_P2P,
	[PC] = F_SC | F_PRE,
	[PP] = F_SC | F_P2P | F_PRE,
};

static const char *const state_names[N] = {
	[E] = "ERROR",	     [S] = "STOP",	   [R] = "RUNNING",
	[SC] = "STOP_COPY",  [RS] = "RESUMING",	   [RP] = "RUNNING_P2P",
	[PC] = "PRE_COPY",   [PP] = "PRE_COPY_P2P",
};

const char *vfw_mig_state_name(uint32_t state)
{
	return state < N ? state_names[state] : "INVALID";
}

bool vfw_mig_state_supported(uint32_t state, uint64_t features)
{
	return state < N && (state_needs[state] & features) == state_needs[state];
}

bool vfw_mig_state_saving(uint32_t state)
{
	return state == SC || state == PC || state == PP;
}

int vfw_mig_next_state(uint32_t cur, uint32_t target, uint64_t features,
		       uint32_t *next)
{
	uint32_t hop;
	int guard = N;

	if (!vfw_mig_state_supported(cur, features) ||
	    !vfw_mig_state_supported(target, features))
		return -EINVAL;
	hop = next_hop[cur][target];
	/* Skip hops through states this device does not have. Each skip
	 * moves strictly closer in the full table, so this ends. */
	while (hop != E && !vfw_mig_state_supported(hop, features) &&
	       guard-- > 0)
		hop = next_hop[hop][target];
	if (hop == E || !vfw_mig_state_supported(hop, features))
		return -EINVAL;
	*next = hop;
	return 0;
}
