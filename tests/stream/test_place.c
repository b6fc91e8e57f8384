/* SPDX-License-Identifier: MIT */
/*
 * RAM page data received in place (vfmig_stream_reader_set_ram_place): the
 * bytes land where the placement function says and nowhere else, runs it
 * declines come from the reader's buffer, the checksum covers what landed
 * (a flipped bit is refused, after landing), and malformed RAM_PAGES
 * payloads are refused with the same message as without placement.
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

static uint8_t ram[NPAGES * PS];   /* where placed data goes */
static uint8_t src[NPAGES * PS];   /* what the source sent */

struct placer {
	unsigned calls;
	uint64_t decline_addr; /* this run goes to the buffer; ~0: none */
	uint64_t addr[8], len[8];
};

static void *place(void *priv, const struct vfmig_stream_str *block, uint32_t page_size,
		   uint64_t addr, uint64_t len)
{
	struct placer *pl = priv;

	assert_true(vfmig_stream_str_eq(*block, "ram"));
	assert_int_equal(page_size, PS);
	if (pl->calls < 8) {
		pl->addr[pl->calls] = addr;
		pl->len[pl->calls] = len;
	}
	pl->calls++;
	if (addr == pl->decline_addr || addr + len > sizeof(ram))
		return NULL;
	return ram + addr;
}

/* A 1.2 stream (RAM_PAGES; RAM_PAGES_LIVE has test_live.c) with one
 * RAM_PAGES record: data at page 0, a zero run of 3
 * pages, 2 data pages at page 5, 1 at page 9. Returns its bytes. */
static uint8_t *stream_with_pages(size_t *len)
{
	const struct vfmig_stream_ram_run runs[] = {
		{ 0, 1, false, src },
		{ PS, 3, true, NULL },
		{ 5 * PS, 2, false, src + 5 * PS },
		{ 9 * PS, 1, false, src + 9 * PS },
	};
	const struct vfmig_stream_ram_pages rp = { "ram", PS, 4, runs };

	uint64_t x = 0x9e3779b97f4a7c15ull; /* no 64 bytes repeat */
	for (size_t i = 0; i < sizeof(src); i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		src[i] = (uint8_t)(x >> 56);
	}
	return test_ram_stream(2, &rp, 1, len);
}

/* Reads the record after the (empty) DEVICE_LIST of bytes with placement
 * pl (NULL: none). Returns vfmig_stream_next's result; the reader stays
 * open in *out. */
static int first_record(const uint8_t *bytes, size_t len, struct placer *pl,
			struct vfmig_io **io, struct vfmig_stream_reader **out,
			struct vfmig_stream_record *rec)
{
	char err[256];

	assert_int_equal(vfmig_io_mem_reader(io, bytes, len), 0);
	assert_int_equal(vfmig_stream_reader_open(out, *io, err, sizeof(err)), 0);
	if (pl)
		vfmig_stream_reader_set_ram_place(*out, place, pl);
	assert_int_equal(vfmig_stream_next(*out, rec), 1);
	assert_int_equal(rec->type, VFMIG_REC_DEVICE_LIST);
	return vfmig_stream_next(*out, rec);
}

static void test_lands_in_place(void **state)
{
	(void)state;
	struct placer pl = { .decline_addr = ~0ull };
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	size_t len;
	uint8_t *bytes = stream_with_pages(&len);

	memset(ram, 0xee, sizeof(ram));
	assert_int_equal(first_record(bytes, len, &pl, &io, &r, &rec), 1);
	assert_int_equal(rec.type, VFMIG_REC_RAM_PAGES);
	assert_null(rec.payload);
	assert_int_equal(pl.calls, 3); /* the data runs only */
	assert_int_equal(pl.addr[1], 5 * PS);
	assert_int_equal(pl.len[1], 2 * PS);
	assert_int_equal(rec.d.u.ram_pages.nruns, 4);
	assert_true(rec.d.u.ram_pages.runs[1].zero);
	assert_ptr_equal(rec.d.u.ram_pages.runs[0].data, ram);
	assert_ptr_equal(rec.d.u.ram_pages.runs[2].data, ram + 5 * PS);
	assert_memory_equal(ram, src, PS);
	assert_memory_equal(ram + 5 * PS, src + 5 * PS, 2 * PS);
	assert_memory_equal(ram + 9 * PS, src + 9 * PS, PS);
	/* Nothing outside the data runs was written. */
	for (size_t i = PS; i < 5 * PS; i++)
		assert_int_equal(ram[i], 0xee);
	assert_int_equal(ram[7 * PS], 0xee);
	assert_int_equal(ram[10 * PS], 0xee);
	assert_int_equal(vfmig_stream_next(r, &rec), 1);
	assert_int_equal(rec.type, VFMIG_REC_END);
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);

	/* A declined run is read into the buffer; the others still land. */
	memset(ram, 0xee, sizeof(ram));
	pl = (struct placer){ .decline_addr = 5 * PS };
	assert_int_equal(first_record(bytes, len, &pl, &io, &r, &rec), 1);
	assert_int_equal(ram[5 * PS], 0xee);
	assert_ptr_not_equal(rec.d.u.ram_pages.runs[2].data, ram + 5 * PS);
	assert_memory_equal(rec.d.u.ram_pages.runs[2].data, src + 5 * PS, 2 * PS);
	assert_ptr_equal(rec.d.u.ram_pages.runs[3].data, ram + 9 * PS);
	assert_memory_equal(ram + 9 * PS, src + 9 * PS, PS);
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);
	free(bytes);
}

static void test_checksum_over_landed_bytes(void **state)
{
	(void)state;
	struct placer pl = { .decline_addr = ~0ull };
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	size_t len;
	uint8_t *bytes = stream_with_pages(&len);
	uint8_t *hit = memmem(bytes, len, src + 5 * PS + 100, 64);

	assert_non_null(hit);
	hit[7] ^= 0x01;
	assert_int_equal(first_record(bytes, len, &pl, &io, &r, &rec), -EBADMSG);
	assert_non_null(strstr(vfmig_stream_reader_error(r), "checksum mismatch"));
	/* It landed (the caller must not run this memory). */
	assert_int_equal(ram[5 * PS + 107], (uint8_t)(src[5 * PS + 107] ^ 0x01));
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);
	free(bytes);
}

/* A stream (header from a real writer) whose only record is RAM_PAGES with
 * payload p (its checksum right), then END. */
static uint8_t *stream_with_payload(const uint8_t *p, size_t plen, size_t *len)
{
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;

	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_XXH3, 2), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
	assert_int_equal(vfmig_stream_write_record(w, VFMIG_REC_RAM_PAGES,
						   VFMIG_STREAM_F_MUST_UNDERSTAND, p, plen),
			 0);
	assert_int_equal(vfmig_stream_writer_end(w), 0);
	vfmig_stream_writer_free(w);
	return test_mem_take(io, len);
}

static size_t put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return n;
}

static void test_malformed_alike(void **state)
{
	(void)state;
	/* name "ram", page size, run count, then runs; each case cuts or
	 * bends the payload */
	static uint8_t good[64 + 2 * PS];
	size_t n = 0;

	n += put(good + n, 3, 2);
	memcpy(good + n, "ram", 3);
	n += 3;
	n += put(good + n, PS, 4);
	n += put(good + n, 2, 4);
	n += put(good + n, 0, 8);
	n += put(good + n, 1, 4);
	good[n++] = 0;
	memcpy(good + n, src, PS);
	n += PS;
	n += put(good + n, 2 * PS, 8);
	n += put(good + n, 1, 4);
	good[n++] = 1;
	const size_t whole = n, run0 = 2 + 3 + 8, run1 = run0 + 13 + PS;
	struct {
		const char *what;
		size_t len;   /* payload bytes kept */
		size_t at;    /* byte changed (with val), or SIZE_MAX */
		uint8_t val;
	} cases[] = {
		{ "empty", 0, SIZE_MAX, 0 },
		{ "one byte", 1, SIZE_MAX, 0 },
		{ "name cut", 4, SIZE_MAX, 0 },
		{ "NUL in name", whole, 3, 0 },
		{ "page size cut", 7, SIZE_MAX, 0 },
		{ "count cut", 11, SIZE_MAX, 0 },
		{ "page size 3000", whole, 7, 0x0b },
		{ "count too large", whole, 12, 0x40 },
		{ "run header cut after addr", run0 + 9, SIZE_MAX, 0 },
		{ "run header cut after npages", run0 + 12, SIZE_MAX, 0 },
		{ "data cut", run0 + 13 + 100, SIZE_MAX, 0 },
		{ "bad kind", whole, run0 + 12, 7 },
		{ "zero npages", whole, run0 + 11, 0 },
		{ "unaligned addr", whole, run0 + 7, 1 },
		{ "second run cut", run1 + 5, SIZE_MAX, 0 },
		{ "trailing bytes", whole + 3, SIZE_MAX, 0 },
		{ "good", whole, SIZE_MAX, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static uint8_t p[sizeof(good) + 8];
		struct placer pl = { .decline_addr = ~0ull };
		struct vfmig_stream_reader *r[2];
		struct vfmig_stream_record rec[2];
		struct vfmig_io *io[2];
		size_t len;
		int rc[2];

		memcpy(p, good, whole);
		memset(p + whole, 0xab, sizeof(p) - whole);
		if (cases[i].at != SIZE_MAX)
			p[cases[i].at] = cases[i].val;
		uint8_t *bytes = stream_with_payload(p, cases[i].len, &len);
		rc[0] = first_record(bytes, len, NULL, &io[0], &r[0], &rec[0]);
		rc[1] = first_record(bytes, len, &pl, &io[1], &r[1], &rec[1]);
		if (rc[0] != rc[1] || strcmp(vfmig_stream_reader_error(r[0]),
					     vfmig_stream_reader_error(r[1])))
			fail_msg("%s: %d \"%s\" without placement, %d \"%s\" with",
				 cases[i].what, rc[0], vfmig_stream_reader_error(r[0]),
				 rc[1], vfmig_stream_reader_error(r[1]));
		if (strcmp(cases[i].what, "good") == 0) {
			assert_int_equal(rc[1], 1);
			assert_int_equal(pl.calls, 1);
			assert_memory_equal(ram, src, PS);
		} else {
			assert_int_equal(rc[0], -EBADMSG);
		}
		for (int k = 0; k < 2; k++) {
			vfmig_stream_reader_free(r[k]);
			vfmig_io_close(io[k]);
		}
		free(bytes);
	}
}

/* A stream that ends inside a placed record: the message of a reader
 * without placement. */
static void test_truncated_alike(void **state)
{
	(void)state;
	size_t len;
	uint8_t *bytes = stream_with_pages(&len);

	/* from inside the RAM_PAGES header (after the stream header and the
	 * DEVICE_LIST) to inside its last data run */
	for (size_t cut = 40; cut < 40 + 3 * PS; cut += 509) {
		struct placer pl = { .decline_addr = ~0ull };
		struct vfmig_stream_reader *r[2];
		struct vfmig_stream_record rec[2];
		struct vfmig_io *io[2];
		int rc[2];

		rc[0] = first_record(bytes, cut, NULL, &io[0], &r[0], &rec[0]);
		rc[1] = first_record(bytes, cut, &pl, &io[1], &r[1], &rec[1]);
		assert_int_equal(rc[0], -ENODATA);
		if (rc[1] != rc[0] || strcmp(vfmig_stream_reader_error(r[0]),
					     vfmig_stream_reader_error(r[1])))
			fail_msg("cut at %zu: \"%s\" without placement, \"%s\" with", cut,
				 vfmig_stream_reader_error(r[0]),
				 vfmig_stream_reader_error(r[1]));
		for (int k = 0; k < 2; k++) {
			vfmig_stream_reader_free(r[k]);
			vfmig_io_close(io[k]);
		}
	}
	free(bytes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lands_in_place),
		cmocka_unit_test(test_checksum_over_landed_bytes),
		cmocka_unit_test(test_malformed_alike),
		cmocka_unit_test(test_truncated_alike),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
