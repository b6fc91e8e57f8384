/* SPDX-License-Identifier: MIT */
/*
 * The VM model: guest RAM, the vfio-user devices attached to it, a run state,
 * and the guest driver that keeps the devices busy (guest.h).
 *
 * Guest RAM is one memfd mapped in the VMM and described as the RAM block
 * "ram" (ram.h, 4 KiB pages). Every device gets the whole of it as one DMA
 * window at IOVA 0 with the memfd, its MSI-X vectors bound to eventfds the VM
 * owns, and on_dma_write marking RAM dirty. An I/O thread serves the
 * devices' DMA_READ/DMA_WRITE messages between calls.
 *
 * Lifecycle: vfmig_vm_create() (connects, maps, wires; starts the guest
 * driver unless incoming) -> vfmig_vm_stop()/vfmig_vm_cont()/accessors ->
 * vfmig_vm_destroy().
 *
 * Threading: stop, cont, set_run_state and set_device_states are serialised
 * by one VM operation lock, so a control thread and a migration thread may
 * both call them. Accessors may be called from any thread; the device
 * handles are themselves thread-safe (vmm.h).
 *
 * Errors: negative errno; functions with err/errlen also write a message
 * naming the device and the cause there (err may be NULL).
 */
#ifndef VFMIG_ENGINE_VM_H
#define VFMIG_ENGINE_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfmig/vmm_mig.h>

#include "engine/ram.h"
#include "engine/typereg.h"

struct vfmig_vm;
struct vfmig_guest;

/* Run states, QEMU's names. */
enum vfmig_vm_run_state {
	VFMIG_VM_INCOMING = 0,       /* awaiting a migration; guest not run */
	VFMIG_VM_PAUSED = 1,         /* stopped by the user */
	VFMIG_VM_RUNNING = 2,
	VFMIG_VM_FINISH_MIGRATE = 3, /* source: stopped for the switchover */
	VFMIG_VM_POSTMIGRATE = 4,    /* source: migration completed */
	VFMIG_VM_NUM_STATES = 5,
};

/* Static name ("running", "paused", "incoming", "finish-migrate",
 * "postmigrate"; "invalid" otherwise). Never NULL. */
const char *vfmig_vm_run_state_name(enum vfmig_vm_run_state s);

#define VFMIG_VM_OPTS_VERSION 1
#define VFMIG_VM_MAX_DEVICES 8
#define VFMIG_VM_RAM_DEFAULT (64ull << 20)
#define VFMIG_VM_RAM_MIN (2ull << 20) /* the guest driver's layout needs it */
#define VFMIG_VM_PAGE_SIZE 4096u
#define VFMIG_VM_RAM_BLOCK "ram"

struct vfmig_vm_opts {
	uint32_t version;            /* VFMIG_VM_OPTS_VERSION */
	const char *const *devices;  /* socket paths; ids "dev0", "dev1", ... */
	unsigned int ndevices;       /* 1 .. VFMIG_VM_MAX_DEVICES */
	uint64_t ram_size;           /* 0: 64 MiB; 4 KiB multiple, >= 2 MiB */
	bool incoming;               /* state INCOMING, guest not started */
	unsigned int guest_interval_us; /* sleep per guest iteration; 0: 1000 */
	uint64_t guest_seed;         /* 0: from the clock */
	/* Bytes of pseudo-random data the guest writes into RAM from
	 * VFMIG_GUEST_STAMP_BASE on before its first iteration, when it
	 * starts with a fresh ledger (guest.h, the RAM fill); rounded up to
	 * whole pages, at most the RAM above that address. 0: none. */
	uint64_t guest_fill;
	/* Device types (required): a device's type comes from what it
	 * reports, its interrupt wiring from the type's irq_wiring hook. The
	 * registry must outlive the VM. */
	const struct vfmig_typereg *types;
	vfmig_log_fn log_fn;         /* NULL: silent */
	void *log_priv;
	int log_level;
	/* Propose no data channel to the devices (VFMIG_VMM_OPT_NO_DATA_CHANNEL):
	 * their migration data then goes in MIG_DATA_READ/WRITE messages. */
	bool no_data_channel;
	/* The guest's device drivers: a NULL-terminated table that must
	 * outlive the VM (src/guest: vfmig_guest_sample_drivers). NULL: no
	 * device is driven. */
	const struct vfmig_guest_driver *const *guest_drivers;
	/* A backend that runs the guest instead of the driver thread (guest.h,
	 * vfmig_guest_set_backend; e.g. src/kvm), with its private pointer;
	 * it must outlive the VM. NULL: the driver thread. */
	const struct vfmig_guest_backend *guest_backend;
	void *guest_backend_priv;
	/* Tests only: the VMM does not mark its own writes to guest RAM
	 * dirty (vfmig_ram_mark_dirty does nothing), so that a test can
	 * prove the migration verifier catches lost pages. */
	bool test_skip_dirty_tracking;
	/* Allocate and map all of RAM at creation (vfmig_ram_prealloc_all),
	 * as QEMU's prealloc=on: an incoming migration then lands in pages
	 * that exist. Fails the creation where the memory is not there. */
	bool prealloc_ram;
};

/*
 * Build the VM: RAM, devices (connect, discover migration capabilities, DMA
 * window, MSI-X eventfds), I/O thread. Not incoming: start the guest driver
 * with a fresh ledger (it probes and initialises each device it knows) and
 * enter RUNNING. Incoming: enter INCOMING; the guest starts at cont.
 * Errors: -EINVAL (bad opts: no device, too many, bad RAM size, unknown
 * version), -ENOMEM, the errno of memfd/mmap, a device's connect or setup
 * error (err names the device).
 */
int vfmig_vm_create(const struct vfmig_vm_opts *opts, struct vfmig_vm **out,
		    char *err, size_t errlen);

/* Stop the guest driver and I/O thread, close every device, unmap and free
 * RAM. Devices are left in whatever migration state they are in. NULL ok. */
void vfmig_vm_destroy(struct vfmig_vm *vm);

/* Log through the VM's callback (printf-style). For the engine and CLI. */
void vfmig_vm_log(struct vfmig_vm *vm, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- Run state ---- */

enum vfmig_vm_run_state vfmig_vm_run_state(struct vfmig_vm *vm);

/*
 * RUNNING -> PAUSED: pause the guest driver (returns once quiescent), then
 * move every migratable device to STOP (devices without migration support
 * are only left alone). If a device refuses, the devices already stopped go
 * back to RUNNING, the guest resumes and the call fails with the device's
 * error. Already stopped (PAUSED, FINISH_MIGRATE, POSTMIGRATE): 0, nothing
 * done. INCOMING: -EBUSY.
 * While a migration owns the devices (vfmig_vm_set_migrating), RUNNING ->
 * PAUSED does not touch them: the migration's stop_fn is called instead
 * and, if it agrees (returns 0), only the guest pauses; without a stop_fn,
 * or when it refuses, the call fails with its error (-EBUSY).
 */
int vfmig_vm_stop(struct vfmig_vm *vm, char *err, size_t errlen);

/*
 * PAUSED, POSTMIGRATE or INCOMING -> RUNNING: move every migratable device
 * to RUNNING, then resume the guest driver (starting it first if it never
 * ran: it adopts a valid ledger found in RAM, e.g. a migrated one, or
 * writes a fresh one when RAM holds none). RUNNING: 0. FINISH_MIGRATE:
 * -EBUSY. On failure devices already moved go back and the state stays.
 */
int vfmig_vm_cont(struct vfmig_vm *vm, char *err, size_t errlen);

/*
 * Told, with the operation lock held, that the VM's user asked to stop it
 * during a migration: 0 to let the guest pause (the migration then owns
 * bringing the devices down), or a negative errno with err filled to
 * refuse. Must not call back into the VM.
 */
typedef int (*vfmig_vm_stop_fn)(void *priv, char *err, size_t errlen);

/*
 * While on, a migration owns the devices' migration states: cont fails with
 * -EBUSY, and stop is handed to stop_fn (NULL: refused with -EBUSY). The
 * engine pauses and resumes the guest itself, through
 * vfmig_vm_set_run_state and vfmig_vm_cont with this flag cleared.
 */
void vfmig_vm_set_migrating(struct vfmig_vm *vm, bool on,
			    vfmig_vm_stop_fn stop_fn, void *priv);

/*
 * Enter state s without touching devices (the migration engine's phases),
 * notifying listeners. The run state owns one pause of the guest driver:
 * entering any state but RUNNING pauses the guest (returning once it is
 * quiescent) unless it already holds it; entering RUNNING releases it. So
 * the switchover is set_run_state(FINISH_MIGRATE), then the devices; a
 * failure puts the devices back and returns to the state it left (RUNNING
 * resumes the guest, PAUSED keeps it paused). -EINVAL for a bad state.
 */
int vfmig_vm_set_run_state(struct vfmig_vm *vm, enum vfmig_vm_run_state s);

/*
 * Listeners hear every run-state change, after it happened, on the thread
 * that made it, with the operation lock held: they must not call stop,
 * cont, set_run_state or set_device_states. At most 8; -ENOSPC beyond.
 */
typedef void (*vfmig_vm_state_fn)(void *priv, enum vfmig_vm_run_state old,
				  enum vfmig_vm_run_state now);
int vfmig_vm_add_listener(struct vfmig_vm *vm, vfmig_vm_state_fn fn,
			  void *priv);
void vfmig_vm_remove_listener(struct vfmig_vm *vm, vfmig_vm_state_fn fn,
			      void *priv);

/*
 * Move every migratable device to target (enum vfmig_vmm_mig_state) with
 * vfmig_vmm_mig_set_state (recovering to the state it was in). If device k
 * fails, devices 0..k-1 are moved back to their previous states (best
 * effort) and the error of device k is returned. Non-migratable devices are
 * skipped. Takes the operation lock.
 */
int vfmig_vm_set_device_states(struct vfmig_vm *vm, uint32_t target,
			       char *err, size_t errlen);

/* ---- Guest driver ---- */

/* Counted pause, on top of the run state's own: returns once the driver
 * thread is quiescent (no device access or RAM write in flight); it stays
 * so until as many resumes. Before the driver started the count is kept
 * and the thread starts paused. */
void vfmig_vm_pause_guest(struct vfmig_vm *vm);
void vfmig_vm_resume_guest(struct vfmig_vm *vm);

/* The driver (never NULL after create). */
struct vfmig_guest *vfmig_vm_guest(struct vfmig_vm *vm);

/* Tests only: opts.test_skip_dirty_tracking of vm. */
bool vfmig_vm_test_skip_dirty(const struct vfmig_vm *vm);

/* ---- Accessors for the engine ---- */

struct vfmig_ram *vfmig_vm_ram(struct vfmig_vm *vm);
int vfmig_vm_ram_fd(struct vfmig_vm *vm);
bool vfmig_vm_incoming(struct vfmig_vm *vm); /* created with opts.incoming */
unsigned int vfmig_vm_ndevs(struct vfmig_vm *vm);
/* Device i (< ndevs) handle, id ("dev0") and socket path; NULL past end. */
vfmig_vmm_dev *vfmig_vm_dev(struct vfmig_vm *vm, unsigned int i);
const char *vfmig_vm_dev_id(struct vfmig_vm *vm, unsigned int i);
const char *vfmig_vm_dev_path(struct vfmig_vm *vm, unsigned int i);
/* What vfmig_vmm_mig_discover() found at attach time (blocker reason
 * included). NULL past end. */
const struct vfmig_vmm_mig_caps *vfmig_vm_dev_mig_caps(struct vfmig_vm *vm,
						       unsigned int i);
/* The eventfds of IRQ index (VFMIG_VMM_IRQ_INTX, _MSI or _MSIX) of device
 * i, one per vector, owned by the VM; *count gets how many (0 when the
 * device does not offer that index). NULL past end or for other indexes.
 * Which index is bound to the device at a time: vfmig_vm_irq_refresh(). */
const int *vfmig_vm_dev_irq_fds(struct vfmig_vm *vm, unsigned int i,
				uint32_t index, uint32_t *count);

/*
 * A device that could not be brought back to a working state (a rollback
 * or a stop/cont whose recovery failed) carries a fault message until a
 * later state change of it succeeds. set: msg NULL or "" clears it (and
 * logs nothing); a message is logged at error level. get: true when
 * device i has a fault, copied to buf (may be NULL).
 */
void vfmig_vm_set_dev_fault(struct vfmig_vm *vm, unsigned int i,
			    const char *msg);
bool vfmig_vm_dev_fault(struct vfmig_vm *vm, unsigned int i, char *buf,
			size_t len);

/*
 * Whether device i's connection is usable. When it broke (the device died,
 * stopped answering, or sent garbage; it is not reconnected), false, with
 * cause (may be NULL) the library's message from the moment it broke,
 * e.g. "device closed the connection" or "no reply within 30000 ms;
 * closing". The VM logs "devN (PATH): connection lost: CAUSE" once, when
 * it first sees the break (its I/O thread looks every 100 ms).
 */
bool vfmig_vm_dev_connected(struct vfmig_vm *vm, unsigned int i, char *cause,
			    size_t len);

/* Device i's type name ("pci", or "unknown" for a device that reports no
 * type we know); NULL past end. The registry the VM was built with. */
const char *vfmig_vm_dev_type(struct vfmig_vm *vm, unsigned int i);
const struct vfmig_typereg *vfmig_vm_types(struct vfmig_vm *vm);

/*
 * Interrupt wiring. At attach the VM makes one eventfd per vector of every
 * IRQ index the device offers (INTx, MSI, MSI-X; at most 64 each) and binds
 * the one index its type's irq_wiring hook asks for, computed from the VMM's
 * shadow of the device (an enabled MSI-X, else an enabled MSI, else INTx
 * unless disabled): one index at a time, as QEMU does, because some
 * servers keep one eventfd table for all three.
 * vfmig_vm_irq_refresh: after the guest changed the interrupt mode (a
 * config write), bind what the type now asks for, unbinding the index
 * bound before; nothing when it did not change.
 * vfmig_vm_rewire_irqs: bind again even if unchanged (after a load or a
 * reconnect). Errors: -EINVAL (bad index), the type's or device's errors.
 */
int vfmig_vm_irq_refresh(struct vfmig_vm *vm, unsigned int i);
int vfmig_vm_rewire_irqs(struct vfmig_vm *vm, unsigned int i);

/* DMA_MAP the RAM window of device i again (after a reconnect, which
 * forgets windows). Errors: -EINVAL, device errors. */
int vfmig_vm_remap_ram(struct vfmig_vm *vm, unsigned int i);

#endif
