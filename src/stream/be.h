/* SPDX-License-Identifier: MIT */
/*
 * Big-endian encode/decode helpers for the migration stream, plus a bounded
 * read cursor and a growable write buffer. The stream never memcpy()s a host
 * struct: every field goes through these helpers, one byte at a time.
 *
 * Internal to libvfmig_stream.
 */
#ifndef VFMIG_STREAM_BE_H
#define VFMIG_STREAM_BE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/*
 * Read cursor over an untrusted byte range. Every getter checks the bounds
 * first; once a read fails the cursor is "bad" and all later reads fail too,
 * so a parser may check once at the end of a group of reads.
 */
struct vfmig__cur {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool bad;
};

static inline void vfmig__cur_init(struct vfmig__cur *c, const void *p, size_t len)
{
	c->p = p;
	c->len = len;
	c->pos = 0;
	c->bad = false;
}

static inline size_t vfmig__cur_left(const struct vfmig__cur *c)
{
	return c->bad ? 0 : c->len - c->pos;
}

/* Returns a pointer to the next n bytes and advances, or NULL (cursor bad). */
static inline const uint8_t *vfmig__cur_take(struct vfmig__cur *c, size_t n)
{
	const uint8_t *p;

	if (c->bad || n > c->len - c->pos) {
		c->bad = true;
		return NULL;
	}
	p = c->p + c->pos;
	c->pos += n;
	return p;
}

static inline uint8_t vfmig__cur_u8(struct vfmig__cur *c)
{
	const uint8_t *p = vfmig__cur_take(c, 1);

	return p ? p[0] : 0;
}

static inline uint16_t vfmig__cur_u16(struct vfmig__cur *c)
{
	const uint8_t *p = vfmig__cur_take(c, 2);

	return p ? get_be16(p) : 0;
}

static inline uint32_t vfmig__cur_u32(struct vfmig__cur *c)
{
	const uint8_t *p = vfmig__cur_take(c, 4);

	return p ? get_be32(p) : 0;
}

static inline uint64_t vfmig__cur_u64(struct vfmig__cur *c)
{
	const uint8_t *p = vfmig__cur_take(c, 8);

	return p ? get_be64(p) : 0;
}

/*
 * Growable output buffer with a sticky error (-ENOMEM, or -E2BIG when a
 * string is longer than its u16 length prefix allows). Callers append freely
 * and check buf.err once.
 */
struct vfmig__buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	int err;
};

/* Reserves n bytes at the end and returns them, or NULL with err set. */
uint8_t *vfmig__buf_grow(struct vfmig__buf *b, size_t n);
void vfmig__buf_u8(struct vfmig__buf *b, uint8_t v);
void vfmig__buf_u16(struct vfmig__buf *b, uint16_t v);
void vfmig__buf_u32(struct vfmig__buf *b, uint32_t v);
void vfmig__buf_u64(struct vfmig__buf *b, uint64_t v);
void vfmig__buf_bytes(struct vfmig__buf *b, const void *p, size_t n);
/* A string: be16 length, then the bytes, no NUL. NULL is the empty string. */
void vfmig__buf_str(struct vfmig__buf *b, const char *s);
void vfmig__buf_free(struct vfmig__buf *b);

#endif
