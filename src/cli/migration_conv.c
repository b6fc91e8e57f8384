/* SPDX-License-Identifier: MIT */
/* Convergence arguments, parameters and report keys; see migration_conv.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control_parse.h"
#include "migration_conv.h"

/* Upper bounds of what a user may ask. */
#define MAX_BANDWIDTH (1ull << 40) /* 1 TiB/s: more is "unlimited" */
#define MAX_DOWNTIME_MS 3600000
#define MAX_STALL_MS 3600000
#define MAX_TRIGGER_ROUNDS 1000

const char *const mig_conv_migrate_keys[] = {
	"max-bandwidth", "auto-converge", "converge-rounds",
	"cpu-throttle-initial", "cpu-throttle-increment", "max-cpu-throttle",
	"stall-timeout-ms", NULL,
};
const enum json_type mig_conv_migrate_types[] = {
	json_type_int, json_type_string, json_type_int, json_type_int,
	json_type_int, json_type_int, json_type_int,
};

/* args[key], when present, within lo..hi into *out: 1 (present), 0
 * (absent) or -EINVAL with err naming it. */
static int get_range(struct json_object *args, const char *key, int64_t lo,
		     int64_t hi, int64_t *out, char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(args, key, &v))
		return 0;
	*out = json_object_get_int64(v);
	if (*out < lo || *out > hi) {
		snprintf(err, errlen, "\"%s\" must be %lld..%lld", key,
			 (long long)lo, (long long)hi);
		return -EINVAL;
	}
	return 1;
}

/* The throttle steps, in percent, as QEMU names them. */
static const char *const throttle_keys[3] = {
	"cpu-throttle-initial", "cpu-throttle-increment", "max-cpu-throttle",
};

static int get_throttle(struct json_object *args, int64_t v[3], bool set[3],
			char *err, size_t errlen)
{
	for (int i = 0; i < 3; i++) {
		int r = get_range(args, throttle_keys[i], 1, 99, &v[i], err,
				  errlen);
		if (r < 0)
			return r;
		set[i] = r == 1;
	}
	return 0;
}

int mig_conv_parse_migrate(struct json_object *args,
			   struct vfmig_mig_converge *c, char *err,
			   size_t errlen)
{
	struct json_object *v;
	int64_t n, t[3];
	bool set[3];
	int r;

	memset(c, 0, sizeof(*c));
	r = get_range(args, "max-bandwidth", 0, (int64_t)MAX_BANDWIDTH, &n,
		      err, errlen);
	if (r < 0)
		return r;
	if (r)
		c->max_bandwidth = (uint64_t)n;
	if (json_object_object_get_ex(args, "auto-converge", &v) &&
	    vfmig_conv_mode_parse(json_object_get_string(v), &c->mode) < 0) {
		snprintf(err, errlen, "\"auto-converge\" must be \"off\", "
			 "\"throttle\" or \"force\"");
		return -EINVAL;
	}
	r = get_range(args, "converge-rounds", 1, MAX_TRIGGER_ROUNDS, &n, err,
		      errlen);
	if (r < 0)
		return r;
	if (r)
		c->trigger_rounds = (unsigned)n;
	r = get_throttle(args, t, set, err, errlen);
	if (r < 0)
		return r;
	c->throttle_initial = set[0] ? (unsigned)t[0] : 0;
	c->throttle_increment = set[1] ? (unsigned)t[1] : 0;
	c->throttle_max = set[2] ? (unsigned)t[2] : 0;
	/* 0 would be "the default": "no stall detection" is -1 here. */
	r = get_range(args, "stall-timeout-ms", -1, MAX_STALL_MS, &n, err,
		      errlen);
	if (r < 0)
		return r;
	if (r && n == 0) {
		snprintf(err, errlen, "\"stall-timeout-ms\" must be -1 (off) "
			 "or 1..%d", MAX_STALL_MS);
		return -EINVAL;
	}
	if (r)
		c->stall_timeout_ms = (int)n;
	return 0;
}

int mig_conv_set_parameters(struct json_object *args,
			    struct vfmig_mig_live *l, char *err,
			    size_t errlen)
{
	static const char *const keys[] = { "max-bandwidth", "downtime-limit",
					    "cpu-throttle-initial",
					    "cpu-throttle-increment",
					    "max-cpu-throttle", NULL };
	static const enum json_type types[] = { json_type_int, json_type_int,
						json_type_int, json_type_int,
						json_type_int };
	int64_t bw = 0, dt = 0, t[3];
	bool set[3];
	int rb, rd, r;

	r = vfmig_control_check_args(args, keys, types, err, errlen);
	if (r < 0)
		return r;
	rb = get_range(args, "max-bandwidth", 0, (int64_t)MAX_BANDWIDTH, &bw,
		       err, errlen);
	if (rb < 0)
		return rb;
	rd = get_range(args, "downtime-limit", 1, MAX_DOWNTIME_MS, &dt, err,
		       errlen);
	if (rd < 0)
		return rd;
	r = get_throttle(args, t, set, err, errlen);
	if (r < 0)
		return r;
	/* All checked: now store. */
	if (rb)
		atomic_store(&l->max_bandwidth, (uint64_t)bw);
	if (rd)
		atomic_store(&l->downtime_ms, (uint64_t)dt);
	if (set[0])
		atomic_store(&l->throttle_initial, (unsigned)t[0]);
	if (set[1])
		atomic_store(&l->throttle_increment, (unsigned)t[1]);
	if (set[2])
		atomic_store(&l->throttle_max, (unsigned)t[2]);
	return 0;
}

void mig_conv_add_progress(struct json_object *o, struct vfmig_mig_live *l)
{
	json_object_object_add(o, "max_bandwidth",
			       json_object_new_uint64(
				       atomic_load(&l->max_bandwidth)));
	json_object_object_add(o, "downtime_limit_ms",
			       json_object_new_uint64(
				       atomic_load(&l->downtime_ms)));
	json_object_object_add(o, "cpu_throttle_percentage",
			       json_object_new_int((int)atomic_load(
				       &l->throttle_pct)));
}

void mig_conv_add_report(struct json_object *o,
			 const struct vfmig_mig_report *rep)
{
	json_object_object_add(o, "downtime_limit_ms",
			       json_object_new_uint64(rep->downtime_limit_ms));
	json_object_object_add(o, "precopy_bytes",
			       json_object_new_uint64(rep->precopy_bytes));
	json_object_object_add(o, "precopy_ms",
			       json_object_new_double(rep->precopy_ms));
	json_object_object_add(o, "cpu_throttle_percentage",
			       json_object_new_int((int)rep->throttle_pct));
	json_object_object_add(o, "warning",
			       rep->warning[0]
				       ? json_object_new_string(rep->warning)
				       : NULL);
}
