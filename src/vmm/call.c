/* SPDX-License-Identifier: MIT */
/*
 * The request/reply core: send a command with a fresh msg_id, read messages
 * until its reply, serve the device's own commands that arrive meanwhile,
 * and break the connection on anything a correct device would not send.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "internal.h"

int vmm_lock_live(vfmig_vmm_dev *dev)
{
	if (!dev)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	if (dev->fd < 0) {
		pthread_mutex_unlock(&dev->lock);
		return -ENOTCONN;
	}
	return 0;
}

void vmm_unlock(vfmig_vmm_dev *dev)
{
	pthread_mutex_unlock(&dev->lock);
}

size_t vmm_xfer_chunk(const vfmig_vmm_dev *dev)
{
	uint64_t c = dev->caps.max_data_xfer_size;

	return (size_t)(c < VMM_MAX_XFER ? c : VMM_MAX_XFER);
}

int vmm_reply_check(uint16_t id, uint16_t cmd, const struct vfw_header *h,
		    int *dev_err)
{
	*dev_err = 0;
	if ((h->flags & VFW_FLAGS_TYPE_MASK) != VFW_FLAGS_TYPE_REPLY)
		return -EPROTO;
	if (h->msg_id != id || h->command != cmd)
		return -EPROTO;
	if (h->flags & VFW_FLAGS_ERROR) {
		/* Bound the errno so it stays a plausible negative int. */
		if (h->error == 0 || h->error > 4095)
			*dev_err = -EIO;
		else
			*dev_err = -(int)h->error;
	}
	return 0;
}

int vmm_proto_error(vfmig_vmm_dev *dev, struct vfw_msg *reply,
		    const char *what)
{
	vfw_log(&dev->log, VFW_LOG_ERR, "protocol error: %s; closing", what);
	if (reply)
		vfw_msg_release(reply);
	vmm_break(dev);
	return -EPROTO;
}

/* Map a receive failure to the documented error and break. */
static int recv_failed(vfmig_vmm_dev *dev, int r)
{
	switch (r) {
	case -ECONNRESET:
	case -EPIPE:
		vfw_log(&dev->log, VFW_LOG_ERR, "device closed the connection");
		vmm_break(dev);
		return -ECONNRESET;
	case -EMSGSIZE:
	case -EINVAL:
	case -EBADMSG:
		return vmm_proto_error(dev, NULL, "malformed message header, "
				       "oversized message or too many fds");
	case -ETIMEDOUT:
		vfw_log(&dev->log, VFW_LOG_ERR, "device left a message "
			"unfinished for %d ms; closing", VFW_MSG_PART_TIMEOUT_MS);
		vmm_break(dev);
		return r;
	default:
		vfw_log(&dev->log, VFW_LOG_ERR, "receiving from the device: %s",
			vfmig_vmm_strerror(r));
		vmm_break(dev);
		return r;
	}
}

int vmm_send(vfmig_vmm_dev *dev, struct vfw_header *hdr,
	     const struct iovec *iov, int iovcnt, const int *fds, size_t nfds)
{
	int r = vfw_tx_send(dev->fd, &dev->tx, hdr, iov, iovcnt, fds, nfds);

	vmm_note_tx(dev);
	if (r == 0)
		return 0;
	if (r == -ENOBUFS)
		vfw_log(&dev->log, VFW_LOG_ERR, "device does not read: more than "
			"%zu bytes wait to be sent to it; closing",
			(size_t)VMM_TX_LIMIT);
	else
		vfw_log(&dev->log, VFW_LOG_ERR, "sending %s: %s",
			vfw_command_name(hdr->command), vfmig_vmm_strerror(r));
	vmm_break(dev);
	return r == -EPIPE ? -ECONNRESET : r;
}

/* Send what is queued, as far as the socket takes it: 0 when all went,
 * -EAGAIN when some is still queued; any other error breaks the
 * connection (a peer gone is -ECONNRESET). */
static int flush_tx(vfmig_vmm_dev *dev)
{
	int r = vfw_tx_flush(dev->fd, &dev->tx);

	vmm_note_tx(dev);
	if (r < 0 && r != -EAGAIN) {
		vfw_log(&dev->log, VFW_LOG_ERR, "sending to the device: %s",
			vfmig_vmm_strerror(r));
		vmm_break(dev);
		return r == -EPIPE ? -ECONNRESET : r;
	}
	return r;
}

/*
 * Wait until the socket is readable (or writable while something is
 * queued), sending what is queued, until deadline. The deadline is the
 * call's, fixed when it began: nothing the device sends meanwhile moves
 * it, and a message it has begun must also be whole in time.
 */
static int wait_io(vfmig_vmm_dev *dev, int64_t deadline, const char *what)
{
	for (;;) {
		int r = flush_tx(dev);
		if (r < 0 && r != -EAGAIN)
			return r;
		int64_t until = vfw_rx_deadline(&dev->rx);
		if (deadline < until)
			until = deadline;
		struct pollfd p = { .fd = dev->fd, .events = POLLIN };
		if (r == -EAGAIN)
			p.events |= POLLOUT;
		r = poll(&p, 1, vfw_ms_left(until));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			vmm_break(dev);
			return r;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			return 0;
		if (r == 0 && vfw_now_ms() >= deadline) {
			vfw_log(&dev->log, VFW_LOG_ERR, "no reply to %s within "
				"%d ms; closing", what, dev->reply_timeout_ms);
			vmm_break(dev);
			return -ETIMEDOUT;
		}
		if (r == 0)
			return 0; /* the begun message's deadline: rx says */
	}
}

/* Receive whatever has come: 1 and *msg when a message is whole, 0 when
 * not yet; a failure breaks the connection. */
static int recv_some(vfmig_vmm_dev *dev, struct vfw_msg *msg)
{
	int r = vfw_rx_poll(dev->fd, &dev->rx, VMM_MAX_MSG,
			    VFW_MAX_FDS_PER_MSG, msg);

	return r < 0 ? recv_failed(dev, r) : r;
}

static int wait_reply(vfmig_vmm_dev *dev, uint16_t id, uint16_t cmd,
		      int64_t deadline, struct vfw_msg *reply)
{
	for (;;) {
		struct vfw_msg msg;
		int dev_err, r;

		r = wait_io(dev, deadline, vfw_command_name(cmd));
		if (r < 0)
			return r;
		r = recv_some(dev, &msg);
		if (r <= 0) {
			if (r < 0)
				return r;
			continue;
		}
		if ((msg.hdr.flags & VFW_FLAGS_TYPE_MASK) ==
		    VFW_FLAGS_TYPE_COMMAND) {
			r = vmm_serve_command(dev, &msg);
			vfw_msg_release(&msg);
			if (r < 0)
				return r;
			continue;
		}
		if (vmm_reply_check(id, cmd, &msg.hdr, &dev_err) < 0) {
			vfw_log(&dev->log, VFW_LOG_ERR,
				"expected reply id %u to %s, got id %u cmd %u",
				id, vfw_command_name(cmd), msg.hdr.msg_id,
				msg.hdr.command);
			return vmm_proto_error(dev, &msg, "unexpected reply");
		}
		if (dev_err) {
			vfw_log(&dev->log, VFW_LOG_DEBUG, "%s failed: %s",
				vfw_command_name(cmd), vfmig_vmm_strerror(dev_err));
			vfw_msg_release(&msg);
			return dev_err;
		}
		*reply = msg;
		return 0;
	}
}

int vmm_call(vfmig_vmm_dev *dev, uint16_t cmd, const struct iovec *iov,
	     int iovcnt, const int *fds, size_t nfds, struct vfw_msg *reply)
{
	struct vfw_header hdr = {
		.msg_id = dev->next_id++,
		.command = cmd,
		.flags = VFW_FLAGS_TYPE_COMMAND,
	};
	int64_t deadline = vfw_deadline_after(dev->reply_timeout_ms);
	int r;

	memset(reply, 0, sizeof(*reply));
	vfw_log(&dev->log, VFW_LOG_DEBUG, "-> %s id %u",
		vfw_command_name(cmd), hdr.msg_id);
	r = vmm_send(dev, &hdr, iov, iovcnt, fds, nfds);
	if (r < 0)
		return r;
	return wait_reply(dev, hdr.msg_id, cmd, deadline, reply);
}

int vmm_serve_waiting(vfmig_vmm_dev *dev)
{
	int r = flush_tx(dev);

	if (r < 0 && r != -EAGAIN)
		return r;
	for (int i = 0; i < VMM_PROCESS_BUDGET; i++) {
		struct vfw_msg msg;

		r = recv_some(dev, &msg);
		if (r <= 0)
			return r;
		if ((msg.hdr.flags & VFW_FLAGS_TYPE_MASK) !=
		    VFW_FLAGS_TYPE_COMMAND)
			return vmm_proto_error(dev, &msg,
					       "reply with no call outstanding");
		r = vmm_serve_command(dev, &msg);
		vfw_msg_release(&msg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- Serving the device between calls ---- */

int vfmig_vmm_dev_get_poll_fd(vfmig_vmm_dev *dev)
{
	int fd;

	if (!dev)
		return -EINVAL;
	fd = atomic_load(&dev->poll_fd);
	return fd >= 0 ? fd : -ENOTCONN;
}

short vfmig_vmm_dev_get_poll_events(vfmig_vmm_dev *dev)
{
	if (!dev)
		return 0;
	return (short)(POLLIN | (atomic_load(&dev->tx_waiting) ? POLLOUT : 0));
}

int vfmig_vmm_dev_process(vfmig_vmm_dev *dev)
{
	int served = 0, r;

	if (!dev)
		return -EINVAL;
	/* A call in progress serves the device's commands itself. */
	if (pthread_mutex_trylock(&dev->lock) != 0)
		return -EBUSY;
	if (dev->fd < 0) {
		pthread_mutex_unlock(&dev->lock);
		return -ENOTCONN;
	}
	r = vfw_tx_flush(dev->fd, &dev->tx);
	vmm_note_tx(dev);
	if (r < 0 && r != -EAGAIN) {
		vfw_log(&dev->log, VFW_LOG_ERR, "sending to the device: %s",
			vfmig_vmm_strerror(r));
		vmm_break(dev);
		goto out;
	}
	while (served < VMM_PROCESS_BUDGET) {
		struct vfw_msg msg;

		r = recv_some(dev, &msg);
		if (r <= 0)
			break;
		if ((msg.hdr.flags & VFW_FLAGS_TYPE_MASK) !=
		    VFW_FLAGS_TYPE_COMMAND) {
			r = vmm_proto_error(dev, &msg,
					    "reply with no call outstanding");
			break;
		}
		r = vmm_serve_command(dev, &msg);
		vfw_msg_release(&msg);
		if (r < 0)
			break;
		served++;
	}
	if (r >= 0)
		r = served;
out:
	pthread_mutex_unlock(&dev->lock);
	return r;
}
