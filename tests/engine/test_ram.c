/* SPDX-License-Identifier: MIT */
/* Guest RAM dirty tracking and RAM_PAGES transfer through a real stream. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/ram.h"
#include "stream/io.h"
#include "stream/stream.h"

#define PAGE 4096u
#define NPAGES 1024u
#define SIZE (PAGE * NPAGES)

static const struct vfmig_stream_device one_dev = {
	.id = "d0", .type = "pci", .interface = "v2",
};

/* Source and destination RAM: malloc'd, or (the _fd fixtures) memfds
 * that the blocks know, the source's all holes at the start. */
struct pair {
	uint8_t *src, *dst;
	int sfd, dfd;
	struct vfmig_ram rs, rd;
	struct vfmig_io *wio;
	struct vfmig_stream_writer *w;
};

static uint8_t *memfd_ram(int *fd)
{
	void *p;

	*fd = memfd_create("test-ram", MFD_CLOEXEC);
	if (*fd < 0 || ftruncate(*fd, SIZE) < 0)
		return NULL;
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int setup_as(void **state, bool fd)
{
	struct pair *p = calloc(1, sizeof(*p));
	p->sfd = p->dfd = -1;
	if (fd) {
		p->src = memfd_ram(&p->sfd);
		p->dst = memfd_ram(&p->dfd);
	} else {
		p->src = aligned_alloc(PAGE, SIZE);
		p->dst = aligned_alloc(PAGE, SIZE);
	}
	if (!p->src || !p->dst)
		return -1;
	if (!fd)
		memset(p->src, 0, SIZE);
	memset(p->dst, 0xee, SIZE);
	if (vfmig_ram_init(&p->rs, "ram", p->src, SIZE, PAGE) ||
	    vfmig_ram_init(&p->rd, "ram", p->dst, SIZE, PAGE) ||
	    vfmig_io_mem_writer(&p->wio) ||
	    vfmig_stream_writer_open(&p->w, p->wio) ||
	    vfmig_stream_write_device_list(p->w, &one_dev, 1))
		return -1;
	vfmig_ram_set_fd(&p->rs, p->sfd);
	vfmig_ram_set_fd(&p->rd, p->dfd);
	*state = p;
	return 0;
}

static int setup(void **state)
{
	return setup_as(state, false);
}

static int setup_fd(void **state)
{
	return setup_as(state, true);
}

static int teardown(void **state)
{
	struct pair *p = *state;
	vfmig_stream_writer_free(p->w);
	vfmig_io_close(p->wio);
	vfmig_ram_fini(&p->rs);
	vfmig_ram_fini(&p->rd);
	if (p->sfd >= 0) {
		munmap(p->src, SIZE);
		munmap(p->dst, SIZE);
		close(p->sfd);
		close(p->dfd);
	} else {
		free(p->src);
		free(p->dst);
	}
	free(p);
	return 0;
}

/* Whether page i of a memfd is still a hole (never touched). */
static bool is_hole(int fd, uint64_t i)
{
	off_t d = lseek(fd, (off_t)(i * PAGE), SEEK_DATA);
	return d < 0 || (uint64_t)d >= (i + 1) * PAGE;
}

/* A reader over what the writer has written so far (*rio to close). */
static struct vfmig_stream_reader *open_back(struct pair *p,
					     struct vfmig_io **rio)
{
	struct vfmig_stream_reader *r;
	const uint8_t *data;
	size_t len;
	char err[256];

	data = vfmig_io_mem_data(p->wio, &len);
	assert_int_equal(vfmig_io_mem_reader(rio, data, len), 0);
	if (vfmig_stream_reader_open(&r, *rio, err, sizeof(err)) != 0)
		fail_msg("reader: %s", err);
	return r;
}

/* End the stream and load every RAM_PAGES record into the destination. */
static void replay(struct pair *p, uint64_t *records)
{
	struct vfmig_io *rio;
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	char err[256];
	int rc;

	assert_int_equal(vfmig_stream_writer_end(p->w), 0);
	r = open_back(p, &rio);
	*records = 0;
	while ((rc = vfmig_stream_next(r, &rec)) == 1) {
		/* Announced data extents: allocated by a thread while the
		 * pages are loaded, as on a destination. */
		for (uint16_t k = 0; rec.type == VFMIG_REC_STREAM_INFO &&
				     k < rec.d.u.info.count; k++)
			if (vfmig_ram_info(&p->rd, &rec.d.u.info.kv[k], err,
					   sizeof(err)) != 0)
				fail_msg("info: %s", err);
		if (!vfmig_stream_is_ram_pages(rec.type))
			continue;
		if (vfmig_ram_load(&p->rd, &rec, err, sizeof(err)) != 0)
			fail_msg("load: %s", err);
		(*records)++;
	}
	if (rc != 0)
		fail_msg("reader: %s", vfmig_stream_reader_error(r));
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
}

static void test_full_copy_with_zero_pages(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	for (uint32_t i = 0; i < NPAGES; i += 3)
		memset(p->src + (size_t)i * PAGE, (int)(i & 0xff) | 1, PAGE);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), NPAGES);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), 0);
	assert_int_equal(st.pages, NPAGES);
	assert_int_equal(st.zero_pages, NPAGES - (NPAGES + 2) / 3);
	assert_int_equal(st.bytes, (uint64_t)((NPAGES + 2) / 3) * PAGE);
	/* With the memfd, the zero pages are its holes and stay holes. */
	assert_int_equal(st.hole_pages, p->sfd >= 0 ? st.zero_pages : 0);
	for (uint32_t i = 1; p->sfd >= 0 && i < NPAGES; i += 3)
		assert_true(is_hole(p->sfd, i));
	replay(p, &records);
	assert_int_equal(records, st.records);
	assert_memory_equal(p->src, p->dst, SIZE);
}

static void test_dirty_rounds_and_budget(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	memset(p->src, 0x11, SIZE);
	vfmig_ram_mark_all(&p->rs);
	/* A budget stops early; the rest stays dirty. */
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 64 * PAGE, &st), 0);
	assert_true(st.pages >= 64 && st.pages < NPAGES);
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), NPAGES - st.pages);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.pages, NPAGES);
	/* Round 2: only what changed. */
	memset(p->src + 10 * PAGE + 5, 0x22, 3 * PAGE); /* pages 10..13 */
	vfmig_ram_mark_dirty(&p->rs, 10 * PAGE + 5, 3 * PAGE);
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), 4);
	uint64_t before = st.pages;
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.pages - before, 4);
	replay(p, &records);
	assert_memory_equal(p->src, p->dst, SIZE);
}

static void test_merge_device_bitmap(void **state)
{
	struct pair *p = *state;
	uint64_t bm[2] = { 0x5, 0x1 }; /* pages 0, 2 and 64 of 8 KiB */

	assert_int_equal(vfmig_ram_merge_bitmap(&p->rs, 16 * PAGE, 8192, bm,
						65),
			 0);
	/* Each 8 KiB report page covers two block pages. */
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), 6);
	assert_int_equal(vfmig_ram_merge_bitmap(&p->rs, 16 * PAGE, 8192, bm,
						NPAGES),
			 -ERANGE);
	assert_int_equal(vfmig_ram_merge_bitmap(&p->rs, SIZE, PAGE, bm, 1),
			 -ERANGE);
	assert_int_equal(vfmig_ram_merge_bitmap(&p->rs, 0, 3000, bm, 1),
			 -EINVAL);
	/* Marks past the end are clipped, not out of bounds. */
	vfmig_ram_mark_dirty(&p->rs, SIZE - 1, 1 << 20);
	vfmig_ram_mark_dirty(&p->rs, UINT64_MAX - 4, 100);
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), 7);
}

static void test_load_refuses_bad_records(void **state)
{
	struct pair *p = *state;
	struct vfmig_stream_ram_run run = { .addr = SIZE - PAGE, .npages = 2,
					    .zero = true };
	struct vfmig_stream_record rec = { .type = VFMIG_REC_RAM_PAGES };
	char err[256];

	rec.d.u.ram_pages.block = (struct vfmig_stream_str){ "ram", 3 };
	rec.d.u.ram_pages.page_size = PAGE;
	rec.d.u.ram_pages.nruns = 1;
	rec.d.u.ram_pages.runs = &run;
	assert_int_equal(vfmig_ram_load(&p->rd, &rec, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "leaves"));
	assert_int_equal(p->dst[SIZE - 1], 0xee); /* nothing written */
	run.addr = 5; /* not page aligned */
	run.npages = 1;
	assert_int_equal(vfmig_ram_load(&p->rd, &rec, err, sizeof(err)),
			 -EINVAL);
	run.addr = 0;
	rec.d.u.ram_pages.page_size = 8192;
	assert_int_equal(vfmig_ram_load(&p->rd, &rec, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "page size"));
	rec.d.u.ram_pages.page_size = PAGE;
	rec.d.u.ram_pages.block = (struct vfmig_stream_str){ "vram", 4 };
	assert_int_equal(vfmig_ram_load(&p->rd, &rec, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "vram"));
	rec.d.u.ram_pages.block = (struct vfmig_stream_str){ "ram", 3 };
	assert_int_equal(vfmig_ram_load(&p->rd, &rec, err, sizeof(err)), 0);
	assert_int_equal(p->dst[0], 0);
}

/* A guest thread writes while rounds are sent; after it stops, one final
 * round must leave the destination identical. */
struct guest {
	struct pair *p;
	atomic_bool stop;
	_Atomic uint64_t writes;
};

static void *guest_run(void *arg)
{
	struct guest *g = arg;
	uint64_t x = 88172645463325252ull;

	while (!atomic_load(&g->stop)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t off = (x % (SIZE / 8)) * 8;
		memcpy(g->p->src + off, &x, 8);
		vfmig_ram_mark_dirty(&g->p->rs, off, 8);
		g->writes++;
	}
	return NULL;
}

static void test_concurrent_writer_loses_nothing(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	struct guest g = { .p = p };
	pthread_t t;
	uint64_t records;

	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(pthread_create(&t, NULL, guest_run, &g), 0);
	/* Rounds go on while the guest writes, until it wrote plenty. */
	for (int round = 0; round < 20 || (atomic_load(&g.writes) < 20000 &&
					    round < 1000000);
	     round++)
		assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	atomic_store(&g.stop, true);
	pthread_join(t, NULL);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	replay(p, &records);
	assert_true(atomic_load(&g.writes) >= 20000);
	assert_memory_equal(p->src, p->dst, SIZE);
}

/*
 * Holes, data pages and all-zero data pages in one block, with the runs of
 * each kind crossing bitmap words and the 16 MiB takes of the sender: only
 * the holes are sent unread, the zero data pages are read and sent as
 * zero runs, and every byte arrives.
 */
static void test_holes_and_zero_data_pages(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records, holes = 0, zeros = 0;

	for (uint32_t i = 0; i < NPAGES; i++) {
		uint32_t kind = (i * 7 / 61) % 3; /* runs of 8 or 9 pages */
		if (i >= 500 && i < 700)
			kind = 0; /* a long hole across words */
		if (kind == 1)
			memset(p->src + (size_t)i * PAGE, (int)(i % 251) + 1,
			       PAGE);
		else if (kind == 2)
			memset(p->src + (size_t)i * PAGE, 0, PAGE);
		holes += kind == 0;
		zeros += kind != 1;
	}
	p->src[777 * PAGE + 4095] = 9; /* a zero page but for its last byte */
	zeros--;
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.pages, NPAGES);
	assert_int_equal(st.zero_pages, zeros);
	assert_int_equal(st.hole_pages, holes);
	for (uint32_t i = 500; i < 700; i++)
		assert_true(is_hole(p->sfd, i));
	replay(p, &records);
	assert_memory_equal(p->src, p->dst, SIZE);
}

/* A hole sent as a zero run and written afterwards (between two calls of
 * one round, or after the round) is dirty again: the next call reads it
 * as data, the holes around it still unread. */
static void test_write_into_hole_between_rounds(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	vfmig_ram_mark_all(&p->rs);
	/* A budget of one page: the first record only; the rest stays
	 * dirty while the guest writes into the hole further on. */
	memset(p->src, 0x31, PAGE);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, PAGE, &st), 0);
	memset(p->src + 900 * PAGE, 0x32, PAGE);
	vfmig_ram_mark_dirty(&p->rs, 900 * PAGE, PAGE);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	memset(p->src + 901 * PAGE, 0x33, 10);
	vfmig_ram_mark_dirty(&p->rs, 901 * PAGE, 10);
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), 1);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	replay(p, &records);
	assert_memory_equal(p->src, p->dst, SIZE);
}

/* The extents r remembers, in pages: the largest [b0, b1), the other
 * [l0, l1). */
static void known_is(const struct vfmig_ram *r, uint64_t b0, uint64_t b1, uint64_t l0,
		     uint64_t l1)
{
	assert_int_equal(r->known.big_start, b0 * PAGE);
	assert_int_equal(r->known.big_end, b1 * PAGE);
	assert_int_equal(r->known.last_start, l0 * PAGE);
	assert_int_equal(r->known.last_end, l1 * PAGE);
}

/*
 * What the source remembers of its file: small extents below a large one
 * (a guest's first pages) do not push the large one out, so a later pass
 * does not ask about it again (SEEK_HOLE scans all its pages). Every
 * pass still delivers the same memory.
 */
static void test_large_extent_remembered(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	memset(p->src, 0x41, PAGE);                          /* page 0 */
	memset(p->src + 16 * PAGE, 0x42, 2 * PAGE);          /* 16..17 */
	memset(p->src + 100 * PAGE, 0x43, (NPAGES - 100) * PAGE); /* 100.. */
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.hole_pages, 100 - 3);
	known_is(&p->rs, 100, NPAGES, 16, 18);

	/* A second pass over pages of both kinds and a new small extent. */
	memset(p->src, 0x51, 10);
	memset(p->src + 50 * PAGE, 0x52, PAGE);
	memset(p->src + 700 * PAGE, 0x53, 10);
	vfmig_ram_mark_dirty(&p->rs, 0, 10);
	vfmig_ram_mark_dirty(&p->rs, 50 * PAGE, PAGE);
	vfmig_ram_mark_dirty(&p->rs, 700 * PAGE, 10);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	known_is(&p->rs, 100, NPAGES, 50, 51);
	replay(p, &records);
	assert_memory_equal(p->src, p->dst, SIZE);
}

/* The rule both remembered extents follow, on its own. */
static void test_known_note(void **state)
{
	struct vfmig_ram_known k = { 0 };

	(void)state;
	vfmig_ram_known_note(&k, 10, 20); /* first: the largest */
	assert_int_equal(k.big_start, 10);
	assert_int_equal(k.big_end, 20);
	assert_int_equal(k.last_end, 0);
	vfmig_ram_known_note(&k, 30, 35); /* smaller: the other */
	assert_int_equal(k.last_start, 30);
	assert_int_equal(k.last_end, 35);
	vfmig_ram_known_note(&k, 10, 20); /* the largest again: no change */
	vfmig_ram_known_note(&k, 40, 40); /* empty: no change */
	assert_int_equal(k.big_start, 10);
	assert_int_equal(k.last_start, 30);
	assert_int_equal(k.last_end, 35);
	vfmig_ram_known_note(&k, 50, 100); /* larger: the old one is the other */
	assert_int_equal(k.big_start, 50);
	assert_int_equal(k.big_end, 100);
	assert_int_equal(k.last_start, 10);
	assert_int_equal(k.last_end, 20);
}

/* The announcement's walk leaves the largest extent and the latest known. */
static void test_announce_remembers_large_extent(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	memset(p->src, 0x41, PAGE);
	memset(p->src + 100 * PAGE, 0x43, 300 * PAGE); /* 100..399 */
	memset(p->src + 600 * PAGE, 0x44, 20 * PAGE);  /* 600..619 */
	assert_int_equal(vfmig_ram_announce(&p->rs, p->w), 0);
	known_is(&p->rs, 100, 400, 600, 620);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.hole_pages, NPAGES - 321);
	known_is(&p->rs, 100, 400, 600, 620);
	replay(p, &records);
	assert_memory_equal(p->src, p->dst, SIZE);
}

/*
 * The destination's side: zero runs over its own holes leave them holes
 * (nothing allocated), zero runs over data (stale bytes of an earlier
 * load, say) punch it out, and data pages arrive as data.
 */
static void test_load_keeps_holes_and_punches_stale_data(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	for (uint32_t i = 0; i < 10; i++)
		memset(p->src + (size_t)i * PAGE, 0x5a, PAGE); /* data */
	memset(p->src + 10 * PAGE, 0, 10 * PAGE); /* zero data pages */
	/* The destination: stale 0xee below page 512, holes above. */
	assert_int_equal(fallocate(p->dfd, FALLOC_FL_PUNCH_HOLE |
						   FALLOC_FL_KEEP_SIZE,
				   512 * PAGE, SIZE - 512 * PAGE),
			 0);
	assert_true(is_hole(p->dfd, 700));
	assert_false(is_hole(p->dfd, 300));
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	replay(p, &records);
	for (uint32_t i = 0; i < NPAGES; i++)
		if (i < 10)
			assert_false(is_hole(p->dfd, i));
		else
			assert_true(is_hole(p->dfd, i));
	assert_memory_equal(p->src, p->dst, SIZE);
}

/* The sender remembers data extents across calls; data punched out of the
 * file since (here by the test, in a VM by no one) is read as what it is
 * now, zero. */
static void test_data_punched_between_rounds(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	memset(p->src, 0x7b, SIZE);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.zero_pages, 0);
	assert_int_equal(fallocate(p->sfd, FALLOC_FL_PUNCH_HOLE |
						   FALLOC_FL_KEEP_SIZE,
				   100 * PAGE, 50 * PAGE),
			 0);
	vfmig_ram_mark_dirty(&p->rs, 90 * PAGE, 70 * PAGE);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.zero_pages, 50);
	replay(p, &records);
	assert_memory_equal(p->src, p->dst, SIZE);
}

/* A file that cannot tell its holes, nor punch them (a pipe here): the
 * zero runs are written as zeros. */
static void test_load_without_holes_writes_zeros(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	vfmig_ram_set_fd(&p->rd, fds[0]);
	for (uint32_t i = 0; i < NPAGES; i += 5)
		memset(p->src + (size_t)i * PAGE, 0x66, PAGE);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	replay(p, &records);
	assert_memory_equal(p->src, p->dst, SIZE);
	close(fds[0]);
	close(fds[1]);
}

/* A write that fails gives back every page it took, the one it was adding
 * included: a retry sends them all. */
static void test_failed_write_loses_no_page(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	int fds[2];

	signal(SIGPIPE, SIG_IGN);
	memset(p->src, 0x44, SIZE);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(vfmig_io_fd(&io, fds[1], true), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, &one_dev, 1), 0);
	close(fds[0]);
	vfmig_ram_mark_all(&p->rs);
	assert_true(vfmig_ram_send(&p->rs, w, 0, &st) < 0);
	assert_int_equal(vfmig_ram_dirty_pages(&p->rs), NPAGES);
	vfmig_stream_writer_free(w);
	vfmig_io_close(io);
}

static void test_init_rejects(void **state)
{
	(void)state;
	struct vfmig_ram r;
	uint8_t buf[8192];

	assert_int_equal(vfmig_ram_init(&r, "x", buf, 8192, 3000), -EINVAL);
	assert_int_equal(vfmig_ram_init(&r, "x", buf, 5000, 4096), -EINVAL);
	assert_int_equal(vfmig_ram_init(&r, "x", buf, 0, 4096), -EINVAL);
	assert_int_equal(vfmig_ram_init(&r,
					"a-name-that-is-far-too-long-for-a-block",
					buf, 8192, 4096),
			 -EINVAL);
}

/* Bytes the memfd has allocated. */
static uint64_t allocated(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void punch_all(int fd)
{
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE |
					       FALLOC_FL_KEEP_SIZE, 0, SIZE),
			 0);
}

/* A preallocated destination (vmm --prealloc) keeps every page through a
 * load: zero runs clear what held data (stale bytes from before, here
 * 0xee everywhere) instead of punching holes. */
static void test_prealloc_keeps_pages(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	uint64_t records;

	for (uint32_t i = 0; i < 10; i++)
		memset(p->src + (size_t)i * PAGE, 0x5a, PAGE);
	/* Stale data on half of the destination, holes on the rest. */
	assert_int_equal(fallocate(p->dfd, FALLOC_FL_PUNCH_HOLE |
						   FALLOC_FL_KEEP_SIZE,
				   SIZE / 2, SIZE / 2),
			 0);
	assert_int_equal(vfmig_ram_prealloc_all(&p->rd), 0);
	assert_int_equal(allocated(p->dfd), SIZE);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	replay(p, &records);
	assert_int_equal(allocated(p->dfd), SIZE);
	assert_memory_equal(p->src, p->dst, SIZE);
	/* Without a file there is nothing to preallocate. */
	struct vfmig_ram m;
	assert_int_equal(vfmig_ram_init(&m, "m", p->src, SIZE, PAGE), 0);
	assert_int_equal(vfmig_ram_prealloc_all(&m), -EINVAL);
	vfmig_ram_fini(&m);
}

static void test_parse_extents(void **state)
{
	struct pair *p = *state;
	uint64_t ext[4][2];
	char err[200];
	const char *v;

#define PARSE(s, max) \
	vfmig_ram_parse_extents(&p->rd, s, strlen(s), ext, max, err, sizeof(err))
	assert_int_equal(PARSE("ram ", 4), 0);
	assert_int_equal(PARSE("ram 0+1000,3000+2000", 4), 2);
	assert_int_equal(ext[0][0], 0);
	assert_int_equal(ext[0][1], 0x1000);
	assert_int_equal(ext[1][0], 0x3000);
	assert_int_equal(ext[1][1], 0x2000);
	/* Clipped to the block: the end, and what starts beyond. */
	v = "ram 3ff000+2000,402000+1000";
	assert_int_equal(PARSE(v, 4), 1);
	assert_int_equal(ext[0][0], SIZE - PAGE);
	assert_int_equal(ext[0][1], PAGE);
	/* Another block's announcement is not this one's. */
	assert_int_equal(PARSE("vram 0+1000", 4), -ENOENT);
	assert_int_equal(PARSE("ra 0+1000", 4), -ENOENT);
	/* Malformed. */
	const char *bad[] = {
		"", "ram", "ram 0", "ram 0+", "ram +1000", "ram 0+1000,",
		"ram 0+1000;2000+1000", "ram 0x0+1000", "ram 0+1000 ",
		"ram 0+0",                         /* empty */
		"ram 800+1000",                    /* not page-aligned */
		"ram 0+1800",
		"ram 2000+1000,1000+1000",         /* out of order */
		"ram 0+2000,1000+1000",            /* overlapping */
		"ram 0+1000,1000+1000,2000+1000,3000+1000,4000+1000", /* > max */
		"ram 11111111111111111+1000",      /* 17 digits */
		"ram fffffffffffff000+2000",       /* wraps */
		"ram A000+1000",                   /* upper case */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (PARSE(bad[i], 4) != -EBADMSG)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_true(err[0] != 0);
	}
#undef PARSE
}

/*
 * The source announces its data extents; the destination allocates and
 * maps them (and nothing else) before the pages come, the allocated pages
 * read as zero (mapped, they count as data, not holes), and the pages then
 * load exactly.
 */
static void test_announced_extents_preallocated(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	struct vfmig_io *rio;
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	char err[256];
	uint64_t records;
	bool announced = false;

	memset(p->src + 8 * PAGE, 0x11, 8 * PAGE);    /* pages 8..15 */
	memset(p->src + 500 * PAGE, 0x22, 20 * PAGE); /* pages 500..519 */
	punch_all(p->dfd);
	assert_int_equal(allocated(p->dfd), 0);
	assert_int_equal(vfmig_ram_announce(&p->rs, p->w), 0);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.bytes, 28 * PAGE);

	/* First only the announcement (the stream has no END yet): what it
	 * allocates, and how. */
	r = open_back(p, &rio);
	while (vfmig_stream_next(r, &rec) == 1) {
		if (rec.type != VFMIG_REC_STREAM_INFO)
			continue;
		for (uint16_t k = 0; k < rec.d.u.info.count; k++) {
			const struct vfmig_stream_kv_view *kv =
				&rec.d.u.info.kv[k];
			if (!vfmig_stream_str_eq(kv->key,
						 VFMIG_RAM_INFO_EXTENTS))
				continue;
			assert_true(vfmig_stream_str_eq(
				kv->value, "ram 8000+8000,1f4000+14000"));
			assert_int_equal(vfmig_ram_info(&p->rd, kv, err,
							sizeof(err)),
					 0);
			announced = true;
		}
	}
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
	assert_true(announced);
	vfmig_ram_prealloc_wait(&p->rd);
	assert_int_equal(allocated(p->dfd), 28 * PAGE);
	for (uint32_t i = 0; i < NPAGES; i++) {
		/* allocated and mapped, not written */
		assert_true(is_hole(p->dfd, i) ==
			    !((i >= 8 && i < 16) || (i >= 500 && i < 520)));
		assert_int_equal(p->dst[(size_t)i * PAGE + 7], 0);
	}

	/* Then the whole stream (announcing again, loading the pages). */
	replay(p, &records);
	vfmig_ram_prealloc_wait(&p->rd);
	assert_int_equal(allocated(p->dfd), 28 * PAGE);
	for (uint32_t i = 0; i < NPAGES; i++)
		assert_true(is_hole(p->dfd, i) ==
			    !((i >= 8 && i < 16) || (i >= 500 && i < 520)));
	assert_memory_equal(p->src, p->dst, SIZE);
}

/* Reads the stream written so far: with info, hands every STREAM_INFO
 * entry to vfmig_ram_info and loads nothing; else loads the RAM_PAGES. */
static void read_back(struct pair *p, bool info)
{
	struct vfmig_io *rio;
	struct vfmig_stream_reader *r = open_back(p, &rio);
	struct vfmig_stream_record rec;
	char err[256];

	while (vfmig_stream_next(r, &rec) == 1) {
		for (uint16_t k = 0; info && rec.type == VFMIG_REC_STREAM_INFO &&
				     k < rec.d.u.info.count; k++)
			assert_int_equal(vfmig_ram_info(&p->rd, &rec.d.u.info.kv[k],
							err, sizeof(err)),
					 0);
		if (!info && vfmig_stream_is_ram_pages(rec.type) &&
		    vfmig_ram_load(&p->rd, &rec, err, sizeof(err)) != 0)
			fail_msg("load: %s", err);
	}
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
}

/*
 * The allocating thread may reach an announced extent after a zero run
 * has punched part of it (a destination that receives faster than it
 * allocates): it must not allocate those pages again. Here the zero run
 * is loaded first and the announcement then, the order that race ends in.
 */
static void test_prealloc_after_zero_run_keeps_hole(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };

	memset(p->src + 100 * PAGE, 0, 64 * PAGE);    /* zero data 100..163 */
	memset(p->src + 164 * PAGE, 0x33, 4 * PAGE);  /* data 164..167 */
	punch_all(p->dfd);
	memset(p->dst + 90 * PAGE, 0xee, 80 * PAGE);  /* stale 90..169 */
	assert_int_equal(vfmig_ram_announce(&p->rs, p->w), 0);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(st.bytes, 4 * PAGE);

	read_back(p, false);
	for (uint32_t i = 100; i < 164; i++)
		assert_true(is_hole(p->dfd, i));
	read_back(p, true); /* announces 100..167 */
	vfmig_ram_prealloc_wait(&p->rd);
	for (uint32_t i = 100; i < 164; i++)
		if (!is_hole(p->dfd, i))
			fail_msg("page %u, left to a zero run, was allocated "
				 "again", i);
	for (uint32_t i = 164; i < 168; i++)
		assert_false(is_hole(p->dfd, i));
	assert_memory_equal(p->src + 100 * PAGE, p->dst + 100 * PAGE,
			    68 * PAGE);
}

/* Without data there is nothing to announce; without a file neither. */
static void test_announce_nothing(void **state)
{
	struct pair *p = *state;
	size_t before, after;

	vfmig_io_mem_data(p->wio, &before);
	assert_int_equal(vfmig_ram_announce(&p->rs, p->w), 0);
	vfmig_io_mem_data(p->wio, &after);
	assert_int_equal(before, after);
}

/*
 * A RAM record damaged on the way: a byte of a run's header fails the
 * record checksum in the reader, before any of it is loaded (the
 * destination's RAM is as it was); a byte of page data (format 1.3) makes
 * that page torn, and a stream that never carries it again is refused at
 * its END.
 */
static void test_corrupt_record_loads_nothing(void **state)
{
	struct pair *p = *state;
	struct vfmig_ram_stats st = { 0 };
	struct vfmig_io *rio;
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	uint8_t *copy;
	const uint8_t *data;
	size_t len;
	char err[256];
	int rc;

	memset(p->src, 0x5a, 64 * PAGE);
	if (p->dfd >= 0)
		punch_all(p->dfd);
	else
		memset(p->dst, 0, SIZE);
	vfmig_ram_mark_all(&p->rs);
	assert_int_equal(vfmig_ram_send(&p->rs, p->w, 0, &st), 0);
	assert_int_equal(vfmig_stream_writer_end(p->w), 0);
	data = vfmig_io_mem_data(p->wio, &len);
	copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, data, len);
	/* A byte of page 40's data: the first record's payload holds page 0
	 * at a known place after the DEVICE_LIST, so look for the page. */
	uint8_t *hit = memmem(copy, len, p->src, 64);
	assert_non_null(hit);
	hit[40 * PAGE + 100] ^= 0x01;
	assert_int_equal(vfmig_io_mem_reader(&rio, copy, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, rio, err, sizeof(err)),
			 0);
	uint32_t torn = 0;
	while ((rc = vfmig_stream_next(r, &rec)) == 1)
		if (vfmig_stream_is_ram_pages(rec.type))
			torn += rec.d.u.ram_pages.torn;
	assert_int_equal(torn, 1);
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(vfmig_stream_reader_error(r),
			       "1 RAM page(s) arrived torn and were not carried again, "
			       "the first at 0x28000 of block"));
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
	/* The run's header (its page count, just before the data). */
	hit[40 * PAGE + 100] ^= 0x01;
	hit[-2] ^= 0x01;
	assert_int_equal(vfmig_io_mem_reader(&rio, copy, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, rio, err, sizeof(err)),
			 0);
	while ((rc = vfmig_stream_next(r, &rec)) == 1)
		if (vfmig_stream_is_ram_pages(rec.type))
			fail_msg("a damaged RAM record was accepted");
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(vfmig_stream_reader_error(r), "checksum"));
	vfmig_stream_reader_free(r);
	vfmig_io_close(rio);
	free(copy);
	/* (Reading holes through the mapping allocates them: look first.) */
	if (p->dfd >= 0)
		assert_int_equal(allocated(p->dfd), 0);
	for (size_t i = 0; i < SIZE; i++)
		if (p->dst[i])
			fail_msg("destination byte %zu written", i);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_copy_with_zero_pages,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_rounds_and_budget,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_device_bitmap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_refuses_bad_records,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_concurrent_writer_loses_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_loses_no_page,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_load_without_holes_writes_zeros, setup, teardown),
		/* The same with memfd-backed blocks that know their fds. */
		cmocka_unit_test_setup_teardown(test_full_copy_with_zero_pages,
						setup_fd, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_rounds_and_budget,
						setup_fd, teardown),
		cmocka_unit_test_setup_teardown(
			test_concurrent_writer_loses_nothing, setup_fd,
			teardown),
		cmocka_unit_test_setup_teardown(test_holes_and_zero_data_pages,
						setup_fd, teardown),
		cmocka_unit_test_setup_teardown(
			test_write_into_hole_between_rounds, setup_fd,
			teardown),
		cmocka_unit_test(test_known_note),
		cmocka_unit_test_setup_teardown(
			test_large_extent_remembered, setup_fd,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_announce_remembers_large_extent, setup_fd,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_load_keeps_holes_and_punches_stale_data, setup_fd,
			teardown),
		cmocka_unit_test_setup_teardown(test_data_punched_between_rounds,
						setup_fd, teardown),
		cmocka_unit_test_setup_teardown(test_parse_extents, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prealloc_keeps_pages,
						setup_fd, teardown),
		cmocka_unit_test_setup_teardown(
			test_announced_extents_preallocated, setup_fd, teardown),
		cmocka_unit_test_setup_teardown(
			test_prealloc_after_zero_run_keeps_hole, setup_fd,
			teardown),
		cmocka_unit_test_setup_teardown(test_announce_nothing, setup_fd,
						teardown),
		cmocka_unit_test_setup_teardown(test_announce_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_corrupt_record_loads_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_corrupt_record_loads_nothing, setup_fd, teardown),
		cmocka_unit_test(test_init_rejects),
	};
	return cmocka_run_group_tests_name("ram", tests, NULL, NULL);
}
