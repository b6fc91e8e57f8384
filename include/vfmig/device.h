/* SPDX-License-Identifier: MIT */
/*
 * vfmig device library: the server side of vfio-user.
 *
 * A device author describes a PCI device (IDs, BARs, MSI/MSI-X, IRQs) in a
 * struct vfmig_dev_desc, supplies a table of callbacks, and lets the library
 * run the vfio-user protocol on a UNIX socket. The library emulates PCI
 * config space and the MSI-X table/PBA, keeps the client's DMA windows and
 * IRQ eventfds, and offers helpers to raise interrupts and to read or write
 * guest memory. Write guest memory only through vfmig_dev_dma_write() so the
 * library can track what the device dirtied.
 *
 * Lifecycle: vfmig_dev_create() -> vfmig_dev_set_log() (optional) ->
 * vfmig_dev_listen() or vfmig_dev_attach_fd() -> vfmig_dev_run() or an event
 * loop around vfmig_dev_get_poll_fd() + vfmig_dev_process() ->
 * vfmig_dev_destroy().
 *
 * Threading: a vfmig_dev is not thread-safe. Call every function, including
 * the helpers, from the thread that runs vfmig_dev_process()/vfmig_dev_run(),
 * typically from inside a callback.
 *
 * Errors: every function returning int returns 0 (or a non-negative count)
 * on success and a negative errno on failure; vfmig_dev_strerror() names it.
 * The library never prints, never exits and never installs signal handlers.
 */
#ifndef VFMIG_DEVICE_H
#define VFMIG_DEVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfmig/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque device handle. */
typedef struct vfmig_dev vfmig_dev;

#define VFMIG_DEV_MAX_BARS 6
#define VFMIG_DEV_MAX_EXCLUDES 4

/* BAR flags. A BAR with size 0 is absent. */
enum vfmig_dev_bar_flags {
	VFMIG_DEV_BAR_MEM32 = 0,         /* 32-bit memory BAR (default) */
	VFMIG_DEV_BAR_IO = 1u << 0,      /* I/O space BAR */
	VFMIG_DEV_BAR_MEM64 = 1u << 1,   /* 64-bit memory; uses BAR n+1 too */
	VFMIG_DEV_BAR_PREFETCH = 1u << 2, /* prefetchable memory */
	/* Backed by a memfd the library creates; the client may mmap it.
	 * Accesses through REGION_READ/WRITE hit that memory directly and do
	 * not reach the region_access callback. */
	VFMIG_DEV_BAR_MAPPABLE = 1u << 3,
};

/* A byte range inside a BAR. */
struct vfmig_dev_range {
	uint64_t offset;
	uint64_t size;
};

struct vfmig_dev_bar {
	uint64_t size;  /* power of two (>= 16 for memory, >= 4 for I/O), or 0 */
	uint32_t flags; /* enum vfmig_dev_bar_flags */
	/* Mappable BARs only: ranges the client must not mmap (rounded out to
	 * 4 KiB pages). The MSI-X table and PBA are excluded automatically. */
	uint32_t n_exclude;
	struct vfmig_dev_range exclude[VFMIG_DEV_MAX_EXCLUDES];
};

/* Static description of a PCI device; copied by vfmig_dev_create(). */
struct vfmig_dev_desc {
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t subsys_vendor_id;
	uint16_t subsys_id;
	uint8_t revision;
	uint32_t class_code; /* 24 bits: base class, subclass, prog-if */
	struct vfmig_dev_bar bars[VFMIG_DEV_MAX_BARS];
	uint32_t intx_count;   /* 0 or 1 */
	uint32_t msi_vectors;  /* 0 (no MSI capability) or 1, 2, 4, .. 32 */
	uint32_t msix_vectors; /* 0 (no MSI-X capability) or 1 .. 2048 */
	uint32_t msix_bar;     /* BAR holding the MSI-X table and PBA */
	uint32_t msix_table_offset; /* 8-byte aligned; table is vectors * 16 */
	uint32_t msix_pba_offset;   /* 8-byte aligned; PBA is ceil(n/64) * 8 */
	uint32_t err_count; /* 0 or 1: ERR IRQ index */
	uint32_t req_count; /* 0 or 1: REQ IRQ index */
	bool pcie;          /* add a PCI Express capability; 4 KiB config */
};

/* IRQ indexes, as in vfio-user. */
enum vfmig_dev_irq_index {
	VFMIG_DEV_IRQ_INTX = 0,
	VFMIG_DEV_IRQ_MSI = 1,
	VFMIG_DEV_IRQ_MSIX = 2,
	VFMIG_DEV_IRQ_ERR = 3,
	VFMIG_DEV_IRQ_REQ = 4,
	VFMIG_DEV_IRQ_NUM = 5,
};

#define VFMIG_DEV_OPS_VERSION 1

/*
 * Callbacks. version must be VFMIG_DEV_OPS_VERSION. A later version will
 * append the migration callbacks after the members below; members are never
 * reordered. Every callback gets the device and the caller's priv pointer.
 * Callbacks run on the thread that calls vfmig_dev_process()/run() and may
 * call the helpers (vfmig_dev_irq_trigger, vfmig_dev_dma_read/write, ...).
 */
struct vfmig_dev_ops {
	uint32_t version;
	/*
	 * Required. A client read (is_write false: fill buf) or write (buf
	 * holds the data) of len bytes at offset in BAR bar, for the parts of
	 * non-mappable BARs the library does not emulate. The range is already
	 * checked against the BAR size. Return 0, or a negative errno that is
	 * sent to the client in an error reply.
	 */
	int (*region_access)(vfmig_dev *dev, void *priv, unsigned int bar,
			     uint64_t offset, void *buf, size_t len,
			     bool is_write);
	/* Optional. The client reset the device (DEVICE_RESET). Reset device
	 * registers (and mappable BAR memory if wanted). Config space, MSI-X
	 * state and IRQ masks are reset by the library. Return 0 or -errno. */
	int (*reset)(vfmig_dev *dev, void *priv);
	/* Optional. IRQ configuration of index changed (eventfds assigned or
	 * removed, masks changed, MSI/MSI-X enabled in config space). */
	void (*irq_changed)(vfmig_dev *dev, void *priv, unsigned int index);
	/* Optional. A client completed VERSION (attached true) or went away
	 * (attached false; its DMA windows and eventfds are already gone). */
	void (*client_changed)(vfmig_dev *dev, void *priv, bool attached);
};

/*
 * Create a device. desc and ops are copied; priv is handed back to every
 * callback and is not touched by the library. On success *out owns the
 * device (free with vfmig_dev_destroy) and mappable BAR memory is zeroed.
 * Errors: -EINVAL (NULL argument, ops->version unknown, region_access
 * missing, bad BAR size/flags, MSI/MSI-X layout invalid or overlapping),
 * -ENOMEM, or an errno from memfd_create/ftruncate/mmap.
 */
VFMIG_EXPORT int vfmig_dev_create(const struct vfmig_dev_desc *desc,
				  const struct vfmig_dev_ops *ops, void *priv,
				  vfmig_dev **out);

/* The priv pointer given to vfmig_dev_create(). */
VFMIG_EXPORT void *vfmig_dev_get_priv(const vfmig_dev *dev);

/*
 * Install a log callback (NULL disables logging). Messages with a level
 * above max_level (enum vfmig_log_level) are dropped. Never fails.
 */
VFMIG_EXPORT void vfmig_dev_set_log(vfmig_dev *dev, vfmig_log_fn fn,
				    void *priv, int max_level);

/*
 * Create a UNIX stream socket at path (a stale socket file is unlinked
 * first), bind and listen. The device then accepts one client at a time.
 * Errors: -EINVAL (NULL/too long path), -EBUSY (already listening or
 * attached), or the errno of socket/bind/listen.
 */
VFMIG_EXPORT int vfmig_dev_listen(vfmig_dev *dev, const char *path);

/*
 * Hand the device a socket it then owns (closed by the library on error
 * paths after success, and by vfmig_dev_destroy). A listening socket
 * (SO_ACCEPTCONN) is used to accept clients; any other stream socket is
 * taken as an already-connected client. On failure fd stays the caller's.
 * Errors: -EBADF, -ENOTSOCK, -EINVAL (not a stream socket), -EBUSY
 * (already listening or attached).
 */
VFMIG_EXPORT int vfmig_dev_attach_fd(vfmig_dev *dev, int fd);

/*
 * The fd to poll for POLLIN: the connected client's socket, else the
 * listening socket. -ENOTCONN when the device has neither. The fd may
 * change after vfmig_dev_process(); ask again each loop iteration.
 */
VFMIG_EXPORT int vfmig_dev_get_poll_fd(const vfmig_dev *dev);

/*
 * Non-blocking step: accept a pending client, or handle every message
 * that is pending from the connected client (at most 1024 per call, so a
 * flooding client cannot starve the caller's loop). Returns the number of
 * messages handled (0 when nothing was pending). Once a message has begun
 * to arrive, the call waits for the rest of it. A client that goes away,
 * or breaks the framing, is dropped (the device keeps its state) and the
 * device listens again; that is not an error. Errors: -ENOTCONN (no client
 * and no listening socket), -ENOMEM, or an errno from accept().
 */
VFMIG_EXPORT int vfmig_dev_process(vfmig_dev *dev);

/*
 * Serve until *stop becomes nonzero (checked at least every 100 ms, so a
 * signal handler may set it) or a fatal error. Returns 0 when stopped, or
 * when a directly attached client left and there is no listening socket;
 * a negative errno otherwise.
 */
VFMIG_EXPORT int vfmig_dev_run(vfmig_dev *dev, const volatile sig_atomic_t *stop);

/* Close every socket and fd, unmap everything, free the device. NULL ok.
 * A socket file created by vfmig_dev_listen() is unlinked. */
VFMIG_EXPORT void vfmig_dev_destroy(vfmig_dev *dev);

/*
 * Memory of a mappable BAR (owned by the library, valid until destroy);
 * *size (if not NULL) gets its size. NULL if bar is not mappable.
 */
VFMIG_EXPORT void *vfmig_dev_bar_ptr(vfmig_dev *dev, unsigned int bar,
				     uint64_t *size);

/*
 * Raise interrupt subindex of IRQ index (enum vfmig_dev_irq_index).
 * Masking is honoured: MSI-X vector/function mask, MSI per-vector mask,
 * INTx disable, and SET_IRQS MASK. A masked trigger is remembered as pending
 * (MSI-X: the PBA bit) and delivered on unmask. A disabled MSI/MSI-X
 * capability, or no eventfd from the client, drops the interrupt.
 * Returns 1 when an eventfd was signalled, 0 when held pending or dropped.
 * Errors: -EINVAL (index or subindex out of range), or the errno of the
 * eventfd write.
 */
VFMIG_EXPORT int vfmig_dev_irq_trigger(vfmig_dev *dev, unsigned int index,
				       unsigned int subindex);

/*
 * Read len bytes of guest memory at iova into buf (device DMA). The range
 * must lie inside one DMA window the client mapped readable; it is copied
 * from the mmapped window, or fetched with DMA_READ messages when the client
 * gave no fd (client commands arriving meanwhile are queued and handled
 * afterwards). Errors: -EFAULT (not inside one window, or no permission),
 * -ENOTCONN (no client), -EIO (client answered with an error or broke the
 * exchange), -ENOMEM.
 */
VFMIG_EXPORT int vfmig_dev_dma_read(vfmig_dev *dev, uint64_t iova, void *buf,
				    size_t len);

/* Write len bytes from buf to guest memory at iova. As vfmig_dev_dma_read,
 * needing a writeable window. */
VFMIG_EXPORT int vfmig_dev_dma_write(vfmig_dev *dev, uint64_t iova,
				     const void *buf, size_t len);

/*
 * Read the emulated config space (what the client sees). Errors: -EINVAL
 * when [off, off + len) is outside the config space (256 or 4096 bytes).
 */
VFMIG_EXPORT int vfmig_dev_config_read(const vfmig_dev *dev, uint32_t off,
				       void *buf, size_t len);

/* Static text for a (negative or positive) errno; never NULL. */
VFMIG_EXPORT const char *vfmig_dev_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* VFMIG_DEVICE_H */
