/* SPDX-License-Identifier: MIT */
/*
 * The VMM library against a hostile server: a forked child speaks raw
 * vfio-user through the shared protocol code and misbehaves on purpose.
 * Every case checks the documented negative errno; the child checks what
 * the client sent and reports through its exit status. A reply timeout in
 * the options turns a client hang into a test failure.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfmig/vmm.h>

#include "fake_server.h"

static uint64_t dma_written_iova, dma_written_len;

static void on_dma_write(void *priv, uint64_t iova, uint64_t len)
{
	(void)priv;
	dma_written_iova = iova;
	dma_written_len = len;
}

static const struct vfmig_vmm_dev_opts opts = {
	.version = VFMIG_VMM_OPTS_VERSION,
	.on_dma_write = on_dma_write,
	.reply_timeout_ms = 5000,
};

/* Start a script and adopt the socket; expect rc from negotiation. */
static vfmig_vmm_dev *open_dev(struct session *s, script_fn script, int rc)
{
	vfmig_vmm_dev *dev = NULL;

	*s = start(script);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(s->fd, &opts, &dev), rc);
	return dev;
}

/* ---- VERSION ---- */

static void s_bad_major(int fd)
{
	srv_version_with(fd, 1, 0, NULL, 0);
	srv_expect_eof(fd);
}
static void s_high_minor(int fd)
{
	srv_version_with(fd, 0, 99, NULL, 0);
	srv_expect_eof(fd);
}
static void s_bad_json(int fd)
{
	srv_version_with(fd, 0, 2, "{\"capabilities\":{\"max_msg_fds\":", 0);
	srv_expect_eof(fd);
}
static void s_bad_caps_type(int fd)
{
	srv_version_with(fd, 0, 2,
			 "{\"capabilities\":{\"max_msg_fds\":\"many\"}}", 0);
	srv_expect_eof(fd);
}
static void s_version_wrong_id(int fd)
{
	srv_version_with(fd, 0, 2, NULL, 1);
	srv_expect_eof(fd);
}
static void s_version_twin(int fd)
{
	srv_version_with(fd, 0, 2,
			 "{\"capabilities\":{\"twin_socket\":"
			 "{\"supported\":true,\"fd_index\":0}}}",
			 0);
	srv_expect_eof(fd);
}
static void s_version_short(int fd)
{
	struct vfw_msg m;

	srv_recv(fd, &m, VFW_CMD_VERSION);
	CHECK(vfw_send_reply(fd, &m.hdr, "\0", 1) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_version(void **state)
{
	static const struct {
		script_fn fn;
		int rc;
	} cases[] = {
		{ s_bad_major, -EPROTONOSUPPORT },
		{ s_high_minor, -EPROTONOSUPPORT },
		{ s_bad_json, -EPROTO },
		{ s_bad_caps_type, -EPROTO },
		{ s_version_wrong_id, -EPROTO },
		{ s_version_twin, -EPROTO },
		{ s_version_short, -EPROTO },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct session s;
		assert_null(open_dev(&s, cases[i].fn, cases[i].rc));
		finish(&s);
	}
}

static void s_version_ok_minor(int fd)
{
	srv_version_with(fd, 0, 1, NULL, 0); /* no JSON: defaults */
	srv_expect_eof(fd);
}

static void test_version_ok(void **state)
{
	struct session s;
	struct vfmig_vmm_caps caps;
	vfmig_vmm_dev *dev = open_dev(&s, s_version_ok_minor, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_caps(dev, &caps), 0);
	assert_int_equal(caps.minor, 1);
	assert_int_equal(caps.max_msg_fds, 1);
	assert_int_equal(caps.max_data_xfer_size, 1u << 20);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- replies after a good VERSION ---- */

static void s_info_wrong_id(int fd)
{
	struct vfw_msg m;
	struct vfw_device_info di = { 16, 0, 9, 5 };

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	m.hdr.msg_id++;
	CHECK(vfw_send_reply(fd, &m.hdr, &di, sizeof(di)) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void s_info_wrong_cmd(int fd)
{
	struct vfw_msg m;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	m.hdr.command = VFW_CMD_DEVICE_RESET;
	CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void s_info_short(int fd)
{
	struct vfw_msg m;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	CHECK(vfw_send_reply(fd, &m.hdr, "abc", 3) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void s_close_before_reply(int fd)
{
	struct vfw_msg m;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	vfw_msg_release(&m);
}

static void s_close_mid_reply(int fd)
{
	struct vfw_msg m;
	struct vfw_header h;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	h = m.hdr;
	h.flags = VFW_FLAGS_TYPE_REPLY;
	h.msg_size = 16 + 16;
	CHECK(write(fd, &h, sizeof(h)) == sizeof(h));
	CHECK(write(fd, "12345", 5) == 5);
	vfw_msg_release(&m);
}

static void s_huge_msg(int fd)
{
	struct vfw_msg m;
	struct vfw_header h;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	h = m.hdr;
	h.flags = VFW_FLAGS_TYPE_REPLY;
	h.msg_size = 0xffffffffu;
	CHECK(write(fd, &h, sizeof(h)) == sizeof(h));
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void s_unsolicited_reply(int fd)
{
	struct vfw_header h = { .msg_id = 99, .command = 4,
				.flags = VFW_FLAGS_TYPE_REPLY };

	srv_version(fd);
	CHECK(vfw_msg_send(fd, &h, NULL, 0, NULL, 0) == 0);
	srv_expect_eof(fd);
}

static void s_no_reply(int fd)
{
	struct vfw_msg m;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	vfw_msg_release(&m);
	srv_expect_eof(fd); /* client times out and closes */
}

static void test_info_failures(void **state)
{
	static const struct {
		script_fn fn;
		int rc;
	} cases[] = {
		{ s_info_wrong_id, -EPROTO },
		{ s_info_wrong_cmd, -EPROTO },
		{ s_info_short, -EPROTO },
		{ s_close_before_reply, -ECONNRESET },
		{ s_close_mid_reply, -ECONNRESET },
		{ s_huge_msg, -EPROTO },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct session s;
		struct vfmig_vmm_dev_info info;
		vfmig_vmm_dev *dev = open_dev(&s, cases[i].fn, 0);

		assert_int_equal(vfmig_vmm_dev_get_info(dev, &info),
				 cases[i].rc);
		assert_false(vfmig_vmm_dev_connected(dev));
		/* later calls fail fast */
		assert_int_equal(vfmig_vmm_dev_get_info(dev, &info), -ENOTCONN);
		assert_int_equal(vfmig_vmm_dev_reset(dev), -ENOTCONN);
		assert_int_equal(vfmig_vmm_dev_get_poll_fd(dev), -ENOTCONN);
		assert_int_equal(vfmig_vmm_dev_reconnect(dev), -EINVAL);
		finish(&s);
		vfmig_vmm_dev_close(dev);
	}
}

static void test_unsolicited_reply(void **state)
{
	struct session s;
	vfmig_vmm_dev *dev = open_dev(&s, s_unsolicited_reply, 0);
	int fd = vfmig_vmm_dev_get_poll_fd(dev);

	(void)state;
	assert_true(fd >= 0);
	/* wait until the reply is there, then process() must refuse it */
	for (int i = 0; i < 500 && vfmig_vmm_dev_process(dev) == 0; i++)
		usleep(2000);
	assert_false(vfmig_vmm_dev_connected(dev));
	assert_int_equal(vfmig_vmm_dev_process(dev), -ENOTCONN);
	finish(&s);
	vfmig_vmm_dev_close(dev);
}

static void test_timeout(void **state)
{
	struct vfmig_vmm_dev_opts o = opts;
	struct vfmig_vmm_dev_info info;
	vfmig_vmm_dev *dev = NULL;
	struct session s = start(s_no_reply);

	(void)state;
	o.reply_timeout_ms = 200;
	assert_int_equal(vfmig_vmm_dev_adopt_fd(s.fd, &o, &dev), 0);
	assert_int_equal(vfmig_vmm_dev_get_info(dev, &info), -ETIMEDOUT);
	assert_int_equal(vfmig_vmm_dev_get_info(dev, &info), -ENOTCONN);
	finish(&s);
	vfmig_vmm_dev_close(dev);
}

/* ---- error replies keep the connection ---- */

static void s_error_reply(int fd)
{
	struct vfw_msg m;
	struct vfw_device_info di = { 16, VFW_DEVICE_FLAGS_PCI, 9, 5 };

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	CHECK(vfw_send_error(fd, &m.hdr, ENODEV) == 0);
	vfw_msg_release(&m);
	srv_recv(fd, &m, VFW_CMD_DEVICE_RESET);
	CHECK(vfw_send_error(fd, &m.hdr, 0) == 0);
	vfw_msg_release(&m);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_INFO);
	CHECK(vfw_send_reply(fd, &m.hdr, &di, sizeof(di)) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_error_reply(void **state)
{
	struct session s;
	struct vfmig_vmm_dev_info info;
	vfmig_vmm_dev *dev = open_dev(&s, s_error_reply, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_info(dev, &info), -ENODEV);
	assert_int_equal(vfmig_vmm_dev_reset(dev), -EIO);
	assert_int_equal(vfmig_vmm_dev_get_info(dev, &info), 0);
	assert_int_equal(info.num_regions, 9);
	assert_int_equal(info.flags, VFMIG_VMM_DEV_FLAG_PCI);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- DEVICE_GET_REGION_IO_FDS: servers that do not offer it, one that
 * answers badly, one that offers an ioeventfd ---- */

static void io_fds_reply(int fd, struct vfw_msg *m, uint32_t argsz,
			 uint32_t count, const struct vfw_sub_region_ioeventfd *e,
			 const int *fds, size_t nfds)
{
	struct vfw_region_io_fds_request h = { argsz, 0, 0, count };
	struct vfw_header hdr = m->hdr;
	struct iovec iov[2] = { { &h, sizeof(h) },
				{ (void *)e, e ? count * sizeof(*e) : 0 } };

	hdr.flags = VFW_FLAGS_TYPE_REPLY;
	CHECK(vfw_msg_send(fd, &hdr, iov, e ? 2 : 1, fds, nfds) == 0);
}

static void s_io_fds(int fd)
{
	struct vfw_msg m;
	struct vfw_region_io_fds_request req;
	struct vfw_sub_region_ioeventfd e = {
		.offset = 0x1c, .size = 4, .fd_index = 0,
		.type = VFW_IO_FD_TYPE_IOEVENTFD,
	};
	int efd = eventfd(0, EFD_CLOEXEC);

	CHECK(efd >= 0);
	srv_version(fd);
	/* a server without the message (ENOTSUP), one that refuses it */
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_IO_FDS);
	CHECK(vfw_send_error(fd, &m.hdr, ENOTSUP) == 0);
	vfw_msg_release(&m);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_IO_FDS);
	CHECK(vfw_send_error(fd, &m.hdr, EINVAL) == 0);
	vfw_msg_release(&m);
	/* an entry outside the 4 KiB region: refused, connection kept */
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_IO_FDS);
	memcpy(&req, m.payload, sizeof(req));
	CHECK(req.argsz == 16 && req.flags == 0 && req.count == 0);
	io_fds_reply(fd, &m, 56, 1, NULL, NULL, 0);
	vfw_msg_release(&m);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_IO_FDS);
	memcpy(&req, m.payload, sizeof(req));
	CHECK(req.argsz == 56);
	e.offset = 4094;
	io_fds_reply(fd, &m, 56, 1, &e, &efd, 1);
	vfw_msg_release(&m);
	/* a good one, the way libvfio-user answers: the header first */
	e.offset = 0x1c;
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_IO_FDS);
	io_fds_reply(fd, &m, 56, 1, NULL, NULL, 0);
	vfw_msg_release(&m);
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_IO_FDS);
	io_fds_reply(fd, &m, 56, 1, &e, &efd, 1);
	vfw_msg_release(&m);
	/* still connected: a reply of none */
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_IO_FDS);
	io_fds_reply(fd, &m, 16, 0, NULL, NULL, 0);
	vfw_msg_release(&m);
	close(efd);
	srv_expect_eof(fd);
}

static void test_io_fds(void **state)
{
	struct session s;
	struct vfmig_vmm_ioeventfd e[4];
	vfmig_vmm_dev *dev = open_dev(&s, s_io_fds, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_region_io_fds(dev, 0, 4096, e, 4),
			 -ENOTSUP);
	assert_int_equal(vfmig_vmm_dev_get_region_io_fds(dev, 0, 4096, e, 4),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_get_region_io_fds(dev, 0, 4096, e, 4),
			 -EPROTO);
	assert_int_equal(vfmig_vmm_dev_get_region_io_fds(dev, 0, 4096, e, 4),
			 1);
	assert_int_equal(e[0].offset, 0x1c);
	assert_int_equal(e[0].size, 4);
	assert_true(e[0].fd >= 0);
	uint64_t one = 1;
	assert_int_equal(write(e[0].fd, &one, 8), 8);
	vfmig_vmm_ioeventfds_release(e, 1);
	assert_int_equal(e[0].fd, -1);
	assert_int_equal(vfmig_vmm_dev_get_region_io_fds(dev, 0, 4096, e, 4),
			 0);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- REGION_READ ---- */

static void s_region_read(int fd)
{
	struct vfw_msg m;
	struct vfw_region_access a;
	uint8_t data[4096 + 16];

	srv_version(fd);
	/* 6000 bytes with max_data_xfer_size 4096: two chunks, answered */
	for (int i = 0; i < 2; i++) {
		srv_recv(fd, &m, VFW_CMD_REGION_READ);
		CHECK(m.len == sizeof(a));
		memcpy(&a, m.payload, sizeof(a));
		CHECK(a.region == 2 && a.offset == 100u + i * 4096u);
		CHECK(a.count == (i == 0 ? 4096u : 6000u - 4096u));
		memcpy(data, &a, sizeof(a));
		memset(data + 16, 'a' + i, a.count);
		CHECK(vfw_send_reply(fd, &m.hdr, data, 16 + a.count) == 0);
		vfw_msg_release(&m);
	}
	/* then a reply with a larger count than asked */
	srv_recv(fd, &m, VFW_CMD_REGION_READ);
	memcpy(&a, m.payload, sizeof(a));
	a.count += 8;
	memcpy(data, &a, sizeof(a));
	CHECK(vfw_send_reply(fd, &m.hdr, data, 16 + a.count) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_region_read(void **state)
{
	struct session s;
	static uint8_t buf[6000];
	vfmig_vmm_dev *dev = open_dev(&s, s_region_read, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_region_read(dev, 2, 100, buf, 6000), 0);
	assert_int_equal(buf[0], 'a');
	assert_int_equal(buf[4095], 'a');
	assert_int_equal(buf[4096], 'b');
	assert_int_equal(buf[5999], 'b');
	assert_int_equal(vfmig_vmm_dev_region_read(dev, 2, 0, buf, 16),
			 -EPROTO);
	assert_int_equal(vfmig_vmm_dev_region_read(dev, 2, 0, buf, 16),
			 -ENOTCONN);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

static void s_region_write_bad_echo(int fd)
{
	struct vfw_msg m;
	struct vfw_region_access a;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_REGION_WRITE);
	CHECK(m.len == sizeof(a) + 8);
	memcpy(&a, m.payload, sizeof(a));
	a.offset ^= 1;
	CHECK(vfw_send_reply(fd, &m.hdr, &a, sizeof(a)) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_region_write_bad_echo(void **state)
{
	struct session s;
	vfmig_vmm_dev *dev = open_dev(&s, s_region_write_bad_echo, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_region_write(dev, 0, 8, "12345678", 8),
			 -EPROTO);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- region info ---- */

static void send_region_info(int fd, struct vfw_msg *m, uint32_t argsz,
			     uint32_t cap_off, uint32_t next, size_t len)
{
	uint8_t buf[1024] = { 0 };
	struct vfw_region_info ri = {
		.argsz = argsz,
		.flags = VFW_REGION_INFO_FLAG_READ | VFW_REGION_INFO_FLAG_CAPS,
		.index = 1,
		.cap_offset = cap_off,
		.size = 0x10000,
	};
	struct vfw_info_cap_header h = { VFW_REGION_INFO_CAP_MSIX_MAPPABLE, 1,
					 next };

	memcpy(buf, &ri, sizeof(ri));
	memcpy(buf + 32, &h, sizeof(h));
	CHECK(vfw_send_reply(fd, &m->hdr, buf, len) == 0);
}

static void s_region_info(int fd)
{
	struct vfw_msg m;
	struct vfw_region_info req;

	srv_version(fd);
	/* first: claim 800 bytes are needed, send the truncated struct */
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_INFO);
	memcpy(&req, m.payload, sizeof(req));
	CHECK(req.index == 1 && req.argsz == 512);
	send_region_info(fd, &m, 800, 0, 0, 32);
	vfw_msg_release(&m);
	/* the retry asks for 800; answer properly */
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_INFO);
	memcpy(&req, m.payload, sizeof(req));
	CHECK(req.argsz == 800);
	send_region_info(fd, &m, 800, 32, 0, 800);
	vfw_msg_release(&m);
	/* then a looping chain */
	srv_recv(fd, &m, VFW_CMD_DEVICE_GET_REGION_INFO);
	send_region_info(fd, &m, 40, 32, 32, 40);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_region_info(void **state)
{
	struct session s;
	struct vfmig_vmm_region_info info;
	vfmig_vmm_dev *dev = open_dev(&s, s_region_info, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_get_region_info(dev, 1, &info), 0);
	assert_true(info.msix_mappable);
	assert_int_equal(info.size, 0x10000);
	assert_int_equal(info.fd, -1);
	assert_int_equal(info.flags, VFMIG_VMM_REGION_READ);
	vfmig_vmm_region_info_release(&info);
	assert_int_equal(vfmig_vmm_dev_get_region_info(dev, 1, &info),
			 -EPROTO);
	assert_null(info.areas);
	assert_int_equal(info.fd, -1);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- DMA served from the client ---- */

static void dma_req(int fd, uint16_t id, uint16_t cmd, uint64_t addr,
		    uint64_t count, const void *data, size_t dlen)
{
	struct vfw_dma_access a = { addr, count };
	struct vfw_header h = { .msg_id = id, .command = cmd };
	struct iovec iov[2] = { { &a, sizeof(a) }, { (void *)data, dlen } };

	CHECK(vfw_msg_send(fd, &h, iov, dlen ? 2 : 1, NULL, 0) == 0);
}

static void expect_dma_error(int fd, uint16_t id, uint32_t err)
{
	struct vfw_msg r;

	CHECK(vfw_msg_recv(fd, &r, SRV_MAX_MSG, 0) == 0);
	CHECK(r.hdr.msg_id == id);
	CHECK(r.hdr.flags == (VFW_FLAGS_TYPE_REPLY | VFW_FLAGS_ERROR));
	CHECK(r.hdr.error == err);
	vfw_msg_release(&r);
}

static void s_dma(int fd)
{
	struct vfw_msg m, r;
	struct vfw_dma_access a;
	struct vfw_dma_map map;

	srv_version(fd);
	srv_recv(fd, &m, VFW_CMD_DMA_MAP);
	CHECK(m.len == sizeof(map) && m.nfds == 0);
	memcpy(&map, m.payload, sizeof(map));
	CHECK(map.address == 0x10000 && map.size == 0x1000);
	CHECK(map.flags == (VFW_DMA_READABLE | VFW_DMA_WRITEABLE));
	CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);

	/* the client resets; meanwhile we do DMA */
	srv_recv(fd, &m, VFW_CMD_DEVICE_RESET);
	dma_req(fd, 500, VFW_CMD_DMA_READ, 0x20000, 8, NULL, 0); /* outside */
	expect_dma_error(fd, 500, EFAULT);
	dma_req(fd, 501, VFW_CMD_DMA_READ, 0x10ff0, 0x20, NULL, 0); /* spans */
	expect_dma_error(fd, 501, EFAULT);
	dma_req(fd, 502, VFW_CMD_DMA_WRITE, 0x10000, 8, "abc", 3); /* count */
	expect_dma_error(fd, 502, EINVAL);
	dma_req(fd, 503, VFW_CMD_DMA_READ, 0x10000, 1u << 30, NULL, 0);
	expect_dma_error(fd, 503, EINVAL);
	dma_req(fd, 504, VFW_CMD_DMA_WRITE, 0x10100, 5, "hello", 5);
	CHECK(vfw_msg_recv(fd, &r, SRV_MAX_MSG, 0) == 0);
	CHECK(r.hdr.msg_id == 504 && r.len == 16);
	memcpy(&a, r.payload, sizeof(a));
	CHECK(a.address == 0x10100 && a.count == 5);
	vfw_msg_release(&r);
	dma_req(fd, 505, VFW_CMD_DMA_READ, 0x10100, 5, NULL, 0);
	CHECK(vfw_msg_recv(fd, &r, SRV_MAX_MSG, 0) == 0);
	CHECK(r.hdr.msg_id == 505 && r.len == 16 + 5);
	CHECK(memcmp(r.payload + 16, "hello", 5) == 0);
	vfw_msg_release(&r);
	{ /* an unknown command is refused, not fatal */
		struct vfw_header h = { .msg_id = 506,
					.command = VFW_CMD_VERSION };
		CHECK(vfw_msg_send(fd, &h, NULL, 0, NULL, 0) == 0);
		expect_dma_error(fd, 506, EOPNOTSUPP);
	}
	CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);

	/* between calls: a DMA_READ served by process() */
	dma_req(fd, 600, VFW_CMD_DMA_READ, 0x10000, 4, NULL, 0);
	CHECK(vfw_msg_recv(fd, &r, SRV_MAX_MSG, 0) == 0);
	CHECK(r.hdr.msg_id == 600 && r.len == 20);
	CHECK(memcmp(r.payload + 16, "init", 4) == 0);
	vfw_msg_release(&r);

	srv_recv(fd, &m, VFW_CMD_DMA_UNMAP);
	CHECK(vfw_send_reply(fd, &m.hdr, m.payload, m.len) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_dma(void **state)
{
	struct session s;
	static uint8_t mem[0x1000];
	vfmig_vmm_dev *dev = open_dev(&s, s_dma, 0);
	int n = 0;

	(void)state;
	memcpy(mem, "init", 4);
	assert_int_equal(vfmig_vmm_dev_dma_map(dev, 0x10000, 0x1000, -1, 0,
					       mem,
					       VFMIG_VMM_DMA_READ |
						       VFMIG_VMM_DMA_WRITE),
			 0);
	assert_int_equal(vfmig_vmm_dev_dma_map(dev, 0x10800, 0x1000, -1, 0,
					       mem, VFMIG_VMM_DMA_READ),
			 -EEXIST);
	assert_int_equal(vfmig_vmm_dev_reset(dev), 0);
	assert_memory_equal(mem + 0x100, "hello", 5);
	assert_int_equal(dma_written_iova, 0x10100);
	assert_int_equal(dma_written_len, 5);
	for (int i = 0; i < 500 && n == 0; i++) {
		n = vfmig_vmm_dev_process(dev);
		if (n == 0)
			usleep(2000);
	}
	assert_int_equal(n, 1);
	assert_int_equal(vfmig_vmm_dev_dma_unmap(dev, 0x10000, 0x800), -ENOENT);
	assert_int_equal(vfmig_vmm_dev_dma_unmap(dev, 0x10000, 0x1000), 0);
	assert_int_equal(vfmig_vmm_dev_dma_unmap(dev, 0x10000, 0x1000), -ENOENT);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- IRQs: eventfds split by max_msg_fds (2 here) ---- */

static void s_irqs(int fd)
{
	static const uint32_t expect[3][2] = { { 3, 2 }, { 5, 2 }, { 7, 1 } };
	struct vfw_msg m;
	struct vfw_irq_set set;

	srv_version(fd);
	for (int i = 0; i < 3; i++) {
		srv_recv(fd, &m, VFW_CMD_DEVICE_SET_IRQS);
		CHECK(m.len == sizeof(set));
		memcpy(&set, m.payload, sizeof(set));
		CHECK(set.flags == (VFW_IRQ_SET_DATA_EVENTFD |
				    VFW_IRQ_SET_ACTION_TRIGGER));
		CHECK(set.index == 2 && set.start == expect[i][0]);
		CHECK(set.count == expect[i][1] && m.nfds == expect[i][1]);
		CHECK(set.argsz == sizeof(set));
		/* prove the fds work: signal the first one */
		uint64_t one = 1;
		CHECK(write(m.fds[0], &one, 8) == 8);
		CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
		vfw_msg_release(&m);
	}
	srv_recv(fd, &m, VFW_CMD_DEVICE_SET_IRQS);
	CHECK(m.len == sizeof(set) + 3);
	memcpy(&set, m.payload, sizeof(set));
	CHECK(set.flags == (VFW_IRQ_SET_DATA_BOOL | VFW_IRQ_SET_ACTION_MASK));
	CHECK(set.argsz == sizeof(set) + 3 && set.count == 3);
	CHECK(memcmp(m.payload + sizeof(set), "\1\0\1", 3) == 0);
	CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);
	srv_recv(fd, &m, VFW_CMD_DEVICE_SET_IRQS);
	memcpy(&set, m.payload, sizeof(set));
	CHECK(set.flags == (VFW_IRQ_SET_DATA_NONE | VFW_IRQ_SET_ACTION_TRIGGER));
	CHECK(set.count == 0 && set.start == 0 && set.index == 1);
	CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_irqs(void **state)
{
	struct session s;
	int efd[5];
	uint64_t v;
	vfmig_vmm_dev *dev = open_dev(&s, s_irqs, 0);

	(void)state;
	for (int i = 0; i < 5; i++)
		efd[i] = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(vfmig_vmm_dev_set_irq_eventfds(dev, 2, 3, efd, 5), 0);
	assert_int_equal(read(efd[0], &v, 8), 8);
	assert_int_equal(read(efd[2], &v, 8), 8);
	assert_int_equal(read(efd[4], &v, 8), 8);
	assert_int_equal(read(efd[1], &v, 8), -1);
	assert_int_equal(vfmig_vmm_dev_set_irq_action(dev, 2, 0, 3,
						      VFMIG_VMM_IRQ_MASK,
						      (const uint8_t *)"\1\0\1"),
			 0);
	assert_int_equal(vfmig_vmm_dev_set_irq_action(dev, 2, 0, 0,
						      VFMIG_VMM_IRQ_MASK, NULL),
			 -EINVAL);
	assert_int_equal(vfmig_vmm_dev_irq_disable(dev, 1), 0);
	for (int i = 0; i < 5; i++)
		close(efd[i]);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- features and migration data (lvu padding quirk) ---- */

static void s_mig(int fd)
{
	struct vfw_msg m;
	struct vfw_mig_data md;
	uint8_t buf[8 + 64] = { 0 };

	srv_version(fd);
	/* GET MIGRATION: reply carries u64 flags */
	srv_recv(fd, &m, VFW_CMD_DEVICE_FEATURE);
	{
		struct vfw_device_feature f;
		uint64_t fl = VFW_MIGRATION_STOP_COPY | VFW_MIGRATION_PRE_COPY;
		memcpy(&f, m.payload, sizeof(f));
		CHECK(f.argsz == 16 && f.flags == (VFW_FEATURE_GET | 1));
		memcpy(buf, &f, sizeof(f));
		memcpy(buf + 8, &fl, 8);
		CHECK(vfw_send_reply(fd, &m.hdr, buf, 16) == 0);
	}
	vfw_msg_release(&m);
	/* a GET whose true size exceeds argsz */
	srv_recv(fd, &m, VFW_CMD_DEVICE_FEATURE);
	{
		struct vfw_device_feature f = { 8 + 100, VFW_FEATURE_GET | 8 };
		CHECK(vfw_send_reply(fd, &m.hdr, &f, sizeof(f)) == 0);
	}
	vfw_msg_release(&m);
	/* MIG_DATA_READ of 64: padded reply, size 10 */
	srv_recv(fd, &m, VFW_CMD_MIG_DATA_READ);
	memcpy(&md, m.payload, sizeof(md));
	CHECK(md.argsz == 8 + 64 && md.size == 64);
	md = (struct vfw_mig_data){ 8 + 10, 10 };
	memcpy(buf, &md, sizeof(md));
	memcpy(buf + 8, "0123456789", 10);
	CHECK(vfw_send_reply(fd, &m.hdr, buf, sizeof(buf)) == 0);
	vfw_msg_release(&m);
	/* MIG_DATA_WRITE of 5000 with max_xfer 4096: two messages */
	for (int i = 0; i < 2; i++) {
		srv_recv(fd, &m, VFW_CMD_MIG_DATA_WRITE);
		memcpy(&md, m.payload, sizeof(md));
		uint32_t want = i == 0 ? 4096 : 904;
		CHECK(md.size == want && md.argsz == 8 + want);
		CHECK(m.len == 8 + want);
		CHECK(vfw_send_reply(fd, &m.hdr, NULL, 0) == 0);
		vfw_msg_release(&m);
	}
	/* MIG_DATA_READ claiming more than arrived */
	srv_recv(fd, &m, VFW_CMD_MIG_DATA_READ);
	md = (struct vfw_mig_data){ 8 + 64, 64 };
	memcpy(buf, &md, sizeof(md));
	CHECK(vfw_send_reply(fd, &m.hdr, buf, 8 + 20) == 0);
	vfw_msg_release(&m);
	srv_expect_eof(fd);
}

static void test_mig(void **state)
{
	struct session s;
	static uint8_t big[5000];
	uint8_t out[64];
	uint64_t fl = 0;
	size_t got = 0;
	vfmig_vmm_dev *dev = open_dev(&s, s_mig, 0);

	(void)state;
	assert_int_equal(vfmig_vmm_dev_feature(dev, VFMIG_VMM_FEATURE_GET | 1,
					       NULL, 0, &fl, sizeof(fl), &got),
			 0);
	assert_int_equal(got, 8);
	assert_int_equal(fl, VFW_MIGRATION_STOP_COPY | VFW_MIGRATION_PRE_COPY);
	assert_int_equal(vfmig_vmm_dev_feature(dev, VFMIG_VMM_FEATURE_GET | 8,
					       NULL, 0, out, 16, &got),
			 -E2BIG);
	assert_int_equal(got, 100);
	assert_int_equal(vfmig_vmm_dev_mig_data_read(dev, out, 64), 10);
	assert_memory_equal(out, "0123456789", 10);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(dev, big, sizeof(big)), 0);
	assert_int_equal(vfmig_vmm_dev_mig_data_read(dev, out, 64), -EPROTO);
	vfmig_vmm_dev_close(dev);
	finish(&s);
}

/* ---- connect by path with retry, and reconnect ---- */

static void test_connect_missing(void **state)
{
	struct vfmig_vmm_dev_opts o = opts;
	vfmig_vmm_dev *dev = NULL;

	(void)state;
	o.connect_timeout_ms = 50;
	assert_int_equal(vfmig_vmm_dev_connect("/nonexistent/vfmig.sock", &o,
					       &dev),
			 -ENOENT);
	assert_null(dev);
	o.version = 99;
	assert_int_equal(vfmig_vmm_dev_connect("/x", &o, &dev), -EINVAL);
	assert_int_equal(vfmig_vmm_dev_adopt_fd(-1, &opts, &dev), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_version_ok),
		cmocka_unit_test(test_info_failures),
		cmocka_unit_test(test_unsolicited_reply),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_io_fds),
		cmocka_unit_test(test_region_read),
		cmocka_unit_test(test_region_write_bad_echo),
		cmocka_unit_test(test_region_info),
		cmocka_unit_test(test_dma),
		cmocka_unit_test(test_irqs),
		cmocka_unit_test(test_mig),
		cmocka_unit_test(test_connect_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
