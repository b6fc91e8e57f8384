/* SPDX-License-Identifier: MIT */
/*
 * vfmig VMM library: the client side of vfio-user.
 *
 * A vfmig_vmm_dev is one connection to one vfio-user device process. It
 * negotiates the protocol version, reads device/region/IRQ information,
 * accesses regions (by message or by mmap), binds IRQs to eventfds, declares
 * guest-memory DMA windows and serves the device's DMA_READ/DMA_WRITE
 * messages against them, and issues DEVICE_FEATURE and MIG_DATA_READ/WRITE.
 * This header is that raw client. The per-device migration driver built on
 * it (capability discovery with a blocker reason, state changes with
 * recovery, a save pump, size estimates, DMA dirty logging) is in
 * <vfmig/vmm_mig.h>; both are in libvfmig-vmm.
 *
 * Lifecycle: vfmig_vmm_dev_connect() or vfmig_vmm_dev_adopt_fd() (both
 * negotiate VERSION before returning) -> calls -> vfmig_vmm_dev_close().
 * vfmig_vmm_dev_reconnect() replaces a broken or live connection with a new
 * one to the same socket path.
 *
 * Threading: every call on one vfmig_vmm_dev is serialised by an internal
 * mutex, so a guest-driver thread and a control thread may share it. The
 * on_dma_write callback runs with that mutex held: it must not call back into
 * the library for the same device. The socket is non-blocking: a call waits
 * only in poll(), for at most its reply timeout, reading and serving the
 * device's own commands while its request waits for room to be sent.
 *
 * Errors: functions returning int give 0 (or a non-negative count) on
 * success and a negative errno on failure; vfmig_vmm_strerror() names it.
 * Common ones, for every call that talks to the device:
 *   -ENOTCONN    the connection was broken earlier (reconnect or close)
 *   -ECONNRESET  the device closed the socket (now broken)
 *   -EPROTO      the device sent a malformed or unexpected message (wrong
 *                msg_id, command, type or payload size); the connection is
 *                closed and marked broken
 *   -ETIMEDOUT   no reply within the reply timeout, counted from the start
 *                of the call: messages the device sends meanwhile do not
 *                extend it; or a message it began was not whole within 10 s
 *                (now broken)
 *   -ENOBUFS     the device does not read: more than two of the largest
 *                messages wait to be sent to it (now broken)
 *   other        the errno carried by the device's error reply (connection
 *                stays usable), -EIO if that reply carried errno 0
 * The library never prints; it logs only through the caller's callback.
 */
#ifndef VFMIG_VMM_H
#define VFMIG_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfmig/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque connection to one vfio-user device. */
typedef struct vfmig_vmm_dev vfmig_vmm_dev;

#define VFMIG_VMM_OPTS_VERSION 2

/*
 * Connection options; copied by connect/adopt. May be NULL for defaults.
 * version must be VFMIG_VMM_OPTS_VERSION; later versions only append.
 */
struct vfmig_vmm_dev_opts {
	uint32_t version;
	/* Log callback (NULL: no logging) and the most verbose level passed. */
	vfmig_log_fn log_fn;
	void *log_priv;
	int log_level;
	/* Called after the library served a DMA_WRITE from the device into a
	 * window: [iova, iova + len) of guest memory was dirtied by a message
	 * (writes through a mapped fd are not seen here). Runs with the
	 * device mutex held; must not call into this vfmig_vmm_dev. */
	void (*on_dma_write)(void *priv, uint64_t iova, uint64_t len);
	void *priv;
	/* How long connect() keeps retrying ECONNREFUSED/ENOENT. 0: 2000. */
	unsigned int connect_timeout_ms;
	/* Longest wait for one reply. 0: 30000; negative: forever. */
	int reply_timeout_ms;
	/* Version 2: VFMIG_VMM_OPT_* (other bits: -EINVAL). */
	uint32_t flags;
};

/* Do not propose the data channel (docs/protocol-extensions.md): every
 * session's data then goes in MIG_DATA_READ/WRITE messages. */
#define VFMIG_VMM_OPT_NO_DATA_CHANNEL (1u << 0)

/* What VERSION negotiation settled. */
struct vfmig_vmm_caps {
	uint16_t major;
	uint16_t minor;
	uint32_t max_msg_fds;        /* most fds the device accepts per message */
	uint64_t max_data_xfer_size; /* device's limit; our chunks respect it */
	uint64_t max_dma_maps;
	uint64_t pgsizes;
	/* vfmig size-estimate extension "vfmig_mig_info" (see
	 * docs/protocol-extensions.md): the version the device accepted, 0
	 * when it left the key out (extension off). Never above ours. */
	uint32_t mig_info_version;
	/* vfmig extension "vfmig_data_channel": the version the device
	 * accepted, 0 when off (left out by the device, or not proposed:
	 * VFMIG_VMM_OPT_NO_DATA_CHANNEL). When on, the migration driver
	 * (vmm_mig.h) moves every save and load session on a socket of its
	 * own. */
	uint32_t data_channel_version;
};

/*
 * Connect to the UNIX socket at path, retrying ECONNREFUSED and ENOENT for
 * up to connect_timeout_ms (servers may bind before they listen), then
 * negotiate VERSION. On success *out owns the connection.
 * Errors: -EINVAL (NULL argument, path too long, unknown opts version),
 * -ENOMEM, the connect() errno (-ECONNREFUSED/-ENOENT after the retries),
 * -EPROTONOSUPPORT (reply major differs or minor above ours), -EPROTO
 * (malformed VERSION reply or capabilities, an extension version above the
 * one we proposed), or the I/O errors above: -ECONNRESET also when the
 * device closes the connection instead of answering VERSION, as a vfmig
 * device does at once while another client is attached. We propose the
 * vfmig "vfmig_mig_info" extension; the reply decides (struct vfmig_vmm_caps).
 */
VFMIG_EXPORT int vfmig_vmm_dev_connect(const char *path,
				       const struct vfmig_vmm_dev_opts *opts,
				       vfmig_vmm_dev **out);

/*
 * As vfmig_vmm_dev_connect() on an already-connected stream socket fd. On
 * success the library owns fd (closed by close/broken connection); on
 * failure fd is closed too, so the caller never has to. -EBADF for fd < 0.
 * A device made this way cannot vfmig_vmm_dev_reconnect().
 */
VFMIG_EXPORT int vfmig_vmm_dev_adopt_fd(int fd,
					const struct vfmig_vmm_dev_opts *opts,
					vfmig_vmm_dev **out);

/*
 * Drop the current connection (if any), forget every DMA window, connect to
 * the same path again and negotiate. The device keeps its state across this
 * (vfio-user rule); DMA windows and IRQ eventfds must be set up again.
 * Errors: -EINVAL (device was adopted from an fd), then as connect. After a
 * failure the device stays broken (-ENOTCONN) and may be retried.
 */
VFMIG_EXPORT int vfmig_vmm_dev_reconnect(vfmig_vmm_dev *dev);

/* Close the socket and free everything. NULL is fine. Mappings made with
 * vfmig_vmm_region_mmap() and fds handed to the caller are not touched. */
VFMIG_EXPORT void vfmig_vmm_dev_close(vfmig_vmm_dev *dev);

/* Replace the log callback (NULL disables). Never fails. */
VFMIG_EXPORT void vfmig_vmm_dev_set_log(vfmig_vmm_dev *dev, vfmig_log_fn fn,
					void *priv, int max_level);

/* True while the connection is usable (not broken). */
VFMIG_EXPORT bool vfmig_vmm_dev_connected(vfmig_vmm_dev *dev);

/* Copy the negotiated version and capabilities. -ENOTCONN if broken. */
VFMIG_EXPORT int vfmig_vmm_dev_get_caps(vfmig_vmm_dev *dev,
					struct vfmig_vmm_caps *caps);

/* ---- Device, region and IRQ information ---- */

#define VFMIG_VMM_DEV_FLAG_RESET (1u << 0)
#define VFMIG_VMM_DEV_FLAG_PCI (1u << 1)

struct vfmig_vmm_dev_info {
	uint32_t flags; /* VFMIG_VMM_DEV_FLAG_* */
	uint32_t num_regions;
	uint32_t num_irqs;
};

/* DEVICE_GET_INFO. -EPROTO if the reply is not 16 bytes long. */
VFMIG_EXPORT int vfmig_vmm_dev_get_info(vfmig_vmm_dev *dev,
					struct vfmig_vmm_dev_info *info);

#define VFMIG_VMM_REGION_READ (1u << 0)
#define VFMIG_VMM_REGION_WRITE (1u << 1)
#define VFMIG_VMM_REGION_MMAP (1u << 2)

/* PCI region indices. */
#define VFMIG_VMM_PCI_BAR0 0u
#define VFMIG_VMM_PCI_ROM 6u
#define VFMIG_VMM_PCI_CONFIG 7u

/* One mmap-able part of a region: offsets relative to the region start. */
struct vfmig_vmm_area {
	uint64_t offset;
	uint64_t size;
};

struct vfmig_vmm_region_info {
	uint32_t index;
	uint32_t flags;       /* VFMIG_VMM_REGION_* */
	uint64_t size;
	uint64_t mmap_offset; /* offset of the region within fd */
	int fd;               /* -1, or an fd owned by the caller */
	bool has_type;        /* TYPE capability present */
	uint32_t type, subtype;
	bool msix_mappable;   /* MSIX_MAPPABLE capability present */
	/* SPARSE_MMAP capability: malloc'd, each area checked to lie inside
	 * [0, size). has_sparse false: the whole region is mappable when
	 * VFMIG_VMM_REGION_MMAP is set. */
	bool has_sparse;
	uint32_t nr_areas;
	struct vfmig_vmm_area *areas;
};

/*
 * DEVICE_GET_REGION_INFO for index, with the capability chain parsed and
 * bounds-checked (a longer chain than our first buffer is fetched again with
 * the argsz the device asked for, once). On success the caller owns
 * info->fd and info->areas: free with vfmig_vmm_region_info_release().
 * Errors: -EPROTO (bad reply, cap_offset/next outside the reply, a looping
 * chain, nr_areas beyond the reply, an area outside the region), device
 * errors (e.g. -EINVAL for a bad index), -ENOMEM.
 */
VFMIG_EXPORT int vfmig_vmm_dev_get_region_info(vfmig_vmm_dev *dev,
					       uint32_t index,
					       struct vfmig_vmm_region_info *info);

/* Close info->fd, free info->areas, reset both. NULL is fine. */
VFMIG_EXPORT void vfmig_vmm_region_info_release(struct vfmig_vmm_region_info *info);

/* One ioeventfd a device offers for a sub-range of a region
 * (DEVICE_GET_REGION_IO_FDS): writes of size bytes at offset (with
 * VFMIG_VMM_IOEVENTFD_DATAMATCH only writes of datamatch) may signal fd
 * instead of being sent as REGION_WRITE. */
#define VFMIG_VMM_IOEVENTFD_DATAMATCH (1u << 0)
#define VFMIG_VMM_MAX_IOEVENTFDS 16u
struct vfmig_vmm_ioeventfd {
	uint64_t offset;
	uint32_t size;     /* 1, 2, 4 or 8 */
	uint32_t flags;    /* VFMIG_VMM_IOEVENTFD_* */
	uint64_t datamatch;
	int fd;            /* owned by the caller; one per entry */
};

/*
 * DEVICE_GET_REGION_IO_FDS for index, a region of region_size bytes (as
 * GET_REGION_INFO reported it): up to max ioeventfds into out; returns
 * how many (0: the device offers none). A reply for our first argsz that
 * asks for more is fetched again, once, with the argsz it names. Nothing
 * in the reply is trusted: flags must be 0 and index the one asked for,
 * argsz the header plus count entries of 40 bytes, each entry an ioeventfd
 * (type 0) for memory (flags at most DATAMATCH, padding 0), size 1, 2, 4
 * or 8, inside the region, a datamatch that fits the size, an fd_index
 * below the fds received, and every fd received named by an entry.
 * Errors: the device's errno (e.g. -ENOTSUP, -EINVAL: servers that do not
 * offer the message), -EPROTO (a reply that breaks a rule above; logged
 * with the rule, the connection stays), -E2BIG (more than max), -ENOMEM.
 * Release with vfmig_vmm_ioeventfds_release().
 */
VFMIG_EXPORT int vfmig_vmm_dev_get_region_io_fds(vfmig_vmm_dev *dev,
						 uint32_t index,
						 uint64_t region_size,
						 struct vfmig_vmm_ioeventfd *out,
						 size_t max);

/* Close the fds of n entries (those >= 0) and set them to -1. */
VFMIG_EXPORT void vfmig_vmm_ioeventfds_release(struct vfmig_vmm_ioeventfd *e,
					       size_t n);

/* One mapping made by vfmig_vmm_region_mmap(). */
struct vfmig_vmm_mapping {
	void *addr;
	uint64_t offset; /* within the region */
	uint64_t size;
};

/*
 * Map the mmap-able parts of a region with info->fd: every sparse area, or
 * the whole region if there is no SPARSE_MMAP capability. prot is PROT_*
 * from <sys/mman.h>. Fills up to max entries of maps and returns how many
 * were made (0 when the region has nothing mappable). The fd stays in info.
 * Errors: -EINVAL (no fd, or more areas than max), -EOVERFLOW, the errno of
 * mmap (earlier mappings of this call are undone).
 */
VFMIG_EXPORT int vfmig_vmm_region_mmap(const struct vfmig_vmm_region_info *info,
				       int prot, struct vfmig_vmm_mapping *maps,
				       size_t max);

/* munmap n mappings made by vfmig_vmm_region_mmap(). */
VFMIG_EXPORT void vfmig_vmm_region_munmap(struct vfmig_vmm_mapping *maps,
					  size_t n);

/*
 * REGION_READ/REGION_WRITE len bytes at offset of region index, split into
 * chunks no larger than the device's max_data_xfer_size (and 1 MiB). Each
 * reply must echo offset, region and count; a READ reply must carry exactly
 * count bytes (-EPROTO otherwise). Returns 0; on error some chunks may have
 * been transferred.
 */
VFMIG_EXPORT int vfmig_vmm_dev_region_read(vfmig_vmm_dev *dev, uint32_t index,
					   uint64_t offset, void *buf,
					   size_t len);
VFMIG_EXPORT int vfmig_vmm_dev_region_write(vfmig_vmm_dev *dev, uint32_t index,
					    uint64_t offset, const void *buf,
					    size_t len);

/* IRQ indexes (PCI) and info flags. */
#define VFMIG_VMM_IRQ_INTX 0u
#define VFMIG_VMM_IRQ_MSI 1u
#define VFMIG_VMM_IRQ_MSIX 2u
#define VFMIG_VMM_IRQ_ERR 3u
#define VFMIG_VMM_IRQ_REQ 4u
#define VFMIG_VMM_IRQ_INFO_EVENTFD (1u << 0)
#define VFMIG_VMM_IRQ_INFO_MASKABLE (1u << 1)
#define VFMIG_VMM_IRQ_INFO_AUTOMASKED (1u << 2)
#define VFMIG_VMM_IRQ_INFO_NORESIZE (1u << 3)

struct vfmig_vmm_irq_info {
	uint32_t flags; /* VFMIG_VMM_IRQ_INFO_* */
	uint32_t count;
};

/* DEVICE_GET_IRQ_INFO for index. -EPROTO if the reply is malformed. */
VFMIG_EXPORT int vfmig_vmm_dev_get_irq_info(vfmig_vmm_dev *dev, uint32_t index,
					    struct vfmig_vmm_irq_info *info);

/*
 * Bind subindexes [start, start + count) of IRQ index to the eventfds fds[]
 * (SET_IRQS, DATA_EVENTFD, ACTION_TRIGGER), split into several messages of
 * at most the device's max_msg_fds fds each. fds stay the caller's; every
 * fd must be valid (>= 0). count 0 de-assigns the whole index.
 * Errors: -EINVAL (fds NULL with count > 0, an fd < 0, range overflow),
 * device errors.
 */
VFMIG_EXPORT int vfmig_vmm_dev_set_irq_eventfds(vfmig_vmm_dev *dev,
						uint32_t index, uint32_t start,
						const int *fds, uint32_t count);

enum vfmig_vmm_irq_action {
	VFMIG_VMM_IRQ_MASK = 0,
	VFMIG_VMM_IRQ_UNMASK = 1,
	VFMIG_VMM_IRQ_TRIGGER = 2,
};

/*
 * Mask, unmask or trigger subindexes [start, start + count) of index.
 * bools NULL: DATA_NONE (applies to all of them); else DATA_BOOL with one
 * byte (0/1) per subindex. Errors: -EINVAL (bad action, count 0, count
 * larger than one message allows), device errors.
 */
VFMIG_EXPORT int vfmig_vmm_dev_set_irq_action(vfmig_vmm_dev *dev,
					      uint32_t index, uint32_t start,
					      uint32_t count,
					      enum vfmig_vmm_irq_action action,
					      const uint8_t *bools);

/* Disable a whole IRQ index (DATA_NONE|ACTION_TRIGGER, start 0, count 0). */
VFMIG_EXPORT int vfmig_vmm_dev_irq_disable(vfmig_vmm_dev *dev, uint32_t index);

/* ---- The VMM's shadow of a device ----
 *
 * Some vfio-user servers refuse DEVICE_GET_INFO, GET_REGION_INFO and
 * GET_IRQ_INFO in STOP and STOP_COPY, and region access in STOP_COPY. A VMM
 * must therefore not need the device to describe itself once it left
 * RUNNING/PRE_COPY. The shadow is that description, kept by the library:
 * device info, every region's flags and size (up to 64 regions), the IRQ
 * info of indexes 0-4, the PCI config space (256 or 4096 bytes) and the
 * MSI-X table (located through the config space, checked to lie inside its
 * BAR). Capture it while the device runs; from then on every successful
 * vfmig_vmm_dev_region_write() that touches the config space or the MSI-X
 * table is read back into the shadow (the device decides which bits
 * stick; if the read-back fails the written bytes stand in), and a
 * successful vfmig_vmm_dev_reset() re-reads both. Device-owned bits that
 * change without a VMM write (status, MSI pending bits, the PBA) are not
 * followed: the device's own migration data carries them.
 */

/*
 * Capture (or capture again) the shadow: DEVICE_GET_INFO, GET_REGION_INFO
 * per region, GET_IRQ_INFO per index, then config space and MSI-X table by
 * REGION_READ. A device error for one region or IRQ index records it as
 * absent (size/count 0). Returns 0, or a transport error / the error of a
 * config or table read (the previous shadow, if any, is kept).
 */
VFMIG_EXPORT int vfmig_vmm_dev_shadow_capture(vfmig_vmm_dev *dev);

/*
 * Read the shadow; no message is sent, so these work in any device state
 * and on a broken connection. Errors: -ENODATA (never captured, or dropped
 * after a reset whose re-read failed), -EINVAL (NULL, index beyond what was
 * captured), and for _read -ENOENT when [offset, offset + len) of region
 * index is not shadowed (only config space and the MSI-X table are).
 */
VFMIG_EXPORT int vfmig_vmm_dev_shadow_info(vfmig_vmm_dev *dev,
					   struct vfmig_vmm_dev_info *info);
VFMIG_EXPORT int vfmig_vmm_dev_shadow_region(vfmig_vmm_dev *dev,
					     uint32_t index, uint32_t *flags,
					     uint64_t *size);
VFMIG_EXPORT int vfmig_vmm_dev_shadow_irq(vfmig_vmm_dev *dev, uint32_t index,
					  struct vfmig_vmm_irq_info *info);
VFMIG_EXPORT int vfmig_vmm_dev_shadow_read(vfmig_vmm_dev *dev, uint32_t index,
					   uint64_t offset, void *buf,
					   size_t len);

/* ---- DMA windows (guest memory) ---- */

#define VFMIG_VMM_DMA_READ (1u << 0)  /* device may read */
#define VFMIG_VMM_DMA_WRITE (1u << 1) /* device may write */

/*
 * Declare guest memory [iova, iova + size) to the device (DMA_MAP).
 * fd >= 0: sent so the device can mmap it at fd_offset (fd stays the
 * caller's). vaddr: the caller's own mapping of that memory (may be NULL),
 * used to serve the device's DMA_READ/DMA_WRITE messages; it must stay valid
 * until the window is unmapped or the connection ends. prot: VFMIG_VMM_DMA_*.
 * Errors: -EINVAL (size 0, iova + size overflows, prot invalid), -EEXIST
 * (overlaps a window of ours), -ENOMEM, device errors.
 */
VFMIG_EXPORT int vfmig_vmm_dev_dma_map(vfmig_vmm_dev *dev, uint64_t iova,
				       uint64_t size, int fd,
				       uint64_t fd_offset, void *vaddr,
				       uint32_t prot);

/*
 * Withdraw a window (DMA_UNMAP); iova and size must match one dma_map().
 * The window is forgotten once the device replied (it may still DMA until
 * then). Errors: -ENOENT (no such window), device errors.
 */
VFMIG_EXPORT int vfmig_vmm_dev_dma_unmap(vfmig_vmm_dev *dev, uint64_t iova,
					 uint64_t size);

/* ---- Reset, features, migration data ---- */

/* DEVICE_RESET. */
VFMIG_EXPORT int vfmig_vmm_dev_reset(vfmig_vmm_dev *dev);

/* DEVICE_FEATURE flag bits: feature index in bits 0-15, plus these. */
#define VFMIG_VMM_FEATURE_GET (1u << 16)
#define VFMIG_VMM_FEATURE_SET (1u << 17)
#define VFMIG_VMM_FEATURE_PROBE (1u << 18)

/*
 * DEVICE_FEATURE with flags and in_len bytes of data; argsz asks for up to
 * out_cap bytes of reply data. Reply data (after the 8-byte feature header)
 * is copied to out, at most out_cap bytes and no more than arrived; *out_len
 * (may be NULL) gets the count. If the device reports (reply argsz) more data
 * than out_cap, returns -E2BIG with *out_len set to the size it needs.
 * Errors: -EINVAL (in_len/out_cap too large for a message), -EPROTO, device
 * errors (e.g. -ENOTSUP/-EINVAL for an unsupported feature).
 */
VFMIG_EXPORT int vfmig_vmm_dev_feature(vfmig_vmm_dev *dev, uint32_t flags,
				       const void *in, size_t in_len,
				       void *out, size_t out_cap,
				       size_t *out_len);

/*
 * One MIG_DATA_READ of up to len bytes (clamped to the device's
 * max_data_xfer_size and 1 MiB). Returns the number of bytes the device
 * returned (its size field, bounded by what arrived and by what we asked);
 * fewer than asked means "no more for now" (PRE_COPY) or "end" (STOP_COPY).
 */
VFMIG_EXPORT int vfmig_vmm_dev_mig_data_read(vfmig_vmm_dev *dev, void *buf,
					     size_t len);

/* MIG_DATA_WRITE all len bytes, in chunks within max_data_xfer_size. */
VFMIG_EXPORT int vfmig_vmm_dev_mig_data_write(vfmig_vmm_dev *dev,
					      const void *buf, size_t len);

/*
 * Return once the device has loaded every byte handed to
 * vfmig_vmm_dev_mig_data_write() so far. MIG_DATA_WRITE and the region
 * interface load before they return (0 at once); on a data channel the
 * bytes may still be in its socket, and a device applies them as it reads:
 * this asks the device (GET VFMIG_DATA_CHANNEL), which loads what its
 * socket holds before it answers. Errors: the session's (sticky), -EPROTO
 * (the device counts other bytes than were sent), transport errors.
 */
VFMIG_EXPORT int vfmig_vmm_dev_mig_data_sync(vfmig_vmm_dev *dev);

/*
 * Whether the device is loading in a sealed data channel session
 * (vfmig_vmm_dev_set_seal), where it takes forwarded records.
 */
VFMIG_EXPORT bool vfmig_vmm_dev_mig_data_sealed(vfmig_vmm_dev *dev);

/*
 * Loading, sealed: the next len bytes on fd are DEVICE_DATA data for this
 * device, followed by the record's 4-byte checksum: hand all len + 4 to
 * the device unread as one SEALED frame (spliced where the kernel can),
 * which checks the checksum itself. Waits on fd (timeout_ms) and the
 * device as vfmig_vmm_mig_move() does. Errors: -ENOTSUP (no sealed loading session:
 * nothing read), -EINVAL (len 0 or above 1 MiB), -EPIPE (fd ended early),
 * the session's errors as vfmig_vmm_dev_mig_data_write(); after an error
 * part of fd may be consumed.
 */
VFMIG_EXPORT int vfmig_vmm_dev_mig_data_forward(vfmig_vmm_dev *dev, int fd,
						size_t len, int timeout_ms);
/* The most data one forward takes (one SEALED frame): larger records are
 * read and written as usual. */
#define VFMIG_VMM_FORWARD_MAX (1u << 20)

/* ---- Serving the device between calls ---- */

/* The socket to poll for POLLIN, or -ENOTCONN. It changes on reconnect.
 * Takes no lock: it answers at once even while a call on the device waits
 * for its reply. */
VFMIG_EXPORT int vfmig_vmm_dev_get_poll_fd(vfmig_vmm_dev *dev);

/* The poll events to wait for on that fd: POLLIN, plus POLLOUT while
 * bytes wait to be sent (a DMA_READ reply the socket could not take at
 * once: without POLLOUT the rest would wait for the next call). Takes no
 * lock. 0 for NULL. */
VFMIG_EXPORT short vfmig_vmm_dev_get_poll_events(vfmig_vmm_dev *dev);

/*
 * Non-blocking: send what waits to be sent (call it on POLLOUT too), and
 * serve every DMA_READ /
 * DMA_WRITE command already received whole (at most 64 a call; a message
 * that is still arriving stays half-read for the next call). Returns how
 * many were served (0 if none), or -EBUSY without doing anything when a
 * call on this device is in progress (that call serves the device itself:
 * leave its fd out of the next poll for a moment). A reply arriving here
 * (no call outstanding) is a protocol error (-EPROTO, broken).
 */
VFMIG_EXPORT int vfmig_vmm_dev_process(vfmig_vmm_dev *dev);

/* Static text for a (negative or positive) errno; never NULL. */
VFMIG_EXPORT const char *vfmig_vmm_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* VFMIG_VMM_H */
