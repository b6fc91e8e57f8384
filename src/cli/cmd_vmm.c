/* SPDX-License-Identifier: MIT */
/*
 * vfmig vmm: a VMM with guest RAM, vfio-user devices, a guest driver that
 * keeps them busy, and a JSON control socket. Runs until SIGTERM/SIGINT or
 * the "quit" command; logs to stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "access_opts.h"
#include "cli.h"
#include "control.h"
#include "help.h"
#include "units.h"
#include "migration.h"
#include "engine/guest.h"
#include "engine/migrate.h"
#include "engine/vm.h"
#include "guest/drivers.h"
#include "kvm/kvm.h"
#include "pci/pci_state.h"

struct vmm_args {
	const char *devices[VFMIG_VM_MAX_DEVICES];
	unsigned int ndevices;
	uint64_t ram;
	const char *control;
	const char *incoming;
	struct vfmig_incoming_opts in; /* --paused, --verify */
	unsigned int interval_us;
	unsigned int dirty_pages; /* 0: the guest's default */
	uint64_t seed;
	uint64_t fill;  /* bytes of RAM fill */
	bool fill_all;  /* --fill all: every page above 1 MiB */
	bool no_data_channel;
	bool prealloc;  /* --prealloc */
	int log_level;
	bool test_skip_dirty; /* --test-skip-dirty-tracking */
	bool kvm;             /* --kvm: a KVM guest instead of the thread */
	bool test_kvm_no_irqfd; /* --test-kvm-no-irqfd */
	bool test_kvm_bench;    /* --test-kvm-exit-bench */
	bool test_kvm_no_dirty_log; /* --test-kvm-no-dirty-log */
	bool test_kvm_no_bar_mmap; /* --test-kvm-no-bar-mmap */
	bool test_kvm_no_ioeventfd; /* --test-kvm-no-ioeventfd */
	char *test_hold;      /* --test-hold POINT:FILE, split at the ':' */
	const char *test_hold_file;
	/* --socket-mode (control and unix: incoming sockets), --allow-uid
	 * (control socket) */
	struct vfmig_control_access access;
	uid_t allow_uids[ACCESS_OPTS_MAX_UIDS];
};

static void log_stderr(void *priv, int level, const char *msg)
{
	(void)priv;
	fprintf(stderr, "vfmig vmm: %s%s\n",
		level <= VFMIG_LOG_ERR ? "error: "
		: level == VFMIG_LOG_WARNING ? "warning: "
					     : "",
		msg);
}

/* "64M", "1G", "4096", "512K": bytes, or 0 if malformed or overflowing. */
static uint64_t parse_size(const char *s)
{
	uint64_t v;

	return cli_parse_size(s, &v) < 0 ? 0 : v;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* --opt VAL or --opt=VAL; returns the value and advances *i, or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] || *i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

/* The value v of --socket-mode (mode true) or --allow-uid. */
static int parse_access(bool mode, const char *v, struct vmm_args *a)
{
	char err[160];
	int r;

	if (mode)
		r = access_opts_parse_mode(v, &a->access.mode, err, sizeof(err));
	else
		r = access_opts_parse_uids(v, a->allow_uids,
					   ACCESS_OPTS_MAX_UIDS,
					   &a->access.n_uids, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "vfmig vmm: %s: %s\n",
			mode ? "--socket-mode" : "--allow-uid", err);
	a->access.uids = a->allow_uids;
	return r;
}

static int parse_args(int argc, char **argv, struct vmm_args *a)
{
	*a = (struct vmm_args){ .log_level = VFMIG_LOG_INFO };
	for (int i = 1; i < argc; i++) {
		const char *v;
		uint64_t u;
		if ((v = opt_value(argc, argv, &i, "--device"))) {
			if (a->ndevices == VFMIG_VM_MAX_DEVICES) {
				fprintf(stderr, "vfmig vmm: at most %u devices\n",
					VFMIG_VM_MAX_DEVICES);
				return -1;
			}
			a->devices[a->ndevices++] = v;
		} else if ((v = opt_value(argc, argv, &i, "--ram"))) {
			a->ram = parse_size(v);
			if (!a->ram) {
				fprintf(stderr, "vfmig vmm: bad --ram '%s' "
						"(e.g. 64M, 1G)\n", v);
				return -1;
			}
		} else if ((v = opt_value(argc, argv, &i, "--control"))) {
			a->control = v;
		} else if ((v = opt_value(argc, argv, &i, "--incoming"))) {
			a->incoming = v;
		} else if (!strcmp(argv[i], "--paused")) {
			a->in.paused = true;
		} else if ((v = opt_value(argc, argv, &i, "--verify"))) {
			if (strcmp(v, "before") && strcmp(v, "after")) {
				fprintf(stderr, "vfmig vmm: bad --verify '%s' "
						"(before or after)\n", v);
				return -1;
			}
			a->in.verify_after = !strcmp(v, "after");
		} else if ((v = opt_value(argc, argv, &i,
					   "--guest-interval-us"))) {
			if (parse_uint(v, 10000000, &u) < 0 || !u) {
				fprintf(stderr, "vfmig vmm: bad "
						"--guest-interval-us '%s'\n", v);
				return -1;
			}
			a->interval_us = (unsigned int)u;
		} else if ((v = opt_value(argc, argv, &i,
					   "--guest-dirty-pages"))) {
			if (parse_uint(v, VFMIG_GUEST_STAMPS_MAX, &u) < 0 || !u) {
				fprintf(stderr, "vfmig vmm: bad "
						"--guest-dirty-pages '%s' "
						"(1..%u)\n", v,
					VFMIG_GUEST_STAMPS_MAX);
				return -1;
			}
			a->dirty_pages = (unsigned int)u;
		} else if ((v = opt_value(argc, argv, &i, "--seed"))) {
			if (parse_uint(v, UINT64_MAX, &a->seed) < 0) {
				fprintf(stderr, "vfmig vmm: bad --seed '%s'\n",
					v);
				return -1;
			}
		} else if ((v = opt_value(argc, argv, &i, "--fill"))) {
			a->fill_all = !strcmp(v, "all");
			a->fill = a->fill_all ? 0 : parse_size(v);
			if (!a->fill_all && !a->fill) {
				fprintf(stderr, "vfmig vmm: bad --fill '%s' "
						"(e.g. 16M, 1G, all)\n", v);
				return -1;
			}
		} else if (!strcmp(argv[i], "--kvm")) {
			a->kvm = true;
		} else if (!strcmp(argv[i], "--test-kvm-no-irqfd")) {
			/* Tests only, not in the usage: the KVM guest's MSI-X
			 * vectors get no irqfd, so it misses its interrupts
			 * (docs/kvm.md). */
			a->test_kvm_no_irqfd = true;
		} else if (!strcmp(argv[i], "--test-kvm-exit-bench")) {
			/* Benchmarks only, not in the usage: the KVM guest
			 * times its exits at boot and the VMM logs them
			 * (bench/bench-kvm-exits.sh). */
			a->test_kvm_bench = true;
		} else if (!strcmp(argv[i], "--test-kvm-no-dirty-log")) {
			/* Tests only, not in the usage: a migration does not
			 * take KVM's dirty log, so the vCPU's writes after a
			 * page was sent are lost (docs/kvm.md). */
			a->test_kvm_no_dirty_log = true;
		} else if (!strcmp(argv[i], "--test-kvm-no-bar-mmap")) {
			/* Tests only, not in the usage: BARs the device offers
			 * for mmap stay messages, no memory slots
			 * (docs/kvm.md). */
			a->test_kvm_no_bar_mmap = true;
		} else if (!strcmp(argv[i], "--test-kvm-no-ioeventfd")) {
			/* Tests only, not in the usage: the devices'
			 * ioeventfds are not registered with KVM, so doorbell
			 * writes exit and stay messages (docs/kvm.md). */
			a->test_kvm_no_ioeventfd = true;
		} else if ((v = opt_value(argc, argv, &i, "--socket-mode"))) {
			if (parse_access(true, v, a) < 0)
				return -1;
		} else if ((v = opt_value(argc, argv, &i, "--allow-uid"))) {
			if (parse_access(false, v, a) < 0)
				return -1;
		} else if (!strcmp(argv[i], "--no-data-channel")) {
			a->no_data_channel = true;
		} else if (!strcmp(argv[i], "--prealloc")) {
			a->prealloc = true;
		} else if (!strcmp(argv[i], "--test-skip-dirty-tracking")) {
			/* Tests only, not in the usage: the VMM's own writes
			 * to guest RAM are not tracked, so migrations lose
			 * them (docs/migration.md, "Proving nothing is
			 * lost"). */
			a->test_skip_dirty = true;
		} else if ((v = opt_value(argc, argv, &i, "--test-hold"))) {
			/* Tests only, not in the usage: migrations hold at a
			 * point until a file is gone (tests/faults). */
			char *colon = strchr(v, ':');
			if (!colon || !colon[1]) {
				fprintf(stderr, "vfmig vmm: bad --test-hold "
						"'%s' (POINT:FILE)\n", v);
				return -1;
			}
			free(a->test_hold);
			a->test_hold = strndup(v, (size_t)(colon - v));
			a->test_hold_file = colon + 1;
			if (!a->test_hold ||
			    !vfmig_mig_hold_point_valid(a->test_hold)) {
				fprintf(stderr, "vfmig vmm: bad --test-hold "
						"point in '%s'\n", v);
				return -1;
			}
		} else if (!strcmp(argv[i], "--quiet")) {
			a->log_level = VFMIG_LOG_WARNING;
		} else if (!strcmp(argv[i], "--verbose")) {
			a->log_level = VFMIG_LOG_DEBUG;
		} else {
			fprintf(stderr, "vfmig vmm: unknown or incomplete "
					"option '%s'\n", argv[i]);
			return -1;
		}
	}
	if (!a->ndevices) {
		fprintf(stderr, "vfmig vmm: at least one --device is needed\n");
		return -1;
	}
	if (a->incoming && (a->fill || a->fill_all)) {
		fprintf(stderr, "vfmig vmm: --fill is for a VM that starts "
				"here; an incoming VM's RAM comes from the "
				"migration\n");
		return -1;
	}
	if (a->kvm && (a->fill || a->fill_all)) {
		fprintf(stderr, "vfmig vmm: --fill is for the built-in driver "
				"thread, not --kvm\n");
		return -1;
	}
	if ((a->test_kvm_no_irqfd || a->test_kvm_bench ||
	     a->test_kvm_no_dirty_log || a->test_kvm_no_bar_mmap ||
	     a->test_kvm_no_ioeventfd) &&
	    !a->kvm) {
		fprintf(stderr, "vfmig vmm: --test-kvm-* options need --kvm\n");
		return -1;
	}
	uint64_t ram = a->ram ? a->ram : VFMIG_VM_RAM_DEFAULT;
	if (a->kvm && (ram < VFMIG_KVM_RAM_MIN || ram > VFMIG_KVM_RAM_MAX)) {
		fprintf(stderr, "vfmig vmm: --kvm: the guest needs 8 MiB to "
				"3584 MiB of --ram\n");
		return -1;
	}
	if (a->fill_all && ram > VFMIG_GUEST_STAMP_BASE)
		a->fill = ram - VFMIG_GUEST_STAMP_BASE; /* else --ram says */
	return 0;
}

int cmd_vmm(int argc, char **argv)
{
	struct vmm_args a;
	struct vfmig_vm *vm = NULL;
	struct vfmig_control *ctl = NULL;
	struct vfmig_migration *mig = NULL;
	struct vfmig_typereg *types = NULL;
	struct vfmig_kvm *kvm = NULL;
	char err[512] = "";
	sigset_t mask;
	int sfd, r, status = 1;

	if (parse_args(argc, argv, &a) < 0) {
		free(a.test_hold);
		cli_usage(stderr, "vmm");
		return 2;
	}
	/* Signals arrive on a signalfd; threads started below inherit the
	 * mask, so none of them is interrupted. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("vfmig vmm: signalfd");
		free(a.test_hold);
		return 1;
	}

	r = vfmig_typereg_create(&types);
	if (r == 0)
		r = vfmig_pci_type_register(types);
	if (r < 0) {
		fprintf(stderr, "vfmig vmm: device types: %s\n", strerror(-r));
		goto out;
	}
	if (a.kvm) {
		/* No fallback: whoever asked for a KVM guest gets one or a
		 * clear error (run without --kvm for the driver thread). */
		struct vfmig_kvm_opts ko = {
			.version = VFMIG_KVM_OPTS_VERSION,
			.seed = a.seed,
			.stamps_per_iter = a.dirty_pages,
			.interval_us = a.interval_us,
			.test_no_irqfd = a.test_kvm_no_irqfd,
			.bench_exits = a.test_kvm_bench,
			.test_no_dirty_log = a.test_kvm_no_dirty_log,
			.test_no_bar_mmap = a.test_kvm_no_bar_mmap,
			.test_no_ioeventfd = a.test_kvm_no_ioeventfd,
		};
		r = vfmig_kvm_create(&ko, &kvm, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "vfmig vmm: error: --kvm: %s (KVM is "
					"not usable here; without --kvm the "
					"VMM's own driver thread drives the "
					"devices)\n", err);
			goto out;
		}
	}
	struct vfmig_vm_opts o = {
		.version = VFMIG_VM_OPTS_VERSION,
		.types = types,
		.devices = a.devices,
		.ndevices = a.ndevices,
		.ram_size = a.ram,
		.incoming = a.incoming != NULL,
		.guest_interval_us = a.interval_us,
		.guest_seed = a.seed,
		.guest_fill = a.fill,
		.guest_drivers = kvm ? NULL : vfmig_guest_sample_drivers,
		.guest_backend = kvm ? &vfmig_kvm_backend : NULL,
		.guest_backend_priv = kvm,
		.test_skip_dirty_tracking = a.test_skip_dirty,
		.log_fn = log_stderr,
		.log_level = a.log_level,
		.no_data_channel = a.no_data_channel,
		.prealloc_ram = a.prealloc,
	};
	r = vfmig_vm_create(&o, &vm, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vfmig vmm: error: %s\n",
			err[0] ? err : strerror(-r));
		goto out;
	}
	if (a.test_skip_dirty)
		vfmig_vm_log(vm, VFMIG_LOG_WARNING,
			     "--test-skip-dirty-tracking: the VMM's own writes "
			     "to guest RAM are NOT tracked (tests only: "
			     "migrations will lose data)");
	if (a.dirty_pages && !kvm && vfmig_vm_guest(vm))
		vfmig_guest_set_stamps(vfmig_vm_guest(vm), a.dirty_pages);
	r = vfmig_control_create_access(vm, a.control, &a.access, &ctl, err,
					sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vfmig vmm: error: %s\n", err);
		goto out;
	}
	r = vfmig_migration_create(vm, ctl, &mig, err, sizeof(err));
	if (r == 0 && a.test_hold)
		vfmig_migration_set_test_hold(mig, a.test_hold,
					      a.test_hold_file);
	a.in.socket_mode = a.access.mode;
	if (r == 0 && a.incoming) {
		vfmig_vm_log(vm, VFMIG_LOG_INFO, "waiting for a migration on %s",
			     a.incoming);
		r = vfmig_migration_incoming(mig, a.incoming, &a.in, err,
					     sizeof(err));
	}
	if (r < 0) {
		fprintf(stderr, "vfmig vmm: error: %s\n", err);
		goto out;
	}
	if (a.control)
		vfmig_vm_log(vm, VFMIG_LOG_INFO, "control socket %s", a.control);
	r = vfmig_control_run(ctl, sfd);
	if (r < 0) {
		fprintf(stderr, "vfmig vmm: error: control loop: %s\n",
			strerror(-r));
		goto out;
	}
	vfmig_vm_log(vm, VFMIG_LOG_INFO, "shutting down");
	status = 0;
out:
	vfmig_migration_destroy(mig);
	vfmig_control_destroy(ctl);
	vfmig_vm_destroy(vm);
	vfmig_kvm_destroy(kvm);
	vfmig_typereg_destroy(types);
	free(a.test_hold);
	close(sfd);
	return status;
}
