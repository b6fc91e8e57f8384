/* SPDX-License-Identifier: MIT */
/* The "vram" sample's migration stream (samples/vram/vram_state.c): what
 * its encoder writes loads back to the same VRAM and registers in pieces
 * of any size, and each malformed stream is refused with its reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vram_state.h"

#define PAGES 8u
#define SIZE (PAGES * VRAM_PAGE_SIZE)

static const struct vram_regs regs = {
	.fill_start = 1, .fill_count = 2, .fill_seed = 0x77,
	.status = VRAM_STATUS_DONE, .error = 0, .dma_len = 4096,
	.counter = 9, .csum = 0x1122334455667788ull,
	.dma_addr = 0xa0b0c0d0e0f00102ull, .vram_off = 0x3000,
	.win_off = 0x10000,
};

static uint8_t mem[SIZE], got[SIZE], stream[SIZE + 64 * VRAM_REC_HDR +
					      VRAM_MIG_HDR + VRAM_MIG_REGS];

/* VRAM with data pages 1-2 and 5, zero elsewhere; encoded into stream. */
static size_t make(void)
{
	memset(mem, 0, sizeof(mem));
	for (size_t i = 0; i < 2 * VRAM_PAGE_SIZE; i++)
		mem[VRAM_PAGE_SIZE + i] = (uint8_t)(i * 13 + 1);
	memset(mem + 5 * VRAM_PAGE_SIZE, 0xee, VRAM_PAGE_SIZE);
	return vram_state_encode(mem, PAGES, &regs, stream);
}

static void assert_regs_equal(const struct vram_regs *a,
			      const struct vram_regs *b)
{
	uint8_t x[VRAM_MIG_REGS], y[VRAM_MIG_REGS];

	vram_state_regs(x, a);
	vram_state_regs(y, b);
	assert_memory_equal(x, y, sizeof(x));
}

static void test_layout(void **state)
{
	size_t n = make();

	(void)state;
	/* header, ZERO 0, PAGES 1-2, ZERO 3-4, PAGES 5, ZERO 6-7, REGS, END */
	assert_int_equal(n, VRAM_MIG_HDR + 7 * VRAM_REC_HDR +
			 3 * VRAM_PAGE_SIZE + VRAM_MIG_REGS);
	assert_int_equal(vram_state_encode(mem, PAGES, &regs, NULL), n);
	assert_memory_equal(stream, "VRMS\0\1\0\0\0\0\x10\0", 12);
	/* the first record: ZERO, one page, page 0 */
	assert_memory_equal(stream + VRAM_MIG_HDR,
			    "\0\0\0\2\0\0\0\1\0\0\0\0\0\0\0\0", 16);
}

/* Whole, byte by byte, and in pieces around every fixed part. */
static void test_round_trip_pieces(void **state)
{
	static const size_t pieces[] = { 0, 1, 7, 16, 24, 59, 60, 61, 4096 };
	size_t n = make();

	(void)state;
	for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
		struct vram_load l;
		size_t piece = pieces[k] ? pieces[k] : n;

		memset(got, 0x5a, sizeof(got));
		vram_load_reset(&l);
		for (size_t o = 0; o < n; o += piece) {
			size_t c = n - o < piece ? n - o : piece;
			assert_int_equal(vram_load_feed(&l, got, PAGES,
							stream + o, c),
					 (ssize_t)c);
		}
		assert_true(vram_load_done(&l));
		assert_memory_equal(got, mem, SIZE);
		assert_regs_equal(&l.regs, &regs);
	}
}

/*
 * Loaded as the data channel does with mig_load_place: the bytes the
 * parser says are page data are put straight where it says (and fed from
 * there), the rest is fed from the stream. Every data byte is placed, at
 * its page's offset, never beyond its run, and nothing else is.
 */
static void test_placed(void **state)
{
	static const size_t pieces[] = { 3 * VRAM_PAGE_SIZE, 4096 + 40, 1000, 1 };
	size_t n = make();

	(void)state;
	for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
		struct vram_load l;
		size_t placed = 0, len;

		memset(got, 0x5a, sizeof(got));
		vram_load_reset(&l);
		len = pieces[k];
		assert_null(vram_load_place(&l, got, &len)); /* the header */
		for (size_t o = 0; o < n;) {
			uint8_t *at;
			size_t c = n - o < pieces[k] ? n - o : pieces[k];

			len = c;
			at = vram_load_place(&l, got, &len);
			assert_true(len >= 1 && len <= c);
			if (at) {
				/* stream offsets of the two PAGES runs' data */
				size_t run1 = VRAM_MIG_HDR + 2 * VRAM_REC_HDR;
				size_t run2 = run1 + 2 * VRAM_PAGE_SIZE + 2 * VRAM_REC_HDR;
				size_t want = o < run2 ? VRAM_PAGE_SIZE + (o - run1)
						       : 5 * VRAM_PAGE_SIZE + (o - run2);
				size_t end = o < run2 ? run1 + 2 * VRAM_PAGE_SIZE
						      : run2 + VRAM_PAGE_SIZE;

				assert_true(len >= 1 && len <= c);
				assert_ptr_equal(at, got + want);
				assert_true(o + len <= end);
				memcpy(at, stream + o, len);
				placed += len;
				c = len;
			} else if (len < c) {
				c = len; /* the rest of a fixed part */
			}
			assert_int_equal(vram_load_feed(&l, got, PAGES,
							at ? at : stream + o, c),
					 (ssize_t)c);
			o += c;
		}
		assert_true(vram_load_done(&l));
		len = 1;
		assert_null(vram_load_place(&l, got, &len));
		assert_int_equal(placed, 3 * VRAM_PAGE_SIZE);
		assert_memory_equal(got, mem, SIZE);
		assert_regs_equal(&l.regs, &regs);
	}
}

/* Feed stream (n bytes) with byte off set to val; expect why. */
static void refused(size_t n, size_t off, uint8_t val, const char *why)
{
	struct vram_load l;
	uint8_t saved = stream[off];

	stream[off] = val;
	vram_load_reset(&l);
	assert_int_equal(vram_load_feed(&l, got, PAGES, stream, n), -EINVAL);
	assert_int_equal(l.phase, VRAM_L_BAD);
	assert_string_equal(l.why, why);
	/* and stays refused */
	assert_int_equal(vram_load_feed(&l, got, PAGES, stream, 1), -EINVAL);
	stream[off] = saved;
}

static void test_refusals(void **state)
{
	size_t n = make(), rec = VRAM_MIG_HDR, regs_rec;
	struct vram_load l;

	(void)state;
	refused(n, 0, 'X', "bad magic (not a vram migration stream)");
	refused(n, 5, 2, "unsupported stream version");
	refused(n, 7, 1, "unknown flags");
	refused(n, 10, 0x20, "page size differs");
	refused(n, 23, PAGES + 1, "VRAM size differs from this device's");
	refused(n, rec + 3, 9, "unknown record type");
	/* ZERO run of 1 at page 0: count 9 runs past the end, first 8 too */
	refused(n, rec + 7, PAGES + 1, "page run outside VRAM");
	refused(n, rec + 7, 0, "page run outside VRAM");
	refused(n, rec + 15, PAGES, "page run outside VRAM");
	regs_rec = n - VRAM_REC_HDR - VRAM_MIG_REGS - VRAM_REC_HDR;
	refused(n, regs_rec + 7, VRAM_MIG_REGS - 1,
		"register block has the wrong size");
	/* STATUS is the block's fourth u32 */
	refused(n, regs_rec + VRAM_REC_HDR + 15, 4,
		"STATUS register out of range");
	refused(n, n - 1, 1, "END record malformed or early");
	/* END before REGS */
	memcpy(stream + regs_rec, stream + n - VRAM_REC_HDR, VRAM_REC_HDR);
	refused(regs_rec + VRAM_REC_HDR, 0, 'V',
		"END record malformed or early");
	make();
	/* bytes after END */
	vram_load_reset(&l);
	assert_int_equal(vram_load_feed(&l, got, PAGES, stream, n), (ssize_t)n);
	assert_int_equal(vram_load_feed(&l, got, PAGES, "x", 1), -EINVAL);
	assert_string_equal(l.why, "data after the END record");
}

/* A run ending exactly at the last page is fine; nothing past it is
 * touched (the VRAM is allocated to the byte). */
static void test_last_page(void **state)
{
	uint8_t *m = malloc(SIZE), *p = stream;
	struct vram_load l;

	(void)state;
	assert_non_null(m);
	memset(m, 1, SIZE);
	p = vram_state_header(p, PAGES);
	p = vram_state_rec(p, VRAM_REC_ZERO, 1, PAGES - 1);
	p = vram_state_rec(p, VRAM_REC_PAGES, 2, PAGES - 2);
	memset(p, 0xab, 2 * VRAM_PAGE_SIZE);
	p += 2 * VRAM_PAGE_SIZE;
	vram_load_reset(&l);
	assert_int_equal(vram_load_feed(&l, m, PAGES, stream,
					(size_t)(p - stream)),
			 p - stream);
	assert_int_equal(m[SIZE - 1], 0xab);
	assert_int_equal(m[SIZE - 2 * VRAM_PAGE_SIZE - 1], 1);
	assert_false(vram_load_done(&l));
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_round_trip_pieces),
		cmocka_unit_test(test_placed),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_last_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
