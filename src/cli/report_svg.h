/* SPDX-License-Identifier: MIT */
/*
 * `vfmig migrate --report FILE.svg`: the migration's timeline drawn as a
 * plain SVG file: one stacked bar per pre-copy round and one for the
 * stop-copy (RAM and each device, a series each), the dirty rate as a line
 * with a point per round, the switchover and the downtime marked, the
 * figures written beside them. Drawn from the report's "timeline"
 * (docs/control-protocol.md, query-migrate).
 *
 * The file is written whole or not at all: into PATH.tmp.PID beside it,
 * opened before the migration starts (so that a bad path fails at once),
 * synced and renamed onto PATH at the end.
 */
#ifndef VFMIG_CLI_REPORT_SVG_H
#define VFMIG_CLI_REPORT_SVG_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>

struct report_svg {
	const char *path;
	char tmp[4200];
	FILE *f;
};

/* Check the name (it must end in .svg) and create the temporary file.
 * 0, or -1 with err naming the path and the cause. */
int report_svg_open(struct report_svg *r, const char *path, char *err,
		    size_t errlen);

/* Draw rep into the file and put it under its name. 0, or -1 with err
 * filled; either way the temporary file is gone. */
int report_svg_commit(struct report_svg *r, struct json_object *rep,
		      char *err, size_t errlen);

/* No report after all: remove the temporary file. */
void report_svg_abort(struct report_svg *r);

/* Draw the SVG document of report rep on out. */
void report_svg_render(FILE *out, struct json_object *rep);

#endif
