/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the migration data channel as the VMM library reads
 * it (src/vmm/datachan.c). The input, after its first byte, is what a
 * (hostile) device sends on its end of the channel socket; then that end
 * shuts its writing down. The first byte's bit 1 picks loading (the VMM
 * sends a few stream bytes and waits for DONE, reading the device's
 * answers), else saving: frames read with bit 0 saying STOP_COPY, each
 * read into a buffer of 1 to 3969 bytes (bits 2..6 pick the size). Bit 7
 * makes the session sealed (version 2): saving, every other SEALED frame
 * is moved (spliced to /dev/null) instead of read; loading, the bytes go
 * in DATA frames. What a read hands out must fit its buffer and, with
 * what was moved, add up to no more than the device sent; every failure
 * ends the session for good.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A device connection with only its data channel: no control socket
 * (fd -1), so nothing but the channel is read. */
static vfmig_vmm_dev *channel_only(int fd, bool load)
{
	vfmig_vmm_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		abort();
	dev->fd = -1;
	dev->reply_timeout_ms = 1000;
	dev->dc.fd = fd;
	dev->dc.load = load; /* dc.buf: the save pump's, not used here */
	dev->seal_index = -1;
	return dev;
}

static void saving(vfmig_vmm_dev *dev, bool stop_copy, size_t cap,
		   size_t sent)
{
	static uint8_t buf[4096];
	static int null_fd = -1;
	uint64_t total = 0;
	int status, r = 0;

	if (null_fd < 0 && (null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
		abort();
	for (int i = 0; i < 4096; i++) {
		r = vmm_dc_read_sealed(dev, buf, cap, stop_copy, i % 2 == 0,
				       &status);
		if (r == 0 && status == VMM_DC_SEALED) {
			size_t n = dev->dc.left;
			if (!dev->dc.sealed || !n || n > VFW_DC_FRAME_MAX)
				abort(); /* only a sealed session's, bounded */
			r = vmm_dc_move(dev, null_fd, 0);
			if (r < 0)
				break;
			total += n + 4;
			if (total > sent)
				abort();
			continue;
		}
		if (r < 0)
			break;
		if ((size_t)r > cap)
			abort();
		total += (uint64_t)r;
		if (total > sent)
			abort(); /* more handed out than the device sent */
		if (status == VMM_DC_END)
			break;
	}
	if (r < 0 && vmm_dc_read(dev, buf, cap, stop_copy, &status) != r)
		abort(); /* a lost session stays lost */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t stream[64] = { 0x56, 0x52, 0x4d, 0x53 };
	int sv[2];

	/* All of it must fit in the socket's buffer at once. */
	if (!size || size > 64 * 1024)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
		       sv) < 0)
		abort();
	if (size > 1 && write(sv[1], data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	/* Reads see EOF after the input; pokes still go in. */
	if (shutdown(sv[1], SHUT_WR) < 0)
		abort();
	bool load = data[0] & 2;
	vfmig_vmm_dev *dev = channel_only(sv[0], load);
	dev->dc.sealed = data[0] & 0x80;
	if (load) {
		int r = vmm_dc_write(dev, stream, sizeof(stream));
		int f = vmm_dc_finish_load(dev);
		if (r < 0 && f != r)
			abort(); /* the write's failure is what finishing says */
		if (dev->dc.fd >= 0)
			abort(); /* finishing closes the channel */
	} else {
		saving(dev, data[0] & 1, 1 + (size_t)((data[0] >> 2) & 31) * 128,
		       size - 1);
	}
	vmm_dc_close(dev);
	close(sv[1]);
	free(dev);
	return 0;
}
