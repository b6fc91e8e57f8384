/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_CHILDREN 32

static char tmpdir[64];
static pid_t children[MAX_CHILDREN];
static size_t n_children;

static void remove_tree(void)
{
	char cmd[128];

	for (size_t i = 0; i < n_children; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
		}
	if (tmpdir[0] && !getenv("VFMIG_KEEP_TMP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "harness: could not remove %s\n", tmpdir);
	}
}

const char *harness_path(const char *name)
{
	static char path[256];

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/vfmig-test-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			abort();
		}
		atexit(remove_tree);
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static void forget_child(pid_t pid)
{
	for (size_t i = 0; i < n_children; i++)
		if (children[i] == pid)
			children[i] = 0;
}

int harness_patience(void)
{
	const char *s = getenv("VFMIG_TEST_SLOWDOWN");
	int n = s ? atoi(s) : 1;

	return n > 1 ? n : 1;
}

pid_t harness_spawn(const char *name, const char *const *argv,
		    const char *wait_path)
{
	char logname[96], log[256];
	pid_t pid;

	if (n_children == MAX_CHILDREN) {
		fprintf(stderr, "harness: too many children\n");
		return -1;
	}
	snprintf(logname, sizeof(logname), "%s.log", name);
	snprintf(log, sizeof(log), "%s", harness_path(logname));
	if (wait_path)
		unlink(wait_path);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		perror("execv");
		_exit(127);
	}
	children[n_children++] = pid;
	if (!wait_path)
		return pid;

	/* Wait (bounded) for the socket to appear. */
	for (int i = 0; i < 500 * harness_patience(); i++) {
		struct stat st;
		int status;
		if (stat(wait_path, &st) == 0 && S_ISSOCK(st.st_mode))
			return pid;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			forget_child(pid);
			fprintf(stderr, "harness: %s exited early "
					"(status %d); log in %s\n",
				name, status, log);
			return -1;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "harness: socket %s did not appear\n", wait_path);
	harness_kill(pid);
	return -1;
}

pid_t harness_spawn_device(const char *name, const char *path,
			   const char *const *extra)
{
	const char *bin = getenv("VFMIG");
	const char *argv[32];
	size_t n = 0;

	if (!bin) {
		fprintf(stderr, "harness: VFMIG (path of the vfmig binary) "
				"is not set\n");
		return -1;
	}
	argv[n++] = bin;
	argv[n++] = "device";
	argv[n++] = name;
	argv[n++] = "--socket-path";
	argv[n++] = path;
	for (size_t i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	return harness_spawn(name, argv, path);
}

int harness_stop(pid_t pid)
{
	int status;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int i = 0; i < 500 * harness_patience(); i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			forget_child(pid);
			if (WIFEXITED(status))
				return WEXITSTATUS(status);
			return 128 + WTERMSIG(status);
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	harness_kill(pid);
	return -1;
}

void harness_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	forget_child(pid);
}
