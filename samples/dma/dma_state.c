/* SPDX-License-Identifier: MIT */
/* The "dma" sample's state stream and descriptor decoding; see dma_state.h. */
#include <errno.h>
#include <string.h>

#include "dma_state.h"

bool dma_ring_size_ok(uint32_t n)
{
	return n >= 2 && n <= DMA_RING_MAX && !(n & (n - 1));
}

static uint64_t le_get(const uint8_t *b, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = n; i-- > 0;)
		v = v << 8 | b[i];
	return v;
}

/* What the engine needs of a request it works on: the layout a descriptor
 * must have (dma_hw.h), whether it came from guest memory or a stream. */
static bool req_layout_ok(const struct dma_req *r)
{
	uint64_t sum = 0;

	if (r->op < DMA_OP_COPY || r->op > DMA_OP_CSUM || r->cq >= DMA_NCQ ||
	    !r->nseg || r->nseg > DMA_MAX_SEGS || !r->len ||
	    r->len > DMA_MAX_LEN || (r->len & 7))
		return false;
	for (unsigned int i = 0; i < r->nseg; i++) {
		if (!r->seg[i].len || (r->seg[i].len & 7) ||
		    (r->seg[i].addr & 7) || r->seg[i].len > DMA_MAX_LEN)
			return false;
		sum += r->seg[i].len; /* at most 16 x 4 MiB: no overflow */
	}
	return sum == r->len;
}

void dma_req_decode(struct dma_req *r, const uint8_t *desc,
		    const uint8_t *sgl, int sgl_err)
{
	int e = sgl ? 0 : sgl_err;

	memset(r, 0, sizeof(*r));
	r->seq = le_get(desc + DMA_DESC_SEQ, 8);
	r->op = (uint32_t)le_get(desc + DMA_DESC_OP, 4);
	r->cq = (uint16_t)le_get(desc + DMA_DESC_CQ, 2);
	r->nseg = (uint16_t)le_get(desc + DMA_DESC_NSEG, 2);
	r->src = le_get(desc + DMA_DESC_SRC, 8);
	r->len = le_get(desc + DMA_DESC_LEN, 8);
	r->sgl = le_get(desc + DMA_DESC_SGL, 8);
	for (unsigned int i = 0; sgl && i < r->nseg && i < DMA_MAX_SEGS; i++) {
		r->seg[i].addr = le_get(sgl + i * DMA_SEG_SIZE, 8);
		r->seg[i].len = le_get(sgl + i * DMA_SEG_SIZE + 8, 8);
	}
	if (e == 0) {
		for (unsigned int i = 40; i < DMA_DESC_SIZE; i++)
			if (desc[i])
				e = -EINVAL;
		if (!sgl || !req_layout_ok(r))
			e = -EINVAL;
	}
	if (e < 0)
		r->err = (uint32_t)-e;
	/* A refused request only completes (with its seq, op and err), but it
	 * is saved whole while queued: keep its counts in range. */
	if (r->cq >= DMA_NCQ)
		r->cq = 0;
	if (r->nseg > DMA_MAX_SEGS)
		r->nseg = 0;
	r->acc = DMA_CSUM_INIT;
}

/* ---- the stream ---- */

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 0x811c9dc5u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

static uint8_t *put(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return p + n;
}

size_t dma_state_encode(const struct dma_state *s, uint8_t *b)
{
	uint8_t *p = b + DMA_MIG_HDR;

	p = put(p, s->sq_base, 8);
	p = put(p, s->sq_size, 4);
	p = put(p, s->sq_tail, 4);
	p = put(p, s->sq_head, 4);
	p = put(p, s->ctrl, 4);
	p = put(p, s->status, 4);
	p = put(p, s->error, 4);
	p = put(p, s->done, 4);
	if (s->sq_shadow)
		p = put(p, s->sq_shadow, 8);
	for (unsigned int q = 0; q < DMA_NCQ; q++) {
		p = put(p, s->cq[q].base, 8);
		p = put(p, s->cq[q].size, 4);
		p = put(p, s->cq[q].count, 4);
		p = put(p, s->cq[q].irq_pending, 1);
	}
	p = put(p, s->qn, 4);
	for (uint32_t i = 0; i < s->qn && i < DMA_QMAX; i++) {
		const struct dma_req *r = &s->q[i];
		p = put(p, r->seq, 8);
		p = put(p, r->src, 8);
		p = put(p, r->len, 8);
		p = put(p, r->sgl, 8);
		p = put(p, r->op, 4);
		p = put(p, r->cq, 2);
		p = put(p, r->nseg, 2);
		for (unsigned int k = 0; k < r->nseg && k < DMA_MAX_SEGS; k++) {
			p = put(p, r->seg[k].addr, 8);
			p = put(p, r->seg[k].len, 8);
		}
		p = put(p, r->done, 8);
		p = put(p, r->acc, 8);
		p = put(p, r->err, 4);
	}
	size_t body = (size_t)(p - b) - DMA_MIG_HDR;
	/* Version 1 while there is no shadow: what older devices read. */
	put(put(put(b, DMA_MIG_MAGIC, 4), s->sq_shadow ? 2 : 1, 2), 0, 2);
	put(b + 8, body, 4);
	p = put(p, fnv1a(b, (size_t)(p - b)), 4);
	return (size_t)(p - b);
}

/* A reader that refuses to run past its end. */
struct rd {
	const uint8_t *p, *end;
	bool short_;
};

static uint64_t get(struct rd *r, unsigned int n)
{
	uint64_t v = 0;

	if ((size_t)(r->end - r->p) < n) {
		r->short_ = true;
		return 0;
	}
	for (unsigned int i = 0; i < n; i++)
		v = v << 8 | r->p[i];
	r->p += n;
	return v;
}

/* One queued request; NULL or why not. */
static const char *parse_req(struct rd *r, struct dma_req *q)
{
	q->seq = get(r, 8);
	q->src = get(r, 8);
	q->len = get(r, 8);
	q->sgl = get(r, 8);
	q->op = (uint32_t)get(r, 4);
	q->cq = (uint16_t)get(r, 2);
	q->nseg = (uint16_t)get(r, 2);
	if (q->nseg > DMA_MAX_SEGS || q->cq >= DMA_NCQ)
		return "a request's queue or segment count is out of range";
	for (unsigned int k = 0; k < q->nseg; k++) {
		q->seg[k].addr = get(r, 8);
		q->seg[k].len = get(r, 8);
	}
	q->done = get(r, 8);
	q->acc = get(r, 8);
	q->err = (uint32_t)get(r, 4);
	/* One still to work on must be one the engine would have taken. */
	if (!r->short_ && !q->err &&
	    (!req_layout_ok(q) || q->done > q->len || (q->done & 7)))
		return "a request's progress or layout is inconsistent";
	return NULL;
}

/* The body into n; NULL or why not. */
static const char *parse_body(struct rd *r, struct dma_state *n,
			      unsigned int version)
{
	const char *why;

	n->sq_base = get(r, 8);
	n->sq_size = (uint32_t)get(r, 4);
	n->sq_tail = (uint32_t)get(r, 4);
	n->sq_head = (uint32_t)get(r, 4);
	n->ctrl = (uint32_t)get(r, 4);
	n->status = (uint32_t)get(r, 4);
	n->error = (uint32_t)get(r, 4);
	n->done = (uint32_t)get(r, 4);
	if (version >= 2) {
		n->sq_shadow = get(r, 8);
		if (!n->sq_shadow || n->sq_shadow % 4)
			return "tail shadow address is 0 or not 4-byte aligned";
	}
	for (unsigned int q = 0; q < DMA_NCQ; q++) {
		n->cq[q].base = get(r, 8);
		n->cq[q].size = (uint32_t)get(r, 4);
		n->cq[q].count = (uint32_t)get(r, 4);
		uint64_t pending = get(r, 1);
		if (pending > 1)
			return "a completion queue's pending flag is not 0 or 1";
		n->cq[q].irq_pending = pending == 1;
		/* Enabling latched a sane setup (ctrl_write). */
		if ((n->ctrl & DMA_CTRL_ENABLE) &&
		    (!dma_ring_size_ok(n->cq[q].size) ||
		     n->cq[q].base % DMA_CPL_SIZE))
			return "completion queue size or address out of range";
	}
	if (n->ctrl > DMA_CTRL_ENABLE || n->status > 3 ||
	    ((n->ctrl & DMA_CTRL_ENABLE) &&
	     (!dma_ring_size_ok(n->sq_size) || n->sq_base % DMA_DESC_SIZE ||
	      n->sq_tail - n->sq_head > n->sq_size)))
		return "ring registers out of range";
	n->qn = (uint32_t)get(r, 4);
	if (n->qn > DMA_QMAX)
		return "more requests in flight than the engine holds";
	for (uint32_t i = 0; i < n->qn && !r->short_; i++) {
		why = parse_req(r, &n->q[i]);
		if (why)
			return why;
	}
	if (r->short_ || r->p != r->end)
		return "body length does not match its contents";
	return NULL;
}

const char *dma_state_decode(const uint8_t *buf, size_t len,
			     struct dma_state *out)
{
	struct rd r;

	memset(out, 0, sizeof(*out));
	if (!buf || len < DMA_MIG_HDR + 4)
		return "stream shorter than its header";
	r = (struct rd){ buf, buf + len, false };
	if (get(&r, 4) != DMA_MIG_MAGIC)
		return "bad magic (not a dma migration stream)";
	unsigned int version = (unsigned int)get(&r, 2);
	if (version < 1 || version > DMA_MIG_VERSION)
		return "unsupported stream version";
	if (get(&r, 2) != 0)
		return "unknown flags";
	if (get(&r, 4) != len - DMA_MIG_HDR - 4)
		return "wrong length";
	r.end = buf + len - 4;
	struct rd c = { r.end, r.end + 4, false };
	if (get(&c, 4) != fnv1a(buf, len - 4))
		return "checksum mismatch (corrupted data)";
	return parse_body(&r, out, version);
}
