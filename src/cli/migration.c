/* SPDX-License-Identifier: MIT */
/* Migration commands on the control socket; see migration.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/channel.h"
#include "engine/guest.h"
#include "engine/migrate.h"
#include "engine/multichan.h"
#include "migrate_args.h"
#include "migrate_info.h"
#include "migration.h"
#include "migration_conv.h"

struct vfmig_migration {
	struct vfmig_vm *vm;
	struct vfmig_control *ctl;
	const struct vfmig_typereg *reg; /* the VM's */
	struct vfmig_mig_dev devs[VFMIG_VM_MAX_DEVICES];
	struct vfmig_mig_vm mvm;
	struct vfmig_mig_params params;
	struct vfmig_mig_progress prog;
	struct vfmig_mig_track *track; /* prog.track: rates, timeline */
	struct vfmig_mig_live live; /* migrate-set-parameters */

	pthread_mutex_t lock; /* guards the fields below */
	bool thread_live;     /* a thread was started and not joined */
	bool busy;            /* a migration runs */
	bool incoming;
	char uri[VFMIG_CHAN_MAX_PATH + 16];
	struct vfmig_mig_report rep; /* the last finished migration */
	bool have_report;
	pthread_t thread;
	enum vfmig_vm_run_state before; /* source run state at the start */
	const char *hold_point, *hold_file; /* --test-hold */
};

/* ---- the VM as the engine sees it ---- */

static int mvm_pause(void *priv)
{
	struct vfmig_migration *m = priv;

	m->before = vfmig_vm_run_state(m->vm);
	if (m->before == VFMIG_VM_RUNNING)
		return vfmig_vm_set_run_state(m->vm, VFMIG_VM_FINISH_MIGRATE);
	return 0; /* already stopped: nothing runs */
}

static int mvm_resume(void *priv)
{
	struct vfmig_migration *m = priv;
	char err[256];

	if (m->incoming) {
		/* The devices run with their loaded state: the migration no
		 * longer owns them, and the guest starts. */
		vfmig_vm_set_migrating(m->vm, false, NULL, NULL);
		return vfmig_vm_cont(m->vm, err, sizeof(err));
	}
	/* Source rollback: back to the state the migration found, unless the
	 * user stopped the VM meanwhile (possibly after mvm_pause looked). */
	if (atomic_load(&m->prog.user_stopped))
		return vfmig_vm_set_run_state(m->vm, VFMIG_VM_PAUSED);
	return vfmig_vm_set_run_state(m->vm, m->before);
}

static int mvm_rewire(void *priv, size_t i)
{
	struct vfmig_migration *m = priv;

	return vfmig_vm_rewire_irqs(m->vm, (unsigned int)i);
}

static int mvm_verify(void *priv, char *msg, size_t len)
{
	struct vfmig_migration *m = priv;

	return vfmig_guest_verify(m->vm, msg, len);
}

/* The guest ran, and was not paused by its user during the migration. */
static bool mvm_was_running(void *priv)
{
	struct vfmig_migration *m = priv;

	return m->before == VFMIG_VM_RUNNING &&
	       !atomic_load(&m->prog.user_stopped);
}

/* Destination of a paused VM: it arrived, its devices wait in STOP. */
static int mvm_settle_paused(void *priv)
{
	struct vfmig_migration *m = priv;

	vfmig_vm_set_migrating(m->vm, false, NULL, NULL);
	return vfmig_vm_set_run_state(m->vm, VFMIG_VM_PAUSED);
}

static void mvm_device_fault(void *priv, size_t i, const char *msg)
{
	struct vfmig_migration *m = priv;

	vfmig_vm_set_dev_fault(m->vm, (unsigned int)i, msg);
}

static bool mvm_dev_connected(void *priv, size_t i, char *cause, size_t len)
{
	struct vfmig_migration *m = priv;

	return vfmig_vm_dev_connected(m->vm, (unsigned int)i, cause, len);
}

/* Auto-converge throttles the source's guest driver. */
static int mvm_set_throttle(void *priv, unsigned percent)
{
	struct vfmig_migration *m = priv;
	struct vfmig_guest *g = vfmig_vm_guest(m->vm);

	return g ? vfmig_guest_set_throttle(g, percent) : -ENOTSUP;
}

/* A KVM guest's vCPUs: their dirty log and their state (guest.h). */
static int mvm_cpu_dirty_track(void *priv, bool on, char *err, size_t len)
{
	struct vfmig_migration *m = priv;

	return vfmig_guest_cpu_dirty_track(vfmig_vm_guest(m->vm), on, err, len);
}

static int mvm_cpu_dirty_sync(void *priv, char *err, size_t len)
{
	struct vfmig_migration *m = priv;

	return vfmig_guest_cpu_dirty_sync(vfmig_vm_guest(m->vm), err, len);
}

static bool mvm_has_cpus(void *priv)
{
	struct vfmig_migration *m = priv;

	return vfmig_guest_has_cpus(vfmig_vm_guest(m->vm));
}

static int mvm_save_cpus(void *priv, struct vfmig_stream_writer *w, char *err,
			 size_t len)
{
	struct vfmig_migration *m = priv;

	return vfmig_guest_save_cpus(vfmig_vm_guest(m->vm), w, err, len);
}

static int mvm_load_cpu(void *priv, uint16_t vcpu, const uint8_t *state,
			size_t len, char *err, size_t errlen)
{
	struct vfmig_migration *m = priv;

	return vfmig_guest_load_cpu(vfmig_vm_guest(m->vm), vcpu, state, len,
				    err, errlen);
}

static int mvm_cpus_loaded(void *priv, char *err, size_t len)
{
	struct vfmig_migration *m = priv;

	return vfmig_guest_cpus_loaded(vfmig_vm_guest(m->vm), err, len);
}

static void mvm_cpus_forget(void *priv)
{
	struct vfmig_migration *m = priv;

	vfmig_guest_forget_cpus(vfmig_vm_guest(m->vm));
}

static const struct vfmig_mig_vm_ops mvm_ops = {
	.cpus_forget = mvm_cpus_forget,
	.cpu_dirty_track = mvm_cpu_dirty_track,
	.cpu_dirty_sync = mvm_cpu_dirty_sync,
	.has_cpus = mvm_has_cpus,
	.save_cpus = mvm_save_cpus,
	.load_cpu = mvm_load_cpu,
	.cpus_loaded = mvm_cpus_loaded,
	.pause = mvm_pause,
	.resume = mvm_resume,
	.rewire_irqs = mvm_rewire,
	.verify = mvm_verify,
	.was_running = mvm_was_running,
	.settle_paused = mvm_settle_paused,
	.device_fault = mvm_device_fault,
	.dev_connected = mvm_dev_connected,
	.set_throttle = mvm_set_throttle,
};

/* `stop` while a migration runs (vm.c calls this with its lock held). The
 * source lets the guest pause and tells the engine to switch over at its
 * first chance; a VM waiting for an incoming migration cannot be stopped. */
static int mvm_user_stop(void *priv, char *err, size_t errlen)
{
	struct vfmig_migration *m = priv;

	if (m->incoming) {
		snprintf(err, errlen, "an incoming migration is running");
		return -EBUSY;
	}
	atomic_store(&m->prog.user_stopped, true);
	return 0;
}

/* ---- the background thread ---- */

static void emit_status(struct vfmig_migration *m, const char *status,
			const char *error)
{
	struct json_object *d = json_object_new_object();

	json_object_object_add(d, "status", json_object_new_string(status));
	if (error && error[0])
		json_object_object_add(d, "error",
				       json_object_new_string(error));
	vfmig_control_emit(m->ctl, "MIGRATION", d);
}

/* After a failed incoming migration over a socket the VMM listens again
 * on the same URI: the devices were reset and the guest never ran, so a
 * second source may try. Not after a cancel (the user stopped waiting),
 * not for a file (reading it again gives the same result), and not when
 * the failure came before any source connected (listening failed). */
static bool listen_again(struct vfmig_migration *m, int r,
			 const struct vfmig_mig_report *rep)
{
	return m->incoming && r < 0 && r != -ECANCELED &&
	       !atomic_load(&m->prog.cancel) && rep->channel_opened &&
	       strncmp(m->uri, "file:", 5) != 0;
}

static void *migration_thread(void *arg)
{
	struct vfmig_migration *m = arg;
	struct vfmig_mig_report rep;
	bool again;
	int r;

	emit_status(m, "setup", NULL);
	vfmig_vm_set_migrating(m->vm, true, mvm_user_stop, m);
	do {
		if (m->incoming)
			r = vfmig_migrate_in(&m->mvm, m->reg, m->uri,
					     &m->params, &m->prog, &rep);
		else
			r = vfmig_migrate_out(&m->mvm, m->reg, m->uri,
					      &m->params, &m->prog, &rep);
		again = listen_again(m, r, &rep);
		if (!again) {
			if (r == 0 && !m->incoming)
				vfmig_vm_set_run_state(m->vm,
						       VFMIG_VM_POSTMIGRATE);
			vfmig_vm_set_migrating(m->vm, false, NULL, NULL);
		}
		vfmig_vm_log(m->vm, r == 0 ? VFMIG_LOG_INFO : VFMIG_LOG_ERR,
			     "migration %s: %s%s%s", m->incoming ? "in" : "out",
			     r == 0 ? "completed" : rep.error,
			     again ? "; waiting again on " : "",
			     again ? m->uri : "");
		/* The event reports the failed attempt; query-migrate shows
		 * the new wait ("setup") with that attempt's report. */
		pthread_mutex_lock(&m->lock);
		m->rep = rep;
		m->have_report = true;
		m->busy = again;
		int status = atomic_load(&m->prog.status);
		if (again)
			atomic_store(&m->prog.status, VFMIG_MIG_SETUP);
		pthread_mutex_unlock(&m->lock);
		emit_status(m, vfmig_mig_status_name(status), rep.error);
		if (again)
			emit_status(m, "setup", NULL);
	} while (again);
	return NULL;
}

/* Start a migration thread; the caller checked that none is busy. */
static int start_thread(struct vfmig_migration *m, const char *uri,
			bool incoming, char *err, size_t errlen)
{
	const char *blocker =
		vfmig_guest_migration_blocker(vfmig_vm_guest(m->vm));
	if (blocker) {
		snprintf(err, errlen, "setup: %s", blocker);
		return -ENOTSUP;
	}
	if (m->thread_live) {
		pthread_join(m->thread, NULL);
		m->thread_live = false;
	}
	if (strlen(uri) >= sizeof(m->uri)) {
		snprintf(err, errlen, "URI longer than %zu bytes",
			 sizeof(m->uri) - 1);
		return -EINVAL;
	}
	snprintf(m->uri, sizeof(m->uri), "%s", uri);
	m->incoming = incoming;
	m->busy = true;
	m->have_report = false;
	atomic_store(&m->prog.cancel, false);
	atomic_store(&m->prog.user_stopped, false);
	atomic_store(&m->prog.status, VFMIG_MIG_SETUP);
	int r = pthread_create(&m->thread, NULL, migration_thread, m);
	if (r != 0) {
		m->busy = false;
		snprintf(err, errlen, "cannot start a thread: %s", strerror(r));
		return -r;
	}
	m->thread_live = true;
	return 0;
}

/* ---- control commands ---- */

static int cmd_migrate(struct vfmig_control *ctl, void *priv,
		       struct json_object *args, struct json_object **ret,
		       char *err, size_t errlen)
{
	struct vfmig_migration *m = priv;
	const char *uri;
	int r;

	(void)ctl;
	(void)ret;
	/* The arguments' checks: migrate_args.c. */
	r = vfmig_migrate_args_check(args, &uri, err, errlen);
	if (r < 0)
		return r;
	pthread_mutex_lock(&m->lock);
	if (m->busy) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "a migration is already running");
		return -EBUSY;
	}
	enum vfmig_vm_run_state s = vfmig_vm_run_state(m->vm);
	if (s == VFMIG_VM_INCOMING || s == VFMIG_VM_POSTMIGRATE) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "the VM is %s: nothing to migrate",
			 vfmig_vm_run_state_name(s));
		return -EINVAL;
	}
	r = vfmig_migrate_args_parse(args, uri, &m->params, err, errlen);
	if (r < 0) {
		pthread_mutex_unlock(&m->lock);
		return r;
	}
	m->params.test_hold_point = m->hold_point;
	m->params.test_hold_file = m->hold_file;
	vfmig_mig_live_init(&m->live, &m->params.conv, m->params.downtime_ms);
	m->params.conv.live = &m->live;
	r = start_thread(m, uri, false, err, errlen);
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* The running outgoing migration's parameters (migration_conv.c). */
static int cmd_migrate_set_parameters(struct vfmig_control *ctl, void *priv,
				      struct json_object *args,
				      struct json_object **ret, char *err,
				      size_t errlen)
{
	struct vfmig_migration *m = priv;
	int r;

	(void)ctl;
	(void)ret;
	pthread_mutex_lock(&m->lock);
	if (!m->busy || m->incoming) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "no outgoing migration is running (give "
			 "the parameters to migrate)");
		return -EINVAL;
	}
	r = mig_conv_set_parameters(args, &m->live, err, errlen);
	pthread_mutex_unlock(&m->lock);
	return r;
}

static int cmd_migrate_cancel(struct vfmig_control *ctl, void *priv,
			      struct json_object *args,
			      struct json_object **ret, char *err,
			      size_t errlen)
{
	struct vfmig_migration *m = priv;

	(void)ctl;
	(void)ret;
	int r = vfmig_control_check_args(args, (const char *const[]){ NULL },
					 NULL, err, errlen);
	if (r < 0)
		return r;
	atomic_store(&m->prog.cancel, true);
	return 0;
}

static void add_report(struct json_object *o,
		       const struct vfmig_mig_report *rep, bool incoming)
{
	struct json_object *bytes = json_object_new_object();

	json_object_object_add(o, "verified",
			       json_object_new_boolean(rep->verified));
	json_object_object_add(o, "verify",
			       json_object_new_string(rep->verify_msg));
	json_object_object_add(o, "total_ms",
			       json_object_new_double(rep->total_ms));
	json_object_object_add(o, "downtime_ms",
			       rep->ok ? json_object_new_double(rep->downtime_ms)
				       : NULL);
	json_object_object_add(o, "rounds", json_object_new_int((int)rep->rounds));
	json_object_object_add(o, "converged",
			       json_object_new_boolean(rep->converged));
	json_object_object_add(bytes, "ram",
			       json_object_new_uint64(rep->ram_bytes));
	json_object_object_add(bytes, "device",
			       json_object_new_uint64(rep->device_bytes));
	json_object_object_add(bytes, "overhead",
			       json_object_new_uint64(rep->overhead_bytes));
	json_object_object_add(o, "bytes", bytes);
	json_object_object_add(o, "channels",
			       json_object_new_int((int)rep->channels));
	json_object_object_add(o, "throughput_mbps",
			       json_object_new_double(rep->throughput_mbps));
	if (!incoming) {
		json_object_object_add(o, "downtime_bytes",
				       json_object_new_uint64(rep->downtime_bytes));
		json_object_object_add(o, "bandwidth_mbps",
				       json_object_new_double(rep->bandwidth_mbps));
		json_object_object_add(o, "downtime_min_ms",
				       json_object_new_double(rep->downtime_min_ms));
		mig_conv_add_report(o, rep);
	}
	json_object_object_add(o, "error",
			       rep->error[0] ? json_object_new_string(rep->error)
					     : NULL);
}

static int cmd_query_migrate(struct vfmig_control *ctl, void *priv,
			     struct json_object *args,
			     struct json_object **ret, char *err,
			     size_t errlen)
{
	struct vfmig_migration *m = priv;
	struct json_object *o;

	(void)ctl;
	int r = vfmig_control_check_args(args, (const char *const[]){ NULL },
					 NULL, err, errlen);
	if (r < 0)
		return r;
	o = json_object_new_object();
	pthread_mutex_lock(&m->lock);
	json_object_object_add(
		o, "status",
		json_object_new_string(vfmig_mig_status_name(
			atomic_load(&m->prog.status))));
	json_object_object_add(o, "direction",
			       json_object_new_string(m->incoming ? "in"
								  : "out"));
	json_object_object_add(o, "rounds",
			       json_object_new_int((int)atomic_load(
				       &m->prog.rounds)));
	json_object_object_add(o, "ram_bytes",
			       json_object_new_uint64(
				       atomic_load(&m->prog.ram_bytes)));
	json_object_object_add(o, "device_bytes",
			       json_object_new_uint64(
				       atomic_load(&m->prog.device_bytes)));
	json_object_object_add(o, "dirty_pages",
			       json_object_new_uint64(
				       atomic_load(&m->prog.dirty_pages)));
	if (!m->incoming && m->busy)
		mig_conv_add_progress(o, &m->live);
	if (m->have_report) {
		struct json_object *rep = json_object_new_object();
		add_report(rep, &m->rep, m->incoming);
		vfmig_migrate_info_timeline(rep, m->track);
		json_object_object_add(o, "report", rep);
	}
	vfmig_migrate_info_add(o, m->track, atomic_load(&m->prog.ram_bytes));
	pthread_mutex_unlock(&m->lock);
	*ret = o;
	return 0;
}

static const struct vfmig_control_cmd commands[] = {
	{ "migrate", cmd_migrate,
	  "migrate live to {\"uri\": \"tcp:H:P|unix:PATH|file:PATH\", "
	  "\"downtime-ms\": N, \"max-rounds\": N, "
	  "\"connect-timeout-ms\": N, \"precopy\": \"all|ram|none\", "
	  "\"max-stop-copy-bytes\": N, "
	  "\"stream-checksum\": \"crc32|xxh3\", \"channels\": N, "
	  "\"max-bandwidth\": N, \"auto-converge\": \"off|throttle|force\", "
	  "\"converge-rounds\": N, \"cpu-throttle-initial\": N, "
	  "\"cpu-throttle-increment\": N, \"max-cpu-throttle\": N, "
	  "\"stall-timeout-ms\": N}" },
	{ "migrate-set-parameters", cmd_migrate_set_parameters,
	  "change the running migration: {\"max-bandwidth\": BYTES_PER_S "
	  "(0: unlimited), \"downtime-limit\": MS, "
	  "\"cpu-throttle-initial\": PCT, \"cpu-throttle-increment\": PCT, "
	  "\"max-cpu-throttle\": PCT}" },
	{ "migrate-cancel", cmd_migrate_cancel,
	  "stop a running migration (also in its stop-copy); the VM keeps "
	  "running here" },
	{ "query-migrate", cmd_query_migrate,
	  "progress, and the report of the last migration" },
};

/* ---- lifecycle ---- */

int vfmig_migration_create(struct vfmig_vm *vm, struct vfmig_control *ctl,
			   struct vfmig_migration **out, char *err,
			   size_t errlen)
{
	struct vfmig_migration *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->vm = vm;
	m->ctl = ctl;
	pthread_mutex_init(&m->lock, NULL);
	if (vfmig_mig_track_create(&m->track) < 0) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return -ENOMEM;
	}
	m->prog.track = m->track;
	m->reg = vfmig_vm_types(vm);
	for (unsigned i = 0; i < vfmig_vm_ndevs(vm); i++)
		m->devs[i] = (struct vfmig_mig_dev){
			.id = vfmig_vm_dev_id(vm, i),
			.type = vfmig_vm_dev_type(vm, i),
			.dev = vfmig_vm_dev(vm, i),
			.path = vfmig_vm_dev_path(vm, i),
		};
	m->mvm = (struct vfmig_mig_vm){
		.vm = m,
		.ops = &mvm_ops,
		.ram = vfmig_vm_ram(vm),
		.ndev = vfmig_vm_ndevs(vm),
		.devs = m->devs,
	};
	r = vfmig_control_add_commands(ctl, commands,
				       sizeof(commands) / sizeof(commands[0]),
				       m);
	if (r < 0) {
		snprintf(err, errlen, "control commands: %s", strerror(-r));
		vfmig_migration_destroy(m);
		return r;
	}
	*out = m;
	return 0;
}

int vfmig_migration_incoming(struct vfmig_migration *m, const char *uri,
			     const struct vfmig_incoming_opts *o, char *err,
			     size_t errlen)
{
	int r;

	memset(&m->params, 0, sizeof(m->params));
	m->params.dst_paused = o->paused;
	m->params.dst_verify_after = o->verify_after;
	m->params.socket_mode = o->socket_mode;
	/* Wait for the source as long as it takes. */
	m->params.timeout_ms = -1;
	m->params.test_hold_point = m->hold_point;
	m->params.test_hold_file = m->hold_file;
	pthread_mutex_lock(&m->lock);
	r = start_thread(m, uri, true, err, errlen);
	pthread_mutex_unlock(&m->lock);
	return r;
}

void vfmig_migration_set_test_hold(struct vfmig_migration *m,
				   const char *point, const char *file)
{
	m->hold_point = point;
	m->hold_file = file;
}

void vfmig_migration_destroy(struct vfmig_migration *m)
{
	if (!m)
		return;
	atomic_store(&m->prog.cancel, true);
	if (m->thread_live)
		pthread_join(m->thread, NULL);
	pthread_mutex_destroy(&m->lock);
	vfmig_mig_track_destroy(m->track);
	free(m);
}
