/* SPDX-License-Identifier: MIT */
/*
 * Checksums of the stream: zlib CRC-32 of the header (every 1.x version)
 * and the record checksum, whose algorithm the header names
 * (docs/stream-format.md, "Checksums").
 */
#include <errno.h>
#include <stdlib.h>

#include <xxhash.h>
#include <zlib.h>

#include "be.h"
#include "internal.h"

/* The XXH3 passes: where libxxhash has them (x86), the entry points that
 * run the CPU's widest vector code, chosen once at run time; otherwise the
 * library's portable build. Both give the same hash. */
#ifdef VFMIG_XXH3_DISPATCH
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#define xxh3_update XXH3_64bits_update_dispatch
#define xxh3_once XXH3_64bits_dispatch
#else
#define xxh3_update XXH3_64bits_update
#define xxh3_once XXH3_64bits
#endif

const char *vfmig_stream_csum_name(uint16_t algo)
{
	switch (algo) {
	case VFMIG_STREAM_CSUM_CRC32:
		return "crc32";
	case VFMIG_STREAM_CSUM_XXH3:
		return "xxh3";
	default:
		return NULL;
	}
}

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
	c->xxh = NULL;
	switch (algo) {
	case VFMIG_STREAM_CSUM_CRC32:
		return 0;
	case VFMIG_STREAM_CSUM_XXH3:
		c->xxh = XXH3_createState();
		return c->xxh ? 0 : -ENOMEM;
	default:
		return -EINVAL;
	}
}

void vfmig__csum_begin(struct vfmig__csum *c)
{
	if (c->xxh)
		XXH3_64bits_reset(c->xxh);
	else
		c->crc = 0;
}

void vfmig__csum_update(struct vfmig__csum *c, const void *p, size_t len)
{
	if (c->xxh)
		xxh3_update(c->xxh, p, len);
	else
		c->crc = vfmig__crc32(c->crc, p, len);
}

/* XXH3: the low 32 bits of the 64-bit hash (the record's u32 field). */
uint32_t vfmig__csum_end(const struct vfmig__csum *c)
{
	return c->xxh ? (uint32_t)XXH3_64bits_digest(c->xxh) : c->crc;
}

uint32_t vfmig__csum_once(uint16_t algo, const void *p, size_t len)
{
	if (algo == VFMIG_STREAM_CSUM_XXH3)
		return (uint32_t)xxh3_once(p, len);
	return vfmig__crc32(0, p, len);
}

void vfmig__csum_free(struct vfmig__csum *c)
{
	XXH3_freeState(c->xxh);
	c->xxh = NULL;
}

/* ---- sealing: DEVICE_DATA's checksum computed by the data's holder ---- */

struct vfmig_stream_seal {
	XXH3_state_t *st;
};

int vfmig_stream_seal_new(struct vfmig_stream_seal **out)
{
	struct vfmig_stream_seal *s = malloc(sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->st = XXH3_createState();
	if (!s->st) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void vfmig__device_data_head(uint8_t *h, uint16_t dev, uint32_t len)
{
	put_be16(h, VFMIG_REC_DEVICE_DATA);
	put_be16(h + 2, VFMIG_STREAM_F_MUST_UNDERSTAND);
	put_be32(h + 4, len + 2);
	put_be16(h + 8, dev);
}

void vfmig_stream_seal_begin(struct vfmig_stream_seal *s, uint16_t dev, uint32_t len)
{
	uint8_t h[VFMIG__DEVICE_DATA_HEAD];

	/* What the record checksum covers before the data. */
	vfmig__device_data_head(h, dev, len);
	XXH3_64bits_reset(s->st);
	xxh3_update(s->st, h, sizeof(h));
}

void vfmig_stream_seal_update(struct vfmig_stream_seal *s, const void *p, size_t n)
{
	xxh3_update(s->st, p, n);
}

uint32_t vfmig_stream_seal_end(struct vfmig_stream_seal *s)
{
	return (uint32_t)XXH3_64bits_digest(s->st);
}

void vfmig_stream_seal_free(struct vfmig_stream_seal *s)
{
	if (!s)
		return;
	XXH3_freeState(s->st);
	free(s);
}
