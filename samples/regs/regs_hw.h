/* SPDX-License-Identifier: MIT */
/*
 * The "regs" sample device's datasheet: what a driver needs to know about
 * the hardware. Shared by the device and by every driver of it (the demo,
 * the integration tests). README.md beside this file explains each register.
 */
#ifndef VFMIG_SAMPLE_REGS_HW_H
#define VFMIG_SAMPLE_REGS_HW_H

#define REGS_VENDOR_ID 0x1b36u /* as the sample's config space reports */

/* BAR0 registers (32-bit, 4-byte accesses). */
enum regs_reg {
	REG_ID = 0x000,
	REG_VERSION = 0x004,
	REG_SCRATCH0 = 0x010,
	REG_SCRATCH7 = 0x02c,
	REG_COUNTER = 0x040,
	REG_DOORBELL = 0x044,
	REG_EVENT = 0x048,
	REG_DMA_ADDR_LO = 0x080,
	REG_DMA_ADDR_HI = 0x084,
	REG_DMA_LEN = 0x088,
	REG_DMA_CMD = 0x08c,
	REG_DMA_STATUS = 0x090,
	REG_DMA_ERROR = 0x094,
	REG_DMA_RESULT = 0x098,
	REG_DMA_PATTERN = 0x09c,
};

#define REGS_MAGIC 0x56464d47u /* "VFMG" */
#define REGS_BAR_REGS 0u
#define REGS_BAR_MEM 2u      /* mappable device memory */
#define REGS_BAR_MEM_SIZE (64u << 10)
#define REGS_BAR_MSIX 4u
#define REGS_MSIX_VECTORS 4u
#define REGS_DMA_MAX (1u << 20)
#define DMA_CMD_CHECKSUM 1u
#define DMA_CMD_FILL 2u
#define DMA_STATUS_DONE 1u
#define DMA_STATUS_ERROR 2u

/* DMA_RESULT of DMA_CMD_CHECKSUM: 32-bit FNV-1a of the buffer. */
static inline unsigned int regs_fnv1a(const void *buf, unsigned long len)
{
	const unsigned char *p = buf;
	unsigned int h = 0x811c9dc5u;

	for (unsigned long i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x01000193u;
	}
	return h;
}

#endif
