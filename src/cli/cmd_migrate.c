/* SPDX-License-Identifier: MIT */
/*
 * vfmig migrate --control PATH URI [--downtime-ms N] [--max-rounds N]
 *               [--connect-timeout-ms N] [--precopy all|ram|none]
 *               [--max-stop-copy-bytes N] [--stream-checksum crc32|xxh3]
 *               [--channels N] [--max-bandwidth SIZE]
 *               [--auto-converge off|throttle|force] [--converge-rounds N]
 *               [--cpu-throttle-initial PCT] [--cpu-throttle-increment PCT]
 *               [--max-cpu-throttle PCT] [--stall-timeout-ms N]
 *               [--report FILE.svg] [--json]
 * vfmig save --control PATH FILE [--max-stop-copy-bytes N]
 *            [--stream-checksum crc32|xxh3]
 *
 * Clients of a running VMM's control socket: start a migration, follow it
 * with query-migrate until it ends, print the report. Exit 0 only when the
 * migration succeeded and (live) the destination verified the VM.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "control_client.h"
#include "help.h"
#include "progress_line.h"
#include "report_svg.h"
#include "units.h"

/* The numeric options of `migrate`; 0: the VMM's default. */
struct mig_opts {
	long downtime_ms, max_rounds, connect_timeout_ms, max_stop_copy_bytes;
	long channels; /* RAM connections; 0: one stream */
	const char *precopy; /* NULL: the VMM's default ("all") */
	const char *csum;    /* NULL: the VMM's default ("xxh3") */
	const char *report;  /* --report FILE.svg, or NULL */
	/* Convergence (docs/migration.md); 0 / NULL: the VMM's default. */
	long max_bandwidth, converge_rounds, stall_timeout_ms;
	long throttle[3]; /* initial, increment, max */
	const char *auto_converge;
};

/* The JSON names of the numeric options above that go as they are. */
static const struct {
	const char *key;
	size_t off;
} conv_nums[] = {
	{ "max-bandwidth", offsetof(struct mig_opts, max_bandwidth) },
	{ "converge-rounds", offsetof(struct mig_opts, converge_rounds) },
	{ "stall-timeout-ms", offsetof(struct mig_opts, stall_timeout_ms) },
	{ "cpu-throttle-initial", offsetof(struct mig_opts, throttle[0]) },
	{ "cpu-throttle-increment", offsetof(struct mig_opts, throttle[1]) },
	{ "max-cpu-throttle", offsetof(struct mig_opts, throttle[2]) },
};

/* "40M", "1G", "512K", "1000000": bytes (K, M, G: powers of 1024; an
 * "iB" or "B" may follow). -1 if malformed, zero or too large. */
static int parse_size(const char *s, long *out)
{
	uint64_t v;

	if (cli_parse_size(s, &v) < 0 || !v || v > LONG_MAX)
		return -1;
	*out = (long)v;
	return 0;
}

/* Run one migration through the control socket at path. */
static int run(const char *path, const char *uri, const struct mig_opts *o,
	       bool json, bool live)
{
	struct ctl_client c;
	struct json_object *args = json_object_new_object();
	struct json_object *ret = NULL, *rep = NULL, *v;
	char err[512];
	const char *status = "";
	struct report_svg svg = { 0 };
	bool line = progress_line_wanted(STDERR_FILENO, json);
	int drawn_round = -1;
	int rc = 1;

	/* A report that cannot be written fails before the migration. */
	if (o->report && report_svg_open(&svg, o->report, err,
					 sizeof(err)) < 0) {
		fprintf(stderr, "vfmig: %s\n", err);
		json_object_put(args);
		return 1;
	}
	if (ctl_client_open(&c, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "vfmig: %s\n", err);
		json_object_put(args);
		report_svg_abort(&svg);
		return 1;
	}
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (o->downtime_ms > 0)
		json_object_object_add(args, "downtime-ms",
				       json_object_new_int64(o->downtime_ms));
	if (o->max_rounds > 0)
		json_object_object_add(args, "max-rounds",
				       json_object_new_int64(o->max_rounds));
	if (o->connect_timeout_ms > 0)
		json_object_object_add(args, "connect-timeout-ms",
				       json_object_new_int64(o->connect_timeout_ms));
	if (o->max_stop_copy_bytes > 0)
		json_object_object_add(args, "max-stop-copy-bytes",
				       json_object_new_int64(
					       o->max_stop_copy_bytes));
	if (o->channels > 0)
		json_object_object_add(args, "channels",
				       json_object_new_int64(o->channels));
	if (o->precopy)
		json_object_object_add(args, "precopy",
				       json_object_new_string(o->precopy));
	if (o->csum)
		json_object_object_add(args, "stream-checksum",
				       json_object_new_string(o->csum));
	for (size_t k = 0; k < sizeof(conv_nums) / sizeof(conv_nums[0]); k++) {
		long n = *(const long *)((const char *)o + conv_nums[k].off);
		if (n > 0)
			json_object_object_add(args, conv_nums[k].key,
					       json_object_new_int64(n));
	}
	if (o->auto_converge)
		json_object_object_add(args, "auto-converge",
				       json_object_new_string(o->auto_converge));
	if (ctl_client_call(&c, "migrate", args, &ret, err, sizeof(err)) < 0) {
		fprintf(stderr, "vfmig: migrate: %s\n", err);
		goto out;
	}
	json_object_put(ret);
	ret = NULL;
	/* Follow it until it ends (bounded: a migration that never ends is
	 * reported as such after ten minutes). */
	for (int i = 0; i < 600 * 50; i++) {
		if (ctl_client_call(&c, "query-migrate", NULL, &ret, err,
				    sizeof(err)) < 0) {
			fprintf(stderr, "vfmig: query-migrate: %s\n", err);
			goto out;
		}
		if (json_object_object_get_ex(ret, "status", &v))
			status = json_object_get_string(v);
		/* Every 100 ms, and whenever a round ended. */
		int round = json_object_object_get_ex(ret, "rounds", &v)
				    ? json_object_get_int(v)
				    : -1;
		if (line && (i % 5 == 0 || round != drawn_round)) {
			drawn_round = round;
			progress_line_draw(stderr, ret);
		}
		if (json_object_object_get_ex(ret, "report", &rep) &&
		    (!strcmp(status, "completed") || !strcmp(status, "failed") ||
		     !strcmp(status, "cancelled")))
			break;
		rep = NULL;
		json_object_put(ret);
		ret = NULL;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (line)
		progress_line_clear(stderr);
	if (!rep) {
		fprintf(stderr, "vfmig: the migration did not end\n");
		goto out;
	}

	bool ok = !strcmp(status, "completed");
	bool verified = json_object_object_get_ex(rep, "verified", &v) &&
			json_object_get_boolean(v);
	json_object_object_get_ex(rep, "error", &v);
	const char *error = v ? json_object_get_string(v) : NULL;
	if (!json) {
		struct json_object *t, *d, *b;
		json_object_object_get_ex(rep, "total_ms", &t);
		json_object_object_get_ex(rep, "downtime_ms", &d);
		json_object_object_get_ex(rep, "bytes", &b);
		printf("migration %s: %s\n", status,
		       ok ? (verified ? "verified by the destination"
				      : (live ? "NOT verified" : "saved"))
			  : error);
		printf("  total %.1f ms, downtime %.1f ms\n",
		       t ? json_object_get_double(t) : 0.0,
		       d ? json_object_get_double(d) : 0.0);
		printf("  %s\n", json_object_to_json_string_ext(
					 b, JSON_C_TO_STRING_PLAIN));
		if (json_object_object_get_ex(rep, "warning", &v) && v)
			printf("  warning: %s\n", json_object_get_string(v));
	} else {
		printf("%s\n", json_object_to_json_string_ext(
				       rep, JSON_C_TO_STRING_PLAIN));
	}
	rc = ok && (verified || !live) ? 0 : 1;
	/* The drawing of a failed migration shows how far it got. */
	if (o->report && report_svg_commit(&svg, rep, err, sizeof(err)) < 0) {
		fprintf(stderr, "vfmig: %s\n", err);
		rc = 1;
	}
out:
	report_svg_abort(&svg);
	json_object_put(ret);
	ctl_client_close(&c);
	return rc;
}

static int usage(const char *cmd)
{
	cli_usage(stderr, cmd);
	return 2;
}

static int parse_long(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*out = v;
	return 0;
}

static int migrate_main(int argc, char **argv, bool save)
{
	static const struct {
		const char *name;
		size_t off;
		bool save; /* `save` takes it too */
	} nums[] = {
		{ "--downtime-ms", offsetof(struct mig_opts, downtime_ms),
		  false },
		{ "--max-rounds", offsetof(struct mig_opts, max_rounds),
		  false },
		{ "--connect-timeout-ms",
		  offsetof(struct mig_opts, connect_timeout_ms), false },
		{ "--max-stop-copy-bytes",
		  offsetof(struct mig_opts, max_stop_copy_bytes), true },
		{ "--channels", offsetof(struct mig_opts, channels), false },
		{ "--converge-rounds",
		  offsetof(struct mig_opts, converge_rounds), false },
		{ "--stall-timeout-ms",
		  offsetof(struct mig_opts, stall_timeout_ms), false },
		{ "--cpu-throttle-initial",
		  offsetof(struct mig_opts, throttle[0]), false },
		{ "--cpu-throttle-increment",
		  offsetof(struct mig_opts, throttle[1]), false },
		{ "--max-cpu-throttle", offsetof(struct mig_opts, throttle[2]),
		  false },
	};
	const char *control = NULL, *target = NULL;
	struct mig_opts o = { 0 };
	bool json = false;
	char uri[4200];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t n = sizeof(nums) / sizeof(nums[0]), k;

		for (k = 0; k < n && (strcmp(a, nums[k].name) ||
				      (save && !nums[k].save));
		     k++)
			;
		if (k < n) {
			long *dst = (long *)((char *)&o + nums[k].off);
			if (i + 1 >= argc || parse_long(argv[++i], dst) < 0) {
				fprintf(stderr, "vfmig: %s takes a positive "
						"number\n", a);
				return 2;
			}
		} else if (!strcmp(a, "--max-bandwidth") && !save) {
			if (i + 1 >= argc ||
			    parse_size(argv[++i], &o.max_bandwidth) < 0) {
				fprintf(stderr, "vfmig: --max-bandwidth takes "
						"bytes per second (e.g. 40M)\n");
				return 2;
			}
		} else if (!strcmp(a, "--auto-converge") && !save &&
			   i + 1 < argc) {
			o.auto_converge = argv[++i];
		} else if (!strcmp(a, "--json") && !save) {
			json = true;
		} else if (!strcmp(a, "--precopy") && !save && i + 1 < argc) {
			o.precopy = argv[++i];
		} else if (!strcmp(a, "--report") && !save && i + 1 < argc) {
			o.report = argv[++i];
		} else if (!strcmp(a, "--stream-checksum") && i + 1 < argc) {
			o.csum = argv[++i];
		} else if (!strcmp(a, "--control") && i + 1 < argc) {
			control = argv[++i];
		} else if (!strncmp(a, "--control=", 10)) {
			control = a + 10;
		} else if (a[0] == '-' || target) {
			fprintf(stderr, "vfmig %s: unexpected argument '%s'\n",
				argv[0], a);
			return usage(argv[0]);
		} else {
			target = a;
		}
	}
	if (!control || !target)
		return usage(argv[0]);
	if (save)
		snprintf(uri, sizeof(uri), "file:%s", target);
	else
		snprintf(uri, sizeof(uri), "%s", target);
	return run(control, uri, &o, json, strncmp(uri, "file:", 5) != 0);
}

int cmd_migrate(int argc, char **argv)
{
	return migrate_main(argc, argv, false);
}

int cmd_save(int argc, char **argv)
{
	return migrate_main(argc, argv, true);
}
