/* SPDX-License-Identifier: MIT */
/*
 * Integration: the regs sample device runs in a forked child on a real
 * UNIX socket; a hostile client sends malformed, lying and out-of-range
 * messages and checks that each is answered with an error reply or a
 * closed connection, and that the server keeps serving afterwards. A few
 * positive checks (DMA both ways, MSI-X delivery, mmap of BAR2) ride along.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/proto.h"
#include "regs.h"
#include "regs_hw.h"
#include "strict_client.h"

#define RECV_MAX (2u << 20)
static char dir[64], sock_path[128];
static pid_t child = -1;
static bool server_failed; /* cmocka ignores a failing group teardown */
static uint16_t next_id = 1;
static int open_conns[8];
static size_t n_open;

/* Connections are tracked so a failed test does not leave the
 * single-client server busy with a dead test's socket. */
static void xclose(int fd)
{
	for (size_t i = 0; i < n_open; i++)
		if (open_conns[i] == fd)
			open_conns[i] = open_conns[--n_open];
	close(fd);
}

static int close_conns(void **state)
{
	(void)state;
	while (n_open)
		xclose(open_conns[0]);
	return 0;
}

/* ---- plumbing ---- */

static int conn(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, sock_path);
	for (int i = 0; i < 500; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			assert_true(n_open < 8);
			open_conns[n_open++] = fd;
			return fd;
		}
		xclose(fd);
		usleep(10000);
	}
	fail_msg("cannot connect to %s", sock_path);
	return -1;
}

static void xsend_fds(int fd, uint16_t cmd, const void *p, size_t len,
		      const int *fds, size_t nfds)
{
	struct vfw_header h = { .msg_id = next_id++, .command = cmd };
	struct iovec iov = { (void *)p, len };
	assert_int_equal(vfw_msg_send(fd, &h, &iov, len ? 1 : 0, fds, nfds), 0);
}

static void xsend(int fd, uint16_t cmd, const void *p, size_t len)
{
	xsend_fds(fd, cmd, p, len, NULL, 0);
}

static void raw(int fd, const void *p, size_t len)
{
	assert_int_equal(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

static int xrecv(int fd, struct vfw_msg *m)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		fail_msg("server did not answer within 5 s");
	return vfw_msg_recv(fd, m, RECV_MAX, 16);
}

/* Receive a non-error reply to cmd; payload stays in *m. */
static void expect_ok(int fd, uint16_t cmd, struct vfw_msg *m)
{
	assert_int_equal(xrecv(fd, m), 0);
	if (m->hdr.flags & VFW_FLAGS_ERROR)
		fail_msg("cmd %u: error reply %u", cmd, m->hdr.error);
	if (m->hdr.command != cmd)
		fail_msg("reply to cmd %u, expected %u", m->hdr.command, cmd);
	assert_int_equal(m->hdr.command, cmd);
	assert_int_equal(m->hdr.flags & VFW_FLAGS_TYPE_MASK, VFW_FLAGS_TYPE_REPLY);
}

static void expect_err(int fd, int err)
{
	struct vfw_msg m;
	assert_int_equal(xrecv(fd, &m), 0);
	assert_true(m.hdr.flags & VFW_FLAGS_ERROR);
	if (err && (int)m.hdr.error != err)
		fail_msg("error %u, expected %d", m.hdr.error, err);
	assert_int_equal(m.len, 0);
	vfw_msg_release(&m);
}

/* An error reply is allowed before the close; any other reply is not. */
static void expect_closed(int fd)
{
	for (int i = 0; i < 2; i++) {
		struct vfw_msg m;
		int r = xrecv(fd, &m);
		if (r == -ECONNRESET || r == -EPIPE)
			return;
		assert_int_equal(r, 0);
		assert_true(m.hdr.flags & VFW_FLAGS_ERROR);
		vfw_msg_release(&m);
	}
	fail_msg("connection not closed");
}

static void send_version(int fd, uint16_t major, const char *json)
{
	uint8_t buf[512];
	struct vfw_version v = { major, 0 };
	size_t n = sizeof(v);
	memcpy(buf, &v, sizeof(v));
	if (json) {
		memcpy(buf + n, json, strlen(json) + 1);
		n += strlen(json) + 1;
	}
	xsend(fd, VFW_CMD_VERSION, buf, n);
}

static int handshake(void)
{
	int fd = conn();
	struct vfw_msg m;
	struct vfw_caps caps;
	uint16_t major, minor;
	char err[128];

	send_version(fd, 0, "{\"capabilities\":{\"max_msg_fds\":8,"
			    "\"max_data_xfer_size\":1048576,"
			    "\"twin_socket\":{\"supported\":true}}}");
	expect_ok(fd, VFW_CMD_VERSION, &m);
	assert_int_equal(vfw_version_parse(m.payload, m.len, &major, &minor,
					   &caps, err, sizeof(err)), 0);
	assert_int_equal(major, 0);
	assert_true(minor <= VFW_VERSION_MINOR);
	assert_false(caps.twin_socket);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_int_equal(caps.max_data_xfer_size, 1u << 20);
	vfw_msg_release(&m);
	return fd;
}

static void get_info(int fd)
{
	struct vfw_device_info info = { .argsz = sizeof(info) };
	struct vfw_msg m;
	xsend(fd, VFW_CMD_DEVICE_GET_INFO, &info, sizeof(info));
	expect_ok(fd, VFW_CMD_DEVICE_GET_INFO, &m);
	assert_int_equal(m.len, sizeof(info));
	memcpy(&info, m.payload, sizeof(info));
	assert_int_equal(info.num_regions, 9);
	assert_int_equal(info.num_irqs, 5);
	assert_int_equal(info.flags, VFW_DEVICE_FLAGS_RESET | VFW_DEVICE_FLAGS_PCI);
	vfw_msg_release(&m);
}

static void still_serving(void)
{
	int fd = handshake();
	get_info(fd);
	xclose(fd);
}

static void region_rw(int fd, uint32_t region, uint64_t off, void *buf,
		      uint32_t count, bool is_write)
{
	uint8_t msg[64];
	struct vfw_region_access a = { off, region, count };
	struct vfw_msg m;
	memcpy(msg, &a, sizeof(a));
	if (is_write)
		memcpy(msg + sizeof(a), buf, count);
	xsend(fd, is_write ? VFW_CMD_REGION_WRITE : VFW_CMD_REGION_READ, msg,
	      sizeof(a) + (is_write ? count : 0));
	expect_ok(fd, is_write ? VFW_CMD_REGION_WRITE : VFW_CMD_REGION_READ, &m);
	assert_int_equal(m.len, sizeof(a) + (is_write ? 0 : count));
	if (!is_write)
		memcpy(buf, m.payload + sizeof(a), count);
	vfw_msg_release(&m);
}

/* Registers and config space are little-endian, whatever the host. */
static void w32(int fd, uint32_t region, uint64_t off, uint32_t v)
{
	uint32_t le = htole32(v);
	region_rw(fd, region, off, &le, 4, true);
}

static uint32_t r32(int fd, uint32_t region, uint64_t off)
{
	uint32_t le;
	region_rw(fd, region, off, &le, 4, false);
	return le32toh(le);
}

static void region_err(int fd, uint16_t cmd, uint64_t off, uint32_t region,
		       uint32_t count, size_t extra)
{
	uint8_t msg[64] = { 0 };
	struct vfw_region_access a = { off, region, count };
	memcpy(msg, &a, sizeof(a));
	xsend(fd, cmd, msg, sizeof(a) + extra);
	expect_err(fd, EINVAL);
}

static void dma_map(int fd, uint64_t addr, uint64_t size, int mfd, int err)
{
	struct vfw_dma_map d = { sizeof(d), VFW_DMA_READABLE | VFW_DMA_WRITEABLE,
				 0, addr, size };
	struct vfw_msg m;
	xsend_fds(fd, VFW_CMD_DMA_MAP, &d, sizeof(d), &mfd, mfd >= 0 ? 1 : 0);
	if (err) {
		expect_err(fd, err);
		return;
	}
	expect_ok(fd, VFW_CMD_DMA_MAP, &m);
	assert_int_equal(m.len, 0);
	vfw_msg_release(&m);
}


static void dma_program(int fd, uint64_t addr, uint32_t len)
{
	w32(fd, 0, REG_DMA_ADDR_LO, (uint32_t)addr);
	w32(fd, 0, REG_DMA_ADDR_HI, (uint32_t)(addr >> 32));
	w32(fd, 0, REG_DMA_LEN, len);
}

/* ---- fixture: the server child ---- */

static int start_server(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/vfmig-hostile-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/regs.sock", dir);
	fflush(NULL);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* VFMIG_TEST_VERBOSE=1 shows the server's log */
		char *argv[] = { "regs", "--socket-path", sock_path,
				 getenv("VFMIG_TEST_VERBOSE") ? "--verbose"
							      : "--quiet",
				 NULL };
		exit(vfmig_sample_regs_main(4, argv)); /* exit: LSan checks the server */
	}
	return 0;
}

static int stop_server(void **state)
{
	int status = 0;
	(void)state;
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, &status, 0);
	}
	unlink(sock_path);
	rmdir(dir);
	/* a clean exit 0 proves the server neither crashed nor failed */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "server exit status 0x%x\n", status);
		server_failed = true;
		return -1;
	}
	return 0;
}

/* ---- hostile framing ---- */

static void test_truncated_header(void **state)
{
	(void)state;
	int fd = conn();
	raw(fd, "\x01\x00\x01\x00\x20\x00\x00\x00", 8);
	xclose(fd);
	still_serving();
}

static void test_short_body(void **state)
{
	(void)state;
	int fd = handshake();
	struct vfw_header h = { .msg_id = 9, .command = VFW_CMD_DEVICE_GET_INFO,
				.msg_size = 16 + 100 };
	raw(fd, &h, sizeof(h));
	raw(fd, "0123456789", 10);
	shutdown(fd, SHUT_WR);
	expect_closed(fd);
	xclose(fd);
	still_serving();
}

static void test_bad_headers(void **state)
{
	static const struct vfw_header bad[] = {
		{ 1, VFW_CMD_DEVICE_GET_INFO, 0x7fffffff, 0, 0 }, /* too big */
		{ 1, VFW_CMD_DEVICE_GET_INFO, 8, 0, 0 },          /* < 16 */
		{ 1, VFW_CMD_DEVICE_GET_INFO, 32, 0x100, 0 },     /* flags */
		{ 1, VFW_CMD_DEVICE_GET_INFO, 32, 0x7, 0 },       /* type */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = handshake();
		raw(fd, &bad[i], sizeof(bad[i]));
		expect_closed(fd);
		xclose(fd);
	}
	still_serving();
}

static void test_unknown_commands(void **state)
{
	(void)state;
	int fd = handshake();
	const uint16_t cmds[] = { 0, 14, 19, 99, 0xffff };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		xsend(fd, cmds[i], "abcd", 4);
		expect_err(fd, ENOTSUP);
	}
	struct vfw_dma_access a = { 0, 4 };
	xsend(fd, VFW_CMD_DMA_READ, &a, sizeof(a)); /* server->client only */
	expect_err(fd, EINVAL);
	/* DEVICE_FEATURE / MIG_DATA: regs migrates (STOP_COPY only) */
	struct vfw_device_feature f = { 16, VFW_FEATURE_PROBE | VFW_FEATURE_GET | 1 };
	struct vfw_msg m;
	xsend(fd, VFW_CMD_DEVICE_FEATURE, &f, sizeof(f));
	expect_ok(fd, VFW_CMD_DEVICE_FEATURE, &m);
	vfw_msg_release(&m);
	f.flags = VFW_FEATURE_PROBE | VFW_FEATURE_SET | 1; /* GET only */
	xsend(fd, VFW_CMD_DEVICE_FEATURE, &f, sizeof(f));
	expect_err(fd, EINVAL);
	f.flags = VFW_FEATURE_GET | VFW_FEATURE_SET | 1;
	xsend(fd, VFW_CMD_DEVICE_FEATURE, &f, sizeof(f));
	expect_err(fd, EINVAL);
	f.flags = VFW_FEATURE_GET | 0x1234; /* unknown feature */
	xsend(fd, VFW_CMD_DEVICE_FEATURE, &f, sizeof(f));
	expect_err(fd, ENOTSUP);
	f.flags = VFW_FEATURE_GET | VFW_FEATURE_MIG_DATA_SIZE; /* not negotiated */
	xsend(fd, VFW_CMD_DEVICE_FEATURE, &f, sizeof(f));
	expect_err(fd, ENOTSUP);
	struct vfw_mig_data md = { 8 + 64, 64 };
	xsend(fd, VFW_CMD_MIG_DATA_READ, &md, sizeof(md)); /* RUNNING */
	expect_err(fd, EINVAL);
	xsend(fd, VFW_CMD_MIG_DATA_WRITE, &md, sizeof(md)); /* size lies */
	expect_err(fd, EINVAL);
	get_info(fd);
	xclose(fd);
}

/* DEVICE_FEATURE with data; expects err (0: an OK reply, released). */
static void feature(int fd, uint32_t flags, uint32_t argsz, const void *data,
		    size_t len, int err)
{
	uint8_t buf[8 + 64];
	struct vfw_device_feature f = { argsz, flags };
	struct vfw_msg m;

	assert_true(len <= 64);
	memcpy(buf, &f, 8);
	if (len)
		memcpy(buf + 8, data, len);
	xsend(fd, VFW_CMD_DEVICE_FEATURE, buf, 8 + len);
	if (err) {
		expect_err(fd, err);
		return;
	}
	expect_ok(fd, VFW_CMD_DEVICE_FEATURE, &m);
	vfw_msg_release(&m);
}

/* Hostile migration requests against the real regs process. */
static void test_hostile_migration(void **state)
{
	const uint32_t SET = VFW_FEATURE_SET, GET = VFW_FEATURE_GET;
	(void)state;
	int fd = handshake();
	struct vfw_mig_device_state st = { 0xffffffff, 0 };

	feature(fd, SET | 2, 16, &st, 7, EINVAL);  /* short data */
	feature(fd, SET | 2, 16, &st, 8, EINVAL);  /* no such state */
	st.device_state = 5;                        /* RUNNING_P2P */
	feature(fd, SET | 2, 16, &st, 8, EINVAL);
	st.device_state = 6;                        /* no PRE_COPY */
	feature(fd, SET | 2, 16, &st, 8, EINVAL);
	feature(fd, GET | 2, 12, NULL, 0, EINVAL);  /* argsz too small */
	/* DMA logging: absurd sizes are refused without a huge allocation */
	struct { uint64_t pg; uint32_t n, r; uint64_t iova, len; } ls =
		{ 4096, 0xffffffff, 0, 0, 0 };
	feature(fd, SET | 6, 40, &ls, 16, E2BIG);
	ls.n = 2; /* claims two, carries one */
	feature(fd, SET | 6, 40, &ls, sizeof(ls), EINVAL);
	ls = (typeof(ls)){ 4096, 1, 0, 0, 1ull << 62 };
	feature(fd, SET | 6, 40, &ls, sizeof(ls), E2BIG);
	ls = (typeof(ls)){ 1ull << 40, 1, 0, 0, 1ull << 40 };
	/* A page size past 1 GiB is a hint the device answers with 1 GiB. */
	feature(fd, SET | 6, 40, &ls, sizeof(ls), 0);
	feature(fd, SET | 7, 8, NULL, 0, 0);
	ls = (typeof(ls)){ 4096, 1, 0, 0, 64ull << 30 };
	feature(fd, SET | 6, 40, &ls, sizeof(ls), 0);
	struct vfw_dma_logging_report rq = { 0, 64ull << 30, 4096 };
	feature(fd, GET | 8, 0xffffffff, &rq, sizeof(rq), E2BIG); /* > 1 MiB */
	rq = (struct vfw_dma_logging_report){ 4096, UINT64_MAX, 4096 };
	feature(fd, GET | 8, 0xffffffff, &rq, sizeof(rq), EOVERFLOW);
	feature(fd, SET | 7, 8, NULL, 0, 0);
	/* Garbage into RESUMING: the load is refused, the device survives. */
	st.device_state = 4;
	feature(fd, SET | 2, 16, &st, 8, 0);
	uint8_t junk[8 + 100];
	struct vfw_mig_data md = { sizeof(junk), 100 };
	memset(junk, 0x5a, sizeof(junk));
	memcpy(junk, &md, 8);
	xsend(fd, VFW_CMD_MIG_DATA_WRITE, junk, sizeof(junk));
	struct vfw_msg m;
	expect_ok(fd, VFW_CMD_MIG_DATA_WRITE, &m);
	assert_int_equal(m.len, 0);
	vfw_msg_release(&m);
	st.device_state = 2;
	feature(fd, SET | 2, 16, &st, 8, EINVAL);
	xsend(fd, VFW_CMD_DEVICE_RESET, NULL, 0);
	expect_ok(fd, VFW_CMD_DEVICE_RESET, &m);
	vfw_msg_release(&m);
	/* STOP_COPY: a zero-size read is fine, gated commands are refused. */
	st.device_state = 3;
	feature(fd, SET | 2, 16, &st, 8, 0);
	md = (struct vfw_mig_data){ 8, 0 };
	xsend(fd, VFW_CMD_MIG_DATA_READ, &md, sizeof(md));
	expect_ok(fd, VFW_CMD_MIG_DATA_READ, &m);
	assert_int_equal(m.len, 8);
	vfw_msg_release(&m);
	struct vfw_irq_set is = { 20, VFW_IRQ_SET_DATA_NONE |
				  VFW_IRQ_SET_ACTION_TRIGGER, 2, 0, 1 };
	xsend(fd, VFW_CMD_DEVICE_SET_IRQS, &is, sizeof(is));
	expect_err(fd, EINVAL);
	st.device_state = 2;
	feature(fd, SET | 2, 16, &st, 8, 0);
	get_info(fd);
	xclose(fd);
}

static void test_lying_sizes(void **state)
{
	(void)state;
	int fd = handshake();
	struct vfw_region_info ri = { .argsz = 8, .index = 0 };
	xsend(fd, VFW_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri));
	expect_err(fd, EINVAL);
	ri.argsz = 64;
	xsend(fd, VFW_CMD_DEVICE_GET_REGION_INFO, &ri, 16); /* short payload */
	expect_err(fd, EINVAL);
	ri.index = 9;
	xsend(fd, VFW_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri));
	expect_err(fd, EINVAL);
	struct vfw_irq_set s = { 1000, VFW_IRQ_SET_DATA_NONE |
				 VFW_IRQ_SET_ACTION_TRIGGER, 2, 0, 1 };
	xsend(fd, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
	expect_err(fd, EINVAL);
	s = (struct vfw_irq_set){ 20, VFW_IRQ_SET_DATA_NONE |
				  VFW_IRQ_SET_ACTION_MASK, 2, 0xfffffffe, 4 };
	xsend(fd, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
	expect_err(fd, EINVAL);
	struct vfw_irq_info ii = { 16, 0, 7, 0 };
	xsend(fd, VFW_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii));
	expect_err(fd, EINVAL);
	struct vfw_dma_unmap u = { 0, 0, 0x1000, 0x1000 };
	xsend(fd, VFW_CMD_DMA_UNMAP, &u, sizeof(u));
	expect_err(fd, EINVAL);
	uint64_t cnt = 1ull << 60; /* REGION_WRITE_MULTI count overflow */
	xsend(fd, VFW_CMD_REGION_WRITE_MULTI, &cnt, sizeof(cnt));
	expect_err(fd, EINVAL);
	xsend(fd, VFW_CMD_DEVICE_RESET, "x", 1);
	expect_err(fd, EINVAL);
	get_info(fd);
	xclose(fd);
}

static void test_region_ranges(void **state)
{
	(void)state;
	int fd = handshake();
	region_err(fd, VFW_CMD_REGION_READ, 0xfffffffffffffff0ull, 0, 32, 0);
	region_err(fd, VFW_CMD_REGION_READ, 0xfffffffffffffff0ull, 2, 32, 0);
	region_err(fd, VFW_CMD_REGION_READ, 0, 99, 4, 0);
	region_err(fd, VFW_CMD_REGION_READ, 0, 6, 4, 0); /* no ROM */
	region_err(fd, VFW_CMD_REGION_READ, 4090, 7, 16, 0);
	region_err(fd, VFW_CMD_REGION_READ, 0, 2, 2u << 20, 0);
	region_err(fd, VFW_CMD_REGION_READ, 0, 0, 4, 4); /* trailing bytes */
	region_err(fd, VFW_CMD_REGION_WRITE, 0, 0, 32, 4); /* short data */
	region_err(fd, VFW_CMD_REGION_WRITE, 4096, 0, 0, 0);
	region_err(fd, VFW_CMD_REGION_READ, 0, 0, 2, 0); /* regs: 4-byte only */
	/* valid accesses still work */
	assert_int_equal(r32(fd, 0, REG_ID), REGS_MAGIC);
	assert_int_equal(r32(fd, 7, 0), 0x10001b36);
	w32(fd, 0, 0x10, 0xcafe);
	assert_int_equal(r32(fd, 0, 0x10), 0xcafe);
	/* REGION_WRITE_MULTI: two posted writes */
	uint8_t wm[8 + 48] = { 0 };
	uint64_t cnt = 2;
	struct vfw_write_multi_entry e = { 0x14, 0, 4, { 1, 2, 3, 4 } };
	memcpy(wm, &cnt, 8);
	memcpy(wm + 8, &e, sizeof(e));
	e.offset = 0x44; /* doorbell */
	memcpy(wm + 32, &e, sizeof(e));
	uint32_t before = r32(fd, 0, 0x40);
	xsend(fd, VFW_CMD_REGION_WRITE_MULTI, wm, sizeof(wm));
	struct vfw_msg m;
	expect_ok(fd, VFW_CMD_REGION_WRITE_MULTI, &m);
	vfw_msg_release(&m);
	assert_int_equal(r32(fd, 0, 0x14), 0x04030201);
	assert_int_equal(r32(fd, 0, 0x40), before + 1);
	xclose(fd);
	still_serving();
}

static void test_fds(void **state)
{
	(void)state;
	int fd = handshake();
	int efds[9];
	for (int i = 0; i < 9; i++)
		efds[i] = eventfd(0, EFD_CLOEXEC);
	/* 9 fds: more than the 8 the server advertised */
	struct vfw_irq_set s = { 20, VFW_IRQ_SET_DATA_EVENTFD |
				 VFW_IRQ_SET_ACTION_TRIGGER, 2, 0, 4 };
	xsend_fds(fd, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s), efds, 9);
	expect_err(fd, EINVAL);
	/* an fd where none is expected */
	struct vfw_device_info info = { .argsz = 16 };
	xsend_fds(fd, VFW_CMD_DEVICE_GET_INFO, &info, sizeof(info), efds, 1);
	expect_err(fd, EINVAL);
	/* fd count does not match count */
	xsend_fds(fd, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s), efds, 3);
	expect_err(fd, EINVAL);
	get_info(fd);
	for (int i = 0; i < 9; i++)
		close(efds[i]);
	xclose(fd);
	still_serving();
}

static void test_bad_version(void **state)
{
	(void)state;
	int fd = conn();
	send_version(fd, 0, "{\"capabilities\": {\"max_msg_fds\": ");
	expect_closed(fd);
	xclose(fd);
	fd = conn();
	send_version(fd, 0, "{\"capabilities\":{\"max_msg_fds\":-5}}");
	expect_closed(fd);
	xclose(fd);
	fd = conn();
	send_version(fd, 1, NULL);
	expect_closed(fd);
	xclose(fd);
	fd = conn();
	struct vfw_device_info info = { .argsz = 16 };
	xsend(fd, VFW_CMD_DEVICE_GET_INFO, &info, sizeof(info));
	expect_closed(fd);
	xclose(fd);
	fd = conn();
	xsend(fd, VFW_CMD_VERSION, "ab", 2); /* short payload */
	expect_closed(fd);
	xclose(fd);
	fd = handshake();
	send_version(fd, 0, NULL); /* twice: refused, connection stays */
	expect_err(fd, EINVAL);
	get_info(fd);
	xclose(fd);
	still_serving();
}

/* ---- DMA ---- */

static void test_dma_unmapped(void **state)
{
	(void)state;
	int fd = handshake();
	dma_program(fd, 0xdead0000, 64);
	w32(fd, 0, REG_DMA_CMD, 1);
	assert_int_equal(r32(fd, 0, REG_DMA_STATUS), 3);
	assert_int_equal(r32(fd, 0, REG_DMA_ERROR), EFAULT);
	/* window bookkeeping */
	dma_map(fd, 0x100000, 0x2000, -1, 0);
	dma_map(fd, 0x101000, 0x2000, -1, EEXIST);
	dma_map(fd, 0x200001, 0x1000, -1, EINVAL);
	dma_map(fd, 0xfffffffffffff000ull, 0x2000, -1, EINVAL);
	/* straddles the end of the window */
	dma_program(fd, 0x101ff0, 32);
	w32(fd, 0, REG_DMA_CMD, 2);
	assert_int_equal(r32(fd, 0, REG_DMA_ERROR), EFAULT);
	/* memfd smaller than the window */
	int mfd = memfd_create("small", MFD_CLOEXEC);
	assert_int_equal(ftruncate(mfd, 0x1000), 0);
	dma_map(fd, 0x400000, 0x2000, mfd, EINVAL);
	close(mfd);
	struct vfw_dma_unmap u = { 24, 0, 0x100000, 0x1000 };
	xsend(fd, VFW_CMD_DMA_UNMAP, &u, sizeof(u));
	expect_err(fd, ENOENT);
	u.size = 0x2000;
	u.flags = 2;
	xsend(fd, VFW_CMD_DMA_UNMAP, &u, sizeof(u));
	expect_err(fd, EINVAL);
	u.flags = 0;
	struct vfw_msg m;
	xsend(fd, VFW_CMD_DMA_UNMAP, &u, sizeof(u));
	expect_ok(fd, VFW_CMD_DMA_UNMAP, &m);
	assert_int_equal(m.len, sizeof(u));
	vfw_msg_release(&m);
	xclose(fd);
	still_serving();
}

static void test_dma_messages(void **state)
{
	(void)state;
	int fd = handshake();
	struct vfw_msg m;
	struct vfw_dma_access a;
	uint8_t data[48];

	dma_map(fd, 0x100000, 0x2000, -1, 0);
	/* fill: the server sends DMA_WRITE to us */
	dma_program(fd, 0x100010, 48);
	w32(fd, 0, REG_DMA_PATTERN, 5);
	uint8_t msg[16 + 4] = { 0 };
	struct vfw_region_access ra = { REG_DMA_CMD, 0, 4 };
	memcpy(msg, &ra, sizeof(ra));
	msg[16] = 2;
	xsend(fd, VFW_CMD_REGION_WRITE, msg, sizeof(msg));
	assert_int_equal(xrecv(fd, &m), 0);
	assert_int_equal(m.hdr.command, VFW_CMD_DMA_WRITE);
	assert_int_equal(m.len, 16 + 48);
	memcpy(&a, m.payload, sizeof(a));
	assert_int_equal(a.address, 0x100010);
	assert_int_equal(a.count, 48);
	for (int i = 0; i < 48; i++)
		assert_int_equal(m.payload[16 + i], (uint8_t)(5 + i));
	assert_int_equal(vfw_send_reply(fd, &m.hdr, NULL, 0), 0); /* QEMU style */
	vfw_msg_release(&m);
	expect_ok(fd, VFW_CMD_REGION_WRITE, &m);
	vfw_msg_release(&m);
	assert_int_equal(r32(fd, 0, REG_DMA_STATUS), 1);
	/* checksum: the server sends DMA_READ; pipeline a GET_INFO meanwhile */
	msg[16] = 1;
	xsend(fd, VFW_CMD_REGION_WRITE, msg, sizeof(msg));
	assert_int_equal(xrecv(fd, &m), 0);
	assert_int_equal(m.hdr.command, VFW_CMD_DMA_READ);
	struct vfw_device_info info = { .argsz = 16 };
	xsend(fd, VFW_CMD_DEVICE_GET_INFO, &info, sizeof(info));
	for (int i = 0; i < 48; i++)
		data[i] = (uint8_t)(i * 7);
	memcpy(&a, m.payload, sizeof(a));
	uint8_t rep[16 + 48];
	memcpy(rep, &a, 16);
	memcpy(rep + 16, data, 48);
	assert_int_equal(vfw_send_reply(fd, &m.hdr, rep, sizeof(rep)), 0);
	vfw_msg_release(&m);
	expect_ok(fd, VFW_CMD_REGION_WRITE, &m); /* in order */
	vfw_msg_release(&m);
	expect_ok(fd, VFW_CMD_DEVICE_GET_INFO, &m);
	vfw_msg_release(&m);
	assert_int_equal(r32(fd, 0, REG_DMA_RESULT), regs_fnv1a(data, 48));
	/* an error reply to DMA_READ fails the DMA with EIO */
	xsend(fd, VFW_CMD_REGION_WRITE, msg, sizeof(msg));
	assert_int_equal(xrecv(fd, &m), 0);
	assert_int_equal(vfw_send_error(fd, &m.hdr, EFAULT), 0);
	vfw_msg_release(&m);
	expect_ok(fd, VFW_CMD_REGION_WRITE, &m);
	vfw_msg_release(&m);
	assert_int_equal(r32(fd, 0, REG_DMA_ERROR), EIO);
	xclose(fd);
	still_serving();
}

static void test_dma_fd_and_mmap(void **state)
{
	(void)state;
	int fd = handshake();
	int mfd = memfd_create("guest", MFD_CLOEXEC);
	struct vfw_msg m;

	assert_int_equal(ftruncate(mfd, 0x4000), 0);
	uint8_t *g = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	assert_true(g != MAP_FAILED);
	dma_map(fd, 0x200000, 0x4000, mfd, 0);
	dma_program(fd, 0x200100, 64);
	w32(fd, 0, REG_DMA_PATTERN, 0x10);
	w32(fd, 0, REG_DMA_CMD, 2);
	assert_int_equal(r32(fd, 0, REG_DMA_STATUS), 1);
	for (int i = 0; i < 64; i++)
		assert_int_equal(g[0x100 + i], (uint8_t)(0x10 + i));
	w32(fd, 0, REG_DMA_CMD, 1);
	assert_int_equal(r32(fd, 0, REG_DMA_RESULT), regs_fnv1a(g + 0x100, 64));

	/* BAR2: truncated region info first, then the full one with an fd */
	struct vfw_region_info ri = { .argsz = 32, .index = 2 };
	xsend(fd, VFW_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri));
	expect_ok(fd, VFW_CMD_DEVICE_GET_REGION_INFO, &m);
	assert_int_equal(m.len, 32);
	memcpy(&ri, m.payload, sizeof(ri));
	assert_true(ri.argsz > 32);
	vfw_msg_release(&m);
	xsend(fd, VFW_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri));
	expect_ok(fd, VFW_CMD_DEVICE_GET_REGION_INFO, &m);
	assert_int_equal(m.len, ri.argsz);
	assert_int_equal(m.nfds, 1);
	memcpy(&ri, m.payload, sizeof(ri));
	assert_true(ri.flags & VFW_REGION_INFO_FLAG_MMAP);
	int bfd = vfw_msg_take_fd(&m, 0);
	vfw_msg_release(&m);
	uint8_t *bar = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_SHARED,
			    bfd, (off_t)ri.offset);
	assert_true(bar != MAP_FAILED);
	w32(fd, 2, 0x1230, 0x600dbeef);
	uint32_t v;
	memcpy(&v, bar + 0x1230, 4);
	assert_int_equal(le32toh(v), 0x600dbeef);
	memcpy(bar + 0x40, "\x11\x22\x33\x44", 4);
	assert_int_equal(r32(fd, 2, 0x40), 0x44332211);
	munmap(bar, 0x10000);
	close(bfd);
	munmap(g, 0x4000);
	close(mfd);
	xclose(fd);
	still_serving();
}

/* ---- byte order: what a guest reads is the same on any host ---- */

static void test_register_bytes(void **state)
{
	uint8_t b[4], in[4] = { 0x11, 0x22, 0x33, 0x44 };
	int fd = handshake();

	(void)state;
	region_rw(fd, 0, REG_ID, b, 4, false);
	assert_memory_equal(b, "GMFV", 4); /* 0x56464d47, little-endian */
	region_rw(fd, 0, REG_VERSION, b, 4, false);
	assert_memory_equal(b, "\x01\0\0\0", 4);
	region_rw(fd, 0, REG_SCRATCH0, in, 4, true);
	assert_int_equal(r32(fd, 0, REG_SCRATCH0), 0x44332211);
	region_rw(fd, 7, 0, b, 4, false); /* vendor 0x1b36, device 0x1000 */
	assert_memory_equal(b, "\x36\x1b\x00\x10", 4);
	xclose(fd);
}

/* ---- MSI-X delivery through the real socket ---- */

static bool efd_fired(int efd)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v;
	if (poll(&p, 1, 200) != 1)
		return false;
	return read(efd, &v, sizeof(v)) == sizeof(v);
}

static void test_msix(void **state)
{
	(void)state;
	int fd = handshake();
	int efds[4];
	struct vfw_msg m;

	for (int i = 0; i < 4; i++)
		efds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vfw_irq_set s = { 20, VFW_IRQ_SET_DATA_EVENTFD |
				 VFW_IRQ_SET_ACTION_TRIGGER, 2, 0, 4 };
	xsend_fds(fd, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s), efds, 4);
	expect_ok(fd, VFW_CMD_DEVICE_SET_IRQS, &m);
	vfw_msg_release(&m);
	/* find MSI-X in config space, enable it, unmask vector 1 */
	uint8_t p = (uint8_t)r32(fd, 7, 0x34);
	while (p && (r32(fd, 7, p) & 0xff) != 0x11)
		p = (uint8_t)(r32(fd, 7, p) >> 8);
	assert_true(p >= 0x40);
	uint16_t ctrl = htole16(0x8000);
	region_rw(fd, 7, p + 2u, &ctrl, 2, true);
	w32(fd, 4, 1 * 16 + 12, 0);
	w32(fd, 0, REG_EVENT, 1);
	assert_true(efd_fired(efds[1]));
	/* vector 2 masked: PBA bit, delivered on unmask */
	w32(fd, 0, REG_EVENT, 2);
	assert_false(efd_fired(efds[2]));
	assert_int_equal(r32(fd, 4, 0x800), 1u << 2);
	w32(fd, 4, 2 * 16 + 12, 0);
	assert_true(efd_fired(efds[2]));
	assert_int_equal(r32(fd, 4, 0x800), 0);
	/* SET_IRQS MASK holds vector 1; UNMASK delivers */
	s = (struct vfw_irq_set){ 20, VFW_IRQ_SET_DATA_NONE |
				  VFW_IRQ_SET_ACTION_MASK, 2, 1, 1 };
	xsend(fd, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
	expect_ok(fd, VFW_CMD_DEVICE_SET_IRQS, &m);
	vfw_msg_release(&m);
	w32(fd, 0, REG_EVENT, 1);
	assert_false(efd_fired(efds[1]));
	s.flags = VFW_IRQ_SET_DATA_NONE | VFW_IRQ_SET_ACTION_UNMASK;
	xsend(fd, VFW_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
	expect_ok(fd, VFW_CMD_DEVICE_SET_IRQS, &m);
	vfw_msg_release(&m);
	assert_true(efd_fired(efds[1]));
	/* reset: MSI-X disabled again, vectors masked */
	xsend(fd, VFW_CMD_DEVICE_RESET, NULL, 0);
	expect_ok(fd, VFW_CMD_DEVICE_RESET, &m);
	vfw_msg_release(&m);
	assert_int_equal(r32(fd, 4, 1 * 16 + 12), 1);
	assert_int_equal(r32(fd, 0, 0x10), 0);
	for (int i = 0; i < 4; i++)
		close(efds[i]);
	xclose(fd);
	still_serving();
}

/* ---- the sample's command line, and --fd with a connected socket ---- */

static void test_sample_args(void **state)
{
	char *bad[][5] = {
		{ "regs", NULL },
		{ "regs", "--socket-path", "/tmp/x", "--fd", "3" },
		{ "regs", "--fd=3", "--interface=v3", NULL },
		{ "regs", "--fd", "3", "--bogus", NULL },
		{ "regs", "--socket-path", NULL },
		{ "regs", "--fd=abc", NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int argc = 0;
		while (argc < 5 && bad[i][argc])
			argc++;
		assert_int_equal(vfmig_sample_regs_main(argc, bad[i]), 2);
	}
}

/* Fork the regs sample served on one end of a socketpair (`--fd N`), with
 * extra arguments (NULL-terminated, at most 4); returns the other end. */
static int spawn_regs_fd(const char *const *extra, pid_t *pid)
{
	int sv[2];
	char num[16];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	snprintf(num, sizeof(num), "%d", sv[1]);
	fflush(NULL);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		char *argv[8] = { "regs", "--fd", num };
		int argc = 3;
		for (size_t i = 0; extra && extra[i] && argc < 7; i++)
			argv[argc++] = (char *)extra[i];
		argv[argc] = NULL;
		close(sv[0]);
		exit(vfmig_sample_regs_main(argc, argv)); /* exit: LSan checks it */
	}
	close(sv[1]);
	return sv[0];
}

/* The client closes its end; the sample must then exit 0. */
static void regs_fd_done(int fd, pid_t pid)
{
	int status;

	close(fd); /* client leaves: the device has nothing to accept */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_fd_mode(void **state)
{
	static const char *const extra[] = { "--quiet", NULL };
	struct vfw_msg m;
	pid_t pid;
	int fd = spawn_regs_fd(extra, &pid);

	(void)state;
	send_version(fd, 0, NULL);
	expect_ok(fd, VFW_CMD_VERSION, &m);
	vfw_msg_release(&m);
	get_info(fd);
	regs_fd_done(fd, pid);
}

/* ---- GET_REGION_INFO as QEMU asks (strict_client.h) ---- */

static int strict_call(void *ctx, const struct vfw_region_info *req,
		       struct vfw_msg *rep)
{
	int fd = *(const int *)ctx, err;

	xsend(fd, VFW_CMD_DEVICE_GET_REGION_INFO, req, sizeof(*req));
	assert_int_equal(xrecv(fd, rep), 0);
	assert_int_equal(rep->hdr.command, VFW_CMD_DEVICE_GET_REGION_INFO);
	if (!(rep->hdr.flags & VFW_FLAGS_ERROR))
		return 0;
	err = (int)rep->hdr.error;
	vfw_msg_release(rep);
	return -err;
}

static uint32_t num_regions(int fd)
{
	struct vfw_device_info info = { .argsz = sizeof(info) };
	struct vfw_msg m;

	xsend(fd, VFW_CMD_DEVICE_GET_INFO, &info, sizeof(info));
	expect_ok(fd, VFW_CMD_DEVICE_GET_INFO, &m);
	assert_int_equal(m.len, sizeof(info));
	memcpy(&info, m.payload, sizeof(info));
	vfw_msg_release(&m);
	return info.num_regions;
}

/* Every region of the sample: BAR2 mappable as one area, 9..12 typed,
 * 10..12 mappable whole; the rest plain, asked once. */
static void strict_probe_all(int fd, uint32_t n)
{
	struct strict_region s;

	for (uint32_t i = 0; i < n; i++) {
		bool typed = i >= VFW_PCI_NUM_REGIONS;
		bool mapped = i == REGS_BAR_MEM ||
			      (typed && i != VFW_DS_REGION_CTL);

		assert_int_equal(strict_region_info(strict_call, &fd, i, &s), 0);
		assert_int_equal(s.retried, i == REGS_BAR_MEM || typed);
		assert_int_equal(s.has_type, typed);
		assert_int_equal(s.fd >= 0, mapped);
		assert_int_equal(!!(s.flags & VFW_REGION_INFO_FLAG_MMAP), mapped);
		if (i == REGS_BAR_MEM) {
			assert_int_equal(s.nr_areas, 1);
			assert_int_equal(s.areas[0].offset, 0);
			assert_int_equal(s.areas[0].size, REGS_BAR_MEM_SIZE);
		}
		if (s.fd < 0)
			continue;
		void *p = mmap(NULL, s.size, PROT_READ, MAP_SHARED, s.fd,
			       (off_t)s.offset);
		assert_true(p != MAP_FAILED);
		munmap(p, s.size);
		close(s.fd);
	}
}

static void test_strict_region_info(void **state)
{
	int fd = handshake();

	(void)state;
	assert_int_equal(num_regions(fd), VFW_PCI_NUM_REGIONS);
	strict_probe_all(fd, VFW_PCI_NUM_REGIONS);
	xclose(fd);
}

/* The same sample with --interface region, on a socketpair (--fd). */
static void test_strict_region_info_iface(void **state)
{
	static const char *const extra[] = { "--interface", "region",
					     "--quiet", NULL };
	struct vfw_msg m;
	pid_t pid;
	int fd = spawn_regs_fd(extra, &pid);

	(void)state;
	send_version(fd, 0, "{\"capabilities\":{\"max_msg_fds\":8}}");
	expect_ok(fd, VFW_CMD_VERSION, &m);
	vfw_msg_release(&m);
	assert_int_equal(num_regions(fd), VFW_DS_NUM_REGIONS);
	strict_probe_all(fd, VFW_DS_NUM_REGIONS);
	regs_fd_done(fd, pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_truncated_header, close_conns),
		cmocka_unit_test_teardown(test_short_body, close_conns),
		cmocka_unit_test_teardown(test_bad_headers, close_conns),
		cmocka_unit_test_teardown(test_unknown_commands, close_conns),
		cmocka_unit_test_teardown(test_lying_sizes, close_conns),
		cmocka_unit_test_teardown(test_region_ranges, close_conns),
		cmocka_unit_test_teardown(test_fds, close_conns),
		cmocka_unit_test_teardown(test_bad_version, close_conns),
		cmocka_unit_test_teardown(test_dma_unmapped, close_conns),
		cmocka_unit_test_teardown(test_dma_messages, close_conns),
		cmocka_unit_test_teardown(test_dma_fd_and_mmap, close_conns),
		cmocka_unit_test_teardown(test_register_bytes, close_conns),
		cmocka_unit_test_teardown(test_msix, close_conns),
		cmocka_unit_test_teardown(test_hostile_migration, close_conns),
		cmocka_unit_test(test_sample_args),
		cmocka_unit_test(test_fd_mode),
		cmocka_unit_test_teardown(test_strict_region_info, close_conns),
		cmocka_unit_test(test_strict_region_info_iface),
	};
	signal(SIGPIPE, SIG_IGN);
	int failed = cmocka_run_group_tests(tests, start_server, stop_server);
	return failed || server_failed ? 1 : 0;
}
