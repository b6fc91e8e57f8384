/* SPDX-License-Identifier: MIT */
/*
 * The live progress line of `vfmig migrate` (and `save`) on a terminal:
 * one line on stderr, redrawn in place with a carriage return from each
 * query-migrate reply: status, round, bytes moved, rate, dirty rate and
 * expected downtime. The caller decides whether to show it
 * (progress_line_wanted).
 */
#ifndef VFMIG_CLI_PROGRESS_LINE_H
#define VFMIG_CLI_PROGRESS_LINE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

/* Only on a terminal, and not when the output is JSON for a program. */
bool progress_line_wanted(int fd, bool json);

/* Redraw the line on out from a query-migrate reply. */
void progress_line_draw(FILE *out, struct json_object *reply);

/* Erase the line (before the report is printed). */
void progress_line_clear(FILE *out);

#endif
