/* SPDX-License-Identifier: MIT */
/*
 * vfmig demo: the main job. Starts three sample devices (regs, vram and dma;
 * --no-dma leaves dma out) for a source and three for a destination,
 * a source VMM whose guest driver works
 * the devices and its RAM, and a destination VMM waiting for a migration;
 * migrates the VM live between the two VMM processes; lets the guest run on
 * the destination and checks every counter, buffer, interrupt and page;
 * prints a report (with --json, one JSON object on the last line).
 * With --kvm the guest is the project's KVM guest (vmm --kvm, docs/kvm.md)
 * driving the dma device (and leaving regs alone; no vram): its vCPU
 * migrates too. Where KVM is not usable the demo says so and runs without.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "help.h"
#include "control_client.h"
#include "kvm/kvm.h"

#define N_PROCS 8

struct demo {
	bool json;
	bool no_dma; /* --no-dma: regs and vram only */
	bool kvm;    /* --kvm: a KVM guest drives dma; regs and dma only */
	const char *ram, *vram, *downtime;
	const char *iface; /* device-state interface: "v2" or "region" */
	char dir[64];
	pid_t pids[N_PROCS];
	int npids;
	char error[512];
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static const char *path_in(struct demo *d, const char *name, char *buf,
			   size_t len)
{
	snprintf(buf, len, "%s/%s", d->dir, name);
	return buf;
}

/* Start `vfmig ARGS...` with stderr to LOG in the demo folder. */
static int spawn(struct demo *d, const char *log, const char *const *args)
{
	char logpath[128], self[4096];
	const char *argv[24] = { "vfmig" };
	int n = 1;
	ssize_t sl;
	pid_t pid;

	for (; args[n - 1] && n < 23; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	path_in(d, log, logpath, sizeof(logpath));
	/* Exec this binary by its path, not as /proc/self/exe: under a
	 * wrapper that follows execs (valgrind --trace-children) the link
	 * names the wrapper's own program. */
	sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		sl = snprintf(self, sizeof(self), "/proc/self/exe");
	self[sl] = '\0';
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (!freopen(logpath, "w", stderr))
			_exit(127);
		execv(self, (char *const *)argv);
		_exit(127);
	}
	d->pids[d->npids++] = pid;
	return 0;
}

/* Wait up to 30 s (sanitizer builds on a busy machine are slow) for a
 * socket file; vfmig creates them only once they accept connections. */
static int wait_path(const char *path)
{
	struct stat st;

	for (int i = 0; i < 3000; i++) {
		if (stat(path, &st) == 0)
			return 0;
		sleep_ms(10);
	}
	return -ETIMEDOUT;
}

static int start_devices(struct demo *d, const char *side)
{
	char regs[128], vram[128], dma[128], name[32], log[32];

	snprintf(name, sizeof(name), "%s-regs.sock", side);
	path_in(d, name, regs, sizeof(regs));
	snprintf(log, sizeof(log), "%s-regs.log", side);
	const char *a1[] = { "device", "regs", "--socket-path", regs,
			     "--interface", d->iface, NULL };
	if (spawn(d, log, a1) < 0)
		return -1;
	snprintf(name, sizeof(name), "%s-vram.sock", side);
	path_in(d, name, vram, sizeof(vram));
	snprintf(log, sizeof(log), "%s-vram.log", side);
	const char *a2[] = { "device", "vram", "--socket-path", vram,
			     "--size", d->vram, "--interface", d->iface, NULL };
	if (!d->kvm && spawn(d, log, a2) < 0)
		return -1;
	if (!d->no_dma) {
		snprintf(name, sizeof(name), "%s-dma.sock", side);
		path_in(d, name, dma, sizeof(dma));
		snprintf(log, sizeof(log), "%s-dma.log", side);
		const char *a3[] = { "device", "dma", "--socket-path", dma,
				     "--interface", d->iface, NULL };
		if (spawn(d, log, a3) < 0 || wait_path(dma) < 0)
			return -1;
	}
	return wait_path(regs) == 0 && (d->kvm || wait_path(vram) == 0) ? 0
									 : -1;
}

static int start_vmm(struct demo *d, const char *side, const char *incoming)
{
	char regs[128], vram[128], dma[128], ctl[128], uri[160], name[32];
	char log[32];

	snprintf(name, sizeof(name), "%s-regs.sock", side);
	path_in(d, name, regs, sizeof(regs));
	snprintf(name, sizeof(name), "%s-vram.sock", side);
	path_in(d, name, vram, sizeof(vram));
	snprintf(name, sizeof(name), "%s-dma.sock", side);
	path_in(d, name, dma, sizeof(dma));
	snprintf(name, sizeof(name), "%s.ctl", side);
	path_in(d, name, ctl, sizeof(ctl));
	snprintf(log, sizeof(log), "%s-vmm.log", side);
	const char *args[20] = { "vmm", "--device", regs, "--device", vram };
	int n = 5;
	if (d->kvm) {
		args[3] = "--kvm"; /* no vram: the KVM guest drives dma */
		n = 4;
	}
	if (!d->no_dma) {
		args[n++] = "--device";
		args[n++] = dma;
	}
	args[n++] = "--ram";
	args[n++] = d->ram;
	args[n++] = "--control";
	args[n++] = ctl;
	if (incoming) {
		snprintf(uri, sizeof(uri), "%s", incoming);
		args[n++] = "--incoming";
		args[n++] = uri;
		/* Checked right after the resume, outside the downtime; the
		 * verdict still reaches the report. */
		args[n++] = "--verify";
		args[n++] = "after";
	}
	args[n] = NULL;
	return spawn(d, log, args);
}

/* One command on a VMM's control socket; the result (or NULL) is the
 * caller's. Errors go to d->error with the step named. */
static struct json_object *call(struct demo *d, const char *side,
				const char *cmd, struct json_object *args)
{
	struct ctl_client c;
	struct json_object *ret = NULL;
	char ctl[128], name[32], err[400];

	snprintf(name, sizeof(name), "%s.ctl", side);
	path_in(d, name, ctl, sizeof(ctl));
	if (ctl_client_open(&c, ctl, err, sizeof(err)) < 0) {
		snprintf(d->error, sizeof(d->error), "%s %s: %s", side, cmd,
			 err);
		json_object_put(args); /* ctl_client_call would consume it */
		return NULL;
	}
	if (ctl_client_call(&c, cmd, args, &ret, err, sizeof(err)) < 0) {
		snprintf(d->error, sizeof(d->error), "%s %s: %s", side, cmd,
			 err);
		if (c.fd >= 0)
			ctl_client_close(&c);
		return NULL;
	}
	ctl_client_close(&c);
	return ret;
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v)
						     : -1;
}

/* Sum a counter over the guest's devices. */
static int64_t guest_total(struct json_object *g, const char *key)
{
	struct json_object *devs;
	int64_t sum = 0;

	if (!json_object_object_get_ex(g, "devices", &devs))
		return -1;
	for (size_t i = 0; i < json_object_array_length(devs); i++)
		sum += get_int(json_object_array_get_idx(devs, i), key);
	return sum;
}

/* Migrate and follow it; returns the report (caller's) or NULL. */
static struct json_object *migrate(struct demo *d, const char *uri)
{
	struct json_object *args = json_object_new_object();
	struct json_object *q, *rep, *st;

	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (d->downtime)
		json_object_object_add(args, "downtime-ms",
				       json_object_new_int64(atol(d->downtime)));
	q = call(d, "source", "migrate", args);
	if (!q)
		return NULL;
	json_object_put(q);
	for (int i = 0; i < 600 * 50; i++) {
		q = call(d, "source", "query-migrate", NULL);
		if (!q)
			return NULL;
		if (json_object_object_get_ex(q, "report", &rep) &&
		    json_object_object_get_ex(q, "status", &st) &&
		    strcmp(json_object_get_string(st), "setup") &&
		    strcmp(json_object_get_string(st), "active") &&
		    strcmp(json_object_get_string(st), "switchover")) {
			json_object_get(rep);
			json_object_put(q);
			return rep;
		}
		json_object_put(q);
		sleep_ms(20);
	}
	snprintf(d->error, sizeof(d->error), "migration: did not end");
	return NULL;
}

static void stop_all(struct demo *d)
{
	char cmd[96];

	for (int i = d->npids - 1; i >= 0; i--)
		if (d->pids[i] > 0)
			kill(d->pids[i], SIGTERM);
	for (int i = 0; i < d->npids; i++) {
		int st, k;
		for (k = 0; k < 300; k++) {
			if (waitpid(d->pids[i], &st, WNOHANG) == d->pids[i])
				break;
			sleep_ms(10);
		}
		if (k == 300) {
			kill(d->pids[i], SIGKILL);
			waitpid(d->pids[i], NULL, 0);
		}
	}
	if (d->dir[0] && !getenv("VFMIG_DEMO_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "vfmig demo: could not remove %s\n",
				d->dir);
	}
}

static int parse_args(struct demo *d, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (!strcmp(a, "--json")) {
			d->json = true;
			continue;
		}
		if (!strcmp(a, "--no-dma")) {
			d->no_dma = true;
			continue;
		}
		if (!strcmp(a, "--kvm")) {
			d->kvm = true;
			continue;
		}
		if (!strcmp(a, "--ram"))
			slot = &d->ram;
		else if (!strcmp(a, "--vram-size"))
			slot = &d->vram;
		else if (!strcmp(a, "--downtime-ms"))
			slot = &d->downtime;
		else if (!strcmp(a, "--interface")) {
			if (i + 1 >= argc || (strcmp(argv[i + 1], "v2") &&
					      strcmp(argv[i + 1], "region"))) {
				fprintf(stderr, "vfmig demo: --interface takes "
						"v2 or region\n");
				return -1;
			}
			d->iface = argv[++i];
			continue;
		}
		if (!slot || i + 1 >= argc) {
			fprintf(stderr, "vfmig demo: unknown option '%s'\n", a);
			return -1;
		}
		*slot = argv[++i];
	}
	return 0;
}

static void print_report(struct demo *d, struct json_object *rep,
			 struct json_object *after, bool verified)
{
	struct json_object *out = rep ? json_object_get(rep)
				      : json_object_new_object();
	struct json_object *v, *b;

	json_object_object_add(out, "verified",
			       json_object_new_boolean(verified));
	if (d->error[0] || !json_object_object_get_ex(out, "error", &v))
		json_object_object_add(out, "error",
				       d->error[0] ? json_object_new_string(
							     d->error)
						   : NULL);
	if (after)
		json_object_object_add(out, "after_migration",
				       json_object_get(after));
	if (!d->json && rep) {
		printf("\nmigration report\n");
		printf("  total        %8.1f ms\n",
		       json_object_get_double(
			       json_object_object_get(rep, "total_ms")));
		printf("  downtime     %8.1f ms\n",
		       json_object_get_double(
			       json_object_object_get(rep, "downtime_ms")));
		printf("  rounds       %8d\n", (int)get_int(rep, "rounds"));
		if (json_object_object_get_ex(rep, "bytes", &b))
			printf("  bytes        RAM %lld, device %lld, "
			       "overhead %lld\n",
			       (long long)get_int(b, "ram"),
			       (long long)get_int(b, "device"),
			       (long long)get_int(b, "overhead"));
		printf("  throughput   %8.1f Mbit/s\n",
		       json_object_get_double(json_object_object_get(
			       rep, "throughput_mbps")));
	}
	if (!d->json)
		printf("  verified     %s%s%s\n", verified ? "yes" : "NO",
		       d->error[0] ? ": " : "", d->error);
	else
		printf("%s\n", json_object_to_json_string_ext(
				       out, JSON_C_TO_STRING_PLAIN));
	json_object_put(out);
}

/* Whether `vfmig vmm --kvm` would get a KVM VM here: the same steps it
 * takes first (kvm.h), undone at once. */
static bool kvm_usable(char *why, size_t len)
{
	struct vfmig_kvm_opts o = { .version = VFMIG_KVM_OPTS_VERSION };
	struct vfmig_kvm *k;

	if (vfmig_kvm_create(&o, &k, why, len) < 0)
		return false;
	vfmig_kvm_destroy(k);
	return true;
}

int cmd_demo(int argc, char **argv)
{
	struct demo d = { .ram = "64M", .vram = "256M", .iface = "v2",
			  .downtime = "30" };
	struct json_object *rep = NULL, *before = NULL, *after = NULL, *v;
	char uri[128], ctl[128];
	bool verified = false;

	if (parse_args(&d, argc, argv) < 0) {
		cli_usage(stderr, "demo");
		return 2;
	}
	if (d.kvm && d.no_dma) {
		fprintf(stderr, "vfmig demo: --kvm needs the dma device (the "
				"KVM guest drives it); drop --no-dma\n");
		return 2;
	}
	if (d.kvm && !kvm_usable(d.error, sizeof(d.error))) {
		printf("vfmig demo: --kvm: KVM is not usable here (%s); running "
		       "the demo without it, with the VMM's driver thread\n",
		       d.error);
		d.error[0] = 0;
		d.kvm = false;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(d.dir, sizeof(d.dir), "/tmp/vfmig-demo-XXXXXX");
	if (!mkdtemp(d.dir)) {
		perror("vfmig demo: mkdtemp");
		return 1;
	}
	snprintf(uri, sizeof(uri), "unix:%s/migration.sock", d.dir);
	if (d.kvm)
		printf("vfmig demo: live migration of a KVM guest on one vCPU "
		       "driving a dma device (and a regs device it leaves "
		       "alone; %s interface) between two VMM processes\n",
		       d.iface);
	else
		printf("vfmig demo: live migration of a VM with a regs, a %s "
		       "vram%s device (%s interface) between two VMM "
		       "processes\n", d.vram, d.no_dma ? "" : " and a dma",
		       d.iface);
	fflush(stdout);
	if (start_devices(&d, "source") < 0 ||
	    start_devices(&d, "destination") < 0 ||
	    start_vmm(&d, "source", NULL) < 0 ||
	    start_vmm(&d, "destination", uri) < 0 ||
	    wait_path(path_in(&d, "source.ctl", ctl, sizeof(ctl))) < 0 ||
	    wait_path(path_in(&d, "destination.ctl", ctl, sizeof(ctl))) < 0) {
		snprintf(d.error, sizeof(d.error), "setup: could not start "
			 "the device and VMM processes (logs in %s)", d.dir);
		goto out;
	}
	/* Let the guest work for a while so there is state to move; a KVM
	 * guest must have booted (on a slow machine that takes longer):
	 * a guest still booting cannot be verified. Up to 30 s. */
	sleep_ms(500);
	for (int i = 0;; i++) {
		before = call(&d, "source", "query-guest",
			      json_object_new_object());
		if (!before)
			goto out;
		if (get_int(before, "iterations") > 0 || i >= 300)
			break;
		json_object_put(before);
		sleep_ms(100);
	}
	printf("  source guest: %lld iterations, %lld doorbells, %lld DMA "
	       "fills, %lld interrupts\n",
	       (long long)get_int(before, "iterations"),
	       (long long)guest_total(before, "doorbells"),
	       (long long)guest_total(before, "fills"),
	       (long long)guest_total(before, "irq_received"));
	fflush(stdout);
	rep = migrate(&d, uri);
	if (!rep)
		goto out;
	if (json_object_object_get_ex(rep, "error", &v) && v) {
		snprintf(d.error, sizeof(d.error), "%s",
			 json_object_get_string(v));
		goto out;
	}
	/* The guest goes on at the destination: check it again later. */
	sleep_ms(300);
	after = call(&d, "destination", "query-guest", NULL);
	if (!after)
		goto out;
	printf("  destination guest (%s): %lld iterations, verify: %s\n",
	       json_object_get_string(json_object_object_get(after, "engine")),
	       (long long)get_int(after, "iterations"),
	       json_object_get_string(json_object_object_get(after, "verify")));
	bool at_switch = json_object_get_boolean(
		json_object_object_get(rep, "verified"));
	bool later = json_object_get_boolean(
		json_object_object_get(after, "verified"));
	bool progressed = get_int(after, "iterations") >
			  get_int(before, "iterations");
	verified = at_switch && later && progressed;
	if (!verified)
		snprintf(d.error, sizeof(d.error), "verification: %s",
			 !at_switch ? json_object_get_string(
					      json_object_object_get(rep,
								     "verify"))
			 : !later ? json_object_get_string(json_object_object_get(
					    after, "verify"))
				  : "the guest made no progress on the "
				    "destination");
out:
	print_report(&d, rep, after, verified);
	json_object_put(rep);
	json_object_put(before);
	json_object_put(after);
	stop_all(&d);
	return verified ? 0 : 1;
}
