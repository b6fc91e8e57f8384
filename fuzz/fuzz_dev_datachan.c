/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the migration data channel as the device library reads
 * it while loading (src/device/datachan.c). The input, after its first
 * byte, is what a (hostile) client sends on its end of a channel attached
 * in RESUMING; then that end shuts its writing down. First byte: bit 0
 * attaches a sealed session (version 2: DATA and SEALED frames), else the
 * raw stream of version 1; bit 1 makes the harness write each whole SEALED
 * frame's checksum right first, so that the load behind a good checksum is
 * reached. The device may answer only DONE (with the count it loaded) or
 * ERROR, and its count of loaded bytes must be what its load callback got.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "device/internal.h"
#include "server_dev.h"
#include "stream/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEAL_INDEX 3

/* Rewrites the checksum of every SEALED frame that lies whole in p. */
static void fix_seals(uint8_t *p, size_t n)
{
	struct vfmig_stream_seal *s;
	size_t off = 0;

	if (vfmig_stream_seal_new(&s) < 0)
		abort();
	while (n - off >= sizeof(struct vfw_dc_frame)) {
		struct vfw_dc_frame h;

		memcpy(&h, p + off, sizeof(h));
		off += sizeof(h);
		if (h.size > n - off)
			break;
		if (h.kind == VFW_DC_SEALED && h.size > 4) {
			uint32_t len = h.size - 4, v;

			vfmig_stream_seal_begin(s, SEAL_INDEX, len);
			vfmig_stream_seal_update(s, p + off, len);
			v = vfmig_stream_seal_end(s);
			for (int i = 0; i < 4; i++)
				p[off + len + (size_t)i] = (uint8_t)(v >> (24 - 8 * i));
		}
		off += h.size;
	}
	vfmig_stream_seal_free(s);
}

/* What the device sent back: only DONE (8 bytes, the count loaded) or
 * ERROR (4 bytes), whole. */
static void check_answers(int fd)
{
	uint8_t b[4096];
	ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	size_t off = 0;

	if (n < 0)
		return;
	while ((size_t)n - off >= sizeof(struct vfw_dc_frame)) {
		struct vfw_dc_frame h;
		uint64_t count;

		memcpy(&h, b + off, sizeof(h));
		off += sizeof(h);
		if (h.kind == VFW_DC_DONE) {
			if (h.size != 8 || (size_t)n - off < 8)
				abort();
			memcpy(&count, b + off, 8);
			if (count != fz_loaded)
				abort(); /* DONE must count what was loaded */
		} else if (h.kind != VFW_DC_ERROR || h.size != 4) {
			abort();
		}
		off += h.size;
	}
	if (off != (size_t)n)
		abort(); /* a frame cut short */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfmig_dev_desc desc = fz_desc();
	struct vfw_data_channel req = { 0 };
	static uint8_t in[64 * 1024];
	vfmig_dev *dev;
	int sv[2];

	/* All of it must fit in the socket's buffer at once. */
	if (!size || size > sizeof(in))
		return 0;
	memcpy(in, data + 1, size - 1);
	if (data[0] & 2)
		fix_seals(in, size - 1);
	if (vfmig_dev_create(&desc, &fz_ops, NULL, &dev) < 0)
		return 0;
	/* The state a negotiated client's SET RESUMING leaves. */
	dev->mig.dc_version = 2;
	dev->mig.state = VFW_MIG_STATE_RESUMING;
	fz_saved = fz_loaded = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
		       sv) < 0)
		abort();
	if (size > 1 && write(sv[1], in, size - 1) != (ssize_t)(size - 1))
		abort();
	if (shutdown(sv[1], SHUT_WR) < 0)
		abort();
	if (data[0] & 1) {
		req.flags = VFW_DC_F_SEAL;
		req.seal_index = SEAL_INDEX;
		req.seal_algo = VFW_DC_SEAL_XXH3;
	}
	if (dev_dc_attach(dev, sv[0], (const uint8_t *)&req, sizeof(req)) != 0)
		abort();
	for (int i = 0; i < 64 && dev->dc.fd >= 0 && !dev->dc.eof &&
			!dev->dc.err; i++)
		dev_dc_pump(dev);
	dev_dc_pump(dev); /* sends what is staged */
	if (dev->dc.fd >= 0 && dev->dc.bytes != fz_loaded)
		abort();
	check_answers(sv[1]);
	dev_dc_close(dev, "fuzz input done");
	vfmig_dev_destroy(dev);
	close(sv[1]);
	return 0;
}
