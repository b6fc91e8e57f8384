/* SPDX-License-Identifier: MIT */
/* The "regs" sample's state stream; see regs_state.h. */
#include <string.h>

#include "regs_state.h"

static uint8_t *put_be(uint8_t *p, uint64_t v, unsigned int bytes)
{
	for (unsigned int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	return p + bytes;
}

static uint64_t get_be(const uint8_t **p, unsigned int bytes)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < bytes; i++)
		v = (v << 8) | (*p)[i];
	*p += bytes;
	return v;
}

void regs_state_encode(const struct regs_state *s, const void *mem,
		       uint8_t *b)
{
	uint8_t *p;

	p = put_be(b, REGS_MIG_MAGIC, 4);
	p = put_be(p, REGS_MIG_VERSION, 2);
	p = put_be(p, 0, 2);
	p = put_be(p, REGS_MIG_BODY, 4);
	for (int i = 0; i < 8; i++)
		p = put_be(p, s->scratch[i], 4);
	p = put_be(p, s->counter, 4);
	p = put_be(p, s->dma_addr, 8);
	p = put_be(p, s->dma_len, 4);
	p = put_be(p, s->dma_status, 4);
	p = put_be(p, s->dma_error, 4);
	p = put_be(p, s->dma_result, 4);
	p = put_be(p, s->dma_pattern, 4);
	p = put_be(p, REGS_BAR_MEM_SIZE, 4);
	memcpy(p, mem, REGS_BAR_MEM_SIZE);
	p += REGS_BAR_MEM_SIZE;
	put_be(p, regs_fnv1a(b, (unsigned long)(p - b)), 4);
}

const char *regs_state_decode(const uint8_t *buf, size_t len,
			      struct regs_state *n)
{
	const uint8_t *p = buf;

	memset(n, 0, sizeof(*n));
	if (len < REGS_MIG_HDR)
		return "stream shorter than its header";
	if (get_be(&p, 4) != REGS_MIG_MAGIC)
		return "bad magic (not a regs migration stream)";
	if (get_be(&p, 2) != REGS_MIG_VERSION)
		return "unsupported stream version";
	if (get_be(&p, 2) != 0)
		return "unknown flags";
	if (get_be(&p, 4) != REGS_MIG_BODY || len != REGS_MIG_TOTAL)
		return "wrong length";
	p = buf + REGS_MIG_HDR + REGS_MIG_REGS;
	if (get_be(&p, 4) != REGS_BAR_MEM_SIZE)
		return "BAR2 size differs";
	p = buf + REGS_MIG_TOTAL - 4;
	if (get_be(&p, 4) != regs_fnv1a(buf, REGS_MIG_TOTAL - 4))
		return "checksum mismatch (corrupted data)";
	p = buf + REGS_MIG_HDR;
	for (int i = 0; i < 8; i++)
		n->scratch[i] = (uint32_t)get_be(&p, 4);
	n->counter = (uint32_t)get_be(&p, 4);
	n->dma_addr = get_be(&p, 8);
	n->dma_len = (uint32_t)get_be(&p, 4);
	n->dma_status = (uint32_t)get_be(&p, 4);
	n->dma_error = (uint32_t)get_be(&p, 4);
	n->dma_result = (uint32_t)get_be(&p, 4);
	n->dma_pattern = (uint32_t)get_be(&p, 4);
	if (n->dma_pattern > 0xff || n->dma_status > 3)
		return "register out of range";
	return NULL;
}
