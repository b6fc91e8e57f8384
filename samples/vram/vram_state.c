/* SPDX-License-Identifier: MIT */
/* The "vram" sample's migration stream (vram_state.h). */
#include <errno.h>
#include <string.h>

#include "vram_state.h"

static uint8_t *put_be(uint8_t *p, uint64_t x, unsigned int bytes)
{
	for (unsigned int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(x >> (8 * (bytes - 1 - i)));
	return p + bytes;
}

static uint64_t get_be(const uint8_t **p, unsigned int bytes)
{
	uint64_t x = 0;

	for (unsigned int i = 0; i < bytes; i++)
		x = (x << 8) | (*p)[i];
	*p += bytes;
	return x;
}

/* ---- encoders ---- */

uint8_t *vram_state_header(uint8_t *p, uint64_t npages)
{
	p = put_be(p, VRAM_MIG_MAGIC, 4);
	p = put_be(p, VRAM_MIG_VERSION, 2);
	p = put_be(p, 0, 2);
	p = put_be(p, VRAM_PAGE_SIZE, 4);
	p = put_be(p, 0, 4);
	return put_be(p, npages, 8);
}

uint8_t *vram_state_rec(uint8_t *p, uint32_t type, uint32_t count,
			uint64_t first)
{
	p = put_be(p, type, 4);
	p = put_be(p, count, 4);
	return put_be(p, first, 8);
}

uint8_t *vram_state_regs(uint8_t *p, const struct vram_regs *r)
{
	p = put_be(p, r->fill_start, 4);
	p = put_be(p, r->fill_count, 4);
	p = put_be(p, r->fill_seed, 4);
	p = put_be(p, r->status, 4);
	p = put_be(p, r->error, 4);
	p = put_be(p, r->csum, 8);
	p = put_be(p, r->dma_addr, 8);
	p = put_be(p, r->dma_len, 4);
	p = put_be(p, r->vram_off, 8);
	p = put_be(p, r->win_off, 8);
	return put_be(p, r->counter, 4);
}

bool vram_state_page_zero(const uint8_t *mem, uint64_t p)
{
	const uint8_t *pg = mem + p * VRAM_PAGE_SIZE;

	return pg[0] == 0 && !memcmp(pg, pg + 1, VRAM_PAGE_SIZE - 1);
}

size_t vram_state_encode(const uint8_t *mem, uint64_t npages,
			 const struct vram_regs *r, uint8_t *out)
{
	uint8_t fixed[VRAM_MIG_HDR + VRAM_REC_HDR + VRAM_MIG_REGS];
	size_t n = 0;

	/* out NULL: the same walk, writing into fixed only */
#define EMIT(end, from) do { \
		size_t k_ = (size_t)((end) - (from)); \
		if (out) \
			memcpy(out + n, (from), k_); \
		n += k_; \
	} while (0)
	EMIT(vram_state_header(fixed, npages), fixed);
	for (uint64_t p = 0; p < npages;) {
		bool zero = vram_state_page_zero(mem, p);
		uint32_t c = 0;

		while (p + c < npages && c < VRAM_RUN_MAX &&
		       vram_state_page_zero(mem, p + c) == zero)
			c++;
		EMIT(vram_state_rec(fixed, zero ? VRAM_REC_ZERO
						: VRAM_REC_PAGES, c, p),
		     fixed);
		if (!zero) {
			if (out)
				memcpy(out + n, mem + p * VRAM_PAGE_SIZE,
				       (size_t)c * VRAM_PAGE_SIZE);
			n += (size_t)c * VRAM_PAGE_SIZE;
		}
		p += c;
	}
	EMIT(vram_state_regs(vram_state_rec(fixed, VRAM_REC_REGS,
					    VRAM_MIG_REGS, 0), r),
	     fixed);
	EMIT(vram_state_rec(fixed, VRAM_REC_END, 0, 0), fixed);
#undef EMIT
	return n;
}

/* ---- load ---- */

void vram_load_reset(struct vram_load *l)
{
	*l = (struct vram_load){ .phase = VRAM_L_HDR, .need = VRAM_MIG_HDR };
}

static int load_bad(struct vram_load *l, const char *why)
{
	l->phase = VRAM_L_BAD;
	l->why = why;
	return -EINVAL;
}

static int load_header(struct vram_load *l, uint64_t npages)
{
	const uint8_t *p = l->hdr;

	if (get_be(&p, 4) != VRAM_MIG_MAGIC)
		return load_bad(l, "bad magic (not a vram migration stream)");
	if (get_be(&p, 2) != VRAM_MIG_VERSION)
		return load_bad(l, "unsupported stream version");
	if (get_be(&p, 2) != 0)
		return load_bad(l, "unknown flags");
	if (get_be(&p, 4) != VRAM_PAGE_SIZE || get_be(&p, 4) != 0)
		return load_bad(l, "page size differs");
	if (get_be(&p, 8) != npages)
		return load_bad(l, "VRAM size differs from this device's");
	l->phase = VRAM_L_REC;
	l->need = VRAM_REC_HDR;
	return 0;
}

static int load_record(struct vram_load *l, uint8_t *mem, uint64_t npages)
{
	const uint8_t *p = l->hdr;
	uint32_t type = (uint32_t)get_be(&p, 4);
	uint32_t count = (uint32_t)get_be(&p, 4);
	uint64_t first = get_be(&p, 8);

	l->need = VRAM_REC_HDR;
	switch (type) {
	case VRAM_REC_PAGES:
	case VRAM_REC_ZERO:
		if (!count || first >= npages || count > npages - first)
			return load_bad(l, "page run outside VRAM");
		if (type == VRAM_REC_ZERO) {
			memset(mem + first * VRAM_PAGE_SIZE, 0,
			       (size_t)count * VRAM_PAGE_SIZE);
			return 0;
		}
		l->phase = VRAM_L_PAGES;
		l->data_off = first * VRAM_PAGE_SIZE;
		l->data_left = (uint64_t)count * VRAM_PAGE_SIZE;
		return 0;
	case VRAM_REC_REGS:
		if (count != VRAM_MIG_REGS || first != 0)
			return load_bad(l, "register block has the wrong size");
		l->phase = VRAM_L_REGS;
		l->need = VRAM_MIG_REGS;
		return 0;
	case VRAM_REC_END:
		if (count || first || !l->regs_seen)
			return load_bad(l, "END record malformed or early");
		l->phase = VRAM_L_DONE;
		return 0;
	default:
		return load_bad(l, "unknown record type");
	}
}

static int load_regs(struct vram_load *l)
{
	const uint8_t *p = l->hdr;
	struct vram_regs *r = &l->regs;

	r->fill_start = (uint32_t)get_be(&p, 4);
	r->fill_count = (uint32_t)get_be(&p, 4);
	r->fill_seed = (uint32_t)get_be(&p, 4);
	r->status = (uint32_t)get_be(&p, 4);
	r->error = (uint32_t)get_be(&p, 4);
	r->csum = get_be(&p, 8);
	r->dma_addr = get_be(&p, 8);
	r->dma_len = (uint32_t)get_be(&p, 4);
	r->vram_off = get_be(&p, 8);
	r->win_off = get_be(&p, 8);
	r->counter = (uint32_t)get_be(&p, 4);
	if (r->status > 3)
		return load_bad(l, "STATUS register out of range");
	l->regs_seen = true;
	l->phase = VRAM_L_REC;
	l->need = VRAM_REC_HDR;
	return 0;
}

uint8_t *vram_load_place(const struct vram_load *l, uint8_t *mem, size_t *len)
{
	if (l->phase == VRAM_L_HDR || l->phase == VRAM_L_REC ||
	    l->phase == VRAM_L_REGS) {
		/* a fixed part: only it, then the next record may be data */
		if (*len > l->need - l->have)
			*len = l->need - l->have;
		return NULL;
	}
	if (l->phase != VRAM_L_PAGES || !l->data_left)
		return NULL;
	if (*len > l->data_left)
		*len = (size_t)l->data_left;
	return mem + l->data_off;
}

ssize_t vram_load_feed(struct vram_load *l, uint8_t *mem, uint64_t npages,
		       const void *buf, size_t len)
{
	const uint8_t *in = buf;
	size_t left = len;
	int r = 0;

	while (left && r == 0) {
		if (l->phase == VRAM_L_BAD)
			return -EINVAL;
		if (l->phase == VRAM_L_DONE)
			return load_bad(l, "data after the END record");
		if (l->phase == VRAM_L_PAGES) {
			size_t n = left < l->data_left ? left
						       : (size_t)l->data_left;
			if (in != mem + l->data_off) /* else placed there */
				memcpy(mem + l->data_off, in, n);
			l->data_off += n;
			l->data_left -= n;
			in += n;
			left -= n;
			if (!l->data_left)
				l->phase = VRAM_L_REC;
			continue;
		}
		size_t n = l->need - l->have < left ? l->need - l->have : left;
		memcpy(l->hdr + l->have, in, n);
		l->have += n;
		in += n;
		left -= n;
		if (l->have < l->need)
			break;
		l->have = 0;
		if (l->phase == VRAM_L_HDR)
			r = load_header(l, npages);
		else if (l->phase == VRAM_L_REC)
			r = load_record(l, mem, npages);
		else
			r = load_regs(l);
	}
	return r < 0 ? r : (ssize_t)len;
}
