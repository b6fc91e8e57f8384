/* SPDX-License-Identifier: MIT */
/*
 * Migration channels (channel.h): URI parsing, TCP/UNIX/file endpoints, a
 * socket vfmig_io with timeouts, and the return path.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <zlib.h>

#include "engine/channel.h"
#include "engine/converge.h"
#include "stream/stream.h"
#include "protocol/proto.h"
#include "protocol/tscale.h"

#define DEFAULT_TIMEOUT_MS 30000
#define WBUF_SIZE (64u << 10)
#define RP_HDR 6u
_Static_assert(VFMIG_RP_FRAME_MAX == RP_HDR + VFMIG_RP_MAX + 4,
	       "a frame is its header, the largest payload and the CRC");

struct sock_io {
	struct vfmig_io io; /* first: the vtable's callers hold &io */
	struct vfmig_chan *c;
};

/* Room for a source's RAM channels (migrate --channels, up to 16) that
 * connect right after its main connection, before they are accepted. */
#define LISTEN_BACKLOG 32

struct vfmig_chan {
	enum vfmig_chan_kind kind;
	bool source;
	int fd;               /* sockets; a file source's fd (-1 once closed) */
	int timeout_ms;
	struct vfmig_io *io;  /* &sio.io for sockets, an fd or path io for files */
	struct sock_io sio;
	uint8_t *wbuf;
	size_t wlen;
	/* Source socket: the pipe page data from a file goes through
	 * (sio_write_file), made on first use; -1 until then. */
	int pipe[2];
	/* Source: the bandwidth limit stream writes draw from (may be NULL),
	 * and whether a send waited the whole timeout for the peer. */
	struct vfmig_pace *pace;
	bool stalled;
	/* Destination: the progress counter shared with the other
	 * connections of the migration (NULL: none). */
	_Atomic uint64_t *shared;
	/* File source: the stream is written to tmp and renamed onto path by
	 * vfmig_chan_commit; tmp is NULL when the file is written in place
	 * (not a regular file: a FIFO, /dev/null). */
	char *path;
	char *tmp;
	bool committed;
	/* Source socket: the return-path frame being reassembled. Bytes stay
	 * here across calls until the frame is whole, so a wait that times
	 * out mid-frame loses nothing. rp_since: when its first byte came. */
	uint8_t rp_buf[VFMIG_RP_FRAME_MAX];
	size_t rp_len;
	int64_t rp_since;
	/* Set once the return path cannot be read again (a length above the
	 * limit, a frame stalled mid-way): every later call gives it. */
	int rp_err;
	char rp_errmsg[160];
};

struct vfmig_chan_listener {
	struct vfmig_chan_uri uri;
	int fd;
	uint16_t port;
};

__attribute__((format(printf, 3, 4)))
static void msg(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: none), at least 0. */
static int left_ms(int64_t deadline)
{
	int64_t l;

	if (deadline < 0)
		return -1;
	l = deadline - now_ms();
	return l < 0 ? 0 : (l > 1000000000 ? 1000000000 : (int)l);
}

static int64_t deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* ---- URI ---- */

static int parse_port(const char *s, uint16_t *port, const char *uri, char *err, size_t errlen)
{
	unsigned long v = 0;

	if (!*s) {
		msg(err, errlen, "\"%s\": missing port after the last ':'", uri);
		return -EINVAL;
	}
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || p - s > 5) {
			msg(err, errlen, "\"%s\": port \"%s\" is not a number 0-65535", uri, s);
			return -EINVAL;
		}
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535) {
		msg(err, errlen, "\"%s\": port %lu is above 65535", uri, v);
		return -EINVAL;
	}
	*port = (uint16_t)v;
	return 0;
}

static int parse_tcp(const char *rest, const char *uri, struct vfmig_chan_uri *out,
		     char *err, size_t errlen)
{
	const char *colon;
	size_t hl;

	if (rest[0] == '[') {
		const char *close = strchr(rest, ']');
		if (!close) {
			msg(err, errlen, "\"%s\": IPv6 host has no closing ']'", uri);
			return -EINVAL;
		}
		if (close[1] != ':') {
			msg(err, errlen, "\"%s\": missing ':PORT' after the IPv6 host", uri);
			return -EINVAL;
		}
		hl = (size_t)(close - rest - 1);
		if (!hl || !memchr(rest + 1, ':', hl)) {
			msg(err, errlen, "\"%s\": \"%.*s\" is not an IPv6 address", uri,
			    (int)hl, rest + 1);
			return -EINVAL;
		}
		if (hl >= sizeof(out->host)) {
			msg(err, errlen, "\"%s\": host too long", uri);
			return -EINVAL;
		}
		memcpy(out->host, rest + 1, hl);
		out->host[hl] = 0;
		return parse_port(close + 2, &out->port, uri, err, errlen);
	}
	colon = strrchr(rest, ':');
	if (!colon) {
		msg(err, errlen, "\"%s\": missing port (expected tcp:HOST:PORT)", uri);
		return -EINVAL;
	}
	hl = (size_t)(colon - rest);
	if (!hl) {
		msg(err, errlen, "\"%s\": empty host (expected tcp:HOST:PORT)", uri);
		return -EINVAL;
	}
	if (memchr(rest, ':', hl)) {
		msg(err, errlen, "\"%s\": host \"%.*s\" has a ':'; write IPv6 as [ADDR]",
		    uri, (int)hl, rest);
		return -EINVAL;
	}
	if (hl >= sizeof(out->host)) {
		msg(err, errlen, "\"%s\": host too long", uri);
		return -EINVAL;
	}
	memcpy(out->host, rest, hl);
	out->host[hl] = 0;
	return parse_port(colon + 1, &out->port, uri, err, errlen);
}

int vfmig_chan_parse_uri(const char *uri, struct vfmig_chan_uri *out, char *err, size_t errlen)
{
	const char *colon;
	size_t max;

	if (!uri || !out) {
		msg(err, errlen, "no URI");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	colon = strchr(uri, ':');
	if (!colon) {
		msg(err, errlen, "\"%s\": no scheme (expected tcp:, unix: or file:)", uri);
		return -EINVAL;
	}
	size_t sl = (size_t)(colon - uri);
	if (sl == 3 && !strncmp(uri, "tcp", 3)) {
		out->kind = VFMIG_CHAN_TCP;
		return parse_tcp(colon + 1, uri, out, err, errlen);
	}
	if (sl == 4 && !strncmp(uri, "unix", 4))
		out->kind = VFMIG_CHAN_UNIX;
	else if (sl == 4 && !strncmp(uri, "file", 4))
		out->kind = VFMIG_CHAN_FILE;
	else {
		msg(err, errlen, "\"%s\": unknown scheme \"%.*s\" (expected tcp, unix or file)",
		    uri, (int)sl, uri);
		return -EINVAL;
	}
	if (!colon[1]) {
		msg(err, errlen, "\"%s\": empty path", uri);
		return -EINVAL;
	}
	max = out->kind == VFMIG_CHAN_UNIX ? VFMIG_CHAN_UNIX_MAX_PATH : VFMIG_CHAN_MAX_PATH - 1;
	if (strlen(colon + 1) > max) {
		msg(err, errlen, "\"%.40s...\": path longer than %zu bytes", uri, max);
		return -EINVAL;
	}
	strcpy(out->path, colon + 1);
	return 0;
}

/* ---- socket I/O ---- */

/* Waits for events on fd for up to ms (-1: forever). 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Sends all of head and then all of body, both in each sendmsg() until
 * head is out (so the few bytes waiting in the write buffer share the
 * large write's segments rather than going out as a segment of their
 * own), waiting at most timeout_ms for each bit of progress. */
static int send_two(int fd, const void *head, size_t hlen, const void *body,
		    size_t blen, int timeout_ms)
{
	struct iovec iov[2] = { { (void *)head, hlen }, { (void *)body, blen } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	while (iov[0].iov_len + iov[1].iov_len) {
		mh.msg_iov = iov[0].iov_len ? iov : iov + 1;
		mh.msg_iovlen = iov[0].iov_len ? 2 : 1;
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			size_t k = (size_t)w, a = k < iov[0].iov_len ? k : iov[0].iov_len;

			if (a) { /* head may be NULL with hlen 0 */
				iov[0].iov_base = (uint8_t *)iov[0].iov_base + a;
				iov[0].iov_len -= a;
			}
			iov[1].iov_base = (uint8_t *)iov[1].iov_base + (k - a);
			iov[1].iov_len -= k - a;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = wait_fd(fd, POLLOUT, timeout_ms);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Sends all of buf, waiting at most timeout_ms for each bit of progress. */
static int send_all(int fd, const void *buf, size_t n, int timeout_ms)
{
	return send_two(fd, NULL, 0, buf, n, timeout_ms);
}

/* Receives up to n bytes, fewer only at the peer's close. Each wait for
 * data lasts until deadline (absolute ms; -1: none) or, if idle_ms >= 0,
 * at most idle_ms since the last progress: of this socket, or with shared
 * (vfmig_chan_share_progress; may be NULL) of any socket that counts into
 * it. Returns the count or -errno. */
static ssize_t recv_all(int fd, void *buf, size_t n, int64_t deadline, int idle_ms,
			_Atomic uint64_t *shared)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
		if (r > 0) {
			got += (size_t)r;
			if (shared)
				atomic_fetch_add_explicit(shared, (uint64_t)r,
							  memory_order_relaxed);
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		uint64_t seen = shared ? atomic_load_explicit(
						 shared, memory_order_relaxed)
				       : 0;
		int w;
		do {
			w = wait_fd(fd, POLLIN,
				    idle_ms >= 0 ? idle_ms : left_ms(deadline));
			if (w != -ETIMEDOUT || !shared || idle_ms < 0)
				break;
			uint64_t now = atomic_load_explicit(
				shared, memory_order_relaxed);
			if (now == seen)
				break; /* nothing anywhere for idle_ms */
			seen = now;
		} while (1);
		if (w < 0)
			return w;
	}
	return (ssize_t)got;
}

static int chan_flush_buf(struct vfmig_chan *c)
{
	int r = send_all(c->fd, c->wbuf, c->wlen, c->timeout_ms);

	c->wlen = 0;
	if (r == -ETIMEDOUT)
		c->stalled = true;
	return r;
}

static int sio_write(struct vfmig_io *io, const void *buf, size_t n)
{
	struct vfmig_chan *c = ((struct sock_io *)io)->c;
	int r;

	if (!c->source)
		return -EBADF;
	vfmig_pace_take(c->pace, n);
	if (c->wlen + n <= WBUF_SIZE) {
		memcpy(c->wbuf + c->wlen, buf, n);
		c->wlen += n;
		return 0;
	}
	if (n <= WBUF_SIZE) {
		r = chan_flush_buf(c);
		if (r < 0)
			return r;
		memcpy(c->wbuf, buf, n);
		c->wlen = n;
		return 0;
	}
	r = send_two(c->fd, c->wbuf, c->wlen, buf, n, c->timeout_ms);
	c->wlen = 0;
	if (r == -ETIMEDOUT)
		c->stalled = true;
	return r;
}

static ssize_t sio_read(struct vfmig_io *io, void *buf, size_t n)
{
	struct vfmig_chan *c = ((struct sock_io *)io)->c;

	if (c->source)
		return -EBADF;
	/* The timeout bounds each wait for progress, not the whole read. */
	return recv_all(c->fd, buf, n, -1, c->timeout_ms, c->shared);
}

static int sio_flush(struct vfmig_io *io)
{
	struct vfmig_chan *c = ((struct sock_io *)io)->c;

	return c->wlen ? chan_flush_buf(c) : 0;
}

static int sio_close(struct vfmig_io *io)
{
	(void)io; /* the channel owns everything */
	return 0;
}

/* The socket, for bytes spliced past the buffer (sealed device data);
 * vfmig_io_raw_fd() flushes first. */
static int sio_fd(struct vfmig_io *io)
{
	return ((struct sock_io *)io)->c->fd;
}

/* Bytes spliced past the buffer count as the buffer's own would: against
 * the bandwidth limit (after the fact: the pace then waits off the debt
 * before the next write) and as progress of the shared receive clock. */
static void sio_moved(struct vfmig_io *io, bool write, uint64_t n)
{
	struct vfmig_chan *c = ((struct sock_io *)io)->c;

	if (write)
		vfmig_pace_take(c->pace, (size_t)n);
	else if (c->shared)
		atomic_fetch_add_explicit(c->shared, n, memory_order_relaxed);
}

/* The pipe's size: one stream piece at a time goes through it. */
#define SPLICE_PIPE_BYTES (512u << 10)

static int chan_pipe(struct vfmig_chan *c)
{
	if (c->pipe[0] >= 0)
		return 0;
	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		c->pipe[0] = c->pipe[1] = -1;
		return -errno;
	}
	/* A smaller pipe (the system's limit is lower) only means more
	 * rounds. */
	(void)fcntl(c->pipe[1], F_SETPIPE_SZ, (int)SPLICE_PIPE_BYTES);
	return 0;
}

static void chan_pipe_close(struct vfmig_chan *c)
{
	if (c->pipe[0] >= 0) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	c->pipe[0] = c->pipe[1] = -1;
}

/*
 * n bytes of the file fd from off, after the write buffer, spliced through
 * the channel's pipe into the socket: the kernel takes the file's pages by
 * reference and this thread copies nothing. Each wait for the socket lasts
 * at most the timeout, as for sio_write(). -ENOTSUP, with nothing written,
 * when fd or the pipe cannot splice; on any other error the pipe goes
 * (what it held is lost with the stream, which the error breaks).
 */
static int sio_write_file(struct vfmig_io *io, int fd, uint64_t off, size_t n)
{
	struct vfmig_chan *c = ((struct sock_io *)io)->c;
	loff_t at = (loff_t)off;
	size_t left = n, held = 0;
	int r;

	if (!c->source)
		return -EBADF;
	if (chan_pipe(c) < 0)
		return -ENOTSUP;
	if (c->wlen) {
		r = chan_flush_buf(c);
		if (r < 0)
			return r;
	}
	vfmig_pace_take(c->pace, n);
	while (left || held) {
		if (left && held < SPLICE_PIPE_BYTES) {
			size_t want = SPLICE_PIPE_BYTES - held;
			ssize_t in = splice(fd, &at, c->pipe[1], NULL, left < want ? left : want,
					    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

			if (in > 0) {
				left -= (size_t)in;
				held += (size_t)in;
			} else if (in == 0) {
				r = -EIO; /* the file ends before the pages do */
				goto broken;
			} else if (errno == EINVAL && left == n && !held) {
				return -ENOTSUP; /* not a file splice() reads */
			} else if (errno != EINTR && errno != EAGAIN) {
				r = -errno;
				goto broken;
			}
		}
		if (!held)
			continue;
		ssize_t w = vfw_put_nosigpipe(c->pipe[0], NULL, c->fd, held);

		if (w > 0) {
			held -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN) {
			r = -errno;
			goto broken;
		}
		r = wait_fd(c->fd, POLLOUT, c->timeout_ms);
		if (r < 0) {
			if (r == -ETIMEDOUT)
				c->stalled = true;
			goto broken;
		}
	}
	return 0;
broken:
	chan_pipe_close(c);
	return r;
}

static const struct vfmig_io_ops sio_ops = {
	.version = VFMIG_IO_OPS_VERSION,
	.write = sio_write,
	.read = sio_read,
	.flush = sio_flush,
	.close = sio_close,
	.fd = sio_fd,
	.moved = sio_moved,
	.write_file = sio_write_file,
};

static int chan_new_socket(int fd, bool source, enum vfmig_chan_kind kind,
			   struct vfmig_chan **out)
{
	struct vfmig_chan *c = calloc(1, sizeof(*c));

	if (!c || (source && !(c->wbuf = malloc(WBUF_SIZE)))) {
		free(c);
		close(fd);
		return -ENOMEM;
	}
	c->kind = kind;
	c->source = source;
	c->fd = fd;
	c->pipe[0] = c->pipe[1] = -1;
	c->timeout_ms = vfw_scaled_ms(DEFAULT_TIMEOUT_MS);
	c->sio.io.ops = &sio_ops;
	c->sio.c = c;
	c->io = &c->sio.io;
	if (kind == VFMIG_CHAN_TCP) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	} else if (kind == VFMIG_CHAN_UNIX) {
		/* As the VMM library's device sockets: the kernel's default
		 * (208 KiB) lets a sender get little ahead of a receiver that
		 * stops to checksum, and both wake each other far more often
		 * (docs/benchmarks.md). TCP keeps autotuning, which a fixed
		 * size would turn off. */
		vfw_grow_socket_buffers(fd);
	}
	*out = c;
	return 0;
}

int vfmig_chan_adopt_fd(int fd, bool source, enum vfmig_chan_kind kind,
			struct vfmig_chan **out)
{
	if (fd < 0 || !out || kind == VFMIG_CHAN_FILE) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	return chan_new_socket(fd, source, kind, out);
}

static int chan_new_file_reader(const char *path, struct vfmig_chan **out,
				char *err, size_t errlen)
{
	struct vfmig_chan *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	r = vfmig_io_path(&c->io, path, false);
	if (r < 0) {
		msg(err, errlen, "opening \"%s\": %s", path, strerror(-r));
		free(c);
		return r;
	}
	c->kind = VFMIG_CHAN_FILE;
	c->fd = -1;
	c->timeout_ms = vfw_scaled_ms(DEFAULT_TIMEOUT_MS);
	*out = c;
	return 0;
}

/* Create "<target>.tmp.<pid>[.<n>]" exclusively. Returns the fd (and the
 * name in *tmp) or -errno. */
static int create_temp(const char *target, char **tmp)
{
	for (unsigned n = 0; n < 100; n++) {
		char *t;
		int fd, e;

		if ((n ? asprintf(&t, "%s.tmp.%d.%u", target, (int)getpid(), n)
		       : asprintf(&t, "%s.tmp.%d", target, (int)getpid())) < 0)
			return -ENOMEM;
		/* 0600: a stream holds the guest's memory */
		fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*tmp = t;
			return fd;
		}
		e = errno;
		free(t);
		if (e != EEXIST)
			return -e;
	}
	return -EEXIST;
}

/*
 * A file source. A regular file (or a new one) is written under a
 * temporary name in the same directory and appears under its name only at
 * vfmig_chan_commit, so that a failed save never leaves a truncated stream
 * there, nor destroys an older file. Through a symbolic link the target
 * is the file it names. Anything else (a FIFO, /dev/null) is written in
 * place: it cannot hold a partial stream, and must not be replaced.
 */
static int chan_new_file_writer(const char *path, struct vfmig_chan **out,
				char *err, size_t errlen)
{
	struct vfmig_chan *c = calloc(1, sizeof(*c));
	struct stat st;
	char *real = NULL;
	int fd, r;

	if (!c)
		return -ENOMEM;
	c->kind = VFMIG_CHAN_FILE;
	c->source = true;
	c->fd = -1;
	c->timeout_ms = vfw_scaled_ms(DEFAULT_TIMEOUT_MS);
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
		real = realpath(path, NULL); /* NULL if dangling: replace it */
	c->path = strdup(real ? real : path);
	free(real);
	if (!c->path) {
		r = -ENOMEM;
		goto fail;
	}
	if (stat(c->path, &st) == 0 && !S_ISREG(st.st_mode)) {
		fd = open(c->path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
	} else {
		fd = create_temp(c->path, &c->tmp);
	}
	if (fd < 0) {
		r = fd;
		msg(err, errlen, "creating \"%s\": %s", path, strerror(-r));
		goto fail;
	}
	c->fd = fd;
	r = vfmig_io_fd(&c->io, fd, false);
	if (r < 0) {
		msg(err, errlen, "out of memory");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c->fd >= 0)
		close(c->fd);
	if (c->tmp)
		unlink(c->tmp);
	free(c->tmp);
	free(c->path);
	free(c);
	return r;
}

/* fsync the directory holding path, so that a rename into it lasts. */
static void sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
			  : strdup(".");
	int fd;

	if (!dir)
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

static int file_commit(struct vfmig_chan *c, char *err, size_t errlen)
{
	int r = vfmig_io_error(c->io);

	if (r < 0) {
		msg(err, errlen, "writing \"%s\": %s", c->path, strerror(-r));
		return r;
	}
	/* A FIFO or a character device cannot be synced (EINVAL). */
	if (fsync(c->fd) < 0 && (c->tmp || errno != EINVAL)) {
		r = -errno;
		msg(err, errlen, "syncing \"%s\": %s", c->tmp ? c->tmp : c->path,
		    strerror(errno));
		return r;
	}
	r = close(c->fd);
	c->fd = -1;
	if (r < 0) {
		r = -errno;
		msg(err, errlen, "closing \"%s\": %s", c->tmp ? c->tmp : c->path,
		    strerror(errno));
		return r;
	}
	if (c->tmp) {
		if (rename(c->tmp, c->path) < 0) {
			r = -errno;
			msg(err, errlen, "renaming \"%s\" onto \"%s\": %s", c->tmp,
			    c->path, strerror(errno));
			return r;
		}
		/* The stream is in place from here on: a failure to sync the
		 * directory only weakens durability, it does not undo that. */
		free(c->tmp);
		c->tmp = NULL;
		sync_dir(c->path);
	}
	c->committed = true;
	return 0;
}

int vfmig_chan_commit(struct vfmig_chan *c, char *err, size_t errlen)
{
	if (!c->source)
		return 0;
	if (c->kind != VFMIG_CHAN_FILE) {
		int r = vfmig_io_flush(c->io);
		if (r < 0)
			msg(err, errlen, "sending the stream: %s", strerror(-r));
		return r;
	}
	if (c->committed)
		return 0;
	if (c->fd < 0) {
		msg(err, errlen, "\"%s\": an earlier commit failed", c->path);
		return -EBADF;
	}
	return file_commit(c, err, errlen);
}

/* ---- endpoints ---- */

static int resolve(const struct vfmig_chan_uri *u, bool passive, struct addrinfo **res,
		   char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	char port[8];
	int g;

	snprintf(port, sizeof(port), "%u", u->port);
	g = getaddrinfo(u->host, port, &hints, res);
	if (g) {
		msg(err, errlen, "host \"%s\": %s", u->host, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	return 0;
}

_Static_assert(VFMIG_CHAN_UNIX_MAX_PATH < sizeof(((struct sockaddr_un *)0)->sun_path),
	       "UNIX path limit must leave room for the NUL");

/* The path fits: the parser allows at most VFMIG_CHAN_UNIX_MAX_PATH bytes. */
static void unix_addr(const struct vfmig_chan_uri *u, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, u->path, strlen(u->path) + 1);
}

/* One connect attempt to a resolved address or UNIX path, bounded by
 * deadline. Returns the fd or -errno. */
static int try_connect(int family, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, sa, len) < 0) {
		r = -errno;
		if (r == -EINPROGRESS) {
			int e = 0;
			socklen_t el = sizeof(e);
			r = wait_fd(fd, POLLOUT, left_ms(deadline));
			if (!r && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0)
				r = -e;
		}
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int connect_once(const struct vfmig_chan_uri *u, int64_t deadline, char *err,
			size_t errlen)
{
	if (u->kind == VFMIG_CHAN_UNIX) {
		struct sockaddr_un sa;
		unix_addr(u, &sa);
		return try_connect(AF_UNIX, (struct sockaddr *)&sa, sizeof(sa), deadline);
	}
	struct addrinfo *res, *ai;
	int fd = resolve(u, false, &res, err, errlen);
	if (fd < 0)
		return fd;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = try_connect(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

int vfmig_chan_connect(const char *uri, int timeout_ms, struct vfmig_chan **out,
		       char *err, size_t errlen)
{
	struct vfmig_chan_uri u;
	int64_t deadline = deadline_in(timeout_ms);
	int fd, r = vfmig_chan_parse_uri(uri, &u, err, errlen);

	if (r < 0)
		return r;
	if (u.kind == VFMIG_CHAN_FILE)
		return chan_new_file_writer(u.path, out, err, errlen);
	if (u.kind == VFMIG_CHAN_TCP && u.port == 0) {
		msg(err, errlen, "\"%s\": cannot connect to port 0", uri);
		return -EINVAL;
	}
	for (;;) {
		fd = connect_once(&u, deadline, err, errlen);
		if (fd >= 0 || fd == -EHOSTUNREACH)
			break;
		if ((fd != -ECONNREFUSED && fd != -ENOENT) || left_ms(deadline) == 0)
			break;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (fd < 0) {
		if (fd != -EHOSTUNREACH)
			msg(err, errlen, "connecting to \"%s\": %s", uri, strerror(-fd));
		return fd;
	}
	return chan_new_socket(fd, true, u.kind, out);
}

int vfmig_chan_listen(const char *uri, struct vfmig_chan_listener **out, char *err,
		      size_t errlen)
{
	return vfmig_chan_listen_mode(uri, 0, out, err, errlen);
}

int vfmig_chan_listen_mode(const char *uri, unsigned int mode,
			   struct vfmig_chan_listener **out, char *err,
			   size_t errlen)
{
	struct vfmig_chan_listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	l->fd = -1;
	r = vfmig_chan_parse_uri(uri, &l->uri, err, errlen);
	if (r < 0)
		goto fail;
	if (l->uri.kind == VFMIG_CHAN_FILE) {
		msg(err, errlen, "\"%s\": a file is not listened on", uri);
		r = -EINVAL;
		goto fail;
	}
	if (l->uri.kind == VFMIG_CHAN_UNIX) {
		char why[320];
		l->fd = vfw_unix_listen_mode(l->uri.path, LISTEN_BACKLOG, 0,
					     mode, why, sizeof(why));
		if (l->fd < 0) {
			r = l->fd;
			msg(err, errlen, "listening on \"%s\": %s", uri,
			    why[0] ? why : strerror(-r));
			l->fd = -1;
			goto fail;
		}
	} else {
		struct addrinfo *res, *ai;
		int one = 1;
		r = resolve(&l->uri, true, &res, err, errlen);
		if (r < 0)
			goto fail;
		r = -EADDRNOTAVAIL;
		for (ai = res; ai; ai = ai->ai_next) {
			l->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (l->fd < 0) {
				r = -errno;
				continue;
			}
			setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(l->fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(l->fd, LISTEN_BACKLOG) == 0)
				break;
			r = -errno;
			close(l->fd);
			l->fd = -1;
		}
		freeaddrinfo(res);
		if (l->fd < 0) {
			msg(err, errlen, "listening on \"%s\": %s", uri, strerror(-r));
			goto fail;
		}
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0)
			l->port = ntohs(ss.ss_family == AF_INET6
						? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	}
	*out = l;
	return 0;
fail:
	free(l);
	return r;
}

uint16_t vfmig_chan_listener_port(const struct vfmig_chan_listener *l)
{
	return l ? l->port : 0;
}

int vfmig_chan_accept(struct vfmig_chan_listener *l, int timeout_ms, struct vfmig_chan **out,
		      char *err, size_t errlen)
{
	int fd, r = wait_fd(l->fd, POLLIN, timeout_ms);

	if (r < 0) {
		msg(err, errlen, "waiting for the source to connect: %s", strerror(-r));
		return r;
	}
	fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		msg(err, errlen, "accepting the source: %s", strerror(errno));
		return r;
	}
	return chan_new_socket(fd, false, l->uri.kind, out);
}

void vfmig_chan_listener_close(struct vfmig_chan_listener *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->uri.kind == VFMIG_CHAN_UNIX)
		unlink(l->uri.path);
	free(l);
}

int vfmig_chan_open_incoming(const char *uri, int timeout_ms, struct vfmig_chan **out,
			     char *err, size_t errlen)
{
	struct vfmig_chan_uri u;
	struct vfmig_chan_listener *l;
	int r = vfmig_chan_parse_uri(uri, &u, err, errlen);

	if (r < 0)
		return r;
	if (u.kind == VFMIG_CHAN_FILE)
		return chan_new_file_reader(u.path, out, err, errlen);
	r = vfmig_chan_listen(uri, &l, err, errlen);
	if (r < 0)
		return r;
	r = vfmig_chan_accept(l, timeout_ms, out, err, errlen);
	vfmig_chan_listener_close(l);
	return r;
}

struct vfmig_io *vfmig_chan_io(struct vfmig_chan *c)
{
	return c->io;
}

enum vfmig_chan_kind vfmig_chan_kind(const struct vfmig_chan *c)
{
	return c->kind;
}

bool vfmig_chan_has_return_path(const struct vfmig_chan *c)
{
	return c->kind != VFMIG_CHAN_FILE;
}

void vfmig_chan_set_timeout(struct vfmig_chan *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

void vfmig_chan_share_progress(struct vfmig_chan *c, _Atomic uint64_t *shared)
{
	c->shared = shared;
}

/* Over TCP the sending thread is what limits a migration, and the checksum
 * thread takes a pass off it. Over UNIX that thread loses (the send copy
 * would read the pages from memory instead of the cache; with splicing,
 * too, it measured slower), and splicing takes the send copy away; over TCP
 * splicing measured no better than the copy. */
void vfmig_chan_tune_writer(const struct vfmig_chan *c, struct vfmig_stream_writer *w)
{
	if (c->kind == VFMIG_CHAN_TCP)
		(void)vfmig_stream_writer_sum_aside(w); /* else: one thread, as before */
	else if (c->kind == VFMIG_CHAN_UNIX)
		vfmig_stream_writer_pages_from_file(w, true);
}

void vfmig_chan_set_pace(struct vfmig_chan *c, struct vfmig_pace *p)
{
	c->pace = p;
}

bool vfmig_chan_stalled(const struct vfmig_chan *c)
{
	return c && c->stalled;
}

void vfmig_chan_shutdown(struct vfmig_chan *c, bool read_only)
{
	if (c && c->kind != VFMIG_CHAN_FILE && c->fd >= 0)
		shutdown(c->fd, read_only ? SHUT_RD : SHUT_RDWR);
}

int vfmig_chan_close(struct vfmig_chan *c)
{
	int r = 0, sticky;

	if (!c)
		return 0;
	if (c->kind == VFMIG_CHAN_FILE) {
		r = vfmig_io_close(c->io); /* the sticky error first */
		if (c->fd >= 0 && close(c->fd) < 0 && !r)
			r = -errno;
		/* Never committed: the partial stream goes away. */
		if (c->tmp)
			unlink(c->tmp);
		free(c->tmp);
		free(c->path);
		free(c);
		return r;
	}
	if (c->source)
		r = vfmig_io_flush(c->io);
	sticky = vfmig_io_error(c->io);
	if (close(c->fd) < 0 && !r)
		r = -errno;
	chan_pipe_close(c);
	free(c->wbuf);
	free(c);
	return sticky ? sticky : r;
}

/* ---- return path ---- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

const char *vfmig_rp_type_name(enum vfmig_rp_type t)
{
	switch (t) {
	case VFMIG_RP_SWITCHOVER_ACK: return "SWITCHOVER_ACK";
	case VFMIG_RP_RESUMED: return "RESUMED";
	case VFMIG_RP_FAILED: return "FAILED";
	case VFMIG_RP_VERIFIED: return "VERIFIED";
	case VFMIG_RP_SYNCED: return "SYNCED";
	case VFMIG_RP_COMMIT: return "COMMIT";
	case VFMIG_RP_WAIT_COMMIT: return "WAIT_COMMIT";
	case VFMIG_RP_STARTED: return "STARTED";
	}
	return "UNKNOWN";
}

int vfmig_chan_rp_send(struct vfmig_chan *c, const struct vfmig_rp_msg *m)
{
	uint8_t f[RP_HDR + VFMIG_RP_MAX + 4];
	size_t len;

	if (c->kind == VFMIG_CHAN_FILE ||
	    c->source != (m->type == VFMIG_RP_COMMIT))
		return -ENOTSUP;
	switch (m->type) {
	case VFMIG_RP_WAIT_COMMIT:
		len = 0;
		break;
	case VFMIG_RP_COMMIT:
		len = 0;
		if (c->wlen) { /* the stream's last bytes go first */
			int r = chan_flush_buf(c);
			if (r < 0)
				return r;
		}
		break;
	case VFMIG_RP_SWITCHOVER_ACK:
	case VFMIG_RP_FAILED:
	case VFMIG_RP_VERIFIED:
	case VFMIG_RP_SYNCED:
		len = strnlen(m->text, sizeof(m->text));
		if (len > VFMIG_RP_MAX)
			return -EINVAL;
		memcpy(f + RP_HDR, m->text, len);
		break;
	case VFMIG_RP_RESUMED:
	case VFMIG_RP_STARTED:
		/* Timestamp, then the destination's optional verdict text. */
		len = strnlen(m->text, sizeof(m->text));
		if (len > VFMIG_RP_MAX - 8)
			return -EINVAL;
		put32(f + RP_HDR, (uint32_t)(m->timestamp_ns >> 32));
		put32(f + RP_HDR + 4, (uint32_t)m->timestamp_ns);
		memcpy(f + RP_HDR + 8, m->text, len);
		len += 8;
		break;
	default:
		return -EINVAL;
	}
	put16(f, (uint16_t)m->type);
	put32(f + 2, (uint32_t)len);
	put32(f + RP_HDR + len, (uint32_t)crc32(0, f, (uInt)(RP_HDR + len)));
	return send_all(c->fd, f, RP_HDR + len + 4, c->timeout_ms);
}

static int rp_text(struct vfmig_chan *c, enum vfmig_rp_type t, const char *s)
{
	struct vfmig_rp_msg *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->type = t;
	if (s && strlen(s) > VFMIG_RP_MAX)
		r = -EINVAL;
	else {
		snprintf(m->text, sizeof(m->text), "%s", s ? s : "");
		r = vfmig_chan_rp_send(c, m);
	}
	free(m);
	return r;
}

int vfmig_chan_rp_ack(struct vfmig_chan *c, const char *device_id)
{
	return rp_text(c, VFMIG_RP_SWITCHOVER_ACK, device_id);
}

int vfmig_chan_rp_failed(struct vfmig_chan *c, const char *message)
{
	return rp_text(c, VFMIG_RP_FAILED, message);
}

int vfmig_chan_rp_resumed(struct vfmig_chan *c, uint64_t timestamp_ns)
{
	struct vfmig_rp_msg m = { .type = VFMIG_RP_RESUMED, .timestamp_ns = timestamp_ns };

	return vfmig_chan_rp_send(c, &m);
}

/* The return path is unusable from now on: remember why, for every call. */
__attribute__((format(printf, 5, 6)))
static int rp_broken(struct vfmig_chan *c, int r, char *err, size_t errlen,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->rp_errmsg, sizeof(c->rp_errmsg), fmt, ap);
	va_end(ap);
	c->rp_err = r;
	msg(err, errlen, "%s", c->rp_errmsg);
	return r;
}

/* What of the frame being reassembled has come: "a RESUMED message (9
 * of 20 bytes)", or of its header while the length is not known yet. */
static const char *rp_partial(const struct vfmig_chan *c, size_t need, char *buf,
			      size_t len)
{
	const char *name = c->rp_len >= 2
		? vfmig_rp_type_name((enum vfmig_rp_type)get16(c->rp_buf)) : NULL;

	if (c->rp_len < RP_HDR)
		snprintf(buf, len, "%s%s message (%zu of the %u header bytes)",
			 name ? "a " : "a", name ? name : "", c->rp_len, RP_HDR);
	else
		snprintf(buf, len, "a %s message (%zu of %zu bytes)", name,
			 c->rp_len, need);
	return buf;
}

/*
 * Reads into the reassembly buffer until it holds one whole frame, waiting
 * until deadline (-1: none). A frame may arrive in any number of pieces
 * over any number of calls: what a call read stays in the buffer when it
 * times out. A frame that began more than the channel's timeout ago and
 * is still incomplete is an error: the peer stalled (or trickles) mid-frame.
 */
static int rp_fill(struct vfmig_chan *c, int64_t deadline, char *err, size_t errlen)
{
	const char *peer = c->source ? "destination" : "source";
	char what[96];

	for (;;) {
		size_t need = RP_HDR;

		if (c->rp_len >= RP_HDR) {
			uint32_t len = get32(c->rp_buf + 2);
			if (len > VFMIG_RP_MAX)
				return rp_broken(c, -EBADMSG, err, errlen,
						 "return path: message length %u above %u",
						 len, VFMIG_RP_MAX);
			need = RP_HDR + len + 4;
			if (c->rp_len == need)
				return 0;
		}
		/* Exactly what this frame still lacks: the next frame's bytes
		 * stay in the socket. */
		ssize_t r = recv(c->fd, c->rp_buf + c->rp_len, need - c->rp_len, MSG_DONTWAIT);
		if (r > 0) {
			if (!c->rp_len)
				c->rp_since = now_ms();
			c->rp_len += (size_t)r;
			continue;
		}
		if (r == 0) {
			if (c->rp_len)
				msg(err, errlen, "return path: the %s closed the "
				    "connection in the middle of %s", peer,
				    rp_partial(c, need, what, sizeof(what)));
			else
				msg(err, errlen, "return path: the %s closed the "
				    "connection", peer);
			return -ECONNRESET;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			int e = -errno;
			msg(err, errlen, "return path: %s", strerror(errno));
			return e;
		}
		int wait = left_ms(deadline);
		bool stall_first = false;
		if (c->rp_len && c->timeout_ms >= 0) {
			int64_t age = now_ms() - c->rp_since;
			if (age >= c->timeout_ms)
				return rp_broken(c, -EPROTO, err, errlen,
						 "return path: stalled in %s for %lld ms "
						 "(the limit is %d ms)",
						 rp_partial(c, need, what, sizeof(what)),
						 (long long)age, c->timeout_ms);
			int stall_left = (int)(c->timeout_ms - age);
			if (wait < 0 || stall_left < wait) {
				wait = stall_left;
				stall_first = true;
			}
		}
		int w = wait_fd(c->fd, POLLIN, wait);
		if (w == -ETIMEDOUT && stall_first)
			continue; /* the stall check above decides */
		if (w == -ETIMEDOUT) {
			if (c->rp_len)
				msg(err, errlen, "return path: %s was incomplete at "
				    "the timeout (kept for the next call)",
				    rp_partial(c, need, what, sizeof(what)));
			else
				msg(err, errlen, "return path: no message before the timeout");
			return w;
		}
		if (w < 0) {
			msg(err, errlen, "return path: %s", strerror(-w));
			return w;
		}
	}
}

int vfmig_chan_rp_recv(struct vfmig_chan *c, struct vfmig_rp_msg *m, int timeout_ms,
		       char *err, size_t errlen)
{
	const uint8_t *f = c->rp_buf;
	int64_t deadline = deadline_in(timeout_ms);
	uint32_t len;
	uint16_t type;
	int r;

	if (c->kind == VFMIG_CHAN_FILE) {
		msg(err, errlen, "no return path to receive from on this channel");
		return -ENOTSUP;
	}
	if (c->rp_err) {
		msg(err, errlen, "%s", c->rp_errmsg);
		return c->rp_err;
	}
	/* Once sending has failed, what the destination said before it went
	 * is still worth reading: no flush then. */
	if (c->source && !vfmig_io_error(c->io)) {
		r = vfmig_io_flush(c->io);
		if (r < 0) {
			msg(err, errlen, "sending the stream: %s", strerror(-r));
			return r;
		}
	}
	r = rp_fill(c, deadline, err, errlen);
	if (r < 0)
		return r;
	/* The frame is whole: whatever it holds, the next one starts after
	 * it. */
	c->rp_len = 0;
	type = get16(f);
	len = get32(f + 2);
	if (get32(f + RP_HDR + len) != (uint32_t)crc32(0, f, (uInt)(RP_HDR + len))) {
		msg(err, errlen, "return path: checksum mismatch in a %s message",
		    vfmig_rp_type_name((enum vfmig_rp_type)type));
		return -EBADMSG;
	}
	memset(m, 0, sizeof(*m));
	m->type = (enum vfmig_rp_type)type;
	/* Each side reads only what the other one sends. */
	if (c->source ? type == VFMIG_RP_COMMIT : type != VFMIG_RP_COMMIT) {
		msg(err, errlen, "return path: a %s message (type %u) from the %s",
		    vfmig_rp_type_name(m->type), type,
		    c->source ? "destination" : "source");
		return -EBADMSG;
	}
	switch (type) {
	case VFMIG_RP_COMMIT:
	case VFMIG_RP_WAIT_COMMIT:
		if (len) {
			msg(err, errlen, "return path: %s with %u bytes, not 0",
			    vfmig_rp_type_name(m->type), len);
			return -EBADMSG;
		}
		return 0;
	case VFMIG_RP_SWITCHOVER_ACK:
	case VFMIG_RP_FAILED:
	case VFMIG_RP_VERIFIED:
	case VFMIG_RP_SYNCED:
		if (memchr(f + RP_HDR, 0, len)) {
			msg(err, errlen, "return path: NUL inside a %s message",
			    vfmig_rp_type_name(m->type));
			return -EBADMSG;
		}
		memcpy(m->text, f + RP_HDR, len);
		return 0;
	case VFMIG_RP_RESUMED:
	case VFMIG_RP_STARTED:
		if (len < 8 || memchr(f + RP_HDR + 8, 0, len - 8)) {
			msg(err, errlen, "return path: %s with %u bytes, "
			    "not 8 plus text", vfmig_rp_type_name(m->type), len);
			return -EBADMSG;
		}
		m->timestamp_ns = (uint64_t)get32(f + RP_HDR) << 32 | get32(f + RP_HDR + 4);
		memcpy(m->text, f + RP_HDR + 8, len - 8);
		return 0;
	}
	msg(err, errlen, "return path: unknown message type %u", type);
	return -EBADMSG;
}
