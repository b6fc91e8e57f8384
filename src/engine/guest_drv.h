/* SPDX-License-Identifier: MIT */
/*
 * The guest driver's interface for device drivers: the ledger's layout in
 * guest RAM, the driver table entry and the helpers a driver uses. The
 * engine (guest.c) runs the thread, the ledger, the RAM stamps and the
 * verification; the drivers of the sample devices live in their own part
 * (src/guest), which knows the samples' datasheets. The engine knows the
 * drivers only through the table a VM is created with
 * (vfmig_vm_opts.guest_drivers): it never includes a sample header.
 */
#ifndef VFMIG_ENGINE_GUEST_DRV_H
#define VFMIG_ENGINE_GUEST_DRV_H

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/guest.h"
#include "engine/vm.h"

#define LEDGER_MAGIC 0x5646474c45444752ull /* "VFGLEDGR" */
#define LEDGER_VERSION 2u
#define KIND_NONE 0u /* a device no driver drives */
#define NSCRATCH 8u
#define LEDGER_DRV_WORDS 16u

/* Guest memory: every field a little-endian u64. */
struct ledger_dev {
	uint64_t kind;
	uint64_t nvec;
	uint64_t doorbells;
	uint64_t fills, fill_pattern;
	uint64_t csums, csum_sum;
	uint64_t mem_writes;
	uint64_t scratch[NSCRATCH];
	uint64_t irq_raised[VFMIG_GUEST_MAX_VECTORS];
	uint64_t irq_received[VFMIG_GUEST_MAX_VECTORS];
	uint64_t vram_pages; /* vram: pages of VRAM */
	uint64_t csum_fills; /* vram: fills covered by the last checksum */
	uint64_t drv[LEDGER_DRV_WORDS]; /* the driver's own counters */
};

struct ledger {
	uint64_t magic, version, ndevs, seed;
	uint64_t iterations, stamp_writes, stamp_pages;
	uint64_t fill_pages; /* stamp pages the RAM fill wrote at the start
			      * (0: none; a reserved zero word before) */
	struct ledger_dev dev[VFMIG_VM_MAX_DEVICES];
};
_Static_assert(sizeof(struct ledger) <= VFMIG_VM_PAGE_SIZE,
	       "the ledger fits its page");
_Static_assert(VFMIG_GUEST_DMA_BASE +
			       VFMIG_VM_MAX_DEVICES * VFMIG_GUEST_DMA_STRIDE <=
		       VFMIG_GUEST_STAMP_BASE,
	       "DMA areas below the stamp pages");

struct gdev;

/* One entry of the driver table: a driver binds to the devices with its
 * PCI IDs. kind is the driver's number in the ledger (unique in a table,
 * never KIND_NONE): a destination whose device gets another driver
 * refuses the ledger. ram_reserve: bytes of guest RAM the driver wants for
 * each device it drives (4 KiB multiple), taken from the top of RAM, out of
 * the stamp area; gdev.ram_base says where. The callbacks return 0 or
 * -errno after guest__fail(). */
struct vfmig_guest_driver {
	const char *name;
	uint16_t vendor, device;
	uint32_t kind;
	uint64_t ram_reserve;
	/* A fresh ledger: set the device up, fill d->ld. */
	int (*init)(struct vfmig_guest *g, struct gdev *d);
	/* One step of the workload (the thread, between pauses). */
	int (*iterate)(struct vfmig_guest *g, struct gdev *d, uint64_t it);
	/* Check everything the ledger says about the device and its memory;
	 * the thread is paused. */
	int (*verify)(struct vfmig_guest *g, struct gdev *d);
};

struct gdev {
	unsigned int index;
	vfmig_vmm_dev *dev;
	const int *irq_fds;
	uint32_t nirqs;
	const struct vfmig_guest_driver *drv; /* NULL: left alone */
	struct ledger_dev *ld;
	uint64_t ram_base; /* the driver's reserved RAM (ram_reserve bytes) */
	uint64_t drv_local[2]; /* the driver's scratch: not in RAM, not migrated */
};

struct vfmig_guest {
	struct vfmig_vm *vm;
	const struct vfmig_guest_driver *const *drivers; /* NULL-terminated */
	bool test_skip_dirty; /* tests only: CPU writes are not marked */
	struct vfmig_ram *ram;
	struct ledger *L;
	unsigned int interval_us;
	unsigned int stamps;       /* stamp pages per iteration (atomic) */
	unsigned int throttle_pct; /* share of time asleep (lock) */
	uint64_t seed;
	uint64_t stamp_pages;
	uint64_t fill_pages; /* for a fresh ledger */
	struct gdev devs[VFMIG_VM_MAX_DEVICES];
	unsigned int ndevs;
	char msg[256]; /* failure text of the running step (one thread) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, quit, busy, failed;
	unsigned int pause_count;    /* vfmig_guest_pause() */
	unsigned int hold_count;     /* stats and verify, not a pause */
	char error[256];	     /* guarded by lock */
	pthread_mutex_t verify_lock; /* one verification at a time (msg) */
	const struct vfmig_guest_backend *be; /* NULL: the thread runs */
	void *be_priv;
};

static inline uint64_t guest__mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Ledger fields are little-endian u64 in guest RAM. */
static inline uint64_t guest__lget(const uint64_t *p)
{
	return le64toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline uint8_t *guest__gpa(struct vfmig_guest *g, uint64_t addr)
{
	return g->ram->host + addr;
}

/* The "CPU" wrote guest RAM [addr, addr + len): mark it dirty. Every
 * write a driver makes to RAM goes through this (tests may switch it off:
 * vfmig_vm_opts.test_skip_dirty_tracking). */
void guest__mark_dirty(struct vfmig_guest *g, uint64_t addr, uint64_t len);

/* Store a ledger field and mark its page dirty (after the store). */
void guest__lset(struct vfmig_guest *g, uint64_t *p, uint64_t v);

/* Record why the current step failed (g->msg); returns -EIO. */
__attribute__((format(printf, 2, 3))) int guest__fail(struct vfmig_guest *g,
						      const char *fmt, ...);

/* 32-bit BAR0 register access; a failure is recorded with guest__fail. */
int guest__reg_read(struct vfmig_guest *g, struct gdev *d, uint32_t off,
		    uint32_t *val);
int guest__reg_write(struct vfmig_guest *g, struct gdev *d, uint32_t off,
		     uint32_t val);

/* Wait (bounded) until every interrupt the ledger says was raised on d has
 * arrived; more than raised is a duplicate, fewer after 2 s a loss. */
int guest__collect_irqs(struct vfmig_guest *g, struct gdev *d);

/* As a driver's probe: MSI-X on with vectors [0, nvec) unmasked (their
 * table in BAR msix_bar), memory decoding and bus mastering on. */
int guest__pci_enable(struct vfmig_guest *g, struct gdev *d, uint32_t msix_bar,
		      uint32_t nvec);

#define CHECK(expr)                                                            \
	do {                                                                   \
		int r_ = (expr);                                               \
		if (r_ < 0)                                                    \
			return r_;                                             \
	} while (0)

/* The VM's run state is RUNNING (its devices run): a driver may wait for
 * them to finish work. */
bool guest__vm_running(struct vfmig_guest *g);

#endif
