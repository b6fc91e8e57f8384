/* SPDX-License-Identifier: MIT */
/*
 * The "vram" sample device's datasheet: what a driver needs to know. The
 * device holds a large internal memory (VRAM, not client-mappable) that
 * only device commands and a data window change. README.md beside this
 * file explains each register.
 */
#ifndef VFMIG_SAMPLE_VRAM_HW_H
#define VFMIG_SAMPLE_VRAM_HW_H

#define VRAM_VENDOR_ID 0x1b36u
#define VRAM_DEVICE_ID 0x1001u
#define VRAM_MAGIC 0x5652414du /* "VRAM" */
#define VRAM_PAGE_SIZE 4096u

#define VRAM_BAR_REGS 0u   /* 4 KiB of 32-bit registers */
#define VRAM_BAR_WIN 2u    /* 64 KiB window into VRAM at WIN_OFF */
#define VRAM_BAR_WIN_SIZE (64u << 10)
#define VRAM_BAR_MSIX 4u
#define VRAM_MSIX_VECTORS 2u
#define VRAM_DMA_MAX (1u << 20)

/* BAR0 registers (32-bit, 4-byte accesses, little-endian). */
enum vram_reg {
	VRAM_REG_ID = 0x000,          /* ro VRAM_MAGIC */
	VRAM_REG_VERSION = 0x004,     /* ro 1 */
	VRAM_REG_SIZE_LO = 0x008,     /* ro VRAM size in bytes */
	VRAM_REG_SIZE_HI = 0x00c,
	VRAM_REG_FILL_START = 0x020,  /* rw first page of CMD_FILL */
	VRAM_REG_FILL_COUNT = 0x024,  /* rw pages of CMD_FILL */
	VRAM_REG_FILL_SEED = 0x028,   /* rw seed of CMD_FILL */
	VRAM_REG_CMD = 0x02c,         /* wo VRAM_CMD_* */
	VRAM_REG_STATUS = 0x030,      /* ro VRAM_STATUS_* */
	VRAM_REG_ERROR = 0x034,       /* ro errno of the last failed command */
	VRAM_REG_CSUM_LO = 0x038,     /* ro result of VRAM_CMD_CHECKSUM */
	VRAM_REG_CSUM_HI = 0x03c,
	VRAM_REG_DMA_ADDR_LO = 0x040, /* rw guest address of CMD_COPY */
	VRAM_REG_DMA_ADDR_HI = 0x044,
	VRAM_REG_DMA_LEN = 0x048,     /* rw bytes of CMD_COPY, 1 .. 1 MiB */
	VRAM_REG_VRAM_OFF_LO = 0x04c, /* rw VRAM offset of CMD_COPY */
	VRAM_REG_VRAM_OFF_HI = 0x050,
	VRAM_REG_WIN_OFF_LO = 0x060,  /* rw VRAM offset shown at BAR2 offset 0 */
	VRAM_REG_WIN_OFF_HI = 0x064,
	VRAM_REG_COUNTER = 0x070,     /* ro commands completed */
};

#define VRAM_CMD_FILL 1u     /* pages [FILL_START, +FILL_COUNT) from FILL_SEED */
#define VRAM_CMD_COPY 2u     /* guest [DMA_ADDR, +DMA_LEN) -> VRAM at VRAM_OFF */
#define VRAM_CMD_CHECKSUM 3u /* vram_csum() of all VRAM into CSUM_LO/HI */
#define VRAM_STATUS_DONE 1u
#define VRAM_STATUS_ERROR 2u

/* 64-bit word i of page p after CMD_FILL with seed s: splitmix64. */
static inline unsigned long long vram_fill_word(unsigned int seed,
						unsigned long long page,
						unsigned int i)
{
	unsigned long long z = ((unsigned long long)seed << 40) ^
			       (page << 9) ^ i;

	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* CHECKSUM: FNV-1a 64 over the VRAM taken as little-endian 64-bit words
 * (len a multiple of 8). Continue a running hash by passing it as h;
 * start with VRAM_CSUM_INIT. */
#define VRAM_CSUM_INIT 0xcbf29ce484222325ull
static inline unsigned long long vram_csum(unsigned long long h,
					   const void *buf, unsigned long len)
{
	const unsigned char *p = buf;

	for (unsigned long i = 0; i + 8 <= len; i += 8) {
		unsigned long long w = 0;
		for (int b = 7; b >= 0; b--)
			w = (w << 8) | p[i + b];
		h ^= w;
		h *= 0x100000001b3ull;
	}
	return h;
}

#endif
