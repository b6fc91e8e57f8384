/* SPDX-License-Identifier: MIT */
/*
 * The guest driver's verifier, in-process against a real `vfmig device
 * regs`: it must pass on an untouched VM and name the first mismatch for
 * each kind of damage a migration could do (a stale or corrupt RAM page, a
 * lost DMA write, a duplicated interrupt, a device counter off by one, a
 * missing ledger). And the ledger carries the driver over to another VM
 * that attaches to the same device with a copy of the RAM.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/guest.h"
#include "engine/vm.h"
#include "guest/drivers.h"
#include "harness.h"
#include "pci/pci_state.h"

#define RAM (4ull << 20)

struct fx {
	char sock[256];
	pid_t pid;
	struct vfmig_vm *vm;
};

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* The device types a VMM registers; one registry for the whole test. */
static const struct vfmig_typereg *types(void)
{
	static struct vfmig_typereg *reg;

	if (!reg && (vfmig_typereg_create(&reg) < 0 ||
		     vfmig_pci_type_register(reg) < 0))
		fail_msg("type registry");
	return reg;
}

static int make_vm(const char *sock, bool incoming, uint64_t ram,
		   struct vfmig_vm **vm)
{
	const char *devs[] = { sock };
	struct vfmig_vm_opts o = {
		.version = VFMIG_VM_OPTS_VERSION,
		.guest_drivers = vfmig_guest_sample_drivers,
		.devices = devs,
		.ndevices = 1,
		.ram_size = ram,
		.incoming = incoming,
		.guest_interval_us = 200,
		.guest_seed = 12345,
		.types = types(),
	};
	char err[256] = "";
	int r = vfmig_vm_create(&o, vm, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "vm: %s\n", err);
	return r;
}

static int setup(void **state)
{
	static int n;
	char name[32];
	struct fx *f = calloc(1, sizeof(*f));

	*state = f;
	snprintf(name, sizeof(name), "gv%d.sock", n++);
	snprintf(f->sock, sizeof(f->sock), "%s", harness_path(name));
	f->pid = harness_spawn_device("regs", f->sock, NULL);
	if (f->pid < 0)
		return -1;
	return make_vm(f->sock, false, RAM, &f->vm);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vfmig_vm_destroy(f->vm);
	harness_stop(f->pid);
	free(f);
	return 0;
}

static uint64_t iterations(struct vfmig_vm *vm)
{
	struct vfmig_guest_stats st;
	vfmig_guest_stats(vfmig_vm_guest(vm), &st);
	return st.iterations;
}

static void wait_iterations(struct vfmig_vm *vm, uint64_t n)
{
	for (int i = 0; i < 500 && iterations(vm) < n; i++)
		msleep(10);
	assert_true(iterations(vm) >= n);
}

static void expect_ok(struct vfmig_vm *vm)
{
	char msg[320];
	int r = vfmig_guest_verify(vm, msg, sizeof(msg));
	if (r != 0)
		fprintf(stderr, "verify: %s\n", msg);
	assert_int_equal(r, 0);
	assert_string_equal(msg, "ok");
}

static void expect_bad(struct vfmig_vm *vm, int err, const char *needle)
{
	char msg[320];
	int r = vfmig_guest_verify(vm, msg, sizeof(msg));
	if (r != err || !strstr(msg, needle))
		fprintf(stderr, "verify: %d %s (wanted \"%s\")\n", r, msg,
			needle);
	assert_int_equal(r, err);
	assert_non_null(strstr(msg, needle));
}

/* Flip one byte of guest RAM, check the verifier names it, put it back. */
static void flip(struct vfmig_vm *vm, uint64_t off, const char *needle)
{
	uint8_t *p = vfmig_vm_ram(vm)->host + off;

	*p ^= 0x40;
	expect_bad(vm, -EIO, needle);
	*p ^= 0x40;
	expect_ok(vm);
}

static void test_detects_damage(void **state)
{
	struct fx *f = *state;
	struct vfmig_ram *ram = vfmig_vm_ram(f->vm);
	uint64_t stamped = 0, blank = 0;
	char err[256];

	wait_iterations(f->vm, 100);
	assert_int_equal(vfmig_vm_stop(f->vm, err, sizeof(err)), 0);
	expect_ok(f->vm);
	assert_true(vfmig_ram_dirty_pages(ram) > 0);

	/* A stamped page and a page never stamped. */
	for (uint64_t off = VFMIG_GUEST_STAMP_BASE; off < ram->size;
	     off += 4096) {
		bool zero = true;
		for (unsigned i = 0; i < 4096 && zero; i++)
			zero = ram->host[off + i] == 0;
		if (zero && !blank)
			blank = off;
		if (!zero && !stamped)
			stamped = off;
	}
	assert_true(stamped && blank);
	flip(f->vm, stamped + 123, "RAM page");
	flip(f->vm, blank + 4095, "RAM page");
	flip(f->vm, VFMIG_GUEST_DMA_BASE + 100, "fill buffer");
	flip(f->vm, VFMIG_GUEST_DMA_BASE + 0x8000 + 7, "checksum buffer");

	/* A missing ledger: nothing to check against. */
	uint8_t saved = ram->host[VFMIG_GUEST_LEDGER_ADDR];
	ram->host[VFMIG_GUEST_LEDGER_ADDR] ^= 1;
	expect_bad(f->vm, -EAGAIN, "no guest ledger");
	ram->host[VFMIG_GUEST_LEDGER_ADDR] = saved;
	expect_ok(f->vm);

	/* An interrupt nobody raised (or raised once, delivered twice). */
	uint32_t n;
	const int *fds = vfmig_vm_dev_irq_fds(f->vm, 0, VFMIG_VMM_IRQ_MSIX,
					      &n);
	uint64_t one = 1;
	assert_true(n >= 2);
	assert_int_equal(write(fds[1], &one, sizeof(one)), sizeof(one));
	expect_bad(f->vm, -EIO, "vector 1");
	assert_int_equal(read(fds[1], &one, sizeof(one)), sizeof(one));
	expect_ok(f->vm);

	/* A doorbell the ledger does not know (done twice, say). */
	assert_int_equal(vfmig_vm_cont(f->vm, err, sizeof(err)), 0);
	vfmig_vm_pause_guest(f->vm);
	uint32_t bell = htole32(1); /* registers are little-endian */
	assert_int_equal(vfmig_vmm_dev_region_write(vfmig_vm_dev(f->vm, 0), 0,
						    0x044, &bell, 4),
			 0);
	expect_bad(f->vm, -EIO, "COUNTER");
	vfmig_vm_resume_guest(f->vm);
	/* The driver itself notices at its next check and stops. */
	for (int i = 0; i < 200; i++) {
		struct vfmig_guest_stats st;
		vfmig_guest_stats(vfmig_vm_guest(f->vm), &st);
		if (st.state == VFMIG_GUEST_FAILED) {
			assert_non_null(strstr(st.error, "COUNTER"));
			expect_bad(f->vm, -EIO, "guest driver failed");
			return;
		}
		msleep(10);
	}
	fail_msg("the driver did not notice the extra doorbell");
}

/* Stop, copy RAM, attach a new incoming VM to the same device (it keeps
 * its state across connections): cont adopts the ledger and carries on. */
static void test_ledger_carries_over(void **state)
{
	struct fx *f = *state;
	struct vfmig_vm *b = NULL, *c = NULL;
	uint8_t *copy = malloc(RAM);
	char err[256];
	uint64_t before;

	wait_iterations(f->vm, 50);
	assert_int_equal(vfmig_vm_stop(f->vm, err, sizeof(err)), 0);
	before = iterations(f->vm);
	memcpy(copy, vfmig_vm_ram(f->vm)->host, RAM);
	/* The device refuses DMA_MAP while stopped: leave it RUNNING (the
	 * guest stays paused, so nothing touches it). */
	assert_int_equal(vfmig_vm_set_device_states(f->vm,
						    VFMIG_VMM_MIG_RUNNING, err,
						    sizeof(err)),
			 0);
	vfmig_vm_destroy(f->vm);
	f->vm = NULL;

	/* Wrong RAM size: the ledger does not fit this VM. */
	assert_int_equal(make_vm(f->sock, true, 2 * RAM, &c), 0);
	memcpy(vfmig_vm_ram(c)->host, copy, RAM);
	assert_int_equal(vfmig_vm_cont(c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "stamp pages"));
	assert_int_equal(vfmig_vm_run_state(c), VFMIG_VM_INCOMING);
	vfmig_vm_destroy(c);

	assert_int_equal(make_vm(f->sock, true, RAM, &b), 0);
	f->vm = b;
	assert_int_equal(vfmig_vm_run_state(b), VFMIG_VM_INCOMING);
	assert_int_equal(iterations(b), 0);
	memcpy(vfmig_vm_ram(b)->host, copy, RAM);
	free(copy);
	expect_ok(b); /* consistent before it runs */
	assert_int_equal(vfmig_vm_cont(b, err, sizeof(err)), 0);
	assert_int_equal(vfmig_vm_run_state(b), VFMIG_VM_RUNNING);
	wait_iterations(b, before + 50);
	expect_ok(b);
}

static bool frozen(struct vfmig_vm *vm)
{
	uint64_t a = iterations(vm);
	msleep(50);
	return iterations(vm) == a;
}

/* The run state owns one pause of the guest: every state but RUNNING
 * holds it, and it nests with explicit pauses. */
static void test_run_state_holds_guest(void **state)
{
	struct fx *f = *state;
	char err[256];

	wait_iterations(f->vm, 10);
	assert_false(frozen(f->vm));
	assert_int_equal(vfmig_vm_set_run_state(f->vm, VFMIG_VM_FINISH_MIGRATE),
			 0);
	assert_true(frozen(f->vm));
	assert_int_equal(vfmig_vm_cont(f->vm, err, sizeof(err)), -EBUSY);
	assert_int_equal(vfmig_vm_set_run_state(f->vm, VFMIG_VM_RUNNING), 0);
	assert_false(frozen(f->vm));

	/* stop, then a migration that fails back to PAUSED: still paused. */
	assert_int_equal(vfmig_vm_stop(f->vm, err, sizeof(err)), 0);
	assert_true(frozen(f->vm));
	assert_int_equal(vfmig_vm_set_run_state(f->vm, VFMIG_VM_FINISH_MIGRATE),
			 0);
	assert_int_equal(vfmig_vm_set_run_state(f->vm, VFMIG_VM_PAUSED), 0);
	assert_true(frozen(f->vm));
	/* An explicit pause nests: cont alone does not resume the guest. */
	vfmig_vm_pause_guest(f->vm);
	assert_int_equal(vfmig_vm_cont(f->vm, err, sizeof(err)), 0);
	assert_true(frozen(f->vm));
	vfmig_vm_resume_guest(f->vm);
	assert_false(frozen(f->vm));
	assert_int_equal(vfmig_vm_set_run_state(f->vm, VFMIG_VM_NUM_STATES),
			 -EINVAL);
	expect_ok(f->vm);
}

/* The vram driver: fills, read-backs and periodic checksums that the
 * verifier recomputes from the ledger. */
static void test_vram(void **state)
{
	static const char *const size[] = { "--size", "1M", NULL };
	struct fx *f = *state;
	struct vfmig_guest_stats st;
	char err[256];
	const char *sock = harness_path("vram0.sock");
	char path[256];
	pid_t pid;
	struct vfmig_vm *vm;

	snprintf(path, sizeof(path), "%s", sock);
	pid = harness_spawn_device("vram", path, size);
	assert_true(pid > 0);
	const char *devs[] = { f->sock, path };
	struct vfmig_vm_opts o = {
		.version = VFMIG_VM_OPTS_VERSION,
		.guest_drivers = vfmig_guest_sample_drivers,
		.devices = devs,
		.ndevices = 2,
		.ram_size = RAM,
		.guest_interval_us = 100,
		.guest_seed = 99,
		.types = types(),
	};
	vfmig_vm_destroy(f->vm); /* the fixture's VM: the device is reused */
	f->vm = NULL;
	assert_int_equal(vfmig_vm_create(&o, &vm, err, sizeof(err)), 0);
	f->vm = vm;
	for (int i = 0; i < 1000; i++) {
		vfmig_guest_stats(vfmig_vm_guest(vm), &st);
		if (st.dev[1].checksums >= 2 || st.state == VFMIG_GUEST_FAILED)
			break;
		msleep(10);
	}
	assert_string_equal(st.dev[1].kind, "vram");
	assert_int_equal(st.state, VFMIG_GUEST_RUNNING);
	assert_true(st.dev[1].checksums >= 2);
	assert_true(st.dev[1].fills >= 512);
	assert_int_equal(vfmig_vm_stop(vm, err, sizeof(err)), 0);
	expect_ok(vm);

	/* A command the ledger does not know about. */
	assert_int_equal(vfmig_vm_cont(vm, err, sizeof(err)), 0);
	vfmig_vm_pause_guest(vm);
	uint32_t cmd = htole32(3); /* CHECKSUM; registers are little-endian */
	assert_int_equal(vfmig_vmm_dev_region_write(vfmig_vm_dev(vm, 1), 0,
						    0x02c, &cmd, 4),
			 0);
	expect_bad(vm, -EIO, "dev1: COUNTER");
	vfmig_vm_resume_guest(vm);
	vfmig_vm_destroy(vm);
	f->vm = NULL;
	assert_int_equal(harness_stop(pid), 0);
}

/* The RAM fill: pseudo-random pages from 1 MiB on before the first
 * iteration, checked by the verifier like stamps; a fill that does not fit
 * the RAM is refused. */
static void test_ram_fill(void **state)
{
	struct fx *f = *state;
	const char *devs[] = { f->sock };
	struct vfmig_vm_opts o = {
		.version = VFMIG_VM_OPTS_VERSION,
		.guest_drivers = vfmig_guest_sample_drivers,
		.devices = devs,
		.ndevices = 1,
		.ram_size = RAM,
		.guest_interval_us = 200,
		.guest_seed = 4242,
		.guest_fill = (1u << 20) + 1, /* a page more than 1 MiB */
		.types = types(),
	};
	uint64_t fill_end = VFMIG_GUEST_STAMP_BASE + (1u << 20) + 4096;
	struct vfmig_vm *vm;
	char err[256];

	vfmig_vm_destroy(f->vm); /* the fixture's VM: the device is reused */
	f->vm = NULL;
	assert_int_equal(vfmig_vm_create(&o, &vm, err, sizeof(err)), 0);
	f->vm = vm;
	wait_iterations(vm, 20);
	assert_int_equal(vfmig_vm_stop(vm, err, sizeof(err)), 0);
	expect_ok(vm);
	/* Verifying reads no hole of the RAM memfd (it would allocate it):
	 * a page after the fill that nothing wrote is still one. */
	struct vfmig_ram *ram = vfmig_vm_ram(vm);
	uint64_t hole = 0, len;
	for (uint64_t off = fill_end; off < RAM && !hole; off += 4096)
		if (vfmig_ram_extent(ram, off, &len) == 0)
			hole = off;
	assert_true(hole != 0);
	expect_ok(vm);
	assert_int_equal(vfmig_ram_extent(ram, hole, &len), 0);
	/* A hole where the fill wrote is a mismatch like any other. */
	uint8_t saved[4096];
	uint64_t victim = fill_end - 4096;
	memcpy(saved, ram->host + victim, sizeof(saved));
	assert_int_equal(fallocate(vfmig_vm_ram_fd(vm), FALLOC_FL_PUNCH_HOLE |
							       FALLOC_FL_KEEP_SIZE,
				   (off_t)victim, 4096),
			 0);
	assert_int_equal(vfmig_ram_extent(ram, victim, &len), 0);
	expect_bad(vm, -EIO, "RAM page");
	memcpy(ram->host + victim, saved, sizeof(saved));
	expect_ok(vm);
	/* No page of the fill is blank; find one after it that is. */
	const uint8_t *host = vfmig_vm_ram(vm)->host;
	uint64_t blank = 0;
	for (uint64_t off = VFMIG_GUEST_STAMP_BASE; off < RAM; off += 4096) {
		bool zero = true;
		for (unsigned i = 0; i < 4096 && zero; i++)
			zero = host[off + i] == 0;
		if (off < fill_end)
			assert_false(zero);
		else if (zero && !blank)
			blank = off;
	}
	assert_true(blank != 0);
	flip(vm, fill_end - 4096 + 8, "RAM page");
	flip(vm, blank + 17, "RAM page");
	/* A byte of a filled page no stamp overwrote is named as the fill's
	 * (20 iterations stamp at most 80 of the 257 pages). */
	for (uint64_t off = VFMIG_GUEST_STAMP_BASE;; off += 4096) {
		uint8_t *p = vfmig_vm_ram(vm)->host + off + 100;
		char msg[320];
		assert_true(off < fill_end);
		*p ^= 0x40;
		int r = vfmig_guest_verify(vm, msg, sizeof(msg));
		*p ^= 0x40;
		assert_int_equal(r, -EIO);
		if (strstr(msg, "the RAM fill wrote"))
			break;
	}
	expect_ok(vm);
	vfmig_vm_destroy(vm);
	f->vm = NULL;

	o.guest_fill = RAM - VFMIG_GUEST_STAMP_BASE + 1;
	assert_int_equal(vfmig_vm_create(&o, &vm, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "RAM fill"));
	o.guest_fill = RAM - VFMIG_GUEST_STAMP_BASE; /* all of it fits */
	assert_int_equal(vfmig_vm_create(&o, &vm, err, sizeof(err)), 0);
	f->vm = vm;
	wait_iterations(vm, 5);
	expect_ok(vm);
}

/*
 * An earlier client left the device in ERROR (a load it refused). A new VM
 * attaching it resets it, checks it says RUNNING again, and its guest runs
 * and verifies; before, such a device was attached as it was and the guest
 * failed later with lost interrupts.
 */
static void test_attach_resets_error(void **state)
{
	struct fx *f = *state;
	static const uint8_t junk[64] = { 0xde, 0xad };
	vfmig_vmm_dev *c;
	uint32_t st;

	vfmig_vm_destroy(f->vm); /* the fixture's VM: the device is reused */
	f->vm = NULL;
	assert_int_equal(vfmig_vmm_dev_connect(f->sock, NULL, &c), 0);
	assert_int_equal(vfmig_vmm_mig_set_state(c, VFMIG_VMM_MIG_RESUMING,
						 VFMIG_VMM_MIG_RUNNING, NULL), 0);
	assert_int_equal(vfmig_vmm_dev_mig_data_write(c, junk, sizeof(junk)), 0);
	/* A raw SET (no recovery, as a crashing client would leave it):
	 * RESUMING -> STOP validates the junk and fails into ERROR. */
	uint32_t set[2] = { VFMIG_VMM_MIG_STOP, UINT32_MAX };
	assert_true(vfmig_vmm_dev_feature(c, 2 | VFMIG_VMM_FEATURE_SET, set,
					  sizeof(set), NULL, 0, NULL) < 0);
	assert_int_equal(vfmig_vmm_mig_get_state(c, &st), 0);
	vfmig_vmm_dev_close(c);
	if (st != VFMIG_VMM_MIG_ERROR)
		fail_msg("the refused load left the device in %s, not ERROR",
			 vfmig_vmm_mig_state_name(st));

	assert_int_equal(make_vm(f->sock, false, RAM, &f->vm), 0);
	assert_int_equal(vfmig_vmm_mig_get_state(vfmig_vm_dev(f->vm, 0), &st), 0);
	assert_int_equal(st, VFMIG_VMM_MIG_RUNNING);
	wait_iterations(f->vm, 50);
	expect_ok(f->vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_detects_damage, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ledger_carries_over, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_vram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ram_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_state_holds_guest,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_resets_error,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
