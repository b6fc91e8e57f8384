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

int vmm_reply_check(uint16_t id, uint16_t cmd, const struct vfu_header *h,
		    int *dev_err)
{
	*dev_err = 0;
	if ((h->flags & VFU_FLAGS_TYPE_MASK) != VFU_FLAGS_TYPE_REPLY)
		return -EPROTO;
	if (h->msg_id != id || h->command != cmd)
		return -EPROTO;
	if (h->flags & VFU_FLAGS_ERROR) {
		/* Bound the errno so it stays a plausible negative int. */
		if (h->error == 0 || h->error > 4095)
			*dev_err = -EIO;
		else
			*dev_err = -(int)h->error;
	}
	return 0;
}

int vmm_proto_error(vfmig_vmm_dev *dev, struct vfu_msg *reply,
		    const char *what)
{
	vfu_log(&dev->log, VFU_LOG_ERR, "protocol error: %s; closing", what);
	if (reply)
		vfu_msg_release(reply);
	vmm_break(dev);
	return -EPROTO;
}

/* Map a vfu_msg_recv failure to the documented error and break. */
static int recv_failed(vfmig_vmm_dev *dev, int r)
{
	switch (r) {
	case -ECONNRESET:
	case -EPIPE:
		vfu_log(&dev->log, VFU_LOG_ERR, "device closed the connection");
		vmm_break(dev);
		return -ECONNRESET;
	case -EMSGSIZE:
	case -EINVAL:
	case -EBADMSG:
		return vmm_proto_error(dev, NULL, "malformed message header, "
				       "oversized message or too many fds");
	default:
		vfu_log(&dev->log, VFU_LOG_ERR, "receive failed: %s", strerror(-r));
		vmm_break(dev);
		return r;
	}
}

/* Wait for input up to the reply timeout. */
static int wait_input(vfmig_vmm_dev *dev)
{
	struct pollfd p = { .fd = dev->fd, .events = POLLIN };
	int ms = dev->reply_timeout_ms;

	for (;;) {
		int r = poll(&p, 1, ms < 0 ? -1 : ms);
		if (r > 0)
			return 0;
		if (r == 0) {
			vfu_log(&dev->log, VFU_LOG_ERR,
				"no reply within %d ms; closing", ms);
			vmm_break(dev);
			return -ETIMEDOUT;
		}
		if (errno != EINTR) {
			r = -errno;
			vmm_break(dev);
			return r;
		}
	}
}

/* Receive one message; a failure breaks the connection. */
static int recv_one(vfmig_vmm_dev *dev, struct vfu_msg *msg)
{
	int r = vfu_msg_recv(dev->fd, msg, VMM_MAX_MSG, VFU_MAX_FDS_PER_MSG);

	return r < 0 ? recv_failed(dev, r) : 0;
}

static int wait_reply(vfmig_vmm_dev *dev, uint16_t id, uint16_t cmd,
		      struct vfu_msg *reply)
{
	for (;;) {
		struct vfu_msg msg;
		int dev_err, r;

		r = wait_input(dev);
		if (r < 0)
			return r;
		r = recv_one(dev, &msg);
		if (r < 0)
			return r;
		if ((msg.hdr.flags & VFU_FLAGS_TYPE_MASK) ==
		    VFU_FLAGS_TYPE_COMMAND) {
			r = vmm_serve_command(dev, &msg);
			vfu_msg_release(&msg);
			if (r < 0)
				return r;
			continue;
		}
		if (vmm_reply_check(id, cmd, &msg.hdr, &dev_err) < 0) {
			vfu_log(&dev->log, VFU_LOG_ERR,
				"expected reply id %u to %s, got id %u cmd %u",
				id, vfu_command_name(cmd), msg.hdr.msg_id,
				msg.hdr.command);
			return vmm_proto_error(dev, &msg, "unexpected reply");
		}
		if (dev_err) {
			vfu_log(&dev->log, VFU_LOG_DEBUG, "%s failed: %s",
				vfu_command_name(cmd),
				vfmig_vmm_strerror(dev_err));
			vfu_msg_release(&msg);
			return dev_err;
		}
		*reply = msg;
		return 0;
	}
}

int vmm_call(vfmig_vmm_dev *dev, uint16_t cmd, const struct iovec *iov,
	     int iovcnt, const int *fds, size_t nfds, struct vfu_msg *reply)
{
	struct vfu_header hdr = {
		.msg_id = dev->next_id++,
		.command = cmd,
		.flags = VFU_FLAGS_TYPE_COMMAND,
	};
	int r;

	memset(reply, 0, sizeof(*reply));
	vfu_log(&dev->log, VFU_LOG_DEBUG, "-> %s id %u",
		vfu_command_name(cmd), hdr.msg_id);
	r = vfu_msg_send(dev->fd, &hdr, iov, iovcnt, fds, nfds);
	if (r < 0) {
		vfu_log(&dev->log, VFU_LOG_ERR, "send %s failed: %s",
			vfu_command_name(cmd), strerror(-r));
		vmm_break(dev);
		return r == -EPIPE ? -ECONNRESET : r;
	}
	return wait_reply(dev, hdr.msg_id, cmd, reply);
}

/* ---- Serving the device between calls ---- */

int vfmig_vmm_dev_get_poll_fd(vfmig_vmm_dev *dev)
{
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	r = dev->fd;
	vmm_unlock(dev);
	return r;
}

static bool input_pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

int vfmig_vmm_dev_process(vfmig_vmm_dev *dev)
{
	int served = 0;
	int r = vmm_lock_live(dev);

	if (r < 0)
		return r;
	while (served < VMM_PROCESS_BUDGET && input_pending(dev->fd)) {
		struct vfu_msg msg;

		r = recv_one(dev, &msg);
		if (r < 0)
			goto out;
		if ((msg.hdr.flags & VFU_FLAGS_TYPE_MASK) !=
		    VFU_FLAGS_TYPE_COMMAND) {
			r = vmm_proto_error(dev, &msg,
					    "reply with no call outstanding");
			goto out;
		}
		r = vmm_serve_command(dev, &msg);
		vfu_msg_release(&msg);
		if (r < 0)
			goto out;
		served++;
	}
	r = served;
out:
	vmm_unlock(dev);
	return r;
}
