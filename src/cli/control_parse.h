/* SPDX-License-Identifier: MIT */
/*
 * Parsing one control-socket request line (docs/control-protocol.md):
 * a single JSON object with "execute" (string), optional "arguments"
 * (object) and optional "id" (any value, echoed in the reply), and no
 * other key. Pure: no sockets, no VM; the fuzz target drives it directly.
 */
#ifndef VFMIG_CLI_CONTROL_PARSE_H
#define VFMIG_CLI_CONTROL_PARSE_H

#include <stddef.h>

#include <json-c/json.h>

struct vfmig_control_request {
	struct json_object *req;  /* the parsed line; owned */
	const char *execute;      /* command name, inside req */
	struct json_object *args; /* "arguments", inside req, or NULL */
	struct json_object *id;   /* "id", inside req, or NULL */
};

/*
 * Parse len bytes of line (no newline). 0 with *rq filled, or -EINVAL
 * with err naming what is wrong (malformed JSON, extra text after the
 * value, not an object, an unexpected key, no "execute" string,
 * "arguments" not an object); rq->id is then the request's id when one
 * could be read, for the error reply. -ENOMEM. Either way, release rq.
 */
int vfmig_control_parse_request(const char *line, size_t len,
				struct vfmig_control_request *rq, char *err,
				size_t errlen);

/* Free what a parse left in rq (safe to call twice). */
void vfmig_control_request_release(struct vfmig_control_request *rq);

/*
 * Helper for handlers: fail with -EINVAL and a message naming the first key
 * of args that is not in allowed (NULL-terminated), or whose type differs.
 * types[i] is the json_type of allowed[i] (json_type_null: any). Pure too:
 * the fuzz target of the migration arguments (fuzz_migrate_args.c) uses it.
 */
int vfmig_control_check_args(struct json_object *args,
			     const char *const *allowed,
			     const enum json_type *types, char *err,
			     size_t errlen);

#endif
