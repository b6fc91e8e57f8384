/* SPDX-License-Identifier: MIT */
/*
 * Migration of the KVM guest (kvm_internal.h): KVM's dirty log as a dirty
 * source of the VM's RAM, the vCPU state into and out of the stream, and
 * the start of a destination from it instead of a boot.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "engine/ram.h"
#include "engine/vm.h"
#include "kvm/kvm_abi.h"
#include "kvm/kvm_internal.h"
#include "stream/stream.h"

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rd(const uint64_t *p)
{
	return le64toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

uint64_t kvm__inflight(const struct vfmig_kvm *k)
{
	const struct kg_status *st =
		(const struct kg_status *)(const void *)(k->ram->host +
							  KG_STATUS_ADDR);
	uint64_t n = rd(&st->ndevs), sum = 0;

	for (uint64_t j = 0; j < n && j < KG_MAX_DEVS; j++) {
		uint64_t sub = rd(&st->dev[j].submitted);
		uint64_t done = rd(&st->dev[j].completed);
		if (sub > done)
			sum += sub - done;
	}
	return sum;
}

/* ---- the dirty log ---- */

static bool slot_set(struct vfmig_kvm *k)
{
	pthread_mutex_lock(&k->lock);
	bool set = k->slot_set;
	pthread_mutex_unlock(&k->lock);
	return set;
}

int kvm__dirty_track(void *priv, bool on, char *err, size_t errlen)
{
	struct vfmig_kvm *k = priv;
	struct kvm__dirty *d = &k->dirty;
	int r = 0;

	if (k->opts.test_no_dirty_log) {
		if (on)
			vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
				     "kvm: --test-kvm-no-dirty-log: the vCPU's "
				     "writes are NOT tracked (tests only: the "
				     "migration will lose them)");
		return 0;
	}
	if (on == d->on)
		return 0;
	if (on) {
		if (!k->ram || k->ram->size % KVM__LOG_PAGE) {
			snprintf(err, errlen, "KVM dirty log: RAM is not a "
				 "multiple of %u bytes", KVM__LOG_PAGE);
			return -EINVAL;
		}
		/* KVM writes one bit per page, rounded up to whole 64-bit
		 * longs (x86-64): exactly this many words. */
		uint64_t npages = k->ram->size / KVM__LOG_PAGE;
		d->words = (npages + 63) / 64;
		d->bitmap = calloc(d->words, sizeof(uint64_t));
		if (!d->bitmap)
			return -ENOMEM;
		d->syncs = d->pages = 0;
		d->ms_total = d->ms_max = 0;
	}
	d->on = on;
	if (slot_set(k)) {
		/* The slot's flags change with the vCPU out of KVM_RUN. */
		kvm__hold(k, &k->hold_count);
		r = kvm__memslot(k, err, errlen);
		kvm__unhold(k, &k->hold_count);
	}
	if (r < 0)
		d->on = !on;
	if (!d->on) {
		if (r == 0 && d->syncs)
			vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
				     "kvm: dirty log off: %" PRIu64 " syncs, %"
				     PRIu64 " pages the vCPU dirtied, "
				     "KVM_GET_DIRTY_LOG %.3f ms mean, %.3f ms "
				     "max", d->syncs, d->pages,
				     d->ms_total / (double)d->syncs, d->ms_max);
		free(d->bitmap);
		d->bitmap = NULL;
	} else {
		vfmig_vm_log(k->vm, VFMIG_LOG_DEBUG,
			     "kvm: dirty log on (%" PRIu64 " pages)",
			     k->ram->size / KVM__LOG_PAGE);
	}
	return r;
}

int kvm__dirty_sync(void *priv, char *err, size_t errlen)
{
	struct vfmig_kvm *k = priv;
	struct kvm__dirty *d = &k->dirty;
	uint64_t npages, n = 0;
	double t0;
	int r;

	/* A guest that never started wrote nothing (the VMM marks its own
	 * writes at the boot). */
	if (!d->on || !d->bitmap || !slot_set(k))
		return 0;
	npages = k->ram->size / KVM__LOG_PAGE;
	memset(d->bitmap, 0, d->words * sizeof(uint64_t));
	struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = d->bitmap };
	t0 = mono_ms();
	if (ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return kvm__ioctl_err(err, errlen, "KVM_GET_DIRTY_LOG");
	double ms = mono_ms() - t0;
	for (uint64_t w = 0; w < d->words; w++)
		n += (uint64_t)__builtin_popcountll(d->bitmap[w]);
	r = vfmig_ram_merge_bitmap(k->ram, 0, KVM__LOG_PAGE, d->bitmap,
				   npages);
	if (r < 0) {
		snprintf(err, errlen, "merging KVM's dirty log: %s",
			 strerror(-r));
		return r;
	}
	d->syncs++;
	d->pages += n;
	d->ms_total += ms;
	if (ms > d->ms_max)
		d->ms_max = ms;
	vfmig_vm_log(k->vm, VFMIG_LOG_DEBUG,
		     "kvm: KVM_GET_DIRTY_LOG: %" PRIu64 " pages dirty, %.3f ms",
		     n, ms);
	return 0;
}

/* ---- the vCPU state ---- */

int kvm__save_cpus(void *priv, struct vfmig_stream_writer *w, char *err,
		   size_t errlen)
{
	struct vfmig_kvm *k = priv;
	struct vfmig_kvm_vcpu_state *s;
	int r;

	pthread_mutex_lock(&k->lock);
	bool started = k->started, failed = k->failed;
	if (failed)
		snprintf(err, errlen, "the KVM guest failed (%s): there is "
			 "nothing to migrate", k->error);
	pthread_mutex_unlock(&k->lock);
	if (failed)
		return -EIO;
	if (!started) {
		snprintf(err, errlen, "the KVM guest never ran here, so it has "
			 "no vCPU state to migrate (`cont` it first)");
		return -EAGAIN;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	/* Parked, after the KVM_RUN that completes its last exit. */
	kvm__hold(k, &k->hold_count);
	double t0 = mono_ms();
	r = kvm_vcpu_save(k->vcpu_fd, s, err, errlen);
	s->vcpu = 0;
	s->tsc_khz = (uint32_t)k->tsc_khz;
	s->ram_size = k->ram->size;
	s->pci_cf8 = k->bus.cf8;
	uint64_t inflight = kvm__inflight(k);
	kvm__unhold(k, &k->hold_count);
	/* What the destination would refuse is refused here first. */
	if (r == 0)
		r = kvm_vcpu_state_check(s, k->ram->size, err, errlen);
	if (r == 0) {
		r = vfmig_stream_write_vcpu_state(w, 0, &vfmig_kvm_vcpu_desc, s);
		if (r < 0)
			snprintf(err, errlen, "writing VCPU_STATE: %s",
				 vfmig_stream_writer_error(w)[0]
					 ? vfmig_stream_writer_error(w)
					 : strerror(-r));
	}
	if (r == 0)
		vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
			     "kvm: vCPU state saved in %.3f ms: rip 0x%" PRIx64
			     ", %" PRIu64 " DMA requests in flight",
			     mono_ms() - t0, s->rip, inflight);
	free(s);
	return r;
}

int kvm__load_cpu(void *priv, uint16_t vcpu, const uint8_t *state,
		  size_t len, char *err, size_t errlen)
{
	struct vfmig_kvm *k = priv;
	struct vfmig_kvm_vcpu_state *s;
	int r;

	pthread_mutex_lock(&k->lock);
	bool started = k->started;
	pthread_mutex_unlock(&k->lock);
	if (started) {
		snprintf(err, errlen, "the KVM guest runs already");
		return -EBUSY;
	}
	if (vcpu != 0) {
		snprintf(err, errlen, "this VM has one vCPU (0)");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = vfmig_fields_decode(&vfmig_kvm_vcpu_desc, state, len, s, err,
				errlen);
	if (r == 0)
		r = kvm_vcpu_state_check(s, k->ram->size, err, errlen);
	if (r < 0) {
		free(s);
		return r;
	}
	free(k->restore); /* none: kvm__forget_cpus at the start */
	k->restore = s;
	k->bus_ready = false;
	return 0;
}

int kvm__cpus_loaded(void *priv, char *err, size_t errlen)
{
	struct vfmig_kvm *k = priv;

	if (k->restore)
		return 0;
	snprintf(err, errlen, "the stream brought no vCPU state: its source "
		 "was not a `vfmig vmm --kvm` VM, and the KVM guest cannot "
		 "take over another guest's RAM");
	return -EBADMSG;
}

void kvm__forget_cpus(void *priv)
{
	struct vfmig_kvm *k = priv;

	pthread_mutex_lock(&k->lock);
	bool started = k->started;
	pthread_mutex_unlock(&k->lock);
	if (started)
		return; /* it runs: what it was loaded from is no more use */
	free(k->restore);
	k->restore = NULL;
	k->bus_ready = false;
}

/* ---- the destination's start ---- */

int kvm__restore_bus(struct vfmig_kvm *k, char *err, size_t errlen)
{
	int r;

	if (k->bus_ready)
		return 0;
	/* An earlier incoming attempt that failed after it got here left
	 * its BAR slots and mappings and its ioeventfds (registered with
	 * KVM at the same addresses): let them go before the bus is read
	 * again, or KVM refuses the new ones. */
	kvm__ioefd_release(k);
	kvm__bar_release(k);
	/* BAR bases and memory decoding from the restored config space. */
	r = kvm_pci_init(&k->bus, k->vm, kvm__pci_notify, k, err, errlen);
	if (r < 0)
		return r;
	k->bus.cf8 = k->restore->pci_cf8;
	/* The MSI-X table the guest programmed, from the device (its
	 * loaded state), where the source kept a copy of its writes. */
	for (unsigned int i = 0; i < k->bus.ndevs; i++) {
		struct kvm_pci_dev *d = &k->bus.devs[i];
		if (!d->nvec)
			continue;
		r = vfmig_vmm_dev_region_read(d->dev, d->msix_bar, d->msix_off,
					      d->msix, d->nvec * 16ull);
		if (r < 0) {
			snprintf(err, errlen, "%s: reading its MSI-X table: %s",
				 vfmig_vm_dev_id(k->vm, i),
				 vfmig_vmm_strerror(r));
			return r;
		}
	}
	k->bus_ready = true;
	/* The restored BAR bases and decoding put the mmap'ed BARs' memory
	 * slots where the source had them. */
	kvm__bar_map(k);
	kvm__ioefd_fetch(k);
	for (unsigned int i = 0; i < k->bus.ndevs; i++)
		kvm__bar_sync(k, i);
	return 0;
}

int kvm__restore_start(struct vfmig_kvm *k, char *err, size_t errlen)
{
	const struct vfmig_kvm_vcpu_state *s = k->restore;
	int r = kvm__restore_bus(k, err, errlen);

	if (r == 0)
		r = kvm__vcpu_create(k, err, errlen);
	if (r < 0)
		return r;
	/* The guest's timeouts count TSC ticks at the rate the boot page
	 * says; on another host it may differ. */
	if (k->tsc_khz != s->tsc_khz) {
		struct kg_boot *b = (struct kg_boot *)(void *)(k->ram->host +
							       KG_BOOT_ADDR);
		__atomic_store_n(&b->tsc_per_ms, htole64(k->tsc_khz),
				 __ATOMIC_RELAXED);
		vfmig_ram_mark_dirty(k->ram, KG_BOOT_ADDR, sizeof(*b));
		vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
			     "kvm: TSC %" PRIu64 " kHz here, %u kHz at the "
			     "source: the guest's boot page says so now",
			     k->tsc_khz, s->tsc_khz);
	}
	r = kvm_vcpu_load(k->vcpu_fd, s, err, errlen);
	if (r < 0)
		return r;
	r = kvm__set_routes(k);
	if (r < 0) {
		snprintf(err, errlen, "KVM: MSI routes of the restored "
			 "devices: %s", strerror(-r));
		return r;
	}
	for (unsigned int i = 0; i < k->bus.ndevs; i++) {
		const struct kvm_pci_dev *d = &k->bus.devs[i];
		for (uint32_t v = 0; v < d->nvec; v++) {
			if (!d->msix[v].addr_lo && !d->msix[v].addr_hi)
				continue; /* never programmed */
			r = kvm__wire_irqfd(k, i, v);
			if (r < 0) {
				snprintf(err, errlen, "KVM: irqfd of %s vector "
					 "%u: %s", vfmig_vm_dev_id(k->vm, i), v,
					 strerror(-r));
				return r;
			}
		}
	}
	const struct kg_status *st =
		(const struct kg_status *)(const void *)(k->ram->host +
							  KG_STATUS_ADDR);
	vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
		     "kvm: guest resumed from its migrated vCPU state: rip "
		     "0x%" PRIx64 ", iteration %" PRIu64 ", %" PRIu64
		     " DMA requests in flight",
		     s->rip, rd(&st->iterations), kvm__inflight(k));
	return 0;
}
