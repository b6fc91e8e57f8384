/* SPDX-License-Identifier: MIT */
/*
 * The VMM library's I/O model against hostile devices (docs/io-model.md):
 * a forked child speaks raw vfio-user and misbehaves in time. Each case
 * ends in the documented error well within a bound that the old blocking
 * code could not keep (it restarted its timeout on every message, and
 * blocked in send), and the bounds asserted are generous: these check
 * deadlines, not speed.
 *   - a device that chats (DMA_READs every 100 ms) cannot keep a call
 *     alive past its reply timeout;
 *   - a device that trickles its reply a byte at a time, likewise;
 *   - a device that stops reading: the call ends at its deadline;
 *   - a device that sends a 1 MiB DMA_WRITE while we send a 1 MiB
 *     REGION_WRITE over small socket buffers: no deadlock, both arrive;
 *   - while a call waits, process() answers -EBUSY and get_poll_fd() the
 *     fd at once, so an I/O thread is never stuck behind one device;
 *   - a 1 MiB DMA_READ reply served between calls that the socket cannot
 *     take at once is finished by an event loop that polls for the events
 *     get_poll_events() asks for (POLLOUT while bytes wait).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfmig/vmm.h>

#include "fake_server.h"

#define BIG (1u << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static vfmig_vmm_dev *open_with(struct session *s, script_fn script,
				int reply_ms)
{
	struct vfmig_vmm_dev_opts o = { .version = VFMIG_VMM_OPTS_VERSION,
					.reply_timeout_ms = reply_ms };
	vfmig_vmm_dev *dev = NULL;

	*s = start(script);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(s->fd, &o, &dev), 0);
	return dev;
}

static void big_caps(int fd)
{
	srv_version_with(fd, 0, 2,
			 "{\"capabilities\":{\"max_msg_fds\":2,"
			 "\"max_data_xfer_size\":1048576}}", 0);
}

static void small_buffers(int fd)
{
	int sz = 16384;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/* ---- a chatty device ---- */

static void s_chatty(int fd)
{
	struct vfw_msg m;
	struct vfw_dma_access a = { 0x1000, 8 };

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	vfw_msg_release(&m);
	/* Never answer; keep the client busy for 5 s instead. */
	for (int i = 0; i < 50; i++) {
		struct vfw_header h = { .msg_id = (uint16_t)i,
					.command = VFW_CMD_DMA_READ,
					.flags = VFW_FLAGS_TYPE_COMMAND };
		if (vfw_msg_send(fd, &h, &(struct iovec){ &a, sizeof(a) }, 1,
				 NULL, 0) < 0)
			break; /* the client gave up and closed: good */
		msleep(100);
	}
}

static void test_chatty_device(void **state)
{
	struct session s;
	struct vfmig_vmm_dev_info info;
	vfmig_vmm_dev *dev = open_with(&s, s_chatty, 1000);
	double t = now_s();

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_info(dev, &info), -ETIMEDOUT);
	t = now_s() - t;
	if (t > 3.0)
		fail_msg("a 1 s call lasted %.1f s: the device's messages "
			 "extended it", t);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- a device that trickles its reply ---- */

static void s_trickle(int fd)
{
	struct vfw_msg m;
	struct vfw_device_info di = { 16, VFW_DEVICE_FLAGS_PCI, 9, 5 };
	uint8_t buf[32];

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	struct vfw_header h = { .msg_id = m.hdr.msg_id,
				.command = m.hdr.command,
				.flags = VFW_FLAGS_TYPE_REPLY,
				.msg_size = sizeof(buf) };
	vfw_msg_release(&m);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &di, sizeof(di));
	for (size_t i = 0; i < sizeof(buf); i++) {
		if (send(fd, buf + i, 1, MSG_NOSIGNAL) != 1)
			break;
		msleep(150);
	}
}

static void test_trickled_reply(void **state)
{
	struct session s;
	struct vfmig_vmm_dev_info info;
	vfmig_vmm_dev *dev = open_with(&s, s_trickle, 1000);
	double t = now_s();

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_info(dev, &info), -ETIMEDOUT);
	t = now_s() - t;
	if (t > 3.0)
		fail_msg("a trickled reply kept a 1 s call for %.1f s", t);
	assert_false(vfmig_vmm_dev_connected(dev));
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- a device that stops reading ---- */

static void s_deaf(int fd)
{
	small_buffers(fd);
	big_caps(fd);
	msleep(4000); /* reads nothing, answers nothing */
}

static void test_device_stops_reading(void **state)
{
	struct session s;
	vfmig_vmm_dev *dev = open_with(&s, s_deaf, 1000);
	uint8_t *buf = calloc(1, 8 * BIG);
	double t = now_s();

	(void)state;
	assert_non_null(buf);
	/* Small buffers (the library asked for big ones at adopt time), so
	 * that the socket is full long before the request is out. */
	small_buffers(vfmig_vmm_dev_get_poll_fd(dev));
	assert_int_equal(vfmig_vmm_dev_region_write(dev, 0, 0, buf, 8 * BIG),
			 -ETIMEDOUT);
	t = now_s() - t;
	if (t > 3.0)
		fail_msg("a write to a deaf device took %.1f s", t);
	free(buf);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- big messages both ways at once ---- */

static void s_both_ways(int fd)
{
	static uint8_t data[BIG];
	struct vfw_dma_access a = { 0, BIG };
	struct vfw_region_access ra;
	struct vfw_msg m, req;

	small_buffers(fd);
	big_caps(fd);
	srv_recv(fd, &m, VFW_CMD_DMA_MAP);
	CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);
	/* Send 1 MiB before reading the client's 1 MiB request. */
	memset(data, 0x5a, sizeof(data));
	struct vfw_header h = { .msg_id = 7, .command = VFW_CMD_DMA_WRITE,
				.flags = VFW_FLAGS_TYPE_COMMAND };
	struct iovec iov[2] = { { &a, sizeof(a) }, { data, sizeof(data) } };
	CHECK(vfw_msg_send(fd, &h, iov, 2, NULL, 0) == 0);
	srv_recv(fd, &req, VFW_CMD_REGION_WRITE);
	CHECK(req.len == sizeof(ra) + BIG);
	memcpy(&ra, req.payload, sizeof(ra));
	CHECK(req.payload[sizeof(ra)] == 0xa5 && req.payload[req.len - 1] == 0xa5);
	/* The client answered the DMA_WRITE (it was served meanwhile). */
	CHECK(vfw_msg_recv(fd, &m, SRV_MAX_MSG, 16) == 0);
	CHECK((m.hdr.flags & VFW_FLAGS_TYPE_MASK) == VFW_FLAGS_TYPE_REPLY);
	CHECK(m.hdr.msg_id == 7 && !(m.hdr.flags & VFW_FLAGS_ERROR));
	vfw_msg_release(&m);
	CHECK(vfw_send_reply(fd, &req.hdr, &ra, sizeof(ra)) == 0);
	vfw_msg_release(&req);
	srv_expect_eof(fd);
}

static void test_big_both_ways(void **state)
{
	static uint8_t mem[BIG];
	struct session s = start(s_both_ways);
	struct vfmig_vmm_dev_opts o = { .version = VFMIG_VMM_OPTS_VERSION,
					.reply_timeout_ms = 5000 };
	vfmig_vmm_dev *dev = NULL;
	uint8_t *buf = malloc(BIG);

	(void)state;
	assert_non_null(buf);
	memset(buf, 0xa5, BIG);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(s.fd, &o, &dev), 0);
	/* Smaller than either message, set after the library's own
	 * setsockopt: neither side can send its 1 MiB without the other
	 * reading. */
	small_buffers(vfmig_vmm_dev_get_poll_fd(dev));
	assert_int_equal(vfmig_vmm_dev_dma_map(dev, 0, BIG, -1, 0, mem,
					       VFMIG_VMM_DMA_WRITE), 0);
	assert_int_equal(vfmig_vmm_dev_region_write(dev, 0, 0, buf, BIG), 0);
	assert_int_equal(mem[0], 0x5a);
	assert_int_equal(mem[BIG - 1], 0x5a);
	free(buf);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- the I/O thread is never stuck behind a call ---- */

static void s_slow(int fd)
{
	struct vfw_msg m;
	struct vfw_device_info di = { 16, VFW_DEVICE_FLAGS_PCI, 9, 5 };

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	msleep(1000);
	CHECK(vfw_send_reply(fd, &m.hdr, &di, sizeof(di)) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void *get_info_thread(void *p)
{
	struct vfmig_vmm_dev_info info;

	return (void *)(intptr_t)vfmig_vmm_dev_get_info(p, &info);
}

static void test_busy_not_blocking(void **state)
{
	struct session s;
	vfmig_vmm_dev *dev = open_with(&s, s_slow, 5000);
	int fd = vfmig_vmm_dev_get_poll_fd(dev);
	pthread_t t;
	void *ret;
	double t0;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(pthread_create(&t, NULL, get_info_thread, dev), 0);
	msleep(200); /* the call now waits for its reply, holding the lock */
	t0 = now_s();
	assert_int_equal(vfmig_vmm_dev_process(dev), -EBUSY);
	assert_int_equal(vfmig_vmm_dev_get_poll_fd(dev), fd);
	if (now_s() - t0 > 0.3)
		fail_msg("process/get_poll_fd waited %.2f s for a call",
			 now_s() - t0);
	pthread_join(t, &ret);
	assert_int_equal((intptr_t)ret, 0);
	assert_int_equal(vfmig_vmm_dev_process(dev), 0);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- a reply served between calls, bigger than the socket ---- */

static void s_dma_read_between_calls(int fd)
{
	struct vfw_dma_access a = { 0, BIG };
	struct vfw_msg m;

	small_buffers(fd);
	big_caps(fd);
	srv_recv(fd, &m, VFW_CMD_DMA_MAP);
	CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);
	struct vfw_header h = { .msg_id = 9, .command = VFW_CMD_DMA_READ,
				.flags = VFW_FLAGS_TYPE_COMMAND };
	CHECK(vfw_msg_send(fd, &h, &(struct iovec){ &a, sizeof(a) }, 1, NULL,
			   0) == 0);
	CHECK(vfw_msg_recv(fd, &m, SRV_MAX_MSG, 16) == 0);
	CHECK(m.hdr.msg_id == 9 && !(m.hdr.flags & VFW_FLAGS_ERROR));
	CHECK(m.len == sizeof(a) + BIG);
	CHECK(m.payload[sizeof(a)] == 0x3c && m.payload[m.len - 1] == 0x3c);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_reply_between_calls(void **state)
{
	static uint8_t mem[BIG];
	struct session s;
	vfmig_vmm_dev *dev = open_with(&s, s_dma_read_between_calls, 5000);
	bool waiting = true;

	(void)state;
	memset(mem, 0x3c, sizeof(mem));
	small_buffers(vfmig_vmm_dev_get_poll_fd(dev));
	assert_int_equal(vfmig_vmm_dev_dma_map(dev, 0, BIG, -1, 0, mem,
					       VFMIG_VMM_DMA_READ), 0);
	/* An I/O loop as a VMM would run it, for at most 5 s. */
	for (int i = 0; i < 500 && waiting; i++) {
		struct pollfd p = { .fd = vfmig_vmm_dev_get_poll_fd(dev),
				    .events = vfmig_vmm_dev_get_poll_events(dev) };
		if (poll(&p, 1, 10) > 0)
			assert_true(vfmig_vmm_dev_process(dev) >= 0);
		waiting = (vfmig_vmm_dev_get_poll_events(dev) & POLLOUT) ||
			  i < 20;
	}
	assert_false(vfmig_vmm_dev_get_poll_events(dev) & POLLOUT);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chatty_device),
		cmocka_unit_test(test_trickled_reply),
		cmocka_unit_test(test_device_stops_reading),
		cmocka_unit_test(test_big_both_ways),
		cmocka_unit_test(test_busy_not_blocking),
		cmocka_unit_test(test_reply_between_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
