/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the return path as the source reads it. The input is
 * what a (hostile) destination sends back; the source's channel reads
 * messages from it until an error, and every message it accepts must be
 * one of the known types with a NUL-terminated text. With bit 1 of the
 * first byte set, the same bytes are what a (hostile) source sends after
 * the stream's END, read by a destination's channel: only COMMIT may come
 * out of it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vfmig_rp_msg m;
	struct vfmig_chan *c;
	char err[256];
	int sv[2];

	/* A socket buffer holds far more than the inputs libFuzzer makes by
	 * default; cut anything that would not fit in one write. */
	if (size > 64 * 1024)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* First byte odd: the rest is frames (type u16, length u32, payload)
	 * whose checksums the harness fills in, so the fuzzer gets past the
	 * CRC to the payload checks. Even: the bytes go out as they are. */
	if (size && (data[0] & 1)) {
		static uint8_t out[64 * 1024 + 4096];
		size_t o = 0, i = 1;
		while (i + 6 <= size && o + 6 + 4 <= sizeof(out)) {
			size_t len = (size_t)data[i + 2] << 24 |
				     (size_t)data[i + 3] << 16 |
				     (size_t)data[i + 4] << 8 | data[i + 5];
			size_t n = len < size - i - 6 ? len : size - i - 6;
			if (o + 6 + n + 4 > sizeof(out))
				break;
			memcpy(out + o, data + i, 6 + n);
			uint32_t crc = (uint32_t)crc32(0, out + o, (uInt)(6 + n));
			o += 6 + n;
			out[o++] = (uint8_t)(crc >> 24);
			out[o++] = (uint8_t)(crc >> 16);
			out[o++] = (uint8_t)(crc >> 8);
			out[o++] = (uint8_t)crc;
			i += 6 + n;
		}
		if (o && write(sv[1], out, o) != (ssize_t)o)
			abort();
	} else if (size && write(sv[1], data, size) != (ssize_t)size) {
		abort();
	}
	close(sv[1]);
	bool source = !(size && (data[0] & 2));
	if (vfmig_chan_adopt_fd(sv[0], source, VFMIG_CHAN_UNIX, &c) < 0)
		abort();
	for (int i = 0; i < 1024; i++) {
		if (vfmig_chan_rp_recv(c, &m, 0, err, sizeof(err)) < 0)
			break;
		if (!source && m.type != VFMIG_RP_COMMIT)
			abort();
		if (source && m.type != VFMIG_RP_SWITCHOVER_ACK &&
		    m.type != VFMIG_RP_RESUMED && m.type != VFMIG_RP_FAILED &&
		    m.type != VFMIG_RP_VERIFIED && m.type != VFMIG_RP_SYNCED &&
		    m.type != VFMIG_RP_WAIT_COMMIT &&
		    m.type != VFMIG_RP_STARTED)
			abort();
		if (!memchr(m.text, 0, sizeof(m.text)))
			abort();
	}
	vfmig_chan_close(c);
	return 0;
}
