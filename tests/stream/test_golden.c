/* SPDX-License-Identifier: MIT */
/*
 * The checked-in golden streams of formats 1.0 (CRC-32 records) and 1.1
 * (XXH3 records, same content), 1.2 and 1.3, and corrupt variants derived
 * from their bytes. Most tests run on each file. Expected values are written out here
 * independently of the generator, so a format change breaks the test.
 * Argument: the golden folder.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>
#include <zlib.h>

#include "golden_content.h"

static const char *golden_dir;

#define MAXREC 32
struct rec {
	uint64_t offset;
	uint16_t type;
	uint32_t length;
};

struct golden_file {
	const char *name;     /* in the golden folder */
	const char *format;   /* as the printer names it */
	const char *header;   /* its first 16 bytes */
	uint16_t minor;
	enum vfmig_stream_csum csum;
	const char *csum_name;
	uint8_t *data;
	size_t len;
	struct rec recs[MAXREC];
	size_t nrecs;
};

static struct golden_file files[] = {
	{ "v1.0.vfmig", "format 1.0", "VFMIGSTR\x00\x01\x00\x00\x00\x00\x00\x00", 0,
	  VFMIG_STREAM_CSUM_CRC32, "crc32" },
	{ "v1.1.vfmig", "format 1.1", "VFMIGSTR\x00\x01\x00\x01\x00\x00\x00\x01", 1,
	  VFMIG_STREAM_CSUM_XXH3, "xxh3" },
};
#define V10 (&files[0])
#define V11 (&files[1])

/* The file the running test works on (use_file() sets them). */
static const struct golden_file *cur;
static const uint8_t *golden;
static size_t golden_len;
static const struct rec *recs;
static size_t nrecs;

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wbe16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void wbe32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Walks the golden bytes by hand (not with the library) to find records. */
static int load(struct golden_file *f)
{
	char path[4096];
	size_t off = 20;

	snprintf(path, sizeof(path), "%s/%s", golden_dir, f->name);
	f->data = read_file(path, &f->len);
	if (!f->data)
		return -1;
	while (off + 8 <= f->len && f->nrecs < MAXREC) {
		f->recs[f->nrecs].offset = off;
		f->recs[f->nrecs].type = be16(f->data + off);
		f->recs[f->nrecs].length = be32(f->data + off + 4);
		off += 12 + f->recs[f->nrecs].length;
		f->nrecs++;
	}
	return off == f->len ? 0 : -1;
}

static int setup(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (load(&files[i]) < 0)
			return -1;
	return 0;
}

static int teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		free(files[i].data);
	return 0;
}

/* Per-test setup: the test's state names the golden file it works on. */
static int use_file(void **state)
{
	cur = *state;
	golden = cur->data;
	golden_len = cur->len;
	recs = cur->recs;
	nrecs = cur->nrecs;
	return 0;
}

/* The record checksum of the algorithm the file's header names, computed
 * here (not with the library) from the format's definition. */
static uint32_t record_csum(enum vfmig_stream_csum csum, const uint8_t *p, size_t len)
{
	if (csum == VFMIG_STREAM_CSUM_XXH3)
		return (uint32_t)(XXH3_64bits(p, len) & 0xffffffffu);
	return (uint32_t)crc32(0, p, (uInt)len);
}

static size_t find_rec(uint16_t type, unsigned nth)
{
	size_t i;

	for (i = 0; i < nrecs; i++)
		if (recs[i].type == type && nth-- == 0)
			return i;
	fail_msg("golden has no record type %u", type);
	return 0;
}

static uint8_t *dup_golden(void)
{
	uint8_t *p = malloc(golden_len + 64);

	assert_non_null(p);
	memcpy(p, golden, golden_len);
	return p;
}

static void fix_header_crc(uint8_t *p)
{
	wbe32(p + 16, (uint32_t)crc32(0, p, 16));
}

static void fix_record_crc(uint8_t *p, uint64_t off)
{
	uint32_t len = be32(p + off + 4);

	wbe32(p + off + 8 + len, record_csum(cur->csum, p + off, 8 + len));
}

/* Reads a whole stream; returns the first error or 0, with the message. */
static int read_all(const uint8_t *p, size_t len, char *msg, size_t msglen, uint32_t *skipped)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	int rc;

	msg[0] = 0;
	assert_int_equal(vfmig_io_mem_reader(&io, p, len), 0);
	rc = vfmig_stream_reader_open(&r, io, msg, msglen);
	if (rc == 0) {
		while ((rc = vfmig_stream_next(r, &rec)) == 1)
			;
		snprintf(msg, msglen, "%s", vfmig_stream_reader_error(r));
		if (skipped)
			*skipped = vfmig_stream_reader_skipped(r);
		vfmig_stream_reader_free(r);
	}
	vfmig_io_close(io);
	return rc;
}

/* Prints a stream to a memory FILE; returns the printer's result. */
static int print_to(const uint8_t *p, size_t len, char **text)
{
	struct vfmig_io *io;
	size_t sz;
	FILE *f = open_memstream(text, &sz);
	int rc;

	assert_non_null(f);
	assert_int_equal(vfmig_io_mem_reader(&io, p, len), 0);
	rc = vfmig_stream_print(io, f, NULL, 0);
	fclose(f);
	vfmig_io_close(io);
	return rc;
}

static void expect_str(struct vfmig_stream_str s, const char *c)
{
	if (!vfmig_stream_str_eq(s, c))
		fail_msg("expected '%s', got '%.*s'", c, s.len, s.p);
}

static void next_ok(struct vfmig_stream_reader *r, struct vfmig_stream_record *rec,
		    uint16_t type)
{
	int rc = vfmig_stream_next(r, rec);

	if (rc != 1)
		fail_msg("next: %d %s", rc, vfmig_stream_reader_error(r));
	assert_int_equal(rec->type, type);
	assert_int_equal(rec->flags, type == VFMIG_REC_STREAM_INFO ? 0 :
			 VFMIG_STREAM_F_MUST_UNDERSTAND);
}

static void expect_dev_rec(struct vfmig_stream_reader *r, uint16_t type, uint16_t dev,
			   uint8_t phase)
{
	struct vfmig_stream_record rec;

	next_ok(r, &rec, type);
	if (type == VFMIG_REC_DEVICE_BEGIN) {
		assert_int_equal(rec.d.u.device_begin.dev, dev);
		assert_int_equal(rec.d.u.device_begin.phase, phase);
	} else {
		assert_int_equal(rec.d.u.device_end.dev, dev);
	}
}

static void expect_data(struct vfmig_stream_reader *r, uint16_t dev, const void *data,
			uint32_t len)
{
	struct vfmig_stream_record rec;

	next_ok(r, &rec, VFMIG_REC_DEVICE_DATA);
	assert_int_equal(rec.d.u.device_data.dev, dev);
	assert_int_equal(rec.d.u.device_data.len, len);
	assert_memory_equal(rec.d.u.device_data.data, data, len);
}

static void expect_state(struct vfmig_stream_reader *r, uint16_t dev, int which)
{
	struct vfmig_stream_record rec;
	struct golden_state got, want;
	char err[256];

	next_ok(r, &rec, VFMIG_REC_TYPE_STATE);
	assert_int_equal(rec.d.u.type_state.dev, dev);
	memset(&got, 0, sizeof(got));
	memset(&want, 0, sizeof(want));
	assert_int_equal(vfmig_fields_decode(&golden_desc, rec.d.u.type_state.state,
					     rec.d.u.type_state.len, &got, err, sizeof(err)), 0);
	if (which == 0) {
		static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

		want.a = 0xa5; want.b = 0x1234; want.c = 0xdeadbeef;
		want.d = 0x0102030405060708ull; want.e = true;
		memcpy(want.mac, mac, 6);
		want.n = 3; want.vec[0] = 10; want.vec[1] = 20; want.vec[2] = 0xffffffff;
		want.extra = 77; /* has_extra is not migrated */
	} else {
		want.a = 1; want.b = 2; want.c = 3; want.d = 4;
	}
	assert_memory_equal(&got, &want, sizeof(got));
}

static void test_golden_content(void **state)
{
	static const uint8_t pre1[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	static const uint8_t final0[] = { 0xfe, 0xed };
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	uint8_t page[4096];
	char err[256];

	(void)state;
	assert_int_equal(golden_len, 8866);
	assert_memory_equal(golden, cur->header, 16);
	assert_int_equal(vfmig_io_mem_reader(&io, golden, golden_len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, io, err, sizeof(err)), 0);
	assert_int_equal(vfmig_stream_reader_minor(r), cur->minor);
	assert_int_equal(vfmig_stream_reader_csum(r), cur->csum);

	next_ok(r, &rec, VFMIG_REC_STREAM_INFO);
	assert_int_equal(rec.offset, 20);
	assert_int_equal(rec.d.u.info.count, 2);
	expect_str(rec.d.u.info.kv[0].key, "producer");
	expect_str(rec.d.u.info.kv[0].value, "vfmig golden generator");
	expect_str(rec.d.u.info.kv[1].key, "time");
	expect_str(rec.d.u.info.kv[1].value, "2026-01-01T00:00:00Z");

	next_ok(r, &rec, VFMIG_REC_DEVICE_LIST);
	assert_int_equal(rec.d.u.device_list.count, 2);
	expect_str(rec.d.u.device_list.dev[0].id, "regs0");
	expect_str(rec.d.u.device_list.dev[0].type, "pci");
	expect_str(rec.d.u.device_list.dev[0].interface, "v2");
	assert_int_equal(rec.d.u.device_list.dev[0].instance, 0);
	assert_int_equal(rec.d.u.device_list.dev[0].type_version, 2);
	expect_str(rec.d.u.device_list.dev[1].id, "vram0");
	expect_str(rec.d.u.device_list.dev[1].type, "pci");
	expect_str(rec.d.u.device_list.dev[1].interface, "region");
	assert_int_equal(rec.d.u.device_list.dev[1].instance, 1);
	assert_int_equal(rec.d.u.device_list.dev[1].type_version, 2);

	expect_dev_rec(r, VFMIG_REC_DEVICE_BEGIN, 0, VFMIG_PHASE_SETUP);
	expect_data(r, 0, "setup-0", 7);
	expect_dev_rec(r, VFMIG_REC_DEVICE_END, 0, 0);

	next_ok(r, &rec, VFMIG_REC_RAM_PAGES);
	expect_str(rec.d.u.ram_pages.block, "pc.ram");
	assert_int_equal(rec.d.u.ram_pages.page_size, 4096);
	assert_int_equal(rec.d.u.ram_pages.nruns, 2);
	assert_int_equal(rec.d.u.ram_pages.runs[0].addr, 0x1000);
	assert_int_equal(rec.d.u.ram_pages.runs[0].npages, 2);
	assert_false(rec.d.u.ram_pages.runs[0].zero);
	golden_page(page, 0);
	assert_memory_equal(rec.d.u.ram_pages.runs[0].data, page, 4096);
	golden_page(page, 1);
	assert_memory_equal(rec.d.u.ram_pages.runs[0].data + 4096, page, 4096);
	assert_int_equal(rec.d.u.ram_pages.runs[1].addr, 0x10000);
	assert_int_equal(rec.d.u.ram_pages.runs[1].npages, 16);
	assert_true(rec.d.u.ram_pages.runs[1].zero);
	assert_null(rec.d.u.ram_pages.runs[1].data);

	expect_dev_rec(r, VFMIG_REC_DEVICE_BEGIN, 1, VFMIG_PHASE_PRECOPY);
	expect_data(r, 1, pre1, 16);
	expect_dev_rec(r, VFMIG_REC_DEVICE_END, 1, 0);
	next_ok(r, &rec, VFMIG_REC_SWITCHOVER);
	assert_int_equal(rec.length, 0);
	expect_dev_rec(r, VFMIG_REC_DEVICE_BEGIN, 0, VFMIG_PHASE_FINAL);
	expect_data(r, 0, final0, 2);
	expect_state(r, 0, 0);
	expect_dev_rec(r, VFMIG_REC_DEVICE_END, 0, 0);
	expect_dev_rec(r, VFMIG_REC_DEVICE_BEGIN, 1, VFMIG_PHASE_FINAL);
	expect_state(r, 1, 1);
	expect_dev_rec(r, VFMIG_REC_DEVICE_END, 1, 0);
	next_ok(r, &rec, VFMIG_REC_END);
	assert_int_equal(rec.d.u.end.records, 17);
	assert_int_equal(rec.offset + 16, golden_len);
	assert_int_equal(vfmig_stream_next(r, &rec), 0);
	assert_int_equal(vfmig_stream_reader_offset(r), golden_len);
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);
}

/* Today's writer must still produce the released bytes exactly. */
static void test_golden_writer_unchanged(void **state)
{
	struct vfmig_io *io;
	const uint8_t *p;
	size_t len;

	(void)state;
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(golden_write(io, cur->csum), 0);
	p = vfmig_io_mem_data(io, &len);
	assert_int_equal(len, golden_len);
	assert_memory_equal(p, golden, len);
	vfmig_io_close(io);
}

static void test_golden_prints(void **state)
{
	char *text = NULL, line[128];

	(void)state;
	assert_int_equal(print_to(golden, golden_len, &text), 0);
	assert_non_null(strstr(text, cur->format));
	snprintf(line, sizeof(line), "checksum OK, record checksum %s\n", cur->csum_name);
	assert_non_null(strstr(text, line));
	assert_non_null(strstr(text, "@20         STREAM_INFO"));
	assert_non_null(strstr(text, "checksum OK"));
	assert_null(strstr(text, "checksum BAD"));
	assert_non_null(strstr(text, "2 bytes of device data"));
	assert_non_null(strstr(text, "state 'golden-type' version 2"));
	assert_non_null(strstr(text, "vec (u32[]) = [3] 0xa 0x14 0xffffffff"));
	assert_non_null(strstr(text, "subsection 'extra'"));
	assert_non_null(strstr(text, "17 records before END"));
	free(text);
}

static void expect_fail(const uint8_t *p, size_t len, int want, const char *needle)
{
	char msg[512], *text = NULL;
	int rc = read_all(p, len, msg, sizeof(msg), NULL);

	if (rc != want)
		fail_msg("expected %d (%s), got %d: %s", want, needle, rc, msg);
	if (!strstr(msg, needle))
		fail_msg("message '%s' lacks '%s'", msg, needle);
	/* The printer refuses it too, and says why. */
	assert_int_equal(print_to(p, len, &text), want);
	assert_non_null(strstr(text, "ERROR: "));
	assert_non_null(strstr(text, needle));
	free(text);
}

static void test_truncated(void **state)
{
	size_t cut[] = { 0, 4, 8, 12, 19 };
	size_t end = recs[nrecs - 1].offset;
	size_t mid[5];
	char needle[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
		expect_fail(golden, cut[i], -ENODATA, "stream header at offset 0");
	expect_fail(golden, 20, -ENODATA, "ends at offset 20 without an END record");
	snprintf(needle, sizeof(needle), "ends at offset %zu without an END", end);
	expect_fail(golden, end, -ENODATA, needle);
	mid[0] = recs[1].offset + 3;               /* record header */
	mid[1] = recs[1].offset + 10;              /* payload */
	mid[2] = recs[1].offset + 8 + recs[1].length + 2; /* checksum */
	mid[3] = golden_len - 1;                   /* END's last byte */
	mid[4] = recs[find_rec(VFMIG_REC_RAM_PAGES, 0)].offset + 5000;
	for (i = 0; i < 5; i++)
		expect_fail(golden, mid[i], -ENODATA, "stream truncated");
}

static void test_flipped_bit(void **state)
{
	size_t k = find_rec(VFMIG_REC_DEVICE_DATA, 1);
	char needle[64];
	uint8_t *p;

	(void)state;
	p = dup_golden();
	p[recs[k].offset + 8 + 5] ^= 0x10;
	snprintf(needle, sizeof(needle), "record at offset %" PRIu64 " (type 4): checksum mismatch",
		 recs[k].offset);
	expect_fail(p, golden_len, -EBADMSG, needle);
	memcpy(p, golden, golden_len);
	p[recs[k].offset + 1] ^= 0x01;  /* in the covered record header */
	expect_fail(p, golden_len, -EBADMSG, "checksum mismatch");
	memcpy(p, golden, golden_len);
	p[11] ^= 0x04;                  /* minor version, header checksum */
	expect_fail(p, golden_len, -EBADMSG, "offset 16: header checksum mismatch");
	memcpy(p, golden, golden_len);
	p[2] ^= 0x01;
	expect_fail(p, golden_len, -EBADMSG, "bad magic");
	free(p);
}

static void test_major_minor(void **state)
{
	uint8_t *p = dup_golden();
	char msg[256];

	(void)state;
	wbe16(p + 8, 2);
	fix_header_crc(p);
	expect_fail(p, golden_len, -EPROTONOSUPPORT,
		    "stream major version 2, this reader supports 1");
	wbe16(p + 8, 0);
	fix_header_crc(p);
	expect_fail(p, golden_len, -EPROTONOSUPPORT, "stream major version 0");
	/* A higher minor is accepted. */
	wbe16(p + 8, 1);
	wbe16(p + 10, 7);
	fix_header_crc(p);
	assert_int_equal(read_all(p, golden_len, msg, sizeof(msg), NULL), 0);
	free(p);
}

static void test_header_flags(void **state)
{
	uint8_t *p = dup_golden();

	(void)state;
	wbe32(p + 12, 0x4);
	fix_header_crc(p);
	expect_fail(p, golden_len, -EOPNOTSUPP, "unknown stream header flags 0x00000004");
	free(p);
}

/*
 * 1.1 is 1.0 with other record checksums: the same records byte for byte,
 * each tail the low 32 bits of XXH3-64 where 1.0 has CRC-32, and a header
 * that differs in the minor and the checksum algorithm only. Read as 1.0
 * reads it (a u32 of flags at 12), that header has flags 0x00000001, which
 * a 1.0 reader refuses before any record.
 */
static void test_v11_is_v10_with_xxh3(void **state)
{
	size_t i;

	(void)state;
	assert_int_equal(V11->len, V10->len);
	assert_int_equal(V11->nrecs, V10->nrecs);
	assert_memory_equal(V11->data, V10->data, 10);
	assert_int_equal(be16(V11->data + 10), 1);
	assert_int_equal(be16(V11->data + 12), 0);
	assert_int_equal(be16(V11->data + 14), 1);
	assert_int_equal(be32(V11->data + 12), 0x00000001);
	assert_int_equal(be32(V11->data + 16), (uint32_t)crc32(0, V11->data, 16));
	for (i = 0; i < V10->nrecs; i++) {
		size_t off = V10->recs[i].offset, n = 8 + V10->recs[i].length;

		assert_int_equal(V11->recs[i].offset, off);
		assert_memory_equal(V11->data + off, V10->data + off, n);
		assert_int_equal(be32(V10->data + off + n), (uint32_t)crc32(0, V10->data + off,
									  (uInt)n));
		assert_int_equal(be32(V11->data + off + n),
				 (uint32_t)(XXH3_64bits(V11->data + off, n) & 0xffffffffu));
	}
}

/* From 1.1 on the 1.0 flags word is u16 flags and u16 record checksum. */
static void test_header_v11(void **state)
{
	uint8_t *p = dup_golden();
	char msg[256], needle[80];

	(void)state;
	wbe16(p + 12, 0x8000);
	fix_header_crc(p);
	expect_fail(p, golden_len, -EOPNOTSUPP, "offset 12: unknown stream header flags 0x8000");
	memcpy(p, golden, golden_len);
	wbe16(p + 14, 2);
	fix_header_crc(p);
	expect_fail(p, golden_len, -EOPNOTSUPP,
		    "offset 14: unknown record checksum algorithm 2 (this reader knows "
		    "0 = crc32, 1 = xxh3)");
	wbe16(p + 14, 0xffff);
	fix_header_crc(p);
	expect_fail(p, golden_len, -EOPNOTSUPP, "unknown record checksum algorithm 65535");
	/* A flipped bit in the algorithm field: the header checksum covers it. */
	memcpy(p, golden, golden_len);
	p[15] ^= 0x02;
	expect_fail(p, golden_len, -EBADMSG, "offset 16: header checksum mismatch");
	/* ...and only it: with the header checksum fixed, the records are
	 * checked with CRC-32 and the first one fails. */
	memcpy(p, golden, golden_len);
	p[15] ^= 0x01;
	fix_header_crc(p);
	expect_fail(p, golden_len, -EBADMSG,
		    "record at offset 20 (type 1): checksum mismatch (crc32: stored");
	/* A 1.1 header may name CRC-32: the 1.0 records under it read. */
	memcpy(p, V10->data, V10->len);
	wbe16(p + 10, 1);
	fix_header_crc(p);
	assert_int_equal(read_all(p, V10->len, msg, sizeof(msg), NULL), 0);
	/* The mismatch message names the algorithm the header named. */
	memcpy(p, golden, golden_len);
	p[recs[1].offset + 9] ^= 0x80;
	snprintf(needle, sizeof(needle), "record at offset %" PRIu64
		 " (type 2): checksum mismatch (xxh3: stored 0x%08" PRIx32,
		 recs[1].offset, be32(golden + recs[1].offset + 8 + recs[1].length));
	expect_fail(p, golden_len, -EBADMSG, needle);
	free(p);
}

/* The golden with one extra record inserted before END (END count fixed). */
static uint8_t *insert_before_end(uint16_t type, uint16_t flags, size_t *len)
{
	size_t end = recs[nrecs - 1].offset, n = 12 + 5;
	uint8_t *p = malloc(golden_len + n);

	assert_non_null(p);
	memcpy(p, golden, end);
	wbe16(p + end, type);
	wbe16(p + end + 2, flags);
	wbe32(p + end + 4, 5);
	memcpy(p + end + 8, "hello", 5);
	fix_record_crc(p, end);
	memcpy(p + end + n, golden + end, golden_len - end);
	wbe32(p + end + n + 8, be32(p + end + n + 8) + 1);
	fix_record_crc(p, end + n);
	*len = golden_len + n;
	return p;
}

static void test_unknown_records(void **state)
{
	uint32_t skipped = 0;
	char msg[256], *text = NULL;
	size_t len;
	uint8_t *p;

	(void)state;
	p = insert_before_end(0x7f00, VFMIG_STREAM_F_MUST_UNDERSTAND, &len);
	expect_fail(p, len, -EOPNOTSUPP, "unknown mandatory record type 32512");
	free(p);
	p = insert_before_end(0x7f00, 0, &len);
	assert_int_equal(read_all(p, len, msg, sizeof(msg), &skipped), 0);
	assert_int_equal(skipped, 1);
	assert_int_equal(print_to(p, len, &text), 0);
	assert_non_null(strstr(text, "UNKNOWN      (type 32512)"));
	assert_non_null(strstr(text, "skipped: unknown optional record"));
	assert_non_null(strstr(text, "18 records before END"));
	free(text);
	free(p);
}

static void test_oversized_length(void **state)
{
	uint8_t *p = dup_golden();
	char needle[64];

	(void)state;
	wbe32(p + recs[1].offset + 4, VFMIG_STREAM_MAX_RECORD + 1);
	snprintf(needle, sizeof(needle), "length %u above the maximum %u",
		 VFMIG_STREAM_MAX_RECORD + 1, VFMIG_STREAM_MAX_RECORD);
	expect_fail(p, golden_len, -EMSGSIZE, needle);
	free(p);
}

static void test_record_flags(void **state)
{
	uint8_t *p = dup_golden();

	(void)state;
	wbe16(p + recs[1].offset + 2, 0x0005);
	fix_record_crc(p, recs[1].offset);
	expect_fail(p, golden_len, -EOPNOTSUPP, "unknown flags 0x0004");
	free(p);
}

/* A valid checksum does not make a record valid. */
static void test_bad_payload_good_crc(void **state)
{
	size_t k = find_rec(VFMIG_REC_DEVICE_BEGIN, 0);
	uint8_t *p = dup_golden();

	(void)state;
	p[recs[k].offset + 8 + 2] = 9; /* phase */
	fix_record_crc(p, recs[k].offset);
	expect_fail(p, golden_len, -EBADMSG, "DEVICE_BEGIN has phase 9");
	memcpy(p, golden, golden_len);
	wbe16(p + recs[k].offset + 8, 2); /* device index 2 of 2 */
	fix_record_crc(p, recs[k].offset);
	expect_fail(p, golden_len, -EPROTO, "device index 2 but DEVICE_LIST has 2 devices");
	memcpy(p, golden, golden_len);
	k = find_rec(VFMIG_REC_DEVICE_LIST, 0);
	wbe16(p + recs[k].offset + 8, 3); /* count 3, payload holds 2 */
	fix_record_crc(p, recs[k].offset);
	expect_fail(p, golden_len, -EBADMSG, "DEVICE_LIST payload truncated");
	free(p);
}

/* Dropping a whole record (with its checksum) is caught by END's count. */
static void test_dropped_record(void **state)
{
	size_t k = find_rec(VFMIG_REC_SWITCHOVER, 0);
	size_t rl = 12 + recs[k].length;
	uint8_t *p = malloc(golden_len);

	(void)state;
	assert_non_null(p);
	memcpy(p, golden, recs[k].offset);
	memcpy(p + recs[k].offset, golden + recs[k].offset + rl, golden_len - recs[k].offset - rl);
	expect_fail(p, golden_len - rl, -EPROTO, "counts 17 records, the stream had 16");
	free(p);
}

static void test_trailing_garbage(void **state)
{
	uint8_t *p = dup_golden();
	char msg[256], *text = NULL;

	(void)state;
	memcpy(p + golden_len, "junk", 4);
	/* The reader stops at END (it must not block on a socket)... */
	assert_int_equal(read_all(p, golden_len + 4, msg, sizeof(msg), NULL), 0);
	/* ...the printer, verifying a file, refuses what follows. */
	assert_int_equal(print_to(p, golden_len + 4, &text), -EBADMSG);
	assert_non_null(strstr(text, "4 bytes after END"));
	free(text);
	free(p);
}

/* A test on one golden file (V10, V11), named after both. */
#define ON(f, file) { #f " " #file, f, use_file, NULL, (void *)(file) }
#define ON_BOTH(f) ON(f, V10), ON(f, V11)

/* Today's writer writes exactly the golden bytes p of format 1.minor. */
static void expect_writer_bytes(uint16_t minor, const uint8_t *p, size_t len)
{
	struct vfmig_io *io;
	const uint8_t *w;
	size_t wlen;

	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(golden_write_minor(io, VFMIG_STREAM_CSUM_XXH3, minor), 0);
	w = vfmig_io_mem_data(io, &wlen);
	assert_int_equal(wlen, len);
	assert_memory_equal(w, p, len);
	vfmig_io_close(io);
}

/* v1.2.vfmig: v1.1's records at the same offsets, a VCPU_STATE for vCPU 0
 * (golden_state1) before END; today's writer writes the same bytes; the
 * printer shows the section by field name. */
static void test_golden_v12(void **state)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct golden_state got, want;
	struct vfmig_io *io;
	char path[4096], err[256];
	size_t len;
	int n = 0, rc;

	(void)state;
	snprintf(path, sizeof(path), "%s/v1.2.vfmig", golden_dir);
	uint8_t *p = read_file(path, &len);
	assert_non_null(p);
	assert_memory_equal(p, "VFMIGSTR\x00\x01\x00\x02\x00\x00\x00\x01", 16);
	assert_int_equal(be32(p + 16), (uint32_t)crc32(0, p, 16));
	/* Everything of 1.1 up to its END is there, with XXH3 checksums. */
	assert_true(len > V11->len);
	assert_memory_equal(p + 20, V11->data + 20, V11->recs[V11->nrecs - 1].offset - 20);
	expect_writer_bytes(2, p, len);
	assert_int_equal(vfmig_io_mem_reader(&io, p, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, io, err, sizeof(err)), 0);
	assert_int_equal(vfmig_stream_reader_minor(r), 2);
	while ((rc = vfmig_stream_next(r, &rec)) == 1) {
		if (rec.type != VFMIG_REC_VCPU_STATE)
			continue;
		n++;
		assert_int_equal(rec.d.u.vcpu_state.vcpu, 0);
		memset(&got, 0, sizeof(got));
		assert_int_equal(vfmig_fields_decode(&golden_desc, rec.d.u.vcpu_state.state,
						     rec.d.u.vcpu_state.len, &got, err,
						     sizeof(err)), 0);
		golden_state1(&want);
		assert_memory_equal(&got, &want, sizeof(got));
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, 1);
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);
	free(p);
}

/* v1.3.vfmig: v1.2's records, the RAM pages as RAM_PAGES_LIVE (type 11):
 * RAM_PAGES' payload, then the XXH3 (low 32 bits) of each data page; the
 * record checksum covers all but the page data. A flipped page byte is a
 * torn page, refused at END; a flipped table byte a checksum mismatch; the
 * record in a stream that says 1.2 out of order. */
static void test_golden_v13(void **state)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	char path[4096], err[512];
	size_t len, len12;
	uint8_t page[4096], *q;
	int rc;

	(void)state;
	snprintf(path, sizeof(path), "%s/v1.2.vfmig", golden_dir);
	uint8_t *v12 = read_file(path, &len12);
	snprintf(path, sizeof(path), "%s/v1.3.vfmig", golden_dir);
	uint8_t *p = read_file(path, &len);
	assert_non_null(v12);
	assert_non_null(p);
	assert_memory_equal(p, "VFMIGSTR\x00\x01\x00\x03\x00\x01\x00\x01", 16);
	assert_int_equal(be32(p + 16), (uint32_t)crc32(0, p, 16));
	/* Up to the RAM record (offset 213) the same bytes as 1.2. */
	assert_memory_equal(p + 20, v12 + 20, 213 - 20);
	assert_int_equal(be16(v12 + 213), VFMIG_REC_RAM_PAGES);
	uint32_t plen = be32(v12 + 213 + 4);
	assert_int_equal(be16(p + 213), VFMIG_REC_RAM_PAGES_LIVE);
	assert_int_equal(be16(p + 215), VFMIG_STREAM_F_MUST_UNDERSTAND);
	assert_int_equal(be32(p + 217), plen + 8);
	assert_memory_equal(p + 221, v12 + 221, plen);
	for (unsigned i = 0; i < 2; i++) {
		golden_page(page, i);
		assert_int_equal(be32(p + 221 + plen + 4 * i),
				 (uint32_t)(XXH3_64bits(page, sizeof(page)) & 0xffffffffu));
	}
	/* The record checksum: header, payload but the 8192 page bytes
	 * (after block "pc.ram", page size, run count and the first run's
	 * 13-byte header), the table. */
	size_t pre = 8 + 2 + 6 + 8 + 13, data = 2 * 4096;
	XXH3_state_t *x = XXH3_createState();
	XXH3_64bits_reset(x);
	XXH3_64bits_update(x, p + 213, pre);
	XXH3_64bits_update(x, p + 213 + pre + data, 8 + plen + 8 - pre - data);
	assert_int_equal(be32(p + 221 + plen + 8), (uint32_t)(XXH3_64bits_digest(x) & 0xffffffffu));
	XXH3_freeState(x);
	/* After it, 1.2's tail. */
	size_t end13 = 221 + plen + 8 + 4, end12 = 221 + plen + 4;
	assert_int_equal(len - end13, len12 - end12);
	assert_memory_equal(p + end13, v12 + end12, len - end13);
	/* Today's writer writes the same bytes. */
	expect_writer_bytes(3, p, len);
	/* Read back: the pages as written, none torn. */
	assert_int_equal(vfmig_io_mem_reader(&io, p, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, io, err, sizeof(err)), 0);
	assert_int_equal(vfmig_stream_reader_minor(r), 3);
	while ((rc = vfmig_stream_next(r, &rec)) == 1) {
		if (rec.type != VFMIG_REC_RAM_PAGES_LIVE)
			continue;
		expect_str(rec.d.u.ram_pages.block, "pc.ram");
		assert_int_equal(rec.d.u.ram_pages.nruns, 2);
		assert_int_equal(rec.d.u.ram_pages.runs[0].addr, 0x1000);
		assert_true(rec.d.u.ram_pages.runs[1].zero);
		assert_int_equal(rec.d.u.ram_pages.torn, 0);
		golden_page(page, 1);
		assert_memory_equal(rec.d.u.ram_pages.runs[0].data + 4096, page, 4096);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(vfmig_stream_reader_torn(r), 0);
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);

	q = malloc(len);
	assert_non_null(q);
	/* A page byte changed on the way: the record is taken, the page torn,
	 * and the END refused because nothing carried it again. */
	memcpy(q, p, len);
	q[213 + pre + 4096 + 7] ^= 0x20;
	assert_int_equal(vfmig_io_mem_reader(&io, q, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, io, err, sizeof(err)), 0);
	while ((rc = vfmig_stream_next(r, &rec)) == 1)
		if (rec.type == VFMIG_REC_RAM_PAGES_LIVE)
			assert_int_equal(rec.d.u.ram_pages.torn, 1);
	assert_int_equal(rc, -EBADMSG);
	assert_int_equal(vfmig_stream_reader_torn(r), 1);
	assert_int_equal(vfmig_stream_reader_torn_pending(r), 1);
	assert_non_null(strstr(vfmig_stream_reader_error(r),
			       "1 RAM page(s) arrived torn and were not carried again, the "
			       "first at 0x2000 of block pc.ram (RAM_PAGES_LIVE at offset 213)"));
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);
	/* A table byte changed: covered by the record checksum. */
	memcpy(q, p, len);
	q[221 + plen + 2] ^= 0x01;
	rc = read_all(q, len, err, sizeof(err), NULL);
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(err, "record at offset 213 (type 11): checksum mismatch"));
	/* A run header byte changed: the same. */
	memcpy(q, p, len);
	q[213 + pre - 2] ^= 0x01;
	rc = read_all(q, len, err, sizeof(err), NULL);
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(err, "checksum mismatch"));
	/* A reader of 1.2 refuses the header (its flag LIVE), and so does
	 * today's for a header that says 1.2 with it. */
	memcpy(q, p, len);
	q[11] = 2;
	fix_header_crc(q);
	rc = read_all(q, len, err, sizeof(err), NULL);
	assert_int_equal(rc, -EOPNOTSUPP);
	assert_non_null(strstr(err, "offset 12: unknown stream header flags 0x0001"));
	/* Without the flag, 1.2: the record is out of its version. */
	q[13] = 0;
	fix_header_crc(q);
	rc = read_all(q, len, err, sizeof(err), NULL);
	assert_int_equal(rc, -EPROTO);
	assert_non_null(strstr(err, "RAM_PAGES_LIVE at offset 213 in a 1.2 stream"));
	/* 1.3 without the flag: not announced. */
	q[11] = 3;
	fix_header_crc(q);
	rc = read_all(q, len, err, sizeof(err), NULL);
	assert_int_equal(rc, -EPROTO);
	assert_non_null(strstr(err, "RAM_PAGES_LIVE at offset 213, but the header does not "
			       "announce it (flag 0x0001)"));
	free(q);
	free(p);
	free(v12);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		ON_BOTH(test_golden_content),
		ON_BOTH(test_golden_writer_unchanged),
		ON_BOTH(test_golden_prints),
		ON_BOTH(test_truncated),
		ON_BOTH(test_flipped_bit),
		ON_BOTH(test_major_minor),
		ON(test_header_flags, V10),
		ON(test_v11_is_v10_with_xxh3, V11),
		ON(test_header_v11, V11),
		ON(test_golden_v12, V11),
		ON(test_golden_v13, V11),
		ON_BOTH(test_unknown_records),
		ON_BOTH(test_oversized_length),
		ON_BOTH(test_record_flags),
		ON_BOTH(test_bad_payload_good_crc),
		ON_BOTH(test_dropped_record),
		ON_BOTH(test_trailing_garbage),
	};

	golden_dir = argc > 1 ? argv[1] : "tests/stream/golden";
	return cmocka_run_group_tests(tests, setup, teardown);
}
