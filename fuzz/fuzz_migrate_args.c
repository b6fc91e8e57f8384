/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the arguments of the migration commands, as anyone
 * who can reach the control socket sends them. The input is one request
 * line; it goes through the control line parser, and a "migrate" or
 * "migrate-set-parameters" request then through that command's argument
 * checks (migrate_args.c, migration_conv.c), as the handlers run them.
 * What is accepted must be within the documented ranges; what is refused
 * must say why and, for migrate-set-parameters, change nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/control_parse.h"
#include "cli/migrate_args.h"
#include "cli/migration_conv.h"
#include "engine/multichan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_live(struct vfmig_mig_live *l)
{
	if (atomic_load(&l->max_bandwidth) > (1ull << 40) ||
	    atomic_load(&l->downtime_ms) > 3600000 ||
	    atomic_load(&l->throttle_initial) > 99 ||
	    atomic_load(&l->throttle_increment) > 99 ||
	    atomic_load(&l->throttle_max) > 99)
		abort();
}

static void migrate(struct json_object *args, struct vfmig_mig_live *l)
{
	struct vfmig_mig_params p;
	const char *uri = NULL;
	char err[400] = "";

	if (vfmig_migrate_args_check(args, &uri, err, sizeof(err)) < 0 ||
	    vfmig_migrate_args_parse(args, uri, &p, err, sizeof(err)) < 0) {
		if (!err[0])
			abort(); /* every refusal names its reason */
		return;
	}
	if (!uri || p.downtime_ms > 3600000 || p.max_rounds > 100000 ||
	    p.connect_timeout_ms < 0 || p.connect_timeout_ms > 3600000 ||
	    p.channels > VFMIG_MCHAN_MAX || p.conv.trigger_rounds > 1000 ||
	    p.conv.throttle_initial > 99 || p.conv.throttle_increment > 99 ||
	    p.conv.throttle_max > 99 || p.conv.stall_timeout_ms < -1 ||
	    p.conv.stall_timeout_ms > 3600000 ||
	    p.conv.max_bandwidth > (1ull << 40))
		abort();
	vfmig_mig_live_init(l, &p.conv, p.downtime_ms);
	check_live(l);
}

static void set_parameters(struct json_object *args,
			   struct vfmig_mig_live *l)
{
	uint64_t bw = atomic_load(&l->max_bandwidth);
	uint64_t dt = atomic_load(&l->downtime_ms);
	unsigned t[3] = { atomic_load(&l->throttle_initial),
			  atomic_load(&l->throttle_increment),
			  atomic_load(&l->throttle_max) };
	char err[400] = "";

	if (mig_conv_set_parameters(args, l, err, sizeof(err)) < 0) {
		if (!err[0] || bw != atomic_load(&l->max_bandwidth) ||
		    dt != atomic_load(&l->downtime_ms) ||
		    t[0] != atomic_load(&l->throttle_initial) ||
		    t[1] != atomic_load(&l->throttle_increment) ||
		    t[2] != atomic_load(&l->throttle_max))
			abort(); /* refused: a reason, and nothing changed */
		return;
	}
	check_live(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfmig_control_request rq;
	struct vfmig_mig_converge none = { 0 };
	struct vfmig_mig_live l;
	char err[400] = "";

	vfmig_mig_live_init(&l, &none, 300);
	if (vfmig_control_parse_request((const char *)data, size, &rq, err,
					sizeof(err)) < 0) {
		vfmig_control_request_release(&rq);
		return 0;
	}
	/* The control socket hands a handler {} when there were none. */
	struct json_object *args = rq.args ? json_object_get(rq.args)
					   : json_object_new_object();
	if (!strcmp(rq.execute, "migrate")) {
		migrate(args, &l);
	} else if (!strcmp(rq.execute, "migrate-set-parameters")) {
		set_parameters(args, &l);
	}
	/* query-migrate reports what the two left behind. */
	struct json_object *o = json_object_new_object();
	mig_conv_add_progress(o, &l);
	if (!json_object_to_json_string(o))
		abort();
	json_object_put(o);
	json_object_put(args);
	vfmig_control_request_release(&rq);
	return 0;
}
