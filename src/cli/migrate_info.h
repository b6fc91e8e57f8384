/* SPDX-License-Identifier: MIT */
/*
 * The progress part of `query-migrate`, in the names QEMU's MigrationInfo
 * uses where they fit (total-time, setup-time, expected-downtime,
 * downtime, ram.{transferred,remaining,total,dirty-pages-rate,mbps,...}),
 * and the per-round timeline of the report. Built from the engine's
 * tracker (engine/progress.h); docs/control-protocol.md lists the keys.
 */
#ifndef VFMIG_CLI_MIGRATE_INFO_H
#define VFMIG_CLI_MIGRATE_INFO_H

#include <json-c/json.h>
#include <stdint.h>

#include "engine/progress.h"

/* Add the progress keys to o (a query-migrate reply). ram_bytes and
 * device_bytes: the engine's live counters. Adds nothing before the first
 * run. */
void vfmig_migrate_info_add(struct json_object *o, struct vfmig_mig_track *t,
			    uint64_t ram_bytes);

/* Add "timeline" (an array, one object per round and one for the
 * stop-copy), "timeline_devices" (the device ids, in the order of each
 * entry's "device_bytes"), "timeline_rounds_dropped" and "switchover_ms"
 * to rep (the report object). */
void vfmig_migrate_info_timeline(struct json_object *rep,
				 struct vfmig_mig_track *t);

#endif
