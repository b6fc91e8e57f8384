/* SPDX-License-Identifier: MIT */
/*
 * Device library internals, shared by its files, the unit tests and the
 * server fuzz target. Nothing here is exported from the shared library.
 */
#ifndef VFMIG_DEVICE_INTERNAL_H
#define VFMIG_DEVICE_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfmig/device.h>

#include "protocol/proto.h"

#define DEV_PAGE_SIZE 4096u
#define DEV_MAX_XFER (1u << 20)      /* max_data_xfer_size we advertise */
#define DEV_MAX_FDS 8u               /* max_msg_fds we advertise */
#define DEV_MAX_DMA_MAPS 1024u       /* max_dma_maps we advertise */
#define DEV_CFG_SIZE_PCI 256u
#define DEV_CFG_SIZE_PCIE 4096u
#define DEV_MSIX_MAX 2048u

/* ---- the connection's bounds and deadlines (docs/io-model.md, "vfio-user
 * connections: device side") ---- */
/* The client must answer every DMA_READ/DMA_WRITE of one helper call
 * (vfmig_dev_dma_read/write, split by its max_data_xfer_size) within
 * this, counted from the first request; nothing the client sends
 * meanwhile moves it. */
#define DEV_CALL_TIMEOUT_MS 10000
/* While waiting for that answer, client commands are kept for later, at
 * most this many and this many bytes (headers included); one more drops
 * the client. */
#define DEV_QUEUE_MAX_MSGS 64u
#define DEV_QUEUE_MAX_BYTES (8u << 20)
/* Send queue: past one largest message (dev_recv_limit) queued the device
 * takes no new command from the client; past this many largest messages
 * the client is dropped. */
#define DEV_TX_LIMIT_MSGS 4u
/* What is queued for the client when the clock starts must have left
 * within this; the clock starts when the queue becomes non-empty and again
 * each time it is met with bytes still queued. */
#define DEV_TX_DRAIN_MS 10000
/* While a data channel is attached, vfmig_dev_get_poll_timeout() is at
 * most this, so that a loop polling only the control socket still pumps
 * the channel. */
#define DEV_DC_TICK_MS 10

/* ---- config space (pci.c) ---- */
struct dev_pci {
	uint8_t cfg[DEV_CFG_SIZE_PCIE];
	uint8_t wmask[DEV_CFG_SIZE_PCIE]; /* bits the client may write */
	uint8_t w1c[DEV_CFG_SIZE_PCIE];   /* write-one-to-clear bits */
	uint32_t size;                    /* 256 or 4096 */
	uint8_t msi_cap, msix_cap, pcie_cap; /* offsets, 0 = absent */
};

/* PCI config offsets and capability IDs used by the library. */
#define PCI_CMD 0x04
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS 0x06
#define PCI_STATUS_INTX 0x0008
#define PCI_STATUS_CAPS 0x0010
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_EXP 0x10
#define PCI_MSI_CTRL_ENABLE 0x0001
#define PCI_MSIX_CTRL_MASKALL 0x4000
#define PCI_MSIX_CTRL_ENABLE 0x8000

void dev_pci_init(struct dev_pci *pci, const struct vfmig_dev_desc *desc);
int dev_pci_read(const struct dev_pci *pci, uint64_t off, void *buf,
		 size_t len);
int dev_pci_write(struct dev_pci *pci, uint64_t off, const void *buf,
		  size_t len);
uint16_t dev_pci_get16(const struct dev_pci *pci, uint32_t off);
uint32_t dev_pci_get32(const struct dev_pci *pci, uint32_t off);
void dev_pci_set16(struct dev_pci *pci, uint32_t off, uint16_t v);
void dev_pci_set32(struct dev_pci *pci, uint32_t off, uint32_t v);
/* Walk the capability list (loop-safe); offset of cap id or 0. */
uint8_t dev_pci_find_cap(const struct dev_pci *pci, uint8_t id);

/* ---- MSI-X table and PBA (msix.c) ---- */
struct dev_msix {
	uint32_t vectors;
	uint8_t *table; /* vectors * 16 bytes, as the guest sees them */
	uint8_t *pba;   /* ceil(vectors / 64) little-endian qwords */
	uint64_t table_off, table_len, pba_off, pba_len;
};

int dev_msix_init(struct dev_msix *m, const struct vfmig_dev_desc *desc);
void dev_msix_fini(struct dev_msix *m);
void dev_msix_reset(struct dev_msix *m);
bool dev_msix_vector_masked(const struct dev_msix *m, uint32_t v);
bool dev_msix_pending(const struct dev_msix *m, uint32_t v);
void dev_msix_set_pending(struct dev_msix *m, uint32_t v, bool on);
/* Emulated access at BAR offset off (must be inside table or PBA). */
int dev_msix_access(struct dev_msix *m, uint64_t off, void *buf, size_t len,
		    bool is_write);
/* Bytes from off that the MSI-X emulation owns (0 = not MSI-X), or the
 * distance to the next MSI-X range in *next (UINT64_MAX if none). */
uint64_t dev_msix_claim(const struct dev_msix *m, uint64_t off,
			uint64_t *next);

/* ---- IRQs (irq.c) ---- */
struct dev_irq_line {
	int efd;      /* eventfd from the client, -1 if none */
	bool masked;  /* SET_IRQS ACTION_MASK */
	bool pending; /* masked trigger to deliver on unmask (not MSI-X) */
	bool held;    /* triggered while stopped for migration */
};

struct dev_irq {
	uint32_t count;
	uint32_t flags; /* VFW_IRQ_INFO_* */
	struct dev_irq_line *lines;
};

/* Pure check of a SET_IRQS request against the IRQ table. payload is the
 * whole request payload; nfds the fds that came with it. 0 or -errno. */
int dev_irq_set_check(const struct dev_irq *irqs, const uint8_t *payload,
		      size_t len, size_t nfds);

/* ---- DMA windows (dma.c) ---- */
struct dev_dma_window {
	uint64_t iova, size;
	uint32_t prot;   /* VFW_DMA_READABLE | VFW_DMA_WRITEABLE */
	uint8_t *map;    /* mmap of the client's fd, or NULL (message based) */
	size_t map_len;  /* length passed to munmap */
	uint8_t *base;   /* map adjusted for the fd offset: iova maps here */
};

struct dev_dma {
	struct dev_dma_window *win;
	size_t n, cap;
};

/* Queued client command that arrived while waiting for a DMA reply. */
struct dev_queued {
	size_t bytes; /* counted against DEV_QUEUE_MAX_BYTES */
	struct vfw_msg msg;
	int err; /* nonzero: answer with this error (e.g. too many fds) */
	struct dev_queued *next;
};

/* ---- DMA dirty logging (dirty.c) ---- */
#define DEV_LOG_MAX_RANGES 256u
#define DEV_LOG_MAX_PAGES (1ull << 30) /* bits over all ranges */

struct dev_log_range {
	uint64_t iova, len; /* page aligned */
	uint64_t *bits;     /* one bit per page, LSB first */
};

struct dev_dlog {
	bool on;
	bool all;         /* num_ranges 0: one range per DMA window */
	uint64_t pgsize;
	struct dev_log_range *r;
	size_t n, cap;
};

/* ---- migration (migration.c) ---- */
struct dev_mig_iface;

struct dev_mig {
	/* The device-state interface the client is offered: never NULL,
	 * &dev_mig_v2 from create, changed by vfmig_dev_set_mig_interface. */
	const struct dev_mig_iface *iface;
	uint32_t state;            /* enum vfw_mig_state */
	uint32_t info_version;     /* negotiated vfmig_mig_info, 0 = off */
	uint32_t dc_version;       /* negotiated vfmig_data_channel, 0 = off */
	uint64_t bytes;            /* bytes moved in the current session */
	uint64_t mem_bytes;        /* region interface: device-memory bytes
				    * fetched or loaded in this session */
};

/* The migration data channel of the current session (datachan.c). */
struct dev_dchan {
	int fd;         /* our end of the client's socket; -1: none */
	bool load;      /* attached in RESUMING: the device reads */
	uint8_t *buf;   /* one frame header + VFW_DC_FRAME_MAX bytes */
	size_t len, off; /* bytes staged in buf, and sent of them */
	bool drained;   /* saving: DRAINED sent, waiting for a poke */
	bool last;      /* saving: END or ERROR staged; close once sent */
	bool eof;       /* loading: the client ended its data */
	int err;        /* the error that stopped the session, or 0 */
	uint64_t bytes; /* stream bytes moved on the channel */
	/* Sealed (version 2): frames carry DEVICE_DATA record checksums for
	 * stream device index seal_index; loading parses frames. */
	bool sealed;
	uint16_t seal_index;
	struct vfmig_stream_seal *seal;
	uint8_t fhdr[sizeof(struct vfw_dc_frame)]; /* loading: a header */
	size_t fhlen;       /* bytes of it received */
	uint32_t fkind;     /* the current frame's kind */
	uint32_t fleft;     /* its data bytes still to come */
	uint8_t ftail[4];   /* a SEALED frame's checksum */
	size_t ftlen;       /* bytes of it received */
};

/* A DEVICE_FEATURE request whose header dev_cmd_feature has checked (argsz
 * covers the header; flags hold only the index, GET, SET and PROBE, at
 * least one of the three, GET with SET only under PROBE), handed to the
 * interface's feature operation. */
struct dev_feat_req {
	struct vfmig_dev *dev;
	struct vfw_msg *msg;
	struct vfw_device_feature f;
	uint32_t index;      /* f.flags & VFW_FEATURE_MASK */
	const uint8_t *data; /* after the feature header */
	size_t len;
};

/*
 * One device-state interface the library can serve. Both share the v2
 * state machine, the sessions and the save/load helpers of migration.c;
 * an interface is how the client reaches them. vfmig_dev_set_mig_interface
 * picks one table, and every place where the interfaces differ calls
 * through dev->mig.iface. A new interface is one new file with one of these
 * tables, listed in migration.c and named by enum vfmig_dev_mig_interface.
 * Operations marked "NULL:" may be left out.
 */
struct dev_mig_iface {
	int iface;        /* enum vfmig_dev_mig_interface */
	const char *name; /* for the log: "migration interface: %s" */
	bool needs_mig;   /* only for a device that migrates (EINVAL else) */
	/* Regions the device has with this interface: VFW_PCI_NUM_REGIONS, or
	 * more when the interface brings its own after the PCI ones. */
	uint32_t num_regions;

	/* Make the interface usable (allocations, control fields to their
	 * reset values); on failure it leaves nothing behind and the previous
	 * interface stays. NULL: nothing to set up. */
	int (*init)(struct vfmig_dev *dev);
	/* Free what init made; also called by vfmig_dev_destroy. NULL: none. */
	void (*fini)(struct vfmig_dev *dev);
	/* DEVICE_RESET, after the v2 state went back to RUNNING. NULL: no
	 * state of its own to reset. */
	void (*reset)(struct vfmig_dev *dev);
	/* The client went away (dirty logging already stopped). NULL: none. */
	void (*client_gone)(struct vfmig_dev *dev);

	/* The interface's own regions, VFW_PCI_NUM_REGIONS up to num_regions
	 * (never called for other indexes); NULL when it has none.
	 * REGION_READ/WRITE of one of them: 0 or -errno. */
	int (*region_access)(struct vfmig_dev *dev, uint32_t index,
			     uint64_t off, void *buf, size_t len,
			     bool is_write);
	/* Its region info and TYPE capability; *with_fd: region_fd goes
	 * along with the reply (dev_region_info_build decides if it may). */
	void (*region_info)(const struct vfmig_dev *dev, uint32_t index,
			    struct vfw_region_info *ri,
			    struct vfw_region_info_cap_type *cap,
			    bool *with_fd);
	/* The memfd sent with GET_REGION_INFO, or -1. */
	int (*region_fd)(const struct vfmig_dev *dev, uint32_t index);

	/* DEVICE_FEATURE, header checked. Returns as a command handler. NULL:
	 * every feature is ENOTSUP. */
	int (*feature)(struct dev_feat_req *rq);
	/* MIG_DATA_READ and MIG_DATA_WRITE (payload at least the
	 * vfw_mig_data header). NULL: both are ENOTSUP. */
	int (*mig_data)(struct vfmig_dev *dev, struct vfw_msg *msg);
	/* VERSION: the size-estimate extension version to echo, given the
	 * client's (0 = off). NULL: never offered. */
	uint32_t (*info_offer)(const struct vfmig_dev *dev, uint32_t client);
	/* VERSION: the data-channel extension version to echo. NULL: never
	 * offered. */
	uint32_t (*dc_offer)(const struct vfmig_dev *dev, uint32_t client);
};

extern const struct dev_mig_iface dev_mig_v2;     /* mig_v2.c */
extern const struct dev_mig_iface dev_mig_region; /* mig_region.c */

/* ---- region-based device-state interface (mig_region.c) ---- */
enum { DEV_DS_CONFIG, DEV_DS_MEMORY, DEV_DS_BITMAP, DEV_DS_NDATA };

struct dev_ds_data {
	uint8_t *mem; /* memfd mapping, shared with a client that maps it */
	int memfd;    /* -1 when absent */
	size_t size;
};

/* The region interface's state, used while dev->mig.iface is
 * &dev_mig_region. */
struct dev_ds {
	uint32_t device_state; /* last value written (VFW_DS_STATE_*) */
	uint64_t config_size, memory_size, memory_pos;
	uint64_t start_addr, page_nr;
	struct dev_ds_data data[DEV_DS_NDATA]; /* regions 10, 11, 12 */
};

struct dev_bar {
	uint8_t *mem; /* mappable: memfd mapping */
	int memfd;    /* mappable: memfd, else -1 */
};

/* An ioeventfd the device offers (vfmig_dev_add_ioeventfd). */
struct dev_ioefd {
	uint32_t bar, size, flags;
	uint64_t offset, datamatch;
	int fd;
};

struct vfmig_dev {
	struct vfmig_dev_desc desc;
	struct vfmig_dev_ops ops;
	void *priv;
	struct vfw_logger log;

	int listen_fd; /* -1 if none */
	int conn_fd;   /* -1 if none */
	char *sock_path; /* set by vfmig_dev_listen, unlinked at destroy */
	uid_t *allow_uids; /* vfmig_dev_set_allowed_uids; NULL: anyone */
	size_t n_allow_uids;
	bool negotiated; /* VERSION done on conn_fd */
	struct vfw_caps peer; /* client's capabilities */
	uint64_t max_xfer;    /* our max_data_xfer_size */
	uint16_t next_msg_id;
	bool broken; /* connection must be dropped */
	struct vfw_rx rx; /* the client's message being received */
	struct vfw_tx tx; /* what the socket could not take yet */
	size_t tx_owed;      /* bytes that must leave by tx_deadline */
	int64_t tx_deadline; /* VFW_FOREVER while nothing is queued */
	struct dev_queued *q_head, *q_tail;
	size_t q_n, q_bytes; /* queued commands, against DEV_QUEUE_MAX_* */
	/* vfmig_dev_run's stop flag while it runs: a DMA wait gives up when
	 * it is set. NULL otherwise. */
	const volatile sig_atomic_t *stop;

	struct dev_pci pci;
	struct dev_msix msix;
	struct dev_irq irqs[VFMIG_DEV_IRQ_NUM];
	struct dev_dma dma;
	struct dev_bar bars[VFMIG_DEV_MAX_BARS];
	struct dev_mig mig;
	struct dev_dlog dlog;
	/* Guards dma, dlog and mig.state against a device's own threads:
	 * vfmig_dev_dma_read/write may run on any thread (device.h,
	 * Threading). Taken for short, never across a callback or a wait
	 * for the client; no other lock of the library is taken inside it.
	 * owner: the thread that last ran vfmig_dev_process() (has_owner
	 * once one did), the only one that may exchange DMA messages. */
	pthread_mutex_t dma_lock;
	/* Test only (VFMIG_DEV_TEST_SKIP_DIRTY_LOG=1 at create): device
	 * writes are not marked in the DMA dirty log, so that tests can
	 * prove a migration verifier catches a device that loses them. */
	bool test_skip_mark;
	pthread_t owner;
	bool has_owner;
	struct dev_ds ds;
	struct dev_dchan dc;
	struct dev_ioefd ioefd[VFMIG_DEV_MAX_IOEVENTFDS];
	uint32_t n_ioefd;
	bool in_kick; /* region_access runs for an ioeventfd's kick */
};

/* dev.c */
void dev_drop_client(struct vfmig_dev *dev);

/* A memfd of size bytes mapped shared at *mem, sealed against resizing
 * (a client it is passed to cannot shrink it under the mapping). */
int dev_memfd_create(const char *name, size_t size, int *fd, void **mem);

/* dispatch.c: handle one received command message (consumes msg). */
void dev_dispatch(struct vfmig_dev *dev, struct vfw_msg *msg);
/* Send a reply (with fds) unless the request said No_reply. It is queued
 * when the socket cannot take it now, never waited for. A failed send
 * marks the connection broken and still returns 0: the peer is gone. */
int dev_reply(struct vfmig_dev *dev, const struct vfw_header *req,
	      const void *payload, size_t len);
int dev_reply_fds(struct vfmig_dev *dev, const struct vfw_header *req,
		  const struct iovec *iov, int iovcnt, const int *fds,
		  size_t nfds);
/* A bad command: answer with err unless No_reply. */
void dev_reply_error(struct vfmig_dev *dev, const struct vfw_header *req,
		     int err);

/* access.c */
/* With allowed uids set: true when the peer of the connected socket fd
 * is one of them; else false, logged at warning level naming the uid and
 * where (the socket path). The caller closes a refused fd. */
bool dev_peer_allowed(struct vfmig_dev *dev, int fd, const char *where);

/* transport.c */
/* Start and end the connection state for conn_fd (rx, tx, queue). */
void dev_conn_start(struct vfmig_dev *dev, int fd);
void dev_conn_end(struct vfmig_dev *dev);
/* Send one message through the send queue: 0, or a negative errno with
 * the connection marked broken (logged). Never waits. */
int dev_send(struct vfmig_dev *dev, struct vfw_header *hdr,
	     const struct iovec *iov, int iovcnt, const int *fds, size_t nfds);
/* POLLIN/POLLOUT wanted on the poll fd, and how long the caller may
 * sleep (-1: no deadline), as in vfmig_dev_get_poll_events/_timeout. */
int dev_transport_events(const struct vfmig_dev *dev);
int dev_transport_timeout(const struct vfmig_dev *dev);
int dev_transport_process_one(struct vfmig_dev *dev, bool *handled);
/* While a client is attached: accept and close every connection waiting
 * on the listening socket, logging each at warning level. */
void dev_transport_refuse_extra(struct vfmig_dev *dev);
/* Largest message we accept from the client, and send to it. */
size_t dev_recv_limit(const struct vfmig_dev *dev);
/* Send a server->client request and wait for its reply until deadline
 * (fixed by the caller when the DMA began: nothing the client sends moves
 * it); commands that arrive meanwhile are queued (DEV_QUEUE_MAX_*).
 * Anything else (another reply, a broken stream, the deadline, a full
 * queue, the run loop's stop flag) drops the client and gives -EIO.
 * *reply must be released by the caller. */
int dev_transport_call(struct vfmig_dev *dev, uint16_t cmd,
		       const struct iovec *iov, int iovcnt, int64_t deadline,
		       struct vfw_msg *reply);

/* Server-side command handlers, by concern. Each returns 0 after sending
 * its reply itself, or a negative errno for dispatch to send. */
int dev_cmd_version(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_dma_map(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_dma_unmap(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_get_region_info(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_get_region_io_fds(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_region_rw(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_write_multi(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_get_irq_info(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_set_irqs(struct vfmig_dev *dev, struct vfw_msg *msg);

/* ioeventfd.c */
/* Read every signalled ioeventfd and call region_access for it (only while
 * RUNNING or PRE_COPY; otherwise the kicks wait in the counters). Returns
 * how many kicks were served. */
int dev_ioefd_serve(struct vfmig_dev *dev);
/* Whether the ioeventfds are to be polled now (the device runs). */
bool dev_ioefd_live(const struct vfmig_dev *dev);
/* A client went: new eventfds for the next one (the one that left still
 * holds the old ones, and may not ring the device any more). One that
 * cannot be made is offered no more (fd -1, logged). */
void dev_ioefd_renew(struct vfmig_dev *dev);
void dev_ioefd_fini(struct vfmig_dev *dev);

/* regions.c */
int dev_region_access(struct vfmig_dev *dev, uint32_t region, uint64_t off,
		      void *buf, size_t len, bool is_write);
/* Build the GET_REGION_INFO reply for index given the client's argsz.
 * *out is malloc'd (free it); *with_fd tells whether the region's memfd
 * (dev_region_fd) goes along. An argsz too small for the capabilities
 * gets the bare struct with the full argsz and neither CAPS, MMAP nor an
 * fd. Pure apart from allocation. */
int dev_region_info_build(const struct vfmig_dev *dev, uint32_t index,
			  uint32_t argsz, uint8_t **out, size_t *outlen,
			  bool *with_fd);
/* The memfd passed with GET_REGION_INFO for index, or -1. */
int dev_region_fd(const struct vfmig_dev *dev, uint32_t index);
/* Regions the device has: 9, or 13 with the region interface. */
uint32_t dev_num_regions(const struct vfmig_dev *dev);

/* irq.c */
int dev_irq_init(struct vfmig_dev *dev);
void dev_irq_fini(struct vfmig_dev *dev);
void dev_irq_close_all(struct vfmig_dev *dev);
void dev_irq_reset(struct vfmig_dev *dev);
/* After a config or MSI-X table write: deliver what became unmasked. */
void dev_irq_deliver_pending(struct vfmig_dev *dev);
void dev_irq_notify(struct vfmig_dev *dev, unsigned int index);

/* guard.c: copies to or from a client's mapped memory that survive the
 * client truncating the file behind it. A SIGBUS inside [map, map +
 * map_len) during the copy makes it return -EFAULT; other SIGBUS go to the
 * handler that was there before. dev_guard_init() installs the handler
 * once per process (0 or -errno); call it before the first guarded copy. */
int dev_guard_init(void);
int dev_guarded_copy(void *dst, const void *src, size_t len, const void *map,
		     size_t map_len);

/* dma.c */
void dev_dma_clear(struct vfmig_dev *dev);
const struct dev_dma_window *dev_dma_find(const struct dev_dma *dma,
					  uint64_t iova, uint64_t len);

/* migration.c */
bool dev_mig_supported(const struct vfmig_dev *dev);
/* May a command run in the current migration state (docs/device-migration.md,
 * "While stopped")? */
bool dev_mig_cmd_allowed(const struct vfmig_dev *dev, unsigned int cmd);
/* Device DMA and interrupt delivery allowed (a running state)? */
bool dev_mig_running(const struct vfmig_dev *dev);
/* VERSION: the extension version to echo (0 = off), from the client's;
 * the interface's info_offer. */
uint32_t dev_mig_info_offer(const struct vfmig_dev *dev, uint32_t client);
uint32_t dev_mig_dc_offer(const struct vfmig_dev *dev, uint32_t client);
/* DEVICE_RESET: back to RUNNING, sessions dropped, held IRQs delivered,
 * then the interface's reset. */
void dev_mig_reset(struct vfmig_dev *dev);
/* The client is gone: the interface's client_gone. */
void dev_mig_client_gone(struct vfmig_dev *dev);
/* vfmig_dev_destroy: the interface's fini. */
void dev_mig_fini(struct vfmig_dev *dev);
/* DEVICE_FEATURE and MIG_DATA_*: common checks, then the interface's
 * feature and mig_data operations. */
int dev_cmd_feature(struct vfmig_dev *dev, struct vfw_msg *msg);
int dev_cmd_mig_data(struct vfmig_dev *dev, struct vfw_msg *msg);
/* Go to v2 state target as a MIG_DEVICE_STATE SET would (same arcs, same
 * recovery, ERROR on a refused load). 0 or -errno. */
int dev_mig_goto(struct vfmig_dev *dev, uint32_t target);
/* Saving state: fill buf with up to len bytes of the save stream
 * (mig_save called until full or 0). *got gets the count. 0 or -errno. */
int dev_mig_save_chunk(struct vfmig_dev *dev, uint8_t *buf, size_t len,
		       size_t *got);
/* RESUMING: hand len bytes to mig_load; all must be taken. 0 or -errno. */
int dev_mig_load_chunk(struct vfmig_dev *dev, const uint8_t *buf,
		       size_t len);

/* datachan.c */
bool dev_dc_active(const struct vfmig_dev *dev);
/* SET VFMIG_DATA_CHANNEL with fd (always taken) and its payload. */
int dev_dc_attach(struct vfmig_dev *dev, int fd, const uint8_t *data,
		  size_t len);
void dev_dc_close(struct vfmig_dev *dev, const char *why);
/* Move what the socket takes or has now, never waiting. */
void dev_dc_pump(struct vfmig_dev *dev);
/* POLLIN/POLLOUT the channel waits for (0 without one). */
int dev_dc_events(const struct vfmig_dev *dev);
/* After every state change: a channel outlives only its own session. */
void dev_dc_state_changed(struct vfmig_dev *dev, uint32_t from, uint32_t to);
/* RESUMING->STOP: the client's data must have ended and loaded. 0 or
 * -errno (the load is then refused). */
int dev_dc_load_finish(struct vfmig_dev *dev);
/* GET VFMIG_DATA_CHANNEL while loading: load what the socket holds now,
 * then *loaded is every byte loaded so far. -EINVAL without a loading
 * channel; the load's error, or -EPIPE when the client's end failed. */
int dev_dc_load_sync(struct vfmig_dev *dev, uint64_t *loaded);

/* dirty.c */
int dev_dlog_start(struct vfmig_dev *dev, const uint8_t *data, size_t len,
		   uint64_t *pgsize_out);
/* Start logging every DMA window (now and later) at page size pgsize. */
int dev_dlog_start_all(struct vfmig_dev *dev, uint64_t pgsize);
/* Report [iova, iova + pages * 4 KiB) at 4 KiB pages into bm (pages bits,
 * zeroed by the caller), clearing what it reports. Pages no range logs
 * stay 0 (the device cannot have written them). The range must not wrap
 * and logging must be on (else -EINVAL). */
int dev_dlog_fill(struct vfmig_dev *dev, uint64_t iova, uint64_t pages,
		  uint64_t *bm);
void dev_dlog_stop(struct vfmig_dev *dev);
/* Validate a REPORT and build the bitmap (clearing what it reports).
 * *bitmap is malloc'd, *bytes long. */
int dev_dlog_report(struct vfmig_dev *dev, const struct vfw_dma_logging_report *rq,
		    uint64_t max_bytes, uint64_t **bitmap, size_t *bytes);
void dev_dlog_mark(struct vfmig_dev *dev, uint64_t iova, uint64_t len);
int dev_dlog_window_added(struct vfmig_dev *dev, uint64_t iova, uint64_t size);
void dev_dlog_window_removed(struct vfmig_dev *dev, uint64_t iova,
			     uint64_t size);

/* irq.c */
void dev_irq_release_held(struct vfmig_dev *dev);
void dev_irq_drop_held(struct vfmig_dev *dev);

/* Fuzz/test hooks. */
/* Handle at most one pending message; returns 1 if one was handled, 0 if
 * none was pending, -ENOTCONN when there is no client any more. */
int vfmig_dev__process_one(struct vfmig_dev *dev);
/* Override the max_data_xfer_size advertised (before VERSION). */
void vfmig_dev__set_max_xfer(struct vfmig_dev *dev, uint64_t max_xfer);

#define DEV_LOG(dev, lvl, ...) vfw_log(&(dev)->log, (lvl), __VA_ARGS__)

#endif /* VFMIG_DEVICE_INTERNAL_H */
