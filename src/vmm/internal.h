/* SPDX-License-Identifier: MIT */
/*
 * VMM library internals: the connection object, the request/reply core and
 * the pure helpers that unit tests and the fuzz target reach directly.
 * Not installed; functions here carry the vmm_ prefix and hidden visibility.
 */
#ifndef VFMIG_VMM_INTERNAL_H
#define VFMIG_VMM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vfmig/vmm_mig.h>

#include "protocol/proto.h"
#include "protocol/tscale.h"

/* Our own transfer limit, advertised in VERSION: the most data we accept in
 * one message, and the most we send regardless of the device's limit. */
#define VMM_MAX_XFER (1u << 20)
/* Largest message we receive (header included). */
#define VMM_MAX_MSG ((size_t)VMM_MAX_XFER + VFW_MSG_OVERHEAD)
#define VMM_MAX_FDS 16u /* advertised max_msg_fds */
#define VMM_DEFAULT_CONNECT_MS 2000u
#define VMM_DEFAULT_REPLY_MS 30000
#define VMM_REGION_INFO_FIRST 512u /* first argsz for region info */
#define VMM_PROCESS_BUDGET 64 /* commands served per process() call */
/* Most bytes waiting to be sent to one device: two of the largest
 * messages. A device that lets more pile up does not read: dropped. */
#define VMM_TX_LIMIT (2 * VMM_MAX_MSG)
/* Bitmap words per DMA_LOGGING_REPORT message: the reply stays within
 * VMM_MAX_MSG with room for the headers. */
#define VMM_DMA_LOG_WORDS_PER_MSG ((VMM_MAX_XFER - 64u) / 8u)

/* ---- DMA windows (dma.c) ---- */

struct vmm_window {
	uint64_t iova;
	uint64_t size;
	uint8_t *vaddr; /* caller's mapping, or NULL */
	uint32_t prot;  /* VFMIG_VMM_DMA_* */
};

struct vmm_windows {
	struct vmm_window *w;
	size_t n, cap;
};

/* Add a window; -EINVAL (size 0, overflow, bad prot), -EEXIST (overlap),
 * -ENOMEM. */
int vmm_window_add(struct vmm_windows *ws, uint64_t iova, uint64_t size,
		   void *vaddr, uint32_t prot);
/* Index of the window exactly [iova, iova + size), or -ENOENT. */
int vmm_window_index(const struct vmm_windows *ws, uint64_t iova,
		     uint64_t size);
void vmm_window_remove_at(struct vmm_windows *ws, size_t i);
void vmm_windows_clear(struct vmm_windows *ws);

/*
 * Resolve a device access of count bytes at addr needing prot: the range
 * must lie inside one window that has prot and a vaddr. Returns the host
 * address, or NULL with *err = -EFAULT. count 0 is allowed (any address in
 * a window).
 */
uint8_t *vmm_window_resolve(const struct vmm_windows *ws, uint64_t addr,
			    uint64_t count, uint32_t prot, int *err);

/* ---- The region-based device-state interface (mig_region.c) ---- */

/* One of the four device-state regions, found by its TYPE capability. */
struct vmm_ds_region {
	bool present;
	uint32_t index;
	uint32_t flags; /* VFMIG_VMM_REGION_* */
	uint64_t size;
	/* The region's fd from the device (our dup), or -1: REGION_READ/WRITE.
	 * Accessed with pread/pwrite, never mmap: a device that truncates
	 * its memfd then gives a short read, not SIGBUS in the VMM. */
	bool has_fd;
	int fd;          /* valid when has_fd */
	uint64_t fd_off; /* the region's offset within fd */
};

/* What a repeated discovery on the same connection keeps. */
struct vmm_ds_session {
	uint32_t state;       /* shadow v2 state (VFW_MIG_STATE_*) */
	bool logging;         /* DMA logging on (LOGGING bit wanted) */
	/* saving: memory bytes fetched in this save session, and whether
	 * STOP_COPY has drained the memory region already */
	uint64_t mem_fetched;
	bool mem_done;
	/* loading: the chunk framing parsed across mig_data_write calls */
	uint8_t hdr[VFW_DS_CHUNK_HDR];
	size_t hdr_got;       /* header bytes seen of the current chunk */
	uint32_t kind;        /* VFW_DS_CHUNK_* of the current chunk */
	uint64_t left;        /* chunk bytes still to come */
	uint64_t fill;        /* bytes in the region not yet handed over */
	uint64_t mem_loaded;  /* bytes handed over by SET_BUFFER, per kind */
	uint64_t cfg_loaded;
	int load_err;         /* sticky until RESUMING is entered again */
};

/* What the library tracks for a device that speaks the region interface
 * (docs/region-interface.md, "The VMM side"). */
struct vmm_ds {
	struct vmm_ds_region ctl, cfg, mem, bmp;
	uint32_t caps;        /* VFW_DS_CAP_* read at discovery */
	/* this connection's device: a repeated discovery keeps it (tracked
	 * false after a break or reconnect) */
	struct vmm_ds_session sess;
	bool tracked;
};

/* ---- The VMM's shadow of a device (shadow.c) ---- */

#define VMM_SHADOW_MAX_REGIONS 64u
#define VMM_SHADOW_MAX_IRQS 5u /* INTX, MSI, MSIX, ERR, REQ */

struct vmm_shadow_region {
	uint32_t flags; /* VFMIG_VMM_REGION_* */
	uint64_t size;
};

struct vmm_shadow {
	bool valid;
	struct vfmig_vmm_dev_info info;
	uint32_t nregions; /* min(info.num_regions, VMM_SHADOW_MAX_REGIONS) */
	struct vmm_shadow_region regions[VMM_SHADOW_MAX_REGIONS];
	uint32_t nirqs;
	struct vfmig_vmm_irq_info irqs[VMM_SHADOW_MAX_IRQS];
	uint32_t cfg_size; /* 0: no config space shadowed */
	uint8_t *cfg;
	uint32_t msix_bar; /* valid when msix_len */
	uint64_t msix_off, msix_len;
	uint8_t *msix;
};

/* With dev->lock held: drop the shadow; after a successful DEVICE_RESET,
 * re-read config space and MSI-X table (dropped if that fails); after a
 * successful REGION_WRITE, bring the shadowed bytes it touched up to date
 * (read back from the device, or the written bytes if that fails). */
void vmm_shadow_forget(vfmig_vmm_dev *dev);
void vmm_shadow_after_reset(vfmig_vmm_dev *dev);
void vmm_shadow_note_write(vfmig_vmm_dev *dev, uint32_t index, uint64_t off,
			   const uint8_t *buf, size_t len);

/* ---- The migration data channel (datachan.c) ---- */

struct vmm_dchan {
	int fd;         /* our end; -1: none (or lost: err set) */
	bool load;      /* attached in RESUMING: we write */
	uint8_t *buf;   /* saving: one frame, what the pump hands the sink */
	uint32_t left;  /* saving: bytes of the current DATA frame to come */
	bool drained;   /* saving: the last frame was DRAINED */
	bool ended;     /* saving: END seen */
	int err;        /* the session was lost with this error; sticky
			 * until the state leaves the session */
	uint64_t bytes; /* stream bytes moved on the channel */
	bool sealed;    /* attached with VFW_DC_F_SEAL (version 2) */
	bool tail;      /* saving: the current frame is SEALED: its 4-byte
			 * checksum follows the left data bytes */
	bool whole;     /* saving: none of that frame's data read yet */
	bool have_pipe; /* pipe made (the first splice) */
	int pipe[2];    /* for splice() */
};

/* ---- The connection ---- */

struct vfmig_vmm_dev {
	pthread_mutex_t lock;
	int fd;     /* -1 when broken; non-blocking */
	/* A copy of fd readable without the lock (the I/O thread's poll):
	 * one stuck call must not make other devices' service wait. */
	_Atomic int poll_fd;
	/* Whether bytes wait in tx: the poll then also wants POLLOUT. Read
	 * without the lock, like poll_fd. */
	atomic_bool tx_waiting;
	struct vfw_rx rx; /* the message being received */
	struct vfw_tx tx; /* what the socket could not take yet */
	char *path; /* NULL when adopted */
	struct vfw_logger log;
	void (*on_dma_write)(void *priv, uint64_t iova, uint64_t len);
	void *priv;
	unsigned int connect_timeout_ms;
	int reply_timeout_ms;
	uint16_t next_id;
	struct vfmig_vmm_caps caps;
	struct vmm_windows win;
	/* The device-state interface discovery found (NULL: none yet; the
	 * raw calls then speak v2). */
	const struct vmm_mig_backend *mig;
	struct vmm_ds ds; /* when mig is &vmm_mig_region */
	struct vmm_shadow shadow; /* kept across reconnects */
	bool dc_off; /* VFMIG_VMM_OPT_NO_DATA_CHANNEL */
	int seal_index; /* vfmig_vmm_dev_set_seal; -1: off */
	struct vmm_dchan dc;
};

/*
 * One device-state interface behind the migration driver: the public
 * functions of vmm_mig.h check their arguments, take the lock and call
 * these. A new interface is one new file with one of these tables.
 * All but save are called with dev->lock held; save takes it itself
 * around each step, so that its sink runs without it.
 */
struct vmm_mig_backend {
	int iface; /* enum vfmig_vmm_mig_interface */
	int (*get_state)(vfmig_vmm_dev *dev, uint32_t *state);
	/* SET target, with the recovery rule on failure; *ended: the state
	 * the device ended in, or VFMIG_VMM_MIG_UNKNOWN. */
	int (*set_state)(vfmig_vmm_dev *dev, uint32_t target,
			 uint32_t recover, uint32_t *ended);
	int (*save)(vfmig_vmm_dev *dev, uint64_t budget,
		    vfmig_vmm_mig_sink_fn sink, vfmig_vmm_mig_moved_fn moved,
		    void *priv, struct vfmig_vmm_mig_save_result *res);
	int (*load)(vfmig_vmm_dev *dev, const uint8_t *buf, size_t len);
	int (*log_start)(vfmig_vmm_dev *dev, uint64_t page_size,
			 const struct vfmig_vmm_dma_range *ranges, uint32_t n,
			 uint64_t *chosen);
	/* bitmap holds ceil(ceil(length / page_size) / 64) words */
	int (*log_report)(vfmig_vmm_dev *dev, uint64_t iova, uint64_t length,
			  uint64_t page_size, uint64_t *bitmap);
	int (*log_stop)(vfmig_vmm_dev *dev);
	/* GET of a size-estimate feature; -EOPNOTSUPP without one */
	int (*estimate)(vfmig_vmm_dev *dev, uint32_t feature, void *out,
			size_t len);
	/* Optional: a DEVICE_RESET succeeded (state the interface tracks on
	 * our side goes back to RUNNING). */
	void (*after_reset)(vfmig_vmm_dev *dev);
};

extern const struct vmm_mig_backend vmm_mig_v2;     /* mig_v2.c */
extern const struct vmm_mig_backend vmm_mig_region; /* mig_region.c */

/* What the device's migration calls go through. */
static inline const struct vmm_mig_backend *vmm_mig(const vfmig_vmm_dev *dev)
{
	return dev->mig ? dev->mig : &vmm_mig_v2;
}

static inline bool vmm_ds_on(const vfmig_vmm_dev *dev)
{
	return dev->mig == &vmm_mig_region;
}

/* DMA logging page sizes: a power of two of at least 4 KiB. */
static inline bool vmm_log_page_ok(uint64_t ps)
{
	return ps >= 4096 && (ps & (ps - 1)) == 0;
}

/* conn.c */
int vmm_dev_alloc(const struct vfmig_vmm_dev_opts *opts, vfmig_vmm_dev **out);
void vmm_dev_free(vfmig_vmm_dev *dev);
int vmm_negotiate(vfmig_vmm_dev *dev);
/* Close the socket, forget windows; later calls give -ENOTCONN. */
void vmm_break(vfmig_vmm_dev *dev);

/* io_fds.c: the pure check of a DEVICE_GET_REGION_IO_FDS reply (buf, len
 * bytes; nfds fds came with it) to a request for index with argsz asked,
 * of a region of region_size bytes. On success returns the count and
 * fills out[i] (fd = the fd_index, to be turned into an fd by the
 * caller). -EAGAIN with *need = the argsz the device wants when the
 * reply is the header of a longer one; -E2BIG when count > max; -EPROTO
 * with *why for a reply that breaks a rule (vfmig_vmm_dev_get_region_io_fds
 * lists them). */
int vmm_parse_io_fds(const uint8_t *buf, size_t len, uint32_t index,
		     uint32_t asked, uint64_t region_size, size_t nfds,
		     struct vfmig_vmm_ioeventfd *out, size_t max,
		     uint32_t *need, const char **why);

/* call.c; all called with dev->lock held. */

/*
 * Check a received header against the request (id, cmd): it must be a reply
 * to that command with that id. Returns 0 and *dev_err = 0 (success reply)
 * or the device's negative errno (-EIO for an error reply carrying 0);
 * -EPROTO for any mismatch. Pure.
 */
int vmm_reply_check(uint16_t id, uint16_t cmd, const struct vfw_header *h,
		    int *dev_err);

/*
 * Send command cmd with payload iov[] and fds, then wait for its reply,
 * serving DMA commands that arrive first. Returns 0 with *reply owned by the
 * caller (vfw_msg_release), the device's negative errno for an error reply
 * (connection intact), or a transport/protocol error (connection broken).
 */
int vmm_call(vfmig_vmm_dev *dev, uint16_t cmd, const struct iovec *iov,
	     int iovcnt, const int *fds, size_t nfds, struct vfw_msg *reply);

/* Send a message (a reply to the device's command, or a request) through
 * the send queue, never waiting. -ENOBUFS (the device does not read) and
 * send errors break the connection. Lock held. */
int vmm_send(vfmig_vmm_dev *dev, struct vfw_header *hdr,
	     const struct iovec *iov, int iovcnt, const int *fds, size_t nfds);

/* Publish whether the send queue holds bytes (after every send/flush). */
static inline void vmm_note_tx(vfmig_vmm_dev *dev)
{
	atomic_store(&dev->tx_waiting, vfw_tx_pending(&dev->tx));
}

/* Log why, break the connection, release reply, return -EPROTO. */
int vmm_proto_error(vfmig_vmm_dev *dev, struct vfw_msg *reply,
		    const char *what);

/* Lock and check the connection; returns 0 (locked) or -ENOTCONN
 * (unlocked). */
int vmm_lock_live(vfmig_vmm_dev *dev);
void vmm_unlock(vfmig_vmm_dev *dev);

/* Largest data chunk for REGION/MIG transfers. */
size_t vmm_xfer_chunk(const vfmig_vmm_dev *dev);

/* feature.c; all called with dev->lock held. */

/* DEVICE_RESET. */
int vmm_reset_locked(vfmig_vmm_dev *dev);

/*
 * DEVICE_FEATURE flags with in_len bytes of data, argsz allowing out_cap
 * bytes of reply data. On 0, *reply is the caller's (vfw_msg_release) and
 * *data / *data_len are the reply data after the 8-byte feature header
 * (its argsz is not interpreted). Errors as vmm_call, -EINVAL (sizes),
 * -EPROTO (reply shorter than the feature header; broken).
 */
int vmm_feature_call(vfmig_vmm_dev *dev, uint32_t flags, const void *in,
		     size_t in_len, size_t out_cap, struct vfw_msg *reply,
		     const uint8_t **data, size_t *data_len);

/* As vmm_feature_call, copying the reply data to out: any amount other
 * than exactly want bytes is -EPROTO (broken). */
int vmm_feature_exact(vfmig_vmm_dev *dev, uint32_t flags, const void *in,
		      size_t in_len, void *out, size_t want);

/*
 * One MIG_DATA_READ of up to len bytes (clamped to vmm_xfer_chunk). Returns
 * the byte count n >= 0 with *reply the caller's and *data pointing at the
 * n bytes inside it; or a negative errno (no reply to release).
 */
int vmm_mig_read_msg(vfmig_vmm_dev *dev, size_t len, struct vfw_msg *reply,
		     const uint8_t **data);

/* call.c: while waiting on something else with the lock held, take
 * what the control socket has (flush the send queue, serve the device's
 * commands; a reply here is a protocol error). 0 or a negative errno
 * (broken). */
int vmm_serve_waiting(vfmig_vmm_dev *dev);

/* datachan.c, all with dev->lock held. */
enum { VMM_DC_MORE, VMM_DC_DRAINED, VMM_DC_END, VMM_DC_SEALED };
/* Forget the channel (closed, error dropped). */
void vmm_dc_close(vfmig_vmm_dev *dev);
/* A channel (or a lost one) belongs to this save / load session. */
bool vmm_dc_saving(const vfmig_vmm_dev *dev);
bool vmm_dc_loading(const vfmig_vmm_dev *dev);
/* Make a socketpair and hand one end to the device. 0, the device's
 * error (connection intact), or a transport error. */
int vmm_dc_attach(vfmig_vmm_dev *dev, bool load);
/* Saving: up to cap bytes of the stream into buf; 0 with *status
 * DRAINED (PRE_COPY, nothing now) or END (STOP_COPY, complete). A
 * failure loses the session (sticky), not the connection. */
int vmm_dc_read(vfmig_vmm_dev *dev, void *buf, size_t cap, bool stop_copy,
		int *status);
/* Saving, sealed: as vmm_dc_read, but a SEALED frame is left in the
 * socket: 0 with *status SEALED and dev->dc.left its data bytes, for
 * vmm_dc_move. Without want_sealed a SEALED frame is read like DATA (its
 * checksum dropped). */
int vmm_dc_read_sealed(vfmig_vmm_dev *dev, void *buf, size_t cap,
		       bool stop_copy, bool want_sealed, int *status);
/* Lose the session with err (sticky, the channel closed). */
int vmm_dc_fail(vfmig_vmm_dev *dev, int err, const char *what);
/* Saving: write the waiting SEALED frame's data and checksum to fd (each
 * wait for fd at most fd_ms: 0 the reply timeout, < 0 none). */
int vmm_dc_move(vfmig_vmm_dev *dev, int fd, int fd_ms);
/* Loading, sealed: one SEALED frame of len data bytes and the checksum
 * after them, from fd (waits for fd as vmm_dc_move). */
int vmm_dc_forward(vfmig_vmm_dev *dev, int fd, size_t len, int fd_ms);
/* Loading: send len bytes. 0 or -errno (the device's ERROR included). */
int vmm_dc_write(vfmig_vmm_dev *dev, const uint8_t *p, size_t len);
/* Loading: return once the device has loaded every byte sent so far (it
 * answers GET VFMIG_DATA_CHANNEL after reading its socket empty). 0 at
 * once without a loading channel. */
int vmm_dc_load_sync(vfmig_vmm_dev *dev);
/* Loading is over: EOF to the device, wait for its DONE with the count
 * of what we sent. The channel is closed either way. */
int vmm_dc_finish_load(vfmig_vmm_dev *dev);
/* After a SET: drop a channel whose session is over; when target was
 * reached and it opens a session, attach a new channel (a refusal is
 * logged and the session uses MIG_DATA_*). 0 or a transport error. */
int vmm_dc_after_set(vfmig_vmm_dev *dev, uint32_t state, bool reached);

/* regions.c, with dev->lock held: DEVICE_GET_INFO; DEVICE_GET_REGION_INFO
 * (info reset first, released on failure); REGION_READ (rbuf) or
 * REGION_WRITE (wbuf) of len bytes in chunks of vmm_xfer_chunk. */
int vmm_dev_info_locked(vfmig_vmm_dev *dev, struct vfmig_vmm_dev_info *info);
int vmm_region_info_locked(vfmig_vmm_dev *dev, uint32_t index,
			   struct vfmig_vmm_region_info *info);
int vmm_region_io_locked(vfmig_vmm_dev *dev, uint32_t index, uint64_t offset,
			 uint8_t *rbuf, const uint8_t *wbuf, size_t len);

/* irq.c, with dev->lock held: DEVICE_GET_IRQ_INFO. */
int vmm_irq_info_locked(vfmig_vmm_dev *dev, uint32_t index,
			struct vfmig_vmm_irq_info *info);

/*
 * mig_region.c: the region interface behind the migration API (its
 * operations are the table vmm_mig_region), plus these, with dev->lock
 * held.
 */
/* After GET MIGRATION was refused (connection intact, caps->blocker says
 * so): look for the four regions; fills caps like discover does, leaving
 * the blocker alone when the device has none of them. Returns 0 or a
 * transport error. Sets dev->mig to &vmm_mig_region on success, with the
 * tracked state and sessions of prev (the previous discovery on this
 * connection) or, when prev is NULL, RUNNING. */
int vmm_ds_discover(vfmig_vmm_dev *dev, struct vfmig_vmm_mig_caps *caps,
		    const struct vmm_ds *prev);
/* Unmap the data regions (broken connection); the rest stays. */
void vmm_ds_unmap(vfmig_vmm_dev *dev);
/* Unmap and forget everything; dev->mig back to none. */
void vmm_ds_forget(vfmig_vmm_dev *dev);
/* After a successful DEVICE_RESET: shadow RUNNING, logging off. */
void vmm_ds_after_reset(vfmig_vmm_dev *dev);
/* dma.c: serve one server->client command; negative = send failed. */
int vmm_serve_command(vfmig_vmm_dev *dev, const struct vfw_msg *msg);

/* regions.c: parse the capability chain of a region-info reply (buf is the
 * whole reply payload, starting at struct vfw_region_info). Fills the cap
 * fields of info (areas malloc'd). Returns 0, -EPROTO with *why set, or
 * -ENOMEM. Pure. */
int vmm_parse_region_caps(const uint8_t *buf, size_t len,
			  struct vfmig_vmm_region_info *info,
			  const char **why);

#endif /* VFMIG_VMM_INTERNAL_H */
