/* SPDX-License-Identifier: MIT */
/*
 * Every record type written and read back through each I/O kind (memory,
 * file descriptor on a file, pipe with a concurrent writer), writer argument
 * checks, the I/O vtable's sticky error and counters, and payload decoders
 * refusing malformed payloads.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>
#include <zlib.h>

#include "stream/internal.h"
#include "stream/stream.h"

struct st {
	uint32_t x;
	uint8_t tag[3];
};
static const struct vfmig_field st_fields[] = {
	VFMIG_FIELD_U32_V(struct st, x, 0),
	VFMIG_FIELD_BYTES_V(struct st, tag, 0),
};
static const struct vfmig_fields_desc st_desc = {
	.name = "st", .version = 1, .min_version = 1, .size = sizeof(struct st),
	.fields = st_fields, .nfields = 2,
};

#define BIG (1u << 20) /* more than a pipe holds: forces short reads/writes */
static uint8_t big[BIG];
static uint8_t pages[3 * 4096];

/* csum < 0: the writer's default. */
static int write_all_types_csum(struct vfmig_io *io, int csum)
{
	static const struct vfmig_stream_kv kv[] = { { "producer", "test" }, { "empty", "" } };
	static const struct vfmig_stream_device devs[] = {
		{ "a", "pci", "v2", 7, 1 }, { "b", "other", "region", 0xffffffffu, 0 },
	};
	struct vfmig_stream_ram_run runs[] = {
		{ 0, 1, false, pages },
		{ 0x3000, 100000, true, NULL },
		{ 0xffffffffffffe000ull, 1, false, pages + 4096 },
	};
	struct vfmig_stream_ram_pages rp = { "ram0", 4096, 3, runs };
	struct vfmig_stream_writer *w;
	struct st s = { 0xcafef00d, { 1, 2, 3 } };
	int rc;

	rc = csum < 0 ? vfmig_stream_writer_open(&w, io) :
	     vfmig_stream_writer_open_csum(&w, io, (enum vfmig_stream_csum)csum);
	if (rc < 0)
		return rc;
	if ((rc = vfmig_stream_write_info(w, kv, 2)) < 0 ||
	    (rc = vfmig_stream_write_device_list(w, devs, 2)) < 0 ||
	    (rc = vfmig_stream_write_device_begin(w, 1, VFMIG_PHASE_PRECOPY)) < 0 ||
	    (rc = vfmig_stream_write_device_data(w, 1, big, BIG)) < 0 ||
	    (rc = vfmig_stream_write_device_data(w, 1, NULL, 0)) < 0 ||
	    (rc = vfmig_stream_write_device_end(w, 1)) < 0 ||
	    (rc = vfmig_stream_write_ram_pages(w, &rp)) < 0 ||
	    (rc = vfmig_stream_write_switchover(w)) < 0 ||
	    (rc = vfmig_stream_write_type_state(w, 0, &st_desc, &s)) < 0 ||
	    (rc = vfmig_stream_writer_end(w)) < 0) {
		vfmig_stream_writer_free(w);
		return rc;
	}
	rc = (int)vfmig_stream_writer_bytes(w);
	vfmig_stream_writer_free(w);
	return rc;
}

static int write_all_types(struct vfmig_io *io)
{
	return write_all_types_csum(io, -1);
}

static void next_is(struct vfmig_stream_reader *r, struct vfmig_stream_record *rec, uint16_t t)
{
	int rc = vfmig_stream_next(r, rec);

	if (rc != 1)
		fail_msg("next: %d: %s", rc, vfmig_stream_reader_error(r));
	assert_int_equal(rec->type, t);
}

static void read_all_types(struct vfmig_io *io, uint64_t total)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct st s = { 0 };
	char err[256];

	assert_int_equal(vfmig_stream_reader_open(&r, io, err, sizeof(err)), 0);
	next_is(r, &rec, VFMIG_REC_STREAM_INFO);
	assert_int_equal(rec.flags, 0);
	assert_int_equal(rec.d.u.info.count, 2);
	assert_true(vfmig_stream_str_eq(rec.d.u.info.kv[0].key, "producer"));
	assert_true(vfmig_stream_str_eq(rec.d.u.info.kv[0].value, "test"));
	assert_true(vfmig_stream_str_eq(rec.d.u.info.kv[1].value, ""));
	next_is(r, &rec, VFMIG_REC_DEVICE_LIST);
	assert_int_equal(rec.flags, VFMIG_STREAM_F_MUST_UNDERSTAND);
	assert_int_equal(rec.d.u.device_list.count, 2);
	assert_true(vfmig_stream_str_eq(rec.d.u.device_list.dev[1].id, "b"));
	assert_true(vfmig_stream_str_eq(rec.d.u.device_list.dev[1].type, "other"));
	assert_true(vfmig_stream_str_eq(rec.d.u.device_list.dev[1].interface, "region"));
	assert_int_equal(rec.d.u.device_list.dev[1].instance, 0xffffffffu);
	assert_int_equal(rec.d.u.device_list.dev[0].instance, 7);
	assert_int_equal(rec.d.u.device_list.dev[0].type_version, 1);
	next_is(r, &rec, VFMIG_REC_DEVICE_BEGIN);
	assert_int_equal(rec.d.u.device_begin.dev, 1);
	assert_int_equal(rec.d.u.device_begin.phase, VFMIG_PHASE_PRECOPY);
	next_is(r, &rec, VFMIG_REC_DEVICE_DATA);
	assert_int_equal(rec.d.u.device_data.len, BIG);
	assert_memory_equal(rec.d.u.device_data.data, big, BIG);
	next_is(r, &rec, VFMIG_REC_DEVICE_DATA);
	assert_int_equal(rec.d.u.device_data.len, 0);
	next_is(r, &rec, VFMIG_REC_DEVICE_END);
	assert_int_equal(rec.d.u.device_end.dev, 1);
	/* RAM_PAGES_LIVE from 1.3 on: the same runs, none torn */
	next_is(r, &rec, vfmig_stream_reader_minor(r) >= VFMIG_STREAM_MINOR_LIVE ?
			 VFMIG_REC_RAM_PAGES_LIVE : VFMIG_REC_RAM_PAGES);
	assert_int_equal(rec.d.u.ram_pages.torn, 0);
	assert_true(vfmig_stream_str_eq(rec.d.u.ram_pages.block, "ram0"));
	assert_int_equal(rec.d.u.ram_pages.nruns, 3);
	assert_memory_equal(rec.d.u.ram_pages.runs[0].data, pages, 4096);
	assert_true(rec.d.u.ram_pages.runs[1].zero);
	assert_int_equal(rec.d.u.ram_pages.runs[1].npages, 100000);
	assert_int_equal(rec.d.u.ram_pages.runs[2].addr, 0xffffffffffffe000ull);
	assert_memory_equal(rec.d.u.ram_pages.runs[2].data, pages + 4096, 4096);
	next_is(r, &rec, VFMIG_REC_SWITCHOVER);
	next_is(r, &rec, VFMIG_REC_TYPE_STATE);
	assert_int_equal(rec.d.u.type_state.dev, 0);
	assert_int_equal(vfmig_fields_decode(&st_desc, rec.d.u.type_state.state,
					     rec.d.u.type_state.len, &s, err, sizeof(err)), 0);
	assert_int_equal(s.x, 0xcafef00d);
	assert_memory_equal(s.tag, "\x01\x02\x03", 3);
	next_is(r, &rec, VFMIG_REC_END);
	assert_int_equal(rec.d.u.end.records, 9);
	assert_int_equal(vfmig_stream_next(r, &rec), 0);
	assert_int_equal(vfmig_stream_next(r, &rec), 0);
	if (total)
		assert_int_equal(vfmig_stream_reader_offset(r), total);
	vfmig_stream_reader_free(r);
}

static int setup(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < BIG; i++)
		big[i] = (uint8_t)(i * 31 + (i >> 8));
	for (i = 0; i < sizeof(pages); i++)
		pages[i] = (uint8_t)(i ^ 0x5a);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void test_memory(void **state)
{
	struct vfmig_io *w, *r;
	const uint8_t *p;
	size_t len;
	int total;

	(void)state;
	assert_int_equal(vfmig_io_mem_writer(&w), 0);
	total = write_all_types(w);
	assert_true(total > (int)BIG);
	p = vfmig_io_mem_data(w, &len);
	assert_int_equal(len, (size_t)total);
	assert_int_equal(w->bytes_written, (uint64_t)total);
	assert_int_equal(vfmig_io_mem_reader(&r, p, len), 0);
	read_all_types(r, len);
	assert_int_equal(r->bytes_read, len);
	assert_int_equal(vfmig_io_close(r), 0);
	assert_int_equal(vfmig_io_close(w), 0);
}

static void test_file(void **state)
{
	char path[] = "/tmp/vfmig-stream-XXXXXX";
	struct vfmig_io *io;
	int fd, total;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vfmig_io_path(&io, path, true), 0);
	total = write_all_types(io);
	assert_true(total > 0);
	assert_int_equal(vfmig_io_close(io), 0);
	assert_int_equal(vfmig_io_path(&io, path, false), 0);
	read_all_types(io, (uint64_t)total);
	assert_int_equal(vfmig_io_close(io), 0);
	unlink(path);
	assert_int_equal(vfmig_io_path(&io, path, false), -ENOENT);
}

static void *pipe_writer(void *arg)
{
	int fd = *(int *)arg;
	struct vfmig_io *io;
	intptr_t rc;

	if (vfmig_io_fd(&io, fd, true) < 0) {
		close(fd);
		return (void *)(intptr_t)-ENOMEM;
	}
	rc = write_all_types(io);
	vfmig_io_close(io);
	return (void *)rc;
}

static void test_pipe(void **state)
{
	struct vfmig_io *io;
	pthread_t t;
	void *ret;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(pthread_create(&t, NULL, pipe_writer, &fds[1]), 0);
	assert_int_equal(vfmig_io_fd(&io, fds[0], true), 0);
	read_all_types(io, 0); /* total checked below */
	pthread_join(t, &ret);
	assert_true((intptr_t)ret > (intptr_t)BIG);
	assert_int_equal(io->bytes_read, (uint64_t)(intptr_t)ret);
	assert_int_equal(vfmig_io_close(io), 0);
}

/* A pipe whose reader went away: the writer's error is sticky. */
static void test_sticky_error(void **state)
{
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	assert_int_equal(vfmig_io_fd(&io, fds[1], true), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), -EPIPE);
	assert_int_equal(vfmig_io_error(io), -EPIPE);
	assert_int_equal(vfmig_io_write(io, "x", 1), -EPIPE);
	assert_int_equal(vfmig_io_flush(io), -EPIPE);
	assert_int_equal(io->bytes_written, 0);
	assert_int_equal(vfmig_io_close(io), -EPIPE);

	/* Reading from a writer-only io fails and sticks. */
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	{
		char b[4];

		assert_int_equal(vfmig_io_read(io, b, 4), -EBADF);
		assert_int_equal(vfmig_io_write(io, "x", 1), -EBADF);
	}
	assert_int_equal(vfmig_io_close(io), -EBADF);
	assert_int_equal(vfmig_io_fd(&io, -1, false), -EBADF);
}

static void test_writer_checks(void **state)
{
	static const struct vfmig_stream_device dup[] = {
		{ "a", "pci", "v2", 0, 1 }, { "a", "pci", "v2", 1, 1 },
	};
	static const struct vfmig_stream_device one[] = { { "a", "pci", "v2", 0, 1 } };
	struct vfmig_stream_ram_run bad_run = { 0x123, 1, true, NULL };
	struct vfmig_stream_ram_pages rp = { "r", 4096, 1, &bad_run };
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	size_t len;

	(void)state;
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), 0);
	assert_int_equal(vfmig_stream_writer_bytes(w), VFMIG_STREAM_HEADER_SIZE);
	assert_int_equal(vfmig_stream_write_device_begin(w, 0, VFMIG_PHASE_SETUP), -EINVAL);
	assert_string_equal(vfmig_stream_writer_error(w), "device record before DEVICE_LIST");
	assert_int_equal(vfmig_stream_writer_end(w), -EINVAL);
	assert_int_equal(vfmig_stream_write_device_list(w, dup, 2), -EINVAL);
	assert_int_equal(vfmig_stream_write_device_list(w, one, 1), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, one, 1), -EINVAL);
	assert_int_equal(vfmig_stream_write_device_data(w, 1, "x", 1), -EINVAL);
	assert_string_equal(vfmig_stream_writer_error(w),
			    "device index 1 not below DEVICE_LIST count 1");
	assert_int_equal(vfmig_stream_write_device_begin(w, 0, (enum vfmig_stream_phase)4),
			 -EINVAL);
	assert_int_equal(vfmig_stream_write_device_data(w, 0, big, VFMIG_STREAM_MAX_RECORD + 1),
			 -EMSGSIZE);
	assert_int_equal(vfmig_stream_write_device_data(w, 0, big, VFMIG_STREAM_MAX_RECORD - 1),
			 -EMSGSIZE); /* plus the 2-byte index */
	assert_int_equal(vfmig_stream_write_ram_pages(w, &rp), -EINVAL);
	rp.page_size = 3000;
	bad_run.addr = 0;
	assert_int_equal(vfmig_stream_write_ram_pages(w, &rp), -EINVAL);
	assert_int_equal(vfmig_stream_write_record(w, 100, 2, NULL, 0), -EINVAL);
	assert_int_equal(vfmig_stream_write_switchover(w), 0);
	assert_int_equal(vfmig_stream_write_switchover(w), -EINVAL);
	assert_int_equal(vfmig_stream_writer_end(w), 0);
	assert_int_equal(vfmig_stream_write_switchover(w), -EINVAL);
	assert_int_equal(vfmig_stream_write_record(w, 100, 0, NULL, 0), -EINVAL);
	/* Only the successful records were written. */
	vfmig_io_mem_data(io, &len);
	assert_int_equal(vfmig_stream_writer_bytes(w), len);
	assert_int_equal(len, 20 + (12 + 22) + 12 + (12 + 4));
	vfmig_stream_writer_free(w);
	vfmig_io_close(io);
}

/* Reads a stream to its end; returns the first error (message in msg). */
static int read_to_end(const uint8_t *p, size_t len, char *msg, size_t msglen)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	int rc;

	assert_int_equal(vfmig_io_mem_reader(&io, p, len), 0);
	rc = vfmig_stream_reader_open(&r, io, msg, msglen);
	if (rc == 0) {
		while ((rc = vfmig_stream_next(r, &rec)) == 1)
			;
		snprintf(msg, msglen, "%s", vfmig_stream_reader_error(r));
		vfmig_stream_reader_free(r);
	}
	vfmig_io_close(io);
	return rc;
}

/*
 * Each record checksum algorithm round-trips, and its header is what the
 * format says: the default is 1.3 with XXH3 (flag LIVE); CRC-32 is written as
 * 1.0.
 * Flipping one payload bit is caught under each of them.
 */
static void test_checksum_algorithms(void **state)
{
	static const struct {
		int csum;              /* -1: the default */
		const char *header;    /* bytes 8..15 */
		uint16_t minor, algo;
		const char *name;
	} cases[] = {
		{ -1, "\x00\x01\x00\x03\x00\x01\x00\x01", 3, VFMIG_STREAM_CSUM_XXH3, "xxh3" },
		{ VFMIG_STREAM_CSUM_XXH3, "\x00\x01\x00\x03\x00\x01\x00\x01", 3,
		  VFMIG_STREAM_CSUM_XXH3, "xxh3" },
		{ VFMIG_STREAM_CSUM_CRC32, "\x00\x01\x00\x00\x00\x00\x00\x00", 0,
		  VFMIG_STREAM_CSUM_CRC32, "crc32" },
	};
	struct vfmig_stream_reader *r;
	struct vfmig_stream_writer *w;
	struct vfmig_io *io, *in;
	const uint8_t *p;
	uint8_t *copy;
	char err[256];
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(vfmig_io_mem_writer(&io), 0);
		assert_true(write_all_types_csum(io, cases[i].csum) > (int)BIG);
		p = vfmig_io_mem_data(io, &len);
		assert_memory_equal(p, VFMIG_STREAM_MAGIC, 8);
		assert_memory_equal(p + 8, cases[i].header, 8);
		assert_int_equal(vfmig_io_mem_reader(&in, p, len), 0);
		read_all_types(in, len);
		vfmig_io_close(in);
		assert_int_equal(vfmig_io_mem_reader(&in, p, len), 0);
		assert_int_equal(vfmig_stream_reader_open(&r, in, err, sizeof(err)), 0);
		assert_int_equal(vfmig_stream_reader_minor(r), cases[i].minor);
		assert_int_equal(vfmig_stream_reader_csum(r), cases[i].algo);
		vfmig_stream_reader_free(r);
		vfmig_io_close(in);
		/* The big DEVICE_DATA record is at 135, after the header (20),
		 * STREAM_INFO (8 + 27 + 4), DEVICE_LIST (8 + 48 + 4) and
		 * DEVICE_BEGIN (8 + 4 + 4); its data after its header and the
		 * device index. */
		copy = malloc(len);
		assert_non_null(copy);
		memcpy(copy, p, len);
		copy[135 + 8 + 2 + 12345] ^= 0x20;
		assert_int_equal(read_to_end(copy, len, err, sizeof(err)), -EBADMSG);
		if (!strstr(err, "record at offset 135 (type 4): checksum mismatch") ||
		    !strstr(err, cases[i].name))
			fail_msg("%s: '%s'", cases[i].name, err);
		free(copy);
		vfmig_io_close(io);
	}
	assert_string_equal(vfmig_stream_csum_name(VFMIG_STREAM_CSUM_CRC32), "crc32");
	assert_string_equal(vfmig_stream_csum_name(VFMIG_STREAM_CSUM_XXH3), "xxh3");
	assert_null(vfmig_stream_csum_name(2));
	assert_int_equal(VFMIG_STREAM_CSUM_DEFAULT, VFMIG_STREAM_CSUM_XXH3);
	/* An algorithm the writer does not know writes nothing. */
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	w = NULL;
	assert_int_equal(vfmig_stream_writer_open_csum(&w, io, (enum vfmig_stream_csum)2),
			 -EINVAL);
	assert_null(w);
	vfmig_io_mem_data(io, &len);
	assert_int_equal(len, 0);
	vfmig_io_close(io);
}

/*
 * Records whose data ends just before, on and after the boundary of the
 * pieces the writer checksums and writes (and the reader reads and
 * checksums) one at a time: the stored checksum is the one-pass checksum
 * of the whole record, the data reads back, and a byte flipped at the end
 * of the data or at the start of the second piece is caught.
 */
static void test_pieces(void **state)
{
	static const size_t sizes[] = {
		1, VFMIG__STREAM_PIECE - 1, VFMIG__STREAM_PIECE, VFMIG__STREAM_PIECE + 1,
		3 * VFMIG__STREAM_PIECE + 5,
	};
	static const struct vfmig_stream_device dev = { "a", "pci", "v2", 0, 1 };
	static const int algos[] = { VFMIG_STREAM_CSUM_CRC32, VFMIG_STREAM_CSUM_XXH3 };
	size_t max = 3 * VFMIG__STREAM_PIECE + 5;
	uint8_t *data = malloc(max);
	char err[256];

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < max; i++)
		data[i] = (uint8_t)((i * 2654435761u) >> 13);
	for (size_t a = 0; a < 2; a++) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			struct vfmig_stream_writer *w;
			struct vfmig_stream_reader *r;
			struct vfmig_stream_record rec;
			struct vfmig_io *io, *in;
			size_t n = sizes[k], off, len, at[2];
			const uint8_t *p, *rp;
			uint32_t want, stored;
			uint8_t *copy;

			assert_int_equal(vfmig_io_mem_writer(&io), 0);
			assert_int_equal(vfmig_stream_writer_open_csum(
				&w, io, (enum vfmig_stream_csum)algos[a]), 0);
			assert_int_equal(vfmig_stream_write_device_list(w, &dev, 1), 0);
			off = (size_t)vfmig_stream_writer_bytes(w);
			assert_int_equal(vfmig_stream_write_device_data(w, 0, data, n), 0);
			assert_int_equal(vfmig_stream_writer_end(w), 0);
			vfmig_stream_writer_free(w);
			p = vfmig_io_mem_data(io, &len);
			rp = p + off; /* header 8, device index 2, data, checksum 4 */
			assert_true(off + 8 + 2 + n + 4 < len);
			want = algos[a] == VFMIG_STREAM_CSUM_CRC32 ?
			       (uint32_t)crc32(0, rp, (uInt)(8 + 2 + n)) :
			       (uint32_t)XXH3_64bits(rp, 8 + 2 + n);
			stored = (uint32_t)rp[10 + n] << 24 | (uint32_t)rp[11 + n] << 16 |
				 (uint32_t)rp[12 + n] << 8 | rp[13 + n];
			if (stored != want)
				fail_msg("algo %d, %zu bytes: stored 0x%08x, one pass 0x%08x",
					 algos[a], n, stored, want);

			assert_int_equal(vfmig_io_mem_reader(&in, p, len), 0);
			assert_int_equal(vfmig_stream_reader_open(&r, in, err, sizeof(err)), 0);
			next_is(r, &rec, VFMIG_REC_DEVICE_LIST);
			next_is(r, &rec, VFMIG_REC_DEVICE_DATA);
			assert_int_equal(rec.d.u.device_data.len, n);
			assert_memory_equal(rec.d.u.device_data.data, data, n);
			next_is(r, &rec, VFMIG_REC_END);
			vfmig_stream_reader_free(r);
			vfmig_io_close(in);

			at[0] = n - 1;
			at[1] = n > VFMIG__STREAM_PIECE ? VFMIG__STREAM_PIECE : 0;
			for (size_t j = 0; j < 2; j++) {
				copy = malloc(len);
				assert_non_null(copy);
				memcpy(copy, p, len);
				copy[off + 10 + at[j]] ^= 0x01;
				assert_int_equal(read_to_end(copy, len, err, sizeof(err)),
						 -EBADMSG);
				if (!strstr(err, "checksum mismatch"))
					fail_msg("algo %d, %zu bytes, byte %zu: '%s'", algos[a],
						 n, at[j], err);
				free(copy);
			}
			vfmig_io_close(io);
		}
	}
	free(data);
}

static void expect_decode(uint16_t type, const void *p, uint32_t len, int want,
			  const char *needle)
{
	struct vfmig_stream_decoded d;
	char err[256] = "";
	int rc = vfmig_stream_decode(type, p, len, &d, err, sizeof(err));

	if (rc != want)
		fail_msg("type %u: expected %d, got %d (%s)", type, want, rc, err);
	if (needle && !strstr(err, needle))
		fail_msg("'%s' lacks '%s'", err, needle);
	vfmig_stream_decoded_clear(type, &d);
}

static void test_decoders_refuse(void **state)
{
	(void)state;
	expect_decode(VFMIG_REC_STREAM_INFO, "\x00\x01\x00\x01k\x00\x02v", 8, -EBADMSG,
		      "truncated");
	expect_decode(VFMIG_REC_STREAM_INFO, "\x00\x01\x00\x01k\x00\x01\x00", 8, -EBADMSG,
		      NULL); /* NUL in a string */
	expect_decode(VFMIG_REC_STREAM_INFO, "\xff\xff", 2, -EBADMSG, "count 65535");
	expect_decode(VFMIG_REC_DEVICE_LIST,
		      "\x00\x02" "\x00\x01" "a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
		      "\x00\x01" "a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 34,
		      -EBADMSG, "names device 'a' twice");
	expect_decode(VFMIG_REC_DEVICE_LIST,
		      "\x00\x01" "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 16,
		      -EBADMSG, "empty id");
	expect_decode(VFMIG_REC_DEVICE_BEGIN, "\x00\x00\x01\x01", 4, -EBADMSG, "reserved byte 1");
	expect_decode(VFMIG_REC_DEVICE_BEGIN, "\x00\x00\x01", 3, -EBADMSG, "truncated");
	expect_decode(VFMIG_REC_DEVICE_BEGIN, "\x00\x00\x01\x00\x00", 5, -EBADMSG, "trailing");
	expect_decode(VFMIG_REC_DEVICE_DATA, "\x00", 1, -EBADMSG, "need 2");
	expect_decode(VFMIG_REC_DEVICE_END, "\x00\x00\x00", 3, -EBADMSG, "trailing");
	expect_decode(VFMIG_REC_TYPE_STATE, "\x00\x00\x00\x00", 4, -EBADMSG, "type name length 0");
	expect_decode(VFMIG_REC_SWITCHOVER, "x", 1, -EBADMSG, "must be empty");
	expect_decode(VFMIG_REC_END, "\x00\x00\x00", 3, -EBADMSG, "truncated");
	/* RAM_PAGES: block "r", page size, runs. */
	expect_decode(VFMIG_REC_RAM_PAGES, "\x00\x01r\x00\x00\x0b\xb8\x00\x00\x00\x00", 11,
		      -EBADMSG, "page size 3000");
	expect_decode(VFMIG_REC_RAM_PAGES,
		      "\x00\x01r\x00\x00\x10\x00\x00\x00\x00\x01"
		      "\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x01\x01", 24,
		      -EBADMSG, "run 0: addr 0x10"); /* misaligned */
	expect_decode(VFMIG_REC_RAM_PAGES,
		      "\x00\x01r\x00\x00\x10\x00\x00\x00\x00\x01"
		      "\xff\xff\xff\xff\xff\xff\xf0\x00\x00\x00\x00\x02\x01", 24,
		      -EBADMSG, "run 0"); /* wraps past 2^64 */
	expect_decode(VFMIG_REC_RAM_PAGES,
		      "\x00\x01r\x00\x00\x10\x00\x00\x00\x00\x01"
		      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00", 24,
		      -EBADMSG, "truncated"); /* data run without data */
	expect_decode(VFMIG_REC_RAM_PAGES,
		      "\x00\x01r\x00\x00\x10\x00\xff\xff\xff\xff", 11, -EBADMSG, "run count");
	expect_decode(200, "", 0, -ENOENT, "unknown record type 200");
	assert_string_equal(vfmig_stream_type_name(VFMIG_REC_RAM_PAGES), "RAM_PAGES");
	assert_null(vfmig_stream_type_name(0));
	assert_string_equal(vfmig_stream_type_name(VFMIG_REC_VCPU_STATE), "VCPU_STATE");
	assert_string_equal(vfmig_stream_type_name(VFMIG_REC_RAM_PAGES_LIVE), "RAM_PAGES_LIVE");
	assert_null(vfmig_stream_type_name(12));
	expect_decode(VFMIG_REC_VCPU_STATE, "\x00", 1, -EBADMSG, "need 2");
	expect_decode(VFMIG_REC_VCPU_STATE, "\x01\x00\x00\x00\x00\x00", 6, -EBADMSG,
		      "vCPU index 256 not below 256");
	expect_decode(VFMIG_REC_VCPU_STATE, "\x00\x00\x00\x00", 4, -EBADMSG,
		      "type name length 0");
}

/* Read every record of p; the result of the last vfmig_stream_next. */
static int read_stream(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *in;
	int rc;

	assert_int_equal(vfmig_io_mem_reader(&in, p, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, in, err, errlen), 0);
	while ((rc = vfmig_stream_next(r, &rec)) == 1)
		;
	snprintf(err, errlen, "%s", vfmig_stream_reader_error(r));
	vfmig_stream_reader_free(r);
	vfmig_io_close(in);
	return rc;
}

/* A stream with VCPU_STATE records for vcpus (n of them), the first
 * after the switchover unless early; minor as the writer is opened. */
static uint8_t *vcpu_stream(uint16_t minor, bool early, const uint16_t *vcpus, size_t n,
			    size_t *len)
{
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	struct st s = { 7, { 1, 2, 3 } };
	uint8_t state[64], p[2 + sizeof(state)];
	size_t slen;
	uint8_t *enc, *out;

	assert_int_equal(vfmig_fields_encode(&st_desc, &s, &enc, &slen, NULL, 0), 0);
	assert_true(slen <= sizeof(state));
	memcpy(state, enc, slen);
	free(enc);
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_XXH3, minor), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
	for (size_t i = 0; i < n; i++) {
		if (i == 0 && !early)
			assert_int_equal(vfmig_stream_write_switchover(w), 0);
		/* Raw records: the writer would refuse the bad ones. */
		p[0] = (uint8_t)(vcpus[i] >> 8);
		p[1] = (uint8_t)vcpus[i];
		memcpy(p + 2, state, slen);
		assert_int_equal(vfmig_stream_write_record(w, VFMIG_REC_VCPU_STATE,
							   VFMIG_STREAM_F_MUST_UNDERSTAND, p,
							   2 + slen), 0);
	}
	assert_int_equal(vfmig_stream_writer_end(w), 0);
	vfmig_stream_writer_free(w);
	const uint8_t *d = vfmig_io_mem_data(io, len);
	out = malloc(*len);
	assert_non_null(out);
	memcpy(out, d, *len);
	vfmig_io_close(io);
	return out;
}

/* VCPU_STATE (1.2): written only after SWITCHOVER and only in 1.2; read
 * only there too, once per vCPU, and printed with its fields. */
static void test_vcpu_state(void **state)
{
	static const uint16_t one[] = { 0 }, two[] = { 0, 3 }, dup[] = { 3, 3 };
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	struct st s = { 1, { 0 } };
	char err[256];
	uint8_t *p;
	size_t len;

	(void)state;
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_XXH3, 1), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
	assert_int_equal(vfmig_stream_write_switchover(w), 0);
	assert_int_equal(vfmig_stream_write_vcpu_state(w, 0, &st_desc, &s), -EINVAL);
	assert_string_equal(vfmig_stream_writer_error(w),
			    "VCPU_STATE needs format 1.2; this stream is 1.1");
	vfmig_stream_writer_free(w);
	vfmig_io_close(io);
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
	assert_int_equal(vfmig_stream_write_vcpu_state(w, 0, &st_desc, &s), -EINVAL);
	assert_string_equal(vfmig_stream_writer_error(w), "VCPU_STATE before SWITCHOVER");
	assert_int_equal(vfmig_stream_write_switchover(w), 0);
	assert_int_equal(vfmig_stream_write_vcpu_state(w, 256, &st_desc, &s), -EINVAL);
	assert_int_equal(vfmig_stream_write_vcpu_state(w, 0, &st_desc, &s), 0);
	vfmig_stream_writer_free(w);
	vfmig_io_close(io);
	/* Invalid combinations of algorithm and minor. */
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_CRC32, 2),
			 -EINVAL);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_XXH3, 0),
			 -EINVAL);
	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_XXH3, 4),
			 -EINVAL);
	vfmig_io_close(io);

	p = vcpu_stream(2, false, two, 2, &len);
	assert_int_equal(read_stream(p, len, err, sizeof(err)), 0);
	FILE *f = tmpfile();
	struct vfmig_io *in;
	assert_int_equal(vfmig_io_mem_reader(&in, p, len), 0);
	assert_int_equal(vfmig_stream_print(in, f, err, sizeof(err)), 0);
	vfmig_io_close(in);
	char text[4096] = "";
	rewind(f);
	assert_true(fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	assert_non_null(strstr(text, "VCPU_STATE"));
	assert_non_null(strstr(text, "vCPU 3, "));
	assert_non_null(strstr(text, "x (u32) = 7 (0x7)"));
	free(p);
	p = vcpu_stream(1, false, one, 1, &len);
	assert_int_equal(read_stream(p, len, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "in a 1.1 stream (the record exists from 1.2 on)"));
	free(p);
	p = vcpu_stream(2, true, one, 1, &len);
	assert_int_equal(read_stream(p, len, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "before SWITCHOVER"));
	free(p);
	p = vcpu_stream(2, false, dup, 2, &len);
	assert_int_equal(read_stream(p, len, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "second state of vCPU 3"));
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_pipe),
		cmocka_unit_test(test_sticky_error),
		cmocka_unit_test(test_writer_checks),
		cmocka_unit_test(test_checksum_algorithms),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_decoders_refuse),
		cmocka_unit_test(test_vcpu_state),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
