/* SPDX-License-Identifier: MIT */
/*
 * Transport: accept a client (and refuse any other while it is attached),
 * receive its messages one at a time, queue client commands that arrive
 * while the device waits for the reply to its own DMA_READ / DMA_WRITE, and
 * drop a client whose stream broke.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define DEV_CALL_TIMEOUT_MS 10000 /* client must answer DMA within this */
#define DEV_REFUSE_BATCH 16 /* waiting connections refused per call at most */

size_t dev_recv_limit(const struct vfmig_dev *dev)
{
	return sizeof(struct vfu_header) + VFU_MSG_OVERHEAD + dev->max_xfer;
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r > 0;
}

int dev_transport_recv(struct vfmig_dev *dev, struct vfu_msg *msg)
{
	return vfu_msg_recv(dev->conn_fd, msg, dev_recv_limit(dev),
			    DEV_MAX_FDS);
}

void dev_queue_push(struct vfmig_dev *dev, struct vfu_msg *msg, int err)
{
	struct dev_queued *q = malloc(sizeof(*q));

	if (!q) {
		dev_reply_error(dev, &msg->hdr, ENOMEM);
		vfu_msg_release(msg);
		return;
	}
	q->msg = *msg;
	q->err = err;
	q->next = NULL;
	memset(msg, 0, sizeof(*msg));
	if (dev->q_tail)
		dev->q_tail->next = q;
	else
		dev->q_head = q;
	dev->q_tail = q;
}

static struct dev_queued *queue_pop(struct vfmig_dev *dev)
{
	struct dev_queued *q = dev->q_head;

	if (q) {
		dev->q_head = q->next;
		if (!dev->q_head)
			dev->q_tail = NULL;
	}
	return q;
}

void dev_queue_clear(struct vfmig_dev *dev)
{
	struct dev_queued *q;

	while ((q = queue_pop(dev))) {
		vfu_msg_release(&q->msg);
		free(q);
	}
}

int dev_transport_call(struct vfmig_dev *dev, uint16_t cmd,
		       const struct iovec *iov, int iovcnt,
		       struct vfu_msg *reply)
{
	struct vfu_header hdr = { .msg_id = dev->next_msg_id++,
				  .command = cmd,
				  .flags = VFU_FLAGS_TYPE_COMMAND };
	struct vfu_msg m;

	if (dev->conn_fd < 0 || dev->broken)
		return -ENOTCONN;
	if (vfu_msg_send(dev->conn_fd, &hdr, iov, iovcnt, NULL, 0) < 0)
		goto broken;
	for (;;) {
		if (!readable(dev->conn_fd, DEV_CALL_TIMEOUT_MS)) {
			DEV_LOG(dev, VFU_LOG_ERR, "%s: no reply from client",
				vfu_command_name(cmd));
			goto broken;
		}
		int r = dev_transport_recv(dev, &m);
		if (r == -EBADMSG) { /* too many fds: answer it in order */
			dev_queue_push(dev, &m, EINVAL);
			continue;
		}
		if (r < 0)
			goto broken;
		if ((m.hdr.flags & VFU_FLAGS_TYPE_MASK) == VFU_FLAGS_TYPE_COMMAND) {
			dev_queue_push(dev, &m, 0);
			continue;
		}
		if (m.hdr.msg_id == hdr.msg_id && m.hdr.command == cmd) {
			*reply = m;
			return 0;
		}
		DEV_LOG(dev, VFU_LOG_WARNING, "stray reply id %u dropped",
			m.hdr.msg_id);
		vfu_msg_release(&m);
	}
broken:
	dev->broken = true;
	return -EIO;
}

static int accept_client(struct vfmig_dev *dev, bool *handled)
{
	int fd;

	if (!readable(dev->listen_fd, 0))
		return 0;
	fd = accept4(dev->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return 0;
		return -errno;
	}
	dev->conn_fd = fd;
	dev->next_msg_id = 0;
	*handled = true;
	DEV_LOG(dev, VFU_LOG_INFO, "client connected");
	return 0;
}

/* The attached client has closed or shut down its end: its EOF is still
 * to be read. A connection that arrived after that close may be the same
 * client reconnecting, and is served once the EOF has been handled. */
static bool client_leaving(const struct vfmig_dev *dev)
{
	struct pollfd p = { .fd = dev->conn_fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) > 0 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* The device serves one client. Connections that wait on the listening
 * socket while one is attached are accepted and closed at once: the
 * newcomer sees its connection closed now instead of waiting for a reply
 * that would come only after the first client left. */
void dev_transport_refuse_extra(struct vfmig_dev *dev)
{
	for (unsigned int i = 0; i < DEV_REFUSE_BATCH; i++) {
		int fd;

		if (dev->listen_fd < 0 || dev->conn_fd < 0 ||
		    !readable(dev->listen_fd, 0) || client_leaving(dev))
			return;
		fd = accept4(dev->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or out of fds: try again later */
		close(fd);
		DEV_LOG(dev, VFU_LOG_WARNING,
			"refused a second client: one is already connected");
	}
}

static void recv_one(struct vfmig_dev *dev, bool *handled)
{
	struct vfu_msg msg;
	int r;

	if (!readable(dev->conn_fd, 0))
		return;
	*handled = true;
	r = dev_transport_recv(dev, &msg);
	if (r == 0) {
		dev_dispatch(dev, &msg);
	} else if (r == -EBADMSG) {
		DEV_LOG(dev, VFU_LOG_WARNING, "%s: too many fds",
			vfu_command_name(msg.hdr.command));
		dev_reply_error(dev, &msg.hdr, EINVAL);
		vfu_msg_release(&msg);
	} else {
		DEV_LOG(dev, r == -ECONNRESET ? VFU_LOG_INFO : VFU_LOG_WARNING,
			"client connection: %s", vfmig_dev_strerror(r));
		dev->broken = true;
	}
}

int dev_transport_process_one(struct vfmig_dev *dev, bool *handled)
{
	struct dev_queued *q;

	*handled = false;
	if (dev->conn_fd < 0)
		return dev->listen_fd < 0 ? -ENOTCONN
					  : accept_client(dev, handled);
	q = queue_pop(dev);
	if (q) {
		*handled = true;
		if (q->err) {
			dev_reply_error(dev, &q->msg.hdr, q->err);
			vfu_msg_release(&q->msg);
		} else {
			dev_dispatch(dev, &q->msg);
		}
		free(q);
	} else {
		recv_one(dev, handled);
	}
	if (dev->broken)
		dev_drop_client(dev);
	return 0;
}
