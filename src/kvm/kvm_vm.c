/* SPDX-License-Identifier: MIT */
/*
 * The KVM VM and its one vCPU thread (kvm.h): setup, the exit loop, pause
 * and resume, MSI-X routing, and the guest backend's stats and verify,
 * which read the guest's own status page.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/ram.h"
#include "engine/vm.h"
#include "kvm/kvm.h"
#include "kvm/kvm_internal.h"
#include "kvm/kvm_image.h"
#include "kvm/kvm_pci.h"
#include "kvm/kvm_setup.h"

#define KICK_SIGNAL SIGUSR1
#define GSI_BASE KVM__GSI_BASE
#define NGSI KVM__NGSI

/* ---- creation ---- */

int kvm__ioctl_err(char *err, size_t errlen, const char *what)
{
	int r = -errno;

	snprintf(err, errlen, "KVM: %s: %s", what, strerror(errno));
	return r;
}

int vfmig_kvm_create(const struct vfmig_kvm_opts *o, struct vfmig_kvm **out,
		     char *err, size_t errlen)
{
	static const struct {
		int cap;
		const char *name;
	} need[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
		{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	};
	struct vfmig_kvm *k;
	int r;

	*out = NULL;
	if (!o || o->version != VFMIG_KVM_OPTS_VERSION) {
		snprintf(err, errlen, "KVM: unknown options version");
		return -EINVAL;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->opts = *o;
	k->vm_fd = k->vcpu_fd = -1;
	pthread_mutex_init(&k->lock, NULL);
	pthread_mutex_init(&k->verify_lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	k->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm_fd < 0) {
		r = kvm__ioctl_err(err, errlen, "cannot open /dev/kvm");
		goto fail;
	}
	r = ioctl(k->kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		snprintf(err, errlen, "KVM: API version %d, want %d", r,
			 KVM_API_VERSION);
		r = -ENOTSUP;
		goto fail;
	}
	do
		k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
	while (k->vm_fd < 0 && errno == EINTR);
	if (k->vm_fd < 0) {
		r = kvm__ioctl_err(err, errlen, "KVM_CREATE_VM");
		goto fail;
	}
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (ioctl(k->vm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			snprintf(err, errlen, "KVM: %s is not available",
				 need[i].name);
			r = -ENOTSUP;
			goto fail;
		}
	if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = kvm__ioctl_err(err, errlen, "KVM_CREATE_IRQCHIP");
		goto fail;
	}
	*out = k;
	return 0;
fail:
	vfmig_kvm_destroy(k);
	return r;
}

/* ---- interrupts ---- */

static uint32_t gsi_of(unsigned int slot, uint32_t vec)
{
	return GSI_BASE + slot * KVM_PCI_MAX_VEC + vec;
}

/* The whole routing table: one MSI route per vector the guest aimed. */
int kvm__set_routes(struct vfmig_kvm *k)
{
	size_t sz = sizeof(struct kvm_irq_routing) +
		    NGSI * sizeof(struct kvm_irq_routing_entry);
	struct kvm_irq_routing *rt = calloc(1, sz);
	int r = 0;

	if (!rt)
		return -ENOMEM;
	for (unsigned int s = 0; s < k->bus.ndevs; s++) {
		const struct kvm_pci_dev *d = &k->bus.devs[s];
		for (uint32_t v = 0; v < d->nvec; v++) {
			const struct kvm_pci_msix_entry *e = &d->msix[v];
			if (!le32toh(e->addr_lo) && !le32toh(e->addr_hi))
				continue; /* not programmed yet */
			struct kvm_irq_routing_entry *re = &rt->entries[rt->nr++];
			re->gsi = gsi_of(s, v);
			re->type = KVM_IRQ_ROUTING_MSI;
			re->u.msi.address_lo = le32toh(e->addr_lo);
			re->u.msi.address_hi = le32toh(e->addr_hi);
			re->u.msi.data = le32toh(e->data);
		}
	}
	if (ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, rt) < 0)
		r = -errno;
	free(rt);
	return r;
}

/* Give vector vec of device slot an irqfd on the VM's MSI-X eventfd. */
int kvm__wire_irqfd(struct vfmig_kvm *k, unsigned int slot, uint32_t vec)
{
	uint32_t count = 0, gsi = gsi_of(slot, vec);
	const int *fds = vfmig_vm_dev_irq_fds(k->vm, slot, VFMIG_VMM_IRQ_MSIX,
					      &count);

	if (k->opts.test_no_irqfd || k->irqfd_on[gsi - GSI_BASE] || !fds ||
	    vec >= count || fds[vec] < 0)
		return 0;
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fds[vec], .gsi = gsi };
	if (ioctl(k->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return -errno;
	k->irqfd_on[gsi - GSI_BASE] = true;
	return 0;
}

/* kvm_pci_notify_fn: a config write (MSI-X may have been switched on: the
 * VM binds the device's eventfds) or an MSI-X table write (re-route). */
int kvm__pci_notify(void *priv, unsigned int slot, uint32_t vec)
{
	struct vfmig_kvm *k = priv;
	int r;

	if (vec == UINT32_MAX) {
		kvm__bar_sync(k, slot);
		return vfmig_vm_irq_refresh(k->vm, slot);
	}
	r = kvm__set_routes(k);
	if (r == 0)
		r = kvm__wire_irqfd(k, slot, vec);
	if (r < 0)
		vfmig_vm_log(k->vm, VFMIG_LOG_ERR,
			     "kvm: %s: routing MSI-X vector %u: %s",
			     vfmig_vm_dev_id(k->vm, slot), vec, strerror(-r));
	return r;
}

/* ---- the vCPU ---- */

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type,
		    uint8_t dpl, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->dpl = dpl;
	s->s = 1;
	s->g = 1;
	if (code)
		s->l = 1;
	else
		s->db = 1;
}

/* The vCPU, its kvm_run mapping and the TSC frequency. */
int kvm__vcpu_create(struct vfmig_kvm *k, char *err, size_t errlen)
{
	int sz;

	k->vcpu_fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, 0);
	if (k->vcpu_fd < 0)
		return kvm__ioctl_err(err, errlen, "KVM_CREATE_VCPU");
	sz = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run))
		return kvm__ioctl_err(err, errlen, "KVM_GET_VCPU_MMAP_SIZE");
	k->run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED,
		      k->vcpu_fd, 0);
	if (k->run == MAP_FAILED) {
		k->run = NULL;
		return kvm__ioctl_err(err, errlen, "mmap of kvm_run");
	}
	k->run_size = (size_t)sz;
	int khz = ioctl(k->vcpu_fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0)
		return kvm__ioctl_err(err, errlen, "KVM_GET_TSC_KHZ");
	k->tsc_khz = (uint64_t)khz;
	return 0;
}

/* The state of the first instruction (docs/kvm.md). */
static int vcpu_init(struct vfmig_kvm *k, uint64_t entry, char *err,
		     size_t errlen)
{
	struct kvm_sregs sr;
	struct kvm_regs regs = { 0 };
	struct kvm_lapic_state la;
	int r = kvm__vcpu_create(k, err, errlen);

	if (r < 0)
		return r;
	if (ioctl(k->vcpu_fd, KVM_GET_SREGS, &sr) < 0)
		return kvm__ioctl_err(err, errlen, "KVM_GET_SREGS");
	/* Long mode straight away, CPL 3: no real-mode code at all. */
	sr.cr0 = 0x80050033; /* PG WP NE ET MP PE */
	sr.cr4 = 0x620;	     /* OSXMMEXCPT OSFXSR PAE */
	sr.efer = 0x500;     /* LMA LME */
	sr.cr3 = KG_PT_ADDR;
	set_seg(&sr.cs, KG_SEL_UCODE, 0xb, 3, true);
	set_seg(&sr.ss, KG_SEL_UDATA, 0x3, 3, false);
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.selector = KG_SEL_TSS;
	sr.tr.base = KG_TSS_ADDR;
	sr.tr.limit = KG_TSS_LIMIT;
	sr.tr.type = 0xb; /* busy 64-bit TSS */
	sr.tr.present = 1;
	sr.gdt.base = KG_GDT_ADDR;
	sr.gdt.limit = KG_GDT_ENTRIES * 8 - 1;
	sr.idt.base = KG_IDT_ADDR;
	sr.idt.limit = 256 * 16 - 1;
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &sr) < 0)
		return kvm__ioctl_err(err, errlen, "KVM_SET_SREGS");
	regs.rip = entry;
	regs.rsp = KG_USTACK_TOP;
	regs.rflags = 0x3202; /* IOPL 3, IF, reserved bit 1 */
	if (ioctl(k->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return kvm__ioctl_err(err, errlen, "KVM_SET_REGS");
	/* Software-enable the LAPIC (spurious vector 0xff); TPR 0. */
	if (ioctl(k->vcpu_fd, KVM_GET_LAPIC, &la) < 0)
		return kvm__ioctl_err(err, errlen, "KVM_GET_LAPIC");
	uint32_t svr;
	memcpy(&svr, la.regs + 0xf0, 4);
	svr = htole32(le32toh(svr) | 0x1ff);
	memcpy(la.regs + 0xf0, &svr, 4);
	if (ioctl(k->vcpu_fd, KVM_SET_LAPIC, &la) < 0)
		return kvm__ioctl_err(err, errlen, "KVM_SET_LAPIC");
	return 0;
}

static const struct kg_status *status(struct vfmig_kvm *k)
{
	return (const struct kg_status *)(const void *)(k->ram->host +
							 KG_STATUS_ADDR);
}

static uint64_t sget(const uint64_t *p)
{
	return le64toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

/* The vCPU stops for good: the guest failed or KVM did. */
__attribute__((format(printf, 2, 3))) static void vcpu_fail(struct vfmig_kvm *k,
							    const char *fmt,
							    ...)
{
	va_list ap;

	pthread_mutex_lock(&k->lock);
	va_start(ap, fmt);
	vsnprintf(k->error, sizeof(k->error), fmt, ap);
	va_end(ap);
	k->failed = true;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	vfmig_vm_log(k->vm, VFMIG_LOG_ERR, "kvm: %s", k->error);
}

static double mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The guest timed its exits: log them per exit, in microseconds, beside
 * the same register read made by the VMM itself (no guest, no exit). */
static void bench_report(struct vfmig_kvm *k, const struct kg_status *st)
{
	double us = 1000.0 / (double)k->tsc_khz; /* per TSC tick */
	double mean = us / KG_BENCH_N;
	const struct kvm_pci_dev *d = &k->bus.devs[sget(&st->dev[0].slot)];
	uint32_t id;
	double least = 1e30, t0 = mono_us();

	for (int i = 0; i < KG_BENCH_N; i++) {
		double a = mono_us();
		if (vfmig_vmm_dev_region_read(d->dev, 0, 0, &id, 4) < 0)
			break;
		if (mono_us() - a < least)
			least = mono_us() - a;
	}
	double host = (mono_us() - t0) / KG_BENCH_N;
	vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
		     "kvm: exit costs in us, least/mean of %d: port write "
		     "%.2f/%.2f, dma register read %.2f/%.2f, config read "
		     "%.2f/%.2f, doorbell write (%s) %.2f/%.2f; the VMM's own "
		     "REGION_READ %.2f/%.2f",
		     KG_BENCH_N, (double)sget(&st->bench_pio_min) * us,
		     (double)sget(&st->bench_pio) * mean,
		     (double)sget(&st->bench_mmio_min) * us,
		     (double)sget(&st->bench_mmio) * mean,
		     (double)sget(&st->bench_cfg_min) * us,
		     (double)sget(&st->bench_cfg) * mean,
		     d->nio && d->io[0].gpa ? "ioeventfd" : "exit",
		     (double)sget(&st->bench_door_min) * us,
		     (double)sget(&st->bench_door) * mean, least, host);
}

static void guest_event(struct vfmig_kvm *k, uint32_t ev)
{
	const struct kg_status *st = status(k);
	char text[200];

	switch (ev) {
	case KG_EV_RUNNING:
		vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
			     "kvm: guest running, %" PRIu64 " dma device%s",
			     sget(&st->ndevs), sget(&st->ndevs) == 1 ? "" : "s");
		break;
	case KG_EV_FAILED:
		memcpy(text, st->error, sizeof(text));
		text[sizeof(text) - 1] = 0;
		vcpu_fail(k, "guest check failed: %s", text);
		break;
	case KG_EV_BENCH:
		bench_report(k, st);
		break;
	case KG_EV_FAULT:
		vcpu_fail(k, "guest CPU exception %" PRIu64 " at rip 0x%" PRIx64
			  " (error code 0x%" PRIx64 ")",
			  sget(&st->fault_vector), sget(&st->fault_rip),
			  sget(&st->fault_code));
		break;
	default:
		vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
			     "kvm: unknown guest event %u", ev);
	}
}

static void count(struct vfmig_kvm *k, uint64_t *c)
{
	pthread_mutex_lock(&k->lock);
	(*c)++;
	pthread_mutex_unlock(&k->lock);
}

/* The guest idles: sleep, unless (or until) a pause or quit is wanted. */
static void guest_idle(struct vfmig_kvm *k, uint32_t us)
{
	struct timespec ts;

	if (us > KG_IDLE_MAX_US)
		us = KG_IDLE_MAX_US;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)us * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&k->lock);
	k->exits.idle++;
	while (!k->quit && !k->pause_count && !k->hold_count)
		if (pthread_cond_timedwait(&k->cond, &k->lock, &ts) ==
		    ETIMEDOUT)
			break;
	pthread_mutex_unlock(&k->lock);
}

static void on_pio(struct vfmig_kvm *k)
{
	struct kvm_run *run = k->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	unsigned int size = run->io.size;

	count(k, &k->exits.pio);
	for (uint32_t n = 0; n < run->io.count; n++, data += size) {
		int r;
		if (run->io.port == KG_PORT_EVENT && write && size == 4) {
			uint32_t ev;
			memcpy(&ev, data, 4);
			guest_event(k, le32toh(ev));
			continue;
		}
		if (run->io.port == KG_PORT_NOP && write)
			continue;
		if (run->io.port == KG_PORT_IDLE && write && size == 4) {
			uint32_t us;
			memcpy(&us, data, 4);
			guest_idle(k, le32toh(us));
			continue;
		}
		r = kvm_pci_pio(&k->bus, run->io.port, write, data, size);
		if (r == 0) {
			count(k, &k->exits.pci_cfg);
			continue;
		}
		if (r != -ENOENT)
			vfmig_vm_log(k->vm, VFMIG_LOG_ERR,
				     "kvm: PCI config access at port 0x%x: %s",
				     run->io.port, vfmig_vmm_strerror(r));
		else
			count(k, &k->exits.unhandled);
		if (!write)
			memset(data, 0xff, size);
	}
}

static void on_mmio(struct vfmig_kvm *k)
{
	struct kvm_run *run = k->run;
	unsigned int len = run->mmio.len;
	int r;

	count(k, &k->exits.mmio);
	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	r = kvm_pci_mmio(&k->bus, run->mmio.phys_addr, run->mmio.is_write,
			 run->mmio.data, len);
	if (r == 0) {
		count(k, &k->exits.bar);
		return;
	}
	if (r == -ENOENT) {
		count(k, &k->exits.unhandled);
		vfmig_vm_log(k->vm, VFMIG_LOG_DEBUG,
			     "kvm: MMIO %s at 0x%llx: nothing there",
			     run->mmio.is_write ? "write" : "read",
			     (unsigned long long)run->mmio.phys_addr);
	} else {
		vfmig_vm_log(k->vm, VFMIG_LOG_ERR,
			     "kvm: BAR access at 0x%llx: %s",
			     (unsigned long long)run->mmio.phys_addr,
			     vfmig_vmm_strerror(r));
	}
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
}

/* One exit; false when the vCPU must stop. */
static bool serve_exit(struct vfmig_kvm *k)
{
	struct kvm_run *run = k->run;
	struct kvm_regs regs;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		on_pio(k);
		return !k->failed;
	case KVM_EXIT_MMIO:
		on_mmio(k);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		if (ioctl(k->vcpu_fd, KVM_GET_REGS, &regs) < 0)
			regs.rip = 0;
		vcpu_fail(k, "guest shut down (triple fault) at rip 0x%llx",
			  (unsigned long long)regs.rip);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vcpu_fail(k, "KVM could not enter the guest (reason 0x%llx)",
			  (unsigned long long)run->fail_entry
				  .hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		vcpu_fail(k, "KVM internal error, suberror %u",
			  run->internal.suberror);
		return false;
	default:
		vcpu_fail(k, "unexpected KVM exit reason %u", run->exit_reason);
		return false;
	}
}

/* Park while paused (or failed, or until quit). Returns false to quit. */
static bool park(struct vfmig_kvm *k)
{
	bool go;

	pthread_mutex_lock(&k->lock);
	while (!k->quit && (k->failed || k->pause_count || k->hold_count)) {
		k->parked = true;
		pthread_cond_broadcast(&k->cond);
		pthread_cond_wait(&k->cond, &k->lock);
	}
	k->parked = false;
	go = !k->quit;
	pthread_mutex_unlock(&k->lock);
	return go;
}

static bool pause_wanted(struct vfmig_kvm *k)
{
	pthread_mutex_lock(&k->lock);
	bool w = k->quit || k->pause_count || k->hold_count;
	pthread_mutex_unlock(&k->lock);
	return w;
}

static void *vcpu_main(void *arg)
{
	struct vfmig_kvm *k = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	while (park(k)) {
		__atomic_store_n(&k->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		while (!pause_wanted(k)) {
			if (ioctl(k->vcpu_fd, KVM_RUN, 0) < 0) {
				if (errno == EINTR || errno == EAGAIN) {
					count(k, &k->exits.intr);
					continue;
				}
				vcpu_fail(k, "KVM_RUN: %s", strerror(errno));
				break;
			}
			if (!serve_exit(k))
				break;
		}
		/* Complete an exit we just served (the data of a read goes
		 * into the guest's register at the next entry), so that a
		 * paused vCPU has no access half done. */
		__atomic_store_n(&k->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (!k->failed && ioctl(k->vcpu_fd, KVM_RUN, 0) < 0 &&
		    errno != EINTR)
			vcpu_fail(k, "KVM_RUN (completing an exit): %s",
				  strerror(errno));
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

/* Ask the vCPU thread to leave KVM_RUN; wait until it parked. Caller holds
 * the lock and raised a count. */
static void stop_vcpu_locked(struct vfmig_kvm *k)
{
	if (!k->started)
		return;
	__atomic_store_n(&k->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&k->cond); /* wakes an idle guest */
	while (!k->parked && !k->failed) {
		pthread_kill(k->thread, KICK_SIGNAL);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&k->cond, &k->lock, &ts);
	}
	/* failed: the thread stops touching devices once it set failed;
	 * wait until it parked all the same. */
	while (!k->parked && !k->quit)
		pthread_cond_wait(&k->cond, &k->lock);
}

void kvm__hold(struct vfmig_kvm *k, unsigned int *c)
{
	pthread_mutex_lock(&k->lock);
	(*c)++;
	stop_vcpu_locked(k);
	pthread_mutex_unlock(&k->lock);
}

void kvm__unhold(struct vfmig_kvm *k, unsigned int *c)
{
	pthread_mutex_lock(&k->lock);
	if (*c)
		(*c)--;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

/* ---- the backend ---- */

static int start_thread(struct vfmig_kvm *k, char *err, size_t errlen);

/* The memslot over the RAM, with KVM's dirty log while a migration
 * tracks the vCPU's writes. Called at the start and when that changes
 * (the vCPU then held). */
int kvm__memslot(struct vfmig_kvm *k, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region slot = {
		.slot = 0,
		.flags = k->dirty.on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = 0,
		.memory_size = k->ram->size,
		.userspace_addr = (uint64_t)(uintptr_t)k->ram->host,
	};

	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return kvm__ioctl_err(err, errlen, "memslot over the RAM memfd");
	k->slot_set = true;
	return 0;
}

static int be_start(void *priv, struct vfmig_vm *vm, char *err,
		    size_t errlen)
{
	struct vfmig_kvm *k = priv;
	struct kg_header hdr;
	int r;

	k->vm = vm;
	k->ram = vfmig_vm_ram(vm);
	_Static_assert(VFMIG_KVM_RAM_MIN == KG_RAM_MIN &&
			       VFMIG_KVM_RAM_MAX == KG_MMIO_BASE,
		       "kvm.h and the guest contract agree");
	if (k->ram->size < KG_RAM_MIN || k->ram->size > KG_MMIO_BASE) {
		snprintf(err, errlen, "KVM guest: RAM of %llu MiB; it needs "
			 "%u MiB to %llu MiB", (unsigned long long)(k->ram->size >> 20),
			 KG_RAM_MIN >> 20, (unsigned long long)KG_MMIO_BASE >> 20);
		return -EINVAL;
	}
	r = kvm__memslot(k, err, errlen);
	if (r < 0)
		return r;
	if (k->restore) {
		r = kvm__restore_start(k, err, errlen);
		if (r < 0)
			return r;
		return start_thread(k, err, errlen);
	}
	r = kvm_setup_image(k->ram->host, k->ram->size, vfmig_kvm_guest_image,
			    vfmig_kvm_guest_image_size, &hdr, err, errlen);
	if (r < 0)
		return r;
	r = vcpu_init(k, hdr.entry, err, errlen);
	if (r < 0)
		return r;
	kvm_setup_paging(k->ram->host);
	kvm_setup_gdt(k->ram->host);
	kvm_setup_idt(k->ram->host, &hdr);
	uint64_t seed = k->opts.seed;
	if (!seed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ull ^
		       (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
	}
	kvm_setup_boot(k->ram->host, k->ram->size, seed,
		       k->opts.stamps_per_iter ? k->opts.stamps_per_iter : 4,
		       KG_BOOT_IRQS | (k->opts.bench_exits ? KG_BOOT_BENCH : 0),
		       k->tsc_khz,
		       k->opts.interval_us ? k->opts.interval_us : 1000);
	/* The VMM wrote guest RAM: those pages are dirty. */
	vfmig_ram_mark_dirty(k->ram, 0, hdr.image_end);
	r = kvm_pci_init(&k->bus, vm, kvm__pci_notify, k, err, errlen);
	if (r < 0)
		return r;
	k->bus_ready = true;
	kvm__bar_map(k);
	kvm__ioefd_fetch(k);
	r = start_thread(k, err, errlen);
	if (r < 0)
		return r;
	vfmig_vm_log(vm, VFMIG_LOG_INFO,
		     "kvm: guest image of %zu bytes at 0x%llx, entry 0x%" PRIx64
		     ", TSC %" PRIu64 " kHz",
		     vfmig_kvm_guest_image_size,
		     (unsigned long long)KG_IMAGE_ADDR, hdr.entry, k->tsc_khz);
	return 0;
}

/* The vCPU thread, with the kick signal's handler in place. */
static int start_thread(struct vfmig_kvm *k, char *err, size_t errlen)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	int r;

	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return kvm__ioctl_err(err, errlen, "sigaction");
	r = -pthread_create(&k->thread, NULL, vcpu_main, k);
	if (r < 0) {
		snprintf(err, errlen, "KVM: vCPU thread: %s", strerror(-r));
		return r;
	}
	pthread_mutex_lock(&k->lock);
	k->started = true;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static void be_attach(void *priv, struct vfmig_vm *vm)
{
	struct vfmig_kvm *k = priv;

	k->vm = vm;
	k->ram = vfmig_vm_ram(vm);
}

static void be_pause(void *priv)
{
	kvm__hold(priv, &((struct vfmig_kvm *)priv)->pause_count);
}

static void be_resume(void *priv)
{
	kvm__unhold(priv, &((struct vfmig_kvm *)priv)->pause_count);
}

static void be_stop(void *priv)
{
	struct vfmig_kvm *k = priv;

	pthread_mutex_lock(&k->lock);
	if (!k->started) {
		pthread_mutex_unlock(&k->lock);
		return;
	}
	k->quit = true;
	__atomic_store_n(&k->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	pthread_kill(k->thread, KICK_SIGNAL);
	pthread_join(k->thread, NULL);
	k->started = false;
	kvm__bar_report(k);
}

static void be_stats(void *priv, struct vfmig_guest_stats *st)
{
	struct vfmig_kvm *k = priv;

	pthread_mutex_lock(&k->lock);
	bool started = k->started, failed = k->failed;
	bool paused = k->pause_count > 0;
	snprintf(st->error, sizeof(st->error), "%s", k->error);
	pthread_mutex_unlock(&k->lock);
	st->state = !started  ? VFMIG_GUEST_NOT_STARTED
		    : failed  ? VFMIG_GUEST_FAILED
		    : paused  ? VFMIG_GUEST_PAUSED
			      : VFMIG_GUEST_RUNNING;
	if (!started)
		return;
	st->ndevs = vfmig_vm_ndevs(k->vm);
	kvm__hold(k, &k->hold_count);
	const struct kg_status *s = status(k);
	uint64_t n = sget(&s->ndevs);
	st->iterations = sget(&s->iterations);
	st->stamp_writes = sget(&s->stamp_writes);
	st->stamp_checks = sget(&s->stamp_checks);
	for (unsigned int i = 0; i < st->ndevs; i++)
		snprintf(st->dev[i].kind, sizeof(st->dev[i].kind), "none");
	for (uint64_t j = 0; j < n && j < KG_MAX_DEVS; j++) {
		const struct kg_dev_status *ds = &s->dev[j];
		uint64_t slot = sget(&ds->slot);
		if (slot >= st->ndevs)
			continue;
		struct vfmig_guest_dev_stats *o = &st->dev[slot];
		snprintf(o->kind, sizeof(o->kind), "kvm-dma");
		o->doorbells = sget(&ds->submitted);
		o->completions = sget(&ds->completed);
		o->fills = sget(&ds->fills);
		o->copies = sget(&ds->copies);
		o->checksums = sget(&ds->csums);
		o->irq_raised = sget(&ds->irq_waits);
		for (unsigned int q = 0; q < KG_VEC_PER_DEV; q++)
			o->irq_received += sget(&ds->irqs[q]);
	}
	uint64_t ms = sget(&s->mem_slot);
	if (ms && ms <= st->ndevs) {
		struct vfmig_guest_dev_stats *o = &st->dev[ms - 1];
		snprintf(o->kind, sizeof(o->kind), "kvm-regs");
		o->mem_writes = sget(&s->mem_rounds);
	}
	kvm__unhold(k, &k->hold_count);
}

/* Each stamp page holds its generation's words; one the guest is writing
 * holds words of this generation or the next. */
static int verify_stamps(struct vfmig_kvm *k, char *msg, size_t size)
{
	const uint8_t *ram = k->ram->host;
	uint64_t npages = kvm_setup_stamp_pages(k->ram->size);
	uint64_t seed = le64toh(((const struct kg_boot *)(const void *)(
					 ram + KG_BOOT_ADDR))->seed);
	uint64_t busy = sget(&status(k)->stamp_busy);
	const uint64_t *table =
		(const uint64_t *)(const void *)(ram + KG_STAMP_TABLE_ADDR);
	uint64_t ext_end = 0;
	bool ext_data = true;

	for (uint64_t p = 0; p < npages; p++) {
		uint64_t gen = le64toh(table[p]), addr = KG_STAMP_ADDR + p * 4096;
		if (addr >= ext_end) {
			uint64_t len = 0;
			ext_data = vfmig_ram_extent(k->ram, addr, &len) != 0;
			ext_end = addr + (len ? len : 4096);
		}
		if (!ext_data && !gen)
			continue; /* a hole: zero, as never stamped */
		const uint64_t *w = (const uint64_t *)(const void *)(ram + addr);
		for (uint64_t i = 0; i < 512; i++) {
			uint64_t v = ext_data ? le64toh(w[i]) : 0;
			uint64_t want = gen ? kg_stamp_word(seed, gen, p, i) : 0;
			if (v == want ||
			    (busy == p + 1 &&
			     v == kg_stamp_word(seed, gen + 1, p, i)))
				continue;
			snprintf(msg, size, "RAM stamp page 0x%" PRIx64
				 " word %" PRIu64 ": 0x%016" PRIx64 ", generation "
				 "%" PRIu64 " wrote 0x%016" PRIx64,
				 addr, i, v, gen, want);
			return -EIO;
		}
	}
	return 0;
}

static int verify_devs(struct vfmig_kvm *k, const struct kg_status *s,
		       char *msg, size_t size)
{
	uint64_t n = sget(&s->ndevs);

	if (!n || n > k->bus.ndevs) {
		snprintf(msg, size, "guest found %" PRIu64 " dma devices, "
			 "the VM has %u", n, k->bus.ndevs);
		return -EIO;
	}
	for (uint64_t j = 0; j < n; j++) {
		const struct kg_dev_status *d = &s->dev[j];
		uint64_t slot = sget(&d->slot), sub = sget(&d->submitted);
		uint64_t done = sget(&d->completed), c = sget(&d->csums);
		uint64_t waits = sget(&d->irq_waits);
		uint64_t irqs = sget(&d->irqs[0]) + sget(&d->irqs[1]);
		if (slot >= k->bus.ndevs ||
		    sget(&d->bar0) != k->bus.devs[slot].bar_base[0]) {
			snprintf(msg, size, "guest device %" PRIu64 ": slot %"
				 PRIu64 ", BAR0 0x%" PRIx64 " is not what the "
				 "VMM decoded", j, slot, sget(&d->bar0));
			return -EIO;
		}
		if (done > sub || sub - done > 3) {
			snprintf(msg, size, "%s: %" PRIu64 " requests submitted,"
				 " %" PRIu64 " completed", vfmig_vm_dev_id(k->vm,
				 (unsigned int)slot), sub, done);
			return -EIO;
		}
		/* Each round waits for both vectors, then counts itself. */
		if (waits > irqs || waits < 2 * c || waits > 2 * c + 2) {
			snprintf(msg, size, "%s: %" PRIu64 " interrupts waited "
				 "for, %" PRIu64 " counted, %" PRIu64 " rounds",
				 vfmig_vm_dev_id(k->vm, (unsigned int)slot),
				 waits, irqs, c);
			return -EIO;
		}
	}
	return 0;
}

/* The regs device's mappable BAR, read through the device (REGION_READ,
 * not the VMM's mapping): it holds the words of the guest's last round
 * (or, while the guest writes one, of that or the next). */
static int verify_mem(struct vfmig_kvm *k, const struct kg_status *s,
		      char *msg, size_t size)
{
	uint64_t ms = sget(&s->mem_slot), r = sget(&s->mem_rounds);
	uint64_t seed = le64toh(((const struct kg_boot *)(const void *)(
					 k->ram->host + KG_BOOT_ADDR))->seed);
	bool busy = sget(&s->mem_busy) != 0;

	if (!ms)
		return 0;
	if (ms > k->bus.ndevs ||
	    sget(&s->mem_bar) != k->bus.devs[ms - 1].bar_base[KG_REGS_MEM_BAR]) {
		snprintf(msg, size, "guest regs BAR at slot %" PRIu64 ", 0x%"
			 PRIx64 ": not what the VMM decoded", ms - 1,
			 sget(&s->mem_bar));
		return -EIO;
	}
	if (!r && !busy)
		return 0;
	for (uint32_t w = 0; w < KG_MEM_WORDS; w++) {
		uint32_t v;
		int e = vfmig_vmm_dev_region_read(k->bus.devs[ms - 1].dev,
						  KG_REGS_MEM_BAR,
						  (uint64_t)w * KG_MEM_STRIDE,
						  &v, sizeof(v));
		if (e < 0) {
			snprintf(msg, size, "%s: reading its BAR %u: %s",
				 vfmig_vm_dev_id(k->vm, (unsigned int)ms - 1),
				 KG_REGS_MEM_BAR, vfmig_vmm_strerror(e));
			return e;
		}
		v = le32toh(v);
		if ((r && v == kg_mem_word(seed, r, w)) ||
		    (busy && v == kg_mem_word(seed, r + 1, w)))
			continue;
		snprintf(msg, size, "%s: BAR %u word %u is 0x%08" PRIx32
			 ", the guest's round %" PRIu64 " wrote 0x%08" PRIx32,
			 vfmig_vm_dev_id(k->vm, (unsigned int)ms - 1),
			 KG_REGS_MEM_BAR, w, v, r, kg_mem_word(seed, r, w));
		return -EIO;
	}
	return 0;
}

static int be_verify(void *priv, char *msg, size_t size)
{
	struct vfmig_kvm *k = priv;
	int r;

	pthread_mutex_lock(&k->lock);
	bool started = k->started, failed = k->failed;
	if (failed)
		snprintf(msg, size, "%s", k->error);
	pthread_mutex_unlock(&k->lock);
	if (failed)
		return -EIO;
	if (!started && !k->restore) {
		snprintf(msg, size, "the KVM guest has not started");
		return -EAGAIN;
	}
	/* A destination checks what it loaded before the guest runs. */
	if (!started) {
		r = kvm__restore_bus(k, msg, size);
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&k->verify_lock);
	kvm__hold(k, &k->hold_count);
	const struct kg_status *s = status(k);
	if (sget(&s->magic) != KG_STATUS_MAGIC ||
	    sget(&s->state) == KG_STATE_BOOT) {
		snprintf(msg, size, "the KVM guest is still booting");
		r = -EAGAIN;
	} else if (sget(&s->state) != KG_STATE_RUNNING || sget(&s->errors)) {
		snprintf(msg, size, "the guest reports %" PRIu64 " errors: %.*s",
			 sget(&s->errors), (int)sizeof(s->error), s->error);
		r = -EIO;
	} else {
		r = verify_devs(k, s, msg, size);
		if (r == 0)
			r = verify_mem(k, s, msg, size);
		if (r == 0)
			r = verify_stamps(k, msg, size);
	}
	kvm__unhold(k, &k->hold_count);
	pthread_mutex_unlock(&k->verify_lock);
	if (r == 0)
		snprintf(msg, size, "ok");
	return r;
}

const struct vfmig_guest_backend vfmig_kvm_backend = {
	.version = VFMIG_GUEST_BACKEND_VERSION,
	.name = "kvm",
	.start = be_start,
	.pause = be_pause,
	.resume = be_resume,
	.stop = be_stop,
	.stats = be_stats,
	.verify = be_verify,
	.migration_blocker = NULL,
	.attach = be_attach,
	.dirty_track = kvm__dirty_track,
	.dirty_sync = kvm__dirty_sync,
	.save_cpus = kvm__save_cpus,
	.load_cpu = kvm__load_cpu,
	.cpus_loaded = kvm__cpus_loaded,
	.forget_cpus = kvm__forget_cpus,
};

void vfmig_kvm_exits(struct vfmig_kvm *k, struct vfmig_kvm_exits *e)
{
	pthread_mutex_lock(&k->lock);
	*e = k->exits;
	pthread_mutex_unlock(&k->lock);
}

void vfmig_kvm_destroy(struct vfmig_kvm *k)
{
	if (!k)
		return;
	be_stop(k);
	if (k->run)
		munmap(k->run, k->run_size);
	if (k->vcpu_fd >= 0)
		close(k->vcpu_fd);
	kvm__ioefd_release(k);
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->kvm_fd >= 0)
		close(k->kvm_fd);
	kvm__bar_unmap(k);
	free(k->dirty.bitmap);
	free(k->restore);
	pthread_mutex_destroy(&k->lock);
	pthread_mutex_destroy(&k->verify_lock);
	pthread_cond_destroy(&k->cond);
	free(k);
}
