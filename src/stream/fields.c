/* SPDX-License-Identifier: MIT */
/*
 * Field tables: encode a C struct through its description into the
 * self-describing state encoding, parse such an encoding generically, and
 * decode it back through a description. Layout: docs/stream-format.md,
 * "Field-table state".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "fields.h"
#include "internal.h"

/* Per wire type: printable name and C/wire width (0: variable length). */
static const struct {
	const char *name;
	uint8_t width;
} ftypes[] = {
	[VFMIG_FIELD_U8] = { "u8", 1 },
	[VFMIG_FIELD_U16] = { "u16", 2 },
	[VFMIG_FIELD_U32] = { "u32", 4 },
	[VFMIG_FIELD_U64] = { "u64", 8 },
	[VFMIG_FIELD_BOOL] = { "bool", 1 },
	[VFMIG_FIELD_BYTES] = { "bytes", 0 },
	[VFMIG_FIELD_U32_ARRAY] = { "u32[]", 0 },
};
#define NFTYPES (sizeof(ftypes) / sizeof(ftypes[0]))

static bool ftype_valid(unsigned t)
{
	return t < NFTYPES && ftypes[t].name;
}

static bool ftype_is_int(unsigned t)
{
	return t == VFMIG_FIELD_U8 || t == VFMIG_FIELD_U16 || t == VFMIG_FIELD_U32;
}

/* ---- generic parse ---- */

struct fval {
	const char *name;
	uint16_t nlen;
	uint8_t type;
	bool used;
	uint64_t scalar;     /* integer and bool types */
	const uint8_t *data; /* BYTES: bytes; U32_ARRAY: be32 elements */
	uint32_t count;      /* BYTES: length; U32_ARRAY: elements */
};

struct fsection {
	const char *name;
	uint16_t nlen;
	uint16_t n;
	struct fval *v;
};

struct fstate {
	const char *type;
	uint16_t tlen;
	uint32_t version;
	struct fsection main;
	uint16_t nsubs;
	struct fsection *subs;
};

static bool name_eq(const char *p, uint16_t len, const char *s)
{
	return strlen(s) == len && memcmp(p, s, len) == 0;
}

/* A name: be16 length 1..VFMIG_FIELDS_MAX_NAME, bytes without NUL. */
static int parse_name(struct vfmig__cur *c, const char **p, uint16_t *len,
		      const char *what, char *err, size_t errlen)
{
	uint16_t n = vfmig__cur_u16(c);
	const uint8_t *b;

	if (c->bad)
		goto trunc;
	if (n == 0 || n > VFMIG_FIELDS_MAX_NAME) {
		vfmig__err(err, errlen, "%s name length %u not in 1..%u", what, n,
			   VFMIG_FIELDS_MAX_NAME);
		return -EBADMSG;
	}
	b = vfmig__cur_take(c, n);
	if (!b)
		goto trunc;
	if (memchr(b, 0, n)) {
		vfmig__err(err, errlen, "%s name contains a NUL byte", what);
		return -EBADMSG;
	}
	*p = (const char *)b;
	*len = n;
	return 0;
trunc:
	vfmig__err(err, errlen, "state truncated in %s name", what);
	return -EBADMSG;
}

static int parse_value(struct vfmig__cur *c, struct fval *v, char *err, size_t errlen)
{
	uint32_t n;

	switch (v->type) {
	case VFMIG_FIELD_U8:
	case VFMIG_FIELD_BOOL:
		v->scalar = vfmig__cur_u8(c);
		break;
	case VFMIG_FIELD_U16:
		v->scalar = vfmig__cur_u16(c);
		break;
	case VFMIG_FIELD_U32:
		v->scalar = vfmig__cur_u32(c);
		break;
	case VFMIG_FIELD_U64:
		v->scalar = vfmig__cur_u64(c);
		break;
	case VFMIG_FIELD_BYTES:
	case VFMIG_FIELD_U32_ARRAY:
		n = vfmig__cur_u32(c);
		v->count = n;
		if (v->type == VFMIG_FIELD_U32_ARRAY) {
			if (n > vfmig__cur_left(c) / 4) {
				c->bad = true;
				break;
			}
			n *= 4;
		}
		v->data = vfmig__cur_take(c, n);
		break;
	default:
		vfmig__err(err, errlen, "field '%.*s' has unknown type %u", v->nlen,
			   v->name, v->type);
		return -EBADMSG;
	}
	if (c->bad) {
		vfmig__err(err, errlen, "state truncated in value of field '%.*s'",
			   v->nlen, v->name);
		return -EBADMSG;
	}
	if (v->type == VFMIG_FIELD_BOOL && v->scalar > 1) {
		vfmig__err(err, errlen, "bool field '%.*s' has value %" PRIu64,
			   v->nlen, v->name, v->scalar);
		return -EBADMSG;
	}
	return 0;
}

static int parse_section(struct vfmig__cur *c, struct fsection *s, char *err, size_t errlen)
{
	uint16_t i, j;
	int rc;

	s->n = vfmig__cur_u16(c);
	if (c->bad) {
		vfmig__err(err, errlen, "state truncated in field count");
		return -EBADMSG;
	}
	if (s->n > VFMIG_FIELDS_MAX_FIELDS) {
		vfmig__err(err, errlen, "section has %u fields, more than %u", s->n,
			   VFMIG_FIELDS_MAX_FIELDS);
		return -EBADMSG;
	}
	s->v = calloc(s->n ? s->n : 1, sizeof(*s->v));
	if (!s->v)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		struct fval *v = &s->v[i];

		rc = parse_name(c, &v->name, &v->nlen, "field", err, errlen);
		if (rc < 0)
			return rc;
		v->type = vfmig__cur_u8(c);
		rc = parse_value(c, v, err, errlen);
		if (rc < 0)
			return rc;
		for (j = 0; j < i; j++) {
			if (s->v[j].nlen == v->nlen &&
			    memcmp(s->v[j].name, v->name, v->nlen) == 0) {
				vfmig__err(err, errlen, "field '%.*s' appears twice",
					   v->nlen, v->name);
				return -EBADMSG;
			}
		}
	}
	return 0;
}

static void fstate_free(struct fstate *st)
{
	uint16_t i;

	free(st->main.v);
	if (st->subs)
		for (i = 0; i < st->nsubs; i++)
			free(st->subs[i].v);
	free(st->subs);
	memset(st, 0, sizeof(*st));
}

static int fstate_parse(const void *buf, size_t len, struct fstate *st, char *err,
			size_t errlen)
{
	struct vfmig__cur c;
	uint16_t i, j;
	int rc;

	memset(st, 0, sizeof(*st));
	vfmig__cur_init(&c, buf, len);
	rc = parse_name(&c, &st->type, &st->tlen, "type", err, errlen);
	if (rc < 0)
		return rc;
	st->version = vfmig__cur_u32(&c);
	rc = parse_section(&c, &st->main, err, errlen);
	if (rc < 0)
		goto fail;
	st->nsubs = vfmig__cur_u16(&c);
	if (c.bad) {
		vfmig__err(err, errlen, "state truncated in subsection count");
		rc = -EBADMSG;
		goto fail;
	}
	if (st->nsubs > VFMIG_FIELDS_MAX_SUBSECTIONS) {
		vfmig__err(err, errlen, "state has %u subsections, more than %u",
			   st->nsubs, VFMIG_FIELDS_MAX_SUBSECTIONS);
		rc = -EBADMSG;
		goto fail;
	}
	st->subs = calloc(st->nsubs ? st->nsubs : 1, sizeof(*st->subs));
	if (!st->subs) {
		rc = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < st->nsubs; i++) {
		struct fsection *s = &st->subs[i];

		rc = parse_name(&c, &s->name, &s->nlen, "subsection", err, errlen);
		if (rc < 0)
			goto fail;
		rc = parse_section(&c, s, err, errlen);
		if (rc < 0)
			goto fail;
		for (j = 0; j < i; j++) {
			if (st->subs[j].nlen == s->nlen &&
			    memcmp(st->subs[j].name, s->name, s->nlen) == 0) {
				vfmig__err(err, errlen, "subsection '%.*s' appears twice",
					   s->nlen, s->name);
				rc = -EBADMSG;
				goto fail;
			}
		}
	}
	if (vfmig__cur_left(&c)) {
		vfmig__err(err, errlen, "%zu bytes after the end of the state",
			   vfmig__cur_left(&c));
		rc = -EBADMSG;
		goto fail;
	}
	return 0;
fail:
	fstate_free(st);
	return rc;
}

int vfmig_fields_validate(const void *buf, size_t len, char *err, size_t errlen)
{
	struct fstate st;
	int rc = fstate_parse(buf, len, &st, err, errlen);

	if (rc == 0)
		fstate_free(&st);
	return rc;
}

int vfmig_fields_peek(const void *buf, size_t len, char *name, size_t namelen,
		      uint32_t *version)
{
	struct vfmig__cur c;
	const char *p;
	uint16_t n;

	vfmig__cur_init(&c, buf, len);
	if (parse_name(&c, &p, &n, "type", NULL, 0) < 0)
		return -EBADMSG;
	*version = vfmig__cur_u32(&c);
	if (c.bad)
		return -EBADMSG;
	if (namelen)
		snprintf(name, namelen, "%.*s", n, p);
	return 0;
}

/* ---- descriptions ---- */

static size_t member_size(const struct vfmig_field *f)
{
	switch (f->type) {
	case VFMIG_FIELD_BOOL:
		return sizeof(bool);
	case VFMIG_FIELD_BYTES:
		return f->size;
	case VFMIG_FIELD_U32_ARRAY:
		return (size_t)f->size * 4;
	default:
		return ftypes[f->type].width;
	}
}

static const struct vfmig_field *find_field(const struct vfmig_field *fields, size_t n,
					    const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

static bool name_ok(const char *s)
{
	return s && s[0] && strlen(s) <= VFMIG_FIELDS_MAX_NAME;
}

static int check_table(const struct vfmig_fields_desc *d, const char *sect,
		       const struct vfmig_field *fields, size_t n, char *err, size_t errlen)
{
	const struct vfmig_field *cf;
	size_t i;

	if (n > VFMIG_FIELDS_MAX_FIELDS || (n && !fields)) {
		vfmig__err(err, errlen, "type %s %s: bad field table", d->name, sect);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		const struct vfmig_field *f = &fields[i];

		if (!name_ok(f->name) || !ftype_valid(f->type) ||
		    find_field(fields, i, f->name) || f->version_added > d->version ||
		    ((f->type == VFMIG_FIELD_BYTES || f->type == VFMIG_FIELD_U32_ARRAY) &&
		     f->size == 0) ||
		    f->offset > d->size || member_size(f) > d->size - f->offset) {
			vfmig__err(err, errlen, "type %s %s: bad field #%zu '%s'", d->name,
				   sect, i, f->name ? f->name : "(null)");
			return -EINVAL;
		}
		if (f->type != VFMIG_FIELD_U32_ARRAY)
			continue;
		cf = f->count_field ? find_field(fields, i, f->count_field) : NULL;
		if (!cf || !ftype_is_int(cf->type) || cf->version_added > f->version_added) {
			vfmig__err(err, errlen,
				   "type %s %s: array '%s' needs an earlier integer count field",
				   d->name, sect, f->name);
			return -EINVAL;
		}
	}
	return 0;
}

int vfmig_fields_check_desc(const struct vfmig_fields_desc *d, char *err, size_t errlen)
{
	size_t i, j;
	int rc;

	if (!d || !name_ok(d->name) || d->min_version > d->version || d->size == 0 ||
	    d->nsubsections > VFMIG_FIELDS_MAX_SUBSECTIONS ||
	    (d->nsubsections && !d->subsections)) {
		vfmig__err(err, errlen, "bad field-table description '%s'",
			   d && d->name ? d->name : "(null)");
		return -EINVAL;
	}
	rc = check_table(d, "main section", d->fields, d->nfields, err, errlen);
	for (i = 0; rc == 0 && i < d->nsubsections; i++) {
		const struct vfmig_fields_subsection *s = &d->subsections[i];

		for (j = 0; j < i && name_ok(s->name); j++)
			if (strcmp(d->subsections[j].name, s->name) == 0)
				break;
		if (!name_ok(s->name) || j < i) {
			vfmig__err(err, errlen, "type %s: bad subsection #%zu", d->name, i);
			return -EINVAL;
		}
		rc = check_table(d, s->name, s->fields, s->nfields, err, errlen);
	}
	return rc;
}

/* ---- encode ---- */

static uint64_t load_int(const void *obj, const struct vfmig_field *f)
{
	const char *p = (const char *)obj + f->offset;
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	bool b;

	switch (f->type) {
	case VFMIG_FIELD_U8:
		memcpy(&v8, p, 1);
		return v8;
	case VFMIG_FIELD_U16:
		memcpy(&v16, p, 2);
		return v16;
	case VFMIG_FIELD_U32:
		memcpy(&v32, p, 4);
		return v32;
	case VFMIG_FIELD_U64:
		memcpy(&v64, p, 8);
		return v64;
	case VFMIG_FIELD_BOOL:
		memcpy(&b, p, sizeof(b));
		return b;
	default:
		return 0;
	}
}

static void store_int(void *obj, const struct vfmig_field *f, uint64_t v)
{
	char *p = (char *)obj + f->offset;
	uint8_t v8 = (uint8_t)v;
	uint16_t v16 = (uint16_t)v;
	uint32_t v32 = (uint32_t)v;
	bool b = v != 0;

	switch (f->type) {
	case VFMIG_FIELD_U8:
		memcpy(p, &v8, 1);
		break;
	case VFMIG_FIELD_U16:
		memcpy(p, &v16, 2);
		break;
	case VFMIG_FIELD_U32:
		memcpy(p, &v32, 4);
		break;
	case VFMIG_FIELD_U64:
		memcpy(p, &v, 8);
		break;
	case VFMIG_FIELD_BOOL:
		memcpy(p, &b, sizeof(b));
		break;
	default:
		break;
	}
}

static int encode_table(struct vfmig__buf *b, const struct vfmig_fields_desc *d,
			const struct vfmig_field *fields, size_t n, const void *obj,
			char *err, size_t errlen)
{
	const char *base = obj;
	uint64_t count;
	uint32_t v32;
	size_t i, k;

	vfmig__buf_u16(b, (uint16_t)n);
	for (i = 0; i < n; i++) {
		const struct vfmig_field *f = &fields[i];

		vfmig__buf_str(b, f->name);
		vfmig__buf_u8(b, (uint8_t)f->type);
		switch (f->type) {
		case VFMIG_FIELD_U8:
		case VFMIG_FIELD_BOOL:
			vfmig__buf_u8(b, (uint8_t)load_int(obj, f));
			break;
		case VFMIG_FIELD_U16:
			vfmig__buf_u16(b, (uint16_t)load_int(obj, f));
			break;
		case VFMIG_FIELD_U32:
			vfmig__buf_u32(b, (uint32_t)load_int(obj, f));
			break;
		case VFMIG_FIELD_U64:
			vfmig__buf_u64(b, load_int(obj, f));
			break;
		case VFMIG_FIELD_BYTES:
			vfmig__buf_u32(b, f->size);
			vfmig__buf_bytes(b, base + f->offset, f->size);
			break;
		case VFMIG_FIELD_U32_ARRAY:
			count = load_int(obj, find_field(fields, i, f->count_field));
			if (count > f->size) {
				vfmig__err(err, errlen,
					   "type %s: array '%s' count %" PRIu64 " above maximum %u",
					   d->name, f->name, count, f->size);
				return -ERANGE;
			}
			vfmig__buf_u32(b, (uint32_t)count);
			for (k = 0; k < count; k++) {
				memcpy(&v32, base + f->offset + k * 4, 4);
				vfmig__buf_u32(b, v32);
			}
			break;
		}
	}
	return 0;
}

int vfmig_fields_encode(const struct vfmig_fields_desc *d, const void *obj,
			uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
	struct vfmig__buf b = { 0 };
	size_t i, nsubs = 0, count_pos;
	int rc;

	rc = vfmig_fields_check_desc(d, err, errlen);
	if (rc < 0)
		return rc;
	vfmig__buf_str(&b, d->name);
	vfmig__buf_u32(&b, d->version);
	rc = encode_table(&b, d, d->fields, d->nfields, obj, err, errlen);
	count_pos = b.len;
	vfmig__buf_u16(&b, 0);
	for (i = 0; rc == 0 && i < d->nsubsections; i++) {
		const struct vfmig_fields_subsection *s = &d->subsections[i];

		if (s->needed && !s->needed(obj))
			continue;
		vfmig__buf_str(&b, s->name);
		rc = encode_table(&b, d, s->fields, s->nfields, obj, err, errlen);
		nsubs++;
	}
	if (rc == 0 && b.err) {
		rc = b.err;
		vfmig__err(err, errlen, "encoding state of type %s: %s", d->name, strerror(-rc));
	}
	if (rc < 0) {
		vfmig__buf_free(&b);
		return rc;
	}
	put_be16(b.data + count_pos, (uint16_t)nsubs);
	*out = b.data;
	*outlen = b.len;
	return 0;
}

/* ---- decode ---- */

static struct fval *find_val(struct fsection *s, const char *name)
{
	uint16_t i;

	for (i = 0; i < s->n; i++)
		if (name_eq(s->v[i].name, s->v[i].nlen, name))
			return &s->v[i];
	return NULL;
}

static int decode_table(const struct vfmig_fields_desc *d, const char *sect,
			const struct vfmig_field *fields, size_t n, struct fsection *s,
			uint32_t version, void *obj, char *err, size_t errlen)
{
	char *base = obj;
	struct fval *v;
	uint64_t count;
	uint32_t k, v32;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct vfmig_field *f = &fields[i];

		v = find_val(s, f->name);
		if (f->version_added > version) {
			if (v) {
				vfmig__err(err, errlen,
					   "state of type %s version %u has field '%s' (%s), added in version %u",
					   d->name, version, f->name, sect, f->version_added);
				return -EBADMSG;
			}
			continue;
		}
		if (!v) {
			vfmig__err(err, errlen, "state of type %s version %u lacks field '%s' (%s)",
				   d->name, version, f->name, sect);
			return -EBADMSG;
		}
		v->used = true;
		if (v->type != f->type) {
			vfmig__err(err, errlen, "field '%s' of type %s (%s) is %s in the stream, expected %s",
				   f->name, d->name, sect, ftypes[v->type].name, ftypes[f->type].name);
			return -EBADMSG;
		}
		switch (f->type) {
		case VFMIG_FIELD_BYTES:
			if (v->count != f->size) {
				vfmig__err(err, errlen, "field '%s' of type %s has %u bytes, expected %u",
					   f->name, d->name, v->count, f->size);
				return -EBADMSG;
			}
			memcpy(base + f->offset, v->data, f->size);
			break;
		case VFMIG_FIELD_U32_ARRAY:
			count = load_int(obj, find_field(fields, i, f->count_field));
			if (v->count > f->size || v->count != count) {
				vfmig__err(err, errlen,
					   "array '%s' of type %s has %u elements; maximum %u, count field '%s' says %" PRIu64,
					   f->name, d->name, v->count, f->size, f->count_field, count);
				return -EBADMSG;
			}
			for (k = 0; k < v->count; k++) {
				v32 = get_be32(v->data + (size_t)k * 4);
				memcpy(base + f->offset + (size_t)k * 4, &v32, 4);
			}
			break;
		default:
			store_int(obj, f, v->scalar);
			break;
		}
	}
	for (i = 0; i < s->n; i++) {
		if (!s->v[i].used) {
			vfmig__err(err, errlen, "state of type %s (%s) has unknown field '%.*s'",
				   d->name, sect, s->v[i].nlen, s->v[i].name);
			return -EBADMSG;
		}
	}
	return 0;
}

static int decode_state(const struct vfmig_fields_desc *d, struct fstate *st, void *obj,
			char *err, size_t errlen)
{
	const struct vfmig_fields_subsection *ds;
	uint16_t i;
	size_t j;
	int rc;

	if (!name_eq(st->type, st->tlen, d->name)) {
		vfmig__err(err, errlen, "state is of type '%.*s', expected '%s'", st->tlen,
			   st->type, d->name);
		return -EPROTONOSUPPORT;
	}
	if (st->version > d->version) {
		vfmig__err(err, errlen, "state of type %s version %u newer than supported %u",
			   d->name, st->version, d->version);
		return -EPROTONOSUPPORT;
	}
	if (st->version < d->min_version) {
		vfmig__err(err, errlen, "state of type %s version %u older than minimum %u",
			   d->name, st->version, d->min_version);
		return -EPROTONOSUPPORT;
	}
	rc = decode_table(d, "main section", d->fields, d->nfields, &st->main, st->version,
			  obj, err, errlen);
	for (i = 0; rc == 0 && i < st->nsubs; i++) {
		struct fsection *s = &st->subs[i];

		for (j = 0, ds = NULL; j < d->nsubsections && !ds; j++)
			if (name_eq(s->name, s->nlen, d->subsections[j].name))
				ds = &d->subsections[j];
		if (!ds) {
			vfmig__err(err, errlen, "unknown subsection '%.*s' in state of type %s",
				   s->nlen, s->name, d->name);
			return -ENOENT;
		}
		rc = decode_table(d, ds->name, ds->fields, ds->nfields, s, st->version, obj,
				  err, errlen);
	}
	return rc;
}

int vfmig_fields_decode(const struct vfmig_fields_desc *d, const void *buf, size_t len,
			void *obj, char *err, size_t errlen)
{
	struct fstate st;
	void *scratch;
	int rc;

	rc = vfmig_fields_check_desc(d, err, errlen);
	if (rc < 0)
		return rc;
	rc = fstate_parse(buf, len, &st, err, errlen);
	if (rc < 0)
		return rc;
	scratch = malloc(d->size);
	if (!scratch) {
		fstate_free(&st);
		return -ENOMEM;
	}
	memcpy(scratch, obj, d->size);
	rc = decode_state(d, &st, scratch, err, errlen);
	if (rc == 0)
		memcpy(obj, scratch, d->size);
	free(scratch);
	fstate_free(&st);
	return rc;
}

/* ---- print ---- */

static void print_section(FILE *f, const char *indent, const struct fsection *s)
{
	uint16_t i;
	uint32_t k;

	for (i = 0; i < s->n; i++) {
		const struct fval *v = &s->v[i];

		fprintf(f, "%s  %.*s (%s) =", indent, v->nlen, v->name, ftypes[v->type].name);
		switch (v->type) {
		case VFMIG_FIELD_BYTES:
			fprintf(f, " [%u bytes]", v->count);
			vfmig__print_hex(f, v->data, v->count, 32);
			break;
		case VFMIG_FIELD_U32_ARRAY:
			fprintf(f, " [%u]", v->count);
			for (k = 0; k < v->count && k < 16; k++)
				fprintf(f, " 0x%" PRIx32, get_be32(v->data + (size_t)k * 4));
			if (v->count > 16)
				fprintf(f, " ...");
			break;
		default:
			fprintf(f, " %" PRIu64 " (0x%" PRIx64 ")", v->scalar, v->scalar);
			break;
		}
		fputc('\n', f);
	}
}

int vfmig_fields_print(FILE *f, const char *indent, const void *buf, size_t len,
		       char *err, size_t errlen)
{
	char sub_indent[64];
	struct fstate st;
	uint16_t i;
	int rc;

	rc = fstate_parse(buf, len, &st, err, errlen);
	if (rc < 0)
		return rc;
	snprintf(sub_indent, sizeof(sub_indent), "%s  ", indent);
	fprintf(f, "%sstate '%.*s' version %u, %u fields, %u subsections\n", indent, st.tlen,
		st.type, st.version, st.main.n, st.nsubs);
	print_section(f, indent, &st.main);
	for (i = 0; i < st.nsubs; i++) {
		fprintf(f, "%s  subsection '%.*s', %u fields\n", indent, st.subs[i].nlen,
			st.subs[i].name, st.subs[i].n);
		print_section(f, sub_indent, &st.subs[i]);
	}
	fstate_free(&st);
	return 0;
}
