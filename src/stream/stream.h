/* SPDX-License-Identifier: MIT */
/*
 * The vfmig migration stream, format 1.3 (docs/stream-format.md).
 *
 * A stream is a header (magic "VFMIGSTR", major 1, minor, flags, the record
 * checksum algorithm (from 1.1 on), CRC-32 of the header) followed by
 * checksummed type-length-value records, big-endian throughout, the last of
 * which is END. This library writes 1.3 (1.2, which is 1.1 plus the
 * VCPU_STATE record, plus RAM_PAGES_LIVE: page data checked page by page)
 * with XXH3 record checksums by default, 1.2, 1.1 or 1.0 (CRC-32) on
 * request, and reads all four. It writes and reads streams through a
 * struct vfmig_io; it knows records and field tables, not devices or sockets.
 *
 * Errors: functions return 0 (or a count) on success and a negative errno on
 * failure. Writer and reader objects also keep a human-readable message for
 * the last error (vfmig_stream_writer_error(), vfmig_stream_reader_error()),
 * built where the error was detected; it names the problem and, for the
 * reader, the byte offset. Reader errors:
 *   -EBADMSG         bad magic, checksum mismatch, malformed payload
 *   -EPROTONOSUPPORT major version other than 1
 *   -EOPNOTSUPP      unknown header/record flag bits, unknown record checksum
 *                    algorithm, unknown mandatory record
 *   -EMSGSIZE        record length above VFMIG_STREAM_MAX_RECORD
 *   -ENODATA         stream truncated (including: no END record)
 *   -EPROTO          record order broken (e.g. device record before DEVICE_LIST)
 *   other            from the I/O (e.g. -EIO, -ECONNRESET), or -ENOMEM
 */
#ifndef VFMIG_STREAM_STREAM_H
#define VFMIG_STREAM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fields.h"
#include "io.h"

#define VFMIG_STREAM_MAGIC "VFMIGSTR"        /* 8 bytes, no NUL on the wire */
#define VFMIG_STREAM_MAJOR 1
#define VFMIG_STREAM_MINOR 3                 /* what the writer writes by default */
#define VFMIG_STREAM_MINOR_VCPU 2            /* VCPU_STATE exists from 1.2 on */
#define VFMIG_STREAM_MINOR_LIVE 3            /* RAM_PAGES_LIVE exists from 1.3 on */
#define VFMIG_STREAM_MINOR_MAX 3             /* the newest minor written and read */
#define VFMIG_STREAM_HEADER_SIZE 20
#define VFMIG_STREAM_RECORD_HEADER_SIZE 8    /* type, flags, length */
#define VFMIG_STREAM_MAX_RECORD (64u << 20)  /* payload bytes */

/*
 * Record checksum algorithms: the u16 at header offset 14 from 1.1 on. A 1.0
 * stream's records carry CRC-32. The header's own checksum is CRC-32 in
 * every 1.x stream.
 */
enum vfmig_stream_csum {
	VFMIG_STREAM_CSUM_CRC32 = 0,  /* zlib crc32(), the only one of 1.0 */
	VFMIG_STREAM_CSUM_XXH3 = 1,   /* low 32 bits of XXH3-64 (libxxhash) */
};
#define VFMIG_STREAM_CSUM_DEFAULT VFMIG_STREAM_CSUM_XXH3

/* The algorithm's name ("crc32", "xxh3"), or NULL if unknown. */
const char *vfmig_stream_csum_name(uint16_t algo);

/* Header flags (the u16 at offset 12, from 1.1 on). LIVE (1.3): the stream
 * may hold RAM_PAGES_LIVE, whose record checksum leaves the page data out;
 * a reader older than 1.3 refuses the stream at the header instead of
 * calling such a record a checksum mismatch. A 1.3 writer always sets it. */
#define VFMIG_STREAM_HF_LIVE 0x0001u

/* Record flags. Bits other than MUST_UNDERSTAND must be zero in 1.0. */
#define VFMIG_STREAM_F_MUST_UNDERSTAND 0x0001u

/* Pages a reader keeps that arrived torn in RAM_PAGES_LIVE and must come
 * again before END, and the RAM blocks they may belong to. */
#define VFMIG_STREAM_MAX_TORN 65536
#define VFMIG_STREAM_MAX_TORN_BLOCKS 16

/* Limits a 1.0 reader enforces inside payloads. */
#define VFMIG_STREAM_MAX_DEVICES 1024
#define VFMIG_STREAM_MAX_INFO 1024
/* vCPU indexes a 1.2 reader takes in VCPU_STATE. */
#define VFMIG_STREAM_MAX_VCPUS 256

/*
 * The record catalogue, one list for every table derived from it:
 * X(NAME, number, writer sets MUST_UNDERSTAND, lower-case name).
 */
#define VFMIG_STREAM_RECORDS(X) \
	X(STREAM_INFO, 1, false, stream_info) \
	X(DEVICE_LIST, 2, true, device_list) \
	X(DEVICE_BEGIN, 3, true, device_begin) \
	X(DEVICE_DATA, 4, true, device_data) \
	X(DEVICE_END, 5, true, device_end) \
	X(TYPE_STATE, 6, true, type_state) \
	X(RAM_PAGES, 7, true, ram_pages) \
	X(SWITCHOVER, 8, true, switchover) \
	X(END, 9, true, end) \
	X(VCPU_STATE, 10, true, vcpu_state) \
	X(RAM_PAGES_LIVE, 11, true, ram_pages_live)

enum vfmig_stream_type {
#define X(name, num, mu, low) VFMIG_REC_##name = num,
	VFMIG_STREAM_RECORDS(X)
#undef X
};

/* RAM page data in either record: RAM_PAGES, or (1.3) RAM_PAGES_LIVE. */
static inline bool vfmig_stream_is_ram_pages(uint16_t type)
{
	return type == VFMIG_REC_RAM_PAGES || type == VFMIG_REC_RAM_PAGES_LIVE;
}

enum vfmig_stream_phase {
	VFMIG_PHASE_SETUP = 1,
	VFMIG_PHASE_PRECOPY = 2,
	VFMIG_PHASE_FINAL = 3,
};

/* A string view into a record payload: not NUL-terminated. */
struct vfmig_stream_str {
	const char *p;
	uint16_t len;
};

/* Returns whether s equals the C string c. */
bool vfmig_stream_str_eq(struct vfmig_stream_str s, const char *c);

/* ---- values the writer takes (C strings) ---- */

struct vfmig_stream_kv {
	const char *key;
	const char *value;
};

struct vfmig_stream_device {
	const char *id;          /* unique in the list, e.g. "regs0" */
	const char *type;        /* device type, e.g. "pci" */
	const char *interface;   /* migration interface: "v2" or "region" */
	uint32_t instance;
	uint32_t type_version;   /* version of the type's TYPE_STATE */
};

/* One run of pages: npages pages from addr (a multiple of the page size). */
struct vfmig_stream_ram_run {
	uint64_t addr;           /* byte offset in the RAM block */
	uint32_t npages;         /* >= 1 */
	bool zero;               /* all pages zero: no data follows */
	const uint8_t *data;     /* npages * page_size bytes unless zero */
};

struct vfmig_stream_ram_pages {
	const char *block;       /* RAM block id (writer) */
	uint32_t page_size;      /* power of two, 512 .. 1 GiB */
	uint32_t nruns;
	const struct vfmig_stream_ram_run *runs;
	/* in_file: every run's data is also at file offset addr of file_fd
	 * (the block's memfd), for a writer that sends page data from the
	 * file (vfmig_stream_writer_pages_from_file()). */
	bool in_file;
	int file_fd;
};

/* ---- decoded records (views into the reader's current record) ---- */

struct vfmig_stream_kv_view {
	struct vfmig_stream_str key, value;
};

struct vfmig_stream_device_view {
	struct vfmig_stream_str id, type, interface;
	uint32_t instance;
	uint32_t type_version;
};

struct vfmig_stream_decoded {
	union {
		struct {
			uint16_t count;
			struct vfmig_stream_kv_view *kv;
		} info;
		struct {
			uint16_t count;
			struct vfmig_stream_device_view *dev;
		} device_list;
		struct {
			uint16_t dev;
			uint8_t phase; /* enum vfmig_stream_phase */
		} device_begin;
		struct {
			uint16_t dev;
			uint32_t len;
			const uint8_t *data; /* NULL when forwarded */
			bool forwarded;      /* vfmig_stream_reader_set_forward */
		} device_data;
		struct {
			uint16_t dev;
		} device_end;
		struct {
			uint16_t dev;
			uint32_t len;
			const uint8_t *state; /* field-table encoding */
		} type_state;
		struct {   /* RAM_PAGES and RAM_PAGES_LIVE */
			struct vfmig_stream_str block;
			uint32_t page_size;
			uint32_t nruns;
			struct vfmig_stream_ram_run *runs;
			/* RAM_PAGES_LIVE read by the reader: data pages whose
			 * own checksum did not match (their bytes are what
			 * arrived; they must come again before END). */
			uint32_t torn;
		} ram_pages;
		struct {
			uint32_t records; /* records before END */
		} end;
		struct {
			uint16_t vcpu;
			uint32_t len;
			const uint8_t *state; /* field-table encoding */
		} vcpu_state;
	} u;
};

struct vfmig_stream_record {
	uint64_t offset;         /* byte offset of the record in the stream */
	uint16_t type;
	uint16_t flags;
	uint32_t length;         /* payload bytes */
	const uint8_t *payload;
	struct vfmig_stream_decoded d; /* valid for known types */
};

/* Returns the record type's name ("DEVICE_DATA"), or NULL if unknown. */
const char *vfmig_stream_type_name(uint16_t type);

/*
 * Decodes and bounds-checks a known record's payload into *d, without
 * record-order checks. Arrays in *d are malloc'd: release them with
 * vfmig_stream_decoded_clear(). Views point into payload.
 * Returns 0, -EBADMSG (malformed; message in err), -ENOENT (unknown type) or
 * -ENOMEM.
 */
int vfmig_stream_decode(uint16_t type, const uint8_t *payload, uint32_t len,
			struct vfmig_stream_decoded *d, char *err, size_t errlen);
void vfmig_stream_decoded_clear(uint16_t type, struct vfmig_stream_decoded *d);

/* ---- writer ---- */

struct vfmig_stream_writer;

/*
 * Writes the stream header to io and returns a writer in *out: format 1.2
 * with record checksums of VFMIG_STREAM_CSUM_DEFAULT. io stays owned by the
 * caller and must outlive the writer. Returns 0, -ENOMEM or the I/O error.
 */
int vfmig_stream_writer_open(struct vfmig_stream_writer **out, struct vfmig_io *io);

/*
 * The same with the record checksum algorithm chosen: VFMIG_STREAM_CSUM_CRC32
 * writes format 1.0 (byte for byte what a 1.0 writer writes, for a reader
 * that knows only 1.0); any other known algorithm writes 1.3 naming it.
 * Also -EINVAL for an unknown algorithm.
 */
int vfmig_stream_writer_open_csum(struct vfmig_stream_writer **out, struct vfmig_io *io,
				  enum vfmig_stream_csum csum);

/*
 * The same with the minor version chosen too: 0 with CRC-32 only, 1 to 3
 * with another algorithm (1.1 for a reader older than 1.2, which refuses
 * VCPU_STATE as an unknown mandatory record; 1.3 writes RAM page data as
 * RAM_PAGES_LIVE, straight from the caller's memory, each page with its own
 * checksum, so memory that changes while it is sent costs a resend, not the
 * stream). -EINVAL for other combinations.
 */
int vfmig_stream_writer_open_minor(struct vfmig_stream_writer **out, struct vfmig_io *io,
				   enum vfmig_stream_csum csum, uint16_t minor);

/*
 * Record writers. Each writes one whole record and returns 0 or a negative
 * errno: -EINVAL for bad arguments (device index not below the DEVICE_LIST
 * count, record order, strings over 65535 bytes, bad page size), -EMSGSIZE
 * for a payload above VFMIG_STREAM_MAX_RECORD, -ENOMEM, or the I/O error.
 * After an I/O error every later call fails with it. Pointers are only read
 * during the call.
 */
int vfmig_stream_write_info(struct vfmig_stream_writer *w,
			    const struct vfmig_stream_kv *kv, size_t n);
int vfmig_stream_write_device_list(struct vfmig_stream_writer *w,
				   const struct vfmig_stream_device *dev, size_t n);
int vfmig_stream_write_device_begin(struct vfmig_stream_writer *w, uint16_t dev,
				    enum vfmig_stream_phase phase);
int vfmig_stream_write_device_data(struct vfmig_stream_writer *w, uint16_t dev,
				   const void *data, size_t len);
int vfmig_stream_write_device_end(struct vfmig_stream_writer *w, uint16_t dev);

/*
 * Sealed device data: a DEVICE_DATA record whose data and checksum were
 * made by someone else (the device, on data channel version 2, which
 * computes the record checksum with vfmig_stream_seal_*): the writer writes
 * the record header and the device index, then move(priv, fd) must write
 * exactly len bytes of data followed by the 4-byte record checksum to fd,
 * the io's raw fd (vfmig_io_raw_fd). The bytes on the wire are those of
 * vfmig_stream_write_device_data() for the same data. A failed move
 * breaks the stream (sticky error). -ENOTSUP when the writer cannot take
 * one (vfmig_stream_writer_can_move() is false); len must be 1 .. the
 * record limit less 2.
 */
typedef int (*vfmig_stream_move_fn)(void *priv, int fd);
int vfmig_stream_write_device_data_moved(struct vfmig_stream_writer *w, uint16_t dev,
					 size_t len, vfmig_stream_move_fn move, void *priv);
/* Whether the writer takes moved records: XXH3 records over an io with a
 * raw fd. */
bool vfmig_stream_writer_can_move(const struct vfmig_stream_writer *w);

/*
 * The record checksum of DEVICE_DATA for device index dev with len bytes
 * of data, computed piece by piece by whoever holds the data: begin, update
 * over the data in order, end. XXH3 only (the checksum of 1.1 and later
 * streams); the result is the record's u32 trailer (vfmig writes it
 * big-endian). new returns -ENOMEM or 0.
 */
struct vfmig_stream_seal;
int vfmig_stream_seal_new(struct vfmig_stream_seal **out);
void vfmig_stream_seal_begin(struct vfmig_stream_seal *s, uint16_t dev, uint32_t len);
void vfmig_stream_seal_update(struct vfmig_stream_seal *s, const void *p, size_t n);
uint32_t vfmig_stream_seal_end(struct vfmig_stream_seal *s);
void vfmig_stream_seal_free(struct vfmig_stream_seal *s);
/* Encodes obj through desc (see fields.h); also -ERANGE for an array count. */
int vfmig_stream_write_type_state(struct vfmig_stream_writer *w, uint16_t dev,
				  const struct vfmig_fields_desc *desc, const void *obj);
/* RAM_PAGES, or from 1.3 on RAM_PAGES_LIVE: there the page data is read
 * only while it is written out (no copy), so it may be guest memory the
 * guest keeps writing; a page torn that way must be sent again before
 * END (see vfmig_stream_reader_torn()). */
int vfmig_stream_write_ram_pages(struct vfmig_stream_writer *w,
				 const struct vfmig_stream_ram_pages *rp);
/*
 * RAM_PAGES_LIVE's page checksums taken by a thread of w's own while the
 * calling thread sends the pages, so that the two passes over them run on
 * two CPUs (the bytes of the stream do not change). Idempotent; the thread
 * ends in vfmig_stream_writer_free(). 0 or a negative errno (the writer
 * then sums on the calling thread as before).
 */
int vfmig_stream_writer_sum_aside(struct vfmig_stream_writer *w);
/*
 * RAM_PAGES_LIVE page data sent from the block's file (rp->in_file) with
 * vfmig_io_write_file(), so the sending thread never copies it: the kernel
 * takes the pages by reference. The page checksums are still taken from
 * memory right before each piece goes out; a page the guest writes while
 * its bytes wait in the socket arrives torn and goes again, as it would
 * from memory. Where io cannot (-ENOTSUP), the writer goes back to
 * writing from memory for good. The bytes of the stream do not change.
 */
void vfmig_stream_writer_pages_from_file(struct vfmig_stream_writer *w, bool on);
/* A vCPU's state (from 1.2 on; after SWITCHOVER), encoded through desc.
 * Also -EINVAL for vcpu >= VFMIG_STREAM_MAX_VCPUS, before SWITCHOVER, or
 * in a stream of a minor that has no VCPU_STATE (1.0, 1.1). */
int vfmig_stream_write_vcpu_state(struct vfmig_stream_writer *w, uint16_t vcpu,
				  const struct vfmig_fields_desc *desc, const void *obj);
int vfmig_stream_write_switchover(struct vfmig_stream_writer *w);
/* Writes END and flushes io. No record may follow. */
int vfmig_stream_writer_end(struct vfmig_stream_writer *w);

/*
 * Writes a raw record (any type, flags and payload), for extensions and
 * tests. Flags other than MUST_UNDERSTAND give -EINVAL.
 */
int vfmig_stream_write_record(struct vfmig_stream_writer *w, uint16_t type, uint16_t flags,
			      const void *payload, size_t len);

/* Bytes written through the writer so far (header included). */
uint64_t vfmig_stream_writer_bytes(const struct vfmig_stream_writer *w);
/* Message for the last error ("" if none); owned by w. */
const char *vfmig_stream_writer_error(const struct vfmig_stream_writer *w);
/* Frees w (NULL is fine). Does not close io; does not write END. */
void vfmig_stream_writer_free(struct vfmig_stream_writer *w);

/* ---- reader ---- */

struct vfmig_stream_reader;

/*
 * Reads and validates the header from io: magic, major == 1 (any minor),
 * checksum, flags == 0 and, from minor 1 on, a known record checksum
 * algorithm. io stays owned by the caller and must outlive the reader. On
 * success returns 0 and *out; on failure returns a negative errno and, if
 * out_err is not NULL, copies the message there (errlen bytes).
 */
int vfmig_stream_reader_open(struct vfmig_stream_reader **out, struct vfmig_io *io,
			     char *out_err, size_t errlen);

/* The minor version found in the header. */
uint16_t vfmig_stream_reader_minor(const struct vfmig_stream_reader *r);
/* The record checksum algorithm of the stream (enum vfmig_stream_csum). */
uint16_t vfmig_stream_reader_csum(const struct vfmig_stream_reader *r);

/*
 * Reads the next record, verifies its checksum, flags and payload, checks
 * record order, and decodes it into rec->d. Unknown records without
 * MUST_UNDERSTAND are skipped (counted in vfmig_stream_reader_skipped()).
 * Returns 1 with *rec filled (valid until the next call or free), 0 once END
 * has been returned (the END record itself is returned with 1 first), or a
 * negative errno (sticky: later calls return it again).
 */
int vfmig_stream_next(struct vfmig_stream_reader *r, struct vfmig_stream_record *rec);

/*
 * Placement of RAM page data (optional; NULL fn: none, the default). For
 * each data run of a RAM_PAGES record the reader asks fn where to receive
 * its len bytes (the page data of npages pages of page_size at addr of
 * block): fn returns memory for exactly those bytes, or NULL to have them
 * in the reader's buffer as usual. The bytes are read straight there,
 * before the record's checksum can be checked: fn's memory holds whatever
 * arrived, also for a record that vfmig_stream_next() then refuses (bad
 * checksum, malformed), so it must be memory whose content does not count
 * until the caller accepts what it loads (a destination's guest RAM before
 * the guest runs). fn is not called for a run that is malformed, nor after
 * one, nor for a record with unknown flags. A record read this way comes
 * back with rec->payload NULL and its runs' data pointing where fn said.
 */
typedef void *(*vfmig_stream_ram_place_fn)(void *priv,
					   const struct vfmig_stream_str *block,
					   uint32_t page_size, uint64_t addr,
					   uint64_t len);
void vfmig_stream_reader_set_ram_place(struct vfmig_stream_reader *r,
				       vfmig_stream_ram_place_fn fn, void *priv);

/*
 * Forwarding device data unread (the destination of sealed device data):
 * for a DEVICE_DATA record of an XXH3 stream over an io with a raw fd, with
 * flags MUST_UNDERSTAND only, at least one byte of data and a device index
 * below the DEVICE_LIST count, the reader reads the header and the index
 * and calls fn(priv, dev, len, fd). fn returns 0 to decline (the reader
 * then reads the record as usual), or 1 after reading exactly len bytes of
 * data and the 4-byte record checksum from fd and handing them on (to a
 * device that checks the checksum itself: the reader cannot), or a
 * negative errno, which breaks the stream. A forwarded record comes back
 * with rec->payload NULL, d.u.device_data.data NULL and
 * d.u.device_data.forwarded true.
 */
typedef int (*vfmig_stream_forward_fn)(void *priv, uint16_t dev, uint32_t len, int fd);
void vfmig_stream_reader_set_forward(struct vfmig_stream_reader *r, vfmig_stream_forward_fn fn,
				     void *priv);

/*
 * RAM_PAGES_LIVE (1.3): a data page whose own checksum fails was written by
 * the guest while it was sent, so the source sends it again (its dirty bit
 * was set after it was taken). The record is accepted, the page counted in
 * rec->d.u.ram_pages.torn and kept as pending until a later RAM_PAGES or
 * RAM_PAGES_LIVE record of the same block covers it with a good page or a
 * zero run; END with a page still pending is refused (-EBADMSG). More than
 * VFMIG_STREAM_MAX_TORN pending pages (or torn pages in more than
 * VFMIG_STREAM_MAX_TORN_BLOCKS blocks) is refused with -EOVERFLOW.
 * torn(): pages that arrived torn so far; torn_pending(): not carried again
 * yet.
 */
uint64_t vfmig_stream_reader_torn(const struct vfmig_stream_reader *r);
uint32_t vfmig_stream_reader_torn_pending(const struct vfmig_stream_reader *r);

/* Unknown optional records skipped so far. */
uint32_t vfmig_stream_reader_skipped(const struct vfmig_stream_reader *r);
/* Bytes consumed so far (header included) = offset of the next record. */
uint64_t vfmig_stream_reader_offset(const struct vfmig_stream_reader *r);
/* Message for the error (""if none); owned by r. */
const char *vfmig_stream_reader_error(const struct vfmig_stream_reader *r);
/* Frees r and its buffers (NULL is fine). Does not close io. */
void vfmig_stream_reader_free(struct vfmig_stream_reader *r);

/* ---- printer ---- */

/*
 * Prints the stream read from io to out human-readably: the header, then each
 * record with its offset, type name, flags, length, checksum OK/BAD and a
 * decoded summary (TYPE_STATE: its fields). Also checks that nothing follows
 * END. Returns 0 for a valid stream, or the reader's negative errno; the
 * message (naming the problem and offset) is printed as "ERROR: ..." and
 * copied to err if not NULL.
 */
int vfmig_stream_print(struct vfmig_io *io, FILE *out, char *err, size_t errlen);

#endif
