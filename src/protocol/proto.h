/* SPDX-License-Identifier: MIT */
/*
 * Shared vfio-user protocol code: message framing with fd passing, header
 * validation, capability JSON, bounds arithmetic and the logging shim.
 *
 * Internal to vfmig: compiled into both libraries with hidden visibility.
 * Its names carry the prefix vfw_ ("vfmig wire"), never another project's.
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure, like the public APIs.
 */
#ifndef VFMIG_PROTOCOL_PROTO_H
#define VFMIG_PROTOCOL_PROTO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "wire.h"

/* Largest message either side accepts: the largest data transfer we allow
 * plus room for any fixed request/reply header. Anything larger is refused
 * before its payload is read. */
#define VFW_MSG_OVERHEAD 64u
#define VFW_MAX_FDS_PER_MSG 16u /* what our receive buffers hold */
/* A message, once its first byte arrived, must be whole within this time,
 * however its sender paces it; else the peer is dropped. */
#define VFW_MSG_PART_TIMEOUT_MS 10000
/* The blocking vfw_msg_send() gives up after this long without room. */
#define VFW_SEND_TIMEOUT_MS 10000

/*
 * A listening AF_UNIX stream socket at path that accepts connections from
 * the moment the file appears (bound under a temporary name, renamed after
 * listen). A stale socket file at path is removed; any other file there
 * gives -EADDRINUSE. type_flags: extra socket() type flags (SOCK_NONBLOCK);
 * SOCK_CLOEXEC is always set. Returns the fd or -EINVAL (empty or too long
 * path), or the errno of socket/bind/listen/rename.
 */
int vfw_unix_listen(const char *path, int backlog, int type_flags);

/* Permission bits of a listening socket file when the caller gives none. */
#define VFW_SOCK_MODE_DEFAULT 0600u

/*
 * As vfw_unix_listen, with the socket file's permission bits: exactly mode
 * (0: VFW_SOCK_MODE_DEFAULT) whatever the umask, and never wider at any
 * moment. The directory of path is created (with missing parents) 0700
 * when it does not exist; one that every user may write and that is not
 * sticky is refused with -EACCES. msg (may be NULL) gets the reason of a
 * failure, or on success a warning ("" when none): a directory its group
 * may write, or owned by another user than us or root. -EINVAL also for
 * mode bits outside 0777; -ENOTDIR when the directory is a file.
 * (vfw_unix_listen is this with mode 0 and no msg.)
 */
int vfw_unix_listen_mode(const char *path, int backlog, int type_flags,
			 unsigned int mode, char *msg, size_t msglen);

/* Socket buffers asked for on connections that carry bulk data (a VMM's
 * device socket and data channel, a UNIX migration channel), for
 * throughput only: the kernel caps the request at net.core.wmem_max and
 * rmem_max. */
#define VFW_SOCK_BUF_BYTES (4 << 20)

/* Asks for VFW_SOCK_BUF_BYTES of send and receive buffer on fd (best
 * effort: a refusal leaves the kernel's defaults). */
void vfw_grow_socket_buffers(int fd);

/* Writes up to n bytes to out, without blocking and without raising
 * SIGPIPE: splice()d from pipe_rd, or write()n from bounce when that is
 * not NULL. The count, or -1 with errno (EPIPE for a peer that is gone). */
ssize_t vfw_put_nosigpipe(int pipe_rd, const void *bounce, int out, size_t n);

/* The effective uid of the process at the other end of the connected UNIX
 * socket fd, from SO_PEERCRED (taken at connect). 0 or -errno. */
int vfw_peer_uid(int fd, uid_t *uid);

/* True when uid is one of the n uids, or n is 0 (no check). */
bool vfw_uid_allowed(const uid_t *uids, size_t n, uid_t uid);

/* ------------------------------------------------------------------ */
/* Logging through the caller                                          */
/* ------------------------------------------------------------------ */

/* Levels follow syslog: 3 error, 4 warning, 6 info, 7 debug. */
typedef void (*vfw_log_fn)(void *priv, int level, const char *msg);

struct vfw_logger {
	vfw_log_fn fn;
	void *priv;
	int level; /* messages above this level are dropped */
};

void vfw_log(const struct vfw_logger *lg, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define VFW_LOG_ERR 3
#define VFW_LOG_WARNING 4
#define VFW_LOG_INFO 6
#define VFW_LOG_DEBUG 7

/* ------------------------------------------------------------------ */
/* Bounds arithmetic                                                   */
/* ------------------------------------------------------------------ */

/* True when [off, off + count) lies inside [0, size) without overflow. */
static inline bool vfw_range_ok(uint64_t off, uint64_t count, uint64_t size)
{
	return off <= size && count <= size - off;
}

/* True when [a, a + alen) lies inside [b, b + blen); no overflow. */
static inline bool vfw_range_within(uint64_t a, uint64_t alen, uint64_t b,
				    uint64_t blen)
{
	if (alen != 0 && a + alen - 1 < a)
		return false;
	if (blen != 0 && b + blen - 1 < b)
		return false;
	return a >= b && vfw_range_ok(a - b, alen, blen);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

struct vfw_msg {
	struct vfw_header hdr;
	uint8_t *payload; /* malloc'd, hdr.msg_size - 16 bytes; NULL if none */
	size_t len;       /* payload length */
	int fds[VFW_MAX_FDS_PER_MSG];
	size_t nfds;
};

/* Human-readable name of a command number ("REGION_READ"), or "UNKNOWN". */
const char *vfw_command_name(unsigned int cmd);

/*
 * Check a header on its own: size within [16, max_size], flag bits known,
 * a type of command or reply. Returns 0 or -EINVAL/-EMSGSIZE. Pure; used by
 * vfw_msg_recv and unit-tested directly.
 */
int vfw_header_check(const struct vfw_header *hdr, size_t max_size);

/*
 * Receive one whole message from a stream socket.
 *
 * Reads the header (and any SCM_RIGHTS fds that came with it), checks it with
 * vfw_header_check(max_size), then reads exactly msg_size - 16 payload bytes.
 * If more than max_fds descriptors arrived they are all closed and -EBADMSG
 * is returned after the payload was consumed, so the stream stays in step
 * (the caller answers with an error reply; msg->hdr is valid). Returns 0
 * with *msg filled (free with vfw_msg_release), -ECONNRESET on orderly
 * close before a header,
 * -EPIPE when the peer closes mid-message, -ETIMEDOUT when it stalls for
 * VFW_MSG_PART_TIMEOUT_MS inside a message, -EMSGSIZE / -EINVAL for a bad
 * header (the stream cannot be trusted afterwards: close it), or another
 * negative errno from recvmsg. Retries EINTR. Works on blocking and
 * non-blocking sockets; before the first byte it waits without a limit,
 * after it the whole message must arrive within VFW_MSG_PART_TIMEOUT_MS.
 * For tests and helpers; the libraries use struct vfw_rx.
 */
int vfw_msg_recv(int sock, struct vfw_msg *msg, size_t max_size,
		 size_t max_fds);

/* Close every fd still owned by msg and free its payload. Idempotent. */
void vfw_msg_release(struct vfw_msg *msg);

/* Take ownership of msg->fds[i]; returns it or -1 if absent. */
int vfw_msg_take_fd(struct vfw_msg *msg, size_t i);

/*
 * Send one message: a 16-byte header (msg_size filled in here from the iov
 * lengths) followed by the iov pieces, with nfds descriptors attached to the
 * first byte. Handles partial writes and EINTR; never raises SIGPIPE.
 * Returns 0, or a negative errno (-EPIPE for a gone peer, -ETIMEDOUT when
 * the socket took no more for VFW_SEND_TIMEOUT_MS: the stream is torn).
 * For tests and helpers; the libraries use struct vfw_tx.
 */
int vfw_msg_send(int sock, struct vfw_header *hdr, const struct iovec *iov,
		 int iovcnt, const int *fds, size_t nfds);

/* Convenience: reply to req with payload (may be NULL/0) and no fds. */
int vfw_send_reply(int sock, const struct vfw_header *req, const void *payload,
		   size_t len);

/* Convenience: header-only error reply carrying errno err (positive). */
int vfw_send_error(int sock, const struct vfw_header *req, int err);

/* ------------------------------------------------------------------ */
/* Connections: non-blocking receive and bounded send queue (conn.c)   */
/* ------------------------------------------------------------------ */

/* Deadlines are CLOCK_MONOTONIC milliseconds; VFW_FOREVER never comes. */
#define VFW_FOREVER INT64_MAX
int64_t vfw_now_ms(void);
/* now + ms; VFW_FOREVER for ms < 0. */
int64_t vfw_deadline_after(int ms);
/* What is left of deadline as a poll() timeout: -1 for VFW_FOREVER, 0
 * once it passed. */
int vfw_ms_left(int64_t deadline);

/*
 * Incremental receiver: each vfw_rx_poll() reads what the socket has of
 * the next message, without waiting, one part (header, then payload) per
 * recvmsg so that fds always land with the message they came with.
 */
struct vfw_rx {
	struct vfw_msg msg; /* being assembled */
	size_t got;         /* its bytes so far, header included */
	int64_t first_ms;   /* when its first byte came */
	size_t dropped;     /* fds beyond VFW_MAX_FDS_PER_MSG, closed */
	bool ctrunc;
};

void vfw_rx_init(struct vfw_rx *rx);
/* Forget a partial message (its fds are closed). */
void vfw_rx_reset(struct vfw_rx *rx);
/* The begun message's deadline (first byte + VFW_MSG_PART_TIMEOUT_MS), or
 * VFW_FOREVER when none has begun. */
int64_t vfw_rx_deadline(const struct vfw_rx *rx);

/*
 * Returns 1 with a whole message in *out (release it), 0 when it is not
 * complete yet (call again when the socket is readable), or a negative
 * errno with the partial message dropped: -ECONNRESET (closed before a
 * header), -EPIPE (closed inside one), -ETIMEDOUT (begun more than
 * VFW_MSG_PART_TIMEOUT_MS ago and still not whole), -EMSGSIZE/-EINVAL (bad
 * header: close the stream), -ENOMEM, or the recvmsg errno. More fds than
 * max_fds: -EBADMSG after the message was consumed whole, with out->hdr
 * valid for an error reply and no fds kept.
 */
int vfw_rx_poll(int sock, struct vfw_rx *rx, size_t max_size, size_t max_fds,
		struct vfw_msg *out);

/*
 * Send queue with a byte limit. vfw_tx_send() writes a message straight to
 * the socket when nothing is queued and the socket takes it; whatever it
 * cannot take now is copied into the queue (fds duplicated, sent with the
 * message's first byte). It never waits.
 */
struct vfw_tx_item;
struct vfw_tx {
	struct vfw_tx_item *head, *tail;
	size_t bytes; /* queued */
	size_t limit; /* most bytes queued at once */
};

void vfw_tx_init(struct vfw_tx *tx, size_t limit);
/* Drop everything queued (the connection is going away). */
void vfw_tx_clear(struct vfw_tx *tx);
bool vfw_tx_pending(const struct vfw_tx *tx);
/* Returns 0 (sent or queued), -ENOBUFS (the queue would pass its limit:
 * the peer does not read; drop it), -EINVAL, -EMSGSIZE, -ENOMEM, the dup
 * or sendmsg errno (-EPIPE: peer gone). msg_size is filled in. */
int vfw_tx_send(int sock, struct vfw_tx *tx, struct vfw_header *hdr,
		const struct iovec *iov, int iovcnt, const int *fds,
		size_t nfds);
/* Send what is queued, without waiting: 0 when all went, -EAGAIN when
 * some is left (wait for POLLOUT), or the sendmsg errno. */
int vfw_tx_flush(int sock, struct vfw_tx *tx);

/* For msg.c and conn.c: lay out header + iov in vec[] (at most 7 pieces),
 * fill hdr->msg_size; returns the total length or -EINVAL/-EMSGSIZE. And
 * one sendmsg of iov with nfds fds, never waiting, retrying EINTR (-1 with
 * errno set, as sendmsg). */
int64_t vfw__msg_vec(struct vfw_header *hdr, const struct iovec *iov,
		     int iovcnt, size_t nfds, struct iovec vec[8], int *cnt);
ssize_t vfw__send_some(int sock, const struct iovec *iov, int iovcnt,
		       const int *fds, size_t nfds);

/* ------------------------------------------------------------------ */
/* VERSION and capabilities                                            */
/* ------------------------------------------------------------------ */

struct vfw_caps {
	uint32_t max_msg_fds;
	uint64_t max_data_xfer_size;
	uint64_t max_dma_maps;
	uint64_t pgsizes;
	bool twin_socket;         /* twin_socket.supported */
	bool write_multiple;      /* write_multiple */
	bool has_migration;       /* legacy "migration" object was present */
	uint64_t migration_pgsize; /* its pgsize, 0 if absent */
	/* vfmig extension "vfmig_mig_info": {"version": N}: size estimates
	 * (docs/protocol-extensions.md). 0 when absent. */
	uint32_t mig_info_version;
	/* vfmig extension "vfmig_data_channel": {"version": N}: migration
	 * data on a socket of its own. 0 when absent. */
	uint32_t data_channel_version;
};

/* Fill caps with the specification's defaults for absent keys. */
void vfw_caps_defaults(struct vfw_caps *caps);

/*
 * Parse the capabilities JSON text of a VERSION payload (json may lack the
 * trailing NUL; len excludes it). Absent keys keep the defaults; unknown keys
 * are ignored; the legacy "migration" object is accepted. Returns 0 or
 * -EINVAL with a message naming the offending key written to err.
 */
int vfw_caps_parse(const char *json, size_t len, struct vfw_caps *caps,
		   char *err, size_t errlen);

/* Render caps as {"capabilities":{...}}; returns malloc'd text or NULL. */
char *vfw_caps_format(const struct vfw_caps *caps, bool include_migration);

/*
 * Split a VERSION payload into major, minor and capabilities. A payload of
 * exactly 4 bytes means no JSON (caps stay default). JSON must be
 * NUL-terminated inside the payload and contain no earlier NUL.
 * Returns 0 or -EINVAL with err filled.
 */
int vfw_version_parse(const uint8_t *payload, size_t len, uint16_t *major,
		      uint16_t *minor, struct vfw_caps *caps, char *err,
		      size_t errlen);

/*
 * Build a VERSION payload: 4-byte version + JSON + NUL. Returns malloc'd
 * buffer (length in *len) or NULL on allocation failure.
 */
uint8_t *vfw_version_build(uint16_t major, uint16_t minor,
			   const struct vfw_caps *caps, bool include_migration,
			   size_t *len);

#endif /* VFMIG_PROTOCOL_PROTO_H */
