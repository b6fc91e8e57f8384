/* SPDX-License-Identifier: MIT */
/* Unit tests for the shared protocol code: headers, framing, fds, caps. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/proto.h"

static int sp[2];

static int setup_pair(void **state)
{
	(void)state;
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
}

static int teardown_pair(void **state)
{
	(void)state;
	close(sp[0]);
	close(sp[1]);
	return 0;
}

static void test_header_check(void **state)
{
	(void)state;
	struct vfw_header h = { .msg_size = 16 };

	assert_int_equal(vfw_header_check(&h, 1024), 0);
	h.msg_size = 15;
	assert_int_equal(vfw_header_check(&h, 1024), -EINVAL);
	h.msg_size = 1025;
	assert_int_equal(vfw_header_check(&h, 1024), -EMSGSIZE);
	h.msg_size = 32;
	h.flags = VFW_FLAGS_TYPE_REPLY | VFW_FLAGS_ERROR;
	assert_int_equal(vfw_header_check(&h, 1024), 0);
	h.flags = 0x2; /* type 2 does not exist */
	assert_int_equal(vfw_header_check(&h, 1024), -EINVAL);
	h.flags = 0x40; /* unknown flag bit */
	assert_int_equal(vfw_header_check(&h, 1024), -EINVAL);
	h.flags = VFW_FLAGS_NO_REPLY;
	assert_int_equal(vfw_header_check(&h, 1024), 0);
}

static void test_ranges(void **state)
{
	(void)state;
	assert_true(vfw_range_ok(0, 4096, 4096));
	assert_true(vfw_range_ok(4096, 0, 4096));
	assert_false(vfw_range_ok(4097, 0, 4096));
	assert_false(vfw_range_ok(1, 4096, 4096));
	assert_false(vfw_range_ok(0xfffffffffffffff0ull, 32, 4096));
	assert_false(vfw_range_ok(16, UINT64_MAX, 4096));
	assert_true(vfw_range_within(0x1000, 0x10, 0x1000, 0x1000));
	assert_false(vfw_range_within(0xff0, 0x20, 0x1000, 0x1000));
	assert_false(vfw_range_within(UINT64_MAX, 2, 0, UINT64_MAX));
	assert_true(vfw_range_within(UINT64_MAX - 1, 2, UINT64_MAX - 1, 2));
}

static void test_send_recv_roundtrip(void **state)
{
	(void)state;
	struct vfw_header h = { .msg_id = 7, .command = VFW_CMD_REGION_WRITE };
	uint8_t a[3] = { 1, 2, 3 }, b[5] = { 4, 5, 6, 7, 8 };
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct vfw_msg m;

	assert_int_equal(vfw_msg_send(sp[0], &h, iov, 2, NULL, 0), 0);
	assert_int_equal(h.msg_size, 24);
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), 0);
	assert_int_equal(m.hdr.msg_id, 7);
	assert_int_equal(m.hdr.command, VFW_CMD_REGION_WRITE);
	assert_int_equal(m.len, 8);
	assert_memory_equal(m.payload, "\1\2\3\4\5\6\7\10", 8);
	assert_int_equal(m.nfds, 0);
	vfw_msg_release(&m);
}

static void test_fd_passing(void **state)
{
	(void)state;
	struct vfw_header h = { .command = VFW_CMD_DMA_MAP };
	int pfd[2];
	struct vfw_msg m;
	char c = 0;

	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(vfw_msg_send(sp[0], &h, NULL, 0, &pfd[1], 1), 0);
	close(pfd[1]);
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), 0);
	assert_int_equal(m.nfds, 1);
	int fd = vfw_msg_take_fd(&m, 0);
	assert_true(fd >= 0);
	assert_int_equal(vfw_msg_take_fd(&m, 0), -1);
	vfw_msg_release(&m);
	/* The received fd is the pipe's write end: it still works. */
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	close(fd);
	close(pfd[0]);
}

static void test_too_many_fds_keeps_stream(void **state)
{
	(void)state;
	struct vfw_header h = { .msg_id = 1, .command = VFW_CMD_DMA_MAP };
	uint8_t payload[32] = { 0 };
	struct iovec iov = { payload, sizeof(payload) };
	int fds[3];
	struct vfw_msg m;

	for (int i = 0; i < 3; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(vfw_msg_send(sp[0], &h, &iov, 1, fds, 3), 0);
	h.msg_id = 2;
	assert_int_equal(vfw_msg_send(sp[0], &h, NULL, 0, NULL, 0), 0);
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), -EBADMSG);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(m.hdr.msg_id, 1);
	vfw_msg_release(&m);
	/* The next message is read cleanly: the stream stayed in step. */
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), 0);
	assert_int_equal(m.hdr.msg_id, 2);
	vfw_msg_release(&m);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

static void test_oversized_and_torn(void **state)
{
	(void)state;
	struct vfw_header h = { .msg_size = 1u << 30 };
	struct vfw_msg m;

	assert_int_equal(write(sp[0], &h, sizeof(h)), sizeof(h));
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), -EMSGSIZE);

	/* Header promises 100 bytes, 10 arrive, then the peer closes. */
	h.msg_size = 116;
	uint8_t ten[10] = { 0 };
	assert_int_equal(write(sp[0], &h, sizeof(h)), sizeof(h));
	assert_int_equal(write(sp[0], ten, sizeof(ten)), sizeof(ten));
	shutdown(sp[0], SHUT_WR);
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), -EPIPE);
}

static void test_truncated_header_and_eof(void **state)
{
	(void)state;
	struct vfw_msg m;

	assert_int_equal(write(sp[0], "abcdef", 6), 6);
	shutdown(sp[0], SHUT_WR);
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), -EPIPE);
	assert_int_equal(vfw_msg_recv(sp[1], &m, 4096, 1), -ECONNRESET);
}

static void test_caps_defaults_and_parse(void **state)
{
	(void)state;
	struct vfw_caps c;
	char err[128];
	const char *j = "{\"capabilities\":{\"max_msg_fds\":8,"
			"\"max_data_xfer_size\":65536,\"pgsizes\":4096,"
			"\"unknown_key\":[1,2],\"twin_socket\":{\"supported\":"
			"true},\"migration\":{\"pgsize\":4096,"
			"\"max_bitmap_size\":268435456}}}";

	vfw_caps_defaults(&c);
	assert_int_equal(c.max_msg_fds, 1);
	assert_int_equal(c.max_data_xfer_size, 1 << 20);
	assert_int_equal(c.max_dma_maps, 65535);
	assert_int_equal(c.pgsizes, 4096);
	assert_int_equal(vfw_caps_parse(j, strlen(j), &c, err, sizeof(err)),
			 0);
	assert_int_equal(c.max_msg_fds, 8);
	assert_int_equal(c.max_data_xfer_size, 65536);
	assert_true(c.twin_socket);
	assert_true(c.has_migration);
	assert_int_equal(c.migration_pgsize, 4096);

	/* Empty object and missing "capabilities" keep defaults. */
	vfw_caps_defaults(&c);
	assert_int_equal(vfw_caps_parse("{}", 2, &c, err, sizeof(err)), 0);
	assert_int_equal(c.max_msg_fds, 1);
}

static void expect_bad_caps(const char *j, const char *needle)
{
	struct vfw_caps c;
	char err[128] = "";

	vfw_caps_defaults(&c);
	assert_int_equal(vfw_caps_parse(j, strlen(j), &c, err, sizeof(err)),
			 -EINVAL);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not name \"%s\"", err, needle);
}

static void test_caps_rejects(void **state)
{
	(void)state;
	expect_bad_caps("{\"capabilities\":", "malformed");
	expect_bad_caps("[1]", "not an object");
	expect_bad_caps("{} x", "malformed");
	expect_bad_caps("{\"capabilities\":5}", "capabilities");
	expect_bad_caps("{\"capabilities\":{\"max_msg_fds\":-1}}",
			"max_msg_fds");
	expect_bad_caps("{\"capabilities\":{\"max_msg_fds\":1025}}",
			"max_msg_fds");
	expect_bad_caps("{\"capabilities\":{\"max_msg_fds\":\"8\"}}",
			"max_msg_fds");
	expect_bad_caps("{\"capabilities\":{\"max_data_xfer_size\":0}}",
			"max_data_xfer_size");
	expect_bad_caps("{\"capabilities\":{\"twin_socket\":true}}",
			"twin_socket");
	expect_bad_caps("{\"capabilities\":{\"migration\":{\"pgsize\":-4}}}",
			"pgsize");
	expect_bad_caps("{\"capabilities\":{\"vfmig_mig_info\":{}}}",
			"vfmig_mig_info");
	expect_bad_caps("{\"capabilities\":{\"vfmig_mig_info\":"
			"{\"version\":70000}}}",
			"version");
}

static void test_version_roundtrip(void **state)
{
	(void)state;
	struct vfw_caps in, out;
	uint16_t maj, min;
	size_t len;
	char err[128];

	vfw_caps_defaults(&in);
	in.max_msg_fds = 16;
	in.max_data_xfer_size = 4u << 20;
	in.mig_info_version = 1;
	uint8_t *p = vfw_version_build(0, 2, &in, true, &len);
	assert_non_null(p);
	assert_int_equal(p[len - 1], 0);
	assert_int_equal(vfw_version_parse(p, len, &maj, &min, &out, err,
					   sizeof(err)),
			 0);
	assert_int_equal(maj, 0);
	assert_int_equal(min, 2);
	assert_int_equal(out.max_msg_fds, 16);
	assert_int_equal(out.max_data_xfer_size, 4u << 20);
	assert_true(out.has_migration);
	assert_int_equal(out.mig_info_version, 1);

	/* Without the NUL terminator: refused. */
	assert_int_equal(vfw_version_parse(p, len - 1, &maj, &min, &out, err,
					   sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	free(p);

	/* Bare 4-byte payload: no JSON, defaults. */
	uint8_t bare[4] = { 0, 0, 1, 0 };
	assert_int_equal(vfw_version_parse(bare, 4, &maj, &min, &out, err,
					   sizeof(err)),
			 0);
	assert_int_equal(min, 1);
	assert_int_equal(out.max_msg_fds, 1);
	assert_int_equal(vfw_version_parse(bare, 3, &maj, &min, &out, err,
					   sizeof(err)),
			 -EINVAL);
	/* Data after the NUL: refused. */
	uint8_t extra[] = { 0, 0, 0, 0, '{', '}', 0, 'x', 0 };
	assert_int_equal(vfw_version_parse(extra, sizeof(extra), &maj, &min,
					   &out, err, sizeof(err)),
			 -EINVAL);
}

static void test_command_names(void **state)
{
	(void)state;
	assert_string_equal(vfw_command_name(VFW_CMD_MIG_DATA_WRITE),
			    "MIG_DATA_WRITE");
	assert_string_equal(vfw_command_name(14), "UNKNOWN");
	assert_string_equal(vfw_command_name(0), "UNKNOWN");
	assert_string_equal(vfw_command_name(60000), "UNKNOWN");
}

static int n_logged;
static void count_log(void *priv, int level, const char *msg)
{
	(void)priv;
	(void)level;
	assert_string_equal(msg, "hello 42");
	n_logged++;
}

static void test_logger_levels(void **state)
{
	(void)state;
	struct vfw_logger lg = { count_log, NULL, VFW_LOG_INFO };

	vfw_log(&lg, VFW_LOG_ERR, "hello %d", 42);
	vfw_log(&lg, VFW_LOG_DEBUG, "hello %d", 42); /* dropped */
	vfw_log(NULL, VFW_LOG_ERR, "hello %d", 42);  /* no logger: silent */
	assert_int_equal(n_logged, 1);
}

/* vfw_unix_listen: connectable as soon as it exists, replaces only a stale
 * socket, leaves no temporary file behind. */
static void test_unix_listen(void **state)
{
	(void)state;
	char dir[] = "/tmp/vfmig-listen-XXXXXX", path[64], longp[200];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, fd2, c;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	fd = vfw_unix_listen(path, 1, 0);
	assert_true(fd >= 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(c);
	/* A second listener replaces the (now stale) socket file. */
	fd2 = vfw_unix_listen(path, 1, SOCK_NONBLOCK);
	assert_true(fd2 >= 0);
	assert_true(fcntl(fd2, F_GETFL) & O_NONBLOCK);
	close(fd);
	close(fd2);
	assert_int_equal(unlink(path), 0);
	/* Only the socket was ever in the directory. */
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* A regular file is never replaced. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vfw_unix_listen(path, 1, 0), -EADDRINUSE);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(path);
	rmdir(dir);
	/* Paths that cannot be a socket address. */
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	assert_int_equal(vfw_unix_listen(longp, 1, 0), -EINVAL);
	assert_int_equal(vfw_unix_listen("", 1, 0), -EINVAL);
	assert_int_equal(vfw_unix_listen(NULL, 1, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_check),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test_setup_teardown(test_send_recv_roundtrip,
						setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_fd_passing, setup_pair,
						teardown_pair),
		cmocka_unit_test_setup_teardown(test_too_many_fds_keeps_stream,
						setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_oversized_and_torn,
						setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_truncated_header_and_eof,
						setup_pair, teardown_pair),
		cmocka_unit_test(test_caps_defaults_and_parse),
		cmocka_unit_test(test_caps_rejects),
		cmocka_unit_test(test_version_roundtrip),
		cmocka_unit_test(test_command_names),
		cmocka_unit_test(test_logger_levels),
		cmocka_unit_test(test_unix_listen),
	};
	return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
