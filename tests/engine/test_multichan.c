/* SPDX-License-Identifier: MIT */
/* RAM channels: the striping, the striped sender against real streams,
 * and the pure checks of multichan.h (counts, announcements, stripes). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/multichan.h"
#include "engine/ram.h"
#include "stream/io.h"
#include "stream/stream.h"

#define PAGE 4096u
#define SIZE (19u << 20) /* 9.5 stripes: the last one is short */
#define NPAGES (SIZE / PAGE)

static void test_stripe_function(void **state)
{
	(void)state;
	assert_int_equal(vfmig_ram_stripe_pages(4096), 512);
	assert_int_equal(vfmig_ram_stripe_pages(512), 4096);
	assert_int_equal(vfmig_ram_stripe_pages(2u << 20), 1);
	assert_int_equal(vfmig_ram_stripe_pages(1u << 30), 1);
	assert_int_equal(vfmig_ram_stripe_of(0, 512, 4), 0);
	assert_int_equal(vfmig_ram_stripe_of(511, 512, 4), 0);
	assert_int_equal(vfmig_ram_stripe_of(512, 512, 4), 1);
	assert_int_equal(vfmig_ram_stripe_of(2047, 512, 4), 3);
	assert_int_equal(vfmig_ram_stripe_of(2048, 512, 4), 0);
	assert_int_equal(vfmig_ram_stripe_of(5 * 512 + 7, 512, 3), 2);
	assert_int_equal(vfmig_ram_stripe_of(123456, 512, 1), 0);
	assert_int_equal(vfmig_ram_stripe_of(123456, 512, 0), 0);
	/* Huge pages: a stripe is one page. */
	assert_int_equal(vfmig_ram_stripe_of(5, 1, 4), 1);
}

static uint8_t *memfd_ram(int *fd)
{
	void *p;

	*fd = memfd_create("test-mchan", MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, SIZE), 0);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

/* Read channel index's stream into dst, checking every record keeps to
 * the channel's stripes. Returns the pages it carried. */
static uint64_t load_channel(struct vfmig_io *wio, struct vfmig_ram *dst,
			     unsigned index, unsigned count)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *rio;
	const uint8_t *bytes;
	uint64_t pages = 0;
	char err[256];
	size_t len;
	int rc;

	bytes = vfmig_io_mem_data(wio, &len);
	assert_int_equal(vfmig_io_mem_reader(&rio, bytes, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, rio, err, sizeof(err)), 0);
	while ((rc = vfmig_stream_next(r, &rec)) == 1) {
		if (!vfmig_stream_is_ram_pages(rec.type))
			continue;
		assert_true(vfmig_mchan_runs_in_stripe(&rec, index, count));
		for (uint32_t i = 0; i < rec.d.u.ram_pages.nruns; i++)
			pages += rec.d.u.ram_pages.runs[i].npages;
		assert_int_equal(vfmig_ram_load(dst, &rec, err, sizeof(err)), 0);
	}
	assert_int_equal(rc, 0);
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
	return pages;
}

/* Three channels, each sending its stripes of a block with data, zero
 * pages and holes (each with a budget first, then the rest), make the
 * block whole on the other side; no page travels twice. */
static void test_stripes_cover_the_block(void **state)
{
	struct vfmig_ram src, dst;
	int sfd, dfd;
	uint8_t *s = memfd_ram(&sfd), *d = memfd_ram(&dfd);
	uint64_t pages = 0;
	enum { N = 3 };

	(void)state;
	/* Data in stripes 0, 1, 4 and the short last one; zero data pages
	 * in stripe 2; the rest holes. Stale data on the destination. */
	for (uint64_t p = 0; p < NPAGES; p++) {
		uint64_t stripe = p / 512;
		if (stripe == 0 || stripe == 1 || stripe == 4 || stripe == 9)
			memset(s + p * PAGE, (int)(p % 251) + 1, PAGE);
		else if (stripe == 2)
			memset(s + p * PAGE, 0, PAGE);
	}
	memset(d + 6 * 512 * PAGE, 0xee, 512 * PAGE);
	assert_int_equal(vfmig_ram_init(&src, "ram0", s, SIZE, PAGE), 0);
	assert_int_equal(vfmig_ram_init(&dst, "ram0", d, SIZE, PAGE), 0);
	vfmig_ram_set_fd(&src, sfd);
	vfmig_ram_set_fd(&dst, dfd);
	vfmig_ram_mark_all(&src);
	for (unsigned i = 0; i < N; i++) {
		struct vfmig_ram_cursor cur = { 0 };
		struct vfmig_ram_stats st = { 0 };
		struct vfmig_stream_writer *w;
		struct vfmig_io *wio;

		assert_int_equal(vfmig_io_mem_writer(&wio), 0);
		assert_int_equal(vfmig_stream_writer_open(&w, wio), 0);
		assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
		assert_int_equal(vfmig_ram_send_stripe(&src, &cur, w, 1u << 20,
						       i, N, &st), 0);
		assert_true(st.bytes >= (1u << 20) || i == 2);
		assert_int_equal(vfmig_ram_send_stripe(&src, &cur, w, 0, i, N,
						       &st), 0);
		assert_int_equal(vfmig_stream_writer_end(w), 0);
		pages += load_channel(wio, &dst, i, N);
		vfmig_stream_writer_free(w);
		vfmig_io_close(wio);
	}
	assert_int_equal(pages, NPAGES);
	assert_int_equal(vfmig_ram_dirty_pages(&src), 0);
	assert_memory_equal(s, d, SIZE);
	/* Out of range index. */
	struct vfmig_ram_cursor cur = { 0 };
	struct vfmig_ram_stats st = { 0 };
	assert_int_equal(vfmig_ram_send_stripe(&src, &cur, NULL, 0, 3, 3, &st),
			 -EINVAL);
	vfmig_ram_fini(&src);
	vfmig_ram_fini(&dst);
	munmap(s, SIZE);
	munmap(d, SIZE);
	close(sfd);
	close(dfd);
}

/* Only the channel's own dirty bits are taken. */
static void test_stripe_takes_only_its_bits(void **state)
{
	uint8_t *mem = calloc(1, SIZE);
	struct vfmig_ram r;
	struct vfmig_ram_cursor cur = { 0 };
	struct vfmig_ram_stats st = { 0 };
	struct vfmig_stream_writer *w;
	struct vfmig_io *wio;

	(void)state;
	assert_int_equal(vfmig_ram_init(&r, "ram0", mem, SIZE, PAGE), 0);
	vfmig_ram_mark_dirty(&r, 511 * PAGE, 2 * PAGE); /* stripes 0 and 1 */
	vfmig_ram_mark_dirty(&r, 9 * 512 * PAGE, PAGE); /* stripe 9: ch 1 */
	assert_int_equal(vfmig_io_mem_writer(&wio), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, wio), 0);
	assert_int_equal(vfmig_ram_send_stripe(&r, &cur, w, 0, 1, 2, &st), 0);
	assert_int_equal(st.pages, 2);
	assert_int_equal(vfmig_ram_dirty_pages(&r), 1);
	vfmig_stream_writer_free(w);
	vfmig_io_close(wio);
	vfmig_ram_fini(&r);
	free(mem);
}

static void test_check_counts_and_uris(void **state)
{
	char err[200];

	(void)state;
	assert_int_equal(vfmig_mchan_check(0, "file:x", err, sizeof(err)), 0);
	assert_int_equal(vfmig_mchan_check(1, "file:x", err, sizeof(err)), 0);
	assert_int_equal(vfmig_mchan_check(2, "unix:/tmp/x", err, sizeof(err)), 0);
	assert_int_equal(vfmig_mchan_check(16, "tcp:h:1", err, sizeof(err)), 0);
	assert_int_equal(vfmig_mchan_check(17, "tcp:h:1", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "1..16"));
	assert_int_equal(vfmig_mchan_check(2, "file:x", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "file: URI is one stream"));
}

#define STR(s) { s, (uint16_t)(sizeof(s) - 1) }

static int parse(const struct vfmig_stream_kv_view *kv, uint16_t n,
		 unsigned *count, char *id)
{
	struct vfmig_stream_record rec = { .type = VFMIG_REC_STREAM_INFO };
	char err[200];

	rec.d.u.info.count = n;
	rec.d.u.info.kv = (struct vfmig_stream_kv_view *)kv;
	return vfmig_mchan_parse_info(&rec, count, id, VFMIG_MCHAN_ID_LEN + 1,
				      err, sizeof(err));
}

static void test_parse_announcement(void **state)
{
	const struct vfmig_stream_kv_view plain[] = {
		{ STR("producer"), STR("vfmig") }, { STR("ram"), STR("ram0") },
	};
	const struct vfmig_stream_kv_view good[] = {
		{ STR("producer"), STR("vfmig") },
		{ STR("channels"), STR("4") },
		{ STR("migration-id"), STR("00112233445566778899aabbccddeeff") },
	};
	const struct vfmig_stream_kv_view bad_n[] = {
		{ STR("channels"), STR("17") },
		{ STR("migration-id"), STR("00112233445566778899aabbccddeeff") },
	};
	const struct vfmig_stream_kv_view one[] = {
		{ STR("channels"), STR("1") },
		{ STR("migration-id"), STR("00112233445566778899aabbccddeeff") },
	};
	const struct vfmig_stream_kv_view lead0[] = {
		{ STR("channels"), STR("04") },
		{ STR("migration-id"), STR("00112233445566778899aabbccddeeff") },
	};
	const struct vfmig_stream_kv_view bad_id[] = {
		{ STR("channels"), STR("2") },
		{ STR("migration-id"), STR("00112233445566778899AABBCCDDEEFF") },
	};
	const struct vfmig_stream_kv_view no_id[] = {
		{ STR("channels"), STR("2") },
	};
	char id[VFMIG_MCHAN_ID_LEN + 1] = "";
	unsigned n = 0;

	(void)state;
	assert_int_equal(parse(plain, 2, &n, id), 0);
	assert_int_equal(parse(good, 3, &n, id), 1);
	assert_int_equal(n, 4);
	assert_string_equal(id, "00112233445566778899aabbccddeeff");
	assert_int_equal(parse(bad_n, 2, &n, id), -EBADMSG);
	assert_int_equal(parse(one, 2, &n, id), -EBADMSG);
	assert_int_equal(parse(lead0, 2, &n, id), -EBADMSG);
	assert_int_equal(parse(bad_id, 2, &n, id), -EBADMSG);
	assert_int_equal(parse(no_id, 1, &n, id), -EBADMSG);
}

static void test_runs_in_stripe(void **state)
{
	struct vfmig_stream_ram_run runs[2] = {
		{ .addr = 512 * PAGE, .npages = 512, .zero = true },
		{ .addr = 3 * 512 * PAGE + 10 * PAGE, .npages = 3, .zero = true },
	};
	struct vfmig_stream_record rec = { .type = VFMIG_REC_RAM_PAGES };

	(void)state;
	rec.d.u.ram_pages.page_size = PAGE;
	rec.d.u.ram_pages.nruns = 2;
	rec.d.u.ram_pages.runs = runs;
	assert_true(vfmig_mchan_runs_in_stripe(&rec, 1, 2));
	assert_false(vfmig_mchan_runs_in_stripe(&rec, 0, 2));
	assert_true(vfmig_mchan_runs_in_stripe(&rec, 0, 1));
	/* A run over a stripe's end reaches another channel's pages. */
	runs[0].npages = 513;
	assert_false(vfmig_mchan_runs_in_stripe(&rec, 1, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stripe_function),
		cmocka_unit_test(test_stripes_cover_the_block),
		cmocka_unit_test(test_stripe_takes_only_its_bits),
		cmocka_unit_test(test_check_counts_and_uris),
		cmocka_unit_test(test_parse_announcement),
		cmocka_unit_test(test_runs_in_stripe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
