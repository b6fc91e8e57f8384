/* SPDX-License-Identifier: MIT */
/*
 * The "vram" sample's migration stream: its encoders and the incremental
 * parser a destination loads it with. Pure (no device), so that the fuzz
 * target (fuzz/fuzz_vram_state.c) and the unit test drive the parser on
 * their own. Internal to the sample.
 *
 * Stream layout (big-endian; docs/device-migration.md):
 *   stream header, 24 bytes: u32 magic "VRMS", u16 version 1, u16 flags 0,
 *     u32 page size, u32 reserved 0, u64 number of pages
 *   records, each a 16-byte header u32 type, u32 count, u64 first page:
 *     PAGES (1): count pages of data follow (count*page size bytes)
 *     ZERO  (2): count pages that are all zero; no data
 *     REGS  (3): count = VRAM_MIG_REGS bytes of registers follow
 *     END   (4): count 0, first 0; the last record of a STOP_COPY session
 */
#ifndef VFMIG_SAMPLE_VRAM_STATE_H
#define VFMIG_SAMPLE_VRAM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vram_hw.h"

#define VRAM_MIG_MAGIC 0x56524d53u /* "VRMS" */
#define VRAM_MIG_VERSION 1u
#define VRAM_MIG_HDR 24u
#define VRAM_REC_HDR 16u
#define VRAM_MIG_REGS 60u
#define VRAM_RUN_MAX 64u /* pages per PAGES record */

enum { VRAM_REC_PAGES = 1, VRAM_REC_ZERO = 2, VRAM_REC_REGS = 3,
       VRAM_REC_END = 4 };

struct vram_regs {
	uint32_t fill_start, fill_count, fill_seed, status, error, dma_len,
		counter;
	uint64_t csum, dma_addr, vram_off, win_off;
};

/* ---- encoders: each writes its fixed size at p and returns p past it */

uint8_t *vram_state_header(uint8_t *p, uint64_t npages);
uint8_t *vram_state_rec(uint8_t *p, uint32_t type, uint32_t count,
			uint64_t first);
uint8_t *vram_state_regs(uint8_t *p, const struct vram_regs *r);

/* Whether page p of mem is all zero (a ZERO record instead of PAGES). */
bool vram_state_page_zero(const uint8_t *mem, uint64_t p);

/*
 * A whole STOP_COPY session in one go, as the device's save sends it when
 * nothing changes while it runs: header, runs of up to VRAM_RUN_MAX PAGES
 * or ZERO pages in order, REGS, END. out may be NULL to learn the size.
 * Returns the bytes written. (The device itself saves incrementally with
 * the same encoders; this is for the seeds, the fuzz target and the tests.)
 */
size_t vram_state_encode(const uint8_t *mem, uint64_t npages,
			 const struct vram_regs *r, uint8_t *out);

/* ---- the load parser, over arbitrary chunk boundaries ---- */

enum vram_load_phase { VRAM_L_HDR, VRAM_L_REC, VRAM_L_PAGES, VRAM_L_REGS,
		       VRAM_L_DONE, VRAM_L_BAD };

/* The largest fixed part the parser gathers: the register block. */
#define VRAM_LOAD_FIXED_MAX VRAM_MIG_REGS
_Static_assert(VRAM_LOAD_FIXED_MAX >= VRAM_MIG_HDR &&
	       VRAM_LOAD_FIXED_MAX >= VRAM_REC_HDR,
	       "the load buffer holds every fixed part");

struct vram_load {
	enum vram_load_phase phase;
	uint8_t hdr[VRAM_LOAD_FIXED_MAX]; /* the fixed part being gathered */
	size_t have, need;         /* bytes of it gathered / wanted */
	uint64_t data_off;         /* PAGES: VRAM offset of the next byte */
	uint64_t data_left;
	bool regs_seen;
	struct vram_regs regs;     /* the REGS record, once seen */
	const char *why;           /* VRAM_L_BAD: what was wrong (constant) */
};

/* Start a load session. */
void vram_load_reset(struct vram_load *l);

/*
 * Parse the next len bytes of the stream into mem (npages pages of
 * VRAM_PAGE_SIZE bytes): PAGES records are copied, ZERO records cleared;
 * nothing outside mem is ever written. Returns len, or -EINVAL with the
 * parser in VRAM_L_BAD and l->why saying what was wrong (the bytes
 * before it were applied); every later call then fails too.
 */
ssize_t vram_load_feed(struct vram_load *l, uint8_t *mem, uint64_t npages,
		       const void *buf, size_t len);

/*
 * Where the next bytes of the stream go if they are page data: inside a
 * PAGES record's data, returns mem + the VRAM offset of the next byte and
 * lowers *len to the bytes left of that record (if fewer). Bytes put there
 * and then fed with buf pointing at that place are not copied again (the
 * device's mig_load_place: received straight into VRAM). Else NULL, with
 * *len lowered to the rest of the fixed part being gathered (header,
 * record header, registers), after which page data may follow.
 */
uint8_t *vram_load_place(const struct vram_load *l, uint8_t *mem, size_t *len);

/* The stream ended with its END record (l->regs holds the registers). */
static inline bool vram_load_done(const struct vram_load *l)
{
	return l->phase == VRAM_L_DONE;
}

#endif /* VFMIG_SAMPLE_VRAM_STATE_H */
