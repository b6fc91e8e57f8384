/* SPDX-License-Identifier: MIT */
/*
 * RAM_PAGES_LIVE (format 1.3): page data written straight from memory, each
 * page with its own checksum. Round trips with and without placement, pages
 * larger than the reader's piece, a page changed on the way (torn: taken,
 * pending, refused at END unless a later record carries it again), and the
 * refusals of malformed records.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ram_stream.h"
#include "stream/stream.h"

#define PS 4096u
#define NPAGES 16u
#define BIG (1u << 20) /* a page above the reader's 128 KiB piece */

static uint8_t src[NPAGES * PS];
static uint8_t ram[NPAGES * PS];
static uint8_t *big_src;

static void fill(uint8_t *p, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(x >> 56);
	}
}

static void *place(void *priv, const struct vfmig_stream_str *block, uint32_t page_size,
		   uint64_t addr, uint64_t len)
{
	(void)priv;
	(void)page_size;
	if (!vfmig_stream_str_eq(*block, "ram"))
		return NULL; /* ram holds block "ram" only */
	return addr + len <= sizeof(ram) ? ram + addr : NULL;
}

/* Where the nth copy (0: first) of len bytes of needle lies in hay. */
static size_t find(const uint8_t *hay, size_t hlen, const uint8_t *needle, size_t len,
		   unsigned nth)
{
	for (size_t i = 0; i + len <= hlen; i++)
		if (memcmp(hay + i, needle, len) == 0 && nth-- == 0)
			return i;
	fail_msg("bytes not found in the stream");
	return 0;
}

struct readout {
	int rc;                 /* the last vfmig_stream_next() */
	unsigned live;          /* RAM_PAGES_LIVE records read */
	uint32_t torn[4];       /* their torn counts */
	uint64_t torn_total;
	uint32_t pending;
	char err[400];
};

static void read_stream(const uint8_t *p, size_t len, bool placed, struct readout *o)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	char err[256];

	memset(o, 0, sizeof(*o));
	assert_int_equal(vfmig_io_mem_reader(&io, p, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, io, err, sizeof(err)), 0);
	if (placed)
		vfmig_stream_reader_set_ram_place(r, place, NULL);
	while ((o->rc = vfmig_stream_next(r, &rec)) == 1) {
		if (rec.type == VFMIG_REC_RAM_PAGES)
			fail_msg("RAM_PAGES in a 1.3 stream of this writer");
		if (rec.type != VFMIG_REC_RAM_PAGES_LIVE)
			continue;
		assert_null(rec.payload);
		if (o->live < 4)
			o->torn[o->live] = rec.d.u.ram_pages.torn;
		o->live++;
		/* Without placement the data is in the reader's buffer: copy
		 * it to ram so both ways can be compared alike. */
		for (uint32_t i = 0; !placed && i < rec.d.u.ram_pages.nruns; i++) {
			const struct vfmig_stream_ram_run *run = &rec.d.u.ram_pages.runs[i];
			uint64_t n = (uint64_t)run->npages * rec.d.u.ram_pages.page_size;

			if (!run->zero && run->addr + n <= sizeof(ram) &&
			    vfmig_stream_str_eq(rec.d.u.ram_pages.block, "ram"))
				memcpy(ram + run->addr, run->data, n);
		}
	}
	o->torn_total = vfmig_stream_reader_torn(r);
	o->pending = vfmig_stream_reader_torn_pending(r);
	snprintf(o->err, sizeof(o->err), "%s", vfmig_stream_reader_error(r));
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);
}

static const struct vfmig_stream_ram_run runs4[] = {
	{ 0, 1, false, src },
	{ PS, 3, true, NULL },
	{ 5 * PS, 2, false, src + 5 * PS },
	{ 9 * PS, 1, false, src + 9 * PS },
};

static void test_round_trip(void **state)
{
	(void)state;
	const struct vfmig_stream_ram_pages rp = { "ram", PS, 4, runs4 };
	struct readout o;
	size_t len;
	uint8_t *s;

	fill(src, sizeof(src), 1);
	s = test_ram_stream(3, &rp, 1, &len);
	for (int placed = 0; placed < 2; placed++) {
		memset(ram, 0xee, sizeof(ram));
		read_stream(s, len, placed, &o);
		assert_int_equal(o.rc, 0);
		assert_int_equal(o.live, 1);
		assert_int_equal(o.torn[0], 0);
		assert_int_equal(o.torn_total, 0);
		assert_memory_equal(ram, src, PS);
		assert_memory_equal(ram + 5 * PS, src + 5 * PS, 2 * PS);
		assert_memory_equal(ram + 9 * PS, src + 9 * PS, PS);
		assert_int_equal(ram[2 * PS], 0xee);
	}
	free(s);
}

/* Two pages changed on the way in the first record; the second record
 * carries one again as data and the other as a zero run: END is fine. */
static void test_torn_then_carried(void **state)
{
	(void)state;
	const struct vfmig_stream_ram_run again[] = {
		{ 5 * PS, 1, false, src + 5 * PS },
		{ 9 * PS, 1, true, NULL },
	};
	const struct vfmig_stream_ram_pages rp[2] = {
		{ "ram", PS, 4, runs4 }, { "ram", PS, 2, again },
	};
	struct readout o;
	size_t len, at5, at9;
	uint8_t *s;

	fill(src, sizeof(src), 2);
	s = test_ram_stream(3, rp, 2, &len);
	at5 = find(s, len, src + 5 * PS, PS, 0);
	at9 = find(s, len, src + 9 * PS, PS, 0);
	s[at5 + 100] ^= 0x01;
	s[at9 + PS - 1] ^= 0x80;
	for (int placed = 0; placed < 2; placed++) {
		read_stream(s, len, placed, &o);
		if (o.rc != 0)
			fail_msg("%s", o.err);
		assert_int_equal(o.live, 2);
		assert_int_equal(o.torn[0], 2);
		assert_int_equal(o.torn[1], 0);
		assert_int_equal(o.torn_total, 2);
		assert_int_equal(o.pending, 0);
		/* The good copy of page 5 came last. */
		assert_memory_equal(ram + 5 * PS, src + 5 * PS, PS);
	}
	free(s);
}

/* A torn page nothing carries again: END names it; a page of another block
 * at the same address does not count. */
static void test_torn_not_carried(void **state)
{
	(void)state;
	const struct vfmig_stream_ram_run other[] = { { 5 * PS, 2, false, src + 5 * PS } };
	const struct vfmig_stream_ram_pages rp[2] = {
		{ "ram", PS, 4, runs4 }, { "ram2", PS, 1, other },
	};
	struct readout o;
	size_t len, at;
	uint8_t *s;

	fill(src, sizeof(src), 3);
	s = test_ram_stream(3, rp, 2, &len);
	at = find(s, len, src + 6 * PS, PS, 0); /* the first record's copy */
	s[at + 7] ^= 0x04;
	for (int placed = 0; placed < 2; placed++) {
		read_stream(s, len, placed, &o);
		assert_int_equal(o.rc, -EBADMSG);
		assert_int_equal(o.torn[0], 1);
		assert_int_equal(o.pending, 1);
		if (!strstr(o.err, "1 RAM page(s) arrived torn and were not carried again, the "
				   "first at 0x6000 of block ram (RAM_PAGES_LIVE at offset "))
			fail_msg("%s", o.err);
		/* What arrived is what landed. */
		assert_int_equal(ram[6 * PS + 7], src[6 * PS + 7] ^ 0x04);
	}
	free(s);
}

/* Pages above the reader's piece: summed across pieces; a change in the
 * page's third piece tears it. */
static void test_big_pages(void **state)
{
	(void)state;
	const struct vfmig_stream_ram_run run[] = { { 0, 2, false, NULL } };
	struct vfmig_stream_ram_pages rp = { "ram", BIG, 1, run };
	struct vfmig_stream_ram_run r0 = run[0];
	struct readout o;
	size_t len, at;
	uint8_t *s;

	big_src = malloc(2 * BIG);
	assert_non_null(big_src);
	fill(big_src, 2 * BIG, 4);
	r0.data = big_src;
	rp.runs = &r0;
	s = test_ram_stream(3, &rp, 1, &len);
	read_stream(s, len, false, &o);
	assert_int_equal(o.rc, 0);
	assert_int_equal(o.torn[0], 0);
	at = find(s, len, big_src + BIG, 64, 0);
	s[at + 3 * (128u << 10) + 5] ^= 0x10;
	read_stream(s, len, false, &o);
	assert_int_equal(o.rc, -EBADMSG);
	assert_int_equal(o.torn[0], 1);
	assert_non_null(strstr(o.err, "first at 0x100000 of block ram"));
	free(s);
	free(big_src);
}

/* Page checksums taken on the writer's own thread: the same bytes as on
 * the calling thread, for small pages, zero runs, several records of one
 * writer, a record with no data page, and pages above one piece. */
static void test_aside(void **state)
{
	(void)state;
	const struct vfmig_stream_ram_run zeros[] = { { 0, 4, true, NULL } };
	struct vfmig_stream_ram_run bigrun = { 0, 2, false, NULL };
	const struct vfmig_stream_ram_pages rp[3] = {
		{ "ram", PS, 4, runs4 }, { "ram", PS, 1, zeros }, { "ram", PS, 4, runs4 },
	};
	const struct vfmig_stream_ram_pages bigrp = { "ram", BIG, 1, &bigrun };
	size_t len0, len1;
	uint8_t *s0, *s1;
	struct readout o;

	fill(src, sizeof(src), 5);
	s0 = test_ram_stream_aside(3, rp, 3, &len0, false);
	s1 = test_ram_stream_aside(3, rp, 3, &len1, true);
	assert_int_equal(len0, len1);
	assert_memory_equal(s0, s1, len0);
	memset(ram, 0xee, sizeof(ram));
	read_stream(s1, len1, true, &o);
	assert_int_equal(o.rc, 0);
	assert_int_equal(o.torn_total, 0);
	assert_memory_equal(ram + 5 * PS, src + 5 * PS, 2 * PS);
	free(s0);
	free(s1);

	big_src = malloc(2 * BIG);
	assert_non_null(big_src);
	fill(big_src, 2 * BIG, 6);
	bigrun.data = big_src;
	s0 = test_ram_stream_aside(3, &bigrp, 1, &len0, false);
	s1 = test_ram_stream_aside(3, &bigrp, 1, &len1, true);
	assert_int_equal(len0, len1);
	assert_memory_equal(s0, s1, len0);
	free(s0);
	free(s1);
	free(big_src);
}

static uint16_t rec_type; /* of the record raw_live() read */

/* A 1.minor stream of the DEVICE_LIST, one RAM_PAGES_LIVE record of payload
 * written raw (its record checksum over every byte) and END; reads up to
 * that record and returns vfmig_stream_next()'s result for it. */
static int raw_live(uint16_t minor, const uint8_t *payload, size_t n,
		    struct vfmig_stream_reader **r, struct vfmig_io **io, struct vfmig_io **rio)
{
	struct vfmig_stream_record rec;
	struct vfmig_stream_writer *w;
	const uint8_t *p;
	char err[256];
	size_t len;
	int rc;

	assert_int_equal(vfmig_io_mem_writer(io), 0);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, *io, VFMIG_STREAM_CSUM_XXH3, minor), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
	assert_int_equal(vfmig_stream_write_record(w, VFMIG_REC_RAM_PAGES_LIVE,
						   VFMIG_STREAM_F_MUST_UNDERSTAND, payload, n), 0);
	assert_int_equal(vfmig_stream_writer_end(w), 0);
	vfmig_stream_writer_free(w);
	p = vfmig_io_mem_data(*io, &len);
	assert_int_equal(vfmig_io_mem_reader(rio, p, len), 0);
	assert_int_equal(vfmig_stream_reader_open(r, *rio, err, sizeof(err)), 0);
	assert_int_equal(vfmig_stream_next(*r, &rec), 1);
	rc = vfmig_stream_next(*r, &rec);
	rec_type = rc == 1 ? rec.type : 0;
	if (rc == 1)
		assert_true(rec.d.u.ram_pages.runs[0].zero);
	return rc;
}

static void raw_live_close(struct vfmig_stream_reader *r, struct vfmig_io *io,
			   struct vfmig_io *rio)
{
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
	vfmig_io_close(io);
}

/* The writer's choice by minor: 1.2 writes RAM_PAGES; and a RAM_PAGES_LIVE
 * written into a 1.2 stream is refused as out of its version. */
static void test_minor(void **state)
{
	(void)state;
	const struct vfmig_stream_ram_pages rp = { "ram", PS, 4, runs4 };
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io, *rio;
	uint8_t payload[64] = { 0 };
	char err[256];
	size_t len;
	int rc;

	fill(src, sizeof(src), 5);
	uint8_t *s = test_ram_stream(2, &rp, 1, &len);
	assert_int_equal(vfmig_io_mem_reader(&rio, s, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, rio, err, sizeof(err)), 0);
	assert_int_equal(vfmig_stream_next(r, &rec), 1);
	assert_int_equal(vfmig_stream_next(r, &rec), 1);
	assert_int_equal(rec.type, VFMIG_REC_RAM_PAGES);
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
	free(s);

	/* A zero-run-only RAM_PAGES_LIVE (empty table) by hand: its record
	 * checksum covers every byte, as write_record computes it. */
	size_t n = 0;
	payload[n++] = 0;
	payload[n++] = 3;
	memcpy(payload + n, "ram", 3);
	n += 3;
	memcpy(payload + n, "\x00\x00\x10\x00\x00\x00\x00\x01", 8);
	n += 8;
	memcpy(payload + n, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x01", 13);
	n += 13;
	rc = raw_live(2, payload, n, &r, &io, &rio);
	assert_int_equal(rc, -EPROTO);
	assert_non_null(strstr(vfmig_stream_reader_error(r),
			       "RAM_PAGES_LIVE at offset 34 in a 1.2 stream"));
	raw_live_close(r, io, rio);

	/* The same in 1.3 is fine; with 4 more bytes its table is too long. */
	rc = raw_live(3, payload, n, &r, &io, &rio);
	assert_int_equal(rc, 1);
	assert_int_equal(rec_type, VFMIG_REC_RAM_PAGES_LIVE);
	assert_int_equal(vfmig_stream_next(r, &rec), 1);
	assert_int_equal(rec.type, VFMIG_REC_END);
	raw_live_close(r, io, rio);
	rc = raw_live(3, payload, n + 4, &r, &io, &rio);
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(vfmig_stream_reader_error(r),
			       "RAM_PAGES_LIVE page checksum table has 4 bytes, 0 data pages need 0"));
	raw_live_close(r, io, rio);
}

/* The payload decoder: the table's length must match the data pages. */
static void test_decode(void **state)
{
	(void)state;
	static const uint8_t head[] = "\x00\x01r\x00\x00\x02\x00\x00\x00\x00\x01"
				      "\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x01\x00";
	struct vfmig_stream_decoded d;
	uint8_t p[sizeof(head) - 1 + 512 + 8];
	char err[200];
	size_t h = sizeof(head) - 1;

	memcpy(p, head, h);
	memset(p + h, 0x5a, 512);
	memset(p + h + 512, 0, 8);
	assert_int_equal(vfmig_stream_decode(VFMIG_REC_RAM_PAGES_LIVE, p,
					     (uint32_t)(h + 512 + 4), &d, err, sizeof(err)), 0);
	assert_int_equal(d.u.ram_pages.nruns, 1);
	assert_int_equal(d.u.ram_pages.runs[0].addr, 0x400);
	assert_ptr_equal(d.u.ram_pages.runs[0].data, p + h);
	vfmig_stream_decoded_clear(VFMIG_REC_RAM_PAGES_LIVE, &d);
	assert_int_equal(vfmig_stream_decode(VFMIG_REC_RAM_PAGES_LIVE, p,
					     (uint32_t)(h + 512 + 8), &d, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "table has 8 bytes, 1 data pages need 4"));
	assert_int_equal(vfmig_stream_decode(VFMIG_REC_RAM_PAGES_LIVE, p,
					     (uint32_t)(h + 512), &d, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "table has 0 bytes, 1 data pages need 4"));
	assert_string_equal(vfmig_stream_type_name(VFMIG_REC_RAM_PAGES_LIVE), "RAM_PAGES_LIVE");
	assert_true(vfmig_stream_is_ram_pages(VFMIG_REC_RAM_PAGES_LIVE));
	assert_true(vfmig_stream_is_ram_pages(VFMIG_REC_RAM_PAGES));
	assert_false(vfmig_stream_is_ram_pages(VFMIG_REC_DEVICE_DATA));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_torn_then_carried),
		cmocka_unit_test(test_torn_not_carried),
		cmocka_unit_test(test_big_pages),
		cmocka_unit_test(test_aside),
		cmocka_unit_test(test_minor),
		cmocka_unit_test(test_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
