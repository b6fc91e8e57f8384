/* SPDX-License-Identifier: MIT */
/*
 * The `migrate` command's arguments (docs/control-protocol.md), checked
 * without a VM: names and types, then every value's range, into the
 * engine's parameters. Pure, so that the fuzz target drives it directly
 * (fuzz/fuzz_migrate_args.c); migration.c runs the two steps around its
 * own checks of the VM's state.
 */
#ifndef VFMIG_CLI_MIGRATE_ARGS_H
#define VFMIG_CLI_MIGRATE_ARGS_H

#include <json-c/json.h>
#include <stddef.h>

#include "engine/migrate.h"

/*
 * Every key of args is a `migrate` argument of its type (this file's and
 * migration_conv.h's), and "uri" is there: 0 with *uri (inside args), or
 * -EINVAL with err naming the argument.
 */
int vfmig_migrate_args_check(struct json_object *args, const char **uri,
			     char *err, size_t errlen);

/*
 * The values of args (already checked) into *p (zeroed first): ranges,
 * names, the channel count for uri, the convergence arguments into
 * p->conv. 0, or -EINVAL with err naming the argument and what it may be.
 */
int vfmig_migrate_args_parse(struct json_object *args, const char *uri,
			     struct vfmig_mig_params *p, char *err,
			     size_t errlen);

#endif
