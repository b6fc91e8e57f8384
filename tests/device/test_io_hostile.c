/* SPDX-License-Identifier: MIT */
/*
 * Integration: the device side of the I/O model (docs/io-model.md,
 * "vfio-user connections: device side") against hostile clients. Each test
 * runs `vfmig device regs` as its own process on a real UNIX socket, with
 * its log in a file, and plays a client that stops reading, trickles a
 * message, floods commands while the device waits for a DMA reply, sends
 * replies nobody asked for or bigger than asked, or truncates the memory
 * behind a DMA window. Each must end in a clear error (the client dropped
 * with a log line saying why) within the documented deadline, while the
 * device stays responsive (a second client is refused at once, SIGTERM
 * ends it promptly) and its memory bounded. The device must exit 0 at the
 * end of every test.
 *
 * Run one test: test-device-io-hostile NAME (meson runs each by name, so
 * the slow ones run in parallel). VFMIG names the vfmig binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/proto.h"
#include "regs_hw.h"

/* The device's documented deadlines (docs/io-model.md); tests allow this
 * much either way for scheduling. Under the valgrind test setup the device
 * runs under memcheck, and VFMIG_TEST_SLOWDOWN (tests/valgrind/run.sh)
 * scales what the tests wait for it: "at once", and the slack after a
 * deadline. A drop before its deadline fails the same everywhere. */
#define DEADLINE_MS 10000
#define SLACK_MS 1500
#define PROMPT_MS (2000 * slowdown()) /* "at once": far below any deadline */
#define LATE_MS (SLACK_MS * slowdown()) /* allowed after a deadline */
#define MIB (1u << 20)

static int slowdown(void)
{
	const char *s = getenv("VFMIG_TEST_SLOWDOWN");
	int n = s ? atoi(s) : 1;

	return n > 1 ? n : 1;
}

static struct {
	pid_t pid;
	char dir[64], sock[128], log[128];
} srv = { .pid = -1 };
static uint16_t next_id = 1;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the device process ---- */

static int srv_start(void **state)
{
	const char *vfmig = getenv("VFMIG");

	(void)state;
	if (!vfmig) {
		fprintf(stderr, "VFMIG must name the vfmig binary\n");
		return -1;
	}
	strcpy(srv.dir, "/tmp/vfmig-io-hostile-XXXXXX");
	if (!mkdtemp(srv.dir))
		return -1;
	snprintf(srv.sock, sizeof(srv.sock), "%s/regs.sock", srv.dir);
	snprintf(srv.log, sizeof(srv.log), "%s/regs.log", srv.dir);
	fflush(NULL);
	srv.pid = fork();
	if (srv.pid < 0)
		return -1;
	if (srv.pid == 0) {
		int lfd = open(srv.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			       0600);
		if (lfd < 0 || dup2(lfd, 2) < 0)
			_exit(126);
		execl(vfmig, "vfmig", "device", "regs", "--socket-path", srv.sock,
		      "--quiet", (char *)NULL);
		_exit(127);
	}
	return 0;
}

/* Wait up to ms for the device to exit; true with *status when it did. */
static bool srv_wait(int ms, int *status)
{
	int64_t end = now_ms() + ms;

	do {
		pid_t r = waitpid(srv.pid, status, WNOHANG);
		if (r == srv.pid) {
			srv.pid = -1;
			return true;
		}
		sleep_ms(10);
	} while (now_ms() < end);
	return false;
}

static void show_log(void)
{
	char buf[4096];
	FILE *f = fopen(srv.log, "r");
	size_t n;

	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	fprintf(stderr, "---- device log ----\n%s--------------------\n", buf);
}

/* The device must still run, end on SIGTERM within PROMPT_MS and exit 0. */
static int srv_stop(void **state)
{
	int status = 0, rc = 0;

	(void)state;
	if (srv.pid > 0) {
		kill(srv.pid, SIGTERM);
		if (!srv_wait(PROMPT_MS, &status)) {
			fprintf(stderr, "device ignored SIGTERM\n");
			kill(srv.pid, SIGKILL);
			srv_wait(PROMPT_MS, &status);
			rc = -1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "device exit status 0x%x\n", status);
			rc = -1;
		}
	}
	if (rc < 0 || getenv("VFMIG_TEST_VERBOSE"))
		show_log();
	unlink(srv.sock);
	unlink(srv.log);
	rmdir(srv.dir);
	return rc;
}

/* Times the device logged a line containing what. */
static int log_count(const char *what)
{
	static char buf[1 << 16];
	FILE *f = fopen(srv.log, "r");
	int n = 0;

	assert_non_null(f);
	while (fgets(buf, sizeof(buf), f))
		if (strstr(buf, what))
			n++;
	fclose(f);
	return n;
}

/* The device logs asynchronously to us: give it a moment. */
static void expect_log(const char *what)
{
	for (int i = 0; i < 100 * slowdown() && !log_count(what); i++)
		sleep_ms(20);
	if (!log_count(what)) {
		show_log();
		fail_msg("the device did not log \"%s\"", what);
	}
}

static long status_kb(const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)srv.pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	assert_true(v >= 0);
	return v;
}

/* Forget the device's peak RSS so VmHWM measures from now. */
static bool reset_peak(void)
{
	char path[64];
	int fd;
	bool ok;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)srv.pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = write(fd, "5", 1) == 1;
	close(fd);
	return ok;
}

/* ---- client plumbing ---- */

static int conn(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	strcpy(sa.sun_path, srv.sock);
	for (int i = 0; i < 500 * slowdown(); i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		sleep_ms(10);
	}
	fail_msg("cannot connect to %s", srv.sock);
	return -1;
}

static void xsend(int fd, uint16_t cmd, const void *p, size_t len)
{
	struct vfw_header h = { .msg_id = next_id++, .command = cmd };
	struct iovec iov = { (void *)p, len };

	assert_int_equal(vfw_msg_send(fd, &h, &iov, len ? 1 : 0, NULL, 0), 0);
}

static int xrecv(int fd, struct vfw_msg *m)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 5000 * slowdown()) != 1)
		fail_msg("the device did not answer within %d s",
			 5 * slowdown());
	return vfw_msg_recv(fd, m, 4 * MIB, 16);
}

static void expect_ok(int fd, uint16_t cmd)
{
	struct vfw_msg m;

	assert_int_equal(xrecv(fd, &m), 0);
	assert_int_equal(m.hdr.command, cmd);
	assert_int_equal(m.hdr.flags & VFW_FLAGS_TYPE_MASK,
			 VFW_FLAGS_TYPE_REPLY);
	if (m.hdr.flags & VFW_FLAGS_ERROR)
		fail_msg("cmd %u: error reply %u", cmd, m.hdr.error);
	vfw_msg_release(&m);
}

/* Connect and negotiate, with our max_data_xfer_size. */
static int handshake_xfer(unsigned int xfer)
{
	char json[128];
	uint8_t buf[160];
	struct vfw_version v = { 0, 0 };
	int fd = conn(), n;

	n = snprintf(json, sizeof(json),
		     "{\"capabilities\":{\"max_msg_fds\":8,"
		     "\"max_data_xfer_size\":%u}}", xfer);
	memcpy(buf, &v, sizeof(v));
	memcpy(buf + sizeof(v), json, (size_t)n + 1);
	xsend(fd, VFW_CMD_VERSION, buf, sizeof(v) + (size_t)n + 1);
	expect_ok(fd, VFW_CMD_VERSION);
	return fd;
}

static int handshake(void)
{
	return handshake_xfer(MIB);
}

static void w32(int fd, uint64_t off, uint32_t v)
{
	uint8_t msg[sizeof(struct vfw_region_access) + 4];
	struct vfw_region_access a = { off, REGS_BAR_REGS, 4 };

	memcpy(msg, &a, sizeof(a));
	memcpy(msg + sizeof(a), &v, 4); /* little-endian hosts only */
	xsend(fd, VFW_CMD_REGION_WRITE, msg, sizeof(msg));
	expect_ok(fd, VFW_CMD_REGION_WRITE);
}

static uint32_t r32(int fd, uint64_t off)
{
	struct vfw_region_access a = { off, REGS_BAR_REGS, 4 };
	struct vfw_msg m;
	uint32_t v;

	xsend(fd, VFW_CMD_REGION_READ, &a, sizeof(a));
	assert_int_equal(xrecv(fd, &m), 0);
	assert_false(m.hdr.flags & VFW_FLAGS_ERROR);
	assert_int_equal(m.len, sizeof(a) + 4);
	memcpy(&v, m.payload + sizeof(a), 4);
	vfw_msg_release(&m);
	return v;
}

static void dma_map(int fd, uint64_t addr, uint64_t size, int mfd)
{
	struct vfw_dma_map d = { sizeof(d), VFW_DMA_READABLE | VFW_DMA_WRITEABLE,
				 0, addr, size };
	struct vfw_header h = { .msg_id = next_id++,
				.command = VFW_CMD_DMA_MAP };
	struct iovec iov = { &d, sizeof(d) };

	assert_int_equal(vfw_msg_send(fd, &h, &iov, 1, &mfd, mfd >= 0 ? 1 : 0),
			 0);
	expect_ok(fd, VFW_CMD_DMA_MAP);
}

static void dma_program(int fd, uint64_t addr, uint32_t len)
{
	w32(fd, REG_DMA_ADDR_LO, (uint32_t)addr);
	w32(fd, REG_DMA_ADDR_HI, (uint32_t)(addr >> 32));
	w32(fd, REG_DMA_LEN, len);
}

/* Start a DMA command whose REGION_WRITE is answered only after the DMA. */
static void dma_start(int fd, uint32_t cmd)
{
	uint8_t msg[sizeof(struct vfw_region_access) + 4];
	struct vfw_region_access a = { REG_DMA_CMD, REGS_BAR_REGS, 4 };

	memcpy(msg, &a, sizeof(a));
	memcpy(msg + sizeof(a), &cmd, 4);
	xsend(fd, VFW_CMD_REGION_WRITE, msg, sizeof(msg));
}

/* A message-based window and a checksum DMA: returns the device's
 * DMA_READ request (release it). */
static void dma_read_pending(int fd, struct vfw_msg *req)
{
	dma_map(fd, 0x100000, 0x2000, -1);
	dma_program(fd, 0x100000, 48);
	dma_start(fd, DMA_CMD_CHECKSUM);
	assert_int_equal(xrecv(fd, req), 0);
	assert_int_equal(req->hdr.command, VFW_CMD_DMA_READ);
	assert_int_equal(req->hdr.flags & VFW_FLAGS_TYPE_MASK,
			 VFW_FLAGS_TYPE_COMMAND);
}

/* Wait up to ms for the device to close its end, without reading (a read
 * would relieve a device that waits for us to read). Returns the ms it
 * took, or -1. */
static int wait_hup(int fd, int ms)
{
	int64_t start = now_ms(), end = start + ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLRDHUP };
		int left = (int)(end - now_ms());
		if (left < 0)
			return -1;
		if (poll(&p, 1, left) == 1 && (p.revents & (POLLHUP | POLLRDHUP)))
			return (int)(now_ms() - start);
	}
}

/* Send what the socket takes now; -1 once the device has closed. */
static ssize_t send_now(int fd, const void *p, size_t len)
{
	ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n < 0 ? -1 : n;
}

/* The device is responsive: a second client is refused at once. */
static void refused_promptly(void)
{
	int fd = conn();
	uint8_t b;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, PROMPT_MS) != 1)
		fail_msg("a second client was not refused within %d ms: the "
			 "device is stuck", PROMPT_MS);
	assert_true(recv(fd, &b, 1, MSG_DONTWAIT) <= 0);
	close(fd);
}

static void still_serving(void)
{
	struct vfw_device_info info = { .argsz = sizeof(info) };
	int fd = handshake();

	xsend(fd, VFW_CMD_DEVICE_GET_INFO, &info, sizeof(info));
	expect_ok(fd, VFW_CMD_DEVICE_GET_INFO);
	close(fd);
}

/* REGION_READs of the whole mappable BAR, never read back: 300 x 64 KiB
 * of replies. The 9.6 KB of requests go in one send, which the socket
 * takes whole. */
static void flood_reads(int fd)
{
	struct vfw_region_access a = { 0, REGS_BAR_MEM, REGS_BAR_MEM_SIZE };
	const size_t one = sizeof(struct vfw_header) + sizeof(a);
	uint8_t msgs[300 * (sizeof(struct vfw_header) + sizeof(a))];

	for (int i = 0; i < 300; i++) {
		struct vfw_header h = { .msg_id = next_id++,
					.command = VFW_CMD_REGION_READ,
					.msg_size = (uint32_t)one };
		memcpy(msgs + i * one, &h, sizeof(h));
		memcpy(msgs + i * one + sizeof(h), &a, sizeof(a));
	}
	assert_int_equal(send_now(fd, msgs, sizeof(msgs)), sizeof(msgs));
}

/* ---- a client that stops reading ---- */

/* Memory stays bounded and SIGTERM ends the device at once. */
static void test_nonreader_sigterm(void **state)
{
	int status, fd = handshake();
	long before = status_kb("VmRSS:");

	(void)state;
	flood_reads(fd);
	sleep_ms(1000);
	long after = status_kb("VmRSS:");
	if (after - before > 8 * 1024)
		fail_msg("RSS grew from %ld to %ld kB", before, after);
	refused_promptly();
	kill(srv.pid, SIGTERM);
	if (!srv_wait(PROMPT_MS, &status))
		fail_msg("SIGTERM did not end the device within %d ms",
			 PROMPT_MS);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(fd);
}

/* The client is dropped once its replies wait for DEADLINE_MS. */
static void test_nonreader_dropped(void **state)
{
	int fd = handshake(), ms;

	(void)state;
	flood_reads(fd);
	sleep_ms(500);
	refused_promptly();
	ms = wait_hup(fd, DEADLINE_MS + LATE_MS);
	if (ms < 0)
		fail_msg("a client that does not read was not dropped");
	if (ms < DEADLINE_MS - SLACK_MS - 500)
		fail_msg("dropped after %d ms: before its deadline", ms);
	expect_log("client does not read");
	close(fd);
	still_serving();
}

/* ---- a client that trickles a message ---- */

static void test_trickle(void **state)
{
	uint8_t msg[sizeof(struct vfw_header) + sizeof(struct vfw_region_access)
		    + 4];
	struct vfw_header h = { .msg_id = next_id++,
				.command = VFW_CMD_REGION_WRITE,
				.msg_size = sizeof(msg) };
	struct vfw_region_access a = { REG_SCRATCH0, REGS_BAR_REGS, 4 };
	int fd = handshake(), ms = -1;
	bool checked = false;
	int64_t t0;

	(void)state;
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &a, sizeof(a));
	memset(msg + sizeof(h) + sizeof(a), 0x5a, 4);
	/* One byte every 400 ms: whole only after 14 s, past its deadline. */
	t0 = now_ms();
	for (size_t i = 0; i < sizeof(msg) && ms < 0; i++) {
		assert_true(send_now(fd, msg + i, 1) >= 0);
		if (!checked && now_ms() - t0 > 1000) {
			refused_promptly(); /* the device is not stuck on us */
			checked = true;
		}
		if (wait_hup(fd, 400) >= 0)
			ms = (int)(now_ms() - t0);
	}
	if (ms < 0)
		fail_msg("a trickled message outlived its deadline");
	if (ms < DEADLINE_MS - SLACK_MS || ms > DEADLINE_MS + LATE_MS)
		fail_msg("dropped after %d ms, deadline %d ms", ms, DEADLINE_MS);
	expect_log("left a message unfinished");
	close(fd);
	still_serving();
}

/* ---- floods while the device waits for its DMA reply ---- */

static void test_dma_flood_count(void **state)
{
	struct vfw_device_info info = { .argsz = sizeof(info) };
	uint8_t msg[sizeof(struct vfw_header) + sizeof(info)];
	int fd = handshake(), ms;
	struct vfw_msg req;

	(void)state;
	dma_read_pending(fd, &req);
	vfw_msg_release(&req);
	for (int i = 0; i < 100; i++) {
		struct vfw_header h = { .msg_id = next_id++,
					.command = VFW_CMD_DEVICE_GET_INFO,
					.msg_size = sizeof(msg) };
		memcpy(msg, &h, sizeof(h));
		memcpy(msg + sizeof(h), &info, sizeof(info));
		if (send_now(fd, msg, sizeof(msg)) < 0)
			break;
	}
	ms = wait_hup(fd, PROMPT_MS);
	if (ms < 0)
		fail_msg("100 commands during a DMA wait: not dropped");
	expect_log("more than 64 commands");
	close(fd);
	still_serving();
}

static void test_dma_flood_bytes(void **state)
{
	const size_t len = sizeof(struct vfw_header) +
			   sizeof(struct vfw_region_access) + MIB;
	uint8_t *msg = calloc(1, len);
	int fd = handshake(), sent = 0;
	struct vfw_msg req;
	bool peak;
	long before;

	(void)state;
	assert_non_null(msg);
	dma_read_pending(fd, &req);
	vfw_msg_release(&req);
	peak = reset_peak();
	before = status_kb("VmRSS:");
	/* 40 x 1 MiB REGION_WRITEs, as fast as the device takes them. */
	int64_t end = now_ms() + 5000 * slowdown();
	while (sent < 40 && now_ms() < end) {
		struct vfw_header h = { .msg_id = next_id++,
					.command = VFW_CMD_REGION_WRITE,
					.msg_size = (uint32_t)len };
		struct vfw_region_access a = { 0, REGS_BAR_MEM, MIB };
		size_t off = 0;
		memcpy(msg, &h, sizeof(h));
		memcpy(msg + sizeof(h), &a, sizeof(a));
		while (off < len && now_ms() < end) {
			ssize_t n = send_now(fd, msg + off, len - off);
			if (n < 0)
				goto closed;
			off += (size_t)n;
			if (!n) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };
				poll(&p, 1, 50);
			}
		}
		sent++;
	}
closed:
	free(msg);
	if (wait_hup(fd, PROMPT_MS) < 0)
		fail_msg("%d MiB of commands during a DMA wait: not dropped",
			 sent);
	expect_log("or 8 MiB while the device waited");
	if (peak) {
		long hwm = status_kb("VmHWM:");
		if (hwm - before > 24 * 1024)
			fail_msg("peak RSS grew from %ld to %ld kB", before, hwm);
	}
	close(fd);
	still_serving();
}

/* A client that answers each piece of a split DMA just in time: the
 * deadline is the whole transfer's, not each piece's. */
static void test_dma_slow_pieces(void **state)
{
	/* 64-byte pieces: a 640-byte checksum is 10 DMA_READs, answered
	 * 1.5 s apart: 15 s in all, past the 10 s the device allows. */
	int fd = handshake_xfer(64), ms = -1;
	int64_t t0;

	(void)state;
	dma_map(fd, 0x100000, 0x2000, -1);
	dma_program(fd, 0x100000, 640);
	dma_start(fd, DMA_CMD_CHECKSUM);
	t0 = now_ms();
	for (int i = 0; i < 10 && ms < 0; i++) {
		uint8_t rep[sizeof(struct vfw_dma_access) + 64] = { 0 };
		struct vfw_msg req;

		assert_int_equal(xrecv(fd, &req), 0);
		assert_int_equal(req.hdr.command, VFW_CMD_DMA_READ);
		assert_int_equal(req.len, sizeof(struct vfw_dma_access));
		memcpy(rep, req.payload, sizeof(struct vfw_dma_access));
		if (wait_hup(fd, 1500) >= 0)
			ms = (int)(now_ms() - t0);
		else
			assert_int_equal(vfw_send_reply(fd, &req.hdr, rep,
							sizeof(rep)), 0);
		vfw_msg_release(&req);
	}
	if (ms < 0)
		ms = wait_hup(fd, PROMPT_MS) < 0 ? -1 : (int)(now_ms() - t0);
	if (ms < 0)
		fail_msg("a DMA answered piece by piece outlived its deadline");
	if (ms < DEADLINE_MS - SLACK_MS || ms > DEADLINE_MS + LATE_MS)
		fail_msg("dropped after %d ms, deadline %d ms", ms, DEADLINE_MS);
	expect_log("client did not answer DMA_READ within");
	close(fd);
	still_serving();
}

/* ---- replies nobody asked for, and replies bigger than asked ---- */

static void test_unsolicited_reply(void **state)
{
	struct vfw_header h = { .msg_id = 999,
				.command = VFW_CMD_DEVICE_GET_INFO,
				.flags = VFW_FLAGS_TYPE_REPLY };
	int fd = handshake();
	struct vfw_msg req;

	(void)state;
	/* With no request outstanding. */
	assert_int_equal(vfw_msg_send(fd, &h, NULL, 0, NULL, 0), 0);
	if (wait_hup(fd, PROMPT_MS) < 0)
		fail_msg("an unsolicited reply was not a protocol error");
	expect_log("to no request");
	close(fd);
	/* While the device waits for its DMA_READ reply: another id. */
	fd = handshake();
	dma_read_pending(fd, &req);
	h = (struct vfw_header){ .msg_id = (uint16_t)(req.hdr.msg_id + 1),
				 .command = VFW_CMD_DMA_READ,
				 .flags = VFW_FLAGS_TYPE_REPLY };
	vfw_msg_release(&req);
	assert_int_equal(vfw_msg_send(fd, &h, NULL, 0, NULL, 0), 0);
	if (wait_hup(fd, PROMPT_MS) < 0)
		fail_msg("a stray reply during a DMA wait was not an error");
	expect_log("while the device waited for its DMA_READ");
	close(fd);
	still_serving();
}

static void test_reply_bigger(void **state)
{
	uint8_t rep[sizeof(struct vfw_dma_access) + 4096] = { 0 };
	struct vfw_dma_access a;
	struct vfw_msg req;
	int fd = handshake();

	(void)state;
	/* A DMA_READ reply carrying 4 KiB where 48 bytes were asked. */
	dma_read_pending(fd, &req);
	memcpy(&a, req.payload, sizeof(a));
	assert_int_equal(a.count, 48);
	memcpy(rep, &a, sizeof(a));
	assert_int_equal(vfw_send_reply(fd, &req.hdr, rep, sizeof(rep)), 0);
	vfw_msg_release(&req);
	if (wait_hup(fd, PROMPT_MS) < 0)
		fail_msg("a DMA_READ reply bigger than asked was accepted");
	expect_log("more than was asked");
	close(fd);
	/* A reply announcing more than any message may carry. */
	fd = handshake();
	dma_read_pending(fd, &req);
	struct vfw_header h = { .msg_id = req.hdr.msg_id,
				.command = VFW_CMD_DMA_READ,
				.msg_size = 4 * MIB,
				.flags = VFW_FLAGS_TYPE_REPLY };
	vfw_msg_release(&req);
	assert_int_equal(send_now(fd, &h, sizeof(h)), sizeof(h));
	if (wait_hup(fd, PROMPT_MS) < 0)
		fail_msg("an oversized reply header was accepted");
	expect_log("larger than");
	close(fd);
	still_serving();
}

/* ---- a client that truncates the memory behind a DMA window ---- */

static int guest_memfd(unsigned int flags)
{
	int mfd = memfd_create("guest", MFD_CLOEXEC | flags);

	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, 0x4000), 0);
	return mfd;
}

static void test_truncated_memfd(void **state)
{
	int fd = handshake(), mfd, seals;

	(void)state;
	/* A memfd that allows sealing: the device seals it against
	 * shrinking, so the client cannot pull the memory away. */
	mfd = guest_memfd(MFD_ALLOW_SEALING);
	dma_map(fd, 0x200000, 0x4000, mfd);
	seals = fcntl(mfd, F_GET_SEALS);
	assert_true(seals >= 0 && (seals & F_SEAL_SHRINK));
	assert_int_equal(ftruncate(mfd, 0x1000), -1);
	assert_int_equal(errno, EPERM);
	dma_program(fd, 0x203000, 64);
	w32(fd, REG_DMA_CMD, DMA_CMD_FILL);
	assert_int_equal(r32(fd, REG_DMA_STATUS), DMA_STATUS_DONE);
	close(mfd);
	close(fd);

	/* A memfd sealed against more seals (the default without
	 * MFD_ALLOW_SEALING), shrunk after the map: the device's DMA into
	 * the missing pages faults. It survives and drops the client. */
	const uint32_t cmds[] = { DMA_CMD_FILL, DMA_CMD_CHECKSUM };
	for (size_t i = 0; i < 2; i++) {
		fd = handshake();
		mfd = guest_memfd(0);
		dma_map(fd, 0x200000, 0x4000, mfd);
		assert_int_equal(ftruncate(mfd, 0x1000), 0);
		dma_program(fd, 0x203000, 64);
		dma_start(fd, cmds[i]);
		if (wait_hup(fd, PROMPT_MS) < 0)
			fail_msg("DMA %u into truncated memory: client not "
				 "dropped", cmds[i]);
		close(mfd);
		close(fd);
		still_serving();
	}
	expect_log("client truncated the memory behind DMA window "
		   "0x200000+0x4000");
	assert_int_equal(log_count("client truncated the memory"), 2);
}

/* ---- SIGTERM while the device waits for a DMA reply ---- */

static void test_dma_wait_sigterm(void **state)
{
	int status, fd = handshake();
	struct vfw_msg req;

	(void)state;
	dma_read_pending(fd, &req); /* never answered */
	vfw_msg_release(&req);
	sleep_ms(200);
	kill(srv.pid, SIGTERM);
	if (!srv_wait(PROMPT_MS, &status))
		fail_msg("SIGTERM during a DMA wait did not end the device "
			 "within %d ms", PROMPT_MS);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	expect_log("DMA_READ abandoned");
	close(fd);
}

#define T(name) cmocka_unit_test_setup_teardown(name, srv_start, srv_stop)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(test_nonreader_sigterm),
		T(test_nonreader_dropped),
		T(test_trickle),
		T(test_dma_flood_count),
		T(test_dma_flood_bytes),
		T(test_dma_slow_pieces),
		T(test_unsolicited_reply),
		T(test_reply_bigger),
		T(test_truncated_memfd),
		T(test_dma_wait_sigterm),
	};

	signal(SIGPIPE, SIG_IGN);
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
