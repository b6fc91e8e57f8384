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
 * Version 2 adds sealed sessions (VFW_DC_F_SEAL at attach): saving, each
 * DATA frame becomes a SEALED frame that ends with the migration stream's
 * DEVICE_DATA record checksum of its data, so the VMM can move it into the
 * stream without reading it; loading, the client sends DATA and SEALED
 * frames, and the device checks each SEALED frame's checksum over the
 * bytes it received (-EBADMSG when it differs).
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
#include "stream/be.h"
#include "stream/stream.h"

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
	vfmig_stream_seal_free(c->seal);
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
		} else if (got && c->sealed) {
			uint8_t *data = c->buf + sizeof(struct vfw_dc_frame);
			struct vfw_dc_frame h = { VFW_DC_SEALED, (uint32_t)got + 4 };
			uint32_t v;

			vfmig_stream_seal_begin(c->seal, c->seal_index, (uint32_t)got);
			vfmig_stream_seal_update(c->seal, data, got);
			v = vfmig_stream_seal_end(c->seal);
			put_be32(data + got, v);
			memcpy(c->buf, &h, sizeof(h));
			c->len = sizeof(h) + got + 4;
			c->bytes += got;
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

/* Sealed loading: fail the session (an ERROR frame goes out). */
static void load_refuse(struct vfmig_dev *dev, int err, const char *what)
{
	DEV_LOG(dev, VFW_LOG_ERR, "data channel: %s after %llu bytes", what,
		(unsigned long long)dev->dc.bytes);
	stage_error(&dev->dc, err);
}

/* Sealed loading: receive into p up to n bytes; the count, 0 when the
 * socket is empty now, -1 at EOF (*eof set) or when the channel failed. */
static ssize_t load_recv(struct vfmig_dev *dev, void *p, size_t n, bool *eof)
{
	struct dev_dchan *c = &dev->dc;

	for (;;) {
		ssize_t r = recv(c->fd, p, n, MSG_DONTWAIT);
		if (r > 0)
			return r;
		if (r == 0) {
			*eof = true;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		c->err = -EPIPE;
		dev_dc_close(dev, "the client's end failed");
		return -1;
	}
}

/* A frame header is complete: check it and start the frame. */
static void load_frame(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;
	struct vfw_dc_frame h;

	memcpy(&h, c->fhdr, sizeof(h));
	c->fkind = h.kind;
	if (h.kind == VFW_DC_DATA && h.size >= 1 && h.size <= VFW_DC_FRAME_MAX) {
		c->fleft = h.size;
	} else if (h.kind == VFW_DC_SEALED && h.size > 4 &&
		   h.size <= VFW_DC_FRAME_MAX + 4) {
		c->fleft = h.size - 4;
		c->ftlen = 0;
		vfmig_stream_seal_begin(c->seal, c->seal_index, c->fleft);
	} else {
		DEV_LOG(dev, VFW_LOG_ERR,
			"data channel: frame kind %u of %u bytes while loading",
			h.kind, h.size);
		load_refuse(dev, -EPROTO, "a malformed frame");
	}
}

/* A SEALED frame's checksum is complete: compare. */
static void load_check(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;
	uint32_t want = get_be32(c->ftail), got = vfmig_stream_seal_end(c->seal);

	if (want != got) {
		DEV_LOG(dev, VFW_LOG_ERR,
			"data channel: sealed frame checksum mismatch (stored "
			"0x%08x, computed 0x%08x)", want, got);
		load_refuse(dev, -EBADMSG, "a checksum mismatch");
	}
}

/* Loading a sealed session: DATA and SEALED frames. */
static void pump_load_sealed(struct vfmig_dev *dev)
{
	struct dev_dchan *c = &dev->dc;
	size_t moved = 0;
	bool eof = false;
	ssize_t n;

	while (moved < DC_BUDGET) {
		if (c->len) { /* DONE or ERROR waits to be sent */
			if (flush(dev) > 0)
				c->len = c->off = 0;
			return;
		}
		if (c->eof || c->err)
			return;
		if (c->fhlen < sizeof(c->fhdr)) {
			n = load_recv(dev, c->fhdr + c->fhlen,
				      sizeof(c->fhdr) - c->fhlen, &eof);
			if (n == 0 || (n < 0 && !eof))
				return;
			if (n < 0 && c->fhlen == 0) {
				uint64_t total = c->bytes;
				c->eof = true;
				stage(c, VFW_DC_DONE, &total, sizeof(total));
				continue;
			}
			if (n < 0) {
				load_refuse(dev, -EPROTO, "EOF inside a frame header");
				continue;
			}
			c->fhlen += (size_t)n;
			if (c->fhlen == sizeof(c->fhdr))
				load_frame(dev);
			continue;
		}
		if (c->fleft) {
			size_t want = c->fleft;
			uint8_t *dst = load_place(dev, &want);
			if (!dst && want > VFW_DC_FRAME_MAX)
				want = VFW_DC_FRAME_MAX;
			n = load_recv(dev, dst ? dst : c->buf, want, &eof);
			if (n == 0 || (n < 0 && !eof))
				return;
			if (n < 0) {
				load_refuse(dev, -EPROTO, "EOF inside a frame");
				continue;
			}
			if (c->fkind == VFW_DC_SEALED)
				vfmig_stream_seal_update(c->seal, dst ? dst : c->buf,
							 (size_t)n);
			int r = dev_mig_load_chunk(dev, dst ? dst : c->buf, (size_t)n);
			if (r < 0) {
				DEV_LOG(dev, VFW_LOG_ERR, "data channel: load failed: %s",
					vfmig_dev_strerror(r));
				stage_error(c, r);
				continue;
			}
			c->fleft -= (uint32_t)n;
			c->bytes += (uint64_t)n;
			moved += (size_t)n;
			if (c->fleft == 0 && c->fkind == VFW_DC_DATA)
				c->fhlen = 0;
			continue;
		}
		/* A SEALED frame's data is in: its checksum. */
		n = load_recv(dev, c->ftail + c->ftlen, sizeof(c->ftail) - c->ftlen, &eof);
		if (n == 0 || (n < 0 && !eof))
			return;
		if (n < 0) {
			load_refuse(dev, -EPROTO, "EOF inside a frame's checksum");
			continue;
		}
		c->ftlen += (size_t)n;
		if (c->ftlen == sizeof(c->ftail)) {
			load_check(dev);
			c->fhlen = 0;
		}
	}
}

void dev_dc_pump(struct vfmig_dev *dev)
{
	if (dev->dc.fd < 0)
		return;
	if (dev->dc.load && dev->dc.sealed)
		pump_load_sealed(dev);
	else if (dev->dc.load)
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
	bool seal = req.flags == VFW_DC_F_SEAL && dev->mig.dc_version >= 2 &&
		    req.seal_algo == VFW_DC_SEAL_XXH3;
	if ((req.flags && !seal) ||
	    (!seal && (req.seal_index || req.seal_algo)) ||
	    (!vfw_mig_state_saving(s) && s != VFW_MIG_STATE_RESUMING)) {
		DEV_LOG(dev, VFW_LOG_WARNING,
			"data channel refused in %s (flags 0x%x, seal algorithm "
			"%u)", vfw_mig_state_name(s), req.flags, req.seal_algo);
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
	c->buf = malloc(sizeof(struct vfw_dc_frame) + VFW_DC_FRAME_MAX + 4);
	if (!c->buf || (seal && vfmig_stream_seal_new(&c->seal) < 0)) {
		free(c->buf);
		c->buf = NULL;
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->load = s == VFW_MIG_STATE_RESUMING;
	c->sealed = seal;
	c->seal_index = seal ? req.seal_index : 0;
	DEV_LOG(dev, VFW_LOG_INFO, "data channel attached for %s%s",
		c->load ? "loading" : "saving", seal ? ", sealed" : "");
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
		dev_dc_pump(dev);
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
	dev_dc_pump(dev);
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
