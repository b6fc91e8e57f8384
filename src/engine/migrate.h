/* SPDX-License-Identifier: MIT */
/*
 * The migration engine: moves a VM's guest RAM and its devices' state from a
 * source VMM to a destination VMM over a channel, or into a file.
 *
 * The engine knows devices only through the VMM library's migration driver
 * (vfmig_vmm_mig_*) and their types only through the type registry; the VM
 * it moves is described by struct vfmig_mig_vm, so it knows nothing of the
 * workload running in it.
 *
 * Source:      setup (capabilities, blockers, channel, stream header, device
 *              list, DMA logging, PRE_COPY) -> pre-copy rounds (dirty RAM,
 *              device pre-copy data, switchover acknowledgements) ->
 *              switchover (pause guest, STOP_COPY, last dirty RAM, final
 *              device data, type state, END) -> wait for RESUMED.
 * Destination: check the header and device list before touching a device ->
 *              RESUMING -> load -> STOP (the device validates) -> type state,
 *              IRQs -> RUNNING -> resume guest -> RESUMED.
 * Any failure before RESUMED leaves the source running with its devices
 * back in RUNNING; the destination resets its devices and discards what it
 * loaded. Errors name the phase and the cause.
 */
#ifndef VFMIG_ENGINE_MIGRATE_H
#define VFMIG_ENGINE_MIGRATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfmig/vmm_mig.h>

#include "engine/converge.h"
#include "engine/ram.h"
#include "engine/typereg.h"

/* One device of the VM, as the engine sees it. */
struct vfmig_mig_dev {
	const char *id;   /* unique within the VM, e.g. "dev0" */
	const char *type; /* registered type name, e.g. "pci" */
	vfmig_vmm_dev *dev;
	const char *path; /* its socket, for messages; may be NULL */
};

/* What the engine may ask of the VM it moves. */
struct vfmig_mig_vm_ops {
	/* Stop the guest; returns once nothing of it touches RAM or devices. */
	int (*pause)(void *vm);
	/* Let the guest run again. */
	int (*resume)(void *vm);
	/* Wire device i's interrupts again (after its state was loaded). */
	int (*rewire_irqs)(void *vm, size_t i);
	/* Optional, destination: check the loaded VM (devices running, guest
	 * not yet). 0 if consistent, else a negative errno with msg naming
	 * the first mismatch. The verdict travels to the source in RESUMED. */
	int (*verify)(void *vm, char *msg, size_t len);
	/* Optional, source: whether the guest runs, or ran until this
	 * migration paused it (asked at the switchover; absent: true). The
	 * destination starts the guest only if it did. */
	bool (*was_running)(void *vm);
	/* Optional, destination: the migration succeeded but the guest is
	 * to stay paused (the source was paused, or p->dst_paused): devices
	 * are in STOP with their loaded state. Called instead of resume. */
	int (*settle_paused)(void *vm);
	/* Optional: device i could not be brought back to a working state by
	 * a rollback; msg says why. The VM should show it until the device
	 * works again. */
	void (*device_fault)(void *vm, size_t i, const char *msg);
	/* Optional: whether device i's connection works; when it does not,
	 * why it broke, in cause ("" if unknown). Absent: the engine asks
	 * the VMM library, which knows only that it broke. */
	bool (*dev_connected)(void *vm, size_t i, char *cause, size_t len);
	/* Optional, source: let the guest run only (100 - percent) % of its
	 * time (auto-converge, engine/converge.h); 0 lifts it. The engine
	 * sets 0 again when the migration ends, however it ends. */
	int (*set_throttle)(void *vm, unsigned percent);
	/* Optional, source: RAM the guest's CPUs write that no device log
	 * shows (a KVM vCPU's writes: KVM's dirty log). cpu_dirty_track
	 * starts (on) tracking them before the first RAM pass and stops it
	 * when the migration ends, however it ends; cpu_dirty_sync merges
	 * what they wrote since the last sync into the RAM dirty bitmap
	 * (with every device log, and once more after the guest paused).
	 * 0 or a negative errno with err (len bytes) saying why. */
	int (*cpu_dirty_track)(void *vm, bool on, char *err, size_t len);
	int (*cpu_dirty_sync)(void *vm, char *err, size_t len);
	/* Optional, source: whether the VM has vCPU state to migrate (checked
	 * at setup: a format that cannot carry it is refused there); write
	 * the paused guest's vCPU state records (VCPU_STATE) at the end of
	 * the stop-and-copy. */
	bool (*has_cpus)(void *vm);
	int (*save_cpus)(void *vm, struct vfmig_stream_writer *w, char *err,
			 size_t len);
	/* Optional, destination: take one VCPU_STATE record (state: its
	 * field-table bytes, only valid during the call); check it fully
	 * before keeping it. Absent: a stream with vCPU state is refused.
	 * cpus_loaded: the stream is read: everything the guest needs came
	 * (or an error saying what is missing). */
	int (*load_cpu)(void *vm, uint16_t vcpu, const uint8_t *state,
			size_t len, char *err, size_t errlen);
	int (*cpus_loaded)(void *vm, char *err, size_t len);
	/* Optional, destination: an incoming migration begins: drop any vCPU
	 * state an earlier, failed one left (a stream must bring its own). */
	void (*cpus_forget)(void *vm);
};

struct vfmig_mig_vm {
	void *vm;
	const struct vfmig_mig_vm_ops *ops;
	struct vfmig_ram *ram;
	size_t ndev;
	const struct vfmig_mig_dev *devs;
};

/* What the source copies while the guest runs. Devices that do not offer
 * PRE_COPY are stop-copy only in every mode. */
enum vfmig_mig_precopy {
	VFMIG_MIG_PRECOPY_ALL = 0,  /* RAM and device pre-copy data */
	VFMIG_MIG_PRECOPY_RAM = 1,  /* RAM only: devices stay RUNNING until
				     * the switchover, then STOP_COPY */
	VFMIG_MIG_PRECOPY_NONE = 2, /* nothing: pause at once, copy all */
};

/* "all", "ram", "none"; NULL for other values. Parse: 0 or -EINVAL. */
const char *vfmig_mig_precopy_name(enum vfmig_mig_precopy m);
int vfmig_mig_precopy_parse(const char *s, enum vfmig_mig_precopy *out);

/*
 * The stop-copy bound: the most STOP_COPY data the source takes from one
 * device before it gives up (a device that never ends its data would keep
 * the VM paused forever). With max_stop_copy_bytes 0 it is the device's own
 * estimate when the stop-copy starts (size-estimate extension) times
 * VFMIG_MIG_STOP_COPY_SLACK plus VFMIG_MIG_STOP_COPY_MARGIN, or
 * VFMIG_MIG_STOP_COPY_MAX for a device that gives no estimate; a non-zero
 * max_stop_copy_bytes is the bound for every device. The data is read in
 * chunks of VFMIG_MIG_STOP_COPY_CHUNK, and a cancel is noticed between two.
 */
#define VFMIG_MIG_STOP_COPY_SLACK 2u
#define VFMIG_MIG_STOP_COPY_MARGIN (64ull << 20)
#define VFMIG_MIG_STOP_COPY_MAX (4ull << 30)
#define VFMIG_MIG_STOP_COPY_CHUNK (8ull << 20)

struct vfmig_mig_params {
	uint64_t downtime_ms; /* predicted downtime to switch over; 0: 300 */
	unsigned max_rounds;  /* then switch over anyway; 0: 30 */
	bool no_switchover_ack; /* do not wait for the destination's acks */
	int timeout_ms;       /* accept, stalled channel, return path;
			       * 0: 30000 */
	int connect_timeout_ms; /* how long the source retries a destination
				 * that is not listening yet; 0: 3000 */
	uint64_t device_round_budget; /* pre-copy bytes per device per round;
				       * 0: 64 MiB */
	enum vfmig_mig_precopy precopy; /* source: what is copied live */
	/* source: record checksum of the stream (enum vfmig_stream_csum);
	 * 0 is CRC-32, which writes format 1.0 for destinations older than
	 * 1.1. stream_csum_set false: VFMIG_STREAM_CSUM_DEFAULT. */
	bool stream_csum_set;
	uint16_t stream_csum;
	uint64_t max_stop_copy_bytes; /* source: stop-copy bytes per device;
				       * 0: the estimate rule above */
	bool dst_paused; /* destination: keep the guest paused after it */
	/* destination: verify after the guest resumed (RESUMED says
	 * "pending", VERIFIED follows) instead of before, so that the check
	 * is not part of the downtime */
	bool dst_verify_after;
	/* source: RAM page data over this many extra connections to the
	 * URI, 1..VFMIG_MCHAN_MAX (engine/multichan.h), tcp: and unix:
	 * only; 0 and 1: RAM goes on the main stream as it always did. */
	unsigned channels;
	/* source: bandwidth limit, auto-converge, stall detection */
	struct vfmig_mig_converge conv;
	/* Tests only (`vfmig vmm --test-hold POINT:FILE`, not in the usage):
	 * on reaching the hold point test_hold_point (one of
	 * VFMIG_MIG_HOLD_POINTS), the run creates test_hold_file and waits
	 * until it is removed (at most VFMIG_MIG_HOLD_MAX_MS, a cancel ends
	 * it), so that a test injects a fault at a known step. NULL: none. */
	const char *test_hold_point;
	const char *test_hold_file;
	/* destination: permission bits of a unix: listening socket; 0: 0600 */
	unsigned int socket_mode;
};

/* The hold points, in the order a run reaches them: the source's
 * "setup" (channel and RAM channels open, the device list sent, devices
 * not yet logging or in PRE_COPY), "pre-copy" (after the first round),
 * "switchover" (guest paused, devices not yet in STOP_COPY), "stop-copy"
 * (SWITCHOVER written, the last RAM and device data not yet), then the
 * destination's "load" (the SWITCHOVER record read: the last data comes
 * next) and "resume" (devices loaded and running, the guest not, RESUMED
 * not yet sent). */
#define VFMIG_MIG_HOLD_POINTS                                               \
	"setup", "pre-copy", "switchover", "stop-copy", "load", "resume",   \
		"commit"
#define VFMIG_MIG_HOLD_MAX_MS 30000
/* Whether name is a hold point. */
bool vfmig_mig_hold_point_valid(const char *name);

enum vfmig_mig_status {
	VFMIG_MIG_NONE = 0,
	VFMIG_MIG_SETUP,
	VFMIG_MIG_ACTIVE,    /* pre-copy rounds */
	VFMIG_MIG_SWITCHOVER,
	VFMIG_MIG_COMPLETED,
	VFMIG_MIG_FAILED,
	VFMIG_MIG_CANCELLED,
};

const char *vfmig_mig_status_name(enum vfmig_mig_status s);

struct vfmig_mig_track;

/* Live progress, readable from another thread while a migration runs. */
struct vfmig_mig_progress {
	_Atomic int status;            /* enum vfmig_mig_status */
	_Atomic unsigned rounds;
	_Atomic uint64_t ram_bytes;    /* page data sent / loaded */
	_Atomic uint64_t device_bytes; /* device data sent / loaded */
	_Atomic uint64_t dirty_pages;  /* RAM still dirty after the round */
	atomic_bool cancel;            /* set to ask the engine to stop */
	/* Source: set when the VM's user paused the guest during pre-copy.
	 * The engine then switches over as soon as the destination has
	 * acknowledged the devices' initial data, and a failure leaves the
	 * VM paused with its devices in STOP instead of running again. */
	atomic_bool user_stopped;
	/* Optional: where the engine records rates, per-device bytes and
	 * the timeline (engine/progress.h); NULL: nowhere. */
	struct vfmig_mig_track *track;
};

/* The outcome; the keys of the `migrate --json` report. */
struct vfmig_mig_report {
	bool ok;
	double total_ms;
	double downtime_ms;   /* guest paused on source to running on destination */
	unsigned rounds;      /* pre-copy rounds */
	bool converged;       /* the prediction fit and the measured downtime
			       * kept the limit */
	bool verified;        /* the destination's verify() passed */
	bool source_running;  /* the stream says the source guest ran */
	char verify_msg[256]; /* its verdict: "ok", a mismatch, or "not checked" */
	uint64_t ram_bytes, device_bytes, overhead_bytes;
	double throughput_mbps; /* stream bytes over total time */
	uint64_t stream_bytes;
	/* Source, live migrations: stream bytes written after the guest was
	 * paused; the stream's rate during pre-copy in Mbit/s (0: no
	 * pre-copy to measure); and those bytes at that rate, in ms: the
	 * least downtime this migration could have had on this channel. */
	uint64_t downtime_bytes;
	double bandwidth_mbps;
	double downtime_min_ms;
	char error[512];      /* "" on success, else "phase: cause" */
	/* Destination: the channel was opened (a source connected, or the
	 * file was opened). False when the run failed while listening or
	 * waiting: a new attempt on the same URI would fail alike. */
	bool channel_opened;
	/* RAM channels the migration used (1: RAM on the main stream). */
	unsigned channels;
	/* Source, convergence (docs/migration.md, "Convergence"): the
	 * downtime limit at the switchover, the pre-copy's stream bytes and
	 * duration, the highest guest throttle applied (percent), and a
	 * warning when it switched over without converging ("" if none). */
	uint64_t downtime_limit_ms;
	uint64_t precopy_bytes;
	double precopy_ms;
	unsigned throttle_pct;
	char warning[256];
};

/*
 * Migrate vm to the destination at uri (tcp:HOST:PORT, unix:PATH: live,
 * with a return path; file:PATH: the guest is paused and everything written
 * at once). On success the guest stays paused and the devices are in STOP:
 * the VM now runs on the destination. On failure the guest and devices run
 * as before. progress may be NULL. Returns 0 or a negative errno, with
 * rep->error naming the phase and cause either way (rep is required).
 */
int vfmig_migrate_out(const struct vfmig_mig_vm *vm,
		      const struct vfmig_typereg *reg, const char *uri,
		      const struct vfmig_mig_params *p,
		      struct vfmig_mig_progress *progress,
		      struct vfmig_mig_report *rep);

/*
 * Receive a VM from uri (tcp:/unix: listen and accept one source; file:
 * read the file) into vm, whose devices are attached and RUNNING and whose
 * guest is paused. On success the devices run with the loaded state and the
 * guest is resumed. On failure the devices are reset and the guest stays
 * paused. Returns 0 or a negative errno; rep->error names the cause.
 */
int vfmig_migrate_in(const struct vfmig_mig_vm *vm,
		     const struct vfmig_typereg *reg, const char *uri,
		     const struct vfmig_mig_params *p,
		     struct vfmig_mig_progress *progress,
		     struct vfmig_mig_report *rep);

#endif
