/* SPDX-License-Identifier: MIT */
/*
 * Field tables: a device type describes the state it migrates as a const
 * table of fields of a C struct (like QEMU's vmstate, simpler). The library
 * encodes a struct through its description into self-describing big-endian
 * bytes (each field carries its name and type; docs/stream-format.md
 * "Field-table state") and decodes such bytes back into the struct, checking
 * versions and subsections. This is what a TYPE_STATE record carries.
 *
 * The code knows tables, not PCI. Errors are negative errno values; when err
 * is not NULL a human-readable message naming the problem is written there.
 */
#ifndef VFMIG_STREAM_FIELDS_H
#define VFMIG_STREAM_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Wire type codes of fields (u8 on the wire); 0 is never valid. */
enum vfmig_field_type {
	VFMIG_FIELD_U8 = 1,
	VFMIG_FIELD_U16 = 2,
	VFMIG_FIELD_U32 = 3,
	VFMIG_FIELD_U64 = 4,
	VFMIG_FIELD_BOOL = 5,      /* C bool; wire byte 0 or 1 */
	VFMIG_FIELD_BYTES = 6,     /* uint8_t[size], fixed size */
	VFMIG_FIELD_U32_ARRAY = 7, /* uint32_t[size]; count from count_field */
};

/* Reader limits (a stream exceeding them is refused). */
#define VFMIG_FIELDS_MAX_FIELDS 1024   /* per section */
#define VFMIG_FIELDS_MAX_SUBSECTIONS 64
#define VFMIG_FIELDS_MAX_NAME 255      /* bytes in a type/field/subsection name */

struct vfmig_field {
	const char *name;
	enum vfmig_field_type type;
	size_t offset;              /* offsetof() into the described struct */
	uint32_t size;              /* BYTES: byte count; U32_ARRAY: max elements */
	const char *count_field;    /* U32_ARRAY: an earlier U8/U16/U32 field of
	                               the same table holding the element count */
	uint32_t version_added;     /* present in state versions >= this (0 = always) */
};

struct vfmig_fields_subsection {
	const char *name;
	/* Whether the subsection is written for obj; NULL means always. */
	bool (*needed)(const void *obj);
	const struct vfmig_field *fields;
	size_t nfields;
};

struct vfmig_fields_desc {
	const char *name;          /* type-state name, e.g. "pci" */
	uint32_t version;          /* version this code writes and reads up to */
	uint32_t min_version;      /* oldest version this code can read */
	size_t size;               /* sizeof the described struct */
	const struct vfmig_field *fields;
	size_t nfields;
	const struct vfmig_fields_subsection *subsections;
	size_t nsubsections;
};

/* Compile-time checked field initialisers: the member's size must match. */
#define VFMIG__FIELD_CHECK(T, m, sz) \
	(0 * sizeof(char[(sizeof(((T *)0)->m) == (sz)) ? 1 : -1]))
#define VFMIG_FIELD_SCALAR(T, m, ty, sz, ver) \
	{ .name = #m, .type = (ty), \
	  .offset = offsetof(T, m) + VFMIG__FIELD_CHECK(T, m, sz), \
	  .version_added = (ver) }
#define VFMIG_FIELD_U8_V(T, m, ver) VFMIG_FIELD_SCALAR(T, m, VFMIG_FIELD_U8, 1, ver)
#define VFMIG_FIELD_U16_V(T, m, ver) VFMIG_FIELD_SCALAR(T, m, VFMIG_FIELD_U16, 2, ver)
#define VFMIG_FIELD_U32_V(T, m, ver) VFMIG_FIELD_SCALAR(T, m, VFMIG_FIELD_U32, 4, ver)
#define VFMIG_FIELD_U64_V(T, m, ver) VFMIG_FIELD_SCALAR(T, m, VFMIG_FIELD_U64, 8, ver)
#define VFMIG_FIELD_BOOL_V(T, m, ver) \
	VFMIG_FIELD_SCALAR(T, m, VFMIG_FIELD_BOOL, sizeof(bool), ver)
#define VFMIG_FIELD_BYTES_V(T, m, ver) \
	{ .name = #m, .type = VFMIG_FIELD_BYTES, .offset = offsetof(T, m), \
	  .size = sizeof(((T *)0)->m), .version_added = (ver) }
#define VFMIG_FIELD_U32_ARRAY_V(T, m, cnt, ver) \
	{ .name = #m, .type = VFMIG_FIELD_U32_ARRAY, \
	  .offset = offsetof(T, m) + VFMIG__FIELD_CHECK(T, m[0], 4), \
	  .size = sizeof(((T *)0)->m) / 4, .count_field = #cnt, \
	  .version_added = (ver) }

/*
 * Checks a description for programmer errors (unknown type, count_field not
 * an earlier integer field, member out of the struct, version_added above
 * version, min_version above version, duplicate names). Returns 0 or -EINVAL.
 */
int vfmig_fields_check_desc(const struct vfmig_fields_desc *d, char *err, size_t errlen);

/*
 * Encodes obj through d, at version d->version, with the subsections whose
 * needed() is true. On success returns 0 and out/outlen set to a malloc'd buffer
 * the caller frees. Errors: -EINVAL (bad description), -ERANGE (an array
 * count above its maximum), -ENOMEM.
 */
int vfmig_fields_encode(const struct vfmig_fields_desc *d, const void *obj,
			uint8_t **out, size_t *outlen, char *err, size_t errlen);

/*
 * Decodes state bytes (as produced by vfmig_fields_encode, possibly by an
 * older or newer writer) into obj. Fields added after the stream's version,
 * and subsections absent from the stream, leave obj's members unchanged:
 * set defaults before calling. obj is changed only on success.
 * Errors: -EBADMSG (malformed encoding, a field missing/unknown/of the wrong
 * type, an array count above the maximum or unequal to its count field),
 * -EPROTONOSUPPORT (type name differs, version newer than d->version or older
 * than d->min_version), -ENOENT (a subsection the description does not know),
 * -EINVAL (bad description), -ENOMEM.
 */
int vfmig_fields_decode(const struct vfmig_fields_desc *d, const void *buf, size_t len,
			void *obj, char *err, size_t errlen);

/*
 * Checks that buf is a well-formed state encoding, without a description.
 * Returns 0 or -EBADMSG/-ENOMEM.
 */
int vfmig_fields_validate(const void *buf, size_t len, char *err, size_t errlen);

/*
 * Reads the type name and version of an encoding, without a description.
 * name receives a NUL-terminated copy (truncated to namelen - 1).
 * Returns 0 or -EBADMSG.
 */
int vfmig_fields_peek(const void *buf, size_t len, char *name, size_t namelen,
		      uint32_t *version);

/*
 * Prints an encoding generically (names, types, values) to f, each line
 * prefixed by indent. Returns 0 or -EBADMSG/-ENOMEM (the error is also put
 * in err).
 */
int vfmig_fields_print(FILE *f, const char *indent, const void *buf, size_t len,
		       char *err, size_t errlen);

#endif
