/* SPDX-License-Identifier: MIT */
/* vfmig_io wrappers and the memory, fd and path implementations. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be.h"
#include "io.h"

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

int vfmig_io_write(struct vfmig_io *io, const void *buf, size_t n)
{
	int rc;

	if (io->error)
		return io->error;
	if (n == 0)
		return 0;
	rc = io->ops->write(io, buf, n);
	if (rc < 0) {
		io->error = rc;
		return rc;
	}
	io->bytes_written += n;
	return 0;
}

ssize_t vfmig_io_read(struct vfmig_io *io, void *buf, size_t n)
{
	ssize_t rc;

	if (io->error)
		return io->error;
	if (n == 0)
		return 0;
	rc = io->ops->read(io, buf, n);
	if (rc < 0) {
		io->error = (int)rc;
		return rc;
	}
	io->bytes_read += (uint64_t)rc;
	return rc;
}

int vfmig_io_flush(struct vfmig_io *io)
{
	int rc;

	if (io->error)
		return io->error;
	if (!io->ops->flush)
		return 0;
	rc = io->ops->flush(io);
	if (rc < 0)
		io->error = rc;
	return rc;
}

int vfmig_io_close(struct vfmig_io *io)
{
	int err, rc;

	if (!io)
		return 0;
	err = io->error;
	rc = io->ops->close(io);
	return err ? err : rc;
}

int vfmig_io_error(const struct vfmig_io *io)
{
	return io->error;
}

int vfmig_io_raw_fd(struct vfmig_io *io)
{
	int rc;

	if (io->error)
		return io->error;
	if (!io->ops->fd)
		return -ENOTSUP;
	rc = vfmig_io_flush(io);
	if (rc < 0)
		return rc;
	return io->ops->fd(io);
}

int vfmig_io_write_file(struct vfmig_io *io, int fd, uint64_t off, size_t n)
{
	int rc;

	if (io->error)
		return io->error;
	if (!io->ops->write_file)
		return -ENOTSUP;
	rc = io->ops->write_file(io, fd, off, n);
	if (rc == -ENOTSUP)
		return rc;
	if (rc < 0) {
		io->error = rc;
		return rc;
	}
	io->bytes_written += n;
	return 0;
}

void vfmig_io_moved(struct vfmig_io *io, bool write, uint64_t n)
{
	if (io->ops->moved)
		io->ops->moved(io, write, n);
	if (write)
		io->bytes_written += n;
	else
		io->bytes_read += n;
}

int vfmig_io_fail(struct vfmig_io *io, int rc)
{
	if (!io->error && rc < 0)
		io->error = rc;
	return io->error;
}

/* ---- memory writer ---- */

struct mem_writer {
	struct vfmig_io io;
	struct vfmig__buf buf;
};

static int memw_write(struct vfmig_io *io, const void *p, size_t n)
{
	struct mem_writer *m = container_of(io, struct mem_writer, io);

	vfmig__buf_bytes(&m->buf, p, n);
	return m->buf.err;
}

static ssize_t memw_read(struct vfmig_io *io, void *p, size_t n)
{
	(void)io;
	(void)p;
	(void)n;
	return -EBADF;
}

static int memw_close(struct vfmig_io *io)
{
	struct mem_writer *m = container_of(io, struct mem_writer, io);

	vfmig__buf_free(&m->buf);
	free(m);
	return 0;
}

static const struct vfmig_io_ops memw_ops = {
	.version = VFMIG_IO_OPS_VERSION,
	.write = memw_write,
	.read = memw_read,
	.close = memw_close,
};

int vfmig_io_mem_writer(struct vfmig_io **out)
{
	struct mem_writer *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->io.ops = &memw_ops;
	*out = &m->io;
	return 0;
}

const uint8_t *vfmig_io_mem_data(const struct vfmig_io *io, size_t *len)
{
	const struct mem_writer *m;

	if (io->ops != &memw_ops) {
		*len = 0;
		return NULL;
	}
	m = container_of(io, const struct mem_writer, io);
	*len = m->buf.len;
	return m->buf.data;
}

/* ---- memory reader ---- */

struct mem_reader {
	struct vfmig_io io;
	const uint8_t *data;
	size_t len;
	size_t pos;
};

static int memr_write(struct vfmig_io *io, const void *p, size_t n)
{
	(void)io;
	(void)p;
	(void)n;
	return -EBADF;
}

static ssize_t memr_read(struct vfmig_io *io, void *p, size_t n)
{
	struct mem_reader *m = container_of(io, struct mem_reader, io);
	size_t left = m->len - m->pos;

	if (n > left)
		n = left;
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	if (n)
		memcpy(p, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int memr_close(struct vfmig_io *io)
{
	free(container_of(io, struct mem_reader, io));
	return 0;
}

static const struct vfmig_io_ops memr_ops = {
	.version = VFMIG_IO_OPS_VERSION,
	.write = memr_write,
	.read = memr_read,
	.close = memr_close,
};

int vfmig_io_mem_reader(struct vfmig_io **out, const void *buf, size_t len)
{
	struct mem_reader *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->io.ops = &memr_ops;
	m->data = buf;
	m->len = buf ? len : 0;
	*out = &m->io;
	return 0;
}

/* ---- file descriptor ---- */

struct fd_io {
	struct vfmig_io io;
	int fd;
	bool own;
};

static int fd_write(struct vfmig_io *io, const void *p, size_t n)
{
	struct fd_io *f = container_of(io, struct fd_io, io);
	const uint8_t *b = p;
	ssize_t rc;

	while (n) {
		rc = write(f->fd, b, n);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc == 0)
			return -EIO;
		b += rc;
		n -= (size_t)rc;
	}
	return 0;
}

static ssize_t fd_read(struct vfmig_io *io, void *p, size_t n)
{
	struct fd_io *f = container_of(io, struct fd_io, io);
	uint8_t *b = p;
	size_t got = 0;
	ssize_t rc;

	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	while (got < n) {
		rc = read(f->fd, b + got, n - got);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc == 0)
			break;
		got += (size_t)rc;
	}
	return (ssize_t)got;
}

static int fd_close(struct vfmig_io *io)
{
	struct fd_io *f = container_of(io, struct fd_io, io);
	int rc = 0;

	if (f->own && close(f->fd) < 0)
		rc = -errno;
	free(f);
	return rc;
}

static int fd_fd(struct vfmig_io *io)
{
	return container_of(io, struct fd_io, io)->fd;
}

static const struct vfmig_io_ops fd_ops = {
	.version = VFMIG_IO_OPS_VERSION,
	.write = fd_write,
	.read = fd_read,
	.close = fd_close,
	.fd = fd_fd,
};

int vfmig_io_fd(struct vfmig_io **out, int fd, bool own_fd)
{
	struct fd_io *f;

	if (fd < 0)
		return -EBADF;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->io.ops = &fd_ops;
	f->fd = fd;
	f->own = own_fd;
	*out = &f->io;
	return 0;
}

int vfmig_io_path(struct vfmig_io **out, const char *path, bool write)
{
	int flags = write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY;
	int fd = open(path, flags | O_CLOEXEC, 0600); /* guest memory */
	int rc;

	if (fd < 0)
		return -errno;
	rc = vfmig_io_fd(out, fd, true);
	if (rc < 0)
		close(fd);
	return rc;
}
