/* SPDX-License-Identifier: MIT */
/*
 * vfmig_io: a small I/O vtable under the migration stream (after redis rio).
 *
 * One struct vfmig_io is a byte sink or source: a memory buffer, a file
 * descriptor (file, pipe, socket) or a path. It keeps a sticky error: once an
 * operation fails, every later write/flush fails with the same error, so a
 * writer may check once at the end. It counts bytes written and read for
 * reporting.
 *
 * Errors are negative errno values. Nothing here prints.
 */
#ifndef VFMIG_STREAM_IO_H
#define VFMIG_STREAM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vfmig_io;

#define VFMIG_IO_OPS_VERSION 1

/*
 * Operations of one I/O kind. Implementations are called only through the
 * vfmig_io_* wrappers below, which keep the sticky error and the counters.
 */
struct vfmig_io_ops {
	unsigned version; /* VFMIG_IO_OPS_VERSION */
	/* Write all n bytes. Returns 0 or a negative errno. */
	int (*write)(struct vfmig_io *io, const void *buf, size_t n);
	/* Read up to n bytes, fewer only at end of input. Returns the count
	 * (0 at end of input) or a negative errno. */
	ssize_t (*read)(struct vfmig_io *io, void *buf, size_t n);
	/* Push buffered data to its destination. Optional (NULL: no-op). */
	int (*flush)(struct vfmig_io *io);
	/* Release everything, including io itself. Returns 0 or -errno. */
	int (*close)(struct vfmig_io *io);
	/* The file descriptor under io, for bytes that move without passing
	 * through it (splice): returned only when io buffers nothing between
	 * its caller and the fd. Optional (NULL: there is none). */
	int (*fd)(struct vfmig_io *io);
	/* n bytes were moved on that fd (written when write): for what io
	 * does per byte besides counting (pacing, progress). Optional. */
	void (*moved)(struct vfmig_io *io, bool write, uint64_t n);
	/* Write n bytes of the file fd from offset off, after what io
	 * buffers, without reading them into memory (splice). 0, a negative
	 * errno, or -ENOTSUP when io does not take this (nothing written
	 * then). Optional (NULL: -ENOTSUP). */
	int (*write_file)(struct vfmig_io *io, int fd, uint64_t off, size_t n);
};

struct vfmig_io {
	const struct vfmig_io_ops *ops;
	int error;              /* sticky: 0 or the first negative errno */
	uint64_t bytes_written; /* successfully written bytes */
	uint64_t bytes_read;    /* successfully read bytes */
};

/*
 * Writes all n bytes. Returns 0, or the sticky error (negative errno), in
 * which case nothing more is written through io.
 */
int vfmig_io_write(struct vfmig_io *io, const void *buf, size_t n);

/*
 * Reads n bytes unless input ends first. Returns the count read (n, or less
 * only at end of input), or a negative errno (which becomes sticky).
 */
ssize_t vfmig_io_read(struct vfmig_io *io, void *buf, size_t n);

/* Flushes buffered output. Returns 0 or the sticky/new negative errno. */
int vfmig_io_flush(struct vfmig_io *io);

/*
 * Closes io and frees it (NULL is a no-op returning 0). Returns the sticky
 * error if there was one, else the close result: a caller that ignored
 * individual write results learns here whether everything went out.
 */
int vfmig_io_close(struct vfmig_io *io);

/* Returns the sticky error: 0 or a negative errno. */
int vfmig_io_error(const struct vfmig_io *io);

/*
 * The file descriptor under io, after flushing what io buffers: bytes
 * written to it (or read from it) then follow (or precede) what went
 * through io, in order. -ENOTSUP when io has no such fd, or the sticky
 * error. Whoever moves bytes on the fd reports them with vfmig_io_moved()
 * so that the counters stay right.
 */
int vfmig_io_raw_fd(struct vfmig_io *io);

/*
 * Writes n bytes of the file fd from offset off, as vfmig_io_write() would
 * write them from memory, where io can move them without reading them
 * (write_file). Returns 0, the sticky error, or -ENOTSUP (nothing written,
 * no sticky error: write the bytes from memory instead).
 */
int vfmig_io_write_file(struct vfmig_io *io, int fd, uint64_t off, size_t n);

/* Counts n bytes written (write) or read (!write) on the raw fd. */
void vfmig_io_moved(struct vfmig_io *io, bool write, uint64_t n);

/* Makes rc (a negative errno) io's sticky error unless it has one; returns
 * the sticky error. For a raw-fd move that failed part way: io's stream is
 * then broken. */
int vfmig_io_fail(struct vfmig_io *io, int rc);

/*
 * Memory writer: a growable buffer. Returns 0 and *out, or -ENOMEM.
 * vfmig_io_mem_data() gives the bytes written so far; they stay owned by
 * io and are valid until the next write or close.
 */
int vfmig_io_mem_writer(struct vfmig_io **out);
const uint8_t *vfmig_io_mem_data(const struct vfmig_io *io, size_t *len);

/*
 * Memory reader over a fixed buffer. The buffer is not copied: the caller
 * keeps it alive and unchanged until close. Returns 0 or -ENOMEM.
 */
int vfmig_io_mem_reader(struct vfmig_io **out, const void *buf, size_t len);

/*
 * A blocking file descriptor (regular file, pipe, socket): short reads and
 * writes are continued and EINTR is retried. If own_fd, close() closes fd.
 * Returns 0 or -ENOMEM/-EBADF.
 */
int vfmig_io_fd(struct vfmig_io **out, int fd, bool own_fd);

/*
 * Convenience: open path for reading (write == false) or create/truncate it
 * for writing (mode 0644), as an owned fd io. Returns 0 or a negative errno
 * from open(2).
 */
int vfmig_io_path(struct vfmig_io **out, const char *path, bool write);

#endif
