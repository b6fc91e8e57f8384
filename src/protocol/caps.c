/* SPDX-License-Identifier: MIT */
/*
 * VERSION payload and its capabilities JSON, parsed and produced with json-c.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

void vfw_caps_defaults(struct vfw_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->max_msg_fds = VFW_DEFAULT_MAX_MSG_FDS;
	caps->max_data_xfer_size = VFW_DEFAULT_MAX_DATA_XFER;
	caps->max_dma_maps = VFW_DEFAULT_MAX_DMA_MAPS;
	caps->pgsizes = VFW_DEFAULT_PGSIZES;
}

/* Fetch an integer member in [lo, hi]. Absent: 0 and *out untouched. */
static int get_uint(struct json_object *obj, const char *key, uint64_t lo,
		    uint64_t hi, uint64_t *out, char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "capability \"%s\" is not an integer",
			 key);
		return -EINVAL;
	}
	/* json-c keeps integers as int64 or uint64; reject negatives first. */
	errno = 0;
	int64_t s = json_object_get_int64(v);
	if (s < 0) {
		snprintf(err, errlen, "capability \"%s\" is negative", key);
		return -EINVAL;
	}
	uint64_t u = json_object_get_uint64(v);
	if (errno != 0 || u < lo || u > hi) {
		snprintf(err, errlen,
			 "capability \"%s\" = %llu is outside [%llu, %llu]",
			 key, (unsigned long long)u, (unsigned long long)lo,
			 (unsigned long long)hi);
		return -EINVAL;
	}
	*out = u;
	return 0;
}

static int get_bool(struct json_object *obj, const char *key, bool *out,
		    char *err, size_t errlen)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		snprintf(err, errlen, "capability \"%s\" is not a boolean",
			 key);
		return -EINVAL;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

static int get_object(struct json_object *obj, const char *key,
		      struct json_object **out, char *err, size_t errlen)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_object)) {
		snprintf(err, errlen, "\"%s\" is not an object", key);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* An extension object {"version": 1..65535}; absent: *out untouched. */
static int get_ext_version(struct json_object *c, const char *key,
			   uint32_t *out, char *err, size_t errlen)
{
	struct json_object *ext;
	uint64_t v = 0;
	int r = get_object(c, key, &ext, err, errlen);

	if (r < 0 || !ext)
		return r;
	r = get_uint(ext, "version", 1, UINT16_MAX, &v, err, errlen);
	if (r < 0)
		return r;
	if (v == 0) {
		snprintf(err, errlen, "\"%s\" lacks \"version\"", key);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int parse_caps_object(struct json_object *c, struct vfw_caps *caps,
			     char *err, size_t errlen)
{
	struct json_object *twin, *mig;
	uint64_t v;
	int r;

	v = caps->max_msg_fds;
	r = get_uint(c, "max_msg_fds", 0, VFW_MAX_MSG_FDS_LIMIT, &v, err,
		     errlen);
	if (r < 0)
		return r;
	caps->max_msg_fds = (uint32_t)v;
	r = get_uint(c, "max_data_xfer_size", 1, UINT32_MAX,
		     &caps->max_data_xfer_size, err, errlen);
	if (r < 0)
		return r;
	r = get_uint(c, "max_dma_maps", 1, UINT32_MAX, &caps->max_dma_maps,
		     err, errlen);
	if (r < 0)
		return r;
	r = get_uint(c, "pgsizes", 1, UINT64_MAX, &caps->pgsizes, err,
		     errlen);
	if (r < 0)
		return r;
	r = get_bool(c, "write_multiple", &caps->write_multiple, err, errlen);
	if (r < 0)
		return r;
	r = get_object(c, "twin_socket", &twin, err, errlen);
	if (r < 0)
		return r;
	if (twin) {
		r = get_bool(twin, "supported", &caps->twin_socket, err,
			     errlen);
		if (r < 0)
			return r;
	}
	/* vfmig's extensions: the size estimates, the data channel. */
	r = get_ext_version(c, "vfmig_mig_info", &caps->mig_info_version, err,
			    errlen);
	if (r < 0)
		return r;
	r = get_ext_version(c, "vfmig_data_channel",
			    &caps->data_channel_version, err, errlen);
	if (r < 0)
		return r;
	/* Legacy migration object: tolerated, pgsize remembered. */
	r = get_object(c, "migration", &mig, err, errlen);
	if (r < 0)
		return r;
	if (mig) {
		caps->has_migration = true;
		r = get_uint(mig, "pgsize", 1, UINT64_MAX,
			     &caps->migration_pgsize, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool only_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
		    s[i] != '\r')
			return false;
	return true;
}

int vfw_caps_parse(const char *json, size_t len, struct vfw_caps *caps,
		   char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *root, *c;
	int r = 0;

	if (len > INT32_MAX) {
		snprintf(err, errlen, "capabilities JSON too long");
		return -EINVAL;
	}
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, json, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    !only_space(json + json_tokener_get_parse_end(tok),
			len - json_tokener_get_parse_end(tok))) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		snprintf(err, errlen, "capabilities JSON is malformed: %s",
			 e == json_tokener_success ? "trailing data"
						   : json_tokener_error_desc(e));
		json_object_put(root);
		json_tokener_free(tok);
		return -EINVAL;
	}
	json_tokener_free(tok);

	if (!json_object_is_type(root, json_type_object)) {
		snprintf(err, errlen, "capabilities JSON is not an object");
		r = -EINVAL;
		goto out;
	}
	r = get_object(root, "capabilities", &c, err, errlen);
	if (r == 0 && c)
		r = parse_caps_object(c, caps, err, errlen);
out:
	json_object_put(root);
	return r;
}

static int add_u64(struct json_object *o, const char *key, uint64_t v)
{
	struct json_object *n = json_object_new_uint64(v);
	if (!n || json_object_object_add(o, key, n) < 0) {
		json_object_put(n);
		return -ENOMEM;
	}
	return 0;
}

/* {"version": v} under key, when v is not 0. */
static int add_ext(struct json_object *c, const char *key, uint32_t v)
{
	struct json_object *e;

	if (!v)
		return 0;
	e = json_object_new_object();
	if (!e || json_object_object_add(c, key, e) < 0) {
		json_object_put(e);
		return -ENOMEM;
	}
	return add_u64(e, "version", v);
}

char *vfw_caps_format(const struct vfw_caps *caps, bool include_migration)
{
	struct json_object *root = json_object_new_object();
	struct json_object *c = json_object_new_object();
	char *text = NULL;

	if (!root || !c || json_object_object_add(root, "capabilities", c) < 0) {
		json_object_put(c);
		goto out;
	}
	if (add_u64(c, "max_msg_fds", caps->max_msg_fds) < 0 ||
	    add_u64(c, "max_data_xfer_size", caps->max_data_xfer_size) < 0 ||
	    add_u64(c, "max_dma_maps", caps->max_dma_maps) < 0 ||
	    add_u64(c, "pgsizes", caps->pgsizes) < 0)
		goto out;
	if (caps->write_multiple &&
	    json_object_object_add(c, "write_multiple",
				   json_object_new_boolean(1)) < 0)
		goto out;
	if (caps->twin_socket) {
		struct json_object *t = json_object_new_object();
		if (!t || json_object_object_add(c, "twin_socket", t) < 0) {
			json_object_put(t);
			goto out;
		}
		if (json_object_object_add(t, "supported",
					   json_object_new_boolean(1)) < 0)
			goto out;
	}
	if (add_ext(c, "vfmig_mig_info", caps->mig_info_version) < 0 ||
	    add_ext(c, "vfmig_data_channel", caps->data_channel_version) < 0)
		goto out;
	if (include_migration) {
		struct json_object *m = json_object_new_object();
		if (!m || json_object_object_add(c, "migration", m) < 0) {
			json_object_put(m);
			goto out;
		}
		if (add_u64(m, "pgsize", caps->migration_pgsize
						 ? caps->migration_pgsize
						 : 4096) < 0)
			goto out;
	}
	const char *s = json_object_to_json_string_ext(root,
						       JSON_C_TO_STRING_PLAIN);
	if (s)
		text = strdup(s);
out:
	json_object_put(root);
	return text;
}

int vfw_version_parse(const uint8_t *payload, size_t len, uint16_t *major,
		      uint16_t *minor, struct vfw_caps *caps, char *err,
		      size_t errlen)
{
	struct vfw_version v;

	vfw_caps_defaults(caps);
	if (len < sizeof(v)) {
		snprintf(err, errlen, "VERSION payload of %zu bytes is shorter "
			 "than 4", len);
		return -EINVAL;
	}
	memcpy(&v, payload, sizeof(v));
	*major = v.major;
	*minor = v.minor;
	if (len == sizeof(v))
		return 0;

	const char *json = (const char *)payload + sizeof(v);
	size_t jlen = len - sizeof(v);
	const char *nul = memchr(json, '\0', jlen);
	if (!nul) {
		snprintf(err, errlen,
			 "VERSION capabilities are not NUL-terminated");
		return -EINVAL;
	}
	if ((size_t)(nul - json) != jlen - 1) {
		snprintf(err, errlen,
			 "VERSION capabilities have data after the NUL");
		return -EINVAL;
	}
	return vfw_caps_parse(json, jlen - 1, caps, err, errlen);
}

uint8_t *vfw_version_build(uint16_t major, uint16_t minor,
			   const struct vfw_caps *caps, bool include_migration,
			   size_t *len)
{
	struct vfw_version v = { .major = major, .minor = minor };
	char *json = vfw_caps_format(caps, include_migration);
	uint8_t *buf;
	size_t jlen;

	if (!json)
		return NULL;
	jlen = strlen(json) + 1;
	buf = malloc(sizeof(v) + jlen);
	if (buf) {
		memcpy(buf, &v, sizeof(v));
		memcpy(buf + sizeof(v), json, jlen);
		*len = sizeof(v) + jlen;
	}
	free(json);
	return buf;
}
