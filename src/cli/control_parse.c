/* SPDX-License-Identifier: MIT */
/* One control request line; see control_parse.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "control_parse.h"

static bool only_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

/* A single JSON value and nothing after it but blanks. */
static struct json_object *parse_value(const char *line, size_t len,
				       char *err, size_t errlen, int *rc)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (len > (size_t)0x7fffffff) {
		snprintf(err, errlen, "request line too long");
		*rc = -EINVAL;
		return NULL;
	}
	tok = json_tokener_new();
	if (!tok) {
		snprintf(err, errlen, "out of memory");
		*rc = -ENOMEM;
		return NULL;
	}
	*rc = -EINVAL;
	o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	if (!o && e == json_tokener_continue)
		snprintf(err, errlen, "malformed JSON: incomplete value");
	else if (!o)
		snprintf(err, errlen, "malformed JSON: %s",
			 json_tokener_error_desc(e));
	else if (!only_space(line + tok->char_offset,
			     len - (size_t)tok->char_offset)) {
		snprintf(err, errlen, "malformed JSON: extra text after the "
			 "value at offset %d", (int)tok->char_offset);
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (o)
		*rc = 0;
	return o;
}

int vfmig_control_parse_request(const char *line, size_t len,
				struct vfmig_control_request *rq, char *err,
				size_t errlen)
{
	struct json_object *exe = NULL;
	int r;

	memset(rq, 0, sizeof(*rq));
	rq->req = parse_value(line, len, err, errlen, &r);
	if (!rq->req)
		return r;
	if (!json_object_is_type(rq->req, json_type_object)) {
		snprintf(err, errlen, "request is not a JSON object");
		return -EINVAL;
	}
	json_object_object_get_ex(rq->req, "id", &rq->id);
	json_object_object_foreach(rq->req, key, val)
	{
		(void)val;
		if (strcmp(key, "execute") && strcmp(key, "arguments") &&
		    strcmp(key, "id")) {
			snprintf(err, errlen, "unexpected key '%.64s' in "
				 "request", key);
			return -EINVAL;
		}
	}
	if (!json_object_object_get_ex(rq->req, "execute", &exe) ||
	    !json_object_is_type(exe, json_type_string)) {
		snprintf(err, errlen, "request has no \"execute\" string");
		return -EINVAL;
	}
	if (json_object_object_get_ex(rq->req, "arguments", &rq->args) &&
	    !json_object_is_type(rq->args, json_type_object)) {
		rq->args = NULL;
		snprintf(err, errlen, "\"arguments\" must be an object");
		return -EINVAL;
	}
	rq->execute = json_object_get_string(exe);
	return 0;
}

void vfmig_control_request_release(struct vfmig_control_request *rq)
{
	json_object_put(rq->req);
	memset(rq, 0, sizeof(*rq));
}

int vfmig_control_check_args(struct json_object *args,
			     const char *const *allowed,
			     const enum json_type *types, char *err,
			     size_t errlen)
{
	json_object_object_foreach(args, key, val)
	{
		size_t i;
		for (i = 0; allowed[i]; i++)
			if (!strcmp(key, allowed[i]))
				break;
		if (!allowed[i]) {
			if (err && errlen)
				snprintf(err, errlen,
					 "unexpected argument '%.64s'", key);
			return -EINVAL;
		}
		if (types && types[i] != json_type_null &&
		    json_object_get_type(val) != types[i]) {
			if (err && errlen)
				snprintf(err, errlen,
					 "argument '%s' must be of type %s", key,
					 json_type_to_name(types[i]));
			return -EINVAL;
		}
	}
	return 0;
}
