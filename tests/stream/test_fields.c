/* SPDX-License-Identifier: MIT */
/*
 * Field tables: round trips, versions in both directions, subsections
 * present/absent/unknown, array bounds, malformed encodings. The state is a
 * made-up struct; nothing here knows PCI.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream/fields.h"

struct widget {
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;          /* added in version 2 */
	bool flag;
	uint8_t blob[5];
	uint16_t count;
	uint32_t arr[4];
	uint32_t later;        /* added in version 3 */
	bool want_sub;         /* not migrated */
	uint32_t sub_a;
	uint64_t sub_b;
};

#define W struct widget
static const struct vfmig_field fields_v1[] = {
	VFMIG_FIELD_U8_V(W, u8, 0), VFMIG_FIELD_U16_V(W, u16, 0),
	VFMIG_FIELD_U32_V(W, u32, 0), VFMIG_FIELD_BOOL_V(W, flag, 0),
	VFMIG_FIELD_BYTES_V(W, blob, 0), VFMIG_FIELD_U16_V(W, count, 0),
	VFMIG_FIELD_U32_ARRAY_V(W, arr, count, 0),
};
static const struct vfmig_field fields_v2[] = {
	VFMIG_FIELD_U8_V(W, u8, 0), VFMIG_FIELD_U16_V(W, u16, 0),
	VFMIG_FIELD_U32_V(W, u32, 0), VFMIG_FIELD_U64_V(W, u64, 2),
	VFMIG_FIELD_BOOL_V(W, flag, 0), VFMIG_FIELD_BYTES_V(W, blob, 0),
	VFMIG_FIELD_U16_V(W, count, 0), VFMIG_FIELD_U32_ARRAY_V(W, arr, count, 0),
};
static const struct vfmig_field fields_v3[] = {
	VFMIG_FIELD_U8_V(W, u8, 0), VFMIG_FIELD_U16_V(W, u16, 0),
	VFMIG_FIELD_U32_V(W, u32, 0), VFMIG_FIELD_U64_V(W, u64, 2),
	VFMIG_FIELD_BOOL_V(W, flag, 0), VFMIG_FIELD_BYTES_V(W, blob, 0),
	VFMIG_FIELD_U16_V(W, count, 0), VFMIG_FIELD_U32_ARRAY_V(W, arr, count, 0),
	VFMIG_FIELD_U32_V(W, later, 3),
};
/* Same struct, but an array maximum of 2 (a stricter reader). */
static const struct vfmig_field fields_v2_small[] = {
	VFMIG_FIELD_U8_V(W, u8, 0), VFMIG_FIELD_U16_V(W, u16, 0),
	VFMIG_FIELD_U32_V(W, u32, 0), VFMIG_FIELD_U64_V(W, u64, 2),
	VFMIG_FIELD_BOOL_V(W, flag, 0), VFMIG_FIELD_BYTES_V(W, blob, 0),
	VFMIG_FIELD_U16_V(W, count, 0),
	{ .name = "arr", .type = VFMIG_FIELD_U32_ARRAY, .offset = offsetof(W, arr),
	  .size = 2, .count_field = "count" },
};
/* u32 declared as u16: a type mismatch for a reader. */
static const struct vfmig_field fields_v2_wrongtype[] = {
	VFMIG_FIELD_U8_V(W, u8, 0), VFMIG_FIELD_U16_V(W, u16, 0),
	{ .name = "u32", .type = VFMIG_FIELD_U16, .offset = offsetof(W, u32) },
	VFMIG_FIELD_U64_V(W, u64, 2),
	VFMIG_FIELD_BOOL_V(W, flag, 0), VFMIG_FIELD_BYTES_V(W, blob, 0),
	VFMIG_FIELD_U16_V(W, count, 0), VFMIG_FIELD_U32_ARRAY_V(W, arr, count, 0),
};
static const struct vfmig_field sub_fields[] = {
	VFMIG_FIELD_U32_V(W, sub_a, 0), VFMIG_FIELD_U64_V(W, sub_b, 0),
};

static bool want_sub(const void *obj)
{
	return ((const W *)obj)->want_sub;
}

static const struct vfmig_fields_subsection subs[] = {
	{ "sub", want_sub, sub_fields, 2 },
};
static const struct vfmig_fields_subsection subs_future[] = {
	{ "sub", want_sub, sub_fields, 2 },
	{ "future", NULL, sub_fields, 1 },
};

#define DESC(ver, minv, f, s, ns) \
	{ .name = "widget", .version = ver, .min_version = minv, .size = sizeof(W), \
	  .fields = f, .nfields = sizeof(f) / sizeof(f[0]), .subsections = s, \
	  .nsubsections = ns }
static const struct vfmig_fields_desc d_v1 = DESC(1, 1, fields_v1, subs, 1);
static const struct vfmig_fields_desc d_v2 = DESC(2, 1, fields_v2, subs, 1);
static const struct vfmig_fields_desc d_v3_min2 = DESC(3, 2, fields_v3, subs, 1);
static const struct vfmig_fields_desc d_v2_nosub = DESC(2, 1, fields_v2, NULL, 0);
static const struct vfmig_fields_desc d_v2_future = DESC(2, 1, fields_v2, subs_future, 2);
static const struct vfmig_fields_desc d_v2_small = DESC(2, 1, fields_v2_small, subs, 1);
static const struct vfmig_fields_desc d_v2_wrongtype = DESC(2, 1, fields_v2_wrongtype, subs, 1);

static void fill(W *w)
{
	memset(w, 0, sizeof(*w));
	w->u8 = 0x81;
	w->u16 = 0xbeef;
	w->u32 = 0x12345678;
	w->u64 = 0xfedcba9876543210ull;
	w->flag = true;
	memcpy(w->blob, "\x01\x02\x03\x04\x05", 5);
	w->count = 3;
	w->arr[0] = 7;
	w->arr[1] = 8;
	w->arr[2] = 0x80000000u;
	w->later = 99;
	w->want_sub = true;
	w->sub_a = 0xa;
	w->sub_b = 0xbbbbbbbbbbull;
}

static void encode(const struct vfmig_fields_desc *d, const W *w, uint8_t **p, size_t *len)
{
	char err[256] = "";

	if (vfmig_fields_encode(d, w, p, len, err, sizeof(err)) != 0)
		fail_msg("encode: %s", err);
}

static void test_roundtrip(void **state)
{
	W in, out;
	uint8_t *p;
	size_t len;
	char err[256];

	(void)state;
	fill(&in);
	encode(&d_v2, &in, &p, &len);
	memset(&out, 0, sizeof(out));
	assert_int_equal(vfmig_fields_decode(&d_v2, p, len, &out, err, sizeof(err)), 0);
	in.later = 0;    /* not in v2 */
	in.want_sub = false; /* not migrated */
	assert_memory_equal(&in, &out, sizeof(in));
	assert_int_equal(vfmig_fields_validate(p, len, err, sizeof(err)), 0);
	free(p);
}

/* Every strict prefix and every one-byte extension is refused, safely. */
static void test_truncations(void **state)
{
	W in, out;
	uint8_t *p, *q;
	size_t len, i;
	char err[256];

	(void)state;
	fill(&in);
	encode(&d_v2, &in, &p, &len);
	for (i = 0; i < len; i++) {
		q = malloc(i ? i : 1);
		memcpy(q, p, i);
		assert_int_equal(vfmig_fields_validate(q, i, err, sizeof(err)), -EBADMSG);
		assert_int_equal(vfmig_fields_decode(&d_v2, q, i, &out, err, sizeof(err)), -EBADMSG);
		free(q);
	}
	q = malloc(len + 1);
	memcpy(q, p, len);
	q[len] = 0;
	assert_int_equal(vfmig_fields_validate(q, len + 1, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "1 bytes after the end"));
	free(q);
	free(p);
}

/* Old reader, new stream: refused by version, naming type and versions. */
static void test_newer_refused(void **state)
{
	W in, out;
	uint8_t *p;
	size_t len;
	char err[256];

	(void)state;
	fill(&in);
	encode(&d_v2, &in, &p, &len);
	assert_int_equal(vfmig_fields_decode(&d_v1, p, len, &out, err, sizeof(err)),
			 -EPROTONOSUPPORT);
	assert_string_equal(err, "state of type widget version 2 newer than supported 1");
	free(p);
}

/* New reader, old stream: fields added later keep the caller's defaults. */
static void test_older_defaults(void **state)
{
	W in, out, want;
	uint8_t *p;
	size_t len;
	char err[256];

	(void)state;
	fill(&in);
	encode(&d_v1, &in, &p, &len);
	memset(&out, 0, sizeof(out));
	out.u64 = 0x5555; /* default */
	assert_int_equal(vfmig_fields_decode(&d_v2, p, len, &out, err, sizeof(err)), 0);
	want = in;
	want.u64 = 0x5555;
	want.later = 0;
	want.want_sub = false;
	assert_memory_equal(&out, &want, sizeof(out));
	/* Older than the minimum: refused. */
	assert_int_equal(vfmig_fields_decode(&d_v3_min2, p, len, &out, err, sizeof(err)),
			 -EPROTONOSUPPORT);
	assert_string_equal(err, "state of type widget version 1 older than minimum 2");
	free(p);
	/* v2 stream, v3 reader: "later" defaulted. */
	encode(&d_v2, &in, &p, &len);
	out.later = 1234;
	assert_int_equal(vfmig_fields_decode(&d_v3_min2, p, len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.later, 1234);
	assert_int_equal(out.u64, in.u64);
	free(p);
}

static void test_subsections(void **state)
{
	W in, out;
	uint8_t *p;
	size_t len;
	char err[256];

	(void)state;
	/* Not needed: absent from the stream, members untouched. */
	fill(&in);
	in.want_sub = false;
	encode(&d_v2, &in, &p, &len);
	memset(&out, 0, sizeof(out));
	out.sub_a = 42;
	out.sub_b = 43;
	assert_int_equal(vfmig_fields_decode(&d_v2, p, len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.sub_a, 42);
	assert_int_equal(out.sub_b, 43);
	assert_int_equal(out.u32, in.u32);
	/* A reader without subsections reads it: nothing unknown in it. */
	assert_int_equal(vfmig_fields_decode(&d_v2_nosub, p, len, &out, err, sizeof(err)), 0);
	free(p);

	/* Present: decoded. A reader that does not know it refuses, naming it. */
	in.want_sub = true;
	encode(&d_v2, &in, &p, &len);
	assert_int_equal(vfmig_fields_decode(&d_v2, p, len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.sub_a, in.sub_a);
	assert_int_equal(out.sub_b, in.sub_b);
	assert_int_equal(vfmig_fields_decode(&d_v2_nosub, p, len, &out, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "unknown subsection 'sub' in state of type widget");
	free(p);

	/* A subsection from a newer writer: refused, obj unchanged. */
	encode(&d_v2_future, &in, &p, &len);
	memset(&out, 0x5a, sizeof(out));
	{
		W before = out;

		assert_int_equal(vfmig_fields_decode(&d_v2, p, len, &out, err, sizeof(err)),
				 -ENOENT);
		assert_non_null(strstr(err, "'future'"));
		assert_memory_equal(&out, &before, sizeof(out));
	}
	free(p);
}

static void test_array_bounds(void **state)
{
	W in, out;
	uint8_t *p;
	size_t len;
	char err[256];

	(void)state;
	fill(&in);
	in.count = 5; /* max 4 */
	assert_int_equal(vfmig_fields_encode(&d_v2, &in, &p, &len, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "array 'arr' count 5 above maximum 4"));
	in.count = 4;
	encode(&d_v2, &in, &p, &len);
	assert_int_equal(vfmig_fields_decode(&d_v2, p, len, &out, err, sizeof(err)), 0);
	assert_int_equal(out.count, 4);
	/* The stricter reader (max 2) refuses 4 elements. */
	assert_int_equal(vfmig_fields_decode(&d_v2_small, p, len, &out, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "array 'arr' of type widget has 4 elements; maximum 2"));
	free(p);
	/* Count field and array length disagree: refused. Patch the count
	 * field's value (u16 "count" = 0x0004) in the encoding to 3. */
	encode(&d_v2, &in, &p, &len);
	{
		static const uint8_t pat[] = { 0, 5, 'c', 'o', 'u', 'n', 't', 2, 0, 4 };
		uint8_t *hit = memmem(p, len, pat, sizeof(pat));

		assert_non_null(hit);
		hit[9] = 3;
	}
	assert_int_equal(vfmig_fields_decode(&d_v2, p, len, &out, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "count field 'count' says 3"));
	free(p);
}

static void test_mismatches(void **state)
{
	W in, out;
	uint8_t *p;
	size_t len;
	char err[256];
	struct vfmig_fields_desc other = d_v2;

	(void)state;
	fill(&in);
	encode(&d_v2, &in, &p, &len);
	assert_int_equal(vfmig_fields_decode(&d_v2_wrongtype, p, len, &out, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "field 'u32' of type widget (main section) is u32 in the stream, expected u16"));
	other.name = "gadget";
	assert_int_equal(vfmig_fields_decode(&other, p, len, &out, err, sizeof(err)),
			 -EPROTONOSUPPORT);
	assert_string_equal(err, "state is of type 'widget', expected 'gadget'");
	free(p);
	/* A v2 stream decoded by a v3 reader with an extra field... fine (defaulted,
	 * above); a v3 stream field unknown to a v3 reader lacking it: */
	encode(&d_v3_min2, &in, &p, &len);
	{
		struct vfmig_fields_desc v3_without_later = DESC(3, 1, fields_v2, subs, 1);

		assert_int_equal(vfmig_fields_decode(&v3_without_later, p, len, &out, err,
						     sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "unknown field 'later'"));
	}
	free(p);
}

static void test_bad_desc(void **state)
{
	static const struct vfmig_field nocount[] = {
		{ .name = "arr", .type = VFMIG_FIELD_U32_ARRAY, .offset = offsetof(W, arr),
		  .size = 4, .count_field = "count" },
		VFMIG_FIELD_U16_V(W, count, 0), /* after the array: not allowed */
	};
	static const struct vfmig_field outside[] = {
		{ .name = "x", .type = VFMIG_FIELD_U64, .offset = sizeof(W) - 4 },
	};
	static const struct vfmig_field dup[] = {
		VFMIG_FIELD_U8_V(W, u8, 0), VFMIG_FIELD_U8_V(W, u8, 0),
	};
	static const struct vfmig_field toonew[] = { VFMIG_FIELD_U8_V(W, u8, 5) };
	const struct vfmig_fields_desc bad[] = {
		DESC(1, 1, nocount, NULL, 0), DESC(1, 1, outside, NULL, 0),
		DESC(1, 1, dup, NULL, 0), DESC(1, 1, toonew, NULL, 0),
		DESC(1, 2, fields_v1, NULL, 0),
	};
	W in;
	uint8_t *p;
	size_t len, i;
	char err[256];

	(void)state;
	fill(&in);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vfmig_fields_check_desc(&bad[i], err, sizeof(err)), -EINVAL);
		assert_int_equal(vfmig_fields_encode(&bad[i], &in, &p, &len, err, sizeof(err)),
				 -EINVAL);
	}
	assert_int_equal(vfmig_fields_check_desc(&d_v2, err, sizeof(err)), 0);
}

static void test_print_and_peek(void **state)
{
	W in;
	uint8_t *p;
	size_t len, sz;
	char err[256], name[32], *text = NULL;
	uint32_t ver;
	FILE *f;

	(void)state;
	fill(&in);
	encode(&d_v2, &in, &p, &len);
	assert_int_equal(vfmig_fields_peek(p, len, name, sizeof(name), &ver), 0);
	assert_string_equal(name, "widget");
	assert_int_equal(ver, 2);
	f = open_memstream(&text, &sz);
	assert_int_equal(vfmig_fields_print(f, "", p, len, err, sizeof(err)), 0);
	fclose(f);
	assert_non_null(strstr(text, "state 'widget' version 2, 8 fields, 1 subsections"));
	assert_non_null(strstr(text, "u64 (u64) = 18364758544493064720 (0xfedcba9876543210)"));
	assert_non_null(strstr(text, "blob (bytes) = [5 bytes] 01 02 03 04 05"));
	assert_non_null(strstr(text, "arr (u32[]) = [3] 0x7 0x8 0x80000000"));
	assert_non_null(strstr(text, "subsection 'sub', 2 fields"));
	free(text);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_newer_refused),
		cmocka_unit_test(test_older_defaults),
		cmocka_unit_test(test_subsections),
		cmocka_unit_test(test_array_bounds),
		cmocka_unit_test(test_mismatches),
		cmocka_unit_test(test_bad_desc),
		cmocka_unit_test(test_print_and_peek),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
