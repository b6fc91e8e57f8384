/* SPDX-License-Identifier: MIT */
/*
 * The "dma" sample device's datasheet: registers, the descriptor and
 * completion formats in guest memory, and the data every command produces.
 * Shared by the device and by every driver of it. README.md beside this
 * file explains each of them.
 */
#ifndef VFMIG_SAMPLE_DMA_HW_H
#define VFMIG_SAMPLE_DMA_HW_H

#include <stdint.h>

#define DMA_VENDOR_ID 0x1b36u
#define DMA_DEVICE_ID 0x1002u
#define DMA_MAGIC 0x56444d41u /* "VDMA" */

#define DMA_BAR_REGS 0u
#define DMA_BAR_MSIX 4u
#define DMA_NCQ 2u           /* completion queues = MSI-X vectors */

/* BAR0 registers (32-bit, 4-byte accesses, little-endian). */
enum dma_reg {
	DMA_REG_ID = 0x000,
	DMA_REG_VERSION = 0x004,
	DMA_REG_SQ_BASE_LO = 0x010, /* submission ring, 64-byte aligned */
	DMA_REG_SQ_BASE_HI = 0x014,
	DMA_REG_SQ_SIZE = 0x018,    /* entries: a power of two, 2..256 */
	DMA_REG_SQ_TAIL = 0x01c,    /* doorbell: descriptors written (u32, wraps) */
	DMA_REG_SQ_HEAD = 0x020,    /* ro: descriptors the device fetched */
	DMA_REG_CTRL = 0x024,       /* bit 0: enable (latches the ring setup) */
	DMA_REG_STATUS = 0x028,     /* ro: bit 0 enabled, bit 1 ring error */
	DMA_REG_ERROR = 0x02c,      /* ro: errno of the ring error */
	DMA_REG_DONE = 0x030,       /* ro: completions written, all queues */
	/* Where the driver publishes the tail (a u32 in guest memory, 4-byte
	 * aligned; 0: nowhere), latched while enabled. A VMM may turn writes
	 * of SQ_TAIL into ioeventfd kicks that carry no value: the device
	 * then reads the tail there. So a driver writes it there before it
	 * rings the doorbell. */
	DMA_REG_SQ_SHADOW_LO = 0x034,
	DMA_REG_SQ_SHADOW_HI = 0x038,
	DMA_REG_CQ0 = 0x040,        /* queue q at DMA_REG_CQ0 + q * 0x10: */
};
#define DMA_CQ_BASE_LO 0x0u  /* completion ring, 32-byte aligned */
#define DMA_CQ_BASE_HI 0x4u
#define DMA_CQ_SIZE 0x8u     /* entries: a power of two, 2..256 */
#define DMA_CQ_COUNT 0xcu    /* ro: completions written to this queue */

#define DMA_CTRL_ENABLE 1u
#define DMA_STATUS_ENABLED 1u
#define DMA_STATUS_ERROR 2u
#define DMA_RING_MAX 256u

/* Descriptor: 64 bytes in guest memory, every field little-endian. */
#define DMA_DESC_SIZE 64u
#define DMA_DESC_SEQ 0u    /* u64: the driver's sequence number, echoed */
#define DMA_DESC_OP 8u     /* u32: DMA_OP_* */
#define DMA_DESC_CQ 12u    /* u16: completion queue */
#define DMA_DESC_NSEG 14u  /* u16: scatter list entries, 1..DMA_MAX_SEGS */
#define DMA_DESC_SRC 16u   /* u64: COPY source address; FILL pattern */
#define DMA_DESC_LEN 24u   /* u64: bytes, the sum of the segments */
#define DMA_DESC_SGL 32u   /* u64: address of the scatter list */
/* 40..63 reserved, must be zero. */
enum dma_op {
	DMA_OP_COPY = 1,  /* src (contiguous) -> the scatter list */
	DMA_OP_FILL = 2,  /* generated words (pattern) -> the scatter list */
	DMA_OP_CSUM = 3,  /* checksum of the scatter list -> completion */
};
#define DMA_MAX_SEGS 16u
#define DMA_MAX_LEN (4u << 20) /* bytes per request */
/* Scatter list entry: u64 address, u64 length; both multiples of 8. */
#define DMA_SEG_SIZE 16u

/* Completion record: 32 bytes, little-endian, at entry (n - 1) % size of
 * its queue for the queue's n-th completion. The device writes INDEX last,
 * after the rest of the record is in memory (until then INDEX is 0): a
 * driver that reads INDEX == n, then the other fields, reads this
 * completion's. */
#define DMA_CPL_SIZE 32u
#define DMA_CPL_SEQ 0u     /* u64: the descriptor's seq */
#define DMA_CPL_INDEX 8u   /* u64: n, the queue's completion number */
#define DMA_CPL_STATUS 16u /* u32: 0, or the errno the request failed with */
#define DMA_CPL_OP 20u     /* u32: the descriptor's op */
#define DMA_CPL_RESULT 24u /* u64: CSUM: the checksum; else bytes moved */

/* FILL writes word k (8 bytes, little-endian) of the scatter list
 * stream, counting from the start of the request, as: */
static inline uint64_t dma_fill_word(uint64_t pattern, uint64_t k)
{
	uint64_t z = pattern + k * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* CSUM: FNV-1a over the stream's little-endian u64 words. */
#define DMA_CSUM_INIT 0xcbf29ce484222325ull
static inline uint64_t dma_csum_word(uint64_t h, uint64_t w)
{
	return (h ^ w) * 0x100000001b3ull;
}

#endif
