/* SPDX-License-Identifier: MIT */
/*
 * Convergence control on the control socket (docs/control-protocol.md):
 * the `migrate` arguments for the bandwidth limit, auto-converge and stall
 * detection, the `migrate-set-parameters` command's arguments, and the
 * keys they add to `query-migrate` and the report. Used by migration.c.
 */
#ifndef VFMIG_CLI_MIGRATION_CONV_H
#define VFMIG_CLI_MIGRATION_CONV_H

#include <json-c/json.h>
#include <stddef.h>

#include "engine/migrate.h"

/* The `migrate` argument names and types this part reads, NULL-ended;
 * migration.c appends them to its own list. */
extern const char *const mig_conv_migrate_keys[];
extern const enum json_type mig_conv_migrate_types[];

/* Read those arguments of args into c (zeroed first). 0, or -EINVAL with
 * err naming the argument and its range. */
int mig_conv_parse_migrate(struct json_object *args,
			   struct vfmig_mig_converge *c, char *err,
			   size_t errlen);

/* migrate-set-parameters: check args (unknown keys and bad values are
 * refused, nothing is changed then) and store them into l. */
int mig_conv_set_parameters(struct json_object *args,
			    struct vfmig_mig_live *l, char *err,
			    size_t errlen);

/* query-migrate's keys while it runs: the limits and throttle now. */
void mig_conv_add_progress(struct json_object *o,
			   struct vfmig_mig_live *l);

/* The report's convergence keys (source). */
void mig_conv_add_report(struct json_object *o,
			 const struct vfmig_mig_report *rep);

#endif
