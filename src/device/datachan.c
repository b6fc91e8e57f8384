/* SPDX-License-Identifier: MIT */
/*
 * The migration data channel (vfmig extension "vfmig_data_channel",
 * docs/protocol-extensions.md), device side. The client hands the device
 * one end of a stream socket with DEVICE_FEATURE SET VFMIG_DATA_CHANNEL in
 * a saving state or in RESUMING; from then on the session's data moves on
 * that socket instead of in MIG_DATA_READ / MIG_DATA_WRITE messages.
 *
 * Saving, the device sends frames (struct vfw_dc_frame): DATA with up to
 * 1 MiB of the stream, DRAINED when PRE_COPY has nothing more for now (it
 * then waits for a poke byte from the client before it asks mig_save
 * again), END when STOP_COPY is complete (then it closes its end), ERROR
 * with an errno when mig_save failed. Loading, the client sends the raw
 * stream and shuts down its write side after the last byte; the device
 * loads as it reads, and at EOF sends DONE with the byte count, or ERROR
 * as soon as a load fails.
 *
 * The socket is used with MSG_DONTWAIT only: nothing here waits. The
 * channel is pumped from vfmig_dev_process() (at most DC_BUDGET bytes per
 * call) and polled through vfmig_dev_get_data_fd()/_events(), so the
 * control socket is served between any two frames. Buffers are fixed when
 * the channel is attached: one frame for saving, one read for loading.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "protocol/migfsm.h"

#define DC_BUDGET (4u * VFW_DC_FRAME_MAX) /* bytes moved per pump at most */
#define DC_POKE_READ 256u /* poke bytes taken (and dropped) per pump */

bool dev_dc_active(const struct vfmig_dev *dev)
{
	return dev->dc.fd >= 0;
}

void dev_dc_close(struct vfmig_dev *dev, const char *why)
{
	struct dev_dchan *c = &dev->dc;

	if (c->fd < 0)
		return;
	DEV_LOG(dev, VFW_LOG_INFO, "data channel closed after %llu bytes: %s",
		(unsigned long long)c->bytes, why);
	close(c->fd);
	free(c->buf);
	*c = (struct dev_dchan){ .fd = -1 };
}

/* Stage a header-only or small frame for sending. */
static void stage(struct dev_dchan *c, uint32_t kind, const void *data,
		  uint32_t size)
{
	struct vfw_dc_frame h = { kind, size };

	memcpy(c->buf, &h, sizeof(h));
	if (size)
		memcpy(c->buf + sizeof(h), data, size);
	c->len = sizeof(h) + size;
	c->off = 0;
}

static void stage_error(struct dev_dchan *c, int err)
{
	uint32_t e = (uint32_t)(err < 0 ? -err : err);

	stage(c, VFW_DC_ERROR, &e, sizeof(e));
	c->err = err < 0 ? err : -err;
	c->last = true;
}

/* Send what is staged. 1: all of it went; 0: the socket is full; -1: the
 * client's end is gone (the channel is closed). */
static int flush(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;

	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0) {
			dev_dc_close(dev, "the client closed its end");
			return -1;
		}
		c->off += (size_t)n;
	}
	return 1;
}

/* Saving: take the client's poke bytes; EOF means it left the channel. */
static int take_pokes(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;
	uint8_t b[DC_POKE_READ];
	ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);

	if (n > 0) {
		c->drained = false;
		return 0;
	}
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
		       errno != EINTR)) {
		dev_dc_close(dev, "the client closed its end");
		return -1;
	}
	return 0;
}

static void pump_save(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;
	size_t moved = 0;

	if (take_pokes(dev) < 0)
		return;
	while (moved < DC_BUDGET) {
		int r = flush(dev);
		if (r <= 0)
			return;
		moved += c->len;
		c->len = c->off = 0;
		if (c->last) {
			dev_dc_close(dev, c->err ? "the save failed"
						 : "all data sent");
			return;
		}
		if (c->drained)
			return; /* until the client pokes */
		size_t got = 0;
		r = dev_mig_save_chunk(dev, c->buf + sizeof(struct vfw_dc_frame),
				       VFW_DC_FRAME_MAX, &got);
		if (r < 0) {
			DEV_LOG(dev, VFW_LOG_ERR, "data channel: save failed: %s",
				vfmig_dev_strerror(r));
			stage_error(c, r);
		} else if (got) {
			struct vfw_dc_frame h = { VFW_DC_DATA, (uint32_t)got };
			memcpy(c->buf, &h, sizeof(h));
			c->len = sizeof(h) + got;
			c->bytes += got;
		} else if (dev->mig.state == VFW_MIG_STATE_STOP_COPY) {
			stage(c, VFW_DC_END, NULL, 0);
			c->last = true;
		} else {
			stage(c, VFW_DC_DRAINED, NULL, 0);
			c->drained = true;
		}
	}
}

/* Where the device's mig_load_place says the next bytes go, with their
 * count in *want; else NULL: into the channel's buffer, as many as the
 * device asked for (*want, at most VFW_DC_FRAME_MAX on entry). */
static uint8_t *load_place(struct vfmig_dev *dev, size_t *want)
{
	size_t len = *want;
	uint8_t *p;

	if (!dev->ops.mig_load_place || dev->mig.state != VFW_MIG_STATE_RESUMING)
		return NULL;
	p = dev->ops.mig_load_place(dev, dev->priv, &len);
	if (len && len < *want)
		*want = len;
	return len ? p : NULL;
}

static void pump_load(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;
	size_t moved = 0;

	while (moved < DC_BUDGET) {
		if (c->len) { /* DONE or ERROR waits to be sent */
			if (flush(dev) > 0)
				c->len = c->off = 0;
			return; /* the channel stays until RESUMING ends */
		}
		if (c->eof || c->err)
			return;
		size_t want = VFW_DC_FRAME_MAX;
		uint8_t *dst = load_place(dev, &want);
		ssize_t n = recv(c->fd, dst ? dst : c->buf, want, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			c->err = -EPIPE;
			dev_dc_close(dev, "the client's end failed");
			return;
		}
		if (n == 0) {
			uint64_t total = c->bytes;
			c->eof = true;
			stage(c, VFW_DC_DONE, &total, sizeof(total));
			continue;
		}
		int r = dev_mig_load_chunk(dev, dst ? dst : c->buf, (size_t)n);
		if (r < 0) {
			DEV_LOG(dev, VFW_LOG_ERR,
				"data channel: load failed after %llu bytes: %s",
				(unsigned long long)c->bytes,
				vfmig_dev_strerror(r));
			stage_error(c, r);
			continue;
		}
		c->bytes += (uint64_t)n;
		moved += (size_t)n;
	}
}

void dev_dc_pump(struct vfmig_dev *dev)
{
	if (dev->dc.fd < 0)
		return;
	if (dev->dc.load)
		pump_load(dev);
	else
		pump_save(dev);
}

int dev_dc_events(const struct vfmig_dev *dev)
{
	const struct dev_dchan *c = &dev->dc;
	int ev = 0;

	if (c->fd < 0)
		return 0;
	if (c->off < c->len)
		ev |= POLLOUT;
	if (c->load ? !(c->eof || c->err) : true)
		ev |= POLLIN;
	if (!c->load && !c->drained && c->len == 0)
		ev |= POLLOUT; /* can produce the next frame */
	return ev;
}

int dev_dc_attach(struct vfmig_dev *dev, int fd, const uint8_t *data,
		  size_t len)
{
	struct dev_dchan *c = &dev->dc;
	struct vfw_data_channel req;
	uint32_t s = dev->mig.state;
	int type = 0;
	socklen_t tl = sizeof(type);

	if (len != sizeof(req)) {
		close(fd);
		return -EINVAL;
	}
	memcpy(&req, data, sizeof(req));
	if (req.flags || req.reserved ||
	    (!vfw_mig_state_saving(s) && s != VFW_MIG_STATE_RESUMING)) {
		DEV_LOG(dev, VFW_LOG_WARNING,
			"data channel refused in %s (flags 0x%x)",
			vfw_mig_state_name(s), req.flags);
		close(fd);
		return -EINVAL;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_STREAM) {
		DEV_LOG(dev, VFW_LOG_WARNING,
			"data channel refused: not a stream socket");
		close(fd);
		return -EINVAL;
	}
	if (c->fd >= 0) {
		DEV_LOG(dev, VFW_LOG_WARNING,
			"data channel refused: one is attached already");
		close(fd);
		return -EBUSY;
	}
	c->buf = malloc(sizeof(struct vfw_dc_frame) + VFW_DC_FRAME_MAX);
	if (!c->buf) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->load = s == VFW_MIG_STATE_RESUMING;
	DEV_LOG(dev, VFW_LOG_INFO, "data channel attached for %s",
		c->load ? "loading" : "saving");
	return 0;
}

void dev_dc_state_changed(struct vfmig_dev *dev, uint32_t from, uint32_t to)
{
	struct dev_dchan *c = &dev->dc;

	if (c->fd < 0)
		return;
	if (c->load ? to != VFW_MIG_STATE_RESUMING
		    : !vfw_mig_state_saving(to)) {
		dev_dc_close(dev, "the session ended");
		return;
	}
	if (to == VFW_MIG_STATE_STOP_COPY && from != to)
		c->drained = false; /* produce until END, no poke needed */
}

int dev_dc_load_sync(struct vfmig_dev *dev, uint64_t *loaded)
{
	struct dev_dchan *c = &dev->dc;
	uint64_t before;

	if (c->fd < 0 || !c->load)
		return -EINVAL;
	/* Everything the client wrote before asking is in the socket: load
	 * until it is empty, past the budget of one pump. */
	do {
		before = c->bytes;
		pump_load(dev);
		if (c->fd < 0)
			return -EPIPE;
		if (c->err)
			return c->err;
	} while (c->bytes != before);
	*loaded = c->bytes;
	return 0;
}

int dev_dc_load_finish(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;
	int r = 0;

	if (c->fd < 0 || !c->load)
		return 0;
	/* The client shut its end down before asking for STOP: the rest is
	 * in the socket already. */
	pump_load(dev);
	if (c->fd < 0)
		r = -EPIPE;
	else if (c->err)
		r = c->err;
	else if (!c->eof) {
		DEV_LOG(dev, VFW_LOG_ERR,
			"data channel: RESUMING left before the client ended "
			"its data (%llu bytes loaded)",
			(unsigned long long)c->bytes);
		r = -ENODATA;
	}
	return r;
}
