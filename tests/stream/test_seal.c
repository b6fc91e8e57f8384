/* SPDX-License-Identifier: MIT */
/*
 * Sealed device data: the checksum a device computes with
 * vfmig_stream_seal_* is the DEVICE_DATA record's own, a record written
 * with vfmig_stream_write_device_data_moved() is byte for byte the one
 * vfmig_stream_write_device_data() writes, and a reader with a forwarding
 * function hands the data and checksum on unread (or reads them itself
 * when the function declines, checksum check included).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "stream/io.h"
#include "stream/stream.h"

#define DATA_LEN 300001u /* not a multiple of any piece size */

static uint8_t data[DATA_LEN];

static const struct vfmig_stream_device devs[] = {
	{ "a0", "pci", "v2", 0, 1 },
	{ "b0", "pci", "v2", 0, 1 },
};

static uint32_t seal_of(uint16_t dev, const uint8_t *p, size_t len)
{
	struct vfmig_stream_seal *s;
	uint32_t v;

	assert_int_equal(vfmig_stream_seal_new(&s), 0);
	vfmig_stream_seal_begin(s, dev, (uint32_t)len);
	/* In uneven pieces, as a device receiving them would. */
	for (size_t off = 0, n; off < len; off += n) {
		n = len - off < 65537 ? len - off : 65537;
		vfmig_stream_seal_update(s, p + off, n);
	}
	v = vfmig_stream_seal_end(s);
	vfmig_stream_seal_free(s);
	return v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* The records around the device data. */
static void write_head(struct vfmig_stream_writer *w)
{
	assert_int_equal(vfmig_stream_write_device_list(w, devs, 2), 0);
	assert_int_equal(vfmig_stream_write_device_begin(w, 1, VFMIG_PHASE_FINAL), 0);
}

static void write_tail(struct vfmig_stream_writer *w)
{
	assert_int_equal(vfmig_stream_write_device_end(w, 1), 0);
	assert_int_equal(vfmig_stream_writer_end(w), 0);
}

/* The stream with plain DEVICE_DATA, in memory. */
static uint8_t *plain_stream(size_t *len)
{
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	const uint8_t *p;
	uint8_t *copy;

	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), 0);
	assert_false(vfmig_stream_writer_can_move(w));
	write_head(w);
	assert_int_equal(vfmig_stream_write_device_data(w, 1, data, DATA_LEN), 0);
	write_tail(w);
	vfmig_stream_writer_free(w);
	p = vfmig_io_mem_data(io, len);
	copy = malloc(*len);
	assert_non_null(copy);
	memcpy(copy, p, *len);
	vfmig_io_close(io);
	return copy;
}

static void test_seal_is_the_record_checksum(void **state)
{
	size_t len, at;
	uint8_t *s = plain_stream(&len);
	uint8_t want[4];

	(void)state;
	/* The record is the last DEVICE_DATA before DEVICE_END (14 bytes)
	 * and END (16 bytes): its trailer ends 30 bytes before the end. */
	at = len - 14 - 16 - 4;
	put_be32(want, seal_of(1, data, DATA_LEN));
	assert_memory_equal(s + at, want, 4);
	assert_memory_equal(s + at - DATA_LEN, data, DATA_LEN);
	/* Another index, another checksum. */
	put_be32(want, seal_of(0, data, DATA_LEN));
	assert_memory_not_equal(s + at, want, 4);
	free(s);
}

struct mover {
	const uint8_t *p;
	size_t len;
	uint32_t csum;
	int fail; /* return this after half the data */
};

static void write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);

		assert_true(w > 0);
		b += w;
		n -= (size_t)w;
	}
}

static int move(void *priv, int fd)
{
	struct mover *m = priv;
	uint8_t tail[4];

	if (m->fail) {
		write_all(fd, m->p, m->len / 2);
		return m->fail;
	}
	write_all(fd, m->p, m->len);
	put_be32(tail, m->csum);
	write_all(fd, tail, sizeof(tail));
	return 0;
}

/* The same records with the data moved, in a memfd; its bytes. */
static int moved_stream(size_t *len, int fail)
{
	struct mover m = { data, DATA_LEN, seal_of(1, data, DATA_LEN), fail };
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	int fd = memfd_create("seal", MFD_CLOEXEC), rc;

	assert_true(fd >= 0);
	assert_int_equal(vfmig_io_fd(&io, fd, false), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), 0);
	assert_true(vfmig_stream_writer_can_move(w));
	write_head(w);
	rc = vfmig_stream_write_device_data_moved(w, 1, DATA_LEN, move, &m);
	if (fail) {
		assert_int_equal(rc, fail);
		/* Broken for good: nothing more goes out. */
		assert_int_equal(vfmig_stream_write_device_end(w, 1), fail);
		vfmig_stream_writer_free(w);
		assert_int_equal(vfmig_io_close(io), fail);
		close(fd);
		return -1;
	}
	assert_int_equal(rc, 0);
	write_tail(w);
	vfmig_stream_writer_free(w);
	assert_int_equal(vfmig_io_close(io), 0);
	*len = (size_t)lseek(fd, 0, SEEK_END);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void test_moved_record_same_bytes(void **state)
{
	size_t plen, mlen;
	uint8_t *plain = plain_stream(&plen);
	int fd = moved_stream(&mlen, 0);
	uint8_t *got;

	(void)state;
	assert_int_equal(mlen, plen);
	got = malloc(mlen);
	assert_non_null(got);
	assert_int_equal(read(fd, got, mlen), (ssize_t)mlen);
	assert_memory_equal(got, plain, plen);
	free(got);
	free(plain);
	close(fd);
}

static void test_moved_refusals(void **state)
{
	struct mover m = { data, DATA_LEN, 0, 0 };
	struct vfmig_stream_writer *w;
	struct vfmig_io *io;
	size_t len;

	(void)state;
	/* A memory writer has no fd to move into. */
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), 0);
	write_head(w);
	assert_int_equal(vfmig_stream_write_device_data_moved(w, 1, DATA_LEN, move, &m),
			 -ENOTSUP);
	vfmig_stream_writer_free(w);
	vfmig_io_close(io);
	/* A move that fails part way breaks the stream. */
	assert_int_equal(moved_stream(&len, -EPIPE), -1);
}

struct fwd {
	int answer;      /* 0: decline, 1: take */
	unsigned calls;
	uint16_t dev;
	uint32_t len;
	uint8_t *got;    /* data and checksum, when taken */
};

static int forward(void *priv, uint16_t dev, uint32_t len, int fd)
{
	struct fwd *f = priv;
	size_t n = (size_t)len + 4, off = 0;

	f->calls++;
	f->dev = dev;
	f->len = len;
	if (!f->answer)
		return 0;
	f->got = malloc(n);
	assert_non_null(f->got);
	while (off < n) {
		ssize_t r = read(fd, f->got + off, n - off);

		if (r <= 0)
			return -EPIPE;
		off += (size_t)r;
	}
	return 1;
}

/* Reads the stream in fd (from its start) with forwarding answering as
 * f says; the record count, or the first error. */
static int read_stream(int fd, struct fwd *f, char *err, size_t errlen)
{
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io;
	int rc, n = 0;

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(vfmig_io_fd(&io, fd, false), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, io, err, errlen), 0);
	vfmig_stream_reader_set_forward(r, forward, f);
	while ((rc = vfmig_stream_next(r, &rec)) > 0) {
		n++;
		if (rec.type != VFMIG_REC_DEVICE_DATA)
			continue;
		assert_int_equal(rec.d.u.device_data.dev, 1);
		assert_int_equal(rec.d.u.device_data.len, DATA_LEN);
		if (f->answer) {
			assert_true(rec.d.u.device_data.forwarded);
			assert_null(rec.d.u.device_data.data);
		} else {
			assert_false(rec.d.u.device_data.forwarded);
			assert_memory_equal(rec.d.u.device_data.data, data, DATA_LEN);
		}
	}
	if (rc < 0)
		snprintf(err, errlen, "%s", vfmig_stream_reader_error(r));
	vfmig_stream_reader_free(r);
	vfmig_io_close(io);
	return rc < 0 ? rc : n;
}

static void test_forward(void **state)
{
	struct fwd take = { .answer = 1 }, decline = { .answer = 0 };
	size_t len;
	int fd = moved_stream(&len, 0);
	uint8_t tail[4];
	char err[320];

	(void)state;
	/* DEVICE_LIST, DEVICE_BEGIN, DEVICE_DATA, DEVICE_END, END. */
	assert_int_equal(read_stream(fd, &take, err, sizeof(err)), 5);
	assert_int_equal(take.calls, 1);
	assert_int_equal(take.dev, 1);
	assert_int_equal(take.len, DATA_LEN);
	assert_memory_equal(take.got, data, DATA_LEN);
	put_be32(tail, seal_of(1, data, DATA_LEN));
	assert_memory_equal(take.got + DATA_LEN, tail, 4);
	free(take.got);
	assert_int_equal(read_stream(fd, &decline, err, sizeof(err)), 5);
	assert_int_equal(decline.calls, 1);
	close(fd);
}

static void test_forward_leaves_the_check_to_the_device(void **state)
{
	struct fwd take = { .answer = 1 }, decline = { .answer = 0 };
	size_t len;
	int fd = moved_stream(&len, 0);
	off_t at = (off_t)(len - 14 - 16 - 4 - 1000);
	uint8_t b;
	char err[320];

	(void)state;
	/* A flipped bit in the data: a declining reader refuses the record,
	 * a forwarding one hands it on (its device checks). */
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	assert_int_equal(read_stream(fd, &decline, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "checksum mismatch"));
	assert_int_equal(read_stream(fd, &take, err, sizeof(err)), 5);
	assert_int_equal(take.got[DATA_LEN - 1000] ^ data[DATA_LEN - 1000], 0x10);
	free(take.got);
	close(fd);
}

/* A record without payload before any with one: the reader's payload
 * buffer does not exist yet (UBSan once caught pointer arithmetic on it). */
static void test_empty_first_record(void **state)
{
	struct vfmig_stream_writer *w;
	struct vfmig_stream_reader *r;
	struct vfmig_stream_record rec;
	struct vfmig_io *io, *in;
	const uint8_t *p;
	size_t len;
	char err[320];
	int rc, n = 0;

	(void)state;
	assert_int_equal(vfmig_io_mem_writer(&io), 0);
	assert_int_equal(vfmig_stream_writer_open(&w, io), 0);
	assert_int_equal(vfmig_stream_write_record(w, 200, 0, NULL, 0), 0);
	write_head(w);
	assert_int_equal(vfmig_stream_write_device_data(w, 1, data, 100), 0);
	write_tail(w);
	vfmig_stream_writer_free(w);
	p = vfmig_io_mem_data(io, &len);
	assert_int_equal(vfmig_io_mem_reader(&in, p, len), 0);
	assert_int_equal(vfmig_stream_reader_open(&r, in, err, sizeof(err)), 0);
	while ((rc = vfmig_stream_next(r, &rec)) > 0)
		n++;
	assert_int_equal(rc, 0);
	assert_int_equal(n, 5);
	assert_int_equal(vfmig_stream_reader_skipped(r), 1);
	vfmig_stream_reader_free(r);
	vfmig_io_close(in);
	vfmig_io_close(io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_is_the_record_checksum),
		cmocka_unit_test(test_moved_record_same_bytes),
		cmocka_unit_test(test_moved_refusals),
		cmocka_unit_test(test_forward),
		cmocka_unit_test(test_forward_leaves_the_check_to_the_device),
		cmocka_unit_test(test_empty_first_record),
	};

	for (size_t i = 0; i < DATA_LEN; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 9));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
