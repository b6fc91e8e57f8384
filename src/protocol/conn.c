/* SPDX-License-Identifier: MIT */
/*
 * Non-blocking message I/O for one connection (proto.h, "Connections"): an
 * incremental receiver that assembles one message from whatever bytes are
 * there, and a bounded send queue that takes what the socket cannot take
 * now. Neither ever waits; deadlines are the caller's, except the one a
 * begun message carries: it must be whole within VFW_MSG_PART_TIMEOUT_MS of
 * its first byte, however the peer trickles it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

int64_t vfw__msg_vec(struct vfw_header *hdr, const struct iovec *iov,
		     int iovcnt, size_t nfds, struct iovec vec[8], int *cnt)
{
	uint64_t total = sizeof(*hdr);

	if (iovcnt < 0 || iovcnt > 7 || nfds > VFW_MAX_FDS_PER_MSG)
		return -EINVAL;
	*cnt = 1;
	for (int i = 0; i < iovcnt; i++) {
		total += iov[i].iov_len;
		if (iov[i].iov_len)
			vec[(*cnt)++] = iov[i];
	}
	if (total > UINT32_MAX)
		return -EMSGSIZE;
	hdr->msg_size = (uint32_t)total;
	vec[0] = (struct iovec){ hdr, sizeof(*hdr) };
	return (int64_t)total;
}

int64_t vfw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vfw_deadline_after(int ms)
{
	return ms < 0 ? VFW_FOREVER : vfw_now_ms() + ms;
}

int vfw_ms_left(int64_t deadline)
{
	int64_t left;

	if (deadline == VFW_FOREVER)
		return -1;
	left = deadline - vfw_now_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* ---- receiving ---- */

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

void vfw_rx_init(struct vfw_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
	for (size_t i = 0; i < VFW_MAX_FDS_PER_MSG; i++)
		rx->msg.fds[i] = -1;
}

void vfw_rx_reset(struct vfw_rx *rx)
{
	vfw_msg_release(&rx->msg);
	vfw_rx_init(rx);
}

int64_t vfw_rx_deadline(const struct vfw_rx *rx)
{
	return rx->got ? rx->first_ms + VFW_MSG_PART_TIMEOUT_MS : VFW_FOREVER;
}

static void take_fds(struct vfw_rx *rx, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (rx->msg.nfds < VFW_MAX_FDS_PER_MSG)
				rx->msg.fds[rx->msg.nfds++] = fd;
			else {
				close(fd);
				rx->dropped++;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		rx->ctrunc = true;
}

/* One recvmsg of at most the rest of the current part: the header, then
 * the payload, so that fds always belong to the message being read. */
static ssize_t read_part(int sock, struct vfw_rx *rx)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VFW_MAX_FDS_PER_MSG)];
		struct cmsghdr align;
	} ctl;
	const size_t hsz = sizeof(rx->msg.hdr);
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (rx->got < hsz) {
		iov = (struct iovec){ (uint8_t *)&rx->msg.hdr + rx->got,
				      hsz - rx->got };
	} else {
		iov = (struct iovec){ rx->msg.payload + (rx->got - hsz),
				      rx->msg.len - (rx->got - hsz) };
	}
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		take_fds(rx, &mh);
	return n;
}

/* The header is complete: check it and make room for the payload. */
static int header_done(struct vfw_rx *rx, size_t max_size)
{
	int r = vfw_header_check(&rx->msg.hdr, max_size);

	if (r < 0)
		return r;
	rx->msg.len = rx->msg.hdr.msg_size - sizeof(rx->msg.hdr);
	if (rx->msg.len) {
		rx->msg.payload = malloc(rx->msg.len);
		if (!rx->msg.payload)
			return -ENOMEM;
	}
	return 0;
}

int vfw_rx_poll(int sock, struct vfw_rx *rx, size_t max_size, size_t max_fds,
		struct vfw_msg *out)
{
	const size_t hsz = sizeof(rx->msg.hdr);
	int r;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < VFW_MAX_FDS_PER_MSG; i++)
		out->fds[i] = -1;
	for (;;) {
		if (rx->got >= hsz && rx->got == hsz + rx->msg.len)
			break; /* whole */
		ssize_t n = read_part(sock, rx);
		if (n == 0) {
			r = rx->got ? -EPIPE : -ECONNRESET;
			goto fail;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (rx->got && vfw_now_ms() >= vfw_rx_deadline(rx)) {
				r = -ETIMEDOUT;
				goto fail;
			}
			return 0;
		}
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		if (!rx->got)
			rx->first_ms = vfw_now_ms();
		rx->got += (size_t)n;
		if (rx->got == hsz) {
			r = header_done(rx, max_size);
			if (r < 0)
				goto fail;
		}
	}
	*out = rx->msg;
	r = (rx->dropped || rx->ctrunc || out->nfds > max_fds) ? -EBADMSG : 1;
	if (r < 0) {
		/* Consumed whole: the stream is in step, out->hdr is valid
		 * for an error reply; the fds are not kept. */
		close_all(out->fds, out->nfds);
		out->nfds = 0;
		for (size_t i = 0; i < VFW_MAX_FDS_PER_MSG; i++)
			out->fds[i] = -1;
	}
	vfw_rx_init(rx); /* ownership went to out */
	return r;
fail:
	vfw_rx_reset(rx);
	return r;
}

/* ---- sending ---- */

struct vfw_tx_item {
	struct vfw_tx_item *next;
	size_t len, off;
	int fds[VFW_MAX_FDS_PER_MSG];
	size_t nfds; /* sent with the first byte, then closed */
	uint8_t bytes[];
};

void vfw_tx_init(struct vfw_tx *tx, size_t limit)
{
	memset(tx, 0, sizeof(*tx));
	tx->limit = limit;
}

static void item_free(struct vfw_tx_item *it)
{
	close_all(it->fds, it->nfds);
	free(it);
}

void vfw_tx_clear(struct vfw_tx *tx)
{
	while (tx->head) {
		struct vfw_tx_item *it = tx->head;
		tx->head = it->next;
		item_free(it);
	}
	tx->tail = NULL;
	tx->bytes = 0;
}

bool vfw_tx_pending(const struct vfw_tx *tx)
{
	return tx->head != NULL;
}

ssize_t vfw__send_some(int sock, const struct iovec *iov, int iovcnt,
		       const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VFW_MAX_FDS_PER_MSG)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov,
			     .msg_iovlen = (size_t)iovcnt };
	ssize_t n;

	if (nfds) {
		memset(ctl.buf, 0, sizeof(ctl.buf));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n;
}

int vfw_tx_flush(int sock, struct vfw_tx *tx)
{
	while (tx->head) {
		struct vfw_tx_item *it = tx->head;
		struct iovec iov = { it->bytes + it->off, it->len - it->off };
		ssize_t n = vfw__send_some(sock, &iov, 1, it->fds,
				      it->off ? 0 : it->nfds);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK)
				       ? -EAGAIN
				       : -errno;
		if (n > 0 && it->nfds) { /* they went with the first byte */
			close_all(it->fds, it->nfds);
			it->nfds = 0;
		}
		it->off += (size_t)n;
		tx->bytes -= (size_t)n;
		if (it->off == it->len) {
			tx->head = it->next;
			if (!tx->head)
				tx->tail = NULL;
			item_free(it);
		}
	}
	return 0;
}

/* Queue bytes [skip, total) of the message; fds only if none went yet. */
static int queue_rest(struct vfw_tx *tx, const struct iovec *vec, int cnt,
		      size_t total, size_t skip, const int *fds, size_t nfds)
{
	struct vfw_tx_item *it;
	size_t at = 0, len = total - skip;

	if (tx->bytes + len > tx->limit)
		return -ENOBUFS;
	it = malloc(sizeof(*it) + len);
	if (!it)
		return -ENOMEM;
	it->next = NULL;
	it->len = len;
	it->off = 0;
	it->nfds = 0;
	for (size_t i = 0; skip == 0 && i < nfds; i++) {
		it->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
		if (it->fds[i] < 0) {
			int r = -errno;
			item_free(it);
			return r;
		}
		it->nfds++;
	}
	for (int i = 0; i < cnt; i++) {
		size_t l = vec[i].iov_len, from = 0;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		from = skip;
		skip = 0;
		memcpy(it->bytes + at, (uint8_t *)vec[i].iov_base + from, l - from);
		at += l - from;
	}
	if (tx->tail)
		tx->tail->next = it;
	else
		tx->head = it;
	tx->tail = it;
	tx->bytes += len;
	return 0;
}

int vfw_tx_send(int sock, struct vfw_tx *tx, struct vfw_header *hdr,
		const struct iovec *iov, int iovcnt, const int *fds,
		size_t nfds)
{
	struct iovec vec[8];
	int cnt;
	ssize_t n = 0;
	int64_t total = vfw__msg_vec(hdr, iov, iovcnt, nfds, vec, &cnt);

	if (total < 0)
		return (int)total;
	/* Straight to the socket when nothing is queued before it: no copy
	 * in the common case; only what it cannot take now is queued. */
	if (!tx->head) {
		n = vfw__send_some(sock, vec, cnt, fds, nfds);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (n < 0)
			n = 0;
		if (n == total)
			return 0;
	}
	return queue_rest(tx, vec, cnt, (size_t)total, (size_t)n,
			  n ? NULL : fds, n ? 0 : nfds);
}
