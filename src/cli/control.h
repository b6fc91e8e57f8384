/* SPDX-License-Identifier: MIT */
/*
 * The VMM's control socket: line-delimited JSON, QMP-like
 * (docs/control-protocol.md). A request is
 *   {"execute": "NAME", "arguments": {...}, "id": ANY}
 * and gets exactly one reply line, {"return": {...}} or
 * {"error": {"class": "...", "desc": "..."}} (with "id" echoed). Events go
 * to every client as {"event": "NAME", "data": {...}, "timestamp":
 * {"seconds": S, "microseconds": U}}.
 *
 * One thread runs vfmig_control_run(): it accepts clients (up to 8 at once),
 * reads their lines and runs the handlers, one at a time. Other threads may
 * queue events with vfmig_control_emit().
 */
#ifndef VFMIG_CLI_CONTROL_H
#define VFMIG_CLI_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "control_parse.h"
#include "engine/vm.h"

struct vfmig_control;

/* Longest request line accepted (without the newline). */
#define VFMIG_CONTROL_LINE_MAX (64u << 10)

/*
 * A command handler. args is the "arguments" object (never NULL: an empty
 * object when the request had none; borrowed). On success return 0 and set
 * *ret to a new object (or leave it NULL for {}); on failure return a
 * negative errno and write the reason to err. Runs on the control thread.
 */
typedef int (*vfmig_control_fn)(struct vfmig_control *ctl, void *priv,
				struct json_object *args,
				struct json_object **ret, char *err,
				size_t errlen);

struct vfmig_control_cmd {
	const char *name;
	vfmig_control_fn fn;
	const char *help; /* one line, listed by "query-commands" */
};

/*
 * Listen on a UNIX socket at path (an old socket file there is replaced) for
 * vm. path NULL: no socket; run() then only waits for stop_fd. Subscribes
 * to vm's run-state changes (events STOP, RESUME).
 * Errors: -EINVAL (path too long), -ENOMEM, the errno of socket/bind/listen
 * (err names it).
 */
int vfmig_control_create(struct vfmig_vm *vm, const char *path,
			 struct vfmig_control **out, char *err, size_t errlen);

#define VFMIG_CONTROL_MAX_UIDS 64u

/* Who may use the control socket. */
struct vfmig_control_access {
	unsigned int mode; /* the socket file's permission bits; 0: 0600 */
	/* Serve only peers (SO_PEERCRED) with one of these n uids; 0: anyone
	 * who can open the socket. At most VFMIG_CONTROL_MAX_UIDS. */
	const uid_t *uids;
	size_t n_uids;
};

/*
 * vfmig_control_create with access settings (acc NULL: the defaults). The
 * socket file has exactly acc->mode, in a directory created 0700 when
 * missing; a directory every user may write (not sticky) is refused
 * (-EACCES, err says why); a refused peer is closed at accept and logged
 * with its uid. Errors also -EINVAL (too many uids, bad mode).
 */
int vfmig_control_create_access(struct vfmig_vm *vm, const char *path,
				const struct vfmig_control_access *acc,
				struct vfmig_control **out, char *err,
				size_t errlen);

/* Close every client and the socket (removing the file), unsubscribe. */
void vfmig_control_destroy(struct vfmig_control *ctl);

/*
 * Add a table of n more commands (e.g. the migration engine's), run with
 * priv. table must outlive ctl. A name already known is -EEXIST; at most 8
 * tables (-ENOSPC). Call before run().
 */
int vfmig_control_add_commands(struct vfmig_control *ctl,
			       const struct vfmig_control_cmd *table, size_t n,
			       void *priv);

/*
 * Serve until stop_fd (e.g. a signalfd; may be -1) becomes readable or a
 * client sends "quit". Returns 0, or a negative errno if poll fails.
 */
int vfmig_control_run(struct vfmig_control *ctl, int stop_fd);

/*
 * Queue an event for every connected client; thread-safe. data may be NULL;
 * ownership of data passes to the call. Returns 0 or -ENOMEM.
 */
int vfmig_control_emit(struct vfmig_control *ctl, const char *name,
		       struct json_object *data);

/* The VM the control socket drives. */
struct vfmig_vm *vfmig_control_vm(struct vfmig_control *ctl);

#endif
