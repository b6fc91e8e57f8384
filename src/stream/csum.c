/* SPDX-License-Identifier: MIT */
/*
 * Checksums of the stream: zlib CRC-32 of the header (every 1.x version)
 * and the record checksum, whose algorithm the header names
 * (docs/stream-format.md, "Checksums").
 */
#include <errno.h>

#include <zlib.h>

#include "internal.h"

uint32_t vfmig__crc32(uint32_t crc, const void *p, size_t len)
{
	const Bytef *b = p;

	while (len) {
		uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;

		crc = (uint32_t)crc32(crc, b, n);
		b += n;
		len -= n;
	}
	return crc;
}

int vfmig__csum_init(struct vfmig__csum *c, uint16_t algo)
{
	c->algo = algo;
	c->crc = 0;
	switch (algo) {
	case VFMIG_STREAM_CSUM_CRC32:
		return 0;
	default:
		return -EINVAL;
	}
}

void vfmig__csum_begin(struct vfmig__csum *c)
{
	c->crc = 0;
}

void vfmig__csum_update(struct vfmig__csum *c, const void *p, size_t len)
{
	c->crc = vfmig__crc32(c->crc, p, len);
}

uint32_t vfmig__csum_end(const struct vfmig__csum *c)
{
	return c->crc;
}

void vfmig__csum_free(struct vfmig__csum *c)
{
	(void)c;
}
