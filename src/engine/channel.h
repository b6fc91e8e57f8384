/* SPDX-License-Identifier: MIT */
/*
 * Migration channels: where a stream goes (source) or comes from
 * (destination). URI forms:
 *     tcp:HOST:PORT     HOST a name, an IPv4 address or [IPv6]; PORT 0-65535
 *     unix:PATH         a UNIX stream socket
 *     file:PATH         a file (save/restore)
 *
 * A channel exposes a struct vfmig_io for the stream in one direction: the
 * source writes it, the destination reads it. Socket channels also carry a
 * RETURN PATH on the same connection in the other direction: small framed
 * messages from the destination to the source (switchover acknowledgement,
 * "resumed", "failed"). A file channel has NO return path: the return-path
 * calls give -ENOTSUP on it, and a caller restoring from a file decides
 * switchover and success on its own.
 *
 * Return-path frame (big-endian): type u16, length u32 (<= VFMIG_RP_MAX),
 * payload, CRC-32 (zlib) u32 over type, length and payload.
 *   SWITCHOVER_ACK  payload: device id (UTF-8, no NUL; empty: all devices)
 *   RESUMED         payload: u64 destination CLOCK_REALTIME in ns
 *   FAILED          payload: a message (UTF-8, no NUL)
 *   VERIFIED        payload: the verifier's verdict (UTF-8, no NUL; "ok"
 *                   when it passed), sent after the guest resumed when the
 *                   destination verifies then (RESUMED's verdict "pending")
 *   SYNCED          payload: the value of a STREAM_INFO "sync" key the
 *                   destination has just read: everything before it is
 *                   applied
 *   COMMIT          no payload; the one frame going the OTHER way, source
 *                   to destination, after the stream's END: the source read
 *                   RESUMED and will never run the VM again, so the
 *                   destination may start its guest (docs/migration.md,
 *                   "Switchover acknowledgement")
 *   WAIT_COMMIT     no payload: the destination read the source's
 *                   announcement of COMMIT (STREAM_INFO "resume-commit")
 *                   and will wait for it; sent only to a source that
 *                   announced it
 *   STARTED         payload: u64 destination CLOCK_REALTIME in ns when its
 *                   guest started (or settled paused) after COMMIT
 *
 * No call blocks forever unless asked to: socket I/O waits at most the
 * channel's timeout for progress (vfmig_chan_set_timeout, default 30 s) and
 * gives -ETIMEDOUT (a return-path frame must also be complete within that
 * time of its first byte, docs/io-model.md); a dead peer gives -EPIPE or -ECONNRESET (SIGPIPE is
 * never raised). A stream read that meets the peer's close returns fewer
 * bytes (end of input), as vfmig_io promises; the stream reader reports the
 * truncation.
 *
 * Errors are negative errno values; functions taking err/errlen also write
 * a message naming what failed there (err may be NULL). A channel is used
 * by one thread at a time.
 */
#ifndef VFMIG_ENGINE_CHANNEL_H
#define VFMIG_ENGINE_CHANNEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/io.h"

enum vfmig_chan_kind {
	VFMIG_CHAN_TCP = 1,
	VFMIG_CHAN_UNIX = 2,
	VFMIG_CHAN_FILE = 3,
};

#define VFMIG_CHAN_MAX_PATH 4096
#define VFMIG_CHAN_UNIX_MAX_PATH 107 /* sun_path without the NUL */

struct vfmig_chan_uri {
	enum vfmig_chan_kind kind;
	char host[256];                  /* TCP: without brackets */
	uint16_t port;                   /* TCP; 0 only makes sense to listen */
	char path[VFMIG_CHAN_MAX_PATH];  /* UNIX, FILE */
};

/*
 * Parses uri into *out. Returns 0 or -EINVAL with a message naming the bad
 * part (scheme, host, port, path).
 */
int vfmig_chan_parse_uri(const char *uri, struct vfmig_chan_uri *out,
			 char *err, size_t errlen);

struct vfmig_chan;
struct vfmig_chan_listener;

/*
 * Source side: connects to a socket URI (retrying a refused or missing
 * endpoint until timeout_ms has passed; negative: forever) or creates a
 * file. A file is written under a temporary name beside it,
 * "PATH.tmp.PID" (through a symbolic link: beside the file it names), and
 * takes its name only at vfmig_chan_commit(); closing the channel without
 * a commit removes the temporary, so PATH is either untouched or holds
 * the whole stream. A PATH that exists and is not a regular file (a FIFO,
 * /dev/null) is written in place instead. Returns 0 and *out, or -EINVAL
 * (bad URI), -ETIMEDOUT, the errno of socket/connect/open, -ENOMEM.
 */
int vfmig_chan_connect(const char *uri, int timeout_ms, struct vfmig_chan **out,
		       char *err, size_t errlen);

/*
 * Destination side, in two steps so that a caller can learn the port
 * before the source connects: listen (TCP port 0 picks a free port; a
 * stale UNIX socket file at PATH is replaced), then accept. File URIs are
 * refused here (-EINVAL): use vfmig_chan_open_incoming.
 */
int vfmig_chan_listen(const char *uri, struct vfmig_chan_listener **out,
		      char *err, size_t errlen);
/* As vfmig_chan_listen; a unix: socket file gets exactly mode (0: 0600),
 * in a directory made 0700 when missing (a directory every user may write,
 * not sticky, is refused: -EACCES). mode does nothing for tcp:. */
int vfmig_chan_listen_mode(const char *uri, unsigned int mode,
			   struct vfmig_chan_listener **out, char *err,
			   size_t errlen);
/* The bound TCP port (0 for UNIX). */
uint16_t vfmig_chan_listener_port(const struct vfmig_chan_listener *l);
/* Waits up to timeout_ms (negative: forever) for one connection. Returns 0
 * and *out, -ETIMEDOUT, or the errno of accept. The listener stays open. */
int vfmig_chan_accept(struct vfmig_chan_listener *l, int timeout_ms,
		      struct vfmig_chan **out, char *err, size_t errlen);
/* Closes the listener and removes its UNIX socket file. NULL is fine. */
void vfmig_chan_listener_close(struct vfmig_chan_listener *l);

/* Destination convenience: file URI -> open for reading; socket URI ->
 * listen, accept one connection within timeout_ms, close the listener. */
int vfmig_chan_open_incoming(const char *uri, int timeout_ms,
			     struct vfmig_chan **out, char *err, size_t errlen);

/*
 * A channel on an already-connected stream socket fd (UNIX or TCP, as
 * kind says), for the source (source true) or the destination end. The
 * channel owns fd from the call on (closed on failure too). -EINVAL for a
 * file kind or fd < 0, -ENOMEM.
 */
int vfmig_chan_adopt_fd(int fd, bool source, enum vfmig_chan_kind kind,
			struct vfmig_chan **out);

/*
 * The stream I/O, owned by the channel (do not vfmig_io_close it). On a
 * source only writes work, on a destination only reads (else -EBADF).
 * Socket writes are buffered: vfmig_io_flush pushes them out.
 */
struct vfmig_io *vfmig_chan_io(struct vfmig_chan *c);

enum vfmig_chan_kind vfmig_chan_kind(const struct vfmig_chan *c);

struct vfmig_stream_writer;

/*
 * Sets up w, a stream writer on c, for how RAM pages move fastest on c's
 * kind (docs/benchmarks.md): over TCP, the page checksums on a thread of
 * the writer's own while the calling thread sends; over UNIX, page data
 * spliced from the guest's memfd; a file as it is. The bytes of the stream
 * are the same either way.
 */
void vfmig_chan_tune_writer(const struct vfmig_chan *c, struct vfmig_stream_writer *w);

bool vfmig_chan_has_return_path(const struct vfmig_chan *c);

/* Timeout for each wait of socket I/O, in ms; negative: none. Default 30000. */
void vfmig_chan_set_timeout(struct vfmig_chan *c, int timeout_ms);

/*
 * Destination socket: the stream bytes c receives are added to *shared,
 * and a read whose wait times out goes on waiting while *shared grew
 * during that wait. Give the connections of one migration (its main
 * stream and its RAM channels) the same counter: while RAM flows on its
 * own connections the main stream may carry nothing for longer than the
 * timeout (pre-copy at a low bandwidth limit), and that is no stall; the
 * timeout fires once no connection has received anything for that long.
 * NULL: off (the default). shared must outlive the channel's reads.
 */
void vfmig_chan_share_progress(struct vfmig_chan *c, _Atomic uint64_t *shared);

/*
 * Source socket: every stream write first takes its bytes from p (a
 * bandwidth limit, engine/converge.h; NULL: none), so the channel sends
 * no faster than p's rate. p must outlive the channel's writes.
 */
struct vfmig_pace;
void vfmig_chan_set_pace(struct vfmig_chan *c, struct vfmig_pace *p);

/* Source socket: a send waited the whole timeout without the peer taking
 * a byte (the write failed with -ETIMEDOUT). NULL: false. */
bool vfmig_chan_stalled(const struct vfmig_chan *c);

/*
 * Source: the stream is complete. A file is synced (fsync), closed and
 * renamed onto its path, then its directory is synced; a socket is
 * flushed. Returns 0, the stream I/O's sticky error, or the errno of
 * fsync/close/rename with err naming the file. After a failed commit the
 * file is left as it was (close removes the temporary). Destination: 0.
 */
int vfmig_chan_commit(struct vfmig_chan *c, char *err, size_t errlen);

/*
 * Socket channels: shut the connection down in both directions (or, with
 * read_only, only for reading: the return path still sends), so that a
 * thread blocked on it returns at once (end of input, or -EPIPE for a
 * write) and the peer sees it closed. The one exception to "one thread at
 * a time": it may be called while another thread uses c. Files: no-op.
 */
void vfmig_chan_shutdown(struct vfmig_chan *c, bool read_only);

/*
 * Flushes (source socket) and closes the channel and frees it; a file
 * source that was not committed loses its temporary. Returns the stream
 * I/O's sticky error, else the flush/close result. NULL is fine.
 */
int vfmig_chan_close(struct vfmig_chan *c);

/* ---- return path (socket channels only) ---- */

#define VFMIG_RP_MAX 4096 /* largest payload */
/* Largest frame: header (6), payload, CRC (4). The source reassembles one
 * frame at a time in a buffer of this size. */
#define VFMIG_RP_FRAME_MAX (6 + VFMIG_RP_MAX + 4)

enum vfmig_rp_type {
	VFMIG_RP_SWITCHOVER_ACK = 1,
	VFMIG_RP_RESUMED = 2,
	VFMIG_RP_FAILED = 3,
	VFMIG_RP_VERIFIED = 4,
	VFMIG_RP_SYNCED = 5,
	VFMIG_RP_COMMIT = 6, /* source -> destination */
	VFMIG_RP_WAIT_COMMIT = 7,
	VFMIG_RP_STARTED = 8,
};

struct vfmig_rp_msg {
	enum vfmig_rp_type type;
	char text[VFMIG_RP_MAX + 1]; /* ACK: device id ("" = all); FAILED:
				      * message; RESUMED, VERIFIED: verdict
				      * (may be ""); SYNCED: the sync value */
	uint64_t timestamp_ns;       /* RESUMED, STARTED */
};

/* Destination: send one message; source: only COMMIT (after the stream's
 * END; the stream is flushed first). Returns 0 once the whole frame is in
 * the socket, -ENOTSUP (file channel, or a type the other side sends),
 * -EINVAL (unknown type, text too long), or I/O errors: then not all of
 * the frame went out, so the peer cannot read a whole one. */
int vfmig_chan_rp_send(struct vfmig_chan *c, const struct vfmig_rp_msg *m);

/* Destination helpers building the message. */
int vfmig_chan_rp_ack(struct vfmig_chan *c, const char *device_id);
int vfmig_chan_rp_resumed(struct vfmig_chan *c, uint64_t timestamp_ns);
int vfmig_chan_rp_failed(struct vfmig_chan *c, const char *message);

/*
 * Source: flush the stream (unless sending has already failed: what the
 * destination sent before it went can still be read), then wait up to
 * timeout_ms (negative: forever; 0: only look) for one whole message.
 * Frames may arrive in any number of pieces: what a call read of an
 * incomplete frame is kept in the channel's reassembly buffer (one frame,
 * VFMIG_RP_FRAME_MAX bytes) for the next call, so a timeout never loses
 * bytes and a frame that trickles in over many zero-timeout polls comes out
 * whole. Returns 0 and *m, or:
 *   -ETIMEDOUT   no whole message yet (err says whether part of one came)
 *   -ECONNRESET  the peer closed or died (mid-frame: err says so)
 *   -EBADMSG     bad checksum, type or payload (that frame is dropped, the
 *                next one can be read), or a length above VFMIG_RP_MAX
 *   -EPROTO      a frame began more than the channel's timeout ago and is
 *                still incomplete: the peer stalls or trickles mid-frame
 *   -ENOTSUP     file channel
 * A destination channel reads the source's frames the same way, after the
 * stream's END: only COMMIT is valid there (any other type: -EBADMSG), as
 * COMMIT is not on a source.
 * After a length above the limit or a stalled frame the return path is
 * out of step for good: every later call gives the same error.
 */
int vfmig_chan_rp_recv(struct vfmig_chan *c, struct vfmig_rp_msg *m,
		       int timeout_ms, char *err, size_t errlen);

/* "SWITCHOVER_ACK", "RESUMED", "FAILED", "VERIFIED", "SYNCED", "COMMIT"
 * or "UNKNOWN". */
const char *vfmig_rp_type_name(enum vfmig_rp_type t);

#endif
