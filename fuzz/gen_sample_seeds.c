/* SPDX-License-Identifier: MIT */
/*
 * Writes the seeds of the sample devices' state targets with the samples'
 * own encoders. DIR/dma_state: the state a running engine is saved in
 * (ring enabled, requests in flight, one partly done, one refused), an
 * idle device's, and descriptors as a guest writes them. DIR/regs_state:
 * a whole stream with registers set and BAR2 written, and its start only.
 * DIR/vram_state: a 16-page VRAM's STOP_COPY session (filled, copied and
 * zero pages, registers), the same handed over in 7-byte pieces, its
 * records after the harness's header, a small all-zero session (ZERO runs
 * to the last page: a count byte away from a run past the end), and a
 * pre-copy round that sends a page twice and has no END.
 * Usage: gen-sample-seeds DIR (fuzz/seeds).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dma_state.h"
#include "regs_state.h"
#include "vram_state.h"

static uint8_t *le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + n;
}

/* A descriptor and its scatter list: op over nseg segments of seglen. */
static void desc(uint8_t *d, uint8_t *sgl, uint64_t seq, uint32_t op,
		 uint16_t cq, uint16_t nseg, uint64_t seglen)
{
	memset(d, 0, DMA_DESC_SIZE);
	le(d + DMA_DESC_SEQ, seq, 8);
	le(d + DMA_DESC_OP, op, 4);
	le(d + DMA_DESC_CQ, cq, 2);
	le(d + DMA_DESC_NSEG, nseg, 2);
	le(d + DMA_DESC_SRC, 0x200000 + seq * 0x10000, 8);
	le(d + DMA_DESC_LEN, nseg * seglen, 8);
	le(d + DMA_DESC_SGL, 0x180000 + seq * 0x100, 8);
	for (unsigned int k = 0; k < nseg && k < DMA_MAX_SEGS; k++) {
		le(sgl + k * DMA_SEG_SIZE, 0x400000 + seq * 0x100000 +
		   k * seglen, 8);
		le(sgl + k * DMA_SEG_SIZE + 8, seglen, 8);
	}
}

static int write_file(const char *dir, const char *name, uint8_t mode,
		      const uint8_t *b, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	/* mode: the target's first byte, which says what the rest is. */
	f = fopen(path, "wb");
	if (!f || fputc(mode, f) == EOF || fwrite(b, 1, n, f) != n ||
	    fclose(f)) {
		perror(path);
		return -1;
	}
	return 0;
}

static int regs_seeds(const char *dir)
{
	static uint8_t blob[REGS_MIG_TOTAL], mem[REGS_BAR_MEM_SIZE];
	struct regs_state s = {
		.counter = 17, .dma_addr = 0x100000, .dma_len = 4096,
		.dma_status = 1, .dma_result = 0x2ab5cf0d, .dma_pattern = 0x5a,
	};

	for (unsigned int i = 0; i < 8; i++)
		s.scratch[i] = 0x11111111u * i;
	for (unsigned int i = 0; i < sizeof(mem); i++)
		mem[i] = (uint8_t)(i * 7 + i / 4096);
	regs_state_encode(&s, mem, blob);
	/* Mode 0: as saved. Mode 3: the start, padded and summed by the
	 * harness. */
	if (write_file(dir, "regs_state/saved", 0, blob, sizeof(blob)) ||
	    write_file(dir, "regs_state/start", 3, blob, REGS_MIG_MEM_OFF + 64))
		return -1;
	return 0;
}

#define VRAM_SEED_PAGES 16u /* fuzz-vram_state's VRAM */

static int vram_seeds(const char *dir)
{
	static uint8_t mem[VRAM_SEED_PAGES * VRAM_PAGE_SIZE],
		blob[VRAM_MIG_HDR + sizeof(mem) + 64 * VRAM_REC_HDR +
		     VRAM_MIG_REGS];
	const struct vram_regs r = {
		.fill_start = 2, .fill_count = 5, .fill_seed = 7,
		.status = VRAM_STATUS_DONE, .counter = 3,
		.csum = 0x0123456789abcdefull, .dma_addr = 0x100000,
		.dma_len = 8192, .vram_off = 12 * VRAM_PAGE_SIZE,
		.win_off = 0x10000,
	};
	uint8_t *p;
	size_t n;

	/* CMD_FILL of pages 2-6, a 2-page CMD_COPY at page 12, the rest 0 */
	for (uint64_t pg = 2; pg < 7; pg++)
		for (unsigned int i = 0; i < VRAM_PAGE_SIZE / 8; i++) {
			uint64_t w = vram_fill_word(7, pg, i);
			le(mem + pg * VRAM_PAGE_SIZE + 8 * i, w, 8);
		}
	memset(mem + 12 * VRAM_PAGE_SIZE, 0xa7, 2 * VRAM_PAGE_SIZE);
	n = vram_state_encode(mem, VRAM_SEED_PAGES, &r, blob);
	if (write_file(dir, "vram_state/stop-copy", 0, blob, n) ||
	    write_file(dir, "vram_state/pieces", 7, blob, n) ||
	    write_file(dir, "vram_state/records", 0x80, blob + VRAM_MIG_HDR,
		       n - VRAM_MIG_HDR))
		return -1;
	p = vram_state_rec(blob, VRAM_REC_ZERO, 8, 0);
	p = vram_state_rec(p, VRAM_REC_ZERO, 7, 8);
	p = vram_state_rec(p, VRAM_REC_ZERO, 1, VRAM_SEED_PAGES - 1);
	p = vram_state_regs(vram_state_rec(p, VRAM_REC_REGS, VRAM_MIG_REGS, 0),
			    &r);
	p = vram_state_rec(p, VRAM_REC_END, 0, 0);
	if (write_file(dir, "vram_state/zero", 0x80, blob, (size_t)(p - blob)))
		return -1;
	/* pre-copy: one page of data, then the same page dirtied and sent
	 * again, a zero run; no REGS and no END (not loadable yet) */
	p = vram_state_header(blob, VRAM_SEED_PAGES);
	p = vram_state_rec(p, VRAM_REC_PAGES, 1, 3);
	memcpy(p, mem + 3 * VRAM_PAGE_SIZE, VRAM_PAGE_SIZE);
	p += VRAM_PAGE_SIZE;
	p = vram_state_rec(p, VRAM_REC_ZERO, 2, 0);
	p = vram_state_rec(p, VRAM_REC_PAGES, 1, 3);
	memset(p, 0x5e, VRAM_PAGE_SIZE);
	p += VRAM_PAGE_SIZE;
	return write_file(dir, "vram_state/pre-copy", 0, blob,
			  (size_t)(p - blob));
}

int main(int argc, char **argv)
{
	static const struct { uint32_t op; uint16_t cq, nseg; uint64_t len; }
	reqs[] = {
		{ DMA_OP_COPY, 0, 3, 128 << 10 },
		{ DMA_OP_FILL, 1, 1, 64 << 10 },
		{ DMA_OP_CSUM, 0, 16, 4096 },
		{ DMA_OP_COPY, 1, 40, 4096 }, /* refused: too many segments */
	};
	static uint8_t blob[DMA_MIG_MAX], descs[4 * (1 + 64 + 256)];
	uint8_t sgl[DMA_MAX_SEGS * DMA_SEG_SIZE];
	struct dma_state s;
	size_t n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	memset(&s, 0, sizeof(s));
	if (regs_seeds(argv[1]) || vram_seeds(argv[1]))
		return 1;
	if (write_file(argv[1], "dma_state/idle", 0, blob, dma_state_encode(&s, blob)))
		return 1;
	s.sq_base = 0x100000;
	s.sq_size = 64;
	s.ctrl = DMA_CTRL_ENABLE;
	s.status = DMA_STATUS_ENABLED;
	for (unsigned int q = 0; q < DMA_NCQ; q++) {
		s.cq[q].base = 0x140000 + q * 0x1000;
		s.cq[q].size = 32;
		s.cq[q].count = 1000 + q;
	}
	s.cq[1].irq_pending = true;
	s.done = 2001;
	for (unsigned int i = 0; i < 4; i++) {
		uint8_t *d = descs + n;
		d[0] = i == 0 ? 2 : 0; /* the first: one segment done */
		desc(d + 1, d + 1 + DMA_DESC_SIZE, 2001 + i, reqs[i].op,
		     reqs[i].cq, reqs[i].nseg, reqs[i].len);
		n += 1 + DMA_DESC_SIZE + sizeof(sgl);
		desc(d + 1, sgl, 2001 + i, reqs[i].op, reqs[i].cq,
		     reqs[i].nseg, reqs[i].len);
		dma_req_decode(&s.q[s.qn], d + 1, sgl, 0);
		s.qn++;
	}
	s.q[0].done = 128 << 10; /* one segment of three done */
	s.sq_head = 2001 + 4;
	s.sq_tail = s.sq_head + 3;
	if (write_file(argv[1], "dma_state/in-flight", 0, blob,
		       dma_state_encode(&s, blob)) ||
	    write_file(argv[1], "dma_state/descriptors", 2, descs, n))
		return 1;
	/* The same with a tail shadow (version 2 of the stream). */
	s.sq_shadow = 0x103000;
	if (write_file(argv[1], "dma_state/shadow", 0, blob,
		       dma_state_encode(&s, blob)))
		return 1;
	return 0;
}
