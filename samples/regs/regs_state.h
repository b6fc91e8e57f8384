/* SPDX-License-Identifier: MIT */
/*
 * The "regs" sample's migrated state and its stream. Pure (no device), so
 * that the fuzz target drives the decoder on its own
 * (fuzz/fuzz_regs_state.c). Internal to the sample.
 */
#ifndef VFMIG_SAMPLE_REGS_STATE_H
#define VFMIG_SAMPLE_REGS_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "regs_hw.h"

/* All register state, in one place: migration saves it field by field. */
struct regs_state {
	uint32_t scratch[8];
	uint32_t counter;
	uint64_t dma_addr;
	uint32_t dma_len, dma_status, dma_error, dma_result, dma_pattern;
};

/* STOP_COPY only: the whole state is small and saved at once. Stream
 * layout (all fields big-endian, docs/device-migration.md):
 *   0  u32 magic   REGS_MIG_MAGIC ("RGMS")
 *   4  u16 version REGS_MIG_VERSION
 *   6  u16 flags   0 (a reader refuses unknown bits)
 *   8  u32 length  bytes of body that follow (REGS_MIG_BODY)
 *   12 body:
 *      u32 scratch[8], u32 counter, u64 dma_addr, u32 dma_len,
 *      u32 dma_status, u32 dma_error, u32 dma_result, u32 dma_pattern,
 *      u32 mem_size (REGS_BAR_MEM_SIZE), mem_size bytes of BAR2
 *   12 + length: u32 FNV-1a of everything before it */
#define REGS_MIG_MAGIC 0x52474d53u
#define REGS_MIG_VERSION 1u
#define REGS_MIG_HDR 12u
#define REGS_MIG_REGS (8 * 4 + 4 + 8 + 5 * 4)
#define REGS_MIG_BODY (REGS_MIG_REGS + 4 + REGS_BAR_MEM_SIZE)
#define REGS_MIG_TOTAL (REGS_MIG_HDR + REGS_MIG_BODY + 4)
/* Where BAR2's bytes sit in the stream. */
#define REGS_MIG_MEM_OFF (REGS_MIG_HDR + REGS_MIG_REGS + 4)

/* Write s and BAR2's REGS_BAR_MEM_SIZE bytes (mem) into buf
 * (REGS_MIG_TOTAL bytes). */
void regs_state_encode(const struct regs_state *s, const void *mem,
		       uint8_t *buf);

/*
 * Check a whole stream of len bytes and read its registers into *out;
 * BAR2's bytes are then at buf + REGS_MIG_MEM_OFF. NULL, or why not (a
 * constant string): header, length, BAR2 size, checksum, a register out
 * of range.
 */
const char *regs_state_decode(const uint8_t *buf, size_t len,
			      struct regs_state *out);

#endif /* VFMIG_SAMPLE_REGS_STATE_H */
