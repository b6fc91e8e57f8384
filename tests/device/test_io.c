/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the device's connection I/O on a socketpair, one thread:
 * vfmig_dev_process() never waits (not for a partial message, not for a
 * full socket), replies that do not fit are queued and sent later, a full
 * queue stops the device from taking commands, and an event loop learns
 * what to poll for (vfmig_dev_get_poll_events) and how long it may sleep
 * (vfmig_dev_get_poll_timeout).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "device/internal.h"

#define BAR_SIZE (1u << 20)

static int t_access(vfmig_dev *dev, void *priv, unsigned int bar,
		    uint64_t off, void *buf, size_t len, bool is_write)
{
	(void)dev; (void)priv; (void)bar; (void)off;
	if (!is_write)
		memset(buf, 0x5a, len);
	return 0;
}

static const struct vfmig_dev_ops ops = {
	.version = 1,
	.region_access = t_access,
};

struct fx {
	vfmig_dev *dev;
	int fd; /* the client's end */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_msg(int fd, uint16_t cmd, const void *p, size_t len)
{
	struct vfw_header h = { .msg_id = 1, .command = cmd };
	struct iovec iov = { (void *)p, len };

	assert_int_equal(vfw_msg_send(fd, &h, &iov, len ? 1 : 0, NULL, 0), 0);
}

static void fx_open(struct fx *f)
{
	struct vfmig_dev_desc d = { .version = VFMIG_DEV_DESC_VERSION };
	struct vfw_version v = { 0, 0 };
	struct vfw_msg m;
	int sv[2];

	d.bars[0] = (struct vfmig_dev_bar){ .size = BAR_SIZE,
					    .flags = VFMIG_DEV_BAR_MAPPABLE };
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &f->dev), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	assert_int_equal(vfmig_dev_attach_fd(f->dev, sv[1]), 0);
	f->fd = sv[0];
	assert_int_equal(vfmig_dev_get_poll_events(f->dev), POLLIN);
	assert_int_equal(vfmig_dev_get_poll_timeout(f->dev), -1);
	send_msg(f->fd, VFW_CMD_VERSION, &v, sizeof(v));
	assert_int_equal(vfmig_dev_process(f->dev), 1);
	assert_int_equal(vfw_msg_recv(f->fd, &m, 1 << 22, 16), 0);
	vfw_msg_release(&m);
}

static void fx_close(struct fx *f)
{
	vfmig_dev_destroy(f->dev);
	close(f->fd);
}

/* Half a message: process() returns at once and keeps it; the timeout
 * tells when its deadline comes. */
static void test_partial_message(void **state)
{
	struct vfw_device_info info = { .argsz = sizeof(info) };
	struct vfw_header h = { .msg_id = 3,
				.command = VFW_CMD_DEVICE_GET_INFO,
				.msg_size = sizeof(h) + sizeof(info) };
	uint8_t msg[sizeof(h) + sizeof(info)];
	struct vfw_msg m;
	struct fx f;
	int64_t t0;
	int t;

	(void)state;
	fx_open(&f);
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &info, sizeof(info));
	assert_int_equal(send(f.fd, msg, 10, 0), 10);
	t0 = now_ms();
	assert_int_equal(vfmig_dev_process(f.dev), 0);
	assert_true(now_ms() - t0 < 100);
	t = vfmig_dev_get_poll_timeout(f.dev);
	assert_true(t > VFW_MSG_PART_TIMEOUT_MS - 1000);
	assert_true(t <= VFW_MSG_PART_TIMEOUT_MS);
	assert_int_equal(send(f.fd, msg + 10, sizeof(msg) - 10, 0),
			 (ssize_t)(sizeof(msg) - 10));
	assert_int_equal(vfmig_dev_process(f.dev), 1);
	assert_int_equal(vfw_msg_recv(f.fd, &m, 1 << 22, 16), 0);
	assert_int_equal(m.hdr.msg_id, 3);
	assert_false(m.hdr.flags & VFW_FLAGS_ERROR);
	vfw_msg_release(&m);
	assert_int_equal(vfmig_dev_get_poll_timeout(f.dev), -1);
	fx_close(&f);
}

/* Replies bigger than the socket takes are queued; past one largest
 * message the device takes no more commands and asks for POLLOUT only;
 * as the client reads, the rest goes and the commands are served. */
static void test_queue_and_backpressure(void **state)
{
	struct vfw_region_access a = { 0, 0, BAR_SIZE };
	uint8_t reqs[8][sizeof(struct vfw_header) + sizeof(a)];
	int served = 0, got = 0, t;
	struct fx f;

	(void)state;
	fx_open(&f);
	for (int i = 0; i < 8; i++) {
		struct vfw_header h = { .msg_id = (uint16_t)(100 + i),
					.command = VFW_CMD_REGION_READ,
					.msg_size = sizeof(reqs[i]) };
		memcpy(reqs[i], &h, sizeof(h));
		memcpy(reqs[i] + sizeof(h), &a, sizeof(a));
	}
	assert_int_equal(send(f.fd, reqs, sizeof(reqs), 0),
			 (ssize_t)sizeof(reqs));
	int64_t t0 = now_ms();
	served = vfmig_dev_process(f.dev);
	assert_true(now_ms() - t0 < 1000); /* never waited for the socket */
	assert_true(served >= 1 && served < 8);
	assert_int_equal(vfmig_dev_get_poll_events(f.dev), POLLOUT);
	t = vfmig_dev_get_poll_timeout(f.dev);
	assert_true(t > 0 && t <= DEV_TX_DRAIN_MS);
	assert_int_equal(vfmig_dev_process(f.dev), 0); /* still full */
	/* Read every reply, in order, a piece at a time on this one thread,
	 * letting the device go on between the pieces. */
	struct vfw_rx rx;
	vfw_rx_init(&rx);
	t0 = now_ms();
	while (got < 8) {
		struct vfw_msg m;
		int r;

		assert_true(now_ms() - t0 < 5000);
		r = vfmig_dev_process(f.dev);
		assert_true(r >= 0);
		served += r;
		r = vfw_rx_poll(f.fd, &rx, 1 << 22, 16, &m);
		assert_true(r >= 0);
		if (r == 0)
			continue;
		assert_int_equal(m.hdr.msg_id, 100 + got);
		assert_false(m.hdr.flags & VFW_FLAGS_ERROR);
		assert_int_equal(m.len, sizeof(a) + BAR_SIZE);
		vfw_msg_release(&m);
		got++;
	}
	assert_int_equal(served, 8);
	assert_int_equal(vfmig_dev_get_poll_events(f.dev), POLLIN);
	assert_int_equal(vfmig_dev_get_poll_timeout(f.dev), -1);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partial_message),
		cmocka_unit_test(test_queue_and_backpressure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
