/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the "dma" sample device's migration state, as a
 * destination device reads it from the stream (any peer may have written
 * it). The first byte chooses what the rest is:
 *   bit 1 clear: a saved state. Bit 0 set: the harness writes the body
 *     length and the checksum again, so the fuzzer gets past them to the
 *     fields. What decodes must satisfy what the engine relies on and
 *     encode back to the same bytes.
 *   bit 1 set: descriptors as a guest writes them (64 bytes, then the
 *     scatter list's 256 bytes), queued the way the engine fetches them.
 *     Whatever the engine queues, its saved state must load again.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dma_state.h"
#include "fnv1a.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* What the engine's step() and complete() index with a loaded state. */
static void check_state(const struct dma_state *s)
{
	if (s->qn > DMA_QMAX)
		abort();
	if (s->ctrl & DMA_CTRL_ENABLE) {
		if (!dma_ring_size_ok(s->sq_size) ||
		    s->sq_tail - s->sq_head > s->sq_size)
			abort();
		for (unsigned int q = 0; q < DMA_NCQ; q++)
			if (!dma_ring_size_ok(s->cq[q].size))
				abort();
	}
	for (uint32_t i = 0; i < s->qn; i++) {
		const struct dma_req *r = &s->q[i];
		if (r->cq >= DMA_NCQ || r->nseg > DMA_MAX_SEGS)
			abort();
		if (r->err || r->done >= r->len)
			continue;
		/* The position to work on next lies inside a segment. */
		uint64_t pos = r->done;
		unsigned int k = 0;
		while (k < r->nseg && pos >= r->seg[k].len)
			pos -= r->seg[k++].len;
		if (k >= r->nseg)
			abort();
	}
}

static void saved_state(const uint8_t *data, size_t size, bool fix)
{
	static uint8_t buf[DMA_MIG_MAX + 64], again[DMA_MIG_MAX];
	struct dma_state s;

	if (size > sizeof(buf))
		return;
	memcpy(buf, data, size);
	if (fix && size >= DMA_MIG_HDR + 4) {
		put_be32(buf + 8, (uint32_t)(size - DMA_MIG_HDR - 4));
		put_be32(buf + size - 4, fnv1a(buf, size - 4));
	}
	if (dma_state_decode(buf, size, &s))
		return;
	check_state(&s);
	size_t n = dma_state_encode(&s, again);
	if (n != size || memcmp(again, buf, size))
		abort(); /* one state, one encoding */
}

static void fetched(const uint8_t *data, size_t size)
{
	static uint8_t blob[DMA_MIG_MAX];
	const size_t one = DMA_DESC_SIZE + DMA_MAX_SEGS * DMA_SEG_SIZE;
	struct dma_state s, back;

	memset(&s, 0, sizeof(s));
	while (size >= 1 + DMA_DESC_SIZE && s.qn < DMA_QMAX) {
		/* A control byte: the scatter list was unreadable (EFAULT),
		 * and how far the request got (in whole segments). */
		uint8_t ctl = data[0];
		const uint8_t *desc = data + 1;
		uint8_t sgl[DMA_MAX_SEGS * DMA_SEG_SIZE] = { 0 };
		size_t n = size - 1 - DMA_DESC_SIZE;
		if (n > sizeof(sgl))
			n = sizeof(sgl);
		memcpy(sgl, data + 1 + DMA_DESC_SIZE, n);
		struct dma_req *r = &s.q[s.qn++];
		dma_req_decode(r, desc, (ctl & 1) ? NULL : sgl,
			       (ctl & 1) ? -14 /* EFAULT */ : 0);
		for (unsigned int k = 0; !r->err && k < (ctl >> 1) % 17 &&
					 k < r->nseg; k++)
			r->done += r->seg[k].len;
		if (size < 1 + one)
			break;
		data += 1 + one;
		size -= 1 + one;
	}
	size_t len = dma_state_encode(&s, blob);
	const char *why = dma_state_decode(blob, len, &back);
	if (why)
		abort(); /* the engine queued what no destination loads */
	check_state(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 2)
		fetched(data + 1, size - 1);
	else
		saved_state(data + 1, size - 1, data[0] & 1);
	return 0;
}
