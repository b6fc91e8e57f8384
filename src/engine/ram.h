/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM for migration: one block of host memory with a dirty bitmap that
 * every source of writes feeds (the VMM's own writes, device DMA logs merged
 * from DMA_LOGGING_REPORT, DMA_WRITE messages served by the VMM library), and
 * the code that sends dirty pages as RAM_PAGES records and loads them back.
 *
 * Marking is thread-safe and lock-free (a guest-driver thread marks while the
 * migration thread sends). A page's bit is cleared before its bytes are
 * copied, so a write that races with sending marks it dirty again and it is
 * sent in a later round: nothing is lost.
 *
 * A block may name the file that backs its memory (vfmig_ram_set_fd, e.g.
 * the guest RAM memfd). Pages in a hole of that file were never written
 * (or were punched out): they read as zero, and reading them would only
 * make the kernel allocate and clear a page. Sending finds them with
 * SEEK_DATA/SEEK_HOLE, after taking their dirty bits, and sends them as
 * zero runs without touching them.
 */
#ifndef VFMIG_ENGINE_RAM_H
#define VFMIG_ENGINE_RAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/stream.h"

#define VFMIG_RAM_NAME_MAX 32

/* Two data extents of a block's file: the largest one seen, kept while
 * smaller ones come and go, and the latest smaller one (or the largest
 * before it). Zero: none. */
struct vfmig_ram_known {
	uint64_t big_start, big_end;
	uint64_t last_start, last_end;
};

struct vfmig_ram {
	char name[VFMIG_RAM_NAME_MAX]; /* block id carried in RAM_PAGES */
	uint8_t *host;                 /* caller's mapping, not owned */
	uint64_t size;                 /* multiple of page_size */
	uint32_t page_size;            /* power of two, 512 .. 1 GiB */
	uint64_t npages;
	_Atomic uint64_t *dirty;       /* npages bits, LSB-first words */
	int fd;                        /* backs host from offset 0, or -1 */
	/* vfmig_ram_send's memory of the file: extents that were data when
	 * it asked. Data stays data (a page punched since is only read, as
	 * zero), so this holds across calls; it spares asking again with
	 * SEEK_HOLE, which scans from where it is asked to the extent's end
	 * each time. */
	struct vfmig_ram_known known;
	/* Destination: the thread allocating the data extents the source
	 * announced (vfmig_ram_info), or NULL. */
	struct vfmig_ram_prealloc *prealloc;
	/* After vfmig_ram_prealloc_all: the pages written since (a bit per
	 * page), so that a zero run clears only those and never punches a
	 * hole into what was preallocated. NULL otherwise. */
	_Atomic uint64_t *written;
	/* Destination with a file: the pages zero runs left as holes, which
	 * the allocating thread must not allocate after them (ram.c). Shared
	 * by the copies of the block that receiving threads load through. */
	struct vfmig_ram_zeroed *zeroed;
};

struct vfmig_ram_stats {
	uint64_t pages;      /* pages sent (data + zero) */
	uint64_t zero_pages; /* of which all-zero, sent without data */
	uint64_t hole_pages; /* of those, found in holes without reading */
	uint64_t bytes;      /* page data bytes sent */
	uint64_t records;    /* RAM_PAGES records written */
};

/*
 * Describe a block over host memory. name is copied (shorter than
 * VFMIG_RAM_NAME_MAX); nothing is dirty. Returns 0, -EINVAL (size 0 or not a
 * multiple of page_size, bad page size, name too long) or -ENOMEM.
 */
int vfmig_ram_init(struct vfmig_ram *r, const char *name, void *host,
		   uint64_t size, uint32_t page_size);

/* Free the bitmap. The host memory is the caller's. */
void vfmig_ram_fini(struct vfmig_ram *r);

/*
 * The file mapped at host from its offset 0 (shared, so writes through
 * host are in the file), or -1 for none; not owned. The file's offset may
 * be moved (lseek) by the functions below. Sending names it in each record
 * (in_file), so a writer that splices (vfmig_chan_tune_writer, over UNIX)
 * reads page data from the file at the page's address.
 */
void vfmig_ram_set_fd(struct vfmig_ram *r, int fd);

/*
 * What the block holds at off (< size), as its file tells without touching
 * the pages: 0 for a hole (reads as zero), 1 for data (anything, zero
 * included), with *len the bytes from off on that are of the same kind (up
 * to the end of the block). Without a file, or when the file cannot tell,
 * everything is data. A hole can become data at any time (a write); data
 * stays data unless the caller punches it. Answering for data scans the
 * whole data extent (SEEK_HOLE): ask once per extent, not per page.
 */
int vfmig_ram_extent(const struct vfmig_ram *r, uint64_t off, uint64_t *len);

/* Remember that [start, end) is data: it becomes the largest extent when it
 * is larger than that one (which then becomes the other), else the other.
 * An empty range, or the largest one again, changes nothing. */
void vfmig_ram_known_note(struct vfmig_ram_known *k, uint64_t start,
			  uint64_t end);

/* Mark every page touching [off, off + len) dirty; bytes outside the block
 * are ignored. Thread-safe. */
void vfmig_ram_mark_dirty(struct vfmig_ram *r, uint64_t off, uint64_t len);

/* Mark every page dirty (the first pre-copy round sends everything). */
void vfmig_ram_mark_all(struct vfmig_ram *r);

/*
 * OR a bitmap of npages bits (LSB-first u64 words, one bit per page_size
 * bytes starting at block offset off) into the dirty bitmap, as returned by
 * a device's DMA_LOGGING_REPORT. page_size is the report's (a power of two
 * >= 512, independent of the block's): each reported page marks every block
 * page it overlaps. Returns 0, -ERANGE when the reported range leaves the
 * block, or -EINVAL for a bad page size.
 */
int vfmig_ram_merge_bitmap(struct vfmig_ram *r, uint64_t off,
			   uint64_t page_size, const uint64_t *bm,
			   uint64_t npages);

/* Number of dirty pages now (a snapshot). */
uint64_t vfmig_ram_dirty_pages(const struct vfmig_ram *r);

/*
 * Send dirty pages, clearing their bits, as RAM_PAGES records, until none is
 * left or about budget bytes of page data were sent (0: no budget). Runs of
 * all-zero pages go without data; pages in holes of the block's file are
 * such pages and are not read. Adds to *st. Returns 0 or the writer's
 * negative errno (pages whose bits were taken are marked dirty again, so a
 * retry resends them).
 */
int vfmig_ram_send(struct vfmig_ram *r, struct vfmig_stream_writer *w,
		   uint64_t budget, struct vfmig_ram_stats *st);

/*
 * Striping over several channels (migrate --channels N): the block is cut
 * in stripes of VFMIG_RAM_STRIPE_BYTES (one page when a page is larger),
 * and stripe s travels on channel s % count, always, in every round. A
 * page's versions thus keep the order of one connection, and two channels
 * never carry the same page.
 */
#define VFMIG_RAM_STRIPE_BYTES (2u << 20)

/* Pages per stripe for a page size (>= 1). */
uint64_t vfmig_ram_stripe_pages(uint32_t page_size);

/* The channel (0 .. count - 1) of page; count 0 counts as 1. */
unsigned vfmig_ram_stripe_of(uint64_t page, uint64_t stripe_pages,
			     unsigned count);

/* One sender's memory of the block's file, as vfmig_ram_send keeps in
 * known; each thread sending at once needs its own. Zero it before the
 * first use. */
struct vfmig_ram_cursor {
	struct vfmig_ram_known known;
};

/*
 * vfmig_ram_send restricted to the stripes of channel index of count:
 * only their dirty bits are taken, so count threads, each with its own
 * writer, cursor and stats, may send the same block at once. The file's
 * extents are asked per stripe. Same budget and error rules.
 */
int vfmig_ram_send_stripe(struct vfmig_ram *r, struct vfmig_ram_cursor *cur,
			  struct vfmig_stream_writer *w, uint64_t budget,
			  unsigned index, unsigned count,
			  struct vfmig_ram_stats *st);

/*
 * Apply one decoded RAM_PAGES record to the block: the block name and page
 * size must match, every run must lie inside the block. Nothing is written
 * unless the whole record is valid. A zero run leaves the holes of the
 * block's file as they are and punches the data under it out of the file
 * (FALLOC_FL_PUNCH_HOLE; bytes are cleared only where the file refuses), so
 * pages that are zero on the source allocate nothing here, and data left
 * by an earlier load becomes zero. Data runs go into the block's file
 * with pwrite when it has one (no fault, no clearing of a fresh page), else
 * through the mapping. The record was checked whole (its checksum
 * included) by the reader before this. Returns 0 or -EINVAL with a message
 * naming the problem in err.
 */
int vfmig_ram_load(struct vfmig_ram *r, const struct vfmig_stream_record *rec,
		   char *err, size_t errlen);

/*
 * Receiving in place (a vfmig_stream_ram_place_fn, priv the block): the
 * address in the block's mapping of a run of page data that lies inside
 * it, with the block's name and page size; NULL otherwise (the reader
 * then buffers the run, and vfmig_ram_load refuses the record). A reader
 * given this writes page data into guest RAM before the record's checksum
 * is known: use it only where the guest does not run until the stream has
 * been accepted (a destination before its switchover), and fail the
 * migration on any refused record. vfmig_ram_load does not copy data that
 * is already in place.
 */
void *vfmig_ram_place(void *priv, const struct vfmig_stream_str *block,
		      uint32_t page_size, uint64_t addr, uint64_t len);

/*
 * Data extents: the source tells the destination which parts of the block
 * hold data, before the first page, so that the destination can allocate
 * them while the pages are on their way (a page of its memfd allocated
 * beforehand is only copied into when it arrives, not allocated then).
 * Holes are not announced, and the destination allocates nothing for them.
 * The announcement is a STREAM_INFO entry, which a destination that does
 * not know it ignores:
 *     key   VFMIG_RAM_INFO_EXTENTS
 *     value "BLOCK OFF+LEN,OFF+LEN,..." (lower-case hex, no 0x, each a
 *           page multiple, ascending, not overlapping, inside the block)
 * At most VFMIG_RAM_EXTENTS_MAX extents are announced (the first ones):
 * the rest arrive without being allocated ahead, which costs time, not
 * correctness.
 */
#define VFMIG_RAM_INFO_EXTENTS "ram-data-extents"
#define VFMIG_RAM_EXTENTS_MAX 2048u

/*
 * Source: write the announcement for r to w, as one STREAM_INFO record.
 * Nothing for a block without a file (it cannot tell its holes), or without
 * data. Asks the file SEEK_DATA/SEEK_HOLE once per extent, and keeps the
 * extents it met in r->known (vfmig_ram_known_note) for vfmig_ram_send.
 * Returns 0 or the writer's negative errno.
 */
int vfmig_ram_announce(struct vfmig_ram *r, struct vfmig_stream_writer *w);

/*
 * Destination: one STREAM_INFO entry. Other keys, and announcements of
 * another block, are ignored (0). An announcement for r starts a thread
 * that allocates the announced extents in the block's file, in order
 * (fallocate: the pages are allocated, and still read as zero; the file
 * reports them as holes until written) and maps them in the block
 * (MADV_POPULATE_WRITE: each is cleared then, off the receiving thread,
 * so that page data received in place takes no fault), replacing one that
 * still runs; without a file nothing happens. The thread stops by itself,
 * at vfmig_ram_fini, or at the first error of fallocate. Returns 0, or
 * -EBADMSG with err filled for a malformed announcement, -ENOMEM.
 */
int vfmig_ram_info(struct vfmig_ram *r, const struct vfmig_stream_kv_view *kv,
		   char *err, size_t errlen);

/*
 * Parse an announcement value (pure; for the above and tests): the block
 * name must be r's; extents are clipped to the block. Returns the number of
 * extents stored in ext (pairs off, len; at most max), or -EBADMSG with
 * err filled, or -ENOENT when the value names another block.
 */
int vfmig_ram_parse_extents(const struct vfmig_ram *r, const char *val,
			    size_t len, uint64_t (*ext)[2], unsigned max,
			    char *err, size_t errlen);

/* Destination: wait until the allocating thread, if any, has finished (for
 * tests: what it allocated is then visible in the file). */
void vfmig_ram_prealloc_wait(struct vfmig_ram *r);

/*
 * Allocate and map every page of r now (fallocate over its file, then
 * MADV_POPULATE_WRITE over its mapping), as QEMU's prealloc=on does: a
 * migration into it then pays no page allocation, and a guest never waits
 * for one. Pages that held data before count as written: a zero run
 * clears them. Only for a block with a file (vfmig_ram_set_fd). Returns 0,
 * or -errno (-ENOSPC where the memory is not there; what fallocate got so
 * far stays allocated until the block's file is closed).
 */
int vfmig_ram_prealloc_all(struct vfmig_ram *r);

#endif
