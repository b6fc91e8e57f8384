/* SPDX-License-Identifier: MIT */
/*
 * The VM's interrupt wiring for a device without MSI-X: libvfmig-device
 * devices with INTx and MSI only, listening on real UNIX sockets and served
 * by their own threads, attached by vfmig_vm_create(). A write to BAR0 makes
 * the device raise the IRQ index written (on its own thread, the only one
 * allowed to call it). Checked: at attach INTx is bound and fires; once the
 * guest enables MSI and the VM refreshes its wiring, MSI fires and INTx is
 * unbound; the pci state saved from that VM and loaded into a second one
 * makes the second bind MSI after rewiring. The whole check fails if the VM
 * wires MSI-X only, as it used to.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <vfmig/device.h>
#include <vfmig/vmm.h>

#include "engine/typereg.h"
#include "engine/vm.h"
#include "guest/drivers.h"
#include "harness.h"
#include "pci/pci_state.h"

#define CAP_ID_MSI 0x05u

struct sdev {
	vfmig_dev *dev;
	pthread_t thread;
	volatile sig_atomic_t stop;
	char path[108];
};

/* BAR0: a write of v raises IRQ index v, vector 0; reads give zeros. */
static int region_access(vfmig_dev *dev, void *priv, unsigned int bar,
			 uint64_t offset, void *buf, size_t len, bool is_write)
{
	(void)priv;
	(void)offset;
	if (!is_write) {
		memset(buf, 0, len);
		return 0;
	}
	if (bar == 0 && len >= 1)
		(void)vfmig_dev_irq_trigger(dev, ((uint8_t *)buf)[0], 0);
	return 0;
}

static const struct vfmig_dev_ops ops = { .version = 1,
					  .region_access = region_access };

static void *serve(void *p)
{
	struct sdev *s = p;

	vfmig_dev_run(s->dev, &s->stop);
	return NULL;
}

static struct sdev *sdev_start(const char *name)
{
	struct vfmig_dev_desc d = {
		.version = VFMIG_DEV_DESC_VERSION,
		.vendor_id = 0x1b36, .device_id = 0x10f0, .class_code = 0xff0000,
		.intx_count = 1, .msi_vectors = 4,
	};
	struct sdev *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	d.bars[0].size = 4096;
	snprintf(s->path, sizeof(s->path), "%s", harness_path(name));
	assert_int_equal(vfmig_dev_create(&d, &ops, NULL, &s->dev), 0);
	assert_int_equal(vfmig_dev_listen(s->dev, s->path), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
	return s;
}

static void sdev_stop(struct sdev *s)
{
	s->stop = 1;
	pthread_join(s->thread, NULL);
	vfmig_dev_destroy(s->dev);
	free(s);
}

static const struct vfmig_typereg *types(void)
{
	static struct vfmig_typereg *reg;

	if (!reg && (vfmig_typereg_create(&reg) < 0 ||
		     vfmig_pci_type_register(reg) < 0))
		fail_msg("type registry");
	return reg;
}

static struct vfmig_vm *vm_for(const struct sdev *s)
{
	const char *devs[] = { s->path };
	struct vfmig_vm_opts o = {
		.version = VFMIG_VM_OPTS_VERSION,
		.guest_drivers = vfmig_guest_sample_drivers,
		.devices = devs,
		.ndevices = 1,
		.ram_size = 4u << 20,
		.guest_seed = 7,
		.types = types(),
	};
	struct vfmig_vm *vm = NULL;
	char err[256] = "";

	if (vfmig_vm_create(&o, &vm, err, sizeof(err)) < 0)
		fail_msg("VM: %s", err);
	return vm;
}

/* Has the eventfd of vector 0 of index fired within ms? Drains it. */
static bool fired(struct vfmig_vm *vm, uint32_t index, int ms)
{
	uint32_t n = 0;
	const int *fds = vfmig_vm_dev_irq_fds(vm, 0, index, &n);
	struct pollfd p;
	uint64_t v;

	assert_true(fds && n >= 1);
	p = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	if (poll(&p, 1, ms) != 1)
		return false;
	return read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v);
}

static void ring(struct vfmig_vm *vm, uint8_t index)
{
	assert_int_equal(vfmig_vmm_dev_region_write(vfmig_vm_dev(vm, 0), 0, 0,
						    &index, 1), 0);
}

/* What a guest driver does to switch to MSI: address, data, enable. */
static void enable_msi(struct vfmig_vm *vm)
{
	vfmig_vmm_dev *d = vfmig_vm_dev(vm, 0);
	uint8_t cfg[256], cap = 0;
	uint32_t addr = 0xfee00000u;
	uint16_t ctrl, data = 0x41;

	assert_int_equal(vfmig_vmm_dev_region_read(d, VFMIG_VMM_PCI_CONFIG, 0,
						   cfg, sizeof(cfg)), 0);
	for (uint8_t p = cfg[0x34] & 0xfc, k = 0; p && k < 48;
	     p = cfg[p + 1] & 0xfc, k++)
		if (cfg[p] == CAP_ID_MSI)
			cap = p;
	assert_int_not_equal(cap, 0);
	ctrl = (uint16_t)(cfg[cap + 2] | cfg[cap + 3] << 8);
	assert_int_equal(vfmig_vmm_dev_region_write(d, VFMIG_VMM_PCI_CONFIG,
						    cap + 4u, &addr, 4), 0);
	assert_int_equal(vfmig_vmm_dev_region_write(
				 d, VFMIG_VMM_PCI_CONFIG,
				 cap + ((ctrl & 0x80) ? 12u : 8u), &data, 2), 0);
	ctrl |= 1; /* MSI enable, one vector */
	assert_int_equal(vfmig_vmm_dev_region_write(d, VFMIG_VMM_PCI_CONFIG,
						    cap + 2u, &ctrl, 2), 0);
}

static void test_intx_then_msi(void **state)
{
	struct sdev *a = sdev_start("wire-a.sock"), *b = sdev_start("wire-b.sock");
	struct vfmig_vm *va = vm_for(a), *vb;
	const struct vfmig_type_ops *t = &vfmig_pci_type;
	uint8_t *enc = NULL;
	size_t len = 0;
	char err[256] = "";
	uint32_t n;
	void *st;
	(void)state;

	/* No MSI-X at all: INTx and MSI eventfds exist, INTx is bound. */
	assert_null(vfmig_vm_dev_irq_fds(va, 0, VFMIG_VMM_IRQ_MSIX, &n));
	assert_int_equal(n, 0);
	ring(va, VFMIG_VMM_IRQ_INTX);
	assert_true(fired(va, VFMIG_VMM_IRQ_INTX, 2000));

	/* The guest switches to MSI; the VM follows. */
	enable_msi(va);
	assert_int_equal(vfmig_vm_irq_refresh(va, 0), 0);
	ring(va, VFMIG_VMM_IRQ_MSI);
	assert_true(fired(va, VFMIG_VMM_IRQ_MSI, 2000));
	ring(va, VFMIG_VMM_IRQ_INTX);
	assert_false(fired(va, VFMIG_VMM_IRQ_INTX, 200));

	/* Through the pci type into a second VM: MSI there after rewiring. */
	vb = vm_for(b);
	assert_int_equal(vfmig_type_save_encoded(t, vfmig_vm_dev(va, 0), &enc,
						 &len, err, sizeof(err)), 0);
	st = vfmig_type_state_new(t);
	assert_non_null(st);
	if (vfmig_type_decode_load(t, vfmig_vm_dev(vb, 0), enc, len, st, err,
				   sizeof(err)) < 0)
		fail_msg("load: %s", err);
	assert_int_equal(vfmig_vm_rewire_irqs(vb, 0), 0);
	ring(vb, VFMIG_VMM_IRQ_MSI);
	assert_true(fired(vb, VFMIG_VMM_IRQ_MSI, 2000));
	ring(vb, VFMIG_VMM_IRQ_INTX);
	assert_false(fired(vb, VFMIG_VMM_IRQ_INTX, 200));

	free(st);
	free(enc);
	vfmig_vm_destroy(vb);
	vfmig_vm_destroy(va);
	sdev_stop(b);
	sdev_stop(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intx_then_msi),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
