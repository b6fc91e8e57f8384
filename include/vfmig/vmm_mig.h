/* SPDX-License-Identifier: MIT */
/*
 * vfmig VMM library: the per-device migration driver, on top of the raw
 * vfio-user client of <vfmig/vmm.h> (same library, libvfmig-vmm; same error
 * and threading rules). What a migration engine calls for one device:
 * capability discovery with a blocker reason, state changes with QEMU's
 * recovery rule, a save pump, the size estimates of the vfmig extension
 * and DMA dirty logging, over either device-state interface (the v2 state
 * machine, or the 2019 region-based interface).
 */
#ifndef VFMIG_VMM_MIG_H
#define VFMIG_VMM_MIG_H

#include <vfmig/vmm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Device migration driver ----
 *
 * The per-device layer of the migration engine, on top of the raw
 * DEVICE_FEATURE / MIG_DATA calls above: capability discovery with a
 * blocker reason, state changes with QEMU's recovery rule, a save pump and
 * the size estimates of the vfmig extension. Each call holds the device
 * mutex for its whole exchange (set_state's recovery included), except
 * that vfmig_vmm_mig_save() releases it around every sink call.
 */

/* v2 migration states (the values travel on the wire). */
enum vfmig_vmm_mig_state {
	VFMIG_VMM_MIG_ERROR = 0,
	VFMIG_VMM_MIG_STOP = 1,
	VFMIG_VMM_MIG_RUNNING = 2,
	VFMIG_VMM_MIG_STOP_COPY = 3,
	VFMIG_VMM_MIG_RESUMING = 4,
	VFMIG_VMM_MIG_RUNNING_P2P = 5,
	VFMIG_VMM_MIG_PRE_COPY = 6,
	VFMIG_VMM_MIG_PRE_COPY_P2P = 7,
	VFMIG_VMM_MIG_NUM_STATES = 8,
};

/* Not a device state: what set_state reports when it could not learn the
 * state the device ended in (treat the device as lost). */
#define VFMIG_VMM_MIG_UNKNOWN 0xffffffffu

/* Static name of a state ("PRE_COPY"; "UNKNOWN" for VFMIG_VMM_MIG_UNKNOWN,
 * "INVALID" for other values). Never NULL. */
VFMIG_EXPORT const char *vfmig_vmm_mig_state_name(uint32_t state);

/* MIGRATION feature flags. */
#define VFMIG_VMM_MIG_FLAG_STOP_COPY (1ull << 0)
#define VFMIG_VMM_MIG_FLAG_P2P (1ull << 1)
#define VFMIG_VMM_MIG_FLAG_PRE_COPY (1ull << 2)

#define VFMIG_VMM_MIG_BLOCKER_LEN 160

/* What vfmig_vmm_mig_discover() found. */
struct vfmig_vmm_mig_caps {
	uint64_t flags;     /* GET MIGRATION data, 0 if that failed */
	bool migratable;    /* STOP_COPY and MIG_DEVICE_STATE GET/SET work */
	bool dirty_logging; /* DMA_LOGGING_START/STOP/REPORT probe fine */
	bool size_info;     /* extension on and MIG_DATA_SIZE probes fine (and
			     * PRECOPY_INFO too when PRE_COPY is supported) */
	/* Why the device cannot migrate ("" when migratable), e.g.
	 * "device does not report STOP_COPY (flags 0x4)". */
	char blocker[VFMIG_VMM_MIG_BLOCKER_LEN];
};

/*
 * Discover the device's migration capabilities: GET MIGRATION (STOP_COPY
 * required), PROBE GET|SET of MIG_DEVICE_STATE, PROBE of the three DMA
 * logging features, and, when the extension was negotiated, PROBE GET of
 * MIG_DATA_SIZE (and VFMIG_PRECOPY_INFO with PRE_COPY). If the device
 * refuses GET MIGRATION, look for the region interface instead
 * (docs/region-interface.md): DEVICE_GET_INFO, the region info of indexes
 * 9 to 63, version and caps from the control region; when the device
 * offers a data region's fd the library keeps a duplicate and reads and
 * writes it with pread/pwrite (never mmap, so a device that truncates the
 * file causes -EPROTO, not SIGBUS). Then flags is STOP_COPY (plus
 * PRE_COPY when the device has iterative data), dirty_logging tells whether
 * it has a dirty bitmap, size_info is false. A device's error
 * reply or refusal is not an error of this call: it returns 0 with
 * migratable false and the reason in caps->blocker.
 * Errors: -EINVAL (caps NULL), transport errors (-ENOTCONN, -EPROTO for a
 * malformed reply, ...; caps->blocker then names them too).
 */
VFMIG_EXPORT int vfmig_vmm_mig_discover(vfmig_vmm_dev *dev,
					struct vfmig_vmm_mig_caps *caps);

/* Which migration interface a device speaks (docs/region-interface.md). */
enum vfmig_vmm_mig_interface {
	VFMIG_VMM_MIG_IFACE_NONE = 0,   /* not migratable, or not discovered */
	VFMIG_VMM_MIG_IFACE_V2 = 1,     /* DEVICE_FEATURE + MIG_DATA_READ/WRITE */
	VFMIG_VMM_MIG_IFACE_REGION = 2, /* the 2019 device-state regions */
};

/*
 * What the last vfmig_vmm_mig_discover() found: VFMIG_VMM_MIG_IFACE_V2 or
 * _REGION when it found the device migratable, else (and before any
 * discovery, and for NULL) VFMIG_VMM_MIG_IFACE_NONE. Never fails; it stays
 * valid across a broken connection and vfmig_vmm_dev_reconnect().
 *
 * With the region interface the rest of this API keeps its meaning, with
 * these differences: vfmig_vmm_mig_get_state() gives the state the library
 * tracks without asking the device (RUNNING after the first discovery on a
 * connection and after a reset; a repeated discovery keeps it); P2P states
 * are -EINVAL for set_state (*final: the state kept); the save pump delivers chunks framed as
 * u8 kind (1 device memory, 2 device config), be32 length, the bytes (the
 * sink may get header and bytes in separate calls), which
 * vfmig_vmm_dev_mig_data_write() expects back in RESUMING (-EINVAL in other
 * states, -EPROTO for a bad kind or a length above 1 GiB, sticky until
 * RESUMING is entered again); precopy_info and stop_copy_size give
 * -EOPNOTSUPP; DMA logging takes page size 4096 only and logs every window
 * (ranges are checked, then ignored); a report needs iova 4096-aligned.
 * A device reporting a size beyond its region is -EPROTO (broken).
 */
VFMIG_EXPORT int vfmig_vmm_mig_interface(vfmig_vmm_dev *dev);

/*
 * GET MIG_DEVICE_STATE into *state. Errors: -EINVAL (state NULL), -EPROTO
 * (reply data not 8 bytes, or a state >= 8; broken), device errors.
 */
VFMIG_EXPORT int vfmig_vmm_mig_get_state(vfmig_vmm_dev *dev,
					 uint32_t *state);

/*
 * Move the device to target with one SET (the device walks the arcs). The
 * reply must echo our request exactly (state and data_fd), else -EPROTO.
 * On failure, QEMU's vfio_migration_set_state() rule: SET recover (unless
 * recover is ERROR); if that fails too, DEVICE_RESET and then GET the state
 * the device really is in.
 * Returns 0 (*final = target) or the negative errno of the failed SET to
 * target, with *final (may be NULL) the state the device ended in: recover,
 * the state read after the reset, or VFMIG_VMM_MIG_UNKNOWN when that could
 * not be learnt (connection broken, reset refused).
 * Errors: -EINVAL (target ERROR or >= 8, recover >= 8; nothing is sent),
 * then whatever the device or the transport gave for the first SET.
 */
VFMIG_EXPORT int vfmig_vmm_mig_set_state(vfmig_vmm_dev *dev, uint32_t target,
					 uint32_t recover, uint32_t *final);

/*
 * Receives saved device data, in order. Return 0 to go on, or a negative
 * errno to stop the pump (returned by vfmig_vmm_mig_save()). buf is valid
 * only during the call. Runs without the device mutex held.
 */
typedef int (*vfmig_vmm_mig_sink_fn)(void *priv, const void *buf,
				     size_t len);

enum vfmig_vmm_mig_save_status {
	VFMIG_VMM_MIG_SAVE_END = 0,     /* STOP_COPY: the stream is complete */
	VFMIG_VMM_MIG_SAVE_DRAINED = 1, /* PRE_COPY: nothing more for now */
	VFMIG_VMM_MIG_SAVE_BUDGET = 2,  /* stopped at the budget; more may come */
};

struct vfmig_vmm_mig_save_result {
	uint64_t bytes; /* handed to the sink */
	enum vfmig_vmm_mig_save_status status;
	uint32_t state; /* the saving state the device was in */
};

/*
 * Save pump: GET the state (PRE_COPY, PRE_COPY_P2P or STOP_COPY required),
 * then MIG_DATA_READ chunks of the largest size the device accepts
 * (max_data_xfer_size, at most 1 MiB) into sink until a short read
 * (status END in STOP_COPY, DRAINED in PRE_COPY), or until at least budget
 * bytes were delivered (budget 0: no limit; status BUDGET). Empty chunks are
 * not passed to the sink. *res (required) is filled also on failure, with
 * the bytes already delivered.
 * Errors: -EINVAL (sink/res NULL, device not in a saving state: res->state
 * says which), the sink's error, -EPROTO (a size field beyond what we asked
 * or what arrived; broken), device and transport errors. After an error
 * part of the stream is consumed: the save session is lost.
 */
VFMIG_EXPORT int vfmig_vmm_mig_save(vfmig_vmm_dev *dev, uint64_t budget,
				    vfmig_vmm_mig_sink_fn sink, void *priv,
				    struct vfmig_vmm_mig_save_result *res);

/*
 * Sealed device data (vfmig data channel version 2,
 * docs/protocol-extensions.md, "Sealed sessions"): the device makes the
 * migration stream's DEVICE_DATA record checksum of each frame itself, so
 * the VMM moves the data between sockets without reading it.
 *
 * vfmig_vmm_dev_set_seal(dev, index) asks for it in every data channel
 * session attached from then on, saving and loading, with index the
 * device's index in the stream's DEVICE_LIST (the checksum covers it);
 * index -1 (the default) turns it off. A device without channel version 2
 * gets unsealed sessions as before. Errors: -EINVAL (index outside
 * -1..65535).
 */
VFMIG_EXPORT int vfmig_vmm_dev_set_seal(vfmig_vmm_dev *dev, int index);

typedef struct vfmig_vmm_move vfmig_vmm_move;

/*
 * A SEALED frame of len data bytes waits in the device's channel: the
 * callee writes whatever comes before it to its output and calls
 * vfmig_vmm_mig_move(mv, fd) once, which writes the len bytes and their
 * 4-byte record checksum (big-endian) to fd. Return 0, or a negative errno
 * to stop the pump (returning without the move loses the session). Runs
 * without the device mutex held.
 */
typedef int (*vfmig_vmm_mig_moved_fn)(void *priv, size_t len,
				      vfmig_vmm_move *mv);

/*
 * vfmig_vmm_mig_save(), with each SEALED frame handed to moved instead of
 * sink (sink still gets everything else). moved NULL: exactly
 * vfmig_vmm_mig_save() (a SEALED frame is read and given to sink, its
 * checksum dropped). Errors as vfmig_vmm_mig_save(), and -EPROTO when
 * moved returned 0 without moving.
 */
VFMIG_EXPORT int vfmig_vmm_mig_save_moved(vfmig_vmm_dev *dev, uint64_t budget,
					  vfmig_vmm_mig_sink_fn sink,
					  vfmig_vmm_mig_moved_fn moved,
					  void *priv,
					  struct vfmig_vmm_mig_save_result *res);

/*
 * Writes the waiting frame's data and checksum to fd with splice() through
 * a pipe (no copy through this process), waiting for the device as a call
 * waits for its reply (the reply timeout for each bit of progress, the
 * control socket served meanwhile) and for fd at most timeout_ms after the
 * last progress (0: the reply timeout, negative: no limit), the caller's
 * own bound for a peer that stops reading. fd may be a socket, pipe or
 * file, blocking or not; one that splice() refuses (a file opened
 * O_APPEND) gets the bytes through a buffer instead. 0, or a negative errno (-ETIMEDOUT for either
 * wait): the session is lost, and part of the data may be on fd. -EINVAL
 * when called twice.
 */
VFMIG_EXPORT int vfmig_vmm_mig_move(vfmig_vmm_move *mv, int fd,
				    int timeout_ms);

/* Loading is vfmig_vmm_dev_mig_data_write(): in RESUMING, hand the bytes of
 * one save session to the device in order, in pieces of any size. */

/*
 * vfmig extension (caps.mig_info_version != 0): PRE_COPY estimates, as the
 * kernel's VFIO_MIG_GET_PRECOPY_INFO (bytes of initial data still to read,
 * bytes dirtied since). Errors: -EOPNOTSUPP (extension off; nothing sent),
 * -EINVAL (NULL pointer, or the device is not in PRE_COPY), -EPROTO (reply
 * data not 16 bytes; broken), device errors.
 */
VFMIG_EXPORT int vfmig_vmm_mig_precopy_info(vfmig_vmm_dev *dev,
					    uint64_t *initial_bytes,
					    uint64_t *dirty_bytes);

/* vfmig extension: the estimated size of the STOP_COPY data (the kernel's
 * MIG_DATA_SIZE). Errors as vfmig_vmm_mig_precopy_info (8-byte reply). */
VFMIG_EXPORT int vfmig_vmm_mig_stop_copy_size(vfmig_vmm_dev *dev,
					      uint64_t *bytes);

/* ---- Device DMA dirty logging ---- */

#define VFMIG_VMM_DMA_LOG_MAX_RANGES 256u

struct vfmig_vmm_dma_range {
	uint64_t iova;
	uint64_t length;
};

/*
 * DMA_LOGGING_START: log the device's DMA writes into ranges[0..n) (n 0:
 * every write), page_size a hint (a power of two >= 4096; ranges aligned to
 * it, non-empty, not wrapping). *chosen (may be NULL) gets the page size the
 * device chose. The reply must echo our ranges.
 * Errors: -EINVAL (bad page size or range, ranges NULL with n > 0), -E2BIG
 * (n > VFMIG_VMM_DMA_LOG_MAX_RANGES), -EPROTO (reply not an echo, or a page
 * size that is not a power of two; broken), device errors (-EBUSY or
 * -EINVAL if logging is already on, -EOPNOTSUPP).
 */
VFMIG_EXPORT int vfmig_vmm_dma_log_start(vfmig_vmm_dev *dev,
					 uint64_t page_size,
					 const struct vfmig_vmm_dma_range *ranges,
					 uint32_t n, uint64_t *chosen);

/*
 * DMA_LOGGING_REPORT for [iova, iova + length) at page_size (a power of two
 * >= 4096): bit i of the bitmap (u64 words, LSB first) stands for the page
 * at iova + i * page_size. Bits are OR-ed into bitmap[0..words), which must
 * hold ceil(ceil(length / page_size) / 64) words; the device's log for the
 * range is cleared. Large ranges take several messages. Each reply must echo
 * iova, length and page size and carry exactly the bitmap we asked for;
 * bits past the range are dropped. On failure some bits may already be set:
 * treat the whole range as dirty.
 * Errors: -EINVAL (length 0, range wraps, bad page size, bitmap NULL or too
 * small), -EPROTO (bad reply; broken), device errors (logging off).
 */
VFMIG_EXPORT int vfmig_vmm_dma_log_report(vfmig_vmm_dev *dev, uint64_t iova,
					  uint64_t length, uint64_t page_size,
					  uint64_t *bitmap, size_t words);

/* DMA_LOGGING_STOP. Device errors (e.g. logging was not on). */
VFMIG_EXPORT int vfmig_vmm_dma_log_stop(vfmig_vmm_dev *dev);

#ifdef __cplusplus
}
#endif

#endif /* VFMIG_VMM_MIG_H */
