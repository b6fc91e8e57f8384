/* SPDX-License-Identifier: MIT */
/*
 * The migration data channel (vfmig extension "vfmig_data_channel",
 * docs/protocol-extensions.md), VMM side. When the device accepted the
 * extension, entering a saving state or RESUMING makes a socketpair and
 * hands one end to the device (DEVICE_FEATURE SET VFMIG_DATA_CHANNEL with
 * the fd); the session's data then moves on it: frames from the device
 * while saving, read straight into the pump's buffer, the raw stream to the
 * device while loading, shut down and acknowledged (DONE) before RESUMING
 * is left.
 *
 * Every wait is a poll() with the call's reply timeout for each bit of
 * progress, watching the control socket too (the device's DMA commands are
 * served meanwhile, as in a call). Nothing the device sends is trusted: a
 * frame's size is checked against VFW_DC_FRAME_MAX before anything is
 * read, an unknown frame, a short channel or data after END end the
 * channel with -EPROTO or -EPIPE. A channel failure loses the session but
 * never the control connection: the caller can still move the device back
 * to RUNNING.
 *
 * Version 2's sealed sessions (vfmig_vmm_dev_set_seal): the device's
 * SEALED frames carry their stream record checksum, so the saving pump can
 * splice a frame's data and checksum from the channel into the stream's
 * socket (vmm_dc_move) and the loading side can splice a record's data and
 * checksum from the stream's socket into a SEALED frame (vmm_dc_forward);
 * the device checks what it loads. Plain loads then go in DATA frames.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "protocol/migfsm.h"

static void close_fd(struct vmm_dchan *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void vmm_dc_close(vfmig_vmm_dev *dev)
{
	struct vmm_dchan *c = &dev->dc;

	close_fd(c);
	free(c->buf);
	if (c->have_pipe) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	*c = (struct vmm_dchan){ .fd = -1 };
}

/* The channel failed: keep err for the rest of the session. */
static int lost(vfmig_vmm_dev *dev, int err, const char *what)
{
	struct vmm_dchan *c = &dev->dc;

	vfw_log(&dev->log, VFW_LOG_ERR,
		"data channel: %s after %llu bytes; the session is lost", what,
		(unsigned long long)c->bytes);
	close_fd(c);
	c->err = err;
	/* A device that died closed both sockets: say so, as a call would. */
	struct pollfd p = { .fd = dev->fd, .events = POLLIN };
	if (dev->fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLHUP) &&
	    vmm_serve_waiting(dev) < 0 && dev->fd < 0)
		c->err = err = -ECONNRESET;
	return err;
}

int vmm_dc_fail(vfmig_vmm_dev *dev, int err, const char *what)
{
	return dev->dc.err ? dev->dc.err : lost(dev, err, what);
}

bool vmm_dc_saving(const vfmig_vmm_dev *dev)
{
	return (dev->dc.fd >= 0 || dev->dc.err) && !dev->dc.load;
}

bool vmm_dc_loading(const vfmig_vmm_dev *dev)
{
	return (dev->dc.fd >= 0 || dev->dc.err) && dev->dc.load;
}

int vmm_dc_attach(vfmig_vmm_dev *dev, bool load)
{
	struct vfw_device_feature f = {
		.argsz = sizeof(f) + sizeof(struct vfw_data_channel),
		.flags = VFW_FEATURE_SET | VFW_FEATURE_VFMIG_DATA_CHANNEL,
	};
	struct vfw_data_channel req = { 0 };
	struct iovec iov[2] = { { &f, sizeof(f) }, { &req, sizeof(req) } };
	bool seal = dev->seal_index >= 0 && dev->caps.data_channel_version >= 2;
	struct vfw_msg reply;
	int sv[2], r;

	vmm_dc_close(dev);
	if (seal) {
		req.flags = VFW_DC_F_SEAL;
		req.seal_index = (uint16_t)dev->seal_index;
		req.seal_algo = VFW_DC_SEAL_XXH3;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
		       sv) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		vfw_grow_socket_buffers(sv[i]);
	r = vmm_call(dev, VFW_CMD_DEVICE_FEATURE, iov, 2, &sv[1], 1, &reply);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	if (reply.len != sizeof(f) + sizeof(req) ||
	    memcmp(reply.payload + sizeof(f), &req, sizeof(req)) != 0) {
		close(sv[0]);
		return vmm_proto_error(dev, &reply,
				       "VFMIG_DATA_CHANNEL reply is no echo");
	}
	vfw_msg_release(&reply);
	dev->dc.buf = load ? NULL : malloc(VFW_DC_FRAME_MAX);
	if (!load && !dev->dc.buf) {
		close(sv[0]);
		return -ENOMEM;
	}
	dev->dc.fd = sv[0];
	dev->dc.load = load;
	dev->dc.sealed = seal;
	vfw_log(&dev->log, VFW_LOG_INFO, "data channel attached for %s%s",
		load ? "loading" : "saving", seal ? ", sealed" : "");
	return 0;
}

/*
 * Wait for events on fd until deadline, serving the control socket
 * meanwhile, and watching also (when >= 0) for POLLIN. The revents of fd;
 * 0 when also has something to read; or -ETIMEDOUT, or a control-connection
 * failure (broken).
 */
static int wait_io(vfmig_vmm_dev *dev, int fd, short events, int also,
		   int64_t deadline, int ms, const char *what)
{
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = fd, .events = events },
			{ .fd = dev->fd, .events = POLLIN },
			{ .fd = also, .events = POLLIN },
		};
		if (vfw_tx_pending(&dev->tx))
			p[1].events |= POLLOUT;
		int r = poll(p, 3, vfw_ms_left(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			vfw_log(&dev->log, VFW_LOG_ERR,
				"data channel: no progress for %d ms while %s",
				ms, what);
			return -ETIMEDOUT;
		}
		if (p[1].revents) {
			r = vmm_serve_waiting(dev);
			if (r < 0)
				return r;
		}
		if (p[2].revents)
			return 0;
		if (p[0].revents)
			return p[0].revents;
	}
}

/* Wait for events on the channel (its revents, or a negative errno). */
static int wait_chan(vfmig_vmm_dev *dev, short events, int64_t deadline,
		     const char *what)
{
	return wait_io(dev, dev->dc.fd, events, -1, deadline,
		       dev->reply_timeout_ms, what);
}

/* Read exactly len bytes of a frame. -EPIPE when the device closed its
 * end first, -ETIMEDOUT, or a control-connection error. */
static int recv_full(vfmig_vmm_dev *dev, void *buf, size_t len,
		     const char *what)
{
	int64_t deadline = vfw_deadline_after(dev->reply_timeout_ms);
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(dev->dc.fd, (uint8_t *)buf + got, len - got,
				 MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
			deadline = vfw_deadline_after(dev->reply_timeout_ms);
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = wait_chan(dev, POLLIN, deadline, what);
		if (r < 0)
			return r;
	}
	return 0;
}

/* An ERROR frame's errno, bounded to a plausible value. */
static int frame_errno(uint32_t e)
{
	return e == 0 || e > 4095 ? -EIO : -(int)e;
}

/* Read the payload of an ERROR frame of size bytes: the device's errno,
 * or -EPROTO for a malformed one. */
static int read_error(vfmig_vmm_dev *dev, uint32_t size)
{
	uint32_t e;
	int r;

	if (size != sizeof(e))
		return lost(dev, -EPROTO, "malformed ERROR frame");
	r = recv_full(dev, &e, sizeof(e), "reading an ERROR frame");
	if (r < 0)
		return lost(dev, r == -EPIPE ? -EPROTO : r,
			    "the device closed inside an ERROR frame");
	vfw_log(&dev->log, VFW_LOG_ERR, "data channel: the device reports "
		"%s", vfmig_vmm_strerror(frame_errno(e)));
	return lost(dev, frame_errno(e), "the device failed the session");
}

int vmm_dc_read(vfmig_vmm_dev *dev, void *buf, size_t cap, bool stop_copy,
		int *status)
{
	return vmm_dc_read_sealed(dev, buf, cap, stop_copy, false, status);
}

int vmm_dc_read_sealed(vfmig_vmm_dev *dev, void *buf, size_t cap,
		       bool stop_copy, bool want_sealed, int *status)
{
	struct vmm_dchan *c = &dev->dc;
	int r;

	*status = VMM_DC_MORE;
	if (c->err)
		return c->err;
	if (c->ended) {
		*status = VMM_DC_END;
		return 0;
	}
	if (c->drained && !stop_copy) {
		/* Ask for more: any byte will do; a full socket already holds
		 * a poke the device has not read. */
		static const uint8_t poke = 1;
		if (send(c->fd, &poke, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    errno != EAGAIN && errno != EWOULDBLOCK)
			return lost(dev, -EPIPE, "the device closed its end");
	}
	c->drained = false;
	while (c->left == 0) {
		struct vfw_dc_frame h;
		r = recv_full(dev, &h, sizeof(h), "waiting for a frame");
		if (r == -EPIPE)
			return lost(dev, r, "the device closed the channel "
				    "before the end of its data");
		if (r < 0)
			return lost(dev, r, "no frame");
		switch (h.kind) {
		case VFW_DC_DATA:
			if (h.size == 0 || h.size > VFW_DC_FRAME_MAX) {
				vfw_log(&dev->log, VFW_LOG_ERR,
					"data channel: DATA frame of %u bytes "
					"(at most %u)", h.size,
					VFW_DC_FRAME_MAX);
				return lost(dev, -EPROTO, "oversized frame");
			}
			c->left = h.size;
			c->tail = false;
			break;
		case VFW_DC_SEALED:
			if (!c->sealed || h.size <= 4 ||
			    h.size > VFW_DC_FRAME_MAX + 4) {
				vfw_log(&dev->log, VFW_LOG_ERR,
					"data channel: SEALED frame of %u bytes "
					"(%s)", h.size, c->sealed ?
					"5 to 1 MiB + 4 allowed" :
					"the session is not sealed");
				return lost(dev, -EPROTO, "a bad SEALED frame");
			}
			c->left = h.size - 4;
			c->tail = true;
			c->whole = true;
			break;
		case VFW_DC_DRAINED:
			if (h.size)
				return lost(dev, -EPROTO, "malformed frame");
			if (stop_copy)
				continue; /* left over from PRE_COPY */
			c->drained = true;
			*status = VMM_DC_DRAINED;
			return 0;
		case VFW_DC_END: {
			uint8_t extra;
			if (h.size || !stop_copy)
				return lost(dev, -EPROTO,
					    "END outside STOP_COPY");
			if (recv(c->fd, &extra, 1, MSG_DONTWAIT | MSG_PEEK) > 0)
				return lost(dev, -EPROTO,
					    "the device sent data after END");
			c->ended = true;
			*status = VMM_DC_END;
			return 0;
		}
		case VFW_DC_ERROR:
			return read_error(dev, h.size);
		default:
			vfw_log(&dev->log, VFW_LOG_ERR,
				"data channel: unknown frame kind %u", h.kind);
			return lost(dev, -EPROTO, "unknown frame");
		}
	}
	if (c->tail && c->whole && want_sealed) {
		*status = VMM_DC_SEALED; /* vmm_dc_move takes it from here */
		return 0;
	}
	/* Its checksum covers the whole frame: once part of it is read, it
	 * can only be read to its end. */
	c->whole = false;
	size_t n = c->left < cap ? c->left : cap;
	r = recv_full(dev, buf, n, "reading a DATA frame");
	if (r < 0)
		return lost(dev, r == -EPIPE ? -EPIPE : r,
			    "the device closed the channel inside a frame");
	c->left -= (uint32_t)n;
	c->bytes += n;
	if (c->left == 0 && c->tail) {
		/* Read here, not moved: the stream writer sums it again. */
		uint8_t sum[4];
		r = recv_full(dev, sum, sizeof(sum), "reading a checksum");
		if (r < 0)
			return lost(dev, r, "the device closed the channel "
				    "inside a frame");
		c->tail = false;
	}
	return (int)n;
}

static int ensure_pipe(struct vmm_dchan *c)
{
	if (c->have_pipe)
		return 0;
	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	/* One frame fits; a smaller pipe (the limit is lower) only means
	 * more rounds. */
	(void)fcntl(c->pipe[1], F_SETPIPE_SZ, (int)VFW_DC_FRAME_MAX);
	c->have_pipe = true;
	return 0;
}

/* An fd splice() does not take (EINVAL: a file opened O_APPEND, say): go
 * on through a buffer of total bytes, taking over what the pipe holds
 * (bytes done..got). NULL on failure. */
static uint8_t *to_bounce(struct vmm_dchan *c, size_t total, size_t done,
			  size_t got)
{
	uint8_t *b = malloc(total);

	if (b && got > done &&
	    read(c->pipe[0], b + done, got - done) != (ssize_t)(got - done)) {
		free(b);
		return NULL;
	}
	return b;
}

/*
 * Move total bytes (at most a frame and its checksum) from in to out
 * without reading them: splice() in to the channel's pipe and out of it,
 * or, where an fd refuses splice(), read() and write() through a buffer.
 * One of the two fds is the channel (in when chan_in); each wait for it
 * lasts at most the reply timeout, each wait for the other at most fd_ms
 * (0: the reply timeout too, < 0: no limit), counted from the last
 * progress. 0, -EPIPE when in ended first, 1 when (loading) the device
 * sent a frame meanwhile, or another negative errno.
 */
static int splice_through(vfmig_vmm_dev *dev, int in, int out, size_t total,
			  bool chan_in, int fd_ms, const char *what)
{
	struct vmm_dchan *c = &dev->dc;
	int64_t mark = vfw_now_ms();
	size_t got = 0, done = 0;
	uint8_t *bounce = NULL; /* bytes done..got are at bounce + done */
	int r = ensure_pipe(c);

	if (fd_ms == 0)
		fd_ms = dev->reply_timeout_ms;
	if (r < 0)
		return r;
	while (done < total) {
		bool moved = false;
		ssize_t n;

		if (got < total) {
			n = bounce ? read(in, bounce + got, total - got)
				   : splice(in, NULL, c->pipe[1], NULL,
					    total - got,
					    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				got += (size_t)n;
				moved = true;
			} else if (n == 0) {
				r = -EPIPE;
				goto out;
			} else if (errno == EINVAL && !bounce) {
				bounce = to_bounce(c, total, done, got);
				if (!bounce) {
					r = -ENOMEM;
					goto out;
				}
				continue;
			} else if (errno != EAGAIN && errno != EINTR) {
				r = -errno;
				goto out;
			}
		}
		if (got > done) {
			n = vfw_put_nosigpipe(c->pipe[0], bounce ? bounce + done : NULL,
				    out, got - done);
			if (n > 0) {
				done += (size_t)n;
				moved = true;
			} else if (n < 0 && errno == EINVAL && !bounce) {
				bounce = to_bounce(c, total, done, got);
				if (!bounce) {
					r = -ENOMEM;
					goto out;
				}
				continue;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				r = -errno;
				goto out;
			}
		}
		if (moved) {
			mark = vfw_now_ms();
			continue;
		}
		/* Bytes in the pipe wait for out; an empty pipe for in. While
		 * loading, the device may say why it stops reading. */
		bool on_out = got > done;
		int fd = on_out ? out : in;
		int ms = on_out == chan_in ? fd_ms : dev->reply_timeout_ms;
		int64_t deadline = ms < 0 ? VFW_FOREVER : mark + ms;
		r = wait_io(dev, fd, on_out ? POLLOUT : POLLIN,
			    c->load ? c->fd : -1, deadline, ms, what);
		if (r < 0)
			goto out;
		if (r == 0) {
			r = 1;
			goto out;
		}
	}
	r = 0;
out:
	free(bounce);
	return r;
}

int vmm_dc_move(vfmig_vmm_dev *dev, int fd, int fd_ms)
{
	struct vmm_dchan *c = &dev->dc;
	size_t len = c->left;
	int r;

	if (c->err)
		return c->err;
	if (!c->tail || !c->whole || !len)
		return -EINVAL;
	r = splice_through(dev, c->fd, fd, len + 4, true, fd_ms,
			   "moving a sealed frame");
	if (r == -EPIPE)
		return lost(dev, r, "the device closed the channel inside a "
			    "frame");
	if (r < 0)
		return lost(dev, r, "moving a sealed frame");
	c->left = 0;
	c->tail = false;
	c->bytes += len;
	return 0;
}

/* The device sent something while we load: only ERROR is allowed (and
 * DONE, after our EOF). Returns the error to report. */
static int load_answer(vfmig_vmm_dev *dev)
{
	struct vfw_dc_frame h;
	int r = recv_full(dev, &h, sizeof(h), "reading the device's answer");

	if (r == -EPIPE)
		return lost(dev, -EPIPE, "the device closed the channel");
	if (r < 0)
		return lost(dev, r, "no answer");
	if (h.kind == VFW_DC_ERROR)
		return read_error(dev, h.size);
	vfw_log(&dev->log, VFW_LOG_ERR,
		"data channel: frame kind %u while loading", h.kind);
	return lost(dev, -EPROTO, "unexpected frame while loading");
}

/* Send len bytes to the loading device; stream bytes (counted) unless
 * they are a frame header. */
static int send_load(vfmig_vmm_dev *dev, const uint8_t *p, size_t len,
		     bool count)
{
	struct vmm_dchan *c = &dev->dc;
	int64_t deadline = vfw_deadline_after(dev->reply_timeout_ms);
	size_t done = 0;

	if (c->err)
		return c->err;
	while (done < len) {
		ssize_t n = send(c->fd, p + done, len - done,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			if (count)
				c->bytes += (uint64_t)n;
			deadline = vfw_deadline_after(dev->reply_timeout_ms);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return load_answer(dev); /* it may say why */
		int r = wait_chan(dev, POLLOUT | POLLIN, deadline,
				  "sending data");
		if (r < 0)
			return lost(dev, r, "the device does not read");
		if (r & (POLLIN | POLLHUP | POLLERR))
			return load_answer(dev);
	}
	return 0;
}

int vmm_dc_write(vfmig_vmm_dev *dev, const uint8_t *p, size_t len)
{
	int r = 0;

	if (!dev->dc.sealed)
		return send_load(dev, p, len, true);
	/* A sealed session is framed: the bytes go as DATA frames. */
	for (size_t done = 0, n; r == 0 && done < len; done += n) {
		n = len - done < VFW_DC_FRAME_MAX ? len - done
						  : VFW_DC_FRAME_MAX;
		struct vfw_dc_frame h = { VFW_DC_DATA, (uint32_t)n };
		r = send_load(dev, (const uint8_t *)&h, sizeof(h), false);
		if (r == 0)
			r = send_load(dev, p + done, n, true);
	}
	return r;
}

int vmm_dc_forward(vfmig_vmm_dev *dev, int fd, size_t len, int fd_ms)
{
	struct vmm_dchan *c = &dev->dc;
	struct vfw_dc_frame h = { VFW_DC_SEALED, (uint32_t)len + 4 };
	int r;

	if (c->err)
		return c->err;
	if (!c->sealed || !c->load)
		return -ENOTSUP;
	if (!len || len > VFMIG_VMM_FORWARD_MAX)
		return -EINVAL;
	r = send_load(dev, (const uint8_t *)&h, sizeof(h), false);
	if (r < 0)
		return r;
	r = splice_through(dev, fd, c->fd, len + 4, false, fd_ms,
			   "forwarding a record");
	if (r == 1)
		return load_answer(dev); /* the device said something */
	if (r == -EPIPE)
		return lost(dev, r, "the stream ended inside a record");
	if (r < 0)
		return lost(dev, r, "forwarding a record");
	c->bytes += len;
	return 0;
}

int vmm_dc_load_sync(vfmig_vmm_dev *dev)
{
	struct vmm_dchan *c = &dev->dc;
	uint64_t loaded;
	int r;

	if (!vmm_dc_loading(dev))
		return 0;
	if (c->err)
		return c->err;
	r = vmm_feature_exact(dev,
			      VFW_FEATURE_GET | VFW_FEATURE_VFMIG_DATA_CHANNEL,
			      NULL, 0, &loaded, sizeof(loaded));
	if (r < 0)
		return r;
	if (loaded != c->bytes) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"data channel: the device loaded %llu bytes of %llu",
			(unsigned long long)loaded,
			(unsigned long long)c->bytes);
		return lost(dev, -EPROTO, "a wrong loaded count");
	}
	return 0;
}

int vmm_dc_finish_load(vfmig_vmm_dev *dev)
{
	struct vmm_dchan *c = &dev->dc;
	struct vfw_dc_frame h;
	uint64_t total = 0;
	int r;

	if (c->err) {
		r = c->err;
		vmm_dc_close(dev);
		return r;
	}
	/* EOF tells the device that the stream is complete. */
	if (shutdown(c->fd, SHUT_WR) < 0) {
		r = lost(dev, -errno, "shutdown");
		vmm_dc_close(dev);
		return r;
	}
	r = recv_full(dev, &h, sizeof(h), "waiting for DONE");
	if (r == 0 && h.kind == VFW_DC_ERROR)
		r = read_error(dev, h.size);
	else if (r == 0 && (h.kind != VFW_DC_DONE || h.size != sizeof(total)))
		r = lost(dev, -EPROTO, "no DONE frame after our EOF");
	else if (r == 0)
		r = recv_full(dev, &total, sizeof(total), "reading DONE");
	else
		r = lost(dev, r, "no DONE frame");
	if (r == 0 && total != c->bytes) {
		vfw_log(&dev->log, VFW_LOG_ERR,
			"data channel: the device loaded %llu bytes, we sent "
			"%llu", (unsigned long long)total,
			(unsigned long long)c->bytes);
		r = -EPROTO;
	}
	if (r == 0)
		vfw_log(&dev->log, VFW_LOG_INFO,
			"data channel: the device loaded all %llu bytes",
			(unsigned long long)total);
	vmm_dc_close(dev);
	return r;
}

int vmm_dc_after_set(vfmig_vmm_dev *dev, uint32_t state, bool reached)
{
	struct vmm_dchan *c = &dev->dc;
	bool has = c->fd >= 0 || c->err;
	bool saving = vfw_mig_state_saving(state);
	bool resuming = state == VFW_MIG_STATE_RESUMING;
	int r;

	if (has && (c->load ? !resuming : !saving))
		vmm_dc_close(dev); /* the session is over */
	if (state == VFW_MIG_STATE_STOP_COPY)
		c->drained = false;
	if (!reached || !dev->caps.data_channel_version || dev->dc_off ||
	    c->fd >= 0 || c->err || (!saving && !resuming))
		return 0;
	r = vmm_dc_attach(dev, resuming);
	if (r < 0 && dev->fd >= 0) {
		/* The device refused: this session uses MIG_DATA_*. */
		vfw_log(&dev->log, VFW_LOG_WARNING,
			"data channel refused (%s): using MIG_DATA messages",
			vfmig_vmm_strerror(r));
		return 0;
	}
	return r;
}
