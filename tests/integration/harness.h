/* SPDX-License-Identifier: MIT */
/*
 * Integration-test harness: runs sample devices as real processes
 * (`vfmig device NAME --socket-path PATH`) in a private temporary folder and
 * makes sure every child is gone when the test ends.
 */
#ifndef VFMIG_TEST_HARNESS_H
#define VFMIG_TEST_HARNESS_H

#include <sys/types.h>

/* How many times longer the tests wait for their children: the valgrind
 * test setup's VFMIG_TEST_SLOWDOWN (tests/valgrind/run.sh), where they run
 * under memcheck, else 1. Scale waits and timing bounds by it, never a
 * check of what a child did. */
int harness_patience(void);

/* Create the test's temporary folder (once) and return "<dir>/<name>". The
 * string is static storage reused by the next call: copy it if needed. */
const char *harness_path(const char *name);

/* Start the program argv[0] with argv (NULL-terminated), its stderr going
 * to "<dir>/<name>.log", and, unless wait_path is NULL, wait until a socket
 * appears there (an old file at wait_path is removed first). The child is
 * killed when the test exits unless stopped before. Returns the pid, or -1
 * after printing why. */
pid_t harness_spawn(const char *name, const char *const *argv,
		    const char *wait_path);

/* Start `vfmig device NAME --socket-path PATH [extra...]` (extra is
 * NULL-terminated, may be NULL) and wait until PATH exists. Its stderr goes
 * to "<dir>/<name>.log". Returns the pid, or -1 after printing why. */
pid_t harness_spawn_device(const char *name, const char *path,
			   const char *const *extra);

/* Send SIGTERM, wait up to 5 s times harness_patience() (then SIGKILL). Returns the child's exit
 * status (0..255), 128+signal if it died of a signal, or -1. */
int harness_stop(pid_t pid);

/* SIGKILL and reap, for tests that simulate a crash. */
void harness_kill(pid_t pid);

#endif
