/* SPDX-License-Identifier: MIT */
/*
 * Transport: accept a client (and refuse any other while it is attached),
 * receive its messages without waiting (struct vfw_rx: a begun message must
 * be whole within VFW_MSG_PART_TIMEOUT_MS), send every reply and request
 * through a bounded queue (struct vfw_tx) that is never waited for outside
 * a DMA exchange, stop reading while the client does not read its replies,
 * queue (boundedly) client commands that arrive while the device waits for
 * the reply to its own DMA_READ / DMA_WRITE, and drop a client whose stream
 * broke or that missed a deadline. docs/io-model.md, "vfio-user
 * connections: device side", has the whole picture.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define DEV_REFUSE_BATCH 16 /* waiting connections refused per call at most */
#define DEV_STOP_CHECK_MS 100 /* a DMA wait under vfmig_dev_run looks at
			       * the stop flag this often at least */

size_t dev_recv_limit(const struct vfmig_dev *dev)
{
	return sizeof(struct vfw_header) + VFW_MSG_OVERHEAD + dev->max_xfer;
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

static struct dev_queued *queue_pop(struct vfmig_dev *dev)
{
	struct dev_queued *q = dev->q_head;

	if (q) {
		dev->q_head = q->next;
		if (!dev->q_head)
			dev->q_tail = NULL;
		dev->q_n--;
		dev->q_bytes -= q->bytes;
	}
	return q;
}

static void queue_clear(struct vfmig_dev *dev)
{
	struct dev_queued *q;

	while ((q = queue_pop(dev))) {
		vfw_msg_release(&q->msg);
		free(q);
	}
}

void dev_conn_start(struct vfmig_dev *dev, int fd)
{
	dev->conn_fd = fd;
	dev->next_msg_id = 0;
	dev->broken = false;
	vfw_rx_init(&dev->rx);
	vfw_tx_init(&dev->tx, DEV_TX_LIMIT_MSGS * dev_recv_limit(dev));
	dev->tx_owed = 0;
	dev->tx_deadline = VFW_FOREVER;
}

void dev_conn_end(struct vfmig_dev *dev)
{
	vfw_rx_reset(&dev->rx);
	vfw_tx_clear(&dev->tx);
	dev->tx_owed = 0;
	dev->tx_deadline = VFW_FOREVER;
	queue_clear(dev);
}

/* ---- sending ---- */

/*
 * The drain clock. Called after every send or flush with the queued byte
 * count from before it. The bytes queued when the clock starts are owed by
 * tx_deadline; the queue is FIFO, so every byte that leaves pays the oldest
 * debt first. Once paid, the clock starts again for what is queued then.
 * A client that reads a little at a time cannot move a deadline, only meet
 * it.
 */
static void tx_clock(struct vfmig_dev *dev, size_t before)
{
	size_t now = dev->tx.bytes;

	if (now < before) {
		size_t sent = before - now;

		dev->tx_owed = sent >= dev->tx_owed ? 0 : dev->tx_owed - sent;
		if (!dev->tx_owed)
			dev->tx_deadline = VFW_FOREVER;
	}
	if (dev->tx_deadline == VFW_FOREVER && vfw_tx_pending(&dev->tx)) {
		dev->tx_owed = now;
		dev->tx_deadline = vfw_deadline_after(DEV_TX_DRAIN_MS);
	}
}

static void send_failed(struct vfmig_dev *dev, const char *what, int r)
{
	if (dev->broken)
		return; /* said already */
	if (r == -ENOBUFS)
		DEV_LOG(dev, VFW_LOG_ERR,
			"client does not read: more than %zu bytes would wait "
			"to be sent to it; closing",
			dev->tx.limit);
	else if (r == -EPIPE || r == -ECONNRESET)
		DEV_LOG(dev, VFW_LOG_INFO, "client went away while %s was sent",
			what);
	else
		DEV_LOG(dev, VFW_LOG_ERR, "sending %s to the client: %s", what,
			vfmig_dev_strerror(r));
	dev->broken = true;
}

int dev_send(struct vfmig_dev *dev, struct vfw_header *hdr,
	     const struct iovec *iov, int iovcnt, const int *fds, size_t nfds)
{
	size_t before = dev->tx.bytes;
	int r;

	if (dev->conn_fd < 0)
		return -ENOTCONN;
	r = vfw_tx_send(dev->conn_fd, &dev->tx, hdr, iov, iovcnt, fds, nfds);
	tx_clock(dev, before);
	if (r < 0)
		send_failed(dev, vfw_command_name(hdr->command), r);
	return r;
}

/* Send what is queued without waiting. 0 when nothing is left, -EAGAIN
 * when some is, another negative errno when the connection broke. */
static int tx_flush(struct vfmig_dev *dev)
{
	size_t before = dev->tx.bytes;
	int r;

	if (!vfw_tx_pending(&dev->tx))
		return 0;
	r = vfw_tx_flush(dev->conn_fd, &dev->tx);
	tx_clock(dev, before);
	if (r < 0 && r != -EAGAIN)
		send_failed(dev, "a queued message", r);
	return r;
}

/* The drain deadline passed: drop the client (true). */
static bool tx_overdue(struct vfmig_dev *dev)
{
	if (!vfw_tx_pending(&dev->tx) || vfw_now_ms() < dev->tx_deadline)
		return false;
	if (!dev->broken)
		DEV_LOG(dev, VFW_LOG_ERR,
			"client does not read: %zu bytes queued for it did not "
			"leave within %d ms (%zu bytes wait); closing",
			dev->tx_owed, DEV_TX_DRAIN_MS, dev->tx.bytes);
	dev->broken = true;
	return true;
}

/* Backpressure: more than one largest message waits to be sent, so no new
 * command is taken from the client (a message it has begun is still read
 * to its end, so that its deadline is the client's own doing). */
static bool tx_full(const struct vfmig_dev *dev)
{
	return dev->tx.bytes > dev_recv_limit(dev) && dev->rx.got == 0;
}

/* ---- receiving ---- */

static int recv_msg(struct vfmig_dev *dev, struct vfw_msg *msg)
{
	return vfw_rx_poll(dev->conn_fd, &dev->rx, dev_recv_limit(dev),
			   DEV_MAX_FDS, msg);
}

/* Log why the stream ended and mark the connection broken. */
static void recv_failed(struct vfmig_dev *dev, int r)
{
	switch (r) {
	case -ECONNRESET:
		DEV_LOG(dev, VFW_LOG_INFO, "client closed the connection");
		break;
	case -EPIPE:
		DEV_LOG(dev, VFW_LOG_WARNING,
			"client closed the connection mid-message");
		break;
	case -ETIMEDOUT:
		DEV_LOG(dev, VFW_LOG_ERR,
			"client left a message unfinished for %d ms; closing",
			VFW_MSG_PART_TIMEOUT_MS);
		break;
	case -EMSGSIZE:
		DEV_LOG(dev, VFW_LOG_ERR,
			"client announced a message larger than %zu bytes; "
			"closing",
			dev_recv_limit(dev));
		break;
	case -EINVAL:
		DEV_LOG(dev, VFW_LOG_ERR,
			"client sent a malformed message header; closing");
		break;
	default:
		DEV_LOG(dev, VFW_LOG_WARNING, "client connection: %s",
			vfmig_dev_strerror(r));
	}
	dev->broken = true;
}

/* Keep a command for after the DMA exchange: 0, or -ENOBUFS/-ENOMEM when
 * the bound is reached (msg is released either way). */
static int queue_push(struct vfmig_dev *dev, struct vfw_msg *msg, int err)
{
	size_t bytes = msg->hdr.msg_size;
	struct dev_queued *q;

	if (dev->q_n >= DEV_QUEUE_MAX_MSGS ||
	    bytes > DEV_QUEUE_MAX_BYTES - dev->q_bytes) {
		vfw_msg_release(msg);
		return -ENOBUFS;
	}
	q = malloc(sizeof(*q));
	if (!q) {
		vfw_msg_release(msg);
		return -ENOMEM;
	}
	q->msg = *msg;
	q->err = err;
	q->bytes = bytes;
	q->next = NULL;
	memset(msg, 0, sizeof(*msg));
	if (dev->q_tail)
		dev->q_tail->next = q;
	else
		dev->q_head = q;
	dev->q_tail = q;
	dev->q_n++;
	dev->q_bytes += bytes;
	return 0;
}

/* ---- the device's own requests: DMA_READ / DMA_WRITE ---- */

/*
 * Wait until the socket is readable, sending what is queued meanwhile.
 * 0: read now. -EIO: the connection is broken (logged): the deadline, the
 * drain deadline or the run loop's stop flag came, or the socket failed.
 */
static int call_wait(struct vfmig_dev *dev, int64_t deadline,
		     const char *what)
{
	for (;;) {
		int r = tx_flush(dev);
		if (dev->broken || tx_overdue(dev))
			return -EIO;
		if (dev->stop && *dev->stop) {
			DEV_LOG(dev, VFW_LOG_ERR,
				"stopping: %s abandoned; closing", what);
			dev->broken = true;
			return -EIO;
		}
		int64_t now = vfw_now_ms();
		if (now >= deadline) {
			DEV_LOG(dev, VFW_LOG_ERR,
				"client did not answer %s within %d ms; "
				"closing",
				what, DEV_CALL_TIMEOUT_MS);
			dev->broken = true;
			return -EIO;
		}
		int64_t until = deadline;
		if (vfw_rx_deadline(&dev->rx) < until)
			until = vfw_rx_deadline(&dev->rx);
		if (vfw_tx_pending(&dev->tx) && dev->tx_deadline < until)
			until = dev->tx_deadline;
		if (dev->rx.got && now >= vfw_rx_deadline(&dev->rx))
			return 0; /* the receiver reports its own deadline */
		int left = vfw_ms_left(until);
		if (dev->stop && (left < 0 || left > DEV_STOP_CHECK_MS))
			left = DEV_STOP_CHECK_MS;
		struct pollfd p = { .fd = dev->conn_fd, .events = POLLIN };
		if (r == -EAGAIN)
			p.events |= POLLOUT;
		r = poll(&p, 1, left);
		if (r < 0 && errno != EINTR) {
			r = -errno;
			DEV_LOG(dev, VFW_LOG_ERR, "waiting for the client: %s",
				vfmig_dev_strerror(r));
			dev->broken = true;
			return -EIO;
		}
		if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
			return 0;
	}
}

int dev_transport_call(struct vfmig_dev *dev, uint16_t cmd,
		       const struct iovec *iov, int iovcnt, int64_t deadline,
		       struct vfw_msg *reply)
{
	struct vfw_header hdr = { .msg_id = dev->next_msg_id++,
				  .command = cmd,
				  .flags = VFW_FLAGS_TYPE_COMMAND };
	const char *what = vfw_command_name(cmd);
	struct vfw_msg m;

	memset(reply, 0, sizeof(*reply));
	if (dev->conn_fd < 0 || dev->broken)
		return -ENOTCONN;
	if (dev_send(dev, &hdr, iov, iovcnt, NULL, 0) < 0)
		return -EIO;
	for (;;) {
		int r = call_wait(dev, deadline, what);
		if (r < 0)
			return r;
		r = recv_msg(dev, &m);
		if (r == 0)
			continue;
		if (r < 0 && r != -EBADMSG) {
			recv_failed(dev, r);
			return -EIO;
		}
		bool is_cmd = (m.hdr.flags & VFW_FLAGS_TYPE_MASK) ==
			      VFW_FLAGS_TYPE_COMMAND;
		if (r == -EBADMSG || is_cmd) {
			/* Answered in order after the exchange; one with
			 * too many fds gets EINVAL then. */
			r = queue_push(dev, &m, r == -EBADMSG ? EINVAL : 0);
			if (r < 0) {
				DEV_LOG(dev, VFW_LOG_ERR,
					"client sent more than %u commands or "
					"%u MiB while the device waited for "
					"its %s reply; closing",
					DEV_QUEUE_MAX_MSGS,
					DEV_QUEUE_MAX_BYTES >> 20, what);
				dev->broken = true;
				return -EIO;
			}
			continue;
		}
		if (m.hdr.msg_id == hdr.msg_id && m.hdr.command == cmd) {
			*reply = m;
			return 0;
		}
		DEV_LOG(dev, VFW_LOG_ERR,
			"client sent a reply (id %u, %s) while the device "
			"waited for its %s id %u: protocol error; closing",
			m.hdr.msg_id, vfw_command_name(m.hdr.command), what,
			hdr.msg_id);
		vfw_msg_release(&m);
		dev->broken = true;
		return -EIO;
	}
}

/* ---- accepting and refusing ---- */

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
	*handled = true;
	if (!dev_peer_allowed(dev, fd, dev->sock_path)) {
		close(fd);
		return 0;
	}
	dev_conn_start(dev, fd);
	DEV_LOG(dev, VFW_LOG_INFO, "client connected");
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
		DEV_LOG(dev, VFW_LOG_WARNING,
			"refused a second client: one is already connected");
	}
}

/* ---- serving ---- */

/* Take one whole message from the socket, if one is there. */
static void recv_one(struct vfmig_dev *dev, bool *handled)
{
	struct vfw_msg msg;
	int r = recv_msg(dev, &msg);

	if (r == 0)
		return; /* nothing, or not whole yet */
	*handled = true;
	if (r == 1) {
		dev_dispatch(dev, &msg);
	} else if (r == -EBADMSG) {
		DEV_LOG(dev, VFW_LOG_WARNING, "%s: too many fds",
			vfw_command_name(msg.hdr.command));
		dev_reply_error(dev, &msg.hdr, EINVAL);
		vfw_msg_release(&msg);
	} else {
		recv_failed(dev, r);
	}
}

int dev_transport_events(const struct vfmig_dev *dev)
{
	int ev = 0;

	if (dev->conn_fd < 0)
		return dev->listen_fd < 0 ? -ENOTCONN : POLLIN;
	if (!tx_full(dev))
		ev |= POLLIN;
	if (vfw_tx_pending(&dev->tx))
		ev |= POLLOUT;
	return ev;
}

int dev_transport_timeout(const struct vfmig_dev *dev)
{
	int64_t until = vfw_rx_deadline(&dev->rx);

	if (dev->conn_fd < 0)
		return -1;
	if (dev->broken || (dev->q_head && !tx_full(dev)))
		return 0; /* work that waits for no I/O */
	if (vfw_tx_pending(&dev->tx) && dev->tx_deadline < until)
		until = dev->tx_deadline;
	return vfw_ms_left(until);
}

int dev_transport_process_one(struct vfmig_dev *dev, bool *handled)
{
	struct dev_queued *q;

	*handled = false;
	if (dev->conn_fd < 0)
		return dev->listen_fd < 0 ? -ENOTCONN
					  : accept_client(dev, handled);
	if (!dev->broken) {
		tx_flush(dev);
		tx_overdue(dev);
	}
	if (!dev->broken && !tx_full(dev)) {
		q = queue_pop(dev);
		if (q) {
			*handled = true;
			if (q->err) {
				dev_reply_error(dev, &q->msg.hdr, q->err);
				vfw_msg_release(&q->msg);
			} else {
				dev_dispatch(dev, &q->msg);
			}
			free(q);
		} else {
			recv_one(dev, handled);
		}
	}
	if (dev->broken) {
		dev_drop_client(dev);
		*handled = true; /* the next call may accept a client */
	}
	return 0;
}
