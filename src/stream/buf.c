/* SPDX-License-Identifier: MIT */
/* Growable big-endian output buffer (see be.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"

uint8_t *vfmig__buf_grow(struct vfmig__buf *b, size_t n)
{
	uint8_t *p;
	size_t cap;

	if (b->err)
		return NULL;
	if (n > SIZE_MAX / 2 - b->len) {
		b->err = -ENOMEM;
		return NULL;
	}
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->data = p;
		b->cap = cap;
	}
	p = b->data + b->len;
	b->len += n;
	return p;
}

void vfmig__buf_u8(struct vfmig__buf *b, uint8_t v)
{
	uint8_t *p = vfmig__buf_grow(b, 1);

	if (p)
		p[0] = v;
}

void vfmig__buf_u16(struct vfmig__buf *b, uint16_t v)
{
	uint8_t *p = vfmig__buf_grow(b, 2);

	if (p)
		put_be16(p, v);
}

void vfmig__buf_u32(struct vfmig__buf *b, uint32_t v)
{
	uint8_t *p = vfmig__buf_grow(b, 4);

	if (p)
		put_be32(p, v);
}

void vfmig__buf_u64(struct vfmig__buf *b, uint64_t v)
{
	uint8_t *p = vfmig__buf_grow(b, 8);

	if (p)
		put_be64(p, v);
}

void vfmig__buf_bytes(struct vfmig__buf *b, const void *src, size_t n)
{
	uint8_t *p;

	if (n == 0)
		return;
	p = vfmig__buf_grow(b, n);
	if (p)
		memcpy(p, src, n);
}

void vfmig__buf_str(struct vfmig__buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > UINT16_MAX) {
		if (!b->err)
			b->err = -E2BIG;
		return;
	}
	vfmig__buf_u16(b, (uint16_t)n);
	vfmig__buf_bytes(b, s, n);
}

void vfmig__buf_free(struct vfmig__buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}
