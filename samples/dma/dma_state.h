/* SPDX-License-Identifier: MIT */
/*
 * The "dma" sample's migrated state and its stream: what the engine keeps,
 * how a fetched descriptor becomes a queued request, and the encoder and
 * decoder of the STOP_COPY data. Pure (no device, no threads), so that the
 * fuzz target drives the decoder on its own (fuzz/fuzz_dma_state.c).
 * Internal to the sample; dma.c is its only other user.
 */
#ifndef VFMIG_SAMPLE_DMA_STATE_H
#define VFMIG_SAMPLE_DMA_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dma_hw.h"

#define DMA_QMAX 8u /* fetched requests kept inside the engine */

struct dma_seg {
	uint64_t addr, len;
};

/* A fetched request and its progress. */
struct dma_req {
	uint64_t seq, src, len, sgl;
	uint32_t op;
	uint16_t cq, nseg; /* cq < DMA_NCQ, nseg <= DMA_MAX_SEGS always */
	struct dma_seg seg[DMA_MAX_SEGS];
	uint64_t done; /* bytes of the stream finished */
	uint64_t acc;  /* CSUM: the checksum of those bytes */
	uint32_t err;  /* failed (errno): completes with it, no more DMA */
};

struct dma_cq {
	uint64_t base;
	uint32_t size, count;
	bool irq_pending; /* completed, vector not raised yet (migrated) */
};

/* Everything migrated. */
struct dma_state {
	uint64_t sq_base;
	uint32_t sq_size, sq_tail, sq_head, ctrl, status, error, done;
	uint64_t sq_shadow; /* DMA_REG_SQ_SHADOW_LO/HI */
	struct dma_cq cq[DMA_NCQ];
	struct dma_req q[DMA_QMAX]; /* q[0] is the front */
	uint32_t qn;
};

/* Stream (big-endian):
 *   0  u32 magic "DMAS", u16 version 1 or 2, u16 flags 0, u32 body length
 *   12 body: u64 sq_base, u32 sq_size, sq_tail, sq_head, ctrl, status,
 *      error, done; version 2 only: u64 sq_shadow; per queue (DMA_NCQ): u64 base, u32 size, count,
 *      u8 irq_pending (0 or 1); u32 qn; per queued request: u64 seq, src,
 *      len, sgl, u32 op, u16 cq, nseg, nseg x (u64 addr, u64 len),
 *      u64 done, acc, u32 err
 *   then u32 FNV-1a of everything before it. */
#define DMA_MIG_MAGIC 0x444d4153u
#define DMA_MIG_VERSION 2u /* written when sq_shadow is set; else 1 */
#define DMA_MIG_HDR 12u
#define DMA_MIG_MAX (DMA_MIG_HDR + 64 + 8 + DMA_NCQ * 17 + 4 + \
		     DMA_QMAX * (48 + DMA_MAX_SEGS * 16 + 20) + 4)

/* A ring size the device accepts: a power of two, 2..DMA_RING_MAX. */
bool dma_ring_size_ok(uint32_t n);

/*
 * Fill r from a descriptor (DMA_DESC_SIZE bytes) as the engine queues it.
 * sgl: the descriptor's scatter list as read from guest memory (nseg
 * entries), or NULL when it was not read; then sgl_err is why (a negative
 * errno; 0 when nseg was out of range, so nothing was read). A descriptor
 * the engine refuses gets r->err and completes with it; r's counts stay in
 * range either way, so every queued request can be saved.
 */
void dma_req_decode(struct dma_req *r, const uint8_t *desc,
		    const uint8_t *sgl, int sgl_err);

/* Write s as a stream into buf (DMA_MIG_MAX bytes); returns its length. */
size_t dma_state_encode(const struct dma_state *s, uint8_t *buf);

/*
 * Read a whole stream of len bytes into *out (zeroed first). NULL, or why
 * not (a constant string): header, length, checksum, and every field a
 * device in that state could not hold (rings, queues, requests).
 */
const char *dma_state_decode(const uint8_t *buf, size_t len,
			     struct dma_state *out);

#endif /* VFMIG_SAMPLE_DMA_STATE_H */
