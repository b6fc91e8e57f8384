/* SPDX-License-Identifier: MIT */
/*
 * Channels through real sockets on loopback (UNIX and TCP 127.0.0.1 with an
 * ephemeral port) and a real file: URI parsing, the stream in one direction
 * and return-path messages in the other, a peer killed mid-transfer, the
 * timeout, corrupt frames, frames that arrive a byte at a time.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "engine/channel.h"
#include "stream/stream.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char p[128];

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/vfmig-chan-XXXXXX");
		assert_non_null(mkdtemp(tmpdir));
	}
	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

/* "unix:" and a socket path in the test's directory. */
static const char *unix_uri(const char *name)
{
	static char uri[160];

	snprintf(uri, sizeof(uri), "unix:%s", tmp_path(name));
	return uri;
}

/* ---- URI parsing ---- */

static void test_uri_good(void **state)
{
	struct vfmig_chan_uri u;
	char err[256];
	(void)state;

	assert_int_equal(vfmig_chan_parse_uri("tcp:127.0.0.1:4444", &u, err, sizeof(err)), 0);
	assert_int_equal(u.kind, VFMIG_CHAN_TCP);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 4444);
	assert_int_equal(vfmig_chan_parse_uri("tcp:localhost:0", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "localhost");
	assert_int_equal(u.port, 0);
	assert_int_equal(vfmig_chan_parse_uri("tcp:[::1]:65535", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 65535);
	assert_int_equal(vfmig_chan_parse_uri("unix:/run/x.sock", &u, err, sizeof(err)), 0);
	assert_int_equal(u.kind, VFMIG_CHAN_UNIX);
	assert_string_equal(u.path, "/run/x.sock");
	assert_int_equal(vfmig_chan_parse_uri("file:rel/dir:with:colons", &u, err, sizeof(err)), 0);
	assert_int_equal(u.kind, VFMIG_CHAN_FILE);
	assert_string_equal(u.path, "rel/dir:with:colons");
}

static void expect_bad(const char *uri, const char *needle)
{
	struct vfmig_chan_uri u;
	char err[256] = "";

	assert_int_equal(vfmig_chan_parse_uri(uri, &u, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("URI \"%s\": message \"%s\" does not name \"%s\"", uri, err, needle);
}

static void test_uri_bad(void **state)
{
	char longp[200];
	(void)state;

	expect_bad("/tmp/x.sock", "no scheme");
	expect_bad("127.0.0.1:4444", "unknown scheme \"127.0.0.1\"");
	expect_bad("http:host:80", "unknown scheme \"http\"");
	expect_bad("TCP:host:80", "unknown scheme \"TCP\"");
	expect_bad("tcp:host", "missing port");
	expect_bad("tcp::80", "empty host");
	expect_bad("tcp:host:", "missing port");
	expect_bad("tcp:host:http", "port \"http\"");
	expect_bad("tcp:host:-1", "port \"-1\"");
	expect_bad("tcp:host:65536", "port 65536");
	expect_bad("tcp:host:99999999999", "port \"99999999999\"");
	expect_bad("tcp:::1:80", "write IPv6 as [ADDR]");
	expect_bad("tcp:[::1:80", "no closing ']'");
	expect_bad("tcp:[::1]80", "missing ':PORT'");
	expect_bad("tcp:[]:80", "not an IPv6 address");
	expect_bad("unix:", "empty path");
	expect_bad("file:", "empty path");
	memset(longp, 'a', sizeof(longp) - 1);
	memcpy(longp, "unix:", 5);
	longp[sizeof(longp) - 1] = 0;
	expect_bad(longp, "longer than 107");
	assert_int_equal(vfmig_chan_parse_uri(NULL, NULL, NULL, 0), -EINVAL);
}

/* ---- socket pairs of channels ---- */

struct pair {
	struct vfmig_chan *src, *dst;
};

struct conn_arg {
	char uri[160];
	struct vfmig_chan *c;
	int r;
};

static void *connector(void *p)
{
	struct conn_arg *a = p;
	char err[256];

	a->r = vfmig_chan_connect(a->uri, 5000, &a->c, err, sizeof(err));
	return NULL;
}

/* Destination listens, a thread connects as the source. */
static void open_pair(const char *listen_uri, struct pair *p)
{
	struct vfmig_chan_listener *l;
	struct conn_arg a = { .r = -1 };
	pthread_t t;
	char err[256];

	assert_int_equal(vfmig_chan_listen(listen_uri, &l, err, sizeof(err)), 0);
	if (!strncmp(listen_uri, "tcp:", 4)) {
		assert_true(vfmig_chan_listener_port(l) != 0);
		snprintf(a.uri, sizeof(a.uri), "tcp:127.0.0.1:%u", vfmig_chan_listener_port(l));
	} else {
		snprintf(a.uri, sizeof(a.uri), "%s", listen_uri);
	}
	assert_int_equal(pthread_create(&t, NULL, connector, &a), 0);
	assert_int_equal(vfmig_chan_accept(l, 5000, &p->dst, err, sizeof(err)), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.r, 0);
	p->src = a.c;
	vfmig_chan_listener_close(l);
	assert_true(vfmig_chan_has_return_path(p->src));
	assert_true(vfmig_chan_has_return_path(p->dst));
}

struct writer_arg {
	struct vfmig_chan *c;
	size_t len;
	int fd; /* file_writer(): the file it splices from */
	int r;
};

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 31 + (i >> 8));
}

/* Writes of odd sizes, so that they cross the 64 KiB write buffer
 * unevenly; every third is larger than the buffer and leaves with what
 * the buffer holds in one send, which a full socket cuts anywhere. */
static void *stream_writer(void *p)
{
	static const size_t sizes[] = { 7919, 7919, 200003 };
	struct writer_arg *a = p;
	uint8_t *buf = malloc(sizes[2]);
	size_t off = 0, k = 0;

	assert_non_null(buf);
	while (off < a->len) {
		size_t want = sizes[k++ % 3];
		size_t n = a->len - off < want ? a->len - off : want;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		vfmig_io_write(vfmig_chan_io(a->c), buf, n);
		off += n;
	}
	free(buf);
	a->r = vfmig_io_flush(vfmig_chan_io(a->c));
	return NULL;
}

/* Reads len bytes of stream_writer()'s pattern on dst and checks each. */
static void read_pattern(struct vfmig_chan *dst, size_t len)
{
	uint8_t buf[65536];
	size_t got = 0;

	while (got < len) {
		size_t n = len - got < sizeof(buf) ? len - got : sizeof(buf);
		assert_int_equal(vfmig_io_read(vfmig_chan_io(dst), buf, n), (ssize_t)n);
		for (size_t i = 0; i < n; i++)
			if (buf[i] != pattern(got + i))
				fail_msg("byte %zu differs", got + i);
		got += n;
	}
}

/* 3 MiB source -> destination, then every return-path message back. */
static void both_ways(const char *uri)
{
	struct pair p;
	struct writer_arg w = { .len = 3u << 20 };
	struct vfmig_rp_msg m;
	pthread_t t;
	uint8_t buf[1];
	char err[256];

	open_pair(uri, &p);
	w.c = p.src;
	assert_int_equal(pthread_create(&t, NULL, stream_writer, &w), 0);
	read_pattern(p.dst, w.len);
	pthread_join(t, NULL);
	assert_int_equal(w.r, 0);
	/* Wrong directions are refused: only COMMIT goes toward the
	 * destination, and nothing else. */
	assert_int_equal(vfmig_chan_rp_ack(p.src, "x"), -ENOTSUP);
	m = (struct vfmig_rp_msg){ .type = VFMIG_RP_COMMIT };
	assert_int_equal(vfmig_chan_rp_send(p.dst, &m), -ENOTSUP);
	assert_int_equal(vfmig_chan_rp_recv(p.dst, &m, 10, err, sizeof(err)), -ETIMEDOUT);
	m = (struct vfmig_rp_msg){ .type = VFMIG_RP_COMMIT };
	assert_int_equal(vfmig_chan_rp_send(p.src, &m), 0);
	memset(&m, 0xff, sizeof(m));
	assert_int_equal(vfmig_chan_rp_recv(p.dst, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_COMMIT);
	assert_string_equal(vfmig_rp_type_name(m.type), "COMMIT");
	m = (struct vfmig_rp_msg){ .type = VFMIG_RP_WAIT_COMMIT };
	assert_int_equal(vfmig_chan_rp_send(p.dst, &m), 0);
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_WAIT_COMMIT);
	m = (struct vfmig_rp_msg){ .type = VFMIG_RP_STARTED, .timestamp_ns = 77 };
	assert_int_equal(vfmig_chan_rp_send(p.dst, &m), 0);
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_STARTED);
	assert_true(m.timestamp_ns == 77);

	assert_int_equal(vfmig_chan_rp_ack(p.dst, "regs0"), 0);
	assert_int_equal(vfmig_chan_rp_ack(p.dst, NULL), 0);
	assert_int_equal(vfmig_chan_rp_resumed(p.dst, 0x0123456789abcdefull), 0);
	assert_int_equal(vfmig_chan_rp_failed(p.dst, "loading regs0: vendor id differs"), 0);
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_SWITCHOVER_ACK);
	assert_string_equal(m.text, "regs0");
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_SWITCHOVER_ACK);
	assert_string_equal(m.text, "");
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_RESUMED);
	assert_true(m.timestamp_ns == 0x0123456789abcdefull);
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_FAILED);
	assert_string_equal(m.text, "loading regs0: vendor id differs");
	assert_string_equal(vfmig_rp_type_name(m.type), "FAILED");

	/* Destination closes: the source's wait ends with -ECONNRESET. */
	assert_int_equal(vfmig_chan_close(p.dst), 0);
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 2000, err, sizeof(err)), -ECONNRESET);
	assert_non_null(strstr(err, "closed"));
	/* Reading on the source is refused, and the error sticks to close. */
	assert_int_equal(vfmig_io_read(vfmig_chan_io(p.src), buf, 1), -EBADF);
	assert_int_equal(vfmig_chan_close(p.src), -EBADF);
}

static void test_unix_both_ways(void **state)
{
	(void)state;
	both_ways(unix_uri("both.sock"));
}

static void test_tcp_both_ways(void **state)
{
	(void)state;
	both_ways("tcp:127.0.0.1:0");
}

/* More than both ends' socket buffers hold, with the reader away at
 * first: the source's sends fill the socket and then go out in whatever
 * pieces the kernel takes, cutting the write buffer's bytes and the large
 * writes after them anywhere; every byte still arrives once, in order. */
static void full_socket_by(const char *uri, void *(*writer)(void *), size_t len, int fd)
{
	struct pair p;
	struct writer_arg w = { .len = len, .fd = fd };
	pthread_t t;

	open_pair(uri, &p);
	w.c = p.src;
	assert_int_equal(pthread_create(&t, NULL, writer, &w), 0);
	usleep(200 * 1000);
	read_pattern(p.dst, w.len);
	pthread_join(t, NULL);
	assert_int_equal(w.r, 0);
	assert_true(vfmig_chan_io(p.src)->bytes_written == w.len);
	assert_int_equal(vfmig_chan_close(p.src), 0);
	assert_int_equal(vfmig_chan_close(p.dst), 0);
}

static void full_socket(const char *uri)
{
	full_socket_by(uri, stream_writer, 40u << 20, -1);
}

static void test_unix_full_socket(void **state)
{
	(void)state;
	full_socket(unix_uri("full.sock"));
}

static void test_tcp_full_socket(void **state)
{
	(void)state;
	full_socket("tcp:127.0.0.1:0");
}

/* ---- page data spliced from a file (vfmig_io_write_file) ---- */

/* A memfd of len bytes holding pattern(i) at offset i. */
static int pattern_file(size_t len)
{
	int fd = memfd_create("chan-test", MFD_CLOEXEC);
	uint8_t *buf = malloc(1u << 16);

	assert_true(fd >= 0);
	assert_non_null(buf);
	for (size_t off = 0; off < len; off += 1u << 16) {
		size_t n = len - off < (1u << 16) ? len - off : (1u << 16);
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		assert_int_equal(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
	}
	free(buf);
	return fd;
}

/* The pattern again, but most of it spliced from the file: small writes
 * that stay in the write buffer, pieces above the channel's 512 KiB pipe,
 * and 3-byte pieces, in turn, so each splice follows buffered bytes. */
static void *file_writer(void *p)
{
	static const size_t sizes[] = { 100, 700001, 3 };
	struct writer_arg *a = p;
	struct vfmig_io *io = vfmig_chan_io(a->c);
	uint8_t buf[100];
	size_t off = 0, k = 0;

	while (off < a->len && a->r == 0) {
		size_t want = sizes[k % 3];
		size_t n = a->len - off < want ? a->len - off : want;

		if (k++ % 3 == 0) {
			for (size_t i = 0; i < n; i++)
				buf[i] = pattern(off + i);
			a->r = vfmig_io_write(io, buf, n);
		} else {
			a->r = vfmig_io_write_file(io, a->fd, off, n);
		}
		off += n;
	}
	if (a->r == 0)
		a->r = vfmig_io_flush(io);
	return NULL;
}

/* As full_socket(), with most of the bytes spliced from a file. */
static void write_file_pattern(const char *uri)
{
	int fd = pattern_file(24u << 20);

	full_socket_by(uri, file_writer, 24u << 20, fd);
	close(fd);
}

/* State: a tcp: URI, or the name of a UNIX socket to make. */
static void test_write_file(void **state)
{
	const char *where = *state;

	write_file_pattern(strncmp(where, "tcp:", 4) ? unix_uri(where) : where);
}

/* What splice() cannot read is -ENOTSUP with nothing written and no
 * sticky error; a reader that has gone is -EPIPE (or -ECONNRESET) and no
 * SIGPIPE (main() leaves it deadly); a reader that reads nothing is
 * -ETIMEDOUT after the timeout, a stall. */
static void test_write_file_refusals(void **state)
{
	struct pair p;
	const char *uri = unix_uri("refuse.sock");
	uint8_t b[4];
	int fd = pattern_file(16u << 20), efd = eventfd(0, EFD_CLOEXEC), r;
	(void)state;

	assert_true(efd >= 0);
	open_pair(uri, &p);
	struct vfmig_io *io = vfmig_chan_io(p.src);
	assert_int_equal(vfmig_io_write_file(io, efd, 0, 8), -ENOTSUP);
	assert_int_equal(vfmig_io_error(io), 0);
	assert_int_equal(vfmig_io_write_file(io, fd, 1, 3), 0);
	assert_int_equal(vfmig_io_flush(io), 0);
	assert_int_equal(vfmig_io_read(vfmig_chan_io(p.dst), b, 3), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(b[i], pattern((size_t)i + 1));
	/* Past the file's end: nothing to splice is an error, not a hang. */
	assert_int_equal(vfmig_io_write_file(io, fd, 16u << 20, 4), -EIO);
	assert_int_equal(vfmig_chan_close(p.src), -EIO);
	assert_int_equal(vfmig_chan_close(p.dst), 0);

	open_pair(uri, &p);
	io = vfmig_chan_io(p.src);
	assert_int_equal(vfmig_chan_close(p.dst), 0);
	r = vfmig_io_write_file(io, fd, 0, 16u << 20);
	assert_true(r == -EPIPE || r == -ECONNRESET);
	assert_int_equal(vfmig_io_error(io), r);
	assert_int_equal(vfmig_chan_close(p.src), r);

	open_pair(uri, &p);
	io = vfmig_chan_io(p.src);
	vfmig_chan_set_timeout(p.src, 200);
	assert_int_equal(vfmig_io_write_file(io, fd, 0, 16u << 20), -ETIMEDOUT);
	assert_true(vfmig_chan_stalled(p.src));
	assert_int_equal(vfmig_chan_close(p.src), -ETIMEDOUT);
	assert_int_equal(vfmig_chan_close(p.dst), 0);
	close(efd);
	close(fd);
}

struct drain_arg {
	struct vfmig_chan *c;
	uint8_t *buf;
	size_t cap, len;
};

/* Everything the channel carries until the source closes. */
static void *drain(void *p)
{
	struct drain_arg *a = p;
	ssize_t n;

	while ((n = vfmig_io_read(vfmig_chan_io(a->c), a->buf + a->len, a->cap - a->len)) > 0)
		a->len += (size_t)n;
	return NULL;
}

#define FPS 4096u
#define FPAGES 300u

/* A 1.3 stream of two RAM_PAGES_LIVE records from the pages of a memfd
 * (data runs, a zero run, a run above one stream piece). */
static void file_stream(struct vfmig_io *io, int fd, const uint8_t *map, bool from_file,
			bool aside)
{
	const struct vfmig_stream_ram_run runs1[] = {
		{ 0, 10, false, map },
		{ 10 * FPS, 3, true, NULL },
		{ 13 * FPS, 150, false, map + 13 * FPS },
	};
	const struct vfmig_stream_ram_run runs2[] = {
		{ 171 * FPS, 129, false, map + 171 * FPS },
	};
	const struct vfmig_stream_ram_pages rp[] = {
		{ "ram", FPS, 3, runs1, true, fd },
		{ "ram", FPS, 1, runs2, true, fd },
	};
	struct vfmig_stream_writer *w;

	assert_int_equal(vfmig_stream_writer_open_minor(&w, io, VFMIG_STREAM_CSUM_XXH3, 3), 0);
	vfmig_stream_writer_pages_from_file(w, from_file);
	if (aside)
		assert_int_equal(vfmig_stream_writer_sum_aside(w), 0);
	assert_int_equal(vfmig_stream_write_device_list(w, NULL, 0), 0);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(vfmig_stream_write_ram_pages(w, &rp[i]), 0);
	assert_int_equal(vfmig_stream_writer_end(w), 0);
	vfmig_stream_writer_free(w);
	assert_int_equal(vfmig_io_flush(io), 0);
}

/* RAM pages spliced from their memfd over a real socket are the very bytes
 * a writer sends from memory, with and without the checksum thread; a
 * writer whose io cannot splice (memory) falls back and writes them too. */
static void test_pages_from_file(void **state)
{
	struct vfmig_io *mem;
	const uint8_t *ref;
	size_t ref_len;
	const char *uri = unix_uri("pages.sock");
	int fd = memfd_create("chan-pages", MFD_CLOEXEC);
	uint8_t *map;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	(void)state;

	/* Random bytes: pattern() repeats every 512 KiB, a stream piece. */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)FPAGES * FPS), 0);
	map = mmap(NULL, (size_t)FPAGES * FPS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	for (size_t i = 0; i < (size_t)FPAGES * FPS; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(map + i, &x, 8);
	}
	assert_int_equal(vfmig_io_mem_writer(&mem), 0);
	file_stream(mem, fd, map, false, false);
	ref = vfmig_io_mem_data(mem, &ref_len);
	assert_true(ref_len > 289u * FPS); /* every data page is in it */
	for (int aside = 0; aside < 3; aside++) {
		struct vfmig_io *m2 = NULL;
		struct drain_arg d = { .cap = ref_len + 1 };
		struct pair p;
		pthread_t t;

		d.buf = malloc(d.cap);
		assert_non_null(d.buf);
		if (aside == 2) { /* no splice here: from memory */
			assert_int_equal(vfmig_io_mem_writer(&m2), 0);
			file_stream(m2, fd, map, true, false);
			const uint8_t *b = vfmig_io_mem_data(m2, &d.len);
			memcpy(d.buf, b, d.len < d.cap ? d.len : d.cap);
			vfmig_io_close(m2);
		} else {
			open_pair(uri, &p);
			d.c = p.dst;
			assert_int_equal(pthread_create(&t, NULL, drain, &d), 0);
			file_stream(vfmig_chan_io(p.src), fd, map, true, aside == 1);
			assert_int_equal(vfmig_chan_close(p.src), 0);
			pthread_join(t, NULL);
			assert_int_equal(vfmig_chan_close(p.dst), 0);
		}
		assert_int_equal(d.len, ref_len);
		assert_memory_equal(d.buf, ref, ref_len);
		free(d.buf);
	}
	vfmig_io_close(mem);
	munmap(map, (size_t)FPAGES * FPS);
	close(fd);
}

static void test_return_path_timeout(void **state)
{
	struct pair p;
	struct vfmig_rp_msg m;
	struct timespec a, b;
	char err[256];
	(void)state;

	open_pair("tcp:127.0.0.1:0", &p);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(vfmig_chan_rp_recv(p.src, &m, 200, err, sizeof(err)), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 190 && ms < 2000);
	assert_non_null(strstr(err, "timeout"));
	/* A stream read with nothing coming times out too. */
	uint8_t x;
	vfmig_chan_set_timeout(p.dst, 100);
	assert_int_equal(vfmig_io_read(vfmig_chan_io(p.dst), &x, 1), -ETIMEDOUT);
	/* Accept times out when nobody connects. */
	struct vfmig_chan_listener *l;
	struct vfmig_chan *c;
	assert_int_equal(vfmig_chan_listen("tcp:127.0.0.1:0", &l, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_accept(l, 100, &c, err, sizeof(err)), -ETIMEDOUT);
	vfmig_chan_listener_close(l);
	vfmig_chan_close(p.dst);
	vfmig_chan_close(p.src);
}

/* The test plays the destination with a raw socket and sends hand-made
 * frames: a bad checksum, a length above the limit, an unknown type, a NUL
 * inside a text, a frame cut short. */
static void test_return_path_corrupt(void **state)
{
	static const uint8_t bad_crc[] = { 0, 1, 0, 0, 0, 1, 'x', 1, 2, 3, 4 };
	static const uint8_t too_long[] = { 0, 1, 0, 0, 0x10, 1 };
	uint8_t unknown[10] = { 0, 9, 0, 0, 0, 0 }, nul[11] = { 0, 3, 0, 0, 0, 1, 0 };
	uint8_t ok[13] = { 0, 1, 0, 0, 0, 3, 'a', 'b', 'c' };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vfmig_chan *src;
	struct vfmig_rp_msg m;
	char err[256], uri[160];
	int lfd;
	(void)state;

	uLong crc = crc32(0, unknown, 6);
	for (int i = 0; i < 4; i++)
		unknown[6 + i] = (uint8_t)(crc >> (24 - 8 * i));
	crc = crc32(0, nul, 7);
	for (int i = 0; i < 4; i++)
		nul[7 + i] = (uint8_t)(crc >> (24 - 8 * i));
	crc = crc32(0, ok, 9);
	for (int i = 0; i < 4; i++)
		ok[9 + i] = (uint8_t)(crc >> (24 - 8 * i));
	const struct { const uint8_t *f; size_t n; int r; const char *needle; } cases[] = {
		{ ok, sizeof(ok), 0, "" },
		{ bad_crc, sizeof(bad_crc), -EBADMSG, "checksum" },
		{ too_long, sizeof(too_long), -EBADMSG, "length 4097" },
		{ unknown, sizeof(unknown), -EBADMSG, "unknown message type 9" },
		{ nul, sizeof(nul), -EBADMSG, "NUL" },
		{ bad_crc, 5, -ECONNRESET, "closed" },
		{ bad_crc, 8, -ECONNRESET, "closed" },
	};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tmp_path("corrupt.sock"));
	snprintf(uri, sizeof(uri), "unix:%s", sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(vfmig_chan_connect(uri, 2000, &src, err, sizeof(err)), 0);
		int fd = accept(lfd, NULL, NULL);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, cases[i].f, cases[i].n), (ssize_t)cases[i].n);
		close(fd);
		err[0] = 0;
		assert_int_equal(vfmig_chan_rp_recv(src, &m, 2000, err, sizeof(err)), cases[i].r);
		if (!strstr(err, cases[i].needle))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].needle);
		if (cases[i].r == 0)
			assert_string_equal(m.text, "abc");
		vfmig_chan_close(src);
	}
	close(lfd);
}

/* ---- return-path frames in pieces ---- */

/* A return-path frame: type, length, payload, CRC-32. Returns its size. */
static size_t rp_frame(uint8_t *f, uint16_t type, const void *payload, uint32_t len)
{
	f[0] = (uint8_t)(type >> 8);
	f[1] = (uint8_t)type;
	for (int i = 0; i < 4; i++)
		f[2 + i] = (uint8_t)(len >> (24 - 8 * i));
	memcpy(f + 6, payload, len);
	uLong crc = crc32(0, f, 6 + len);
	for (int i = 0; i < 4; i++)
		f[6 + len + i] = (uint8_t)(crc >> (24 - 8 * i));
	return 6 + len + 4;
}

/* A source channel connected to a bare socket that the test holds as the
 * destination end, so that it can send frames a byte at a time. */
static void raw_destination(bool tcp, struct vfmig_chan **src, int *fd)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	char err[256], uri[160];
	int lfd;

	if (tcp) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*in);
	} else {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", tmp_path("raw.sock"));
		unlink(un->sun_path);
		sl = sizeof(*un);
	}
	lfd = socket(ss.ss_family, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(lfd, 1), 0);
	if (tcp) {
		assert_int_equal(getsockname(lfd, (struct sockaddr *)&ss, &sl), 0);
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u",
			 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	} else {
		snprintf(uri, sizeof(uri), "unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
	}
	assert_int_equal(vfmig_chan_connect(uri, 2000, src, err, sizeof(err)), 0);
	*fd = accept(lfd, NULL, NULL);
	assert_true(*fd >= 0);
	close(lfd);
	if (tcp) {
		int one = 1; /* every byte its own segment */
		setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
}

struct trickle_arg {
	int fd;
	const uint8_t *bytes;
	size_t n;
};

/* Send the bytes one at a time with a pause after each. */
static void *trickle(void *p)
{
	struct trickle_arg *a = p;

	for (size_t i = 0; i < a->n; i++) {
		if (write(a->fd, a->bytes + i, 1) != 1)
			break;
		usleep(2000);
	}
	return NULL;
}

/*
 * The destination's frames arrive a byte at a time while the source polls
 * the return path without waiting (timeout 0, as in each pre-copy round):
 * every poll that finds a frame incomplete says "timeout" and keeps what
 * it read, so both frames come out whole and in order.
 */
static void trickled_frames(bool tcp)
{
	static const char ok[] = "ok";
	uint8_t wire[64], resumed[8 + sizeof(ok) - 1];
	struct vfmig_chan *src;
	struct vfmig_rp_msg m;
	struct trickle_arg a;
	struct timespec t0, t;
	pthread_t th;
	char err[256];
	int fd, got = 0, polls = 0;

	raw_destination(tcp, &src, &fd);
	size_t n = rp_frame(wire, VFMIG_RP_SWITCHOVER_ACK, "dev0", 4);
	for (int i = 0; i < 8; i++)
		resumed[i] = (uint8_t)(0x0102030405060708ull >> (56 - 8 * i));
	memcpy(resumed + 8, ok, sizeof(ok) - 1);
	n += rp_frame(wire + n, VFMIG_RP_RESUMED, resumed, sizeof(resumed));
	a = (struct trickle_arg){ .fd = fd, .bytes = wire, .n = n };
	assert_int_equal(pthread_create(&th, NULL, trickle, &a), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got < 2) {
		int r = vfmig_chan_rp_recv(src, &m, 0, err, sizeof(err));
		polls++;
		if (r == -ETIMEDOUT) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec > 10)
				fail_msg("frames not complete after 10 s (%d polls)", polls);
			usleep(500);
			continue;
		}
		if (r != 0)
			fail_msg("poll %d: %d: %s", polls, r, err);
		if (got == 0) {
			assert_int_equal(m.type, VFMIG_RP_SWITCHOVER_ACK);
			assert_string_equal(m.text, "dev0");
		} else {
			assert_int_equal(m.type, VFMIG_RP_RESUMED);
			assert_true(m.timestamp_ns == 0x0102030405060708ull);
			assert_string_equal(m.text, "ok");
		}
		got++;
	}
	pthread_join(th, NULL);
	/* Many polls met a frame in pieces: the test did what it says. */
	assert_true(polls > (int)n);
	close(fd);
	vfmig_chan_close(src);
}

static void test_return_path_trickle_unix(void **state)
{
	(void)state;
	trickled_frames(false);
}

static void test_return_path_trickle_tcp(void **state)
{
	(void)state;
	trickled_frames(true);
}

/*
 * A frame cut by the caller's deadline is kept: the wait ends with
 * -ETIMEDOUT and a message saying the frame was incomplete, and the rest
 * completes it on the next call. A frame that stays incomplete for longer
 * than the channel's timeout is an error (-EPROTO), for good: the peer is
 * stalled mid-frame and the return path cannot be trusted again.
 */
static void test_return_path_partial(void **state)
{
	uint8_t f[64];
	struct vfmig_chan *src;
	struct vfmig_rp_msg m;
	struct timespec t0, t;
	char err[256];
	int fd, r;
	(void)state;

	raw_destination(false, &src, &fd);
	size_t n = rp_frame(f, VFMIG_RP_FAILED, "loading dev0: no", 16);
	assert_int_equal(write(fd, f, 7), 7);
	err[0] = 0;
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 200, err, sizeof(err)), -ETIMEDOUT);
	if (!strstr(err, "incomplete") || !strstr(err, "7 of 26"))
		fail_msg("a frame cut by the deadline: \"%s\"", err);
	assert_int_equal(write(fd, f + 7, n - 7), (ssize_t)(n - 7));
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_FAILED);
	assert_string_equal(m.text, "loading dev0: no");
	/* Nothing pending: the plain timeout message. */
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 0, err, sizeof(err)), -ETIMEDOUT);
	assert_non_null(strstr(err, "no message before the timeout"));

	/* Stalled mid-frame beyond the channel's timeout (300 ms here), while
	 * the caller only polls. */
	vfmig_chan_set_timeout(src, 300);
	assert_int_equal(write(fd, f, 3), 3);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		r = vfmig_chan_rp_recv(src, &m, 0, err, sizeof(err));
		if (r != -ETIMEDOUT)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 5)
			fail_msg("a stalled frame still only times out after 5 s");
		usleep(10000);
	}
	clock_gettime(CLOCK_MONOTONIC, &t);
	long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(r, -EPROTO);
	if (!strstr(err, "stalled") || !strstr(err, "3 of the 6 header bytes"))
		fail_msg("a stalled frame: \"%s\"", err);
	assert_true(ms >= 250 && ms < 3000);
	/* The rest arriving now does not revive it. */
	assert_int_equal(write(fd, f + 3, n - 3), (ssize_t)(n - 3));
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 200, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "stalled"));
	close(fd);
	vfmig_chan_close(src);

	/* A length above the frame limit: refused, and so is every later
	 * call (the next frame's start is unknown). */
	raw_destination(false, &src, &fd);
	static const uint8_t too_long[] = { 0, 1, 0, 0, 0x10, 1, 'x', 'y' };
	assert_int_equal(write(fd, too_long, sizeof(too_long)), (ssize_t)sizeof(too_long));
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 2000, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "length 4097"));
	n = rp_frame(f, VFMIG_RP_SWITCHOVER_ACK, "", 0);
	assert_int_equal(write(fd, f, n), (ssize_t)n);
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 200, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "length 4097"));
	close(fd);
	vfmig_chan_close(src);
}

/* The destination process dies mid-transfer: the source gets an error. */
static void test_peer_killed(void **state)
{
	char uri[160];
	struct vfmig_chan_listener *l;
	struct vfmig_chan *src;
	struct vfmig_rp_msg m;
	char err[256];
	pid_t pid;
	int status;
	(void)state;

	snprintf(uri, sizeof(uri), "unix:%s", tmp_path("killed.sock"));
	assert_int_equal(vfmig_chan_listen(uri, &l, err, sizeof(err)), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vfmig_chan *d;
		uint8_t buf[4096];
		if (vfmig_chan_accept(l, 5000, &d, NULL, 0) < 0)
			_exit(1);
		/* read a little, then die without a word */
		if (vfmig_io_read(vfmig_chan_io(d), buf, sizeof(buf)) != sizeof(buf))
			_exit(2);
		raise(SIGKILL);
		_exit(3);
	}
	assert_int_equal(vfmig_chan_connect(uri, 5000, &src, err, sizeof(err)), 0);
	vfmig_chan_listener_close(l);
	vfmig_chan_set_timeout(src, 5000);
	uint8_t *big = calloc(1, 1u << 20);
	int r = 0;
	for (int i = 0; i < 64 && r == 0; i++) /* 64 MiB: far more than buffers hold */
		r = vfmig_io_write(vfmig_chan_io(src), big, 1u << 20);
	if (r == 0)
		r = vfmig_io_flush(vfmig_chan_io(src));
	free(big);
	assert_true(r == -EPIPE || r == -ECONNRESET);
	/* The error is sticky, and the return path says the peer is gone. */
	assert_int_equal(vfmig_io_error(vfmig_chan_io(src)), r);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	int rr = vfmig_chan_rp_recv(src, &m, 2000, err, sizeof(err));
	assert_true(rr == -EPIPE || rr == -ECONNRESET);
	assert_int_equal(vfmig_chan_close(src), r);
}

/* The source process dies mid-transfer: the destination's read ends (short
 * count: end of input) at once instead of waiting, and sending on the
 * return path to a dead source fails with an error, not a signal. */
static void test_source_killed(void **state)
{
	struct vfmig_chan_listener *l;
	struct vfmig_chan *dst;
	char err[256];
	pid_t pid;
	int status;
	(void)state;

	assert_int_equal(vfmig_chan_listen("tcp:127.0.0.1:0", &l, err, sizeof(err)), 0);
	uint16_t port = vfmig_chan_listener_port(l);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char uri[64];
		struct vfmig_chan *s;
		static uint8_t half[1u << 20];
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%u", port);
		if (vfmig_chan_connect(uri, 5000, &s, NULL, 0) < 0)
			_exit(1);
		vfmig_io_write(vfmig_chan_io(s), half, sizeof(half));
		vfmig_io_flush(vfmig_chan_io(s));
		raise(SIGKILL);
		_exit(3);
	}
	assert_int_equal(vfmig_chan_accept(l, 5000, &dst, err, sizeof(err)), 0);
	vfmig_chan_listener_close(l);
	vfmig_chan_set_timeout(dst, 10000);
	uint8_t *buf = malloc(4u << 20);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	ssize_t n = vfmig_io_read(vfmig_chan_io(dst), buf, 4u << 20);
	clock_gettime(CLOCK_MONOTONIC, &b);
	free(buf);
	assert_int_equal(n, 1u << 20); /* what was sent, then end of input */
	assert_true(b.tv_sec - a.tv_sec < 5);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	int r = 0;
	for (int i = 0; i < 100 && r == 0; i++)
		r = vfmig_chan_rp_ack(dst, "regs0");
	assert_true(r == -EPIPE || r == -ECONNRESET);
	vfmig_chan_close(dst);
}

/* IPv6 loopback, when the host has it. */
static void test_tcp_ipv6(void **state)
{
	struct vfmig_chan_listener *l;
	char err[256];
	(void)state;

	int r = vfmig_chan_listen("tcp:[::1]:0", &l, err, sizeof(err));
	if (r < 0) {
		print_message("no IPv6 loopback here (%s): skipped\n", err);
		skip();
	}
	char uri[64];
	struct vfmig_chan *s, *d;
	snprintf(uri, sizeof(uri), "tcp:[::1]:%u", vfmig_chan_listener_port(l));
	assert_int_equal(vfmig_chan_connect(uri, 2000, &s, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_accept(l, 2000, &d, err, sizeof(err)), 0);
	vfmig_chan_listener_close(l);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(s), "hello", 5), 0);
	assert_int_equal(vfmig_io_flush(vfmig_chan_io(s)), 0);
	char got[5];
	assert_int_equal(vfmig_io_read(vfmig_chan_io(d), got, 5), 5);
	assert_memory_equal(got, "hello", 5);
	assert_int_equal(vfmig_chan_close(s), 0);
	assert_int_equal(vfmig_chan_close(d), 0);
}

static void test_file_round_trip(void **state)
{
	char uri[160];
	struct vfmig_chan *c;
	struct vfmig_rp_msg m;
	uint8_t buf[100000], back[100001];
	char err[256];
	(void)state;

	snprintf(uri, sizeof(uri), "file:%s", tmp_path("stream.bin"));
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i);
	assert_int_equal(vfmig_chan_connect(uri, 0, &c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_kind(c), VFMIG_CHAN_FILE);
	assert_false(vfmig_chan_has_return_path(c));
	assert_int_equal(vfmig_chan_rp_recv(c, &m, 10, err, sizeof(err)), -ENOTSUP);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(c), buf, sizeof(buf)), 0);
	assert_int_equal(vfmig_chan_commit(c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_close(c), 0);

	assert_int_equal(vfmig_chan_open_incoming(uri, 0, &c, err, sizeof(err)), 0);
	assert_false(vfmig_chan_has_return_path(c));
	assert_int_equal(vfmig_chan_rp_ack(c, NULL), -ENOTSUP);
	assert_int_equal(vfmig_io_read(vfmig_chan_io(c), back, sizeof(back)), sizeof(buf));
	assert_memory_equal(buf, back, sizeof(buf));
	assert_int_equal(vfmig_chan_close(c), 0);

	/* Errors name the file. */
	assert_true(vfmig_chan_open_incoming("file:/nonexistent/x", 0, &c, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/x"));
	struct vfmig_chan_listener *l;
	assert_int_equal(vfmig_chan_listen(uri, &l, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not listened on"));
}

/* Names in folder dir, sorted and joined by spaces ("" when empty). */
static const char *listing(const char *dir)
{
	static char out[512];
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	out[0] = '\0';
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.')
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
				 out[0] ? " " : "", names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return out;
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static const char *get_file(const char *path)
{
	static char text[256];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* A file source takes its name only when committed; until then and after
 * a close without commit, the name holds what it held before. */
static void test_file_commit(void **state)
{
	char dir[160], path[200], uri[210], link[200], err[256];
	struct vfmig_chan *c;
	struct stat st;
	(void)state;

	snprintf(dir, sizeof(dir), "%s", tmp_path("commit"));
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/vm.bin", dir);
	snprintf(uri, sizeof(uri), "file:%s", path);

	/* Abandoned: nothing under the name, no temporary left. */
	assert_int_equal(vfmig_chan_connect(uri, 0, &c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(c), "new", 3), 0);
	assert_int_equal(vfmig_io_flush(vfmig_chan_io(c)), 0);
	assert_null(get_file(path));
	assert_non_null(strstr(listing(dir), "vm.bin.tmp."));
	assert_int_equal(vfmig_chan_close(c), 0);
	assert_string_equal(listing(dir), "");

	/* Abandoned over an older file: the older file stays whole. */
	put_file(path, "old");
	assert_int_equal(vfmig_chan_connect(uri, 0, &c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(c), "new", 3), 0);
	assert_string_equal(get_file(path), "old");
	assert_int_equal(vfmig_chan_close(c), 0);
	assert_string_equal(get_file(path), "old");
	assert_string_equal(listing(dir), "vm.bin");

	/* Committed: the new stream replaces it, nothing else remains. */
	assert_int_equal(vfmig_chan_connect(uri, 0, &c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(c), "new", 3), 0);
	assert_int_equal(vfmig_chan_commit(c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_commit(c, err, sizeof(err)), 0);
	assert_string_equal(get_file(path), "new");
	assert_int_equal(vfmig_chan_close(c), 0);
	assert_string_equal(listing(dir), "vm.bin");

	/* Through a symbolic link: the file it names is replaced, the link
	 * stays a link. */
	snprintf(link, sizeof(link), "%s/link.bin", dir);
	assert_int_equal(symlink("vm.bin", link), 0);
	snprintf(uri, sizeof(uri), "file:%s", link);
	assert_int_equal(vfmig_chan_connect(uri, 0, &c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(c), "via", 3), 0);
	assert_int_equal(vfmig_chan_commit(c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_close(c), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_string_equal(get_file(path), "via");
	assert_string_equal(listing(dir), "link.bin vm.bin");

	/* Not a regular file: written in place, never replaced. */
	assert_int_equal(vfmig_chan_connect("file:/dev/null", 0, &c, err,
					    sizeof(err)), 0);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(c), "x", 1), 0);
	assert_int_equal(vfmig_chan_commit(c, err, sizeof(err)), 0);
	assert_int_equal(vfmig_chan_close(c), 0);
	assert_int_equal(stat("/dev/null", &st), 0);
	assert_true(S_ISCHR(st.st_mode));

	/* A write error is sticky, fails the commit and names the file. */
	assert_int_equal(vfmig_chan_connect("file:/dev/full", 0, &c, err,
					    sizeof(err)), 0);
	assert_int_equal(vfmig_io_write(vfmig_chan_io(c), "x", 1), -ENOSPC);
	assert_int_equal(vfmig_chan_commit(c, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "/dev/full"));
	assert_int_equal(vfmig_chan_close(c), -ENOSPC);

	/* A folder that does not exist: refused at once, nothing created. */
	snprintf(uri, sizeof(uri), "file:%s/no/such/vm.bin", dir);
	assert_int_equal(vfmig_chan_connect(uri, 0, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no/such/vm.bin"));
	assert_string_equal(listing(dir), "link.bin vm.bin");
}

/* A frame with its CRC, as a peer puts it on the wire. */
static size_t raw_frame(uint8_t *f, uint16_t type, const char *payload)
{
	size_t len = strlen(payload);
	uint32_t crc;

	f[0] = (uint8_t)(type >> 8);
	f[1] = (uint8_t)type;
	f[2] = f[3] = f[4] = 0;
	f[5] = (uint8_t)len;
	memcpy(f + 6, payload, len);
	crc = (uint32_t)crc32(0, f, (uInt)(6 + len));
	for (int i = 0; i < 4; i++)
		f[6 + len + (size_t)i] = (uint8_t)(crc >> (24 - 8 * i));
	return 6 + len + 4;
}

/* Each side reads only the frames the other one may send: a destination
 * takes COMMIT (empty) and nothing else, a source never takes COMMIT. */
static void test_commit_direction(void **state)
{
	struct vfmig_chan *dst, *src;
	struct vfmig_rp_msg m;
	uint8_t f[64];
	char err[256];
	int sv[2];
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(vfmig_chan_adopt_fd(sv[0], false, VFMIG_CHAN_UNIX, &dst), 0);
	assert_int_equal(write(sv[1], f, raw_frame(f, VFMIG_RP_SWITCHOVER_ACK, "")), 10);
	assert_int_equal(vfmig_chan_rp_recv(dst, &m, 2000, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "SWITCHOVER_ACK message (type 1) from the source"));
	assert_int_equal(write(sv[1], f, raw_frame(f, VFMIG_RP_COMMIT, "x")), 11);
	assert_int_equal(vfmig_chan_rp_recv(dst, &m, 2000, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "COMMIT with 1 bytes"));
	assert_int_equal(write(sv[1], f, raw_frame(f, VFMIG_RP_COMMIT, "")), 10);
	assert_int_equal(vfmig_chan_rp_recv(dst, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_COMMIT);
	/* The source's close: the destination's wait for COMMIT ends. */
	close(sv[1]);
	assert_int_equal(vfmig_chan_rp_recv(dst, &m, 2000, err, sizeof(err)), -ECONNRESET);
	assert_non_null(strstr(err, "the source closed"));
	vfmig_chan_close(dst);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(vfmig_chan_adopt_fd(sv[0], true, VFMIG_CHAN_UNIX, &src), 0);
	assert_int_equal(write(sv[1], f, raw_frame(f, VFMIG_RP_COMMIT, "")), 10);
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 2000, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "COMMIT message (type 6) from the destination"));
	assert_int_equal(write(sv[1], f, raw_frame(f, VFMIG_RP_WAIT_COMMIT, "")), 10);
	assert_int_equal(vfmig_chan_rp_recv(src, &m, 2000, err, sizeof(err)), 0);
	assert_int_equal(m.type, VFMIG_RP_WAIT_COMMIT);
	close(sv[1]);
	vfmig_chan_close(src);
}

static void test_connect_refused(void **state)
{
	struct vfmig_chan *c;
	char err[256], uri[160];
	(void)state;

	snprintf(uri, sizeof(uri), "unix:%s", tmp_path("nobody.sock"));
	assert_int_equal(vfmig_chan_connect(uri, 100, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nobody.sock"));
	assert_int_equal(vfmig_chan_connect("tcp:127.0.0.1:0", 100, &c, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "port 0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_good),
		cmocka_unit_test(test_uri_bad),
		cmocka_unit_test(test_unix_both_ways),
		cmocka_unit_test(test_tcp_both_ways),
		cmocka_unit_test(test_unix_full_socket),
		cmocka_unit_test(test_tcp_full_socket),
		cmocka_unit_test_prestate(test_write_file, "file.sock"),
		cmocka_unit_test_prestate(test_write_file, "tcp:127.0.0.1:0"),
		cmocka_unit_test(test_write_file_refusals),
		cmocka_unit_test(test_pages_from_file),
		cmocka_unit_test(test_return_path_timeout),
		cmocka_unit_test(test_return_path_corrupt),
		cmocka_unit_test(test_return_path_trickle_unix),
		cmocka_unit_test(test_return_path_trickle_tcp),
		cmocka_unit_test(test_return_path_partial),
		cmocka_unit_test(test_peer_killed),
		cmocka_unit_test(test_source_killed),
		cmocka_unit_test(test_tcp_ipv6),
		cmocka_unit_test(test_file_round_trip),
		cmocka_unit_test(test_file_commit),
		cmocka_unit_test(test_commit_direction),
		cmocka_unit_test(test_connect_refused),
	};
	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: none must come */
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	if (tmpdir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			r = r ? r : 1;
	}
	return r;
}
