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
 * loop around vfmig_dev_get_poll_fd(), vfmig_dev_get_poll_events(),
 * vfmig_dev_get_poll_timeout() and vfmig_dev_process() ->
 * vfmig_dev_destroy().
 *
 * I/O (docs/io-model.md, "vfio-user connections: device side"): the
 * library never waits for the client, except inside a DMA exchange that a
 * device callback asked for (vfmig_dev_dma_read/write on a window without
 * an fd, at most 10 s). Replies are queued when the socket cannot take
 * them; while more than one largest message (1 MiB + 80 bytes) waits the
 * device takes no new command from the client; a client that leaves what
 * was queued for it unread for 10 s, lets the queue pass four largest
 * messages, leaves a begun message unfinished for 10 s, or floods more
 * than 64 commands or 8 MiB during a DMA exchange is dropped with a log
 * line saying why.
 *
 * Threading: a vfmig_dev is not thread-safe, with one exception. Call every
 * function from the thread that runs vfmig_dev_process()/vfmig_dev_run(),
 * typically from inside a callback, except vfmig_dev_dma_read() and
 * vfmig_dev_dma_write(): a device may call those from its own threads too
 * (a DMA engine's worker), concurrently with the library's thread. The
 * library then keeps DMA_MAP/UNMAP, dirty logging and the migration
 * state consistent with them: a write to a mapped window and its dirty
 * mark are one step, and a call that finds the device stopped is refused
 * (-EPERM). The library never calls back into the device while it holds
 * the lock that takes, so a device may hold its own lock around these
 * calls, and its mig_transition may wait for its threads to stop using
 * guest memory (that is how a device makes sure no DMA happens after
 * STOP). A window the client gave no fd for needs DMA_READ/WRITE messages
 * on the connection: from a thread other than the one that runs
 * vfmig_dev_process() the calls give -EAGAIN there. Interrupts
 * (vfmig_dev_irq_trigger) stay on the library's thread.
 *
 * Tests only: with VFMIG_DEV_TEST_SKIP_DIRTY_LOG=1 in the environment when
 * vfmig_dev_create() runs, that device's writes are not marked in the DMA
 * dirty log. It exists so that tests can prove that a migration verifier
 * catches a device that loses its dirty pages; never set it otherwise.
 *
 * Errors: every function returning int returns 0 (or a non-negative count)
 * on success and a negative errno on failure; vfmig_dev_strerror() names it.
 * The library never prints and never exits.
 *
 * Signals: the first time a client maps a DMA window with an fd, the
 * library installs a SIGBUS handler (once per process). It catches only
 * faults inside the library's own copies to and from mapped DMA windows (a
 * client that truncated the file: the copy fails with -EFAULT, the window
 * and the client are dropped); every other SIGBUS goes to the handler that
 * was installed before it, or gets the default action. An application
 * that installs its own SIGBUS handler later must chain to the one it
 * replaces. The library has no call that hands out pointers into guest
 * memory: access it only through vfmig_dev_dma_read/write. (Mappable BAR
 * memory, vfmig_dev_bar_ptr, is the library's own memfd, sealed so that a
 * client cannot shrink it.)
 */
#ifndef VFMIG_DEVICE_H
#define VFMIG_DEVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfmig/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque device handle. */
typedef struct vfmig_dev vfmig_dev;

#define VFMIG_DEV_MAX_BARS 6
#define VFMIG_DEV_MAX_EXCLUDES 4
#define VFMIG_DEV_MAX_IOEVENTFDS 8

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

#define VFMIG_DEV_DESC_VERSION 1

/*
 * Static description of a PCI device; copied by vfmig_dev_create().
 * version must be VFMIG_DEV_DESC_VERSION of the header the caller was built
 * with. Members are never reordered; a later version only appends, and the
 * library reads only the members the caller's version has.
 */
struct vfmig_dev_desc {
	uint32_t version;
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

/* Migration states (the VFIO v2 state machine, same values as vfio-user). */
enum vfmig_dev_mig_state {
	VFMIG_DEV_MIG_ERROR = 0,
	VFMIG_DEV_MIG_STOP = 1,
	VFMIG_DEV_MIG_RUNNING = 2,
	VFMIG_DEV_MIG_STOP_COPY = 3,
	VFMIG_DEV_MIG_RESUMING = 4,
	VFMIG_DEV_MIG_RUNNING_P2P = 5,
	VFMIG_DEV_MIG_PRE_COPY = 6,
	VFMIG_DEV_MIG_PRE_COPY_P2P = 7,
};

/* Migration support flags (struct vfmig_dev_ops.mig_flags). */
#define VFMIG_DEV_MIG_F_STOP_COPY (1ull << 0) /* required to migrate */
#define VFMIG_DEV_MIG_F_P2P (1ull << 1)       /* RUNNING_P2P, PRE_COPY_P2P */
#define VFMIG_DEV_MIG_F_PRE_COPY (1ull << 2)  /* PRE_COPY, iterative data */
/* The device does not offer DMA dirty logging: DMA_LOGGING_START, STOP and
 * REPORT are refused as unsupported, and the region interface reports no
 * system-memory capability. For a device whose writes to guest memory the
 * library cannot see; a VMM then takes all of guest RAM as dirty at the
 * switchover. A library flag: never sent on the wire. */
#define VFMIG_DEV_MIG_F_NO_DIRTY_LOG (1ull << 32)

/* Size estimates a migrating device reports (mig_estimate callback). */
struct vfmig_dev_mig_estimate {
	/* PRE_COPY: bytes of the initial data not read yet (starts at the
	 * size of the first full pass, falls to 0 as it is read). */
	uint64_t initial_bytes;
	/* PRE_COPY: bytes of changed data not read yet. */
	uint64_t dirty_bytes;
	/* Any state: estimated bytes a STOP_COPY session would return now. */
	uint64_t stop_copy_bytes;
};

#define VFMIG_DEV_OPS_VERSION 3

/*
 * Callbacks. version is 1 (no migration: the members up to client_changed),
 * 2 (adds the migration members) or 3 (adds mig_load_place). Members are never reordered; a later
 * version only appends. Every callback gets the device and the caller's
 * priv pointer. Callbacks run on the thread that calls
 * vfmig_dev_process()/run() and may call the helpers
 * (vfmig_dev_irq_trigger, vfmig_dev_dma_read/write, ...).
 *
 * Migration (version 2, mig_flags != 0; docs/device-migration.md):
 * the library runs the state machine, the MIG_DATA_READ/WRITE sessions and
 * DMA dirty logging; the device implements single arcs and produces or
 * consumes its own opaque data stream. The state starts at RUNNING. Only
 * the client changes it (DEVICE_FEATURE MIG_DEVICE_STATE, DEVICE_RESET).
 * While the state is STOP, STOP_COPY, RESUMING or ERROR the library refuses
 * device DMA (vfmig_dev_dma_read/write give -EPERM) and holds interrupts
 * (vfmig_dev_irq_trigger returns 0; they are delivered when the device
 * enters RUNNING or PRE_COPY again; held interrupts are not migrated).
 * REGION_READ/WRITE still reach region_access while stopped: a device must
 * not change its migrated state there (vfmig_dev_mig_state() tells).
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
	 * state and IRQ masks are reset by the library. A migrating device
	 * also drops any save or load session: the library puts the state
	 * back to RUNNING (also out of ERROR) and stops DMA logging, without
	 * calling mig_transition. Return 0 or -errno (the reset then fails
	 * and nothing changes). */
	int (*reset)(vfmig_dev *dev, void *priv);
	/* Optional. IRQ configuration of index changed (eventfds assigned or
	 * removed, masks changed, MSI/MSI-X enabled in config space). */
	void (*irq_changed)(vfmig_dev *dev, void *priv, unsigned int index);
	/* Optional. A client completed VERSION (attached true) or went away
	 * (attached false; its DMA windows and eventfds are already gone). */
	void (*client_changed)(vfmig_dev *dev, void *priv, bool attached);

	/* ---- version 2: migration. mig_flags 0 = not migratable (the
	 * callbacks below are then ignored and may be NULL). ---- */

	/* VFMIG_DEV_MIG_F_*: STOP_COPY is required when non-zero; PRE_COPY
	 * and P2P are optional. */
	uint64_t mig_flags;
	/*
	 * Required. Make the single arc from -> to (enum vfmig_dev_mig_state;
	 * the library walks longer paths arc by arc, docs/device-migration.md):
	 *   RUNNING->STOP, STOP_COPY->STOP: stop (no DMA, no interrupts, no
	 *     state change); leaving STOP_COPY ends the save session.
	 *   STOP->RUNNING, PRE_COPY->RUNNING: run; leaving PRE_COPY ends the
	 *     save session.
	 *   RUNNING->PRE_COPY, STOP->STOP_COPY: start a save session (the next
	 *     mig_save returns its first bytes).
	 *   PRE_COPY->STOP_COPY: stop; the same session goes on and carries
	 *     the final state.
	 *   STOP->RESUMING: start a load session (reset internal state).
	 *   RESUMING->STOP: called after mig_load_finish succeeded.
	 *   P2P arcs only when VFMIG_DEV_MIG_F_P2P is set.
	 * Return 0, or a negative errno when the arc cannot be made; the device
	 * must then still be in state `from`. The library then tries to go
	 * back to the state the request started from (ERROR if that fails too)
	 * and answers the client with this errno.
	 */
	int (*mig_transition)(vfmig_dev *dev, void *priv, uint32_t from,
			      uint32_t to);
	/*
	 * Required. In PRE_COPY or STOP_COPY: copy up to len (>= 1) bytes of
	 * the save stream into buf. Return the count; fewer than len is fine
	 * (the library calls again to fill a reply). 0 means "nothing more for
	 * now" in PRE_COPY and "end of data" in STOP_COPY. A negative errno is
	 * sent to the client as the MIG_DATA_READ error.
	 */
	ssize_t (*mig_save)(vfmig_dev *dev, void *priv, void *buf, size_t len);
	/*
	 * Optional (needed for the size-estimate extension, which is offered
	 * only when this is set). Fill *est; any state but ERROR. 0 or -errno.
	 */
	int (*mig_estimate)(vfmig_dev *dev, void *priv,
			    struct vfmig_dev_mig_estimate *est);
	/*
	 * Required. In RESUMING: consume len (>= 1) bytes of the stream a
	 * save session produced (records may be split anywhere: buffer a
	 * partial record). Return len when all was taken, a smaller count
	 * (the client gets EINVAL) or a negative errno (sent to the client).
	 */
	ssize_t (*mig_load)(vfmig_dev *dev, void *priv, const void *buf,
			    size_t len);
	/*
	 * Required. RESUMING->STOP is being made: check that everything
	 * written forms a complete, consistent state and apply it. A negative
	 * errno fails the arc; the device then goes to ERROR (leave it with
	 * DEVICE_RESET). Log why through your own logger.
	 */
	int (*mig_load_finish)(vfmig_dev *dev, void *priv);

	/* ---- version 3 ---- */

	/*
	 * Optional. In RESUMING, on the data channel only, before the library
	 * receives the next bytes of the load session: if those bytes are
	 * known to belong at some place in the device's own memory (page data
	 * whose record header mig_load has already parsed), return that place
	 * and lower *len (at most 1 MiB on entry) to how many of the next
	 * bytes belong there; else return NULL. The library then receives up
	 * to *len bytes straight there and hands them to mig_load as usual,
	 * with buf pointing at that place: mig_load must treat them exactly as
	 * if it had copied them there (and not copy them onto themselves).
	 * Returning NULL, lower *len to how many of the next bytes mig_load
	 * should see (from the library's buffer) before it may place again,
	 * e.g. the rest of a record header, so that the data after it is not
	 * received into the buffer along with it. The client never chooses
	 * the place: only the device's own parser does.
	 */
	void *(*mig_load_place)(vfmig_dev *dev, void *priv, size_t *len);
};

/*
 * Create a device. desc and ops are copied; priv is handed back to every
 * callback and is not touched by the library. On success *out owns the
 * device (free with vfmig_dev_destroy) and mappable BAR memory is zeroed.
 * Errors: -EINVAL (NULL argument, desc->version not one this library knows
 * (1; 0 = unset), ops->version not 1, 2 or 3, region_access
 * missing, mig_flags without STOP_COPY or with unknown bits, a required
 * migration callback missing, bad BAR size/flags, MSI/MSI-X layout invalid or overlapping),
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
 * Create a listening UNIX stream socket at path. The file appears only
 * once the socket listens (it is bound under a temporary name in the same
 * directory and renamed), so whoever waits for the file may connect at
 * once. The file is 0600 whatever the umask, in a directory created 0700
 * if missing (see vfmig_dev_listen_ex for the mode and the directory
 * checks). A stale socket file at path is replaced; any other file is not.
 * The device then serves one client at a time: a connection that arrives
 * while a client is attached is accepted and closed at once (the newcomer
 * sees EOF or ECONNRESET) and logged at warning level; the attached client
 * is not disturbed.
 * Errors: -EINVAL (NULL/too long path), -EBUSY (already listening or
 * attached), -EADDRINUSE (a non-socket file is at path), -ENOMEM, or the
 * errno of socket/bind/listen/rename.
 */
VFMIG_EXPORT int vfmig_dev_listen(vfmig_dev *dev, const char *path);

#define VFMIG_DEV_LISTEN_OPTS_VERSION 1

/*
 * Options of vfmig_dev_listen_ex(); NULL there means all defaults.
 * version must be VFMIG_DEV_LISTEN_OPTS_VERSION of the header the caller
 * was built with; later versions only append.
 */
struct vfmig_dev_listen_opts {
	uint32_t version;
	/* Permission bits of the socket file, exactly (the umask does not
	 * apply), e.g. 0660 to let a group connect. 0: 0600. Bits outside
	 * 0777, or a mode without owner read and write, give -EINVAL. */
	uint32_t mode;
};

/*
 * vfmig_dev_listen() with options. The socket file is never, even for an
 * instant, wider than its mode (0600 by default). Its directory is
 * created 0700 (with any missing parent) when it does not exist; an
 * existing directory that every user may write and that is not sticky is
 * refused (-EACCES: anyone could put a socket of their own in its place),
 * one its group may write or that belongs to another user than the caller
 * or root gives a warning in the log. Every failure is logged with its
 * reason. vfmig_dev_listen(dev, path) is vfmig_dev_listen_ex(dev, path,
 * NULL).
 * Errors: as vfmig_dev_listen, and -EINVAL (unknown opts version, bad
 * mode), -EACCES (directory open to everyone), -ENOTDIR, or the errno of
 * mkdir/chmod.
 */
VFMIG_EXPORT int vfmig_dev_listen_ex(vfmig_dev *dev, const char *path,
				     const struct vfmig_dev_listen_opts *opts);

/*
 * Serve only clients whose uid (SO_PEERCRED, the effective uid of the
 * process that connected) is one of the n uids; n 0 serves anyone who can
 * open the socket (the default). The list is copied and replaces any
 * earlier one; it applies to every client accepted from now on, from
 * vfmig_dev_listen(_ex) or a listening socket given to
 * vfmig_dev_attach_fd(), and to a connected socket given to
 * vfmig_dev_attach_fd() (refused there with -EACCES). A refused client is
 * closed at accept (it sees EOF or ECONNRESET) and logged at warning level
 * with its uid and the socket path; the device goes on listening.
 * Errors: -EINVAL (NULL dev, uids NULL with n > 0, n > 64), -ENOMEM.
 */
VFMIG_EXPORT int vfmig_dev_set_allowed_uids(vfmig_dev *dev, const uid_t *uids,
					    size_t n);

/*
 * Hand the device a socket. The library owns fd from this call on, whatever
 * it returns, as vfmig_vmm_dev_adopt_fd() does: on success it is closed
 * when the client is dropped or by vfmig_dev_destroy; on failure it is
 * closed before the call returns. The caller never closes it (nor passes
 * an fd the device already has). A listening socket (SO_ACCEPTCONN) is used
 * to accept clients; any other stream socket is taken as an
 * already-connected client, and made non-blocking.
 * Errors: -EBADF (fd < 0: nothing is closed), -ENOTSOCK, -EINVAL (NULL dev,
 * not a stream socket), -EBUSY (already listening or attached), -EACCES
 * (a connected socket whose peer is not an allowed uid, see
 * vfmig_dev_set_allowed_uids).
 */
VFMIG_EXPORT int vfmig_dev_attach_fd(vfmig_dev *dev, int fd);

/*
 * The fd to poll, for the events vfmig_dev_get_poll_events() gives: the
 * connected client's socket, else the listening socket. -ENOTCONN when the
 * device has neither. The fd may change after vfmig_dev_process(); ask
 * again each loop iteration. While a client is attached the listening
 * socket is not this fd, so a loop that polls only this fd refuses a
 * second client at the first client's next message; vfmig_dev_run()
 * watches both and refuses it at once.
 */
VFMIG_EXPORT int vfmig_dev_get_poll_fd(const vfmig_dev *dev);

/*
 * The poll events to wait for on vfmig_dev_get_poll_fd() now: POLLIN while
 * the device takes input, POLLOUT while output waits to be sent to the
 * client. While more than one largest message waits, only POLLOUT: the
 * device takes no new command from a client that does not read its
 * replies. An event loop must poll for exactly these (a loop that polls
 * only POLLIN stalls replies that did not fit the socket). -EINVAL (NULL),
 * -ENOTCONN (no socket). Ask again each iteration.
 */
VFMIG_EXPORT int vfmig_dev_get_poll_events(const vfmig_dev *dev);

/*
 * How long (ms) the caller may wait for those events before it must call
 * vfmig_dev_process() anyway: -1 when no deadline runs, 0 when work is
 * ready without I/O (commands kept during a DMA exchange), else the time
 * to the next connection deadline (a message the client began, output it
 * has not read), so that a client that stalls is dropped on time. -EINVAL
 * for NULL. Ask again each iteration.
 */
VFMIG_EXPORT int vfmig_dev_get_poll_timeout(const vfmig_dev *dev);

/*
 * The migration data channel (vfmig extension "vfmig_data_channel",
 * docs/protocol-extensions.md): while a client has attached one for the
 * current save or load session, its socket and the poll events to wait
 * for on it (POLLIN, POLLOUT); -ENOENT (events: 0) when none is attached,
 * -EINVAL for NULL. The library pumps the channel in vfmig_dev_process(),
 * without ever waiting on it; an event loop of its own should poll this fd
 * too (vfmig_dev_run() does). A loop that does not still moves the data,
 * slower: while a channel is attached vfmig_dev_get_poll_timeout() is at
 * most 10 ms. Ask again each iteration: the fd comes and goes with the
 * sessions.
 */
VFMIG_EXPORT int vfmig_dev_get_data_fd(const vfmig_dev *dev);
VFMIG_EXPORT int vfmig_dev_get_data_events(const vfmig_dev *dev);

/*
 * Non-blocking step: accept a pending client, or refuse any waiting one
 * (see vfmig_dev_listen), send what output the socket takes, and handle
 * every message that is wholly there from the connected client (at most
 * 1024 per call, so a flooding client cannot starve the caller's loop).
 * Returns the number of messages handled (0 when nothing was pending). A
 * message that has only partly arrived is kept for the next call; it must
 * be whole within 10 s of its first byte. Replies are queued when the
 * socket cannot take them, never waited for; while more than one largest
 * message is queued no new command is taken. The call never waits, except
 * inside a callback's synchronous DMA exchange (vfmig_dev_dma_read/write,
 * at most 10 s). A client that goes away, breaks the framing, or misses a
 * deadline or bound (see the top of this file) is dropped with a log line
 * (the device keeps its state) and the device listens again; that is not
 * an error. Errors: -ENOTCONN (no client and no listening socket), -ENOMEM,
 * or an errno from accept().
 */
VFMIG_EXPORT int vfmig_dev_process(vfmig_dev *dev);

/*
 * Serve until *stop becomes nonzero (checked at least every 100 ms, so a
 * signal handler may set it) or a fatal error. Polls for
 * vfmig_dev_get_poll_events() with vfmig_dev_get_poll_timeout(). A DMA
 * exchange that a callback started while this runs also gives up within
 * 100 ms of *stop becoming nonzero (the DMA fails with -EIO and the client
 * is dropped), so a stop is never held up by a client that does not
 * answer. Returns 0 when stopped, or when a directly attached client left
 * and there is no listening socket; a negative errno otherwise.
 */
VFMIG_EXPORT int vfmig_dev_run(vfmig_dev *dev, const volatile sig_atomic_t *stop);

/* Close every socket and fd, unmap everything, free the device. NULL ok.
 * A socket file created by vfmig_dev_listen() is unlinked. */
VFMIG_EXPORT void vfmig_dev_destroy(vfmig_dev *dev);

/*
 * ioeventfds (vfio-user DEVICE_GET_REGION_IO_FDS). Offer the client an
 * eventfd for the bytes [offset, offset + size) of BAR bar (size 1, 2, 4
 * or 8, offset a multiple of size, inside a memory BAR that is not
 * mappable, not overlapping the MSI-X table, PBA or another ioeventfd).
 * A client such as a KVM VMM may then have the guest's writes there
 * signal the eventfd instead of sending REGION_WRITE; it may as well not
 * (it keeps sending messages, which reach region_access as before), so a
 * device must handle both.
 *
 * With VFMIG_DEV_IOEVENTFD_DATAMATCH only writes of datamatch (size
 * bytes, little-endian) signal it; other values are written as messages.
 *
 * The library reads the eventfd in vfmig_dev_process() and calls
 * region_access(dev, priv, bar, offset, buf, size, true) once for each
 * time it finds it signalled (several writes between two looks are one
 * call: an eventfd counts, it does not queue values). The value written is
 * not carried: buf holds datamatch with DATAMATCH, else zeros. Inside
 * that call vfmig_dev_write_is_kick() returns true, so that a doorbell
 * whose value matters can take it from elsewhere (the dma sample reads the
 * tail the driver published in guest memory). Kicks are served only while
 * the migration state is RUNNING or PRE_COPY; in other states they wait
 * in the eventfd's counter and are served when the device runs again. A
 * kick region_access fails is logged at warning level.
 *
 * Call before a client attaches. Each client gets eventfds of its own
 * (offered to one that takes fds: max_msg_fds >= the count): when a
 * client goes they are replaced, so that it cannot ring the device any
 * more, and a kick found while no client is attached is dropped. Returns the ioeventfd's number (0, 1, ..). Errors: -EINVAL
 * (NULL dev, bad bar, range or flags, overlap, a mappable or I/O BAR),
 * -ENOSPC (VFMIG_DEV_MAX_IOEVENTFDS already), -EBUSY (a client is
 * attached), or the errno of eventfd().
 */
#define VFMIG_DEV_IOEVENTFD_DATAMATCH (1u << 0)
VFMIG_EXPORT int vfmig_dev_add_ioeventfd(vfmig_dev *dev, unsigned int bar,
					 uint64_t offset, uint32_t size,
					 uint32_t flags, uint64_t datamatch);

/*
 * For an event loop of its own: the eventfds to poll for POLLIN now, up
 * to max of them into fds; returns how many. None (0) while the device is
 * not RUNNING or PRE_COPY, because their kicks are then left waiting (an
 * fd that stays readable would make the loop spin). vfmig_dev_run()
 * polls them itself. -EINVAL for NULL dev (or fds NULL with max > 0).
 */
VFMIG_EXPORT int vfmig_dev_get_ioeventfd_fds(const vfmig_dev *dev, int *fds,
					     unsigned int max);

/* Inside region_access: true when this write is an ioeventfd's kick (its
 * buf is not what the client wrote, see vfmig_dev_add_ioeventfd); false
 * for a REGION_WRITE and outside a callback. */
VFMIG_EXPORT bool vfmig_dev_write_is_kick(const vfmig_dev *dev);

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
 * capability, or no eventfd from the client, drops the interrupt. While the
 * device is stopped for migration (STOP, STOP_COPY, RESUMING, ERROR) the
 * trigger is held and replayed when it enters RUNNING or PRE_COPY; a
 * DEVICE_RESET discards held triggers.
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
 * gave no fd. That exchange is synchronous: the call blocks the calling
 * thread until the client has answered every message (the transfer is
 * split by the client's max_data_xfer_size), at most 10 s from the call
 * in all; a client sending other messages meanwhile does not extend it.
 * Client commands arriving meanwhile are kept, at most 64 of them and
 * 8 MiB, and handled afterwards in order. A copy from a mapped window is
 * guarded: if the client truncated the file behind it, the call fails with
 * -EFAULT and the window and the client are dropped (see Signals above).
 * Errors: -EFAULT (not inside one window, no permission, or the mapped
 * memory is gone), -EAGAIN (a window without an fd, from a thread other
 * than the library's: see Threading), -ENOTCONN (no client), -EIO (client answered with an
 * error, broke the exchange, missed the deadline or passed the bound; all
 * but an error reply drop the client), -ENOMEM.
 */
VFMIG_EXPORT int vfmig_dev_dma_read(vfmig_dev *dev, uint64_t iova, void *buf,
				    size_t len);

/* Write len bytes from buf to guest memory at iova. As vfmig_dev_dma_read,
 * needing a writeable window. Writes through a mapped window are recorded
 * in the DMA dirty log while the client has logging on; writes done with
 * DMA_WRITE messages are the client's to record. Both calls give -EPERM
 * while the device is stopped for migration (STOP, STOP_COPY, RESUMING,
 * ERROR). */
VFMIG_EXPORT int vfmig_dev_dma_write(vfmig_dev *dev, uint64_t iova,
				     const void *buf, size_t len);

/*
 * Read the emulated config space (what the client sees). Errors: -EINVAL
 * when [off, off + len) is outside the config space (256 or 4096 bytes).
 */
VFMIG_EXPORT int vfmig_dev_config_read(const vfmig_dev *dev, uint32_t off,
				       void *buf, size_t len);

/* How the device offers migration to the client. */
enum vfmig_dev_mig_interface {
	/* The VFIO v2 state machine: DEVICE_FEATURE and MIG_DATA_READ/WRITE
	 * (docs/device-migration.md). The default. */
	VFMIG_DEV_MIG_IFACE_V2 = 0,
	/* The 2019 region-based interface: a control region, two data regions
	 * and a dirty-bitmap region at indexes 9..12 (docs/region-interface.md).
	 * The v2 migration features and MIG_DATA_READ/WRITE are then refused
	 * with ENOTSUP and the size-estimate extension is not offered. */
	VFMIG_DEV_MIG_IFACE_REGION = 1,
};

/*
 * Choose the migration interface (enum vfmig_dev_mig_interface), after
 * vfmig_dev_create() and before a client attaches. The callbacks do not
 * change: the library maps the region interface onto the same v2 arcs,
 * save stream and load stream. REGION creates three memfd-backed data
 * regions (2 MiB + 4 KiB, owned by the library, freed by destroy or by
 * switching back to V2). Choosing the current interface again succeeds and
 * changes nothing.
 * Errors: -EINVAL (NULL dev, unknown iface, REGION on a device that does not
 * migrate: ops version 1 or mig_flags 0), -EBUSY (a client is attached, or
 * the migration state is not RUNNING), -ENOMEM or an errno from
 * memfd_create/ftruncate/mmap (the interface is then unchanged).
 */
VFMIG_EXPORT int vfmig_dev_set_mig_interface(vfmig_dev *dev,
					     enum vfmig_dev_mig_interface iface);

/* Current migration state (enum vfmig_dev_mig_state); RUNNING for a device
 * without migration. */
VFMIG_EXPORT uint32_t vfmig_dev_mig_state(const vfmig_dev *dev);

/* Static text for a (negative or positive) errno; never NULL. */
VFMIG_EXPORT const char *vfmig_dev_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* VFMIG_DEVICE_H */
