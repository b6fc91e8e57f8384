/* SPDX-License-Identifier: MIT */
/*
 * The guest driver: a thread that drives every attached device as a guest OS
 * would, and keeps ALL of its own state in guest RAM so that the state
 * migrates with RAM and the destination's driver carries on from it.
 *
 * Guest RAM layout (4 KiB pages, little-endian u64 fields like an x86 guest):
 *   0x000000  ledger page: magic, version, seed, counters, one slot per device
 *   0x010000 + d * 0x10000   device d's DMA area (d < 8):
 *             +0x0000  fill buffer (the device writes it by DMA)
 *             +0x8000  checksum buffer (the driver writes, the device reads)
 *   0x100000 .. end   stamp pages, written by the "CPU"
 *
 * Per iteration, for each "regs" device (matched by PCI vendor/device ID):
 * 1..3 DOORBELL writes, then COUNTER must equal the ledger's doorbell count;
 * an EVENT write on one vector and a DMA FILL with a pattern that differs
 * from the previous one, a CHECKSUM of a freshly written buffer (must equal
 * the driver's FNV-1a), each interrupt waited for on its eventfd; one
 * SCRATCH register and one 1 KiB chunk of BAR2 (device memory) written.
 * For each "vram" device (VRAM up to 1 GiB): a FILL command of 1..4 pages
 * from (seed, fill number), the first filled page read back through the
 * BAR2 window, COUNTER equal to the commands run, and every 256 fills a
 * CHECKSUM command whose result the verifier recomputes from the ledger.
 * Then a few stamp pages (4, vfmig_guest_set_stamps): stamp write n (1, 2, ...) fills page
 * pick(seed, n) with words derived from (seed, n, page, word), so every
 * byte of the stamp area follows from the ledger's seed and count alone.
 * A fresh ledger may start with a RAM fill: the first fill_pages stamp pages
 * get words derived from (seed, page, word) before the first iteration, so
 * that a VM can start with a known amount of pseudo-random RAM (no page of
 * it is all zero) that the verifier can still check byte for byte.
 * Unknown devices are left alone. Pages the device writes by DMA are NOT
 * marked dirty by the driver: that is the device's dirty log's job, so a
 * migration that loses them fails verification.
 *
 * The driver only stops between iterations (pause), so at every quiescent
 * point the ledger, RAM and devices agree and every interrupt raised has
 * been received.
 */
#ifndef VFMIG_ENGINE_GUEST_H
#define VFMIG_ENGINE_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vfmig_vm;
struct vfmig_guest;
struct vfmig_guest_driver; /* guest_drv.h */

#define VFMIG_GUEST_LEDGER_ADDR 0x0ull
#define VFMIG_GUEST_DMA_BASE 0x10000ull
#define VFMIG_GUEST_DMA_STRIDE 0x10000ull
#define VFMIG_GUEST_STAMP_BASE 0x100000ull
#define VFMIG_GUEST_MAX_VECTORS 8u

/*
 * Create the driver of vm (not started). drivers: the NULL-terminated
 * table of device drivers (NULL: none; every device is left alone), which
 * must outlive the guest. interval_us: sleep between iterations; seed and
 * fill_pages (stamp pages to fill, at most as many as there are): for a
 * fresh ledger (the RAM drivers reserve at the top is not filled).
 * Returns 0, -EINVAL (fill_pages more than the RAM above
 * VFMIG_GUEST_STAMP_BASE, or the RAM too small for what the drivers
 * reserve) or -ENOMEM.
 */
int vfmig_guest_create(struct vfmig_vm *vm,
		       const struct vfmig_guest_driver *const *drivers,
		       unsigned int interval_us, uint64_t seed,
		       uint64_t fill_pages, struct vfmig_guest **out);

/*
 * Start the driver thread. With a valid ledger in RAM (same version and
 * device count, each device still of the recorded kind) the driver adopts
 * it and goes on without initialising devices (migrated state). With no
 * ledger (magic absent) it writes a fresh one and initialises the devices
 * it knows (MSI-X enable and unmask, memory + bus master). Starting twice
 * is 0. Errors: -EINVAL (a ledger that is present but unusable; err says
 * why), device errors during init, the errno of pthread_create.
 */
int vfmig_guest_start(struct vfmig_guest *g, char *err, size_t errlen);

/* Counted pause/resume (vm.h). */
void vfmig_guest_pause(struct vfmig_guest *g);
void vfmig_guest_resume(struct vfmig_guest *g);

/*
 * Throttle (auto-converge, as QEMU's cpu-throttle): after each iteration
 * the driver also sleeps so that it spends percent % of its time asleep
 * (the time of the iteration and its interval count as the rest), which
 * slows the rate at which it dirties RAM and works its devices by that
 * share. 0 (the start) lifts it. Takes effect from the next iteration.
 * Returns 0 or -EINVAL (above VFMIG_GUEST_THROTTLE_MAX).
 */
#define VFMIG_GUEST_THROTTLE_MAX 99u
int vfmig_guest_set_throttle(struct vfmig_guest *g, unsigned int percent);
unsigned int vfmig_guest_throttle(struct vfmig_guest *g);

/*
 * Stamp pages written per iteration (`vfmig vmm --guest-dirty-pages`): with
 * the iteration rate, the rate at which the guest dirties its RAM. Default
 * VFMIG_GUEST_STAMPS_DEFAULT; 1..VFMIG_GUEST_STAMPS_MAX, else -EINVAL. The
 * verifier needs only the ledger's count of stamps, so it may change at
 * any time.
 */
#define VFMIG_GUEST_STAMPS_DEFAULT 4u
#define VFMIG_GUEST_STAMPS_MAX 4096u
int vfmig_guest_set_stamps(struct vfmig_guest *g, unsigned int pages);

/* Stop and join the thread, free. NULL ok. */
void vfmig_guest_destroy(struct vfmig_guest *g);

enum vfmig_guest_state {
	VFMIG_GUEST_NOT_STARTED = 0,
	VFMIG_GUEST_RUNNING = 1,
	VFMIG_GUEST_PAUSED = 2,
	VFMIG_GUEST_FAILED = 3, /* a check failed; the driver stopped */
};

const char *vfmig_guest_state_name(enum vfmig_guest_state s);

struct vfmig_guest_dev_stats {
	char kind[16]; /* "regs", "vram", or "none" for a device left alone */
	uint64_t doorbells; /* regs: DOORBELL writes; vram: commands run */
	uint64_t fills, checksums, mem_writes;
	uint64_t irq_raised, irq_received; /* all vectors */
	uint64_t copies, completions; /* the KVM guest's dma driver */
};

struct vfmig_guest_stats {
	enum vfmig_guest_state state;
	char engine[8];      /* "thread" (this driver) or a backend's name */
	uint64_t iterations;
	uint64_t stamp_writes;
	uint64_t stamp_checks; /* stamp pages the guest re-checked itself */
	unsigned int ndevs;
	struct vfmig_guest_dev_stats dev[8];
	char error[256]; /* the failure, when state is FAILED */
};

/*
 * A guest backend runs the workload instead of the driver thread (e.g. a
 * KVM vCPU running a guest image: src/kvm). The guest object then only
 * forwards to it: start (at the first start, with the VM; counted pauses
 * may come before it), pause (returns once the guest is quiescent: no
 * device access or RAM write in flight) and resume (counted), stop
 * (before destroy; no call after it), stats and verify (as below, on
 * the backend's own state). migration_blocker: NULL, or why the VM
 * cannot migrate (the migration is refused with it). Throttling and the
 * stamp count are the driver thread's and give -ENOTSUP.
 *
 * Version 2 adds the migration of a guest whose CPUs the engine cannot
 * see otherwise (all optional; a version 1 table has none of them):
 * dirty_track/dirty_sync: the RAM the guest's CPUs write, merged into the
 * VM's RAM dirty bitmap at each sync (migrate.h, cpu_dirty_*);
 * save_cpus: write the paused guest's VCPU_STATE records; load_cpu: take
 * one on the destination (before start, which then resumes the guest
 * from it instead of booting it); cpus_loaded: the stream ended, say
 * whether it brought what start needs; forget_cpus: an incoming
 * migration begins, drop what an earlier, failed one loaded. Each returns 0 or a negative errno
 * with err saying why.
 */
#define VFMIG_GUEST_BACKEND_VERSION 2
struct vfmig_guest_stats;
struct vfmig_stream_writer;
struct vfmig_guest_backend {
	uint32_t version; /* VFMIG_GUEST_BACKEND_VERSION */
	const char *name; /* short: "kvm" */
	int (*start)(void *priv, struct vfmig_vm *vm, char *err,
		     size_t errlen);
	void (*pause)(void *priv);
	void (*resume)(void *priv);
	void (*stop)(void *priv);
	void (*stats)(void *priv, struct vfmig_guest_stats *st);
	int (*verify)(void *priv, char *msg, size_t size);
	const char *migration_blocker;
	/* version 2 */
	/* Optional: the VM the backend serves, told once when it is handed
	 * over (before any other call), so that the calls below that come
	 * before start know it. */
	void (*attach)(void *priv, struct vfmig_vm *vm);
	int (*dirty_track)(void *priv, bool on, char *err, size_t errlen);
	int (*dirty_sync)(void *priv, char *err, size_t errlen);
	int (*save_cpus)(void *priv, struct vfmig_stream_writer *w,
			 char *err, size_t errlen);
	int (*load_cpu)(void *priv, uint16_t vcpu, const uint8_t *state,
			size_t len, char *err, size_t errlen);
	int (*cpus_loaded)(void *priv, char *err, size_t errlen);
	void (*forget_cpus)(void *priv); /* an incoming migration begins */
};

/* Hand g's workload to be (before the first start). -EINVAL for an
 * unknown version (1 and 2 are known) or a missing callback. */
int vfmig_guest_set_backend(struct vfmig_guest *g,
			    const struct vfmig_guest_backend *be, void *priv);

/* NULL, or why the guest's VM cannot migrate (its backend's blocker). */
const char *vfmig_guest_migration_blocker(struct vfmig_guest *g);

/*
 * The backend's migration hooks (version 2, above), for the engine's VM
 * ops. The driver thread marks its own writes and has no vCPU: track,
 * sync, save and loaded are 0 for it (and for a backend without the
 * hook); load_cpu is -EOPNOTSUPP there, with err saying so.
 */
int vfmig_guest_cpu_dirty_track(struct vfmig_guest *g, bool on, char *err,
				size_t errlen);
int vfmig_guest_cpu_dirty_sync(struct vfmig_guest *g, char *err,
			       size_t errlen);
int vfmig_guest_save_cpus(struct vfmig_guest *g, struct vfmig_stream_writer *w,
			  char *err, size_t errlen);
/* Whether the guest has vCPU state to migrate (its backend saves it). */
bool vfmig_guest_has_cpus(struct vfmig_guest *g);
int vfmig_guest_load_cpu(struct vfmig_guest *g, uint16_t vcpu,
			 const uint8_t *state, size_t len, char *err,
			 size_t errlen);
int vfmig_guest_cpus_loaded(struct vfmig_guest *g, char *err, size_t errlen);
void vfmig_guest_forget_cpus(struct vfmig_guest *g);

/* A snapshot of the ledger's counters (read from guest RAM), taken with
 * the driver paused for a moment so that they agree with each other. */
void vfmig_guest_stats(struct vfmig_guest *g, struct vfmig_guest_stats *st);

/*
 * Check that everything the ledger says is true now, with the driver paused
 * for the check: the driver has not failed; the ledger is valid; for each
 * driven device COUNTER (low 32 bits) equals the doorbells, the SCRATCH
 * registers and every BAR2 chunk hold what was last written, the fill
 * buffer holds the last pattern, the checksum buffer holds the last
 * generated data and its FNV-1a equals the recorded device result; per
 * vector received == raised (every interrupt raised arrived, none twice)
 * and no eventfd has an undelivered count (an interrupt nobody raised);
 * every stamp page holds its last stamp, never-stamped pages of the RAM
 * fill hold the fill and all others are zero (a page in a hole of the RAM
 * memfd is zero, and is compared as such without being read, which would
 * allocate it: vfmig_ram_extent).
 * For vram: COUNTER equals the commands, the size is the ledger's, and the
 * last CHECKSUM result (register and ledger) equals the checksum that
 * replaying every fill up to it gives.
 * Returns 0 ("ok" in msg), -EIO with the first mismatch named in msg,
 * -EAGAIN when RAM holds no ledger yet.
 */
int vfmig_guest_verify(struct vfmig_vm *vm, char *msg, size_t size);

#endif
