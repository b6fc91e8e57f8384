/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the device library's message handling.
 *
 * Each input is a byte stream a client might send. It is written into one
 * end of a socketpair (then shut for writing), the other end is attached to
 * a fresh device as its connected client, and the device handles messages
 * one at a time until the stream ends; the replies are drained after each
 * message so the device's send queue stays empty and it keeps taking
 * commands (a full queue would stop it reading). The first input
 * byte selects options: bit 0 prepends a valid VERSION handshake so the
 * fuzzer reaches the other commands at once; bit 1 switches the device to
 * the region-based migration interface, so the control-region parser, the
 * data and bitmap regions and their REGION_INFO are fuzzed too. The device's BAR0 callback
 * starts DMA and interrupts, so DMA_READ/WRITE replies, queued commands and
 * IRQ delivery are exercised too. Everything is created and destroyed per
 * input: no fd or allocation outlives an iteration.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device/internal.h"
#include "server_dev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write as much of buf as the socket takes without blocking. */
static void feed(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void drain(int fd)
{
	uint8_t buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void feed_version(int fd)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,"
				   "\"max_data_xfer_size\":4096,"
				   "\"vfmig_mig_info\":{\"version\":1}}}";
	uint8_t msg[sizeof(struct vfw_header) + 4 + sizeof(json)];
	struct vfw_header h = {
		.command = VFW_CMD_VERSION,
		.msg_size = sizeof(msg),
	};
	struct vfw_version v = { 0, 2 };

	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &v, sizeof(v));
	memcpy(msg + sizeof(h) + sizeof(v), json, sizeof(json));
	feed(fd, msg, sizeof(msg));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfmig_dev_desc desc = fz_desc();
	vfmig_dev *dev;
	int sv[2];

	if (size < 1)
		return 0;
	fz_saved = fz_loaded = 0;
	if (vfmig_dev_create(&desc, &fz_ops, NULL, &dev) < 0)
		return 0;
	/* replies stay far below the socket buffer between drains */
	vfmig_dev__set_max_xfer(dev, 16384);
	if ((data[0] & 2) &&
	    vfmig_dev_set_mig_interface(dev, VFMIG_DEV_MIG_IFACE_REGION) < 0) {
		vfmig_dev_destroy(dev);
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		vfmig_dev_destroy(dev);
		return 0;
	}
	if (data[0] & 1)
		feed_version(sv[0]);
	feed(sv[0], data + 1, size - 1);
	shutdown(sv[0], SHUT_WR);
	if (vfmig_dev_attach_fd(dev, sv[1]) == 0) { /* else closed by it */
		for (int i = 0; i < 100000; i++) {
			int r = vfmig_dev__process_one(dev);
			drain(sv[0]);
			if (r <= 0)
				break;
		}
	}
	close(sv[0]);
	vfmig_dev_destroy(dev); /* closes sv[1] if still attached */
	return 0;
}
