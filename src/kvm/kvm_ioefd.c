/* SPDX-License-Identifier: MIT */
/*
 * ioeventfds: registers a device offers an eventfd for (its doorbell,
 * DEVICE_GET_REGION_IO_FDS, checked by the VMM library) become KVM
 * ioeventfds at the BAR's guest-physical place + the register's offset.
 * The guest's write there then signals the device's eventfd inside KVM:
 * no exit, no message. They follow the BAR as the memory slots do: after
 * every config write they are registered where the guest placed the BAR
 * while memory decoding is on, moved when it moves, removed when decoding
 * goes off, and all removed at teardown. A destination fetches its own
 * device's fds and registers them where the loaded config space says.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "engine/vm.h"
#include "kvm/kvm_internal.h"

static void fetch_bar(struct vfmig_kvm *k, unsigned int i, uint32_t b)
{
	struct kvm_pci_dev *d = &k->bus.devs[i];
	struct vfmig_vmm_ioeventfd e[VFMIG_VMM_MAX_IOEVENTFDS];
	const char *id = vfmig_vm_dev_id(k->vm, i);
	int n = vfmig_vmm_dev_get_region_io_fds(d->dev, b, d->bar_size[b], e,
						VFMIG_VMM_MAX_IOEVENTFDS);

	if (n < 0) {
		/* -ENOTSUP, -EINVAL: servers that do not offer the message;
		 * -EPROTO: a reply the library refused (it logged why). */
		vfmig_vm_log(k->vm, n == -EPROTO ? VFMIG_LOG_WARNING
						 : VFMIG_LOG_DEBUG,
			     "kvm: %s: BAR %u: no ioeventfds (%s); its writes "
			     "stay messages", id, b, vfmig_vmm_strerror(n));
		return;
	}
	for (int j = 0; j < n; j++) {
		if (d->nio >= KVM_PCI_MAX_IOEFD) {
			vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
				     "kvm: %s: more than %u ioeventfds; the "
				     "rest stay messages", id,
				     KVM_PCI_MAX_IOEFD);
			vfmig_vmm_ioeventfds_release(e + j, (size_t)(n - j));
			return;
		}
		d->io[d->nio++] = (struct kvm_pci_ioefd){
			.bar = b, .size = e[j].size, .flags = e[j].flags,
			.off = e[j].offset, .datamatch = e[j].datamatch,
			.gpa = 0, .fd = e[j].fd,
		};
		vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
			     "kvm: %s: BAR %u offset 0x%" PRIx64 " (%u bytes%s):"
			     " ioeventfd offered%s", id, b, e[j].offset,
			     e[j].size,
			     e[j].flags & VFMIG_VMM_IOEVENTFD_DATAMATCH
				     ? ", datamatch" : "",
			     k->opts.test_no_ioeventfd
				     ? " (--test-kvm-no-ioeventfd: not used)"
				     : "");
	}
}

void kvm__ioefd_fetch(struct vfmig_kvm *k)
{
	if (ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) <= 0) {
		vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
			     "kvm: KVM_CAP_IOEVENTFD is not available; "
			     "doorbells stay messages");
		return;
	}
	for (unsigned int i = 0; i < k->bus.ndevs; i++) {
		k->bus.devs[i].nio = 0;
		for (uint32_t b = 0; b < KVM_PCI_NBARS; b++)
			if (k->bus.devs[i].bar_size[b])
				fetch_bar(k, i, b);
	}
}

static int ioeventfd(struct vfmig_kvm *k, const struct kvm_pci_ioefd *io,
		     uint64_t gpa, bool deassign)
{
	struct kvm_ioeventfd a = {
		.datamatch = io->datamatch,
		.addr = gpa,
		.len = io->size,
		.fd = io->fd,
		.flags = (io->flags & VFMIG_VMM_IOEVENTFD_DATAMATCH
				  ? KVM_IOEVENTFD_FLAG_DATAMATCH
				  : 0) |
			 (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
	};

	return ioctl(k->vm_fd, KVM_IOEVENTFD, &a) < 0 ? -errno : 0;
}

void kvm__ioefd_sync(struct vfmig_kvm *k, unsigned int i)
{
	struct kvm_pci_dev *d = &k->bus.devs[i];

	if (k->opts.test_no_ioeventfd)
		return;
	for (uint32_t j = 0; j < d->nio; j++) {
		struct kvm_pci_ioefd *io = &d->io[j];
		uint64_t base = d->bar_base[io->bar];
		uint64_t want = d->mem_on && base ? base + io->off : 0;
		int r;

		if (want == io->gpa)
			continue;
		if (io->gpa) {
			r = ioeventfd(k, io, io->gpa, true);
			if (r < 0)
				vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
					     "kvm: %s: removing the ioeventfd "
					     "at 0x%" PRIx64 ": %s",
					     vfmig_vm_dev_id(k->vm, i), io->gpa,
					     strerror(-r));
			io->gpa = 0;
		}
		if (!want)
			continue;
		r = ioeventfd(k, io, want, false);
		if (r < 0) {
			vfmig_vm_log(k->vm, VFMIG_LOG_WARNING,
				     "kvm: %s: BAR %u offset 0x%" PRIx64
				     ": KVM_IOEVENTFD at 0x%" PRIx64 ": %s; its "
				     "writes stay messages",
				     vfmig_vm_dev_id(k->vm, i), io->bar,
				     io->off, want, strerror(-r));
			continue;
		}
		io->gpa = want;
		vfmig_vm_log(k->vm, VFMIG_LOG_INFO,
			     "kvm: %s: BAR %u offset 0x%" PRIx64 ": ioeventfd "
			     "at 0x%" PRIx64, vfmig_vm_dev_id(k->vm, i), io->bar,
			     io->off, want);
	}
}

void kvm__ioefd_release(struct vfmig_kvm *k)
{
	for (unsigned int i = 0; i < k->bus.ndevs; i++) {
		struct kvm_pci_dev *d = &k->bus.devs[i];
		for (uint32_t j = 0; j < d->nio; j++) {
			if (d->io[j].gpa && k->vm_fd >= 0)
				(void)ioeventfd(k, &d->io[j], d->io[j].gpa,
						true);
			d->io[j].gpa = 0;
			if (d->io[j].fd >= 0)
				close(d->io[j].fd);
			d->io[j].fd = -1;
		}
		d->nio = 0;
	}
}
