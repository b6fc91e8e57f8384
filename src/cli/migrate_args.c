/* SPDX-License-Identifier: MIT */
/* The `migrate` command's arguments; see migrate_args.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control_parse.h"
#include "engine/multichan.h"
#include "migrate_args.h"
#include "migration_conv.h"
#include "stream/stream.h"

int vfmig_migrate_args_check(struct json_object *args, const char **uri,
			     char *err, size_t errlen)
{
	static const char *const keys[] = { "uri", "downtime-ms",
					    "max-rounds",
					    "connect-timeout-ms", "precopy",
					    "max-stop-copy-bytes",
					    "stream-checksum", "channels",
					    NULL };
	static const enum json_type types[] = { json_type_string,
						json_type_int, json_type_int,
						json_type_int,
						json_type_string,
						json_type_int,
						json_type_string,
						json_type_int };
	struct json_object *v;
	const char *all_keys[32];
	enum json_type all_types[32];
	size_t nk = 0;
	int r;

	/* Ours, then the convergence arguments (migration_conv.c). */
	for (size_t i = 0; keys[i]; i++, nk++) {
		all_keys[nk] = keys[i];
		all_types[nk] = types[i];
	}
	for (size_t i = 0; mig_conv_migrate_keys[i]; i++, nk++) {
		all_keys[nk] = mig_conv_migrate_keys[i];
		all_types[nk] = mig_conv_migrate_types[i];
	}
	all_keys[nk] = NULL;
	r = vfmig_control_check_args(args, all_keys, all_types, err, errlen);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(args, "uri", &v)) {
		snprintf(err, errlen, "missing argument \"uri\"");
		return -EINVAL;
	}
	*uri = json_object_get_string(v);
	return 0;
}

/* args[key], when present, as a number within lo..hi into *out: 1
 * (present), 0 (absent), or -EINVAL with msg as the reason. */
static int get_num(struct json_object *args, const char *key, int64_t lo,
		   int64_t hi, int64_t *out, const char *msg, char *err,
		   size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(args, key, &v))
		return 0;
	*out = json_object_get_int64(v);
	if (*out < lo || *out > hi) {
		snprintf(err, errlen, "%s", msg);
		return -EINVAL;
	}
	return 1;
}

static int get_checksum(struct json_object *args, struct vfmig_mig_params *p,
			char *err, size_t errlen)
{
	struct json_object *v;
	uint16_t a;

	if (!json_object_object_get_ex(args, "stream-checksum", &v))
		return 0;
	const char *name = json_object_get_string(v);
	for (a = 0; vfmig_stream_csum_name(a); a++)
		if (!strcmp(name, vfmig_stream_csum_name(a)))
			break;
	if (!vfmig_stream_csum_name(a)) {
		snprintf(err, errlen, "\"stream-checksum\" must be "
			 "\"crc32\" (format 1.0) or \"xxh3\"");
		return -EINVAL;
	}
	p->stream_csum_set = true;
	p->stream_csum = a;
	return 0;
}

int vfmig_migrate_args_parse(struct json_object *args, const char *uri,
			     struct vfmig_mig_params *p, char *err,
			     size_t errlen)
{
	char chan_msg[64];
	struct json_object *v;
	int64_t n;
	int r;

	memset(p, 0, sizeof(*p));
	r = get_num(args, "downtime-ms", 1, 3600000, &n,
		    "\"downtime-ms\" must be 1..3600000", err, errlen);
	if (r < 0)
		return r;
	if (r)
		p->downtime_ms = (uint64_t)n;
	r = get_num(args, "max-rounds", 1, 100000, &n,
		    "\"max-rounds\" must be 1..100000", err, errlen);
	if (r < 0)
		return r;
	if (r)
		p->max_rounds = (unsigned)n;
	r = get_num(args, "connect-timeout-ms", 1, 3600000, &n,
		    "\"connect-timeout-ms\" must be 1..3600000", err, errlen);
	if (r < 0)
		return r;
	if (r)
		p->connect_timeout_ms = (int)n;
	r = get_num(args, "max-stop-copy-bytes", 1, INT64_MAX, &n,
		    "\"max-stop-copy-bytes\" must be a positive number of "
		    "bytes", err, errlen);
	if (r < 0)
		return r;
	if (r)
		p->max_stop_copy_bytes = (uint64_t)n;
	if (json_object_object_get_ex(args, "precopy", &v) &&
	    vfmig_mig_precopy_parse(json_object_get_string(v),
				    &p->precopy) < 0) {
		snprintf(err, errlen, "\"precopy\" must be \"all\", \"ram\" "
			 "or \"none\"");
		return -EINVAL;
	}
	r = get_checksum(args, p, err, errlen);
	if (r < 0)
		return r;
	snprintf(chan_msg, sizeof(chan_msg), "\"channels\" must be 1..%u",
		 VFMIG_MCHAN_MAX);
	r = get_num(args, "channels", 1, VFMIG_MCHAN_MAX, &n, chan_msg, err,
		    errlen);
	if (r < 0)
		return r;
	if (r) {
		p->channels = (unsigned)n;
		r = vfmig_mchan_check(p->channels, uri, err, errlen);
		if (r < 0)
			return r;
	}
	return mig_conv_parse_migrate(args, &p->conv, err, errlen);
}
