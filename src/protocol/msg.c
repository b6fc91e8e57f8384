/* SPDX-License-Identifier: MIT */
/*
 * Message framing: one vfio-user message per call, with SCM_RIGHTS fds.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

static const char *const command_names[VFW_CMD_MAX] = {
	[VFW_CMD_VERSION] = "VERSION",
	[VFW_CMD_DMA_MAP] = "DMA_MAP",
	[VFW_CMD_DMA_UNMAP] = "DMA_UNMAP",
	[VFW_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
	[VFW_CMD_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
	[VFW_CMD_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
	[VFW_CMD_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
	[VFW_CMD_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
	[VFW_CMD_REGION_READ] = "REGION_READ",
	[VFW_CMD_REGION_WRITE] = "REGION_WRITE",
	[VFW_CMD_DMA_READ] = "DMA_READ",
	[VFW_CMD_DMA_WRITE] = "DMA_WRITE",
	[VFW_CMD_DEVICE_RESET] = "DEVICE_RESET",
	[VFW_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
	[VFW_CMD_DEVICE_FEATURE] = "DEVICE_FEATURE",
	[VFW_CMD_MIG_DATA_READ] = "MIG_DATA_READ",
	[VFW_CMD_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
};

const char *vfw_command_name(unsigned int cmd)
{
	if (cmd >= VFW_CMD_MAX || command_names[cmd] == NULL)
		return "UNKNOWN";
	return command_names[cmd];
}

int vfw_header_check(const struct vfw_header *hdr, size_t max_size)
{
	uint32_t type = hdr->flags & VFW_FLAGS_TYPE_MASK;

	if (hdr->msg_size < sizeof(*hdr))
		return -EINVAL;
	if (hdr->msg_size > max_size)
		return -EMSGSIZE;
	if (hdr->flags & ~VFW_FLAGS_KNOWN)
		return -EINVAL;
	if (type != VFW_FLAGS_TYPE_COMMAND && type != VFW_FLAGS_TYPE_REPLY)
		return -EINVAL;
	return 0;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/*
 * Wait until sock is readable, once a message has begun: a peer that sends
 * part of a message and then stalls, or trickles it, must not hold us past
 * the message's deadline (VFW_MSG_PART_TIMEOUT_MS from its first byte).
 */
static int wait_readable(int sock, int64_t deadline)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	for (;;) {
		int r = poll(&p, 1, vfw_ms_left(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Read exactly len bytes. begun: bytes of this message already consumed, to
 * tell a clean close (nothing of the message read) from a torn message.
 */
static int read_full(int sock, void *buf, size_t len, bool begun,
		     int64_t deadline)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		int w = wait_readable(sock, deadline);
		if (w < 0)
			return w;
		ssize_t n = recv(sock, p + got, len - got, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			return (begun || got) ? -EPIPE : -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		return -errno;
	}
	return 0;
}

/* Collect SCM_RIGHTS fds from a control buffer; extras beyond cap are
 * closed and counted in *dropped. */
static void collect_fds(struct msghdr *mh, struct vfw_msg *msg,
			size_t *dropped)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const uint8_t *data = CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, data + i * sizeof(int), sizeof(int));
			if (msg->nfds < VFW_MAX_FDS_PER_MSG)
				msg->fds[msg->nfds++] = fd;
			else {
				close(fd);
				(*dropped)++;
			}
		}
	}
}

/* Read the 16-byte header with any ancillary fds. */
static int recv_header(int sock, struct vfw_msg *msg, size_t *dropped,
		       bool *ctrunc, int64_t *deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VFW_MAX_FDS_PER_MSG)];
		struct cmsghdr align;
	} ctl;
	uint8_t *p = (uint8_t *)&msg->hdr;
	size_t got = 0;

	while (got < sizeof(msg->hdr)) {
		if (got) {
			int w = wait_readable(sock, *deadline);
			if (w < 0)
				return w;
		}
		struct iovec iov = { p + got, sizeof(msg->hdr) - got };
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = ctl.buf,
			.msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n = recvmsg(sock, &mh,
				    MSG_CMSG_CLOEXEC | (got ? MSG_DONTWAIT : 0));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* Nothing of the message yet: wait as long as
				 * it takes (the caller polled first). */
				struct pollfd pf = { .fd = sock,
						     .events = POLLIN };
				if (!got && poll(&pf, 1, -1) < 0 &&
				    errno != EINTR)
					return -errno;
				continue;
			}
			return -errno;
		}
		collect_fds(&mh, msg, dropped);
		if (mh.msg_flags & MSG_CTRUNC)
			*ctrunc = true;
		if (n == 0)
			return got ? -EPIPE : -ECONNRESET;
		if (!got)
			*deadline = vfw_deadline_after(VFW_MSG_PART_TIMEOUT_MS);
		got += (size_t)n;
	}
	return 0;
}

int vfw_msg_recv(int sock, struct vfw_msg *msg, size_t max_size,
		 size_t max_fds)
{
	size_t dropped = 0;
	bool ctrunc = false;
	int64_t deadline = VFW_FOREVER; /* set at the first byte */
	int r;

	memset(msg, 0, sizeof(*msg));
	for (size_t i = 0; i < VFW_MAX_FDS_PER_MSG; i++)
		msg->fds[i] = -1;

	r = recv_header(sock, msg, &dropped, &ctrunc, &deadline);
	if (r < 0)
		goto fail;
	r = vfw_header_check(&msg->hdr, max_size);
	if (r < 0)
		goto fail;

	msg->len = msg->hdr.msg_size - sizeof(msg->hdr);
	if (msg->len) {
		msg->payload = malloc(msg->len);
		if (!msg->payload) {
			r = -ENOMEM;
			goto fail;
		}
		r = read_full(sock, msg->payload, msg->len, true, deadline);
		if (r < 0)
			goto fail;
	}
	if (dropped || ctrunc || msg->nfds > max_fds) {
		/* The message was consumed whole, so the stream is in step;
		 * the caller answers with an error reply. */
		close_fds(msg->fds, msg->nfds);
		msg->nfds = 0;
		return -EBADMSG;
	}
	return 0;
fail:
	vfw_msg_release(msg);
	return r;
}

void vfw_msg_release(struct vfw_msg *msg)
{
	close_fds(msg->fds, msg->nfds);
	msg->nfds = 0;
	free(msg->payload);
	msg->payload = NULL;
	msg->len = 0;
}

int vfw_msg_take_fd(struct vfw_msg *msg, size_t i)
{
	int fd;

	if (i >= msg->nfds)
		return -1;
	fd = msg->fds[i];
	msg->fds[i] = -1;
	return fd;
}

/* Advance an iovec array past n sent bytes. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

int vfw_msg_send(int sock, struct vfw_header *hdr, const struct iovec *iov,
		 int iovcnt, const int *fds, size_t nfds)
{
	struct iovec vec[8];
	struct iovec *cur = vec;
	int64_t deadline = vfw_deadline_after(VFW_SEND_TIMEOUT_MS);
	int cnt;
	int64_t total = vfw__msg_vec(hdr, iov, iovcnt, nfds, vec, &cnt);
	bool fds_sent = false;

	if (total < 0)
		return (int)total;
	while (cnt > 0) {
		ssize_t n = vfw__send_some(sock, cur, cnt, fds,
					   fds_sent ? 0 : nfds);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = { .fd = sock,
						    .events = POLLOUT };
				int w = poll(&p, 1, vfw_ms_left(deadline));
				if (w < 0 && errno != EINTR)
					return -errno;
				if (w == 0)
					return -ETIMEDOUT;
				continue;
			}
			return -errno;
		}
		fds_sent = true;
		iov_advance(&cur, &cnt, (size_t)n);
	}
	return 0;
}

int vfw_send_reply(int sock, const struct vfw_header *req, const void *payload,
		   size_t len)
{
	struct vfw_header hdr = {
		.msg_id = req->msg_id,
		.command = req->command,
		.flags = VFW_FLAGS_TYPE_REPLY,
	};
	struct iovec iov = { (void *)payload, len };

	return vfw_msg_send(sock, &hdr, &iov, len ? 1 : 0, NULL, 0);
}

int vfw_send_error(int sock, const struct vfw_header *req, int err)
{
	struct vfw_header hdr = {
		.msg_id = req->msg_id,
		.command = req->command,
		.flags = VFW_FLAGS_TYPE_REPLY | VFW_FLAGS_ERROR,
		.error = (uint32_t)(err < 0 ? -err : err),
	};

	return vfw_msg_send(sock, &hdr, NULL, 0, NULL, 0);
}
