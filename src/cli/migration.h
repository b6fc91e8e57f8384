/* SPDX-License-Identifier: MIT */
/*
 * Migration on the VMM's control socket: the commands migrate,
 * migrate-cancel and query-migrate, the MIGRATION event, and the incoming
 * side started by `vfmig vmm --incoming URI`. Glue between the VM model
 * (engine/vm.h), the control socket and the engine (engine/migrate.h).
 */
#ifndef VFMIG_CLI_MIGRATION_H
#define VFMIG_CLI_MIGRATION_H

#include "control.h"
#include "engine/vm.h"

struct vfmig_migration;

/*
 * Set up migration for vm: register the device types, describe the VM to
 * the engine and add the commands to ctl. Returns 0 or a negative errno
 * with err filled.
 */
int vfmig_migration_create(struct vfmig_vm *vm, struct vfmig_control *ctl,
			   struct vfmig_migration **out, char *err,
			   size_t errlen);

/* How `vfmig vmm --incoming` receives. */
struct vfmig_incoming_opts {
	/* The guest runs if the source's ran, unless paused is set: then it
	 * stays paused (devices in STOP) until `cont`. */
	bool paused;
	/* Verify after the guest resumed instead of before (the verdict
	 * reaches the source in a second message). */
	bool verify_after;
	/* Permission bits of a unix: socket it listens on; 0: 0600. */
	unsigned int socket_mode;
};

/* Start receiving a VM from uri in the background (the VM is incoming). */
int vfmig_migration_incoming(struct vfmig_migration *m, const char *uri,
			     const struct vfmig_incoming_opts *o, char *err,
			     size_t errlen);

/* Tests only (vmm --test-hold POINT:FILE): every later migration, in or
 * out, holds at POINT until FILE is removed (struct vfmig_mig_params,
 * test_hold_*). The strings must outlive m. */
void vfmig_migration_set_test_hold(struct vfmig_migration *m,
				   const char *point, const char *file);

/* Cancel and wait for a running migration; free everything. NULL is ok. */
void vfmig_migration_destroy(struct vfmig_migration *m);

#endif
